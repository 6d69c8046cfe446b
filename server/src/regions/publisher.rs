//! The publisher side: each of our cells with subscribers is diffed once per tick
//! against what was last published (entered, moved, left); each subscriber gets one
//! frame holding only the cells it subscribed to, a full snapshot for any cell it just
//! subscribed to. An entity counts as moved only when its velocity changed or it
//! strayed from where subscribers extrapolate it (their movement system moves ghosts
//! as it moves players), so a crowd walking straight costs almost nothing. A tick's
//! deltas for one subscriber go in as few messages as keep each within the entities a
//! receiver accepts in one ([`MAX_ENTITIES_PER_MESSAGE`]).

use super::RegionSystems;
use crate::components::Visible;
use crate::net::{NetSystems, PeerLinks, PeerLost, SubscriptionRequest};
use crate::players::Player;
use crate::settings::ServerSettings;
use crate::tick::{SimulationTick, TickWallClock};
use bevy::platform::collections::hash_map::Entry;
use bevy::platform::collections::{HashMap, HashSet};
use bevy::prelude::*;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::{
    CellDelta, EntityName, EntityState, GhostEntry, MAX_ENTITIES_PER_MESSAGE, PeerMessage, must_resend, tick_seconds,
};
use tessera_shared::region_map::CellId;

/// Who subscribed to which of our cells, and what each cell looked like when last
/// published.
#[derive(Resource, Default, Debug)]
pub struct Publications {
    pub subscribers: HashMap<CellId, HashSet<ServerId>>,
    /// Cells a subscriber has just asked for and must get in full.
    pending_snapshots: HashMap<ServerId, HashSet<CellId>>,
    /// What was last sent of each entity, and at which tick.
    published: HashMap<CellId, Published>,
    /// Who stands in each subscribed cell this tick: kept between ticks, emptied, so the
    /// room of every cell's map is reused.
    now: HashMap<CellId, CellContents>,
}

impl Publications {
    pub fn count(&self) -> usize {
        self.subscribers.values().map(HashSet::len).sum()
    }
}

pub struct PublisherPlugin;

impl Plugin for PublisherPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Publications>()
            .add_systems(PreUpdate, track_subscribers.in_set(RegionSystems).after(NetSystems::Receive))
            .add_systems(
                PostUpdate,
                publish_cells.in_set(RegionSystems).in_set(NetSystems::Send).run_if(resource_changed::<SimulationTick>),
            );
    }
}

fn track_subscribers(
    mut requests: MessageReader<SubscriptionRequest>,
    mut lost: MessageReader<PeerLost>,
    mut publications: ResMut<Publications>,
) {
    // A link lost and replaced within one frame: forget the old before the new asks.
    for &PeerLost { peer } in lost.read() {
        for subscribers in publications.subscribers.values_mut() {
            subscribers.remove(&peer);
        }
        publications.pending_snapshots.remove(&peer);
    }
    for SubscriptionRequest { peer, cells, subscribe } in requests.read() {
        for &cell in cells {
            if *subscribe {
                publications.subscribers.entry(cell).or_default().insert(*peer);
                publications.pending_snapshots.entry(*peer).or_default().insert(cell);
            } else if let Some(subscribers) = publications.subscribers.get_mut(&cell) {
                subscribers.remove(peer);
            }
        }
    }
    publications.subscribers.retain(|_, subscribers| !subscribers.is_empty());
}

/// The cell of ours a player counts in: where it stands, or, while it is tethered just
/// past our border, the nearest cell of ours.
pub fn home_cell(settings: &ServerSettings, position: Vec2) -> Option<CellId> {
    let map = &settings.map;
    let region = match map.region_at(position) {
        Some(region) if map.owner(region) == Some(settings.id) => region,
        _ => map
            .regions_within(position, settings.cluster.simulation.tether)
            .filter(|&region| map.owner(region) == Some(settings.id))
            .min_by(|&a, &b| map.distance_to(a, position).total_cmp(&map.distance_to(b, position)))?,
    };
    let (min, max) = map.bounds(region);
    map.cell_at(position.clamp(min, max - Vec2::splat(map.cell_size() * 1e-3)))
}

fn publish_cells(
    tick: Res<SimulationTick>,
    wall: Res<TickWallClock>,
    settings: Res<ServerSettings>,
    mut publications: ResMut<Publications>,
    players: Query<(&EntityId, &Position, &Velocity, &Visible), With<Player>>,
    mut peers: ResMut<PeerLinks>,
) {
    let Publications { subscribers, pending_snapshots, published, now } = &mut *publications;
    published.retain(|cell, _| subscribers.contains_key(cell));
    now.retain(|cell, standing| {
        standing.clear();
        subscribers.contains_key(cell)
    });
    if subscribers.is_empty() {
        return;
    }
    let tick_seconds = tick_seconds(settings.cluster.simulation.tick_hz);
    for (&id, position, velocity, visible) in &players {
        let Some(cell) = home_cell(&settings, position.0) else { continue };
        if subscribers.contains_key(&cell) {
            let state = EntityState { id, position: position.0, velocity: velocity.0 };
            now.entry(cell).or_default().insert(id, (state, visible.name));
        }
    }
    let empty = CellContents::default();
    let mut per_peer: HashMap<ServerId, Vec<CellDelta>> = HashMap::new();
    for (&cell, subscribers) in subscribers.iter() {
        let current = now.get(&cell).unwrap_or(&empty);
        let delta = diff(cell, published.entry(cell).or_default(), current, tick.0, tick_seconds);
        let mut snapshot = None;
        for &peer in subscribers {
            let wants_snapshot = pending_snapshots.get(&peer).is_some_and(|p| p.contains(&cell));
            let message = if wants_snapshot {
                snapshot.get_or_insert_with(|| full_snapshot(cell, current)).clone()
            } else if delta.entered.is_empty() && delta.moved.is_empty() && delta.left.is_empty() {
                continue;
            } else {
                delta.clone()
            };
            per_peer.entry(peer).or_default().push(message);
        }
    }
    pending_snapshots.clear();
    for (peer, deltas) in per_peer {
        for deltas in split_deltas(deltas, MAX_ENTITIES_PER_MESSAGE) {
            peers.send(peer, PeerMessage::Cells { at: wall.time_of(tick.0), deltas });
        }
    }
}

