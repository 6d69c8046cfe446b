//! Players are somebody: a player who leaves and joins again, through any proxy, later or
//! after the whole cluster was stopped and started again, is the same player (id and
//! name) where it left, on whichever server owns that spot, and its neighbours see it
//! there; a name belongs to the first key that asked for it; the same player signing in
//! again takes its place over from its older session.

use crate::harness::{DEADLINE, TestCluster, centre_of, default_cluster, fresh_data, join, walk_to};
use crate::stepper::Stepper;
use std::time::{Duration, Instant};
use tessera_bots::swarm::bot_identity;
use tessera_player::{Player, PlayerError, Rejoin};
use tessera_proxy::ProxyLimits;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::protocol::SIGNED_IN_AGAIN;
use tessera_store::{Store, StoreLocation};

/// Waits until the store holds `name`'s player within a unit of `at`: saved as it left.
async fn saved_at(cluster: &TestCluster, name: &str, at: Vec2) {
    let store = Store::open(&StoreLocation::in_data_dir(cluster.data.path())).await.unwrap();
    let key = bot_identity(name).key();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let saved = store.load(key).await.unwrap().map(|record| record.position);
        if saved.is_some_and(|position| position.distance(at) < 1.0) {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never saved at {at}: the store has {saved:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn me(player: &Player) -> (UserId, Vec2, Option<ServerId>) {
    let me = player.view.me.expect("a first update");
    (player.welcome.user, me.position, player.view.server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_who_left_comes_back_where_it_was_and_is_seen_there() {
    let cluster = default_cluster();
    let mut ada = join(&cluster, 0, "ada").await;
    assert_eq!(ada.welcome.user, bot_identity("ada").user(), "a player's id is its key's");
    assert_eq!(ada.welcome.name, "ada");
    // Out of the spawn region, across a border, onto server 2.
    let target = centre_of(&cluster, ServerId(2)) + Vec2::new(-300.0, -250.0);
    walk_to(&mut ada, target, |_| {}).await;
    let (id, left_at, server) = me(&ada);
    assert_eq!(server, Some(ServerId(2)));
    drop(ada);
    saved_at(&cluster, "ada", left_at).await;

    // A neighbour waits there; ada comes back through the other proxy.
    let mut bo = join(&cluster, 1, "bo").await;
    walk_to(&mut bo, left_at + Vec2::new(60.0, 0.0), |_| {}).await;
    let ada = join(&cluster, 1, "ada").await;
    let (again, at, server) = me(&ada);
    assert_eq!(again, id, "the same id");
    assert_eq!(ada.welcome.name, "ada");
    assert!(at.distance(left_at) < 1.0, "back at {left_at}, not at {at}");
    assert_eq!(server, Some(ServerId(2)), "on the server owning that spot");
    bo.wait_until(DEADLINE, "ada in view where she left, with her name", |view| {
        view.other(id.entity()).is_some_and(|seen| seen.position.distance(left_at) < 1.0)
            && view.name(id.entity()).is_some_and(|name| name == "ada")
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_started_again_remembers_everyone() {
    let cluster = default_cluster();
    let mut ada = join(&cluster, 0, "ada").await;
    walk_to(&mut ada, centre_of(&cluster, ServerId(4)), |_| {}).await;
    let (id, left_at, _) = me(&ada);
    // Stopped while ada plays: every server saves its players before it stops.
    let data = cluster.stop();
    drop(ada);

    let cluster = TestCluster::start_in(ClusterConfig::default_local(), ProxyLimits::default(), data);
    let ada = join(&cluster, 0, "ada").await;
    let (again, at, server) = me(&ada);
    assert_eq!(again, id);
    assert!(at.distance(left_at) < 1.0, "back at {left_at}, not at {at}");
    assert_eq!(server, Some(ServerId(4)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_is_its_first_keys_and_no_look_alike_passes_for_it() {
    let cluster = TestCluster::start_in(ClusterConfig::default_local(), ProxyLimits::default(), fresh_data());
    let _ada = join(&cluster, 0, "ada").await;
    let proxies = cluster.proxy_addresses();
    // "аda" begins with a Cyrillic а.
    for (impostor, asked) in [("mallory", "ada"), ("trudy", "ADA"), ("eve", "\u{430}da")] {
        let mut rejoin = Rejoin::new(proxies.clone(), bot_identity(impostor), asked);
        match rejoin.join_within(DEADLINE).await {
            Err(PlayerError::NameRefused(reason)) => assert!(!reason.is_empty()),
            Err(err) => panic!("{impostor} asking for {asked:?}: expected the name refused, got {err}"),
            Ok(_) => panic!("{impostor} got the name {asked:?}, which is ada's"),
        }
    }
    // A key keeps its first name: asking for another changes nothing.
    let again = Rejoin::new(proxies, bot_identity("ada"), "queen-ada").join_within(DEADLINE).await.unwrap();
    assert_eq!(again.welcome.name, "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_again_takes_over_from_the_older_session() {
    let cluster = default_cluster();
    let mut older = join(&cluster, 0, "ada").await;
    walk_to(&mut older, centre_of(&cluster, ServerId(1)) + Vec2::new(100.0, 50.0), |_| {}).await;
    let (id, at, _) = me(&older);
    saved_at(&cluster, "ada", at).await;
    // Through the other proxy, before the older session has ended.
    let mut newer = join(&cluster, 1, "ada").await;
    let (again, newer_at, _) = me(&newer);
    assert_eq!(again, id);
    assert!(newer_at.distance(at) < 1.0, "taken over where the player stands");
    match older.wait_until(DEADLINE, "the older session ended", |_| false).await {
        Err(PlayerError::SignedInAgain) => {}
        other => panic!("expected the older session told it was signed in again, got {other:?}"),
    }
    // Through the same proxy again: the newest one plays on.
    let newest = join(&cluster, 1, "ada").await;
    assert_eq!(me(&newest).0, id);
    assert!(matches!(newer.wait_until(DEADLINE, "ended", |_| false).await, Err(PlayerError::SignedInAgain)));
}

/// Signing in again where the store has the player on another server than the one it
/// is on now (it crossed a border since its last checkpoint): the session on the old
/// server ends, so the player is in one place only, where it was last saved.
#[test]
fn a_player_signing_in_again_on_another_server_is_in_one_place_only() {
    let mut cluster = Stepper::default_cluster();
    let ada = cluster.join(0, "ada", Vec2::new(1000.0, 300.0));
    cluster.walk_to(ada, Vec2::new(1100.0, 300.0), |_| {});
    assert_eq!(cluster.owners(ada), vec![ServerId(2)]);
    // Its last checkpoint was on server 1's side.
    let mut older = cluster.join_as(1, ada, "ada", Vec2::new(1000.0, 300.0)).expect("ada was playing");
    cluster.step_until("the older session ended", 10, |cluster| cluster.owners(ada) == vec![ServerId(1)]);
    for _ in 0..5 {
        cluster.step();
    }
    assert_eq!(cluster.owners(ada), vec![ServerId(1)], "in one place");
    older.drain(cluster.now());
    assert_eq!(older.disconnected.as_deref(), Some(SIGNED_IN_AGAIN));
    assert!(cluster.player(ada).disconnected.is_none(), "the newer session plays on");
}
