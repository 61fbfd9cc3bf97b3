//! `scim-bridge explain user|group ID-OR-NAME`: everything the bridge knows about one resource
//! in one place: the SCIM record as the IdP sent it, what the rules make of it and why, what
//! Coder holds, the outbox rows, open sync issues and the last audit records.
//!
//! Coder is asked only when a Coder URL is configured, and an unreachable Coder is reported in
//! the output: the stored half of the answer is what the operator needs most when Coder is down.

use chrono::{DateTime, Utc};
use reconcile::desired::{
    DesiredRoles, DesiredUser, GroupIdentity, LoginTypeSource, desired_roles,
};
use scim::ResourceKind;
use serde::Serialize;
use serde_json::{Map, Value};
use store::{GetOptions, OutboxFilter, Store, StoreError, StoredResource};

use super::outbox::OutboxRow;
use super::status::IssueRow;
use crate::config::Settings;
use crate::exit::{self, Exit};
use crate::output::{self, Fields, OutputArgs, Row, View};

/// How many audit records of the resource are shown, newest last.
const AUDIT_RECORDS: usize = 10;

/// What to explain; one variant per kind of resource the bridge manages.
#[derive(Debug, clap::Subcommand)]
pub enum ExplainKind {
    /// A SCIM User: by SCIM id or userName.
    User(Target),
    /// A SCIM Group: by SCIM id or displayName.
    Group(Target),
    /// An agent's owners, and why its service account is active or suspended (exit 1 when
    /// suspended).
    Agent(super::agent::AgentTarget),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The SCIM id, or the userName (User) / displayName (Group), ignoring case.
    pub id_or_name: String,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One role the rules give, and why.
#[derive(Debug, Serialize)]
struct RoleView {
    /// `site`, or the organization key of the rules (`default`, a name or an id).
    scope: String,
    role: String,
    /// `baseline`, or `rule N: group NAME (SCIM id)`.
    granted_by: String,
}

/// Every desired role with what grants it (the rule's group, an offered SCIM role or
/// entitlement, or the baseline), site roles first; an entitled organization membership shows as
/// its implied role `organization-member`.
fn role_views(roles: &DesiredRoles) -> Vec<RoleView> {
    let view =
        |scope: String, (role, sources): (&str, &std::collections::BTreeSet<String>)| RoleView {
            scope,
            role: role.to_owned(),
            granted_by: sources.iter().cloned().collect::<Vec<_>>().join("; "),
        };
    let site = roles
        .site_sources()
        .into_iter()
        .map(|r| view("site".to_owned(), r));
    let org = roles.organizations().into_iter().flat_map(|org| {
        roles
            .org_sources(org)
            .into_iter()
            .map(move |r| view(format!("org:{org}"), r))
    });
    site.chain(org).collect()
}

fn login_type_source(source: &LoginTypeSource) -> String {
    match source {
        LoginTypeSource::Default => "default ([users] login_type)".into(),
        LoginTypeSource::EmailDomain { index, domain } => {
            format!(
                "[[users.login_type_overrides]] #{}: email domain {domain}",
                index + 1
            )
        }
        LoginTypeSource::Group { index, group } => format!(
            "[[users.login_type_overrides]] #{}: group {}",
            index + 1,
            group_name(group)
        ),
    }
}

/// `[users] allowed_email_domains`' verdict on the desired user, as the worker reaches it.
fn email_domain(policy: &reconcile::Policy, desired: &DesiredUser, mapped: bool) -> String {
    use reconcile::desired::{EmailDomainVerdict, email_domain_issue, email_domain_verdict};
    match email_domain_verdict(policy, desired) {
        EmailDomainVerdict::Allowed => "allowed".into(),
        EmailDomainVerdict::NotChecked(why) => format!("not checked: {why}"),
        EmailDomainVerdict::Outside => {
            let provisioned = mapped
                || policy.users.outside_domain == reconcile::policy::OutsideDomain::Provision;
            format!(
                "outside: {}",
                email_domain_issue(policy, desired, provisioned).unwrap_or_default()
            )
        }
    }
}

fn group_name(g: &GroupIdentity) -> String {
    format!("{} ({})", g.display_name.as_deref().unwrap_or("?"), g.id)
}

#[derive(Debug, Serialize)]
struct DesiredUserView {
    username_base: String,
    email: String,
    name: String,
    active: bool,
    login_type: &'static str,
    login_type_source: String,
    /// What `[users] allowed_email_domains` makes of the email: `allowed`, `outside: …` (Coder
    /// refuses the user's OIDC logins) or `not checked: …`.
    email_domain: String,
    roles: Vec<RoleView>,
}

/// What Coder holds, or why it is not shown.
#[derive(Debug, Serialize)]
struct CoderView {
    /// `not configured`, `not reachable`, `not mapped`, `missing` or `found`.
    state: &'static str,
    detail: Option<String>,
    /// The Coder user or group, as Coder reports it.
    object: Option<Value>,
}

impl CoderView {
    fn state(state: &'static str, detail: Option<String>) -> CoderView {
        CoderView {
            state,
            detail,
            object: None,
        }
    }

