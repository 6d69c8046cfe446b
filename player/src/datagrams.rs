//! A player's end of its updates and inputs by datagram
//! (`tessera_shared::protocol::datagram`): the UDP socket beside its link, or a seat on
//! a socket a swarm's bots share ([`crate::datagram_hub`]) ([`UpdateDatagrams`]), the
//! binds that tell the proxy where to send (again every [`BIND_RETRY`] until an update
//! comes by datagram, then every [`BIND_EVERY`], to keep a NAT's mapping open), the
//! player's inputs sent on it once updates come so, datagrams held while an update by
//! the link they overtook is on its way, and when to give up on them (none came within
//! [`DATAGRAM_TRIAL`] of the first bind; no update at all, by either way, for
//! [`DATAGRAM_SILENCE`] while the player's server is there; or the socket failed). An
//! alarm ([`UpdateDatagrams::due_at`]) wakes the player for the binds and the give-up
//! when nothing else does. And what the player does when an update is lost ([`Losses`]):
//! ask once for a full one, and again only at an update that comes after [`RESYNC_WAIT`].

use crate::conditioner::{Conditioner, Relay};
use crate::datagram_hub::{DatagramHubs, Seat};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tessera_shared::link::Traffic;
use tessera_shared::link::arrival::DatagramReceiver;
use tessera_shared::protocol::datagram::{
    BIND_EVERY, BIND_RETRY, DATAGRAM_SILENCE, DATAGRAM_TRIAL, DatagramError, DatagramTag, DatagramUpdate,
    MAX_UPDATE_DATAGRAM, RESYNC_WAIT, read_update, write_inputs,
};
use tessera_shared::protocol::{Input, PackedUpdate};

/// Datagrams held at most while the updates by the link they overtook are on their
/// way: a second's worth at 20 Hz and more. Past it the link's update is taken for
/// lost (it cannot be, but a proxy can count wrong) and what was held goes in turn.
const MOST_HELD: usize = 32;

/// An update, and when it reached the player's host, if the kernel said.
pub type Arrived = (PackedUpdate, Option<Instant>);

/// See the module.
#[derive(Debug)]
pub struct UpdateDatagrams {
    port: Port,
    tag: DatagramTag,
    /// When it first bound, and last.
    first_bound_at: Instant,
    bound_at: Instant,
    /// When an update last came by datagram, once one has: the proxy has the player's
    /// address.
    last_came: Option<Instant>,
    /// When an update last came, by either way.
    last_update: Instant,
    /// Updates received by the link, wrapping: as many as the proxy had sent by it when
    /// it sent a datagram that is in its turn.
    by_link: u8,
    /// Datagrams that overtook an update by the link, in the order they came.
    held: VecDeque<(DatagramUpdate, Option<Instant>)>,
    /// Room to write a datagram of inputs in, kept between them.
    inputs: Vec<u8>,
    traffic: Traffic,
}

/// Where a player's datagrams come in, and its binds go out.
#[derive(Debug)]
enum Port {
    /// A socket of its own, connected to the proxy.
    Own {
        receiver: DatagramReceiver,
        /// Room for one datagram, and a byte more: one that fills it is too long.
        room: Box<[u8]>,
        /// The conditioner's relay, if the player's link is conditioned: it ends with this.
        _relay: Option<Relay>,
    },
    /// A seat on a hub, a socket many players share ([`crate::datagram_hub`]).
    Shared(Seat),
}

impl Port {
    /// A port for the updates the proxy at `proxy` sends marked `tag`, sending the first
    /// bind: a seat on one of `hubs` if given and the link is not conditioned (a
    /// conditioner relays a socket of the player's own), else a socket of its own.
    async fn open(
        proxy: SocketAddr,
        tag: DatagramTag,
        conditioner: Conditioner,
        hubs: Option<&DatagramHubs>,
    ) -> io::Result<Self> {
        // The first bind waits for the socket, whose readiness the runtime learns only
        // now; the rest go as the socket takes them.
        if let Some(hubs) = hubs.filter(|_| !conditioner.is_active()) {
            let seat = hubs.seat(tag, proxy)?;
            seat.send(&tag.0).await?;
            return Ok(Self::Shared(seat));
        }
        let (socket, relay) = conditioner.datagrams(proxy).await?;
        socket.send(&tag.0).await?;
        let room = vec![0; MAX_UPDATE_DATAGRAM + 1].into_boxed_slice();
        Ok(Self::Own { receiver: DatagramReceiver::new(socket), room, _relay: relay })
    }

