//! Per-player interest, in `PostUpdate` once per tick: every player is sent itself and
//! every entity within its view radius, in one frame per proxy. A uniform grid of
//! view-radius cells keeps this linear in the number of entities. The broadcast
//! baseline sends every player everything instead.

use crate::app::{ServerSettings, SimulationTick};
use crate::net::{NetSystems, ProxyLinks};
use crate::players::{InputQueue, KnownNames, Player};
use bevy::prelude::*;
use std::collections::HashMap;
use tessera_shared::components::{Position, Velocity};
use tessera_shared::ids::{EntityId, ProxyId, UserId};
use tessera_shared::protocol::{EntityState, PlayerUpdate, ServerToProxy};

/// Anything a player can see: its id, where it is, and its name.
#[derive(Component, Debug, Clone)]
pub struct Visible {
    pub name: String,
}

pub struct InterestPlugin;

impl Plugin for InterestPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            PostUpdate,
            send_player_updates.in_set(NetSystems::Send).run_if(resource_changed::<SimulationTick>),
        );
    }
}

/// Buckets entities by cell so a view query only looks at nearby ones.
struct Grid {
    cell: f32,
    cells: HashMap<(i32, i32), Vec<usize>>,
}

impl Grid {
    fn new(cell: f32, points: impl Iterator<Item = Vec2>) -> Self {
        let mut cells: HashMap<(i32, i32), Vec<usize>> = HashMap::new();
        for (i, point) in points.enumerate() {
            cells.entry(Self::key(cell, point)).or_default().push(i);
        }
        Self { cell, cells }
    }

    fn key(cell: f32, point: Vec2) -> (i32, i32) {
        ((point.x / cell).floor() as i32, (point.y / cell).floor() as i32)
    }

    /// Indices of points in the 3×3 cells around `point`: a superset of those within
    /// one cell's distance.
    fn near(&self, point: Vec2) -> impl Iterator<Item = usize> + '_ {
        let (x, y) = Self::key(self.cell, point);
        (-1..=1)
            .flat_map(move |dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter_map(|key| self.cells.get(&key))
            .flatten()
            .copied()
    }
}

type Seen<'a> = (&'a EntityId, &'a Position, &'a Velocity, &'a Visible);

fn send_player_updates(
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    visible: Query<Seen>,
    mut players: Query<(&UserId, &EntityId, &Player, &InputQueue, &Position, &Velocity, &mut KnownNames)>,
    mut links: ResMut<ProxyLinks>,
) {
    let everything: Vec<Seen> = visible.iter().collect();
    let radius = settings.view_radius();
    let grid = Grid::new(radius, everything.iter().map(|(_, position, _, _)| position.0));
    let mut per_proxy: HashMap<ProxyId, Vec<(UserId, PlayerUpdate)>> = HashMap::new();
    let broadcast = settings.broadcast_baseline;
    for (&user, &id, player, queue, position, velocity, mut known) in &mut players {
        let mut others = Vec::new();
        let mut names = Vec::new();
        let candidates: Box<dyn Iterator<Item = usize>> =
            if broadcast { Box::new(0..everything.len()) } else { Box::new(grid.near(position.0)) };
        for i in candidates {
            let (&other, other_position, other_velocity, visible) = everything[i];
            let out_of_view = !broadcast && other_position.0.distance_squared(position.0) > radius * radius;
            if other == id || out_of_view {
                continue;
            }

            others.push(EntityState { id: other, position: other_position.0, velocity: other_velocity.0 });
            if known.0.insert(other) {
                names.push((other, visible.name.clone()));
            }
        }
        // Forget names out of view, so the set stays as small as the view; a name is
        // sent again if its entity comes back.
        if known.0.len() > others.len() {
            let in_view: std::collections::HashSet<EntityId> = others.iter().map(|o| o.id).collect();
            known.0.retain(|id| in_view.contains(id));
        }
        let update = PlayerUpdate {
            tick: tick.0,
            server: settings.id,
            last_input: queue.last_input,
            inputs_applied: queue.applied,
            you: EntityState { id, position: position.0, velocity: velocity.0 },
            others,
            names,
        };
        per_proxy.entry(player.proxy).or_default().push((user, update));
    }
    for (proxy, updates) in per_proxy {
        links.send(proxy, ServerToProxy::Updates { tick: tick.0, updates });
    }
}
