//! The processes a benchmark starts: the real `tessera-server` and `tessera-proxy`
//! binaries (and the bare relay), each on free loopback ports with its metrics endpoint
//! on, its output in a log file, and tied to the benchmark's life. Every one is killed
//! when its handle drops (a failure, a panic, Ctrl-C) and by the kernel if the
//! benchmark itself dies; a benchmark that finishes stops them gently. A process can be
//! killed, stopped as a host stops it, and started again with the same command line
//! (the chaos run does all three).

use crate::scrape::{self, Scrape};
use crate::{BenchError, ClusterOptions};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::secret::{ClusterSecret, SecretError};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a new cluster has to link every server to every peer and proxy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the binaries are: beside the running `tessera-bench`, as cargo builds them.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub server: PathBuf,
    pub proxy: PathBuf,
    /// This benchmark, which is also the bare relay (`tessera-bench relay`).
    pub bench: PathBuf,
}

impl Binaries {
    pub fn beside_this_one() -> Result<Self, BenchError> {
        let bench = std::env::current_exe().map_err(|err| BenchError::Setup(format!("cannot find myself: {err}")))?;
        let dir = bench.parent().expect("an executable lives in a directory");
        let binaries =
            Self { server: dir.join("tessera-server"), proxy: dir.join("tessera-proxy"), bench: bench.clone() };
        for binary in [&binaries.server, &binaries.proxy] {
            if !binary.exists() {
                return Err(BenchError::Setup(format!(
                    "{} is missing: build it first (cargo build --release -p tessera-server -p tessera-proxy -p tessera-bench)",
                    binary.display()
                )));
            }
        }
        // Asked of this binary, not of its directory's name: the cluster's binaries beside
        // it came out of the same build, and binaries copied anywhere keep their build.
        if cfg!(debug_assertions) {
            tracing::warn!("{} holds a debug build: figures will not be representative", dir.display());
        }
        Ok(binaries)
    }
}

/// An empty data directory in `dir` for a cluster's player store: every run starts with
/// a world nobody has played, so its bots spawn as the first run's did.
pub fn fresh_data_dir(dir: &Path) -> Result<PathBuf, BenchError> {
    let data = dir.join("data");
    let setup = |err: std::io::Error| BenchError::Setup(format!("cannot empty {}: {err}", data.display()));
    match std::fs::remove_dir_all(&data) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(setup(err)),
    }
    std::fs::create_dir_all(&data).map_err(setup)?;
    Ok(data)
}

/// CPU time, wake-ups and peak memory of a process, read from `/proc`.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub wakeups: Wakeups,
    pub peak_memory_bytes: u64,
}

/// How many times each thread of a process went to sleep waiting for something (a
/// frame, a timer, another thread) and was woken so far: its voluntary context
/// switches, by thread id. A wake-up costs the kernel of both the waker and the woken,
/// and on a virtual machine whose idle cores halt, far more than the work it wakes for
/// (BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
pub struct Wakeups(HashMap<i32, u64>);

impl Wakeups {
    fn of(process: &procfs::process::Process) -> Option<Self> {
        let threads = process.tasks().ok()?.flatten();
        Some(Self(threads.filter_map(|task| Some((task.tid, task.status().ok()?.voluntary_ctxt_switches?))).collect()))
    }

    /// The wake-ups since `earlier`: each thread's growth, and all of those of a thread
    /// started since. A thread that ended in between cannot be read any more: what it
    /// had since `earlier` is not counted (tokio's blocking threads end after a few
    /// idle seconds), and the others' counts are unaffected.
    pub fn since(&self, earlier: &Self) -> u64 {
        let grown = |(thread, now): (&i32, &u64)| now.saturating_sub(earlier.0.get(thread).copied().unwrap_or(0));
        self.0.iter().map(grown).sum()
    }
}

