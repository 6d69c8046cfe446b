//! `tessera-bench chaos`: what players live through when the cluster's members fail,
//! measured under a swarm of bots, on real processes it starts itself or, with
//! `--compose`, on the containers of a compose project already up ([`crate::containers`]).
//!
//! On processes, three scenes in turn:
//! 1. a proxy is killed (SIGKILL): its players resume their sessions through the other,
//!    and it is started again once they play;
//! 2. a server is killed (SIGKILL), stays down a while, and is started again: its
//!    players wait with their region offline and are logged in again where it last
//!    saved them;
//! 3. a rolling restart, as a host upgrading does it: every server in turn, then every
//!    proxy in turn, stopped with SIGTERM and started again once the last is back.
//!
//! On containers, what a host's machines do to them: a proxy's container killed; the
//! busiest server's container stopped (`docker stop`) and started again; the busiest
//! server cut off the network (`docker network disconnect`) for `--cut-secs` and joined
//! again, running all along; and the rolling restart, container by container.
//!
//! Each bot notes every outage it rides out (from losing its connection or its region
//! to its first update after), so the report gives for each scene how many players were
//! hit, how long they took to play again (p50/p99/max), and who never came back; for a
//! member brought back, also how long after its return. Over the whole run: bots still
//! playing at the end, inputs lost and inputs applied twice.

use crate::containers::{Absence, ComposeCluster, Container};
use crate::processes::{Binaries, ClusterProcesses, Process};
use crate::scrape::Scrape;
use crate::{BenchError, ClusterOptions, bench_map};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_bots::swarm::{Outage, OutageCause, Percentiles, Swarm, SwarmPlan, SwarmReport};
use tessera_shared::cluster::ClusterConfig;
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
    /// Deal the blows to the containers of this compose file's project, already up,
    /// instead of to processes started here.
    #[arg(long, value_name = "FILE")]
    pub compose: Option<PathBuf>,
    /// The compose project (`docker-compose -p`).
    #[arg(long, default_value = "tessera", requires = "compose")]
    pub project: String,
    /// The compose cluster's map, whose proxies the bots dial; the `cluster.toml` beside
    /// the compose file when absent.
    #[arg(long, value_name = "FILE", requires = "compose")]
    pub map: Option<PathBuf>,
    /// Seconds a server's container stays cut off the network.
    #[arg(long, default_value_t = 10.0)]
    pub cut_secs: f64,
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
    match &options.compose {
        Some(file) => {
            let map_file = options.map.clone().unwrap_or_else(|| ComposeCluster::map_beside(file));
            let map = ClusterConfig::load(&map_file).map_err(|err| BenchError::Setup(err.to_string()))?;
            let mut cluster = ComposeCluster::find(file, &options.project, map).await?;
            cluster.wait_ready().await?;
            conduct(&mut cluster, &options, command).await
        }
        None => {
            let binaries = Binaries::beside_this_one()?;
            let map = bench_map(&options.cluster);
            let dir = options.out.join("cluster");
            let mut cluster =
                ClusterProcesses::start(&binaries, map, false, &options.cluster, options.bots, &dir).await?;
            let report = conduct(&mut cluster, &options, command).await;
            cluster.stop().await;
            report
        }
    }
}

/// A cluster the chaos can be dealt to: its members' readings, and its scenes.
trait Stage: Sized {
    fn proxy_addresses(&self) -> Vec<String>;
    async fn wait_ready(&mut self) -> Result<(), BenchError>;
    /// Every server's metrics, in the map's order.
    async fn scrape_servers(&self) -> Vec<Result<Scrape, BenchError>>;
    async fn scenes(chaos: &mut Chaos<'_, Self>) -> Result<Vec<Scene>, BenchError>;
}

/// Plays the stage's scenes under a swarm, and reports.
async fn conduct(cluster: &mut impl Stage, options: &ChaosOptions, command: String) -> Result<ChaosReport, BenchError> {
    tessera_service::resources::raise_open_files(tessera_bots::swarm::open_files_for(options.bots, false));
    std::fs::create_dir_all(&options.out)
        .map_err(|err| BenchError::Setup(format!("cannot make {}: {err}", options.out.display())))?;
    let swarm = Swarm::launch(SwarmPlan {
        proxies: cluster.proxy_addresses(),
        bots: options.bots,
        warmup: Duration::from_secs(options.warmup),
        // Ended by `finish_now` once the scenes are over.
        measure: Duration::from_secs(24 * 60 * 60),
        name_prefix: "chaos".into(),
        conditioner: Default::default(),
        chat_every: None,
        threads: tessera_service::resources::cores(),
    });
    tokio::time::sleep_until(swarm.window.start).await;
    let mut chaos = Chaos { cluster, swarm: &swarm, options };
    let scenes = Stage::scenes(&mut chaos).await;
    let swarm = swarm.finish_now().await;
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

struct Chaos<'a, C> {
    cluster: &'a mut C,
    swarm: &'a Swarm,
    options: &'a ChaosOptions,
}

impl Stage for ClusterProcesses {
    fn proxy_addresses(&self) -> Vec<String> {
        ClusterProcesses::proxy_addresses(self)
    }

    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        ClusterProcesses::wait_ready(self).await
    }

