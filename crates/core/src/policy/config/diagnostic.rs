//! Located configuration diagnostics (`FILE:LINE:COL: error: message` plus an optional hint)
//! and the collector the loader and validator share.
//!
//! This file owns positions and presentation; it must not decide what is wrong with a
//! configuration (load.rs and validate.rs do).

use std::fmt;

/// How bad a configuration problem is: an error refuses the file, a warning is reported and the
/// file still loads.
#[derive(Copy, Clone, Debug, Eq, PartialEq, Ord, PartialOrd)]
pub enum Severity {
    /// The file is refused: `check-config` exits 1, a start stops, a reload keeps the running
    /// configuration.
    Error,
    /// Reported, but the file loads: valid, yet probably not what the administrator meant.
    Warning,
}

impl Severity {
    /// The word `check-config` and the log print before the message: `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found in a configuration file. `line` and `col` are 1-based (columns count
/// characters); both are 0 when the problem is about the file as a whole.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Diagnostic {
    /// Whether the problem refuses the file.
    pub severity: Severity,
    /// The configuration file as it was named (or the embedded default's name), for
    /// `FILE:LINE:COL`.
    pub file: String,
    /// 1-based line of the offending key or value; 0 when the problem is about the whole file.
    pub line: usize,
    /// 1-based column (in characters) on that line; 0 with line 0.
    pub col: usize,
    /// What is wrong, in the administrator's terms (the key, the value, the rule it breaks).
    pub message: String,
    /// How to fix it, when there is a likely fix (such as the nearest valid spelling).
    pub hint: Option<String>,
}

impl Diagnostic {
    /// True when this problem refuses the file.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.file,
                self.severity.as_str(),
                self.message
            )?;
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file,
                self.line,
                self.col,
                self.severity.as_str(),
                self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n    hint: {hint}")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one source text, turning byte offsets into line and column.
pub(crate) struct Diags<'s> {
    file: &'s str,
    source: &'s str,
    line_starts: Vec<usize>,
    items: Vec<Diagnostic>,
}

impl<'s> Diags<'s> {
    pub(crate) fn new(file: &'s str, source: &'s str) -> Diags<'s> {
        let line_starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Diags {
            file,
            source,
            line_starts,
            items: Vec::new(),
        }
    }

    /// 1-based line and character column of byte offset `at` (clamped into the text).
    pub(crate) fn position(&self, at: usize) -> (usize, usize) {
        let at = at.min(self.source.len());
        let line = self
            .line_starts
            .partition_point(|&start| start <= at)
            .max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .source
            .get(start..at)
            .map_or(at - start, |s| s.chars().count())
            + 1;
        (line, col)
    }

    pub(crate) fn push(
        &mut self,
        severity: Severity,
        at: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, col) = self.position(at);
        self.items.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
            hint,
        });
    }

    pub(crate) fn error(&mut self, at: usize, message: impl Into<String>) {
        self.push(Severity::Error, at, message, None);
    }

    pub(crate) fn error_hint(
        &mut self,
        at: usize,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Error, at, message, Some(hint.into()));
    }

    pub(crate) fn warning(&mut self, at: usize, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, at, message, hint);
    }

    /// A warning about the file as a whole, shown without a position.
    pub(crate) fn file_warning(&mut self, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Warning,
            file: self.file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
            hint: None,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    /// All diagnostics in file order (errors before warnings at the same spot).
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| (d.line, d.col, d.severity));
        self.items
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&lower, &c.to_lowercase()), c))
        .filter(|&(distance, c)| distance <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, c)| c)
}

/// The candidate closest to `word`, however far: for names that must be one of a fixed list.
pub fn nearest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let lower = word.to_lowercase();
    candidates
        .into_iter()
        .min_by_key(|c| strsim::damerau_levenshtein(&lower, &c.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let d = Diags::new("f", "ab\nçd = 1\n\nx");
        assert_eq!(d.position(0), (1, 1));
        assert_eq!(d.position(1), (1, 2));
        assert_eq!(d.position(3), (2, 1));
        assert_eq!(d.position(6), (2, 3), "ç is one column though two bytes");
        assert_eq!(d.position(11), (3, 1));
        assert_eq!(d.position(12), (4, 1));
        assert_eq!(d.position(999), (4, 2));
    }

    #[test]
    fn display_with_and_without_hint_and_position() {
        let mut d = Diags::new("c.toml", "a\nb = 1\n");
        d.error_hint(2, "something is wrong", "fix it");
        d.warning(0, "careful", None);
        let items = d.into_sorted();
        assert_eq!(items[0].to_string(), "c.toml:1:1: warning: careful");
        assert_eq!(
            items[1].to_string(),
            "c.toml:2:1: error: something is wrong\n    hint: fix it"
        );
        let whole = Diagnostic {
            line: 0,
            col: 0,
            ..items[0].clone()
        };
        assert_eq!(whole.to_string(), "c.toml: warning: careful");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("prot", ["port", "host", "name"]), Some("port"));
        assert_eq!(did_you_mean("zzzzzz", ["port", "host"]), None);
        assert_eq!(did_you_mean("es_OUTT", ["es_OUT", "es_IN"]), Some("es_OUT"));
        assert_eq!(nearest("ES_out", ["e_AUTH", "es_OUT"]), Some("es_OUT"));
        assert_eq!(
            nearest("onBeforeFoo", ["es_OUT", "onBeforeJoin"]),
            Some("onBeforeJoin")
        );
    }
}
