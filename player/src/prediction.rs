//! Client-side prediction of the player's own position. The player keeps a clock of its
//! own ([`InputClock`]: ticks of the server's length since it started playing) and
//! stamps each input with the tick it starts; the server applies inputs at those ticks
//! and says which of the player's ticks each state is as of (`your_tick`). So the
//! player walks at once, simulating its ticks as the server will ([`RegionMap::walk`]),
//! and each state the server sends is checked against what was predicted for that very
//! tick: a difference is a correction, folded into the ticks predicted since by
//! simulating them again with the keys that were held. How big each correction is goes
//! back to the caller, who measures it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::protocol::{EntityState, INPUT_SLACK_TICKS};
use tessera_shared::region_map::RegionMap;

/// Ticks of prediction kept (over 12 s at 20 Hz): a state older than this resets it.
const HISTORY_TICKS: usize = 256;
/// Differences below this are rounding, not corrections.
const NEGLIGIBLE: f32 = 1e-3;

/// The player's own ticks, of the server's length, counted from when it started playing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputClock {
    origin: Instant,
    tick: Duration,
}

impl InputClock {
    pub fn new(origin: Instant, tick_seconds: f32) -> Self {
        Self { origin, tick: Duration::from_secs_f32(tick_seconds) }
    }

    /// The tick in progress at `at`.
    pub fn tick_at(&self, at: Instant) -> u32 {
        let ticks = at.saturating_duration_since(self.origin).as_nanos() / self.tick.as_nanos().max(1);
        u32::try_from(ticks).unwrap_or(u32::MAX)
    }

    /// When the server's word that an input stamped `tick` was applied is due, at the
    /// soonest: the tick over, and the server's slack for jitter
    /// ([`INPUT_SLACK_TICKS`]) after it. What comes later than this is the network's
    /// and the cluster's doing.
    pub fn acknowledgement_due(&self, tick: u32) -> Instant {
        let ticks = i64::from(tick).saturating_add(1).saturating_add(INPUT_SLACK_TICKS);
        let ticks = u32::try_from(ticks).unwrap_or(u32::MAX);
        self.origin + self.tick.saturating_mul(ticks)
    }

    /// How far into the tick in progress `at` is, from 0 to 1.
    pub fn progress(&self, at: Instant) -> f32 {
        let elapsed = at.saturating_duration_since(self.origin).as_nanos() % self.tick.as_nanos().max(1);
        elapsed as f32 / self.tick.as_nanos().max(1) as f32
    }
}

/// One of the player's ticks as predicted: the keys held during it, and where it ended.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Predicted {
    tick: u32,
    keys: Keys,
    position: Vec2,
}

/// What a state from the server did to the prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reconciled {
    /// It was checked against the prediction for its tick: this far off (0 when right).
    Corrected(f32),
    /// There was nothing to check it against (no input yet, a new session, or a state
    /// older than the history): the prediction starts again from it.
    Reset,
}

/// The player's own predicted motion.
#[derive(Debug, Clone)]
pub struct Prediction {
    clock: InputClock,
    map: RegionMap,
    tick_seconds: f32,
    /// The keys held from the tick in progress on.
    keys: Keys,
    /// Recent ticks as predicted, oldest first, each the tick after the one before.
    history: VecDeque<Predicted>,
}

impl Prediction {
    pub fn new(clock: InputClock, map: RegionMap, tick_seconds: f32) -> Self {
        Self { clock, map, tick_seconds, keys: Keys::empty(), history: VecDeque::new() }
    }

    pub fn clock(&self) -> InputClock {
        self.clock
    }

    /// The keys held now.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// Holds `keys` from the tick in progress at `at` on, returning that tick: what the
    /// input is stamped with.
    pub fn press(&mut self, keys: Keys, at: Instant) -> u32 {
        self.advance(at);
        self.keys = keys;
        self.clock.tick_at(at)
    }

    /// Predicts every tick completed by `at`.
    fn advance(&mut self, at: Instant) {
        let Some(last) = self.history.back().copied() else { return };
        let completed = self.clock.tick_at(at).checked_sub(1);
        // A history far behind (the app was suspended) starts again where it stood.
        if completed.is_some_and(|done| done.saturating_sub(last.tick) > HISTORY_TICKS as u32) {
            self.history.clear();
            self.history.push_back(Predicted { tick: completed.unwrap_or(0), ..last });
            return;
        }
        let mut position = last.position;
        for tick in last.tick.saturating_add(1)..=completed.unwrap_or(0) {
            position = self.walk(position, self.keys);
            self.push(Predicted { tick, keys: self.keys, position });
        }
    }

    fn walk(&self, from: Vec2, keys: Keys) -> Vec2 {
        self.map.walk(from, keys.walk_velocity().0, self.tick_seconds).0
    }

    fn push(&mut self, predicted: Predicted) {
        if self.history.len() == HISTORY_TICKS {
            self.history.pop_front();
        }
        self.history.push_back(predicted);
    }

