//! The walking skeleton: key presses go client → proxy → server, positions come back
//! server → proxy → client, and other players see the move.

use crate::harness::{DEADLINE, default_cluster, join};
use tessera_shared::components::Keys;

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
            view.others.contains_key(&walker_id) && view.names.get(&walker_id).is_some_and(|n| n == "walker")
        })
        .await
        .unwrap();
    let start = watcher.view.others[&walker_id].position;

    let seq = walker.press(Keys::RIGHT).await.unwrap();
    walker.wait_until(DEADLINE, "the input applied", |view| view.last_input >= seq).await.unwrap();
    let pressed_at = walker.view.me.unwrap().position;
    walker
        .wait_until(DEADLINE, "the walker moving right", |view| view.me.unwrap().position.x > pressed_at.x + 20.0)
        .await
        .unwrap();
    let moved = walker.view.me.unwrap();
    assert!((moved.position.y - start.y).abs() < 1e-3, "walking right keeps y");
    assert!(moved.velocity.x > 0.0 && moved.velocity.y == 0.0);

    watcher
        .wait_until(DEADLINE, "the watcher seeing the walker move right", |view| {
            view.others.get(&walker_id).is_some_and(|other| other.position.x > start.x + 20.0)
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
