//! Many players' updates by datagram through one UDP socket: a swarm's bots', where a
//! socket a bot cost each datagram a wake-up and a system call of its own, and the
//! process a file a bot (BENCHMARKS.md). A hub's socket is read a batch at a time
//! (`DatagramReceiver::recv_many`), and each datagram handed to the player whose tag
//! it begins with (`tessera_shared::protocol::datagram`), or dropped unread. Each player
//! binds its own tag from the hub's socket: a proxy sends each tag's updates to where
//! its bind came from, and asks only that it be the host of the player's link. A
//! game's client has a socket of its own ([`crate::datagrams::UpdateDatagrams`]).
//!
//! [`DatagramHubs`] gives out seats, opening a hub when those open are full: as many
//! seats a hub as its socket's receive buffer holds datagrams for
//! ([`BUFFER_A_SEAT`] each, [`MOST_SEATS`] at most), since a burst for all its players
//! waits there until the hub's thread reads it.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tessera_shared::link::arrival::{DatagramReceiver, Received, bind_with_receive_buffer};
use tessera_shared::protocol::datagram::{DatagramTag, MAX_UPDATE_DATAGRAM, TAG_LEN};
use tokio::net::UdpSocket;

/// The receive buffer a hub asks for a seat: a few updates each, the most a crowd's
/// burst brings a player at once while the hub's thread is busy.
const BUFFER_A_SEAT: usize = 8 * 1024;

/// The most seats a hub has, however large a buffer its socket gets.
const MOST_SEATS: usize = 256;

/// The fewest: a host whose buffers are small gets more hubs, not none.
pub const FEWEST_SEATS: usize = 16;

/// Datagrams a hub reads a system call at most.
const BATCH: usize = 64;

/// Datagrams waiting for a player at most: past it (the player does not read), the
/// next is dropped, as a full socket would drop it.
const MOST_WAITING: usize = 64;

/// A datagram handed to a player, and when it reached the host, if the kernel said.
type Delivery = (Vec<u8>, Option<Instant>);

/// The hubs of one runtime (a swarm's shard), each a socket and a task reading it (see
/// the module). A hub's socket belongs to the runtime that opened it: seats are taken
/// on it.
#[derive(Debug, Clone, Default)]
pub struct DatagramHubs(Arc<Mutex<Vec<Arc<Hub>>>>);

impl DatagramHubs {
    /// A seat for the datagrams marked `tag`, on a hub of the address family of
    /// `proxy` (the proxy it binds to) with room for it, or on one opened now.
    pub(crate) fn seat(&self, tag: DatagramTag, proxy: SocketAddr) -> io::Result<Seat> {
        let mut hubs = self.hubs();
        hubs.retain(|hub| !hub.stopped.load(Ordering::Relaxed));
        let family = |hub: &&Arc<Hub>| hub.ipv4 == proxy.is_ipv4();
        let hub = match hubs.iter().filter(family).find(|hub| hub.seats().len() < hub.room) {
            Some(hub) => hub.clone(),
            None => {
                let hub = Hub::open(proxy)?;
                hubs.push(hub.clone());
                hub
            }
        };
        let inbox = Arc::new(Inbox::default());
        let mut seats = hub.seats();
        // Stopped since it was picked: the player finds its datagrams over at once.
        match hub.stopped.load(Ordering::Relaxed) {
            true => inbox.close(),
            false => drop(seats.insert(tag, inbox.clone())),
        }
        drop(seats);
        Ok(Seat { hub, tag, proxy, inbox, last: Vec::new() })
    }

    /// How many players its hubs seat.
    pub fn seated(&self) -> usize {
        self.hubs().iter().map(|hub| hub.seats().len()).sum()
    }

    /// How many sockets its hubs hold open.
    pub fn sockets(&self) -> usize {
        self.hubs().len()
    }

    fn hubs(&self) -> MutexGuard<'_, Vec<Arc<Hub>>> {
        locked(&self.0)
    }
}

/// One socket, the players seated on it, and how many it seats.
#[derive(Debug)]
struct Hub {
    socket: Arc<UdpSocket>,
    seats: Mutex<HashMap<DatagramTag, Arc<Inbox>>>,
    room: usize,
    /// Whether its socket is IPv4's (else IPv6's): a player binds to its proxy from a
    /// socket of the proxy's family.
    ipv4: bool,
    /// Set, under the seats' lock, when its socket failed: it seats nobody more.
    stopped: AtomicBool,
}

