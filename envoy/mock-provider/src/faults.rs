//! Fault injection settings: the [`Faults`] a mock instance applies to every
//! request (set via the Rust API or `POST /__mock/faults`) or a single request
//! asks for with the `x-mock-fault` header, how the two are merged, and the
//! seeded PRNG behind `fail_rate`.

use serde_json::{json, Map, Value};

/// How the server breaks the TCP connection (always with an RST via `SO_LINGER` 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetMode {
    /// Read the whole request, then reset without sending a byte.
    BeforeResponse,
    /// Send the response headers and part of the body (half the stream events), then reset.
    MidStream,
}

/// A set of faults. Every field is optional; an all-default value means "behave normally".
///
/// In the `x-mock-fault` header they are written `key=value` or as a bare flag,
/// separated by `;` (or `,`): `status=429; retry_after=2`, `reset=mid`,
/// `truncate`, `echo_key`, `latency_ms=200`, `chunk_delay_ms=10`, `stream_bytes=50000000`.
/// The JSON form (control API) uses the same names: `{"status":500,"count":3}`,
/// `{"fail_rate":0.3,"seed":1}`, `{"reset":"before"}`, `{"truncate":true}`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Answer with this HTTP status and the provider's error body.
    pub status: Option<u16>,
    /// `Retry-After` header value in seconds (sent on error responses).
    pub retry_after: Option<u64>,
    /// `retry-after-ms` header value in milliseconds (sent on error responses).
    pub retry_after_ms: Option<u64>,
    /// Delay before the response headers are sent.
    pub latency_ms: Option<u64>,
    /// Delay between two stream events.
    pub chunk_delay_ms: Option<u64>,
    /// Reset the connection instead of (or in the middle of) responding.
    pub reset: Option<ResetMode>,
    /// End the stream cleanly at the HTTP level but without the final usage /
    /// terminator events (`[DONE]`, `message_stop`, `done:true`, ...).
    pub truncate: bool,
    /// Error bodies echo the full API key the request carried (a bare
    /// `echo_key` without `status` answers 401).
    pub echo_key: bool,
    /// Streaming only: keep emitting content until about this many body bytes
    /// were sent, then finish normally (usage + terminator).
    pub stream_bytes: Option<u64>,
    /// Instance faults only: apply to the next `count` requests, then clear.
    pub count: Option<u64>,
    /// Instance faults only: this fraction (0..=1) of requests get a 500.
    pub fail_rate: Option<f64>,
    /// Instance faults only: seed of the PRNG that draws `fail_rate` failures.
    pub seed: Option<u64>,
    /// Instance faults only: apply to requests whose path starts with this (one provider API of
    /// several served by one mock, e.g. `/v1/chat/completions` but not `/v1/messages`).
    pub path_prefix: Option<String>,
}

impl Faults {
    /// True when no fault is set.
    pub fn is_empty(&self) -> bool {
        *self == Faults::default()
    }

