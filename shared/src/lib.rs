//! Tessera's common ground, shared by every process of a cluster: the ids, the
//! components, the region map, the cluster file, the wire protocol with its framing,
//! the bridge between a tokio runtime and Bevy systems, and the exported metrics.

pub mod bridge;
pub mod cluster;
pub mod components;
pub mod framing;
pub mod ids;
pub mod link;
pub mod logging;
pub mod metrics;

pub mod protocol;
pub mod region_map;
pub mod signals;

pub use glam::Vec2;
