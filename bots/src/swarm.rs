//! The bot swarm: many headless players in one process, each through a random proxy
//! and walking as its [`Behaviour`] says. A swarm connects its bots spread over the
//! first part of a warm-up, then measures a fixed window: what the bots received, how
//! long the servers took to echo their key presses, and (over the whole run, through
//! the sequence numbers) whether any input was lost or applied twice, and every outage
//! a bot rode out: from losing its connection or its region to playing again. Asked
//! to, bots chat now and then ([`Chatter`]), and count the lines they said and heard.
//!
//! Each bot is a player with a key of its own, derived from its name ([`bot_identity`]):
//! cheap to make by the thousand, and the same bot each run, so a swarm started again
//! finds its bots where they were. Bot keys are no secret: anyone can be a bot.

use crate::behaviour::{Behaviour, Walker};
use crate::chatter::Chatter;
use hdrhistogram::Histogram;
use rand::SeedableRng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tessera_player::datagram_hub::{DatagramHubs, FEWEST_SEATS};
use tessera_player::smoothness::SmoothnessSeen;
use tessera_player::{Conditioner, Player, PlayerError, Rejoin, WorldView};
use tessera_shared::identity::Identity;
use tessera_shared::link::Traffic;
use tessera_shared::protocol::{MAX_UPDATE_EVERY, most_quiet_ticks};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a bot looks where it is going.
const STEER_EVERY: Duration = Duration::from_millis(250);
/// A bot looks at least every this many of its looks' beats (a second), skipping
/// those between only if they would press nothing ([`Walker::looks_until_a_press`]):
/// what its server says may differ from what it thought (it stood it still for a late
/// input, say), and a swarm stopped early stops at a look.
const MOST_BEATS_BETWEEN_LOOKS: u32 = 4;
/// How long a bot keeps trying to join before it counts as failed to connect.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);
/// How long a bot waits for its last inputs to be acknowledged before it counts them lost.
const ACK_GRACE: Duration = Duration::from_secs(3);
/// How long a bot stays connected past the window, at least.
const LINGER: Duration = Duration::from_secs(1);

/// What a swarm does.
#[derive(Debug, Clone)]
pub struct SwarmPlan {
    /// Client addresses of the cluster's proxies; each bot picks one at random.
    pub proxies: Vec<String>,
    pub bots: usize,
    /// Connecting (over its first half) and settling; not measured.
    pub warmup: Duration,
    /// The measured window.
    pub measure: Duration,
    /// Bots are named `{name_prefix}-{i}`, and are the same players whenever they are.
    pub name_prefix: String,
    /// What every bot's link goes through.
    pub conditioner: Conditioner,
    /// How often each bot says a line, on average; never if `None`.
    pub chat_every: Option<Duration>,
    /// How many threads the bots run on, each with its share of them on a runtime of
    /// its own: a core each to load a cluster from a host of their own
    /// ([`tessera_service::resources::cores`]), their share of the cores beside the
    /// cluster they load (the bench's), one for a few bots beside a game.
    pub threads: usize,
}

/// The measured window, the same for every bot of a swarm.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    fn contains(&self, at: Instant) -> bool {
        self.start <= at && at < self.end
    }
}

/// A running swarm.
pub struct Swarm {
    pub window: Window,
    /// Outages as they happen, for whoever causes them to wait on.
    pub outages: Arc<OutageCounts>,
    /// Ends the count of the bytes the bots received in the window before its end
    /// ([`Swarm::finish_now`], or the swarm dropped).
    stop: CancellationToken,
    /// Ends every bot's play before the window's end ([`Swarm::finish_now`]).
    stopped: Stopped,
    /// Drops every bot at once: the swarm was dropped unfinished.
    dropped: CancellationToken,
    shards: Vec<Shard>,
    bytes_in_window: JoinHandle<u64>,
    plan: SwarmPlan,
}

/// A swarm dropped unfinished (a failing test, a run stopped early, a game window
/// closed) takes its bots with it, and waits for their threads, so that none plays on
/// against a cluster that is going away.
impl Drop for Swarm {
    fn drop(&mut self) {
        self.stop.cancel();
        self.dropped.cancel();
        for shard in self.shards.drain(..) {
            // A shard that panicked said so on its thread; this one only waits (a moment:
            // its bots are dropped, not played out).
            let _ = shard.thread.join();
        }
    }
}

