//! The one error type of the Coder client, classified for the sync worker.

use std::time::{Duration, SystemTime};

use crate::types::ValidationError;

/// What went wrong talking to Coder, in the classes the sync worker acts on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoderError {
    /// Try again later: connection failure, timeout, dropped connection, 5xx or 429.
    #[error("Coder is unavailable: {reason}")]
    Retryable {
        /// What happened.
        reason: String,
        /// HTTP status, when Coder answered at all.
        status: Option<u16>,
        /// Wait Coder asked for (`Retry-After`, seconds or HTTP-date).
        retry_after: Option<Duration>,
    },
    /// The bridge's token was refused (401, or 403 on a route that needs no licence): pause,
    /// fail readiness and alert; retrying will not help.
    #[error("Coder refused the bridge's credentials ({status}): {message}")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// Coder's message.
        message: String,
    },
    /// 403 on a route that needs a licensed feature (groups need `template_rbac`): a capability
    /// of the deployment, not bad credentials.
    #[error("Coder feature {feature} is not licensed: {message}")]
    Unlicensed {
        /// Feature name from `GET /api/v2/entitlements`.
        feature: &'static str,
        /// Coder's message.
        message: String,
    },
    /// Coder rejected this request (other 4xx, e.g. 400, 404, 409 "User already exists.", 413,
    /// 417). Coder's body is kept so the caller can branch on it.
    #[error("Coder rejected the request ({status}): {message}{}", detail_suffix(.detail))]
    Permanent {
        /// HTTP status.
        status: u16,
        /// Coder's `message`.
        message: String,
        /// Coder's `detail`.
        detail: String,
        /// Coder's field-level `validations`.
        validations: Vec<ValidationError>,
    },
    /// Coder, or a proxy in front of it, answered a redirect. The client follows none, so the
    /// session token never reaches another host: the configured URL is not Coder's final one.
    /// Every call would meet it, so the worker pauses as for [`CoderError::Auth`]; retrying will
    /// not help.
    #[error(
        "Coder answered {} with Location {location}: the bridge follows no redirects so the owner \
         token is never sent to another host; set SCIM_BRIDGE_CODER_URL to the final URL",
        status_line(*.status)
    )]
    Redirect {
        /// The 3xx status.
        status: u16,
        /// Where Coder pointed (the `Location` header, resolved against the request's URL).
        location: String,
    },
    /// Coder answered something this client cannot read (wrong JSON, unexpected status).
    #[error("unexpected answer from Coder: {0}")]
    Protocol(String),
    /// The client could not be built from its configuration.
    #[error("invalid Coder client configuration: {0}")]
    Config(String),
}

/// `302 Found`: the status with its reason phrase, as an operator sees it in a browser.
fn status_line(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl CoderError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CoderError::Retryable { .. })
    }

    /// Whether the bridge's credentials were refused (pause the worker, do not spend retries).
    pub fn is_auth(&self) -> bool {
        matches!(self, CoderError::Auth { .. })
    }

    /// Whether every call will fail this way until an operator fixes the bridge's Coder token or
    /// URL (401/403, a redirect): pause the worker, fail readiness, spend no retries.
    pub fn needs_operator(&self) -> bool {
        matches!(self, CoderError::Auth { .. } | CoderError::Redirect { .. })
    }

    /// HTTP status Coder answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            CoderError::Retryable { status, .. } => *status,
            CoderError::Auth { status, .. }
            | CoderError::Permanent { status, .. }
            | CoderError::Redirect { status, .. } => Some(*status),
            CoderError::Unlicensed { .. } => Some(403),
            CoderError::Protocol(_) | CoderError::Config(_) => None,
        }
    }

    /// Whether Coder answered 404 (not found, or not visible to the bridge).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CoderError::Permanent { status: 404, .. })
    }

    /// Whether Coder answered 409 (e.g. "User already exists.", duplicate group name).
    pub fn is_conflict(&self) -> bool {
        matches!(self, CoderError::Permanent { status: 409, .. })
    }

    /// Wait Coder asked for before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CoderError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Coder's field-level validation problems, if any.
    pub fn validations(&self) -> &[ValidationError] {
        match self {
            CoderError::Permanent { validations, .. } => validations,
            _ => &[],
        }
    }
}

/// Reads a `Retry-After` value: delay seconds or an HTTP-date (RFC 9110 §10.2.3), relative to
/// `now`. A date in the past means "now".
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a valid RFC 2822 date.
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(at.with_timezone(&chrono::Utc));
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37Z
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn classification_helpers() {
        let conflict = CoderError::Permanent {
            status: 409,
            message: "User already exists.".into(),
            detail: String::new(),
            validations: vec![],
        };
        assert!(conflict.is_conflict() && !conflict.is_retryable() && !conflict.is_auth());
        assert_eq!(
            conflict.to_string(),
            "Coder rejected the request (409): User already exists."
        );
        let unlicensed = CoderError::Unlicensed {
            feature: "template_rbac",
            message: "no".into(),
        };
        assert!(!unlicensed.is_auth() && !unlicensed.needs_operator());
        assert_eq!(unlicensed.status(), Some(403));
        let redirect = CoderError::Redirect {
            status: 302,
            location: "https://sso.example.com/login".into(),
        };
        assert!(redirect.needs_operator() && !redirect.is_retryable() && !redirect.is_auth());
        assert_eq!(redirect.status(), Some(302));
        assert_eq!(
            redirect.to_string(),
            "Coder answered 302 Found with Location https://sso.example.com/login: the bridge \
             follows no redirects so the owner token is never sent to another host; set \
             SCIM_BRIDGE_CODER_URL to the final URL"
        );
    }
}
