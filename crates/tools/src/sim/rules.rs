//! The simulator's policy (`palisade sim --rules FILE`): ethical walls between groups of users
//! and content rules on message bodies. Without a file, every event passes.
//!
//! # Format (TOML)
//!
//! ```toml
//! # Groups of JIDs. A pattern is a glob on the bare JID (`*` any run of characters, `?` one
//! # character) or a regular expression written "re:...". Case is ignored. A group may list room
//! # JIDs too: for room (TC) events a wall compares the sender with the room.
//! [groups]
//! traders  = ["*@trading.example.com", "alice@example.com"]
//! research = ["*@research.example.com", "re:^analyst[0-9]+@example\\.com$",
//!             "research-*@conference.example.com"]
//!
//! [[wall]]
//! name = "trading/research"            # optional: names the rule in answers and the archive
//! between = ["traders", "research"]    # both ways; or one way: from = "traders", to = "research"
//! action = "bounce"                    # "bounce" (an error answer, the default) or "handle"
//! condition = "forbidden"              # RFC 6120 stanza error condition (default forbidden)
//! type = "cancel"                      # error type: auth, cancel, continue, modify, wait
//! text = "ethical wall: trading/research"   # default "ethical wall: NAME"
//! events = ["es_IN", "es_OUT", "onBeforeJoin", "onBeforeSend", "onBeforeInvite"]  # the default
//!
//! [[content]]
//! name = "insider"
//! pattern = "(?i)\\binsider\\b"        # a regular expression searched in the <body> text
//! action = "bounce"                    # "bounce", "handle", or "append"
//! # append = " [archived for compliance]"   # with action = "append": PASS with this appended
//! events = ["es_IN", "es_OUT", "onBeforeSend"]   # the default
//! ```
//!
//! # What is compared
//!
//! - One-to-one (JSM) events: the bare `from` of the event's stanza (the sender) against its
//!   bare `to` (the recipient). A one-way wall `from = A, to = B` blocks A → B only; `between`
//!   blocks both directions.
//! - Room (TC) events: the sender (bare `from` of the stanza) against the room, which is the
//!   request's `key` (the gateway keys TC events by the room's bare JID, docs/protocol.md §2). So a
//!   wall blocks a trader joining or writing in a room that a `research` pattern lists. Room
//!   membership is not tracked: listing the room is how a room belongs to a side.
//! - Rules are tried in file order, walls before content rules; the first that matches answers.
//!   Content rules see the body only of `<message>` stanzas that have one.
//!
//! A rule can only give an answer the event accepts (docs/protocol.md §4): a wall or blocking rule
//! naming an event whose only valid answer is PASS is refused when the file is loaded, and an
//! `append` rule may not name an event that refuses a modified stanza. The simulator never
//! sends a protocol violation on purpose.
//!
//! This file owns the format, its validation and the decision; must not parse stanzas or write
//! answers (the connection extracts the addresses and body, and writes what is decided).

use super::pattern::{JidSet, PatternError};
use crate::policy::{AnswerKind, EventId};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Events a wall covers when it names none.
pub const DEFAULT_WALL_EVENTS: [&str; 5] = [
    "es_IN",
    "es_OUT",
    "onBeforeJoin",
    "onBeforeSend",
    "onBeforeInvite",
];
/// Events a content rule covers when it names none.
pub const DEFAULT_CONTENT_EVENTS: [&str; 3] = ["es_IN", "es_OUT", "onBeforeSend"];

/// RFC 6120 §8.3.3 stanza error conditions.
const CONDITIONS: [&str; 22] = [
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
];
const ERROR_TYPES: [&str; 5] = ["auth", "cancel", "continue", "modify", "wait"];

