//! A link is one TCP connection speaking the Tessera wire: the [handshake]
//! (crate::protocol::handshake) with a deadline (sealed by [`seal`] on internal links,
//! through a [`Door`] for members only), then a reader and a writer running until
//! either side ends it, with a deadline on finishing any frame once begun. Outgoing messages queue in a bounded channel; a peer that
//! stops reading fills it, and then the link is closed rather than buffering without
//! bound. Also here: the accept loop every listener runs, and the redial loop (with its
//! [`Backoff`]) every dialer runs.

pub mod admission;
pub mod alarm;
pub mod arrival;
pub mod codec;
pub mod seal;

use crate::bridge::InboxClosed;
use crate::cluster::ClusterDigest;
use crate::framing::{Bounded, Heartbeat, WireCodec, WireError};
use crate::protocol::handshake::{HANDSHAKE_TIMEOUT, HandshakeError, Hello, PROTOCOL_VERSION, Role};
use crate::protocol::verify::Violation;
use crate::secret::ClusterSecret;
use alarm::{HeardElsewhere, Silence};
use arrival::ArrivalReader;
use codec::{LinkCodec, Read};
use futures_util::{SinkExt, StreamExt};
pub use seal::Side;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long one batch of writes may take before the peer counts as not reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a frame, once its first byte arrived, may take to arrive whole.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// How long a link says nothing before it sends a heartbeat
/// ([`crate::framing::Heartbeat`]), so its peer knows it is there.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// How long a link waits without hearing anything (a frame or a heartbeat) before it
/// takes its peer for gone: a host that vanished without closing its sockets (a machine
/// lost, a cable cut) is noticed this soon, on every link, at both ends. (A proxy notices
/// a player's host gone this soon by other means: [`PLAYER_HEARTBEAT_EVERY`].)
pub const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long a player's client says nothing before it sends a heartbeat. A player who
/// presses nothing is the common case, and thousands of heartbeats a second would each
/// cost the client a write and its proxy a read, for nothing TCP does not already say:
/// the proxy sends every player something at least every other second (a heartbeat on
/// its link after each [`HEARTBEAT_EVERY`] in which nothing went either way), its kernel
/// probes a link left idle (its player's updates going by datagram) every few seconds
/// (TCP keepalive), and on Linux its socket gives up on a host that leaves either
/// unacknowledged for [`SILENCE_LIMIT`] (`TCP_USER_TIMEOUT`). The proxy also hears a
/// client by its datagrams (its binds, every [`crate::protocol::datagram::BIND_EVERY`],
/// and its inputs), so an input sent so, once acknowledged, stands for a heartbeat.
pub const PLAYER_HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// How long a proxy hears nothing from a player, by its link or by datagram, before it
/// takes the player for gone: for a client whose host still acknowledges what it is
/// sent but whose program has hung. Three of its heartbeats' intervals, as
/// [`SILENCE_LIMIT`] is five of a link's.
pub const PLAYER_SILENCE_LIMIT: Duration = Duration::from_secs(30);
/// Messages queued for one link before it counts as stuck.
pub const OUTBOUND_CAPACITY: usize = 1024;

/// Why a link ended, by cause.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer closed the connection")]
    Closed,
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("protocol violation: {0}")]
    Violation(#[from] Violation),
    #[error("peer is not reading: writes stalled for {0:?}")]
    Stalled(Duration),
    #[error("a frame begun was not finished within {0:?}")]
    TooSlow(Duration),
    #[error("nothing heard from the peer for {0:?}: it is gone")]
    Silent(Duration),
    /// We turned the peer away, and told it why.
    #[error("refused: {0}")]
    Refused(String),
    #[error("this process is shutting down")]
    ShuttingDown,
}

impl LinkError {
    /// The same error met before the handshake was over: the handshake's.
    pub fn in_handshake(self) -> Self {
        match self {
            Self::Wire(err) => HandshakeError::Wire(err).into(),
            Self::Closed => HandshakeError::Closed.into(),
            other => other,
        }
    }
}

impl From<InboxClosed> for LinkError {
    fn from(_: InboxClosed) -> Self {
        Self::ShuttingDown
    }
}

/// Bytes that crossed one or more links on the wire: frames, length prefixes, and on
/// sealed links the records' prefixes and tags.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
}

