//! `scim-bridge report access`: who holds which Coder role, and what grants it.
//!
//! One row per account and role: first every SCIM User and Agent (by userName), each with a
//! `member` row (every Coder account holds it) and then its site and organization roles, the
//! union of what the rules grant and what Coder holds (`in_coder` tells them apart: a role the
//! rules grant that Coder lacks yet is `false`; a role Coder holds that no rule grants says so
//! in `granted_by`); then the Coder accounts no SCIM resource manages (orphans, by username),
//! with what `[orphans]` does with them. Coder is read only: the user list, the organizations,
//! and each listed account's roles (`GET /users/{user}/roles`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use coder::types::{Organization, User, UserRoles};
use reconcile::desired::{DesiredUser, NotProvisionable};
use reconcile::orphans::Orphan;
use reconcile::policy::OrganizationRef;
use scim::ResourceKind;
use serde::Serialize;
use store::{GetOptions, StoredResource};
use uuid::Uuid;

use super::{ReportArgs, ReportRow, csv_time};
use crate::config::Settings;
use crate::exit::{self, Exit};
use crate::output::{self, Row};

/// One account's role.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRow {
    /// The SCIM userName (an Agent's agentUserName); empty for an orphan.
    pub user: String,
    /// The SCIM id; empty for an orphan.
    pub scim_id: String,
    /// The Coder username; empty when the account is not in Coder.
    pub coder_username: String,
    /// `scim` (a User), `scim agent` (an Agent), or `orphan`.
    pub managed_by: &'static str,
    /// `site`, or `org:NAME`.
    pub scope: String,
    pub role: String,
    /// `SCIM User`/`SCIM Agent` for membership, `baseline`, `group rule "NAME"`, `SCIM role
    /// "ID"`, `[agents] …`, several joined by `; `; or why nothing does.
    pub granted_by: String,
    /// Whether Coder holds the role now.
    pub in_coder: bool,
    /// Coder's status (`active`, `dormant`, `suspended`), or `not in Coder`.
    pub status: String,
    /// Whether the IdP says the user is active; `None` for an orphan.
    pub scim_active: Option<bool>,
    /// Coder's login type, or the one the policy would give.
    pub login_type: String,
    /// When the IdP's last change to the resource was stored; `None` for an orphan.
    pub last_idp_change: Option<DateTime<Utc>>,
}

impl Row for AccessRow {
    const HEADERS: &'static [&'static str] = &[
        "USER",
        "CODER USER",
        "MANAGED BY",
        "SCOPE",
        "ROLE",
        "GRANTED BY",
        "IN CODER",
        "STATUS",
        "LOGIN TYPE",
        "LAST IDP CHANGE",
    ];
    fn cells(&self) -> Vec<String> {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".into()
            } else {
                s.to_owned()
            }
        };
        vec![
            dash(&self.user),
            dash(&self.coder_username),
            self.managed_by.into(),
            self.scope.clone(),
            self.role.clone(),
            self.granted_by.clone(),
            if self.in_coder { "yes" } else { "no" }.into(),
            self.status.clone(),
            self.login_type.clone(),
            output::maybe_time(self.last_idp_change),
        ]
    }
}

impl ReportRow for AccessRow {
    const CSV_HEADERS: &'static [&'static str] = &[
        "user",
        "scim_id",
        "coder_username",
        "managed_by",
        "scope",
        "role",
        "granted_by",
        "in_coder",
        "status",
        "scim_active",
        "login_type",
        "last_idp_change",
    ];
    fn csv(&self) -> Vec<String> {
        vec![
            self.user.clone(),
            self.scim_id.clone(),
            self.coder_username.clone(),
            self.managed_by.into(),
            self.scope.clone(),
            self.role.clone(),
            self.granted_by.clone(),
            self.in_coder.to_string(),
            self.status.clone(),
            self.scim_active.map(|a| a.to_string()).unwrap_or_default(),
            self.login_type.clone(),
            csv_time(self.last_idp_change),
        ]
    }
}

