//! ES256 and RS256 (2048-bit) keys generated for the run, their JWKS, and tokens.

use jwt_simple::prelude::*;
use serde_json::{json, Value};

/// Key ids in the JWKS and token headers.
pub const ES_KID: &str = "bench-es256";
/// Key id of the RSA key.
pub const RS_KID: &str = "bench-rs256";

/// The run's keys.
pub struct Keys {
    es: ES256KeyPair,
    rs: RS256KeyPair,
}

impl Keys {
    /// Fresh keys.
    pub fn generate() -> Keys {
        Keys {
            es: ES256KeyPair::generate().with_key_id(ES_KID),
            rs: RS256KeyPair::generate(2048)
                .expect("generate an RSA key")
                .with_key_id(RS_KID),
        }
    }

    /// The JWKS publishing both public keys.
    pub fn jwks(&self) -> Value {
        let mut es: Value =
            serde_json::from_str(&self.es.public_key().to_jwk()).expect("EC JWK is JSON");
        if let Some(obj) = es.as_object_mut() {
            obj.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y"));
            obj.insert("kid".into(), json!(ES_KID));
            obj.insert("alg".into(), json!("ES256"));
            obj.insert("use".into(), json!("sig"));
        }
        let c = self.rs.public_key().to_components();
        let b64 = |b: &[u8]| Base64UrlSafeNoPadding::encode_to_string(b).expect("base64");
        let rs = json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e), "kid": RS_KID, "alg": "RS256", "use": "sig"});
        json!({ "keys": [es, rs] })
    }

    fn claims(issuer: &str, audience: &str) -> JWTClaims<NoCustomClaims> {
        Claims::create(Duration::from_hours(2))
            .with_issuer(issuer)
            .with_audience(audience)
            .with_subject("bench-user")
    }

    /// An ES256 token valid for two hours.
    pub fn es256(&self, issuer: &str, audience: &str) -> String {
        self.es
            .sign(Self::claims(issuer, audience))
            .expect("sign ES256")
    }

    /// An RS256 token valid for two hours.
    pub fn rs256(&self, issuer: &str, audience: &str) -> String {
        self.rs
            .sign(Self::claims(issuer, audience))
            .expect("sign RS256")
    }
}
