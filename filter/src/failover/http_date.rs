//! HTTP-date, as `Retry-After` carries it: RFC 9110 §5.6.7 makes recipients accept all three
//! forms, and this module does, returning Unix milliseconds and `None` on anything else:
//!
//! - IMF-fixdate, the one senders must use: `Sun, 06 Nov 1994 08:49:37 GMT`;
//! - the obsolete RFC 850 form: `Sunday, 06-Nov-94 08:49:37 GMT` — its two-digit year is read
//!   as the year with those last two digits within fifty years of `now` (§5.6.7: a date that
//!   would be more than fifty years in the future means the most recent such year in the past);
//! - ANSI C's `asctime()` form: `Sun Nov  6 08:49:37 1994` (a one-digit day is padded with a
//!   space; no zone, the time is UTC).
//!
//! Day and month names are matched ASCII case-insensitively (the grammar spells them with one
//! case; being lenient costs nothing here). The weekday must be a real day name of the right
//! length for its form but is not cross-checked against the date. Leading and trailing
//! whitespace is ignored. No date library, no panics.

use super::timefmt::{civil_to_unix_ms, year_of_unix_ms, Cursor};

/// Three-letter day names (`day-name`), Monday first.
const DAYS: [&[u8]; 7] = [b"mon", b"tue", b"wed", b"thu", b"fri", b"sat", b"sun"];
/// Full day names (`day-name-l` of the RFC 850 form), in the order of [`DAYS`].
const DAYS_LONG: [&[u8]; 7] = [
    b"monday",
    b"tuesday",
    b"wednesday",
    b"thursday",
    b"friday",
    b"saturday",
    b"sunday",
];
/// Month names, January first.
const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses an HTTP-date in any of the three forms into Unix milliseconds. `now_ms` is only used
/// to place the two-digit year of the RFC 850 form.
pub fn parse_http_date_ms(text: &str, now_ms: u64) -> Option<i64> {
    let text = text.trim();
    parse_imf_fixdate_ms(text)
        .or_else(|| parse_rfc850_ms(text, now_ms))
        .or_else(|| parse_asctime_ms(text))
}

/// The month (1–12) for a three-letter name.
fn month_number(name: &[u8]) -> Option<u32> {
    let index = MONTHS.iter().position(|m| *m == name)?;
    u32::try_from(index).ok().map(|i| i + 1)
}

/// `HH:MM:SS` (`time-of-day`).
fn time_of_day(c: &mut Cursor<'_>) -> Option<(u32, u32, u32)> {
    let hour = c.digits(2)?;
    c.literal(b':')?;
    let minute = c.digits(2)?;
    c.literal(b':')?;
    let second = c.digits(2)?;
    Some((hour, minute, second))
}

/// ` GMT` and the end of the input.
fn gmt_end(c: &mut Cursor<'_>) -> Option<()> {
    c.literal(b' ')?;
    c.literal(b'G')?;
    c.literal(b'M')?;
    c.literal(b'T')?;
    c.at_end().then_some(())
}

/// IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_imf_fixdate_ms(text: &str) -> Option<i64> {
    let mut c = Cursor::new(text.trim());
    let day_name = c.letters()?;
    if !DAYS.contains(&day_name.as_slice()) {
        return None;
    }
    c.literal(b',')?;
    c.literal(b' ')?;
    let day = c.digits(2)?;
    c.literal(b' ')?;
    let month = month_number(&c.letters()?)?;
    c.literal(b' ')?;
    let year = i64::from(c.digits(4)?);
    c.literal(b' ')?;
    let (hour, minute, second) = time_of_day(&mut c)?;
    gmt_end(&mut c)?;
    civil_to_unix_ms(year, month, day, hour, minute, second, 0)
}

/// The obsolete RFC 850 form: `Sunday, 06-Nov-94 08:49:37 GMT`.
pub fn parse_rfc850_ms(text: &str, now_ms: u64) -> Option<i64> {
    let mut c = Cursor::new(text.trim());
    let day_name = c.letters()?;
    if !DAYS_LONG.contains(&day_name.as_slice()) {
        return None;
    }
    c.literal(b',')?;
    c.literal(b' ')?;
    let day = c.digits(2)?;
    c.literal(b'-')?;
    let month = month_number(&c.letters()?)?;
    c.literal(b'-')?;
    let two_digits = i64::from(c.digits(2)?);
    c.literal(b' ')?;
    let (hour, minute, second) = time_of_day(&mut c)?;
    gmt_end(&mut c)?;
    let year = full_year(two_digits, year_of_unix_ms(now_ms));
    civil_to_unix_ms(year, month, day, hour, minute, second, 0)
}

/// The year ending in `two_digits` that lies within fifty years of `now_year`: more than fifty
/// years ahead means a century earlier; fifty or more years back, a century later.
fn full_year(two_digits: i64, now_year: i64) -> i64 {
    let candidate = now_year - now_year.rem_euclid(100) + two_digits;
    if candidate > now_year + 50 {
        candidate - 100
    } else if candidate <= now_year - 50 {
        candidate + 100
    } else {
        candidate
    }
}

