//! The proxy listener: accepts proxies, checks their hello, and relays their messages
//! to the app after checking that each one is allowed (a proxy may only speak for the
//! users it issued).

use super::{LinkId, NetEvent};
use tessera_shared::bridge::InboxSender;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Link, LinkError, Outbound, accept_loop};
use tessera_shared::protocol::{Hello, MAX_NAME_LEN, ProxyToServer, Role, ServerToProxy};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub async fn accept(
    listener: TcpListener,
    server: ServerId,
    events: InboxSender<NetEvent>,
    shutdown: CancellationToken,
) {
    accept_loop(listener, shutdown, "proxy", move |stream, _| serve(stream, server, events.clone())).await
}

async fn serve(stream: TcpStream, server: ServerId, events: InboxSender<NetEvent>) -> Result<(), LinkError> {
    let mut link = Link::<ProxyToServer>::new(stream);
    let proxy = match link.handshake::<ServerToProxy>(Hello::new(Role::Server(server))).await? {
        Role::Proxy(proxy) => proxy,
        got => {
            return Err(LinkError::Role { expected: "proxy", got });
        }
    };
    let id = LinkId::next();
    let (outbound, queue) = Outbound::channel();
    let closed = || LinkError::Rejected("server shutting down".into());
    events.send(NetEvent::ProxyUp { proxy, link: id, outbound }).await.map_err(|_| closed())?;
    let result = link
        .run(queue, |message| {
            let events = events.clone();
            async move {
                check(&message, proxy)?;
                events.send(NetEvent::FromProxy { proxy, message }).await.map_err(|_| closed())
            }
        })
        .await;
    let _ = events.send(NetEvent::ProxyDown { proxy, link: id }).await;
    match result {
        Err(LinkError::Closed) => {
            info!("{proxy} disconnected");
            Ok(())
        }
        other => other,
    }
}

/// Refuses what no well-behaved proxy sends.
fn check(message: &ProxyToServer, proxy: tessera_shared::ids::ProxyId) -> Result<(), LinkError> {
    let user = match message {
        ProxyToServer::Hello(_) => return Err(LinkError::Unexpected("a second hello".into())),
        ProxyToServer::Login { user, name, position } => {
            if name.len() > MAX_NAME_LEN {
                return Err(LinkError::Unexpected(format!("a {}-byte name for {user}", name.len())));
            }
            if !position.is_finite() {
                return Err(LinkError::Unexpected(format!("a non-finite spawn point for {user}")));
            }
            user
        }
        ProxyToServer::Input { user, .. } | ProxyToServer::Logout { user } => user,
    };
    if user.proxy() != proxy {
        return Err(LinkError::Unexpected(format!("{proxy} spoke for {user}, whom it did not issue")));
    }
    Ok(())
}
