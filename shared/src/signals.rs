//! How a host asks a Tessera process to stop: Ctrl-C or SIGTERM, whichever comes first.

/// Completes when the process receives Ctrl-C (SIGINT) or SIGTERM.
pub async fn stop_requested() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