/// `deltas` as the deltas of successive messages of at most `max` entities each. A delta
/// too big for the room left is cut in parts, in order; only the first part of a full
/// snapshot says so (the receiver forgets the cell once, then adds each part).
fn split_deltas(deltas: Vec<CellDelta>, max: usize) -> Vec<Vec<CellDelta>> {
    let mut messages = Vec::new();
    let mut message = Vec::new();
    let mut room = max;
    for mut delta in deltas {
        loop {
            let size = delta.entered.len() + delta.moved.len() + delta.left.len();
            if size <= room {
                room -= size;
                message.push(delta);
                break;
            }
            let part = CellDelta {
                cell: delta.cell,
                full: delta.full,
                entered: take_up_to(&mut delta.entered, &mut room),
                moved: take_up_to(&mut delta.moved, &mut room),
                left: take_up_to(&mut delta.left, &mut room),
            };
            delta.full = false;
            message.push(part);
            messages.push(std::mem::take(&mut message));
            room = max;
        }
    }
    if !message.is_empty() {
        messages.push(message);
    }
    messages
}

/// The first items of `from`, as many as `room` has left, taken out of both.
fn take_up_to<T>(from: &mut Vec<T>, room: &mut usize) -> Vec<T> {
    let taken = from.len().min(*room);
    *room -= taken;
    from.drain(..taken).collect()
}

type CellContents = HashMap<EntityId, (EntityState, EntityName)>;

fn ghost_entry(&(state, name): &(EntityState, EntityName)) -> GhostEntry {
    GhostEntry { state, name }
}

type Published = HashMap<EntityId, (EntityState, u64)>;

/// What changed in `cell` since it was last `published`, as of `tick`; `published`
/// becomes what subscribers know once they have it.
fn diff(cell: CellId, published: &mut Published, now: &CellContents, tick: u64, tick_seconds: f32) -> CellDelta {
    let mut delta = CellDelta { cell, full: false, entered: vec![], moved: vec![], left: vec![] };
    for (&id, entry) in now {
        let state = entry.0;
        match published.entry(id) {
            Entry::Vacant(unknown) => {
                delta.entered.push(ghost_entry(entry));
                unknown.insert((state, tick));
            }
            Entry::Occupied(mut known) => {
                let &(sent, at) = known.get();
                if must_resend(&sent, at, &state, tick, tick_seconds) {
                    delta.moved.push(state);
                    known.insert((state, tick));
                }
            }
        }
    }
    published.retain(|id, _| {
        let stays = now.contains_key(id);
        if !stays {
            delta.left.push(*id);
        }
        stays
    });
    delta
}

fn full_snapshot(cell: CellId, now: &CellContents) -> CellDelta {
    CellDelta { cell, full: true, entered: now.values().map(ghost_entry).collect(), moved: vec![], left: vec![] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: u64) -> EntityState {
        EntityState { id: EntityId(id), position: Vec2::ZERO, velocity: Vec2::ZERO }
    }

    #[test]
    fn deltas_are_split_into_messages_of_bounded_entities_in_order() {
        let cell = |x| CellId { x, y: 0 };
        let entered = (1..=5)
            .map(|id| GhostEntry { state: state(id), name: EntityName::from(&format!("e{id}")).unwrap() })
            .collect();
        let snapshot = CellDelta { cell: cell(0), full: true, entered, moved: vec![], left: vec![] };
        let small =
            CellDelta { cell: cell(1), full: false, entered: vec![], moved: vec![state(6)], left: vec![EntityId(7)] };
        let messages = split_deltas(vec![snapshot.clone(), small.clone()], 3);
        let sizes: Vec<Vec<(u16, bool, usize)>> = messages
            .iter()
            .map(|m| m.iter().map(|d| (d.cell.x, d.full, d.entered.len() + d.moved.len() + d.left.len())).collect())
            .collect();
        // The snapshot's first part alone says it is full; the small delta starts where room is left.
        assert_eq!(sizes, vec![vec![(0, true, 3)], vec![(0, false, 2), (1, false, 1)], vec![(1, false, 1)]]);
        let entered: Vec<GhostEntry> = messages.iter().flatten().flat_map(|d| d.entered.clone()).collect();
        assert_eq!(entered, snapshot.entered, "every entity once, in order");
        assert_eq!(split_deltas(vec![small.clone()], 16), vec![vec![small]]);
        assert!(split_deltas(vec![], 16).is_empty());
    }
}
