//! A player update as it crosses the wire ([`PackedUpdate`]), and the two ends that
//! keep what the link has carried so far: [`UpdatePacker`] at the server, one per
//! player, and [`UpdateUnpacker`] at the player, which turns each back into the
//! [`PlayerUpdate`] the server meant.
//!
//! An update names the others by a small handle the server gives each entity for as
//! long as the player knows it, not by its 8-byte id; carries positions in fixed point
//! ([`quantised`]) and a walker's velocity as its heading, one byte; says each number as
//! its change since the last update of the link (the tick, the inputs acknowledged, the
//! player's own position against where it was heading, another's against where the
//! player extrapolates it); and leaves out what did not change at all (the link's
//! [`Terms`], and others when there is no news of them). That is a byte or two where
//! the whole number took four to nine.
//!
//! It is sound because the player is told when something was lost: TCP delivers in
//! order; a server starts a player over with a full update whenever what it sent may
//! not have arrived (a new server, a resumed session, a proxy reconnected, an update
//! that could not be sent, a player that asks); and a proxy forwards a server's updates
//! to a player only from a full one on, and while it drops none of them
//! (`proxy/src/routing.rs`). Each update counts itself ([`PackedUpdate`]'s `seq`, from
//! its full update's tick): a gap ends the link of a player whose updates come by TCP,
//! and makes one whose updates come by datagram ([`super::datagram`]), which may lose
//! some, ask for a full one, instead of putting others where they are not.
//!
//! A handoff starts a player over with a full update from its new server, but the old
//! one hands on the handles the player knows others by, and the count of the last
//! update it sent ([`UpdatePacker::after`]): the new server's full update tells of those
//! it still sees under the same handles, without their ids and names ([`Terms::keeps`]),
//! most of a full update's bytes. A player that did not get that last update (a proxy
//! dropped it, racing the new server's, or a datagram was lost) cannot read it, and
//! asks for a full one.

use super::verify::Violation;
use super::{
    EntityName, EntityState, MAX_ENTITIES_PER_MESSAGE, MAX_KNOWN_ENTITIES, OthersCounted, PlayerUpdate, extrapolate,
};
use crate::components::Keys;
use crate::ids::{EntityId, ServerId};
use fixedbitset::FixedBitSet;
use glam::Vec2;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

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

/// A position or velocity in whole quanta. Float-to-integer casts saturate (a
/// non-finite value becomes 0 or an extreme), so nothing here panics; the server's
/// states are finite and in the world, and a player checks what it decodes.
type Point = [i64; 2];

fn point(position: Vec2, quantum: f32) -> Point {
    [to_fixed(position.x, quantum), to_fixed(position.y, quantum)]
}

fn unpoint(point: Point, quantum: f32) -> Vec2 {
    Vec2::new(from_fixed(point[0], quantum), from_fixed(point[1], quantum))
}

/// `value` in whole quanta, the nearest (halves away from zero). Quanta are powers of two,
/// so the division is exact; the rounding is by hand because `f32::round` is a call
/// into libm where the baseline x86-64 has no instruction for it, and this runs for
/// every coordinate of every state a server sends and a player receives.
fn to_fixed(value: f32, quantum: f32) -> i64 {
    let quanta = value / quantum;
    // Truncated toward zero (saturating; NaN is 0), then the rest is exact: below 2²⁴
    // the whole part is an f32, and beyond it every f32 is whole.
    let whole = quanta as i64;
    let rest = quanta - whole as f32;
    if rest >= 0.5 {
        whole.saturating_add(1)
    } else if rest <= -0.5 {
        whole.saturating_sub(1)
    } else {
        whole
    }
}

fn from_fixed(value: i64, quantum: f32) -> f32 {
    value as f32 * quantum
}

fn minus(a: Point, b: Point) -> Point {
    [a[0].wrapping_sub(b[0]), a[1].wrapping_sub(b[1])]
}

fn plus(a: Point, b: Point) -> Option<Point> {
    Some([a[0].checked_add(b[0])?, a[1].checked_add(b[1])?])
}

/// Which of the entities a player knows an update speaks of: given by the server when
/// the entity comes into view, free again once it leaves. Below [`MAX_KNOWN_ENTITIES`],
/// as many as the player knows at most, so one byte for the first 250.
pub type Handle = u16;

/// A [`PlayerUpdate`] on the wire. The tick, the acknowledgement and the positions are
/// changes since the previous update of the link, unless the update is full, when they
/// are whole; the rest is whole, and left out when unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackedUpdate {
    /// One more than the previous update's, wrapping; a full update's is its tick's
    /// lowest byte.
    seq: u8,
    /// Ticks since the previous update.
    tick: u64,
    /// Inputs newly acknowledged (how far `last_input` moved).
    last_input: u32,
    /// The player's own position, on [`OWN_POSITION_QUANTUM`], against where the previous
    /// update's own state extrapolates to.
    you: Motion,
    /// In a full update, and when they changed.
    terms: Option<Terms>,
    /// When there is news of others.
    others: Option<Others>,
}

/// What an update says of the link rather than of the tick: the same in most updates,
/// and then not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Terms {
    full: bool,
    server: ServerId,
    update_every: u8,
    budget_spent: bool,
    /// `inputs_applied` less `last_input`: 0 unless an input was applied twice.
    applied_beyond: i64,
    /// The player's clock against the server's (`your_tick` less `tick`), once it has one.
    clock_offset: Option<i64>,
    /// In a full update, the update of the link before it (by its `seq`) whose handles
    /// it keeps: its `moved` are the entities the player knew under them then, at
    /// positions against the player's own, as those entering are.
    keeps: Option<u8>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Others {
    entered: Vec<Entered>,
    moved: Vec<Moved>,
    left: Vec<Handle>,
}

/// A position, in whole quanta against a baseline both ends know, and a velocity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Motion {
    position: Point,
    velocity: Heading,
}

/// A velocity: one that keys give, every walker's, in one byte; any other (a walker
/// stopped by the edge of the world in one axis) in quanta of [`VELOCITY_QUANTUM`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Heading {
    Still,
    Up,
    Down,
    Left,
    Right,
    UpLeft,
    UpRight,
    DownLeft,
    DownRight,
    Other(Point),
}

