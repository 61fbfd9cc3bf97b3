//! Settings: flags, then `SCIM_BRIDGE_*` environment variables, then the TOML file named by
//! `SCIM_BRIDGE_CONFIG`, then defaults (docs/CONFIGURATION.md is the reference).
//!
//! Every setting is validated here, once, at start-up; an error names the setting the operator
//! has to fix. Secrets are wrapped in [`Secret`] so no `Debug` or log line can print them.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use validator::Validate;

pub mod audit_webhook;
pub mod check;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A setting that is wrong, named as the operator would set it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

fn bad(setting: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.to_string(),
        problem: problem.into(),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
    Auto,
}

/// The settings given as flags (clap also reads each flag's environment variable).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct SettingsArgs {
    /// Address the HTTP server binds.
    #[arg(long, env = "SCIM_BRIDGE_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Address of a listener of its own for /healthz, /readyz and /metrics (unset: they are
    /// served on the SCIM listener).
    #[arg(long, env = "SCIM_BRIDGE_OPS_LISTEN", global = true)]
    pub ops_listen: Option<String>,
    /// `sqlite://PATH` or `postgres://…`.
    #[arg(
        long,
        env = "SCIM_BRIDGE_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,
    /// Public SCIM base URL, e.g. https://scim.example.com/scim/v2.
    #[arg(long, env = "SCIM_BRIDGE_BASE_URL", global = true)]
    pub base_url: Option<String>,
    /// TOML file with settings and mapping rules.
    #[arg(long, env = "SCIM_BRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[arg(long, env = "SCIM_BRIDGE_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    #[arg(long, env = "SCIM_BRIDGE_LOG_LEVEL", global = true)]
    pub log_level: Option<String>,
    /// File of `name=token` lines: IdP bearer tokens imported at start-up.
    #[arg(long, env = "SCIM_BRIDGE_IDP_TOKENS_FILE", global = true)]
    pub idp_tokens_file: Option<PathBuf>,
    #[arg(long, env = "SCIM_BRIDGE_JWT_ISSUER", global = true)]
    pub jwt_issuer: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_JWT_AUDIENCE", global = true)]
    pub jwt_audience: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_JWT_RS256_KEY_FILE", global = true)]
    pub jwt_rs256_key_file: Option<PathBuf>,
    #[arg(long, env = "SCIM_BRIDGE_JWT_JWKS_FILE", global = true)]
    pub jwt_jwks_file: Option<PathBuf>,
    /// Comma-separated client ids (`azp`, `appid` or `client_id`) whose JWTs are accepted.
    #[arg(long, env = "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS", global = true)]
    pub jwt_allowed_clients: Option<String>,
    /// Scopes of a JWT that carries no `scp` or `scope` claim.
    #[arg(long, env = "SCIM_BRIDGE_JWT_DEFAULT_SCOPES", global = true)]
    pub jwt_default_scopes: Option<String>,
    /// Requests per second per token (0 turns the limit off).
    #[arg(long, env = "SCIM_BRIDGE_RATE_LIMIT", global = true)]
    pub rate_limit: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_RATE_LIMIT_BURST", global = true)]
    pub rate_limit_burst: Option<String>,
    /// Failed authentications per second per client address (0 turns the limit off).
    #[arg(long, env = "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT", global = true)]
    pub auth_failure_rate_limit: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT_BURST", global = true)]
    pub auth_failure_rate_limit_burst: Option<String>,
    /// Proxies (IPs or CIDR blocks, comma-separated) whose Forwarded / X-Forwarded-* headers
    /// are believed.
    #[arg(long, env = "SCIM_BRIDGE_TRUSTED_PROXIES", global = true)]
    pub trusted_proxies: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_BULK_MAX_OPERATIONS", global = true)]
    pub bulk_max_operations: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_BULK_MAX_PAYLOAD_BYTES", global = true)]
    pub bulk_max_payload_bytes: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_CODER_URL", global = true)]
    pub coder_url: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_CODER_RATE_LIMIT", global = true)]
    pub coder_rate_limit: Option<String>,
    /// Accept a plain http:// Coder URL to a host that is not loopback.
    #[arg(long, env = "SCIM_BRIDGE_CODER_ALLOW_HTTP", global = true)]
    pub coder_allow_http: Option<String>,
    /// PEM bundle of CA certificates to trust for Coder besides the system's.
    #[arg(long, env = "SCIM_BRIDGE_CODER_CA_FILE", global = true)]
    pub coder_ca_file: Option<PathBuf>,
    #[arg(long, env = "SCIM_BRIDGE_WORKER", global = true)]
    pub worker: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_WORKER_CONCURRENCY", global = true)]
    pub worker_concurrency: Option<String>,
    /// The fewest resources the worker reconciles at once when Coder answers 429.
    #[arg(long, env = "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN", global = true)]
    pub worker_concurrency_min: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_MAX_ATTEMPTS", global = true)]
    pub max_attempts: Option<String>,
    #[arg(long, env = "SCIM_BRIDGE_DRIFT_INTERVAL", global = true)]
    pub drift_interval: Option<String>,
    /// What drift repair does with Coder accounts no SCIM resource manages: `report` or
    /// `suspend`.
    #[arg(long, env = "SCIM_BRIDGE_ORPHANS_ACTION", global = true)]
    pub orphans_action: Option<String>,
    /// Coder usernames or emails (comma-separated) drift repair never suspends: break-glass
    /// accounts.
    #[arg(long, env = "SCIM_BRIDGE_ORPHANS_ALLOW", global = true)]
    pub orphans_allow: Option<String>,
    /// How long an access token from /oauth/token lives (5m to 6h).
    #[arg(long, env = "SCIM_BRIDGE_OAUTH_TOKEN_TTL", global = true)]
    pub oauth_token_ttl: Option<String>,
    /// How long a worker's claim on an outbox row lasts before another replica may take it over.
    #[arg(long, env = "SCIM_BRIDGE_OUTBOX_LEASE", global = true)]
    pub outbox_lease: Option<String>,
    /// Push every audit record to this HTTPS URL as it commits (plain http only to loopback).
    #[arg(long, env = "SCIM_BRIDGE_AUDIT_WEBHOOK_URL", global = true)]
    pub audit_webhook_url: Option<String>,
    /// `json` (JSON lines, as `audit export` prints) or `set` (RFC 8417 Security Event Tokens).
    #[arg(long, env = "SCIM_BRIDGE_AUDIT_WEBHOOK_FORMAT", global = true)]
    pub audit_webhook_format: Option<String>,
    /// The most records in one delivery.
    #[arg(long, env = "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_SIZE", global = true)]
    pub audit_webhook_batch_size: Option<String>,
    /// How long a record waits for others to fill its batch.
    #[arg(long, env = "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_WAIT", global = true)]
    pub audit_webhook_batch_wait: Option<String>,
    /// The `aud` of SETs (default: the webhook URL).
    #[arg(long, env = "SCIM_BRIDGE_AUDIT_WEBHOOK_AUDIENCE", global = true)]
    pub audit_webhook_audience: Option<String>,
    /// `[users] allowed_email_domains`, comma-separated: the domains Coder's
    /// CODER_OIDC_EMAIL_DOMAIN accepts.
    #[arg(long, env = "SCIM_BRIDGE_USERS_ALLOWED_EMAIL_DOMAINS", global = true)]
    pub users_allowed_email_domains: Option<String>,
    /// `[users] outside_domain`: `provision` (default) or `skip` a user whose email is outside
    /// them.
    #[arg(long, env = "SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN", global = true)]
    pub users_outside_domain: Option<String>,
}

