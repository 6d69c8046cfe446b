//! The handshake, a phase of its own before a link carries anything else: on internal
//! links, first the Noise handshake that proves both ends hold the cluster secret
//! (`crate::link::seal`); then each end sends one [`Hello`] with the protocol version
//! it speaks and the role it claims, and the link goes on only if the versions match
//! and the role is one the receiver accepts there. The session enums never carry a hello, so a second one cannot be
//! sent, let alone mistaken for anything.
//!
//! A player's handshake at a proxy's public door has one more step, the join: the proxy
//! sends a fresh [`JoinChallenge`], and the player answers with a [`JoinRequest`]: its
//! public key, the name it asks for, and its signature of both with the challenge
//! (`crate::identity`). The proxy checks the signature before it gives the player
//! anything, so a player is its key, and a recorded join is worthless on any later
//! connection, whose challenge differs.

use crate::cluster::ClusterDigest;
use crate::identity::{IdentityError, JoinChallenge, JoinSignature, PlayerKey};
use crate::ids::{ProxyId, ServerId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bumped on every incompatible change to any message of the protocol, or to what one
/// end may expect of the other (14: players' updates by datagram, `super::datagram`;
/// 15: updates every 16 ticks at most past capacity, `super::MAX_UPDATE_EVERY`; 16: a
/// player's clock hands its settling on, `super::HandedClock::settling_inputs`; 17: a
/// handoff hands on the handles a player knows others by, `super::HandedView`; 18: a
/// player's clock hands on what it may catch up, `super::HandedClock::catch_up_allowed`;
/// 19: a handoff hands on where the player began its latest ticks, `super::HandoffState::trail`).
pub const PROTOCOL_VERSION: u32 = 19;

/// How long a new connection has to say hello.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The first and only message of the handshake, sent by both ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub role: Role,
}

/// Who is speaking on a link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Role {
    /// A player, who proves who it is in the join that follows.
    Client,
    Proxy(ProxyId),
    Server(ServerId),
}

impl Hello {
    pub fn new(role: Role) -> Self {
        Self { version: PROTOCOL_VERSION, role }
    }
}

/// A version and a role: a few bytes.
impl crate::framing::Bounded for Hello {
    const MAX_FRAME_LEN: usize = 64;
}

/// A player's answer to the proxy's [`JoinChallenge`]: who it is, what it would be
/// called, and the proof that it holds the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub key: PlayerKey,
    /// The name asked for: a key that already has one keeps it.
    pub name: String,
    /// `key`'s signature of the challenge and `name`.
    pub signature: JoinSignature,
    /// The ticket of a session this player had, to carry on with it (its place, its view,
    /// its inputs) rather than start a new one. Worthless without the key's signature.
    pub resume: Option<SessionTicket>,
}

/// What a proxy gives a player at the start of a session, sealed with a key only the
/// cluster's proxies hold: shown to any of them with a fresh signature of the player's
/// key, it resumes the session. Opaque to the player; `proxy/src/tickets.rs` makes and
/// opens them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTicket(pub Vec<u8>);

impl SessionTicket {
    /// The most bytes a ticket holds: what the proxy seals, and the seal.
    pub const MAX_LEN: usize = 64;
}

impl JoinRequest {
    /// The request of the holder of `identity`, answering `challenge` under `name`, to
    /// resume the session of `resume` if given one.
    pub fn sign(
        identity: &crate::identity::Identity,
        challenge: &JoinChallenge,
        name: &str,
        resume: Option<SessionTicket>,
    ) -> Self {
        Self { key: identity.key(), name: name.into(), signature: identity.sign_join(challenge, name), resume }
    }

    /// Whether the signature is the key's, for this challenge and this name.
    pub fn verify(&self, challenge: &JoinChallenge) -> Result<(), IdentityError> {
        self.key.verify_join(challenge, &self.name, &self.signature)
    }
}

/// 32 random bytes.
impl crate::framing::Bounded for JoinChallenge {
    const MAX_FRAME_LEN: usize = 64;
}

/// A key, a signature, a name of at most `MAX_NAME_LEN` bytes and a ticket.
impl crate::framing::Bounded for JoinRequest {
    const MAX_FRAME_LEN: usize = 256;
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no hello within {0:?}")]
    Timeout(Duration),
    #[error("protocol version {theirs} is not ours ({ours})")]
    Version { ours: u32, theirs: u32 },
    #[error("expected {expected} to connect, got {got:?}")]
    Role { expected: &'static str, got: Role },
    #[error("the peer does not hold this cluster's secret (or is not a Tessera process)")]
    NotAMember,
    #[error(
        "{role:?} runs another cluster file (digest {theirs:?}, ours {ours:?}): its world, simulation \
         settings, servers' regions or proxies differ; every member must run the same one"
    )]
    ClusterDiffers { ours: ClusterDigest, theirs: ClusterDigest, role: Role },
    #[error("the join was not signed by the key it names, for this challenge")]
    NotSigned,
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("closed before the handshake was over")]
    Closed,
    #[error(transparent)]
    Wire(crate::framing::WireError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// Whether the peer proved nothing: it may be anybody, so what it did is worth a
    /// counter and a debug line, not a warning per connection. A version or role
    /// refused after it spoke properly is a real process misconfigured, worth a warning.
    pub fn from_a_stranger(&self) -> bool {
        !matches!(self, Self::Version { .. } | Self::Role { .. } | Self::ClusterDiffers { .. })
    }
}
