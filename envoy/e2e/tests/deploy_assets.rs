//! The deployment assets operators use, checked without a Docker engine or a Kubernetes cluster:
//!
//! - `envoy/docker-compose.yaml`: every bind mount exists (or is the module `make build` writes),
//!   images are pinned to the project's Envoy version, the mock provider's Dockerfile and
//!   arguments are the real ones, and the Envoy config it runs — `envoy/demo/envoy.yaml` rendered
//!   by `envoy/compose/render.sh` — differs from the demo by exactly the documented substitutions
//!   and passes `envoy --mode validate`.
//! - `envoy/istio/`: every manifest parses with the expected kind/apiVersion, the kustomization's
//!   references resolve, the embedded plugin configuration is a valid tollgate configuration
//!   (`tollgate::config::FilterConfig::parse`), its cluster names are the Istio clusters of
//!   services in the manifests, and the exact Wasm filter config the EnvoyFilter delivers runs in
//!   Envoy 1.40 (code source swapped to a local file, as the istio-agent does).
//! - `envoy/oci/build.sh`: the OCI image layout it writes is self-consistent (index → manifest →
//!   config and layer, digests and sizes), is Istio's Wasm "compat" variant, carries the module
//!   byte for byte, and is reproducible.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use tollgate_e2e::mock::client::request;
use tollgate_e2e::mock::{MockOptions, MockProvider};
use tollgate_e2e::{read, repo_root, temp_dir, validate, wasm_path, Envoy, Vars};
use yaml_rust2::{Yaml, YamlLoader};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

/// The stand-in provider key of envoy/istio/kustomization.yaml, exported to the Wasm VM.
const DEMO_PROVIDER_KEY_ENV: &str = "PROVIDER_API_KEY";

// ---------------------------------------------------------------------------------------------
// Helpers

fn envoy_dir() -> PathBuf {
    repo_root().join("envoy")
}

/// Converts a parsed YAML node to JSON (YAML 1.2 core schema, keys as strings).
fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => panic!("unsupported YAML key {other:?}"),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Null => Value::Null,
        Yaml::Alias(_) | Yaml::BadValue => panic!("unsupported YAML node {y:?}"),
    }
}

/// All documents of a YAML file, as JSON.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    docs.iter()
        .filter(|d| !matches!(d, Yaml::Null))
        .map(to_json)
        .collect()
}

fn yaml_doc(path: &Path) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{} should hold one document", path.display());
    docs.remove(0)
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what}: expected a string, got {v}"))
}

fn array_of<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what}: expected a list, got {v}"))
}

/// `ENVOY_VERSION := x.y.z` from the Makefile.
fn envoy_version() -> String {
    read(&repo_root().join("Makefile"))
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION"))
        .and_then(|rest| rest.split(":=").nth(1))
        .map(|v| v.trim().to_string())
        .expect("ENVOY_VERSION in the Makefile")
}

/// The `[workspace.package]` version from the root Cargo.toml.
fn workspace_version() -> String {
    read(&repo_root().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("workspace version")
}

/// One compose volume entry in short syntax: (source, target).
fn volume_parts(entry: &Value) -> (String, String) {
    let s = str_of(entry, "volume");
    let mut parts = s.split(':');
    let source = parts.next().unwrap_or_default().to_string();
    let target = parts
        .next()
        .unwrap_or_else(|| panic!("volume {s:?} has no container path"))
        .to_string();
    (source, target)
}

fn is_bind_mount(source: &str) -> bool {
    source.starts_with("./") || source.starts_with("../") || source.starts_with('/')
}

/// Normalizes `a/./b/../c` without touching the file system (the path may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn compose() -> Value {
    yaml_doc(&envoy_dir().join("docker-compose.yaml"))
}

/// The host path bind-mounted at container path `target` in compose service `service`.
fn host_path_of(compose: &Value, service: &str, target: &str) -> PathBuf {
    let volumes = array_of(&compose["services"][service]["volumes"], "volumes");
    volumes
        .iter()
        .map(volume_parts)
        .find(|(_, t)| t == target)
        .map(|(s, _)| normalize(&envoy_dir().join(s)))
        .unwrap_or_else(|| panic!("service {service} mounts nothing at {target}"))
}

/// `envoy/compose/render.sh` applied to the demo config.
fn rendered_compose_config() -> String {
    let out = Command::new("sh")
        .arg(envoy_dir().join("compose/render.sh"))
        .arg(envoy_dir().join("demo/envoy.yaml"))
        .output()
        .expect("run envoy/compose/render.sh");
    assert!(
        out.status.success(),
        "render.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 config")
}

/// The compose container path of the module (where ../target/tollgate.wasm is mounted).
fn compose_wasm_target(compose: &Value) -> String {
    let wasm = repo_root().join("target/tollgate.wasm");
    array_of(&compose["services"]["envoy"]["volumes"], "envoy volumes")
        .iter()
        .map(volume_parts)
        .find(|(s, _)| normalize(&envoy_dir().join(s)) == wasm)
        .map(|(_, t)| t)
        .expect("the envoy service mounts ../target/tollgate.wasm")
}

