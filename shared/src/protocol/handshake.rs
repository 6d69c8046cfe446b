//! The handshake, a phase of its own before a link carries anything else: on internal
//! links, first the Noise handshake that proves both ends hold the cluster secret
//! (`crate::link::seal`); then each end sends one [`Hello`] with the protocol version
//! it speaks and the role it claims, and the link goes on only if the versions match
//! and the role is one the receiver accepts there. The session enums never carry a hello, so a second one cannot be
//! sent, let alone mistaken for anything.

use crate::ids::{ProxyId, ServerId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bumped on every incompatible change to any message of the protocol.
pub const PROTOCOL_VERSION: u32 = 3;

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
    Client { name: String },
    Proxy(ProxyId),
    Server(ServerId),
}

impl Hello {
    pub fn new(role: Role) -> Self {
        Self { version: PROTOCOL_VERSION, role }
    }
}

/// A version, a role and a name of a few dozen bytes.
impl crate::framing::Bounded for Hello {
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
        !matches!(self, Self::Version { .. } | Self::Role { .. })
    }
}
