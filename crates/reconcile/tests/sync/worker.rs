//! The worker: wake-ups, priority, outages, 429 storms, dead letters, leases, an auth pause,
//! shutdown, and replicas sharing the queue. On paused time (see the harness): each check that
//! something has not happened yet is made at the last instant before it may, and followed by
//! the first instant after.

use crate::harness::{
    Env, GOAL_LIMIT, REAL_TIME_LIMIT, Running, TestDb, calls, recorded_until, spawn, status_fault,
    worker_config,
};
use crate::sync_tests;
use chrono::Duration as ChronoDuration;
use coder_fake::{Fault, FaultKind, MAX_FAULT_COUNT, Outage, UserStatus};
use reconcile::{MemoryObserver, PauseCause, Worker, WorkerConfig};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use store::{OutboxFilter, StoreOptions};

sync_tests!(
    paused;
    the_worker_applies_new_rows_at_once_and_offboarding_jumps_the_queue,
    coder_down_for_minutes_loses_nothing_and_duplicates_nothing,
    after_an_outage_offboarding_lands_first_and_no_attempt_is_spent,
    a_request_coder_never_answers_is_dead_lettered_not_paused_on_forever,
    a_429_storm_is_honoured_without_dead_letters,
    rows_are_dead_lettered_after_max_attempts,
    a_group_whose_member_fails_first_still_converges,
    a_crashed_workers_lease_is_taken_over,
    an_auth_failure_pauses_without_spending_attempts,
    a_redirect_pauses_the_worker_and_the_other_host_receives_nothing,
    shutdown_releases_leases,
    two_workers_share_the_queue_without_double_applying,
    two_replicas_write_each_group_from_one_reconcile_at_a_time,
);

const MILLI: Duration = Duration::from_millis(1);

/// Move time on to a moment before `by` has passed, and check that no call reached Coder
/// meanwhile (`what` says why not): the count of calls Coder had answered, for the check a
/// moment later.
async fn no_call_until_a_moment_before(env: &Env, by: Duration, what: &str) -> usize {
    let calls_before = env.coder().calls.len();
    env.advance(by - MILLI).await;
    assert_eq!(env.coder().calls.len(), calls_before, "{what}");
    calls_before
}

/// The paused worker's next probe: move time to just before it (nothing reaches Coder: still
/// paused), then to it (the probe finds Coder answering again).
async fn resume_at_the_next_probe(env: &Env, paused: PauseCause) {
    let wait = env.settle().await;
    let probe = wait
        .next_probe
        .unwrap_or_else(|| panic!("not paused: {wait:?}"));
    no_call_until_a_moment_before(env, probe - env.instant(), "nothing reached Coder").await;
    let status = env.reconciler.status().snapshot();
    assert_eq!(
        status.pause_cause,
        Some(paused),
        "a moment before the probe"
    );
    env.advance(MILLI).await;
    assert!(
        !env.reconciler.status().snapshot().paused,
        "the probe resumed the worker"
    );
}

async fn the_worker_applies_new_rows_at_once_and_offboarding_jumps_the_queue(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let leaver = env.create_user("leaver@corp.com", json!({})).await;
    env.drain().await;
    env.create_users("bulk", 30).await;
    env.set_active(&leaver.id, false).await;
    let before = env.coder().calls.len();
    let running = spawn(env.worker(WorkerConfig {
        concurrency: 1,
        ..worker_config("w1")
    }));
    // Neither here nor below does time move: only the commits' wake-ups drive the worker.
    let start = env.instant();
    recorded_until(&env.observer, "the backlog", |_| {
        env.coder().users.len() == 32
    })
    .await;
    let state = env.coder();
    let first_write = state.calls[before..]
        .iter()
        .find(|c| c.method != "GET")
        .unwrap();
    assert_eq!(
        first_write.route, "/api/v2/users/{user}/status/suspend",
        "offboarding first"
    );
    assert_eq!(state.user("leaver").unwrap().status, UserStatus::Suspended);

    // A new row wakes the worker at once: with time standing still, no poll could find it.
    recorded_until(&env.observer, "the worker idle", |r| {
        r.last_wait.is_some_and(|w| w.wakes_on_commit)
    })
    .await;
    let late = env.create_user("late@corp.com", json!({})).await;
    recorded_until(&env.observer, "the late user with no time passing", |_| {
        env.coder().user("late").is_some()
    })
    .await;
    assert_eq!(env.instant(), start);
    running.stop().await;
    assert!(env.outbox_rows(OutboxFilter::All).await.is_empty());
    assert_eq!(
        env.observer.recorded().offboarding.len(),
        1,
        "offboarding latency recorded"
    );
    assert!(env.is_mapped(&late.id).await);
}

