//! The gate every message from another process passes before its receiver believes it,
//! each sender treated as hostile: what it has the right to say, given who it proved to
//! be in the handshake and what the cluster map gives it, and whether what it says can
//! be true at all (names bounded and printable, chat lines bounded and clean, positions
//! finite and where the sender may put them, speeds a walker can reach, input sequences
//! that follow on, entity counts bounded). A message that fails closes its link, with the [`Violation`] as the
//! reason; nothing it carried reaches the simulation. The TCP links and the in-process
//! test transport call the same functions. What needs the receiver's state is checked
//! where that state lives: a handoff of a player already here, in the server's systems,
//! closing the link the same way; and whom a proxy speaks for (the players that logged
//! in through it: a player's id is its key's, not the proxy's to issue), in the
//! server's players and the proxy's routing table.

use super::handshake::{JoinRequest, SessionTicket};
use super::packing::{Handle, UnpackProblem};
use super::{
    ChatChannel, ChatLine, EntityState, HandoffState, Input, MAX_ENTITIES_PER_MESSAGE, MAX_KNOWN_ENTITIES,
    MAX_NAME_LEN, MAX_PENDING_INPUTS, MAX_REASON_LEN, MAX_SPEED, MAX_UPDATE_EVERY, PeerMessage, PlayerFrame,
    PlayerUpdate, ProxyToServer, ServerToProxy, TICKS_WALKED_AGAIN, Welcome, tick_seconds,
};
use crate::chat::{ChatProblem, MAX_CHAT_LEN, check_chat, clean_chat};
use crate::cluster::{ClusterConfig, check_rates};
use crate::identity::{JoinChallenge, NameError, check_name};
use crate::ids::{EntityId, ProxyId, ServerId, UserId};
use crate::region_map::{CellId, RegionMap};
use glam::Vec2;

/// A message its sender had no right to send, or that cannot be true.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("{server} claimed that {claimed} owns {user}: a server speaks only for itself")]
    OwnerNotSender { server: ServerId, claimed: ServerId, user: UserId },
    #[error("the name of {entity}: {problem}")]
    BadName { entity: EntityId, problem: NameProblem },
    #[error("{entity}: {problem}")]
    BadState { entity: EntityId, problem: StateProblem },
    #[error("input 0 for {user}: sequence numbers start at 1")]
    ZeroSequence { user: UserId },
    #[error("the handoff of {user}: {problem}")]
    BadHandoff { user: UserId, problem: HandoffProblem },
    #[error("{peer} handed off {user}, whom {receiver} already owns")]
    AlreadyOwned { peer: ServerId, user: UserId, receiver: ServerId },
    #[error("{peer} named {cell}, which {receiver} does not own")]
    CellNotOurs { peer: ServerId, cell: CellId, receiver: ServerId },
    #[error("{peer} sent {cell}, which it does not own")]
    CellNotTheirs { peer: ServerId, cell: CellId },
    #[error("{count} cells in one message, more than the {max} its owner has")]
    TooManyCells { count: usize, max: usize },
    #[error("{count} entities in one message (at most {MAX_ENTITIES_PER_MESSAGE})")]
    TooManyEntities { count: usize },
    #[error("{peer} handed off {user} at {position}, outside {receiver}'s regions")]
    HandoffOutside { peer: ServerId, user: UserId, position: Vec2, receiver: ServerId },
    #[error("the update frame for {user} is not one whole frame")]
    BadFrame { user: UserId },
    #[error("a {len}-byte reason to disconnect {user} (at most {MAX_REASON_LEN})")]
    ReasonTooLong { user: UserId, len: usize },
    #[error("the welcome: {0}")]
    BadWelcome(&'static str),
    #[error("an update saying updates come every {0} ticks (1 to {MAX_UPDATE_EVERY})")]
    BadPace(u8),
    #[error("an update from {0}, which is not a server of the map")]
    UnknownServer(ServerId),
    #[error("an update that cannot be unpacked: {0}")]
    BadPacking(UnpackProblem),
    #[error("an update of {entities:?} entities changed and leaving, under {handles:?} handles")]
    HandlesMismatch { entities: (usize, usize), handles: (usize, usize) },
    #[error("an update saying input {last_input} was applied, when only {sent} were sent")]
    InputFromTheFuture { last_input: u32, sent: u32 },
    #[error("more than {per_sec} inputs and chat lines a second")]
    InputFlood { per_sec: u32 },
    #[error("a datagram of inputs {0}")]
    BadInputs(&'static str),
    #[error("the proxy sent {what} {when}")]
    OutOfOrder { what: &'static str, when: &'static str },
    #[error("a join {0}")]
    BadJoin(JoinProblem),
    #[error("a chat line of {speaker}: {problem}")]
    BadChat { speaker: EntityId, problem: ChatProblem },
    #[error("{peer} relayed a chat line of {speaker} standing at {at}, beyond its regions")]
    ChatOutside { peer: ServerId, speaker: EntityId, at: Vec2 },
}

/// What is wrong with a player's join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinProblem {
    #[error("not signed by the key it names, for this challenge and this name")]
    Signature,
    #[error("asking for a name that cannot be had: {0}")]
    Name(NameError),
}

/// What is wrong with a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    #[error("{0} bytes (at most {MAX_NAME_LEN})")]
    TooLong(usize),
    #[error("a control character")]
    ControlCharacter,
}

/// What is wrong with where an entity is or how it moves.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StateProblem {
    #[error("a position or velocity that is not finite")]
    NonFinite,
    #[error("moving at {0} units a second (at most {MAX_SPEED})")]
    TooFast(f32),
    #[error("at {0}, outside the world")]
    OutsideWorld(Vec2),
    #[error("at {position}, further from {cell} than the tether lets its owner keep it")]
    OutsideCell { position: Vec2, cell: CellId },
}

