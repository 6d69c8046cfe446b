//! Headless Tessera players in numbers: [`behaviour`] is how a bot walks (like a
//! person, not like a test), [`swarm`] runs many of them through the cluster's proxies
//! and reports what they measured (inputs lost or applied twice, echo latency,
//! bandwidth). They speak the real protocol through `tessera-player`; the benchmark
//! (`tessera-bench`) drives swarms from outside; asked to, bots chat now and then
//! ([`chatter`]), so a load test says lines too. [`abuse`] is the other side of the
//! coin: what an attacker throws at every door of the cluster while the bots play.

pub mod abuse;
pub mod behaviour;
pub mod chatter;
pub mod swarm;
