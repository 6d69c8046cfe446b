//! A server's player store as a host gives it: a data directory whose store file is not
//! a Tessera store stops the server at start with the reason, and the file is left as it
//! was (never replaced by a new, empty world).

use std::process::Command;

#[test]
fn a_data_directory_holding_something_else_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("players.sqlite3");
    let foreign = b"not a database, but somebody's notes";
    std::fs::write(&file, foreign).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-server"))
        .args(["--id", "1", "--data"])
        .arg(dir.path())
        .env_remove("TESSERA_SECRET_FILE")
        .env_remove("TESSERA_SECRET")
        .env_remove("TESSERA_STORE")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the server does not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&file.display().to_string()) && stderr.contains("not a SQLite database"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), foreign, "the file is untouched");
}