/// A stored User or Agent, what the rules make of it, and its Coder account with its roles.
pub struct Account {
    pub resource: StoredResource,
    pub desired: Result<DesiredUser, NotProvisionable>,
    pub coder: Option<(User, UserRoles)>,
}

/// Everything the report is made of.
pub struct AccessInput {
    pub accounts: Vec<Account>,
    pub orphans: Vec<(Orphan, UserRoles)>,
    pub organizations: Vec<Organization>,
}

fn lower_debug(value: impl std::fmt::Debug) -> String {
    format!("{value:?}").to_lowercase()
}

/// `org:NAME` for a Coder organization id, or `org:ID` when it is not listed.
fn org_label(organizations: &[Organization], id: Uuid) -> String {
    organizations
        .iter()
        .find(|o| o.id == id)
        .map_or_else(|| format!("org:{id}"), |o| format!("org:{}", o.name))
}

/// The roles one account holds or should hold: scope → role → (sources, in Coder).
type Roles = BTreeMap<(u8, String), BTreeMap<String, (BTreeSet<String>, bool)>>;

fn site() -> (u8, String) {
    (0, "site".into())
}

fn roles_of(account_roles: Option<&UserRoles>, organizations: &[Organization]) -> Roles {
    let mut roles = Roles::new();
    let Some(held) = account_roles else {
        return roles;
    };
    for role in &held.roles {
        roles
            .entry(site())
            .or_default()
            .entry(role.clone())
            .or_default()
            .1 = true;
    }
    for (org, names) in &held.organization_roles {
        // Membership is implied, as `member` is for site roles.
        for name in names.iter().filter(|n| *n != "organization-member") {
            roles
                .entry((1, org_label(organizations, *org)))
                .or_default()
                .entry(name.clone())
                .or_default()
                .1 = true;
        }
    }
    roles
}

fn rows_of(
    roles: Roles,
    base: &AccessRow,
    membership: (String, bool),
    ungranted: &str,
) -> Vec<AccessRow> {
    let mut rows = vec![AccessRow {
        scope: "site".into(),
        role: "member".into(),
        granted_by: membership.0,
        in_coder: membership.1,
        ..base.clone()
    }];
    for ((_, scope), by_role) in roles {
        for (role, (sources, in_coder)) in by_role {
            let granted_by = if sources.is_empty() {
                ungranted.to_owned()
            } else {
                sources.into_iter().collect::<Vec<_>>().join("; ")
            };
            rows.push(AccessRow {
                scope: scope.clone(),
                role,
                granted_by,
                in_coder,
                ..base.clone()
            });
        }
    }
    rows
}

/// A User's userName, an Agent's agentUserName.
fn account_name(r: &StoredResource) -> &str {
    match r.kind {
        ResourceKind::Agent => scim::resource::agent_user_name(&r.attrs),
        _ => scim::resource::user_name(&r.attrs),
    }
    .unwrap_or_default()
}

