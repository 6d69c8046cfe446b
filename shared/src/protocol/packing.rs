//! A player update as it crosses the wire ([`PackedUpdate`]), and the two ends that
//! keep what the link has carried so far: [`UpdatePacker`] at the server, one per
//! player, and [`UpdateUnpacker`] at the player, which turns each back into the
//! [`PlayerUpdate`] the server meant.
//!
//! An update names the others by a small handle the server gives each entity for as
//! long as the player knows it, not by its 8-byte id; carries motion in fixed point
//! ([`quantised`]); and says each number as its change since the last update of the
//! link: the tick, the inputs acknowledged, the player's clock, its own position against
//! where it was heading, another's against where the player extrapolates it. That is a
//! byte or two where the whole number took four to nine. It is safe because the link
//! loses nothing: TCP delivers in order, a proxy forwards every update of the player's
//! server or disconnects the player, and whatever starts a player over (a new server, a
//! resumed session, an update that could not be sent) starts its updates over with a
//! full one, which needs nothing before it.

use super::verify::Violation;
use super::{EntityState, MAX_ENTITIES_PER_MESSAGE, MAX_KNOWN_ENTITIES, PlayerUpdate, extrapolate};
use crate::ids::{EntityId, ServerId};
use glam::Vec2;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The grid others' positions are sent on, in world units: well under the
/// [`STRAY`](super::STRAY) they may be off by anyway, and a turn seen a tick late is a
/// one-byte change.
pub const POSITION_QUANTUM: f32 = 1.0 / 8.0;

/// The grid a player's own position is sent on: fine enough that the player's
/// prediction, exact to a thousandth, never counts the rounding as a correction.
pub const OWN_POSITION_QUANTUM: f32 = 1.0 / 1024.0;

/// The grid velocities are sent on, in world units a second: extrapolating the rounding
/// strays by a quarter unit only after half a minute.
pub const VELOCITY_QUANTUM: f32 = 1.0 / 64.0;

/// Others' `state` as an update can carry it: what a server records as sent, so that
/// what it extrapolates is what the player does.
pub fn quantised(state: EntityState) -> EntityState {
    on_grid(state, POSITION_QUANTUM)
}

/// A player's own state as its update carries it.
pub fn quantised_own(state: EntityState) -> EntityState {
    on_grid(state, OWN_POSITION_QUANTUM)
}

fn on_grid(state: EntityState, position_quantum: f32) -> EntityState {
    let position = unpoint(point(state.position, position_quantum), position_quantum);
    let velocity = unpoint(point(state.velocity, VELOCITY_QUANTUM), VELOCITY_QUANTUM);
    EntityState { id: state.id, position, velocity }
}

/// A position or velocity in whole quanta. Float-to-integer casts saturate (a non-finite value
/// becomes 0 or an extreme), so nothing here panics; the server's states are finite and
/// in the world, and a player checks what it decodes.
type Point = [i64; 2];

fn point(position: Vec2, quantum: f32) -> Point {
    [to_fixed(position.x, quantum), to_fixed(position.y, quantum)]
}

fn unpoint(point: Point, quantum: f32) -> Vec2 {
    Vec2::new(from_fixed(point[0], quantum), from_fixed(point[1], quantum))
}

fn to_fixed(value: f32, quantum: f32) -> i64 {
    (f64::from(value) / f64::from(quantum)).round() as i64
}

fn from_fixed(value: i64, quantum: f32) -> f32 {
    (value as f64 * f64::from(quantum)) as f32
}

/// Which of the entities a player knows an update speaks of: given by the server when
/// the entity comes into view, free again once it leaves. Below [`MAX_KNOWN_ENTITIES`],
/// as many as the player knows at most, so one byte for the first 250.
pub type Handle = u16;

/// A [`PlayerUpdate`] on the wire. Numbers are changes since the previous update of the
/// link unless the update is `full`, when they are whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedUpdate {
    /// Ticks since the previous update.
    tick: u64,
    server: ServerId,
    full: bool,
    update_every: u8,
    /// Inputs newly acknowledged (how far `last_input` moved).
    last_input: u32,
    /// `inputs_applied` less `last_input`: 0 unless an input was applied twice.
    applied_beyond: i64,
    /// On [`OWN_POSITION_QUANTUM`]: the change from where the previous update's own state
    /// extrapolates to; its velocity, the change from the previous one's.
    you: Motion,
    /// How far the player's clock moved against the server's (`your_tick` less `tick`);
    /// the whole offset in a full update, or the first since the clock was set.
    your_tick: Option<i64>,
    entered: Vec<Entered>,
    moved: Vec<Moved>,
    left: Vec<Handle>,
}

