//! Per-player interest, in `PostUpdate` once per tick: every player is sent itself and
//! what changed within its view radius since it was last told (see [`PlayerUpdate`]),
//! packed against what its link carried before ([`UpdatePacker`]: small handles for
//! ids, motion in fixed point, each number as its change) and encoded once, here, as
//! the frame the proxy forwards untouched; a player told
//! nothing it could not extrapolate, and acknowledged no input, is sent nothing, for
//! a few ticks at most ([`most_quiet_ticks`]), and a change far from it waits a tick at
//! most for the next update ([`FAR_EVERY`]). Past capacity, each player's pass runs
//! only on the ticks [`UpdatePace`] says it is due; an input applied is acknowledged
//! at once all the same. A uniform grid of view-radius cells keeps this linear in the
//! number of entities. The broadcast baseline sends every player everything instead.

use crate::components::Visible;
use crate::input_queue::InputQueue;
use crate::net::{NetSystems, ProxyLinks};
use crate::pacing::UpdatePace;
use crate::players::{Parked, Player};
use crate::settings::ServerSettings;
use crate::tick::SimulationTick;
use bevy::platform::collections::HashMap;
use bevy::prelude::*;
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::framing::encode_frame;
use tessera_shared::ids::{EntityId, ProxyId, UserId};
use tessera_shared::protocol::packing::{Handle, Handles, Mention, Mentions, quantised, quantised_own};
use tessera_shared::protocol::{
    EntityState, MAX_KNOWN_ENTITIES, MAX_STATES_PER_UPDATE, PlayerFrame, PlayerUpdate, ProxyToClient, ServerToProxy,
    UPDATES_FRAME_BUDGET, UpdatePacker, most_quiet_ticks, must_resend, tick_seconds,
};
use tracing::warn;

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

/// Buckets entities by cell so a view query only looks at nearby ones.
struct Grid {
    cell: f32,
    cells: HashMap<(i32, i32), Vec<usize>>,
}

impl Grid {
    fn new(cell: f32, points: impl Iterator<Item = Vec2>) -> Self {
        let mut cells: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
        for (i, point) in points.enumerate() {
            cells.entry(Self::key(cell, point)).or_default().push(i);
        }
        Self { cell, cells }
    }

    fn key(cell: f32, point: Vec2) -> (i32, i32) {
        ((point.x / cell).floor() as i32, (point.y / cell).floor() as i32)
    }

    /// Indices of points in the 3×3 cells around `point`: a superset of those within
    /// one cell's distance.
    fn near(&self, point: Vec2) -> impl Iterator<Item = usize> + '_ {
        let (x, y) = Self::key(self.cell, point);
        (-1..=1)
            .flat_map(move |dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter_map(|key| self.cells.get(&key))
            .flatten()
            .copied()
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
    /// Sorted by entity id up to `sorted`, then the entities new this tick, sorted in
    /// at its end ([`KnownEntities::end_tick`]): a few dozen entries found by binary
    /// search in one small block of memory, where a hash map's probe per entity in view
    /// per tick was the interest pass's largest cost (BENCHMARKS.md), and a crowd
    /// arriving costs one sort, not a shift per newcomer.
    sent: Vec<Sent>,
    sorted: usize,
    /// The handles the player's link has free for entities coming into view.
    handles: Handles,
    /// The server's end of the player's link, for the next update to be packed against.
    packer: UpdatePacker,
}

#[derive(Debug)]
struct Sent {
    state: EntityState,
    tick: u64,
    /// The last tick the entity was in view.
    seen: u64,
    /// What the player's updates name it by.
    handle: Handle,
}

impl Sent {
    /// How an update that tells `state` of this entity at `tick` mentions it, recording
    /// it as sent.
    fn told(&mut self, state: EntityState, tick: u64) -> Mention {
        let mention = Mention::Known { handle: self.handle, last: self.state, last_tick: self.tick };
        (self.state, self.tick) = (state, tick);
        mention
    }
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
        }
    }

    /// Whether `now`, which tells nothing of others, can go unsent: it tells nothing the
    /// player cannot work out from this, and the player has not gone long without word.
    fn covers(&self, now: &Self, tick_seconds: f32) -> bool {
        let most_quiet = u64::from(most_quiet_ticks(now.update_every));
        now.tick.saturating_sub(self.tick) < most_quiet
            && (self.last_input, self.inputs_applied, self.clock_offset, self.update_every)
                == (now.last_input, now.inputs_applied, now.clock_offset, now.update_every)
            && !must_resend(&self.you, self.tick, &now.you, now.tick, tick_seconds)
    }
}

