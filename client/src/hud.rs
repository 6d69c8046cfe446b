//! The HUD (bevy_egui): connection state, proxy, owning server, round trip, bandwidth,
//! entities in view, frames per second, resumes; a minimap of the whole world with
//! regions coloured by server and the players you know of; and, when the connection is
//! lost, the cluster is full or the player's region is offline, what is happening; and
//! when the cluster is degraded (a server over capacity, a crowd over the byte budget).

use crate::connection::{Bandwidth, Connection, KeysSentAgain, SmoothnessMeter, Snapshot};
use crate::world::server_colour;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass, egui};
use std::time::Instant;
use tessera_player::smoothness::SmoothnessSeen;

const MINIMAP_SIZE: f32 = 200.0;
/// How long the HUD says a player is back after its session resumed or its region did.
const SAY_BACK_FOR: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the HUD says the view is crowded after an update last said so: a crowd
/// at the budget's edge spends it every other update, and the line should not blink.
const CROWDED_FOR: std::time::Duration = std::time::Duration::from_secs(2);

pub struct HudPlugin;

impl Plugin for HudPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(EguiPlugin::default())
            .init_resource::<FrameRate>()
            .add_systems(Update, measure_frame_rate)
            .add_systems(EguiPrimaryContextPass, (stats_panel, minimap, connection_notice));
    }
}

/// Frames per second, smoothed.
#[derive(Resource, Default)]
struct FrameRate(f32);

fn measure_frame_rate(time: Res<Time>, mut rate: ResMut<FrameRate>) {
    let dt = time.delta_secs();
    if dt > 0.0 {
        rate.0 = if rate.0 == 0.0 { 1.0 / dt } else { rate.0 * 0.95 + (1.0 / dt) * 0.05 };
    }
}

fn to_egui(colour: Color, alpha: f32) -> egui::Color32 {
    let c = colour.to_srgba();
    egui::Color32::from_rgba_unmultiplied(
        (c.red * 255.0) as u8,
        (c.green * 255.0) as u8,
        (c.blue * 255.0) as u8,
        (alpha * 255.0) as u8,
    )
}