impl Usage {
    pub fn of(pid: i32) -> Option<Self> {
        let process = procfs::process::Process::new(pid).ok()?;
        let stat = process.stat().ok()?;
        let status = process.status().ok()?;
        Some(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
            wakeups: Wakeups::of(&process)?,
            peak_memory_bytes: status.vmhwm.unwrap_or(0) * 1024,
        })
    }

    pub fn of_this_process() -> Self {
        Self::of(std::process::id() as i32).unwrap_or_default()
    }
}

/// One started process.
pub struct Process {
    pub name: String,
    /// Its metrics endpoint, when it serves one.
    pub metrics: Option<SocketAddr>,
    child: Child,
    log: PathBuf,
    program: PathBuf,
    args: Vec<String>,
}

impl Process {
    /// Starts `program` with `args`, its output going to `{dir}/{name}.log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        metrics: Option<SocketAddr>,
        dir: &Path,
    ) -> Result<Self, BenchError> {
        let log = dir.join(format!("{name}.log"));
        let output = std::fs::File::create(&log)
            .map_err(|err| BenchError::Setup(format!("cannot create {}: {err}", log.display())))?;
        let child = start(program, args, output)?;
        Ok(Self { name: name.into(), metrics, child, log, program: program.into(), args: args.into() })
    }

    /// Starts it again as it was first started, after it exited (or was made to); its
    /// log goes on in the same file.
    pub fn start_again(&mut self) -> Result<(), BenchError> {
        let output = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .map_err(|err| BenchError::Setup(format!("cannot open {}: {err}", self.log.display())))?;
        self.child = start(&self.program, &self.args, output)?;
        Ok(())
    }

    /// Reads its metrics.
    pub async fn scrape(&self) -> Result<Scrape, BenchError> {
        let addr = self.metrics.ok_or_else(|| BenchError::Setup(format!("{} serves no metrics", self.name)))?;
        scrape::scrape(addr).await
    }

    pub fn usage(&self) -> Usage {
        self.child.id().and_then(|pid| Usage::of(pid as i32)).unwrap_or_default()
    }

    /// An error if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::ProcessDied(self.name.clone(), status.to_string(), self.log.clone())),
            Err(err) => Err(BenchError::ProcessDied(self.name.clone(), err.to_string(), self.log.clone())),
        }
    }

    /// SIGTERM, as a host stops it, then SIGKILL if it lingers; returns once it exited.
    pub async fn terminate(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: signalling our own child by its pid, which it keeps until we reap it.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait()).await.is_err() {
            tracing::warn!("{} ignored SIGTERM for {STOP_GRACE:?}: killing it", self.name);
            self.kill().await;
        }
    }

    /// SIGKILL: gone at once, saying nothing to anyone; returns once it exited.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Stops it gently ([`Self::terminate`]) for good.
    pub async fn stop(mut self) {
        self.terminate().await;
    }
}

/// Starts `program` with `args`, its output and errors to `output`, tied to this
/// process's life.
fn start(program: &Path, args: &[String], output: std::fs::File) -> Result<Child, BenchError> {
    let errors = output.try_clone().map_err(|err| BenchError::Setup(err.to_string()))?;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null()).stdout(output).stderr(errors).kill_on_drop(true);
    // The kernel kills the child if the benchmark dies without cleaning up: strictly,
    // when the thread that spawned it exits, and that is a runtime worker, which
    // lives as long as the benchmark. A parent already gone before the prctl is
    // caught by comparing the parent pid.
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe and touch nothing of the parent's state.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the benchmark is gone"));
            }
            Ok(())
        });
    }
    command.spawn().map_err(|err| BenchError::Setup(format!("cannot start {}: {err}", program.display())))
}

