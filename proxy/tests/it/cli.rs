//! The proxy as a host runs it: a bad cluster file or limit is refused with its reason,
//! `--metrics` serves the proxy's figures while it waits for its servers, the limit
//! flags take effect, their refusals exported by cause, and a proxy facing beyond
//! loopback does not start without the cluster secret.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
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

#[test]
fn a_limit_of_zero_is_refused_with_the_reason() {
    let output =
        Command::new(env!("CARGO_BIN_EXE_tessera-proxy")).args(["--id", "1", "--max-players", "0"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--max-players") && stderr.contains("at least 1"), "{stderr}");
}

/// A one-server map whose proxy takes players on `players`.
fn one_region_map(players: SocketAddr) -> tempfile::NamedTempFile {
    cluster_file(&format!(
        "[world]\nregion_size = 100.0\ncolumns = 1\nrows = 1\n\n\
         [[server]]\nid = 1\npeer_bind = \"{}\"\nproxy_bind = \"{}\"\nregions = [[0, 0]]\n\n\
         [[proxy]]\nid = 1\nclient_bind = \"{players}\"\n",
        free_address(),
        free_address()
    ))
}

/// A proxy of a one-server map whose server never comes up, serving its metrics; killed when dropped.
struct ProxyProcess {
    child: Child,
    players: SocketAddr,
    metrics: SocketAddr,
    /// Its player store, and its log (stderr), shown when a test fails.
    data: tempfile::TempDir,
}

impl ProxyProcess {
    fn start(extra_args: &[&str]) -> (Self, tempfile::NamedTempFile) {
        Self::start_on(free_address, extra_args)
    }

    /// As [`Self::start`], taking players on an address `players` picks, once its
    /// metrics answer. A port picked free can be taken by another test before the proxy
    /// binds it: then the proxy stops, saying so, and is started again on new ports.
    fn start_on(players: impl Fn() -> SocketAddr, extra_args: &[&str]) -> (Self, tempfile::NamedTempFile) {
        for _ in 0..3 {
            let (mut proxy, file) = Self::spawn(players(), extra_args);
            let started = proxy.metrics_once(|_| true);
            match started {
                Ok(_) => return (proxy, file),
                Err(log) if log.contains("in use") => continue,
                Err(log) => panic!("the proxy stopped:\n{log}"),
            }
        }
        panic!("three proxies in a row found their ports taken");
    }

    fn spawn(players: SocketAddr, extra_args: &[&str]) -> (Self, tempfile::NamedTempFile) {
        let metrics = free_address();
        let file = one_region_map(players);
        let data = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(data.path().join("proxy.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tessera-proxy"))
            .args(["--id", "1", "--metrics", &metrics.to_string(), "--cluster"])
            .arg(file.path())
            .arg("--data")
            .arg(data.path())
            .args(extra_args)
            .env_remove("TESSERA_SECRET_FILE")
            .env_remove("TESSERA_SECRET")
            .stderr(log)
            .spawn()
            .unwrap();
        (Self { child, players, metrics, data }, file)
    }

    /// What the proxy logged so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("proxy.log")).unwrap_or_default()
    }

    /// The metrics text, once it holds `wanted`, or the proxy's log if it stopped.
    fn metrics_once(&mut self, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let fetched = ureq::get(&format!("http://{}/metrics", self.metrics))
                .call()
                .and_then(|mut r| r.body_mut().read_to_string());
            match fetched {
                Ok(text) if wanted(&text) => return Ok(text),
                _ if self.child.try_wait().unwrap().is_some() => return Err(self.log()),
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                other => panic!("the metrics did not show it within {DEADLINE:?}: {other:?}\n{}", self.log()),
            }
        }
    }

    /// As [`Self::metrics_once`], for a proxy that must be running.
    fn metrics(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        self.metrics_once(wanted).unwrap_or_else(|log| panic!("the proxy stopped:\n{log}"))
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn metrics_show_a_proxy_waiting_for_its_server() {
    let (mut proxy, _file) = ProxyProcess::start(&[]);
    let text = proxy.metrics(|text| text.contains("tessera_proxy_servers"));
    assert!(text.contains("tessera_proxy_servers{proxy=\"1\"} 0"), "no server is up yet:\n{text}");
    assert!(text.contains("tessera_proxy_players{proxy=\"1\"} 0"), "{text}");
}

/// Connects to the proxy at `addr`, and whether it begins its handshake (it speaks
/// first) rather than closing the connection at once; `None` while nothing listens.
fn knock(addr: SocketAddr) -> Option<(bool, TcpStream)> {
    let stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let admitted = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
    Some((admitted, stream))
}

#[test]
fn the_limit_flags_take_effect_and_refusals_are_exported_by_cause() {
    let (mut proxy, _file) = ProxyProcess::start(&["--max-connections-per-address", "1"]);
    let deadline = Instant::now() + DEADLINE;
    let _held = loop {
        match knock(proxy.players) {
            Some((true, stream)) => break stream,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => panic!("the proxy never admitted a first connection"),
        }
    };
    let (second, _) = knock(proxy.players).expect("the proxy listens");
    assert!(!second, "a second connection from the same address is closed at accept");
    let text = proxy.metrics(|text| refusals_are(text, "connections_per_address", "1"));
    assert!(refusals_are(&text, "join_rate", "0"), "{text}");
}

/// Whether the metrics `text` count `value` refusals for `cause`.
fn refusals_are(text: &str, cause: &str, value: &str) -> bool {
    text.lines().any(|line| {
        line.starts_with("tessera_proxy_refusals_total{")
            && line.contains(&format!("cause=\"{cause}\""))
            && line.ends_with(&format!(" {value}"))
    })
}

#[test]
fn a_proxy_beyond_loopback_needs_the_cluster_secret() {
    let public = SocketAddr::from(([0, 0, 0, 0], free_address().port()));
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-proxy"))
        .args(["--id", "1", "--cluster"])
        .arg(one_region_map(public).path())
        .env_remove("TESSERA_SECRET_FILE")
        .env_remove("TESSERA_SECRET")
        .output()
        .unwrap();
    assert!(!output.status.success(), "without a secret it does not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&public.to_string()) && stderr.contains("keygen --out"),
        "the refusal names the address and how to make a secret: {stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.secret");
    tessera_shared::secret::ClusterSecret::generate_into(&secret).unwrap();
    let beyond_loopback = || SocketAddr::from(([0, 0, 0, 0], free_address().port()));
    let (mut proxy, _file) = ProxyProcess::start_on(beyond_loopback, &["--secret-file", &secret.display().to_string()]);
    proxy.metrics(|text| text.contains("tessera_proxy_servers"));
}
