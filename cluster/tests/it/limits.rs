//! The player cap over a whole cluster: a proxy with all the players it may take tells
//! the next one the cluster is full, which `tessera_player` recognises and waits longer
//! to ask again about; a player leaving lets the waiting one in.

use crate::harness::{DEADLINE, TestCluster, fresh_data, join};
use tessera_bots::swarm::bot_identity;
use tessera_player::connection::FULL_FIRST_WAIT;
use tessera_player::{PlayerError, Rejoin};
use tessera_proxy::ProxyLimits;
use tessera_proxy::stats::Refusal;
use tessera_shared::cluster::ClusterConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_proxy_says_so_and_lets_the_next_player_in_when_one_leaves() {
    let limits = ProxyLimits { max_players: 1, ..ProxyLimits::DEFAULT };
    let cluster = TestCluster::start_in(ClusterConfig::default_local(), limits, fresh_data());
    let (proxy, proxy_id) = (cluster.proxy_addresses()[0].clone(), cluster.config().proxies[0].id);
    let first = join(&cluster, 0, "first").await;

    let mut waiting = Rejoin::new(vec![proxy.clone()], bot_identity("second"), "second");
    match waiting.attempt(&proxy).await {
        Err(PlayerError::ClusterFull) => {}
        Err(err) => panic!("expected the cluster full, got: {err}"),
        Ok(_) => panic!("a proxy with one place let a second player in"),
    }
    assert!(waiting.next_wait() >= FULL_FIRST_WAIT, "a full cluster is asked again later, not at once");
    assert_eq!(cluster.proxy_stats(proxy_id).refusals(Refusal::Full), 1);

    drop(first);
    let mut second = waiting.join_within(DEADLINE).await.expect("the second player joins once the first left");
    second.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
}
