//! `tessera-cluster`: every server and proxy of a cluster map in this one process, on
//! the addresses the map names: a whole playtest from one command.

use clap::Parser;
use std::path::PathBuf;
use tessera_cluster::LocalCluster;
use tessera_proxy::ProxyLimits;
use tessera_shared::cluster::ClusterConfig;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera: every game server and proxy of a cluster map in one process")]
struct Args {
    /// The cluster map (TOML). The default 2×2 local map when absent.
    #[arg(long, env = "TESSERA_CLUSTER")]
    cluster: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Every proxy's limits")]
    proxy_limits: ProxyLimits,
    #[command(flatten)]
    store: tessera_service::store::StoreArgs,
    /// Serve every server's and proxy's Prometheus metrics at this address, and the
    /// probes /livez and /readyz (alive and ready when every one of them is).
    #[arg(long, value_name = "ADDR", env = "TESSERA_METRICS")]
    metrics: Option<std::net::SocketAddr>,
}

/// The servers and proxies it runs allocate for every update and frame: with mimalloc,
/// as `tessera-server` and `tessera-proxy` do (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera_service::logging::init();
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = ClusterConfig::load_or_default(args.cluster.as_deref())?;
    // Every proxy's player connections, and every internal link at both its ends.
    let links = 2 * cluster.servers.len() * (cluster.servers.len() + cluster.proxies.len());
    tessera_service::resources::raise_open_files(
        (args.proxy_limits.max_connections * cluster.proxies.len() + links + 64) as u64,
    );
    let shutdown = CancellationToken::new();
    tessera_service::signals::cancel_on_stop(shutdown.clone())?;
    let local = LocalCluster::start(cluster, args.proxy_limits, args.store.location()?, shutdown)?;
    if let Some(addr) = args.metrics {
        let addr = tessera_service::metrics::serve(addr, local.health())?;
        tracing::info!("metrics at http://{addr}/metrics, probes at /livez and /readyz");
    }
    tracing::info!("local cluster up; players connect to {}", local.proxy_addresses().join(", "));
    local.wait();
    Ok(())
}
