//! Admission at the player port, decided the moment a connection is accepted, before the
//! handshake and before anything is allocated for it: connections in total and per
//! address, and joins per second per address. An admitted connection holds a
//! [`ConnectionSlot`] for as long as it lives; dropping the slot gives it back, however
//! the connection ended.
//!
//! An address is the peer's IPv4 address, or its IPv6 /64: a host is normally given a
//! whole /64, so a limit per single IPv6 address would be none. The joins are counted in
//! one token bucket per address, kept in a least-recently-used map of at most
//! [`MAX_TRACKED_ADDRESSES`]: an attacker cycling through addresses evicts the oldest
//! buckets instead of growing the map, and an evicted bucket had refilled anyway unless
//! that many addresses joined within one refill time.

use crate::limits::ProxyLimits;
use crate::rate::{Rate, TokenBucket};
use crate::stats::Refusal;
use lru::LruCache;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Addresses whose joins are tracked at once.
pub const MAX_TRACKED_ADDRESSES: NonZeroUsize = NonZeroUsize::new(16_384).expect("not zero");

/// Who may connect to the player port now.
pub struct Admission {
    max_connections: usize,
    max_connections_per_address: usize,
    joins: Rate,
    state: Mutex<Held>,
}

/// What is held now, and each recent address's join bucket.
struct Held {
    connections: usize,
    per_address: HashMap<IpAddr, usize>,
    joins: LruCache<IpAddr, TokenBucket>,
}

/// One admitted connection's place, given back when dropped.
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    pub fn new(limits: &ProxyLimits) -> Arc<Self> {
        let joins = Rate::new(limits.joins_per_sec_per_address, limits.join_burst_per_address as f64);
        let held = Held { connections: 0, per_address: HashMap::new(), joins: LruCache::new(MAX_TRACKED_ADDRESSES) };
        Arc::new(Self {
            max_connections: limits.max_connections,
            max_connections_per_address: limits.max_connections_per_address,
            joins,
            state: Mutex::new(held),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // Every update below completes before it could panic: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a connection from `peer`, or says which limit refuses it. A refused
    /// connection takes no token from its address's bucket.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, Refusal> {
        self.admit_at(peer, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<ConnectionSlot, Refusal> {
        let address = address_of(peer);
        let mut held = self.held();
        if held.connections >= self.max_connections {
            return Err(Refusal::Connections);
        }
        if held.per_address.get(&address).is_some_and(|&n| n >= self.max_connections_per_address) {
            return Err(Refusal::ConnectionsPerAddress);
        }
        let bucket = held.joins.get_or_insert_mut(address, || self.joins.full_bucket(now));
        if !bucket.take(&self.joins, now) {
            return Err(Refusal::JoinRate);
        }
        held.connections += 1;
        *held.per_address.entry(address).or_default() += 1;
        Ok(ConnectionSlot { admission: self.clone(), address })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut held = self.admission.held();
        held.connections = held.connections.saturating_sub(1);
        if let Entry::Occupied(mut entry) = held.per_address.entry(self.address) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// The address limits count against: IPv4 as is (also when mapped into IPv6), IPv6 by /64.
fn address_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn limits(per_address: usize, total: usize) -> ProxyLimits {
        ProxyLimits {
            max_connections: total,
            max_connections_per_address: per_address,
            join_burst_per_address: 1000,
            ..ProxyLimits::DEFAULT
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let admission = Admission::new(&limits(2, 3));
        let a = [admission.admit(v4(1)).unwrap(), admission.admit(v4(1)).unwrap()];
        assert_eq!(admission.admit(v4(1)).err(), Some(Refusal::ConnectionsPerAddress));
        let b = admission.admit(v4(2)).unwrap();
        assert_eq!(admission.admit(v4(3)).err(), Some(Refusal::Connections));
        drop(b);
        let c = admission.admit(v4(3)).unwrap();
        drop(a);
        assert!(admission.admit(v4(1)).is_ok());
        drop(c);
        assert!(admission.held().per_address.len() <= 1, "addresses with no connection are forgotten");
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(&limits(1, 100));
        let host: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let _held = admission.admit(IpAddr::V6(host)).unwrap();
        let same_64: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(admission.admit(IpAddr::V6(same_64)).err(), Some(Refusal::ConnectionsPerAddress));
        assert!(admission.admit("2001:db8:1:3::1".parse().unwrap()).is_ok(), "another /64 is another address");
        let _v4 = admission.admit(v4(7)).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped());
        assert_eq!(admission.admit(mapped).err(), Some(Refusal::ConnectionsPerAddress));
    }

    #[test]
    fn join_buckets_stay_bounded_while_addresses_cycle() {
        let limits = ProxyLimits { joins_per_sec_per_address: 1.0, join_burst_per_address: 2, ..ProxyLimits::DEFAULT };
        let admission = Admission::new(&limits);
        let now = Instant::now();
        let flooder = v4(1);
        assert!(admission.admit_at(flooder, now).is_ok() && admission.admit_at(flooder, now).is_ok());
        assert_eq!(admission.admit_at(flooder, now).err(), Some(Refusal::JoinRate));
        // Twice as many addresses as are tracked, each joining once.
        for n in 0..2 * MAX_TRACKED_ADDRESSES.get() as u32 {
            let _ = admission.admit_at(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + n)), now);
            assert!(admission.held().joins.len() <= MAX_TRACKED_ADDRESSES.get());
        }
        let recent = IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + 2 * MAX_TRACKED_ADDRESSES.get() as u32 - 1));
        assert!(admission.admit_at(recent, now).is_ok(), "its burst holds two");
        assert_eq!(admission.admit_at(recent, now).err(), Some(Refusal::JoinRate), "a recent address is still held");
    }
}