/// A position, in whole quanta against a baseline both ends know, and a velocity on
/// [`VELOCITY_QUANTUM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Motion {
    position: Point,
    velocity: Point,
}

/// An entity coming into the player's view, at a position against the player's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entered {
    handle: Handle,
    id: EntityId,
    name: String,
    motion: Motion,
}

/// A change of an entity the player knows, at a position against where the player
/// extrapolates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Moved {
    handle: Handle,
    motion: Motion,
}

/// What both ends hold of the link: the previous update's tick, acknowledgement, own
/// state and clock offset, and for each entity the player knows, its handle and the
/// state last sent (and when), from which both extrapolate it.
#[derive(Debug, Default)]
struct LinkState {
    previous: Option<Previous>,
}

#[derive(Debug, Clone, Copy)]
struct Previous {
    tick: u64,
    last_input: u32,
    you: EntityState,
    clock_offset: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    state: EntityState,
    tick: u64,
}

impl Baseline {
    /// Where both ends expect the entity at `tick`, on the grid of others' positions.
    fn expected(&self, tick: u64, tick_seconds: f32) -> Point {
        point(extrapolate(&self.state, self.tick, tick, tick_seconds), POSITION_QUANTUM)
    }
}

fn own_expected(previous: &Previous, tick: u64, tick_seconds: f32) -> Point {
    point(extrapolate(&previous.you, previous.tick, tick, tick_seconds), OWN_POSITION_QUANTUM)
}

fn velocity_of(motion: &Motion) -> Vec2 {
    unpoint(motion.velocity, VELOCITY_QUANTUM)
}

fn fixed_velocity(velocity: Vec2) -> Point {
    point(velocity, VELOCITY_QUANTUM)
}

fn minus(a: Point, b: Point) -> Point {
    [a[0].wrapping_sub(b[0]), a[1].wrapping_sub(b[1])]
}

fn plus(a: Point, b: Point) -> Option<Point> {
    Some([a[0].checked_add(b[0])?, a[1].checked_add(b[1])?])
}

/// Why a server could not pack an update: the update breaks what updates promise (a
/// bug of the server's, which starts the player over with a full update).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("{0} came into view without a name")]
    Unnamed(EntityId),
    #[error("a name for {0}, which is not coming into view")]
    StrayName(EntityId),
    #[error("{0} left the view of a player that did not know it")]
    LeftUnknown(EntityId),
    #[error("more than {MAX_KNOWN_ENTITIES} entities known at once")]
    TooManyKnown,
    #[error("an update that is not full, first on its link")]
    NotFullFirst,
    #[error("tick {tick} after tick {previous}")]
    TickBackwards { tick: u64, previous: u64 },
}

/// A server's end of one player's link: packs each of the player's updates against
/// what the link carried before it. Every update packed must be sent (or the packer
/// replaced, and the next update be full).
#[derive(Debug, Default)]
pub struct UpdatePacker {
    link: LinkState,
    known: HashMap<EntityId, (Handle, Baseline)>,
    free: Vec<Handle>,
    next: Handle,
}

