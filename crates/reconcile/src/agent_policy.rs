//! `[agents]`: how agents become Coder service accounts, which SCIM Users count as agents, the
//! roles agents may hold, and the bounds on the API tokens minted for them.
//!
//! Least privilege by default: an agent holds no site role except those named here, and
//! `owner`, `user-admin` and `template-admin` are refused unless `allow_admin_roles = true`.
//! The roles `[roles]` gives people are never given to agents.

use crate::policy::{
    GroupSelector, PolicyError, RoleRule, RuleFile, check_org_roles, check_site_roles,
};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// Site roles an agent holds only with `[agents] allow_admin_roles = true`.
pub const ADMIN_SITE_ROLES: &[&str] = &["owner", "user-admin", "template-admin"];

/// The longest a minted agent token may live unless `[agents] max_token_lifetime` says otherwise.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// Scopes an agent token may carry unless `[agents] token_scopes` says otherwise: reach and run
/// workspaces, nothing that administers templates, users or the deployment.
pub const DEFAULT_TOKEN_SCOPES: &[&str] = &[
    "coder:workspaces.access",
    "coder:workspaces.operate",
    "workspace:read",
    "workspace:ssh",
    "workspace:application_connect",
];

/// Scopes a token gets when the command names none.
pub const DEFAULT_MINT_SCOPES: &[&str] = &["coder:workspaces.access"];

/// Which SCIM Users are agents (Entra's agent users and Okta's arrive as ordinary Users).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentUserRule {
    /// `user_type = "Agent"`: the User's `userType`, ignoring case.
    UserType(String),
    /// `group = "…"` / `group_external_id = "…"`: members of this SCIM group.
    Group(GroupSelector),
    /// `attribute = "urn:…:User:employeeType"`, `value = "agent"`: an attribute (an extension
    /// attribute by its full URN path, or a core one by name) equal to `value`, ignoring case.
    Attribute { path: String, value: String },
}

impl AgentUserRule {
    /// Whether the User with these attributes, in groups named by `in_group`, is an agent.
    fn matches(
        &self,
        attrs: &Map<String, Value>,
        in_group: &dyn Fn(&GroupSelector) -> bool,
    ) -> bool {
        match self {
            AgentUserRule::UserType(want) => text_at(attrs, "userType")
                .is_some_and(|have| have.trim().eq_ignore_ascii_case(want)),
            AgentUserRule::Group(selector) => in_group(selector),
            AgentUserRule::Attribute { path, value } => {
                text_at(attrs, path).is_some_and(|have| have.trim().eq_ignore_ascii_case(value))
            }
        }
    }
}