fn istio_dir() -> PathBuf {
    envoy_dir().join("istio")
}

/// Every Kubernetes document under envoy/istio/ with the file it came from.
fn istio_objects() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(istio_dir())
        .expect("envoy/istio")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name == "stats-bootstrap.yaml" {
            continue; // an Envoy bootstrap fragment, not a Kubernetes object
        }
        for doc in yaml_docs(&f) {
            out.push((name.clone(), doc));
        }
    }
    out
}

fn objects_of_kind(kind: &str) -> Vec<Value> {
    istio_objects()
        .into_iter()
        .filter(|(_, o)| o["kind"] == kind)
        .map(|(_, o)| o)
        .collect()
}

fn tollgate_envoy_filter() -> Value {
    objects_of_kind("EnvoyFilter")
        .into_iter()
        .find(|o| o["metadata"]["name"] == "tollgate")
        .expect("EnvoyFilter tollgate")
}

/// The ECDS extension config the EnvoyFilter adds (name + typed_config).
fn extension_config(filter: &Value) -> Value {
    let patches = array_of(&filter["spec"]["configPatches"], "configPatches");
    let ext: Vec<&Value> = patches
        .iter()
        .filter(|p| p["applyTo"] == "EXTENSION_CONFIG")
        .collect();
    assert_eq!(ext.len(), 1, "one EXTENSION_CONFIG patch");
    assert_eq!(
        ext[0]["patch"]["operation"], "ADD",
        "Istio applies only ADD"
    );
    ext[0]["patch"]["value"].clone()
}

/// The plugin configuration JSON embedded in the extension config.
fn embedded_plugin_config(ext: &Value) -> String {
    let configuration = &ext["typed_config"]["config"]["configuration"];
    assert_eq!(
        configuration["@type"],
        "type.googleapis.com/google.protobuf.StringValue"
    );
    str_of(&configuration["value"], "configuration.value").to_string()
}

fn kustomization() -> Value {
    yaml_doc(&istio_dir().join("kustomization.yaml"))
}

/// Sets the demo provider key in this process, once (Envoy children inherit it; the filter's
/// config parser reads it for `masking.known_secret_env`).
fn export_demo_provider_key() -> String {
    let literal = array_of(
        &kustomization()["secretGenerator"][0]["literals"],
        "literals",
    )
    .iter()
    .map(|l| str_of(l, "literal").to_string())
    .find_map(|l| {
        l.strip_prefix(&format!("{DEMO_PROVIDER_KEY_ENV}="))
            .map(str::to_string)
    })
    .expect("PROVIDER_API_KEY literal in the kustomization");
    static EXPORT: std::sync::Once = std::sync::Once::new();
    EXPORT.call_once(|| std::env::set_var(DEMO_PROVIDER_KEY_ENV, &literal));
    literal
}

/// Runs a program, failing the test with its output on error.
fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256_hex(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Files of an uncompressed ustar archive: (name, contents).
fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        if header.iter().all(|b| *b == 0) {
            break;
        }
        let field = |from: usize, len: usize| {
            let raw = &header[from..from + len];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(len);
            String::from_utf8_lossy(&raw[..end]).trim().to_string()
        };
        let name = field(0, 100);
        let size = usize::from_str_radix(&field(124, 12), 8).expect("octal size");
        let typeflag = header[156];
        let data_at = at + 512;
        if typeflag == b'0' || typeflag == 0 {
            files.push((name, bytes[data_at..data_at + size].to_vec()));
        }
        at = data_at + size.div_ceil(512) * 512;
    }
    files
}

// ---------------------------------------------------------------------------------------------
// Docker Compose

