//! Players' updates and key presses by datagram: what crosses UDP between a proxy and a
//! player beside their TCP link. Updates go this way, the bulk of what a player is
//! sent, and the player's inputs once its updates come so: a datagram each, with no
//! retransmission and no head-of-line blocking, and no connection state in either
//! kernel. Everything else (the join, the welcome, chat, heartbeats, updates too big for
//! one datagram, inputs until updates come by datagram, and inputs sent again) stays on
//! the link; the proxy writes to it every few seconds still, so that a host that
//! vanished is noticed, and the player takes each datagram for a word of the proxy's.
//!
//! The welcome gives the player a [`DatagramTag`], fresh and random, if the proxy takes
//! datagrams. The player sends it, alone, from its UDP socket to the proxy's UDP port
//! (the number of its TCP port): a *bind*, which tells the proxy where to send. A proxy
//! takes a bind only from the address its player's link comes from, and sends nothing
//! to an address that has not bound: so a player cannot aim its updates at another
//! host, and an off-path host that cannot read the welcome cannot guess a tag. Until an
//! update comes by datagram the player binds again every [`BIND_RETRY`]; then every
//! [`BIND_EVERY`], which keeps a NAT's mapping open and follows the player's port when
//! it changes; a bind not renewed for [`BIND_LIFETIME`] lapses, and the proxy sends by
//! TCP again. A player to whom nothing came by datagram within [`DATAGRAM_TRIAL`] of
//! its first bind, or no update at all for [`DATAGRAM_SILENCE`] once some did, while
//! its server is there, says so (`ClientToProxy::NoDatagrams`) and is sent everything
//! by TCP.
//!
//! Each update datagram is the tag, then how many updates the proxy had sent the
//! player by its link (wrapping, a byte), then the body of the `ProxyToClient::Update`
//! frame the server encoded, as the link would carry it less its length prefix. A
//! player drops a datagram that does not carry its tag, unread. One sent after an
//! update that went by the link (too big for a datagram) may overtake it: the player
//! holds it until the link's update is in.
//!
//! An inputs datagram is the tag, then the player's latest inputs, in sequence: the new
//! one after those before it its server has not acknowledged yet, [`MOST_INPUTS_A_DATAGRAM`]
//! at most, so that one lost is made good by the next. A proxy takes it only from
//! the address the player's tag is bound to, as many inputs a second as a link's
//! messages (more are dropped), and forwards each input once. The player sends its
//! inputs not acknowledged yet again, once, by datagram, as soon as an update says its
//! server simulated the tick of one of them without it. An input still unacknowledged
//! [`INPUT_RESEND_AFTER`] after it went by datagram alone goes again by the link: a
//! server waits for a gap in a player's inputs for two seconds, and then goes on
//! without it.
//!
//! Datagrams get lost, and each update is packed against the one before it
//! ([`super::packing`]): a player that finds one missing (the next cannot be unpacked:
//! out of sequence, or naming what it does not know) asks for a full update over its
//! link (`ClientToProxy::Resync`) and drops what comes until it arrives, asking again
//! at the next that comes after [`RESYNC_WAIT`].

use super::packing::PackedUpdate;
use super::verify::Violation;
use super::{Input, ProxyToClient};
use crate::framing::{LEN_PREFIX, WireError, decode_body, encode_body};
use arrayvec::ArrayVec;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Bytes of a [`DatagramTag`].
pub const TAG_LEN: usize = 8;

/// The largest update datagram, tag included: one that fits a path's MTU of 1,280 bytes
/// (IPv6's least) with the IP and UDP headers, so it is never fragmented. An update
/// longer than this goes by the link.
pub const MAX_UPDATE_DATAGRAM: usize = 1200;

/// How often a bound player binds again, to keep a NAT's mapping open (NATs keep a UDP
/// mapping 30 s at least, RFC 4787 asks for two minutes) and its address current.
pub const BIND_EVERY: Duration = Duration::from_secs(10);

/// How often a player to whom no update came by datagram yet binds again: its first
/// bind may be lost, or reach the proxy a moment before its session is in the proxy's
/// table.
pub const BIND_RETRY: Duration = Duration::from_millis(250);

/// How long a player binds without an update coming by datagram before it gives up on
/// them: its UDP does not pass, one way or both.
pub const DATAGRAM_TRIAL: Duration = Duration::from_secs(2);

/// How long no update may come at all (by datagram or, too big for one, by the link)
/// once some came by datagram, while the player's server is there, before the player
/// gives up on datagrams: a server sends each player an update every
/// [`MAX_UPDATE_EVERY`](super::MAX_UPDATE_EVERY) ticks at least (0.8 s at 20 Hz).
pub const DATAGRAM_SILENCE: Duration = Duration::from_secs(3);

