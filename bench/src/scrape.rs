//! Reading a process's Prometheus endpoint, and turning two readings into what
//! happened between them: rates from counters, percentiles from histogram buckets.

use crate::BenchError;
use prometheus_parse::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tessera_shared::metrics as names;

const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether a cluster is whole, from its servers' and its proxies' readings: every server
/// linked to every peer, every proxy to every server.
pub fn linked_up(servers: &[Result<Scrape, BenchError>], proxies: &[Result<Scrape, BenchError>]) -> bool {
    let count = servers.len() as f64;
    let linked = |scrape: &Result<Scrape, BenchError>, name, want| {
        scrape.as_ref().ok().and_then(|s| s.sum(name, &[])).is_some_and(|v| v >= want)
    };
    servers.iter().all(|s| linked(s, names::SERVER_PEERS, count - 1.0))
        && proxies.iter().all(|s| linked(s, names::PROXY_SERVERS, count))
}

/// One reading of one process's metrics.
#[derive(Debug, Clone)]
pub struct Scrape(prometheus_parse::Scrape);

/// Fetches `http://{addr}/metrics`.
pub async fn scrape(addr: SocketAddr) -> Result<Scrape, BenchError> {
    let url = format!("http://{addr}/metrics");
    let fetched = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(SCRAPE_TIMEOUT)).build().into();
        agent.get(&url).call()?.body_mut().read_to_string()
    })
    .await
    .expect("the scrape task never panics")
    .map_err(|err| BenchError::Scrape(addr, err.to_string()))?;
    let lines = fetched.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).map(Scrape).map_err(|err| BenchError::Scrape(addr, err.to_string()))
}

impl Scrape {
    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Value> + 'a {
        self.0
            .samples
            .iter()
            .filter(move |s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| &s.value)
    }

    /// The sum of every counter or gauge `name` carrying `labels`; `None` when there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .filter_map(|value| match value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
                _ => None,
            })
            .reduce(|a, b| a + b)
    }

    /// The cumulative buckets of histogram `name`, as (upper bound, count) in order.
    pub fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        self.matching(name, &[])
            .find_map(|value| match value {
                Value::Histogram(buckets) => Some(buckets.iter().map(|b| (b.less_than, b.count)).collect()),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// How much counter `name` (with `labels`) grew per second from `before` to `after`.
pub fn rate(before: &Scrape, after: &Scrape, seconds: f64, name: &str, labels: &[(&str, &str)]) -> f64 {
    let grown = after.sum(name, labels).unwrap_or(0.0) - before.sum(name, labels).unwrap_or(0.0);
    grown.max(0.0) / seconds.max(1e-9)
}

/// Percentiles of what histogram `name` recorded between two readings, interpolated
/// within buckets as Prometheus' `histogram_quantile` does.
#[derive(Debug, Clone)]
pub struct BucketWindow {
    /// (upper bound, observations at or below it), cumulative.
    buckets: Vec<(f64, f64)>,
}

impl BucketWindow {
    pub fn between(before: &Scrape, after: &Scrape, name: &str) -> Self {
        let old = before.buckets(name);
        let buckets = after
            .buckets(name)
            .into_iter()
            .map(|(le, count)| {
                let earlier = old.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
                (le, count - earlier)
            })
            .collect();
        Self { buckets }
    }

    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, count)| *count)
    }

    /// The `q` quantile; 0 with no observation. Past the last finite bucket, its bound.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let (mut lower, mut below) = (0.0, 0.0);
        for &(le, count) in &self.buckets {
            if count >= rank {
                if le.is_infinite() {
                    return lower;
                }
                let within = count - below;
                return if within > 0.0 { lower + (le - lower) * (rank - below) / within } else { le };
            }
            (lower, below) = (le, count);
        }
        lower
    }

    /// The upper bound of the highest bucket holding an observation: the maximum, to a
    /// bucket. Past the last finite bucket, that bucket's bound (the maximum is at least that).
    pub fn max_bound(&self) -> f64 {
        let total = self.count();
        let finite = self.buckets.iter().filter(|(le, _)| le.is_finite());
        let highest = finite.clone().map(|(le, _)| *le).next_back().unwrap_or(0.0);
        finite.clone().find(|(_, count)| *count >= total).map_or(highest, |(le, _)| *le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Scrape {
        Scrape(prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap())
    }

    fn histogram(counts: [u32; 4]) -> Scrape {
        let [a, b, c, d] = counts;
        parse(&format!(
            "# TYPE t histogram\nt_bucket{{le=\"0.001\"}} {a}\nt_bucket{{le=\"0.002\"}} {b}\n\
             t_bucket{{le=\"0.004\"}} {c}\nt_bucket{{le=\"+Inf\"}} {d}\nt_sum 1\nt_count {d}\n\
             # TYPE c counter\nc{{dir=\"in\"}} {a}\nc{{dir=\"out\"}} {d}\n"
        ))
    }

    #[test]
    fn percentiles_come_from_the_buckets_filled_between_two_readings() {
        let before = histogram([10, 10, 10, 10]);
        // Since then: 50 at or below 1 ms, 48 in (1, 2], 2 in (2, 4].
        let after = histogram([60, 108, 110, 110]);
        let window = BucketWindow::between(&before, &after, "t");
        assert_eq!(window.count(), 100.0);
        assert!((window.quantile(0.5) - 0.001).abs() < 1e-9);
        assert!((window.quantile(0.99) - 0.003).abs() < 1e-9, "{}", window.quantile(0.99));
        assert_eq!(window.max_bound(), 0.004);
    }

    #[test]
    fn rates_come_from_counter_growth_filtered_by_label() {
        let (before, after) = (histogram([10, 10, 10, 10]), histogram([60, 108, 110, 110]));
        assert_eq!(rate(&before, &after, 2.0, "c", &[("dir", "in")]), 25.0);
        assert_eq!(rate(&before, &after, 2.0, "c", &[]), 75.0);
        assert_eq!(after.sum("missing", &[]), None);
    }
}
