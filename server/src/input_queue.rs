//! A player's inputs, applied exactly once, in sequence order, and each at the player's
//! own tick it was pressed for: what this server simulates of a player is what the
//! player predicted, however the network delayed each input.
//!
//! Every input carries the player's tick (its clock counts ticks of our length from when
//! it started playing). The [`PlayerClock`] maps the player's ticks onto ours: set by
//! its first input with a tick of slack, it holds inputs that come early (the jitter
//! buffer) and slips when one comes late, so later inputs find room: the player waits
//! (stands still, to those who see it) for the ticks its input was late, and the ticks
//! it walked without it are walked again with it ([`Walk::Again`]), as it predicted
//! them. It tightens again once the link has been steady a while ([`STEADY_TICKS`], on
//! the word of every input since), walking or standing: a clock left wide by a stall
//! would keep its player's walkers behind for as long as they walk, and most players
//! keep walking. While it settles (its first [`SETTLING_INPUTS`] inputs) it tightens
//! sooner, on the word of the latest few: one input's delay is a poor measure of a link,
//! least of all in a crowd's join burst, when every first input waits behind the logins.
//! A player is simulated one of its ticks per tick of ours, or two while its clock
//! catches up with a tightening ([`MOST_TICKS_A_TICK`]), each walked with its own keys,
//! so it walks the path it predicted, only sooner; each update says which of its ticks
//! the state is as of ([`InputQueue::your_tick`]). A clock catches up no more than it
//! slipped, and what its first input may have set it wide by
//! ([`FIRST_INPUT_WIDTH_TICKS`]): stamps ahead of time gain a client no ground.
//! Sequence numbers and ticks come from the network: nothing here does arithmetic on
//! them that could overflow.

use bevy::prelude::Component;
use std::collections::{BTreeMap, VecDeque};
use tessera_shared::components::Keys;
use tessera_shared::ids::UserId;
use tessera_shared::protocol::{INPUT_SLACK_TICKS, Input, MAX_PENDING_INPUTS};
use tracing::warn;

/// Ticks a gap in the input sequence may stay open before it is skipped.
pub const GAP_TIMEOUT_TICKS: u64 = 40;
/// The most ticks ahead of its arrival an input is held (half a second at 20 Hz): an
/// input stamped further ahead is applied then.
pub const MAX_INPUT_LEAD_TICKS: i64 = 10;
/// Inputs whose earliness is remembered, to tighten a clock by what all of them spared.
const EARLINESS_REMEMBERED: usize = 16;
/// The fewest inputs a clock tightens on the word of.
const LEAST_EVIDENCE: usize = 4;
/// Our ticks (three seconds) a settled clock's inputs must all have come early before it
/// tightens: long enough to see a link's jitter, short enough that a stall's slip is
/// soon given back. A link that stalls more often than that keeps its clock wide, and
/// its player walking on through the stalls.
const STEADY_TICKS: i64 = 60;
/// Inputs over which a clock set by its player's first input settles: until then it
/// tightens on the word of the latest [`LEAST_EVIDENCE`] inputs, however soon. About
/// ten seconds of a player walking about, wherever they land: a clock carried to another
/// server carries on settling there.
const SETTLING_INPUTS: u8 = 16;
/// The most of its own ticks a player is simulated in one of ours: two while its clock
/// catches up with a tightening.
const MOST_TICKS_A_TICK: usize = 2;
/// What a player's first input's delay may set its clock wide by, beyond its link's: a
/// second (a first key press whose datagram was lost goes again by the link a second
/// later). A new clock may catch that much up while its player walks, and after that
/// only what it slipped: a client stamping its inputs ahead gains no more ground than it
/// lost by their lateness.
const FIRST_INPUT_WIDTH_TICKS: i64 = 20;

/// How a player's own ticks map onto ours.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerClock {
    /// Our tick minus the player's tick due then.
    offset: i64,
    /// The player's last tick simulated: its position is as of the end of it.
    simulated_through: i64,
    /// By how many ticks the latest inputs came before they were due, since the offset
    /// last changed ...
    earliness: VecDeque<i64>,
    /// ... in our tick `steady_since`.
    steady_since: i64,
    /// Ticks it may still tighten by while its player walks, catching up two of the
    /// player's ticks in one of ours ([`FIRST_INPUT_WIDTH_TICKS`]).
    catch_up_allowed: i64,
    /// Inputs still to come before the clock has settled ([`SETTLING_INPUTS`] when set).
    settling_inputs: u8,
}

