//! Players' updates and inputs by datagram, the proxy's end
//! (`tessera_shared::protocol::datagram`): one UDP socket on the port number of the
//! players' listener, what it receives, read on a beat ([`READ_EVERY`]) a batch a
//! system call (binds, each a tag the routing table knows; and inputs, from the
//! address a tag is bound to; anything else dropped unread), and the update datagrams
//! the routing table sends on it ([`UpdateDatagrams`]), many to a system call.
//!
//! Nothing waits for room: an update the socket will not take now is dropped and
//! counted, and its player, finding it missing, asks for a full one. A proxy whose
//! port cannot be had for UDP sends every update by TCP, as it does to players that
//! never bind (their UDP does not pass) and to those whose bind lapsed; and their
//! inputs come by their links.

use crate::routing::{InputsTaken, Routing};
use crate::stats::ProxyStats;
use bytes::Bytes;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tessera_shared::link::arrival::{DatagramDrain, Received, bind_unwatched};
use tessera_shared::protocol::ProxyToClient;
use tessera_shared::protocol::datagram::{DatagramTag, MAX_INPUTS_DATAGRAM_LEN, read_inputs, split_tag, write_update};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The proxy's UDP socket for players' updates.
pub type UpdateSocket = Arc<UdpSocket>;

/// Datagrams read a system call at most.
const BATCH: usize = 64;

/// Batches read at most before the proxy's other work has its turn: a flood waits in
/// the socket's buffer (and past it, is dropped) rather than holding a thread.
const MOST_BATCHES_A_READ: usize = 16;

/// How often the proxy reads its players' datagrams while they come: all that wait, on
/// a beat, rather than each as it arrives. Woken for each, a proxy of thousands of
/// players woke thousands of times a second to forward one key press each time, and a
/// player's host on the same machine (a swarm's) paid for each wake-up in its own send
/// (BENCHMARKS.md). A press waits a millisecond or so on average for it, against a
/// server's tick of 50. A beat that finds none ends the beats: the proxy sleeps until
/// the next datagram, read as it arrives, so that an idle proxy is not woken for
/// nothing, and a few players' presses wait for no beat.
pub const READ_EVERY: Duration = Duration::from_millis(2);

/// The receive buffer asked for the players' datagrams. Their key presses wait there
/// whenever the proxy's threads are busy elsewhere for a moment, each a kilobyte or so
/// of the kernel's accounting however short: at Linux's default of some 200 KB, a proxy
/// of 5,000 players overflowed in a hitch of a few tens of milliseconds, and every press
/// dropped there came again by its link a second later, late for its tick, its player's
/// clock slipping for it (BENCHMARKS.md). Asked for, not promised: the host caps it
/// (`net.core.rmem_max` on Linux, see docs/hosting.md).
const RECEIVE_BUFFER: usize = 4 << 20;

/// A UDP socket on `addr`, the players' listener's address; `None`, said in the log,
/// if it cannot be had: players are then sent everything by TCP.
pub fn open(addr: SocketAddr) -> Option<UpdateSocket> {
    match bind_unwatched(addr, RECEIVE_BUFFER) {
        Ok((socket, buffer)) => {
            info!("sending players their updates by datagram from udp {addr} ({} KiB to receive in)", buffer >> 10);
            Some(Arc::new(socket))
        }
        Err(error) => {
            warn!("players get their updates by TCP only: cannot bind udp {addr}: {error}");
            None
        }
    }
}

