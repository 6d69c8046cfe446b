//! Per-player interest, in `PostUpdate` once per tick: every player is sent itself and
//! what changed within its view radius since it was last told (see [`PlayerUpdate`]),
//! packed against what its link carried before ([`UpdatePacker`]: small handles for
//! ids, motion in fixed point, each number as its change) and encoded once, here, as
//! the frame the proxy forwards untouched; a player told
//! nothing it could not extrapolate, and acknowledged no input, is sent nothing, for
//! a few ticks at most ([`most_quiet_ticks`]), and a change far from it waits a tick at
//! most for the next update ([`FAR_EVERY`]). What a player's updates carry is held to
//! its byte budget ([`budget`]): in a crowd, the nearest others' news first, the rest
//! in later updates. Past capacity, each player's pass runs
//! only on the ticks [`UpdatePace`] says it is due; an input applied is acknowledged
//! at once all the same. A uniform grid of view-radius cells keeps this linear in the
//! number of entities. The broadcast baseline sends every player everything instead.

mod budget;

use crate::components::Visible;
use crate::input_queue::InputQueue;
use crate::net::{NetSystems, ProxyLinks};
use crate::pacing::UpdatePace;
use crate::players::{Parked, Player};
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use budget::{ByteBudget, Owed};
use bytes::BytesMut;
use std::ops::Range;
use std::sync::atomic::Ordering;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::framing::encode_frame;
use tessera_shared::ids::{EntityId, ProxyId, UserId};
use tessera_shared::protocol::packing::{Handle, Handles, Mention, Mentions, quantised, quantised_own};
use tessera_shared::protocol::{
    EntityName, EntityState, HandedView, MAX_KNOWN_ENTITIES, MAX_STATES_PER_UPDATE, PlayerFrame, PlayerUpdate,
    ProxyToClient, ServerToProxy, UPDATES_FRAME_BUDGET, UpdatePacker, most_quiet_ticks, must_resend, tick_seconds,
};
use tracing::warn;

/// How much a tick's update frames are encoded into at a time.
const ENCODE_CHUNK: usize = 64 * 1024;

pub struct InterestPlugin;

impl Plugin for InterestPlugin {
    fn build(&self, app: &mut App) {
        // What a player has been told is interest's to keep, on every player.
        app.register_required_components::<Player, KnownEntities>().add_systems(
            PostUpdate,
            send_player_updates.in_set(NetSystems::Send).run_if(resource_changed::<SimulationTick>),
        );
    }
}

/// Every entity of the tick bucketed by cell, the buckets one after another in one
/// block of memory: a view query reads the few cells around a player straight through,
/// where following an index per entity into the tick's lists and the query's tables
/// touched a cache line or more for each.
struct Grid {
    cell: f32,
    /// Where each occupied cell's entities lie in `members`.
    cells: HashMap<(i32, i32), Range<usize>>,
    /// Cell after cell; within a cell, in the order they came.
    members: Vec<Member>,
}

/// An entity as a view query looks at it.
#[derive(Clone, Copy)]
struct Member {
    position: Vec2,
    /// As players are told of it.
    state: EntityState,
    /// Where it is among the tick's entities.
    index: usize,
}

impl Grid {
    /// Buckets the entities at `positions`, told of as `states` (one each).
    fn new(cell: f32, positions: impl ExactSizeIterator<Item = Vec2>, states: &[EntityState]) -> Self {
        debug_assert_eq!(positions.len(), states.len(), "a state for each entity");
        let keyed: Vec<((i32, i32), Member)> = positions
            .zip(states)
            .enumerate()
            .map(|(index, (position, &state))| (Self::key(cell, position), Member { position, state, index }))
            .collect();
        // Counted, then placed: each cell's range starts empty where its bucket begins
        // and grows over its members as they are placed.
        let mut cells: HashMap<(i32, i32), Range<usize>> = HashMap::new();
        for (key, _) in &keyed {
            cells.entry(*key).or_insert(0..0).end += 1;
        }
        let mut start = 0;
        for range in cells.values_mut() {
            let len = range.end;
            *range = start..start;
            start += len;
        }
        // Filled in the order they came, then each slot overwritten once, by its own.
        let mut members: Vec<Member> = keyed.iter().map(|&(_, member)| member).collect();
        for (key, member) in keyed {
            let range = cells.get_mut(&key).expect("every key was counted");
            members[range.end] = member;
            range.end += 1;
        }
        Self { cell, cells, members }
    }

    fn key(cell: f32, point: Vec2) -> (i32, i32) {
        ((point.x / cell).floor() as i32, (point.y / cell).floor() as i32)
    }

