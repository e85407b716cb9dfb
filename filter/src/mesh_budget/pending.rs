//! Completion charges on their way to the service, and the ones that failed: a bounded queue
//! that merges charges to the same descriptor and re-sends them once the service answers again.
//!
//! Every completion charge goes through the queue; the host sends one batch at a time (at most
//! [`MAX_BATCH`] descriptors in one call) and reports how it went. A failed batch goes back into
//! the queue and the next attempt waits `retry_interval_ms`. Merging bounds memory by distinct
//! descriptors (caller × window × measure), not by requests: an outage of any length costs at
//! most `max_pending_charges` entries. Only when that many distinct descriptors are already
//! waiting is a charge to a new one dropped, and the dropped hits are reported so the host can
//! count them exactly.
//!
//! A batch whose answer timed out may have been applied by the service; re-sending it then
//! charges it twice. That errs against the caller, never against the budget.

use std::collections::BTreeMap;

use super::plan::Charge;
use super::Measure;
use crate::ratelimit_rpc::LimitOverride;

/// Most descriptors sent in one call.
pub const MAX_BATCH: usize = 64;

/// What happened to a pushed charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Waiting (new, or merged into a waiting charge to the same descriptor).
    Waiting,
    /// The queue is full of other descriptors: these hits are lost.
    Dropped {
        /// What the charge counted.
        measure: Measure,
        /// Hits lost.
        hits: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    entries: Vec<(String, String)>,
    limit: LimitOverride,
    measure: Measure,
}

/// The queue of one VM.
#[derive(Debug, Clone)]
pub struct PendingCharges {
    waiting: BTreeMap<Key, u64>,
    in_flight: Option<Vec<Charge>>,
    max_entries: usize,
    retry_interval_ms: u64,
    next_attempt_ms: u64,
}

impl PendingCharges {
    /// An empty queue keeping at most `max_entries` distinct descriptors.
    pub fn new(max_entries: usize, retry_interval_ms: u64) -> Self {
        Self {
            waiting: BTreeMap::new(),
            in_flight: None,
            max_entries: max_entries.max(1),
            retry_interval_ms,
            next_attempt_ms: 0,
        }
    }

    /// Adds a charge, merging it into a waiting one to the same descriptor.
    pub fn push(&mut self, charge: Charge) -> Queued {
        if charge.hits == 0 {
            return Queued::Waiting;
        }
        let key = Key {
            entries: charge.entries,
            limit: charge.limit,
            measure: charge.measure,
        };
        if let Some(hits) = self.waiting.get_mut(&key) {
            *hits = hits.saturating_add(charge.hits);
            return Queued::Waiting;
        }
        if self.waiting.len() >= self.max_entries {
            return Queued::Dropped {
                measure: key.measure,
                hits: charge.hits,
            };
        }
        self.waiting.insert(key, charge.hits);
        Queued::Waiting
    }

    /// Whether a batch should be sent now: something waits, nothing is in flight, and the pause
    /// after the last failure is over.
    pub fn due(&self, now_ms: u64) -> bool {
        !self.waiting.is_empty() && self.in_flight.is_none() && now_ms >= self.next_attempt_ms
    }

    /// Takes up to [`MAX_BATCH`] waiting charges as the batch in flight.
    pub fn take_batch(&mut self) -> Vec<Charge> {
        let mut batch = Vec::new();
        while batch.len() < MAX_BATCH {
            let Some((key, hits)) = self.waiting.pop_first() else {
                break;
            };
            batch.push(Charge {
                entries: key.entries,
                limit: key.limit,
                measure: key.measure,
                hits,
            });
        }
        if !batch.is_empty() {
            self.in_flight = Some(batch.clone());
        }
        batch
    }

    /// The batch in flight was applied by the service.
    pub fn batch_sent(&mut self) {
        self.in_flight = None;
    }

    /// The batch in flight failed: back into the queue (merged), and wait before the next try.
    /// Returns what had to be dropped because the queue filled up meanwhile.
    pub fn batch_failed(&mut self, now_ms: u64) -> Vec<Queued> {
        self.next_attempt_ms = now_ms.saturating_add(self.retry_interval_ms);
        let batch = self.in_flight.take().unwrap_or_default();
        batch
            .into_iter()
            .map(|c| self.push(c))
            .filter(|q| matches!(q, Queued::Dropped { .. }))
            .collect()
    }

    /// Whether a batch is in flight.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Distinct descriptors waiting.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Hits waiting (and in flight) for `measure`.
    pub fn hits(&self, measure: Measure) -> u64 {
        let waiting = self
            .waiting
            .iter()
            .filter(|(k, _)| k.measure == measure)
            .fold(0u64, |a, (_, h)| a.saturating_add(*h));
        let flying = self
            .in_flight
            .iter()
            .flatten()
            .filter(|c| c.measure == measure)
            .fold(0u64, |a, c| a.saturating_add(c.hits));
        waiting.saturating_add(flying)
    }
}
