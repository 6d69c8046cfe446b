//! The gate every message from another process passes before its receiver believes it:
//! what the sender has the right to say, given who it proved to be in the handshake and
//! what the cluster map gives it. A message that fails closes its link, with the
//! [`Violation`] as the reason; nothing it carried reaches the simulation. The TCP links
//! and the in-process test transport call the same functions.

use super::{PeerMessage, ProxyToServer};
use crate::ids::{ProxyId, ServerId, UserId};
use crate::protocol::MAX_NAME_LEN;
use crate::region_map::{CellId, RegionMap};
use glam::Vec2;

/// A message its sender had no right to send.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    #[error("{proxy} spoke for {user}, whom it did not issue")]
    ForeignUser { proxy: ProxyId, user: UserId },
    #[error("a {len}-byte name for {user} (at most {MAX_NAME_LEN})")]
    NameTooLong { user: UserId, len: usize },
    #[error("a non-finite spawn point for {user}")]
    NonFiniteSpawn { user: UserId },
    #[error("{peer} named {cell}, which {receiver} does not own")]
    CellNotOurs { peer: ServerId, cell: CellId, receiver: ServerId },
    #[error("{peer} sent {cell}, which it does not own")]
    CellNotTheirs { peer: ServerId, cell: CellId },
    #[error("{peer} handed off {user} at {position}, outside {receiver}'s regions")]
    HandoffOutside { peer: ServerId, user: UserId, position: Vec2, receiver: ServerId },
    #[error("more than {per_sec} inputs a second")]
    InputFlood { per_sec: u32 },
    #[error("the proxy sent {what} {when}")]
    OutOfOrder { what: &'static str, when: &'static str },
}

/// What a proxy may tell a server: it speaks only for the users it issued.
pub fn from_proxy(message: &ProxyToServer, proxy: ProxyId) -> Result<(), Violation> {
    let user = match *message {
        ProxyToServer::Login { user, ref name, position } => {
            if name.len() > MAX_NAME_LEN {
                return Err(Violation::NameTooLong { user, len: name.len() });
            }
            if !position.is_finite() {
                return Err(Violation::NonFiniteSpawn { user });
            }
            user
        }
        ProxyToServer::Input { user, .. } | ProxyToServer::Logout { user } => user,
    };
    if user.proxy() != proxy {
        return Err(Violation::ForeignUser { proxy, user });
    }
    Ok(())
}

/// What `peer` may tell `receiver`: subscriptions only to cells the receiver owns, cell
/// data only for cells the sender owns, handoffs only of players standing in the
/// receiver's regions.
pub fn from_peer(message: &PeerMessage, receiver: ServerId, peer: ServerId, map: &RegionMap) -> Result<(), Violation> {
    let owned_by = |cell: &CellId, owner: ServerId| map.cell_owner(*cell) == Some(owner);
    match message {
        PeerMessage::Subscribe(cells) | PeerMessage::Unsubscribe(cells) => {
            match cells.iter().find(|cell| !owned_by(cell, receiver)) {
                Some(&cell) => Err(Violation::CellNotOurs { peer, cell, receiver }),
                None => Ok(()),
            }
        }
        PeerMessage::Cells { deltas, .. } => match deltas.iter().find(|delta| !owned_by(&delta.cell, peer)) {
            Some(delta) => Err(Violation::CellNotTheirs { peer, cell: delta.cell }),
            None => Ok(()),
        },
        PeerMessage::Handoff(state) if map.owner_at(state.position) != Some(receiver) => {
            Err(Violation::HandoffOutside { peer, user: state.user, position: state.position, receiver })
        }
        PeerMessage::Handoff(_)
        | PeerMessage::ForwardInput { .. }
        | PeerMessage::ForwardLogout { .. }
        | PeerMessage::HandoffAccepted { .. } => Ok(()),
    }
}
