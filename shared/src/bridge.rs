//! The bridge between a tokio runtime on its own threads and Bevy systems. Network
//! tasks push what they receive into a bounded crossbeam channel that a system drains
//! each frame; when the ECS falls behind, the tasks wait (and stop reading their
//! sockets) instead of growing a queue. Systems send through [`crate::link::Outbound`].

use std::time::Duration;

/// How long a network task waits before retrying a full inbox.
const FULL_INBOX_BACKOFF: Duration = Duration::from_millis(1);

/// The receiving half, owned by the ECS.
#[cfg_attr(feature = "ecs", derive(bevy_ecs::resource::Resource))]
pub struct Inbox<T: Send + 'static>(crossbeam_channel::Receiver<T>);

/// The sending half, cloned into every network task.
pub struct InboxSender<T>(crossbeam_channel::Sender<T>);

impl<T> Clone for InboxSender<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// The ECS side is gone (the app shut down).
#[derive(Debug, thiserror::Error)]
#[error("the simulation is no longer running")]
pub struct InboxClosed;

/// An inbox holding at most `capacity` undrained messages.
pub fn inbox<T: Send + 'static>(capacity: usize) -> (InboxSender<T>, Inbox<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    (InboxSender(tx), Inbox(rx))
}

impl<T: Send + 'static> Inbox<T> {
    /// Everything received since the last drain, without blocking.
    pub fn drain(&self) -> crossbeam_channel::TryIter<'_, T> {
        self.0.try_iter()
    }
}

impl<T> InboxSender<T> {
    /// Delivers `message` if the inbox has room now, or gives it back.
    pub fn try_send(&self, message: T) -> Result<(), T> {
        self.0.try_send(message).map_err(|err| err.into_inner())
    }

    /// Delivers `message`, waiting while the inbox is full.
    pub async fn send(&self, mut message: T) -> Result<(), InboxClosed> {
        loop {
            match self.0.try_send(message) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::TrySendError::Full(back)) => {
                    message = back;
                    tokio::time::sleep(FULL_INBOX_BACKOFF).await;
                }
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(InboxClosed),
            }
        }
    }
}

/// The tokio runtime a process runs its network I/O on, beside the Bevy app.
#[cfg_attr(feature = "ecs", derive(bevy_ecs::resource::Resource))]
pub struct NetRuntime(pub tokio::runtime::Runtime);

impl NetRuntime {
    pub fn new(name: &str, worker_threads: usize) -> std::io::Result<Self> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .thread_name(name)
            .enable_all()
            .build()
            .map(Self)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.0.handle()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_inbox_holds_the_sender_until_drained() {
        let runtime = NetRuntime::new("bridge-test", 1).unwrap();
        let (tx, rx) = inbox::<u32>(2);
        let sending = runtime.handle().spawn(async move {
            for i in 0..5 {
                tx.send(i).await.unwrap();
            }
        });
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 5 && std::time::Instant::now() < deadline {
            got.extend(rx.drain());
            assert!(rx.0.len() <= 2);
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        runtime.0.block_on(sending).unwrap();
    }
}
