//! A player's byte budget: what its updates may carry, in bytes a second on the wire
//! (`player_bytes_per_second` in the cluster file), and, when the others in its view
//! have more news than that, whose goes first. Each entity with news the player has not
//! been told is owed a little more every tick it waits, the more the nearer it is (a
//! newcomer, not shown at all yet, more than a turn of someone shown a little off), and
//! the most owed go first: Glenn Fiedler's priority accumulator. So in a crowd a player
//! hears of those nearest at once and of the far ones a few ticks later, extrapolating
//! them meanwhile, nobody waits for ever, and the player's server, proxy, link and
//! machine carry no more than the budget, however many it sees.

use tessera_shared::protocol::MAX_STATES_PER_UPDATE;

/// What an update costs on the wire besides its news of others: its length, kind, tick,
/// acknowledgement, the player's own position and heading (13 bytes, see the packing
/// tests), and the lengths of the lists of others.
pub const UPDATE_BYTES: f32 = 16.0;
/// Telling of an entity the player knows: its handle, its position against where the
/// player extrapolates it (a byte an axis, after a turn) and its heading.
pub const MOVED_BYTES: f32 = 4.0;
/// Telling of an entity coming into view, besides its name: its handle, id, whole
/// position and heading.
pub const ENTERED_BYTES: f32 = 18.0;
/// Telling of an entity the player knew under a handle the server that handed it here
/// gave it ([`tessera_shared::protocol::packing::Mention::Kept`]): that handle, its whole
/// position and heading.
pub const KEPT_BYTES: f32 = 8.0;
/// An entity leaving the view: its handle.
pub const LEFT_BYTES: f32 = 1.0;

/// How many times more a newcomer is owed than a change of someone known as near.
const NEWCOMER_WEIGHT: f32 = 4.0;
/// Within this share of the view radius, everyone is as near as can be.
const NEAREST_SHARE_OF_VIEW: f32 = 1.0 / 16.0;

/// What an entity `distance` from the player, whose view reaches `radius`, is owed for
/// each tick its news waits: 1 at the edge of the view, up to 16 close by, four times
/// that for a `newcomer`.
pub fn owed_a_tick(distance: f32, radius: f32, newcomer: bool) -> f32 {
    let nearness = radius / distance.max(radius * NEAREST_SHARE_OF_VIEW);
    if newcomer { NEWCOMER_WEIGHT * nearness } else { nearness }
}

/// The bytes a player's updates may still carry: refilled every tick at its rate, up
/// to a second's worth (so a full update after a handoff fills a view at once, and a
/// player whose updates come every few ticks gets those ticks' worth in each), and
/// spent by what each update took on the wire. It may go below nothing: what must go
/// (the player itself, its acknowledgements, who left) always goes.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ByteBudget {
    bytes: f32,
}

impl ByteBudget {
    /// A second's worth at `per_second`.
    pub fn full(per_second: f32) -> Self {
        Self { bytes: per_second }
    }

    /// One tick of `tick_seconds` more at `per_second`.
    pub fn refill(&mut self, per_second: f32, tick_seconds: f32) {
        self.bytes = (self.bytes + per_second * tick_seconds).min(per_second);
    }

    /// `bytes` went on the wire; never more than a second's worth in debt at
    /// `per_second`, so that a player whose updates must go (acknowledgements, leaves)
    /// whatever the budget is not shut out of news for long after.
    pub fn spend(&mut self, bytes: usize, per_second: f32) {
        self.bytes = (self.bytes - bytes as f32).max(-per_second);
    }

    /// What an update may tell of others now, having to say that `leaving` left.
    pub fn room(&self, leaving: usize) -> f32 {
        self.bytes - UPDATE_BYTES - LEFT_BYTES * leaving as f32
    }
}

/// Whether news taking `bytes` fits an update that has `room` bytes left and holds
/// `states` states already (at most [`MAX_STATES_PER_UPDATE`]).
pub fn fits(bytes: f32, room: f32, states: usize) -> bool {
    bytes <= room && states < MAX_STATES_PER_UPDATE
}

/// News of one entity in a player's view that the player is owed this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Owed {
    /// The entity's entry among what the player was told ([`super::KnownEntities`]).
    pub entry: usize,
    /// The entity among the tick's entities in view.
    pub index: usize,
    /// How much it is owed, now that it waited this tick too.
    pub owed: f32,
    /// What telling it costs on the wire.
    pub bytes: f32,
    /// Far, it may wait for the player's next update ([`super::FAR_EVERY`]).
    pub may_wait: bool,
}

/// Puts the most owed of `owed` first, unless all of it fits in `room` bytes and
/// `states` states anyway: then order does not matter, and the sort is saved (it is
/// the common case wherever the view is not crowded).
pub fn most_owed_first(owed: &mut [Owed], room: f32, states: usize) {
    let fits = owed.len() <= states && owed.iter().map(|news| news.bytes).sum::<f32>() <= room;
    if !fits {
        owed.sort_unstable_by(|a, b| b.owed.total_cmp(&a.owed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_near_are_owed_more_and_newcomers_most() {
        let radius = 400.0;
        assert_eq!(owed_a_tick(400.0, radius, false), 1.0, "the edge of the view");
        assert_eq!(owed_a_tick(100.0, radius, false), 4.0);
        assert_eq!(owed_a_tick(0.0, radius, false), 16.0, "close by, and never a division by nothing");
        assert_eq!(owed_a_tick(400.0, radius, true), 4.0, "a newcomer at the edge, as a change at a quarter");
    }

    #[test]
    fn the_budget_refills_to_a_second_and_may_be_overspent() {
        let mut budget = ByteBudget::full(4096.0);
        budget.spend(4096, 4096.0);
        budget.refill(4096.0, 0.05);
        assert!((budget.room(0) - (204.8 - UPDATE_BYTES)).abs() < 0.01, "a tick's worth");
        budget.spend(1000, 4096.0);
        assert!(budget.room(0) < 0.0, "what must go went, and later updates pay for it");
        budget.spend(100_000, 4096.0);
        assert_eq!(budget.room(0), -4096.0 - UPDATE_BYTES, "never more than a second in debt");
        (0..100).for_each(|_| budget.refill(4096.0, 0.05));
        assert_eq!(budget, ByteBudget::full(4096.0), "no more than a second's worth");
    }

    #[test]
    fn the_most_owed_go_first_only_when_not_all_fit() {
        let news = |entry, owed| Owed { entry, index: entry, owed, bytes: MOVED_BYTES, may_wait: false };
        let mut owed = [news(0, 1.0), news(1, 8.0), news(2, 4.0)];
        most_owed_first(&mut owed, 12.0, 10);
        assert_eq!(owed.map(|news| news.entry), [0, 1, 2], "all fit: left as seen");
        most_owed_first(&mut owed, 11.0, 10);
        assert_eq!(owed.map(|news| news.entry), [1, 2, 0]);
        let mut owed = [news(0, 1.0), news(1, 8.0)];
        most_owed_first(&mut owed, 100.0, 1);
        assert_eq!(owed.map(|news| news.entry), [1, 0], "more states than an update takes");
    }
}