#[test]
fn compose_bind_mounts_exist_and_images_are_pinned() {
    let compose = compose();
    let services = compose["services"].as_object().expect("services");
    assert!(services.contains_key("envoy") && services.contains_key("mock-provider"));
    let named: BTreeSet<String> = compose["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let wasm = repo_root().join("target/tollgate.wasm");
    for (name, service) in services {
        if let Some(image) = service["image"].as_str() {
            if image.starts_with("envoyproxy/envoy") {
                assert_eq!(
                    image,
                    format!("envoyproxy/envoy:v{}", envoy_version()),
                    "service {name}: Envoy image must match the Makefile's ENVOY_VERSION"
                );
            }
        }
        for entry in service["volumes"].as_array().into_iter().flatten() {
            let (source, target) = volume_parts(entry);
            assert!(target.starts_with('/'), "{name}: {target} is not absolute");
            if is_bind_mount(&source) {
                let host = normalize(&envoy_dir().join(&source));
                assert!(
                    host.exists() || host == wasm,
                    "service {name} mounts {source} ({}), which does not exist",
                    host.display()
                );
            } else {
                assert!(
                    named.contains(&source),
                    "service {name} uses volume {source:?} not declared under volumes:"
                );
            }
        }
    }
    // Envoy's listener and admin ports are published (admin on loopback only).
    let ports: Vec<String> = array_of(&compose["services"]["envoy"]["ports"], "ports")
        .iter()
        .map(|p| str_of(p, "port").to_string())
        .collect();
    assert!(ports.contains(&"10000:10000".to_string()), "{ports:?}");
    assert!(
        ports.contains(&"127.0.0.1:9901:9901".to_string()),
        "{ports:?}"
    );
}

#[test]
fn compose_builds_the_mock_with_its_real_arguments() {
    let compose = compose();
    let mock = &compose["services"]["mock-provider"];
    let context = normalize(&envoy_dir().join(str_of(&mock["build"]["context"], "context")));
    let dockerfile = context.join(str_of(&mock["build"]["dockerfile"], "dockerfile"));
    assert_eq!(
        dockerfile,
        envoy_dir().join("mock-provider/Dockerfile"),
        "the mock is built from envoy/mock-provider/Dockerfile"
    );
    let text = read(&dockerfile);
    // Every COPY source (outside --from stages) is in the build context.
    for line in text.lines().filter(|l| l.starts_with("COPY ")) {
        if line.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for src in &words[..words.len() - 1] {
            assert!(
                context.join(src).exists(),
                "Dockerfile copies {src}, missing from {}",
                context.display()
            );
        }
    }
    // The Rust image is at least the workspace's rust-version.
    let rust_image = text
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .expect("a rust build stage");
    let image_version: Vec<u32> = rust_image
        .split('-')
        .next()
        .unwrap()
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    let msrv: Vec<u32> = read(&repo_root().join("Cargo.toml"))
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("rust-version")
        .split('.')
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(image_version >= msrv, "{rust_image} older than {msrv:?}");
    // The crate builds on its own in that context: it must carry its own lock file.
    assert!(context.join("Cargo.lock").exists());

    // The arguments are flags the binary accepts, it listens on all interfaces, and its JWKS
    // file is mounted.
    let main_rs = read(&envoy_dir().join("mock-provider/src/main.rs"));
    let args: Vec<String> = array_of(&mock["command"], "command")
        .iter()
        .map(|a| str_of(a, "arg").to_string())
        .collect();
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            main_rs.contains(&format!("\"{flag}\"")),
            "mock-provider does not accept {flag}"
        );
    }
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| panic!("mock command lacks {flag}"))
    };
    assert_eq!(value_of("--host"), "0.0.0.0");
    let jwks = host_path_of(&compose, "mock-provider", &value_of("--jwks"));
    assert_eq!(jwks, envoy_dir().join("demo/keys/jwks.json"));
    serde_json::from_str::<Value>(&read(&jwks)).expect("the mounted JWKS is JSON");
}

