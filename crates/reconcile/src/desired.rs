//! The desired Coder state of a SCIM resource under the policy: pure functions of the stored
//! resource, the groups it belongs to and the mapping rules.

use crate::naming::{self, GROUP_DISPLAY_NAME_MAX, USER_NAME_MAX};
use crate::policy::{
    GroupSelector, LoginType, OutsideDomain, OverrideSelector, Policy, RoleRule, UsernameSource,
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A SCIM group as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIdentity {
    /// The SCIM id.
    pub id: String,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
}

impl GroupIdentity {
    /// From a stored Group's attributes.
    pub fn from_attrs(id: &str, attrs: &Map<String, Value>) -> GroupIdentity {
        GroupIdentity {
            id: id.to_owned(),
            display_name: scim::resource::display_name(attrs).map(str::to_owned),
            external_id: scim::resource::external_id(attrs).map(str::to_owned),
        }
    }

    fn is_named(&self, selector: &GroupSelector) -> bool {
        selector.matches(self.display_name.as_deref(), self.external_id.as_deref())
    }
}

/// The roles a user should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredRoles {
    /// Site roles (`member` implied, never listed).
    pub site: BTreeSet<String>,
    /// Organization roles by the organization key of the rules (`default`, a name or an id).
    /// Every organization some rule mentions is present, possibly empty: leaving a group must
    /// remove the roles it gave. Every organization of `[roles.grantable]` is present too: a
    /// role revoked in the IdP must leave Coder.
    pub org: BTreeMap<String, BTreeSet<String>>,
    /// What granted each role, for the audit: the role (`template-admin`, or
    /// `<organization>:<name>`) and its sources (`baseline`, `group rule "…"`, `SCIM role "…"`,
    /// `SCIM entitlement "…"` for `<organization>:organization-member`).
    pub granted_by: BTreeMap<String, BTreeSet<String>>,
    /// Membership of every organization `[entitlements.grantable]` offers, by its key: whether
    /// the user holds the entitlement. Present when not held too: a revoked entitlement must
    /// take the user out of the organization.
    pub memberships: BTreeMap<String, bool>,
}

/// Coder's implied role of an organization's members (it cannot be granted by PUT).
pub const ORGANIZATION_MEMBER: &str = "organization-member";

impl DesiredRoles {
    pub(crate) fn grant_site(&mut self, role: &str, source: &str) {
        self.site.insert(role.to_owned());
        self.note(role.to_owned(), source);
    }

    pub(crate) fn grant_org(&mut self, org: &str, role: &str, source: &str) {
        self.org
            .entry(org.to_owned())
            .or_default()
            .insert(role.to_owned());
        self.note(format!("{org}:{role}"), source);
    }

    fn note(&mut self, role: String, source: &str) {
        self.granted_by
            .entry(role)
            .or_default()
            .insert(source.to_owned());
    }

    /// The sources of the site roles (for the audit of a site-role change).
    pub fn site_sources(&self) -> BTreeMap<&str, &BTreeSet<String>> {
        self.site
            .iter()
            .filter_map(|r| self.granted_by.get(r).map(|s| (r.as_str(), s)))
            .collect()
    }

    /// The sources of the roles in organization `org` (its key in the rules), with
    /// `organization-member` when an entitlement grants the membership.
    pub fn org_sources(&self, org: &str) -> BTreeMap<&str, &BTreeSet<String>> {
        let member = self
            .memberships
            .get(org)
            .is_some_and(|held| *held)
            .then_some(ORGANIZATION_MEMBER);
        self.org
            .get(org)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain(member)
            .filter_map(|r| self.granted_by.get(&format!("{org}:{r}")).map(|s| (r, s)))
            .collect()
    }

    /// Every organization key with a role or a membership to converge.
    pub fn organizations(&self) -> BTreeSet<&str> {
        self.org
            .keys()
            .chain(self.memberships.keys())
            .map(String::as_str)
            .collect()
    }
}

