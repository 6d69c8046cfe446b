//! The host's limits on a process, raised where their defaults are too low for a game
//! cluster: open files above all, since every player, proxy and peer link is a socket,
//! and many hosts still start processes with a soft limit of 1,024. And the cores it
//! may run on, which threads are sized to.

use tracing::{debug, warn};

/// The cores this process may run on (the host's, or its container's share), at least one.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How many files this process may have open (its soft limit), where the platform
/// limits it.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    if rlimit::Resource::NOFILE.is_supported() {
        return rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft);
    }
    None
}

/// Raises this process's open-file limit as far as the host allows (the soft limit up
/// to the hard one, and the hard one to `needed` where the process may: root, or
/// `CAP_SYS_RESOURCE`), and says so in the log if that is still fewer than `needed`.
/// On platforms without such a limit it does nothing.
pub fn raise_open_files(needed: u64) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        #[cfg(unix)]
        Ok(limit) if limit < needed && raise_hard_limit(needed) => {
            debug!("open-file limit: {needed}, raised from {limit}")
        }
        Ok(limit) if limit < needed => warn!(
            "at most {limit} open files for this process (the host's hard limit), fewer than the {needed} it may \
             need: raise nofile (`ulimit -Hn`, systemd's LimitNOFILE, or the container's ulimits)"
        ),
        Ok(limit) => debug!("open-file limit: {limit}"),
        Err(err) => warn!("cannot raise the open-file limit: {err}"),
    }
}

/// Raises the hard open-file limit, and the soft one with it, to `needed`, where the
/// process may (root, or `CAP_SYS_RESOURCE`) and the hard limit is lower: whether the
/// soft limit is `needed` now.
#[cfg(unix)]
fn raise_hard_limit(needed: u64) -> bool {
    use rlimit::Resource;
    let Ok((_, hard)) = Resource::NOFILE.get() else { return false };
    hard < needed
        && Resource::NOFILE.set(needed, needed).is_ok()
        && Resource::NOFILE.get().is_ok_and(|(soft, _)| soft >= needed)
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        use rlimit::Resource;
        let (_, hard) = Resource::NOFILE.get().unwrap();
        // Lowered first, as many hosts start processes, then raised.
        Resource::NOFILE.set(hard.min(256), hard).unwrap();
        super::raise_open_files(1);
        assert_eq!(Resource::NOFILE.get().unwrap(), (hard, hard));
    }
}
