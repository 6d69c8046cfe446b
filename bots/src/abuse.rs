//! Abuse at every port: what an attacker who can reach a cluster throws at its doors,
//! from addresses of its own, while real players play. Floods of connections opened
//! and dropped; garbage; absurd length prefixes; half frames; a slowloris before the
//! handshake and, at the player door, one after it; hellos posing as a server or a
//! proxy in the clear; and real Noise handshakes under a secret of its own. What counts
//! is that the players notice nothing (run a [`Swarm`](crate::swarm::Swarm) beside it);
//! the [`AbuseReport`] says what each door did with each attack, and an attack the
//! door never closed is a finding.
//!
//! `tessera-bots abuse` runs it against a cluster file; the cluster's tests run it
//! beside a swarm.

use bytes::BytesMut;
use rand::Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tessera_shared::cluster::{ClusterConfig, ClusterDigest};
use tessera_shared::framing::encode_frame;
use tessera_shared::ids::{ProxyId, ServerId};
use tessera_shared::link::{Door, Link, Side};
use tessera_shared::protocol::{Hello, PeerMessage, Role};
use tessera_shared::secret::ClusterSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

/// Which door of the cluster a port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DoorKind {
    /// A proxy's port for players: public.
    Players,
    /// A server's port for proxies: members only.
    ServerProxies,
    /// A server's port for peer servers: members only.
    ServerPeers,
}

/// One port to attack.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub door: DoorKind,
    pub address: SocketAddr,
    /// The cluster file's digest, as a member shows it: the right one, so that a member
    /// door is shown to refuse a guessed secret on the secret alone.
    pub cluster: ClusterDigest,
}

/// Every door of `cluster`, as its members and players dial them.
pub fn every_door(cluster: &ClusterConfig) -> Result<Vec<Target>, std::io::Error> {
    let (mut targets, digest) = (Vec::new(), cluster.digest());
    let mut add = |door, address: String| -> Result<(), std::io::Error> {
        let resolved = std::net::ToSocketAddrs::to_socket_addrs(&address)?.next();
        let address = resolved.ok_or_else(|| std::io::Error::other(format!("{address} resolves to nothing")))?;
        targets.push(Target { door, address, cluster: digest });
        Ok(())
    };
    for proxy in &cluster.proxies {
        add(DoorKind::Players, proxy.client_address())?;
    }
    for server in &cluster.servers {
        add(DoorKind::ServerProxies, server.proxy_address())?;
        add(DoorKind::ServerPeers, server.peer_address())?;
    }
    Ok(targets)
}

/// What to throw, for how long, from where.
#[derive(Debug, Clone)]
pub struct AbusePlan {
    pub targets: Vec<Target>,
    /// Local addresses the floods come from, taken in turn (none: the system chooses).
    pub flood_sources: Vec<IpAddr>,
    /// Local addresses the other attacks come from, taken in turn (none: the system
    /// chooses). Apart from the floods', so that a player door's per-address limits,
    /// spent by the floods, do not keep the other attacks from reaching its handshake.
    pub attack_sources: Vec<IpAddr>,
    /// New attacks start until then; each then runs to its end.
    pub duration: Duration,
    /// Connections opened and dropped at once, per port per second.
    pub floods_per_sec: u32,
    /// Attacks other than floods running at once at each port, each attacker starting
    /// at another kind: with at least as many as there are kinds, every kind is tried
    /// at every port however slow the slowest is.
    pub attackers_per_port: usize,
    /// How long an attack waits for the door to close it before it counts as left open:
    /// longer than any deadline a door has (the handshake's, and the player door's
    /// frame deadline).
    pub patience: Duration,
}

impl AbusePlan {
    /// Attacks on `targets` for `duration` at the given intensity, from loopback
    /// addresses other than the players' 127.0.0.1 (floods from 127.0.0.2-5, the rest
    /// from 127.0.0.6-9), as a cluster on one machine is attacked from elsewhere.
    pub fn from_loopback(targets: Vec<Target>, duration: Duration, floods_per_sec: u32) -> Self {
        let loopback = |last: std::ops::RangeInclusive<u8>| last.map(|n| IpAddr::from([127, 0, 0, n])).collect();
        Self {
            targets,
            flood_sources: loopback(2..=5),
            attack_sources: loopback(6..=9),
            duration,
            floods_per_sec,
            attackers_per_port: Attack::TURNS.len(),
            patience: Duration::from_secs(15),
        }
    }
}

