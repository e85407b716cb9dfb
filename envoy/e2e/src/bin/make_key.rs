//! `make_key` (`make key`): issues a new tollgate virtual API key and prints it once, with the
//! configuration entry that holds only its SHA-256. With `--append FILE` the entry is also added
//! to a key set document (`{"keys": [...]}`, created when missing), e.g. the one the demo's mock
//! serves, so a running demo accepts the key at its next refresh.
//!
//! ```text
//! make_key [--id ID] [--owner OWNER] [--team TEAM] [--model PATTERN]... [--append FILE]
//! ```
//!
//! The key's 32 random bytes come from the operating system (`/dev/urandom`); its format and
//! hash are the filter's own (`tollgate::keys::secret`), so the two cannot disagree.

use std::io::Read as _;
use std::process::ExitCode;

use serde_json::{json, Value};
use tollgate::keys::secret::{encode, KeyDigest, SECRET_BYTES};

const USAGE: &str = "\
usage: make_key [--id ID] [--owner OWNER] [--team TEAM] [--model PATTERN]... [--append FILE]

Prints a new tollgate key (shown once) and its configuration entry (its SHA-256, never the key).
  --id <id>          key id (default: demo-<first 8 hex digits of the hash>)
  --owner <owner>    who holds the key (default: demo-user)
  --team <team>      its team (default: demo)
  --model <pattern>  a model it may use, exact or prefix* (repeatable; default: every model)
  --append <file>    also add the entry to this key set document ({\"keys\": [...]})
  -h, --help         this text
";

#[derive(Debug, Default)]
struct Args {
    id: Option<String>,
    owner: Option<String>,
    team: Option<String>,
    models: Vec<String>,
    append: Option<String>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut out = Args::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--id" => out.id = Some(value()?),
            "--owner" => out.owner = Some(value()?),
            "--team" => out.team = Some(value()?),
            "--model" => out.models.push(value()?),
            "--append" => out.append = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(out)
}

fn random_bytes() -> Result<[u8; SECRET_BYTES], String> {
    let mut bytes = [0u8; SECRET_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes)
}

fn append(path: &str, entry: &Value) -> Result<usize, String> {
    let mut doc: Value = match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| format!("{path}: not JSON: {e}"))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json!({ "keys": [] }),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    let keys = doc
        .get_mut("keys")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("{path}: no \"keys\" array"))?;
    keys.push(entry.clone());
    let count = keys.len();
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    // Write then rename: a fetch never sees half a document.
    let tmp = format!("{path}.tmp.{}", std::process::id());
    std::fs::write(&tmp, text + "\n").map_err(|e| format!("{tmp}: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{path}: {e}"))?;
    Ok(count)
}

fn run(args: Args) -> Result<(), String> {
    let key = encode(&random_bytes()?);
    let digest = KeyDigest::of(&key).to_hex();
    let id = args
        .id
        .unwrap_or_else(|| format!("demo-{}", digest.get(..8).unwrap_or("key")));
    let mut entry = json!({
        "id": id,
        "sha256": digest,
        "owner": args.owner.unwrap_or_else(|| "demo-user".into()),
        "team": args.team.unwrap_or_else(|| "demo".into()),
    });
    if !args.models.is_empty() {
        entry["models"] = json!(args.models);
    }
    println!("# A new tollgate key, shown once (tollgate keeps only its SHA-256):");
    println!("TG_KEY={key}");
    println!(
        "# Its entry for \"keys\": {{\"inline\": [...]}} or a remote key set's \"keys\" array:"
    );
    println!("{entry}");
    if let Some(path) = args.append {
        let count = append(&path, &entry)?;
        println!(
            "# Added to {path} ({count} keys): a running demo accepts the key at its next refresh."
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
