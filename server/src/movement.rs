//! Server-authoritative movement, in `FixedUpdate`: apply each player's inputs due, turn
//! the keys held into a velocity (clamped to walking speed by construction), and move,
//! staying inside the world ([`RegionMap::walk`](tessera_shared::region_map::RegionMap::walk),
//! as players predict themselves): a player walking into the world's edge stops along
//! that axis. Ghosts (entities of peers' regions) move on as last told.

use crate::input_queue::InputQueue;
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::prelude::*;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::UserId;
use tessera_shared::protocol::tick_seconds;

#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovementSystems;

pub struct MovementPlugin;

impl Plugin for MovementPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(FixedUpdate, (move_players, move_ghosts).in_set(MovementSystems));
    }
}

/// Each player due a tick of its own (see [`InputQueue::step_due`]) applies the inputs
/// due by it and walks one tick with the keys it holds then; one whose clock tightened
/// walking is due two until it has caught up.
fn move_players(
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    mut players: Query<(&UserId, &mut InputQueue, &mut Position, &mut Velocity)>,
) {
    let dt = tick_seconds(settings.cluster.simulation.tick_hz);
    for (&user, mut queue, mut position, mut velocity) in &mut players {
        queue.step_due(tick.0, user, |keys| {
            let (moved, moving) = settings.map.walk(position.0, keys.walk_velocity().0, dt);
            position.set_if_neq(Position(moved));
            velocity.set_if_neq(Velocity(moving));
        });
    }
}

/// Entities of peers' regions seen here move as their owners last said.
fn move_ghosts(settings: Res<ServerSettings>, mut ghosts: Query<(&mut Position, &mut Velocity), Without<InputQueue>>) {
    // A tick's length as players round it, so their extrapolation lands where we do.
    let dt = tick_seconds(settings.cluster.simulation.tick_hz);
    for (mut position, mut velocity) in &mut ghosts {
        if velocity.0 != Vec2::ZERO {
            (position.0, velocity.0) = settings.map.walk(position.0, velocity.0, dt);
        }
    }
}
