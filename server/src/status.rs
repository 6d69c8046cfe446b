//! What the server tells its operator: every few seconds, one log line with the
//! regions it owns, its players, its links, and how long its ticks take.

use crate::app::ServerSettings;
use crate::net::ProxyLinks;
use crate::players::Players;
use bevy::prelude::*;
use tracing::info;
use std::time::{Duration, Instant};

/// How often the status line is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Wall-clock time of each frame (receive, simulate, send) since the last report.
#[derive(Resource, Debug)]
pub struct TickTimes {
    frame_started: Instant,
    window_started: Instant,
    durations: Vec<Duration>,
}

impl Default for TickTimes {
    fn default() -> Self {
        Self {
            frame_started: Instant::now(),
            window_started: Instant::now(),
            durations: Vec::new(),
        }
    }
}

/// Percentiles of a window of frame times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TickSummary {
    pub frames: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl TickTimes {
    /// Summarises and clears the window.
    pub fn take_summary(&mut self) -> TickSummary {
        let mut durations = std::mem::take(&mut self.durations);
        durations.sort_unstable();
        let at = |q: f64| {
            durations
                .get(((durations.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or_default()
        };
        TickSummary {
            frames: durations.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

pub struct StatusPlugin;

impl Plugin for StatusPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<TickTimes>()
            .add_systems(First, start_frame)
            .add_systems(Last, (end_frame, report).chain());
    }
}

fn start_frame(mut times: ResMut<TickTimes>) {
    times.frame_started = Instant::now();
}

fn end_frame(mut times: ResMut<TickTimes>) {
    let elapsed = times.frame_started.elapsed();
    times.durations.push(elapsed);
}

fn report(
    mut times: ResMut<TickTimes>,
    settings: Res<ServerSettings>,
    players: Res<Players>,
    proxies: Res<ProxyLinks>,
) {
    if times.window_started.elapsed() < REPORT_EVERY {
        return;
    }
    times.window_started = Instant::now();
    let ticks = times.take_summary();
    let regions: Vec<String> = settings
        .map
        .regions_of(settings.id)
        .map(|r| r.to_string())
        .collect();
    info!(
        "status: {} owns regions [{}]; {} players; {} proxies; {} frames, tick p50 {:.2?} p99 {:.2?} max {:.2?}",
        settings.id,
        regions.join(" "),
        players.0.len(),
        proxies.len(),
        ticks.frames,
        ticks.p50,
        ticks.p99,
        ticks.max,
    );
}