/// The roles of a member of `groups` holding the SCIM `roles` and `entitlements` in `attrs`: the
/// union over the matching rules, the offered roles the user holds (`[roles.grantable]`) and the
/// baseline; and the offered organization memberships (`[entitlements.grantable]`) it holds.
pub fn desired_roles(
    policy: &Policy,
    attrs: &Map<String, Value>,
    groups: &[GroupIdentity],
) -> DesiredRoles {
    let mut roles = DesiredRoles::default();
    for role in &policy.roles.baseline_site_roles {
        roles.grant_site(role, "baseline");
    }
    apply_role_rules(&mut roles, &policy.roles.rules, groups);
    let grantable = &policy.roles.grantable;
    for org in grantable.organizations() {
        roles.org.entry(org.to_owned()).or_default();
    }
    for role in grantable.held(attrs) {
        let source = format!("SCIM role {:?}", role.id);
        match &role.organization {
            None => roles.grant_site(&role.value, &source),
            Some(org) => roles.grant_org(org, &role.value, &source),
        }
    }
    let entitlements = &policy.entitlements.grantable;
    for offered in entitlements.entitlements() {
        roles
            .memberships
            .insert(offered.organization_key().to_owned(), false);
    }
    for held in entitlements.held(attrs) {
        let org = held.organization_key();
        roles.memberships.insert(org.to_owned(), true);
        roles.note(
            format!("{org}:{ORGANIZATION_MEMBER}"),
            &format!("SCIM entitlement {:?}", held.id),
        );
    }
    roles
}

/// Add the roles of each rule naming one of `groups`, with the rule as their source; every
/// organization a rule mentions gets an entry, possibly empty.
pub(crate) fn apply_role_rules(
    roles: &mut DesiredRoles,
    rules: &[RoleRule],
    groups: &[GroupIdentity],
) {
    for rule in rules {
        let applies = groups.iter().any(|g| g.is_named(&rule.group));
        for org in rule.org_roles.keys() {
            roles.org.entry(org.clone()).or_default();
        }
        if !applies {
            continue;
        }
        let source = match &rule.group {
            GroupSelector::DisplayName(name) => format!("group rule {name:?}"),
            GroupSelector::ExternalId(id) => format!("group rule externalId {id:?}"),
        };
        for role in &rule.site_roles {
            roles.grant_site(role, &source);
        }
        for (org, names) in &rule.org_roles {
            for name in names {
                roles.grant_org(org, name, &source);
            }
        }
    }
}

/// Why a user gets its login type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginTypeSource {
    /// `[users] login_type`: no override matched.
    Default,
    /// The `[[users.login_type_overrides]]` entry at this index (0-based, file order) matched
    /// the email's domain.
    EmailDomain { index: usize, domain: String },
    /// The override at this index matched this group of the user.
    Group { index: usize, group: GroupIdentity },
}

/// The login type for a user with `email` in `groups`: the first matching override, else the
/// default.
pub fn desired_login_type(policy: &Policy, email: &str, groups: &[GroupIdentity]) -> LoginType {
    login_type_with_source(policy, email, groups).0
}

/// [`desired_login_type`] and the override (or default) it comes from.
pub fn login_type_with_source(
    policy: &Policy,
    email: &str,
    groups: &[GroupIdentity],
) -> (LoginType, LoginTypeSource) {
    let domain = crate::policy::email_domain(email).map(str::to_lowercase);
    policy
        .users
        .login_type_overrides
        .iter()
        .enumerate()
        .find_map(|(index, o)| {
            let source = match &o.selector {
                OverrideSelector::EmailDomain(d) => {
                    (domain.as_deref() == Some(d.as_str())).then(|| LoginTypeSource::EmailDomain {
                        index,
                        domain: d.clone(),
                    })
                }
                OverrideSelector::Group(name) => {
                    groups
                        .iter()
                        .find(|g| g.is_named(name))
                        .map(|g| LoginTypeSource::Group {
                            index,
                            group: g.clone(),
                        })
                }
            }?;
            Some((o.login_type, source))
        })
        .unwrap_or((policy.users.login_type, LoginTypeSource::Default))
}

