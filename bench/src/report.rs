//! What a benchmark run found, step by step: the bots' figures, every server's and
//! proxy's figures from their metrics, every process's CPU and peak memory, which
//! limits broke; the comparisons; the machine. Serialised whole to JSON and printed as
//! a table.

use crate::processes::Usage;
use crate::relay::RelayComparison;
use crate::scrape::{BucketWindow, Scrape, rate};
use crate::{BenchError, BenchOptions, Limits};
use procfs::{CpuTime, Current, CurrentSI};
use serde::Serialize;
use std::path::Path;
use tessera_bots::swarm::{Percentiles, SwarmReport};
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::metrics as names;
use tokio::time::Instant;

/// Everything read at one moment: metrics and usage of each server then each proxy,
/// this process's usage (the bots'), how the machine's cores have spent their time, and
/// how many datagrams its kernel dropped.
pub struct Reading {
    pub at: Instant,
    pub scrapes: Vec<Scrape>,
    pub usage: Vec<Usage>,
    pub bots: Usage,
    pub cores: Option<CpuTime>,
    pub udp_receive_drops: Option<u64>,
}

impl Reading {
    /// The machine's cores' time so far (`/proc/stat`), if it can be read.
    pub fn cores_now() -> Option<CpuTime> {
        procfs::KernelStats::current().ok().map(|stats| stats.total)
    }

    /// The UDP datagrams the kernel dropped so far for want of room in their socket's
    /// receive buffer, over IPv4 and IPv6 (`/proc/net/snmp` and `snmp6`), if it can say.
    pub fn udp_receive_drops_now() -> Option<u64> {
        let ipv4 = procfs::net::snmp().ok()?.udp_rcvbuf_errors;
        let ipv6 = procfs::net::snmp6().map_or(0, |snmp6| snmp6.udp_rcvbuf_errors);
        Some(ipv4.saturating_add(ipv6))
    }
}

/// How the machine's cores spent a window, in percent of all their time: at work (the
/// cluster, the bots, the rest), idle, and stolen, taken by the hypervisor for its
/// other guests while this one had work (a VM's steal: its cores ran that much less
/// than the clock says, whatever its processes' CPU figures). The processes' CPU
/// figures are of one core each; these are of the machine.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct MachineFigures {
    pub busy_percent: f64,
    pub idle_percent: f64,
    pub steal_percent: f64,
}

