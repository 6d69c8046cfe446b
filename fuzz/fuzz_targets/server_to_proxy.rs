//! Arbitrary bytes as the receiver of `Direction::ServerToProxy` reads them: frames, decoding, the gate.
#![no_main]

use tessera_fuzz::receive::Direction;

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::receive(Direction::ServerToProxy, data));
