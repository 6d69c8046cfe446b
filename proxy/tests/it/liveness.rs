//! A player's liveness at the proxy. Its client says nothing while its player presses
//! nothing (a heartbeat only every `PLAYER_HEARTBEAT_EVERY`), so a player quiet for longer
//! than a link's silence limit plays on; and a player whose host vanishes, its network
//! cut without a word, is still noticed within that limit, by what the proxy writes to it
//! going unacknowledged. The host is a network namespace of the test's own, joined to
//! this one by a veth pair, whose end there is then set down.

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
    let host = Host::new();
    let players = std::net::TcpListener::bind((host.ours, 0)).unwrap();
    let proxy = TestProxy::start_for(ProxyLimits::DEFAULT, players).await;
    let (joined, held) = std::sync::mpsc::channel();
    let (done, finish) = std::sync::mpsc::channel::<()>();
    let address = proxy.players;
    let namespace = host.namespace_file();
    // The player's thread lives in the host's namespace: its socket is the host's.
    let player = std::thread::spawn(move || {
        move_into_link_name_space(namespace.as_fd(), Some(LinkNameSpaceType::Network)).expect("entering the host");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let far = runtime.block_on(join(address, "far"));
        joined.send(()).unwrap();
        // Holds its connection, reading nothing, until the test is over.
        let _ = finish.recv();
        drop(far);
    });
    held.recv_timeout(DEADLINE).expect("the far player joins");
    wait_for("the proxy to count the far player", || proxy.players_playing() == 1).await;

    host.cut();
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

/// A host of the test's own: a network namespace linked to this one by a veth pair, its
/// two ends a /30 of the benchmarking range (198.18.0.0/15) picked by the process id, so
/// that no other run's pair can answer for it. Removed when dropped.
struct Host {
    namespace: String,
    inside: String,
    /// The address of this end of the pair.
    ours: Ipv4Addr,
}

impl Host {
    fn new() -> Self {
        let tag = std::process::id();
        let block = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (tag % (1 << 15)) * 4;
        let (ours, its) = (Ipv4Addr::from(block + 1), Ipv4Addr::from(block + 2));
        let host = Self { namespace: format!("tessera-test-{tag}"), inside: format!("tti{tag}"), ours };
        let outside = format!("tto{tag}");
        ip(&["netns", "add", &host.namespace]);
        ip(&["link", "add", &outside, "type", "veth", "peer", "name", &host.inside, "netns", &host.namespace]);
        ip(&["addr", "add", &format!("{ours}/30"), "dev", &outside]);
        ip(&["link", "set", &outside, "up"]);
        ip(&["-n", &host.namespace, "addr", "add", &format!("{its}/30"), "dev", &host.inside]);
        ip(&["-n", &host.namespace, "link", "set", &host.inside, "up"]);
        host
    }

    fn namespace_file(&self) -> std::fs::File {
        std::fs::File::open(format!("/run/netns/{}", self.namespace)).expect("the host's namespace")
    }

    /// Its network is cut: nothing it is sent arrives, and it says nothing, not even goodbye.
    fn cut(&self) {
        ip(&["-n", &self.namespace, "link", "set", &self.inside, "down"]);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // The pair goes first, both ends at once: the namespace itself lingers while a
        // socket in it still tries to say goodbye over the cut link, and its end of the
        // pair with it, our address on this one's.
        let _ = Command::new("ip").args(["-n", &self.namespace, "link", "del", &self.inside]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.namespace]).status();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|err| {
        panic!("running `ip`: {err}; this test makes a network namespace: install iproute2 (.ci/run does)")
    });
    assert!(
        output.status.success(),
        "`ip {}` failed: {}; making a network namespace needs root (CI runs as root)",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}