/// The headings keys give, with their velocities in quanta, as both ends compute them.
static WALKS: LazyLock<[(Heading, Point); 9]> = LazyLock::new(|| {
    [
        (Heading::Still, Keys::empty()),
        (Heading::Up, Keys::UP),
        (Heading::Down, Keys::DOWN),
        (Heading::Left, Keys::LEFT),
        (Heading::Right, Keys::RIGHT),
        (Heading::UpLeft, Keys::UP | Keys::LEFT),
        (Heading::UpRight, Keys::UP | Keys::RIGHT),
        (Heading::DownLeft, Keys::DOWN | Keys::LEFT),
        (Heading::DownRight, Keys::DOWN | Keys::RIGHT),
    ]
    .map(|(heading, keys)| (heading, point(keys.walk_velocity().0, VELOCITY_QUANTUM)))
});

impl Heading {
    /// The heading of `velocity`, in quanta.
    fn of(velocity: Point) -> Self {
        WALKS.iter().find(|(_, walk)| *walk == velocity).map_or(Heading::Other(velocity), |(heading, _)| *heading)
    }

    fn velocity(self) -> Vec2 {
        let velocity = match self {
            Heading::Other(velocity) => velocity,
            walk => WALKS.iter().find(|(heading, _)| *heading == walk).map_or([0, 0], |(_, velocity)| *velocity),
        };
        unpoint(velocity, VELOCITY_QUANTUM)
    }
}

/// An entity coming into the player's view, at a position against the player's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Entered {
    handle: Handle,
    id: EntityId,
    name: EntityName,
    motion: Motion,
}

/// A change of an entity the player knows, at a position against where the player
/// extrapolates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Moved {
    handle: Handle,
    motion: Motion,
}

/// What both ends hold of the previous update of the link.
#[derive(Debug, Clone, Copy)]
struct Previous {
    seq: u8,
    tick: u64,
    last_input: u32,
    you: EntityState,
    terms: Terms,
}

impl Previous {
    /// Where the player's own state of this update extrapolates to at `tick`.
    fn own_expected(&self, tick: u64, tick_seconds: f32) -> Point {
        point(extrapolate(&self.you, self.tick, tick, tick_seconds), OWN_POSITION_QUANTUM)
    }
}

/// The state of an entity last sent (and when), from which both ends extrapolate it.
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

/// How an update speaks of one entity whose state it carries: by the handle the player
/// knows it by, and, for one it knew already, the state it was last sent (`last`, at
/// tick `last_tick`), against whose extrapolation its position goes. A server keeps
/// both with what it told each player (its interest pass's own entries, which it has
/// just read for every entity it tells of), so packing looks nothing up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mention {
    /// Coming into view under this handle: its name is the update's next.
    New(Handle),
    Known {
        handle: Handle,
        last: EntityState,
        last_tick: u64,
    },
    /// In a full update after a handoff: known to the player under this handle from the
    /// server that handed it on ([`UpdatePacker::after`]).
    Kept(Handle),
}

impl Mention {
    pub fn handle(&self) -> Handle {
        match *self {
            Mention::New(handle) | Mention::Known { handle, .. } | Mention::Kept(handle) => handle,
        }
    }
}

/// The [`Mention`] of each state in an update's `changed`, in order, and the handle of
/// each entity in its `left`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mentions {
    pub changed: Vec<Mention>,
    pub left: Vec<Handle>,
}

impl Mentions {
    /// Those of a full update telling of `count` entities: all new, under handles from 0.
    pub fn all_new(count: usize) -> Self {
        let changed = (0..count).map_while(|i| Handle::try_from(i).ok()).map(Mention::New).collect();
        Self { changed, left: Vec::new() }
    }
}

/// The handles one player's link has free: the lowest never given, and those given
/// back (taken again first), so they stay as few as the entities the player knows.
#[derive(Debug, Default)]
pub struct Handles {
    free: Vec<Handle>,
    next: Handle,
}

impl Handles {
    /// Those free while `taken` are out (each below [`MAX_KNOWN_ENTITIES`], once).
    pub fn taken(taken: impl IntoIterator<Item = Handle>) -> Self {
        let mut out = vec![false; MAX_KNOWN_ENTITIES];
        for handle in taken {
            if let Some(out) = out.get_mut(usize::from(handle)) {
                *out = true;
            }
        }
        let next = out.iter().rposition(|&out| out).map_or(0, |last| last + 1);
        // Taken again lowest first, as they are popped.
        let free = (0..next).rev().filter(|&handle| !out[handle]).map(|handle| handle as Handle).collect();
        Self { free, next: next as Handle }
    }

    /// A handle for an entity coming into view, or `None` with [`MAX_KNOWN_ENTITIES`] out.
    pub fn take(&mut self) -> Option<Handle> {
        if let Some(handle) = self.free.pop() {
            return Some(handle);
        }
        let handle = self.next;
        (usize::from(handle) < MAX_KNOWN_ENTITIES).then(|| {
            self.next += 1;
            handle
        })
    }

    /// `handle`'s entity left the view: the handle is free for another.
    pub fn give_back(&mut self, handle: Handle) {
        self.free.push(handle);
    }
}

/// Why a server could not pack an update: the update breaks what updates promise (a
/// bug of the server's, which starts the player over with a full update).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("{0} came into view without its name next in the update's names")]
    Unnamed(EntityId),
    #[error("a name for {0}, which is not coming into view")]
    StrayName(EntityId),
    #[error("{states} states and {left} leaving, but {mentions} mentions and {handles} handles")]
    Unmentioned { states: usize, left: usize, mentions: usize, handles: usize },
    #[error("an update that is not full, first on its link")]
    NotFullFirst,
    #[error("tick {tick} after tick {previous}")]
    TickBackwards { tick: u64, previous: u64 },
    #[error("handle {0} kept where there is nothing to keep")]
    NothingToKeep(Handle),
}

/// A server's end of one player's link: packs each of the player's updates against
/// the one before it. Every update packed must be sent; after one that is not, or a
/// [`PackError`], the packer is to be replaced and the next update be full.
#[derive(Debug, Default)]
pub struct UpdatePacker {
    previous: Option<Previous>,
    /// The `seq` of the last update another server sent the player, whose handles the
    /// first update packed here may keep.
    after: Option<u8>,
}

impl UpdatePacker {
    /// The end of a link whose last update, `seq`, came from the server that handed the
    /// player here: the first update, full, may tell of entities under the handles the
    /// player knew them by then ([`Mention::Kept`]).
    pub fn after(seq: u8) -> Self {
        Self { previous: None, after: Some(seq) }
    }

    /// The `seq` of the last update packed, to hand on with the player.
    pub fn last_seq(&self) -> Option<u8> {
        self.previous.map(|previous| previous.seq)
    }