    /// Checks the server's state of the player, `you` as of its tick `your_tick`,
    /// received at `at`, against the prediction for that tick, and corrects it.
    pub fn reconcile(&mut self, you: &EntityState, your_tick: Option<u32>, at: Instant) -> Reconciled {
        self.advance(at);
        let found = your_tick.and_then(|yours| {
            let oldest = self.history.front()?.tick;
            let index = usize::try_from(yours.checked_sub(oldest)?).ok()?;
            (index < self.history.len()).then_some(index)
        });
        let Some(index) = found else {
            // Nothing to check it against: predict on from it, from its tick (or from
            // now when it has none).
            let tick = your_tick.unwrap_or_else(|| self.clock.tick_at(at).saturating_sub(1));
            self.history.clear();
            self.history.push_back(Predicted { tick, keys: self.keys, position: you.position });
            self.advance(at);
            return Reconciled::Reset;
        };
        let off = you.position.distance(self.history[index].position);
        if off > NEGLIGIBLE {
            self.history[index].position = you.position;
            for later in index + 1..self.history.len() {
                let from = self.history[later - 1].position;
                self.history[later].position = self.walk(from, self.history[later].keys);
            }
        }
        Reconciled::Corrected(off)
    }

    /// Where the player is at `at`, as predicted: the last tick completed, and as far
    /// into the tick in progress as `at` is, with the keys held now.
    pub fn position_at(&self, at: Instant) -> Option<Vec2> {
        let last = self.history.back()?;
        let in_progress = self.clock.tick_at(at);
        // Ticks completed and not yet predicted, if any: walked here with the keys held now.
        let behind = in_progress.saturating_sub(last.tick.saturating_add(1)).min(HISTORY_TICKS as u32);
        let mut position = last.position;
        for _ in 0..behind {
            position = self.walk(position, self.keys);
        }
        let partial = self.tick_seconds * self.clock.progress(at);
        Some(self.map.walk(position, self.keys.walk_velocity().0, partial).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::cluster::ClusterConfig;
    use tessera_shared::ids::EntityId;

    const TICK: f32 = 0.05;

    fn prediction(origin: Instant) -> Prediction {
        let map = ClusterConfig::default_local().region_map();
        Prediction::new(InputClock::new(origin, TICK), map, TICK)
    }

    fn state(x: f32, y: f32) -> EntityState {
        EntityState { id: EntityId(1), position: Vec2::new(x, y), velocity: Vec2::ZERO }
    }

    fn after(origin: Instant, ticks: f32) -> Instant {
        origin + Duration::from_secs_f32(TICK * ticks)
    }

    fn assert_near(got: Option<Vec2>, want: (f32, f32)) {
        let got = got.expect("a prediction");
        assert!(got.distance(Vec2::new(want.0, want.1)) < 1e-3, "{got} is not near {want:?}");
    }

    #[test]
    fn an_acknowledgement_is_due_when_the_tick_and_the_slack_are_over() {
        let origin = Instant::now();
        let clock = InputClock::new(origin, TICK);
        let pressed = after(origin, 7.5);
        let due = clock.acknowledgement_due(clock.tick_at(pressed));
        let ticks = 8.0 + INPUT_SLACK_TICKS as f32;
        let expected = after(origin, ticks);
        let apart = due.max(expected) - due.min(expected);
        assert!(apart < Duration::from_micros(1), "tick 7 ends at 8, then the slack: {apart:?} apart");
        assert!(clock.acknowledgement_due(u32::MAX) > origin, "the last tick overflows nothing");
    }

    #[test]
    fn a_server_that_did_what_was_predicted_corrects_nothing() {
        let origin = Instant::now();
        let mut prediction = prediction(origin);
        assert_eq!(prediction.reconcile(&state(500.0, 500.0), None, after(origin, 10.5)), Reconciled::Reset);
        // Right from tick 10 on, then up from 14: 10 units a tick at 200 units a second.
        assert_eq!(prediction.press(Keys::RIGHT, after(origin, 10.5)), 10);
        assert_eq!(prediction.press(Keys::UP, after(origin, 14.2)), 14);
        let now = after(origin, 20.5);
        assert_near(prediction.position_at(now), (540.0, 565.0));
        // The server's word for tick 12, and 17, as it simulated them.
        assert_eq!(prediction.reconcile(&state(530.0, 500.0), Some(12), now), Reconciled::Corrected(0.0));
        assert_eq!(prediction.reconcile(&state(540.0, 540.0), Some(17), now), Reconciled::Corrected(0.0));
    }

    #[test]
    fn a_correction_moves_every_tick_predicted_since() {
        let origin = Instant::now();
        let mut prediction = prediction(origin);
        prediction.reconcile(&state(500.0, 500.0), None, after(origin, 10.5));
        prediction.press(Keys::RIGHT, after(origin, 10.5));
        let now = after(origin, 20.5);
        // The server applied it a tick late: at tick 12 the player is 10 units short.
        assert_eq!(prediction.reconcile(&state(520.0, 500.0), Some(12), now), Reconciled::Corrected(10.0));
        assert_near(prediction.position_at(now), (595.0, 500.0));
        // A state older than the history starts it again, from that state's tick.
        assert_eq!(prediction.reconcile(&state(100.0, 100.0), Some(2), now), Reconciled::Reset);
        assert_near(prediction.position_at(now), (275.0, 100.0));
    }

    #[test]
    fn the_world_edge_stops_a_prediction_as_it_stops_the_server() {
        let origin = Instant::now();
        let mut prediction = prediction(origin);
        prediction.reconcile(&state(5.0, 500.0), None, after(origin, 0.5));
        prediction.press(Keys::LEFT, after(origin, 0.5));
        assert_near(prediction.position_at(after(origin, 5.5)), (0.0, 500.0));
    }
}
