//! The cluster file (TOML): the world's size and regions, every game server with the
//! regions it owns, every proxy, and for each listener the address it binds and the
//! address others should dial (they differ when a host sits behind a router).

use crate::ids::{ProxyId, ServerId};
use crate::region_map::{MAX_WORLD_SIZE, MapError, RegionId, RegionMap};
use glam::Vec2;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The default map, shipped in `assets/`: 2×2 regions on 4 servers and 2 proxies.
pub const DEFAULT_CLUSTER_TOML: &str = include_str!("../../assets/cluster.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub world: WorldConfig,
    #[serde(default)]
    pub simulation: SimulationConfig,
    #[serde(rename = "server")]
    pub servers: Vec<ServerConfig>,
    #[serde(rename = "proxy")]
    pub proxies: Vec<ProxyConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldConfig {
    /// Side of a square region, in world units.
    pub region_size: f32,
    pub columns: u16,
    pub rows: u16,
    /// Where new players appear; the world's centre when absent.
    pub spawn: Option<[f32; 2]>,
    /// New players appear at random within this distance of `spawn`.
    #[serde(default = "default_spawn_radius")]
    pub spawn_radius: f32,
}

/// Settings every server must agree on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulationConfig {
    /// Simulation ticks per second.
    pub tick_hz: f64,
    /// How far a player sees, in world units.
    pub view_radius: f32,
    /// How far past its owner's border a player walks before it is handed off.
    pub tether: f32,
    /// What a player's updates may carry of others, in bytes a second on the wire: in
    /// a crowd, the changes nearest the player go first and the rest wait their turn
    /// (the player extrapolates them meanwhile), so a crowd costs each player, its proxy
    /// and its link no more than this. A player's own state, acknowledgements and who
    /// left its view always go.
    pub player_bytes_per_second: u32,
    /// How much of a tick the servers' ticks spread over, from 0 (every server ticks on
    /// the beat, all at once) to 1 (evenly apart across the tick): each server ticks
    /// [`ClusterConfig::beat_phase`] after the beat. Servers that share a host's cores
    /// then take turns, where ticking together each waited for the others: at 7,500
    /// players on two cores the ticks' p99 fell from 26 to 37 ms to 12 to 22
    /// (BENCHMARKS.md, *Servers tick in turn*). A handoff maps a player's clock from
    /// beat to beat, so a player handed to a server ticking earlier has its input due
    /// that much sooner, and now and then one comes late there (a tick's stand-still,
    /// once): servers with a machine each may set 0.
    pub beat_spread: f64,
}

/// The least a player's updates may carry a tick
/// ([`SimulationConfig::player_bytes_per_second`] over `tick_hz`: 500 bytes a second at
/// 20 Hz): an update telling nothing of others takes 13 to 16 bytes, and each must have
/// room for a few others' changes besides, or a player acknowledged every tick would
/// never hear of them.
pub const MIN_PLAYER_BYTES_PER_TICK: u32 = 25;

impl Default for SimulationConfig {
    fn default() -> Self {
        Self { tick_hz: 20.0, view_radius: 400.0, tether: 24.0, player_bytes_per_second: 4096, beat_spread: 1.0 }
    }
}

/// Whether a tick rate and a view radius are ones every process can run with: what the
/// cluster file and a player's welcome are both held to.
pub fn check_rates(tick_hz: f64, view_radius: f32) -> Result<(), &'static str> {
    if !(1.0..=1000.0).contains(&tick_hz) {
        return Err("tick_hz must be in [1, 1000]");
    }
    if !(view_radius > 0.0 && view_radius <= MAX_WORLD_SIZE) {
        return Err("view_radius must be positive and at most the widest world");
    }
    Ok(())
}

