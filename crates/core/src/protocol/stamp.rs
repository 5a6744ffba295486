//! XEP-0082 timestamps (`2026-11-21T10:00:00.123Z`) from a wall-clock time the caller read.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as UTC with milliseconds. Times before 1970 print as the epoch.
pub fn format(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// A stamp's text, formatted without allocating (what [`format`] gives, for years up to 9999,
/// its first 24 characters after that, as an event's stamp always was).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Stamp([u8; 24]);

impl Stamp {
    /// The stamp of `ms` milliseconds since the Unix epoch.
    pub fn of_millis(ms: u64) -> Stamp {
        let secs = ms / 1000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days as i64);
        if !(0..=9999).contains(&y) {
            let text = format(UNIX_EPOCH + std::time::Duration::from_millis(ms));
            let mut buf = [b'0'; 24];
            let n = text.len().min(24);
            buf[..n].copy_from_slice(&text.as_bytes()[..n]);
            return Stamp(buf);
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, u64::from(m));
        put(8, 2, u64::from(d));
        put(11, 2, rem / 3600);
        put(14, 2, rem % 3600 / 60);
        put(17, 2, rem % 60);
        put(20, 3, ms % 1000);
        Stamp(b)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Milliseconds since the Unix epoch of a stamp written by [`format`]; `None` for anything else.
pub fn parse_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'.' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || b[23] != b'Z' {
        return None;
    }
    // Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs * 1000 + ms).ok()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stamp_from_millis_is_the_formatted_text() {
        for ms in [
            0,
            1_795_255_200_123,
            951_782_400_000,
            951_782_399_999,
            253_402_300_799_999,
        ] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(Stamp::of_millis(ms).as_str(), format(t));
        }
        // Past 9999 the text is cut to 24 characters, as a stamp always was.
        let ms = 253_402_300_800_000;
        let text = format(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(Stamp::of_millis(ms).as_str(), &text[..24]);
    }

    #[test]
    fn known_instants() {
        assert_eq!(format(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // `date -u -d @1795255200.123` = 2026-11-21T10:00:00.123Z
        let t = UNIX_EPOCH + Duration::from_millis(1_795_255_200_123);
        assert_eq!(format(t), "2026-11-21T10:00:00.123Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(format(t), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            parse_millis("2026-11-21T10:00:00.123Z"),
            Some(1_795_255_200_123)
        );
        assert_eq!(
            parse_millis("2000-02-29T00:00:00.000Z"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_millis("2000-02-29T00:00:00.000"), None);
    }
}
