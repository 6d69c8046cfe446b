//! A whole cluster in one process: every server of a map on its own thread, every proxy
//! on its own runtime, speaking the real protocol over real loopback sockets. Behind
//! `tessera-server --all`, the client's embedded cluster, and the tests.

use crate::stats::ServerStats;
use crate::{ServerListeners, ServerSettings};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use tessera_proxy::ProxySettings;
use tessera_shared::cluster::{ClusterConfig, ClusterError};
use tessera_shared::ids::ServerId;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: String, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A running cluster. Dropping it stops every server and proxy in it.
pub struct LocalCluster {
    config: ClusterConfig,
    shutdown: CancellationToken,
    threads: Vec<JoinHandle<()>>,
    stats: HashMap<ServerId, Arc<ServerStats>>,
}

impl LocalCluster {
    /// Starts `cluster` on the addresses it names.
    pub fn start(cluster: ClusterConfig, shutdown: CancellationToken) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, shutdown, false, false)
    }

    /// Starts `cluster` with every listener on a free loopback port instead of the
    /// ones it names: for tests, and for a player's embedded cluster.
    pub fn start_ephemeral(cluster: ClusterConfig) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, CancellationToken::new(), true, false)
    }

    /// As [`Self::start_ephemeral`], with every server subscribing to every foreign
    /// region: the broadcast baseline that region subscriptions are measured against.
    pub fn start_ephemeral_broadcast(cluster: ClusterConfig) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, CancellationToken::new(), true, true)
    }

    fn launch(
        mut config: ClusterConfig,
        shutdown: CancellationToken,
        ephemeral: bool,
        broadcast_baseline: bool,
    ) -> Result<Self, LocalClusterError> {
        let bind = |what: String, addr: SocketAddr| {
            let addr = if ephemeral { SocketAddr::from(([127, 0, 0, 1], 0)) } else { addr };
            TcpListener::bind(addr).map_err(|source| LocalClusterError::Bind { what, addr, source })
        };
        let mut servers = Vec::new();
        for server in &mut config.servers {
            let listeners = ServerListeners {
                proxy: bind(format!("{} proxy port", server.id), server.proxy_bind)?,
                peer: bind(format!("{} peer port", server.id), server.peer_bind)?,
            };
            if ephemeral {
                server.proxy_bind = listeners.proxy.local_addr()?;
                server.peer_bind = listeners.peer.local_addr()?;
                (server.proxy_public, server.peer_public) = (None, None);
            }
            servers.push((server.id, listeners));
        }
        let mut proxies = Vec::new();
        for proxy in &mut config.proxies {
            let listener = bind(format!("{} client port", proxy.id), proxy.client_bind)?;
            if ephemeral {
                proxy.client_bind = listener.local_addr()?;
                proxy.client_public = None;
            }
            proxies.push((proxy.id, listener));
        }
        let mut threads = Vec::new();
        let mut stats = HashMap::new();
        for (id, listeners) in servers {
            let mut settings = ServerSettings::new(config.clone(), id)?;
            settings.broadcast_baseline = broadcast_baseline;
            stats.insert(id, settings.stats.clone());
            let shutdown = shutdown.clone();
            threads.push(std::thread::Builder::new().name(format!("server-{}", id.0)).spawn(move || {
                crate::run(settings, listeners, shutdown);
            })?);
        }
        for (id, listener) in proxies {
            let settings = ProxySettings { id, cluster: config.clone() };
            threads.push(tessera_proxy::spawn_thread(settings, listener, shutdown.clone())?);
        }
        Ok(Self { config, shutdown, threads, stats })
    }

    /// The map as running, with the real addresses.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Live figures of server `id`.
    pub fn stats(&self, id: ServerId) -> &ServerStats {
        &self.stats[&id]
    }

    /// Where players connect.
    pub fn proxy_addresses(&self) -> Vec<String> {
        self.config.proxies.iter().map(|p| p.client_address()).collect()
    }

    /// Blocks until the cluster is shut down.
    pub fn wait(mut self) {
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
