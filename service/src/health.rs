//! Whether this process is alive and ready, as container engines and orchestrators ask
//! it: `GET /livez` and `GET /readyz` at the metrics address ([`crate::metrics`]), and
//! `tessera-health`, the container image's health check, which asks one of them.
//!
//! *Alive* means the process's own loop still turns: a server's tick, a proxy's
//! runtime. The HTTP answers come from a thread of their own, so a process whose loop is
//! stuck still answers, but it stops beating and is called dead [`STALE_AFTER`] later,
//! and an orchestrator restarts it. *Ready* means it can do its part for players now;
//! what that takes is the process's call, made where it sets [`Health::set_ready`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a process's loop may go without a beat before the process is called dead:
/// far beyond any tick or scheduling hiccup a busy host gives, short enough that a hung
/// process is replaced within a probe period or two.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// One part of a process (a server, a proxy) beating and saying whether it is ready.
#[derive(Debug)]
pub struct Health {
    name: String,
    born: Instant,
    /// Milliseconds after `born` of the last beat; a part that has never beaten counts
    /// as beating at birth, so it has [`STALE_AFTER`] to start.
    last_beat_ms: AtomicU64,
    ready: AtomicBool,
}

impl Health {
    /// A part called `name` in what the probes answer ("server 3", "proxy 1").
    pub fn new(name: impl Into<String>) -> Arc<Self> {
        Arc::new(Health {
            name: name.into(),
            born: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
    }

    /// Its loop turned just now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// `Err` says why it is not alive.
    pub fn liveness(&self) -> Result<(), String> {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        let silent = self.born.elapsed().saturating_sub(last);
        if silent > STALE_AFTER {
            return Err(format!("{}: its loop has not turned for {:.1} s", self.name, silent.as_secs_f64()));
        }
        Ok(())
    }

    /// `Err` says why it is not ready.
    pub fn readiness(&self) -> Result<(), String> {
        self.liveness()?;
        if !self.ready.load(Ordering::Relaxed) {
            return Err(format!("{}: not ready", self.name));
        }
        Ok(())
    }
}

/// Every part's answer: `Ok` if all are, else each part's reason, one per line.
pub fn all(parts: &[Arc<Health>], check: impl Fn(&Health) -> Result<(), String>) -> Result<(), String> {
    let reasons: Vec<String> = parts.iter().filter_map(|part| check(part).err()).collect();
    if reasons.is_empty() { Ok(()) } else { Err(reasons.join("\n")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_ready_only_once_it_says_so_and_while_it_beats() {
        let part = Health::new("server 1");
        assert_eq!(part.liveness(), Ok(()), "a part just born has time to start");
        assert_eq!(part.readiness(), Err("server 1: not ready".into()));
        part.set_ready(true);
        part.beat();
        assert_eq!(part.readiness(), Ok(()));
        part.last_beat_ms.store(0, Ordering::Relaxed);
        let born_long_ago = Health { born: Instant::now() - STALE_AFTER * 2, ..Arc::into_inner(part).unwrap() };
        let reason = born_long_ago.readiness().unwrap_err();
        assert!(reason.starts_with("server 1: its loop has not turned for 20."), "{reason}");
    }

    #[test]
    fn several_parts_answer_together() {
        let (server, proxy) = (Health::new("server 1"), Health::new("proxy 1"));
        server.set_ready(true);
        assert_eq!(all(&[server.clone(), proxy.clone()], Health::readiness), Err("proxy 1: not ready".into()));
        assert_eq!(all(&[server, proxy], Health::liveness), Ok(()));
    }
}
