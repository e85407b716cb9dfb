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
            "--schema" => {
                let schema = tollgate_check::schema::config_schema();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&schema).unwrap_or_default()
                );
                return ExitCode::SUCCESS;
            }
            "--write-docs" => {
                // docs/tollgate.schema.json and the field reference of docs/configuration.md.
                return match write_docs() {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("tollgate-check --write-docs: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
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
        let errors = report.at_least(tollgate_check::Severity::Error).count();
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

/// Writes `docs/tollgate.schema.json` and the generated section of `docs/configuration.md`
/// (paths relative to the current directory: run from the repository root, as `make schema`
/// does).
fn write_docs() -> std::io::Result<()> {
    let schema = tollgate_check::schema::config_schema();
    let json = serde_json::to_string_pretty(&schema).map_err(std::io::Error::other)?;
    std::fs::write("docs/tollgate.schema.json", format!("{json}\n"))?;
    let reference = tollgate_check::schema::reference_markdown(&schema);
    let page = std::fs::read_to_string("docs/configuration.md")?;
    std::fs::write(
        "docs/configuration.md",
        tollgate_check::schema::splice_reference(&page, &reference),
    )
}
