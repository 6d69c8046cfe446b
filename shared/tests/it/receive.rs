//! What each receiver does with bytes off the wire, for every link direction: split
//! them into frames, decode each as that direction's message, and hold it to the gate
//! its receiver holds it to ([`verify`]); and what a process does with a cluster file.
//! The mutation test here, the replay of the fuzz seeds (here, and in the player
//! crate's suite, which includes this file), and the coverage-guided targets in `fuzz/`
//! (which include it too) all drive it, so CI and the fuzzer exercise the same path.
//! Nothing here may panic, whatever the bytes, but the check that a player's two ways
//! of keeping others refuse the same updates ([`PlayerEnd`]): a panic there is a finding.

use bytes::BytesMut;
use serde::de::DeserializeOwned;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::framing::{Bounded, WireCodec, WireError};
use tessera_shared::identity::JoinChallenge;
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::protocol::datagram::{
    DatagramError, DatagramTag, DatagramUpdate, TAG_LEN, read_inputs, read_update, split_tag,
};
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::packing::UnpackProblem;
use tessera_shared::protocol::verify::{self, PeerRules, Violation};
use tessera_shared::protocol::{
    ClientToProxy, Hello, OthersKept, PackedUpdate, PlayerFrame, PlayerUpdate, ProxyToClient, ProxyToServer,
    ServerToProxy, UpdateUnpacker, Welcome, tick_seconds,
};
use tokio_util::codec::Decoder;

/// The proxy every player-side message is from or for.
pub const PROXY: ProxyId = ProxyId(1);
/// The server receiving (from proxies and from its peer).
pub const SERVER: ServerId = ServerId(1);
/// The peer it hears from.
pub const PEER: ServerId = ServerId(2);

/// The challenge every fuzzed join answers.
pub fn join_challenge() -> JoinChallenge {
    JoinChallenge([0x5a; 32])
}

/// What the welcome below gives the player to mark its updates by datagram.
pub const DATAGRAM_TAG: DatagramTag = DatagramTag([0x7a; TAG_LEN]);

/// The player the welcome below welcomes (the id the seeds' updates were made for).
pub fn player() -> UserId {
    UserId((1 << 48) | 7)
}

/// One link direction, named by what its receiver decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The handshake, on every link.
    Hello,
    /// A player's join, after the hellos: the proxy checks its signature and its name.
    Join,
    ClientToProxy,
    ProxyToClient,
    ProxyToServer,
    ServerToProxy,
    Peer,
    /// A player's updates by datagram, each after its length (two bytes, big-endian),
    /// as its socket receives them one by one.
    UpdateDatagrams,
    /// What a proxy's socket receives from a player: binds and inputs, each after its
    /// length as above.
    InputDatagrams,
}

impl Direction {
    pub const ALL: [Direction; 9] = [
        Direction::Hello,
        Direction::Join,
        Direction::ClientToProxy,
        Direction::ProxyToClient,
        Direction::ProxyToServer,
        Direction::ServerToProxy,
        Direction::Peer,
        Direction::UpdateDatagrams,
        Direction::InputDatagrams,
    ];

    /// The fuzz target for this direction, and its folder of seeds.
    pub fn target(self) -> &'static str {
        match self {
            Direction::Hello => "hello",
            Direction::Join => "join",
            Direction::ClientToProxy => "client_to_proxy",
            Direction::ProxyToClient => "proxy_to_client",
            Direction::ProxyToServer => "proxy_to_server",
            Direction::ServerToProxy => "server_to_proxy",
            Direction::Peer => "peer",
            Direction::UpdateDatagrams => "update_datagrams",
            Direction::InputDatagrams => "input_datagrams",
        }
    }
}

/// The fuzz target for cluster files, and its folder of seeds.
pub const CLUSTER_FILE_TARGET: &str = "cluster_file";

/// What a process does with a cluster file: parse and validate it, and, valid, build
/// what it runs by (the region map, its peers' gate, the spawn point and its owner).
/// `None` when the bytes are not UTF-8 or not a valid map.
pub fn load_cluster_file(bytes: &[u8]) -> Option<ClusterConfig> {
    let config = ClusterConfig::parse(std::str::from_utf8(bytes).ok()?).ok()?;
    let rules = PeerRules::new(&config);
    let spawn = rules.map.clamp_to_world(config.spawn_point());
    rules.map.owner_at(spawn)?;
    Some(config)
}

