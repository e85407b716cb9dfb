//! Provider-announced back-off: reading "come back at" hints from response headers and keeping
//! a per-provider back-off window in shared data, which route planning honours.
//!
//! Headers understood: `retry-after` (seconds or an HTTP-date in any of its three forms),
//! `retry-after-ms`, OpenAI's
//! `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` (Go durations like `6m0s`) and
//! Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`
//! (RFC 3339). An explicit retry-after wins; otherwise the reset of an exhausted limit (its
//! `remaining` header reads 0) is used, or else the earliest reset.

use crate::shared_store::SharedStore;

use super::http_date::parse_http_date_ms;
use super::settings::ProviderSettings;
use super::timefmt::{parse_go_duration_ms, parse_millis_ms, parse_rfc3339_ms, parse_seconds_ms};
use crate::shared_store::cas_update;

/// Longest back-off window accepted from a provider (one hour); longer hints are clamped.
pub const MAX_BACKOFF_HINT_MS: u64 = 3_600_000;

/// How a reset header's value is written.
#[derive(Clone, Copy)]
enum ResetFormat {
    /// Relative Go duration (`6m0s`).
    GoDuration,
    /// Absolute RFC 3339 timestamp.
    Rfc3339,
}

/// (reset header, matching remaining header, format).
const RESET_HEADERS: &[(&str, &str, ResetFormat)] = &[
    (
        "x-ratelimit-reset-requests",
        "x-ratelimit-remaining-requests",
        ResetFormat::GoDuration,
    ),
    (
        "x-ratelimit-reset-tokens",
        "x-ratelimit-remaining-tokens",
        ResetFormat::GoDuration,
    ),
    (
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-requests-remaining",
        ResetFormat::Rfc3339,
    ),
    (
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-tokens-remaining",
        ResetFormat::Rfc3339,
    ),
    (
        "anthropic-ratelimit-input-tokens-reset",
        "anthropic-ratelimit-input-tokens-remaining",
        ResetFormat::Rfc3339,
    ),
    (
        "anthropic-ratelimit-output-tokens-reset",
        "anthropic-ratelimit-output-tokens-remaining",
        ResetFormat::Rfc3339,
    ),
];

/// The first value of header `name` (case-insensitive), trimmed.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A relative delay as an absolute time, clamped to [`MAX_BACKOFF_HINT_MS`].
fn after(now_ms: u64, delay_ms: u64) -> u64 {
    now_ms.saturating_add(delay_ms.min(MAX_BACKOFF_HINT_MS))
}

/// An absolute Unix-ms time (maybe in the past), clamped to [`MAX_BACKOFF_HINT_MS`] ahead.
fn until_absolute(now_ms: u64, at_ms: i64) -> u64 {
    let at = u64::try_from(at_ms).unwrap_or(0);
    at.min(now_ms.saturating_add(MAX_BACKOFF_HINT_MS))
}

/// `retry-after`: delta seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime).
fn retry_after(value: &str, now_ms: u64) -> Option<u64> {
    if let Some(delay) = parse_seconds_ms(value) {
        return Some(after(now_ms, delay));
    }
    parse_http_date_ms(value, now_ms).map(|at| until_absolute(now_ms, at))
}

/// Reads the provider's back-off hint from response headers: the time (Unix ms) before which
/// the provider should not be sent traffic, or `None` when there is no usable hint or it is
/// already past. Malformed values are ignored, never fatal.
pub fn parse_backoff_hint(headers: &[(String, String)], now_ms: u64) -> Option<u64> {
    let explicit = header(headers, "retry-after-ms")
        .and_then(parse_millis_ms)
        .map(|delay| after(now_ms, delay))
        .or_else(|| header(headers, "retry-after").and_then(|v| retry_after(v, now_ms)));
    if let Some(until) = explicit {
        return (until > now_ms).then_some(until);
    }

    let mut earliest: Option<u64> = None;
    let mut latest_exhausted: Option<u64> = None;
    for (reset_name, remaining_name, format) in RESET_HEADERS {
        let Some(value) = header(headers, reset_name) else {
            continue;
        };
        let until = match format {
            ResetFormat::GoDuration => parse_go_duration_ms(value).map(|d| after(now_ms, d)),
            ResetFormat::Rfc3339 => parse_rfc3339_ms(value).map(|at| until_absolute(now_ms, at)),
        };
        let Some(until) = until.filter(|u| *u > now_ms) else {
            continue;
        };
        earliest = Some(earliest.map_or(until, |e| e.min(until)));
        let exhausted = header(headers, remaining_name)
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|remaining| remaining == 0);
        if exhausted {
            latest_exhausted = Some(latest_exhausted.map_or(until, |l| l.max(until)));
        }
    }
    latest_exhausted.or(earliest)
}

