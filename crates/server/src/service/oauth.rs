//! The token endpoint's rules (RFC 6749 §4.4, client credentials): who the client is, what it
//! asked for, and the access token it gets. Free of HTTP: the handler hands over the
//! `Authorization` header and the form, and maps the outcome.

use crate::error::ApiError;
use crate::state::AppState;
use base64::Engine;
use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;
use store::{ClientCheck, Scope, Scopes};

/// An RFC 6749 §5.2 error (or the 429 of the failed-authentication limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    /// `invalid_request`, `invalid_client`, `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`, or `temporarily_unavailable` with the 429 (or the 503 while the
    /// database is away).
    pub error: &'static str,
    pub description: String,
    /// RFC 6749 §5.2: a 401 to a client that authenticated with `Authorization: Basic` names
    /// the scheme in `WWW-Authenticate`.
    pub basic_challenge: bool,
    pub retry_after_secs: Option<u64>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after_secs: None,
        }
    }

    fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(400, "invalid_request", description)
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    /// Present when the token holds fewer scopes than the client (RFC 6749 §3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// How the client said who it is.
enum ClientAuth {
    Basic { id: String, secret: String },
    Body { id: String, secret: String },
}

/// Issue an access token for a client credentials request: `authorization` is the request's
/// `Authorization` header, `form` the decoded `application/x-www-form-urlencoded` body.
pub async fn issue_token(
    state: &AppState,
    authorization: Option<&str>,
    form: &[(String, String)],
    client_addr: Option<IpAddr>,
) -> Result<TokenResponse, OAuthError> {
    // RFC 6749 §3.2: request parameters must not be repeated.
    let mut seen = HashSet::new();
    if let Some((name, _)) = form.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(OAuthError::invalid_request(format!(
            "the parameter {name} is repeated"
        )));
    }
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let auth = client_auth(authorization, param("client_id"), param("client_secret"))?;
    let basic = matches!(auth, Some(ClientAuth::Basic { .. }));
    match param("grant_type") {
        None | Some("") => {
            return Err(OAuthError::invalid_request("grant_type is required"));
        }
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new(
                400,
                "unsupported_grant_type",
                format!("grant_type {other} is not supported: only client_credentials is"),
            ));
        }
    }
    let Some(tokens) = state.auth.oauth() else {
        return Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            "this bridge issues no access tokens: SCIM_BRIDGE_OAUTH_SIGNING_KEY is not set",
        ));
    };
    let Some(ClientAuth::Basic { id, secret } | ClientAuth::Body { id, secret }) = auth else {
        return Err(OAuthError::new(
            401,
            "invalid_client",
            "client authentication is required: HTTP Basic, or client_id and client_secret in the body",
        ));
    };
    let limited = |e: ApiError| match e {
        ApiError::AuthFailuresLimited { retry_after_secs } => OAuthError {
            retry_after_secs: Some(retry_after_secs),
            ..OAuthError::new(
                429,
                "temporarily_unavailable",
                format!(
                    "too many failed client authentications from this address; retry after {retry_after_secs} seconds"
                ),
            )
        },
        other => server_error(&other),
    };
    // Checked before the database is asked: a flood of bad secrets costs no reads.
    state.auth_failures.check(client_addr).map_err(limited)?;
    let check = state
        .oauth_clients
        .check(&id, &secret)
        .await
        .map_err(|e| server_error(&ApiError::Store(e)))?;
    let client = match check {
        ClientCheck::Valid(client) => client,
        ClientCheck::Revoked | ClientCheck::Invalid => {
            state
                .auth_failures
                .record_failure(client_addr)
                .map_err(limited)?;
            let description = if check == ClientCheck::Revoked {
                "the client was revoked"
            } else {
                "the client id or secret is not valid"
            };
            return Err(OAuthError {
                basic_challenge: basic,
                ..OAuthError::new(401, "invalid_client", description)
            });
        }
    };
    if client.scopes.is_empty() {
        return Err(OAuthError::new(
            400,
            "unauthorized_client",
            "the client holds no scope",
        ));
    }
    let granted = match param("scope").filter(|s| !s.trim().is_empty()) {
        None => client.scopes,
        Some(requested) => narrowed(requested, client.scopes)?,
    };
    let issued = tokens
        .issue(
            &client.client_id,
            &client.name,
            granted,
            crate::auth::now_secs(state.clock.as_ref()),
        )
        .map_err(|e| server_error(&ApiError::Scim(scim::ScimError::status(500, e.to_string()))))?;
    tracing::info!(client = %client.name, scopes = %granted, "access token issued");
    Ok(TokenResponse {
        access_token: issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        scope: (granted != client.scopes).then(|| granted.to_string()),
    })
}

