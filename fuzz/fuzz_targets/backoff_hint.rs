//! Provider back-off hints: `failover::parse_backoff_hint` over fuzzed response headers, and the
//! HTTP-date parser behind `Retry-After` on fuzzed text.
//!
//! Input: byte 0 chooses the header (`retry-after`, `retry-after-ms`, the OpenAI and Anthropic
//! reset headers, with or without a matching `remaining: 0`); bytes 1..9 are `now` in Unix ms
//! (little-endian, kept below year 9900); the rest is the header value.
//!
//! Properties beyond "no panic":
//! - a hint is in the future and at most `MAX_BACKOFF_HINT_MS` ahead;
//! - an HTTP-date that parses is the same instant in all three forms RFC 9110 accepts: it is
//!   re-rendered as IMF-fixdate, RFC 850 and asctime, and each must parse back to it (the RFC 850
//!   rendering only when its two-digit year maps back to the same century);
//! - `Retry-After` with an HTTP-date gives the same hint as `Retry-After` with that date's
//!   IMF-fixdate rendering.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::failover::http_date::parse_http_date_ms;
use tollgate::failover::{parse_backoff_hint, MAX_BACKOFF_HINT_MS};

const HEADERS: &[(&str, Option<&str>)] = &[
    ("retry-after", None),
    ("retry-after-ms", None),
    ("x-ratelimit-reset-requests", None),
    (
        "x-ratelimit-reset-tokens",
        Some("x-ratelimit-remaining-tokens"),
    ),
    ("anthropic-ratelimit-requests-reset", None),
    (
        "anthropic-ratelimit-output-tokens-reset",
        Some("anthropic-ratelimit-output-tokens-remaining"),
    ),
];

/// 9900-01-01T00:00:00Z: RFC 850 years placed around `now` keep four digits.
const MAX_NOW_MS: u64 = 250_246_627_200_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (now_bytes, value) = rest.split_at(rest.len().min(8));
    let mut now = [0u8; 8];
    now[..now_bytes.len()].copy_from_slice(now_bytes);
    let now_ms = u64::from_le_bytes(now) % MAX_NOW_MS;
    let value = String::from_utf8_lossy(value);

    let (name, remaining) = HEADERS[usize::from(selector) % HEADERS.len()];
    let mut headers = vec![(name.to_string(), value.to_string())];
    if let Some(remaining) = remaining {
        headers.push((remaining.to_string(), "0".to_string()));
    }
    if let Some(until) = parse_backoff_hint(&headers, now_ms) {
        assert!(
            until > now_ms && until - now_ms <= MAX_BACKOFF_HINT_MS,
            "{headers:?} at {now_ms}: {until}"
        );
    }

    let Some(at) = parse_http_date_ms(&value, now_ms) else {
        return;
    };
    assert_eq!(at % 1000, 0, "HTTP-dates have whole seconds: {value:?}");
    let civil = Civil::from_unix_ms(at);
    let imf = civil.imf_fixdate();
    assert_eq!(
        parse_http_date_ms(&imf, now_ms),
        Some(at),
        "{value:?} → {imf:?}"
    );
    let asctime = civil.asctime();
    assert_eq!(
        parse_http_date_ms(&asctime, now_ms),
        Some(at),
        "{value:?} → {asctime:?}"
    );
    // RFC 850 keeps two year digits: the parser places them within fifty years of now.
    let rfc850 = civil.rfc850();
    let now_year = Civil::from_unix_ms(now_ms as i64).year;
    match parse_http_date_ms(&rfc850, now_ms) {
        Some(back) => {
            let b = Civil::from_unix_ms(back);
            assert_eq!(
                (b.year.rem_euclid(100), b.month, b.day, b.seconds_of_day),
                (
                    civil.year.rem_euclid(100),
                    civil.month,
                    civil.day,
                    civil.seconds_of_day
                ),
                "{value:?} → {rfc850:?}"
            );
            assert!(
                b.year > now_year - 50 && b.year <= now_year + 50,
                "{rfc850:?} placed in {} with now in {now_year}",
                b.year
            );
            if civil.year > now_year - 50 && civil.year <= now_year + 50 {
                assert_eq!(back, at, "{value:?} → {rfc850:?}");
            }
        }
        // Only 29 February can vanish when moved by a century (2000 was a leap year, 2100 not).
        None => assert!(
            civil.month == 1 && civil.day == 29,
            "{value:?} → {rfc850:?} does not parse"
        ),
    }
    if name == "retry-after" {
        let direct = parse_backoff_hint(&headers, now_ms);
        let via_imf = parse_backoff_hint(&[(name.to_string(), imf.clone())], now_ms);
        assert_eq!(direct, via_imf, "{value:?} vs {imf:?}");
    }
});

/// A UTC civil date and time, rendered by the harness itself (not the parser's code).
struct Civil {
    year: i64,
    month: usize,
    day: u32,
    weekday: usize,
    seconds_of_day: i64,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const DAYS_LONG: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Civil {
    fn from_unix_ms(ms: i64) -> Civil {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let seconds_of_day = secs.rem_euclid(86_400);
        // Walk years and months from 1970: slow but obviously right (years < 10000).
        let mut year = 1970i64;
        let mut rest = days;
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let year_days = |y: i64| if leap(y) { 366 } else { 365 };
        while rest < 0 {
            year -= 1;
            rest += year_days(year);
        }
        while rest >= year_days(year) {
            rest -= year_days(year);
            year += 1;
        }
        let month_days = [
            31,
            if leap(year) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        let mut month = 0;
        while rest >= month_days[month] {
            rest -= month_days[month];
            month += 1;
        }
        Civil {
            year,
            month,
            day: rest as u32 + 1,
            weekday: days.rem_euclid(7) as usize,
            seconds_of_day,
        }
    }

    fn time(&self) -> String {
        let s = self.seconds_of_day;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }

    fn imf_fixdate(&self) -> String {
        format!(
            "{}, {:02} {} {:04} {} GMT",
            DAYS[self.weekday],
            self.day,
            MONTHS[self.month],
            self.year,
            self.time()
        )
    }

    fn rfc850(&self) -> String {
        format!(
            "{}, {:02}-{}-{:02} {} GMT",
            DAYS_LONG[self.weekday],
            self.day,
            MONTHS[self.month],
            self.year.rem_euclid(100),
            self.time()
        )
    }

    fn asctime(&self) -> String {
        format!(
            "{} {} {:>2} {} {:04}",
            DAYS[self.weekday],
            MONTHS[self.month],
            self.day,
            self.time(),
            self.year
        )
    }
}
