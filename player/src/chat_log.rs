//! What a player heard: the last [`CHAT_LOG_LINES`] chat lines (its own among them, as
//! its server says them back), and counts of everything heard and of its own lines its
//! proxy dropped for coming too fast. Lines are numbered as heard, so whoever shows them
//! (the client's panel and bubbles, a bot counting) takes those after the last it took.

use std::collections::VecDeque;
use tessera_shared::protocol::ChatLine;

/// Lines kept: more than a chat panel shows, and a bound on what a proxy can pile up.
pub const CHAT_LOG_LINES: usize = 64;

/// The lines a player heard last, and how many in all.
#[derive(Debug, Default, Clone)]
pub struct ChatLog {
    lines: VecDeque<ChatLine>,
    /// Lines heard since the player joined.
    pub heard: u64,
    /// Lines of the player's own its proxy dropped, said too fast (told once for a run).
    pub throttled: u64,
}

impl ChatLog {
    pub fn hear(&mut self, line: ChatLine) {
        if self.lines.len() == CHAT_LOG_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.heard += 1;
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &ChatLine> + ExactSizeIterator {
        self.lines.iter()
    }

    /// The lines heard after the first `taken` of all heard, as many of them as are kept:
    /// what is new to whoever took `taken` before.
    pub fn since(&self, taken: u64) -> impl Iterator<Item = &ChatLine> {
        let new = usize::try_from(self.heard.saturating_sub(taken)).unwrap_or(usize::MAX);
        self.lines.iter().skip(self.lines.len().saturating_sub(new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::ids::EntityId;
    use tessera_shared::protocol::ChatChannel;

    fn line(n: usize) -> ChatLine {
        ChatLine { speaker: EntityId(1), name: "bo".into(), channel: ChatChannel::Near, text: n.to_string() }
    }

    #[test]
    fn the_last_lines_are_kept_and_taken_once() {
        let mut log = ChatLog::default();
        let texts = |lines: Vec<&ChatLine>| lines.into_iter().map(|line| line.text.clone()).collect::<Vec<_>>();
        log.hear(line(0));
        log.hear(line(1));
        assert_eq!(texts(log.since(0).collect()), ["0", "1"]);
        assert_eq!(texts(log.since(1).collect()), ["1"]);
        assert_eq!(log.since(2).count(), 0);
        for n in 2..200 {
            log.hear(line(n));
        }
        assert_eq!((log.heard, log.lines().len()), (200, CHAT_LOG_LINES));
        assert_eq!(log.lines().next().map(|line| line.text.as_str()), Some("136"));
        assert_eq!(texts(log.since(198).collect()), ["198", "199"]);
        assert_eq!(log.since(0).count(), CHAT_LOG_LINES, "what was not kept is gone");
    }
}
