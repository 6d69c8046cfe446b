//! Every message that crosses a socket, one enum per link direction:
//! client → proxy, proxy → client, proxy → server, server → proxy, and server ↔ server
//! (symmetric, so one enum). Each link opens with its [`handshake`], a phase of its own
//! with its own message; the enums here are what a link carries after it. What a
//! receiver must check before believing a message is in [`verify`]. Entities are named
//! by cluster-wide ids.

pub mod datagram;
pub mod handshake;
pub mod packing;
pub mod verify;

pub use handshake::{Hello, PROTOCOL_VERSION, Role, SessionTicket};
pub use packing::{OthersKept, PackedUpdate, UpdatePacker, UpdateUnpacker};

use crate::components::{Keys, WALK_SPEED};
use crate::ids::{EntityId, ProxyId, ServerId, UserId};
use crate::region_map::{CellId, RegionMap};
use glam::Vec2;
use serde::{Deserialize, Serialize};

/// Bytes of player frames a server puts in one `ServerToProxy::Updates`: well under
/// [`MAX_FRAME_LEN`](crate::framing::MAX_FRAME_LEN), however many players a proxy has.
pub const UPDATES_FRAME_BUDGET: usize = 256 * 1024;

/// Longest accepted player name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// A player's name as the cluster's messages carry it: at most [`MAX_NAME_LEN`] bytes,
/// held inline. Names travel with every entity coming into a player's view (a whole
/// view's at each handoff), and a heap string for each, copied at the server twice and
/// allocated again at the player, was the largest part of what both allocated
/// (BENCHMARKS.md). One longer than that fails to decode.
pub type EntityName = arrayvec::ArrayString<MAX_NAME_LEN>;

/// The reason in the [`ProxyToClient::Disconnect`] of a proxy that has all the players it
/// may take: players recognise it, say the cluster is full, and wait longer to retry.
pub const CLUSTER_FULL: &str = "the cluster is full";

/// The reason a player's older connection is closed when the same player signs in
/// again (its window froze, or it restarted, before the old connection closed).
pub const SIGNED_IN_AGAIN: &str = "you signed in again from somewhere else";

/// Inputs a server holds ahead of a gap in a player's sequence, and so the most a
/// handoff carries: each must be within this many of the last applied. A player sends
/// at most 60 a second and a gap is skipped after 40 ticks (2 s at 20 Hz), so about 120
/// can pile up honestly; twice that is room, and a bound on what a peer makes us store.
pub const MAX_PENDING_INPUTS: usize = 256;

/// Ticks a server holds a player's input beyond the delay of the one that set the
/// player's clock: room for jitter. The player's prediction hides the wait; it means an
/// input is acknowledged this many ticks after its own tick ends, at the soonest.
pub const INPUT_SLACK_TICKS: i64 = 1;

/// How far back a server walks a player's ticks again for an input that came after
/// them, from the input's tick to the last it walked: the player's state is then what it
/// predicted. One later than that stays as walked (a correction the player sees).
pub const TICKS_WALKED_AGAIN: u32 = 20;

/// Entities one message may carry, all its lists counted (entered, moved, left, named).
/// A player's update is at most [`UPDATES_FRAME_BUDGET`] bytes, under 15,500 entity
/// states of 17 bytes at least; publishers split their cell deltas to stay under it; and
/// it is 4× the crowd the benchmark runs in a whole cluster. What it guards is the work
/// one frame makes a receiver do: a 1 MiB frame of one-byte entity ids would otherwise
/// be a million of them.
pub const MAX_ENTITIES_PER_MESSAGE: usize = 16_384;

/// Entity states in one player update (new or changed), each with its name if new: a
/// crowd larger than this reaches a player over a few ticks. Packed ([`packing`]), a
/// newcomer with its name takes at most 65 bytes, so they fill about half of
/// [`UPDATES_FRAME_BUDGET`] at most, with room left for every known entity leaving at
/// once (3 bytes each).
pub const MAX_STATES_PER_UPDATE: usize = 2_048;

/// Entities a server lets one player know at once: a bigger crowd is seen in part. All
/// of them leaving, with a full update of states and names, still fits one message
/// ([`MAX_ENTITIES_PER_MESSAGE`]).
pub const MAX_KNOWN_ENTITIES: usize = MAX_ENTITIES_PER_MESSAGE - 2 * MAX_STATES_PER_UPDATE;

