//! What a link's byte stream is: the frames of [`crate::framing`], carried in sealed
//! records ([`super::seal`]) when the link is an internal one, and plain otherwise.
//! Reading, it also says when a frame has begun but not finished, so the link can put a
//! deadline on finishing it: a peer that dribbles a frame out byte by byte (slowloris)
//! holds a connection only that long. And it says when a heartbeat arrived
//! ([`crate::framing::Heartbeat`]): proof the peer is there, and nothing to decode.

use super::seal::{Cipher, MAX_RECORD, RECORD_PREFIX, TAG_LEN};
use crate::framing::{Heartbeat, WireError};
use bytes::{Buf, BufMut, BytesMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_util::codec::{Decoder, Encoder};

/// Plaintext bytes in one record.
const MAX_RECORD_PLAIN: usize = MAX_RECORD - TAG_LEN;

/// What reading a link yields.
#[derive(Debug)]
pub enum Read<T> {
    /// Bytes of a frame arrived, but not the whole frame yet.
    Started,
    Frame(T),
    /// An empty frame: the peer is there.
    Heartbeat,
}

/// Frames through `inner`, sealed by a cipher when there is one, adding the bytes read
/// or written on the wire (record overhead included) to `counter` when given one.
pub struct LinkCodec<C> {
    inner: C,
    cipher: Option<Cipher>,
    counter: Option<Arc<AtomicU64>>,
    /// Opened plaintext not yet decoded into a frame (sealed links only).
    plain: BytesMut,
    /// Encoded plaintext waiting to be sealed (sealed links only).
    scratch: BytesMut,
    /// Whether [`Read::Started`] was said for the frame being read.
    started: bool,
}

impl<C> LinkCodec<C> {
    pub fn new(inner: C, cipher: Option<Cipher>, counter: Option<Arc<AtomicU64>>) -> Self {
        Self { inner, cipher, counter, plain: BytesMut::new(), scratch: BytesMut::new(), started: false }
    }

    /// Whether what it writes is sealed (an internal link's).
    pub fn is_sealed(&self) -> bool {
        self.cipher.is_some()
    }

    fn count(&self, bytes: usize) {
        if let Some(counter) = &self.counter {
            counter.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// The same link, framing through `f(inner)` from now on.
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> LinkCodec<D> {
        LinkCodec {
            inner: f(self.inner),
            cipher: self.cipher,
            counter: self.counter,
            plain: self.plain,
            scratch: self.scratch,
            started: self.started,
        }
    }

    /// Opens whole records from `src` into the plaintext buffer.
    fn open_records(cipher: &mut Cipher, src: &mut BytesMut, plain: &mut BytesMut) -> Result<(), WireError> {
        while let Some(prefix) = src.get(..RECORD_PREFIX) {
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            if len < TAG_LEN {
                return Err(WireError::Forged);
            }
            if src.len() < RECORD_PREFIX + len {
                return Ok(());
            }
            src.advance(RECORD_PREFIX);
            let record = src.split_to(len);
            let start = plain.len();
            plain.resize(start + len - TAG_LEN, 0);
            let opened = cipher.open(&record, &mut plain[start..])?;
            plain.truncate(start + opened);
        }
        Ok(())
    }
}

impl<C: Decoder<Error = WireError>> Decoder for LinkCodec<C> {
    type Item = Read<C::Item>;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, WireError> {
        let unread = src.len();
        // Records are opened as they arrive, into the plaintext the frames are read from.
        if let Some(cipher) = &mut self.cipher {
            Self::open_records(cipher, src, &mut self.plain)?;
        }
        // Frames start where the buffer does: a heartbeat there is a whole frame.
        let buffer = if self.cipher.is_some() { &mut self.plain } else { &mut *src };
        if buffer.starts_with(&Heartbeat::FRAME) {
            buffer.advance(Heartbeat::FRAME.len());
            self.count(unread - src.len());
            self.started = false;
            return Ok(Some(Read::Heartbeat));
        }
        let frame = match self.cipher {
            None => self.inner.decode(src)?,
            Some(_) => self.inner.decode(&mut self.plain)?,
        };
        self.count(unread - src.len());
        if let Some(frame) = frame {
            self.started = false;
            return Ok(Some(Read::Frame(frame)));
        }
        let buffered = !src.is_empty() || !self.plain.is_empty();
        if buffered && !self.started {
            self.started = true;
            return Ok(Some(Read::Started));
        }
        Ok(None)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, WireError> {
        match self.decode(src)? {
            Some(Read::Frame(frame)) => Ok(Some(Read::Frame(frame))),
            Some(Read::Heartbeat) => Ok(Some(Read::Heartbeat)),
            _ if src.is_empty() && self.plain.is_empty() => Ok(None),
            _ => Err(WireError::Truncated),
        }
    }
}

impl<T, C: Encoder<T, Error = WireError>> Encoder<T> for LinkCodec<C> {
    type Error = WireError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), WireError> {
        let written = dst.len();
        let Some(cipher) = &mut self.cipher else {
            self.inner.encode(item, dst)?;
            self.count(dst.len() - written);
            return Ok(());
        };
        self.scratch.clear();
        self.inner.encode(item, &mut self.scratch)?;
        for chunk in self.scratch.chunks(MAX_RECORD_PLAIN) {
            let start = dst.len();
            dst.put_u16(0);
            dst.resize(start + RECORD_PREFIX + chunk.len() + TAG_LEN, 0);
            let len = cipher.seal(chunk, &mut dst[start + RECORD_PREFIX..])?;
            let prefix = u16::try_from(len).expect("a record is at most MAX_RECORD bytes");
            dst[start..start + RECORD_PREFIX].copy_from_slice(&prefix.to_be_bytes());
            dst.truncate(start + RECORD_PREFIX + len);
        }
        self.count(dst.len() - written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::components::Keys;
    use crate::framing::encoded_frame;
    use crate::ids::ProxyId;
    use crate::link::{Door, Link, LinkError};
    use crate::protocol::handshake::{Hello, Role};
    use crate::protocol::{ClientToProxy, Input};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A player that starts a frame and never finishes it holds its connection for the
    /// frame deadline, not for ever; one that idles between frames is left alone.
    #[tokio::test]
    async fn a_frame_begun_must_be_finished_in_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The player speaks raw bytes: a hello, then frames cut where the test says.
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(&encoded_frame(&Hello::new(Role::Client)).unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (proxy, _) =
            Link::<ClientToProxy>::open(stream, Door::Public, Hello::new(Role::Proxy(ProxyId(1))), None).await.unwrap();
        let deadline = Duration::from_millis(200);
        let mut proxy = proxy.with_frame_deadline(deadline);
        let frame = encoded_frame(&ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 })).unwrap();
        // Idle between frames for longer than the deadline (on purpose, not waiting for
        // anything): that is no offence.
        tokio::time::sleep(deadline * 2).await;
        raw.write_all(&frame).await.unwrap();
        assert!(matches!(proxy.recv().await, Ok(ClientToProxy::Input(_))));
        // Half a frame, then nothing.
        raw.write_all(&frame[..3]).await.unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), proxy.recv()).await.expect("the deadline fires");
        assert!(matches!(err, Err(LinkError::TooSlow(d)) if d == deadline), "{err:?}");
    }

    /// An empty frame between two frames is a heartbeat, whole or in pieces. (Sealed
    /// links read the same as plain ones: `shared/tests/it/link_layer.rs` compares them.)
    #[test]
    fn an_empty_frame_is_a_heartbeat_between_frames() {
        use super::{LinkCodec, Read};
        use crate::framing::{FrameCodec, Heartbeat};
        use bytes::BytesMut;
        use tokio_util::codec::Decoder;

        let frame = encoded_frame(&ClientToProxy::Input(Input { seq: 1, keys: Keys::UP, tick: 0 })).unwrap();
        let wire = [&frame[..], &Heartbeat::FRAME, &frame[..]].concat();
        for arrival in [wire.len(), 2] {
            let mut reader = LinkCodec::new(FrameCodec::default(), None, None);
            let mut buffer = BytesMut::new();
            let mut reads = Vec::new();
            for arrived in wire.chunks(arrival) {
                buffer.extend_from_slice(arrived);
                while let Some(read) = reader.decode(&mut buffer).unwrap() {
                    match read {
                        Read::Frame(_) => reads.push("frame"),
                        Read::Heartbeat => reads.push("heartbeat"),
                        Read::Started => {}
                    }
                }
            }
            assert_eq!(reads, ["frame", "heartbeat", "frame"], "arriving {arrival} bytes at a time");
        }
    }

    /// A peer silent for the silence limit is gone; one that only sends heartbeats is not.
    #[tokio::test]
    async fn a_silent_peer_is_taken_for_gone_and_a_beating_one_is_not() {
        use crate::link::{HEARTBEAT_EVERY, Outbound, SILENCE_LIMIT};
        use tokio::time::Instant;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hello = || Hello::new(Role::Proxy(ProxyId(1)));
        // A peer that says hello and nothing after.
        let mut silent = TcpStream::connect(addr).await.unwrap();
        silent.write_all(&encoded_frame(&Hello::new(Role::Client)).unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (mut from_silent, _) = Link::<ClientToProxy>::open(stream, Door::Public, hello(), None).await.unwrap();
        // A peer running its link with nothing to say: it sends heartbeats.
        let beating = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (opened, accepted) = tokio::join!(
            Link::<ClientToProxy>::open(beating, Door::Public, Hello::new(Role::Client), None),
            Link::<ClientToProxy>::open(stream, Door::Public, hello(), None)
        );
        let (beating, _) = opened.unwrap();
        let (mut from_beating, _) = accepted.unwrap();
        let (_quiet, nothing) = Outbound::<ClientToProxy>::channel();
        tokio::spawn(beating.run(nothing, |_| std::future::ready(Ok(()))));

        let started = Instant::now();
        // This end beats too, as a player waiting for updates does, or the other would
        // take it for gone in turn.
        let beating_heard = async {
            while started.elapsed() < SILENCE_LIMIT + Duration::from_secs(1) {
                match tokio::time::timeout(HEARTBEAT_EVERY, from_beating.recv()).await {
                    Err(_) => from_beating.send_heartbeat().await.unwrap(),
                    Ok(heard) => panic!("the beating peer had nothing to say, yet: {heard:?}"),
                }
            }
        };
        let (gone, ()) = tokio::join!(from_silent.recv(), beating_heard);
        assert!(matches!(gone, Err(LinkError::Silent(_))), "{gone:?}");
        assert!(started.elapsed() >= SILENCE_LIMIT);
    }
}
