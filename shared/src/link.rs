//! A link is one TCP connection speaking the Tessera wire: a hello exchange with a
//! deadline, then a reader and a writer running until either side ends it. Outgoing
//! messages queue in a bounded channel; a peer that stops reading fills it, and then
//! the link is closed rather than buffering without bound.

use crate::framing::{WireCodec, WireError};
use crate::protocol::{Greeting, Hello, PROTOCOL_VERSION, Role};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Encoder, FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a new connection has to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one batch of writes may take before the peer counts as not reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages queued for one link before it counts as stuck.
pub const OUTBOUND_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("peer closed the connection")]
    Closed,
    #[error("no hello within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("protocol version {theirs} is not ours ({ours})")]
    Version { ours: u32, theirs: u32 },
    #[error("expected a {expected} to connect, got {got:?}")]
    Role { expected: &'static str, got: Role },
    #[error("unexpected message: {0}")]
    Unexpected(String),
    #[error("peer is not reading: writes stalled for {0:?}")]
    Stalled(Duration),
    #[error("{0}")]
    Rejected(String),
}

/// Bytes that crossed one or more links, frames and length prefixes included.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: Arc<AtomicU64>,
}

/// A framed connection before and after its handshake.
pub struct Link<In> {
    reader: FramedRead<OwnedReadHalf, WireCodec<In>>,
    writer: FramedWrite<OwnedWriteHalf, WireCodec<In>>,
}

impl<In: DeserializeOwned> Link<In> {
    pub fn new(stream: TcpStream) -> Self {
        Self::with_codecs(stream, WireCodec::default(), WireCodec::default())
    }

    /// A link that adds every byte it reads and writes to `traffic`.
    pub fn counting(stream: TcpStream, traffic: &Traffic) -> Self {
        Self::with_codecs(
            stream,
            WireCodec::counting(traffic.bytes_in.clone()),
            WireCodec::counting(traffic.bytes_out.clone()),
        )
    }

    fn with_codecs(stream: TcpStream, reader: WireCodec<In>, writer: WireCodec<In>) -> Self {
        // Small frames every tick: latency matters more than coalescing.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Self { reader: FramedRead::new(read, reader), writer: FramedWrite::new(write, writer) }
    }

    /// Sends `hello` and waits for the peer's, checking the protocol version.
    pub async fn handshake<Out>(&mut self, hello: Hello) -> Result<Role, LinkError>
    where
        In: Greeting + std::fmt::Debug,
        Out: Greeting + Serialize,
    {
        self.send(Out::hello(hello)).await?;
        self.expect_hello().await
    }

    /// Waits for the peer's hello and checks its protocol version.
    async fn expect_hello(&mut self) -> Result<Role, LinkError>
    where
        In: Greeting + std::fmt::Debug,
    {
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.recv())
            .await
            .map_err(|_| LinkError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
        let hello = first.into_hello().map_err(|other| LinkError::Unexpected(format!("{other:?} before hello")))?;
        if hello.version != PROTOCOL_VERSION {
            return Err(LinkError::Version { ours: PROTOCOL_VERSION, theirs: hello.version });
        }
        Ok(hello.role)
    }

    pub async fn recv(&mut self) -> Result<In, LinkError> {
        self.reader.next().await.ok_or(LinkError::Closed)?.map_err(LinkError::from)
    }

    pub async fn send<Out: Serialize>(&mut self, message: Out) -> Result<(), LinkError> {
        tokio::time::timeout(WRITE_TIMEOUT, self.writer.send(message))
            .await
            .map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))?
            .map_err(LinkError::from)
    }

    /// Runs the link until the peer closes it, a message is refused by `on_message`,
    /// writes stall, or every sender of `outbound` is dropped (a clean close). What
    /// goes out is any message, or an [`Outgoing`](crate::framing::Outgoing) frame.
    pub async fn run<Out, Handled>(
        self,
        mut outbound: mpsc::Receiver<Out>,
        mut on_message: impl FnMut(In) -> Handled,
    ) -> Result<(), LinkError>
    where
        WireCodec<In>: Encoder<Out, Error = WireError>,
        Handled: Future<Output = Result<(), LinkError>>,
    {
        let Self { mut reader, mut writer } = self;
        let write = async move {
            while let Some(message) = outbound.recv().await {
                let batch = async {
                    writer.feed(message).await?;
                    // Everything already queued goes out in the same flush: one syscall a tick.
                    while let Ok(message) = outbound.try_recv() {
                        writer.feed(message).await?;
                    }
                    SinkExt::<Out>::flush(&mut writer).await
                };
                tokio::time::timeout(WRITE_TIMEOUT, batch).await.map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))??;
            }
            Ok(())
        };
        let read = async move {
            while let Some(message) = reader.next().await {
                on_message(message?).await?;
            }
            Err(LinkError::Closed)
        };
        tokio::select! {
            result = write => result,
            result = read => result,
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

    /// Queues a message without waiting: callers on a tick must never block.
    pub fn send(&self, message: T) -> Result<(), SendError> {
        self.0.try_send(message).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => SendError::Full,
            mpsc::error::TrySendError::Closed(_) => SendError::Closed,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// First wait before redialing a lost link; it doubles on each failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A link that stayed up this long was healthy: the next redial starts from the first backoff.
const HEALTHY_LINK: Duration = Duration::from_secs(1);

/// Accepts connections until `shutdown`, serving each on a task of its own and logging
/// why each closed: one bad connection never stops the listener.
pub async fn accept_loop<Serve, Served>(
    listener: TcpListener,
    shutdown: CancellationToken,
    what: &'static str,
    serve: Serve,
) where
    Serve: Fn(TcpStream, SocketAddr) -> Served,
    Served: Future<Output = Result<(), LinkError>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, addr)) => {
                let served = serve(stream, addr);
                tokio::spawn(async move {
                    match served.await {
                        Ok(()) | Err(LinkError::Closed) => info!("{what} link from {addr} closed"),
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
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = async {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                .await
                .map_err(|_| LinkError::Rejected(format!("connect timed out after {CONNECT_TIMEOUT:?}")))?
                .map_err(|err| LinkError::Wire(err.into()))?;
            let connected = tokio::time::Instant::now();
            let result = serve(stream).await;
            if connected.elapsed() >= HEALTHY_LINK {
                backoff = FIRST_BACKOFF;
            }
            result
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = attempt => result,
        };
        match result {
            // Still down: said once at the first failure, not at every retry.
            Err(LinkError::Wire(err)) if backoff > FIRST_BACKOFF => {
                debug!("{what} at {address} still unreachable: {err}")
            }
            Err(err) => warn!("{what} at {address}: {err}; redialing in {backoff:?}"),
            Ok(()) => info!("{what} at {address} closed the link; redialing"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
