//! What a player knows of the world, folded from the updates it received: itself, the
//! server simulating it, and every other entity in view as last sent, extrapolated to
//! the latest tick when asked (servers resend an entity only when its motion changes);
//! and what it heard said ([`ChatLog`]).
//! An update is folded in only once [`verify::update`] has found it possible for the
//! player's welcome: what a proxy forwards is not trusted.
//!
//! Others are shown a little in the past ([`WorldView::others_shown`]): at a tick the
//! [`StreamClock`] puts just behind the latest that has surely arrived, between two
//! ticks whose states are both known, so what is shown is what the server simulated,
//! whatever the jitter. Only an update later than the clock allowed for moves what was
//! already shown; how far, per entity, is what [`WorldView::apply`] reports.

use crate::chat_log::ChatLog;
use foldhash::HashMap;
use std::time::Instant;
use tessera_shared::Vec2;
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::packing::Handle;
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{
    ChatLine, EntityName, EntityState, PlayerUpdate, Welcome, extrapolate, most_quiet_ticks,
};

/// Others are shown this many ticks behind the latest tick the clock expects to have
/// arrived: the interval they are shown in has both ends known, with half a tick to spare.
const SHOWN_BEHIND_TICKS: f64 = 1.5;
/// The furthest others are carried past the tick the next update is due by at the
/// latest, when updates are late.
const MAX_EXTRAPOLATION_TICKS: f64 = 5.0;
/// How fast the clock's late envelope follows an update later than it (at once: a late
/// update moves what is shown), and how slowly it comes back after earlier ones (by
/// half in about 7 s at 20 Hz), so that what is shown waits for nearly every update.
const LATER_GAIN: f64 = 1.0;
const EARLIER_GAIN: f64 = 0.005;
const MEAN_GAIN: f64 = 0.1;
/// Updates over which a new player's clock settles (a second at 20 Hz).
const SETTLING_UPDATES: u32 = 20;
/// The most the tick shown runs faster or slower than the server's, catching up.
const MAX_SLEW: f64 = 0.1;
/// How long the tick shown takes to catch up with where it should be, unless bounded.
const CATCH_UP_SECONDS: f64 = 1.0;

/// The server's ticks mapped onto this player's time: when each tick's update arrives,
/// and so which tick to show others at. The tick shown never jumps: it runs at the
/// server's pace, a little faster or slower ([`MAX_SLEW`]) while it catches up with
/// where the arrivals say it should be, so a late update slows the others a little
/// rather than throwing them back.
#[derive(Debug, Default, Clone)]
pub struct StreamClock {
    origin: Option<Instant>,
    tick_seconds: f64,
    /// Of updates as they arrive, the local time less the tick's time (seconds): its
    /// late envelope, which nearly every update stays within, and their mean.
    late: f64,
    mean: f64,
    latest: u64,
    /// Ticks after `latest` the next update may come, the server having nothing to say
    /// (see [`most_quiet_ticks`]) or spreading its updates: the others shown go on, as
    /// extrapolated, that far at least.
    quiet_ticks: f64,
    /// Updates received: over the first [`SETTLING_UPDATES`] the tick shown goes straight
    /// where it should be (nothing has been shown for long), then it only slews.
    received: u32,
    /// The tick shown at `since` (seconds), and how many ticks it moves per tick of time.
    shown: f64,
    since: f64,
    pace: f64,
}

impl StreamClock {
    fn seconds(&mut self, at: Instant) -> f64 {
        at.saturating_duration_since(*self.origin.get_or_insert(at)).as_secs_f64()
    }

    /// Where the arrivals say the tick shown should be at `seconds`.
    fn wanted(&self, seconds: f64) -> f64 {
        (seconds - self.late) / self.tick_seconds - SHOWN_BEHIND_TICKS
    }

    fn shown_at(&self, seconds: f64) -> f64 {
        let shown = self.shown + (seconds - self.since) / self.tick_seconds * self.pace;
        shown.clamp(0.0, self.latest as f64 + self.quiet_ticks + MAX_EXTRAPOLATION_TICKS)
    }

    /// Tick `tick` arrived at `at`, the next due within `quiet_ticks`; on a new stream
    /// of ticks (another server's, or a restarted one's) the clock carries on from it,
    /// keeping its margin for jitter, and says by how many ticks the new stream's count
    /// is ahead of the last one's (0 on the same stream).
    fn arrived(&mut self, tick: u64, at: Instant, restart: bool, quiet_ticks: u8) -> i64 {
        let seconds = self.seconds(at);
        let sample = seconds - tick as f64 * self.tick_seconds;
        let first = self.latest == 0;
        let mut shown = self.shown_at(seconds);
        let mut ahead_by = 0;
        if first || restart {
            // The new stream's ticks are the old one's moved on by as many as its
            // arrivals say (whole ticks, so states already received keep their places
            // once moved on as much): the tick shown stays where it was in time. (How
            // far behind the latest tick received it was would not do: the new stream's
            // first tick may come a tick or more after the old one's last.)
            let was_wanted = self.wanted(seconds);
            let margin = (self.late - self.mean).max(0.0);
            (self.mean, self.late) = (sample, sample + margin);
            if first {
                shown = tick as f64 - SHOWN_BEHIND_TICKS;
            } else {
                let ahead = (self.wanted(seconds) - was_wanted).round();
                // `as` saturates: no stream's count overflows this.
                ahead_by = ahead as i64;
                shown += ahead;
            }
        } else {
            let gain = if sample > self.late { LATER_GAIN } else { EARLIER_GAIN };
            self.late += (sample - self.late) * gain;
            self.mean += (sample - self.mean) * MEAN_GAIN;
        }
        (self.latest, self.quiet_ticks) = (tick, f64::from(quiet_ticks));
        self.received = self.received.saturating_add(1);
        if self.received <= SETTLING_UPDATES {
            shown = self.wanted(seconds);
        }
        // Catch up with where it should be within a second or so, at a bounded pace.
        let ahead = self.wanted(seconds) - shown;
        let catch_up = ahead * self.tick_seconds / CATCH_UP_SECONDS;
        (self.shown, self.since, self.pace) = (shown.max(0.0), seconds, 1.0 + catch_up.clamp(-MAX_SLEW, MAX_SLEW));
        ahead_by
    }

