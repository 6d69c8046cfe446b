//! Graceful overload: how many ticks apart the server sends each player an update.
//! A server past its capacity does not let its ticks stretch, and every player's latency
//! with them: it spreads its players' updates over 2, 4, 8, then 16 ticks
//! ([`MAX_UPDATE_EVERY`]), each player on a phase of its own, so each tick runs the
//! interest pass for a share of them and every hop after it (proxy, player) carries
//! that share of frames. Every player still moves every tick, its inputs are still
//! acknowledged as soon as they are applied, and it hears what the others did a
//! little later; its updates say so, and the player's HUD shows it. The load that decides is the server's own frame time, smoothed, against
//! its tick length: on a shared machine it also rises with what the other processes
//! take, which is load all the same.

use crate::settings::ServerSettings;
use crate::status::{StatusSystems, TickTimes};
use bevy::prelude::*;
use std::time::{Duration, Instant};
use tessera_shared::ids::EntityId;
use tessera_shared::protocol::MAX_UPDATE_EVERY;
use tracing::{info, warn};

/// Above this mean share of its tick length a frame takes, the server spreads its
/// players' updates further; below the lower one it gathers them again. Frame times
/// vary, the more on a full machine: there a mean at a fifth of the tick has come with
/// a 99th percentile near half of it, the line the benchmark holds servers to
/// (BENCHMARKS.md).
const SPREAD_ABOVE: f64 = 0.20;
const GATHER_BELOW: f64 = 0.08;
/// How much of each frame's time goes into the mean: about a second's worth at 20 Hz.
const LOAD_GAIN: f64 = 0.05;
/// How long a pace holds before the next step: spreading answers overload soon, while
/// gathering waits until the lower load has lasted.
const SPREAD_AFTER: Duration = Duration::from_secs(1);
const GATHER_AFTER: Duration = Duration::from_secs(5);

pub struct PacingPlugin;

impl Plugin for PacingPlugin {
    fn build(&self, app: &mut App) {
        let settings = app.world().resource::<ServerSettings>();
        let pace = UpdatePace::new(settings.tick(), settings.update_every);
        app.insert_resource(pace).add_systems(Last, follow_load.after(StatusSystems::FrameTimed));
    }
}

/// The ticks apart each player is sent an update now, and the load that set it.
#[derive(Resource, Debug)]
pub struct UpdatePace {
    every: u8,
    /// Frame time over tick length, smoothed.
    load: f64,
    tick: Duration,
    since: Instant,
    /// A pace set by the operator, which load does not move.
    fixed: bool,
}

impl UpdatePace {
    /// Pacing for ticks of `tick`: by load, or held at `fixed` ticks apart.
    pub fn new(tick: Duration, fixed: Option<u8>) -> Self {
        let every = fixed.unwrap_or(1).clamp(1, MAX_UPDATE_EVERY);
        Self { every, load: 0.0, tick, since: Instant::now(), fixed: fixed.is_some() }
    }

    /// How many ticks apart players are sent updates.
    pub fn every(&self) -> u8 {
        self.every
    }

    /// Whether the player `id` is due an update at `tick`: one tick in `every`, at a phase
    /// of its own, so the players' updates spread evenly over the ticks.
    pub fn due(&self, id: EntityId, tick: u64) -> bool {
        tick.wrapping_add(id.0).is_multiple_of(u64::from(self.every))
    }

    /// Folds in a frame that took `took`, ended at `now`; says whether the pace changed.
    fn frame(&mut self, took: Duration, now: Instant) -> bool {
        let share = took.as_secs_f64() / self.tick.as_secs_f64().max(1e-6);
        self.load += (share - self.load) * LOAD_GAIN;
        if self.fixed {
            return false;
        }
        let held = now.saturating_duration_since(self.since);
        let every = if self.load > SPREAD_ABOVE && held >= SPREAD_AFTER {
            self.every.saturating_mul(2).min(MAX_UPDATE_EVERY)
        } else if self.load < GATHER_BELOW && held >= GATHER_AFTER {
            (self.every / 2).max(1)
        } else {
            self.every
        };
        if every == self.every {
            return false;
        }
        (self.every, self.since) = (every, now);
        true
    }
}