impl MachineFigures {
    fn between(before: &CpuTime, after: &CpuTime) -> Self {
        let grown = |of: fn(&CpuTime) -> u64| of(after).saturating_sub(of(before)) as f64;
        let busy = grown(|t| t.user + t.nice + t.system + t.irq.unwrap_or(0) + t.softirq.unwrap_or(0));
        let idle = grown(|t| t.idle + t.iowait.unwrap_or(0));
        let steal = grown(|t| t.steal.unwrap_or(0));
        let total = busy + idle + steal;
        if total == 0.0 {
            return Self::default();
        }
        let percent = |of: f64| of / total * 100.0;
        Self { busy_percent: percent(busy), idle_percent: percent(idle), steal_percent: percent(steal) }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcessFigures {
    pub cpu_percent: f64,
    /// Its threads' wake-ups ([`crate::processes::Wakeups`]).
    pub wakeups_per_sec: f64,
    pub peak_memory_mb: f64,
}

impl ProcessFigures {
    fn between(before: &Usage, after: &Usage, seconds: f64) -> Self {
        Self {
            cpu_percent: (after.cpu_seconds - before.cpu_seconds) / seconds * 100.0,
            wakeups_per_sec: after.wakeups.since(&before.wakeups) as f64 / seconds,
            peak_memory_mb: after.peak_memory_bytes as f64 / 1e6,
        }
    }
}

/// A figure of the servers together, of the proxies together, and of the bots.
fn by_kind(
    servers: &[ServerFigures],
    proxies: &[ProxyFigures],
    bots: &ProcessFigures,
    figure: fn(&ProcessFigures) -> f64,
) -> [f64; 3] {
    let servers = servers.iter().map(|s| figure(&s.process)).sum();
    let proxies = proxies.iter().map(|p| figure(&p.process)).sum();
    [servers, proxies, figure(bots)]
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    pub id: u16,
    pub tick_ms: Percentiles,
    pub tick_rate_hz: f64,
    pub players: f64,
    pub ghosts: f64,
    pub peer_bytes_out_per_sec: f64,
    pub handoffs_out_per_sec: f64,
    /// Players saved to the store per second, and the batches it could not take.
    pub checkpoints_per_sec: f64,
    pub checkpoint_failures: f64,
    /// Player updates per second: sent; not sent, telling nothing new; not made, the
    /// player not due one at a tick past capacity.
    pub updates_sent_per_sec: f64,
    pub updates_quiet_per_sec: f64,
    pub updates_paced_per_sec: f64,
    /// Player updates sent per second that left news of others for later, the player's
    /// byte budget spent.
    pub updates_budget_spent_per_sec: f64,
    /// How many ticks apart its players were sent updates at the window's end.
    pub update_every: f64,
    /// Ticks per second by which its players' inputs came to wait longer (an input
    /// late) and shorter (every recent one early).
    pub input_waits_longer_per_sec: f64,
    pub input_waits_shorter_per_sec: f64,
    pub process: ProcessFigures,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProxyFigures {
    pub id: u16,
    pub players: f64,
    pub frames_to_clients_per_sec: f64,
    /// Of those, the updates sent by datagram, and those dropped for want of room.
    pub datagrams_to_clients_per_sec: f64,
    pub datagrams_dropped_per_sec: f64,
    /// Full updates players asked for after losing one sent by datagram.
    pub resyncs_per_sec: f64,
    pub frames_to_servers_per_sec: f64,
    /// Of those, the players' inputs that came by datagram.
    pub inputs_by_datagram_per_sec: f64,
    pub bytes_to_clients_per_sec: f64,
    pub bytes_from_servers_per_sec: f64,
    pub process: ProcessFigures,
}

/// One step of the ramp.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub bots: usize,
    pub seconds_measured: f64,
    pub swarm: SwarmReport,
    pub servers: Vec<ServerFigures>,
    pub proxies: Vec<ProxyFigures>,
    /// This process: the bots themselves.
    pub bots_process: ProcessFigures,
    /// The machine's cores over the window; `None` where `/proc/stat` cannot be read.
    pub machine: Option<MachineFigures>,
    /// Datagrams the machine's kernel dropped in the window, their socket's receive
    /// buffer full: the cluster's and the bots' alike, each a key press or an update lost
    /// on its way and made good later (sent again, or a full update asked for). `None`
    /// where the kernel does not say.
    pub udp_receive_drops: Option<u64>,
    pub worst_tick_p99_ms: f64,
    pub lowest_tick_rate_hz: f64,
    /// Sum over servers of the bytes they sent their peers, per second.
    pub peer_bytes_per_sec: f64,
    /// Sum over servers of the players saved to the store per second.
    pub checkpoints_per_sec: f64,
    /// Of the player-ticks, the share sent an update, and the share a server past
    /// capacity made none for (the player not being due one then).
    pub updates_sent_share: f64,
    pub updates_paced_share: f64,
    /// Of the updates sent, the share that left news of others for later, the player's
    /// byte budget spent.
    pub updates_budget_spent_share: f64,
    /// Of the frames the proxies sent players, the share sent by datagram.
    pub datagram_share: f64,
    /// The most ticks apart any server sent updates at the window's end: 1 unless one
    /// was past capacity.
    pub most_update_every: f64,
    /// What one player costs for one tick, per kind of process: progress shows here even
    /// where the count of bots held does not move.
    pub cpu_us_per_player_tick: PerPlayerTick,
    /// The wake-ups that go with it ([`crate::processes::Wakeups`]).
    pub wakeups_per_player_tick: PerPlayerTick,
    pub limits_broken: Vec<String>,
}

/// A rate summed over the processes of each kind, per player connected and per tick of
/// the map's rate over the window (wall-clock ticks: a tick stretched by overload costs
/// its players more).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PerPlayerTick {
    pub servers: f64,
    pub proxies: f64,
    pub bots: f64,
}

impl PerPlayerTick {
    /// `per_second` of the servers, the proxies and the bots, over `players` ticking at `tick_hz`.
    fn new(per_second: [f64; 3], players: usize, tick_hz: f64) -> Self {
        let player_ticks_per_sec = players as f64 * tick_hz;
        let per_player_tick = |rate: f64| if player_ticks_per_sec > 0.0 { rate / player_ticks_per_sec } else { 0.0 };
        let [servers, proxies, bots] = per_second.map(per_player_tick);
        Self { servers, proxies, bots }
    }