/// What a player is told of one entity in its view this tick.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tell {
    /// Not yet: new to the player, and no room for it this tick.
    Later,
    Nothing,
    State(Mention),
    /// An entity new to the player: its name too.
    StateAndName(Handle),
    /// A change far from the player, which waits for its next update (see [`FAR_EVERY`]).
    Waiting,
}

/// Beyond this share of the view radius, others are far: a change of theirs alone
/// sends a player an update only every [`FAR_EVERY`] ticks, at its phase, and rides
/// along with any update sent in between. So a far turn reaches the player a tick late
/// at most: less than the tick and a half others are shown behind, so nothing shown
/// jumps, and the path shown rounds the corner by that tick.
const NEAR_SHARE_OF_VIEW: f32 = 0.5;
const FAR_EVERY: u64 = 2;

impl KnownEntities {
    /// What the player must be told of `state` at `tick`, recording it as sent if
    /// anything; `states` were already put in this tick's update. With the update full
    /// ([`MAX_STATES_PER_UPDATE`]), or the player knowing all it may
    /// ([`MAX_KNOWN_ENTITIES`]), nothing: an entity already known stays known (the
    /// player goes on extrapolating it), a new one waits for a later tick. So a crowd
    /// of any size arrives over a few ticks, every update stays within what a client
    /// accepts, and the entities a player knows stay few enough that all leaving at
    /// once still fits one update. A change of a known entity that `may_wait` waits,
    /// unrecorded ([`Tell::Waiting`]).
    fn tell(&mut self, state: EntityState, tick: u64, tick_seconds: f32, states: usize, may_wait: bool) -> Tell {
        let full = states >= MAX_STATES_PER_UPDATE;
        let room_for_new = !full && self.sent.len() < MAX_KNOWN_ENTITIES;
        // An entity is in a player's view once a tick, so this tick's newcomers need no search.
        let sent = match self.sent[..self.sorted].binary_search_by_key(&state.id, |sent| sent.state.id) {
            Ok(known) => &mut self.sent[known],
            Err(_) => {
                let Some(handle) = room_for_new.then(|| self.handles.take()).flatten() else { return Tell::Later };
                self.sent.push(Sent { state, tick, seen: tick, handle });
                return Tell::StateAndName(handle);
            }
        };
        sent.seen = tick;
        if full || !must_resend(&sent.state, sent.tick, &state, tick, tick_seconds) {
            return Tell::Nothing;
        }
        if may_wait {
            return Tell::Waiting;
        }
        Tell::State(sent.told(state, tick))
    }

    /// Records `state`, of an entity known, as sent at `tick` after all: a change that
    /// waited, and rides along with an update sent anyway. Only after [`Self::end_tick`].
    fn told_after_all(&mut self, state: EntityState, tick: u64) -> Option<Mention> {
        let known = self.sent.binary_search_by_key(&state.id, |sent| sent.state.id).ok()?;
        Some(self.sent[known].told(state, tick))
    }

