//! Admission at a listening port, decided the moment a connection is accepted, before
//! the handshake and before anything is allocated for it: connections held in total and
//! per address, and connections opened per second per address. An admitted connection
//! holds a [`ConnectionSlot`]; dropping the slot gives its place back, however the
//! connection ended. A proxy's player door holds the slot for as long as the player
//! plays ([`AdmissionLimits`] from its settings); a server's member doors only until the
//! handshake is over ([`AdmissionLimits::MEMBERS`]), since what they must bound is
//! strangers who never finish one, while members are few and proved.
//!
//! An address is the peer's IPv4 address, or its IPv6 /64: a host is normally given a
//! whole /64, so a limit per single IPv6 address would be none. The opens are counted in
//! one token bucket per address, kept in a least-recently-used map of at most
//! [`MAX_TRACKED_ADDRESSES`]: an attacker cycling through addresses evicts the oldest
//! buckets instead of growing the map, and an evicted bucket had refilled anyway unless
//! that many addresses connected within one refill time. A site is given a whole IPv6
//! /48, 65,536 /64s to cycle through; so IPv6 opens are also counted per /48, in a
//! bucket [`SITE_FACTOR`] times the address's.

use crate::rate::{Rate, TokenBucket};
use lru::LruCache;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Addresses whose opens are tracked at once.
pub const MAX_TRACKED_ADDRESSES: NonZeroUsize = NonZeroUsize::new(16_384).expect("not zero");

/// How many addresses' worth of opens one IPv6 /48 may make.
pub const SITE_FACTOR: f64 = 8.0;

/// What one door admits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionLimits {
    /// Connections holding a slot at once.
    pub max_connections: usize,
    /// Connections holding a slot at once from one address.
    pub max_connections_per_address: usize,
    /// Connections one address may open, per second and in a burst.
    pub opens_per_address: Rate,
}

impl AdmissionLimits {
    /// A server's doors for proxies and peers, where a slot is held only during the
    /// handshake. A cluster's members open a handful of links each, all at start or
    /// after a loss, so these are far above what members need; a stranger's attempt
    /// fails at its first Noise message without a key exchange, so the limits bound
    /// sockets and tasks, not work. A stranger on the members' own address (a process
    /// on the same machine) can still slow their redials while it floods; one elsewhere
    /// cannot touch them.
    pub const MEMBERS: Self =
        Self { max_connections: 256, max_connections_per_address: 64, opens_per_address: Rate::new(50.0, 200.0) };
}

/// Which limit turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The door held its maximum of connections.
    Connections,
    /// The address held its maximum of connections.
    ConnectionsPerAddress,
    /// The address opened connections faster than it may.
    OpenRate,
}

/// Who may connect through one door now.
pub struct Admission {
    limits: AdmissionLimits,
    state: Mutex<Held>,
}

/// What is held now, and each recent address's bucket.
struct Held {
    connections: usize,
    per_address: HashMap<IpAddr, usize>,
    opens: LruCache<Opener, TokenBucket>,
}

/// Who opens are counted against: an address, or an IPv6 site (/48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Opener {
    Address(IpAddr),
    Site(Ipv6Addr),
}

/// One admitted connection's place, given back when dropped.
pub struct ConnectionSlot {
    admission: Arc<Admission>,
    address: IpAddr,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Arc<Self> {
        let held = Held { connections: 0, per_address: HashMap::new(), opens: LruCache::new(MAX_TRACKED_ADDRESSES) };
        Arc::new(Self { limits, state: Mutex::new(held) })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        // Every update below completes before it could panic: a poisoned lock is consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Admits a connection from `peer`, or says which limit refuses it. A connection
    /// refused for its address takes no token from its address's bucket.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<ConnectionSlot, Refused> {
        self.admit_at(peer, Instant::now())
    }

