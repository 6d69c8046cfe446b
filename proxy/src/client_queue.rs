//! What goes to one player: written straight to its socket by whoever has it to send
//! (the routing of a server's frames, the proxy's own messages), and queued only while
//! the socket is full. A frame per player per tick is the proxy's whole job, so the
//! common case costs one `write` and nothing else: no channel, no task woken, no timer.
//! The player's writer task ([`ClientSink::write_to`]) wakes only to drain what the
//! socket would not take, and once a second to send a heartbeat if nothing went out,
//! by the link or by datagram.
//!
//! What waits is bounded in bytes as well as in frames: a server's frame can be large,
//! so a bound in frames alone would let a player that stops reading pin down far more
//! memory than any player needs. A frame that would take the waiting bytes past the
//! budget is refused, and the routing table disconnects that player, and only it, as
//! not reading. So a player's memory is its budget, plus one frame, plus the socket's
//! buffers.
//!
//! Frames leave in the order they were sent: a frame is written at once only when
//! nothing waits before it, under the player's own lock, which nobody else's send takes.
//! Without a socket (before the player's link hands it over, and in the in-process
//! harness) every frame waits, to be taken by [`ClientSink::next_frame`].

use crate::routing::ToClient;
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tessera_shared::framing::{Heartbeat, Outgoing, WireError, encoded_frame};
use tessera_shared::link::{HEARTBEAT_EVERY, LinkError, WRITE_TIMEOUT};
use tessera_shared::protocol::ProxyToClient;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// The sending end of one player's queue, held by its route. Dropping it lets the
/// player go: what waits is still written, then the connection closes.
#[derive(Debug)]
pub struct ClientQueue {
    shared: Arc<Shared>,
}

/// The writing end of one player's queue: its link's writer, or whoever takes its
/// frames in a harness without sockets.
#[derive(Debug)]
pub struct ClientSink {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer: frames wait, or the queue closed.
    wake: Notify,
    budget: usize,
    /// Whether the player was sent something by other means (an update by datagram)
    /// since the writer last looked: then it needs no heartbeat (see [`State::beat`]).
    /// An atomic, not in `state`, so that an update by datagram takes no lock of the
    /// player's.
    sent_elsewhere: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    /// The player's socket, once its writer has it.
    socket: Option<Arc<OwnedWriteHalf>>,
    /// Where the bytes written are counted.
    written: Option<Arc<AtomicU64>>,
    /// Frames waiting, in order; the first may be partly written.
    waiting: VecDeque<Bytes>,
    /// Bytes of the first waiting frame already written.
    first_written: usize,
    /// Bytes waiting and not yet written, counted against the budget.
    waiting_bytes: usize,
    /// Whether anything was written since the writer last looked: if not, a heartbeat.
    wrote: bool,
    /// The route let the player go: nothing more is taken.
    closed: bool,
    /// The socket failed: the writer ends the link.
    failed: Option<io::ErrorKind>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{waiting} bytes already waiting to be sent, against a limit of {budget}: not reading")]
    OverBudget { waiting: usize, budget: usize },
    #[error("the player's connection is gone")]
    Closed,
    #[error("cannot encode the message: {0}")]
    Encode(#[from] WireError),
}

impl ClientQueue {
    /// A queue holding at most `budget` waiting bytes, and its writing end.
    pub fn channel(budget: usize) -> (Self, ClientSink) {
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            wake: Notify::new(),
            budget,
            sent_elsewhere: AtomicBool::new(false),
        });
        (Self { shared: shared.clone() }, ClientSink { shared })
    }

    /// Writes `message`, or queues it if the socket is full, unless that would take
    /// what waits past the budget. Nothing waiting takes any frame, so a budget
    /// smaller than one frame still lets a reading player play.
    pub fn send(&self, message: ToClient) -> Result<(), QueueError> {
        self.queue(message)?.flush()
    }

    /// Sends the last message the player will get, over budget if need be: one small
    /// message just before the queue is dropped.
    pub fn send_last(&self, message: ProxyToClient) -> Result<(), QueueError> {
        self.shared.push(encode(message.into())?, false)?;
        self.shared.flush()
    }

    /// The player was sent something by other means (an update by datagram): its link
    /// needs no heartbeat.
    pub fn sent_elsewhere(&self) {
        self.shared.sent_elsewhere.store(true, Ordering::Relaxed);
    }

    /// Queues `message` in its turn without writing it yet, as [`Self::send`] would
    /// otherwise, and returns what writes it ([`Flush::flush`]): so a caller holding a
    /// lock that orders what players are sent (the routing table's) writes after
    /// letting go of it.
    pub fn queue(&self, message: ToClient) -> Result<Flush, QueueError> {
        self.shared.push(encode(message)?, true)?;
        Ok(Flush { shared: self.shared.clone() })
    }
}

impl Drop for ClientQueue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

