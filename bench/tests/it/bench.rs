//! `tessera-bench` end to end, shrunk to one small step and tiny comparisons: it
//! starts the real server and proxy processes, reads their metrics, writes its JSON
//! report, and leaves no process behind. (The ramp itself is too long for the suite.)

use serde_json::Value;
use std::process::Command;

/// Processes the bench starts: servers and proxies, whose command lines name `dir`
/// (their cluster files live there), and bare relays.
fn processes_started_in(dir: &str) -> Vec<String> {
    let relay = format!("{} relay ", env!("CARGO_BIN_EXE_tessera-bench"));
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if (cmdline.contains(dir) && !cmdline.starts_with(env!("CARGO_BIN_EXE_tessera-bench")))
                || cmdline.starts_with(&relay)
            {
                found.push(cmdline);
            }
        }
    }
    found
}

#[test]
fn a_small_bench_measures_every_process_and_cleans_up() {
    let _turn = crate::ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path();
    let status = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args(["--steps", "10", "--warmup", "3", "--measure", "3"])
        .args(["--compare-bots", "6", "--relay-clients", "4", "--max-minutes", "5", "--out"])
        .arg(out)
        .status()
        .expect("tessera-bench runs");
    assert!(status.success(), "the bench failed: {status}");
    assert!(processes_started_in(out.to_str().unwrap()).is_empty(), "the bench left processes behind");

    let report: Value = serde_json::from_slice(&std::fs::read(out.join("bench.json")).unwrap()).unwrap();
    let step = &report["steps"][0];
    assert_eq!(step["bots"], 10);
    let swarm = &step["swarm"];
    assert_eq!(swarm["bots_still_connected"], 10, "{swarm:#}");
    assert_eq!((swarm["inputs_lost"].as_u64(), swarm["inputs_duplicated"].as_u64()), (Some(0), Some(0)));
    assert!(swarm["updates_received"].as_u64().unwrap() > 0);
    // Every server and proxy was read through its metrics endpoint.
    let servers = step["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 4);
    for server in servers {
        let rate = server["tick_rate_hz"].as_f64().unwrap();
        assert!(rate > 10.0 && rate < 30.0, "a server ticked at {rate} Hz");
        assert!(server["process"]["peak_memory_mb"].as_f64().unwrap() > 0.0);
        // Its simulation sleeps between ticks: woken once a tick at least.
        let woken = server["process"]["wakeups_per_sec"].as_f64().unwrap();
        assert!(woken > 0.75 * rate, "a server ticking at {rate} Hz woken {woken} times a second");
    }
    let proxies = step["proxies"].as_array().unwrap();
    assert_eq!(proxies.len(), 2);
    // A bot never changes proxy, so the proxies' counts add up exactly.
    let players: f64 = proxies.iter().map(|p| p["players"].as_f64().unwrap()).sum();
    assert_eq!(players, 10.0, "the proxies hold every bot");
    // The servers are read one after another while bots cross borders: a bot handed off
    // between two reads is counted by neither or by both.
    let owned: f64 = servers.iter().map(|s| s["players"].as_f64().unwrap()).sum();
    assert!((owned - 10.0).abs() <= 1.0, "the servers own every bot, give or take a handoff in flight: {owned}");
    // Ten bots at 20 Hz are 200 player-ticks a second, each sent an update or not (told
    // nothing new, or not due one past capacity); the proxies forward those sent.
    let per_sec = |outcome: &str| -> f64 { servers.iter().map(|s| s[outcome].as_f64().unwrap()).sum() };
    let sent = per_sec("updates_sent_per_sec");
    let player_ticks = sent + per_sec("updates_quiet_per_sec") + per_sec("updates_paced_per_sec");
    assert!(
        (170.0..230.0).contains(&player_ticks),
        "ten bots at 20 Hz are about 200 player-ticks a second: {player_ticks}"
    );
    assert!(sent > 10.0 && sent < player_ticks, "a few updates a second each, not one a tick: {sent}");
    let frames: f64 = proxies.iter().map(|p| p["frames_to_clients_per_sec"].as_f64().unwrap()).sum();
    assert!((frames - sent).abs() < 0.2 * sent + 5.0, "the proxies forwarded {frames} frames a second of {sent} sent");
    // Both comparisons ran.
    let comparison = &report["subscriptions_vs_broadcast"];
    assert_eq!(comparison["broadcast"]["swarm"]["bots_still_connected"], 6);
    assert!(comparison["broadcast"]["peer_bytes_per_sec"].as_f64().unwrap() > 0.0);
    let relay = &report["proxy_vs_relay"];
    for forwarder in ["proxy", "relay"] {
        // Flat out, the proxy may drop a reader that falls behind, as it should; not all of them.
        assert!(relay[forwarder]["connections_open"].as_u64().unwrap() > 0, "{relay:#}");
        assert!(relay[forwarder]["frames_per_sec"].as_f64().unwrap() > 0.0, "{relay:#}");
    }
}
