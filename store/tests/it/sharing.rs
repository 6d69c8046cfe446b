//! One store, several handles at once (as several server processes, or machines, have):
//! a new store opened by all of them at once (a cluster starting) opens for each, a
//! contested name goes to exactly one key, and concurrent saves lose no update.

use std::sync::Arc;

use glam::Vec2;
use tessera_store::{Checkpoint, ClaimError, Store};

use crate::backend::{Backend, SPAWN, key, on_both_backends, options};

on_both_backends!(
    a_new_store_opened_by_many_at_once_opens_for_all,
    a_contested_name_has_one_winner,
    concurrent_saves_lose_nothing
);

const HANDLES: usize = 2;
const CLAIMANTS: u8 = 8;
/// As many as the default map's servers and proxies, and more.
const OPENERS: usize = 8;

async fn a_new_store_opened_by_many_at_once_opens_for_all(backend: Backend) {
    // Threads of their own, released together, as processes starting at once are.
    let location = backend.location();
    let start = Arc::new(std::sync::Barrier::new(OPENERS));
    let openers: Vec<_> = (0..OPENERS)
        .map(|_| {
            let (location, start) = (location.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                start.wait();
                runtime.block_on(async {
                    let store = Store::open_with(&location, options()).await?;
                    store.load(key(0)).await
                })
            })
        })
        .collect();
    for (n, opened) in openers.into_iter().enumerate() {
        opened.join().unwrap().unwrap_or_else(|error| panic!("opener {n}: {error}"));
    }
}

async fn a_contested_name_has_one_winner(backend: Backend) {
    let mut handles = Vec::new();
    for _ in 0..HANDLES {
        handles.push(backend.open().await);
    }
    let claims: Vec<_> = (0..CLAIMANTS)
        .map(|n| {
            let store = handles[usize::from(n) % HANDLES].clone();
            tokio::spawn(async move { store.claim(key(n), "Contested", SPAWN).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (n, claim) in (0..CLAIMANTS).zip(claims) {
        match claim.await.unwrap() {
            Ok(claimed) => winners.push((n, claimed)),
            Err(ClaimError::NameTaken { .. }) => {}
            Err(other) => panic!("claimant {n}: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let (winner, claimed) = &winners[0];
    assert!(claimed.created);
    for (n, store) in (0..CLAIMANTS).zip(handles.iter().cycle()) {
        let record = store.load(key(n)).await.unwrap();
        assert_eq!(record.is_some(), n == *winner, "claimant {n}");
    }
}

async fn concurrent_saves_lose_nothing(backend: Backend) {
    const SAVES: u32 = 25;
    const DELTA_MS: u32 = 10;
    let first = backend.open().await;
    for n in 0..2 {
        first.claim(key(n), &format!("p{n}"), SPAWN).await.unwrap();
    }
    let handles = [Arc::new(first), Arc::new(backend.open().await)];
    // Each handle saves both players, in opposite orders, many times at once.
    let writers: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(writer, store)| {
            let store = Arc::clone(store);
            tokio::spawn(async move {
                for save in 0..SAVES {
                    let mut batch: Vec<_> = (0..2)
                        .map(|n| Checkpoint {
                            id: key(n).user(),
                            position: Vec2::splat(save as f32),
                            last_seen_ms: u64::from(save),
                            played_delta_ms: DELTA_MS,
                        })
                        .collect();
                    if writer == 1 {
                        batch.reverse();
                    }
                    assert_eq!(store.save(&batch).await.unwrap(), 2);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for n in 0..2 {
        let record = handles[0].load(key(n)).await.unwrap().unwrap();
        assert_eq!(record.time_played_ms, u64::from(SAVES * DELTA_MS) * HANDLES as u64, "player {n}");
    }
}
