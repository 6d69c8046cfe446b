//! The server's protocol layer, apart from any transport: network events come in
//! through one inbox ([`NetEvents`]) and leave it as Bevy messages (`PreUpdate`);
//! systems send through [`ProxyLinks`] and [`PeerLinks`], whose queues a transport
//! drains (and a transport's task passes a handed-on player's input straight on:
//! [`Forwarding`]). The real transport is [`tcp`] (a tokio runtime beside the app, the
//! listeners and the dialers); the cluster's in-process test harness is another, with no
//! sockets.

mod forwarding;
mod links;
pub mod tcp;

pub use forwarding::Forwarding;
pub use links::Links;

use bevy::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_shared::Vec2;
use tessera_shared::bridge::{Inbox, InboxSender, inbox};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::link::Outbound;
use tessera_shared::protocol::{
    CellDelta, ChatChannel, ChatLine, EntityName, HandoffState, Input, PeerMessage, ProxyToServer, ServerToProxy,
};
use tessera_shared::region_map::CellId;
use tracing::{info, warn};

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

/// Tells one connection from the next to the same remote, so a late "down" for an old
/// connection never removes its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkId(u64);

impl LinkId {
    /// A link id never used before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What a transport reports to the app. Messages arrive already checked by
/// [`tessera_shared::protocol::verify`] against the sender's rights. `InputPassedOn` is
/// input from `proxy` for a player handed on, which [`Forwarding`] already passed to the
/// player's new owner.
pub enum NetEvent {
    ProxyUp { proxy: ProxyId, link: LinkId, outbound: Outbound<ServerToProxy> },
    ProxyDown { proxy: ProxyId, link: LinkId },
    FromProxy { proxy: ProxyId, message: ProxyToServer },
    InputPassedOn { proxy: ProxyId, user: UserId, input: Input },
    PeerUp { peer: ServerId, link: LinkId, outbound: Outbound<PeerMessage> },
    PeerDown { peer: ServerId, link: LinkId },
    FromPeer { peer: ServerId, message: PeerMessage },
}

pub type ProxyLinks = Links<ProxyId, ServerToProxy>;
pub type PeerLinks = Links<ServerId, PeerMessage>;

/// A proxy asks to bring a new player into the world here.
#[derive(Message, Debug, Clone)]
pub struct LoginRequest {
    pub proxy: ProxyId,
    pub user: UserId,
    pub name: EntityName,
    pub position: Vec2,
    /// The input its sequence follows on from.
    pub last_input: u32,
}

/// Who passed on a player's input or logout: its proxy, or a peer forwarding what
/// reached it after it handed the player on. Only the peer that handed a player to us
/// may forward for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Proxy(ProxyId),
    Peer(ServerId),
}

/// A player's input, stamped by its proxy, or forwarded by its previous owner.
#[derive(Message, Debug, Clone, Copy)]
pub struct InputReceived {
    pub user: UserId,
    pub input: Input,
    pub via: Via,
    /// Already passed on to the player's new owner, as it arrived ([`Forwarding`]).
    pub passed_on: bool,
}

/// A player says something: stamped by its proxy, or forwarded by its previous owner.
#[derive(Message, Debug, Clone)]
pub struct ChatSaid {
    pub user: UserId,
    pub channel: ChatChannel,
    pub text: String,
    pub via: Via,
}

/// A peer relays what one of its players, standing at `at`, said.
#[derive(Message, Debug, Clone)]
pub struct ChatRelayed {
    pub peer: ServerId,
    pub line: ChatLine,
    pub at: Vec2,
}

/// A proxy says `user`, who lost its connection, resumes its session through it.
#[derive(Message, Debug, Clone, Copy)]
pub struct ResumeRequest {
    pub proxy: ProxyId,
    pub user: UserId,
}

/// A proxy says `user` lost an update sent it by datagram, and needs a full one.
#[derive(Message, Debug, Clone, Copy)]
pub struct ResyncRequest {
    pub proxy: ProxyId,
    pub user: UserId,
}

/// A proxy says `user` signed in again through it, on another server.
#[derive(Message, Debug, Clone, Copy)]
pub struct SupersedeRequest {
    pub proxy: ProxyId,
    pub user: UserId,
}

/// A player left (its client disconnected).
#[derive(Message, Debug, Clone, Copy)]
pub struct LogoutRequest {
    pub user: UserId,
    pub via: Via,
}