/// What is wrong with a handoff's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandoffProblem {
    #[error("{0} pending inputs (at most {MAX_PENDING_INPUTS})")]
    TooManyPending(usize),
    #[error("pending input {seq} is not after the last applied, {last_input}")]
    PendingAlreadyApplied { seq: u32, last_input: u32 },
    #[error("pending input {seq} is more than {MAX_PENDING_INPUTS} past the last applied, {last_input}")]
    PendingTooFarAhead { seq: u32, last_input: u32 },
    #[error("pending input {seq} follows {previous}: not strictly increasing")]
    PendingOutOfOrder { seq: u32, previous: u32 },
    #[error("{applied} inputs applied, more than the last applied sequence number, {last_input}")]
    MoreAppliedThanSent { applied: u32, last_input: u32 },
    #[error("it names {0}, which is not a proxy of the map")]
    UnknownProxy(ProxyId),
    #[error("epoch 0, which no handoff has")]
    EpochZero,
    #[error("its view knows {0} others (at most {MAX_KNOWN_ENTITIES})")]
    TooManyKnown(usize),
    #[error("its view names handle {0} twice, or one not below {MAX_KNOWN_ENTITIES}")]
    BadHandle(Handle),
    #[error("its trail has {0} ticks (at most {TICKS_WALKED_AGAIN})")]
    TrailTooLong(usize),
    #[error("a trail, but no clock its ticks count back from")]
    TrailWithoutClock,
    #[error("its trail's tick {back} before the clock's follows {previous:?}: not in order")]
    TrailOutOfOrder { back: u8, previous: Option<u8> },
    #[error("its trail goes {0} ticks back, before the clock's first or beyond {TICKS_WALKED_AGAIN}")]
    TrailTooFarBack(u8),
    #[error("its trail begins its tick {0} before the clock's beyond a trail's walking from where it is")]
    TrailOutOfReach(u8),
}

/// A player's name as everyone shows it: at most [`MAX_NAME_LEN`] bytes, nothing that
/// moves a cursor or rings a bell. Proxies clean what players ask for to this.
pub fn name(entity: EntityId, name: &str) -> Result<(), Violation> {
    let problem = if name.len() > MAX_NAME_LEN {
        NameProblem::TooLong(name.len())
    } else if name.chars().any(char::is_control) {
        NameProblem::ControlCharacter
    } else {
        return Ok(());
    };
    Err(Violation::BadName { entity, problem })
}

/// A player's join, as the proxy that sent `challenge` takes it: signed by the key it
/// names, for this challenge and this name (so neither a replay nor another name passes),
/// and asking for a name the rule allows. Checked in that order: a join that proves
/// nothing is told nothing about its name.
pub fn join(request: &JoinRequest, challenge: &JoinChallenge) -> Result<(), Violation> {
    request.verify(challenge).map_err(|_| Violation::BadJoin(JoinProblem::Signature))?;
    check_name(&request.name).map_err(|problem| Violation::BadJoin(JoinProblem::Name(problem)))
}

/// A chat line's text, as a proxy cleans it ([`crate::chat`]).
fn chat_text(speaker: EntityId, text: &str) -> Result<(), Violation> {
    check_chat(text).map_err(|problem| Violation::BadChat { speaker, problem })
}

/// A chat line as anyone may be shown it: its speaker's name and its text printable and
/// bounded, its text clean.
pub fn chat_line(line: &ChatLine) -> Result<(), Violation> {
    name(line.speaker, &line.name)?;
    chat_text(line.speaker, &line.text)
}

/// A chat line a player said, as its proxy takes it: no longer than the rule allows
/// (checked before anything else is read of it: an honest client cleans and cuts what it
/// sends), then cleaned. What is left, if anything, is what the proxy forwards, stamped
/// with the player's id.
pub fn said(user: UserId, channel: ChatChannel, text: &str) -> Result<Option<ProxyToServer>, Violation> {
    if text.len() > MAX_CHAT_LEN {
        return Err(Violation::BadChat { speaker: user.entity(), problem: ChatProblem::TooLong(text.len()) });
    }
    let text = clean_chat(text);
    Ok((!text.is_empty()).then_some(ProxyToServer::Chat { user, channel, text }))
}

/// Motion a simulation can produce: finite, and no faster than a walker.
fn motion(entity: EntityId, position: Vec2, velocity: Vec2) -> Result<(), Violation> {
    let problem = if !position.is_finite() || !velocity.is_finite() {
        StateProblem::NonFinite
    } else if velocity.length_squared() > MAX_SPEED * MAX_SPEED {
        StateProblem::TooFast(velocity.length())
    } else {
        return Ok(());
    };
    Err(Violation::BadState { entity, problem })
}

fn entity_count(count: usize) -> Result<(), Violation> {
    match count {
        count if count > MAX_ENTITIES_PER_MESSAGE => Err(Violation::TooManyEntities { count }),
        _ => Ok(()),
    }
}

/// An input as a server takes it, from a proxy or forwarded by a peer.
fn input(user: UserId, input: &Input) -> Result<(), Violation> {
    match input.seq {
        0 => Err(Violation::ZeroSequence { user }),
        _ => Ok(()),
    }
}

/// What a proxy may tell a server: the players it logs in and the inputs it forwards
/// must be possible. (Whom it speaks for is the server's to check: the players that
/// logged in through it.)
pub fn from_proxy(message: &ProxyToServer) -> Result<(), Violation> {
    match message {
        ProxyToServer::Login { user, name: login_name, position, .. } => {
            name(user.entity(), login_name)?;
            motion(user.entity(), *position, Vec2::ZERO)
        }
        ProxyToServer::Input { user, input: sent } => input(*user, sent),
        ProxyToServer::Chat { user, text, .. } => chat_text(user.entity(), text),
        ProxyToServer::Logout { .. }
        | ProxyToServer::Supersede { .. }
        | ProxyToServer::Resume { .. }
        | ProxyToServer::Resync { .. } => Ok(()),
    }
}

