//! An in-memory [`Host`] for native tests, benches and fuzzing: header maps and bodies the test
//! sets, a clock it moves, a seeded random source, a [`MemoryStore`] for shared data, and a
//! record of everything the pipeline did — local replies, callouts, metric updates, properties,
//! log lines, resumes. Callout answers are scripted by the test: it puts the answer in the
//! callout maps ([`FakeHost::answer_callout`]) and calls the pipeline's callout method.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use super::host::{Body, GrpcCall, Host, HttpCall, Map, MetricId};
use crate::accounting::MetricKind;
use crate::random::IdRng;
use crate::shared_store::{MemoryStore, SharedStore};

/// A local reply the pipeline sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    /// Status code.
    pub status: u32,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl SentReply {
    /// A header of the reply.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// An HTTP callout the pipeline started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCall {
    /// Its token.
    pub token: u32,
    /// Target cluster.
    pub cluster: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout.
    pub timeout: Duration,
}

impl SentCall {
    /// A header of the call.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A gRPC callout the pipeline started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentGrpc {
    /// Its token.
    pub token: u32,
    /// Target cluster.
    pub cluster: String,
    /// Service and method.
    pub method: String,
    /// The encoded message.
    pub message: Vec<u8>,
}

/// The in-memory host. Every field is public so tests can set up and inspect anything.
#[derive(Debug)]
pub struct FakeHost {
    /// Map maps.
    pub maps: HashMap<Map, Vec<(String, String)>>,
    /// Body buffers (the current chunk, or everything held).
    pub bodies: HashMap<Body, Vec<u8>>,
    /// Properties by path joined with `.`.
    pub properties: HashMap<String, Vec<u8>>,
    /// Properties the pipeline set.
    pub set_properties: HashMap<String, Vec<u8>>,
    /// Local replies sent.
    pub replies: Vec<SentReply>,
    /// HTTP callouts started.
    pub calls: Vec<SentCall>,
    /// gRPC callouts started.
    pub grpc_calls: Vec<SentGrpc>,
    /// Refuse every callout.
    pub refuse_calls: bool,
    /// Requests resumed.
    pub request_resumes: usize,
    /// Responses resumed.
    pub response_resumes: usize,
    /// Route cache clears.
    pub route_cache_clears: usize,
    /// Defined metrics: name → (kind, id).
    pub metric_defs: HashMap<String, (MetricKind, MetricId)>,
    /// Metric values by id: counters add, histograms and gauges keep the last value.
    pub metric_values: HashMap<MetricId, u64>,
    /// Every histogram value recorded, by id.
    pub histogram_values: HashMap<MetricId, Vec<u64>>,
    /// Log lines.
    pub logs: RefCell<Vec<(log::Level, String)>>,
    /// The clock (ns since the epoch).
    pub clock_ns: Cell<u64>,
    /// Added to the clock at every read (0: the clock stands still).
    pub tick_ns: u64,
    /// The random source.
    pub rng: IdRng,
    /// Shared data.
    pub store: MemoryStore,
    next_token: u32,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    /// A host at 2026-01-01T00:00:00Z with empty maps.
    pub fn new() -> Self {
        Self {
            maps: HashMap::new(),
            bodies: HashMap::new(),
            properties: HashMap::new(),
            set_properties: HashMap::new(),
            replies: Vec::new(),
            calls: Vec::new(),
            grpc_calls: Vec::new(),
            refuse_calls: false,
            request_resumes: 0,
            response_resumes: 0,
            route_cache_clears: 0,
            metric_defs: HashMap::new(),
            metric_values: HashMap::new(),
            histogram_values: HashMap::new(),
            logs: RefCell::new(Vec::new()),
            clock_ns: Cell::new(1_767_225_600_000_000_000),
            tick_ns: 0,
            rng: IdRng::new(0x5EED),
            store: MemoryStore::default(),
            next_token: 1,
        }
    }

