//! The shared crate's integration tests: every decoder and gate of the wire protocol,
//! fed mutated frames ([`mutations`]) and the fuzz targets' seeds ([`fuzz_seeds`])
//! through what each receiver does with bytes ([`receive`], which the fuzz targets in
//! `fuzz/` share).

mod fuzz_seeds;
mod mutations;
pub mod receive;
