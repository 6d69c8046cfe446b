//! Tessera's fuzz targets share what each receiver does with bytes with the test suite:
//! [`receive`] is `shared/tests/it/receive.rs`, included here, so the fuzzer and CI's
//! mutation test drive the same decoders and gates.

#[path = "../../shared/tests/it/receive.rs"]
pub mod receive;

use receive::{Direction, Receiver};
use std::sync::LazyLock;

/// Built once: every input is received by the same receiver.
static RECEIVER: LazyLock<Receiver> = LazyLock::new(Receiver::default);

/// Feeds `data` to the receiver of `direction`; a panic anywhere is the finding.
pub fn receive(direction: Direction, data: &[u8]) {
    RECEIVER.receive(direction, data);
}