#[test]
fn compose_envoy_config_is_the_demo_with_only_the_documented_substitutions() {
    let compose = compose();
    // The envoy-config service renders the demo config with render.sh into the volume Envoy
    // reads its -c file from.
    let entry: Vec<String> = array_of(
        &compose["services"]["envoy-config"]["entrypoint"],
        "entrypoint",
    )
    .iter()
    .map(|a| str_of(a, "arg").to_string())
    .collect();
    assert_eq!(entry.len(), 4, "sh render.sh IN OUT: {entry:?}");
    assert_eq!(
        host_path_of(&compose, "envoy-config", &entry[1]),
        envoy_dir().join("compose/render.sh")
    );
    assert_eq!(
        host_path_of(&compose, "envoy-config", &entry[2]),
        envoy_dir().join("demo/envoy.yaml")
    );
    let out_file = Path::new(&entry[3]);
    let (volume, out_dir) = array_of(&compose["services"]["envoy-config"]["volumes"], "volumes")
        .iter()
        .map(volume_parts)
        .find(|(s, t)| !is_bind_mount(s) && out_file.starts_with(t))
        .expect("render.sh writes into a named volume");
    let envoy_cmd: Vec<String> = array_of(&compose["services"]["envoy"]["command"], "command")
        .iter()
        .map(|a| str_of(a, "arg").to_string())
        .collect();
    let config_path = envoy_cmd
        .iter()
        .position(|a| a == "-c")
        .and_then(|i| envoy_cmd.get(i + 1))
        .expect("envoy -c");
    let envoy_mount = array_of(&compose["services"]["envoy"]["volumes"], "volumes")
        .iter()
        .map(volume_parts)
        .find(|(s, _)| *s == volume)
        .map(|(_, t)| t)
        .expect("envoy mounts the rendered config volume");
    assert_eq!(
        Path::new(&envoy_mount).join(out_file.strip_prefix(&out_dir).unwrap()),
        Path::new(config_path),
        "envoy -c must be the file render.sh writes"
    );

    // The rendered config against the demo, line by line.
    let demo = read(&envoy_dir().join("demo/envoy.yaml"));
    let rendered = rendered_compose_config();
    let wasm_target = compose_wasm_target(&compose);
    let mut lines = rendered.lines();
    for _ in 0..3 {
        assert!(lines.next().is_some_and(|l| l.starts_with('#')), "header");
    }
    let body: Vec<&str> = lines.collect();
    let demo_lines: Vec<&str> = demo.lines().collect();
    assert_eq!(
        body.len(),
        demo_lines.len(),
        "render.sh adds or drops lines"
    );
    let mut changed = std::collections::BTreeMap::<&str, usize>::new();
    for (got, want) in body.iter().zip(&demo_lines) {
        if got == want {
            continue;
        }
        let mut undone = got.to_string();
        for (kind, from, to) in [
            (
                "wasm path",
                format!("\"{wasm_target}\""),
                "\"target/tollgate.wasm\"".to_string(),
            ),
            (
                "mock address",
                "address: mock-provider, port_value: 8081 ".into(),
                "address: 127.0.0.1, port_value: 8081 ".into(),
            ),
            (
                "mock url",
                "mock-provider:8081".into(),
                "127.0.0.1:8081".into(),
            ),
            (
                "listener",
                "address: 0.0.0.0, port_value: 10000 ".into(),
                "address: 127.0.0.1, port_value: 10000 ".into(),
            ),
            (
                "admin",
                "address: 0.0.0.0, port_value: 9901 ".into(),
                "address: 127.0.0.1, port_value: 9901 ".into(),
            ),
            ("dns", "type: STRICT_DNS".into(), "type: STATIC".into()),
        ] {
            if undone.contains(&from) {
                undone = undone.replace(&from, &to);
                *changed.entry(kind).or_default() += 1;
            }
        }
        assert_eq!(
            &undone, want,
            "compose config line {got:?} differs from the demo by more than the documented substitutions"
        );
    }
    for kind in ["wasm path", "mock address", "listener", "admin", "dns"] {
        assert!(
            changed.contains_key(kind),
            "expected a {kind} substitution: {changed:?}"
        );
    }
    // Nothing may still point at the host's loopback: inside compose that is the container.
    assert!(
        !body.iter().any(|l| l.contains("127.0.0.1")),
        "the compose config still references 127.0.0.1 (a demo service compose does not run?)"
    );
    // The host name render.sh uses is the compose service.
    assert!(compose["services"]["mock-provider"].is_object());
}

