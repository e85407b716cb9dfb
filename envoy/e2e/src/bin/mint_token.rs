//! `mint_token`: signs a JWT with a PEM private key, for the demo and for manual testing of
//! tollgate's JWT validation. Demo tooling only: it never reads keys from anywhere but `--key`.
//!
//! ```text
//! mint_token --key envoy/demo/keys/demo-es256.pem --kid tollgate-demo-1 \
//!     --sub alice --iss https://demo.tollgate.local --aud tollgate-demo --ttl 3600 --scope chat
//! mint_token --key envoy/demo/keys/demo-es256.pem --kid tollgate-demo-1 --jwks
//! ```
//!
//! The key may be EC P-256 (ES256), EC P-384 (ES384), Ed25519 (EdDSA) or RSA (RS256 by default;
//! `--alg` picks RS384/RS512/PS256/PS384/PS512), PKCS#8 PEM (`BEGIN PRIVATE KEY`) or, for RSA,
//! PKCS#1 (`BEGIN RSA PRIVATE KEY`). The token goes to stdout followed by a newline.

use std::io::Write as _;
use std::process::ExitCode;

use jwt_simple::prelude::*;
use serde_json::{json, Map, Value};

const USAGE: &str = "\
usage: mint_token --key <private.pem> [options]

Signs a JWT and prints it. Options:
  --key <file>         PEM private key (EC P-256/P-384, Ed25519 or RSA; PKCS#8, or PKCS#1 for RSA)
  --alg <alg>          ES256 | ES384 | EdDSA | RS256 | RS384 | RS512 | PS256 | PS384 | PS512
                       (default: from the key; RS256 for RSA)
  --kid <id>           key id put in the token header (and in the --jwks output)
  --sub <subject>      `sub` claim
  --iss <issuer>       `iss` claim
  --aud <audience>     `aud` claim (repeat for several audiences)
  --scope <scopes>     `scope` claim, space-separated (e.g. \"chat models\")
  --ttl <seconds>      lifetime: `exp` = now + ttl (default 3600); `iat` and `nbf` = now
  --claim <name=value> extra claim; the value is parsed as JSON when it is valid JSON,
                       else used as a string (repeatable)
  --jwks               print the public JWKS of the key instead of a token
  -h, --help           this text
";

/// Parsed command line.
#[derive(Debug, Default)]
struct Args {
    key: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    sub: Option<String>,
    iss: Option<String>,
    aud: Vec<String>,
    scope: Option<String>,
    ttl: u64,
    claims: Map<String, Value>,
    jwks: bool,
}

fn parse_args(raw: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        ttl: 3600,
        ..Args::default()
    };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--key" => args.key = Some(value("--key")?),
            "--alg" => args.alg = Some(value("--alg")?),
            "--kid" => args.kid = Some(value("--kid")?),
            "--sub" => args.sub = Some(value("--sub")?),
            "--iss" => args.iss = Some(value("--iss")?),
            "--aud" => args.aud.push(value("--aud")?),
            "--scope" => args.scope = Some(value("--scope")?),
            "--ttl" => {
                let v = value("--ttl")?;
                args.ttl = v
                    .parse()
                    .map_err(|_| format!("--ttl needs whole seconds, got {v:?}"))?;
            }
            "--claim" => {
                let v = value("--claim")?;
                let (name, raw) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--claim needs name=value, got {v:?}"))?;
                if name.is_empty() {
                    return Err("--claim needs a non-empty name".into());
                }
                let parsed =
                    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()));
                args.claims.insert(name.to_string(), parsed);
            }
            "--jwks" => args.jwks = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.key.is_none() {
        return Err("--key is required".into());
    }
    Ok(Some(args))
}

/// A loaded signing key.
enum Signer {
    Es256(ES256KeyPair),
    Es384(ES384KeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RS256KeyPair),
    Rs384(RS384KeyPair),
    Rs512(RS512KeyPair),
    Ps256(PS256KeyPair),
    Ps384(PS384KeyPair),
    Ps512(PS512KeyPair),
}

fn load_signer(pem: &str, alg: Option<&str>) -> Result<Signer, String> {
    let rsa_der = || {
        RS256KeyPair::from_pem(pem)
            .and_then(|k| k.to_der())
            .map_err(|e| format!("not an RSA private key: {e}"))
    };
    let bad = |e: jwt_simple::Error| format!("the key does not fit {}: {e}", alg.unwrap_or("?"));
    match alg {
        Some("ES256") => ES256KeyPair::from_pem(pem).map(Signer::Es256).map_err(bad),
        Some("ES384") => ES384KeyPair::from_pem(pem).map(Signer::Es384).map_err(bad),
        Some("EdDSA") => Ed25519KeyPair::from_pem(pem)
            .map(Signer::EdDsa)
            .map_err(bad),
        Some("RS256") => RS256KeyPair::from_pem(pem).map(Signer::Rs256).map_err(bad),
        Some("RS384") => RS384KeyPair::from_der(&rsa_der()?)
            .map(Signer::Rs384)
            .map_err(bad),
        Some("RS512") => RS512KeyPair::from_der(&rsa_der()?)
            .map(Signer::Rs512)
            .map_err(bad),
        Some("PS256") => PS256KeyPair::from_der(&rsa_der()?)
            .map(Signer::Ps256)
            .map_err(bad),
        Some("PS384") => PS384KeyPair::from_der(&rsa_der()?)
            .map(Signer::Ps384)
            .map_err(bad),
        Some("PS512") => PS512KeyPair::from_der(&rsa_der()?)
            .map(Signer::Ps512)
            .map_err(bad),
        Some(other) => Err(format!("unsupported --alg {other:?}")),
        None => ES256KeyPair::from_pem(pem)
            .map(Signer::Es256)
            .or_else(|_| ES384KeyPair::from_pem(pem).map(Signer::Es384))
            .or_else(|_| Ed25519KeyPair::from_pem(pem).map(Signer::EdDsa))
            .or_else(|_| RS256KeyPair::from_pem(pem).map(Signer::Rs256))
            .map_err(|_| {
                "the key is not a PEM EC P-256/P-384, Ed25519 or RSA private key".to_string()
            }),
    }
}