/// Who may open a link.
#[derive(Debug, Clone, Copy)]
pub enum Door<'a> {
    /// Anyone: a proxy's door for players, where nothing is secret and who a player is
    /// gets proved by other means. Nothing is encrypted.
    Public,
    /// Members of the cluster only, proved by the Noise handshake of [`seal`]; everything
    /// after it, hello included, is sealed. After the hello, both ends show the digest of
    /// their cluster file, and the link goes on only if they agree.
    Members { secret: &'a ClusterSecret, cluster: ClusterDigest, side: Side },
}

/// A framed connection past its handshake, receiving `In`.
pub struct Link<In> {
    reader: FramedRead<ArrivalReader, LinkCodec<WireCodec<In>>>,
    writer: FramedWrite<OwnedWriteHalf, LinkCodec<WireCodec<In>>>,
    frame_deadline: Duration,
    /// Since the peer was last heard from, across calls to [`Link::recv`]: it is gone
    /// after [`SILENCE_LIMIT`], or the limit set by [`Link::with_silence_limit`].
    peer_silence: Silence,
    /// How long [`Link::run`] holds each write after the first message it carries was
    /// taken, for others to join it ([`Link::with_write_window`]); none unless set.
    write_window: Duration,
}

impl<In: DeserializeOwned + Bounded> Link<In> {
    /// Opens a link over `stream` through `door`: seals it first if the door is for
    /// members, then sends `hello` and waits for the peer's, checking its protocol
    /// version, and between members their cluster files' digests, all within
    /// [`HANDSHAKE_TIMEOUT`]. Returns the link and the role the peer
    /// claims, which the caller must check is one it accepts. With `traffic`, every
    /// byte read and written after the Noise handshake is added to it, the hello's included.
    pub async fn open(
        mut stream: TcpStream,
        door: Door<'_>,
        hello: Hello,
        traffic: Option<&Traffic>,
    ) -> Result<(Self, Role), LinkError> {
        let handshake = async {
            // Small frames every tick: latency matters more than coalescing.
            let _ = stream.set_nodelay(true);
            let (reading, writing) = match door {
                Door::Public => (None, None),
                Door::Members { secret, side, .. } => {
                    let (reading, writing) = seal::handshake(&mut stream, secret, side).await?;
                    (Some(reading), Some(writing))
                }
            };
            let (read, write) = stream.into_split();
            let (bytes_in, bytes_out) = (traffic.map(|t| t.bytes_in.clone()), traffic.map(|t| t.bytes_out.clone()));
            let mut link = Link {
                reader: FramedRead::new(
                    ArrivalReader::new(read),
                    LinkCodec::new(WireCodec::<Hello>::default(), reading, bytes_in),
                ),
                writer: FramedWrite::new(write, LinkCodec::new(WireCodec::<Hello>::default(), writing, bytes_out)),
                frame_deadline: FRAME_DEADLINE,
                peer_silence: Silence::new(SILENCE_LIMIT),
                write_window: Duration::ZERO,
            };
            link.send(hello).await?;
            let theirs = link.recv().await?;
            if theirs.version != PROTOCOL_VERSION {
                return Err(HandshakeError::Version { ours: PROTOCOL_VERSION, theirs: theirs.version }.into());
            }
            let Door::Members { cluster: ours, .. } = door else { return Ok((link.retype(), theirs.role)) };
            let mut link = link.retype::<ClusterDigest>();
            link.send(ours).await?;
            let cluster = link.recv().await?;
            if cluster != ours {
                return Err(HandshakeError::ClusterDiffers { ours, theirs: cluster, role: theirs.role }.into());
            }
            Ok((link.retype(), theirs.role))
        };
        // Past the handshake: the session's messages, in the session's frame bound.
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| HandshakeError::Timeout(HANDSHAKE_TIMEOUT))?
            .map_err(LinkError::in_handshake)
    }
}

impl<In> Link<In> {
    /// The same link, receiving `Next` from now on, within `Next`'s frame bound: for
    /// the steps of a handshake, each with a message of its own, and the session after.
    pub fn retype<Next: Bounded>(self) -> Link<Next> {
        let Link { reader, writer, frame_deadline, peer_silence, write_window } = self;
        Link {
            reader: reader.map_decoder(|codec| codec.map(|_| WireCodec::default())),
            writer: writer.map_encoder(|codec| codec.map(|_| WireCodec::default())),
            frame_deadline,
            peer_silence,
            write_window,
        }
    }
}

