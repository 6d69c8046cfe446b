//! Fuzzing on stable, in the suite: valid frames of every message of every link
//! direction, mutated a few thousand times each by a seeded RNG (bits flipped, bytes
//! set to edge values, inserted, deleted, duplicated, frames cut short, length prefixes
//! rewritten), then decoded and held to their receiver's gate. It asserts that nothing
//! panics, that errors are the typed ones a link closes on, and that the mutations
//! reached the gates (some decoded and were refused, some passed). The coverage-guided
//! targets in `fuzz/` go deeper; this keeps CI guarding the same path, in well under a
//! second.

use crate::receive::{DATAGRAM_TAG, Direction, PEER, PROXY, Receiver, SERVER, join_challenge, player, welcome};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::framing::{WireError, encoded_frame};
use tessera_shared::identity::Identity;
use tessera_shared::ids::{EntityId, UserId};
use tessera_shared::protocol::SessionTicket;
use tessera_shared::protocol::datagram::{write_inputs, write_update};
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::packing::{Mention, Mentions};
use tessera_shared::protocol::{
    CellDelta, ChatChannel, ChatLine, ClientToProxy, EntityName, EntityState, GhostEntry, HandedClock, HandedView,
    HandoffState, Hello, Input, PeerMessage, PlayerFrame, PlayerUpdate, ProxyToClient, ProxyToServer, Role,
    ServerToProxy, UpdatePacker, tick_seconds,
};
use tessera_shared::region_map::CellId;

/// Mutated copies of each sample frame.
const MUTATIONS_PER_SAMPLE: usize = 3000;

fn frame(message: &impl Serialize) -> Vec<u8> {
    encoded_frame(message).expect("a sample encodes").to_vec()
}

fn moving(id: EntityId, x: f32, y: f32) -> EntityState {
    EntityState { id, position: Vec2::new(x, y), velocity: Vec2::new(0.0, 200.0) }
}

/// A player's first update on its link (full: it needs none before it).
fn update() -> ProxyToClient {
    updates().remove(0)
}

/// A player's first two updates: the full one, then one packed against it, in which an
/// entity turns, another leaves and a third comes into view; and then, handed on to
/// another server, that server's first, full and keeping the handles of both it knows.
fn updates() -> Vec<ProxyToClient> {
    let first = PlayerUpdate {
        tick: 40,
        server: SERVER,
        last_input: 3,
        inputs_applied: 3,
        you: moving(player().entity(), 500.0, 500.0),
        your_tick: Some(811),
        full: true,
        changed: vec![moving(EntityId(9), 520.0, 510.0), moving(EntityId(4), 480.0, 530.0)],
        left: vec![],
        names: vec![(EntityId(9), EntityName::from("bo").unwrap()), (EntityId(4), EntityName::from("cy").unwrap())],
        changed_handles: Vec::new(),
        left_handles: Vec::new(),
        update_every: 1,
        budget_spent: false,
        others_counted: None,
    };
    let turned = EntityState { velocity: Vec2::new(-200.0, 0.0), ..moving(EntityId(9), 520.0, 520.0) };
    let next = PlayerUpdate {
        tick: 41,
        last_input: 4,
        inputs_applied: 4,
        you: moving(player().entity(), 500.0, 510.0),
        your_tick: Some(812),
        full: false,
        changed: vec![turned, moving(EntityId(12), 600.0, 400.0)],
        left: vec![EntityId(4)],
        names: vec![(EntityId(12), EntityName::from("di").unwrap())],
        ..first.clone()
    };
    // 9 and 4 came under handles 0 and 1; 4 leaves, and 12 comes under the handle it freed.
    let next_mentions = Mentions {
        changed: vec![Mention::Known { handle: 0, last: first.changed[0], last_tick: first.tick }, Mention::New(1)],
        left: vec![1],
    };
    let handed = PlayerUpdate {
        tick: 7_000,
        server: PEER,
        full: true,
        changed: vec![
            moving(EntityId(9), 510.0, 520.0),
            moving(EntityId(12), 590.0, 410.0),
            moving(EntityId(5), 450.0, 450.0),
        ],
        left: vec![],
        names: vec![(EntityId(5), EntityName::from("ed").unwrap())],
        ..next.clone()
    };
    let handed_mentions =
        Mentions { changed: vec![Mention::Kept(0), Mention::Kept(1), Mention::New(2)], left: Vec::new() };
    let tick = tick_seconds(welcome().tick_hz);
    let mut packer = UpdatePacker::default();
    let mut packed: Vec<ProxyToClient> = [(first.clone(), Mentions::all_new(2)), (next, next_mentions)]
        .iter()
        .map(|(update, mentions)| ProxyToClient::Update(packer.pack(update, mentions, tick).expect("the sample packs")))
        .collect();
    let mut peer = UpdatePacker::after(packer.last_seq().expect("two packed"));
    packed.push(ProxyToClient::Update(peer.pack(&handed, &handed_mentions, tick).expect("the sample packs")));
    packed
}

