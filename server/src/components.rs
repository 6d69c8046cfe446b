//! Components any entity on a server can carry, simulated here or mirrored from a
//! peer: beside the shared ones (ids, position, velocity), what players are shown of it.

use bevy::prelude::*;
use tessera_shared::protocol::EntityName;

/// Anything a player can see: its id, where it is, and its name.
#[derive(Component, Debug, Clone)]
pub struct Visible {
    pub name: EntityName,
}
