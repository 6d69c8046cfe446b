//! A store that is down: calls fail with `Unavailable` within the timeout (never hang,
//! never panic), and once it is back the same handle works again, with nothing lost.

use std::time::{Duration, Instant};

use glam::Vec2;
use rusqlite::Connection;
use tessera_store::{Checkpoint, DEFAULT_FILE_NAME, Store, StoreError, StoreLocation};

use crate::backend::{Backend, SPAWN, TIMEOUT, key, options};
use tessera_store::test_server::PgServer;

/// How much longer than the timeout a failing call may take on a loaded machine.
const SLACK: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_then_restarted() {
    let server = PgServer::start();
    let url = server.new_database("outage").await;
    let location: StoreLocation = url.parse().unwrap();
    let store = Store::open_with(&location, options()).await.unwrap();
    store.claim(key(1), "Ann", SPAWN).await.unwrap();

    server.stop();
    assert_unavailable(&store).await;
    let started = Instant::now();
    let opened = Store::open_with(&location, options()).await;
    assert!(matches!(opened, Err(StoreError::Unavailable(_))), "opening a stopped store");
    assert!(started.elapsed() < TIMEOUT + SLACK);

    server.resume();
    saved_once_back(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_by_another_process_then_released() {
    let backend = Backend::sqlite();
    let store = backend.open().await;
    store.claim(key(1), "Ann", SPAWN).await.unwrap();

    let Backend::Sqlite(dir) = &backend else { unreachable!() };
    let other = Connection::open(dir.path().join(DEFAULT_FILE_NAME)).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    assert_unavailable(&store).await;
    other.execute_batch("COMMIT").unwrap();
    saved_once_back(&store).await;
}

fn checkpoint() -> Checkpoint {
    Checkpoint { id: key(1).user(), position: Vec2::new(3.0, 4.0), last_seen_ms: 42, played_delta_ms: 500 }
}

/// Loading, claiming and saving all fail as `Unavailable`, each within the timeout.
async fn assert_unavailable(store: &Store) {
    let started = Instant::now();
    assert!(matches!(store.save(&[checkpoint()]).await, Err(StoreError::Unavailable(_))));
    assert!(matches!(
        store.claim(key(2), "Bob", SPAWN).await,
        Err(tessera_store::ClaimError::Store(StoreError::Unavailable(_)))
    ));
    // SQLite reads past another's lock (WAL); PostgreSQL has no reader left.
    if matches!(store, Store::Postgres(_)) {
        assert!(matches!(store.load(key(1)).await, Err(StoreError::Unavailable(_))));
    }
    assert!(started.elapsed() < 3 * (TIMEOUT + SLACK), "took {:?}", started.elapsed());
}

/// The batch refused while the store was down is saved once it is back, exactly once.
async fn saved_once_back(store: &Store) {
    let deadline = Instant::now() + TIMEOUT + SLACK;
    loop {
        match store.save(&[checkpoint()]).await {
            Ok(matched) => break assert_eq!(matched, 1),
            Err(StoreError::Unavailable(reason)) if Instant::now() < deadline => {
                tracing::debug!(reason, "not back yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("the store did not come back: {other}"),
        }
    }
    let record = store.load(key(1)).await.unwrap().unwrap();
    assert_eq!((record.position, record.time_played_ms), (Vec2::new(3.0, 4.0), 500));
    assert_eq!(store.load(key(2)).await.unwrap(), None, "a claim refused while down left nothing");
}
