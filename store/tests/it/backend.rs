//! The store a test runs against, and `on_both_backends!`, which runs a test function
//! once per backend. Each test gets a store of its own: a fresh directory for SQLite, a
//! fresh database on the shared server for PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use glam::Vec2;
use tessera_shared::identity::PlayerKey;
use tessera_store::{Store, StoreLocation, StoreOptions};

use tessera_store::test_server as pg_server;

/// Short enough that tests of a store that is down finish quickly, long enough for a
/// loaded machine's ordinary calls.
pub const TIMEOUT: Duration = Duration::from_secs(3);

pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    pub fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("temporary directory"))
    }

    pub async fn postgres() -> Self {
        static DATABASES: AtomicUsize = AtomicUsize::new(0);
        let dbname = format!("test_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        Self::Postgres(pg_server::shared().new_database(&dbname).await)
    }

    pub fn location(&self) -> StoreLocation {
        match self {
            Self::Sqlite(dir) => StoreLocation::in_data_dir(dir.path()),
            Self::Postgres(url) => url.parse().expect("a PostgreSQL URL"),
        }
    }

    /// A new handle on this test's store: two handles are two connections (or pools),
    /// as two server processes have.
    pub async fn open(&self) -> Store {
        Store::open_with(&self.location(), options()).await.expect("opening the store")
    }
}

pub fn options() -> StoreOptions {
    StoreOptions { timeout: TIMEOUT, ..StoreOptions::default() }
}

/// The key of test player `n`: distinct for distinct `n`.
pub fn key(n: u8) -> PlayerKey {
    PlayerKey([n; 32])
}

pub const SPAWN: Vec2 = Vec2::new(12.5, -40.25);

/// `on_both_backends!(test_fn, ...)`: for each `async fn test_fn(backend: Backend)`, a
/// module `test_fn` with the tests `sqlite` and `postgres`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        $(
            mod $test {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$test(crate::backend::Backend::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$test(crate::backend::Backend::postgres().await).await;
                }
            }
        )+
    };
}
pub(crate) use on_both_backends;
