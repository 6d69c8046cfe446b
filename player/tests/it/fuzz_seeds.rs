//! The `proxy_to_client` fuzz seeds folded into a player's view ([`crate::view`], as that
//! target folds them): none panics, and one changes the view, so the fuzzer starts where
//! views change.

use crate::receive::Direction;
use crate::seeds::seeds;
use crate::view::fold;

#[test]
fn every_proxy_to_client_seed_folds_into_a_view_without_a_panic() {
    let folded = seeds(Direction::ProxyToClient.target()).iter().filter(|(_, bytes)| fold(bytes).0.updates > 0).count();
    assert!(folded > 0, "no proxy_to_client seed is an update a player folds into its view");
}
