//! `tessera-bench chaos`: what players live through when the cluster's processes fail,
//! measured on real processes under a swarm of bots. Three scenes, in turn:
//!
//! 1. a proxy is killed (SIGKILL): its players resume their sessions through the other,
//!    and it is started again once they play;
//! 2. a server is killed (SIGKILL), stays down a while, and is started again: its
//!    players wait with their region offline and are logged in again where it last
//!    saved them;
//! 3. a rolling restart, as a host upgrading does it: every server in turn, then every
//!    proxy in turn, stopped with SIGTERM and started again once the last is back.
//!
//! Each bot notes every outage it rides out (from losing its connection or its region
//! to its first update after), so the report gives for each scene how many players were
//! hit, how long they took to play again (p50/p99/max), and who never came back; for the
//! killed server, also how long after its return. Over the whole run: bots still
//! playing at the end, inputs lost and inputs applied twice.

use crate::processes::{Binaries, ClusterProcesses, Process};
use crate::{BenchError, ClusterOptions, bench_map};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_bots::swarm::{Outage, OutageCause, Percentiles, Swarm, SwarmPlan, SwarmReport};
use tessera_shared::metrics as names;
use tokio::time::Instant;

/// How long the bots have, after a blow, to be playing again before the chaos goes on
/// anyway (those still out count as never back).
const COMEBACK_LIMIT: Duration = Duration::from_secs(20);
/// How long a blow's first outage may take to be noticed; a blow that hits nobody (a
/// process with no players) is waited for this long.
const NOTICE_LIMIT: Duration = Duration::from_secs(2);

/// What to run, from the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosOptions {
    /// Bots playing throughout.
    #[arg(long, default_value_t = 200)]
    pub bots: usize,
    /// Seconds for the bots to connect and settle before the first scene.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Seconds of plain play after each scene (and each restart of a rolling one)
    /// once every bot plays again.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Seconds the killed server stays down before it is started again.
    #[arg(long, default_value_t = 3.0)]
    pub server_down: f64,
    /// Where the JSON report, the cluster files and the process logs go.
    #[arg(long, default_value = "target/chaos")]
    pub out: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterOptions,
}

/// What one scene did to the players.
#[derive(Debug, Clone, Serialize)]
pub struct SceneReport {
    pub scene: String,
    /// Outages that began during the scene: one per player hit (more if hit twice).
    pub outages: usize,
    pub by_lost_connection: usize,
    pub by_region_offline: usize,
    /// From noticing to playing again, over the outages that ended.
    pub time_to_play_again_ms: Percentiles,
    /// For a server brought back: from its start to its players playing again.
    pub back_after_return_ms: Option<Percentiles>,
    /// Outages that never ended: players who did not play again before the run ended.
    pub never_back: usize,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub command: String,
    pub bots: usize,
    pub scenes: Vec<SceneReport>,
    pub swarm: SwarmReport,
}

impl ChaosReport {
    /// The targets: every bot still playing, nothing lost or applied twice, and every
    /// outage over.
    pub fn is_clean(&self) -> bool {
        self.swarm.is_clean() && self.scenes.iter().all(|scene| scene.never_back == 0)
    }

    pub fn table(&self) -> String {
        let ms = |p: &Percentiles| format!("{:.0} / {:.0} / {:.0}", p.p50, p.p99, p.max);
        let mut table = String::from(
            "| scene | players hit | time to play again p50 / p99 / max (ms) | after the return (ms) | never back |\n\
             | --- | --- | --- | --- | --- |\n",
        );
        for scene in &self.scenes {
            let after = scene.back_after_return_ms.as_ref().map_or("".into(), ms);
            table += &format!(
                "| {} | {} | {} | {after} | {} |\n",
                scene.scene,
                scene.outages,
                ms(&scene.time_to_play_again_ms),
                scene.never_back
            );
        }
        let swarm = &self.swarm;
        table += &format!(
            "\n{} of {} bots still playing at the end; inputs sent {}, lost {}, applied twice {}; {} resumes\n",
            swarm.bots_still_connected,
            swarm.bots_requested,
            swarm.inputs_sent,
            swarm.inputs_lost,
            swarm.inputs_duplicated,
            swarm.resumes
        );
        table
    }
}

/// A scene as it ran: when, and when a process it had stopped was back.
struct Scene {
    name: String,
    began: Instant,
    ended: Instant,
    returned: Option<Instant>,
}

pub async fn run(options: ChaosOptions, command: String) -> Result<ChaosReport, BenchError> {
    let binaries = Binaries::beside_this_one()?;
    let map = bench_map(options.cluster.region_size);
    tessera_service::resources::raise_open_files((options.bots + 64) as u64);
    let dir = options.out.join("cluster");
    let mut cluster = ClusterProcesses::start(&binaries, map, false, &options.cluster, options.bots, &dir).await?;
    let swarm = Swarm::launch(SwarmPlan {
        proxies: cluster.proxy_addresses(),
        bots: options.bots,
        warmup: Duration::from_secs(options.warmup),
        // Ended by `finish_now` once the scenes are over.
        measure: Duration::from_secs(24 * 60 * 60),
        name_prefix: "chaos".into(),
        conditioner: Default::default(),
        chat_every: None,
    });
    tokio::time::sleep_until(swarm.window.start).await;
    let mut chaos = Chaos { cluster: &mut cluster, swarm: &swarm, options: &options };
    let scenes = chaos.play().await;
    let swarm = swarm.finish_now().await;
    cluster.stop().await;
    let scenes = scenes?;
    let report = ChaosReport {
        command,
        bots: options.bots,
        scenes: scenes.iter().map(|scene| scene_report(scene, &swarm.outages)).collect(),
        swarm,
    };
    let json = options.out.join("chaos.json");
    let text = serde_json::to_vec_pretty(&report).expect("a report serializes");
    std::fs::write(&json, text).map_err(|err| BenchError::Setup(format!("cannot write {}: {err}", json.display())))?;
    println!("{}", report.table());
    println!("every figure: {}", json.display());
    Ok(report)
}

