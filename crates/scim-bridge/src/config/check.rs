//! `scim-bridge config check`: the effective configuration with the source of every value
//! (flag, environment, file:line, default), secrets redacted, warnings, and every error, each
//! under the name the operator used: the flag, the variable, or the TOML key and its line.
//!
//! Every error, not just the first: the settings are loaded by the same [`Settings::load`] path
//! as every command; after an error, the setting it names is taken back to its default (its
//! flag, variable and file line dropped) and the load is run again, until it succeeds. A file
//! that does not parse has its offending line blanked the same way.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

use super::{ConfigError, Environment, FileSettings, LogFormat, Settings, SettingsArgs};
use crate::output::{Fields, Table, View};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "from")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// An environment variable (`SCIM_BRIDGE_…`, or its `_FILE` variant).
    Env { variable: String },
    /// The TOML file.
    File { path: String, line: usize },
    /// Nothing set it.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env { variable } => write!(f, "env {variable}"),
            Source::File { path, line } => write!(f, "{path}:{line}"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// One setting as in force.
#[derive(Debug, Serialize)]
pub struct Effective {
    /// The variable that sets it (the flag is the same in lower case with dashes).
    pub setting: &'static str,
    /// Its key in the TOML file; `None` for settings the file cannot hold.
    pub toml_key: Option<&'static str>,
    /// The value, secrets redacted; `-` when unset.
    pub value: String,
    pub source: Source,
}

/// A wrong setting, named as the operator set it.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub setting: String,
    pub problem: String,
}

/// What `config check` found.
#[derive(Debug, Serialize)]
pub struct Check {
    pub valid: bool,
    pub settings: Vec<Effective>,
    pub warnings: Vec<String>,
    pub errors: Vec<Problem>,
}

impl View for Check {
    fn table(&self) -> String {
        let mut table = Table::new(&["SETTING", "VALUE", "SOURCE"]);
        for e in &self.settings {
            table.row(vec![
                e.setting.into(),
                e.value.clone(),
                e.source.to_string(),
            ]);
        }
        let mut text = table.to_string();
        let mut notes = Fields::new();
        for w in &self.warnings {
            notes.field("warning", w);
        }
        text.push_str(&notes.to_string());
        // The errors go to stderr, as every command's do (`main` prints them).
        if self.valid {
            text.push_str("configuration is valid\n");
        }
        text
    }
}

/// A setting a flag, its variable and (when `toml` is set) the file can give.
struct Layered {
    env: &'static str,
    field: &'static str,
    toml: Option<&'static str>,
    default: &'static str,
    get: fn(&SettingsArgs) -> Option<String>,
    clear: fn(&mut SettingsArgs),
}

