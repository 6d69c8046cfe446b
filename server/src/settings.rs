//! What one server is: its place in the cluster map and its simulation settings, read
//! by every plugin.

use crate::stats::ServerStats;
use bevy::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tessera_shared::cluster::{ClusterConfig, ClusterError};
use tessera_shared::ids::ServerId;
use tessera_shared::region_map::RegionMap;
use tessera_shared::secret::{ClusterSecret, SecretError};

/// What one server is: its place in the cluster and its simulation settings.
#[derive(Resource, Clone, Debug)]
pub struct ServerSettings {
    pub id: ServerId,
    pub cluster: ClusterConfig,
    pub map: RegionMap,
    /// Subscribe to every foreign region and send every player everything, whatever
    /// it sees: the baseline region subscriptions and interest are measured against,
    /// never for play.
    pub broadcast_baseline: bool,
    pub stats: Arc<ServerStats>,
    /// What proves this server a member of the cluster to its proxies and peers.
    pub secret: ClusterSecret,
}

impl ServerSettings {
    pub fn new(cluster: ClusterConfig, id: ServerId, secret: ClusterSecret) -> Result<Self, ClusterError> {
        cluster.server(id)?;
        Ok(Self { id, map: cluster.region_map(), broadcast_baseline: false, stats: Arc::default(), cluster, secret })
    }

    /// Refuses to run on addresses beyond loopback with the development secret: where
    /// this server listens, and where it dials its peers.
    pub fn check_secret(&self) -> Result<(), SecretError> {
        let me = self.cluster.server(self.id).expect("checked in new");
        self.secret.check_address("listening for proxies on", &me.proxy_bind.to_string())?;
        self.secret.check_address("listening for peers on", &me.peer_bind.to_string())?;
        for peer in self.cluster.servers.iter().filter(|peer| peer.id > self.id) {
            self.secret.check_address("dialing a peer at", &peer.peer_address())?;
        }
        Ok(())
    }

    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cluster.simulation.tick_hz)
    }

    pub fn view_radius(&self) -> f32 {
        self.cluster.simulation.view_radius
    }
}
