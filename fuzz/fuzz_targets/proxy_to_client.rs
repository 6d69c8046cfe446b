//! Arbitrary bytes as the receiver of `Direction::ProxyToClient` reads them: frames, decoding, the gate;
//! then as a welcomed player folds them into its world view.
#![no_main]

use tessera_fuzz::receive::Direction;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::receive(Direction::ProxyToClient, data);
    tessera_fuzz::view::fold(data);
});