trait Shown {
    fn shown(&self) -> String;
}
impl Shown for String {
    fn shown(&self) -> String {
        self.clone()
    }
}
impl Shown for PathBuf {
    fn shown(&self) -> String {
        self.display().to_string()
    }
}
impl Shown for LogFormat {
    fn shown(&self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

macro_rules! layered {
    ($($field:ident, $env:literal, $toml:expr, $default:literal;)*) => {
        &[$(Layered {
            env: $env,
            field: stringify!($field),
            toml: $toml,
            default: $default,
            get: |a| a.$field.as_ref().map(Shown::shown),
            clear: |a| a.$field = None,
        },)*]
    };
}

/// Every layered setting, in the order `config check` prints them.
const LAYERED: &[Layered] = layered![
    config, "SCIM_BRIDGE_CONFIG", None, "-";
    listen, "SCIM_BRIDGE_LISTEN", Some("listen"), "127.0.0.1:8080";
    ops_listen, "SCIM_BRIDGE_OPS_LISTEN", Some("ops_listen"), "- (probes beside the SCIM API)";
    database_url, "SCIM_BRIDGE_DATABASE_URL", Some("database_url"), "sqlite://scim-bridge.db";
    base_url, "SCIM_BRIDGE_BASE_URL", Some("base_url"), "-";
    log_format, "SCIM_BRIDGE_LOG_FORMAT", Some("log_format"), "auto";
    log_level, "SCIM_BRIDGE_LOG_LEVEL", Some("log_level"), "info";
    idp_tokens_file, "SCIM_BRIDGE_IDP_TOKENS_FILE", None, "-";
    jwt_issuer, "SCIM_BRIDGE_JWT_ISSUER", Some("jwt.issuer"), "-";
    jwt_audience, "SCIM_BRIDGE_JWT_AUDIENCE", Some("jwt.audience"), "-";
    jwt_rs256_key_file, "SCIM_BRIDGE_JWT_RS256_KEY_FILE", Some("jwt.rs256_key_file"), "-";
    jwt_jwks_file, "SCIM_BRIDGE_JWT_JWKS_FILE", Some("jwt.jwks_file"), "-";
    jwt_allowed_clients, "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS", Some("jwt.allowed_clients"), "- (any client)";
    jwt_default_scopes, "SCIM_BRIDGE_JWT_DEFAULT_SCOPES", Some("jwt.default_scopes"), "scim:read scim:write";
    rate_limit, "SCIM_BRIDGE_RATE_LIMIT", Some("rate_limit.per_second"), "100";
    rate_limit_burst, "SCIM_BRIDGE_RATE_LIMIT_BURST", Some("rate_limit.burst"), "200";
    auth_failure_rate_limit, "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT", Some("rate_limit.auth_failures_per_second"), "5";
    auth_failure_rate_limit_burst, "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT_BURST", Some("rate_limit.auth_failure_burst"), "20";
    trusted_proxies, "SCIM_BRIDGE_TRUSTED_PROXIES", Some("trusted_proxies"), "- (none)";
    max_body_bytes, "SCIM_BRIDGE_MAX_BODY_BYTES", Some("max_body_bytes"), "1048576";
    bulk_max_operations, "SCIM_BRIDGE_BULK_MAX_OPERATIONS", Some("bulk.max_operations"), "1000";
    bulk_max_payload_bytes, "SCIM_BRIDGE_BULK_MAX_PAYLOAD_BYTES", Some("bulk.max_payload_bytes"), "1048576";
    coder_url, "SCIM_BRIDGE_CODER_URL", Some("coder.url"), "-";
    coder_rate_limit, "SCIM_BRIDGE_CODER_RATE_LIMIT", Some("coder.rate_limit"), "8";
    coder_allow_http, "SCIM_BRIDGE_CODER_ALLOW_HTTP", Some("coder.allow_http"), "false";
    coder_ca_file, "SCIM_BRIDGE_CODER_CA_FILE", Some("coder.ca_file"), "-";
    worker, "SCIM_BRIDGE_WORKER", Some("worker.enabled"), "true";
    worker_concurrency, "SCIM_BRIDGE_WORKER_CONCURRENCY", Some("worker.concurrency"), "32";
    worker_concurrency_min, "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN", Some("worker.concurrency_min"), "1";
    max_attempts, "SCIM_BRIDGE_MAX_ATTEMPTS", Some("worker.max_attempts"), "12";
    drift_interval, "SCIM_BRIDGE_DRIFT_INTERVAL", Some("worker.drift_interval"), "15m";
    orphans_action, "SCIM_BRIDGE_ORPHANS_ACTION", Some("orphans.action"), "report";
    orphans_allow, "SCIM_BRIDGE_ORPHANS_ALLOW", Some("orphans.allow"), "- (none)";
    outbox_lease, "SCIM_BRIDGE_OUTBOX_LEASE", Some("worker.lease"), "2m";
    oauth_token_ttl, "SCIM_BRIDGE_OAUTH_TOKEN_TTL", Some("oauth.token_ttl"), "1h";
    audit_webhook_url, "SCIM_BRIDGE_AUDIT_WEBHOOK_URL", Some("audit_webhook.url"), "- (no live stream)";
    audit_webhook_format, "SCIM_BRIDGE_AUDIT_WEBHOOK_FORMAT", Some("audit_webhook.format"), "json";
    audit_webhook_batch_size, "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_SIZE", Some("audit_webhook.batch_size"), "100";
    audit_webhook_batch_wait, "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_WAIT", Some("audit_webhook.batch_wait"), "1s";
    audit_webhook_audience, "SCIM_BRIDGE_AUDIT_WEBHOOK_AUDIENCE", Some("audit_webhook.audience"), "- (the webhook URL)";
    users_allowed_email_domains, "SCIM_BRIDGE_USERS_ALLOWED_EMAIL_DOMAINS", Some("users.allowed_email_domains"), "- (any domain)";
    users_outside_domain, "SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN", Some("users.outside_domain"), "provision";
];

/// Secrets only the environment gives (`NAME` or `NAME_FILE`).
const SECRETS: &[&str] = &[
    "SCIM_BRIDGE_CODER_TOKEN",
    "SCIM_BRIDGE_JWT_HS256_SECRET",
    "SCIM_BRIDGE_AUDIT_KEY",
    "SCIM_BRIDGE_OAUTH_SIGNING_KEY",
    "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET",
];

/// Settings that are only valid together: an error about one is cleared by taking them all back.
const TOGETHER: &[&[&str]] = &[
    &[
        "SCIM_BRIDGE_AUDIT_WEBHOOK_URL",
        "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET",
        "SCIM_BRIDGE_AUDIT_WEBHOOK_FORMAT",
    ],
    &["SCIM_BRIDGE_CODER_URL", "SCIM_BRIDGE_CODER_TOKEN"],
    &[
        "SCIM_BRIDGE_JWT_ISSUER",
        "SCIM_BRIDGE_JWT_AUDIENCE",
        "SCIM_BRIDGE_JWT_HS256_SECRET",
        "SCIM_BRIDGE_JWT_RS256_KEY_FILE",
        "SCIM_BRIDGE_JWT_JWKS_FILE",
        "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS",
        "SCIM_BRIDGE_JWT_DEFAULT_SCOPES",
    ],
];

/// The environment less the variables taken back.
struct Hiding<'a> {
    env: &'a dyn Environment,
    hidden: &'a HashSet<String>,
}

impl Environment for Hiding<'_> {
    fn var(&self, name: &str) -> Option<String> {
        if self.hidden.contains(name) {
            None
        } else {
            self.env.var(name)
        }
    }
}