impl Hub {
    /// A socket on any address of `proxy`'s family, its buffer as large as the host
    /// lets it be up to [`MOST_SEATS`] seats' worth, and a task on the current runtime
    /// reading it for as long as the runtime runs.
    fn open(proxy: SocketAddr) -> io::Result<Arc<Self>> {
        let any = match proxy {
            SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let (socket, buffer) = bind_with_receive_buffer(any, MOST_SEATS * BUFFER_A_SEAT)?;
        let socket = Arc::new(socket);
        let room = (buffer / BUFFER_A_SEAT).clamp(FEWEST_SEATS, MOST_SEATS);
        tracing::debug!("a datagram hub seats {room} players: its buffer is {buffer} bytes");
        let receiver = DatagramReceiver::new(socket.clone());
        let ipv4 = proxy.is_ipv4();
        let hub = Arc::new(Self { socket, seats: Mutex::default(), room, ipv4, stopped: AtomicBool::new(false) });
        tokio::spawn(hub.clone().read(receiver));
        Ok(hub)
    }

    fn seats(&self) -> MutexGuard<'_, HashMap<DatagramTag, Arc<Inbox>>> {
        locked(&self.seats)
    }

    /// Reads the hub's socket and hands out what it reads, until the socket fails.
    async fn read(self: Arc<Self>, mut receiver: DatagramReceiver) {
        // A byte more than an update datagram: a longer one fills it, and is refused.
        let mut buffers = vec![vec![0; MAX_UPDATE_DATAGRAM + 1]; BATCH];
        let mut rooms: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
        let mut got = [Received::default(); BATCH];
        loop {
            let read = match receiver.recv_many(&mut rooms, &mut got).await {
                Ok(read) => read,
                // An ICMP error for a bind, where the host reports them to a socket
                // that is not connected (Windows): nothing of the socket's own.
                Err(error)
                    if matches!(error.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused) =>
                {
                    continue;
                }
                Err(error) => {
                    // Its players find their datagrams over, and play on by their links.
                    tracing::warn!("a datagram hub stops: {error}");
                    let mut seats = self.seats();
                    self.stopped.store(true, Ordering::Relaxed);
                    seats.drain().for_each(|(_, inbox)| inbox.close());
                    return;
                }
            };
            let seats = self.seats();
            for (room, received) in rooms.iter().zip(&got[..read]) {
                let datagram = &room[..received.len];
                let Some(tag) = datagram.first_chunk::<TAG_LEN>() else { continue };
                if let Some(inbox) = seats.get(&DatagramTag(*tag)) {
                    inbox.deliver((datagram.to_vec(), received.arrived));
                }
            }
        }
    }
}

/// A player's seat on a hub: its datagrams, and the socket to bind from. Given up when
/// dropped.
#[derive(Debug)]
pub(crate) struct Seat {
    hub: Arc<Hub>,
    tag: DatagramTag,
    proxy: SocketAddr,
    inbox: Arc<Inbox>,
    /// The datagram received last, lent out until the next.
    last: Vec<u8>,
}

impl Seat {
    /// Sends `bind` to the proxy, waiting for room.
    pub(crate) async fn send(&self, bind: &[u8]) -> io::Result<()> {
        self.hub.socket.send_to(bind, self.proxy).await.map(drop)
    }

    /// Sends `datagram` (a bind, or inputs) to the proxy if the socket has room now.
    pub(crate) fn try_send(&self, datagram: &[u8]) -> io::Result<()> {
        self.hub.socket.try_send_to(datagram, self.proxy).map(drop)
    }

    /// The next datagram marked with the seat's tag, and when it arrived, if the kernel
    /// said. An error once the hub stopped.
    pub(crate) async fn recv(&mut self) -> io::Result<(&[u8], Option<Instant>)> {
        let next = std::future::poll_fn(|cx| self.inbox.poll_next(cx)).await;
        let (datagram, arrived) = next.ok_or(io::ErrorKind::BrokenPipe)?;
        self.last = datagram;
        Ok((&self.last, arrived))
    }
}

/// A seated player's datagrams waiting to be read, in order, and its task, to wake when
/// one comes: a lock and a queue, where a channel's machinery was 7 % of what the bots
/// cost (BENCHMARKS.md).
#[derive(Debug, Default)]
struct Inbox(Mutex<Waiting>);

#[derive(Debug, Default)]
struct Waiting {
    datagrams: VecDeque<Delivery>,
    reader: Option<Waker>,
    /// The hub stopped: nothing more comes.
    closed: bool,
}

impl Inbox {
    /// Hands `delivery` to the player, and wakes it. Past [`MOST_WAITING`] (the player
    /// does not read), it is dropped, as a full socket would drop it.
    fn deliver(&self, delivery: Delivery) {
        let mut waiting = locked(&self.0);
        if waiting.datagrams.len() < MOST_WAITING {
            waiting.datagrams.push_back(delivery);
        }
        Self::wake(waiting);
    }

    /// Nothing more comes: the player is told when it has read what waits.
    fn close(&self) {
        let mut waiting = locked(&self.0);
        waiting.closed = true;
        Self::wake(waiting);
    }

    /// Wakes the player waiting, if one is, once `waiting`'s lock is let go (so that
    /// its task, woken, does not find it held).
    fn wake(mut waiting: MutexGuard<'_, Waiting>) {
        let reader = waiting.reader.take();
        drop(waiting);
        if let Some(reader) = reader {
            reader.wake();
        }
    }