/// Writes what waits for one player; see [`ClientQueue::queue`].
#[derive(Debug)]
pub struct Flush {
    shared: Arc<Shared>,
}

impl Flush {
    pub fn flush(self) -> Result<(), QueueError> {
        self.shared.flush()
    }
}

fn encode(message: ToClient) -> Result<Bytes, QueueError> {
    Ok(match message {
        Outgoing::Encoded(frame) => frame,
        Outgoing::Message(message) => encoded_frame(&message)?,
    })
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves nothing half-done that matters more than
        // the player's connection, which the writer then ends.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts `frame` at the end of what waits, within the budget if asked.
    fn push(&self, frame: Bytes, within_budget: bool) -> Result<(), QueueError> {
        let mut state = self.lock();
        if state.closed || state.failed.is_some() {
            return Err(QueueError::Closed);
        }
        let waiting = state.waiting_bytes;
        if within_budget && waiting > 0 && waiting.saturating_add(frame.len()) > self.budget {
            return Err(QueueError::OverBudget { waiting, budget: self.budget });
        }
        state.waiting_bytes = waiting.saturating_add(frame.len());
        state.waiting.push_back(frame);
        Ok(())
    }

    /// Writes what waits, as much as the socket takes; what it does not take is the
    /// writer's, woken for it. Usually the socket takes it all and nobody is woken.
    fn flush(&self) -> Result<(), QueueError> {
        let mut state = self.lock();
        state.write_waiting();
        if state.failed.is_some() {
            self.wake.notify_one();
            return Err(QueueError::Closed);
        }
        if !state.waiting.is_empty() && state.socket.is_some() {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// Lets go of a player's socket when its writer ends.
struct Detach<'a>(&'a Shared);

impl Drop for Detach<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        (state.socket, state.closed) = (None, true);
    }
}

impl State {
    /// A heartbeat, if nothing was sent since the last look, by the link or by other
    /// means (`elsewhere`: an update by datagram, the player's proof of the proxy's life
    /// as a frame is): written now, and not counted as something written, so that a
    /// quiet player gets one every beat. A link left idle so is watched by its kernel
    /// instead (`crate::client_links`): a host that vanished is noticed as soon.
    fn beat(&mut self, elsewhere: bool) {
        let wrote = std::mem::take(&mut self.wrote);
        if !wrote && !elsewhere && self.waiting.is_empty() {
            self.waiting_bytes += Heartbeat::FRAME.len();
            self.waiting.push_back(Bytes::from_static(&Heartbeat::FRAME));
            self.write_waiting();
            self.wrote = false;
        }
    }

    /// Writes what waits until the socket is full or nothing waits.
    fn write_waiting(&mut self) {
        let Some(socket) = self.socket.clone() else { return };
        while let Some(first) = self.waiting.front() {
            match socket.try_write(&first[self.first_written..]) {
                Ok(written) => {
                    self.wrote = true;
                    if let Some(counter) = &self.written {
                        counter.fetch_add(written as u64, Ordering::Relaxed);
                    }
                    // Written is no longer waiting: the charge goes as the bytes do.
                    self.waiting_bytes = self.waiting_bytes.saturating_sub(written);
                    self.first_written += written;
                    if self.first_written == first.len() {
                        self.first_written = 0;
                        self.waiting.pop_front();
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    self.failed = Some(err.kind());
                    return;
                }
            }
        }
    }
}

impl ClientSink {
    /// Writes this player's frames to `socket` until the queue closes (then once all
    /// that waits is written) or the socket fails or takes nothing for [`WRITE_TIMEOUT`],
    /// adding the bytes written to `written`, with a heartbeat whenever nothing went
    /// out, by the link or by datagram, for [`HEARTBEAT_EVERY`].
    pub async fn write_to(self, socket: OwnedWriteHalf, written: Arc<AtomicU64>) -> Result<(), LinkError> {
        let socket = Arc::new(socket);
        {
            let mut state = self.shared.lock();
            (state.socket, state.written) = (Some(socket.clone()), Some(written));
        }
        // However this ends (the reading half may end the link first, dropping this),
        // nothing more is taken, and the socket closes once the last send holding it is done.
        let _detach = Detach(&self.shared);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let (waiting, closed) = {
                let mut state = self.shared.lock();
                state.write_waiting();
                if let Some(kind) = state.failed {
                    return Err(WireError::Io(kind.into()).into());
                }
                (!state.waiting.is_empty(), state.closed)
            };
            match (waiting, closed) {
                (false, true) => return Ok(()),
                // A player that takes nothing for this long is not reading; one that
                // reads, however slowly, is held to its byte budget instead.
                (true, _) => tokio::time::timeout(WRITE_TIMEOUT, socket.writable())
                    .await
                    .map_err(|_| LinkError::Stalled(WRITE_TIMEOUT))?
                    .map_err(WireError::Io)?,
                (false, false) => tokio::select! {
                    _ = self.shared.wake.notified() => {}
                    _ = heartbeat.tick() => {
                        let elsewhere = self.shared.sent_elsewhere.swap(false, Ordering::Relaxed);
                        self.shared.lock().beat(elsewhere);
                    }
                },
            }
        }
    }