impl PlayerClock {
    /// A clock whose player's state is as of the end of its tick `your_tick`, its next
    /// tick simulated in our tick `next`: the one on the beat the server handing it over
    /// would have simulated it on, so its inputs are due here as they were there, give
    /// or take the difference of the two servers' phases. (A tick of slack per handoff
    /// instead would add up, a tick of input lag for every border crossed.) It settles
    /// over the `settling_inputs` still to come there, [`SETTLING_INPUTS`] at most, and
    /// may catch up the `catch_up_allowed` ticks it could have there.
    pub fn carrying_on(your_tick: u32, next: u64, settling_inputs: u8, catch_up_allowed: u8) -> Self {
        Self {
            offset: ticks(next).saturating_sub(i64::from(your_tick)).saturating_sub(1),
            simulated_through: i64::from(your_tick),
            earliness: VecDeque::new(),
            steady_since: ticks(next),
            catch_up_allowed: i64::from(catch_up_allowed),
            settling_inputs: settling_inputs.min(SETTLING_INPUTS),
        }
    }

    /// Ticks it may still catch up while its player walks: the next owner may too.
    pub fn catch_up_allowed(&self) -> u8 {
        u8::try_from(self.catch_up_allowed.clamp(0, u8::MAX.into())).unwrap_or(u8::MAX)
    }

    /// Tightens by `by` ticks as our tick `now` ends: all of them for a player standing,
    /// who skips the ticks rather than walking them sooner, and no more than it may
    /// catch up for one walking.
    fn tighten(&mut self, by: i64, standing: bool, now: i64) {
        let by = if standing { by } else { by.min(self.catch_up_allowed) };
        if by > 0 {
            self.offset = self.offset.saturating_sub(by);
            if !standing {
                self.catch_up_allowed = self.catch_up_allowed.saturating_sub(by);
            }
            self.changed(now);
        }
    }

    /// The offset changed in our tick `now`: what inputs spared before says nothing of it.
    fn changed(&mut self, now: i64) {
        self.earliness.clear();
        self.steady_since = now;
    }

    /// Inputs still to come before the clock has settled: it goes on settling on the
    /// next owner.
    pub fn settling_inputs(&self) -> u8 {
        self.settling_inputs
    }
}

impl PlayerClock {
    /// Our tick the player's next tick is simulated in, as our tick `now` ends.
    pub fn next_due(&self, now: u64) -> u64 {
        let due = self.simulated_through.saturating_add(1).saturating_add(self.offset);
        u64::try_from(due).unwrap_or(0).max(now.saturating_add(1))
    }
}

/// One of a player's ticks for the movement system to walk, or some to walk again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Walk<'a> {
    /// The player's tick `yours` (none before its clock is set), with the keys held in it.
    Tick { yours: Option<i64>, keys: Keys },
    /// Inputs that came after their ticks were walked without them, in order: the
    /// player's ticks from the first one's through `through` are walked again, each
    /// input's keys from its own tick on.
    Again { inputs: &'a [Input], through: i64 },
}

/// A player's inputs: the keys held now, and those received ahead of a gap or of their tick.
#[derive(Component, Debug, Default, Clone, PartialEq)]
pub struct InputQueue {
    pub keys: Keys,
    /// The highest sequence applied; every one below it was applied too.
    pub last_input: u32,
    /// Inputs applied in all (equals `last_input` unless one was applied twice).
    pub applied: u32,
    /// Only sequence numbers after `last_input`, and at most [`MAX_PENDING_INPUTS`] past it.
    pending: BTreeMap<u32, Input>,
    gap_open_since: Option<u64>,
    /// The tick the last input applied was for: any input still to come is for that
    /// tick or a later one (a client stamps its inputs in order), so the player's ticks
    /// before it are never walked again.
    last_input_tick: Option<u32>,
    /// Unset until the player's first input.
    clock: Option<PlayerClock>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    #[error("an input sequence number more than {MAX_PENDING_INPUTS} ahead of the last applied")]
    Overflow,
}

/// A tick of ours as a signed count (no server ticks 2⁶³ times).
fn ticks(tick: u64) -> i64 {
    i64::try_from(tick).unwrap_or(i64::MAX)
}

impl InputQueue {
    /// A queue carrying on from another server's (its player's clock as of `clock`, if it
    /// had one), or from the store's word at login; the inputs that server held are
    /// pushed again, as they come.
    pub fn resume(keys: Keys, last_input: u32, applied: u32, clock: Option<PlayerClock>) -> Self {
        Self { keys, last_input, applied, clock, ..Self::default() }
    }

