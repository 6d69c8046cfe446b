//! Chat on screen: a panel at the bottom left with the last lines heard (a line to
//! everyone tagged and in gold, a line from near in white, the speaker's name in colour),
//! where Enter opens a line to type, Enter says it and Esc leaves it unsaid; a line
//! starting with `/all ` is said to everyone, any other to the players near you. While
//! typing, the keys walk nobody. What a player near you says shows for a few seconds in
//! a bubble above its disc. The lines come from the connection, which takes them from
//! the player's view as heard (`tessera_player::ChatLog`); saying goes through it too,
//! to `tessera_player::Player::say`, which cleans the line to the chat rule.

use crate::connection::ChatOut;
use crate::world::{Avatars, Overhead};
use bevy::prelude::*;
use bevy::sprite::Anchor;
use bevy::text::{Justify, TextBounds};
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tessera_shared::chat::MAX_CHAT_LEN;
use tessera_shared::protocol::{ChatChannel, ChatLine};

/// Lines the panel keeps.
const HISTORY: usize = 100;
/// What starts a line to everyone.
const TO_EVERYONE: &str = "/all ";
/// How long a bubble stays above its speaker.
const BUBBLE_FOR: Duration = Duration::from_secs(5);
/// Where a bubble's bottom sits above its speaker's centre: above the name.
const BUBBLE_HEIGHT: f32 = 46.0;
/// How wide a bubble's text runs before it wraps.
const BUBBLE_WIDTH: f32 = 240.0;

const EVERYONE_GOLD: egui::Color32 = egui::Color32::from_rgb(255, 205, 90);
const NEAR_NAME: egui::Color32 = egui::Color32::from_rgb(130, 190, 255);

/// What the connection hears of chat.
#[derive(Message, Debug, Clone)]
pub enum ChatHeard {
    Line(ChatLine),
    /// The player's last line was dropped: it said too much too fast.
    Throttled,
}

/// What the panel shows, and what is being typed.
#[derive(Resource, Default)]
pub struct ChatPanel {
    history: VecDeque<Shown>,
    /// A line is being typed: the keys walk nobody meanwhile.
    typing: bool,
    draft: String,
}

impl ChatPanel {
    pub fn typing(&self) -> bool {
        self.typing
    }

    fn show(&mut self, shown: Shown) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(shown);
    }
}

enum Shown {
    Line(ChatLine),
    Notice(&'static str),
}

/// A bubble above a speaker, until it is due to go.
#[derive(Component)]
struct Bubble {
    until: Instant,
}

pub struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ChatPanel>()
            .add_message::<ChatHeard>()
            .add_systems(Update, (show_heard, pop_bubbles))
            .add_systems(EguiPrimaryContextPass, chat_panel);
    }
}

/// What was heard goes in the panel, and in a bubble above its speaker if said near
/// and the speaker is on screen (one bubble each: a new line replaces the last).
fn show_heard(
    mut commands: Commands,
    mut heard: MessageReader<ChatHeard>,
    mut panel: ResMut<ChatPanel>,
    avatars: Res<Avatars>,
    bubbles: Query<(Entity, &ChildOf), With<Bubble>>,
) {
    for heard in heard.read() {
        let line = match heard {
            ChatHeard::Throttled => {
                panel.show(Shown::Notice("You are saying too much too fast: a line was not sent."));
                continue;
            }
            ChatHeard::Line(line) => line,
        };
        panel.show(Shown::Line(line.clone()));
        let Some(avatar) = avatars.entity(line.speaker).filter(|_| line.channel == ChatChannel::Near) else {
            continue;
        };
        for (older, _) in bubbles.iter().filter(|(_, parent)| parent.parent() == avatar) {
            commands.entity(older).despawn();
        }
        commands.entity(avatar).with_child((
            Bubble { until: Instant::now() + BUBBLE_FOR },
            Overhead,
            Text2d::new(line.text.clone()),
            TextFont::from_font_size(14.0),
            TextColor(Color::srgb(0.10, 0.10, 0.12)),
            TextBackgroundColor(Color::srgba(0.96, 0.96, 0.92, 0.92)),
            TextLayout::justify(Justify::Center),
            TextBounds::new_horizontal(BUBBLE_WIDTH),
            Anchor::BOTTOM_CENTER,
            Transform::from_xyz(0.0, BUBBLE_HEIGHT, 3.0),
        ));
    }
}