/// The fastest anything moves, in world units per second: walking speed, and a little
/// for the rounding of a normalised diagonal.
pub const MAX_SPEED: f32 = WALK_SPEED * 1.001;

/// Longest reason a server may give for disconnecting a player, in bytes: the proxy
/// hands it to the player, who shows it.
pub const MAX_REASON_LEN: usize = 512;

/// One change of the keys a player holds. Sequence numbers start at 1 and grow by one
/// per input, so a server can apply each exactly once, in order, across handoffs.
/// `tick` is the player's own tick (it counts ticks of the server's length from when it
/// started playing) from which the keys are held: a server applies inputs as far apart in its ticks as they were
/// pressed in the player's, so what it simulates is what the player predicted, however
/// the network delayed each input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub seq: u32,
    pub keys: Keys,
    pub tick: u32,
}

/// An entity as a player sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EntityState {
    pub id: EntityId,
    pub position: Vec2,
    pub velocity: Vec2,
}

/// Where an entity sent at `sent` with `position` and `velocity` is at `now`, the
/// player's way: servers send an entity again only when this would be off, so both
/// ends must compute it alike.
pub fn extrapolate(state: &EntityState, sent: u64, now: u64, tick_seconds: f32) -> Vec2 {
    state.position + state.velocity * (now.saturating_sub(sent) as f32 * tick_seconds)
}

/// How far an entity may stray from its extrapolation before it is sent again, in
/// world units: well under a pixel at any sensible zoom.
pub const STRAY: f32 = 0.25;

/// Whether `now` (at tick `tick`) must be sent again to whoever was sent `sent` at
/// tick `sent_tick`: its velocity changed, or it strayed from the extrapolation.
pub fn must_resend(sent: &EntityState, sent_tick: u64, now: &EntityState, tick: u64, tick_seconds: f32) -> bool {
    sent.velocity != now.velocity
        || extrapolate(sent, sent_tick, tick, tick_seconds).distance_squared(now.position) > STRAY * STRAY
}

/// Ticks a player with nothing to be told may go without an update: it hears from its
/// server at least this often (or every [`PlayerUpdate::update_every`] ticks, if more),
/// so it knows its server is there and how far the others it extrapolates have gone.
pub const MAX_QUIET_TICKS: u8 = 4;

/// The longest a server over capacity makes each player wait between updates, in
/// ticks: at 20 Hz, an update every 0.8 s, as far as a server spreads them before its
/// ticks stretch instead. (Every player's own inputs are still acknowledged as they
/// are applied, whatever the pace.)
pub const MAX_UPDATE_EVERY: u8 = 16;

/// The most ticks a player whose updates come every `update_every` ticks
/// ([`PlayerUpdate::update_every`]) goes without one: what its server keeps to, and
/// what it may count on.
pub fn most_quiet_ticks(update_every: u8) -> u8 {
    MAX_QUIET_TICKS.max(update_every)
}

/// The length of a tick, as every server and player rounds it.
pub fn tick_seconds(tick_hz: f64) -> f32 {
    (1.0 / tick_hz) as f32
}

