//! The connection to the cluster, on a tokio runtime beside the app: join through a
//! proxy picked at random, send the keys held whenever they change (none while a chat
//! line is being typed) and the chat lines said, receive updates and chat lines, and
//! on any loss say why and rejoin with backoff (`tessera_player::Rejoin`; a full cluster
//! is said as such, and waited for longer). A lost connection resumes its session
//! through a proxy at once: the same place, view and inputs. Two things end the rejoining for good, since
//! trying again cannot help: the name asked for is refused, or the same player signed in
//! again somewhere else (two windows of one profile would otherwise take the player from
//! each other forever). The app sees [`Connection`] and the latest [`Snapshot`]; nothing
//! here ever blocks a frame.

use crate::chat::{ChatHeard, ChatPanel};
use bevy::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tessera_player::prediction::Prediction;
use tessera_player::smoothness::SmoothnessSeen;
use tessera_player::{Conditioner, Player, PlayerError, Rejoin, Smoothness, WorldView};
use tessera_shared::bridge::{Inbox, InboxSender, NetRuntime, inbox};
use tessera_shared::components::Keys;
use tessera_shared::identity::Identity;
use tessera_shared::link::{Outbound, Traffic};
use tessera_shared::protocol::{ChatChannel, ChatLine, Welcome};
use tokio::sync::mpsc;

/// What the player sees of the connection.
#[derive(Resource, Debug, Clone, PartialEq)]
pub enum Connection {
    Connecting {
        proxy: String,
    },
    InGame {
        proxy: String,
    },
    Lost {
        reason: String,
        retry_at: Instant,
    },
    /// The proxy asked has all the players it may take.
    Full {
        retry_at: Instant,
    },
    /// Playing is over for this window, and why: the name was refused, or the player
    /// signed in again elsewhere.
    Stopped {
        reason: String,
    },
}

/// The last update from the server, as received.
#[derive(Resource, Default)]
pub struct Snapshot {
    /// Who this player is, and the name it plays under, as the proxy welcomed it.
    pub welcome: Option<Welcome>,
    pub view: WorldView,
    /// Milliseconds from a key press to the first update reflecting it.
    pub round_trip_ms: Option<f64>,
    /// The keys held, as last sent.
    pub keys_sent: Keys,
    /// Where the player is, predicted from its keys and checked against the server.
    pub prediction: Option<Prediction>,
    /// Sessions resumed since the window opened, each after a lost connection.
    pub resumes: u32,
    /// When the player last came back: its session resumed, or its region back online.
    pub back_at: Option<Instant>,
    /// Whether updates come by datagram, and if so how many were found lost (each
    /// made good by a full update).
    pub updates_lost: Option<u64>,
    /// Whether key presses go by datagram, and if so how many were sent again: by
    /// datagram, found late, and by TCP, their datagrams lost.
    pub keys_sent_again: Option<KeysSentAgain>,
}

/// Key presses sent again ([`Snapshot::keys_sent_again`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeysSentAgain {
    pub by_datagram: u64,
    pub by_tcp: u64,
}

/// Bytes in and out per second, measured over the last second.
#[derive(Resource, Default)]
pub struct Bandwidth {
    pub traffic: Traffic,
    last: (u64, u64),
    since: Option<Instant>,
    pub in_per_sec: f64,
    pub out_per_sec: f64,
}

enum FromNet {
    Connecting {
        proxy: String,
    },
    Joined {
        proxy: String,
        welcome: Box<Welcome>,
    },
    View {
        view: Box<WorldView>,
        prediction: Box<Prediction>,
        smoothness: Smoothness,
        round_trip_ms: Option<f64>,
        updates_lost: Option<u64>,
        keys_sent_again: Option<KeysSentAgain>,
    },
    /// Chat lines heard since the last, and whether the player was told it says too
    /// much too fast.
    Heard {
        lines: Vec<ChatLine>,
        throttled: bool,
    },
    /// `reason` is `None` when the cluster was full.
    Lost {
        reason: Option<String>,
        retry_in: Duration,
    },
    Stopped {
        reason: String,
    },
}

/// Where key presses go, with when they were pressed.
#[derive(Resource)]
struct KeysOut(Outbound<(Keys, Instant)>);

/// How smooth play has looked since the window opened, update by update: the player's
/// own predicted position as the server corrected it, and the others shown.
#[derive(Resource)]
pub struct SmoothnessMeter {
    pub seen: SmoothnessSeen,
    /// What the link goes through, if anything.
    pub conditioner: Conditioner,
}

/// Where chat lines said go.
#[derive(Resource)]
pub struct ChatOut(pub Outbound<(ChatChannel, String)>);

pub struct ConnectionPlugin {
    pub proxies: Vec<String>,
    /// What the player's link goes through.
    pub conditioner: Conditioner,
    /// Who the player is: its profile's key.
    pub identity: Identity,
    /// The name asked for (a player that has one keeps it).
    pub name: String,
}

