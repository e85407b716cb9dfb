//! `mock-provider` binary: serves the mock LLM provider until killed.
//!
//! `mock-provider --port 8080 [--host 127.0.0.1] [--api-key KEY] [--fail-rate 0.3]
//! [--seed N] [--usage-in-every-chunk] [--jwks FILE] [--keyset FILE]`

use std::process::ExitCode;
use tollgate_mock_provider::{MockOptions, MockProvider};

const USAGE: &str = "usage: mock-provider [--port PORT] [--host HOST] [--api-key KEY] \
[--fail-rate 0..1] [--seed N] [--usage-in-every-chunk] [--jwks FILE] [--keyset FILE]";

fn parse_args(args: &[String]) -> Result<MockOptions, String> {
    let mut opts = MockOptions {
        port: 8080,
        ..MockOptions::default()
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--port" | "-p" => opts.port = value()?.parse().map_err(|_| "bad --port")?,
            "--host" => opts.host = value()?,
            "--api-key" => opts.required_api_key = Some(value()?),
            "--fail-rate" => {
                let rate: f64 = value()?.parse().map_err(|_| "bad --fail-rate")?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err("--fail-rate must be in 0..=1".into());
                }
                opts.fail_rate = Some(rate);
            }
            "--seed" => opts.seed = value()?.parse().map_err(|_| "bad --seed")?,
            "--usage-in-every-chunk" => opts.usage_in_every_chunk = true,
            "--jwks" => {
                let path = value()?;
                opts.jwks =
                    std::fs::read_to_string(&path).map_err(|e| format!("--jwks {path}: {e}"))?;
            }
            "--keyset" => opts.keyset_file = Some(value()?.into()),
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let host = opts.host.clone();
    let handle = match MockProvider::start(opts) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mock-provider: cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    println!("mock-provider listening on {host}:{}", handle.port());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    handle.wait();
    ExitCode::SUCCESS
}
