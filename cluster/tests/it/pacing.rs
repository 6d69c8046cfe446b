//! How often players hear from their server, tick by tick on the [`stepper`]: a player
//! told nothing it cannot extrapolate is sent nothing for a few ticks, while what it
//! pressed is acknowledged at once and what others do reaches it the tick it happens;
//! and a server held to updates every other tick, as past capacity, tells each player
//! what others did every other tick, says so, and still acknowledges inputs at once,
//! with the news, the next news a pace after that.

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

/// Ada and Bo, each in the other's view, on a server held to updates every `every` ticks.
fn two_in_view_at_pace(every: u8) -> (Stepper, UserId, UserId) {
    let mut stepper =
        Stepper::configured(ClusterConfig::default_local(), |settings| settings.update_every = Some(every));
    let centre = centre_of(&stepper.map, ServerId(1));
    let ada = stepper.join(0, "ada", centre);
    let bo = stepper.join(1, "bo", centre + Vec2::new(40.0, 0.0));
    stepper.step_until("each in the other's view", 10, |s| {
        s.player(ada).view.other(bo.entity()).is_some() && s.player(bo).view.other(ada.entity()).is_some()
    });
    (stepper, ada, bo)
}

#[test]
fn a_server_updating_every_other_tick_updates_each_player_so_says_so_and_acknowledges_at_once() {
    let (mut stepper, ada, bo) = two_in_view_at_pace(2);
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

#[test]
fn an_acknowledgement_carries_the_news_and_the_next_comes_a_pace_after_it() {
    let (mut stepper, ada, bo) = two_in_view_at_pace(4);
    // Ada turns every tick, so there is always news of her for bo.
    let ways = [Keys::UP, Keys::RIGHT, Keys::DOWN, Keys::LEFT];
    let mut ada_turns = ways.into_iter().cycle();
    let mut tick = |stepper: &mut Stepper| {
        stepper.press(ada, ada_turns.next().expect("endless"));
        stepper.step();
    };
    // Bo presses four times, each a tick later in his pace than the last.
    for (offset, keys) in ways.into_iter().enumerate() {
        let seq = stepper.press(bo, keys);
        for _ in 0..6 {
            tick(&mut stepper);
            if stepper.player(bo).view.last_input >= seq {
                break;
            }
        }
        let (ada_sees, bo_sees) = (&stepper.player(ada).view, &stepper.player(bo).view);
        assert!(bo_sees.last_input >= seq, "bo's turn to {keys:?} acknowledged within 6 ticks");
        assert_eq!(bo_sees.tick, ada_sees.tick, "ada, acknowledged every tick, heard at the same tick");
        let ada_now = ada_sees.me.expect("ada is in the game").velocity;
        let ada_seen = bo_sees.other(ada.entity()).expect("ada in view").velocity;
        assert_eq!(ada_seen, ada_now, "press {offset}: the acknowledgement told bo where ada is going now");
        let updates = bo_sees.updates;
        for _ in 0..3 {
            tick(&mut stepper);
        }
        let sent = stepper.player(bo).view.updates - updates;
        assert_eq!(sent, 0, "press {offset}: bo pressed nothing more and had the news: nothing for three ticks");
        // The fourth tick brings it.
        tick(&mut stepper);
        let (ada_sees, bo_sees) = (&stepper.player(ada).view, &stepper.player(bo).view);
        assert_eq!(bo_sees.updates - updates, 1, "press {offset}: the news four ticks after");
        assert_eq!(bo_sees.other(ada.entity()).map(|ada| ada.velocity), ada_sees.me.map(|me| me.velocity));
        for _ in 0..offset {
            tick(&mut stepper);
        }
    }
}
