//! What a link does with bytes beneath its messages: the listener side of the Noise
//! handshake ([`seal::handshake`]) fed a stranger's bytes at a members' door, and the
//! record layer ([`LinkCodec`]) splitting a stream into frames, plain or sealed. The
//! replay of the fuzz seeds and the `noise_responder` and `link_codec` targets in
//! `fuzz/` (which include this file) drive it. Nothing here may panic, whatever the
//! bytes; the assertions are the properties the fuzzer holds the code to.

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_shared::framing::{FrameCodec, Outgoing, WireCodec};
use tessera_shared::link::codec::{LinkCodec, Read};
use tessera_shared::link::seal::{self, Cipher, Side};
use tessera_shared::protocol::handshake::{HandshakeError, Hello};
use tessera_shared::secret::ClusterSecret;
use tokio_util::codec::{Decoder, Encoder};

/// The fuzz target for a stranger's bytes at a members' door, and its folder of seeds.
pub const NOISE_RESPONDER_TARGET: &str = "noise_responder";
/// The fuzz target for the record layer, and its folder of seeds.
pub const LINK_CODEC_TARGET: &str = "link_codec";

/// The cluster whose door is knocked at, and whose members seal the links read here.
fn secret() -> ClusterSecret {
    ClusterSecret::development()
}

/// How far a stranger's bytes got at a members' door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Knock {
    /// Refused by the Noise handshake, with no answer sent.
    RefusedAtHandshake,
    /// Past the handshake (a member's first message, recorded and replayed), but no
    /// record after it opened, so no hello was believed.
    HeldAtFirstRecord,
}

/// What the listener side of a members' door does with `bytes` from a stranger: the
/// Noise handshake, then the sealed hello, as [`tessera_shared::link::Link::open`] reads
/// them. Panics if the stranger got an answer before proving membership, or had a hello
/// believed.
pub fn knock(bytes: &[u8]) -> Knock {
    let mut stream = tokio::io::join(bytes, Vec::new());
    let handshake = seal::handshake(&mut stream, &secret(), Side::Listener)
        .now_or_never()
        .expect("bytes in memory are read and written without waiting");
    let (rest, answer) = stream.into_inner();
    match handshake {
        Err(err) => {
            assert!(matches!(err, HandshakeError::NotAMember | HandshakeError::Io(_)), "{err:?}");
            assert!(answer.is_empty(), "a stranger was answered before proving membership: {answer:?}");
            Knock::RefusedAtHandshake
        }
        Ok((reading, _)) => {
            let mut codec = LinkCodec::new(WireCodec::<Hello>::default(), Some(reading), None);
            if let Ok(Some(Read::Frame(hello))) = codec.decode_eof(&mut BytesMut::from(rest)) {
                panic!("a stranger's hello was believed: {hello:?}");
            }
            Knock::HeldAtFirstRecord
        }
    }
}

/// What one reader made of a stream: the frames it split off, why it stopped if it did,
/// and the bytes it counted as read off the wire.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    pub frames: Vec<BytesMut>,
    pub heartbeats: usize,
    pub error: Option<String>,
    pub counted: u64,
}

/// How a `link_codec` input is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The bytes are a plain link's stream.
    Plain,
    /// The bytes arrive at a sealed link as they are: records no member sealed.
    Forged,
    /// The bytes are what a member writes, sealed in records of the given length, then
    /// read by the other member.
    Sealed { record: usize },
}