    /// The entities in the 3×3 cells around `point`: a superset of those within one
    /// cell's distance.
    fn near(&self, point: Vec2) -> impl Iterator<Item = &Member> + '_ {
        let (x, y) = Self::key(self.cell, point);
        (-1..=1)
            .flat_map(move |dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter_map(|key| self.cells.get(&key))
            .flat_map(|range| &self.members[range.clone()])
    }
}

type Seen<'a> = (&'a EntityId, &'a Position, &'a Velocity, &'a Visible);

/// A player its update is made for: who it is, what of its input was applied, where it
/// is, and what it was told before.
type Recipient<'a> =
    (&'a UserId, &'a EntityId, &'a Player, &'a InputQueue, &'a Position, &'a Velocity, &'a mut KnownEntities);

/// What one player has been told of each entity in its view: the state sent and the
/// tick it was sent at, from which the player extrapolates.
#[derive(Component, Debug, Default)]
pub struct KnownEntities {
    /// What the player was last sent of itself: `None` until this server sends it its
    /// first (full) update.
    told: Option<Told>,
    /// Every entity in the player's view it was told of, and those it is yet to be
    /// (see [`Sent::handle`]). Sorted by entity id as far as `ids` goes, then the
    /// entities new this tick, sorted in at its end ([`KnownEntities::end_tick`]): a
    /// few dozen entries found by binary search, where a hash map's probe per entity in
    /// view per tick was the interest pass's largest cost (BENCHMARKS.md), and a crowd
    /// arriving costs one sort, not a shift per newcomer.
    sent: Vec<Sent>,
    /// The ids of `sent`'s sorted entries, in their order: what a lookup searches, eight
    /// bytes an entry, where searching the entries themselves touched a cache line at
    /// nearly every step.
    ids: Vec<EntityId>,
    /// The handles the player's link has free for entities coming into view.
    handles: Handles,
    /// Until its first update here: the handle the player knows each entity by from the
    /// server that handed it here, sorted by id, for that update to keep
    /// ([`Mention::Kept`]). Those it does not tell of are free again after it.
    kept: Vec<(EntityId, Handle)>,
    /// The server's end of the player's link, for the next update to be packed against.
    packer: UpdatePacker,
    /// What the player's updates may still carry.
    budget: ByteBudget,
}

#[derive(Debug)]
struct Sent {
    /// What the player was told, once it was.
    state: EntityState,
    tick: u64,
    /// The last tick the entity was in view.
    seen: u64,
    /// What the player's updates name it by: `None` while the entity waits, in view,
    /// for its turn to be told of ([`budget`]).
    handle: Option<Handle>,
    /// How much news of it the player is owed, from the ticks it waited; nothing once
    /// it is told.
    owed: f32,
}

/// What a player was last sent of itself, and when. While none of it changed but the
/// position the player can extrapolate (see [`must_resend`]), and nothing in view did, a
/// tick tells it nothing, and it is not sent one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Told {
    tick: u64,
    you: EntityState,
    last_input: u32,
    inputs_applied: u32,
    /// How far the player's clock is from ours (its tick less ours), once it has one.
    clock_offset: Option<i64>,
    update_every: u8,
    budget_spent: bool,
}

impl Told {
    fn of(update: &PlayerUpdate) -> Self {
        Self {
            tick: update.tick,
            you: update.you,
            last_input: update.last_input,
            inputs_applied: update.inputs_applied,
            clock_offset: update.your_tick.map(|your| i64::from(your) - update.tick as i64),
            update_every: update.update_every,
            budget_spent: update.budget_spent,
        }
    }

    /// Whether `now`, which tells nothing of others, can go unsent: it tells nothing the
    /// player cannot work out from this, and the player has not gone long without word.
    fn covers(&self, now: &Self, tick_seconds: f32) -> bool {
        let most_quiet = u64::from(most_quiet_ticks(now.update_every));
        now.tick.saturating_sub(self.tick) < most_quiet
            && (self.last_input, self.inputs_applied, self.clock_offset, self.update_every, self.budget_spent)
                == (now.last_input, now.inputs_applied, now.clock_offset, now.update_every, now.budget_spent)
            && !must_resend(&self.you, self.tick, &now.you, now.tick, tick_seconds)
    }
}

/// What a player's entry for an entity in its view says this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Look {
    /// A newcomer with no room among what the player may know ([`MAX_KNOWN_ENTITIES`]):
    /// it is not in view, for now.
    NoRoom,
    /// Nothing the player cannot extrapolate.
    Nothing,
    /// News the player is owed: a newcomer's coming into view, or a change.
    Owed { entry: usize, owed: f32, newcomer: bool },
}

/// Beyond this share of the view radius, others are far: a change of theirs alone
/// sends a player an update only every [`FAR_EVERY`] ticks, at its phase, and rides
/// along with any update sent in between. So a far turn reaches the player a tick late
/// at most: less than the tick and a half others are shown behind, so nothing shown
/// jumps, and the path shown rounds the corner by that tick.
const NEAR_SHARE_OF_VIEW: f32 = 0.5;
const FAR_EVERY: u64 = 2;

