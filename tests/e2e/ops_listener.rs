//! `SCIM_BRIDGE_OPS_LISTEN` through the real binary: `/healthz`, `/readyz` and `/metrics` on a
//! listener of their own and only there; nothing of the SCIM API or `/oauth/token` there, even
//! with valid credentials; both listeners stop on SIGTERM; a port that cannot be bound stops the
//! start with the setting's name.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::oauth::client_credentials;
use crate::support::{self, run_bounded};

const OPS_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Status, content type and JSON body (Null when not JSON) of one request.
async fn answer(request: reqwest::RequestBuilder) -> (u16, String, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    (status, content_type, body)
}

/// A route pattern of `server::routes()` with every `{param}` replaced by `id`.
fn concrete(pattern: &str, id: &str) -> String {
    pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                id
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ops_listener_serves_probes_and_metrics_and_nothing_else() {
    for db in support::available() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = support::write_file(
            dir.path(),
            "oauth-signing-key",
            "9e3c1a7b5d2f4e6a8c0b1d3f5a7c9e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c\n",
        );
        let mut bridge = crate::start(
            &db,
            vec![
                ("SCIM_BRIDGE_OPS_LISTEN".into(), "127.0.0.1:0".into()),
                (
                    "SCIM_BRIDGE_OAUTH_SIGNING_KEY_FILE".into(),
                    key_file.display().to_string(),
                ),
            ],
        )
        .await;
        let ops = bridge
            .ops_base
            .clone()
            .expect("the listening line names the operations address");
        assert_ne!(ops, bridge.base, "{db:?}");
        let http = bridge.http.clone();

        // The SCIM listener serves the IdP: SCIM with the bridge token, an access token from
        // /oauth/token, and SCIM with that access token.
        let out = bridge.cli(&["client", "create", "--name", "entra"]);
        assert!(out.status.success(), "{db:?}");
        let (client_id, client_secret) = client_credentials(&String::from_utf8_lossy(&out.stdout));
        let token_request = |base: &str| {
            http.post(format!("{base}/oauth/token"))
                .basic_auth(&client_id, Some(&client_secret))
                .form(&[("grant_type", "client_credentials")])
        };
        let (status, _, issued) = answer(token_request(&bridge.base)).await;
        assert_eq!(status, 200, "{db:?}: {issued}");
        let access_token = issued["access_token"].as_str().unwrap().to_string();
        let (status, created) = bridge
            .call("POST", "/Users", Some(&crate::user("ops@example.com")))
            .await;
        assert_eq!(status, 201, "{db:?}: {created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (status, _, _) =
            answer(http.get(bridge.scim("/Users")).bearer_auth(&access_token)).await;
        assert_eq!(status, 200, "{db:?}");

        // The operations endpoints answer on their own listener, from the same process: the
        // SCIM requests above are counted in its /metrics.
        let (status, _, health) = answer(http.get(format!("{ops}/healthz"))).await;
        assert_eq!((status, &health["status"]), (200, &"ok".into()), "{db:?}");
        let (status, _, ready) = answer(http.get(format!("{ops}/readyz"))).await;
        assert_eq!(status, 200, "{db:?}: {ready}");
        let metrics = crate::support::get_text(&http, &format!("{ops}/metrics")).await;
        assert!(
            metrics.contains(
                r#"scim_bridge_http_requests_total{endpoint="/scim/v2/Users",method="POST",status="201"} 1"#
            ),
            "{db:?}: {metrics}"
        );

        // On the SCIM listener they are unknown paths: the same 404 as any other, with or
        // without a credential, however the path is spelt.
        let unknown = answer(http.get(format!("{}/nowhere", bridge.base))).await;
        assert_eq!(unknown.0, 404, "{db:?}");
        for path in OPS_PATHS {
            let spellings = [
                path.to_string(),
                format!("{path}/"),
                format!("/{path}"),
                format!("/%{:02x}{}", path.as_bytes()[1], &path[2..]),
            ];
            for spelt in spellings {
                for token in [None, Some(&bridge.token), Some(&access_token)] {
                    let mut request = http.get(format!("{}{spelt}", bridge.base));
                    if let Some(token) = token {
                        request = request.bearer_auth(token);
                    }
                    let (status, content_type, body) = answer(request).await;
                    let routed = body["detail"]
                        .as_str()
                        .and_then(|d| d.rsplit_once(' '))
                        .map(|(_, p)| p.to_string())
                        .unwrap_or_default();
                    let like_unknown = serde_json::to_string(&unknown.2)
                        .unwrap()
                        .replace("/nowhere", &routed);
                    assert_eq!(
                        (status, &content_type, serde_json::to_string(&body).unwrap()),
                        (404, &unknown.1, like_unknown),
                        "{db:?}: {spelt} on the SCIM listener"
                    );
                }
            }
        }

        // On the operations listener, every route of the SCIM API and /oauth/token is unknown,
        // whatever the method and however good the credential; nothing is read or written.
        let user = crate::user("written-through-ops@example.com").to_string();
        let mut tried = 0;
        for route in server::routes() {
            if OPS_PATHS.contains(&route.pattern.as_str()) {
                continue;
            }
            let url = format!("{ops}{}", concrete(&route.pattern, &id));
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                for token in [&bridge.token, &access_token] {
                    let request = http
                        .request(method.clone(), &url)
                        .bearer_auth(token)
                        .header("content-type", "application/scim+json")
                        .body(user.clone());
                    let (status, _, body) = answer(request).await;
                    assert_eq!(status, 404, "{db:?}: {method} {url}: {body}");
                    assert!(body.get("Resources").is_none() && body.get("id").is_none());
                    tried += 1;
                }
            }
        }
        assert!(tried >= 100, "{db:?}: only {tried} requests were tried");
        let (status, _, body) = answer(token_request(&ops)).await;
        assert_eq!(
            status, 404,
            "{db:?}: /oauth/token on the ops listener: {body}"
        );
        let (status, list) = bridge.call("GET", "/Users", None).await;
        assert_eq!(status, 200);
        assert_eq!(
            list["totalResults"], 1,
            "{db:?}: the ops listener created or deleted a user: {list}"
        );
        let (status, _) = bridge.call("GET", &format!("/Users/{id}"), None).await;
        assert_eq!(status, 200, "{db:?}");

        // SIGTERM stops both listeners.
        assert!(bridge.terminate().success(), "{db:?}");
        for base in [&bridge.base, &ops] {
            let refused = http
                .get(format!("{base}/healthz"))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            assert!(
                refused.is_err(),
                "{db:?}: {base} still answers after SIGTERM"
            );
        }
    }
}

/// A taken operations port stops the start, naming the setting and the address; the SCIM
/// listener is not left serving without its probes.
#[test]
fn an_ops_port_that_cannot_be_bound_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let envs = vec![
        (
            "SCIM_BRIDGE_DATABASE_URL".to_string(),
            format!("sqlite://{}", dir.path().join("bridge.db").display()),
        ),
        ("SCIM_BRIDGE_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ("SCIM_BRIDGE_OPS_LISTEN".to_string(), addr.to_string()),
    ];
    assert!(support::cli(&envs, &["migrate"]).status.success());
    let (code, text) = run_bounded(&envs, &["serve"], Duration::from_secs(30))
        .expect("serve with a taken ops port must exit");
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!("SCIM_BRIDGE_OPS_LISTEN: cannot serve on {addr}")),
        "{text}"
    );
}
