//! The routing table: for every player behind this proxy, its connection and the
//! server that owns it; for every server, its link. Input goes to the owner; updates go
//! to the player's connection, found by user id.
//!
//! The owner changes only on the servers' word: the one that accepts a login, then each
//! handoff's new owner, whose `Owner` notice carries the player's handoff count so that
//! a late notice never undoes a newer one. Routing by the servers' word rather than by
//! recomputing ownership from positions means input never reaches a server that has not
//! received the player yet.
//!
//! The table also enforces two of the front door's limits, where the players are: the
//! player cap (checked as a player is registered, under the table's lock, so concurrent
//! joins cannot overshoot it) and each player's byte budget ([`ClientQueue`]): a player
//! that lets its queue fill is disconnected, and nobody else notices.
//!
//! A player's id is its key's, so the same player can sign in again while its old
//! connection is still open (a window that froze, a client restarted): the newer
//! [`Session`] takes the route over, and the older is told why it ends and forgotten
//! without touching the new one.
//!
//! What a player sends is held to the server's own gate before it is forwarded, so one
//! player's bad input (a sequence number of 0) closes that player's connection, never the
//! link all of this proxy's players share.
//!
//! A player that bound its UDP address ([`crate::datagrams`]) is sent its updates by
//! datagram while its bind is live, those that fit one; everything else goes by its link.
//! Its inputs by datagram are taken from that address alone, held to a rate of their
//! own (as many inputs a second as its link's messages) and to the gate its link's are,
//! and each forwarded once, however many datagrams carry it.

use crate::client_links::INPUT_RATE;
use crate::client_queue::{ClientQueue, QueueError};
use crate::datagrams::{UpdateDatagrams, UpdateSocket};
use crate::stats::{ProxyStats, Refusal};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tessera_shared::Vec2;
use tessera_shared::framing::{Outgoing, encoded_frame};
use tessera_shared::identity::PlayerKey;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::link::alarm::HeardElsewhere;
use tessera_shared::link::{Outbound, SendError};
use tessera_shared::protocol::datagram::{self, BIND_LIFETIME, DatagramInputs, DatagramTag};
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{
    CLUSTER_FULL, ChatLine, EntityName, PlayerFrame, ProxyToClient, ProxyToServer, SIGNED_IN_AGAIN, ServerToProxy,
};
use tessera_shared::rate::TokenBucket;
use tracing::{debug, warn};

/// What goes to a player: a message of the proxy's own, or a server's frame, forwarded untouched.
pub type ToClient = Outgoing<ProxyToClient>;

/// One player behind this proxy.
pub struct ClientRoute {
    pub outbound: ClientQueue,
    /// The server simulating it, once one has said so (at once for a login; for a
    /// resumed session, when the server that has it answers).
    pub owner: Option<ServerId>,
    pub epoch: u32,
    /// The connection it plays on now.
    pub session: Session,
    /// The welcome of a resumed session, sent once its server has answered: before it,
    /// the player has nothing to be welcomed to, and after it come the server's updates.
    pub welcome: Option<ProxyToClient>,
    /// Who the player is: to find where it was, should its server be lost.
    pub key: PlayerKey,
    /// The last input its server acknowledged: should that server be lost, the player's
    /// inputs follow on from it where it is logged in again.
    pub acked: u32,
    /// The server whose updates the player follows: it was forwarded a full update of
    /// this server's, and every update of its since. Each update is packed against the
    /// ones before it (`tessera_shared::protocol::packing`): before a full one, or after
    /// one was dropped, the rest would mean nothing to the player, and are dropped too,
    /// until the next full one (which its server sends whenever it may have been).
    pub following: Option<ServerId>,
    /// Where its updates go by datagram, if its proxy sends them so.
    pub datagrams: Option<DatagramRoute>,
    /// Updates sent it by its link so far, wrapping: each update datagram says how many,
    /// so that the player knows one that overtook an update by the link.
    pub updates_by_link: u8,
}

/// Where a player's updates go by datagram: its tag, the address of its link (the only
/// one a bind is taken from), and the address that last bound, and when (a bind lapses
/// after [`BIND_LIFETIME`]). And its inputs by datagram: their bucket (a token an input
/// new to it, one at least a datagram), and the last forwarded. Each of its binds and
/// inputs is heard by its link's reader (`heard`) as a frame would be: they are its
/// client's proof of life while its updates come so.
#[derive(Debug, Clone)]
pub struct DatagramRoute {
    pub tag: DatagramTag,
    link_from: IpAddr,
    bound: Option<(SocketAddr, Instant)>,
    inputs: TokenBucket,
    last_input_forwarded: u32,
    heard: HeardElsewhere,
}

impl DatagramRoute {
    /// The route of a player given `tag`, whose link comes from `link_from` and hears
    /// what `heard` does, not bound yet.
    pub fn new(tag: DatagramTag, link_from: IpAddr, heard: HeardElsewhere) -> Self {
        // A bucket of its own, as many inputs a second as its link's messages.
        let inputs = INPUT_RATE.full_bucket(Instant::now());
        Self { tag, link_from: link_from.to_canonical(), bound: None, inputs, last_input_forwarded: 0, heard }
    }

    /// Where to send the player's updates at `now`, if its bind is live.
    fn to(&self, now: Instant) -> Option<SocketAddr> {
        self.bound.filter(|(_, at)| now.saturating_duration_since(*at) < BIND_LIFETIME).map(|(to, _)| to)
    }
}

impl ClientRoute {
    /// A player's route as it joins, through `outbound`, on `session`: simulated by
    /// `owner` (unless a resumed session waits for its server's answer, with its
    /// `welcome`), nothing acknowledged or forwarded yet.
    pub fn new(
        outbound: ClientQueue,
        owner: Option<ServerId>,
        session: Session,
        welcome: Option<ProxyToClient>,
        key: PlayerKey,
    ) -> Self {
        Self {
            outbound,
            owner,
            epoch: 0,
            session,
            welcome,
            key,
            acked: 0,
            following: None,
            datagrams: None,
            updates_by_link: 0,
        }
    }

