//! Comparison (b): how close the proxy comes to the machine's limit. The real
//! `tessera-proxy` process forwards a stand-in server's update frames to many player
//! connections, flat out; then a bare tokio relay that only copies bytes
//! (`tessera-bench relay`, also its own process) forwards frames of the very same size to
//! as many connections. Both are measured in frames and bytes delivered per second.
//! The relay is held back by TCP alone; the stand-in server keeps at most a few hundred
//! frames in flight to each player, since a proxy sheds players that stop reading.

use crate::BenchError;
use crate::BenchOptions;
use crate::processes::{Binaries, Process, cluster_secret, free_addresses, fresh_data_dir, load_test_limits};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tessera_shared::Vec2;
use tessera_shared::cluster::{ClusterConfig, Listener};
use tessera_shared::framing::{FrameCodec, Heartbeat, Outgoing, decode_body, encode_frame, encoded_frame};
use tessera_shared::identity::{Identity, JoinChallenge};
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::link::{Door, Link, Outbound, PLAYER_HEARTBEAT_EVERY, SendError, Side};
use tessera_shared::metrics as names;
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::packing::Mentions;
use tessera_shared::protocol::{
    EntityName, EntityState, Hello, PlayerFrame, PlayerUpdate, ProxyToClient, ProxyToServer, Role, ServerToProxy,
    UpdatePacker, tick_seconds,
};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

/// Flowing before the window opens.
const WARMUP: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(6);
/// Client frames per write on the relay's upstream side; the stand-in server sends
/// one frame per write, holding an update for every connection.
const RELAY_BATCH: usize = 64;

/// The bare relay: every accepted connection is joined to a new connection to
/// `upstream`, and bytes are copied both ways until either side closes.
pub async fn serve_relay(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (mut client, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut server = TcpStream::connect(upstream).await?;
            client.set_nodelay(true)?;
            server.set_nodelay(true)?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await
        });
    }
}

/// Frames and bytes one forwarder delivered.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub frames_per_sec: f64,
    pub megabytes_per_sec: f64,
    pub cpu_percent: f64,
    /// Connections still open at the end of the window.
    pub connections_open: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RelayComparison {
    pub connections: usize,
    pub entities_per_update: usize,
    /// Bytes of one player frame, length prefix included.
    pub frame_bytes: usize,
    pub proxy: Throughput,
    pub relay: Throughput,
    /// The proxy's frames per second over the relay's.
    pub proxy_to_relay: f64,
}

impl RelayComparison {
    pub fn summary(&self) -> String {
        format!(
            "proxy vs bare relay ({} connections, {}-byte frames): {:.0} vs {:.0} frames/s, {:.1} vs {:.1} MB/s: \
             the proxy forwards at {:.0}% of the relay's rate",
            self.connections,
            self.frame_bytes,
            self.proxy.frames_per_sec,
            self.relay.frames_per_sec,
            self.proxy.megabytes_per_sec,
            self.relay.megabytes_per_sec,
            self.proxy_to_relay * 100.0
        )
    }
}

pub async fn compare(binaries: &Binaries, options: &BenchOptions) -> Result<RelayComparison, BenchError> {
    let frame = sample_frame(options.relay_entities)?;
    let dir = options.out.join("relay");
    std::fs::create_dir_all(&dir).map_err(setup)?;
    println!("\ncomparison: proxy vs bare relay, {} connections, {}-byte frames", options.relay_clients, frame.len());
    let proxy = within_limit(through_proxy(binaries, options.relay_clients, frame.clone(), &dir)).await?;
    let relay = within_limit(through_relay(binaries, options.relay_clients, frame.clone(), &dir)).await?;
    Ok(RelayComparison {
        connections: options.relay_clients,
        entities_per_update: options.relay_entities,
        frame_bytes: frame.len(),
        proxy_to_relay: proxy.frames_per_sec / relay.frames_per_sec.max(1e-9),
        proxy,
        relay,
    })
}

/// Each half of the comparison, setup included, gets this long.
const HALF_LIMIT: Duration = Duration::from_secs(60);

async fn within_limit<T>(half: impl Future<Output = Result<T, BenchError>>) -> Result<T, BenchError> {
    tokio::time::timeout(HALF_LIMIT, half).await.map_err(|_| setup(format!("gave up after {HALF_LIMIT:?}")))?
}