    /// The tick (with its fraction) others are shown at, at `at`.
    pub fn shown_tick(&self, at: Instant) -> f64 {
        let Some(origin) = self.origin else { return self.latest as f64 };
        self.shown_at(at.saturating_duration_since(origin).as_secs_f64())
    }

    /// How far behind the latest tick received others are shown now, in seconds.
    pub fn shown_behind(&self, at: Instant) -> f64 {
        (self.latest as f64 - self.shown_tick(at)) * self.tick_seconds
    }
}

/// States of another entity kept (a ring, [`Known`]): enough to cover the ticks others
/// are shown at, however many times it changed just before.
const STATES_KEPT: usize = 6;

/// Another entity as known: who it is, held once, its last states sent, each with the
/// tick it was sent at (never decreasing), for the ticks shown between them; a ring,
/// `newest` the index of the latest, `len` how many are held (one at least, once the
/// update that told of it is folded in); and its name, which goes with it. Plain data,
/// held inline: in a crowd, entities come into view and leave it on most updates, and
/// each would cost an allocation, or an entry in a map by id (two maps, of names and
/// of handles, were nearly half of `apply`'s time in a bot: BENCHMARKS.md); and a bot's
/// view is cold by its next update (thousands of others' came between), so a push
/// writes one state (no older ones shifted) and a slot is freed writing only its tag.
/// Laid out as written (`repr(C)`), who it is and where the ring stands first, beside
/// the slot's own tag: an update reads them together (in one line of memory, mostly),
/// then writes one state; the name, written as the entity comes into view, last.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Known {
    id: EntityId,
    newest: u8,
    len: u8,
    states: [Sent; STATES_KEPT],
    name: EntityName,
}

/// A state of another entity as sent, but for whose it is, and the tick it was sent at.
#[derive(Debug, Clone, Copy)]
struct Sent {
    position: Vec2,
    velocity: Vec2,
    tick: u64,
}

impl Sent {
    fn of(state: &EntityState, tick: u64) -> Self {
        Self { position: state.position, velocity: state.velocity, tick }
    }
}

impl Known {
    fn new(state: EntityState, tick: u64, name: EntityName) -> Self {
        Self { id: state.id, newest: 0, len: 1, states: [Sent::of(&state, tick); STATES_KEPT], name }
    }

    /// The index `back` states before the latest.
    fn index(&self, back: usize) -> usize {
        (usize::from(self.newest) + STATES_KEPT - back) % STATES_KEPT
    }

    fn latest(&self) -> &Sent {
        &self.states[usize::from(self.newest)]
    }

    /// Its state as last sent.
    fn latest_state(&self) -> EntityState {
        self.state(self.latest())
    }

    fn state(&self, sent: &Sent) -> EntityState {
        EntityState { id: self.id, position: sent.position, velocity: sent.velocity }
    }

    /// Its states, the latest first.
    fn latest_first(&self) -> impl Iterator<Item = &Sent> {
        (0..usize::from(self.len)).map(|back| &self.states[self.index(back)])
    }

    /// Its states as of a new stream of ticks, `ahead_by` ahead of the one they came in,
    /// before `next` (the new stream's own word on it) is pushed: those from `next` on,
    /// the latest, are dropped, and may be all of them.
    fn moved_on(&mut self, ahead_by: i64, next: u64) {
        for sent in &mut self.states {
            sent.tick = sent.tick.saturating_add_signed(ahead_by);
        }
        while self.len > 0 && self.latest().tick >= next {
            self.newest = self.index(1) as u8;
            self.len -= 1;
        }
    }

    fn push(&mut self, state: EntityState, tick: u64) {
        self.newest = ((usize::from(self.newest) + 1) % STATES_KEPT) as u8;
        self.states[usize::from(self.newest)] = Sent::of(&state, tick);
        self.len = (self.len + 1).min(STATES_KEPT as u8);
    }

    /// Where it was at `tick`, as the server simulated it (where it was first known, if before).
    fn at_tick(&self, tick: u64, tick_seconds: f32) -> Vec2 {
        let oldest = &self.states[self.index(usize::from(self.len.max(1)) - 1)];
        let sent = self.latest_first().find(|sent| sent.tick <= tick).unwrap_or(oldest);
        extrapolate(&self.state(sent), sent.tick, tick, tick_seconds)
    }

