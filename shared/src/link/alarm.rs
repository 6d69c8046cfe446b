//! An alarm for a silence: it rings once nothing happened for a while, as a link's peer
//! is gone when nothing was heard for five seconds, and a heartbeat is due when nothing
//! was sent for one. Each frame breaks the silence without touching a timer: the alarm
//! is set once, rings at the end of the silence it was set for, and if the silence was
//! broken since, is set again for the end of the new one. A timeout per wait instead
//! registers with the runtime's timer wheel and leaves it again at every frame:
//! thousands of times a second in a swarm of bots, each a trip through state every task
//! shares.

use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// An alarm for a time that only moves later while it is waited for: set once, moved
/// sooner at once, but later only when it rings, so that a time moved on at every
/// frame costs no trip through the timer wheel. The one timer beneath a [`Silence`],
/// and beneath a player's wait for whichever of its timers is due first.
#[derive(Debug, Default)]
pub struct Alarm {
    /// Unset until first waited on.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Alarm {
    /// Returns at `at`. Cancel-safe: a wait dropped leaves the alarm set.
    pub async fn ring_at(&mut self, at: Instant) {
        let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if at < sleep.deadline() {
            sleep.as_mut().reset(at);
        }
        loop {
            sleep.as_mut().await;
            if sleep.deadline() >= at {
                return;
            }
            sleep.as_mut().reset(at);
        }
    }
}

/// See the module.
#[derive(Debug)]
pub struct Silence {
    limit: Duration,
    /// When it was last broken (or began).
    since: Instant,
    alarm: Alarm,
}

impl Silence {
    /// A silence beginning now, that lasts once nothing happens for `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit, since: Instant::now(), alarm: Alarm::default() }
    }

    /// How long a silence lasts.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// When the silence lasts its limit, unless broken before.
    pub fn ends(&self) -> Instant {
        self.since + self.limit
    }

    /// Something happened: the silence begins again, with no timer work.
    pub fn broken(&mut self) {
        self.since = Instant::now();
    }

    /// Returns once nothing happened for the limit. Cancel-safe: a wait dropped leaves
    /// the alarm set. (Broken only ever later, so the end only ever moves on.)
    pub async fn lasted(&mut self) {
        let end = self.ends();
        self.alarm.ring_at(end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silence_lasts_its_limit_from_when_it_was_last_broken() {
        let ms = Duration::from_millis(1);
        let start = Instant::now();
        let mut silence = Silence::new(50 * ms);
        // Waited on and dropped, as a read that won the race drops it (on a busy
        // machine the wait may also have ended: either way the alarm stays set).
        let _ = tokio::time::timeout(10 * ms, silence.lasted()).await;
        tokio::time::sleep(30 * ms).await;
        let broken = Instant::now();
        silence.broken();
        // The alarm rings at 50 ms, finds the silence broken since, and waits on.
        silence.lasted().await;
        assert!(Instant::now() >= broken + 50 * ms, "{:?} after it was broken", broken.elapsed());
        assert!(broken >= start + 30 * ms);
    }
}