/// A proxy's flags for a load test of up to `players` bots, any number of them through
/// the one proxy, all from this machine's one address: the front door's limits sized for
/// them rather than for strangers on the internet. The byte budget per player stays.
pub fn load_test_limits(players: usize) -> Vec<String> {
    let players = players.max(1);
    // Room for the players, and as many again joining or leaving.
    let connections = players.saturating_mul(2);
    [
        ("--max-players", players),
        ("--max-connections", connections),
        ("--max-connections-per-address", connections),
        ("--joins-per-sec-per-address", players),
        ("--join-burst-per-address", players),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
    .collect()
}

/// Each of `map`'s processes' share of this machine's cores, in threads, at least one:
/// its servers, its proxies and the bots loading them (counted as one) share the cores,
/// as on a host that runs a whole cluster. A runtime a core each would give the machine
/// more busy threads than cores, waking one another for every frame; the proxies and
/// then the bots cost less with their share (BENCHMARKS.md).
fn share_of_cores(map: &ClusterConfig) -> usize {
    (tessera_service::resources::cores() / (map.servers.len() + map.proxies.len() + 1)).max(1)
}

/// Threads for the bots loading `map`'s cluster from this machine: their share of its
/// cores ([`share_of_cores`]), and those the servers' and proxies' shares leave over.
pub fn bots_threads(map: &ClusterConfig) -> usize {
    let share = share_of_cores(map);
    let cluster = share.saturating_mul(map.servers.len() + map.proxies.len());
    tessera_service::resources::cores().saturating_sub(cluster).max(share)
}

/// `n` distinct loopback addresses with free ports.
pub fn free_addresses(n: usize) -> Result<Vec<SocketAddr>, BenchError> {
    // All held at once, so no two are the same; released just before use.
    let listeners: Result<Vec<_>, _> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect();
    let listeners = listeners.map_err(|err| BenchError::Setup(format!("no free port: {err}")))?;
    listeners.iter().map(|l| l.local_addr().map_err(|err| BenchError::Setup(err.to_string()))).collect()
}

/// A fresh cluster secret in `dir`, as a host makes one, and the file holding it.
pub fn cluster_secret(dir: &Path) -> Result<(ClusterSecret, PathBuf), BenchError> {
    let file = dir.join("cluster.secret");
    let setup = |err: SecretError| BenchError::Setup(format!("cannot make the cluster secret: {err}"));
    // Each run makes its own: a secret left by an earlier run in the same folder goes.
    let _ = std::fs::remove_file(&file);
    Ok((ClusterSecret::generate_into(&file).map_err(setup)?, file))
}

/// A whole cluster as separate processes.
pub struct ClusterProcesses {
    pub cluster: ClusterConfig,
    pub servers: Vec<Process>,
    pub proxies: Vec<Process>,
}

impl ClusterProcesses {
    /// Starts every server and proxy of `map` on free ports, as `options` say, the
    /// proxies admitting up to `players` bots from this machine, and waits until every
    /// server is linked to every peer and every proxy to every server.
    pub async fn start(
        binaries: &Binaries,
        mut map: ClusterConfig,
        broadcast_baseline: bool,
        options: &ClusterOptions,
        players: usize,
        dir: &Path,
    ) -> Result<Self, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(|err| BenchError::Setup(format!("cannot create {}: {err}", dir.display())))?;
        let needed = map.servers.len() * 3 + map.proxies.len() * 2;
        let mut free = free_addresses(needed)?.into_iter();
        let mut next = || free.next().expect("enough addresses were taken");
        map.rebind(|_, _| Ok::<_, BenchError>(next()))?;
        let file = dir.join("cluster.toml");
        std::fs::write(&file, map.to_toml())
            .map_err(|err| BenchError::Setup(format!("cannot write {}: {err}", file.display())))?;
        let cluster_arg = file.display().to_string();
        let data_arg = fresh_data_dir(dir)?.display().to_string();
        let (_, secret_file) = cluster_secret(dir)?;
        let secret_arg = secret_file.display().to_string();
        let mut servers = Vec::new();
        for server in &map.servers {
            let metrics = next();
            let mut args = vec!["--cluster".into(), cluster_arg.clone(), "--id".into(), server.id.0.to_string()];
            args.extend(["--metrics".into(), metrics.to_string(), "--secret-file".into(), secret_arg.clone()]);
            args.extend(["--data".into(), data_arg.clone()]);
            if broadcast_baseline {
                args.push("--broadcast-baseline".into());
            }
            if let Some(secs) = options.checkpoint_secs {
                args.extend(["--checkpoint-secs".into(), secs.to_string()]);
            }
            servers.push(Process::spawn(
                &format!("server-{}", server.id.0),
                &binaries.server,
                &args,
                Some(metrics),
                dir,
            )?);
        }
        let proxy_share = share_of_cores(&map);
        let mut proxies = Vec::new();
        for proxy in &map.proxies {
            let metrics = next();
            let mut args = vec![
                "--cluster".into(),
                cluster_arg.clone(),
                "--id".into(),
                proxy.id.0.to_string(),
                "--metrics".into(),
                metrics.to_string(),
                "--secret-file".into(),
                secret_arg.clone(),
                "--data".into(),
                data_arg.clone(),
            ];
            args.extend(["--threads".into(), options.proxy_threads.unwrap_or(proxy_share).to_string()]);
            if options.tcp_only {
                args.push("--tcp-only".into());
            }
            args.extend(load_test_limits(players));
            proxies.push(Process::spawn(&format!("proxy-{}", proxy.id.0), &binaries.proxy, &args, Some(metrics), dir)?);
        }
        let mut cluster = Self { cluster: map, servers, proxies };
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Waits until every server is linked to every peer and every proxy to every server.
    pub async fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            let scrapes = self.scrape_all().await;
            let (servers, proxies) = scrapes.split_at(self.servers.len());
            if scrape::linked_up(servers, proxies) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(BenchError::Setup(format!(
                    "the cluster did not link up within {READY_TIMEOUT:?}; see the logs beside its cluster.toml"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn check_alive(&mut self) -> Result<(), BenchError> {
        self.servers.iter_mut().chain(&mut self.proxies).try_for_each(Process::check_alive)
    }

    /// Every server's then every proxy's metrics, in that order.
    pub async fn scrape_all(&self) -> Vec<Result<Scrape, BenchError>> {
        let all = self.servers.iter().chain(&self.proxies).map(|p| p.scrape());
        futures_util::future::join_all(all).await
    }

    pub fn proxy_addresses(&self) -> Vec<String> {
        self.cluster.proxies.iter().map(|p| p.client_address()).collect()
    }

    /// Stops every process gently.
    pub async fn stop(self) {
        let all = self.servers.into_iter().chain(self.proxies).map(Process::stop);
        futures_util::future::join_all(all).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_of_a_process_is_counted_each_time_it_is_woken() {
        let this = std::process::id() as i32;
        let before = Usage::of(this).unwrap();
        let (slept, done_sleeping) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let sleeper = std::thread::spawn(move || {
            for _ in 0..50 {
                std::thread::sleep(Duration::from_millis(1));
            }
            slept.send(()).unwrap();
            // Alive, and so read, until the count is taken.
            let _ = released.recv();
        });
        done_sleeping.recv().unwrap();
        let after = Usage::of(this).unwrap();
        release.send(()).unwrap();
        sleeper.join().unwrap();
        // Other tests' threads may come, go, and wake meanwhile: at least the sleeper's.
        let woken = after.wakeups.since(&before.wakeups);
        assert!(woken >= 50, "woken {woken} times, with a thread that slept 50 times");
    }

    #[test]
    fn a_thread_gone_takes_only_its_own_wake_ups_with_it() {
        let earlier = Wakeups(HashMap::from([(1, 100), (2, 40), (3, 7)]));
        // Thread 2 grew by 5, thread 3 ended, thread 4 began and woke 3 times.
        let later = Wakeups(HashMap::from([(1, 100), (2, 45), (4, 3)]));
        assert_eq!(later.since(&earlier), 8);
    }
}
