//! The player store's tests. Most run twice, against a SQLite file in a temporary
//! directory and against a database of a private PostgreSQL server
//! (`tessera_store::test_server`), through
//! `on_both_backends!`; the rest test what only one backend has (the file, an outage).

mod backend;
mod checkpoints;
mod claims;
mod location;
mod outages;
mod schema;
mod sharing;
