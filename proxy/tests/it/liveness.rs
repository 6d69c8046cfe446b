//! A player's liveness at the proxy. Its client says nothing while its player presses
//! nothing (a heartbeat only every `PLAYER_HEARTBEAT_EVERY`), so a player quiet for longer
//! than a link's silence limit plays on; and a player whose host vanishes, its network
//! cut without a word, is still noticed in seconds: by what the proxy writes to it going
//! unacknowledged, or, where the proxy writes nothing on its link (its updates go by
//! datagram), by the kernel's probes of the idle link going unanswered. The proxy's side
//! and the player's host are network namespaces of the test's own, joined by a veth pair
//! whose end at the player is then set down, silently: the proxy's side is not told.

use crate::stand_in::{DEADLINE, TestProxy, join, wait_for};
use bytes::Bytes;
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tessera_proxy::ProxyLimits;
use tessera_shared::link::SILENCE_LIMIT;
use tessera_shared::protocol::{PlayerFrame, ServerToProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_pressing_nothing_plays_on_past_the_links_silence_limit() {
    let proxy = TestProxy::start(ProxyLimits::DEFAULT).await;
    let mut quiet = join(proxy.players, "quiet").await;
    // The stand-in server sends nothing: the proxy only beats, and the player says nothing.
    let heard = tokio::time::timeout(SILENCE_LIMIT + Duration::from_secs(2), quiet.link.recv()).await;
    assert!(heard.is_err(), "the proxy neither sent a frame nor closed the link: {heard:?}");
    assert_eq!(proxy.players_playing(), 1, "the quiet player still plays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_whose_host_vanished_is_gone_within_the_silence_limit() {
    let far = FarPlayer::join(Updates::None).await;
    let noticed = far.cut_and_time_until_dropped().await;
    assert!(
        noticed >= SILENCE_LIMIT - Duration::from_secs(1),
        "noticed after {noticed:?}: by its writes going unacknowledged, not at once"
    );
    assert!(noticed < SILENCE_LIMIT * 3, "noticed after {noticed:?}, well past the silence limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_sent_its_updates_by_datagram_whose_host_vanished_is_gone_as_soon() {
    let far = FarPlayer::join(Updates::ByDatagram).await;
    // Updates go on coming by datagram, every beat: the proxy writes nothing on the
    // link, and only its kernel's probes can find the host gone.
    let noticed = far.cut_and_time_until_dropped().await;
    assert!(noticed < SILENCE_LIMIT * 3, "noticed after {noticed:?}, well past the silence limit");
}

/// What the stand-in server sends the far player.
#[derive(Clone, Copy, PartialEq)]
enum Updates {
    None,
    /// An update every 50 ms, which the proxy sends by datagram once the player binds.
    ByDatagram,
}

/// A proxy on the proxy's side of the cable, and a player on the far host, joined.
struct FarPlayer {
    proxy: TestProxy,
    player: std::thread::JoinHandle<()>,
    done: std::sync::mpsc::Sender<()>,
    updating: Option<tokio::task::JoinHandle<()>>,
    /// Last, so that the proxy is gone before its side is.
    hosts: Hosts,
}

impl FarPlayer {
    async fn join(updates: Updates) -> Self {
        let hosts = Hosts::new();
        // The proxy and its stand-in server run on the proxy's side of the cable: what
        // they open there is that side's (the proxy's socket for datagrams too).
        let proxy_side = hosts.proxy_side.clone();
        let listeners = within(&proxy_side, || {
            let players = std::net::TcpListener::bind((Hosts::PROXY_ADDRESS, 0)).unwrap();
            (players, std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
        });
        let proxy = TestProxy::start_for(ProxyLimits::DEFAULT, listeners, |settings, players, shutdown| {
            within(&proxy_side, || tessera_proxy::spawn_thread(settings, players, shutdown).unwrap())
        })
        .await;
        let (joined, held) = std::sync::mpsc::channel();
        let (done, finish) = std::sync::mpsc::channel::<()>();
        let address = proxy.players;
        let player_side = Hosts::namespace_file(&hosts.player_side);
        // The player's thread lives on the far host: its sockets are that host's.
        let player = std::thread::spawn(move || {
            enter(&player_side);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let far = runtime.block_on(join(address, "far"));
            // Its updates bound to a socket of its own, if they go by datagram.
            let udp = (updates == Updates::ByDatagram).then(|| {
                let udp = std::net::UdpSocket::bind((Hosts::PLAYER_ADDRESS, 0)).unwrap();
                let tag = far.datagrams.expect("the proxy sends updates by datagram");
                udp.send_to(&tag.0, address).unwrap();
                udp
            });
            joined.send(far.user).unwrap();
            // Holds its connection, reading nothing, until the test is over.
            let _ = finish.recv();
            drop((far, udp));
        });
        let user = held.recv_timeout(DEADLINE).expect("the far player joins");
        wait_for("the proxy to count the far player", || proxy.players_playing() == 1).await;
        let updating = (updates == Updates::ByDatagram).then(|| {
            let server = proxy.server.clone();
            tokio::spawn(async move {
                let frame = Bytes::from_static(b"\0\0\0\x06update");
                // Longer than any wait of the test.
                for tick in 0..1_000 {
                    let frames = vec![PlayerFrame { user, last_input: 0, full: true, frame: frame.clone() }];
                    if server.send(ServerToProxy::Updates { tick, frames }).is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        });
        if updating.is_some() {
            // Two seconds' worth: what went by the link before the player bound (and
            // the welcome) is long acknowledged, and the link idle.
            let sent = || proxy.stats.datagrams_to_clients.load(Ordering::Relaxed) >= 40;
            wait_for("the proxy to send the far player its updates by datagram", sent).await;
        }
        Self { proxy, player, done, updating, hosts }
    }

    /// Cuts the player's network, and returns how long the proxy took to drop it.
    async fn cut_and_time_until_dropped(self) -> Duration {
        self.hosts.cut();
        let cut = Instant::now();
        wait_for("the proxy to drop the vanished player", || self.proxy.players_playing() == 0).await;
        let noticed = cut.elapsed();
        if let Some(updating) = self.updating {
            updating.abort();
        }
        self.done.send(()).unwrap();
        self.player.join().unwrap();
        noticed
    }
}

/// Two network namespaces of the test's own, the proxy's side and the player's host,
/// joined by a veth pair, a cable with an address at each end: nothing of this
/// machine's own network is touched, so the addresses can be any. Named for the
/// process and the test, and removed when dropped.
struct Hosts {
    proxy_side: String,
    player_side: String,
    /// The player's end of the cable.
    player_end: String,
}

impl Hosts {
    const PROXY_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PLAYER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const PLAYER_MAC: &str = "02:00:0a:00:00:02";

    fn new() -> Self {
        // Tests run at once in one process: each its own pair, within the 15 characters
        // an interface's name may have.
        static MADE: AtomicU32 = AtomicU32::new(0);
        let tag = format!("{}{}", std::process::id(), MADE.fetch_add(1, Ordering::Relaxed));
        let hosts = Self {
            proxy_side: format!("tessera-test-{tag}-proxy"),
            player_side: format!("tessera-test-{tag}-player"),
            player_end: format!("ttp{tag}"),
        };
        let proxy_end = format!("tto{tag}");
        for namespace in [&hosts.proxy_side, &hosts.player_side] {
            // Left by a run killed with this process id, if any.
            quietly_ip(&["netns", "del", namespace]);
            ip(&["netns", "add", namespace]);
        }
        let (proxy, player) = (&hosts.proxy_side, &hosts.player_side);
        ip(&[
            "-n",
            proxy,
            "link",
            "add",
            &proxy_end,
            "type",
            "veth",
            "peer",
            "name",
            &hosts.player_end,
            "netns",
            player,
        ]);
        ip(&["-n", proxy, "addr", "add", &format!("{}/30", Self::PROXY_ADDRESS), "dev", &proxy_end]);
        ip(&["-n", proxy, "link", "set", &proxy_end, "up"]);
        // The stand-in server listens on the proxy's side's own loopback.
        ip(&["-n", proxy, "link", "set", "lo", "up"]);
        ip(&["-n", player, "addr", "add", &format!("{}/30", Self::PLAYER_ADDRESS), "dev", &hosts.player_end]);
        ip(&["-n", player, "link", "set", &hosts.player_end, "address", Self::PLAYER_MAC]);
        // The proxy's side knows the player's host for good, as a router across the
        // internet would go on forwarding to it: nothing (no failed lookup of its
        // address) tells the proxy it is gone.
        let (address, mac) = (Self::PLAYER_ADDRESS.to_string(), Self::PLAYER_MAC);
        ip(&["-n", proxy, "neigh", "replace", &address, "lladdr", mac, "dev", &proxy_end, "nud", "permanent"]);
        ip(&["-n", player, "link", "set", &hosts.player_end, "up"]);
        hosts
    }

    fn namespace_file(namespace: &str) -> std::fs::File {
        std::fs::File::open(format!("/run/netns/{namespace}")).expect("the host's namespace")
    }

    /// The player's network is cut: nothing it is sent arrives, and it says nothing,
    /// not even goodbye.
    fn cut(&self) {
        ip(&["-n", &self.player_side, "link", "set", &self.player_end, "down"]);
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // The cable goes first, both ends at once: a namespace lingers while a socket in
        // it still tries to say goodbye over the cut cable.
        quietly_ip(&["-n", &self.player_side, "link", "del", &self.player_end]);
        quietly_ip(&["netns", "del", &self.player_side]);
        quietly_ip(&["netns", "del", &self.proxy_side]);
    }
}

/// Runs `work` on a thread of its own in the network namespace called `namespace`: what
/// it opens is there, and so is any thread it starts.
fn within<T: Send>(namespace: &str, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(&Hosts::namespace_file(namespace));
                work()
            })
            .join()
            .unwrap()
    })
}

/// Moves the calling thread into the network namespace `namespace` holds: what it opens
/// from now on is there.
fn enter(namespace: &std::fs::File) {
    move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network)).expect("entering a namespace");
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|err| {
        panic!("running `ip`: {err}; this test makes network namespaces: install iproute2 (.ci/run does)")
    });
    assert!(
        output.status.success(),
        "`ip {}` failed: {}; making network namespaces takes CAP_SYS_ADMIN and CAP_NET_ADMIN: run the \
         tests as root (CI does)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// `ip` for cleaning up: what is not there to remove is no matter.
fn quietly_ip(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}
