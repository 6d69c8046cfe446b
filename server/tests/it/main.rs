//! End-to-end tests: real servers and proxies on loopback ports, real headless players.
//! One module per feature.

mod bad_input;
mod handoff;
mod harness;
mod subscriptions;
mod swarm;
mod visibility;
mod walking;