/// A proxy's link went down: every player behind it is gone.
#[derive(Message, Debug, Clone, Copy)]
pub struct ProxyLost {
    pub proxy: ProxyId,
}

/// A proxy's link came up.
#[derive(Message, Debug, Clone, Copy)]
pub struct ProxyConnected {
    pub proxy: ProxyId,
}

/// A peer server's link went down.
#[derive(Message, Debug, Clone, Copy)]
pub struct PeerLost {
    pub peer: ServerId,
}

/// A peer wants (or no longer wants) updates for some cells of our regions.
#[derive(Message, Debug, Clone)]
pub struct SubscriptionRequest {
    pub peer: ServerId,
    pub cells: Vec<CellId>,
    pub subscribe: bool,
}

/// One tick of changes in cells we subscribed to, as of the end of a tick that ran `at`
/// (microseconds of Unix time).
#[derive(Message, Debug, Clone)]
pub struct CellDeltasReceived {
    pub peer: ServerId,
    pub at: u64,
    pub deltas: Vec<CellDelta>,
}

/// A peer answered a handoff of ours: it took the player over, or it gives it back.
#[derive(Message, Debug, Clone, Copy)]
pub struct HandoffAnswered {
    pub peer: ServerId,
    pub user: UserId,
    pub taken: bool,
}

/// A peer hands us one of its players.
#[derive(Message, Debug, Clone)]
pub struct HandoffReceived {
    pub peer: ServerId,
    pub state: HandoffState,
}

/// Where a transport delivers network events; cloned into every task that has some.
#[derive(Resource, Clone)]
pub struct NetEvents(pub InboxSender<NetEvent>);

pub struct ProtocolPlugin;

impl Plugin for ProtocolPlugin {
    fn build(&self, app: &mut App) {
        let (events, inbox) = inbox::<NetEvent>(INBOX_CAPACITY);
        app.insert_resource(NetEvents(events))
            .insert_resource(inbox)
            .init_resource::<Forwarding>()
            .init_resource::<ProxyLinks>()
            .init_resource::<PeerLinks>()
            .add_message::<LoginRequest>()
            .add_message::<InputReceived>()
            .add_message::<LogoutRequest>()
            .add_message::<SupersedeRequest>()
            .add_message::<ResumeRequest>()
            .add_message::<ResyncRequest>()
            .add_message::<ProxyLost>()
            .add_message::<ProxyConnected>()
            .add_message::<PeerLost>()
            .add_message::<SubscriptionRequest>()
            .add_message::<CellDeltasReceived>()
            .add_message::<HandoffReceived>()
            .add_message::<HandoffAnswered>()
            .add_message::<ChatSaid>()
            .add_message::<ChatRelayed>()
            .configure_sets(PreUpdate, NetSystems::Receive)
            .configure_sets(PostUpdate, NetSystems::Send)
            .add_systems(PreUpdate, (report_dropped_links, receive).chain().in_set(NetSystems::Receive));
    }
}

/// Links dropped last frame for not reading are lost like any other.
fn report_dropped_links(
    mut proxies: ResMut<ProxyLinks>,
    mut peers: ResMut<PeerLinks>,
    mut proxy_lost: MessageWriter<ProxyLost>,
    mut peer_lost: MessageWriter<PeerLost>,
) {
    proxy_lost.write_batch(proxies.take_dropped().into_iter().map(|proxy| ProxyLost { proxy }));
    peer_lost.write_batch(peers.take_dropped().into_iter().map(|peer| PeerLost { peer }));
}

/// The messages `receive` writes.
#[derive(bevy::ecs::system::SystemParam)]
struct Received<'w> {
    logins: MessageWriter<'w, LoginRequest>,
    inputs: MessageWriter<'w, InputReceived>,
    logouts: MessageWriter<'w, LogoutRequest>,
    superseded: MessageWriter<'w, SupersedeRequest>,
    resumed: MessageWriter<'w, ResumeRequest>,
    resyncs: MessageWriter<'w, ResyncRequest>,
    proxy_lost: MessageWriter<'w, ProxyLost>,
    proxy_connected: MessageWriter<'w, ProxyConnected>,
    peer_lost: MessageWriter<'w, PeerLost>,
    subscriptions: MessageWriter<'w, SubscriptionRequest>,
    deltas: MessageWriter<'w, CellDeltasReceived>,
    handoffs: MessageWriter<'w, HandoffReceived>,
    answered: MessageWriter<'w, HandoffAnswered>,
    said: MessageWriter<'w, ChatSaid>,
    relayed: MessageWriter<'w, ChatRelayed>,
}

