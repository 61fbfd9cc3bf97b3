//! `scim-bridge report offboarding [--since T]`: per deactivated or deleted SCIM User, the
//! evidence that access ended, read from the hash-chained audit trail (no Coder call).
//!
//! An offboarding starts at the IdP's change as stored (a write that turns `active` from true to
//! false, or a DELETE); the worker's records after it, until the user is active again, say what
//! Coder did: the suspension (or deletion) and when Coder acknowledged it, each API token
//! deleted and each workspace stopped (`[offboarding] delete_api_tokens` and `stop_workspaces`),
//! and the worker's notes (a refused suspension, a busy workspace, a user already gone).
//! Suspending a user blocks every one of its API keys in Coder at once, and Coder stops a
//! suspended user's running workspaces itself; the report shows what the bridge did.

use chrono::{DateTime, Utc};
use reconcile::AUDIT_ACTOR;
use serde::Serialize;
use serde_json::Value;
use store::AuditRecord;

use super::{OffboardingArgs, ReportFormat, ReportRow, csv_time};
use crate::config::Settings;
use crate::output::{self, Row};

/// One offboarding of one user.
#[derive(Debug, Clone, Serialize)]
pub struct OffboardingRow {
    /// The userName, as last stored.
    pub user: String,
    pub scim_id: String,
    /// `deactivated` (active set to false) or `deleted` (a SCIM DELETE).
    pub change: &'static str,
    /// When the IdP's change was stored (its audit record).
    pub idp_change_stored_at: DateTime<Utc>,
    /// `suspended` or `deleted` once Coder acknowledged it; `None` while it has not.
    pub coder_action: Option<&'static str>,
    /// When the worker recorded Coder's acknowledgement (the audit record of the reconcile
    /// that suspended or deleted the Coder user).
    pub coder_acknowledged_at: Option<DateTime<Utc>>,
    /// From the IdP's change being stored to Coder's acknowledgement.
    pub seconds_to_coder: Option<f64>,
    /// Names (or ids) of the API tokens the worker deleted.
    pub tokens_deleted: Vec<String>,
    /// Names of the workspaces the worker stopped.
    pub workspaces_stopped: Vec<String>,
    /// When the IdP made the user active again, if it did.
    pub reactivated_at: Option<DateTime<Utc>>,
    /// The worker's notes and refused calls during the offboarding.
    pub notes: Vec<String>,
}

fn list(items: &[String]) -> String {
    items.join("; ")
}

fn dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

impl Row for OffboardingRow {
    const HEADERS: &'static [&'static str] = &[
        "USER",
        "CHANGE",
        "IDP CHANGE STORED",
        "CODER",
        "ACKNOWLEDGED",
        "SECONDS",
        "TOKENS DELETED",
        "WORKSPACES STOPPED",
        "NOTES",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.user.clone(),
            self.change.into(),
            output::time(self.idp_change_stored_at),
            match (self.coder_action, self.reactivated_at) {
                (Some(action), _) => action.into(),
                (None, Some(_)) => "reactivated first".into(),
                (None, None) => "not acknowledged".into(),
            },
            output::maybe_time(self.coder_acknowledged_at),
            self.seconds_to_coder
                .map_or_else(|| "-".into(), |s| format!("{s:.1}")),
            dash(&self.tokens_deleted),
            dash(&self.workspaces_stopped),
            dash(&self.notes),
        ]
    }
}

impl ReportRow for OffboardingRow {
    const CSV_HEADERS: &'static [&'static str] = &[
        "user",
        "scim_id",
        "change",
        "idp_change_stored_at",
        "coder_action",
        "coder_acknowledged_at",
        "seconds_to_coder",
        "tokens_deleted",
        "workspaces_stopped",
        "reactivated_at",
        "notes",
    ];
    fn csv(&self) -> Vec<String> {
        vec![
            self.user.clone(),
            self.scim_id.clone(),
            self.change.into(),
            csv_time(Some(self.idp_change_stored_at)),
            self.coder_action.unwrap_or_default().into(),
            csv_time(self.coder_acknowledged_at),
            self.seconds_to_coder
                .map(|s| format!("{s:.3}"))
                .unwrap_or_default(),
            list(&self.tokens_deleted),
            list(&self.workspaces_stopped),
            csv_time(self.reactivated_at),
            list(&self.notes),
        ]
    }
}