    fn describe(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.state),
            None => self.state.to_owned(),
        }
    }
}

#[derive(Debug, Serialize)]
struct AuditLine {
    seq: i64,
    time: DateTime<Utc>,
    actor: Option<String>,
    operation: String,
    result: String,
    change: Value,
}

impl Row for AuditLine {
    const HEADERS: &'static [&'static str] = &["SEQ", "TIME", "ACTOR", "OPERATION", "RESULT"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.seq.to_string(),
            output::time(self.time),
            self.actor.clone().unwrap_or_else(|| "-".into()),
            self.operation.clone(),
            self.result.clone(),
        ]
    }
}

/// `explain user|group`: one object, whatever the kind; kind-specific parts are absent
/// (`null`) for the other kind.
#[derive(Debug, Serialize)]
struct Explanation {
    kind: &'static str,
    id: String,
    /// userName or displayName.
    name: String,
    created: DateTime<Utc>,
    /// When the IdP's last change was stored.
    last_modified: DateTime<Utc>,
    /// The stored attributes, as the IdP sent them (normalised, no password).
    scim: Map<String, Value>,
    /// A User's groups or a Group's members: SCIM ids with their display names.
    related: Vec<Value>,
    /// A User's desired Coder state; `None` when not provisionable (see `not_provisionable`).
    desired_user: Option<DesiredUserView>,
    not_provisionable: Option<String>,
    /// A Group's desired Coder name, and the roles its members get through it.
    desired_group_name: Option<String>,
    roles_granted_to_members: Vec<RoleView>,
    /// The stored mapping to the Coder object.
    mapping: Option<Value>,
    coder: CoderView,
    outbox: Vec<OutboxRow>,
    sync_issues: Vec<IssueRow>,
    audit: Vec<AuditLine>,
}

