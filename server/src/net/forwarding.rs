//! Input for players this server handed on, passed to their new owner by the transport
//! the moment it arrives, instead of at our next frame: sent before the player's proxy
//! heard of the handoff, such input would otherwise reach the new owner a tick after
//! input sent straight to it, late for the tick it was pressed for, and the player
//! would see its prediction corrected at the border. The handoff module keeps the
//! table ([`crate::handoff`]); the app still gets every such input, marked as passed on,
//! to hold a copy until the new owner answers.

use super::NetEvent;
use bevy::prelude::Resource;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tessera_shared::ids::{ProxyId, UserId};
use tessera_shared::link::WeakOutbound;
use tessera_shared::protocol::{PeerMessage, ProxyToServer};

/// Where a handed-on player's input goes, and who may send it.
struct Route {
    /// The proxy that spoke for the player here.
    proxy: ProxyId,
    /// The link the handoff went on: input queued on it follows the handoff. Weak, so
    /// a link the app drops (or replaces) closes all the same, and input for the
    /// player is then the app's to forward, on the link it has.
    link: WeakOutbound<PeerMessage>,
}

/// Players handed on, shared by the app (which fills it) and the transport's tasks.
#[derive(Resource, Clone, Default)]
pub struct Forwarding(Arc<Mutex<HashMap<UserId, Route>>>);

impl Forwarding {
    /// From now on, input for `user` from `proxy` goes to its new owner over `link`,
    /// which must already carry the handoff.
    pub fn route(&self, user: UserId, proxy: ProxyId, link: WeakOutbound<PeerMessage>) {
        self.routes().insert(user, Route { proxy, link });
    }

    /// Input for `user` is ours to handle again (or to drop).
    pub fn unroute(&self, user: UserId) {
        self.routes().remove(&user);
    }

    /// The event a message from `proxy` makes, once input in it for a player handed on
    /// has gone to the player's new owner. A link that is full, or no longer the app's,
    /// leaves that to the app, which sees why (or forwards it on the link it has now).
    pub fn from_proxy(&self, proxy: ProxyId, message: ProxyToServer) -> NetEvent {
        let ProxyToServer::Input { user, input } = message else {
            return NetEvent::FromProxy { proxy, message };
        };
        let routes = self.routes();
        let route = routes.get(&user).filter(|route| route.proxy == proxy);
        let link = route.and_then(|route| route.link.upgrade());
        match link.map(|link| link.send(PeerMessage::ForwardInput { user, input })) {
            Some(Ok(())) => NetEvent::InputPassedOn { proxy, user, input },
            _ => NetEvent::FromProxy { proxy, message },
        }
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Route>> {
        // Nothing panics while holding the lock; if something did, the table is still whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_shared::components::Keys;
    use tessera_shared::link::Outbound;
    use tessera_shared::protocol::Input;

    const ADA: UserId = UserId(7);
    const HERS: ProxyId = ProxyId(1);

    fn input(seq: u32) -> ProxyToServer {
        ProxyToServer::Input { user: ADA, input: Input { seq, keys: Keys::UP, tick: seq } }
    }

    #[test]
    fn input_for_a_player_handed_on_goes_on_from_its_own_proxy_only_while_routed() {
        let forwarding = Forwarding::default();
        let (link, mut queue) = Outbound::channel();
        assert!(matches!(forwarding.from_proxy(HERS, input(1)), NetEvent::FromProxy { .. }), "not handed on yet");

        forwarding.route(ADA, HERS, link.downgrade());
        assert!(matches!(forwarding.from_proxy(HERS, input(2)), NetEvent::InputPassedOn { user: ADA, .. }));
        let Ok(PeerMessage::ForwardInput { user: ADA, input: sent }) = queue.try_recv() else {
            panic!("input 2 went on")
        };
        assert_eq!(sent.seq, 2);
        // Another proxy does not speak for her; nor is a logout input.
        assert!(matches!(forwarding.from_proxy(ProxyId(2), input(3)), NetEvent::FromProxy { .. }));
        let logout = ProxyToServer::Logout { user: ADA };
        assert!(matches!(forwarding.from_proxy(HERS, logout), NetEvent::FromProxy { .. }));
        assert!(queue.try_recv().is_err(), "nothing else went on");

        forwarding.unroute(ADA);
        assert!(matches!(forwarding.from_proxy(HERS, input(4)), NetEvent::FromProxy { .. }), "ours again");
        // A link the app let go of leaves the input to the app, which forwards it on the
        // link it has now, or sees why not; and the route kept it open no longer.
        forwarding.route(ADA, HERS, link.downgrade());
        drop(link);
        assert!(matches!(forwarding.from_proxy(HERS, input(5)), NetEvent::FromProxy { .. }), "the link is dropped");
        assert!(matches!(queue.try_recv(), Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)));
    }
}