    async fn scrape_servers(&self) -> Vec<Result<Scrape, BenchError>> {
        futures_util::future::join_all(self.servers.iter().map(Process::scrape)).await
    }

    async fn scenes(chaos: &mut Chaos<'_, Self>) -> Result<Vec<Scene>, BenchError> {
        let mut scenes = Vec::new();

        let began = Instant::now();
        println!("scene 1: {} killed, and started again once its players resumed", chaos.cluster.proxies[0].name);
        let before = chaos.begun();
        chaos.cluster.proxies[0].kill().await;
        chaos.players_back(before).await;
        chaos.cluster.proxies[0].start_again()?;
        chaos.whole_again(None).await?;
        scenes.push(Scene::since("proxy killed (SIGKILL)", began, None));

        let began = Instant::now();
        let down = Duration::from_secs_f64(chaos.options.server_down);
        let busiest = chaos.busiest_server().await;
        let before = chaos.begun();
        let server = &mut chaos.cluster.servers[busiest];
        println!("scene 2: {} (the busiest) killed, and started again {down:?} later", server.name);
        server.kill().await;
        tokio::time::sleep(down).await;
        server.start_again()?;
        let returned = Some(Instant::now());
        chaos.whole_again(Some(before)).await?;
        scenes.push(Scene::since("server killed (SIGKILL), back after", began, returned));

        let began = Instant::now();
        println!("scene 3: a rolling restart (SIGTERM) of every server, then every proxy");
        let servers = chaos.cluster.servers.len();
        for i in 0..servers + chaos.cluster.proxies.len() {
            let before = chaos.begun();
            let process = match i.checked_sub(servers) {
                None => &mut chaos.cluster.servers[i],
                Some(proxy) => &mut chaos.cluster.proxies[proxy],
            };
            println!("  restarting {}", process.name);
            process.terminate().await;
            process.start_again()?;
            chaos.whole_again(Some(before)).await?;
        }
        scenes.push(Scene::since("rolling restart (SIGTERM)", began, None));
        Ok(scenes)
    }
}

impl Stage for ComposeCluster {
    fn proxy_addresses(&self) -> Vec<String> {
        ComposeCluster::proxy_addresses(self)
    }

    async fn wait_ready(&mut self) -> Result<(), BenchError> {
        ComposeCluster::wait_ready(self).await
    }

    async fn scrape_servers(&self) -> Vec<Result<Scrape, BenchError>> {
        futures_util::future::join_all(self.servers.iter().map(Container::scrape)).await
    }

    async fn scenes(chaos: &mut Chaos<'_, Self>) -> Result<Vec<Scene>, BenchError> {
        let mut scenes = Vec::new();

        let began = Instant::now();
        let proxy = &chaos.cluster.proxies[0];
        println!("scene 1: {}'s container killed, and started again once its players resumed", proxy.service);
        let before = chaos.begun();
        proxy.kill().await?;
        chaos.players_back(before).await;
        chaos.cluster.proxies[0].start().await?;
        chaos.whole_again(None).await?;
        scenes.push(Scene::since("proxy container killed", began, None));

        let absences = [
            (Absence::Stopped, chaos.options.server_down, "stopped", "server container stopped, started again"),
            (
                Absence::CutOff,
                chaos.options.cut_secs,
                "cut off the network",
                "server cut off the network, joined again",
            ),
        ];
        for (scene, (absence, seconds, what, name)) in (2..).zip(absences) {
            let began = Instant::now();
            let server = &chaos.cluster.servers[chaos.busiest_server().await];
            println!("scene {scene}: {} (the busiest) {what} for {seconds} s, then back", server.service);
            let before = chaos.begun();
            server.leave(absence).await?;
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            server.come_back(absence).await?;
            let returned = Some(Instant::now());
            chaos.whole_again(Some(before)).await?;
            scenes.push(Scene::since(name, began, returned));
        }

        let began = Instant::now();
        println!("scene 4: a rolling restart (docker stop, start) of every server, then every proxy");
        let servers = chaos.cluster.servers.len();
        for i in 0..servers + chaos.cluster.proxies.len() {
            let before = chaos.begun();
            let container = match i.checked_sub(servers) {
                None => &chaos.cluster.servers[i],
                Some(proxy) => &chaos.cluster.proxies[proxy],
            };
            println!("  restarting {}", container.service);
            container.stop().await?;
            container.start().await?;
            chaos.whole_again(Some(before)).await?;
        }
        scenes.push(Scene::since("rolling restart (docker stop, start)", began, None));
        Ok(scenes)
    }
}

impl Scene {
    /// A scene that began at `began` and ends now.
    fn since(name: &str, began: Instant, returned: Option<Instant>) -> Self {
        Scene { name: name.into(), began, ended: Instant::now(), returned }
    }
}

impl<C: Stage> Chaos<'_, C> {
    /// The index of the server with the most players (the first, if none can be read).
    async fn busiest_server(&self) -> usize {
        let players: Vec<f64> = self
            .cluster
            .scrape_servers()
            .await
            .iter()
            .map(|scrape| scrape.as_ref().ok().and_then(|s| s.sum(names::SERVER_PLAYERS, &[])).unwrap_or(0.0))
            .collect();
        (0..players.len()).max_by(|&a, &b| players[a].total_cmp(&players[b])).unwrap_or(0)
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
