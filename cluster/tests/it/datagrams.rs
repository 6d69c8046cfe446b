//! Players' updates by datagram, end to end: a player whose datagrams a quarter of are
//! lost each way (the link conditioner's `loss`) sees the others where they are all the
//! same, each loss made good by a full update it asks for, across a handoff; its inputs
//! are all applied once; and the proxies count what they sent by datagram.

use crate::harness::{DEADLINE, default_cluster, join, standing_by, walk_to};
use tessera_bots::swarm::bot_identity;
use tessera_player::{Conditioner, Rejoin};
use tessera_shared::Vec2;
use tessera_shared::ids::ProxyId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_losing_a_quarter_of_its_datagrams_sees_the_others_where_they_are() {
    let cluster = default_cluster();
    let lossy = Conditioner { loss: 0.25, ..Default::default() };
    let name = "lossy-walker";
    let joining = Rejoin::new(vec![cluster.proxy_addresses()[0].clone()], bot_identity(name), name).conditioned(lossy);
    let mut walker = joining.clone().join_within(DEADLINE).await.expect("joins through a lossy link");
    walker.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    let mut mover = join(&cluster, 1, "steady-mover").await;
    let mover_id = mover.view.me.unwrap().id;

    // Both to the four-way corner, either side of a border; the walker then crosses it
    // (a handoff, whose first update is full) while the mover walks about in view.
    let corner = cluster.config().region_map().region_size() * Vec2::ONE;
    standing_by(&mut mover, walk_to(&mut walker, corner + Vec2::new(-60.0, -60.0), |_| {})).await;
    standing_by(&mut walker, walk_to(&mut mover, corner + Vec2::new(-60.0, 60.0), |_| {})).await;
    let handoffs = walker.view.handoffs;
    let walking = async {
        walk_to(&mut walker, corner + Vec2::new(60.0, -60.0), |_| {}).await;
        walk_to(&mut walker, corner + Vec2::new(60.0, -20.0), |_| {}).await;
    };
    let moving = async {
        for target in
            [corner + Vec2::new(-20.0, 60.0), corner + Vec2::new(-20.0, 20.0), corner + Vec2::new(-60.0, 20.0)]
        {
            walk_to(&mut mover, target, |_| {}).await;
        }
    };
    tokio::join!(walking, moving);
    assert!(walker.view.handoffs > handoffs, "the walker crossed a border");

    // The mover stopped where it is now: the walker, losing a quarter of what it is
    // sent, must come to see it there, however many updates of its walk were lost.
    let stopped = mover.position().expect("the mover has a position");
    standing_by(
        &mut mover,
        walker.wait_until(DEADLINE, "the mover seen where it stopped", |view| {
            view.other(mover_id).is_some_and(|seen| seen.position.distance(stopped) < 1.0)
        }),
    )
    .await
    .unwrap();

    let datagrams = walker.datagrams.as_ref().expect("the proxy sends updates by datagram");
    assert!(datagrams.flowing(), "updates came by datagram");
    assert!(datagrams.resyncs > 0, "some were lost, and made good");
    let proxy = cluster.proxy_stats(ProxyId(1));
    let sent = proxy.datagrams_to_clients.load(std::sync::atomic::Ordering::Relaxed);
    let asked = proxy.resyncs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent > 0 && asked > 0, "{sent} updates sent by datagram, {asked} full ones asked for");
    assert!(mover.datagrams.as_ref().is_some_and(|datagrams| datagrams.flowing() && datagrams.resyncs == 0));
}
