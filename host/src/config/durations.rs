//! Durations: parsing `90m`, `1h30m`, `45s`, and the range each duration setting accepts, so
//! an absurd value (`300000y`, `18446744073709551615s`) is refused with exit 2 before anything
//! is asked of a provider — and nothing downstream (expiry times, provider minutes) can
//! overflow.

use std::time::Duration;

use anyhow::Result;

use crate::error::{ErrorKind, Failure};

/// The values a duration setting accepts.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    /// What the setting is, for messages: `a lease lifetime`.
    pub what: &'static str,
    /// The least value.
    pub min: Duration,
    /// The greatest value.
    pub max: Duration,
    /// The range in words: `between 1m and 365d`.
    pub shown: &'static str,
}

const MINUTE: u64 = 60;
const DAY: u64 = 24 * 60 * MINUTE;

/// `--ttl`, `CBX_TTL`, `lease.ttl`: one minute to a year.
pub const TTL_RANGE: DurationRange = DurationRange {
    what: "a lease lifetime",
    min: Duration::from_secs(MINUTE),
    max: Duration::from_secs(365 * DAY),
    shown: "between 1m and 365d",
};

/// `--idle-timeout`, `CBX_IDLE_TIMEOUT`, `lease.idle-timeout`: zero (never stop) to a year.
pub const IDLE_RANGE: DurationRange = DurationRange {
    what: "an idle timeout",
    min: Duration::ZERO,
    max: Duration::from_secs(365 * DAY),
    shown: "between 0s (never) and 365d",
};

/// `--ready-timeout`, `CBX_READY_TIMEOUT`, `lease.ready-timeout` (and `providers test
/// --timeout`): a second to a day.
pub const READY_RANGE: DurationRange = DurationRange {
    what: "a ready timeout",
    min: Duration::from_secs(1),
    max: Duration::from_secs(DAY),
    shown: "between 1s and 24h",
};

/// Parses a duration like `90m`, `1h30m` or `45s`; `place` says where it was set.
pub fn parse_duration(text: &str, place: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        Failure::new(
            ErrorKind::Usage,
            format!(
                "`{text}` is not a duration{}: {e}; write e.g. 90m, 1h30m or 45s",
                from(place)
            ),
        )
    })?;
    Ok(d)
}

/// Parses a duration and refuses one outside `range` (exit 2, naming the range).
pub fn parse_duration_in(text: &str, place: &str, range: DurationRange) -> Result<Duration> {
    let d = parse_duration(text, place)?;
    if d < range.min || d > range.max {
        return Err(Failure::new(
            ErrorKind::Usage,
            format!(
                "`{}`{} is out of range: {} must be {}",
                text.trim(),
                from(place),
                range.what,
                range.shown
            ),
        )
        .into());
    }
    Ok(d)
}

fn from(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" (from {place})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_at_their_edges_and_refuse_beyond() {
        for (text, range, ok) in [
            ("1m", TTL_RANGE, true),
            ("59s", TTL_RANGE, false),
            ("365d", TTL_RANGE, true),
            ("366d", TTL_RANGE, false),
            ("300000y", TTL_RANGE, false),
            ("18446744073709551615s", TTL_RANGE, false),
            ("0s", IDLE_RANGE, true),
            ("99999999999m", IDLE_RANGE, false),
            ("0s", READY_RANGE, false),
            ("24h", READY_RANGE, true),
            ("25h", READY_RANGE, false),
        ] {
            let got = parse_duration_in(text, "--x", range);
            assert_eq!(got.is_ok(), ok, "{text}: {got:?}");
            if let Err(e) = got {
                assert_eq!(crate::error::exit_code(&e), 2);
                assert!(format!("{e:#}").contains(range.shown), "{e:#}");
                assert!(format!("{e:#}").contains("(from --x)"), "{e:#}");
            }
        }
        // The maxima fit every later conversion: minutes as u32, seconds as i64.
        for range in [TTL_RANGE, IDLE_RANGE, READY_RANGE] {
            assert!(range.max.as_secs().div_ceil(60) <= u64::from(u32::MAX));
            assert!(range.max.as_secs() <= i32::MAX as u64);
        }
    }
}
