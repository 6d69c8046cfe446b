//! Arbitrary bytes as a cluster file: parsing, validation, and the map built from it.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera_fuzz::receive::load_cluster_file(data);
});
