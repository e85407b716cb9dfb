//! The own client loops (sections 2 and 4, the concurrency-1 latency, `cache`, `mesh`): one
//! request at a time per scenario on a kept-alive connection, alternating between scenarios,
//! with each request's timings and the Envoy CPU each scenario used.

use crate::CHAT_PATH;
use std::io;
use std::time::Instant;
use tollgate_benches::process_cpu_us;
use tollgate_e2e::mock::client::{Connection, Response};
use tollgate_e2e::{Envoy, Vars};

/// One request's timings, microseconds from just before the request was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) head_us: f64,
    pub(crate) first_chunk_us: f64,
    pub(crate) total_us: f64,
}

/// A scenario driven by the sequential client loop.
pub(crate) struct LoopScenario {
    pub(crate) name: String,
    pub(crate) port: u16,
    pub(crate) envoy: Option<Envoy>,
    pub(crate) body: String,
    /// Request headers beyond `content-type` (e.g. a bearer token).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) stream: bool,
    pub(crate) conn: Option<Connection>,
    pub(crate) samples: Vec<Sample>,
    pub(crate) errors: u64,
    /// Requests sent, warm-up included.
    pub(crate) sent: u64,
    pub(crate) cpu_us: u64,
    pub(crate) last_error: Option<String>,
}

impl LoopScenario {
    pub(crate) fn new(
        name: &str,
        port: u16,
        envoy: Option<Envoy>,
        body: String,
        stream: bool,
    ) -> Self {
        LoopScenario {
            name: name.to_string(),
            port,
            envoy,
            body,
            headers: Vec::new(),
            stream,
            conn: None,
            samples: Vec::new(),
            errors: 0,
            sent: 0,
            cpu_us: 0,
            last_error: None,
        }
    }

    /// Adds request headers.
    pub(crate) fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.envoy.as_ref().and_then(Envoy::pid)
    }

    /// One request on the kept-alive connection (reopened once if the server closed it).
    pub(crate) fn request_once(&mut self) -> io::Result<(u16, Sample)> {
        for attempt in 0..2 {
            let conn = match self.conn.take() {
                Some(c) => c,
                None => Connection::open(self.port)?,
            };
            match self.exchange(conn) {
                Ok(r) => return Ok(r),
                Err(e) if attempt == 0 => self.last_error = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("unreachable retry loop"))
    }

    pub(crate) fn exchange(&mut self, mut conn: Connection) -> io::Result<(u16, Sample)> {
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        headers.extend(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let t0 = Instant::now();
        if self.stream {
            let mut s = conn.stream("POST", CHAT_PATH, &headers, self.body.as_bytes())?;
            let head_us = micros(t0);
            let _first = s.next_chunk()?;
            let first_chunk_us = micros(t0);
            let _rest = s.read_to_end()?;
            let total_us = micros(t0);
            let status = s.status;
            let keep = !s
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            if keep {
                self.conn = Some(s.into_connection());
            }
            Ok((
                status,
                Sample {
                    head_us,
                    first_chunk_us,
                    total_us,
                },
            ))
        } else {
            let resp: Response = conn.request("POST", CHAT_PATH, &headers, self.body.as_bytes())?;
            let total_us = micros(t0);
            if !resp
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
            {
                self.conn = Some(conn);
            }
            Ok((
                resp.status,
                Sample {
                    head_us: total_us,
                    first_chunk_us: total_us,
                    total_us,
                },
            ))
        }
    }

    /// Runs one request and records it: `expect` is the status that counts as success.
    pub(crate) fn measure(&mut self, expect: u16) {
        self.sent += 1;
        match self.request_once() {
            Ok((status, sample)) if status == expect => self.samples.push(sample),
            Ok((status, _)) => {
                self.errors += 1;
                self.last_error = Some(format!("status {status}"));
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some(e.to_string());
                self.conn = None;
            }
        }
    }
}

pub(crate) fn micros(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e6
}

/// Warms every scenario up, then sends `samples` requests to each, one scenario after the other
/// request by request, recording Envoy CPU over the measured part. `expect[i]` is the status
/// scenario `i` should answer.
pub(crate) fn run_loops(scenarios: &mut [LoopScenario], expect: &[u16], samples: usize) {
    let warmup = 30.min(samples);
    for _ in 0..warmup {
        for (s, status) in scenarios.iter_mut().zip(expect) {
            s.measure(*status);
        }
    }
    for s in scenarios.iter_mut() {
        s.samples.clear();
        s.errors = 0;
    }
    let cpu_before: Vec<u64> = scenarios
        .iter()
        .map(|s| s.pid().and_then(process_cpu_us).unwrap_or(0))
        .collect();
    for _ in 0..samples {
        for (s, status) in scenarios.iter_mut().zip(expect) {
            s.measure(*status);
        }
    }
    for (s, before) in scenarios.iter_mut().zip(cpu_before) {
        let after = s.pid().and_then(process_cpu_us).unwrap_or(0);
        s.cpu_us = after.saturating_sub(before);
        if let Some(e) = &s.last_error {
            if s.errors > 0 {
                eprintln!("{}: {} errors, last: {e}", s.name, s.errors);
            }
        }
    }
}

pub(crate) fn cpu_cell(s: &LoopScenario) -> String {
    if s.envoy.is_none() || s.samples.is_empty() {
        "–".into()
    } else {
        format!(
            "{:.1}",
            s.cpu_us as f64 / (s.samples.len() as u64 + s.errors) as f64
        )
    }
}

pub(crate) fn start_envoy(name: &str, config: &str, vars: Vars) -> Option<Envoy> {
    eprintln!("starting Envoy: {name}");
    match Envoy::try_start(config, vars) {
        Ok(e) => Some(e),
        Err(e) => {
            let tail: String = e.log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            eprintln!("Envoy for {name:?} did not start:\n{tail}");
            None
        }
    }
}
