//! `palisade load`: a router-side load generator. It plays one router (`--name`, the gateway's
//! `[[router]] name`) over `--connections` XEP-0114 streams, sends events from a population of
//! users, conversations and rooms in a configurable mix, checks that every event gets exactly
//! one verdict, and reports throughput and latency.
//!
//! ```text
//! palisade load [--profile perf/profiles/steady-chat.toml]
//!     [--connect 127.0.0.1:5275] [--name imp1.example.com] --secret S [--gateway palisade.example.com]
//!     [--connections N] [--users N] [--domain example.com[,more]] [--rooms N]
//!     [--mix es_OUT=40,es_IN=30,...] [--rate N|max] [--in-flight N]
//!     [--duration 10s] [--events N] [--drain 5s] [--json FILE] [--plot FILE.svg] [--seed N] [--quiet]
//! ```
//!
//! A progress line prints each second on stderr, the final table on stdout. Exit status: 0 when
//! every event got exactly one verdict, 1 when the run failed (see [`report`]), 2 when it could
//! not start (bad arguments, cannot connect or handshake).
//!
//! This file owns the run's orchestration: threads, the common start, the progress line, the
//! outputs. Connections run in [`worker`], one std thread each.

pub mod gen;
pub mod id;
pub mod mix;
pub mod plot;
pub mod profile;
pub mod report;
pub mod stats;
pub mod track;
pub mod verdict;
pub mod worker;

use crate::rng::Rng;
use crate::signal;
use crate::units::{human, Rate};
use gen::{Generator, Population};
use hdrhistogram::Histogram;
pub use profile::LoadArgs;
use profile::Settings;
use report::Report;
use stats::{progress_line, Live, Snapshot};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::{Outcome, Pacing, Plan};

/// Runs `palisade load` and returns the exit code.
pub fn run(args: LoadArgs) -> i32 {
    if let Some(ca) = &args.tls_ca {
        match crate::tls::tool_dial(ca, &args.tls_name) {
            Ok(dial) => super::net::use_tls(super::net::ToolTls::Dial(dial)),
            Err(e) => {
                eprintln!("palisade load: {e}");
                return 2;
            }
        }
    }
    let settings = match Settings::resolve(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("palisade load: {e}");
            return 2;
        }
    };
    match run_load(&settings) {
        Ok((report, latency)) => {
            print!("{}", report.table());
            let mut code = if report.ok { 0 } else { 1 };
            if let Err(e) = write_outputs(&settings, &report, &latency) {
                eprintln!("palisade load: {e}");
                code = code.max(2);
            }
            code
        }
        Err(e) => {
            eprintln!("palisade load: {e}");
            2
        }
    }
}

