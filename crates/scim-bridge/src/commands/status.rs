//! `scim-bridge status`: what an operator needs to know at a glance.

use serde::Serialize;

use crate::config::Settings;
use crate::output::{self, Fields, OutputArgs, View};

use super::outbox::OutboxSummary;

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Everything `status` found; `healthy` is false when something needs a person (exit 1).
#[derive(Debug, Serialize)]
struct StatusReport {
    healthy: bool,
    database: DatabaseStatus,
    outbox: OutboxSummary,
    coder: CoderStatus,
    sync_issues: Vec<IssueRow>,
    /// The SIEM stream's cursor and lag; absent without SCIM_BRIDGE_AUDIT_WEBHOOK_URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_webhook: Option<crate::audit_webhook::WebhookStatus>,
    /// What will need a person soon (a token about to expire), in plain sentences.
    warnings: Vec<String>,
}

/// How long before a token expires `status` starts to warn.
pub const EXPIRY_WARNING: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// A warning for every unrevoked IdP token that expired or expires within [`EXPIRY_WARNING`].
fn token_warnings(tokens: &[store::TokenInfo], now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .filter_map(|t| {
            expiry_warning(
                &format!("IdP token '{}'", t.name),
                t.expires_at?,
                now,
                "give the IdP a new one (`scim-bridge token create`), then revoke this one",
            )
        })
        .collect()
}

/// `what` expired, or expires within [`EXPIRY_WARNING`]: what to do about it.
fn expiry_warning(
    what: &str,
    at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
    remedy: &str,
) -> Option<String> {
    let when = output::time(at);
    let left = at - now;
    let state = if left <= chrono::TimeDelta::zero() {
        format!("expired at {when}")
    } else if left <= EXPIRY_WARNING {
        format!("expires at {when} (in {} day(s))", left.num_days())
    } else {
        return None;
    };
    Some(format!("{what} {state}: {remedy}"))
}

#[derive(Debug, Serialize)]
struct DatabaseStatus {
    backend: &'static str,
    migrations_current: bool,
}