    /// The CPU of each kind, in percent of a core, as microseconds a player-tick.
    fn cpu_us(cpu_percent: [f64; 3], players: usize, tick_hz: f64) -> Self {
        // Percent of a core is 10,000 µs per second.
        Self::new(cpu_percent.map(|percent| percent * 1e4), players, tick_hz)
    }
}

impl StepReport {
    pub fn new(
        bots: usize,
        swarm: SwarmReport,
        cluster: &ClusterConfig,
        before: &Reading,
        after: &Reading,
        limits: Limits,
    ) -> Self {
        let seconds = (after.at - before.at).as_secs_f64();
        let windows = before.scrapes.iter().zip(&after.scrapes).zip(before.usage.iter().zip(&after.usage));
        let mut windows = windows.map(|((b, a), (ub, ua))| (b, a, ProcessFigures::between(ub, ua, seconds)));
        let servers: Vec<ServerFigures> = cluster
            .servers
            .iter()
            .zip(windows.by_ref())
            .map(|(config, (before, after, process))| {
                let ticks = BucketWindow::between(before, after, names::SERVER_TICK_SECONDS);
                let ms = |seconds: f64| seconds * 1000.0;
                let updates =
                    |outcome| rate(before, after, seconds, names::SERVER_PLAYER_UPDATES, &[("outcome", outcome)]);
                let input_waits =
                    |change| rate(before, after, seconds, names::SERVER_INPUT_WAIT_CHANGES, &[("change", change)]);
                ServerFigures {
                    id: config.id.0,
                    tick_ms: Percentiles {
                        p50: ms(ticks.quantile(0.5)),
                        p99: ms(ticks.quantile(0.99)),
                        max: ms(ticks.max_bound()),
                    },
                    tick_rate_hz: rate(before, after, seconds, names::SERVER_TICKS, &[]),
                    players: after.sum(names::SERVER_PLAYERS, &[]).unwrap_or(0.0),
                    ghosts: after.sum(names::SERVER_GHOSTS, &[]).unwrap_or(0.0),
                    peer_bytes_out_per_sec: rate(
                        before,
                        after,
                        seconds,
                        names::SERVER_PEER_BYTES,
                        &[("direction", "out")],
                    ),
                    handoffs_out_per_sec: rate(before, after, seconds, names::SERVER_HANDOFFS, &[("direction", "out")]),
                    checkpoints_per_sec: rate(before, after, seconds, names::SERVER_CHECKPOINTS, &[]),
                    checkpoint_failures: rate(before, after, seconds, names::SERVER_CHECKPOINT_FAILURES, &[]) * seconds,
                    updates_sent_per_sec: updates("sent"),
                    updates_quiet_per_sec: updates("quiet"),
                    updates_paced_per_sec: updates("paced"),
                    updates_budget_spent_per_sec: rate(before, after, seconds, names::SERVER_UPDATES_BUDGET_SPENT, &[]),
                    update_every: after.sum(names::SERVER_UPDATE_EVERY, &[]).unwrap_or(1.0),
                    input_waits_longer_per_sec: input_waits("longer"),
                    input_waits_shorter_per_sec: input_waits("shorter"),
                    process,
                }
            })
            .collect();
        let proxies: Vec<ProxyFigures> = cluster
            .proxies
            .iter()
            .zip(windows)
            .map(|(config, (before, after, process))| {
                let per_sec = |name, labels: &[(&str, &str)]| rate(before, after, seconds, name, labels);
                ProxyFigures {
                    id: config.id.0,
                    players: after.sum(names::PROXY_PLAYERS, &[]).unwrap_or(0.0),
                    frames_to_clients_per_sec: per_sec(names::PROXY_FRAMES, &[("to", "clients")]),
                    datagrams_to_clients_per_sec: per_sec(names::PROXY_DATAGRAMS, &[("outcome", "sent")]),
                    datagrams_dropped_per_sec: per_sec(names::PROXY_DATAGRAMS, &[("outcome", "dropped")]),
                    resyncs_per_sec: per_sec(names::PROXY_RESYNCS, &[]),
                    frames_to_servers_per_sec: per_sec(names::PROXY_FRAMES, &[("to", "servers")]),
                    inputs_by_datagram_per_sec: per_sec(names::PROXY_INPUTS_BY_DATAGRAM, &[]),
                    bytes_to_clients_per_sec: per_sec(names::PROXY_BYTES, &[("link", "clients"), ("direction", "out")]),
                    bytes_from_servers_per_sec: per_sec(
                        names::PROXY_BYTES,
                        &[("link", "servers"), ("direction", "in")],
                    ),
                    process,
                }
            })
            .collect();
        let worst_tick_p99_ms = servers.iter().map(|s| s.tick_ms.p99).fold(0.0, f64::max);
        let lowest_tick_rate_hz = servers.iter().map(|s| s.tick_rate_hz).fold(f64::INFINITY, f64::min);
        let mut limits_broken = Vec::new();
        if worst_tick_p99_ms > limits.tick_p99_ms {
            limits_broken.push(format!("tick p99 {worst_tick_p99_ms:.1} ms > {:.1} ms", limits.tick_p99_ms));
        }
        if lowest_tick_rate_hz < limits.tick_rate_hz {
            limits_broken.push(format!("tick rate {lowest_tick_rate_hz:.2} Hz < {:.2} Hz", limits.tick_rate_hz));
        }
        if swarm.echo_past_due_ms.p99 > limits.echo_p99_ms {
            let p99 = swarm.echo_past_due_ms.p99;
            // Whether the tail is the inputs a handoff carried to the next server.
            let across = swarm.echoes_across_handoffs as f64 * 100.0 / swarm.echoes.max(1) as f64;
            let across_p99 = swarm.echo_past_due_across_handoffs_ms.p99;
            // And whether players' inputs came to wait longer (late ones slipping clocks).
            let longer: f64 = servers.iter().map(|s| s.input_waits_longer_per_sec).sum();
            let shorter: f64 = servers.iter().map(|s| s.input_waits_shorter_per_sec).sum();
            limits_broken.push(format!(
                "echo past due p99 {p99:.1} ms > {:.0} ms ({across:.1} % across a handoff: p99 {across_p99:.1} ms; \
                 players' input waits grew {longer:.1} ticks/s and shrank {shorter:.1}, all servers)",
                limits.echo_p99_ms
            ));
        }
        limits_broken.extend(limits.bots_behind(swarm.read_lag_ms, swarm.inputs_per_bot_per_sec));
        let store_failures: f64 = servers.iter().map(|s| s.checkpoint_failures).sum();
        if store_failures > 0.0 {
            limits_broken.push(format!("{store_failures:.0} checkpoint batches the store did not take"));
        }
        if !swarm.is_clean() {
            limits_broken.push(format!(
                "not clean: {}/{} bots connected, {} still connected, {} inputs lost, {} duplicated",
                swarm.bots_connected, bots, swarm.bots_still_connected, swarm.inputs_lost, swarm.inputs_duplicated
            ));
        }
        let bots_process = ProcessFigures::between(&before.bots, &after.bots, seconds);
        let machine = before.cores.as_ref().zip(after.cores.as_ref()).map(|(b, a)| MachineFigures::between(b, a));
        let udp_receive_drops = before.udp_receive_drops.zip(after.udp_receive_drops).map(|(b, a)| a.saturating_sub(b));
        let by_kind = |figure| by_kind(&servers, &proxies, &bots_process, figure);
        let (players, tick_hz) = (swarm.bots_still_connected, cluster.simulation.tick_hz);
        let cpu_us_per_player_tick = PerPlayerTick::cpu_us(by_kind(|p| p.cpu_percent), players, tick_hz);
        let wakeups_per_player_tick = PerPlayerTick::new(by_kind(|p| p.wakeups_per_sec), players, tick_hz);
        let player_ticks: f64 =
            servers.iter().map(|s| s.updates_sent_per_sec + s.updates_quiet_per_sec + s.updates_paced_per_sec).sum();
        let ratio = |of: f64, total: f64| if total > 0.0 { of / total } else { 0.0 };
        let share = |of: f64| ratio(of, player_ticks);
        let sent: f64 = servers.iter().map(|s| s.updates_sent_per_sec).sum();
        let budget_spent: f64 = servers.iter().map(|s| s.updates_budget_spent_per_sec).sum();
        Self {
            bots,
            seconds_measured: seconds,
            updates_sent_share: share(sent),
            datagram_share: ratio(
                proxies.iter().map(|p| p.datagrams_to_clients_per_sec).sum(),
                proxies.iter().map(|p| p.frames_to_clients_per_sec).sum(),
            ),
            updates_budget_spent_share: ratio(budget_spent, sent),
            updates_paced_share: share(servers.iter().map(|s| s.updates_paced_per_sec).sum()),
            most_update_every: servers.iter().map(|s| s.update_every).fold(1.0, f64::max),
            cpu_us_per_player_tick,
            wakeups_per_player_tick,
            peer_bytes_per_sec: servers.iter().map(|s| s.peer_bytes_out_per_sec).sum(),
            checkpoints_per_sec: servers.iter().map(|s| s.checkpoints_per_sec).sum(),
            swarm,
            servers,
            proxies,
            bots_process,
            machine,
            udp_receive_drops,
            worst_tick_p99_ms,
            lowest_tick_rate_hz,
            limits_broken,
        }
    }

