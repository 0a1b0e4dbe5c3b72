//! A tenant's recording file-name pattern, such as `{year}/{month}/{day}/{call}.wav` or
//! `q-{queue}-*-{call}.wav`, and how it turns one call into the path of its recording.
//!
//! Both the pattern (typed by an admin) and the values put into it (from PBX events) are
//! untrusted, so neither may ever lead outside the recordings folder.

use chrono::{Datelike, Timelike};
use std::fmt;

/// Longest pattern accepted: real layouts are a few folders deep, and a cap keeps error
/// messages and rendered paths bounded.
pub const MAX_PATTERN_CHARS: usize = 300;

/// A value a pattern can put into a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Call,
    /// Asterisk's own name for the call id; kept apart from `Call` so errors quote what the
    /// admin wrote.
    UniqueId,
    Queue,
    Agent,
    Caller,
    Destination,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

impl Field {
    const ALL: [Field; 12] = [
        Field::Call,
        Field::UniqueId,
        Field::Queue,
        Field::Agent,
        Field::Caller,
        Field::Destination,
        Field::Year,
        Field::Month,
        Field::Day,
        Field::Hour,
        Field::Minute,
        Field::Second,
    ];

    /// The placeholder as written in a pattern, braces included.
    pub fn placeholder(self) -> &'static str {
        match self {
            Field::Call => "{call}",
            Field::UniqueId => "{uniqueid}",
            Field::Queue => "{queue}",
            Field::Agent => "{agent}",
            Field::Caller => "{caller}",
            Field::Destination => "{destination}",
            Field::Year => "{year}",
            Field::Month => "{month}",
            Field::Day => "{day}",
            Field::Hour => "{hour}",
            Field::Minute => "{minute}",
            Field::Second => "{second}",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| {
            let placeholder = field.placeholder();
            placeholder.strip_prefix('{').and_then(|inner| inner.strip_suffix('}')) == Some(name)
        })
    }

    /// The text this field stands for in one call's path.
    fn value(self, facts: &CallFacts<'_>) -> Result<String, RenderError> {
        let started = &facts.started_at;
        let text = match self {
            Field::Call | Field::UniqueId => Some(facts.call),
            Field::Queue => facts.queue,
            Field::Agent => facts.agent,
            Field::Caller => facts.caller,
            Field::Destination => facts.destination,
            Field::Year => return Ok(format!("{:04}", started.year())),
            Field::Month => return Ok(format!("{:02}", started.month())),
            Field::Day => return Ok(format!("{:02}", started.day())),
            Field::Hour => return Ok(format!("{:02}", started.hour())),
            Field::Minute => return Ok(format!("{:02}", started.minute())),
            Field::Second => return Ok(format!("{:02}", started.second())),
        };
        let text = text.ok_or(RenderError::Missing { field: self })?;
        if is_unsafe_value(text) {
            return Err(RenderError::UnsafeValue {
                field: self,
                value: text.to_owned(),
            });
        }
        Ok(text.to_owned())
    }
}

impl fmt::Display for Field {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.placeholder())
    }
}

/// A value from a PBX event that could change which folder a path points into, or that no
/// file system would accept.
fn is_unsafe_value(value: &str) -> bool {
    value.is_empty()
        || value == "."
        || value.contains("..")
        || value.chars().any(|ch| ch == '/' || ch == '\\' || ch.is_control())
}

