//! Tests of the proxy: its binary as a host runs it ([`cli`]), its front door's limits
//! against a stand-in server ([`limits`], [`stand_in`]), how it tells a quiet player from
//! one whose host vanished ([`liveness`]), and the session tickets players present
//! ([`tickets`]), fed the `ticket` fuzz target's seeds ([`fuzz_seeds`], from [`seeds`])
//! as that target in `fuzz/` feeds them its inputs.

mod cli;
mod fuzz_seeds;
mod limits;
#[cfg(target_os = "linux")]
mod liveness;
#[path = "../../../shared/tests/it/seeds.rs"]
mod seeds;
mod stand_in;
pub mod tickets;