    pub fn table_header() -> String {
        format!(
            "{:>6} {:>6} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>6} {:>6} {:>6} {:>6} {:>8} {:>7} {:>9} {:>7} {:>7} {:>7} {:>10} {:>9} {:>17} {:>17}  {}",
            "bots",
            "joined",
            "tick p99",
            "tick Hz",
            "due+ p50",
            "due+ p99",
            "echo p99",
            "read p99",
            "KB/s/bot",
            "B/ent",
            "ent upd/s",
            "sent",
            "paced",
            "budget",
            "dgram",
            "handoffs",
            "saves/s",
            "lost/dup",
            "srv CPU",
            "pxy CPU",
            "bot CPU",
            "idle/steal",
            "udp drops",
            "µs/player-tick",
            "wakes/player-tick",
            "limits"
        )
    }

    pub fn table_row(&self) -> String {
        let swarm = &self.swarm;
        let (per_tick, wakes) = (self.cpu_us_per_player_tick, self.wakeups_per_player_tick);
        let [servers_cpu, proxies_cpu, bots_cpu] =
            by_kind(&self.servers, &self.proxies, &self.bots_process, |p| p.cpu_percent);
        format!(
            "{:>6} {:>6} {:>6.1} ms {:>8.2} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>8.2} {:>8.1} {:>10.0} {:>5.0}% {:>5.0}% {:>5.0}% {:>5.0}% {:>8} {:>7.0} {:>9} {:>6.0}% {:>6.0}% {:>6.0}% {:>10} {:>9} {:>17} {:>17}  {}",
            self.bots,
            swarm.bots_still_connected,
            self.worst_tick_p99_ms,
            self.lowest_tick_rate_hz,
            swarm.echo_past_due_ms.p50,
            swarm.echo_past_due_ms.p99,
            swarm.echo_latency_ms.p99,
            swarm.read_lag_ms.p99,
            swarm.bytes_per_bot_per_sec / 1000.0,
            swarm.wire_bytes_per_entity_update,
            swarm.entity_updates_per_sec,
            self.updates_sent_share * 100.0,
            self.updates_paced_share * 100.0,
            self.updates_budget_spent_share * 100.0,
            self.datagram_share * 100.0,
            swarm.handoffs,
            self.checkpoints_per_sec,
            format!("{}/{}", swarm.inputs_lost, swarm.inputs_duplicated),
            servers_cpu,
            proxies_cpu,
            bots_cpu,
            self.machine.map_or("-".into(), |m| format!("{:.0}/{:.1}%", m.idle_percent, m.steal_percent)),
            self.udp_receive_drops.map_or("-".into(), |drops| drops.to_string()),
            format!("{:.1}/{:.1}/{:.1}", per_tick.servers, per_tick.proxies, per_tick.bots),
            format!("{:.3}/{:.3}/{:.3}", wakes.servers, wakes.proxies, wakes.bots),
            if self.limits_broken.is_empty() { "ok".into() } else { self.limits_broken.join("; ") },
        )
    }
}

/// Comparison (a): the same swarm with region subscriptions and with broadcast.
#[derive(Debug, Clone, Serialize)]
pub struct BroadcastComparison {
    pub bots: usize,
    pub subscriptions: StepReport,
    pub broadcast: StepReport,
    /// Broadcast's peer bytes over subscriptions': how many times less subscriptions send.
    pub peer_bytes_ratio: f64,
    /// The same for the bytes each player receives.
    pub client_bytes_ratio: f64,
}

impl BroadcastComparison {
    pub fn new(subscriptions: StepReport, broadcast: StepReport) -> Self {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
        Self {
            bots: subscriptions.bots,
            peer_bytes_ratio: ratio(broadcast.peer_bytes_per_sec, subscriptions.peer_bytes_per_sec),
            client_bytes_ratio: ratio(broadcast.swarm.bytes_per_bot_per_sec, subscriptions.swarm.bytes_per_bot_per_sec),
            subscriptions,
            broadcast,
        }
    }
}

/// The machine the run was on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    pub fn this_one() -> Self {
        let cpu = procfs::CpuInfo::current()
            .ok()
            .and_then(|info| info.model_name(0).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = procfs::Meminfo::current().map_or(0.0, |m| m.mem_total as f64 / (1u64 << 30) as f64);
        let kernel = procfs::sys::kernel::Version::current()
            .map_or_else(|_| "unknown".into(), |v| format!("{}.{}.{}", v.major, v.minor, v.patch));
        let cores = tessera_service::resources::cores();
        Self { cpu, cores, memory_gib, kernel }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub warmup_secs: u64,
    pub measure_secs: u64,
    pub tick_hz: f64,
    pub view_radius: f32,
    pub world_size: f32,
    pub servers: usize,
    pub proxies: usize,
    /// Threads the bots ran on ([`crate::processes::bots_threads`]).
    pub bots_threads: usize,
    pub limit_tick_p99_ms: f64,
    pub limit_tick_rate_hz: f64,
    pub limit_echo_p99_ms: f64,
    pub limit_bots_read_lag_p99_ms: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub steps: Vec<StepReport>,
    /// The most bots held within every limit.
    pub most_bots_within_limits: Option<usize>,
    pub stopped_because: Option<String>,
    pub subscriptions_vs_broadcast: Option<BroadcastComparison>,
    pub proxy_vs_relay: Option<RelayComparison>,
}

impl BenchReport {
    pub fn new(command: String, options: &BenchOptions, map: &ClusterConfig, limits: Limits) -> Self {
        Self {
            command,
            machine: Machine::this_one(),
            settings: Settings {
                warmup_secs: options.warmup,
                measure_secs: options.measure,
                tick_hz: map.simulation.tick_hz,
                view_radius: map.simulation.view_radius,
                world_size: map.region_map().world_size().x,
                servers: map.servers.len(),
                proxies: map.proxies.len(),
                bots_threads: crate::processes::bots_threads(map),
                limit_tick_p99_ms: limits.tick_p99_ms,
                limit_tick_rate_hz: limits.tick_rate_hz,
                limit_echo_p99_ms: limits.echo_p99_ms,
                limit_bots_read_lag_p99_ms: limits.bots_read_lag_p99_ms,
            },
            steps: Vec::new(),
            most_bots_within_limits: None,
            stopped_because: None,
            subscriptions_vs_broadcast: None,
            proxy_vs_relay: None,
        }
    }

