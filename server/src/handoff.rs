//! Handoff: when a player walks past its owner's border by more than the tether, its
//! whole state (position, velocity, keys, input sequence, pending inputs, proxy) goes
//! to the next owner over the peer link, and this server stops simulating it in the
//! same tick. The new owner tells the player's proxy, which routes input there from
//! then on; whatever input (or chat line) still reaches the old owner is forwarded,
//! never dropped (input by the transport as it arrives: [`Forwarding`]), and sequence
//! numbers make sure no input is applied twice. At no tick do two servers simulate the
//! player.

use crate::components::Visible;
use crate::input_queue::{InputQueue, MAX_INPUT_LEAD_TICKS, PlayerClock};
use crate::interest::KnownEntities;
use crate::movement::{MovementSystems, Trail};
use crate::net::{
    ChatSaid, Forwarding, HandoffAnswered, HandoffReceived, InputReceived, LogoutRequest, NetSystems, PeerLinks,
    PeerLost, ProxyLinks, Via,
};
use crate::players::{Player, PlayerSystems, Players};
use crate::regions::ghosts::Ghosts;
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use crate::tick::{SimulationTick, TickWallClock};
use bevy::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::link::WeakOutbound;
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{
    ChatChannel, HandedClock, HandoffState, Input, MAX_PENDING_INPUTS, PeerMessage, ServerToProxy,
};
use tracing::{info, warn};

/// How long (in ticks) input for a departed player is still forwarded to its new owner.
const FORWARD_FOR_TICKS: u64 = 20 * 60;
/// How long (in ticks) a player a peer gave back stays before it is handed on again: a
/// second, about what a proxy takes to redial a server it lost.
const DECLINED_HOLD_TICKS: u64 = 20;
/// Chat lines held for a player in flight: its proxy lets five through at once, and one
/// a second after that.
const MAX_HELD_CHAT: usize = 8;

/// A player that left this server recently.
#[derive(Debug, Clone)]
pub struct Departure {
    /// Its new owner.
    pub to: ServerId,
    pub at_tick: u64,
    /// The player as it left: who may still pass on its input and logout.
    pub player: Player,
    /// Its state as handed on: what it comes back as if the new owner gives it back.
    pub state: HandoffState,
    /// Whether the new owner said it took the player over. Until then, chat lines and a
    /// logout that reach us for the player are held here: passed on once it does,
    /// applied here if it gives the player back.
    pub accepted: bool,
    /// Copies of the input passed on before the new owner answered: applied here if it
    /// gives the player back, dropped once it takes it.
    pub held_inputs: Vec<Input>,
    pub held_chat: Vec<(ChatChannel, String)>,
    pub held_logout: bool,
}

/// Players that left this server recently, and where they went.
#[derive(Resource)]
pub struct HandedOff {
    departed: HashMap<UserId, Departure>,
    /// The transport's copy of where their input goes, kept with `departed`.
    forwarding: Forwarding,
    /// Players a peer gave back, and the tick it did: not handed on again before
    /// [`DECLINED_HOLD_TICKS`] have passed.
    declined: HashMap<UserId, u64>,
}

impl HandedOff {
    fn new(forwarding: Forwarding) -> Self {
        Self { departed: HashMap::new(), forwarding, declined: HashMap::new() }
    }

    /// `departure` left over `link`, which carries its handoff.
    fn depart(&mut self, user: UserId, departure: Departure, link: WeakOutbound<PeerMessage>) {
        self.forwarding.route(user, departure.player.proxy, link);
        self.departed.insert(user, departure);
    }

    /// Forgets a departure: input for its player is ours to handle again.
    fn forget(&mut self, user: UserId) -> Option<Departure> {
        self.forwarding.unroute(user);
        self.departed.remove(&user)
    }

    /// Forgets departures older than [`FORWARD_FOR_TICKS`], as our tick `now` runs.
    fn expire(&mut self, now: u64) {
        let forwarding = &self.forwarding;
        self.departed.retain(|&user, departure| {
            let keep = now.saturating_sub(departure.at_tick) < FORWARD_FOR_TICKS;
            if !keep {
                forwarding.unroute(user);
            }
            keep
        });
        self.declined.retain(|_, &mut at| now.saturating_sub(at) < DECLINED_HOLD_TICKS);
    }
}

#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandoffSystems;

pub struct HandoffPlugin;

