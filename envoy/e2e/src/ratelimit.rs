//! The real global rate limit service for tests and benches: Debian's `redis-server` on a free
//! port (stoppable and restartable on the same port, to take the store away mid-run) and
//! `envoy/e2e/ratelimit_service.py` (Envoy's RLS gRPC API over the `limits` library's fixed
//! windows in that Redis) from the project venv.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sidecar::Sidecar;
use crate::{free_port, temp_dir};

/// A `redis-server` process, killed on drop.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` (`$REDIS_SERVER`, else from `PATH`) on a free port, without
    /// persistence. Panics with its log if it does not answer `PING`.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            dir: temp_dir("redis"),
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server; its counters are gone with it (nothing is kept on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits until it answers `PING`.
    pub fn restart(&mut self) {
        self.stop();
        let binary = std::env::var_os("REDIS_SERVER")
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "redis-server".into());
        let log_path = self.dir.join("redis.log");
        let log = fs::File::create(&log_path).expect("create redis log");
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "spawn {}: {e} (Debian's redis-server: `make setup` installs it)",
                    binary.to_string_lossy()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer PING on {}:\n{}",
            self.port,
            fs::read_to_string(&log_path).unwrap_or_default()
        );
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        matches!(stream.read(&mut buf), Ok(7) if &buf == b"+PONG\r\n")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `ratelimit_service.py`, killed on drop (printing its stderr if the test failed).
pub struct RateLimitService {
    /// Its gRPC port.
    pub port: u16,
    sidecar: Sidecar,
}

impl RateLimitService {
    /// Starts the service on a free port, counting in the Redis at `redis_url`.
    pub fn start(redis_url: &str) -> RateLimitService {
        Self::start_with(redis_url, &[])
    }

    /// Like [`RateLimitService::start`] with extra arguments (`--limit`, `--unit`, …).
    pub fn start_with(redis_url: &str, args: &[&str]) -> RateLimitService {
        let mut all = vec!["--redis", redis_url, "--port", "0"];
        all.extend_from_slice(args);
        let sidecar = Sidecar::start(
            "ratelimit_service.py",
            &all,
            &["ratelimit listening on "],
            Duration::from_secs(30),
            "`make setup` installs limits[redis]",
        );
        RateLimitService {
            port: sidecar.port(0),
            sidecar,
        }
    }

    /// What the service wrote to stderr.
    pub fn stderr(&self) -> String {
        self.sidecar.stderr()
    }

    /// The service's process id.
    pub fn pid(&self) -> Option<u32> {
        self.sidecar.pid()
    }
}
