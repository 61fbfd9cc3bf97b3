//! An initial sync: new users cost one Coder call each (Coder's users are listed once, not
//! looked up one by one), and a stale listing never makes a user twice.

use crate::harness::{Env, GOAL_LIMIT, TestDb, calls, recorded_until, spawn, worker_config};
use crate::sync_tests;
use coder::types::LoginType;
use coder_fake::{FakeState, FakeUser, Fault, FaultKind};
use reconcile::{Worker, WorkerConfig};
use serde_json::json;
use std::time::Duration;

sync_tests!(
    paused;
    an_initial_sync_costs_at_most_1_1_coder_calls_per_new_user,
    a_user_made_in_coder_after_the_listing_is_adopted_not_created_twice,
    a_create_whose_answer_was_lost_is_not_made_twice,
    the_worker_takes_more_at_once_while_coder_keeps_up_and_halves_on_a_429,
);

/// Run `worker` until `done`, then stop it.
async fn run_until(worker: Worker, env: &Env, what: &str, done: impl Fn(&Env) -> bool) {
    let running = spawn(worker);
    env.run_until(what, GOAL_LIMIT, async || done(env)).await;
    running.stop().await;
}

/// An env whose reconciler has synced one user, and so listed Coder's users.
async fn listed(db: TestDb, rules: &str) -> Env {
    let env = Env::start(db, false, rules).await;
    let first = env.create_user("first@corp.com", json!({})).await;
    env.drain().await;
    env.mapping(&first.id).await;
    env
}

/// The live Coder users with `email` (ignoring case, as Coder does).
fn with_email<'a>(state: &'a FakeState, email: &str) -> Vec<&'a FakeUser> {
    state
        .users
        .iter()
        .filter(|u| !u.deleted && u.email.eq_ignore_ascii_case(email))
        .collect()
}

async fn an_initial_sync_costs_at_most_1_1_coder_calls_per_new_user(db: TestDb) {
    const USERS: usize = 200;
    let env = Env::start(db, false, "").await;
    env.create_users("new", USERS).await;
    let before = env.coder().calls.len();
    run_until(
        env.worker(worker_config("initial")),
        &env,
        "every user in Coder",
        |env| env.coder().users.len() == USERS + 1,
    )
    .await;
    let outbox = env.store().outbox().stats().await.unwrap();
    assert_eq!(outbox.depth, 0);

    let state = env.coder();
    let made = &state.calls[before..];
    assert_eq!(calls(&state, "POST", "/api/v2/users", 201), USERS);
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 409),
        0,
        "no create met an existing user"
    );
    // Every call counts: the worker's capability check, the listing, the creates.
    let per_user = made.len() as f64 / USERS as f64;
    assert!(
        per_user <= 1.1,
        "{} Coder calls for {USERS} new users ({per_user:.3} per user): {:?}",
        made.len(),
        made.iter()
            .filter(|c| c.route != "/api/v2/users" || c.method != "POST")
            .map(|c| format!("{} {} {}", c.method, c.route, c.status))
            .collect::<Vec<_>>()
    );
}

async fn a_user_made_in_coder_after_the_listing_is_adopted_not_created_twice(db: TestDb) {
    let env = listed(db, "[users]\nadopt_existing = true").await;
    // The reconciler listed Coder's users for `first`; this user is made after that listing.
    let made_by_hand = env
        .hand_made_user("late-comer", "Late@Corp.com", LoginType::Oidc)
        .await;
    let late = env.create_user("late@corp.com", json!({})).await;
    let before = env.coder().calls.len();
    env.drain().await;

    let state = env.coder();
    let same_email = with_email(&state, "late@corp.com");
    assert_eq!(same_email.len(), 1, "one Coder user for the email");
    let mapping = env.mapping(&late.id).await;
    assert_eq!(mapping.coder_user_id, made_by_hand.id);
    assert!(mapping.adopted);
    let after: Vec<_> = state.calls[before..]
        .iter()
        .filter(|c| c.route == "/api/v2/users")
        .map(|c| (c.method.as_str(), c.status))
        .collect();
    assert_eq!(
        after.first(),
        Some(&("POST", 409)),
        "the listing was trusted, and Coder's 409 caught the user made since: {after:?}"
    );
    assert!(after.contains(&("GET", 200)), "then looked up: {after:?}");
    assert!(!after.contains(&("POST", 201)), "never created: {after:?}");
}

