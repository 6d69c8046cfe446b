//! The player listener: admits each connection at the front door (`tessera_shared::link::admission`),
//! greets each player, has it prove who it is ([`crate::join`]: its id is its key's, its
//! name and place its record's), logs it in on the server owning where it was (unless
//! the proxy has all the players it may take: then the player is told the cluster is
//! full), and forwards its input and what it says ([`crate::chat`]), stamped with its id.
//!
//! A connection refused at the door is closed on the spot by the shared accept loop,
//! costing no task, no buffer and no log line above debug, however many arrive.

use crate::ProxySettings;
use crate::chat::ChatGate;
use crate::client_queue::{ClientQueue, ClientSink};
use crate::join::{Begin, Joined, join};
use crate::routing::{ClientRoute, RouteError, Routing, Session, Start};
use crate::stats::{ProxyStats, Refusal};
use crate::tickets::Tickets;
use rand::Rng;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_shared::Vec2;
use tessera_shared::framing::WireError;
use tessera_shared::identity::PlayerKey;
use tessera_shared::ids::UserId;
use tessera_shared::link::admission::Admission;
use tessera_shared::link::alarm::HeardElsewhere;
use tessera_shared::link::{Door, Link, LinkError, SILENCE_LIMIT, accept_loop};
use tessera_shared::protocol::datagram::{DatagramTag, RESYNC_WAIT};
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{ClientToProxy, EntityName, Hello, ProxyToClient, ProxyToServer, Role, Welcome};
use tessera_shared::rate::Rate;
use tessera_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Messages (inputs and chat lines) a player may send per second; a real player
/// changes keys far less often, and its chat lines have a rate of their own far below.
pub const MAX_INPUTS_PER_SEC: u32 = 60;

/// The bucket of a player's messages by its link, and of its inputs by datagram
/// (`crate::routing`): a second's worth, refilled at [`MAX_INPUTS_PER_SEC`].
pub const INPUT_RATE: Rate = Rate::new(MAX_INPUTS_PER_SEC as f64, MAX_INPUTS_PER_SEC as f64);

/// How long what this end sends a player on its link may go unacknowledged before its
/// host is taken for gone: a link's silence limit, counted on our side instead of its
/// client's, since a client says nothing while its player presses nothing
/// (`tessera_shared::link::PLAYER_HEARTBEAT_EVERY`). This end writes to every player
/// sent its updates by its link at least every other second (a frame, or a heartbeat
/// after a second without one), so a host that vanished is noticed within 5 to 7 s.
const UNACKNOWLEDGED_LIMIT: Duration = SILENCE_LIMIT;

/// How long a player's link may be idle before its kernel probes it (TCP keepalive): the
/// link of a player sent its updates by datagram, which carries nothing while they come.
/// A probe costs neither end's program anything (the player's kernel answers it), and one
/// left unanswered counts against [`UNACKNOWLEDGED_LIMIT`] as a write does: such a
/// player's host that vanished is noticed within 5 s of its last answer (within 7 s
/// of vanishing, as one whose link carries frames).
const PROBE_IDLE_LINK_AFTER: Duration = Duration::from_secs(4);

/// Has the kernel close `stream` once what we send on it (what we write, or the probes
/// of its idle link after [`PROBE_IDLE_LINK_AFTER`], a second apart) stays
/// unacknowledged for [`UNACKNOWLEDGED_LIMIT`] (`TCP_USER_TIMEOUT`).
#[cfg(target_os = "linux")]
fn notice_vanished_host(stream: &TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let probes = socket2::TcpKeepalive::new().with_time(PROBE_IDLE_LINK_AFTER).with_interval(Duration::from_secs(1));
    socket.set_tcp_keepalive(&probes)?;
    socket.set_tcp_user_timeout(Some(UNACKNOWLEDGED_LIMIT))
}

/// Where the kernel has no user timeout, a player's host that vanished is noticed only
/// by its silence (`tessera_shared::link::PLAYER_SILENCE_LIMIT`).
#[cfg(not(target_os = "linux"))]
fn notice_vanished_host(_: &TcpStream) -> std::io::Result<()> {
    Ok(())
}

