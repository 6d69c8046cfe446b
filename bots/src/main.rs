//! `tessera-bots`: connects a swarm of headless players to a cluster through its
//! proxies (a random proxy each, as real clients do) and reports what they measured;
//! `tessera-bots abuse` attacks every door of a cluster instead, for running beside a
//! swarm (see the README's "Abuse at every port").

use clap::{Parser, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tessera_bots::abuse::{self, AbusePlan};
use tessera_bots::swarm::{Swarm, SwarmPlan};
use tessera_player::conditioner::{Conditioner, ConditionerArgs};
use tessera_shared::cluster::ClusterConfig;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera bot swarm: headless players speaking the real protocol")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    swarm: Args,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Throw floods, garbage, half frames, slowloris, fake members and guessed secrets
    /// at every port of the cluster map, from 127.0.0.2-9 when the cluster is on
    /// loopback, and report what each door did; fails if a door left an attack open.
    Abuse(AbuseArgs),
}

#[derive(clap::Args, Debug)]
struct AbuseArgs {
    /// The cluster map (TOML). The default 2×2 local map when absent.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Seconds during which new attacks start.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Connections opened and dropped per port per second.
    #[arg(long, default_value_t = 100)]
    floods_per_sec: u32,
    /// Write the report here as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct Args {
    /// The cluster map (TOML). The default 2×2 local map when absent.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// How many bots.
    #[arg(long, default_value_t = 10)]
    bots: usize,
    /// How long they are measured, in seconds, after a few seconds to connect.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Seconds to connect and settle before measuring.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Each bot says a chat line about this often, in seconds (mostly to those near it,
    /// now and then to everyone); 0 for never.
    #[arg(long, default_value_t = 0.0)]
    chat_every: f64,
    /// Write the report here as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    conditioner: ConditionerArgs,
}

/// The bots allocate for every update they read, thousands of times a second a thread:
/// mimalloc's thread-local free lists cost them less than the system allocator's
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tessera_service::logging::init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Abuse(args)) => {
            tessera_service::resources::raise_open_files(65_536);
            attack(args).await
        }
        None => {
            let conditioned = Conditioner::from(cli.swarm.conditioner).is_active();
            tessera_service::resources::raise_open_files(tessera_bots::swarm::open_files_for(
                cli.swarm.bots,
                conditioned,
            ));
            swarm(cli.swarm).await
        }
    }
}

fn load_cluster(path: Option<&Path>) -> Result<ClusterConfig, ExitCode> {
    ClusterConfig::load_or_default(path).map_err(|err| {
        tracing::error!("{err}");
        ExitCode::FAILURE
    })
}

/// Prints `report` as JSON, writes it to `path` if given, and exits failing with
/// `failure` if there is one.
fn conclude(report: &impl Serialize, path: Option<&Path>, failure: Option<&str>) -> ExitCode {
    let json = serde_json::to_string_pretty(report).expect("the report serialises");
    println!("{json}");
    if let Some(path) = path
        && let Err(err) = std::fs::write(path, &json)
    {
        tracing::error!("cannot write {}: {err}", path.display());
        return ExitCode::FAILURE;
    }
    match failure {
        Some(failure) => {
            tracing::error!("{failure}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

async fn attack(args: AbuseArgs) -> ExitCode {
    let cluster = match load_cluster(args.cluster.as_deref()) {
        Ok(cluster) => cluster,
        Err(code) => return code,
    };
    let targets = match abuse::every_door(&cluster) {
        Ok(targets) => targets,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let on_loopback = targets.iter().all(|target| target.address.ip().is_loopback());
    let mut plan = AbusePlan::from_loopback(targets, Duration::from_secs(args.duration), args.floods_per_sec);
    if !on_loopback {
        (plan.flood_sources, plan.attack_sources) = (Vec::new(), Vec::new());
    }
    let report = abuse::run(plan).await;
    let failure = (!report.all_closed()).then_some("a door left an attack open (see left_open)");
    conclude(&report, args.json.as_deref(), failure)
}

async fn swarm(args: Args) -> ExitCode {
    let cluster = match load_cluster(args.cluster.as_deref()) {
        Ok(cluster) => cluster,
        Err(code) => return code,
    };
    let report = Swarm::run(SwarmPlan {
        proxies: cluster.proxies.iter().map(|p| p.client_address()).collect(),
        bots: args.bots,
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.duration),
        name_prefix: "bot".into(),
        conditioner: args.conditioner.into(),
        chat_every: Duration::try_from_secs_f64(args.chat_every).ok().filter(|every| !every.is_zero()),
        threads: tessera_service::resources::cores(),
    })
    .await;
    let failure =
        (!report.is_clean()).then_some("not clean: bots failed to connect or stay, or inputs were lost or duplicated");
    conclude(&report, args.json.as_deref(), failure)
}
