//! Tessera's common ground, shared by every process of a cluster and by the game
//! client: the ids, players' identities (keys, join signatures, the name rule), the chat
//! rule, the components, the region map, the cluster file, the cluster
//! secret, the wire protocol with its framing and (sealed) links and the limits at their doors, the bridge between a tokio runtime and Bevy systems, and
//! the names of the exported metrics. Nothing here is specific to one platform.

pub mod bridge;
pub mod chat;
pub mod cluster;
pub mod components;
pub mod framing;
pub mod identity;
pub mod ids;
pub mod link;
pub mod metrics;
pub mod protocol;
pub mod rate;
pub mod region_map;
pub mod secret;

pub use glam::Vec2;