impl KnownEntities {
    /// What a player handed here was told before (`view`): its first update, full, keeps
    /// the handles of the last update it was sent, for the entities it tells of.
    pub fn handed(view: HandedView) -> Self {
        let mut kept = view.handles;
        kept.sort_unstable_by_key(|&(id, _)| id);
        Self {
            handles: Handles::taken(kept.iter().map(|&(_, handle)| handle)),
            kept,
            packer: UpdatePacker::after(view.seq),
            ..Self::default()
        }
    }

    /// What the player was told, to go with it to another server: `None` before its
    /// first update.
    pub fn handing_on(&self) -> Option<HandedView> {
        let seq = self.packer.last_seq()?;
        Some(HandedView {
            seq,
            handles: self.sent.iter().filter_map(|sent| Some((sent.state.id, sent.handle?))).collect(),
        })
    }

    /// Whether the player's next update is full: it was told nothing yet.
    pub fn starting_over(&self) -> bool {
        self.told.is_none()
    }

    /// Asks for the player's entries and their ids to be brought into the cache, all at
    /// once, before the pass looks them up one entity at a time: each player's are read
    /// once a tick, so they are seldom still there, and each lookup's misses (a binary
    /// search's, one after another, then its entry's) were a third of the pass's own time
    /// (BENCHMARKS.md).
    fn fetch_ahead(&self) {
        fetch_ahead(&self.ids);
        fetch_ahead(&self.sent);
    }

    /// Where `id` is in [`Self::kept`]: the player knew it, on the server that handed it
    /// here, under the handle kept there.
    fn kept_at(&self, id: EntityId) -> Option<usize> {
        self.kept.binary_search_by_key(&id, |&(id, _)| id).ok()
    }

    /// Looks at `state`, at `tick`, of an entity in view, which is owed `owed_a_tick`
    /// a tick its news waits ([`budget::owed_a_tick`]) if it is a newcomer, or else
    /// `owed_a_tick(false)`. A newcomer gets an entry, without a handle until it is told
    /// of, unless the player has [`MAX_KNOWN_ENTITIES`] already: so the entities a
    /// player knows stay few enough that all leaving at once still fits one update.
    fn look(&mut self, state: EntityState, tick: u64, tick_seconds: f32, owed_a_tick: impl Fn(bool) -> f32) -> Look {
        // An entity is in a player's view once a tick, so this tick's newcomers need no search.
        let entry = match self.ids.binary_search(&state.id) {
            Ok(known) => known,
            Err(_) if self.sent.len() >= MAX_KNOWN_ENTITIES => return Look::NoRoom,
            Err(_) => {
                self.sent.push(Sent { state, tick, seen: tick, handle: None, owed: 0.0 });
                self.sent.len() - 1
            }
        };
        let sent = &mut self.sent[entry];
        sent.seen = tick;
        let newcomer = sent.handle.is_none();
        if !newcomer && !must_resend(&sent.state, sent.tick, &state, tick, tick_seconds) {
            sent.owed = 0.0;
            return Look::Nothing;
        }
        sent.owed += owed_a_tick(newcomer);
        Look::Owed { entry, owed: sent.owed, newcomer }
    }

    /// Tells the player of `entry` as `state` at `tick`, recording it as sent: how the
    /// update mentions it, or `None` for a newcomer with no handle free.
    fn tell(&mut self, entry: usize, state: EntityState, tick: u64) -> Option<Mention> {
        let sent = &self.sent[entry];
        let mention = match sent.handle {
            Some(handle) => Mention::Known { handle, last: sent.state, last_tick: sent.tick },
            None => {
                let mention = match self.kept_at(state.id) {
                    Some(kept) => Mention::Kept(self.kept.remove(kept).1),
                    None => Mention::New(self.handles.take()?),
                };
                self.sent[entry].handle = Some(mention.handle());
                mention
            }
        };
        let sent = &mut self.sent[entry];
        (sent.state, sent.tick, sent.owed) = (state, tick, 0.0);
        Some(mention)
    }

    /// Records `state`, of an entity known, as sent at `tick` after all: a change that
    /// waited, and rides along with an update sent anyway. Only after [`Self::end_tick`].
    fn told_after_all(&mut self, state: EntityState, tick: u64) -> Option<Mention> {
        let entry = self.ids.binary_search(&state.id).ok()?;
        self.tell(entry, state, tick)
    }

