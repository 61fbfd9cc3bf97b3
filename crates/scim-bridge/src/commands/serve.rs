//! `scim-bridge serve`: the SCIM API, health, metrics and the outbox worker in one process.

use std::time::Duration;

use store::Store;

use crate::config::Settings;

/// Open the store and bring its schema up to date (migrations run at start-up).
pub async fn open_and_migrate(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(
        settings.database_url.expose(),
        super::store_options(settings),
    )
    .await
    .map_err(|e| {
        crate::exit::with(
            crate::exit::Exit::NotReady,
            anyhow::anyhow!("opening the database (SCIM_BRIDGE_DATABASE_URL): {e}"),
        )
    })?;
    Ok(store)
}

/// The HTTP service's settings, from the validated settings.
pub fn server_config(settings: &Settings) -> server::ServerConfig {
    server::ServerConfig {
        listen: settings.listen,
        ops_listen: settings.ops_listen,
        base_url: settings.base_url.clone(),
        rate_limit_per_second: settings.rate_limit_per_second,
        rate_limit_burst: settings.rate_limit_burst,
        auth_failure_rate_limit_per_second: settings.auth_failure_rate_limit_per_second,
        auth_failure_rate_limit_burst: settings.auth_failure_rate_limit_burst,
        trusted_proxies: settings.trusted_proxies.clone(),
        max_body_bytes: settings.max_body_bytes,
        bulk_max_operations: settings.bulk_max_operations,
        bulk_max_payload_bytes: settings.bulk_max_payload_bytes,
        jwt: settings.jwt.clone(),
        oauth: (!settings.oauth.signing_keys.is_empty()).then(|| server::OAuthConfig {
            signing_keys: settings
                .oauth
                .signing_keys
                .iter()
                .map(|key| key.expose().as_bytes().to_vec())
                .collect(),
            token_ttl: settings.oauth.token_ttl,
        }),
        ..server::ServerConfig::default()
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    // The mapping rules are checked before anything starts; the service keeps the roles and
    // entitlements an IdP may grant (`[roles.grantable]`, `[entitlements.grantable]`), the worker
    // reads the rules itself.
    let policy = crate::sync::policy(settings)?;
    let (grantable, entitlements) = (policy.roles.grantable, policy.entitlements.grantable);
    let store = open_and_migrate(settings).await?;
    // From here on the chain ends in a record keyed with the current key.
    if let Some(record) = store.audit().record_key().await? {
        tracing::info!(
            seq = record.seq,
            key_id = record.key_id.as_deref(),
            "the audit chain is keyed with a new key from here on"
        );
    }
    if let Some(path) = &settings.idp_tokens_file {
        let report = crate::tokens_file::sync(&store, path).await?;
        for name in &report.revoked {
            tracing::warn!(token = %name, "revoked: the token's name is no longer in SCIM_BRIDGE_IDP_TOKENS_FILE");
        }
        tracing::info!(count = report.lines, "imported IdP tokens");
    }
    let metrics = crate::build::metrics();
    // One clock and one id source for the whole process: the store's, opened above with them.
    let mut deps = server::ServerDeps::new(store.clone());
    deps.metrics = metrics.clone();

    // The worker, when Coder is configured and this replica runs one.
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut worker_task = None;
    if settings.coder.is_some() {
        let reconciler = crate::sync::reconciler(settings, &store, Some(&metrics))?;
        if let Some(coder) = &settings.coder
            && let Some(key_id) = coder.token.key_id()
        {
            tokio::spawn(crate::sync::watch_coder_token_expiry(
                crate::sync::coder_client(coder, Some(&metrics), store.clock())?,
                key_id.to_string(),
                metrics.clone(),
            ));
        }
        deps.readiness = std::sync::Arc::new(crate::sync::WorkerReadiness(reconciler.status()));
        if settings.worker.enabled {
            if store.backend_name() == "sqlite" {
                // One process serves an SQLite store: leases left behind are a crashed run's.
                let released = store.outbox().release_all_leases().await?;
                if released > 0 {
                    tracing::warn!(
                        released,
                        "released outbox leases left by a previous run that did not stop cleanly"
                    );
                }
            }
            let worker = crate::sync::worker(settings, reconciler);
            worker_task = Some(tokio::spawn(async move {
                let shutdown = async {
                    let _ = worker_stopped.await;
                };
                if let Err(e) = worker.run(shutdown).await {
                    tracing::error!(error = %e, "the outbox worker stopped");
                }
            }));
        } else {
            tracing::info!("SCIM_BRIDGE_WORKER is off: this replica serves SCIM only");
        }
    } else {
        tracing::warn!("no Coder URL is set: SCIM changes are stored and queued but not synced");
    }

    let (stop_webhook, webhook_stopped) = tokio::sync::oneshot::channel::<()>();
    let webhook_task = match &settings.audit_webhook {
        Some(webhook) => {
            let webhook = crate::audit_webhook::Webhook::new(
                webhook.clone(),
                store.clone(),
                store.clock(),
                store.ids(),
                std::sync::Arc::new(metrics.clone()),
                webhook_holder(&store),
            )?;
            Some(tokio::spawn(webhook.run(async move {
                let _ = webhook_stopped.await;
            })))
        }
        None => None,
    };

    let config = server::ServerConfig {
        roles: std::sync::Arc::new(grantable),
        entitlements: std::sync::Arc::new(entitlements),
        ..server_config(settings)
    };
    let bound = server::bind(config, deps).await.map_err(|e| match &e {
        server::BindError::Listen {
            listener: server::Listener::Scim,
            ..
        } => anyhow::anyhow!("SCIM_BRIDGE_LISTEN: {e}"),
        server::BindError::Listen {
            listener: server::Listener::Operations,
            ..
        } => anyhow::anyhow!("SCIM_BRIDGE_OPS_LISTEN: {e}"),
        server::BindError::Settings(_) => anyhow::anyhow!("{e}"),
    })?;
    let addr = bound.local_addr();
    match bound.ops_addr() {
        Some(ops_addr) => tracing::info!(
            addr = %addr,
            ops_addr = %ops_addr,
            backend = store.backend_name(),
            "listening; SCIM base URL http://{addr}/scim/v2; /healthz, /readyz and /metrics only on http://{ops_addr}"
        ),
        None => tracing::info!(
            addr = %addr,
            backend = store.backend_name(),
            "listening; SCIM base URL http://{addr}/scim/v2"
        ),
    }
    let handle = bound.handle();
    let server = tokio::spawn(bound.run());
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and releasing outbox leases");
    let _ = stop_worker.send(());
    let _ = stop_webhook.send(());
    handle.stop(true).await;
    let _ = tokio::time::timeout(Duration::from_secs(35), server).await;
    if let Some(task) = worker_task {
        let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
    }
    if let Some(task) = webhook_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// This replica's name on the audit webhook's lease. One process serves an SQLite store, so a
/// restarted one takes its predecessor's lease over at once; PostgreSQL replicas each have
/// their own (the pod's name, when there is one, for `status`).
fn webhook_holder(store: &Store) -> String {
    if store.backend_name() == "sqlite" {
        return "local".to_string();
    }
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "replica".to_string());
    format!("{host}-{}", store.ids().uuid_v4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Environment, SettingsArgs};

    struct NoEnv;
    impl Environment for NoEnv {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn jwt_settings_reach_the_server_and_the_jwks_file_stays_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, "{\"keys\": []}").unwrap();
        let args = SettingsArgs {
            jwt_issuer: Some("https://login.microsoftonline.com/t/v2.0".into()),
            jwt_audience: Some("api://scim-bridge".into()),
            jwt_jwks_file: Some(jwks.clone()),
            jwt_allowed_clients: Some("entra-app".into()),
            jwt_default_scopes: Some("scim:read".into()),
            ..Default::default()
        };
        let settings = Settings::load(&args, &NoEnv).unwrap();
        let jwt = server_config(&settings).jwt.unwrap();
        assert_eq!(jwt.allowed_clients, ["entra-app"]);
        assert_eq!(jwt.default_scopes, store::Scopes::READ);
        // The server re-reads the file when it changes, so it gets the path, not the content.
        assert!(matches!(jwt.key, server::JwtKey::JwksFile(ref p) if *p == jwks));
    }
}