impl UpdatePacker {
    /// `update`, whose states are [`quantised`] (its own [`quantised_own`]), as its
    /// player is to be sent it, by a server whose ticks last `tick_seconds`.
    pub fn pack(&mut self, update: &PlayerUpdate, tick_seconds: f32) -> Result<PackedUpdate, PackError> {
        if update.full {
            (self.link, self.next) = (LinkState::default(), 0);
            self.known.clear();
            self.free.clear();
        }
        let previous = match self.link.previous {
            Some(previous) if !update.full => {
                if update.tick < previous.tick {
                    return Err(PackError::TickBackwards { tick: update.tick, previous: previous.tick });
                }
                Some(previous)
            }
            Some(_) => None,
            None if update.full => None,
            None => return Err(PackError::NotFullFirst),
        };
        let own = point(update.you.position, OWN_POSITION_QUANTUM);
        let clock_offset = update.your_tick.map(|yours| i64::from(yours) - update.tick as i64);
        let own_velocity = fixed_velocity(update.you.velocity);
        let (tick, last_input, you, your_tick) = match previous {
            Some(previous) => (
                update.tick - previous.tick,
                update.last_input.wrapping_sub(previous.last_input),
                Motion {
                    position: minus(own, own_expected(&previous, update.tick, tick_seconds)),
                    velocity: minus(own_velocity, fixed_velocity(previous.you.velocity)),
                },
                match (clock_offset, previous.clock_offset) {
                    (Some(now), Some(before)) => Some(now.wrapping_sub(before)),
                    (now, _) => now,
                },
            ),
            None => (update.tick, update.last_input, Motion { position: own, velocity: own_velocity }, clock_offset),
        };
        let names: HashMap<EntityId, &String> = update.names.iter().map(|(id, name)| (*id, name)).collect();
        let mut packed = PackedUpdate {
            tick,
            server: update.server,
            full: update.full,
            update_every: update.update_every,
            last_input,
            applied_beyond: i64::from(update.inputs_applied) - i64::from(update.last_input),
            you,
            your_tick,
            entered: Vec::new(),
            moved: Vec::new(),
            left: Vec::with_capacity(update.left.len()),
        };
        // Those leaving free their handles first, for those entering to take.
        for id in &update.left {
            let (handle, _) = self.known.remove(id).ok_or(PackError::LeftUnknown(*id))?;
            self.free.push(handle);
            packed.left.push(handle);
        }
        let own_for_others = point(update.you.position, POSITION_QUANTUM);
        for state in &update.changed {
            let now = Baseline { state: *state, tick: update.tick };
            let at = point(state.position, POSITION_QUANTUM);
            let velocity = fixed_velocity(state.velocity);
            match self.known.get_mut(&state.id) {
                Some((handle, baseline)) => {
                    let position = minus(at, baseline.expected(update.tick, tick_seconds));
                    packed.moved.push(Moved { handle: *handle, motion: Motion { position, velocity } });
                    *baseline = now;
                }
                None => {
                    let name = names.get(&state.id).ok_or(PackError::Unnamed(state.id))?;
                    let handle = self.free.pop().or_else(|| self.take_next()).ok_or(PackError::TooManyKnown)?;
                    self.known.insert(state.id, (handle, now));
                    let position = minus(at, own_for_others);
                    let motion = Motion { position, velocity };
                    packed.entered.push(Entered { handle, id: state.id, name: (*name).clone(), motion });
                }
            }
        }
        // Every name went to an entity entering, unless one is stray (searched for then only).
        if names.len() != packed.entered.len()
            && let Some(stray) = names.keys().find(|id| !packed.entered.iter().any(|entered| entered.id == **id))
        {
            return Err(PackError::StrayName(*stray));
        }
        self.link.previous =
            Some(Previous { tick: update.tick, last_input: update.last_input, you: update.you, clock_offset });
        Ok(packed)
    }

    fn take_next(&mut self) -> Option<Handle> {
        let handle = self.next;
        if usize::from(handle) >= MAX_KNOWN_ENTITIES {
            return None;
        }
        self.next += 1;
        Some(handle)
    }
}

/// A player's end of its link: turns each update back into what its server meant, or
/// says why it cannot be (a [`Violation`]: the link is not to be believed further).
#[derive(Debug)]
pub struct UpdateUnpacker {
    you: EntityId,
    tick_seconds: f32,
    link: LinkState,
    /// By handle: who it names and the state last sent.
    known: Vec<Option<(EntityId, Baseline)>>,
}

/// What makes a packed update impossible to unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnpackProblem {
    #[error("the first update is not full")]
    NotFullFirst,
    #[error("handle {0} names no entity the player knows")]
    UnknownHandle(Handle),
    #[error("handle {0} is in use")]
    HandleInUse(Handle),
    #[error("handle {0} (below {MAX_KNOWN_ENTITIES})")]
    HandleOutOfRange(Handle),
    #[error("a number that overflows")]
    Overflow,
}

impl UpdateUnpacker {
    /// The end of the player `you`, whose server's ticks last `tick_seconds`.
    pub fn new(you: EntityId, tick_seconds: f32) -> Self {
        Self { you, tick_seconds, link: LinkState::default(), known: Vec::new() }
    }

    pub fn unpack(&mut self, packed: PackedUpdate) -> Result<PlayerUpdate, Violation> {
        // Bounded before any work: what the frame's length let through may be more.
        let count = packed.entered.len() + packed.moved.len() + packed.left.len();
        if count > MAX_ENTITIES_PER_MESSAGE {
            return Err(Violation::TooManyEntities { count });
        }
        self.unpack_checked(packed).map_err(Violation::BadPacking)
    }

