//! JWT bearer validation for IdPs that authenticate with OAuth access tokens (Entra's own JWT,
//! client-credentials tokens): signature, `iss`, `aud`, `exp` and a `sub`.

use crate::config::{JwtConfig, JwtKey};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// Why a JWT configuration cannot be used; reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("JWT configuration: {0}")]
pub struct JwtConfigError(String);

/// The claims the bridge reads; `iss`, `aud` and `exp` are checked by `jsonwebtoken`.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// Checks presented JWTs against the configured key(s).
pub struct JwtValidator {
    keys: Keys,
    validation: Validation,
}

enum Keys {
    /// One key for every token.
    Single(DecodingKey),
    /// JWKS keys by `kid`; a token without `kid` may use the only key of a one-key set.
    Set(Vec<(Option<String>, DecodingKey)>),
}

impl JwtValidator {
    /// Build the validator, refusing unusable keys up front.
    pub fn new(config: &JwtConfig) -> Result<JwtValidator, JwtConfigError> {
        let (keys, algorithm) = match &config.key {
            JwtKey::Hs256(secret) => {
                if secret.len() < 32 {
                    return Err(JwtConfigError(
                        "the HS256 secret must be at least 32 bytes".into(),
                    ));
                }
                (
                    Keys::Single(DecodingKey::from_secret(secret)),
                    Algorithm::HS256,
                )
            }
            JwtKey::Rs256Pem(pem) => {
                let key = DecodingKey::from_rsa_pem(pem).map_err(|e| {
                    JwtConfigError(format!(
                        "the RS256 key is not an RSA public key in PEM: {e}"
                    ))
                })?;
                (Keys::Single(key), Algorithm::RS256)
            }
            JwtKey::Jwks(json) => {
                let set: JwkSet = serde_json::from_str(json)
                    .map_err(|e| JwtConfigError(format!("the JWKS document is not valid: {e}")))?;
                let keys = set
                    .keys
                    .iter()
                    .map(|jwk| {
                        DecodingKey::from_jwk(jwk)
                            .map(|key| (jwk.common.key_id.clone(), key))
                            .map_err(|e| JwtConfigError(format!("a JWKS key cannot be used: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if keys.is_empty() {
                    return Err(JwtConfigError("the JWKS document holds no keys".into()));
                }
                (Keys::Set(keys), Algorithm::RS256)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(JwtValidator { keys, validation })
    }

    /// The token's `sub` when it is valid; `None` for anything else.
    pub fn validate(&self, token: &str) -> Option<String> {
        let key = match &self.keys {
            Keys::Single(key) => key,
            Keys::Set(keys) => {
                let kid = decode_header(token).ok()?.kid;
                match kid {
                    Some(kid) => keys
                        .iter()
                        .find(|(k, _)| k.as_deref() == Some(kid.as_str()))
                        .map(|(_, key)| key)?,
                    None if keys.len() == 1 => keys.first().map(|(_, key)| key)?,
                    None => return None,
                }
            }
        };
        let data = decode::<Claims>(token, key, &self.validation).ok()?;
        let sub = data.claims.sub.trim();
        (!sub.is_empty()).then(|| sub.to_string())
    }
}