    /// Where it was at `tick` and its fraction, between the ticks either side.
    fn at(&self, tick: f64, tick_seconds: f32) -> Vec2 {
        let whole = tick.floor();
        let (from, to) = (self.at_tick(whole as u64, tick_seconds), self.at_tick(whole as u64 + 1, tick_seconds));
        from.lerp(to, (tick - whole) as f32)
    }
}

/// Where in `known` the entity under `handle` is filed, made room for. Handles are below
/// [`tessera_shared::protocol::MAX_KNOWN_ENTITIES`] ([`verify::update`]).
fn slot(known: &mut Vec<Option<Known>>, handle: Handle) -> &mut Option<Known> {
    let at = usize::from(handle);
    if known.len() <= at {
        known.resize(at + 1, None);
    }
    &mut known[at]
}

/// Another entity in view, as the player saw it: who it is and the handle it was filed
/// under, so that a player watching it (a bot following it, four times a second) finds
/// it again with no search ([`WorldView::find`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub id: EntityId,
    handle: Handle,
}

/// How an update moved the others already shown: how far each it moved was moved, and
/// how many others stayed put.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OthersMoved {
    pub moved: Vec<f32>,
    pub unmoved: usize,
}

/// What a player knows of the world, from the updates received so far.
#[derive(Debug, Default, Clone)]
pub struct WorldView {
    pub tick: u64,
    /// The length of the server's tick, for extrapolating what it did not resend.
    pub tick_seconds: f32,
    pub me: Option<EntityState>,
    /// The server simulating this player now.
    pub server: Option<ServerId>,
    /// Each entity in view as last sent, and the tick it was sent at; where it is now
    /// is extrapolated when asked, so an update costs only what it changed. Filed under
    /// the handle the player's link gives each entity ([`PlayerUpdate::changed_handles`]),
    /// so an update finds what it tells of with no lookup: a probe of a map by id for
    /// each state was a third of `apply`'s own time in a bot (BENCHMARKS.md).
    /// Handles are reused as entities leave, and stay as few as the most in view at once
    /// since the server's first update: the view is bounded by what its link may file
    /// ([`tessera_shared::protocol::MAX_KNOWN_ENTITIES`]), names and all.
    known: Vec<Option<Known>>,
    /// How many of `known` are filled.
    filed: usize,
    /// How many others are in view, as told to a player that keeps only their handles
    /// ([`PlayerUpdate::others_counted`]): none is filed.
    counted: Option<usize>,
    /// Where the others an update tells of were shown before it: a list kept between
    /// updates, so its room is reused.
    shown_before: Vec<(Handle, Vec2)>,
    /// The player's own tick `me` is as of, once its inputs set the server's clock.
    pub your_tick: Option<u32>,
    /// When others are shown.
    pub stream: StreamClock,
    pub last_input: u32,
    pub inputs_applied: u32,
    pub updates: u64,
    /// Entity states received (the rest of the view was extrapolated).
    pub states_received: u64,
    /// How many times the owning server changed.
    pub handoffs: u32,
    /// The server simulating this player is lost, until its next update.
    pub region_offline: bool,
    /// How many ticks apart its server sends updates at the most: more than 1 while it
    /// is over capacity ([`PlayerUpdate::update_every`]).
    pub update_every: u8,
    /// When an update last left news of others for later, the player's byte budget
    /// spent on those nearest ([`PlayerUpdate::budget_spent`]): a crowd in view.
    pub budget_spent_at: Option<Instant>,
    /// What the player heard said.
    pub chat: ChatLog,
}

impl WorldView {
    /// An empty view, for a world ticking every `tick_seconds`.
    pub fn new(tick_seconds: f32) -> Self {
        let stream = StreamClock { tick_seconds: f64::from(tick_seconds), ..StreamClock::default() };
        Self { tick_seconds, stream, ..Self::default() }
    }

