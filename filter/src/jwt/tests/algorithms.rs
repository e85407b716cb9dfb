//! Tokens minted with every supported algorithm verify.

use super::*;

#[test]
fn every_rsa_algorithm_verifies_with_one_key_without_alg() {
    let spec = Spec::default();
    let der = rsa_pair().to_der().unwrap();
    let tokens = vec![
        rsa_pair()
            .clone()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        RS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        RS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS256KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS384KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
        PS512KeyPair::from_der(&der)
            .unwrap()
            .with_key_id("rsa")
            .sign(spec.claims())
            .unwrap(),
    ];
    let (p, keys) = strict_provider(&rsa_jwks(None));
    for t in &tokens {
        let v = verify(t, &p, &keys, NOW).unwrap();
        assert_eq!(v.subject.as_deref(), Some("alice"));
        assert_eq!(v.scopes, vec!["chat", "models"]);
    }
    // A JWK `alg` restricts the key to that algorithm.
    let (p, keys) = strict_provider(&rsa_jwks(Some("RS256")));
    assert!(verify(&tokens[0], &p, &keys, NOW).is_ok());
    assert_eq!(
        verify(&tokens[3], &p, &keys, NOW).unwrap_err(),
        JwtError::AlgNotAllowed
    );
}

#[test]
fn ecdsa_and_eddsa_verify() {
    let spec = Spec::default();
    let es256 = ES256KeyPair::generate().with_key_id("e1");
    let es384 = ES384KeyPair::generate().with_key_id("e2");
    let ed = Ed25519KeyPair::generate().with_key_id("e3");
    let cases = vec![
        (
            es256.sign(spec.claims()).unwrap(),
            exported_jwks(&es256.public_key().to_jwk(), "e1"),
        ),
        (
            es384.sign(spec.claims()).unwrap(),
            exported_jwks(&es384.public_key().to_jwk(), "e2"),
        ),
        (
            ed.sign(spec.claims()).unwrap(),
            exported_jwks(&ed.public_key().to_jwk(), "e3"),
        ),
    ];
    for (token, jwks) in &cases {
        let (p, keys) = strict_provider(jwks);
        let v = verify(token, &p, &keys, NOW).unwrap();
        assert_eq!(v.subject.as_deref(), Some("alice"));
    }
    // An ES256 token against the ES384 key: algorithm not allowed by the key.
    let (p, keys) = strict_provider(&cases[1].1);
    let es256_with_kid_e2 = ES256KeyPair::generate()
        .with_key_id("e2")
        .sign(spec.claims())
        .unwrap();
    assert_eq!(
        verify(&es256_with_kid_e2, &p, &keys, NOW).unwrap_err(),
        JwtError::AlgNotAllowed
    );
}

#[test]
fn every_hmac_algorithm_verifies() {
    let spec = Spec::default();
    let tokens = vec![
        HS256Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
        HS384Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
        HS512Key::from_bytes(HS_SECRET)
            .with_key_id("hs")
            .authenticate(spec.claims())
            .unwrap(),
    ];
    let (p, keys) = strict_provider(&hs_jwks());
    for t in &tokens {
        assert!(verify(t, &p, &keys, NOW).is_ok());
    }
    let other = HS256Key::from_bytes(b"another secret of at least thirty-two bytes!")
        .with_key_id("hs")
        .authenticate(spec.claims())
        .unwrap();
    assert_eq!(
        verify(&other, &p, &keys, NOW).unwrap_err(),
        JwtError::BadSignature
    );
}