/// What is wrong with a rules file. `rule` names the offending rule (its `name`, or
/// `wall #N` / `content #N`).
#[derive(Debug)]
pub enum RulesError {
    Read {
        path: String,
        source: std::io::Error,
    },
    Toml(String),
    Pattern {
        group: String,
        error: PatternError,
    },
    UnknownGroup {
        rule: String,
        group: String,
    },
    /// A wall needs `between = [A, B]` or both `from` and `to`, not a mix.
    WallShape {
        rule: String,
    },
    ContentPattern {
        rule: String,
        message: String,
    },
    UnknownEvent {
        rule: String,
        name: String,
        suggestion: Option<&'static str>,
    },
    /// The rule would give `event` an answer the seed forbids for it.
    AnswerNotAllowed {
        rule: String,
        event: &'static str,
        answer: &'static str,
    },
    BadAction {
        rule: String,
        action: String,
        expected: &'static str,
    },
    MissingAppend {
        rule: String,
    },
    BadCondition {
        rule: String,
        condition: String,
    },
    BadErrorType {
        rule: String,
        error_type: String,
    },
    TooManyGroups(usize),
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RulesError::Read { path, source } => write!(f, "cannot read {path}: {source}"),
            RulesError::Toml(m) => write!(f, "{m}"),
            RulesError::Pattern { group, error } => write!(f, "group {group}: {error}"),
            RulesError::UnknownGroup { rule, group } => {
                write!(f, "{rule}: no group named {group:?} in [groups]")
            }
            RulesError::WallShape { rule } => write!(
                f,
                "{rule}: write either between = [\"A\", \"B\"] (both ways) or from = \"A\" and to = \"B\" (one way)"
            ),
            RulesError::ContentPattern { rule, message } => {
                write!(f, "{rule}: bad pattern: {message}")
            }
            RulesError::UnknownEvent {
                rule,
                name,
                suggestion,
            } => {
                write!(f, "{rule}: unknown event {name:?}")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean {s}?)"),
                    None => write!(f, " (`palisade events` lists them)"),
                }
            }
            RulesError::AnswerNotAllowed {
                rule,
                event,
                answer,
            } => write!(
                f,
                "{rule}: {event} does not accept {answer} as an answer (`palisade events`); remove it from the rule's events"
            ),
            RulesError::BadAction {
                rule,
                action,
                expected,
            } => write!(f, "{rule}: unknown action {action:?}: expected {expected}"),
            RulesError::MissingAppend { rule } => {
                write!(f, "{rule}: action \"append\" needs append = \"TEXT\"")
            }
            RulesError::BadCondition { rule, condition } => write!(
                f,
                "{rule}: {condition:?} is not an RFC 6120 stanza error condition (e.g. forbidden, not-acceptable, policy-violation)"
            ),
            RulesError::BadErrorType { rule, error_type } => write!(
                f,
                "{rule}: error type {error_type:?}: expected auth, cancel, continue, modify or wait"
            ),
            RulesError::TooManyGroups(n) => {
                write!(f, "{n} groups: at most {MAX_GROUPS} are supported")
            }
        }
    }
}

impl std::error::Error for RulesError {}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    wall: Vec<WallSpec>,
    #[serde(default)]
    content: Vec<ContentSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorFields {
    condition: Option<String>,
    #[serde(rename = "type")]
    error_type: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WallSpec {
    name: Option<String>,
    between: Option<Vec<String>>,
    from: Option<String>,
    to: Option<String>,
    action: Option<String>,
    condition: Option<String>,
    #[serde(rename = "type")]
    error_type: Option<String>,
    text: Option<String>,
    events: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContentSpec {
    name: Option<String>,
    pattern: String,
    action: Option<String>,
    append: Option<String>,
    condition: Option<String>,
    #[serde(rename = "type")]
    error_type: Option<String>,
    text: Option<String>,
    events: Option<Vec<String>>,
}

/// The `<error/>` a blocking rule answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSpec {
    pub error_type: String,
    pub condition: String,
    pub text: String,
}

/// What a blocking rule does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Bounce(ErrorSpec),
    Handle,
}

#[derive(Debug)]
struct Wall {
    name: String,
    from: usize,
    to: usize,
    both: bool,
    block: Block,
    events: EventSet,
}

#[derive(Debug)]
enum ContentAction {
    Block(Block),
    Append(String),
}

#[derive(Debug)]
struct Content {
    name: String,
    regex: regex::Regex,
    action: ContentAction,
    events: EventSet,
}

/// A set of catalog events as a bit mask (the catalog has 40).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EventSet(u64);

impl EventSet {
    pub fn contains(self, e: EventId) -> bool {
        self.0 & (1 << e.index()) != 0
    }

    fn insert(&mut self, e: EventId) {
        self.0 |= 1 << e.index();
    }
}

/// The compiled rules. See the module documentation.
#[derive(Debug, Default)]
pub struct Rules {
    groups: Vec<(String, JidSet)>,
    walls: Vec<Wall>,
    content: Vec<Content>,
    /// Events any wall covers / any content rule covers: the connection extracts addresses or
    /// the body only for those.
    wall_events: EventSet,
    content_events: EventSet,
}