    /// Folds in `update`, sent to the player `welcome` welcomed and received at `at`, if
    /// it is possible (the view is untouched otherwise). Says how far it moved the others
    /// shown. The states are moved out of `update`, whose lists the unpacker takes back
    /// to fill again.
    pub fn apply(
        &mut self,
        update: &mut PlayerUpdate,
        welcome: &Welcome,
        at: Instant,
    ) -> Result<OthersMoved, Violation> {
        verify::update(update, welcome)?;
        if update.full {
            self.refile(update);
        }
        self.read_ahead(update);
        // Where the others it tells of were shown just before. An update on time tells
        // of ticks not shown yet, so what is shown cannot move, and nobody's place needs
        // working out: most updates (and most of what a bot costs, BENCHMARKS.md). Only
        // a late update, the clock settling, or a new stream can move what is shown.
        let shown_tick = self.stream.shown_tick(at);
        let may_move =
            update.full || self.stream.received < SETTLING_UPDATES || update.tick as f64 <= shown_tick.floor() + 1.0;
        let mut shown_before = std::mem::take(&mut self.shown_before);
        shown_before.clear();
        if may_move {
            shown_before.extend(update.changed.iter().zip(&update.changed_handles).filter_map(|(state, &handle)| {
                let known = self.filed_as(handle, state.id)?;
                Some((handle, known.at(shown_tick, self.tick_seconds)))
            }));
        }
        let quiet_ticks = most_quiet_ticks(update.update_every);
        let ahead_by = self.stream.arrived(update.tick, at, update.full, quiet_ticks);
        self.update_every = update.update_every;
        if update.budget_spent {
            self.budget_spent_at = Some(at);
        }
        self.region_offline = false;
        self.your_tick = update.your_tick;
        if self.server.is_some_and(|server| server != update.server) {
            self.handoffs = self.handoffs.saturating_add(1);
        }
        self.server = Some(update.server);
        self.tick = update.tick;
        self.me = Some(update.you);
        self.last_input = update.last_input;
        self.inputs_applied = update.inputs_applied;
        if update.full {
            // What of it was known is kept (refiled above), moved on to the new
            // stream's ticks, so what is shown between states stays so.
            self.known.iter_mut().flatten().for_each(|known| known.moved_on(ahead_by, update.tick));
        }
        for &handle in &update.left_handles {
            self.unfile(handle);
        }
        let counted = update.others_counted.unwrap_or_default();
        self.states_received += 1 + (update.changed.len() + counted.states) as u64;
        // Names come in the order of those they name in `changed` (a server names an
        // entity again when it comes back), and go with what is in view: one named but
        // not told of is not kept.
        let mut names = update.names.iter().peekable();
        for (state, &handle) in update.changed.drain(..).zip(&update.changed_handles) {
            let name = names.next_if(|(id, _)| *id == state.id).map(|&(_, name)| name);
            self.file(handle, state, update.tick, name);
        }
        self.counted = update.others_counted.map(|counted| counted.in_view);
        self.updates += 1;
        let shown_tick = self.stream.shown_tick(at);
        let moved: Vec<f32> = shown_before
            .iter()
            .filter_map(|&(handle, was)| {
                Some(self.filed_under(handle)?.at(shown_tick, self.tick_seconds).distance(was))
            })
            .collect();
        self.shown_before = shown_before;
        Ok(OthersMoved { unmoved: self.filed.saturating_sub(moved.len()), moved })
    }

    /// Files what was known of the entities a full update tells of under their new
    /// handles, and forgets the rest. Into a new table, sized for the new handles, the
    /// old one let go: a second table kept for this doubled the table's memory, most of
    /// a bot's view's (BENCHMARKS.md). Those the update tells of under the handle they
    /// were filed under (after a handoff that kept the handles, nearly all) move across
    /// as they are; the rest are looked up by id, once a handoff or so.
    fn refile(&mut self, update: &PlayerUpdate) {
        let handles = update.changed_handles.iter().max().map_or(0, |&most| usize::from(most) + 1);
        let mut before = std::mem::replace(&mut self.known, Vec::with_capacity(handles));
        self.filed = 0;
        let mut elsewhere = Vec::new();
        for (state, &handle) in update.changed.iter().zip(&update.changed_handles) {
            let was =
                before.get_mut(usize::from(handle)).filter(|was| was.as_ref().is_some_and(|was| was.id == state.id));
            match was.and_then(Option::take) {
                Some(known) => self.put(handle, known),
                None => elsewhere.push((state.id, handle)),
            }
        }
        if elsewhere.is_empty() {
            return;
        }
        let was_filed: HashMap<EntityId, usize> =
            before.iter().enumerate().filter_map(|(was, known)| Some((known.as_ref()?.id, was))).collect();
        for (id, handle) in elsewhere {
            if let Some(known) = was_filed.get(&id).and_then(|&was| before[was].take()) {
                self.put(handle, known);
            }
        }
    }

    /// Files `known` under `handle`, in place of any other (a handle is one entity's at a
    /// time), counting it in view if the handle was free.
    fn put(&mut self, handle: Handle, known: Known) {
        if slot(&mut self.known, handle).replace(known).is_none() {
            self.filed += 1;
        }
    }

    /// `state`, sent at `tick`, of the entity filed under `handle`, or of one coming into
    /// view under it (in place of any other: a handle is one entity's at a time), named
    /// `name` if the update names it.
    fn file(&mut self, handle: Handle, state: EntityState, tick: u64, name: Option<EntityName>) {
        match slot(&mut self.known, handle) {
            Some(known) if known.id == state.id => {
                known.push(state, tick);
                if let Some(name) = name {
                    known.name = name;
                }
            }
            _ => self.put(handle, Known::new(state, tick, name.unwrap_or_default())),
        }
    }

    /// The entity filed under `handle` left the view.
    fn unfile(&mut self, handle: Handle) {
        if self.known.get_mut(usize::from(handle)).and_then(Option::take).is_some() {
            self.filed -= 1;
        }
    }

    fn filed_under(&self, handle: Handle) -> Option<&Known> {
        self.known.get(usize::from(handle))?.as_ref()
    }

    /// The entity `id` as known under `handle`, if it is filed there.
    fn filed_as(&self, handle: Handle, id: EntityId) -> Option<&Known> {
        self.filed_under(handle).filter(|known| known.id == id)
    }

    /// Reads all that `update` will touch of the view before any of it is worked on: the
    /// entries of those leaving and of those it tells of.
    /// By a bot's next update its view is cold (thousands of others' came between), and
    /// reads that do not wait on one another wait for memory together, where working
    /// through the update waited for each in turn.
    fn read_ahead(&self, update: &PlayerUpdate) {
        use std::hint::black_box;
        for &handle in update.left_handles.iter().chain(&update.changed_handles) {
            black_box(self.filed_under(handle).map(|known| known.newest));
        }
    }