fn stats_panel(
    mut contexts: EguiContexts,
    connection: Res<Connection>,
    snapshot: Res<Snapshot>,
    bandwidth: Res<Bandwidth>,
    rate: Res<FrameRate>,
    meter: Res<SmoothnessMeter>,
) -> Result {
    let state = match &*connection {
        Connection::Connecting { proxy } if proxy.is_empty() => "connecting".to_string(),
        Connection::Connecting { proxy } => format!("connecting to {proxy}"),
        Connection::InGame { .. } if snapshot.view.region_offline => "region offline, reconnecting".to_string(),
        Connection::InGame { .. } if snapshot.back_at.is_some_and(|at| at.elapsed() < SAY_BACK_FOR) => {
            "in game (resumed)".to_string()
        }
        Connection::InGame { .. } => "in game".to_string(),
        Connection::Lost { .. } => "reconnecting".to_string(),
        Connection::Full { .. } => "cluster full, waiting for room".to_string(),
        Connection::Stopped { .. } => "stopped".to_string(),
    };
    let view = &snapshot.view;
    egui::Window::new("Tessera").anchor(egui::Align2::LEFT_TOP, [10.0, 10.0]).resizable(false).collapsible(false).show(
        contexts.ctx_mut()?,
        |ui| {
            egui::Grid::new("stats").num_columns(2).show(ui, |ui| {
                let mut row = |label: &str, value: String| {
                    ui.label(label);
                    ui.monospace(value);
                    ui.end_row();
                };
                row("state", state);
                if let Some(welcome) = &snapshot.welcome {
                    row("you", format!("{} #{}", welcome.name, welcome.user.short()));
                }
                if let Connection::InGame { proxy } = &*connection {
                    let id = snapshot.welcome.as_ref().map(|w| w.proxy.to_string()).unwrap_or_default();
                    row("proxy", format!("{id} at {proxy}"));
                }
                row("server", view.server.map(|s| s.to_string()).unwrap_or_else(|| "-".into()));
                if let Some(me) = view.me {
                    row("position", format!("({:.0}, {:.0})", me.position.x, me.position.y));
                }
                // Measured by the acknowledgement of an input: none until the player walks.
                let round_trip = snapshot.round_trip_ms.map(|ms| format!("{ms:.0} ms"));
                row("round trip", round_trip.unwrap_or_else(|| "- (walk to measure)".into()));
                row(
                    "updates",
                    match snapshot.updates_lost {
                        Some(0) => "by datagram".to_string(),
                        Some(lost) => format!("by datagram, {lost} lost"),
                        None => "by TCP".to_string(),
                    },
                );
                row(
                    "keys",
                    match snapshot.keys_sent_again {
                        Some(KeysSentAgain { by_datagram: 0, by_tcp: 0 }) => "by datagram".to_string(),
                        Some(KeysSentAgain { by_datagram, by_tcp: 0 }) => format!("by datagram, {by_datagram} again"),
                        Some(KeysSentAgain { by_datagram, by_tcp }) => {
                            format!("by datagram, {by_datagram} again, {by_tcp} by TCP")
                        }
                        None => "by TCP".to_string(),
                    },
                );
                row(
                    "in / out",
                    format!("{:.1} / {:.1} KB/s", bandwidth.in_per_sec / 1000.0, bandwidth.out_per_sec / 1000.0),
                );
                row(
                    "in view",
                    match view.in_view() {
                        1 => "1 other".to_string(),
                        others => format!("{others} others"),
                    },
                );
                if view.update_every > 1 {
                    // The server is over capacity: the player walks on as ever, and sees
                    // what the others do a little later.
                    let hz = snapshot.welcome.as_ref().map_or(0.0, |w| w.tick_hz) / f64::from(view.update_every);
                    // As few as it is (1.25 Hz at 20 Hz ticks, updates every 16), not rounded.
                    row("server busy", format!("updates at {hz} Hz"));
                }
                if view.budget_spent_at.is_some_and(|at| at.elapsed() < CROWDED_FOR) {
                    // More news of others than the player's byte budget holds: those
                    // nearest are told first, the far ones a little later.
                    row("crowded", "far players update less often".into());
                }
                row("handoffs", view.handoffs.to_string());
                row("resumes", snapshot.resumes.to_string());
                row("fps", format!("{:.0}", rate.0));
            });
            egui::CollapsingHeader::new("smoothness").default_open(meter.conditioner.is_active()).show(ui, |ui| {
                smoothness_details(ui, &meter, &snapshot);
            });
            ui.small("WASD or arrow keys to walk, Enter to chat");
        },
    );
    Ok(())
}

/// How smooth play has been since the window opened: the server's corrections of your
/// predicted position, and of the others already drawn, in world units (you are 32 across).
fn smoothness_details(ui: &mut egui::Ui, meter: &SmoothnessMeter, snapshot: &Snapshot) {
    egui::Grid::new("smoothness").num_columns(2).show(ui, |ui| {
        let mut row = |label: &str, value: String| {
            ui.label(label);
            ui.monospace(value);
            ui.end_row();
        };
        if meter.conditioner.is_active() {
            row("link", meter.conditioner.describe());
        }
        let seen = &meter.seen;
        let (p99, max) = (SmoothnessSeen::units(&seen.own, 0.99), SmoothnessSeen::max_units(&seen.own));
        row("your corrections", format!("p99 {p99:.2}, max {max:.1} ({} checked)", seen.own.len()));
        let snaps = (seen.own_snaps, seen.own_snaps_at_handoffs, seen.own_snaps_after_late_inputs);
        row("snaps (> 4 units)", format!("{} ({} at handoffs, {} after late inputs)", snaps.0, snaps.1, snaps.2));
        let (p99, max) = (SmoothnessSeen::units(&seen.others, 0.99), SmoothnessSeen::max_units(&seen.others));
        row("others' error", format!("p99 {p99:.2}, max {max:.1}"));
        // Past the latest update when updates are late: others are extrapolated then.
        // (`+ 0.0` makes a rounded -0 plain 0.)
        let behind = (snapshot.view.stream.shown_behind(Instant::now()) * 1000.0).round() + 0.0;
        let shown = match behind {
            b if b >= 0.0 => format!("{b:.0} ms behind the latest update"),
            b => format!("{:.0} ms past the latest update", -b),
        };
        row("others shown", shown);
    });
}

