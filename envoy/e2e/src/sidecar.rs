//! A helper process of the e2e tests: a Python script of `envoy/e2e/` run by the project venv
//! (`.venv/bin/python`), which binds OS-chosen ports and reports each on a stdout line such as
//! `rls listening on 40123`. Its stderr goes to a file, printed when a test fails; the process is
//! killed on drop. The RLS stub, the real rate limit service and the ext_proc server start this
//! way.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{repo_root, temp_dir};

/// A running sidecar script.
pub struct Sidecar {
    /// The script's name, for messages.
    name: String,
    child: Option<Child>,
    stderr_path: PathBuf,
    /// The ports it reported, in the order of the `port_lines` it was started with.
    ports: Vec<u16>,
}

impl Sidecar {
    /// Runs `envoy/e2e/<script>` with `args` under the venv's Python and waits up to `wait`
    /// until it has printed, for each of `port_lines`, a line `<prefix><port>`. Panics with its
    /// stderr and `hint` (what to install) when it does not.
    pub fn start(
        script: &str,
        args: &[&str],
        port_lines: &[&str],
        wait: Duration,
        hint: &str,
    ) -> Sidecar {
        let python = repo_root().join(".venv/bin/python");
        let path = repo_root().join("envoy/e2e").join(script);
        let name = script.trim_end_matches(".py").to_string();
        let stderr_path = temp_dir(&name).join("stderr");
        let stderr = fs::File::create(&stderr_path).expect("create the sidecar's stderr file");
        let mut child = Command::new(&python)
            .arg(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", python.display(), path.display()));
        let stdout = child.stdout.take().expect("stdout piped");
        let mut sidecar = Sidecar {
            name,
            child: Some(child),
            stderr_path,
            ports: vec![0; port_lines.len()],
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + wait;
        while sidecar.ports.contains(&0) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "{} did not report its ports ({hint}):\n{}",
                    sidecar.name,
                    sidecar.stderr()
                )
            });
            for (prefix, port) in port_lines.iter().zip(sidecar.ports.iter_mut()) {
                if let Some(number) = line.strip_prefix(prefix) {
                    *port = number.trim().parse().expect("a port number");
                }
            }
        }
        sidecar
    }

    /// The port reported on the `i`-th of its `port_lines`.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// What the script wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- {} stderr ----\n{}", self.name, self.stderr());
        }
    }
}
