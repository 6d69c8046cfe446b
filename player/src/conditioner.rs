//! A link conditioner: a player's connection as a slower network would carry it, in user
//! space (kernel netem is not everywhere). Each way, every chunk of bytes is held for a
//! latency give or take a jitter drawn anew for it (uniform), never overtaking the one
//! before (TCP keeps order, so jitter bunches bytes rather than reorders them), and now
//! and then the link stalls: nothing moves for a while, as on a congested Wi-Fi.
//! [`Conditioner::connect`] gives the player a socket whose far end is a relay, inside
//! this process, to the real address; the rest of the protocol is untouched. Its
//! updates and key presses by datagram cross a relay of their own
//! ([`Conditioner::datagrams`]), held alike (in order, as a path does but for its rare
//! reorderings), and some lost (`loss`), as UDP loses them and TCP never shows.

use rand::Rng;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Chunks in flight each way before reading stops: TCP's own back-pressure past that.
const CHUNKS_IN_FLIGHT: usize = 4096;

/// The conditioner's command-line flags, the same for the game client and the bots.
#[derive(clap::Args, Debug, Clone, Copy, Default)]
pub struct ConditionerArgs {
    /// Milliseconds added to the player's link each way (user space, no netem): 75 makes
    /// a round trip 150 ms longer.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub lag: u64,
    /// Each chunk's delay varies by up to this many milliseconds either way.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter: u64,
    /// The link stalls about this often (seconds, at random), each way.
    #[arg(long, value_name = "SECONDS")]
    pub stall_every: Option<f64>,
    /// How long each stall lasts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 300)]
    pub stall_for: u64,
    /// Percent of the datagrams (updates, and key presses) lost each way (the link itself
    /// loses nothing).
    #[arg(long, value_name = "PERCENT", default_value_t = 0.0)]
    pub loss: f64,
}

impl From<ConditionerArgs> for Conditioner {
    fn from(args: ConditionerArgs) -> Self {
        Self {
            latency: Duration::from_millis(args.lag),
            jitter: Duration::from_millis(args.jitter),
            stall_every: args.stall_every.filter(|every| *every > 0.0).map(Duration::from_secs_f64),
            stall_for: Duration::from_millis(args.stall_for),
            loss: (args.loss / 100.0).clamp(0.0, 1.0),
        }
    }
}

/// How a conditioned link delays what it carries, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Conditioner {
    /// Added each way: the round trip grows by twice this.
    pub latency: Duration,
    /// Each chunk's delay is the latency give or take up to this.
    pub jitter: Duration,
    /// On average how often the link stalls (each way), if ever.
    pub stall_every: Option<Duration>,
    /// How long a stall lasts.
    pub stall_for: Duration,
    /// The share of datagrams lost (0 to 1), each way.
    pub loss: f64,
}

impl Conditioner {
    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        !self.latency.is_zero() || !self.jitter.is_zero() || self.stall_every.is_some() || self.loss > 0.0
    }

    /// What the player's status line says of it, such as "+75±20 ms each way".
    pub fn describe(&self) -> String {
        let mut said = format!("+{}±{} ms each way", self.latency.as_millis(), self.jitter.as_millis());
        if let Some(every) = self.stall_every {
            said += &format!(", stalls of {} ms every {:.0} s", self.stall_for.as_millis(), every.as_secs_f32());
        }
        if self.loss > 0.0 {
            said += &format!(", {:.0} % of datagrams lost", self.loss * 100.0);
        }
        said
    }

    /// A connection to `addr`, through a relay that conditions it both ways (a plain
    /// connection if it changes nothing), and the address it reached. The relay ends
    /// when either side closes.
    pub async fn connect(&self, addr: &str) -> std::io::Result<(TcpStream, SocketAddr)> {
        let upstream = TcpStream::connect(addr).await?;
        let reached = upstream.peer_addr()?;
        if !self.is_active() {
            return Ok((upstream, reached));
        }
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let (player, accepted) = tokio::join!(TcpStream::connect(listener.local_addr()?), listener.accept());
        let (player, (relay, _)) = (player?, accepted?);
        for stream in [&player, &relay, &upstream] {
            stream.set_nodelay(true)?;
        }
        let (from_player, to_player) = relay.into_split();
        let (from_upstream, to_upstream) = upstream.into_split();
        tokio::spawn(carry(from_player, to_upstream, *self));
        tokio::spawn(carry(from_upstream, to_player, *self));
        Ok((player, reached))
    }

    /// A UDP socket connected to `proxy`, for the player's updates by datagram, through
    /// a relay that conditions them both ways (straight to it if it changes nothing).
    /// The relay runs until what is returned with the socket is dropped.
    pub async fn datagrams(&self, proxy: SocketAddr) -> std::io::Result<(UdpSocket, Option<Relay>)> {
        let any = match proxy {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let upstream = UdpSocket::bind(any).await?;
        upstream.connect(proxy).await?;
        if !self.is_active() {
            return Ok((upstream, None));
        }
        let (player, relay) =
            tokio::try_join!(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)), UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))?;
        player.connect(relay.local_addr()?).await?;
        relay.connect(player.local_addr()?).await?;
        let (relay, upstream) = (Arc::new(relay), Arc::new(upstream));
        let tasks = [
            tokio::spawn(carry_datagrams(relay.clone(), upstream.clone(), *self)).abort_handle(),
            tokio::spawn(carry_datagrams(upstream, relay, *self)).abort_handle(),
        ];
        Ok((player, Some(Relay(tasks))))
    }

    /// How long a chunk read now waits, given when the one before it leaves: never
    /// sooner than that, and after any stall that began.
    fn release(&self, now: Instant, previous: Instant, stalls: &mut Stalls) -> Instant {
        let jitter = self.jitter.as_secs_f64();
        let spread = if jitter > 0.0 { rand::rng().random_range(-jitter..=jitter) } else { 0.0 };
        let delay = Duration::from_secs_f64((self.latency.as_secs_f64() + spread).max(0.0));
        (now + delay).max(previous).max(stalls.until(now, self))
    }
}

