//! Live figures about one server, shared with whoever runs it (the operator's status
//! line, a local cluster's owner, the benchmark). Updated by the app, read anywhere.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ServerStats {
    pub players: AtomicU64,
    pub ghosts: AtomicU64,
    /// Cells of foreign regions we subscribe to.
    pub subscriptions_out: AtomicU64,
    /// (peer, cell) subscriptions to cells of our regions.
    pub subscriptions_in: AtomicU64,
    pub handoffs_in: AtomicU64,
    pub handoffs_out: AtomicU64,
    /// Connections turned away at the proxy and peer ports before their handshake.
    pub refused_connections: AtomicU64,
    /// Handshakes at the proxy and peer ports that failed: no secret, too slow, not a
    /// role the port takes.
    pub failed_handshakes: AtomicU64,
    /// Player checkpoints the store took.
    pub checkpoints_saved: AtomicU64,
    /// Batches of checkpoints the store could not take (each tried again).
    pub checkpoint_failures: AtomicU64,
    /// Player updates sent; not sent, the tick telling the player nothing it could not
    /// extrapolate; and not made, the player not due one at a tick past capacity.
    pub updates_sent: AtomicU64,
    pub updates_quiet: AtomicU64,
    pub updates_paced: AtomicU64,
    /// Player updates sent that left news of others for later, the player's byte
    /// budget spent: the cluster is degraded for them.
    pub updates_budget_spent: AtomicU64,
    /// Ticks by which players' inputs came to wait longer (their clocks slipping, an
    /// input late) and shorter (their clocks tightening, every recent input early).
    pub input_waits_longer: AtomicU64,
    pub input_waits_shorter: AtomicU64,
    /// Bytes exchanged with peer servers.
    pub peer_traffic: tessera_shared::link::Traffic,
}

impl ServerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts a player's inputs coming to wait `longer` ticks (fewer than none: shorter).
    pub fn count_input_wait_change(&self, longer: i64) {
        let counter = match longer.cmp(&0) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Greater => &self.input_waits_longer,
            std::cmp::Ordering::Less => &self.input_waits_shorter,
        };
        counter.fetch_add(longer.unsigned_abs(), Ordering::Relaxed);
    }
}