fn setup(err: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(format!("proxy vs relay: {err}"))
}

/// The tick of the sample update.
const SAMPLE_TICK: u64 = 123_456;

/// The frame of a player's first (full) update, telling it of `entities` others in
/// view, spread as a crowd would be: one the proxy forwards whatever came before it.
fn sample_frame(entities: usize) -> Result<Bytes, BenchError> {
    let state = |i: usize| {
        let position = Vec2::new(2000.0 + (i as f32 * 37.0) % 400.0, 2000.0 + (i as f32 * 53.0) % 400.0);
        EntityState { id: EntityId(1_000_000 + i as u64), position, velocity: Vec2::new(141.4, -141.4) }
    };
    let update = PlayerUpdate {
        tick: SAMPLE_TICK,
        server: ServerId(1),
        last_input: 42,
        inputs_applied: 42,
        you: state(0),
        your_tick: Some(1),
        full: true,
        changed: (1..=entities).map(state).collect(),
        left: Vec::new(),
        // "bot" and a number: well within a name's bytes.
        names: (1..=entities)
            .map(|i| (state(i).id, EntityName::from(&format!("bot {i}")).unwrap_or_default()))
            .collect(),
        changed_handles: Vec::new(),
        left_handles: Vec::new(),
        update_every: 1,
        budget_spent: false,
        others_counted: None,
    };
    let tick_seconds = tick_seconds(ClusterConfig::default_local().simulation.tick_hz);
    let mentions = Mentions::all_new(update.changed.len());
    let packed = UpdatePacker::default().pack(&update, &mentions, tick_seconds).map_err(setup)?;
    encoded_frame(&ProxyToClient::Update(packed)).map_err(setup)
}

/// Reads whole frames without decoding them, so the counting side costs next to nothing.
type FrameReader = FramedRead<OwnedReadHalf, FrameCodec>;

fn frame_reader(read: OwnedReadHalf) -> FrameReader {
    FramedRead::new(read, FrameCodec::default())
}

async fn next_message<T: DeserializeOwned>(reader: &mut FrameReader) -> Result<T, BenchError> {
    let body = reader.next().await.ok_or_else(|| setup("connection closed"))?.map_err(setup)?;
    decode_body(&body).map_err(setup)
}

/// Says hello and joins as player `index` with raw frames, so that what follows can be
/// counted without decoding.
async fn raw_join(stream: TcpStream, index: usize) -> Result<(FrameReader, OwnedWriteHalf), BenchError> {
    stream.set_nodelay(true).map_err(setup)?;
    let (read, mut write) = stream.into_split();
    write.write_all(&encoded_frame(&Hello::new(Role::Client)).map_err(setup)?).await.map_err(setup)?;
    let mut reader = frame_reader(read);
    next_message::<Hello>(&mut reader).await?;
    let challenge = next_message::<JoinChallenge>(&mut reader).await?;
    let mut secret = [0; 32];
    secret[..8].copy_from_slice(&(index as u64).to_be_bytes());
    let join = JoinRequest::sign(&Identity::from_secret(secret), &challenge, &format!("relay-{index}"), None);
    write.write_all(&encoded_frame(&join).map_err(setup)?).await.map_err(setup)?;
    Ok((reader, write))
}

/// Counts frames and bytes arriving on connection `index` until it closes.
async fn count_frames(mut reader: FrameReader, counters: Arc<Counters>, index: usize) {
    while let Some(Ok(frame)) = reader.next().await {
        counters.frames.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
        counters.per_connection[index].fetch_add(1, Ordering::Relaxed);
    }
    counters.closed.fetch_add(1, Ordering::Relaxed);
    // A closed connection holds back nothing.
    counters.per_connection[index].store(u64::MAX, Ordering::Relaxed);
}

struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    closed: AtomicU64,
    /// Frames delivered on each connection.
    per_connection: Vec<AtomicU64>,
}

impl Counters {
    fn new(connections: usize) -> Arc<Self> {
        let per_connection = (0..connections).map(|_| AtomicU64::new(0)).collect();
        Arc::new(Self {
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            per_connection,
        })
    }

