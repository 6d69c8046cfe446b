//! What goes to one player: a queue bounded in bytes as well as in messages. A server's
//! frame can be large, so a bound in messages alone would let a player that stops
//! reading pin down far more memory than any player needs. Each frame is charged to the
//! player's budget as it is queued, and the charge is released when the link's writer
//! takes the frame (a [`Charge`] dropped, however the frame leaves: written, or dropped
//! with the connection). A frame that would take the queue past the budget is refused,
//! and the routing table disconnects that player, and only it, as not reading.
//!
//! The queue holds frames only: the proxy's own messages are encoded as they are queued,
//! so each is charged its exact size, and servers' frames go through untouched. The
//! bytes in the link's writer after that are bounded by the codec (it flushes past a few
//! KiB), so a player's memory is its budget, plus one frame, plus the socket's buffers.

use crate::routing::ToClient;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_shared::framing::{Outgoing, WireCodec, WireError, encoded_frame};
use tessera_shared::link::{Outbound, SendError};
use tessera_shared::protocol::ProxyToClient;
use tokio::sync::mpsc;
use tokio_util::codec::Encoder;

/// The sending end of one player's queue; [`Link::run`](tessera_shared::link::Link::run)
/// takes the receiving end.
#[derive(Debug)]
pub struct ClientQueue {
    outbound: Outbound<QueuedFrame>,
    queued: Arc<AtomicUsize>,
    budget: usize,
}

/// One frame waiting for the player's link, holding its charge on the budget.
#[derive(Debug)]
pub struct QueuedFrame {
    frame: Bytes,
    charge: Charge,
}

/// Bytes charged to one queue, given back when dropped.
#[derive(Debug)]
struct Charge {
    bytes: usize,
    queued: Arc<AtomicUsize>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{queued} bytes already waiting to be sent, against a limit of {budget}: not reading")]
    OverBudget { queued: usize, budget: usize },
    #[error(transparent)]
    Link(#[from] SendError),
    #[error("cannot encode the message: {0}")]
    Encode(#[from] WireError),
}

impl ClientQueue {
    /// A queue holding at most `budget` bytes, and its receiving end.
    pub fn channel(budget: usize) -> (Self, mpsc::Receiver<QueuedFrame>) {
        let (outbound, queue) = Outbound::channel();
        (Self { outbound, queued: Arc::default(), budget }, queue)
    }

    /// Queues `message` without waiting, unless it would take the queue past its budget.
    /// An empty queue takes any frame, so a budget smaller than one frame still lets a
    /// reading player play.
    pub fn send(&self, message: ToClient) -> Result<(), QueueError> {
        self.push(message, true)
    }

    /// Queues the last message the player will get, over budget if need be: one small
    /// message just before the queue is dropped.
    pub fn send_last(&self, message: ProxyToClient) -> Result<(), QueueError> {
        self.push(message.into(), false)
    }

    fn push(&self, message: ToClient, within_budget: bool) -> Result<(), QueueError> {
        let frame = match message {
            Outgoing::Encoded(frame) => frame,
            Outgoing::Message(message) => encoded_frame(&message)?,
        };
        let bytes = frame.len();
        let queued = self.queued.fetch_add(bytes, Ordering::Relaxed);
        // Charged at once, so every way out of here gives the bytes back.
        let charge = Charge { bytes, queued: self.queued.clone() };
        if within_budget && queued > 0 && queued.saturating_add(bytes) > self.budget {
            return Err(QueueError::OverBudget { queued, budget: self.budget });
        }
        Ok(self.outbound.send(QueuedFrame { frame, charge })?)
    }

    /// Bytes queued and not yet taken by the link's writer.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

impl QueuedFrame {
    /// The frame as it goes on the wire, length prefix and all.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

impl<In> Encoder<QueuedFrame> for WireCodec<In> {
    type Error = WireError;

    fn encode(&mut self, queued: QueuedFrame, dst: &mut BytesMut) -> Result<(), WireError> {
        let QueuedFrame { frame, charge } = queued;
        let written = Encoder::<Outgoing<ProxyToClient>>::encode(self, Outgoing::Encoded(frame), dst);
        // The frame is in the writer's buffer now, out of the queue.
        drop(charge);
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_charged_when_queued_and_given_back_when_taken() {
        let (queue, mut receiver) = ClientQueue::channel(100);
        let frame = |len: usize| Outgoing::Encoded(Bytes::from(vec![0; len]));
        queue.send(frame(60)).unwrap();
        queue.send(frame(40)).unwrap();
        assert_eq!(queue.queued_bytes(), 100);
        assert!(matches!(queue.send(frame(1)), Err(QueueError::OverBudget { queued: 100, budget: 100 })));
        assert_eq!(queue.queued_bytes(), 100, "a refused frame is not charged");

        let mut written = BytesMut::new();
        let mut codec = WireCodec::<ProxyToClient>::default();
        codec.encode(receiver.try_recv().unwrap(), &mut written).unwrap();
        assert_eq!((written.len(), queue.queued_bytes()), (60, 40));
        drop(receiver);
        assert_eq!(queue.queued_bytes(), 0, "frames dropped with the connection are given back");
    }

    #[test]
    fn an_empty_queue_takes_a_frame_larger_than_the_budget() {
        let (queue, _receiver) = ClientQueue::channel(10);
        queue.send(Outgoing::Encoded(Bytes::from(vec![0; 50]))).unwrap();
        assert!(queue.send(Outgoing::Encoded(Bytes::from(vec![0; 1]))).is_err());
        queue.send_last(ProxyToClient::Disconnect { reason: "bye".into() }).unwrap();
    }
}