    /// The same route, its updates going by datagram once the player binds with `tag`
    /// from `link_from`, its link's address, whose reader hears what `heard` does.
    pub fn with_datagrams(self, tag: Option<DatagramTag>, link_from: IpAddr, heard: HeardElsewhere) -> Self {
        Self { datagrams: tag.map(|tag| DatagramRoute::new(tag, link_from, heard)), ..self }
    }

    /// Whether its server was lost, and it waits for one to take it back.
    fn offline(&self) -> bool {
        self.owner.is_none() && self.welcome.is_none()
    }
}

/// What became of a datagram of inputs ([`Routing::inputs_by_datagram`]).
#[derive(Debug, PartialEq)]
pub enum InputsTaken {
    /// From its player: this many of its inputs went to its server.
    Forwarded(usize),
    /// Not from the address of a live bind of its tag: dropped unread.
    Stranger,
    /// From its player, past its rate: dropped.
    OverRate,
    /// From its player, who broke the rule: its session is to be ended.
    Refused(UserId, Session, Violation),
}

/// A player whose server was lost, waiting to be logged in again where it was.
pub struct Offline {
    pub user: UserId,
    pub key: PlayerKey,
    pub session: Session,
}

/// How a player's session begins on the servers.
pub enum Start {
    /// A new session: `login` goes to `owner`, the server of where the player was.
    Login { owner: ServerId, login: ProxyToServer },
    /// The player's session, lost with its proxy, carries on through this one.
    Resume,
}

/// One connection of a player, told apart from the player's next one, so that an old
/// connection closing never removes the route of the one that replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session(u64);

impl Session {
    /// A session never used before in this process.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Default)]
struct Tables {
    clients: HashMap<UserId, ClientRoute>,
    servers: HashMap<ServerId, Outbound<ProxyToServer>>,
    /// Whose each datagram tag is.
    tags: HashMap<DatagramTag, UserId>,
}

impl Tables {
    /// Puts `route` in for `user`, returning the route it replaces.
    fn insert(&mut self, user: UserId, route: ClientRoute) -> Option<ClientRoute> {
        if let Some(datagrams) = &route.datagrams {
            self.tags.insert(datagrams.tag, user);
        }
        let replaced = self.clients.insert(user, route);
        self.forget_tag(replaced.as_ref().and_then(|route| route.datagrams.as_ref()));
        replaced
    }

    /// Takes `user`'s route out.
    fn remove(&mut self, user: UserId) -> Option<ClientRoute> {
        let route = self.clients.remove(&user);
        self.forget_tag(route.as_ref().and_then(|route| route.datagrams.as_ref()));
        route
    }

    /// The tag of a route's `datagrams` binds nobody from now on.
    fn forget_tag(&mut self, datagrams: Option<&DatagramRoute>) {
        if let Some(datagrams) = datagrams {
            self.tags.remove(&datagrams.tag);
        }
    }
}

#[derive(Default)]
pub struct Routing {
    tables: Mutex<Tables>,
    /// What went through this table, for the operator and the benchmark.
    pub stats: Arc<ProxyStats>,
    /// Where players' updates go by datagram from, if this proxy sends them so.
    datagrams: Option<UpdateSocket>,
}

/// Why a message could not be routed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    #[error(transparent)]
    Violation(#[from] Violation),
    #[error("{0} is unreachable right now")]
    ServerDown(ServerId),
    #[error("{0} is too busy to take a player right now")]
    ServerBusy(ServerId),
    #[error("{0} is not connected here")]
    UnknownUser(UserId),
    #[error("{}", CLUSTER_FULL)]
    Full,
}

impl Routing {
    /// An empty table counting into `stats`, sending players their updates by datagram
    /// from `datagrams` where they bind.
    pub fn new(stats: Arc<ProxyStats>, datagrams: Option<UpdateSocket>) -> Self {
        Self { tables: Mutex::default(), stats, datagrams }
    }

    /// Whether players may bind for their updates by datagram.
    pub fn sends_datagrams(&self) -> bool {
        self.datagrams.is_some()
    }

    /// Binds the player whose tag is `tag` to `from`, where its updates go by datagram
    /// from now on, if `from` is its link's address: whether it was bound.
    pub fn bind_datagrams(&self, tag: DatagramTag, from: SocketAddr) -> bool {
        let mut tables = self.tables();
        let Some(&user) = tables.tags.get(&tag) else { return false };
        let Some(route) = tables.clients.get_mut(&user).and_then(|route| route.datagrams.as_mut()) else {
            return false;
        };
        if from.ip().to_canonical() != route.link_from {
            return false;
        }
        if route.bound.is_none_or(|(to, _)| to != from) {
            debug!("{user} binds udp {from} for its updates");
        }
        route.bound = Some((from, Instant::now()));
        route.heard.heard();
        true
    }

    /// Forwards to its server each of `inputs` (those of a datagram marked `tag`, or why
    /// it holds none) not forwarded by datagram before, if it came from the address
    /// `tag` is bound to. A datagram from anywhere else is a stranger's, unread; one
    /// from there that holds no inputs is its player's fault. One that would take the
    /// player past its rate is dropped whole, as a path drops datagrams (a path may
    /// also repeat them): the player sends its inputs again, by its link at the last.
    /// An input its server's link has no room for now is not forwarded either.
    pub fn inputs_by_datagram(
        &self,
        tag: DatagramTag,
        from: SocketAddr,
        inputs: Result<DatagramInputs, Violation>,
    ) -> InputsTaken {
        let now = Instant::now();
        let mut tables = self.tables();
        let Tables { clients, servers, tags } = &mut *tables;
        let Some(&user) = tags.get(&tag) else { return InputsTaken::Stranger };
        let Some(route) = clients.get_mut(&user) else { return InputsTaken::Stranger };
        let Some(datagrams) = route.datagrams.as_mut().filter(|datagrams| datagrams.to(now) == Some(from)) else {
            return InputsTaken::Stranger;
        };
        datagrams.heard.heard();
        let inputs = match inputs {
            Ok(inputs) => inputs,
            Err(violation) => return InputsTaken::Refused(user, route.session, violation),
        };
        let last = datagrams.last_input_forwarded;
        let new = inputs.iter().filter(|input| input.seq > last).count() as u32;
        if !datagrams.inputs.take_many(&INPUT_RATE, now, new.max(1)) {
            return InputsTaken::OverRate;
        }
        // Without a server, what it sends goes nowhere, as by its link.
        let Some(link) = route.owner.and_then(|owner| servers.get(&owner)) else { return InputsTaken::Forwarded(0) };
        let mut forwarded = 0;
        for input in inputs {
            if input.seq <= datagrams.last_input_forwarded {
                continue;
            }
            let message = ProxyToServer::Input { user, input };
            if let Err(violation) = verify::from_proxy(&message) {
                return InputsTaken::Refused(user, route.session, violation);
            }
            if link.send(message).is_err() {
                break;
            }
            datagrams.last_input_forwarded = input.seq;
            forwarded += 1;
        }
        ProxyStats::add(&self.stats.frames_to_servers, forwarded as u64);
        InputsTaken::Forwarded(forwarded)
    }

