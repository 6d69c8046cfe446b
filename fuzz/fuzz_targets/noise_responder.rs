//! Arbitrary bytes from a stranger at a members' door: the listener's side of the Noise
//! handshake, then the sealed hello; refused, never answered nor believed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::link_layer::knock(data);
});