impl Swarm {
    /// Starts every bot of `plan`, staggered over the first half of the warm-up.
    pub fn launch(plan: SwarmPlan) -> Self {
        let now = Instant::now();
        let window = Window { start: now + plan.warmup, end: now + plan.warmup + plan.measure };
        let traffic = Traffic::default();
        let outages = Arc::new(OutageCounts::default());
        let (stop, stopped) = (CancellationToken::new(), Stopped::default());
        let stagger = plan.warmup / 2 / plan.bots.max(1) as u32;
        let mut rng = rand::rng();
        let threads = plan.threads.clamp(1, plan.bots.max(1));
        // Bots share sockets for their updates by datagram, a hub's, unless their links
        // are conditioned: a conditioner relays a socket of each bot's own.
        let by_datagram = if plan.conditioner.is_active() { bots_by_datagram(plan.bots) } else { plan.bots };
        if by_datagram < plan.bots {
            tracing::warn!(
                "{} of the {} bots take their updates by TCP alone: this process may not open two sockets a bot \
                 (raise nofile: `ulimit -Hn`)",
                plan.bots - by_datagram,
                plan.bots
            );
        }
        let mut shards: Vec<Vec<Bot>> = (0..threads).map(|_| Vec::new()).collect();
        for i in 0..plan.bots {
            let name = format!("{}-{i}", plan.name_prefix);
            let behaviour = Behaviour::pick(&mut rng);
            let rejoin = Rejoin::new(plan.proxies.clone(), bot_identity(&name), name)
                .counting(traffic.clone())
                .conditioned(plan.conditioner)
                .keeping(behaviour.others_kept());
            shards[i % threads].push(Bot {
                rejoin: if i < by_datagram { rejoin } else { rejoin.by_link_only() },
                behaviour,
                chat_every: plan.chat_every,
                connect_at: now + stagger * i as u32,
                window,
                outages: Outages { counts: outages.clone(), ended: Vec::new(), current: None },
                stopped: stopped.clone(),
            });
        }
        let dropped = CancellationToken::new();
        let shards = shards.into_iter().map(|bots| Shard::start(bots, dropped.clone())).collect();
        let bytes_in_window = tokio::spawn({
            let stop = stop.clone();
            async move {
                let read = || traffic.bytes_in.load(Ordering::Relaxed);
                // Each wait ends early if the swarm is stopped.
                let _ = tokio::time::timeout_at(window.start, stop.cancelled()).await;
                let before = read();
                let _ = tokio::time::timeout_at(window.end, stop.cancelled()).await;
                read() - before
            }
        });
        Self { window, outages, stop, stopped, dropped, shards, bytes_in_window, plan }
    }

    /// Waits for every bot to finish and sums up what they measured.
    pub async fn finish(mut self) -> SwarmReport {
        let mut results = Vec::with_capacity(self.plan.bots);
        let mut measured = Measured::default();
        for shard in std::mem::take(&mut self.shards) {
            let (bots, shard_measured) = shard.reports.await.expect("a bot task never panics");
            results.extend(bots);
            measured.add(&shard_measured);
        }
        let bytes_received = (&mut self.bytes_in_window).await.expect("the byte counter never panics");
        SwarmReport::from_bots(self.plan.bots, self.plan.measure, bytes_received, results, &measured)
    }

    /// Ends every bot's play now, whatever the window says, and sums up.
    pub async fn finish_now(self) -> SwarmReport {
        self.stopped.0.store(true, Ordering::Relaxed);
        self.stop.cancel();
        self.finish().await
    }

    /// Launches `plan` and waits for its report.
    pub async fn run(plan: SwarmPlan) -> SwarmReport {
        Self::launch(plan).finish().await
    }
}

type BotResult = Result<BotReport, PlayerError>;

/// How far a bots' thread lowers its priority (a nice value, 19 the lowest): bots are
/// load on the cluster they measure, and where they share its cores (the bench, which
/// starts the cluster it loads) they should not take a core from a server in the
/// middle of its tick. At 10 they still take whatever the cluster leaves idle, and what
/// they wait for the CPU shows where it belongs: in the echo they measure. (A nice
/// value ranks threads within their scheduling group: with the kernel's autogroups,
/// that is their session, so bots started from another terminal than the cluster's
/// compete with it as a group, whatever their nice value.)
#[cfg(target_os = "linux")]
const BOTS_NICE: i32 = 10;

/// Some of a swarm's bots, on a thread of their own and a single-threaded runtime. A
/// swarm loading a cluster runs a shard a core: each bot stays on its thread, and no
/// thread wakes another to share out a burst of frames, which a work-stealing runtime
/// did at every beat of the servers, at a cost the bench measured (BENCHMARKS.md).
/// The thread yields to the cluster ([`BOTS_NICE`]), and its bots record what they
/// measure into one set of histograms ([`Measured`]).
struct Shard {
    /// What its bots report, once the last is done, and what they measured.
    reports: oneshot::Receiver<(Vec<BotResult>, Measured)>,
    thread: std::thread::JoinHandle<()>,
}

