//! The live audit stream's webhook settings (`SCIM_BRIDGE_AUDIT_WEBHOOK_*`, TOML
//! `[audit_webhook]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Environment, Secret, SettingsArgs, bad, parse_duration, secret_from};

/// `[audit_webhook]` in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuditWebhook {
    url: Option<String>,
    format: Option<String>,
    batch_size: Option<u64>,
    batch_wait: Option<String>,
    audience: Option<String>,
    /// A file holding the HMAC secret (the secret itself never goes in the TOML file).
    secret_file: Option<PathBuf>,
}

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// JSON lines: the records as `audit export` prints them, each with its `event_id`.
    Json,
    /// One RFC 8417 Security Event Token per request (RFC 8935 push), with RFC 9967 SCIM
    /// provisioning events.
    Set,
}

/// Where and how audit records are pushed.
#[derive(Clone)]
pub struct AuditWebhookSettings {
    pub url: url::Url,
    /// Signs every body (`X-Scim-Bridge-Signature`); also the HS256 key of SETs.
    pub secret: Option<Secret>,
    pub format: WebhookFormat,
    /// The most records in one delivery.
    pub batch_size: u32,
    /// How long the oldest record of a batch that is not full waits for company.
    pub batch_wait: Duration,
    /// A SET's `aud` (default: the webhook URL).
    pub audience: String,
    /// A SET's `iss`: the SCIM base URL.
    pub issuer: Option<String>,
}

impl std::fmt::Debug for AuditWebhookSettings {
    /// Without the URL's query, which may hold a receiver's token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWebhookSettings")
            .field("url", &shown_url(&self.url))
            .field("secret", &self.secret)
            .field("format", &self.format)
            .field("batch_size", &self.batch_size)
            .field("batch_wait", &self.batch_wait)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// The most records one delivery carries.
const MAX_BATCH: u32 = 10_000;

pub(super) fn settings(
    args: &SettingsArgs,
    env: &dyn Environment,
    file: FileAuditWebhook,
    base_url: Option<&url::Url>,
) -> Result<Option<AuditWebhookSettings>, ConfigError> {
    const URL: &str = "SCIM_BRIDGE_AUDIT_WEBHOOK_URL";
    const SECRET: &str = "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET";
    const FORMAT: &str = "SCIM_BRIDGE_AUDIT_WEBHOOK_FORMAT";
    const BATCH_SIZE: &str = "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_SIZE";
    const BATCH_WAIT: &str = "SCIM_BRIDGE_AUDIT_WEBHOOK_BATCH_WAIT";
    let secret = match (secret_from(env, SECRET)?, &file.secret_file) {
        (Some(_), Some(_)) => {
            return Err(bad(
                SECRET,
                "set either SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET(_FILE) or audit_webhook.secret_file, not both",
            ));
        }
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(SECRET, format!("cannot read {}: {e}", path.display())))?;
            let value = text.trim();
            if value.is_empty() {
                return Err(bad(SECRET, format!("{} is empty", path.display())));
            }
            Some(Secret::new(value))
        }
        (None, None) => None,
    };
    if let Some(secret) = &secret
        && secret.expose().len() < 32
    {
        return Err(bad(
            SECRET,
            "shorter than 32 bytes (make one with `openssl rand -hex 32`)",
        ));
    }
    let Some(raw) = args.audit_webhook_url.clone().or(file.url) else {
        let stray = [
            (
                FORMAT,
                args.audit_webhook_format.is_some() || file.format.is_some(),
            ),
            (SECRET, secret.is_some()),
        ];
        if let Some((setting, _)) = stray.iter().find(|(_, given)| *given) {
            return Err(bad(setting, format!("needs {URL}")));
        }
        return Ok(None);
    };
    let url = check_url(URL, &raw)?;
    let format = match args
        .audit_webhook_format
        .as_deref()
        .or(file.format.as_deref())
        .unwrap_or("json")
        .trim()
    {
        "json" => WebhookFormat::Json,
        "set" => WebhookFormat::Set,
        other => {
            return Err(bad(
                FORMAT,
                format!("'{other}' is not a format: use json or set"),
            ));
        }
    };
    let batch_size: u32 = super::number(
        BATCH_SIZE,
        &args.audit_webhook_batch_size,
        file.batch_size,
        100,
    )?;
    if !(1..=MAX_BATCH).contains(&batch_size) {
        return Err(bad(
            BATCH_SIZE,
            format!("must be between 1 and {MAX_BATCH} (got {batch_size})"),
        ));
    }
    let batch_wait = parse_duration(
        BATCH_WAIT,
        args.audit_webhook_batch_wait
            .as_deref()
            .or(file.batch_wait.as_deref())
            .unwrap_or("1s"),
    )?;
    if batch_wait > Duration::from_secs(300) {
        return Err(bad(BATCH_WAIT, "must be at most 5m"));
    }
    let issuer = base_url.map(|u| u.as_str().trim_end_matches('/').to_string());
    if format == WebhookFormat::Set && issuer.is_none() {
        return Err(bad(
            FORMAT,
            "set needs SCIM_BRIDGE_BASE_URL: it is every SET's issuer (iss)",
        ));
    }
    let audience = args
        .audit_webhook_audience
        .clone()
        .or(file.audience)
        .unwrap_or_else(|| {
            // The receiver's URL without a query (which may hold its token).
            let mut audience = url.clone();
            audience.set_query(None);
            audience.to_string()
        });
    Ok(Some(AuditWebhookSettings {
        url,
        secret,
        format,
        batch_size,
        batch_wait,
        audience,
        issuer,
    }))
}