/// The TOML file. Unknown keys are refused so a typo is reported, not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    ops_listen: Option<String>,
    database_url: Option<String>,
    base_url: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    max_body_bytes: Option<u64>,
    trusted_proxies: Option<FileList>,
    #[serde(default)]
    jwt: FileJwt,
    #[serde(default)]
    rate_limit: FileRateLimit,
    #[serde(default)]
    bulk: FileBulk,
    #[serde(default)]
    coder: FileCoder,
    #[serde(default)]
    worker: FileWorker,
    #[serde(default)]
    oauth: FileOAuth,
    #[serde(default)]
    audit_webhook: audit_webhook::FileAuditWebhook,
    #[serde(default)]
    orphans: FileOrphans,
    // Mapping rules: handed as they are to the reconcile crate, which validates them.
    users: Option<toml::Value>,
    offboarding: Option<toml::Value>,
    groups: Option<toml::Value>,
    roles: Option<toml::Value>,
    entitlements: Option<toml::Value>,
    agents: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJwt {
    issuer: Option<String>,
    audience: Option<String>,
    rs256_key_file: Option<PathBuf>,
    jwks_file: Option<PathBuf>,
    allowed_clients: Option<Vec<String>>,
    default_scopes: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRateLimit {
    per_second: Option<u64>,
    burst: Option<u64>,
    auth_failures_per_second: Option<u64>,
    auth_failure_burst: Option<u64>,
}

/// A list in the TOML file, written as an array or as one comma-separated string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileList {
    One(String),
    Many(Vec<String>),
}

