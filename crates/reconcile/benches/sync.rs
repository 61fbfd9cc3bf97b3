//! Sync benchmarks (convergence and offboarding latency), against the in-process Coder fake on loopback:
//!
//! - **Convergence**: `USERS` users and `GROUPS` groups (`MEMBERS` members each) stored, then the
//!   worker (concurrency 8) drains the backlog until Coder equals the desired state (drift plan
//!   empty). Target: within 60 s; peak RSS of the whole process (store, worker AND the fake)
//!   below 150 MB.
//! - **Offboarding latency** while that backlog drains: a previously synced user is deactivated
//!   every 50 ms; the latency is from the deactivation being stored to the fake acknowledging
//!   the suspension (the worker's `offboarded` measurement). Target: p99 < 250 ms.
//!
//! A plain timing harness (not criterion): both measure a whole drain, not a repeatable
//! micro-operation. Bounded: the drain is abandoned after 300 s.
//!
//! `cargo bench -p reconcile --bench sync` (SQLite in a temp dir); set
//! `SCIM_BRIDGE_BENCH_DATABASE_URL=postgres://…/db` (an empty database) for PostgreSQL,
//! `SYNC_BENCH_CODER_URL` + `SYNC_BENCH_CODER_TOKEN` to use a `coder-fake --premium
//! --rate-limit 0` running as its own process (so the RSS is the bridge's alone), and
//! `SYNC_BENCH_USERS` / `SYNC_BENCH_GROUPS` to change the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clock::Clock as _;
use coder::{CoderClient, CoderConfig, SessionToken};
use coder_fake::{CoderFake, FakeOptions};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use reconcile::{MemoryObserver, Policy, Reconciler, Worker, WorkerConfig, drift};
use scim::ResourceKind;
use scim::patch::{PatchOptions, parse_request};
use scim::resource::normalize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::{Store, StoreOptions, SystemClock, WriteContext};

#[path = "../tests/sync/running.rs"]
mod running;
use running::spawn;

const LEAVERS: usize = 200;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn ctx() -> WriteContext {
    WriteContext {
        request_id: "bench".into(),
        token_name: Some("bench".into()),
        source_addr: None,
        operation: String::new(),
    }
}

/// Store a resource from its SCIM JSON, as a POST through the API would: its id.
async fn create(store: &Store, kind: ResourceKind, body: serde_json::Value) -> String {
    let body = normalize(kind, body, scim::Registry::standard()).unwrap();
    store
        .resources()
        .create(&ctx(), kind, body)
        .await
        .unwrap()
        .id
}