    pub fn conclude(&mut self) {
        self.most_bots_within_limits =
            self.steps.iter().take_while(|s| s.limits_broken.is_empty()).map(|s| s.bots).last();
        if self.stopped_because.is_none() {
            self.stopped_because = Some("every step held".into());
        }
    }

    pub fn write(&self, path: &Path) -> Result<(), BenchError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|err| BenchError::Setup(format!("cannot create {}: {err}", dir.display())))?;
        }
        let json = serde_json::to_string_pretty(self).expect("the report serialises");
        std::fs::write(path, json).map_err(|err| BenchError::Setup(format!("cannot write {}: {err}", path.display())))
    }

    /// The run in a few lines.
    pub fn summary(&self) -> String {
        let mut lines = vec![format!(
            "most bots within every limit: {}; ramp stopped: {}",
            self.most_bots_within_limits.map_or("none".into(), |n| n.to_string()),
            self.stopped_because.as_deref().unwrap_or("-"),
        )];
        if let Some(c) = &self.subscriptions_vs_broadcast {
            lines.push(format!(
                "region subscriptions vs broadcast ({} bots): peer bytes {:.0} vs {:.0} B/s ({:.1}x less), \
                 per player {:.0} vs {:.0} B/s ({:.1}x less)",
                c.bots,
                c.subscriptions.peer_bytes_per_sec,
                c.broadcast.peer_bytes_per_sec,
                c.peer_bytes_ratio,
                c.subscriptions.swarm.bytes_per_bot_per_sec,
                c.broadcast.swarm.bytes_per_bot_per_sec,
                c.client_bytes_ratio,
            ));
        }
        if let Some(r) = &self.proxy_vs_relay {
            lines.push(r.summary());
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_busy_for_a_thousand_players_at_20_hz_is_50_us_a_player_tick() {
        let per_tick = PerPlayerTick::cpu_us([100.0, 50.0, 0.0], 1000, 20.0);
        assert_eq!((per_tick.servers, per_tick.proxies, per_tick.bots), (50.0, 25.0, 0.0));
        assert_eq!(PerPlayerTick::cpu_us([100.0, 0.0, 0.0], 0, 20.0).servers, 0.0, "no players, no cost per player");
    }

    #[test]
    fn two_thousand_wake_ups_a_second_for_a_thousand_players_at_20_hz_are_a_tenth_a_player_tick() {
        let wakes = PerPlayerTick::new([2_000.0, 1_000.0, 500.0], 1000, 20.0);
        assert_eq!((wakes.servers, wakes.proxies, wakes.bots), (0.1, 0.05, 0.025));
    }

    #[test]
    fn the_machine_is_its_cores_time_busy_idle_and_stolen_between_two_readings() {
        use procfs::FromBufReadSI;
        let system = procfs::ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: true,
        };
        let reading = |user, kernel, softirq, idle, steal| {
            let stat =
                format!("cpu  {user} 0 {kernel} {idle} 0 0 {softirq} {steal} 0 0\nctxt 1\nbtime 1\nprocesses 1\n");
            procfs::KernelStats::from_buf_read(stat.as_bytes(), &system).unwrap().total
        };
        let before = reading(1_000, 500, 100, 4_000, 10);
        // 100 ticks: 50 in user, 10 in the kernel, 10 in softirqs, 25 idle, 5 stolen.
        let after = reading(1_050, 510, 110, 4_025, 15);
        let machine = MachineFigures::between(&before, &after);
        assert_eq!((machine.busy_percent, machine.idle_percent, machine.steal_percent), (70.0, 25.0, 5.0));
        let nothing = MachineFigures::between(&after, &after);
        assert_eq!(nothing.busy_percent + nothing.idle_percent + nothing.steal_percent, 0.0, "no time, no shares");
    }
}