/// One user's trail, as the walk through the records keeps it.
#[derive(Default)]
struct Trail {
    user: String,
    /// Whether the IdP last said active (a user is created active unless it says otherwise).
    active: bool,
    /// The offboarding in progress, if any.
    open: Option<OffboardingRow>,
}

fn worker_record(r: &AuditRecord) -> bool {
    r.actor.as_deref() == Some(AUDIT_ACTOR) && r.operation.starts_with("reconcile ")
}

/// Apply one worker record to the open offboarding: its successful calls and its notes.
fn apply_worker(row: &mut OffboardingRow, record: &AuditRecord) {
    let calls = record.change["coder_calls"].as_array().cloned();
    for call in calls.iter().flatten() {
        let name = call["call"].as_str().unwrap_or_default();
        let ok = call["outcome"].as_str() == Some("ok");
        let target = &call["target"];
        let text = |key: &str| target[key].as_str().map(str::to_owned);
        if !ok {
            // A busy workspace (409) is the worker's own note; other failures fail the reconcile.
            if matches!(name, "suspend_user" | "delete_user" | "delete_api_key") {
                row.notes.push(format!(
                    "{name} failed: {}",
                    call["outcome"].as_str().unwrap_or("?")
                ));
            }
            continue;
        }
        match name {
            "suspend_user" | "delete_user" if row.coder_action.is_none() => {
                row.coder_action = Some(if name == "suspend_user" {
                    "suspended"
                } else {
                    "deleted"
                });
                row.coder_acknowledged_at = Some(record.time);
                row.seconds_to_coder = Some(
                    (record.time - row.idp_change_stored_at)
                        .num_microseconds()
                        .unwrap_or(0) as f64
                        / 1e6,
                );
            }
            "delete_api_key" => row.tokens_deleted.push(
                text("token_name")
                    .filter(|n| !n.is_empty())
                    .or_else(|| text("key"))
                    .unwrap_or_default(),
            ),
            "stop_workspace" => row
                .workspaces_stopped
                .push(text("name").unwrap_or_default()),
            _ => {}
        }
    }
    for note in record.change["notes"].as_array().into_iter().flatten() {
        if let Some(note) = note.as_str() {
            row.notes.push(note.to_owned());
        }
    }
    if record.result != "ok" {
        row.notes
            .push(format!("reconcile failed: {}", record.result));
    }
}

/// Every offboarding in `records` (the audit records about Users, in chain order), by the time
/// the IdP's change was stored, then userName.
pub fn offboardings(records: &[AuditRecord]) -> Vec<OffboardingRow> {
    let mut trails: std::collections::HashMap<String, Trail> = std::collections::HashMap::new();
    let mut done = Vec::new();
    for record in records {
        let Some(id) = record.resource_id.clone() else {
            continue;
        };
        let trail = trails.entry(id.clone()).or_insert_with(|| Trail {
            active: true,
            ..Trail::default()
        });
        if worker_record(record) {
            if let Some(row) = &mut trail.open {
                apply_worker(row, record);
            }
            continue;
        }
        let start = |change: &'static str, user: &str| OffboardingRow {
            user: user.to_owned(),
            scim_id: id.clone(),
            change,
            idp_change_stored_at: record.time,
            coder_action: None,
            coder_acknowledged_at: None,
            seconds_to_coder: None,
            tokens_deleted: Vec::new(),
            workspaces_stopped: Vec::new(),
            reactivated_at: None,
            notes: Vec::new(),
        };
        if record.change.get("deleted_version").is_some() {
            match &mut trail.open {
                Some(row) => row.notes.push(format!(
                    "deleted by the IdP at {}",
                    output::time(record.time)
                )),
                None => trail.open = Some(start("deleted", &trail.user)),
            }
            trail.active = false;
            continue;
        }
        let Some(attrs) = record.change.get("attrs").and_then(Value::as_object) else {
            continue;
        };
        if let Some(name) = scim::resource::user_name(attrs) {
            trail.user = name.to_owned();
        }
        let active = scim::resource::active(attrs);
        if trail.active && !active {
            trail.open = Some(start("deactivated", &trail.user));
        } else if !trail.active
            && active
            && let Some(mut row) = trail.open.take()
        {
            row.reactivated_at = Some(record.time);
            done.push(row);
        }
        trail.active = active;
    }
    done.extend(trails.into_values().filter_map(|t| t.open));
    done.sort_by(|a, b| {
        (a.idp_change_stored_at, &a.user, &a.scim_id).cmp(&(
            b.idp_change_stored_at,
            &b.user,
            &b.scim_id,
        ))
    });
    done
}

