//! The control API under `/__mock/`: inspect recorded requests and stats,
//! reset, set instance faults and the JWKS at runtime.
//!
//! | Method | Path | Effect |
//! |---|---|---|
//! | GET | `/__mock/requests` | JSON list of recorded requests |
//! | POST | `/__mock/reset` | clear records and stats, restore start-up faults |
//! | POST/PUT | `/__mock/faults` | set instance faults from JSON (`{"status":500,"count":3}`) |
//! | GET | `/__mock/faults` | current instance faults |
//! | DELETE | `/__mock/faults` | clear instance faults |
//! | PUT/POST | `/__mock/jwks[?path=/p]` | set the JWKS body (and also serve it at `/p`) |
//! | GET | `/__mock/jwks` | current JWKS body |
//! | PUT/POST | `/__mock/keyset` | set the tollgate key set served at `/tollgate/keys.json` |
//! | GET | `/__mock/keyset` | current key set body |
//! | GET | `/__mock/stats` | counters and reported token sums |

use crate::faults::Faults;
use crate::http::Request;
use crate::server::Shared;
use serde_json::{json, Value};
use std::sync::Arc;

fn error(status: u16, message: &str) -> (u16, String) {
    (status, json!({"error": {"message": message}}).to_string())
}

const OK: &str = "{\"ok\":true}";

/// Handles one control request; returns status and JSON body.
pub(crate) fn handle(shared: &Arc<Shared>, req: &Request) -> (u16, String) {
    let path = req.path().trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "/__mock/requests") => {
            let list: Vec<Value> = shared.state().records.iter().map(|r| r.to_json()).collect();
            (200, Value::Array(list).to_string())
        }
        ("POST", "/__mock/reset") => {
            shared.reset();
            (200, OK.into())
        }
        ("POST" | "PUT", "/__mock/faults") => {
            let parsed = serde_json::from_slice::<Value>(&req.body)
                .map_err(|e| e.to_string())
                .and_then(|v| Faults::from_json(&v));
            match parsed {
                Ok(f) => {
                    shared.set_faults(f);
                    (200, OK.into())
                }
                Err(e) => error(400, &e),
            }
        }
        ("GET", "/__mock/faults") => (200, shared.state().faults.to_json().to_string()),
        ("DELETE", "/__mock/faults") => {
            shared.set_faults(Faults::default());
            (200, OK.into())
        }
        ("PUT" | "POST", "/__mock/jwks") => {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            if serde_json::from_str::<Value>(&body).is_err() {
                return error(400, "JWKS body must be JSON");
            }
            let mut st = shared.state();
            st.jwks = body;
            if let Some(p) = req.query_param("path") {
                if !p.starts_with('/') {
                    return error(400, "path must start with /");
                }
                if !st.jwks_paths.contains(&p) {
                    st.jwks_paths.push(p);
                }
            }
            (200, OK.into())
        }
        ("GET", "/__mock/jwks") => (200, shared.state().jwks.clone()),
        ("PUT" | "POST", "/__mock/keyset") => {
            let body = String::from_utf8_lossy(&req.body).into_owned();
            if serde_json::from_str::<Value>(&body).is_err() {
                return error(400, "key set body must be JSON");
            }
            shared.state().keyset = body;
            (200, OK.into())
        }
        ("GET", "/__mock/keyset") => (200, shared.state().keyset.clone()),
        ("GET", "/__mock/stats") => (200, shared.state().stats.to_json().to_string()),
        _ => error(
            404,
            &format!("unknown control endpoint {} {}", req.method, path),
        ),
    }
}