/// Writes `--json` and `--plot`.
fn write_outputs(
    settings: &Settings,
    report: &Report,
    latency: &Histogram<u64>,
) -> Result<(), String> {
    if let Some(path) = &settings.json {
        let text = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = &settings.plot {
        let mode = match settings.rate {
            Rate::PerSecond(r) => format!("open loop at {r}/s"),
            Rate::Max => format!(
                "closed loop, {} in flight per connection",
                settings.in_flight
            ),
        };
        let title = format!("palisade load: {} verdicts, {mode}", report.answered);
        let l = &report.latency_us;
        let subtitle = format!(
            "{} connection(s) to {}; {:.0} verdicts/s; p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us{}",
            settings.connections,
            settings.connect,
            report.answered_per_s,
            l.p50,
            l.p99,
            l.p999,
            l.max,
            settings
                .profile
                .as_ref()
                .map(|p| format!("; profile {p}"))
                .unwrap_or_default()
        );
        std::fs::write(path, plot::render(latency, &title, &subtitle))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Per-connection shares of a total: `total / n`, the remainder going to the first ones.
fn share(total: u64, n: u32, i: u32) -> u64 {
    total / u64::from(n) + u64::from(u64::from(i) < total % u64::from(n))
}

fn run_load(settings: &Settings) -> Result<(Report, Histogram<u64>), String> {
    signal::install();
    let pop = Arc::new(
        Population::new(settings.users, &settings.domains, settings.rooms)
            .map_err(|e| e.to_string())?,
    );
    let seed = settings
        .seed
        .unwrap_or_else(|| Rng::from_entropy().next_u64());
    let n = settings.connections;
    let live = Arc::new(Live::default());
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut gos = Vec::new();
    let mut threads = Vec::new();
    for conn in 0..n {
        let pacing = match settings.rate {
            Rate::PerSecond(r) => Pacing::Open {
                per_sec: r / f64::from(n),
            },
            Rate::Max => Pacing::Closed {
                window: settings.in_flight,
            },
        };
        let plan = Plan {
            conn,
            addr: settings.connect.clone(),
            name: settings.name.clone(),
            secret: settings.secret.clone().into_bytes(),
            pacing,
            limit: settings.events.map(|e| share(e, n, conn)),
            duration: settings.duration,
            drain: settings.drain,
            log_verdicts: settings.verdict_log.is_some(),
        };
        let gen = Generator::new(
            settings.mix.clone(),
            pop.clone(),
            &settings.name,
            &settings.gateway,
            conn,
            n,
            Rng::derive(seed, u64::from(conn)),
        )
        .map_err(|e| e.to_string())?;
        let (go_tx, go_rx) = crossbeam_channel::bounded(1);
        gos.push(go_tx);
        let (live, ready) = (live.clone(), ready_tx.clone());
        let t = std::thread::Builder::new()
            .name(format!("load-{conn}"))
            .spawn(move || worker::run(plan, gen, &live, ready, go_rx))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        threads.push(t);
    }
    drop(ready_tx);
    let mut errors = Vec::new();
    for _ in 0..n {
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => {
                errors.push("a connection did not complete its handshake in 30s".into());
                break;
            }
        }
    }
    if !errors.is_empty() {
        for g in &gos {
            let _ = g.send(None);
        }
        for t in threads {
            let _ = t.join();
        }
        return Err(errors.join("; "));
    }
    if !settings.quiet {
        eprintln!(
            "load: {n} connection(s) to {} as {} ready; {}, mix {}, {} users, {} rooms, {}; seed {seed}",
            settings.connect,
            settings.name,
            match settings.rate {
                Rate::PerSecond(r) => format!("{r}/s open loop"),
                Rate::Max => format!("closed loop, {} in flight per connection", settings.in_flight),
            },
            settings.mix,
            settings.users,
            settings.rooms,
            match (settings.duration, settings.events) {
                (Some(d), Some(e)) => format!("{e} events or {}", human(d)),
                (Some(d), None) => human(d),
                (None, Some(e)) => format!("{e} events"),
                (None, None) => String::new(),
            }
        );
    }
    let start = Instant::now() + Duration::from_millis(5);
    for g in &gos {
        let _ = g.send(Some(start));
    }
    let mut before = Snapshot::default();
    let mut last = start;
    while threads.iter().any(|t| !t.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= Duration::from_secs(1) {
            let now = live.counts.snapshot();
            let h = live.latency();
            let p99 = (!h.is_empty()).then(|| Duration::from_nanos(h.value_at_quantile(0.99)));
            if !settings.quiet {
                eprintln!(
                    "{}",
                    progress_line(start.elapsed(), &now, &before, last.elapsed(), p99)
                );
            }
            before = now;
            last = Instant::now();
        }
    }
    let outcomes: Vec<Outcome> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_default())
        .collect();
    let counts = live.counts.snapshot();
    let latency = live.latency();
    let notes = live.notes.lock().map(|n| n.clone()).unwrap_or_default();
    let report = Report::build(settings, &counts, &latency, &outcomes, notes);
    if let Some(path) = &settings.verdict_log {
        let mut text = String::new();
        for o in &outcomes {
            for (seq, action) in &o.verdicts {
                text.push_str(&format!(
                    "{{\"conn\":{},\"seq\":{seq},\"action\":\"{action}\"}}\n",
                    o.conn
                ));
            }
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok((report, latency))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        for total in [0, 1, 7, 1000, 15000] {
            for n in 1..5 {
                let sum: u64 = (0..n).map(|i| share(total, n, i)).sum();
                assert_eq!(sum, total);
            }
        }
    }
}