/// Accepts players until `shutdown`, each connection admitted or closed at once, each
/// admitted one served on a task of its own.
pub async fn accept(
    settings: Arc<ProxySettings>,
    listener: TcpListener,
    routing: Arc<Routing>,
    store: Store,
    shutdown: CancellationToken,
) {
    let admission = Admission::new(settings.limits.admission());
    let tickets = Tickets::new(&settings.secret);
    if let Ok(addr) = listener.local_addr() {
        info!("{} accepting players on {addr}", settings.id);
    }
    let stopping = shutdown.clone();
    accept_loop(listener, shutdown, "player", |stream, peer| {
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                routing.stats.refused(refusal.into());
                debug!("refused a connection from {peer}: {refusal:?}");
                return None;
            }
        };
        let (settings, routing, tickets, store) = (settings.clone(), routing.clone(), tickets.clone(), store.clone());
        let stopping = stopping.clone();
        Some(async move {
            let result = serve(stream, peer, &settings, &routing, (&tickets, &store), &stopping).await;
            drop(slot);
            result
        })
    })
    .await
}

async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    settings: &ProxySettings,
    routing: &Arc<Routing>,
    (tickets, store): (&Tickets, &Store),
    stopping: &CancellationToken,
) -> Result<(), LinkError> {
    notice_vanished_host(&stream).map_err(WireError::Io)?;
    let hello = Hello::new(Role::Proxy(settings.id));
    let link = match Link::<JoinRequest>::open(stream, Door::Public, hello, Some(&routing.stats.clients)).await? {
        (link, Role::Client) => link,
        // Anyone can say anything at the players' door: a wrong role proves nothing, so it
        // is refused without a warning, as a stranger's garbage is.
        (_, got) => return Err(LinkError::Refused(format!("{got:?} at the players' door"))),
    };
    let Joined { mut link, key, name, begin } = join(link, settings, tickets, store, spawn_position(settings)).await?;
    let user = key.user();
    let resuming = matches!(begin, Begin::Resume);
    let (sink, session, heard) = match admit(settings, routing, tickets, key, peer.ip(), &name, begin) {
        Ok(admitted) => admitted,
        Err(reason) => {
            link.send(ProxyToClient::Disconnect { reason: reason.clone() }).await?;
            return Err(LinkError::Refused(reason));
        }
    };
    if resuming {
        tokio::spawn(end_unanswered_resume(routing.clone(), user, session));
    }
    debug!("{user} ({name}) plays from {peer}");
    let mut limiter = INPUT_RATE.full_bucket(Instant::now());
    let mut chat = ChatGate::new(Instant::now());
    let mut resynced: Option<Instant> = None;
    let Some((reader, socket)) = link.hearing_elsewhere(heard).into_plain() else {
        routing.leave(user, session);
        return Err(LinkError::Refused("a player's link is never sealed".into()));
    };
    let writing = sink.write_to(socket, routing.stats.clients.bytes_out.clone());
    let reading = reader.run(|message| {
        let now = Instant::now();
        let forward = match message {
            _ if !limiter.take(&INPUT_RATE, now) => Err(Violation::InputFlood { per_sec: MAX_INPUTS_PER_SEC }),
            ClientToProxy::Input(input) => Ok(Some(ProxyToServer::Input { user, input })),
            ClientToProxy::Chat { channel, text } => chat.hear(routing, user, channel, &text, now),
            // Each costs its server a full update: asked for by a player that lost an
            // update sent by datagram, or the last of its old server's before a handoff
            // (dropped here, late), one in flight at a time (a player asks again only
            // after RESYNC_WAIT), and the rest dropped unsaid.
            ClientToProxy::Resync if resynced.is_some_and(|at| now.duration_since(at) < RESYNC_WAIT / 2) => Ok(None),
            ClientToProxy::Resync => {
                resynced = Some(now);
                ProxyStats::add(&routing.stats.resyncs, 1);
                Ok(Some(ProxyToServer::Resync { user }))
            }
            // What was sent by datagram since it last got one was lost with it.
            ClientToProxy::NoDatagrams if routing.no_datagrams(user) => {
                debug!("{user}'s updates by datagram do not reach it: by TCP from now on");
                Ok(Some(ProxyToServer::Resync { user }))
            }
            ClientToProxy::NoDatagrams => Ok(None),
        };
        let routing = &routing;
        async move {
            match forward? {
                // Waits while the player's server is slow: this player's next message
                // is not read meanwhile, and nobody else's is held up.
                Some(message) => {
                    routing.from_client(user, message).await.map_err(|err| LinkError::Refused(err.to_string()))
                }
                None => Ok(()),
            }
        }
    });
    let played = tokio::select! {
        played = writing => played,
        played = reading => played,
    };
    // A proxy stopping logs nobody out: its players resume their sessions through
    // another, and their servers keep them parked meanwhile.
    if !stopping.is_cancelled() {
        routing.leave(user, session);
        info!("{user} ({name}) from {peer} left");
    }
    played
}