/// When the link stalls next, and until when it is stalled.
struct Stalls {
    next: Option<Instant>,
    until: Instant,
}

impl Stalls {
    fn new(now: Instant, conditioner: &Conditioner) -> Self {
        Self { next: conditioner.stall_every.map(|every| now + exponential(every)), until: now }
    }

    /// Until when nothing read at `now` moves.
    fn until(&mut self, now: Instant, conditioner: &Conditioner) -> Instant {
        if let (Some(next), Some(every)) = (self.next, conditioner.stall_every)
            && now >= next
        {
            self.until = now + conditioner.stall_for;
            self.next = Some(self.until + exponential(every));
        }
        self.until
    }
}

/// A wait drawn from an exponential distribution of mean `mean`: stalls come at random.
fn exponential(mean: Duration) -> Duration {
    let uniform: f64 = rand::rng().random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64(-uniform.ln() * mean.as_secs_f64())
}

/// Reads `from`, holding each chunk until its release, then writes it to `to`.
async fn carry(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, conditioner: Conditioner) {
    let (mut holder, mut held) = holding(conditioner);
    let writer = async move {
        while let Some(chunk) = held.next().await {
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer).await {
            if !holder.hold(&buffer[..read]).await {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

/// A conditioned way's two ends: what holds each piece read back ([`Holder::hold`]),
/// and what gives them out as they fall due ([`Held::next`]).
fn holding(conditioner: Conditioner) -> (Holder, Held) {
    let (held, due) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let now = Instant::now();
    (Holder { conditioner, stalls: Stalls::new(now, &conditioner), previous: now, held }, Held { due })
}

/// Holds back each piece read, until its release.
struct Holder {
    conditioner: Conditioner,
    stalls: Stalls,
    /// When the piece before falls due: none overtakes it.
    previous: Instant,
    held: mpsc::Sender<(Instant, Vec<u8>)>,
}

impl Holder {
    /// Holds `piece` back until its release: `false` once nothing is given out any more.
    async fn hold(&mut self, piece: &[u8]) -> bool {
        self.previous = self.conditioner.release(Instant::now(), self.previous, &mut self.stalls);
        self.held.send((self.previous, piece.to_vec())).await.is_ok()
    }
}

/// The pieces held back, given out as they fall due.
struct Held {
    due: mpsc::Receiver<(Instant, Vec<u8>)>,
}

impl Held {
    /// The next piece, once it is due; `None` once nothing more is held.
    async fn next(&mut self) -> Option<Vec<u8>> {
        let (release, piece) = self.due.recv().await?;
        tokio::time::sleep_until(release).await;
        Some(piece)
    }
}

/// A datagram relay's tasks ([`Conditioner::datagrams`]): it ends when this is dropped.
#[derive(Debug)]
pub struct Relay([AbortHandle; 2]);

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.iter().for_each(AbortHandle::abort);
    }
}

/// Receives on `from`, drops a datagram with the conditioner's `loss`, holds the rest
/// each until its release, and sends them on `to`.
async fn carry_datagrams(from: Arc<UdpSocket>, to: Arc<UdpSocket>, conditioner: Conditioner) {
    let (mut holder, mut held) = holding(conditioner);
    let sender = async move {
        while let Some(datagram) = held.next().await {
            // Refused (nobody there yet, or any more) is as lost as a datagram can be.
            let _ = to.send(&datagram).await;
        }
    };
    let receiver = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let received = match from.recv(&mut buffer).await {
                Ok(received) => received,
                // An ICMP error for one sent before: nobody there yet, or any more.
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => return,
            };
            let lost = rand::rng().random::<f64>() < conditioner.loss;
            if !lost && !holder.hold(&buffer[..received]).await {
                return;
            }
        }
    };
    tokio::join!(receiver, sender);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_no_sooner_than_the_latency() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let conditioner =
            Conditioner { latency: Duration::from_millis(40), jitter: Duration::from_millis(20), ..Default::default() };
        let (player, accepted) = tokio::join!(conditioner.connect(&addr), listener.accept());
        let ((mut player, reached), (mut server, _)) = (player.unwrap(), accepted.unwrap());
        assert_eq!(reached.to_string(), addr, "the address reached, not the relay's");
        let sent_at = Instant::now();
        for byte in 0..100u8 {
            player.write_all(&[byte]).await.unwrap();
        }
        let mut received = [0; 100];
        server.read_exact(&mut received).await.unwrap();
        let took = sent_at.elapsed();
        assert!(received.iter().copied().eq(0..100u8), "in order");
        assert!(took >= Duration::from_millis(20), "held at least the latency less the jitter: {took:?}");
        // And back, the same way; a close is carried too.
        server.write_all(b"pong").await.unwrap();
        drop(server);
        let mut back = Vec::new();
        player.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
    }

    #[tokio::test]
    async fn datagrams_are_held_in_order_and_some_lost() {
        let proxy = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        let conditioner = Conditioner { latency: Duration::from_millis(30), loss: 0.5, ..Default::default() };
        let (player, relay) = conditioner.datagrams(proxy.local_addr().unwrap()).await.unwrap();
        assert!(relay.is_some(), "a conditioned socket goes through a relay");
        let sent_at = Instant::now();
        for n in 0..200u8 {
            player.send(&[n]).await.unwrap();
        }
        let mut received = Vec::new();
        let mut buffer = [0; 16];
        let (len, from) = proxy.recv_from(&mut buffer).await.unwrap();
        let took = sent_at.elapsed();
        received.push(buffer[..len].to_vec());
        // What was not lost arrives within the latency of the first, and nothing more after.
        while let Ok(Ok(len)) = tokio::time::timeout(Duration::from_millis(300), proxy.recv(&mut buffer)).await {
            received.push(buffer[..len].to_vec());
        }
        assert!(took >= Duration::from_millis(30), "held for the latency: {took:?}");
        let numbers: Vec<u8> = received.iter().map(|datagram| datagram[0]).collect();
        assert!(numbers.is_sorted(), "in order: {numbers:?}");
        assert!((40..=160).contains(&numbers.len()), "about half lost: {} of 200 came", numbers.len());
        // And back, to the player's socket.
        proxy.send_to(b"update", from).await.unwrap();
        let mut back = [0; 16];
        let mut came = None;
        for _ in 0..20 {
            if let Ok(Ok(len)) = tokio::time::timeout(Duration::from_millis(200), player.recv(&mut back)).await {
                came = Some(back[..len].to_vec());
                break;
            }
            proxy.send_to(b"update", from).await.unwrap();
        }
        assert_eq!(came.as_deref(), Some(&b"update"[..]), "half of the tries get through");
    }

    #[test]
    fn a_stall_holds_everything_read_during_it() {
        let conditioner = Conditioner {
            stall_every: Some(Duration::from_secs(1)),
            stall_for: Duration::from_millis(300),
            ..Default::default()
        };
        let start = Instant::now();
        let mut stalls = Stalls::new(start, &conditioner);
        let next = stalls.next.unwrap();
        // Before the stall, however soon it came (the draw can put it under a
        // millisecond after the start): nothing is held.
        let before = start + (next - start) / 2;
        assert_eq!(conditioner.release(before, start, &mut stalls), before);
        let during = conditioner.release(next, start, &mut stalls);
        assert_eq!(during, next + Duration::from_millis(300));
        assert_eq!(conditioner.release(next + Duration::from_millis(100), start, &mut stalls), during);
    }
}
