//! The `ticket` fuzz seeds presented to a proxy ([`crate::tickets`], as that target
//! presents them): none panics, and together they reach every answer a ticket gets, so
//! the fuzzer starts from each.

use crate::seeds::seeds;
use crate::tickets::{Presented, Proxies, TICKET_TARGET};
use tessera_proxy::tickets::TicketError;

#[test]
fn every_ticket_seed_is_presented_without_a_panic() {
    let proxies = Proxies::default();
    let answers: Vec<(Presented, Result<(), TicketError>)> =
        seeds(TICKET_TARGET).iter().filter_map(|(_, bytes)| proxies.present(bytes)).collect();
    for answer in [
        (Presented::MadeUp, Err(TicketError::Forged)),
        (Presented::Issued { altered: true }, Err(TicketError::Forged)),
        (Presented::Issued { altered: false }, Err(TicketError::NotYours)),
        (Presented::Issued { altered: false }, Ok(())),
    ] {
        assert!(answers.contains(&answer), "no ticket seed is {answer:?}: {answers:?}");
    }
}
