//! A harness for real-Envoy tests: renders a bootstrap on free ports, starts the project's
//! Envoy 1.40 (from the `.venv` the Makefile creates), waits for `/ready`, and stops it on drop,
//! printing Envoy's log when the test that owns it failed.
//!
//! Config templates use `{{NAME}}` placeholders; [`Vars`] fills them. The well-known ones the
//! harness always provides: `LISTENER_PORT`, `ADMIN_PORT`, `WASM` (absolute path of the built
//! module), `ACCESS_LOG` (a file in the test's temp dir), `ROOT` (repo root).
//!
//! Environment: `ENVOY_BIN`, `TOLLGATE_WASM`, `ENVOY_CONCURRENCY` (workers, default 1) and
//! `ENVOY_COMPONENT_LOG_LEVEL` (default `wasm:debug`; long runs such as `make soak` lower it).

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use tollgate_mock_provider as mock;

pub mod production;
pub mod providers;
pub mod ratelimit;
pub mod sidecar;
pub mod tls;
pub mod walk;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make setup` installed into `.venv`.
pub fn envoy_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let lib = repo_root().join(".venv/lib");
    if let Ok(entries) = fs::read_dir(&lib) {
        for e in entries.flatten() {
            let candidate = e.path().join("site-packages/envoy/_bin/envoy");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!("no Envoy binary: run `make setup` (or set ENVOY_BIN)");
}

/// The built module: `$TOLLGATE_WASM`, else `target/tollgate.wasm`.
pub fn wasm_path() -> PathBuf {
    std::env::var_os("TOLLGATE_WASM")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/tollgate.wasm"))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// A fresh temporary directory for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("tollgate-e2e-{}-{tag}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Template variables.
#[derive(Debug, Default, Clone)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    /// No variables yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable.
    pub fn set(mut self, name: &str, value: impl ToString) -> Self {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.to_string()));
        self
    }

    /// Adds the plugin configuration as `PLUGIN_CONFIG`, quoted as a YAML/JSON string.
    pub fn plugin_config(self, json: &str) -> Self {
        let quoted = serde_json::to_string(json).expect("string serializes");
        self.set("PLUGIN_CONFIG", quoted)
    }

    /// Renders a template, failing on any placeholder left unfilled.
    pub fn render(&self, template: &str) -> String {
        let mut out = template.to_string();
        for (k, v) in &self.0 {
            out = out.replace(&format!("{{{{{k}}}}}"), v);
        }
        if let Some(i) = out.find("{{") {
            let end = out[i..].find("}}").map(|j| i + j + 2).unwrap_or(out.len());
            panic!("unfilled placeholder {}", &out[i..end]);
        }
        out
    }
}

/// Reads a config template from `envoy/` (path relative to that directory).
pub fn template(relative: &str) -> String {
    let path = repo_root().join("envoy").join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Runs `envoy --mode validate` on a config; returns (success, combined output).
pub fn validate(yaml: &str) -> (bool, String) {
    validate_with_env(yaml, &[])
}

/// Like [`validate`], with extra environment variables for Envoy (validation loads the Wasm
/// module and configures it, so e.g. provider keys read from the environment must be set).
pub fn validate_with_env(yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = temp_dir("validate");
    let path = dir.join("envoy.yaml");
    fs::write(&path, yaml).expect("write config");
    let out = Command::new(envoy_binary())
        .envs(env.iter().copied())
        .arg("--mode")
        .arg("validate")
        .arg("-c")
        .arg(&path)
        .arg("--disable-hot-restart")
        .arg("--log-level")
        .arg("warn")
        .output()
        .expect("run envoy --mode validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = fs::remove_dir_all(&dir);
    (out.status.success(), text)
}

/// A running Envoy.
pub struct Envoy {
    child: Option<Child>,
    /// The HTTP listener port.
    pub port: u16,
    /// The admin port.
    pub admin_port: u16,
    /// The test's temp dir (config, logs).
    pub dir: PathBuf,
    log_path: PathBuf,
    access_log: PathBuf,
}

/// Why Envoy did not become ready.
#[derive(Debug)]
pub struct StartError {
    /// Exit status, if it exited.
    pub exit: Option<std::process::ExitStatus>,
    /// Envoy's log.
    pub log: String,
}

impl Envoy {
    /// Renders `template` with `vars` plus the well-known variables and starts Envoy.
    /// Panics (printing Envoy's log) if it does not become ready.
    pub fn start(template: &str, vars: Vars) -> Envoy {
        match Self::try_start(template, vars) {
            Ok(e) => e,
            Err(err) => panic!("envoy did not start ({:?}); log:\n{}", err.exit, err.log),
        }
    }

    /// Like [`Envoy::start`], with extra environment variables for the Envoy process (e.g.
    /// provider keys a config exports to the Wasm VM through `host_env_keys`).
    pub fn start_with_env(template: &str, vars: Vars, env: &[(&str, &str)]) -> Envoy {
        match Self::try_start_with_env(template, vars, env) {
            Ok(e) => e,
            Err(err) => panic!("envoy did not start ({:?}); log:\n{}", err.exit, err.log),
        }
    }

    /// Like [`Envoy::start`], but returns the failure (used to test refused configs).
    pub fn try_start(template: &str, vars: Vars) -> Result<Envoy, StartError> {
        Self::try_start_with_env(template, vars, &[])
    }

    /// Like [`Envoy::try_start`], with extra environment variables for the Envoy process.
    pub fn try_start_with_env(
        template: &str,
        vars: Vars,
        env: &[(&str, &str)],
    ) -> Result<Envoy, StartError> {
        let dir = temp_dir("envoy");
        let port = free_port();
        let admin_port = free_port();
        let access_log = dir.join("access.log");
        let vars = vars
            .set("LISTENER_PORT", port)
            .set("ADMIN_PORT", admin_port)
            .set("WASM", wasm_path().display())
            .set("ACCESS_LOG", access_log.display())
            .set("ROOT", repo_root().display());
        let yaml = vars.render(template);
        let config = dir.join("envoy.yaml");
        fs::write(&config, &yaml).expect("write config");
        let log_path = dir.join("envoy.log");
        let log_file = fs::File::create(&log_path).expect("create log");
        let child = Command::new(envoy_binary())
            .envs(env.iter().copied())
            .arg("-c")
            .arg(&config)
            .arg("--disable-hot-restart")
            .arg("--concurrency")
            .arg(std::env::var("ENVOY_CONCURRENCY").unwrap_or_else(|_| "1".into()))
            .arg("--log-level")
            .arg("info")
            .arg("--component-log-level")
            .arg(
                std::env::var("ENVOY_COMPONENT_LOG_LEVEL")
                    .ok()
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "wasm:debug".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("spawn envoy");
        let mut envoy = Envoy {
            child: Some(child),
            port,
            admin_port,
            dir,
            log_path,
            access_log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = envoy.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    envoy.child = None;
                    return Err(StartError {
                        exit: Some(status),
                        log: envoy.log(),
                    });
                }
            }
            if let Ok(r) = mock::client::request(admin_port, "GET", "/ready", &[], b"") {
                if r.status == 200 {
                    return Ok(envoy);
                }
            }
            if Instant::now() > deadline {
                return Err(StartError {
                    exit: None,
                    log: envoy.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The access log so far, one entry per line.
    pub fn access_log(&self) -> Vec<String> {
        fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the access log has at least `n` lines (it is flushed asynchronously).
    pub fn wait_access_log(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.access_log();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET on the admin interface.
    pub fn admin(&self, path: &str) -> String {
        let r =
            mock::client::request(self.admin_port, "GET", path, &[], b"").expect("admin request");
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// The sum of the `/stats` counters whose line contains both `name` and `filter` (a stat
    /// summed over its labels, e.g. `tollgate_mesh_budget_total` and `outcome=failed_open`).
    pub fn stat_sum(&self, name: &str, filter: &str) -> u64 {
        self.admin("/stats")
            .lines()
            .filter(|l| l.contains(name) && l.contains(filter))
            .filter_map(|l| l.rsplit(": ").next()?.trim().parse::<u64>().ok())
            .sum()
    }

    /// `/stats/prometheus` text.
    pub fn prometheus(&self) -> String {
        self.admin("/stats/prometheus")
    }

    /// Envoy's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- envoy log ({}) ----\n{}",
                self.log_path.display(),
                self.log()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// A process's resident set size (`VmRSS`) in KiB; 0 when unreadable.
pub fn rss_kib(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

/// The wasm linear memories of a process (Envoy's V8 VMs), from `/proc/<pid>/smaps`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WasmMemory {
    /// Wasm memories found (one per VM).
    pub vms: usize,
    /// Their committed size (`memory.size`) together, KiB; it only grows.
    pub committed_kib: f64,
    /// The resident part of it, KiB.
    pub resident_kib: f64,
}

/// Envoy 1.40 exposes no V8 memory stat, so wasm memory is read from the mappings: V8 reserves
/// each wasm memory with a guard region of several GiB (`---p`), and the read-write mapping that
/// ends where that guard begins is the VM's committed linear memory.
pub fn wasm_memory(pid: u32) -> WasmMemory {
    fs::read_to_string(format!("/proc/{pid}/smaps"))
        .map(|smaps| wasm_memory_in_smaps(&smaps))
        .unwrap_or_default()
}

/// [`wasm_memory`] on the text of an `smaps` file.
pub fn wasm_memory_in_smaps(smaps: &str) -> WasmMemory {
    struct Vma {
        start: u64,
        end: u64,
        perms: String,
        size_kib: f64,
        rss_kib: f64,
    }
    let mut vmas: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                vmas.push(Vma {
                    start,
                    end,
                    perms: parts.next().unwrap_or("").to_string(),
                    size_kib: 0.0,
                    rss_kib: 0.0,
                });
                continue;
            }
        }
        let value = || parts.clone().next().and_then(|v| v.parse::<f64>().ok());
        if let Some(vma) = vmas.last_mut() {
            match first {
                "Size:" => vma.size_kib = value().unwrap_or(0.0),
                "Rss:" => vma.rss_kib = value().unwrap_or(0.0),
                _ => {}
            }
        }
    }
    let mut out = WasmMemory::default();
    for pair in vmas.windows(2) {
        let [mem, guard] = pair else {
            continue;
        };
        if guard.perms == "---p"
            && guard.end - guard.start >= 4 << 30
            && mem.end == guard.start
            && mem.perms.starts_with("rw")
        {
            out.vms += 1;
            out.committed_kib += mem.size_kib;
            out.resident_kib += mem.rss_kib;
        }
    }
    out
}

/// Unpadded base64url (RFC 4648 §5), e.g. for JWK `k` values in test configs.
pub fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Reads a whole file (helper for tests that check repo files).
pub fn read(path: &Path) -> String {
    let mut s = String::new();
    fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three mappings as Envoy 1.40's V8 lays out one wasm memory (the 1216 KiB read-write
    /// linear memory right in front of its 8 GiB guard), then an unrelated large `---p`
    /// reservation not preceded by an adjacent read-write mapping.
    const SMAPS: &str = "\
7f247e000000-7f247e420000 r-xp 00000000 00:00 0
Size:               4224 kB
Rss:                 100 kB
7f247e420000-7f247e550000 rw-p 00000000 00:00 0
Size:               1216 kB
Rss:                 172 kB
7f247e550000-7f267e420000 ---p 00000000 00:00 0
Size:            8387392 kB
Rss:                   0 kB
429c00000000-429c3fe00000 ---p 00000000 00:00 0
Size:            1046528 kB
Rss:                   0 kB
7f2b00000000-7f2b00010000 rw-p 00000000 00:00 0
Size:                 64 kB
Rss:                  64 kB
7f2b00020000-7f2d00020000 ---p 00000000 00:00 0
Size:            8388608 kB
Rss:                   0 kB
";

    #[test]
    fn finds_the_linear_memory_in_front_of_each_guard_region() {
        let m = wasm_memory_in_smaps(SMAPS);
        assert_eq!(m.vms, 1, "the last guard has a gap before it: {m:?}");
        assert_eq!(m.committed_kib, 1216.0);
        assert_eq!(m.resident_kib, 172.0);
    }

    #[test]
    fn no_wasm_memory_in_an_empty_or_unreadable_map() {
        assert_eq!(wasm_memory_in_smaps(""), WasmMemory::default());
        assert_eq!(wasm_memory(u32::MAX), WasmMemory::default());
    }
}
