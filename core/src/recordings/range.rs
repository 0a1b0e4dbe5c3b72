//! One HTTP byte range (RFC 9110 §14), so players can seek in a recording without fetching
//! it whole. Multiple ranges are refused: players ask for one, and serving them would mean
//! multipart responses.

/// The bytes `start..=end` of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive, as in the header.
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range covers.
    pub fn len(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        // Saturates rather than overflows for 0..=u64::MAX, which no real file reaches.
        (self.end - self.start).saturating_add(1)
    }

    /// Only a range built by hand with `end` before `start`; `parse` never returns one.
    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }

    /// The `Content-Range` header value of a 206 response carrying this range.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// RFC 9110 says to ignore such a header and send the whole file.
    #[error("the Range header is not a single byte range such as bytes=0-1023")]
    Malformed,
    /// Answered with 416 and [`unsatisfied`] as the `Content-Range`.
    #[error("the Range header asks for bytes beyond the end of the recording")]
    Unsatisfiable,
}

/// Reads a `Range` header for a resource of `total` bytes: `bytes=a-b`, `bytes=a-` or
/// `bytes=-n`.
pub fn parse(header: &str, total: u64) -> Result<ByteRange, RangeError> {
    let (unit, spec) = header.split_once('=').ok_or(RangeError::Malformed)?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Err(RangeError::Malformed);
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return Err(RangeError::Malformed);
    }
    let (first, last) = spec.split_once('-').ok_or(RangeError::Malformed)?;
    let (first, last) = (first.trim(), last.trim());

    if first.is_empty() {
        let suffix_length = parse_number(last)?;
        if suffix_length == 0 || total == 0 {
            return Err(RangeError::Unsatisfiable);
        }
        return Ok(ByteRange {
            start: total.saturating_sub(suffix_length),
            end: total - 1,
        });
    }

    let start = parse_number(first)?;
    let requested_end = if last.is_empty() {
        None
    } else {
        let end = parse_number(last)?;
        if start > end {
            return Err(RangeError::Malformed);
        }
        Some(end)
    };
    if start >= total {
        return Err(RangeError::Unsatisfiable);
    }
    let last_byte = total - 1;
    Ok(ByteRange {
        start,
        end: requested_end.map_or(last_byte, |end| end.min(last_byte)),
    })
}

/// The `Content-Range` header value of a 416 response.
pub fn unsatisfied(total: u64) -> String {
    format!("bytes */{total}")
}

/// Digits only: `u64::from_str` would also take a leading `+`, which the grammar does not.
fn parse_number(text: &str) -> Result<u64, RangeError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(RangeError::Malformed);
    }
    text.parse().map_err(|_| RangeError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn first_and_last() {
        assert_eq!(parse("bytes=0-1023", 10_000), Ok(range(0, 1023)));
        assert_eq!(parse("bytes=500-999", 10_000), Ok(range(500, 999)));
        assert_eq!(parse("bytes=0-0", 10_000), Ok(range(0, 0)));
        assert_eq!(parse("bytes=9999-9999", 10_000), Ok(range(9999, 9999)));
    }

    #[test]
    fn last_is_clamped_to_the_end() {
        assert_eq!(parse("bytes=0-99999", 10_000), Ok(range(0, 9999)));
        assert_eq!(parse("bytes=9000-18446744073709551615", 10_000), Ok(range(9000, 9999)));
    }

    #[test]
    fn open_ended() {
        assert_eq!(parse("bytes=0-", 10_000), Ok(range(0, 9999)));
        assert_eq!(parse("bytes=9999-", 10_000), Ok(range(9999, 9999)));
        assert_eq!(parse("bytes=0-", 1), Ok(range(0, 0)));
    }

    #[test]
    fn suffix() {
        assert_eq!(parse("bytes=-500", 10_000), Ok(range(9500, 9999)));
        assert_eq!(parse("bytes=-1", 10_000), Ok(range(9999, 9999)));
        assert_eq!(parse("bytes=-10000", 10_000), Ok(range(0, 9999)));
        assert_eq!(parse("bytes=-20000", 10_000), Ok(range(0, 9999)));
        assert_eq!(parse("bytes=-18446744073709551615", 10), Ok(range(0, 9)));
    }

    #[test]
    fn unit_and_whitespace() {
        assert_eq!(parse("Bytes=0-1", 10), Ok(range(0, 1)));
        assert_eq!(parse("BYTES=0-1", 10), Ok(range(0, 1)));
        assert_eq!(parse("  bytes = 2 - 5  ", 10), Ok(range(2, 5)));
        assert_eq!(parse("\tbytes=-3\t", 10), Ok(range(7, 9)));
        assert_eq!(parse("items=0-1", 10), Err(RangeError::Malformed));
        assert_eq!(parse("byte=0-1", 10), Err(RangeError::Malformed));
        assert_eq!(parse("=0-1", 10), Err(RangeError::Malformed));
        assert_eq!(parse("bytes 0-1", 10), Err(RangeError::Malformed));
    }

    #[test]
    fn malformed() {
        for header in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=1",
            "bytes=5-4",
            "bytes=0-1,5-6",
            "bytes=0-1,",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=-+2",
            "bytes=--2",
            "bytes=1-2-3",
            "bytes=1 0-20",
            "bytes=0-2 0",
            "bytes=0x10-20",
            "bytes=1.5-2",
            "bytes=١-٢",
            "bytes=18446744073709551616-",
            "bytes=0-18446744073709551616",
            "bytes=-18446744073709551616",
        ] {
            assert_eq!(parse(header, 10_000), Err(RangeError::Malformed), "{header:?}");
        }
    }

    #[test]
    fn malformed_beats_unsatisfiable() {
        assert_eq!(parse("bytes=20-10", 5), Err(RangeError::Malformed));
        assert_eq!(parse("bytes=0-1,2-3", 0), Err(RangeError::Malformed));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse("bytes=10000-", 10_000), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=10000-20000", 10_000), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=-0", 10_000), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=0-", 0), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=0-0", 0), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=-5", 0), Err(RangeError::Unsatisfiable));
        assert_eq!(parse("bytes=-0", 0), Err(RangeError::Unsatisfiable));
    }

    #[test]
    fn lengths_and_headers() {
        let first_kilobyte = range(0, 1023);
        assert_eq!(first_kilobyte.len(), 1024);
        assert!(!first_kilobyte.is_empty());
        assert_eq!(first_kilobyte.content_range(10_000), "bytes 0-1023/10000");
        assert_eq!(range(7, 7).len(), 1);
        assert_eq!(range(0, u64::MAX).len(), u64::MAX);
        let backwards = range(5, 4);
        assert!(backwards.is_empty());
        assert_eq!(backwards.len(), 0);
        assert_eq!(unsatisfied(10_000), "bytes */10000");
        assert_eq!(unsatisfied(0), "bytes */0");
    }

    #[test]
    fn parsed_range_fits_the_resource() {
        let parsed = parse("bytes=-500", 10_000).expect("satisfiable");
        assert_eq!(parsed.len(), 500);
        assert_eq!(parsed.content_range(10_000), "bytes 9500-9999/10000");
    }

    #[test]
    fn messages() {
        assert_eq!(
            RangeError::Malformed.to_string(),
            "the Range header is not a single byte range such as bytes=0-1023"
        );
        assert_eq!(
            RangeError::Unsatisfiable.to_string(),
            "the Range header asks for bytes beyond the end of the recording"
        );
    }
}
