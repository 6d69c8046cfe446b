//! Chat: what this server's players say, sent to whoever hears it. A player's line
//! comes from the proxy that speaks for it, stamped with its id and cleaned there, or
//! from the peer that handed the player here (a line that reached it just after the
//! handoff); anyone else's word for a player is ignored, as its input would be. A line
//! for a player this server just handed on is the handoff's to forward.
//!
//! Said near, a line is heard by the players here who have the speaker within their
//! view radius, and relayed to every peer subscribed to the speaker's cell: a peer
//! subscribes to the cells its players' view discs touch, so every player elsewhere
//! who sees the speaker is behind one of them, and each delivers the line to its own
//! players in range of where the speaker stands. Said to everyone, a line is heard by
//! every player here and relayed to every peer (the servers are a full mesh), each
//! delivering it to all of its own. A line's hearers behind one proxy go to it in one
//! message, which it queues for each of them; the speaker hears its own line too, as
//! everyone else hears it. All of it in `PostUpdate`, after the tick: a line is heard
//! around where its speaker stands now.

use crate::components::Visible;
use crate::net::{ChatRelayed, ChatSaid, NetSystems, PeerLinks, ProxyLinks};
use crate::players::{Parked, Player, Players};
use crate::regions::publisher::{Publications, home_cell};
use crate::settings::ServerSettings;
use bevy::prelude::*;
use std::collections::HashMap;
use tessera_shared::components::Position;
use tessera_shared::ids::{ProxyId, ServerId, UserId};
use tessera_shared::protocol::{ChatChannel, ChatLine, MAX_ENTITIES_PER_MESSAGE, PeerMessage, ServerToProxy};
use tracing::{debug, warn};

pub struct ChatPlugin;

impl Plugin for ChatPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(PostUpdate, say_lines.in_set(NetSystems::Send));
    }
}

/// The players here who can hear: those whose proxy is there to hear for them.
type Hearers<'w, 's> = Query<'w, 's, (&'static UserId, &'static Player, &'static Position), Without<Parked>>;

#[allow(clippy::too_many_arguments)]
fn say_lines(
    mut said: MessageReader<ChatSaid>,
    mut relayed: MessageReader<ChatRelayed>,
    settings: Res<ServerSettings>,
    players: Res<Players>,
    speakers: Query<(&Player, &Position, &Visible)>,
    hearers: Hearers,
    publications: Res<Publications>,
    mut proxies: ResMut<ProxyLinks>,
    mut peers: ResMut<PeerLinks>,
) {
    let radius = settings.view_radius();
    for ChatSaid { user, channel, text, via } in said.read() {
        let Some((player, position, visible)) = players.0.get(user).and_then(|&entity| speakers.get(entity).ok())
        else {
            debug!("a chat line of {user}, who is not here");
            continue;
        };
        if !player.speaks_for(*via) {
            warn!("ignoring a chat line of {user} from {via:?}, which does not speak for the player");
            continue;
        }
        let line =
            ChatLine { speaker: user.entity(), name: visible.name.to_string(), channel: *channel, text: text.clone() };
        let at = position.0;
        let relay_to: Vec<ServerId> = match channel {
            ChatChannel::Near => {
                let subscribers = home_cell(&settings, at).and_then(|cell| publications.subscribers.get(&cell));
                subscribers.into_iter().flatten().copied().collect()
            }
            ChatChannel::Everyone => peers.ids().collect(),
        };
        for peer in relay_to {
            peers.send(peer, PeerMessage::Chat { line: line.clone(), at });
        }
        deliver(&line, at, radius, &hearers, &mut proxies);
    }
    for ChatRelayed { line, at, .. } in relayed.read() {
        deliver(line, *at, radius, &hearers, &mut proxies);
    }
}

/// Sends `line`, said at `at`, to the players here who hear it (within `radius` of it,
/// if it was said near), in one message per proxy.
fn deliver(line: &ChatLine, at: Vec2, radius: f32, hearers: &Hearers, proxies: &mut ProxyLinks) {
    let mut to: HashMap<ProxyId, Vec<UserId>> = HashMap::new();
    let near = line.channel == ChatChannel::Near;
    for (&user, player, position) in hearers {
        if !near || position.0.distance_squared(at) <= radius * radius {
            to.entry(player.proxy).or_default().push(user);
        }
    }
    for (proxy, users) in to {
        for users in users.chunks(MAX_ENTITIES_PER_MESSAGE) {
            proxies.send(proxy, ServerToProxy::Chat { line: line.clone(), to: users.to_vec() });
        }
    }
}