/// What a receiver made of some bytes.
#[derive(Debug, Default)]
pub struct Received {
    /// Messages decoded.
    pub decoded: usize,
    /// Decoded messages the gate let through.
    pub accepted: usize,
    /// Why the gate refused the first it refused.
    pub violation: Option<Violation>,
    /// Why the bytes stopped decoding, if they did.
    pub wire_error: Option<WireError>,
}

/// What the receiver of `direction` knows: the cluster map, and the welcome its player got.
pub struct Receiver {
    rules: PeerRules,
    welcome: Welcome,
}

/// The welcome [`PROXY`] gives [`player`] on the default map.
pub fn welcome() -> Welcome {
    let config = ClusterConfig::default_local();
    Welcome {
        user: player(),
        name: "ada".into(),
        proxy: PROXY,
        resumed: false,
        ticket: tessera_shared::protocol::SessionTicket(vec![7; 48]),
        map: config.region_map(),
        view_radius: config.simulation.view_radius,
        tick_hz: config.simulation.tick_hz,
        datagrams: Some(DATAGRAM_TAG),
    }
}

impl Default for Receiver {
    fn default() -> Self {
        Self { rules: PeerRules::new(&ClusterConfig::default_local()), welcome: welcome() }
    }
}

impl Receiver {
    /// Everything `bytes` hold for the receiver of `direction`, as its link would read them.
    pub fn receive(&self, direction: Direction, bytes: &[u8]) -> Received {
        match direction {
            Direction::Hello => frames(bytes, |_: &Hello| Ok(())),
            Direction::Join => frames(bytes, |request: &JoinRequest| verify::join(request, &join_challenge())),
            // What the proxy forwards of it, held to the server's gate before it goes.
            Direction::ClientToProxy => frames(bytes, |message| match message {
                ClientToProxy::Input(input) => {
                    verify::from_proxy(&ProxyToServer::Input { user: player(), input: *input })
                }
                ClientToProxy::Chat { channel, text } => match verify::said(player(), *channel, text)? {
                    Some(said) => verify::from_proxy(&said),
                    None => Ok(()),
                },
                ClientToProxy::Resync | ClientToProxy::NoDatagrams => {
                    verify::from_proxy(&ProxyToServer::Resync { user: player() })
                }
            }),
            Direction::ProxyToClient => {
                // A player checks updates against the welcome it got, and uses its map.
                let mut welcome = self.welcome.clone();
                let mut unpacker = PlayerEnd::new(&welcome);
                frames(bytes, |message| match message {
                    ProxyToClient::Welcome(new) => {
                        verify::welcome(new, PROXY, player())?;
                        welcome = new.clone();
                        unpacker = PlayerEnd::new(&welcome);
                        let map = &welcome.map;
                        let corners = map.regions().map(|(region, _)| map.bounds(region).1);
                        let far = corners.fold(Vec2::ZERO, Vec2::max);
                        map.owner_at(map.clamp_to_world(far));
                        Ok(())
                    }
                    ProxyToClient::Update(packed) => verify::update(&unpacker.unpack(packed.clone())?, &welcome),
                    ProxyToClient::Chat(line) => verify::chat_line(line),
                    ProxyToClient::Disconnect { .. }
                    | ProxyToClient::ChatThrottled
                    | ProxyToClient::NameRefused { .. }
                    | ProxyToClient::SessionGone
                    | ProxyToClient::RegionOffline => Ok(()),
                })
            }
            Direction::ProxyToServer => frames(bytes, verify::from_proxy),
            Direction::ServerToProxy => frames(bytes, |message| {
                verify::from_server(message, SERVER)?;
                // The player at the end of the proxy reads each frame it forwards.
                if let ServerToProxy::Updates { frames: updates, .. } = message {
                    for PlayerFrame { frame, .. } in updates {
                        if let Some(violation) = self.receive(Direction::ProxyToClient, frame).violation {
                            return Err(violation);
                        }
                    }
                }
                Ok(())
            }),
            Direction::Peer => frames(bytes, |message| verify::from_peer(message, SERVER, PEER, &self.rules)),
            Direction::UpdateDatagrams => {
                // As the player does: an update that cannot be unpacked is taken for one
                // after a loss, and starts the unpacker over, awaiting a full update;
                // anything else wrong ends the link. (The player also holds a datagram
                // that overtook an update by its link: here there is no link, and every
                // datagram comes in its turn.)
                let mut unpacker = PlayerEnd::new(&self.welcome);
                datagrams(bytes, |datagram| match read_update(DATAGRAM_TAG, datagram)? {
                    None => Ok(()),
                    Some(DatagramUpdate { update: packed, .. }) => match unpacker.unpack(packed) {
                        Ok(update) => Ok(verify::update(&update, &self.welcome)?),
                        Err(Violation::BadPacking(_)) => {
                            unpacker.start_over();
                            Ok(())
                        }
                        Err(violation) => Err(violation.into()),
                    },
                })
            }
            // As the proxy does with what comes from the address the player's tag is
            // bound to: a bind, or inputs, each held to the server's gate.
            Direction::InputDatagrams => {
                datagrams(bytes, |datagram| match (DatagramTag::of_bind(datagram), split_tag(datagram)) {
                    (None, Some((DATAGRAM_TAG, body))) => {
                        for input in read_inputs(body)? {
                            verify::from_proxy(&ProxyToServer::Input { user: player(), input })?;
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                })
            }
        }
    }
}

/// A player's end of its updates, unpacked both ways a player may keep others: their
/// states (a game's client) and only their handles (a bot, [`OthersKept::Handles`]).
/// Both must refuse the same updates for the same reason, but for a number that
/// overflows, which only the states show; and what the player makes of an update is
/// what the states make of it.
struct PlayerEnd {
    states: UpdateUnpacker,
    handles: UpdateUnpacker,
}

impl PlayerEnd {
    fn new(welcome: &Welcome) -> Self {
        let keeping = |kept| UpdateUnpacker::new(player().entity(), tick_seconds(welcome.tick_hz), kept);
        Self { states: keeping(OthersKept::States), handles: keeping(OthersKept::Handles) }
    }

    fn unpack(&mut self, packed: PackedUpdate) -> Result<PlayerUpdate, Violation> {
        let by_handles = self.handles.unpack(packed.clone()).err();
        let by_states = self.states.unpack(packed);
        let overflow = Violation::BadPacking(UnpackProblem::Overflow);
        if by_states.as_ref().err() != Some(&overflow) {
            assert_eq!(by_handles.as_ref(), by_states.as_ref().err(), "a bot and a client disagree on an update");
        }
        by_states
    }

    fn start_over(&mut self) {
        self.states.start_over();
        self.handles.start_over();
    }
}

/// Reads `bytes` as datagrams (each after its length: two bytes, big-endian; the last
/// cut short if the bytes run out), passing each through `gate` as a player's socket
/// does, until one is refused.
pub fn datagrams(bytes: &[u8], mut gate: impl FnMut(&[u8]) -> Result<(), DatagramError>) -> Received {
    let mut received = Received::default();
    let mut rest = bytes;
    while let Some((len, after)) = rest.split_first_chunk::<2>() {
        let (datagram, after) = after.split_at(usize::from(u16::from_be_bytes(*len)).min(after.len()));
        rest = after;
        received.decoded += 1;
        match gate(datagram) {
            Ok(()) => received.accepted += 1,
            Err(DatagramError::Violation(violation)) => {
                received.violation = Some(violation);
                return received;
            }
            Err(DatagramError::Wire(error)) => {
                received.wire_error = Some(error);
                return received;
            }
            Err(DatagramError::Io(error)) => {
                received.wire_error = Some(WireError::Io(error));
                return received;
            }
        }
    }
    received
}

/// Decodes frames of `T` from `bytes` until they run out or one is bad, passing each
/// decoded message through `gate` as a link does (the first refusal closes the link).
pub fn frames<T: DeserializeOwned + Bounded>(
    bytes: &[u8],
    mut gate: impl FnMut(&T) -> Result<(), Violation>,
) -> Received {
    let mut codec = WireCodec::<T>::default();
    let mut buffer = BytesMut::from(bytes);
    let mut received = Received::default();
    loop {
        let message = match codec.decode_eof(&mut buffer) {
            Ok(Some(message)) => message,
            Ok(None) => return received,
            Err(err) => {
                received.wire_error = Some(err);
                return received;
            }
        };
        received.decoded += 1;
        match gate(&message) {
            Ok(()) => received.accepted += 1,
            Err(violation) => {
                received.violation = Some(violation);
                return received;
            }
        }
    }
}
