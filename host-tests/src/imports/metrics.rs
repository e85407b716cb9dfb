//! Metrics, shared between VMs like Envoy's stats: defining a name twice returns the same id;
//! counters and gauges keep a value, histograms also keep every recorded sample (see
//! [`Metric`]).

use wasmtime::Linker;

use super::ENV;
use crate::link;
use crate::state::{status, HostState, Metric};
use crate::util::{read_string, write_u32, write_u64};

pub(super) fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    link!(
        linker,
        ENV,
        "proxy_define_metric",
        |c, kind: i32, np: i32, nl: i32, ret_id: i32| {
            let name = read_string(&mut c, np, nl)?;
            let id = {
                let shared = c.data().shared.clone();
                let mut st = shared.lock();
                match st.metrics.iter().position(|m| m.name == name) {
                    Some(i) => i,
                    None => {
                        st.metrics.push(Metric {
                            name,
                            kind,
                            value: 0,
                            samples: Vec::new(),
                        });
                        st.metrics.len() - 1
                    }
                }
            };
            write_u32(&mut c, ret_id, id as u32)?;
            Ok(status::OK)
        }
    )?;
    link!(linker, ENV, "proxy_increment_metric", |c, id: i32, offset: i64| {
        let shared = c.data().shared.clone();
        let mut st = shared.lock();
        match st.metrics.get_mut(id as u32 as usize) {
            Some(m) => {
                m.value += offset;
                Ok(status::OK)
            }
            None => Ok(status::NOT_FOUND),
        }
    })?;
    link!(linker, ENV, "proxy_record_metric", |c, id: i32, value: i64| {
        let shared = c.data().shared.clone();
        let mut st = shared.lock();
        match st.metrics.get_mut(id as u32 as usize) {
            Some(m) => {
                m.value = value;
                if m.kind == 2 {
                    m.samples.push(value as u64);
                }
                Ok(status::OK)
            }
            None => Ok(status::NOT_FOUND),
        }
    })?;
    link!(linker, ENV, "proxy_get_metric", |c, id: i32, ret: i32| {
        let value = {
            let shared = c.data().shared.clone();
            let st = shared.lock();
            st.metrics.get(id as u32 as usize).map(|m| m.value)
        };
        match value {
            Some(v) => {
                write_u64(&mut c, ret, v as u64)?;
                Ok(status::OK)
            }
            None => Ok(status::NOT_FOUND),
        }
    })?;
    Ok(())
}