    /// `id` as known and where it is filed, if it is in view: a search, for finding what
    /// the player does not know the handle of ([`Sighting`]).
    fn search(&self, id: EntityId) -> Option<(Handle, &Known)> {
        self.filed().find(|(_, known)| known.id == id)
    }

    /// Every other entity in view, as known, and where it is filed (the table is no longer
    /// than [`tessera_shared::protocol::MAX_KNOWN_ENTITIES`], so each index is a handle).
    fn filed(&self) -> impl Iterator<Item = (Handle, &Known)> {
        (0..).zip(&self.known).filter_map(|(handle, known)| Some((handle, known.as_ref()?)))
    }

    /// Every other entity in view, where it is shown at `at` (see [`StreamClock`]).
    pub fn others_shown(&self, at: Instant) -> impl Iterator<Item = (EntityState, Vec2)> + '_ {
        let tick = self.stream.shown_tick(at);
        self.filed().map(move |(_, known)| (known.latest_state(), known.at(tick, self.tick_seconds)))
    }

    /// Folds in a chat line the player heard, if anyone may be shown it
    /// ([`verify::chat_line`]); refused, it ends the connection.
    pub fn hear(&mut self, line: ChatLine) -> Result<(), Violation> {
        verify::chat_line(&line)?;
        self.chat.hear(line);
        Ok(())
    }

    /// Another entity in view, where it is at `tick`.
    pub fn other(&self, id: EntityId) -> Option<EntityState> {
        self.search(id).map(|(_, known)| self.at_tick(known))
    }

    /// Every other entity in view, where it is at `tick`.
    pub fn others(&self) -> impl Iterator<Item = EntityState> + '_ {
        self.others_named().map(|(other, _)| other)
    }

    /// Every other entity in view, where it is at `tick`, and its name.
    pub fn others_named(&self) -> impl Iterator<Item = (EntityState, &EntityName)> + '_ {
        self.filed().map(|(_, known)| (self.at_tick(known), &known.name))
    }

    /// The name of another entity in view.
    pub fn name(&self, id: EntityId) -> Option<&EntityName> {
        self.search(id).map(|(_, known)| &known.name)
    }

    /// How many other entities are in view.
    pub fn in_view(&self) -> usize {
        self.counted.unwrap_or(self.filed)
    }

    /// Another entity in view, to be found again ([`Self::find`]).
    pub fn sighting(&self, id: EntityId) -> Option<Sighting> {
        Some(Sighting { id, handle: self.search(id)?.0 })
    }

    /// Every other entity in view, each to be found again ([`Self::find`]).
    pub fn sightings(&self) -> impl Iterator<Item = Sighting> + '_ {
        self.filed().map(|(handle, known)| Sighting { id: known.id, handle })
    }

    /// The entity `sighting` saw, where it is at `tick`, if it is still in view: under the
    /// handle it was seen under, with no search, unless a full update filed it anew
    /// (`sighting` is brought up to date then).
    pub fn find(&self, sighting: &mut Sighting) -> Option<EntityState> {
        if self.filed_as(sighting.handle, sighting.id).is_none() {
            sighting.handle = self.search(sighting.id)?.0;
        }
        self.filed_under(sighting.handle).map(|known| self.at_tick(known))
    }

    fn at_tick(&self, known: &Known) -> EntityState {
        EntityState { position: known.at_tick(self.tick, self.tick_seconds), ..known.latest_state() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::Vec2;
    use tessera_shared::cluster::ClusterConfig;
    use tessera_shared::ids::{ProxyId, UserId};
    use tessera_shared::protocol::packing::UnpackProblem;
    use tessera_shared::protocol::{MAX_KNOWN_ENTITIES, OthersCounted};

    const ME: UserId = UserId(0xada0_0000_0000_0001);

    fn welcome() -> Welcome {
        Welcome {
            user: ME,
            name: "me".into(),
            proxy: ProxyId(1),
            resumed: false,
            ticket: tessera_shared::protocol::SessionTicket(Vec::new()),
            map: ClusterConfig::default_local().region_map(),
            view_radius: 400.0,
            tick_hz: 20.0,
            datagrams: None,
        }
    }

    fn at(id: u64) -> EntityState {
        EntityState { id: EntityId(id), position: Vec2::splat(500.0), velocity: Vec2::ZERO }
    }

    fn update(changed: Vec<EntityState>, left: Vec<EntityId>, names: Vec<(EntityId, &str)>) -> PlayerUpdate {
        let names = names.into_iter().map(|(id, name)| (id, EntityName::from(name).unwrap())).collect();
        PlayerUpdate {
            tick: 1,
            server: ServerId(1),
            last_input: 0,
            inputs_applied: 0,
            you: at(ME.0),
            your_tick: None,
            full: false,
            changed,
            left,
            names,
            changed_handles: Vec::new(),
            left_handles: Vec::new(),
            update_every: 1,
            budget_spent: false,
            others_counted: None,
        }
    }

    /// Folds `update` into `view`, each entity under a handle of its id's, unless the
    /// update has its handles already, as a link would give them.
    fn apply(view: &mut WorldView, update: &mut PlayerUpdate, at: Instant) -> Result<OthersMoved, Violation> {
        let handle = |id: EntityId| Handle::try_from(id.0).unwrap_or(Handle::MAX);
        if update.changed_handles.is_empty() {
            update.changed_handles = update.changed.iter().map(|state| handle(state.id)).collect();
        }
        if update.left_handles.is_empty() {
            update.left_handles = update.left.iter().copied().map(handle).collect();
        }
        view.apply(update, &welcome(), at)
    }

    /// A view of `named`, each filed under the handle of its place in the list.
    fn view_of(named: &[(u64, &str)]) -> WorldView {
        let mut view = WorldView::new(0.05);
        let names = named.iter().map(|&(id, name)| (EntityId(id), name)).collect();
        let mut first = update(named.iter().map(|&(id, _)| at(id)).collect(), vec![], names);
        first.changed_handles = (0..named.len()).map(|handle| handle as Handle).collect();
        apply(&mut view, &mut first, Instant::now()).unwrap();
        view
    }

    fn moving(id: u64, position: (f32, f32), velocity: (f32, f32)) -> EntityState {
        EntityState { id: EntityId(id), position: position.into(), velocity: velocity.into() }
    }

    #[test]
    fn others_are_shown_as_the_server_simulated_them_and_only_a_late_update_moves_them() {
        let mut view = WorldView::new(0.05);
        let start = Instant::now();
        let at = |tick: u64, late_ms: u64| start + std::time::Duration::from_millis(50 * tick + late_ms);
        // The server's path for entity 5: right at 200 units a second, up from tick 10.
        let truth = |tick: f64| {
            let along = |tick: f64| {
                if tick <= 9.0 {
                    Vec2::new(10.0 * tick as f32, 0.0)
                } else {
                    Vec2::new(90.0, 10.0 * (tick as f32 - 9.0))
                }
            };
            along(tick.floor()).lerp(along(tick.floor() + 1.0), tick.fract() as f32)
        };
        for tick in 1..=20 {
            let mut next = update(vec![], vec![], vec![]);
            next.tick = tick;
            next.changed = match tick {
                1 => vec![moving(5, (10.0, 0.0), (200.0, 0.0))],
                10 => vec![moving(5, (90.0, 10.0), (0.0, 200.0))],
                _ => vec![],
            };
            let shown = |view: &WorldView| view.others_shown(at(tick, 0)).map(|(_, p)| p).collect::<Vec<_>>();
            let before = shown(&view);
            let moved = apply(&mut view, &mut next, at(tick, 0)).unwrap();
            assert!(moved.moved.iter().all(|&by| by < 1e-3), "on time, nothing shown moves: {moved:?}");
            for (was, is) in before.iter().zip(shown(&view)) {
                assert!(was.distance(is) < 1e-3, "tick {tick}: what was shown at {was} moved to {is}");
            }
            // Once the tick shown (a tick and a half behind) is past the first state
            // received, everything shown is between states received.
            for late_ms in [0, 20, 45].into_iter().filter(|_| tick >= 3) {
                let shown_tick = view.stream.shown_tick(at(tick, late_ms));
                let (_, shown) = view.others_shown(at(tick, late_ms)).next().unwrap();
                assert!(shown.distance(truth(shown_tick)) < 1e-3, "tick {shown_tick}: {shown} off the server's path");
            }
        }
        assert!((view.stream.shown_behind(at(20, 0)) - 0.075).abs() < 1e-6, "a tick and a half behind the latest");
        // Tick 21 comes 80 ms late, and says the entity turned right in it: what was shown moves.
        let mut late = update(vec![moving(5, (100.0, 110.0), (200.0, 0.0))], vec![], vec![]);
        late.tick = 21;
        let moved = apply(&mut view, &mut late, at(21, 80)).unwrap();
        assert_eq!(moved.moved.len(), 1);
        assert!(moved.moved[0] > 10.0, "{moved:?}");
    }

    #[test]
    fn another_keeps_its_latest_states_and_a_new_stream_drops_those_it_tells_again() {
        let state = |x: f32| EntityState { id: EntityId(5), position: Vec2::new(x, 0.0), velocity: Vec2::ZERO };
        let mut known = Known::new(state(1.0), 1, EntityName::new());
        for tick in 2..=8 {
            known.push(state(tick as f32), tick);
        }
        // Six kept, of ticks 3 to 8; before them, the oldest held.
        let at = |known: &Known, tick| known.at_tick(tick, 0.05).x;
        assert_eq!([8, 5, 3, 1].map(|tick| at(&known, tick)), [8.0, 5.0, 3.0, 3.0]);
        // A new stream, 100 ticks ahead, tells of it again from (old) tick 7 on.
        known.moved_on(100, 107);
        assert_eq!((known.len, known.latest().tick), (4, 106));
        known.push(state(70.0), 107);
        assert_eq!([108, 106, 103, 1].map(|tick| at(&known, tick)), [70.0, 6.0, 3.0, 3.0]);
    }

    #[test]
    fn a_new_servers_stream_carries_on_where_the_last_left_off() {
        let mut view = WorldView::new(0.05);
        let start = Instant::now();
        let at = |tick: u64| start + std::time::Duration::from_millis(50 * tick);
        // Entity 5 walks right at 200 units a second, told once.
        for tick in 1..=20 {
            let mut next = update(vec![], vec![], vec![]);
            next.tick = tick;
            next.changed = if tick == 1 { vec![moving(5, (10.0, 0.0), (200.0, 0.0))] } else { vec![] };
            apply(&mut view, &mut next, at(tick)).unwrap();
        }
        // The player is handed to server 2, whose ticks count from elsewhere: its first
        // update, full, is on time, a tick after the last server's last.
        // The new server's link files it under a handle of its own.
        let mut full = update(vec![moving(5, (210.0, 0.0), (200.0, 0.0))], vec![], vec![]);
        (full.tick, full.server, full.full, full.changed_handles) = (7000, ServerId(2), true, vec![0]);
        let moved = apply(&mut view, &mut full, at(21)).unwrap();
        assert!(moved.moved.iter().all(|&by| by < 1e-3), "nobody walking is thrown on: {moved:?}");
        assert_eq!(moved.moved.len(), 1, "it was shown before, and is still");
        assert_eq!((view.handoffs, view.in_view(), view.known.len()), (1, 1, 1));
        assert_eq!(view.other(EntityId(5)).map(|state| state.position), Some(Vec2::new(210.0, 0.0)));
    }

    #[test]
    fn a_full_update_refiles_what_was_known_under_the_new_servers_handles() {
        let mut view = view_of(&[(5, "someone"), (6, "someone"), (7, "someone")]);
        let named =
            |ids: &[u64]| -> Vec<(EntityId, &str)> { ids.iter().map(|&id| (EntityId(id), "someone")).collect() };
        // The new server names 6 and 5 the other way round, and 7 is out of its view.
        let (mut six, mut five) = (at(6), at(5));
        (six.position.x, five.position.x) = (600.0, 550.0);
        let mut full = update(vec![six, five], vec![], named(&[6, 5]));
        (full.tick, full.server, full.full, full.changed_handles) = (7000, ServerId(2), true, vec![0, 1]);
        apply(&mut view, &mut full, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.others().count(), view.others_named().count()), (2, 2, 2));
        assert_eq!(view.other(EntityId(6)).map(|state| state.position.x), Some(600.0));
        assert_eq!(view.other(EntityId(5)).map(|state| state.position.x), Some(550.0));
        assert_eq!(view.name(EntityId(5)).map(EntityName::as_str), Some("someone"));
        assert_eq!((view.other(EntityId(7)), view.name(EntityId(7))), (None, None));
        assert_eq!(
            (view.filed_under(1).map(|known| known.id), view.filed_under(2).is_none()),
            (Some(EntityId(5)), true)
        );
    }

    #[test]
    fn a_full_update_that_keeps_the_handles_keeps_what_was_known_where_it_was() {
        let mut view = view_of(&[(5, "five"), (6, "six"), (7, "seven")]);
        // The new server keeps 6 under its handle, tells of 5 under another (as a full
        // update not keeping handles would), and of 8, new, where 7 was.
        let mut full = update(vec![at(6), at(5), at(8)], vec![], vec![(EntityId(8), "eight")]);
        (full.tick, full.server, full.full, full.changed_handles) = (7000, ServerId(2), true, vec![1, 3, 2]);
        apply(&mut view, &mut full, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.others_named().count()), (3, 3));
        let named = |id: u64| view.name(EntityId(id)).map(EntityName::as_str);
        assert_eq!([named(5), named(6), named(7), named(8)], [Some("five"), Some("six"), None, Some("eight")]);
        let filed = |handle: Handle| view.filed_under(handle).map(|known| known.id.0);
        assert_eq!([filed(0), filed(1), filed(2), filed(3)], [None, Some(6), Some(8), Some(5)]);
    }

    #[test]
    fn a_full_update_naming_a_handle_twice_files_one_entity_under_it() {
        let mut view = view_of(&[(5, "five"), (6, "six")]);
        // A lying server tells of both under handle 1: the second takes it.
        let mut full = update(vec![at(6), at(5)], vec![], vec![]);
        (full.tick, full.server, full.full, full.changed_handles) = (7000, ServerId(2), true, vec![1, 1]);
        apply(&mut view, &mut full, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.filed_under(1).map(|known| known.id)), (1, Some(EntityId(5))));
        let mut leaving = update(vec![], vec![EntityId(5)], vec![]);
        (leaving.tick, leaving.server, leaving.left_handles) = (7001, ServerId(2), vec![1]);
        apply(&mut view, &mut leaving, Instant::now()).unwrap();
        assert_eq!(view.in_view(), 0);
    }

    #[test]
    fn a_full_update_files_into_a_table_as_long_as_its_handles_need() {
        let mut view = WorldView::new(0.05);
        let table = |view: &WorldView| view.known.capacity();
        for id in 0..100 {
            apply(&mut view, &mut update(vec![at(id)], vec![], vec![(EntityId(id), "someone")]), Instant::now())
                .unwrap();
        }
        assert!(table(&view) >= 100);
        // A new server knows 30 of them: a table for those, the old one let go.
        let mut full = update((0..30).map(at).collect(), vec![], (0..30).map(|id| (EntityId(id), "someone")).collect());
        (full.tick, full.server, full.full) = (7000, ServerId(2), true);
        apply(&mut view, &mut full, Instant::now()).unwrap();
        assert_eq!((view.in_view(), table(&view)), (30, 30));
        assert_eq!(view.other(EntityId(29)).map(|state| state.id), Some(EntityId(29)));
    }

    #[test]
    fn a_handle_is_one_entity_s_at_a_time() {
        let mut view = WorldView::new(0.05);
        let mut first = update(vec![at(5)], vec![], vec![(EntityId(5), "bo")]);
        first.changed_handles = vec![3];
        apply(&mut view, &mut first, Instant::now()).unwrap();
        // Another told of under 5's handle, 5 never said to leave: 5 is gone, name and all.
        let mut usurper = update(vec![at(6)], vec![], vec![(EntityId(6), "cy")]);
        usurper.changed_handles = vec![3];
        apply(&mut view, &mut usurper, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.others().count()), (1, 1));
        assert_eq!((view.other(EntityId(5)), view.name(EntityId(5))), (None, None));
        assert_eq!(view.name(EntityId(6)).map(EntityName::as_str), Some("cy"));
    }

    #[test]
    fn a_sighting_finds_its_entity_again_under_a_new_handle_and_not_once_it_left() {
        let mut view = view_of(&[(5, "bo"), (6, "cy")]);
        let mut six = view.sightings().find(|seen| seen.id == EntityId(6)).unwrap();
        assert_eq!(view.find(&mut six).map(|state| state.id), Some(EntityId(6)));
        // A new server files 6 under handle 4.
        let mut full = update(vec![at(6)], vec![], vec![(EntityId(6), "cy")]);
        (full.tick, full.server, full.full, full.changed_handles) = (7000, ServerId(2), true, vec![4]);
        apply(&mut view, &mut full, Instant::now()).unwrap();
        assert_eq!(view.find(&mut six).map(|state| state.id), Some(EntityId(6)));
        assert_eq!(six, view.sighting(EntityId(6)).unwrap(), "brought up to date");
        let mut gone = update(vec![], vec![EntityId(6)], vec![]);
        gone.left_handles = vec![4];
        apply(&mut view, &mut gone, Instant::now()).unwrap();
        assert_eq!((view.find(&mut six), view.in_view()), (None, 0));
    }

    #[test]
    fn a_player_keeping_only_handles_counts_others_and_shows_none() {
        let mut view = WorldView::new(0.05);
        let mut counted = update(vec![], vec![], vec![]);
        counted.others_counted = Some(OthersCounted { states: 4, in_view: 3 });
        let moved = apply(&mut view, &mut counted, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.states_received, view.others().count()), (3, 5, 0));
        // None is shown, so none is measured as moved, or as still.
        assert_eq!(moved, OthersMoved::default());
        let mut still = update(vec![], vec![], vec![]);
        still.others_counted = Some(OthersCounted::default());
        apply(&mut view, &mut still, Instant::now()).unwrap();
        assert_eq!(view.in_view(), 0);
    }

    #[test]
    fn names_go_with_what_is_in_view_and_the_view_is_bounded() {
        let mut view = WorldView::new(0.05);
        apply(&mut view, &mut update(vec![at(5)], vec![], vec![(EntityId(5), "bo")]), Instant::now()).unwrap();
        assert_eq!(view.name(EntityId(5)).map(EntityName::as_str), Some("bo"));
        apply(&mut view, &mut update(vec![], vec![EntityId(5)], vec![]), Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.name(EntityId(5))), (0, None), "the name left with the entity");

        // One leaves as another comes, in one update, under the handle the first freed.
        let mut far = at(7);
        far.position = Vec2::splat(900.0);
        apply(&mut view, &mut update(vec![at(6)], vec![], vec![]), Instant::now()).unwrap();
        let mut swap = update(vec![far], vec![EntityId(6)], vec![]);
        swap.changed_handles = vec![6];
        apply(&mut view, &mut swap, Instant::now()).unwrap();
        assert_eq!((view.in_view(), view.other(EntityId(6))), (1, None));
        assert_eq!(view.other(EntityId(7)).map(|state| state.position), Some(far.position));
        let mut gone = update(vec![], vec![EntityId(7)], vec![]);
        gone.left_handles = vec![6];
        apply(&mut view, &mut gone, Instant::now()).unwrap();

        let mut bad = update(vec![at(6)], vec![], vec![]);
        bad.changed[0].position.x = f32::NAN;
        assert!(matches!(apply(&mut view, &mut bad, Instant::now()), Err(Violation::BadState { .. })));
        assert_eq!((view.updates, view.in_view()), (5, 0), "a refused update is not folded in");

        // An update whose handles are not one an entity is refused.
        let mut unfiled = update(vec![at(6)], vec![], vec![]);
        unfiled.changed_handles = vec![6, 7];
        assert!(matches!(apply(&mut view, &mut unfiled, Instant::now()), Err(Violation::HandlesMismatch { .. })));

        // A proxy adding entity after entity, each update within bounds, is refused once
        // their handles run past what a player may know.
        let mut next = 100;
        let refused = (0..8).find_map(|_| {
            let batch = (0..4096).map(|_| {
                next += 1;
                at(next)
            });
            apply(&mut view, &mut update(batch.collect(), vec![], vec![]), Instant::now()).err()
        });
        let first_beyond = MAX_KNOWN_ENTITIES as Handle;
        assert_eq!(refused, Some(Violation::BadPacking(UnpackProblem::HandleOutOfRange(first_beyond))));
        assert_eq!(view.in_view(), 8192, "the first two batches, and no more");

        // And names of nobody in view are not kept: a name goes with what is in view.
        for batch in 0..8 {
            let names = (0..4096).map(|n| (EntityId(100_000 + batch * 4096 + n), "ghost")).collect();
            apply(&mut view, &mut update(vec![], vec![], names), Instant::now()).unwrap();
        }
        assert_eq!((view.in_view(), view.name(EntityId(100_000))), (8192, None));
    }
}
