//! The client credentials grant at `/oauth/token`, attacked over HTTP: client authentication
//! (Basic or the body, never both, never a bearer token), grant types, scopes that may only
//! narrow, the failed-authentication limit, and the access tokens on the SCIM API: scopes
//! enforced, expired or foreign-signed tokens refused, revoked clients cut off, and every
//! replica holding the key accepting them.

use crate::on_both_backends;
use crate::support::{Backend, Reply, TestServer};
use crate::user_body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clock::Clock as _;
use reqwest::Method;
use serde_json::Value;
use server::{OAuthConfig, ServerConfig, ServerDeps};
use std::net::SocketAddr;
use std::time::Duration;
use store::{NewOAuthClient, Scopes, Store, StoreOptions};

const KEY: &[u8] = b"the-bridge-oauth-signing-key-of-at-least-32-bytes";
const OTHER_KEY: &[u8] = b"another-key-nobody-configured-of-at-least-32-bytes";

fn with_oauth(config: &mut ServerConfig) {
    config.oauth = Some(OAuthConfig {
        signing_keys: vec![KEY.to_vec()],
        token_ttl: Duration::from_secs(3600),
    });
}

async fn start(backend: Backend) -> Option<TestServer> {
    TestServer::start_with(backend, with_oauth).await
}

async fn client(srv: &TestServer, name: &str, scopes: Scopes) -> NewOAuthClient {
    srv.store
        .oauth_clients()
        .create(name, scopes)
        .await
        .unwrap()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// POST /oauth/token on `root` with a form body and optional Basic credentials.
async fn token_request(
    srv: &TestServer,
    root: &str,
    basic: Option<(&str, &str)>,
    pairs: &[(&str, &str)],
) -> Reply {
    let mut builder = srv
        .client
        .post(format!("{root}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(pairs));
    if let Some((id, secret)) = basic {
        builder = builder.basic_auth(id, Some(secret));
    }
    srv.send(builder).await
}

/// POST /oauth/token on `srv` with `c`'s credentials in HTTP Basic and the form `pairs`.
async fn basic_token(srv: &TestServer, c: &NewOAuthClient, pairs: &[(&str, &str)]) -> Reply {
    token_request(
        srv,
        &srv.root,
        Some((&c.client_id, &c.client_secret)),
        pairs,
    )
    .await
}

/// Body credentials, grant_type client_credentials, and `extra`.
async fn body_token(srv: &TestServer, c: &NewOAuthClient, extra: &[(&str, &str)]) -> Reply {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", c.client_id.as_str()),
        ("client_secret", c.client_secret.as_str()),
    ];
    pairs.extend_from_slice(extra);
    token_request(srv, &srv.root, None, &pairs).await
}

/// An access token for `c` (body credentials, no scope asked).
async fn access_token(srv: &TestServer, c: &NewOAuthClient) -> String {
    let reply = body_token(srv, c, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body["access_token"].as_str().unwrap().to_string()
}

fn assert_oauth_error(reply: &Reply, status: u16, error: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(reply.body["error"], error, "{}", reply.text);
    assert!(
        reply.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        reply.text
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

async fn scim(
    srv: &TestServer,
    root: &str,
    method: Method,
    token: &str,
    body: Option<&Value>,
) -> u16 {
    let mut builder = srv
        .client
        .request(method, format!("{root}/scim/v2/Users"))
        .bearer_auth(token);
    if let Some(body) = body {
        builder = builder
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    srv.send(builder).await.status
}

/// A token whose claims were changed by `edit` and signed again with `key`, under the real
/// token's header (its `kid` included).
fn forged(real: &str, key: &[u8], edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = real.split('.').collect();
    let header: jsonwebtoken::Header =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    edit(&mut claims);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .unwrap()
}

async fn a_client_gets_a_bearer_token_that_works_on_the_scim_api(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    // HTTP Basic.
    let reply = basic_token(&srv, &entra, &[("grant_type", "client_credentials")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 3600);
    assert!(
        reply.body.get("scope").is_none(),
        "not narrowed: {}",
        reply.text
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let token = reply.body["access_token"].as_str().unwrap().to_string();
    // The claims a resource server reads (RFC 9068).
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], server::OAUTH_ISSUER);
    assert_eq!(claims["aud"], server::OAUTH_AUDIENCE);
    assert_eq!(claims["sub"], entra.client_id.as_str());
    assert_eq!(claims["client_id"], entra.client_id.as_str());
    assert_eq!(claims["scope"], "scim:read scim:write");
    assert!(claims["jti"].is_string() && claims["iat"].is_u64());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );

    assert_eq!(scim(&srv, &srv.root, Method::GET, &token, None).await, 200);
    let body = user_body("oauth.user@example.com");
    assert_eq!(
        scim(&srv, &srv.root, Method::POST, &token, Some(&body)).await,
        201
    );
    let records = srv.store.audit().export(None).await.unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.operation == "POST /Users" && r.actor.as_deref() == Some("oauth:entra")),
        "the audit names the client: {records:?}"
    );

    // Credentials in the body work the same; the token is a fresh one.
    let reply = body_token(&srv, &entra, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_ne!(reply.body["access_token"].as_str().unwrap(), token);
}

async fn scopes_only_narrow_and_are_enforced(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let reader = client(&srv, "reader", Scopes::READ).await;
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let widened = body_token(&srv, &reader, &[("scope", "scim:read scim:write")]).await;
    assert_oauth_error(&widened, 400, "invalid_scope");
    let unknown = body_token(&srv, &entra, &[("scope", "scim:admin")]).await;
    assert_oauth_error(&unknown, 400, "invalid_scope");

    let reply = body_token(&srv, &reader, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let read_only = reply.body["access_token"].as_str().unwrap().to_string();
    let body = user_body("nobody@example.com");
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &read_only, None).await,
        200
    );
    assert_eq!(
        scim(&srv, &srv.root, Method::POST, &read_only, Some(&body)).await,
        403
    );

    let reply = body_token(&srv, &entra, &[("scope", "scim:read")]).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body["scope"], "scim:read", "narrowed: {}", reply.text);
    let narrowed = reply.body["access_token"].as_str().unwrap();
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, narrowed, None).await,
        200
    );
    assert_eq!(
        scim(&srv, &srv.root, Method::POST, narrowed, Some(&body)).await,
        403
    );
}

