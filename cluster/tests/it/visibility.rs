//! Cross-border visibility, tick by tick on the in-process harness: a player sees every
//! entity within its view radius whoever simulates it, by name, and nothing far outside.

use crate::stepper::Stepper;
use tessera_shared::Vec2;
use tessera_shared::ids::{ServerId, UserId};

fn sees(cluster: &Stepper, watcher: UserId, other: UserId, name: &str) -> bool {
    let view = &cluster.player(watcher).view;
    view.name(other.entity()).is_some_and(|n| n == name)
}

#[test]
fn players_either_side_of_a_border_see_each_other() {
    let mut cluster = Stepper::default_cluster();
    let west = cluster.join(0, "west", Vec2::new(990.0, 512.0));
    let east = cluster.join(1, "east", Vec2::new(1060.0, 512.0));
    assert_eq!(cluster.player(west).view.server, Some(ServerId(1)));
    assert_eq!(cluster.player(east).view.server, Some(ServerId(2)));
    // One tick to subscribe, one for the snapshot to arrive, one to reach the players.
    cluster.step_until("each in the other's view", 4, |c| sees(c, west, east, "east") && sees(c, east, west, "west"));

    // Walk apart, beyond each other's view radius: each drops out of the other's view.
    cluster.walk_to(west, Vec2::new(300.0, 512.0), |_| {});
    cluster.walk_to(east, Vec2::new(1750.0, 512.0), |_| {});
    cluster.step_until("both out of view", 2, |c| {
        c.player(west).view.other(east.entity()).is_none() && c.player(east).view.other(west.entity()).is_none()
    });
}

#[test]
fn the_four_way_corner_sees_all_four_servers() {
    let mut cluster = Stepper::default_cluster();
    let corner = Vec2::splat(1024.0);
    let offsets = [(-60.0, -60.0), (60.0, -60.0), (-60.0, 60.0), (60.0, 60.0)];
    let around: Vec<(String, UserId)> = offsets
        .into_iter()
        .enumerate()
        .map(|(i, (dx, dy))| {
            let name = format!("quarter-{i}");
            (name.clone(), cluster.join(i % 2, &name, corner + Vec2::new(dx, dy)))
        })
        .collect();
    let servers: Vec<_> = around.iter().map(|(_, user)| cluster.player(*user).view.server.unwrap().0).collect();
    assert_eq!(servers, vec![1, 2, 3, 4], "one player on each server");

    let centre = cluster.join(0, "centre", corner);
    cluster.step_until("all four in view", 4, |c| around.iter().all(|(name, user)| sees(c, centre, *user, name)));
}