    /// Accepts an input arriving as our tick `now` ends; one already applied or already
    /// queued is ignored. Says by how many ticks the player's inputs wait longer from
    /// now on (fewer than none: shorter), its clock having slipped or tightened.
    pub fn push(&mut self, mut input: Input, now: u64) -> Result<i64, InputError> {
        if input.seq <= self.last_input || self.pending.contains_key(&input.seq) {
            return Ok(0);
        }
        // Bounds both the queue and how far a gap can reach: no sequence number wraps.
        // (`seq` is above `last_input` here.)
        if input.seq - self.last_input > MAX_PENDING_INPUTS as u32 {
            return Err(InputError::Overflow);
        }
        let standing = self.keys.is_empty() && self.pending.is_empty();
        let now = ticks(now);
        let earliest = now.saturating_add(1);
        let stamped = i64::from(input.tick);
        let offset_before = self.clock.as_ref().map(|clock| clock.offset);
        let clock = self.clock.get_or_insert_with(|| PlayerClock {
            offset: earliest.saturating_sub(stamped).saturating_add(INPUT_SLACK_TICKS),
            simulated_through: stamped.saturating_sub(1),
            earliness: VecDeque::new(),
            steady_since: now,
            catch_up_allowed: FIRST_INPUT_WIDTH_TICKS,
            settling_inputs: SETTLING_INPUTS,
        });
        let settling = clock.settling_inputs > 0;
        clock.settling_inputs = clock.settling_inputs.saturating_sub(1);
        let early_by = stamped.saturating_add(clock.offset).saturating_sub(earliest);
        // The player's tick due next, by a clock of `offset`.
        let due_next = |offset: i64| u32::try_from(earliest.saturating_sub(offset)).unwrap_or(input.tick);
        if early_by < -MAX_INPUT_LEAD_TICKS {
            // From before an outage (sent again after a resume): applied at once, and
            // the clock stays as it is.
            input.tick = due_next(clock.offset);
        } else if early_by < 0 {
            // Late: the player's clock slips by as much, so it stands still that long,
            // and may catch as much up again.
            clock.offset = clock.offset.saturating_sub(early_by);
            clock.catch_up_allowed = clock.catch_up_allowed.saturating_sub(early_by);
            clock.changed(now);
        } else if early_by > MAX_INPUT_LEAD_TICKS {
            // Far ahead (after a spike or an outage, or of a clock set wide): the clock
            // tightens at once, down to the slack as far as it may, and the input is
            // held no longer than that, whatever its stamp says.
            clock.tighten(early_by.saturating_sub(INPUT_SLACK_TICKS), standing, now);
            if stamped.saturating_add(clock.offset).saturating_sub(earliest) > MAX_INPUT_LEAD_TICKS {
                input.tick = due_next(clock.offset.saturating_sub(MAX_INPUT_LEAD_TICKS));
            }
        } else if offset_before.is_some() {
            // (The input that set the clock waits the slack by its making: it says
            // nothing of the link.)
            if clock.earliness.len() == EARLINESS_REMEMBERED {
                clock.earliness.pop_front();
            }
            clock.earliness.push_back(early_by);
            let heard = if settling { LEAST_EVIDENCE } else { EARLINESS_REMEMBERED };
            let least = clock.earliness.iter().rev().take(heard).min().copied().unwrap_or(0);
            let spare = least.saturating_sub(INPUT_SLACK_TICKS);
            let steady = settling || now.saturating_sub(clock.steady_since) >= STEADY_TICKS;
            if steady && clock.earliness.len() >= LEAST_EVIDENCE && spare > 0 {
                // Every input heard waited longer than the slack: wait less, the
                // player's ticks caught up two in one of ours if it walks.
                clock.tighten(spare, standing, now);
            }
        }
        let waits_longer = offset_before.map_or(0, |before| clock.offset.saturating_sub(before));
        self.pending.insert(input.seq, input);
        Ok(waits_longer)
    }

    /// Simulates the player's next tick in our tick `tick`, if its clock says one is
    /// due: applies every input due by it that follows the last applied without a gap,
    /// and says so. A gap left open for [`GAP_TIMEOUT_TICKS`] is skipped, with a
    /// warning: the inputs in it are lost.
    fn step(&mut self, tick: u64, user: UserId) -> bool {
        let yours = match &mut self.clock {
            None => None,
            Some(clock) => {
                let due = ticks(tick).saturating_sub(clock.offset);
                if due <= clock.simulated_through {
                    return false;
                }
                if self.keys.is_empty() {
                    // Standing still, it skips any of its ticks our clock left behind, up
                    // to the next input's: that one is walked from its own tick (it may
                    // be waiting there when a clock tightened with inputs pending).
                    let next_input = self.pending.first_key_value().map(|(_, input)| i64::from(input.tick));
                    let skip_to = next_input.map_or(due, |next| next.min(due)).saturating_sub(1);
                    clock.simulated_through = clock.simulated_through.max(skip_to);
                }
                clock.simulated_through = clock.simulated_through.saturating_add(1);
                Some(clock.simulated_through)
            }
        };
        self.apply_due(tick, yours, user, |_| ());
        true
    }