    /// `update` as its player is to be sent it, each state in it as `mentions` says, by
    /// a server whose ticks last `tick_seconds`: its states as [`quantised`] (its own as
    /// [`quantised_own`]), which is what the server should record as sent.
    pub fn pack(
        &mut self,
        update: &PlayerUpdate,
        mentions: &Mentions,
        tick_seconds: f32,
    ) -> Result<PackedUpdate, PackError> {
        let after = self.after.take();
        if update.full {
            self.previous = None;
        }
        let kept = mentions.changed.iter().find(|mention| matches!(mention, Mention::Kept(_)));
        let keeps = match (kept, after) {
            (None, _) => None,
            (Some(_), Some(after)) if update.full => Some(after),
            (Some(kept), _) => return Err(PackError::NothingToKeep(kept.handle())),
        };
        let previous = match self.previous {
            Some(previous) if update.tick < previous.tick => {
                return Err(PackError::TickBackwards { tick: update.tick, previous: previous.tick });
            }
            None if !update.full => return Err(PackError::NotFullFirst),
            previous => previous,
        };
        let terms = Terms {
            full: update.full,
            server: update.server,
            update_every: update.update_every,
            budget_spent: update.budget_spent,
            applied_beyond: i64::from(update.inputs_applied) - i64::from(update.last_input),
            clock_offset: update.your_tick.map(|yours| i64::from(yours) - update.tick as i64),
            keeps,
        };
        let you = quantised_own(update.you);
        let own = point(you.position, OWN_POSITION_QUANTUM);
        let mut packed = PackedUpdate {
            // A stream counts from its full update's tick, not from 0: the first update
            // after a lost full one then seldom follows on from another stream's full
            // one, as two streams counting from 0 both would.
            seq: update.tick as u8,
            tick: update.tick,
            last_input: update.last_input,
            you: Motion { position: own, velocity: Heading::of(point(you.velocity, VELOCITY_QUANTUM)) },
            terms: Some(terms),
            others: None,
        };
        if let Some(previous) = previous {
            packed.seq = previous.seq.wrapping_add(1);
            packed.tick = update.tick - previous.tick;
            packed.last_input = update.last_input.wrapping_sub(previous.last_input);
            packed.you.position = minus(own, previous.own_expected(update.tick, tick_seconds));
            packed.terms = (terms != previous.terms).then_some(terms);
        }
        if !(update.changed.is_empty() && update.left.is_empty() && update.names.is_empty()) {
            packed.others = Some(others(update, mentions, you.position, tick_seconds)?);
        }
        // The next update's terms are compared with these, as of an update not full.
        let terms = Terms { full: false, keeps: None, ..terms };
        self.previous =
            Some(Previous { seq: packed.seq, tick: update.tick, last_input: update.last_input, you, terms });
        Ok(packed)
    }
}

/// What `update` says of others, packed as `mentions` says, the player standing at `own`.
fn others(update: &PlayerUpdate, mentions: &Mentions, own: Vec2, tick_seconds: f32) -> Result<Others, PackError> {
    if (mentions.changed.len(), mentions.left.len()) != (update.changed.len(), update.left.len()) {
        return Err(PackError::Unmentioned {
            states: update.changed.len(),
            left: update.left.len(),
            mentions: mentions.changed.len(),
            handles: mentions.left.len(),
        });
    }
    let mut names = update.names.iter();
    // Each list at its size at once: in a crowd they hold hundreds.
    let entering = update.names.len();
    let mut others = Others {
        entered: Vec::with_capacity(entering),
        moved: Vec::with_capacity(update.changed.len().saturating_sub(entering)),
        left: mentions.left.clone(),
    };
    let own_for_others = point(own, POSITION_QUANTUM);
    for (state, mention) in update.changed.iter().zip(&mentions.changed) {
        let at = point(state.position, POSITION_QUANTUM);
        let velocity = Heading::of(point(state.velocity, VELOCITY_QUANTUM));
        match *mention {
            Mention::Known { handle, last, last_tick } => {
                let baseline = Baseline { state: last, tick: last_tick };
                let position = minus(at, baseline.expected(update.tick, tick_seconds));
                others.moved.push(Moved { handle, motion: Motion { position, velocity } });
            }
            Mention::New(handle) => {
                let name = match names.next() {
                    Some((named, name)) if *named == state.id => name,
                    _ => return Err(PackError::Unnamed(state.id)),
                };
                let motion = Motion { position: minus(at, own_for_others), velocity };
                others.entered.push(Entered { handle, id: state.id, name: *name, motion });
            }
            Mention::Kept(handle) => {
                let motion = Motion { position: minus(at, own_for_others), velocity };
                others.moved.push(Moved { handle, motion });
            }
        }
    }
    if let Some((stray, _)) = names.next() {
        return Err(PackError::StrayName(*stray));
    }
    Ok(others)
}

/// What a player's end keeps of the others its updates tell of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OthersKept {
    /// Each one's state as last sent, against which the next is unpacked: a player that
    /// shows others, or looks at them.
    States,
    /// Only which handles are in use: each update is checked as closely for whom it
    /// speaks of, and says how many states of others it carried and how many others
    /// are in view ([`PlayerUpdate::others_counted`]), but none of their states. For a
    /// bot that looks at nobody: keeping every other's state, a line of memory or more
    /// each gone cold by the bot's next update, was the most of what a bot cost, and
    /// nothing its cluster does depends on it (BENCHMARKS.md).
    Handles,
}

/// What a player's end knows of the others, by handle.
#[derive(Debug)]
enum Known {
    States(Baselines),
    /// The handles in use.
    Handles(FixedBitSet),
}

impl Known {
    fn new(kept: OthersKept) -> Self {
        match kept {
            OthersKept::States => Known::States(Baselines::default()),
            OthersKept::Handles => Known::Handles(FixedBitSet::new()),
        }
    }

    fn kept(&self) -> OthersKept {
        match self {
            Known::States(_) => OthersKept::States,
            Known::Handles(_) => OthersKept::Handles,
        }
    }

    /// What it knew, leaving it knowing nothing.
    fn take(&mut self) -> Self {
        std::mem::replace(self, Known::new(self.kept()))
    }

    fn forget(&mut self) {
        *self = Known::new(self.kept());
    }
}

/// A player's end of its link: turns each update back into what its server meant, or
/// says why it cannot be (a [`Violation`]: the link is not to be believed further).
#[derive(Debug)]
pub struct UpdateUnpacker {
    you: EntityId,
    tick_seconds: f32,
    previous: Option<Previous>,
    known: Known,
    /// The lists of an update unpacked before, given back emptied ([`Self::recycle`]),
    /// for the next to fill: a player unpacks an update every tick or two.
    spare: Lists,
}