    /// The next frame waiting, in a harness that has no socket.
    pub fn next_frame(&self) -> Option<Bytes> {
        let mut state = self.shared.lock();
        let frame = state.waiting.pop_front()?;
        state.waiting_bytes = state.waiting_bytes.saturating_sub(frame.len());
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    fn frame(len: usize) -> ToClient {
        Outgoing::Encoded(Bytes::from(vec![7; len]))
    }

    #[test]
    fn a_player_sent_nothing_either_way_for_a_beat_gets_a_heartbeat() {
        let mut state = State::default();
        state.beat(true);
        assert!(state.waiting.is_empty(), "an update by datagram is proof of life enough");
        state.wrote = true;
        state.beat(false);
        assert!(state.waiting.is_empty(), "so is a frame");
        state.beat(false);
        assert_eq!(state.waiting.len(), 1, "nothing either way: a heartbeat");
    }

    #[test]
    fn what_waits_is_bounded_in_bytes_and_taken_in_order() {
        let (queue, sink) = ClientQueue::channel(100);
        queue.send(frame(60)).unwrap();
        queue.send(frame(40)).unwrap();
        assert!(matches!(queue.send(frame(1)), Err(QueueError::OverBudget { waiting: 100, budget: 100 })));
        assert_eq!(sink.next_frame().map(|f| f.len()), Some(60));
        queue.send(frame(60)).unwrap();
        assert_eq!(sink.next_frame().map(|f| f.len()), Some(40));
        assert_eq!(sink.next_frame().map(|f| f.len()), Some(60));
        assert_eq!(sink.next_frame(), None);
    }

    #[test]
    fn nothing_waiting_takes_a_frame_larger_than_the_budget() {
        let (queue, _sink) = ClientQueue::channel(10);
        queue.send(frame(50)).unwrap();
        assert!(queue.send(frame(1)).is_err());
        queue.send_last(ProxyToClient::Disconnect { reason: "bye".into() }).unwrap();
        drop(queue);
    }

    /// A connected pair on loopback: the proxy's writing half, and the player's stream.
    async fn connected() -> (OwnedWriteHalf, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let player = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (proxy_side, _) = listener.accept().await.unwrap();
        (proxy_side.into_split().1, player)
    }

    #[tokio::test]
    async fn frames_reach_the_socket_in_order_and_the_link_ends_when_the_route_lets_go() {
        let (socket, mut player) = connected().await;
        let (queue, sink) = ClientQueue::channel(8 << 20);
        queue.send(frame(3)).unwrap(); // before the socket: it waits for the writer
        let counted = Arc::new(AtomicU64::new(0));
        let writer = tokio::spawn(sink.write_to(socket, counted.clone()));
        // The writer takes the socket, writes what waited, and parks: from here on
        // frames go straight to the socket.
        while counted.load(Ordering::Relaxed) < 3 {
            tokio::task::yield_now().await;
        }
        // Far more than a socket's buffers take at once: some must wait, and still
        // arrive whole and in order.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        queue.send(Outgoing::Encoded(Bytes::from(big.clone()))).unwrap();
        queue.send(frame(5)).unwrap();
        drop(queue);
        let mut received = Vec::new();
        player.read_to_end(&mut received).await.unwrap();
        writer.await.unwrap().unwrap();
        let mut want = vec![7; 3];
        want.extend_from_slice(&big);
        want.extend_from_slice(&[7; 5]);
        assert!(received == want, "{} bytes received, {} sent", received.len(), want.len());
        assert_eq!(counted.load(Ordering::Relaxed), want.len() as u64);
    }

    #[tokio::test]
    async fn a_player_that_stops_reading_is_refused_past_its_budget() {
        let (socket, _player) = connected().await;
        let (queue, sink) = ClientQueue::channel(64 * 1024);
        let counted = Arc::new(AtomicU64::new(0));
        let _writer = tokio::spawn(sink.write_to(socket, counted.clone()));
        queue.send(frame(1)).unwrap();
        while counted.load(Ordering::Relaxed) < 1 {
            tokio::task::yield_now().await;
        }
        // The player reads nothing: the socket's buffers fill, then the budget.
        let refused = (0..10_000).find_map(|_| queue.send(frame(16 * 1024)).err());
        assert!(matches!(refused, Some(QueueError::OverBudget { .. })), "{refused:?}");
        let written = counted.load(Ordering::Relaxed);
        assert!(written > 64 * 1024, "the socket took what it could before anything waited: {written} bytes");
    }
}