    /// Ends the player's pass of `tick`, in which `in_view` of its entries were seen:
    /// forgets those not seen, returns those the player knew with their handles (free
    /// again), and sorts the newcomers in.
    fn end_tick(&mut self, tick: u64, in_view: usize) -> Vec<(EntityId, Handle)> {
        // The first update here told of those kept it had room for; the player forgets the rest.
        for (_, handle) in self.kept.drain(..) {
            self.handles.give_back(handle);
        }
        let arrived = self.sent.len() > self.ids.len();
        let mut left = Vec::new();
        let leaving = self.sent.len() > in_view;
        if leaving {
            self.sent.retain(|sent| {
                let keep = sent.seen == tick;
                if let (false, Some(handle)) = (keep, sent.handle) {
                    left.push((sent.state.id, handle));
                }
                keep
            });
            left.iter().for_each(|&(_, handle)| self.handles.give_back(handle));
        }
        if arrived {
            // Forgetting kept the order: only the newcomers, at the end, are out of it.
            self.sent.sort_unstable_by_key(|sent| sent.state.id);
        }
        if arrived || leaving {
            self.ids.clear();
            self.ids.extend(self.sent.iter().map(|sent| sent.state.id));
        }
        debug_assert!(self.ids.iter().eq(self.sent.iter().map(|sent| &sent.state.id)), "the ids are the entries'");
        left
    }

    /// At most how many entities leave the player's view this tick, having had `in_view`
    /// of its entries seen: those not seen (newcomers never told of among them, so it
    /// may be fewer).
    fn leaving(&self, in_view: usize) -> usize {
        self.sent.len().saturating_sub(in_view)
    }
}