impl View for Explanation {
    fn table(&self) -> String {
        let mut f = Fields::new();
        f.field(self.kind, format!("{} ({})", self.name, self.id))
            .field("last IdP change", output::time(self.last_modified));
        for (key, value) in &self.scim {
            f.field(&format!("scim {key}"), value);
        }
        if !self.related.is_empty() {
            let label = if self.kind == "User" {
                "groups"
            } else {
                "members"
            };
            let names: Vec<String> = self
                .related
                .iter()
                .map(|r| {
                    r.get("display")
                        .and_then(Value::as_str)
                        .or_else(|| r.get("value").and_then(Value::as_str))
                        .unwrap_or("?")
                        .to_owned()
                })
                .collect();
            f.field(label, names.join(", "));
        }
        if let Some(why) = &self.not_provisionable {
            f.field("desired", format!("not provisionable: {why}"));
        }
        if let Some(d) = &self.desired_user {
            f.field(
                "desired",
                format!(
                    "{} <{}>, {}, login_type {}",
                    d.username_base,
                    d.email,
                    if d.active { "active" } else { "suspended" },
                    d.login_type
                ),
            )
            .field("login_type from", &d.login_type_source)
            .field("email domain", &d.email_domain);
            roles(&mut f, "desired roles", &d.roles);
        }
        if let Some(name) = &self.desired_group_name {
            f.field("desired", format!("Coder group {name}"));
            roles(&mut f, "grants members", &self.roles_granted_to_members);
        }
        f.field("coder", self.coder.describe());
        if let Some(object) = &self.coder.object {
            f.note(object);
        }
        f.field("outbox", format!("{} row(s)", self.outbox.len()));
        for r in &self.outbox {
            let state = if r.dead_at.is_some() {
                "dead"
            } else {
                "pending"
            };
            f.note(format!(
                "#{} {state}, {} attempt(s){}",
                r.id,
                r.attempts,
                r.reason
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        f.field("sync issues", format!("{} open", self.sync_issues.len()));
        for i in &self.sync_issues {
            f.note(format!("- {}: {}", i.issue_type, i.detail));
        }
        let mut text = f.to_string();
        text.push_str(&format!("\nlast {} audit record(s):\n", self.audit.len()));
        if !self.audit.is_empty() {
            text.push_str(&self.audit.table());
        }
        text
    }
}

fn roles(f: &mut Fields, label: &str, roles: &[RoleView]) {
    if roles.is_empty() {
        f.field(label, "none (member only)");
    }
    for (i, r) in roles.iter().enumerate() {
        let line = format!("{} {} <- {}", r.scope, r.role, r.granted_by);
        if i == 0 {
            f.field(label, line);
        } else {
            f.note(line);
        }
    }
}

/// Ok(false) when the answer is "no" (an agent is suspended).
pub async fn run(settings: &Settings, kind: ExplainKind) -> anyhow::Result<bool> {
    let (kind, target) = match kind {
        ExplainKind::User(t) => (ResourceKind::User, t),
        ExplainKind::Group(t) => (ResourceKind::Group, t),
        ExplainKind::Agent(target) => return super::agent::explain(settings, target).await,
    };
    let store = super::open_store(settings).await?;
    let policy = crate::sync::policy(settings)?;
    let resource = find(&store, kind, &target.id_or_name).await?;
    let client = match &settings.coder {
        Some(coder) => Some(crate::sync::coder_client(coder, None, store.clock())?),
        None => None,
    };
    let mut view = match kind {
        ResourceKind::User => user(&store, &policy, client.as_ref(), resource).await?,
        ResourceKind::Group => group(&store, &policy, client.as_ref(), resource).await?,
        ResourceKind::Agent | ResourceKind::AgenticApplication => {
            unreachable!("agents are explained by commands::agent")
        }
    };
    view.outbox = store
        .outbox()
        .list(OutboxFilter::All, u32::MAX)
        .await?
        .into_iter()
        .filter(|e| e.kind == kind && e.resource_id == view.id)
        .map(OutboxRow::from)
        .collect();
    view.sync_issues = store
        .sync_issues()
        .list(false)
        .await?
        .into_iter()
        .filter(|i| i.kind == kind.name() && i.resource_id == view.id)
        .map(IssueRow::from)
        .collect();
    // Nothing about a resource predates its creation: read the trail from there.
    let mut audit: Vec<AuditLine> = store
        .audit()
        .export(Some(view.created - chrono::Duration::seconds(1)))
        .await?
        .into_iter()
        .filter(|r| r.resource_id.as_deref() == Some(view.id.as_str()))
        .map(|r| AuditLine {
            seq: r.seq,
            time: r.time,
            actor: r.actor,
            operation: r.operation,
            result: r.result,
            change: r.change,
        })
        .collect();
    view.audit = audit.split_off(audit.len().saturating_sub(AUDIT_RECORDS));
    output::print(target.output.output, &view)?;
    Ok(true)
}

/// The resource with this SCIM id, or else with this userName / displayName (ignoring case).
async fn find(
    store: &Store,
    kind: ResourceKind,
    id_or_name: &str,
) -> anyhow::Result<StoredResource> {
    let options = GetOptions {
        members: kind == ResourceKind::Group,
        groups: kind == ResourceKind::User,
    };
    match store.resources().get(kind, id_or_name, options).await {
        Ok(found) => return Ok(found),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let attribute = match kind {
        ResourceKind::User => "userName",
        ResourceKind::Group => "displayName",
        ResourceKind::Agent => "agentUserName",
        ResourceKind::AgenticApplication => "name",
    };
    // A SCIM string literal is a JSON string (RFC 7644 §3.4.2.2).
    let literal = serde_json::to_string(id_or_name)?;
    let query = scim::query::ListQuery::from_params(&[(
        "filter".to_owned(),
        format!("{attribute} eq {literal}"),
    )])
    .map_err(|e| exit::usage(format!("'{id_or_name}': {}", e.detail)))?;
    let page = store.resources().list(kind, &query, options).await?;
    page.items.into_iter().next().ok_or_else(|| {
        exit::with(
            Exit::Failed,
            anyhow::anyhow!(
                "no SCIM {} has the id or {attribute} '{id_or_name}'",
                kind.name()
            ),
        )
    })
}

fn base(resource: &StoredResource, name: String, coder: CoderView) -> Explanation {
    Explanation {
        kind: resource.kind.name(),
        id: resource.id.clone(),
        name,
        created: resource.created,
        last_modified: resource.last_modified,
        scim: resource.attrs.clone(),
        related: Vec::new(),
        desired_user: None,
        not_provisionable: None,
        desired_group_name: None,
        roles_granted_to_members: Vec::new(),
        mapping: None,
        coder,
        outbox: Vec::new(),
        sync_issues: Vec::new(),
        audit: Vec::new(),
    }
}

/// What Coder says of the object `mapped` to (its id), or why there is no answer: never an
/// error for the whole command.
async fn ask_coder<T: Serialize>(
    client: Option<&coder::CoderClient>,
    mapped: Option<uuid::Uuid>,
    call: impl AsyncFnOnce(&coder::CoderClient, uuid::Uuid) -> Result<T, coder::CoderError>,
) -> CoderView {
    let Some(client) = client else {
        return CoderView::state(
            "not configured",
            Some("SCIM_BRIDGE_CODER_URL is not set".into()),
        );
    };
    let Some(id) = mapped else {
        return CoderView::state(
            "not mapped",
            Some("the bridge has no Coder object for this resource yet".into()),
        );
    };
    match call(client, id).await {
        Ok(object) => CoderView {
            state: "found",
            detail: None,
            object: serde_json::to_value(object).ok(),
        },
        Err(e) if e.is_not_found() => CoderView::state(
            "missing",
            Some("the mapped Coder object no longer exists".into()),
        ),
        Err(e) => CoderView::state("not reachable", Some(e.to_string())),
    }
}

async fn user(
    store: &Store,
    policy: &reconcile::Policy,
    client: Option<&coder::CoderClient>,
    resource: StoredResource,
) -> anyhow::Result<Explanation> {
    let mapping = store.coder_map().user_get(&resource.id).await?;
    let mapped = mapping.as_ref().map(|m| m.coder_user_id);
    let coder = ask_coder(client, mapped, async |c: &coder::CoderClient, id| {
        let user = c.user(id).await?;
        let roles = c.user_roles(id).await?;
        Ok(serde_json::json!({
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "status": user.status,
            "login_type": user.login_type,
            "site_roles": roles.roles,
            "organization_roles": roles.organization_roles,
        }))
    })
    .await;
    let explained =
        reconcile::explain::explain_user(&store.resources().reader(), policy, resource).await?;
    let r = &explained.resource;
    let mut view = base(
        r,
        scim::resource::user_name(&r.attrs)
            .unwrap_or_default()
            .to_owned(),
        coder,
    );
    view.related = related(r.groups.iter().flatten().map(|g| (&g.value, &g.display)));
    view.mapping = mapping.map(|m| {
        serde_json::json!({
            "coder_user_id": m.coder_user_id,
            "coder_username": m.coder_username,
            "login_type": m.login_type,
            "adopted": m.adopted,
            "updated_at": m.updated_at,
        })
    });
    match &explained.desired {
        Ok(d) => {
            view.desired_user = Some(DesiredUserView {
                username_base: d.username_base.clone(),
                email: d.email.clone(),
                name: d.name.clone(),
                active: d.active,
                login_type: d.login_type.as_str(),
                login_type_source: explained
                    .login_type_source
                    .as_ref()
                    .map(login_type_source)
                    .unwrap_or_default(),
                email_domain: email_domain(policy, d, view.mapping.is_some()),
                roles: role_views(&d.roles),
            })
        }
        Err(why) => view.not_provisionable = Some(why.0.clone()),
    }
    Ok(view)
}

async fn group(
    store: &Store,
    policy: &reconcile::Policy,
    client: Option<&coder::CoderClient>,
    resource: StoredResource,
) -> anyhow::Result<Explanation> {
    let mapping = store.coder_map().group_get(&resource.id).await?;
    let mapped = mapping.as_ref().map(|m| m.coder_group_id);
    let coder = ask_coder(client, mapped, async |c: &coder::CoderClient, id| {
        let g = c.group(id).await?;
        Ok(serde_json::json!({
            "id": g.id,
            "name": g.name,
            "display_name": g.display_name,
            "organization_id": g.organization_id,
            "members": g.members.iter().map(|m| &m.username).collect::<Vec<_>>(),
        }))
    })
    .await;
    let desired = reconcile::desired::desired_group(
        &resource.id,
        &resource.attrs,
        resource.members.as_deref().unwrap_or_default(),
    );
    let identity = GroupIdentity::from_attrs(&resource.id, &resource.attrs);
    let mut view = base(&resource, desired.display_name.clone(), coder);
    view.related = related(
        resource
            .members
            .iter()
            .flatten()
            .map(|m| (&m.value, &m.display)),
    );
    view.desired_group_name = Some(desired.name);
    // The roles a member gets through this group alone (no baseline, no SCIM roles).
    view.roles_granted_to_members = role_views(&desired_roles(policy, &Map::new(), &[identity]))
        .into_iter()
        .filter(|r| r.granted_by != "baseline")
        .collect();
    view.mapping = mapping.map(|m| {
        serde_json::json!({
            "coder_group_id": m.coder_group_id,
            "organization_id": m.organization_id,
            "coder_name": m.coder_name,
            "updated_at": m.updated_at,
        })
    });
    Ok(view)
}

fn related<'a>(items: impl Iterator<Item = (&'a String, &'a Option<String>)>) -> Vec<Value> {
    items
        .map(|(value, display)| serde_json::json!({ "value": value, "display": display }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn alice() -> Explanation {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut scim = Map::new();
        scim.insert("userName".into(), json!("alice@corp.example"));
        scim.insert("active".into(), json!(true));
        Explanation {
            kind: "User",
            id: "u-1".into(),
            name: "alice@corp.example".into(),
            created: at("2026-12-01T09:00:00Z"),
            last_modified: at("2026-12-02T10:30:00Z"),
            scim,
            related: related([(&"g-1".to_owned(), &Some("coder-admins".to_owned()))].into_iter()),
            desired_user: Some(DesiredUserView {
                username_base: "alice".into(),
                email: "alice@corp.example".into(),
                name: String::new(),
                active: true,
                login_type: "oidc",
                login_type_source: login_type_source(&LoginTypeSource::Default),
                email_domain: "allowed".into(),
                roles: vec![RoleView {
                    scope: "site".into(),
                    role: "owner".into(),
                    granted_by: "group rule \"coder-admins\"".into(),
                }],
            }),
            not_provisionable: None,
            desired_group_name: None,
            roles_granted_to_members: Vec::new(),
            mapping: None,
            coder: CoderView::state("not reachable", Some("connection refused".into())),
            outbox: Vec::new(),
            sync_issues: Vec::new(),
            audit: vec![AuditLine {
                seq: 7,
                time: at("2026-12-02T10:30:00Z"),
                actor: Some("okta".into()),
                operation: "PATCH /Users/u-1".into(),
                result: "ok".into(),
                change: json!({}),
            }],
        }
    }

    use serde_json::json;

    crate::output::snapshot_tests! {
        explain_user_table => render(Format::Table, &alice()).unwrap();
        explain_user_json => render(Format::Json, &alice()).unwrap();
    }

    /// A group whose rule makes its members owners, mapped, with a sync issue.
    fn admins() -> Explanation {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let mut scim = Map::new();
        scim.insert("displayName".into(), json!("coder-admins"));
        Explanation {
            kind: "Group",
            id: "g-1".into(),
            name: "coder-admins".into(),
            created: at("2026-12-01T09:00:00Z"),
            last_modified: at("2026-12-02T11:00:00Z"),
            scim,
            related: related(
                [
                    (&"u-1".to_owned(), &Some("alice@corp.example".to_owned())),
                    (&"u-2".to_owned(), &None),
                ]
                .into_iter(),
            ),
            desired_user: None,
            not_provisionable: None,
            desired_group_name: Some("coder-admins".into()),
            roles_granted_to_members: vec![RoleView {
                scope: "site".into(),
                role: "owner".into(),
                granted_by: "group rule \"coder-admins\"".into(),
            }],
            mapping: Some(
                json!({ "coder_group_id": "7f0e8d2c-0000-4000-8000-000000000001", "coder_name": "coder-admins" }),
            ),
            coder: CoderView::state("not configured", None),
            outbox: Vec::new(),
            sync_issues: vec![IssueRow {
                kind: "Group".into(),
                resource_id: "g-1".into(),
                issue_type: "group_name_conflict".into(),
                detail: "Coder group coder-admins exists and the bridge did not create it".into(),
                created_at: at("2026-12-02T11:00:05Z"),
            }],
            audit: Vec::new(),
        }
    }

    crate::output::snapshot_tests! {
        explain_group_table => render(Format::Table, &admins()).unwrap();
        explain_group_json => render(Format::Json, &admins()).unwrap();
    }
}
