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
//! What a player sends is held to the server's own gate before it is forwarded, so one
//! player's bad input (a sequence number of 0) closes that player's connection, never the
//! link all of this proxy's players share.

use crate::stats::ProxyStats;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use tessera_shared::framing::Outgoing;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::link::{Outbound, SendError};
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{ProxyToClient, ProxyToServer, ServerToProxy};
use tracing::{debug, warn};

/// What goes to a player: a message of the proxy's own, or a server's frame, forwarded untouched.
pub type ToClient = Outgoing<ProxyToClient>;

/// One player behind this proxy.
pub struct ClientRoute {
    pub outbound: Outbound<ToClient>,
    pub owner: ServerId,
    pub epoch: u32,
}

#[derive(Default)]
struct Tables {
    clients: HashMap<UserId, ClientRoute>,
    servers: HashMap<ServerId, Outbound<ProxyToServer>>,
}

#[derive(Default)]
pub struct Routing {
    tables: Mutex<Tables>,
    /// What went through this table, for the operator and the benchmark.
    pub stats: ProxyStats,
}

/// Why a message could not be routed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RouteError {
    #[error(transparent)]
    Violation(#[from] Violation),
    #[error("{0} is unreachable right now")]
    ServerDown(ServerId),
    #[error("{0} is not reading: its link is closed")]
    ServerStalled(ServerId),
    #[error("{0} is not connected here")]
    UnknownUser(UserId),
}

impl Routing {
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

    /// Forgets `server`'s link and returns the players it owned: they are gone with it.
    /// Every other server is told they left, in case one of them took a player over
    /// and its notice was lost with the link.
    pub fn server_down(&self, server: ServerId) -> Vec<(UserId, Outbound<ToClient>)> {
        let mut tables = self.tables();
        tables.servers.remove(&server);
        let orphans: Vec<UserId> =
            tables.clients.iter().filter(|(_, route)| route.owner == server).map(|(&user, _)| user).collect();
        for user in &orphans {
            for link in tables.servers.values() {
                let _ = link.send(ProxyToServer::Logout { user: *user });
            }
        }
        let orphans = orphans.into_iter().filter_map(|user| tables.clients.remove(&user).map(|r| (user, r.outbound)));
        let orphans = orphans.collect();
        self.count(&tables);
        orphans
    }

    pub fn is_server_up(&self, server: ServerId) -> bool {
        self.tables().servers.get(&server).is_some_and(|link| !link.is_closed())
    }

    /// Sends `message` to `server`. A server that is not reading has its link dropped.
    pub fn to_server(&self, server: ServerId, message: ProxyToServer) -> Result<(), RouteError> {
        let mut tables = self.tables();
        let link = tables.servers.get(&server).ok_or(RouteError::ServerDown(server))?;
        match link.send(message) {
            Ok(()) => {
                ProxyStats::add(&self.stats.frames_to_servers, 1);
                Ok(())
            }
            Err(SendError::Closed) => Err(RouteError::ServerDown(server)),
            Err(SendError::Full) => {
                tables.servers.remove(&server);
                self.count(&tables);
                Err(RouteError::ServerStalled(server))
            }
        }
    }

    /// Registers a player, whose login goes to `owner`.
    pub fn join(&self, user: UserId, route: ClientRoute, login: ProxyToServer) -> Result<(), RouteError> {
        let owner = route.owner;
        {
            let mut tables = self.tables();
            tables.clients.insert(user, route);
            self.count(&tables);
        }
        self.to_server(owner, login).inspect_err(|_| {
            self.forget(user);
        })
    }

    /// Drops a player from the table without telling any server.
    fn forget(&self, user: UserId) -> Option<ClientRoute> {
        let mut tables = self.tables();
        let route = tables.clients.remove(&user);
        self.count(&tables);
        route
    }

    /// Forgets a player and tells its owner it left. Safe to call more than once.
    pub fn leave(&self, user: UserId) {
        if let Some(route) = self.forget(user) {
            let _ = self.to_server(route.owner, ProxyToServer::Logout { user });
        }
    }

