//! A key press that reaches its server after its tick, tick by tick on the [`stepper`]:
//! the server walks the ticks it walked without the press again with it, so the player
//! ends where it predicted itself, as one whose press came in time does; and so does
//! the player's next owner, for a press late for a tick its last owner walked.

use crate::stepper::{Stepper, centre_of};
use tessera_shared::Vec2;
use tessera_shared::components::Keys;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::protocol::Input;

#[test]
fn a_key_press_that_comes_late_is_walked_from_its_own_tick() {
    let mut stepper = Stepper::default_cluster();
    let centre = centre_of(&stepper.map, ServerId(1));
    // Two players a little apart press the same keys in the same ticks; only the late
    // one's turn reaches the server four ticks after it was pressed.
    let (on_time, late) =
        (stepper.join(0, "on-time", centre), stepper.join(1, "late", centre + Vec2::new(0.0, -200.0)));
    let players = [on_time, late];
    stepper.step_until("both in the world", 10, |s| players.iter().all(|&user| s.player(user).view.me.is_some()));
    let start = players.map(|user| stepper.player(user).position());
    let applied = |s: &Stepper, user: UserId| s.player(user).view.last_input;

    let right = players.map(|user| stepper.press(user, Keys::RIGHT));
    stepper.step_until("both walking right", 10, |s| {
        players.iter().zip(right).all(|(&user, seq)| applied(s, user) >= seq)
    });
    for _ in 0..5 {
        stepper.step();
    }
    let up = stepper.press(on_time, Keys::UP);
    let late_up = stepper.press_unsent(late, Keys::UP);
    for _ in 0..4 {
        stepper.step();
    }
    let walked_past = stepper.player(late).view.your_tick.is_some_and(|yours| yours >= late_up.tick);
    assert!(walked_past, "the server walked the late player's tick {} without its press", late_up.tick);
    assert!(applied(&stepper, on_time) >= up, "the press in time applied at its tick");
    let walked = send_late_and_stop(&mut stepper, players, late_up, start);
    assert!(walked[0].x > 50.0 && walked[0].y > 50.0, "right, then up: {}", walked[0]);
}

/// Sends the second player's held press `late_up`, lets both walk on a while and stop,
/// and says how far each walked from `start`: the same.
fn send_late_and_stop(stepper: &mut Stepper, players: [UserId; 2], late_up: Input, start: [Vec2; 2]) -> [Vec2; 2] {
    stepper.send_input(players[1], late_up).expect("the late player's proxy routes its input");
    for _ in 0..10 {
        stepper.step();
    }
    let stops = players.map(|user| stepper.press(user, Keys::empty()));
    stepper.step_until("both stopped", 20, |s| {
        players.iter().zip(stops).all(|(&user, seq)| s.player(user).view.last_input >= seq)
    });
    let walked = [0, 1].map(|i| stepper.player(players[i]).position() - start[i]);
    assert!(walked[1].distance(walked[0]) < 1e-3, "walked {} where the press in time walked {}", walked[1], walked[0]);
    walked
}

#[test]
fn a_key_press_that_comes_late_to_a_player_s_next_owner_is_walked_from_its_own_tick() {
    let mut stepper = Stepper::default_cluster();
    let border = stepper.config.world.region_size;
    let tether = stepper.config.simulation.tether;
    // Two walk right side by side across server 1's border, and turn up just past it,
    // within its tether. The late one's turn reaches its server only once the walk on
    // without it has taken the player beyond the tether, and handed it to server 2.
    let (on_time, late) = (
        stepper.join(0, "on-time", Vec2::new(border - 40.0, 500.0)),
        stepper.join(1, "late", Vec2::new(border - 40.0, 300.0)),
    );
    let players = [on_time, late];
    let start = players.map(|user| stepper.player(user).position());
    let applied = |s: &Stepper, user: UserId| s.player(user).view.last_input;
    let right = players.map(|user| stepper.press(user, Keys::RIGHT));
    stepper.step_until("both past the border", 20, |s| {
        players.iter().zip(right).all(|(&user, seq)| applied(s, user) >= seq && s.player(user).position().x > border)
    });
    let up = stepper.press(on_time, Keys::UP);
    let late_up = stepper.press_unsent(late, Keys::UP);
    stepper.step_until("the late one handed on without its turn", 10, |s| s.owners(late) == [ServerId(2)]);
    assert!(stepper.player(on_time).position().x < border + tether, "the one that turned in time stays");
    assert!(applied(&stepper, on_time) >= up, "the press in time applied at its tick");
    let walked = send_late_and_stop(&mut stepper, players, late_up, start);
    assert!(walked[0].y > 50.0, "right, then up: {}", walked[0]);
    assert_eq!(stepper.owners(late), [ServerId(2)], "walked again where its new owner simulates it");
    // What the servers say, on the grid of a player's own position.
    let told = players.map(|user| stepper.player(user).view.me.map(|me| me.position));
    for (i, told) in told.into_iter().enumerate() {
        let predicted = stepper.player(players[i]).position();
        assert!(told.is_some_and(|told| told.distance(predicted) < 1e-2), "told {told:?}, predicted {predicted}");
    }
}