/// An update's lists of others.
#[derive(Debug, Default)]
struct Lists {
    changed: Vec<EntityState>,
    left: Vec<EntityId>,
    names: Vec<(EntityId, EntityName)>,
    changed_handles: Vec<Handle>,
    left_handles: Vec<Handle>,
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
    #[error("handle {0} is not below {MAX_KNOWN_ENTITIES}")]
    HandleOutOfRange(Handle),
    #[error("update {got} of the link, after update {previous}")]
    Gap { got: u8, previous: u8 },
    #[error("an update from {got} that is not full, after one from {previous}")]
    ServerChanged { got: ServerId, previous: ServerId },
    /// Not the peer's fault: the update it follows on from was lost on the way.
    #[error("a full update keeping the handles of update {keeps}, after update {previous:?}")]
    KeptLost { keeps: u8, previous: Option<u8> },
    #[error("handles kept in an update that is not full")]
    KeptNotFull,
    #[error("a number that overflows")]
    Overflow,
}

impl UnpackProblem {
    /// Whether it says an update was lost on the way (which any link may, around a
    /// handoff), not that the link lied.
    pub fn is_loss(&self) -> bool {
        matches!(self, UnpackProblem::KeptLost { .. })
    }
}

impl UpdateUnpacker {
    /// The end of the player `you`, whose server's ticks last `tick_seconds`, keeping
    /// what `kept` says of others.
    pub fn new(you: EntityId, tick_seconds: f32, kept: OthersKept) -> Self {
        Self { you, tick_seconds, previous: None, known: Known::new(kept), spare: Lists::default() }
    }

    /// Forgets the updates so far, after one was lost: only a full update unpacks next.
    pub fn start_over(&mut self) {
        self.previous = None;
        self.known.forget();
    }

    /// Takes back the lists of `update`, once read, for the next update to reuse.
    pub fn recycle(&mut self, update: PlayerUpdate) {
        let PlayerUpdate { mut changed, mut left, mut names, mut changed_handles, mut left_handles, .. } = update;
        changed.clear();
        left.clear();
        names.clear();
        changed_handles.clear();
        left_handles.clear();
        self.spare = Lists { changed, left, names, changed_handles, left_handles };
    }

    pub fn unpack(&mut self, packed: PackedUpdate) -> Result<PlayerUpdate, Violation> {
        // Bounded before any work: what the frame's length let through may be more.
        let count = packed.others.as_ref().map_or(0, |o| o.entered.len() + o.moved.len() + o.left.len());
        if count > MAX_ENTITIES_PER_MESSAGE {
            return Err(Violation::TooManyEntities { count });
        }
        self.unpack_checked(packed).map_err(Violation::BadPacking)
    }

    fn unpack_checked(&mut self, packed: PackedUpdate) -> Result<PlayerUpdate, UnpackProblem> {
        use UnpackProblem::*;
        let terms = match (packed.terms, self.previous) {
            (Some(terms), _) => terms,
            (None, Some(previous)) => previous.terms,
            (None, None) => return Err(NotFullFirst),
        };
        let terms = Terms { full: packed.terms.is_some_and(|terms| terms.full), ..terms };
        // What a full update keeps of the handles before it.
        let mut kept = Known::new(self.known.kept());
        if terms.full {
            match terms.keeps {
                Some(keeps) if self.previous.is_some_and(|previous| previous.seq == keeps) => {
                    kept = self.known.take();
                }
                Some(keeps) => return Err(KeptLost { keeps, previous: self.previous.map(|previous| previous.seq) }),
                None => self.known.forget(),
            }
            self.previous = None;
        } else if terms.keeps.is_some() {
            return Err(KeptNotFull);
        }
        let ts = self.tick_seconds;
        let (tick, last_input, own) = match self.previous {
            Some(previous) => {
                if packed.seq != previous.seq.wrapping_add(1) {
                    return Err(Gap { got: packed.seq, previous: previous.seq });
                }
                if terms.server != previous.terms.server {
                    return Err(ServerChanged { got: terms.server, previous: previous.terms.server });
                }
                let tick = previous.tick.checked_add(packed.tick).ok_or(Overflow)?;
                let own = plus(previous.own_expected(tick, ts), packed.you.position).ok_or(Overflow)?;
                (tick, previous.last_input.wrapping_add(packed.last_input), own)
            }
            None if terms.full => (packed.tick, packed.last_input, packed.you.position),
            None => return Err(NotFullFirst),
        };
        let inputs_applied = i64::from(last_input).checked_add(terms.applied_beyond).ok_or(Overflow)?;
        let your_tick = match terms.clock_offset {
            Some(offset) => {
                let yours = i64::try_from(tick).ok().and_then(|tick| tick.checked_add(offset));
                Some(yours.and_then(|yours| u32::try_from(yours).ok()).ok_or(Overflow)?)
            }
            None => None,
        };
        let you = EntityState {
            id: self.you,
            position: unpoint(own, OWN_POSITION_QUANTUM),
            velocity: packed.you.velocity.velocity(),
        };
        let inputs_applied = u32::try_from(inputs_applied).map_err(|_| Overflow)?;
        let Lists { changed, left, names, changed_handles, left_handles } = std::mem::take(&mut self.spare);
        let mut update = PlayerUpdate {
            tick,
            server: terms.server,
            last_input,
            inputs_applied,
            you,
            your_tick,
            full: terms.full,
            changed,
            left,
            names,
            changed_handles,
            left_handles,
            update_every: terms.update_every,
            budget_spent: terms.budget_spent,
            others_counted: None,
        };
        let others = packed.others.unwrap_or_default();
        match (&mut self.known, kept) {
            (Known::States(known), Known::States(kept)) => {
                known.unpack(others, &mut update, kept, self.tick_seconds)?
            }
            (Known::Handles(in_use), Known::Handles(kept)) => count_others(in_use, others, &mut update, kept)?,
            _ => unreachable!("what a full update keeps is taken from what is known: of its kind"),
        }
        let terms = Terms { full: false, keeps: None, ..terms };
        self.previous = Some(Previous { seq: packed.seq, tick, last_input, you, terms });
        Ok(update)
    }
}

/// By handle: the state last sent of the entity it names (whose id is the state's).
#[derive(Debug, Default)]
struct Baselines(Vec<Option<Baseline>>);

