//! Input validation that reports every problem at once, each tied to its field.

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field. `pointer` is a JSON Pointer (RFC 6901) into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub pointer: String,
    pub detail: String,
}

/// Collects field errors; turns into a 422 problem at the edge.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Validation {
    pub errors: Vec<FieldError>,
}

impl Validation {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, detail: impl Into<String>) -> Self {
        let mut v = Self::new();
        v.add(field, detail);
        v
    }

    pub fn add(&mut self, field: &str, detail: impl Into<String>) {
        self.errors.push(FieldError {
            pointer: format!("/{field}"),
            detail: detail.into(),
        });
    }

    /// Runs a check and records its error under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(detail) => {
                self.add(field, detail);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> Result<(), Validation> {
        if self.errors.is_empty() { Ok(()) } else { Err(self) }
    }
}

fn has_control_chars(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// A display name: trimmed, 1 to `max` characters, no control characters.
pub fn name(value: &str, max: usize) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("must not be empty".into());
    }
    if trimmed.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if has_control_chars(trimmed) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// Free text such as a description: may be empty, bounded, newlines allowed.
pub fn text(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    Ok(value.trim().to_owned())
}

/// A tenant slug: lowercase letters, digits and hyphens, 2 to 63 characters.
pub fn slug(value: &str) -> Result<String, String> {
    let ok = (2..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(value.to_owned())
    } else {
        Err("must be 2-63 characters of a-z, 0-9 and '-', not starting or ending with '-'".into())
    }
}

/// An IANA time zone name such as `Europe/Berlin`.
pub fn timezone(value: &str) -> Result<String, String> {
    value
        .parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| format!("`{value}` is not an IANA time zone such as Europe/Berlin or America/New_York"))
}

/// A phone number in E.164: `+`, a country code not starting with 0, at most 15 digits in all.
pub fn e164(value: &str) -> Result<String, String> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = compact.strip_prefix('+').ok_or_else(|| {
        format!("`{value}` is not in E.164 form: it must start with + and the country code, e.g. +4930123456")
    })?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{value}` is not in E.164 form: only digits may follow the +"));
    }
    if digits.starts_with('0') {
        return Err(format!(
            "`{value}` is not in E.164 form: country codes never start with 0"
        ));
    }
    if !(7..=15).contains(&digits.len()) {
        return Err(format!("`{value}` is not in E.164 form: it must have 7 to 15 digits"));
    }
    Ok(compact)
}

/// An email address: one `@`, a non-empty local part and a dotted domain. Deliverability is
/// proven by sending mail, not by a regular expression.
pub fn email(value: &str) -> Result<String, String> {
    let v = value.trim();
    let valid = v.len() <= 254
        && !has_control_chars(v)
        && !v.contains(char::is_whitespace)
        && matches!(v.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
    if valid {
        Ok(v.to_lowercase())
    } else {
        Err(format!("`{value}` is not an email address"))
    }
}

/// A dialable extension: 1 to 20 of 0-9, * and #.
pub fn extension(value: &str) -> Result<String, String> {
    if (1..=20).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit() || b == b'*' || b == b'#') {
        Ok(value.to_owned())
    } else {
        Err("must be 1-20 characters of 0-9, * and #".into())
    }
}

/// A PBX token such as an endpoint name or dial-plan context: letters, digits, `_ - . +`.
pub fn pbx_token(value: &str, max: usize) -> Result<String, String> {
    if (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "must be 1-{max} characters of letters, digits, '_', '-', '.' and '+'"
        ))
    }
}

/// A device interface as Asterisk names it: `Technology/resource`, e.g. `PJSIP/1001`.
pub fn interface(value: &str) -> Result<String, String> {
    let valid = value.len() <= 128
        && matches!(value.split_once('/'), Some((tech, res))
            if !tech.is_empty() && tech.bytes().all(|b| b.is_ascii_alphanumeric())
            && !res.is_empty() && res.bytes().all(|b| b.is_ascii_graphic()));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "`{value}` is not an interface like PJSIP/1001 or Local/1001@agents"
        ))
    }
}

/// Whether `value` is one of `allowed`, with a message listing them.
pub fn one_of(value: &str, allowed: &[&str]) -> Result<String, String> {
    if allowed.contains(&value) {
        Ok(value.to_owned())
    } else {
        Err(format!("`{value}` is not one of: {}", allowed.join(", ")))
    }
}

pub fn int_range(value: i64, min: i64, max: i64) -> Result<i64, String> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

/// A list of short labels (skills, codecs): trimmed, deduplicated, bounded.
pub fn labels(values: &[String], max_items: usize, allowed: Option<&[&str]>) -> Result<Vec<String>, String> {
    if values.len() > max_items {
        return Err(format!("must have at most {max_items} entries"));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for raw in values {
        let v = raw.trim().to_lowercase();
        if v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(format!(
                "`{raw}` must be 1-64 characters of letters, digits, '_', '-' and '.'"
            ));
        }
        if let Some(allowed) = allowed
            && !allowed.contains(&v.as_str())
        {
            return Err(format!("`{raw}` is not one of: {}", allowed.join(", ")));
        }
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_real_numbers_and_normalises_spacing() {
        assert_eq!(e164("+49 30 1234567").unwrap(), "+49301234567");
        assert_eq!(e164("+1 (415) 555-0100").unwrap(), "+14155550100");
        assert!(e164("030 1234567").is_err());
        assert!(e164("+0301234567").is_err());
        assert!(e164("+12").is_err());
        assert!(e164("+1234567890123456").is_err());
        assert!(e164("+49abc").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  Sales ", 10).unwrap(), "Sales");
        assert!(name("   ", 10).is_err());
        assert!(name("abcdefghijk", 10).is_err());
        assert!(name("a\u{0}b", 10).is_err());
    }

    #[test]
    fn slugs_timezones_emails() {
        assert!(slug("acme-eu").is_ok());
        assert!(slug("Acme").is_err());
        assert!(slug("-acme").is_err());
        assert_eq!(timezone("Europe/Berlin").unwrap(), "Europe/Berlin");
        assert!(timezone("Mars/Olympus").is_err());
        assert_eq!(email(" Ana@Example.COM ").unwrap(), "ana@example.com");
        assert!(email("ana@localhost").is_err());
        assert!(email("a b@example.com").is_err());
    }

    #[test]
    fn interfaces_and_labels() {
        assert!(interface("PJSIP/1001").is_ok());
        assert!(interface("Local/1001@agents").is_ok());
        assert!(interface("1001").is_err());
        assert_eq!(
            labels(&["Sales".into(), "sales".into(), "de".into()], 10, None).unwrap(),
            vec!["sales", "de"]
        );
        assert!(labels(&["opus".into(), "mp3".into()], 10, Some(&["opus", "ulaw"])).is_err());
    }
}