    /// Ends the player's pass of `tick`, in which `in_view` of the entities it knows
    /// were seen: forgets, and returns with their handles (free again), those not seen,
    /// and sorts the newcomers in.
    fn end_tick(&mut self, tick: u64, in_view: usize) -> Vec<(EntityId, Handle)> {
        let arrived = self.sent.len() > self.sorted;
        let mut left = Vec::new();
        if self.sent.len() > in_view {
            self.sent.retain(|sent| {
                let keep = sent.seen == tick;
                if !keep {
                    left.push((sent.state.id, sent.handle));
                }
                keep
            });
            left.iter().for_each(|&(_, handle)| self.handles.give_back(handle));
        }
        if arrived {
            // Forgetting kept the order: only the newcomers, at the end, are out of it.
            self.sent.sort_unstable_by_key(|sent| sent.state.id);
        }
        self.sorted = self.sent.len();
        left
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
    let grid = Grid::new(radius, everything.iter().map(|(_, position, _, _)| position.0));
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
    let mut encoded = BytesMut::new();
    let mut mentions = Mentions::default();
    let stats = &settings.stats;
    for (&user, &id, player, queue, position, velocity, mut known) in &mut players {
        let full = known.told.is_none();
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
        let news = if due { pass.look(id, position.0, &mut known, &mut mentions) } else { News::default() };
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
            update_every: pace.every(),
        };
        let told = Told::of(&update);
        let quiet = update.changed.is_empty() && update.left.is_empty();
        if quiet && known.told.is_some_and(|was| was.covers(&told, tick_seconds)) {
            stats.updates_quiet.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        known.told = Some(told);
        let room = MAX_STATES_PER_UPDATE.saturating_sub(update.changed.len());
        for state in news.waiting.into_iter().take(room) {
            if let Some(mention) = known.told_after_all(state, tick.0) {
                update.changed.push(state);
                mentions.changed.push(mention);
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
        stats.updates_sent.fetch_add(1, Ordering::Relaxed);
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
    /// What the player `id` at `position`, knowing `known`, must be told of the others
    /// in its view.
    fn look(&self, id: EntityId, position: Vec2, known: &mut KnownEntities, mentions: &mut Mentions) -> News {
        // Entities in view the player knows: if it knows more, some left its view.
        let (mut news, mut known_in_view) = (News::default(), 0);
        let far_may_wait = !self.tick.wrapping_add(id.0).is_multiple_of(FAR_EVERY);
        let near = self.radius * NEAR_SHARE_OF_VIEW;
        let everyone = if self.broadcast { 0..self.everything.len() } else { 0..0 };
        let nearby = (!self.broadcast).then(|| self.grid.near(position)).into_iter().flatten();
        for i in everyone.chain(nearby) {
            let (&other, other_position, _, visible) = self.everything[i];
            let distance_squared = other_position.0.distance_squared(position);
            if other == id || (!self.broadcast && distance_squared > self.radius * self.radius) {
                continue;
            }
            let state = self.states[i];
            let may_wait = far_may_wait && distance_squared > near * near;
            match known.tell(state, self.tick, self.tick_seconds, news.changed.len(), may_wait) {
                Tell::Later => continue,
                Tell::Nothing => {}
                Tell::State(mention) => {
                    news.changed.push(state);
                    mentions.changed.push(mention);
                }
                Tell::StateAndName(handle) => {
                    news.changed.push(state);
                    mentions.changed.push(Mention::New(handle));
                    news.names.push((other, visible.name.clone()));
                }
                Tell::Waiting => news.waiting.push(state),
            }
            known_in_view += 1;
        }
        for (left, handle) in known.end_tick(self.tick, known_in_view) {
            news.left.push(left);
            mentions.left.push(handle);
        }
        news
    }
}

/// What one player's pass found to tell it of the others in its view: their states new
/// or changed, the names of those new to it, and who left its view (how the update
/// mentions each goes in the pass's [`Mentions`], one for all players, so its memory
/// is reused); and the far changes that may wait for its next update, sent with this
/// one if it goes.
#[derive(Default)]
struct News {
    changed: Vec<EntityState>,
    names: Vec<(EntityId, String)>,
    left: Vec<EntityId>,
    waiting: Vec<EntityState>,
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

    fn at(id: u64, x: f32) -> EntityState {
        EntityState { id: EntityId(id), position: Vec2::new(x, 10.0), velocity: Vec2::ZERO }
    }

    /// One tick's update for a crowd of `ids` standing at `x`: how many states, how many
    /// named, and how many known entities left.
    fn update(known: &mut KnownEntities, ids: impl Iterator<Item = u64>, x: f32, tick: u64) -> (usize, usize, usize) {
        let (mut states, mut named, mut in_view) = (0, 0, 0);
        for id in ids {
            match known.tell(at(id, x), tick, 0.05, states, false) {
                Tell::Later => continue,
                Tell::Waiting => panic!("nothing waits where nothing may"),
                Tell::Nothing => {}
                Tell::State(_) => states += 1,
                Tell::StateAndName(_) => (states, named) = (states + 1, named + 1),
            }
            in_view += 1;
        }
        (states, named, known.end_tick(tick, in_view).len())
    }

    #[test]
    fn a_crowd_arrives_over_a_few_ticks_and_what_is_known_stays_bounded() {
        let mut known = KnownEntities::default();
        let crowd = 2 * MAX_KNOWN_ENTITIES as u64;
        let full = (MAX_STATES_PER_UPDATE, MAX_STATES_PER_UPDATE, 0);
        // Newcomers come in any order: here the crowd arrives from its far end first.
        assert_eq!(update(&mut known, (0..crowd).rev(), 10.0, 1), full);
        assert_eq!(update(&mut known, 0..crowd, 10.0, 2), full);
        let mut tick = 2;
        while known.sent.len() < MAX_KNOWN_ENTITIES {
            tick += 1;
            let (states, _, _) = update(&mut known, 0..crowd, 10.0, tick);
            assert!(states <= MAX_STATES_PER_UPDATE);
            assert!(tick < 100, "the crowd is told about within a few ticks");
        }
        assert_eq!(update(&mut known, 0..crowd, 10.0, tick + 1), (0, 0, 0), "nothing new beyond what may be known");
        // Everyone moves: the known are told again, at most a full update's worth a
        // tick, and the rest are still known, and extrapolated.
        assert_eq!(update(&mut known, 0..crowd, 50.0, tick + 2), (MAX_STATES_PER_UPDATE, 0, 0));
    }

    #[test]
    fn a_far_change_waits_unrecorded_until_told_after_all() {
        let mut known = KnownEntities::default();
        assert_eq!(update(&mut known, [4].into_iter(), 10.0, 1), (1, 1, 0));
        let moved = at(4, 30.0);
        assert_eq!(known.tell(moved, 2, 0.05, 0, true), Tell::Waiting);
        known.end_tick(2, 1);
        assert_eq!(known.tell(moved, 3, 0.05, 0, true), Tell::Waiting, "still owed: it was not recorded");
        known.end_tick(3, 1);
        let told = Some(Mention::Known { handle: 0, last: at(4, 10.0), last_tick: 1 });
        assert_eq!(known.told_after_all(moved, 3), told, "against what it was told before");
        assert_eq!(known.tell(moved, 4, 0.05, 0, false), Tell::Nothing, "told at last");
    }

    #[test]
    fn those_out_of_view_leave_and_are_named_again_when_back() {
        let mut known = KnownEntities::default();
        assert_eq!(update(&mut known, [5, 1, 9, 3].into_iter(), 10.0, 1), (4, 4, 0));
        assert_eq!(update(&mut known, [9, 1].into_iter(), 10.0, 2), (0, 0, 2), "3 and 5 left");
        assert_eq!(update(&mut known, [3, 9, 1, 7].into_iter(), 10.0, 3), (2, 2, 0), "3 is new again, and 7");
        let mut handles: Vec<Handle> = known.sent.iter().map(|sent| sent.handle).collect();
        handles.sort_unstable();
        assert_eq!(handles, [0, 1, 2, 3], "those that came took the handles of those that left");
        assert_eq!(update(&mut known, [7, 3, 1, 9].into_iter(), 10.0, 4), (0, 0, 0), "all known, none moved");
        assert_eq!(update(&mut known, [1].into_iter(), 30.0, 5), (1, 0, 3), "1 moved; 3, 7 and 9 left");
    }
}
