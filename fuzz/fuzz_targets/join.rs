//! Arbitrary bytes as a proxy reads a player's join: frames, decoding, the signature and the name rule.
#![no_main]

use tessera_fuzz::receive::Direction;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::receive(Direction::Join, data));