/// Receives players' datagrams on `socket` until `shutdown`, all that wait at each
/// read (up to [`MOST_BATCHES_A_READ`]), a batch a system call: binds, binding each
/// live tag's player to the address it came from, and inputs, forwarded to their
/// players' servers. Read every [`READ_EVERY`] while they come, and as the next arrives
/// once none did (on a beat throughout where the socket cannot be watched).
pub async fn receive(socket: UpdateSocket, routing: Arc<Routing>, shutdown: CancellationToken) {
    let mut drain = DatagramDrain::new(socket);
    // A byte more than the longest datagram a player sends: a longer one fills it, and
    // is refused.
    let mut buffers = vec![vec![0; MAX_INPUTS_DATAGRAM_LEN + 1]; BATCH];
    let mut rooms: Vec<&mut [u8]> = buffers.iter_mut().map(Vec::as_mut_slice).collect();
    let mut got = [Received::default(); BATCH];
    let mut watch = true;
    loop {
        let (mut read, mut failed) = (0, false);
        for _ in 0..MOST_BATCHES_A_READ {
            match drain.drain(&mut rooms, &mut got) {
                Ok(batch) => {
                    for (room, received) in rooms.iter().zip(&got[..batch]) {
                        take(&routing, &room[..received.len], received.from);
                    }
                    read += batch;
                    if batch < BATCH {
                        break;
                    }
                }
                // An ICMP error for an update sent to a player gone since: nothing to do.
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(error) => {
                    warn!("receiving players' datagrams: {error}");
                    failed = true;
                    break;
                }
            }
        }
        let wait = if failed { Duration::from_millis(100) } else { READ_EVERY };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait), if failed || read > 0 || !watch => {}
            arrived = drain.arrival(READ_EVERY), if !failed && read == 0 && watch => {
                if let Err(error) = arrived {
                    warn!("players' datagrams are read every {READ_EVERY:?} from now on, even when none come: {error}");
                    watch = false;
                }
            }
        }
    }
}

/// Takes one datagram a player sent from `from`: a bind, or inputs. One that is
/// neither, from nowhere its tag is bound to, or past its player's rate, is counted and
/// dropped; inputs that cannot be its player's (they do not decode, or break the gate)
/// end its session.
fn take(routing: &Routing, datagram: &[u8], from: Option<SocketAddr>) {
    let stats = &routing.stats;
    ProxyStats::add(&stats.clients.bytes_in, datagram.len() as u64);
    let taken = match (from, DatagramTag::of_bind(datagram), split_tag(datagram)) {
        (Some(from), Some(tag), _) => routing.bind_datagrams(tag, from),
        (Some(from), None, Some((tag, body))) => match routing.inputs_by_datagram(tag, from, read_inputs(body)) {
            InputsTaken::Forwarded(inputs) => {
                ProxyStats::add(&stats.inputs_by_datagram, inputs as u64);
                true
            }
            InputsTaken::Stranger | InputsTaken::OverRate => false,
            InputsTaken::Refused(user, session, violation) => {
                debug!("{user} sent {} bytes of inputs by datagram: {violation}", datagram.len());
                routing.end(user, Some(session), ProxyToClient::Disconnect { reason: violation.to_string() });
                true
            }
        },
        _ => false,
    };
    if !taken {
        ProxyStats::add(&stats.strange_datagrams, 1);
        debug!("dropped a datagram of {} bytes from {from:?}: no live bind, or past its rate", datagram.len());
    }
}

/// Update datagrams the routing table chose under its lock, sent after it
/// ([`UpdateDatagrams::send`]).
#[derive(Debug, Default)]
pub struct UpdateDatagrams {
    pending: Vec<(SocketAddr, DatagramTag, u8, Bytes)>,
}

impl UpdateDatagrams {
    /// Queues `frame`, a server's encoded update frame, for `to` marked with `tag`, sent
    /// after `by_link` updates by the player's link.
    pub fn push(&mut self, to: SocketAddr, tag: DatagramTag, by_link: u8, frame: Bytes) {
        self.pending.push((to, tag, by_link, frame));
    }