    /// Replaces a whole header map.
    pub fn set_map(&mut self, map: Map, pairs: &[(&str, &str)]) {
        self.maps.insert(
            map,
            pairs
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string()))
                .collect(),
        );
    }

    /// Sets a body buffer (the chunk the next body event reads).
    pub fn set_body(&mut self, body: Body, data: &[u8]) {
        self.bodies.insert(body, data.to_vec());
    }

    /// Scripts the answer of the callout about to be delivered: `None` status means no
    /// response (reset or timeout: Envoy delivers no headers).
    pub fn answer_callout(&mut self, status: Option<u16>, headers: &[(&str, &str)], body: &[u8]) {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(s) = status {
            pairs.push((":status".into(), s.to_string()));
        }
        pairs.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_string())),
        );
        self.maps.insert(Map::CalloutResponse, pairs);
        self.bodies.insert(Body::CalloutResponse, body.to_vec());
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.clock_ns.set(
            self.clock_ns
                .get()
                .saturating_add(ms.saturating_mul(1_000_000)),
        );
    }

    /// A counter's (or gauge's last) value by stat name; 0 when never recorded.
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_defs
            .get(name)
            .and_then(|(_, id)| self.metric_values.get(id))
            .copied()
            .unwrap_or(0)
    }

    /// Sum of every counter whose name starts with `prefix`.
    pub fn metric_sum(&self, prefix: &str) -> u64 {
        self.metric_defs
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .filter_map(|(_, (_, id))| self.metric_values.get(id))
            .sum()
    }

    /// A header of a map.
    pub fn get(&self, map: Map, name: &str) -> Option<&str> {
        self.maps.get(&map).and_then(|m| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }

    /// A property the pipeline set, as text.
    pub fn property_text(&self, name: &str) -> Option<String> {
        self.set_properties
            .get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Whether some log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.logs
            .try_borrow()
            .is_ok_and(|l| l.iter().any(|(_, line)| line.contains(needle)))
    }

    fn take_token(&mut self) -> u32 {
        let t = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        t
    }
}

impl SharedStore for FakeHost {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.store.get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        self.store.set(key, value, cas)
    }
}

impl Host for FakeHost {
    fn header(&self, map: Map, name: &str) -> Option<String> {
        self.get(map, name).map(str::to_string)
    }

    fn headers(&self, map: Map) -> Vec<(String, String)> {
        self.maps.get(&map).cloned().unwrap_or_default()
    }

    fn set_header(&mut self, map: Map, name: &str, value: &str) -> bool {
        let entries = self.maps.entry(map).or_default();
        let name = name.to_ascii_lowercase();
        entries.retain(|(k, _)| *k != name);
        entries.push((name, value.to_string()));
        true
    }

    fn remove_header(&mut self, map: Map, name: &str) -> bool {
        if let Some(entries) = self.maps.get_mut(&map) {
            entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        }
        true
    }

    fn body(&self, body: Body, size: usize) -> Vec<u8> {
        self.bodies
            .get(&body)
            .map(|b| b.iter().take(size).copied().collect())
            .unwrap_or_default()
    }

    fn replace_body(&mut self, body: Body, size: usize, data: &[u8]) -> bool {
        let buffer = self.bodies.entry(body).or_default();
        let keep: Vec<u8> = buffer.iter().skip(size).copied().collect();
        buffer.clear();
        buffer.extend_from_slice(data);
        buffer.extend_from_slice(&keep);
        true
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.properties.get(&path.join(".")).cloned()
    }

    fn set_property(&mut self, name: &str, value: &[u8]) -> bool {
        self.set_properties.insert(name.to_string(), value.to_vec());
        true
    }

    fn http_call(&mut self, call: &HttpCall<'_>) -> Option<u32> {
        if self.refuse_calls {
            return None;
        }
        let token = self.take_token();
        self.calls.push(SentCall {
            token,
            cluster: call.cluster.to_string(),
            headers: call
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: call.body.map(<[u8]>::to_vec).unwrap_or_default(),
            timeout: call.timeout,
        });
        Some(token)
    }

    fn grpc_call(&mut self, call: &GrpcCall<'_>) -> Option<u32> {
        if self.refuse_calls {
            return None;
        }
        let token = self.take_token();
        self.grpc_calls.push(SentGrpc {
            token,
            cluster: call.cluster.to_string(),
            method: format!("{}/{}", call.service, call.method),
            message: call.message.to_vec(),
        });
        Some(token)
    }

    fn send_reply(&mut self, status: u32, headers: &[(&str, &str)], body: &[u8]) -> bool {
        self.replies.push(SentReply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            body: body.to_vec(),
        });
        true
    }

    fn resume_request(&mut self) -> bool {
        self.request_resumes += 1;
        true
    }

    fn resume_response(&mut self) -> bool {
        self.response_resumes += 1;
        true
    }

    fn clear_route_cache(&mut self) -> bool {
        self.route_cache_clears += 1;
        true
    }

    fn now_ns(&self) -> u64 {
        let now = self.clock_ns.get();
        self.clock_ns.set(now.saturating_add(self.tick_ns));
        now
    }

    fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<MetricId> {
        let next = MetricId(u32::try_from(self.metric_defs.len()).unwrap_or(u32::MAX));
        Some(
            self.metric_defs
                .entry(name.to_string())
                .or_insert((kind, next))
                .1,
        )
    }

    fn increment_metric(&mut self, id: MetricId, n: u64) {
        let v = self.metric_values.entry(id).or_insert(0);
        *v = v.saturating_add(n);
    }

    fn record_metric(&mut self, id: MetricId, value: u64) {
        self.metric_values.insert(id, value);
        self.histogram_values.entry(id).or_default().push(value);
    }

    fn log(&self, level: log::Level, message: &str) {
        if let Ok(mut logs) = self.logs.try_borrow_mut() {
            logs.push((level, message.to_string()));
        }
    }
}