/// A SCIM User as it should be in Coder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredUser {
    pub scim_id: String,
    /// The username before any collision suffix.
    pub username_base: String,
    pub email: String,
    /// Display name, trimmed and at most 128 characters; may be empty.
    pub name: String,
    pub active: bool,
    pub login_type: LoginType,
    pub roles: DesiredRoles,
    /// The SCIM groups of the user that some rule mentions (their ids, sorted): recorded with
    /// the mapping so a group's membership change finds the users whose roles it changed.
    pub rule_groups: Vec<String>,
    /// An agent: a Coder service account (no email, `login_type` `none`, Premium).
    pub service_account: bool,
}

/// Why a SCIM User cannot become a Coder user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotProvisionable(pub String);

/// The desired Coder user for a stored SCIM User in `groups` (its direct groups; only needed
/// when [`Policy::uses_groups`]).
pub fn desired_user(
    policy: &Policy,
    scim_id: &str,
    attrs: &Map<String, Value>,
    groups: &[GroupIdentity],
) -> Result<DesiredUser, NotProvisionable> {
    let user_name = scim::resource::user_name(attrs).unwrap_or_default();
    // Coder needs an email; Okta and Entra usually send the UPN/login as userName.
    let email = scim::resource::primary_email(attrs)
        .filter(|e| looks_like_email(e))
        .or(Some(user_name).filter(|u| looks_like_email(u)))
        .map(|e| e.trim().to_owned())
        .ok_or_else(|| {
            NotProvisionable("the user has neither an email nor an email-shaped userName".into())
        })?;
    let source = match policy.users.username_from {
        UsernameSource::UserName if !user_name.trim().is_empty() => user_name,
        _ => email.as_str(),
    };
    let name = scim::resource::name_formatted(attrs)
        .map(|n| naming::bounded_display(&n, USER_NAME_MAX))
        .unwrap_or_default();
    Ok(DesiredUser {
        scim_id: scim_id.to_owned(),
        username_base: naming::username_base(source),
        login_type: desired_login_type(policy, &email, groups),
        email,
        name,
        active: scim::resource::active(attrs),
        roles: desired_roles(policy, attrs, groups),
        rule_groups: rule_groups(policy, groups),
        service_account: false,
    })
}

/// The ids of the groups in `groups` that some rule mentions, sorted ([`DesiredUser::rule_groups`]).
pub(crate) fn rule_groups(policy: &Policy, groups: &[GroupIdentity]) -> Vec<String> {
    let mut ids: Vec<String> = groups
        .iter()
        .filter(|g| policy.mentions_group(g.display_name.as_deref(), g.external_id.as_deref()))
        .map(|g| g.id.clone())
        .collect();
    ids.sort();
    ids
}

/// How `[users] allowed_email_domains` sees a desired user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailDomainVerdict {
    /// Not looked at: no domain is listed, the user does not sign in by OIDC (Coder's
    /// `CODER_OIDC_EMAIL_DOMAIN` gates OIDC logins only), or it is a service account (no
    /// email). The reason, for `explain`.
    NotChecked(&'static str),
    /// The email's domain is listed.
    Allowed,
    /// The email's domain is not listed: Coder refuses the user's OIDC logins.
    Outside,
}

/// The verdict of `[users] allowed_email_domains` on `desired`.
pub fn email_domain_verdict(policy: &Policy, desired: &DesiredUser) -> EmailDomainVerdict {
    let users = &policy.users;
    if users.allowed_email_domains.is_empty() {
        EmailDomainVerdict::NotChecked("no [users] allowed_email_domains")
    } else if desired.service_account {
        EmailDomainVerdict::NotChecked("a service account has no email")
    } else if desired.login_type != LoginType::Oidc {
        EmailDomainVerdict::NotChecked("the user does not sign in by OIDC")
    } else if users.email_domain_allowed(&desired.email) {
        EmailDomainVerdict::Allowed
    } else {
        EmailDomainVerdict::Outside
    }
}