    /// Sends what was queued on `socket`, counting into `stats`: those the socket has
    /// no room for now, or refuses, are dropped (their players ask for full updates).
    pub fn send(self, socket: &UdpSocket, stats: &ProxyStats) {
        if self.pending.is_empty() {
            return;
        }
        // Each written after the last into one buffer: one allocation for them all.
        let mut written = Written::default();
        for (to, tag, by_link, frame) in &self.pending {
            // The routing table queued only updates that fit.
            if write_update(*tag, *by_link, frame, &mut written.bytes) {
                written.datagrams.push((*to, written.bytes.len()));
            }
        }
        let sent = send_written(socket, &written);
        ProxyStats::add(&stats.datagrams_to_clients, sent.datagrams as u64);
        let dropped = written.datagrams.len().saturating_sub(sent.datagrams);
        ProxyStats::add(&stats.datagrams_dropped, dropped as u64);
        stats.clients.bytes_out.fetch_add(sent.bytes as u64, Ordering::Relaxed);
    }
}

/// Datagrams written one after another: the bytes of all, and each one's address and
/// where it ends in them.
#[derive(Debug, Default)]
struct Written {
    bytes: Vec<u8>,
    datagrams: Vec<(SocketAddr, usize)>,
}

impl Written {
    /// Each datagram's address and bytes, in order.
    fn each(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        let starts = std::iter::once(0).chain(self.datagrams.iter().map(|&(_, end)| end));
        self.datagrams.iter().zip(starts).map(|(&(to, end), start)| (to, &self.bytes[start..end]))
    }
}

/// What went: datagrams and their bytes.
#[derive(Debug, Default)]
struct Sent {
    datagrams: usize,
    bytes: usize,
}

/// Datagrams a system call sends at most.
#[cfg(target_os = "linux")]
const DATAGRAMS_A_CALL: usize = 64;

/// Sends `written` on `socket`, [`DATAGRAMS_A_CALL`] to a system call (`sendmmsg`),
/// straight to the kernel rather than through tokio's idea of the socket's readiness:
/// what it has no room for fails at once, and is dropped. A datagram refused for
/// itself (its address unreachable) is skipped, and the rest go on.
#[cfg(target_os = "linux")]
fn send_written(socket: &UdpSocket, written: &Written) -> Sent {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let all: Vec<(SockaddrStorage, &[u8])> = written.each().map(|(to, bytes)| (to.into(), bytes)).collect();
    let mut sent = Sent::default();
    let mut next = 0;
    while next < all.len() {
        let batch = &all[next..(next + DATAGRAMS_A_CALL).min(all.len())];
        let slices: Vec<[IoSlice; 1]> = batch.iter().map(|(_, bytes)| [IoSlice::new(bytes)]).collect();
        let addresses: Vec<Option<SockaddrStorage>> = batch.iter().map(|(to, _)| Some(*to)).collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(batch.len(), None);
        let flags = MsgFlags::MSG_DONTWAIT;
        match sendmmsg(socket.as_raw_fd(), &mut headers, &slices, &addresses, [], flags).map(Iterator::count) {
            Ok(went) => {
                sent.datagrams += went;
                sent.bytes += batch[..went.min(batch.len())].iter().map(|(_, bytes)| bytes.len()).sum::<usize>();
                // Fewer than asked: the next is refused, and says why next time.
                next += went.max(1);
            }
            Err(Errno::EAGAIN | Errno::ENOBUFS) => return sent,
            Err(error) => {
                debug!("an update datagram to {:?}: {error}", batch[0].0);
                next += 1;
            }
        }
    }
    sent
}

/// Sends `written` on `socket`, a system call each.
#[cfg(not(target_os = "linux"))]
fn send_written(socket: &UdpSocket, written: &Written) -> Sent {
    let mut sent = Sent::default();
    for (to, bytes) in written.each() {
        match socket.send_to(bytes, to) {
            Ok(len) => (sent.datagrams, sent.bytes) = (sent.datagrams + 1, sent.bytes + len),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return sent,
            Err(error) => debug!("an update datagram to {to}: {error}"),
        }
    }
    sent
}
