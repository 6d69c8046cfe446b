//! Handoff, tick by tick on the in-process harness: a player walks across every border
//! of the default map, diagonally through the four-way corner too, and never notices;
//! input that reaches the old owner is forwarded and applied once, at its tick. And every way a
//! handoff can go wrong ends with the player playing on exactly one server, its input
//! applied once, never frozen and never a zombie: the confirmation lost with the peer
//! link, the player itself lost in flight with it, and the new owner's link to the
//! player's proxy down at that moment. (A peer that dies without closing its socket is
//! these same losses once the link's silence limit has run out.) A player handed on
//! keeps the handles it knows others by, and one whose old server's last update came
//! too late asks for a full update and plays on.

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
    let (mut updates, mut ticks_untold) = (cluster.player(user).view.updates, 0);
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
            // A handoff may cost the player a tick of walking, never a jump. (Updates
            // come a few ticks apart while the player walks straight.)
            ticks_untold += 1;
            if view.updates == updates {
                return;
            }
            let moved = me.distance(last_position);
            let most = (ticks_untold + 1) as f32 * ONE_TICK_OF_WALKING + 1e-3;
            assert!(moved <= most, "position jumped {moved} in {ticks_untold} ticks from {last_position} to {me}");
            (last_position, updates, ticks_untold) = (me, view.updates, 0);
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

#[test]
fn a_player_handed_on_is_told_only_the_names_of_those_new_to_it() {
    let mut cluster = Stepper::default_cluster();
    // Six stand about the border between servers 1 and 2, three on each side; one walks across.
    let standing: Vec<UserId> = (0..6)
        .map(|i| {
            cluster.join(i % 2, &format!("stander{i}"), Vec2::new(960.0 + 30.0 * i as f32, 500.0 + 7.0 * i as f32))
        })
        .collect();
    let user = cluster.join(0, "traveller", Vec2::new(900.0, 520.0));
    cluster.step_until("the traveller sees all six", 40, |cluster| {
        standing.iter().all(|&other| cluster.player(user).view.name(other.entity()).is_some())
    });
    cluster.walk_to(user, Vec2::new(1150.0, 520.0), |_| {});
    let player = cluster.player(user);
    assert_eq!(player.view.server, Some(ServerId(2)));
    let [joined, handed] = player.full_updates[..] else {
        panic!("one full update as it joined, one as it was handed on: {:?}", player.full_updates)
    };
    assert_eq!((handed.server, handed.others, handed.named), (ServerId(2), 6, 0), "{handed:?}");
    assert!(handed.bytes * 2 < joined.bytes, "{handed:?} against {joined:?}");
    for (i, other) in standing.iter().enumerate() {
        assert_eq!(player.view.name(other.entity()).map(|name| name.as_str()), Some(format!("stander{i}").as_str()));
    }
}

