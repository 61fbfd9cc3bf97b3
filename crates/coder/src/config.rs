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

#[cfg(test)]
mod tests {
    use super::*;

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
