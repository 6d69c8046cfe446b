//! The proxy listener: accepts proxies, checks their hello, and relays their messages
//! to the app once [`verify::from_proxy`] allows each (a proxy may only speak for the
//! users it issued).

use crate::net::{LinkId, NetEvent};
use tessera_shared::bridge::InboxSender;
use tessera_shared::ids::ServerId;
use tessera_shared::link::{Link, LinkError, Outbound, accept_loop};
use tessera_shared::protocol::handshake::HandshakeError;
use tessera_shared::protocol::{Hello, ProxyToServer, Role, verify};
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
    let (link, proxy) = match Link::<ProxyToServer>::open(stream, Hello::new(Role::Server(server)), None).await? {
        (link, Role::Proxy(proxy)) => (link, proxy),
        (_, got) => return Err(HandshakeError::Role { expected: "a proxy", got }.into()),
    };
    let id = LinkId::next();
    let (outbound, queue) = Outbound::channel();
    events.send(NetEvent::ProxyUp { proxy, link: id, outbound }).await?;
    let result = link
        .run(queue, |message| {
            let events = events.clone();
            async move {
                verify::from_proxy(&message, proxy)?;
                Ok(events.send(NetEvent::FromProxy { proxy, message }).await?)
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