async fn coder_down_for_minutes_loses_nothing_and_duplicates_nothing(db: TestDb) {
    let env = Env::start(db, false, "").await;
    // Coder is down from the start: every request dropped or answered 503.
    env.fake.inject(Fault::next(1000, FaultKind::Drop)).unwrap();
    env.fake.inject(status_fault(1000, 503)).unwrap();
    let running = spawn(env.worker(worker_config("w1")));
    // SCIM writes still commit while Coder is down.
    let ids = env.create_users("down", 10).await;
    // Minutes pass, probe after probe; nothing reaches Coder and nothing is lost.
    env.advance(Duration::from_secs(5 * 60)).await;
    let waiting = env.outbox_stats().await;
    assert_eq!((waiting.depth, waiting.dead), (10, 0));
    assert_eq!(env.coder().users.len(), 1);
    let status = env.reconciler.status().snapshot();
    assert_eq!(status.pause_cause, Some(PauseCause::CoderUnavailable));
    // The outage ends; the worker finds out at its next probe.
    env.fake.clear_faults();
    resume_at_the_next_probe(&env, PauseCause::CoderUnavailable).await;
    env.run_until_outbox_empty().await;
    running.stop().await;
    let state = env.coder();
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 201),
        10,
        "each user created exactly once"
    );
    assert_eq!(state.users.iter().filter(|u| !u.deleted).count(), 11);
    for id in &ids {
        env.coder_user(id).await;
    }
    let stats = env.outbox_stats().await;
    assert_eq!((stats.depth, stats.dead), (0, 0));
    assert_eq!(
        env.observer.recorded().retries,
        0,
        "an outage pauses the worker; it spends no row's attempt"
    );
}

/// Run a worker with `max_attempts` until one row is dead-lettered; the dead rows.
async fn run_until_dead_lettered(env: &Env, max_attempts: u32) -> Vec<store::OutboxEvent> {
    let running = spawn(env.worker(WorkerConfig {
        max_attempts,
        ..worker_config("w1")
    }));
    env.run_until("a dead letter", GOAL_LIMIT, async || {
        env.outbox_stats().await.dead == 1
    })
    .await;
    running.stop().await;
    env.outbox_rows(OutboxFilter::Dead).await
}