fn account_rows(account: &Account, organizations: &[Organization]) -> Vec<AccessRow> {
    let r = &account.resource;
    let (kind_name, managed_by) = match r.kind {
        ResourceKind::Agent => ("SCIM Agent", "scim agent"),
        _ => ("SCIM User", "scim"),
    };
    let user = account_name(r).to_owned();
    let coder_user = account.coder.as_ref().map(|(u, _)| u);
    let base = AccessRow {
        user,
        scim_id: r.id.clone(),
        coder_username: coder_user.map(|u| u.username.clone()).unwrap_or_default(),
        managed_by,
        scope: String::new(),
        role: String::new(),
        granted_by: String::new(),
        in_coder: false,
        status: coder_user.map_or_else(|| "not in Coder".into(), |u| lower_debug(u.status)),
        scim_active: Some(scim::resource::active(&r.attrs)),
        login_type: match (coder_user, &account.desired) {
            (Some(u), _) => lower_debug(u.login_type),
            (None, Ok(d)) => d.login_type.as_str().to_owned(),
            (None, Err(_)) => "-".into(),
        },
        last_idp_change: Some(r.last_modified),
    };
    let mut roles = roles_of(account.coder.as_ref().map(|(_, r)| r), organizations);
    let membership = match &account.desired {
        Ok(desired) => {
            for (role, sources) in desired.roles.site_sources() {
                let entry = roles.entry(site()).or_default().entry(role.to_owned());
                entry.or_default().0.extend(sources.iter().cloned());
            }
            for key in desired.roles.org.keys() {
                let scope = match reconcile::capabilities::resolve_organization(
                    organizations,
                    &OrganizationRef::parse(key),
                ) {
                    Some(org) => format!("org:{}", org.name),
                    None => format!("org:{key}"),
                };
                for (role, sources) in desired.roles.org_sources(key) {
                    let entry = roles
                        .entry((1, scope.clone()))
                        .or_default()
                        .entry(role.to_owned());
                    entry.or_default().0.extend(sources.iter().cloned());
                }
            }
            kind_name.to_owned()
        }
        Err(why) => format!("not provisionable: {why}"),
    };
    rows_of(
        roles,
        &base,
        (membership, coder_user.is_some()),
        "no rule grants it (Coder holds it)",
    )
}

fn orphan_rows(
    orphan: &Orphan,
    roles: &UserRoles,
    organizations: &[Organization],
) -> Vec<AccessRow> {
    let why = format!(
        "no SCIM resource manages this account ([orphans]: {})",
        orphan.disposition.as_str()
    );
    let base = AccessRow {
        user: String::new(),
        scim_id: String::new(),
        coder_username: orphan.user.username.clone(),
        managed_by: "orphan",
        scope: String::new(),
        role: String::new(),
        granted_by: String::new(),
        in_coder: true,
        status: lower_debug(orphan.user.status),
        scim_active: None,
        login_type: lower_debug(orphan.user.login_type),
        last_idp_change: None,
    };
    rows_of(
        roles_of(Some(roles), organizations),
        &base,
        (why.clone(), true),
        &why,
    )
}

/// The report's rows: managed accounts by userName (then SCIM id), then orphans by username.
pub fn rows(input: &AccessInput) -> Vec<AccessRow> {
    let mut accounts: Vec<&Account> = input.accounts.iter().collect();
    accounts.sort_by_cached_key(|a| {
        (
            account_name(&a.resource).to_lowercase(),
            a.resource.id.clone(),
        )
    });
    let mut rows: Vec<AccessRow> = accounts
        .into_iter()
        .flat_map(|a| account_rows(a, &input.organizations))
        .collect();
    let mut orphans: Vec<&(Orphan, UserRoles)> = input.orphans.iter().collect();
    orphans.sort_by(|a, b| a.0.user.username.cmp(&b.0.user.username));
    rows.extend(
        orphans
            .into_iter()
            .flat_map(|(o, r)| orphan_rows(o, r, &input.organizations)),
    );
    rows
}

