//! Server-authoritative movement, in `FixedUpdate`: apply each player's inputs due, turn
//! the keys held into a velocity (clamped to walking speed by construction), and move,
//! staying inside the world ([`RegionMap::walk`](tessera_shared::region_map::RegionMap::walk),
//! as players predict themselves): a player walking into the world's edge stops along
//! that axis. An input that comes after its tick was walked has the ticks since walked
//! again from where the [`Trail`] says they began, so the player ends where it predicted
//! itself instead of seeing a correction. Ghosts (entities of peers' regions) move on as
//! last told.

use crate::input_queue::{InputQueue, Walk};
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::prelude::*;
use std::collections::VecDeque;
use tessera_shared::components::{Keys, Position, Velocity};
use tessera_shared::ids::UserId;
use tessera_shared::protocol::{Input, TICKS_WALKED_AGAIN, tick_seconds};

/// A player's ticks whose starting points are kept ([`TICKS_WALKED_AGAIN`]): an input
/// later than that is applied from when it came, as one late by more than
/// [`MAX_INPUT_LEAD_TICKS`](crate::input_queue::MAX_INPUT_LEAD_TICKS) is anyway.
const TRAIL_TICKS: usize = TICKS_WALKED_AGAIN as usize;

#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MovementSystems;

pub struct MovementPlugin;

impl Plugin for MovementPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(FixedUpdate, (move_players, move_ghosts).in_set(MovementSystems));
    }
}

/// Where a player began each of its latest ticks (its own tick, and its position),
/// oldest first. It goes with the player at a handoff: a press late for a tick its last
/// owner walked is walked again here as it would have been there.
#[derive(Component, Debug, Default)]
pub struct Trail(VecDeque<(i64, Vec2)>);

impl Trail {
    /// A trail carried on from the player's last owner, whose clock was at `your_tick`
    /// ([`HandoffState::trail`](tessera_shared::protocol::HandoffState::trail): in order,
    /// and no longer than ours, as the peer gate checks).
    pub fn handed(your_tick: u32, trail: &[(u8, Vec2)]) -> Self {
        Self(trail.iter().map(|&(back, at)| (i64::from(your_tick) - i64::from(back), at)).collect())
    }

    /// The trail to go on with the player to its next owner, whose clock is at
    /// `your_tick`: the ticks a late input may still be walked from, those from `from` on
    /// (that of the last input applied: no later input is for a tick before it).
    pub fn handing_on(&self, your_tick: u32, from: Option<u32>) -> Vec<(u8, Vec2)> {
        let (your_tick, from) = (i64::from(your_tick), from.map_or(0, i64::from));
        let back =
            |yours: i64| u8::try_from(your_tick.checked_sub(yours)?).ok().filter(|&back| back < TRAIL_TICKS as u8);
        self.0.iter().filter(|&&(yours, _)| yours >= from).filter_map(|&(yours, at)| Some((back(yours)?, at))).collect()
    }

    fn began(&mut self, yours: i64, at: Vec2) {
        while self.0.len() >= TRAIL_TICKS {
            self.0.pop_front();
        }
        self.0.push_back((yours, at));
    }

    /// Walks the player's ticks from the first of `inputs` through `through` again, with
    /// each input's keys from its tick on, and says where and how it moves then; none
    /// when that tick's start is not kept.
    fn walk_again(
        &mut self,
        inputs: &[Input],
        through: i64,
        walk: impl Fn(Vec2, Keys) -> (Vec2, Vec2),
    ) -> Option<(Vec2, Vec2)> {
        let first = inputs.first()?;
        let from = i64::from(first.tick);
        if through.saturating_sub(from) >= TRAIL_TICKS as i64 {
            return None;
        }
        let start = self.0.iter().position(|&(yours, _)| yours == from)?;
        let mut moved = (self.0[start].1, Vec2::ZERO);
        let mut later = self.0.range_mut(start..).peekable();
        let (mut keys, mut pressed) = (first.keys, inputs[1..].iter().peekable());
        for yours in from..=through {
            while let Some(input) = pressed.next_if(|input| i64::from(input.tick) <= yours) {
                keys = input.keys;
            }
            if let Some((_, began)) = later.next_if(|(tick, _)| *tick == yours) {
                *began = moved.0;
            }
            moved = walk(moved.0, keys);
        }
        Some(moved)
    }
}

