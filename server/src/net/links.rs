//! The open links of one kind (to proxies, or to peer servers), keyed by the remote's
//! id. Systems queue messages here without blocking; a remote that stops reading fills
//! its queue, and its link is dropped (which closes it) and reported lost next frame;
//! so is one whose remote broke the protocol in a way only the app's state shows. A
//! transport's task may send on a link too, through a weak handle that never keeps a
//! link dropped here open ([`Links::weak_outbound`]).

use super::LinkId;
use bevy::prelude::Resource;
use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use tessera_shared::link::{Outbound, SendError, WeakOutbound};
use tessera_shared::protocol::verify::Violation;
use tracing::error;

#[derive(Resource)]
pub struct Links<K: Send + Sync + 'static, M: Send + 'static> {
    open: HashMap<K, (LinkId, Outbound<M>)>,
    /// Links dropped for not reading, to be reported lost.
    dropped: Vec<K>,
}

impl<K: Send + Sync + 'static, M: Send + 'static> Default for Links<K, M> {
    fn default() -> Self {
        Self { open: HashMap::new(), dropped: Vec::new() }
    }
}

impl<K: Copy + Eq + Hash + Display + Send + Sync + 'static, M: Send + 'static> Links<K, M> {
    /// Queues `message` for `to`; false when there is no link to it (any more).
    pub fn send(&mut self, to: K, message: M) -> bool {
        let Some((_, outbound)) = self.open.get(&to) else {
            return false;
        };
        match outbound.send(message) {
            Ok(()) => true,
            Err(SendError::Full) => {
                error!("{to} is not reading: closing its link");
                self.drop_link(to);
                false
            }
            Err(SendError::Closed) => false,
        }
    }

    /// Closes the link to `to`; it is reported lost next frame.
    pub fn drop_link(&mut self, to: K) {
        if self.open.remove(&to).is_some() {
            self.dropped.push(to);
        }
    }

    /// Closes the link to `to`, which said what it had no right to (something only the
    /// receiver's state shows: the transport's gate let it through).
    pub fn refuse(&mut self, to: K, violation: Violation) {
        error!("closing the link to {to}: protocol violation: {violation}");
        self.drop_link(to);
    }

    /// Records a new link; true if it replaced an older one.
    pub(super) fn up(&mut self, to: K, link: LinkId, outbound: Outbound<M>) -> bool {
        self.open.insert(to, (link, outbound)).is_some()
    }

    /// Forgets `link` if it is still the current one; true if it was.
    pub(super) fn down(&mut self, to: K, link: LinkId) -> bool {
        let current = self.open.get(&to).is_some_and(|(open, _)| *open == link);
        if current {
            self.open.remove(&to);
        }
        current
    }

    pub(super) fn take_dropped(&mut self) -> Vec<K> {
        std::mem::take(&mut self.dropped)
    }

    /// The queue of the link to `to`, for a transport's task to send on directly while
    /// the link stays here: it does not keep a link dropped here open.
    pub fn weak_outbound(&self, to: K) -> Option<WeakOutbound<M>> {
        self.open.get(&to).map(|(_, outbound)| outbound.downgrade())
    }

    pub fn contains(&self, to: K) -> bool {
        self.open.contains_key(&to)
    }

    pub fn ids(&self) -> impl Iterator<Item = K> + '_ {
        self.open.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}
