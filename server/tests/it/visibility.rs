//! Cross-border visibility: a player sees every entity within its view radius whoever
//! simulates it, and nothing far outside it.

use crate::harness::{DEADLINE, default_cluster, join, walk_to};
use tessera_bots::player::Player;
use tessera_shared::Vec2;
use tessera_shared::ids::{EntityId, ServerId};

fn id(player: &Player) -> EntityId {
    player.view.me.unwrap().id
}

async fn sees(watcher: &mut Player, other: EntityId, name: &str) {
    watcher
        .wait_until(DEADLINE, &format!("{name} in view, by name"), |view| {
            view.other(other).is_some() && view.names.get(&other).is_some_and(|n| n == name)
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_either_side_of_a_border_see_each_other() {
    let cluster = default_cluster();
    let mut west = join(&cluster, 0, "west").await;
    let mut east = join(&cluster, 1, "east").await;
    walk_to(&mut west, Vec2::new(990.0, 512.0), |_| {}).await;
    walk_to(&mut east, Vec2::new(1060.0, 512.0), |_| {}).await;
    assert_eq!(west.view.server, Some(ServerId(1)));
    assert_eq!(east.view.server, Some(ServerId(2)));
    sees(&mut west, id(&east), "east").await;
    sees(&mut east, id(&west), "west").await;

    // Walk apart, beyond each other's view radius: each drops out of the other's view.
    walk_to(&mut west, Vec2::new(300.0, 512.0), |_| {}).await;
    walk_to(&mut east, Vec2::new(1750.0, 512.0), |_| {}).await;
    let (west_id, east_id) = (id(&west), id(&east));
    west.wait_until(DEADLINE, "east out of view", |view| view.other(east_id).is_none()).await.unwrap();
    east.wait_until(DEADLINE, "west out of view", |view| view.other(west_id).is_none()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_way_corner_sees_all_four_servers() {
    let cluster = default_cluster();
    let corner = Vec2::splat(1024.0);
    let offsets = [(-60.0, -60.0), (60.0, -60.0), (-60.0, 60.0), (60.0, 60.0)];
    let mut around = Vec::new();
    for (i, (dx, dy)) in offsets.into_iter().enumerate() {
        let name = format!("quarter-{i}");
        let mut player = join(&cluster, i % 2, &name).await;
        walk_to(&mut player, corner + Vec2::new(dx, dy), |_| {}).await;
        around.push((name, player));
    }
    let servers: Vec<_> = around.iter().map(|(_, p)| p.view.server.unwrap().0).collect();
    assert_eq!(servers, vec![1, 2, 3, 4], "one player on each server");

    let mut centre = join(&cluster, 0, "centre").await;
    walk_to(&mut centre, corner, |_| {}).await;
    for (name, player) in &around {
        sees(&mut centre, id(player), name).await;
    }
}
