//! The bot swarm: many headless players in one process, each walking toward random
//! points of the world (so they cross borders often), pressing keys only when the
//! direction changes, as a person would. Each bot counts its inputs and how long the
//! server took to echo them.

use crate::player::{Player, PlayerError};
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::Duration;
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::link::Traffic;
use tokio::time::Instant;

/// How often a bot looks where it is going.
const STEER_EVERY: Duration = Duration::from_millis(250);
/// How long a bot keeps trying to join before it counts as failed to connect.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// How long a bot waits for its last inputs to be acknowledged before it counts them lost.
const ACK_GRACE: Duration = Duration::from_secs(3);

/// What one bot measured.
#[derive(Debug)]
pub struct BotReport {
    pub inputs_sent: u32,
    pub inputs_acknowledged: u32,
    pub inputs_duplicated: u32,
    pub handoffs: u32,
    pub updates: u64,
    /// Entities carried by those updates (the bot itself and everything in view).
    pub entity_updates: u64,
    pub bytes_received: u64,
    pub echo_latency_us: Histogram<u64>,
    pub still_connected: bool,
    pub error: Option<String>,
}

/// Runs one bot against the proxy at `addr` for `duration`.
pub async fn run_bot(
    addr: String,
    name: String,
    duration: Duration,
    log_position: bool,
) -> Result<BotReport, PlayerError> {
    let traffic = Traffic::default();
    // A cluster that has just started may not have all its links up yet.
    let patience = Instant::now() + CONNECT_PATIENCE;
    let mut player = loop {
        match Player::connect_counting(&addr, &name, &traffic).await {
            Ok(player) => break player,
            Err(_) if Instant::now() < patience => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(err) => return Err(err),
        }
    };
    let mut entity_updates = 0u64;
    let world = player.welcome.map.world_size();
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    let mut target = random_point(&mut rng, world);
    let mut sent: std::collections::VecDeque<(u32, Instant)> = Default::default();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let end = Instant::now() + duration;
    let mut steer = tokio::time::interval(STEER_EVERY);
    let mut log = tokio::time::interval(Duration::from_secs(2));
    let mut error = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = steer.tick() => {
                let Some(me) = player.view.me else { continue };
                if me.position.distance(target) < 30.0 {
                    target = random_point(&mut rng, world);
                }
                let keys = keys_toward(me.position, target);
                if keys != player.keys() {
                    match player.press(keys).await {
                        Ok(seq) => sent.push_back((seq, Instant::now())),
                        Err(err) => { error = Some(err.to_string()); break; }
                    }
                }
            }
            _ = log.tick(), if log_position => {
                if let (Some(me), Some(server)) = (player.view.me, player.view.server) {
                    tracing::info!("{name} at ({:.0}, {:.0}) on {server}, {} in view", me.position.x, me.position.y, player.view.others.len());
                }
            }
            received = player.receive() => match received {
                Ok(view) => {
                    entity_updates += 1 + view.others.len() as u64;
                    let acked = view.last_input;
                    while sent.front().is_some_and(|&(seq, _)| seq <= acked) {
                        let (_, at) = sent.pop_front().expect("checked non-empty");
                        latency.saturating_record(at.elapsed().as_micros() as u64);
                    }
                }
                Err(err) => { error = Some(err.to_string()); break; }
            }
        }
    }
    let still_connected = error.is_none();
    if still_connected {
        let last = player.last_sent();
        let _ = player.wait_until(ACK_GRACE, "the last inputs acknowledged", |view| view.last_input >= last).await;
    }
    let view = &player.view;
    Ok(BotReport {
        inputs_sent: player.last_sent(),
        inputs_acknowledged: view.last_input.min(player.last_sent()),
        inputs_duplicated: view.inputs_applied.saturating_sub(view.last_input),
        handoffs: view.handoffs,
        updates: view.updates,
        entity_updates,
        bytes_received: traffic.bytes_in.load(std::sync::atomic::Ordering::Relaxed),
        echo_latency_us: latency,
        still_connected,
        error,
    })
}

