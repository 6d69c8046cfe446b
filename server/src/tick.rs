//! The simulation's clock: [`SimulationTick`] counts fixed ticks, advanced first thing
//! in each one, and [`TickWallClock`] says when in Unix time they run, so that a
//! player's own clock carries from one server's ticks to another's (servers count ticks
//! each from its own start). Systems that send once per tick run when the tick changes.
//!
//! A running server ticks on the beat ([`run_on_the_beat`]): the beats are whole
//! multiples of the tick length in Unix time, the same instants on every host whose
//! clock agrees, and each server ticks its phase after them
//! ([`ClusterConfig::beat_phase`](tessera_shared::cluster::ClusterConfig::beat_phase)),
//! so that servers sharing a host's cores take turns. A player handed from one server
//! to another is handed from beat to beat: its next tick runs on the beat it fell due
//! on, neither a beat early (which ate into the slack its inputs arrive in) nor late
//! (which added up, border after border).

use crate::settings::ServerSettings;
use bevy::app::PluginsState;
use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::warn;

/// How far behind its beats a server catches up, one tick after another with no wait;
/// further behind (a stalled host, a stopped process), it skips to the last beat passed
/// rather than rush through the ticks it missed.
const CATCH_UP_AT_MOST: Duration = Duration::from_millis(250);
/// How often a server checks that the host's clock still agrees with the beats it set
/// out from.
const CLOCK_CHECK_EVERY: Duration = Duration::from_secs(10);

/// Counts fixed ticks; systems that send once per tick run when it changes.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulationTick(pub u64);

/// When this server's ticks run, in microseconds of Unix time.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TickWallClock {
    /// The Unix time this server's real time (Bevy's `Time<Real>`) counts from.
    started: Duration,
    /// The last tick run, and when it ran.
    last_tick: u64,
    last_tick_at: Duration,
    /// How far apart ticks run.
    tick_length: Duration,
    /// How long after each beat our ticks run.
    phase: Duration,
}

impl TickWallClock {
    /// A clock whose real time counts from `started`: the host's clock at start-up, or
    /// any one instant shared by servers that step together on manual time.
    pub fn starting_at(started: SystemTime, tick_length: Duration) -> Self {
        let started = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self { started, last_tick: 0, last_tick_at: started, tick_length, phase: Duration::ZERO }
    }

    /// This clock, its ticks running `phase` after the beats.
    pub fn on_phase(self, phase: Duration) -> Self {
        Self { phase, ..self }
    }

    /// When our tick `tick` runs (or ran): the microsecond of Unix time.
    pub fn time_of(&self, tick: u64) -> u64 {
        let last = micros(self.last_tick_at);
        let apart = |ticks: u64| micros(self.tick_length.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX)));
        if tick >= self.last_tick {
            last.saturating_add(apart(tick - self.last_tick))
        } else {
            last.saturating_sub(apart(self.last_tick - tick))
        }
    }

    /// Our tick that runs nearest to `at` (a microsecond of Unix time): never one run
    /// already, nor more than `most_ahead` ticks after the last.
    fn tick_nearest(&self, at: u64, most_ahead: u64) -> u64 {
        let ahead = (at as f64 - micros(self.last_tick_at) as f64) / self.tick_length.as_micros().max(1) as f64;
        // `as` saturates (and makes NaN 0): a time from a peer overflows nothing.
        let ahead = (ahead.round() as u64).clamp(1, most_ahead.max(1));
        self.last_tick.saturating_add(ahead)
    }
}

impl TickWallClock {
    /// The beat our tick `tick` runs on (or ran on): the microsecond of Unix time a
    /// player's clock is handed over in, whatever phase each server ticks at.
    pub fn beat_of(&self, tick: u64) -> u64 {
        self.time_of(tick).saturating_sub(micros(self.phase))
    }

    /// Our tick on the beat `beat` (a microsecond of Unix time), or the nearest to it
    /// (a host's clock off its peers'): held as [`Self::tick_nearest`] holds it.
    pub fn tick_on_beat(&self, beat: u64, most_ahead: u64) -> u64 {
        self.tick_nearest(beat.saturating_add(micros(self.phase)), most_ahead)
    }

    /// Seconds from `at` (a microsecond of Unix time) to when the last tick ran: less
    /// than none for a time since (a peer ticking a phase after us, whose word came
    /// before our next tick), down to a tick's length, and at most `most`, whatever a
    /// peer says.
    pub fn seconds_since(&self, at: u64, most: f32) -> f32 {
        let seconds = (micros(self.last_tick_at) as f64 - at as f64) / 1e6;
        (seconds as f32).clamp(-self.tick_length.as_secs_f32(), most)
    }
}

fn micros(time: Duration) -> u64 {
    u64::try_from(time.as_micros()).unwrap_or(u64::MAX)
}