/// What a server checks its peers against: the map, and the tether (how far past its
/// regions a server keeps a player, so how far from its cells it may place one).
#[derive(Debug, Clone)]
pub struct PeerRules {
    pub map: RegionMap,
    pub tether: f32,
    /// The proxies of the map: the only ones a handed-off player can be behind.
    pub proxies: Vec<ProxyId>,
    /// The length of the cluster's tick: how far a player may walk in one.
    pub tick_seconds: f32,
}

impl PeerRules {
    pub fn new(cluster: &ClusterConfig) -> Self {
        let proxies = cluster.proxies.iter().map(|proxy| proxy.id).collect();
        let tick_seconds = tick_seconds(cluster.simulation.tick_hz);
        Self { map: cluster.region_map(), tether: cluster.simulation.tether, proxies, tick_seconds }
    }

    /// The furthest a handed-on player may have begun one of its ticks in a trail from
    /// where it is handed on: a trail's worth of ticks of walking, and the one after.
    fn trail_reach(&self) -> f32 {
        MAX_SPEED * self.tick_seconds * (TICKS_WALKED_AGAIN + 1) as f32
    }

    /// How many cells `server` owns: the most one message about its cells can name.
    fn cells_of(&self, server: ServerId) -> usize {
        let per_side = usize::from(self.map.cells_per_side());
        self.map.regions_of(server).count() * per_side * per_side
    }

    /// How far from its cell a publisher may place an entity: the tether, and the
    /// margin the publisher clamps by.
    fn cell_tolerance(&self) -> f32 {
        self.tether + self.map.cell_size() * 1e-3
    }
}

/// What `peer` may tell `receiver`: subscriptions only to cells the receiver owns, cell
/// data only for cells the sender owns, of entities within its tether of them; handoffs
/// only of players standing in the receiver's regions, in a state the sender could have
/// simulated; input only with a real sequence number; chat lines clean, of a speaker
/// standing where the sender may keep a player.
pub fn from_peer(
    message: &PeerMessage,
    receiver: ServerId,
    peer: ServerId,
    rules: &PeerRules,
) -> Result<(), Violation> {
    let map = &rules.map;
    let owned_by = |cell: &CellId, owner: ServerId| map.cell_owner(*cell) == Some(owner);
    match message {
        PeerMessage::Subscribe(cells) | PeerMessage::Unsubscribe(cells) => {
            let max = rules.cells_of(receiver);
            if cells.len() > max {
                return Err(Violation::TooManyCells { count: cells.len(), max });
            }
            match cells.iter().find(|cell| !owned_by(cell, receiver)) {
                Some(&cell) => Err(Violation::CellNotOurs { peer, cell, receiver }),
                None => Ok(()),
            }
        }
        PeerMessage::Cells { deltas, .. } => {
            let max = rules.cells_of(peer);
            if deltas.len() > max {
                return Err(Violation::TooManyCells { count: deltas.len(), max });
            }
            entity_count(deltas.iter().map(|d| d.entered.len() + d.moved.len() + d.left.len()).sum())?;
            for delta in deltas {
                if !owned_by(&delta.cell, peer) {
                    return Err(Violation::CellNotTheirs { peer, cell: delta.cell });
                }
                for entry in &delta.entered {
                    name(entry.state.id, &entry.name)?;
                }
                let states = delta.entered.iter().map(|entry| &entry.state).chain(&delta.moved);
                for state in states {
                    ghost(state, delta.cell, rules)?;
                }
            }
            Ok(())
        }
        PeerMessage::Handoff(state) => {
            handoff(state, rules)?;
            match map.owner_at(state.position) {
                Some(owner) if owner == receiver => Ok(()),
                _ => Err(Violation::HandoffOutside { peer, user: state.user, position: state.position, receiver }),
            }
        }
        PeerMessage::ForwardInput { user, input: sent } => input(*user, sent),
        PeerMessage::ForwardChat { user, text, .. } => chat_text(user.entity(), text),
        PeerMessage::Chat { line, at } => {
            chat_line(line)?;
            match at.is_finite() && map.within_tether(peer, *at, rules.tether) {
                true => Ok(()),
                false => Err(Violation::ChatOutside { peer, speaker: line.speaker, at: *at }),
            }
        }
        PeerMessage::ForwardLogout { .. }
        | PeerMessage::HandoffAccepted { .. }
        | PeerMessage::HandoffDeclined { .. } => Ok(()),
    }
}

/// A ghost as its owner publishes it: moving as a walker does, and where the owner may
/// keep it, in `cell` or within the tether of it.
fn ghost(state: &EntityState, cell: CellId, rules: &PeerRules) -> Result<(), Violation> {
    motion(state.id, state.position, state.velocity)?;
    let (min, max) = rules.map.cell_bounds(cell);
    let position = state.position;
    if position.distance(position.clamp(min, max)) > rules.cell_tolerance() {
        return Err(Violation::BadState { entity: state.id, problem: StateProblem::OutsideCell { position, cell } });
    }
    Ok(())
}