/// 200 changes (140 new users, 30 renames, 30 deactivations) reach a worker during a minute of
/// Coder outage. Time does not move once Coder is back, so a row that got any backoff would
/// never be due again: the drain after Coder returns proves that no row waited on a backoff,
/// and the outbox proves that none spent an attempt. The fake's call log proves the order:
/// after the return, every suspension is in Coder before any other write. Prints the figures
/// of docs/BENCHMARKS.md.
async fn after_an_outage_offboarding_lands_first_and_no_attempt_is_spent(db: TestDb) {
    const SYNCED: usize = 60;
    const LEAVERS: usize = 30;
    const NEW: usize = 140;
    const OUTAGE: Duration = Duration::from_secs(60);
    let env = Env::start(db, false, "").await;
    let synced = env.create_users("staff", SYNCED).await;
    env.drain().await;
    let creates_before = calls(&env.coder(), "POST", "/api/v2/users", 201);
    // The shipped probe interval (the harness's worker has it): the time to recover below
    // includes waiting for a probe.
    let running = spawn(env.worker(worker_config("w1")));
    // The first creates are under way when Coder goes down.
    env.create_users("new", 20).await;
    let mut changes = 20;
    env.fake
        .start_outage(Outage {
            kind: FaultKind::Drop,
            millis: 600_000,
        })
        .unwrap();
    let down_at = env.instant();
    // The rest arrive during the outage, spread over it.
    let pace = OUTAGE.mul_f64(0.8) / 180;
    let mut next_new = 20;
    for n in 0..180 {
        match n % 6 {
            0 => env.set_active(&synced[n / 6], false).await,
            1 => {
                env.patch(
                    scim::ResourceKind::User,
                    &synced[LEAVERS + n / 6],
                    json!([{ "op": "replace", "path": "name.givenName", "value": "Renamed" }]),
                )
                .await
            }
            _ => {
                env.create_user(&format!("new{next_new}@corp.com"), json!({}))
                    .await;
                next_new += 1;
            }
        }
        changes += 1;
        env.advance(pace).await;
    }
    assert_eq!((changes, next_new), (200, NEW));
    env.advance(down_at + OUTAGE - env.instant()).await;

    // Coder is still down: the worker is paused, and nothing spent an attempt.
    let status = env.reconciler.status().snapshot();
    assert_eq!(status.pause_cause, Some(PauseCause::CoderUnavailable));
    assert!(!status.is_ready());
    let waiting = env.outbox_rows(OutboxFilter::All).await;
    assert!(waiting.len() >= 180, "{} rows waiting", waiting.len());
    assert!(
        waiting
            .iter()
            .all(|e| e.attempts == 0 && e.dead_at.is_none()),
        "no row spent an attempt on the outage: {:?}",
        waiting
            .iter()
            .filter(|e| e.attempts > 0)
            .collect::<Vec<_>>()
    );
    let probes = env.coder().calls.iter().filter(|c| c.status == 0).count();
    assert!(probes > 0, "the worker probed Coder during the outage");

    // Reconciles of existing users (suspensions, renames) are slower than creates from here
    // on, as calls on a user are in a real Coder: a create that started beside the last
    // suspension would overtake it.
    env.fake
        .inject(Fault::next(1_000, FaultKind::Latency { millis: 40 }).on_paths("/api/v2/users/"))
        .unwrap();
    let returned_at = env.coder().calls.len();
    env.fake.end_outage();
    let back = env.instant();
    let probe = env.settle().await.next_probe.unwrap();
    env.advance(probe - env.instant() - MILLI).await;
    assert_eq!(
        env.coder().calls.len(),
        returned_at,
        "paused until the probe"
    );
    env.jump(MILLI).await;
    // From the probe on, time stands still: what follows is the worker's work, in real time.
    let work = clock::Stopwatch::start();
    recorded_until(&env.observer, "every suspension", |r| {
        r.offboarding.len() >= LEAVERS
    })
    .await;
    let suspended_after = (probe - back, work.elapsed());
    env.settle().await;
    let converged_after = (probe - back, work.elapsed());
    assert_eq!(env.instant(), probe, "no row waited on a backoff");
    let state = env.coder();
    assert_eq!(
        state.users.iter().filter(|u| !u.deleted).count(),
        1 + SYNCED + NEW
    );
    assert_eq!(
        state
            .users
            .iter()
            .filter(|u| u.name == "Renamed Family")
            .count(),
        SYNCED - LEAVERS
    );
    assert_eq!(env.outbox_stats().await.depth, 0);
    running.stop().await;
    eprintln!(
        "outage of {OUTAGE:?}: every suspension {:?} (probe wait) + {:?} (real) and every change {:?} + {:?} after Coder's return",
        suspended_after.0, suspended_after.1, converged_after.0, converged_after.1
    );

    let writes: Vec<&str> = state.calls[returned_at..]
        .iter()
        .filter(|c| c.method != "GET")
        .map(|c| c.route.as_str())
        .collect();
    let suspend = "/api/v2/users/{user}/status/suspend";
    let last_suspend = writes.iter().rposition(|r| *r == suspend).unwrap();
    let first_other = writes.iter().position(|r| *r != suspend).unwrap();
    assert_eq!(
        writes.iter().filter(|r| **r == suspend).count(),
        LEAVERS,
        "each leaver suspended once"
    );
    assert!(
        last_suspend < first_other,
        "after Coder's return the deactivations come first: {:?}",
        &writes[..writes.len().min(40)]
    );
    for id in &synced[..LEAVERS] {
        assert_eq!(env.coder_status(id).await, UserStatus::Suspended);
    }
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 201) - creates_before,
        NEW,
        "each new user created exactly once"
    );
    let recorded = env.observer.recorded();
    assert_eq!(
        (recorded.retries, recorded.dead_letters),
        (0, 0),
        "no attempt spent, before or after Coder's return"
    );
    assert!(!env.reconciler.status().snapshot().paused);
}