impl Shard {
    /// Starts `bots`, to play until they are done, or until `dropped` drops them all.
    fn start(bots: Vec<Bot>, dropped: CancellationToken) -> Self {
        let (report, reports) = oneshot::channel();
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a bots' runtime starts");
        let thread = std::thread::Builder::new()
            .name("bots".into())
            .spawn(move || {
                yield_to_the_cluster();
                runtime.block_on(async move {
                    let measured = Rc::new(RefCell::new(Measured::default()));
                    let bots_here = tokio::task::LocalSet::new();
                    // The shard's bots share its hubs' sockets for their updates by datagram.
                    let hubs = DatagramHubs::default();
                    let running: Vec<JoinHandle<BotResult>> = bots
                        .into_iter()
                        .map(|mut bot| {
                            bot.rejoin = bot.rejoin.sharing_datagrams(&hubs);
                            bots_here.spawn_local(bot.run(measured.clone()))
                        })
                        .collect();
                    let all_done = async {
                        let mut results = Vec::with_capacity(running.len());
                        for bot in running {
                            results.push(bot.await.expect("a bot task never panics"));
                        }
                        results
                    };
                    tokio::select! {
                        results = bots_here.run_until(all_done) => { let _ = report.send((results, measured.take())); }
                        () = dropped.cancelled() => {}
                    }
                });
                // Every bot still playing went with the `LocalSet` above, and its socket with it;
                // the runtime, and its driver, go here.
            })
            .expect("a bots' thread starts");
        Self { reports, thread }
    }
}

/// Lowers the calling thread's priority to [`BOTS_NICE`], unless it is that low
/// already. On Linux a nice value is the thread's own, so the rest of the process (a
/// bench's metrics scraper, a test's cluster) keeps its priority. Lowering one's own
/// priority needs no privilege; should it fail all the same, the bots run as they are.
fn yield_to_the_cluster() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let thread = Some(rustix::thread::gettid());
        let lowered = getpriority_process(thread).and_then(|nice| setpriority_process(thread, nice.max(BOTS_NICE)));
        if let Err(error) = lowered {
            tracing::warn!("the bots keep their priority: {error}");
        }
    }
}

/// Open files a swarm's process keeps for the rest of it: its runtime, its logs, a
/// bench's readings of the cluster's metrics.
const OPEN_FILES_KEPT: u64 = 256;

/// The open files a process running a swarm of `bots` needs: each bot's link, and a
/// socket for its updates by datagram, its own where their links are `conditioned`
/// (the conditioner relays that socket), else a share of a hub's
/// (`tessera_player::datagram_hub`: [`FEWEST_SEATS`] bots a socket at the least, a
/// shard's last hub within the files kept); and those kept for the rest of the process.
pub fn open_files_for(bots: usize, conditioned: bool) -> u64 {
    let sockets = if conditioned { bots } else { bots.div_ceil(FEWEST_SEATS) };
    (bots as u64).saturating_add(sockets as u64).saturating_add(OPEN_FILES_KEPT)
}

/// How many of `bots` whose links are conditioned may take their updates by datagram
/// within this process's open-file limit, a socket each beside its link (the
/// conditioner relays it): the rest play by the link alone, as
/// a player whose UDP is blocked does, so that a swarm the host's limit cannot give two
/// sockets a bot still runs (10,000 bots, where the limit is 20,000), and the process
/// keeps files for the rest of it.
fn bots_by_datagram(bots: usize) -> usize {
    let Some(limit) = tessera_service::resources::open_files_limit() else { return bots };
    let room = limit.saturating_sub((bots as u64).saturating_add(OPEN_FILES_KEPT));
    usize::try_from(room).map_or(bots, |room| room.min(bots))
}

/// The key of the bot called `name`: the same on every run and every machine.
pub fn bot_identity(name: &str) -> Identity {
    let secret = Sha256::new().chain_update(b"tessera bot\0").chain_update(name.as_bytes()).finalize();
    Identity::from_secret(secret.into())
}

/// A time a bot could not play, from when it noticed (its connection lost, or its region
/// offline) to its first update after: its session resumed, or its server back.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub cause: OutageCause,
    pub began: Instant,
    /// When it played again; `None` if it never did before the run ended.
    pub ended: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutageCause {
    /// Its connection to its proxy: it resumes through another.
    ConnectionLost,
    /// Its server, while its proxy stays: it waits for one to log it in again.
    RegionOffline,
}

/// A swarm's outages, counted live.
#[derive(Debug, Default)]
pub struct OutageCounts {
    /// Bots out right now: their connection or their region lost, not playing again yet.
    pub now: AtomicUsize,
    /// Outages begun since the swarm was launched.
    pub begun: AtomicUsize,
}

/// One bot's outages, counted live into the swarm's [`OutageCounts`].
struct Outages {
    counts: Arc<OutageCounts>,
    ended: Vec<Outage>,
    current: Option<Outage>,
}

