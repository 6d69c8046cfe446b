//! Players' updates by datagram, the proxy's end (`tessera_shared::protocol::datagram`):
//! one UDP socket on the port number of the players' listener, the binds it receives
//! (each a tag the routing table knows, or dropped unread), and the update datagrams
//! the routing table sends on it ([`UpdateDatagrams`]), a system call for each.
//!
//! Nothing waits for room: an update the socket will not take now is dropped and
//! counted, and its player, finding it missing, asks for a full one. A proxy whose
//! port cannot be had for UDP sends every update by TCP, as it does to players that
//! never bind (their UDP does not pass) and to those whose bind lapsed.

use crate::routing::Routing;
use crate::stats::ProxyStats;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tessera_shared::protocol::datagram::{DatagramTag, TAG_LEN, write_update};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The proxy's UDP socket for players' updates.
pub type UpdateSocket = Arc<UdpSocket>;

/// A UDP socket on `addr`, the players' listener's address; `None`, said in the log,
/// if it cannot be had: players are then sent everything by TCP.
pub async fn open(addr: SocketAddr) -> Option<UpdateSocket> {
    match UdpSocket::bind(addr).await {
        Ok(socket) => {
            info!("sending players their updates by datagram from udp {addr}");
            Some(Arc::new(socket))
        }
        Err(error) => {
            warn!("players get their updates by TCP only: cannot bind udp {addr}: {error}");
            None
        }
    }
}

/// Receives players' binds on `socket` until `shutdown`, binding each live tag's
/// player to the address it came from.
pub async fn receive_binds(socket: UpdateSocket, routing: Arc<Routing>, shutdown: CancellationToken) {
    // A byte more than a bind: a longer datagram fills it, and is no bind.
    let mut room = [0; TAG_LEN + 1];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut room) => received,
        };
        match received {
            Ok((len, from)) => {
                ProxyStats::add(&routing.stats.clients.bytes_in, len as u64);
                match DatagramTag::of_bind(&room[..len]) {
                    Some(tag) if routing.bind_datagrams(tag, from) => {}
                    _ => {
                        ProxyStats::add(&routing.stats.strange_datagrams, 1);
                        debug!("dropped a datagram of {len} bytes from {from}: no live bind");
                    }
                }
            }
            // An ICMP error for an update sent to a player gone since: nothing to do.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(error) => {
                warn!("receiving players' binds: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Update datagrams the routing table chose under its lock, sent after it
/// ([`UpdateDatagrams::send`]).
#[derive(Debug, Default)]
pub struct UpdateDatagrams {
    pending: Vec<(SocketAddr, DatagramTag, Bytes)>,
}

impl UpdateDatagrams {
    /// Queues `frame`, a server's encoded update frame, for `to` marked with `tag`.
    pub fn push(&mut self, to: SocketAddr, tag: DatagramTag, frame: Bytes) {
        self.pending.push((to, tag, frame));
    }

    /// Sends what was queued on `socket`, counting into `stats`: those the socket has
    /// no room for now are dropped (their players ask for full updates).
    pub fn send(self, socket: &UdpSocket, stats: &ProxyStats) {
        if self.pending.is_empty() {
            return;
        }
        let (mut sent, mut dropped, mut bytes) = (0, 0, 0);
        let mut datagram = Vec::with_capacity(tessera_shared::protocol::datagram::MAX_UPDATE_DATAGRAM);
        for (to, tag, frame) in self.pending {
            // The routing table queued only updates that fit.
            if !write_update(tag, &frame, &mut datagram) {
                continue;
            }
            // Straight to the socket, not through tokio's idea of its readiness: a send
            // the kernel has no room for fails at once, and the datagram is dropped.
            match socket2::SockRef::from(socket).send_to(&datagram, &to.into()) {
                Ok(len) => {
                    sent += 1;
                    bytes += len as u64;
                }
                Err(error) => {
                    dropped += 1;
                    if error.kind() != io::ErrorKind::WouldBlock {
                        debug!("an update datagram to {to}: {error}");
                    }
                }
            }
        }
        ProxyStats::add(&stats.datagrams_to_clients, sent);
        ProxyStats::add(&stats.datagrams_dropped, dropped);
        stats.clients.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }
}