pub struct TickPlugin;

impl Plugin for TickPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<SimulationTick>()
            .insert_resource(TickWallClock::starting_at(SystemTime::now(), Duration::ZERO))
            .add_systems(FixedFirst, advance_tick)
            .set_runner(run_on_the_beat);
    }
}

/// The instants a server's updates run at: one a tick length apart, each its phase
/// after a whole multiple of the tick length in Unix time.
#[derive(Debug)]
struct Beats {
    /// The first instant (its phase after a beat), and when it is in Unix time.
    first: Instant,
    first_unix: Duration,
    next: Instant,
    length: Duration,
}

impl Beats {
    /// The instants from the first at or after `now`, which is `now_unix` in Unix time,
    /// each `phase` after a beat.
    fn from(now: Instant, now_unix: Duration, length: Duration, phase: Duration) -> Self {
        let into_beat = into_beat(now_unix.saturating_sub(phase), length);
        let wait = if into_beat.is_zero() { into_beat } else { length - into_beat };
        Self { first: now + wait, first_unix: now_unix.saturating_add(wait), next: now + wait, length }
    }

    /// Milliseconds the host's clock moved since the first beat (`now` is `now_unix`):
    /// a clock stepped (NTP setting it at last, an operator) leaves the beats where they
    /// were, counted from the first.
    fn clock_moved_ms(&self, now: Instant, now_unix: Duration) -> f64 {
        let expected = self.first_unix.as_secs_f64() + now.saturating_duration_since(self.first).as_secs_f64();
        (now_unix.as_secs_f64() - expected) * 1e3
    }

    /// The beat to run the next update at, as of `now`: the one after the last, or, if
    /// that is more than [`CATCH_UP_AT_MOST`] past, the last beat passed.
    fn next(&mut self, now: Instant) -> Instant {
        let behind = now.saturating_duration_since(self.next);
        if behind > CATCH_UP_AT_MOST {
            self.next = now - into_beat(behind, self.length);
        }
        let beat = self.next;
        self.next += self.length;
        beat
    }
}

/// How far `time` is past a whole number of beats `length` apart.
fn into_beat(time: Duration, length: Duration) -> Duration {
    // Below the length, so it fits.
    Duration::from_nanos((time.as_nanos() % length.as_nanos().max(1)) as u64)
}

/// Runs the app one update a beat (see [`Beats`]), each update's time the beat's, until
/// it exits. The first update is the first beat, and the ticks run from the next.
fn run_on_the_beat(mut app: App) -> AppExit {
    if app.plugins_state() != PluginsState::Cleaned {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
    }
    let tick = app.world().resource::<Time<Fixed>>().timestep();
    // One tick an update at most: a server behind runs a whole update (receive,
    // simulate, send) for each tick it catches up, and one far behind skips.
    app.world_mut().resource_mut::<Time<Virtual>>().set_max_delta(tick);
    let unix_now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let phase = app.world().resource::<ServerSettings>().beat_phase();
    let mut beats = Beats::from(Instant::now(), unix_now(), tick, phase);
    app.insert_resource(TickWallClock::starting_at(UNIX_EPOCH + beats.first_unix, tick).on_phase(phase));
    let (mut next_check, mut told_moved_ms) = (Instant::now() + CLOCK_CHECK_EVERY, 0.0);
    loop {
        if Instant::now() >= next_check {
            next_check += CLOCK_CHECK_EVERY;
            let moved_ms = beats.clock_moved_ms(Instant::now(), unix_now());
            if (moved_ms - told_moved_ms).abs() > tick.as_secs_f64() * 1e3 / 4.0 {
                warn!(
                    "the host's clock moved {moved_ms:+.1} ms since this server started: its ticks run that far \
                     off its peers', and players handed to or from it shift by as much, until it restarts"
                );
                told_moved_ms = moved_ms;
            }
        }
        let beat = beats.next(Instant::now());
        if let Some(wait) = beat.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        app.insert_resource(TimeUpdateStrategy::ManualInstant(beat));
        app.update();
        if let Some(exit) = app.should_exit() {
            return exit;
        }
    }
}

