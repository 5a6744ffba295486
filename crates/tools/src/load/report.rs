//! The result of a `palisade load` run: pass or fail and why, the final table people read, and
//! the JSON (`--json FILE`) machines read.
//!
//! A run fails when any verdict does not match what was sent (an unknown id, a second verdict,
//! one on the wrong connection, a malformed one), when events are still unanswered after the
//! drain, when a connection was lost, or when nothing was sent. `bad-request` answers and other
//! error iqs are counted, not failures: they are answers. Must not measure anything.

use super::profile::Settings;
use super::stats::Snapshot;
use super::worker::Outcome;
use crate::policy::EventId;
use crate::units::{human, Rate};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdicts {
    pub pass: u64,
    pub pass_modified: u64,
    pub handle: u64,
    pub bounce: u64,
    pub drop: u64,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatches {
    pub unknown_id: u64,
    pub duplicate: u64,
    pub misrouted: u64,
    pub malformed: u64,
    pub unanswered: u64,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Report {
    pub ok: bool,
    /// Why the run failed (empty when it did not).
    pub failures: Vec<String>,
    pub profile: Option<String>,
    pub target: String,
    pub router: String,
    pub connections: u32,
    /// `open` (fixed rate) or `closed` (max, windowed).
    pub mode: &'static str,
    pub rate: Option<f64>,
    pub in_flight: Option<u64>,
    /// Seconds spent sending.
    pub duration_s: f64,
    /// Seconds from the start to the last verdict.
    pub elapsed_s: f64,
    pub sent: u64,
    pub answered: u64,
    pub sent_per_s: f64,
    pub answered_per_s: f64,
    /// Microseconds; open loop: from each event's intended send time.
    pub latency_us: Latency,
    pub verdicts: Verdicts,
    pub bad_request: u64,
    pub errors: u64,
    pub mismatches: Mismatches,
    /// Events sent, by name.
    pub events: BTreeMap<&'static str, u64>,
    /// Details of the first mismatches and lost connections.
    pub notes: Vec<String>,
}

/// Latency summary in microseconds.
pub fn latency_summary(h: &Histogram<u64>) -> Latency {
    let us = |ns: u64| ns as f64 / 1e3;
    if h.is_empty() {
        return Latency {
            count: 0,
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            max: 0.0,
            mean: 0.0,
        };
    }
    Latency {
        count: h.len(),
        p50: us(h.value_at_quantile(0.5)),
        p90: us(h.value_at_quantile(0.9)),
        p99: us(h.value_at_quantile(0.99)),
        p999: us(h.value_at_quantile(0.999)),
        max: us(h.max()),
        mean: h.mean() / 1e3,
    }
}

impl Report {
    pub fn build(
        settings: &Settings,
        counts: &Snapshot,
        latency: &Histogram<u64>,
        outcomes: &[Outcome],
        notes: Vec<String>,
    ) -> Report {
        let duration = outcomes
            .iter()
            .map(|o| o.generation_ended)
            .max()
            .unwrap_or_default();
        let elapsed = outcomes
            .iter()
            .map(|o| o.last_verdict)
            .max()
            .unwrap_or_default()
            .max(duration);
        let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
        let unanswered: u64 = outcomes.iter().map(|o| o.unanswered).sum();
        let per_s = |n: u64, d: Duration| {
            if d.is_zero() {
                0.0
            } else {
                n as f64 / d.as_secs_f64()
            }
        };
        let mut events = BTreeMap::new();
        for o in outcomes {
            for (i, &n) in o.sent_by_event.iter().enumerate() {
                if let (Some(e), true) = (EventId::from_index(i), n > 0) {
                    *events.entry(e.name()).or_insert(0) += n;
                }
            }
        }
        let mismatches = Mismatches {
            unknown_id: counts.unknown_id,
            duplicate: counts.duplicate,
            misrouted: counts.misrouted,
            malformed: counts.malformed,
            unanswered,
        };
        let mut failures = Vec::new();
        let mut notes = notes;
        if sent == 0 {
            failures.push("no events were sent".to_string());
        }
        for (n, what) in [
            (
                mismatches.unknown_id,
                "verdict(s) for ids that were never sent",
            ),
            (
                mismatches.duplicate,
                "second verdict(s) for an event already answered",
            ),
            (mismatches.misrouted, "verdict(s) on the wrong connection"),
            (mismatches.malformed, "malformed answer(s)"),
        ] {
            if n > 0 {
                failures.push(format!("{n} {what}"));
            }
        }
        if unanswered > 0 {
            let first: Vec<&str> = outcomes
                .iter()
                .flat_map(|o| o.unanswered_ids.iter().map(String::as_str))
                .take(5)
                .collect();
            failures.push(format!(
                "{unanswered} event(s) unanswered after the {} drain (first: {})",
                human(settings.drain),
                first.join(", ")
            ));
        }
        for o in outcomes {
            if let Some(why) = &o.lost {
                failures.push(format!("connection {} lost: {why}", o.conn));
            }
        }
        notes.truncate(super::stats::MAX_NOTES);
        let (mode, rate, in_flight) = match settings.rate {
            Rate::PerSecond(r) => ("open", Some(r), None),
            Rate::Max => ("closed", None, Some(settings.in_flight)),
        };
        Report {
            ok: failures.is_empty(),
            failures,
            profile: settings.profile.clone(),
            target: settings.connect.clone(),
            router: settings.name.clone(),
            connections: settings.connections,
            mode,
            rate,
            in_flight,
            duration_s: duration.as_secs_f64(),
            elapsed_s: elapsed.as_secs_f64(),
            sent,
            answered: counts.answered,
            sent_per_s: per_s(sent, duration),
            answered_per_s: per_s(counts.answered, elapsed),
            latency_us: latency_summary(latency),
            verdicts: Verdicts {
                pass: counts.pass,
                pass_modified: counts.pass_modified,
                handle: counts.handle,
                bounce: counts.bounce,
                drop: counts.drop,
            },
            bad_request: counts.bad_request,
            errors: counts.iq_error,
            mismatches,
            events,
            notes,
        }
    }

    /// The final table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let us = |v: f64| human(Duration::from_nanos((v * 1e3) as u64));
        let mode = match (self.rate, self.in_flight) {
            (Some(r), _) => format!("open loop at {r}/s"),
            (None, Some(w)) => format!("closed loop, {w} in flight per connection"),
            _ => String::new(),
        };
        let _ = writeln!(
            t,
            "palisade load: {} as {} ({} connection(s), {mode})",
            self.target, self.router, self.connections
        );
        if let Some(p) = &self.profile {
            let _ = writeln!(t, "  profile          {p}");
        }
        let _ = writeln!(
            t,
            "  sent             {:>12}  in {:.2}s  ({:.0}/s)",
            self.sent, self.duration_s, self.sent_per_s
        );
        let _ = writeln!(
            t,
            "  answered         {:>12}  in {:.2}s  ({:.0}/s)",
            self.answered, self.elapsed_s, self.answered_per_s
        );
        let l = &self.latency_us;
        let _ = writeln!(
            t,
            "  latency          p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p999),
            us(l.max),
            us(l.mean)
        );
        let v = &self.verdicts;
        let _ = writeln!(
            t,
            "  verdicts         pass {}  pass-modified {}  handle {}  bounce {}  drop {}",
            v.pass, v.pass_modified, v.handle, v.bounce, v.drop
        );
        let _ = writeln!(t, "  bad-request      {}", self.bad_request);
        let _ = writeln!(t, "  other errors     {}", self.errors);
        let m = &self.mismatches;
        let _ = writeln!(
            t,
            "  mismatches       unknown-id {}  duplicate {}  wrong-connection {}  malformed {}  unanswered {}",
            m.unknown_id, m.duplicate, m.misrouted, m.malformed, m.unanswered
        );
        let events: Vec<String> = self
            .events
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(t, "  events sent      {}", events.join("  "));
        for n in &self.notes {
            let _ = writeln!(t, "  note: {n}");
        }
        if self.ok {
            let _ = writeln!(t, "OK: every event got exactly one verdict");
        } else {
            let _ = writeln!(t, "FAILED:");
            for f in &self.failures {
                let _ = writeln!(t, "  - {f}");
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::profile::LoadArgs;
    use crate::load::stats::new_histogram;

    fn settings() -> Settings {
        Settings::resolve(&LoadArgs {
            secret: Some("s".into()),
            ..LoadArgs::default()
        })
        .unwrap()
    }

    fn outcome(sent: u64, unanswered: u64) -> Outcome {
        let mut by_event = vec![0; EventId::COUNT];
        by_event[EventId::lookup(b"es_OUT").unwrap().index()] = sent;
        Outcome {
            conn: 0,
            sent,
            unanswered,
            unanswered_ids: (0..unanswered.min(5))
                .map(|i| format!("e0.{i:x}"))
                .collect(),
            lost: None,
            generation_ended: Duration::from_secs(2),
            last_verdict: Duration::from_millis(2100),
            sent_by_event: by_event,
            verdicts: Vec::new(),
        }
    }

    #[test]
    fn a_clean_run_passes_and_its_json_has_the_documented_shape() {
        let counts = Snapshot {
            sent: 1000,
            answered: 1000,
            pass: 990,
            handle: 10,
            ..Snapshot::default()
        };
        let mut h = new_histogram();
        for i in 1..=1000 {
            h.record(i * 1000).unwrap();
        }
        let r = Report::build(&settings(), &counts, &h, &[outcome(1000, 0)], vec![]);
        assert!(r.ok, "{:?}", r.failures);
        assert!((r.sent_per_s - 500.0).abs() < 1e-6);
        assert!((r.latency_us.p50 - 500.0).abs() < 1.0);
        let json: serde_json::Value = serde_json::to_value(&r).unwrap();
        for key in [
            "ok",
            "failures",
            "target",
            "router",
            "connections",
            "mode",
            "rate",
            "duration_s",
            "elapsed_s",
            "sent",
            "answered",
            "sent_per_s",
            "answered_per_s",
            "latency_us",
            "verdicts",
            "bad_request",
            "errors",
            "mismatches",
            "events",
            "notes",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["latency_us"]["count"], 1000);
        assert_eq!(json["verdicts"]["handle"], 10);
        assert_eq!(json["mismatches"]["unanswered"], 0);
        assert_eq!(json["events"]["es_OUT"], 1000);
        assert_eq!(json["mode"], "open");
        assert!(r
            .table()
            .contains("OK: every event got exactly one verdict"));
    }

    #[test]
    fn unknown_duplicate_misrouted_and_missing_verdicts_fail() {
        let h = new_histogram();
        let cases = [
            (
                Snapshot {
                    unknown_id: 1,
                    ..Snapshot::default()
                },
                0,
                "never sent",
            ),
            (
                Snapshot {
                    duplicate: 2,
                    ..Snapshot::default()
                },
                0,
                "2 second verdict",
            ),
            (
                Snapshot {
                    misrouted: 1,
                    ..Snapshot::default()
                },
                0,
                "wrong connection",
            ),
            (
                Snapshot {
                    malformed: 1,
                    ..Snapshot::default()
                },
                0,
                "malformed",
            ),
            (
                Snapshot::default(),
                3,
                "3 event(s) unanswered after the 5.00s drain (first: e0.0, e0.1, e0.2)",
            ),
        ];
        for (counts, unanswered, expected) in cases {
            let r = Report::build(&settings(), &counts, &h, &[outcome(10, unanswered)], vec![]);
            assert!(!r.ok);
            assert!(
                r.failures.iter().any(|f| f.contains(expected)),
                "{expected}: {:?}",
                r.failures
            );
            assert!(r.table().contains("FAILED"));
        }
        let mut lost = outcome(10, 0);
        lost.lost = Some("the stream ended".into());
        let r = Report::build(&settings(), &Snapshot::default(), &h, &[lost], vec![]);
        assert!(!r.ok && r.failures[0].contains("connection 0 lost"));
        let r = Report::build(
            &settings(),
            &Snapshot::default(),
            &h,
            &[outcome(0, 0)],
            vec![],
        );
        assert_eq!(r.failures, ["no events were sent"]);
        // bad-request answers are counted, not failures.
        let counts = Snapshot {
            answered: 10,
            bad_request: 10,
            ..Snapshot::default()
        };
        assert!(Report::build(&settings(), &counts, &h, &[outcome(10, 0)], vec![]).ok);
    }
}