/// The sync issue of a user whose email is outside `[users] allowed_email_domains`, saying
/// whether its Coder account exists (`provisioned`), or `None` when the verdict is not
/// [`EmailDomainVerdict::Outside`].
pub fn email_domain_issue(
    policy: &Policy,
    desired: &DesiredUser,
    provisioned: bool,
) -> Option<String> {
    if email_domain_verdict(policy, desired) != EmailDomainVerdict::Outside {
        return None;
    }
    let users = &policy.users;
    let outcome = match (users.outside_domain, provisioned) {
        (OutsideDomain::Provision, _) => {
            "its Coder account is provisioned all the same ([users] outside_domain = \"provision\")"
        }
        (OutsideDomain::Skip, false) => {
            "no Coder account is created for it ([users] outside_domain = \"skip\")"
        }
        (OutsideDomain::Skip, true) => {
            "the Coder account the bridge already manages stays managed, offboarding included ([users] outside_domain = \"skip\")"
        }
    };
    Some(format!(
        "email {} is outside [users] allowed_email_domains ({}): Coder refuses OIDC logins whose email domain is not in CODER_OIDC_EMAIL_DOMAIN, so this user cannot sign in; {outcome}. Fix: correct the email in the IdP, or add its domain to CODER_OIDC_EMAIL_DOMAIN and to allowed_email_domains",
        desired.email,
        users.allowed_email_domains.join(", ")
    ))
}

fn looks_like_email(value: &str) -> bool {
    let value = value.trim();
    value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && !domain.is_empty() && !domain.contains('@')
    }) && !value.contains(char::is_whitespace)
}

/// A SCIM Group as it should be in Coder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub scim_id: String,
    /// The Coder group name (slug of the displayName).
    pub name: String,
    /// Trimmed, at most 64 characters.
    pub display_name: String,
    /// SCIM ids of the member Users and Agents (nested Groups are not members in Coder).
    pub member_user_ids: BTreeSet<String>,
}

