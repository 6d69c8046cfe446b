//! Arbitrary bytes as a session ticket a player presents to a proxy, made up or issued by
//! the proxy and altered, for itself or another player: only the ticket issued to its
//! presenter, unaltered, opens.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::present_ticket(data));
