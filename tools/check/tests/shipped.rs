//! `tollgate-check` on every Envoy config this repository ships (part of `make test`).
//!
//! - The configs an operator copies — the demo, the production config, the compose rendering of
//!   the demo and the README's complete example — pass every check, warnings included.
//! - The test and bench templates (`envoy/e2e/configs/`, `benches/`) are rendered with stand-in
//!   values for their `{{PLACEHOLDERS}}` and must have no error. Where a template's plugin
//!   configuration is itself a placeholder (the test that starts it supplies the JSON), the checks
//!   that read that JSON are left to the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use tollgate_check::{check_text, Check, Finding, Severity};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn render(all: &[Finding]) -> String {
    all.iter().map(|f| format!("  {f}\n")).collect()
}

/// Asserts that `text` passes every check, warnings included.
fn assert_clean(name: &str, text: &str) {
    let report = check_text(name, text);
    assert!(report.filters >= 1, "{name}: no tollgate filter found");
    assert!(
        report.findings.is_empty(),
        "{name} must pass tollgate-check without findings:\n{}",
        render(&report.findings)
    );
}

#[test]
fn the_demo_and_production_configs_pass() {
    for config in ["envoy/demo/envoy.yaml", "envoy/production/envoy.yaml"] {
        assert_clean(config, &read(&repo_root().join(config)));
    }
}

#[test]
fn the_compose_rendering_of_the_demo_passes() {
    let out = Command::new("sh")
        .arg(repo_root().join("envoy/compose/render.sh"))
        .arg(repo_root().join("envoy/demo/envoy.yaml"))
        .output()
        .expect("run envoy/compose/render.sh");
    assert!(out.status.success(), "render.sh failed");
    assert_clean(
        "envoy/compose (rendered)",
        &String::from_utf8(out.stdout).unwrap(),
    );
}

#[test]
fn the_readme_example_passes() {
    let readme = read(&repo_root().join("README.md"));
    let start = readme
        .find("```yaml\n")
        .expect("the README has a YAML example")
        + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("closed code block");
    assert_clean("README.md (complete example)", &readme[start..end]);
}

/// Fills every `{{NAME}}` of a template with a stand-in; returns the text and the lines whose
/// placeholder was a plugin configuration.
fn render_template(text: &str) -> (String, Vec<usize>) {
    let mut out = String::new();
    let mut plugin_lines = Vec::new();
    let mut port = 20000;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            let name = &rest[start + 2..start + len];
            out.push_str(&rest[..start]);
            let value = if name.ends_with("PLUGIN_CONFIG") {
                plugin_lines.push(i + 1);
                "\"{}\"".to_string()
            } else if name.ends_with("PORT") {
                port += 1;
                port.to_string()
            } else if name.ends_with("_KEY") {
                format!("sk-stand-in-{}-0123456789", name.to_lowercase())
            } else if name == "FAILURE_POLICY" {
                "failure_policy: FAIL_RELOAD".into()
            } else if name == "JWT_CACHE" {
                String::new()
            } else {
                format!("/stand-in/{}", name.to_lowercase())
            };
            out.push_str(&value);
            rest = &rest[start + len + 2..];
        }
        out.push_str(rest);
    }
    (out, plugin_lines)
}

/// Every bootstrap under `dir` (files holding `static_resources`).
fn bootstraps(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml") && read(&path).contains("static_resources")
        {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn every_test_and_bench_template_has_no_error() {
    let mut checked = 0;
    let mut failures = String::new();
    for dir in ["envoy/e2e/configs", "benches"] {
        for path in bootstraps(&repo_root().join(dir)) {
            let (text, plugin_lines) = render_template(&read(&path));
            let name = path
                .strip_prefix(repo_root())
                .unwrap()
                .display()
                .to_string();
            let report = check_text(&name, &text);
            checked += report.filters;
            let errors: Vec<Finding> = report
                .at_least(Severity::Error)
                .filter(|f| {
                    // Checks that read the plugin JSON, where the test supplies it.
                    // The upstream stage's catalog is the test's listener JSON too.
                    let json_from_test = (plugin_lines.contains(&f.line)
                        && matches!(f.check, Check::PluginConfig | Check::Stage))
                        || (!plugin_lines.is_empty() && f.check == Check::BufferLimit)
                        || (!plugin_lines.is_empty()
                            && f.check == Check::UpstreamStage
                            && f.field.ends_with("› stage"));
                    !json_from_test
                })
                .cloned()
                .collect();
            failures.push_str(&render(&errors));
        }
    }
    assert!(
        checked >= 10,
        "expected many tollgate filters, checked {checked}"
    );
    assert!(
        failures.is_empty(),
        "shipped templates with errors:\n{failures}"
    );
}
