//! Players' updates by datagram, end to end: a player whose datagrams a quarter of are
//! lost each way (the link conditioner's `loss`) sees the others where they are all the
//! same, each loss made good by a full update it asks for, across a handoff; its inputs,
//! by datagram too, are all applied once, each lost one sent again by datagram once an
//! update shows it late; and the proxies count what went by datagram. A player whose
//! datagrams never come gives up on them, and plays on by TCP.

use crate::harness::{DEADLINE, default_cluster, join, standing_by, walk_to};
use std::time::{Duration, Instant};
use tessera_bots::swarm::bot_identity;
use tessera_player::datagram_hub::DatagramHubs;
use tessera_player::{Conditioner, Rejoin};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::ProxyId;
use tessera_shared::protocol::MAX_QUIET_TICKS;

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
    assert!(walker.losses.count > 0, "some were lost, and made good");
    let proxy = cluster.proxy_stats(ProxyId(1));
    let sent = proxy.datagrams_to_clients.load(std::sync::atomic::Ordering::Relaxed);
    let asked = proxy.resyncs.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent > 0 && asked > 0, "{sent} updates sent by datagram, {asked} full ones asked for");
    // Its key presses went by datagram too, a quarter of them lost: each walk's stop
    // was applied all the same (`walk_to` waits for it), by a later datagram or its link.
    let inputs = proxy.inputs_by_datagram.load(std::sync::atomic::Ordering::Relaxed);
    assert!(inputs > 0, "no input came by datagram");
    // Loopback loses nothing; a starved runtime's full socket, once, at the most.
    assert!(mover.datagrams.as_ref().is_some_and(|datagrams| datagrams.flowing()), "the mover's came by datagram");
    assert!(mover.losses.count <= 1, "{} of the mover's lost", mover.losses.count);
}

/// A key press whose datagram is lost is sent again by datagram as soon as an update
/// says the server went past its tick without it, rather than waiting for the next
/// press or a second to go by TCP; every press is applied, and once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_presses_lost_on_their_way_go_again_by_datagram_once_found_late() {
    let cluster = default_cluster();
    let lossy = Conditioner { loss: 0.25, ..Default::default() };
    let name = "lossy-presser";
    let mut joining =
        Rejoin::new(vec![cluster.proxy_addresses()[0].clone()], bot_identity(name), name).conditioned(lossy);
    let mut player = joining.join_within(DEADLINE).await.expect("joins through a lossy link");
    let flowing = async {
        while !player.datagrams.as_ref().is_some_and(|datagrams| datagrams.takes_inputs(Instant::now())) {
            player.receive().await.expect("plays");
        }
    };
    tokio::time::timeout(DEADLINE, flowing).await.expect("updates come by datagram");

    // Up to thirty presses round a small square, until one is found late: a quarter of
    // their datagrams are lost (the chance that none of thirty is, 0.75^30, is 2 in
    // 10,000). A press lost is found late only by an update past its tick that comes
    // before the next press, which carries it too; and once one came late, its
    // player's clock is wider by as much until it tightens again, so the next lost one
    // needs longer still. Each press is held for four times the longest a server goes
    // without an update to a player it has nothing new for: three updates or so, any
    // of which tells (held for a quarter of that, a run in four found none late).
    let quiet = Duration::from_secs_f64(f64::from(MAX_QUIET_TICKS) / player.welcome.tick_hz);
    let square = [Keys::UP, Keys::LEFT, Keys::DOWN, Keys::RIGHT];
    for keys in square.into_iter().cycle().take(30) {
        player.press(keys).await.expect("presses");
        let _ = tokio::time::timeout(4 * quiet, standing_by(&mut player, std::future::pending::<()>())).await;
        if player.late_inputs_sent_again > 0 {
            break;
        }
    }
    let last = player.press(Keys::empty()).await.expect("stops");
    player.wait_until(DEADLINE, "every press acknowledged", |view| view.last_input >= last).await.unwrap();
    // What else happened, should none be found late: each press lost made good by TCP
    // instead, or by the next press; updates lost; datagrams given up for the link.
    let datagrams = player.datagrams.as_ref().map(|datagrams| datagrams.takes_inputs(Instant::now()));
    let (by_link, lost) = (player.inputs_sent_again, player.losses.count);
    assert!(
        player.late_inputs_sent_again > 0,
        "no press was found late and sent again by datagram ({by_link} sent again by the link, {lost} updates lost, \
         datagrams taking presses at the end: {datagrams:?})"
    );
    assert_eq!(player.view.inputs_applied, last, "every press applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_whose_datagrams_never_come_plays_on_by_tcp() {
    let cluster = default_cluster();
    // Every datagram lost, both ways: its binds reach nobody, and nothing comes back.
    let blocked = Conditioner { loss: 1.0, ..Default::default() };
    let name = "udp-blocked";
    let joining =
        Rejoin::new(vec![cluster.proxy_addresses()[0].clone()], bot_identity(name), name).conditioned(blocked);
    let mut player = joining.clone().join_within(DEADLINE).await.expect("joins by TCP");
    player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    assert!(player.datagrams.is_some(), "the proxy offered datagrams");
    let giving_up = async {
        while player.datagrams.is_some() {
            player.receive().await.expect("plays on while it tries");
        }
    };
    tokio::time::timeout(DEADLINE, giving_up).await.expect("it gives up on datagrams");
    // By TCP alone from now on, a full update first: it walks, and its stop is applied.
    let start = player.view.me.unwrap().position;
    walk_to(&mut player, start + Vec2::new(150.0, 0.0), |_| {}).await;
    assert!(player.datagrams.is_none());
    let proxy = cluster.proxy_stats(ProxyId(1));
    assert_eq!(proxy.datagrams_to_clients.load(std::sync::atomic::Ordering::Relaxed), 0, "no bind ever came");
}

