//! The server's TCP transport: a tokio runtime beside the app, the listener for
//! proxies ([`proxy_link`]), the listener and dialers for peer servers ([`peer_link`]),
//! every link sealed with the cluster secret (`tessera_shared::link::seal`).
//! Link tasks check every message with `tessera_shared::protocol::verify` and hand it
//! to the protocol layer through [`NetEvents`](super::NetEvents). Both listeners are
//! [`MembersDoor`]s: a stranger's connection is bounded while it tries to prove
//! membership, and counted when it fails.

mod peer_link;
mod proxy_link;

use super::{Forwarding, NetEvents};
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use bevy::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tessera_shared::bridge::NetRuntime;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;
use tessera_shared::link::LinkError;
use tessera_shared::link::admission::{Admission, AdmissionLimits, ConnectionSlot};
use tessera_shared::protocol::verify::PeerRules;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The server's two listening sockets, bound before the app starts so tests and local
/// clusters can bind port 0 and publish the real port.
pub struct ServerListeners {
    pub proxy: std::net::TcpListener,
    pub peer: std::net::TcpListener,
}

impl ServerListeners {
    /// Binds the addresses the cluster map gives `id`.
    pub fn bind(cluster: &ClusterConfig, id: ServerId) -> std::io::Result<Self> {
        let config = cluster.server(id).map_err(std::io::Error::other)?;
        Ok(Self {
            proxy: std::net::TcpListener::bind(config.proxy_bind)?,
            peer: std::net::TcpListener::bind(config.peer_bind)?,
        })
    }
}

/// Serves the protocol layer over TCP until `shutdown`.
pub struct TcpTransportPlugin {
    /// Taken once, when the plugin is built.
    listeners: Mutex<Option<ServerListeners>>,
    shutdown: CancellationToken,
}

impl TcpTransportPlugin {
    pub fn new(listeners: ServerListeners, shutdown: CancellationToken) -> Self {
        Self { listeners: Mutex::new(Some(listeners)), shutdown }
    }
}

impl Plugin for TcpTransportPlugin {
    fn build(&self, app: &mut App) {
        let listeners = self.listeners.lock().unwrap().take().expect("the TCP transport is built once");
        let settings = app.world().resource::<ServerSettings>().clone();
        let events = app.world().resource::<NetEvents>().0.clone();
        let shutdown = self.shutdown.clone();
        let runtime = NetRuntime::new(&format!("server-{}-net", settings.id.0), 1).expect("the network runtime starts");
        {
            let _entered = runtime.handle().enter();
            let tokio_listener = |listener: std::net::TcpListener| {
                listener.set_nonblocking(true).expect("a listener can be made non-blocking");
                TcpListener::from_std(listener).expect("a bound listener converts to tokio")
            };
            // Both doors show the same digest and hold the same secret.
            let (digest, secret) = (settings.cluster.digest(), Arc::new(settings.secret.clone()));
            let proxies = proxy_link::ProxyContext {
                door: MembersDoor::new(&settings.stats),
                me: settings.id,
                cluster: Arc::new(settings.cluster.clone()),
                digest,
                secret: secret.clone(),
                events: events.clone(),
                forwarding: app.world().resource::<Forwarding>().clone(),
            };
            runtime.handle().spawn(proxy_link::accept(tokio_listener(listeners.proxy), proxies, shutdown.clone()));
            let context = peer_link::PeerContext {
                door: MembersDoor::new(&settings.stats),
                me: settings.id,
                rules: Arc::new(PeerRules::new(&settings.cluster)),
                secret,
                digest,
                events,
                traffic: settings.stats.peer_traffic.clone(),
            };
            for peer in settings.cluster.servers.iter().filter(|peer| peer.id > settings.id) {
                runtime.handle().spawn(peer_link::dial(
                    peer.peer_address(),
                    peer.id,
                    context.clone(),
                    shutdown.clone(),
                ));
            }
            runtime.handle().spawn(peer_link::accept(tokio_listener(listeners.peer), context, shutdown));
        }
        app.insert_resource(runtime);
    }
}

/// A listener only members of the cluster may use: connections are admitted within
/// [`AdmissionLimits::MEMBERS`] and hold their place until their handshake is over;
/// those turned away and handshakes that fail are counted in the server's stats, and
/// logged only at debug, so a flood costs no log volume.
#[derive(Clone)]
pub struct MembersDoor {
    admission: Arc<Admission>,
    stats: Arc<ServerStats>,
}

impl MembersDoor {
    fn new(stats: &Arc<ServerStats>) -> Self {
        Self { admission: Admission::new(AdmissionLimits::MEMBERS), stats: stats.clone() }
    }

    /// A place for a connection from `peer`, or `None` (counted) if it is turned away.
    pub fn admit(&self, peer: SocketAddr) -> Option<ConnectionSlot> {
        self.admission
            .admit(peer.ip())
            .inspect_err(|refused| {
                self.stats.refused_connections.fetch_add(1, Ordering::Relaxed);
                debug!("refused a connection from {peer} at a members' door: {refused:?}");
            })
            .ok()
    }

    /// Runs `handshake` in `slot`, giving the place back when it is over and counting
    /// it if it failed.
    pub async fn handshake<T>(
        &self,
        slot: ConnectionSlot,
        handshake: impl Future<Output = Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        let result = handshake.await;
        drop(slot);
        if matches!(result, Err(LinkError::Handshake(_))) {
            self.stats.failed_handshakes.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}
