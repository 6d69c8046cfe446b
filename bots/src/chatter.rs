//! How a bot chats, when the swarm asks it to: a line now and then (half to one and a
//! half times the interval asked for, so a swarm's lines do not come in waves), mostly
//! to the players near it and now and then to everyone, from a small stock of what
//! people say while walking about.

use rand::Rng;
use std::time::Duration;
use tessera_shared::protocol::ChatChannel;
use tokio::time::Instant;

/// What bots say.
const LINES: [&str; 12] = [
    "hi!",
    "anyone around?",
    "hello from over here",
    "which way to the corner?",
    "nice crowd",
    "brb",
    "lag?",
    "follow me",
    "this region is quiet",
    "see you across the border",
    "gg",
    "walking east, then north",
];

/// One line in this many is said to everyone; the rest to whoever is near.
const TO_EVERYONE_ONE_IN: u32 = 5;

/// When a bot says its next line.
#[derive(Debug)]
pub struct Chatter {
    every: Duration,
    next: Instant,
}

impl Chatter {
    /// A bot saying a line every `every` or so, its first within one interval of `now`.
    pub fn new(every: Duration, rng: &mut impl Rng, now: Instant) -> Self {
        Self { every, next: now + every.mul_f64(rng.random::<f64>()) }
    }

    /// When the next line is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// The line to say now, and to whom; the next is due in half to one and a half
    /// intervals from `now`.
    pub fn next_line(&mut self, rng: &mut impl Rng, now: Instant) -> (ChatChannel, &'static str) {
        self.next = now + self.every.mul_f64(rng.random_range(0.5..1.5));
        let channel = match rng.random_range(0..TO_EVERYONE_ONE_IN) {
            0 => ChatChannel::Everyone,
            _ => ChatChannel::Near,
        };
        (channel, LINES[rng.random_range(0..LINES.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use tessera_shared::chat::check_chat;

    #[test]
    fn lines_come_around_the_interval_mostly_near_and_within_the_rule() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let every = Duration::from_secs(10);
        let start = Instant::now();
        let mut chatter = Chatter::new(every, &mut rng, start);
        assert!(chatter.due() <= start + every);
        let mut now = chatter.due();
        let mut to_everyone = 0;
        for _ in 0..1000 {
            let (channel, text) = chatter.next_line(&mut rng, now);
            assert_eq!(check_chat(text), Ok(()), "{text}");
            to_everyone += usize::from(channel == ChatChannel::Everyone);
            let wait = chatter.due() - now;
            assert!(every / 2 <= wait && wait <= every * 3 / 2, "{wait:?}");
            now = chatter.due();
        }
        assert!((100..300).contains(&to_everyone), "about one in five to everyone: {to_everyone}");
    }
}
