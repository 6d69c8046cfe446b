//! `tessera-bench chaos` end to end, with a dozen-odd bots: a proxy killed, the busiest
//! server killed and brought back, and a rolling SIGTERM restart of all six processes,
//! on the real binaries; every bot plays on, and no input is lost or applied twice.

use serde_json::Value;
use std::process::Command;

#[test]
fn bots_ride_out_a_killed_proxy_a_killed_server_and_a_rolling_restart() {
    let _turn = crate::ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let scratch = tempfile::tempdir().unwrap();
    let out = scratch.path();
    let output = Command::new(env!("CARGO_BIN_EXE_tessera-bench"))
        .args(["chaos", "--bots", "16", "--warmup", "4", "--settle", "0.5", "--server-down", "1", "--out"])
        .arg(out)
        .output()
        .expect("tessera-bench runs");
    let printed = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("chaos.json")).unwrap()).unwrap();
    assert!(output.status.success(), "a target was missed: {printed}\n{report:#}");

    let swarm = &report["swarm"];
    assert_eq!(swarm["bots_still_connected"], 16, "{swarm:#}");
    assert_eq!((swarm["inputs_lost"].as_u64(), swarm["inputs_duplicated"].as_u64()), (Some(0), Some(0)));
    let scenes = report["scenes"].as_array().unwrap();
    assert_eq!(scenes.len(), 3);
    let count = |scene: &Value, what: &str| scene[what].as_u64().unwrap();
    assert!(count(&scenes[0], "by_lost_connection") > 0, "the killed proxy's players resumed: {:#}", scenes[0]);
    assert!(count(&scenes[1], "by_region_offline") > 0, "the killed server's players waited: {:#}", scenes[1]);
    assert!(scenes[1]["back_after_return_ms"]["max"].as_f64().unwrap() > 0.0, "{:#}", scenes[1]);
    assert!(
        count(&scenes[2], "by_region_offline") > 0 && count(&scenes[2], "by_lost_connection") > 0,
        "{:#}",
        scenes[2]
    );
    for scene in scenes {
        assert_eq!(count(scene, "never_back"), 0, "{scene:#}");
    }
}