/// Coder answers everything but the user lookups, which it drops every time. The probes
/// succeed, so after a few pauses the row's failures count as its own and it is dead-lettered.
async fn a_request_coder_never_answers_is_dead_lettered_not_paused_on_forever(db: TestDb) {
    let env = Env::start(db, false, "").await;
    // The bridge's identity (`/api/v2/users/me`) is read once; the probes do not ask again.
    env.reconciler.check_capabilities().await.unwrap();
    env.fake
        .inject(Fault::next(1_000, FaultKind::Drop).on_paths("/api/v2/users"))
        .unwrap();
    let user = env.create_user("unlucky@corp.com", json!({})).await;
    let dead = run_until_dead_lettered(&env, 2).await;
    assert_eq!(dead.len(), 1, "dead-lettered");
    assert_eq!(dead[0].resource_id, user.id);
    let recorded = env.observer.recorded();
    assert_eq!((recorded.retries, recorded.dead_letters), (1, 1));
    // Three pauses before the first counted failure, none after it.
    let dropped = calls(&env.coder(), "GET", "/api/v2/users", 0);
    assert_eq!(dropped, 5, "3 strikes, then 2 counted attempts");
    assert!(!env.reconciler.status().snapshot().paused);
}

async fn a_429_storm_is_honoured_without_dead_letters(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let running = spawn(env.worker(WorkerConfig {
        max_attempts: 2,
        ..worker_config("w1")
    }));
    env.settle().await;
    env.fake
        .inject(
            Fault::next(
                12,
                FaultKind::Status {
                    status: 429,
                    retry_after: Some("1".into()),
                },
            )
            .on_paths("/api/v2/users"),
        )
        .unwrap();
    env.create_users("storm", 8).await;
    // The first rows met a 429: the worker holds every claim back for the second it asked.
    let held = env.settle().await;
    let refused_at = held.at;
    assert!(calls(&env.coder(), "GET", "/api/v2/users", 429) > 0);
    assert!(!held.wakes_on_commit, "held back: {held:?}");
    assert_eq!(held.until, refused_at + Duration::from_secs(1));
    let calls_before = no_call_until_a_moment_before(
        &env,
        Duration::from_secs(1),
        "nothing sent before Retry-After: 1 ended",
    )
    .await;
    env.advance(MILLI).await;
    assert!(
        env.coder().calls.len() > calls_before,
        "claims resume when it ends"
    );
    env.run_until_coder("all users despite the storm", |s| s.users.len() == 9)
        .await;
    running.stop().await;
    let state = env.coder();
    assert_eq!(state.calls.iter().filter(|c| c.status == 429).count(), 12);
    let stats = env.outbox_stats().await;
    assert_eq!(
        stats.dead, 0,
        "429s spend no attempts, even with max_attempts = 2"
    );
    assert_eq!(env.observer.recorded().dead_letters, 0);
}

async fn rows_are_dead_lettered_after_max_attempts(db: TestDb) {
    let env = Env::start(db, false, "").await;
    env.fake
        .inject(status_fault(1000, 500).on_paths("/api/v2/users"))
        .unwrap();
    let user = env.create_user("doomed@corp.com", json!({})).await;
    let dead = run_until_dead_lettered(&env, 3).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].resource_id, user.id);
    let reason = dead[0].dead_reason.clone().unwrap();
    assert!(
        reason.contains("after 3 attempts") && reason.contains("500"),
        "{reason}"
    );
    let recorded = env.observer.recorded();
    assert_eq!((recorded.dead_letters, recorded.retries), (1, 2));
    // The reconcile's failure is in the audit trail too.
    let audit = env.worker_audit(&user.id).await;
    assert_eq!(audit.len(), 3);
    assert!(audit.iter().all(|r| r.result.contains("500")));
}