/// The config file as written, to find the line of each key.
struct FileText {
    path: PathBuf,
    original: toml_edit::ImDocument<String>,
}

impl FileText {
    /// The byte range, key through value, of dotted `key` in the original text.
    fn span_of(&self, key: &str) -> Option<Range<usize>> {
        let mut table: &dyn toml_edit::TableLike = self.original.as_table();
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let (k, item) = table.get_key_value(part)?;
            if parts.peek().is_none() {
                let end = item.span().map_or(0, |s| s.end);
                let start = k.span().map_or(end, |s| s.start);
                return Some(start..end.max(start));
            }
            table = item.as_table_like()?;
        }
        None
    }

    /// The file and line of a mapping-rule key such as `roles.rules[2].site_roles`: the
    /// deepest part of it the file holds.
    fn line_of_rule(&self, key: &str) -> Option<(String, usize)> {
        let mut table: &dyn toml_edit::TableLike = self.original.as_table();
        let mut start = None;
        for part in key.split('.') {
            let (name, index) = match part.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (part, None),
            };
            let Some((k, item)) = table.get_key_value(name) else {
                break;
            };
            start = k.span().map(|s| s.start).or(start);
            let next = match index {
                None => item.as_table_like(),
                Some(i) => {
                    if let Some(entry) = item.as_array_of_tables().and_then(|a| a.get(i)) {
                        start = entry.span().map(|s| s.start).or(start);
                        Some(entry as &dyn toml_edit::TableLike)
                    } else {
                        if let Some(value) = item.as_array().and_then(|a| a.get(i)) {
                            start = value.span().map(|s| s.start).or(start);
                        }
                        None
                    }
                }
            };
            match next {
                Some(inner) => table = inner,
                None => break,
            }
        }
        Some((
            self.path.display().to_string(),
            line_at(self.original.raw(), start?),
        ))
    }

    fn source_of(&self, key: &str) -> Option<Source> {
        let span = self.span_of(key)?;
        Some(Source::File {
            path: self.path.display().to_string(),
            line: line_at(self.original.raw(), span.start),
        })
    }
}

/// The 1-based line of byte `at` in `text`.
fn line_at(text: &str, at: usize) -> usize {
    text.get(..at).map_or(0, |t| t.matches('\n').count()) + 1
}

