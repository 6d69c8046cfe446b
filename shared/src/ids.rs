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
    const COUNTER_BITS: u32 = 48;

    /// The `counter`-th user issued by `proxy`.
    pub fn issue(proxy: ProxyId, counter: u64) -> Self {
        Self((u64::from(proxy.0) << Self::COUNTER_BITS) | (counter & ((1 << Self::COUNTER_BITS) - 1)))
    }

    /// The proxy that issued this id.
    pub fn proxy(self) -> ProxyId {
        ProxyId((self.0 >> Self::COUNTER_BITS) as u16)
    }

    pub fn entity(self) -> EntityId {
        EntityId(self.0)
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
        write!(f, "user {}:{}", self.proxy().0, self.0 & ((1 << Self::COUNTER_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_from_different_proxies_never_collide() {
        let a = UserId::issue(ProxyId(1), 7);
        let b = UserId::issue(ProxyId(2), 7);
        assert_ne!(a, b);
        assert_eq!(a.proxy(), ProxyId(1));
        assert_eq!(b.proxy(), ProxyId(2));
        assert_eq!(a.to_string(), "user 1:7");
    }
}
