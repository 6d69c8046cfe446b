//! Ghosts: entities another server simulates, known here through a cell subscription.
//! They are seen by our players, and moved along their velocity between updates as
//! players are, but never simulated here.

use crate::components::Visible;
use bevy::prelude::*;
use std::collections::HashMap;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::{EntityState, GhostEntry};
use tessera_shared::region_map::{CellId, RegionMap};

/// Where a ghost comes from.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ghost {
    pub owner: ServerId,
    pub cell: CellId,
}

/// The most a ghost is moved on from when its owner sent it (half a second): beyond
/// that, a message is stale, or its sender's clock is wrong.
pub const MOST_CAUGHT_UP_SECONDS: f32 = 0.5;

/// `state` as it is `seconds` later, walking on (or back, for less than none): an
/// owner's word of its tick made of our last (peers tick each its phase after the beat,
/// before or after us, and a message may be held up), so a ghost walking straight never
/// jumps back or ahead.
pub fn caught_up(state: EntityState, seconds: f32, map: &RegionMap) -> EntityState {
    let (position, velocity) = map.walk(state.position, state.velocity, seconds);
    EntityState { position, velocity, ..state }
}

/// The ghosts here, by entity id, with where each comes from. Kept here rather than
/// read back from the world, because changes made through `Commands` only land at the
/// end of the system: one delta can move a ghost between regions and the next must
/// already see it moved.
#[derive(Resource, Default, Debug)]
pub struct Ghosts(HashMap<EntityId, (Entity, Ghost)>);

impl Ghosts {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn spawn_or_update(&mut self, commands: &mut Commands, ghost: Ghost, entry: GhostEntry) {
        let GhostEntry { state, name } = entry;
        let bundle = (ghost, state.id, Position(state.position), Velocity(state.velocity), Visible { name });
        match self.0.get_mut(&state.id) {
            Some((entity, origin)) => {
                *origin = ghost;
                commands.entity(*entity).insert(bundle);
            }
            None => {
                self.0.insert(state.id, (commands.spawn(bundle).id(), ghost));
            }
        }
    }

    /// Moves the ghost `state` names, if it comes from `ghost`'s cell: a peer moves only
    /// the ghosts it published.
    pub fn update(&self, commands: &mut Commands, ghost: Ghost, state: EntityState) {
        if let Some(&(entity, _)) = self.0.get(&state.id).filter(|(_, origin)| *origin == ghost) {
            commands.entity(entity).insert((Position(state.position), Velocity(state.velocity)));
        }
    }

    pub fn despawn(&mut self, commands: &mut Commands, id: EntityId) {
        if let Some((entity, _)) = self.0.remove(&id) {
            commands.entity(entity).despawn();
        }
    }

    /// Despawns every ghost whose origin matches `which`.
    pub fn despawn_where(&mut self, commands: &mut Commands, which: impl Fn(&Ghost) -> bool) {
        self.0.retain(|_, (entity, ghost)| {
            let keep = !which(ghost);
            if !keep {
                commands.entity(*entity).despawn();
            }
            keep
        });
    }

    /// Where the ghost `id` comes from, if there is one.
    pub fn origin(&self, id: EntityId) -> Option<Ghost> {
        self.0.get(&id).map(|&(_, ghost)| ghost)
    }
}