    fn unpack_checked(&mut self, packed: PackedUpdate) -> Result<PlayerUpdate, UnpackProblem> {
        use UnpackProblem::*;
        if packed.full {
            self.link = LinkState::default();
            self.known.clear();
        }
        let ts = self.tick_seconds;
        let (tick, last_input, own, clock_offset) = match self.link.previous {
            Some(previous) => {
                let tick = previous.tick.checked_add(packed.tick).ok_or(Overflow)?;
                let own = Motion {
                    position: plus(own_expected(&previous, tick, ts), packed.you.position).ok_or(Overflow)?,
                    velocity: plus(fixed_velocity(previous.you.velocity), packed.you.velocity).ok_or(Overflow)?,
                };
                let clock_offset = match (packed.your_tick, previous.clock_offset) {
                    (Some(change), Some(before)) => Some(before.checked_add(change).ok_or(Overflow)?),
                    (offset, _) => offset,
                };
                (tick, previous.last_input.wrapping_add(packed.last_input), own, clock_offset)
            }
            None if packed.full => (packed.tick, packed.last_input, packed.you, packed.your_tick),
            None => return Err(NotFullFirst),
        };
        let inputs_applied = i64::from(last_input).checked_add(packed.applied_beyond).ok_or(Overflow)?;
        let your_tick = match clock_offset {
            Some(offset) => {
                let yours = i64::try_from(tick).ok().and_then(|tick| tick.checked_add(offset));
                Some(yours.and_then(|yours| u32::try_from(yours).ok()).ok_or(Overflow)?)
            }
            None => None,
        };
        let you = EntityState {
            id: self.you,
            position: unpoint(own.position, OWN_POSITION_QUANTUM),
            velocity: velocity_of(&own),
        };
        let entities = packed.entered.len() + packed.moved.len();
        let (mut changed, mut names) = (Vec::with_capacity(entities), Vec::with_capacity(packed.entered.len()));
        let mut left = Vec::with_capacity(packed.left.len());
        for handle in packed.left {
            let (id, _) = self.slot(handle)?.take().ok_or(UnknownHandle(handle))?;
            left.push(id);
        }
        let own_for_others = point(you.position, POSITION_QUANTUM);
        for Entered { handle, id, name, motion } in packed.entered {
            if usize::from(handle) >= MAX_KNOWN_ENTITIES {
                return Err(HandleOutOfRange(handle));
            }
            if self.known.len() <= usize::from(handle) {
                self.known.resize(usize::from(handle) + 1, None);
            }
            let slot = &mut self.known[usize::from(handle)];
            if slot.is_some() {
                return Err(HandleInUse(handle));
            }
            let position = plus(own_for_others, motion.position).ok_or(Overflow)?;
            let state =
                EntityState { id, position: unpoint(position, POSITION_QUANTUM), velocity: velocity_of(&motion) };
            *slot = Some((id, Baseline { state, tick }));
            changed.push(state);
            names.push((id, name));
        }
        for Moved { handle, motion } in packed.moved {
            let (id, baseline) = self.slot(handle)?.as_mut().ok_or(UnknownHandle(handle))?;
            let position = plus(baseline.expected(tick, ts), motion.position).ok_or(Overflow)?;
            let state =
                EntityState { id: *id, position: unpoint(position, POSITION_QUANTUM), velocity: velocity_of(&motion) };
            *baseline = Baseline { state, tick };
            changed.push(state);
        }
        self.link.previous = Some(Previous { tick, last_input, you, clock_offset });
        Ok(PlayerUpdate {
            tick,
            server: packed.server,
            last_input,
            inputs_applied: u32::try_from(inputs_applied).map_err(|_| Overflow)?,
            you,
            your_tick,
            full: packed.full,
            changed,
            left,
            names,
            update_every: packed.update_every,
        })
    }

