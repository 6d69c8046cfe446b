//! `tessera-proxy`: runs one proxy of a cluster map.

use clap::Parser;
use std::path::PathBuf;
use tessera_proxy::{ProxyLimits, ProxySettings};
use tessera_service::member::MemberArgs;
use tessera_service::secret::SecretArgs;
use tessera_service::store::StoreArgs;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ProxyId;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera proxy: players connect here; it dials every game server")]
struct Args {
    /// The cluster map (TOML). The default 2×2 local map when absent.
    #[arg(long, env = "TESSERA_CLUSTER")]
    cluster: Option<PathBuf>,
    #[command(flatten)]
    member: MemberArgs,
    /// Serve Prometheus metrics (players, frames and bytes forwarded) at this address,
    /// and the probes /livez and /readyz.
    #[arg(long, value_name = "ADDR", env = "TESSERA_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Threads forwarding traffic; one per core when absent, as on a host of its own.
    /// On a host it shares with servers, give it its share of the cores: more threads
    /// than cores wake one another for every frame (BENCHMARKS.md).
    #[arg(long, env = "TESSERA_PROXY_THREADS")]
    threads: Option<usize>,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    limits: ProxyLimits,
    /// Send players everything by TCP: no updates by datagram, and no UDP port.
    #[arg(long, env = "TESSERA_PROXY_TCP_ONLY")]
    tcp_only: bool,
}

/// A proxy allocates and frees for every frame it routes, on every worker thread:
/// mimalloc's thread-local free lists cost it less than the system allocator's
/// (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera_service::logging::init();
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(tessera_service::resources::cores);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = ClusterConfig::load_or_default(args.cluster.as_deref())?;
    // A socket per player connection and per server, and a few files of its own.
    tessera_service::resources::raise_open_files((args.limits.max_connections + cluster.servers.len() + 64) as u64);
    let ids: Vec<u16> = cluster.proxies.iter().map(|proxy| proxy.id.0).collect();
    let id = ProxyId(args.member.pick(&ids)?);
    let bind = cluster.proxy(id)?.client_bind;
    let settings = ProxySettings {
        limits: args.limits,
        datagrams: !args.tcp_only,
        ..ProxySettings::new(id, cluster, args.secret.resolve()?, args.store.location()?)
    };
    settings.check_secret()?;
    if let Some(addr) = args.metrics {
        let addr = tessera_service::metrics::serve(addr, vec![settings.health.clone()])?;
        tracing::info!("metrics at http://{addr}/metrics, probes at /livez and /readyz");
    }

    let listener = tokio::net::TcpListener::bind(bind).await?;
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tessera_service::signals::stop_requested().await;
        on_signal.cancel();
    });
    tessera_proxy::run(settings, listener, shutdown).await?;
    Ok(())
}
