//! How a bot walks: like a person, not like a test. Most bots wander, walking a few
//! hundred units at a time and stopping now and then; some shuttle across the nearest
//! region border and back, so handoffs happen all the time; some follow whoever they
//! see, so crowds form. A bot looks where it is going a few times a second and presses
//! keys only when the direction it wants changes.

use rand::Rng;
use std::time::Duration;
use tessera_player::steering::{ARRIVED, keys_toward};
use tessera_player::world_view::{Sighting, WorldView};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::protocol::OthersKept;
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

    /// What a bot keeps of the others in view: their states if it looks at them (a
    /// follower), else only their handles. Its cluster sends and its link carries the
    /// same either way, and each update is checked as closely; but keeping every other's
    /// state was the most of what a bot cost (BENCHMARKS.md). What players see of others
    /// is measured by the followers.
    pub fn others_kept(self) -> OthersKept {
        match self {
            Self::Follower => OthersKept::States,
            Self::Wanderer | Self::BorderCrosser => OthersKept::Handles,
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
    following: Option<Sighting>,
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

    /// How many looks on, of its looks `every` apart, the bot must look again, standing
    /// at `me` at `now` (the beat of the look just taken) and holding `keys` from then
    /// on: at the first that could press anything else, or the `most`-th (at least the
    /// next). A bot presses only at some of its looks, and which is known ahead where it
    /// walks straight at a target (the look that finds it there, or its direction to it
    /// changed) or rests (the first look after its rest); a follower's leader moves as
    /// it will, and someone to follow may come into view at any look: a follower takes
    /// every one.
    pub fn looks_until_a_press(&self, me: Option<Vec2>, keys: Keys, now: Instant, every: Duration, most: u32) -> u32 {
        let most = most.max(1);
        let (Some(me), false) = (me, self.behaviour == Behaviour::Follower) else { return 1 };
        if let Some(until) = self.resting_until {
            let looks = until.saturating_duration_since(now).div_duration_f32(every).ceil();
            return (looks as u32).clamp(1, most);
        }
        let Some(target) = self.target else { return 1 };
        let walked = keys.walk_velocity().0 * every.as_secs_f32();
        (1..most)
            .find(|&look| {
                let there = me + walked * look as f32;
                there.distance(target) < ARRIVED || keys_toward(there, target) != keys
            })
            .unwrap_or(most)
    }

    /// Where the one being followed is, choosing someone new when they left the view.
    fn leader(&mut self, rng: &mut impl Rng, view: &WorldView) -> Option<Vec2> {
        if let Some(leader) = self.following.as_mut().and_then(|leader| view.find(leader)) {
            return Some(leader.position);
        }
        self.following =
            (view.in_view() > 0).then(|| view.sightings().nth(rng.random_range(0..view.in_view()))).flatten();
        self.following.as_mut().and_then(|leader| view.find(leader)).map(|leader| leader.position)
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

    /// A bot that looks only at the looks that could press something presses what it
    /// would have pressed looking at every one, at the same look: two walkers alike, one
    /// looking at every look and one only at those planned, press the same keys at the
    /// same looks.
    #[test]
    fn bots_skip_only_the_looks_that_press_nothing() {
        use rand::SeedableRng;
        let map = RegionMap::new(1000.0, 2, 2, vec![ServerId(1); 4]);
        let view = WorldView::new(0.05);
        let every = Duration::from_millis(250);
        let (mut looks_taken, mut looks) = (0, 0);
        for seed in 0..50 {
            let behaviour = if seed % 2 == 0 { Behaviour::Wanderer } else { Behaviour::BorderCrosser };
            let (mut every_look, mut planned) = (Walker::new(behaviour), Walker::new(behaviour));
            let mut rngs = [seed, seed].map(rand::rngs::SmallRng::seed_from_u64);
            let (mut me, mut keys, mut now) = (Vec2::new(700.0, 300.0), Keys::empty(), Instant::now());
            // Forty looks (ten seconds), walked as the server walks a player.
            let mut next_planned = 0;
            for look in 0..40 {
                let pressed = every_look.steer(&mut rngs[0], Some(me), &view, &map, now);
                looks += 1;
                if look == next_planned {
                    looks_taken += 1;
                    let planned_keys = planned.steer(&mut rngs[1], Some(me), &view, &map, now);
                    assert_eq!(planned_keys, pressed, "seed {seed}, look {look}");
                    next_planned = look + planned.looks_until_a_press(Some(me), pressed, now, every, 4);
                } else {
                    assert_eq!(pressed, keys, "seed {seed}: a press at look {look}, skipped for {next_planned}");
                }
                keys = pressed;
                me = map.walk(me, keys.walk_velocity().0, every.as_secs_f32()).0;
                now += every;
            }
        }
        assert!(looks_taken < looks / 2, "{looks_taken} of {looks} looks taken");
    }

    #[test]
    fn a_resting_bot_looks_again_once_its_rest_is_over_and_a_follower_at_every_look() {
        let now = Instant::now();
        let every = Duration::from_millis(250);
        let me = Some(Vec2::new(500.0, 400.0));
        let mut resting = Walker::new(Behaviour::Wanderer);
        resting.resting_until = Some(now + Duration::from_millis(600));
        assert_eq!(resting.looks_until_a_press(me, Keys::empty(), now, every, 8), 3);
        assert_eq!(resting.looks_until_a_press(me, Keys::empty(), now, every, 2), 2, "at the most");
        let mut follower = Walker::new(Behaviour::Follower);
        follower.target = Some(Vec2::new(900.0, 400.0));
        assert_eq!(follower.looks_until_a_press(me, Keys::RIGHT, now, every, 8), 1);
        assert_eq!(Walker::new(Behaviour::Wanderer).looks_until_a_press(None, Keys::empty(), now, every, 8), 1);
    }
}