#[test]
fn compose_envoy_config_passes_envoy_validate() {
    let compose = compose();
    let rendered = rendered_compose_config().replace(
        &format!("\"{}\"", compose_wasm_target(&compose)),
        &format!("{:?}", wasm_path().display().to_string()),
    );
    let (ok, out) = validate(&rendered);
    assert!(
        ok,
        "compose Envoy config fails `envoy --mode validate`:\n{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// Istio

#[test]
fn istio_manifests_parse_with_expected_kinds() {
    let expected = [
        ("Namespace", "v1"),
        ("Service", "v1"),
        ("Deployment", "apps/v1"),
        ("EnvoyFilter", "networking.istio.io/v1alpha3"),
        ("ServiceEntry", "networking.istio.io/v1"),
        ("DestinationRule", "networking.istio.io/v1"),
        ("Kustomization", "kustomize.config.k8s.io/v1beta1"),
    ];
    let objects = istio_objects();
    let mut kinds = BTreeSet::new();
    for (file, o) in &objects {
        let kind = str_of(&o["kind"], "kind");
        let api = str_of(&o["apiVersion"], "apiVersion");
        let want = expected
            .iter()
            .find(|(k, _)| *k == kind)
            .unwrap_or_else(|| panic!("{file}: unexpected kind {kind}"));
        assert_eq!(api, want.1, "{file}: {kind} apiVersion");
        if kind != "Kustomization" {
            assert!(
                o["metadata"]["name"].is_string(),
                "{file}: {kind} has no name"
            );
        }
        kinds.insert(kind.to_string());
    }
    for (kind, _) in expected {
        assert!(kinds.contains(kind), "no {kind} in envoy/istio/");
    }
}

#[test]
fn kustomization_references_resolve() {
    let k = kustomization();
    let namespace = str_of(&k["namespace"], "namespace");
    for r in array_of(&k["resources"], "resources") {
        assert!(istio_dir().join(str_of(r, "resource")).exists(), "{r}");
    }
    let mut config_maps = std::collections::BTreeMap::new();
    for g in array_of(&k["configMapGenerator"], "configMapGenerator") {
        let mut keys = BTreeSet::new();
        for f in array_of(&g["files"], "files") {
            let spec = str_of(f, "file");
            let (key, file) = spec.split_once('=').unwrap_or((spec, spec));
            assert!(istio_dir().join(file).exists(), "{file} missing");
            keys.insert(key.to_string());
        }
        config_maps.insert(str_of(&g["name"], "name").to_string(), keys);
    }
    let secrets: Vec<(String, Vec<String>)> = array_of(&k["secretGenerator"], "secretGenerator")
        .iter()
        .map(|g| {
            let keys = array_of(&g["literals"], "literals")
                .iter()
                .map(|l| str_of(l, "literal").split('=').next().unwrap().to_string())
                .collect();
            (str_of(&g["name"], "name").to_string(), keys)
        })
        .collect();
    assert_eq!(k["generatorOptions"]["disableNameSuffixHash"], true);

    let ns = objects_of_kind("Namespace");
    assert_eq!(ns[0]["metadata"]["name"], namespace);
    assert_eq!(ns[0]["metadata"]["labels"]["istio-injection"], "enabled");

    for d in objects_of_kind("Deployment") {
        let pod = &d["spec"]["template"];
        // The stats bootstrap override names a generated ConfigMap with custom_bootstrap.json.
        if let Some(cm) =
            pod["metadata"]["annotations"]["sidecar.istio.io/bootstrapOverride"].as_str()
        {
            assert!(
                config_maps
                    .get(cm)
                    .is_some_and(|keys| keys.contains("custom_bootstrap.json")),
                "bootstrapOverride {cm} is not a generated ConfigMap with custom_bootstrap.json"
            );
        }
        for v in pod["spec"]["volumes"].as_array().into_iter().flatten() {
            if let Some(cm) = v["configMap"]["name"].as_str() {
                assert!(config_maps.contains_key(cm), "volume ConfigMap {cm}");
            }
        }
        for c in array_of(&pod["spec"]["containers"], "containers") {
            for e in c["env"].as_array().into_iter().flatten() {
                let r = &e["valueFrom"]["secretKeyRef"];
                if r.is_object() {
                    assert!(
                        secrets.iter().any(|(n, keys)| r["name"] == n.as_str()
                            && keys.iter().any(|key| r["key"] == key.as_str())),
                        "secretKeyRef {r} is not generated"
                    );
                }
            }
            let image = str_of(&c["image"], "image");
            if image != "auto" {
                assert!(
                    array_of(&k["images"], "images")
                        .iter()
                        .any(|i| i["name"] == image),
                    "image {image} has no kustomization images: entry"
                );
            }
        }
    }
}

#[test]
fn istio_assets_match_their_sources() {
    // The bootstrap override carries the same tag extractors as the observability asset.
    let ours = yaml_doc(&istio_dir().join("stats-bootstrap.yaml"));
    let theirs = yaml_doc(&envoy_dir().join("observability/stats-tags.yaml"));
    assert_eq!(ours["stats_config"], theirs["stats_config"]);
    assert_eq!(ours.as_object().unwrap().len(), 1, "only stats_config");
    // The mock's JWKS is the demo key's.
    let a: Value = serde_json::from_str(&read(&istio_dir().join("demo-jwks.json"))).unwrap();
    let b: Value = serde_json::from_str(&read(&envoy_dir().join("demo/keys/jwks.json"))).unwrap();
    assert_eq!(a, b);
}

#[test]
fn envoy_filter_embeds_a_valid_tollgate_config_and_lines_up_with_the_mesh() {
    export_demo_provider_key();
    let filter = tollgate_envoy_filter();
    let ext = extension_config(&filter);
    let wasm = &ext["typed_config"];
    assert_eq!(
        wasm["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
    );
    let config = &wasm["config"];
    assert_eq!(
        config["allow_on_headers_stop_iteration"], true,
        "tollgate holds request headers until the body is in"
    );
    let uri = str_of(
        &config["vm_config"]["code"]["remote"]["http_uri"]["uri"],
        "uri",
    );
    assert!(
        uri.starts_with("oci://") && uri.ends_with(&format!("/tollgate:{}", workspace_version())),
        "module URL {uri}"
    );

    // The plugin configuration is one the filter accepts.
    let plugin = embedded_plugin_config(&ext);
    let parsed = tollgate::config::FilterConfig::parse(plugin.as_bytes())
        .unwrap_or_else(|e| panic!("embedded plugin config: {e}"));
    let raw: Value = serde_json::from_str(&plugin).unwrap();
    // Env vars it needs are exported to the VM.
    let host_env: Vec<&Value> = array_of(
        &config["vm_config"]["environment_variables"]["host_env_keys"],
        "host_env_keys",
    )
    .iter()
    .collect();
    for name in raw["masking"]["known_secret_env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(host_env.contains(&name), "{name} not in host_env_keys");
    }

    // Every cluster it calls is an Istio cluster of a Service in these manifests:
    // outbound|<port>||<name>.<namespace>.svc.cluster.local.
    let namespace = str_of(&kustomization()["namespace"], "namespace").to_string();
    let services = objects_of_kind("Service");
    let mut clusters = Vec::new();
    for p in array_of(&raw["jwt"]["providers"], "providers") {
        if let Some(c) = p["remote_jwks"]["cluster"].as_str() {
            clusters.push(c.to_string());
        }
    }
    if let Some(g) = parsed.budgets.as_ref().and_then(|b| b.global.as_ref()) {
        clusters.push(g.cluster.clone());
    }
    assert!(!clusters.is_empty());
    for cluster in clusters {
        let parts: Vec<&str> = cluster.split('|').collect();
        assert_eq!(parts.len(), 4, "{cluster} is not an Istio cluster name");
        assert_eq!(parts[0], "outbound");
        let port: i64 = parts[1].parse().unwrap();
        let fqdn_suffix = format!(".{namespace}.svc.cluster.local");
        let svc = parts[3]
            .strip_suffix(&fqdn_suffix)
            .unwrap_or_else(|| panic!("{cluster}: not a service of namespace {namespace}"));
        assert!(
            services.iter().any(|s| s["metadata"]["name"] == svc
                && array_of(&s["spec"]["ports"], "ports")
                    .iter()
                    .any(|p| p["port"] == port)),
            "{cluster}: no Service {svc} with port {port}"
        );
    }

    // The HTTP filter references the extension config, on the port of the selected workload.
    let patches = array_of(&filter["spec"]["configPatches"], "configPatches");
    let http = patches
        .iter()
        .find(|p| p["applyTo"] == "HTTP_FILTER")
        .expect("HTTP_FILTER patch");
    assert_eq!(http["patch"]["value"]["name"], ext["name"]);
    let discovery = &http["patch"]["value"]["config_discovery"];
    assert!(array_of(&discovery["type_urls"], "type_urls").contains(&wasm["@type"]));
    assert!(discovery["config_source"]["ads"].is_object());
    let selector = filter["spec"]["workloadSelector"]["labels"]
        .as_object()
        .expect("workloadSelector");
    let deployment = objects_of_kind("Deployment")
        .into_iter()
        .find(|d| {
            selector
                .iter()
                .all(|(k, v)| &d["spec"]["template"]["metadata"]["labels"][k] == v)
        })
        .expect("the EnvoyFilter selects a Deployment in the manifests");
    let port = &http["match"]["listener"]["portNumber"];
    let container_ports: Vec<&Value> = deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .map(|p| &p["containerPort"])
        .collect();
    assert!(container_ports.contains(&port), "port {port} is not served");
    // Istio only builds an HTTP filter chain for ports it knows speak HTTP.
    assert!(services
        .iter()
        .any(|s| array_of(&s["spec"]["ports"], "ports")
            .iter()
            .any(|p| &p["targetPort"] == port && p["appProtocol"] == "http")));
}

#[test]
fn external_services_pair_service_entries_with_tls_origination() {
    let docs = yaml_docs(&istio_dir().join("external-services.yaml"));
    let entries: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "ServiceEntry")
        .collect();
    let rules: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "DestinationRule")
        .collect();
    assert!(!entries.is_empty());
    for rule in rules {
        let host = &rule["spec"]["host"];
        let entry = entries
            .iter()
            .find(|e| array_of(&e["spec"]["hosts"], "hosts").contains(host))
            .unwrap_or_else(|| panic!("DestinationRule for {host} has no ServiceEntry"));
        for setting in array_of(&rule["spec"]["trafficPolicy"]["portLevelSettings"], "ports") {
            let number = &setting["port"]["number"];
            let port = array_of(&entry["spec"]["ports"], "ports")
                .iter()
                .find(|p| &p["number"] == number)
                .unwrap_or_else(|| panic!("port {number} not in the ServiceEntry"));
            // TLS origination: the callout speaks HTTP, the sidecar adds TLS.
            assert_eq!(port["protocol"], "HTTP");
            assert_eq!(setting["tls"]["mode"], "SIMPLE");
        }
    }
}

#[test]
fn envoy_filter_wasm_config_serves_traffic_in_envoy() {
    let provider_key = export_demo_provider_key();
    let filter = tollgate_envoy_filter();
    let ext = extension_config(&filter);
    let raw: Value = serde_json::from_str(&embedded_plugin_config(&ext)).unwrap();
    let jwks_cluster = str_of(
        &raw["jwt"]["providers"][0]["remote_jwks"]["cluster"],
        "remote_jwks.cluster",
    )
    .to_string();

    // What the istio-agent does before Envoy sees the config: the remote module becomes a file.
    let mut typed_config = ext["typed_config"].clone();
    typed_config["config"]["vm_config"]["code"] =
        json!({ "local": { "filename": wasm_path().display().to_string() } });

    let mock = MockProvider::start(MockOptions {
        jwks: read(&envoy_dir().join("demo/keys/jwks.json")),
        ..MockOptions::default()
    })
    .expect("mock starts");
    let cluster = |name: &str| {
        json!({
            "name": name, "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": { "cluster_name": name, "endpoints": [{ "lb_endpoints": [{
                "endpoint": { "address": { "socket_address": {
                    "address": "127.0.0.1", "port_value": mock.port() } } } }] }] }
        })
    };
    // A stand-in for the sidecar's inbound listener: Istio's cluster names, the filter before
    // the router.
    let bootstrap = json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": "__ADMIN__" } } },
        "static_resources": {
            "listeners": [{
                "name": "virtualInbound",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": "__LISTENER__" } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "inbound_0.0.0.0_8081",
                        "route_config": { "virtual_hosts": [{ "name": "inbound|http|8081", "domains": ["*"],
                            "routes": [{ "match": { "prefix": "/" },
                                         "route": { "cluster": "inbound|8081||", "timeout": "30s" } }] }] },
                        "http_filters": [
                            { "name": ext["name"], "typed_config": typed_config },
                            { "name": "envoy.filters.http.router",
                              "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }
                        ]
                    }
                }] }]
            }],
            "clusters": [cluster("inbound|8081||"), cluster(&jwks_cluster)]
        }
    })
    .to_string()
    .replace("\"__ADMIN__\"", "{{ADMIN_PORT}}")
    .replace("\"__LISTENER__\"", "{{LISTENER_PORT}}");

    let envoy = Envoy::start(&bootstrap, Vars::new());

    // No token on /v1/: refused by tollgate's JWT rule.
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[],
        CHAT.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 401, "{}", String::from_utf8_lossy(&resp.body));

    // A demo token: the keys come from the JWKS cluster, the request reaches the provider.
    let token = String::from_utf8(run(Command::new(env!("CARGO_BIN_EXE_mint_token")).args([
        "--key",
        &envoy_dir()
            .join("demo/keys/demo-es256.pem")
            .display()
            .to_string(),
        "--kid",
        "tollgate-demo-1",
        "--sub",
        "alice",
        "--iss",
        "https://demo.tollgate.local",
        "--aud",
        "tollgate-demo",
    ])))
    .unwrap();
    let auth = format!("Bearer {}", token.trim());
    let prompt = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"my key is {provider_key}"}}]}}"#
    );
    let resp = request(
        envoy.port,
        "POST",
        "/v1/chat/completions",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        prompt.as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["object"], "chat.completion");

    // The keys came through the Istio-named cluster (the config has no local JWKS).
    let stats = envoy.admin("/stats");
    let fetched = stats
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cluster.{jwks_cluster}.upstream_rq_200: ")))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(0);
    assert!(fetched >= 1, "no JWKS fetch through {jwks_cluster}");
    let seen = mock.requests();
    let chat = seen
        .iter()
        .find(|r| r.path == "/v1/chat/completions")
        .expect("the chat request reached the provider");
    assert_eq!(chat.header("x-user-id"), Some("alice"));
    // The provider key exported through host_env_keys is masked out of the prompt.
    assert!(
        !chat.body.contains(&provider_key),
        "known secret forwarded: {}",
        chat.body
    );
}

