//! Authentication: bridge tokens (any-case `Bearer`, revocation within seconds), JWTs (HS256,
//! RS256 PEM, JWKS by `kid`), the 401 shape, and the per-token rate limit.

use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use clock::Clock as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;
use server::{JwtConfig, JwtKey};
use std::time::Duration;

on_both_backends!(
    bearer_tokens,
    revoked_tokens_stop_working_within_seconds,
    jwt_bearers,
    rate_limit_per_token
);

const ISSUER: &str = "https://sts.windows.net/tenant/";
const AUDIENCE: &str = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621";
const HS256_SECRET: &[u8] = b"an hs256 secret of at least thirty-two bytes";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/api/keys")
            .join(name),
    )
    .unwrap()
}

fn claims(sub: &str, aud: &str, exp_offset: i64) -> serde_json::Value {
    let now = clock::SystemClock.now().timestamp();
    json!({"iss": ISSUER, "aud": aud, "sub": sub, "iat": now, "exp": now + exp_offset})
}

async fn bearer_tokens(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let users = srv.url("/Users");
    let missing = srv.send(srv.client.get(&users)).await;
    missing.assert_error(401, None);
    assert!(
        missing
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    insta::assert_json_snapshot!("error_unauthorized", missing.body);
    srv.send(srv.client.get(&users).bearer_auth("scimb_not-a-real-token"))
        .await
        .assert_error(401, None);
    srv.send(
        srv.client
            .get(&users)
            .header("authorization", format!("Basic {}", srv.token)),
    )
    .await
    .assert_error(401, None);
    srv.send(srv.client.get(&users).header("authorization", "Bearer "))
        .await
        .assert_error(401, None);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = srv
            .send(
                srv.client
                    .get(&users)
                    .header("authorization", format!("{scheme} {}", srv.token)),
            )
            .await;
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text);
    }
    // Writes are refused as well and change nothing.
    let refused = srv
        .send(
            srv.client
                .post(&users)
                .body(crate::user_body("x@example.com").to_string()),
        )
        .await;
    refused.assert_error(401, None);
    assert_eq!(srv.get("/Users").await.body["totalResults"], 0);
    // Discovery and health need no token.
    assert_eq!(srv.get_anonymous("/Schemas").await.status, 200);
    srv.get_anonymous(&format!("{}/healthz", srv.root))
        .await
        .assert_status(200);
}