/// The dotted TOML key written on the line of byte `at` (`worker.concurrency`), if any.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    // The table the line is in: the nearest header above it.
    let table = before
        .get(..line_start)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// Blank the lines of `text` that `range` touches: every byte but the line breaks becomes a
/// space, so line numbers and byte offsets (the original spans) stay right.
fn blank(text: &mut String, range: Range<usize>) {
    let start = text
        .get(..range.start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let end = text
        .get(range.end..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| range.end + i);
    let Some(old) = text.get(start..end) else {
        return;
    };
    let kept: String = old
        .chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c => " ".repeat(c.len_utf8()),
        })
        .collect();
    text.replace_range(start..end, &kept);
}

/// Check the configuration given by `args` (whose flags named in `from_command_line` came from
/// the command line, the others from their variables) and `env`.
pub fn check(
    args: &SettingsArgs,
    from_command_line: &HashSet<String>,
    env: &dyn Environment,
) -> (Check, Option<Settings>) {
    let mut errors: Vec<Problem> = Vec::new();
    let mut file = None;
    // The file's text as the rounds below blank the lines of settings taken back.
    let mut working_text: Option<String> = None;
    if let Some(path) = &args.config {
        match super::read_file_text(path) {
            Err(e) => errors.push(Problem {
                setting: e.setting,
                problem: e.problem,
            }),
            Ok(text) => match text.clone().parse::<toml_edit::ImDocument<String>>() {
                Ok(original) => {
                    working_text = Some(text);
                    file = Some(FileText {
                        path: path.clone(),
                        original,
                    })
                }
                Err(e) => errors.push(Problem {
                    setting: path.display().to_string(),
                    problem: e.to_string().trim().replace('\n', " "),
                }),
            },
        }
    }
    let source_of = |l: &Layered| -> Source {
        if (l.get)(args).is_some() {
            if from_command_line.contains(l.field) {
                Source::Flag
            } else {
                Source::Env {
                    variable: l.env.into(),
                }
            }
        } else {
            l.toml
                .and_then(|key| file.as_ref()?.source_of(key))
                .unwrap_or(Source::Default)
        }
    };
    // The name the operator used for the setting `env` names.
    let operator_name = |setting: &str| -> String {
        let Some(l) = LAYERED.iter().find(|l| l.env == setting) else {
            return setting.to_string();
        };
        match source_of(l) {
            Source::Flag => format!("--{}", l.field.replace('_', "-")),
            Source::File { path, line } => {
                format!("{} ({path}:{line})", l.toml.unwrap_or(l.env))
            }
            Source::Env { .. } | Source::Default => l.env.to_string(),
        }
    };

    let mut working = args.clone();
    working.config = None;
    let mut hidden: HashSet<String> = HashSet::new();
    let mut taken_back: HashSet<String> = HashSet::new();
    let mut settings = None;
    // Each round takes one setting or one line back, so the rounds are bounded by their number.
    for _ in 0..(LAYERED.len() + SECRETS.len() + 64) {
        let parsed: FileSettings = match (&file, &mut working_text) {
            (Some(f), Some(text)) => match toml::from_str(text) {
                Ok(parsed) => parsed,
                Err(e) => {
                    let Some(span) = e.span() else {
                        errors.push(Problem {
                            setting: f.path.display().to_string(),
                            problem: e.message().to_string(),
                        });
                        break;
                    };
                    errors.push(Problem {
                        setting: key_at(text, span.start).map_or_else(
                            || format!("{}:{}", f.path.display(), line_at(text, span.start)),
                            |key| {
                                format!(
                                    "{key} ({}:{})",
                                    f.path.display(),
                                    line_at(text, span.start)
                                )
                            },
                        ),
                        problem: e.message().to_string(),
                    });
                    blank(text, span);
                    continue;
                }
            },
            _ => FileSettings::default(),
        };
        let env = Hiding {
            env,
            hidden: &hidden,
        };
        match Settings::from_layers(&working, &env, parsed) {
            Ok(s) => {
                settings = Some(s);
                break;
            }
            Err(ConfigError { setting, problem }) => {
                errors.push(Problem {
                    setting: operator_name(&setting),
                    problem,
                });
                if !taken_back.insert(setting.clone()) {
                    break;
                }
                let group = TOGETHER
                    .iter()
                    .find(|g| g.contains(&setting.as_str()))
                    .map_or_else(|| vec![setting.as_str()], |g| g.to_vec());
                for name in group {
                    hidden.insert(name.to_string());
                    hidden.insert(format!("{name}_FILE"));
                    if let Some(l) = LAYERED.iter().find(|l| l.env == name) {
                        (l.clear)(&mut working);
                        if let (Some(f), Some(text), Some(key)) = (&file, &mut working_text, l.toml)
                            && let Some(span) = f.span_of(key)
                        {
                            blank(text, span);
                        }
                    }
                }
            }
        }
    }
    if let Some(s) = &settings {
        errors.extend(rule_errors(s.rules.clone(), file.as_ref()));
    }

    let mut effective: Vec<Effective> = LAYERED
        .iter()
        .map(|l| {
            let source = source_of(l);
            let raw = match &source {
                Source::Flag | Source::Env { .. } => (l.get)(args),
                Source::File { .. } => file.as_ref().and_then(|f| {
                    let span = f.span_of(l.toml?)?;
                    let value = f.original.raw().get(span)?;
                    let value = value.split_once('=').map_or(value, |(_, v)| v).trim();
                    // A plain string without its quotes; arrays and tables as written.
                    Some(
                        value
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap_or(value)
                            .to_string(),
                    )
                }),
                Source::Default => None,
            };
            let value = match raw {
                Some(v) if l.env == "SCIM_BRIDGE_DATABASE_URL" => redact_url(&v),
                Some(v) if l.env == "SCIM_BRIDGE_AUDIT_WEBHOOK_URL" => {
                    url::Url::parse(v.trim()).map_or(v, |u| super::audit_webhook::shown_url(&u))
                }
                Some(v) => v,
                None => l.default.to_string(),
            };
            Effective {
                setting: l.env,
                toml_key: l.toml,
                value,
                source,
            }
        })
        .collect();
    for name in SECRETS {
        let file_var = format!("{name}_FILE");
        let (value, source) = match (env.var(name), env.var(&file_var)) {
            (Some(_), _) => (
                "<redacted>".to_string(),
                Source::Env {
                    variable: name.to_string(),
                },
            ),
            (None, Some(path)) => (
                format!("<redacted> (read from {path})"),
                Source::Env { variable: file_var },
            ),
            (None, None) => match file.as_ref().and_then(|f| {
                // The webhook's secret may also be a file named in the TOML file.
                let key = (*name == "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET")
                    .then_some("audit_webhook.secret_file")?;
                f.source_of(key)
            }) {
                Some(source) => (
                    "<redacted> (read from audit_webhook.secret_file)".to_string(),
                    source,
                ),
                None => ("-".to_string(), Source::Default),
            },
        };
        effective.push(Effective {
            setting: name,
            toml_key: None,
            value,
            source,
        });
    }
    if let Some(f) = &file {
        for table in ["users", "offboarding", "groups", "roles", "entitlements"] {
            if let Some(source) = f.source_of(table) {
                effective.push(Effective {
                    setting: "SCIM_BRIDGE_CONFIG",
                    toml_key: Some(table),
                    value: format!("[{table}] mapping rules"),
                    source,
                });
            }
        }
    }

    let warnings = settings.as_ref().map(warnings).unwrap_or_default();
    let check = Check {
        valid: errors.is_empty(),
        settings: effective,
        warnings,
        errors,
    };
    let settings = if check.valid { settings } else { None };
    (check, settings)
}

