//! Shared test scaffolding: a local cluster on free ports and players joined to it.

use std::time::Duration;
use tessera_cluster::LocalCluster;
use tessera_player::{Player, Rejoin, WorldView};
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;

/// Generous: CI shares two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The default map (2×2 regions, 4 servers, 2 proxies) on free loopback ports.
pub fn default_cluster() -> LocalCluster {
    LocalCluster::start_ephemeral(ClusterConfig::default_local()).expect("the local cluster starts")
}

/// Joins `name` through the cluster's `proxy`-th proxy, retrying while the proxy is
/// still dialing its servers, and waits for the first update.
pub async fn join(cluster: &LocalCluster, proxy: usize, name: &str) -> Player {
    let addr = cluster.proxy_addresses()[proxy].clone();
    let joining = Rejoin::new(vec![addr], name).join_within(DEADLINE).await;
    let mut player = joining.unwrap_or_else(|err| panic!("{name} could not join: {err}"));
    player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    player
}

/// Walks `player` to `target`, steering as a person would (keys only when the direction
/// changes), calling `check` on every update received on the way; then stops.
pub async fn walk_to(player: &mut Player, target: Vec2, check: impl FnMut(&WorldView)) {
    player.walk_to(target, WALK_DEADLINE, check).await.unwrap();
}
/// Walking the length of a region takes about five seconds.
const WALK_DEADLINE: Duration = Duration::from_secs(60);

/// The centre of the region owned by `server` on the default map.
pub fn centre_of(cluster: &LocalCluster, server: ServerId) -> Vec2 {
    let map = cluster.config().region_map();
    let region = map.regions_of(server).next().expect("every server owns a region");
    let (min, max) = map.bounds(region);
    (min + max) / 2.0
}
