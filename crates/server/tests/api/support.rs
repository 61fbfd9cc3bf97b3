//! Boots the real service on 127.0.0.1:0 over a fresh SQLite file or a fresh PostgreSQL
//! database, and talks to it with reqwest over real HTTP.

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use server::{ReadinessProbe, ServerConfig, ServerDeps};
use std::net::SocketAddr;
use std::sync::Arc;
use store::{Store, StoreOptions};
use test_support::TestDatabase;

pub use test_support::Backend;

/// Generate `name::sqlite` and `name::postgres` tests from `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::backend_tests!(per_test; $($name),*);
    };
}

/// A running server with one bearer token.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`
    pub root: String,
    /// `http://127.0.0.1:PORT/scim/v2`
    pub base: String,
    pub addr: SocketAddr,
    pub token: String,
    pub store: Store,
    /// The server's metrics registry, read in place.
    pub metrics: server::Metrics,
    /// The store's URL, for another replica or store handle on the same database.
    pub database_url: String,
    pub client: reqwest::Client,
    pub handle: server::ServiceHandle,
    /// Dropped after the server is stopped (fields drop after `Drop::drop`).
    _database: TestDatabase,
}

/// A second replica: its own store handle and server on the database of a [`TestServer`].
pub struct Replica {
    /// `http://127.0.0.1:PORT/scim/v2`
    pub base: String,
    pub handle: server::ServiceHandle,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when empty or not JSON).
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Assert the status, showing the body when it is another.
    pub fn assert_status(&self, status: u16) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
    }

    /// Assert a 429 SCIM error whose `Retry-After` is whole seconds within `seconds`.
    pub fn assert_retry_after(&self, seconds: std::ops::RangeInclusive<u64>) {
        self.assert_error(429, None);
        let retry_after: u64 = self
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("whole seconds");
        assert!(seconds.contains(&retry_after), "Retry-After {retry_after}");
    }

    /// Assert a SCIM error response (RFC 7644 §3.12) with this status and `scimType`.
    pub fn assert_error(&self, status: u16, scim_type: Option<&str>) {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type"),
            Some(server::SCIM_CONTENT_TYPE),
            "errors are application/scim+json too"
        );
        assert_eq!(
            self.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error",
            "{}",
            self.text
        );
        assert_eq!(
            self.body["status"],
            status.to_string(),
            "status is a string: {}",
            self.text
        );
        assert_eq!(self.body["scimType"].as_str(), scim_type, "{}", self.text);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "a detail is given: {}",
            self.text
        );
    }
}

impl TestServer {
    /// A server with the default test settings; `None` when PostgreSQL was asked for and is not
    /// reachable (and not required).
    pub async fn start(backend: Backend) -> Option<TestServer> {
        TestServer::start_with(backend, |_| {}).await
    }

    /// A server with adjusted settings.
    pub async fn start_with(
        backend: Backend,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Option<TestServer> {
        TestServer::start_serving(backend, configure, None).await
    }

    /// A server with the default test settings and another readiness probe.
    pub async fn start_with_readiness(
        backend: Backend,
        readiness: Arc<dyn ReadinessProbe>,
    ) -> Option<TestServer> {
        TestServer::start_serving(backend, |_| {}, Some(readiness)).await
    }

    async fn start_serving(
        backend: Backend,
        configure: impl FnOnce(&mut ServerConfig),
        readiness: Option<Arc<dyn ReadinessProbe>>,
    ) -> Option<TestServer> {
        let database = TestDatabase::new(backend).await?;
        let url = database.url().to_owned();
        let store = Store::connect(&url, StoreOptions::default())
            .await
            .expect("store");
        let token = store
            .tokens()
            .create("okta", None, store::Scopes::ALL)
            .await
            .expect("token");
        let mut config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limit_per_second: 0,
            workers: 2,
            shutdown_timeout: std::time::Duration::from_secs(5),
            ..ServerConfig::default()
        };
        configure(&mut config);
        let mut deps = ServerDeps::new(store.clone());
        if let Some(probe) = readiness {
            deps.readiness = probe;
        }
        let metrics = deps.metrics.clone();
        let bound = server::bind(config, deps).await.expect("bind");
        let addr = bound.local_addr();
        let handle = bound.handle();
        tokio::spawn(bound.run());
        let root = format!("http://{addr}");
        Some(TestServer {
            base: format!("{root}/scim/v2"),
            root,
            addr,
            token,
            store,
            metrics,
            database_url: url,
            client: reqwest::Client::new(),
            handle,
            _database: database,
        })
    }

