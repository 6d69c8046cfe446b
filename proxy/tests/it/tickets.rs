//! What a proxy makes of a session ticket a player presents with its join
//! ([`Tickets::check`]): bytes no proxy issued, or a ticket a proxy issued, altered or
//! not, shown for the player it was issued to or for another. The replay of the
//! `ticket` fuzz seeds in the proxy's suite and that target in `fuzz/` (which
//! includes this file) drive it. Nothing here may panic, whatever the bytes, and the
//! assertions are the promise a ticket makes: only the bytes a proxy of the cluster
//! issued to a player resume that player's session.

use tessera_proxy::tickets::{TicketError, Tickets};
use tessera_shared::ids::UserId;
use tessera_shared::protocol::SessionTicket;
use tessera_shared::secret::ClusterSecret;

/// The fuzz target for presented tickets, and its folder of seeds.
pub const TICKET_TARGET: &str = "ticket";

/// Where a presented ticket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// Made up by whoever presents it.
    MadeUp,
    /// Issued by a proxy of the cluster; `altered` if its bytes were changed since.
    Issued { altered: bool },
}

/// The proxies tickets are presented to: one of a cluster that issues tickets, and one of
/// another that never issues any. Each has a secret of its own, new each run, so no input
/// holds a ticket either issued before the run. Made-up tickets go to the one that never
/// issues: the fuzzer sees the tickets the other issues (their bytes are compared with
/// what is presented) and may show one again as made up, but a made-up ticket that opens
/// where none was issued is a forgery.
pub struct Proxies {
    issuing: Tickets,
    never_issuing: Tickets,
}

impl Default for Proxies {
    fn default() -> Self {
        let secret = || ClusterSecret::generate().expect("the system's random source gives a secret");
        Self { issuing: Tickets::new(&secret()), never_issuing: Tickets::new(&secret()) }
    }
}

impl Proxies {
    /// Presents `input` to a proxy: its first byte says where the ticket comes from
    /// ([`Presented`]: made up if even), the next eight are the player a ticket is issued
    /// to and the eight after them the player presenting it (big-endian ids), and the rest
    /// is the made-up ticket, or what is XORed onto the issued one (bytes past its end
    /// added to it). Returns where the ticket came from and what the proxy made of it;
    /// panics if a ticket opened that was not the one issued to its presenter by the same
    /// cluster, or that one did not.
    pub fn present(&self, input: &[u8]) -> Option<(Presented, Result<(), TicketError>)> {
        let (&how, input) = input.split_first()?;
        let (issued_to, input) = user(input)?;
        let (presenter, rest) = user(input)?;
        if how % 2 == 0 {
            let made_up = SessionTicket(rest.to_vec());
            let checked = self.never_issuing.check(&made_up, presenter);
            // Whether a ticket is expired or another player's is read only from a ticket
            // whose seal holds.
            assert_eq!(checked, Err(TicketError::Forged), "a made-up ticket was opened: {made_up:?}");
            return Some((Presented::MadeUp, checked));
        }
        let issued = self.issuing.issue(issued_to);
        let mut presented = issued.clone();
        for (at, &change) in rest.iter().enumerate() {
            match presented.0.get_mut(at) {
                Some(byte) => *byte ^= change,
                None => presented.0.push(change),
            }
        }
        let altered = presented != issued;
        let checked = self.issuing.check(&presented, presenter);
        let expected = if altered {
            Err(TicketError::Forged)
        } else if presenter != issued_to {
            Err(TicketError::NotYours)
        } else {
            Ok(())
        };
        assert_eq!(checked, expected, "{presenter} presented {presented:?}, issued to {issued_to} as {issued:?}");
        let elsewhere = self.never_issuing.check(&presented, presenter);
        assert_eq!(elsewhere, Err(TicketError::Forged), "another cluster opened {presented:?}");
        Some((Presented::Issued { altered }, checked))
    }
}

/// A player's id from the first eight bytes of `input`, and the bytes after it.
fn user(input: &[u8]) -> Option<(UserId, &[u8])> {
    let (id, rest) = input.split_first_chunk::<8>()?;
    Some((UserId(u64::from_be_bytes(*id)), rest))
}
