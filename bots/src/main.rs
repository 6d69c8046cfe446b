//! `tessera-bots`: connects a swarm of headless players to a cluster through its
//! proxies (a random proxy each, as real clients do) and reports what they measured.

use clap::Parser;
use rand::seq::IndexedRandom;
use std::path::PathBuf;
use std::time::Duration;
use tessera_bots::swarm::{SwarmReport, run_bot};
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
    /// How long they play, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Write the report here as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tessera_shared::logging::init();
    let args = Args::parse();
    let cluster = ClusterConfig::load_or_default(args.cluster.as_deref());
    let cluster = match cluster {
        Ok(cluster) => cluster,
        Err(err) => {
            tracing::error!("{err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let proxies: Vec<String> = cluster.proxies.iter().map(|p| p.client_address()).collect();
    let duration = Duration::from_secs(args.duration);
    let bots: Vec<_> = (0..args.bots)
        .map(|i| {
            let addr = proxies.choose(&mut rand::rng()).expect("a validated map has proxies").clone();
            tokio::spawn(run_bot(addr, format!("bot-{i}"), duration, i == 0))
        })
        .collect();
    let mut results = Vec::new();
    for bot in bots {
        results.push(bot.await.expect("a bot task never panics"));
    }
    let report = SwarmReport::from_bots(args.bots, duration, results);
    let json = serde_json::to_string_pretty(&report).expect("the report serialises");
    println!("{json}");
    if let Some(path) = &args.json
        && let Err(err) = std::fs::write(path, &json)
    {
        tracing::error!("cannot write {}: {err}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    if report.is_clean() {
        std::process::ExitCode::SUCCESS
    } else {
        tracing::error!("not clean: bots failed to connect or stay, or inputs were lost or duplicated");
        std::process::ExitCode::FAILURE
    }
}