/// Read the store and Coder.
async fn gather(
    store: &store::Store,
    policy: &reconcile::Policy,
    client: &coder::CoderClient,
) -> anyhow::Result<AccessInput> {
    let coder_users: Vec<User> = client.list_all_users(None).await?;
    let bridge = client.identify().await?.user.id;
    let organizations = client.organizations().await?;
    let mappings: HashMap<String, Uuid> = store
        .coder_map()
        .user_list()
        .await?
        .into_iter()
        .map(|m| (m.scim_id, m.coder_user_id))
        .collect();
    let by_id: HashMap<Uuid, &User> = coder_users.iter().map(|u| (u.id, u)).collect();
    let by_email: HashMap<String, &User> = coder_users
        .iter()
        .filter(|u| !u.email.is_empty())
        .map(|u| (u.email.to_ascii_lowercase(), u))
        .collect();

    let reader = store.resources().reader();
    let mut resources = Vec::new();
    for kind in [ResourceKind::User, ResourceKind::Agent] {
        reconcile::drift::for_each_resource(
            &reader,
            kind,
            GetOptions {
                members: false,
                groups: true,
            },
            |r, _| resources.push(r),
        )
        .await?;
    }
    let mut accounts = Vec::with_capacity(resources.len());
    let mut claimed = HashSet::new();
    for resource in resources {
        let desired = reconcile::explain::desired_account(&reader, policy, &resource).await?;
        let email = desired.as_ref().ok().map(|d| d.email.to_ascii_lowercase());
        if let Some(email) = email.as_ref().filter(|e| !e.is_empty()) {
            claimed.insert(email.clone());
        }
        // The mapped account; before the first reconcile, the account with the user's email
        // (the one it adopts or is refused).
        let account = match mappings.get(&resource.id) {
            Some(id) => by_id.get(id).copied(),
            None => email.and_then(|e| by_email.get(&e).copied()),
        };
        let coder = match account {
            Some(user) => Some((user.clone(), client.user_roles(user.id).await?)),
            None => None,
        };
        accounts.push(Account {
            resource,
            desired,
            coder,
        });
    }
    let managed: HashSet<Uuid> = mappings.values().copied().collect();
    let mut orphans = Vec::new();
    for orphan in reconcile::orphans::find(
        &policy.orphans,
        coder_users.iter().cloned(),
        &managed,
        &claimed,
        bridge,
    ) {
        let roles = client.user_roles(orphan.user.id).await?;
        orphans.push((orphan, roles));
    }
    Ok(AccessInput {
        accounts,
        orphans,
        organizations,
    })
}

