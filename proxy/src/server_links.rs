//! One dialer per game server: connect, say hello as this proxy, relay the server's
//! updates to players, and on any loss redial with exponential backoff.

use crate::ProxySettings;
use crate::routing::Routing;
use std::sync::Arc;
use std::time::Duration;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Link, LinkError, Outbound};
use tessera_shared::protocol::{Hello, ProxyToClient, ProxyToServer, Role, ServerToProxy};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps a link to `server` up until `shutdown`.
pub async fn maintain(
    settings: Arc<ProxySettings>,
    server: ServerId,
    routing: Arc<Routing>,
    shutdown: CancellationToken,
) {
    let address = settings.cluster.server(server).expect("dialers are spawned for the map's servers").proxy_address();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = async {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&address))
                .await
                .map_err(|_| LinkError::Rejected(format!("connect timed out after {CONNECT_TIMEOUT:?}")))?
                .map_err(|err| LinkError::Wire(err.into()))?;
            serve(stream, &settings, server, &routing, &mut backoff).await
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            result = attempt => result,
        };
        let orphans = routing.server_down(server);
        if !orphans.is_empty() {
            warn!("{server} link lost with {} players on it: disconnecting them", orphans.len());
        }
        for (_, outbound) in orphans {
            let reason = format!("lost the connection to {server}; please reconnect");
            let _ = outbound.send(ProxyToClient::Disconnect { reason });
        }
        match result {
            Err(LinkError::Wire(err)) if backoff > FIRST_BACKOFF => {
                tracing::debug!("{server} at {address} still unreachable: {err}")
            }
            Err(err) => warn!("{server} at {address}: {err}; redialing in {backoff:?}"),
            Ok(()) => info!("{server} closed the link; redialing"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn serve(
    stream: TcpStream,
    settings: &ProxySettings,
    server: ServerId,
    routing: &Routing,
    backoff: &mut Duration,
) -> Result<(), LinkError> {
    let mut link = Link::<ServerToProxy>::new(stream);
    match link.handshake::<ProxyToServer>(Hello::new(Role::Proxy(settings.id))).await? {
        Role::Server(id) if id == server => {}
        got => {
            return Err(LinkError::Role { expected: "the server the map names", got });
        }
    }
    info!("connected to {server}");
    *backoff = FIRST_BACKOFF;
    let (outbound, queue) = Outbound::channel();
    routing.server_up(server, outbound);
    link.run(queue, |message| std::future::ready(relay(message, routing))).await
}

fn relay(message: ServerToProxy, routing: &Routing) -> Result<(), LinkError> {
    match message {
        ServerToProxy::Hello(_) => return Err(LinkError::Unexpected("a second hello".into())),
        ServerToProxy::Updates { updates, .. } => routing.to_clients(
            updates.into_iter().map(|(user, update)| (user, Some(update.you.position), ProxyToClient::Update(update))),
        ),
        ServerToProxy::Owner { user, server, epoch } => routing.set_owner(user, server, epoch),
        ServerToProxy::Kick { user, reason } => {
            routing.to_clients([(user, None, ProxyToClient::Disconnect { reason })]);
            routing.leave(user);
        }
    }
    Ok(())
}
