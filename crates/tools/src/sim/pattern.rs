//! JID patterns for the simulator's groups: a glob on the bare JID (`*@trading.example.com`,
//! `analyst?@example.com`, `alice@example.com`) or a regular expression written `re:...`.
//!
//! Matching is against the folded bare JID (the conversation key's form) and ignores ASCII
//! case, as JIDs compare (docs/protocol.md §2). One group compiles to one anchored regular
//! expression, so a membership test is a single match. Must not know what groups are for.

use regex::Regex;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError {
    pub pattern: String,
    pub message: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad pattern {:?}: {}", self.pattern, self.message)
    }
}

impl std::error::Error for PatternError {}

/// The regular-expression text of one pattern, unanchored.
pub fn pattern_regex(pattern: &str) -> Result<String, PatternError> {
    if let Some(re) = pattern.strip_prefix("re:") {
        // Checked on its own so that an error names this pattern, not the whole group.
        Regex::new(re).map_err(|e| PatternError {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
        return Ok(re.to_string());
    }
    if pattern.is_empty() {
        return Err(PatternError {
            pattern: pattern.to_string(),
            message: "empty pattern".to_string(),
        });
    }
    let mut out = String::with_capacity(pattern.len() * 2);
    let mut literal = String::new();
    for c in pattern.chars() {
        match c {
            '*' | '?' => {
                out.push_str(&regex::escape(&literal));
                literal.clear();
                out.push_str(if c == '*' { ".*" } else { "." });
            }
            c => literal.push(c),
        }
    }
    out.push_str(&regex::escape(&literal));
    Ok(out)
}

/// A set of patterns compiled into one case-insensitive, anchored expression.
#[derive(Clone, Debug)]
pub struct JidSet {
    regex: Regex,
}

impl JidSet {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<JidSet, PatternError> {
        let parts = patterns
            .iter()
            .map(|p| pattern_regex(p.as_ref()).map(|r| format!("(?:{r})")))
            .collect::<Result<Vec<_>, _>>()?;
        // An empty group matches nothing.
        let body = if parts.is_empty() {
            "[^\\s\\S]".to_string()
        } else {
            parts.join("|")
        };
        let regex = Regex::new(&format!("(?i)^(?:{body})$")).map_err(|e| PatternError {
            pattern: patterns
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            message: e.to_string(),
        })?;
        Ok(JidSet { regex })
    }

    /// Whether the bare JID `jid` is in the set.
    pub fn contains(&self, jid: &str) -> bool {
        self.regex.is_match(jid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_bare_jids_case_insensitively() {
        let set = JidSet::new(&[
            "*@trading.example.com",
            "alice@example.com",
            "desk?@example.com",
        ])
        .unwrap();
        assert!(set.contains("bob@trading.example.com"));
        assert!(set.contains("Bob@Trading.Example.com"));
        assert!(set.contains("alice@example.com"));
        assert!(set.contains("desk7@example.com"));
        assert!(!set.contains("desk77@example.com"));
        assert!(!set.contains("alice@example.com.evil"));
        assert!(!set.contains("bob@trading.example.com.au"));
        // Dots are literal in globs.
        assert!(!set.contains("bob@tradingXexample.com"));
    }

    #[test]
    fn regexes_and_errors() {
        let set = JidSet::new(&[r"re:analyst[0-9]+@example\.com"]).unwrap();
        assert!(set.contains("analyst42@example.com"));
        assert!(!set.contains("analyst@example.com"));
        // Anchored even when the expression is not.
        assert!(!set.contains("xanalyst1@example.com"));
        let err = JidSet::new(&["re:("]).unwrap_err();
        assert_eq!(err.pattern, "re:(");
        assert!(JidSet::new(&[""]).is_err());
        let empty = JidSet::new::<&str>(&[]).unwrap();
        assert!(!empty.contains("anyone@example.com"));
        assert!(!empty.contains(""));
    }
}
