//! Peers and players held to what only the receiver's state shows, tick by tick on the
//! in-process harness: a handoff of a player the receiver already owns closes the link;
//! a peer forwards input and logouts only for players it handed over, and moves only the
//! ghosts it published; what the gate refuses (a handoff with input 0 pending) cuts the
//! link and nothing else; a player's input 0 is refused by its proxy, never reaching the
//! link every player of that proxy shares. After each, everyone else plays on.

use crate::stepper::Stepper;
use tessera_proxy::routing::RouteError;
use tessera_shared::Vec2;
use tessera_shared::components::{Keys, WALK_SPEED};
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::protocol::verify::{HandoffProblem, Violation};
use tessera_shared::protocol::{CellDelta, EntityName, EntityState, HandoffState, Input, PeerMessage};
use tessera_shared::region_map::CellId;

/// `user` walks up: its input is applied and it moves.
fn assert_plays_on(cluster: &mut Stepper, user: UserId) {
    let keys = if cluster.player(user).keys == Keys::UP { Keys::DOWN } else { Keys::UP };
    let seq = cluster.press(user, keys);
    cluster.step_until("the input applied", 10, |cluster| cluster.player(user).view.last_input >= seq);
    let y = cluster.player(user).position().y;
    cluster.step_until("the player moving", 10, |cluster| (cluster.player(user).position().y - y).abs() > 5.0);
    cluster.press(user, Keys::empty());
}

/// A handoff of `user`, standing at `position`, that the gate accepts.
fn handoff(user: UserId, position: Vec2, pending: Vec<Input>) -> PeerMessage {
    PeerMessage::Handoff(HandoffState {
        user,
        name: EntityName::from("double").unwrap(),
        position,
        velocity: Vec2::ZERO,
        keys: Keys::empty(),
        last_input: 0,
        inputs_applied: 0,
        pending,
        clock: None,
        trail: Vec::new(),
        proxy: ProxyId(1),
        epoch: 1,
        view: None,
    })
}

#[test]
fn a_handoff_of_a_player_already_here_closes_the_link_and_the_player_plays_on() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "owned", Vec2::new(300.0, 300.0));
    // Server 2 hands over a player that server 1 simulates: the gate cannot know, server 1 does.
    cluster.send_as_peer(ServerId(2), ServerId(1), handoff(user, Vec2::new(310.0, 300.0), vec![])).unwrap();
    cluster.step_until("the link to server 2 closed", 5, |cluster| !cluster.linked(ServerId(1), ServerId(2)));
    assert_eq!(cluster.owners(user), vec![ServerId(1)]);
    assert_eq!(cluster.player(user).position(), Vec2::new(300.0, 300.0), "the forged state was not taken");
    assert_plays_on(&mut cluster, user);

    // Redialled, the link carries handoffs again.
    cluster.link_peers(ServerId(1), ServerId(2));
    cluster.walk_to(user, Vec2::new(1100.0, 300.0), |_| {});
    assert_eq!(cluster.owners(user), vec![ServerId(2)]);
}

#[test]
fn a_peer_forwards_input_and_logouts_only_for_players_it_handed_over() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "steered", Vec2::new(300.0, 300.0));
    let at = cluster.player(user).position();
    // Server 2 never had the player: its forwarded input and logout are not believed.
    let input = Input { seq: 1, keys: Keys::RIGHT, tick: 0 };
    cluster.send_as_peer(ServerId(2), ServerId(1), PeerMessage::ForwardInput { user, input }).unwrap();
    cluster.send_as_peer(ServerId(3), ServerId(1), PeerMessage::ForwardLogout { user }).unwrap();
    for _ in 0..5 {
        cluster.step();
    }
    assert_eq!(cluster.owners(user), vec![ServerId(1)], "not logged out");
    assert_eq!((cluster.player(user).view.last_input, cluster.player(user).position()), (0, at), "not steered");
    assert_plays_on(&mut cluster, user);
}

#[test]
fn a_peer_moves_only_the_ghosts_it_published() {
    let mut cluster = Stepper::default_cluster();
    // By the four-way corner server 1 subscribes to cells of servers 2, 3 and 4.
    cluster.join(0, "watcher", Vec2::new(1000.0, 1000.0));
    let walker = cluster.join(1, "walker", Vec2::new(1050.0, 900.0));
    let corner_of_three = CellId { x: 3, y: 4 };
    cluster.step_until("server 1 watching both", 10, |cluster| {
        cluster.ghost_position(ServerId(1), walker.entity()).is_some()
            && cluster.subscribed_to(ServerId(1), ServerId(3), corner_of_three)
    });
    // Server 3 says the walker (server 2's player) moved into one of its own cells.
    let teleport =
        EntityState { id: walker.entity(), position: Vec2::new(900.0, 1100.0), velocity: Vec2::Y * WALK_SPEED };
    let delta = CellDelta { cell: corner_of_three, full: false, entered: vec![], moved: vec![teleport], left: vec![] };
    let cells = PeerMessage::Cells { at: 1_780_000_000_000_000, deltas: vec![delta] };
    cluster.send_as_peer(ServerId(3), ServerId(1), cells).unwrap();
    for _ in 0..3 {
        cluster.step();
        let ghost = cluster.ghost_position(ServerId(1), walker.entity()).expect("still a ghost of server 2's");
        assert!(ghost.distance(Vec2::new(1050.0, 900.0)) < 1.0, "the ghost stays where server 2 put it: {ghost}");
    }
}

#[test]
fn a_handoff_with_input_zero_pending_is_refused_at_the_gate_and_nothing_else_stops() {
    let mut cluster = Stepper::default_cluster();
    let bystander = cluster.join(0, "bystander", Vec2::new(300.0, 300.0));
    let stranger = UserId(999);
    // Taken over, input 0 would have sent the gap skip below zero: a panic in a debug build.
    let forged = handoff(stranger, Vec2::new(310.0, 300.0), vec![Input { seq: 0, keys: Keys::UP, tick: 0 }]);
    let refused = cluster.send_as_peer(ServerId(2), ServerId(1), forged);
    let problem = HandoffProblem::PendingAlreadyApplied { seq: 0, last_input: 0 };
    assert_eq!(refused, Err(Violation::BadHandoff { user: stranger, problem }));
    assert!(!cluster.linked(ServerId(1), ServerId(2)), "the link that carried it is cut");
    for _ in 0..50 {
        cluster.step();
    }
    assert!(cluster.owners(stranger).is_empty());
    assert_plays_on(&mut cluster, bystander);
}

#[test]
fn a_players_input_zero_is_refused_by_its_proxy_and_its_neighbours_play_on() {
    let mut cluster = Stepper::default_cluster();
    let culprit = cluster.join(0, "culprit", Vec2::new(300.0, 300.0));
    let neighbour = cluster.join(0, "neighbour", Vec2::new(350.0, 300.0));
    let refused = cluster.send_input(culprit, Input { seq: 0, keys: Keys::LEFT, tick: 0 });
    assert_eq!(refused, Err(RouteError::Violation(Violation::ZeroSequence { user: culprit })));
    // Nothing reached server 1, whose link to the proxy carries both players.
    assert_plays_on(&mut cluster, neighbour);
    assert_plays_on(&mut cluster, culprit);
    assert_eq!(cluster.owned_players(), 2);
}
