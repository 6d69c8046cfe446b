//! A whole cluster as a host runs it, as a real process (`tessera-cluster`), stopped and
//! started again: stopped by SIGTERM, it saves everyone first, and its players come back
//! exactly where they stood, here with the store on PostgreSQL; killed by SIGKILL, it
//! loses at most one checkpoint interval of their movement (the SQLite file). And a
//! store that goes away for a while: joins are refused with the reason, play goes on,
//! and nothing is lost once it is back.

use crate::harness::{DEADLINE, TestCluster, fresh_data, join, join_at, walk_to};
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tessera_bots::swarm::bot_identity;
use tessera_player::{Player, PlayerError, Rejoin};
use tessera_proxy::ProxyLimits;
use tessera_server::settings::CHECKPOINT_INTERVAL;
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::components::Keys;
use tessera_shared::ids::ServerId;
use tessera_store::test_server::PgServer;

/// `tessera-cluster` running the default map on free loopback ports, its log in a file.
struct ClusterProcess {
    child: Child,
    proxies: Vec<String>,
}

impl ClusterProcess {
    /// Starts the default map in `dir` on free ports (new ones each start: another test
    /// may have taken the last ones meanwhile), keeping its players where `store_args`
    /// say.
    /// A port found free can be taken again before the cluster binds it (by any
    /// connection's own end: ports found free and ephemeral ports are one range), and
    /// then the cluster exits at once: it is started again, on other ports.
    fn start(dir: &Path, store_args: &[&str]) -> Self {
        let file = dir.join("cluster.toml");
        let log_path = dir.join("cluster.log");
        let accepting = || std::fs::read_to_string(&log_path).unwrap_or_default().matches("accepting players").count();
        for _ in 0..3 {
            let mut map = ClusterConfig::default_local();
            map.rebind(|_, _| std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()).unwrap();
            std::fs::write(&file, map.to_toml()).unwrap();
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).unwrap();
            let before = accepting();
            let mut child = Command::new(env!("CARGO_BIN_EXE_tessera-cluster"))
                .arg("--cluster")
                .arg(&file)
                .args(store_args)
                .stderr(log)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + DEADLINE;
            while child.try_wait().unwrap().is_none() {
                if accepting() >= before + map.proxies.len() {
                    return Self { child, proxies: map.proxies.iter().map(|proxy| proxy.client_address()).collect() };
                }
                assert!(Instant::now() < deadline, "the cluster's proxies did not listen within {DEADLINE:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        panic!("the cluster exited at start three times; its log:\n{log}");
    }

    fn signal(&mut self, signal: libc::c_int) -> ExitStatus {
        // SAFETY: kill has no memory effects; the pid is our child's, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, signal) }, 0);
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the cluster did not stop within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn position(player: &Player) -> Vec2 {
    player.view.me.expect("a first update").position
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_stopped_by_sigterm_saves_everyone_to_postgres_and_finds_them_again() {
    let postgres = PgServer::start();
    let url = postgres.new_database("restart").await;
    let dir = fresh_data();
    let store = ["--store", url.as_str()];
    let mut cluster = ClusterProcess::start(dir.path(), &store);
    let mut ada = join_at(cluster.proxies[0].clone(), "ada").await;
    walk_to(&mut ada, Vec2::new(1500.0, 1400.0), |_| {}).await;
    let (id, stood) = (ada.welcome.user, position(&ada));
    // Stopped at once: well within a checkpoint interval of ada's last move.
    assert!(cluster.signal(libc::SIGTERM).success(), "a clean stop");
    drop(ada);

    let cluster = ClusterProcess::start(dir.path(), &store);
    let ada = join_at(cluster.proxies[1].clone(), "ada").await;
    assert_eq!((ada.welcome.user, ada.welcome.name.as_str()), (id, "ada"));
    let log = std::fs::read_to_string(dir.path().join("cluster.log")).unwrap_or_default();
    assert!(
        position(&ada).distance(stood) < 1.0,
        "back at {stood}, not at {}; the cluster's log:\n{log}",
        position(&ada)
    );
    let mut bo = join_at(cluster.proxies[0].clone(), "bo").await;
    walk_to(&mut bo, stood - Vec2::new(80.0, 0.0), |_| {}).await;
    bo.wait_until(DEADLINE, "ada seen where she stood", |view| {
        view.other(id.entity()).is_some_and(|seen| seen.position.distance(stood) < 1.0)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_killed_without_warning_loses_at_most_one_checkpoint_interval() {
    let dir = fresh_data();
    let data = dir.path().display().to_string();
    let store = ["--data", data.as_str()];
    let mut cluster = ClusterProcess::start(dir.path(), &store);
    let mut ada = join_at(cluster.proxies[0].clone(), "ada").await;
    // Walking for longer than an interval, on a path that never crosses itself, noting
    // where ada was when.
    let mut trail = vec![(Instant::now(), position(&ada))];
    let leg = CHECKPOINT_INTERVAL.mul_f32(0.7);
    for keys in [Keys::RIGHT, Keys::UP, Keys::LEFT] {
        ada.press(keys).await.unwrap();
        let turn = Instant::now() + leg;
        while Instant::now() < turn {
            tokio::time::timeout(DEADLINE, ada.receive()).await.expect("updates while walking").unwrap();
            trail.push((Instant::now(), position(&ada)));
        }
    }
    let killed_at = Instant::now();
    assert!(!cluster.signal(libc::SIGKILL).success());
    drop(ada);

    let cluster = ClusterProcess::start(dir.path(), &store);
    let ada = join_at(cluster.proxies[0].clone(), "ada").await;
    let back_at = position(&ada);
    // Where on the walk that is, between the updates ada had on the way.
    let (off, when) = trail
        .windows(2)
        .map(|leg| {
            let ((t0, p0), (t1, p1)) = (leg[0], leg[1]);
            let along = (back_at - p0).dot(p1 - p0) / (p1 - p0).length_squared().max(f32::EPSILON);
            let along = along.clamp(0.0, 1.0);
            (back_at.distance(p0.lerp(p1, along)), t0 + (t1 - t0).mul_f32(along))
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(off < 2.0, "back at {back_at}, {off} units from anywhere ada was");
    let lost = killed_at - when;
    println!(
        "killed {:.1} s into the walk: back where ada was {lost:?} before",
        (killed_at - trail[0].0).as_secs_f32()
    );
    // The interval, a tick, and the time an update takes to reach ada.
    assert!(lost <= CHECKPOINT_INTERVAL + Duration::from_millis(500), "lost {lost:?} of walking");
    assert!(back_at.distance(trail[0].1) > 100.0, "not back at the start: a checkpoint was taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_refuses_joins_stops_no_play_and_loses_nothing() {
    let postgres = PgServer::start();
    let url = postgres.new_database("outage").await;
    let store = url.parse().unwrap();
    let cluster = TestCluster::start_with(ClusterConfig::default_local(), ProxyLimits::default(), store, fresh_data());
    let mut ada = join(&cluster, 0, "ada").await;
    walk_to(&mut ada, Vec2::new(900.0, 900.0), |_| {}).await;

    postgres.stop();
    let proxy = cluster.proxy_addresses()[0].clone();
    match Rejoin::new(vec![proxy.clone()], bot_identity("bo"), "bo").attempt(&proxy).await {
        Err(PlayerError::Disconnected(reason)) => assert!(reason.contains("unavailable"), "{reason}"),
        other => panic!("expected the join refused with the reason, got {:?}", other.map(|_| "a player")),
    }
    // Ada plays on while her checkpoints fail.
    walk_to(&mut ada, Vec2::new(700.0, 800.0), |_| {}).await;
    let failures =
        || cluster.config().servers.iter().map(|s| cluster.stats(s.id).checkpoint_failures.load(Relaxed)).sum::<u64>();
    let deadline = Instant::now() + DEADLINE;
    while failures() == 0 {
        assert!(Instant::now() < deadline, "no checkpoint was tried while the store was down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stood = position(&ada);

    postgres.resume();
    let (id, owner) = (ada.welcome.user, ada.view.server.expect("an owner"));
    let saved = |server: ServerId| cluster.stats(server).checkpoints_saved.load(Relaxed);
    let before = saved(owner);
    let deadline = Instant::now() + DEADLINE;
    while saved(owner) == before {
        assert!(Instant::now() < deadline, "nothing was saved once the store was back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(ada);
    let ada = join(&cluster, 1, "ada").await;
    assert_eq!(ada.welcome.user, id);
    assert!(position(&ada).distance(stood) < 1.0, "back at {stood}, not at {}", position(&ada));
}