/// Why an admin's recording pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the recording pattern is empty")]
    Empty,
    #[error("the recording pattern is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the recording pattern must be relative to the recordings folder: remove the leading `/`")]
    Absolute,
    #[error("the recording pattern may not contain `\\`: separate folders with `/`")]
    Backslash,
    #[error("the recording pattern may not contain control characters")]
    ControlCharacter,
    #[error("the recording pattern may not go up a directory (`..`)")]
    ParentDirectory,
    #[error("the recording pattern may not use `.` as a folder or file name")]
    CurrentDirectory,
    #[error("the recording pattern has an empty folder or file name (`//`, or a `/` at the end)")]
    EmptySegment,
    #[error(
        "unknown field `{{{name}}}` in the recording pattern: use {{call}}, {{uniqueid}}, {{queue}}, {{agent}}, {{caller}}, {{destination}}, {{year}}, {{month}}, {{day}}, {{hour}}, {{minute}}, {{second}}"
    )]
    UnknownField { name: String },
    #[error("the `{{` at `{fragment}` in the recording pattern is never closed with `}}`")]
    UnclosedBrace { fragment: String },
    #[error("the recording pattern has a `}}` without a matching `{{`")]
    StrayBrace,
    #[error("the wildcard `*` may only be used in the file name, not in a folder name")]
    WildcardNotLast,
    #[error("the recording pattern may contain at most one wildcard `*`")]
    MultipleWildcards,
    #[error("the recording pattern needs at least one field such as {{call}}, or every call would get the same file")]
    NoField,
}

/// Why one call's recording path could not be worked out from the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("the recording pattern uses `{field}` but this call has no value for it")]
    Missing { field: Field },
    #[error("this call's value for `{field}` ({value:?}) cannot be used in a file path")]
    UnsafeValue { field: Field, value: String },
    #[error("the recording path for this call would contain the folder or file name {segment:?}")]
    UnsafePath { segment: String },
}

/// One piece of a folder or file name in the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(Field),
    /// Any run of characters other than `/`; only ever in the file name.
    Wildcard,
}

/// A validated recording file-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    folders: Vec<Vec<Piece>>,
    /// Kept apart from the folders so a pattern always has a file name by construction.
    file: Vec<Piece>,
}

/// What a pattern needs to know about one call. Strings come straight from PBX events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts<'a> {
    pub call: &'a str,
    pub queue: Option<&'a str>,
    pub agent: Option<&'a str>,
    pub caller: Option<&'a str>,
    pub destination: Option<&'a str>,
    /// Already in the tenant's time zone: the date fields read it as is.
    pub started_at: chrono::DateTime<chrono::FixedOffset>,
}

/// The last path segment of a call's recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileName {
    Exact(String),
    /// The pattern had a `*`: the file is found by listing the folder.
    Wildcard {
        prefix: String,
        suffix: String,
    },
}

/// Where one call's recording is, relative to the recordings folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The folders before the file name, joined by `/`; empty when the file is at the top.
    pub directory: String,
    pub file: FileName,
}

impl Rendered {
    /// The full relative path, when the file name is known without listing the folder.
    pub fn exact_path(&self) -> Option<String> {
        match &self.file {
            FileName::Exact(name) if self.directory.is_empty() => Some(name.clone()),
            FileName::Exact(name) => Some(format!("{}/{}", self.directory, name)),
            FileName::Wildcard { .. } => None,
        }
    }

