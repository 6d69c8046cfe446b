//! Assembles a server app from its plugins: [`build_app`] gives the simulation and its
//! protocol layer with no transport, which the in-process test harness steps by hand;
//! [`run`] adds the TCP transport and the player store, and runs it until shut down.

use crate::checkpoints::{CheckpointsPlugin, StoreWriter};
use crate::net::tcp::{ServerListeners, TcpTransportPlugin};
use crate::settings::ServerSettings;
use crate::{chat, handoff, interest, movement, net, pacing, players, regions, status, tick};
use bevy::app::{AppExit, ScheduleRunnerPlugin};
use bevy::prelude::*;
use tokio_util::sync::CancellationToken;

/// Builds the server app: every plugin of the simulation and the protocol layer, but no
/// transport. Network events enter through [`net::NetEvents`].
pub fn build_app(settings: ServerSettings) -> App {
    let tick = settings.tick();
    let mut app = App::new();
    // The tick plugin runs it, on the beat.
    app.add_plugins(MinimalPlugins.build().disable::<ScheduleRunnerPlugin>())
        .insert_resource(Time::<Fixed>::from_duration(tick))
        .insert_resource(settings)
        .add_plugins((
            tick::TickPlugin,
            net::ProtocolPlugin,
            players::PlayersPlugin,
            movement::MovementPlugin,
            interest::InterestPlugin,
            pacing::PacingPlugin,
            regions::RegionsPlugin,
            handoff::HandoffPlugin,
            chat::ChatPlugin,
            status::StatusPlugin,
        ));
    app
}

/// Runs one server on `listeners`, saving its players through `writer`, until
/// `shutdown` is cancelled; then saves every player still here before it returns.
pub fn run(
    settings: ServerSettings,
    listeners: ServerListeners,
    writer: StoreWriter,
    shutdown: CancellationToken,
) -> AppExit {
    let mut app = build_app(settings);
    app.insert_resource(Shutdown(shutdown.clone()))
        .insert_resource(writer)
        .add_systems(First, exit_on_shutdown)
        .add_plugins((CheckpointsPlugin, TcpTransportPlugin::new(listeners, shutdown)));
    app.run()
}

/// Set when the process wants this server to stop.
#[derive(Resource, Clone)]
struct Shutdown(CancellationToken);

fn exit_on_shutdown(shutdown: Res<Shutdown>, mut exit: MessageWriter<AppExit>) {
    if shutdown.0.is_cancelled() {
        exit.write(AppExit::Success);
    }
}