fn send_player_updates(
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    pace: Res<UpdatePace>,
    visible: Query<Seen>,
    mut players: Query<Recipient, Without<Parked>>,
    mut links: ResMut<ProxyLinks>,
) {
    let everything: Vec<Seen> = visible.iter().collect();
    // As updates carry them, so that what is recorded as sent is what players extrapolate.
    let states: Vec<EntityState> = everything
        .iter()
        .map(|&(&id, position, velocity, _)| quantised(EntityState { id, position: position.0, velocity: velocity.0 }))
        .collect();
    let radius = settings.view_radius();
    let tick_seconds = tick_seconds(settings.cluster.simulation.tick_hz);
    // The baseline sends everyone everything: no budget.
    let bytes_per_second = if settings.broadcast_baseline {
        f32::INFINITY
    } else {
        settings.cluster.simulation.player_bytes_per_second as f32
    };
    let grid = Grid::new(radius, everything.iter().map(|(_, position, _, _)| position.0), &states);
    let pass = Pass {
        everything: &everything,
        states: &states,
        grid,
        radius,
        broadcast: settings.broadcast_baseline,
        tick: tick.0,
        tick_seconds,
    };
    let mut per_proxy: HashMap<ProxyId, ProxyBatch> = HashMap::new();
    // Every frame of the tick is split off this one buffer: one allocation for many
    // frames (a tick's frames take tens of kilobytes), not one or more for each.
    let mut encoded = BytesMut::with_capacity(ENCODE_CHUNK);
    let mut mentions = Mentions::default();
    let mut owed = Vec::new();
    let stats = &settings.stats;
    for (&user, &id, player, queue, position, velocity, mut known) in &mut players {
        let full = known.told.is_none();
        if full {
            known.budget = ByteBudget::full(bytes_per_second);
        } else {
            known.budget.refill(bytes_per_second, tick_seconds);
        }
        // A player new here hears at once, and so does one with an input newly applied;
        // what others did, when its turn comes.
        let due = full || pace.due(id, tick.0);
        let acknowledging =
            known.told.is_some_and(|told| (told.last_input, told.inputs_applied) != (queue.last_input, queue.applied));
        if !due && !acknowledging {
            stats.updates_paced.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        mentions.changed.clear();
        mentions.left.clear();
        let news = if due { pass.look(id, position.0, &mut known, &mut owed, &mut mentions) } else { News::default() };
        let mut update = PlayerUpdate {
            tick: tick.0,
            server: settings.id,
            last_input: queue.last_input,
            inputs_applied: queue.applied,
            you: quantised_own(EntityState { id, position: position.0, velocity: velocity.0 }),
            your_tick: queue.your_tick(),
            full,
            changed: news.changed,
            left: news.left,
            names: news.names,
            changed_handles: Vec::new(),
            left_handles: Vec::new(),
            update_every: pace.every(),
            // An update that only acknowledges (no pass ran) says what the last one did.
            budget_spent: if due { news.budget_spent } else { known.told.is_some_and(|told| told.budget_spent) },
            others_counted: None,
        };
        let told = Told::of(&update);
        let quiet = update.changed.is_empty() && update.left.is_empty();
        if quiet && known.told.is_some_and(|was| was.covers(&told, tick_seconds)) {
            stats.updates_quiet.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        known.told = Some(told);
        let mut room = news.room;
        for state in news.waiting {
            if !budget::fits(budget::MOVED_BYTES, room, update.changed.len()) {
                break;
            }
            if let Some(mention) = known.told_after_all(state, tick.0) {
                update.changed.push(state);
                mentions.changed.push(mention);
                room -= budget::MOVED_BYTES;
            }
        }
        let packed = known.packer.pack(&update, &mentions, tick_seconds).map_err(|err| err.to_string());
        let encoding = packed.and_then(|packed| {
            encode_frame(&ProxyToClient::Update(packed), &mut encoded).map_err(|err| err.to_string())
        });
        if let Some(problem) = match encoding {
            Err(err) => Some(err),
            Ok(()) if encoded.len() > UPDATES_FRAME_BUDGET => Some(format!("{} bytes", encoded.len())),
            Ok(()) => None,
        } {
            warn!("cannot send {user} its update ({problem}): it starts over with a full one");
            encoded.clear();
            *known = KnownEntities::default();
            continue;
        }
        known.budget.spend(encoded.len(), bytes_per_second);
        stats.updates_sent.fetch_add(1, Ordering::Relaxed);
        if update.budget_spent {
            stats.updates_budget_spent.fetch_add(1, Ordering::Relaxed);
        }
        let batch = per_proxy.entry(player.proxy).or_default();
        if batch.bytes + encoded.len() > UPDATES_FRAME_BUDGET {
            batch.send(player.proxy, tick.0, &mut links);
        }
        batch.bytes += encoded.len();
        let frame = encoded.split().freeze();
        batch.frames.push(PlayerFrame { user, last_input: queue.last_input, full, frame });
    }
    for (proxy, mut batch) in per_proxy {
        batch.send(proxy, tick.0, &mut links);
    }
}

/// Asks the processor to bring the first [`MOST_FETCHED_AHEAD`] bytes of `items` into
/// its cache, a line at a time, without waiting for them.
fn fetch_ahead<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        const LINE: usize = 64;
        let start = items.as_ptr() as usize;
        let end = start + std::mem::size_of_val(items).min(MOST_FETCHED_AHEAD);
        // From the line the first byte is in to the line the last is in.
        for line in (start & !(LINE - 1)..end).step_by(LINE) {
            // SAFETY: a prefetch reads nothing and never faults, whatever the address, and
            // SSE, which it needs, is in every x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// Bytes of one list [`fetch_ahead`] brings in at most: a crowd's lists (a thousand in
/// view is some 56 KB) would push out of the first-level cache what the pass works on.
const MOST_FETCHED_AHEAD: usize = 16 * 1024;

/// One tick's interest pass: every entity, bucketed by where it stands.
struct Pass<'a> {
    everything: &'a [Seen<'a>],
    /// What players are told of each of `everything`.
    states: &'a [EntityState],
    grid: Grid,
    radius: f32,
    broadcast: bool,
    tick: u64,
    tick_seconds: f32,
}

impl Pass<'_> {
    /// What the player `id` at `position`, knowing `known`, is told of the others in
    /// its view: all of its news if its budget has room, else the most owed first
    /// ([`budget`]). `owed` is a buffer the pass reuses for every player.
    fn look(
        &self,
        id: EntityId,
        position: Vec2,
        known: &mut KnownEntities,
        owed: &mut Vec<Owed>,
        mentions: &mut Mentions,
    ) -> News {
        known.fetch_ahead();
        // Entities in view the player has entries for: if it has more, some left its view.
        let (mut news, mut in_view) = (News::default(), 0);
        owed.clear();
        let far_may_wait = !self.tick.wrapping_add(id.0).is_multiple_of(FAR_EVERY);
        let near = self.radius * NEAR_SHARE_OF_VIEW;
        // The baseline looks at everyone, bucket after bucket (in the map's order, fixed:
        // Bevy's maps hash with a fixed seed).
        let everyone: &[Member] = if self.broadcast { &self.grid.members } else { &[] };
        let nearby = (!self.broadcast).then(|| self.grid.near(position)).into_iter().flatten();
        for &Member { position: other_position, state, index } in everyone.iter().chain(nearby) {
            let distance_squared = other_position.distance_squared(position);
            if state.id == id || (!self.broadcast && distance_squared > self.radius * self.radius) {
                continue;
            }
            let owed_a_tick = |newcomer| budget::owed_a_tick(distance_squared.sqrt(), self.radius, newcomer);
            match known.look(state, self.tick, self.tick_seconds, owed_a_tick) {
                Look::NoRoom => continue,
                Look::Nothing => {}
                Look::Owed { entry, owed: how_much, newcomer } => owed.push(Owed {
                    entry,
                    index,
                    owed: how_much,
                    bytes: if !newcomer {
                        budget::MOVED_BYTES
                    } else if known.kept_at(state.id).is_some() {
                        budget::KEPT_BYTES
                    } else {
                        budget::ENTERED_BYTES + self.everything[index].3.name.len() as f32
                    },
                    may_wait: !newcomer && far_may_wait && distance_squared > near * near,
                }),
            }
            in_view += 1;
        }
        let mut room = known.budget.room(known.leaving(in_view));
        budget::most_owed_first(owed, room, MAX_STATES_PER_UPDATE);
        for news_of in owed.iter() {
            let state = self.states[news_of.index];
            if news_of.may_wait {
                news.waiting.push(state);
                continue;
            }
            if !budget::fits(news_of.bytes, room, news.changed.len()) {
                // The room left is saved for the most owed, not spent on cheaper news
                // below it: a newcomer's name costs several turns of those known, who,
                // turning every tick, would otherwise take every tick's room for ever.
                news.budget_spent = true;
                break;
            }
            let Some(mention) = known.tell(news_of.entry, state, self.tick) else { continue };
            if let Mention::New(_) = mention {
                news.names.push((state.id, self.everything[news_of.index].3.name));
            }
            room -= news_of.bytes;
            news.changed.push(state);
            mentions.changed.push(mention);
        }
        news.room = room;
        for (left, handle) in known.end_tick(self.tick, in_view) {
            news.left.push(left);
            mentions.left.push(handle);
        }
        news
    }
}

