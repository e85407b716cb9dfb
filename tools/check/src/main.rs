//! `tollgate-check [--deny-warnings] FILE...`: checks Envoy bootstraps that load tollgate
//! (`make check CONFIG=…`). Prints one line per finding (`file:line: error: field: message`) and
//! exits 1 when a file has an error (or a warning, with `--deny-warnings`), 2 on bad usage.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut deny_warnings = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--deny-warnings" => deny_warnings = true,
            "-h" | "--help" => {
                println!("usage: tollgate-check [--deny-warnings] ENVOY_BOOTSTRAP.yaml|json ...");
                return ExitCode::SUCCESS;
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("usage: tollgate-check [--deny-warnings] ENVOY_BOOTSTRAP.yaml|json ...");
        return ExitCode::from(2);
    }
    let mut ok = true;
    for file in &files {
        let report = tollgate_check::check_file(Path::new(file));
        for finding in &report.findings {
            println!("{finding}");
        }
        let passes = report.passes(deny_warnings);
        let errors = report
            .at_least(tollgate_check::Severity::Error)
            .count();
        let warnings = report.findings.len() - errors;
        println!(
            "{file}: {} tollgate filter(s), {errors} error(s), {warnings} warning(s){}",
            report.filters,
            if passes { "" } else { ": FAILED" }
        );
        ok &= passes;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
