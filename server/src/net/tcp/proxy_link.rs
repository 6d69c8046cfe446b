//! The proxy listener: accepts proxies of the cluster map that prove they hold the
//! cluster secret, and relays their messages to the app once [`verify::from_proxy`]
//! allows each (whom a proxy speaks for is checked in [`crate::players`]: the players
//! that logged in through it), input for a player just handed on going first to its
//! new owner ([`Forwarding`]).

use super::MembersDoor;
use crate::net::{Forwarding, LinkId, NetEvent};
use std::sync::Arc;
use tessera_shared::bridge::InboxSender;
use tessera_shared::cluster::{ClusterConfig, ClusterDigest};
use tessera_shared::ids::ServerId;
use tessera_shared::link::admission::ConnectionSlot;
use tessera_shared::link::{Door, Link, LinkError, Outbound, Side, accept_loop};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::{Hello, ProxyToServer, Role, verify};
use tessera_shared::secret::ClusterSecret;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// What a proxy link task needs to know.
#[derive(Clone)]
pub struct ProxyContext {
    pub door: MembersDoor,
    pub me: ServerId,
    pub cluster: Arc<ClusterConfig>,
    /// `cluster`'s digest, which a proxy's must match.
    pub digest: ClusterDigest,
    pub secret: Arc<ClusterSecret>,
    pub events: InboxSender<NetEvent>,
    pub forwarding: Forwarding,
}

pub async fn accept(listener: TcpListener, context: ProxyContext, shutdown: CancellationToken) {
    accept_loop(listener, shutdown, "proxy", move |stream, peer| {
        let slot = context.door.admit(peer)?;
        let context = context.clone();
        Some(async move { serve(stream, slot, &context).await })
    })
    .await
}

async fn serve(stream: TcpStream, slot: ConnectionSlot, context: &ProxyContext) -> Result<(), LinkError> {
    let door = Door::Members { secret: &context.secret, cluster: context.digest, side: Side::Listener };
    let handshake = async {
        match Link::<ProxyToServer>::open(stream, door, Hello::new(Role::Server(context.me)), None).await? {
            (link, Role::Proxy(proxy)) if context.cluster.proxy(proxy).is_ok() => Ok((link, proxy)),
            (_, got) => Err(HandshakeError::Role { expected: "a proxy of the map", got }.into()),
        }
    };
    let (link, proxy) = context.door.handshake(slot, handshake).await?;
    let events = &context.events;
    let id = LinkId::next();
    let (outbound, queue) = Outbound::channel();
    events.send(NetEvent::ProxyUp { proxy, link: id, outbound }).await?;
    let result = link
        .run(queue, |message| {
            let events = events.clone();
            async move {
                verify::from_proxy(&message)?;
                Ok(events.send(context.forwarding.from_proxy(proxy, message)).await?)
            }
        })
        .await;
    let _ = events.send(NetEvent::ProxyDown { proxy, link: id }).await;
    match result {
        Err(LinkError::Closed) => {
            info!("{proxy} disconnected");
            Ok(())
        }
        other => other,
    }
}
