//! Local replies: every response tollgate itself sends goes through [`ErrorReply`], so each has
//! the OpenAI error shape, a JSON content type and the correlation id, and leaks nothing else.

use serde::Serialize;

/// The error categories tollgate answers with, as the OpenAI error `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is malformed or refused by a guardrail (400).
    InvalidRequest,
    /// The caller is not authenticated (401).
    Authentication,
    /// The caller is authenticated but not allowed (403).
    Permission,
    /// A budget or rate limit was reached (429).
    RateLimit,
    /// No provider could serve the request (502/503/504).
    Upstream,
    /// Something inside tollgate failed; the details stay in the log (500).
    Internal,
}

impl ErrorKind {
    /// The OpenAI `error.type` string for this kind.
    pub fn as_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::RateLimit => "rate_limit_error",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Internal => "internal_error",
        }
    }
}

/// A local reply: status, body and headers, ready for the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// HTTP status code.
    pub status: u32,
    /// Error category.
    pub kind: ErrorKind,
    /// A short machine-readable code, e.g. `invalid_token`.
    pub code: String,
    /// A human-readable message; must never contain a secret or a token.
    pub message: String,
    /// Extra response headers (e.g. `www-authenticate`, `retry-after`).
    pub headers: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: BodyError<'a>,
}

#[derive(Serialize)]
struct BodyError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    request_id: &'a str,
}

impl ErrorReply {
    /// Creates a reply with no extra headers.
    pub fn new(status: u32, kind: ErrorKind, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The JSON body: `{"error":{"message","type","code","request_id"}}`.
    pub fn body(&self, request_id: &str) -> Vec<u8> {
        let body = Body {
            error: BodyError {
                message: &self.message,
                kind: self.kind.as_type(),
                code: &self.code,
                request_id,
            },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }

    /// All response headers: content type, the correlation header, then the extra ones.
    pub fn all_headers(&self, request_id_header: &str, request_id: &str) -> Vec<(String, String)> {
        let mut out = vec![
            ("content-type".to_string(), "application/json".to_string()),
            (request_id_header.to_string(), request_id.to_string()),
        ];
        out.extend(self.headers.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_openai_shape_and_request_id() {
        let r = ErrorReply::new(
            401,
            ErrorKind::Authentication,
            "invalid_token",
            "token expired",
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body("rid-1")).unwrap();
        assert_eq!(v["error"]["message"], "token expired");
        assert_eq!(v["error"]["type"], "authentication_error");
        assert_eq!(v["error"]["code"], "invalid_token");
        assert_eq!(v["error"]["request_id"], "rid-1");
    }

    #[test]
    fn message_is_json_escaped() {
        let r = ErrorReply::new(
            400,
            ErrorKind::InvalidRequest,
            "bad",
            "quote \" and \n newline",
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body("x")).unwrap();
        assert_eq!(v["error"]["message"], "quote \" and \n newline");
    }

    #[test]
    fn headers_carry_content_type_and_id() {
        let r = ErrorReply::new(429, ErrorKind::RateLimit, "budget", "over")
            .with_header("retry-after", "3");
        let h = r.all_headers("x-request-id", "abc");
        assert!(h.contains(&("content-type".into(), "application/json".into())));
        assert!(h.contains(&("x-request-id".into(), "abc".into())));
        assert!(h.contains(&("retry-after".into(), "3".into())));
    }
}
