//! `tessera-server keygen` makes a cluster secret a server and a proxy can read, and a
//! server facing beyond loopback does not start without one.

use std::process::Command;
use tessera_shared::secret::ClusterSecret;

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-server"));
    command.env_remove("TESSERA_SECRET_FILE").env_remove("TESSERA_SECRET");
    command
}

#[test]
fn keygen_writes_a_private_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.secret");
    let made = server().args(["keygen", "--out"]).arg(&path).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert!(!ClusterSecret::load(&path).unwrap().is_development());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let again = server().args(["keygen", "--out"]).arg(&path).output().unwrap();
    assert!(!again.status.success(), "an existing secret is never overwritten");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn a_server_beyond_loopback_needs_the_cluster_secret() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("cluster.toml");
    std::fs::write(
        &map,
        "[world]\nregion_size = 100.0\ncolumns = 1\nrows = 1\n\n\
         [[server]]\nid = 1\npeer_bind = \"127.0.0.1:0\"\nproxy_bind = \"0.0.0.0:0\"\nregions = [[0, 0]]\n\n\
         [[proxy]]\nid = 1\nclient_bind = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let output = server().args(["--id", "1", "--cluster"]).arg(&map).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listening for proxies on 0.0.0.0:0") && stderr.contains("keygen --out"), "{stderr}");
}
