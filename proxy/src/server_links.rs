//! One dialer per game server: connect, prove membership of the cluster (the link is
//! sealed with the cluster secret), say hello as this proxy, relay the server's updates
//! to players once [`verify::from_server`] allows each (a server speaks only for itself,
//! in whole frames; the routing table delivers only to this proxy's players), and on any loss disconnect the players it
//! owned (they are gone with it) and redial with exponential backoff.

use crate::ProxySettings;
use crate::routing::Routing;
use std::sync::Arc;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Door, Link, LinkError, Outbound, Side, redial};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::{Hello, ProxyToClient, Role, ServerToProxy, verify};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Keeps a link to `server` up until `shutdown`.
pub async fn maintain(
    settings: Arc<ProxySettings>,
    server: ServerId,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) {
    let address = settings.cluster.server(server).expect("dialers are spawned for the map's servers").proxy_address();
    redial(&address, &server.to_string(), shutdown, |stream| {
        let (settings, routing) = (settings.clone(), routing.clone());
        async move {
            let result = serve(stream, &settings, server, &routing).await;
            disconnect_orphans(&routing, server);
            result
        }
    })
    .await
}

async fn serve(
    stream: TcpStream,
    settings: &ProxySettings,
    server: ServerId,
    routing: &Routing,
) -> Result<(), LinkError> {
    let hello = Hello::new(Role::Proxy(settings.id));
    let door = Door::Members(&settings.secret, Side::Dialer);
    let link = match Link::<ServerToProxy>::open(stream, door, hello, Some(&routing.stats.servers)).await? {
        (link, Role::Server(id)) if id == server => link,
        (_, got) => return Err(HandshakeError::Role { expected: "the server the map names", got }.into()),
    };
    info!("connected to {server}");
    let (outbound, queue) = Outbound::channel();
    routing.server_up(server, outbound);
    link.run(queue, |message| {
        let verified = verify::from_server(&message, server);
        if verified.is_ok() {
            routing.from_server(server, message);
        }
        std::future::ready(verified.map_err(LinkError::from))
    })
    .await
}

/// The players `server` owned went down with it: tell them, so they can reconnect.
fn disconnect_orphans(routing: &Routing, server: ServerId) {
    let orphans = routing.server_down(server);
    if !orphans.is_empty() {
        warn!("{server} link lost with {} players on it: disconnecting them", orphans.len());
    }
    for (_, outbound) in orphans {
        let reason = format!("lost the connection to {server}; please reconnect");
        let _ = outbound.send_last(ProxyToClient::Disconnect { reason });
    }
}
