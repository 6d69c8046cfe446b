//! Headless Tessera players. [`player`] is the client side of the real protocol, used
//! by the tests, the bot swarm and the windowed client's network task; [`behaviour`]
//! is how bots walk; [`swarm`] runs many of them and measures; [`bench`] starts a whole
//! cluster of real processes and ramps a swarm against it until a limit breaks.

pub mod behaviour;
pub mod bench;
pub mod player;
pub mod swarm;
