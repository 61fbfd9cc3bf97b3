//! Credentials under attack: revocation reaches every replica within the token cache bound,
//! and JWTs are held to their client, their `nbf`, their key's own algorithm and a JWKS file
//! that rotates without a restart.

use crate::logs;
use crate::on_both_backends;
use crate::support::{Backend, TestServer};
use clock::Clock as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use server::{JwtConfig, JwtKey, ServerConfig};
use std::path::Path;
use std::time::Duration;
use store::{Scopes, Store, StoreOptions};

on_both_backends!(jwt_scopes_decide_what_a_caller_may_do);

const ISSUER: &str = "https://login.microsoftonline.com/tenant/v2.0";
const AUDIENCE: &str = "api://scim-bridge";
const HS256_SECRET: &[u8] = b"an hs256 secret of at least thirty-two bytes";

fn key_file(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/api/keys")
            .join(name),
    )
    .unwrap()
}

/// Claims valid for five minutes, plus `extra`.
fn claims(extra: Value) -> Value {
    let now = clock::SystemClock.now().timestamp();
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "provisioning", "iat": now, "exp": now + 300});
    if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
        claims.extend(extra.clone());
    }
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value) -> String {
    hs256_keyed(None, claims, HS256_SECRET)
}

/// HS256 with `secret` as the key: the bridge's secret, or a public key an attacker can fetch
/// (algorithm confusion).
fn hs256_keyed(kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret);
    sign(Algorithm::HS256, kid, claims, &key)
}

fn rs256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&key_file("rsa-private.pem")).unwrap();
    sign(Algorithm::RS256, kid, claims, &key)
}

fn es256(kid: Option<&str>, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&key_file("ec-private.pem")).unwrap();
    sign(Algorithm::ES256, kid, claims, &key)
}

/// `token` with its header replaced by `{"alg":"none",…}` and no signature (RFC 7519 §6.1).
fn unsigned(token: &str, none_header: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    format!("{none_header}.{payload}.")
}

/// `{"alg":"none","typ":"JWT"}`, with `kid` `bridge-test-1`, and spelled `None`.
const NONE_HEADERS: [&str; 3] = [
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIiwia2lkIjoiYnJpZGdlLXRlc3QtMSJ9",
    "eyJhbGciOiJOb25lIiwidHlwIjoiSldUIn0",
];

/// A server that accepts JWTs as `configure` says.
async fn jwt_server(backend: Backend, jwt: JwtConfig) -> Option<TestServer> {
    TestServer::start_with(backend, move |c| c.jwt = Some(jwt)).await
}

/// A SQLite server that accepts JWTs signed with `key`.
async fn key_server(key: JwtKey) -> TestServer {
    let config = JwtConfig::new(ISSUER, AUDIENCE, key);
    jwt_server(Backend::Sqlite, config).await.unwrap()
}

impl TestServer {
    /// The status of `GET /Users` with the bearer `token`.
    async fn users_status(&self, token: &str) -> u16 {
        self.get_with_token(token, "/Users").await.status
    }
}

