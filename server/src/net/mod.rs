//! The server's network: a tokio runtime beside the app, the listener for proxies, and
//! the systems that turn what the links deliver into Bevy messages (`PreUpdate`) and
//! hand what systems send to the links (through [`ProxyLinks`]).

mod proxy_link;

use crate::app::{ServerListeners, ServerSettings, Shutdown};
use bevy::prelude::*;
use tracing::{error, info, warn};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_shared::Vec2;
use tessera_shared::bridge::{Inbox, NetRuntime, inbox};
use tessera_shared::ids::{ProxyId, UserId};
use tessera_shared::link::{Outbound, SendError};
use tessera_shared::protocol::{Input, ProxyToServer, ServerToProxy};

/// Undrained network events the ECS holds before network tasks wait for it.
const INBOX_CAPACITY: usize = 1 << 16;

/// Where network events enter the app, and where messages leave it.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetSystems {
    /// `PreUpdate`: drain the links into messages.
    Receive,
    /// `PostUpdate`: build and queue this tick's outgoing frames.
    Send,
}

/// Tells one connection from the next of the same proxy, so a late "down" for an old
/// connection never removes its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkId(u64);

impl LinkId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What network tasks report to the app.
pub enum NetEvent {
    ProxyUp {
        proxy: ProxyId,
        link: LinkId,
        outbound: Outbound<ServerToProxy>,
    },
    ProxyDown {
        proxy: ProxyId,
        link: LinkId,
    },
    FromProxy {
        proxy: ProxyId,
        message: ProxyToServer,
    },
}

/// A proxy asks to bring a new player into the world here.
#[derive(Message, Debug, Clone)]
pub struct LoginRequest {
    pub proxy: ProxyId,
    pub user: UserId,
    pub name: String,
    pub position: Vec2,
}

/// A player's input, as stamped by its proxy.
#[derive(Message, Debug, Clone, Copy)]
pub struct InputReceived {
    pub user: UserId,
    pub input: Input,
}

/// A player left (its client disconnected).
#[derive(Message, Debug, Clone, Copy)]
pub struct LogoutRequest {
    pub user: UserId,
}

/// A proxy's link went down: every player behind it is gone.
#[derive(Message, Debug, Clone, Copy)]
pub struct ProxyLost {
    pub proxy: ProxyId,
}

/// The open proxy links, by proxy.
#[derive(Resource, Default)]
pub struct ProxyLinks(HashMap<ProxyId, (LinkId, Outbound<ServerToProxy>)>);

impl ProxyLinks {
    /// Queues `message` for `proxy`. A proxy that is not reading has its link closed
    /// here (dropping the queue ends the link) and reported lost.
    pub fn send(
        &mut self,
        proxy: ProxyId,
        message: ServerToProxy,
        lost: &mut MessageWriter<ProxyLost>,
    ) {
        let Some((_, outbound)) = self.0.get(&proxy) else {
            return;
        };
        match outbound.send(message) {
            Ok(()) => {}
            Err(SendError::Full) => {
                error!("{proxy} is not reading its updates: closing its link");
                self.0.remove(&proxy);
                lost.write(ProxyLost { proxy });
            }
            // The link task already reported (or is about to report) it down.
            Err(SendError::Closed) => {}
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub struct NetPlugin {
    /// Taken once, when the plugin is built.
    pub listeners: Mutex<Option<ServerListeners>>,
}

impl Plugin for NetPlugin {
    fn build(&self, app: &mut App) {
        let listeners = self
            .listeners
            .lock()
            .unwrap()
            .take()
            .expect("NetPlugin is built once");
        let settings = app.world().resource::<ServerSettings>().clone();
        let shutdown = app.world().resource::<Shutdown>().0.clone();
        let runtime = NetRuntime::new(&format!("server-{}-net", settings.id.0), 1)
            .expect("the network runtime starts");
        let (events, inbox) = inbox::<NetEvent>(INBOX_CAPACITY);
        {
            let _entered = runtime.handle().enter();
            let listener = tokio::net::TcpListener::from_std(nonblocking(listeners.proxy))
                .expect("a bound listener converts to tokio");
            runtime
                .handle()
                .spawn(proxy_link::accept(listener, settings.id, events, shutdown));
        }
        app.insert_resource(runtime)
            .insert_resource(inbox)
            .init_resource::<ProxyLinks>()
            .add_message::<LoginRequest>()
            .add_message::<InputReceived>()
            .add_message::<LogoutRequest>()
            .add_message::<ProxyLost>()
            .configure_sets(PreUpdate, NetSystems::Receive)
            .configure_sets(PostUpdate, NetSystems::Send)
            .add_systems(PreUpdate, receive.in_set(NetSystems::Receive));
    }
}

fn nonblocking(listener: std::net::TcpListener) -> std::net::TcpListener {
    listener
        .set_nonblocking(true)
        .expect("a listener can be made non-blocking");
    listener
}

/// Drains the links into messages.
fn receive(
    inbox: Res<Inbox<NetEvent>>,
    mut links: ResMut<ProxyLinks>,
    mut logins: MessageWriter<LoginRequest>,
    mut inputs: MessageWriter<InputReceived>,
    mut logouts: MessageWriter<LogoutRequest>,
    mut lost: MessageWriter<ProxyLost>,
) {
    for event in inbox.drain() {
        match event {
            NetEvent::ProxyUp {
                proxy,
                link,
                outbound,
            } => {
                if links.0.insert(proxy, (link, outbound)).is_some() {
                    // The old connection's players were never told goodbye: drop them.
                    warn!("{proxy} reconnected: replacing its previous link");
                    lost.write(ProxyLost { proxy });
                }
                info!("{proxy} connected");
            }
            NetEvent::ProxyDown { proxy, link } => {
                if links
                    .0
                    .get(&proxy)
                    .is_some_and(|(current, _)| *current == link)
                {
                    links.0.remove(&proxy);
                    lost.write(ProxyLost { proxy });
                }
            }
            NetEvent::FromProxy { proxy, message } => match message {
                ProxyToServer::Login {
                    user,
                    name,
                    position,
                } => {
                    logins.write(LoginRequest {
                        proxy,
                        user,
                        name,
                        position,
                    });
                }
                ProxyToServer::Input { user, input } => {
                    inputs.write(InputReceived { user, input });
                }
                ProxyToServer::Logout { user } => {
                    logouts.write(LogoutRequest { user });
                }
                ProxyToServer::Hello(_) => unreachable!("the link task refuses a second hello"),
            },
        }
    }
}
