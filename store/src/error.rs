//! What can go wrong with the store, sorted by what the caller does about it: wait and
//! retry ([`StoreError::Unavailable`]), stop and tell the operator (a file or database
//! that is not ours), or tell the player ([`ClaimError::NameTaken`], [`NameError`]).

use std::path::PathBuf;

use crate::record::MAX_NAME_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer in time, refused the connection, or lost it. Nothing
    /// was changed by a failed save's batch; try again later (the store reconnects).
    #[error("the player store is unavailable: {0}")]
    Unavailable(String),
    /// The file exists but is not a SQLite database. It is left as it is.
    #[error("{path} is not a SQLite database ({reason}); refusing to use or replace it")]
    NotADatabase { path: PathBuf, reason: String },
    /// A database of something else: it has tables, or another application's id.
    #[error("{what} is not a Tessera player store ({reason}); refusing to use it")]
    Foreign { what: String, reason: String },
    /// Ours, but of a schema version this build does not know.
    #[error("{what} holds player store schema version {found}; this build knows version {known}")]
    UnknownSchema { what: String, found: i64, known: i64 },
    /// A row that cannot be a record this store wrote.
    #[error("the player store holds a corrupt record: {0}")]
    Corrupt(String),
    /// Two keys whose ids (derived from them) are the same; the second is refused.
    #[error("another key already has the id derived from this one")]
    IdCollision,
    /// A caller's value the database cannot hold: nothing was written.
    #[error("refused: {0}")]
    Invalid(String),
    /// The location cannot be opened at all (a directory that cannot be made, a bad URL).
    #[error("cannot open the player store at {what}: {reason}")]
    Open { what: String, reason: String },
    /// Any other error the database reported.
    #[error("the player store failed: {0}")]
    Database(String),
}

/// Why a name was not given to a key.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("the name {name:?} belongs to another player")]
    NameTaken { name: String },
    #[error("invalid name: {0}")]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a name cannot be empty")]
    Empty,
    #[error("{len} bytes (at most {MAX_NAME_BYTES})")]
    TooLong { len: usize },
}