/// Drains the links into messages.
fn receive(
    inbox: Res<Inbox<NetEvent>>,
    mut proxies: ResMut<ProxyLinks>,
    mut peers: ResMut<PeerLinks>,
    mut out: Received,
) {
    for event in inbox.drain() {
        match event {
            NetEvent::ProxyUp { proxy, link, outbound } => {
                if proxies.up(proxy, link, outbound) {
                    // The old connection's players were never told goodbye: drop them.
                    warn!("{proxy} reconnected: replacing its previous link");
                    out.proxy_lost.write(ProxyLost { proxy });
                }
                info!("{proxy} connected");
                out.proxy_connected.write(ProxyConnected { proxy });
            }
            NetEvent::ProxyDown { proxy, link } => {
                if proxies.down(proxy, link) {
                    out.proxy_lost.write(ProxyLost { proxy });
                }
            }
            NetEvent::FromProxy { proxy, message } => match message {
                ProxyToServer::Login { user, name, position, last_input } => {
                    out.logins.write(LoginRequest { proxy, user, name, position, last_input });
                }
                ProxyToServer::Input { user, input } => {
                    out.inputs.write(InputReceived { user, input, via: Via::Proxy(proxy), passed_on: false });
                }
                ProxyToServer::Logout { user } => {
                    out.logouts.write(LogoutRequest { user, via: Via::Proxy(proxy) });
                }
                ProxyToServer::Supersede { user } => {
                    out.superseded.write(SupersedeRequest { proxy, user });
                }
                ProxyToServer::Resume { user } => {
                    out.resumed.write(ResumeRequest { proxy, user });
                }
                ProxyToServer::Resync { user } => {
                    out.resyncs.write(ResyncRequest { proxy, user });
                }
                ProxyToServer::Chat { user, channel, text } => {
                    out.said.write(ChatSaid { user, channel, text, via: Via::Proxy(proxy) });
                }
            },
            NetEvent::InputPassedOn { proxy, user, input } => {
                out.inputs.write(InputReceived { user, input, via: Via::Proxy(proxy), passed_on: true });
            }
            NetEvent::PeerUp { peer, link, outbound } => {
                if peers.up(peer, link, outbound) {
                    out.peer_lost.write(PeerLost { peer });
                }
            }
            NetEvent::PeerDown { peer, link } => {
                if peers.down(peer, link) {
                    out.peer_lost.write(PeerLost { peer });
                }
            }
            NetEvent::FromPeer { peer, message } => match message {
                PeerMessage::Subscribe(cells) => {
                    out.subscriptions.write(SubscriptionRequest { peer, cells, subscribe: true });
                }
                PeerMessage::Unsubscribe(cells) => {
                    out.subscriptions.write(SubscriptionRequest { peer, cells, subscribe: false });
                }
                PeerMessage::Cells { at, deltas } => {
                    out.deltas.write(CellDeltasReceived { peer, at, deltas });
                }
                PeerMessage::Handoff(state) => {
                    out.handoffs.write(HandoffReceived { peer, state });
                }
                PeerMessage::ForwardInput { user, input } => {
                    out.inputs.write(InputReceived { user, input, via: Via::Peer(peer), passed_on: false });
                }
                PeerMessage::ForwardLogout { user } => {
                    out.logouts.write(LogoutRequest { user, via: Via::Peer(peer) });
                }
                PeerMessage::HandoffAccepted { user } => {
                    out.answered.write(HandoffAnswered { peer, user, taken: true });
                }
                PeerMessage::HandoffDeclined { user } => {
                    out.answered.write(HandoffAnswered { peer, user, taken: false });
                }
                PeerMessage::Chat { line, at } => {
                    out.relayed.write(ChatRelayed { peer, line, at });
                }
                PeerMessage::ForwardChat { user, channel, text } => {
                    out.said.write(ChatSaid { user, channel, text, via: Via::Peer(peer) });
                }
            },
        }
    }
}
