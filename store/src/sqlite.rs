//! The embedded backend: one SQLite file (compiled in, no system library) that every
//! server process on the machine opens. WAL lets readers go on while one process writes;
//! the busy timeout makes a writer wait for another's lock instead of failing at once,
//! and bounds that wait. The file is marked as ours (`application_id`, and the schema
//! version in `user_version`), and a file that is not, or not a database at all, is
//! refused, never replaced. Calls run on tokio's blocking pool, one at a time per handle.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use glam::Vec2;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::error::{ClaimError, StoreError};
use tessera_shared::identity::PlayerKey;

use crate::record::{Checkpoint, Claimed, PlayerRecord, to_sql_int};
use crate::sql::{self, SCHEMA_VERSION, stored_row};

/// "TESS": the `application_id` of a Tessera player store.
const APPLICATION_ID: i32 = 0x5445_5353;

const TABLES: &str = "CREATE TABLE tessera_players (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    x REAL NOT NULL,
    y REAL NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    time_played_ms INTEGER NOT NULL
) STRICT;";

/// A connection to the file. Clones share it.
#[derive(Clone)]
pub struct SqliteStore {
    connection: Arc<Mutex<Connection>>,
    timeout: Duration,
}

impl SqliteStore {
    pub(crate) async fn open(path: PathBuf, timeout: Duration) -> Result<Self, StoreError> {
        let connection = tokio::task::spawn_blocking(move || open_file(&path, timeout))
            .await
            .map_err(|error| StoreError::Database(format!("opening the store stopped: {error}")))??;
        Ok(Self { connection: Arc::new(Mutex::new(connection)), timeout })
    }

    /// Runs `op` on the connection, off the async threads.
    async fn run<T, E>(&self, op: impl FnOnce(&mut Connection) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A panic elsewhere cannot leave the connection mid-transaction: rusqlite's
            // transactions roll back when dropped, so a poisoned lock is still usable.
            op(&mut connection.lock().unwrap_or_else(PoisonError::into_inner))
        })
        .await
        .map_err(|error| StoreError::Database(format!("a store call stopped: {error}")))?
    }

    pub(crate) async fn claim(
        &self,
        key: PlayerKey,
        name: String,
        name_key: String,
        spawn: Vec2,
        now_ms: u64,
    ) -> Result<Claimed, ClaimError> {
        let timeout = self.timeout;
        self.run(move |connection| {
            let fail = |error| sqlite_error(error, timeout);
            if let Some(record) = select_by_key(connection, key, timeout)? {
                return Ok(Claimed { record, created: false });
            }
            let id = key.user();
            let inserted = connection
                .execute(
                    sql::INSERT_IF_FREE,
                    params![
                        id.0.cast_signed(),
                        key.0.as_slice(),
                        name,
                        name_key,
                        spawn.x,
                        spawn.y,
                        to_sql_int(now_ms, "now")?
                    ],
                )
                .map_err(fail)?;
            if inserted == 1 {
                return Ok(Claimed::new_player(key, name, spawn, now_ms));
            }
            let name_held = connection.query_row(sql::NAME_IS_HELD, [&name_key], |row| row.get(0)).map_err(fail)?;
            sql::insert_lost(select_by_key(connection, key, timeout)?, name_held, &name)
        })
        .await
    }

    pub(crate) async fn load(&self, key: PlayerKey) -> Result<Option<PlayerRecord>, StoreError> {
        let timeout = self.timeout;
        self.run(move |connection| select_by_key(connection, key, timeout)).await
    }

    pub(crate) async fn save(&self, batch: Vec<Checkpoint>) -> Result<usize, StoreError> {
        let timeout = self.timeout;
        self.run(move |connection| {
            let fail = |error| sqlite_error(error, timeout);
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(fail)?;
            let mut matched = 0;
            {
                let mut update = transaction.prepare_cached(sql::CHECKPOINT).map_err(fail)?;
                for checkpoint in &batch {
                    matched += update
                        .execute(params![
                            checkpoint.position.x,
                            checkpoint.position.y,
                            to_sql_int(checkpoint.last_seen_ms, "last_seen_ms")?,
                            checkpoint.played_delta_ms,
                            checkpoint.id.0.cast_signed(),
                        ])
                        .map_err(fail)?;
                }
            }
            transaction.commit().map_err(fail)?;
            Ok(matched)
        })
        .await
    }
}

