//! What the store keeps about a player, and what a server hands it to save: the record,
//! a checkpoint, and the key a name is kept unique by. Keys, the ids derived from them
//! and the name rule are `tessera_shared::identity`'s. Rows read back pass through
//! [`StoredRow`] before they are believed, whichever database they came from.

use glam::Vec2;
use serde::{Deserialize, Serialize};
use tessera_shared::identity::{PlayerKey, name_key};
use tessera_shared::ids::UserId;

use crate::error::{NameError, StoreError};

/// The longest name the store accepts, in bytes (the protocol's `MAX_NAME_LEN`).
pub const MAX_NAME_BYTES: usize = tessera_shared::protocol::MAX_NAME_LEN;

/// Everything the store knows about one player.
///
/// Its `id` is derived from its key ([`PlayerKey::user`]). Two keys share an id with
/// odds of about n²/2⁶⁵ for n players (one in ten million at two million players); the
/// store refuses the second such key rather than mixing them up
/// ([`StoreError::IdCollision`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerRecord {
    pub id: UserId,
    pub key: PlayerKey,
    /// As first claimed, with its case: a name never changes hands (see [`crate::Store::claim`]).
    pub name: String,
    /// Where the player was at the last checkpoint; for a new player, where it was claimed.
    pub position: Vec2,
    /// Unix time in milliseconds: the last checkpoint, or the claim of a new player.
    pub last_seen_ms: u64,
    /// Time in the world, summed over every checkpoint.
    pub time_played_ms: u64,
}

/// One player's state, as a server saves it in a batch ([`crate::Store::save`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checkpoint {
    pub id: UserId,
    pub position: Vec2,
    /// Unix time in milliseconds; at most `i64::MAX`.
    pub last_seen_ms: u64,
    /// Time played since this server's previous checkpoint of the player. Added to the
    /// total, so the same checkpoint saved twice counts twice: save a batch again only if
    /// the store said it was not saved. A `u32` (49 days) keeps the sum from overflowing.
    pub played_delta_ms: u32,
}

/// The result of [`crate::Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub record: PlayerRecord,
    /// True when this claim made the record; false when the key already had one (whose
    /// name may differ from the one asked for).
    pub created: bool,
}

impl Claimed {
    /// A claim that made a new record: `key`'s player, called `name`, at `spawn`, seen
    /// now (`now_ms`) for the first time.
    pub(crate) fn new_player(key: PlayerKey, name: String, spawn: Vec2, now_ms: u64) -> Self {
        let record =
            PlayerRecord { id: key.user(), key, name, position: spawn, last_seen_ms: now_ms, time_played_ms: 0 };
        Self { record, created: true }
    }
}

/// The form of `name` the store keeps unique: its [`name_key`], so "Ann" and "ANN", or
/// "paypal" and "pаypal" with a Cyrillic а, are one name. Made here rather than by either
/// database, whose case rules differ (SQLite's NOCASE knows only ASCII; PostgreSQL's
/// `lower` follows the server's locale) and which know nothing of look-alikes.
///
/// The store does not run the whole name rule (`tessera_shared::identity::check_name`:
/// the callers do, before they ask); it refuses only what it must not hold, an empty name
/// or one over [`MAX_NAME_BYTES`] bytes.
pub(crate) fn unique_name_key(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { len: name.len() });
    }
    Ok(name_key(name))
}

/// How a database stores a count or a time: SQLite and PostgreSQL integers are signed.
pub(crate) fn to_sql_int(value: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} {value} exceeds i64::MAX")))
}

impl Checkpoint {
    /// Refused before anything is written: a bad checkpoint would fail its whole batch.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if !self.position.is_finite() {
            return Err(StoreError::Invalid(format!("{} checkpointed at {}", self.id, self.position)));
        }
        to_sql_int(self.last_seen_ms, "last_seen_ms").map(drop)
    }
}

/// A player row as either database returns it, not yet believed.
pub(crate) struct StoredRow {
    pub id: i64,
    pub key: Vec<u8>,
    pub name: String,
    pub x: f32,
    pub y: f32,
    pub last_seen_ms: i64,
    pub time_played_ms: i64,
}

impl TryFrom<StoredRow> for PlayerRecord {
    type Error = StoreError;

    fn try_from(row: StoredRow) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("player row {}: {what}", row.id));
        let key = PlayerKey(row.key.as_slice().try_into().map_err(|_| corrupt("key is not 32 bytes"))?);
        let id = key.user();
        if id.0.cast_signed() != row.id {
            return Err(corrupt("id is not derived from its key"));
        }
        Ok(PlayerRecord {
            id,
            key,
            position: Vec2::new(row.x, row.y),
            last_seen_ms: u64::try_from(row.last_seen_ms).map_err(|_| corrupt("negative last_seen_ms"))?,
            time_played_ms: u64::try_from(row.time_played_ms).map_err(|_| corrupt("negative time_played_ms"))?,
            name: row.name,
        })
    }
}

/// Now, in Unix milliseconds (0 for a clock set before 1970).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}