impl<In: DeserializeOwned> Link<In> {
    /// How long a frame, once begun, may take to arrive whole ([`FRAME_DEADLINE`] unless set).
    pub fn with_frame_deadline(mut self, deadline: Duration) -> Self {
        self.frame_deadline = deadline;
        self
    }

    /// How long the peer may say nothing before it is taken for gone ([`SILENCE_LIMIT`]
    /// unless set), counted from now.
    pub fn with_silence_limit(self, limit: Duration) -> Self {
        Self { peer_silence: self.peer_silence.with_limit(limit), ..self }
    }

    /// The same link, whose peer's silence is broken also by what `elsewhere` hears of
    /// it, told by another task (a player's datagrams, read apart from its link).
    pub fn hearing_elsewhere(mut self, elsewhere: HeardElsewhere) -> Self {
        self.peer_silence = self.peer_silence.broken_also_by(elsewhere);
        self
    }

    /// How long [`Link::run`] holds each write after taking its first message, so that
    /// those queued within `window` of it go out with it: for a link whose messages come
    /// one by one from many senders (a proxy's inputs to a server), each write of which
    /// wakes the peer. A link's writes are then `window` apart at least, and its queue
    /// must hold what comes in that time. Nothing is held unless set.
    pub fn with_write_window(mut self, window: Duration) -> Self {
        self.write_window = window;
        self
    }

    /// Has the kernel stamp when what the link reads arrived, where it can
    /// ([`arrival`]): see [`Link::last_arrival`].
    pub fn stamping_arrivals(mut self) -> Self {
        self.reader.get_mut().stamp();
        self
    }

    /// When the last bytes read reached the socket, on a link
    /// [stamping arrivals](Link::stamping_arrivals) where the kernel can stamp them.
    pub fn last_arrival(&self) -> Option<std::time::Instant> {
        self.reader.get_ref().last_arrival()
    }

    pub async fn recv(&mut self) -> Result<In, LinkError> {
        next_frame(&mut self.reader, self.frame_deadline, &mut self.peer_silence).await
    }

    /// The peer was heard from by other means than the link (a player's updates by
    /// datagram): its silence is broken as by a frame.
    pub fn heard(&mut self) {
        self.peer_silence.broken();
    }

    /// Sends one message, or one [`Outgoing`](crate::framing::Outgoing) frame, and flushes.
    pub async fn send<Out>(&mut self, message: Out) -> Result<(), LinkError>
    where
        WireCodec<In>: Encoder<Out, Error = WireError>,
    {
        tokio::time::timeout(WRITE_TIMEOUT, self.writer.send(message))
            .await
            .map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))?
            .map_err(LinkError::from)
    }

    /// Sends a heartbeat: the peer hears this end is there.
    pub async fn send_heartbeat(&mut self) -> Result<(), LinkError> {
        self.send(Heartbeat).await
    }

    /// Runs the link until the peer closes it, a message is refused by `on_message`,
    /// writes stall, a frame is too slow to arrive, the peer falls silent for its
    /// silence limit ([`SILENCE_LIMIT`] unless set), or every sender of `outbound` is
    /// dropped (a clean close). What goes out is any message, or an
    /// [`Outgoing`](crate::framing::Outgoing) frame, all that is queued going out in one
    /// write (after the link's write window, if it has one), and a heartbeat whenever
    /// nothing else went out for [`HEARTBEAT_EVERY`].
    pub async fn run<Out, Handled>(
        self,
        mut outbound: mpsc::Receiver<Out>,
        on_message: impl FnMut(In) -> Handled,
    ) -> Result<(), LinkError>
    where
        WireCodec<In>: Encoder<Out, Error = WireError>,
        Handled: Future<Output = Result<(), LinkError>>,
    {
        let Self { reader, mut writer, frame_deadline, peer_silence, write_window } = self;
        let write = async move {
            let mut our_silence = Silence::new(HEARTBEAT_EVERY);
            loop {
                let message = tokio::select! {
                    biased;
                    message = outbound.recv() => match message {
                        Some(message) => message,
                        None => return Ok(()),
                    },
                    () = our_silence.lasted() => {
                        let beat = SinkExt::<Heartbeat>::send(&mut writer, Heartbeat);
                        tokio::time::timeout(WRITE_TIMEOUT, beat)
                            .await
                            .map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))??;
                        our_silence.broken();
                        continue;
                    }
                };
                if !write_window.is_zero() {
                    // What else is queued meanwhile goes in the same write.
                    tokio::time::sleep(write_window).await;
                }
                let batch = async {
                    writer.feed(message).await?;
                    // Everything already queued goes out in the same flush: one syscall a tick.
                    while let Ok(message) = outbound.try_recv() {
                        writer.feed(message).await?;
                    }
                    SinkExt::<Out>::flush(&mut writer).await
                };
                tokio::time::timeout(WRITE_TIMEOUT, batch).await.map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))??;
                our_silence.broken();
            }
        };
        let read = LinkReader { reader, frame_deadline, peer_silence }.run(on_message);
        tokio::select! {
            result = write => result,
            result = read => result,
        }
    }

    /// The link's reading half, and its socket's writing half to write frames to as
    /// they are, for a link that is not sealed (a player's); `None` for a sealed one,
    /// whose bytes only its codec may write.
    pub fn into_plain(self) -> Option<(LinkReader<In>, OwnedWriteHalf)> {
        let Self { reader, writer, frame_deadline, peer_silence, .. } = self;
        if writer.encoder().is_sealed() || !writer.write_buffer().is_empty() {
            return None;
        }
        Some((LinkReader { reader, frame_deadline, peer_silence }, writer.into_inner()))
    }
}