/// The kinds of attack other than floods, each tried in turn by every attacker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// Connect and drop at once.
    Flood,
    /// Up to 4 KB of random bytes.
    Garbage,
    /// A 4 GiB length prefix (or, to a Noise reader, a 64 KiB one).
    HugeLength,
    /// A frame's length and part of its body, then nothing.
    HalfFrame,
    /// A frame begun before the handshake, then a byte a second.
    SlowlorisBeforeHandshake,
    /// At the player door: a proper hello, then a frame begun and a byte a second.
    SlowlorisAfterHandshake,
    /// A hello in the clear claiming to be server 1.
    PlainFakeServer,
    /// A hello in the clear claiming to be proxy 1.
    PlainFakeProxy,
    /// A whole Noise handshake under a secret of the attacker's own, then a hello as server 1.
    WrongSecret,
}

impl Attack {
    /// A slowloris after the handshake needs a handshake in the clear: the player door's.
    fn applies_to(self, door: DoorKind) -> bool {
        self != Self::SlowlorisAfterHandshake || door == DoorKind::Players
    }

    pub const TURNS: [Self; 8] = [
        Self::Garbage,
        Self::HugeLength,
        Self::HalfFrame,
        Self::SlowlorisBeforeHandshake,
        Self::SlowlorisAfterHandshake,
        Self::PlainFakeServer,
        Self::PlainFakeProxy,
        Self::WrongSecret,
    ];
}

/// What became of the attacks of one kind at one kind of door.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Outcomes {
    /// The connection could not be opened: refused, reset or timed out at connect.
    pub not_connected: u64,
    /// The door closed it (or we dropped it, for a flood).
    pub closed: u64,
    /// Still open when our patience ran out: the door failed to close it.
    pub left_open: u64,
    /// The slowest close, in milliseconds.
    pub slowest_close_ms: u64,
}

/// What each kind of door did with each kind of attack.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AbuseReport {
    pub doors: BTreeMap<DoorKind, BTreeMap<Attack, Outcomes>>,
}

impl AbuseReport {
    /// Attacks every door closed: nothing was left open.
    pub fn all_closed(&self) -> bool {
        self.doors.values().flat_map(|attacks| attacks.values()).all(|outcome| outcome.left_open == 0)
    }

    /// Attacks made of this kind at this door, however they ended.
    pub fn attempts(&self, door: DoorKind, attack: Attack) -> u64 {
        self.doors
            .get(&door)
            .and_then(|attacks| attacks.get(&attack))
            .map_or(0, |o| o.not_connected + o.closed + o.left_open)
    }

    fn record(&mut self, door: DoorKind, attack: Attack, outcome: Outcome) {
        let outcomes = self.doors.entry(door).or_default().entry(attack).or_default();
        match outcome {
            Outcome::NotConnected => outcomes.not_connected += 1,
            Outcome::Closed(after) => {
                outcomes.closed += 1;
                outcomes.slowest_close_ms = outcomes.slowest_close_ms.max(after.as_millis() as u64);
            }
            Outcome::LeftOpen => outcomes.left_open += 1,
        }
    }
}

enum Outcome {
    NotConnected,
    Closed(Duration),
    LeftOpen,
}

/// Runs `plan` to its end and reports.
pub async fn run(plan: AbusePlan) -> AbuseReport {
    let end = Instant::now() + plan.duration;
    let (sender, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for target in plan.targets.iter().copied() {
        for attacker in 0..plan.attackers_per_port {
            let (sender, sources, patience) = (sender.clone(), Sources(plan.attack_sources.clone()), plan.patience);
            tasks.spawn(async move {
                let attacks = Attack::TURNS.iter().filter(|attack| attack.applies_to(target.door));
                for (turn, &attack) in attacks.cycle().enumerate().skip(attacker) {
                    if Instant::now() >= end {
                        break;
                    }
                    let outcome = attack_once(target, sources.nth(turn), attack, patience).await;
                    let _ = sender.send((target.door, attack, outcome));
                }
            });
        }
        if plan.floods_per_sec > 0 {
            let (sender, sources) = (sender.clone(), Sources(plan.flood_sources.clone()));
            tasks.spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(1) / plan.floods_per_sec);
                let mut turn = 0;
                while every.tick().await < end {
                    turn += 1;
                    let outcome = attack_once(target, sources.nth(turn), Attack::Flood, plan.patience).await;
                    let _ = sender.send((target.door, Attack::Flood, outcome));
                }
            });
        }
    }
    drop(sender);
    let mut report = AbuseReport::default();
    while let Some((door, attack, outcome)) = outcomes.recv().await {
        report.record(door, attack, outcome);
    }
    tasks.join_all().await;
    report
}