/// HTTPS only, except to a loopback address (a receiver on the same host, and tests): audit
/// records name people and what was done to their access. No credentials in the URL: they
/// would be logged by every proxy on the way.
fn check_url(setting: &str, raw: &str) -> Result<url::Url, ConfigError> {
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(setting, format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                setting,
                format!(
                    "{} is plain http to a host that is not loopback: audit records would cross \
                     the network unencrypted; use https",
                    shown_url(&url)
                ),
            ));
        }
        other => {
            return Err(bad(
                setting,
                format!("scheme '{other}' is not supported: use https://"),
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            setting,
            "the URL carries credentials: give the receiver's shared secret as \
             SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET instead",
        ));
    }
    Ok(url)
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

/// The URL as logs and `config check` show it: without its query, which some receivers use
/// for a token.
pub fn shown_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.query().is_some() {
        shown.set_query(Some("redacted"));
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    /// The flags of a webhook to `url`.
    fn webhook_flags(url: &str) -> SettingsArgs {
        SettingsArgs {
            audit_webhook_url: Some(url.into()),
            ..Default::default()
        }
    }

    fn load(
        url: &str,
        vars: &[(&'static str, &str)],
    ) -> Result<Option<AuditWebhookSettings>, ConfigError> {
        let args = webhook_flags(url);
        settings(&args, &env(vars), FileAuditWebhook::default(), None)
    }

    #[test]
    fn https_is_required_except_to_loopback() {
        for ok in [
            "https://siem.example.com/hook",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/",
            "http://localhost/",
        ] {
            assert!(load(ok, &[]).unwrap().is_some(), "{ok}");
        }
        for (refused, why) in [
            ("http://siem.example.com/hook", "plain http"),
            ("http://10.0.0.1/hook", "plain http"),
            ("ftp://siem.example.com/", "scheme"),
            ("https://user:pw@siem.example.com/", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let e = load(refused, &[]).unwrap_err();
            assert_eq!(e.setting, "SCIM_BRIDGE_AUDIT_WEBHOOK_URL");
            assert!(e.problem.contains(why), "{refused}: {}", e.problem);
        }
    }

    #[test]
    fn the_secret_is_long_and_never_shown() {
        let e = load(
            "https://siem.example.com/",
            &[("SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET", "tiny-s3cret")],
        )
        .unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET");
        assert!(!e.problem.contains("tiny-s3cret"), "{}", e.problem);
        let secret = "s".repeat(40);
        let s = load(
            "https://siem.example.com/?token=abc",
            &[("SCIM_BRIDGE_AUDIT_WEBHOOK_SECRET", &secret)],
        )
        .unwrap()
        .unwrap();
        let shown = format!("{s:?} {}", shown_url(&s.url));
        assert!(
            !shown.contains(&secret) && !shown.contains("abc"),
            "{shown}"
        );
    }

    #[test]
    fn a_set_stream_needs_an_issuer() {
        let args = SettingsArgs {
            audit_webhook_format: Some("set".into()),
            ..webhook_flags("https://siem.example.com/")
        };
        let env = env(&[]);
        let e = settings(&args, &env, FileAuditWebhook::default(), None).unwrap_err();
        assert_eq!(e.setting, "SCIM_BRIDGE_AUDIT_WEBHOOK_FORMAT");
        let base = url::Url::parse("https://scim.example.com/scim/v2").unwrap();
        let s = settings(&args, &env, FileAuditWebhook::default(), Some(&base))
            .unwrap()
            .unwrap();
        assert_eq!(
            s.issuer.as_deref(),
            Some("https://scim.example.com/scim/v2")
        );
        assert_eq!(s.audience, "https://siem.example.com/");
        assert_eq!((s.batch_size, s.batch_wait), (100, Duration::from_secs(1)));
    }
}
