//! The measurements `make soak` and `make bench` rely on, checked on a real Envoy 1.40: the wasm
//! VMs' linear memory is found in `/proc/<envoy>/smaps` (one per VM, as many as Envoy's
//! `wasm.wasm_vm_count` stat says), and Envoy's RSS is read.

use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{rss_kib, template, wasm_memory, Envoy, Vars};

#[test]
fn wasm_linear_memory_of_every_vm_is_found_in_envoys_mappings() {
    let mock = MockProvider::start(MockOptions::default()).unwrap();
    let envoy = Envoy::start(
        &template("e2e/configs/basic.yaml"),
        Vars::new()
            .set("UPSTREAM_PORT", mock.port())
            .plugin_config("{}"),
    );
    let pid = envoy.pid().unwrap();
    let vm_count: usize = envoy
        .admin("/stats")
        .lines()
        .find_map(|l| l.strip_prefix("wasm.wasm_vm_count: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("wasm.wasm_vm_count stat");
    let memory = wasm_memory(pid);
    assert!(
        vm_count >= 2,
        "a worker VM and the main thread's: {vm_count}"
    );
    assert_eq!(memory.vms, vm_count, "{memory:?}");
    // tollgate's module declares more than 1 MiB of initial memory (its data and stack).
    assert!(
        memory.committed_kib / memory.vms as f64 >= 1024.0,
        "{memory:?}"
    );
    assert!(memory.resident_kib > 0.0 && memory.resident_kib <= memory.committed_kib);
    let rss = rss_kib(pid);
    assert!(rss > 10.0 * 1024.0, "Envoy's RSS in KiB: {rss}");
}