async fn bad_client_authentication_and_requests_are_refused(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let grant = ("grant_type", "client_credentials");

    let wrong = NewOAuthClient {
        client_id: entra.client_id.clone(),
        client_secret: format!("{}0", entra.client_secret),
    };
    let reply = body_token(&srv, &wrong, &[]).await;
    assert_oauth_error(&reply, 401, "invalid_client");
    assert!(reply.header("www-authenticate").is_none());
    let reply = basic_token(&srv, &wrong, &[grant]).await;
    assert_oauth_error(&reply, 401, "invalid_client");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"scim-bridge\"")
    );
    let unknown = token_request(
        &srv,
        &srv.root,
        Some(("scimc_nobody", &entra.client_secret)),
        &[grant],
    )
    .await;
    assert_oauth_error(&unknown, 401, "invalid_client");

    // Basic and the body both: one method per request (RFC 6749 §2.3).
    let both = basic_token(
        &srv,
        &entra,
        &[
            grant,
            ("client_id", &entra.client_id),
            ("client_secret", &entra.client_secret),
        ],
    )
    .await;
    assert_oauth_error(&both, 400, "invalid_request");

    let reply = basic_token(
        &srv,
        &entra,
        &[
            ("grant_type", "password"),
            ("username", "u"),
            ("password", "p"),
        ],
    )
    .await;
    assert_oauth_error(&reply, 400, "unsupported_grant_type");
    let reply = basic_token(&srv, &entra, &[]).await;
    assert_oauth_error(&reply, 400, "invalid_request");
    let repeated = basic_token(&srv, &entra, &[grant, grant]).await;
    assert_oauth_error(&repeated, 400, "invalid_request");

    // A bearer token (the bridge's own, or an access token) is no client credential.
    let reply = srv
        .send(
            srv.client
                .post(format!("{}/oauth/token", srv.root))
                .bearer_auth(&srv.token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[grant])),
        )
        .await;
    assert_oauth_error(&reply, 401, "invalid_client");
    // JSON is not the token endpoint's format.
    let reply = srv
        .send(
            srv.client
                .post(format!("{}/oauth/token", srv.root))
                .basic_auth(&entra.client_id, Some(&entra.client_secret))
                .json(&serde_json::json!({"grant_type": "client_credentials"})),
        )
        .await;
    assert_oauth_error(&reply, 400, "invalid_request");
    let reply = srv
        .get_anonymous(&format!("{}/oauth/token", srv.root))
        .await;
    assert_eq!(reply.status, 405);
    // No credentials at all.
    let reply = token_request(&srv, &srv.root, None, &[grant]).await;
    assert_oauth_error(&reply, 401, "invalid_client");
}

async fn expired_and_foreign_tokens_are_refused(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let real = access_token(&srv, &entra).await;
    assert_eq!(scim(&srv, &srv.root, Method::GET, &real, None).await, 200);
    // Re-signed with the real key, unchanged: still good (the forgery is faithful).
    let resigned = forged(&real, KEY, |_| {});
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &resigned, None).await,
        200
    );

    let now = u64::try_from(clock::SystemClock.now().timestamp()).unwrap();
    let expired = forged(&real, KEY, |c| {
        c["iat"] = (now - 7200).into();
        c["exp"] = (now - 120).into();
    });
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &expired, None).await,
        401
    );
    let foreign = forged(&real, OTHER_KEY, |_| {});
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &foreign, None).await,
        401
    );
    let other_audience = forged(&real, KEY, |c| c["aud"] = "coder".into());
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &other_audience, None).await,
        401
    );
    let other_issuer = forged(&real, KEY, |c| c["iss"] = "https://evil.example".into());
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &other_issuer, None).await,
        401
    );
    // alg none with the real claims.
    let parts: Vec<&str> = real.split('.').collect();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    assert_eq!(scim(&srv, &srv.root, Method::GET, &none, None).await, 401);
}

