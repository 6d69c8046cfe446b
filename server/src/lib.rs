//! The Tessera game server: a headless Bevy app that simulates the regions the cluster
//! map gives it, at a fixed tick. Systems receive in `PreUpdate`, simulate in
//! `FixedUpdate` and send in `PostUpdate`.
//!
//! Features, one plugin each: [`tick`] (the simulation clock), [`net`] (the protocol
//! layer: network events in, queued messages out; its [`net::tcp`] transport runs the
//! sockets on a tokio runtime beside the app), [`players`] (logins, logouts),
//! [`input_queue`] (each input applied once, at the player's tick it was pressed for),
//! [`movement`], [`interest`] (what each player is sent), [`pacing`] (how often, past
//! capacity), [`regions`] (subscriptions
//! between servers, ghosts), [`handoff`], [`chat`] (what players say, to those near
//! them or to everyone), [`checkpoints`] (players
//! saved to the store, off the tick), [`status`] (the operator's periodic report).
//! [`app`] assembles them.

pub mod app;
pub mod chat;
pub mod checkpoints;
pub mod components;
pub mod handoff;
pub mod input_queue;
pub mod interest;
pub mod movement;
pub mod net;
pub mod pacing;
pub mod players;
pub mod regions;
pub mod settings;
pub mod stats;
pub mod status;
pub mod tick;

pub use app::{build_app, run};
pub use net::tcp::ServerListeners;
pub use settings::ServerSettings;
