//! How a host asks a Tessera process to stop: Ctrl-C, or on Unix SIGTERM too (what
//! `docker stop`, systemd and Kubernetes send), whichever comes first.

/// Completes when the process is asked to stop.
pub async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(err) => tracing::warn!("cannot listen for SIGTERM ({err}): stopping on Ctrl-C only"),
        }
    }
    ctrl_c().await;
}

/// Completes on Ctrl-C; never, if it cannot be listened for (a process that cannot hear
/// the signal must not take that for the signal).
async fn ctrl_c() {
    if let Err(err) = tokio::signal::ctrl_c().await {
        tracing::warn!("cannot listen for Ctrl-C: {err}");
        std::future::pending::<()>().await;
    }
}

/// Cancels `token` when the process is asked to stop, from a thread of its own: for a
/// process whose main thread runs something other than a tokio runtime (a Bevy app).
pub fn cancel_on_stop(token: tokio_util::sync::CancellationToken) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::Builder::new().name("stop-signal".into()).spawn(move || {
        runtime.block_on(stop_requested());
        token.cancel();
    })?;
    Ok(())
}