/// How long the server that has a resuming player's session has to answer: it is one
/// message away on a link already up, so this is slack for a busy machine.
pub const RESUME_WAIT: Duration = Duration::from_secs(2);

/// Ends `user`'s resumed `session` if no server has said it has the player within
/// [`RESUME_WAIT`]: the session is gone (its server lost it, or let it go), and the
/// player is told to join anew.
async fn end_unanswered_resume(routing: Arc<Routing>, user: UserId, session: Session) {
    let deadline = Instant::now() + RESUME_WAIT;
    while Instant::now() < deadline {
        match routing.owner_of(user, session) {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    if routing.end(user, Some(session), ProxyToClient::SessionGone) {
        info!("no server has {user}'s session: it joins anew");
    }
}

/// Admits `user`, whose link comes from `from`, called `name`, beginning its session as
/// `begin` says: registers its route, and logs it in on the server owning where it was,
/// or asks every server for its session. Returns the queue of what goes to the player,
/// its welcome first (at once, or once the server that has its session answers), the
/// session it is, and what its route hears of it by datagram, for its link to hear too;
/// or why it cannot play now (to tell the player): the cluster is full, or the server of
/// where it was is down.
pub fn admit(
    settings: &ProxySettings,
    routing: &Routing,
    tickets: &Tickets,
    key: PlayerKey,
    from: IpAddr,
    name: &str,
    begin: Begin,
) -> Result<(ClientSink, Session, HeardElsewhere), String> {
    let user = key.user();
    // Full first: a player told the cluster is full waits longer before asking again.
    if routing.is_full(user, settings.limits.max_players) {
        routing.stats.refused(Refusal::Full);
        return Err(RouteError::Full.to_string());
    }
    let map = settings.cluster.region_map();
    let (owner, start) = match begin {
        Begin::Fresh { position } => {
            let owner = map.owner_at(position).ok_or_else(|| format!("{position} is outside the world"))?;
            if !routing.is_server_up(owner) {
                return Err(format!("{owner}, which holds where you are, is unreachable; try again shortly"));
            }
            // The join's name passed the name rule, which bounds its bytes as this does.
            let name = EntityName::from(name).map_err(|_| format!("the name {name:?} is too long"))?;
            let login = ProxyToServer::Login { user, name, position, last_input: 0 };
            info!("{user} ({name}) joins on {owner} at {position}");
            (Some(owner), Start::Login { owner, login })
        }
        Begin::Resume => {
            info!("{user} ({name}) resumes its session");
            (None, Start::Resume)
        }
    };
    let (outbound, sink) = ClientQueue::channel(settings.limits.max_queued_bytes_per_player);
    // Without a tag from the system's randomness, the player's updates go by TCP.
    let datagrams = routing.sends_datagrams().then(DatagramTag::random).and_then(Result::ok);
    let welcome = Welcome {
        user,
        name: name.into(),
        proxy: settings.id,
        resumed: owner.is_none(),
        ticket: tickets.issue(user),
        map,
        view_radius: settings.cluster.simulation.view_radius,
        tick_hz: settings.cluster.simulation.tick_hz,
        datagrams,
    };
    let welcome = ProxyToClient::Welcome(welcome);
    // A new session is welcomed now; a resumed one once its server has answered.
    let welcome = match owner {
        Some(_) => {
            outbound.send(welcome.into()).map_err(|err| format!("cannot welcome you: {err}"))?;
            None
        }
        None => Some(welcome),
    };
    let session = Session::next();
    let heard = HeardElsewhere::default();
    let route = ClientRoute::new(outbound, owner, session, welcome, key).with_datagrams(datagrams, from, heard.clone());
    routing.join(user, route, start, settings.limits.max_players).map_err(|err| err.to_string())?;
    Ok((sink, session, heard))
}

fn spawn_position(settings: &ProxySettings) -> Vec2 {
    let world = &settings.cluster.world;
    let mut rng = rand::rng();
    let angle = rng.random_range(0.0..std::f32::consts::TAU);
    let distance = world.spawn_radius * rng.random::<f32>().sqrt();
    let point = settings.cluster.spawn_point() + Vec2::from_angle(angle) * distance;
    settings.cluster.region_map().clamp_to_world(point)
}
