//! The Tessera proxy: players connect here, never to a game server. The proxy dials
//! every server of the cluster map ([`server_links`]), accepts players
//! ([`client_links`]), has each prove who it is and finds where it was in the player
//! store ([`join`]), stamps each player's id on everything it forwards (its input, and
//! what it says once [`chat`] has bounded, cleaned and rated it), and
//! routes through one table ([`routing`]): input to the server that owns the player,
//! updates to the player's connection by user id, or by datagram to the address the
//! player bound ([`datagrams`]). Proxies never talk to each other.
//! The player port is the cluster's front door, and holds its [`limits`]: connections
//! (`tessera_shared::link::admission`), players ([`routing`]) and bytes queued per player ([`client_queue`]).

pub mod chat;
pub mod client_links;
pub mod client_queue;
pub mod datagrams;
pub mod join;
pub mod limits;
pub mod routing;
pub mod server_links;
pub mod stats;
pub mod tickets;

pub use limits::ProxyLimits;

use routing::Routing;
use stats::ProxyStats;
use std::sync::Arc;
use tessera_service::health::Health;
use tessera_shared::bridge::NetRuntime;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ProxyId;
use tessera_shared::secret::{ClusterSecret, SecretError};
use tessera_store::{Store, StoreError, StoreLocation};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Which proxy of which cluster this is, and its limits.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub id: ProxyId,
    pub cluster: ClusterConfig,
    pub limits: ProxyLimits,
    /// Its live figures, shared with whoever started it.
    pub stats: Arc<ProxyStats>,
    /// Whether its runtime turns, and whether it reaches a server: the host's probes.
    pub health: Arc<Health>,
    /// What proves this proxy a member of the cluster to the servers it dials.
    pub secret: ClusterSecret,
    /// The cluster's player store: who each player is, and where it was.
    pub store: StoreLocation,
    /// Whether players are sent their updates by datagram (UDP, on the player port's
    /// number) where they bind, or everything by TCP.
    pub datagrams: bool,
}

impl ProxySettings {
    /// Proxy `id` of `cluster`, holding `secret`, finding players in `store`, with the
    /// default limits.
    pub fn new(id: ProxyId, cluster: ClusterConfig, secret: ClusterSecret, store: StoreLocation) -> Self {
        Self {
            id,
            cluster,
            limits: ProxyLimits::default(),
            stats: Arc::default(),
            health: Health::new(id.to_string()),
            secret,
            store,
            datagrams: true,
        }
    }

    /// Refuses to run on addresses beyond loopback with the development secret: where
    /// this proxy listens for players, and where it dials the servers.
    pub fn check_secret(&self) -> Result<(), SecretError> {
        for me in self.cluster.proxies.iter().filter(|proxy| proxy.id == self.id) {
            self.secret.check_address("listening for players on", &me.client_bind.to_string())?;
        }
        for server in &self.cluster.servers {
            self.secret.check_address("dialing a server at", &server.proxy_address())?;
        }
        Ok(())
    }
}

/// Runs the proxy until `shutdown` is cancelled: one dialer per server, and the
/// client listener. Fails at once if the player store cannot be opened.
pub async fn run(
    settings: ProxySettings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), StoreError> {
    let store = Store::open(&settings.store).await?;
    let settings = Arc::new(settings);
    let datagrams = match listener.local_addr() {
        Ok(addr) if settings.datagrams => datagrams::open(addr),
        _ => None,
    };
    let routing = Arc::new(Routing::new(settings.stats.clone(), datagrams.clone()));
    if let Some(socket) = datagrams {
        tokio::spawn(datagrams::receive(socket, routing.clone(), shutdown.child_token()));
    }
    let (exporting, health) = (routing.clone(), settings.health.clone());
    let (id, stop_exporting) = (settings.id, shutdown.child_token());
    tokio::spawn(async move { exporting.stats.export(id, &health, stop_exporting).await });

    for server in &settings.cluster.servers {
        let (settings, routing, store) = (settings.clone(), routing.clone(), store.clone());
        tokio::spawn(server_links::maintain(settings, server.id, routing, store, shutdown.child_token()));
    }
    client_links::accept(settings, listener, routing, store, shutdown).await;
    Ok(())
}

/// Runs the proxy on a runtime of its own, on a thread of its own, until `shutdown`.
pub fn spawn_thread(
    settings: ProxySettings,
    listener: std::net::TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name = format!("proxy-{}", settings.id.0);
    let runtime = NetRuntime::new(&name, 1)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name(name).spawn(move || {
        runtime.0.block_on(async move {
            let listener = TcpListener::from_std(listener).expect("a bound listener converts to tokio");
            if let Err(err) = run(settings, listener, shutdown).await {
                tracing::error!("the proxy stopped: {err}");
            }
        });
    })
}
