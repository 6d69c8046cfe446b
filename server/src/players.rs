//! Players this server owns: spawning them on login, despawning them on logout or when
//! their proxy goes, and queueing their inputs so each is applied exactly once, in
//! sequence order, whatever order they arrive in. (Input and logouts for a player that
//! has just been handed to a peer are forwarded: input by the transport as it arrives,
//! see `crate::net::Forwarding`, the rest by `crate::handoff`; a peer may forward them
//! only for a player it handed us.) Sequence numbers come from the network: nothing here
//! does arithmetic on them that could overflow.
//!
//! A player's id is its key's, so it may sign in again while an older session of it
//! still plays. The newest session wins: a login of a player already here takes it over
//! where it stands (a fresh input sequence and view), and a proxy's word that the player
//! signed in on another server ([`SupersedeRequest`]) ends its session here. Either way
//! the older session's proxy, if another, is told why, and the player is never in two
//! places. Only the proxy a player came through speaks for it (its input, its logout).

use crate::components::Visible;
use crate::input_queue::InputQueue;
use crate::interest::KnownEntities;
use crate::movement::Trail;
use crate::net::{
    InputReceived, LoginRequest, LogoutRequest, NetSystems, ProxyConnected, ProxyLinks, ProxyLost, ResumeRequest,
    ResyncRequest, SupersedeRequest, Via,
};
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::prelude::*;
use std::collections::HashMap;
use tessera_shared::components::{Keys, Position, Velocity};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::protocol::{EntityName, SIGNED_IN_AGAIN, ServerToProxy};
use tracing::{debug, info, warn};
/// A player whose proxy was lost, since `since` (a tick): it stands still, seen by
/// everyone, until its session is resumed through another proxy or the grace period
/// ([`ServerSettings::park_grace`]) is over.
#[derive(Component, Debug, Clone, Copy)]
pub struct Parked {
    pub since: u64,
}

/// A player simulated by this server.
#[derive(Component, Debug, Clone)]
#[require(Position, Velocity, InputQueue, Trail)]
pub struct Player {
    /// The proxy this player came through: where its updates go.
    pub proxy: ProxyId,
    /// How many times this player has been handed off.
    pub epoch: u32,
    /// The server that handed it to us, if one did: the only peer that may forward its
    /// input and logout.
    pub handed_by: Option<ServerId>,
}

impl Player {
    /// Everything an owned player is made of, whether it logged in here or was handed
    /// over: its ids (a player's entity id is its user id), who it is, where it is.
    pub fn bundle(user: UserId, name: EntityName, player: Player, position: Vec2) -> impl Bundle {
        (user, user.entity(), player, Visible { name }, Position(position))
    }

    /// Whether `via` may pass on this player's input and logout.
    pub fn speaks_for(&self, via: Via) -> bool {
        match via {
            Via::Proxy(proxy) => proxy == self.proxy,
            Via::Peer(peer) => self.handed_by == Some(peer),
        }
    }
}

/// Players owned here, by user id.
#[derive(Resource, Default, Debug)]
pub struct Players(pub HashMap<UserId, Entity>);

/// Login, logout, and input handling.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlayerSystems;

pub struct PlayersPlugin;

impl Plugin for PlayersPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Players>().add_systems(
            PreUpdate,
            (
                park_lost_proxies,
                expire_parked,
                announce_owners,
                resume_sessions,
                start_over_on_request,
                end_superseded_sessions,
                spawn_logins,
                queue_inputs,
                despawn_logouts,
            )
                .chain()
                .in_set(PlayerSystems)
                .after(NetSystems::Receive),
        );
    }
}

