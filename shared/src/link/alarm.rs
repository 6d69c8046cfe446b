//! An alarm for a deadline that keeps moving later, as "nothing heard for five seconds"
//! moves with every frame heard, or "nothing sent for a second" with every frame sent.
//! It is set once and rings at the deadline it was set for; if the deadline has moved
//! on by then, it is set again for the new one. A timeout per wait instead registers
//! with the runtime's timer wheel and leaves it again at every frame: thousands of times
//! a second in a swarm of bots, each a trip through state every task shares.

use std::pin::Pin;
use tokio::time::{Instant, Sleep};

/// See the module. Unset until first waited on.
#[derive(Debug, Default)]
pub struct Alarm(Option<Pin<Box<Sleep>>>);

impl Alarm {
    /// Waits until `deadline`, which may be later than the one last waited for: the
    /// alarm is set again only when it rings early or must ring sooner. Cancel-safe: a
    /// wait dropped leaves the alarm set.
    pub async fn until(&mut self, deadline: Instant) {
        let sleep = self.0.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            if sleep.deadline() > deadline {
                sleep.as_mut().reset(deadline);
            }
            sleep.as_mut().await;
            if sleep.deadline() >= deadline {
                return;
            }
            sleep.as_mut().reset(deadline);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn an_alarm_rings_at_the_latest_deadline_and_no_sooner() {
        let ms = Duration::from_millis(1);
        let start = Instant::now();
        let mut alarm = Alarm::default();
        // Waited on and dropped, as a read that won the race drops it (on a busy
        // machine the wait may also have ended: either way the alarm stays set).
        let _ = tokio::time::timeout(10 * ms, alarm.until(start + 50 * ms)).await;
        // The deadline moved on: the alarm rings at 50 ms, finds it early, and waits on.
        alarm.until(start + 150 * ms).await;
        assert!(Instant::now() >= start + 150 * ms);
        // Set for much later, it rings at a sooner deadline when asked to.
        let now = Instant::now();
        let _ = tokio::time::timeout(ms, alarm.until(now + 3_600_000 * ms)).await;
        let soon = tokio::time::timeout(60_000 * ms, alarm.until(now + 20 * ms)).await;
        assert!(soon.is_ok(), "the alarm rang at the sooner deadline, not an hour later");
        assert!(Instant::now() >= now + 20 * ms);
    }
}