/// What the connection knows about one event, for [`Rules::decide`].
#[derive(Copy, Clone, Debug, Default)]
pub struct Subject<'a> {
    /// Folded bare JID of the stanza's `from`.
    pub sender: Option<&'a str>,
    /// JSM: folded bare JID of the stanza's `to`. TC: the room (the request's key).
    pub target: Option<&'a str>,
    /// The unescaped `<body>` text of a message.
    pub body: Option<&'a str>,
}

/// The simulator's decision for one wait-mode event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision<'r> {
    Pass,
    /// PASS with this text appended to the body.
    Append {
        text: &'r str,
        rule: &'r str,
    },
    Block {
        block: &'r Block,
        rule: &'r str,
    },
}

impl Rules {
    /// Rules that pass everything.
    pub fn pass_all() -> Rules {
        Rules::default()
    }

    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Rules::parse(&text).map_err(|e| match e {
            RulesError::Toml(m) => RulesError::Toml(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError::Toml(e.to_string()))?;
        if file.groups.len() > MAX_GROUPS {
            return Err(RulesError::TooManyGroups(file.groups.len()));
        }
        let mut rules = Rules::default();
        for (name, patterns) in &file.groups {
            let set = JidSet::new(patterns).map_err(|error| RulesError::Pattern {
                group: name.clone(),
                error,
            })?;
            rules.groups.push((name.clone(), set));
        }
        for (i, spec) in file.wall.into_iter().enumerate() {
            let wall = rules.compile_wall(i, spec)?;
            rules.wall_events.0 |= wall.events.0;
            rules.walls.push(wall);
        }
        for (i, spec) in file.content.into_iter().enumerate() {
            let content = compile_content(i, spec)?;
            rules.content_events.0 |= content.events.0;
            rules.content.push(content);
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.walls.is_empty() && self.content.is_empty()
    }

    /// Whether any wall looks at `event` (then the sender and target are needed).
    pub fn walls_cover(&self, event: EventId) -> bool {
        self.wall_events.contains(event)
    }

    /// Whether any content rule looks at `event` (then the body is needed).
    pub fn content_covers(&self, event: EventId) -> bool {
        self.content_events.contains(event)
    }

    /// A one-line summary for the startup banner.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "pass everything".into();
        }
        let walls: Vec<&str> = self.walls.iter().map(|w| w.name.as_str()).collect();
        let content: Vec<&str> = self.content.iter().map(|c| c.name.as_str()).collect();
        format!(
            "{} group(s); walls: [{}]; content rules: [{}]",
            self.groups.len(),
            walls.join(", "),
            content.join(", ")
        )
    }

    fn group(&self, rule: &str, name: &str) -> Result<usize, RulesError> {
        self.groups
            .iter()
            .position(|(g, _)| g == name)
            .ok_or_else(|| RulesError::UnknownGroup {
                rule: rule.to_string(),
                group: name.to_string(),
            })
    }

    fn compile_wall(&self, i: usize, spec: WallSpec) -> Result<Wall, RulesError> {
        let label = spec
            .name
            .clone()
            .unwrap_or_else(|| format!("wall #{}", i + 1));
        let shape = RulesError::WallShape {
            rule: label.clone(),
        };
        let (from, to, both) = match (&spec.between, &spec.from, &spec.to) {
            (Some(pair), None, None) if pair.len() == 2 => (&pair[0], &pair[1], true),
            (None, Some(from), Some(to)) => (from, to, false),
            _ => return Err(shape),
        };
        let (from, to) = (self.group(&label, from)?, self.group(&label, to)?);
        let name = spec.name.clone().unwrap_or_else(|| {
            let sep = if both { "/" } else { "->" };
            format!("{}{sep}{}", self.groups[from].0, self.groups[to].0)
        });
        let block = compile_block(
            &label,
            spec.action.as_deref().unwrap_or("bounce"),
            ErrorFields {
                condition: spec.condition,
                error_type: spec.error_type,
                text: spec.text,
            },
            &format!("ethical wall: {name}"),
        )?;
        let answer = match block {
            Block::Bounce(_) => AnswerKind::Error,
            Block::Handle => AnswerKind::Handle,
        };
        let events = event_set(&label, spec.events.as_deref(), &DEFAULT_WALL_EVENTS, answer)?;
        Ok(Wall {
            name,
            from,
            to,
            both,
            block,
            events,
        })
    }