/// Each player due a tick of its own (see [`InputQueue::step_due`]) applies the inputs
/// due by it and walks one tick with the keys it holds then; one whose clock tightened
/// walking is due two until it has caught up. Inputs late for ticks walked have those
/// ticks walked again first.
fn move_players(
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    mut players: Query<(&UserId, &mut InputQueue, &mut Trail, &mut Position, &mut Velocity)>,
) {
    let dt = tick_seconds(settings.cluster.simulation.tick_hz);
    let walk = |from: Vec2, keys: Keys| settings.map.walk(from, keys.walk_velocity().0, dt);
    for (&user, mut queue, mut trail, mut position, mut velocity) in &mut players {
        let mut moved = (position.0, velocity.0);
        queue.step_due(tick.0, user, |due| match due {
            Walk::Tick { yours, keys } => {
                if let Some(yours) = yours {
                    trail.began(yours, moved.0);
                }
                moved = walk(moved.0, keys);
            }
            Walk::Again { inputs, through } => {
                if let Some(again) = trail.walk_again(inputs, through, walk) {
                    moved = again;
                }
            }
        });
        position.set_if_neq(Position(moved.0));
        velocity.set_if_neq(Velocity(moved.1));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(from: Vec2, keys: Keys) -> (Vec2, Vec2) {
        let velocity = keys.walk_velocity().0;
        (from + velocity * 0.05, velocity)
    }

    fn input(seq: u32, keys: Keys, tick: u32) -> Input {
        Input { seq, keys, tick }
    }

    #[test]
    fn late_inputs_walk_their_ticks_again_from_where_they_began() {
        let mut trail = Trail::default();
        // Its ticks 100 to 103 walked up, ten units each, from (0, 0).
        let mut at = Vec2::ZERO;
        for yours in 100..=103 {
            trail.began(yours, at);
            at = walked(at, Keys::UP).0;
        }
        // Left from its tick 102, down from 103: both came after 103 was walked.
        let late = [input(2, Keys::LEFT, 102), input(3, Keys::DOWN, 103)];
        let again = trail.walk_again(&late, 103, walked);
        assert_eq!(again, Some((Vec2::new(-10.0, 10.0), Vec2::new(0.0, -200.0))));
        assert_eq!(trail.0.back(), Some(&(103, Vec2::new(-10.0, 20.0))), "where 103 began, walked again");
        // A later one from 103 walks from there.
        let again = trail.walk_again(&[input(4, Keys::RIGHT, 103)], 103, walked);
        assert_eq!(again, Some((Vec2::new(0.0, 20.0), Vec2::new(200.0, 0.0))));
        // One from a tick not kept is not walked again.
        assert_eq!(trail.walk_again(&[input(5, Keys::RIGHT, 99)], 103, walked), None);
    }

    #[test]
    fn a_trail_goes_on_from_the_last_input_applied_and_is_walked_again_there() {
        let mut trail = Trail::default();
        for yours in 10..15 {
            trail.began(yours, Vec2::new(yours as f32, 0.0));
        }
        assert_eq!(trail.handing_on(14, None).len(), 5);
        let handed = trail.handing_on(14, Some(13));
        assert_eq!(handed, [(1, Vec2::new(13.0, 0.0)), (0, Vec2::new(14.0, 0.0))]);
        let mut carried = Trail::handed(14, &handed);
        let again = carried.walk_again(&[input(1, Keys::UP, 14)], 14, walked);
        assert_eq!(again, Some((Vec2::new(14.0, 10.0), Vec2::new(0.0, 200.0))));
        // Ticks too far back to be walked again do not go.
        assert_eq!(trail.handing_on(10 + TRAIL_TICKS as u32, None).len(), 4);
    }

    #[test]
    fn a_trail_keeps_its_latest_ticks_only() {
        let mut trail = Trail::default();
        for yours in 0..100 {
            trail.began(yours, Vec2::ZERO);
        }
        assert_eq!(trail.0.len(), TRAIL_TICKS);
        let late = [input(1, Keys::UP, 100 - TRAIL_TICKS as u32)];
        assert!(trail.walk_again(&late, 99, walked).is_some());
        let late = [input(1, Keys::UP, 99 - TRAIL_TICKS as u32)];
        assert_eq!(trail.walk_again(&late, 99, walked), None);
    }
}
