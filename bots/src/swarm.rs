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
use tokio::time::Instant;

/// How often a bot looks where it is going.
const STEER_EVERY: Duration = Duration::from_millis(250);
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
    let mut player = Player::connect(&addr, &name).await?;
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
    pub fn from_bots(requested: usize, results: Vec<Result<BotReport, PlayerError>>) -> Self {
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
            echo_latency_ms: Percentiles { p50: 0.0, p99: 0.0, max: 0.0 },
            errors: Vec::new(),
        };
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
                    latency.add(&bot.echo_latency_us).expect("same bounds");
                    report.errors.extend(bot.error);
                }
                Err(err) => report.errors.push(err.to_string()),
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
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