/// The reading half of a link (see [`Link::into_plain`]).
pub struct LinkReader<In> {
    reader: FramedRead<ArrivalReader, LinkCodec<WireCodec<In>>>,
    frame_deadline: Duration,
    peer_silence: Silence,
}

impl<In: DeserializeOwned> LinkReader<In> {
    /// Reads until the peer closes the link, a message is refused by `on_message`, a
    /// frame is too slow to arrive, or the peer falls silent for its silence limit
    /// ([`Link::with_silence_limit`]).
    pub async fn run<Handled>(mut self, mut on_message: impl FnMut(In) -> Handled) -> Result<(), LinkError>
    where
        Handled: Future<Output = Result<(), LinkError>>,
    {
        loop {
            on_message(next_frame(&mut self.reader, self.frame_deadline, &mut self.peer_silence).await?).await?;
        }
    }
}

/// The next whole frame from `reader`: waiting for one to begin while the peer is heard
/// from (a frame or a heartbeat at least as often as `peer_silence` allows, each
/// breaking it), then at most `deadline` for the rest of it.
async fn next_frame<In: DeserializeOwned>(
    reader: &mut FramedRead<ArrivalReader, LinkCodec<WireCodec<In>>>,
    deadline: Duration,
    peer_silence: &mut Silence,
) -> Result<In, LinkError> {
    let mut begun: Option<Instant> = None;
    loop {
        let read = match begun {
            None => tokio::select! {
                biased;
                read = reader.next() => read,
                () = peer_silence.lasted() => return Err(LinkError::Silent(peer_silence.limit())),
            },
            Some(at) => {
                tokio::time::timeout_at(at + deadline, reader.next()).await.map_err(|_| LinkError::TooSlow(deadline))?
            }
        };
        let read = read.ok_or(LinkError::Closed)??;
        peer_silence.broken();
        match read {
            Read::Started => begun = Some(Instant::now()),
            // What had begun, if anything, was the heartbeat.
            Read::Heartbeat => begun = None,
            Read::Frame(message) => return Ok(message),
        }
    }
}

/// The sending end of a link, held by whoever produces its messages.
#[derive(Debug)]
pub struct Outbound<T>(mpsc::Sender<T>);

impl<T> Clone for Outbound<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// A link's sending end that does not keep the link open: for a side path that must not
/// outlive its owner's decision to drop the link (which closes it once every
/// [`Outbound`] is gone).
#[derive(Debug)]
pub struct WeakOutbound<T>(mpsc::WeakSender<T>);

impl<T> WeakOutbound<T> {
    /// The link's sending end, while its owner still holds it.
    pub fn upgrade(&self) -> Option<Outbound<T>> {
        self.0.upgrade().map(Outbound)
    }
}

/// The link's queue is full (its peer is not reading) or the link is gone.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("outgoing queue full: the peer is not reading")]
    Full,
    #[error("link closed")]
    Closed,
}

