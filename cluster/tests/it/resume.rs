//! Nobody is dropped with a proxy: a player whose proxy is lost stands still where it
//! was, seen by its neighbours, and resumes its session through another proxy with its
//! ticket and a fresh signature: the same id and place, its input sequence carrying on,
//! nothing sent lost or applied twice. A session nobody resumes within the grace period
//! ends (the player saved and gone); one that is gone by then is said to be, and the
//! player joins anew. And a server restarted: its players stay connected to their
//! proxies, told their region is offline, and come back where it saved them.

use crate::harness::{DEADLINE, centre_of, default_cluster, join, standing_by, walk_to};
use crate::stepper::Stepper;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tessera_bots::swarm::bot_identity;
use tessera_player::{PlayerError, Rejoin};
use tessera_server::settings::PARK_GRACE;
use tessera_shared::Vec2;
use tessera_shared::components::{Keys, WALK_SPEED};
use tessera_shared::ids::ServerId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_whose_proxy_is_lost_resumes_through_another_where_it_was() {
    let mut cluster = default_cluster();
    let (lost_proxy, other_proxy) = (cluster.config().proxies[0].id, cluster.proxy_addresses()[1].clone());
    let mut ada = join(&cluster, 0, "ada").await;
    let mut bo = join(&cluster, 1, "bo").await;
    let (id, spawned) = (ada.welcome.user, ada.view.me.unwrap().position);
    walk_to(&mut bo, spawned + Vec2::new(0.0, 60.0), |_| {}).await;
    // Ada walks right, and her proxy goes while she does.
    let walking = ada.press(Keys::RIGHT).await.unwrap();
    assert_eq!(walking, 1);
    ada.wait_until(DEADLINE, "walking", |view| view.last_input >= walking).await.unwrap();
    // And stops, which may or may not reach the server before the proxy goes (she
    // stops either way: a player whose proxy is lost is stopped where it is).
    let in_flight = ada.press(Keys::empty()).await.unwrap();
    let lost_at = Instant::now();
    standing_by(&mut bo, async { cluster.stop_proxy(lost_proxy) }).await;
    match ada.wait_until(DEADLINE, "the proxy gone", |_| false).await {
        Err(PlayerError::Link(_)) => {}
        other => panic!("expected the connection lost, got {other:?}"),
    }
    // Bo sees her stopped, waiting, where she was.
    let mut parked_at = None;
    let mut last_seen = None;
    let parked = bo.wait_until(DEADLINE, "ada standing still", |view| {
        let seen = view.other(id.entity());
        last_seen = seen;
        parked_at = seen.map(|ada| ada.position);
        seen.is_some_and(|ada| ada.velocity == Vec2::ZERO)
    });
    parked.await.unwrap_or_else(|err| panic!("{err}: bo last saw ada as {last_seen:?}"));
    let parked_at = parked_at.unwrap();

    let mut rejoin = Rejoin::new(vec![other_proxy], bot_identity("ada"), "ada");
    rejoin.resume_with(&ada);
    let mut resumed = standing_by(&mut bo, rejoin.join_within(DEADLINE)).await.unwrap();
    resumed.wait_until(DEADLINE, "a first update", |view| view.me.is_some()).await.unwrap();
    let took = lost_at.elapsed();
    println!("resumed {took:?} after the proxy was lost");
    assert!(resumed.welcome.resumed && resumed.welcome.user == id, "the same session");
    // Where it waited: where Bo saw her stop, within a tick's walk (the stop is told as
    // it is applied, the last step after it, a tick or two late on a busy machine), and
    // where Bo sees her standing, exactly, once his view has caught up.
    let at = resumed.view.me.unwrap().position;
    let a_tick = WALK_SPEED / cluster.config().simulation.tick_hz as f32;
    assert!(at.distance(parked_at) <= 2.0 * a_tick + 0.5, "where it waited, {parked_at}, not {at}");
    bo.wait_until(DEADLINE, "ada standing where she resumed", |view| {
        view.other(id.entity()).is_some_and(|ada| ada.velocity == Vec2::ZERO && ada.position.distance(at) < 1.0)
    })
    .await
    .unwrap();
    assert!(took.as_secs_f32() < 3.0, "within a second or two, not {took:?}");
    // Its inputs carry on from where they were, each applied once.
    let carried_on = resumed.press(Keys::UP).await.unwrap();
    // (After the keys it held, which it sent again once resumed.)
    assert_eq!(carried_on, in_flight + 2, "the input sequence carries on");
    resumed.wait_until(DEADLINE, "walking up", |view| view.last_input >= carried_on).await.unwrap();
    // Every input applied (the one in flight too, sent again if it was lost), once.
    assert_eq!(resumed.view.inputs_applied, resumed.view.last_input, "nothing applied twice");
    bo.wait_until(DEADLINE, "ada walking again", |view| {
        view.other(id.entity()).is_some_and(|ada| ada.velocity.y > 0.0)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_gone_is_said_to_be_and_the_player_joins_anew() {
    let cluster = default_cluster();
    let ada = join(&cluster, 0, "ada").await;
    let mut rejoin = Rejoin::new(cluster.proxy_addresses(), bot_identity("ada"), "ada");
    rejoin.resume_with(&ada);
    let servers: Vec<_> = cluster.config().servers.iter().map(|server| server.id).collect();
    let players = || servers.iter().map(|&id| cluster.stats(id).players.load(Relaxed)).sum::<u64>();
    // Her server counts its players at the end of its frame, after the update that
    // reached her: seen counted first, so that the count falling to none below is her
    // logout done, not a count from before her login (then a resume sent through
    // another proxy could overtake her logout and find her).
    let deadline = Instant::now() + DEADLINE;
    while players() == 0 {
        assert!(Instant::now() < deadline, "ada never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Ada leaves properly: her session ends with her.
    drop(ada);
    let deadline = Instant::now() + DEADLINE;
    while players() > 0 {
        assert!(Instant::now() < deadline, "ada never left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let proxy = cluster.proxy_addresses()[1].clone();
    let gone = rejoin.attempt(&proxy).await.err().expect("no session to resume");
    assert!(matches!(gone, PlayerError::SessionGone), "{gone}");
    assert!(!rejoin.resuming(), "a session gone is not asked for again");
    let anew = rejoin.join_within(DEADLINE).await.unwrap();
    assert!(!anew.welcome.resumed);
}

#[test]
fn a_parked_player_waits_out_its_grace_seen_standing_then_leaves() {
    let mut cluster = Stepper::default_cluster();
    let ada = cluster.join(0, "ada", Vec2::new(300.0, 300.0));
    let bo = cluster.join(1, "bo", Vec2::new(360.0, 300.0));
    cluster.press(ada, Keys::RIGHT);
    cluster.step_until("ada walking", 10, |cluster| {
        cluster.player(bo).view.other(ada.entity()).is_some_and(|a| a.velocity.x > 0.0)
    });
    cluster.lose_proxy(0);
    cluster.step_until("ada parked", 10, |cluster| {
        cluster.player(bo).view.other(ada.entity()).is_some_and(|a| a.velocity == Vec2::ZERO)
    });
    let grace = (PARK_GRACE.as_secs_f64() * cluster.config.simulation.tick_hz) as u64;
    for _ in 0..grace - 5 {
        cluster.step();
    }
    assert_eq!(cluster.owners(ada), vec![ServerId(1)], "still waiting near the end of the grace period");
    assert!(cluster.player(bo).view.other(ada.entity()).is_some(), "and seen");
    cluster.step_until("ada gone", 10, |cluster| cluster.owners(ada).is_empty());
    cluster.step_until("ada out of bo's view", 5, |cluster| cluster.player(bo).view.other(ada.entity()).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_servers_players_wait_connected_and_come_back_where_it_saved_them() {
    let mut cluster = default_cluster();
    let mut ada = join(&cluster, 0, "ada").await;
    walk_to(&mut ada, centre_of(&cluster, ServerId(1)), |_| {}).await;
    let (id, stood) = (ada.welcome.user, ada.view.me.unwrap().position);
    assert_eq!(ada.view.server, Some(ServerId(1)));
    let restart = tokio::task::spawn_blocking(move || {
        cluster.restart_server(ServerId(1));
        cluster
    });
    ada.wait_until(DEADLINE, "the region offline", |view| view.region_offline).await.unwrap();
    ada.wait_until(DEADLINE, "back", |view| !view.region_offline).await.unwrap();
    let _cluster = restart.await.unwrap();
    let back = ada.view.me.unwrap();
    assert_eq!((back.id, ada.view.server), (id.entity(), Some(ServerId(1))));
    assert!(back.position.distance(stood) < 1.0, "back at {stood}, where the server saved her, not {}", back.position);
    // Her inputs carry on, each applied once.
    let up = ada.press(Keys::UP).await.unwrap();
    ada.wait_until(DEADLINE, "walking up", |view| view.last_input >= up && view.me.unwrap().velocity.y > 0.0)
        .await
        .unwrap();
    assert_eq!(ada.view.inputs_applied, ada.view.last_input, "nothing applied twice");
}
