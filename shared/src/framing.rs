//! Length-prefixed frames: a big-endian u32 length, then one bincode-encoded message.
//! The length is checked against the largest frame the receiving link direction allows
//! ([`Bounded`]: a few hundred bytes for what players send, [`MAX_FRAME_LEN`] at most)
//! before a byte of the body is buffered, and nothing is reserved for the body ahead
//! of its bytes: an absurd prefix costs nothing but the connection.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use tokio_util::codec::{Decoder, Encoder};

/// The largest frame body accepted or sent.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Bytes of a frame's length prefix, which precedes its body.
pub const LEN_PREFIX: usize = 4;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LEN>()
}

/// A message a link receives, with the largest frame it may arrive in.
pub trait Bounded {
    const MAX_FRAME_LEN: usize;
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed message: {0}")]
    Malformed(#[from] bincode::error::DecodeError),
    #[error("malformed message: {trailing} bytes left over after it")]
    TrailingBytes { trailing: usize },
    #[error("cannot encode message: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("a record failed authentication: altered, replayed, or not from a member of the cluster")]
    Forged,
}

/// Splits a byte stream into frame bodies of at most `max_len` bytes. What reads raw
/// frames (the benchmark, counting what a proxy forwards) and what decodes messages
/// ([`WireCodec`]) frame alike through this.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self { max_len: MAX_FRAME_LEN }
    }
}

impl FrameCodec {
    /// A codec refusing frames longer than `max_len` (itself at most [`MAX_FRAME_LEN`]).
    pub fn with_max_len(max_len: usize) -> Self {
        Self { max_len: max_len.min(MAX_FRAME_LEN) }
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        let Some(prefix) = src.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
        if len > self.max_len {
            return Err(WireError::FrameTooLarge { len, max: self.max_len });
        }
        if src.len() < LEN_PREFIX + len {
            // No reservation for the body: the buffer grows only as its bytes arrive.
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        Ok(Some(src.split_to(len)))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if buf.is_empty() => Ok(None),
            None => Err(WireError::Truncated),
        }
    }
}

/// Frames carrying one bincode message each: decodes them into `In` (in frames no
/// longer than `In` allows), encodes any serialisable message.
pub struct WireCodec<In> {
    frames: FrameCodec,
    _in: PhantomData<fn() -> In>,
}

impl<In: Bounded> Default for WireCodec<In> {
    fn default() -> Self {
        Self { frames: FrameCodec::with_max_len(In::MAX_FRAME_LEN), _in: PhantomData }
    }
}

impl<In: DeserializeOwned> Decoder for WireCodec<In> {
    type Item = In;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, WireError> {
        self.frames.decode(src)?.map(|body| decode_body(&body)).transpose()
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<In>, WireError> {
        self.frames.decode_eof(buf)?.map(|body| decode_body(&body)).transpose()
    }
}

impl<In, Out: Serialize> Encoder<Out> for WireCodec<In> {
    type Error = WireError;

    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), WireError> {
        encode_frame(&message, dst)
    }
}

/// What a link sends: a message to encode, or a frame encoded elsewhere (length prefix
/// and all), forwarded untouched. Proxies forward the servers' player frames this way,
/// so a player's update is encoded once, by the server, and never decoded in between.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing<T> {
    Message(T),
    Encoded(Bytes),
}

impl<T> From<T> for Outgoing<T> {
    fn from(message: T) -> Self {
        Self::Message(message)
    }
}

impl<In, T: Serialize> Encoder<Outgoing<T>> for WireCodec<In> {
    type Error = WireError;

    fn encode(&mut self, outgoing: Outgoing<T>, dst: &mut BytesMut) -> Result<(), WireError> {
        match outgoing {
            Outgoing::Message(message) => self.encode(message, dst),
            Outgoing::Encoded(frame) => {
                dst.extend_from_slice(&frame);
                Ok(())
            }
        }
    }
}

/// A frame with no body: it carries nothing but the news that its sender is there. Every
/// message has a body of at least one byte, so an empty frame is never one of them. A
/// link sends one when it has said nothing for a while ([`crate::link::HEARTBEAT_EVERY`]),
/// and its peer reads it as proof of life and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat;

impl Heartbeat {
    /// The heartbeat on the wire: a length prefix of 0.
    pub const FRAME: [u8; LEN_PREFIX] = [0; LEN_PREFIX];
}

impl<In> Encoder<Heartbeat> for WireCodec<In> {
    type Error = WireError;

    fn encode(&mut self, _: Heartbeat, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.extend_from_slice(&Heartbeat::FRAME);
        Ok(())
    }
}

