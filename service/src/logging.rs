//! Log output for every Tessera binary: human-readable lines on stderr, filtered by
//! `RUST_LOG` (default: info, with Bevy's own chatter at warn), coloured only on a
//! terminal, and not where `NO_COLOR` is set: a log file, `docker logs` or the journal
//! gets plain text.

use std::io::IsTerminal;

/// Installs the process-wide log subscriber; call once, first thing in `main`.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,bevy=warn,wgpu=error,naga=warn".into());
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // On a terminal, tracing-subscriber's default: colours unless `NO_COLOR` is set.
    let subscriber = if std::io::stderr().is_terminal() { subscriber } else { subscriber.with_ansi(false) };
    subscriber.init();
}
