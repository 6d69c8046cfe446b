//! Handoff: a player walks across every border of the default map, diagonally through
//! the four-way corner too, and never notices: exactly one server owns it at any
//! moment, only a server within tether of its position simulates it, its position
//! never jumps, and no input is lost or applied twice.

use crate::harness::{centre_of, default_cluster, join, walk_to};
use tessera_server::local_cluster::LocalCluster;
use tessera_server::stats::ServerStats;
use tessera_shared::ids::ServerId;

/// Players owned across the whole cluster, as the servers report it.
fn owned_players(cluster: &LocalCluster) -> u64 {
    cluster.config().servers.iter().map(|s| ServerStats::get(&cluster.stats(s.id).players)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walking_across_every_border_hands_off_seamlessly() {
    let cluster = default_cluster();
    let map = cluster.config().region_map();
    let tether = cluster.config().simulation.tether;
    let mut player = join(&cluster, 0, "traveller").await;
    let [one, two, three, four] = [1, 2, 3, 4].map(|id| centre_of(&cluster, ServerId(id)));
    // Around the square through every border, then diagonally through the corner, both ways.
    let route = [one, two, four, three, one, four, two, three];

    let mut owners = vec![player.view.server.unwrap()];
    let mut last_position = player.view.me.unwrap().position;
    for target in route {
        walk_to(&mut player, target, |view| {
            let me = view.me.unwrap().position;
            let server = view.server.unwrap();
            assert!(map.within_tether(server, me, tether), "{server} simulates the player at {me}, beyond its tether");
            // 200 units/s at 20 Hz is 10 units a tick: a handoff may cost a tick, never a jump.
            assert!(me.distance(last_position) <= 40.0, "position jumped from {last_position} to {me}");
            last_position = me;
            if owners.last() != Some(&server) {
                owners.push(server);
            }
            assert!(owned_players(&cluster) <= 1, "two servers own the one player");
        })
        .await;
        assert_eq!(player.view.server, map.owner_at(target), "owned by the server of {target}");
    }

    let handoffs: Vec<u16> = owners.iter().map(|s| s.0).collect();
    for id in 1..=4 {
        assert!(handoffs.contains(&id), "visited server {id}: {handoffs:?}");
    }
    assert!(handoffs.len() >= route.len(), "one handoff per border crossed at least: {handoffs:?}");
    assert_eq!(player.view.handoffs as usize, handoffs.len() - 1);
    assert_eq!(player.view.last_input, player.last_sent(), "every input applied");
    assert_eq!(player.view.inputs_applied, player.view.last_input, "no input applied twice");
    assert_eq!(owned_players(&cluster), 1);
    let total = |counter: fn(&ServerStats) -> &std::sync::atomic::AtomicU64| -> u64 {
        cluster.config().servers.iter().map(|s| ServerStats::get(counter(cluster.stats(s.id)))).sum()
    };
    assert_eq!(total(|s| &s.handoffs_in), total(|s| &s.handoffs_out));
    assert_eq!(total(|s| &s.handoffs_in) as usize, handoffs.len() - 1);
}
