//! What players say, as their proxy takes it. Each line is held to the gate
//! ([`verify::said`]): one longer than
//! [`MAX_CHAT_LEN`](tessera_shared::chat::MAX_CHAT_LEN) is a protocol violation, and
//! closes that player's connection (the player crate cleans and cuts what it sends, so
//! no honest client sends one); the rest is cleaned (`tessera_shared::chat`: what does
//! not show goes), and a line with nothing left is dropped. Then each player's own
//! rate, [`CHAT_LINES_PER_SEC`] with a burst of [`CHAT_BURST`]: past it a line is
//! dropped and the player is told, once for a run of dropped lines (a person typing
//! fast is no attacker, and keeps its connection; a client flooding is held to the
//! proxy's limit on messages of any kind, and cut off). What is left goes to the
//! player's server stamped with the player's id, as its input does: nobody can speak
//! for another.
//!
//! What servers send back (a line for some of their players) is encoded once and queued
//! for each of them by the routing table ([`crate::routing::Routing::chat_from`]).

use crate::routing::Routing;
use crate::stats::ProxyStats;
use std::time::Instant;
use tessera_shared::ids::UserId;
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{ChatChannel, ProxyToClient, ProxyToServer};
use tessera_shared::rate::{Rate, TokenBucket};

/// Chat lines a player may say per second, on average: more than a person types.
pub const CHAT_LINES_PER_SEC: f64 = 1.0;
/// Chat lines a player may say at once, after a while quiet.
pub const CHAT_BURST: f64 = 5.0;

const CHAT_RATE: Rate = Rate::new(CHAT_LINES_PER_SEC, CHAT_BURST);

/// One player's chat, at its proxy: its rate, and whether it was told its last line was
/// dropped.
#[derive(Debug)]
pub struct ChatGate {
    bucket: TokenBucket,
    told: bool,
}

impl ChatGate {
    /// The gate of a player who has said nothing yet, as of `now`.
    pub fn new(now: Instant) -> Self {
        Self { bucket: CHAT_RATE.full_bucket(now), told: false }
    }

    /// What becomes of `text`, said by `user` on `channel` at `now`: the message for its
    /// server, cleaned and stamped; nothing, if it was dropped (its player told through
    /// `routing`, if it said too much too fast); or the violation that closes its
    /// connection.
    pub fn hear(
        &mut self,
        routing: &Routing,
        user: UserId,
        channel: ChatChannel,
        text: &str,
        now: Instant,
    ) -> Result<Option<ProxyToServer>, Violation> {
        let Some(said) = verify::said(user, channel, text)? else { return Ok(None) };
        if !self.bucket.take(&CHAT_RATE, now) {
            ProxyStats::add(&routing.stats.chat_dropped, 1);
            if !std::mem::replace(&mut self.told, true) {
                routing.to_clients([(user, ProxyToClient::ChatThrottled.into())]);
            }
            return Ok(None);
        }
        self.told = false;
        ProxyStats::add(&routing.stats.chat_forwarded, 1);
        Ok(Some(said))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_queue::{ClientQueue, ClientSink};
    use crate::routing::{ClientRoute, Session, Start};
    use std::time::Duration;
    use tessera_shared::Vec2;
    use tessera_shared::chat::{ChatProblem, MAX_CHAT_LEN};
    use tessera_shared::framing::decode_body;
    use tessera_shared::identity::PlayerKey;
    use tessera_shared::ids::ServerId;
    use tessera_shared::link::Outbound;
    use tessera_shared::protocol::EntityName;
    use tokio::sync::mpsc;

    /// A table with one player, on server 1, what is queued for that player, and for the server.
    fn one_player() -> (Routing, UserId, ClientSink, mpsc::Receiver<ProxyToServer>) {
        let routing = Routing::default();
        let (to_server, server) = Outbound::channel();
        routing.server_up(ServerId(1), to_server);
        let (outbound, queue) = ClientQueue::channel(1 << 20);
        let key = PlayerKey([1; 32]);
        let user = key.user();
        let session = Session::next();
        let route = ClientRoute::new(outbound, Some(ServerId(1)), session, None, key);
        let login =
            ProxyToServer::Login { user, name: EntityName::from("ada").unwrap(), position: Vec2::ONE, last_input: 0 };
        routing.join(user, route, Start::Login { owner: ServerId(1), login }, 10).unwrap();
        (routing, user, queue, server)
    }

    fn told(queue: &mut ClientSink) -> Vec<ProxyToClient> {
        std::iter::from_fn(|| queue.next_frame()).map(|frame| decode_body(&frame[4..]).unwrap()).collect()
    }

    #[test]
    fn lines_are_bounded_then_cleaned_and_stamped() {
        let (routing, user, _, _server) = one_player();
        let now = Instant::now();
        let mut gate = ChatGate::new(now);
        let said = gate.hear(&routing, user, ChatChannel::Near, "  hi\u{202e} there\n", now).unwrap();
        assert_eq!(said, Some(ProxyToServer::Chat { user, channel: ChatChannel::Near, text: "hi there".into() }));
        assert_eq!(gate.hear(&routing, user, ChatChannel::Near, "\u{200b} \t", now), Ok(None), "nothing to say");
        // Bounded before it is cleaned: a long line of spaces is as long as any.
        let long = " ".repeat(MAX_CHAT_LEN + 1);
        let refused = gate.hear(&routing, user, ChatChannel::Everyone, &long, now);
        assert_eq!(
            refused,
            Err(Violation::BadChat { speaker: user.entity(), problem: ChatProblem::TooLong(MAX_CHAT_LEN + 1) })
        );
        let full = "é".repeat(MAX_CHAT_LEN / 2);
        let said = gate.hear(&routing, user, ChatChannel::Everyone, &full, now).unwrap();
        assert_eq!(said, Some(ProxyToServer::Chat { user, channel: ChatChannel::Everyone, text: full }));
    }

    #[test]
    fn past_its_rate_a_line_is_dropped_and_the_player_told_once_a_run() {
        let (routing, user, mut queue, _server) = one_player();
        let start = Instant::now();
        let mut gate = ChatGate::new(start);
        let mut say = |at: Instant| gate.hear(&routing, user, ChatChannel::Near, "hi", at).unwrap().is_some();
        assert!((0..CHAT_BURST as usize).all(|_| say(start)), "a burst goes through");
        assert!(!say(start) && !say(start), "then lines are dropped");
        assert_eq!(told(&mut queue), vec![ProxyToClient::ChatThrottled], "told once for the run");
        let later = start + Duration::from_secs_f64(1.0 / CHAT_LINES_PER_SEC);
        assert!(say(later), "the rate refills");
        assert!(!say(later));
        assert_eq!(told(&mut queue), vec![ProxyToClient::ChatThrottled], "a new run of dropped lines is told again");
        let counted = |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
        let stats = &routing.stats;
        assert_eq!((counted(&stats.chat_forwarded), counted(&stats.chat_dropped)), (CHAT_BURST as u64 + 1, 3));
    }
}