fn default_spawn_radius() -> f32 {
    120.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub id: ServerId,
    /// Where this server listens for peer servers.
    pub peer_bind: SocketAddr,
    /// Where peers dial it (`host:port`); `peer_bind` when absent.
    pub peer_public: Option<String>,
    /// Where this server listens for proxies.
    pub proxy_bind: SocketAddr,
    /// Where proxies dial it (`host:port`); `proxy_bind` when absent.
    pub proxy_public: Option<String>,
    /// The regions it owns, as `[column, row]`.
    pub regions: Vec<[u16; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    pub id: ProxyId,
    /// Where this proxy listens for players.
    pub client_bind: SocketAddr,
    /// Where players dial it (`host:port`); `client_bind` when absent.
    pub client_public: Option<String>,
}

impl ServerConfig {
    pub fn peer_address(&self) -> String {
        self.peer_public.clone().unwrap_or_else(|| self.peer_bind.to_string())
    }

    pub fn proxy_address(&self) -> String {
        self.proxy_public.clone().unwrap_or_else(|| self.proxy_bind.to_string())
    }
}

impl ProxyConfig {
    pub fn client_address(&self) -> String {
        self.client_public.clone().unwrap_or_else(|| self.client_bind.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read cluster file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cluster file is not valid TOML for a cluster map: {0}")]
    Parse(#[from] toml::de::Error),
    #[error(transparent)]
    World(#[from] MapError),
    #[error("simulation settings are out of range: {0}")]
    Simulation(&'static str),
    #[error("the cluster needs at least one server and one proxy")]
    MissingProcesses,
    #[error("{0} appears twice")]
    DuplicateServer(ServerId),
    #[error("{0} appears twice")]
    DuplicateProxy(ProxyId),
    #[error("{server} claims region {region}, which is outside the {columns}×{rows} world")]
    RegionOutsideWorld { server: ServerId, region: RegionId, columns: u16, rows: u16 },
    #[error("region {region} is claimed by both {first} and {second}")]
    RegionOwnedTwice { region: RegionId, first: ServerId, second: ServerId },
    #[error("region {0} is owned by no server")]
    RegionUnowned(RegionId),
    #[error("the spawn point {0:?} is outside the world")]
    SpawnOutsideWorld([f32; 2]),
    #[error("no {0} in the cluster map")]
    UnknownServer(ServerId),
    #[error("no {0} in the cluster map")]
    UnknownProxy(ProxyId),
}

/// What every member of a cluster must agree on, digested: the world, the simulation's
/// settings, the servers with the regions each owns, and the proxies; not where each
/// listens or is dialled, which may differ from host to host. Members compare theirs
/// when they link up ([`crate::link::Door::Members`]), so a process started with another
/// cluster file (an old copy on one host) is refused, saying so, rather than simulating
/// or routing another world, or telling its players the wrong tick length.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDigest(pub [u8; 32]);

impl std::fmt::Debug for ClusterDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Enough to tell two files apart in a log line.
        write!(f, "{}", hex::encode(&self.0[..6]))
    }
}

/// 32 bytes.
impl crate::framing::Bounded for ClusterDigest {
    const MAX_FRAME_LEN: usize = 64;
}

impl ClusterConfig {
    /// See [`ClusterDigest`].
    pub fn digest(&self) -> ClusterDigest {
        // In any order the file lists them.
        let mut servers: Vec<_> = self
            .servers
            .iter()
            .map(|server| {
                let mut regions = server.regions.clone();
                regions.sort_unstable();
                (server.id, regions)
            })
            .collect();
        servers.sort_unstable();
        let mut proxies: Vec<_> = self.proxies.iter().map(|proxy| proxy.id).collect();
        proxies.sort_unstable();
        let agreed = (&self.world, &self.simulation, servers, proxies);
        let encoded = crate::framing::encoded_frame(&agreed).expect("a validated cluster file encodes within a frame");
        ClusterDigest(Sha256::digest(&encoded).into())
    }

    /// Reads and validates a cluster file.
    pub fn load(path: &Path) -> Result<Self, ClusterError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ClusterError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text)
    }

    /// Parses and validates a cluster map.
    pub fn parse(text: &str) -> Result<Self, ClusterError> {
        let config: Self = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    /// The map at `path`, or the default one when there is none: what every binary's
    /// `--cluster` means.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ClusterError> {
        path.map_or_else(|| Ok(Self::default_local()), Self::load)
    }

    /// The default map shipped in `assets/cluster.toml`.
    pub fn default_local() -> Self {
        Self::parse(DEFAULT_CLUSTER_TOML).expect("the shipped default cluster map is valid")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a cluster map always serialises")
    }

    /// Checks everything the processes rely on: ids unique, every region owned by
    /// exactly one server, nothing outside the world.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let world = &self.world;
        RegionMap::check_grid(world.region_size, world.columns, world.rows)?;
        let sim = &self.simulation;
        check_rates(sim.tick_hz, sim.view_radius).map_err(ClusterError::Simulation)?;
        if !(sim.tether >= 0.0 && sim.tether < world.region_size / 2.0) {
            return Err(ClusterError::Simulation("tether must be in [0, region_size / 2)"));
        }
        if f64::from(sim.player_bytes_per_second) < f64::from(MIN_PLAYER_BYTES_PER_TICK) * sim.tick_hz {
            return Err(ClusterError::Simulation("player_bytes_per_second must be at least 25 times tick_hz"));
        }
        if !(0.0..=1.0).contains(&sim.beat_spread) {
            return Err(ClusterError::Simulation("beat_spread must be in [0, 1]"));
        }
        if self.servers.is_empty() || self.proxies.is_empty() {
            return Err(ClusterError::MissingProcesses);
        }
        let mut owners: HashMap<RegionId, ServerId> = HashMap::new();
        for (i, server) in self.servers.iter().enumerate() {
            if self.servers[..i].iter().any(|s| s.id == server.id) {
                return Err(ClusterError::DuplicateServer(server.id));
            }
            for &[x, y] in &server.regions {
                let region = RegionId { x, y };
                if x >= world.columns || y >= world.rows {
                    return Err(ClusterError::RegionOutsideWorld {
                        server: server.id,
                        region,
                        columns: world.columns,
                        rows: world.rows,
                    });
                }
                if let Some(&first) = owners.get(&region) {
                    return Err(ClusterError::RegionOwnedTwice { region, first, second: server.id });
                }
                owners.insert(region, server.id);
            }
        }
        for y in 0..world.rows {
            for x in 0..world.columns {
                if !owners.contains_key(&RegionId { x, y }) {
                    return Err(ClusterError::RegionUnowned(RegionId { x, y }));
                }
            }
        }
        for (i, proxy) in self.proxies.iter().enumerate() {
            if self.proxies[..i].iter().any(|p| p.id == proxy.id) {
                return Err(ClusterError::DuplicateProxy(proxy.id));
            }
        }
        if let Some(spawn) = world.spawn {
            let size = Vec2::new(f32::from(world.columns), f32::from(world.rows)) * world.region_size;
            let inside = (0..2).all(|i| spawn[i] >= 0.0 && spawn[i] < size[i]);
            if !inside {
                return Err(ClusterError::SpawnOutsideWorld(spawn));
            }
        }
        Ok(())
    }

    pub fn region_map(&self) -> RegionMap {
        let world = &self.world;
        let mut owners = vec![ServerId(0); usize::from(world.columns) * usize::from(world.rows)];
        for server in &self.servers {
            for &[x, y] in &server.regions {
                owners[usize::from(y) * usize::from(world.columns) + usize::from(x)] = server.id;
            }
        }
        // `validate` checked the grid, and every region has its owner.
        RegionMap::new(world.region_size, world.columns, world.rows, owners)
    }

    /// Where new players appear.
    pub fn spawn_point(&self) -> Vec2 {
        self.world.spawn.map(Vec2::from).unwrap_or_else(|| self.region_map().world_size() / 2.0)
    }

    pub fn server(&self, id: ServerId) -> Result<&ServerConfig, ClusterError> {
        self.servers.iter().find(|s| s.id == id).ok_or(ClusterError::UnknownServer(id))
    }

    /// How long after each beat (a whole number of ticks in Unix time) the server `id`
    /// ticks: the servers in order of id, evenly apart over
    /// [`SimulationConfig::beat_spread`] of a tick, whatever order the file lists them in.
    pub fn beat_phase(&self, id: ServerId) -> Duration {
        let earlier = self.servers.iter().filter(|server| server.id < id).count();
        let share = self.simulation.beat_spread * earlier as f64 / self.servers.len().max(1) as f64;
        // Validated, the share and the rate give a phase under a second; unvalidated, none.
        Duration::try_from_secs_f64(share / self.simulation.tick_hz).unwrap_or_default()
    }

    pub fn proxy(&self, id: ProxyId) -> Result<&ProxyConfig, ClusterError> {
        self.proxies.iter().find(|p| p.id == id).ok_or(ClusterError::UnknownProxy(id))
    }

    /// The smallest cluster: the default map cut down to one region, on server 1, with
    /// proxy 1.
    pub fn one_region() -> Self {
        let mut map = Self::default_local();
        (map.world.columns, map.world.rows, map.world.spawn) = (1, 1, None);
        map.servers.truncate(1);
        map.servers[0].regions = vec![[0, 0]];
        map.proxies.truncate(1);
        map.validate().expect("one region on one server is a valid map");
        map
    }

    /// Moves every listener of the map to the address `place` gives it, asked with the
    /// listener and its present address: a whole cluster on other ports, such as free
    /// loopback ones for tests and the benchmark. A listener that moves loses its public
    /// address, which pointed at where it was.
    pub fn rebind<E>(&mut self, mut place: impl FnMut(Listener, SocketAddr) -> Result<SocketAddr, E>) -> Result<(), E> {
        let mut moved = |listener, bind: &mut SocketAddr, public: &mut Option<String>| {
            let to = place(listener, *bind)?;
            if to != *bind {
                (*bind, *public) = (to, None);
            }
            Ok(())
        };
        for server in &mut self.servers {
            moved(Listener::Peers(server.id), &mut server.peer_bind, &mut server.peer_public)?;
            moved(Listener::Proxies(server.id), &mut server.proxy_bind, &mut server.proxy_public)?;
        }
        for proxy in &mut self.proxies {
            moved(Listener::Players(proxy.id), &mut proxy.client_bind, &mut proxy.client_public)?;
        }
        Ok(())
    }
}

/// One listening socket of a cluster map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// Where a server's peers dial it.
    Peers(ServerId),
    /// Where proxies dial a server.
    Proxies(ServerId),
    /// Where players dial a proxy.
    Players(ProxyId),
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Peers(server) => write!(f, "{server} peer port"),
            Self::Proxies(server) => write!(f, "{server} proxy port"),
            Self::Players(proxy) => write!(f, "{proxy} client port"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_agree_on_a_cluster_file_wherever_they_listen() {
        let ours = ClusterConfig::parse(DEFAULT_CLUSTER_TOML).unwrap();
        let mut theirs = ours.clone();
        theirs.servers[0].proxy_bind = "0.0.0.0:7000".parse().unwrap();
        theirs.servers[0].peer_public = Some("game.example.org:7001".into());
        theirs.proxies[0].client_public = Some("play.example.org:7100".into());
        assert_eq!(theirs.digest(), ours.digest(), "where each listens may differ from host to host");
        let differs = |change: fn(&mut ClusterConfig)| {
            let mut theirs = ours.clone();
            change(&mut theirs);
            theirs.digest() != ours.digest()
        };
        assert!(differs(|c| c.simulation.tick_hz = 30.0));
        assert!(differs(|c| c.simulation.player_bytes_per_second += 1));
        assert!(differs(|c| c.simulation.beat_spread = 0.5));
        assert!(differs(|c| c.world.spawn_radius += 1.0));
        let (first, second) = (ours.servers[0].id, ours.servers[1].id);
        let mut swapped = ours.clone();
        (swapped.servers[0].id, swapped.servers[1].id) = (second, first);
        assert_ne!(swapped.digest(), ours.digest(), "who owns which region");
        let mut reordered = ours.clone();
        reordered.servers.reverse();
        reordered.servers[0].regions.reverse();
        reordered.proxies.reverse();
        assert_eq!(reordered.digest(), ours.digest(), "in any order the file lists them");
        assert!(differs(|c| {
            c.proxies.pop();
        }));
    }

    fn rejects(edit: impl FnOnce(&mut ClusterConfig)) -> ClusterError {
        let mut config = ClusterConfig::default_local();
        edit(&mut config);
        config.validate().expect_err("the edited map must be rejected")
    }

    #[test]
    fn servers_tick_in_turn_by_id_over_the_spread_of_a_tick() {
        let mut config = ClusterConfig::default_local();
        config.servers.reverse();
        let phases = |config: &ClusterConfig| -> Vec<f64> {
            (1..=4).map(|id| config.beat_phase(ServerId(id)).as_secs_f64() * 1e3).collect()
        };
        let close = |got: Vec<f64>, want: [f64; 4]| got.iter().zip(want).all(|(got, want)| (got - want).abs() < 1e-6);
        assert!(close(phases(&config), [0.0, 12.5, 25.0, 37.5]), "{:?}", phases(&config));
        config.simulation.beat_spread = 0.5;
        assert!(close(phases(&config), [0.0, 6.25, 12.5, 18.75]), "{:?}", phases(&config));
        config.simulation.beat_spread = 0.0;
        assert!(close(phases(&config), [0.0; 4]), "{:?}", phases(&config));
    }

    #[test]
    fn default_map_is_two_by_two_on_four_servers() {
        let config = ClusterConfig::default_local();
        assert_eq!(config.servers.len(), 4);
        assert_eq!(config.proxies.len(), 2);
        let map = config.region_map();
        let owners: Vec<_> = map.regions().map(|(_, s)| s).collect();
        assert_eq!(owners, vec![ServerId(1), ServerId(2), ServerId(3), ServerId(4)]);
        assert_eq!(ClusterConfig::parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn invalid_maps_are_rejected_with_the_reason() {
        let err = rejects(|c| c.servers[1].id = ServerId(1));
        assert!(matches!(err, ClusterError::DuplicateServer(ServerId(1))), "{err}");
        let err = rejects(|c| c.proxies[1].id = c.proxies[0].id);
        assert!(matches!(err, ClusterError::DuplicateProxy(_)), "{err}");
        let err = rejects(|c| c.servers[1].regions.push([0, 0]));
        assert!(matches!(err, ClusterError::RegionOwnedTwice { .. }), "{err}");
        let err = rejects(|c| c.servers[3].regions.clear());
        assert!(matches!(err, ClusterError::RegionUnowned(RegionId { x: 1, y: 1 })), "{err}");
        let err = rejects(|c| c.servers[0].regions.push([5, 0]));
        assert!(matches!(err, ClusterError::RegionOutsideWorld { .. }), "{err}");
        assert_eq!(err.to_string(), "server 1 claims region (5, 0), which is outside the 2×2 world");
        let err = rejects(|c| c.world.spawn = Some([-1.0, 0.0]));
        assert!(matches!(err, ClusterError::SpawnOutsideWorld(_)), "{err}");
        let err = rejects(|c| c.world.columns = 60_000);
        assert!(matches!(err, ClusterError::World(MapError::TooManyCells(240_000))), "{err}");
        let err = rejects(|c| c.simulation.tick_hz = 0.0);
        assert!(matches!(err, ClusterError::Simulation(_)), "{err}");
        let err = rejects(|c| c.simulation.player_bytes_per_second = 20 * MIN_PLAYER_BYTES_PER_TICK - 1);
        assert!(matches!(err, ClusterError::Simulation(_)), "{err}");
        let err = rejects(|c| c.simulation.beat_spread = 1.5);
        assert!(matches!(err, ClusterError::Simulation(_)), "{err}");
        let err = rejects(|c| c.simulation.beat_spread = f64::NAN);
        assert!(matches!(err, ClusterError::Simulation(_)), "{err}");
        let err = rejects(|c| c.simulation.tick_hz = 200.0);
        assert!(matches!(err, ClusterError::Simulation(_)), "the default budget at 200 Hz: {err}");
    }

    #[test]
    fn rebinding_moves_every_listener_and_drops_stale_public_addresses() {
        let mut config = ClusterConfig::default_local();
        config.servers[0].peer_public = Some("example.org:7101".into());
        config.proxies[0].client_public = Some("example.org:7001".into());
        let mut seen = Vec::new();
        let mut port = 9000;
        config
            .rebind(|listener, _| {
                seen.push(listener);
                port += 1;
                Ok::<_, ()>(SocketAddr::from(([127, 0, 0, 1], port)))
            })
            .unwrap();
        assert_eq!(seen.len(), 4 * 2 + 2, "every listener, once");
        assert_eq!(seen[0], Listener::Peers(ServerId(1)));
        assert_eq!(config.servers[0].peer_address(), "127.0.0.1:9001");
        assert_eq!(config.proxies[0].client_public, None);
        assert_eq!(config.proxies[1].client_address(), "127.0.0.1:9010");

        // Left where they are, public addresses stay.
        let mut config = ClusterConfig::default_local();
        config.proxies[0].client_public = Some("example.org:7001".into());
        config.rebind(|_, at| Ok::<_, ()>(at)).unwrap();
        assert_eq!(config.proxies[0].client_address(), "example.org:7001");
        assert_eq!(ClusterConfig::one_region().region_map().regions().count(), 1);
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_parse_errors() {
        let text = format!("{DEFAULT_CLUSTER_TOML}\nbogus = 1\n");
        assert!(matches!(ClusterConfig::parse(&text), Err(ClusterError::Parse(_))));
        assert!(matches!(ClusterConfig::parse("[world"), Err(ClusterError::Parse(_))));
    }
}