/// One frame holding `message`, on its own.
pub fn encoded_frame(message: &impl Serialize) -> Result<Bytes, WireError> {
    let mut frame = BytesMut::new();
    encode_frame(message, &mut frame)?;
    Ok(frame.freeze())
}

/// Appends one frame holding `message` to `dst`.
pub fn encode_frame(message: &impl Serialize, dst: &mut BytesMut) -> Result<(), WireError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = dst.writer();
    bincode::serde::encode_into_std_write(message, &mut writer, bincode_config())?;
    let dst = writer.into_inner();
    let len = dst.len() - start - LEN_PREFIX;
    if len > MAX_FRAME_LEN {
        dst.truncate(start);
        return Err(WireError::FrameTooLarge { len, max: MAX_FRAME_LEN });
    }
    dst[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Appends `message`'s body, as a frame would carry it less its length prefix, to
/// `dst`: for a datagram, whose length is its own.
pub fn encode_body(message: &impl Serialize, dst: &mut Vec<u8>) -> Result<(), WireError> {
    bincode::serde::encode_into_std_write(message, dst, bincode_config())?;
    Ok(())
}

/// Decodes one frame body, which must hold exactly one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    let (message, read) = bincode::serde::decode_from_slice(body, bincode_config())?;
    match body.len() - read {
        0 => Ok(message),
        trailing => Err(WireError::TrailingBytes { trailing }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::Keys;
    use crate::ids::{EntityId, ProxyId, ServerId, UserId};
    use crate::protocol::*;
    use crate::region_map::{CellId, RegionMap};
    use glam::Vec2;

    fn round_trip<T: Bounded + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: T) {
        let mut buf = BytesMut::new();
        encode_frame(&message, &mut buf).unwrap();
        let mut codec = WireCodec::<T>::default();
        // Byte by byte, as a slow socket would deliver it.
        let mut partial = BytesMut::new();
        let mut decoded = None;
        for byte in buf.iter() {
            partial.put_u8(*byte);
            if let Some(message) = codec.decode(&mut partial).unwrap() {
                decoded = Some(message);
            }
        }
        assert_eq!(decoded.as_ref(), Some(&message));
        assert!(partial.is_empty());
    }

    fn state(id: u64) -> EntityState {
        EntityState { id: EntityId(id), position: Vec2::new(1.5, -2.0), velocity: Vec2::X }
    }

    #[test]
    fn a_name_longer_than_a_name_may_be_does_not_decode() {
        // A ghost entry as it would be on the wire with a name of any length.
        let entry = |name: String| {
            let mut frame = BytesMut::new();
            encode_frame(&(state(5), name), &mut frame).unwrap();
            decode_body::<GhostEntry>(&frame[LEN_PREFIX..])
        };
        let longest = "é".repeat(MAX_NAME_LEN / 2);
        assert_eq!(entry(longest.clone()).unwrap().name.as_str(), longest);
        assert!(entry(longest + "a").is_err());
    }

    #[test]
    fn every_link_round_trips() {
        let user = UserId(9);
        let input = Input { seq: 7, keys: Keys::UP | Keys::LEFT, tick: 1234 };
        round_trip(Hello::new(Role::Client));
        round_trip(ClientToProxy::Input(input));
        round_trip(ProxyToClient::Welcome(Welcome {
            user,
            name: "ada".into(),
            proxy: ProxyId(2),
            resumed: false,
            ticket: crate::protocol::SessionTicket(vec![7; 48]),
            map: RegionMap::new(10.0, 1, 2, vec![ServerId(1), ServerId(2)]),
            view_radius: 4.0,
            tick_hz: 20.0,
            datagrams: Some(crate::protocol::datagram::DatagramTag([3; 8])),
        }));
        let update = PlayerUpdate {
            tick: 3,
            server: ServerId(1),
            last_input: 7,
            inputs_applied: 7,
            you: state(1),
            your_tick: Some(4321),
            full: true,
            changed: vec![state(2), state(3)],
            left: vec![],
            names: vec![(EntityId(2), EntityName::from("bo").unwrap()), (EntityId(3), EntityName::from("cy").unwrap())],
            changed_handles: Vec::new(),
            left_handles: Vec::new(),
            update_every: 1,
            budget_spent: false,
            others_counted: None,
        };
        let mentions = crate::protocol::packing::Mentions::all_new(update.changed.len());
        let update = crate::protocol::UpdatePacker::default().pack(&update, &mentions, 0.05).unwrap();
        round_trip(ProxyToClient::Update(update.clone()));
        round_trip(ProxyToClient::Disconnect { reason: "bye".into() });
        round_trip(ProxyToServer::Login {
            user,
            name: EntityName::from("ada").unwrap(),
            position: Vec2::ONE,
            last_input: 3,
        });
        round_trip(ProxyToServer::Input { user, input });
        round_trip(ProxyToServer::Logout { user });
        let frame = encoded_frame(&ProxyToClient::Update(update.clone())).unwrap();
        round_trip(ServerToProxy::Updates {
            tick: 3,
            frames: vec![PlayerFrame { user, last_input: 3, full: true, frame: frame.clone() }],
        });
        // A forwarded frame goes out byte for byte, and decodes as what was encoded.
        let mut forwarded = BytesMut::new();
        WireCodec::<ProxyToClient>::default()
            .encode(Outgoing::<ProxyToClient>::Encoded(frame.clone()), &mut forwarded)
            .unwrap();
        assert_eq!(&forwarded[..], &frame[..]);
        let decoded = WireCodec::<ProxyToClient>::default().decode(&mut forwarded).unwrap();
        assert_eq!(decoded, Some(ProxyToClient::Update(update.clone())));

        round_trip(ServerToProxy::Owner { user, server: ServerId(4), epoch: 2 });
        round_trip(PeerMessage::Subscribe(vec![CellId { x: 1, y: 0 }]));
        round_trip(PeerMessage::Cells {
            at: 1_780_000_000_200_000,
            deltas: vec![CellDelta {
                cell: CellId { x: 0, y: 1 },
                full: true,
                entered: vec![GhostEntry { state: state(5), name: EntityName::from("cy").unwrap() }],
                moved: vec![state(6)],
                left: vec![EntityId(7)],
            }],
        });
        round_trip(PeerMessage::Handoff(HandoffState {
            user,
            name: EntityName::from("ada").unwrap(),
            position: Vec2::ONE,
            velocity: Vec2::Y,
            keys: Keys::DOWN,
            last_input: 7,
            inputs_applied: 7,
            pending: vec![Input { seq: 9, keys: Keys::empty(), tick: 77 }],
            clock: Some(HandedClock {
                your_tick: 70,
                next_tick_at: 1_780_000_000_050_000,
                settling_inputs: 0,
                catch_up_allowed: 0,
            }),
            trail: vec![(1, Vec2::new(1.0, 0.5)), (0, Vec2::new(1.0, 0.75))],
            proxy: ProxyId(2),
            epoch: 1,
            view: Some(HandedView { seq: 200, handles: vec![(EntityId(40), 3), (EntityId(41), 0)] }),
        }));
    }

    #[test]
    fn an_absurd_length_is_refused_before_buffering() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let err = WireCodec::<ClientToProxy>::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, WireError::FrameTooLarge { len, .. } if len == u32::MAX as usize));
        assert!(buf.capacity() < 1024, "nothing was allocated for the body");
    }

    #[test]
    fn each_direction_has_its_own_bound_and_reserves_nothing_ahead() {
        // A frame a server may send a proxy is far too long for a player to send.
        let long = ClientToProxy::MAX_FRAME_LEN + 1;
        let mut prefix = BytesMut::from(&(long as u32).to_be_bytes()[..]);
        let err = WireCodec::<ClientToProxy>::default().decode(&mut prefix.clone()).unwrap_err();
        assert!(matches!(err, WireError::FrameTooLarge { max, .. } if max == ClientToProxy::MAX_FRAME_LEN));
        let mut big = BytesMut::from(&(MAX_FRAME_LEN as u32).to_be_bytes()[..]);
        assert!(WireCodec::<ServerToProxy>::default().decode(&mut big).unwrap().is_none());
        assert!(big.capacity() < 1024, "the body is not reserved before it arrives");
        assert!(WireCodec::<ServerToProxy>::default().decode(&mut prefix).unwrap().is_none());
    }

    #[test]
    fn garbage_and_truncation_are_typed_errors() {
        let mut codec = WireCodec::<ClientToProxy>::default();
        let mut garbage = BytesMut::from(&[0, 0, 0, 3, 0xff, 0xff, 0xff][..]);
        assert!(matches!(codec.decode(&mut garbage), Err(WireError::Malformed(_))));

        let mut frame = BytesMut::new();
        encode_frame(&ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 }), &mut frame).unwrap();
        frame.put_u8(0);
        let len = frame.len() as u32 - 4 + 1;
        let mut padded = BytesMut::new();
        padded.put_u32(len);
        padded.extend_from_slice(&frame[4..]);
        padded.put_u8(0);
        assert!(matches!(codec.decode(&mut padded), Err(WireError::TrailingBytes { .. })));

        let mut truncated = BytesMut::from(&[0, 0, 0, 9, 1, 2][..]);
        assert!(matches!(codec.decode_eof(&mut truncated), Err(WireError::Truncated)));
    }
}
