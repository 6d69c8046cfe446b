//! Log output for every Tessera binary: human-readable lines on stderr, filtered by
//! `RUST_LOG` (default: info, with Bevy's own chatter at warn), coloured only on a
//! terminal, and not where `NO_COLOR` is set: a log file, `docker logs` or the journal
//! gets plain text.

use std::io::IsTerminal;

/// Installs the process-wide log subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,bevy=warn,wgpu=error,naga=warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|set| set.is_empty()))
        .with_writer(std::io::stderr)
        .init();
}
