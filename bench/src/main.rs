//! `tessera-bench`: starts a cluster of real processes and ramps a bot swarm against it
//! until a limit breaks; `tessera-bench relay` is the bare TCP relay it measures the
//! proxy against.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use tessera_bench::{BenchOptions, relay};

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
    /// A bare TCP relay that only copies bytes: the benchmark's yardstick for the proxy.
    #[command(hide = true)]
    Relay {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        upstream: std::net::SocketAddr,
    },
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    tessera_service::logging::init();
    let args = Args::parse();
    match args.command {
        None => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            tokio::select! {
                result = tessera_bench::run(args.bench, command) => match result {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(err) => {
                        tracing::error!("benchmark failed: {err}");
                        ExitCode::FAILURE
                    }
                },
                // Returning drops the benchmark, which kills every process it started.
                _ = tessera_service::signals::stop_requested() => {
                    tracing::warn!("interrupted: stopping every process the benchmark started");
                    ExitCode::from(130)
                }
            }
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
