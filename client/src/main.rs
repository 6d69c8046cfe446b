//! `tessera-client`: the game in a window. With no arguments it starts the default
//! cluster inside this process ([`embedded`]: every server and proxy on its own thread,
//! on real loopback sockets, with a few wandering bots so the world is alive) and joins
//! it; with `--cluster` or `--proxy` it joins a remote one through a proxy chosen at
//! random. `--lag` and `--jitter` play it as over a slower network. Who you are is your profile's
//! key, made on first run in your config directory (`--profile` picks another, so two
//! windows on one machine can be two players); the embedded cluster keeps its world in
//! your data directory, so you find yourself where you left.

mod chat;
mod connection;
#[cfg(feature = "embedded-cluster")]
mod embedded;
mod hud;
mod screenshot;
mod world;

use bevy::prelude::*;
use bevy::window::WindowResolution;
use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use tessera_player::conditioner::ConditionerArgs;
use tessera_shared::cluster::ClusterConfig;

#[derive(Parser, Debug)]
#[command(version, about = "Tessera: walk one world across many servers")]
struct Args {
    /// Join the cluster this map describes, through one of its proxies.
    #[arg(long, conflicts_with = "proxy")]
    cluster: Option<PathBuf>,
    /// Join through this proxy (`host:port`); repeat to give several, one is picked at random.
    #[arg(long)]
    proxy: Vec<String>,
    /// Your name above your head, the first time this profile plays on a cluster: a
    /// player keeps the name it first had there.
    #[arg(long, default_value_t = default_name())]
    name: String,
    /// Which of your identities plays: each profile is a player of its own.
    #[arg(long, default_value = "default")]
    profile: String,
    /// Write a PNG of the window here (after `--exit-after-frames` frames), then exit.
    #[arg(long, requires = "exit_after_frames")]
    screenshot: Option<PathBuf>,
    /// Quit after this many frames.
    #[arg(long)]
    exit_after_frames: Option<u32>,
    /// Wandering bots in the cluster this client starts itself (none with --cluster or --proxy).
    #[arg(long, default_value_t = 12)]
    bots: usize,
    #[command(flatten)]
    conditioner: ConditionerArgs,
}

fn default_name() -> String {
    let user = std::env::var("USER").ok();
    user.filter(|name| tessera_shared::identity::check_name(name).is_ok()).unwrap_or_else(|| "wanderer".into())
}

fn main() -> AppExit {
    let args = Args::parse();
    if let Err(problem) = tessera_shared::identity::check_name(&args.name) {
        eprintln!("--name {:?} cannot be used: {problem}", args.name);
        return AppExit::error();
    }
    let profile = match tessera_player::profile::Profile::open(&args.profile) {
        Ok(profile) => profile,
        Err(err) => {
            eprintln!("{err}");
            return AppExit::error();
        }
    };
    // Kept alive for as long as the window is open: dropping it stops the cluster.
    let (proxies, _embedded) = match proxies_to_join(&args) {
        Ok(joined) => joined,
        Err(err) => {
            eprintln!("{err}");
            return AppExit::error();
        }
    };
    App::new()
        .add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: "Tessera".into(),
                        resolution: WindowResolution::new(1280, 800),
                        ..default()
                    }),
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    filter: "info,wgpu=error,naga=warn,bevy_render=warn,bevy_winit=warn".into(),
                    // Off a terminal, plain text, as the headless binaries write: a log
                    // attached to a bug report has no colour codes. (On one, the
                    // default: colours unless `NO_COLOR` is set.)
                    fmt_layer: |_| {
                        let layer = bevy::log::tracing_subscriber::fmt::Layer::default().with_writer(std::io::stderr);
                        let layer = if std::io::stderr().is_terminal() { layer } else { layer.with_ansi(false) };
                        Some(Box::new(layer))
                    },
                    ..default()
                }),
        )
        .insert_resource(ClearColor(Color::srgb(0.07, 0.08, 0.10)))
        .add_plugins((
            connection::ConnectionPlugin {
                proxies,
                conditioner: args.conditioner.into(),
                identity: profile.identity().clone(),
                name: args.name,
            },
            world::WorldPlugin,
            hud::HudPlugin,
            chat::ChatPlugin,
            screenshot::ScreenshotPlugin { path: args.screenshot, exit_after_frames: args.exit_after_frames },
        ))
        .run()
}

/// A cluster this client runs inside itself; dropping it stops every server and proxy in it.
#[cfg(feature = "embedded-cluster")]
type Embedded = embedded::EmbeddedCluster;
#[cfg(not(feature = "embedded-cluster"))]
type Embedded = ();

/// The proxies to join: those named, those of the named map, or those of the default
/// map started inside this process.
fn proxies_to_join(args: &Args) -> Result<(Vec<String>, Option<Embedded>), String> {
    if !args.proxy.is_empty() {
        return Ok((args.proxy.clone(), None));
    }
    let cluster = ClusterConfig::load_or_default(args.cluster.as_deref()).map_err(|err| err.to_string())?;
    if args.cluster.is_some() {
        return Ok((cluster.proxies.iter().map(|p| p.client_address()).collect(), None));
    }
    #[cfg(feature = "embedded-cluster")]
    {
        let embedded = embedded::EmbeddedCluster::start(cluster, args.bots)?;
        Ok((embedded.proxy_addresses(), Some(embedded)))
    }
    #[cfg(not(feature = "embedded-cluster"))]
    {
        let _ = cluster;
        Err("this client was built without a cluster of its own: join one with --cluster FILE or --proxy HOST:PORT"
            .into())
    }
}