/// The value at `path` as text: `name` at the top level, or `urn:…:name` inside the extension
/// object `urn:…`. Booleans read as `true`/`false`.
fn text_at(attrs: &Map<String, Value>, path: &str) -> Option<String> {
    let found = match path.rsplit_once(':') {
        Some((urn, name)) if path.starts_with("urn:") => attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(urn))
            .and_then(|(_, ext)| ext.as_object())
            .and_then(|ext| lookup(ext, name)),
        _ => lookup(attrs, path),
    };
    match found? {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn lookup<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `[agents]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPolicy {
    /// Let agents hold `owner`, `user-admin` or `template-admin` when a rule names them.
    pub allow_admin_roles: bool,
    /// Reactivate an agent suspended because its owners left when an owner comes back.
    pub reactivate_with_owner: bool,
    /// The longest lifetime `scim-bridge agent token` mints.
    pub max_token_lifetime: Duration,
    /// The scopes `scim-bridge agent token` may ask for.
    pub token_scopes: Vec<String>,
    /// Site roles every agent holds.
    pub site_roles: Vec<String>,
    /// Organization roles every agent holds, by organization (`default`, a name or an id).
    pub org_roles: BTreeMap<String, Vec<String>>,
    /// `[[agents.rules]]`: roles for agents in a SCIM group.
    pub rules: Vec<RoleRule>,
    /// `[[agents.users]]`: which SCIM Users are agents (any rule matching is enough).
    pub users: Vec<AgentUserRule>,
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy {
            allow_admin_roles: false,
            reactivate_with_owner: false,
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            token_scopes: DEFAULT_TOKEN_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            site_roles: Vec::new(),
            org_roles: BTreeMap::new(),
            rules: Vec::new(),
            users: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentsFile {
    allow_admin_roles: Option<bool>,
    reactivate_with_owner: Option<bool>,
    max_token_lifetime: Option<String>,
    token_scopes: Option<Vec<String>>,
    #[serde(default)]
    site_roles: Vec<String>,
    #[serde(default)]
    org_roles: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    rules: Vec<RuleFile>,
    #[serde(default)]
    users: Vec<AgentUserFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentUserFile {
    user_type: Option<String>,
    group: Option<String>,
    group_external_id: Option<String>,
    attribute: Option<String>,
    value: Option<String>,
}

impl AgentPolicy {
    /// Read and validate `[agents]` of `table` (absent: the defaults).
    pub fn from_toml(table: &toml::Table) -> Result<AgentPolicy, PolicyError> {
        let file: AgentsFile = match table.get("agents") {
            None => AgentsFile::default(),
            Some(value @ toml::Value::Table(_)) => value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| PolicyError::new("agents", e.message().to_owned()))?,
            Some(_) => return Err(PolicyError::new("agents", "must be a table")),
        };
        let defaults = AgentPolicy::default();
        let allow_admin_roles = file.allow_admin_roles.unwrap_or(false);
        let site_roles_checked = |key: &str, roles: Vec<String>| {
            let roles = check_site_roles(key, roles)?;
            match roles
                .iter()
                .find(|r| ADMIN_SITE_ROLES.contains(&r.as_str()))
            {
                Some(admin) if !allow_admin_roles => Err(PolicyError::new(
                    key,
                    format!(
                        "{admin:?} is refused for agents (least privilege); set [agents] allow_admin_roles = true to allow it"
                    ),
                )),
                _ => Ok(roles),
            }
        };
        let max_token_lifetime = match file.max_token_lifetime {
            None => defaults.max_token_lifetime,
            Some(raw) => {
                let lifetime = humantime::parse_duration(raw.trim()).map_err(|e| {
                    PolicyError::new(
                        "agents.max_token_lifetime",
                        format!("{e}: write a duration such as \"4h\" or \"90m\""),
                    )
                })?;
                if lifetime.is_zero() {
                    return Err(PolicyError::new(
                        "agents.max_token_lifetime",
                        "must be longer than zero",
                    ));
                }
                lifetime
            }
        };
        let token_scopes = match file.token_scopes {
            None => defaults.token_scopes,
            Some(scopes) => {
                let mut checked: Vec<String> = Vec::new();
                for scope in scopes {
                    let scope = scope.trim().to_owned();
                    if !is_token_scope(&scope) {
                        return Err(PolicyError::new(
                            "agents.token_scopes",
                            format!(
                                "{scope:?} is not a Coder API key scope such as \"workspace:read\" or \"coder:workspaces.access\""
                            ),
                        ));
                    }
                    if matches!(scope.as_str(), "all" | "coder:all") {
                        return Err(PolicyError::new(
                            "agents.token_scopes",
                            format!(
                                "{scope:?} gives a token everything its agent may do; name narrower scopes"
                            ),
                        ));
                    }
                    if !checked.contains(&scope) {
                        checked.push(scope);
                    }
                }
                checked
            }
        };
        let site_roles = site_roles_checked("agents.site_roles", file.site_roles)?;
        let org_roles = check_org_roles("agents.org_roles", file.org_roles)?;
        let mut rules = Vec::new();
        for (i, rule) in file.rules.into_iter().enumerate() {
            let key = format!("agents.rules[{i}]");
            let site_roles = site_roles_checked(&format!("{key}.site_roles"), rule.site_roles)?;
            rules.push(RoleRule::parse(
                &key,
                rule.group,
                rule.group_external_id,
                site_roles,
                rule.org_roles,
            )?);
        }
        let mut users = Vec::new();
        for (i, entry) in file.users.into_iter().enumerate() {
            users.push(agent_user_rule(&format!("agents.users[{i}]"), entry)?);
        }
        Ok(AgentPolicy {
            allow_admin_roles,
            reactivate_with_owner: file.reactivate_with_owner.unwrap_or(false),
            max_token_lifetime,
            token_scopes,
            site_roles,
            org_roles,
            rules,
            users,
        })
    }

    /// Whether the SCIM User with `attrs`, in groups answered by `in_group`, is an agent.
    pub fn is_agent_user(
        &self,
        attrs: &Map<String, Value>,
        in_group: &dyn Fn(&GroupSelector) -> bool,
    ) -> bool {
        self.users.iter().any(|rule| rule.matches(attrs, in_group))
    }

    /// Whether an agent rule or an agent-user rule looks at group memberships.
    pub fn uses_groups(&self) -> bool {
        !self.rules.is_empty()
            || self
                .users
                .iter()
                .any(|r| matches!(r, AgentUserRule::Group(_)))
    }

    /// Whether an agent rule or an agent-user rule names this group.
    pub fn mentions_group(&self, display_name: Option<&str>, external_id: Option<&str>) -> bool {
        self.rules
            .iter()
            .any(|r| r.group.matches(display_name, external_id))
            || self.users.iter().any(|r| match r {
                AgentUserRule::Group(g) => g.matches(display_name, external_id),
                _ => false,
            })
    }

    /// Whether `scope` may be put on a minted agent token.
    pub fn allows_scope(&self, scope: &str) -> bool {
        self.token_scopes.iter().any(|s| s == scope)
    }

    /// The scopes a token asked for with `lifetime` and `scopes` gets (the default when none
    /// is named), or why it is refused: a lifetime of zero or above `max_token_lifetime`, or
    /// a scope outside `token_scopes`.
    pub fn check_mint(
        &self,
        lifetime: Duration,
        scopes: Vec<String>,
    ) -> Result<Vec<String>, String> {
        if lifetime.is_zero() || lifetime > self.max_token_lifetime {
            return Err(format!(
                "a lifetime of {} is refused: agent tokens live at most {} ([agents] max_token_lifetime)",
                humantime::format_duration(lifetime),
                humantime::format_duration(self.max_token_lifetime)
            ));
        }
        let scopes = if scopes.is_empty() {
            DEFAULT_MINT_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        } else {
            scopes
        };
        if let Some(bad) = scopes.iter().find(|s| !self.allows_scope(s)) {
            return Err(format!(
                "scope {bad:?} is not allowed for agent tokens; allowed: {} ([agents] token_scopes)",
                self.token_scopes.join(", ")
            ));
        }
        Ok(scopes)
    }
}

/// A Coder API key scope's shape: `all`, `application_connect`, or `<resource>:<action>`.
fn is_token_scope(scope: &str) -> bool {
    matches!(scope, "all" | "application_connect")
        || scope.split_once(':').is_some_and(|(resource, action)| {
            !resource.is_empty()
                && !action.is_empty()
                && scope
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || matches!(c, '_' | ':' | '.' | '*'))
        })
}

fn agent_user_rule(key: &str, entry: AgentUserFile) -> Result<AgentUserRule, PolicyError> {
    let by_group = entry.group.is_some() || entry.group_external_id.is_some();
    match (entry.user_type, by_group, entry.attribute) {
        (Some(user_type), false, None) if entry.value.is_none() => {
            let user_type = user_type.trim();
            if user_type.is_empty() {
                return Err(PolicyError::new(
                    format!("{key}.user_type"),
                    "must be a userType such as \"Agent\"",
                ));
            }
            Ok(AgentUserRule::UserType(user_type.to_owned()))
        }
        (None, true, None) if entry.value.is_none() => Ok(AgentUserRule::Group(
            GroupSelector::parse(key, entry.group, entry.group_external_id)?,
        )),
        (None, false, Some(path)) => {
            let path = path.trim().to_owned();
            let value = entry.value.map(|v| v.trim().to_owned()).unwrap_or_default();
            if path.is_empty() || value.is_empty() {
                return Err(PolicyError::new(
                    key,
                    "attribute needs a path (e.g. \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeType\") and a value",
                ));
            }
            Ok(AgentUserRule::Attribute { path, value })
        }
        _ => Err(PolicyError::new(
            key,
            "needs exactly one of user_type, group (or group_external_id), or attribute with value",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The `[agents]` part of a whole policy file.
    fn parse(text: &str) -> Result<AgentPolicy, PolicyError> {
        crate::policy::tests::parse(text).map(|policy| policy.agents)
    }

    #[test]
    fn defaults_are_least_privilege() {
        let policy = parse("").unwrap();
        assert!(!policy.allow_admin_roles && !policy.reactivate_with_owner);
        assert_eq!(policy.max_token_lifetime, Duration::from_secs(4 * 3600));
        assert!(policy.site_roles.is_empty() && policy.rules.is_empty());
        assert!(!policy.allows_scope("coder:all"));
        assert!(policy.allows_scope("coder:workspaces.access"));
    }

    #[test]
    fn admin_roles_are_refused_unless_allowed() {
        for (text, key) in [
            ("[agents]\nsite_roles = [\"owner\"]", "agents.site_roles"),
            (
                "[[agents.rules]]\ngroup = \"bots\"\nsite_roles = [\"template-admin\"]",
                "agents.rules[0].site_roles",
            ),
            (
                "[[agents.rules]]\ngroup = \"bots\"\nsite_roles = [\"user-admin\"]",
                "agents.rules[0].site_roles",
            ),
        ] {
            let error = crate::policy::tests::refused(text, key);
            assert!(error.message.contains("allow_admin_roles"), "{error}");
        }
        let allowed =
            parse("[agents]\nallow_admin_roles = true\nsite_roles = [\"template-admin\"]").unwrap();
        assert_eq!(allowed.site_roles, ["template-admin"]);
        assert_eq!(
            parse("[agents]\nsite_roles = [\"auditor\"]")
                .unwrap()
                .site_roles,
            ["auditor"]
        );
        // agents-access is an organization role.
        assert!(parse("[agents]\nsite_roles = [\"agents-access\"]").is_err());
        assert!(
            parse("[agents.org_roles]\ndefault = [\"agents-access\"]")
                .unwrap()
                .org_roles
                .contains_key("default")
        );
    }

    #[test]
    fn token_bounds_are_checked() {
        let policy =
            parse("[agents]\nmax_token_lifetime = \"90m\"\ntoken_scopes = [\"workspace:read\"]")
                .unwrap();
        assert_eq!(policy.max_token_lifetime, Duration::from_secs(90 * 60));
        assert_eq!(policy.token_scopes, ["workspace:read"]);
        assert_eq!(
            parse("[agents]\nmax_token_lifetime = \"soon\"")
                .unwrap_err()
                .key,
            "agents.max_token_lifetime"
        );
        assert!(parse("[agents]\ntoken_scopes = [\"coder:all\"]").is_err());
        assert!(parse("[agents]\ntoken_scopes = [\"Workspace Read\"]").is_err());
        assert!(parse("[agents]\nunknown = 1").is_err());
    }

    #[test]
    fn agent_users_by_user_type_group_or_attribute() {
        let policy = parse(
            r#"
            [[agents.users]]
            user_type = "Agent"
            [[agents.users]]
            group = "AI Agents"
            [[agents.users]]
            attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeType"
            value = "agent"
            "#,
        )
        .unwrap();
        let no_group = |_: &GroupSelector| false;
        let user = |v: Value| v.as_object().unwrap().clone();
        assert!(policy.is_agent_user(&user(json!({"userType": "agent"})), &no_group));
        assert!(!policy.is_agent_user(&user(json!({"userType": "Employee"})), &no_group));
        assert!(policy.is_agent_user(
            &user(json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeType": "Agent"}})),
            &no_group
        ));
        let in_agents = |g: &GroupSelector| g.matches(Some("ai agents"), None);
        assert!(policy.is_agent_user(&user(json!({})), &in_agents));
        assert!(policy.uses_groups());
        assert!(policy.mentions_group(Some("AI Agents"), None));
        assert!(parse("[[agents.users]]\nuser_type = \"Agent\"\ngroup = \"x\"").is_err());
        assert!(parse("[[agents.users]]\nattribute = \"userType\"").is_err());
    }
}