    /// Whether `file_name`, the last segment of a file listed in `directory`, is this call's
    /// recording.
    pub fn matches(&self, file_name: &str) -> bool {
        // A listing should never yield these, but a match must never point outside the folder.
        if file_name.is_empty() || file_name == "." || file_name == ".." || file_name.contains('/') {
            return false;
        }
        match &self.file {
            FileName::Exact(name) => name == file_name,
            FileName::Wildcard { prefix, suffix } => {
                // The length check stops prefix and suffix from overlapping in a short name.
                file_name.len() >= prefix.len() + suffix.len()
                    && file_name.starts_with(prefix.as_str())
                    && file_name.ends_with(suffix.as_str())
            }
        }
    }
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.chars().count() > MAX_PATTERN_CHARS {
            return Err(PatternError::TooLong { max: MAX_PATTERN_CHARS });
        }
        if text.starts_with('/') {
            return Err(PatternError::Absolute);
        }
        if text.contains('\\') {
            return Err(PatternError::Backslash);
        }
        if text.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter);
        }

        let segment_count = text.split('/').count();
        let mut segments = Vec::with_capacity(segment_count);
        let mut wildcards = 0usize;
        for (index, segment) in text.split('/').enumerate() {
            if segment.is_empty() {
                return Err(PatternError::EmptySegment);
            }
            let pieces = parse_segment(segment)?;
            let segment_wildcards = pieces.iter().filter(|piece| **piece == Piece::Wildcard).count();
            if segment_wildcards > 0 && index + 1 < segment_count {
                return Err(PatternError::WildcardNotLast);
            }
            wildcards += segment_wildcards;
            if wildcards > 1 {
                return Err(PatternError::MultipleWildcards);
            }
            check_literals(&pieces)?;
            segments.push(pieces);
        }

        let has_field = segments.iter().flatten().any(|piece| matches!(piece, Piece::Field(_)));
        if !has_field {
            return Err(PatternError::NoField);
        }
        let file = segments.pop().ok_or(PatternError::Empty)?;
        Ok(Pattern {
            text: text.to_owned(),
            folders: segments,
            file,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether finding a recording needs a folder listing rather than a single lookup.
    pub fn has_wildcard(&self) -> bool {
        self.file.contains(&Piece::Wildcard)
    }

    /// Where the recording of the call described by `facts` is, relative to the recordings
    /// folder.
    pub fn render(&self, facts: &CallFacts<'_>) -> Result<Rendered, RenderError> {
        let mut folders = Vec::with_capacity(self.folders.len());
        for pieces in &self.folders {
            let mut folder = String::new();
            for piece in pieces {
                append_piece(piece, facts, &mut folder)?;
            }
            check_rendered_segment(&folder)?;
            folders.push(folder);
        }

        let mut prefix = String::new();
        let mut suffix = String::new();
        let mut after_wildcard = false;
        for piece in &self.file {
            if *piece == Piece::Wildcard {
                after_wildcard = true;
                continue;
            }
            let target = if after_wildcard { &mut suffix } else { &mut prefix };
            append_piece(piece, facts, target)?;
        }
        let file = if after_wildcard {
            FileName::Wildcard { prefix, suffix }
        } else {
            check_rendered_segment(&prefix)?;
            FileName::Exact(prefix)
        };

        Ok(Rendered {
            directory: folders.join("/"),
            file,
        })
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// Splits one folder or file name of the pattern into literal text, fields and the wildcard.
fn parse_segment(segment: &str) -> Result<Vec<Piece>, PatternError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = segment;
    while let Some(ch) = rest.chars().next() {
        match ch {
            '{' => {
                let after_open = &rest[1..];
                let brace = after_open.find(['{', '}']);
                match brace {
                    Some(close) if after_open[close..].starts_with('}') => {
                        let name = &after_open[..close];
                        let field = Field::from_name(name)
                            .ok_or_else(|| PatternError::UnknownField { name: name.to_owned() })?;
                        flush_literal(&mut literal, &mut pieces);
                        pieces.push(Piece::Field(field));
                        rest = &after_open[close + 1..];
                    }
                    _ => {
                        return Err(PatternError::UnclosedBrace {
                            fragment: rest.to_owned(),
                        });
                    }
                }
            }
            '}' => return Err(PatternError::StrayBrace),
            '*' => {
                flush_literal(&mut literal, &mut pieces);
                pieces.push(Piece::Wildcard);
                rest = &rest[1..];
            }
            other => {
                literal.push(other);
                rest = &rest[other.len_utf8()..];
            }
        }
    }
    flush_literal(&mut literal, &mut pieces);
    Ok(pieces)
}

fn flush_literal(literal: &mut String, pieces: &mut Vec<Piece>) {
    if !literal.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(literal)));
    }
}

/// Refuses `.` and `..` written into the pattern itself. `..` is refused anywhere in literal
/// text, not only as a whole segment, so no later change in how values are joined can turn it
/// into a way up.
fn check_literals(pieces: &[Piece]) -> Result<(), PatternError> {
    for piece in pieces {
        if let Piece::Literal(text) = piece
            && text.contains("..")
        {
            return Err(PatternError::ParentDirectory);
        }
    }
    if let [Piece::Literal(text)] = pieces
        && text == "."
    {
        return Err(PatternError::CurrentDirectory);
    }
    Ok(())
}

