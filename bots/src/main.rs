//! `tessera-bots`: connects a swarm of headless players to a cluster through its
//! proxies (a random proxy each, as real clients do) and reports what they measured.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera_bots::swarm::{Swarm, SwarmPlan};
use tessera_shared::cluster::ClusterConfig;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera bot swarm: headless players speaking the real protocol")]
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
    /// Write the report here as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tessera_service::logging::init();
    let args = Args::parse();
    // A socket per bot.
    tessera_service::resources::raise_open_files((args.bots + 64) as u64);
    swarm(args).await
}

async fn swarm(args: Args) -> ExitCode {
    let cluster = match ClusterConfig::load_or_default(args.cluster.as_deref()) {
        Ok(cluster) => cluster,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let report = Swarm::run(SwarmPlan {
        proxies: cluster.proxies.iter().map(|p| p.client_address()).collect(),
        bots: args.bots,
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.duration),
        name_prefix: "bot".into(),
    })
    .await;
    let json = serde_json::to_string_pretty(&report).expect("the report serialises");
    println!("{json}");
    if let Some(path) = &args.json
        && let Err(err) = std::fs::write(path, &json)
    {
        tracing::error!("cannot write {}: {err}", path.display());
        return ExitCode::FAILURE;
    }
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        tracing::error!("not clean: bots failed to connect or stay, or inputs were lost or duplicated");
        ExitCode::FAILURE
    }
}
