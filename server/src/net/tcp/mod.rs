//! The server's TCP transport: a tokio runtime beside the app, the listener for
//! proxies ([`proxy_link`]), the listener and dialers for peer servers ([`peer_link`]),
//! every link sealed with the cluster secret (`tessera_shared::link::seal`).
//! Link tasks check every message with `tessera_shared::protocol::verify` and hand it
//! to the protocol layer through [`NetEvents`](super::NetEvents).

mod peer_link;
mod proxy_link;

use super::NetEvents;
use crate::settings::ServerSettings;
use bevy::prelude::*;
use std::sync::{Arc, Mutex};
use tessera_shared::bridge::NetRuntime;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;
use tessera_shared::protocol::verify::PeerRules;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

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
            let proxies = proxy_link::ProxyContext {
                me: settings.id,
                cluster: Arc::new(settings.cluster.clone()),
                secret: Arc::new(settings.secret.clone()),
                events: events.clone(),
            };
            runtime.handle().spawn(proxy_link::accept(tokio_listener(listeners.proxy), proxies, shutdown.clone()));
            let context = peer_link::PeerContext {
                me: settings.id,
                rules: Arc::new(PeerRules::new(&settings.cluster)),
                secret: Arc::new(settings.secret.clone()),
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
