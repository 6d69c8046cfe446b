//! Assembles a server app from its plugins, and runs it until shut down.

use crate::stats::ServerStats;
use crate::{handoff, interest, movement, net, players, regions, status};
use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tessera_shared::cluster::{ClusterConfig, ClusterError};
use tessera_shared::ids::ServerId;
use tessera_shared::region_map::RegionMap;
use tokio_util::sync::CancellationToken;

/// What one server is: its place in the cluster and its simulation settings.
#[derive(Resource, Clone, Debug)]
pub struct ServerSettings {
    pub id: ServerId,
    pub cluster: ClusterConfig,
    pub map: RegionMap,
    /// Subscribe to every foreign region and send every player everything, whatever
    /// it sees: the baseline region subscriptions and interest are measured against,
    /// never for play.
    pub broadcast_baseline: bool,
    pub stats: Arc<ServerStats>,
}

impl ServerSettings {
    pub fn new(cluster: ClusterConfig, id: ServerId) -> Result<Self, ClusterError> {
        cluster.server(id)?;
        Ok(Self { id, map: cluster.region_map(), broadcast_baseline: false, stats: Arc::default(), cluster })
    }

    pub fn tick(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.cluster.simulation.tick_hz)
    }

    pub fn view_radius(&self) -> f32 {
        self.cluster.simulation.view_radius
    }
}

/// The server's two listening sockets, bound before the app starts so tests and local
/// clusters can bind port 0 and publish the real port.
pub struct ServerListeners {
    pub proxy: std::net::TcpListener,
    pub peer: std::net::TcpListener,
}

impl ServerListeners {
    /// Binds the addresses the cluster map gives `id`.
    pub fn bind(cluster: &ClusterConfig, id: ServerId) -> std::io::Result<Self> {
        let config = cluster.server(id).map_err(std::io::Error::other)?;
        Ok(Self {
            proxy: std::net::TcpListener::bind(config.proxy_bind)?,
            peer: std::net::TcpListener::bind(config.peer_bind)?,
        })
    }
}

/// Counts fixed ticks; systems that send once per tick run when it changes.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulationTick(pub u64);

/// Set when the process wants this server to stop.
#[derive(Resource, Clone)]
pub struct Shutdown(pub CancellationToken);

/// Builds the server app, its network already listening.
pub fn build_app(settings: ServerSettings, listeners: ServerListeners, shutdown: CancellationToken) -> App {
    let tick = settings.tick();
    let mut app = App::new();
    app.add_plugins(MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(tick)))
        .insert_resource(Time::<Fixed>::from_duration(tick))
        .insert_resource(settings)
        .insert_resource(Shutdown(shutdown))
        .init_resource::<SimulationTick>()
        .add_systems(FixedFirst, advance_tick)
        .add_systems(First, exit_on_shutdown)
        .add_plugins((
            net::NetPlugin { listeners: std::sync::Mutex::new(Some(listeners)) },
            players::PlayersPlugin,
            movement::MovementPlugin,
            interest::InterestPlugin,
            regions::RegionsPlugin,
            handoff::HandoffPlugin,
            status::StatusPlugin,
        ));
    app
}

/// Runs one server until `shutdown` is cancelled.
pub fn run(settings: ServerSettings, listeners: ServerListeners, shutdown: CancellationToken) -> AppExit {
    build_app(settings, listeners, shutdown).run()
}

fn advance_tick(mut tick: ResMut<SimulationTick>) {
    tick.0 += 1;
}

fn exit_on_shutdown(shutdown: Res<Shutdown>, mut exit: MessageWriter<AppExit>) {
    if shutdown.0.is_cancelled() {
        exit.write(AppExit::Success);
    }
}
