//! A private PostgreSQL server for tests (the store's, and the cluster's that run a
//! cluster on PostgreSQL), behind the `test-server` feature, never in a build that ships.
//! From Debian's `postgresql` package: a data
//! directory made by `initdb` in a temporary folder, listening on a free port of
//! 127.0.0.1 only, with trust authentication. As root the server runs as the `postgres`
//! system user, since PostgreSQL refuses to run as root. Without the package the tests
//! that need it fail, saying what to install: they are never skipped.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The superuser `initdb` makes, which the tests connect as.
const USER: &str = "tessera";

pub struct PgServer {
    bin: PathBuf,
    /// Holds `data/`, the log and the server's socket; removed when the server is dropped.
    dir: PathBuf,
    port: u16,
}

impl PgServer {
    /// A new server, started. Panics with the reason when it cannot be made or started.
    pub fn start() -> Self {
        let bin = server_binaries();
        let dir = tempfile::Builder::new().prefix("tessera-pg-").tempdir().expect("temporary directory").keep();
        if running_as_root() {
            let (uid, gid) = postgres_user();
            chown(&dir, Some(uid), Some(gid)).expect("giving the test server's directory to the postgres user");
        }
        let server = Self { bin, port: free_port(), dir };
        server.run(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-U",
                USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
        );
        server.resume();
        server
    }

    /// Starts the server again after [`PgServer::stop`], on the same port, with its data.
    pub fn resume(&self) {
        // fsync off: the tests never outlive the machine, only the server (stopped as in a
        // crash by `stop`), and the operating system keeps what was written. Commits stay
        // synchronous, so a crash loses nothing that was committed.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    /// Stops the server at once (connections are cut, as in a crash), waiting until it is gone.
    pub fn stop(&self) {
        self.try_stop().unwrap_or_else(|failure| panic!("{failure}"));
    }

    fn try_stop(&self) -> Result<(), String> {
        self.try_run("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"])
    }

    /// The URL of database `dbname` on this server.
    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Makes an empty database and returns its URL: each test gets its own.
    pub async fn new_database(&self, dbname: &str) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connecting to the test server");
        let connection = tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {dbname}")).await.expect("creating a test database");
        drop(client);
        connection.await.expect("connection task").expect("connection closed cleanly");
        self.url(dbname)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs one of the server's programs, panicking with its output if it fails.
    fn run(&self, program: &str, args: &[&str]) {
        self.try_run(program, args).unwrap_or_else(|failure| panic!("{failure}"));
    }

    /// Runs one of the server's programs, as the postgres user when we are root.
    fn try_run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = if running_as_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command.args(args).output().map_err(|error| format!("running {}: {error}", path.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "{program} {args:?} failed ({}):\n{}{}\nserver log:\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        ))
    }

    fn remove(&self) {
        // Never panics (it runs at exit too); a server already stopped is fine.
        let _ = self.try_stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.remove();
    }
}

static SHARED: OnceLock<PgServer> = OnceLock::new();

/// The server most tests share (one database each), started by the first that asks and
/// stopped when the test binary exits.
pub fn shared() -> &'static PgServer {
    SHARED.get_or_init(|| {
        let server = PgServer::start();
        extern "C" fn stop_shared() {
            if let Some(server) = SHARED.get() {
                server.remove();
            }
        }
        // SAFETY: registers a plain function with no arguments, as atexit asks.
        let registered = unsafe { libc::atexit(stop_shared) };
        assert_eq!(registered, 0, "registering the test server's stop at exit");
        server
    })
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding the server programs.
fn server_binaries() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse::<u32>().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .max_by_key(|(version, _)| *version);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server under {}/<version>/bin: the store tests start a private PostgreSQL \
             server from Debian's packages; install them with `apt-get install postgresql` (.ci/run does)",
            root.display()
        ),
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of the `postgres` system user the package makes.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        assert!(output.status.success(), "no postgres user: is Debian's postgresql package installed?");
        String::from_utf8_lossy(&output.stdout).trim().parse().expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("its address").port()
}