#[test]
fn a_player_whose_old_servers_last_update_came_too_late_asks_for_a_full_one_and_plays_on() {
    let mut cluster = Stepper::default_cluster();
    let standing: Vec<UserId> = (0..3)
        .map(|i| cluster.join(i % 2, &format!("bystander{i}"), Vec2::new(990.0 + 40.0 * i as f32, 540.0)))
        .collect();
    let user = cluster.join(0, "traveller", Vec2::new(900.0, 500.0));
    let sees_everyone =
        |cluster: &Stepper| standing.iter().all(|&other| cluster.player(user).view.name(other.entity()).is_some());
    cluster.step_until("the traveller sees all three", 40, sees_everyone);
    cluster.walk_to(user, Vec2::new(1000.0, 500.0), |_| {});
    // Server 1's last updates reach the proxy after server 2's first, which keeps their
    // handles: the proxy drops them (server 1 no longer owns the player).
    cluster.hold_to_proxies(ServerId(1), true);
    cluster.press(user, Keys::RIGHT);
    cluster.step_until("the player asking for a full update", 60, |cluster| cluster.player(user).asked_for_full == 1);
    assert_eq!(cluster.owners(user), vec![ServerId(2)]);
    cluster.hold_to_proxies(ServerId(1), false);
    cluster.walk_to(user, Vec2::new(1200.0, 500.0), |_| {});

    let player = cluster.player(user);
    let Some(&last) = player.full_updates.last() else { panic!("no full update") };
    assert_eq!((last.server, last.named), (ServerId(2), last.others), "a plain full update, naming everyone");
    assert!(sees_everyone(&cluster), "everyone still named");
    let player = cluster.player(user);
    assert_eq!((player.view.server, player.view.handoffs, player.asked_for_full), (Some(ServerId(2)), 1, 1));
    assert_eq!(player.view.last_input, player.last_sent(), "every input applied");
    assert_eq!(player.view.inputs_applied, player.view.last_input, "no input applied twice");
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
    // Passed on as it reached server 1, it reaches server 2 in the very frame it would
    // have, sent there straight.
    cluster.step();
    assert!(cluster.has_input(ServerId(2), user, up), "server 2 has the input a frame after it was sent");

    cluster.step_until("the forwarded input applied", 10, |cluster| cluster.player(user).view.last_input >= up);
    assert_eq!(cluster.owners(user), vec![ServerId(2)]);
    cluster.step_until("the player walking up", 10, |cluster| cluster.player(user).position().y > y + 5.0);
    let player = cluster.player(user);
    assert_eq!(player.view.server, Some(ServerId(2)));
    assert_eq!(player.view.inputs_applied, player.view.last_input, "the forwarded input was applied exactly once");
    // And at the tick it was pressed for, as the player predicted.
    assert!(player.largest_correction < 1e-3, "the player was corrected by {}", player.largest_correction);
}

#[test]
fn input_that_reaches_the_old_owner_of_a_player_given_back_is_applied_once_there() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "bounced", Vec2::new(900.0, 500.0));
    cluster.cut_proxy_link(ServerId(2), 0);
    step_into_a_handoff(&mut cluster, user);
    // Server 1 passes this on to server 2 at once, and keeps a copy: server 2, cut off
    // from the player's proxy, gives the player back, and the copy is applied here.
    let up = cluster.press(user, Keys::UP);
    let y = cluster.player(user).position().y;
    cluster.step_until("the input applied", 10, |cluster| cluster.player(user).view.last_input >= up);
    assert_eq!(cluster.owners(user), vec![ServerId(1)]);
    cluster.step_until("the player walking up", 10, |cluster| cluster.player(user).position().y > y + 5.0);
    let view = &cluster.player(user).view;
    assert_eq!(view.server, Some(ServerId(1)));
    assert_eq!(view.inputs_applied, view.last_input, "the input was applied exactly once");
}

#[test]
fn input_for_a_player_back_on_its_old_owner_another_way_stays_there() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "returner", Vec2::new(900.0, 500.0));
    cluster.walk_to(user, Vec2::new(1100.0, 500.0), |_| {});
    assert_eq!(cluster.owners(user), vec![ServerId(2)]);
    // Server 2 loses the player's proxy, which logs the player in again where server 1
    // owns: server 1 has it back, with the handoff's departure still on its books.
    cluster.cut_proxy_link(ServerId(2), 0);
    cluster.step_until("the player told its region is offline", 10, |cluster| cluster.player(user).view.region_offline);
    cluster.log_in_again(user, Vec2::new(900.0, 500.0));
    cluster.step_until("the player playing on server 1", 10, |cluster| {
        let view = &cluster.player(user).view;
        view.server == Some(ServerId(1)) && !view.region_offline
    });
    // The first input to reach server 1 shows its departure to be over; none after it
    // goes on to server 2, where the player's old copy waits.
    cluster.press(user, Keys::UP);
    cluster.step();
    let second = cluster.press(user, Keys::DOWN);
    cluster.step_until("the input applied", 10, |cluster| cluster.player(user).view.last_input >= second);
    assert!(!cluster.has_input(ServerId(2), user, second), "server 2 was sent input for a player back on server 1");
    let view = &cluster.player(user).view;
    assert_eq!(view.server, Some(ServerId(1)));
    assert_eq!(view.inputs_applied, view.last_input, "every input applied once");
}