fn spawn_logins(
    mut commands: Commands,
    mut requests: MessageReader<LoginRequest>,
    mut players: ResMut<Players>,
    mut links: ResMut<ProxyLinks>,
    settings: Res<ServerSettings>,
    owned: Query<(&Position, &Player)>,
) {
    for LoginRequest { proxy, user, name, mut position, last_input } in requests.read().cloned() {
        let here = players.0.get(&user).and_then(|&entity| owned.get(entity).ok().map(|found| (entity, found)));
        if let Some((entity, (&live, older))) = here {
            // The same player signed in again before its older session ended (through
            // another proxy, or the same one): the newer session takes over where the
            // player stands, with a fresh input sequence and view; the older one ends.
            info!("{user} signed in again through {proxy}: its session through {} ends", older.proxy);
            end_older_session(&mut links, user, older.proxy, proxy);
            position = live.0;
            commands.entity(entity).despawn();
        } else if settings.map.owner_at(position) != Some(settings.id) {
            warn!("{proxy} asked to spawn {user} at {position}, outside this server's regions");
            let reason = format!("{} does not own {position}", settings.id);
            links.send(proxy, ServerToProxy::Kick { user, reason });
            continue;
        }
        info!("{user} ({name}) joined through {proxy} at {position}");
        let player = Player { proxy, epoch: 0, handed_by: None };
        let queue = InputQueue::resume(Keys::empty(), last_input, last_input, None);
        let entity = commands.spawn((Player::bundle(user, name, player, position), queue)).id();
        players.0.insert(user, entity);
    }
}

/// A player signed in again through a proxy, on another server: its session here is an
/// older one and ends (saved as it goes), its proxy told why if it is another.
fn end_superseded_sessions(
    mut commands: Commands,
    mut requests: MessageReader<SupersedeRequest>,
    mut players: ResMut<Players>,
    owned: Query<&Player>,
    mut links: ResMut<ProxyLinks>,
) {
    for &SupersedeRequest { proxy, user } in requests.read() {
        let Some((entity, older)) = players.0.get(&user).and_then(|&e| owned.get(e).ok().map(|p| (e, p))) else {
            continue;
        };
        info!("{user} signed in again through {proxy}, elsewhere: its session through {} ends", older.proxy);
        end_older_session(&mut links, user, older.proxy, proxy);
        players.0.remove(&user);
        commands.entity(entity).despawn();
    }
}

/// Tells the proxy of `user`'s older session, through `older`, that it ends: the player
/// carries on through `newer` now. (A proxy replacing a session of its own ends the
/// older one itself.)
fn end_older_session(links: &mut ProxyLinks, user: UserId, older: ProxyId, newer: ProxyId) {
    if older != newer {
        links.send(older, ServerToProxy::Kick { user, reason: SIGNED_IN_AGAIN.into() });
    }
}

/// A proxy that (re)connects hears which of its players this server owns: an `Owner`
/// notice sent while its link was down would otherwise leave it routing elsewhere. What
/// was sent over the old link may not have arrived: each starts over with a full update.
fn announce_owners(
    mut connected: MessageReader<ProxyConnected>,
    settings: Res<ServerSettings>,
    mut owned: Query<(&UserId, &Player, &mut KnownEntities), Without<Parked>>,
    mut links: ResMut<ProxyLinks>,
) {
    for &ProxyConnected { proxy } in connected.read() {
        // Parked players' sessions are for whichever proxy they resume through: a proxy
        // started again knows nothing of them.
        for (&user, player, mut known) in owned.iter_mut().filter(|(_, player, _)| player.proxy == proxy) {
            links.send(proxy, ServerToProxy::Owner { user, server: settings.id, epoch: player.epoch });
            *known = KnownEntities::default();
        }
    }
}

fn queue_inputs(
    mut inputs: MessageReader<InputReceived>,
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    players: Res<Players>,
    mut queues: Query<(&mut InputQueue, &Player)>,
    mut links: ResMut<ProxyLinks>,
) {
    for &InputReceived { user, input, via, .. } in inputs.read() {
        let Some(mut queue) = players.0.get(&user).and_then(|&e| queues.get_mut(e).ok()) else {
            debug!("input {} for {user}, who is not here", input.seq);
            continue;
        };
        if !queue.1.speaks_for(via) {
            warn!("ignoring input {} for {user} from {via:?}, which did not hand the player to us", input.seq);
            continue;
        }
        match queue.0.push(input, tick.0) {
            Ok(waits_longer) => settings.stats.count_input_wait_change(waits_longer),
            Err(err) => {
                warn!("{user}: {err}; disconnecting the player");
                let proxy = queue.1.proxy;
                links.send(proxy, ServerToProxy::Kick { user, reason: err.to_string() });
            }
        }
    }
}