    fn slot(&mut self, handle: Handle) -> Result<&mut Option<(EntityId, Baseline)>, UnpackProblem> {
        self.known.get_mut(usize::from(handle)).ok_or(UnpackProblem::UnknownHandle(handle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encoded_frame;
    use crate::protocol::ProxyToClient;

    const TICK: f32 = 0.05;
    const ME: EntityId = EntityId(0xada0_0000_0000_0007);

    fn state(id: u64, x: f32, y: f32, vx: f32, vy: f32) -> EntityState {
        quantised(EntityState { id: EntityId(id), position: Vec2::new(x, y), velocity: Vec2::new(vx, vy) })
    }

    fn update(tick: u64, full: bool, changed: Vec<EntityState>, left: Vec<u64>) -> PlayerUpdate {
        let names = if full { changed.iter().map(|s| (s.id, format!("p{}", s.id.0))).collect() } else { Vec::new() };
        let you = EntityState {
            id: ME,
            position: Vec2::new(1000.3, 700.7) + tick as f32 * Vec2::X,
            velocity: Vec2::X * 20.0,
        };
        PlayerUpdate {
            tick,
            server: ServerId(2),
            last_input: tick as u32 / 3,
            inputs_applied: tick as u32 / 3,
            you: quantised_own(you),
            your_tick: Some(tick as u32 + 9_000),
            full,
            changed,
            left: left.into_iter().map(EntityId).collect(),
            names,
            update_every: 1,
        }
    }

    /// The update as unpacked: the same, but entities entering come before those moving.
    fn in_unpacked_order(mut update: PlayerUpdate) -> PlayerUpdate {
        let entering: Vec<EntityId> = update.names.iter().map(|(id, _)| *id).collect();
        update.changed.sort_by_key(|state| (!entering.contains(&state.id), state.id));
        update.names.sort_by_key(|(id, _)| *id);
        update
    }

    fn through(packer: &mut UpdatePacker, unpacker: &mut UpdateUnpacker, update: &PlayerUpdate) -> usize {
        let packed = packer.pack(update, TICK).expect("packs");
        let bytes = encoded_frame(&ProxyToClient::Update(packed.clone())).unwrap().len();
        let mut unpacked = unpacker.unpack(packed).expect("unpacks");
        unpacked.names.sort_by_key(|(id, _)| *id);
        assert_eq!(unpacked, in_unpacked_order(update.clone()));
        bytes
    }

    #[test]
    fn a_link_of_updates_unpacks_to_what_was_packed() {
        let (mut packer, mut unpacker) = (UpdatePacker::default(), UpdateUnpacker::new(ME, TICK));
        let walkers =
            |tick: u64| (1..=40).map(move |i| state(i, 900.0 + i as f32 * 7.3 + tick as f32 * 10.0, 650.0, 200.0, 0.0));
        through(&mut packer, &mut unpacker, &update(20_000, true, walkers(0).collect(), vec![]));
        // Some turn, one strays, two leave, one comes (taking a freed handle), ticks skip.
        let mut next = update(
            20_003,
            false,
            vec![state(3, 925.0, 650.0, 0.0, -200.0), state(7, 951.3, 650.2, 200.0, 0.0)],
            vec![5, 6],
        );
        next.changed.push(state(99, 1200.0, 900.0, -141.42, 141.42));
        next.names.push((EntityId(99), "newcomer".into()));
        next.inputs_applied += 1;
        through(&mut packer, &mut unpacker, &next);
        let mut later = update(20_004, false, vec![state(99, 1193.0, 907.1, 0.0, 0.0)], vec![3]);
        later.your_tick = later.your_tick.map(|tick| tick + 2);
        through(&mut packer, &mut unpacker, &later);
        // A full update starts over: the same entities, anew.
        through(&mut packer, &mut unpacker, &update(20_010, true, walkers(10).collect(), vec![]));
    }

    #[test]
    fn a_change_of_a_known_entity_takes_a_few_bytes_where_its_id_and_floats_took_25() {
        let (mut packer, mut unpacker) = (UpdatePacker::default(), UpdateUnpacker::new(ME, TICK));
        let walker = |x: f32, vy: f32| state(1, x, 650.0, 200.0, vy);
        through(&mut packer, &mut unpacker, &update(100, true, vec![walker(900.0, 0.0)], vec![]));
        let quiet = through(&mut packer, &mut unpacker, &update(101, false, vec![], vec![]));
        // A tick later it turned: against where it was extrapolated, its position is a
        // byte an axis; its velocity is three at most.
        let turned = through(&mut packer, &mut unpacker, &update(102, false, vec![walker(920.0, 141.0)], vec![]));
        assert!(turned - quiet <= 10, "{turned} bytes against {quiet}");
        assert!(quiet <= 20, "an update telling nothing of others takes {quiet} bytes");
    }

    #[test]
    fn what_the_link_cannot_have_meant_is_a_violation() {
        let mut packer = UpdatePacker::default();
        let full = packer.pack(&update(50, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]), TICK).unwrap();
        let problem = |packed: PackedUpdate, first: Option<&PackedUpdate>| {
            let mut unpacker = UpdateUnpacker::new(ME, TICK);
            if let Some(first) = first {
                unpacker.unpack(first.clone()).expect("the first unpacks");
            }
            match unpacker.unpack(packed) {
                Err(Violation::BadPacking(problem)) => problem,
                other => panic!("expected a packing problem, got {other:?}"),
            }
        };
        // The full update's header as a next one, telling of nobody.
        let edited = |edit: &dyn Fn(&mut PackedUpdate)| {
            let mut packed = full.clone();
            packed.full = false;
            packed.entered.clear();
            edit(&mut packed);
            packed
        };
        assert!(UpdateUnpacker::new(ME, TICK).unpack(full.clone()).is_ok());
        assert_eq!(problem(edited(&|_| {}), None), UnpackProblem::NotFullFirst);
        assert_eq!(problem(edited(&|p| p.left = vec![7]), Some(&full)), UnpackProblem::UnknownHandle(7));
        let again = |p: &mut PackedUpdate| p.entered = full.entered.clone();
        assert_eq!(problem(edited(&again), Some(&full)), UnpackProblem::HandleInUse(0));
        let moved = |p: &mut PackedUpdate| p.moved = vec![Moved { handle: 3, motion: p.you }];
        assert_eq!(problem(edited(&moved), Some(&full)), UnpackProblem::UnknownHandle(3));
        assert_eq!(problem(edited(&|p| p.tick = u64::MAX), Some(&full)), UnpackProblem::Overflow);
        assert_eq!(problem(edited(&|p| p.your_tick = Some(i64::MAX)), Some(&full)), UnpackProblem::Overflow);
        assert_eq!(problem(edited(&|p| p.applied_beyond = -1_000), Some(&full)), UnpackProblem::Overflow);
        let mut far = full.clone();
        far.entered[0].handle = MAX_KNOWN_ENTITIES as Handle;
        assert_eq!(problem(far, None), UnpackProblem::HandleOutOfRange(MAX_KNOWN_ENTITIES as Handle));
        let mut huge = full.clone();
        huge.entered[0].motion.position = [i64::MAX, 0];
        assert_eq!(problem(huge, None), UnpackProblem::Overflow);
    }

    #[test]
    fn a_server_cannot_pack_what_breaks_the_promises_of_updates() {
        let mut packer = UpdatePacker::default();
        assert_eq!(packer.pack(&update(5, false, vec![], vec![]), TICK), Err(PackError::NotFullFirst));
        let mut unnamed = update(5, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]);
        unnamed.names.clear();
        assert_eq!(packer.pack(&unnamed, TICK), Err(PackError::Unnamed(EntityId(1))));
        packer.pack(&update(6, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]), TICK).unwrap();
        let mut stray = update(7, false, vec![], vec![]);
        stray.names.push((EntityId(1), "again".into()));
        assert_eq!(packer.pack(&stray, TICK), Err(PackError::StrayName(EntityId(1))));
        let mut fresh = UpdatePacker::default();
        fresh.pack(&update(6, true, vec![], vec![]), TICK).unwrap();
        assert_eq!(fresh.pack(&update(7, false, vec![], vec![2]), TICK), Err(PackError::LeftUnknown(EntityId(2))));
        assert_eq!(
            fresh.pack(&update(5, false, vec![], vec![]), TICK),
            Err(PackError::TickBackwards { tick: 5, previous: 6 }),
            "an update that could not be packed is not the link's"
        );
    }

    #[test]
    fn handles_stay_as_few_as_the_entities_known_at_once() {
        let mut packer = UpdatePacker::default();
        let crowd = |first: u64| (first..first + 300).map(|i| state(i, 900.0, 650.0, 0.0, 0.0)).collect::<Vec<_>>();
        let mut update_of = |tick, full, changed: Vec<EntityState>, left: Vec<u64>| {
            let mut update = update(tick, full, changed.clone(), left);
            update.names = changed.iter().map(|s| (s.id, "n".into())).collect();
            packer.pack(&update, TICK).unwrap()
        };
        update_of(1, true, crowd(0), vec![]);
        let replaced = update_of(2, false, crowd(1_000), (0..300).collect());
        let handles: Vec<Handle> = replaced.entered.iter().map(|entered| entered.handle).collect();
        assert!(handles.iter().all(|&handle| handle < 300), "{handles:?}");
    }
}
