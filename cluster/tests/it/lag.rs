//! Play over a slow, uneven link (the player crate's link conditioner, 75 ms each way
//! give or take 20: a 150 ms round trip): a player walks a loop around the four-way
//! corner, through four handoffs a lap, while another watches from the corner. Its
//! prediction must never snap (a correction over 4 units), at a handoff or anywhere,
//! and be off by at most a unit at p99; the watcher must see it within 2 units at p99.

use crate::harness::{DEADLINE, default_cluster};
use std::time::Duration;
use tessera_bots::swarm::bot_identity;
use tessera_player::smoothness::SNAP;
use tessera_player::steering::keys_toward;
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

/// The corrections seen: each own one, and each of the others shown.
#[derive(Default)]
struct Seen {
    own: Vec<f32>,
    others: Vec<f32>,
}

impl Seen {
    fn record(&mut self, player: &Player) {
        self.own.extend(player.smoothness.own);
        self.others.extend(&player.smoothness.others.moved);
        self.others.extend(std::iter::repeat_n(0.0, player.smoothness.others.unmoved));
    }
}

fn p99(samples: &mut [f32]) -> f32 {
    samples.sort_by(f32::total_cmp);
    samples.get(samples.len() * 99 / 100).copied().unwrap_or(0.0)
}

/// Walks `player` through `route`, steering as a person would, recording every update.
async fn walk(player: &mut Player, route: &[Vec2], seen: &mut Seen) {
    for &waypoint in route {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let me = player.prediction.position_at(std::time::Instant::now()).expect("a prediction");
            let keys = keys_toward(me, waypoint);
            if keys.is_empty() {
                break;
            }
            if keys != player.keys() {
                player.press(keys).await.unwrap();
            }
            tokio::time::timeout_at(deadline, player.receive()).await.expect("walking on").unwrap();
            seen.record(player);
        }
    }
    let stop = player.press(tessera_shared::components::Keys::empty()).await.unwrap();
    while player.view.last_input < stop {
        tokio::time::timeout(DEADLINE, player.receive()).await.expect("the stop applied").unwrap();
        seen.record(player);
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
        walk(&mut walker, &lap[..1], &mut Seen::default()).await;
        placed.send_replace(true);
        let handoffs_before = walker.view.handoffs;
        let mut seen = Seen::default();
        let route: Vec<Vec2> = lap.iter().cycle().skip(1).take(8).copied().collect();
        walk(&mut walker, &route, &mut seen).await;
        done.send_replace(true);
        (seen, walker.view.handoffs - handoffs_before)
    };
    let watching = async {
        walk(&mut watcher, &[corner + Vec2::new(20.0, 0.0)], &mut Seen::default()).await;
        let mut seen = Seen::default();
        while !*finished.borrow() {
            tokio::time::timeout(DEADLINE, watcher.receive()).await.expect("watching").unwrap();
            if *walker_placed.borrow() && watcher.view.other(walker_id).is_some() {
                seen.record(&watcher);
            }
        }
        seen
    };
    let ((mut walked, handoffs), mut watched) = tokio::join!(walking, watching);

    assert!(handoffs >= 6, "two laps around the corner cross eight borders: {handoffs} handoffs");
    assert!(walked.own.len() > 100, "{} states checked", walked.own.len());
    let snaps: Vec<f32> = walked.own.iter().copied().filter(|&off| off > SNAP).collect();
    assert!(snaps.is_empty(), "the walker's prediction snapped: {snaps:?}");
    let own = p99(&mut walked.own);
    assert!(own <= 1.0, "own corrections p99 {own} units");
    let others = p99(&mut watched.others);
    let worst = |samples: &[f32]| samples.iter().copied().fold(0.0, f32::max);
    println!(
        "{handoffs} handoffs; own: {} checked, p99 {own:.3}, max {:.3}; others: {} checked, p99 {others:.3}, max {:.3}",
        walked.own.len(),
        worst(&walked.own),
        watched.others.len(),
        worst(&watched.others)
    );
    assert!(others <= 2.0, "the watcher saw the walker off by {others} units at p99");
}