impl Plugin for HandoffPlugin {
    fn build(&self, app: &mut App) {
        // The protocol plugin's, which the transport shares.
        let forwarding = app.world().resource::<Forwarding>().clone();
        app.insert_resource(HandedOff::new(forwarding))
            .add_systems(FixedUpdate, hand_off_departing.in_set(HandoffSystems).after(MovementSystems))
            .add_systems(
                PreUpdate,
                (settle_departures, accept_handoffs)
                    .in_set(HandoffSystems)
                    .after(NetSystems::Receive)
                    .before(PlayerSystems),
            )
            .add_systems(PreUpdate, forward_to_new_owners.after(PlayerSystems));
    }
}

/// A player that may be leaving: all of it that goes with it, and what it was told.
type Departing<'a> = (
    Entity,
    &'a UserId,
    &'a Player,
    &'a Visible,
    &'a InputQueue,
    &'a Trail,
    &'a Position,
    &'a Velocity,
    &'a KnownEntities,
);

#[allow(clippy::too_many_arguments)]
fn hand_off_departing(
    mut commands: Commands,
    tick: Res<SimulationTick>,
    wall: Res<TickWallClock>,
    settings: Res<ServerSettings>,
    departing: Query<Departing>,
    mut players: ResMut<Players>,
    mut peers: ResMut<PeerLinks>,
    mut handed_off: ResMut<HandedOff>,
) {
    handed_off.expire(tick.0);
    let tether = settings.cluster.simulation.tether;
    for (entity, &user, player, visible, queue, trail, position, velocity, known) in &departing {
        if settings.map.within_tether(settings.id, position.0, tether) || handed_off.declined.contains_key(&user) {
            continue;
        }
        let Some(next) = settings.map.owner_at(position.0) else { continue };
        // With no link to the next owner the player stays here, simulated, until there is one.
        let clock = hand_clock_over(queue, tick.0, &wall);
        let state = HandoffState {
            user,
            name: visible.name,
            position: position.0,
            velocity: velocity.0,
            keys: queue.keys,
            last_input: queue.last_input,
            inputs_applied: queue.applied,
            pending: queue.pending().collect(),
            clock,
            // Its ticks counted back from the clock's, as the next owner counts them.
            trail: clock.map_or_else(Vec::new, |clock| trail.handing_on(clock.your_tick, queue.last_input_tick())),
            proxy: player.proxy,
            // The epoch came from the network (with the player's last handoff): it saturates.
            epoch: player.epoch.saturating_add(1),
            view: known.handing_on(),
        };
        let Some(link) = peers.weak_outbound(next) else { continue };
        // Let go before the next owner can take over, as seen from outside too.
        players.0.remove(&user);
        settings.stats.players.store(players.0.len() as u64, Ordering::Relaxed);
        if !peers.send(next, PeerMessage::Handoff(state.clone())) {
            players.0.insert(user, entity);
            continue;
        }
        info!("handing {user} to {next} at {}", position.0);
        commands.entity(entity).despawn();
        let departure = Departure {
            to: next,
            at_tick: tick.0,
            player: player.clone(),
            state,
            accepted: false,
            held_inputs: Vec::new(),
            held_chat: Vec::new(),
            held_logout: false,
        };
        handed_off.depart(user, departure, link);
        settings.stats.handoffs_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// The player's clock as it goes with the player, as our tick `now` ends: the beat its
/// next tick falls due on here.
fn hand_clock_over(queue: &InputQueue, now: u64, wall: &TickWallClock) -> Option<HandedClock> {
    let clock = queue.clock()?;
    Some(HandedClock {
        your_tick: queue.your_tick()?,
        next_tick_at: wall.beat_of(clock.next_due(now)),
        // Its pending inputs, counted here, are counted again as the next owner takes them.
        settling_inputs: clock
            .settling_inputs()
            .saturating_add(u8::try_from(queue.pending().count()).unwrap_or(u8::MAX)),
        catch_up_allowed: clock.catch_up_allowed(),
    })
}

/// Spawns a player from its handed-on `state`, as `player`, as our tick `now` ends, and
/// counts it here. Its clock carries on: its next tick is simulated in our tick on the
/// beat it fell due on where it came from (held within the most any input waits,
/// whatever a peer says), as far as the hosts' clocks agree: that tick runs our phase
/// after the beat, as the one it left ran its own.
fn spawn_handed(
    commands: &mut Commands,
    players: &mut Players,
    state: HandoffState,
    player: Player,
    now: u64,
    wall: &TickWallClock,
    stats: &ServerStats,
) -> Entity {
    let user = state.user;
    let clock = state.clock.map(|handed| {
        let most_ahead = u64::try_from(MAX_INPUT_LEAD_TICKS).unwrap_or(1);
        let next = wall.tick_on_beat(handed.next_tick_at, most_ahead);
        PlayerClock::carrying_on(handed.your_tick, next, handed.settling_inputs, handed.catch_up_allowed)
    });
    let mut queue = InputQueue::resume(state.keys, state.last_input, state.inputs_applied, clock);
    // Pushed as if they came now, and as late, if they are (those given back after a
    // declined handoff, held meanwhile, most likely); any it could not have held is
    // dropped (the peer gate refuses a handoff carrying one).
    for input in state.pending {
        if let Ok(longer) = queue.push(input, now) {
            stats.count_input_wait_change(longer);
        }
    }
    let known = state.view.map(KnownEntities::handed).unwrap_or_default();
    let trail = state.clock.map_or_else(Trail::default, |clock| Trail::handed(clock.your_tick, &state.trail));
    let entity = commands
        .spawn((
            Player::bundle(user, state.name, player, state.position),
            Velocity(state.velocity),
            queue,
            trail,
            known,
        ))
        .id();
    players.0.insert(user, entity);
    entity
}

#[allow(clippy::too_many_arguments)]
fn accept_handoffs(
    mut commands: Commands,
    mut received: MessageReader<HandoffReceived>,
    tick: Res<SimulationTick>,
    wall: Res<TickWallClock>,
    settings: Res<ServerSettings>,
    mut players: ResMut<Players>,
    mut ghosts: ResMut<Ghosts>,
    mut handed_off: ResMut<HandedOff>,
    mut peers: ResMut<PeerLinks>,
    mut proxies: ResMut<ProxyLinks>,
) {
    for HandoffReceived { peer, state } in received.read().cloned() {
        let user = state.user;
        if players.0.contains_key(&user) {
            peers.refuse(peer, Violation::AlreadyOwned { peer, user, receiver: settings.id });
            continue;
        }
        if !proxies.contains(state.proxy) {
            // Its updates would go nowhere, and its proxy would never hear who owns it.
            info!("{peer} handed over {user}, whose {} is not linked here now: giving it back", state.proxy);
            peers.send(peer, PeerMessage::HandoffDeclined { user });
            continue;
        }
        ghosts.despawn(&mut commands, user.entity());
        let (position, epoch, proxy) = (state.position, state.epoch, state.proxy);
        let player = Player { proxy, epoch, handed_by: Some(peer) };
        spawn_handed(&mut commands, &mut players, state, player, tick.0, &wall, &settings.stats);
        handed_off.forget(user);
        proxies.send(proxy, ServerToProxy::Owner { user, server: settings.id, epoch });
        peers.send(peer, PeerMessage::HandoffAccepted { user });
        settings.stats.handoffs_in.fetch_add(1, Ordering::Relaxed);
        info!("took over {user} from {peer} at {position}");
    }
}

/// Input, chat lines and logouts that reach us for a player we handed off were sent
/// before its proxy heard of the handoff: the new owner gets them (and applies each input
/// once, by its sequence number), if they came from whoever spoke for the player here.
/// Input goes on at once, behind the handoff on the same link (from its proxy, the
/// transport passed it on as it arrived: [`Forwarding`]), and a copy is held until the
/// new owner answers (applied here if it gives the player back): held for its answer
/// instead, an input would reach it two ticks after it reached us, late for the tick it
/// was pressed for, and the player would see its prediction corrected (the snaps under
/// lag in BENCHMARKS.md were every one such an input). Chat lines and a logout wait for
/// the answer: nothing hangs on their tick.
fn forward_to_new_owners(
    mut inputs: MessageReader<InputReceived>,
    mut said: MessageReader<ChatSaid>,
    mut logouts: MessageReader<LogoutRequest>,
    players: Res<Players>,
    mut handed_off: ResMut<HandedOff>,
    mut peers: ResMut<PeerLinks>,
) {
    fn departure<'a>(
        handed_off: &'a mut HandedOff,
        players: &Players,
        user: UserId,
        via: Via,
    ) -> Option<&'a mut Departure> {
        let departure = handed_off.departed.get_mut(&user);
        departure.filter(|d| !players.0.contains_key(&user) && d.player.speaks_for(via))
    }
    for &InputReceived { user, input, via, passed_on } in inputs.read() {
        if passed_on && players.0.contains_key(&user) {
            // Back here another way (logged in or resumed here again): its input is
            // ours, not for where it went (it was applied here all the same).
            handed_off.forget(user);
            continue;
        }
        let Some(d) = departure(&mut handed_off, &players, user, via) else { continue };
        if !passed_on {
            peers.send(d.to, PeerMessage::ForwardInput { user, input });
        }
        // As many as a player's queue holds, like any server's.
        if !d.accepted && d.held_inputs.len() < MAX_PENDING_INPUTS {
            d.held_inputs.push(input);
        }
    }
    for ChatSaid { user, channel, text, via } in said.read() {
        let (user, channel, text) = (*user, *channel, text.clone());
        match departure(&mut handed_off, &players, user, *via) {
            Some(d) if d.accepted => _ = peers.send(d.to, PeerMessage::ForwardChat { user, channel, text }),
            Some(d) if d.held_chat.len() < MAX_HELD_CHAT => d.held_chat.push((channel, text)),
            _ => {}
        }
    }
    for &LogoutRequest { user, via } in logouts.read() {
        match departure(&mut handed_off, &players, user, via) {
            Some(d) if d.accepted => _ = peers.send(d.to, PeerMessage::ForwardLogout { user }),
            Some(d) => d.held_logout = true,
            None => {}
        }
    }
}