impl<T> Outbound<T> {
    /// A queue of [`OUTBOUND_CAPACITY`] messages and its receiving end for [`Link::run`].
    pub fn channel() -> (Self, mpsc::Receiver<T>) {
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        (Self(tx), rx)
    }

    /// A sending end that does not keep the link open.
    pub fn downgrade(&self) -> WeakOutbound<T> {
        WeakOutbound(self.0.downgrade())
    }

    /// Queues a message without waiting: callers on a tick must never block.
    pub fn send(&self, message: T) -> Result<(), SendError> {
        self.0.try_send(message).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    /// Queues a message, waiting while the queue is full: for a sender that can wait
    /// (one player's input), which is so held back while its link is slow, instead of
    /// the link being dropped with everyone on it. Waiting senders take turns in order.
    pub async fn send_waiting(&self, message: T) -> Result<(), SendError> {
        self.0.send(message).await.map_err(|_| SendError::Closed)
    }

    /// Queues a message without waiting; while the queue is full, a task waits for room
    /// to queue it. For a sender that cannot wait but whose message must not be lost to
    /// a slow link, and may overtake others waiting with it.
    pub fn send_or_wait_aside(&self, message: T) -> Result<(), SendError>
    where
        T: Send + 'static,
    {
        match self.0.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
            Err(mpsc::error::TrySendError::Full(message)) => {
                let waiting = self.clone();
                // A queue fills only while its link runs, on a runtime that is current here.
                tokio::spawn(async move { waiting.send_waiting(message).await });
                Ok(())
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Waits between attempts to reach something that is down: doubling from a first wait
/// to a cap, and back to the first once an attempt succeeds. Every dialer and every
/// rejoining player waits this way.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    /// From 100 ms to 1 s: quick while a cluster is starting, and a member that comes
    /// back is found within a second (its players wait for it); a dial a second to a
    /// member that is down costs nothing.
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(1))
    }
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self { first, max, next: first }
    }