impl Plugin for ConnectionPlugin {
    fn build(&self, app: &mut App) {
        let runtime = NetRuntime::new("client-net", 1).expect("the network runtime starts");
        let (events, inbox) = inbox::<FromNet>(1024);
        let (keys, keys_in) = Outbound::channel();
        let (chat, chat_in) = Outbound::channel();
        let traffic = Traffic::default();
        let rejoin = Rejoin::new(self.proxies.clone(), self.identity.clone(), self.name.clone())
            .counting(traffic.clone())
            .conditioned(self.conditioner);
        runtime.handle().spawn(stay_connected(rejoin, events, Said { keys: keys_in, chat: chat_in }));
        app.insert_resource(runtime)
            .insert_resource(inbox)
            .insert_resource(KeysOut(keys))
            .insert_resource(ChatOut(chat))
            .insert_resource(Connection::Connecting { proxy: String::new() })
            .insert_resource(Bandwidth { traffic, ..default() })
            .insert_resource(SmoothnessMeter { seen: SmoothnessSeen::default(), conditioner: self.conditioner })
            .init_resource::<Snapshot>()
            .add_systems(PreUpdate, receive)
            .add_systems(Update, (send_keys, measure_bandwidth));
    }
}

fn receive(
    inbox: Res<Inbox<FromNet>>,
    mut connection: ResMut<Connection>,
    mut snapshot: ResMut<Snapshot>,
    mut meter: ResMut<SmoothnessMeter>,
    mut heard: MessageWriter<ChatHeard>,
) {
    for event in inbox.drain() {
        match event {
            FromNet::Connecting { proxy } => *connection = Connection::Connecting { proxy },
            FromNet::Joined { proxy, welcome } => {
                *connection = Connection::InGame { proxy };
                let (resumed, resumes) = (welcome.resumed, snapshot.resumes);
                *snapshot = Snapshot {
                    welcome: Some(*welcome),
                    resumes: resumes + u32::from(resumed),
                    back_at: resumed.then(Instant::now),
                    ..default()
                };
            }
            FromNet::View { view, prediction, smoothness, round_trip_ms, updates_lost, keys_sent_again } => {
                (snapshot.updates_lost, snapshot.keys_sent_again) = (updates_lost, keys_sent_again);
                if snapshot.view.region_offline && !view.region_offline {
                    snapshot.back_at = Some(Instant::now());
                }
                meter.seen.record(&smoothness);
                snapshot.view = *view;
                let mut prediction = *prediction;
                if prediction.keys() != snapshot.keys_sent {
                    // Pressed here since the connection sent this: walk on with them.
                    prediction.press(snapshot.keys_sent, Instant::now());
                }
                snapshot.prediction = Some(prediction);
                if round_trip_ms.is_some() {
                    snapshot.round_trip_ms = round_trip_ms;
                }
            }
            FromNet::Heard { lines, throttled } => {
                heard.write_batch(lines.into_iter().map(ChatHeard::Line));
                if throttled {
                    heard.write(ChatHeard::Throttled);
                }
            }
            FromNet::Lost { reason, retry_in } => {
                let retry_at = Instant::now() + retry_in;
                *connection = match reason {
                    Some(reason) => Connection::Lost { reason, retry_at },
                    None => Connection::Full { retry_at },
                };
            }
            FromNet::Stopped { reason } => *connection = Connection::Stopped { reason },
        }
    }
}

/// The keys the player holds now: WASD or arrows.
pub fn held_keys(input: &ButtonInput<KeyCode>) -> Keys {
    let mut keys = Keys::empty();
    let any = |codes: [KeyCode; 2]| codes.iter().any(|&code| input.pressed(code));
    keys.set(Keys::UP, any([KeyCode::KeyW, KeyCode::ArrowUp]));
    keys.set(Keys::DOWN, any([KeyCode::KeyS, KeyCode::ArrowDown]));
    keys.set(Keys::LEFT, any([KeyCode::KeyA, KeyCode::ArrowLeft]));
    keys.set(Keys::RIGHT, any([KeyCode::KeyD, KeyCode::ArrowRight]));
    keys
}

fn send_keys(
    input: Res<ButtonInput<KeyCode>>,
    chat: Res<ChatPanel>,
    keys_out: Res<KeysOut>,
    mut snapshot: ResMut<Snapshot>,
) {
    let keys = if chat.typing() { Keys::empty() } else { held_keys(&input) };
    let now = Instant::now();
    if keys != snapshot.keys_sent && keys_out.0.send((keys, now)).is_ok() {
        snapshot.keys_sent = keys;
        // Walk at once: the copy here presses as the connection's will.
        if let Some(prediction) = &mut snapshot.prediction {
            prediction.press(keys, now);
        }
    }
}

