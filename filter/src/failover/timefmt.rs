//! Small, strict parsers for the time formats providers put in rate-limit headers: RFC 3339
//! timestamps, Go-style durations (`1h2m3.5s`, `20ms`) and plain decimal amounts, plus the
//! cursor and civil-date arithmetic [`super::http_date`] builds the HTTP-date forms on. No date
//! library: every function returns `None` on malformed input and never panics.

const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Longest integer part accepted in a number (keeps all arithmetic far from overflow).
const MAX_INTEGER_DIGITS: usize = 20;
/// Fraction digits beyond this are read but ignored (sub-nanosecond for every unit we know).
const MAX_FRACTION_DIGITS: usize = 18;

/// Longest word [`Cursor::letters`] reads (`wednesday`).
const MAX_WORD_LETTERS: usize = 9;

/// A byte cursor over ASCII input; every read is bounds-checked.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(super) fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    /// Consumes `expected` (ASCII case-insensitively) or fails.
    pub(super) fn literal(&mut self, expected: u8) -> Option<()> {
        let b = self.bump()?;
        b.eq_ignore_ascii_case(&expected).then_some(())
    }

    /// Reads exactly `count` ASCII digits as a number.
    pub(super) fn digits(&mut self, count: usize) -> Option<u32> {
        let mut value: u32 = 0;
        for _ in 0..count {
            let b = self.bump()?;
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(b - b'0');
        }
        Some(value)
    }

    /// Reads a run of one to [`MAX_WORD_LETTERS`] ASCII letters (a day or month name),
    /// lower-cased; `None` when there is none or it is longer.
    pub(super) fn letters(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(b) = self.peek().filter(u8::is_ascii_alphabetic) {
            if out.len() == MAX_WORD_LETTERS {
                return None;
            }
            out.push(b.to_ascii_lowercase());
            self.bump();
        }
        (!out.is_empty()).then_some(out)
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// Whether `year` is a Gregorian leap year.
fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` (1-12) of `year`; 0 for an invalid month.
fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let year_of_era = y - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The Gregorian year of a Unix-milliseconds instant (Howard Hinnant's `civil_from_days`).
pub(super) fn year_of_unix_ms(ms: u64) -> i64 {
    let days = i64::try_from(ms / 86_400_000).unwrap_or(i64::MAX / 2);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let year = year_of_era + era * 400;
    if month_from_march >= 10 {
        year + 1
    } else {
        year
    }
}

/// Validated civil date and time (UTC) to Unix milliseconds.
pub(super) fn civil_to_unix_ms(
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
) -> Option<i64> {
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60
        && millis <= 999;
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second);
    Some(seconds * 1_000 + i64::from(millis))
}

/// Parses an RFC 3339 timestamp (`2024-05-01T12:00:00Z`, `2024-05-01t12:00:00.25+02:00`, space
/// separator accepted) into Unix milliseconds. Fractions beyond milliseconds are truncated.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let mut c = Cursor::new(text.trim());
    let year = i64::from(c.digits(4)?);
    c.literal(b'-')?;
    let month = c.digits(2)?;
    c.literal(b'-')?;
    let day = c.digits(2)?;
    match c.bump()? {
        b'T' | b't' | b' ' => {}
        _ => return None,
    }
    let hour = c.digits(2)?;
    c.literal(b':')?;
    let minute = c.digits(2)?;
    c.literal(b':')?;
    let second = c.digits(2)?;
    let mut millis: u32 = 0;
    if c.peek() == Some(b'.') {
        c.bump();
        let mut read = 0usize;
        while let Some(b) = c.peek().filter(u8::is_ascii_digit) {
            c.bump();
            if read < 3 {
                millis = millis * 10 + u32::from(b - b'0');
            }
            read += 1;
        }
        if read == 0 {
            return None;
        }
        for _ in read..3 {
            millis *= 10;
        }
    }
    let offset_minutes: i64 = match c.bump()? {
        b'Z' | b'z' => 0,
        sign @ (b'+' | b'-') => {
            let hours = c.digits(2)?;
            c.literal(b':')?;
            let minutes = c.digits(2)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let total = i64::from(hours * 60 + minutes);
            if sign == b'-' {
                -total
            } else {
                total
            }
        }
        _ => return None,
    };
    if !c.at_end() {
        return None;
    }
    let local = civil_to_unix_ms(year, month, day, hour, minute, second, millis)?;
    Some(local - offset_minutes * 60_000)
}

/// Converts a non-negative decimal number (`12`, `1.5`, `.5`) in units of `unit_nanos`
/// nanoseconds to nanoseconds.
fn decimal_to_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (integer, fraction) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if integer.is_empty() && fraction.is_empty() {
        return None;
    }
    if integer.len() > MAX_INTEGER_DIGITS
        || !integer.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u128 = if integer.is_empty() {
        0
    } else {
        integer.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_nanos)?;
    let mut scale: u128 = 1;
    let mut fraction_value: u128 = 0;
    for b in fraction.bytes().take(MAX_FRACTION_DIGITS) {
        fraction_value = fraction_value * 10 + u128::from(b - b'0');
        scale *= 10;
    }
    nanos = nanos.checked_add(fraction_value.checked_mul(unit_nanos)? / scale)?;
    Some(nanos)
}

/// Nanoseconds rounded up to whole milliseconds, saturating at `u64::MAX`.
fn nanos_to_ms_ceil(nanos: u128) -> u64 {
    let ms = nanos.div_ceil(NANOS_PER_MS);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Parses a non-negative decimal number of seconds (`120`, `1.5`) into milliseconds, rounded
/// up so a caller never retries early.
pub fn parse_seconds_ms(text: &str) -> Option<u64> {
    decimal_to_nanos(text.trim(), NANOS_PER_SECOND).map(nanos_to_ms_ceil)
}

/// Parses a non-negative decimal number of milliseconds (`250`, `12.5`) into whole
/// milliseconds, rounded up.
pub fn parse_millis_ms(text: &str) -> Option<u64> {
    decimal_to_nanos(text.trim(), NANOS_PER_MS).map(nanos_to_ms_ceil)
}

/// Parses a Go-style duration as OpenAI sends in `x-ratelimit-reset-*` (`1s`, `6m0s`, `20ms`,
/// `1h2m3.5s`, `250us`; a bare `0` is zero) into milliseconds, rounded up. Signs are refused.
pub fn parse_go_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at_checked(number_end)?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at_checked(unit_end)?;
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => NANOS_PER_MS,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            _ => return None,
        };
        total = total.checked_add(decimal_to_nanos(number, unit_nanos)?)?;
        rest = next;
    }
    Some(nanos_to_ms_ceil(total))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_basic_and_offsets() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T00:00:00Z"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2023-12-31T23:30:00-00:30"),
            Some(1_704_067_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-01-01t00:00:00.5z"),
            Some(1_704_067_200_500)
        );
        assert_eq!(
            parse_rfc3339_ms(" 2024-01-01 00:00:00.123456789Z "),
            Some(1_704_067_200_123)
        );
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T12:00:00Z"),
            Some(1_709_208_000_000)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), Some(-1000));
    }

    #[test]
    fn rfc3339_rejects_malformed() {
        for bad in [
            "",
            "2024",
            "2024-01-01",
            "2024-01-01T00:00Z",
            "2024-01-01T00:00:00",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00Zjunk",
            "2024-01-01X00:00:00Z",
            "２０２４-01-01T00:00:00Z",
            "-024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn year_of_an_instant() {
        assert_eq!(year_of_unix_ms(0), 1970);
        assert_eq!(year_of_unix_ms(1_704_067_199_999), 2023);
        assert_eq!(year_of_unix_ms(1_704_067_200_000), 2024);
        // 2024-12-31T23:59:59Z and 2025-01-01T00:00:00Z: the last day of March-based eras.
        assert_eq!(year_of_unix_ms(1_735_689_599_000), 2024);
        assert_eq!(year_of_unix_ms(1_735_689_600_000), 2025);
        assert_eq!(year_of_unix_ms(951_782_400_000), 2000);
        assert!(year_of_unix_ms(u64::MAX) > 500_000_000);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ms("1s"), Some(1_000));
        assert_eq!(parse_go_duration_ms("6m0s"), Some(360_000));
        assert_eq!(parse_go_duration_ms("20ms"), Some(20));
        assert_eq!(parse_go_duration_ms("1h2m3.5s"), Some(3_723_500));
        assert_eq!(parse_go_duration_ms("0.5s"), Some(500));
        assert_eq!(parse_go_duration_ms(".25s"), Some(250));
        assert_eq!(parse_go_duration_ms("1.0001ms"), Some(2));
        assert_eq!(parse_go_duration_ms("250us"), Some(1));
        assert_eq!(parse_go_duration_ms("250µs"), Some(1));
        assert_eq!(parse_go_duration_ms("5ns"), Some(1));
        assert_eq!(parse_go_duration_ms("0"), Some(0));
        assert_eq!(parse_go_duration_ms("0s"), Some(0));
        assert_eq!(
            parse_go_duration_ms("99999999999999999999h"),
            Some(u64::MAX)
        );
        for bad in [
            "", "s", "1", "10", "-1s", "+1s", "1x", "1 s", "1.2.3s", ".s", "1sm", "1S", "1h-2m",
            "ms", "1e3ms", "١s",
        ] {
            assert_eq!(parse_go_duration_ms(bad), None, "{bad:?}");
        }
        assert_eq!(parse_go_duration_ms("123456789012345678901s"), None);
    }

    #[test]
    fn decimal_amounts() {
        assert_eq!(parse_seconds_ms("120"), Some(120_000));
        assert_eq!(parse_seconds_ms(" 1.5 "), Some(1_500));
        assert_eq!(parse_seconds_ms("0"), Some(0));
        assert_eq!(parse_millis_ms("250"), Some(250));
        assert_eq!(parse_millis_ms("12.1"), Some(13));
        for bad in ["", "-1", "1e3", "abc", "1.2.3", ".", "0x10"] {
            assert_eq!(parse_seconds_ms(bad), None, "{bad:?}");
            assert_eq!(parse_millis_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let samples = [
            "\u{0}",
            "9999-99-99T99:99:99Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:60Z",
            "1h\u{b5}",
            "\u{b5}s",
            "..",
            "1..s",
            "Thu, ",
            ",",
            "2024-01-01T00:00:00.",
        ];
        for s in samples {
            let _ = parse_rfc3339_ms(s);
            let _ = parse_go_duration_ms(s);
            let _ = parse_seconds_ms(s);
        }
        assert_eq!(
            parse_rfc3339_ms("9999-12-31T23:59:59Z"),
            Some(253_402_300_799_000)
        );
        assert_eq!(
            parse_rfc3339_ms("0000-01-01T00:00:00Z"),
            Some(-62_167_219_200_000)
        );
    }
}