/// RFC 6749 §2.3: HTTP Basic or the body, never both; a bearer token is no client credential.
fn client_auth(
    authorization: Option<&str>,
    body_id: Option<&str>,
    body_secret: Option<&str>,
) -> Result<Option<ClientAuth>, OAuthError> {
    let Some(header) = authorization else {
        return Ok(match (body_id, body_secret) {
            (Some(id), Some(secret)) => Some(ClientAuth::Body {
                id: id.to_string(),
                secret: secret.to_string(),
            }),
            _ => None,
        });
    };
    let (scheme, credentials) = header
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError {
            basic_challenge: true,
            ..OAuthError::new(
                401,
                "invalid_client",
                "the token endpoint takes client credentials (HTTP Basic or the body), not a bearer token",
            )
        });
    }
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both",
        ));
    }
    let malformed = || OAuthError {
        basic_challenge: true,
        ..OAuthError::new(
            401,
            "invalid_client",
            "the Basic credentials are not base64 of client_id:client_secret",
        )
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(malformed)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    // RFC 6749 §2.3.1: both are form-urlencoded before Basic encodes them.
    let (id, secret) = (form_decode(id), form_decode(secret));
    if body_id.is_some_and(|body| body != id) {
        return Err(OAuthError::invalid_request(
            "client_id in the body is not the client of the Basic credentials",
        ));
    }
    Ok(Some(ClientAuth::Basic { id, secret }))
}

fn form_decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// RFC 6749 §3.3: space-separated scopes, each one the client holds.
fn narrowed(requested: &str, held: Scopes) -> Result<Scopes, OAuthError> {
    let mut scopes = Scopes::NONE;
    for name in requested.split(' ').filter(|n| !n.is_empty()) {
        let scope = Scope::from_str(name).map_err(|_| {
            OAuthError::new(
                400,
                "invalid_scope",
                format!("unknown scope {name}: the scopes are scim:read and scim:write"),
            )
        })?;
        if !held.contains(scope) {
            return Err(OAuthError::new(
                400,
                "invalid_scope",
                format!("the client does not hold {scope}; it may only narrow its scopes ({held})"),
            ));
        }
        scopes = scopes.with(scope);
    }
    Ok(scopes)
}

/// A failure of the bridge, not the client: logged, answered with a generic 500, or a 503 with
/// `Retry-After` while the database is away.
fn server_error(e: &ApiError) -> OAuthError {
    tracing::error!(error = %e, "the token endpoint failed");
    if let ApiError::Store(store) = e
        && store.is_unavailable()
    {
        return OAuthError {
            retry_after_secs: e.retry_after_secs(),
            ..OAuthError::new(
                503,
                "temporarily_unavailable",
                "the token could not be issued now",
            )
        };
    }
    OAuthError::new(500, "server_error", "the token could not be issued")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded_and_exclusive() {
        // RFC 6749 §2.3.1: "client:id" and "s+c%3Aret" as sent after form-encoding.
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("client%3Aid:s+c%3Aret")
        );
        match client_auth(Some(&header), None, None) {
            Ok(Some(ClientAuth::Basic { id, secret })) => {
                assert_eq!((id.as_str(), secret.as_str()), ("client:id", "s c:ret"));
            }
            _ => panic!("Basic credentials not read"),
        }
        let both = client_auth(Some(&header), None, Some("other"));
        assert!(matches!(both, Err(e) if e.error == "invalid_request"));
        let bearer = client_auth(Some("Bearer abc"), Some("id"), Some("s"));
        assert!(matches!(bearer, Err(e) if e.error == "invalid_client" && e.status == 401));
        assert!(matches!(
            client_auth(None, Some("id"), Some("s")),
            Ok(Some(ClientAuth::Body { .. }))
        ));
        assert!(matches!(client_auth(None, Some("id"), None), Ok(None)));
    }

    #[test]
    fn a_scope_may_only_narrow() {
        assert_eq!(narrowed("scim:read", Scopes::ALL), Ok(Scopes::READ));
        assert_eq!(
            narrowed("scim:write  scim:read", Scopes::ALL),
            Ok(Scopes::ALL)
        );
        assert_eq!(
            narrowed("scim:write", Scopes::READ).map_err(|e| e.error),
            Err("invalid_scope")
        );
        assert_eq!(
            narrowed("scim:read,scim:write", Scopes::ALL).map_err(|e| e.error),
            Err("invalid_scope")
        );
    }
}
