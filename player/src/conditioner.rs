//! A link conditioner: a player's connection as a slower network would carry it, in user
//! space (kernel netem is not everywhere). Each way, every chunk of bytes is held for a
//! latency give or take a jitter drawn anew for it (uniform), never overtaking the one
//! before (TCP keeps order, so jitter bunches bytes rather than reorders them), and now
//! and then the link stalls: nothing moves for a while, as on a congested Wi-Fi.
//! [`Conditioner::connect`] gives the player a socket whose far end is a relay, inside
//! this process, to the real address; the rest of the protocol is untouched.

use rand::Rng;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
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
}

impl From<ConditionerArgs> for Conditioner {
    fn from(args: ConditionerArgs) -> Self {
        Self {
            latency: Duration::from_millis(args.lag),
            jitter: Duration::from_millis(args.jitter),
            stall_every: args.stall_every.filter(|every| *every > 0.0).map(Duration::from_secs_f64),
            stall_for: Duration::from_millis(args.stall_for),
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
}

impl Conditioner {
    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        !self.latency.is_zero() || !self.jitter.is_zero() || self.stall_every.is_some()
    }

    /// What the player's status line says of it, such as "+75±20 ms each way".
    pub fn describe(&self) -> String {
        let mut said = format!("+{}±{} ms each way", self.latency.as_millis(), self.jitter.as_millis());
        if let Some(every) = self.stall_every {
            said += &format!(", stalls of {} ms every {:.0} s", self.stall_for.as_millis(), every.as_secs_f32());
        }
        said
    }

    /// A connection to `addr`, through a relay that conditions it both ways (a plain
    /// connection if it changes nothing). The relay ends when either side closes.
    pub async fn connect(&self, addr: &str) -> std::io::Result<TcpStream> {
        let upstream = TcpStream::connect(addr).await?;
        if !self.is_active() {
            return Ok(upstream);
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
        Ok(player)
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
    let (held, mut due) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let writer = async move {
        while let Some((release, chunk)) = due.recv().await {
            tokio::time::sleep_until(release).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    let reader = async move {
        let mut stalls = Stalls::new(Instant::now(), &conditioner);
        let mut previous = Instant::now();
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = match from.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            previous = conditioner.release(Instant::now(), previous, &mut stalls);
            if held.send((previous, buffer[..read].to_vec())).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
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
        let (mut player, (mut server, _)) = (player.unwrap(), accepted.unwrap());
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
        assert_eq!(
            conditioner.release(next - Duration::from_millis(1), start, &mut stalls),
            next - Duration::from_millis(1)
        );
        let during = conditioner.release(next, start, &mut stalls);
        assert_eq!(during, next + Duration::from_millis(300));
        assert_eq!(conditioner.release(next + Duration::from_millis(100), start, &mut stalls), during);
    }
}