    /// The decision for `event`. Walls first, then content rules, in file order.
    pub fn decide<'r>(&'r self, event: EventId, subject: &Subject) -> Decision<'r> {
        if self.walls_cover(event) {
            if let (Some(sender), Some(target)) = (subject.sender, subject.target) {
                // Memberships are computed once per event, not once per wall.
                let sender_in = self.memberships(sender);
                let target_in = self.memberships(target);
                let is = |mask: u64, g: usize| mask & (1 << g) != 0;
                for w in self.walls.iter().filter(|w| w.events.contains(event)) {
                    let forward = is(sender_in, w.from) && is(target_in, w.to);
                    let backward = w.both && is(sender_in, w.to) && is(target_in, w.from);
                    if forward || backward {
                        return Decision::Block {
                            block: &w.block,
                            rule: &w.name,
                        };
                    }
                }
            }
        }
        if let (true, Some(body)) = (self.content_covers(event), subject.body) {
            for c in self.content.iter().filter(|c| c.events.contains(event)) {
                if c.regex.is_match(body) {
                    return match &c.action {
                        ContentAction::Block(block) => Decision::Block {
                            block,
                            rule: &c.name,
                        },
                        ContentAction::Append(text) => Decision::Append {
                            text,
                            rule: &c.name,
                        },
                    };
                }
            }
        }
        Decision::Pass
    }

    /// Bit `g` set when `jid` is in group `g` (`parse` refuses more than [`MAX_GROUPS`]).
    fn memberships(&self, jid: &str) -> u64 {
        self.groups
            .iter()
            .enumerate()
            .filter(|(_, (_, set))| set.contains(jid))
            .fold(0, |mask, (g, _)| mask | (1 << g))
    }
}

fn compile_content(i: usize, spec: ContentSpec) -> Result<Content, RulesError> {
    let name = spec
        .name
        .clone()
        .unwrap_or_else(|| format!("content #{}", i + 1));
    let regex = regex::Regex::new(&spec.pattern).map_err(|e| RulesError::ContentPattern {
        rule: name.clone(),
        message: e.to_string(),
    })?;
    let action_name = spec.action.as_deref().unwrap_or("bounce");
    let (action, answer) = if action_name == "append" {
        let text = spec
            .append
            .clone()
            .ok_or_else(|| RulesError::MissingAppend { rule: name.clone() })?;
        (ContentAction::Append(text), AnswerKind::PassModified)
    } else {
        let block = compile_block(
            &name,
            action_name,
            ErrorFields {
                condition: spec.condition,
                error_type: spec.error_type,
                text: spec.text,
            },
            &format!("content rule: {name}"),
        )
        .map_err(|e| match e {
            RulesError::BadAction { rule, action, .. } => RulesError::BadAction {
                rule,
                action,
                expected: "bounce, handle or append",
            },
            other => other,
        })?;
        let answer = match block {
            Block::Bounce(_) => AnswerKind::Error,
            Block::Handle => AnswerKind::Handle,
        };
        (ContentAction::Block(block), answer)
    };
    let events = event_set(
        &name,
        spec.events.as_deref(),
        &DEFAULT_CONTENT_EVENTS,
        answer,
    )?;
    Ok(Content {
        name,
        regex,
        action,
        events,
    })
}

fn compile_block(
    rule: &str,
    action: &str,
    fields: ErrorFields,
    default_text: &str,
) -> Result<Block, RulesError> {
    match action {
        "handle" => Ok(Block::Handle),
        "bounce" => {
            let condition = fields.condition.unwrap_or_else(|| "forbidden".into());
            if !CONDITIONS.contains(&condition.as_str()) {
                return Err(RulesError::BadCondition {
                    rule: rule.to_string(),
                    condition,
                });
            }
            let error_type = fields.error_type.unwrap_or_else(|| "cancel".into());
            if !ERROR_TYPES.contains(&error_type.as_str()) {
                return Err(RulesError::BadErrorType {
                    rule: rule.to_string(),
                    error_type,
                });
            }
            Ok(Block::Bounce(ErrorSpec {
                error_type,
                condition,
                text: fields.text.unwrap_or_else(|| default_text.to_string()),
            }))
        }
        other => Err(RulesError::BadAction {
            rule: rule.to_string(),
            action: other.to_string(),
            expected: "bounce or handle",
        }),
    }
}