/// How long a bind lasts at a proxy without being renewed: three of the player's, so
/// that one or two lost binds change nothing.
pub const BIND_LIFETIME: Duration = Duration::from_secs(31);

/// How long a player that asked for a full update waits for it before asking again:
/// the request or the update may have been lost too.
pub const RESYNC_WAIT: Duration = Duration::from_millis(500);

/// What binds a player's UDP address to its session, and marks every update datagram
/// sent it: random, given in the welcome over the player's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DatagramTag(pub [u8; TAG_LEN]);

impl DatagramTag {
    /// A fresh tag from the operating system's randomness.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut tag = [0; TAG_LEN];
        getrandom::fill(&mut tag)?;
        Ok(Self(tag))
    }

    /// The tag a bind carries: the datagram is the tag and nothing else.
    pub fn of_bind(datagram: &[u8]) -> Option<Self> {
        datagram.try_into().ok().map(Self)
    }
}

/// Inputs one datagram carries at most: at a steady 20 presses a second, those of the
/// last 400 ms, more than a round trip's worth on any path a game is played over.
pub const MOST_INPUTS_A_DATAGRAM: usize = 8;

/// The longest inputs datagram: the tag, a count and [`MOST_INPUTS_A_DATAGRAM`] inputs
/// of 11 bytes at most each (two varints of up to 5 bytes and the keys).
pub const MAX_INPUTS_DATAGRAM_LEN: usize = TAG_LEN + 1 + MOST_INPUTS_A_DATAGRAM * 11;

/// How long an input sent by datagram alone may go unacknowledged (as of the arrival of
/// an update that did not acknowledge it) before the player sends it again by its link:
/// past a slow path's round trip with a stall in it, and the server's wait for the
/// input's tick; and with the resend's own way, within the two seconds the server waits
/// for a gap in a player's inputs to fill.
pub const INPUT_RESEND_AFTER: Duration = Duration::from_secs(1);

/// A player's inputs as one datagram carries them: consecutive in sequence, the latest last.
pub type DatagramInputs = ArrayVec<Input, MOST_INPUTS_A_DATAGRAM>;

/// Appends to `datagram` the inputs datagram for `tag` carrying `inputs` (consecutive,
/// [`MOST_INPUTS_A_DATAGRAM`] at most: the latest of more).
pub fn write_inputs(tag: DatagramTag, inputs: &[Input], datagram: &mut Vec<u8>) -> Result<(), WireError> {
    let latest = &inputs[inputs.len().saturating_sub(MOST_INPUTS_A_DATAGRAM)..];
    datagram.extend_from_slice(&tag.0);
    encode_body(&latest, datagram)
}

/// The tag `datagram` is marked with, and what follows it, if it is no bind: a player's
/// inputs, if it is from the player the tag is bound to ([`read_inputs`]).
pub fn split_tag(datagram: &[u8]) -> Option<(DatagramTag, &[u8])> {
    let (tag, rest) = datagram.split_first_chunk::<TAG_LEN>()?;
    (!rest.is_empty()).then_some((DatagramTag(*tag), rest))
}

/// The inputs of `body`, an inputs datagram less its tag ([`split_tag`]), if it is
/// one: no longer than [`MAX_INPUTS_DATAGRAM_LEN`] in all, one input at least, each the one
/// after the one before it, none numbered 0. Decoding allocates nothing.
pub fn read_inputs(body: &[u8]) -> Result<DatagramInputs, Violation> {
    if body.len() + TAG_LEN > MAX_INPUTS_DATAGRAM_LEN {
        return Err(Violation::BadInputs("too long"));
    }
    let inputs: DatagramInputs = decode_body(body).map_err(|_| Violation::BadInputs("that does not decode"))?;
    match inputs.first() {
        None => Err(Violation::BadInputs("with no input")),
        Some(first) if first.seq == 0 => Err(Violation::BadInputs("numbered from 0")),
        Some(_) if inputs.windows(2).any(|pair| pair[0].seq.checked_add(1) != Some(pair[1].seq)) => {
            Err(Violation::BadInputs("out of sequence"))
        }
        Some(_) => Ok(inputs),
    }
}

/// Bytes before an update datagram's body: the tag, and the count of updates by link.
const HEADER_LEN: usize = TAG_LEN + 1;

/// Whether `frame`, a whole `ProxyToClient::Update` frame, fits one update datagram.
pub fn fits(frame: &[u8]) -> bool {
    frame.len().saturating_sub(LEN_PREFIX) + HEADER_LEN <= MAX_UPDATE_DATAGRAM
}