/// The status of `GET url` with `token`.
async fn status(client: &reqwest::Client, url: &str, token: &str) -> u16 {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Poll every 25 ms until `want` for every URL, or `limit`; how long it took.
async fn until_every(
    client: &reqwest::Client,
    urls: &[&str],
    token: &str,
    want: u16,
    limit: Duration,
) -> Option<Duration> {
    let start = clock::SystemClock.instant();
    loop {
        let mut all = true;
        for url in urls {
            all &= status(client, url, token).await == want;
        }
        if all {
            return Some(clock::SystemClock.elapsed(start));
        }
        if clock::SystemClock.elapsed(start) > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Two replicas on one PostgreSQL database, each with the default token cache: a token revoked
/// through a third store handle (as `scim-bridge token revoke` does) is refused by both within
/// the documented second. The bound checked is 1 s plus 500 ms for the poll interval, one read
/// of the token table and scheduling on a shared 2-core machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_refused_by_every_replica_within_a_second() {
    let Some(srv) = TestServer::start(Backend::Postgres).await else {
        return;
    };
    assert_eq!(
        ServerConfig::default().token_cache_ttl,
        Duration::from_secs(1)
    );
    let replica = srv.replica().await;
    let cli = Store::connect(&srv.database_url, StoreOptions::default())
        .await
        .unwrap();
    let token = cli
        .tokens()
        .create("entra", None, Scopes::ALL)
        .await
        .unwrap();
    let first = srv.url("/Users");
    let replica_users = format!("{}/Users", replica.base);
    let urls = [first.as_str(), replica_users.as_str()];

    // Accepted by both before the revocation (a new token too appears within the bound).
    until_every(&srv.client, &urls, &token, 200, Duration::from_secs(3))
        .await
        .expect("the new token is accepted by both replicas");
    // Keep both snapshots warm, as IdP traffic does, right up to the revocation.
    assert_eq!(status(&srv.client, urls[0], &token).await, 200);
    assert_eq!(status(&srv.client, urls[1], &token).await, 200);

    cli.tokens().revoke("entra").await.unwrap();
    let took = until_every(&srv.client, &urls, &token, 401, Duration::from_millis(1500)).await;
    assert!(
        took.is_some(),
        "a revoked token was still accepted by a replica 1.5 s after its revocation"
    );
    // The other credentials are unaffected on both.
    assert_eq!(status(&srv.client, urls[0], &srv.token).await, 200);
    assert_eq!(status(&srv.client, urls[1], &srv.token).await, 200);
    replica.handle.stop(false).await;
}

/// The client allowlist: a token must name an allowed client in `azp`, `appid` or `client_id`,
/// and every client claim it carries must be allowed. `nbf` in the future is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwts_from_other_clients_or_before_nbf_are_refused() {
    let mut config = JwtConfig::new(ISSUER, AUDIENCE, JwtKey::Hs256(HS256_SECRET.to_vec()));
    config.allowed_clients = vec!["okta-app".into(), "entra-app".into()];
    let srv = jwt_server(Backend::Sqlite, config).await.unwrap();
    for accepted in [
        json!({"azp": "okta-app"}),
        json!({"appid": "entra-app"}),
        json!({"client_id": "okta-app"}),
        json!({"azp": "entra-app", "appid": "entra-app"}),
    ] {
        let status = srv.users_status(&hs256(&claims(accepted.clone()))).await;
        assert_eq!(status, 200, "{accepted}");
    }
    for refused in [
        json!({}),
        json!({"azp": "evil-app"}),
        json!({"appid": "evil-app"}),
        json!({"client_id": "OKTA-APP"}),
        json!({"azp": "okta-app", "appid": "evil-app"}),
        json!({"azp": ""}),
    ] {
        let reply = srv
            .send(
                srv.client
                    .get(srv.url("/Users"))
                    .bearer_auth(hs256(&claims(refused.clone()))),
            )
            .await;
        assert_eq!(reply.status, 401, "{refused}: {}", reply.text);
    }

    // nbf: refused until it is reached (60 s leeway, as for exp).
    let now = clock::SystemClock.now().timestamp();
    let early = claims(json!({"azp": "okta-app", "nbf": now + 600}));
    assert_eq!(srv.users_status(&hs256(&early)).await, 401);
    let within_leeway = claims(json!({"azp": "okta-app", "nbf": now + 30}));
    assert_eq!(srv.users_status(&hs256(&within_leeway)).await, 200);
    let reached = claims(json!({"azp": "okta-app", "nbf": now - 60}));
    assert_eq!(srv.users_status(&hs256(&reached)).await, 200);
    let malformed = claims(json!({"azp": "okta-app", "nbf": "soon"}));
    assert_eq!(srv.users_status(&hs256(&malformed)).await, 401);
}

/// Each JWKS key verifies with its own algorithm only: an ES256 key takes ES256 tokens, and no
/// token can choose another algorithm for it: RS256, HS256 "signed" with the public key
/// (algorithm confusion) and `alg: none` are all refused, against every kind of key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_honour_their_own_algorithm() {
    let ec_jwks = String::from_utf8(key_file("jwks-ec.json")).unwrap();
    let ec = key_server(JwtKey::Jwks(ec_jwks.clone())).await;
    let good = claims(json!({}));
    assert_eq!(
        ec.users_status(&es256(Some("bridge-test-ec"), &good)).await,
        200
    );
    // The only key of a set also takes a token without kid, still with its own algorithm.
    assert_eq!(ec.users_status(&es256(None, &good)).await, 200);
    assert_eq!(ec.users_status(&es256(Some("other"), &good)).await, 401);
    // RS256 against an ES256-only key.
    assert_eq!(
        ec.users_status(&rs256(Some("bridge-test-ec"), &good)).await,
        401
    );
    assert_eq!(ec.users_status(&rs256(None, &good)).await, 401);
    // HS256 keyed with the public key, as PEM and as the JWKS text an attacker can fetch.
    for public in [key_file("ec-public.pem"), ec_jwks.clone().into_bytes()] {
        let forged = hs256_keyed(Some("bridge-test-ec"), &good, &public);
        assert_eq!(ec.users_status(&forged).await, 401);
    }
    // A key whose JWK has no alg: ES256 follows from kty EC and crv P-256.
    let mut no_alg: Value = serde_json::from_str(&ec_jwks).unwrap();
    no_alg["keys"][0].as_object_mut().unwrap().remove("alg");
    let implied = key_server(JwtKey::Jwks(no_alg.to_string())).await;
    assert_eq!(
        implied
            .users_status(&es256(Some("bridge-test-ec"), &good))
            .await,
        200
    );
    assert_eq!(
        implied
            .users_status(&rs256(Some("bridge-test-ec"), &good))
            .await,
        401
    );

    // The RSA set (RS256 keys) and the single PEM key refuse the same forgeries.
    let rsa_jwks = String::from_utf8(key_file("jwks.json")).unwrap();
    let rsa = key_server(JwtKey::Jwks(rsa_jwks.clone())).await;
    let pem = key_server(JwtKey::Rs256Pem(key_file("rsa-public.pem"))).await;
    assert_eq!(
        rsa.users_status(&rs256(Some("bridge-test-1"), &good)).await,
        200
    );
    assert_eq!(pem.users_status(&rs256(None, &good)).await, 200);
    for srv in [&rsa, &pem] {
        for public in [key_file("rsa-public.pem"), rsa_jwks.clone().into_bytes()] {
            let forged = hs256_keyed(Some("bridge-test-1"), &good, &public);
            assert_eq!(srv.users_status(&forged).await, 401);
        }
        assert_eq!(
            srv.users_status(&es256(Some("bridge-test-1"), &good)).await,
            401
        );
    }

    // alg: none, against every kind of key (and the HS256 secret).
    let hs = key_server(JwtKey::Hs256(HS256_SECRET.to_vec())).await;
    for (srv, valid) in [
        (&ec, es256(Some("bridge-test-ec"), &good)),
        (&rsa, rs256(Some("bridge-test-1"), &good)),
        (&pem, rs256(None, &good)),
        (&hs, hs256(&good)),
    ] {
        assert_eq!(srv.users_status(&valid).await, 200);
        for header in NONE_HEADERS {
            let none = unsigned(&valid, header);
            assert_eq!(srv.users_status(&none).await, 401, "{none}");
            // …and with the valid signature left on.
            let kept = format!("{none}{}", valid.rsplit('.').next().unwrap());
            assert_eq!(srv.users_status(&kept).await, 401, "{kept}");
        }
    }
}

