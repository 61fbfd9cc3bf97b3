//! The real binary SIGKILLed at random moments while an IdP pushes mixed changes, restarted
//! each time; once the outbox drains, Coder must equal the SCIM store exactly: users, statuses,
//! names, groups and memberships, each Coder user created once, and never a group PATCH that
//! Coder refused for a duplicate member (two writers of one group).
//!
//! Drift repair is off, so only the outbox and the level-triggered reconciles can converge it.

use clock::Clock as _;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use coder_fake::{FakeHandle, UserStatus};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{Bridge, BridgeOptions, Db, coder_fake_env, eventually, fresh_database};

/// Rounds of start, traffic, SIGKILL (more, up to [`MAX_ROUNDS`], until [`MIN_CHANGES`]
/// changes were acknowledged).
const ROUNDS: usize = 12;
const MAX_ROUNDS: usize = 40;
const MIN_CHANGES: usize = 250;
/// `SCIM_BRIDGE_OUTBOX_LEASE` of the test's bridges.
const LEASE: &str = "3s";
/// Changes sent per round at most (the kill usually comes first).
const CHANGES_PER_ROUND: usize = 45;

/// xorshift64*: the test's only randomness, seeded from the clock and printed, so a failing
/// run can be replayed with `SCIM_BRIDGE_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let seed = std::env::var("SCIM_BRIDGE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::from(clock::SystemClock.now())
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("crash loop seed: SCIM_BRIDGE_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// What the driver believes exists (a change cut off by the kill may or may not have landed;
/// the final comparison reads the SCIM store, not this).
#[derive(Default)]
struct Known {
    users: Vec<String>,
    groups: Vec<String>,
    serial: usize,
    acknowledged: usize,
}

fn patch_op(operations: Value) -> Value {
    json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations })
}

fn user_body(user_name: &str, email: &str, name: &str, active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": { "formatted": name, "givenName": "Crash", "familyName": "Loop" },
        "emails": [{ "value": email, "type": "work", "primary": true }],
        "active": active,
    })
}

/// Send one random change; returns false when the bridge did not answer it with a 2xx.
async fn one_change(bridge: &Bridge, rng: &mut Rng, known: &mut Known) -> bool {
    known.serial += 1;
    let serial = known.serial;
    let choice = if known.users.len() < 8 {
        0
    } else {
        rng.below(100)
    };
    let (status, body) = match choice {
        0..=24 => {
            let body = user_body(
                &format!("cl{serial}@idp.example.com"),
                &format!("cl{serial}@mail.example.com"),
                &format!("Crash Loop {serial}"),
                true,
            );
            let (status, body) = bridge.call("POST", "/Users", Some(&body)).await;
            if let Some(id) = body["id"].as_str() {
                known.users.push(id.to_owned());
            }
            (status, body)
        }
        25..=34 => {
            let id = rng.pick(&known.users).cloned().unwrap_or_default();
            let ops = patch_op(json!([
                { "op": "replace", "path": "userName", "value": format!("renamed{serial}@idp.example.com") },
                { "op": "replace", "path": "name.formatted", "value": format!("Renamed {serial}") },
            ]));
            bridge
                .call("PATCH", &format!("/Users/{id}"), Some(&ops))
                .await
        }
        35..=46 => {
            let id = rng.pick(&known.users).cloned().unwrap_or_default();
            let active = rng.below(2) == 0;
            let ops = patch_op(json!([{ "op": "replace", "path": "active", "value": active }]));
            bridge
                .call("PATCH", &format!("/Users/{id}"), Some(&ops))
                .await
        }
        47..=54 => {
            // PUT: the whole user again, renamed, keeping its email.
            let id = rng.pick(&known.users).cloned().unwrap_or_default();
            let (status, current) = bridge.call("GET", &format!("/Users/{id}"), None).await;
            if status != 200 {
                return false;
            }
            let email = current["emails"][0]["value"].as_str().unwrap_or_default();
            let body = user_body(
                &format!("put{serial}@idp.example.com"),
                email,
                &format!("Put {serial}"),
                current["active"].as_bool().unwrap_or(true),
            );
            bridge
                .call("PUT", &format!("/Users/{id}"), Some(&body))
                .await
        }
        55..=61 => {
            let at = rng.below(known.users.len());
            let id = known.users.swap_remove(at);
            bridge.call("DELETE", &format!("/Users/{id}"), None).await
        }
        62..=67 if known.groups.len() < 12 => {
            let members: Vec<Value> = (0..3)
                .filter_map(|_| rng.pick(&known.users))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|id| json!({ "value": id }))
                .collect();
            let body = json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": format!("Crash Team {serial}"),
                "members": members,
            });
            let (status, body) = bridge.call("POST", "/Groups", Some(&body)).await;
            if let Some(id) = body["id"].as_str() {
                known.groups.push(id.to_owned());
            }
            (status, body)
        }
        _ => {
            let (Some(group), Some(user)) = (
                rng.pick(&known.groups).cloned(),
                rng.pick(&known.users).cloned(),
            ) else {
                return false;
            };
            let ops = if rng.below(3) == 0 {
                patch_op(
                    json!([{ "op": "remove", "path": format!("members[value eq \"{user}\"]") }]),
                )
            } else {
                patch_op(json!([{ "op": "add", "path": "members", "value": [{ "value": user }] }]))
            };
            bridge
                .call("PATCH", &format!("/Groups/{group}"), Some(&ops))
                .await
        }
    };
    assert!(status < 500, "a change got {status}: {body}");
    let ok = (200..300).contains(&status);
    if ok {
        known.acknowledged += 1;
    }
    ok
}

