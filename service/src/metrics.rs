//! The process's HTTP endpoint for its host (`--metrics ADDR`, or `TESSERA_METRICS`):
//! Prometheus metrics at `/metrics` (recorded by `metrics-exporter-prometheus`; the names
//! are in `tessera_shared::metrics`), and the probes `/livez` and `/readyz`
//! ([`crate::health`]). Served by hyper on a thread of its own, so that a busy or stuck
//! game loop still answers, and says so.

use crate::health::{self, Health};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_shared::metrics::{SERVER_TICK_SECONDS, TICK_BUCKETS};

/// How often histograms are drained into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The longest a scraper or a probe may take over one request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot record metrics: {0}")]
    Recorder(#[from] BuildError),
    #[error("cannot serve metrics on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// Records this process's metrics from now on and serves them, with the probes of
/// `parts` (alive and ready when every part is), at `http://ADDR/`; returns the address
/// bound (port 0 picks one).
pub fn serve(addr: SocketAddr, parts: Vec<Arc<Health>>) -> Result<SocketAddr, MetricsError> {
    let listen_error = |source| MetricsError::Listen { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    listener.set_nonblocking(true).map_err(listen_error)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(listen_error)?;
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SERVER_TICK_SECONDS.into()), TICK_BUCKETS)?
        .install_recorder()?;
    let endpoint = Arc::new(Endpoint { handle, parts });
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || runtime.block_on(endpoint.run(listener)))
        .map_err(listen_error)?;
    Ok(bound)
}

struct Endpoint {
    handle: PrometheusHandle,
    parts: Vec<Arc<Health>>,
}

impl Endpoint {
    async fn run(self: Arc<Self>, listener: std::net::TcpListener) {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(err) => return tracing::error!("metrics endpoint: {err}"),
        };
        let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
        loop {
            let stream = tokio::select! {
                _ = upkeep.tick() => {
                    self.handle.run_upkeep();
                    continue;
                }
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of file descriptors, say: the next accept may do better.
                    Err(err) => {
                        tracing::debug!("metrics endpoint: accept: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let endpoint = self.clone();
            let service = hyper::service::service_fn(move |request| {
                let answer = endpoint.answer(&request);
                async move { Ok::<_, std::convert::Infallible>(answer) }
            });
            tokio::spawn(async move {
                let connection =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                // A scraper that stalls is dropped, and only it.
                let _ = tokio::time::timeout(REQUEST_DEADLINE, connection).await;
            });
        }
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return reply(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        let probe = |check: fn(&Health) -> Result<(), String>, ok: &str| match health::all(&self.parts, check) {
            Ok(()) => reply(StatusCode::OK, format!("{ok}\n")),
            Err(reasons) => reply(StatusCode::SERVICE_UNAVAILABLE, format!("{reasons}\n")),
        };
        match request.uri().path() {
            "/metrics" | "/" => reply(StatusCode::OK, self.handle.render()),
            "/livez" => probe(Health::liveness, "alive"),
            "/readyz" => probe(Health::readiness, "ready"),
            _ => reply(StatusCode::NOT_FOUND, "/metrics, /livez or /readyz\n".into()),
        }
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