async fn revoked_tokens_stop_working_within_seconds(backend: Backend) {
    let Some(srv) =
        TestServer::start_with(backend, |c| c.token_cache_ttl = Duration::from_millis(300)).await
    else {
        return;
    };
    let entra = srv.create_token("entra", store::Scopes::ALL).await;
    let with = |token: &str| {
        srv.client
            .get(srv.url("/Users"))
            .bearer_auth(token.to_string())
    };
    // A token made after start-up works within the refresh interval.
    let deadline = clock::SystemClock.instant() + Duration::from_secs(5);
    loop {
        let status = srv.send(with(&entra)).await.status;
        if status == 200 {
            break;
        }
        assert!(
            clock::SystemClock.instant() < deadline,
            "a new token was not accepted within 5 s (last status {status})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.store.tokens().revoke("entra").await.unwrap();
    let revoked_at = clock::SystemClock.instant();
    loop {
        let status = srv.send(with(&entra)).await.status;
        if status == 401 {
            break;
        }
        assert!(
            clock::SystemClock.elapsed(revoked_at) < Duration::from_secs(5),
            "a revoked token still works after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other token is unaffected.
    assert_eq!(srv.send(with(&srv.token)).await.status, 200);
}

async fn jwt_bearers(backend: Backend) {
    let jwt = |key: JwtKey| JwtConfig::new(ISSUER, AUDIENCE, key);

    // HS256.
    let Some(srv) = TestServer::start_with(backend, |c| {
        c.jwt = Some(jwt(JwtKey::Hs256(HS256_SECRET.to_vec())))
    })
    .await
    else {
        return;
    };
    let key = EncodingKey::from_secret(HS256_SECRET);
    let sign = |c: &serde_json::Value| encode(&Header::new(Algorithm::HS256), c, &key).unwrap();
    let good = sign(&claims("entra-provisioning", AUDIENCE, 300));
    let reply = srv
        .send(
            srv.client
                .post(srv.url("/Users"))
                .bearer_auth(&good)
                .body(crate::user_body("jwt@example.com").to_string()),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let audit = srv.store.audit().export(None).await.unwrap();
    assert_eq!(
        audit.last().unwrap().actor.as_deref(),
        Some("jwt:entra-provisioning")
    );
    for bad in [
        sign(&claims("entra-provisioning", "another-audience", 300)),
        sign(&claims("entra-provisioning", AUDIENCE, -600)),
        encode(
            &Header::new(Algorithm::HS256),
            &claims("x", AUDIENCE, 300),
            &EncodingKey::from_secret(b"a different secret of thirty-two bytes!"),
        )
        .unwrap(),
        sign(
            &json!({"iss": "https://evil.example/", "aud": AUDIENCE, "sub": "x", "exp": clock::SystemClock.now().timestamp() + 300}),
        ),
    ] {
        srv.get_with_token(&bad, "/Users")
            .await
            .assert_error(401, None);
    }
    // The bridge token still works beside JWTs.
    assert_eq!(srv.get("/Users").await.status, 200);
    drop(srv);

    // RS256 with a PEM public key, and a JWKS selected by kid.
    let private = EncodingKey::from_rsa_pem(&key_file("rsa-private.pem")).unwrap();
    let rs256 = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        encode(&header, &claims("okta-oauth", AUDIENCE, 300), &private).unwrap()
    };
    let pem = TestServer::start_with(backend, |c| {
        c.jwt = Some(jwt(JwtKey::Rs256Pem(key_file("rsa-public.pem"))))
    })
    .await
    .unwrap();
    assert_eq!(pem.get_with_token(&rs256(None), "/Users").await.status, 200);
    // An HS256 token must not pass an RS256 configuration (algorithm confusion).
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims("x", AUDIENCE, 300),
        &EncodingKey::from_secret(&key_file("rsa-public.pem")),
    )
    .unwrap();
    pem.get_with_token(&confused, "/Users")
        .await
        .assert_error(401, None);
    drop(pem);

    let jwks = String::from_utf8(key_file("jwks.json")).unwrap();
    let set = TestServer::start_with(backend, |c| c.jwt = Some(jwt(JwtKey::Jwks(jwks))))
        .await
        .unwrap();
    set.get_with_token(&rs256(Some("bridge-test-1")), "/Users")
        .await
        .assert_status(200);
    set.get_with_token(&rs256(Some("decoy")), "/Users")
        .await
        .assert_error(401, None);
    set.get_with_token(&rs256(Some("unknown")), "/Users")
        .await
        .assert_error(401, None);
    set.get_with_token(&rs256(None), "/Users")
        .await
        .assert_error(401, None);
}

async fn rate_limit_per_token(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |c| {
        c.rate_limit_per_second = 1;
        c.rate_limit_burst = 3;
        // Every request re-reads the tokens, so the token made below is known at once.
        c.token_cache_ttl = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..5 {
        let reply = srv.get("/Users").await;
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    assert_eq!(
        &statuses[..3],
        [200, 200, 200],
        "the burst passes: {statuses:?}"
    );
    limited
        .expect("a 429 once the burst is spent")
        .assert_retry_after(1..=2);
    // Another token has its own quota.
    let entra = srv.create_token("entra", store::Scopes::ALL).await;
    let other = srv.get_with_token(&entra, "/Users").await;
    assert_eq!(other.status, 200, "{}", other.text);
    // Discovery is not limited (it needs no token).
    for _ in 0..5 {
        srv.get_anonymous("/ServiceProviderConfig")
            .await
            .assert_status(200);
    }
}