// ---------------------------------------------------------------------------------------------
// OCI image layout

fn build_oci(out: &Path, tag: &str) -> String {
    let stdout = run(Command::new("bash")
        .arg(envoy_dir().join("oci/build.sh"))
        .arg(wasm_path())
        .arg(out)
        .env("TAG", tag));
    String::from_utf8_lossy(&stdout).into_owned()
}

fn blob(layout: &Path, descriptor: &Value) -> PathBuf {
    let digest = str_of(&descriptor["digest"], "digest");
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let path = layout.join("blobs/sha256").join(hex);
    assert!(path.exists(), "blob {digest} missing");
    assert_eq!(
        sha256_hex(&path),
        hex,
        "blob {digest}: content does not match"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        descriptor["size"].as_u64().expect("size"),
        "blob {digest}: size does not match"
    );
    path
}

#[test]
fn oci_layout_is_the_istio_compat_wasm_image() {
    let wasm = wasm_path();
    assert!(
        wasm.exists(),
        "{} missing: run `make build` first",
        wasm.display()
    );
    let dir = temp_dir("oci");
    let layout = dir.join("oci");
    let printed = build_oci(&layout, "9.9.9-test");

    assert_eq!(
        serde_json::from_str::<Value>(&read(&layout.join("oci-layout"))).unwrap(),
        json!({ "imageLayoutVersion": "1.0.0" })
    );
    let index: Value = serde_json::from_str(&read(&layout.join("index.json"))).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    let manifests = array_of(&index["manifests"], "manifests");
    assert_eq!(manifests.len(), 1);
    let descriptor = &manifests[0];
    assert_eq!(
        descriptor["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        descriptor["annotations"]["org.opencontainers.image.ref.name"],
        "9.9.9-test"
    );
    let manifest: Value = serde_json::from_str(&read(&blob(&layout, descriptor))).unwrap();
    assert!(printed.contains(str_of(&descriptor["digest"], "digest")));

    // Istio's compat variant: OCI manifest (not Docker's), annotation, last layer tar+gzip.
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"]["module.wasm.image/variant"],
        "compat"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_str(&read(&blob(&layout, &manifest["config"]))).unwrap();
    let layers = array_of(&manifest["layers"], "layers");
    assert_eq!(layers.len(), 1, "a single layer");
    let layer = layers.last().unwrap();
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let layer_path = blob(&layout, layer);

    // The layer: gzip of a tar whose plugin.wasm is the module, and diff_id is the tar's digest.
    let tar = run(Command::new("gzip").arg("-dc").arg(&layer_path));
    let tar_path = dir.join("layer.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"],
        json!([format!("sha256:{}", sha256_hex(&tar_path))])
    );
    assert_eq!(config["rootfs"]["type"], "layers");
    let files = untar(&tar);
    let plugin: Vec<&(String, Vec<u8>)> = files
        .iter()
        .filter(|(name, _)| {
            Path::new(name)
                .file_name()
                .is_some_and(|n| n == "plugin.wasm")
        })
        .collect();
    assert_eq!(
        plugin.len(),
        1,
        "exactly one plugin.wasm: {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert!(
        plugin[0].1 == std::fs::read(&wasm).unwrap(),
        "plugin.wasm differs from {}",
        wasm.display()
    );

    // No stray blobs.
    let blobs: BTreeSet<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(blobs.len(), 3, "manifest, config, layer: {blobs:?}");

    // Reproducible: the same module gives the same manifest digest.
    let again = dir.join("oci-again");
    build_oci(&again, "9.9.9-test");
    let index_again: Value = serde_json::from_str(&read(&again.join("index.json"))).unwrap();
    assert_eq!(index_again["manifests"][0]["digest"], descriptor["digest"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oci_build_refuses_what_is_not_a_module() {
    let dir = temp_dir("oci-refuse");
    let not_wasm = dir.join("not.wasm");
    std::fs::write(&not_wasm, b"hello").unwrap();
    let out = Command::new("bash")
        .arg(envoy_dir().join("oci/build.sh"))
        .arg(&not_wasm)
        .arg(dir.join("oci"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly module"));
    // And it never replaces a directory that is not an OCI layout.
    let precious = dir.join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("keep.txt"), b"x").unwrap();
    let out = Command::new("bash")
        .arg(envoy_dir().join("oci/build.sh"))
        .arg(wasm_path())
        .arg(&precious)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(precious.join("keep.txt").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The guide

#[test]
fn deploying_guide_names_only_files_that_exist() {
    let docs = repo_root().join("docs");
    let mut pages = vec![repo_root().join("README.md")];
    pages.extend(
        std::fs::read_dir(&docs)
            .expect("docs/")
            .map(|e| e.expect("docs/ entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut checked_guide = 0;
    for page in &pages {
        let text = read(page);
        for word in text.split(|c: char| c.is_whitespace() || "`()[],:".contains(c)) {
            let word = word.trim_end_matches('.');
            if !word.starts_with("envoy/") || word.contains('*') || word.contains('<') {
                continue;
            }
            assert!(
                repo_root().join(word).exists(),
                "{} mentions {word}, which does not exist",
                page.display()
            );
            if page.ends_with("deploying.md") {
                checked_guide += 1;
            }
        }
    }
    assert!(
        checked_guide >= 5,
        "expected docs/deploying.md to reference the assets"
    );
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to dashes, punctuation dropped.
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_links_to_a_runbook_that_exists() {
    let rules = yaml_doc(&envoy_dir().join("observability/alerts.yml"));
    let mut alerts = 0;
    for group in array_of(&rules["groups"], "groups") {
        for rule in array_of(&group["rules"], "rules") {
            let Some(alert) = rule["alert"].as_str() else {
                continue;
            };
            alerts += 1;
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("alert {alert} has no runbook_url annotation"));
            let (file, anchor) = url
                .split_once('#')
                .unwrap_or_else(|| panic!("alert {alert}: runbook_url {url} has no #section"));
            let page = read(&repo_root().join(file));
            let anchors: BTreeSet<String> = page
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|l| heading_anchor(l.trim_start_matches('#')))
                .collect();
            assert!(
                anchors.contains(anchor),
                "alert {alert}: {file} has no section #{anchor} (sections: {anchors:?})"
            );
            assert!(
                page.contains(&format!("### {alert}")),
                "alert {alert}: its runbook section must be titled with the alert's name"
            );
        }
    }
    assert!(alerts >= 10, "expected the shipped alerts, found {alerts}");
}
