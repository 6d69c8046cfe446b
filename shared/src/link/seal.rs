//! Sealing an internal link (proxy ↔ server, server ↔ server): a Noise handshake that
//! only holders of the cluster secret can finish, then every byte of the link carried
//! in encrypted, authenticated records.
//!
//! Why Noise (the `snow` crate) and not TLS: membership of a cluster is one shared
//! secret, not an identity per host, and Noise takes a pre-shared key as a first-class
//! part of the handshake. TLS would need a certificate authority derived from the
//! secret (a certificate per process, its signing and checking) to say the same thing,
//! or TLS 1.3's external PSKs, which rustls does not offer. The pattern is
//! `NNpsk0_25519_ChaChaPoly_BLAKE2s`:
//! - the key derived from the secret is mixed in before the first message, so a process
//!   without it cannot produce or answer a valid handshake message;
//! - both ends contribute a fresh ephemeral key, so each link's keys are new, earlier
//!   traffic stays secret if the cluster secret later leaks, and a recorded handshake
//!   replayed later gets an answer under keys the replayer cannot compute: its next
//!   record (the hello) fails to decrypt and the link closes;
//! - records carry no nonce: each end counts them, so a record replayed, dropped,
//!   reordered or altered inside a link fails authentication.
//!
//! The hello (role and id) travels only inside the sealed records, so what a peer
//! claims to be is believed only once it proved it holds the secret.

use crate::framing::WireError;
use crate::protocol::handshake::HandshakeError;
use crate::secret::ClusterSecret;
use snow::StatelessTransportState;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Hashed into the handshake: a handshake for any other protocol or version fails.
const PROLOGUE: &[u8] = b"tessera internal link v1";
const PSK_PURPOSE: &str = "tessera internal links: noise psk0";
/// Bytes of the authentication tag at the end of every record.
pub const TAG_LEN: usize = 16;
/// The largest record, tag included (Noise's limit on one message).
pub const MAX_RECORD: usize = u16::MAX as usize;
/// Bytes of each record's length prefix.
pub const RECORD_PREFIX: usize = 2;
/// A handshake message is an ephemeral key and an empty encrypted payload: 48 bytes.
const MAX_HANDSHAKE_MESSAGE: usize = 128;

/// Which end of the link this is: the dialer speaks first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Listener,
}

/// One direction of a sealed link: the session keys, and the number of the next record.
pub struct Cipher {
    keys: Arc<StatelessTransportState>,
    nonce: u64,
}

/// Runs the handshake over `stream` (a connection, or in the fuzz targets and tests
/// bytes in memory) as `side`, returning the ciphers for reading and for writing. Fails
/// with [`HandshakeError::NotAMember`] when the peer does not hold `secret` (or sent
/// anything but a handshake).
pub async fn handshake(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin),
    secret: &ClusterSecret,
    side: Side,
) -> Result<(Cipher, Cipher), HandshakeError> {
    let psk = secret.derive(PSK_PURPOSE);
    let builder = snow::Builder::new(PATTERN.parse().expect("a valid Noise pattern"))
        .prologue(PROLOGUE)
        .and_then(|builder| builder.psk(0, &psk))
        .expect("the prologue and psk fit the pattern");
    let mut noise = match side {
        Side::Dialer => builder.build_initiator(),
        Side::Listener => builder.build_responder(),
    }
    .expect("the pattern builds");
    let mut buf = [0; MAX_HANDSHAKE_MESSAGE];
    while !noise.is_handshake_finished() {
        if noise.is_my_turn() {
            let len = noise.write_message(&[], &mut buf).map_err(|_| HandshakeError::NotAMember)?;
            let prefix = u16::try_from(len).expect("a handshake message fits a u16");
            stream.write_all(&prefix.to_be_bytes()).await?;
            stream.write_all(&buf[..len]).await?;
        } else {
            let len = usize::from(stream.read_u16().await?);
            let message = buf.get_mut(..len).ok_or(HandshakeError::NotAMember)?;
            stream.read_exact(message).await?;
            let mut payload = [0; MAX_HANDSHAKE_MESSAGE];
            noise.read_message(message, &mut payload).map_err(|_| HandshakeError::NotAMember)?;
        }
    }
    let keys = Arc::new(noise.into_stateless_transport_mode().map_err(|_| HandshakeError::NotAMember)?);
    Ok((Cipher { keys: keys.clone(), nonce: 0 }, Cipher { keys, nonce: 0 }))
}

