//! UTC calendar formatting for timestamps, without a date crate.
//!
//! The server only ever needs "now" rendered as RFC 3339 (`2026-11-27T12:00:00Z`)
//! and as a calendar day (`2026-11-27`), so a civil-from-days conversion is
//! enough and keeps the dependency list short.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    pub(crate) fn from_system(t: SystemTime) -> Civil {
        // Times before 1970 never occur here; clamp rather than fail.
        let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let secs = since.as_secs() as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem % 3600) / 60) as u32,
            second: (rem % 60) as u32,
            millis: since.subsec_millis(),
        }
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (y, m, d).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-27T12:00:00Z`: whole seconds, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `2026-11-27T12:00:00.123Z`: milliseconds, UTC (for log lines).
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// `2026-11-27T12:00:00.123+00:00`: milliseconds and a numeric UTC offset
/// (the `offset-timestamps` variant).
pub(crate) fn rfc3339_offset_millis(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// Whole seconds since the Unix epoch, rounded down (a webhook's timestamp).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

/// Whole seconds since the Unix epoch, rounded up, so that an instant sent at
/// one-second resolution is never earlier than the one meant.
pub(crate) fn unix_secs_ceil(t: SystemTime) -> u64 {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// An IMF-fixdate (HTTP-date) of `t` rounded up to the next whole second, so
/// that it is never earlier than `t`.
pub(crate) fn http_date_ceil(t: SystemTime) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unix_secs_ceil(t)))
}

/// `2026-11-27`: the UTC calendar day.
pub(crate) fn date(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!("{:04}-{:02}-{:02}", c.year, c.month, c.day)
}

/// `27/11/2026 12:00:00`: the non-RFC format used by the `job-bad-created-at` fault.
pub(crate) fn european(t: SystemTime) -> String {
    let c = Civil::from_system(t);
    format!(
        "{:02}/{:02}/{:04} {:02}:{:02}:{:02}",
        c.day, c.month, c.year, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_780_800_123); // 2026-11-27T12:00:00.123Z
        assert_eq!(rfc3339(t), "2026-11-27T12:00:00Z");
        assert_eq!(rfc3339_millis(t), "2026-11-27T12:00:00.123Z");
        assert_eq!(date(t), "2026-11-27");
        assert_eq!(european(t), "27/11/2026 12:00:00");
        assert_eq!(rfc3339_offset_millis(t), "2026-11-27T12:00:00.123+00:00");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z
        assert_eq!(date(leap), "2000-02-29");
    }

    #[test]
    fn agrees_with_httpdate() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(httpdate::fmt_http_date(t), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn second_resolution_rounds_up() {
        let whole = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(unix_secs_ceil(whole), 1_700_000_000);
        assert_eq!(http_date_ceil(whole), "Tue, 14 Nov 2023 22:13:20 GMT");
        let later = whole + Duration::from_nanos(1);
        assert_eq!(unix_secs_ceil(later), 1_700_000_001);
        assert_eq!(http_date_ceil(later), "Tue, 14 Nov 2023 22:13:21 GMT");
    }
}
