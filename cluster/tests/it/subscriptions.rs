//! Region subscriptions, tick by tick on the in-process harness: servers exchange only
//! the cells their players can see, a subscriber hears only of the cells it asked for,
//! and with nobody near a border nothing crosses it. Measured in wire bytes against the
//! broadcast-everything baseline on the same walk.

use crate::stepper::{Stepper, centre_of};
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;

const SERVERS: [ServerId; 4] = [ServerId(1), ServerId(2), ServerId(3), ServerId(4)];

/// One player per server walks from its region's centre out toward the region's outer
/// corner and back; returns the bytes the servers sent each other meanwhile.
fn peer_bytes_while_walking_inside_regions(cluster: &mut Stepper) -> u64 {
    let world_centre = cluster.map.world_size() / 2.0;
    let walkers: Vec<_> = SERVERS
        .iter()
        .map(|&server| {
            let centre = centre_of(&cluster.map, server);
            (cluster.join(0, &format!("walker-{}", server.0), centre), centre)
        })
        .collect();
    // Each joined at its region's centre: let the first subscriptions settle.
    for _ in 0..5 {
        cluster.step();
    }
    let before = cluster.peer_bytes();
    for (user, centre) in walkers {
        let outward = centre + (centre - world_centre).normalize() * 250.0;
        cluster.walk_to(user, outward, |_| {});
        cluster.walk_to(user, centre, |_| {});
    }
    cluster.peer_bytes() - before
}

#[test]
fn subscriptions_send_far_less_than_broadcasting() {
    let subscribed = peer_bytes_while_walking_inside_regions(&mut Stepper::default_cluster());
    let broadcasting = &mut Stepper::new(ClusterConfig::default_local(), true);
    let everything = peer_bytes_while_walking_inside_regions(broadcasting);
    println!("peer bytes, same walk: region subscriptions {subscribed}, broadcast baseline {everything}");
    assert!(everything > 1000, "the baseline did send the walk: {everything} bytes");
    // What subscriptions still send is the unsubscribe margin: a region centre is
    // within it of the two nearest borders, so those two peers see the walk start and stop.
    assert!(subscribed * 3 < everything, "subscriptions {subscribed} bytes vs broadcast {everything} bytes");
}

#[test]
fn nobody_near_a_border_means_no_subscriptions() {
    let mut cluster = Stepper::default_cluster();
    let hermit = cluster.join(0, "hermit", Vec2::new(1000.0, 1000.0));
    // By the four-way corner, the player's server subscribes across.
    cluster.step_until("a subscription from the corner", 5, |cluster| cluster.subscriptions(ServerId(1)) > 0);
    cluster.walk_to(hermit, Vec2::new(300.0, 300.0), |_| {});
    let subscribed = |cluster: &Stepper| SERVERS.iter().map(|&s| cluster.subscriptions(s)).sum::<usize>();
    cluster.step_until("every subscription dropped", 5, |cluster| subscribed(cluster) == 0);
    let before = cluster.peer_bytes();
    for _ in 0..20 {
        cluster.step();
    }
    assert_eq!(cluster.peer_bytes(), before, "no peer traffic while nobody is near a border");
    assert!(SERVERS.iter().all(|&s| cluster.ghosts(s) == 0));
}

#[test]
fn a_subscriber_hears_only_of_the_cells_it_subscribed_to() {
    let mut cluster = Stepper::default_cluster();
    // Either side of the border between servers 1 (west) and 2 (east), and a crowd
    // deeper in server 2's region that server 1 has no reason to see.
    let west = cluster.join(0, "west", Vec2::new(990.0, 512.0));
    cluster.join(1, "east", Vec2::new(1060.0, 512.0));
    for i in 0..5 {
        cluster.join(1, &format!("far-{i}"), Vec2::new(1900.0, 100.0 + 150.0 * i as f32));
    }
    cluster.walk_to(west, Vec2::new(1000.0, 512.0), |cluster| {
        for ghost in cluster.ghost_origins(ServerId(1)) {
            assert!(cluster.subscribed_to(ServerId(1), ghost.owner, ghost.cell), "{ghost:?} was never asked for");
        }
    });
    assert_eq!(cluster.ghosts(ServerId(1)), 1, "server 1 mirrors the one player near its border, not the crowd");
}