fn despawn_logouts(
    mut commands: Commands,
    mut requests: MessageReader<LogoutRequest>,
    mut players: ResMut<Players>,
    owned: Query<&Player>,
) {
    for &LogoutRequest { user, via } in requests.read() {
        let Some(&entity) = players.0.get(&user) else { continue };
        if !owned.get(entity).is_ok_and(|player| player.speaks_for(via)) {
            warn!("ignoring a logout of {user} from {via:?}, which did not hand the player to us");
            continue;
        }
        players.0.remove(&user);
        info!("{user} left");
        commands.entity(entity).despawn();
    }
}

/// A player whose proxy is gone stops where it is and waits, seen by all, for its
/// session to be resumed through another proxy.
fn park_lost_proxies(
    mut commands: Commands,
    mut lost: MessageReader<ProxyLost>,
    mut owned: Query<(Entity, &Player, &mut InputQueue), Without<Parked>>,
    tick: Res<SimulationTick>,
) {
    for &ProxyLost { proxy } in lost.read() {
        let mut parked = 0;
        for (entity, _, mut queue) in owned.iter_mut().filter(|(_, player, _)| player.proxy == proxy) {
            queue.keys = Keys::empty();
            commands.entity(entity).insert(Parked { since: tick.0 });
            parked += 1;
        }
        warn!("lost {proxy}: its {parked} players wait for their sessions to be resumed");
    }
}

/// A player that lost an update sent it by datagram starts over with a full one, as
/// its proxy asks: unless one is on its way already, or the proxy is not its own.
fn start_over_on_request(
    mut requests: MessageReader<ResyncRequest>,
    players: Res<Players>,
    mut owned: Query<(&Player, &mut KnownEntities)>,
) {
    for &ResyncRequest { proxy, user } in requests.read() {
        let Some(&entity) = players.0.get(&user) else { continue };
        let Ok((player, mut known)) = owned.get_mut(entity) else { continue };
        if player.proxy == proxy && !known.starting_over() {
            debug!("{user} lost an update: it starts over with a full one");
            *known = KnownEntities::default();
        }
    }
}

/// A player parked past the grace period is not coming back: saved and removed.
fn expire_parked(
    mut commands: Commands,
    mut players: ResMut<Players>,
    parked: Query<(Entity, &UserId, &Parked)>,
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
) {
    for (entity, user, parked) in &parked {
        if tick.0.saturating_sub(parked.since) >= settings.park_ticks() {
            info!("{user} was not resumed in {:?}: it leaves", settings.park_grace);
            players.0.remove(user);
            commands.entity(entity).despawn();
        }
    }
}

/// A proxy says a player resumes its session through it: if the player is here (parked,
/// or still playing through an older connection, which ends), that proxy is its own from
/// now on, hears so, and is sent everything in view. The input queue carries on: the
/// player sends again what it sent and was not told was applied, and nothing is applied
/// twice.
fn resume_sessions(
    mut commands: Commands,
    mut requests: MessageReader<ResumeRequest>,
    players: Res<Players>,
    mut owned: Query<(&mut Player, &mut KnownEntities, Has<Parked>)>,
    mut links: ResMut<ProxyLinks>,
    settings: Res<ServerSettings>,
) {
    for &ResumeRequest { proxy, user } in requests.read() {
        let Some(&entity) = players.0.get(&user) else { continue };
        let Ok((mut player, mut known, parked)) = owned.get_mut(entity) else { continue };
        if !parked {
            end_older_session(&mut links, user, player.proxy, proxy);
        }
        info!("{user} resumes its session through {proxy}");
        player.proxy = proxy;
        *known = KnownEntities::default();
        commands.entity(entity).remove::<Parked>();
        links.send(proxy, ServerToProxy::Owner { user, server: settings.id, epoch: player.epoch });
    }
}
