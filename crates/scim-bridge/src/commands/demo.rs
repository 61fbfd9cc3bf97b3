//! `scim-bridge demo`: the whole product on one machine in one command. Embedded SQLite and the
//! Coder fake run in this process on loopback; an Okta-style push (users, a group mapped to
//! `template-admin`, a rename and a deactivation) is replayed over HTTP; then the bridge prints
//! what Coder now holds and the audit trail, and keeps serving.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use store::{Store, StoreOptions};

use crate::config::Settings;
use crate::output::Table;

/// The push the demo replays (the file's request shapes follow Okta's SCIM 2.0 reference).
const PUSH: &str = include_str!("../../../../fixtures/demo/okta-push.json");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Exit after printing the result instead of serving (for scripts and tests).
    #[arg(long)]
    pub once: bool,
}

pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<bool> {
    let push: Value = serde_json::from_str(PUSH)?;
    let dir = std::env::temp_dir().join(format!("scim-bridge-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let database_url = format!("sqlite://{}", dir.join("demo.db").display());

    // Coder, faked faithfully (Premium, so groups are mirrored), on loopback.
    let fake = coder_fake::CoderFake::start(coder_fake::FakeOptions {
        premium: true,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("starting the Coder fake: {e}"))?;

    let store = Store::connect(&database_url, StoreOptions::default()).await?;
    let token = store
        .tokens()
        .create("demo", None, store::Scopes::ALL)
        .await?;
    let rules: toml::Table = push["rules"].as_str().unwrap_or_default().parse()?;
    let policy =
        reconcile::Policy::from_toml(&rules).map_err(|e| anyhow::anyhow!("demo rules: {e}"))?;

    let metrics = crate::build::metrics();
    let coder_url: url::Url = fake.base_url().parse()?;
    let client = coder::CoderClient::new(coder::CoderConfig::new(
        coder_url,
        coder::SessionToken::new(fake.owner_token()),
    ))?
    .with_observer(Arc::new(crate::sync::MetricsObserver(metrics.clone())))
    .with_clock(store.clock());
    // The store's clock and ids for everything the demo builds.
    let reconciler = Arc::new(reconcile::Reconciler::new(
        (&store).into(),
        client,
        Arc::new(policy),
        store.clock(),
        Arc::new(crate::sync::MetricsObserver(metrics.clone())),
    ));
    // One resource at a time, started after the push: the audit trail reads the same on every
    // run, and shows that the IdP had all its answers before Coder was touched.
    let worker = reconcile::Worker::from_reconciler(
        reconciler.clone(),
        reconcile::WorkerConfig {
            concurrency: 1,
            concurrency_min: 1,
            ..reconcile::WorkerConfig::default()
        },
    );
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();

    let mut deps = server::ServerDeps::new(store.clone());
    deps.metrics = metrics;
    deps.readiness = Arc::new(crate::sync::WorkerReadiness(reconciler.status()));
    let mut config = super::serve::server_config(settings);
    config.rate_limit_per_second = 0;
    let bound = match server::bind(config.clone(), deps.clone()).await {
        Ok(b) => b,
        Err(e) => {
            // The default port may be taken on a developer machine: any free port will do.
            eprintln!("{} is taken ({e}); using a free port", config.listen);
            config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
            server::bind(config, deps).await?
        }
    };
    let addr = bound.local_addr();
    let handle = bound.handle();
    let server_task = tokio::spawn(bound.run());
    let base = format!("http://{addr}/scim/v2");

    println!("scim-bridge demo");
    println!("  SCIM base URL:  {base}");
    println!("  Coder (fake):   {}", fake.base_url());
    println!("  database:       {database_url}");
    println!();
    println!(
        "Replaying an Okta-style push ({} requests):",
        push["steps"].as_array().map_or(0, Vec::len)
    );
    let (ok, names) = replay(&push, &base, &token).await?;
    println!();
    println!(
        "The IdP has all its answers: the changes are stored, each with an outbox row. Now the worker syncs Coder."
    );
    let worker_task = tokio::spawn(worker.run(async {
        let _ = worker_stopped.await;
    }));

    // Wait for the worker to converge Coder (bounded).
    let converged = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if store.outbox().stats().await?.depth == 0 {
                return Ok::<(), store::StoreError>(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    if let Ok(failed) = converged {
        failed?;
    }
    print_coder(&fake.state());
    print_audit(&store, &names).await?;
    print_next_steps(&base);

    if !args.once {
        println!();
        println!("The bridge keeps serving. Token: {token}");
        let alice = names
            .iter()
            .find(|(_, name)| name.as_str() == "alice@example.com")
            .map_or("<id>", |(id, _)| id.as_str());
        println!("Try:");
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' '{base}/Users?filter=userName%20eq%20%22alice%40example.com%22'"
        );
        println!(
            "  curl -s -H 'Authorization: Bearer {token}' '{base}/Groups?excludedAttributes=members'"
        );
        println!(
            "  curl -s -X PATCH -H 'Authorization: Bearer {token}' -H 'Content-Type: application/scim+json' \\\n      '{base}/Users/{alice}' -d '{{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\"Operations\":[{{\"op\":\"replace\",\"value\":{{\"active\":false}}}}]}}'"
        );
        println!(
            "  curl -s {}/__fake/state     # what Coder holds",
            fake.base_url()
        );
        println!("  curl -s http://{addr}/metrics");
        println!("Press Ctrl-C to stop.");
        super::serve::shutdown_signal().await;
    }
    let _ = stop_worker.send(());
    handle.stop(true).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), server_task).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), worker_task).await;
    fake.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ok)
}

