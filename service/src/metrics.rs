//! The process's Prometheus endpoint (`--metrics ADDR`, served by
//! `metrics-exporter-prometheus`); the metric names are in `tessera_shared::metrics`.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use std::net::SocketAddr;
use tessera_shared::metrics::{SERVER_TICK_SECONDS, TICK_BUCKETS};

/// Serves this process's metrics at `http://ADDR/metrics` (any path answers) from now on.
pub fn serve(addr: SocketAddr) -> Result<(), BuildError> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Full(SERVER_TICK_SECONDS.into()), TICK_BUCKETS)?
        .install()
}
