//! The subscriber side. Every tick, a system takes the view discs of our players (plus
//! a margin), lists the cells of foreign regions they touch, diffs that against what we
//! are subscribed to, and sends `Subscribe`/`Unsubscribe` to the owners. A wider margin
//! for unsubscribing keeps a player pacing along a border from churning subscriptions.
//! What the owners send back becomes ghosts.

use super::RegionSystems;
use super::ghosts::{Ghost, Ghosts, MOST_CAUGHT_UP_SECONDS, caught_up};
use crate::net::{CellDeltasReceived, NetSystems, PeerLinks, PeerLost};
use crate::players::{Player, Players};
use crate::settings::ServerSettings;
use crate::tick::{SimulationTick, TickWallClock};
use bevy::platform::collections::{HashMap, HashSet};
use bevy::prelude::*;
use tessera_shared::components::Position;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::protocol::PeerMessage;
use tessera_shared::region_map::CellId;
use tracing::debug;

/// Subscribe to a cell once a view disc comes this close to it.
pub const SUBSCRIBE_MARGIN: f32 = 64.0;
/// Unsubscribe only once every view disc is this far from it.
pub const UNSUBSCRIBE_MARGIN: f32 = 160.0;

/// The foreign cells we are subscribed to, by owner.
#[derive(Resource, Default, Debug)]
pub struct Subscriptions(pub HashMap<ServerId, HashSet<CellId>>);

impl Subscriptions {
    pub fn count(&self) -> usize {
        self.0.values().map(HashSet::len).sum()
    }
}

pub struct SubscriberPlugin;

impl Plugin for SubscriberPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Subscriptions>()
            .init_resource::<Ghosts>()
            .add_systems(
                PreUpdate,
                (forget_lost_peers, apply_deltas).chain().in_set(RegionSystems).after(NetSystems::Receive),
            )
            .add_systems(
                PostUpdate,
                update_subscriptions
                    .in_set(RegionSystems)
                    .before(NetSystems::Send)
                    .run_if(resource_changed::<SimulationTick>),
            );
    }
}

/// Foreign cells, by owner.
type CellsByOwner = HashMap<ServerId, HashSet<CellId>>;

/// Foreign cells within `subscribe` of any of our players, and those within the wider
/// `keep`, by owner: one walk over the players and the cells around them for both, as
/// this runs every tick for every player.
fn foreign_cells_near<'a>(
    settings: &ServerSettings,
    players: impl Iterator<Item = &'a Position>,
    subscribe: f32,
    keep: f32,
) -> (CellsByOwner, CellsByOwner) {
    let map = &settings.map;
    let (mut wanted, mut kept) = (CellsByOwner::default(), CellsByOwner::default());
    for position in players {
        // Most players are nowhere near a border: skip them before looking at cells.
        if !map.regions_within(position.0, keep).any(|region| map.owner(region) != Some(settings.id)) {
            continue;
        }
        for cell in map.cells_within(position.0, keep) {
            let Some(owner) = map.cell_owner(cell).filter(|&owner| owner != settings.id) else { continue };
            kept.entry(owner).or_default().insert(cell);
            if map.distance_to_cell(position.0, cell) <= subscribe {
                wanted.entry(owner).or_default().insert(cell);
            }
        }
    }
    (wanted, kept)
}

fn update_subscriptions(
    mut commands: Commands,
    settings: Res<ServerSettings>,
    players: Query<&Position, With<Player>>,
    mut subscriptions: ResMut<Subscriptions>,
    mut peers: ResMut<PeerLinks>,
    mut ghosts: ResMut<Ghosts>,
) {
    let (wanted, kept) = if settings.broadcast_baseline {
        // The baseline the design rejects: every foreign cell, whoever looks.
        let mut every = CellsByOwner::default();
        for cell in settings.map.cells() {
            match settings.map.cell_owner(cell) {
                Some(owner) if owner != settings.id => {
                    every.entry(owner).or_default().insert(cell);
                }
                _ => {}
            }
        }
        (every.clone(), every)
    } else {
        let view = settings.view_radius();
        foreign_cells_near(&settings, players.iter(), view + SUBSCRIBE_MARGIN, view + UNSUBSCRIBE_MARGIN)
    };
    let peer_ids: Vec<ServerId> = peers.ids().collect();
    let mut dropped_cells = HashSet::new();
    for peer in peer_ids {
        let current = subscriptions.0.entry(peer).or_default();
        let empty = HashSet::new();
        let add: Vec<CellId> = wanted.get(&peer).unwrap_or(&empty).difference(current).copied().collect();
        let remove: Vec<CellId> =
            current.iter().filter(|cell| !kept.get(&peer).is_some_and(|k| k.contains(*cell))).copied().collect();
        if !remove.is_empty() {
            for cell in &remove {
                current.remove(cell);
            }
            dropped_cells.extend(remove.iter().copied());
            peers.send(peer, PeerMessage::Unsubscribe(remove));
        }
        if !add.is_empty() && peers.send(peer, PeerMessage::Subscribe(add.clone())) {
            subscriptions.0.entry(peer).or_default().extend(add);
        }
    }
    if !dropped_cells.is_empty() {
        ghosts.despawn_where(&mut commands, |ghost| dropped_cells.contains(&ghost.cell));
    }
}

fn forget_lost_peers(
    mut commands: Commands,
    mut lost: MessageReader<PeerLost>,
    mut subscriptions: ResMut<Subscriptions>,
    mut ghosts: ResMut<Ghosts>,
) {
    for &PeerLost { peer } in lost.read() {
        // Re-subscribed from scratch (full snapshots) once the peer is back.
        subscriptions.0.remove(&peer);
        ghosts.despawn_where(&mut commands, |ghost| ghost.owner == peer);
    }
}

fn apply_deltas(
    mut commands: Commands,
    mut received: MessageReader<CellDeltasReceived>,
    subscriptions: Res<Subscriptions>,
    mut ghosts: ResMut<Ghosts>,
    players: Res<Players>,
    wall: Res<TickWallClock>,
    settings: Res<ServerSettings>,
) {
    for CellDeltasReceived { peer, at, deltas } in received.read() {
        // As of our last tick, which our next moves them on from, as it moves our players.
        let since = wall.seconds_since(*at, MOST_CAUGHT_UP_SECONDS);
        let caught_up = |state| caught_up(state, since, &settings.map);
        for delta in deltas.iter().cloned() {
            if !subscriptions.0.get(peer).is_some_and(|cells| cells.contains(&delta.cell)) {
                // Sent before our unsubscribe reached the peer.
                debug!("ignoring {} from {peer}: not subscribed", delta.cell);
                continue;
            }
            let ghost = Ghost { owner: *peer, cell: delta.cell };
            if delta.full {
                ghosts.despawn_where(&mut commands, |origin| *origin == ghost);
            }
            for mut entry in delta.entered {
                // A player handed to us may still show up in its old owner's region for a tick.
                if !players.0.contains_key(&UserId(entry.state.id.0)) {
                    entry.state = caught_up(entry.state);
                    ghosts.spawn_or_update(&mut commands, ghost, entry);
                }
            }
            for state in delta.moved {
                ghosts.update(&mut commands, ghost, caught_up(state));
            }
            for id in delta.left {
                // It may have entered another region of the same owner already.
                if ghosts.origin(id) == Some(ghost) {
                    ghosts.despawn(&mut commands, id);
                }
            }
        }
    }
}