/// Every mistake in the mapping rules, each under its TOML key and line. The rules stop at
/// their first mistake: after each, the key's part of the rules (up to its first array index,
/// so indices stay right) is taken out and they are read again.
fn rule_errors(mut rules: toml::Table, file: Option<&FileText>) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Each round takes a key out, so the rounds are bounded by the number of keys.
    for _ in 0..64 {
        let Err(e) = reconcile::Policy::from_toml(&rules) else {
            break;
        };
        let setting = match file.and_then(|f| f.line_of_rule(&e.key)) {
            Some((path, line)) => format!("{} ({path}:{line})", e.key),
            None => e.key.clone(),
        };
        problems.push(Problem {
            setting,
            problem: e.message.clone(),
        });
        if !take_out(&mut rules, &e.key) {
            break;
        }
    }
    problems
}

/// Remove dotted `key` (up to its first `[`) from `rules`; false when it is not there.
fn take_out(rules: &mut toml::Table, key: &str) -> bool {
    let path = key.split('[').next().unwrap_or(key);
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut table = rules;
    for part in parts {
        match table.get_mut(part) {
            Some(toml::Value::Table(inner)) => table = inner,
            _ => return false,
        }
    }
    table.remove(last).is_some()
}

/// What is valid but probably not what the operator wants.
fn warnings(settings: &Settings) -> Vec<String> {
    let mut warnings = Vec::new();
    if settings.coder.is_none() {
        warnings.push(
            "no Coder URL (SCIM_BRIDGE_CODER_URL): SCIM changes are stored and queued, nothing reaches Coder"
                .to_string(),
        );
    }
    if let Some(base) = &settings.base_url
        && !base.path().trim_end_matches('/').ends_with("/scim/v2")
    {
        warnings.push(format!(
            "SCIM_BRIDGE_BASE_URL {base} does not end in /scim/v2, where the SCIM API is served: give the IdP and this setting https://HOST/scim/v2"
        ));
    }
    warnings
}

