//! Live figures about one proxy: players connected, frames forwarded each way (of those
//! to players, the updates by datagram; of those to servers, the inputs that came so),
//! the bytes on its client and server links, chat lines forwarded and dropped, and the
//! connections and players it turned away, by [`Refusal`]. Counted where the work
//! happens, in plain atomics the links share, and copied into the exported metrics (the
//! names in [`tessera_shared::metrics`]) ten times a second, so a rate read over a window
//! is off by at most a tenth of a second's traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tessera_service::health::Health;
use tessera_shared::ids::ProxyId;
use tessera_shared::link::Traffic;
use tessera_shared::link::admission::Refused;
use tessera_shared::metrics as names;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Game servers linked.
    pub servers_up: AtomicU64,
    pub players: AtomicU64,
    /// Frames to players, by TCP or by datagram.
    pub frames_to_clients: AtomicU64,
    pub frames_to_servers: AtomicU64,
    /// Updates sent to players by datagram, and dropped (no room in the socket, or
    /// refused by it).
    pub datagrams_to_clients: AtomicU64,
    pub datagrams_dropped: AtomicU64,
    /// Datagrams received that bound nobody and carried no player's inputs: a lapsed
    /// tag, a stranger's, or inputs past their player's rate.
    pub strange_datagrams: AtomicU64,
    /// Inputs that came by datagram and were forwarded (each once, of all the datagrams
    /// that carried it), of the frames to servers.
    pub inputs_by_datagram: AtomicU64,
    /// Full updates asked for by players that lost one sent by datagram, and passed on.
    pub resyncs: AtomicU64,
    /// Bytes on the players' links.
    pub clients: Traffic,
    /// Bytes on the links to game servers.
    pub servers: Traffic,
    /// Chat lines forwarded to the speakers' servers, and dropped past their rate.
    pub chat_forwarded: AtomicU64,
    pub chat_dropped: AtomicU64,
    /// Connections and players turned away, indexed by [`Refusal`].
    refusals: [AtomicU64; Refusal::ALL.len()],
}

/// Why the proxy turned a connection or a player away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Closed at accept: the proxy held its maximum of connections.
    Connections,
    /// Closed at accept: the address held its maximum of connections.
    ConnectionsPerAddress,
    /// Closed at accept: the address joined faster than it may.
    JoinRate,
    /// Told the cluster is full: the proxy had its maximum of players.
    Full,
    /// Disconnected: the player let more bytes or messages pile up than it may.
    SlowReader,
}

impl Refusal {
    pub const ALL: [Self; 5] =
        [Self::Connections, Self::ConnectionsPerAddress, Self::JoinRate, Self::Full, Self::SlowReader];

    /// The value of the `cause` label of the refusals metric.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::ConnectionsPerAddress => "connections_per_address",
            Self::JoinRate => "join_rate",
            Self::Full => "full",
            Self::SlowReader => "slow_reader",
        }
    }
}

impl From<Refused> for Refusal {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Connections => Self::Connections,
            Refused::ConnectionsPerAddress => Self::ConnectionsPerAddress,
            Refused::OpenRate => Self::JoinRate,
        }
    }
}

/// How often the figures are copied into the exported metrics.
const EXPORT_EVERY: Duration = Duration::from_millis(100);

impl ProxyStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn refused(&self, cause: Refusal) {
        Self::add(&self.refusals[cause as usize], 1);
    }

    /// How many times the proxy refused for `cause` so far.
    pub fn refusals(&self, cause: Refusal) -> u64 {
        self.refusals[cause as usize].load(Ordering::Relaxed)
    }

    /// Copies the figures into the exported metrics until `shutdown`.
    pub async fn export(&self, proxy: ProxyId, health: &Health, shutdown: CancellationToken) {
        let proxy = proxy.0.to_string();
        let players = metrics::gauge!(names::PROXY_PLAYERS, "proxy" => proxy.clone());
        let servers_up = metrics::gauge!(names::PROXY_SERVERS, "proxy" => proxy.clone());
        let refusals = Refusal::ALL.map(|cause| {
            let counter = metrics::counter!(names::PROXY_REFUSALS, "proxy" => proxy.clone(), "cause" => cause.label());
            (&self.refusals[cause as usize], counter)
        });
        let counters = [
            (
                &self.frames_to_clients,
                metrics::counter!(names::PROXY_FRAMES, "proxy" => proxy.clone(), "to" => "clients"),
            ),
            (
                &self.frames_to_servers,
                metrics::counter!(names::PROXY_FRAMES, "proxy" => proxy.clone(), "to" => "servers"),
            ),
            (
                &self.datagrams_to_clients,
                metrics::counter!(names::PROXY_DATAGRAMS, "proxy" => proxy.clone(), "outcome" => "sent"),
            ),
            (
                &self.datagrams_dropped,
                metrics::counter!(names::PROXY_DATAGRAMS, "proxy" => proxy.clone(), "outcome" => "dropped"),
            ),
            (
                &self.strange_datagrams,
                metrics::counter!(names::PROXY_DATAGRAMS, "proxy" => proxy.clone(), "outcome" => "strange"),
            ),
            (&self.inputs_by_datagram, metrics::counter!(names::PROXY_INPUTS_BY_DATAGRAM, "proxy" => proxy.clone())),
            (&self.resyncs, metrics::counter!(names::PROXY_RESYNCS, "proxy" => proxy.clone())),
            (&*self.clients.bytes_in, bytes_counter(&proxy, "clients", "in")),
            (&*self.clients.bytes_out, bytes_counter(&proxy, "clients", "out")),
            (&*self.servers.bytes_in, bytes_counter(&proxy, "servers", "in")),
            (&*self.servers.bytes_out, bytes_counter(&proxy, "servers", "out")),
            (
                &self.chat_forwarded,
                metrics::counter!(names::PROXY_CHAT_LINES, "proxy" => proxy.clone(), "outcome" => "forwarded"),
            ),
            (
                &self.chat_dropped,
                metrics::counter!(names::PROXY_CHAT_LINES, "proxy" => proxy.clone(), "outcome" => "dropped"),
            ),
        ];
        let mut every = tokio::time::interval(EXPORT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let linked = self.servers_up.load(Ordering::Relaxed);
            // Beating here shows the runtime turns. Ready while a server is reachable:
            // requiring every server would turn every proxy away from the load balancer
            // while one server is down, and with it the players of every other region.
            health.beat();
            health.set_ready(linked > 0);
            players.set(self.players.load(Ordering::Relaxed) as f64);
            servers_up.set(linked as f64);

            for (value, counter) in counters.iter().chain(&refusals) {
                counter.absolute(value.load(Ordering::Relaxed));
            }
        }
    }
}

fn bytes_counter(proxy: &str, link: &'static str, direction: &'static str) -> metrics::Counter {
    metrics::counter!(names::PROXY_BYTES, "proxy" => proxy.to_owned(), "link" => link, "direction" => direction)
}
