//! `tessera-server`: runs one game server of a cluster map. (Every server and proxy of
//! a map in one process is `tessera-cluster`.)

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use tessera_server::checkpoints::StoreWriter;
use tessera_server::{ServerListeners, ServerSettings};
use tessera_service::member::MemberArgs;
use tessera_service::secret::SecretArgs;
use tessera_service::store::StoreArgs;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::ServerId;
use tessera_shared::protocol::MAX_UPDATE_EVERY;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera game server: simulates the regions a cluster map gives it")]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Make a new cluster secret, readable by its owner only.
    Keygen {
        /// Where to write it; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// The cluster map (TOML). The default 2×2 local map when absent.
    #[arg(long, env = "TESSERA_CLUSTER")]
    cluster: Option<PathBuf>,
    #[command(flatten)]
    member: MemberArgs,
    /// Subscribe to every foreign region and send every player everything, whatever it
    /// sees: the baseline region subscriptions are benchmarked against. Not for play.
    #[arg(long)]
    broadcast_baseline: bool,
    /// Serve Prometheus metrics (tick times, players, peer bytes...) at this address,
    /// and the probes /livez and /readyz.
    #[arg(long, value_name = "ADDR", env = "TESSERA_METRICS")]
    metrics: Option<SocketAddr>,
    /// Seconds between saves of every player here: the most of its players' movement a
    /// server killed without warning can lose.
    #[arg(long, value_name = "SECS", default_value_t = tessera_server::settings::CHECKPOINT_INTERVAL.as_secs_f64())]
    checkpoint_secs: f64,
    /// Seconds a player whose proxy was lost waits, standing where it was, for its session
    /// to be resumed through another proxy; then it is saved and leaves.
    #[arg(long, value_name = "SECS", default_value_t = tessera_server::settings::PARK_GRACE.as_secs_f64())]
    park_secs: f64,
    /// Send every player an update at most every N ticks (1 to 8), whatever the load.
    /// Without it, the server spreads its players' updates over more ticks only while it
    /// is over capacity, and says so.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_UPDATE_EVERY)))]
    update_every: Option<u8>,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    store: StoreArgs,
}

/// A server allocates and frees for every update it packs, every tick: mimalloc's
/// thread-local free lists cost it less than the system allocator's (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera_service::logging::init();
    let args = Args::parse();
    let result = match args.command {
        Some(Command::Keygen { out }) => tessera_service::secret::keygen(&out).map_err(Into::into),
        None => run(args.serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let cluster = ClusterConfig::load_or_default(args.cluster.as_deref())?;
    let ids: Vec<u16> = cluster.servers.iter().map(|server| server.id.0).collect();
    let id = ServerId(args.member.pick(&ids)?);
    // A socket per proxy and per peer, and a few files of its own.
    tessera_service::resources::raise_open_files((cluster.proxies.len() + cluster.servers.len() + 64) as u64);
    let mut settings = ServerSettings::new(cluster.clone(), id, args.secret.resolve()?)?;
    settings.check_secret()?;
    settings.broadcast_baseline = args.broadcast_baseline;
    settings.update_every = args.update_every;
    settings.checkpoint_interval = std::time::Duration::try_from_secs_f64(args.checkpoint_secs)
        .ok()
        .filter(|interval| !interval.is_zero())
        .ok_or("--checkpoint-secs must be a positive number of seconds")?;
    settings.park_grace = std::time::Duration::try_from_secs_f64(args.park_secs)
        .map_err(|_| "--park-secs must be a number of seconds, 0 or more")?;
    let writer = StoreWriter::start(args.store.location()?, settings.stats.clone())?;
    if let Some(addr) = args.metrics {
        let addr = tessera_service::metrics::serve(addr, vec![settings.health.clone()])?;
        tracing::info!("metrics at http://{addr}/metrics, probes at /livez and /readyz");
    }
    let shutdown = CancellationToken::new();
    tessera_service::signals::cancel_on_stop(shutdown.clone())?;
    let listeners = ServerListeners::bind(&cluster, id)?;
    tracing::info!(
        "{id} listening for proxies on {} and peers on {}",
        listeners.proxy.local_addr()?,
        listeners.peer.local_addr()?
    );
    tessera_server::run(settings, listeners, writer, shutdown);
    Ok(())
}