fn select_by_key(
    connection: &Connection,
    key: PlayerKey,
    timeout: Duration,
) -> Result<Option<PlayerRecord>, StoreError> {
    connection
        .query_row(sql::SELECT_BY_KEY, [key.0.as_slice()], |row| Ok(stored_row!(row.get)))
        .optional()
        .map_err(|error| sqlite_error(error, timeout))?
        .map(PlayerRecord::try_from)
        .transpose()
}

/// Opens the file at `path`, creating it (and its directory) only if it is missing.
fn open_file(path: &Path, timeout: Duration) -> Result<Connection, StoreError> {
    let what = || path.display().to_string();
    let cannot_open = |reason: String| StoreError::Open { what: what(), reason };
    let exists = path.try_exists().map_err(|error| cannot_open(error.to_string()))?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if !exists {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| cannot_open(format!("making {}: {error}", dir.display())))?;
        }
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut connection = Connection::open_with_flags(path, flags).map_err(|error| cannot_open(error.to_string()))?;
    // SQLite reads the file only when first asked something: here, in `adopt`.
    let unreadable = |error: rusqlite::Error| match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::NotADatabase { path: path.to_owned(), reason: error.to_string() }
        }
        _ => sqlite_error(error, timeout),
    };
    connection.busy_timeout(timeout).map_err(unreadable)?;
    // Every server and proxy of a cluster opens the file as it starts, all at once, and
    // to avoid deadlocks SQLite answers some of them busy at once, without waiting in its
    // busy handler, while another is making the file or switching it to WAL: so these
    // steps are tried again, until the timeout.
    let deadline = Instant::now() + timeout;
    let mode = loop {
        match adopt_in_wal(&mut connection, &what()) {
            Ok(mode) => break mode,
            Err(AdoptError::Sqlite(error))
                if matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(AdoptError::Sqlite(error)) => return Err(unreadable(error)),
            Err(AdoptError::Refused(error)) => return Err(error),
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(cannot_open(format!("journal mode {mode}, not WAL")));
    }
    // In WAL mode, NORMAL loses at most the last transactions on a power cut, never the file.
    connection.pragma_update(None, "synchronous", "NORMAL").map_err(unreadable)?;
    Ok(connection)
}

enum AdoptError {
    Sqlite(rusqlite::Error),
    Refused(StoreError),
}

impl From<rusqlite::Error> for AdoptError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

/// Adopts the file ([`adopt`]) and then, only once it is known to be ours, switches it to
/// WAL (a property of the file, kept by it); returns the journal mode it is in.
fn adopt_in_wal(connection: &mut Connection, what: &str) -> Result<String, AdoptError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    adopt(&transaction, what)?;
    transaction.commit()?;
    Ok(connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?)
}

/// Checks that the database is a player store of our version, or makes it one if it is
/// empty (just created, here or by another process a moment ago).
fn adopt(connection: &Connection, what: &str) -> Result<(), AdoptError> {
    let application_id: i32 = connection.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let version: i32 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let foreign = |reason: String| AdoptError::Refused(StoreError::Foreign { what: what.to_owned(), reason });
    match application_id {
        APPLICATION_ID if version == SCHEMA_VERSION => Ok(()),
        APPLICATION_ID => Err(AdoptError::Refused(StoreError::UnknownSchema {
            what: what.to_owned(),
            found: version.into(),
            known: SCHEMA_VERSION.into(),
        })),
        0 => {
            let objects: i64 = connection.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
            if objects > 0 {
                return Err(foreign(format!("a SQLite database of something else: {objects} tables and indexes")));
            }
            connection.execute_batch(TABLES)?;
            connection.pragma_update(None, "application_id", APPLICATION_ID)?;
            connection.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        }
        other => Err(foreign(format!("SQLite application id {other:#x}, not Tessera's {APPLICATION_ID:#x}"))),
    }
}

/// Locked past the busy timeout, or a disk that fails or is full, is a store that is down
/// for now: the caller keeps what it meant to write and tries again.
fn sqlite_error(error: rusqlite::Error, timeout: Duration) -> StoreError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(format!("the database file stayed locked for {timeout:?}"))
        }
        Some(ErrorCode::SystemIoFailure | ErrorCode::DiskFull | ErrorCode::CannotOpen) => {
            StoreError::Unavailable(error.to_string())
        }
        _ => StoreError::Database(error.to_string()),
    }
}