/// Reads a `link_codec` input: the first byte says how ([`Stream`]; for sealed streams
/// the second says how long their records' plaintext is), the next how many bytes
/// arrive at a time, and the rest is the stream. `members` gives the ciphers of a new
/// link between two members ([`members_ciphers`]: the one sealing, the one opening).
/// Returns how it was read and what the reader made of it; panics where the record
/// layer breaks a promise.
pub fn read_link(input: &[u8], members: impl FnOnce() -> (Cipher, Cipher)) -> Option<(Stream, Reading)> {
    let (&how, input) = input.split_first()?;
    let (stream, input) = match how % 3 {
        0 => (Stream::Plain, input),
        1 => (Stream::Forged, input),
        _ => {
            let (&record, input) = input.split_first()?;
            (Stream::Sealed { record: usize::from(record) + 1 }, input)
        }
    };
    let (&arrival, bytes) = input.split_first()?;
    let arrival = usize::from(arrival) + 1;
    let reading = match stream {
        Stream::Plain => read(None, bytes, arrival),
        Stream::Forged => {
            let (_, reading) = members();
            let forged = read(Some(reading), bytes, arrival);
            assert!(forged.frames.is_empty(), "a record no member sealed was opened: {forged:?}");
            forged
        }
        Stream::Sealed { record } => {
            let (writing, reading) = members();
            let mut sealer = LinkCodec::new(WireCodec::<Hello>::default(), Some(writing), None);
            let mut wire = BytesMut::new();
            for plain in bytes.chunks(record) {
                let piece = Outgoing::<Hello>::Encoded(Bytes::copy_from_slice(plain));
                sealer.encode(piece, &mut wire).expect("a member seals any bytes");
            }
            let sealed = read(Some(reading), &wire, arrival);
            // Records change how frames travel, never which frames arrive.
            let plain = read(None, bytes, arrival);
            assert_eq!(sealed.frames, plain.frames, "sealing changed the frames");
            assert_eq!(sealed.error, plain.error, "sealing changed why reading stopped");
            assert_eq!(sealed.heartbeats, plain.heartbeats, "sealing changed the heartbeats");
            if sealed.error.is_none() {
                assert_eq!(sealed.counted, wire.len() as u64, "a sealed link miscounted its bytes");
            }
            sealed
        }
    };
    if reading.error.is_none() && stream == Stream::Plain {
        assert_eq!(reading.counted, bytes.len() as u64, "a plain link miscounted its bytes");
    }
    Some((stream, reading))
}

/// The cipher one member seals with and the one the other opens with, from a Noise
/// handshake between two members in memory.
pub fn members_ciphers() -> (Cipher, Cipher) {
    let (mut dialer, mut listener) = tokio::io::duplex(1024);
    let secret = secret();
    let handshakes = futures_util::future::join(
        seal::handshake(&mut dialer, &secret, Side::Dialer),
        seal::handshake(&mut listener, &secret, Side::Listener),
    );
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a runtime without I/O builds");
    let (dialed, listened) = runtime.block_on(handshakes);
    let ((_, writing), (reading, _)) =
        (dialed.expect("members finish a handshake"), listened.expect("members finish a handshake"));
    (writing, reading)
}

/// What a link's reader makes of `wire` arriving `arrival` bytes at a time, then the
/// end of the stream, asking its codec for frames as tokio's `FramedRead` does.
fn read(cipher: Option<Cipher>, wire: &[u8], arrival: usize) -> Reading {
    let counter = Arc::new(AtomicU64::new(0));
    let mut codec = LinkCodec::new(FrameCodec::default(), cipher, Some(counter.clone()));
    let mut reading = Reading::default();
    let mut buffer = BytesMut::new();
    let mut started = false;
    'arriving: for arrived in wire.chunks(arrival) {
        buffer.extend_from_slice(arrived);
        loop {
            match codec.decode(&mut buffer) {
                Ok(Some(Read::Started)) => {
                    // Said once a frame: its deadline starts then, and is not restarted.
                    assert!(!started, "a frame was started twice");
                    started = true;
                }
                Ok(Some(Read::Frame(frame))) => {
                    started = false;
                    reading.frames.push(frame);
                }
                Ok(Some(Read::Heartbeat)) => {
                    // What had started, when it had, was the heartbeat.
                    started = false;
                    reading.heartbeats += 1;
                }
                Ok(None) => break,
                Err(err) => {
                    reading.error = Some(err.to_string());
                    break 'arriving;
                }
            }
        }
    }
    while reading.error.is_none() {
        match codec.decode_eof(&mut buffer) {
            Ok(Some(Read::Frame(frame))) => reading.frames.push(frame),
            Ok(Some(Read::Heartbeat)) => reading.heartbeats += 1,
            Ok(Some(Read::Started)) => unreachable!("at the end of the stream a frame is whole or truncated"),
            Ok(None) => break,
            Err(err) => reading.error = Some(err.to_string()),
        }
    }
    reading.counted = counter.load(Ordering::Relaxed);
    reading
}