pub async fn run(settings: &Settings, args: ReportArgs) -> anyhow::Result<bool> {
    let store = super::super::open_store(settings).await?;
    let policy = crate::sync::policy(settings)?;
    let Some(coder) = &settings.coder else {
        return Err(exit::with(
            Exit::Config,
            anyhow::anyhow!(
                "SCIM_BRIDGE_CODER_URL: the access report reads Coder; set SCIM_BRIDGE_CODER_URL and SCIM_BRIDGE_CODER_TOKEN"
            ),
        ));
    };
    let client = crate::sync::coder_client(coder, None, store.clock())?;
    let spinner = output::spinner("reading Coder's users and roles");
    let input = gather(&store, &policy, &client).await;
    spinner.finish_and_clear();
    super::print(args.output, &rows(&input?))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::report::{ReportFormat, render};
    use coder::types::{LoginType, SlimRole, UserStatus};
    use reconcile::desired::{GroupIdentity, desired_user};
    use reconcile::orphans::OrphanDisposition;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn org(n: u128, name: &str, is_default: bool) -> Organization {
        Organization {
            id: Uuid::from_u128(n),
            name: name.into(),
            display_name: String::new(),
            is_default,
        }
    }

    fn coder_user(n: u128, username: &str, status: UserStatus, site: &[&str]) -> User {
        User {
            id: Uuid::from_u128(n),
            username: username.into(),
            email: format!("{username}@corp.example"),
            name: String::new(),
            status,
            login_type: LoginType::Oidc,
            organization_ids: vec![Uuid::from_u128(1)],
            roles: site
                .iter()
                .map(|r| SlimRole {
                    name: (*r).into(),
                    display_name: String::new(),
                    organization_id: String::new(),
                })
                .collect(),
            created_at: at("2026-11-01T00:00:00Z"),
            is_service_account: false,
        }
    }

    fn held(site: &[&str], org: &[(u128, &[&str])]) -> UserRoles {
        UserRoles {
            roles: site.iter().map(|r| (*r).to_owned()).collect(),
            organization_roles: org
                .iter()
                .map(|(id, names)| {
                    (
                        Uuid::from_u128(*id),
                        names.iter().map(|r| (*r).to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }

    fn stored(id: &str, attrs: serde_json::Value, changed: &str) -> StoredResource {
        StoredResource {
            kind: ResourceKind::User,
            id: id.into(),
            attrs: attrs.as_object().unwrap().clone(),
            version: 3,
            created: at("2026-11-01T00:00:00Z"),
            last_modified: at(changed),
            members: None,
            groups: None,
        }
    }

    /// Alice is an owner through a group rule and an org admin through another; Bob, in no
    /// group, was made `auditor` by hand in Coder; "Zoë, the new one" is not provisioned yet;
    /// `breakglass` and `stray` are accounts no SCIM resource manages.
    fn input() -> AccessInput {
        let policy = reconcile::Policy::from_toml(
            &r#"
            [roles]
            baseline_site_roles = ["template-admin"]
            [[roles.rules]]
            group = "coder-owners"
            site_roles = ["owner"]
            [[roles.rules]]
            group = "platform"
            org_roles = { platform = ["organization-admin"] }
            "#
            .parse()
            .unwrap(),
        )
        .unwrap();
        let groups = |names: &[&str]| -> Vec<GroupIdentity> {
            names
                .iter()
                .map(|n| GroupIdentity {
                    id: format!("g-{n}"),
                    display_name: Some((*n).to_owned()),
                    external_id: None,
                })
                .collect()
        };
        let account = |id: &str, attrs: serde_json::Value, g: &[&str], changed: &str| {
            let resource = stored(id, attrs, changed);
            let desired = desired_user(&policy, id, &resource.attrs, &groups(g));
            (resource, desired)
        };
        let (alice, alice_desired) = account(
            "u-alice",
            json!({ "userName": "alice@corp.example", "active": true }),
            &["coder-owners", "platform"],
            "2026-12-02T10:30:00Z",
        );
        let (bob, bob_desired) = account(
            "u-bob",
            json!({ "userName": "bob@corp.example", "active": false }),
            &[],
            "2026-12-01T08:00:00Z",
        );
        let (zoe, zoe_desired) = account(
            "u-zoe",
            json!({ "userName": "Zoë, \"the new one\"", "active": true, "emails": [{ "value": "zoe@corp.example", "primary": true }] }),
            &[],
            "2026-12-03T09:00:00Z",
        );
        AccessInput {
            accounts: vec![
                Account {
                    resource: zoe,
                    desired: zoe_desired,
                    coder: None,
                },
                Account {
                    resource: bob,
                    desired: bob_desired,
                    coder: Some((
                        coder_user(
                            20,
                            "bob",
                            UserStatus::Suspended,
                            &["template-admin", "auditor"],
                        ),
                        held(&["template-admin", "auditor"], &[]),
                    )),
                },
                Account {
                    resource: alice,
                    desired: alice_desired,
                    coder: Some((
                        coder_user(
                            10,
                            "alice",
                            UserStatus::Active,
                            &["owner", "template-admin"],
                        ),
                        held(
                            &["owner", "template-admin"],
                            &[(2, &["organization-member"])],
                        ),
                    )),
                },
            ],
            orphans: vec![
                (
                    Orphan {
                        user: coder_user(40, "stray", UserStatus::Dormant, &[]),
                        disposition: OrphanDisposition::Report,
                    },
                    held(&[], &[(1, &["organization-auditor"])]),
                ),
                (
                    Orphan {
                        user: coder_user(30, "breakglass", UserStatus::Active, &["owner"]),
                        disposition: OrphanDisposition::AllowListed,
                    },
                    held(&["owner"], &[]),
                ),
            ],
            organizations: vec![org(1, "coder", true), org(2, "platform", false)],
        }
    }

    crate::output::snapshot_tests! {
        report_access_table => render(ReportFormat::Table, &rows(&input())).unwrap();
        report_access_csv => render(ReportFormat::Csv, &rows(&input())).unwrap();
        report_access_json => render(ReportFormat::Json, &rows(&input())).unwrap();
    }

    #[test]
    fn an_empty_report_still_has_its_csv_header() {
        let rows: Vec<AccessRow> = Vec::new();
        assert_eq!(
            render(ReportFormat::Csv, &rows).unwrap(),
            "user,scim_id,coder_username,managed_by,scope,role,granted_by,in_coder,status,scim_active,login_type,last_idp_change\n"
        );
    }
}