fn random_point(rng: &mut impl Rng, world: Vec2) -> Vec2 {
    Vec2::new(rng.random_range(0.0..world.x), rng.random_range(0.0..world.y))
}

/// The keys that walk from `from` toward `to`, in one of eight directions.
pub fn keys_toward(from: Vec2, to: Vec2) -> Keys {
    let delta = to - from;
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

/// The whole swarm's figures.
#[derive(Debug, Serialize)]
pub struct SwarmReport {
    pub bots_requested: usize,
    pub bots_connected: usize,
    pub bots_still_connected: usize,
    pub inputs_sent: u64,
    pub inputs_acknowledged: u64,
    pub inputs_lost: u64,
    pub inputs_duplicated: u64,
    pub handoffs: u64,
    pub updates_received: u64,
    pub entity_updates_per_sec: f64,
    pub bytes_per_bot_per_sec: f64,
    /// Bytes on the wire (frames, prefixes, everything) per entity carried in an update.
    pub wire_bytes_per_entity_update: f64,
    pub echo_latency_ms: Percentiles,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl SwarmReport {
    pub fn from_bots(requested: usize, duration: Duration, results: Vec<Result<BotReport, PlayerError>>) -> Self {
        let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
        let mut report = SwarmReport {
            bots_requested: requested,
            bots_connected: 0,
            bots_still_connected: 0,
            inputs_sent: 0,
            inputs_acknowledged: 0,
            inputs_lost: 0,
            inputs_duplicated: 0,
            handoffs: 0,
            updates_received: 0,
            entity_updates_per_sec: 0.0,
            bytes_per_bot_per_sec: 0.0,
            wire_bytes_per_entity_update: 0.0,
            echo_latency_ms: Percentiles { p50: 0.0, p99: 0.0, max: 0.0 },
            errors: Vec::new(),
        };
        let (mut entity_updates, mut bytes_received) = (0u64, 0u64);
        for result in results {
            match result {
                Ok(bot) => {
                    report.bots_connected += 1;
                    report.bots_still_connected += usize::from(bot.still_connected);
                    report.inputs_sent += u64::from(bot.inputs_sent);
                    report.inputs_acknowledged += u64::from(bot.inputs_acknowledged);
                    report.inputs_lost += u64::from(bot.inputs_sent - bot.inputs_acknowledged);
                    report.inputs_duplicated += u64::from(bot.inputs_duplicated);
                    report.handoffs += u64::from(bot.handoffs);
                    report.updates_received += bot.updates;
                    entity_updates += bot.entity_updates;
                    bytes_received += bot.bytes_received;
                    latency.add(&bot.echo_latency_us).expect("same bounds");
                    report.errors.extend(bot.error);
                }
                Err(err) => report.errors.push(err.to_string()),
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        let seconds = duration.as_secs_f64().max(1e-3);
        report.entity_updates_per_sec = entity_updates as f64 / seconds;
        report.bytes_per_bot_per_sec = bytes_received as f64 / seconds / report.bots_connected.max(1) as f64;
        report.wire_bytes_per_entity_update = bytes_received as f64 / entity_updates.max(1) as f64;
        report.echo_latency_ms = Percentiles {
            p50: ms(latency.value_at_quantile(0.5)),
            p99: ms(latency.value_at_quantile(0.99)),
            max: ms(latency.max()),
        };
        report
    }

    /// Every bot connected and stayed, and no input was lost or applied twice.
    pub fn is_clean(&self) -> bool {
        self.bots_connected == self.bots_requested
            && self.bots_still_connected == self.bots_requested
            && self.inputs_lost == 0
            && self.inputs_duplicated == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bots_steer_in_eight_directions() {
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(10.0, 0.0)), Keys::RIGHT);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(-10.0, -10.0)), Keys::LEFT | Keys::DOWN);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::new(1.0, 10.0)), Keys::UP);
        assert_eq!(keys_toward(Vec2::ZERO, Vec2::ZERO), Keys::empty());
    }
}