/// Steps until `user` plays on `server` alone, told nothing went wrong; at every tick on
/// the way, no two servers simulate it.
fn step_until_playing_on(cluster: &mut Stepper, user: UserId, server: ServerId, max_ticks: u64) {
    cluster.step_until("the player playing on", max_ticks, |cluster| {
        assert!(cluster.owners(user).len() <= 1, "two servers simulate the player: {:?}", cluster.owners(user));
        let view = &cluster.player(user).view;
        cluster.owners(user) == vec![server] && view.server == Some(server) && !view.region_offline
    });
    assert_eq!(cluster.player(user).disconnected, None, "nobody was dropped");
}

/// The player's next input is applied once, where it plays.
fn plays_on_with_input_applied_once(cluster: &mut Stepper, user: UserId) {
    let up = cluster.press(user, Keys::UP);
    cluster.step_until("the input applied", 10, |cluster| cluster.player(user).view.last_input >= up);
    let view = &cluster.player(user).view;
    assert_eq!(view.inputs_applied, view.last_input, "every input applied exactly once");
}

#[test]
fn a_handoff_whose_confirmation_is_lost_with_the_peer_link_plays_on_at_the_new_owner() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "unlucky", Vec2::new(900.0, 500.0));
    step_into_a_handoff(&mut cluster, user);
    // The handoff reached server 2, but its confirmation never reaches server 1: server
    // 1 says the player may be adrift, server 2 says it has it.
    cluster.cut_peers(ServerId(1), ServerId(2));
    step_until_playing_on(&mut cluster, user, ServerId(2), 10);
    plays_on_with_input_applied_once(&mut cluster, user);
}

#[test]
fn a_player_lost_in_flight_with_the_peer_link_waits_then_plays_on_where_it_was_saved() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "unlucky", Vec2::new(900.0, 500.0));
    let bystander = cluster.join(1, "bystander", Vec2::new(300.0, 300.0));
    cluster.walk_to(user, Vec2::new(1000.0, 500.0), |_| {});
    cluster.press(user, Keys::RIGHT);
    // Step without carrying what the servers send, until server 1 hands the player
    // off: the handoff is still on the link when the link is cut.
    for _ in 0..20 {
        cluster.carry();
        cluster.run_servers();
        if cluster.owners(user).is_empty() {
            break;
        }
    }
    assert!(cluster.owners(user).is_empty(), "server 1 let go");
    cluster.cut_peers(ServerId(1), ServerId(2));

    cluster.step_until("the player told its region is offline", 10, |cluster| cluster.player(user).view.region_offline);
    for _ in 0..20 {
        cluster.step();
        assert!(cluster.owners(user).is_empty(), "nobody simulates a player nobody handed over");
        assert_eq!(cluster.player(user).disconnected, None, "the player waits, connected");
    }
    // Its proxy finds it where server 1 saved it as it let go, which server 2 owns.
    let saved = cluster.player(user).position();
    cluster.log_in_again(user, saved);
    step_until_playing_on(&mut cluster, user, ServerId(2), 10);
    plays_on_with_input_applied_once(&mut cluster, user);
    // Everyone else played on.
    plays_on_with_input_applied_once(&mut cluster, bystander);
    assert_eq!(cluster.owned_players(), 2);
}

#[test]
fn a_handoff_to_a_server_cut_off_from_the_players_proxy_is_given_back_and_tried_again() {
    let mut cluster = Stepper::default_cluster();
    let user = cluster.join(0, "unlucky", Vec2::new(900.0, 500.0));
    cluster.walk_to(user, Vec2::new(1000.0, 500.0), |_| {});
    cluster.cut_proxy_link(ServerId(2), 0);
    cluster.press(user, Keys::RIGHT);
    // Server 2 cannot reach the player's proxy: it gives the player back, and server 1
    // keeps simulating it past its border meanwhile, its input applied.
    for _ in 0..60 {
        cluster.step();
        assert!(cluster.owners(user).len() <= 1, "two servers simulate the player");
    }
    assert_eq!(cluster.owners(user), vec![ServerId(1)]);
    assert!(cluster.player(user).position().x > 1000.0 + 20.0 * ONE_TICK_OF_WALKING, "it walked on");
    plays_on_with_input_applied_once(&mut cluster, user);
    // The link is back: the next try goes through.
    cluster.link_proxy(ServerId(2), 0);
    step_until_playing_on(&mut cluster, user, ServerId(2), 40);
    plays_on_with_input_applied_once(&mut cluster, user);
}
