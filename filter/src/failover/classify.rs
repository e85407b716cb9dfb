//! Failure classification: what an upstream attempt's result means for failover (deliver it,
//! retry or fail over, or hand a client error back unchanged).

/// Why an attempt failed in a way worth retrying elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection could be made (or no response arrived at all).
    ConnectFailure,
    /// The connection was reset mid-request.
    Reset,
    /// The attempt ran out of time.
    Timeout,
    /// The provider answered with a 5xx status.
    Status5xx(u16),
    /// The provider answered 429 Too Many Requests.
    RateLimited,
}

impl FailureKind {
    /// Stable snake_case label for metrics and logs (`status_5xx` for every 5xx).
    pub fn label(self) -> &'static str {
        match self {
            Self::ConnectFailure => "connect_failure",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Status5xx(_) => "status_5xx",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status the provider sent, if any.
    pub fn status(self) -> Option<u16> {
        match self {
            Self::Status5xx(status) => Some(status),
            Self::RateLimited => Some(429),
            Self::ConnectFailure | Self::Reset | Self::Timeout => None,
        }
    }
}

/// What one attempt's result means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A usable response (any status below 400): deliver it.
    Success,
    /// A transient failure: retry the provider or fail over.
    Retryable(FailureKind),
    /// A 4xx other than 429: the request itself is at fault; return it to the client as-is.
    ClientError(u16),
}

impl Outcome {
    /// Stable snake_case label for the `outcome` metric tag.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ClientError(_) => "client_error",
            Self::Retryable(kind) => kind.label(),
        }
    }

    /// Whether the response should go back to the client (no further attempts).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Retryable(_))
    }
}

/// Classifies an attempt from its response status (`None` when no response arrived), whether
/// the stream was reset, and whether it timed out. Timeout wins over reset, which wins over the
/// status; a missing or sub-100 status is a connect failure.
pub fn classify(status: Option<u16>, reset: bool, timeout: bool) -> Outcome {
    if timeout {
        return Outcome::Retryable(FailureKind::Timeout);
    }
    if reset {
        return Outcome::Retryable(FailureKind::Reset);
    }
    match status {
        None => Outcome::Retryable(FailureKind::ConnectFailure),
        Some(s) if s < 100 => Outcome::Retryable(FailureKind::ConnectFailure),
        Some(429) => Outcome::Retryable(FailureKind::RateLimited),
        Some(s) if s >= 500 => Outcome::Retryable(FailureKind::Status5xx(s)),
        Some(s) if s >= 400 => Outcome::ClientError(s),
        Some(_) => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(Some(200), false, false), Outcome::Success);
        assert_eq!(classify(Some(204), false, false), Outcome::Success);
        assert_eq!(classify(Some(304), false, false), Outcome::Success);
        assert_eq!(
            classify(Some(429), false, false),
            Outcome::Retryable(FailureKind::RateLimited)
        );
        for s in [500, 502, 503, 504, 529, 599, 600, 999] {
            assert_eq!(
                classify(Some(s), false, false),
                Outcome::Retryable(FailureKind::Status5xx(s))
            );
        }
        for s in [400, 401, 403, 404, 408, 413, 422, 499] {
            assert_eq!(classify(Some(s), false, false), Outcome::ClientError(s));
        }
    }

    #[test]
    fn transport_failures_are_retryable() {
        assert_eq!(
            classify(None, false, false),
            Outcome::Retryable(FailureKind::ConnectFailure)
        );
        assert_eq!(
            classify(Some(0), false, false),
            Outcome::Retryable(FailureKind::ConnectFailure)
        );
        assert_eq!(
            classify(Some(200), true, false),
            Outcome::Retryable(FailureKind::Reset)
        );
        assert_eq!(
            classify(None, true, true),
            Outcome::Retryable(FailureKind::Timeout)
        );
    }

    #[test]
    fn labels_and_finality() {
        assert_eq!(Outcome::Success.label(), "success");
        assert_eq!(Outcome::ClientError(404).label(), "client_error");
        assert_eq!(
            Outcome::Retryable(FailureKind::Status5xx(502)).label(),
            "status_5xx"
        );
        assert_eq!(FailureKind::Status5xx(502).status(), Some(502));
        assert_eq!(FailureKind::RateLimited.status(), Some(429));
        assert_eq!(FailureKind::Timeout.status(), None);
        assert!(Outcome::Success.is_final());
        assert!(Outcome::ClientError(400).is_final());
        assert!(!Outcome::Retryable(FailureKind::Reset).is_final());
    }
}