impl Outages {
    /// An outage begins, unless one is on already (a region lost, then the connection).
    fn begin(&mut self, cause: OutageCause) {
        if self.current.is_none() {
            self.current = Some(Outage { cause, began: Instant::now(), ended: None });
            self.counts.now.fetch_add(1, Ordering::Relaxed);
            self.counts.begun.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The bot plays: any outage is over.
    fn end(&mut self) {
        if let Some(mut outage) = self.current.take() {
            outage.ended = Some(Instant::now());
            self.ended.push(outage);
            self.counts.now.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every outage, the one still on (if any) last.
    fn finish(mut self) -> Vec<Outage> {
        if let Some(outage) = self.current.take() {
            self.counts.now.fetch_sub(1, Ordering::Relaxed);
            self.ended.push(outage);
        }
        self.ended
    }
}

/// What one bot measured: inputs over its whole run, the rest within the window.
#[derive(Debug)]
pub struct BotReport {
    pub inputs_sent: u32,
    /// The last input its server acknowledged, all below it with it.
    pub inputs_acknowledged: u32,
    /// How many inputs its servers applied in all: fewer than acknowledged if a gap in
    /// the sequence was skipped (inputs lost), more if one was applied twice.
    pub inputs_applied: u32,
    /// Key presses sent within the window.
    pub inputs_in_window: u32,
    pub handoffs: u32,
    /// Times its connection was lost and its session resumed through another proxy.
    pub resumes: u32,
    pub updates: u64,
    /// Entities those updates told about, once a tick, sent or extrapolated (the bot
    /// itself and everything in view, each tick since the update before).
    pub entity_updates: u64,
    /// Entity states actually on the wire in those updates.
    pub entity_states: u64,
    pub still_connected: bool,
    pub error: Option<String>,
    pub outages: Vec<Outage>,
    /// Chat lines it said, heard (its own among them) and had dropped for saying too
    /// much too fast, over its whole run.
    pub chat: ChatCounts,
}

/// Chat lines said, heard, and dropped by a proxy for coming too fast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChatCounts {
    pub said: u64,
    pub heard: u64,
    pub throttled: u64,
}

impl ChatCounts {
    /// Adds what `player`'s view heard and was told: once per connection, as a view starts
    /// from nothing with each.
    fn add_heard(&mut self, player: &Player) {
        self.heard += player.view.chat.heard;
        self.throttled += player.view.chat.throttled;
    }
}

/// The figures of what every bot saw.
fn summary(seen: &SmoothnessSeen) -> Smoothness {
    let percentiles = |histogram| Percentiles {
        p50: SmoothnessSeen::units(histogram, 0.5),
        p99: SmoothnessSeen::units(histogram, 0.99),
        max: SmoothnessSeen::max_units(histogram),
    };
    Smoothness {
        own_checked: seen.own.len(),
        own_correction: percentiles(&seen.own),
        own_snaps: seen.own_snaps,
        own_snaps_at_handoffs: seen.own_snaps_at_handoffs,
        own_snaps_after_late_inputs: seen.own_snaps_after_late_inputs,
        others_checked: seen.others.len(),
        others_error: percentiles(&seen.others),
        others_snaps: seen.others_snaps(),
    }
}

/// How smooth play looked, over every bot: in world units (a player is 32 across).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Smoothness {
    /// Server states checked against the bots' predictions of themselves.
    pub own_checked: u64,
    /// How far each was off.
    pub own_correction: Percentiles,
    /// Corrections over 4 units.
    pub own_snaps: u64,
    pub own_snaps_at_handoffs: u64,
    /// Snaps that came with an input late for its tick (the server went on without it,
    /// or stood the bot still for it): the link's or the host's lateness, not a
    /// misprediction.
    pub own_snaps_after_late_inputs: u64,
    /// Others shown, once per update each: how far the update moved them.
    pub others_checked: u64,
    pub others_error: Percentiles,
    /// Of those, the updates that moved one more than a snap's worth: a jump.
    pub others_snaps: u64,
}

impl BotReport {
    /// Inputs sent and never applied: unacknowledged, or skipped over in a gap.
    pub fn inputs_lost(&self) -> u32 {
        self.inputs_sent - self.inputs_acknowledged.min(self.inputs_applied)
    }

    /// Inputs applied more than once.
    pub fn inputs_duplicated(&self) -> u32 {
        self.inputs_applied.saturating_sub(self.inputs_acknowledged)
    }
}

struct Bot {
    rejoin: Rejoin,
    behaviour: Behaviour,
    chat_every: Option<Duration>,
    connect_at: Instant,
    window: Window,
    outages: Outages,
    stopped: Stopped,
}

/// Set when the swarm is stopped before the window's end ([`Swarm::finish_now`]). Every
/// bot reads it at each look and each line it says: a load, where the cancellation
/// token each bot had took a lock at every check.
#[derive(Debug, Clone, Default)]
struct Stopped(Arc<AtomicBool>);

impl Bot {
    /// After `lost` ended `player`'s connection: its session resumed through a proxy,
    /// when the connection was what was lost (not the session: a name refused, a player
    /// signed in elsewhere, a kick); else the error.
    async fn resume(&mut self, player: &Player, lost: PlayerError) -> Result<Player, PlayerError> {
        if !matches!(lost, PlayerError::Link(_)) {
            return Err(lost);
        }
        self.rejoin.resume_with(player);
        self.rejoin.join_within(CONNECT_PATIENCE).await
    }

    /// Whether its play is over at `now`: the window ended, or the swarm was stopped.
    fn played(&self, now: Instant) -> bool {
        now >= self.window.end || self.stopped.0.load(Ordering::Relaxed)
    }

    /// Plays until the window's end, recording what it measures into `measured`, its
    /// shard's.
    async fn run(mut self, measured: Rc<RefCell<Measured>>) -> Result<BotReport, PlayerError> {
        tokio::time::sleep_until(self.connect_at).await;
        // A cluster that has just started may not have all its links up yet.
        let mut player = self.rejoin.join_within(CONNECT_PATIENCE).await?;
        let mut walker = Walker::new(self.behaviour);
        let mut rng = rand::rngs::SmallRng::from_os_rng();
        // Each input in flight: its sequence number, when it was pressed, when its
        // acknowledgement is due at the soonest, and the handoffs seen by then.
        let mut sent: VecDeque<(u32, Instant, Instant, u32)> = VecDeque::new();
        let (mut updates, mut entity_updates, mut entity_states) = (0u64, 0u64, 0u64);
        let (mut inputs_in_window, mut handoffs, mut resumes) = (0u32, 0u32, 0u32);
        let mut seen = Seen::of(&player.view);
        // Bots look around at different moments, as people do, each every STEER_EVERY;
        // but they wake only for the looks that could press something. Waking for
        // every look, four times a second besides its updates, and waiting on the end of
        // play at each wake, was 7 % of what the bots cost (BENCHMARKS.md).
        let look = tokio::time::sleep_until(Instant::now() + STEER_EVERY.mul_f64(rand::random::<f64>()));
        let mut chatter = self.chat_every.map(|every| Chatter::new(every, &mut rng, Instant::now()));
        let mut chat = ChatCounts::default();
        let mut error = None;
        let next_line = tokio::time::sleep_until(chatter.as_ref().map_or(self.window.end, Chatter::due));
        tokio::pin!(look, next_line);
        loop {
            let lost = tokio::select! {
                _ = &mut next_line, if chatter.is_some() => {
                    if self.played(Instant::now()) {
                        break;
                    }
                    let chatter = chatter.as_mut().expect("only while chatting");
                    let (channel, text) = chatter.next_line(&mut rng, Instant::now());
                    next_line.as_mut().reset(chatter.due());
                    match player.say(channel, text).await {
                        Ok(said) => {
                            chat.said += u64::from(said);
                            None
                        }
                        Err(err) => Some(err),
                    }
                }

                () = &mut look => {
                    // Play ends at a look (one falls on the window's end), not at every wake.
                    let (now, on_beat) = (Instant::now(), look.deadline());
                    if self.played(now) {
                        break;
                    }
                    let keys = walker.steer(&mut rng, player.position(), &player.view, &player.welcome.map, now);
                    let pressed = match keys != player.keys() {
                        false => None,
                        true => match player.press_at(keys, now.into_std()).await {
                            Ok(seq) => {
                                inputs_in_window += u32::from(self.window.contains(now));
                                // Stamped with the tick in progress as it was pressed.
                                let clock = player.prediction.clock();
                                let due = clock.acknowledgement_due(clock.tick_at(now.into_std()));
                                sent.push_back((seq, now, due.into(), player.view.handoffs));
                                None
                            }
                            Err(err) => Some(err),
                        },
                    };
                    // Worked out on the beat of its looks, from where it is with the keys
                    // just pressed (they count from the tick in progress, so the press can
                    // move it), walked back to the beat: the looks skipped are those that
                    // would press nothing.
                    let late = now.saturating_duration_since(on_beat).as_secs_f32();
                    let from = player.position_at(now.into_std()).map(|me| me - keys.walk_velocity().0 * late);
                    let looks = walker.looks_until_a_press(from, keys, on_beat, STEER_EVERY, MOST_BEATS_BETWEEN_LOOKS);
                    let next = on_beat + STEER_EVERY * looks;
                    // Looks missed are not made up for (a bot back from an outage, or whose
                    // thread is behind, looks a beat from now); and none is planned past
                    // the end of the window (still ahead: play ended above otherwise).
                    let next = if next > now { next } else { now + STEER_EVERY };
                    look.as_mut().reset(next.min(self.window.end));
                    pressed
                }
                received = player.receive() => match received.map(|view| view.region_offline) {
                    Ok(true) => {
                        self.outages.begin(OutageCause::RegionOffline);
                        None
                    }
                    // A chat line: nothing of the world to count.
                    Ok(false) if player.view.updates == seen.updates => None,
                    Ok(false) => {
                        let view = &player.view;
                        self.outages.end();
                        let now = Instant::now();
                        // Echoes end where the update reached the bot's host, not where
                        // the bots' thread got round to it (unless the read was unstamped).
                        let stamped = player.update_arrived.map(Instant::from_std);
                        let arrived = stamped.unwrap_or(now);
                        let (new_states, new_handoffs) = (view.states_received - seen.states, view.handoffs - seen.handoffs);
                        // An update tells of every tick since the last (the quiet ones
                        // told nothing new); after a handoff, ticks count afresh.
                        let ticks = match new_handoffs {
                            0 => view.tick.saturating_sub(seen.tick).clamp(1, u64::from(most_quiet_ticks(MAX_UPDATE_EVERY))),
                            _ => 1,
                        };
                        seen = Seen::of(view);
                        let Measured { echoes, smoothness } = &mut *measured.borrow_mut();
                        while sent.front().is_some_and(|&(seq, ..)| seq <= view.last_input) {
                            let (_, at, due, handoffs) = sent.pop_front().expect("checked non-empty");
                            if self.window.contains(at) {
                                let (felt, past_due) = (arrived.saturating_duration_since(at), arrived.saturating_duration_since(due));
                                echoes.record(felt, past_due, view.handoffs != handoffs);
                            }
                        }
                        if self.window.contains(now) {
                            if let Some(arrived) = stamped {
                                echoes.record_read_lag(now.saturating_duration_since(arrived));
                            }
                            smoothness.record(&player.smoothness);
                            updates += 1;
                            entity_updates += ticks * (1 + view.in_view() as u64);
                            entity_states += new_states;
                            handoffs += new_handoffs;
                        }
                        None
                    }
                    Err(err) => Some(err),
                }
            };
            let Some(lost) = lost else { continue };
            self.outages.begin(OutageCause::ConnectionLost);
            chat.add_heard(&player);
            match self.resume(&player, lost).await {
                Ok(resumed) => {
                    player = resumed;
                    seen = Seen::of(&player.view);
                    resumes += 1;
                    // What it planned was for the connection lost: look again at once.
                    look.as_mut().reset(Instant::now());
                }
                Err(err) => {
                    error = Some(err.to_string());
                    break;
                }
            }
        }
        let ended_at = Instant::now();
        let still_connected = error.is_none();
        if still_connected {
            let last = player.last_sent();
            let _ = player.wait_until(ACK_GRACE, "the last inputs acknowledged", |view| view.last_input >= last).await;
            // Whoever measures the cluster at the window's end finds every bot still in it.
            tokio::time::sleep_until(ended_at + LINGER).await;
            // A connection that ended in an error was counted as it ended.
            chat.add_heard(&player);
        }
        let view = &player.view;
        Ok(BotReport {
            inputs_sent: player.last_sent(),
            inputs_acknowledged: view.last_input.min(player.last_sent()),
            inputs_applied: view.inputs_applied,
            inputs_in_window,
            handoffs,
            resumes,
            entity_states,
            updates,
            entity_updates,
            still_connected,
            error,
            outages: self.outages.finish(),
            chat,
        })
    }
}

/// What a bot's view had received when it last counted: the updates, entity states and
/// handoffs, and the tick, so that each update's own are counted.
struct Seen {
    updates: u64,
    states: u64,
    handoffs: u32,
    tick: u64,
}

impl Seen {
    fn of(view: &WorldView) -> Self {
        Self { updates: view.updates, states: view.states_received, handoffs: view.handoffs, tick: view.tick }
    }
}

/// What bots measured within the window: one set for all the bots of a shard, which
/// they record into as they go (they share its one thread), summed over the shards at
/// the end (with what a bot that ended in an error recorded before it). A set a bot was
/// about 100 KB of histograms, most of a bot's memory, and each update recorded into
/// lines of it long gone from the cache (BENCHMARKS.md).
#[derive(Debug, Clone, Default)]
struct Measured {
    echoes: Echoes,
    smoothness: SmoothnessSeen,
}

impl Measured {
    fn add(&mut self, other: &Measured) {
        self.echoes.add(&other.echoes);
        self.smoothness.add(&other.smoothness);
    }
}

/// How long a bot's inputs took to be acknowledged, two ways, each to when the update
/// saying so reached the bot's host (at or after: a read's stamp is of its last bytes);
/// and how long its updates then waited to be read.
/// Each in microseconds, up to 10 s, to two significant digits: 18 KB each, where three
/// digits up to a minute took 65 KB; a shard's bots share one ([`Measured`]).
#[derive(Debug, Clone)]
pub struct Echoes {
    /// From the key press to the update that says it was applied: what a player waits
    /// for the server's word (its own prediction walks at once).
    felt_us: Histogram<u64>,
    /// From when that update was due at the soonest (the input's own tick over, and the
    /// server's slack for jitter after it) to its arrival: what the network and the
    /// cluster add. Its floor is the player's phase: where its first input fell
    /// against its server's next tick, from a tick early (counted as 0) to a tick late,
    /// which a handoff carries from beat to beat (a server ticking later than the last
    /// adds the difference of their phases).
    past_due_us: Histogram<u64>,
    /// The same, of the inputs whose player was handed to another server before their
    /// acknowledgement came (the next server applies them): whether they make the tail.
    past_due_across_handoffs_us: Histogram<u64>,
    /// From an update's arrival to its bot reading it, where the kernel stamped it: the
    /// swarm's own lag (a frame waiting while the bots' thread reads those of the bots
    /// before it), which is the bench machine's, not the cluster's, and so kept out of
    /// the echoes.
    read_lag_us: Histogram<u64>,
}

impl Default for Echoes {
    fn default() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 10_000_000, 2).expect("valid histogram bounds");
        Self {
            felt_us: histogram(),
            past_due_us: histogram(),
            past_due_across_handoffs_us: histogram(),
            read_lag_us: histogram(),
        }
    }
}