/// Appends to `datagram` the update datagram for `tag` carrying `frame`, a whole
/// `ProxyToClient::Update` frame as its server encoded it (length prefix and all), sent
/// after `by_link` updates by the player's link (wrapping). `false`, writing nothing,
/// if it would be longer than [`MAX_UPDATE_DATAGRAM`]: that update goes by the link.
pub fn write_update(tag: DatagramTag, by_link: u8, frame: &[u8], datagram: &mut Vec<u8>) -> bool {
    let Some(body) = frame.get(LEN_PREFIX..).filter(|_| fits(frame)) else { return false };
    datagram.extend_from_slice(&tag.0);
    datagram.push(by_link);
    datagram.extend_from_slice(body);
    true
}

/// An update as a datagram brought it: the update, and how many updates had been sent
/// by the link before it (wrapping).
#[derive(Debug, Clone, PartialEq)]
pub struct DatagramUpdate {
    pub update: PackedUpdate,
    pub by_link: u8,
}

/// Why an update datagram carrying the player's tag is not an update, or none could
/// be received.
#[derive(Debug, thiserror::Error)]
pub enum DatagramError {
    /// Too long, or it does not decode.
    #[error("an update datagram: {0}")]
    Wire(#[from] WireError),
    /// A message other than an update.
    #[error(transparent)]
    Violation(#[from] Violation),
    #[error("the datagram socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// The update `datagram` carries for the holder of `tag`: `Ok(None)` if it is not
/// marked with `tag` (someone else's, or a stranger's), an error if it is and is no
/// update. `datagram` is all that was received, however long it was (a receiver that
/// cut it short says so with a length past [`MAX_UPDATE_DATAGRAM`]).
pub fn read_update(tag: DatagramTag, datagram: &[u8]) -> Result<Option<DatagramUpdate>, DatagramError> {
    let Some((marked, rest)) = datagram.split_first_chunk::<TAG_LEN>() else { return Ok(None) };
    if *marked != tag.0 {
        return Ok(None);
    }
    if datagram.len() > MAX_UPDATE_DATAGRAM {
        return Err(WireError::FrameTooLarge { len: datagram.len(), max: MAX_UPDATE_DATAGRAM }.into());
    }
    let Some((&by_link, body)) = rest.split_first() else {
        return Err(Violation::OutOfOrder { what: "a datagram with a tag alone", when: "from a proxy" }.into());
    };
    match decode_body(body)? {
        ProxyToClient::Update(update) => Ok(Some(DatagramUpdate { update, by_link })),
        _ => Err(Violation::OutOfOrder { what: "a message other than an update", when: "in a datagram" }.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encoded_frame;
    use crate::ids::{EntityId, ServerId};
    use crate::protocol::packing::Mentions;
    use crate::protocol::{EntityName, EntityState, PlayerUpdate, UpdatePacker};
    use glam::Vec2;

    fn full_update_frame(others: usize) -> Vec<u8> {
        let you = EntityState { id: EntityId(1), position: Vec2::new(10.0, 20.0), velocity: Vec2::ZERO };
        let changed: Vec<EntityState> = (0..others)
            .map(|n| EntityState { id: EntityId(100 + n as u64), position: Vec2::splat(n as f32), velocity: Vec2::X })
            .collect();
        let update = PlayerUpdate {
            tick: 7,
            server: ServerId(1),
            last_input: 0,
            inputs_applied: 0,
            you,
            your_tick: None,
            full: true,
            names: changed.iter().map(|state| (state.id, EntityName::from("someone").unwrap())).collect(),
            changed,
            left: vec![],
            changed_handles: Vec::new(),
            left_handles: Vec::new(),
            update_every: 1,
            budget_spent: false,
            others_counted: None,
        };
        let mut packer = UpdatePacker::default();
        let packed = packer.pack(&update, &Mentions::all_new(others), 1.0 / 20.0).unwrap();
        encoded_frame(&ProxyToClient::Update(packed)).unwrap().to_vec()
    }

    #[test]
    fn an_update_crosses_in_a_datagram_marked_with_the_players_tag_only() {
        let (tag, other) = (DatagramTag([1; TAG_LEN]), DatagramTag([2; TAG_LEN]));
        let frame = full_update_frame(3);
        let mut datagram = Vec::new();
        assert!(fits(&frame));
        assert!(write_update(tag, 3, &frame, &mut datagram));
        assert_eq!(datagram.len(), HEADER_LEN + frame.len() - LEN_PREFIX, "the header replaces the length prefix");
        let expected = match decode_body::<ProxyToClient>(&frame[LEN_PREFIX..]).unwrap() {
            ProxyToClient::Update(update) => update,
            other => panic!("{other:?}"),
        };
        assert_eq!(read_update(tag, &datagram).unwrap(), Some(DatagramUpdate { update: expected, by_link: 3 }));
        assert_eq!(read_update(other, &datagram).unwrap(), None, "another player's, dropped unread");
        assert_eq!(read_update(tag, &datagram[..TAG_LEN - 1]).unwrap(), None, "shorter than a tag");
    }

    #[test]
    fn inputs_cross_in_a_datagram_the_latest_eight_consecutive_ones_at_most() {
        use crate::components::Keys;
        let tag = DatagramTag([1; TAG_LEN]);
        let input = |seq: u32| Input { seq, keys: Keys::UP, tick: 1_000_000 + seq };
        let all: Vec<Input> = (1..=10).map(input).collect();
        let mut datagram = Vec::new();
        write_inputs(tag, &all, &mut datagram).unwrap();
        assert!(datagram.len() <= MAX_INPUTS_DATAGRAM_LEN, "{} bytes", datagram.len());
        assert_eq!(DatagramTag::of_bind(&datagram), None, "no bind");
        let (marked, body) = split_tag(&datagram).unwrap();
        assert_eq!(marked, tag);
        assert_eq!(read_inputs(body).unwrap().as_slice(), &all[2..], "the latest eight");
        assert_eq!(split_tag(&tag.0), None, "a bind carries no inputs");

        // The longest inputs there are fit, and nothing else is taken for inputs.
        let longest: Vec<Input> =
            (u32::MAX - 7..=u32::MAX).map(|seq| Input { seq, keys: Keys::all(), tick: u32::MAX }).collect();
        let mut datagram = Vec::new();
        write_inputs(tag, &longest, &mut datagram).unwrap();
        assert!(datagram.len() <= MAX_INPUTS_DATAGRAM_LEN, "{} bytes", datagram.len());
        let body = |inputs: &[Input]| {
            let mut body = Vec::new();
            encode_body(&inputs, &mut body).unwrap();
            body
        };
        let refusal = |body: &[u8]| read_inputs(body).unwrap_err();
        assert_eq!(refusal(&body(&[])), Violation::BadInputs("with no input"));
        assert_eq!(refusal(&body(&[input(0), input(1)])), Violation::BadInputs("numbered from 0"));
        assert_eq!(refusal(&body(&[input(3), input(5)])), Violation::BadInputs("out of sequence"));
        assert_eq!(refusal(&body(&[input(5), input(4)])), Violation::BadInputs("out of sequence"));
        let nine: Vec<Input> = (1..=9).map(input).collect();
        assert_eq!(refusal(&body(&nine)), Violation::BadInputs("that does not decode"), "more than eight");
        let mut trailing = body(&[input(1)]);
        trailing.push(0);
        assert_eq!(refusal(&trailing), Violation::BadInputs("that does not decode"));
        assert_eq!(refusal(&[0; MAX_INPUTS_DATAGRAM_LEN]), Violation::BadInputs("too long"));
    }

    #[test]
    fn an_update_too_long_for_a_datagram_goes_by_the_link() {
        let tag = DatagramTag([1; TAG_LEN]);
        let frame = full_update_frame(200);
        let mut datagram = vec![9];
        assert!(!fits(&frame));
        assert!(!write_update(tag, 0, &frame, &mut datagram));
        assert_eq!(datagram, [9], "nothing written");
    }

    #[test]
    fn a_marked_datagram_that_is_no_update_is_an_error() {
        let tag = DatagramTag([1; TAG_LEN]);
        let chat = encoded_frame(&ProxyToClient::ChatThrottled).unwrap();
        let mut datagram = tag.0.to_vec();
        datagram.push(0);
        datagram.extend_from_slice(&chat[LEN_PREFIX..]);
        assert!(matches!(read_update(tag, &datagram), Err(DatagramError::Violation(_))));
        datagram.truncate(HEADER_LEN);
        datagram.push(0xff);
        assert!(matches!(read_update(tag, &datagram), Err(DatagramError::Wire(_))));
        assert!(matches!(read_update(tag, &tag.0), Err(DatagramError::Violation(_))), "a tag alone");
        let long = [&tag.0[..], &[0; MAX_UPDATE_DATAGRAM][..]].concat();
        assert!(matches!(read_update(tag, &long), Err(DatagramError::Wire(WireError::FrameTooLarge { .. }))));
    }

    #[test]
    fn a_bind_is_a_tag_alone() {
        assert_eq!(DatagramTag::of_bind(&[3; TAG_LEN]), Some(DatagramTag([3; TAG_LEN])));
        assert_eq!(DatagramTag::of_bind(&[3; TAG_LEN + 1]), None);
        assert_eq!(DatagramTag::of_bind(&[]), None);
        assert_ne!(DatagramTag::random().unwrap(), DatagramTag::random().unwrap());
    }
}