fn pop_bubbles(mut commands: Commands, bubbles: Query<(Entity, &Bubble)>) {
    let now = Instant::now();
    for (entity, _) in bubbles.iter().filter(|(_, bubble)| bubble.until <= now) {
        commands.entity(entity).despawn();
    }
}

/// The panel: the lines heard, and the line being typed. Enter opens it, Enter says it,
/// Esc leaves it unsaid.
fn chat_panel(
    mut contexts: EguiContexts,
    keys: Res<ButtonInput<KeyCode>>,
    mut panel: ResMut<ChatPanel>,
    out: Res<ChatOut>,
) -> Result {
    // The Enter that opens the field is not the one that says what is in it.
    let was_typing = panel.typing;
    if !was_typing && keys.any_just_pressed([KeyCode::Enter, KeyCode::NumpadEnter]) {
        panel.typing = true;
    }
    let panel = &mut *panel;
    egui::Window::new("Chat")
        .anchor(egui::Align2::LEFT_BOTTOM, [10.0, -10.0])
        .title_bar(false)
        .resizable(false)
        .default_width(400.0)
        .show(contexts.ctx_mut()?, |ui| {
            ui.set_width(400.0);
            egui::ScrollArea::vertical().max_height(180.0).stick_to_bottom(true).auto_shrink([false, true]).show(
                ui,
                |ui| {
                    for shown in &panel.history {
                        show_line(ui, shown);
                    }
                },
            );
            ui.separator();
            if panel.typing {
                let to = match panel.draft.starts_with(TO_EVERYONE) {
                    true => egui::RichText::new("to everyone").color(EVERYONE_GOLD),
                    false => egui::RichText::new("to those near").color(NEAR_NAME),
                };
                ui.horizontal(|ui| {
                    ui.label(to);
                    let edit = egui::TextEdit::singleline(&mut panel.draft)
                        .char_limit(MAX_CHAT_LEN)
                        .desired_width(f32::INFINITY)
                        .hint_text("Enter to say it, Esc to leave it");
                    let typed = ui.add(edit);
                    // Enter and Esc as the text field has them, after every key typed
                    // before them in the same frame (typed fast on a slow frame, the
                    // last letters would be lost otherwise).
                    let (enter, escape) =
                        ui.input(|input| (input.key_pressed(egui::Key::Enter), input.key_pressed(egui::Key::Escape)));
                    if escape {
                        panel.typing = false;
                        panel.draft.clear();
                    } else if enter && was_typing {
                        let draft = std::mem::take(&mut panel.draft);
                        let (channel, text) = match draft.strip_prefix(TO_EVERYONE) {
                            Some(text) => (ChatChannel::Everyone, text),
                            None => (ChatChannel::Near, draft.as_str()),
                        };
                        // Nothing to say, or the connection is gone: the line goes nowhere either way.
                        let _ = out.0.send((channel, text.to_owned()));
                        panel.typing = false;
                    } else {
                        typed.request_focus();
                    }
                });
            } else {
                ui.weak(format!("Enter to chat with those near you; start with {TO_EVERYONE}to say it to everyone"));
            }
        });
    Ok(())
}

fn show_line(ui: &mut egui::Ui, shown: &Shown) {
    let line = match shown {
        Shown::Notice(notice) => {
            ui.label(egui::RichText::new(*notice).italics().weak());
            return;
        }
        Shown::Line(line) => line,
    };
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        let (name_colour, text_colour) = match line.channel {
            ChatChannel::Everyone => {
                ui.label(egui::RichText::new("[all]").color(EVERYONE_GOLD).small());
                (EVERYONE_GOLD, egui::Color32::from_rgb(255, 236, 190))
            }
            ChatChannel::Near => (NEAR_NAME, egui::Color32::from_gray(230)),
        };
        ui.label(egui::RichText::new(format!("{}:", line.name)).color(name_colour).strong());
        ui.label(egui::RichText::new(&line.text).color(text_colour));
    });
}
