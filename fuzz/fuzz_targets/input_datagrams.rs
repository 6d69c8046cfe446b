//! Arbitrary bytes as a proxy's socket receives them from a player: binds, and inputs
//! marked with the player's tag, decoded and each input held to the server's gate.
#![no_main]

use tessera_fuzz::receive::Direction;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::receive(Direction::InputDatagrams, data);
});