async fn a_create_whose_answer_was_lost_is_not_made_twice(db: TestDb) {
    let env = listed(db, "").await;
    // Coder makes the user but the answer is a 500: the bridge cannot tell it was made.
    env.fake
        .inject(
            Fault::next(1, FaultKind::StatusAfterEffect { status: 500 }).on_paths("/api/v2/users"),
        )
        .unwrap();
    let lost = env.create_user("lost@corp.com", json!({})).await;
    let failed = env.reconciler.reconcile_user(&lost.id).await;
    assert!(failed.is_err(), "the 500 fails the reconcile: {failed:?}");
    assert_eq!(
        calls(&env.coder(), "POST", "/api/v2/users", 500),
        1,
        "the create reached Coder"
    );
    // The row is retried; the listing still says the email is free.
    env.drain().await;

    let state = env.coder();
    let same_email = with_email(&state, "lost@corp.com");
    assert_eq!(same_email.len(), 1, "created once: {same_email:?}");
    assert_eq!(
        env.mapping(&lost.id).await.coder_user_id,
        same_email[0].id,
        "the one made by the lost create"
    );
    // Found by the recorded intent: no second create is sent, and it is not an adoption.
    assert_eq!(calls(&state, "POST", "/api/v2/users", 409), 0);
    assert!(!env.mapping(&lost.id).await.adopted);
}

async fn the_worker_takes_more_at_once_while_coder_keeps_up_and_halves_on_a_429(db: TestDb) {
    const USERS: usize = 300;
    let env = Env::start(db, false, "").await;
    // Calls that take a while, so the backlog outlasts the growth of the limit.
    env.fake.set_latency(Duration::from_millis(20));
    env.create_users("paced", USERS).await;
    let running = spawn(env.worker(WorkerConfig {
        concurrency: 16,
        concurrency_min: 1,
        ..worker_config("adaptive")
    }));
    let limits = || env.observer.recorded().concurrency_limits;
    // No time passes while the backlog drains: it waits on Coder's (real) latency only.
    recorded_until(&env.observer, "the limit to grow to 8", |r| {
        r.concurrency_limits.iter().max().copied().unwrap_or(0) >= 8
    })
    .await;
    let grown = *limits().last().unwrap();
    assert!(
        env.coder().users.len() < USERS,
        "the backlog outlasted the growth"
    );
    env.fake
        .inject(
            Fault::next(
                3,
                FaultKind::Status {
                    status: 429,
                    retry_after: Some("0".into()),
                },
            )
            .on_paths("/api/v2/users"),
        )
        .unwrap();
    // Deferred rows are due again once time has moved.
    env.run_until_coder("every user", |s| s.users.len() == USERS + 1)
        .await;
    env.run_until_outbox_empty().await;
    let status = env.reconciler.status().snapshot();
    running.stop().await;

    let seen = limits();
    let cuts: Vec<(usize, usize)> = seen
        .windows(2)
        .filter(|w| w[1] < w[0])
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(
        !cuts.is_empty() && cuts.iter().all(|(from, to)| *to <= from.div_ceil(2)),
        "a 429 halves the limit, and nothing else lowers it: {seen:?}"
    );
    // The three 429s may land in one round (one cut) or, when enough reconciles finish between
    // them, in two (a second halving from the first's result): the first cut is the growth's.
    assert!(
        cuts.first().is_some_and(|(from, _)| *from >= grown),
        "the cut came after the growth: {seen:?}"
    );
    assert!(seen.iter().all(|l| (1..=16).contains(l)), "{seen:?}");
    assert!(status.concurrency_limit.is_some(), "{status:?}");
    let state = env.coder();
    assert_eq!(calls(&state, "POST", "/api/v2/users", 429), 3);
    assert_eq!(calls(&state, "POST", "/api/v2/users", 201), USERS);
    assert_eq!(env.store().outbox().stats().await.unwrap().dead, 0);
}
