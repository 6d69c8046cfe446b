//! Handoff: when a player walks past its owner's border by more than the tether, its
//! whole state (position, velocity, keys, input sequence, pending inputs, proxy) goes
//! to the next owner over the peer link, and this server stops simulating it in the
//! same tick. The new owner tells the player's proxy, which routes input there from
//! then on; whatever input still reaches the old owner is forwarded, never dropped, and
//! sequence numbers make sure nothing is applied twice. At no tick do two servers
//! simulate the player.

use crate::components::Visible;
use crate::movement::MovementSystems;
use crate::net::{
    HandoffAccepted, HandoffReceived, InputReceived, LogoutRequest, NetSystems, PeerLinks, PeerLost, ProxyLinks,
};
use crate::players::{InputQueue, Player, PlayerSystems, Players};
use crate::regions::ghosts::Ghosts;
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{HandoffState, PeerMessage, ServerToProxy};
use tracing::{info, warn};

/// How long (in ticks) input for a departed player is still forwarded to its new owner.
const FORWARD_FOR_TICKS: u64 = 20 * 60;

/// A player that left this server recently.
#[derive(Debug, Clone)]
pub struct Departure {
    /// Its new owner.
    pub to: ServerId,
    pub at_tick: u64,
    /// The player as it left: who may still pass on its input and logout.
    pub player: Player,
    /// Whether the new owner confirmed it took the player over.
    pub accepted: bool,
}

/// Players that left this server recently, and where they went.
#[derive(Resource, Default, Debug)]
pub struct HandedOff(pub HashMap<UserId, Departure>);

#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandoffSystems;

pub struct HandoffPlugin;

impl Plugin for HandoffPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<HandedOff>()
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

fn hand_off_departing(
    mut commands: Commands,
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    departing: Query<(Entity, &UserId, &Player, &Visible, &InputQueue, &Position, &Velocity)>,
    mut players: ResMut<Players>,
    mut peers: ResMut<PeerLinks>,
    mut handed_off: ResMut<HandedOff>,
) {
    handed_off.0.retain(|_, departure| tick.0.saturating_sub(departure.at_tick) < FORWARD_FOR_TICKS);
    let tether = settings.cluster.simulation.tether;
    for (entity, &user, player, visible, queue, position, velocity) in &departing {
        if settings.map.within_tether(settings.id, position.0, tether) {
            continue;
        }
        let Some(next) = settings.map.owner_at(position.0) else { continue };
        // With no link to the next owner the player stays here, simulated, until there is one.
        let state = HandoffState {
            user,
            name: visible.name.clone(),
            position: position.0,
            velocity: velocity.0,
            keys: queue.keys,
            last_input: queue.last_input,
            inputs_applied: queue.applied,
            pending: queue.pending().collect(),
            proxy: player.proxy,
            // The epoch came from the network (with the player's last handoff): it saturates.
            epoch: player.epoch.saturating_add(1),
        };
        if !peers.contains(next) {
            continue;
        }
        // Let go before the next owner can take over, as seen from outside too.
        players.0.remove(&user);
        settings.stats.players.store(players.0.len() as u64, Ordering::Relaxed);
        if !peers.send(next, PeerMessage::Handoff(state)) {
            players.0.insert(user, entity);
            continue;
        }
        info!("handing {user} to {next} at {}", position.0);
        commands.entity(entity).despawn();
        handed_off.0.insert(user, Departure { to: next, at_tick: tick.0, player: player.clone(), accepted: false });
        settings.stats.handoffs_out.fetch_add(1, Ordering::Relaxed);
    }
}

#[allow(clippy::too_many_arguments)]
fn accept_handoffs(
    mut commands: Commands,
    mut received: MessageReader<HandoffReceived>,
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
            // Its proxy went away while the player was in flight: nobody would ever log it out.
            warn!("{peer} handed over {user}, whose {} is not connected here; dropping the player", state.proxy);
            continue;
        }
        ghosts.despawn(&mut commands, user.entity());
        let queue = InputQueue::resume(state.keys, state.last_input, state.inputs_applied, state.pending);
        let entity = commands
            .spawn((
                Player::bundle(
                    user,
                    state.name,
                    Player { proxy: state.proxy, epoch: state.epoch, handed_by: Some(peer) },
                    state.position,
                ),
                Velocity(state.velocity),
                queue,
            ))
            .id();
        players.0.insert(user, entity);
        handed_off.0.remove(&user);
        proxies.send(state.proxy, ServerToProxy::Owner { user, server: settings.id, epoch: state.epoch });
        peers.send(peer, PeerMessage::HandoffAccepted { user });
        settings.stats.handoffs_in.fetch_add(1, Ordering::Relaxed);
        info!("took over {user} from {peer} at {}", state.position);
    }
}

/// Input and logouts that reach us for a player we handed off were sent before its proxy
/// heard of the handoff: the new owner gets them (and applies each input once, by its
/// sequence number), if they came from whoever spoke for the player here.
fn forward_to_new_owners(
    mut inputs: MessageReader<InputReceived>,
    mut logouts: MessageReader<LogoutRequest>,
    players: Res<Players>,
    handed_off: Res<HandedOff>,
    mut peers: ResMut<PeerLinks>,
) {
    let new_owner = |user, via| {
        let departure = handed_off.0.get(&user).filter(|d| !players.0.contains_key(&user) && d.player.speaks_for(via));
        departure.map(|d| d.to)
    };
    for &InputReceived { user, input, via } in inputs.read() {
        if let Some(to) = new_owner(user, via) {
            peers.send(to, PeerMessage::ForwardInput { user, input });
        }
    }
    for &LogoutRequest { user, via } in logouts.read() {
        if let Some(to) = new_owner(user, via) {
            peers.send(to, PeerMessage::ForwardLogout { user });
        }
    }
}

/// Confirmed handoffs are settled. A link lost before the new owner confirmed may have
/// lost the player in flight: its proxy is told to disconnect it, so the player rejoins
/// instead of standing frozen on no server.
fn settle_departures(
    mut accepted: MessageReader<HandoffAccepted>,
    mut lost: MessageReader<PeerLost>,
    mut handed_off: ResMut<HandedOff>,
    mut proxies: ResMut<ProxyLinks>,
) {
    for &HandoffAccepted { peer, user } in accepted.read() {
        if let Some(departure) = handed_off.0.get_mut(&user)
            && departure.to == peer
        {
            departure.accepted = true;
        }
    }
    for &PeerLost { peer } in lost.read() {
        let unconfirmed: Vec<(UserId, ProxyId)> = handed_off
            .0
            .iter()
            .filter(|(_, d)| d.to == peer && !d.accepted)
            .map(|(&user, d)| (user, d.player.proxy))
            .collect();
        for (user, proxy) in unconfirmed {
            warn!("lost {peer} before it confirmed taking {user}: disconnecting the player so it rejoins");
            handed_off.0.remove(&user);
            let reason = format!("lost while moving to {peer}; please rejoin");
            proxies.send(proxy, ServerToProxy::Kick { user, reason });
        }
    }
}
