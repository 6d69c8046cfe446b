//! Bad input closes that one connection, with a clear log line, and nobody else notices:
//! garbage, absurd lengths, truncated frames, a wrong protocol version, messages not
//! allowed in the current state, a join not signed by the key it names (or replayed from
//! another connection), an input numbered 0, processes without the cluster
//! secret posing as a proxy or a server, and members of the cluster (holding the secret)
//! using ids they have no right to or naming regions or players the map does not give
//! them.

use crate::harness::{DEADLINE, TestCluster, default_cluster, join, standing_by, walk_to};
use bytes::BytesMut;
use std::time::Duration;
use tessera_bots::swarm::bot_identity;
use tessera_player::Player;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterDigest;
use tessera_shared::components::Keys;
use tessera_shared::framing::{Bounded, decode_body, encode_frame};
use tessera_shared::identity::JoinChallenge;
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::link::{Door, Link, LinkError, Side};
use tessera_shared::protocol::handshake::{HandshakeError, JoinRequest};
use tessera_shared::protocol::{
    CellDelta, ClientToProxy, EntityName, HandoffState, Hello, Input, PROTOCOL_VERSION, PeerMessage, ProxyToClient,
    ProxyToServer, Role,
};
use tessera_shared::region_map::CellId;
use tessera_shared::secret::ClusterSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub(crate) fn frame(message: &impl serde::Serialize) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(message, &mut buf).unwrap();
    buf.to_vec()
}

fn client_hello() -> Vec<u8> {
    frame(&Hello::new(Role::Client))
}

/// Reads the next whole frame of `stream` as a `T`.
pub(crate) async fn read_frame<T: serde::de::DeserializeOwned>(stream: &mut TcpStream) -> T {
    let mut len = [0; 4];
    stream.read_exact(&mut len).await.expect("a frame's length");
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.expect("a frame's body");
    decode_body(&body).expect("a frame of the expected message")
}

/// A raw connection to the proxy at `addr`, greeted and challenged, with the challenge.
pub(crate) async fn challenged(addr: &str) -> (TcpStream, JoinChallenge) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&client_hello()).await.unwrap();
    read_frame::<Hello>(&mut stream).await;
    let challenge = read_frame::<JoinChallenge>(&mut stream).await;
    (stream, challenge)
}

/// Sends `bytes` and asserts the other side closes the connection: reads until EOF
/// (or reset), bounded in time and size.
async fn assert_closed_after(addr: &str, bytes: &[u8], half_close: bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    assert_closed(stream).await;
}

/// Asserts the other side of `stream` closes it (bounded in time and bytes read).
pub(crate) async fn assert_closed(mut stream: TcpStream) {
    let closed = async {
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    total += n;
                    assert!(total < 1 << 20, "the peer keeps talking instead of closing");
                }
            }
        }
    };
    tokio::time::timeout(DEADLINE, closed).await.expect("the connection is closed");
}

/// Opens a sealed link to `addr` as a member holding `secret`, claiming `role`, sends
/// `messages`, and returns why the other side then closed the link (bounded in time).
async fn member_closed_after<In: Bounded + serde::de::DeserializeOwned>(
    addr: &str,
    secret: &ClusterSecret,
    cluster: ClusterDigest,
    role: Role,
    messages: Vec<impl serde::Serialize>,
) -> LinkError {
    let stream = TcpStream::connect(addr).await.unwrap();
    let door = Door::Members { secret, cluster, side: Side::Dialer };
    let run = async {
        let (mut link, _) = Link::<In>::open(stream, door, Hello::new(role), None).await?;
        for message in messages {
            link.send(message).await?;
        }
        loop {
            link.recv().await?;
        }
    };
    let closed: Result<(), LinkError> = tokio::time::timeout(DEADLINE, run).await.expect("the link is closed");
    closed.expect_err("the link only ends in an error")
}