struct Chaos<'a> {
    cluster: &'a mut ClusterProcesses,
    swarm: &'a Swarm,
    options: &'a ChaosOptions,
}

impl Chaos<'_> {
    async fn play(&mut self) -> Result<Vec<Scene>, BenchError> {
        let mut scenes = Vec::new();

        let began = Instant::now();
        println!("scene 1: {} killed, and started again once its players resumed", self.cluster.proxies[0].name);
        let before = self.begun();
        self.cluster.proxies[0].kill().await;
        self.players_back(before).await;
        self.cluster.proxies[0].start_again()?;
        self.whole_again(None).await?;
        scenes.push(Scene { name: "proxy killed (SIGKILL)".into(), began, ended: Instant::now(), returned: None });

        let began = Instant::now();
        let down = Duration::from_secs_f64(self.options.server_down);
        let busiest = self.busiest_server().await?;
        let before = self.begun();
        let server = &mut self.cluster.servers[busiest];
        println!("scene 2: {} (the busiest) killed, and started again {down:?} later", server.name);
        server.kill().await;
        tokio::time::sleep(down).await;
        server.start_again()?;
        let returned = Some(Instant::now());
        self.whole_again(Some(before)).await?;
        scenes.push(Scene {
            name: "server killed (SIGKILL), back after".into(),
            began,
            ended: Instant::now(),
            returned,
        });

        let began = Instant::now();
        println!("scene 3: a rolling restart (SIGTERM) of every server, then every proxy");
        let servers = self.cluster.servers.len();
        for i in 0..servers + self.cluster.proxies.len() {
            let before = self.begun();
            let process = match i.checked_sub(servers) {
                None => &mut self.cluster.servers[i],
                Some(proxy) => &mut self.cluster.proxies[proxy],
            };
            restart(process).await?;
            self.whole_again(Some(before)).await?;
        }
        scenes.push(Scene { name: "rolling restart (SIGTERM)".into(), began, ended: Instant::now(), returned: None });
        Ok(scenes)
    }

    /// The index of the server with the most players.
    async fn busiest_server(&self) -> Result<usize, BenchError> {
        let mut players = Vec::new();
        for server in &self.cluster.servers {
            players.push(server.scrape().await?.sum(names::SERVER_PLAYERS, &[]).unwrap_or(0.0));
        }
        Ok((0..players.len()).max_by(|&a, &b| players[a].total_cmp(&players[b])).unwrap_or(0))
    }

    fn begun(&self) -> usize {
        self.swarm.outages.begun.load(Ordering::Relaxed)
    }

    /// Waits for the cluster to be whole again and every bot hit since `before` outages
    /// had begun to play (if given), then lets them play a while.
    async fn whole_again(&mut self, before: Option<usize>) -> Result<(), BenchError> {
        self.cluster.wait_ready().await?;
        if let Some(before) = before {
            self.players_back(before).await;
        }
        tokio::time::sleep(Duration::from_secs_f64(self.options.settle)).await;
        Ok(())
    }

    /// Waits for a blow dealt when `before` outages had begun to be noticed, then for
    /// every bot to play again ([`NOTICE_LIMIT`], [`COMEBACK_LIMIT`]).
    async fn players_back(&self, before: usize) {
        let noticed = Instant::now() + NOTICE_LIMIT;
        while self.begun() == before && Instant::now() < noticed {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deadline = Instant::now() + COMEBACK_LIMIT;
        while self.swarm.outages.now.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Stops `process` as a host would, and starts it again once it has exited.
async fn restart(process: &mut Process) -> Result<(), BenchError> {
    println!("  restarting {}", process.name);
    process.terminate().await;
    process.start_again()
}

fn scene_report(scene: &Scene, outages: &[Outage]) -> SceneReport {
    let hit: Vec<&Outage> =
        outages.iter().filter(|outage| scene.began <= outage.began && outage.began < scene.ended).collect();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let durations: Vec<f64> = hit.iter().filter_map(|o| o.ended.map(|ended| ms(ended - o.began))).collect();
    let back_after_return = scene.returned.map(|returned| {
        let after: Vec<f64> =
            hit.iter().filter_map(|o| o.ended.map(|ended| ms(ended.saturating_duration_since(returned)))).collect();
        percentiles(after)
    });
    SceneReport {
        scene: scene.name.clone(),
        outages: hit.len(),
        by_lost_connection: hit.iter().filter(|o| o.cause == OutageCause::ConnectionLost).count(),
        by_region_offline: hit.iter().filter(|o| o.cause == OutageCause::RegionOffline).count(),
        time_to_play_again_ms: percentiles(durations),
        back_after_return_ms: back_after_return,
        never_back: hit.iter().filter(|o| o.ended.is_none()).count(),
        seconds: (scene.ended - scene.began).as_secs_f64(),
    }
}

/// Nearest-rank percentiles of `values` (all zero when there are none).
fn percentiles(mut values: Vec<f64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let rank = |q: f64| values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    Percentiles { p50: rank(0.5), p99: rank(0.99), max: values[values.len() - 1] }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p99, p.max), (50.0, 99.0, 100.0));
        let one = percentiles(vec![7.0]);
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
    }
}
