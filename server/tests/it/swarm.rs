//! A small swarm smoke run: a handful of bots wander the default map for a few
//! seconds, crossing borders as they please; every one connects and stays, and no
//! input is lost or applied twice.

use crate::harness::default_cluster;
use std::time::Duration;
use tessera_bots::swarm::{SwarmReport, run_bot};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_swarm_plays_cleanly() {
    let cluster = default_cluster();
    let proxies = cluster.proxy_addresses();
    const BOTS: usize = 8;
    let duration = Duration::from_secs(6);
    let bots: Vec<_> = (0..BOTS)
        .map(|i| tokio::spawn(run_bot(proxies[i % proxies.len()].clone(), format!("smoke-{i}"), duration, false)))
        .collect();
    let mut results = Vec::new();
    for bot in bots {
        results.push(bot.await.unwrap());
    }
    let report = SwarmReport::from_bots(BOTS, duration, results);
    assert!(report.is_clean(), "{report:#?}");
    assert!(report.inputs_sent >= BOTS as u64, "every bot pressed keys: {report:#?}");
    assert!(report.updates_received > 0 && report.wire_bytes_per_entity_update > 0.0, "{report:#?}");
}
