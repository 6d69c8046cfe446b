//! The game server as a host runs it, as a process.

mod secret;
mod store;