/// What the table adds under the rows: what the bridge does on offboarding under this policy.
pub fn policy_note(policy: &reconcile::policy::OffboardingPolicy) -> String {
    let tokens = if policy.delete_api_tokens {
        "[offboarding] delete_api_tokens = true: the worker deletes the user's long-lived API tokens (the only keys Coder lists; session keys stop working with the suspension)"
    } else {
        "[offboarding] delete_api_tokens = false: no token is deleted; the suspension blocks every API key of the user while it lasts"
    };
    let workspaces = if policy.stop_workspaces {
        "[offboarding] stop_workspaces = true: the worker stops the user's running workspaces (Coder also stops a suspended user's workspaces by itself, which is not recorded here)"
    } else {
        "[offboarding] stop_workspaces = false: the worker stops no workspace; Coder stops a suspended user's running workspaces by itself, which is not recorded here"
    };
    format!(
        "note: a suspension blocks all of the user's API keys at once.\nnote: {tokens}.\nnote: {workspaces}.\n"
    )
}

pub async fn run(settings: &Settings, args: OffboardingArgs) -> anyhow::Result<bool> {
    let store = super::super::open_store(settings).await?;
    let policy = crate::sync::policy(settings)?;
    let since = match &args.since {
        Some(raw) => Some(super::parse_since(raw, store.clock().now())?),
        None => None,
    };
    // All of the trail: whether a user was active before `since` decides what its first
    // change after it is.
    let records = store.audit().of_type("User", None).await?;
    let rows: Vec<OffboardingRow> = offboardings(&records)
        .into_iter()
        .filter(|r| since.is_none_or(|s| r.idp_change_stored_at >= s))
        .collect();
    super::print(args.report.output, &rows)?;
    if args.report.output == ReportFormat::Table {
        print!("{}", policy_note(&policy.offboarding));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::report::render;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn record(
        seq: i64,
        time: &str,
        actor: &str,
        operation: &str,
        id: &str,
        change: Value,
    ) -> AuditRecord {
        AuditRecord {
            seq,
            time: at(time),
            request_id: format!("r-{seq}"),
            actor: Some(actor.into()),
            source_addr: None,
            operation: operation.into(),
            resource_type: Some("User".into()),
            resource_id: Some(id.into()),
            change,
            result: "ok".into(),
            prev_hash: String::new(),
            hash: String::new(),
            key_id: None,
        }
    }

    fn attrs(user: &str, active: bool) -> Value {
        json!({ "attrs": { "userName": user, "active": active } })
    }

    fn calls(calls: Value, notes: Value) -> Value {
        json!({ "coder_calls": calls, "notes": notes })
    }

    /// Alice leaves (suspended 1.5 s later, a token deleted and a workspace stopped, one busy);
    /// Bob is deleted (Coder user deleted); Carol is deactivated and back before Coder acts;
    /// Dan leaves while Coder is down; Erin never left.
    fn trail() -> Vec<AuditRecord> {
        vec![
            record(
                1,
                "2026-12-01T09:00:00Z",
                "okta",
                "create User",
                "u-alice",
                attrs("alice@corp.example", true),
            ),
            record(
                2,
                "2026-12-01T09:00:00Z",
                "okta",
                "create User",
                "u-bob",
                attrs("bob@corp.example", true),
            ),
            record(
                3,
                "2026-12-01T09:00:00Z",
                "okta",
                "create User",
                "u-carol",
                attrs("carol@corp.example", true),
            ),
            record(
                4,
                "2026-12-01T09:00:00Z",
                "okta",
                "create User",
                "u-dan",
                attrs("dan@corp.example", true),
            ),
            record(
                5,
                "2026-12-01T09:00:00Z",
                "okta",
                "create User",
                "u-erin",
                attrs("erin@corp.example", true),
            ),
            record(
                6,
                "2026-12-01T09:00:01Z",
                "worker",
                "reconcile User",
                "u-alice",
                calls(
                    json!([{ "call": "create_user", "target": {}, "outcome": "ok" }]),
                    json!([]),
                ),
            ),
            record(
                7,
                "2026-12-02T17:00:00Z",
                "okta",
                "PATCH /Users/u-alice",
                "u-alice",
                attrs("alice@corp.example", false),
            ),
            record(
                8,
                "2026-12-02T17:00:01.500Z",
                "worker",
                "reconcile User",
                "u-alice",
                calls(
                    json!([
                        { "call": "suspend_user", "target": { "user": "c-1" }, "outcome": "ok" },
                        { "call": "delete_api_key", "target": { "user": "c-1", "key": "k1", "token_name": "ci, \"nightly\"" }, "outcome": "ok" },
                        { "call": "stop_workspace", "target": { "workspace": "w1", "name": "alice-dev" }, "outcome": "ok" },
                        { "call": "stop_workspace", "target": { "workspace": "w2", "name": "alice-gpu" }, "outcome": "409 conflict" },
                    ]),
                    json!(["workspace alice-gpu was busy; Coder stops it"]),
                ),
            ),
            record(
                9,
                "2026-12-02T18:00:00Z",
                "entra",
                "DELETE /Users/u-bob",
                "u-bob",
                json!({ "deleted_version": 2, "removed_from_groups": [] }),
            ),
            record(
                10,
                "2026-12-02T18:00:02Z",
                "worker",
                "reconcile User",
                "u-bob",
                calls(
                    json!([
                        { "call": "delete_user", "target": { "user": "c-2" }, "outcome": "ok" },
                    ]),
                    json!([]),
                ),
            ),
            record(
                11,
                "2026-12-02T19:00:00Z",
                "okta",
                "PATCH /Users/u-carol",
                "u-carol",
                attrs("carol@corp.example", false),
            ),
            record(
                12,
                "2026-12-02T19:00:00.200Z",
                "okta",
                "PATCH /Users/u-carol",
                "u-carol",
                attrs("carol@corp.example", true),
            ),
            record(
                13,
                "2026-12-02T20:00:00Z",
                "okta",
                "PUT /Users/u-dan",
                "u-dan",
                attrs("dan@corp.example", false),
            ),
            record(
                14,
                "2026-12-02T20:00:05Z",
                "okta",
                "PATCH /Users/u-erin",
                "u-erin",
                attrs("erin@corp.example", true),
            ),
        ]
    }

    #[test]
    fn each_offboarding_starts_at_the_stored_change_and_collects_what_coder_did() {
        let rows = offboardings(&trail());
        let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(
            users,
            [
                "alice@corp.example",
                "bob@corp.example",
                "carol@corp.example",
                "dan@corp.example"
            ]
        );
        assert_eq!(rows[0].seconds_to_coder, Some(1.5));
        assert_eq!(rows[1].coder_action, Some("deleted"));
        assert!(rows[2].reactivated_at.is_some() && rows[2].coder_action.is_none());
        assert!(rows[3].coder_acknowledged_at.is_none());
    }

    #[test]
    fn report_offboarding_table() {
        let policy = reconcile::Policy::default();
        let mut text = render(ReportFormat::Table, &offboardings(&trail())).unwrap();
        text.push_str(&policy_note(&policy.offboarding));
        insta::assert_snapshot!(text);
    }

    crate::output::snapshot_tests! {
        report_offboarding_csv => render(ReportFormat::Csv, &offboardings(&trail())).unwrap();
        report_offboarding_json => render(ReportFormat::Json, &offboardings(&trail())).unwrap();
    }
}
