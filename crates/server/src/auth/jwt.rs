//! JWT bearer validation for IdPs that authenticate with OAuth access tokens (Entra's own JWT,
//! client-credentials tokens): signature, `iss`, `aud`, `exp`, `nbf`, a `sub`, optionally the
//! client (`azp`, `appid` or `client_id`), and the scopes the token carries.
//!
//! Each key verifies with its own algorithm only: a JWKS key's `alg` (or, without one, the
//! algorithm its `kty`/`crv` implies), `RS256` for a PEM key, `HS256` for the shared secret. A
//! token whose header names another algorithm is refused before any signature check, so an
//! HS256 token "signed" with a public key, or an `alg: none` token, never passes (RFC 8725 §3.1).
//! A JWKS file is re-read when its content changes, so keys rotate without a restart.

use crate::config::{JwtConfig, JwtKey};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use store::{Scope, Scopes};
use tokio::time::Instant;

/// Why a JWT configuration cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("JWT configuration: {0}")]
pub struct JwtConfigError(String);

/// A valid JWT's caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtCaller {
    /// The `sub` claim.
    pub sub: String,
    /// From the `scp` or `scope` claim, else the configured default.
    pub scopes: Scopes,
}

/// The claims the bridge reads; `iss`, `aud`, `exp` and `nbf` are checked by `jsonwebtoken`.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    /// OAuth 2.0 / OIDC authorized party: Entra v2.0 access tokens carry the client here.
    #[serde(default)]
    azp: Option<String>,
    /// Entra v1.0 access tokens carry the client here.
    #[serde(default)]
    appid: Option<String>,
    /// RFC 9068 §2.2: the client of a JWT access token.
    #[serde(default)]
    client_id: Option<String>,
    /// Entra's delegated scopes (space-separated); some servers send a list.
    #[serde(default)]
    scp: Option<ScopeClaim>,
    /// RFC 8693 §4.2 / RFC 9068 §2.2.3: space-separated scopes.
    #[serde(default)]
    scope: Option<ScopeClaim>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeClaim {
    Text(String),
    List(Vec<String>),
}

impl ScopeClaim {
    /// The bridge's scopes among the names; other names (another API's scopes) are ignored.
    fn scopes(&self) -> Scopes {
        let names: Vec<&str> = match self {
            ScopeClaim::Text(text) => text.split_whitespace().collect(),
            ScopeClaim::List(list) => list.iter().map(String::as_str).collect(),
        };
        names
            .into_iter()
            .filter_map(|name| Scope::from_str(name).ok())
            .fold(Scopes::NONE, Scopes::with)
    }
}

/// Checks presented JWTs against the configured key(s).
pub struct JwtValidator {
    issuer: String,
    audience: String,
    allowed_clients: Vec<String>,
    default_scopes: Scopes,
    keys: KeySource,
}

enum KeySource {
    Fixed(Arc<KeyRing>),
    File(JwksFile),
}

/// Keys a token may be verified with.
struct KeyRing {
    keys: Vec<VerifyingKey>,
    /// A single configured key (secret or PEM) is used whatever `kid` the token names.
    ignore_kid: bool,
}

struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// A JWKS document on disk, re-read when its content changes.
struct JwksFile {
    path: PathBuf,
    recheck: Duration,
    current: RwLock<LoadedJwks>,
    /// When the file was last looked at; the lock also makes one request do the re-read.
    checked: Mutex<Instant>,
    clock: Arc<dyn clock::Clock>,
}

struct LoadedJwks {
    text: String,
    ring: Arc<KeyRing>,
}