/// Every resource of `kind` in the SCIM store, read through the API.
async fn scim_all(bridge: &Bridge, kind: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let (status, page) = bridge
            .call(
                "GET",
                &format!("/{kind}?startIndex={}&count=500", all.len() + 1),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["Resources"].as_array().cloned().unwrap_or_default();
        let done = items.is_empty();
        all.extend(items);
        if done || all.len() as u64 >= page["totalResults"].as_u64().unwrap_or(0) {
            return all;
        }
    }
}

/// Differences between Coder and the SCIM store (empty when they match).
pub(crate) async fn differences(bridge: &Bridge, fake: &FakeHandle) -> Vec<String> {
    let policy = reconcile::Policy::default();
    let state = fake.state();
    let org = fake.default_organization_id();
    let owner = fake.owner_id();
    let mut problems = Vec::new();
    let mut coder_id_of = BTreeMap::new();
    let mut scim_emails = BTreeSet::new();
    for user in scim_all(bridge, "Users").await {
        let id = user["id"].as_str().unwrap_or_default().to_owned();
        let attrs = user.as_object().cloned().unwrap_or_default();
        let desired = reconcile::desired::desired_user(&policy, &id, &attrs, &[])
            .unwrap_or_else(|e| panic!("{id}: {}", e.0));
        scim_emails.insert(desired.email.clone());
        let Some(coder) = state
            .users
            .iter()
            .find(|u| !u.deleted && u.email == desired.email)
        else {
            problems.push(format!("{}: no Coder user", desired.email));
            continue;
        };
        coder_id_of.insert(id, coder.id);
        // Coder makes new users dormant until their first login; dormant counts as active.
        let active = coder.status != UserStatus::Suspended;
        if active != desired.active {
            problems.push(format!(
                "{}: Coder status {:?}, SCIM active {}",
                desired.email, coder.status, desired.active
            ));
        }
        if coder.username != desired.username_base || coder.name != desired.name {
            problems.push(format!(
                "{}: Coder {:?}/{:?}, SCIM {:?}/{:?}",
                desired.email, coder.username, coder.name, desired.username_base, desired.name
            ));
        }
    }
    // A SCIM user deleted: its Coder user is suspended (the default delete policy) or was
    // never made.
    for coder in state.users.iter().filter(|u| u.id != owner && !u.deleted) {
        if !scim_emails.contains(&coder.email) && coder.status != UserStatus::Suspended {
            problems.push(format!("{}: deleted in SCIM, active in Coder", coder.email));
        }
    }
    for group in scim_all(bridge, "Groups").await {
        let id = group["id"].as_str().unwrap_or_default();
        let (_, full) = bridge.call("GET", &format!("/Groups/{id}"), None).await;
        let display = full["displayName"].as_str().unwrap_or_default();
        let name = reconcile::naming::group_name(display);
        let want: BTreeSet<Uuid> = full["members"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["value"].as_str())
            .filter_map(|m| coder_id_of.get(m).copied())
            .collect();
        match state.group(org, &name) {
            None => problems.push(format!("group {name}: not in Coder")),
            Some(coder) if coder.members != want => problems.push(format!(
                "group {name}: Coder has {} members, SCIM {}",
                coder.members.len(),
                want.len()
            )),
            Some(_) => {}
        }
    }
    problems
}

