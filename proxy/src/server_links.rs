//! One dialer per game server: connect, prove membership of the cluster (the link is
//! sealed with the cluster secret), say hello as this proxy, relay the server's updates
//! to players once [`verify::from_server`] allows each (a server speaks only for itself,
//! in whole frames; the routing table delivers only to this proxy's players), and on any
//! loss tell the players it owned their region is offline and redial with exponential
//! backoff. Whenever a server's link comes up, or a server says a player it handed on
//! may be adrift, the players waiting for a server are logged in again where the store
//! last saved them, on whichever server owns that spot (the server that came back, as a
//! rule).

use crate::ProxySettings;
use crate::routing::{Offline, Routing};
use std::sync::Arc;
use std::time::Duration;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Door, Link, LinkError, Outbound, Side, redial};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::{EntityName, Hello, Role, ServerToProxy, verify};
use tessera_shared::region_map::RegionMap;
use tessera_store::Store;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How long each write to a server waits for more messages after its first. Players'
/// inputs by their links come one by one, each its own write, and each write wakes the
/// server's network thread, on a virtual machine at some 20 µs a wake-up; within a
/// millisecond, those of a crowd go together. Those by datagram come together already,
/// each beat's ([`crate::datagrams::READ_EVERY`]), and wait for the beat as long on
/// average. An input waits for its tick at the server anyway, with a tick of slack
/// (`tessera_shared::protocol::INPUT_SLACK_TICKS`). The link's queue holds far more than
/// a beat of the most a proxy's players may send (`MAX_INPUTS_PER_SEC` each).
const INPUT_WRITE_WINDOW: Duration = Duration::from_millis(1);

/// Keeps a link to `server` up until `shutdown`.
pub async fn maintain(
    settings: Arc<ProxySettings>,
    server: ServerId,
    routing: Arc<Routing>,
    store: Store,
    shutdown: CancellationToken,
) {
    let address = settings.cluster.server(server).expect("dialers are spawned for the map's servers").proxy_address();
    // What the server's cluster file must digest to, worked out once for every redial.
    let cluster = settings.cluster.digest();
    redial(&address, &server.to_string(), shutdown, |stream| {
        let (settings, routing, store) = (settings.clone(), routing.clone(), store.clone());
        async move {
            let door = Door::Members { secret: &settings.secret, cluster, side: Side::Dialer };
            let result = serve(stream, door, &settings, server, &routing, &store).await;
            let orphans = routing.server_down(server);
            if orphans > 0 {
                warn!(
                    "{server} link lost with {orphans} players on it: they wait for it, told their region is offline"
                );
            }
            result
        }
    })
    .await
}

async fn serve(
    stream: TcpStream,
    door: Door<'_>,
    settings: &ProxySettings,
    server: ServerId,
    routing: &Arc<Routing>,
    store: &Store,
) -> Result<(), LinkError> {
    let hello = Hello::new(Role::Proxy(settings.id));
    let link = match Link::<ServerToProxy>::open(stream, door, hello, Some(&routing.stats.servers)).await? {
        (link, Role::Server(id)) if id == server => link.with_write_window(INPUT_WRITE_WINDOW),
        (_, got) => return Err(HandshakeError::Role { expected: "the server the map names", got }.into()),
    };
    info!("connected to {server}");
    let (outbound, queue) = Outbound::channel();
    routing.server_up(server, outbound);
    tokio::spawn(log_in_again(settings.cluster.region_map(), routing.clone(), store.clone()));
    link.run(queue, |message| {
        let verified = verify::from_server(&message, server);
        if verified.is_ok() {
            let adrift = matches!(message, ServerToProxy::Adrift { .. });
            routing.from_server(server, message);
            if adrift {
                tokio::spawn(log_in_again(settings.cluster.region_map(), routing.clone(), store.clone()));
            }
        }
        std::future::ready(verified.map_err(LinkError::from))
    })
    .await
}

/// Logs every player waiting since its server was lost in again where the store last
/// saved it, if the server owning that spot is up; the rest wait for the next server to
/// come up. (A store that is away leaves them waiting too.)
async fn log_in_again(map: RegionMap, routing: Arc<Routing>, store: Store) {
    for Offline { user, key, session } in routing.offline() {
        let record = match store.load(key).await {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(err) => {
                warn!("cannot find {user} in the player store to bring it back: {err}");
                continue;
            }
        };
        let Ok(name) = EntityName::from(&record.name) else {
            warn!("{user}'s name in the player store is longer than a name may be: it cannot be brought back");
            continue;
        };
        match map.owner_at(record.position) {
            Some(owner) if routing.is_server_up(owner) => {
                info!("{user} ({}) comes back on {owner} at {}", record.name, record.position);
                routing.log_in_again(user, session, owner, name, record.position);
            }
            _ => {}
        }
    }
}