/// `updates` as the datagrams that carry them, each after its length.
fn as_datagrams(updates: &[ProxyToClient]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for update in updates {
        let mut datagram = Vec::new();
        assert!(write_update(DATAGRAM_TAG, 0, &frame(update), &mut datagram), "a sample update fits a datagram");
        bytes.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&datagram);
    }
    bytes
}

/// A bind, and two datagrams of inputs, the second repeating the first's input (it was
/// not acknowledged yet), as a player sends them, each after its length.
fn inputs_datagrams() -> Vec<u8> {
    let first = Input { seq: 5, keys: Keys::UP | Keys::LEFT, tick: 812 };
    let second = Input { seq: 6, keys: Keys::empty(), tick: 815 };
    let inputs = |inputs: &[Input]| {
        let mut datagram = Vec::new();
        write_inputs(DATAGRAM_TAG, inputs, &mut datagram).expect("sample inputs encode");
        datagram
    };
    let mut bytes = Vec::new();
    for datagram in [DATAGRAM_TAG.0.to_vec(), inputs(&[first]), inputs(&[first, second])] {
        bytes.extend_from_slice(&(datagram.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&datagram);
    }
    bytes
}

/// A valid frame of every message (every variant) of every direction, which its gate
/// accepts; and a player's first two updates, the second packed against the first.
pub fn samples() -> Vec<(Direction, Vec<u8>)> {
    let user = player();
    let input = Input { seq: 5, keys: Keys::UP | Keys::LEFT, tick: 812 };
    // Server 2's region spans (1024, 0) to (2048, 1024): cell (4, 0) is its corner by server 1.
    let cell = CellId { x: 4, y: 0 };
    let ghost = moving(EntityId(11), 1030.0, 20.0);
    let ticket = Some(SessionTicket(vec![9; 48]));
    let near = ChatChannel::Near;
    let line =
        ChatLine { speaker: EntityId(11), name: "cy".into(), channel: ChatChannel::Everyone, text: "hi all".into() };
    vec![
        (Direction::Hello, frame(&Hello::new(Role::Client))),
        (Direction::Join, frame(&JoinRequest::sign(&Identity::from_secret([7; 32]), &join_challenge(), "ada", None))),
        (Direction::Join, frame(&JoinRequest::sign(&Identity::from_secret([7; 32]), &join_challenge(), "ada", ticket))),
        (Direction::Hello, frame(&Hello::new(Role::Proxy(PROXY)))),
        (Direction::Hello, frame(&Hello::new(Role::Server(PEER)))),
        (Direction::ClientToProxy, frame(&ClientToProxy::Input(input))),
        (Direction::ClientToProxy, frame(&ClientToProxy::Chat { channel: near, text: " hi\tthere\u{202e} ".into() })),
        (Direction::ClientToProxy, frame(&ClientToProxy::Resync)),
        (Direction::ClientToProxy, frame(&ClientToProxy::NoDatagrams)),
        (Direction::ProxyToClient, frame(&ProxyToClient::Welcome(welcome()))),
        (Direction::ProxyToClient, frame(&update())),
        (Direction::ProxyToClient, updates().iter().flat_map(frame).collect()),
        (Direction::ProxyToClient, frame(&ProxyToClient::Disconnect { reason: "full".into() })),
        (Direction::ProxyToClient, frame(&ProxyToClient::RegionOffline)),
        (Direction::ProxyToClient, frame(&ProxyToClient::SessionGone)),
        (Direction::ProxyToClient, frame(&ProxyToClient::NameRefused { reason: "taken".into() })),
        (Direction::ProxyToClient, frame(&ProxyToClient::Chat(line.clone()))),
        (Direction::ProxyToClient, frame(&ProxyToClient::ChatThrottled)),
        (Direction::UpdateDatagrams, as_datagrams(&[update()])),
        (Direction::UpdateDatagrams, as_datagrams(&updates())),
        (Direction::InputDatagrams, inputs_datagrams()),
        (
            Direction::ProxyToServer,
            frame(&ProxyToServer::Login {
                user,
                name: EntityName::from("ada").unwrap(),
                position: Vec2::ONE,
                last_input: 0,
            }),
        ),
        (Direction::ProxyToServer, frame(&ProxyToServer::Input { user, input })),
        (Direction::ProxyToServer, frame(&ProxyToServer::Logout { user })),
        (Direction::ProxyToServer, frame(&ProxyToServer::Resume { user })),
        (Direction::ProxyToServer, frame(&ProxyToServer::Supersede { user })),
        (Direction::ProxyToServer, frame(&ProxyToServer::Resync { user })),
        (Direction::ProxyToServer, frame(&ProxyToServer::Chat { user, channel: near, text: "hi there".into() })),
        (
            Direction::ServerToProxy,
            frame(&ServerToProxy::Updates {
                tick: 40,
                frames: vec![PlayerFrame { user, last_input: 3, full: true, frame: Bytes::from(frame(&update())) }],
            }),
        ),
        (Direction::ServerToProxy, frame(&ServerToProxy::Owner { user, server: SERVER, epoch: 2 })),
        (Direction::ServerToProxy, frame(&ServerToProxy::Kick { user, reason: "bye".into() })),
        (Direction::Peer, frame(&PeerMessage::Subscribe(vec![CellId { x: 3, y: 0 }]))),
        (Direction::Peer, frame(&PeerMessage::Unsubscribe(vec![CellId { x: 0, y: 3 }]))),
        (
            Direction::Peer,
            frame(&PeerMessage::Cells {
                at: 1_780_000_000_300_000,
                deltas: vec![CellDelta {
                    cell,
                    full: true,
                    entered: vec![GhostEntry { state: ghost, name: EntityName::from("cy").unwrap() }],
                    moved: vec![moving(EntityId(12), 1100.0, 100.0)],
                    left: vec![EntityId(13)],
                }],
            }),
        ),
        (
            Direction::Peer,
            frame(&PeerMessage::Handoff(HandoffState {
                user,
                name: EntityName::from("ada").unwrap(),
                position: Vec2::new(1000.0, 40.0),
                velocity: Vec2::new(-200.0, 0.0),
                keys: Keys::LEFT,
                last_input: 7,
                inputs_applied: 7,
                pending: vec![
                    Input { seq: 9, keys: Keys::UP, tick: 40 },
                    Input { seq: 10, keys: Keys::empty(), tick: 42 },
                ],
                clock: Some(HandedClock {
                    your_tick: 39,
                    next_tick_at: 1_780_000_000_100_000,
                    settling_inputs: 0,
                    catch_up_allowed: 0,
                }),
                trail: vec![(1, Vec2::new(1010.0, 40.0)), (0, Vec2::new(1005.0, 40.0))],
                proxy: PROXY,
                epoch: 3,
                view: Some(HandedView { seq: 17, handles: vec![(EntityId(77), 1)] }),
            })),
        ),
        (Direction::Peer, frame(&PeerMessage::ForwardInput { user, input })),
        (Direction::Peer, frame(&PeerMessage::ForwardLogout { user })),
        (Direction::Peer, frame(&PeerMessage::HandoffAccepted { user: UserId(8) })),
        (Direction::Peer, frame(&PeerMessage::HandoffDeclined { user: UserId(8) })),
        (Direction::ServerToProxy, frame(&ServerToProxy::Adrift { user: UserId(8), epoch: 3 })),
        (Direction::ServerToProxy, frame(&ServerToProxy::Chat { line: line.clone(), to: vec![user, UserId(8)] })),
        (Direction::Peer, frame(&PeerMessage::Chat { line, at: Vec2::new(1030.0, 20.0) })),
        (Direction::Peer, frame(&PeerMessage::ForwardChat { user, channel: near, text: "hi there".into() })),
    ]
}

/// One to four random edits of `bytes`.
fn mutate(rng: &mut SmallRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..=4) {
        let at = rng.random_range(0..=bytes.len());
        match rng.random_range(0..8) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.random_range(0..8),
            1 if at < bytes.len() => {
                bytes[at] = [0x00, 0x01, 0x7f, 0x80, 0xfb, 0xfc, 0xfd, 0xff][rng.random_range(0..8)]
            }
            2 => bytes.insert(at, rng.random()),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            4 => bytes.truncate(at),
            5 => {
                // A stretch repeated, as a list grown by hand.
                let end = rng.random_range(at..=bytes.len().min(at + 16));
                let stretch = bytes[at..end].to_vec();
                bytes.splice(at..at, stretch);
            }
            6 if bytes.len() >= 4 => {
                // The length prefix rewritten: short, long, or absurd.
                let len = [0, 1, bytes.len() as u32, rng.random_range(0..1 << 21), u32::MAX][rng.random_range(0..5)];
                bytes[..4].copy_from_slice(&len.to_be_bytes());
            }
            _ => {
                // Another frame after this one, so a link reads on.
                let copy = bytes.clone();
                bytes.extend_from_slice(&copy);
            }
        }
    }
    bytes
}

