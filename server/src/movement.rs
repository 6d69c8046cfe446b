//! Server-authoritative movement, in `FixedUpdate`: apply each player's queued inputs,
//! turn the keys held into a velocity (clamped to walking speed by construction), and
//! move, staying inside the world: a player walking into the world's edge stops along
//! that axis.

use crate::players::InputQueue;
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
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

fn integrate(time: Res<Time>, settings: Res<ServerSettings>, mut moving: Query<(&mut Position, &mut Velocity)>) {
    let dt = time.delta_secs();
    for (mut position, mut velocity) in &mut moving {
        if velocity.0 != Vec2::ZERO {
            let unclamped = position.0 + velocity.0 * dt;
            position.0 = settings.map.clamp_to_world(unclamped);
            // Against the world's edge the velocity says what really moves, so players
            // and peers extrapolating it agree with us instead of being resent every tick.
            let blocked = position.0.cmpne(unclamped);
            velocity.0 = Vec2::select(blocked, Vec2::ZERO, velocity.0);
        }
    }
}