/// The JWKS file is re-read when it changes: after it is replaced by a set holding only the
/// EC key, the old RSA key stops working and the new key works, without a restart. A broken
/// file keeps the keys loaded before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_jwks_file_rotates_keys_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, key_file("jwks.json")).unwrap();
    let mut config = JwtConfig::new(ISSUER, AUDIENCE, JwtKey::JwksFile(path.clone()));
    config.jwks_recheck = Duration::from_millis(100);
    let srv = jwt_server(Backend::Sqlite, config).await.unwrap();
    let good = claims(json!({}));
    let old = rs256(Some("bridge-test-1"), &good);
    let new = es256(Some("bridge-test-ec"), &good);
    assert_eq!(srv.users_status(&old).await, 200);
    assert_eq!(srv.users_status(&new).await, 401);

    // Replace the file the way a Secret or ConfigMap update does: a new file renamed over it.
    let staged = dir.path().join("jwks.json.new");
    std::fs::write(&staged, key_file("jwks-ec.json")).unwrap();
    std::fs::rename(&staged, &path).unwrap();
    let deadline = clock::SystemClock.instant() + Duration::from_secs(5);
    loop {
        let (old_status, new_status) = (srv.users_status(&old).await, srv.users_status(&new).await);
        if (old_status, new_status) == (401, 200) {
            break;
        }
        assert!(
            clock::SystemClock.instant() < deadline,
            "5 s after the JWKS file changed: old key {old_status}, new key {new_status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken file does not lock every JWT out; the last good keys stay. Requests make the
    // server look at the file again (at most every `jwks_recheck`): keep sending until it has
    // read and refused the broken file twice (a retry keeps the keys too), as it logs.
    logs::capture();
    let shown_path = path.display().to_string();
    let refusals = || logs::count(&["JWKS file is not usable", &shown_path]);
    std::fs::write(&path, "{\"keys\": [{\"kty\": \"RSA\"").unwrap();
    let deadline = clock::SystemClock.instant() + Duration::from_secs(5);
    while refusals() < 2 {
        assert_eq!(srv.users_status(&new).await, 200);
        assert_eq!(srv.users_status(&old).await, 401);
        assert!(
            clock::SystemClock.instant() < deadline,
            "5 s after the JWKS file broke, the server had refused it {} times",
            refusals()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(srv.users_status(&new).await, 200);
    assert_eq!(srv.users_status(&old).await, 401);
}

/// A JWT's scopes come from `scp` (Entra) or `scope` (RFC 9068), names other than the bridge's
/// ignored, else the configured default: a read-only JWT reads but gets 403 on a write, and
/// the store is unchanged.
async fn jwt_scopes_decide_what_a_caller_may_do(backend: Backend) {
    let mut config = JwtConfig::new(ISSUER, AUDIENCE, JwtKey::Hs256(HS256_SECRET.to_vec()));
    config.default_scopes = Scopes::READ;
    let Some(srv) = jwt_server(backend, config).await else {
        return;
    };
    let create = |token: String| {
        srv.client
            .post(srv.url("/Users"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(crate::user_body("jwt-scope@example.com").to_string())
    };
    let audited = srv.store.audit().export(None).await.unwrap().len();
    for read_only in [
        json!({"scp": "scim:read User.Read"}),
        json!({"scope": "openid scim:read"}),
        json!({"scp": ["scim:read"]}),
        json!({"scp": "scim:admin"}),
        json!({}),
    ] {
        let token = hs256(&claims(read_only.clone()));
        assert_eq!(
            srv.users_status(&token).await,
            if read_only["scp"] == "scim:admin" {
                403
            } else {
                200
            },
            "{read_only}"
        );
        let reply = srv.send(create(token)).await;
        reply.assert_error(403, None);
    }
    assert_eq!(srv.get("/Users").await.body["totalResults"], 0);
    assert_eq!(
        srv.store.audit().export(None).await.unwrap().len(),
        audited,
        "a refused write leaves no audit record"
    );

    for writer in [
        json!({"scp": "scim:read scim:write"}),
        json!({"scope": "scim:write scim:read"}),
    ] {
        let reply = srv.send(create(hs256(&claims(writer.clone())))).await;
        assert!(
            matches!(reply.status, 201 | 409),
            "{writer}: {}",
            reply.text
        );
    }
    assert_eq!(srv.get("/Users").await.body["totalResults"], 1);
}
