//! How often players hear from their server, tick by tick on the [`stepper`]: a player
//! told nothing it cannot extrapolate is sent nothing for a few ticks, while what it
//! pressed is acknowledged at once and what others do reaches it the tick it happens;
//! and a server held to updates every other tick, as past capacity, tells each player
//! what others did every other tick, says so, and still acknowledges inputs at once.

use crate::stepper::{Stepper, centre_of};
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::components::Keys;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::protocol::MAX_QUIET_TICKS;

/// Steps `ticks` ticks; says how many updates `user` received meanwhile.
fn updates_over(stepper: &mut Stepper, user: UserId, ticks: u64) -> u64 {
    let before = stepper.player(user).view.updates;
    for _ in 0..ticks {
        stepper.step();
    }
    stepper.player(user).view.updates - before
}

#[test]
fn a_player_with_nothing_new_hears_every_few_ticks_and_what_changes_at_once() {
    let mut stepper = Stepper::default_cluster();
    let centre = centre_of(&stepper.map, ServerId(1));
    let ada = stepper.join(0, "ada", centre);
    let quiet = u64::from(MAX_QUIET_TICKS);
    // Standing alone: word every few ticks, no more.
    assert_eq!(updates_over(&mut stepper, ada, 10 * quiet), 10, "standing: one update every {quiet} ticks");

    // Walking straight, the player's own motion is what it predicts: still quiet, but
    // its input is acknowledged as soon as it is applied.
    let seq = stepper.press(ada, Keys::RIGHT);
    stepper.step_until("ada's input acknowledged", 6, |s| s.player(ada).view.last_input >= seq);
    // (Not so far as the next region: a handoff is news.)
    let updates = updates_over(&mut stepper, ada, 6 * quiet);
    assert!((6..=7).contains(&updates), "walking straight: {updates} updates in {} ticks", 6 * quiet);
    let me = stepper.player(ada).view.me.unwrap();
    assert!(me.velocity.x > 0.0 && me.position.x > centre.x + 200.0, "ada walked on: {me:?}");

    // Another player near: every tick it turns, ada hears of it that tick.
    let bo = stepper.join(1, "bo", me.position + Vec2::new(0.0, 60.0));
    stepper.step_until("bo in ada's view", 10, |s| s.player(ada).view.other(bo.entity()).is_some());
    for (turn, keys) in [Keys::UP, Keys::LEFT, Keys::DOWN].into_iter().enumerate() {
        let seq = stepper.press(bo, keys);
        stepper.step_until("bo's turn applied", 6, |s| s.player(bo).view.last_input >= seq);
        let seen = stepper.player(ada).view.other(bo.entity()).unwrap();
        assert_eq!(seen.velocity, keys.walk_velocity().0, "turn {turn}: ada sees bo's new way the tick it is applied");
    }
}

#[test]
fn a_server_updating_every_other_tick_updates_each_player_so_says_so_and_acknowledges_at_once() {
    let mut stepper = Stepper::configured(ClusterConfig::default_local(), |settings| settings.update_every = Some(2));
    let centre = centre_of(&stepper.map, ServerId(1));
    let ada = stepper.join(0, "ada", centre);
    let bo = stepper.join(1, "bo", centre + Vec2::new(40.0, 0.0));
    stepper.step_until("each in the other's view", 10, |s| {
        s.player(ada).view.other(bo.entity()).is_some() && s.player(bo).view.other(ada.entity()).is_some()
    });
    // Bo turns and turns, so at every tick ada is due an update there is news for her.
    let ways = [Keys::UP, Keys::RIGHT, Keys::DOWN, Keys::LEFT];
    let mut ada_heard_at = Vec::new();
    for keys in ways.into_iter().cycle().take(12) {
        let seq = stepper.press(bo, keys);
        // Bo's turn is acknowledged as soon as it is applied, whether or not bo is due an update.
        for _ in 0..4 {
            let before = stepper.player(ada).view.updates;
            stepper.step();
            if stepper.player(ada).view.updates > before {
                ada_heard_at.push(stepper.ticks);
            }
            if stepper.player(bo).view.last_input >= seq {
                break;
            }
        }
        assert!(stepper.player(bo).view.last_input >= seq, "bo's turn to {keys:?} acknowledged within 4 ticks");
    }
    assert!(ada_heard_at.len() >= 10, "ada heard of bo's turns: {ada_heard_at:?}");
    let phase = ada_heard_at[0] % 2;
    assert!(ada_heard_at.iter().all(|tick| tick % 2 == phase), "ada hears every other tick only: {ada_heard_at:?}");
    for user in [ada, bo] {
        let view = &stepper.player(user).view;
        assert_eq!(view.update_every, 2, "and is told the server is busy");
        assert_eq!(view.inputs_applied, view.last_input, "each input applied once");
    }
}
