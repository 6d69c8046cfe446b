//! The backend for a cluster on several machines: a PostgreSQL server, through a small
//! pool of tokio-postgres connections (deadpool-postgres). Each connection is checked
//! with a query before it is lent, so one broken by a server restart is replaced rather
//! than failing the next call; every call, connecting included, has a deadline, after
//! which it fails as [`StoreError::Unavailable`]. The tables are made on first use, under
//! an advisory lock, with their schema version in a table of its own.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use glam::Vec2;
use tokio_postgres::NoTls;

use crate::error::{ClaimError, StoreError};
use crate::location::PostgresUrl;
use tessera_shared::identity::PlayerKey;

use crate::record::{Checkpoint, Claimed, PlayerRecord, to_sql_int};
use crate::sql::{self, SCHEMA_VERSION, stored_row};

/// Taken while the tables are checked or made, so that servers starting together on an
/// empty database do not race to create them ("TESSERA1").
const SCHEMA_LOCK: i64 = 0x5445_5353_4552_4131;

const TABLES: &str = "CREATE TABLE tessera_store_schema (version INTEGER NOT NULL);
CREATE TABLE tessera_players (
    id BIGINT PRIMARY KEY,
    key BYTEA NOT NULL UNIQUE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    x REAL NOT NULL,
    y REAL NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    time_played_ms BIGINT NOT NULL
);";

/// A pool of connections to the server. Clones share it.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    timeout: Duration,
    what: String,
}

impl PostgresStore {
    pub(crate) async fn open(url: &PostgresUrl, timeout: Duration, connections: usize) -> Result<Self, StoreError> {
        let what = url.to_string();
        let mut config = (*url.0).clone();
        config.connect_timeout(timeout).keepalives(true).application_name("tessera");
        let manager =
            Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Verified });
        let pool = Pool::builder(manager)
            .max_size(connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|error| StoreError::Open { what: what.clone(), reason: error.to_string() })?;
        let store = Self { pool, timeout, what };
        let what = store.what.clone();
        store.run(async move |client| adopt(client, &what).await).await?;
        Ok(store)
    }

    /// Runs `op` with a pooled connection, all of it (waiting for the connection too)
    /// within the timeout.
    async fn run<T, E: From<StoreError>>(&self, op: impl AsyncFnOnce(&mut Object) -> Result<T, E>) -> Result<T, E> {
        let call = async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            op(&mut client).await
        };
        tokio::time::timeout(self.timeout, call).await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!("no answer from {} within {:?}", self.what, self.timeout)).into())
        })
    }

    pub(crate) async fn claim(
        &self,
        key: PlayerKey,
        name: String,
        name_key: String,
        spawn: Vec2,
        now_ms: u64,
    ) -> Result<Claimed, ClaimError> {
        self.run(async move |client| {
            if let Some(record) = select_by_key(client, key).await? {
                return Ok(Claimed { record, created: false });
            }
            let id = key.user();
            let now = to_sql_int(now_ms, "now")?;
            let inserted = client
                .execute(
                    sql::INSERT_IF_FREE,
                    &[&id.0.cast_signed(), &key.0.as_slice(), &name, &name_key, &spawn.x, &spawn.y, &now],
                )
                .await
                .map_err(pg_error)?;
            if inserted == 1 {
                return Ok(Claimed::new_player(key, name, spawn, now_ms));
            }
            let name_held = client.query_one(sql::NAME_IS_HELD, &[&name_key]).await.map_err(pg_error)?.get(0);
            sql::insert_lost(select_by_key(client, key).await?, name_held, &name)
        })
        .await
    }

    pub(crate) async fn load(&self, key: PlayerKey) -> Result<Option<PlayerRecord>, StoreError> {
        self.run(async move |client| select_by_key(client, key).await).await
    }

    pub(crate) async fn save(&self, batch: Vec<Checkpoint>) -> Result<usize, StoreError> {
        self.run(async move |client| {
            let transaction = client.transaction().await.map_err(pg_error)?;
            let update = transaction.prepare_cached(sql::CHECKPOINT).await.map_err(pg_error)?;
            let mut matched = 0;
            for checkpoint in &batch {
                let updated = transaction
                    .execute(
                        &update,
                        &[
                            &checkpoint.position.x,
                            &checkpoint.position.y,
                            &to_sql_int(checkpoint.last_seen_ms, "last_seen_ms")?,
                            &i64::from(checkpoint.played_delta_ms),
                            &checkpoint.id.0.cast_signed(),
                        ],
                    )
                    .await
                    .map_err(pg_error)?;
                matched += usize::from(updated > 0);
            }
            transaction.commit().await.map_err(pg_error)?;
            Ok(matched)
        })
        .await
    }
}

async fn select_by_key(client: &Object, key: PlayerKey) -> Result<Option<PlayerRecord>, StoreError> {
    let row = client.query_opt(sql::SELECT_BY_KEY, &[&key.0.as_slice()]).await.map_err(pg_error)?;
    row.map(|row| Ok::<_, tokio_postgres::Error>(stored_row!(row.try_get)))
        .transpose()
        .map_err(pg_error)?
        .map(PlayerRecord::try_from)
        .transpose()
}

/// Checks that the database holds a player store of our version, or makes one if it
/// holds none.
async fn adopt(client: &mut Object, what: &str) -> Result<(), StoreError> {
    let transaction = client.transaction().await.map_err(pg_error)?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK]).await.map_err(pg_error)?;
    let exists = async |table: &str| -> Result<bool, StoreError> {
        let row = transaction.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.map_err(pg_error)?;
        Ok(row.get(0))
    };
    let foreign = |reason: &str| StoreError::Foreign { what: what.to_owned(), reason: reason.to_owned() };
    if !exists("tessera_store_schema").await? {
        if exists("tessera_players").await? {
            return Err(foreign("a table tessera_players without a schema version"));
        }
        transaction.batch_execute(TABLES).await.map_err(pg_error)?;
        transaction
            .execute("INSERT INTO tessera_store_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])
            .await
            .map_err(pg_error)?;
        return transaction.commit().await.map_err(pg_error);
    }
    let versions: Vec<i32> = transaction
        .query("SELECT version FROM tessera_store_schema", &[])
        .await
        .map_err(pg_error)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_error)?;
    match versions[..] {
        [version] if version == SCHEMA_VERSION => transaction.commit().await.map_err(pg_error),
        [version] => Err(StoreError::UnknownSchema {
            what: what.to_owned(),
            found: version.into(),
            known: SCHEMA_VERSION.into(),
        }),
        _ => Err(foreign("tessera_store_schema does not hold exactly one version")),
    }
}

fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => pg_error(error),
        PoolError::Timeout(_) => StoreError::Unavailable(format!("no connection: {error}")),
        other => StoreError::Database(other.to_string()),
    }
}

/// Errors the server did not answer with (a refused or lost connection, a timeout) and
/// those it answers with while it cannot serve (SQLSTATE classes 08 connection, 40
/// transaction rollback, 53 resources, 57 operator intervention such as a shutdown, 58
/// system) are a store that is down for now; the rest are failures.
fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let transient = match error.code() {
        None => true,
        Some(code) => ["08", "40", "53", "57", "58"].iter().any(|class| code.code().starts_with(class)),
    };
    // The server's own message is more useful than the client's "db error".
    let message = error.as_db_error().map_or_else(|| error.to_string(), ToString::to_string);
    if transient { StoreError::Unavailable(message) } else { StoreError::Database(message) }
}