impl FileList {
    fn joined(self) -> String {
        match self {
            FileList::One(s) => s,
            FileList::Many(items) => items.join(","),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBulk {
    max_operations: Option<u64>,
    max_payload_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCoder {
    url: Option<String>,
    rate_limit: Option<u64>,
    allow_http: Option<bool>,
    ca_file: Option<PathBuf>,
}

/// `[orphans]`: a process setting (flag, variable or file) that drift repair applies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOrphans {
    action: Option<String>,
    allow: Option<FileList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOAuth {
    token_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWorker {
    enabled: Option<bool>,
    concurrency: Option<u64>,
    concurrency_min: Option<u64>,
    max_attempts: Option<u64>,
    drift_interval: Option<String>,
    lease: Option<String>,
}

/// The bridge's own token endpoint (`/oauth/token`).
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// Empty: the endpoint issues no access token.
    pub signing_keys: Vec<Secret>,
    pub token_ttl: Duration,
}

/// Outbox worker settings.
#[derive(Debug, Clone, Validate)]
pub struct WorkerSettings {
    pub enabled: bool,
    /// The most resources reconciled at once (the adaptive limit's ceiling).
    #[validate(range(min = 1, max = 256))]
    pub concurrency: u32,
    /// The fewest (its floor, where it starts); at most `concurrency`.
    #[validate(range(min = 1, max = 256))]
    pub concurrency_min: u32,
    #[validate(range(min = 1, max = 1000))]
    pub max_attempts: u32,
    /// Zero turns periodic drift repair off.
    pub drift_interval: Duration,
    /// How long a claim on an outbox row lasts (a reconcile is cut off at three quarters of it).
    pub lease: Duration,
}

/// Every setting, validated.
#[derive(Debug, Clone, Validate)]
pub struct Settings {
    pub listen: SocketAddr,
    /// `/healthz`, `/readyz` and `/metrics` on a listener of their own (and only there).
    pub ops_listen: Option<SocketAddr>,
    pub database_url: Secret,
    pub base_url: Option<url::Url>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub idp_tokens_file: Option<PathBuf>,
    /// JWT bearer validation (for IdPs that use OAuth), as the server takes it.
    pub jwt: Option<server::JwtConfig>,
    pub rate_limit_per_second: u32,
    #[validate(range(min = 1))]
    pub rate_limit_burst: u32,
    pub auth_failure_rate_limit_per_second: u32,
    #[validate(range(min = 1))]
    pub auth_failure_rate_limit_burst: u32,
    pub trusted_proxies: server::TrustedProxies,
    #[validate(range(min = 1024))]
    pub max_body_bytes: usize,
    #[validate(range(min = 1, max = 100000))]
    pub bulk_max_operations: usize,
    #[validate(range(min = 1024))]
    pub bulk_max_payload_bytes: usize,
    /// Where Coder is and how to reach it, as the Coder client takes it.
    pub coder: Option<coder::CoderConfig>,
    #[validate(nested)]
    pub worker: WorkerSettings,
    /// The mapping rules (`[users]`, `[offboarding]`, `[groups]`, `[roles]`) as written.
    pub rules: toml::Table,
    /// The audit chain's HMAC keys (empty: plain SHA-256). Only their ids are ever printed.
    pub audit_keys: store::AuditKeys,
    pub oauth: OAuthSettings,
    /// Where audit records are pushed as they commit; `None`: nowhere.
    pub audit_webhook: Option<audit_webhook::AuditWebhookSettings>,
}

/// `[orphans]` from its flags, variables or file keys, as the reconcile crate reads it; `None`
/// when nothing sets it (the defaults apply).
fn orphans_rules(
    args: &SettingsArgs,
    file: FileOrphans,
) -> Result<Option<toml::Table>, ConfigError> {
    let mut table = toml::Table::new();
    if let Some(action) = args.orphans_action.clone().or(file.action) {
        let action = action.trim().to_ascii_lowercase();
        if action != "report" && action != "suspend" {
            return Err(bad(
                "SCIM_BRIDGE_ORPHANS_ACTION",
                format!("'{action}' is neither \"report\" nor \"suspend\""),
            ));
        }
        table.insert("action".into(), toml::Value::String(action));
    }
    if let Some(allow) = args
        .orphans_allow
        .clone()
        .or(file.allow.map(FileList::joined))
    {
        let names: Vec<toml::Value> = allow
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| toml::Value::String(n.to_owned()))
            .collect();
        table.insert("allow".into(), toml::Value::Array(names));
    }
    Ok((!table.is_empty()).then_some(table))
}

/// The `[users]` keys a flag or variable may set, checked here so an error names the flag or
/// variable, and written into the rules, where they win over the file's.
fn users_from_layers(rules: &mut toml::Table, args: &SettingsArgs) -> Result<(), ConfigError> {
    let mut set = Vec::new();
    if let Some(raw) = &args.users_allowed_email_domains {
        let mut domains = Vec::new();
        for entry in raw.split(',').filter(|d| !d.trim().is_empty()) {
            let domain = reconcile::policy::parse_email_domain(entry)
                .map_err(|e| bad("SCIM_BRIDGE_USERS_ALLOWED_EMAIL_DOMAINS", e))?;
            domains.push(toml::Value::String(domain));
        }
        set.push(("allowed_email_domains", toml::Value::Array(domains)));
    }
    if let Some(raw) = &args.users_outside_domain {
        let action = reconcile::policy::OutsideDomain::parse(raw)
            .map_err(|e| bad("SCIM_BRIDGE_USERS_OUTSIDE_DOMAIN", e))?;
        set.push((
            "outside_domain",
            toml::Value::String(action.as_str().into()),
        ));
    }
    if set.is_empty() {
        return Ok(());
    }
    let users = rules
        .entry("users")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    // A `users` that is not a table is the rules' error to report.
    if let toml::Value::Table(users) = users {
        for (key, value) in set {
            users.insert(key.into(), value);
        }
    }
    Ok(())
}

/// The variable a validated field is set by, for error messages.
fn setting_name(field: &str) -> &'static str {
    match field {
        "rate_limit_burst" => "SCIM_BRIDGE_RATE_LIMIT_BURST",
        "auth_failure_rate_limit_burst" => "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT_BURST",
        "max_body_bytes" => "SCIM_BRIDGE_MAX_BODY_BYTES",
        "bulk_max_operations" => "SCIM_BRIDGE_BULK_MAX_OPERATIONS",
        "bulk_max_payload_bytes" => "SCIM_BRIDGE_BULK_MAX_PAYLOAD_BYTES",
        "concurrency" => "SCIM_BRIDGE_WORKER_CONCURRENCY",
        "concurrency_min" => "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN",
        "max_attempts" => "SCIM_BRIDGE_MAX_ATTEMPTS",
        _ => "settings",
    }
}

/// Where environment-only secrets are read from; a parameter so tests need not touch the
/// process environment.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

/// A secret from `NAME` or from the file named by `NAME_FILE` (trimmed). Both set is an error.
fn secret_from(env: &dyn Environment, name: &str) -> Result<Option<Secret>, ConfigError> {
    let file_var = format!("{name}_FILE");
    match (env.var(name), env.var(&file_var)) {
        (Some(_), Some(_)) => Err(bad(
            name,
            format!("set either {name} or {file_var}, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret::new(v.trim()))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(&file_var, format!("cannot read {path}: {e}")))?;
            let value = text.trim();
            if value.is_empty() {
                return Err(bad(&file_var, format!("{path} is empty")));
            }
            Ok(Some(Secret::new(value)))
        }
        (None, None) => Ok(None),
    }
}

/// The keys of a rotating secret `name` (`_FILE`): one key per line (blank lines skipped), each
/// at least `min_len` bytes; the first is the current key, the others earlier ones.
fn rotating_keys(
    env: &dyn Environment,
    name: &str,
    min_len: usize,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let Some(secret) = secret_from(env, name)? else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for (n, line) in secret.expose().lines().map(str::trim).enumerate() {
        if line.is_empty() {
            continue;
        }
        if line.len() < min_len {
            return Err(bad(
                name,
                format!(
                    "key {} is shorter than {min_len} bytes (make one with `openssl rand -hex 32`)",
                    n + 1
                ),
            ));
        }
        keys.push(line.as_bytes().to_vec());
    }
    Ok(keys)
}

/// The audit keys from `SCIM_BRIDGE_AUDIT_KEY` (`_FILE`): one key per line, the first hashing
/// new records, the others (earlier keys) only verifying the records they hashed.
fn audit_keys(env: &dyn Environment) -> Result<store::AuditKeys, ConfigError> {
    let mut keys = rotating_keys(env, "SCIM_BRIDGE_AUDIT_KEY", store::MIN_AUDIT_KEY_LEN)?
        .into_iter()
        .filter_map(|key| store::AuditKey::new(&key));
    match keys.next() {
        Some(current) => Ok(store::AuditKeys::new(current, keys.collect())),
        None => Ok(store::AuditKeys::default()),
    }
}

/// The shortest and longest access token lifetimes `SCIM_BRIDGE_OAUTH_TOKEN_TTL` accepts: Entra
/// expects tokens that live an hour up to six.
const OAUTH_TOKEN_TTL_RANGE: (Duration, Duration) = (
    Duration::from_secs(5 * 60),
    Duration::from_secs(6 * 60 * 60),
);

/// The token endpoint's settings: `SCIM_BRIDGE_OAUTH_SIGNING_KEY` (`_FILE`; one HMAC key per
/// line, the first signing, every one verifying) and the access token lifetime.
fn oauth_settings(
    env: &dyn Environment,
    ttl_flag: Option<&str>,
    ttl_file: Option<&str>,
) -> Result<OAuthSettings, ConfigError> {
    const TTL: &str = "SCIM_BRIDGE_OAUTH_TOKEN_TTL";
    let token_ttl = parse_duration(TTL, ttl_flag.or(ttl_file).unwrap_or("1h"))?;
    let (shortest, longest) = OAUTH_TOKEN_TTL_RANGE;
    if token_ttl < shortest || token_ttl > longest {
        return Err(bad(
            TTL,
            format!(
                "{} is out of range: an access token lives from 5m to 6h",
                humantime::format_duration(token_ttl)
            ),
        ));
    }
    let signing_keys = rotating_keys(env, "SCIM_BRIDGE_OAUTH_SIGNING_KEY", 32)?
        .into_iter()
        .map(|key| Secret::new(String::from_utf8_lossy(&key)))
        .collect();
    Ok(OAuthSettings {
        signing_keys,
        token_ttl,
    })
}

fn parse_num<T: std::str::FromStr>(setting: &str, raw: &str) -> Result<T, ConfigError> {
    raw.trim()
        .parse()
        .map_err(|_| bad(setting, format!("'{raw}' is not a valid whole number")))
}

/// Flag/env string first, then the file's number, then the default.
fn number<T>(
    setting: &str,
    flag: &Option<String>,
    file: Option<u64>,
    default: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + TryFrom<u64>,
{
    if let Some(raw) = flag {
        return parse_num(setting, raw);
    }
    match file {
        Some(n) => T::try_from(n).map_err(|_| bad(setting, format!("{n} is out of range"))),
        None => Ok(default),
    }
}

fn parse_bool(setting: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(bad(setting, format!("'{raw}' is not true or false"))),
    }
}

fn parse_duration(setting: &str, raw: &str) -> Result<Duration, ConfigError> {
    let raw = raw.trim();
    if raw == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(raw).map_err(|e| {
        bad(
            setting,
            format!("'{raw}' is not a duration such as 15m or 1h: {e}"),
        )
    })
}

fn parse_socket_addr(setting: &str, raw: &str) -> Result<SocketAddr, ConfigError> {
    raw.trim().parse().map_err(|_| {
        bad(
            setting,
            format!("'{raw}' is not a host:port socket address"),
        )
    })
}

fn parse_url(setting: &str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| bad(setting, format!("'{raw}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(
            setting,
            format!("'{raw}' must be an http:// or https:// URL"),
        ));
    }
    Ok(url)
}

fn validate_database_url(raw: &str) -> Result<(), ConfigError> {
    let ok = raw.starts_with("sqlite:")
        || raw.starts_with("postgres://")
        || raw.starts_with("postgresql://");
    if ok {
        Ok(())
    } else {
        // The URL may carry a password: name the scheme, not the value.
        let scheme = raw.split(':').next().unwrap_or("");
        Err(bad(
            "SCIM_BRIDGE_DATABASE_URL",
            format!("scheme '{scheme}' is not supported: use sqlite://PATH or postgres://…"),
        ))
    }
}

impl Settings {
    /// Resolve and validate every setting.
    pub fn load(args: &SettingsArgs, env: &dyn Environment) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        Settings::from_layers(args, env, file)
    }

    /// The settings from flags and variables (`args`), secrets (`env`) and the parsed file.
    fn from_layers(
        args: &SettingsArgs,
        env: &dyn Environment,
        file: FileSettings,
    ) -> Result<Settings, ConfigError> {
        let listen_raw = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = parse_socket_addr("SCIM_BRIDGE_LISTEN", &listen_raw)?;
        let ops_listen = match args.ops_listen.clone().or(file.ops_listen) {
            Some(raw) => Some(parse_socket_addr("SCIM_BRIDGE_OPS_LISTEN", &raw)?),
            None => None,
        };
        if ops_listen == Some(listen) && listen.port() != 0 {
            return Err(bad(
                "SCIM_BRIDGE_OPS_LISTEN",
                format!(
                    "{listen} is SCIM_BRIDGE_LISTEN's address: give the operations endpoints another port, or leave it unset to serve them beside the SCIM API"
                ),
            ));
        }

        let database_url = match (
            &args.database_url,
            secret_from(env, "SCIM_BRIDGE_DATABASE_URL")?,
        ) {
            (Some(url), _) => Secret::new(url.clone()),
            (None, Some(secret)) => secret,
            (None, None) => Secret::new(
                file.database_url
                    .unwrap_or_else(|| "sqlite://scim-bridge.db".into()),
            ),
        };
        validate_database_url(database_url.expose())?;

        let base_url = match args.base_url.clone().or(file.base_url) {
            Some(raw) => Some(parse_url("SCIM_BRIDGE_BASE_URL", &raw)?),
            None => None,
        };

        let jwt_issuer = args.jwt_issuer.clone().or(file.jwt.issuer);
        let jwt_audience = args.jwt_audience.clone().or(file.jwt.audience);
        let hs_secret = secret_from(env, "SCIM_BRIDGE_JWT_HS256_SECRET")?;
        let rs_key = args.jwt_rs256_key_file.clone().or(file.jwt.rs256_key_file);
        let jwks = args.jwt_jwks_file.clone().or(file.jwt.jwks_file);
        let mut jwt = jwt_settings(jwt_issuer, jwt_audience, hs_secret, rs_key, jwks)?;
        jwt_policy(
            &mut jwt,
            args.jwt_allowed_clients.as_deref(),
            file.jwt.allowed_clients,
            args.jwt_default_scopes
                .as_deref()
                .or(file.jwt.default_scopes.as_deref()),
        )?;

        let coder_token = secret_from(env, "SCIM_BRIDGE_CODER_TOKEN")?;
        let coder = match (args.coder_url.clone().or(file.coder.url), coder_token) {
            (Some(raw), Some(token)) => Some(coder::CoderConfig {
                rate_limit_per_second: NonZeroU32::new(number(
                    "SCIM_BRIDGE_CODER_RATE_LIMIT",
                    &args.coder_rate_limit,
                    file.coder.rate_limit,
                    8,
                )?),
                allow_http: match &args.coder_allow_http {
                    Some(raw) => parse_bool("SCIM_BRIDGE_CODER_ALLOW_HTTP", raw)?,
                    None => file.coder.allow_http.unwrap_or(false),
                },
                ca_file: args.coder_ca_file.clone().or(file.coder.ca_file),
                ..coder::CoderConfig::new(
                    parse_url("SCIM_BRIDGE_CODER_URL", &raw)?,
                    coder::SessionToken::new(token.expose()),
                )
            }),
            (Some(_), None) => {
                return Err(bad(
                    "SCIM_BRIDGE_CODER_TOKEN",
                    "SCIM_BRIDGE_CODER_URL is set but no Coder token was given (SCIM_BRIDGE_CODER_TOKEN or SCIM_BRIDGE_CODER_TOKEN_FILE)",
                ));
            }
            (None, Some(_)) => {
                return Err(bad(
                    "SCIM_BRIDGE_CODER_URL",
                    "a Coder token was given but no Coder URL",
                ));
            }
            (None, None) => None,
        };
        if let Some(coder) = &coder {
            // The owner token must not cross the network in clear text, nor go where a
            // certificate the bridge cannot check would let anyone read it.
            coder::CoderConfig::check_transport(&coder.url, coder.allow_http)
                .map_err(|e| bad("SCIM_BRIDGE_CODER_URL", coder_problem(e)))?;
            if let Some(path) = &coder.ca_file {
                coder::CoderConfig::check_ca_file(path)
                    .map_err(|e| bad("SCIM_BRIDGE_CODER_CA_FILE", coder_problem(e)))?;
            }
        }

        let worker = WorkerSettings {
            enabled: match &args.worker {
                Some(raw) => parse_bool("SCIM_BRIDGE_WORKER", raw)?,
                None => file.worker.enabled.unwrap_or(true),
            },
            concurrency: number(
                "SCIM_BRIDGE_WORKER_CONCURRENCY",
                &args.worker_concurrency,
                file.worker.concurrency,
                32,
            )?,
            concurrency_min: number(
                "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN",
                &args.worker_concurrency_min,
                file.worker.concurrency_min,
                1,
            )?,
            max_attempts: number(
                "SCIM_BRIDGE_MAX_ATTEMPTS",
                &args.max_attempts,
                file.worker.max_attempts,
                12,
            )?,
            drift_interval: parse_duration(
                "SCIM_BRIDGE_DRIFT_INTERVAL",
                args.drift_interval
                    .as_deref()
                    .or(file.worker.drift_interval.as_deref())
                    .unwrap_or("15m"),
            )?,
            lease: parse_duration(
                "SCIM_BRIDGE_OUTBOX_LEASE",
                args.outbox_lease
                    .as_deref()
                    .or(file.worker.lease.as_deref())
                    .unwrap_or("2m"),
            )?,
        };
        if worker.lease < Duration::from_secs(2) {
            return Err(bad(
                "SCIM_BRIDGE_OUTBOX_LEASE",
                "must be at least 2s: a reconcile has to fit in three quarters of it",
            ));
        }

        if let Some(path) = &args.idp_tokens_file
            && !path.is_file()
        {
            return Err(bad(
                "SCIM_BRIDGE_IDP_TOKENS_FILE",
                format!("{} is not a readable file", path.display()),
            ));
        }

        let trusted_proxies = match args
            .trusted_proxies
            .clone()
            .or(file.trusted_proxies.map(FileList::joined))
        {
            Some(raw) => raw
                .parse()
                .map_err(|e| bad("SCIM_BRIDGE_TRUSTED_PROXIES", format!("{e}")))?,
            None => server::TrustedProxies::none(),
        };

        let mut rules = toml::Table::new();
        for (key, value) in [
            ("users", file.users),
            ("offboarding", file.offboarding),
            ("groups", file.groups),
            ("roles", file.roles),
            ("entitlements", file.entitlements),
            ("agents", file.agents),
        ] {
            if let Some(v) = value {
                rules.insert(key.into(), v);
            }
        }
        if let Some(orphans) = orphans_rules(args, file.orphans)? {
            rules.insert("orphans".into(), toml::Value::Table(orphans));
        }

        let audit_webhook =
            audit_webhook::settings(args, env, file.audit_webhook, base_url.as_ref())?;
        users_from_layers(&mut rules, args)?;

        let settings = Settings {
            listen,
            ops_listen,
            database_url,
            base_url,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Auto),
            log_level: args
                .log_level
                .clone()
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            idp_tokens_file: args.idp_tokens_file.clone(),
            jwt,
            rate_limit_per_second: number(
                "SCIM_BRIDGE_RATE_LIMIT",
                &args.rate_limit,
                file.rate_limit.per_second,
                100,
            )?,
            rate_limit_burst: number(
                "SCIM_BRIDGE_RATE_LIMIT_BURST",
                &args.rate_limit_burst,
                file.rate_limit.burst,
                200,
            )?,
            auth_failure_rate_limit_per_second: number(
                "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT",
                &args.auth_failure_rate_limit,
                file.rate_limit.auth_failures_per_second,
                5,
            )?,
            auth_failure_rate_limit_burst: number(
                "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT_BURST",
                &args.auth_failure_rate_limit_burst,
                file.rate_limit.auth_failure_burst,
                20,
            )?,
            trusted_proxies,
            max_body_bytes: number(
                "SCIM_BRIDGE_MAX_BODY_BYTES",
                &args.max_body_bytes,
                file.max_body_bytes,
                1 << 20,
            )?,
            bulk_max_operations: number(
                "SCIM_BRIDGE_BULK_MAX_OPERATIONS",
                &args.bulk_max_operations,
                file.bulk.max_operations,
                1000,
            )?,
            bulk_max_payload_bytes: number(
                "SCIM_BRIDGE_BULK_MAX_PAYLOAD_BYTES",
                &args.bulk_max_payload_bytes,
                file.bulk.max_payload_bytes,
                1 << 20,
            )?,
            coder,
            worker,
            rules,
            audit_keys: audit_keys(env)?,
            oauth: oauth_settings(
                env,
                args.oauth_token_ttl.as_deref(),
                file.oauth.token_ttl.as_deref(),
            )?,
            audit_webhook,
        };
        settings.validate().map_err(validation_error)?;
        let worker = &settings.worker;
        if worker.concurrency_min > worker.concurrency {
            return Err(bad(
                "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN",
                format!(
                    "{} is above SCIM_BRIDGE_WORKER_CONCURRENCY ({})",
                    worker.concurrency_min, worker.concurrency
                ),
            ));
        }
        Ok(settings)
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    toml::from_str(&read_file_text(path)?)
        .map_err(|e| bad("SCIM_BRIDGE_CONFIG", format!("{}: {e}", path.display())))
}

fn read_file_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        bad(
            "SCIM_BRIDGE_CONFIG",
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

fn jwt_settings(
    issuer: Option<String>,
    audience: Option<String>,
    hs_secret: Option<Secret>,
    rs_key: Option<PathBuf>,
    jwks: Option<PathBuf>,
) -> Result<Option<server::JwtConfig>, ConfigError> {
    let keys = usize::from(hs_secret.is_some())
        + usize::from(rs_key.is_some())
        + usize::from(jwks.is_some());
    match (issuer, audience) {
        (None, None) if keys == 0 => Ok(None),
        (None, _) => Err(bad(
            "SCIM_BRIDGE_JWT_ISSUER",
            "JWT validation needs an issuer",
        )),
        (_, None) => Err(bad(
            "SCIM_BRIDGE_JWT_AUDIENCE",
            "JWT validation needs an audience",
        )),
        (Some(issuer), Some(audience)) => {
            if keys != 1 {
                return Err(bad(
                    "SCIM_BRIDGE_JWT_HS256_SECRET",
                    "JWT validation needs exactly one key: SCIM_BRIDGE_JWT_HS256_SECRET(_FILE), SCIM_BRIDGE_JWT_RS256_KEY_FILE or SCIM_BRIDGE_JWT_JWKS_FILE",
                ));
            }
            let key = if let Some(s) = hs_secret {
                server::JwtKey::Hs256(s.expose().as_bytes().to_vec())
            } else if let Some(p) = rs_key {
                server::JwtKey::Rs256Pem(read_key_file("SCIM_BRIDGE_JWT_RS256_KEY_FILE", &p)?)
            } else if let Some(p) = jwks {
                check_readable("SCIM_BRIDGE_JWT_JWKS_FILE", &p)?;
                // The server re-reads the file when it changes (keys rotate without a restart).
                server::JwtKey::JwksFile(p)
            } else {
                return Err(bad("SCIM_BRIDGE_JWT_HS256_SECRET", "no JWT key given"));
            };
            // Any client and both scopes unless `jwt_policy` narrows them.
            Ok(Some(server::JwtConfig::new(issuer, audience, key)))
        }
    }
}

/// The client allowlist (flag/env as a comma-separated list, else the file's array) and the
/// default scopes; both need JWT validation to be configured.
fn jwt_policy(
    jwt: &mut Option<server::JwtConfig>,
    clients_flag: Option<&str>,
    clients_file: Option<Vec<String>>,
    default_scopes: Option<&str>,
) -> Result<(), ConfigError> {
    const CLIENTS: &str = "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS";
    const SCOPES: &str = "SCIM_BRIDGE_JWT_DEFAULT_SCOPES";
    let clients: Option<Vec<String>> = match clients_flag {
        Some(raw) => Some(raw.split(',').map(|c| c.trim().to_string()).collect()),
        None => clients_file,
    };
    let Some(jwt) = jwt else {
        for (setting, given) in [
            (CLIENTS, clients.is_some()),
            (SCOPES, default_scopes.is_some()),
        ] {
            if given {
                return Err(bad(
                    setting,
                    "needs JWT validation (SCIM_BRIDGE_JWT_ISSUER, …)",
                ));
            }
        }
        return Ok(());
    };
    if let Some(clients) = clients {
        if clients.is_empty() || clients.iter().any(String::is_empty) {
            return Err(bad(CLIENTS, "a client id is empty"));
        }
        jwt.allowed_clients = clients;
    }
    if let Some(raw) = default_scopes {
        // An empty set is allowed: such tokens then need an `scp` or `scope` claim.
        jwt.default_scopes = raw
            .parse()
            .map_err(|e: store::UnknownScope| bad(SCOPES, e.to_string()))?;
    }
    Ok(())
}

/// The client's explanation without its "invalid Coder client configuration" prefix: the
/// setting's name already says where the problem is.
fn coder_problem(error: coder::CoderError) -> String {
    match error {
        coder::CoderError::Config(problem) => problem,
        other => other.to_string(),
    }
}

fn check_readable(setting: &str, path: &Path) -> Result<(), ConfigError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
}

fn read_key_file(setting: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| bad(setting, format!("cannot read {}: {e}", path.display())))
}

fn validation_error(errors: validator::ValidationErrors) -> ConfigError {
    use validator::ValidationErrorsKind;
    fn first(errors: &validator::ValidationErrors) -> Option<ConfigError> {
        for (field, kind) in errors.errors() {
            match kind {
                ValidationErrorsKind::Field(list) => {
                    if let Some(e) = list.first() {
                        let bounds = match (e.params.get("min"), e.params.get("max")) {
                            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
                            (Some(min), None) => format!("must be at least {min}"),
                            (None, Some(max)) => format!("must be at most {max}"),
                            (None, None) => "is invalid".to_string(),
                        };
                        let value = e
                            .params
                            .get("value")
                            .map(|v| format!(" (got {v})"))
                            .unwrap_or_default();
                        return Some(bad(setting_name(field), format!("{bounds}{value}")));
                    }
                }
                ValidationErrorsKind::Struct(inner) => {
                    if let Some(e) = first(inner) {
                        return Some(e);
                    }
                }
                ValidationErrorsKind::List(map) => {
                    for inner in map.values() {
                        if let Some(e) = first(inner) {
                            return Some(e);
                        }
                    }
                }
            }
        }
        None
    }
    first(&errors).unwrap_or_else(|| bad("settings", errors.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(super) struct FakeEnv(HashMap<&'static str, String>);
    impl Environment for FakeEnv {
        fn var(&self, name: &str) -> Option<String> {
            self.0.get(name).cloned()
        }
    }
    /// The environment `pairs` give (the submodules' tests use it too).
    pub(super) fn env(pairs: &[(&'static str, &str)]) -> FakeEnv {
        FakeEnv(pairs.iter().map(|(k, v)| (*k, v.to_string())).collect())
    }

    /// The default flags with `set` applied, e.g. `flags(|a| a.listen = Some("nope".into()))`.
    pub(super) fn flags(set: impl FnOnce(&mut SettingsArgs)) -> SettingsArgs {
        let mut args = SettingsArgs::default();
        set(&mut args);
        args
    }

    /// Writes `text` to the file `name` in `dir`; its path.
    pub(super) fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A `bridge.toml` holding `toml`, in a directory that lasts as long as the `TempDir`,
    /// and the flags that name it.
    pub(super) fn config_file(toml: &str) -> (tempfile::TempDir, SettingsArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "bridge.toml", toml);
        (dir, flags(|a| a.config = Some(path)))
    }

    /// The settings `args` give with an empty environment.
    fn loaded(args: &SettingsArgs) -> Settings {
        Settings::load(args, &env(&[])).unwrap()
    }

    /// The error `args` give with an empty environment.
    fn refused(args: &SettingsArgs) -> ConfigError {
        Settings::load(args, &env(&[])).unwrap_err()
    }

    #[test]
    fn defaults_are_documented_values() {
        let s = loaded(&SettingsArgs::default());
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose(), "sqlite://scim-bridge.db");
        assert_eq!(s.rate_limit_per_second, 100);
        assert_eq!(s.worker.max_attempts, 12);
        assert_eq!(s.worker.drift_interval, Duration::from_secs(900));
        assert!(s.coder.is_none());
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let (_dir, from_file) = config_file(
            "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 4096\n[worker]\nconcurrency = 2\n[roles]\nbaseline_site_roles = []\n",
        );
        let s = loaded(&SettingsArgs {
            listen: Some("127.0.0.1:9100".into()),
            ..from_file
        });
        assert_eq!(s.listen.port(), 9100);
        assert_eq!(s.max_body_bytes, 4096);
        assert_eq!(s.worker.concurrency, 2);
        assert!(s.rules.contains_key("roles"));
    }

    #[test]
    fn ops_listen_is_optional_layered_and_not_the_scim_address() {
        let s = loaded(&SettingsArgs::default());
        assert_eq!(s.ops_listen, None, "unset: probes share the SCIM listener");
        let (_dir, from_file) =
            config_file("listen = \"0.0.0.0:8080\"\nops_listen = \"0.0.0.0:9090\"\n");
        let s = loaded(&from_file);
        assert_eq!(s.ops_listen.unwrap().to_string(), "0.0.0.0:9090");
        let flag = SettingsArgs {
            ops_listen: Some("127.0.0.1:9191".into()),
            ..from_file
        };
        let s = loaded(&flag);
        assert_eq!(s.ops_listen.unwrap().to_string(), "127.0.0.1:9191");
        for (ops, problem) in [
            ("9090", "not a host:port"),
            ("127.0.0.1:8080", "SCIM_BRIDGE_LISTEN's address"),
        ] {
            let e = refused(&flags(|a| a.ops_listen = Some(ops.into())));
            assert_eq!(e.setting, "SCIM_BRIDGE_OPS_LISTEN", "{ops}");
            assert!(e.problem.contains(problem), "{ops}: {e}");
        }
    }

    #[test]
    fn errors_name_the_setting() {
        for (args, setting) in [
            (
                flags(|a| a.listen = Some("nope".into())),
                "SCIM_BRIDGE_LISTEN",
            ),
            (
                flags(|a| a.worker_concurrency = Some("0".into())),
                "SCIM_BRIDGE_WORKER_CONCURRENCY",
            ),
            (
                flags(|a| {
                    a.worker_concurrency = Some("8".into());
                    a.worker_concurrency_min = Some("9".into());
                }),
                "SCIM_BRIDGE_WORKER_CONCURRENCY_MIN",
            ),
            (
                flags(|a| a.database_url = Some("mysql://x".into())),
                "SCIM_BRIDGE_DATABASE_URL",
            ),
            (
                flags(|a| a.coder_url = Some("https://coder.example.com".into())),
                "SCIM_BRIDGE_CODER_TOKEN",
            ),
            (
                flags(|a| a.drift_interval = Some("soon".into())),
                "SCIM_BRIDGE_DRIFT_INTERVAL",
            ),
        ] {
            assert_eq!(refused(&args).setting, setting);
        }
        let e = refused(&flags(|a| a.worker_concurrency = Some("0".into())));
        assert!(e.problem.contains("between 1 and 256"), "{}", e.problem);
    }

    #[test]
    fn orphans_come_from_the_file_or_its_variables_which_win() {
        let policy = |s: &Settings| reconcile::Policy::from_toml(&s.rules).unwrap().orphans;
        let defaults = loaded(&SettingsArgs::default());
        assert_eq!(
            policy(&defaults),
            reconcile::orphans::OrphanPolicy::default()
        );

        let (_dir, from_file) = config_file(
            "[orphans]\naction = \"suspend\"\nallow = [\"BreakGlass\", \"oncall@corp.example\"]\n",
        );
        let s = loaded(&from_file);
        assert_eq!(policy(&s).action, reconcile::orphans::OrphanAction::Suspend);
        assert_eq!(policy(&s).allow, ["breakglass", "oncall@corp.example"]);

        let s = loaded(&SettingsArgs {
            orphans_action: Some("report".into()),
            orphans_allow: Some("root, ops".into()),
            ..from_file
        });
        assert_eq!(policy(&s).action, reconcile::orphans::OrphanAction::Report);
        assert_eq!(policy(&s).allow, ["root", "ops"]);

        let e = refused(&flags(|a| a.orphans_action = Some("delete".into())));
        assert_eq!(e.setting, "SCIM_BRIDGE_ORPHANS_ACTION");
    }

    #[test]
    fn edge_settings_come_from_flags_or_the_file_and_errors_name_them() {
        let defaults = loaded(&SettingsArgs::default());
        assert_eq!(defaults.auth_failure_rate_limit_per_second, 5);
        assert_eq!(defaults.auth_failure_rate_limit_burst, 20);
        assert!(defaults.trusted_proxies.is_empty());

        let (_dir, args) = config_file(
            "trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\"]\n[rate_limit]\nauth_failures_per_second = 2\nauth_failure_burst = 4\n",
        );
        let s = loaded(&args);
        assert_eq!(s.auth_failure_rate_limit_per_second, 2);
        assert_eq!(s.auth_failure_rate_limit_burst, 4);
        assert!(s.trusted_proxies.contains("10.2.3.4".parse().unwrap()));
        assert!(s.trusted_proxies.contains("192.168.1.7".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("192.168.1.8".parse().unwrap()));

        let s = loaded(&flags(|a| {
            a.trusted_proxies = Some("10.0.0.1, fd00::/8".into());
        }));
        assert!(s.trusted_proxies.contains("fd00::1".parse().unwrap()));

        let e = refused(&flags(|a| {
            a.trusted_proxies = Some("10.0.0.0/8,proxy.internal".into());
        }));
        assert_eq!(e.setting, "SCIM_BRIDGE_TRUSTED_PROXIES");
        assert!(e.problem.contains("proxy.internal"), "{}", e.problem);
        let e = refused(&flags(|a| {
            a.auth_failure_rate_limit_burst = Some("0".into());
        }));
        assert_eq!(e.setting, "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT_BURST");
        let e = refused(&flags(|a| a.auth_failure_rate_limit = Some("many".into())));
        assert_eq!(e.setting, "SCIM_BRIDGE_AUTH_FAILURE_RATE_LIMIT");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let (_dir, args) = config_file("listn = \"127.0.0.1:9000\"\n");
        let e = refused(&args);
        assert_eq!(e.setting, "SCIM_BRIDGE_CONFIG");
        assert!(e.problem.contains("listn"), "{}", e.problem);
    }

    #[test]
    fn secrets_from_file_and_never_debug_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, "coder-token", "  s3cr3t-coder-token\n");
        let args = flags(|a| a.coder_url = Some("http://127.0.0.1:3000".into()));
        let s = Settings::load(
            &args,
            &env(&[("SCIM_BRIDGE_CODER_TOKEN_FILE", path.to_str().unwrap())]),
        )
        .unwrap();
        let coder = s.coder.clone().unwrap();
        assert_eq!(coder.token.expose(), "s3cr3t-coder-token");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let both = env(&[
            ("SCIM_BRIDGE_CODER_TOKEN", "a"),
            ("SCIM_BRIDGE_CODER_TOKEN_FILE", path.to_str().unwrap()),
        ]);
        assert_eq!(
            Settings::load(&args, &both).unwrap_err().setting,
            "SCIM_BRIDGE_CODER_TOKEN"
        );
    }

    #[test]
    fn plain_http_to_coder_only_on_loopback_unless_allowed() {
        let token = env(&[("SCIM_BRIDGE_CODER_TOKEN", "t")]);
        let remote = |allow: Option<&str>| SettingsArgs {
            coder_url: Some("http://coder.internal.example.com:3000".into()),
            coder_allow_http: allow.map(str::to_owned),
            ..Default::default()
        };
        let e = Settings::load(&remote(None), &token).unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_CODER_URL");
        assert!(
            e.problem.contains("SCIM_BRIDGE_CODER_ALLOW_HTTP=true")
                && e.problem.contains("http://coder.internal.example.com:3000"),
            "{}",
            e.problem
        );
        assert_eq!(
            Settings::load(&remote(Some("false")), &token)
                .unwrap_err()
                .setting,
            "SCIM_BRIDGE_CODER_URL"
        );
        let allowed = Settings::load(&remote(Some("true")), &token).unwrap();
        assert!(allowed.coder.unwrap().allow_http);
        assert_eq!(
            Settings::load(&remote(Some("maybe")), &token)
                .unwrap_err()
                .setting,
            "SCIM_BRIDGE_CODER_ALLOW_HTTP"
        );
        // The TOML key does the same.
        let (_dir, from_file) = config_file(
            "[coder]\nurl = \"http://coder.internal.example.com:3000\"\nallow_http = true\n",
        );
        assert!(
            Settings::load(&from_file, &token)
                .unwrap()
                .coder
                .unwrap()
                .allow_http
        );
        // Loopback and https need nothing.
        for url in [
            "http://127.0.0.1:3000",
            "http://localhost:3000",
            "http://[::1]:3000",
            "https://coder.example.com",
        ] {
            let args = flags(|a| a.coder_url = Some(url.into()));
            let coder = Settings::load(&args, &token).unwrap().coder.unwrap();
            assert!(!coder.allow_http, "{url}");
        }
    }

    #[test]
    fn the_coder_ca_file_must_hold_a_certificate() {
        let token = env(&[("SCIM_BRIDGE_CODER_TOKEN", "t")]);
        let dir = tempfile::tempdir().unwrap();
        let empty = write_file(&dir, "empty.pem", "");
        for path in [dir.path().join("absent.pem"), empty] {
            let args = SettingsArgs {
                coder_url: Some("https://coder.example.com".into()),
                coder_ca_file: Some(path.clone()),
                ..Default::default()
            };
            let e = Settings::load(&args, &token).unwrap_err();
            assert_eq!(e.setting, "SCIM_BRIDGE_CODER_CA_FILE");
            assert!(
                e.problem.contains(&path.display().to_string()),
                "{}",
                e.problem
            );
        }
    }

    #[test]
    fn audit_keys_come_from_the_environment_or_a_file() {
        let none = loaded(&SettingsArgs::default());
        assert!(none.audit_keys.current().is_none());

        let with_env =
            |pairs: &[(&'static str, &str)]| Settings::load(&SettingsArgs::default(), &env(pairs));
        let current = "c".repeat(32);
        let s = with_env(&[("SCIM_BRIDGE_AUDIT_KEY", &current)]).unwrap();
        let id = store::AuditKey::new(current.as_bytes())
            .unwrap()
            .id()
            .to_string();
        assert_eq!(s.audit_keys.current().unwrap().id(), id);
        let printed = format!("{s:?}");
        assert!(
            printed.contains(&id) && !printed.contains(&current),
            "{printed}"
        );

        // A file: the first line hashes, the others are earlier keys.
        let dir = tempfile::tempdir().unwrap();
        let previous = "p".repeat(40);
        let path = write_file(&dir, "audit-key", &format!("{current}\n\n{previous}\n"));
        let s = with_env(&[("SCIM_BRIDGE_AUDIT_KEY_FILE", path.to_str().unwrap())]).unwrap();
        assert_eq!(s.audit_keys.current().unwrap().id(), id);
        assert!(
            format!("{:?}", s.audit_keys)
                .contains(store::AuditKey::new(previous.as_bytes()).unwrap().id())
        );

        let e = with_env(&[("SCIM_BRIDGE_AUDIT_KEY", "tiny-key")]).unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_AUDIT_KEY");
        assert!(e.problem.contains("32 bytes"), "{}", e.problem);
        assert!(!e.problem.contains("tiny-key"), "the key is not echoed");
    }

    /// The flags of JWT validation without a key.
    fn jwt_flags() -> SettingsArgs {
        SettingsArgs {
            jwt_issuer: Some("https://sts.windows.net/t/".into()),
            jwt_audience: Some("aud".into()),
            ..Default::default()
        }
    }

    #[test]
    fn jwt_needs_exactly_one_key() {
        let args = jwt_flags();
        assert!(Settings::load(&args, &env(&[])).is_err());
        let s = Settings::load(&args, &env(&[("SCIM_BRIDGE_JWT_HS256_SECRET", "k")])).unwrap();
        assert!(matches!(s.jwt.unwrap().key, server::JwtKey::Hs256(_)));
    }

    #[test]
    fn jwt_clients_and_default_scopes() {
        let secret = env(&[("SCIM_BRIDGE_JWT_HS256_SECRET", "k")]);
        let args = SettingsArgs {
            jwt_allowed_clients: Some("app-1, app-2".into()),
            jwt_default_scopes: Some("scim:read".into()),
            ..jwt_flags()
        };
        let jwt = Settings::load(&args, &secret).unwrap().jwt.unwrap();
        assert_eq!(jwt.allowed_clients, ["app-1", "app-2"]);
        assert_eq!(jwt.default_scopes, store::Scopes::READ);

        let (_dir, file) = config_file(
            "[jwt]\nissuer = \"i\"\naudience = \"a\"\nallowed_clients = [\"app-3\"]\ndefault_scopes = \"\"\n",
        );
        let jwt = Settings::load(&file, &secret).unwrap().jwt.unwrap();
        assert_eq!(jwt.allowed_clients, ["app-3"]);
        assert_eq!(jwt.default_scopes, store::Scopes::NONE);

        let unknown = SettingsArgs {
            jwt_default_scopes: Some("scim:admin".into()),
            ..args.clone()
        };
        let e = Settings::load(&unknown, &secret).unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_JWT_DEFAULT_SCOPES");
        assert!(e.problem.contains("scim:admin"), "{}", e.problem);
        let empty_client = SettingsArgs {
            jwt_allowed_clients: Some("app-1,".into()),
            ..args.clone()
        };
        assert_eq!(
            Settings::load(&empty_client, &secret).unwrap_err().setting,
            "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS"
        );
        let without_jwt = flags(|a| a.jwt_allowed_clients = Some("app-1".into()));
        assert_eq!(
            refused(&without_jwt).setting,
            "SCIM_BRIDGE_JWT_ALLOWED_CLIENTS"
        );
    }
}

#[cfg(test)]
mod oauth_tests {
    use super::tests::{config_file, env, flags};
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn the_token_lifetime_is_an_hour_by_default_and_bounded() {
        let s = Settings::load(&SettingsArgs::default(), &env(&[])).unwrap();
        assert_eq!(s.oauth.token_ttl, Duration::from_secs(3600));
        assert!(s.oauth.signing_keys.is_empty());

        let (_dir, from_file) = config_file("[oauth]\ntoken_ttl = \"6h\"\n");
        let s = Settings::load(&from_file, &env(&[])).unwrap();
        assert_eq!(s.oauth.token_ttl, Duration::from_secs(6 * 3600));
        let flag = SettingsArgs {
            oauth_token_ttl: Some("5m".into()),
            ..from_file
        };
        let s = Settings::load(&flag, &env(&[])).unwrap();
        assert_eq!(s.oauth.token_ttl, Duration::from_secs(300));

        for out_of_range in ["4m", "6h 1s", "0", "7d"] {
            let args = flags(|a| a.oauth_token_ttl = Some(out_of_range.into()));
            let e = Settings::load(&args, &env(&[])).unwrap_err();
            assert_eq!(e.setting, "SCIM_BRIDGE_OAUTH_TOKEN_TTL", "{out_of_range}");
            assert!(e.problem.contains("5m to 6h"), "{}", e.problem);
        }
    }

    #[test]
    fn signing_keys_rotate_one_a_line_and_short_ones_are_refused() {
        let keys = format!("{KEY}-new\n\n{KEY}-old\n");
        let env_keys = env(&[("SCIM_BRIDGE_OAUTH_SIGNING_KEY", &keys)]);
        let s = Settings::load(&SettingsArgs::default(), &env_keys).unwrap();
        let keys: Vec<&str> = s.oauth.signing_keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, [format!("{KEY}-new"), format!("{KEY}-old")]);
        assert!(!format!("{s:?}").contains(KEY), "a key reached Debug");

        let short_keys = format!("{KEY}\nshort");
        let short = env(&[("SCIM_BRIDGE_OAUTH_SIGNING_KEY", &short_keys)]);
        let e = Settings::load(&SettingsArgs::default(), &short).unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_OAUTH_SIGNING_KEY");
        assert!(e.problem.contains("key 2"), "{}", e.problem);
    }
}