/// Records that `provider` asked for no traffic before `until_ms` (CAS, bounded retries). A
/// later window already stored is kept. Returns false when every CAS attempt lost the race.
pub fn record_backoff<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    until_ms: u64,
) -> bool {
    cas_update(store, &provider.backoff_key, |stored| {
        let current = stored.and_then(decode_until).unwrap_or(0);
        let write = (until_ms > current).then(|| until_ms.to_string().into_bytes());
        (write, ())
    })
    .is_some()
}

/// The provider's back-off window end if it is still in the future at `now_ms`.
pub fn backoff_until<S: SharedStore + ?Sized>(
    store: &S,
    provider: &ProviderSettings,
    now_ms: u64,
) -> Option<u64> {
    let (bytes, _) = store.get(&provider.backoff_key)?;
    decode_until(&bytes).filter(|until| *until > now_ms)
}

fn decode_until(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::failover::settings::tests::sample;
    use crate::shared_store::MemoryStore;

    /// 2024-01-01T00:00:00Z.
    const NOW: u64 = 1_704_067_200_000;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retry_after_seconds_and_date() {
        assert_eq!(
            parse_backoff_hint(&h(&[("Retry-After", "30")]), NOW),
            Some(NOW + 30_000)
        );
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", " 1.5 ")]), NOW),
            Some(NOW + 1_500)
        );
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", "Mon, 01 Jan 2024 00:00:20 GMT")]), NOW),
            Some(NOW + 20_000)
        );
        // The obsolete forms RFC 9110 §5.6.7 requires recipients to accept.
        assert_eq!(
            parse_backoff_hint(
                &h(&[("retry-after", "Monday, 01-Jan-24 00:00:20 GMT")]),
                NOW
            ),
            Some(NOW + 20_000)
        );
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", "Mon Jan  1 00:00:20 2024")]), NOW),
            Some(NOW + 20_000)
        );
        // A date in the past or a zero delay needs no back-off.
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", "Sun, 31 Dec 2023 23:59:00 GMT")]), NOW),
            None
        );
        assert_eq!(parse_backoff_hint(&h(&[("retry-after", "0")]), NOW), None);
    }

    #[test]
    fn retry_after_ms_wins() {
        let headers = h(&[("retry-after", "30"), ("retry-after-ms", "250")]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 250));
        let headers = h(&[("retry-after-ms", "bogus"), ("retry-after", "2")]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 2_000));
    }

    #[test]
    fn openai_reset_durations() {
        let headers = h(&[
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 1_000));
        let headers = h(&[
            ("x-ratelimit-reset-requests", "20ms"),
            ("x-ratelimit-remaining-requests", "5"),
            ("x-ratelimit-reset-tokens", "2m3.5s"),
            ("x-ratelimit-remaining-tokens", "0"),
        ]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 123_500));
    }

    #[test]
    fn anthropic_reset_timestamps() {
        let headers = h(&[
            ("anthropic-ratelimit-requests-reset", "2024-01-01T00:00:05Z"),
            ("anthropic-ratelimit-tokens-reset", "2024-01-01T00:00:10Z"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2024-01-01T00:00:07Z",
            ),
            ("anthropic-ratelimit-input-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2024-01-01T00:00:03+00:00",
            ),
        ]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 7_000));
        let headers = h(&[(
            "anthropic-ratelimit-output-tokens-reset",
            "2024-01-01T00:00:03.250Z",
        )]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 3_250));
        let past = h(&[("anthropic-ratelimit-tokens-reset", "2023-01-01T00:00:00Z")]);
        assert_eq!(parse_backoff_hint(&past, NOW), None);
    }

    #[test]
    fn hints_are_clamped_to_an_hour() {
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", "999999999999")]), NOW),
            Some(NOW + MAX_BACKOFF_HINT_MS)
        );
        assert_eq!(
            parse_backoff_hint(&h(&[("x-ratelimit-reset-tokens", "99999h")]), NOW),
            Some(NOW + MAX_BACKOFF_HINT_MS)
        );
        assert_eq!(
            parse_backoff_hint(
                &h(&[("anthropic-ratelimit-tokens-reset", "9999-12-31T23:59:59Z")]),
                NOW
            ),
            Some(NOW + MAX_BACKOFF_HINT_MS)
        );
        assert_eq!(
            parse_backoff_hint(&h(&[("retry-after", "1")]), u64::MAX - 5),
            Some(u64::MAX)
        );
    }

    #[test]
    fn malformed_headers_give_none() {
        let cases: &[&[(&str, &str)]] = &[
            &[],
            &[("content-type", "application/json")],
            &[("retry-after", "")],
            &[("retry-after", "soon")],
            &[("retry-after", "-5")],
            &[("retry-after", "Mon, 01 Jan 2024 00:00:20")],
            &[("retry-after-ms", "1e3")],
            &[("x-ratelimit-reset-requests", "1")],
            &[("x-ratelimit-reset-tokens", "six minutes")],
            &[("x-ratelimit-reset-tokens", "-1s")],
            &[("anthropic-ratelimit-requests-reset", "2024-01-01 nope")],
            &[("anthropic-ratelimit-tokens-reset", "1704067205")],
            &[("anthropic-ratelimit-output-tokens-reset", "\u{0}\u{ff}")],
        ];
        for headers in cases {
            assert_eq!(parse_backoff_hint(&h(headers), NOW), None, "{headers:?}");
        }
    }

    #[test]
    fn random_header_values_never_panic() {
        const ALPHABET: &[char] = &[
            '0', '1', '9', '.', '-', '+', ':', 'T', 'Z', 'z', 'G', 'M', 'h', 'm', 's', 'u', 'n',
            'µ', ' ', ',', 'S', 'u', 'N', 'o', 'v', '\u{0}', 'é', '*',
        ];
        const NAMES: &[&str] = &[
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-reset-requests",
            "x-ratelimit-reset-tokens",
            "x-ratelimit-remaining-tokens",
            "anthropic-ratelimit-requests-reset",
            "anthropic-ratelimit-output-tokens-reset",
            "anthropic-ratelimit-output-tokens-remaining",
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 32) as usize;
            let value: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let name = NAMES[(next() % NAMES.len() as u64) as usize];
            let now = next() % (u64::MAX / 2);
            if let Some(until) = parse_backoff_hint(&h(&[(name, &value)]), now) {
                assert!(
                    until > now && until <= now + MAX_BACKOFF_HINT_MS,
                    "{name}: {value:?}"
                );
            }
        }
    }

    #[test]
    fn malformed_values_do_not_hide_good_ones() {
        let headers = h(&[
            ("x-ratelimit-reset-requests", "garbage"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-tokens", "2s"),
            ("x-ratelimit-remaining-tokens", "x"),
        ]);
        assert_eq!(parse_backoff_hint(&headers, NOW), Some(NOW + 2_000));
    }

    #[test]
    fn backoff_windows_in_shared_data() {
        let s = sample();
        let p = &s.providers[0];
        let store = MemoryStore::default();
        assert_eq!(backoff_until(&store, p, NOW), None);
        assert!(record_backoff(&store, p, NOW + 5_000));
        assert_eq!(backoff_until(&store, p, NOW), Some(NOW + 5_000));
        // An earlier window does not shorten a later one.
        assert!(record_backoff(&store, p, NOW + 1_000));
        assert_eq!(backoff_until(&store, p, NOW), Some(NOW + 5_000));
        assert!(record_backoff(&store, p, NOW + 9_000));
        assert_eq!(backoff_until(&store, p, NOW + 8_999), Some(NOW + 9_000));
        assert_eq!(backoff_until(&store, p, NOW + 9_000), None);
        // Other providers are unaffected; garbage reads as no window.
        assert_eq!(backoff_until(&store, &s.providers[1], NOW), None);
        store.set(&s.providers[1].backoff_key, b"junk", None);
        assert_eq!(backoff_until(&store, &s.providers[1], NOW), None);
        assert!(record_backoff(&store, &s.providers[1], NOW + 1));
        assert_eq!(backoff_until(&store, &s.providers[1], NOW), Some(NOW + 1));
    }
}