/// What a player learns of a tick: itself, and what changed within its view radius.
/// An entity in view is sent when it comes into view and then only when its velocity
/// changes or it strays from where [`extrapolate`] puts it; in between, the player
/// extrapolates it. So a crowd walking straight costs almost nothing on the wire. A
/// tick that would tell the player nothing it cannot extrapolate, and acknowledges no
/// input, sends no update at all, for up to [`MAX_QUIET_TICKS`]. On the wire it travels
/// packed against the updates before it ([`packing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerUpdate {
    /// The owning server's simulation tick.
    pub tick: u64,
    /// The server simulating this player now.
    pub server: ServerId,
    /// The highest input sequence applied so far (all below it were applied too).
    pub last_input: u32,
    /// How many inputs have been applied in all: equals `last_input` unless one was
    /// applied twice.
    pub inputs_applied: u32,
    pub you: EntityState,
    /// The player's own tick `you` is as of, in the clock its inputs are stamped with:
    /// its prediction for that tick should be exactly `you`. `None` until the player's
    /// first input on this session sets the clock.
    pub your_tick: Option<u32>,
    /// The player must forget every other entity it knows first: the first update
    /// from a server (after joining or a handoff) says everything in view.
    pub full: bool,
    /// Entities that came into view, or whose motion changed, as of `tick`.
    pub changed: Vec<EntityState>,
    /// Entities that went out of view.
    pub left: Vec<EntityId>,
    /// Names of entities this player has not been told about yet, in the order they
    /// come in `changed`.
    pub names: Vec<(EntityId, EntityName)>,
    /// In an update as unpacked, the handle each of `changed` goes by on the player's
    /// link ([`packing::Handle`]), in order: the player files what it knows of others
    /// under them, looking nothing up for the states an update carries. Empty on the server's side,
    /// whose packer takes each entity's handle from its own entries ([`packing::Mentions`]).
    pub changed_handles: Vec<packing::Handle>,
    /// In an update as unpacked, the handle each of `left` went by, in order.
    pub left_handles: Vec<packing::Handle>,
    /// How many ticks apart the server tells this player what others did: 1, unless the
    /// server is over capacity and spreads its players' updates over several ticks (at
    /// most [`MAX_UPDATE_EVERY`]) to keep its ticks on time; an input applied is
    /// acknowledged at once all the same. The player says so.
    pub update_every: u8,
    /// News of others was left for later updates: the player's byte budget
    /// ([`SimulationConfig::player_bytes_per_second`](crate::cluster::SimulationConfig))
    /// was spent (or an update's [`MAX_STATES_PER_UPDATE`] reached), the most owed
    /// first, and the rest wait their turn, extrapolated meanwhile. The player says so.
    pub budget_spent: bool,
    /// In an update unpacked by a player that keeps only the handles of others
    /// ([`packing::OthersKept::Handles`]), and so has none of `changed` or `left`: how
    /// many states of others it carried, and how many others are in view after it.
    pub others_counted: Option<OthersCounted>,
}

/// Others as a player that keeps none of their states counts them
/// ([`PlayerUpdate::others_counted`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OthersCounted {
    pub states: usize,
    pub in_view: usize,
}

/// Who hears a chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChatChannel {
    /// The players who have the speaker in view, on whichever server.
    Near,
    /// Every player of the cluster.
    Everyone,
}

/// A chat line as its hearers get it: who said it (its cluster-wide id, as in updates,
/// and its name, since a line said to everyone comes from beyond the view), to whom,
/// and what. The text is clean ([`crate::chat`]); the proxy stamped the speaker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub speaker: EntityId,
    pub name: String,
    pub channel: ChatChannel,
    pub text: String,
}

/// Client → proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ClientToProxy {
    Input(Input),
    /// Says `text` (at most [`MAX_CHAT_LEN`](crate::chat::MAX_CHAT_LEN) bytes; the proxy
    /// cleans it) on `channel`. Players never say who is speaking: their proxy does.
    Chat {
        channel: ChatChannel,
        text: String,
    },
    /// An update sent by datagram was lost ([`datagram`]): the rest mean nothing until a
    /// full one, which the player's server is to send next.
    Resync,
    /// Updates by datagram do not reach this player: it is to be sent everything by its
    /// link from now on, a full update first.
    NoDatagrams,
}

/// Proxy → client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProxyToClient {
    Welcome(Welcome),
    Update(PackedUpdate),
    /// Sent just before the proxy closes the connection.
    Disconnect {
        reason: String,
    },
    /// The server simulating the player was lost: the player stays, and is brought back
    /// at its last checkpoint once the server is back (its first update says what it
    /// applied of what was sent).
    RegionOffline,
    /// The session the player asked to resume is nowhere now (it was not resumed in
    /// time, or its server is gone): it should join anew. Sent just before the proxy
    /// closes the connection.
    SessionGone,
    /// The name a new player asked for cannot be had: another key has it, or it breaks
    /// the name rule. Sent just before the proxy closes the connection; asking again
    /// under the same name is pointless.
    NameRefused {
        reason: String,
    },
    /// Something a player in range said, or the player itself.
    Chat(ChatLine),
    /// The player's last chat line was dropped: it said too much too fast.
    ChatThrottled,
}

/// What a player is told on joining.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    /// The player's id: its key's, as the player computes it too.
    pub user: UserId,
    /// The name the player plays under: its key's first, whatever it asked for since.
    pub name: String,
    pub proxy: ProxyId,
    /// Whether this carries on a session the player resumed (its inputs continue their
    /// sequence) rather than starting one.
    pub resumed: bool,
    /// What resumes this session through any proxy of the cluster.
    pub ticket: SessionTicket,
    pub map: RegionMap,
    pub view_radius: f32,
    pub tick_hz: f64,
    /// What the player binds its UDP address with to be sent its updates by datagram
    /// ([`datagram`]), if this proxy sends them so.
    pub datagrams: Option<datagram::DatagramTag>,
}

