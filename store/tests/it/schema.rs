//! What the store opens: a missing SQLite file is made, with its directory; a file or a
//! database that is not a player store of this version is refused and left as it was.

use std::path::Path;

use rusqlite::Connection;
use tessera_store::{Store, StoreError, StoreLocation};

use crate::backend::{SPAWN, key, options};
use tessera_store::test_server as pg_server;

async fn open(path: &Path) -> Result<Store, StoreError> {
    Store::open_with(&StoreLocation::Sqlite(path.to_owned()), options()).await
}

#[tokio::test]
async fn a_missing_file_is_made_with_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster/data/players.sqlite3");
    let store = open(&path).await.unwrap();
    store.claim(key(1), "Ann", SPAWN).await.unwrap();
    let file = Connection::open(&path).unwrap();
    let journal_mode: String = file.pragma_query_value(None, "journal_mode", |row| row.get(0)).unwrap();
    assert_eq!(journal_mode, "wal", "several processes share the file");
    let number = |name| file.pragma_query_value(None, name, |row| row.get::<_, i64>(0)).unwrap();
    assert_eq!(number("application_id"), 0x5445_5353, "the file says it is ours");
    assert_eq!(number("user_version"), 2);
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("players.sqlite3");
    let contents = "player,x,y\nann,1,2\n".repeat(100);
    std::fs::write(&path, &contents).unwrap();
    match open(&path).await {
        Err(StoreError::NotADatabase { path: refused, .. }) => assert_eq!(refused, path),
        Err(other) => panic!("refused, but as {other}"),
        Ok(_) => panic!("a text file opened as a store"),
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), contents);
}

#[tokio::test]
async fn a_database_of_something_else_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let with_tables = dir.path().join("orders.sqlite3");
    Connection::open(&with_tables).unwrap().execute_batch("CREATE TABLE orders (id INTEGER, total REAL);").unwrap();
    let other_application = dir.path().join("other.sqlite3");
    Connection::open(&other_application).unwrap().pragma_update(None, "application_id", 0x1234).unwrap();
    for path in [&with_tables, &other_application] {
        match open(path).await {
            Err(StoreError::Foreign { .. }) => {}
            Err(other) => panic!("{}: refused, but as {other}", path.display()),
            Ok(_) => panic!("{} opened as a store", path.display()),
        }
        let tables: i64 = Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'tessera_players'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(tables, 0, "{} was changed", path.display());
    }
}

#[tokio::test]
async fn a_store_of_another_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("players.sqlite3");
    drop(open(&path).await.unwrap());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    assert!(matches!(open(&path).await, Err(StoreError::UnknownSchema { found: 99, known: 2, .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_database_of_something_else_is_refused() {
    let server = pg_server::shared();
    let open = async |url: &str| Store::open_with(&url.parse().unwrap(), options()).await;

    let foreign = server.new_database("foreign_players").await;
    exec(&foreign, "CREATE TABLE tessera_players (who TEXT)").await;
    assert!(matches!(open(&foreign).await, Err(StoreError::Foreign { .. })));

    let newer = server.new_database("newer_schema").await;
    drop(open(&newer).await.unwrap());
    exec(&newer, "UPDATE tessera_store_schema SET version = 99").await;
    assert!(matches!(open(&newer).await, Err(StoreError::UnknownSchema { found: 99, known: 2, .. })));
}

async fn exec(url: &str, statement: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(statement).await.unwrap();
}
