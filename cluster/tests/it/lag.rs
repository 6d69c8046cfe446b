//! Play over a slow, uneven link (the player crate's link conditioner, 75 ms each way
//! give or take 20: a 150 ms round trip): a player walks a loop around the four-way
//! corner, through four handoffs a lap, while another watches from the corner. Its
//! prediction must never snap (a correction over 4 units), and be off by at most a unit
//! at p99; the watcher must see it within 2 units at p99. An input that reaches its
//! server later than its tick allows (the suite's other tests starve the machine now
//! and then) has its ticks walked again, no correction; one too late for that makes a
//! correction the player is told of as such: those measure the machine, not the
//! prediction, and are reported apart.

use crate::harness::{DEADLINE, default_cluster};
use std::time::Duration;
use tessera_bots::swarm::bot_identity;
use tessera_player::smoothness::SmoothnessSeen;
use tessera_player::{Conditioner, Player, Rejoin};
use tessera_shared::Vec2;

fn lagged() -> Conditioner {
    Conditioner { latency: Duration::from_millis(75), jitter: Duration::from_millis(20), ..Default::default() }
}

async fn join_lagged(proxy: String, name: &str) -> Player {
    let mut rejoin = Rejoin::new(vec![proxy], bot_identity(name), name).conditioned(lagged());
    let mut player = rejoin.join_within(DEADLINE).await.unwrap_or_else(|err| panic!("{name} could not join: {err}"));
    player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    player
}

/// Walks `player` through `route` without stopping at its waypoints, recording every
/// update.
async fn walk(player: &mut Player, route: &[Vec2], seen: &mut SmoothnessSeen) {
    for &waypoint in route {
        player.walk_through(waypoint, DEADLINE, |player| seen.record(&player.smoothness)).await.unwrap();
    }
    let stop = player.press(tessera_shared::components::Keys::empty()).await.unwrap();
    while player.view.last_input < stop {
        tokio::time::timeout(DEADLINE, player.receive()).await.expect("the stop applied").unwrap();
        seen.record(&player.smoothness);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_walks_around_the_four_way_corner_at_150_ms_without_a_snap() {
    let cluster = default_cluster();
    let proxies = cluster.proxy_addresses();
    let (mut walker, mut watcher) = tokio::join!(
        join_lagged(proxies[0].clone(), "lagged-walker"),
        join_lagged(proxies[1].clone(), "lagged-watcher")
    );
    let corner = cluster.config().region_map().region_size() * Vec2::ONE;
    let walker_id = walker.view.me.unwrap().id;
    // To their places: the walker just inside one region, the watcher at the corner.
    let lap = [Vec2::new(-120.0, -120.0), Vec2::new(120.0, -120.0), Vec2::new(120.0, 120.0), Vec2::new(-120.0, 120.0)]
        .map(|offset| corner + offset);
    // The watcher walks to the corner and watches from there, receiving all along as a
    // client's network task does; what it sees counts once the walker starts its laps.
    let (placed, walker_placed) = tokio::sync::watch::channel(false);
    let (done, finished) = tokio::sync::watch::channel(false);
    let walking = async {
        walk(&mut walker, &lap[..1], &mut SmoothnessSeen::default()).await;
        placed.send_replace(true);
        let handoffs_before = walker.view.handoffs;
        let mut seen = SmoothnessSeen::default();
        let route: Vec<Vec2> = lap.iter().cycle().skip(1).take(8).copied().collect();
        walk(&mut walker, &route, &mut seen).await;
        done.send_replace(true);
        (seen, walker.view.handoffs - handoffs_before)
    };
    let watching = async {
        walk(&mut watcher, &[corner + Vec2::new(20.0, 0.0)], &mut SmoothnessSeen::default()).await;
        let mut seen = SmoothnessSeen::default();
        while !*finished.borrow() {
            tokio::time::timeout(DEADLINE, watcher.receive()).await.expect("watching").unwrap();
            if *walker_placed.borrow() && watcher.view.other(walker_id).is_some() {
                seen.record(&watcher.smoothness);
            }
        }
        seen
    };
    let ((walked, handoffs), watched) = tokio::join!(walking, watching);

    let own = SmoothnessSeen::units(&walked.own, 0.99);
    let others = SmoothnessSeen::units(&watched.others, 0.99);
    println!(
        "{handoffs} handoffs; own: {} checked, p99 {own:.2}, max {:.2}, {} snaps ({} at handoffs, {} after late inputs); others: {} checked, p99 {others:.2}, max {:.2}",
        walked.own.len(),
        SmoothnessSeen::max_units(&walked.own),
        walked.own_snaps,
        walked.own_snaps_at_handoffs,
        walked.own_snaps_after_late_inputs,
        watched.others.len(),
        SmoothnessSeen::max_units(&watched.others),
    );
    assert!(handoffs >= 6, "two laps around the corner cross eight borders: {handoffs} handoffs");
    // Updates come at every turn and acknowledgement, and a few ticks apart between.
    assert!(walked.own.len() > 40, "{} states checked", walked.own.len());
    assert_eq!(walked.own_snaps_at_handoffs, 0, "the walker's prediction snapped at a handoff");
    let mispredicted = walked.own_snaps - walked.own_snaps_after_late_inputs;
    assert_eq!(mispredicted, 0, "the walker's prediction snapped {mispredicted} times");
    // p99 within a unit: at most 1 % of the corrections over it, or one (with an update
    // every few ticks, two laps check fewer than a hundred states).
    let over_a_unit =
        walked.own.count_between(101, u64::MAX) - walked.own_after_late_input.count_between(101, u64::MAX);
    let allowed = (walked.own.len() / 100).max(1);
    assert!(over_a_unit <= allowed, "{over_a_unit} own corrections over a unit (p99 {own}), {allowed} allowed");
    // The same for the watcher, within 2 units.
    let over_two = watched.others.count_between(201, u64::MAX);
    let allowed = (watched.others.len() / 100).max(1);
    assert!(over_two <= allowed, "the watcher saw the walker off by over 2 units {over_two} times (p99 {others})");
}