    /// Frames sent to some connection and not delivered yet, after `sent` to each.
    fn most_in_flight(&self, sent: u64) -> u64 {
        self.per_connection
            .iter()
            .map(|delivered| sent.saturating_sub(delivered.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0)
    }
}

/// Lets traffic flow, then measures a window of it and of `forwarder`'s CPU.
async fn measure(counters: &Counters, forwarder: &Process, connections: usize) -> Throughput {
    tokio::time::sleep(WARMUP).await;
    let read = || (counters.frames.load(Ordering::Relaxed), counters.bytes.load(Ordering::Relaxed));
    let (start, (frames, bytes), usage) = (Instant::now(), read(), forwarder.usage());
    tokio::time::sleep(WINDOW).await;
    let (seconds, (frames_after, bytes_after), usage_after) =
        (start.elapsed().as_secs_f64(), read(), forwarder.usage());
    Throughput {
        frames_per_sec: (frames_after - frames) as f64 / seconds,
        megabytes_per_sec: (bytes_after - bytes) as f64 / seconds / 1e6,
        cpu_percent: (usage_after.cpu_seconds - usage.cpu_seconds) / seconds * 100.0,
        connections_open: connections.saturating_sub(counters.closed.load(Ordering::Relaxed) as usize),
    }
}

/// The real proxy between a stand-in server, which sends one frame per write holding an
/// update for every player, and `connections` players.
async fn through_proxy(
    binaries: &Binaries,
    connections: usize,
    frame: Bytes,
    dir: &std::path::Path,
) -> Result<Throughput, BenchError> {
    let server_listener = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
    let [peer, client, metrics] = free_addresses(3)?.try_into().expect("three addresses");
    let mut map = ClusterConfig::one_region();
    let server_port = server_listener.local_addr().map_err(setup)?;
    map.rebind(|listener, _| {
        Ok::<_, BenchError>(match listener {
            Listener::Peers(_) => peer,
            Listener::Proxies(_) => server_port,
            Listener::Players(_) => client,
        })
    })?;
    let file = dir.join("cluster.toml");
    std::fs::write(&file, map.to_toml()).map_err(setup)?;
    let (secret, secret_file) = cluster_secret(dir)?;
    let mut args: Vec<String> = [
        "--cluster",
        &file.display().to_string(),
        "--id",
        "1",
        "--metrics",
        &metrics.to_string(),
        "--secret-file",
        &secret_file.display().to_string(),
        "--data",
        &fresh_data_dir(dir)?.display().to_string(),
    ]
    .map(String::from)
    .into();
    args.extend(load_test_limits(connections));
    // Every frame the stand-in has in flight to a player may be waiting in its queue.
    let queue_bytes = (IN_FLIGHT as usize + 1).saturating_mul(frame.len());
    args.extend(["--max-queued-bytes-per-player".into(), queue_bytes.to_string()]);
    let proxy = Process::spawn("proxy", &binaries.proxy, &args, Some(metrics), dir)?;

    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), server_listener.accept())
        .await
        .map_err(|_| setup("the proxy never dialed the stand-in server"))?
        .map_err(setup)?;
    // The stand-in server's link is sealed like a real one, so the proxy pays what it pays.
    let door = Door::Members { secret: &secret, cluster: map.digest(), side: Side::Listener };
    let (mut from_proxy, _) =
        Link::<ProxyToServer>::open(stream, door, Hello::new(Role::Server(ServerId(1))), None).await.map_err(setup)?;
    let linked = &proxy;
    wait_for(
        move || async move { linked.scrape().await.ok().and_then(|s| s.sum(names::PROXY_SERVERS, &[])) == Some(1.0) },
    )
    .await?;

    let counters = Counters::new(connections);
    let mut tasks = JoinSet::new();
    for index in 0..connections {
        let stream = TcpStream::connect(client).await.map_err(setup)?;
        let (mut reader, write) = raw_join(stream, index).await?;
        match next_message::<ProxyToClient>(&mut reader).await? {
            ProxyToClient::Welcome(_) => {}
            other => return Err(setup(format!("expected a welcome, got {other:?}"))),
        }
        tasks.spawn(keep_beating(write));
        tasks.spawn(count_frames(reader, counters.clone(), index));
    }
    let mut users = Vec::with_capacity(connections);
    while users.len() < connections {
        if let ProxyToServer::Login { user, .. } = from_proxy.recv().await.map_err(setup)? {
            users.push(user);
        }
    }
    let frames =
        users.iter().map(|&user| PlayerFrame { user, last_input: 0, full: true, frame: frame.clone() }).collect();
    let mut batch = BytesMut::new();
    encode_frame(&ServerToProxy::Updates { tick: SAMPLE_TICK, frames }, &mut batch).map_err(setup)?;

    let (to_proxy, queue) = Outbound::channel();
    // The proxy's own messages to the server (none expected now) are read and dropped.
    tasks.spawn(async move {
        let _ = from_proxy.run(queue, |_| std::future::ready(Ok(()))).await;
    });
    tasks.spawn(paced_pump(to_proxy, batch.freeze(), counters.clone()));
    let throughput = measure(&counters, &proxy, connections).await;
    tasks.shutdown().await;
    proxy.stop().await;
    Ok(throughput)
}

