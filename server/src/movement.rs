//! Server-authoritative movement, in `FixedUpdate`: apply each player's queued inputs,
//! turn the keys held into a velocity (clamped to walking speed by construction), and
//! move, staying inside the world.

use crate::app::{ServerSettings, SimulationTick};
use crate::players::InputQueue;
use bevy::prelude::*;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::UserId;

#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovementSystems;

pub struct MovementPlugin;

impl Plugin for MovementPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(FixedUpdate, (apply_inputs, integrate).chain().in_set(MovementSystems));
    }
}

fn apply_inputs(tick: Res<SimulationTick>, mut players: Query<(&UserId, &mut InputQueue, &mut Velocity)>) {
    for (&user, mut queue, mut velocity) in &mut players {
        queue.apply_ready(tick.0, user);
        let walk = queue.keys.walk_velocity();
        if *velocity != walk {
            *velocity = walk;
        }
    }
}

fn integrate(time: Res<Time>, settings: Res<ServerSettings>, mut moving: Query<(&mut Position, &Velocity)>) {
    let dt = time.delta_secs();
    for (mut position, velocity) in &mut moving {
        if velocity.0 != Vec2::ZERO {
            position.0 = settings.map.clamp_to_world(position.0 + velocity.0 * dt);
        }
    }
}
