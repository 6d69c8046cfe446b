//! What a player knows of the world, folded from the updates it received: itself, the
//! server simulating it, and every other entity in view as last sent, extrapolated to
//! the latest tick when asked (servers resend an entity only when its motion changes).

use std::collections::HashMap;
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::{EntityState, PlayerUpdate, extrapolate};

/// What a player knows of the world, from the updates received so far.
#[derive(Debug, Default, Clone)]
pub struct WorldView {
    pub tick: u64,
    /// The length of the server's tick, for extrapolating what it did not resend.
    pub tick_seconds: f32,
    pub me: Option<EntityState>,
    /// The server simulating this player now.
    pub server: Option<ServerId>,
    /// Each entity in view as last sent, and the tick it was sent at; where it is now
    /// is extrapolated when asked, so an update costs only what it changed.
    sent: HashMap<EntityId, (EntityState, u64)>,
    pub names: HashMap<EntityId, String>,
    pub last_input: u32,
    pub inputs_applied: u32,
    pub updates: u64,
    /// Entity states received (the rest of the view was extrapolated).
    pub states_received: u64,
    /// How many times the owning server changed.
    pub handoffs: u32,
}

impl WorldView {
    /// An empty view, for a world ticking every `tick_seconds`.
    pub fn new(tick_seconds: f32) -> Self {
        Self { tick_seconds, ..Self::default() }
    }

    pub fn apply(&mut self, update: PlayerUpdate) {
        if self.server.is_some_and(|server| server != update.server) {
            self.handoffs += 1;
        }
        self.server = Some(update.server);
        self.tick = update.tick;
        self.me = Some(update.you);
        self.last_input = update.last_input;
        self.inputs_applied = update.inputs_applied;
        if update.full {
            self.sent.clear();
        }
        for id in &update.left {
            self.sent.remove(id);
        }
        self.states_received += 1 + update.changed.len() as u64;
        self.sent.extend(update.changed.into_iter().map(|state| (state.id, (state, update.tick))));
        self.names.extend(update.names);
        self.updates += 1;
    }

    /// Another entity in view, where it is at `tick`.
    pub fn other(&self, id: EntityId) -> Option<EntityState> {
        self.sent.get(&id).map(|sent| self.at_tick(sent))
    }

    /// Every other entity in view, where it is at `tick`.
    pub fn others(&self) -> impl Iterator<Item = EntityState> + '_ {
        self.sent.values().map(|sent| self.at_tick(sent))
    }

    /// How many other entities are in view.
    pub fn in_view(&self) -> usize {
        self.sent.len()
    }

    fn at_tick(&self, (state, sent): &(EntityState, u64)) -> EntityState {
        EntityState { position: extrapolate(state, *sent, self.tick, self.tick_seconds), ..*state }
    }
}