    /// Sends `datagram` (a bind, or inputs) if the socket has room for it now.
    fn try_send(&self, datagram: &[u8]) -> io::Result<()> {
        match self {
            Self::Own { receiver, .. } => receiver.socket().try_send(datagram).map(drop),
            Self::Shared(seat) => seat.try_send(datagram),
        }
    }

    /// The next datagram, and when it arrived, if the kernel said.
    async fn recv(&mut self) -> io::Result<(&[u8], Option<Instant>)> {
        match self {
            Self::Own { receiver, room, .. } => {
                let received = receiver.recv(room).await?;
                Ok((&room[..received.len], received.arrived))
            }
            Self::Shared(seat) => seat.recv().await,
        }
    }
}

impl UpdateDatagrams {
    /// A socket for the updates the proxy at `proxy` sends by datagram, marked with
    /// `tag`, through the player's `conditioner` (or a seat on one of `hubs`, see
    /// [`Port::open`]), counting into `traffic`; it binds at once.
    pub async fn open(
        proxy: SocketAddr,
        tag: DatagramTag,
        conditioner: Conditioner,
        hubs: Option<&DatagramHubs>,
        traffic: &Traffic,
    ) -> io::Result<Self> {
        let port = Port::open(proxy, tag, conditioner, hubs).await?;
        traffic.bytes_out.fetch_add(tag.0.len() as u64, Ordering::Relaxed);
        let now = Instant::now();
        Ok(Self {
            port,
            tag,
            first_bound_at: now,
            bound_at: now,
            last_came: None,
            last_update: now,
            by_link: 0,
            held: VecDeque::new(),
            inputs: Vec::new(),
            traffic: traffic.clone(),
        })
    }

    /// Sends `inputs` (consecutive, the latest last) to the proxy, if the socket has room
    /// for them now: whether they went.
    pub fn send_inputs(&mut self, inputs: &[Input]) -> bool {
        self.inputs.clear();
        write_inputs(self.tag, inputs, &mut self.inputs).is_ok() && self.try_send(&self.inputs)
    }

    /// Sends `datagram` (a bind, or inputs) if the socket has room for it now, counting
    /// its bytes out if it went: whether it did.
    fn try_send(&self, datagram: &[u8]) -> bool {
        let sent = self.port.try_send(datagram).is_ok();
        if sent {
            self.traffic.bytes_out.fetch_add(datagram.len() as u64, Ordering::Relaxed);
        }
        sent
    }

    /// Whether to send the player's inputs this way at `now`: an update came by datagram
    /// within [`DATAGRAM_SILENCE`], so the proxy has the player's address bound.
    pub fn takes_inputs(&self, now: Instant) -> bool {
        self.last_came.is_some_and(|came| now.saturating_duration_since(came) < DATAGRAM_SILENCE)
    }

    /// Whether updates come by datagram: one has.
    pub fn flowing(&self) -> bool {
        self.last_came.is_some()
    }

    /// Binds again if one is due: [`BIND_RETRY`] after the last while no update came
    /// by datagram, [`BIND_EVERY`] once one has (the proxy lets a bind lapse that is not
    /// renewed, and so may a NAT). A bind the socket has no room for is as lost as one
    /// the network drops.
    pub fn keep_bound(&mut self, now: Instant) {
        if now >= self.bind_due() {
            self.bound_at = now;
            self.try_send(&self.tag.0);
        }
    }

    fn bind_due(&self) -> Instant {
        self.bound_at + if self.flowing() { BIND_EVERY } else { BIND_RETRY }
    }

    /// When [`Self::failing`] may next say so, while the player's server is there (when
    /// its region is offline, updates stop by every way, and nothing fails).
    fn give_up_due(&self) -> Instant {
        match self.last_came {
            None => self.first_bound_at + DATAGRAM_TRIAL,
            Some(_) => self.last_update + DATAGRAM_SILENCE,
        }
    }

    /// Whether to give up on updates by datagram at `now`: none came within
    /// [`DATAGRAM_TRIAL`] of the first bind (or of the region's coming back), or no update
    /// at all came for [`DATAGRAM_SILENCE`] since some did, while the player's server is
    /// there (a server sends each of its players an update every few ticks; updates too
    /// big for a datagram come by the link meanwhile).
    pub fn failing(&self, now: Instant, region_offline: bool) -> bool {
        !region_offline && now >= self.give_up_due()
    }

