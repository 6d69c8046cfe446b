//! The cluster a client starts inside itself when none is named: the default map's
//! servers and proxies (`tessera_cluster`), its world kept in the player's data
//! directory, and a few wandering bots (`tessera_bots`), so a newcomer's first window
//! shows people walking about and, now and then, talking. Dropping it stops them all.

use std::time::Duration;
use tessera_bots::swarm::{Swarm, SwarmPlan};
use tessera_cluster::LocalCluster;
use tessera_shared::bridge::NetRuntime;
use tessera_shared::cluster::ClusterConfig;

/// The cluster, and the bots playing in it.
pub struct EmbeddedCluster {
    /// The bots, and the runtime they were launched from: dropping the swarm ends them
    /// (their thread with them), before the cluster goes.
    _bots: Option<(NetRuntime, Swarm)>,
    cluster: LocalCluster,
}

impl EmbeddedCluster {
    /// Starts `cluster` with `bots` wandering bots in it.
    pub fn start(cluster: ClusterConfig, bots: usize) -> Result<Self, String> {
        let data = tessera_store::platform_data_dir()
            .ok_or("this platform has no data directory for this user, to keep the world in")?;
        let store = tessera_store::StoreLocation::in_data_dir(&data);
        let cluster = LocalCluster::start_ephemeral(cluster, store)
            .map_err(|err| format!("cannot start the local cluster: {err}"))?;
        let bots = (bots > 0)
            .then(|| {
                let runtime = NetRuntime::new("bots", 1).map_err(|err| format!("cannot start the bots: {err}"))?;
                let plan = SwarmPlan {
                    proxies: cluster.proxy_addresses(),
                    bots,
                    warmup: Duration::from_secs(2),
                    // They wander for as long as the window is open.
                    measure: Duration::from_secs(365 * 24 * 60 * 60),
                    name_prefix: "Wanderer".into(),
                    conditioner: Default::default(),
                    // Now and then, so the world talks without drowning the chat.
                    chat_every: Some(Duration::from_secs(30)),
                    // A dozen bots beside the game's own threads.
                    threads: 1,
                };
                let swarm = {
                    let _entered = runtime.handle().enter();
                    Swarm::launch(plan)
                };
                Ok::<_, String>((runtime, swarm))
            })
            .transpose()?;
        Ok(Self { _bots: bots, cluster })
    }

    pub fn proxy_addresses(&self) -> Vec<String> {
        self.cluster.proxy_addresses()
    }
}
