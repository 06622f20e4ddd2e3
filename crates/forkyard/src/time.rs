//! Time as people write it and as processes compare it: durations like `500ms`, `2s`,
//! `1m30s`, `0`, and the monotonic clock.
//!
//! Why this module exists: `forkyard init --grace 5s` and every timeout in a supervisor
//! configuration take a duration from a person, and a bare number is ambiguous (seconds?
//! milliseconds?), so a unit is required except for zero. And a time taken in one process
//! and compared in another needs a clock both share, which `std::time::Instant` does not
//! promise.

use std::time::Duration;

use crate::error::{Error, Result};

/// `CLOCK_MONOTONIC` as a duration since an unspecified fixed point. Unlike
/// `std::time::Instant` it can be sent to another process on the same machine and compared
/// there, which is how the benchmarks time a child's exit against its reaping.
///
/// ```
/// let sent = forkyard::run_in_child(forkyard::time::monotonic_now)?;
/// assert!(forkyard::time::monotonic_now() >= sent);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn monotonic_now() -> Duration {
    crate::sys::monotonic_now()
}

/// Reads a duration: one or more `<number><unit>` parts (`ms`, `s`, `m`, `h`; the number may
/// have a fraction), or `0`. `"1m30s"` is 90 seconds.
///
/// ```
/// use std::time::Duration;
/// use forkyard::time::parse_duration;
///
/// assert_eq!(parse_duration("1m30s")?, Duration::from_secs(90));
/// assert_eq!(parse_duration("250ms")?, Duration::from_millis(250));
/// assert!(parse_duration("5").is_err()); // seconds? milliseconds? say which
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn parse_duration(text: &str) -> Result<Duration> {
    let bad = |reason: &'static str| Error::BadDuration { input: text.to_string(), reason };
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("it is empty"));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return Err(bad("each part must start with a number"));
        }
        let number: f64 = rest[..digits].parse().map_err(|_| bad("a number is malformed"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(bad("a unit is missing (ms, s, m or h)")),
            _ => return Err(bad("unknown unit (use ms, s, m or h)")),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad("it is too long"));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units_and_sums() {
        assert_eq!(parse_duration("500ms").ok(), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s").ok(), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m").ok(), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s").ok(), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s").ok(), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0").ok(), Some(Duration::ZERO));
        assert_eq!(parse_duration("2h").ok(), Some(Duration::from_secs(7200)));
    }

    #[test]
    fn refuses_what_is_ambiguous_or_malformed() {
        for text in ["", "5", "5x", "s", "1..5s", "ms", "-1s", "5 s"] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.to_string().contains("is not a duration"), "{text}: {err}");
        }
    }
}
