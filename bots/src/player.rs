//! A player's connection to a proxy, without a window: hello, welcome, then key presses
//! out and updates in. [`WorldView`] folds the updates into what the player knows.

use crate::behaviour::keys_toward;
use std::collections::HashMap;
use std::time::Duration;
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::link::{Link, LinkError, Traffic};
use tessera_shared::protocol::{
    ClientToProxy, EntityState, Hello, Input, PlayerUpdate, ProxyToClient, Role, Welcome, extrapolate, tick_seconds,
};
use tokio::net::TcpStream;

/// How long a proxy has to welcome a new player.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the proxy disconnected us: {0}")]
    Disconnected(String),
    #[error("no welcome within {0:?}")]
    NoWelcome(Duration),
    #[error("timed out after {0:?} waiting for: {1}")]
    Timeout(Duration, String),
    #[error("unexpected message from the proxy: {0}")]
    Unexpected(String),
}

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

/// A connected player.
pub struct Player {
    link: Link<ProxyToClient>,
    pub welcome: Welcome,
    next_seq: u32,
    keys: Keys,
    pub view: WorldView,
}

impl Player {
    /// Connects to the proxy at `addr` and waits for its welcome.
    pub async fn connect(addr: &str, name: &str) -> Result<Self, PlayerError> {
        Self::connect_counting(addr, name, &Traffic::default()).await
    }

    /// As [`Self::connect`], adding every byte in and out to `traffic`.
    pub async fn connect_counting(addr: &str, name: &str, traffic: &Traffic) -> Result<Self, PlayerError> {
        let stream =
            TcpStream::connect(addr).await.map_err(|source| PlayerError::Connect { addr: addr.into(), source })?;
        let mut link = Link::counting(stream, traffic);
        link.handshake::<ClientToProxy>(Hello::new(Role::Client { name: name.into() })).await?;
        let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, link.recv()).await {
            Err(_) => return Err(PlayerError::NoWelcome(WELCOME_TIMEOUT)),
            Ok(message) => match message? {
                ProxyToClient::Welcome(welcome) => welcome,
                ProxyToClient::Disconnect { reason } => {
                    return Err(PlayerError::Disconnected(reason));
                }
                other => {
                    return Err(PlayerError::Unexpected(format!("{other:?} before the welcome")));
                }
            },
        };
        let view = WorldView { tick_seconds: tick_seconds(welcome.tick_hz), ..WorldView::default() };
        Ok(Self { link, welcome, next_seq: 1, keys: Keys::empty(), view })
    }

    /// Holds down exactly `keys` from now on, returning the input's sequence number.
    pub async fn press(&mut self, keys: Keys) -> Result<u32, PlayerError> {
        let seq = self.next_seq;
        self.link.send(ClientToProxy::Input(Input { seq, keys })).await?;
        self.next_seq += 1;
        self.keys = keys;
        Ok(seq)
    }

    /// The keys held now.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// The sequence number of the last input sent (0 before any).
    pub fn last_sent(&self) -> u32 {
        self.next_seq - 1
    }

    /// Receives one message and folds it into the view; returns the update, if it was one.
    pub async fn receive(&mut self) -> Result<&WorldView, PlayerError> {
        match self.link.recv().await? {
            ProxyToClient::Update(update) => {
                self.view.apply(update);
                Ok(&self.view)
            }
            ProxyToClient::Disconnect { reason } => Err(PlayerError::Disconnected(reason)),
            other => Err(PlayerError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Walks to `target`, steering as a person would (keys only when the direction
    /// changes), calling `check` on every update on the way; then stops there and waits
    /// until the stop is applied.
    pub async fn walk_to(
        &mut self,
        target: Vec2,
        timeout: Duration,
        mut check: impl FnMut(&WorldView),
    ) -> Result<(), PlayerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let walking = format!("reaching {target}");
        self.wait_until(timeout, "a first update", |view| view.me.is_some()).await?;
        loop {
            let me = self.view.me.expect("waited for a first update").position;
            let keys = keys_toward(me, target);
            if keys.is_empty() {
                break;
            }
            if keys != self.keys {
                self.press(keys).await?;
            }
            tokio::time::timeout_at(deadline, self.receive())
                .await
                .map_err(|_| PlayerError::Timeout(timeout, walking.clone()))??;
            check(&self.view);
        }
        let stop = self.press(Keys::empty()).await?;
        self.wait_until(timeout, "the stop applied", |view| view.last_input >= stop).await?;
        check(&self.view);
        Ok(())
    }

    /// Receives until `done` holds for the view, or `timeout` passes.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&WorldView) -> bool,
    ) -> Result<(), PlayerError> {
        let waiting = async {
            while !done(&self.view) {
                self.receive().await?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, waiting).await.map_err(|_| PlayerError::Timeout(timeout, what.into()))?
    }
}
