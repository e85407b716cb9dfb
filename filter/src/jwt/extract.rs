//! Token extraction from a request (headers, query parameters, cookies) and the request edits
//! that remove the token again before the request goes upstream (`forward: false`).
//!
//! Stricter than Envoy: finding more than one token for a provider (two locations, or one
//! header sent twice) is refused as `multiple_tokens`, so the upstream can never read a
//! different token from the one verified.

use super::errors::JwtError;
use super::settings::TokenLocation;

/// Where a token was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// In this (lowercase) header.
    Header(String),
    /// In this query parameter.
    Query(String),
    /// In this cookie.
    Cookie(String),
}

/// A token found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedToken {
    /// The token text (no prefix, trimmed).
    pub token: String,
    /// Where it was found.
    pub source: TokenSource,
}

/// An edit the host applies to the client request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestEdit {
    /// Remove every value of this (lowercase) header.
    RemoveHeader(String),
    /// Set this header to this value (replacing existing values).
    SetHeader(String, String),
    /// Replace `:path` with this value.
    SetPath(String),
}

/// Read access to request headers, names compared ASCII case-insensitively.
pub trait HeaderLookup {
    /// Every value of header `name` (lowercase), in order.
    fn values(&self, name: &str) -> Vec<String>;

    /// The first value of header `name`.
    fn first(&self, name: &str) -> Option<String> {
        self.values(name).into_iter().next()
    }
}

impl HeaderLookup for [(String, String)] {
    fn values(&self, name: &str) -> Vec<String> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

impl HeaderLookup for Vec<(String, String)> {
    fn values(&self, name: &str) -> Vec<String> {
        self.as_slice().values(name)
    }
}

/// A `HeaderLookup` over a closure returning all values of a (lowercase) header name,
/// e.g. wrapping the host's header-map getter.
pub struct HeaderFn<F>(pub F);

impl<F> HeaderLookup for HeaderFn<F>
where
    F: Fn(&str) -> Vec<String>,
{
    fn values(&self, name: &str) -> Vec<String> {
        (self.0)(name)
    }
}

/// The query part of a path (after `?`, before `#`), if any.
fn query_of(path: &str) -> Option<&str> {
    let (_, rest) = path.split_once('?')?;
    Some(rest.split('#').next().unwrap_or(""))
}

/// Values of query parameter `name` in `path` (raw, not percent-decoded).
pub fn query_values<'a>(path: &'a str, name: &str) -> Vec<&'a str> {
    let Some(query) = query_of(path) else {
        return Vec::new();
    };
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
        .collect()
}

/// Values of cookie `name` across all `cookie` header values.
pub fn cookie_values<'a, S: AsRef<str>>(cookie_headers: &'a [S], name: &str) -> Vec<&'a str> {
    cookie_headers
        .iter()
        .flat_map(|h| h.as_ref().split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        })
        .collect()
}

/// Finds the token for a provider with these `locations`. `Ok(None)` when there is none;
/// `Err(MultipleTokens)` when more than one is found; `Err(Malformed)` when a location's
/// header has the right name but not the prefix or an empty token.
pub fn extract_token<H: HeaderLookup + ?Sized>(
    locations: &[TokenLocation],
    headers: &H,
    path: &str,
) -> Result<Option<ExtractedToken>, JwtError> {
    let mut found: Vec<ExtractedToken> = Vec::new();
    for loc in locations {
        match loc {
            TokenLocation::Header { name, prefix } => {
                for value in headers.values(name) {
                    let token = strip_prefix_ignore_case(value.trim(), prefix)
                        .ok_or(JwtError::Malformed)?
                        .trim();
                    if token.is_empty() {
                        return Err(JwtError::Malformed);
                    }
                    found.push(ExtractedToken {
                        token: token.to_string(),
                        source: TokenSource::Header(name.clone()),
                    });
                }
            }
            TokenLocation::Query(name) => {
                for value in query_values(path, name) {
                    found.push(ExtractedToken {
                        token: value.to_string(),
                        source: TokenSource::Query(name.clone()),
                    });
                }
            }
            TokenLocation::Cookie(name) => {
                let cookie_headers = headers.values("cookie");
                for value in cookie_values(&cookie_headers, name) {
                    found.push(ExtractedToken {
                        token: value.to_string(),
                        source: TokenSource::Cookie(name.clone()),
                    });
                }
            }
        }
        if found.len() > 1 {
            return Err(JwtError::MultipleTokens);
        }
    }
    Ok(found.pop())
}

/// `value` without `prefix` (ASCII case-insensitive), if it starts with it.
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, tail) = value.split_at_checked(prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then_some(tail)
}