    /// Sends `user` everything by its link from now on: its updates by datagram do not
    /// reach it. Whether it was to be sent them (and so may have lost some).
    pub fn no_datagrams(&self, user: UserId) -> bool {
        let mut tables = self.tables();
        let Some(route) = tables.clients.get_mut(&user) else { return false };
        let Some(datagrams) = route.datagrams.take() else { return false };
        // Updates packed against those lost mean nothing to it: none until a full one.
        route.following = None;
        tables.forget_tag(Some(&datagrams));
        true
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock cannot leave the maps half-updated.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps the players and servers counts in the stats in step with the tables.
    fn count(&self, tables: &Tables) {
        self.stats.players.store(tables.clients.len() as u64, Ordering::Relaxed);
        self.stats.servers_up.store(tables.servers.len() as u64, Ordering::Relaxed);
    }

    pub fn server_up(&self, server: ServerId, outbound: Outbound<ProxyToServer>) {
        let mut tables = self.tables();
        tables.servers.insert(server, outbound);
        self.count(&tables);
    }

    /// Forgets `server`'s link. The players it owned stay, told their region is
    /// offline, until a server logs them in again where they were last saved
    /// ([`Self::log_in_again`]). Returns how many they are.
    pub fn server_down(&self, server: ServerId) -> usize {
        let (mut orphans, mut to_write) = (0, Vec::new());
        let mut tables = self.tables();
        tables.servers.remove(&server);
        for route in tables.clients.values_mut().filter(|route| route.owner == Some(server)) {
            route.owner = None;
            to_write.extend(route.outbound.queue(ProxyToClient::RegionOffline.into()));
            orphans += 1;
        }
        self.count(&tables);
        drop(tables);
        for flush in to_write {
            let _ = flush.flush();
        }
        orphans
    }

    /// The players whose server was lost, waiting to be logged in again.
    pub fn offline(&self) -> Vec<Offline> {
        let tables = self.tables();
        let offline = tables.clients.iter().filter(|(_, route)| route.offline());
        offline.map(|(&user, route)| Offline { user, key: route.key, session: route.session }).collect()
    }

    /// Logs `user`'s `session`, waiting since its server was lost, in again on `owner` at
    /// `position`, its inputs following on from the last one acknowledged, if it still
    /// waits; every other server is told, as at any login, so it is in one place only.
    pub fn log_in_again(&self, user: UserId, session: Session, owner: ServerId, name: EntityName, position: Vec2) {
        let login = {
            let mut tables = self.tables();
            let Some(route) = tables.clients.get_mut(&user).filter(|route| route.session == session && route.offline())
            else {
                return;
            };
            (route.owner, route.epoch) = (Some(owner), 0);
            let login = ProxyToServer::Login { user, name, position, last_input: route.acked };
            supersede_elsewhere(&tables, user, owner);
            login
        };
        // Unlike a new player's, this login may wait for room: inputs that overtake it
        // are sent again, as the player sends again all its server's first update says
        // was not applied.
        if self.to_server(owner, login).is_err() {
            // Down again already: it waits for the next one.
            if let Some(route) = self.tables().clients.get_mut(&user).filter(|route| route.session == session) {
                route.owner = None;
            }
        }
    }

    pub fn is_server_up(&self, server: ServerId) -> bool {
        self.tables().servers.get(&server).is_some_and(|link| !link.is_closed())
    }

    /// Sends `message` to `server`, in turn behind what waits for a slow link: a slow
    /// server is waited for, never dropped with every player on it (one that is gone
    /// falls silent, and its link closes).
    pub fn to_server(&self, server: ServerId, message: ProxyToServer) -> Result<(), RouteError> {
        let tables = self.tables();
        let link = tables.servers.get(&server).ok_or(RouteError::ServerDown(server))?;
        link.send_or_wait_aside(message).map_err(|_| RouteError::ServerDown(server))?;
        ProxyStats::add(&self.stats.frames_to_servers, 1);
        Ok(())
    }

    /// Whether `user` would find no room here: `max_players` are here, not counting an
    /// older session of its own, which it would replace.
    pub fn is_full(&self, user: UserId, max_players: usize) -> bool {
        let tables = self.tables();
        !tables.clients.contains_key(&user) && tables.clients.len() >= max_players
    }

    /// Registers a player, unless `max_players` are here already, and begins its session
    /// on the servers as `start` says. A player already here signed in again: its older
    /// session is told so and ends. A login goes to its server, and every other server is
    /// told the player signed in here, so that an older session anywhere (through any
    /// proxy) ends and the player is never in two places; a resume goes to every server,
    /// and the one that has the player answers.
    pub fn join(&self, user: UserId, route: ClientRoute, start: Start, max_players: usize) -> Result<(), RouteError> {
        let session = route.session;
        let replaced = {
            let mut tables = self.tables();
            if !tables.clients.contains_key(&user) && tables.clients.len() >= max_players {
                self.stats.refused(Refusal::Full);
                return Err(RouteError::Full);
            }
            let replaced = tables.insert(user, route);
            self.count(&tables);
            match &start {
                Start::Login { owner, .. } => supersede_elsewhere(&tables, user, *owner),
                Start::Resume => {
                    for link in tables.servers.values() {
                        let _ = link.send(ProxyToServer::Resume { user });
                    }
                }
            }
            replaced
        };
        if let Some(older) = replaced {
            debug!("{user} signed in again: ending its older session");
            let _ = older.outbound.send_last(ProxyToClient::Disconnect { reason: SIGNED_IN_AGAIN.into() });
        }
        match start {
            Start::Login { owner, login } => self.login_now(owner, login).inspect_err(|_| {
                self.forget(user, Some(session));
            }),
            Start::Resume => Ok(()),
        }
    }

    /// Sends a new player's login to `server` at once, or not at all: the player's first
    /// inputs must not overtake it (they would reach a server that has not logged it in
    /// yet), so a server too slow to take it now is busy, and the player tries again.
    fn login_now(&self, server: ServerId, login: ProxyToServer) -> Result<(), RouteError> {
        let tables = self.tables();
        let link = tables.servers.get(&server).ok_or(RouteError::ServerDown(server))?;
        match link.send(login) {
            Ok(()) => {
                ProxyStats::add(&self.stats.frames_to_servers, 1);
                Ok(())
            }
            Err(SendError::Closed) => Err(RouteError::ServerDown(server)),
            Err(SendError::Full) => Err(RouteError::ServerBusy(server)),
        }
    }

    /// The server simulating `user`'s `session`, once one said it does: `Err` once the
    /// session is over.
    pub fn owner_of(&self, user: UserId, session: Session) -> Result<Option<ServerId>, RouteError> {
        match self.tables().clients.get(&user) {
            Some(route) if route.session == session => Ok(route.owner),
            _ => Err(RouteError::UnknownUser(user)),
        }
    }

    /// Drops a player from the table without telling any server: whichever session it
    /// plays on, or only `session`.
    fn forget(&self, user: UserId, session: Option<Session>) -> Option<ClientRoute> {
        let mut tables = self.tables();
        let current = tables.clients.get(&user).map(|route| route.session);
        if current.is_none() || session.is_some_and(|session| Some(session) != current) {
            return None;
        }
        let route = tables.remove(user);
        self.count(&tables);
        route
    }

    /// Forgets a player's `session`, if it is still the one it plays on, and tells its
    /// owner it left. Safe to call more than once.
    pub fn leave(&self, user: UserId, session: Session) {
        if let Some(owner) = self.forget(user, Some(session)).and_then(|route| route.owner) {
            let _ = self.to_server(owner, ProxyToServer::Logout { user });
        }
    }

    /// Ends `user`'s session (whichever it plays on, or only `session`) with `last` as the
    /// last thing it is sent, and lets it go: its connection closes once that is written.
    /// Its owner, if any, is told it left. Whether there was such a session.
    pub fn end(&self, user: UserId, session: Option<Session>, last: ProxyToClient) -> bool {
        let Some(route) = self.forget(user, session) else { return false };
        let _ = route.outbound.send_last(last);
        if let Some(owner) = route.owner {
            let _ = self.to_server(owner, ProxyToServer::Logout { user });
        }
        true
    }

    /// Tells a player why it is disconnected, and lets it go ([`Self::end`]).
    pub fn disconnect(&self, user: UserId, reason: String) {
        self.end(user, None, ProxyToClient::Disconnect { reason });
    }

    /// Forwards a player's message to the server that owns it, if the server's gate would
    /// let it through, waiting while that server's link is full: a slow server holds back
    /// its players' input (and, through their sockets, the players), and drops nobody.
    /// While the player has no server (a resumed session not answered yet, a server
    /// lost), what it sends goes nowhere: it sends again what its server then says it
    /// has not applied.
    pub async fn from_client(&self, user: UserId, message: ProxyToServer) -> Result<(), RouteError> {
        verify::from_proxy(&message)?;
        let link = {
            let tables = self.tables();
            let route = tables.clients.get(&user).ok_or(RouteError::UnknownUser(user))?;
            route.owner.and_then(|owner| tables.servers.get(&owner)).cloned()
        };
        if let Some(link) = link
            && link.send_waiting(message).await.is_ok()
        {
            ProxyStats::add(&self.stats.frames_to_servers, 1);
        }
        Ok(())
    }

    /// Records the server's word that `server` owns `user` from `epoch` on. A server
    /// that claims a player who has left (its notice crossed the player's logout, or a
    /// kick from the previous owner) is told so, or it would simulate nobody's player.
    pub fn set_owner(&self, user: UserId, server: ServerId, epoch: u32) {
        let known = match self.tables().clients.get_mut(&user) {
            Some(route) if epoch >= route.epoch || route.owner.is_none() => {
                if let Some(welcome) = route.welcome.take() {
                    let _ = route.outbound.send(welcome.into());
                }
                (route.owner, route.epoch) = (Some(server), epoch);
                true
            }
            Some(_) => true,
            None => false,
        };
        if !known {
            debug!("{server} took over {user}, who has left: logging it out there");
            let _ = self.to_server(server, ProxyToServer::Logout { user });
        }
    }

    /// Acts on what `server` says: its players' updates go to them, ownership notices
    /// move routes, a kicked player is told why and forgotten, a player adrift waits to
    /// be logged in again ([`Self::adrift`]).
    pub fn from_server(&self, server: ServerId, message: ServerToProxy) {
        match message {
            ServerToProxy::Updates { frames, .. } => self.updates_from(server, frames),
            ServerToProxy::Owner { user, server, epoch } => self.set_owner(user, server, epoch),
            ServerToProxy::Kick { user, reason } => self.disconnect(user, reason),
            ServerToProxy::Adrift { user, epoch } => {
                self.adrift(user, server, epoch);
            }
            ServerToProxy::Chat { line, to } => self.chat_from(server, line, to),
        }
    }

    /// `server` handed `user` on as its handoff number `epoch` and lost the peer before
    /// hearing it was taken. If no server has claimed the player since (its owner on
    /// record is still `server`, as of an earlier handoff), it may be nowhere: it waits
    /// as if its server were lost, told its region is offline, to be logged in again
    /// where it was saved (which, if the peer did take it, takes that session over in
    /// place). Whether it now waits.
    pub fn adrift(&self, user: UserId, server: ServerId, epoch: u32) -> bool {
        let mut tables = self.tables();
        let Some(route) = tables.clients.get_mut(&user) else { return false };
        if route.owner != Some(server) || route.epoch >= epoch {
            return false;
        }
        route.owner = None;
        let _ = route.outbound.send(ProxyToClient::RegionOffline.into());
        true
    }

    /// Delivers messages to players, by user id. A player whose queue is full (in
    /// messages or in bytes) is not reading: it is disconnected.
    pub fn to_clients(&self, messages: impl IntoIterator<Item = (UserId, ToClient)>) {
        self.deliver(messages.into_iter().map(|(user, message)| (user, message, None)));
    }

    /// Forwards `server`'s update frames to their players, those it still owns only: an
    /// update the old owner sent just before a handoff can arrive after the new owner's
    /// first, and would undo it. (The new owner's `Owner` notice precedes its updates on
    /// the same link, so nothing current is dropped.)
    pub fn updates_from(&self, server: ServerId, frames: impl IntoIterator<Item = PlayerFrame>) {
        let frames = frames.into_iter().map(|PlayerFrame { user, last_input, full, frame }| {
            let update = UpdateFrame { acknowledges: last_input, full };
            (user, Outgoing::Encoded(frame), Some(FromServer { by: server, update: Some(update) }))
        });
        self.deliver(frames);
    }

    /// Forwards `server`'s chat `line` to each of `to` it owns, encoded once: a server
    /// speaks to its own players only.
    pub fn chat_from(&self, server: ServerId, line: ChatLine, to: Vec<UserId>) {
        let frame = match encoded_frame(&ProxyToClient::Chat(line)) {
            Ok(frame) => frame,
            Err(err) => {
                warn!("cannot forward a chat line of {server}: {err}");
                return;
            }
        };
        let from = FromServer { by: server, update: None };
        self.deliver(to.into_iter().map(|user| (user, Outgoing::Encoded(frame.clone()), Some(from))));
    }

    fn deliver(&self, messages: impl IntoIterator<Item = (UserId, ToClient, Option<FromServer>)>) {
        let mut stalled = Vec::new();
        let mut delivered = 0;
        // Queued in order under the table's lock, written after it: the writes are a
        // syscall each, and nobody else's messages wait for them.
        let mut to_write = Vec::new();
        let mut datagrams = UpdateDatagrams::default();
        let now = Instant::now();
        {
            let mut tables = self.tables();
            for (user, message, from) in messages {
                let Some(route) = tables.clients.get_mut(&user) else {
                    debug!("dropping a message for {user}, who has left");
                    continue;
                };
                if let Some(FromServer { by, update }) = from {
                    if Some(by) != route.owner {
                        if update.is_some() && route.following == Some(by) {
                            route.following = None;
                        }
                        debug!("dropping a late message for {user} from a server that does not own it");
                        continue;
                    }
                    if let Some(UpdateFrame { acknowledges, full }) = update {
                        route.acked = acknowledges;
                        if full {
                            route.following = Some(by);
                        } else if route.following != Some(by) {
                            debug!("dropping an update for {user} of {by}'s that follows none it was forwarded");
                            continue;
                        }
                        if self.datagrams.is_some()
                            && let (Some(bound), Outgoing::Encoded(frame)) = (&route.datagrams, &message)
                            && let Some(to) = bound.to(now).filter(|_| datagram::fits(frame))
                        {
                            datagrams.push(to, bound.tag, route.updates_by_link, frame.clone());
                            route.outbound.sent_elsewhere();
                            delivered += 1;
                            continue;
                        }
                        route.updates_by_link = route.updates_by_link.wrapping_add(1);
                    }
                }
                match route.outbound.queue(message) {
                    Ok(flush) => {
                        delivered += 1;
                        to_write.push(flush);
                    }
                    Err(QueueError::Closed) => {}
                    Err(err @ QueueError::OverBudget { .. }) => stalled.push((user, err)),
                    Err(err @ QueueError::Encode(_)) => warn!("cannot send {user} a message: {err}"),
                }
            }
        }
        // A socket that failed is its writer's to report: the player's link ends.
        for flush in to_write {
            let _ = flush.flush();
        }
        if let Some(socket) = &self.datagrams {
            datagrams.send(socket, &self.stats);
        }
        ProxyStats::add(&self.stats.frames_to_clients, delivered);

        for (user, err) in stalled {
            warn!("disconnecting {user}: {err}");
            self.stats.refused(Refusal::SlowReader);
            self.disconnect(user, format!("too far behind: {err}"));
        }
    }
}

/// The server a message for a player comes from, which must own it; for an update,
/// what the proxy reads of it.
#[derive(Clone, Copy)]
struct FromServer {
    by: ServerId,
    update: Option<UpdateFrame>,
}

/// What the proxy reads of a player's update: the last input of the player's it
/// acknowledges, and whether it is full (needs no update before it).
#[derive(Clone, Copy)]
struct UpdateFrame {
    acknowledges: u32,
    full: bool,
}

/// Tells every server but `owner`, where `user` is logged in now, that it signed in
/// here: an older session of it anywhere ends, so it is in one place only.
fn supersede_elsewhere(tables: &Tables, user: UserId, owner: ServerId) {
    for (_, link) in tables.servers.iter().filter(|&(&server, _)| server != owner) {
        let _ = link.send(ProxyToServer::Supersede { user });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_queue::ClientSink;
    use bytes::Bytes;
    use tessera_shared::framing::decode_body;
    use tessera_shared::link::arrival::bind_unwatched;
    use tokio::sync::mpsc;

    /// A table with server 1 up, and what it queues for that server.
    fn with_server() -> (Routing, mpsc::Receiver<ProxyToServer>) {
        let routing = Routing::default();
        let (to_one, server_one) = Outbound::channel();
        routing.server_up(ServerId(1), to_one);
        (routing, server_one)
    }

    /// Joins player `n` on server 1 with a queue of `budget` bytes.
    fn join(routing: &Routing, n: u64, budget: usize) -> Result<(UserId, ClientSink), RouteError> {
        join_session(routing, n, budget).map(|(user, queue, _)| (user, queue))
    }

    /// As [`join`], with the session it plays on.
    fn join_session(routing: &Routing, n: u64, budget: usize) -> Result<(UserId, ClientSink, Session), RouteError> {
        let (outbound, queue) = ClientQueue::channel(budget);
        let key = PlayerKey([n as u8; 32]);
        let user = key.user();
        let name = EntityName::from(&format!("p{n}")).unwrap();
        let login = ProxyToServer::Login { user, name, position: Vec2::ZERO, last_input: 0 };
        let session = Session::next();
        let route = ClientRoute::new(outbound, Some(ServerId(1)), session, None, key);
        routing.join(user, route, Start::Login { owner: ServerId(1), login }, 2)?;
        Ok((user, queue, session))
    }

    /// A table sending updates by datagram, with server 1 up and what it queues for
    /// it, and a player on it from loopback given a datagram tag: its queue, its id,
    /// session and tag, and what its link hears of its datagrams.
    async fn with_player_by_datagram()
    -> (Routing, mpsc::Receiver<ProxyToServer>, ClientSink, (UserId, Session, DatagramTag, HeardElsewhere)) {
        let (socket, _) = bind_unwatched("127.0.0.1:0".parse().unwrap(), 1 << 16).unwrap();
        let routing = Routing::new(Arc::default(), Some(Arc::new(socket)));
        let (to_one, server_one) = Outbound::channel();
        routing.server_up(ServerId(1), to_one);
        let (outbound, queue) = ClientQueue::channel(1 << 20);
        let key = PlayerKey([1; 32]);
        let (user, session, tag) = (key.user(), Session::next(), DatagramTag([5; 8]));
        let login =
            ProxyToServer::Login { user, name: EntityName::from("p1").unwrap(), position: Vec2::ZERO, last_input: 0 };
        let loopback = std::net::Ipv4Addr::LOCALHOST.into();
        let heard = HeardElsewhere::default();
        let route = ClientRoute::new(outbound, Some(ServerId(1)), session, None, key).with_datagrams(
            Some(tag),
            loopback,
            heard.clone(),
        );
        routing.join(user, route, Start::Login { owner: ServerId(1), login }, 2).unwrap();
        (routing, server_one, queue, (user, session, tag, heard))
    }

    fn next_frame(queue: &mut ClientSink) -> Option<Bytes> {
        queue.next_frame()
    }

    /// `frame` for `user`, acknowledging no input.
    fn played(user: UserId, frame: &Bytes) -> PlayerFrame {
        PlayerFrame { user, last_input: 0, full: true, frame: frame.clone() }
    }

    fn input(user: UserId, seq: u32) -> ProxyToServer {
        ProxyToServer::Input { user, input: tessera_shared::protocol::Input { seq, keys: Default::default(), tick: 0 } }
    }

    #[tokio::test]
    async fn a_player_whose_server_was_lost_follows_on_from_what_it_acknowledged() {
        let (routing, _lost) = with_server();
        let (user, _player, session) = join_session(&routing, 1, 1 << 20).unwrap();
        for seq in 1..=5 {
            routing.from_client(user, input(user, seq)).await.unwrap();
        }
        // The server applied three of the five before it was lost: the other two went
        // with it, and the player sends them again to whichever logs it in.
        routing.updates_from(
            ServerId(1),
            [PlayerFrame { user, last_input: 3, full: true, frame: Bytes::from_static(b"f") }],
        );
        assert_eq!(routing.server_down(ServerId(1)), 1);
        let (to_back, mut back) = Outbound::channel();
        routing.server_up(ServerId(1), to_back);
        routing.log_in_again(user, session, ServerId(1), EntityName::from("p1").unwrap(), Vec2::ONE);
        match back.try_recv() {
            Ok(ProxyToServer::Login { last_input, .. }) => {
                assert_eq!(last_input, 3, "the last acknowledged, not forwarded")
            }
            other => panic!("expected a login, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_slow_server_holds_its_players_back_and_drops_nobody() {
        let (routing, mut server_one) = with_server();
        let routing = Arc::new(routing);
        let (user, _player, session) = join_session(&routing, 1, 1 << 20).unwrap();
        let _login = server_one.recv().await;
        let capacity = tessera_shared::link::OUTBOUND_CAPACITY as u32;
        for seq in 1..=capacity {
            routing.from_client(user, input(user, seq)).await.unwrap();
        }
        // The server reads nothing: the next input waits, and so does a logout.
        let waiting = routing.clone();
        let next = tokio::spawn(async move { waiting.from_client(user, input(user, capacity + 1)).await });
        tokio::task::yield_now().await;
        assert!(!next.is_finished(), "the player's input waits for room");
        routing.leave(user, session);
        assert!(routing.is_server_up(ServerId(1)), "the slow server's link stays");
        for seq in 1..=capacity {
            assert!(matches!(server_one.recv().await, Some(ProxyToServer::Input { input, .. }) if input.seq == seq));
        }
        next.await.unwrap().unwrap();
        let rest = [server_one.recv().await, server_one.recv().await];
        let last_input = ProxyToServer::Input {
            user,
            input: tessera_shared::protocol::Input { seq: capacity + 1, keys: Default::default(), tick: 0 },
        };
        for message in [last_input, ProxyToServer::Logout { user }] {
            assert!(rest.contains(&Some(message.clone())), "{message:?} waited and went: nothing was lost");
        }
    }

    #[test]
    fn a_late_update_from_the_previous_owner_is_dropped() {
        let (routing, _server_one) = with_server();
        let (user, mut player) = join(&routing, 1, 1 << 20).unwrap();
        let frame = Bytes::from_static(b"frame");

        routing.updates_from(ServerId(1), [played(user, &frame)]);
        assert_eq!(next_frame(&mut player), Some(frame.clone()), "the owner's update goes through");
        routing.set_owner(user, ServerId(2), 1);
        routing.updates_from(ServerId(1), [played(user, &frame)]);
        assert!(player.next_frame().is_none(), "the previous owner's late update is dropped");
        routing.updates_from(ServerId(2), [played(user, &frame)]);
        assert_eq!(next_frame(&mut player), Some(frame));
    }

    #[test]
    fn a_player_is_forwarded_its_servers_updates_from_a_full_one_on_and_none_after_a_gap() {
        let (routing, _server_one) = with_server();
        let (user, mut player) = join(&routing, 1, 1 << 20).unwrap();
        let (full, next) = (Bytes::from_static(b"full"), Bytes::from_static(b"next"));
        let packed_after = |frame: &Bytes| PlayerFrame { full: false, ..played(user, frame) };

        // An older session's update, sent before the server took this one's login.
        routing.updates_from(ServerId(1), [packed_after(&next)]);
        assert!(player.next_frame().is_none(), "an update packed against none this player had");
        routing.updates_from(ServerId(1), [played(user, &full), packed_after(&next)]);
        assert_eq!((next_frame(&mut player), next_frame(&mut player)), (Some(full.clone()), Some(next.clone())));

        // Its server is lost, and its updates meanwhile dropped: the rest follow a gap.
        assert_eq!(routing.server_down(ServerId(1)), 1);
        let told = next_frame(&mut player).map(|frame| decode_body(&frame[4..]));
        assert!(matches!(told, Some(Ok(ProxyToClient::RegionOffline))), "{told:?}");
        routing.updates_from(ServerId(1), [packed_after(&next)]);
        let (to_back, _back) = Outbound::channel();
        routing.server_up(ServerId(1), to_back);
        routing.set_owner(user, ServerId(1), 0);
        routing.updates_from(ServerId(1), [packed_after(&next)]);
        assert!(player.next_frame().is_none(), "an update that follows one dropped");
        routing.updates_from(ServerId(1), [played(user, &full), packed_after(&next)]);
        assert_eq!((next_frame(&mut player), next_frame(&mut player)), (Some(full), Some(next)));
    }

    #[tokio::test]
    async fn a_bound_player_is_sent_its_updates_by_datagram_and_the_rest_by_its_link() {
        let (routing, _server_one, mut queue, (user, session, tag, _)) = with_player_by_datagram().await;
        let player = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let at = player.local_addr().unwrap();
        let update = Bytes::from_static(b"\0\0\0\x06update");

        routing.updates_from(ServerId(1), [played(user, &update)]);
        assert_eq!(next_frame(&mut queue), Some(update.clone()), "not bound yet: by the link");
        assert!(!routing.bind_datagrams(DatagramTag([6; 8]), at), "a stranger's tag binds nobody");
        let elsewhere = SocketAddr::from(([192, 0, 2, 7], at.port()));
        assert!(!routing.bind_datagrams(tag, elsewhere), "nor does a bind from another host than the link's");
        assert!(routing.bind_datagrams(tag, at));
        routing.updates_from(ServerId(1), [PlayerFrame { full: false, ..played(user, &update) }]);
        assert!(queue.next_frame().is_none(), "bound: not by the link");
        let mut received = [0; 64];
        let len = tokio::time::timeout(std::time::Duration::from_secs(10), player.recv(&mut received)).await.unwrap();
        let expected = [&tag.0[..], &[1], b"update"].concat();
        assert_eq!(received[..len.unwrap()], expected, "the tag, the updates sent by the link, the frame's body");
        assert_eq!(routing.stats.datagrams_to_clients.load(Ordering::Relaxed), 1);

        let mut long = vec![0; 4 + datagram::MAX_UPDATE_DATAGRAM];
        long[..4].copy_from_slice(&(datagram::MAX_UPDATE_DATAGRAM as u32).to_be_bytes());
        let long = Bytes::from(long);
        routing.updates_from(ServerId(1), [PlayerFrame { full: false, ..played(user, &long) }]);
        assert_eq!(next_frame(&mut queue), Some(long), "too long for a datagram: by the link");
        assert!(routing.no_datagrams(user), "the player says none reach it");
        routing.updates_from(ServerId(1), [PlayerFrame { full: false, ..played(user, &update) }]);
        assert!(queue.next_frame().is_none(), "packed against updates it lost: dropped");
        routing.updates_from(ServerId(1), [played(user, &update)]);
        assert_eq!(next_frame(&mut queue), Some(update), "from a full one on, everything by the link");
        assert!(!routing.bind_datagrams(tag, at), "its tag is gone");
        routing.leave(user, session);
    }

    #[tokio::test]
    async fn inputs_by_datagram_come_from_the_bound_address_alone_and_go_once_each() {
        let (routing, mut server_one, _queue, (user, session, tag, heard)) = with_player_by_datagram().await;
        assert!(matches!(server_one.try_recv(), Ok(ProxyToServer::Login { .. })));
        let at = SocketAddr::from(([127, 0, 0, 1], 40_000));
        let inputs = |seqs: std::ops::RangeInclusive<u32>| {
            Ok(seqs.map(|seq| tessera_shared::protocol::Input { seq, keys: Default::default(), tick: 0 }).collect())
        };
        let forwarded = |server: &mut mpsc::Receiver<ProxyToServer>| {
            std::iter::from_fn(|| match server.try_recv().ok()? {
                ProxyToServer::Input { user: from, input } if from == user => Some(input.seq),
                other => panic!("only the player's inputs, not {other:?}"),
            })
            .collect::<Vec<_>>()
        };

        // What the player's link hears of its datagrams is read to the millisecond.
        let a_while = || tokio::time::sleep(std::time::Duration::from_millis(5));
        let first_heard = heard.last();
        a_while().await;
        assert_eq!(routing.inputs_by_datagram(tag, at, inputs(1..=1)), InputsTaken::Stranger, "not bound yet");
        assert!(routing.bind_datagrams(tag, at));
        let bound_heard = heard.last();
        assert!(bound_heard > first_heard, "a bind is its player's proof of life");
        a_while().await;
        let other_port = SocketAddr::from(([127, 0, 0, 1], 40_001));
        assert_eq!(routing.inputs_by_datagram(tag, other_port, inputs(1..=1)), InputsTaken::Stranger);
        assert_eq!(routing.inputs_by_datagram(DatagramTag([6; 8]), at, inputs(1..=1)), InputsTaken::Stranger);
        assert_eq!(forwarded(&mut server_one), Vec::<u32>::new(), "nothing from strangers");
        assert_eq!(heard.last(), bound_heard, "and nothing of the player's life");

        // Each datagram repeats what is unacknowledged: each input goes on once, and one
        // that overtook the datagram before it (lost, or late) is forwarded as it comes.
        assert_eq!(routing.inputs_by_datagram(tag, at, inputs(1..=1)), InputsTaken::Forwarded(1));
        assert_eq!(routing.inputs_by_datagram(tag, at, inputs(1..=3)), InputsTaken::Forwarded(2));
        assert_eq!(routing.inputs_by_datagram(tag, at, inputs(2..=3)), InputsTaken::Forwarded(0), "late");
        assert_eq!(routing.inputs_by_datagram(tag, at, inputs(3..=4)), InputsTaken::Forwarded(1));
        assert_eq!(forwarded(&mut server_one), vec![1, 2, 3, 4]);
        assert!(heard.last() > bound_heard, "inputs are proof of life too");

        // A datagram from the player that breaks the rule is its own fault.
        let bad = routing.inputs_by_datagram(tag, at, Err(Violation::BadInputs("out of sequence")));
        assert_eq!(bad, InputsTaken::Refused(user, session, Violation::BadInputs("out of sequence")));
        // Past its rate, what comes is dropped. A second's worth of inputs goes: the
        // datagrams above took five tokens (one that carried nothing new, one), and
        // each of eight new inputs takes eight, so six go (a few more on a machine
        // busy enough here to refill some).
        let mut flood = (0..20).map(|n| routing.inputs_by_datagram(tag, at, inputs(5 + 8 * n..=12 + 8 * n)));
        let taken = flood.by_ref().take_while(|taken| *taken == InputsTaken::Forwarded(8)).count();
        assert!((6..=9).contains(&taken), "{taken} datagrams of eight new inputs before the rate was reached");
        assert_eq!(flood.next(), Some(InputsTaken::OverRate), "and the next is dropped too");
        let went = 4 + 8 * taken as u32;
        assert_eq!(forwarded(&mut server_one), (5..=went).collect::<Vec<_>>(), "what went, each once");
        routing.leave(user, session);
    }

    #[test]
    fn a_chat_line_reaches_the_players_its_server_owns_only() {
        let (routing, _server_one) = with_server();
        let (ada, mut ada_queue) = join(&routing, 1, 1 << 20).unwrap();
        let (bo, bo_queue) = join(&routing, 2, 1 << 20).unwrap();
        routing.set_owner(bo, ServerId(2), 1);
        let line = ChatLine {
            speaker: ada.entity(),
            name: "p1".into(),
            channel: tessera_shared::protocol::ChatChannel::Near,
            text: "hi".into(),
        };
        routing.from_server(ServerId(1), ServerToProxy::Chat { line: line.clone(), to: vec![ada, bo, UserId(9)] });
        match next_frame(&mut ada_queue).map(|frame| decode_body(&frame[4..])) {
            Some(Ok(ProxyToClient::Chat(heard))) => assert_eq!(heard, line),
            other => panic!("expected the line, got {other:?}"),
        }
        assert!(bo_queue.next_frame().is_none(), "server 1 does not speak for server 2's player");
    }

    #[test]
    fn past_the_player_cap_the_cluster_is_full() {
        let (routing, _server_one) = with_server();
        let (first, _, session) = join_session(&routing, 1, 1024).unwrap();
        let _second = join(&routing, 2, 1024).unwrap();
        assert_eq!(join(&routing, 3, 1024).err(), Some(RouteError::Full));
        assert_eq!(RouteError::Full.to_string(), CLUSTER_FULL, "the reason players recognise");
        assert_eq!(routing.stats.refusals(Refusal::Full), 1);
        assert!(join(&routing, 2, 1024).is_ok(), "a player signing in again takes no more room");
        routing.leave(first, session);
        assert!(join(&routing, 4, 1024).is_ok(), "a player leaving makes room");
    }

    #[test]
    fn a_player_over_its_byte_budget_is_disconnected_alone() {
        let (routing, mut server_one) = with_server();
        let (slow, mut slow_queue) = join(&routing, 1, 1000).unwrap();
        let (reader, mut reader_queue) = join(&routing, 2, 1000).unwrap();
        let frame = Bytes::from(vec![7; 400]);
        for _ in 0..3 {
            routing.updates_from(ServerId(1), [played(slow, &frame), played(reader, &frame)]);
            assert_eq!(next_frame(&mut reader_queue), Some(frame.clone()), "the reader keeps up");
        }
        assert_eq!(routing.stats.refusals(Refusal::SlowReader), 1);
        let frames: Vec<Bytes> = std::iter::from_fn(|| next_frame(&mut slow_queue)).collect();
        assert_eq!(frames.len(), 3, "two frames within the budget, then why");
        match decode_body(&frames[2][4..]) {
            Ok(ProxyToClient::Disconnect { reason }) => assert!(reason.contains("not reading"), "{reason}"),
            other => panic!("expected the reason, got {other:?}"),
        }
        let messages: Vec<_> = std::iter::from_fn(|| server_one.try_recv().ok()).collect();
        assert!(messages.contains(&ProxyToServer::Logout { user: slow }), "its server is told it left");
        routing.updates_from(ServerId(1), [played(reader, &frame)]);
        assert_eq!(next_frame(&mut reader_queue), Some(frame), "the reader plays on");
    }

    #[test]
    fn a_player_signing_in_again_ends_its_older_session_only() {
        let (routing, mut server_one) = with_server();
        let (user, mut older, older_session) = join_session(&routing, 1, 1 << 20).unwrap();
        let (_, mut newer, newer_session) = join_session(&routing, 1, 1 << 20).unwrap();
        let frames: Vec<Bytes> = std::iter::from_fn(|| next_frame(&mut older)).collect();
        match frames.last().map(|frame| decode_body(&frame[4..])) {
            Some(Ok(ProxyToClient::Disconnect { reason })) => assert_eq!(reason, SIGNED_IN_AGAIN),
            other => panic!("expected the older session told why it ends, got {other:?}"),
        }
        routing.leave(user, older_session);
        let frame = Bytes::from_static(b"frame");
        routing.updates_from(ServerId(1), [played(user, &frame)]);
        assert_eq!(next_frame(&mut newer), Some(frame), "the older session closing leaves the newer one be");
        let logins = std::iter::from_fn(|| server_one.try_recv().ok());
        assert!(logins.into_iter().all(|message| matches!(message, ProxyToServer::Login { .. })), "no logout");
        routing.leave(user, newer_session);
        assert_eq!(server_one.try_recv().ok(), Some(ProxyToServer::Logout { user }));
    }
}