    /// How long to wait before the next attempt; each call doubles the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// The last attempt succeeded: the next failure waits the first wait again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Whether the wait [`Self::next_wait`] just gave was not the first in a row.
    pub fn retrying(&self) -> bool {
        self.next > self.first * 2
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A link that stayed up this long was healthy: the next redial starts from the first backoff.
const HEALTHY_LINK: Duration = Duration::from_secs(1);

/// Accepts connections until `shutdown`, serving each that `serve` admits on a task of
/// its own and logging why each closed (one bad connection never stops the listener);
/// a connection `serve` turns away (returning `None`) is closed at once.
pub async fn accept_loop<Serve, Served>(
    listener: TcpListener,
    shutdown: CancellationToken,
    what: &'static str,
    mut serve: Serve,
) where
    Serve: FnMut(TcpStream, SocketAddr) -> Option<Served>,
    Served: Future<Output = Result<(), LinkError>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                // Refused at the door: closed on the spot, costing no task and no buffer.
                let Some(served) = serve(stream, addr) else { continue };
                tokio::spawn(async move {
                    match served.await {
                        Ok(()) | Err(LinkError::Closed) => info!("{what} link from {addr} closed"),
                        // Said where it was decided, to the peer and in the log.
                        Err(LinkError::Refused(reason)) => debug!("{what} from {addr} refused: {reason}"),
                        // Anybody can knock: counted by the listener, and the member
                        // whose secret is wrong hears why on its side.
                        Err(LinkError::Handshake(err)) if err.from_a_stranger() => {
                            debug!("{what} from {addr} failed its handshake: {err}")
                        }
                        Err(err) => warn!("closing {what} link from {addr}: {err}"),
                    }
                });
            }
            Err(err) => {
                warn!("accepting a {what} failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Dials `address` until `shutdown`, running `serve` on each connection and redialing
/// with exponential backoff whenever the connection fails or ends.
pub async fn redial<Serve, Served>(address: &str, what: &str, shutdown: CancellationToken, mut serve: Serve)
where
    Serve: FnMut(TcpStream) -> Served,
    Served: Future<Output = Result<(), LinkError>>,
{
    let mut backoff = Backoff::default();
    loop {
        let attempt = async {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                .await
                .map_err(|_| LinkError::ConnectTimeout(CONNECT_TIMEOUT))?
                .map_err(|err| LinkError::Wire(err.into()))?;
            let connected = tokio::time::Instant::now();
            let result = serve(stream).await;
            if connected.elapsed() >= HEALTHY_LINK {
                backoff.reset();
            }
            result
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = attempt => result,
        };
        let wait = backoff.next_wait();
        match result {
            // Still down: said once at the first failure, not at every retry.
            Err(LinkError::Wire(err)) if backoff.retrying() => {
                debug!("{what} at {address} still unreachable: {err}")
            }
            Err(err) => warn!("{what} at {address}: {err}; redialing in {wait:?}"),
            Ok(()) => info!("{what} at {address} closed the link; redialing"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encoded_frame;
    use crate::ids::ProxyId;
    use crate::protocol::{ClientToProxy, ProxyToClient};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A link open to a peer that speaks raw bytes, past the handshake on both ends.
    async fn link_to_raw_peer<In: DeserializeOwned + Bounded>() -> (Link<In>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut raw = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        // Each write goes at once, as a link's do.
        raw.set_nodelay(true).unwrap();
        raw.write_all(&encoded_frame(&Hello::new(Role::Client)).unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let hello = Hello::new(Role::Proxy(ProxyId(1)));
        let (link, _) = Link::<In>::open(stream, Door::Public, hello.clone(), None).await.unwrap();
        let mut theirs = vec![0; encoded_frame(&hello).unwrap().len()];
        raw.read_exact(&mut theirs).await.unwrap();
        (link, raw)
    }

    /// What is queued within a link's write window of the first message goes out with
    /// it, in one write; the first waits out the window.
    #[tokio::test]
    async fn messages_queued_within_the_write_window_go_out_in_one_write() {
        const WINDOW: Duration = Duration::from_secs(1);
        // The peer speaks raw bytes, to see where one write ends.
        let (link, mut raw) = link_to_raw_peer::<ClientToProxy>().await;
        let (outbound, queue) = Outbound::channel();
        let running = tokio::spawn(link.with_write_window(WINDOW).run(queue, |_| std::future::ready(Ok(()))));

        let queued = Instant::now();
        outbound.send(ProxyToClient::ChatThrottled).unwrap();
        // Well within the window, even on a busy machine.
        tokio::time::sleep(Duration::from_millis(10)).await;
        outbound.send(ProxyToClient::SessionGone).unwrap();
        let mut first_write = vec![0; 1024];
        let read = raw.read(&mut first_write).await.unwrap();
        assert!(queued.elapsed() >= WINDOW, "the first message waited out the window");
        let both = [
            encoded_frame(&ProxyToClient::ChatThrottled).unwrap(),
            encoded_frame(&ProxyToClient::SessionGone).unwrap(),
        ];
        assert_eq!(first_write[..read], both.concat(), "both messages in the first write");
        drop(outbound);
        running.await.unwrap().unwrap();
    }

    /// A link stamping arrivals says when a frame reached its socket, not when it was
    /// read: a frame left waiting while its reader was busy elsewhere arrived when sent.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_stamping_link_says_when_a_frame_arrived_not_when_it_was_read() {
        const LEFT_WAITING: Duration = Duration::from_millis(200);
        let (link, mut raw) = link_to_raw_peer::<ProxyToClient>().await;
        let mut link = link.stamping_arrivals();
        let frame = encoded_frame(&ProxyToClient::ChatThrottled).unwrap();
        // The kernel turns stamping on for the host a moment after the first socket
        // asks: until then, reads are unstamped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while link.last_arrival().is_none() {
            assert!(Instant::now() < deadline, "no read stamped within 10 s");
            raw.write_all(&frame).await.unwrap();
            link.recv().await.unwrap();
        }
        let sent = std::time::Instant::now();
        raw.write_all(&frame).await.unwrap();
        // On loopback the frame is in the link's socket once the write returns.
        tokio::time::sleep(LEFT_WAITING).await;
        let read_from = std::time::Instant::now();
        assert!(matches!(link.recv().await.unwrap(), ProxyToClient::ChatThrottled));
        let arrived = link.last_arrival().expect("the read was stamped");
        // The host's clock and the monotonic one agree to well within a millisecond.
        let slack = Duration::from_millis(1);
        assert!(arrived + slack >= sent, "arrived {:?} before it was sent", sent - arrived);
        let waited = read_from.saturating_duration_since(arrived);
        assert!(waited + slack >= LEFT_WAITING, "stamped only {waited:?} before it was read");
    }
}
