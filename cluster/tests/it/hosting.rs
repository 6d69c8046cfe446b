//! What hosts are given beside the binaries holds together: every cluster map shipped
//! (`assets/`, `hosting/`) is a valid map; the compose file runs exactly its map's
//! members under the names its map dials; and the Kubernetes manifests pass the API's
//! schema (checked offline by `kubernetes-validate`, from PyPI, which `.ci/run` installs)
//! with as many server and proxy pods as their map names.

use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_shared::cluster::ClusterConfig;

/// The oldest Kubernetes the manifests are for: the first whose pods carry their
/// StatefulSet index as a label, which `--ordinal` is read from.
const KUBERNETES_VERSION: &str = "1.28.0";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

fn map(path: &str) -> ClusterConfig {
    ClusterConfig::load(&repo(path)).unwrap_or_else(|err| panic!("{path}: {err}"))
}

#[test]
fn every_shipped_map_is_valid() {
    for path in [
        "assets/cluster.toml",
        "hosting/docker/cluster.toml",
        "hosting/playtest/cluster.toml",
        "hosting/compose/cluster.toml",
        "hosting/kubernetes/cluster.toml",
    ] {
        map(path);
    }
}

#[test]
fn the_compose_file_runs_its_maps_members_by_the_names_it_dials() {
    let compose = read("hosting/compose/compose.yaml");
    let cluster = map("hosting/compose/cluster.toml");
    for server in &cluster.servers {
        let service = format!("server{}", server.id.0);
        assert!(compose.contains(&format!("\n  {service}:\n")), "no service {service}");
        assert!(compose.contains(&format!(r#"command: ["tessera-server", "--id", "{}"]"#, server.id.0)));
        for address in [server.peer_address(), server.proxy_address()] {
            assert!(address.starts_with(&format!("{service}:")), "{} dialled at {address}", server.id);
        }
    }
    for proxy in &cluster.proxies {
        let service = format!("proxy{}", proxy.id.0);
        assert!(compose.contains(&format!("\n  {service}:\n")), "no service {service}");
        assert!(compose.contains(&format!(r#"command: ["tessera-proxy", "--id", "{}"]"#, proxy.id.0)));
        // Players dial the port the host publishes for this proxy's container, and
        // are sent their updates by datagram from the same port number.
        let published = proxy.client_address().rsplit_once(':').expect("host:port").1.to_owned();
        let inside = proxy.client_bind.port();
        assert!(
            compose.contains(&format!(r#"ports: [ "{published}:{inside}/tcp", "{published}:{inside}/udp" ]"#)),
            "{service} not published on {published}, TCP and UDP"
        );
    }
    let servers_and_proxies = compose.matches("command: [\"tessera-").count();
    assert_eq!(servers_and_proxies, cluster.servers.len() + cluster.proxies.len(), "a member the map does not name");
}

/// The `replicas:` of the one StatefulSet in `manifest`.
fn replicas(manifest: &str) -> usize {
    let text = read(manifest);
    let mut counts = text.lines().filter_map(|line| line.trim().strip_prefix("replicas:"));
    let count = counts.next().unwrap_or_else(|| panic!("{manifest}: no replicas"));
    assert!(counts.next().is_none(), "{manifest}: one StatefulSet expected");
    count.trim().parse().unwrap_or_else(|err| panic!("{manifest}: replicas: {err}"))
}

#[test]
fn kubernetes_manifests_pass_the_schema_and_match_their_map() {
    let dir = repo("hosting/kubernetes");
    let kustomization = read("hosting/kubernetes/kustomization.yaml");
    let resources: Vec<&str> = kustomization
        .lines()
        .skip_while(|line| *line != "resources:")
        .skip(1)
        .map_while(|line| line.strip_prefix("  - "))
        .collect();
    assert_eq!(resources, ["namespace.yaml", "servers.yaml", "proxies.yaml"]);
    let validated = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", KUBERNETES_VERSION])
        .args(&resources)
        .current_dir(&dir)
        .output()
        .expect("kubernetes-validate runs: pip install kubernetes-validate (.ci/run does)");
    let said = String::from_utf8_lossy(&validated.stdout).into_owned() + &String::from_utf8_lossy(&validated.stderr);
    assert!(validated.status.success(), "the manifests fail the schema:\n{said}");

    let cluster = map("hosting/kubernetes/cluster.toml");
    assert_eq!(replicas("hosting/kubernetes/servers.yaml"), cluster.servers.len());
    assert_eq!(replicas("hosting/kubernetes/proxies.yaml"), cluster.proxies.len());
    for (ordinal, server) in cluster.servers.iter().enumerate() {
        let pod = format!("tessera-server-{ordinal}.tessera-server:");
        assert!(server.peer_address().starts_with(&pod) && server.proxy_address().starts_with(&pod), "{}", server.id);
    }
}