    /// Forwards a player's message to the server that owns it, if the server's gate would
    /// let it through.
    pub fn from_client(&self, user: UserId, message: ProxyToServer) -> Result<(), RouteError> {
        verify::from_proxy(&message, user.proxy())?;
        let owner = self.tables().clients.get(&user).map(|route| route.owner).ok_or(RouteError::UnknownUser(user))?;
        self.to_server(owner, message)
    }

    /// Records the server's word that `server` owns `user` from `epoch` on. A server
    /// that claims a player who has left (its notice crossed the player's logout, or a
    /// kick from the previous owner) is told so, or it would simulate nobody's player.
    pub fn set_owner(&self, user: UserId, server: ServerId, epoch: u32) {
        let known = match self.tables().clients.get_mut(&user) {
            Some(route) if epoch >= route.epoch => {
                (route.owner, route.epoch) = (server, epoch);
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
    /// move routes, a kicked player is told why and forgotten.
    pub fn from_server(&self, server: ServerId, message: ServerToProxy) {
        match message {
            ServerToProxy::Updates { frames, .. } => self.updates_from(server, frames),
            ServerToProxy::Owner { user, server, epoch } => self.set_owner(user, server, epoch),
            ServerToProxy::Kick { user, reason } => {
                self.to_clients([(user, ProxyToClient::Disconnect { reason }.into())]);
                self.leave(user);
            }
        }
    }

    /// Delivers messages to players, by user id. A player whose queue is full is not
    /// reading: it is disconnected.
    pub fn to_clients(&self, messages: impl IntoIterator<Item = (UserId, ToClient)>) {
        self.deliver(messages, None);
    }

    /// Forwards `server`'s update frames to their players, those it still owns only: an
    /// update the old owner sent just before a handoff can arrive after the new owner's
    /// first, and would undo it. (The new owner's `Owner` notice precedes its updates on
    /// the same link, so nothing current is dropped.)
    pub fn updates_from(&self, server: ServerId, frames: impl IntoIterator<Item = (UserId, bytes::Bytes)>) {
        self.deliver(frames.into_iter().map(|(user, frame)| (user, Outgoing::Encoded(frame))), Some(server));
    }

    fn deliver(&self, messages: impl IntoIterator<Item = (UserId, ToClient)>, owner: Option<ServerId>) {
        let mut stalled = Vec::new();
        let mut delivered = 0;
        {
            let tables = self.tables();
            for (user, message) in messages {
                let Some(route) = tables.clients.get(&user) else {
                    debug!("dropping a message for {user}, who has left");
                    continue;
                };
                if owner.is_some_and(|owner| owner != route.owner) {
                    debug!("dropping a late update for {user} from its previous owner");
                    continue;
                }
                match route.outbound.send(message) {
                    Ok(()) => delivered += 1,
                    Err(SendError::Full) => stalled.push(user),
                    Err(SendError::Closed) => {}
                }
            }
        }
        ProxyStats::add(&self.stats.frames_to_clients, delivered);

        for user in stalled {
            warn!("{user} is not reading its updates: disconnecting it");
            self.leave(user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::ids::ProxyId;

    #[test]
    fn a_late_update_from_the_previous_owner_is_dropped() {
        let routing = Routing::default();
        let (to_one, _server_one) = Outbound::channel();
        routing.server_up(ServerId(1), to_one);
        let (outbound, mut player) = Outbound::channel();
        let user = UserId::issue(ProxyId(1), 1);
        let login = ProxyToServer::Logout { user };
        routing.join(user, ClientRoute { outbound, owner: ServerId(1), epoch: 0 }, login).unwrap();
        let frame = bytes::Bytes::from_static(b"frame");

        routing.updates_from(ServerId(1), [(user, frame.clone())]);
        assert_eq!(player.try_recv().ok(), Some(Outgoing::Encoded(frame.clone())), "the owner's update goes through");
        routing.set_owner(user, ServerId(2), 1);
        routing.updates_from(ServerId(1), [(user, frame.clone())]);
        assert!(player.try_recv().is_err(), "the previous owner's late update is dropped");
        routing.updates_from(ServerId(2), [(user, frame.clone())]);
        assert_eq!(player.try_recv().ok(), Some(Outgoing::Encoded(frame)));
    }
}