#[test]
fn every_sample_passes_its_gate_unmutated() {
    let receiver = Receiver::default();
    for (direction, bytes) in samples() {
        let received = receiver.receive(direction, &bytes);
        let whole = received.decoded > 0 && received.accepted == received.decoded && received.wire_error.is_none();
        assert!(whole, "{direction:?}: {received:?}");
    }
}

#[test]
fn mutated_frames_of_every_message_never_panic_and_fail_with_typed_errors() {
    let receiver = Receiver::default();
    let mut rng = SmallRng::seed_from_u64(0x7e55e2a);
    for direction in Direction::ALL {
        let (mut decoded, mut accepted, mut refused) = (0, 0, 0);
        for (_, sample) in samples().into_iter().filter(|(d, _)| *d == direction) {
            for _ in 0..MUTATIONS_PER_SAMPLE {
                let received = receiver.receive(direction, &mutate(&mut rng, sample.clone()));
                decoded += received.decoded;
                accepted += received.accepted;
                refused += usize::from(received.violation.is_some());
                // Decoding from memory does no I/O: anything else is the bytes' fault, and typed.
                assert!(!matches!(received.wire_error, Some(WireError::Io(_))), "{direction:?}: {received:?}");
            }
        }
        println!("{direction:?}: {decoded} messages decoded, {accepted} accepted, {refused} refused by the gate");
        assert!(accepted > 0, "{direction:?}: no mutation survived decoding and the gate");
        if direction != Direction::Hello {
            assert!(refused > 0, "{direction:?}: no mutation reached the gate and was refused by it");
        }
    }
}
