//! Stable, cluster-wide identifiers. Nothing here is a Bevy `Entity`: these ids cross
//! process boundaries and survive handoffs between servers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A game server of the cluster map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerId(pub u16);

/// A proxy of the cluster map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProxyId(pub u16);

/// A player's stable id, derived from its key ([`PlayerKey::user`]): the same on every
/// proxy, server and store of any cluster, and in every session of the player, without
/// anyone issuing it or coordinating.
///
/// [`PlayerKey::user`]: crate::identity::PlayerKey::user
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ecs", derive(bevy_ecs::component::Component))]
pub struct UserId(pub u64);

/// A simulated entity, as named on the wire. A player's entity id is its user id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ecs", derive(bevy_ecs::component::Component))]
pub struct EntityId(pub u64);

impl UserId {
    pub fn entity(self) -> EntityId {
        EntityId(self.0)
    }

    /// The first 8 of its 16 hex digits: enough for people to tell players apart.
    pub fn short(self) -> String {
        format!("{:08x}", self.0 >> 32)
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server {}", self.0)
    }
}

impl fmt::Display for ProxyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy {}", self.0)
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entity {}", self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "player {:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_player_is_shown_by_its_id_in_hex() {
        let user = UserId(0x0123_4567_89ab_cdef);
        assert_eq!(user.to_string(), "player 0123456789abcdef");
        assert_eq!(user.short(), "01234567");
    }
}