impl Baselines {
    /// Puts what `others` says of them into `update`, whose tick and own state are
    /// unpacked; a full update's `moved` are of the entities known before it, `kept`.
    fn unpack(
        &mut self,
        others: Others,
        update: &mut PlayerUpdate,
        mut kept: Baselines,
        tick_seconds: f32,
    ) -> Result<(), UnpackProblem> {
        use UnpackProblem::*;
        let Others { entered, moved, left } = others;
        let tick = update.tick;
        update.changed.reserve(entered.len() + moved.len());
        update.changed_handles.reserve(entered.len() + moved.len());
        update.names.reserve(entered.len());
        update.left.reserve(left.len());
        update.left_handles.reserve(left.len());
        // Every baseline the update touches is read before any is worked on: by a bot's
        // next update its end is cold (thousands of others' came between), and reads
        // that do not wait on one another wait for memory together.
        for &handle in left.iter().chain(moved.iter().map(|Moved { handle, .. }| handle)) {
            std::hint::black_box(self.0.get(usize::from(handle)).map(Option::is_some));
        }
        for handle in left {
            let gone = self.slot(handle)?.take().ok_or(UnknownHandle(handle))?;
            update.left.push(gone.state.id);
            update.left_handles.push(handle);
        }
        let own_for_others = point(update.you.position, POSITION_QUANTUM);
        for Entered { handle, id, name, motion } in entered {
            self.enter(handle, id, motion, own_for_others, update)?;
            update.names.push((id, name));
        }
        if update.full {
            for Moved { handle, motion } in moved {
                let known = kept.slot(handle)?.take().ok_or(UnknownHandle(handle))?;
                self.enter(handle, known.state.id, motion, own_for_others, update)?;
            }
            return Ok(());
        }
        for Moved { handle, motion } in moved {
            let baseline = self.slot(handle)?.as_mut().ok_or(UnknownHandle(handle))?;
            let position = plus(baseline.expected(tick, tick_seconds), motion.position).ok_or(Overflow)?;
            let state = EntityState {
                id: baseline.state.id,
                position: unpoint(position, POSITION_QUANTUM),
                velocity: motion.velocity.velocity(),
            };
            *baseline = Baseline { state, tick };
            update.changed.push(state);
            update.changed_handles.push(handle);
        }
        Ok(())
    }

    /// Files the entity `id` under `handle`, at `motion` against the player's own
    /// position (`own`), and puts it in `update`.
    fn enter(
        &mut self,
        handle: Handle,
        id: EntityId,
        motion: Motion,
        own: Point,
        update: &mut PlayerUpdate,
    ) -> Result<(), UnpackProblem> {
        use UnpackProblem::*;
        let at = in_range(handle)?;
        if self.0.len() <= at {
            self.0.resize(at + 1, None);
        }
        let slot = &mut self.0[at];
        if slot.is_some() {
            return Err(HandleInUse(handle));
        }
        let position = plus(own, motion.position).ok_or(Overflow)?;
        let state =
            EntityState { id, position: unpoint(position, POSITION_QUANTUM), velocity: motion.velocity.velocity() };
        *slot = Some(Baseline { state, tick: update.tick });
        update.changed.push(state);
        update.changed_handles.push(handle);
        Ok(())
    }

    fn slot(&mut self, handle: Handle) -> Result<&mut Option<Baseline>, UnpackProblem> {
        self.0.get_mut(usize::from(handle)).ok_or(UnpackProblem::UnknownHandle(handle))
    }
}

/// Counts into `update` what `others` says of them, to a player that keeps only the
/// handles in use (`in_use`, see [`OthersKept::Handles`]), each checked as
/// [`Baselines::unpack`] checks it; a full update's `moved` are of those in use before
/// it, `kept`.
fn count_others(
    in_use: &mut FixedBitSet,
    others: Others,
    update: &mut PlayerUpdate,
    mut kept: FixedBitSet,
) -> Result<(), UnpackProblem> {
    use UnpackProblem::*;
    let Others { entered, moved, left } = others;
    // A handle given back must have been in use; one taken must not be.
    let give_back = |handles: &mut FixedBitSet, handle: Handle| {
        let at = usize::from(handle);
        if !handles.contains(at) {
            return Err(UnknownHandle(handle));
        }
        handles.remove(at);
        Ok(())
    };
    let take = |handles: &mut FixedBitSet, handle: Handle| {
        let at = in_range(handle)?;
        if handles.len() <= at {
            handles.grow(at + 1);
        }
        if handles.put(at) { Err(HandleInUse(handle)) } else { Ok(()) }
    };
    for handle in left {
        give_back(in_use, handle)?;
    }
    for Entered { handle, .. } in &entered {
        take(in_use, *handle)?;
    }
    for &Moved { handle, .. } in &moved {
        if update.full {
            // Each handle kept moves across once, as a baseline does.
            give_back(&mut kept, handle)?;
            take(in_use, handle)?;
        } else if !in_use.contains(usize::from(handle)) {
            return Err(UnknownHandle(handle));
        }
    }
    update.others_counted = Some(OthersCounted { states: entered.len() + moved.len(), in_view: in_use.count_ones(..) });
    Ok(())
}

