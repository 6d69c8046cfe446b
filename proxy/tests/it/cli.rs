//! The proxy as a host runs it: a bad cluster file is refused with its reason,
//! `--metrics` serves the proxy's figures while it waits for its servers, and a proxy
//! facing beyond loopback does not start without the cluster secret.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback address (released just before the proxy binds it).
fn free_address() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn cluster_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn a_bad_cluster_file_is_refused_with_the_reason() {
    let file = cluster_file("[world]\nregion_size = 100.0\ncolumns = 1\nrows = 1\nbogus = 1\n");
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-proxy"))
        .args(["--id", "1", "--cluster"])
        .arg(file.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bogus"), "the error names the unknown key: {stderr}");
}

/// A one-region map whose proxy takes players on `client` and whose server is on loopback.
fn one_region_map(client: &str) -> tempfile::NamedTempFile {
    cluster_file(&format!(
        "[world]\nregion_size = 100.0\ncolumns = 1\nrows = 1\n\n\
         [[server]]\nid = 1\npeer_bind = \"{}\"\nproxy_bind = \"{}\"\nregions = [[0, 0]]\n\n\
         [[proxy]]\nid = 1\nclient_bind = \"{client}\"\n",
        free_address(),
        free_address()
    ))
}

/// Starts the proxy of `map` with `args`, and waits (at most 20 s) until its metrics
/// endpoint answers, returning the running process and what it served.
fn start_with_metrics(map: &tempfile::NamedTempFile, args: &[&str]) -> (std::process::Child, String) {
    let metrics = free_address();
    let mut proxy = Command::new(env!("CARGO_BIN_EXE_tessera-proxy"))
        .args(["--id", "1", "--metrics", &metrics.to_string(), "--cluster"])
        .arg(map.path())
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fetched =
            ureq::get(&format!("http://{metrics}/metrics")).call().and_then(|mut r| r.body_mut().read_to_string());
        match fetched {
            Ok(text) if text.contains("tessera_proxy_servers") => return (proxy, text),
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            other => {
                let _ = proxy.kill();
                panic!("no metrics within 20 s: {other:?}");
            }
        }
    }
}

#[test]
fn a_proxy_beyond_loopback_needs_the_cluster_secret() {
    let public = format!("0.0.0.0:{}", free_address().port());
    let map = one_region_map(&public);
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-proxy"))
        .args(["--id", "1", "--cluster"])
        .arg(map.path())
        .env_remove("TESSERA_SECRET_FILE")
        .env_remove("TESSERA_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&public) && stderr.contains("keygen --out"),
        "the refusal names the address and how to make a secret: {stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    tessera_shared::secret::ClusterSecret::generate_into(&secret).unwrap();
    let (mut proxy, _) = start_with_metrics(&map, &["--secret-file", &secret.display().to_string()]);
    assert!(proxy.try_wait().unwrap().is_none(), "with the secret it runs");
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn metrics_show_a_proxy_waiting_for_its_server() {
    let (mut proxy, text) = start_with_metrics(&one_region_map(&free_address().to_string()), &[]);
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(text.contains("tessera_proxy_servers{proxy=\"1\"} 0"), "no server is up yet:\n{text}");
    assert!(text.contains("tessera_proxy_players{proxy=\"1\"} 0"), "{text}");
}
