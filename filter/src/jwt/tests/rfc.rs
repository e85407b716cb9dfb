//! The published example tokens: RFC 7515 A.1–A.3 (HS256, RS256, ES256) and RFC 8037 A.4
//! (Ed25519).

use super::*;

const RFC_EXP: u64 = 1_300_819_380;
const BEFORE_RFC_EXP: u64 = 1_300_819_000;

const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_JWKS: &str = r#"{"keys":[{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}]}"#;

const A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
const A2_JWKS: &str = r#"{"keys":[{"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ","e":"AQAB"}]}"#;

const A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const A3_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

const RFC8037_TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const RFC8037_JWKS: &str =
    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

fn rfc_check(token: &str, jwks: &str) {
    let (p, keys) = provider_with(jwks, json!({"issuer": "joe"}));
    let v = verify(token, &p, &keys, BEFORE_RFC_EXP).unwrap();
    assert_eq!(v.issuer.as_deref(), Some("joe"));
    assert_eq!(v.exp, Some(RFC_EXP));
    assert_eq!(v.claims["http://example.com/is_root"], json!(true));
    // Still valid within the clock skew, expired after it.
    assert!(verify(token, &p, &keys, RFC_EXP + 60).is_ok());
    assert_eq!(
        verify(token, &p, &keys, RFC_EXP + 61).unwrap_err(),
        JwtError::Expired
    );
    // Tampered signature.
    let mut bad = token.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        verify(&bad, &p, &keys, BEFORE_RFC_EXP).unwrap_err(),
        JwtError::BadSignature
    );
}

#[test]
fn rfc7515_a1_hs256() {
    rfc_check(A1_TOKEN, A1_JWKS);
}

#[test]
fn rfc7515_a2_rs256() {
    rfc_check(A2_TOKEN, A2_JWKS);
}

#[test]
fn rfc7515_a3_es256() {
    rfc_check(A3_TOKEN, A3_JWKS);
}

#[test]
fn rfc8037_a4_ed25519() {
    // The example payload is plain text, not a claims object: the signature verifies but the
    // token is not a JWT, so `verify` refuses it as malformed.
    let keys = parse_jwks(RFC8037_JWKS).unwrap().keys;
    let key = &keys.keys()[0];
    let verifier = key.verifier(super::keys::Algorithm::EdDsa).unwrap();
    assert!(matches!(verifier, Verifier::EdDsa(_)));
    let (input, sig) = RFC8037_TOKEN.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    // The signature itself verifies (the payload is not a claims object).
    assert!(verify_signature(verifier, input, &sig));
    // Tampered signature or input: refused.
    let mut tampered = sig.clone();
    tampered[7] ^= 0x04;
    assert!(!verify_signature(verifier, input, &tampered));
    assert!(!verify_signature(verifier, &input.replace('e', "f"), &sig));
    let (p, keys) = provider_with(RFC8037_JWKS, json!({}));
    assert_eq!(
        verify(RFC8037_TOKEN, &p, &keys, BEFORE_RFC_EXP).unwrap_err(),
        JwtError::Malformed
    );
}
