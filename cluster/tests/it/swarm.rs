//! A small swarm smoke run: a handful of bots wander the default map for a few
//! seconds, crossing borders as they please and chatting; every one connects and stays,
//! no input is lost or applied twice, and their lines are heard. And the same while one of the two proxies is lost
//! (its bots resume their sessions through the other), and while every server and then
//! every proxy is restarted in turn (a server's bots wait, connected, and carry on where
//! they were saved; a proxy's resume their sessions through the other). A swarm dropped
//! before its end takes its bots with it.

use crate::harness::default_cluster;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tessera_bots::swarm::{Swarm, SwarmPlan};
use tessera_cluster::LocalCluster;

/// `bots` bots called `name_prefix`-n through every proxy of `cluster`, warmed up for 2 s
/// and measured for `measure`.
fn plan(cluster: &LocalCluster, bots: usize, name_prefix: &str, measure: Duration) -> SwarmPlan {
    let proxies = cluster.proxy_addresses();
    SwarmPlan {
        proxies,
        bots,
        warmup: Duration::from_secs(2),
        measure,
        name_prefix: name_prefix.into(),
        conditioner: Default::default(),
        chat_every: None,
        threads: tessera_service::resources::cores(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_swarm_plays_cleanly() {
    let cluster = default_cluster();
    const BOTS: usize = 8;
    // A line every two seconds or so: under the proxies' rate, so none is dropped.
    let chat_every = Some(Duration::from_secs(2));
    let report = Swarm::run(SwarmPlan { chat_every, ..plan(&cluster, BOTS, "smoke", Duration::from_secs(5)) }).await;

    assert!(report.is_clean(), "{report:#?}");
    assert!(report.inputs_sent >= BOTS as u64, "every bot pressed keys: {report:#?}");
    // Every line is heard by its speaker at least; those said at the very end may not be yet.
    assert!(report.chat.said >= BOTS as u64 && report.chat.heard * 2 >= report.chat.said, "{report:#?}");
    assert_eq!(report.chat.throttled, 0, "{report:#?}");
    assert!(report.updates_received > 0 && report.wire_bytes_per_entity_update > 0.0, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_rides_out_a_lost_proxy() {
    let mut cluster = default_cluster();
    const BOTS: usize = 16;
    let swarm = Swarm::launch(plan(&cluster, BOTS, "riders", Duration::from_secs(6)));
    tokio::time::sleep_until(swarm.window.start + Duration::from_secs(2)).await;
    let lost = cluster.config().proxies[0].id;
    tokio::task::block_in_place(|| cluster.stop_proxy(lost));
    let report = swarm.finish().await;

    assert!(report.is_clean(), "{report:#?}");
    assert!(report.resumes > 0, "some bots were on the lost proxy: {report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_plays_through_a_rolling_restart_of_every_server_then_every_proxy() {
    let mut cluster = default_cluster();
    const BOTS: usize = 16;
    let swarm = Swarm::launch(plan(&cluster, BOTS, "rolling", Duration::from_secs(16)));
    tokio::time::sleep_until(swarm.window.start + Duration::from_secs(1)).await;
    let servers: Vec<_> = cluster.config().servers.iter().map(|server| server.id).collect();
    for server in servers {
        tokio::task::block_in_place(|| cluster.restart_server(server));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let proxies: Vec<_> = cluster.config().proxies.iter().map(|proxy| proxy.id).collect();
    for proxy in proxies {
        tokio::task::block_in_place(|| cluster.restart_proxy(proxy));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let report = swarm.finish().await;

    assert!(report.is_clean(), "{report:#?}");
    assert!(report.resumes > 0, "the proxies' players resumed elsewhere: {report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_dropped_unfinished_takes_its_bots_with_it() {
    let cluster = default_cluster();
    const BOTS: usize = 8;
    // A window of an hour: only the drop ends these bots.
    let swarm = Swarm::launch(plan(&cluster, BOTS, "dropped", Duration::from_secs(3_600)));
    let players = || -> u64 {
        cluster.config().proxies.iter().map(|proxy| cluster.proxy_stats(proxy.id).players.load(Ordering::Relaxed)).sum()
    };
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "{what} within 20 s: {} players", players());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    tokio::task::block_in_place(|| {
        until("every bot in", &|| players() == BOTS as u64);
        drop(swarm);
        until("every bot gone", &|| players() == 0);
    });
}
