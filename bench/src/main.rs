//! `tessera-bench`: starts a cluster of real processes and ramps a bot swarm against it
//! until a limit breaks; `tessera-bench chaos` kills and restarts those processes under
//! a swarm and measures what the players live through; `tessera-bench relay` is the bare
//! TCP relay it measures the proxy against.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_bench::chaos::{self, ChaosOptions};
use tessera_bench::{BenchError, BenchOptions, relay};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Tessera benchmark: a cluster of real processes, a bot swarm ramped until a limit breaks",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchOptions,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Kills a proxy, kills and brings back a server, and rolls a SIGTERM restart
    /// through every process, under a swarm of bots: time to play again, bots never
    /// back, inputs lost and applied twice. Fails unless every target held.
    Chaos(ChaosOptions),
    /// A bare TCP relay that only copies bytes: the benchmark's yardstick for the proxy.
    #[command(hide = true)]
    Relay {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: std::net::SocketAddr,
    },
}

/// The bots allocate for every update they read, thousands of times a second a thread:
/// mimalloc's thread-local free lists cost them less than the system allocator's
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tessera_service::logging::init();
    let args = Args::parse();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    match args.command {
        None => {
            until_interrupted(async { tessera_bench::run(args.bench, command).await.map(|_| ExitCode::SUCCESS) }).await
        }
        Some(Command::Chaos(options)) => {
            until_interrupted(async {
                let report = chaos::run(options, command).await?;
                Ok(if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(2) })
            })
            .await
        }
        Some(Command::Relay { listen, upstream }) => match relay::serve_relay(listen, upstream).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                tracing::error!("relay: {err}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs a benchmark until it ends or the user stops it; either way every process it
/// started is stopped (returning drops them).
async fn until_interrupted(run: impl Future<Output = Result<ExitCode, BenchError>>) -> ExitCode {
    tokio::select! {
        result = run => result.unwrap_or_else(|err| {
            tracing::error!("benchmark failed: {err}");
            ExitCode::FAILURE
        }),
        _ = tessera_service::signals::stop_requested() => {
            tracing::warn!("interrupted: stopping every process the benchmark started");
            ExitCode::from(130)
        }
    }
}
