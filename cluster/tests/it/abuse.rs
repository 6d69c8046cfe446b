//! Abuse at every door while bots play: floods, garbage, absurd lengths, half frames,
//! slowloris, fake members in the clear and handshakes under a guessed secret, thrown
//! at every port of a running cluster from other loopback addresses, drop no bot and
//! lose no input; every door closes every attack, and the door limits and the
//! members' handshake are what turned them away.

use crate::harness::default_cluster;
use std::time::Duration;
use tessera_bots::abuse::{self, AbusePlan, Attack, DoorKind};
use tessera_bots::swarm::{Swarm, SwarmPlan};
use tessera_proxy::stats::Refusal;
use tessera_server::stats::ServerStats;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_at_every_door_drops_no_bot_and_loses_no_input() {
    let cluster = default_cluster();
    const BOTS: usize = 16;
    let targets = abuse::every_door(cluster.config()).unwrap();
    // The bots join while the attack begins, and play on through it and after it.
    let (report, abuse) = tokio::join!(
        Swarm::run(SwarmPlan {
            proxies: cluster.proxy_addresses(),
            bots: BOTS,
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(16),
            name_prefix: "abused".into(),
            conditioner: Default::default(),
            chat_every: None,
            threads: tessera_service::resources::cores(),
        }),
        abuse::run(AbusePlan::from_loopback(targets, Duration::from_secs(8), 50)),
    );

    assert!(report.is_clean(), "{report:#?}");
    assert!(abuse.all_closed(), "a door left an attack open: {abuse:#?}");
    for door in [DoorKind::Players, DoorKind::ServerProxies, DoorKind::ServerPeers] {
        for attack in [Attack::Flood, Attack::Garbage, Attack::SlowlorisBeforeHandshake, Attack::WrongSecret] {
            assert!(abuse.attempts(door, attack) > 0, "{attack:?} at {door:?} was tried: {abuse:#?}");
        }
    }
    assert!(abuse.attempts(DoorKind::Players, Attack::SlowlorisAfterHandshake) > 0, "{abuse:#?}");
    for server in &cluster.config().servers {
        let failed = ServerStats::get(&cluster.stats(server.id).failed_handshakes);
        assert!(failed > 0, "{} counted the failed handshakes", server.id);
    }
    for proxy in &cluster.config().proxies {
        let refused = cluster.proxy_stats(proxy.id).refusals(Refusal::JoinRate);
        assert!(refused > 0, "{}'s door turned the flood away", proxy.id);
    }
}
