//! Components every process agrees on: where an entity is, how it moves, and which
//! keys a player holds. With the `ecs` feature they are Bevy components.

use bitflags::bitflags;
use glam::Vec2;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ecs")]
use bevy_ecs::component::Component;

/// World position, in world units.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ecs", derive(Component))]
pub struct Position(pub Vec2);

/// World units per second.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ecs", derive(Component))]
pub struct Velocity(pub Vec2);

bitflags! {
    /// The movement keys a player holds down. Clients send these, never positions.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
    pub struct Keys: u8 {
        const UP = 1;
        const DOWN = 1 << 1;
        const LEFT = 1 << 2;
        const RIGHT = 1 << 3;
    }
}

/// How fast a player walks, world units per second. The server clamps to this.
pub const WALK_SPEED: f32 = 200.0;

impl Keys {
    /// The unit direction these keys ask for (y grows upwards), or zero.
    pub fn direction(self) -> Vec2 {
        let mut dir = Vec2::ZERO;
        if self.contains(Keys::UP) {
            dir.y += 1.0;
        }
        if self.contains(Keys::DOWN) {
            dir.y -= 1.0;
        }
        if self.contains(Keys::RIGHT) {
            dir.x += 1.0;
        }
        if self.contains(Keys::LEFT) {
            dir.x -= 1.0;
        }
        dir.normalize_or_zero()
    }

    /// The velocity a player holding these keys walks at.
    pub fn walk_velocity(self) -> Velocity {
        Velocity(self.direction() * WALK_SPEED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_walking_is_no_faster_than_straight() {
        let diagonal = (Keys::UP | Keys::RIGHT).walk_velocity().0.length();
        let straight = Keys::UP.walk_velocity().0.length();
        assert!((diagonal - straight).abs() < 1e-3);
        assert_eq!((Keys::UP | Keys::DOWN).walk_velocity().0, Vec2::ZERO);
    }
}