fn event_set(
    rule: &str,
    names: Option<&[String]>,
    default: &[&str],
    answer: AnswerKind,
) -> Result<EventSet, RulesError> {
    let defaults: Vec<String> = default.iter().map(|s| s.to_string()).collect();
    let mut set = EventSet::default();
    for name in names.unwrap_or(&defaults) {
        let Some(event) = EventId::lookup(name.as_bytes()) else {
            let suggestion = EventId::all()
                .map(|e| e.name())
                .min_by_key(|n| strsim::levenshtein(n, name))
                .filter(|n| strsim::levenshtein(n, name) <= 3);
            return Err(RulesError::UnknownEvent {
                rule: rule.to_string(),
                name: name.clone(),
                suggestion,
            });
        };
        if !event.answer().permits(answer) {
            return Err(RulesError::AnswerNotAllowed {
                rule: rule.to_string(),
                event: event.name(),
                answer: match answer {
                    AnswerKind::Pass => "PASS",
                    AnswerKind::PassModified => "a modified stanza",
                    AnswerKind::Handle => "HANDLE",
                    AnswerKind::Error => "an error",
                },
            });
        }
        set.insert(event);
    }
    Ok(set)
}

/// Groups past this many cannot be walled (memberships are a 64-bit mask).
pub const MAX_GROUPS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = r#"
        [groups]
        traders = ["*@trading.example.com", "alice@example.com"]
        research = ["*@research.example.com", "re:^analyst[0-9]+@example\\.com$", "research-*@conference.example.com"]
        compliance = ["*@compliance.example.com"]

        [[wall]]
        between = ["traders", "research"]

        [[wall]]
        name = "no-dm-to-compliance"
        from = "traders"
        to = "compliance"
        action = "handle"
        events = ["es_OUT"]

        [[content]]
        name = "insider"
        pattern = "(?i)\\binsider\\b"
        condition = "policy-violation"
        type = "modify"

        [[content]]
        name = "disclaimer"
        pattern = "(?i)price"
        action = "append"
        append = " [archived]"
    "#;

    fn ev(name: &str) -> EventId {
        EventId::lookup(name.as_bytes()).unwrap()
    }

    fn subject<'a>(sender: &'a str, target: &'a str, body: Option<&'a str>) -> Subject<'a> {
        Subject {
            sender: Some(sender),
            target: Some(target),
            body,
        }
    }

    #[test]
    fn walls_block_both_ways_and_one_way() {
        let r = Rules::parse(DEMO).unwrap();
        let wall = |e: &str, s: &str, t: &str| match r.decide(ev(e), &subject(s, t, None)) {
            Decision::Block { rule, block } => Some((rule.to_string(), block.clone())),
            _ => None,
        };
        let (rule, block) = wall(
            "es_OUT",
            "bob@trading.example.com",
            "carol@research.example.com",
        )
        .expect("trader to research");
        assert_eq!(rule, "traders/research");
        assert_eq!(
            block,
            Block::Bounce(ErrorSpec {
                error_type: "cancel".into(),
                condition: "forbidden".into(),
                text: "ethical wall: traders/research".into()
            })
        );
        assert!(wall("es_IN", "analyst7@example.com", "alice@example.com").is_some());
        // Room events: the sender against the room.
        assert!(wall(
            "onBeforeJoin",
            "alice@example.com",
            "research-desk@conference.example.com"
        )
        .is_some());
        assert!(wall(
            "onBeforeJoin",
            "alice@example.com",
            "lobby@conference.example.com"
        )
        .is_none());
        // Not a covered event, or same side.
        assert!(wall(
            "e_SESSION",
            "bob@trading.example.com",
            "carol@research.example.com"
        )
        .is_none());
        assert!(wall(
            "es_OUT",
            "bob@trading.example.com",
            "dan@trading.example.com"
        )
        .is_none());
        // One way only.
        let (rule, block) = wall(
            "es_OUT",
            "bob@trading.example.com",
            "eve@compliance.example.com",
        )
        .expect("one way");
        assert_eq!(
            (rule.as_str(), block),
            ("no-dm-to-compliance", Block::Handle)
        );
        assert!(wall(
            "es_OUT",
            "eve@compliance.example.com",
            "bob@trading.example.com"
        )
        .is_none());
        assert!(wall(
            "es_IN",
            "bob@trading.example.com",
            "eve@compliance.example.com"
        )
        .is_none());
    }

    #[test]
    fn content_rules_block_or_append_after_walls() {
        let r = Rules::parse(DEMO).unwrap();
        let d = r.decide(
            ev("es_OUT"),
            &subject(
                "x@example.com",
                "y@example.com",
                Some("this is INSIDER info"),
            ),
        );
        assert!(
            matches!(d, Decision::Block { rule: "insider", block: Block::Bounce(e) } if e.condition == "policy-violation" && e.error_type == "modify")
        );
        let d = r.decide(
            ev("onBeforeSend"),
            &subject(
                "x@example.com",
                "room@conference.example.com",
                Some("what price?"),
            ),
        );
        assert_eq!(
            d,
            Decision::Append {
                text: " [archived]",
                rule: "disclaimer"
            }
        );
        assert_eq!(
            r.decide(
                ev("es_OUT"),
                &subject("x@example.com", "y@example.com", Some("hello"))
            ),
            Decision::Pass
        );
        assert_eq!(
            r.decide(
                ev("es_OUT"),
                &subject("x@example.com", "y@example.com", None)
            ),
            Decision::Pass
        );
        // A wall wins over content.
        assert!(matches!(
            r.decide(
                ev("es_OUT"),
                &subject("alice@example.com", "analyst1@example.com", Some("price"))
            ),
            Decision::Block {
                rule: "traders/research",
                ..
            }
        ));
        assert!(r.walls_cover(ev("onBeforeInvite")) && !r.walls_cover(ev("onLeave")));
        assert!(r.content_covers(ev("es_IN")) && !r.content_covers(ev("onBeforeJoin")));
    }

    #[test]
    fn the_shipped_demo_rules_load_and_wall_traders_from_research() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../perf/rules/demo-walls.toml");
        let r = Rules::load(&path).unwrap();
        assert!(matches!(
            r.decide(
                ev("es_OUT"),
                &subject(
                    "user1@trading.example.com",
                    "user2@research.example.com",
                    None
                )
            ),
            Decision::Block {
                rule: "trading/research",
                ..
            }
        ));
        assert!(matches!(
            r.decide(
                ev("onBeforeJoin"),
                &subject(
                    "user1@trading.example.com",
                    "room3@conference.trading.example.com",
                    None
                )
            ),
            Decision::Block {
                rule: "traders out of research rooms",
                ..
            }
        ));
        assert_eq!(
            r.decide(
                ev("onBeforeJoin"),
                &subject(
                    "user1@trading.example.com",
                    "room13@conference.trading.example.com",
                    None
                )
            ),
            Decision::Pass
        );
    }

    #[test]
    fn no_rules_pass_everything() {
        let r = Rules::parse("").unwrap();
        assert!(r.is_empty());
        assert_eq!(
            r.decide(ev("es_OUT"), &subject("a@x", "b@y", Some("insider"))),
            Decision::Pass
        );
        assert_eq!(r.summary(), "pass everything");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = |text: &str| Rules::parse(text).unwrap_err().to_string();
        assert!(err("[[wall]]\nbetween = [\"a\", \"b\"]").contains("no group named \"a\""));
        assert!(err("[groups]\na = []\n[[wall]]\nfrom = \"a\"").contains("either between"));
        assert!(err("[groups]\na = [\"re:(\"]").contains("group a: bad pattern"));
        assert!(
            err("[groups]\na=[]\n[[wall]]\nbetween=[\"a\",\"a\"]\nevents=[\"es_OTU\"]")
                .contains("did you mean es_OUT?")
        );
        assert!(
            err("[groups]\na=[]\n[[wall]]\nbetween=[\"a\",\"a\"]\nevents=[\"onAfterJoin\"]")
                .contains("onAfterJoin does not accept an error")
        );
        assert!(err("[[content]]\npattern=\"x\"\naction=\"append\"").contains("needs append"));
        assert!(err("[[content]]\npattern=\"x\"\naction=\"append\"\nappend=\"!\"\nevents=[\"onAfterSubject\"]")
            .contains("does not accept a modified stanza"));
        assert!(
            err("[[content]]\npattern=\"x\"\naction=\"zap\"").contains("bounce, handle or append")
        );
        assert!(err("[[content]]\npattern=\"x\"\ncondition=\"nope\"").contains("not an RFC 6120"));
        assert!(err("[[content]]\npattern=\"x\"\ntype=\"later\"").contains("error type"));
        assert!(err("[[content]]\npattern=\"(\"").contains("bad pattern"));
        assert!(err("[[wall]]\nbogus = 1").contains("unknown field"));
    }
}
