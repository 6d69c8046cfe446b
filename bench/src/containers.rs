//! The cluster of a compose file (`hosting/compose/compose.yaml`) as `tessera-bench
//! chaos --compose` finds it, already up: each server and proxy a container, dealt its
//! blows with Docker's own commands (killed, stopped and started, cut off its network and
//! joined again), and read at its own address on the compose network, which the host
//! reaches, though only the proxies' player ports are published.

use crate::BenchError;
use crate::scrape::{self, Scrape};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tessera_shared::cluster::ClusterConfig;
use tokio::process::Command;
use tokio::time::Instant;

/// Where every member serves its metrics inside its container (the image's
/// `TESSERA_METRICS`).
const METRICS_PORT: u16 = 9100;
/// How long the members have to link up, after a start or a blow.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `docker stop` waits for a member to exit on SIGTERM before it kills it: a
/// server saves everyone first.
const STOP_GRACE_SECS: &str = "30";

/// A compose project's cluster: its members' containers, in the map's order.
pub struct ComposeCluster {
    pub map: ClusterConfig,
    pub servers: Vec<Container>,
    pub proxies: Vec<Container>,
}

/// How a member is taken away from the others for a while.
#[derive(Debug, Clone, Copy)]
pub enum Absence {
    /// `docker stop` (SIGTERM: a server saves its players), later `docker start`.
    Stopped,
    /// `docker network disconnect`, later `connect`: a network cut, the member running.
    CutOff,
}

/// One member's container, known to compose as `service`.
pub struct Container {
    pub service: String,
    id: String,
    /// The compose network it is cut off from, and joined to again.
    network: String,
}

impl ComposeCluster {
    /// The members of `map` running as project `project` of compose `file`: server N is
    /// the service `serverN`, proxy N the service `proxyN`, on the network `cluster`.
    pub async fn find(file: &Path, project: &str, map: ClusterConfig) -> Result<Self, BenchError> {
        let network = format!("{project}_cluster");
        let find = async |service: String| {
            let file = file.to_str().ok_or_else(|| BenchError::Setup(format!("{} is not UTF-8", file.display())))?;
            let id = run("docker-compose", &["-f", file, "-p", project, "ps", "-q", &service]).await?;
            let id = id.trim().to_owned();
            if id.is_empty() {
                return Err(BenchError::Setup(format!(
                    "compose project {project} has no container for {service}: is it up?"
                )));
            }
            Ok(Container { service, id, network: network.clone() })
        };
        let mut servers = Vec::new();
        for server in &map.servers {
            servers.push(find(format!("server{}", server.id.0)).await?);
        }
        let mut proxies = Vec::new();
        for proxy in &map.proxies {
            proxies.push(find(format!("proxy{}", proxy.id.0)).await?);
        }
        Ok(Self { map, servers, proxies })
    }

    /// The map next to `compose_file`, as `hosting/compose/` keeps it.
    pub fn map_beside(compose_file: &Path) -> PathBuf {
        compose_file.with_file_name("cluster.toml")
    }

    /// Waits until every server is linked to every peer and every proxy to every server.
    pub async fn wait_ready(&self) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let servers = futures_util::future::join_all(self.servers.iter().map(Container::scrape)).await;
            let proxies = futures_util::future::join_all(self.proxies.iter().map(Container::scrape)).await;
            if scrape::linked_up(&servers, &proxies) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Setup(format!(
                    "the containers did not link up within {READY_TIMEOUT:?}; see `docker-compose logs`"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where players connect: the proxies' public addresses in the map.
    pub fn proxy_addresses(&self) -> Vec<String> {
        self.map.proxies.iter().map(|p| p.client_address()).collect()
    }
}

impl Container {
    /// SIGKILL, as a host lost would do it.
    pub async fn kill(&self) -> Result<(), BenchError> {
        self.docker(&["kill"]).await
    }

    /// SIGTERM, then SIGKILL if it has not exited in [`STOP_GRACE_SECS`].
    pub async fn stop(&self) -> Result<(), BenchError> {
        self.docker(&["stop", "--time", STOP_GRACE_SECS]).await
    }

    pub async fn start(&self) -> Result<(), BenchError> {
        self.docker(&["start"]).await
    }

    /// Stopped, or cut off the compose network (nothing reaches it, and it reaches
    /// nothing, while it runs on).
    pub async fn leave(&self, absence: Absence) -> Result<(), BenchError> {
        match absence {
            Absence::Stopped => self.stop().await,
            Absence::CutOff => self.docker(&["network", "disconnect", &self.network]).await,
        }
    }

    /// Started again, or back on the network under its service's name.
    pub async fn come_back(&self, absence: Absence) -> Result<(), BenchError> {
        match absence {
            Absence::Stopped => self.start().await,
            Absence::CutOff => self.docker(&["network", "connect", "--alias", &self.service, &self.network]).await,
        }
    }

    /// Its metrics, at its address on the network now (a restart may change it).
    pub async fn scrape(&self) -> Result<Scrape, BenchError> {
        let format =
            format!("{{{{with index .NetworkSettings.Networks \"{}\"}}}}{{{{.IPAddress}}}}{{{{end}}}}", self.network);
        let ip = run("docker", &["inspect", "--format", &format, &self.id]).await?;
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| BenchError::Setup(format!("{} has no address on {} now", self.service, self.network)))?;
        scrape::scrape(SocketAddr::new(ip, METRICS_PORT)).await
    }

    /// `docker ARGS… CONTAINER`, with `docker network` taking the container last too.
    async fn docker(&self, args: &[&str]) -> Result<(), BenchError> {
        let mut args = args.to_vec();
        args.push(&self.id);
        run("docker", &args).await.map(drop)
    }
}

/// Runs `program` with `args`; its standard output, or an error with what it said.
async fn run(program: &str, args: &[&str]) -> Result<String, BenchError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|err| BenchError::Setup(format!("cannot run {program}: {err}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(BenchError::Setup(format!("{program} {}: {}", args.join(" "), said.trim())));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