fn advance_tick(
    mut tick: ResMut<SimulationTick>,
    mut wall: ResMut<TickWallClock>,
    real: Res<Time<Real>>,
    fixed: Res<Time<Fixed>>,
) {
    tick.0 += 1;
    wall.last_tick = tick.0;
    wall.last_tick_at = wall.started.saturating_add(real.elapsed());
    wall.tick_length = fixed.timestep();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Our tick 10 ran a thousand seconds into Unix time, ticks 50 ms apart.
    fn clock() -> TickWallClock {
        let started = UNIX_EPOCH + Duration::from_secs(1_000);
        TickWallClock { last_tick: 10, ..TickWallClock::starting_at(started, Duration::from_millis(50)) }
    }

    #[test]
    fn a_time_maps_to_the_nearest_tick_and_back() {
        let clock = clock();
        assert_eq!(clock.time_of(12), 1_000_100_000);
        assert_eq!(clock.time_of(8), 999_900_000);
        assert_eq!(clock.tick_nearest(1_000_100_000, 10), 12);
        assert_eq!(clock.tick_nearest(1_000_124_000, 10), 12, "under half a tick later");
        assert_eq!(clock.tick_nearest(1_000_126_000, 10), 13, "over half a tick later");
    }

    #[test]
    fn a_time_from_a_peer_is_held_within_bounds() {
        let clock = clock();
        assert_eq!(clock.tick_nearest(0, 10), 11, "long past: our next tick");
        assert_eq!(clock.tick_nearest(u64::MAX, 10), 20, "far ahead: no later than allowed");
        assert_eq!(clock.seconds_since(u64::MAX, 0.5), -0.05, "a time to come: back a tick at most");
        assert_eq!(clock.seconds_since(0, 0.5), 0.5, "long past: no more than allowed");
    }

    #[test]
    fn beats_fall_on_whole_ticks_of_unix_time_and_skip_when_far_behind() {
        let length = Duration::from_millis(50);
        let now = Instant::now();
        let mut beats = Beats::from(now, Duration::from_millis(1_000_020), length, Duration::ZERO);
        assert_eq!(beats.first_unix, Duration::from_millis(1_000_050), "the next whole tick");
        let first = beats.next(now);
        assert_eq!(first, now + Duration::from_millis(30));
        assert_eq!(beats.next(now), first + length, "early: the next beat, to wait for");
        let late = first + Duration::from_millis(220);
        assert_eq!(beats.next(late), first + 2 * length, "a little behind: caught up beat by beat");
        let stalled = first + Duration::from_millis(1_020);
        assert_eq!(beats.next(stalled), first + Duration::from_millis(1_000), "far behind: the last beat passed");
        assert_eq!(beats.next(stalled), first + Duration::from_millis(1_050));
        let on_a_beat = Beats::from(now, Duration::from_millis(1_000_000), length, Duration::ZERO);
        assert_eq!((on_a_beat.first_unix, on_a_beat.next), (Duration::from_millis(1_000_000), now));
        let later = now + Duration::from_secs(60);
        let moved = on_a_beat.clock_moved_ms(later, Duration::from_millis(1_060_000 - 40));
        assert!((moved + 40.0).abs() < 1e-6, "a clock set back 40 ms: {moved}");
    }

    /// A server 37.5 ms after the beats ticks 37.5 ms after them, from the first such
    /// instant; its ticks' beats are 37.5 ms before them, and a player handed over on a
    /// beat runs on its tick of that beat, either way between it and a server on the beat
    /// (more than half a tick apart, so the nearest tick by time would be the wrong one).
    #[test]
    fn a_phase_puts_ticks_after_the_beats_and_handoffs_go_beat_to_beat() {
        let (length, phase) = (Duration::from_millis(50), Duration::from_micros(37_500));
        let now = Instant::now();
        let before = Beats::from(now, Duration::from_millis(1_000_030), length, phase);
        assert_eq!(before.first_unix, Duration::from_micros(1_000_037_500), "this beat's instant, still to come");
        let after = Beats::from(now, Duration::from_millis(1_000_040), length, phase);
        assert_eq!(after.first_unix, Duration::from_micros(1_000_087_500), "the next beat's");
        // Our tick 10 ran 37.5 ms after the beat at a thousand seconds.
        let started = UNIX_EPOCH + Duration::from_secs(1_000) + phase;
        let ours = TickWallClock { last_tick: 10, ..TickWallClock::starting_at(started, length).on_phase(phase) };
        assert_eq!(ours.time_of(12), 1_000_137_500);
        assert_eq!(ours.beat_of(12), 1_000_100_000, "our tick 12 runs 37.5 ms after its beat");
        assert_eq!(ours.tick_on_beat(1_000_100_000, 10), 12);
        let theirs = clock();
        assert_eq!(ours.tick_on_beat(theirs.beat_of(12), 10), 12, "from a server on the beat");
        assert_eq!(theirs.tick_on_beat(ours.beat_of(12), 10), 12, "and back");
    }

    #[test]
    fn the_time_since_a_peers_tick_is_exact() {
        let clock = clock();
        assert!((clock.seconds_since(999_930_000, 0.5) - 0.07).abs() < 1e-6);
        // A peer ticking 30 ms after our last tick: its word is 30 ms ahead of it.
        assert!((clock.seconds_since(1_000_030_000, 0.5) + 0.03).abs() < 1e-6);
    }
}
