//! What one server is: its place in the cluster map and its simulation settings, read
//! by every plugin.

use crate::stats::ServerStats;
use bevy::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tessera_service::health::Health;
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
    /// Whether it ticks, and whether players can reach it: the host's probes.
    pub health: Arc<Health>,
    /// What proves this server a member of the cluster to its proxies and peers.
    pub secret: ClusterSecret,
    /// How often every player here is saved to the store: the most of a player's
    /// movement a server killed without warning can lose.
    pub checkpoint_interval: Duration,
    /// How long a player whose proxy was lost stays, standing still and seen, for its
    /// session to be resumed through another proxy; then it is saved and removed.
    pub park_grace: Duration,
    /// Ticks apart every player is sent updates, held there whatever the load; `None`
    /// follows the load ([`crate::pacing`]).
    pub update_every: Option<u8>,
}

/// The default [`ServerSettings::park_grace`].
pub const PARK_GRACE: Duration = Duration::from_secs(20);

/// The default [`ServerSettings::checkpoint_interval`].
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

impl ServerSettings {
    pub fn new(cluster: ClusterConfig, id: ServerId, secret: ClusterSecret) -> Result<Self, ClusterError> {
        cluster.server(id)?;
        Ok(Self {
            id,
            map: cluster.region_map(),
            broadcast_baseline: false,
            stats: Arc::default(),
            health: Health::new(id.to_string()),
            cluster,
            secret,
            checkpoint_interval: CHECKPOINT_INTERVAL,
            park_grace: PARK_GRACE,
            update_every: None,
        })
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

    /// How long after each beat this server ticks.
    pub fn beat_phase(&self) -> Duration {
        self.cluster.beat_phase(self.id)
    }

    /// [`Self::park_grace`] in ticks.
    pub fn park_ticks(&self) -> u64 {
        (self.park_grace.as_secs_f64() * self.cluster.simulation.tick_hz).round() as u64
    }

    /// [`Self::checkpoint_interval`] in ticks, at least one.
    pub fn checkpoint_ticks(&self) -> u64 {
        (self.checkpoint_interval.as_secs_f64() * self.cluster.simulation.tick_hz).round().max(1.0) as u64
    }

    pub fn view_radius(&self) -> f32 {
        self.cluster.simulation.view_radius
    }
}