/// `handle` as an index, if a player may know an entity by it.
fn in_range(handle: Handle) -> Result<usize, UnpackProblem> {
    let at = usize::from(handle);
    if at < MAX_KNOWN_ENTITIES { Ok(at) } else { Err(UnpackProblem::HandleOutOfRange(handle)) }
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
        let name = |id: EntityId| EntityName::from(&format!("p{}", id.0)).unwrap();
        let names = if full { changed.iter().map(|s| (s.id, name(s.id))).collect() } else { Vec::new() };
        // Walking right: 10 units a tick.
        let position = Vec2::new(1000.3, 700.7) + tick as f32 * 10.0 * Vec2::X;
        let you = EntityState { id: ME, position, velocity: Keys::RIGHT.walk_velocity().0 };
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
            changed_handles: Vec::new(),
            left_handles: Vec::new(),
            update_every: 1,
            budget_spent: false,
            others_counted: None,
        }
    }

    /// The update as unpacked: the same, but entities entering come before those moving.
    fn in_unpacked_order(mut update: PlayerUpdate) -> PlayerUpdate {
        let entering: Vec<EntityId> = update.names.iter().map(|(id, _)| *id).collect();
        update.changed.sort_by_key(|state| (!entering.contains(&state.id), state.id));
        update.names.sort_by_key(|(id, _)| *id);
        update
    }

    /// What a server keeps of what it told one player (its interest pass keeps it in its
    /// own entries): each entity's handle and state last sent.
    #[derive(Default)]
    struct Book {
        handles: Handles,
        known: std::collections::HashMap<EntityId, (Handle, EntityState, u64)>,
    }

    impl Book {
        fn mentions(&mut self, update: &PlayerUpdate) -> Mentions {
            if update.full {
                *self = Self::default();
            }
            let left = update.left.iter().map(|id| self.known.remove(id).expect("known").0).collect::<Vec<_>>();
            left.iter().for_each(|&handle| self.handles.give_back(handle));
            let changed = update
                .changed
                .iter()
                .map(|state| match self.known.get_mut(&state.id) {
                    Some((handle, last, last_tick)) => {
                        let mention = Mention::Known { handle: *handle, last: *last, last_tick: *last_tick };
                        (*last, *last_tick) = (*state, update.tick);
                        mention
                    }
                    None => {
                        let handle = self.handles.take().expect("a handle free");
                        self.known.insert(state.id, (handle, *state, update.tick));
                        Mention::New(handle)
                    }
                })
                .collect();
            Mentions { changed, left }
        }
    }

    /// A server's end of a link in these tests: its packer, and what it told the player.
    #[derive(Default)]
    struct Server {
        packer: UpdatePacker,
        book: Book,
    }

    impl Server {
        /// `update` packed, and the handles it went under.
        fn pack(&mut self, update: &PlayerUpdate) -> Result<(PackedUpdate, Mentions), PackError> {
            let mentions = self.book.mentions(update);
            Ok((self.packer.pack(update, &mentions, TICK)?, mentions))
        }
    }

    /// A player's end of a link in these tests, twice: keeping others' states, and
    /// keeping only their handles ([`OthersKept`]).
    struct Ends {
        states: UpdateUnpacker,
        handles: UpdateUnpacker,
    }

    impl Ends {
        fn new() -> Self {
            Self {
                states: UpdateUnpacker::new(ME, TICK, OthersKept::States),
                handles: UpdateUnpacker::new(ME, TICK, OthersKept::Handles),
            }
        }

        /// `packed` unpacked by both ends: as the end keeping states has it, once the end
        /// keeping handles is found to have counted the same, with `in_view` others known.
        fn unpack(&mut self, packed: PackedUpdate, in_view: usize) -> Result<PlayerUpdate, Violation> {
            let counted = self.handles.unpack(packed.clone());
            let unpacked = match self.states.unpack(packed) {
                Ok(unpacked) => unpacked,
                Err(violation) => {
                    assert_eq!(counted, Err(violation.clone()));
                    return Err(violation);
                }
            };
            let states = unpacked.changed.len();
            let expected = PlayerUpdate {
                changed: Vec::new(),
                left: Vec::new(),
                names: Vec::new(),
                changed_handles: Vec::new(),
                left_handles: Vec::new(),
                others_counted: Some(OthersCounted { states, in_view }),
                ..unpacked.clone()
            };
            assert_eq!(counted, Ok(expected));
            Ok(unpacked)
        }
    }

    fn through(packer: &mut Server, ends: &mut Ends, update: &PlayerUpdate) -> usize {
        let (packed, mentions) = packer.pack(update).expect("packs");
        let bytes = encoded_frame(&ProxyToClient::Update(packed.clone())).unwrap().len();
        let mut unpacked = ends.unpack(packed, packer.book.known.len()).expect("unpacks");
        // Each entity under the handle the server gave it.
        let handle = |id: EntityId| {
            let at = update.changed.iter().position(|state| state.id == id).expect("told of");
            mentions.changed[at].handle()
        };
        let handles: Vec<Handle> = unpacked.changed.iter().map(|state| handle(state.id)).collect();
        assert_eq!((&unpacked.changed_handles, &unpacked.left_handles), (&handles, &mentions.left));
        (unpacked.changed_handles, unpacked.left_handles) = (Vec::new(), Vec::new());
        unpacked.names.sort_by_key(|(id, _)| *id);
        assert_eq!(unpacked, in_unpacked_order(update.clone()));
        // As a player does once it has read an update: the next reuses its lists.
        ends.states.recycle(unpacked);
        bytes
    }

    #[test]
    fn values_round_to_the_nearest_quantum_as_f32_round_does() {
        let quantum = POSITION_QUANTUM;
        for value in [0.0, 0.06, 0.0625, 0.07, -0.0625, -0.07, 1023.94, 2047.999, -3.3, 1e-30, 8_388_607.5, 3e9] {
            assert_eq!(to_fixed(value, quantum), (value / quantum).round() as i64, "{value}");
        }
        assert_eq!(to_fixed(f32::NAN, quantum), 0);
        assert_eq!(to_fixed(f32::INFINITY, quantum), i64::MAX);
        assert_eq!(to_fixed(f32::NEG_INFINITY, quantum), i64::MIN);
    }

    #[test]
    fn a_link_of_updates_unpacks_to_what_was_packed() {
        let (mut packer, mut unpacker) = (Server::default(), Ends::new());
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
        next.names.push((EntityId(99), EntityName::from("newcomer").unwrap()));
        next.inputs_applied += 1;
        through(&mut packer, &mut unpacker, &next);
        let mut later = update(20_004, false, vec![state(99, 1193.0, 907.1, 0.0, 0.0)], vec![3]);
        later.your_tick = later.your_tick.map(|tick| tick + 2);
        through(&mut packer, &mut unpacker, &later);
        // A full update starts over: the same entities, anew.
        through(&mut packer, &mut unpacker, &update(20_010, true, walkers(10).collect(), vec![]));
    }

    #[test]
    fn a_handoff_keeps_the_handles_the_player_knows_others_by() {
        let (mut old, mut unpacker) = (Server::default(), Ends::new());
        let walkers =
            |tick: u64| (1..=40).map(move |i| state(i, 900.0 + i as f32 * 7.3 + tick as f32 * 10.0, 650.0, 200.0, 0.0));
        let told_afresh = through(&mut old, &mut unpacker, &update(20_000, true, walkers(0).collect(), vec![]));
        let (packed, _) = old.pack(&update(20_001, false, vec![], vec![5])).unwrap();
        let last = unpacker.unpack(packed, 39).unwrap();
        unpacker.states.recycle(last);
        // The new server sees 30 of the 40 (one of them the one that left, new again),
        // and one more, each under a handle free on the link.
        let seq = old.packer.last_seq().unwrap();
        let handles: std::collections::HashMap<EntityId, Handle> =
            old.book.known.iter().map(|(&id, &(handle, ..))| (id, handle)).collect();
        let mut new = UpdatePacker::after(seq);
        let mut free = Handles::taken(handles.values().copied());
        let mut handoff = update(20_003, true, walkers(3).take(30).collect(), vec![]);
        handoff.changed.push(state(77, 1000.0, 700.0, 0.0, 0.0));
        handoff.names.push((EntityId(77), EntityName::from("p77").unwrap()));
        handoff.names.retain(|(id, _)| !handles.contains_key(id));
        let mentions = Mentions {
            changed: handoff
                .changed
                .iter()
                .map(|state| {
                    handles.get(&state.id).map_or_else(|| Mention::New(free.take().unwrap()), |&h| Mention::Kept(h))
                })
                .collect(),
            left: Vec::new(),
        };
        assert_eq!(handoff.names.len(), 2, "the one that left, and the one never seen");
        let packed = new.pack(&handoff, &mentions, TICK).unwrap();
        let told_kept = encoded_frame(&ProxyToClient::Update(packed.clone())).unwrap().len();
        // Without ids and names (one byte each here, short), 30 tell of themselves in
        // well under two thirds of 40 told afresh.
        assert!(told_kept * 5 < told_afresh * 3, "{told_kept} bytes kept, {told_afresh} afresh");
        // A player that missed the old server's last update cannot read it.
        let mut behind = Ends::new();
        let first = Server::default().pack(&update(20_000, true, walkers(0).collect(), vec![])).unwrap().0;
        behind.unpack(first, 40).unwrap();
        let lost = UnpackProblem::KeptLost { keeps: seq, previous: Some(seq.wrapping_sub(1)) };
        assert_eq!(behind.unpack(packed.clone(), 0), Err(Violation::BadPacking(lost)));
        assert!(lost.is_loss());
        // The player that got it has each of them under its handle, by id, named anew only if new.
        let unpacked = unpacker.unpack(packed, 31).unwrap();
        assert!(unpacked.full);
        let by_id = |update: &PlayerUpdate| {
            let mut told: Vec<(EntityId, Handle)> =
                update.changed.iter().map(|state| state.id).zip(update.changed_handles.iter().copied()).collect();
            told.sort();
            told
        };
        let mut expected: Vec<(EntityId, Handle)> = handoff
            .changed
            .iter()
            .zip(&mentions.changed)
            .map(|(state, mention)| (state.id, mention.handle()))
            .collect();
        expected.sort();
        assert_eq!(by_id(&unpacked), expected);
        for (told, sent) in expected.iter().map(|(id, _)| {
            let find = |update: &PlayerUpdate| *update.changed.iter().find(|state| state.id == *id).unwrap();
            (find(&unpacked), find(&handoff))
        }) {
            assert_eq!(told, sent);
        }
        let mut names = unpacked.names.clone();
        names.sort_by_key(|(id, _)| *id);
        assert_eq!(names, handoff.names);
        unpacker.states.recycle(unpacked);
        // It carries on from there as any link does.
        let mut next = update(20_004, false, vec![state(77, 1010.0, 700.0, 200.0, 0.0)], vec![3]);
        next.server = handoff.server;
        let mentions = Mentions {
            changed: vec![Mention::Known {
                handle: mentions.changed[30].handle(),
                last: handoff.changed[30],
                last_tick: 20_003,
            }],
            left: vec![handles[&EntityId(3)]],
        };
        let unpacked = unpacker.unpack(new.pack(&next, &mentions, TICK).unwrap(), 30).unwrap();
        assert_eq!((unpacked.changed[0], unpacked.left.clone()), (next.changed[0], vec![EntityId(3)]));
        // Handles are kept only by a full update, and only by a server that was handed some.
        assert_eq!(
            new.pack(&next, &Mentions { changed: vec![Mention::Kept(0)], ..Mentions::default() }, TICK),
            Err(PackError::NothingToKeep(0))
        );
        let kept = Mentions { changed: vec![Mention::Kept(0)], left: Vec::new() };
        let one = update(20_010, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]);
        assert_eq!(UpdatePacker::default().pack(&one, &kept, TICK), Err(PackError::NothingToKeep(0)));
    }

    #[test]
    fn an_update_of_nothing_new_takes_13_bytes_and_another_turning_a_few_more() {
        let (mut packer, mut unpacker) = (Server::default(), Ends::new());
        let walker = |x: f32, keys: Keys| {
            quantised(EntityState { id: EntityId(1), position: Vec2::new(x, 650.0), velocity: keys.walk_velocity().0 })
        };
        through(&mut packer, &mut unpacker, &update(100, true, vec![walker(900.0, Keys::RIGHT)], vec![]));
        // Its length (4), the message's kind, its count, the tick, the acknowledgement,
        // the player's own position (2) and heading, and that nothing else changed (2).
        let quiet = through(&mut packer, &mut unpacker, &update(101, false, vec![], vec![]));
        assert!(quiet <= 13, "an update telling nothing of others takes {quiet} bytes");
        // Another turned: the lists' lengths, its handle, its position against where it
        // was extrapolated (a byte an axis) and its heading.
        let turned = through(&mut packer, &mut unpacker, &update(102, false, vec![walker(920.0, Keys::UP)], vec![]));
        assert!(turned - quiet <= 8, "{turned} bytes against {quiet}");
    }

    #[test]
    fn what_the_link_cannot_have_meant_is_a_violation() {
        let full = Server::default().pack(&update(50, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![])).unwrap().0;
        let unpacked = |kept: OthersKept, packed: PackedUpdate, first: Option<&PackedUpdate>| {
            let mut unpacker = UpdateUnpacker::new(ME, TICK, kept);
            if let Some(first) = first {
                unpacker.unpack(first.clone()).expect("the first unpacks");
            }
            unpacker.unpack(packed)
        };
        // The same, whatever the player keeps of others.
        let problem = |packed: PackedUpdate, first: Option<&PackedUpdate>| {
            let found = unpacked(OthersKept::States, packed.clone(), first);
            assert_eq!(unpacked(OthersKept::Handles, packed, first), found);
            match found {
                Err(Violation::BadPacking(problem)) => problem,
                other => panic!("expected a packing problem, got {other:?}"),
            }
        };
        // The full update as the next one, telling of nothing new.
        let edited = |edit: &dyn Fn(&mut PackedUpdate)| {
            let mut packed = PackedUpdate { seq: full.seq.wrapping_add(1), terms: None, others: None, ..full.clone() };
            edit(&mut packed);
            packed
        };
        let others =
            |entered: Vec<Entered>, moved: Vec<Moved>, left: Vec<Handle>| Some(Others { entered, moved, left });
        let terms = Terms { full: false, ..full.terms.unwrap() };
        let entering = full.others.clone().unwrap().entered;
        assert!(unpacked(OthersKept::States, full.clone(), None).is_ok());
        assert_eq!(problem(edited(&|_| {}), None), UnpackProblem::NotFullFirst);
        assert_eq!(problem(edited(&|p| p.terms = Some(terms)), None), UnpackProblem::NotFullFirst);
        assert_eq!(
            problem(edited(&|p| p.others = others(vec![], vec![], vec![7])), Some(&full)),
            UnpackProblem::UnknownHandle(7)
        );
        let again = |p: &mut PackedUpdate| p.others = others(entering.clone(), vec![], vec![]);
        assert_eq!(problem(edited(&again), Some(&full)), UnpackProblem::HandleInUse(0));
        let moved = |p: &mut PackedUpdate| p.others = others(vec![], vec![Moved { handle: 3, motion: p.you }], vec![]);
        assert_eq!(problem(edited(&moved), Some(&full)), UnpackProblem::UnknownHandle(3));
        // Handle 0 left, and moves in the same update: freed, it names nobody.
        let gone = |p: &mut PackedUpdate| p.others = others(vec![], vec![Moved { handle: 0, motion: p.you }], vec![0]);
        assert_eq!(problem(edited(&gone), Some(&full)), UnpackProblem::UnknownHandle(0));
        assert_eq!(problem(edited(&|p| p.tick = u64::MAX), Some(&full)), UnpackProblem::Overflow);
        let skipped = full.seq.wrapping_add(2);
        assert_eq!(
            problem(edited(&|p| p.seq = skipped), Some(&full)),
            UnpackProblem::Gap { got: skipped, previous: full.seq }
        );
        let elsewhere = |p: &mut PackedUpdate| p.terms = Some(Terms { server: ServerId(3), ..terms });
        let changed = UnpackProblem::ServerChanged { got: ServerId(3), previous: ServerId(2) };
        assert_eq!(problem(edited(&elsewhere), Some(&full)), changed);
        let clock = |p: &mut PackedUpdate| p.terms = Some(Terms { clock_offset: Some(i64::MAX), ..terms });
        assert_eq!(problem(edited(&clock), Some(&full)), UnpackProblem::Overflow);
        let applied = |p: &mut PackedUpdate| p.terms = Some(Terms { applied_beyond: -1_000, ..terms });
        assert_eq!(problem(edited(&applied), Some(&full)), UnpackProblem::Overflow);
        let keeping = |p: &mut PackedUpdate| p.terms = Some(Terms { keeps: Some(full.seq), ..terms });
        assert_eq!(problem(edited(&keeping), Some(&full)), UnpackProblem::KeptNotFull);
        // A full update keeping handles that were never given.
        let mut keeps_none = full.clone();
        keeps_none.terms = Some(Terms { keeps: Some(full.seq), ..full.terms.unwrap() });
        keeps_none.seq = full.seq.wrapping_add(1);
        keeps_none.others = others(vec![], vec![Moved { handle: 9, motion: full.you }], vec![]);
        assert_eq!(problem(keeps_none.clone(), Some(&full)), UnpackProblem::UnknownHandle(9));
        // A handle kept moves across once.
        let mut twice = keeps_none;
        twice.others = others(vec![], vec![Moved { handle: 0, motion: full.you }; 2], vec![]);
        assert_eq!(problem(twice, Some(&full)), UnpackProblem::UnknownHandle(0));
        let mut far = full.clone();
        far.others.as_mut().unwrap().entered[0].handle = MAX_KNOWN_ENTITIES as Handle;
        assert_eq!(problem(far, None), UnpackProblem::HandleOutOfRange(MAX_KNOWN_ENTITIES as Handle));
        // Where another is, only a player keeping their states works out.
        let mut huge = full.clone();
        huge.others.as_mut().unwrap().entered[0].motion.position = [i64::MAX, 0];
        let overflow = Err(Violation::BadPacking(UnpackProblem::Overflow));
        assert_eq!(unpacked(OthersKept::States, huge.clone(), None), overflow);
        assert!(unpacked(OthersKept::Handles, huge, None).is_ok());
    }

    #[test]
    fn a_server_cannot_pack_what_breaks_the_promises_of_updates() {
        let mut packer = UpdatePacker::default();
        let none = Mentions::default();
        assert_eq!(packer.pack(&update(5, false, vec![], vec![]), &none, TICK), Err(PackError::NotFullFirst));
        let one = Mentions::all_new(1);
        let mut unnamed = update(5, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]);
        unnamed.names.clear();
        assert_eq!(packer.pack(&unnamed, &one, TICK), Err(PackError::Unnamed(EntityId(1))));
        let unmentioned = PackError::Unmentioned { states: 1, left: 0, mentions: 0, handles: 0 };
        assert_eq!(
            packer.pack(&update(5, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]), &none, TICK),
            Err(unmentioned)
        );
        packer.pack(&update(6, true, vec![state(1, 900.0, 650.0, 0.0, 0.0)], vec![]), &one, TICK).unwrap();
        let mut stray = update(7, false, vec![], vec![]);
        stray.names.push((EntityId(1), EntityName::from("again").unwrap()));
        assert_eq!(packer.pack(&stray, &none, TICK), Err(PackError::StrayName(EntityId(1))));
        assert_eq!(
            packer.pack(&update(5, false, vec![], vec![]), &none, TICK),
            Err(PackError::TickBackwards { tick: 5, previous: 6 }),
            "the update that could not be packed is not the link's previous"
        );
    }

    #[test]
    fn handles_stay_as_few_as_the_entities_known_at_once() {
        let mut handles = Handles::default();
        let crowd: Vec<Handle> = (0..300).map(|_| handles.take().unwrap()).collect();
        crowd.into_iter().for_each(|handle| handles.give_back(handle));
        let next: Vec<Handle> = (0..300).map(|_| handles.take().unwrap()).collect();
        assert!(next.iter().all(|&handle| handle < 300), "{next:?}");
        let mut all = Handles::default();
        assert_eq!((0..=MAX_KNOWN_ENTITIES).filter_map(|_| all.take()).count(), MAX_KNOWN_ENTITIES);
    }
}
