//! Handoff, tick by tick on the in-process harness: a player walks across every border
//! of the default map, diagonally through the four-way corner too, and never notices;
//! input that reaches the old owner is forwarded and applied once; a peer lost before
//! it confirmed a handoff leaves the player told to rejoin, and simulated nowhere.

use crate::stepper::{Stepper, centre_of};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::{ServerId, UserId};

/// A player's most movement in one tick: walking speed (200 units/s) at 20 Hz.
const ONE_TICK_OF_WALKING: f32 = 10.0;

#[test]
fn walking_across_every_border_hands_off_seamlessly() {
    let mut cluster = Stepper::default_cluster();
    let map = cluster.map.clone();
    let tether = cluster.config.simulation.tether;
    let user = cluster.join(0, "traveller", Vec2::new(1000.0, 1000.0));
    let [one, two, three, four] = [1, 2, 3, 4].map(|id| centre_of(&map, ServerId(id)));
    // Around the square through every border, then diagonally through the corner, both ways.
    let route = [one, two, four, three, one, four, two, three];

    let mut owners = vec![cluster.player(user).view.server.unwrap()];
    let mut last_position = cluster.player(user).position();
    let mut ticks_in_flight = 0;
    for target in route {
        cluster.walk_to(user, target, |cluster| {
            let simulating = cluster.owners(user);
            assert!(simulating.len() <= 1, "{simulating:?} all simulate the one player");
            // Between the old owner letting go and the new one taking over: one tick at most.
            ticks_in_flight = if simulating.is_empty() { ticks_in_flight + 1 } else { 0 };
            assert!(ticks_in_flight <= 1, "the player was simulated nowhere for {ticks_in_flight} ticks");
            let view = &cluster.player(user).view;
            let (me, server) = (view.me.unwrap().position, view.server.unwrap());
            assert!(map.within_tether(server, me, tether), "{server} simulates the player at {me}, beyond its tether");
            // A handoff may cost the player a tick of walking, never a jump.
            let moved = me.distance(last_position);
            assert!(moved <= 2.0 * ONE_TICK_OF_WALKING + 1e-3, "position jumped {moved} from {last_position} to {me}");
            last_position = me;
            if owners.last() != Some(&server) {
                owners.push(server);
            }
        });
        assert_eq!(cluster.player(user).view.server, map.owner_at(target), "owned by the server of {target}");
    }

    let visited: Vec<u16> = owners.iter().map(|s| s.0).collect();
    assert_eq!(visited, vec![1, 2, 4, 3, 1, 4, 2, 3], "one handoff per border crossed, through the corner too");
    let player = cluster.player(user);
    assert_eq!(player.view.handoffs as usize, visited.len() - 1);
    assert_eq!(player.view.last_input, player.last_sent(), "every input applied");
    assert_eq!(player.view.inputs_applied, player.view.last_input, "no input applied twice");
    assert_eq!(cluster.owned_players(), 1);
}

/// Walks `user` up to the border between servers 1 and 2, then right across it, and
/// steps to the tick when server 1 has let go of the player and server 2 has not yet
/// taken it: the handoff is in flight.
fn step_into_a_handoff(cluster: &mut Stepper, user: UserId) {
    cluster.walk_to(user, Vec2::new(1000.0, 500.0), |_| {});
    assert_eq!(cluster.owners(user), vec![ServerId(1)]);
    cluster.press(user, Keys::RIGHT);
    cluster.step_until("server 1 handing the player off", 20, |cluster| cluster.owners(user).is_empty());
}

#[test]
fn input_that_reaches_the_old_owner_is_forwarded_and_applied_once() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "crosser", Vec2::new(900.0, 500.0));
    step_into_a_handoff(&mut cluster, user);
    // The proxy has not heard of the handoff yet: this goes to server 1.
    assert_eq!(cluster.player(user).view.server, Some(ServerId(1)));
    let up = cluster.press(user, Keys::UP);
    let y = cluster.player(user).position().y;

    cluster.step_until("the forwarded input applied", 10, |cluster| cluster.player(user).view.last_input >= up);
    assert_eq!(cluster.owners(user), vec![ServerId(2)]);
    cluster.step_until("the player walking up", 10, |cluster| cluster.player(user).position().y > y + 5.0);
    let view = &cluster.player(user).view;
    assert_eq!(view.server, Some(ServerId(2)));
    assert_eq!(view.inputs_applied, view.last_input, "the forwarded input was applied exactly once");
}

#[test]
fn a_peer_lost_before_confirming_a_handoff_leaves_the_player_told_to_rejoin_and_nowhere() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "unlucky", Vec2::new(900.0, 500.0));
    let bystander = cluster.join(1, "bystander", Vec2::new(300.0, 300.0));
    step_into_a_handoff(&mut cluster, user);
    // The handoff reached server 2, but its confirmation never reaches server 1.
    cluster.cut_peers(ServerId(1), ServerId(2));

    cluster.step_until("the player told to rejoin", 10, |cluster| cluster.player(user).disconnected.is_some());
    let reason = cluster.player(user).disconnected.clone().unwrap();
    assert!(reason.contains("rejoin"), "the player is told what to do: {reason}");
    cluster.step_until("the player simulated nowhere", 10, |cluster| cluster.owners(user).is_empty());
    for _ in 0..20 {
        cluster.step();
        assert!(cluster.owners(user).is_empty(), "no server keeps a player nobody controls");
    }
    // Everyone else plays on.
    let seq = cluster.press(bystander, Keys::UP);
    cluster.step_until("the bystander's input applied", 10, |cluster| cluster.player(bystander).view.last_input >= seq);
    assert_eq!(cluster.owned_players(), 1);
}