async fn a_revoked_client_gets_no_token_and_its_tokens_stop(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let token = access_token(&srv, &entra).await;
    assert_eq!(scim(&srv, &srv.root, Method::GET, &token, None).await, 200);
    srv.store.oauth_clients().revoke("entra").await.unwrap();
    let reply = body_token(&srv, &entra, &[]).await;
    assert_oauth_error(&reply, 401, "invalid_client");
    let started = clock::SystemClock.instant();
    loop {
        let status = scim(&srv, &srv.root, Method::GET, &token, None).await;
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            clock::SystemClock.elapsed(started) < Duration::from_secs(10),
            "a revoked client's token still works after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_flood_of_bad_secrets_is_limited_per_address(backend: Backend) {
    let Some(srv) = TestServer::start_with(backend, |config| {
        with_oauth(config);
        config.auth_failure_rate_limit_per_second = 1;
        config.auth_failure_rate_limit_burst = 3;
    })
    .await
    else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let issued = access_token(&srv, &entra).await;
    let wrong = NewOAuthClient {
        client_id: entra.client_id.clone(),
        client_secret: "scimb_guess".to_string(),
    };
    let mut limited = None;
    for _ in 0..20 {
        let reply = body_token(&srv, &wrong, &[]).await;
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
        assert_oauth_error(&reply, 401, "invalid_client");
    }
    let reply = limited.expect("429 once the failures are spent");
    assert_eq!(
        reply.body["error"], "temporarily_unavailable",
        "{}",
        reply.text
    );
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    // While limited, even the right secret is not checked.
    let reply = body_token(&srv, &entra, &[]).await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    // The failures count against the same allowance as bad bearer tokens.
    let reply = srv
        .send(
            srv.client
                .get(format!("{}/Users", srv.base))
                .bearer_auth("scimb_nope"),
        )
        .await;
    assert_eq!(reply.status, 429, "{}", reply.text);
    // A valid access token still passes from that address, as a known bridge token does; a
    // forged one is refused like any bad credential.
    assert_eq!(scim(&srv, &srv.root, Method::GET, &issued, None).await, 200);
    let forgery = forged(&issued, OTHER_KEY, |_| {});
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &forgery, None).await,
        429
    );
}

async fn a_token_from_one_replica_works_on_another(backend: Backend) {
    let Some(srv) = start(backend).await else {
        return;
    };
    let store = Store::connect(&srv.database_url, StoreOptions::default())
        .await
        .unwrap();
    let mut config = ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        rate_limit_per_second: 0,
        workers: 1,
        ..ServerConfig::default()
    };
    with_oauth(&mut config);
    let bound = server::bind(config, ServerDeps::new(store)).await.unwrap();
    let other = format!("http://{}", bound.local_addr());
    let handle = bound.handle();
    tokio::spawn(bound.run());

    let entra = client(&srv, "entra", Scopes::ALL).await;
    let from_first = access_token(&srv, &entra).await;
    assert_eq!(
        scim(&srv, &other, Method::GET, &from_first, None).await,
        200
    );
    let reply = token_request(
        &srv,
        &other,
        Some((&entra.client_id, &entra.client_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let from_second = reply.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        scim(&srv, &srv.root, Method::GET, &from_second, None).await,
        200
    );
    // Revoked through one replica's store: the other replica refuses the client's tokens within
    // seconds, from its own token snapshot.
    srv.store.oauth_clients().revoke("entra").await.unwrap();
    let started = clock::SystemClock.instant();
    while scim(&srv, &other, Method::GET, &from_first, None).await != 401 {
        assert!(
            clock::SystemClock.elapsed(started) < Duration::from_secs(10),
            "the other replica still accepts a revoked client's token after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    handle.stop(false).await;
}

async fn without_a_signing_key_no_token_is_issued(backend: Backend) {
    let Some(srv) = TestServer::start(backend).await else {
        return;
    };
    let entra = client(&srv, "entra", Scopes::ALL).await;
    let reply = body_token(&srv, &entra, &[]).await;
    assert_oauth_error(&reply, 400, "unsupported_grant_type");
    assert!(
        reply.body["error_description"]
            .as_str()
            .unwrap()
            .contains("SCIM_BRIDGE_OAUTH_SIGNING_KEY"),
        "{}",
        reply.text
    );
    assert!(!reply.text.contains(&entra.client_secret));
}

on_both_backends!(
    a_client_gets_a_bearer_token_that_works_on_the_scim_api,
    scopes_only_narrow_and_are_enforced,
    bad_client_authentication_and_requests_are_refused,
    expired_and_foreign_tokens_are_refused,
    a_revoked_client_gets_no_token_and_its_tokens_stop,
    a_flood_of_bad_secrets_is_limited_per_address,
    a_token_from_one_replica_works_on_another,
    without_a_signing_key_no_token_is_issued,
);
