//! Tessera's fuzz targets share what each receiver does with bytes with the test suites,
//! included here from them, so the fuzzer and CI drive the same decoders and gates:
//! [`receive`] (`shared/tests/it/receive.rs`) for the messages of every link direction,
//! [`link_layer`] (`shared/tests/it/link_layer.rs`) for the Noise handshake and the
//! record layer beneath them, [`view`] (`player/tests/it/view.rs`) for what a player
//! folds into its view, [`tickets`] (`proxy/tests/it/tickets.rs`) for the session
//! tickets players present to a proxy.

#[path = "../../shared/tests/it/link_layer.rs"]
pub mod link_layer;
#[path = "../../shared/tests/it/receive.rs"]
pub mod receive;
#[path = "../../proxy/tests/it/tickets.rs"]
pub mod tickets;
#[path = "../../player/tests/it/view.rs"]
pub mod view;

use receive::{Direction, Receiver};
use std::sync::LazyLock;
use tessera_shared::link::seal::Cipher;

/// Built once: every input is received by the same receiver.
static RECEIVER: LazyLock<Receiver> = LazyLock::new(Receiver::default);
/// One Noise handshake a run (each costs more than reading an input): every input reads
/// a new link between the same two members, its ciphers rewound to the first record.
static MEMBERS: LazyLock<(Cipher, Cipher)> = LazyLock::new(link_layer::members_ciphers);
/// Secrets made once a run: every input is presented to the same proxies.
static PROXIES: LazyLock<tickets::Proxies> = LazyLock::new(tickets::Proxies::default);

/// Feeds `data` to the receiver of `direction`; a panic anywhere is the finding.
pub fn receive(direction: Direction, data: &[u8]) {
    RECEIVER.receive(direction, data);
}

/// Reads `data` as [`link_layer::read_link`] does, on a new link between [`MEMBERS`].
pub fn read_link(data: &[u8]) {
    link_layer::read_link(data, || (MEMBERS.0.rewound(), MEMBERS.1.rewound()));
}

/// Presents `data` as [`tickets::Proxies::present`] does, to [`PROXIES`].
pub fn present_ticket(data: &[u8]) {
    PROXIES.present(data);
}