fn follow_load(times: Res<TickTimes>, mut pace: ResMut<UpdatePace>, settings: Res<ServerSettings>) {
    let was = pace.every;
    if pace.frame(times.last(), Instant::now()) {
        let load = pace.load * 100.0;
        let every = pace.every;
        if every > was {
            warn!(
                "{} over capacity (frames at {load:.0} % of a tick): players' updates every {every} ticks",
                settings.id
            );
        } else {
            info!("{} load down (frames at {load:.0} % of a tick): players' updates every {every} ticks", settings.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(50);

    /// Runs `frames` frames of `took` each, one a tick, from `start`; returns the pace after.
    fn run(pace: &mut UpdatePace, start: &mut Instant, frames: u32, took: Duration) -> u8 {
        for _ in 0..frames {
            *start += TICK;
            pace.frame(took, *start);
        }
        pace.every()
    }

    #[test]
    fn past_capacity_updates_spread_out_step_by_step_and_gather_again_once_load_has_stayed_low() {
        let mut now = Instant::now();
        let mut pace = UpdatePace { since: now, ..UpdatePace::new(TICK, None) };
        assert_eq!(run(&mut pace, &mut now, 200, Duration::from_millis(5)), 1, "10 % of a tick: every tick");
        assert_eq!(run(&mut pace, &mut now, 2, Duration::from_millis(40)), 1, "a few slow frames are not a load");
        assert_eq!(run(&mut pace, &mut now, 20, Duration::from_millis(20)), 2, "40 %: every other tick");
        assert_eq!(run(&mut pace, &mut now, 20, Duration::from_millis(20)), 4, "still 40 % a second on: further");
        assert_eq!(run(&mut pace, &mut now, 20, Duration::from_millis(20)), 8, "and further");
        assert_eq!(run(&mut pace, &mut now, 20, Duration::from_millis(20)), 16, "and further");
        assert_eq!(run(&mut pace, &mut now, 400, Duration::from_millis(20)), MAX_UPDATE_EVERY, "no further");
        assert_eq!(run(&mut pace, &mut now, 30, Duration::from_millis(2)), 16, "the mean is not down yet");
        assert_eq!(run(&mut pace, &mut now, 60, Duration::from_millis(2)), 8, "one step, then it holds a while");
        assert_eq!(run(&mut pace, &mut now, 100, Duration::from_millis(8)), 8, "16 %: holds");
        assert_eq!(run(&mut pace, &mut now, 100, Duration::from_millis(2)), 4, "gathered a step at a time");
        assert_eq!(run(&mut pace, &mut now, 100, Duration::from_millis(2)), 2);
        assert_eq!(run(&mut pace, &mut now, 100, Duration::from_millis(2)), 1);
    }

    #[test]
    fn each_player_is_due_once_in_every_ticks_and_players_share_the_ticks() {
        let mut pace = UpdatePace::new(TICK, Some(4));
        assert_eq!(run(&mut pace, &mut Instant::now(), 100, Duration::from_millis(45)), 4, "held by the operator");
        for id in 0..8 {
            let due: Vec<u64> = (100..108).filter(|&tick| pace.due(EntityId(id), tick)).collect();
            assert_eq!(due.len(), 2, "{id}: {due:?}");
        }
        let due_at_100 = (0..100).filter(|&id| pace.due(EntityId(id), 100)).count();
        assert_eq!(due_at_100, 25, "a quarter of the players at each tick");
        let pace = UpdatePace::new(TICK, None);
        assert!((0..10).all(|tick| pace.due(EntityId(7), tick)), "unloaded: every tick");
    }
}