fn measure_bandwidth(mut bandwidth: ResMut<Bandwidth>) {
    let now = Instant::now();
    let since = *bandwidth.since.get_or_insert(now);
    let elapsed = now.duration_since(since).as_secs_f64();
    if elapsed < 1.0 {
        return;
    }
    let totals =
        (bandwidth.traffic.bytes_in.load(Ordering::Relaxed), bandwidth.traffic.bytes_out.load(Ordering::Relaxed));
    bandwidth.in_per_sec = (totals.0 - bandwidth.last.0) as f64 / elapsed;
    bandwidth.out_per_sec = (totals.1 - bandwidth.last.1) as f64 / elapsed;
    bandwidth.last = totals;
    bandwidth.since = Some(now);
}

/// What the player says to the network task: the keys it holds, the chat lines it says.
struct Said {
    /// Each change of the keys held, and when it was pressed.
    keys: mpsc::Receiver<(Keys, Instant)>,
    chat: mpsc::Receiver<(ChatChannel, String)>,
}

/// Joins, plays, and rejoins after any loss, until the app goes away or rejoining
/// cannot help.
async fn stay_connected(mut rejoin: Rejoin, events: InboxSender<FromNet>, mut said: Said) {
    loop {
        let proxy = rejoin.pick_proxy();
        if events.send(FromNet::Connecting { proxy: proxy.clone() }).await.is_err() {
            return;
        }
        let lost = match rejoin.attempt(&proxy).await {
            Ok(mut player) => {
                let welcome = Box::new(player.welcome.clone());
                if events.send(FromNet::Joined { proxy: proxy.clone(), welcome }).await.is_err() {
                    return;
                }
                match play(&mut player, &events, &mut said).await {
                    // The connection was lost, not the session: it resumes through a proxy.
                    Some(lost @ PlayerError::Link(_)) => {
                        rejoin.resume_with(&player);
                        lost
                    }
                    Some(lost) => lost,
                    None => return,
                }
            }
            Err(err) => err,
        };
        let reason = match lost {
            PlayerError::ClusterFull => None,
            err @ (PlayerError::NameRefused(_) | PlayerError::SignedInAgain) => {
                let _ = events.send(FromNet::Stopped { reason: err.to_string() }).await;
                return;
            }
            err => Some(err.to_string()),
        };
        let retry_in = rejoin.next_wait();
        if events.send(FromNet::Lost { reason, retry_in }).await.is_err() {
            return;
        }
        tokio::time::sleep(retry_in).await;
    }
}

/// Plays until the connection is lost (and says why), or the game closes (`None`).
async fn play(player: &mut Player, events: &InboxSender<FromNet>, said: &mut Said) -> Option<PlayerError> {
    let mut sent_at: HashMap<u32, Instant> = HashMap::new();
    // Chat lines of this connection's view passed on, and dropped lines told.
    let (mut lines_taken, mut throttled_told) = (0, 0);
    loop {
        tokio::select! {
            pressed = said.keys.recv() => {
                let (pressed, at) = pressed?;
                match player.press_at(pressed, at).await {
                    Ok(seq) => { sent_at.insert(seq, at); }
                    Err(err) => return Some(err),
                }
            }
            line = said.chat.recv() => {
                let (channel, text) = line?;
                if let Err(err) = player.say(channel, &text).await {
                    return Some(err);
                }
            }
            received = player.receive() => {
                let view = match received {
                    Ok(view) => view.clone(),
                    Err(err) => return Some(err),
                };
                let chat = &view.chat;
                if chat.heard > lines_taken || chat.throttled > throttled_told {
                    let lines = chat.since(lines_taken).cloned().collect();
                    let throttled = chat.throttled > throttled_told;
                    (lines_taken, throttled_told) = (chat.heard, chat.throttled);
                    events.send(FromNet::Heard { lines, throttled }).await.ok()?;
                }
                let acked: Vec<u32> = sent_at.keys().copied().filter(|&seq| seq <= view.last_input).collect();
                let round_trip_ms = acked.iter().filter_map(|seq| sent_at.remove(seq)).map(|at| at.elapsed().as_secs_f64() * 1000.0).reduce(f64::min);
                let update = FromNet::View {
                    view: Box::new(view),
                    prediction: Box::new(player.prediction.clone()),
                    smoothness: player.smoothness.clone(),
                    round_trip_ms,
                    updates_lost: player.datagrams.as_ref().filter(|d| d.flowing()).map(|_| player.losses.count),
                    keys_sent_again: player
                        .datagrams
                        .as_ref()
                        .filter(|d| d.takes_inputs(Instant::now()))
                        .map(|_| KeysSentAgain {
                            by_datagram: player.late_inputs_sent_again,
                            by_tcp: player.inputs_sent_again,
                        }),
                };
                events.send(update).await.ok()?;
            }
        }
    }
}