/// Proxy → server. The proxy stamps the user id; clients never name one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProxyToServer {
    /// Simulate `user` from `position` on. Its inputs follow on from `last_input`: 0 for
    /// a new session, and for one whose server was lost, the last input that server
    /// acknowledged ([`PlayerFrame::last_input`]): the player sends again everything
    /// after it, so each input is applied once (what the lost server applied since its
    /// last checkpoint is applied, acknowledged and then lost with it, as the movement is).
    Login {
        user: UserId,
        name: EntityName,
        position: Vec2,
        last_input: u32,
    },
    Input {
        user: UserId,
        input: Input,
    },
    Logout {
        user: UserId,
    },
    /// `user`, whose connection to its proxy was lost, resumes its session through this
    /// proxy. The server that has it (whoever its proxy was) makes this proxy its own,
    /// says so (`Owner`) and sends it everything in view; the others ignore it.
    Resume {
        user: UserId,
    },
    /// `user` signed in (again) through this proxy, and is logged in on another server:
    /// any session of the player here is an older one, and ends. Sent to every server
    /// but the one the login goes to, which takes an older session over itself.
    Supersede {
        user: UserId,
    },
    /// `user` says `text` (clean, as the proxy made it) on `channel`.
    Chat {
        user: UserId,
        channel: ChatChannel,
        text: String,
    },
    /// `user` lost an update sent it by datagram: its server starts it over with a
    /// full one.
    Resync {
        user: UserId,
    },
}

/// Server → proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServerToProxy {
    /// One tick's updates for players behind this proxy, each already encoded whole as
    /// the frame the proxy forwards to that player untouched (a `ProxyToClient::Update`).
    /// A tick's updates span as many of these as keep each under [`UPDATES_FRAME_BUDGET`].
    Updates { tick: u64, frames: Vec<PlayerFrame> },
    /// `server` simulates `user` from now on; `epoch` counts the player's handoffs, so a
    /// late notice never undoes a newer one.
    Owner { user: UserId, server: ServerId, epoch: u32 },
    /// The server will not (or no longer) simulate this player.
    Kick { user: UserId, reason: String },
    /// The sender handed `user` on (its handoff number `epoch`) to a peer it lost before
    /// the peer said it took the player: unless a server has claimed the player since,
    /// it is nowhere, and is logged in again where it was last saved.
    Adrift { user: UserId, epoch: u32 },
    /// `line`, for each of `to`: players of this server's, behind this proxy, who hear it.
    Chat { line: ChatLine, to: Vec<UserId> },
}

/// One player's update, encoded whole by its server as the frame its proxy forwards
/// unread, beside what the proxy reads of it: the last input it acknowledges, from which
/// the player's inputs follow on should the server be lost ([`ProxyToServer::Login`]);
/// and whether it is full, which a player can take without the updates before it (see
/// [`packing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerFrame {
    pub user: UserId,
    pub last_input: u32,
    pub full: bool,
    pub frame: bytes::Bytes,
}

/// A player's whole state, as it travels from one owner to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandoffState {
    pub user: UserId,
    pub name: EntityName,
    pub position: Vec2,
    pub velocity: Vec2,
    pub keys: Keys,
    pub last_input: u32,
    pub inputs_applied: u32,
    /// Inputs received ahead of a gap in the sequence, or ahead of their tick, not
    /// applied yet.
    pub pending: Vec<Input>,
    /// The player's clock, once it has one: the next owner simulates on from the next
    /// of its ticks, when it would have fallen due here, so the player's prediction holds.
    pub clock: Option<HandedClock>,
    /// Where the player began each of its latest ticks walked, oldest first: how many
    /// of its ticks before the clock's `your_tick` (below [`TICKS_WALKED_AGAIN`]), and
    /// its position; from the tick of its last input applied on (no later input is for
    /// one before). A key press that comes to the next owner late for one of those ticks
    /// is walked from there, as it would have been here: the handoff costs the player no
    /// correction.
    pub trail: Vec<(u8, Vec2)>,
    pub proxy: ProxyId,
    pub epoch: u32,
    /// What the player's link was last sent by the server handing it on, once it was
    /// sent anything.
    pub view: Option<HandedView>,
}

