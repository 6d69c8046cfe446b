//! Links between game servers. Each pair shares one link, sealed with the cluster
//! secret: the server with the lower id dials (and redials with backoff), the higher
//! one accepts. Everything a peer sends passes [`verify::from_peer`] (the map and the
//! tether decide what it may say) before the app sees it.

use super::MembersDoor;
use crate::net::{LinkId, NetEvent};
use std::sync::Arc;
use tessera_shared::bridge::InboxSender;
use tessera_shared::cluster::ClusterDigest;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Door, Link, LinkError, Outbound, Side, Traffic, accept_loop, redial};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::verify::{self, PeerRules};
use tessera_shared::protocol::{Hello, PeerMessage, Role};
use tessera_shared::secret::ClusterSecret;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// What a peer task needs to know.
#[derive(Clone)]
pub struct PeerContext {
    pub door: MembersDoor,
    pub me: ServerId,
    pub rules: Arc<PeerRules>,
    pub secret: Arc<ClusterSecret>,
    /// Our cluster file's digest, which a peer's must match.
    pub digest: ClusterDigest,
    pub events: InboxSender<NetEvent>,
    pub traffic: Traffic,
}

impl PeerContext {
    async fn open(&self, stream: TcpStream, side: Side) -> Result<(Link<PeerMessage>, Role), LinkError> {
        let door = Door::Members { secret: &self.secret, cluster: self.digest, side };
        Link::open(stream, door, Hello::new(Role::Server(self.me)), Some(&self.traffic)).await
    }
}

/// Accepts peers with a lower id than ours.
pub async fn accept(listener: TcpListener, context: PeerContext, shutdown: CancellationToken) {
    accept_loop(listener, shutdown, "peer", move |stream, address| {
        let slot = context.door.admit(address)?;
        let context = context.clone();
        Some(async move {
            let handshake = async {
                match context.open(stream, Side::Listener).await? {
                    (link, Role::Server(peer))
                        if peer < context.me && context.rules.map.regions_of(peer).next().is_some() =>
                    {
                        Ok((link, peer))
                    }
                    (_, got) => {
                        Err(HandshakeError::Role { expected: "a server of the map with a lower id", got }.into())
                    }
                }
            };
            let (link, peer) = context.door.handshake(slot, handshake).await?;
            serve(link, peer, &context).await
        })
    })
    .await
}

/// Keeps a link to `peer` (whose id is higher than ours) up until `shutdown`.
pub async fn dial(address: String, peer: ServerId, context: PeerContext, shutdown: CancellationToken) {
    redial(&address, &peer.to_string(), shutdown, |stream| {
        let context = context.clone();
        async move {
            match context.open(stream, Side::Dialer).await? {
                (link, Role::Server(id)) if id == peer => serve(link, peer, &context).await,
                (_, got) => Err(HandshakeError::Role { expected: "the server the map names", got }.into()),
            }
        }
    })
    .await
}

async fn serve(link: Link<PeerMessage>, peer: ServerId, context: &PeerContext) -> Result<(), LinkError> {
    info!("{} linked with {peer}", context.me);
    let id = LinkId::next();
    let (outbound, queue) = Outbound::channel();
    let events = &context.events;
    events.send(NetEvent::PeerUp { peer, link: id, outbound }).await?;
    let result = link
        .run(queue, |message| {
            let events = events.clone();
            let verified = verify::from_peer(&message, context.me, peer, &context.rules);
            async move {
                verified?;
                Ok(events.send(NetEvent::FromPeer { peer, message }).await?)
            }
        })
        .await;
    let _ = events.send(NetEvent::PeerDown { peer, link: id }).await;
    result
}
