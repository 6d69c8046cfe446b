//! Session tickets: what a proxy gives each player at the start of a session so that any
//! proxy of the cluster, which never talks to the others, can let the player resume it
//! after losing its own. A ticket says whose session it is and until when, sealed with
//! HMAC-SHA256 under a key derived from the cluster secret (so only the cluster's proxies
//! make or accept one). It is no password: resuming also takes a fresh signature by the
//! player's key, so a stolen ticket is worthless on its own, and a ticket names the
//! player, so one player's is worthless to another.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tessera_shared::ids::UserId;
use tessera_shared::protocol::SessionTicket;
use tessera_shared::secret::ClusterSecret;

/// How long a ticket resumes its session: a day of play, and each resume gives a new one.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The player's id and the expiry, in milliseconds since the Unix epoch.
const BODY_LEN: usize = 16;
const TAG_LEN: usize = 32;

/// Makes and checks the tickets of one cluster.
#[derive(Clone)]
pub struct Tickets {
    key: [u8; 32],
}

/// Why a ticket resumes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("not a ticket of this cluster")]
    Forged,
    #[error("expired")]
    Expired,
    #[error("another player's")]
    NotYours,
}

impl Tickets {
    pub fn new(secret: &ClusterSecret) -> Self {
        Self { key: secret.derive("tessera session tickets v1") }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length")
    }

    /// A ticket resuming `user`'s session until [`TICKET_LIFETIME`] from now.
    pub fn issue(&self, user: UserId) -> SessionTicket {
        self.issue_until(user, now_ms().saturating_add(TICKET_LIFETIME.as_millis() as u64))
    }

    fn issue_until(&self, user: UserId, expires_ms: u64) -> SessionTicket {
        let mut ticket = Vec::with_capacity(BODY_LEN + TAG_LEN);
        ticket.extend_from_slice(&user.0.to_be_bytes());
        ticket.extend_from_slice(&expires_ms.to_be_bytes());
        let tag = self.mac().chain_update(&ticket).finalize().into_bytes();
        ticket.extend_from_slice(&tag);
        SessionTicket(ticket)
    }

    /// Whether `ticket` resumes a session of `user` now.
    pub fn check(&self, ticket: &SessionTicket, user: UserId) -> Result<(), TicketError> {
        let bytes = &ticket.0;
        if bytes.len() != BODY_LEN + TAG_LEN {
            return Err(TicketError::Forged);
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        self.mac().chain_update(body).verify_slice(tag).map_err(|_| TicketError::Forged)?;
        let (id, expires) = body.split_at(8);
        let id = UserId(u64::from_be_bytes(id.try_into().expect("8 bytes")));
        let expires_ms = u64::from_be_bytes(expires.try_into().expect("8 bytes"));
        if expires_ms <= now_ms() {
            return Err(TicketError::Expired);
        }
        if id != user {
            return Err(TicketError::NotYours);
        }
        Ok(())
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_resumes_its_players_session_in_its_cluster_until_it_expires() {
        let secret = ClusterSecret::generate().unwrap();
        let tickets = Tickets::new(&secret);
        let ada = UserId(7);
        let ticket = tickets.issue(ada);
        assert!(ticket.0.len() <= SessionTicket::MAX_LEN);
        assert_eq!(tickets.check(&ticket, ada), Ok(()));
        assert_eq!(Tickets::new(&secret).check(&ticket, ada), Ok(()), "any proxy of the cluster");
        assert_eq!(tickets.check(&ticket, UserId(8)), Err(TicketError::NotYours));
        let other_cluster = Tickets::new(&ClusterSecret::generate().unwrap());
        assert_eq!(other_cluster.check(&ticket, ada), Err(TicketError::Forged));
        let mut altered = ticket.clone();
        altered.0[15] ^= 1;
        assert_eq!(tickets.check(&altered, ada), Err(TicketError::Forged));
        for cut in [0, 16, ticket.0.len() - 1] {
            assert_eq!(tickets.check(&SessionTicket(ticket.0[..cut].to_vec()), ada), Err(TicketError::Forged));
        }
        assert_eq!(tickets.check(&tickets.issue_until(ada, now_ms() - 1), ada), Err(TicketError::Expired));
    }
}
