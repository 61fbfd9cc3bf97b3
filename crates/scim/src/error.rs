//! SCIM error values (RFC 7644 §3.12).
//!
//! This is the protocol core's one error type. Every crate above maps its own errors into it in
//! one place, so an IdP always receives `{"schemas":[…Error],"status":"400","scimType":…,"detail":…}`.

use serde_json::{Value, json};

/// The `urn:ietf:params:scim:api:messages:2.0:Error` schema URN.
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// `scimType` keywords defined by RFC 7644 §3.12, Table 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
    /// RFC 9865 §2.1: a cursor that is not one the service provider issued for this query.
    InvalidCursor,
    /// RFC 9865 §2.1: a cursor older than the advertised `cursorTimeout`.
    ExpiredCursor,
    /// RFC 9865 §2.1: a cursor-paged `count` above `maxPageSize`, or not the first page's.
    InvalidCount,
}

impl ScimType {
    /// The keyword as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
            ScimType::Sensitive => "sensitive",
            ScimType::InvalidCursor => "invalidCursor",
            ScimType::ExpiredCursor => "expiredCursor",
            ScimType::InvalidCount => "invalidCount",
        }
    }

    /// The HTTP status RFC 7644 pairs with this keyword.
    pub fn status(self) -> u16 {
        match self {
            ScimType::Uniqueness => 409,
            ScimType::Sensitive => 403,
            _ => 400,
        }
    }
}

/// A SCIM error: HTTP status, optional `scimType`, and a human-readable `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map(ScimType::as_str).unwrap_or("-"))]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    /// An error carrying a `scimType`; the status follows from the keyword.
    pub fn typed(scim_type: ScimType, detail: impl Into<String>) -> Self {
        ScimError {
            status: scim_type.status(),
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    /// An error with a status and no `scimType` (401, 404, 412, 413, 429, 501, …).
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        ScimError {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// A 404: no such resource.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::status(404, detail)
    }

    /// The error as the JSON body of an error response. `status` is a string (RFC 7644 §3.12).
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let (Some(t), Some(obj)) = (self.scim_type, body.as_object_mut()) {
            obj.insert("scimType".into(), Value::String(t.as_str().into()));
        }
        body
    }
}

/// One constructor per `scimType` the core raises: `ScimError::invalid_value(detail)` is
/// `ScimError::typed(ScimType::InvalidValue, detail)`.
macro_rules! typed_constructors {
    ($($name:ident => $scim_type:ident,)*) => {
        impl ScimError {
            $(
                #[doc = concat!("An error with `scimType` ", stringify!($scim_type), ".")]
                pub fn $name(detail: impl Into<String>) -> Self {
                    Self::typed(ScimType::$scim_type, detail)
                }
            )*
        }
    };
}

typed_constructors! {
    invalid_filter => InvalidFilter,
    invalid_path => InvalidPath,
    invalid_value => InvalidValue,
    invalid_syntax => InvalidSyntax,
    mutability => Mutability,
    no_target => NoTarget,
    uniqueness => Uniqueness,
    too_many => TooMany,
}

/// Result alias for the protocol core.
pub type ScimResult<T> = Result<T, ScimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_a_string_and_scim_type_present() {
        let e = ScimError::uniqueness("userName \"a\" is taken");
        let v = e.to_json();
        assert_eq!(v["status"], "409");
        assert_eq!(v["scimType"], "uniqueness");
        assert_eq!(v["schemas"][0], ERROR_SCHEMA);
    }

    #[test]
    fn untyped_error_has_no_scim_type() {
        let v = ScimError::not_found("no such user").to_json();
        assert_eq!(v["status"], "404");
        assert!(v.get("scimType").is_none());
    }
}
