//! The world on screen: the ground, each region tinted by the server that owns it with
//! its borders drawn, every player in view as a disc with its name, and a camera that
//! follows you. Your own disc is predicted from the keys you hold, so walking feels
//! immediate, and corrected smoothly when the server's word differs; the others are
//! drawn where the server simulated them a moment ago, between two states received.
//! In a crowd, a name or chat bubble that would cover one nearer to you is hidden, so
//! what is shown stays readable, yours above all (the chat panel keeps every line).

use crate::connection::{Connection, Snapshot};
use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageSampler, ImageType};
use bevy::prelude::*;
use bevy::sprite::{Anchor, Text2dShadow};
use bevy::text::TextLayoutInfo;
use std::collections::HashMap;
use std::time::Instant;
use tessera_shared::ids::{EntityId, ServerId};
use tessera_shared::region_map::RegionMap;

/// Room kept around a name shown, in pixels, that no other name may take.
const LABEL_MARGIN: f32 = 2.0;
/// Beyond this error a disc jumps instead of gliding.
const SNAP_DISTANCE: f32 = 150.0;
const PLAYER_RADIUS: f32 = 16.0;
/// The player sprite (see `assets/LICENSE.md`), built in so the binary runs anywhere.
const PLAYER_PNG: &[u8] = include_bytes!("../../assets/sprites/player.png");

pub struct WorldPlugin;

impl Plugin for WorldPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Avatars>()
            .init_resource::<DrawnMap>()
            .add_systems(Startup, (spawn_camera, load_player_sprite))
            .add_systems(
                Update,
                (draw_map, sync_avatars, predict_own, smooth_others, follow_camera, declutter_overheads, title).chain(),
            );
    }
}

/// The colour of a server, on the map and the minimap.
pub fn server_colour(server: ServerId) -> Color {
    const PALETTE: [(f32, f32, f32); 6] = [
        (0.30, 0.55, 0.85),
        (0.85, 0.45, 0.30),
        (0.35, 0.70, 0.40),
        (0.70, 0.40, 0.80),
        (0.85, 0.75, 0.30),
        (0.30, 0.75, 0.75),
    ];
    let (r, g, b) = PALETTE[usize::from(server.0) % PALETTE.len()];
    Color::srgb(r, g, b)
}

/// A player on screen.
#[derive(Component)]
struct Avatar {
    id: EntityId,
    /// Where it is drawn now.
    shown: Vec2,
}

#[derive(Component)]
struct OwnAvatar;

#[derive(Component)]
struct NameLabel;

/// Text above a player (its name, a chat bubble), shown only where it covers nothing
/// nearer to you.
#[derive(Component)]
pub struct Overhead;

/// The players on screen, by id.
#[derive(Resource, Default)]
pub struct Avatars(HashMap<EntityId, Entity>);

impl Avatars {
    /// The disc of `id`, if it is on screen.
    pub fn entity(&self, id: EntityId) -> Option<Entity> {
        self.0.get(&id).copied()
    }
}

/// The map the regions were drawn for.
#[derive(Resource, Default)]
struct DrawnMap(Option<RegionMap>);

#[derive(Component)]
struct MapGeometry;

fn spawn_camera(mut commands: Commands) {
    commands.spawn(Camera2d);
}

/// The white player disc, tinted per player when drawn.
#[derive(Resource)]
struct PlayerSprite(Handle<Image>);

fn load_player_sprite(mut commands: Commands, mut images: ResMut<Assets<Image>>) {
    let image = Image::from_buffer(
        PLAYER_PNG,
        ImageType::Extension("png"),
        CompressedImageFormats::NONE,
        true,
        ImageSampler::linear(),
        RenderAssetUsages::default(),
    )
    .expect("the built-in player sprite is a valid PNG");
    commands.insert_resource(PlayerSprite(images.add(image)));
}

fn disc(sprite: &PlayerSprite, colour: Color, radius: f32) -> Sprite {
    Sprite { image: sprite.0.clone(), color: colour, custom_size: Some(Vec2::splat(radius * 2.0)), ..default() }
}

