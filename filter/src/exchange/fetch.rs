//! Remote documents (JWKS, key sets) fetched by callout: one GET dispatch and one reading of
//! the answer for every [`Fetcher`].

use std::time::Duration;

use super::host::{Body, Host, HttpCall, Map};
use crate::refresh::{Document, FetchFailure, Fetcher};

/// Starts `fetcher`'s fetch as a GET callout from the current context: the callout token, or
/// `None` when the host refused the call (recorded as a failed fetch, and logged).
pub fn dispatch<H: Host, D: Document>(
    host: &mut H,
    fetcher: &mut Fetcher<D>,
    now_ms: u64,
) -> Option<u32> {
    let req = fetcher.request();
    let headers = [
        (":method", "GET"),
        (":path", req.path.as_str()),
        (":authority", req.authority.as_str()),
        ("accept", "application/json"),
    ];
    let call = HttpCall {
        cluster: &req.cluster,
        headers: &headers,
        body: None,
        timeout: Duration::from_millis(req.timeout_ms),
    };
    match host.http_call(&call) {
        Some(token) => {
            fetcher.on_fetch_started(now_ms);
            Some(token)
        }
        None => {
            let refused = FetchFailure::Transport("dispatch refused".into());
            let _ = fetcher.on_fetch_result(now_ms, Err(refused));
            host.log(
                log::Level::Warn,
                &format!(
                    "tollgate: {} fetch for cluster {} refused by the host",
                    D::NAME,
                    req.cluster
                ),
            );
            None
        }
    }
}

/// The answer of a fetch callout (read from the host): the body of a 200, or why it failed.
pub fn answer<H: Host>(host: &H, body_size: usize) -> Result<Vec<u8>, FetchFailure> {
    let status = host
        .header(Map::CalloutResponse, ":status")
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200) => Ok(host.body(Body::CalloutResponse, body_size)),
        Some(code) => Err(FetchFailure::Status(code)),
        None => Err(FetchFailure::Transport(
            "no response (timeout or reset)".into(),
        )),
    }
}
