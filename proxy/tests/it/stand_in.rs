//! A real proxy on its own thread and loopback ports, linked to a stand-in game server
//! that this test drives: it records what the proxy sends it and sends the proxy
//! whatever the test says. Players join over real TCP as the game client does, each
//! name one player (its key made from the name), found in a store of the proxy's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_proxy::stats::ProxyStats;
use tessera_proxy::{ProxyLimits, ProxySettings};
use tessera_shared::cluster::{ClusterConfig, Listener};
use tessera_shared::framing::{decode_body, encoded_frame};
use tessera_shared::identity::{Identity, JoinChallenge};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::link::{Door, Link, LinkError, Outbound, Side};
use tessera_shared::protocol::datagram::DatagramTag;
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::{Hello, ProxyToClient, ProxyToServer, Role, ServerToProxy};
use tessera_shared::secret::ClusterSecret;
use tessera_store::StoreLocation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Generous: CI shares two busy cores.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A running proxy, stopped when dropped.
pub struct TestProxy {
    /// Where players connect.
    pub players: SocketAddr,
    pub stats: Arc<ProxyStats>,
    /// The one server of its map, played by the test.
    pub server: Outbound<ServerToProxy>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    _store: tempfile::TempDir,
}

impl TestProxy {
    /// A proxy with `limits` in front of a one-server map, once it is linked to the stand-in.
    pub async fn start(limits: ProxyLimits) -> Self {
        let loopback = || std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Self::start_for(limits, (loopback(), loopback()), |settings, players, shutdown| {
            tessera_proxy::spawn_thread(settings, players, shutdown).unwrap()
        })
        .await
    }

    /// The same, taking players on `players`, the stand-in listening on `stand_in`, and
    /// the proxy's thread started by `launch` (which may start it elsewhere: in a
    /// network namespace where those sockets are).
    pub async fn start_for(
        limits: ProxyLimits,
        (players, stand_in): (std::net::TcpListener, std::net::TcpListener),
        launch: impl FnOnce(ProxySettings, std::net::TcpListener, CancellationToken) -> std::thread::JoinHandle<()>,
    ) -> Self {
        stand_in.set_nonblocking(true).unwrap();
        let stand_in = TcpListener::from_std(stand_in).unwrap();
        let (server_port, player_port) = (stand_in.local_addr().unwrap(), players.local_addr().unwrap());
        let mut map = ClusterConfig::one_region();
        map.rebind(|listener, addr| {
            Ok::<_, ()>(match listener {
                Listener::Proxies(_) => server_port,
                Listener::Players(_) => player_port,
                Listener::Peers(_) => addr,
            })
        })
        .unwrap();
        let secret = ClusterSecret::generate().unwrap();
        let store = tempfile::tempdir().unwrap();
        let location = StoreLocation::in_data_dir(store.path());
        let cluster = map.digest();
        let settings = ProxySettings { limits, ..ProxySettings::new(ProxyId(1), map, secret.clone(), location) };
        let stats = settings.stats.clone();
        let shutdown = CancellationToken::new();
        let thread = launch(settings, players, shutdown.clone());

        let (stream, _) = tokio::time::timeout(DEADLINE, stand_in.accept()).await.expect("the proxy dials").unwrap();
        let door = Door::Members { secret: &secret, cluster, side: Side::Listener };
        let (link, role) =
            Link::<ProxyToServer>::open(stream, door, Hello::new(Role::Server(ServerId(1))), None).await.unwrap();
        assert_eq!(role, Role::Proxy(ProxyId(1)));
        let (server, queue) = Outbound::channel();
        tokio::spawn(link.run(queue, |_| std::future::ready(Ok(()))));
        let proxy = Self { players: player_port, stats, server, shutdown, thread: Some(thread), _store: store };
        let linked = |proxy: &Self| proxy.stats.servers_up.load(std::sync::atomic::Ordering::Relaxed) == 1;
        wait_for("the proxy to count its server up", || linked(&proxy)).await;
        proxy
    }

