//! The front door's limits over real TCP: each cap refuses the connection past it at
//! accept and frees a place when a connection ends, the join rate holds an address to
//! its burst until its bucket refills, and a player that never reads is disconnected
//! for it while another plays on, and one asks for a full update at a time. Every
//! refusal is counted by its cause.

use crate::stand_in::{Knock, TestProxy, join, join_over, join_with_small_window, knock, knock_until_admitted};
use crate::stand_in::{join_raw, read_to_close, wait_for};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_proxy::ProxyLimits;
use tessera_proxy::stats::Refusal;
use tessera_shared::Vec2;
use tessera_shared::framing::encoded_frame;
use tessera_shared::ids::{EntityId, ServerId, UserId};
use tessera_shared::protocol::packing::Mentions;
use tessera_shared::protocol::{
    ChatChannel, ClientToProxy, EntityName, EntityState, PlayerFrame, PlayerUpdate, ProxyToClient, ServerToProxy,
    UpdatePacker,
};

/// Two players hold the cap `limits` sets at two; a third connection is closed at
/// accept for `cause`; one leaving lets a new one in.
async fn a_cap_of_two_refuses_the_third_and_frees_a_place(limits: ProxyLimits, cause: Refusal) {
    let proxy = TestProxy::start(limits).await;
    let first = join(proxy.players, "first").await;
    let _second = join(proxy.players, "second").await;
    assert!(matches!(knock(proxy.players).await, Knock::Refused), "the third is closed before the handshake");
    for other in Refusal::ALL {
        assert_eq!(proxy.stats.refusals(other), u64::from(other == cause), "{other:?}");
    }

    drop(first);
    let stream = knock_until_admitted(proxy.players, "a player after one left").await;
    let _third = join_over(stream, "third").await.expect("the third plays in the place the first left");
    // Its welcome is queued just before the table counts it.
    wait_for("the proxy to count two players", || proxy.players_playing() == 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_capped_and_given_back() {
    let limits = ProxyLimits { max_connections_per_address: 2, ..ProxyLimits::DEFAULT };
    a_cap_of_two_refuses_the_third_and_frees_a_place(limits, Refusal::ConnectionsPerAddress).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_total_are_capped_and_given_back() {
    let limits = ProxyLimits { max_connections: 2, ..ProxyLimits::DEFAULT };
    a_cap_of_two_refuses_the_third_and_frees_a_place(limits, Refusal::Connections).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_joins_its_burst_then_at_its_rate() {
    // One join every five seconds once the burst of three is spent.
    let limits = ProxyLimits { joins_per_sec_per_address: 0.2, join_burst_per_address: 3, ..ProxyLimits::DEFAULT };
    let proxy = TestProxy::start(limits).await;
    for n in 0..3 {
        assert!(matches!(knock(proxy.players).await, Knock::Admitted(_)), "join {n} is within the burst");
    }
    assert!(matches!(knock(proxy.players).await, Knock::Refused), "the fourth at once is one too many");
    assert_eq!(proxy.stats.refusals(Refusal::JoinRate), 1);
    assert_eq!(proxy.stats.refusals(Refusal::ConnectionsPerAddress), 0);

    let stream = knock_until_admitted(proxy.players, "a join once the bucket refilled").await;
    join_over(stream, "patient").await.expect("a refilled bucket lets a player in");
}

/// [`big_update_frame`] for `user`, as its server sends it to the proxy.
fn frame_for(user: UserId, tick: u64) -> PlayerFrame {
    PlayerFrame { user, last_input: 0, full: true, frame: big_update_frame(tick) }
}

/// An update of about 16 KiB, as a server would frame it for one player: a full one,
/// of 800 others coming into view.
fn big_update_frame(tick: u64) -> bytes::Bytes {
    let state = |id| EntityState { id: EntityId(id), position: Vec2::new(id as f32, 1.0), velocity: Vec2::X };
    let update = PlayerUpdate {
        tick,
        server: ServerId(1),
        last_input: 0,
        inputs_applied: 0,
        you: state(0),
        your_tick: None,
        full: true,
        changed: (1..800).map(state).collect(),
        left: Vec::new(),
        names: (1..800).map(|id| (EntityId(id), EntityName::from(&format!("walker {id}")).unwrap())).collect(),
        changed_handles: Vec::new(),
        left_handles: Vec::new(),
        update_every: 1,
        budget_spent: false,
        others_counted: None,
    };
    let packed = UpdatePacker::default().pack(&update, &Mentions::all_new(update.changed.len()), 0.05).unwrap();
    encoded_frame(&ProxyToClient::Update(packed)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_that_never_reads_is_disconnected_and_others_play_on() {
    const BUDGET: usize = 64 * 1024;
    const MOST_BATCHES: u64 = 1000;
    let proxy = TestProxy::start(ProxyLimits { max_queued_bytes_per_player: BUDGET, ..ProxyLimits::DEFAULT }).await;
    let mut slow = join_with_small_window(proxy.players, "slow").await;
    let reader = join(proxy.players, "reader").await;
    let reader_user = reader.user;
    let received = Arc::new(AtomicU64::new(0));
    let counting = received.clone();
    tokio::spawn(async move {
        let mut link = reader.link;
        while let Ok(ProxyToClient::Update(_)) = link.recv().await {
            counting.fetch_add(1, Ordering::Relaxed);
        }
    });

    // Both are sent the same frames; the reader takes each before the next is sent.
    let mut sent = 0;
    while proxy.stats.refusals(Refusal::SlowReader) == 0 {
        assert!(sent < MOST_BATCHES, "{sent} frames of 16 KiB never took the slow player past {BUDGET} bytes");
        sent += 1;
        let frames = vec![frame_for(slow.user, sent), frame_for(reader_user, sent)];
        proxy.server.send(ServerToProxy::Updates { tick: sent, frames }).unwrap();
        wait_for("the reader to get every frame", || received.load(Ordering::Relaxed) == sent).await;
    }
    let reason = read_to_close(&mut slow).await.expect("the slow player is told why, after what was queued");
    assert!(reason.contains(&format!("a limit of {BUDGET}")), "the byte budget, not the message count: {reason}");
    assert_eq!(proxy.stats.refusals(Refusal::SlowReader), 1, "only the slow player");

    let frames = vec![frame_for(reader_user, sent + 1)];
    proxy.server.send(ServerToProxy::Updates { tick: sent + 1, frames }).unwrap();
    wait_for("the reader to play on", || received.load(Ordering::Relaxed) == sent + 1).await;
    wait_for("the proxy to count the reader alone", || proxy.players_playing() == 1).await;
}

/// A player by TCP alone asks for a full update when the new server's first one after a
/// handoff keeps the handles of an update the proxy dropped: passed on to its server, one
/// at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_by_tcp_may_ask_for_a_full_update_one_at_a_time() {
    let proxy = TestProxy::start(ProxyLimits::DEFAULT).await;
    let mut player = join(proxy.players, "asker").await;
    player.link.send(ClientToProxy::Resync).await.unwrap();
    player.link.send(ClientToProxy::Resync).await.unwrap();
    // Read after both: once it is, so were they.
    player.link.send(ClientToProxy::Chat { channel: ChatChannel::Everyone, text: "hello".into() }).await.unwrap();
    let stats = &proxy.stats;
    wait_for("the chat line to be read", || {
        stats.chat_forwarded.load(Ordering::Relaxed) + stats.chat_dropped.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(stats.resyncs.load(Ordering::Relaxed), 1, "the first asked, the second too soon after it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_dribbling_a_frame_is_closed_at_the_frame_deadline() {
    use tessera_shared::components::Keys;
    use tessera_shared::protocol::{ClientToProxy, Input};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = ProxyLimits { frame_deadline_ms: 300, ..ProxyLimits::DEFAULT };
    let proxy = TestProxy::start(limits).await;
    let _honest = join(proxy.players, "honest").await;
    // The slow player speaks raw bytes: a whole join, then the first bytes of an input.
    let mut slow = join_raw(proxy.players, "slow").await;
    wait_for("both players in", || proxy.players_playing() == 2).await;
    let input = encoded_frame(&ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 })).unwrap();
    let started = std::time::Instant::now();
    slow.write_all(&input[..3]).await.unwrap();
    let mut rest = Vec::new();
    // Well before the default deadline of 10 s: the setting took effect.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the proxy closed the connection at the 300 ms deadline");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300), "not before the deadline");
    wait_for("the slow player gone, the honest one still in", || proxy.players_playing() == 1).await;
}
