//! The shared crate's integration tests: every decoder and gate of the wire protocol,
//! fed mutated frames ([`mutations`]) and the fuzz targets' seeds ([`fuzz_seeds`], from
//! [`seeds`]) through what each receiver does with bytes ([`receive`]) and what a link
//! does beneath its messages ([`link_layer`]), both of which the fuzz targets in `fuzz/`
//! share.

mod fuzz_seeds;
pub mod link_layer;
mod mutations;
pub mod receive;
mod seeds;