impl Signer {
    fn with_kid(self, kid: Option<&str>) -> Self {
        let Some(kid) = kid else { return self };
        match self {
            Signer::Es256(k) => Signer::Es256(k.with_key_id(kid)),
            Signer::Es384(k) => Signer::Es384(k.with_key_id(kid)),
            Signer::EdDsa(k) => Signer::EdDsa(k.with_key_id(kid)),
            Signer::Rs256(k) => Signer::Rs256(k.with_key_id(kid)),
            Signer::Rs384(k) => Signer::Rs384(k.with_key_id(kid)),
            Signer::Rs512(k) => Signer::Rs512(k.with_key_id(kid)),
            Signer::Ps256(k) => Signer::Ps256(k.with_key_id(kid)),
            Signer::Ps384(k) => Signer::Ps384(k.with_key_id(kid)),
            Signer::Ps512(k) => Signer::Ps512(k.with_key_id(kid)),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Es256(_) => "ES256",
            Signer::Es384(_) => "ES384",
            Signer::EdDsa(_) => "EdDSA",
            Signer::Rs256(_) => "RS256",
            Signer::Rs384(_) => "RS384",
            Signer::Rs512(_) => "RS512",
            Signer::Ps256(_) => "PS256",
            Signer::Ps384(_) => "PS384",
            Signer::Ps512(_) => "PS512",
        }
    }

    fn sign(&self, claims: JWTClaims<Map<String, Value>>) -> Result<String, jwt_simple::Error> {
        match self {
            Signer::Es256(k) => k.sign(claims),
            Signer::Es384(k) => k.sign(claims),
            Signer::EdDsa(k) => k.sign(claims),
            Signer::Rs256(k) => k.sign(claims),
            Signer::Rs384(k) => k.sign(claims),
            Signer::Rs512(k) => k.sign(claims),
            Signer::Ps256(k) => k.sign(claims),
            Signer::Ps384(k) => k.sign(claims),
            Signer::Ps512(k) => k.sign(claims),
        }
    }

    /// The public key as a JWK object (without `kid`/`alg`/`use`).
    fn public_jwk(&self) -> Result<Value, String> {
        let b64 = |bytes: &[u8]| {
            Base64UrlSafeNoPadding::encode_to_string(bytes).map_err(|e| e.to_string())
        };
        let rsa = |c: jwt_simple::algorithms::RSAPublicKeyComponents| -> Result<Value, String> {
            Ok(json!({"kty": "RSA", "n": b64(&c.n)?, "e": b64(&c.e)?}))
        };
        let exported = |jwk: String| serde_json::from_str::<Value>(&jwk).map_err(|e| e.to_string());
        match self {
            Signer::Es256(k) => exported(k.public_key().to_jwk()),
            Signer::Es384(k) => exported(k.public_key().to_jwk()),
            Signer::EdDsa(k) => exported(k.public_key().to_jwk()),
            Signer::Rs256(k) => rsa(k.public_key().to_components()),
            Signer::Rs384(k) => rsa(k.public_key().to_components()),
            Signer::Rs512(k) => rsa(k.public_key().to_components()),
            Signer::Ps256(k) => rsa(k.public_key().to_components()),
            Signer::Ps384(k) => rsa(k.public_key().to_components()),
            Signer::Ps512(k) => rsa(k.public_key().to_components()),
        }
    }
}

/// The JWKS document publishing `signer`'s public key.
fn jwks(signer: &Signer, kid: Option<&str>) -> Result<String, String> {
    let mut jwk = signer.public_jwk()?;
    let Some(obj) = jwk.as_object_mut() else {
        return Err("the exported JWK is not an object".into());
    };
    // Keep only public members, then add the metadata tollgate checks.
    obj.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
    if let Some(kid) = kid {
        obj.insert("kid".into(), json!(kid));
    }
    obj.insert("alg".into(), json!(signer.alg()));
    obj.insert("use".into(), json!("sig"));
    serde_json::to_string_pretty(&json!({ "keys": [jwk] })).map_err(|e| e.to_string())
}

fn claims(args: &Args) -> JWTClaims<Map<String, Value>> {
    let mut custom = args.claims.clone();
    if let Some(scope) = &args.scope {
        custom.insert("scope".into(), json!(scope));
    }
    let mut c = Claims::with_custom_claims(custom, Duration::from_secs(args.ttl));
    if let Some(sub) = &args.sub {
        c = c.with_subject(sub);
    }
    if let Some(iss) = &args.iss {
        c = c.with_issuer(iss);
    }
    match args.aud.as_slice() {
        [] => {}
        [one] => c = c.with_audience(one),
        many => c = c.with_audiences(HashSet::from_strings(many)),
    }
    c
}

fn run(args: &Args) -> Result<String, String> {
    let path = args.key.as_deref().unwrap_or_default();
    let pem = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let signer = load_signer(&pem, args.alg.as_deref())?.with_kid(args.kid.as_deref());
    if args.jwks {
        return jwks(&signer, args.kid.as_deref());
    }
    signer
        .sign(claims(args))
        .map_err(|e| format!("signing failed: {e}"))
}

fn main() -> ExitCode {
    match parse_args(std::env::args().skip(1)) {
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Some(args)) => match run(&args) {
            Ok(out) => {
                // A closed pipe (`| head`) is not an error worth a panic.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mint_token: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("mint_token: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
