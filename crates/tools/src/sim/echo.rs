//! The router-echo role (`palisade sim --router-echo`): a stand-in for the gateway itself, so the
//! load generator can be measured without it. Reads each router event with the gateway's own
//! [`parse_event`] and answers it at once with a `pass` verdict ([`write_verdict`]); an
//! unreadable event gets `bad-request` as the gateway would give it. `--handle-rate` and
//! `--error-rate` turn some verdicts into `handle` and `bounce`, to exercise a router's verdict
//! handling.
//!
//! Must not imitate the gateway beyond that: no profiles, no compliance servers, no ordering.

use super::conn::{Answers, Handler};
use super::stats::Local;
use super::Shared;
use crate::policy::NodeId;
use crate::protocol::event::is_event;
use crate::protocol::{
    parse_event, service, write_bad_request, write_verdict, BounceCause, Reply, Verdict,
};
use crate::rng::Rng;
use crate::wire::Stanza;
use bytes::Bytes;
use std::time::Instant;

const SIM_ERROR: &[u8] = b"<error type='wait'><internal-server-error \
    xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>\
    simulated failure (--error-rate)</text></error>";

/// One router stream's echo.
pub struct Echo<'a> {
    shared: &'a Shared,
    node: NodeId,
    rng: Rng,
    counts: Local,
}

impl<'a> Echo<'a> {
    pub fn new(shared: &'a Shared, conn: u32, node: NodeId) -> Echo<'a> {
        Echo {
            shared,
            node,
            rng: Rng::derive(shared.seed, u64::from(conn)),
            counts: Local::default(),
        }
    }

    fn verdict(&mut self) -> Verdict {
        if self.rng.chance(self.shared.error_rate) {
            self.counts.error += 1;
            Verdict::Bounce(BounceCause::ServerError(Bytes::from_static(SIM_ERROR)))
        } else if self.rng.chance(self.shared.handle_rate) {
            self.counts.handle += 1;
            Verdict::Handle
        } else {
            self.counts.pass += 1;
            Verdict::Pass(None)
        }
    }
}

impl Handler for Echo<'_> {
    fn on_stanza(&mut self, stanza: &Stanza, now: Instant, answers: &mut Answers) {
        let name = self.shared.echo_name.as_str();
        if !is_event(stanza) {
            self.counts.other += 1;
            answers.push(None, |out| {
                service::answer(out, name, stanza);
            });
            return;
        }
        let Some(reply) = Reply::of(stanza) else {
            // No id or no from: there is nobody to answer.
            self.counts.bad_events += 1;
            return;
        };
        self.counts.requests += 1;
        let node = self.node;
        let due = self.shared.due(now, &mut self.rng);
        match parse_event(stanza, reply, |_| node) {
            Ok(ev) => {
                let verdict = self.verdict();
                answers.push(due, |out| {
                    write_verdict(out, name, ev.reply(), &verdict, None)
                });
            }
            Err(bad) => {
                self.counts.bad_events += 1;
                if let Some(reply) = Reply::of(stanza) {
                    let reason = bad.to_string();
                    answers.push(due, |out| write_bad_request(out, name, &reply, &reason));
                }
            }
        }
    }

    fn end_batch(&mut self) {
        self.counts.publish(&self.shared.counters);
    }
}
