//! How a bot walks: like a person, not like a test. Most bots wander, walking a few
//! hundred units at a time and stopping now and then; some shuttle across the nearest
//! region border and back, so handoffs happen all the time; some follow whoever they
//! see, so crowds form. A bot looks where it is going a few times a second and presses
//! keys only when the direction it wants changes.

use rand::Rng;
use std::time::Duration;
use tessera_player::WorldView;
use tessera_player::steering::{ARRIVED, keys_toward};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::EntityId;
use tessera_shared::region_map::RegionMap;
use tokio::time::Instant;

/// How a bot chooses where to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Short walks in random directions, with rests between some of them.
    Wanderer,
    /// Back and forth across the nearest border between regions.
    BorderCrosser,
    /// After someone in view, keeping a little distance; wanders when alone.
    Follower,
}

impl Behaviour {
    /// Six wanderers, two border crossers and two followers in every ten, on average.
    pub fn pick(rng: &mut impl Rng) -> Self {
        match rng.random_range(0..10) {
            0..6 => Self::Wanderer,
            6..8 => Self::BorderCrosser,
            _ => Self::Follower,
        }
    }
}

/// How far past a border a border crosser walks before turning back.
const PAST_THE_BORDER: f32 = 150.0;
/// A follower stops this close to whoever it follows.
const FOLLOW_DISTANCE: f32 = 60.0;

/// One bot's intentions: where it is going, or until when it rests.
#[derive(Debug)]
pub struct Walker {
    pub behaviour: Behaviour,
    target: Option<Vec2>,
    resting_until: Option<Instant>,
    following: Option<EntityId>,
}

impl Walker {
    pub fn new(behaviour: Behaviour) -> Self {
        Self { behaviour, target: None, resting_until: None, following: None }
    }

    /// The keys to hold now, given what the bot sees, standing at `me` (`None` before the
    /// server has placed it).
    pub fn steer(
        &mut self,
        rng: &mut impl Rng,
        me: Option<Vec2>,
        view: &WorldView,
        map: &RegionMap,
        now: Instant,
    ) -> Keys {
        let Some(me) = me else { return Keys::empty() };
        if self.resting_until.is_some_and(|until| now < until) {
            return Keys::empty();
        }
        self.resting_until = None;
        let target = match self.behaviour {
            Behaviour::Follower => match self.leader(rng, view) {
                Some(leader) if leader.distance(me) < FOLLOW_DISTANCE => return Keys::empty(),
                Some(leader) => leader,
                None => self.wander(rng, me, map, now),
            },
            Behaviour::Wanderer => self.wander(rng, me, map, now),
            Behaviour::BorderCrosser => self.cross(me, map),
        };
        keys_toward(me, target)
    }

    /// Where the one being followed is, choosing someone new when they left the view.
    fn leader(&mut self, rng: &mut impl Rng, view: &WorldView) -> Option<Vec2> {
        if let Some(leader) = self.following.and_then(|id| view.other(id)) {
            return Some(leader.position);
        }
        let leader = (view.in_view() > 0).then(|| view.others().nth(rng.random_range(0..view.in_view()))).flatten();
        self.following = leader.map(|leader| leader.id);
        leader.map(|leader| leader.position)
    }

    fn wander(&mut self, rng: &mut impl Rng, me: Vec2, map: &RegionMap, now: Instant) -> Vec2 {
        match self.target {
            Some(target) if target.distance(me) >= ARRIVED => target,
            _ => {
                if self.target.is_some() && rng.random_bool(0.3) {
                    self.resting_until = Some(now + Duration::from_millis(rng.random_range(1000..4000)));
                    self.target = None;
                    return me;
                }
                let direction = Vec2::from_angle(rng.random_range(0.0..std::f32::consts::TAU));
                let target = map.clamp_to_world(me + direction * rng.random_range(100.0..500.0));
                self.target = Some(target);
                target
            }
        }
    }

    fn cross(&mut self, me: Vec2, map: &RegionMap) -> Vec2 {
        match self.target {
            Some(target) if target.distance(me) >= ARRIVED => target,
            _ => {
                let target = across_nearest_border(me, map).unwrap_or(me);
                self.target = Some(target);
                target
            }
        }
    }
}

/// The point [`PAST_THE_BORDER`] beyond the nearest border between two regions, straight
/// across it; `None` in a world of one region.
pub fn across_nearest_border(me: Vec2, map: &RegionMap) -> Option<Vec2> {
    let size = map.region_size();
    // The interior grid lines nearest to `me` on each axis, as (distance, crossing point).
    let nearest_line = |at: f32, lines: u16, across: &dyn Fn(f32) -> Vec2| {
        (1..lines)
            .map(|k| f32::from(k) * size)
            .map(|line| {
                let beyond = if at < line { line + PAST_THE_BORDER } else { line - PAST_THE_BORDER };
                ((line - at).abs(), across(beyond))
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
    };
    let vertical = nearest_line(me.x, map.columns(), &|x| Vec2::new(x, me.y));
    let horizontal = nearest_line(me.y, map.rows(), &|y| Vec2::new(me.x, y));
    [vertical, horizontal].into_iter().flatten().min_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, p)| map.clamp_to_world(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::ids::ServerId;

    #[test]
    fn border_crossers_aim_just_past_the_nearest_border() {
        let map = RegionMap::new(1000.0, 2, 2, vec![ServerId(1); 4]);
        assert_eq!(across_nearest_border(Vec2::new(900.0, 300.0), &map), Some(Vec2::new(1150.0, 300.0)));
        assert_eq!(across_nearest_border(Vec2::new(1150.0, 300.0), &map), Some(Vec2::new(850.0, 300.0)));
        assert_eq!(across_nearest_border(Vec2::new(300.0, 1100.0), &map), Some(Vec2::new(300.0, 850.0)));
        let single = RegionMap::new(1000.0, 1, 1, vec![ServerId(1)]);
        assert_eq!(across_nearest_border(Vec2::new(500.0, 500.0), &single), None);
    }
}
