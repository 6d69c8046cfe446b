//! A crowd over a player's byte budget, tick by tick on the [`stepper`]: the player
//! hears of the nearest first and of everyone in the end, what it is sent stays within
//! its budget while the crowd turns and turns, its own inputs are acknowledged at once
//! all the same, and it is told its view is crowded.

use crate::stepper::{Stepper, centre_of};
use tessera_shared::Vec2;
use tessera_shared::cluster::{ClusterConfig, MIN_PLAYER_BYTES_PER_TICK};
use tessera_shared::components::Keys;
use tessera_shared::ids::{ServerId, UserId};

#[test]
fn a_crowd_over_the_budget_arrives_nearest_first_stays_within_it_and_says_so() {
    let mut map = ClusterConfig::default_local();
    let tick_hz = map.simulation.tick_hz;
    let budget = MIN_PLAYER_BYTES_PER_TICK * tick_hz as u32;
    map.simulation.player_bytes_per_second = budget;
    let mut stepper = Stepper::new(map, false);
    let centre = centre_of(&stepper.map, ServerId(1));
    // 40 on a spiral around the centre of server 1's region, 30 to 315 units out (all
    // beyond the 25 units within which everyone is as near).
    let crowd: Vec<(UserId, f32)> = (0..40u16)
        .map(|i| {
            let distance = 30.0 + 7.3 * f32::from(i);
            let at = centre + Vec2::from_angle(f32::from(i) * 2.4) * distance;
            (stepper.join(usize::from(i % 2), &format!("c{i}"), at), distance)
        })
        .collect();

    // Ada arrives in their midst: her first update holds what a second's budget does,
    // the rest follow at its rate, and always the nearest first.
    let ada = stepper.join(0, "ada", centre);
    let mut first_seen = vec![None; crowd.len()];
    stepper.step_until("ada knows all the crowd", 200, |stepper| {
        let view = &stepper.player(ada).view;
        for ((user, _), seen) in crowd.iter().zip(first_seen.iter_mut()) {
            if seen.is_none() && view.other(user.entity()).is_some() {
                *seen = Some(stepper.ticks);
            }
        }
        first_seen.iter().all(Option::is_some)
    });
    let first_ticks: Vec<u64> = first_seen.iter().flatten().copied().collect();
    assert!(first_ticks.iter().min() < first_ticks.iter().max(), "not all at once: {first_ticks:?}");
    for (i, (_, near)) in crowd.iter().enumerate() {
        for (j, (_, far)) in crowd.iter().enumerate() {
            assert!(
                near >= far || first_ticks[i] <= first_ticks[j],
                "{near} units away came after {far}: ticks {} and {}",
                first_ticks[i],
                first_ticks[j]
            );
        }
    }
    assert!(stepper.player(ada).view.budget_spent_at.is_some(), "ada is told her view is crowded");

    // Everyone turns every tick for five seconds: ada is sent no more than her budget
    // allows (and a second's worth she had saved), while her own turns are
    // acknowledged within the tick or two her inputs take.
    let ticks = 5 * tick_hz as u64;
    let bytes_before = stepper.player(ada).bytes_received;
    for tick in 0..ticks {
        let way = if tick % 2 == 0 { Keys::UP } else { Keys::DOWN };
        for (user, _) in &crowd {
            stepper.press(*user, way);
        }
        if tick % 10 == 0 {
            let turn = if tick % 20 == 0 { Keys::RIGHT } else { Keys::LEFT };
            let seq = stepper.press(ada, turn);
            stepper.step_until("ada's turn acknowledged", 4, |s| s.player(ada).view.last_input >= seq);
        } else {
            stepper.step();
        }
    }
    let sent = stepper.player(ada).bytes_received - bytes_before;
    let allowed = u64::from(budget) * (ticks / tick_hz as u64 + 1);
    assert!(sent <= allowed, "{sent} bytes in {ticks} ticks, against a budget of {budget} a second");
    assert!(sent >= allowed / 2, "the budget is used: {sent} bytes in {ticks} ticks");

    // They all stop: in the end ada is told where each one stands, the farthest too.
    for (user, _) in &crowd {
        stepper.press(*user, Keys::empty());
    }
    stepper.press(ada, Keys::empty());
    stepper.step_until("ada sees everyone where they stopped", 400, |stepper| {
        let view = &stepper.player(ada).view;
        crowd.iter().all(|(user, _)| {
            let them = stepper.player(*user).view.me.expect("each has had an update");
            view.other(user.entity())
                .is_some_and(|seen| seen.velocity == Vec2::ZERO && seen.position.distance(them.position) < 1.0)
        })
    });
}