    /// Players playing through the proxy now.
    pub fn players_playing(&self) -> u64 {
        self.stats.players.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A player past its welcome.
pub struct TestPlayer {
    pub link: Link<ProxyToClient>,
    pub user: UserId,
    /// Its tag for updates by datagram, if the proxy sends them so.
    pub datagrams: Option<DatagramTag>,
}

/// The player called `name`: its key is made from the name.
pub fn identity_of(name: &str) -> Identity {
    let mut secret = [0; 32];
    secret.iter_mut().zip(name.bytes()).for_each(|(byte, from)| *byte = from);
    Identity::from_secret(secret)
}

/// Joins through the proxy at `addr` over `stream`, as the game client does.
pub async fn join_over(stream: TcpStream, name: &str) -> Result<TestPlayer, LinkError> {
    let hello = Hello::new(Role::Client);
    let (mut link, _) = Link::<JoinChallenge>::open(stream, Door::Public, hello, None).await?;
    let challenge = tokio::time::timeout(DEADLINE, link.recv()).await.expect("the proxy challenges")?;
    link.send(JoinRequest::sign(&identity_of(name), &challenge, name, None)).await?;
    let mut link = link.retype::<ProxyToClient>();
    match tokio::time::timeout(DEADLINE, link.recv()).await.expect("the proxy answers")? {
        ProxyToClient::Welcome(welcome) => Ok(TestPlayer { link, user: welcome.user, datagrams: welcome.datagrams }),
        ProxyToClient::Disconnect { reason } | ProxyToClient::NameRefused { reason } => Err(LinkError::Refused(reason)),
        ProxyToClient::SessionGone | ProxyToClient::RegionOffline => panic!("no session was resumed or lost"),
        ProxyToClient::Update(_) | ProxyToClient::Chat(_) | ProxyToClient::ChatThrottled => {
            panic!("an update or chat before the welcome")
        }
    }
}

/// Joins as `name` in raw bytes, as a hostile client would, and returns the stream
/// just past the welcome.
pub async fn join_raw(addr: SocketAddr, name: &str) -> TcpStream {
    async fn read<T: serde::de::DeserializeOwned>(stream: &mut TcpStream) -> T {
        let mut len = [0; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut body = vec![0; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await.unwrap();
        decode_body(&body).unwrap()
    }
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&encoded_frame(&Hello::new(Role::Client)).unwrap()).await.unwrap();
    read::<Hello>(&mut stream).await;
    let challenge: JoinChallenge = read(&mut stream).await;
    let request = JoinRequest::sign(&identity_of(name), &challenge, name, None);
    stream.write_all(&encoded_frame(&request).unwrap()).await.unwrap();
    assert!(matches!(read::<ProxyToClient>(&mut stream).await, ProxyToClient::Welcome(_)), "welcomed");
    stream
}

/// Joins through the proxy at `addr`, which must let the player in.
pub async fn join(addr: SocketAddr, name: &str) -> TestPlayer {
    let stream = TcpStream::connect(addr).await.unwrap();
    join_over(stream, name).await.unwrap_or_else(|err| panic!("{name} could not join: {err}"))
}

/// Joins as a player that reads next to nothing: its socket's receive buffer is as
/// small as the kernel allows, so what the proxy sends it piles up at the proxy.
pub async fn join_with_small_window(addr: SocketAddr, name: &str) -> TestPlayer {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    join_over(stream, name).await.unwrap_or_else(|err| panic!("{name} could not join: {err}"))
}

/// What happened to a connection at the proxy's front door.
pub enum Knock {
    /// The proxy began its handshake: the connection, still open.
    Admitted(TcpStream),
    /// Closed before the proxy sent a byte.
    Refused,
}

/// Connects to `addr` and sees whether the proxy admits the connection (it speaks first).
pub async fn knock(addr: SocketAddr) -> Knock {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut first = [0u8; 1];
    match tokio::time::timeout(DEADLINE, stream.peek(&mut first)).await.expect("the proxy answers or closes") {
        Ok(n) if n > 0 => Knock::Admitted(stream),
        Ok(_) | Err(_) => Knock::Refused,
    }
}

/// Knocks until the proxy at `addr` admits a connection, within the deadline.
pub async fn knock_until_admitted(addr: SocketAddr, what: &str) -> TcpStream {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Knock::Admitted(stream) = knock(addr).await {
            return stream;
        }
        assert!(Instant::now() < deadline, "never admitted: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `done` holds, checking every few milliseconds, or fails the test.
pub async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads what is left on a player's connection until the proxy closes it, returning
/// the reason it gave, if any.
pub async fn read_to_close(player: &mut TestPlayer) -> Option<String> {
    loop {
        match tokio::time::timeout(DEADLINE, player.link.recv()).await.expect("the proxy closes the connection") {
            Ok(ProxyToClient::Disconnect { reason }) => return Some(reason),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}