fn append_piece(piece: &Piece, facts: &CallFacts<'_>, out: &mut String) -> Result<(), RenderError> {
    match piece {
        Piece::Literal(text) => out.push_str(text),
        Piece::Field(field) => out.push_str(&field.value(facts)?),
        // Parsing keeps the wildcard out of folders, and the file name handles it itself.
        Piece::Wildcard => {}
    }
    Ok(())
}

/// A last check on the finished path: values and literals are checked on their own, and this
/// catches any combination of them that still lands on a special name.
fn check_rendered_segment(segment: &str) -> Result<(), RenderError> {
    if segment.is_empty() || segment == "." || segment == ".." || segment.contains('/') {
        return Err(RenderError::UnsafePath {
            segment: segment.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, FixedOffset, TimeZone, Utc};

    fn at(
        offset_hours: i32,
        year: i32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
    ) -> DateTime<FixedOffset> {
        FixedOffset::east_opt(offset_hours * 3600)
            .expect("valid offset")
            .with_ymd_and_hms(year, month, day, hour, minute, second)
            .single()
            .expect("valid date")
    }

    fn facts() -> CallFacts<'static> {
        CallFacts {
            call: "1700000000.42",
            queue: Some("sales"),
            agent: Some("alice"),
            caller: Some("+3225551234"),
            destination: Some("1001"),
            started_at: at(2, 2024, 3, 5, 7, 8, 9),
        }
    }

    fn parse_err(text: &str) -> PatternError {
        match Pattern::parse(text) {
            Ok(pattern) => panic!("{text:?} was accepted as {pattern:?}"),
            Err(error) => error,
        }
    }

    fn render(text: &str, facts: &CallFacts<'_>) -> Result<Rendered, RenderError> {
        Pattern::parse(text).expect("pattern parses").render(facts)
    }

    #[test]
    fn date_folders_with_call_file() {
        let rendered = render("{year}/{month}/{day}/{call}.wav", &facts()).expect("renders");
        assert_eq!(rendered.directory, "2024/03/05");
        assert_eq!(rendered.file, FileName::Exact("1700000000.42.wav".to_owned()));
        assert_eq!(rendered.exact_path().as_deref(), Some("2024/03/05/1700000000.42.wav"));
    }

    #[test]
    fn time_fields_are_zero_padded() {
        let rendered = render("{hour}{minute}{second}-{call}", &facts()).expect("renders");
        assert_eq!(rendered.directory, "");
        assert_eq!(rendered.exact_path().as_deref(), Some("070809-1700000000.42"));
    }

    #[test]
    fn year_is_four_digits() {
        let mut early = facts();
        early.started_at = at(0, 999, 1, 1, 0, 0, 0);
        let rendered = render("{year}/{call}", &early).expect("renders");
        assert_eq!(rendered.directory, "0999");
    }

    #[test]
    fn date_fields_follow_the_given_zone() {
        let utc = Utc
            .with_ymd_and_hms(2024, 12, 31, 23, 30, 0)
            .single()
            .expect("valid date");
        let mut late = facts();
        late.started_at = utc.with_timezone(&FixedOffset::east_opt(2 * 3600).expect("valid offset"));
        let rendered = render("{year}/{month}/{day}/{hour}/{call}", &late).expect("renders");
        assert_eq!(rendered.directory, "2025/01/01/01");
    }

    #[test]
    fn uniqueid_is_the_call_id() {
        let rendered = render("{uniqueid}.wav", &facts()).expect("renders");
        assert_eq!(rendered.exact_path().as_deref(), Some("1700000000.42.wav"));
    }

    #[test]
    fn all_text_fields_render() {
        let rendered = render("{queue}/{agent}/{caller}-{destination}-{call}.wav", &facts()).expect("renders");
        assert_eq!(
            rendered.exact_path().as_deref(),
            Some("sales/alice/+3225551234-1001-1700000000.42.wav")
        );
    }

    #[test]
    fn wildcard_file_name() {
        let pattern = Pattern::parse("q-{queue}-*-{call}.wav").expect("parses");
        assert!(pattern.has_wildcard());
        let rendered = pattern.render(&facts()).expect("renders");
        assert_eq!(rendered.directory, "");
        assert_eq!(
            rendered.file,
            FileName::Wildcard {
                prefix: "q-sales-".to_owned(),
                suffix: "-1700000000.42.wav".to_owned(),
            }
        );
        assert_eq!(rendered.exact_path(), None);
        assert!(rendered.matches("q-sales-20240305-070809-1700000000.42.wav"));
        assert!(rendered.matches("q-sales--1700000000.42.wav"));
        assert!(!rendered.matches("q-sales-1700000000.42.wav"));
        assert!(!rendered.matches("q-support-x-1700000000.42.wav"));
        assert!(!rendered.matches("q-sales-x-1700000000.43.wav"));
        assert!(!rendered.matches("q-sales-a/b-1700000000.42.wav"));
    }

    #[test]
    fn wildcard_alone_as_file_name() {
        let rendered = render("{call}/*", &facts()).expect("renders");
        assert_eq!(rendered.directory, "1700000000.42");
        assert!(rendered.matches("anything.wav"));
        assert!(!rendered.matches(""));
        assert!(!rendered.matches("."));
        assert!(!rendered.matches(".."));
    }

    #[test]
    fn wildcard_at_the_start_and_end() {
        let start = render("*{call}.wav", &facts()).expect("renders");
        assert!(start.matches("x-1700000000.42.wav"));
        assert!(start.matches("1700000000.42.wav"));
        let end = render("{call}*", &facts()).expect("renders");
        assert!(end.matches("1700000000.42-in.wav"));
        assert!(!end.matches("x1700000000.42"));
    }

    #[test]
    fn exact_match_is_equality() {
        let rendered = render("{call}.wav", &facts()).expect("renders");
        assert!(rendered.matches("1700000000.42.wav"));
        assert!(!rendered.matches("1700000000.42.wav.bak"));
        assert!(!rendered.matches("1700000000.42.WAV"));
    }

    #[test]
    fn keeps_the_text_it_was_given() {
        let text = "{year}/{month}/{call}-*.wav";
        let pattern = Pattern::parse(text).expect("parses");
        assert_eq!(pattern.as_str(), text);
        assert_eq!(pattern.to_string(), text);
        assert!(!Pattern::parse("{call}.wav").expect("parses").has_wildcard());
    }

    #[test]
    fn accepts_unicode_and_leading_dot_in_literals() {
        assert!(Pattern::parse("appels-é/{call}.wav").is_ok());
        assert!(Pattern::parse(".{call}").is_ok());
        assert!(Pattern::parse("a.b/{call}.x.wav").is_ok());
        assert!(Pattern::parse("{call}{queue}").is_ok());
    }

    #[test]
    fn refuses_empty_and_too_long() {
        assert_eq!(parse_err(""), PatternError::Empty);
        let limit = format!("{{call}}{}", "a".repeat(MAX_PATTERN_CHARS - "{call}".len()));
        assert!(Pattern::parse(&limit).is_ok());
        let over = format!("{limit}a");
        assert_eq!(parse_err(&over), PatternError::TooLong { max: MAX_PATTERN_CHARS });
        // Characters, not bytes, are counted.
        let accented = format!("{{call}}{}", "é".repeat(MAX_PATTERN_CHARS - "{call}".len()));
        assert!(Pattern::parse(&accented).is_ok());
    }

    #[test]
    fn refuses_absolute_backslash_and_control_characters() {
        assert_eq!(parse_err("/var/spool/{call}.wav"), PatternError::Absolute);
        assert_eq!(parse_err("a\\{call}.wav"), PatternError::Backslash);
        assert_eq!(parse_err("a\0{call}.wav"), PatternError::ControlCharacter);
        assert_eq!(parse_err("a\n{call}.wav"), PatternError::ControlCharacter);
        assert_eq!(parse_err("a\u{7f}{call}.wav"), PatternError::ControlCharacter);
    }

    #[test]
    fn refuses_dot_segments() {
        assert_eq!(parse_err("../{call}.wav"), PatternError::ParentDirectory);
        assert_eq!(parse_err("a/../{call}.wav"), PatternError::ParentDirectory);
        assert_eq!(parse_err("a/.."), PatternError::ParentDirectory);
        assert_eq!(parse_err("..{call}"), PatternError::ParentDirectory);
        assert_eq!(parse_err("{call}..wav"), PatternError::ParentDirectory);
        assert_eq!(parse_err("./{call}.wav"), PatternError::CurrentDirectory);
        assert_eq!(parse_err("{call}/."), PatternError::CurrentDirectory);
    }

    #[test]
    fn refuses_empty_segments() {
        assert_eq!(parse_err("a//{call}.wav"), PatternError::EmptySegment);
        assert_eq!(parse_err("{call}/"), PatternError::EmptySegment);
        assert_eq!(parse_err("{call}//"), PatternError::EmptySegment);
    }

    #[test]
    fn refuses_unknown_fields() {
        assert_eq!(
            parse_err("{foo}.wav"),
            PatternError::UnknownField { name: "foo".to_owned() }
        );
        assert_eq!(
            parse_err("{}{call}"),
            PatternError::UnknownField { name: String::new() }
        );
        // Field names are exact: no case folding, no spaces.
        assert_eq!(
            parse_err("{Call}.wav"),
            PatternError::UnknownField {
                name: "Call".to_owned()
            }
        );
        assert_eq!(
            parse_err("{ call }.wav"),
            PatternError::UnknownField {
                name: " call ".to_owned()
            }
        );
        assert_eq!(
            PatternError::UnknownField { name: "foo".to_owned() }.to_string(),
            "unknown field `{foo}` in the recording pattern: use {call}, {uniqueid}, {queue}, {agent}, {caller}, {destination}, {year}, {month}, {day}, {hour}, {minute}, {second}"
        );
    }

    #[test]
    fn refuses_unbalanced_braces() {
        assert_eq!(
            parse_err("x-{call"),
            PatternError::UnclosedBrace {
                fragment: "{call".to_owned()
            }
        );
        assert_eq!(
            parse_err("{call/x}.wav"),
            PatternError::UnclosedBrace {
                fragment: "{call".to_owned()
            }
        );
        assert_eq!(
            parse_err("{ca{call}"),
            PatternError::UnclosedBrace {
                fragment: "{ca{call}".to_owned()
            }
        );
        assert_eq!(parse_err("call}.wav"), PatternError::StrayBrace);
        assert_eq!(parse_err("{call}}.wav"), PatternError::StrayBrace);
    }

    #[test]
    fn refuses_misplaced_wildcards() {
        assert_eq!(parse_err("*/{call}.wav"), PatternError::WildcardNotLast);
        assert_eq!(parse_err("a*b/{call}.wav"), PatternError::WildcardNotLast);
        assert_eq!(parse_err("{call}-*-*.wav"), PatternError::MultipleWildcards);
        assert_eq!(parse_err("{call}**"), PatternError::MultipleWildcards);
    }

    #[test]
    fn needs_a_field() {
        assert_eq!(parse_err("recording.wav"), PatternError::NoField);
        assert_eq!(parse_err("*.wav"), PatternError::NoField);
        assert!(Pattern::parse("{year}/{month}/*.wav").is_ok());
        assert!(Pattern::parse("{queue}.wav").is_ok());
    }

    #[test]
    fn error_messages_read_well() {
        assert_eq!(
            PatternError::ParentDirectory.to_string(),
            "the recording pattern may not go up a directory (`..`)"
        );
        assert_eq!(
            PatternError::UnclosedBrace {
                fragment: "{call".to_owned()
            }
            .to_string(),
            "the `{` at `{call` in the recording pattern is never closed with `}`"
        );
        assert_eq!(
            RenderError::Missing { field: Field::Queue }.to_string(),
            "the recording pattern uses `{queue}` but this call has no value for it"
        );
        assert_eq!(
            RenderError::UnsafeValue {
                field: Field::Call,
                value: "../x".to_owned()
            }
            .to_string(),
            "this call's value for `{call}` (\"../x\") cannot be used in a file path"
        );
    }

    #[test]
    fn missing_values() {
        let mut outside_queues = facts();
        outside_queues.queue = None;
        assert_eq!(
            render("{queue}/{call}.wav", &outside_queues),
            Err(RenderError::Missing { field: Field::Queue })
        );
        // A field the pattern does not use may be missing.
        assert!(render("{call}.wav", &outside_queues).is_ok());

        let mut bare = facts();
        bare.agent = None;
        bare.caller = None;
        bare.destination = None;
        assert_eq!(
            render("{call}-{agent}", &bare),
            Err(RenderError::Missing { field: Field::Agent })
        );
        assert_eq!(
            render("{call}-{caller}", &bare),
            Err(RenderError::Missing { field: Field::Caller })
        );
        assert_eq!(
            render("{call}-*-{destination}", &bare),
            Err(RenderError::Missing {
                field: Field::Destination
            })
        );
    }

    #[test]
    fn unsafe_values_cannot_escape() {
        for value in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "a\\b",
            "a..b",
            "a\0b",
            "a\nb",
            "/abs",
        ] {
            let mut hostile = facts();
            hostile.call = value;
            assert_eq!(
                render("{year}/{call}.wav", &hostile),
                Err(RenderError::UnsafeValue {
                    field: Field::Call,
                    value: value.to_owned()
                }),
                "{value:?}"
            );
        }
        let mut hostile = facts();
        hostile.queue = Some("..");
        assert_eq!(
            render("q-{queue}-*", &hostile),
            Err(RenderError::UnsafeValue {
                field: Field::Queue,
                value: "..".to_owned()
            })
        );
        let mut channel = facts();
        channel.agent = Some("SIP/1001");
        assert_eq!(
            render("{agent}/{call}", &channel),
            Err(RenderError::UnsafeValue {
                field: Field::Agent,
                value: "SIP/1001".to_owned()
            })
        );
        let mut aliased = facts();
        aliased.call = "..";
        assert_eq!(
            render("{uniqueid}", &aliased),
            Err(RenderError::UnsafeValue {
                field: Field::UniqueId,
                value: "..".to_owned()
            })
        );
    }

    #[test]
    fn values_with_single_dots_are_fine() {
        let mut dotted = facts();
        dotted.call = ".hidden";
        let rendered = render("{call}", &dotted).expect("renders");
        assert_eq!(rendered.exact_path().as_deref(), Some(".hidden"));
        dotted.call = "a.b.c";
        let rendered = render("{call}.wav", &dotted).expect("renders");
        assert_eq!(rendered.exact_path().as_deref(), Some("a.b.c.wav"));
    }

    #[test]
    fn rendered_segments_are_checked() {
        assert!(check_rendered_segment("..").is_err());
        assert!(check_rendered_segment(".").is_err());
        assert!(check_rendered_segment("").is_err());
        assert!(check_rendered_segment("a/b").is_err());
        assert!(check_rendered_segment(".x").is_ok());
    }

    #[test]
    fn literal_dot_next_to_a_value_stays_inside() {
        let mut dotted = facts();
        dotted.call = ".x";
        // "." + ".x" is "..x": an odd name, but not a way up.
        let rendered = render(".{call}", &dotted).expect("renders");
        assert_eq!(rendered.exact_path().as_deref(), Some("..x"));
    }
}
