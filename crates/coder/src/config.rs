//! How to reach Coder: URL, session token, timeout and outbound pacing.

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::CoderError;

/// A Coder session token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> SessionToken {
        SessionToken(token.into())
    }

    /// The id of the API key this token is (`<id>-<secret>`: the part before the dash), to look
    /// its expiry up; `None` for a token of another shape.
    pub fn key_id(&self) -> Option<&str> {
        let (id, secret) = self.0.split_once('-')?;
        (!id.is_empty() && !secret.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
            .then_some(id)
    }

    /// The token itself, for the `Coder-Session-Token` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Configuration of a [`crate::CoderClient`].
#[derive(Debug, Clone)]
pub struct CoderConfig {
    /// Coder's access URL (`https://coder.example.com`); a path prefix is kept.
    pub url: Url,
    /// Session token of the bridge's Coder account (ideally an `owner`).
    pub token: SessionToken,
    /// Timeout of one request, connection included.
    pub timeout: Duration,
    /// Outbound requests per second over all clones of the client; `None` = unpaced.
    pub rate_limit_per_second: Option<NonZeroU32>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Extra PEM CA bundle to trust besides the platform's roots (a container may have none).
    pub ca_file: Option<PathBuf>,
    /// Whether an `http://` URL to a host other than loopback is accepted (the token then
    /// crosses the network in clear text). Off by default.
    pub allow_http: bool,
}

impl CoderConfig {
    /// Default request timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// A configuration with the default timeout, no pacing and this crate's user agent.
    pub fn new(url: Url, token: SessionToken) -> CoderConfig {
        CoderConfig {
            url,
            token,
            timeout: Self::DEFAULT_TIMEOUT,
            rate_limit_per_second: None,
            user_agent: concat!("scim-bridge/", env!("CARGO_PKG_VERSION")).to_owned(),
            ca_file: None,
            allow_http: false,
        }
    }

    /// Checks a PEM CA bundle as the client will read it: readable, holding at least one
    /// certificate.
    pub fn check_ca_file(path: &Path) -> Result<(), CoderError> {
        crate::client::read_ca_bundle(path).map(drop)
    }

    /// Refuses a URL over which the session token would cross the network in clear text:
    /// `http://` is accepted only to a loopback host (127.0.0.0/8, `::1`, `localhost`) unless
    /// `allow_http`.
    pub fn check_transport(url: &Url, allow_http: bool) -> Result<(), CoderError> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if allow_http || is_loopback(url) => Ok(()),
            "http" => Err(CoderError::Config(format!(
                "Coder URL {url} is plain http to a host that is not loopback: the owner token \
                 would cross the network unencrypted; use https (with SCIM_BRIDGE_CODER_CA_FILE \
                 for a private CA), or set SCIM_BRIDGE_CODER_ALLOW_HTTP=true to accept it"
            ))),
            _ => Err(CoderError::Config(format!(
                "Coder URL {url} is not an http(s) URL"
            ))),
        }
    }

    /// Like [`CoderConfig::new`], reading the token from a file (a mounted secret) and trimming
    /// surrounding white space such as the trailing newline.
    pub fn from_token_file(url: Url, path: &Path) -> Result<CoderConfig, CoderError> {
        let content = std::fs::read_to_string(path).map_err(|e| {
            CoderError::Config(format!(
                "cannot read Coder token file {}: {e}",
                path.display()
            ))
        })?;
        let token = content.trim();
        if token.is_empty() {
            return Err(CoderError::Config(format!(
                "Coder token file {} is empty",
                path.display()
            )));
        }
        Ok(CoderConfig::new(url, SessionToken::new(token)))
    }
}

/// Whether the URL's host is this machine: 127.0.0.0/8, `::1` or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // The URL parser lower-cases domains.
        Some(url::Host::Domain(domain)) => domain == "localhost",
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_s_key_id_is_the_part_before_its_dash() {
        assert_eq!(
            SessionToken::new("AbC123xyZ9-s3cr3tpart").key_id(),
            Some("AbC123xyZ9")
        );
        for other in ["nodash", "-secret", "id-", "a b-c"] {
            assert_eq!(SessionToken::new(other).key_id(), None, "{other}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        let check = |url: &str, allow_http| {
            CoderConfig::check_transport(&Url::parse(url).unwrap(), allow_http)
        };
        for url in [
            "https://coder.example.com",
            "https://10.0.0.5:8443/prefix/",
            "http://127.0.0.1:3000",
            "http://127.8.9.10",
            "http://[::1]:3000/",
            "http://localhost:3000",
            "http://LOCALHOST",
        ] {
            assert!(check(url, false).is_ok(), "{url}");
        }
        for url in [
            "http://coder.example.com",
            "http://10.0.0.5:3000",
            "http://128.0.0.1",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
        ] {
            let err = check(url, false).unwrap_err().to_string();
            assert!(
                err.contains("SCIM_BRIDGE_CODER_ALLOW_HTTP=true"),
                "{url}: {err}"
            );
            assert!(check(url, true).is_ok(), "{url} with allow_http");
        }
        assert!(check("ftp://127.0.0.1", true).is_err());
    }

    #[test]
    fn token_never_shows_in_debug_or_display() {
        let config = CoderConfig::new(
            Url::parse("https://coder.example.com").unwrap(),
            SessionToken::new("abc123-supersecret"),
        );
        let shown = format!("{config:?} {}", config.token);
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn token_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let url = Url::parse("http://127.0.0.1:1").unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc-def\n").unwrap();
        let config = CoderConfig::from_token_file(url.clone(), &path).unwrap();
        assert_eq!(config.token.expose(), "abc-def");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            CoderConfig::from_token_file(url.clone(), &path),
            Err(CoderError::Config(_))
        ));
        let missing = CoderConfig::from_token_file(url, &dir.path().join("absent"));
        assert!(matches!(missing, Err(CoderError::Config(_))));
    }
}
