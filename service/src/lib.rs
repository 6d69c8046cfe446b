//! What every headless Tessera process (server, proxy, in-process cluster, bots,
//! benchmark) needs from the machine it runs on: log lines on stderr ([`logging`]), a
//! clean stop when the host asks for one ([`signals`]), a Prometheus endpoint
//! ([`metrics`]) that also answers whether the process is alive and ready ([`health`]), the cluster secret from its flags or environment ([`secret`]), which member of
//! the cluster map it is ([`member`]), where
//! the player store is ([`store`]), and
//! enough open files for its sockets ([`resources`]). The game client needs none of it: Bevy logs for it, and its window
//! closes it.

pub mod health;
pub mod logging;
pub mod member;
pub mod metrics;
pub mod resources;
pub mod secret;
pub mod signals;
pub mod store;