/// A player's state as a previous owner hands it over: a name as a proxy would have
/// cleaned it, motion a walker has, behind a proxy of the map, its input sequence as a
/// server's queue holds it (the pending inputs strictly increasing, each after the last
/// applied and at most [`MAX_PENDING_INPUTS`] past it; no more inputs applied than the
/// last sequence number), a [`trail`] it could have walked, and a view of handles.
fn handoff(state: &HandoffState, rules: &PeerRules) -> Result<(), Violation> {
    let user = state.user;
    name(user.entity(), &state.name)?;
    motion(user.entity(), state.position, state.velocity)?;
    let bad = |problem| Err(Violation::BadHandoff { user, problem });
    if !rules.proxies.contains(&state.proxy) {
        return bad(HandoffProblem::UnknownProxy(state.proxy));
    }
    if state.epoch == 0 {
        return bad(HandoffProblem::EpochZero);
    }
    let last_input = state.last_input;
    if state.inputs_applied > last_input {
        return bad(HandoffProblem::MoreAppliedThanSent { applied: state.inputs_applied, last_input });
    }
    if state.pending.len() > MAX_PENDING_INPUTS {
        return bad(HandoffProblem::TooManyPending(state.pending.len()));
    }
    let mut previous = last_input;
    for &Input { seq, .. } in &state.pending {
        if seq <= last_input {
            return bad(HandoffProblem::PendingAlreadyApplied { seq, last_input });
        }
        if seq - last_input > MAX_PENDING_INPUTS as u32 {
            return bad(HandoffProblem::PendingTooFarAhead { seq, last_input });
        }
        if seq <= previous {
            return bad(HandoffProblem::PendingOutOfOrder { seq, previous });
        }
        previous = seq;
    }
    trail(state, rules).or_else(bad)?;
    if let Some(view) = &state.view {
        if view.handles.len() > MAX_KNOWN_ENTITIES {
            return bad(HandoffProblem::TooManyKnown(view.handles.len()));
        }
        let mut taken = [false; MAX_KNOWN_ENTITIES];
        for &(_, handle) in &view.handles {
            match taken.get_mut(usize::from(handle)) {
                Some(taken) if !*taken => *taken = true,
                _ => return bad(HandoffProblem::BadHandle(handle)),
            }
        }
    }
    Ok(())
}

/// A handed-on player's trail: none without a clock to count its ticks back from; in
/// order, from no further back than the clock's first tick or [`TICKS_WALKED_AGAIN`];
/// and each tick begun within a trail's walk of where the player is handed on.
fn trail(state: &HandoffState, rules: &PeerRules) -> Result<(), HandoffProblem> {
    if state.trail.len() > TICKS_WALKED_AGAIN as usize {
        return Err(HandoffProblem::TrailTooLong(state.trail.len()));
    }
    let Some(clock) = state.clock else {
        return if state.trail.is_empty() { Ok(()) } else { Err(HandoffProblem::TrailWithoutClock) };
    };
    let mut previous = None;
    for &(back, at) in &state.trail {
        if previous.is_some_and(|previous| back >= previous) {
            return Err(HandoffProblem::TrailOutOfOrder { back, previous });
        }
        if u32::from(back) >= TICKS_WALKED_AGAIN || u32::from(back) > clock.your_tick {
            return Err(HandoffProblem::TrailTooFarBack(back));
        }
        if !at.is_finite() || at.distance(state.position) > rules.trail_reach() {
            return Err(HandoffProblem::TrailOutOfReach(back));
        }
        previous = Some(back);
    }
    Ok(())
}

/// What `server` may tell a proxy: that it owns a player, never that another server
/// does; update frames that are each one whole frame (the proxy forwards them to players
/// unread); reasons a player can be shown; chat lines anyone may be shown, to a bounded
/// list of players. (What it says of a player the proxy does not
/// have goes nowhere: the routing table knows its own players.)
pub fn from_server(message: &ServerToProxy, server: ServerId) -> Result<(), Violation> {
    match message {
        ServerToProxy::Updates { frames, .. } => {
            entity_count(frames.len())?;
            for PlayerFrame { user, frame, .. } in frames {
                let declared = frame.get(..4).map(|prefix| u32::from_be_bytes(prefix.try_into().expect("four bytes")));
                if declared.is_none_or(|len| len as usize != frame.len() - 4) {
                    return Err(Violation::BadFrame { user: *user });
                }
            }
            Ok(())
        }
        &ServerToProxy::Owner { user, server: claimed, .. } => match claimed == server {
            true => Ok(()),
            false => Err(Violation::OwnerNotSender { server, claimed, user }),
        },
        ServerToProxy::Kick { user, reason } => match reason.len() {
            len if len > MAX_REASON_LEN => Err(Violation::ReasonTooLong { user: *user, len }),
            _ => Ok(()),
        },
        // Whether the sender may say so is the routing table's to know: the player's
        // owner on record must be the sender, as of an earlier handoff.
        ServerToProxy::Adrift { .. } => Ok(()),
        // To whom it may say it is the routing table's to know too: its own players.
        ServerToProxy::Chat { line, to } => {
            entity_count(to.len())?;
            chat_line(line)
        }
    }
}

/// A welcome from `proxy` (the proxy the handshake named), before player `user` uses
/// it: from that proxy, for that player, under a name anyone could show, with rates
/// every process could run with. The map in it was checked as it was decoded
/// ([`RegionMap`] cannot hold a bad grid).
pub fn welcome(welcome: &Welcome, proxy: ProxyId, user: UserId) -> Result<(), Violation> {
    if welcome.proxy != proxy {
        return Err(Violation::BadWelcome("it names another proxy"));
    }
    if welcome.user != user {
        return Err(Violation::BadWelcome("it is for another player"));
    }
    if welcome.ticket.0.len() > SessionTicket::MAX_LEN {
        return Err(Violation::BadWelcome("its session ticket is longer than any"));
    }
    name(user.entity(), &welcome.name)?;
    check_rates(welcome.tick_hz, welcome.view_radius).map_err(Violation::BadWelcome)
}