    /// Another replica on this server's database, with the default settings.
    pub async fn replica(&self) -> Replica {
        let store = Store::connect(&self.database_url, StoreOptions::default())
            .await
            .expect("store");
        let config = ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            rate_limit_per_second: 0,
            workers: 1,
            shutdown_timeout: std::time::Duration::from_secs(5),
            ..ServerConfig::default()
        };
        let bound = server::bind(config, ServerDeps::new(store))
            .await
            .expect("bind");
        let base = format!("http://{}/scim/v2", bound.local_addr());
        let handle = bound.handle();
        tokio::spawn(bound.run());
        Replica { base, handle }
    }

    /// The URL of `path`: relative to the SCIM base when it starts with `/`, else as given.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// A request carrying the bearer token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_with_headers(method, path, body, &[]).await
    }

    async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut builder = self.request(method, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(body) = body {
            builder = builder
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        self.send(builder).await
    }

    /// A GET without the bearer token: what anyone may read, or the 401 for what they may not.
    pub async fn get_anonymous(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }
    /// GET `path` with the SCIM `filter` added to its query.
    pub async fn get_filtered(&self, path: &str, filter: &str) -> Reply {
        let join = if path.contains('?') { '&' } else { '?' };
        let filter = crate::filter_param(filter);
        self.get(&format!("{path}{join}filter={filter}")).await
    }
    /// A GET carrying `token` instead of the server's own.
    pub async fn get_with_token(&self, token: &str, path: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(token))
            .await
    }
    /// RFC 7644 §3.14: a GET that is 304 while the resource's version is `etag`.
    pub async fn get_if_none_match(&self, path: &str, etag: &str) -> Reply {
        let headers = [("if-none-match", etag)];
        self.call_with_headers(Method::GET, path, None, &headers)
            .await
    }
    /// RFC 7644 §3.14: a PUT that is 412 unless the resource's version is `etag`.
    pub async fn put_if_match(&self, path: &str, etag: &str, body: &Value) -> Reply {
        let headers = [("if-match", etag)];
        self.call_with_headers(Method::PUT, path, Some(body), &headers)
            .await
    }
    /// RFC 7644 §3.14: a DELETE that is 412 unless the resource's version is `etag`.
    pub async fn delete_if_match(&self, path: &str, etag: &str) -> Reply {
        let headers = [("if-match", etag)];
        self.call_with_headers(Method::DELETE, path, None, &headers)
            .await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Assert that `path` is gone: GET and DELETE are 404.
    pub async fn assert_gone(&self, path: &str) {
        self.get(path).await.assert_error(404, None);
        self.delete(path).await.assert_error(404, None);
    }

    /// A new bridge token named `name`, for `scopes`.
    pub async fn create_token(&self, name: &str, scopes: store::Scopes) -> String {
        self.store
            .tokens()
            .create(name, None, scopes)
            .await
            .expect("token")
    }

    /// Create a User and return its id.
    pub async fn create_user(&self, user_name: &str) -> String {
        let reply = self.post("/Users", &crate::user_body(user_name)).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_str().expect("id").to_string()
    }

    /// Create a Group and return its id.
    pub async fn create_group(&self, display_name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|m| serde_json::json!({"value": m}))
            .collect();
        let body = serde_json::json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": display_name,
            "members": members,
        });
        let reply = self.post("/Groups", &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        reply.body["id"].as_str().expect("id").to_string()
    }

    /// Replace every volatile value (ids, timestamps, versions, the base URL) so the JSON an
    /// IdP sees can be snapshotted.
    pub fn redact(&self, value: &Value, ids: &[(&str, &str)]) -> Value {
        let mut text = value.to_string().replace(&self.base, "{base}");
        for (id, label) in ids {
            text = text.replace(id, &format!("[{label}]"));
        }
        let mut value: Value = serde_json::from_str(&text).expect("json");
        redact_meta(&mut value);
        value
    }
}

fn redact_meta(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match key.as_str() {
                    "created" | "lastModified" if inner.is_string() => {
                        *inner = Value::String("[time]".into())
                    }
                    "version" if inner.is_string() => *inner = Value::String("[version]".into()),
                    _ => redact_meta(inner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_meta),
        _ => {}
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Drop runs inside the test's runtime: stop the server from a thread of its own.
        let stopped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(handle.stop(false));
        });
        let _ = stopped.join();
    }
}