    /// When a bind is due, or giving up on datagrams may be (the trial is over, or
    /// updates stopped coming for [`DATAGRAM_SILENCE`]): a player that hears nothing else
    /// binds all the same, and gives up on datagrams then (asking [`Self::failing`]),
    /// within its link's silence limit, since its proxy writes nothing on the link while
    /// it sends updates by datagram. While the player's region is offline, only binds are
    /// due.
    pub fn due_at(&self, region_offline: bool) -> Instant {
        if region_offline { self.bind_due() } else { self.bind_due().min(self.give_up_due()) }
    }

    /// The player's region went offline, or came back: what came before says nothing of
    /// what comes now, and the trial begins again.
    pub fn start_again(&mut self, now: Instant) {
        (self.first_bound_at, self.last_came, self.last_update) = (now, None, now);
    }

    /// An update came by the link.
    pub fn came_by_link(&mut self) {
        self.by_link = self.by_link.wrapping_add(1);
        self.last_update = Instant::now();
    }

    /// The datagram held longest, if its turn has come (every update by the link it
    /// overtook is in).
    pub fn in_turn(&mut self) -> Option<Arrived> {
        let (first, _) = self.held.front()?;
        if self.overtook(first) {
            return None;
        }
        self.held.pop_front().map(|(datagram, at)| (datagram.update, at))
    }

    /// Whether `datagram` was sent after updates by the link that are not in yet (its
    /// count is ahead of the player's by less than half the wrap; one behind came late,
    /// and goes in turn to be found stale).
    fn overtook(&self, datagram: &DatagramUpdate) -> bool {
        (1..128).contains(&datagram.by_link.wrapping_sub(self.by_link))
    }

    /// The next update by datagram in its turn, and when it arrived, if the kernel said;
    /// one that overtook an update by the link is held meanwhile. Datagrams not marked
    /// with the player's tag are dropped unread; one that is and is no update is the
    /// proxy's error. An error of the socket's is `DatagramError::Io`: the player gives
    /// up on datagrams and plays on by its link. (An ICMP error for a bind, from a
    /// proxy that takes no datagrams or a firewall that refuses them, seldom shows
    /// here: the next bind's send takes it, and the trial ends it. A hub's socket, not
    /// connected, hears none on Linux.)
    pub async fn next(&mut self) -> Result<Arrived, DatagramError> {
        loop {
            let (received, arrived) = self.port.recv().await?;
            let len = received.len();
            let Some(datagram) = read_update(self.tag, received)? else { continue };
            self.traffic.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
            let now = Instant::now();
            (self.last_came, self.last_update) = (Some(now), now);
            if !self.overtook(&datagram) {
                // In its turn, or late (and found stale): before any held, which came later.
                return Ok((datagram.update, arrived));
            }
            self.held.push_back((datagram, arrived));
            if self.held.len() > MOST_HELD {
                // The proxy's count and the player's parted: take its count, and the
                // rest go in turn after the first.
                let (first, at) = self.held.pop_front().expect("more than none are held");
                self.by_link = first.by_link;
                return Ok((first.update, at));
            }
        }
    }
}

/// The updates a player found lost, and the full one it asked for.
#[derive(Debug, Default)]
pub struct Losses {
    /// How many times the player found an update lost (or all those sent by datagram,
    /// giving up on them) and asked for a full one.
    pub count: u64,
    /// When a full update was asked for, while one is awaited.
    asked_at: Option<Instant>,
}

impl Losses {
    /// Whether a full update is awaited: until it comes, what comes means nothing.
    pub fn awaiting(&self) -> bool {
        self.asked_at.is_some()
    }

    /// An update was lost (the next is out of sequence, or not full after a loss), or
    /// the updates sent by datagram were: whether to ask for a full one now, which is so
    /// unless one was asked for within [`RESYNC_WAIT`].
    pub fn lost(&mut self, now: Instant) -> bool {
        if self.asked_at.is_some_and(|asked| now.saturating_duration_since(asked) < RESYNC_WAIT) {
            return false;
        }
        self.asked_at = Some(now);
        self.count += 1;
        true
    }

    /// A full update came: nothing is awaited.
    pub fn made_good(&mut self) {
        self.asked_at = None;
    }
}