fn draw_map(
    mut commands: Commands,
    snapshot: Res<Snapshot>,
    mut drawn: ResMut<DrawnMap>,
    old: Query<Entity, With<MapGeometry>>,
) {
    let Some(welcome) = &snapshot.welcome else { return };
    if drawn.0.as_ref() == Some(&welcome.map) {
        return;
    }
    for entity in &old {
        commands.entity(entity).despawn();
    }
    let map = &welcome.map;
    let size = map.region_size();
    for (region, owner) in map.regions() {
        let (min, max) = map.bounds(region);
        let centre = (min + max) / 2.0;
        let tint = server_colour(owner).with_alpha(0.16);
        commands.spawn((
            MapGeometry,
            Sprite::from_color(tint, Vec2::splat(size)),
            Transform::from_translation(centre.extend(-10.0)),
        ));
        // A faint grid, so walking shows even on an empty map.
        let step = size / 8.0;
        for i in 1..8 {
            let offset = i as f32 * step;
            let line = Color::srgba(1.0, 1.0, 1.0, 0.05);
            commands.spawn((
                MapGeometry,
                Sprite::from_color(line, Vec2::new(1.5, size)),
                Transform::from_xyz(min.x + offset, centre.y, -9.0),
            ));
            commands.spawn((
                MapGeometry,
                Sprite::from_color(line, Vec2::new(size, 1.5)),
                Transform::from_xyz(centre.x, min.y + offset, -9.0),
            ));
        }
        let label = format!("{owner}\nregion {region}");
        commands.spawn((
            MapGeometry,
            Text2d::new(label),
            TextFont::from_font_size(40.0),
            TextColor(server_colour(owner).with_alpha(0.45)),
            Transform::from_translation(centre.extend(-8.0)),
        ));
    }
    // Borders between regions of different servers stand out; the world's edge too.
    let world = map.world_size();
    let border = Color::srgba(1.0, 1.0, 1.0, 0.55);
    for x in 0..=map.columns() {
        let at = f32::from(x) * size;
        commands.spawn((
            MapGeometry,
            Sprite::from_color(border, Vec2::new(4.0, world.y)),
            Transform::from_xyz(at, world.y / 2.0, -7.0),
        ));
    }
    for y in 0..=map.rows() {
        let at = f32::from(y) * size;
        commands.spawn((
            MapGeometry,
            Sprite::from_color(border, Vec2::new(world.x, 4.0)),
            Transform::from_xyz(world.x / 2.0, at, -7.0),
        ));
    }
    drawn.0 = Some(map.clone());
}