/// An update, unpacked ([`UpdateUnpacker`](super::UpdateUnpacker)), before the player it
/// is for folds it in: from a server of its map, bounded in entities, every position finite and in the world,
/// every speed a walker's, every name printable.
pub fn update(update: &PlayerUpdate, welcome: &Welcome) -> Result<(), Violation> {
    let map = &welcome.map;
    if map.regions_of(update.server).next().is_none() {
        return Err(Violation::UnknownServer(update.server));
    }
    entity_count(update.changed.len() + update.left.len() + update.names.len())?;
    let handles = (update.changed_handles.len(), update.left_handles.len());
    if handles != (update.changed.len(), update.left.len()) {
        return Err(Violation::HandlesMismatch { entities: (update.changed.len(), update.left.len()), handles });
    }
    let beyond =
        update.changed_handles.iter().chain(&update.left_handles).find(|&&h| usize::from(h) >= MAX_KNOWN_ENTITIES);
    if let Some(&handle) = beyond {
        return Err(Violation::BadPacking(UnpackProblem::HandleOutOfRange(handle)));
    }
    if !(1..=MAX_UPDATE_EVERY).contains(&update.update_every) {
        return Err(Violation::BadPace(update.update_every));
    }
    let world = map.world_size();
    for state in std::iter::once(&update.you).chain(&update.changed) {
        motion(state.id, state.position, state.velocity)?;
        if state.position.cmplt(Vec2::ZERO).any() || state.position.cmpgt(world).any() {
            return Err(Violation::BadState { entity: state.id, problem: StateProblem::OutsideWorld(state.position) });
        }
    }
    for (entity, entity_name) in &update.names {
        name(*entity, entity_name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{Keys, WALK_SPEED};
    use crate::framing::encoded_frame;
    use crate::protocol::{CellDelta, EntityName, GhostEntry, ProxyToClient};
    use crate::protocol::{HandedClock, HandedView};

    const ADA: UserId = UserId(0xada0_0000_0000_0007);

    /// The default map: 2×2 regions of 1024 units (4 cells a side), servers 1 2 below, 3 4 above.
    fn rules() -> PeerRules {
        PeerRules::new(&ClusterConfig::default_local())
    }

    fn at(x: f32, y: f32) -> EntityState {
        EntityState { id: ADA.entity(), position: Vec2::new(x, y), velocity: Vec2::X * WALK_SPEED }
    }

    fn handed_off(edit: impl FnOnce(&mut HandoffState)) -> Result<(), Violation> {
        let mut state = HandoffState {
            user: ADA,
            name: EntityName::from("ada").unwrap(),
            position: Vec2::new(1100.0, 100.0),
            velocity: Vec2::X * WALK_SPEED,
            keys: Keys::RIGHT,
            last_input: 10,
            inputs_applied: 10,
            pending: vec![Input { seq: 12, keys: Keys::UP, tick: 3 }, Input { seq: 14, keys: Keys::DOWN, tick: 5 }],
            clock: Some(HandedClock {
                your_tick: 2,
                next_tick_at: 1_780_000_000_000_000,
                settling_inputs: 0,
                catch_up_allowed: 0,
            }),
            trail: vec![(1, Vec2::new(1090.0, 100.0)), (0, Vec2::new(1095.0, 100.0))],
            proxy: ProxyId(1),
            epoch: 1,
            view: Some(HandedView { seq: 7, handles: vec![(EntityId(5), 0), (EntityId(3), 2)] }),
        };
        edit(&mut state);
        from_peer(&PeerMessage::Handoff(state), ServerId(2), ServerId(1), &rules())
    }

    fn problem(result: Result<(), Violation>) -> HandoffProblem {
        match result {
            Err(Violation::BadHandoff { problem, .. }) => problem,
            other => panic!("expected a bad handoff, got {other:?}"),
        }
    }

    #[test]
    fn a_proxy_speaks_only_sense() {
        let login = |name: &str, position| ProxyToServer::Login {
            user: ADA,
            name: EntityName::from(name).unwrap(),
            position,
            last_input: 0,
        };
        assert_eq!(from_proxy(&login("ada", Vec2::ONE)), Ok(()));
        // A name too long does not decode (EntityName); one that shows what it is not does not pass.
        assert!(matches!(
            from_proxy(&login("a\u{1b}[2J", Vec2::ONE)),
            Err(Violation::BadName { problem: NameProblem::ControlCharacter, .. })
        ));
        assert!(matches!(
            from_proxy(&login("ada", Vec2::new(f32::NAN, 0.0))),
            Err(Violation::BadState { problem: StateProblem::NonFinite, .. })
        ));
        let input = |seq| ProxyToServer::Input { user: ADA, input: Input { seq, keys: Keys::UP, tick: seq } };
        assert_eq!(from_proxy(&input(1)), Ok(()));
        assert_eq!(from_proxy(&input(0)), Err(Violation::ZeroSequence { user: ADA }));
    }

    #[test]
    fn a_handoff_must_be_a_state_its_sender_could_have_simulated() {
        assert_eq!(handed_off(|_| {}), Ok(()));
        assert!(matches!(handed_off(|s| s.name = EntityName::from("\n").unwrap()), Err(Violation::BadName { .. })));
        let bad_state = |edit: fn(&mut HandoffState)| match handed_off(edit) {
            Err(Violation::BadState { problem, .. }) => problem,
            other => panic!("expected a bad state, got {other:?}"),
        };
        assert_eq!(bad_state(|s| s.velocity.y = f32::INFINITY), StateProblem::NonFinite);
        assert_eq!(bad_state(|s| s.position.x = f32::NAN), StateProblem::NonFinite);
        assert!(matches!(bad_state(|s| s.velocity = Vec2::splat(1e6)), StateProblem::TooFast(_)));
        let outside = |s: &mut HandoffState| (s.position.x, s.trail) = (100.0, Vec::new());
        assert!(matches!(handed_off(outside), Err(Violation::HandoffOutside { .. })));

        assert_eq!(problem(handed_off(|s| s.proxy = ProxyId(9))), HandoffProblem::UnknownProxy(ProxyId(9)));
        assert_eq!(problem(handed_off(|s| s.epoch = 0)), HandoffProblem::EpochZero);
        assert_eq!(
            problem(handed_off(|s| s.inputs_applied = 11)),
            HandoffProblem::MoreAppliedThanSent { applied: 11, last_input: 10 }
        );
        assert_eq!(
            problem(handed_off(|s| s.pending[0].seq = 0)),
            HandoffProblem::PendingAlreadyApplied { seq: 0, last_input: 10 }
        );
        assert_eq!(
            problem(handed_off(|s| s.pending[0].seq = 10)),
            HandoffProblem::PendingAlreadyApplied { seq: 10, last_input: 10 }
        );
        assert_eq!(
            problem(handed_off(|s| s.pending[1].seq = 12)),
            HandoffProblem::PendingOutOfOrder { seq: 12, previous: 12 }
        );
        assert_eq!(
            problem(handed_off(|s| s.pending[1].seq = u32::MAX)),
            HandoffProblem::PendingTooFarAhead { seq: u32::MAX, last_input: 10 }
        );
        let flood = |s: &mut HandoffState| {
            s.pending =
                (11..).take(MAX_PENDING_INPUTS + 1).map(|seq| Input { seq, keys: Keys::UP, tick: seq }).collect();
        };
        assert_eq!(problem(handed_off(flood)), HandoffProblem::TooManyPending(MAX_PENDING_INPUTS + 1));
        let view = |edit: fn(&mut HandedView)| move |s: &mut HandoffState| edit(s.view.as_mut().unwrap());
        assert_eq!(problem(handed_off(view(|v| v.handles[1].1 = 0))), HandoffProblem::BadHandle(0));
        let beyond = MAX_KNOWN_ENTITIES as Handle;
        assert_eq!(
            problem(handed_off(view(|v| v.handles[0].1 = MAX_KNOWN_ENTITIES as Handle))),
            HandoffProblem::BadHandle(beyond)
        );
        let crowd =
            |v: &mut HandedView| v.handles = (0..=MAX_KNOWN_ENTITIES as u64).map(|i| (EntityId(i), 0)).collect();
        assert_eq!(problem(handed_off(view(crowd))), HandoffProblem::TooManyKnown(MAX_KNOWN_ENTITIES + 1));
        let out_of_order = HandoffProblem::TrailOutOfOrder { back: 1, previous: Some(0) };
        assert_eq!(problem(handed_off(|s| s.trail.swap(0, 1))), out_of_order);
        let twice = HandoffProblem::TrailOutOfOrder { back: 1, previous: Some(1) };
        assert_eq!(problem(handed_off(|s| s.trail[1].0 = 1)), twice);
        assert_eq!(problem(handed_off(|s| s.trail[0].0 = 3)), HandoffProblem::TrailTooFarBack(3), "before tick 0");
        let old = |s: &mut HandoffState| {
            s.clock.as_mut().unwrap().your_tick = 100;
            s.trail[0].0 = TICKS_WALKED_AGAIN as u8;
        };
        assert_eq!(problem(handed_off(old)), HandoffProblem::TrailTooFarBack(TICKS_WALKED_AGAIN as u8));
        assert_eq!(problem(handed_off(|s| s.clock = None)), HandoffProblem::TrailWithoutClock);
        let far = |s: &mut HandoffState| s.trail[0].1 = Vec2::new(1100.0, 400.0);
        assert_eq!(problem(handed_off(far)), HandoffProblem::TrailOutOfReach(1));
        let nowhere = |s: &mut HandoffState| s.trail[1].1.y = f32::NAN;
        assert_eq!(problem(handed_off(nowhere)), HandoffProblem::TrailOutOfReach(0));
        let long = |s: &mut HandoffState| {
            s.trail = (0..=TICKS_WALKED_AGAIN as u8).rev().map(|back| (back, Vec2::new(1100.0, 100.0))).collect();
        };
        assert_eq!(problem(handed_off(long)), HandoffProblem::TrailTooLong(TICKS_WALKED_AGAIN as usize + 1));
        assert_eq!(handed_off(|s| (s.clock, s.trail) = (None, Vec::new())), Ok(()), "no clock, no trail");
        // A full queue, each input just within reach, is what a server may hold.
        let full = |s: &mut HandoffState| {
            s.pending = (11..).take(MAX_PENDING_INPUTS).map(|seq| Input { seq, keys: Keys::UP, tick: seq }).collect();
        };
        assert_eq!(handed_off(full), Ok(()));
    }

    #[test]
    fn forwarded_input_needs_a_real_sequence_number() {
        let forward = |seq| PeerMessage::ForwardInput { user: ADA, input: Input { seq, keys: Keys::UP, tick: seq } };
        assert_eq!(from_peer(&forward(3), ServerId(2), ServerId(1), &rules()), Ok(()));
        assert_eq!(
            from_peer(&forward(0), ServerId(2), ServerId(1), &rules()),
            Err(Violation::ZeroSequence { user: ADA })
        );
    }

    #[test]
    fn chat_lines_are_clean_bounded_and_said_where_their_speaker_may_stand() {
        let said = |text: &str| ProxyToServer::Chat { user: ADA, channel: ChatChannel::Near, text: text.into() };
        assert_eq!(from_proxy(&said("hello")), Ok(()));
        let bad = |result: Result<(), Violation>| match result {
            Err(Violation::BadChat { problem, .. }) => problem,
            other => panic!("expected a bad chat line, got {other:?}"),
        };
        assert_eq!(bad(from_proxy(&said(""))), ChatProblem::Empty);
        assert_eq!(bad(from_proxy(&said("a\u{202e}b"))), ChatProblem::NotClean);
        assert_eq!(bad(from_proxy(&said(&"x".repeat(MAX_CHAT_LEN + 1)))), ChatProblem::TooLong(MAX_CHAT_LEN + 1));

        let line = |name: &str, text: &str| ChatLine {
            speaker: ADA.entity(),
            name: name.into(),
            channel: ChatChannel::Everyone,
            text: text.into(),
        };
        // From server 2, whose region is (1024, 0) to (2048, 1024); the tether is 24.
        let relayed = |line, x| {
            from_peer(&PeerMessage::Chat { line, at: Vec2::new(x, 10.0) }, ServerId(1), ServerId(2), &rules())
        };
        assert_eq!(relayed(line("ada", "hi"), 1100.0), Ok(()));
        assert_eq!(relayed(line("ada", "hi"), 1010.0), Ok(()), "tethered just past its border");
        for x in [500.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(relayed(line("ada", "hi"), x), Err(Violation::ChatOutside { .. })), "{x}");
        }
        assert!(matches!(relayed(line("ada\n", "hi"), 1100.0), Err(Violation::BadName { .. })));
        assert_eq!(bad(relayed(line("ada", " hi"), 1100.0)), ChatProblem::NotClean);
        let forwarded = PeerMessage::ForwardChat { user: ADA, channel: ChatChannel::Near, text: "\u{7}".into() };
        assert_eq!(bad(from_peer(&forwarded, ServerId(2), ServerId(1), &rules())), ChatProblem::NotClean);

        let to_players = |to: Vec<UserId>| ServerToProxy::Chat { line: line("ada", "hi"), to };
        assert_eq!(from_server(&to_players(vec![ADA]), ServerId(1)), Ok(()));
        let crowd = to_players(vec![ADA; MAX_ENTITIES_PER_MESSAGE + 1]);
        assert!(matches!(from_server(&crowd, ServerId(1)), Err(Violation::TooManyEntities { .. })));
        let rude = ServerToProxy::Chat { line: line("ada", "\u{1b}[2J"), to: vec![ADA] };
        assert_eq!(bad(from_server(&rude, ServerId(1))), ChatProblem::NotClean);
    }

    fn cells(deltas: Vec<CellDelta>) -> Result<(), Violation> {
        // From server 2, which owns the region from (1024, 0) to (2048, 1024): cells 4..8 × 0..4.
        from_peer(&PeerMessage::Cells { at: 1_780_000_000_000_000, deltas }, ServerId(1), ServerId(2), &rules())
    }

    fn delta(cell: CellId, entered: Vec<GhostEntry>, moved: Vec<EntityState>) -> CellDelta {
        CellDelta { cell, full: false, entered, moved, left: vec![] }
    }

    #[test]
    fn ghosts_must_be_named_sanely_and_stand_within_the_tether_of_their_cell() {
        let cell = CellId { x: 4, y: 0 };
        let entry = |state, name: &str| GhostEntry { state, name: EntityName::from(name).unwrap() };
        assert_eq!(cells(vec![delta(cell, vec![entry(at(1100.0, 10.0), "bo")], vec![])]), Ok(()));
        // Tethered just past its owner's border (24 units), into server 1's region.
        assert_eq!(cells(vec![delta(cell, vec![], vec![at(1001.0, 10.0)])]), Ok(()));
        let outside = cells(vec![delta(cell, vec![], vec![at(990.0, 10.0)])]);
        assert!(matches!(outside, Err(Violation::BadState { problem: StateProblem::OutsideCell { .. }, .. })));
        let far = cells(vec![delta(cell, vec![entry(at(2000.0, 1000.0), "bo")], vec![])]);
        assert!(matches!(far, Err(Violation::BadState { problem: StateProblem::OutsideCell { .. }, .. })));
        let nan = cells(vec![delta(cell, vec![], vec![at(f32::NAN, 10.0)])]);
        assert!(matches!(nan, Err(Violation::BadState { problem: StateProblem::NonFinite, .. })));
        let bell = cells(vec![delta(cell, vec![entry(at(1100.0, 10.0), "bo\u{7}")], vec![])]);
        assert!(matches!(bell, Err(Violation::BadName { problem: NameProblem::ControlCharacter, .. })));
        let foreign = cells(vec![delta(CellId { x: 0, y: 0 }, vec![], vec![])]);
        assert_eq!(foreign, Err(Violation::CellNotTheirs { peer: ServerId(2), cell: CellId { x: 0, y: 0 } }));
    }

    #[test]
    fn cell_messages_are_bounded_in_cells_and_entities() {
        let cell = CellId { x: 4, y: 0 };
        // Server 2 owns one region of 4×4 cells.
        let many = vec![delta(cell, vec![], vec![]); 17];
        assert_eq!(cells(many), Err(Violation::TooManyCells { count: 17, max: 16 }));
        let crowd = CellDelta { left: vec![EntityId(1); MAX_ENTITIES_PER_MESSAGE + 1], ..delta(cell, vec![], vec![]) };
        assert_eq!(cells(vec![crowd]), Err(Violation::TooManyEntities { count: MAX_ENTITIES_PER_MESSAGE + 1 }));
        let subscribe = PeerMessage::Subscribe(vec![CellId { x: 0, y: 0 }; 17]);
        let refused = from_peer(&subscribe, ServerId(1), ServerId(2), &rules());
        assert_eq!(refused, Err(Violation::TooManyCells { count: 17, max: 16 }));
        let theirs = PeerMessage::Unsubscribe(vec![cell]);
        let refused = from_peer(&theirs, ServerId(1), ServerId(2), &rules());
        assert_eq!(refused, Err(Violation::CellNotOurs { peer: ServerId(2), cell, receiver: ServerId(1) }));
    }

    #[test]
    fn a_server_speaks_only_of_itself_in_whole_frames() {
        let server = ServerId(1);
        let owner = |claimed| ServerToProxy::Owner { user: ADA, server: claimed, epoch: 2 };
        assert_eq!(from_server(&owner(server), server), Ok(()));
        assert_eq!(
            from_server(&owner(ServerId(2)), server),
            Err(Violation::OwnerNotSender { server, claimed: ServerId(2), user: ADA })
        );
        let rant = ServerToProxy::Kick { user: ADA, reason: "!".repeat(MAX_REASON_LEN + 1) };
        assert!(matches!(from_server(&rant, server), Err(Violation::ReasonTooLong { .. })));

        let disconnect = encoded_frame(&ProxyToClient::Disconnect { reason: "bye".into() }).unwrap();
        let updates = |frame| ServerToProxy::Updates {
            tick: 1,
            frames: vec![PlayerFrame { user: ADA, last_input: 0, full: true, frame }],
        };
        assert_eq!(from_server(&updates(disconnect.clone()), server), Ok(()));
        for broken in [disconnect.slice(..disconnect.len() - 1), disconnect.slice(..2), bytes::Bytes::new()] {
            assert_eq!(from_server(&updates(broken), server), Err(Violation::BadFrame { user: ADA }));
        }
    }

    fn welcome() -> Welcome {
        let config = ClusterConfig::default_local();
        let map = config.region_map();
        let ticket = SessionTicket(vec![7; 48]);
        Welcome {
            user: ADA,
            name: "ada".into(),
            proxy: ProxyId(1),
            resumed: false,
            ticket,
            map,
            view_radius: 400.0,
            tick_hz: 20.0,
            datagrams: None,
        }
    }

    #[test]
    fn a_welcome_must_come_from_the_proxy_for_this_player_and_have_sane_rates() {
        assert_eq!(super::welcome(&welcome(), ProxyId(1), ADA), Ok(()));
        assert!(matches!(super::welcome(&welcome(), ProxyId(2), ADA), Err(Violation::BadWelcome(_))));
        assert!(matches!(super::welcome(&welcome(), ProxyId(1), UserId(1)), Err(Violation::BadWelcome(_))));
        let rude = Welcome { name: "\u{202e}ada\n".into(), ..welcome() };
        let long = Welcome { ticket: SessionTicket(vec![0; SessionTicket::MAX_LEN + 1]), ..welcome() };
        assert!(matches!(super::welcome(&long, ProxyId(1), ADA), Err(Violation::BadWelcome(_))));
        assert!(matches!(super::welcome(&rude, ProxyId(1), ADA), Err(Violation::BadName { .. })));
        for tick_hz in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300, 1e6] {
            let odd = Welcome { tick_hz, ..welcome() };
            assert!(matches!(super::welcome(&odd, ProxyId(1), ADA), Err(Violation::BadWelcome(_))), "{tick_hz}");
        }
        for view_radius in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e30] {
            let odd = Welcome { view_radius, ..welcome() };
            assert!(matches!(super::welcome(&odd, ProxyId(1), ADA), Err(Violation::BadWelcome(_))), "{view_radius}");
        }
    }

    fn updated(edit: impl FnOnce(&mut PlayerUpdate)) -> Result<(), Violation> {
        let mut other = at(100.0, 100.0);
        other.id = EntityId(5);
        let mut update = PlayerUpdate {
            tick: 10,
            server: ServerId(4),
            last_input: 3,
            inputs_applied: 3,
            you: at(1500.0, 1500.0),
            your_tick: Some(88),
            full: false,
            changed: vec![other],
            left: vec![EntityId(6)],
            names: vec![(EntityId(5), EntityName::from("bo").unwrap())],
            changed_handles: vec![0],
            left_handles: vec![1],
            update_every: 1,
            budget_spent: false,
            others_counted: None,
        };
        edit(&mut update);
        super::update(&update, &welcome())
    }

    #[test]
    fn an_update_is_from_a_server_of_the_map_and_in_the_world() {
        assert_eq!(updated(|_| {}), Ok(()));
        assert_eq!(updated(|u| u.server = ServerId(9)), Err(Violation::UnknownServer(ServerId(9))));
        assert_eq!(updated(|u| u.update_every = MAX_UPDATE_EVERY), Ok(()));
        for odd in [0, MAX_UPDATE_EVERY + 1, u8::MAX] {
            assert_eq!(updated(|u| u.update_every = odd), Err(Violation::BadPace(odd)));
        }
        let bad_state = |edit: fn(&mut PlayerUpdate)| match updated(edit) {
            Err(Violation::BadState { problem, .. }) => problem,
            other => panic!("expected a bad state, got {other:?}"),
        };
        assert_eq!(bad_state(|u| u.you.position.x = f32::NAN), StateProblem::NonFinite);
        assert_eq!(bad_state(|u| u.changed[0].velocity.x = f32::NEG_INFINITY), StateProblem::NonFinite);
        assert!(matches!(bad_state(|u| u.changed[0].velocity.x = 1e9), StateProblem::TooFast(_)));
        assert!(matches!(bad_state(|u| u.changed[0].position.y = -1.0), StateProblem::OutsideWorld(_)));
        assert!(matches!(bad_state(|u| u.you.position.x = 5000.0), StateProblem::OutsideWorld(_)));
        assert!(matches!(
            updated(|u| u.names[0].1 = EntityName::from("\u{7}").unwrap()),
            Err(Violation::BadName { .. })
        ));
        let crowd = updated(|u| u.left = vec![EntityId(1); MAX_ENTITIES_PER_MESSAGE]);
        assert!(matches!(crowd, Err(Violation::TooManyEntities { .. })));
        // A handle for each entity, each one a player may know.
        let mismatch = Violation::HandlesMismatch { entities: (1, 1), handles: (0, 1) };
        assert_eq!(updated(|u| u.changed_handles.clear()), Err(mismatch));
        assert!(matches!(updated(|u| u.left_handles.push(2)), Err(Violation::HandlesMismatch { .. })));
        const BEYOND: Handle = MAX_KNOWN_ENTITIES as Handle;
        let beyond: [fn(&mut PlayerUpdate); 2] = [|u| u.left_handles[0] = BEYOND, |u| u.changed_handles[0] = BEYOND];
        for edit in beyond {
            assert_eq!(updated(edit), Err(Violation::BadPacking(UnpackProblem::HandleOutOfRange(BEYOND))));
        }
    }
}