/// The new owner's answer settles a handoff. Taken, the chat lines and a logout held
/// for the player follow it (its input went on as it came). Given back, the player is
/// ours again as it left, with what was held applied (its inputs) and said (its chat
/// lines) here, and is not handed on again for a while. A peer lost before it answered
/// may have lost the player in flight: its proxy is told it is adrift, and (unless the
/// peer took it after all and said so) logs it in again where it was saved.
#[allow(clippy::too_many_arguments)]
fn settle_departures(
    mut commands: Commands,
    mut answers: MessageReader<HandoffAnswered>,
    mut lost: MessageReader<PeerLost>,
    tick: Res<SimulationTick>,
    wall: Res<TickWallClock>,
    settings: Res<ServerSettings>,
    mut players: ResMut<Players>,
    mut handed_off: ResMut<HandedOff>,
    mut peers: ResMut<PeerLinks>,
    mut proxies: ResMut<ProxyLinks>,
    mut said: MessageWriter<ChatSaid>,
) {
    for &HandoffAnswered { peer, user, taken } in answers.read() {
        let Some(departure) = handed_off.departed.get_mut(&user).filter(|d| d.to == peer && !d.accepted) else {
            continue;
        };
        if taken {
            departure.accepted = true;
            // Passed on already, as they came; and the view is the new owner's to carry on.
            departure.held_inputs.clear();
            departure.state.view = None;
            for (channel, text) in std::mem::take(&mut departure.held_chat) {
                peers.send(peer, PeerMessage::ForwardChat { user, channel, text });
            }
            if departure.held_logout {
                peers.send(peer, PeerMessage::ForwardLogout { user });
            }
            continue;
        }
        let Departure { mut state, player, held_inputs, held_chat, held_logout, .. } =
            handed_off.forget(user).expect("found above");
        if held_logout || players.0.contains_key(&user) {
            // It left meanwhile (saved as it was handed on), or is back some other way.
            continue;
        }
        info!("{peer} gave {user} back: it stays here for now");
        // Queued like any input (each was checked on arrival, and is applied once).
        state.pending.extend(held_inputs);
        let via = Via::Proxy(player.proxy);
        said.write_batch(held_chat.into_iter().map(|(channel, text)| ChatSaid { user, channel, text, via }));
        spawn_handed(&mut commands, &mut players, state, player, tick.0, &wall, &settings.stats);
        handed_off.declined.insert(user, tick.0);
        settings.stats.players.store(players.0.len() as u64, Ordering::Relaxed);
    }
    for &PeerLost { peer } in lost.read() {
        let unanswered: Vec<(UserId, ProxyId, u32)> = handed_off
            .departed
            .iter()
            .filter(|(_, d)| d.to == peer && !d.accepted)
            .map(|(&user, d)| (user, d.player.proxy, d.state.epoch))
            .collect();
        for (user, proxy, epoch) in unanswered {
            warn!("lost {peer} before it said whether it took {user}: telling {proxy} the player may be adrift");
            handed_off.forget(user);
            proxies.send(proxy, ServerToProxy::Adrift { user, epoch });
        }
    }
}
