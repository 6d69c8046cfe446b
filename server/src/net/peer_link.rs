//! Links between game servers. Each pair shares one link: the server with the lower id
//! dials (and redials with backoff), the higher one accepts. Everything a peer sends is
//! checked against the map before the app sees it: subscriptions only to cells the
//! receiver owns, cell data only for cells the sender owns, handoffs only of
//! players standing in the receiver's regions.

use super::{LinkId, NetEvent};
use std::sync::Arc;
use tessera_shared::bridge::InboxSender;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Link, LinkError, Outbound, Traffic, accept_loop, redial};
use tessera_shared::protocol::{Hello, PeerMessage, Role};
use tessera_shared::region_map::{CellId, RegionMap};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// What a peer task needs to know.
#[derive(Clone)]
pub struct PeerContext {
    pub me: ServerId,
    pub map: Arc<RegionMap>,
    pub events: InboxSender<NetEvent>,
    pub traffic: Traffic,
}

/// Accepts peers with a lower id than ours.
pub async fn accept(listener: TcpListener, context: PeerContext, shutdown: CancellationToken) {
    accept_loop(listener, shutdown, "peer", move |stream, _| {
        let context = context.clone();
        async move {
            let mut link = Link::<PeerMessage>::counting(stream, &context.traffic);
            let peer = match link.handshake::<PeerMessage>(Hello::new(Role::Server(context.me))).await? {
                Role::Server(peer) if peer < context.me && context.map.regions_of(peer).next().is_some() => peer,
                got => return Err(LinkError::Role { expected: "server of the map with a lower id", got }),
            };
            serve(link, peer, &context).await
        }
    })
    .await
}

/// Keeps a link to `peer` (whose id is higher than ours) up until `shutdown`.
pub async fn dial(address: String, peer: ServerId, context: PeerContext, shutdown: CancellationToken) {
    redial(&address, &peer.to_string(), shutdown, |stream| {
        let context = context.clone();
        async move {
            let mut link = Link::<PeerMessage>::counting(stream, &context.traffic);
            match link.handshake::<PeerMessage>(Hello::new(Role::Server(context.me))).await? {
                Role::Server(id) if id == peer => serve(link, peer, &context).await,
                got => Err(LinkError::Role { expected: "the server the map names", got }),
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
    let closed = || LinkError::Rejected("server shutting down".into());
    events.send(NetEvent::PeerUp { peer, link: id, outbound }).await.map_err(|_| closed())?;
    let result = link
        .run(queue, |message| {
            let events = events.clone();
            let checked = check(&message, context.me, peer, &context.map);
            async move {
                checked?;
                events.send(NetEvent::FromPeer { peer, message }).await.map_err(|_| closed())
            }
        })
        .await;
    let _ = events.send(NetEvent::PeerDown { peer, link: id }).await;
    result
}

/// Refuses what the map says a peer has no business sending.
fn check(message: &PeerMessage, me: ServerId, peer: ServerId, map: &RegionMap) -> Result<(), LinkError> {
    let owned_by = |cell: &CellId, owner: ServerId| map.cell_owner(*cell) == Some(owner);
    match message {
        PeerMessage::Hello(_) => Err(LinkError::Unexpected("a second hello".into())),
        PeerMessage::Subscribe(cells) | PeerMessage::Unsubscribe(cells) => {
            match cells.iter().find(|c| !owned_by(c, me)) {
                Some(cell) => Err(LinkError::Unexpected(format!("{peer} named {cell}, which {me} does not own"))),
                None => Ok(()),
            }
        }
        PeerMessage::Cells { deltas, .. } => match deltas.iter().find(|delta| !owned_by(&delta.cell, peer)) {
            Some(delta) => Err(LinkError::Unexpected(format!("{peer} sent {}, which it does not own", delta.cell))),
            None => Ok(()),
        },
        PeerMessage::Handoff(state) => {
            if map.owner_at(state.position) == Some(me) {
                Ok(())
            } else {
                Err(LinkError::Unexpected(format!(
                    "{peer} handed off {} at {}, outside {me}'s regions",
                    state.user, state.position
                )))
            }
        }
        PeerMessage::ForwardInput { .. } | PeerMessage::ForwardLogout { .. } | PeerMessage::HandoffAccepted { .. } => {
            Ok(())
        }
    }
}
