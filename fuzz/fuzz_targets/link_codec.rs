//! Arbitrary bytes as a link's record layer reads them: a plain stream, records no member
//! sealed, or a member's stream sealed in records and read by the other member (which
//! must yield the frames the plain stream does), arriving a few bytes at a time.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::read_link(data));