/// A database URL with its password replaced.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        _ => raw.to_string(),
    }
}

/// The arguments clap took from the command line (not from their variables), by field name,
/// through every subcommand level.
pub fn from_command_line(matches: &clap::ArgMatches) -> HashSet<String> {
    let mut given = HashSet::new();
    let mut level = Some(matches);
    while let Some(m) = level {
        for id in m.ids() {
            if m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine) {
                given.insert(id.as_str().to_string());
            }
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    given
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config_file, env, write_file};
    use super::*;
    use crate::output::{Format, render};

    fn named<'a>(check: &'a Check, setting: &str) -> &'a Effective {
        check
            .settings
            .iter()
            .find(|e| e.setting == setting)
            .unwrap_or_else(|| panic!("{setting} not shown"))
    }

    #[test]
    fn every_error_is_reported_under_the_name_the_operator_used() {
        let (dir, from_file) = config_file(
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = \"big\"\nlistn = 1\n\n[worker]\nconcurrency = 0\nlease = \"1s\"\n",
        );
        let args = SettingsArgs {
            drift_interval: Some("soon".into()),
            rate_limit: Some("many".into()),
            ..from_file
        };
        let flags = HashSet::from(["drift_interval".to_string()]);
        let (check, settings) = check(&args, &flags, &env(&[]));
        assert!(!check.valid && settings.is_none());
        let mut names: Vec<&str> = check.errors.iter().map(|e| e.setting.as_str()).collect();
        names.sort_unstable();
        let file = dir.path().join("bridge.toml").display().to_string();
        let mut expected = vec![
            format!("max_body_bytes ({file}:2)"),
            format!("listn ({file}:3)"),
            "--drift-interval".to_string(),
            "SCIM_BRIDGE_RATE_LIMIT".to_string(),
            format!("worker.concurrency ({file}:6)"),
            format!("worker.lease ({file}:7)"),
        ];
        expected.sort_unstable();
        assert_eq!(names, expected, "{:#?}", check.errors);
        assert!(
            check
                .errors
                .iter()
                .any(|e| e.problem.contains("unknown field `listn`")),
            "{:#?}",
            check.errors
        );
    }

    #[test]
    fn the_audit_webhook_secret_and_url_token_are_redacted() {
        let secrets = tempfile::tempdir().unwrap();
        let secret_file = write_file(&secrets, "webhook-secret", &"w".repeat(40));
        let (_dir, args) = config_file(&format!(
            "[audit_webhook]\nurl = \"https://siem.example.com/in?token=t0ps3cret\"\nsecret_file = \"{}\"\nbatch_size = 7\n",
            secret_file.display()
        ));
        let (check, settings) = check(&args, &HashSet::new(), &env(&[]));
        assert!(check.valid, "{:#?}", check.errors);
        let webhook = settings.unwrap().audit_webhook.unwrap();
        assert_eq!(webhook.secret.unwrap().expose(), "w".repeat(40));
        assert_eq!(webhook.batch_size, 7);
        let secret = named(&check, "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET");
        assert!(
            matches!(&secret.source, Source::File { line: 3, .. }),
            "{secret:?}"
        );
        let url = named(&check, "SCIM_BRIDGE_AUDIT_WEBHOOK_URL");
        assert_eq!(url.value, "https://siem.example.com/in?redacted");
        for format in [Format::Table, Format::Json] {
            let shown = render(format, &check).unwrap();
            assert!(
                !shown.contains("wwww") && !shown.contains("t0ps3cret"),
                "{shown}"
            );
        }
    }

    #[test]
    fn sources_values_and_secrets() {
        let (dir, from_file) = config_file(
            "listen = \"127.0.0.1:9000\"\n[worker]\nconcurrency = 4\n[coder]\nurl = \"https://coder.example.com\"\n[roles]\nbaseline_site_roles = []\n",
        );
        let token_file = write_file(&dir, "coder-token", "s3cr3t-coder-token\n");
        let args = SettingsArgs {
            database_url: Some("postgres://scim:hunter2@db.internal/scim".into()),
            base_url: Some("https://scim.example.com/scim/v2".into()),
            log_level: Some("debug".into()),
            ..from_file
        };
        let flags = HashSet::from(["log_level".to_string()]);
        let key = "k".repeat(40);
        let env = env(&[
            ("SCIM_BRIDGE_CODER_TOKEN_FILE", token_file.to_str().unwrap()),
            ("SCIM_BRIDGE_AUDIT_KEY", &key),
        ]);
        let (check, settings) = check(&args, &flags, &env);
        assert!(check.valid, "{:#?}", check.errors);
        assert_eq!(settings.unwrap().worker.concurrency, 4);
        let listen = named(&check, "SCIM_BRIDGE_LISTEN");
        assert_eq!(listen.value, "127.0.0.1:9000");
        assert!(
            matches!(&listen.source, Source::File { line: 1, .. }),
            "{:?}",
            listen.source
        );
        let concurrency = named(&check, "SCIM_BRIDGE_WORKER_CONCURRENCY");
        assert!(matches!(&concurrency.source, Source::File { line: 3, .. }));
        assert_eq!(named(&check, "SCIM_BRIDGE_LOG_LEVEL").source, Source::Flag);
        assert_eq!(
            named(&check, "SCIM_BRIDGE_BASE_URL").source,
            Source::Env {
                variable: "SCIM_BRIDGE_BASE_URL".into()
            }
        );
        assert_eq!(
            named(&check, "SCIM_BRIDGE_MAX_ATTEMPTS").source,
            Source::Default
        );
        assert_eq!(named(&check, "SCIM_BRIDGE_MAX_ATTEMPTS").value, "12");
        assert_eq!(
            named(&check, "SCIM_BRIDGE_CODER_TOKEN").source,
            Source::Env {
                variable: "SCIM_BRIDGE_CODER_TOKEN_FILE".into()
            }
        );
        let printed =
            render(Format::Table, &check).unwrap() + &render(Format::Json, &check).unwrap();
        for secret in ["hunter2", "s3cr3t-coder-token", &"k".repeat(40)] {
            assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
        }
        assert!(
            printed.contains("postgres://scim:redacted@db.internal/scim"),
            "{printed}"
        );
        assert!(printed.contains("[roles] mapping rules"), "{printed}");
        assert!(check.warnings.is_empty(), "{:?}", check.warnings);
        assert!(printed.contains("configuration is valid"));
    }

    #[test]
    fn config_check_table_and_json() {
        let args = SettingsArgs {
            listen: Some("0.0.0.0:8080".into()),
            database_url: Some("postgres://scim:hunter2@db.internal/scim".into()),
            users_allowed_email_domains: Some("corp.example".into()),
            ..Default::default()
        };
        let flags = HashSet::from(["listen".to_string()]);
        let env = env(&[("SCIM_BRIDGE_AUDIT_KEY", &"k".repeat(40))]);
        let (check, _) = check(&args, &flags, &env);
        insta::assert_snapshot!("config_check_table", render(Format::Table, &check).unwrap());
        insta::assert_snapshot!("config_check_json", render(Format::Json, &check).unwrap());
    }

    #[test]
    fn warnings_for_no_coder_and_a_base_url_without_scim_v2() {
        let args = SettingsArgs {
            base_url: Some("https://scim.example.com/".into()),
            ..Default::default()
        };
        let (check, _) = check(&args, &HashSet::new(), &env(&[]));
        assert!(check.valid);
        assert_eq!(check.warnings.len(), 2, "{:?}", check.warnings);
        assert!(check.warnings[0].contains("no Coder URL"));
        assert!(check.warnings[1].contains("/scim/v2"));
    }

    #[test]
    fn a_coder_url_without_a_token_is_one_error_and_the_rest_still_checked() {
        let args = SettingsArgs {
            coder_url: Some("https://coder.example.com".into()),
            max_attempts: Some("0".into()),
            ..Default::default()
        };
        let (check, _) = check(&args, &HashSet::new(), &env(&[]));
        let names: Vec<&str> = check.errors.iter().map(|e| e.setting.as_str()).collect();
        assert_eq!(
            names,
            ["SCIM_BRIDGE_CODER_TOKEN", "SCIM_BRIDGE_MAX_ATTEMPTS"]
        );
    }

    #[test]
    fn every_mapping_rule_error_names_its_key_and_line() {
        let (dir, args) = config_file(
            "[users]\nallowed_email_domains = [\"corp.example\", \"*.corp.example\"]\n\n[[roles.rules]]\ngroup = \"a\"\nsite_roles = [\"owner\"]\n\n[[roles.rules]]\ngroup = \"b\"\nsite_roles = [\"admin\"]\n\n[groups]\ndelete_policy = \"archive\"\n",
        );
        let (check, _) = check(&args, &HashSet::new(), &env(&[]));
        let file = dir.path().join("bridge.toml").display().to_string();
        let mut names: Vec<&str> = check.errors.iter().map(|e| e.setting.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                format!("groups ({file}:12)"),
                format!("roles.rules[1].site_roles ({file}:10)"),
                format!("users.allowed_email_domains[1] ({file}:2)"),
            ],
            "{:#?}",
            check.errors
        );
        assert!(
            check
                .errors
                .iter()
                .any(|e| e.problem.contains("no wildcards")),
            "{:#?}",
            check.errors
        );
    }

    #[test]
    fn the_email_domain_policy_from_the_environment_wins_and_its_errors_name_the_variable() {
        let (_dir, from_file) = config_file(
            "[users]\nallowed_email_domains = [\"old.example\"]\noutside_domain = \"skip\"\n",
        );
        let args = SettingsArgs {
            users_allowed_email_domains: Some("corp.example, @Partner.Example".into()),
            ..from_file
        };
        let (check, settings) = check(&args, &HashSet::new(), &env(&[]));
        assert!(check.valid, "{:#?}", check.errors);
        let policy = reconcile::Policy::from_toml(&settings.unwrap().rules).unwrap();
        assert_eq!(
            policy.users.allowed_email_domains,
            ["corp.example", "partner.example"]
        );
        assert_eq!(
            policy.users.outside_domain,
            reconcile::policy::OutsideDomain::Skip
        );
        let domains = named(&check, "SCIM_BRIDGE_USERS_ALLOWED_EMAIL_DOMAINS");
        assert!(matches!(domains.source, Source::Env { .. }), "{domains:?}");
        let outside = named(&check, "SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN");
        assert!(matches!(outside.source, Source::File { line: 3, .. }));
        assert_eq!(outside.value, "skip");

        let args = SettingsArgs {
            users_allowed_email_domains: Some("corp.example,*.corp.example".into()),
            users_outside_domain: Some("drop".into()),
            ..Default::default()
        };
        let flags = HashSet::from(["users_outside_domain".to_string()]);
        let (bad, _) = super::check(&args, &flags, &env(&[]));
        let names: Vec<&str> = bad.errors.iter().map(|e| e.setting.as_str()).collect();
        assert_eq!(
            names,
            [
                "SCIM_BRIDGE_USERS_ALLOWED_EMAIL_DOMAINS",
                "--users-outside-domain"
            ],
            "{:#?}",
            bad.errors
        );
    }
}
