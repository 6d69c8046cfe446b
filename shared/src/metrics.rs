//! The names of the metrics every Tessera process exports for its operator and for the
//! benchmark. They live here, so the processes that export them and the benchmark that
//! scrapes them cannot drift apart; the endpoint itself is `tessera_service::metrics`.

/// Wall-clock time of one server frame (receive, simulate, send), in seconds. Label `server`.
pub const SERVER_TICK_SECONDS: &str = "tessera_server_tick_seconds";
/// Simulation ticks run. Label `server`.
pub const SERVER_TICKS: &str = "tessera_server_ticks_total";
/// Players this server owns and simulates. Label `server`.
pub const SERVER_PLAYERS: &str = "tessera_server_players";
/// Entities this server mirrors from its peers' regions. Label `server`.
pub const SERVER_GHOSTS: &str = "tessera_server_ghosts";
/// Bytes exchanged with peer servers, frames included. Labels `server`, `direction` (`in`/`out`).
pub const SERVER_PEER_BYTES: &str = "tessera_server_peer_bytes_total";
/// Peer servers linked to this one. Label `server`.
pub const SERVER_PEERS: &str = "tessera_server_peers";
/// Players handed to or taken from peers. Labels `server`, `direction` (`in`/`out`).
pub const SERVER_HANDOFFS: &str = "tessera_server_handoffs_total";
/// Connections to the proxy and peer ports turned away. Labels `server`, `cause`
/// (`door`: over the members' door limits; `handshake`: failed to prove membership or role).
pub const SERVER_REFUSALS: &str = "tessera_server_refusals_total";
/// Player checkpoints the store took from this server. Label `server`.
pub const SERVER_CHECKPOINTS: &str = "tessera_server_checkpoints_total";
/// Batches of checkpoints the store could not take, each tried again. Label `server`.
pub const SERVER_CHECKPOINT_FAILURES: &str = "tessera_server_checkpoint_failures_total";
/// Player updates, by `outcome`: `sent`; `quiet`, not sent since it told the player
/// nothing it could not extrapolate; `paced`, not made since the player was not due one
/// at that tick, the server being over capacity. Label `server`.
pub const SERVER_PLAYER_UPDATES: &str = "tessera_server_player_updates_total";
/// How many ticks apart the server sends each player an update: 1, more while it is
/// over capacity. Label `server`.
pub const SERVER_UPDATE_EVERY: &str = "tessera_server_update_every_ticks";
/// Player updates sent that left news of others for later updates, the player's byte
/// budget spent (a crowd in view; or more news than one update holds): how often the
/// cluster is degraded. Label `server`.
pub const SERVER_UPDATES_BUDGET_SPENT: &str = "tessera_server_player_updates_budget_spent_total";
/// Ticks by which players' inputs came to wait longer or shorter before they are
/// applied, by `change`: `longer`, a player's clock slipping for an input that came
/// late; `shorter`, its clock tightening, every recent input having come early. Label
/// `server`.
pub const SERVER_INPUT_WAIT_CHANGES: &str = "tessera_server_input_wait_changes_ticks_total";
/// Game servers this proxy is linked to. Label `proxy`.
pub const PROXY_SERVERS: &str = "tessera_proxy_servers";
/// Players connected to this proxy. Label `proxy`.
pub const PROXY_PLAYERS: &str = "tessera_proxy_players";
/// Frames the proxy forwarded. Labels `proxy`, `to` (`clients`/`servers`).
pub const PROXY_FRAMES: &str = "tessera_proxy_frames_total";
/// Players' updates by datagram, of the frames to players. Labels `proxy`, `outcome`
/// (`sent`; `dropped`: no room in the socket, or refused by it; `strange`: datagrams
/// received that bound nobody and carried no player's inputs).
pub const PROXY_DATAGRAMS: &str = "tessera_proxy_datagrams_total";
/// Players' inputs that came by datagram, forwarded to their servers once each, of the
/// frames to servers. Label `proxy`.
pub const PROXY_INPUTS_BY_DATAGRAM: &str = "tessera_proxy_inputs_by_datagram_total";
/// Full updates players asked for after losing one sent by datagram. Label `proxy`.
pub const PROXY_RESYNCS: &str = "tessera_proxy_resyncs_total";
/// Bytes on the proxy's links. Labels `proxy`, `link` (`clients`/`servers`), `direction` (`in`/`out`).
pub const PROXY_BYTES: &str = "tessera_proxy_bytes_total";
/// Connections and players the proxy turned away. Labels `proxy`, `cause`
/// (`connections`, `connections_per_address`, `join_rate`, `full`, `slow_reader`).
pub const PROXY_REFUSALS: &str = "tessera_proxy_refusals_total";
/// Chat lines players said through the proxy. Labels `proxy`, `outcome` (`forwarded`,
/// or `dropped` past the player's rate).
pub const PROXY_CHAT_LINES: &str = "tessera_proxy_chat_lines_total";

/// Buckets of [`SERVER_TICK_SECONDS`]: fine below the 25 ms line (half a 20 Hz tick),
/// so percentiles read from them are close to exact where it matters.
pub const TICK_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.0225, 0.025,
    0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0,
];