/// The edits removing `token` from the request, given the current `path` and `cookie`
/// header values. Header tokens remove the header; query tokens rewrite `:path` without the
/// parameter; cookie tokens rewrite `cookie` without that cookie (or remove it when empty).
pub fn strip_token_edits<S: AsRef<str>>(
    source: &TokenSource,
    path: &str,
    cookie_headers: &[S],
) -> Vec<RequestEdit> {
    match source {
        TokenSource::Header(name) => vec![RequestEdit::RemoveHeader(name.clone())],
        TokenSource::Query(name) => vec![RequestEdit::SetPath(remove_query_param(path, name))],
        TokenSource::Cookie(name) => {
            let kept: Vec<&str> = cookie_headers
                .iter()
                .flat_map(|h| h.as_ref().split(';'))
                .map(str::trim)
                .filter(|pair| {
                    !pair.is_empty()
                        && pair
                            .split_once('=')
                            .is_none_or(|(k, _)| k.trim() != name.as_str())
                })
                .collect();
            if kept.is_empty() {
                vec![RequestEdit::RemoveHeader("cookie".into())]
            } else {
                vec![RequestEdit::SetHeader("cookie".into(), kept.join("; "))]
            }
        }
    }
}

/// `path` without every occurrence of query parameter `name`.
pub fn remove_query_param(path: &str, name: &str) -> String {
    let (base, rest) = match path.split_once('?') {
        Some(parts) => parts,
        None => return path.to_string(),
    };
    let (query, fragment) = match rest.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (rest, None),
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && k != name
        })
        .collect();
    let mut out = base.to_string();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn bearer() -> Vec<TokenLocation> {
        vec![TokenLocation::Header {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }]
    }

    #[test]
    fn bearer_header() {
        let headers = h(&[("Authorization", "Bearer abc.def.ghi")]);
        let t = extract_token(&bearer(), &headers, "/").unwrap().unwrap();
        assert_eq!(t.token, "abc.def.ghi");
        assert_eq!(t.source, TokenSource::Header("authorization".into()));
        let headers = h(&[("authorization", "bearer  abc.def.ghi ")]);
        assert_eq!(
            extract_token(&bearer(), &headers, "/")
                .unwrap()
                .unwrap()
                .token,
            "abc.def.ghi"
        );
        assert_eq!(extract_token(&bearer(), &h(&[]), "/").unwrap(), None);
        assert_eq!(
            extract_token(&bearer(), &h(&[("authorization", "Basic Zm9v")]), "/"),
            Err(JwtError::Malformed)
        );
        assert_eq!(
            extract_token(&bearer(), &h(&[("authorization", "Bearer ")]), "/"),
            Err(JwtError::Malformed)
        );
        let two = h(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ]);
        assert_eq!(
            extract_token(&bearer(), &two, "/"),
            Err(JwtError::MultipleTokens)
        );
    }

    #[test]
    fn query_and_cookie_and_closure() {
        let locs = vec![
            TokenLocation::Query("access_token".into()),
            TokenLocation::Cookie("session".into()),
        ];
        let t = extract_token(&locs, &h(&[]), "/v1/x?a=1&access_token=t.o.k#f")
            .unwrap()
            .unwrap();
        assert_eq!(t.token, "t.o.k");
        let headers = h(&[("cookie", "a=1; session=c.o.k; b=2")]);
        let t = extract_token(&locs, &headers, "/v1").unwrap().unwrap();
        assert_eq!(t.token, "c.o.k");
        assert_eq!(t.source, TokenSource::Cookie("session".into()));
        assert_eq!(
            extract_token(&locs, &headers, "/v1?access_token=x.y.z"),
            Err(JwtError::MultipleTokens)
        );
        let lookup = HeaderFn(|name: &str| {
            if name == "authorization" {
                vec!["Bearer q.r.s".to_string()]
            } else {
                vec![]
            }
        });
        assert_eq!(
            extract_token(&bearer(), &lookup, "/")
                .unwrap()
                .unwrap()
                .token,
            "q.r.s"
        );
    }

    #[test]
    fn strip_edits() {
        assert_eq!(
            strip_token_edits::<&str>(&TokenSource::Header("authorization".into()), "/", &[]),
            vec![RequestEdit::RemoveHeader("authorization".into())]
        );
        assert_eq!(
            strip_token_edits::<&str>(
                &TokenSource::Query("access_token".into()),
                "/p?a=1&access_token=x&b=2#f",
                &[]
            ),
            vec![RequestEdit::SetPath("/p?a=1&b=2#f".into())]
        );
        assert_eq!(
            remove_query_param("/p?access_token=x", "access_token"),
            "/p"
        );
        assert_eq!(
            strip_token_edits(
                &TokenSource::Cookie("session".into()),
                "/",
                &["a=1; session=x", "b=2"]
            ),
            vec![RequestEdit::SetHeader("cookie".into(), "a=1; b=2".into())]
        );
        assert_eq!(
            strip_token_edits(&TokenSource::Cookie("session".into()), "/", &["session=x"]),
            vec![RequestEdit::RemoveHeader("cookie".into())]
        );
    }
}
