//! PostgreSQL over TLS, as the URL asks: `sslmode=verify-full` with `sslrootcert` reaches a
//! server whose certificate chains to that CA; without it, or against a server without TLS, the
//! connection fails with a clear error instead of falling back to clear text.
//!
//! The local PostgreSQL has no TLS, so a TLS front answers PostgreSQL's SSLRequest, terminates
//! TLS with a certificate from a CA made here, and relays the session to it in clear.

use store::{Store, StoreOptions};

use crate::harness::{TestDb, create_user};
use crate::tls_front::{Handshake, TestPki, TlsFront};

/// `url` with its host and port replaced by `addr` and `params` as its query.
fn via(url: &str, addr: std::net::SocketAddr, params: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    url.set_ip_host(addr.ip()).unwrap();
    url.set_port(Some(addr.port())).unwrap();
    url.set_query(Some(params));
    url.to_string()
}

/// Where the test database's server listens.
fn server(url: &str) -> std::net::SocketAddr {
    let url = url::Url::parse(url).unwrap();
    let host = url
        .host_str()
        .unwrap()
        .trim_matches(|c| c == '[' || c == ']');
    let port = url.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .unwrap()
        .next()
        .unwrap()
}

/// A store on `url`'s server and database with `params` as the URL's query.
async fn connect_direct(url: &str, params: &str) -> store::StoreResult<Store> {
    let mut url = url::Url::parse(url).unwrap();
    url.set_query(Some(params));
    Store::connect(url.as_str(), StoreOptions::default()).await
}

#[tokio::test]
async fn verify_full_with_the_root_certificate_reaches_the_database_over_tls() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let pki = TestPki::new();
    let front = TlsFront::start(&pki, server(&db.url), Handshake::PostgresSslRequest).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("root.crt");
    std::fs::write(&ca, &pki.ca_pem).unwrap();

    let url = via(
        &db.url,
        front.addr,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let over_tls = Store::connect(&url, StoreOptions::default()).await.unwrap();
    let alice = create_user(&over_tls, "alice@example.com").await;
    assert!(front.handshakes() >= 1, "the session went through TLS");
    // The same database: the plain store sees what went over TLS.
    let seen = db
        .store
        .resources()
        .get(scim::ResourceKind::User, &alice.id, Default::default())
        .await
        .unwrap();
    assert_eq!(seen.id, alice.id);

    // Without the root certificate, only the system's roots: the server is not trusted.
    let handshakes = front.handshakes();
    let err = Store::connect(
        &via(&db.url, front.addr, "sslmode=verify-full"),
        StoreOptions::default(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("certificate"), "{err}");
    assert_eq!(front.handshakes(), handshakes, "no TLS session: {err}");
}

/// Whether the server encrypts the sessions named `application` (all of them; `None` if none).
async fn sessions_encrypted(db: &TestDb, application: &str) -> Option<bool> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let (open, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
    )
    .bind(application)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    (open > 0).then_some(open == encrypted)
}

/// Against the local server directly: the URL's `sslmode` is what the store does. `disable` is
/// clear text; `require` is TLS when the server offers it (Debian's packages turn it on with a
/// self-signed certificate) and an error when it does not, never clear text; `verify-full`
/// without the server's CA is refused; a missing `sslrootcert` is named before anything is sent.
#[tokio::test]
async fn the_url_sslmode_decides_and_never_falls_back_to_clear_text() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    // Sessions are told apart by application_name, unique per test database.
    let tag = url::Url::parse(&db.url).unwrap().path()[1..].to_owned();
    let (plain_app, tls_app) = (format!("{tag}_plain"), format!("{tag}_tls"));

    let plain = connect_direct(
        &db.url,
        &format!("sslmode=disable&application_name={plain_app}"),
    )
    .await
    .unwrap();
    create_user(&plain, "plain@example.com").await;
    assert_eq!(sessions_encrypted(&db, &plain_app).await, Some(false));

    match connect_direct(
        &db.url,
        &format!("sslmode=require&application_name={tls_app}"),
    )
    .await
    {
        Ok(encrypted) => {
            create_user(&encrypted, "encrypted@example.com").await;
            assert_eq!(sessions_encrypted(&db, &tls_app).await, Some(true));
        }
        Err(e) => assert!(e.to_string().contains("server does not support TLS"), "{e}"),
    }

    let err = connect_direct(&db.url, "sslmode=verify-full")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certificate") || err.contains("server does not support TLS"),
        "{err}"
    );

    let missing = "/nonexistent/scim-bridge/root.crt";
    let err = connect_direct(
        &db.url,
        &format!("sslmode=verify-full&sslrootcert={missing}"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("sslrootcert {missing}")) && err.contains("No such file"),
        "{err}"
    );
}