/// A player in the cluster still moves after the abuse.
async fn assert_unaffected(player: &mut Player) {
    let seq = player.press(if player.keys() == Keys::UP { Keys::DOWN } else { Keys::UP }).await.unwrap();
    player.wait_until(DEADLINE, "the honest player's input applied", |view| view.last_input >= seq).await.unwrap();
    let y = player.view.me.unwrap().position.y;
    player
        .wait_until(DEADLINE, "the honest player moving", |view| (view.me.unwrap().position.y - y).abs() > 5.0)
        .await
        .unwrap();
}

async fn cluster_with_honest_player() -> (TestCluster, Player) {
    let cluster = default_cluster();
    let player = join(&cluster, 0, "honest").await;
    (cluster, player)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let proxy = &cluster.proxy_addresses()[0];
    let server = cluster.config().servers[0].proxy_bind.to_string();

    // Garbage where a hello should be, on a proxy and on a server.
    let garbage = [0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff];
    assert_closed_after(proxy, &garbage, false).await;
    assert_closed_after(&server, &garbage, false).await;
    // A 4 GiB length prefix.
    assert_closed_after(proxy, &u32::MAX.to_be_bytes(), false).await;
    assert_closed_after(&server, &u32::MAX.to_be_bytes(), false).await;
    // A frame cut short by the connection closing.
    let hello = client_hello();
    assert_closed_after(proxy, &hello[..hello.len() - 2], true).await;
    // Garbage after a valid hello.
    let mut after_hello = client_hello();
    after_hello.extend_from_slice(&garbage);
    assert_closed_after(proxy, &after_hello, false).await;

    assert_unaffected(&mut honest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_version_role_or_order_is_refused() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let proxy = &cluster.proxy_addresses()[0];
    let server = cluster.config().servers[0].proxy_bind.to_string();

    let old = Hello { version: PROTOCOL_VERSION + 1, role: Role::Client };
    assert_closed_after(proxy, &frame(&old), false).await;
    // Input before any hello.
    let input = ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 });
    assert_closed_after(proxy, &frame(&input), false).await;
    // A second hello.
    let mut twice = client_hello();
    twice.extend(client_hello());
    assert_closed_after(proxy, &twice, false).await;
    // A player knocking on a server's proxy port.
    assert_closed_after(&server, &client_hello(), false).await;
    // Input where the join should be.
    let mut early = client_hello();
    early.extend(frame(&ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 })));
    assert_closed_after(proxy, &early, false).await;
    // An input numbered 0 from a player that joined properly, which the server's gate
    // refuses: the proxy closes this connection rather than forward it on the link its
    // other players share.
    let (mut joined, challenge) = challenged(proxy).await;
    let request = JoinRequest::sign(&bot_identity("zero"), &challenge, "zero", None);
    joined.write_all(&frame(&request)).await.unwrap();
    assert!(matches!(read_frame::<ProxyToClient>(&mut joined).await, ProxyToClient::Welcome(_)));
    joined.write_all(&frame(&ClientToProxy::Input(Input { seq: 0, keys: Keys::UP, tick: 0 }))).await.unwrap();
    assert_closed(joined).await;

    assert_unaffected(&mut honest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_is_the_key_holders_own_and_good_once() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let proxy = &cluster.proxy_addresses()[0];
    let proxy_id = cluster.config().proxies[0].id;
    let honest_key = bot_identity("honest").key();

    // The honest player's key, signed by another: someone posing as the honest player.
    let (mut forged, challenge) = challenged(proxy).await;
    let mallory = JoinRequest::sign(&bot_identity("mallory"), &challenge, "honest", None);
    let posing = JoinRequest { key: honest_key, ..mallory };
    forged.write_all(&frame(&posing)).await.unwrap();
    assert_closed(forged).await;
    // A join recorded from one connection, replayed on another with a new challenge.
    let (_recorded_on, challenge) = challenged(proxy).await;
    let recorded = JoinRequest::sign(&bot_identity("honest"), &challenge, "honest", None);
    let (mut replayed, _) = challenged(proxy).await;
    replayed.write_all(&frame(&recorded)).await.unwrap();
    assert_closed(replayed).await;
    assert_eq!(
        cluster.proxy_stats(proxy_id).players.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "only the honest one"
    );

    assert_unaffected(&mut honest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_secret_nobody_poses_as_a_proxy_or_a_server() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let server = cluster.config().servers[0].proxy_bind.to_string();
    let peer_port = cluster.config().servers[1].peer_bind.to_string();
    let honest_id = UserId(honest.view.me.unwrap().id.0);
    let steer = ProxyToServer::Input { user: honest_id, input: Input { seq: 99, keys: Keys::LEFT, tick: 0 } };

    // The old way in: a plain hello claiming to be the honest player's own proxy.
    let mut rogue = frame(&Hello::new(Role::Proxy(ProxyId(1))));
    rogue.extend(frame(&steer));
    assert_closed_after(&server, &rogue, false).await;
    let mut rogue = frame(&Hello::new(Role::Server(ServerId(1))));
    rogue.extend(frame(&PeerMessage::Subscribe(vec![CellId { x: 2, y: 0 }])));
    assert_closed_after(&peer_port, &rogue, false).await;
    // A real handshake, with a secret of its own (or the public development one).
    for wrong in [ClusterSecret::generate().unwrap(), ClusterSecret::development()] {
        let err = member_closed_after::<tessera_shared::protocol::ServerToProxy>(
            &server,
            &wrong,
            cluster.config().digest(),
            Role::Proxy(ProxyId(1)),
            vec![steer.clone()],
        )
        .await;
        assert!(matches!(err, LinkError::Handshake(_) | LinkError::Wire(_) | LinkError::Closed), "{err}");
    }

    assert_unaffected(&mut honest).await;
    assert_eq!(honest.view.inputs_applied, honest.view.last_input, "the rogue input was never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_cluster_file_is_refused_and_told() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let server = cluster.config().servers[0].proxy_bind.to_string();
    let honest_id = UserId(honest.view.me.unwrap().id.0);
    let steer = ProxyToServer::Input { user: honest_id, input: Input { seq: 99, keys: Keys::LEFT, tick: 0 } };
    // The secret, but a file with another tick rate: an old copy on one host.
    let mut other = cluster.config().clone();
    other.simulation.tick_hz = 30.0;
    let err = member_closed_after::<tessera_shared::protocol::ServerToProxy>(
        &server,
        cluster.secret(),
        other.digest(),
        Role::Proxy(ProxyId(1)),
        vec![steer],
    )
    .await;
    let LinkError::Handshake(HandshakeError::ClusterDiffers { ours, theirs, role }) = &err else {
        panic!("expected the cluster files to differ, got {err}");
    };
    assert_eq!((*ours, *theirs, role), (other.digest(), cluster.config().digest(), &Role::Server(ServerId(1))));
    assert!(err.to_string().contains("runs another cluster file"), "{err}");

    assert_unaffected(&mut honest).await;
    assert_eq!(honest.view.inputs_applied, honest.view.last_input, "the input was never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_speaks_only_for_the_players_that_came_through_it() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let server = cluster.config().servers[0].proxy_bind.to_string();
    let honest_id = UserId(honest.view.me.unwrap().id.0);
    let (secret, digest) = (cluster.secret(), cluster.config().digest());
    type FromServer = tessera_shared::protocol::ServerToProxy;

    // A member of the cluster gone rogue, as proxy 2, tries to move and to log out the
    // honest player, who came through proxy 1. The server ignores both (a late input or
    // logout from a proxy a player left is no attack, so the link stays), and the link
    // closes on what is plainly impossible: an input numbered 0.
    let steer = ProxyToServer::Input { user: honest_id, input: Input { seq: 99, keys: Keys::LEFT, tick: 0 } };
    let logout = ProxyToServer::Logout { user: honest_id };
    let impossible = ProxyToServer::Input { user: honest_id, input: Input { seq: 0, keys: Keys::LEFT, tick: 0 } };
    let rogue = vec![steer, logout, impossible];
    let err = member_closed_after::<FromServer>(&server, secret, digest, Role::Proxy(ProxyId(2)), rogue).await;
    assert!(matches!(err, LinkError::Closed | LinkError::Wire(_)), "{err}");
    // A proxy the map does not name is not let in at all.
    let hello_only: Vec<ProxyToServer> = Vec::new();
    let err = member_closed_after::<FromServer>(&server, secret, digest, Role::Proxy(ProxyId(9)), hello_only).await;
    assert!(matches!(err, LinkError::Closed | LinkError::Wire(_)), "{err}");

    assert_unaffected(&mut honest).await;
    assert_eq!(honest.view.inputs_applied, honest.view.last_input, "the rogue input was never applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_after_the_handshake_deadline() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    let proxy = &cluster.proxy_addresses()[0];
    let started = std::time::Instant::now();
    standing_by(&mut honest, assert_closed_after(proxy, &[], false)).await;
    assert!(started.elapsed() >= Duration::from_secs(4), "closed by the handshake deadline, not at once");
    assert_unaffected(&mut honest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_is_held_to_the_map_and_the_real_link_recovers() {
    let (cluster, mut honest) = cluster_with_honest_player().await;
    // Two players either side of the border between servers 3 (west) and 4 (east).
    let mut east = join(&cluster, 1, "east").await;
    walk_to(&mut honest, Vec2::new(990.0, 1300.0), |_| {}).await;
    walk_to(&mut east, Vec2::new(1060.0, 1300.0), |_| {}).await;
    assert_eq!((honest.view.server, east.view.server), (Some(ServerId(3)), Some(ServerId(4))));
    // Server 4 accepts peers with lower ids; this one claims to be server 3, and so
    // displaces the real link between 3 and 4 each time it connects.
    let server_four = cluster.config().servers[3].peer_bind.to_string();
    let abuses = [
        // A subscription to a cell of a region server 4 does not own.
        PeerMessage::Subscribe(vec![CellId { x: 0, y: 0 }]),
        // Data for a cell of a region the sender does not own.
        PeerMessage::Cells {
            at: 1_780_000_000_000_000,
            deltas: vec![CellDelta {
                cell: CellId { x: 7, y: 7 },

                full: true,
                entered: vec![],
                moved: vec![],
                left: vec![],
            }],
        },
        // A handoff of a player standing outside server 4's regions.
        PeerMessage::Handoff(HandoffState {
            user: UserId(999),
            name: EntityName::from("ghost").unwrap(),
            position: Vec2::splat(10.0),
            velocity: Vec2::ZERO,
            keys: Keys::empty(),
            last_input: 0,
            inputs_applied: 0,
            pending: vec![],
            clock: None,
            trail: Vec::new(),
            proxy: ProxyId(1),
            epoch: 1,
            view: None,
        }),
        // Forwarded input numbered 0.
        PeerMessage::ForwardInput { user: UserId(999), input: Input { seq: 0, keys: Keys::UP, tick: 0 } },
    ];
    // A member of the cluster gone rogue: it holds the secret, so only the map stops it.
    for abuse in abuses {
        let role = Role::Server(ServerId(3));
        let err = member_closed_after::<PeerMessage>(
            &server_four,
            cluster.secret(),
            cluster.config().digest(),
            role,
            vec![abuse],
        )
        .await;
        assert!(matches!(err, LinkError::Closed | LinkError::Wire(_)), "{err}");
    }
    // Server 3 redials, both re-subscribe, and the border is live again: the west
    // player sees where the east player walks next.
    let east_id = east.view.me.unwrap().id;
    walk_to(&mut east, Vec2::new(1100.0, 1300.0), |_| {}).await;
    honest
        .wait_until(DEADLINE, "east's new position seen across the border", |view| {
            view.other(east_id).is_some_and(|state| state.position.x > 1085.0)
        })
        .await
        .unwrap();
    assert_unaffected(&mut honest).await;
}
