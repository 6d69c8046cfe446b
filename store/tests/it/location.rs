//! `--store` values: which backend a string names, and a URL shown without its password.

use std::path::Path;

use tessera_store::{StoreError, StoreLocation};

#[test]
fn postgres_urls_name_postgres_and_hide_the_password() {
    for url in
        ["postgres://tessera:hunter2@db.example:5433/players", "postgresql://tessera:hunter2@db.example:5433/players"]
    {
        let location: StoreLocation = url.parse().unwrap();
        assert!(matches!(location, StoreLocation::Postgres(_)), "{url}");
        let shown = location.to_string();
        assert_eq!(shown, "postgres://tessera@db.example:5433/players");
        assert!(!format!("{location:?}").contains("hunter2"));
    }
}

#[test]
fn anything_else_is_a_sqlite_file() {
    for path in ["data/players.sqlite3", "/var/lib/tessera/players.sqlite3", "postgres.db"] {
        match path.parse::<StoreLocation>().unwrap() {
            StoreLocation::Sqlite(parsed) => assert_eq!(parsed, Path::new(path)),
            other => panic!("{path}: {other:?}"),
        }
    }
    match StoreLocation::in_data_dir(Path::new("cluster-data")) {
        StoreLocation::Sqlite(path) => {
            assert_eq!(path, Path::new("cluster-data").join(tessera_store::DEFAULT_FILE_NAME))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_locations_are_refused() {
    for bad in ["", "postgres://tessera@host:notaport/db"] {
        assert!(matches!(bad.parse::<StoreLocation>(), Err(StoreError::Open { .. })), "{bad:?}");
    }
}