impl Cipher {
    /// Encrypts `plain` into `record` (which must have room for `plain` and the tag),
    /// returning the record's length.
    pub fn seal(&mut self, plain: &[u8], record: &mut [u8]) -> Result<usize, WireError> {
        let nonce = self.next_nonce()?;
        self.keys.write_message(nonce, plain, record).map_err(|_| WireError::Forged)
    }

    /// Decrypts and authenticates `record` into `plain`, returning the plaintext's length.
    pub fn open(&mut self, record: &[u8], plain: &mut [u8]) -> Result<usize, WireError> {
        let nonce = self.next_nonce()?;
        self.keys.read_message(nonce, record, plain).map_err(|_| WireError::Forged)
    }

    /// The same keys, counting records from the first again: for the fuzz targets only,
    /// which read each input as a new link, and one handshake a run is all they can
    /// afford. A link must never do this: a record number used twice reuses a nonce.
    #[cfg(feature = "fuzzing")]
    pub fn rewound(&self) -> Self {
        Self { keys: self.keys.clone(), nonce: 0 }
    }

    fn next_nonce(&mut self) -> Result<u64, WireError> {
        let nonce = self.nonce;
        // Never reached in practice (2^64 records), but a nonce must never repeat.
        self.nonce = nonce.checked_add(1).ok_or(WireError::Forged)?;
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterDigest;
    use crate::framing::WireError;
    use crate::ids::{ProxyId, ServerId, UserId};
    use crate::link::{Door, Link, LinkError};
    use crate::protocol::handshake::{Hello, Role};
    use crate::protocol::{PeerMessage, ProxyToServer};
    use tokio::net::{TcpListener, TcpStream};

    /// A members' door, both ends with the same cluster file: what these tests try is
    /// the secret.
    fn members(secret: &ClusterSecret, side: Side) -> Door<'_> {
        Door::Members { secret, cluster: ClusterDigest([7; 32]), side }
    }

    fn hello_from(server: u16) -> Hello {
        Hello::new(Role::Server(ServerId(server)))
    }

    /// Opens a link between a listener holding `listener_secret` and a dialer holding
    /// `dialer_secret`, returning what each end made of it.
    async fn open_pair(
        listener_secret: &ClusterSecret,
        dialer_secret: &ClusterSecret,
    ) -> (Result<(Link<PeerMessage>, Role), LinkError>, Result<(Link<PeerMessage>, Role), LinkError>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = async {
            let (stream, _) = listener.accept().await.unwrap();
            Link::open(stream, members(listener_secret, Side::Listener), hello_from(2), None).await
        };
        let dial = async {
            let stream = TcpStream::connect(addr).await.unwrap();
            Link::open(stream, members(dialer_secret, Side::Dialer), hello_from(1), None).await
        };
        tokio::join!(accept, dial)
    }

    #[tokio::test]
    async fn members_seal_a_link_and_talk_over_it() {
        let secret = ClusterSecret::generate().unwrap();
        let (accepted, dialed) = open_pair(&secret, &secret).await;
        let ((mut accepted, dialer_role), (mut dialed, listener_role)) = (accepted.unwrap(), dialed.unwrap());
        assert_eq!((dialer_role, listener_role), (Role::Server(ServerId(1)), Role::Server(ServerId(2))));
        // Larger than one record: a frame spans several, and arrives whole.
        let user = UserId(1);
        let logout = PeerMessage::ForwardLogout { user };
        let cells = PeerMessage::Subscribe(vec![crate::region_map::CellId { x: 3, y: 4 }; 30_000]);
        dialed.send(cells.clone()).await.unwrap();
        dialed.send(logout.clone()).await.unwrap();
        assert_eq!(accepted.recv().await.unwrap(), cells);
        assert_eq!(accepted.recv().await.unwrap(), logout);
    }

