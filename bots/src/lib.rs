//! Headless Tessera players. [`player`] is the client side of the real protocol,
//! used by the tests, by the bot swarm, and by the windowed client's network task.

pub mod player;
pub mod swarm;