#[derive(Debug, Serialize)]
struct CoderStatus {
    /// `None`: no Coder URL is configured, nothing is synced.
    url: Option<String>,
    /// Coder's answer to the start-up checks; `None` when Coder is not configured or did not
    /// answer.
    capabilities: Option<Capabilities>,
    /// Why Coder could not be checked.
    error: Option<String>,
    /// When the bridge's Coder token expires, as Coder says (`GET /users/me/keys/{id}`).
    token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// [`reconcile::capabilities::CapabilityReport`] as `status -o json` prints it.
#[derive(Debug, Serialize)]
struct Capabilities {
    coder_version: String,
    identity: String,
    is_owner: bool,
    groups_licensed: bool,
    groups_mirrored: bool,
    coder_scim_enabled: bool,
    organization_sync: bool,
    group_sync_organizations: Vec<String>,
    role_sync_organizations: Vec<String>,
    warnings: Vec<String>,
    /// The report as the table prints it.
    #[serde(skip)]
    text: String,
}

impl From<reconcile::capabilities::CapabilityReport> for Capabilities {
    fn from(r: reconcile::capabilities::CapabilityReport) -> Capabilities {
        Capabilities {
            text: r.to_string(),
            coder_version: r.coder_version,
            identity: r.identity,
            is_owner: r.is_owner,
            groups_licensed: r.groups_licensed,
            groups_mirrored: r.groups_mirrored,
            coder_scim_enabled: r.coder_scim_enabled,
            organization_sync: r.organization_sync,
            group_sync_organizations: r.group_sync_organizations,
            role_sync_organizations: r.role_sync_organizations,
            warnings: r.warnings,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct IssueRow {
    pub(crate) kind: String,
    pub(crate) resource_id: String,
    pub(crate) issue_type: String,
    pub(crate) detail: String,
    pub(crate) created_at: chrono::DateTime<chrono::Utc>,
}

impl From<store::SyncIssue> for IssueRow {
    fn from(i: store::SyncIssue) -> IssueRow {
        IssueRow {
            kind: i.kind,
            resource_id: i.resource_id,
            issue_type: i.issue_type,
            detail: i.detail,
            created_at: i.created_at,
        }
    }
}

impl View for StatusReport {
    fn table(&self) -> String {
        let mut f = Fields::new();
        f.field(
            "database",
            format!(
                "{} (migrations current: {})",
                self.database.backend, self.database.migrations_current
            ),
        );
        let o = &self.outbox;
        f.field(
            "outbox",
            format!(
                "{} waiting, oldest {}, {} retrying, {} dead-lettered",
                o.depth,
                o.oldest(),
                o.retrying,
                o.dead
            ),
        );
        if o.dead > 0 {
            f.note("-> inspect with `scim-bridge outbox list --dead`, fix, then `scim-bridge outbox retry --all-dead`");
        }
        match &self.coder.url {
            None => {
                f.field(
                    "coder",
                    "not configured (SCIM changes are stored and queued, nothing is synced)",
                );
            }
            Some(url) => {
                f.field("coder", url);
                if let Some(c) = &self.coder.capabilities {
                    for line in c.text.lines() {
                        f.note(line);
                    }
                    if !c.groups_mirrored {
                        f.note("groups are NOT mirrored to Coder (they are kept for role mapping)");
                    }
                }
                if let Some(e) = &self.coder.error {
                    f.note(format!("UNREACHABLE or refused: {e}"));
                }
            }
        }
        if self.sync_issues.is_empty() {
            f.field("sync issues", "none");
        } else {
            f.field("sync issues", format!("{} open", self.sync_issues.len()));
            for i in &self.sync_issues {
                f.note(format!(
                    "- {} {} {}: {}",
                    i.kind, i.resource_id, i.issue_type, i.detail
                ));
            }
        }
        if let Some(webhook) = &self.audit_webhook {
            f.field("audit webhook", webhook.summary());
            if let Some(failing) = webhook.failing() {
                f.note(format!("FAILING: {failing}"));
            }
        }
        for w in &self.warnings {
            f.field("warning", w);
        }
        f.to_string()
    }
}

pub async fn run(settings: &Settings, args: StatusArgs) -> anyhow::Result<bool> {
    let store = super::open_store(settings).await?;
    let policy = crate::sync::policy(settings)?;
    let database = DatabaseStatus {
        backend: store.backend_name(),
        migrations_current: store.migrations_current().await?,
    };
    let outbox = OutboxSummary::from(store.outbox().stats().await?);
    let coder = match &settings.coder {
        None => CoderStatus {
            url: None,
            capabilities: None,
            error: None,
            token_expires_at: None,
        },
        Some(coder) => {
            let client = crate::sync::coder_client(coder, None, store.clock())?;
            let (capabilities, error) = match reconcile::capabilities::check(&client, &policy).await
            {
                Ok(report) => (Some(Capabilities::from(report)), None),
                Err(e) => (None, Some(e.to_string())),
            };
            // Only when Coder answered: the key id is the token's part before its dash.
            let token_expires_at = match (&capabilities, coder.token.key_id()) {
                (Some(_), Some(id)) => client.own_api_key(id).await.ok().map(|k| k.expires_at),
                _ => None,
            };
            CoderStatus {
                url: Some(coder.url.to_string()),
                capabilities,
                error,
                token_expires_at,
            }
        }
    };
    let sync_issues: Vec<IssueRow> = store
        .sync_issues()
        .list(false)
        .await?
        .into_iter()
        .map(IssueRow::from)
        .collect();
    let now = store.clock().now();
    let mut warnings = token_warnings(&store.tokens().list().await?, now);
    warnings.extend(coder.token_expires_at.and_then(|at| {
        expiry_warning(
            "the Coder token (SCIM_BRIDGE_CODER_TOKEN)",
            at,
            now,
            "make a new one for the bridge's owner account in Coder and replace it (docs/coder.md)",
        )
    }));
    let audit_webhook = match &settings.audit_webhook {
        Some(webhook) => {
            Some(crate::audit_webhook::WebhookStatus::read(&store, webhook, now).await?)
        }
        None => None,
    };
    let healthy = outbox.dead == 0
        && coder.error.is_none()
        && sync_issues.is_empty()
        && audit_webhook.as_ref().is_none_or(|w| w.failing().is_none());
    let report = StatusReport {
        healthy,
        database,
        outbox,
        coder,
        sync_issues,
        audit_webhook,
        warnings,
    };
    output::print(args.output.output, &report)?;
    Ok(healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn report(coder_answers: bool) -> StatusReport {
        let capabilities = reconcile::capabilities::CapabilityReport {
            coder_version: "v2.18.0".into(),
            identity: "scim-bridge".into(),
            is_owner: true,
            groups_licensed: false,
            groups_mirrored: false,
            coder_scim_enabled: false,
            organization_sync: false,
            group_sync_organizations: vec![],
            role_sync_organizations: vec!["platform".into()],
            warnings: vec![
                "role sync is on in platform: role changes for OIDC users answer 400".into(),
            ],
        };
        StatusReport {
            audit_webhook: None,
            healthy: false,
            database: DatabaseStatus {
                backend: "sqlite",
                migrations_current: true,
            },
            outbox: OutboxSummary {
                depth: 4,
                oldest_age_seconds: Some(12),
                retrying: 1,
                dead: 1,
            },
            coder: CoderStatus {
                url: Some("https://coder.example.com/".into()),
                capabilities: coder_answers.then(|| Capabilities::from(capabilities)),
                error: (!coder_answers)
                    .then(|| "Coder answered 401 Unauthorized: the token was refused".into()),
                token_expires_at: coder_answers.then(|| "2027-06-01T00:00:00Z".parse().unwrap()),
            },
            sync_issues: vec![IssueRow {
                kind: "User".into(),
                resource_id: "2c9f6a3e-0b1d-4c7a-9e8f-5a6b7c8d9e0f".into(),
                issue_type: "username_conflict".into(),
                detail: "Coder already has a user named alice that the bridge does not manage"
                    .into(),
                created_at: "2026-12-03T07:00:00Z".parse().unwrap(),
            }],
            warnings: vec!["IdP token 'okta' expires at 2026-12-10T00:00:00Z (in 6 day(s)): give the IdP a new one (`scim-bridge token create`), then revoke this one".into()],
        }
    }

    crate::output::snapshot_tests! {
        status_table => render(Format::Table, &report(true)).unwrap();
        status_table_when_coder_does_not_answer => render(Format::Table, &report(false)).unwrap();
    }

    #[test]
    fn tokens_warn_from_fourteen_days_before_they_expire() {
        let now: chrono::DateTime<chrono::Utc> = "2026-12-03T08:00:00Z".parse().unwrap();
        let token = |name: &str, days: Option<i64>, revoked: bool| store::TokenInfo {
            name: name.into(),
            scopes: store::Scopes::ALL,
            source: store::TokenSource::Cli,
            created_at: now,
            expires_at: days.map(|d| now + chrono::TimeDelta::days(d)),
            revoked_at: revoked.then_some(now),
            last_used_at: None,
        };
        let warnings = token_warnings(
            &[
                token("forever", None, false),
                token("later", Some(15), false),
                token("soon", Some(14), false),
                token("gone", Some(-1), false),
                token("revoked", Some(1), true),
            ],
            now,
        );
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("IdP token 'soon' expires at 2026-12-17T08:00:00Z (in 14 day(s))"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("IdP token 'gone' expired at 2026-12-02T08:00:00Z"),
            "{warnings:?}"
        );
    }

    #[test]
    fn status_json() {
        insta::assert_snapshot!(render(Format::Json, &report(true)).unwrap());
    }
}
