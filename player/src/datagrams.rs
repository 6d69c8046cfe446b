//! A player's end of its updates by datagram (`tessera_shared::protocol::datagram`): the
//! UDP socket beside its link, the binds that tell the proxy where to send (again every
//! [`BIND_RETRY`] until an update comes by datagram, then every [`BIND_EVERY`], to keep
//! a NAT's mapping open), and what it does when an update is
//! lost: ask once for a full one, and again only if it has not come within
//! [`RESYNC_WAIT`].

use crate::conditioner::{Conditioner, Relay};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tessera_shared::link::Traffic;
use tessera_shared::link::arrival::DatagramReceiver;
use tessera_shared::protocol::PackedUpdate;
use tessera_shared::protocol::datagram::{
    BIND_EVERY, BIND_RETRY, DatagramError, DatagramTag, MAX_UPDATE_DATAGRAM, RESYNC_WAIT, read_update,
};

/// See the module.
#[derive(Debug)]
pub struct UpdateDatagrams {
    receiver: DatagramReceiver,
    tag: DatagramTag,
    /// The conditioner's relay, if the player's link is conditioned: it ends with this.
    _relay: Option<Relay>,
    /// When it last sent a bind.
    bound_at: Instant,
    /// Whether an update came by datagram: the proxy has the player's address.
    flowing: bool,
    /// When a full update was asked for, while one is awaited.
    asked_at: Option<Instant>,
    /// Room for one datagram, and a byte more: one that fills it is too long.
    room: Box<[u8]>,
    traffic: Traffic,
    /// How many times the player found an update lost and asked for a full one.
    pub resyncs: u64,
}

impl UpdateDatagrams {
    /// A socket for the updates the proxy at `proxy` sends by datagram, marked with
    /// `tag`, through the player's `conditioner`, counting into `traffic`; it binds at once.
    pub async fn open(
        proxy: SocketAddr,
        tag: DatagramTag,
        conditioner: Conditioner,
        traffic: &Traffic,
    ) -> io::Result<Self> {
        let (socket, relay) = conditioner.datagrams(proxy).await?;
        let datagrams = Self {
            receiver: DatagramReceiver::new(socket),
            tag,
            _relay: relay,
            bound_at: Instant::now(),
            flowing: false,
            asked_at: None,
            room: vec![0; MAX_UPDATE_DATAGRAM + 1].into_boxed_slice(),
            traffic: traffic.clone(),
            resyncs: 0,
        };
        // The first waits for the socket, whose readiness the runtime learns only now;
        // the rest go as the socket takes them.
        let tag = datagrams.tag.0;
        datagrams.receiver.socket().send(&tag).await?;
        datagrams.traffic.bytes_out.fetch_add(tag.len() as u64, Ordering::Relaxed);
        Ok(datagrams)
    }

    /// Whether updates come by datagram: one has.
    pub fn flowing(&self) -> bool {
        self.flowing
    }

    /// Sends a bind, without waiting: a bind the socket has no room for is as lost as
    /// one the network drops, and the next goes [`BIND_EVERY`] later.
    fn bind(&mut self, now: Instant) {
        self.bound_at = now;
        if self.receiver.socket().try_send(&self.tag.0).is_ok() {
            self.traffic.bytes_out.fetch_add(self.tag.0.len() as u64, Ordering::Relaxed);
        }
    }

    /// Binds again if one is due: [`BIND_RETRY`] after the last while no update came
    /// by datagram, [`BIND_EVERY`] once one has (the proxy lets a bind lapse that is not
    /// renewed, and so may a NAT). Called at every message received, which is several
    /// times a second.
    pub fn keep_bound(&mut self, now: Instant) {
        let every = if self.flowing { BIND_EVERY } else { BIND_RETRY };
        if now.saturating_duration_since(self.bound_at) >= every {
            self.bind(now);
        }
    }

    /// The next update by datagram, and when it arrived, if the kernel said. Datagrams
    /// not marked with the player's tag are dropped unread; one that is and is no update
    /// is an error. A refusal (the proxy has no UDP port open, so a bind was answered by
    /// an ICMP error) is not: the player plays on by its link.
    pub async fn next(&mut self) -> Result<(PackedUpdate, Option<Instant>), DatagramError> {
        loop {
            let received = match self.receiver.recv(&mut self.room).await {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(error) => return Err(error.into()),
            };
            let datagram = &self.room[..received.len];
            if let Some(update) = read_update(self.tag, datagram)? {
                self.traffic.bytes_in.fetch_add(received.len as u64, Ordering::Relaxed);
                self.flowing = true;
                return Ok((update, received.arrived));
            }
        }
    }

    /// An update was lost (the next is out of sequence, or not full after a loss):
    /// whether to ask for a full one now, which is so unless one was asked for within
    /// [`RESYNC_WAIT`].
    pub fn lost(&mut self, now: Instant) -> bool {
        if self.asked_at.is_some_and(|asked| now.saturating_duration_since(asked) < RESYNC_WAIT) {
            return false;
        }
        self.asked_at = Some(now);
        self.resyncs += 1;
        true
    }

    /// A full update came: nothing is awaited.
    pub fn resynced(&mut self) {
        self.asked_at = None;
    }
}