    fn admit_at(self: &Arc<Self>, peer: IpAddr, now: Instant) -> Result<ConnectionSlot, Refused> {
        let address = address_of(peer);
        let limits = &self.limits;
        let mut held = self.held();
        if held.connections >= limits.max_connections {
            return Err(Refused::Connections);
        }
        if held.per_address.get(&address).is_some_and(|&n| n >= limits.max_connections_per_address) {
            return Err(Refused::ConnectionsPerAddress);
        }
        let per_address = limits.opens_per_address;
        let bucket = held.opens.get_or_insert_mut(Opener::Address(address), || per_address.full_bucket(now));
        if !bucket.take(&per_address, now) {
            return Err(Refused::OpenRate);
        }
        if let IpAddr::V6(v6) = address {
            let per_site = per_address.times(SITE_FACTOR);
            let site = Opener::Site(Ipv6Addr::from_bits(v6.to_bits() & (u128::MAX << 80)));
            if !held.opens.get_or_insert_mut(site, || per_site.full_bucket(now)).take(&per_site, now) {
                return Err(Refused::OpenRate);
            }
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

    fn limits(per_address: usize, total: usize) -> AdmissionLimits {
        AdmissionLimits {
            max_connections: total,
            max_connections_per_address: per_address,
            opens_per_address: Rate::new(1.0, 1000.0),
        }
    }

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, last))
    }

    #[test]
    fn a_slot_is_given_back_when_dropped() {
        let admission = Admission::new(limits(2, 3));
        let a = [admission.admit(v4(1)).unwrap(), admission.admit(v4(1)).unwrap()];
        assert_eq!(admission.admit(v4(1)).err(), Some(Refused::ConnectionsPerAddress));
        let b = admission.admit(v4(2)).unwrap();
        assert_eq!(admission.admit(v4(3)).err(), Some(Refused::Connections));
        drop(b);
        let c = admission.admit(v4(3)).unwrap();
        drop(a);
        assert!(admission.admit(v4(1)).is_ok());
        drop(c);
        assert!(admission.held().per_address.len() <= 1, "addresses with no connection are forgotten");
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let admission = Admission::new(limits(1, 100));
        let host: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
        let _held = admission.admit(IpAddr::V6(host)).unwrap();
        let same_64: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(admission.admit(IpAddr::V6(same_64)).err(), Some(Refused::ConnectionsPerAddress));
        assert!(admission.admit("2001:db8:1:3::1".parse().unwrap()).is_ok(), "another /64 is another address");
        let _v4 = admission.admit(v4(7)).unwrap();
        let mapped = IpAddr::V6(Ipv4Addr::new(203, 0, 113, 7).to_ipv6_mapped());
        assert_eq!(admission.admit(mapped).err(), Some(Refused::ConnectionsPerAddress));
    }

    #[test]
    fn an_ipv6_site_cycling_through_its_64s_is_held_to_its_own_rate() {
        let limits = AdmissionLimits { opens_per_address: Rate::new(1.0, 2.0), ..limits(100, 100_000) };
        let admission = Admission::new(limits);
        let now = Instant::now();
        let site: u128 = 0x2001_0db8_0001 << 80;
        let opened = (0..1000u128)
            .filter(|n| admission.admit_at(IpAddr::V6(Ipv6Addr::from_bits(site | n << 64)), now).is_ok())
            .count();
        assert_eq!(opened as f64, 2.0 * SITE_FACTOR, "the site's burst, whatever the /64");
        let elsewhere = IpAddr::V6("2001:db8:2::1".parse().unwrap());
        assert!(admission.admit_at(elsewhere, now).is_ok(), "another site is not held back");
    }

    #[test]
    fn open_buckets_stay_bounded_while_addresses_cycle() {
        let limits = AdmissionLimits { opens_per_address: Rate::new(1.0, 2.0), ..limits(100, 100) };
        let admission = Admission::new(limits);
        let now = Instant::now();
        let flooder = v4(1);
        assert!(admission.admit_at(flooder, now).is_ok() && admission.admit_at(flooder, now).is_ok());
        assert_eq!(admission.admit_at(flooder, now).err(), Some(Refused::OpenRate));
        // Twice as many addresses as are tracked, each joining once.
        for n in 0..2 * MAX_TRACKED_ADDRESSES.get() as u32 {
            let _ = admission.admit_at(IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + n)), now);
            assert!(admission.held().opens.len() <= MAX_TRACKED_ADDRESSES.get());
        }
        let recent = IpAddr::V4(Ipv4Addr::from_bits(0x0a00_0000 + 2 * MAX_TRACKED_ADDRESSES.get() as u32 - 1));
        assert!(admission.admit_at(recent, now).is_ok(), "its burst holds two");
        assert_eq!(admission.admit_at(recent, now).err(), Some(Refused::OpenRate), "a recent address is still held");
    }
}