/// ANSI C `asctime()`: `Sun Nov  6 08:49:37 1994` (or `Nov 16`, or `Nov 06`).
pub fn parse_asctime_ms(text: &str) -> Option<i64> {
    let mut c = Cursor::new(text.trim());
    let day_name = c.letters()?;
    if !DAYS.contains(&day_name.as_slice()) {
        return None;
    }
    c.literal(b' ')?;
    let month = month_number(&c.letters()?)?;
    c.literal(b' ')?;
    let day = if c.peek() == Some(b' ') {
        c.bump();
        c.digits(1)?
    } else {
        c.digits(2)?
    };
    c.literal(b' ')?;
    let (hour, minute, second) = time_of_day(&mut c)?;
    c.literal(b' ')?;
    let year = i64::from(c.digits(4)?);
    if !c.at_end() {
        return None;
    }
    civil_to_unix_ms(year, month, day, hour, minute, second, 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// 1994-11-06T08:49:37Z, the RFC's example instant.
    const EXAMPLE_MS: i64 = 784_111_777_000;
    /// 2026-12-03T00:00:00Z.
    const NOW: u64 = 1_796_256_000_000;

    #[test]
    fn the_three_forms_of_rfc_9110_give_the_same_instant() {
        for text in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(parse_http_date_ms(text, NOW), Some(EXAMPLE_MS), "{text:?}");
        }
    }

    #[test]
    fn imf_fixdate() {
        assert_eq!(
            parse_imf_fixdate_ms("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(EXAMPLE_MS)
        );
        assert_eq!(
            parse_imf_fixdate_ms("mon, 01 jan 2024 00:00:00 gmt"),
            Some(1_704_067_200_000)
        );
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 November 1994 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMTx",
            "Sün, 06 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_imf_fixdate_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc850_form() {
        assert_eq!(
            parse_rfc850_ms("Sunday, 06-Nov-94 08:49:37 GMT", NOW),
            Some(EXAMPLE_MS)
        );
        assert_eq!(
            parse_rfc850_ms("monday, 01-jan-24 00:00:00 gmt", NOW),
            Some(1_704_067_200_000)
        );
        // Wednesday, 2 December 2026, one day before NOW.
        assert_eq!(
            parse_rfc850_ms("Wednesday, 02-Dec-26 00:00:00 GMT", NOW),
            Some(NOW as i64 - 86_400_000)
        );
        for bad in [
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 6-Nov-94 08:49:37 GMT",
            "Sunday, 06 Nov 94 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37",
            "Someday, 06-Nov-94 08:49:37 GMT",
            "Sunday, 31-Nov-94 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:60x GMT",
        ] {
            assert_eq!(parse_rfc850_ms(bad, NOW), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc850_two_digit_years_stay_within_fifty_years_of_now() {
        assert_eq!(full_year(94, 2026), 1994);
        assert_eq!(full_year(26, 2026), 2026);
        assert_eq!(full_year(76, 2026), 2076);
        // 2077 would be more than fifty years ahead: the most recent past 77 instead.
        assert_eq!(full_year(77, 2026), 1977);
        assert_eq!(full_year(10, 2080), 2110);
        assert_eq!(full_year(31, 2080), 2031);
        assert_eq!(full_year(0, 1999), 2000);
        assert_eq!(full_year(99, 2000), 1999);
        assert_eq!(full_year(5, 1970), 2005);
    }

    #[test]
    fn asctime_form() {
        assert_eq!(parse_asctime_ms("Sun Nov  6 08:49:37 1994"), Some(EXAMPLE_MS));
        assert_eq!(parse_asctime_ms("Sun Nov 06 08:49:37 1994"), Some(EXAMPLE_MS));
        assert_eq!(
            parse_asctime_ms("Sat Nov 26 08:49:37 1994"),
            Some(EXAMPLE_MS + 20 * 86_400_000)
        );
        for bad in [
            "Sun Nov 6 08:49:37 1994",
            "Sun Nov   6 08:49:37 1994",
            "Sun, Nov  6 08:49:37 1994",
            "Sun Nov  6 08:49:37 94",
            "Sun Nov  6 08:49:37 1994 GMT",
            "Sunday Nov  6 08:49:37 1994",
            "Sun Nov  0 08:49:37 1994",
            "Sun Nov 31 08:49:37 1994",
            "Sun Nov  6 8:49:37 1994",
        ] {
            assert_eq!(parse_asctime_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored_and_garbage_refused() {
        assert_eq!(
            parse_http_date_ms("  Sun Nov  6 08:49:37 1994 ", NOW),
            Some(EXAMPLE_MS)
        );
        for bad in ["", " ", "now", "1994-11-06T08:49:37Z", "784111777", "\u{0}", "Sun"] {
            assert_eq!(parse_http_date_ms(bad, NOW), None, "{bad:?}");
        }
    }
}