    /// Simulates every one of the player's ticks due in our tick `tick` ([`Self::step`]):
    /// one, or two while its clock catches up with a tightening ([`MOST_TICKS_A_TICK`]),
    /// `walk` walking each with the keys held in it. Inputs late for ticks already
    /// walked are applied first, even while the clock waits out their lateness, and
    /// their ticks walked again ([`Walk::Again`]): from now on every state sent has the
    /// path the player predicted, which it checks no state against till then.
    pub fn step_due(&mut self, tick: u64, user: UserId, mut walk: impl FnMut(Walk<'_>)) {
        if let Some(through) = self.clock.as_ref().map(|clock| clock.simulated_through) {
            let mut late = Vec::new();
            self.apply_due(tick, Some(through), user, |input| late.push(input));
            if !late.is_empty() {
                walk(Walk::Again { inputs: &late, through });
            }
        }
        for _ in 0..MOST_TICKS_A_TICK {
            if !self.step(tick, user) {
                return;
            }
            let yours = self.clock.as_ref().map(|clock| clock.simulated_through);
            walk(Walk::Tick { yours, keys: self.keys });
            // Without a clock (before its first input) there is nothing to catch up.
            if self.clock.is_none() {
                return;
            }
        }
    }

    /// Applies every input due by the player's tick `yours` (all of them before its
    /// clock is set) that follows the last applied without a gap, each passed to `applied`.
    fn apply_due(&mut self, tick: u64, yours: Option<i64>, user: UserId, mut applied: impl FnMut(Input)) {
        let is_due = |input: &Input| yours.is_none_or(|yours| i64::from(input.tick) <= yours);
        loop {
            while let Some(next) =
                self.last_input.checked_add(1).filter(|next| self.pending.get(next).is_some_and(is_due))
            {
                let input = self.pending.remove(&next).expect("found above");
                self.keys = input.keys;
                self.last_input = next;
                self.last_input_tick = Some(input.tick);
                self.applied = self.applied.saturating_add(1);
                applied(input);
            }
            let Some((&next, _)) = self.pending.first_key_value() else {
                self.gap_open_since = None;
                return;
            };
            if Some(next) == self.last_input.checked_add(1) {
                // The next input is not due yet: no gap.
                self.gap_open_since = None;
                return;
            }
            let since = *self.gap_open_since.get_or_insert(tick);
            if tick.saturating_sub(since) < GAP_TIMEOUT_TICKS {
                return;
            }
            // `next` is above `last_input`, so at least 1.
            warn!("{user}: inputs after {} and before {next} never arrived; skipping them", self.last_input);
            self.last_input = next - 1;
            self.gap_open_since = None;
        }
    }

    /// The player's tick its state is as of, once its clock is set.
    pub fn your_tick(&self) -> Option<u32> {
        self.clock.as_ref().and_then(|clock| u32::try_from(clock.simulated_through).ok())
    }

    /// The tick the last input applied was for, once one was applied here.
    pub fn last_input_tick(&self) -> Option<u32> {
        self.last_input_tick
    }

    /// The player's clock, to carry on with on its next owner.
    pub fn clock(&self) -> Option<&PlayerClock> {
        self.clock.as_ref()
    }

    pub fn pending(&self) -> impl Iterator<Item = Input> + '_ {
        self.pending.values().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(seq: u32, keys: Keys) -> Input {
        Input { seq, keys, tick: 0 }
    }

    fn at(seq: u32, keys: Keys, tick: u32) -> Input {
        Input { seq, keys, tick }
    }

    #[test]
    fn inputs_apply_once_and_in_order() {
        let user = UserId(1);
        let mut queue = InputQueue::default();
        assert_eq!(queue.push(input(2, Keys::DOWN), 0), Ok(0), "the first input sets the clock: no change");
        queue.step(1, user);
        assert_eq!((queue.last_input, queue.keys), (0, Keys::empty()), "2 waits for 1");
        queue.push(input(1, Keys::UP), 1).unwrap();
        assert_eq!(queue.push(input(1, Keys::UP), 1), Ok(0), "a duplicate changes nothing");
        queue.step(2, user);
        assert_eq!((queue.last_input, queue.applied, queue.keys), (2, 2, Keys::DOWN));
        queue.push(input(2, Keys::LEFT), 2).unwrap();
        queue.step(3, user);
        assert_eq!((queue.last_input, queue.applied, queue.keys), (2, 2, Keys::DOWN), "no replays");
    }

    #[test]
    fn a_gap_that_never_fills_is_skipped_after_the_timeout() {
        let user = UserId(1);
        let mut queue = InputQueue::default();
        queue.push(input(3, Keys::RIGHT), 9).unwrap();
        // Its clock sets a tick of slack: the player's first tick, and the gap, come in our tick 11.
        for tick in 10..11 + GAP_TIMEOUT_TICKS {
            queue.step(tick, user);
        }
        assert_eq!(queue.last_input, 0);
        queue.step(11 + GAP_TIMEOUT_TICKS, user);
        assert_eq!((queue.last_input, queue.applied, queue.keys), (3, 1, Keys::RIGHT));
    }

    /// A queue resumed with `pending`, as a handoff's next owner makes it.
    fn resumed(keys: Keys, last_input: u32, clock: Option<PlayerClock>, pending: &[Input], now: u64) -> InputQueue {
        let mut queue = InputQueue::resume(keys, last_input, last_input, clock);
        for &input in pending {
            let _ = queue.push(input, now);
        }
        queue
    }

    #[test]
    fn a_resumed_queue_keeps_only_what_it_could_have_held() {
        let user = UserId(1);
        // Sequence 0, one already applied, one out of reach: none may be kept, or the gap
        // skip would step `last_input` back (or below zero).
        let pending = [input(0, Keys::UP), input(5, Keys::UP), input(7, Keys::LEFT), input(u32::MAX, Keys::UP)];
        let mut queue = resumed(Keys::DOWN, 5, None, &pending, 0);
        assert_eq!(queue.pending().collect::<Vec<_>>(), vec![input(7, Keys::LEFT)]);
        for tick in 1..=GAP_TIMEOUT_TICKS + 2 {
            queue.step(tick, user);
        }
        assert_eq!((queue.last_input, queue.applied, queue.keys), (7, 6, Keys::LEFT));
        // At the very end of the sequence nothing overflows: later inputs are ignored.
        let mut queue = resumed(Keys::DOWN, u32::MAX, None, &[input(3, Keys::UP)], 0);
        queue.push(input(u32::MAX, Keys::UP), 0).unwrap();
        queue.step(GAP_TIMEOUT_TICKS, user);
        assert_eq!((queue.last_input, queue.applied, queue.keys), (u32::MAX, u32::MAX, Keys::DOWN));
    }

    #[test]
    fn a_flood_behind_a_gap_is_refused() {
        let mut queue = InputQueue::default();
        for seq in 2..=MAX_PENDING_INPUTS as u32 {
            queue.push(input(seq, Keys::UP), 0).unwrap();
        }
        assert_eq!(queue.push(input(10_000, Keys::UP), 0), Err(InputError::Overflow));
        assert_eq!(queue.push(input(u32::MAX, Keys::UP), 0), Err(InputError::Overflow));
    }

    /// Steps our ticks `ticks`, returning for each the player's tick simulated and the keys held then.
    fn run(queue: &mut InputQueue, ticks: std::ops::RangeInclusive<u64>) -> Vec<(Option<u32>, Keys)> {
        ticks
            .map(|tick| if queue.step(tick, UserId(1)) { (queue.your_tick(), queue.keys) } else { (None, queue.keys) })
            .collect()
    }

    #[test]
    fn inputs_are_applied_as_far_apart_as_they_were_pressed_whatever_their_delay() {
        let mut queue = InputQueue::default();
        // Pressed at the player's ticks 100 and 103: the first arrives as our tick 50
        // ends, the second two ticks later than the first would say, just in time.
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        assert_eq!(run(&mut queue, 51..=52), [(None, Keys::empty()), (Some(100), Keys::UP)], "a tick of slack first");
        queue.push(at(2, Keys::LEFT, 103), 54).unwrap();
        let steps = run(&mut queue, 53..=56);
        assert_eq!(
            steps,
            [(Some(101), Keys::UP), (Some(102), Keys::UP), (Some(103), Keys::LEFT), (Some(104), Keys::LEFT)]
        );
    }

    #[test]
    fn inputs_late_for_ticks_walked_are_walked_again_at_once() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        walked_keys(&mut queue, 51..=55);
        assert_eq!(queue.your_tick(), Some(103));
        // Pressed at its ticks 102 and 103, they come as our tick 55 ends: both walked
        // holding UP already, the first two ticks late (its clock slips by two).
        let late = [at(2, Keys::LEFT, 102), at(3, Keys::DOWN, 103)];
        assert_eq!(late.map(|input| queue.push(input, 55)), [Ok(2), Ok(0)]);
        let (mut again, mut walked) = (Vec::new(), Vec::new());
        for tick in 56..=58 {
            queue.step_due(tick, UserId(1), |walk| match walk {
                Walk::Again { inputs, through } => again.push((tick, inputs.to_vec(), through)),
                Walk::Tick { yours, keys } => walked.push((tick, yours, keys)),
            });
        }
        assert_eq!(again, [(56, late.to_vec(), 103)], "walked again at once, while the clock waits");
        assert_eq!(walked, [(58, Some(104), Keys::DOWN)], "the player's next tick after the wait");
        assert_eq!((queue.last_input, queue.applied), (3, 3));
    }