/// The desired Coder group for a stored SCIM Group with its `members` loaded.
pub fn desired_group(
    scim_id: &str,
    attrs: &Map<String, Value>,
    members: &[store::Member],
) -> DesiredGroup {
    let display = scim::resource::display_name(attrs).unwrap_or(scim_id);
    DesiredGroup {
        scim_id: scim_id.to_owned(),
        name: naming::group_name(display),
        display_name: naming::bounded_display(display, GROUP_DISPLAY_NAME_MAX),
        member_user_ids: members
            .iter()
            // Agents join Coder groups as their service accounts do.
            .filter(|m| m.kind.has_groups())
            .map(|m| m.value.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Policy {
        Policy::from_toml(
            &include_str!("../tests/fixtures/policy.toml")
                .parse()
                .unwrap(),
        )
        .unwrap()
    }

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn group(id: &str, name: &str) -> GroupIdentity {
        GroupIdentity {
            id: id.into(),
            display_name: Some(name.into()),
            external_id: None,
        }
    }

    #[test]
    fn user_from_okta_shaped_resource() {
        let a = attrs(json!({
            "userName": "alice.smith@corp.com",
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "alice@corp.com", "primary": true}],
            "active": true
        }));
        let user = desired_user(&policy(), "u1", &a, &[]).unwrap();
        assert_eq!(user.username_base, "alice-smith");
        assert_eq!(user.email, "alice@corp.com");
        assert_eq!(user.name, "Alice Smith");
        assert!(user.active);
        assert_eq!(user.login_type, LoginType::Oidc);
        assert!(user.roles.site.is_empty());
        assert_eq!(user.roles.org["default"], BTreeSet::new());
    }

    #[test]
    fn email_falls_back_to_user_name_and_username_can_come_from_email() {
        let a =
            attrs(json!({"userName": "bob@corp.com", "displayName": "  Bob  ", "active": "False"}));
        let mut p = policy();
        let user = desired_user(&p, "u2", &a, &[]).unwrap();
        assert_eq!(user.email, "bob@corp.com");
        assert_eq!(user.name, "Bob");
        assert!(!user.active, "Entra's string boolean");
        p.users.username_from = UsernameSource::Email;
        let a = attrs(json!({"userName": "E12345", "emails": [{"value": "carol.d@corp.com"}]}));
        assert_eq!(
            desired_user(&p, "u3", &a, &[]).unwrap().username_base,
            "carol-d"
        );
        let a = attrs(json!({"userName": "E12345"}));
        assert!(desired_user(&p, "u4", &a, &[]).is_err());
    }

    #[test]
    fn login_type_overrides_first_match_wins() {
        let p = policy();
        assert_eq!(
            desired_login_type(&p, "x@Contractors.Example.com", &[]),
            LoginType::Github
        );
        assert_eq!(
            desired_login_type(&p, "x@corp.com", &[group("g", "GitHub-Users")]),
            LoginType::Github
        );
        assert_eq!(
            desired_login_type(&p, "x@corp.com", &[group("g", "devs")]),
            LoginType::Oidc
        );
    }

    #[test]
    fn email_domains_compare_whole_and_ignore_case_as_coder_does() {
        let mut p = policy();
        p.users.login_type_overrides.clear();
        p.users.allowed_email_domains = vec!["corp.example".into()];
        let user =
            |email: &str| desired_user(&p, "u", &attrs(json!({ "userName": email })), &[]).unwrap();
        for allowed in ["a@corp.example", "a@CORP.Example", "a+tag@corp.EXAMPLE"] {
            assert_eq!(
                email_domain_verdict(&p, &user(allowed)),
                EmailDomainVerdict::Allowed,
                "{allowed}"
            );
        }
        for outside in [
            "a@eu.corp.example",
            "a@evilcorp.example",
            "a@corp.example.evil",
            "a@other.example",
        ] {
            assert_eq!(
                email_domain_verdict(&p, &user(outside)),
                EmailDomainVerdict::Outside,
                "{outside}"
            );
            let issue = email_domain_issue(&p, &user(outside), true).unwrap();
            assert!(issue.contains("CODER_OIDC_EMAIL_DOMAIN"), "{issue}");
        }
        assert_eq!(email_domain_issue(&p, &user("a@corp.example"), true), None);
        let mut github = user("a@other.example");
        github.login_type = LoginType::Github;
        assert!(matches!(
            email_domain_verdict(&p, &github),
            EmailDomainVerdict::NotChecked(_)
        ));
        let mut agent = user("a@other.example");
        agent.service_account = true;
        assert_eq!(email_domain_issue(&p, &agent, false), None);
        let outside = user("a@other.example");
        p.users.allowed_email_domains.clear();
        assert!(matches!(
            email_domain_verdict(&p, &outside),
            EmailDomainVerdict::NotChecked(_)
        ));
    }

    #[test]
    fn roles_are_the_union_over_groups_plus_baseline() {
        let mut p = policy();
        p.roles.baseline_site_roles = vec!["auditor".into()];
        let groups = [
            group("a", "coder-admins"),
            group("b", "coder-template-admins"),
            group("c", "platform-agents"),
        ];
        let roles = desired_roles(&p, &Map::new(), &groups);
        assert_eq!(
            roles.site,
            BTreeSet::from(["auditor".into(), "owner".into(), "template-admin".into()])
        );
        assert_eq!(
            roles.org["default"],
            BTreeSet::from(["agents-access".into()])
        );
        // `group = "coder-admins"` names a displayName: an externalId that equals it does not
        // borrow the rule.
        let borrowing = [GroupIdentity {
            id: "z".into(),
            display_name: Some("Admins".into()),
            external_id: Some("coder-admins".into()),
        }];
        assert_eq!(
            desired_roles(&p, &Map::new(), &borrowing).site,
            BTreeSet::from(["auditor".into()]),
            "the baseline only"
        );
        let user = desired_user(&p, "u", &attrs(json!({"userName": "a@b.c"})), &groups).unwrap();
        assert_eq!(
            user.rule_groups,
            vec!["a".to_string(), "b".into(), "c".into()]
        );
    }

    #[test]
    fn scim_roles_join_the_rules_and_say_what_granted_them() {
        let mut p = policy();
        p.roles.grantable = scim::roles::RoleCatalog::new(vec![
            scim::roles::GrantableRole::site("template-admin"),
            scim::roles::GrantableRole::site("auditor"),
            scim::roles::GrantableRole::in_organization("Eng", "organization-admin"),
        ]);
        let a = attrs(json!({
            "userName": "a@b.c",
            "roles": [{"value": "template-admin"}, {"value": "Eng:organization-admin"}]
        }));
        let roles = desired_roles(&p, &a, &[group("b", "coder-template-admins")]);
        assert_eq!(roles.site, BTreeSet::from(["template-admin".into()]));
        assert_eq!(
            roles.org["Eng"],
            BTreeSet::from(["organization-admin".into()])
        );
        assert_eq!(
            roles.granted_by["template-admin"],
            BTreeSet::from([
                "SCIM role \"template-admin\"".to_string(),
                "group rule \"coder-template-admins\"".into()
            ])
        );
        assert_eq!(
            roles.org_sources("Eng")["organization-admin"],
            &BTreeSet::from(["SCIM role \"Eng:organization-admin\"".to_string()])
        );
        // Revoked in the IdP: the organization stays managed, now with no role.
        let revoked = attrs(json!({"userName": "a@b.c", "roles": []}));
        let roles = desired_roles(&p, &revoked, &[]);
        assert!(roles.site.is_empty());
        assert_eq!(roles.org["Eng"], BTreeSet::new());
    }

    #[test]
    fn scim_entitlements_grant_memberships_and_say_so() {
        use scim::entitlements::{EntitlementCatalog, GrantableEntitlement};
        let mut p = policy();
        p.entitlements.grantable = EntitlementCatalog::new(vec![
            GrantableEntitlement::organization("Eng"),
            GrantableEntitlement::organization("Research"),
        ]);
        let a = attrs(json!({
            "userName": "a@b.c",
            "entitlements": [{"value": "eng", "type": "Entitlement"}]
        }));
        let roles = desired_roles(&p, &a, &[]);
        assert_eq!(
            roles.memberships,
            BTreeMap::from([("Eng".into(), true), ("Research".into(), false)])
        );
        assert_eq!(
            roles.org_sources("Eng")[ORGANIZATION_MEMBER],
            &BTreeSet::from(["SCIM entitlement \"Eng\"".to_string()])
        );
        assert!(roles.org_sources("Research").is_empty());
        assert!(
            roles
                .organizations()
                .is_superset(&BTreeSet::from(["Eng", "Research"]))
        );
        // Revoked in the IdP: still managed, now not a member.
        let revoked = desired_roles(&p, &attrs(json!({"userName": "a@b.c"})), &[]);
        assert!(!revoked.memberships["Eng"]);
    }

    #[test]
    fn group_names_and_user_members() {
        let members = vec![
            store::Member {
                value: "u1".into(),
                kind: scim::ResourceKind::User,
                display: None,
            },
            store::Member {
                value: "g9".into(),
                kind: scim::ResourceKind::Group,
                display: None,
            },
        ];
        let g = desired_group(
            "g1",
            &attrs(json!({"displayName": " Platform Team "})),
            &members,
        );
        assert_eq!(g.name, "platform-team");
        assert_eq!(g.display_name, "Platform Team");
        assert_eq!(g.member_user_ids, BTreeSet::from(["u1".to_string()]));
    }
}
