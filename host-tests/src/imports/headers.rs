//! Header maps: whole-map get and set, and single-value get, replace, add and remove, on the
//! current stream's request/response headers and trailers or on the delivered callout response.
//! Names match case-insensitively; names the filter writes are stored lower-cased, as HTTP/2
//! and Envoy's header maps keep them.

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState, Headers, MapKind};
use crate::util::{deserialize_map, find_header, read_bytes, read_string, return_bytes, serialize_map};

/// The map of `kind` as the filter currently sees it.
fn get_map(st: &mut HostState, kind: MapKind) -> Headers {
    match kind {
        MapKind::CallResponseHeaders => st.call_response.0.clone(),
        MapKind::CallResponseTrailers => st.call_response.2.clone(),
        _ => st.stream().maps.get(&kind).cloned().unwrap_or_default(),
    }
}

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_get_header_map_pairs",
        |c, kind: i32, ret_ptr: i32, ret_size: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let map = get_map(c.data_mut(), kind);
            let bytes = if map.is_empty() {
                Vec::new()
            } else {
                serialize_map(&map)
            };
            return_bytes(&mut c, &bytes, ret_ptr, ret_size)?;
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_set_header_map_pairs",
        |c, kind: i32, ptr: i32, len: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let bytes = read_bytes(&mut c, ptr, len)?;
            let Some(map) = deserialize_map(&bytes) else {
                return Ok(status::BAD_ARGUMENT);
            };
            c.data_mut().stream().maps.insert(kind, map);
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_get_header_map_value",
        |c, kind: i32, kp: i32, kl: i32, ret_ptr: i32, ret_size: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let map = get_map(c.data_mut(), kind);
            match find_header(&map, &key) {
                Some(v) => {
                    let v = v.as_bytes().to_vec();
                    return_bytes(&mut c, &v, ret_ptr, ret_size)?;
                    Ok(status::OK)
                }
                None => Ok(status::NOT_FOUND),
            }
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_replace_header_map_value",
        |c, kind: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let value = read_string(&mut c, vp, vl)?;
            let map = c.data_mut().stream().maps.entry(kind).or_default();
            map.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            map.push((key.to_ascii_lowercase(), value));
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_add_header_map_value",
        |c, kind: i32, kp: i32, kl: i32, vp: i32, vl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            let value = read_string(&mut c, vp, vl)?;
            c.data_mut()
                .stream()
                .maps
                .entry(kind)
                .or_default()
                .push((key.to_ascii_lowercase(), value));
            Ok(status::OK)
        }
    )?;
    link!(
        linker,
        ENV,
        "proxy_remove_header_map_value",
        |c, kind: i32, kp: i32, kl: i32| {
            let Some(kind) = MapKind::from_code(kind) else {
                return Ok(status::BAD_ARGUMENT);
            };
            let key = read_string(&mut c, kp, kl)?;
            c.data_mut()
                .stream()
                .maps
                .entry(kind)
                .or_default()
                .retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
            Ok(status::OK)
        }
    )?;
    Ok(())
}