fn sync_avatars(
    mut commands: Commands,
    snapshot: Res<Snapshot>,
    mut avatars: ResMut<Avatars>,
    sprite: Res<PlayerSprite>,
    mut labels: Query<&mut Text2d, With<NameLabel>>,
    children: Query<&Children>,
) {
    if !snapshot.is_changed() {
        return;
    }
    let view = &snapshot.view;
    let Some(me) = view.me else { return };
    let my_name = snapshot.welcome.as_ref().map(|welcome| welcome.name.clone()).unwrap_or_default();
    let others = view.others_named().map(|(other, name)| (other.id, other.position, name.to_string()));
    let in_view: Vec<(EntityId, Vec2, String)> = std::iter::once((me.id, me.position, my_name)).chain(others).collect();
    avatars.0.retain(|id, entity| {
        let keep = in_view.iter().any(|(seen, _, _)| seen == id);
        if !keep {
            commands.entity(*entity).despawn();
        }
        keep
    });
    for (id, position, name) in in_view {
        let own = id == me.id;
        match avatars.0.get(&id) {
            Some(&entity) => {
                // A name may change: every full update names everyone in view again.
                for child in children.get(entity).into_iter().flatten() {
                    if let Ok(mut label) = labels.get_mut(*child)
                        && label.0 != name
                    {
                        label.0 = name.clone();
                    }
                }
            }
            None => {
                let colour = if own { Color::srgb(1.0, 0.85, 0.25) } else { Color::srgb(0.92, 0.94, 0.97) };
                let mut avatar = commands.spawn((
                    Avatar { id, shown: position },
                    disc(&sprite, colour, PLAYER_RADIUS),
                    Transform::from_translation(position.extend(if own { 2.0 } else { 1.0 })),
                ));
                avatar.with_children(|parent| {
                    parent.spawn((
                        NameLabel,
                        Overhead,
                        Text2d::new(name),
                        TextFont::from_font_size(15.0),
                        TextColor(Color::WHITE),
                        // White on another's white disc, or on a light region, would not read.
                        Text2dShadow { offset: Vec2::new(1.0, -1.0), color: Color::srgba(0.0, 0.0, 0.0, 0.85) },
                        Transform::from_xyz(0.0, PLAYER_RADIUS + 14.0, 1.0),
                    ));
                });
                if own {
                    avatar.insert(OwnAvatar);
                    avatar.with_children(|parent| {
                        // A halo marks you out among the others.
                        parent.spawn((
                            disc(&sprite, Color::srgb(1.0, 0.6, 0.1), PLAYER_RADIUS + 6.0),
                            Transform::from_xyz(0.0, 0.0, -0.1),
                        ));
                    });
                }
                avatars.0.insert(id, avatar.id());
            }
        }
    }
}

/// Moves `shown` along `velocity` for `dt`, then toward `target` at `rate` per second:
/// a target moving at that velocity is followed without lag, and a correction is made
/// smoothly; errors beyond [`SNAP_DISTANCE`] jump.
fn glide(shown: &mut Vec2, velocity: Vec2, target: Vec2, rate: f32, dt: f32) {
    *shown += velocity * dt;
    if shown.distance(target) > SNAP_DISTANCE {
        *shown = target;
    } else {
        *shown += (target - *shown) * (1.0 - (-rate * dt).exp());
    }
}

/// Your own disc: where the prediction has you now, the keys you hold walking it at once.
fn predict_own(
    time: Res<Time>,
    snapshot: Res<Snapshot>,
    mut own: Query<(&mut Avatar, &mut Transform), With<OwnAvatar>>,
) {
    let (Ok((mut avatar, mut transform)), Some(prediction)) = (own.single_mut(), &snapshot.prediction) else {
        return;
    };
    let Some(predicted) = prediction.position_at(Instant::now()) else { return };
    let velocity = snapshot.keys_sent.walk_velocity().0;
    glide(&mut avatar.shown, velocity, predicted, 15.0, time.delta_secs());
    transform.translation = avatar.shown.extend(transform.translation.z);
}

/// The others, as the server simulated them a moment ago (see `WorldView::others_shown`).
fn smooth_others(
    time: Res<Time>,
    snapshot: Res<Snapshot>,
    mut others: Query<(&mut Avatar, &mut Transform), Without<OwnAvatar>>,
) {
    let dt = time.delta_secs();
    let shown: HashMap<EntityId, (Vec2, Vec2)> = snapshot
        .view
        .others_shown(Instant::now())
        .map(|(state, position)| (state.id, (state.velocity, position)))
        .collect();
    for (mut avatar, mut transform) in &mut others {
        if let Some(&(velocity, position)) = shown.get(&avatar.id) {
            glide(&mut avatar.shown, velocity, position, 15.0, dt);
            transform.translation = avatar.shown.extend(transform.translation.z);
        }
    }
}

