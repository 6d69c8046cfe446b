//! The player store: who each player is (their key, the stable id derived from it, their
//! name) and where they were (position, last seen, time played), kept in a real database
//! behind one small interface, [`Store`]. Keys, ids and the name rule are
//! `tessera_shared::identity`'s ([`PlayerKey`], [`UserId`](tessera_shared::ids::UserId),
//! [`check_name`](tessera_shared::identity::check_name), [`name_key`](tessera_shared::identity::name_key)).
//!
//! Two backends, because clusters come in two shapes. On one machine the embedded
//! default is SQLite ([`sqlite`]): one file in the cluster's data directory, nothing to
//! install or run, shared safely by every server process on the machine. A cluster on
//! several machines needs a store they can all reach: PostgreSQL ([`postgres`]), given as
//! `--store postgres://...`. Both give the same answers; the integration tests run every
//! test against each.
//!
//! Every call is async and runs on the caller's tokio runtime (the I/O runtime, never a
//! Bevy system): SQLite's blocking calls on tokio's blocking pool, PostgreSQL's over its
//! own connections. Every call is bounded by [`StoreOptions::timeout`], after which it
//! fails with [`StoreError::Unavailable`]: the caller keeps what it meant to save and
//! tries again, and the store works again once the database is back.
//!
//! [`Store`] is an enum rather than a trait: there are exactly two backends, chosen at
//! start by a location string, and an enum gives async methods without boxing their
//! futures, and a `Clone` handle rather than a trait object to pass around.

mod error;
mod location;
pub mod postgres;
mod record;
mod sql;
pub mod sqlite;
#[cfg(feature = "test-server")]
pub mod test_server;

use std::time::Duration;

use glam::Vec2;
use tessera_shared::identity::PlayerKey;

pub use error::{ClaimError, NameError, StoreError};
pub use location::{DEFAULT_FILE_NAME, PostgresUrl, StoreLocation, platform_data_dir};
pub use record::{Checkpoint, Claimed, MAX_NAME_BYTES, PlayerRecord};

use postgres::PostgresStore;
use sqlite::SqliteStore;

/// An open player store. Cheap to clone: clones share the connection (SQLite) or the pool
/// (PostgreSQL).
#[derive(Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// How long the store waits, and how many connections it keeps.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// The longest any one call may take, waiting included: for a SQLite file locked by
    /// another process (its busy timeout), for a PostgreSQL connection, connecting, and
    /// the call itself.
    pub timeout: Duration,
    /// PostgreSQL connections at most (SQLite uses one per handle).
    pub postgres_connections: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5), postgres_connections: 4 }
    }
}

impl Store {
    /// Opens the store with the default [`StoreOptions`].
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        Self::open_with(location, StoreOptions::default()).await
    }

    /// Opens the store at `location`, making its tables if it has none. A SQLite file is
    /// created if missing (with its directory); an existing file that is not a SQLite
    /// database, or is one of something else, is an error and left untouched. A
    /// PostgreSQL server that cannot be reached is [`StoreError::Unavailable`].
    pub async fn open_with(location: &StoreLocation, options: StoreOptions) -> Result<Self, StoreError> {
        let store = match location {
            StoreLocation::Sqlite(path) => Self::Sqlite(SqliteStore::open(path.clone(), options.timeout).await?),
            StoreLocation::Postgres(url) => {
                Self::Postgres(PostgresStore::open(url, options.timeout, options.postgres_connections).await?)
            }
        };
        tracing::info!(%location, "player store open");
        Ok(store)
    }

    /// The record of `key`, made now under `name` (at `spawn`) if the key has none.
    ///
    /// A name belongs to the first key that claimed it, compared by
    /// `tessera_shared::identity::name_key`, without case and look-alikes ("Ann" and
    /// "ANN" are one name, and so are "paypal" and "pаypal" with a Cyrillic а): another
    /// key asking for it gets [`ClaimError::NameTaken`], even when two ask at the same
    /// moment from different processes or machines. A key keeps its first name for good:
    /// asking again under another name returns its record as it is ([`Claimed::created`]
    /// false, [`PlayerRecord::name`] the name it has). So a name never changes hands, and
    /// no one can later pass for a player by taking a name that player let go.
    ///
    /// Names are checked by the caller, against `tessera_shared::identity::check_name`;
    /// the store does not run that rule again, but still refuses an empty name or one
    /// over [`MAX_NAME_BYTES`] bytes.
    pub async fn claim(&self, key: PlayerKey, name: &str, spawn: Vec2) -> Result<Claimed, ClaimError> {
        let name_key = record::unique_name_key(name)?;
        if !spawn.is_finite() {
            return Err(StoreError::Invalid(format!("a spawn point of {spawn}")).into());
        }
        let (name, now) = (name.to_owned(), record::now_ms());
        match self {
            Self::Sqlite(store) => store.claim(key, name, name_key, spawn, now).await,
            Self::Postgres(store) => store.claim(key, name, name_key, spawn, now).await,
        }
    }

    /// The record of `key`, if it has claimed a name.
    pub async fn load(&self, key: PlayerKey) -> Result<Option<PlayerRecord>, StoreError> {
        match self {
            Self::Sqlite(store) => store.load(key).await,
            Self::Postgres(store) => store.load(key).await,
        }
    }

    /// Saves a batch of checkpoints in one transaction: all of them or, on an error,
    /// none. Returns how many matched a record (a checkpoint of an id the store does not
    /// know changes nothing). A non-finite position or a time past `i64::MAX` refuses the
    /// whole batch before anything is written.
    pub async fn save(&self, batch: &[Checkpoint]) -> Result<usize, StoreError> {
        batch.iter().try_for_each(Checkpoint::check)?;
        // Rows locked in one order by every server, so two saving the same players (around
        // a handoff) wait for each other instead of deadlocking.
        let mut batch = batch.to_vec();
        batch.sort_by_key(|checkpoint| checkpoint.id);
        match self {
            Self::Sqlite(store) => store.save(batch).await,
            Self::Postgres(store) => store.save(batch).await,
        }
    }
}
