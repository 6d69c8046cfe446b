//! The player listener: admits each connection at the front door (`tessera_shared::link::admission`),
//! greets each player, issues its user id (unique across the cluster: this proxy's id
//! in the high bits), places it at the spawn point, logs it in on the server owning that
//! point (unless the proxy has all the players it may take: then the player is told the
//! cluster is full), and forwards its input, stamped with its id.
//!
//! A connection refused at the door is closed on the spot by the shared accept loop,
//! costing no task, no buffer and no log line above debug, however many arrive.

use crate::ProxySettings;
use crate::client_queue::{ClientQueue, QueuedFrame};
use crate::routing::{ClientRoute, Routing};
use rand::Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shared::Vec2;
use tessera_shared::ids::UserId;
use tessera_shared::link::admission::Admission;
use tessera_shared::link::{Door, Link, LinkError, accept_loop};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{ClientToProxy, Hello, MAX_NAME_LEN, ProxyToClient, ProxyToServer, Role, Welcome};
use tessera_shared::rate::Rate;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Inputs a player may send per second; a real player changes keys far less often.
pub const MAX_INPUTS_PER_SEC: u32 = 60;

/// Accepts players until `shutdown`, each connection admitted or closed at once, each
/// admitted one served on a task of its own.
pub async fn accept(
    settings: Arc<ProxySettings>,
    listener: TcpListener,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) {
    let admission = Admission::new(settings.limits.admission());
    let mut issued = first_user_counter();
    if let Ok(addr) = listener.local_addr() {
        info!("{} accepting players on {addr}", settings.id);
    }
    accept_loop(listener, shutdown, "player", |stream, peer| {
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                routing.stats.refused(refusal.into());
                debug!("refused a connection from {peer}: {refusal:?}");
                return None;
            }
        };
        issued = issued.wrapping_add(1);
        let user = UserId::issue(settings.id, issued);
        let (settings, routing) = (settings.clone(), routing.clone());
        Some(async move {
            let result = serve(stream, peer, user, &settings, &routing).await;
            routing.leave(user);
            drop(slot);
            info!("{user} from {peer} left");
            result
        })
    })
    .await
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    user: UserId,
    settings: &ProxySettings,
    routing: &Routing,
) -> Result<(), LinkError> {
    let hello = Hello::new(Role::Proxy(settings.id));
    let (mut link, name) =
        match Link::<ClientToProxy>::open(stream, Door::Public, hello, Some(&routing.stats.clients)).await? {
            (link, Role::Client { name }) => {
                let deadline = Duration::from_millis(settings.limits.frame_deadline_ms);
                (link.with_frame_deadline(deadline), player_name(&name, user))
            }
            (_, got) => return Err(HandshakeError::Role { expected: "a player", got }.into()),
        };
    let queue = match admit(settings, routing, user, &name, spawn_position(settings)) {
        Ok(queue) => queue,
        Err(reason) => {
            link.send(ProxyToClient::Disconnect { reason: reason.clone() }).await?;
            return Err(LinkError::Refused(reason));
        }
    };
    debug!("{user} ({name}) plays from {peer}");
    let inputs = Rate::new(f64::from(MAX_INPUTS_PER_SEC), f64::from(MAX_INPUTS_PER_SEC));
    let mut limiter = inputs.full_bucket(Instant::now());
    link.run(queue, |message| {
        std::future::ready(match message {
            ClientToProxy::Input(_) if !limiter.take(&inputs, Instant::now()) => {
                Err(Violation::InputFlood { per_sec: MAX_INPUTS_PER_SEC }.into())
            }
            ClientToProxy::Input(input) => routing
                .from_client(user, ProxyToServer::Input { user, input })
                .map_err(|err| LinkError::Refused(err.to_string())),
        })
    })
    .await
}

/// Admits `user`, called `name`, at `position`: registers its route and logs it in on
/// the server owning that point. Returns the queue of what goes to the player, its
/// welcome first, or why it cannot play now (to tell the player): the cluster is full,
/// or the spawn point's server is down.
pub fn admit(
    settings: &ProxySettings,
    routing: &Routing,
    user: UserId,
    name: &str,
    position: Vec2,
) -> Result<mpsc::Receiver<QueuedFrame>, String> {
    let map = settings.cluster.region_map();
    let owner = map.owner_at(position).ok_or_else(|| format!("{position} is outside the world"))?;
    if !routing.is_server_up(owner) {
        return Err(format!("{owner}, which holds the spawn point, is unreachable; try again shortly"));
    }
    let (outbound, queue) = ClientQueue::channel(settings.limits.max_queued_bytes_per_player);
    let welcome = Welcome {
        user,
        proxy: settings.id,
        map,
        view_radius: settings.cluster.simulation.view_radius,
        tick_hz: settings.cluster.simulation.tick_hz,
    };
    outbound.send(ProxyToClient::Welcome(welcome).into()).map_err(|err| format!("cannot welcome you: {err}"))?;
    let route = ClientRoute { outbound, owner, epoch: 0 };
    let login = ProxyToServer::Login { user, name: name.into(), position };
    routing.join(user, route, login, settings.limits.max_players).map_err(|err| err.to_string())?;
    info!("{user} ({name}) joined on {owner}");
    Ok(queue)
}

/// Where this run of the proxy starts counting users: from the clock, 64 per
/// millisecond, so a restarted proxy never reissues an id its previous run gave out
/// (which servers may still hold) unless that run admitted 64,000 players a second.
fn first_user_counter() -> u64 {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    millis << 6
}

/// The name a player asked for, cleaned up, or one made from its id.
fn player_name(asked: &str, user: UserId) -> String {
    let cleaned: String = asked.chars().filter(|c| !c.is_control()).collect();
    let mut name = cleaned.trim().to_string();
    while name.len() > MAX_NAME_LEN {
        name.pop();
    }
    if name.is_empty() { format!("player-{}", user.0 & 0xffff) } else { name }
}

fn spawn_position(settings: &ProxySettings) -> Vec2 {
    let world = &settings.cluster.world;
    let mut rng = rand::rng();
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let distance = world.spawn_radius * rng.random::<f32>().sqrt();
    let point = settings.cluster.spawn_point() + Vec2::from_angle(angle) * distance;
    settings.cluster.region_map().clamp_to_world(point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned_and_bounded() {
        let user = UserId(7);
        assert_eq!(player_name("  ada\n", user), "ada");
        assert_eq!(player_name("", user), "player-7");
        assert_eq!(player_name(&"é".repeat(40), user).len(), MAX_NAME_LEN);
    }
}
