//! What the server tells its operator: every few seconds, one log line with the
//! regions it owns, its players and ghosts, its subscriptions in and out, its handoffs
//! in and out, its links, how long its ticks take, and how often its players are sent
//! updates. The same figures are kept live
//! in [`ServerStats`](crate::stats::ServerStats) and exported as metrics (the names in
//! [`tessera_shared::metrics`]), which the benchmark scrapes.

use crate::net::{PeerLinks, ProxyLinks};
use crate::pacing::UpdatePace;
use crate::players::Players;
use crate::regions::ghosts::Ghosts;
use crate::regions::publisher::Publications;
use crate::regions::subscriber::Subscriptions;
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use crate::tick::SimulationTick;
use bevy::prelude::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tessera_shared::metrics as names;
use tracing::info;

/// How often the status line is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Wall-clock time of each frame (receive, simulate, send) since the last report.
#[derive(Resource, Debug)]
pub struct TickTimes {
    frame_started: Instant,
    window_started: Instant,
    durations: Vec<Duration>,
    last: Duration,
}

impl Default for TickTimes {
    fn default() -> Self {
        let now = Instant::now();
        Self { frame_started: now, window_started: now, durations: Vec::new(), last: Duration::ZERO }
    }
}

/// The status systems that run in `Last`: the frame is timed in `FrameTimed`.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusSystems {
    FrameTimed,
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
    /// How long the last frame took.
    pub fn last(&self) -> Duration {
        self.last
    }

    /// Summarises and clears the window.
    pub fn take_summary(&mut self) -> TickSummary {
        let mut durations = std::mem::take(&mut self.durations);
        durations.sort_unstable();
        let at =
            |q: f64| durations.get(((durations.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default();
        TickSummary { frames: durations.len(), p50: at(0.5), p99: at(0.99), max: at(1.0) }
    }
}

pub struct StatusPlugin;

impl Plugin for StatusPlugin {
    fn build(&self, app: &mut App) {
        let id = app.world().resource::<ServerSettings>().id;
        app.init_resource::<TickTimes>()
            .insert_resource(ServerMetrics::new(id.0))
            .add_systems(First, start_frame)
            .add_systems(
                Last,
                (end_frame.in_set(StatusSystems::FrameTimed), publish_stats, export_metrics, report_health, report)
                    .chain(),
            );
    }
}

/// Handles on this server's exported metrics, labelled with its id once, here.
#[derive(Resource)]
struct ServerMetrics {
    tick_seconds: metrics::Histogram,
    ticks: metrics::Counter,
    players: metrics::Gauge,
    ghosts: metrics::Gauge,
    peers: metrics::Gauge,
    peer_bytes_in: metrics::Counter,
    peer_bytes_out: metrics::Counter,
    handoffs_in: metrics::Counter,
    handoffs_out: metrics::Counter,
    refused_connections: metrics::Counter,
    failed_handshakes: metrics::Counter,
    checkpoints_saved: metrics::Counter,
    checkpoint_failures: metrics::Counter,
    updates_sent: metrics::Counter,
    updates_quiet: metrics::Counter,
    updates_paced: metrics::Counter,
    updates_budget_spent: metrics::Counter,
    update_every: metrics::Gauge,
    input_waits_longer: metrics::Counter,
    input_waits_shorter: metrics::Counter,
}

impl ServerMetrics {
    fn new(id: u16) -> Self {
        let server = id.to_string();
        Self {
            tick_seconds: metrics::histogram!(names::SERVER_TICK_SECONDS, "server" => server.clone()),
            ticks: metrics::counter!(names::SERVER_TICKS, "server" => server.clone()),
            players: metrics::gauge!(names::SERVER_PLAYERS, "server" => server.clone()),
            ghosts: metrics::gauge!(names::SERVER_GHOSTS, "server" => server.clone()),
            peers: metrics::gauge!(names::SERVER_PEERS, "server" => server.clone()),
            peer_bytes_in: metrics::counter!(names::SERVER_PEER_BYTES, "server" => server.clone(), "direction" => "in"),
            peer_bytes_out: metrics::counter!(names::SERVER_PEER_BYTES, "server" => server.clone(), "direction" => "out"),
            handoffs_in: metrics::counter!(names::SERVER_HANDOFFS, "server" => server.clone(), "direction" => "in"),
            handoffs_out: metrics::counter!(names::SERVER_HANDOFFS, "server" => server.clone(), "direction" => "out"),
            refused_connections: metrics::counter!(names::SERVER_REFUSALS, "server" => server.clone(), "cause" => "door"),
            failed_handshakes: metrics::counter!(names::SERVER_REFUSALS, "server" => server.clone(), "cause" => "handshake"),
            checkpoints_saved: metrics::counter!(names::SERVER_CHECKPOINTS, "server" => server.clone()),
            checkpoint_failures: metrics::counter!(names::SERVER_CHECKPOINT_FAILURES, "server" => server.clone()),
            updates_sent: metrics::counter!(names::SERVER_PLAYER_UPDATES, "server" => server.clone(), "outcome" => "sent"),
            updates_quiet: metrics::counter!(names::SERVER_PLAYER_UPDATES, "server" => server.clone(), "outcome" => "quiet"),
            updates_paced: metrics::counter!(names::SERVER_PLAYER_UPDATES, "server" => server.clone(), "outcome" => "paced"),
            updates_budget_spent: metrics::counter!(names::SERVER_UPDATES_BUDGET_SPENT, "server" => server.clone()),
            update_every: metrics::gauge!(names::SERVER_UPDATE_EVERY, "server" => server.clone()),
            input_waits_longer: metrics::counter!(names::SERVER_INPUT_WAIT_CHANGES, "server" => server.clone(), "change" => "longer"),
            input_waits_shorter: metrics::counter!(names::SERVER_INPUT_WAIT_CHANGES, "server" => server, "change" => "shorter"),
        }
    }
}

fn start_frame(mut times: ResMut<TickTimes>) {
    times.frame_started = Instant::now();
}

fn end_frame(mut times: ResMut<TickTimes>, metrics: Res<ServerMetrics>) {
    let elapsed = times.frame_started.elapsed();
    times.last = elapsed;
    times.durations.push(elapsed);
    metrics.tick_seconds.record(elapsed.as_secs_f64());
}

fn publish_stats(
    settings: Res<ServerSettings>,
    players: Res<Players>,
    ghosts: Res<Ghosts>,
    subscriptions: Res<Subscriptions>,
    publications: Res<Publications>,
) {
    let stats: &ServerStats = &settings.stats;
    stats.players.store(players.0.len() as u64, Ordering::Relaxed);
    stats.ghosts.store(ghosts.len() as u64, Ordering::Relaxed);
    stats.subscriptions_out.store(subscriptions.count() as u64, Ordering::Relaxed);
    stats.subscriptions_in.store(publications.count() as u64, Ordering::Relaxed);
}

/// Copies the live figures into the exported metrics.
fn export_metrics(
    settings: Res<ServerSettings>,
    tick: Res<SimulationTick>,
    pace: Res<UpdatePace>,
    peers: Res<PeerLinks>,
    metrics: Res<ServerMetrics>,
) {
    let (stats, get) = (&settings.stats, ServerStats::get);
    metrics.ticks.absolute(tick.0);
    metrics.players.set(get(&stats.players) as f64);
    metrics.ghosts.set(get(&stats.ghosts) as f64);
    metrics.peers.set(peers.len() as f64);
    metrics.peer_bytes_in.absolute(get(&stats.peer_traffic.bytes_in));
    metrics.peer_bytes_out.absolute(get(&stats.peer_traffic.bytes_out));
    metrics.handoffs_in.absolute(get(&stats.handoffs_in));
    metrics.handoffs_out.absolute(get(&stats.handoffs_out));
    metrics.refused_connections.absolute(get(&stats.refused_connections));
    metrics.failed_handshakes.absolute(get(&stats.failed_handshakes));
    metrics.checkpoints_saved.absolute(get(&stats.checkpoints_saved));
    metrics.checkpoint_failures.absolute(get(&stats.checkpoint_failures));
    metrics.updates_sent.absolute(get(&stats.updates_sent));
    metrics.updates_quiet.absolute(get(&stats.updates_quiet));
    metrics.updates_paced.absolute(get(&stats.updates_paced));
    metrics.updates_budget_spent.absolute(get(&stats.updates_budget_spent));
    metrics.update_every.set(f64::from(pace.every()));
    metrics.input_waits_longer.absolute(get(&stats.input_waits_longer));
    metrics.input_waits_shorter.absolute(get(&stats.input_waits_shorter));
}

/// Beats once a tick; ready while a proxy is linked, so that players can reach us: a
/// rolling restart then moves on to the next server only once this one is back in play.
fn report_health(settings: Res<ServerSettings>, proxies: Res<ProxyLinks>) {
    settings.health.beat();
    settings.health.set_ready(!proxies.is_empty());
}

fn report(
    mut times: ResMut<TickTimes>,
    settings: Res<ServerSettings>,
    pace: Res<UpdatePace>,
    proxies: Res<ProxyLinks>,
    peers: Res<PeerLinks>,
) {
    if times.window_started.elapsed() < REPORT_EVERY {
        return;
    }
    times.window_started = Instant::now();
    let ticks = times.take_summary();
    let regions: Vec<String> = settings.map.regions_of(settings.id).map(|r| r.to_string()).collect();
    let stats = &settings.stats;
    let get = ServerStats::get;
    info!(
        "status: {} owns regions [{}]; {} players, {} ghosts; subscriptions out {} in {}; handoffs in {} out {}; \
         {} proxies, {} peers, {} peer bytes out; {} frames, tick p50 {:.2?} p99 {:.2?} max {:.2?}; \
         updates every {} ticks",
        settings.id,
        regions.join(" "),
        get(&stats.players),
        get(&stats.ghosts),
        get(&stats.subscriptions_out),
        get(&stats.subscriptions_in),
        get(&stats.handoffs_in),
        get(&stats.handoffs_out),
        proxies.len(),
        peers.len(),
        get(&stats.peer_traffic.bytes_out),
        ticks.frames,
        ticks.p50,
        ticks.p99,
        ticks.max,
        pace.every(),
    );
}
