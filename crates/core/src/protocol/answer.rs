//! Reading a compliance server's answer to a wait-mode request (docs/protocol.md §4).
//!
//! Only classifies the answer and finds the request it answers; whether the answer is allowed
//! for the event (the PASS-only rules) is the engine's decision.

use super::request::RequestId;
use super::NS;
use crate::policy::AnswerKind;
use crate::wire::Stanza;
use bytes::Bytes;
use std::fmt;

/// What a server said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// PASS: the event goes on unchanged.
    Pass,
    /// PASS with this stanza instead of the original.
    PassModified(Bytes),
    /// HANDLE: the server took the stanza over; the router must not deliver it.
    Handle,
    /// An `<error/>` element, exactly as the server sent it.
    Error(Bytes),
    /// A result we cannot read (unknown action, several stanzas): a protocol violation.
    Malformed(&'static str),
}

impl Answer {
    /// The shape the PASS-only rules judge; a malformed answer counts as an error.
    pub fn kind(&self) -> AnswerKind {
        match self {
            Answer::Pass => AnswerKind::Pass,
            Answer::PassModified(_) => AnswerKind::PassModified,
            Answer::Handle => AnswerKind::Handle,
            Answer::Error(_) | Answer::Malformed(_) => AnswerKind::Error,
        }
    }
}

/// An answer and the request it answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedAnswer {
    /// The request it answers (owner shard, slot, generation).
    pub id: RequestId,
    /// What the server said.
    pub answer: Answer,
}

/// Why a stanza from a compliance server is not an answer to any request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerError {
    /// Not an iq result or error (a server's own request, a message, a presence).
    NotAnAnswer,
    /// An iq result or error whose id is not one of ours.
    UnknownId,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NotAnAnswer => f.write_str("not an iq result or error"),
            AnswerError::UnknownId => f.write_str("answer to an id the gateway never sent"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// Used when an error answer carries no `<error/>` element of its own.
const UNDEFINED_ERROR: &[u8] = b"<error type='cancel'><undefined-condition \
    xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>";

/// Reads a compliance server's `<iq type='result'>` or `<iq type='error'>` as the answer to one
/// of our requests; an `Err` says why the stanza answers none (not an iq result or error, or an
/// id the gateway never sent). A modified stanza or an `<error/>` is kept as the server sent it.
pub fn parse_answer(stanza: &Stanza) -> Result<ParsedAnswer, AnswerError> {
    if stanza.name() != b"iq" {
        return Err(AnswerError::NotAnAnswer);
    }
    let is_error = match stanza.raw(stanza.attrs().type_) {
        Some(b"result") => false,
        Some(b"error") => true,
        _ => return Err(AnswerError::NotAnAnswer),
    };
    let id = stanza
        .raw(stanza.attrs().id)
        .and_then(RequestId::parse)
        .ok_or(AnswerError::UnknownId)?;
    let answer = if is_error {
        match stanza
            .children()
            .find(|c| stanza.element_local_name(c) == b"error")
        {
            Some(e) => Answer::Error(stanza.slice(e.span)),
            None => Answer::Error(Bytes::from_static(UNDEFINED_ERROR)),
        }
    } else {
        result_answer(stanza)
    };
    Ok(ParsedAnswer { id, answer })
}

fn result_answer(stanza: &Stanza) -> Answer {
    let verdict = stanza.children().find(|c| {
        stanza.element_local_name(c) == b"verdict"
            && stanza.element_attr(c, "xmlns").as_deref() == Some(NS)
    });
    let Some(verdict) = verdict else {
        return Answer::Pass;
    };
    match stanza.element_attr(verdict, "action").as_deref() {
        Some("pass") => {
            let mut inner = stanza.children_of(verdict);
            match (inner.next(), inner.next()) {
                (None, _) => Answer::Pass,
                (Some(s), None) => Answer::PassModified(stanza.slice(s.span)),
                (Some(_), Some(_)) => Answer::Malformed("a pass verdict holding several stanzas"),
            }
        }
        Some("handle") => Answer::Handle,
        Some(_) => Answer::Malformed("unknown verdict action"),
        None => Answer::Malformed("verdict without an action"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Frame, Framer, Limits};

    fn answer(xml: &str) -> Result<ParsedAnswer, AnswerError> {
        let mut f = Framer::new(Limits::default());
        f.feed(b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>");
        f.feed(xml.as_bytes());
        let _ = f.next_frame();
        match f.next_frame() {
            Ok(Some(Frame::Stanza(s))) => parse_answer(&s),
            other => panic!("{other:?}"),
        }
    }

    const ID: RequestId = RequestId {
        shard: 1,
        slot: 2,
        generation: 3,
    };

    #[test]
    fn every_answer_shape_of_the_protocol() {
        let ok = |xml: &str| answer(xml).map(|a| (a.id, a.answer));
        assert_eq!(
            ok("<iq type='result' id='g1.2.3'/>"),
            Ok((ID, Answer::Pass))
        );
        assert_eq!(
            ok("<iq type='result' id='g1.2.3'><verdict xmlns='urn:palisade:compliance:0' action='pass'/></iq>"),
            Ok((ID, Answer::Pass))
        );
        assert_eq!(
            ok("<iq type='result' id='g1.2.3'><verdict xmlns='urn:palisade:compliance:0' action='pass'>\
                <message to='b'><body>x [disclaimer]</body></message></verdict></iq>"),
            Ok((ID, Answer::PassModified(Bytes::from_static(b"<message to='b'><body>x [disclaimer]</body></message>"))))
        );
        assert_eq!(
            ok("<iq type='result' id='g1.2.3'><verdict xmlns='urn:palisade:compliance:0' action='handle'/></iq>"),
            Ok((ID, Answer::Handle))
        );
        assert_eq!(
            ok("<iq type='error' id='g1.2.3'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"),
            Ok((ID, Answer::Error(Bytes::from_static(b"<error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"))))
        );
        assert_eq!(
            ok("<iq type='error' id='g1.2.3'/>"),
            Ok((ID, Answer::Error(Bytes::from_static(UNDEFINED_ERROR))))
        );
        assert!(matches!(
            ok("<iq type='result' id='g1.2.3'><verdict xmlns='urn:palisade:compliance:0' action='maybe'/></iq>"),
            Ok((_, Answer::Malformed(_)))
        ));
    }

    #[test]
    fn non_answers() {
        assert_eq!(
            answer("<message id='g1.2.3'/>"),
            Err(AnswerError::NotAnAnswer)
        );
        assert_eq!(
            answer("<iq type='get' id='g1.2.3'/>"),
            Err(AnswerError::NotAnAnswer)
        );
        assert_eq!(
            answer("<iq type='result' id='R1'/>"),
            Err(AnswerError::UnknownId)
        );
        assert_eq!(answer("<iq type='result'/>"), Err(AnswerError::UnknownId));
    }
}
