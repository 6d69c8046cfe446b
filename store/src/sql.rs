//! The SQL both backends run, written once: the statements are the same text in SQLite and
//! PostgreSQL (`$1`, `$2`… in order of appearance, which SQLite also binds by position);
//! only the tables' column types differ. The claim's last step, shared too, decides what
//! an insert that changed nothing meant.

use crate::error::{ClaimError, StoreError};
use crate::record::{Claimed, PlayerRecord};

/// The schema version this build reads and writes (SQLite's `user_version`, PostgreSQL's
/// `tessera_store_schema` table). Version 2 keeps names unique by
/// `tessera_shared::identity::name_key` (case and look-alikes) in the column `name_key`;
/// version 1 kept them by lowercase alone.
pub(crate) const SCHEMA_VERSION: i32 = 2;

pub(crate) const SELECT_BY_KEY: &str =
    "SELECT id, key, name, x, y, last_seen_ms, time_played_ms FROM tessera_players WHERE key = $1";

pub(crate) const NAME_IS_HELD: &str = "SELECT EXISTS (SELECT 1 FROM tessera_players WHERE name_key = $1)";

/// Changes nothing when the key, its id or the name is already there (both databases
/// check every unique constraint, so two claims at once cannot both win the name).
pub(crate) const INSERT_IF_FREE: &str = "INSERT INTO tessera_players \
     (id, key, name, name_key, x, y, last_seen_ms, time_played_ms) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 0) ON CONFLICT DO NOTHING";

pub(crate) const CHECKPOINT: &str = "UPDATE tessera_players \
     SET x = $1, y = $2, last_seen_ms = $3, time_played_ms = time_played_ms + $4 WHERE id = $5";

/// Reads a [`crate::record::StoredRow`] from a row of [`SELECT_BY_KEY`] with the
/// backend's fallible column getter (`get` for rusqlite, `try_get` for tokio-postgres).
macro_rules! stored_row {
    ($row:ident . $get:ident) => {
        crate::record::StoredRow {
            id: $row.$get(0)?,
            key: $row.$get(1)?,
            name: $row.$get(2)?,
            x: $row.$get(3)?,
            y: $row.$get(4)?,
            last_seen_ms: $row.$get(5)?,
            time_played_ms: $row.$get(6)?,
        }
    };
}
pub(crate) use stored_row;

/// After [`INSERT_IF_FREE`] inserted nothing: the key's own record if it was claimed
/// meanwhile (by this key, under any name), else the name is someone else's, else the id
/// derived from the key belongs to another key.
pub(crate) fn insert_lost(by_key: Option<PlayerRecord>, name_held: bool, name: &str) -> Result<Claimed, ClaimError> {
    match by_key {
        Some(record) => Ok(Claimed { record, created: false }),
        None if name_held => Err(ClaimError::NameTaken { name: name.to_owned() }),
        None => Err(StoreError::IdCollision.into()),
    }
}
