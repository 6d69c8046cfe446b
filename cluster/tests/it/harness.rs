//! Shared test scaffolding: a local cluster on free ports with a store of its own, and
//! players joined to it (each name one player, whose key derives from it as a bot's).

use std::ops::Deref;
use std::time::Duration;
use tessera_bots::swarm::bot_identity;
use tessera_cluster::LocalCluster;
use tessera_player::{Player, Rejoin, WorldView};
use tessera_proxy::ProxyLimits;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;
use tessera_store::StoreLocation;

/// Generous: CI shares two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A local cluster and the directory of its player store, removed after it stops.
pub struct TestCluster {
    // Declared first: dropped (every server stopped and its players saved) before the
    // directory goes.
    cluster: LocalCluster,
    pub data: tempfile::TempDir,
}

impl Deref for TestCluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl TestCluster {
    /// `map` on free loopback ports, its proxies holding `limits`, its store in `data`
    /// (a fresh directory, or that of a cluster that ran before).
    pub fn start_in(map: ClusterConfig, limits: ProxyLimits, data: tempfile::TempDir) -> Self {
        let store = StoreLocation::in_data_dir(data.path());
        Self::start_with(map, limits, store, data)
    }

    /// As [`Self::start_in`], the store at `store` (a PostgreSQL database, say).
    pub fn start_with(map: ClusterConfig, limits: ProxyLimits, store: StoreLocation, data: tempfile::TempDir) -> Self {
        let cluster = LocalCluster::start_ephemeral_limited(map, limits, store).expect("the local cluster starts");
        Self { cluster, data }
    }

    /// Stops server `id` and starts it again, on the same addresses.
    pub fn restart_server(&mut self, id: tessera_shared::ids::ServerId) {
        self.cluster.restart_server(id).expect("the server starts again");
    }

    /// Stops proxy `id` and starts it again, on the same address.
    pub fn restart_proxy(&mut self, id: tessera_shared::ids::ProxyId) {
        self.cluster.restart_proxy(id).expect("the proxy starts again");
    }

    /// Stops proxy `id`: its players' connections close.
    pub fn stop_proxy(&mut self, id: tessera_shared::ids::ProxyId) {
        self.cluster.stop_proxy(id);
    }

    /// Stops every server and proxy (each server saving its players first) and gives
    /// back the store's directory, for a cluster started again later.
    pub fn stop(self) -> tempfile::TempDir {
        drop(self.cluster);
        self.data
    }
}

/// A fresh directory for a cluster's store.
pub fn fresh_data() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// The default map (2×2 regions, 4 servers, 2 proxies) on free loopback ports.
pub fn default_cluster() -> TestCluster {
    TestCluster::start_in(ClusterConfig::default_local(), ProxyLimits::default(), fresh_data())
}

/// Joins `name` through the cluster's `proxy`-th proxy, retrying while the proxy is
/// still dialing its servers, and waits for the first update.
pub async fn join(cluster: &LocalCluster, proxy: usize, name: &str) -> Player {
    join_at(cluster.proxy_addresses()[proxy].clone(), name).await
}

/// Joins `name` through the proxy at `addr`, retrying while it is not up yet, and waits
/// for the first update.
pub async fn join_at(addr: String, name: &str) -> Player {
    let joining = Rejoin::new(vec![addr], bot_identity(name), name).join_within(DEADLINE).await;
    let mut player = joining.unwrap_or_else(|err| panic!("{name} could not join: {err}"));
    player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    player
}

/// Runs `work` while `player` stands by, receiving (so its proxy hears it is there, as it
/// does of a real client, whose network task always receives).
pub async fn standing_by<T>(player: &mut Player, work: impl std::future::Future<Output = T>) -> T {
    let receiving = async {
        loop {
            player.receive().await.expect("the player standing by stays in the game");
        }
    };
    tokio::select! {
        done = work => done,
        never = receiving => never,
    }
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