    /// The next datagram waiting, or `None` once none will come.
    fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut waiting = locked(&self.0);
        if let Some(delivery) = waiting.datagrams.pop_front() {
            return Poll::Ready(Some(delivery));
        }
        if waiting.closed {
            return Poll::Ready(None);
        }
        if !waiting.reader.as_ref().is_some_and(|reader| reader.will_wake(cx.waker())) {
            waiting.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// `lock`'s guard: a panic while holding one cannot leave what it guards half-updated.
fn locked<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.seats().remove(&self.tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn tag(n: u8) -> DatagramTag {
        DatagramTag([n; TAG_LEN])
    }

    /// A datagram marked `tag`, as a proxy's updates begin.
    fn marked(tag: DatagramTag, body: &[u8]) -> Vec<u8> {
        [&tag.0[..], body].concat()
    }

    async fn next(seat: &mut Seat) -> Vec<u8> {
        let (datagram, _) = tokio::time::timeout(PATIENCE, seat.recv()).await.expect("a datagram").unwrap();
        datagram.to_vec()
    }

    #[tokio::test]
    async fn players_on_one_hub_each_get_their_own_datagrams_and_no_stranger_s() {
        let proxy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let hubs = DatagramHubs::default();
        let (mut a, mut b) = (
            hubs.seat(tag(1), proxy.local_addr().unwrap()).unwrap(),
            hubs.seat(tag(2), proxy.local_addr().unwrap()).unwrap(),
        );
        a.send(&tag(1).0).await.unwrap();
        b.try_send(&tag(2).0).unwrap();
        let mut bind = [0; 16];
        let (len, from_a) = proxy.recv_from(&mut bind).await.unwrap();
        assert_eq!(&bind[..len], &tag(1).0, "a's bind");
        let (len, from_b) = proxy.recv_from(&mut bind).await.unwrap();
        assert_eq!((&bind[..len], from_b), (&tag(2).0[..], from_a), "b's bind, from the same socket");

        // A stranger's, one too short to be marked, and one each, interleaved.
        for datagram in
            [marked(tag(9), b"?"), vec![1, 1], marked(tag(2), b"b1"), marked(tag(1), b"a1"), marked(tag(2), b"b2")]
        {
            proxy.send_to(&datagram, from_a).await.unwrap();
        }
        assert_eq!(next(&mut a).await, marked(tag(1), b"a1"));
        assert_eq!(next(&mut b).await, marked(tag(2), b"b1"));
        assert_eq!(next(&mut b).await, marked(tag(2), b"b2"));

        // A seat given up gets nothing more; the others still do.
        drop(a);
        proxy.send_to(&marked(tag(1), b"a2"), from_a).await.unwrap();
        proxy.send_to(&marked(tag(2), b"b3"), from_a).await.unwrap();
        assert_eq!(next(&mut b).await, marked(tag(2), b"b3"));
        assert_eq!(hubs.hubs()[0].seats().len(), 1, "a's seat is free");
    }

    #[tokio::test]
    async fn a_full_hub_opens_another_and_a_player_that_does_not_read_loses_only_its_own() {
        let proxy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = proxy.local_addr().unwrap();
        let hubs = DatagramHubs::default();
        let mut seats: Vec<Seat> = vec![hubs.seat(tag(0), to).unwrap()];
        let room = hubs.hubs()[0].room;
        assert!((FEWEST_SEATS..=MOST_SEATS).contains(&room), "{room} seats");
        seats.extend((1..=room).map(|n| hubs.seat(DatagramTag((n as u64).to_le_bytes()), to).unwrap()));
        assert_eq!(hubs.hubs().len(), 2, "the last seat on a second hub");

        // The first seat reads nothing while more than it may hold come; the second's
        // come all the same, and the first gets as many as it holds.
        let (mut idle, mut reading) = (seats.remove(0), seats.remove(0));
        idle.send(&tag(0).0).await.unwrap();
        let mut bind = [0; TAG_LEN];
        let (_, hub) = proxy.recv_from(&mut bind).await.unwrap();
        for n in 0..MOST_WAITING + 8 {
            proxy.send_to(&marked(tag(0), &n.to_le_bytes()), hub).await.unwrap();
        }
        proxy.send_to(&marked(reading.tag, b"mine"), hub).await.unwrap();
        assert_eq!(next(&mut reading).await, marked(reading.tag, b"mine"));
        for n in 0..MOST_WAITING {
            assert_eq!(next(&mut idle).await, marked(tag(0), &n.to_le_bytes()), "the first {MOST_WAITING}, in order");
        }
        let more = tokio::time::timeout(Duration::from_millis(50), idle.recv()).await;
        assert!(more.is_err(), "the rest were dropped");
    }
}