/// A group whose member's Coder user fails to be created three times first (the group waits for
/// it meanwhile) still ends up with the member, and nothing is dead-lettered.
async fn a_group_whose_member_fails_first_still_converges(db: TestDb) {
    let env = Env::start(db, true, "").await;
    let user = env.create_user("late@corp.com", json!({})).await;
    let group = env.create_group("waiting-team", &[&user.id]).await;
    env.fake
        .inject(status_fault(3, 500).on_paths("/api/v2/users"))
        .unwrap();
    let running = spawn(env.worker(WorkerConfig {
        max_attempts: 4,
        ..worker_config("w1")
    }));
    env.run_until_coder("the member in the Coder group", |s| {
        s.groups.iter().any(|g| {
            g.name == "waiting-team" && s.user("late").is_some_and(|u| g.members.contains(&u.id))
        })
    })
    .await;
    running.stop().await;
    assert_eq!(env.outbox_stats().await.dead, 0, "nothing dead-lettered");
    let left = env.outbox_rows(OutboxFilter::All).await;
    assert!(
        left.iter()
            .all(|e| e.resource_id != group.id || e.attempts == 0),
        "{left:?}"
    );
}

async fn a_crashed_workers_lease_is_taken_over(db: TestDb) {
    let env = Env::start(db, false, "").await;
    env.create_user("orphan@corp.com", json!({})).await;
    // A worker claims the row and dies without completing it.
    let claimed = env
        .store()
        .outbox()
        .claim("crashed", ChronoDuration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let running = spawn(env.worker(worker_config("w2")));
    // The worker looks at the queue at the last instant of the lease: it still holds.
    env.advance(Duration::from_secs(30) - MILLI).await;
    assert!(env.coder().user("orphan").is_none(), "the lease holds");
    let rows = env.outbox_rows(OutboxFilter::All).await;
    assert_eq!(rows[0].leased_by.as_deref(), Some("crashed"));
    // The instant it runs out, the row is the worker's.
    env.advance(MILLI).await;
    assert!(env.coder().user("orphan").is_some(), "taken over");
    running.stop().await;
}

async fn an_auth_failure_pauses_without_spending_attempts(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let running = spawn(env.worker(worker_config("w1")));
    // The whole start-up check, not just its organizations call: a 401 meant for the reconcile
    // must not be taken by the check's later calls.
    env.settle().await;
    assert!(env.reconciler.status().snapshot().capabilities.is_some());
    env.fake.inject(status_fault(MAX_FAULT_COUNT, 401)).unwrap();
    env.create_user("patient@corp.com", json!({})).await;
    env.settle().await;
    assert!(env.coder().user("patient").is_none());
    // Probe after probe is refused: the worker stays paused and spends nothing.
    env.advance(Duration::from_secs(60)).await;
    let status = env.reconciler.status().snapshot();
    assert_eq!(status.coder_authorised, Some(false));
    assert_eq!(env.observer.recorded().coder_auth_ok, Some(false));
    env.fake.clear_faults();
    resume_at_the_next_probe(&env, PauseCause::TokenRefused).await;
    env.run_until_coder("the resumed worker", |s| s.user("patient").is_some())
        .await;
    running.stop().await;
    let recorded = env.observer.recorded();
    assert_eq!(recorded.retries, 0, "an auth failure spends no retry");
    assert_eq!(recorded.coder_auth_ok, Some(true), "resumed");
    let audit = env.audit().await;
    assert!(
        audit.iter().any(|r| r.result.contains("401")),
        "the refused attempt is audited"
    );
    assert!(!env.reconciler.status().snapshot().paused);
    assert!(
        calls(&env.coder(), "GET", "/api/v2/users", 401)
            + calls(&env.coder(), "GET", "/api/v2/organizations", 401)
            > 0
    );
}

/// A proxy in front of Coder redirects every call to another host: the worker pauses (visible in
/// the status `/readyz` and `scim-bridge status` read) instead of burning retries, nothing reaches
/// the other host, and the worker resumes once Coder answers again.
async fn a_redirect_pauses_the_worker_and_the_other_host_receives_nothing(db: TestDb) {
    let env = Env::start(db, false, "").await;
    let other_host = crate::sink::Sink::start().await;
    let running = spawn(env.worker(worker_config("w1")));
    env.settle().await;
    let target = other_host.url("/api/v2/users");
    env.fake
        .inject(Fault::next(
            MAX_FAULT_COUNT,
            FaultKind::Redirect {
                status: 302,
                location: target.clone(),
            },
        ))
        .unwrap();
    env.create_user("moved@corp.com", json!({})).await;
    env.settle().await;
    let status = env.reconciler.status().snapshot();
    assert!(status.paused, "the worker paused on the redirect");
    let reason = status.pause_reason.clone().unwrap();
    for part in [
        "302 Found",
        target.as_str(),
        "set SCIM_BRIDGE_CODER_URL to the final URL",
    ] {
        assert!(reason.contains(part), "{part:?} missing from {reason}");
    }
    assert_eq!(status.pause_cause, Some(PauseCause::Redirected));
    assert!(!status.is_ready());
    assert!(
        status.warnings().iter().any(|w| w.contains(&reason)),
        "{:?}",
        status.warnings()
    );
    assert_ne!(
        status.coder_authorised,
        Some(false),
        "the token is not blamed"
    );

    env.fake.clear_faults();
    resume_at_the_next_probe(&env, PauseCause::Redirected).await;
    env.run_until_coder("the resumed worker", |s| s.user("moved").is_some())
        .await;
    running.stop().await;
    assert_eq!(other_host.accepted(), 0, "nothing reached the other host");
    assert_eq!(
        env.observer.recorded().retries,
        0,
        "a redirect spends no retry"
    );
    assert_eq!(env.observer.recorded().dead_letters, 0);
    assert!(!env.reconciler.status().snapshot().paused);
    assert!(
        env.coder().calls.iter().any(|c| c.status == 302),
        "Coder's side saw the redirected calls"
    );
}

/// Stopped while its reconciles wait on Coder, the worker lets them finish for its shutdown
/// grace and not a moment more, then cuts the rest off and releases their leases.
async fn shutdown_releases_leases(db: TestDb) {
    const GRACE: Duration = Duration::from_millis(50);
    let env = Env::start(db, false, "").await;
    let running = spawn(env.worker(WorkerConfig {
        shutdown_grace: GRACE,
        ..worker_config("w1")
    }));
    env.settle().await;
    // The creates wait in Coder until the test lets them through.
    env.fake
        .inject(
            Fault::next(4, FaultKind::Hold)
                .on_paths("/api/v2/users")
                .on_method("POST"),
        )
        .unwrap();
    env.create_users("slow", 6).await;
    test_support::within(
        REAL_TIME_LIMIT,
        "four creates in Coder's hands",
        env.fake.until_held(4),
    )
    .await;
    let rows = async || env.outbox_rows(OutboxFilter::All).await;
    let task = running.begin_stop();
    // Let the worker see the stop, and start its grace, before time moves.
    tokio::task::yield_now().await;
    env.jump(GRACE - MILLI).await;
    // The last instant of the grace: a create Coder answers now still completes its row.
    env.fake.release_held(1);
    test_support::within(REAL_TIME_LIMIT, "the answered row completed", async {
        while rows().await.len() != 5 {
            // The store, not the clock, is polled: no time passes meanwhile.
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!task.is_finished(), "still within the grace");
    let held: Vec<_> = rows().await;
    assert!(
        held.iter()
            .filter(|r| r.leased_by.as_deref() == Some("w1"))
            .count()
            == 3,
        "{held:?}"
    );
    // The grace ends: the three still in Coder's hands are cut off and every lease released.
    env.jump(MILLI).await;
    test_support::within(REAL_TIME_LIMIT, "the worker to stop", task)
        .await
        .unwrap();
    let rows = rows().await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.leased_by.is_none()), "{rows:?}");
    assert_eq!(
        env.coder().users.len(),
        2,
        "only the answered create is in Coder"
    );
}

/// Another replica's store: its own pool on the same PostgreSQL database.
async fn second_replica_store(db: &TestDb) -> store::Store {
    store::Store::connect(
        &db.url,
        StoreOptions {
            clock: db.clock.clone(),
            run_migrations: false,
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap()
}

/// A worker of another replica on `store`, against the same Coder, that [`Env::settle`] waits
/// for too.
fn spawn_second_replica(env: &Env, store: store::Store) -> Running {
    let observer = Arc::new(MemoryObserver::default());
    env.add_replica(observer.clone(), &store);
    let other = Arc::new(reconcile::Reconciler::new(
        (&store).into(),
        crate::harness::client_for(&env.fake),
        Arc::new(reconcile::Policy::default()),
        env.db.clock.clone(),
        observer,
    ));
    spawn(Worker::from_reconciler(other, worker_config("replica-b")))
}

async fn two_workers_share_the_queue_without_double_applying(db: TestDb) {
    if !db.is_postgres() {
        // SQLite is one replica by design; the test is about SKIP LOCKED.
        return;
    }
    let second = second_replica_store(&db).await;
    let env = Env::start(db, true, "").await;
    let ids = env.create_users("shared", 40).await;
    let a = spawn(env.worker(worker_config("replica-a")));
    let b = spawn_second_replica(&env, second);
    env.run_until_coder("all users", |s| s.users.len() == 41)
        .await;
    env.run_until_outbox_empty().await;
    a.stop().await;
    b.stop().await;
    let state = env.coder();
    assert_eq!(calls(&state, "POST", "/api/v2/users", 201), 40);
    assert_eq!(
        calls(&state, "POST", "/api/v2/users", 409),
        0,
        "no resource was applied twice"
    );
    for id in &ids {
        env.coder_user(id).await;
    }
    let audit = env.audit().await;
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.operation == "reconcile User")
            .count(),
        40,
        "one reconcile per user"
    );
}

/// Group membership churn while two replicas (two pools on one PostgreSQL) drain the queue with
/// slow Coder calls: only a group's own reconcile PATCHes it, the row lease keyed by the
/// resource keeps two from running at once, so Coder never sees a duplicate member (its 400)
/// and every group ends with exactly its SCIM members.
async fn two_replicas_write_each_group_from_one_reconcile_at_a_time(db: TestDb) {
    if !db.is_postgres() {
        return;
    }
    let second = second_replica_store(&db).await;
    let env = Env::start(db, true, "").await;
    // Slow calls widen every window in which two reconciles could overlap.
    env.fake
        .inject(Fault::next(
            MAX_FAULT_COUNT,
            FaultKind::Latency { millis: 15 },
        ))
        .unwrap();
    let users = env.create_users("churn", 24).await;
    let mut groups = Vec::new();
    for g in 0..3 {
        let members: Vec<&str> = users
            .iter()
            .skip(g)
            .step_by(2)
            .map(String::as_str)
            .collect();
        groups.push(env.create_group(&format!("team-{g}"), &members).await.id);
    }
    let a = spawn(env.worker(worker_config("replica-a")));
    let b = spawn_second_replica(&env, second);
    // Churn while both replicas run: members come and go while their users are created.
    for (n, user) in users.iter().enumerate() {
        let group = &groups[n % groups.len()];
        let op = if n % 3 == 0 { "remove" } else { "add" };
        let operation = if op == "add" {
            json!([{ "op": "add", "path": "members", "value": [{ "value": user }] }])
        } else {
            json!([{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }])
        };
        env.patch(scim::ResourceKind::Group, group, operation).await;
    }
    env.run_until_coder("all users", |s| s.users.len() == users.len() + 1)
        .await;
    env.run_until_outbox_empty().await;
    a.stop().await;
    b.stop().await;

    let state = env.coder();
    assert_eq!(
        calls(&state, "PATCH", "/api/v2/groups/{group}", 400),
        0,
        "a group was PATCHed by two writers"
    );
    assert_eq!(calls(&state, "POST", "/api/v2/users", 201), users.len());
    let org = env.fake.default_organization_id();
    for (g, group) in groups.iter().enumerate() {
        let stored = env
            .store()
            .resources()
            .get(
                scim::ResourceKind::Group,
                group,
                store::GetOptions {
                    members: true,
                    groups: false,
                },
            )
            .await
            .unwrap();
        let mut want = std::collections::BTreeSet::new();
        for member in stored.members.unwrap_or_default() {
            want.insert(env.coder_user(&member.value).await.id);
        }
        let have = &state
            .group(org, &format!("team-{g}"))
            .expect("group mirrored")
            .members;
        assert_eq!(have, &want, "members of team-{g}");
    }
    // Every group write came from that group's own reconcile.
    for record in env.audit().await {
        if record.operation == "reconcile User" {
            assert!(
                !record.change.to_string().contains("patch_group"),
                "a user's reconcile wrote a group: {}",
                record.change
            );
        }
    }
}
