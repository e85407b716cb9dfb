//! The request headers during the request-headers hook. When authentication reads the whole map
//! anyway (JWT, virtual keys), it is fetched once, up front, and the hook's single-header reads
//! (correlation ids, the declared size, `:path`) come from that copy instead of one host call
//! each; otherwise every header is read alone, as before. Writes go to the host and into the
//! copy, so a later reader in the same hook sees what the host has.
//!
//! The copy answers exactly as [`Host::header`] would: the first value of a name (Envoy returns
//! the first of repeated headers), compared without case (Envoy lowercases names); a value that
//! was not valid UTF-8 (the copy holds it with replacement characters) is read from the host.

use std::borrow::Cow;

use super::host::{Host, Map};

/// The request header map, copied or read through.
#[derive(Debug, Default)]
pub struct RequestHeaders {
    copy: Option<Vec<(String, String)>>,
}

impl RequestHeaders {
    /// Copies the whole map when `whole` (something in this hook reads it all); otherwise reads
    /// go to the host one by one.
    pub fn fetch<H: Host>(host: &H, whole: bool) -> Self {
        Self {
            copy: whole.then(|| host.headers(Map::Request)),
        }
    }

    /// One header value, as [`Host::header`] gives it.
    pub fn get<H: Host>(&self, host: &H, name: &str) -> Option<String> {
        let Some(copy) = self.copy.as_ref() else {
            return host.header(Map::Request, name);
        };
        let (_, value) = copy.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))?;
        if value.contains(char::REPLACEMENT_CHARACTER) {
            // Perhaps not UTF-8 on the wire: the host decides.
            return host.header(Map::Request, name);
        }
        Some(value.clone())
    }

    /// The whole map (the copy, or fetched now).
    pub fn all<H: Host>(&self, host: &H) -> Cow<'_, [(String, String)]> {
        match self.copy.as_deref() {
            Some(copy) => Cow::Borrowed(copy),
            None => Cow::Owned(host.headers(Map::Request)),
        }
    }

    /// Sets (replaces) a header on the host and in the copy; false when the host refused.
    pub fn set<H: Host>(&mut self, host: &mut H, name: &str, value: &str) -> bool {
        let done = host.set_header(Map::Request, name, value);
        if let (true, Some(copy)) = (done, self.copy.as_mut()) {
            copy.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            copy.push((name.to_ascii_lowercase(), value.to_string()));
        }
        done
    }

    /// Removes a header from the host and the copy. A header the copy does not hold is not
    /// there: nothing to ask the host.
    pub fn remove<H: Host>(&mut self, host: &mut H, name: &str) -> bool {
        let Some(copy) = self.copy.as_mut() else {
            return host.remove_header(Map::Request, name);
        };
        if !copy.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return true;
        }
        let done = host.remove_header(Map::Request, name);
        if done {
            copy.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::fake::FakeHost;

    fn host() -> FakeHost {
        let mut host = FakeHost::default();
        host.set_map(
            Map::Request,
            &[
                (":path", "/v1/chat/completions"),
                ("x-request-id", "abc"),
                ("x-dup", "first"),
                ("x-dup", "second"),
            ],
        );
        host
    }

    #[test]
    fn the_copy_answers_as_the_host_would() {
        let host = host();
        let copy = RequestHeaders::fetch(&host, true);
        let live = RequestHeaders::fetch(&host, false);
        for name in [":path", "X-Request-Id", "x-dup", "absent"] {
            let expected = host.header(Map::Request, name);
            assert_eq!(copy.get(&host, name), expected, "{name}");
            assert_eq!(live.get(&host, name), expected, "{name}");
        }
        assert_eq!(copy.get(&host, "x-dup").as_deref(), Some("first"));
    }

    #[test]
    fn reads_come_from_the_copy_not_the_host() {
        let mut host = host();
        let copy = RequestHeaders::fetch(&host, true);
        let live = RequestHeaders::fetch(&host, false);
        host.set_map(Map::Request, &[("x-request-id", "changed behind its back")]);
        assert_eq!(copy.get(&host, "x-request-id").as_deref(), Some("abc"));
        assert_eq!(copy.all(&host).len(), 4);
        assert_eq!(
            live.get(&host, "x-request-id").as_deref(),
            Some("changed behind its back")
        );
    }

    #[test]
    fn writes_reach_the_host_and_the_copy() {
        let mut host = host();
        let mut copy = RequestHeaders::fetch(&host, true);
        assert!(copy.set(&mut host, "X-Request-Id", "new"));
        assert!(copy.remove(&mut host, "x-dup"));
        for name in ["x-request-id", "x-dup"] {
            assert_eq!(
                copy.get(&host, name),
                host.header(Map::Request, name),
                "{name}"
            );
        }
        let mut on_host = host.headers(Map::Request);
        let mut in_copy = copy.all(&host).into_owned();
        on_host.sort();
        in_copy.sort();
        assert_eq!(in_copy, on_host);
    }

    #[test]
    fn a_header_the_copy_lacks_is_not_removed_from_the_host() {
        let mut host = host();
        let mut copy = RequestHeaders::fetch(&host, true);
        let mut live = RequestHeaders::fetch(&host, false);
        // Added after the copy was taken (cannot happen within one hook): proves no host call.
        host.set_header(Map::Request, "tracestate", "a=b");
        assert!(copy.remove(&mut host, "tracestate"));
        assert_eq!(
            host.header(Map::Request, "tracestate").as_deref(),
            Some("a=b")
        );
        assert!(live.remove(&mut host, "tracestate"));
        assert_eq!(host.header(Map::Request, "tracestate"), None);
    }

    #[test]
    fn a_value_with_replacement_characters_is_read_from_the_host() {
        let mut host = FakeHost::default();
        host.set_map(Map::Request, &[("x-odd", "a\u{FFFD}b")]);
        let copy = RequestHeaders::fetch(&host, true);
        host.set_map(Map::Request, &[("x-odd", "from the host")]);
        assert_eq!(copy.get(&host, "x-odd").as_deref(), Some("from the host"));
    }
}
