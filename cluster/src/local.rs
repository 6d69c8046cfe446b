//! Every server and proxy of a map started in this process, each bound before any
//! starts (so a map of port 0s gets real ports, published in [`LocalCluster::config`]),
//! and all stopped together when the cluster is dropped. Every proxy holds the same
//! [`ProxyLimits`], and every server and proxy the same player store.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use tessera_proxy::stats::ProxyStats;
use tessera_proxy::{ProxyLimits, ProxySettings};
use tessera_server::checkpoints::StoreWriter;
use tessera_server::stats::ServerStats;
use tessera_server::{ServerListeners, ServerSettings};
use tessera_service::health::Health;
use tessera_shared::cluster::{ClusterConfig, ClusterError, Listener};
use tessera_shared::ids::{ProxyId, ServerId};
use tessera_shared::secret::{ClusterSecret, SecretError};
use tessera_store::{StoreError, StoreLocation};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind { what: Listener, addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot start a thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A running cluster. Dropping it stops every server and proxy in it.
pub struct LocalCluster {
    config: ClusterConfig,
    secret: ClusterSecret,
    shutdown: CancellationToken,
    store: StoreLocation,
    /// Each server's settings, its own stop and its thread.
    servers: HashMap<ServerId, (ServerSettings, CancellationToken, JoinHandle<()>)>,
    /// Each proxy's settings, its own stop, and its thread.
    proxies: HashMap<ProxyId, (ProxySettings, CancellationToken, JoinHandle<()>)>,
    stats: HashMap<ServerId, Arc<ServerStats>>,
    proxy_stats: HashMap<ProxyId, Arc<ProxyStats>>,
}

impl LocalCluster {
    /// Starts `cluster` on the addresses it names, its proxies holding `proxy_limits`,
    /// its players kept in `store`.
    pub fn start(
        cluster: ClusterConfig,
        proxy_limits: ProxyLimits,
        store: StoreLocation,
        shutdown: CancellationToken,
    ) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, store, shutdown, false, false, proxy_limits)
    }

    /// Starts `cluster` with every listener on a free loopback port instead of the
    /// ones it names, and the proxies' default limits: for tests, and for a player's
    /// embedded cluster.
    pub fn start_ephemeral(cluster: ClusterConfig, store: StoreLocation) -> Result<Self, LocalClusterError> {
        Self::start_ephemeral_limited(cluster, ProxyLimits::default(), store)
    }

    /// As [`Self::start_ephemeral`], the proxies holding `proxy_limits`.
    pub fn start_ephemeral_limited(
        cluster: ClusterConfig,
        proxy_limits: ProxyLimits,
        store: StoreLocation,
    ) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, store, CancellationToken::new(), true, false, proxy_limits)
    }

    /// As [`Self::start_ephemeral`], with every server subscribing to every foreign
    /// region: the broadcast baseline that region subscriptions are measured against.
    pub fn start_ephemeral_broadcast(cluster: ClusterConfig, store: StoreLocation) -> Result<Self, LocalClusterError> {
        Self::launch(cluster, store, CancellationToken::new(), true, true, ProxyLimits::default())
    }

    fn launch(
        mut config: ClusterConfig,
        store: StoreLocation,
        shutdown: CancellationToken,
        ephemeral: bool,
        broadcast_baseline: bool,
        proxy_limits: ProxyLimits,
    ) -> Result<Self, LocalClusterError> {
        let mut bound: HashMap<Listener, TcpListener> = HashMap::new();
        config.rebind(|what, addr| {
            let addr = if ephemeral { SocketAddr::from(([127, 0, 0, 1], 0)) } else { addr };
            let bind_error = |source| LocalClusterError::Bind { what, addr, source };
            let listener = match what {
                Listener::Players(_) => bind_players(addr),
                _ => TcpListener::bind(addr),
            }
            .map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            bound.insert(what, listener);
            Ok::<_, LocalClusterError>(local)
        })?;
        let mut take = |what| bound.remove(&what).expect("rebind bound every listener of the map");
        let servers: Vec<_> = config
            .servers
            .iter()
            .map(|s| {
                (s.id, ServerListeners { proxy: take(Listener::Proxies(s.id)), peer: take(Listener::Peers(s.id)) })
            })
            .collect();
        let proxies: Vec<_> = config.proxies.iter().map(|p| (p.id, take(Listener::Players(p.id)))).collect();
        // A secret of its own: nothing outside this process can join its links.
        let secret = ClusterSecret::generate()?;
        let mut running_servers = HashMap::new();
        let mut stats = HashMap::new();
        for (id, listeners) in servers {
            let mut settings = ServerSettings::new(config.clone(), id, secret.clone())?;
            settings.broadcast_baseline = broadcast_baseline;
            stats.insert(id, settings.stats.clone());
            let stop = shutdown.child_token();
            let thread = spawn_server(settings.clone(), listeners, &store, stop.clone())?;
            running_servers.insert(id, (settings, stop, thread));
        }
        let mut proxy_stats = HashMap::new();
        let mut running_proxies = HashMap::new();
        for (id, listener) in proxies {
            let settings = ProxySettings {
                limits: proxy_limits.clone(),
                ..ProxySettings::new(id, config.clone(), secret.clone(), store.clone())
            };
            proxy_stats.insert(id, settings.stats.clone());
            let stop = shutdown.child_token();
            let thread = tessera_proxy::spawn_thread(settings.clone(), listener, stop.clone())?;
            running_proxies.insert(id, (settings, stop, thread));
        }
        Ok(Self {
            config,
            secret,
            shutdown,
            store,
            servers: running_servers,
            proxies: running_proxies,
            stats,
            proxy_stats,
        })
    }

    /// The map as running, with the real addresses.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The secret this cluster made for itself at start: what a process outside it
    /// would need to join its internal links.
    pub fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// Live figures of server `id`.
    pub fn stats(&self, id: ServerId) -> &ServerStats {
        &self.stats[&id]
    }

    /// Live figures of proxy `id`.
    pub fn proxy_stats(&self, id: ProxyId) -> &ProxyStats {
        &self.proxy_stats[&id]
    }

    /// Every server's and proxy's health, for the process's probes.
    pub fn health(&self) -> Vec<Arc<Health>> {
        let servers = self.servers.values().map(|(settings, ..)| settings.health.clone());
        servers.chain(self.proxies.values().map(|(settings, ..)| settings.health.clone())).collect()
    }

    /// Where players connect.
    pub fn proxy_addresses(&self) -> Vec<String> {
        self.config.proxies.iter().map(|p| p.client_address()).collect()
    }

    /// Stops proxy `id` (its players' connections close) and waits until it is gone:
    /// a proxy lost, for tests of what its players and servers do then.
    pub fn stop_proxy(&mut self, id: ProxyId) {
        if let Some((_, stop, thread)) = self.proxies.remove(&id) {
            stop.cancel();
            let _ = thread.join();
        }
    }

    /// Stops proxy `id` and starts it again on the same address, as a rolling restart
    /// does: its players resume their sessions through the other proxies meanwhile.
    pub fn restart_proxy(&mut self, id: ProxyId) -> Result<(), LocalClusterError> {
        let (settings, stop, thread) = self.proxies.remove(&id).expect("a proxy of the map");
        stop.cancel();
        let _ = thread.join();
        let addr = self.config.proxy(id)?.client_bind;
        let listener = TcpListener::bind(addr).map_err(|source| LocalClusterError::Bind {
            what: Listener::Players(id),
            addr,
            source,
        })?;
        let stop = self.shutdown.child_token();
        let thread = tessera_proxy::spawn_thread(settings.clone(), listener, stop.clone())?;
        self.proxies.insert(id, (settings, stop, thread));
        Ok(())
    }

    /// Stops server `id` (it saves its players first, as on SIGTERM) and starts it again
    /// on the same addresses: a server restarted, for tests of what its players, its
    /// proxies and its peers do meanwhile.
    pub fn restart_server(&mut self, id: ServerId) -> Result<(), LocalClusterError> {
        let (settings, stop, thread) = self.servers.remove(&id).expect("a server of the map");
        stop.cancel();
        let _ = thread.join();
        let listeners = ServerListeners::bind(&self.config, id).map_err(LocalClusterError::Thread)?;
        let stop = self.shutdown.child_token();
        let thread = spawn_server(settings.clone(), listeners, &self.store, stop.clone())?;
        self.servers.insert(id, (settings, stop, thread));
        Ok(())
    }

    /// Blocks until the cluster is shut down.
    pub fn wait(mut self) {
        self.join_all();
    }

    fn join_all(&mut self) {
        let servers = self.servers.drain().map(|(_, (_, _, thread))| thread);
        let proxies = self.proxies.drain().map(|(_, (_, _, thread))| thread);
        for thread in servers.chain(proxies).collect::<Vec<_>>() {
            let _ = thread.join();
        }
    }
}

/// Runs a server on a thread of its own, saving to `store`, until `stop`.
fn spawn_server(
    settings: ServerSettings,
    listeners: ServerListeners,
    store: &StoreLocation,
    stop: CancellationToken,
) -> Result<JoinHandle<()>, LocalClusterError> {
    let writer = StoreWriter::start(store.clone(), settings.stats.clone())?;
    let name = format!("server-{}", settings.id.0);
    Ok(std::thread::Builder::new().name(name).spawn(move || {
        tessera_server::run(settings, listeners, writer, stop);
    })?)
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.join_all();
    }
}

/// A player listener on `addr`; on port 0, on a port whose number is free for UDP too,
/// where the proxy sends its players' updates by datagram from (a port only TCP had
/// free would leave it sending everything by TCP, which the tests would not expect).
fn bind_players(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if addr.port() != 0 {
        return TcpListener::bind(addr);
    }
    let mut last = None;
    for _ in 0..32 {
        let udp = std::net::UdpSocket::bind(addr)?;
        match TcpListener::bind(udp.local_addr()?) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
}