    #[test]
    fn a_late_input_makes_its_player_wait_and_gives_the_next_ones_room() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        assert_eq!(run(&mut queue, 51..=55).last(), Some(&(Some(103), Keys::UP)));
        // Due in our tick 54 (its tick 102), it arrives as 55 ends: two ticks late.
        queue.push(at(2, Keys::LEFT, 102), 55).unwrap();
        let steps = run(&mut queue, 56..=58);
        assert_eq!(steps, [(None, Keys::UP), (None, Keys::UP), (Some(104), Keys::LEFT)], "stands two ticks");
        // The next, as delayed, is on time.
        queue.push(at(3, Keys::DOWN, 106), 59).unwrap();
        assert_eq!(run(&mut queue, 59..=60), [(Some(105), Keys::LEFT), (Some(106), Keys::DOWN)]);
    }

    /// After a spike (an input five ticks late, as our tick 57 ends), inputs each
    /// holding `keys` and waiting five ticks more than the slack, ten ticks apart: the
    /// clock's offset after the spike, and after each input as our tick it came in
    /// ended, with the ticks by which `push` said inputs came to wait longer or shorter.
    fn offsets_after_early_inputs(keys: Keys) -> (i64, Vec<(u64, i64, i64)>) {
        // A settled clock (carried from another server, nothing left to settle): the
        // player's tick 100 is simulated in our tick 52, as if its first input had come
        // as 50 ended.
        let mut queue = InputQueue::resume(Keys::empty(), 0, 0, Some(PlayerClock::carrying_on(99, 52, 0, 0)));
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        run(&mut queue, 51..=56);
        assert_eq!(queue.push(at(2, keys, 101), 57), Ok(5), "five ticks longer after the spike");
        let after_spike = queue.clock().unwrap().offset;
        let offsets = (3..3 + EARLINESS_REMEMBERED as u32)
            .map(|seq| {
                let stamp = 100 + 10 * seq;
                let arrival = u64::from(stamp) - 50;
                let longer = queue.push(at(seq, keys, stamp), arrival).unwrap();
                run(&mut queue, arrival + 1..=arrival + 10);
                (arrival, queue.clock().unwrap().offset, longer)
            })
            .collect();
        (after_spike, offsets)
    }

    #[test]
    fn a_settled_clock_tightens_once_its_link_has_been_steady_walking_or_standing() {
        for keys in [Keys::empty(), Keys::RIGHT] {
            let (after_spike, offsets) = offsets_after_early_inputs(keys);
            // Every input spares five ticks; the first to come three seconds after the
            // spike (they come ten ticks apart) tightens the clock by as much, the slack kept.
            let steady_from = 57 + STEADY_TICKS as u64;
            let expected: Vec<_> = offsets
                .iter()
                .map(|&(arrival, ..)| match arrival {
                    _ if arrival < steady_from => (arrival, after_spike, 0),
                    _ if arrival < steady_from + 10 => (arrival, after_spike - 5, -5),
                    _ => (arrival, after_spike - 5, 0),
                })
                .collect();
            assert_eq!(offsets, expected, "holding {keys:?}");
        }
    }

    #[test]
    fn a_walking_clock_catches_up_no_more_than_it_slipped() {
        // A settled clock with nothing to catch up, whose inputs all come five ticks
        // before they need to, a second apart: walking (a client stamping ahead of its
        // time), it holds; standing, where waiting less moves nothing, it tightens.
        for (keys, tightened) in [(Keys::RIGHT, 0), (Keys::empty(), 5)] {
            let mut queue = InputQueue::resume(Keys::empty(), 0, 0, Some(PlayerClock::carrying_on(99, 52, 0, 0)));
            let mut shorter = 0;
            for seq in 1..=8 {
                let stamp = 100 + 20 * seq;
                let arrival = u64::from(stamp) - 55;
                shorter -= queue.push(at(seq, keys, stamp), arrival).unwrap();
                run(&mut queue, arrival + 1..=arrival + 20);
            }
            assert_eq!(shorter, tightened, "holding {keys:?}");
        }
    }

    /// Steps our ticks `ticks` as the movement system does, returning for each the keys
    /// each of the player's ticks simulated in it was walked with.
    fn walked_keys(queue: &mut InputQueue, ticks: std::ops::RangeInclusive<u64>) -> Vec<Vec<Keys>> {
        let mut walked = |tick| {
            let mut keys = Vec::new();
            queue.step_due(tick, UserId(1), |walk| {
                if let Walk::Tick { keys: held, .. } = walk {
                    keys.push(held);
                }
            });
            keys
        };
        ticks.map(&mut walked).collect()
    }

    /// Steps our ticks `ticks` as the movement system does, returning for each the
    /// player's ticks simulated in it (a walking player's: none skipped).
    fn walk(queue: &mut InputQueue, ticks: std::ops::RangeInclusive<u64>) -> Vec<Vec<u32>> {
        ticks
            .map(|tick| {
                let steps = walked_keys(queue, tick..=tick)[0].len() as u32;
                let last = queue.your_tick().unwrap_or(0);
                (last + 1 - steps..=last).collect()
            })
            .collect()
    }

    #[test]
    fn a_clock_set_by_a_delayed_first_input_tightens_walking_while_it_settles() {
        let mut queue = InputQueue::default();
        // The first input, pressed at the player's tick 100, waited three ticks (behind a
        // join burst, say): it sets the clock three ticks wide.
        assert_eq!(queue.push(at(1, Keys::RIGHT, 100), 53), Ok(0));
        assert_eq!(queue.clock().unwrap().offset, -45);
        walk(&mut queue, 54..=59);
        // The next come as the link carries them, each three ticks before it is due
        // beyond the slack; the player walks on, never standing.
        let mut shorter = 0;
        for seq in 2..=1 + LEAST_EVIDENCE as u32 {
            let stamp = 90 + 10 * seq;
            let arrival = u64::from(stamp) - 50;
            shorter -= queue.push(at(seq, Keys::RIGHT, stamp), arrival).unwrap();
            if seq <= LEAST_EVIDENCE as u32 {
                walk(&mut queue, arrival + 1..=arrival + 10);
            }
        }
        assert_eq!((queue.clock().unwrap().offset, shorter), (-48, 3), "three ticks tighter, the slack kept");
        // Our tick 90 simulated the player's 135: it catches up two of its ticks in each
        // of ours, none skipped, then goes on one a tick.
        let steps = walk(&mut queue, 91..=94);
        assert_eq!(steps, [vec![136, 137], vec![138, 139], vec![140, 141], vec![142]]);
        assert_eq!(queue.keys, Keys::RIGHT);
    }

    #[test]
    fn catching_up_a_player_stops_and_starts_again_at_its_own_ticks() {
        let mut queue = InputQueue::default();
        // A clock set four ticks wide; a stop at the player's tick 127 and a turn left at
        // 129 held early, then four more inputs that tighten the clock by five.
        queue.push(at(1, Keys::RIGHT, 100), 56).unwrap();
        walked_keys(&mut queue, 57..=76);
        let mut shorter = 0;
        for (seq, keys, tick, arrival) in [
            (2, Keys::empty(), 127, 76),
            (3, Keys::LEFT, 129, 76),
            (4, Keys::UP, 131, 82),
            (5, Keys::DOWN, 132, 82),
            (6, Keys::LEFT, 133, 82),
            (7, Keys::RIGHT, 134, 82),
        ] {
            if seq == 4 {
                walked_keys(&mut queue, 77..=82);
            }
            shorter -= queue.push(at(seq, keys, tick), arrival).unwrap();
        }
        assert_eq!(shorter, 5);
        // Standing at its tick 127, it skips the standing ticks it is behind by, but not
        // past 129: the turn is walked from its own tick, as predicted.
        let none = Keys::empty();
        let steps = walked_keys(&mut queue, 83..=87);
        let expected = [
            vec![Keys::RIGHT, Keys::RIGHT],
            vec![none, Keys::LEFT],
            vec![Keys::LEFT, Keys::UP],
            vec![Keys::DOWN, Keys::LEFT],
            vec![Keys::RIGHT],
        ];
        assert_eq!(steps, expected);
        assert_eq!(queue.your_tick(), Some(134));
    }

    #[test]
    fn a_player_without_a_clock_walks_a_tick_in_each_of_ours() {
        let mut queue = InputQueue::resume(Keys::RIGHT, 0, 0, None);
        assert_eq!(walked_keys(&mut queue, 1..=2), [vec![Keys::RIGHT], vec![Keys::RIGHT]]);
    }

    #[test]
    fn a_clock_goes_on_settling_on_the_next_owner() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::RIGHT, 100), 53).unwrap();
        queue.push(at(2, Keys::RIGHT, 110), 60).unwrap();
        let left = queue.clock().unwrap().settling_inputs();
        assert_eq!(left, SETTLING_INPUTS - 2);
        assert_eq!(PlayerClock::carrying_on(700, 9002, left, 0).settling_inputs(), left);
        let far = PlayerClock::carrying_on(700, 9002, u8::MAX, 0);
        assert_eq!(far.settling_inputs(), SETTLING_INPUTS, "a peer's word held to our own count");
    }

    #[test]
    fn an_input_far_ahead_of_a_walking_player_tightens_its_clock_as_far_as_it_may_catch_up() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        assert_eq!(queue.clock().unwrap().offset, -48);
        // Due in our tick 82 by the clock, it came as 50 ended, 31 ticks early: a new
        // clock catches up 20 (FIRST_INPUT_WIDTH_TICKS), and the input is held ten more
        // at most, applied at the player's tick 129 rather than its stamp's 130.
        assert_eq!(queue.push(at(2, Keys::LEFT, 130), 50), Ok(-20));
        assert_eq!((queue.clock().unwrap().offset, queue.clock().unwrap().catch_up_allowed()), (-68, 0));
        let mut walked = Vec::new();
        for tick in 51..=70 {
            queue.step_due(tick, UserId(1), |walk| {
                if let Walk::Tick { yours: Some(yours), keys } = walk {
                    walked.push((yours, keys));
                }
            });
        }
        let turned = walked.iter().position(|&(_, keys)| keys == Keys::LEFT).unwrap();
        assert_eq!(walked[turned].0, 129);
        let up: Vec<_> = (100..129).map(|yours| (yours, Keys::UP)).collect();
        assert_eq!(walked[..turned], up, "every tick walked, two in one of ours, till caught up");
        // With nothing left to catch up, one stamped further ahead still leaves the clock.
        assert_eq!(queue.push(at(3, Keys::DOWN, 500), 70), Ok(0));
        assert_eq!(queue.clock().unwrap().offset, -68);
    }

    #[test]
    fn an_input_far_ahead_of_a_standing_player_tightens_its_clock_at_once() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::empty(), 100), 50).unwrap();
        run(&mut queue, 51..=52);
        // Due in our tick 82 by the clock, it came as 53 ended: 28 ticks early, kept to the slack.
        assert_eq!(queue.push(at(2, Keys::UP, 130), 53), Ok(-27));
        assert_eq!(run(&mut queue, 54..=55), [(Some(129), Keys::empty()), (Some(130), Keys::UP)]);
    }

    #[test]
    fn inputs_from_before_an_outage_apply_at_once_and_leave_the_clock() {
        let mut queue = InputQueue::default();
        queue.push(at(1, Keys::UP, 100), 50).unwrap();
        run(&mut queue, 51..=139);
        // Sent again after a resume, some 30 ticks after they were due.
        assert_eq!(queue.push(at(2, Keys::LEFT, 150), 139), Ok(0));
        queue.push(at(3, Keys::DOWN, 151), 139).unwrap();
        assert_eq!(queue.clock().unwrap().offset, -48);
        assert_eq!(run(&mut queue, 140..=140), [(Some(188), Keys::DOWN)]);
    }

    #[test]
    fn a_clock_carried_on_by_the_next_owner_continues_the_players_ticks() {
        let clock = PlayerClock::carrying_on(700, 9002, 0, 0);
        assert_eq!(clock.next_due(9000), 9002);
        let mut queue = resumed(Keys::UP, 4, Some(clock), &[at(5, Keys::LEFT, 702)], 9000);
        let steps = run(&mut queue, 9001..=9004);
        assert_eq!(steps, [(None, Keys::UP), (Some(701), Keys::UP), (Some(702), Keys::LEFT), (Some(703), Keys::LEFT)]);
        assert_eq!(queue.clock().unwrap().next_due(9004), 9005, "simulated every tick since");
    }
}
