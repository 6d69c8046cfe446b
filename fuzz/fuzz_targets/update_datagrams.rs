//! Arbitrary bytes as a player's socket receives its updates by datagram: each taken for
//! the player's or not by its tag, decoded, unpacked (a gap starting the unpacker over,
//! as a loss does), and held to the gate.
#![no_main]

use tessera_fuzz::receive::Direction;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::receive(Direction::UpdateDatagrams, data);
});
