//! The walking skeleton: key presses go client → proxy → server, positions come back
//! server → proxy → client, and other players see the move.

use crate::harness::{DEADLINE, centre_of, default_cluster, join, walk_to};
use std::collections::HashMap;
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::ServerId;
use tessera_shared::protocol::{EntityState, extrapolate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_press_moves_the_player_and_others_see_it() {
    let cluster = default_cluster();
    let mut walker = join(&cluster, 0, "walker").await;
    let mut watcher = join(&cluster, 1, "watcher").await;
    let walker_id = walker.view.me.unwrap().id;
    assert_ne!(walker_id, watcher.view.me.unwrap().id, "user ids are unique across proxies");
    assert_ne!(walker.welcome.proxy, watcher.welcome.proxy);

    // Both spawn within the spawn radius of each other, well inside the view radius.
    watcher
        .wait_until(DEADLINE, "the walker in view, with its name", |view| {
            view.name(walker_id).is_some_and(|n| n == "walker")
        })
        .await
        .unwrap();
    let start = watcher.view.other(walker_id).unwrap().position;

    let seq = walker.press(Keys::RIGHT).await.unwrap();
    walker.wait_until(DEADLINE, "the input applied", |view| view.last_input >= seq).await.unwrap();
    let pressed_at = walker.view.me.unwrap().position;
    walker
        .wait_until(DEADLINE, "the walker moving right", |view| view.me.unwrap().position.x > pressed_at.x + 20.0)
        .await
        .unwrap();
    let moved = walker.view.me.unwrap();
    assert!((moved.position.y - pressed_at.y).abs() < 1e-3, "walking right keeps y");
    assert!(moved.velocity.x > 0.0 && moved.velocity.y == 0.0);

    watcher
        .wait_until(DEADLINE, "the watcher seeing the walker move right", |view| {
            view.other(walker_id).is_some_and(|other| other.position.x > start.x + 20.0)
        })
        .await
        .unwrap();

    let stop = walker.press(Keys::empty()).await.unwrap();
    walker.wait_until(DEADLINE, "the stop applied", |view| view.last_input >= stop).await.unwrap();
    let stopped_at = walker.view.me.unwrap().position;
    let seen = walker.view.updates;
    walker.wait_until(DEADLINE, "five more updates", |view| view.updates >= seen + 5).await.unwrap();
    assert_eq!(walker.view.me.unwrap().position, stopped_at, "no input, no movement");
    assert_eq!(walker.view.inputs_applied, walker.view.last_input, "each input applied exactly once");
}

/// Others in view are sent only when their motion changes; in between the player
/// extrapolates them, and lands where the server has them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_are_extrapolated_where_the_server_has_them() {
    let cluster = default_cluster();
    let mut walker = join(&cluster, 0, "walker").await;
    let mut watcher = join(&cluster, 1, "watcher").await;
    let walker_id = walker.view.me.unwrap().id;
    // Both on one server, so both see the same ticks.
    let centre = centre_of(&cluster, ServerId(1));
    tokio::join!(walk_to(&mut walker, centre, |_| {}), walk_to(&mut watcher, centre + Vec2::new(60.0, 0.0), |_| {}));
    watcher.wait_until(DEADLINE, "the walker in view", |view| view.other(walker_id).is_some()).await.unwrap();
    // The watcher stopped reading while the walker was still on its way: catch up first.
    let now = walker.view.tick;
    watcher.wait_until(DEADLINE, "the watcher caught up", |view| view.tick >= now).await.unwrap();

    let states_before = watcher.view.states_received;
    let updates_before = watcher.view.updates;
    // The walker's last tick, once it is done: the watcher watches until it has seen it.
    let (done, last_tick) = tokio::sync::watch::channel(None::<u64>);
    let walking = async {
        let mut truth = HashMap::new();
        let mut told: Option<(u64, EntityState)> = None;
        for keys in [Keys::RIGHT, Keys::UP, Keys::LEFT | Keys::DOWN, Keys::empty()] {
            walker.press(keys).await.unwrap();
            let until = walker.view.tick + 15;
            while walker.view.tick < until {
                let view = tokio::time::timeout(DEADLINE, walker.receive()).await.unwrap().unwrap();
                let me = view.me.unwrap();
                // A tick with no update went as the one before said: else it would have come.
                if let Some((tick, state)) = told {
                    for quiet in tick + 1..view.tick {
                        truth.insert(quiet, extrapolate(&state, tick, quiet, view.tick_seconds));
                    }
                }
                truth.insert(view.tick, me.position);
                told = Some((view.tick, me));
            }
        }
        done.send_replace(Some(walker.view.tick));
        truth
    };
    let watching = async {
        let mut seen = HashMap::new();
        loop {
            let view = tokio::time::timeout(DEADLINE, watcher.receive()).await.unwrap().unwrap();
            seen.insert(view.tick, view.other(walker_id).unwrap().position);
            if last_tick.borrow().is_some_and(|last| view.tick >= last) {
                return seen;
            }
        }
    };

    let (truth, seen) = tokio::join!(walking, watching);
    let compared: Vec<f32> =
        seen.iter().filter_map(|(tick, position)| Some(truth.get(tick)?.distance(*position))).collect();
    // The watcher hears at each of the walker's turns, and every few ticks between.
    assert!(compared.len() > 12, "the two players shared {} ticks", compared.len());
    let worst = compared.iter().copied().fold(0.0, f32::max);
    assert!(worst <= 0.3, "the watcher's view strayed {worst} units from the server's");
    // Four key changes and a few corrections, not one state per update.
    let states = watcher.view.states_received - states_before;
    let updates = watcher.view.updates - updates_before;
    assert!(states < updates + 20, "{states} states in {updates} updates (each update carries the watcher itself)");
}
