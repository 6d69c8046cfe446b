//! Live figures about one proxy: players connected, frames forwarded each way, and the
//! bytes on its client and server links. Counted where the work happens, in plain
//! atomics the links share, and copied into the exported metrics (the names in
//! [`tessera_shared::metrics`]) ten times a second, so a rate read over a window is off
//! by at most a tenth of a second's traffic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tessera_shared::ids::ProxyId;
use tessera_shared::link::Traffic;
use tessera_shared::metrics as names;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Game servers linked.
    pub servers_up: AtomicU64,
    pub players: AtomicU64,
    pub frames_to_clients: AtomicU64,
    pub frames_to_servers: AtomicU64,
    /// Bytes on the players' links.
    pub clients: Traffic,
    /// Bytes on the links to game servers.
    pub servers: Traffic,
}

/// How often the figures are copied into the exported metrics.
const EXPORT_EVERY: Duration = Duration::from_millis(100);

impl ProxyStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Copies the figures into the exported metrics until `shutdown`.
    pub async fn export(&self, proxy: ProxyId, shutdown: CancellationToken) {
        let proxy = proxy.0.to_string();
        let players = metrics::gauge!(names::PROXY_PLAYERS, "proxy" => proxy.clone());
        let servers_up = metrics::gauge!(names::PROXY_SERVERS, "proxy" => proxy.clone());
        let counters = [
            (
                &self.frames_to_clients,
                metrics::counter!(names::PROXY_FRAMES, "proxy" => proxy.clone(), "to" => "clients"),
            ),
            (
                &self.frames_to_servers,
                metrics::counter!(names::PROXY_FRAMES, "proxy" => proxy.clone(), "to" => "servers"),
            ),
            (&*self.clients.bytes_in, bytes_counter(&proxy, "clients", "in")),
            (&*self.clients.bytes_out, bytes_counter(&proxy, "clients", "out")),
            (&*self.servers.bytes_in, bytes_counter(&proxy, "servers", "in")),
            (&*self.servers.bytes_out, bytes_counter(&proxy, "servers", "out")),
        ];
        let mut every = tokio::time::interval(EXPORT_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            players.set(self.players.load(Ordering::Relaxed) as f64);
            servers_up.set(self.servers_up.load(Ordering::Relaxed) as f64);

            for (value, counter) in &counters {
                counter.absolute(value.load(Ordering::Relaxed));
            }
        }
    }
}

fn bytes_counter(proxy: &str, link: &'static str, direction: &'static str) -> metrics::Counter {
    metrics::counter!(names::PROXY_BYTES, "proxy" => proxy.to_owned(), "link" => link, "direction" => direction)
}