    #[tokio::test]
    async fn a_process_without_the_secret_cannot_finish_a_handshake() {
        let (ours, theirs) = (ClusterSecret::generate().unwrap(), ClusterSecret::generate().unwrap());
        let (accepted, dialed) = open_pair(&ours, &theirs).await;
        assert!(matches!(accepted, Err(LinkError::Handshake(HandshakeError::NotAMember))), "{:?}", accepted.err());
        assert!(dialed.is_err());
        // The development secret is a secret like any other: it opens nothing else.
        let (accepted, _) = open_pair(&ours, &ClusterSecret::development()).await;
        assert!(matches!(accepted, Err(LinkError::Handshake(HandshakeError::NotAMember))));
    }

    #[tokio::test]
    async fn a_plain_hello_at_a_members_door_is_refused() {
        let secret = ClusterSecret::generate().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accept = async {
            let (stream, _) = listener.accept().await.unwrap();
            Link::<ProxyToServer>::open(stream, members(&secret, Side::Listener), hello_from(1), None).await
        };
        let dial = async {
            let stream = TcpStream::connect(addr).await.unwrap();
            let hello = Hello::new(Role::Proxy(ProxyId(1)));
            Link::<ProxyToServer>::open(stream, Door::Public, hello, None).await
        };
        let (accepted, _) = tokio::join!(accept, dial);
        assert!(matches!(accepted, Err(LinkError::Handshake(HandshakeError::NotAMember))), "{:?}", accepted.err());
    }

    /// Everything a real member sent on one link, recorded, then replayed byte for
    /// byte on a new connection: the replayed handshake gets an answer under fresh keys,
    /// so the recorded hello no longer opens, and the link closes before any role is
    /// believed.
    #[tokio::test]
    async fn a_recorded_handshake_replayed_later_is_refused() {
        let secret = ClusterSecret::generate().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tap = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tap_addr = tap.local_addr().unwrap();
        // The tap forwards the dialer to the listener, keeping what the dialer sent.
        let recording = tokio::spawn(async move {
            let (mut from_dialer, _) = tap.accept().await.unwrap();
            let mut to_listener = TcpStream::connect(addr).await.unwrap();
            let (mut dialer_read, mut dialer_write) = from_dialer.split();
            let (mut listener_read, mut listener_write) = to_listener.split();
            let mut recorded = Vec::new();
            let upstream = async {
                let mut buf = [0; 4096];
                loop {
                    let n = dialer_read.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    recorded.extend_from_slice(&buf[..n]);
                    listener_write.write_all(&buf[..n]).await.unwrap();
                }
            };
            let downstream = tokio::io::copy(&mut listener_read, &mut dialer_write);
            let _ = tokio::join!(upstream, downstream);
            recorded
        });
        let accept = async {
            let (stream, _) = listener.accept().await.unwrap();
            Link::<PeerMessage>::open(stream, members(&secret, Side::Listener), hello_from(2), None).await
        };
        let dial = async {
            let stream = TcpStream::connect(tap_addr).await.unwrap();
            let (mut link, _) =
                Link::<PeerMessage>::open(stream, members(&secret, Side::Dialer), hello_from(1), None).await?;
            link.send(PeerMessage::Subscribe(Vec::new())).await?;
            Ok::<_, LinkError>(link)
        };
        let (accepted, dialed) = tokio::join!(accept, dial);
        let (mut accepted, _) = accepted.expect("the real member got in");
        accepted.recv().await.unwrap();
        drop((accepted, dialed));
        let recorded = recording.await.unwrap();
        assert!(recorded.len() > 48, "the handshake, the hello and a message were recorded");

        let replay = async {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(&recorded).await.unwrap();
            // Keep the connection open until the listener has judged it.
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        };
        let accept = async {
            let (stream, _) = listener.accept().await.unwrap();
            Link::<PeerMessage>::open(stream, members(&secret, Side::Listener), hello_from(2), None).await
        };
        let (replayed, ()) = tokio::join!(accept, replay);
        assert!(
            matches!(replayed, Err(LinkError::Handshake(HandshakeError::Wire(WireError::Forged)))),
            "a replayed handshake is refused at its first record: {:?}",
            replayed.err()
        );
    }
}
