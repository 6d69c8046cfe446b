//! `tessera-health`: the container image's health check. Asks a Tessera process on this
//! machine whether it is ready (or, with `live`, alive) at its metrics address, prints
//! its answer, and exits 0 if it is, 1 if not or if it does not answer: what Docker's
//! `HEALTHCHECK` and an exec probe want.

use clap::{Parser, ValueEnum};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version, about = "Asks a Tessera server, proxy or cluster on this machine whether it is ready or alive")]
struct Args {
    /// What to ask.
    #[arg(value_enum, default_value_t = Probe::Ready)]
    probe: Probe,
    /// The process's metrics address (its --metrics); an unspecified address
    /// (0.0.0.0:PORT) is asked on loopback.
    #[arg(long, value_name = "ADDR", env = "TESSERA_METRICS", default_value = "127.0.0.1:9100")]
    metrics: SocketAddr,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Probe {
    /// Can it do its part for players now?
    Ready,
    /// Does its loop still turn?
    Live,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut addr = args.metrics;
    if addr.ip().is_unspecified() {
        addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let path = match args.probe {
        Probe::Ready => "readyz",
        Probe::Live => "livez",
    };
    let agent = ureq::Agent::config_builder()
        .timeout_global(Duration::try_from_secs_f64(args.timeout).ok())
        .http_status_as_error(false)
        .build()
        .new_agent();
    match agent.get(format!("http://{addr}/{path}")).call() {
        Ok(mut response) => {
            let ok = response.status().is_success();
            print!("{}", response.body_mut().read_to_string().unwrap_or_default());
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(err) => {
            println!("no answer at {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}
