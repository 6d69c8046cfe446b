//! Saving checkpoints: a batch updates every player in it at once; time played adds up;
//! a bad checkpoint refuses its whole batch; what was saved is there after reopening.

use glam::Vec2;
use tessera_shared::ids::UserId;
use tessera_store::{Checkpoint, StoreError};

use crate::backend::{Backend, SPAWN, key, on_both_backends};

on_both_backends!(a_batch_saves_every_player, a_bad_checkpoint_refuses_its_batch, saved_records_outlive_the_handle);

fn checkpoint(n: u8, position: Vec2, last_seen_ms: u64, played_delta_ms: u32) -> Checkpoint {
    Checkpoint { id: key(n).user(), position, last_seen_ms, played_delta_ms }
}

async fn a_batch_saves_every_player(backend: Backend) {
    let store = backend.open().await;
    for n in 1..=3 {
        store.claim(key(n), &format!("p{n}"), SPAWN).await.unwrap();
    }
    let first: Vec<_> =
        (1..=3).map(|n| checkpoint(n, Vec2::new(f32::from(n), -f32::from(n)), 1_000 + u64::from(n), 100)).collect();
    assert_eq!(store.save(&first).await.unwrap(), 3);

    let unknown = Checkpoint { id: UserId(7), position: Vec2::ZERO, last_seen_ms: 5, played_delta_ms: 5 };
    let second = [checkpoint(2, Vec2::new(-3.5, 8.0), 2_000, 250), unknown];
    assert_eq!(store.save(&second).await.unwrap(), 1, "only known players match");

    let two = store.load(key(2)).await.unwrap().unwrap();
    assert_eq!((two.position, two.last_seen_ms, two.time_played_ms), (Vec2::new(-3.5, 8.0), 2_000, 350));
    for n in [1, 3] {
        let record = store.load(key(n)).await.unwrap().unwrap();
        let expected = (Vec2::new(f32::from(n), -f32::from(n)), 1_000 + u64::from(n), 100);
        assert_eq!((record.position, record.last_seen_ms, record.time_played_ms), expected);
    }
    assert_eq!(store.save(&[]).await.unwrap(), 0);
}

async fn a_bad_checkpoint_refuses_its_batch(backend: Backend) {
    let store = backend.open().await;
    let before = store.claim(key(1), "Ann", SPAWN).await.unwrap().record;
    store.claim(key(2), "Bob", SPAWN).await.unwrap();
    let good = checkpoint(1, Vec2::ONE, 9_000, 10);
    for bad in [
        checkpoint(2, Vec2::new(f32::NAN, 0.0), 9_000, 10),
        checkpoint(2, Vec2::new(0.0, f32::INFINITY), 9_000, 10),
        checkpoint(2, Vec2::ONE, u64::MAX, 10),
    ] {
        match store.save(&[good, bad]).await {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("{bad:?} saved: {other:?}"),
        }
    }
    assert_eq!(store.load(key(1)).await.unwrap().unwrap(), before, "nothing of a refused batch is saved");
}

async fn saved_records_outlive_the_handle(backend: Backend) {
    let store = backend.open().await;
    store.claim(key(1), "Ann", SPAWN).await.unwrap();
    store.save(&[checkpoint(1, Vec2::new(4.0, 2.0), 77, 1_234)]).await.unwrap();
    drop(store);
    let reopened = backend.open().await.load(key(1)).await.unwrap().unwrap();
    assert_eq!(
        (reopened.name.as_str(), reopened.position, reopened.time_played_ms),
        ("Ann", Vec2::new(4.0, 2.0), 1_234)
    );
}