fn minimap(mut contexts: EguiContexts, snapshot: Res<Snapshot>) -> Result {
    let Some(welcome) = &snapshot.welcome else { return Ok(()) };
    let map = &welcome.map;
    let world = map.world_size();
    let scale = MINIMAP_SIZE / world.x.max(world.y);
    egui::Window::new("Map").anchor(egui::Align2::RIGHT_TOP, [-10.0, 10.0]).resizable(false).collapsible(false).show(
        contexts.ctx_mut()?,
        |ui| {
            let (response, painter) =
                ui.allocate_painter(egui::vec2(world.x * scale, world.y * scale), egui::Sense::hover());
            let origin = response.rect.left_bottom();
            // World y grows upwards; the screen's grows downwards.
            let to_screen = |p: Vec2| egui::pos2(origin.x + p.x * scale, origin.y - p.y * scale);
            for (region, owner) in map.regions() {
                let (min, max) = map.bounds(region);
                let rect = egui::Rect::from_two_pos(to_screen(min), to_screen(max));
                painter.rect_filled(rect, 0.0, to_egui(server_colour(owner), 0.45));
                painter.rect_stroke(
                    rect,
                    0.0,
                    egui::Stroke::new(1.0, egui::Color32::from_white_alpha(90)),
                    egui::StrokeKind::Inside,
                );
            }
            for other in snapshot.view.others() {
                painter.circle_filled(to_screen(other.position), 2.5, egui::Color32::WHITE);
            }
            if let Some(me) = snapshot.view.me {
                painter.circle_filled(to_screen(me.position), 4.0, egui::Color32::from_rgb(255, 215, 64));
                painter.circle_stroke(
                    to_screen(me.position),
                    welcome.view_radius * scale,
                    egui::Stroke::new(1.0, egui::Color32::from_white_alpha(60)),
                );
            }
        },
    );
    Ok(())
}

fn connection_notice(mut contexts: EguiContexts, connection: Res<Connection>, snapshot: Res<Snapshot>) -> Result {
    if matches!(*connection, Connection::InGame { .. }) && snapshot.view.region_offline {
        egui::Window::new("Region offline")
            .anchor(egui::Align2::CENTER_TOP, [0.0, 10.0])
            .resizable(false)
            .collapsible(false)
            .show(contexts.ctx_mut()?, |ui| {
                ui.label("The server of your region is down; the world stands still meanwhile.");
                ui.label("You are still connected, and play on where it last saved you once it is back.");
            });
        return Ok(());
    }
    if let Connection::Stopped { reason } = &*connection {
        egui::Window::new("Not playing")
            .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
            .resizable(false)
            .collapsible(false)
            .show(contexts.ctx_mut()?, |ui| {
                ui.label(reason);
                ui.label("Start again with another --name, or another --profile to be another player.");
            });
        return Ok(());
    }
    let (title, reason, retry_at) = match &*connection {
        Connection::Lost { reason, retry_at } => ("Connection lost", reason.as_str(), retry_at),
        Connection::Full { retry_at } => {
            ("The cluster is full", "Every place is taken; you join as soon as one frees up.", retry_at)
        }
        Connection::Connecting { .. } | Connection::InGame { .. } | Connection::Stopped { .. } => return Ok(()),
    };
    let wait = retry_at.saturating_duration_since(Instant::now()).as_secs_f32();
    egui::Window::new(title).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).resizable(false).collapsible(false).show(
        contexts.ctx_mut()?,
        |ui| {
            ui.label(reason);
            ui.label(if wait > 0.0 { format!("retrying in {wait:.1} s") } else { "retrying now".into() });
        },
    );
    Ok(())
}
