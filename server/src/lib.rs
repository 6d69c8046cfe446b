//! The Tessera game server: a headless Bevy app that simulates the regions the cluster
//! map gives it, at a fixed tick. Network I/O runs on a tokio runtime beside the app;
//! systems receive in `PreUpdate`, simulate in `FixedUpdate` and send in `PostUpdate`.
//!
//! Features, one plugin each: [`net`] (the proxy and peer links), [`players`] (logins,
//! logouts, input queues), [`movement`], [`interest`] (what each player is sent),
//! [`regions`] (subscriptions between servers, ghosts), [`handoff`], [`status`] (the
//! operator's periodic report).

pub mod app;
pub mod handoff;
pub mod interest;
pub mod local_cluster;
pub mod movement;
pub mod net;
pub mod players;
pub mod regions;
pub mod stats;
pub mod status;

pub use app::{ServerListeners, ServerSettings, build_app, run};