/// Keeps a raw player's connection open and alive, as a player that reads and has
/// nothing to say does: a heartbeat every [`PLAYER_HEARTBEAT_EVERY`] until the
/// connection fails (dropping the write half would be leaving).
async fn keep_beating(mut to: OwnedWriteHalf) {
    let mut every = tokio::time::interval(PLAYER_HEARTBEAT_EVERY);
    loop {
        every.tick().await;
        if to.write_all(&Heartbeat::FRAME).await.is_err() {
            return;
        }
    }
}

/// Writes `bytes` again and again until the connection fails.
async fn pump(mut to: OwnedWriteHalf, bytes: Bytes) {
    while to.write_all(&bytes).await.is_ok() {}
}

/// Frames in flight to one player that the stand-in server allows, well under the
/// proxy's per-player queue of messages (and its byte budget is set to hold them): the
/// proxy disconnects a player whose queue fills, as it should, so flooding it would
/// measure that, not forwarding.
const IN_FLIGHT: u64 = 256;

/// As [`pump`], for a batch holding one frame for each connection, holding back while
/// any connection has [`IN_FLIGHT`] frames undelivered.
async fn paced_pump(to: Outbound<Outgoing<ServerToProxy>>, batch: Bytes, counters: Arc<Counters>) {
    let mut sent = 0;
    loop {
        while counters.most_in_flight(sent) > IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        match to.send(Outgoing::Encoded(batch.clone())) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => tokio::time::sleep(Duration::from_millis(1)).await,
            Err(SendError::Closed) => return,
        }
    }
}

/// The bare relay between a source that sends `frame`s in batches and `connections` players.
async fn through_relay(
    binaries: &Binaries,
    connections: usize,
    frame: Bytes,
    dir: &std::path::Path,
) -> Result<Throughput, BenchError> {
    let source = TcpListener::bind("127.0.0.1:0").await.map_err(setup)?;
    let source_addr = source.local_addr().map_err(setup)?;
    let batch: Bytes = frame.repeat(RELAY_BATCH).into();
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        while let Ok((stream, _)) = source.accept().await {
            let _ = stream.set_nodelay(true);
            let (_read, write) = stream.into_split();
            tokio::spawn(pump(write, batch.clone()));
        }
    });
    let [listen] = free_addresses(1)?.try_into().expect("one address");
    let args = ["relay", "--listen", &listen.to_string(), "--upstream", &source_addr.to_string()].map(String::from);
    let relay = Process::spawn("relay", &binaries.bench, &args, None, dir)?;
    let counters = Counters::new(connections);
    let reachable = move || async move { TcpStream::connect(listen).await.is_ok() };
    wait_for(reachable).await?;
    for index in 0..connections {
        let (read, write) = TcpStream::connect(listen).await.map_err(setup)?.into_split();
        let counters = counters.clone();
        tasks.spawn(async move {
            let _keep_open = write;
            count_frames(frame_reader(read), counters, index).await
        });
    }

    let throughput = measure(&counters, &relay, connections).await;
    tasks.shutdown().await;
    relay.stop().await;
    Ok(throughput)
}

/// Polls `ready` for up to ten seconds.
async fn wait_for<Ready: Future<Output = bool>>(mut ready: impl FnMut() -> Ready) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready().await {
        if Instant::now() > deadline {
            return Err(setup("timed out waiting for the forwarder"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
