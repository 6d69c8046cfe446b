//! The player listener: greets each player, issues its user id (unique across the
//! cluster: this proxy's id in the high bits), places it at the spawn point, logs it in
//! on the server owning that point, and forwards its input, stamped with its id.

use crate::ProxySettings;
use crate::routing::{ClientRoute, Routing, ToClient};
use rand::Rng;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tessera_shared::Vec2;
use tessera_shared::ids::UserId;
use tessera_shared::link::{Door, Link, LinkError, Outbound, accept_loop};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{ClientToProxy, Hello, MAX_NAME_LEN, ProxyToClient, ProxyToServer, Role, Welcome};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

/// Inputs a player may send per second; a real player changes keys far less often.
pub const MAX_INPUTS_PER_SEC: u32 = 60;

pub async fn accept(
    settings: Arc<ProxySettings>,
    listener: TcpListener,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) {
    let issued = Arc::new(AtomicU64::new(first_user_counter()));
    if let Ok(addr) = listener.local_addr() {
        info!("{} accepting players on {addr}", settings.id);
    }
    accept_loop(listener, shutdown, "player", move |stream, _| {
        let user = UserId::issue(settings.id, issued.fetch_add(1, Ordering::Relaxed));
        let (settings, routing) = (settings.clone(), routing.clone());
        async move {
            let result = serve(stream, user, &settings, &routing).await;
            routing.leave(user);
            info!("{user} left");
            result
        }
    })
    .await
}

async fn serve(stream: TcpStream, user: UserId, settings: &ProxySettings, routing: &Routing) -> Result<(), LinkError> {
    let hello = Hello::new(Role::Proxy(settings.id));
    let (mut link, name) =
        match Link::<ClientToProxy>::open(stream, Door::Public, hello, Some(&routing.stats.clients)).await? {
            (link, Role::Client { name }) => (link, player_name(&name, user)),
            (_, got) => return Err(HandshakeError::Role { expected: "a player", got }.into()),
        };
    let queue = match admit(settings, routing, user, &name, spawn_position(settings)) {
        Ok(queue) => queue,
        Err(reason) => {
            link.send(ProxyToClient::Disconnect { reason: reason.clone() }).await?;
            return Err(LinkError::Refused(reason));
        }
    };
    let mut limiter = RateLimit::new(MAX_INPUTS_PER_SEC);
    link.run(queue, |message| {
        std::future::ready(match message {
            ClientToProxy::Input(_) if !limiter.allow() => {
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
/// welcome first, or why it cannot play now (to tell the player).
pub fn admit(
    settings: &ProxySettings,
    routing: &Routing,
    user: UserId,
    name: &str,
    position: Vec2,
) -> Result<mpsc::Receiver<ToClient>, String> {
    let map = settings.cluster.region_map();
    let owner = map.owner_at(position).ok_or_else(|| format!("{position} is outside the world"))?;
    if !routing.is_server_up(owner) {
        return Err(format!("{owner}, which holds the spawn point, is unreachable; try again shortly"));
    }
    let (outbound, queue) = Outbound::channel();
    let welcome = Welcome {
        user,
        proxy: settings.id,
        map,
        view_radius: settings.cluster.simulation.view_radius,
        tick_hz: settings.cluster.simulation.tick_hz,
    };
    outbound.send(ProxyToClient::Welcome(welcome).into()).expect("a new queue has room");
    let route = ClientRoute { outbound, owner, epoch: 0 };
    routing
        .join(user, route, ProxyToServer::Login { user, name: name.into(), position })
        .map_err(|err| err.to_string())?;
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

/// A token bucket holding one second's worth of inputs.
struct RateLimit {
    per_sec: u32,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(per_sec: u32) -> Self {
        Self { per_sec, tokens: f64::from(per_sec), last: Instant::now() }
    }

    fn allow(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * f64::from(self.per_sec);
        self.tokens = (self.tokens + refill).min(f64::from(self.per_sec));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
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

    #[test]
    fn the_rate_limit_allows_a_second_of_burst_then_refuses() {
        let mut limit = RateLimit::new(10);
        assert!((0..10).all(|_| limit.allow()));
        assert!(!limit.allow());
    }
}
