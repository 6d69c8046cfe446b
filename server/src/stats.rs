//! Live figures about one server, shared with whoever runs it (the operator's status
//! line, a local cluster's owner, the benchmark). Updated by the app, read anywhere.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ServerStats {
    pub players: AtomicU64,
    pub ghosts: AtomicU64,
    /// Foreign regions we subscribe to.
    pub subscriptions_out: AtomicU64,
    /// (peer, region) subscriptions to our regions.
    pub subscriptions_in: AtomicU64,
    pub handoffs_in: AtomicU64,
    pub handoffs_out: AtomicU64,
    /// Bytes written to peer servers, frames and length prefixes included.
    pub peer_bytes_out: std::sync::Arc<AtomicU64>,
    pub ticks: AtomicU64,
}

impl ServerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
