//! Backfilling history from a PBX's files: `monti import cdr` (Asterisk's Master.csv) and
//! `monti import queue-log` (app_queue's queue_log). Both read line by line, report every line
//! they cannot use with its number and why, store each good line once (importing a file again
//! adds nothing), and show progress while they go.

pub mod cdr;
pub mod queue_log;

use std::io::Write as _;

/// A line that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// 1-based.
    pub line: usize,
    pub why: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Non-empty lines read.
    pub lines: usize,
    /// Records (or events) stored now.
    pub added: u64,
    /// Records already there from an earlier import.
    pub already: u64,
    pub refused: Vec<Refused>,
}

/// The file's non-empty lines with their 1-based numbers, and a report that counts them.
pub fn numbered_lines(text: &str) -> (Vec<(usize, &str)>, Report) {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let report = Report {
        lines: lines.len(),
        ..Report::default()
    };
    (lines, report)
}

/// Progress on a terminal: one line rewritten in place, at most every 100 ms.
pub struct Progress {
    what: &'static str,
    total: usize,
    shown: std::time::Instant,
    enabled: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: usize, enabled: bool) -> Self {
        Self {
            what,
            total,
            shown: std::time::Instant::now(),
            enabled,
        }
    }

    pub fn show(&mut self, done: usize) {
        if !self.enabled || (self.shown.elapsed().as_millis() < 100 && done < self.total) {
            return;
        }
        self.shown = std::time::Instant::now();
        let width = 30;
        let filled = (done * width).checked_div(self.total).unwrap_or(width);
        eprint!(
            "\r{} [{}{}] {done}/{} lines",
            self.what,
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        let _ = std::io::stderr().flush();
        if done >= self.total {
            eprintln!();
        }
    }
}

/// A line of comma-separated values as `cdr_csv` writes them: strings in double quotes (a quote
/// inside doubled), numbers and empty dates bare.
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(format!("field {} has no closing quote", fields.len() + 1)),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => {}
                Some(c) => return Err(format!("`{c}` after the quoted field {}", fields.len() + 1)),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some(c) => field.push(c),
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                }
            }
        }
        fields.push(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_with_doubled_quotes_and_bare_numbers() {
        let fields = csv_fields(r#""","a,b","""Ana"" <1001>",10,,"x""#).unwrap();
        assert_eq!(fields, ["", "a,b", "\"Ana\" <1001>", "10", "", "x"]);
        assert!(csv_fields(r#""open"#).unwrap_err().contains("no closing quote"));
        assert!(csv_fields(r#""a"b"#).unwrap_err().contains("after the quoted field 1"));
    }
}