async fn create_user(store: &Store, user_name: &str) -> String {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "givenName": "Bench", "familyName": "User" },
        "emails": [{ "value": user_name, "primary": true }],
        "active": true,
    });
    create(store, ResourceKind::User, body).await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn worker(reconciler: Arc<Reconciler>, id: &str) -> Worker {
    let config = WorkerConfig {
        concurrency: 8,
        worker_id: id.to_owned(),
        drift_interval: None,
        poll_interval: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    Worker::from_reconciler(reconciler, config)
}

async fn wait_drained(store: &Store, limit: Duration) -> bool {
    let deadline = clock::SystemClock.instant() + limit;
    while clock::SystemClock.instant() < deadline {
        if store.outbox().stats().await.unwrap().depth == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let users = env_usize("SYNC_BENCH_USERS", 10_000);
    let groups = env_usize("SYNC_BENCH_GROUPS", 500);
    let members = env_usize("SYNC_BENCH_MEMBERS", 50);
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("SCIM_BRIDGE_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Store::connect(&url, StoreOptions::default()).await.unwrap();
    // An external fake (`coder-fake --premium --rate-limit 0 --token T`) keeps its memory out of
    // this process's RSS; otherwise one runs in-process.
    let external = std::env::var("SYNC_BENCH_CODER_URL")
        .ok()
        .zip(std::env::var("SYNC_BENCH_CODER_TOKEN").ok());
    let fake = match external {
        Some(_) => None,
        None => Some(
            CoderFake::start(FakeOptions {
                premium: true,
                rate_limit_per_minute: None,
                ..Default::default()
            })
            .await
            .unwrap(),
        ),
    };
    let (coder_url, token) = match (&external, &fake) {
        (Some((url, token)), _) => (url.clone(), token.clone()),
        (None, Some(fake)) => (fake.base_url().to_owned(), fake.owner_token().to_owned()),
        (None, None) => unreachable!(),
    };
    let client = CoderClient::new(CoderConfig::new(
        coder_url.parse().unwrap(),
        SessionToken::new(token),
    ))
    .unwrap();
    let observer = Arc::new(MemoryObserver::default());
    let reconciler = Arc::new(Reconciler::new(
        (&store).into(),
        client,
        Arc::new(Policy::default()),
        Arc::new(SystemClock),
        observer.clone(),
    ));
    println!(
        "backend: {} | users {users}, groups {groups} x {members} members, leavers {LEAVERS}",
        store.backend_name()
    );

    // Phase A: users to offboard later, synced first.
    let mut leavers = Vec::new();
    for n in 0..LEAVERS {
        leavers.push(create_user(&store, &format!("leaver{n}@corp.example")).await);
    }
    let running = spawn(worker(reconciler.clone(), "bench-a"));
    assert!(
        wait_drained(&store, Duration::from_secs(120)).await,
        "leavers did not sync"
    );
    running.stop().await;

    // Phase B: the backlog, stored with the worker stopped.
    let started = clock::SystemClock.instant();
    let mut ids = Vec::with_capacity(users);
    for n in 0..users {
        ids.push(create_user(&store, &format!("user{n}@corp.example")).await);
    }
    let mut rng = StdRng::seed_from_u64(4);
    for g in 0..groups {
        let size = rng.random_range(members / 2..=members + members / 2);
        let chosen: Vec<_> = ids
            .choose_multiple(&mut rng, size)
            .map(|id| json!({ "value": id }))
            .collect();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": format!("Bench Group {g}"),
            "members": chosen,
        });
        create(&store, ResourceKind::Group, body).await;
    }
    println!(
        "stored the backlog in {:.1} s (outbox depth {})",
        clock::SystemClock.elapsed(started).as_secs_f64(),
        store.outbox().stats().await.unwrap().depth
    );

    // Phase C: drain, deactivating a leaver every 50 ms meanwhile.
    let drain_started = clock::SystemClock.instant();
    let running = spawn(worker(reconciler.clone(), "bench-c"));
    let deactivate = parse_request(&json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": "replace", "path": "active", "value": false }],
    }))
    .unwrap();
    let mut deactivated = 0;
    let drained = loop {
        if deactivated < leavers.len() {
            store
                .resources()
                .patch(
                    &ctx(),
                    ResourceKind::User,
                    &leavers[deactivated],
                    None,
                    &deactivate,
                    &PatchOptions::default(),
                )
                .await
                .unwrap();
            deactivated += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let depth = store.outbox().stats().await.unwrap().depth;
        if depth == 0 && deactivated == leavers.len() {
            break true;
        }
        if clock::SystemClock.elapsed(drain_started) > Duration::from_secs(300) {
            break false;
        }
    };
    let drain_time = clock::SystemClock.elapsed(drain_started);
    running.stop().await;

    let plan = drift::plan(&reconciler, &mut |_| {}).await.unwrap();
    let mut latencies = observer.recorded().offboarding;
    latencies.sort();
    println!(
        "drained: {drained} in {:.1} s (worker concurrency 8)",
        drain_time.as_secs_f64()
    );
    println!(
        "Coder equals the desired state (drift plan over {} users, {} groups): {} ({} differences)",
        plan.users_checked,
        plan.groups_checked,
        plan.is_empty(),
        plan.items.len()
    );
    println!(
        "offboarding latency over {} deactivations: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0).as_secs_f64() * 1000.0,
        percentile(&latencies, 99.0).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let holder = if fake.is_some() {
        "store + worker + in-process fake"
    } else {
        "store + worker; fake in its own process"
    };
    println!("peak RSS ({holder}): {:.0} MB", peak_rss_mb());
    if let Some(fake) = &fake {
        println!(
            "Coder calls answered by the fake: {}",
            fake.state().calls.len()
        );
    }
}
