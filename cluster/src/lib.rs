//! A whole Tessera cluster in one process: every game server of a map on a thread of
//! its own, every proxy on a runtime of its own, speaking the real protocol over real
//! loopback (or configured) sockets. This is the one crate that composes servers and
//! proxies: `tessera-cluster` (a host's all-in-one playtest), the game client's embedded
//! world and the cluster-wide tests (`tests/it`) all run through [`LocalCluster`].

pub mod local;

pub use local::{LocalCluster, LocalClusterError};