/// Shows each name and bubble that overlaps none nearer to you (yours first) and hides
/// the rest, as they stand this frame: in a crowd, they stay readable instead of piling
/// up.
fn declutter_overheads(
    windows: Query<&Window>,
    avatars: Query<(&Avatar, Has<OwnAvatar>, &Children)>,
    mut labels: Query<(&TextLayoutInfo, &Transform, &Anchor, &mut Visibility), With<Overhead>>,
) {
    let Some(me) = avatars.iter().find_map(|(avatar, own, _)| own.then_some(avatar.shown)) else { return };
    let Ok(window) = windows.single() else { return };
    // The camera follows you: what is off the window takes no room on it.
    let on_screen = Rect::from_center_size(me, window.size());
    let mut nearest_first: Vec<(f32, Entity, Option<Rect>)> = Vec::new();
    for (avatar, own, children) in &avatars {
        let distance = if own { -1.0 } else { avatar.shown.distance_squared(me) };
        for &child in children {
            let Ok((layout, transform, anchor, _)) = labels.get(child) else { continue };
            // Not laid out yet (a name just arrived) or off the window: nothing to weigh.
            let size = layout.size / layout.scale_factor.max(f32::EPSILON);
            let centre = avatar.shown + transform.translation.truncate() - anchor.as_vec() * size;
            let area = Some(Rect::from_center_size(centre, size))
                .filter(|area| size != Vec2::ZERO && !area.intersect(on_screen).is_empty());
            nearest_first.push((distance, child, area));
        }
    }
    nearest_first.sort_by(|a, b| a.0.total_cmp(&b.0));
    let areas: Vec<Option<Rect>> = nearest_first.iter().map(|&(_, _, area)| area).collect();
    for ((_, label, _), show) in nearest_first.into_iter().zip(uncovered(&areas)) {
        if let Ok((_, _, _, mut visibility)) = labels.get_mut(label) {
            visibility.set_if_neq(if show { Visibility::Inherited } else { Visibility::Hidden });
        }
    }
}

/// Which of `areas`, most wanted first, to show: each that overlaps none shown before
/// it, with [`LABEL_MARGIN`] to spare. One of unknown size is shown and takes no room.
fn uncovered(areas: &[Option<Rect>]) -> Vec<bool> {
    let mut shown: Vec<Rect> = Vec::with_capacity(areas.len());
    areas
        .iter()
        .map(|area| {
            let Some(area) = area.map(|area| area.inflate(LABEL_MARGIN)) else { return true };
            let free = shown.iter().all(|other| other.intersect(area).is_empty());
            if free {
                shown.push(area);
            }
            free
        })
        .collect()
}

fn follow_camera(own: Query<&Avatar, With<OwnAvatar>>, mut camera: Query<&mut Transform, With<Camera2d>>) {
    if let (Ok(avatar), Ok(mut camera)) = (own.single(), camera.single_mut()) {
        camera.translation = avatar.shown.extend(camera.translation.z);
    }
}

fn title(snapshot: Res<Snapshot>, connection: Res<Connection>, mut windows: Query<&mut Window>) {
    let Ok(mut window) = windows.single_mut() else { return };
    let title = match (&*connection, snapshot.view.me, snapshot.view.server) {
        (Connection::InGame { .. }, Some(me), Some(server)) => {
            format!("Tessera: ({:.0}, {:.0}) on {server}", me.position.x, me.position.y)
        }
        (Connection::Lost { .. }, _, _) => "Tessera: connection lost, retrying".into(),
        (Connection::Full { .. }, _, _) => "Tessera: cluster full, waiting for room".into(),
        _ => "Tessera: connecting".into(),
    };
    if window.title != title {
        window.title = title;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_at(x: f32, y: f32) -> Option<Rect> {
        Some(Rect::from_center_size(Vec2::new(x, y), Vec2::new(60.0, 18.0)))
    }

    #[test]
    fn a_name_over_one_nearer_is_hidden_and_the_rest_shown() {
        let areas = [
            name_at(0.0, 0.0),   // yours
            name_at(30.0, 5.0),  // over yours: hidden
            name_at(75.0, 10.0), // over the hidden one only: shown
            name_at(0.0, 40.0),  // clear of all
            None,                // not laid out yet
            name_at(2.0, 38.0),  // over the one clear of all: hidden
        ];
        assert_eq!(uncovered(&areas), vec![true, false, true, true, true, false]);
    }
}
