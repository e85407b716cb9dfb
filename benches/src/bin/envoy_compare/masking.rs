//! Section `masking` (3. Masking a 64 KiB prompt, wrk): prompts `off` vs `redact`, with a
//! prompt free of secrets and one carrying five fake ones.

use crate::wrk::{print_wrk_table, run_wrk_rounds, start_wrk_scenarios, Check, WrkSpec};
use crate::{template_file, Settings, CHAT_PATH, MODEL, PROMPT_BYTES};
use std::path::Path;
use tollgate_benches::{chat_body, fake_secrets, prompt_text};
use tollgate_e2e::mock::MockHandle;
use tollgate_e2e::{template, Vars};

pub(crate) fn masking(section: usize, settings: &Settings, mock: &MockHandle, dir: &Path) {
    let secrets = fake_secrets(2024);
    let secret_values: Vec<String> = secrets.iter().map(|(_, s)| s.clone()).collect();
    let clean = chat_body(MODEL, &prompt_text(PROMPT_BYTES, &[], 11), false);
    let dirty = chat_body(MODEL, &prompt_text(PROMPT_BYTES, &secret_values, 11), false);
    let plain = template_file("benches/plain.yaml");
    let basic = template("e2e/configs/basic.yaml");
    let upstream = mock.port();
    let spec = |name: &str, config: &str, plugin: Option<&str>, body: &str, base, check| {
        let vars = Vars::new().set("UPSTREAM_PORT", upstream);
        WrkSpec {
            name: name.to_string(),
            config: config.to_string(),
            vars: match plugin {
                Some(p) => vars.plugin_config(p),
                None => vars,
            },
            body: body.to_string(),
            headers: vec![],
            base,
            check,
        }
    };
    let kinds: Vec<&str> = secrets.iter().map(|(k, _)| *k).collect();
    let specs = vec![
        spec(
            "plain Envoy, 64 KiB prompt",
            &plain,
            None,
            &clean,
            None,
            Check::Ok,
        ),
        spec(
            "tollgate, `prompts: off`, 64 KiB prompt",
            &basic,
            Some(r#"{"masking":{"prompts":"off"}}"#),
            &clean,
            Some(1),
            Check::Ok,
        ),
        spec(
            "tollgate, `prompts: redact`, 64 KiB prompt, no secrets",
            &basic,
            Some(r#"{"masking":{"prompts":"redact"}}"#),
            &clean,
            Some(2),
            Check::UpstreamLacks("[REDACTED"),
        ),
        spec(
            &format!(
                "tollgate, `prompts: redact`, 64 KiB prompt, {} fake secrets ({})",
                kinds.len(),
                kinds.join(", ")
            ),
            &basic,
            Some(r#"{"masking":{"prompts":"redact"}}"#),
            &dirty,
            Some(2),
            Check::UpstreamContains("[REDACTED"),
        ),
    ];
    let mut scenarios = start_wrk_scenarios(specs, &[], mock, dir);
    run_wrk_rounds(&mut scenarios, settings);
    println!(
        "\n#### {section}. Masking a 64 KiB prompt (wrk, POST {CHAT_PATH}, body {} bytes)",
        clean.len()
    );
    print_wrk_table(&scenarios);
    println!(
        "\nΔ CPU of the redact rows is against `prompts: off` (#2): the cost of scanning (and rewriting) the 64 KiB body alone."
    );
}