/// A player that asks for its updates by its link alone (a bot beyond its process's
/// open-file limit) opens no socket for them, and plays all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_by_its_link_only_opens_no_socket_and_plays() {
    let cluster = default_cluster();
    let name = "link-only";
    let joining = Rejoin::new(vec![cluster.proxy_addresses()[0].clone()], bot_identity(name), name).by_link_only();
    let mut player = joining.clone().join_within(DEADLINE).await.expect("joins");
    player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    assert!(player.datagrams.is_none(), "no socket for datagrams");
    let start = player.view.me.unwrap().position;
    walk_to(&mut player, start + Vec2::new(150.0, 0.0), |_| {}).await;
    let proxy = cluster.proxy_stats(ProxyId(1));
    assert_eq!(proxy.datagrams_to_clients.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing by datagram");
}

/// Players sharing a hub's socket for their updates by datagram (a swarm's bots) each
/// get their own, through either proxy, and play: what one is sent never reaches
/// another, who would find it a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_sharing_a_socket_for_datagrams_each_get_their_own() {
    let cluster = default_cluster();
    let hubs = DatagramHubs::default();
    let mut players = Vec::new();
    for (n, proxy) in cluster.proxy_addresses().iter().cycle().take(4).enumerate() {
        let name = format!("sharing-{n}");
        let joining = Rejoin::new(vec![proxy.clone()], bot_identity(&name), name).sharing_datagrams(&hubs);
        let mut player = joining.clone().join_within(DEADLINE).await.expect("joins");
        player.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
        players.push(player);
    }
    // Each walks in turn while the others stand by; their updates come by datagram.
    for n in 0..players.len() {
        let (before, rest) = players.split_at_mut(n);
        let (walker, after) = rest.split_first_mut().expect("a walker");
        let start = walker.view.me.unwrap().position;
        let standing = futures_util::future::join_all(before.iter_mut().chain(after).map(|other| async move {
            loop {
                other.receive().await.expect("a player standing by stays in the game");
            }
        }));
        tokio::select! {
            () = walk_to(walker, start + Vec2::new(120.0, 0.0), |_| {}) => {}
            _ = standing => unreachable!("standing by never ends"),
        }
    }
    for player in &players {
        assert!(player.datagrams.as_ref().is_some_and(|datagrams| datagrams.flowing()), "updates by datagram");
        // A hub handing datagrams to the wrong seats would lose its players nearly all
        // of theirs; loopback loses none, and a starved runtime's reads out of turn one
        // at most.
        assert!(player.losses.count <= 1, "{} lost", player.losses.count);
    }
    assert_eq!((hubs.sockets(), hubs.seated()), (1, 4), "one socket seats the four");
    let sent: u64 = [ProxyId(1), ProxyId(2)]
        .map(|proxy| cluster.proxy_stats(proxy).datagrams_to_clients.load(std::sync::atomic::Ordering::Relaxed))
        .iter()
        .sum();
    assert!(sent > 0, "the proxies sent by datagram");
}
