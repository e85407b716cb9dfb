//! Correlation: the request id and trace context a request leaves with.
//!
//! Every generated id draws a fresh seed from the host's random source, so no id carries the
//! state that produced another (an id is not a secret, but it must not predict the next one).

use super::host::Host;
use super::Exchange;
use crate::correlation::{choose_request_id, decide_trace, uuid_v4, RequestIdSource};
use crate::random::IdRng;

/// A generator used for one id only, seeded from the host's random source.
fn fresh_rng<H: Host>(host: &mut H) -> IdRng {
    IdRng::new(host.random_u64())
}

impl Exchange {
    /// Validates or creates the request id and trace context and writes them upstream.
    pub(super) fn apply_correlation<H: Host>(&mut self, host: &mut H) {
        let vm = std::rc::Rc::clone(&self.vm);
        let corr = &vm.config.correlation;
        let canonical = self.req_headers.get(host, &corr.request_id_header);
        let aliases: Vec<Option<String>> = corr
            .aliases
            .iter()
            .map(|name| self.req_headers.get(host, name))
            .collect();
        let (id, source) = choose_request_id(
            canonical.as_deref(),
            aliases.iter().map(Option::as_deref),
            corr.max_length,
            || fresh_rng(host),
        );
        self.request_id = id;
        // A credential sent as the request id (by mistake or to smuggle it into logs) is not an id.
        let id_is_secret = source != RequestIdSource::Generated
            && vm
                .config
                .masking
                .engine
                .as_ref()
                .is_some_and(|e| !e.scan(self.request_id.as_bytes()).is_empty());
        let source = if id_is_secret {
            self.request_id = uuid_v4(&mut fresh_rng(host));
            RequestIdSource::Generated
        } else {
            source
        };
        if source != RequestIdSource::Canonical {
            self.req_headers
                .set(host, &corr.request_id_header, &self.request_id);
        }
        if source == RequestIdSource::Generated {
            vm.metrics.request_ids_generated.add(host, 1);
            if canonical.is_some() {
                self.log(host, log::Level::Debug, "replaced an invalid request id");
            }
        }
        // An alias that carried garbage must not travel upstream either.
        for (name, value) in corr.aliases.iter().zip(aliases.iter()) {
            if value.is_some() && value.as_deref() != Some(self.request_id.as_str()) {
                self.req_headers.set(host, name, &self.request_id);
            }
        }
        // Failover callouts carry the same trace context as the request itself: what was just
        // written, or what the request brought when tollgate leaves its trace context alone.
        self.trace_headers.clear();
        if corr.traceparent {
            let incoming = self.req_headers.get(host, "traceparent");
            let decision = decide_trace(incoming.as_deref(), &mut fresh_rng(host));
            let traceparent = decision.upstream.header_value();
            self.req_headers.set(host, "traceparent", &traceparent);
            self.trace_headers.push(("traceparent".into(), traceparent));
            if decision.continued {
                if let Some(state) = self.req_headers.get(host, "tracestate") {
                    self.trace_headers.push(("tracestate".into(), state));
                }
            } else {
                vm.metrics.traces_started.add(host, 1);
                self.req_headers.remove(host, "tracestate");
            }
        } else {
            self.trace_headers = ["traceparent", "tracestate"]
                .into_iter()
                .filter_map(|name| Some((name.to_string(), self.req_headers.get(host, name)?)))
                .collect();
        }
    }
}
