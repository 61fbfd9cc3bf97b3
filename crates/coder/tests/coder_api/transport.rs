//! Where the session token may go: never to another host behind a redirect, and over TLS only to
//! a server whose certificate chains to a CA the client was given.

use clock::IdSource as _;
use coder::types::{CreateUserRequest, DEFAULT_ORGANIZATION_ALIAS, LoginType};
use coder::{CoderClient, CoderConfig, CoderError, SessionToken};
use coder_fake::{CoderFake, FakeOptions, Fault, FaultKind};

use crate::sink::Sink;
use crate::tls_front::{Handshake, TestPki, TlsFront};

fn redirect(status: u16, location: &str) -> Fault {
    Fault::next(
        1,
        FaultKind::Redirect {
            status,
            location: location.to_owned(),
        },
    )
}

fn assert_redirect(result: Result<impl std::fmt::Debug, CoderError>, status_line: &str, to: &str) {
    let err = result.unwrap_err();
    assert!(
        matches!(&err, CoderError::Redirect { location, .. } if location == to),
        "{err:?}"
    );
    assert!(err.needs_operator() && !err.is_retryable(), "{err:?}");
    let message = err.to_string();
    for part in [
        status_line,
        to,
        "follows no redirects",
        "set SCIM_BRIDGE_CODER_URL to the final URL",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

/// Coder (or a proxy in front of it) answers 3xx to another host, for reads and for writes: the
/// client reports a configuration error naming the fix, and the other host receives nothing.
#[tokio::test]
async fn a_redirect_is_a_configuration_error_and_the_other_host_receives_nothing() {
    let fake = CoderFake::start(FakeOptions::default()).await.unwrap();
    let other_host = Sink::start().await;
    let client = CoderClient::new(CoderConfig::new(
        fake.base_url().parse().unwrap(),
        SessionToken::new(fake.owner_token()),
    ))
    .unwrap();
    let target = other_host.url("/api/v2/users/me");

    fake.inject(redirect(302, &target)).unwrap();
    assert_redirect(client.identify().await, "302 Found", &target);

    fake.inject(redirect(307, &target)).unwrap();
    let request = CreateUserRequest {
        email: "moved@example.com".into(),
        username: "moved".into(),
        name: String::new(),
        login_type: LoginType::Oidc,
        organization_ids: vec![DEFAULT_ORGANIZATION_ALIAS],
        user_status: None,
        service_account: false,
    };
    assert_redirect(
        client.create_user(&request).await,
        "307 Temporary Redirect",
        &target,
    );

    let anyone = clock::SystemIds.uuid_v4();
    fake.inject(redirect(308, &target)).unwrap();
    assert_redirect(
        client.suspend_user(anyone).await,
        "308 Permanent Redirect",
        &target,
    );
    fake.inject(redirect(301, &target)).unwrap();
    assert_redirect(
        client.delete_user(anyone).await,
        "301 Moved Permanently",
        &target,
    );
    // A relative Location is shown resolved, so the operator sees the full URL.
    fake.inject(redirect(303, "/login?redirect=%2Fapi%2Fv2%2Fusers%2Fme"))
        .unwrap();
    let login = format!(
        "{}/login?redirect=%2Fapi%2Fv2%2Fusers%2Fme",
        fake.base_url().trim_end_matches('/')
    );
    assert_redirect(client.identify().await, "303 See Other", &login);

    assert_eq!(
        other_host.accepted(),
        0,
        "no connection, so no Coder-Session-Token, reached the other host"
    );
    assert!(
        fake.state().user("moved").is_none(),
        "the redirected create did nothing"
    );

    // The sink does count: a client that follows redirects reaches it.
    fake.inject(redirect(302, &target)).unwrap();
    let _ = reqwest::Client::new()
        .get(format!("{}/api/v2/users/me", fake.base_url()))
        .send()
        .await;
    assert_eq!(other_host.accepted(), 1, "a following client does reach it");
}

/// Coder behind TLS with a certificate from a private CA: the client given that CA (a PEM file)
/// connects; without it, or with another CA, it fails with a certificate error.
#[tokio::test]
async fn the_client_trusts_the_private_ca_it_is_given() {
    let fake = CoderFake::start(FakeOptions::default()).await.unwrap();
    let pki = TestPki::new();
    let front = TlsFront::start(&pki, fake.address(), Handshake::Direct).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("coder-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, TestPki::new().ca_pem).unwrap();
    let url: url::Url = format!("https://127.0.0.1:{}/", front.addr.port())
        .parse()
        .unwrap();
    let client = |ca_file: Option<&std::path::Path>| {
        CoderClient::new(CoderConfig {
            ca_file: ca_file.map(std::path::Path::to_path_buf),
            ..CoderConfig::new(url.clone(), SessionToken::new(fake.owner_token()))
        })
        .unwrap()
    };

    let identity = client(Some(&ca_file)).identify().await.unwrap();
    assert_eq!(identity.user.username, "admin");
    assert!(identity.is_owner);
    assert!(front.handshakes() >= 1);

    for (what, ca_file) in [("no CA file", None), ("another CA", Some(&*other_ca_file))] {
        let handshakes = front.handshakes();
        let err = client(ca_file).identify().await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("invalid peer certificate"),
            "{what}: {message}"
        );
        assert_eq!(front.handshakes(), handshakes, "{what}: no TLS session");
    }
}
