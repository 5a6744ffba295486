//! The compliance-server role: answers the gateway's wait-mode requests (rules first, then the
//! `--error-rate` / `--handle-rate` draws), archives every request and notification, and
//! answers pings and disco like any component.
//!
//! Only answers an event may legally get are sent (docs/protocol.md §4): the rules file is checked
//! for that when loaded, and the random draws apply only to events that accept any answer.
//! Must not touch sockets or timing beyond asking the latency model for a delay.

use super::answer::{write_answer, Answer, ReplyTo};
use super::archive::Record;
use super::body::{append_to_body, find_body};
use super::conn::{Answers, Handler};
use super::request::{Kind, Request};
use super::rules::{Block, Decision, Subject};
use super::stats::Local;
use super::Shared;
use crate::policy::{AnswerRule, EventKind, ParsedJid};
use crate::protocol::service;
use crate::rng::Rng;
use crate::wire::Stanza;
use crossbeam_channel::Sender;
use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

const SIM_ERROR: Answer<'static> = Answer::Error {
    error_type: "wait",
    condition: "internal-server-error",
    text: Some("simulated failure (--error-rate)"),
};

/// One stream's compliance server.
pub struct Comply<'a> {
    shared: &'a Shared,
    conn: u32,
    /// The stream's component NAME: answers come from it.
    name: String,
    rng: Rng,
    archive: Option<Sender<Vec<u8>>>,
    lines: Vec<u8>,
    counts: Local,
}

impl<'a> Comply<'a> {
    pub fn new(shared: &'a Shared, conn: u32, name: String) -> Comply<'a> {
        Comply {
            shared,
            conn,
            name,
            rng: Rng::derive(shared.seed, u64::from(conn)),
            archive: shared.archive_sender(),
            lines: Vec::new(),
            counts: Local::default(),
        }
    }

    fn answer(&mut self, req: &Request, now: Instant, answers: &mut Answers) {
        self.counts.requests += 1;
        let rules = &self.shared.rules;
        let mut modified: Option<Vec<u8>> = None;
        let mut rule: Option<&str> = None;
        let answer = match req.event() {
            None => {
                self.counts.unknown_events += 1;
                Answer::Pass
            }
            Some(event) => {
                let inner = req.inner();
                let mut sender = None;
                let mut target = None;
                if rules.walls_cover(event) {
                    sender = req.inner_attr("from").as_deref().and_then(bare);
                    target = match event.kind() {
                        EventKind::Jsm => req.inner_attr("to").as_deref().and_then(bare),
                        EventKind::Tc => req.attr("key").map(Cow::into_owned),
                    };
                }
                let body = match (&inner, req.inner_name()) {
                    (Some(inner), Some(b"message")) if rules.content_covers(event) => {
                        find_body(inner)
                    }
                    _ => None,
                };
                let subject = Subject {
                    sender: sender.as_deref(),
                    target: target.as_deref(),
                    body: body.as_ref().map(|b| b.text.as_str()),
                };
                match rules.decide(event, &subject) {
                    Decision::Block { block, rule: r } => {
                        rule = Some(r);
                        match block {
                            Block::Handle => Answer::Handle,
                            Block::Bounce(e) => Answer::Error {
                                error_type: &e.error_type,
                                condition: &e.condition,
                                text: Some(&e.text),
                            },
                        }
                    }
                    Decision::Append { text, rule: r } => {
                        rule = Some(r);
                        if let (Some(inner), Some(body)) = (&inner, &body) {
                            modified = Some(append_to_body(inner, body, text));
                        }
                        match &modified {
                            Some(m) => Answer::PassModified(m),
                            None => Answer::Pass,
                        }
                    }
                    Decision::Pass if event.answer() == AnswerRule::Any => {
                        if self.rng.chance(self.shared.error_rate) {
                            rule = Some("--error-rate");
                            SIM_ERROR
                        } else if self.rng.chance(self.shared.handle_rate) {
                            rule = Some("--handle-rate");
                            Answer::Handle
                        } else {
                            Answer::Pass
                        }
                    }
                    Decision::Pass => Answer::Pass,
                }
            }
        };
        match &answer {
            Answer::Pass => self.counts.pass += 1,
            Answer::PassModified(_) => self.counts.modified += 1,
            Answer::Handle => self.counts.handle += 1,
            Answer::Error { .. } => self.counts.error += 1,
        }
        if let (Some((id, id_quote)), Some((to, to_quote))) = (req.id_raw(), req.from_raw()) {
            let reply = ReplyTo {
                id,
                id_quote,
                to,
                to_quote,
            };
            let due = self.shared.due(now, &mut self.rng);
            let name = &self.name;
            answers.push(due, |out| write_answer(out, name, reply, &answer));
        }
        if self.archive.is_some() {
            let label = answer.label();
            self.record(req, now, label, rule);
        }
    }

    fn record(&mut self, req: &Request, now: Instant, answer: &'static str, rule: Option<&str>) {
        let inner = req.inner().unwrap_or_default();
        Record {
            sim_id: self.shared.sim_ids.fetch_add(1, Ordering::Relaxed),
            t_ms: now.duration_since(self.shared.start).as_secs_f64() * 1e3,
            conn: self.conn,
            component: &self.name,
            from: unescaped(req.from_raw()),
            id: unescaped(req.id_raw()),
            event: req.attr("name"),
            mode: req.kind.as_str(),
            packet: req.attr("packet"),
            profile: req.attr("profile"),
            handling: req.attr("handling"),
            key: req.attr("key"),
            stamp: req.attr("stamp"),
            node: req.attr("node"),
            stanza: String::from_utf8_lossy(&inner),
            answer,
            rule,
        }
        .write_line(&mut self.lines);
    }
}

/// A raw attribute value, unescaped.
fn unescaped(raw: Option<(&[u8], u8)>) -> Option<Cow<'_, str>> {
    raw.map(|(v, _)| crate::wire::xml::unescape(std::str::from_utf8(v).unwrap_or("")))
}

/// The folded bare JID of `jid`, if it is one.
fn bare(jid: &str) -> Option<String> {
    ParsedJid::parse(jid).ok().map(|j| j.bare())
}

impl Handler for Comply<'_> {
    fn on_stanza(&mut self, stanza: &Stanza, now: Instant, answers: &mut Answers) {
        let Some(req) = Request::read(stanza) else {
            self.counts.other += 1;
            let name = &self.name;
            answers.push(None, |out| {
                service::answer(out, name, stanza);
            });
            return;
        };
        match req.kind {
            Kind::Wait => self.answer(&req, now, answers),
            Kind::Notify => {
                self.counts.notifications += 1;
                if self.archive.is_some() {
                    self.record(&req, now, "none", None);
                }
            }
        }
    }

    fn end_batch(&mut self) {
        self.counts.publish(&self.shared.counters);
        if let (Some(tx), false) = (&self.archive, self.lines.is_empty()) {
            let batch = std::mem::take(&mut self.lines);
            // The writer only goes away at exit; then the lines have nowhere to go anyway.
            let _ = tx.send(batch);
        }
    }
}