impl JwtValidator {
    /// Build the validator, refusing unusable keys up front.
    pub fn new(
        config: &JwtConfig,
        clock: Arc<dyn clock::Clock>,
    ) -> Result<JwtValidator, JwtConfigError> {
        let single = |algorithm, key| KeyRing {
            keys: vec![VerifyingKey {
                kid: None,
                algorithm,
                key,
            }],
            ignore_kid: true,
        };
        let keys = match &config.key {
            JwtKey::Hs256(secret) => {
                if secret.len() < 32 {
                    return Err(JwtConfigError(
                        "the HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                let key = DecodingKey::from_secret(secret);
                KeySource::Fixed(Arc::new(single(Algorithm::HS256, key)))
            }
            JwtKey::Rs256Pem(pem) => {
                let key = DecodingKey::from_rsa_pem(pem).map_err(|e| {
                    JwtConfigError(format!(
                        "the RS256 key is not an RSA public key in PEM: {e}"
                    ))
                })?;
                KeySource::Fixed(Arc::new(single(Algorithm::RS256, key)))
            }
            JwtKey::Jwks(json) => KeySource::Fixed(Arc::new(KeyRing::from_jwks(json)?)),
            JwtKey::JwksFile(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| JwtConfigError(format!("cannot read {}: {e}", path.display())))?;
                let ring = Arc::new(KeyRing::from_jwks(&text)?);
                KeySource::File(JwksFile {
                    path: path.clone(),
                    recheck: config.jwks_recheck,
                    current: RwLock::new(LoadedJwks { text, ring }),
                    checked: Mutex::new(clock.instant()),
                    clock,
                })
            }
        };
        Ok(JwtValidator {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            allowed_clients: config.allowed_clients.clone(),
            default_scopes: config.default_scopes,
            keys,
        })
    }

    /// The caller of a valid token; `None` for anything else.
    pub fn validate(&self, token: &str) -> Option<JwtCaller> {
        // `alg: none` and unknown algorithms fail here: `Algorithm` has no such variant.
        let header = decode_header(token).ok()?;
        let ring = match &self.keys {
            KeySource::Fixed(ring) => ring.clone(),
            KeySource::File(file) => file.ring(),
        };
        let key = ring.select(header.kid.as_deref())?;
        // The key decides the algorithm, never the token (RFC 8725 §3.1).
        if header.alg != key.algorithm {
            return None;
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `nbf` is checked with the same leeway as `exp` (`Validation::leeway`, 60 s).
        validation.validate_nbf = true;
        let claims = decode::<Claims>(token, &key.key, &validation).ok()?.claims;
        if !self.client_allowed(&claims) {
            return None;
        }
        let sub = claims.sub.trim();
        if sub.is_empty() {
            return None;
        }
        let scopes = claims
            .scp
            .as_ref()
            .or(claims.scope.as_ref())
            .map_or(self.default_scopes, ScopeClaim::scopes);
        Some(JwtCaller {
            sub: sub.to_string(),
            scopes,
        })
    }

    /// With an allowlist, the token must name its client, and every client claim it carries
    /// must be on the list (a token cannot pair an allowed `appid` with another `azp`).
    fn client_allowed(&self, claims: &Claims) -> bool {
        if self.allowed_clients.is_empty() {
            return true;
        }
        let named: Vec<&str> = [&claims.azp, &claims.appid, &claims.client_id]
            .into_iter()
            .filter_map(|c| c.as_deref())
            .collect();
        !named.is_empty()
            && named
                .iter()
                .all(|client| self.allowed_clients.iter().any(|a| a == client))
    }
}

impl KeyRing {
    /// The signing keys of a JWKS document; encryption keys (`use: enc`) are skipped.
    fn from_jwks(json: &str) -> Result<KeyRing, JwtConfigError> {
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let set: RawSet = serde_json::from_str(json)
            .map_err(|e| JwtConfigError(format!("the JWKS document is not valid: {e}")))?;
        let mut keys = Vec::new();
        for (i, raw) in set.keys.into_iter().enumerate() {
            let label = raw
                .get("kid")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("key {}", i + 1), |kid| format!("key {kid:?}"));
            let jwk: Jwk = serde_json::from_value(raw)
                .map_err(|e| JwtConfigError(format!("JWKS {label} is not a usable JWK: {e}")))?;
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let algorithm = key_algorithm(&jwk)
                .map_err(|problem| JwtConfigError(format!("JWKS {label}: {problem}")))?;
            let key = DecodingKey::from_jwk(&jwk)
                .map_err(|e| JwtConfigError(format!("JWKS {label} cannot be used: {e}")))?;
            keys.push(VerifyingKey {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            });
        }
        if keys.is_empty() {
            return Err(JwtConfigError(
                "the JWKS document holds no signing keys".into(),
            ));
        }
        Ok(KeyRing {
            keys,
            ignore_kid: false,
        })
    }

    /// The key a token names by `kid`; a token without `kid` may use the only key of a set.
    fn select(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        if self.ignore_kid || (kid.is_none() && self.keys.len() == 1) {
            return self.keys.first();
        }
        let kid = kid?;
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The one algorithm a JWK verifies: its `alg`, checked against its key type, or the algorithm
/// its `kty`/`crv` implies (RFC 7518 §3.1). Symmetric (`oct`) keys are refused: a JWKS is
/// public, and an HMAC key in it would let anyone sign.
fn key_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            ref other => return Err(format!("curve {other:?} is not supported")),
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric (oct) keys are not accepted in a JWKS".into());
        }
    };
    let Some(declared) = jwk.common.key_algorithm else {
        return Ok(implied);
    };
    let algorithm = match declared {
        KeyAlgorithm::UNKNOWN_ALGORITHM => {
            return Err("its alg is not a signature algorithm the bridge supports".into());
        }
        other => Algorithm::from_str(&other.to_string())
            .map_err(|_| format!("alg {other} is not a signature algorithm"))?,
    };
    // RS256/RS384/RS512/PS* share the RSA key type; ES256 and ES384 each have their curve.
    let fits = match (&jwk.algorithm, algorithm) {
        (AlgorithmParameters::EllipticCurve(_), alg) => alg == implied,
        (_, alg) => alg.family() == implied.family(),
    };
    if !fits {
        return Err(format!("alg {declared} does not fit its key type"));
    }
    Ok(algorithm)
}

impl JwksFile {
    /// The current keys, after re-reading the file when `recheck` has passed since the last
    /// look and its content changed. One request re-reads; the others use the keys they have.
    fn ring(&self) -> Arc<KeyRing> {
        if let Ok(mut checked) = self.checked.try_lock()
            && self.clock.elapsed(*checked) >= self.recheck
        {
            *checked = self.clock.instant();
            self.reload_if_changed();
        }
        match self.current.read() {
            Ok(current) => current.ring.clone(),
            Err(poisoned) => poisoned.into_inner().ring.clone(),
        }
    }

