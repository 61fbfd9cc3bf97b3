//! Where the real binary sends the Coder owner token: never over plain http off loopback unless
//! told to, never behind a redirect, and over TLS to a private CA only when given that CA.

use std::time::Duration;

use crate::sink::Sink;
use crate::support::{Bridge, BridgeOptions, Db, eventually, fresh_database, run_bounded};
use crate::tls_front::{Handshake, TestPki, TlsFront};

/// An IdP's POST /Users, stored by the bridge.
async fn create_user(bridge: &Bridge, user_name: &str) {
    let (status, created) = bridge
        .call("POST", "/Users", Some(&crate::user(user_name)))
        .await;
    assert_eq!(status, 201, "{created}");
}

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// `serve` with a plain-http Coder URL that is not loopback stops before listening, naming the
/// setting and the way to accept it; with `SCIM_BRIDGE_CODER_ALLOW_HTTP=true` it serves.
#[tokio::test(flavor = "multi_thread")]
async fn plain_http_to_a_remote_coder_is_refused_at_start_up_unless_allowed() {
    let database = fresh_database(&Db::Sqlite).await;
    let database_url = database.url().to_owned();
    // Never contacted: the refusal comes first, and the allowed bridge only starts.
    let remote = "http://coder.internal.example.com:3000";
    let envs = env(&[
        ("SCIM_BRIDGE_DATABASE_URL", database_url.clone()),
        ("SCIM_BRIDGE_LISTEN", "127.0.0.1:0".into()),
        ("SCIM_BRIDGE_CODER_URL", remote.into()),
        ("SCIM_BRIDGE_CODER_TOKEN", "coder-owner-token".into()),
    ]);
    let (code, output) = run_bounded(&envs, &["serve"], Duration::from_secs(30))
        .expect("serve refused to start instead of serving");
    assert_eq!(code, 3, "a configuration error: {output}");
    for part in [
        "SCIM_BRIDGE_CODER_URL",
        remote,
        "SCIM_BRIDGE_CODER_ALLOW_HTTP=true",
    ] {
        assert!(output.contains(part), "{part:?} missing from: {output}");
    }
    assert!(!output.contains("listening"), "{output}");
    assert!(
        !output.contains("coder-owner-token"),
        "the token is not printed"
    );

    let bridge = Bridge::start(BridgeOptions {
        database,
        extra_env: env(&[
            ("SCIM_BRIDGE_CODER_URL", remote.into()),
            ("SCIM_BRIDGE_CODER_TOKEN", "coder-owner-token".into()),
            ("SCIM_BRIDGE_CODER_ALLOW_HTTP", "true".into()),
        ]),
    })
    .await;
    let (status, _) = bridge.call("GET", "/Users", None).await;
    assert_eq!(status, 200, "the bridge serves with the http URL accepted");
}

/// A proxy in front of Coder redirects every call to another host: the IdP's writes are still
/// stored, the worker pauses with the fix in `/readyz` and `scim-bridge status`, and the other
/// host never receives a connection (so never the owner token).
#[tokio::test(flavor = "multi_thread")]
async fn a_redirecting_coder_pauses_the_sync_visibly_and_the_token_stays_home() {
    let fake = crate::support::default_fake().await;
    let other_host = Sink::start().await;
    let target = other_host.url("/api/v2/users/me");
    fake.inject(coder_fake::Fault::next(
        coder_fake::MAX_FAULT_COUNT,
        coder_fake::FaultKind::Redirect {
            status: 302,
            location: target.clone(),
        },
    ))
    .unwrap();
    let bridge = Bridge::start(BridgeOptions {
        database: fresh_database(&Db::Sqlite).await,
        extra_env: env(&[
            ("SCIM_BRIDGE_CODER_URL", fake.base_url().to_string()),
            ("SCIM_BRIDGE_CODER_TOKEN", fake.owner_token().to_string()),
        ]),
    })
    .await;
    create_user(&bridge, "moved@example.com").await;

    let readyz = eventually(Duration::from_secs(20), || async {
        let response = bridge
            .http
            .get(format!("{}/readyz", bridge.base))
            .bearer_auth(&bridge.token)
            .send()
            .await
            .ok()?;
        let code = response.status().as_u16();
        let body = response.text().await.ok()?;
        (code == 503 && body.contains("302 Found")).then_some(body)
    })
    .await
    .expect("/readyz reports the redirect");
    for part in [
        target.as_str(),
        "paused",
        "set SCIM_BRIDGE_CODER_URL to the final URL",
    ] {
        assert!(
            readyz.contains(part),
            "{part:?} missing from /readyz: {readyz}"
        );
    }

    let out = bridge.cli(&["status"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("302 Found") && printed.contains(&target),
        "{printed}"
    );

    assert_eq!(other_host.accepted(), 0, "nothing reached the other host");
    assert!(
        fake.state().user("moved").is_none(),
        "nothing was applied behind the redirect"
    );
}

/// Coder behind TLS with a certificate from a private CA: `SCIM_BRIDGE_CODER_CA_FILE` makes the
/// bridge trust it (the worker syncs a user through it); without it the connection is refused
/// with a certificate error.
#[tokio::test(flavor = "multi_thread")]
async fn a_private_ca_for_coder_comes_from_the_ca_file() {
    let fake = crate::support::default_fake().await;
    let pki = TestPki::new();
    let front = TlsFront::start(&pki, fake.address(), Handshake::Direct).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = crate::support::write_file(dir.path(), "coder-ca.pem", &pki.ca_pem);
    let coder_env = env(&[
        (
            "SCIM_BRIDGE_CODER_URL",
            format!("https://127.0.0.1:{}", front.addr.port()),
        ),
        ("SCIM_BRIDGE_CODER_TOKEN", fake.owner_token().to_string()),
    ]);
    let database = fresh_database(&Db::Sqlite).await;
    let database_url = database.url().to_owned();

    let mut without_ca = coder_env.clone();
    without_ca.push(("SCIM_BRIDGE_DATABASE_URL".into(), database_url.clone()));
    let (code, output) =
        run_bounded(&without_ca, &["migrate"], Duration::from_secs(60)).expect("migrate finished");
    assert_eq!(code, 0, "{output}");
    let (code, output) =
        run_bounded(&without_ca, &["status"], Duration::from_secs(60)).expect("status finished");
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("invalid peer certificate"),
        "a certificate error: {output}"
    );

    let mut with_ca = coder_env;
    with_ca.push((
        "SCIM_BRIDGE_CODER_CA_FILE".into(),
        ca_file.display().to_string(),
    ));
    let bridge = Bridge::start(BridgeOptions {
        database,
        extra_env: with_ca,
    })
    .await;
    create_user(&bridge, "tls@example.com").await;
    let synced = eventually(Duration::from_secs(30), || async {
        fake.state().user("tls").map(|_| ())
    })
    .await;
    assert!(synced.is_some(), "the worker reached Coder over TLS");
    assert!(front.handshakes() >= 1);
}
