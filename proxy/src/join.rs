//! The join: who a player is, proved before anything is given to it. The proxy sends a
//! fresh random challenge; the player answers with its public key, the name it asks for
//! and its signature of both with the challenge (`tessera_shared::identity`). Only a good
//! signature goes on: the player's id is its key's, and a recorded join is worthless on
//! another connection, whose challenge differs. Then the name rule, and either a ticket
//! ([`crate::tickets`]) that resumes the player's session, wherever it is now, or the
//! store: the key's record, made now under the name asked for if the key is new (a name
//! belongs to the first key that claimed it), says the name it plays under and where it
//! was.

use crate::ProxySettings;
use crate::tickets::Tickets;
use std::time::Duration;
use tessera_shared::Vec2;
use tessera_shared::identity::{JoinChallenge, PlayerKey};
use tessera_shared::link::{Link, LinkError, PLAYER_SILENCE_LIMIT};
use tessera_shared::protocol::SessionTicket;
use tessera_shared::protocol::handshake::{HANDSHAKE_TIMEOUT, HandshakeError, JoinRequest};
use tessera_shared::protocol::verify::{self, JoinProblem, Violation};
use tessera_shared::protocol::{ClientToProxy, ProxyToClient};
use tessera_store::{ClaimError, Claimed, Store};
use tracing::{debug, warn};

/// A player whose join was proved.
pub struct Joined {
    pub link: Link<ClientToProxy>,
    pub key: PlayerKey,
    /// The name it plays under.
    pub name: String,
    pub begin: Begin,
}

/// How a proved player's session begins.
pub enum Begin {
    /// Anew, where its record says it was.
    Fresh { position: Vec2 },
    /// Carrying on with the session its ticket names.
    Resume,
}

/// Challenges the player at the other end of `link` and checks its answer; then takes
/// its ticket, if it shows a good one, or claims its name in `store`, a new player
/// starting at `spawn`. A player refused for its name, or because the store is away, is
/// told why before the connection closes. (A ticket that resumes nothing, expired or not
/// this cluster's, only means a new session.)
pub async fn join(
    link: Link<JoinRequest>,
    settings: &ProxySettings,
    tickets: &Tickets,
    store: &Store,
    spawn: Vec2,
) -> Result<Joined, LinkError> {
    let (link, request, challenge) = tokio::time::timeout(HANDSHAKE_TIMEOUT, challenge(link))
        .await
        .map_err(|_| HandshakeError::Timeout(HANDSHAKE_TIMEOUT))?
        .map_err(LinkError::in_handshake)?;
    let deadline = Duration::from_millis(settings.limits.frame_deadline_ms);
    // A player's client sends a heartbeat only after a long silence: a host gone is
    // noticed by the socket instead (`client_links`).
    let mut link =
        link.retype::<ClientToProxy>().with_frame_deadline(deadline).with_silence_limit(PLAYER_SILENCE_LIMIT);
    let (name_refused, reason) = match verify::join(&request, &challenge) {
        Err(Violation::BadJoin(JoinProblem::Name(problem))) => {
            (true, format!("the name {:?} cannot be used: {problem}", request.name))
        }
        Err(_) => return Err(HandshakeError::NotSigned.into()),
        Ok(()) if request.resume.as_ref().is_some_and(|ticket| resumes(tickets, ticket, request.key)) => {
            return Ok(Joined { link, key: request.key, name: request.name, begin: Begin::Resume });
        }
        Ok(()) => match store.claim(request.key, &request.name, spawn).await {
            Ok(Claimed { record, .. }) => {
                let begin = Begin::Fresh { position: record.position };
                return Ok(Joined { link, key: request.key, name: record.name, begin });
            }
            Err(err @ ClaimError::NameTaken { .. }) => (true, err.to_string()),
            Err(err) => {
                warn!("cannot find {} in the player store: {err}", request.key.user());
                (false, "the player store is unavailable; try again shortly".to_string())
            }
        },
    };
    let refusal = match name_refused {
        true => ProxyToClient::NameRefused { reason: reason.clone() },
        false => ProxyToClient::Disconnect { reason: reason.clone() },
    };
    link.send(refusal).await?;
    Err(LinkError::Refused(reason))
}

/// Whether `ticket` resumes a session of `key`'s player.
fn resumes(tickets: &Tickets, ticket: &SessionTicket, key: PlayerKey) -> bool {
    tickets
        .check(ticket, key.user())
        .inspect_err(|err| debug!("{}'s ticket is {err}: a new session", key.user()))
        .is_ok()
}

/// Sends a fresh challenge and returns the answer, with the challenge.
async fn challenge(mut link: Link<JoinRequest>) -> Result<(Link<JoinRequest>, JoinRequest, JoinChallenge), LinkError> {
    let challenge = JoinChallenge::fresh().map_err(HandshakeError::from)?;
    link.send(&challenge).await?;
    let request = link.recv().await?;
    Ok((link, request, challenge))
}