impl Echoes {
    /// An echo `felt` after its press and `past_due` after its soonest, its player handed
    /// to another server meanwhile if `across_handoffs`.
    fn record(&mut self, felt: Duration, past_due: Duration, across_handoffs: bool) {
        self.felt_us.saturating_record(felt.as_micros() as u64);
        self.past_due_us.saturating_record(past_due.as_micros() as u64);
        if across_handoffs {
            self.past_due_across_handoffs_us.saturating_record(past_due.as_micros() as u64);
        }
    }

    fn record_read_lag(&mut self, waited: Duration) {
        self.read_lag_us.saturating_record(waited.as_micros() as u64);
    }

    fn add(&mut self, other: &Echoes) {
        self.felt_us.add(&other.felt_us).expect("same bounds");
        self.past_due_us.add(&other.past_due_us).expect("same bounds");
        self.past_due_across_handoffs_us.add(&other.past_due_across_handoffs_us).expect("same bounds");
        self.read_lag_us.add(&other.read_lag_us).expect("same bounds");
    }

    fn percentiles(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            p50: ms(histogram.value_at_quantile(0.5)),
            p99: ms(histogram.value_at_quantile(0.99)),
            max: ms(histogram.max()),
        }
    }
}

/// The whole swarm's figures; rates are over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct SwarmReport {
    pub bots_requested: usize,
    pub bots_connected: usize,
    pub bots_still_connected: usize,
    pub inputs_sent: u64,
    pub inputs_acknowledged: u64,
    pub inputs_lost: u64,
    pub inputs_duplicated: u64,
    pub inputs_per_bot_per_sec: f64,
    pub handoffs: u64,
    /// Sessions resumed through another proxy after a connection was lost.
    pub resumes: u64,
    pub updates_received: u64,
    /// Entities updated per second across all bots: each bot and everything in its view, each tick.
    pub entity_updates_per_sec: f64,
    /// Of those, the entity states actually sent; the rest the bots extrapolated (to within
    /// a quarter of a unit of where the server has them).
    pub entity_states_sent_per_sec: f64,
    pub bytes_per_bot_per_sec: f64,
    /// Bytes on the wire (frames, prefixes, everything) per entity updated.
    pub wire_bytes_per_entity_update: f64,
    /// Bytes on the wire per entity state actually sent.
    pub wire_bytes_per_entity_state: f64,
    /// From key press to the update applying it ([`Echoes`]).
    pub echo_latency_ms: Percentiles,
    /// From when that update was due at the soonest to its arrival ([`Echoes`]).
    pub echo_past_due_ms: Percentiles,
    /// Echoes measured within the window.
    pub echoes: u64,
    /// Of those, the inputs whose player was handed to another server before their
    /// acknowledgement came, and their echoes past due.
    pub echoes_across_handoffs: u64,
    pub echo_past_due_across_handoffs_ms: Percentiles,
    /// From an update's arrival to its bot reading it: the swarm's own lag ([`Echoes`]);
    /// all zero where no read was stamped.
    pub read_lag_ms: Percentiles,
    pub smoothness: Smoothness,
    /// Chat lines the bots said, heard (each line once per hearer, its speaker among
    /// them) and had dropped for saying too much too fast, over the whole run.
    pub chat: ChatCounts,
    pub errors: Vec<String>,
    /// Every bot's outages, for whoever caused them to measure.
    #[serde(skip)]
    pub outages: Vec<Outage>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl SwarmReport {
    fn from_bots(
        requested: usize,
        window: Duration,
        bytes_received: u64,
        results: Vec<Result<BotReport, PlayerError>>,
        Measured { echoes, smoothness }: &Measured,
    ) -> Self {
        let mut report = SwarmReport {
            bots_requested: requested,
            bots_connected: 0,
            bots_still_connected: 0,
            inputs_sent: 0,
            inputs_acknowledged: 0,
            inputs_lost: 0,
            inputs_duplicated: 0,
            inputs_per_bot_per_sec: 0.0,
            handoffs: 0,
            resumes: 0,
            updates_received: 0,
            entity_updates_per_sec: 0.0,
            entity_states_sent_per_sec: 0.0,
            bytes_per_bot_per_sec: 0.0,
            wire_bytes_per_entity_update: 0.0,
            wire_bytes_per_entity_state: 0.0,
            echo_latency_ms: Percentiles::default(),
            echo_past_due_ms: Percentiles::default(),
            echoes: 0,
            echoes_across_handoffs: 0,
            echo_past_due_across_handoffs_ms: Percentiles::default(),
            read_lag_ms: Percentiles::default(),
            smoothness: Smoothness::default(),
            chat: ChatCounts::default(),
            errors: Vec::new(),
            outages: Vec::new(),
        };
        let (mut entity_updates, mut entity_states, mut inputs_in_window) = (0u64, 0u64, 0u64);
        for result in results {
            match result {
                Ok(bot) => {
                    report.bots_connected += 1;
                    report.bots_still_connected += usize::from(bot.still_connected);
                    report.inputs_sent += u64::from(bot.inputs_sent);
                    report.inputs_acknowledged += u64::from(bot.inputs_acknowledged);
                    report.inputs_lost += u64::from(bot.inputs_lost());
                    report.inputs_duplicated += u64::from(bot.inputs_duplicated());
                    report.outages.extend_from_slice(&bot.outages);
                    inputs_in_window += u64::from(bot.inputs_in_window);
                    report.handoffs += u64::from(bot.handoffs);
                    report.resumes += u64::from(bot.resumes);
                    report.updates_received += bot.updates;
                    report.chat.said += bot.chat.said;
                    report.chat.heard += bot.chat.heard;
                    report.chat.throttled += bot.chat.throttled;
                    entity_updates += bot.entity_updates;
                    entity_states += bot.entity_states;
                    report.errors.extend(bot.error);
                }
                Err(err) => report.errors.push(err.to_string()),
            }
        }
        // Thousands of bots failing alike would drown the report: keep a sample.
        report.errors.truncate(20);
        let seconds = window.as_secs_f64().max(1e-3);
        let bots = report.bots_connected.max(1) as f64;
        report.inputs_per_bot_per_sec = inputs_in_window as f64 / bots / seconds;

        report.entity_updates_per_sec = entity_updates as f64 / seconds;
        report.bytes_per_bot_per_sec = bytes_received as f64 / seconds / bots;
        report.wire_bytes_per_entity_update = bytes_received as f64 / entity_updates.max(1) as f64;
        report.entity_states_sent_per_sec = entity_states as f64 / seconds;
        report.wire_bytes_per_entity_state = bytes_received as f64 / entity_states.max(1) as f64;

        report.echo_latency_ms = Echoes::percentiles(&echoes.felt_us);
        report.echo_past_due_ms = Echoes::percentiles(&echoes.past_due_us);
        report.echoes = echoes.past_due_us.len();
        report.echoes_across_handoffs = echoes.past_due_across_handoffs_us.len();
        report.echo_past_due_across_handoffs_ms = Echoes::percentiles(&echoes.past_due_across_handoffs_us);
        report.read_lag_ms = Echoes::percentiles(&echoes.read_lag_us);
        report.smoothness = summary(smoothness);
        report
    }

    /// Every bot connected and stayed, and no input was lost or applied twice.
    pub fn is_clean(&self) -> bool {
        self.bots_connected == self.bots_requested
            && self.bots_still_connected == self.bots_requested
            && self.inputs_lost == 0
            && self.inputs_duplicated == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every conditioned bot gets a socket of its own for datagrams while two a bot fit
    /// the open-file limit beside the files kept; past that, as many as fit, and the
    /// rest none.
    #[cfg(unix)]
    #[test]
    fn conditioned_bots_take_sockets_for_datagrams_as_far_as_the_open_file_limit_allows() {
        let limit = tessera_service::resources::open_files_limit().expect("unix limits open files");
        for bots in [10, limit / 4, limit / 2, limit] {
            let by_datagram = bots_by_datagram(bots as usize) as u64;
            if open_files_for(bots as usize, true) <= limit {
                assert_eq!(by_datagram, bots, "room for all of {bots}");
            } else {
                assert_eq!(by_datagram, limit.saturating_sub(bots + OPEN_FILES_KEPT), "{bots} bots");
            }
        }
    }

    /// Every echo counts in the echoes past due, and those whose player was handed
    /// to another server before the acknowledgement also apart.
    #[test]
    fn echoes_across_a_handoff_are_counted_apart_as_well() {
        let ms = Duration::from_millis;
        let mut echoes = Echoes::default();
        echoes.record(ms(90), ms(10), false);
        echoes.record(ms(200), ms(120), true);
        assert_eq!((echoes.past_due_us.len(), echoes.past_due_across_handoffs_us.len()), (2, 1));
        let across = Echoes::percentiles(&echoes.past_due_across_handoffs_us);
        assert!((119.0..=121.0).contains(&across.max), "{across:?}");
        assert!(Echoes::percentiles(&echoes.past_due_us).p50 < 11.0);
    }

    /// A bots' thread yields, and only it: a bench's scraper, or a cluster the same
    /// process runs for a test, keeps its priority.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_bots_thread_yields_and_the_rest_of_the_process_does_not() {
        use rustix::process::getpriority_process;
        let own = || getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let before = own();
        if before >= BOTS_NICE {
            eprintln!("skipped: the tests run at nice {before}, as low as the bots go already");
            return;
        }
        let yielded = std::thread::spawn(move || {
            yield_to_the_cluster();
            own()
        });
        assert_eq!(yielded.join().unwrap(), BOTS_NICE, "the bots' thread yields");
        assert_eq!(own(), before, "the thread that started it does not");
    }
}
