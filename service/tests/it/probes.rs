//! `/livez`, `/readyz` and `/metrics` over HTTP on a loopback port, and `tessera-health`
//! asking them as a container engine would. One endpoint per process (it installs the
//! process's metrics recorder), so one test walks through every state.

use std::net::SocketAddr;
use std::process::Command;
use tessera_service::health::Health;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut response = agent.get(format!("http://{addr}{path}")).call().expect("the endpoint answers");
    (response.status().as_u16(), response.body_mut().read_to_string().expect("a text body"))
}

/// `tessera-health`'s exit status and what it printed, asking `probe` at `addr`.
fn health_check(addr: SocketAddr, probe: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-health"))
        .args([probe, "--metrics", &addr.to_string()])
        .env_remove("TESSERA_METRICS")
        .output()
        .expect("tessera-health runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn probes_answer_for_every_part_and_the_health_check_follows_them() {
    let (server, proxy) = (Health::new("server 1"), Health::new("proxy 1"));
    let addr = tessera_service::metrics::serve("127.0.0.1:0".parse().unwrap(), vec![server.clone(), proxy.clone()])
        .expect("the endpoint starts");
    metrics::counter!("tessera_test_probes_total").increment(3);

    assert_eq!(get(addr, "/livez"), (200, "alive\n".into()));
    assert_eq!(get(addr, "/readyz"), (503, "server 1: not ready\nproxy 1: not ready\n".into()));
    assert_eq!(health_check(addr, "ready"), (false, "server 1: not ready\nproxy 1: not ready\n".into()));
    assert_eq!(health_check(addr, "live"), (true, "alive\n".into()));

    server.set_ready(true);
    assert_eq!(get(addr, "/readyz"), (503, "proxy 1: not ready\n".into()));
    proxy.set_ready(true);
    assert_eq!(get(addr, "/readyz"), (200, "ready\n".into()));
    assert_eq!(health_check(addr, "ready"), (true, "ready\n".into()));

    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tessera_test_probes_total 3"), "{metrics}");
    assert_eq!(get(addr, "/nothing").0, 404);
}

#[test]
fn the_health_check_fails_where_nothing_answers() {
    // A port just freed: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (ok, said) = health_check(addr, "ready");
    assert!(!ok);
    assert!(said.starts_with(&format!("no answer at {addr}")), "{said}");
}
