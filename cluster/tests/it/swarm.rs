//! A small swarm smoke run: a handful of bots wander the default map for a few
//! seconds, crossing borders as they please; every one connects and stays, and no
//! input is lost or applied twice.

use crate::harness::default_cluster;
use std::time::Duration;
use tessera_bots::swarm::{Swarm, SwarmPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_swarm_plays_cleanly() {
    let cluster = default_cluster();
    const BOTS: usize = 8;
    let report = Swarm::run(SwarmPlan {
        proxies: cluster.proxy_addresses(),
        bots: BOTS,
        warmup: Duration::from_secs(2),
        measure: Duration::from_secs(5),
        name_prefix: "smoke".into(),
    })
    .await;

    assert!(report.is_clean(), "{report:#?}");
    assert!(report.inputs_sent >= BOTS as u64, "every bot pressed keys: {report:#?}");
    assert!(report.updates_received > 0 && report.wire_bytes_per_entity_update > 0.0, "{report:#?}");
}
