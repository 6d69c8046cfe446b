//! Region subscriptions: servers exchange only the regions their players can see, and
//! a server with nobody near a border receives nothing from across it. Measured
//! against the broadcast-everything baseline on the same scenario.

use crate::harness::{DEADLINE, centre_of, default_cluster, join, walk_to};
use std::time::Instant;
use tessera_server::local_cluster::LocalCluster;
use tessera_server::stats::ServerStats;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;

fn sum(cluster: &LocalCluster, counter: fn(&ServerStats) -> &std::sync::atomic::AtomicU64) -> u64 {
    cluster.config().servers.iter().map(|s| ServerStats::get(counter(cluster.stats(s.id)))).sum()
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One player per server walks from the spawn to its region's centre, then the peer
/// bytes are counted while each walks out to its region's outer corner and back.
async fn peer_bytes_while_walking_inside_regions(cluster: &LocalCluster) -> u64 {
    let mut walks = Vec::new();
    for id in 1..=4u16 {
        let mut player = join(cluster, usize::from(id) % 2, &format!("walker-{id}")).await;
        let centre = centre_of(cluster, ServerId(id));
        walk_to(&mut player, centre, |_| {}).await;
        walks.push((player, centre));
    }
    let before = sum(cluster, |s| &s.peer_traffic.bytes_out);
    let world_centre = cluster.config().region_map().world_size() / 2.0;
    let mut tasks = Vec::new();
    for (mut player, centre) in walks {
        tasks.push(tokio::spawn(async move {
            let outward = centre + (centre - world_centre).normalize() * 250.0;
            walk_to(&mut player, outward, |_| {}).await;
            walk_to(&mut player, centre, |_| {}).await;
            player
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    sum(cluster, |s| &s.peer_traffic.bytes_out) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_send_far_less_than_broadcasting() {
    let regions = default_cluster();
    let subscribed = peer_bytes_while_walking_inside_regions(&regions).await;
    drop(regions);
    let broadcast = LocalCluster::start_ephemeral_broadcast(ClusterConfig::default_local()).unwrap();
    let everything = peer_bytes_while_walking_inside_regions(&broadcast).await;
    println!("peer bytes, same walk: region subscriptions {subscribed}, broadcast baseline {everything}");
    assert!(everything > 1000, "the baseline did send the walk: {everything} bytes");
    // What subscriptions still send is the unsubscribe margin: a region centre is
    // within it of the two nearest borders, so those two peers see the walk start and stop.
    assert!(subscribed * 3 < everything, "subscriptions {subscribed} bytes vs broadcast {everything} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_near_a_border_means_no_subscriptions() {
    let cluster = default_cluster();
    let mut player = join(&cluster, 0, "hermit").await;
    // At the spawn, by the four-way corner, the player's server subscribes across.
    wait_for("a subscription from the corner", || sum(&cluster, |s| &s.subscriptions_out) > 0).await;
    walk_to(&mut player, Vec2::new(300.0, 300.0), |_| {}).await;
    wait_for("every subscription dropped", || {
        sum(&cluster, |s| &s.subscriptions_out) == 0 && sum(&cluster, |s| &s.subscriptions_in) == 0
    })
    .await;
    let before = sum(&cluster, |s| &s.peer_traffic.bytes_out);
    let seen = player.view.updates;
    player.wait_until(DEADLINE, "a second of updates", |view| view.updates >= seen + 20).await.unwrap();
    assert_eq!(sum(&cluster, |s| &s.peer_traffic.bytes_out), before, "no peer traffic while nobody is near a border");
    assert_eq!(sum(&cluster, |s| &s.ghosts), 0);
}
