//! What a player knows of the world, folded from the updates it received: itself, the
//! server simulating it, and every other entity in view as last sent, extrapolated to
//! the latest tick when asked (servers resend an entity only when its motion changes);
//! and what it heard said ([`ChatLog`]).
//! An update is folded in only once [`verify::update`] has found it possible for the
//! player's welcome: what a proxy forwards is not trusted.

use crate::chat_log::ChatLog;
use std::collections::HashMap;
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{ChatLine, EntityState, MAX_ENTITIES_PER_MESSAGE, PlayerUpdate, Welcome, extrapolate};

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
    /// The server simulating this player is lost, until its next update.
    pub region_offline: bool,
    /// What the player heard said.
    pub chat: ChatLog,
}

impl WorldView {
    /// An empty view, for a world ticking every `tick_seconds`.
    pub fn new(tick_seconds: f32) -> Self {
        Self { tick_seconds, ..Self::default() }
    }

    /// Folds in `update`, sent to the player `welcome` welcomed, if it is possible (the
    /// view is untouched otherwise) and leaves no more than [`MAX_ENTITIES_PER_MESSAGE`]
    /// entities in view; a view past that is refused too, and ends the connection.
    pub fn apply(&mut self, update: PlayerUpdate, welcome: &Welcome) -> Result<(), Violation> {
        verify::update(&update, welcome)?;
        self.region_offline = false;
        if self.server.is_some_and(|server| server != update.server) {
            self.handoffs = self.handoffs.saturating_add(1);
        }
        self.server = Some(update.server);
        self.tick = update.tick;
        self.me = Some(update.you);
        self.last_input = update.last_input;
        self.inputs_applied = update.inputs_applied;
        // Names go with what is in view (a server names an entity again when it comes
        // back), so what a proxy sends cannot pile up here.
        if update.full {
            self.sent.clear();
            self.names.clear();
        }
        for id in &update.left {
            self.sent.remove(id);
            self.names.remove(id);
        }
        self.states_received += 1 + update.changed.len() as u64;
        self.sent.extend(update.changed.into_iter().map(|state| (state.id, (state, update.tick))));
        self.names.extend(update.names);
        self.updates += 1;
        let count = self.sent.len().max(self.names.len());
        if count > MAX_ENTITIES_PER_MESSAGE {
            return Err(Violation::TooManyInView { count });
        }
        Ok(())
    }

    /// Folds in a chat line the player heard, if anyone may be shown it
    /// ([`verify::chat_line`]); refused, it ends the connection.
    pub fn hear(&mut self, line: ChatLine) -> Result<(), Violation> {
        verify::chat_line(&line)?;
        self.chat.hear(line);
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::Vec2;
    use tessera_shared::cluster::ClusterConfig;
    use tessera_shared::ids::{ProxyId, UserId};

    const ME: UserId = UserId(0xada0_0000_0000_0001);

    fn welcome() -> Welcome {
        Welcome {
            user: ME,
            name: "me".into(),
            proxy: ProxyId(1),
            resumed: false,
            ticket: tessera_shared::protocol::SessionTicket(Vec::new()),
            map: ClusterConfig::default_local().region_map(),
            view_radius: 400.0,
            tick_hz: 20.0,
        }
    }

    fn at(id: u64) -> EntityState {
        EntityState { id: EntityId(id), position: Vec2::splat(500.0), velocity: Vec2::ZERO }
    }

    fn update(changed: Vec<EntityState>, left: Vec<EntityId>, names: Vec<(EntityId, String)>) -> PlayerUpdate {
        PlayerUpdate {
            tick: 1,
            server: ServerId(1),
            last_input: 0,
            inputs_applied: 0,
            you: at(ME.0),
            full: false,
            changed,
            left,
            names,
        }
    }

    #[test]
    fn names_go_with_what_is_in_view_and_the_view_is_bounded() {
        let (welcome, mut view) = (welcome(), WorldView::new(0.05));
        view.apply(update(vec![at(5)], vec![], vec![(EntityId(5), "bo".into())]), &welcome).unwrap();
        assert_eq!(view.names.get(&EntityId(5)).map(String::as_str), Some("bo"));
        view.apply(update(vec![], vec![EntityId(5)], vec![]), &welcome).unwrap();
        assert_eq!((view.in_view(), view.names.len()), (0, 0), "the name left with the entity");

        let mut bad = update(vec![at(6)], vec![], vec![]);
        bad.changed[0].position.x = f32::NAN;
        assert!(matches!(view.apply(bad, &welcome), Err(Violation::BadState { .. })));
        assert_eq!((view.updates, view.in_view()), (2, 0), "a refused update is not folded in");

        // A proxy adding entity after entity, each update within bounds, is refused once the view is too big.
        let mut next = 100;
        let refused = (0..8).find_map(|_| {
            let batch = (0..4096).map(|_| {
                next += 1;
                at(next)
            });
            view.apply(update(batch.collect(), vec![], vec![]), &welcome).err()
        });
        assert!(matches!(refused, Some(Violation::TooManyInView { count: 20_480 })), "{refused:?}");
    }
}
