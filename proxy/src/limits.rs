//! The front door's limits: how many connections a proxy holds, from one address and in
//! all; how fast one address may join; how many players it takes; how many bytes it
//! queues for one player; and how long a player may take over sending one frame. Each is a setting with a default sized for the benchmark
//! machine's cluster (see BENCHMARKS.md), a flag of `tessera-proxy` and
//! `tessera-cluster`, and a field for whoever builds [`ProxySettings`](crate::ProxySettings)
//! in code. Loopback is not exempt: a load test from one machine raises them.

use clap::Args;
use tessera_shared::link::admission::AdmissionLimits;
use tessera_shared::rate::Rate;

/// A proxy's limits at its player port.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ProxyLimits {
    /// Connections open at once on the player port, whether joining or playing; more
    /// are closed as soon as they are accepted, before the handshake. Above the player
    /// cap, so a joiner can still be told the cluster is full.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = ProxyLimits::DEFAULT.max_connections, value_parser = at_least_one)]
    pub max_connections: usize,
    /// Connections open at once from one address (for IPv6, one /64): a household, a
    /// LAN party or a NAT fits, while one address cannot hold more than about 1% of
    /// the proxy's connections.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = ProxyLimits::DEFAULT.max_connections_per_address, value_parser = at_least_one)]
    pub max_connections_per_address: usize,
    /// New connections (each one a join) per second from one address, sustained.
    #[arg(long, env = "TESSERA_JOINS_PER_SEC_PER_ADDRESS", default_value_t = ProxyLimits::DEFAULT.joins_per_sec_per_address, value_parser = positive_rate)]
    pub joins_per_sec_per_address: f64,
    /// New connections one address may make at once, on top of the sustained rate:
    /// everyone behind one address rejoining together after a server was lost.
    #[arg(long, env = "TESSERA_JOIN_BURST_PER_ADDRESS", default_value_t = ProxyLimits::DEFAULT.join_burst_per_address, value_parser = at_least_one)]
    pub join_burst_per_address: usize,
    /// Players playing through this proxy at once; one more is told the cluster is
    /// full. With the default map's two proxies, about what the benchmark machine's
    /// cluster holds within its tick budget.
    #[arg(long, env = "TESSERA_MAX_PLAYERS", default_value_t = ProxyLimits::DEFAULT.max_players, value_parser = at_least_one)]
    pub max_players: usize,
    /// Bytes queued for one player and not yet written to its socket; a player that
    /// lets more pile up is not reading, and is disconnected. Many seconds of the
    /// busiest updates the benchmark measured, and a handful of full views of a crowd.
    #[arg(long, env = "TESSERA_MAX_QUEUED_BYTES_PER_PLAYER", default_value_t = ProxyLimits::DEFAULT.max_queued_bytes_per_player, value_parser = at_least_one)]
    pub max_queued_bytes_per_player: usize,
    /// Milliseconds a player may take to finish sending a frame once its first byte
    /// arrived (a slowloris is closed after it). A player's frames are a few bytes long.
    #[arg(long, env = "TESSERA_FRAME_DEADLINE_MS", default_value_t = ProxyLimits::DEFAULT.frame_deadline_ms, value_parser = at_least_one_ms)]
    pub frame_deadline_ms: u64,
}

impl ProxyLimits {
    pub const DEFAULT: Self = Self {
        max_connections: 3_000,
        max_connections_per_address: 32,
        joins_per_sec_per_address: 2.0,
        join_burst_per_address: 32,
        max_players: 2_000,
        max_queued_bytes_per_player: 256 * 1024,
        frame_deadline_ms: 10_000,
    };
}

impl ProxyLimits {
    /// What the player door admits: each slot held for as long as its player plays.
    pub fn admission(&self) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            opens_per_address: Rate::new(self.joins_per_sec_per_address, self.join_burst_per_address as f64),
        }
    }
}

impl Default for ProxyLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(err) => Err(err.to_string()),
    }
}

fn at_least_one_ms(text: &str) -> Result<u64, String> {
    at_least_one(text).map(|n| n as u64)
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err("must be a positive number".into()),
        Err(err) => Err(err.to_string()),
    }
}