/// `replicas` bridges on one database (more than one only on PostgreSQL); each round one of
/// them is SIGKILLed while the others keep serving, and restarted in the next round.
async fn crash_loop_on(db: &Db, replicas: usize) {
    let fake = crate::support::premium_fake().await;
    let first = Bridge::start(BridgeOptions {
        database: fresh_database(db).await,
        extra_env: [
            coder_fake_env(&fake),
            vec![
                ("SCIM_BRIDGE_DRIFT_INTERVAL".into(), "0".into()),
                // A killed process's leases pass on quickly (PostgreSQL; SQLite releases them
                // at start-up).
                ("SCIM_BRIDGE_OUTBOX_LEASE".into(), LEASE.into()),
            ],
        ]
        .concat(),
    })
    .await;
    let mut bridges = vec![first];
    while bridges.len() < replicas {
        let another = bridges[0].another().await;
        bridges.push(another);
    }
    let mut rng = Rng::seeded();
    let mut known = Known::default();
    let started = clock::SystemClock.instant();
    let mut round = 0;
    let mut killed: Option<usize> = None;
    while round < ROUNDS || (known.acknowledged < MIN_CHANGES && round < MAX_ROUNDS) {
        round += 1;
        if let Some(k) = killed.take() {
            bridges[k].spawn().await;
        }
        // A few milliseconds per Coder call, so a kill lands inside reconciles, not between.
        fake.clear_faults();
        fake.inject(coder_fake::Fault::next(
            coder_fake::MAX_FAULT_COUNT,
            coder_fake::FaultKind::Latency { millis: 3 },
        ))
        .unwrap();
        // On a loaded machine one request can outlast the whole kill window: a few changes of
        // each round are sent before the kill timer starts, so every round adds changes and the
        // kill still lands at a random point of the workers' reconciles.
        let mut sent = 0;
        let warmup = 5 + rng.below(10);
        while sent < warmup {
            let target = rng.below(bridges.len());
            one_change(&bridges[target], &mut rng, &mut known).await;
            sent += 1;
        }
        let kill_after = Duration::from_millis(40 + rng.below(400) as u64);
        let deadline = tokio::time::sleep(kill_after);
        tokio::pin!(deadline);
        loop {
            // IdP requests spread over every replica.
            let target = rng.below(bridges.len());
            tokio::select! {
                () = &mut deadline => break,
                _ = one_change(&bridges[target], &mut rng, &mut known), if sent < CHANGES_PER_ROUND => {
                    sent += 1;
                }
                // All sent: let the workers run until the kill.
                () = tokio::time::sleep(Duration::from_secs(3600)), if sent >= CHANGES_PER_ROUND => {}
            }
        }
        let victim = rng.below(bridges.len());
        bridges[victim].kill();
        killed = Some(victim);
    }
    fake.clear_faults();
    eprintln!(
        "{db:?}: {} changes acknowledged over {round} kills in {:?}",
        known.acknowledged,
        clock::SystemClock.elapsed(started)
    );
    assert!(
        known.acknowledged >= MIN_CHANGES,
        "{db:?}: only {} changes",
        known.acknowledged
    );

    if let Some(k) = killed.take() {
        if replicas > 1 {
            // The others hold the store: the killed replica's leases must pass to them.
            bridges.remove(k);
        } else {
            bridges[k].spawn().await;
        }
    }
    let bridge = &bridges[0];
    let last_kill = clock::SystemClock.instant();
    let converged = eventually(Duration::from_secs(60), || async {
        let out = bridge.cli(&["outbox", "status"]);
        let drained = String::from_utf8_lossy(&out.stdout).contains("depth:      0");
        (drained && differences(bridge, &fake).await.is_empty()).then_some(())
    })
    .await;
    eprintln!(
        "{db:?}, {replicas} replica(s): converged {:?} after the last kill (lease {LEASE})",
        clock::SystemClock.elapsed(last_kill)
    );
    if converged.is_none() {
        panic!(
            "{db:?}: Coder never matched the SCIM store:\n{}\noutbox:\n{}",
            differences(bridge, &fake).await.join("\n"),
            String::from_utf8_lossy(&bridge.cli(&["outbox", "list"]).stdout)
        );
    }
    let state = fake.state();
    let mut per_email: BTreeMap<&str, usize> = BTreeMap::new();
    for user in state.users.iter().filter(|u| u.id != fake.owner_id()) {
        *per_email.entry(user.email.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = per_email.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{db:?}: created more than once: {twice:?}"
    );
    let creates = answered(&state, "POST", "/api/v2/users", 201);
    assert_eq!(
        creates,
        per_email.len(),
        "{db:?}: one create per Coder user"
    );
    let refused = answered(&state, "PATCH", "/api/v2/groups/{group}", 400);
    assert_eq!(
        refused, 0,
        "{db:?}: a group PATCH was refused (two writers)"
    );
    drop(bridges);
    fake.stop().await;
}

/// How many of the calls Coder logged hit `method route` and were answered `status`.
fn answered(state: &coder_fake::FakeState, method: &str, route: &str, status: u16) -> usize {
    state
        .calls
        .iter()
        .filter(|c| c.method == method && c.route == route && c.status == status)
        .count()
}

/// SQLite and PostgreSQL alike: a dozen SIGKILLs during a few hundred changes lose nothing and
/// apply nothing twice.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_converges_coder_to_the_scim_store() {
    for db in crate::support::available() {
        crash_loop_on(&db, 1).await;
    }
}

/// Three replicas on one PostgreSQL, IdP requests spread over all three, one SIGKILLed at a
/// time while the others serve: nothing acknowledged is lost, nothing applied twice, and the
/// dead replica's leases pass to the others.
#[tokio::test(flavor = "multi_thread")]
async fn three_replicas_with_random_sigkills_converge_coder_to_the_scim_store() {
    if !crate::support::available()
        .iter()
        .any(|d| matches!(d, Db::Postgres))
    {
        return;
    }
    crash_loop_on(&Db::Postgres, 3).await;
}
