//! What the store keeps about a player, and what a server hands it to save: the key and
//! the id derived from it, the name (and the one rule both backends fold names by), the
//! record, and a checkpoint. Rows read back pass through [`StoredRow`] before they are
//! believed, whichever database they came from.

use glam::Vec2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::error::{NameError, StoreError};

/// The longest name the store accepts, in bytes (the protocol's `MAX_NAME_LEN`).
pub const MAX_NAME_BYTES: usize = 32;

/// A player's ed25519 public key: who the player is, whatever they are called.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlayerKey(pub [u8; 32]);

/// A player's stable id: the first 8 bytes of SHA-256 of the key, read big-endian.
/// Anyone holding the key derives the same id on any machine, without asking the store.
/// Two keys share an id with odds of about n²/2⁶⁵ for n players (one in ten million at
/// two million players); the store refuses the second such key rather than mixing them up
/// ([`StoreError::IdCollision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlayerId(pub u64);

/// Everything the store knows about one player.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayerRecord {
    pub id: PlayerId,
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
    pub id: PlayerId,
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
        let record = PlayerRecord { id: key.id(), key, name, position: spawn, last_seen_ms: now_ms, time_played_ms: 0 };
        Self { record, created: true }
    }
}

impl PlayerKey {
    pub fn id(&self) -> PlayerId {
        let digest = Sha256::digest(self.0);
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        PlayerId(u64::from_be_bytes(first))
    }
}

impl fmt::Debug for PlayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlayerKey(")?;
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))?;
        write!(f, ")")
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "player {:016x}", self.0)
    }
}

/// The form of a name that must be unique: Unicode lowercase, so "Ann" and "ANN" are one
/// name. Folded here rather than by either database, whose case rules differ (SQLite's
/// NOCASE knows only ASCII; PostgreSQL's `lower` follows the server's locale).
pub(crate) fn fold_name(name: &str) -> Result<String, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong { len: name.len() });
    }
    Ok(name.to_lowercase())
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
        let id = key.id();
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
