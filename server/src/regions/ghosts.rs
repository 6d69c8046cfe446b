//! Ghosts: entities another server simulates, known here through a region
//! subscription. They are seen by our players and never simulated here.

use crate::interest::Visible;
use bevy::prelude::*;
use std::collections::HashMap;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::{EntityState, GhostEntry};
use tessera_shared::region_map::RegionId;

/// Where a ghost comes from.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ghost {
    pub owner: ServerId,
    pub region: RegionId,
}

/// The ghosts here, by entity id.
#[derive(Resource, Default, Debug)]
pub struct Ghosts(pub HashMap<EntityId, Entity>);

impl Ghosts {
    pub fn spawn_or_update(&mut self, commands: &mut Commands, ghost: Ghost, entry: GhostEntry) {
        let GhostEntry { state, name } = entry;
        let bundle = (ghost, state.id, Position(state.position), Velocity(state.velocity), Visible { name });
        match self.0.get(&state.id) {
            Some(&entity) => {
                commands.entity(entity).insert(bundle);
            }
            None => {
                self.0.insert(state.id, commands.spawn(bundle).id());
            }
        }
    }

    pub fn update(&self, commands: &mut Commands, state: EntityState) {
        if let Some(&entity) = self.0.get(&state.id) {
            commands.entity(entity).insert((Position(state.position), Velocity(state.velocity)));
        }
    }

    pub fn despawn(&mut self, commands: &mut Commands, id: EntityId) {
        if let Some(entity) = self.0.remove(&id) {
            commands.entity(entity).despawn();
        }
    }
}
