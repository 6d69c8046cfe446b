//! A player's liveness at the proxy. Its client says nothing while its player presses
//! nothing (a heartbeat only every `PLAYER_HEARTBEAT_EVERY`), so a player quiet for longer
//! than a link's silence limit plays on; and a player whose host vanishes, its network
//! cut without a word, is still noticed in seconds, by what the proxy writes to it
//! going unacknowledged. The proxy's side and the player's host are network namespaces
//! of the test's own, joined by a veth pair whose end at the player is then set down.

use crate::stand_in::{DEADLINE, TestProxy, join, wait_for};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};
use tessera_proxy::ProxyLimits;
use tessera_shared::link::SILENCE_LIMIT;

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
    let hosts = Hosts::new();
    // The proxy runs here, but takes players on a socket of its side of the cable.
    let players = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(&Hosts::namespace_file(&hosts.proxy_side));
                std::net::TcpListener::bind((Hosts::PROXY_ADDRESS, 0)).unwrap()
            })
            .join()
            .unwrap()
    });
    let proxy = TestProxy::start_for(ProxyLimits::DEFAULT, players).await;
    let (joined, held) = std::sync::mpsc::channel();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let address = proxy.players;
    let player_side = Hosts::namespace_file(&hosts.player_side);
    // The player's thread lives on the far host: its socket is that host's.
    let player = std::thread::spawn(move || {
        enter(&player_side);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let far = runtime.block_on(join(address, "far"));
        joined.send(()).unwrap();
        // Holds its connection, reading nothing, until the test is over.
        let _ = finish.recv();
        drop(far);
    });
    held.recv_timeout(DEADLINE).expect("the far player joins");
    wait_for("the proxy to count the far player", || proxy.players_playing() == 1).await;

    hosts.cut();
    let cut = Instant::now();
    wait_for("the proxy to drop the vanished player", || proxy.players_playing() == 0).await;
    let noticed = cut.elapsed();
    assert!(
        noticed >= SILENCE_LIMIT - Duration::from_secs(1),
        "noticed after {noticed:?}: by its writes going unacknowledged, not at once"
    );
    assert!(noticed < SILENCE_LIMIT * 3, "noticed after {noticed:?}, well past the silence limit");
    done.send(()).unwrap();
    player.join().unwrap();
}

/// Two network namespaces of the test's own, the proxy's side and the player's host,
/// joined by a veth pair, a cable with an address at each end: nothing of this
/// machine's own network is touched, so the addresses can be any. Named for the
/// process, and removed when dropped.
struct Hosts {
    proxy_side: String,
    player_side: String,
    /// The player's end of the cable.
    player_end: String,
}

impl Hosts {
    const PROXY_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PLAYER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn new() -> Self {
        let tag = std::process::id();
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
        ip(&["-n", player, "addr", "add", &format!("{}/30", Self::PLAYER_ADDRESS), "dev", &hosts.player_end]);
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