    fn reload_if_changed(&self) {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "cannot re-read the JWKS file; keeping the keys loaded before");
                return;
            }
        };
        let unchanged = self
            .current
            .read()
            .map(|current| current.text == text)
            .unwrap_or(false);
        if unchanged {
            return;
        }
        match KeyRing::from_jwks(&text) {
            Ok(ring) => {
                let count = ring.keys.len();
                if let Ok(mut current) = self.current.write() {
                    *current = LoadedJwks {
                        text,
                        ring: Arc::new(ring),
                    };
                }
                tracing::info!(path = %self.path.display(), keys = count, "JWKS file changed: keys reloaded");
            }
            // A half-written or broken file must not lock every JWT out; it is retried at the
            // next recheck.
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "the changed JWKS file is not usable; keeping the keys loaded before");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    const N: &str = "quhF57RUgDL97Ssc0ThCx8x9f1-FL0abxytlsp-FFb04i2C4ZHqmSqSY73p8aorOfeArXiETMHRh6QyVuVs2Hr78lXCd609-mOCNv4XVYf84NNEnd3e2SkUTd8ntCXKYtYELmRKnex_TPGyg148S907vIJZ8slGIW9blM7bWqEF0OEgd6QGgmEZc9APgtF-OqQvW59mbFiOFfEFuddQ5eJB-LBuuIDrmh8EBPN9OUS4BBOo6lc0NBuQhphWb_P3sjo3WavYs58bCvu5ePJedvdzClSoKYgjc50yl2E_cFuB3bDPGjyow5jSkrysAfmdaZkEoaCPEt1yNh7Q4cYM_mg";
    const X: &str = "itSD1i5Z494LgvQ2A4xiQsFToRpwPl2tfv7svhz8vI8";
    const Y: &str = "R1p0bqaziJdjMtJIOLPKrIaeHvC8mHzIHYQjYSIxOvI";

    #[test]
    fn each_key_gets_its_own_algorithm() {
        let rsa = serde_json::json!({"kty": "RSA", "n": N, "e": "AQAB"});
        assert_eq!(key_algorithm(&jwk(rsa.clone())), Ok(Algorithm::RS256));
        let mut ps = rsa.clone();
        ps["alg"] = "PS256".into();
        assert_eq!(key_algorithm(&jwk(ps)), Ok(Algorithm::PS256));
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256", "x": X, "y": Y});
        assert_eq!(key_algorithm(&jwk(ec.clone())), Ok(Algorithm::ES256));
        // An alg that contradicts the key type or curve is a broken JWKS, not a hint.
        for (key, alg) in [
            (&rsa, "HS256"),
            (&rsa, "ES256"),
            (&ec, "RS256"),
            (&ec, "ES384"),
        ] {
            let mut bad = key.clone();
            bad["alg"] = alg.into();
            assert!(key_algorithm(&jwk(bad)).is_err(), "{alg}");
        }
        let oct = serde_json::json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "alg": "HS256"});
        assert!(key_algorithm(&jwk(oct)).is_err());
    }

    #[test]
    fn scope_claims_keep_only_the_bridges_scopes() {
        let text = ScopeClaim::Text("openid scim:read  profile".into());
        assert_eq!(text.scopes(), Scopes::READ);
        let list = ScopeClaim::List(vec!["scim:write".into(), "scim:read".into()]);
        assert_eq!(list.scopes(), Scopes::ALL);
        assert_eq!(ScopeClaim::Text("User.Read".into()).scopes(), Scopes::NONE);
    }

    #[test]
    fn encryption_keys_are_skipped_and_a_set_needs_a_signing_key() {
        let enc = serde_json::json!({"keys": [{"kty": "RSA", "use": "enc", "n": N, "e": "AQAB"}]});
        assert!(KeyRing::from_jwks(&enc.to_string()).is_err());
        let both = serde_json::json!({"keys": [
            {"kty": "RSA", "use": "enc", "kid": "e", "n": N, "e": "AQAB"},
            {"kty": "EC", "use": "sig", "kid": "s", "crv": "P-256", "x": X, "y": Y},
        ]});
        let ring = KeyRing::from_jwks(&both.to_string()).unwrap();
        assert_eq!(ring.keys.len(), 1);
        assert_eq!(
            ring.select(Some("s")).map(|k| k.algorithm),
            Some(Algorithm::ES256)
        );
        assert!(ring.select(Some("e")).is_none());
    }
}