/// What a player was last told of others, as it travels with the player: the `seq` of
/// the last update it was sent, and the handle it knows each entity by since. The next
/// owner's first update tells of those it sees under the same handles, without their
/// ids or names (see [`packing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedView {
    pub seq: u8,
    pub handles: Vec<(EntityId, packing::Handle)>,
}

/// A player's clock as it travels with the player. Servers count ticks each from its
/// own start, so the clock goes in Unix time, which every host of a cluster keeps (NTP).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HandedClock {
    /// The player's own tick its position is as of (see [`PlayerUpdate::your_tick`]).
    pub your_tick: u32,
    /// The beat the player's next tick would have been simulated on, in microseconds of
    /// Unix time: a whole number of ticks, which servers tick each a phase after
    /// (`ClusterConfig::beat_phase`).
    pub next_tick_at: u64,
    /// Of the first inputs over which a clock settles (tightening even while its player
    /// walks), how many are still to come: none once it has settled. The next owner
    /// holds it to its own count.
    pub settling_inputs: u8,
    /// Ticks the clock may still tighten by while its player walks: what it slipped and
    /// has not caught up (and what a new clock may be set wide by).
    pub catch_up_allowed: u8,
}

/// An entity entering a subscriber's view of a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GhostEntry {
    pub state: EntityState,
    pub name: EntityName,
}

/// What changed in one cell during one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellDelta {
    pub cell: CellId,
    /// A full snapshot: the subscriber forgets what it knew of the cell first.
    pub full: bool,
    pub entered: Vec<GhostEntry>,
    pub moved: Vec<EntityState>,
    pub left: Vec<EntityId>,
}

/// Server ↔ server, over the peer link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Send me these cells of your regions: a full snapshot now, then what changes.
    Subscribe(Vec<CellId>),
    Unsubscribe(Vec<CellId>),
    /// One tick's changes in the cells this peer subscribed to, as of the end of a tick
    /// that ran `at` (microseconds of Unix time): the subscriber moves each entity on
    /// from then to its own tick, however late the message came.
    Cells {
        at: u64,
        deltas: Vec<CellDelta>,
    },
    /// Take over this player, which left my regions for yours.
    Handoff(HandoffState),
    /// Input that reached me after I handed its player to you, passed on as it came:
    /// before your answer too (if you give the player back, ignore it; I apply my copy).
    ForwardInput {
        user: UserId,
        input: Input,
    },
    /// The player I handed you has left the game.
    ForwardLogout {
        user: UserId,
    },
    /// I took over the player you handed me: you may forget it.
    HandoffAccepted {
        user: UserId,
    },
    /// I cannot take the player you handed me now (I have no link to its proxy, so it
    /// would play blind): keep it, with the input you held for it, and try again later.
    HandoffDeclined {
        user: UserId,
    },
    /// `line`, said by a player of mine standing at `at`: for your players in range of
    /// it if it is said near (you subscribed to its cell), for all of them if to everyone.
    Chat {
        line: ChatLine,
        at: Vec2,
    },
    /// A chat line that reached me after I handed its player to you: yours to say.
    ForwardChat {
        user: UserId,
        channel: ChatChannel,
        text: String,
    },
}

/// The largest frame each link direction accepts. What players and proxies send is
/// small by nature, so its bound is tight: a connection's read buffer never holds
/// more than that of a frame in progress. What servers send is as large as a tick of a
/// crowded region can be.
mod frame_bounds {
    use super::*;
    use crate::framing::{Bounded, MAX_FRAME_LEN};

    /// An input, or a chat line with room for a client's mistakes: a line longer than
    /// [`MAX_CHAT_LEN`](crate::chat::MAX_CHAT_LEN) is refused whole, once decoded.
    impl Bounded for ClientToProxy {
        const MAX_FRAME_LEN: usize = 1024;
    }
    impl Bounded for ProxyToClient {
        const MAX_FRAME_LEN: usize = MAX_FRAME_LEN;
    }
    /// A login (a name of at most MAX_NAME_LEN bytes), an input, a logout, a chat line.
    impl Bounded for ProxyToServer {
        const MAX_FRAME_LEN: usize = 4096;
    }
    impl Bounded for ServerToProxy {
        const MAX_FRAME_LEN: usize = MAX_FRAME_LEN;
    }
    impl Bounded for PeerMessage {
        const MAX_FRAME_LEN: usize = MAX_FRAME_LEN;
    }
}