    /// Parses the `x-mock-fault` header syntax (`status=429; retry_after=2; truncate`).
    pub fn parse_header(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for item in spec.split([';', ',']) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            faults.set(key, value)?;
        }
        Ok(faults)
    }

    fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), String> {
        fn num(key: &str, value: Option<&str>) -> Result<u64, String> {
            value
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("fault `{key}` needs a non-negative integer value"))
        }
        fn flag(key: &str, value: Option<&str>) -> Result<bool, String> {
            match value {
                None | Some("true") | Some("1") | Some("yes") => Ok(true),
                Some("false") | Some("0") | Some("no") => Ok(false),
                Some(v) => Err(format!("fault `{key}` is a flag, got `{v}`")),
            }
        }
        match key {
            "status" => {
                let code = num(key, value)?;
                if !(100..=599).contains(&code) {
                    return Err(format!("fault status {code} is not an HTTP status"));
                }
                self.status = Some(code as u16);
            }
            "retry_after" => self.retry_after = Some(num(key, value)?),
            "retry_after_ms" => self.retry_after_ms = Some(num(key, value)?),
            "latency_ms" => self.latency_ms = Some(num(key, value)?),
            "chunk_delay_ms" => self.chunk_delay_ms = Some(num(key, value)?),
            "stream_bytes" => self.stream_bytes = Some(num(key, value)?),
            "count" => self.count = Some(num(key, value)?),
            "seed" => self.seed = Some(num(key, value)?),
            "path_prefix" => {
                self.path_prefix = Some(
                    value
                        .filter(|v| v.starts_with('/'))
                        .ok_or_else(|| {
                            "fault path_prefix needs a path starting with /".to_string()
                        })?
                        .to_string(),
                )
            }
            "reset" => {
                self.reset = match value.unwrap_or("before") {
                    "before" => Some(ResetMode::BeforeResponse),
                    "mid" => Some(ResetMode::MidStream),
                    "none" | "false" => None,
                    other => return Err(format!("fault reset must be before|mid, got `{other}`")),
                }
            }
            "truncate" => self.truncate = flag(key, value)?,
            "echo_key" => self.echo_key = flag(key, value)?,
            "fail_rate" => {
                let rate = value
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| "fault fail_rate needs a number in 0..=1".to_string())?;
                self.fail_rate = Some(rate);
            }
            other => return Err(format!("unknown fault `{other}`")),
        }
        Ok(())
    }

    /// Parses the JSON form used by `POST /__mock/faults`.
    pub fn from_json(value: &Value) -> Result<Faults, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| "faults must be a JSON object".to_string())?;
        let mut faults = Faults::default();
        for (key, v) in obj {
            let text = match v {
                Value::Null => continue,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(format!("fault `{key}` has an unsupported value")),
            };
            faults.set(key, Some(&text))?;
        }
        Ok(faults)
    }

    /// The JSON form of these faults (only the fields that are set).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        if let Some(v) = self.status {
            put("status", json!(v));
        }
        if let Some(v) = self.retry_after {
            put("retry_after", json!(v));
        }
        if let Some(v) = self.retry_after_ms {
            put("retry_after_ms", json!(v));
        }
        if let Some(v) = self.latency_ms {
            put("latency_ms", json!(v));
        }
        if let Some(v) = self.chunk_delay_ms {
            put("chunk_delay_ms", json!(v));
        }
        match self.reset {
            Some(ResetMode::BeforeResponse) => put("reset", json!("before")),
            Some(ResetMode::MidStream) => put("reset", json!("mid")),
            None => {}
        }
        if self.truncate {
            put("truncate", json!(true));
        }
        if self.echo_key {
            put("echo_key", json!(true));
        }
        if let Some(v) = self.stream_bytes {
            put("stream_bytes", json!(v));
        }
        if let Some(v) = self.count {
            put("count", json!(v));
        }
        if let Some(v) = self.fail_rate {
            put("fail_rate", json!(v));
        }
        if let Some(v) = self.seed {
            put("seed", json!(v));
        }
        if let Some(v) = &self.path_prefix {
            put("path_prefix", json!(v));
        }
        Value::Object(m)
    }

    /// `self` with every field that `over` sets replaced by `over`'s value.
    pub fn overridden_by(&self, over: &Faults) -> Faults {
        Faults {
            status: over.status.or(self.status),
            retry_after: over.retry_after.or(self.retry_after),
            retry_after_ms: over.retry_after_ms.or(self.retry_after_ms),
            latency_ms: over.latency_ms.or(self.latency_ms),
            chunk_delay_ms: over.chunk_delay_ms.or(self.chunk_delay_ms),
            reset: over.reset.or(self.reset),
            truncate: over.truncate || self.truncate,
            echo_key: over.echo_key || self.echo_key,
            stream_bytes: over.stream_bytes.or(self.stream_bytes),
            count: over.count.or(self.count),
            fail_rate: over.fail_rate.or(self.fail_rate),
            seed: over.seed.or(self.seed),
            path_prefix: over
                .path_prefix
                .clone()
                .or_else(|| self.path_prefix.clone()),
        }
    }
}

/// SplitMix64: tiny, fast, deterministic for a given seed.
#[derive(Clone, Debug)]
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Prng {
        Prng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// A uniform number in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header() {
        let f = Faults::parse_header("status=429; retry_after=2, echo_key;truncate").unwrap();
        assert_eq!(f.status, Some(429));
        assert_eq!(f.retry_after, Some(2));
        assert!(f.echo_key && f.truncate);
        assert_eq!(
            Faults::parse_header("reset=mid").unwrap().reset,
            Some(ResetMode::MidStream)
        );
        assert!(Faults::parse_header("bogus=1").is_err());
        assert!(Faults::parse_header("status=abc").is_err());
        assert!(Faults::parse_header("").unwrap().is_empty());
    }

    #[test]
    fn json_round_trip() {
        let f = Faults::from_json(&json!({"status":500,"count":3,"fail_rate":0.25,"seed":7,"reset":"before","truncate":true})).unwrap();
        assert_eq!(f.status, Some(500));
        assert_eq!(f.count, Some(3));
        assert_eq!(f.fail_rate, Some(0.25));
        assert_eq!(Faults::from_json(&f.to_json()).unwrap(), f);
        assert!(Faults::from_json(&json!([1])).is_err());
    }

    #[test]
    fn prng_is_deterministic_and_uniform() {
        let mut a = Prng::new(1);
        let mut b = Prng::new(1);
        let xs: Vec<f64> = (0..1000).map(|_| a.next_f64()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.next_f64()).collect();
        assert_eq!(xs, ys);
        let below = xs.iter().filter(|x| **x < 0.3).count();
        assert!((250..350).contains(&below), "{below}");
    }
}