/// SCIM ids and the names people know them by (`userName`, a group's `displayName`).
type Names = HashMap<String, String>;

/// Send each step, substituting `{id:NAME}` with ids captured from earlier answers; returns
/// whether every step got the answer it expects, and the name of every resource answered.
async fn replay(push: &Value, base: &str, token: &str) -> anyhow::Result<(bool, Names)> {
    let mut names = Names::new();
    let http = reqwest::Client::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    let substitute = |text: &str, ids: &HashMap<String, String>| {
        ids.iter().fold(text.to_string(), |acc, (name, id)| {
            acc.replace(&format!("{{id:{name}}}"), id)
        })
    };
    let mut all_ok = true;
    for step in push["steps"].as_array().into_iter().flatten() {
        let method =
            reqwest::Method::from_bytes(step["method"].as_str().unwrap_or("GET").as_bytes())?;
        let path = substitute(step["path"].as_str().unwrap_or("/"), &ids);
        let mut req = http
            .request(method.clone(), format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(body) = step.get("body") {
            req = req
                .header("content-type", "application/scim+json")
                .body(substitute(&body.to_string(), &ids));
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let expected = step["expect"].as_u64().unwrap_or(200) as u16;
        // PATCH may answer 204 instead of 200 (RFC 7644 §3.5.2).
        let ok = status == expected || (expected == 200 && status == 204);
        all_ok &= ok;
        let shown = names.iter().fold(path.clone(), |acc, (id, name)| {
            acc.replace(id, &format!("{{{name}}}"))
        });
        println!(
            "  {} {:<6} {:<60} {}",
            if ok { "ok " } else { "ERR" },
            method.as_str(),
            shorten(&shown, 60),
            step["note"].as_str().unwrap_or("")
        );
        if !ok {
            println!("      expected {expected}, got {status}: {text}");
        }
        let body = serde_json::from_str::<Value>(&text).unwrap_or_default();
        if let Some(id) = body["id"].as_str() {
            if let Some(name) = body["userName"].as_str().or(body["displayName"].as_str()) {
                names.insert(id.to_string(), name.to_string());
            }
            if let Some(capture) = step["capture"].as_str() {
                ids.insert(capture.to_string(), id.to_string());
            }
        }
    }
    Ok((all_ok, names))
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn print_coder(state: &coder_fake::FakeState) {
    println!();
    println!("What Coder now holds:");
    let mut users: Vec<&coder_fake::FakeUser> = state.users.iter().filter(|u| !u.deleted).collect();
    users.sort_by(|a, b| a.username.cmp(&b.username));
    let mut table = Table::new(&["USERNAME", "EMAIL", "NAME", "LOGIN", "STATUS", "ROLES"]);
    for u in users {
        let roles: Vec<&str> = u.roles.iter().map(String::as_str).collect();
        table.row(vec![
            u.username.clone(),
            u.email.clone(),
            u.name.clone(),
            format!("{:?}", u.login_type).to_lowercase(),
            format!("{:?}", u.status).to_lowercase(),
            if roles.is_empty() {
                "member".to_string()
            } else {
                roles.join(",")
            },
        ]);
    }
    indented(&table.to_string());
    let mut groups: Vec<&coder_fake::FakeGroup> = state.groups.iter().collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    for g in groups {
        let mut members: Vec<String> = g
            .members
            .iter()
            .filter_map(|id| state.user_by_id(*id))
            .map(|u| u.username.clone())
            .collect();
        members.sort();
        println!("  group {} members: {}", g.name, members.join(", "));
    }
    println!();
    println!(
        "  dormant: Coder's status for an account nobody has signed in with yet; it becomes active at the first login."
    );
    println!(
        "  admin:   the fake Coder's own owner, whose token the bridge uses; the bridge leaves accounts it did not create alone."
    );
}

async fn print_audit(store: &Store, names: &Names) -> anyhow::Result<()> {
    println!();
    println!("Audit trail (hash-chained; `scim-bridge audit verify` checks it):");
    let mut table = Table::new(&["#", "TIME", "ACTOR", "OPERATION", "RESOURCE", "RESULT"]);
    for r in store.audit().export(None).await? {
        let resource = match (&r.resource_type, &r.resource_id) {
            (Some(kind), Some(id)) => {
                format!(
                    "{kind} {}",
                    names.get(id).map_or(id.as_str(), String::as_str)
                )
            }
            (None, Some(id)) => id.clone(),
            _ => "-".into(),
        };
        table.row(vec![
            r.seq.to_string(),
            r.time.format("%H:%M:%S%.3f").to_string(),
            r.actor.clone().unwrap_or_else(|| "-".into()),
            r.operation.clone(),
            resource,
            r.result.clone(),
        ]);
    }
    indented(&table.to_string());
    let report = store.audit().verify().await?;
    println!(
        "  chain: {} record(s), {}",
        report.checked,
        if report.first_broken.is_none() {
            "intact"
        } else {
            "BROKEN"
        }
    );
    Ok(())
}

/// Print a table two spaces in, under its heading.
fn indented(text: &str) {
    for line in text.lines() {
        println!("  {line}");
    }
}

fn print_next_steps(base: &str) {
    println!();
    println!("Next steps:");
    println!("  - Point a real IdP at a bridge it can reach over HTTPS: make its token with");
    println!("    `scim-bridge token create --name okta` (or `--name entra`), then");
    println!(
        "    Okta: SCIM connector base URL https://YOUR-HOST/scim/v2, HTTP Header auth (docs/okta.md);"
    );
    println!(
        "    Entra: Tenant URL https://YOUR-HOST/scim/v2?aadOptscim062020, Secret Token (docs/entra.md)."
    );
    println!("    (This demo answers on {base}, which only this machine reaches.)");
    println!("  - Point it at a real Coder: SCIM_BRIDGE_CODER_URL=https://coder.example.com and");
    println!(
        "    SCIM_BRIDGE_CODER_TOKEN_FILE=<a file holding an owner's token> (docs/coder.md), then"
    );
    println!("    `scim-bridge migrate`, `scim-bridge status` to check, and `scim-bridge serve`.");
}