/// What one player's pass found to tell it of the others in its view: their states new
/// or changed, the names of those new to it, and who left its view (how the update
/// mentions each goes in the pass's [`Mentions`], one for all players, so its memory
/// is reused); the far changes that may wait for its next update, most owed first, sent
/// with this one if it goes and its budget has `room` left; and whether news was left
/// for later for want of budget.
#[derive(Default)]
struct News {
    changed: Vec<EntityState>,
    names: Vec<(EntityId, EntityName)>,
    left: Vec<EntityId>,
    waiting: Vec<EntityState>,
    room: f32,
    budget_spent: bool,
}

/// Player frames on their way to one proxy.
#[derive(Default)]
struct ProxyBatch {
    frames: Vec<PlayerFrame>,
    bytes: usize,
}

impl ProxyBatch {
    fn send(&mut self, proxy: ProxyId, tick: u64, links: &mut ProxyLinks) {
        if !self.frames.is_empty() {
            links.send(proxy, ServerToProxy::Updates { tick, frames: std::mem::take(&mut self.frames) });
        }
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RADIUS: f32 = 400.0;
    const TICK: f32 = 0.05;
    /// The player the updates are for, standing at the origin.
    const ME: EntityId = EntityId(1_000_000);

    /// Someone in the world: its id, where it is, and where it walks.
    type Someone = (u64, Vec2, Vec2);

    fn standing(id: u64, x: f32) -> Someone {
        (id, Vec2::new(x, 10.0), Vec2::ZERO)
    }

    /// A player's interest, tick by tick, with its budget refilled and spent as the
    /// server does (spent by what its updates would take on the wire, estimated).
    struct Interest {
        known: KnownEntities,
        bytes_per_second: f32,
        tick: u64,
    }

    impl Interest {
        fn with_budget(bytes_per_second: f32) -> Self {
            let known = KnownEntities { budget: ByteBudget::full(bytes_per_second), ..default() };
            Self { known, bytes_per_second, tick: 0 }
        }

        /// The player's pass of the next tick over `world`.
        fn next(&mut self, world: &[Someone]) -> News {
            self.tick += 1;
            self.known.budget.refill(self.bytes_per_second, TICK);
            let owned: Vec<(EntityId, Position, Velocity, Visible)> = world
                .iter()
                .map(|&(id, at, walk)| {
                    (
                        EntityId(id),
                        Position(at),
                        Velocity(walk),
                        Visible { name: EntityName::from(&format!("p{id}")).unwrap() },
                    )
                })
                .collect();
            let everything: Vec<Seen> = owned.iter().map(|(id, at, walk, visible)| (id, at, walk, visible)).collect();
            let states: Vec<EntityState> = owned
                .iter()
                .map(|(id, at, walk, _)| quantised(EntityState { id: *id, position: at.0, velocity: walk.0 }))
                .collect();
            let pass = Pass {
                everything: &everything,
                states: &states,
                grid: Grid::new(RADIUS, owned.iter().map(|(_, at, _, _)| at.0), &states),
                radius: RADIUS,
                broadcast: false,
                tick: self.tick,
                tick_seconds: TICK,
            };
            let news = pass.look(ME, Vec2::ZERO, &mut self.known, &mut Vec::new(), &mut Mentions::default());
            let names: usize = news.names.iter().map(|(_, name)| budget::ENTERED_BYTES as usize + name.len()).sum();
            let moved = (news.changed.len() - news.names.len()) * budget::MOVED_BYTES as usize;
            let bytes = budget::UPDATE_BYTES as usize + names + moved + news.left.len();
            self.known.budget.spend(bytes, self.bytes_per_second);
            news
        }

        fn told_of(news: &News) -> Vec<u64> {
            news.changed.iter().map(|state| state.id.0).collect()
        }
    }

    /// The grid finds, around any point, every entity of the 3×3 cells there and no
    /// other, each once, with its own state: on both sides of zero, in empty cells and
    /// in full ones.
    #[test]
    fn the_grid_finds_each_entity_near_a_point_once() {
        let cell = 100.0;
        let positions: Vec<Vec2> =
            (0..500).map(|i| Vec2::new(((i * 37) % 1000) as f32 - 500.0, ((i * 91) % 700) as f32 - 350.0)).collect();
        let states: Vec<EntityState> = (0..500)
            .map(|i| EntityState { id: EntityId(i), position: positions[i as usize], velocity: Vec2::ZERO })
            .collect();
        let grid = Grid::new(cell, positions.iter().copied(), &states);
        assert_eq!(grid.members.len(), positions.len());
        for point in [Vec2::ZERO, Vec2::new(-450.0, 320.0), Vec2::new(499.0, -1.0), Vec2::new(5000.0, 0.0)] {
            let (x, y) = Grid::key(cell, point);
            let mut expected: Vec<usize> = (0..positions.len())
                .filter(|&i| {
                    let (ex, ey) = Grid::key(cell, positions[i]);
                    (ex - x).abs() <= 1 && (ey - y).abs() <= 1
                })
                .collect();
            let mut found: Vec<usize> = grid.near(point).map(|member| member.index).collect();
            assert!(grid.near(point).all(|member| member.state == states[member.index]), "each with its state");
            assert!(grid.near(point).all(|member| member.position == positions[member.index]));
            expected.sort_unstable();
            found.sort_unstable();
            assert_eq!(found, expected, "around {point}");
        }
    }

    #[test]
    fn a_crowd_arrives_over_a_few_ticks_and_what_is_known_stays_bounded() {
        let mut interest = Interest::with_budget(f32::INFINITY);
        let crowd: Vec<Someone> = (0..2 * MAX_KNOWN_ENTITIES as u64).map(|id| standing(id, 10.0)).collect();
        let news = interest.next(&crowd);
        assert_eq!((news.changed.len(), news.names.len()), (MAX_STATES_PER_UPDATE, MAX_STATES_PER_UPDATE));
        assert!(news.budget_spent, "more news than one update takes");
        while interest.known.sent.iter().any(|sent| sent.handle.is_none())
            || interest.known.sent.len() < MAX_KNOWN_ENTITIES
        {
            let news = interest.next(&crowd);
            assert!(news.changed.len() <= MAX_STATES_PER_UPDATE);
            assert!(interest.tick < 100, "the crowd is told about within a few ticks");
        }
        let news = interest.next(&crowd);
        assert!(news.changed.is_empty() && news.left.is_empty(), "nothing new beyond what may be known");
        // Everyone moves: the known are told again, at most a full update's worth a
        // tick, and the rest are still known, and extrapolated.
        let moved: Vec<Someone> = (0..2 * MAX_KNOWN_ENTITIES as u64).map(|id| standing(id, 50.0)).collect();
        let news = interest.next(&moved);
        assert_eq!((news.changed.len(), news.names.len(), news.left.len()), (MAX_STATES_PER_UPDATE, 0, 0));
    }

    #[test]
    fn a_crowd_over_the_budget_arrives_nearest_first_and_all_of_it() {
        let mut interest = Interest::with_budget(2048.0);
        // 200 standing 1 to 200 units away, in no order of distance.
        let crowd: Vec<Someone> = (1..=200u64).map(|id| standing(id, ((id * 37) % 200 + 1) as f32)).collect();
        let distance = |id: u64| crowd.iter().find(|someone| someone.0 == id).unwrap().1.x;
        let first = interest.next(&crowd);
        assert!(first.budget_spent, "a second's worth does not hold 200 names");
        let told = Interest::told_of(&first);
        assert!(told.len() > 50, "a second's worth holds dozens: {}", told.len());
        let farthest_told = told.iter().map(|&id| distance(id)).fold(0.0, f32::max);
        let untold = crowd.iter().filter(|someone| !told.contains(&someone.0));
        assert!(untold.clone().all(|someone| someone.1.x >= farthest_told), "the nearest first");
        // The rest come at the budget's rate, nearest first again, until all are known.
        let mut known = told.len();
        while known < crowd.len() {
            let news = interest.next(&crowd);
            assert!(news.names.len() <= 5, "a tick's worth of 2 KB/s is about 4 names: {}", news.names.len());
            known += news.names.len();
            assert!(interest.tick < 60, "all 200 are known within a few seconds");
        }
        let news = interest.next(&crowd);
        assert!(!news.budget_spent && news.changed.is_empty(), "all told, nothing owed");
    }

    #[test]
    fn the_far_are_told_later_and_a_newcomer_in_the_end_however_busy_the_near() {
        let mut interest = Interest::with_budget(500.0);
        let near: Vec<Someone> = (1..=10u64).map(|id| standing(id, id as f32)).collect();
        let (far, newcomer) = (99, 77);
        let mut world = near.clone();
        world.push(standing(far, 300.0));
        while interest.known.sent.iter().any(|sent| sent.handle.is_none()) {
            interest.next(&world);
            assert!(interest.tick < 100, "all arrive");
        }
        // Now everyone walks off, and the near turn every tick: more news than a tick's
        // budget (25 bytes at 500 B/s) could ever hold. Halfway, a newcomer comes.
        let walking = |tick: u64, someone: &Someone| {
            let turn = if someone.0 != far && tick.is_multiple_of(2) { -1.0 } else { 1.0 };
            (someone.0, someone.1, Vec2::new(0.0, turn))
        };
        let (mut spent, mut told, mut bytes) = (0, HashMap::<u64, usize>::new(), 0.0);
        let ticks = 400;
        for tick in 0..ticks {
            if tick == ticks / 2 {
                world.push(standing(newcomer, 150.0));
            }
            let world: Vec<Someone> = world.iter().map(|someone| walking(interest.tick, someone)).collect();
            let news = interest.next(&world);
            spent += usize::from(news.budget_spent);
            bytes += budget::UPDATE_BYTES + budget::MOVED_BYTES * news.changed.len() as f32;
            Interest::told_of(&news).into_iter().for_each(|id| *told.entry(id).or_default() += 1);
        }
        assert!(spent > ticks * 9 / 10, "the budget binds: spent in {spent} of {ticks} ticks");
        let seconds = ticks as f32 * TICK;
        assert!(bytes <= 500.0 * (seconds + 1.0), "{bytes} bytes in {seconds} s, a second's worth saved before");
        let far_told = told.get(&far).copied().unwrap_or(0);
        assert!(far_told >= 5, "the far one is told of now and then all the same: {far_told} times");
        assert!(near.iter().all(|someone| told[&someone.0] > far_told), "the near more often: {told:?}");
        assert!(told.contains_key(&newcomer), "the newcomer is shown in the end: {told:?}");
    }

    #[test]
    fn a_far_change_waits_unrecorded_until_told_after_all() {
        let mut interest = Interest::with_budget(f32::INFINITY);
        let far = |x: f32| vec![standing(4, x)];
        assert_eq!(Interest::told_of(&interest.next(&far(300.0))), [4]);
        // A far change may wait on every other tick, the player's phase.
        let waits = |interest: &Interest| !(interest.tick + 1).wrapping_add(ME.0).is_multiple_of(FAR_EVERY);
        if !waits(&interest) {
            interest.next(&far(300.0));
        }
        let news = interest.next(&far(320.0));
        assert!(news.changed.is_empty() && news.waiting.len() == 1, "it waits");
        let moved = news.waiting[0];
        let told = Some(Mention::Known { handle: 0, last: quantised(standing_state(4, 300.0)), last_tick: 1 });
        assert_eq!(interest.known.told_after_all(moved, interest.tick), told, "against what it was told before");
        let news = interest.next(&far(320.0));
        assert!(news.changed.is_empty() && news.waiting.is_empty(), "told at last");
    }

    fn standing_state(id: u64, x: f32) -> EntityState {
        let (_, position, velocity) = standing(id, x);
        EntityState { id: EntityId(id), position, velocity }
    }

    #[test]
    fn those_out_of_view_leave_and_are_named_again_when_back() {
        let mut interest = Interest::with_budget(f32::INFINITY);
        let at = |ids: &[u64], x: f32| ids.iter().map(|&id| standing(id, x)).collect::<Vec<_>>();
        let counts = |news: News| (news.changed.len(), news.names.len(), news.left.len());
        assert_eq!(counts(interest.next(&at(&[5, 1, 9, 3], 10.0))), (4, 4, 0));
        assert_eq!(counts(interest.next(&at(&[9, 1], 10.0))), (0, 0, 2), "3 and 5 left");
        assert_eq!(counts(interest.next(&at(&[3, 9, 1, 7], 10.0))), (2, 2, 0), "3 is new again, and 7");
        let mut handles: Vec<Handle> = interest.known.sent.iter().filter_map(|sent| sent.handle).collect();
        handles.sort_unstable();
        assert_eq!(handles, [0, 1, 2, 3], "those that came took the handles of those that left");
        assert_eq!(counts(interest.next(&at(&[7, 3, 1, 9], 10.0))), (0, 0, 0), "all known, none moved");
        assert_eq!(counts(interest.next(&at(&[1], 30.0))), (1, 0, 3), "1 moved; 3, 7 and 9 left");
    }
}
