//! How often what goes out (notifications, email, webhooks) is tried before it is given up.

/// Pauses before the 2nd, 3rd … attempt; after the last, the message is failed (almost 4 hours
/// of trying in all).
const BACKOFF_S: [i64; 9] = [10, 30, 60, 300, 900, 1800, 3600, 3600, 3600];

/// When to try again after `attempts` failed attempts (`None`: give up).
pub fn next_attempt(attempts: i64, now_ms: i64) -> Option<i64> {
    let pause = BACKOFF_S.get(usize::try_from(attempts).ok()?.checked_sub(1)?)?;
    Some(now_ms + pause * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_then_give_up() {
        assert_eq!(next_attempt(1, 0), Some(10_000));
        assert_eq!(next_attempt(4, 0), Some(300_000));
        assert_eq!(next_attempt(9, 0), Some(3_600_000));
        assert_eq!(next_attempt(10, 0), None);
        assert_eq!(next_attempt(0, 0), None);
    }
}
