//! The player crate's integration tests: the `proxy_to_client` fuzz seeds ([`seeds`])
//! folded into a player's world view ([`fuzz_seeds`]) by what a player does with its
//! proxy's bytes ([`view`]), which that fuzz target in `fuzz/` shares, as it shares the
//! receivers of `tessera-shared`'s suite ([`receive`], included from there).

mod fuzz_seeds;
#[path = "../../../shared/tests/it/receive.rs"]
pub mod receive;
#[path = "../../../shared/tests/it/seeds.rs"]
mod seeds;
pub mod view;