/// Local addresses to connect from, taken in turn; none lets the system choose.
struct Sources(Vec<IpAddr>);

impl Sources {
    fn nth(&self, turn: usize) -> Option<IpAddr> {
        self.0.get(turn.checked_rem(self.0.len())?).copied()
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

async fn connect(address: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(from) = from {
        socket.bind(SocketAddr::new(from, 0))?;
    }
    tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(address))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

async fn attack_once(target: Target, from: Option<IpAddr>, attack: Attack, patience: Duration) -> Outcome {
    let started = Instant::now();
    let Ok(mut stream) = connect(target.address, from).await else { return Outcome::NotConnected };
    let deadline = started + patience;
    let closed = match attack {
        // Dropped as soon as it is open.
        Attack::Flood => return Outcome::Closed(Duration::ZERO),
        Attack::Garbage => {
            let len = rand::rng().random_range(1..=4096);
            let garbage: Vec<u8> = (0..len).map(|_| rand::random()).collect();
            send_then_wait(&mut stream, &garbage, deadline).await
        }
        Attack::HugeLength => send_then_wait(&mut stream, &[0xff; 4], deadline).await,
        Attack::HalfFrame => {
            let mut half = vec![0, 0, 0x10, 0];
            half.extend((0..100).map(|_| rand::random::<u8>()));
            send_then_wait(&mut stream, &half, deadline).await
        }
        Attack::SlowlorisBeforeHandshake => dribble(&mut stream, &[0, 0, 0, 0x40], deadline).await,
        Attack::SlowlorisAfterHandshake => {
            let hello = frame(&Hello::new(Role::Client));
            match stream.write_all(&hello).await {
                Ok(()) => {
                    // The proxy's answers (welcome, updates) are read and ignored meanwhile.
                    dribble(&mut stream, &[0, 0, 0, 0x40], deadline).await
                }
                Err(_) => true,
            }
        }
        Attack::PlainFakeServer => {
            send_then_wait(&mut stream, &frame(&Hello::new(Role::Server(ServerId(1)))), deadline).await
        }
        Attack::PlainFakeProxy => {
            send_then_wait(&mut stream, &frame(&Hello::new(Role::Proxy(ProxyId(1)))), deadline).await
        }
        Attack::WrongSecret => {
            let guessed = ClusterSecret::generate().expect("the system has randomness");
            let door = Door::Members { secret: &guessed, cluster: target.cluster, side: Side::Dialer };
            let opened = tokio::time::timeout_at(
                deadline,
                Link::<PeerMessage>::open(stream, door, Hello::new(Role::Server(ServerId(1))), None),
            )
            .await;
            // A door that let a guessed secret through is as bad as one that never closed.
            matches!(opened, Ok(Err(_)))
        }
    };
    if closed { Outcome::Closed(started.elapsed()) } else { Outcome::LeftOpen }
}

fn frame(message: &impl Serialize) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(message, &mut buf).expect("a hello encodes");
    buf.to_vec()
}

/// Writes `bytes`, then reads (and ignores) whatever comes until the door closes the
/// connection (true) or `deadline` passes (false).
async fn send_then_wait(stream: &mut TcpStream, bytes: &[u8], deadline: Instant) -> bool {
    if stream.write_all(bytes).await.is_err() {
        return true;
    }
    closed_by(stream, deadline).await
}

/// Writes `start`, then one more byte a second, until the door closes the connection
/// (true) or `deadline` passes (false).
async fn dribble(stream: &mut TcpStream, start: &[u8], deadline: Instant) -> bool {
    if stream.write_all(start).await.is_err() {
        return true;
    }
    loop {
        let next_byte = Instant::now() + Duration::from_secs(1);
        if closed_by(stream, next_byte.min(deadline)).await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        if stream.write_all(&[1]).await.is_err() {
            return true;
        }
    }
}

/// Reads and ignores until the connection ends (true) or `until` (false).
async fn closed_by(stream: &mut TcpStream, until: Instant) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut sink)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}
