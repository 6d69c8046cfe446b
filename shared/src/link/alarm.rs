//! An alarm for a silence: it rings once nothing happened for a while, as a link's peer
//! is gone when nothing was heard for five seconds, and a heartbeat is due when nothing
//! was sent for one. Each frame breaks the silence without touching a timer: the alarm
//! is set once, rings at the end of the silence it was set for, and if the silence was
//! broken since, is set again for the end of the new one. A timeout per wait instead
//! registers with the runtime's timer wheel and leaves it again at every frame:
//! thousands of times a second in a swarm of bots, each a trip through state every task
//! shares. A silence may also be broken from elsewhere ([`HeardElsewhere`]): by what
//! another task hears from the same peer by other means.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Where it is also broken from, if anywhere.
    elsewhere: Option<HeardElsewhere>,
}

impl Silence {
    /// A silence beginning now, that lasts once nothing happens for `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit, since: Instant::now(), alarm: Alarm::default(), elsewhere: None }
    }

    /// The same silence, lasting once nothing happens for `limit` from now on, and still
    /// broken by whatever it was broken by elsewhere.
    pub fn with_limit(self, limit: Duration) -> Self {
        Self { limit, since: Instant::now(), ..self }
    }

    /// The same silence, broken also by whatever is heard through `elsewhere`.
    pub fn broken_also_by(self, elsewhere: HeardElsewhere) -> Self {
        Self { elsewhere: Some(elsewhere), ..self }
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

    /// Returns once nothing happened for the limit, here or elsewhere. Cancel-safe: a
    /// wait dropped leaves the alarm set. (Broken only ever later, so the end only ever
    /// moves on.) What is heard elsewhere is looked at only when the alarm rings: it
    /// costs the other task one store, and this one nothing until then.
    pub async fn lasted(&mut self) {
        loop {
            let end = self.ends();
            self.alarm.ring_at(end).await;
            match self.elsewhere.as_ref().map(HeardElsewhere::last) {
                Some(heard) if heard > self.since => self.since = heard,
                _ => return,
            }
        }
    }
}

/// When a peer was last heard from by other means than the link whose silence this
/// breaks ([`Silence::broken_also_by`]), told by another task: for a proxy, a player's
/// datagrams, read apart from its link. Cheap to tell, as often as anything comes.
#[derive(Debug, Clone)]
pub struct HeardElsewhere(Arc<HeardAt>);

#[derive(Debug)]
struct HeardAt {
    since: Instant,
    /// Milliseconds from `since` to when the peer was last heard from.
    millis: AtomicU64,
}

impl Default for HeardElsewhere {
    fn default() -> Self {
        Self(Arc::new(HeardAt { since: Instant::now(), millis: AtomicU64::new(0) }))
    }
}

impl HeardElsewhere {
    /// The peer was heard from just now.
    pub fn heard(&self) {
        let millis = u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.millis.fetch_max(millis, Ordering::Relaxed);
    }

    /// When the peer was last heard from (when this began, if never).
    pub fn last(&self) -> Instant {
        self.0.since + Duration::from_millis(self.0.millis.load(Ordering::Relaxed))
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

    #[tokio::test]
    async fn a_silence_heard_elsewhere_lasts_its_limit_from_when_it_was_last_heard_there() {
        // Wide margins: a busy machine may hold this thread up for tens of milliseconds.
        let ms = Duration::from_millis(1);
        let start = Instant::now();
        let elsewhere = HeardElsewhere::default();
        let mut silence = Silence::new(600 * ms).broken_also_by(elsewhere.clone());
        let hearing = elsewhere.clone();
        let hearing = tokio::spawn(async move {
            // Heard from every 100 ms, four times: each well within the silence's limit.
            for _ in 0..4 {
                tokio::time::sleep(100 * ms).await;
                hearing.heard();
            }
        });
        silence.lasted().await;
        // Nothing else runs on this thread between the end and these looks.
        let (ended, last_heard) = (Instant::now(), elsewhere.last());
        assert!(last_heard >= start + 100 * ms, "heard from at least once: {:?} in", last_heard - start);
        assert!(ended >= last_heard + 600 * ms, "ended {:?} after it was last heard", ended - last_heard);
        hearing.await.unwrap();
    }
}
