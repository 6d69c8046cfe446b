//! Walking as a person does with a keyboard: hold the keys that point toward where you
//! are going, in one of eight directions, and change them only when that direction
//! changes. Bots, tests and anything else that walks a player use this.

use tessera_shared::Vec2;
use tessera_shared::components::Keys;

/// Close enough to a target to count as there.
pub const ARRIVED: f32 = 30.0;

/// The keys that walk from `from` toward `to`, in one of eight directions; none once
/// within half of [`ARRIVED`].
pub fn keys_toward(from: Vec2, to: Vec2) -> Keys {
    let delta = to - from;
    if delta.length() < ARRIVED / 2.0 {
        return Keys::empty();
    }
    let dead_zone = delta.length() * 0.38;
    let mut keys = Keys::empty();
    if delta.x > dead_zone {
        keys |= Keys::RIGHT;
    } else if delta.x < -dead_zone {
        keys |= Keys::LEFT;
    }
    if delta.y > dead_zone {
        keys |= Keys::UP;
    } else if delta.y < -dead_zone {
        keys |= Keys::DOWN;
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_point_in_one_of_eight_directions() {
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(100.0, 0.0)), Keys::RIGHT);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(-100.0, -100.0)), Keys::LEFT | Keys::DOWN);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(10.0, 100.0)), Keys::UP);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(5.0, 0.0)), Keys::empty());
    }
}
