//! The Coder routes the fake serves, as data, and the plumbing its handlers share.
//!
//! Handlers are synchronous functions over the locked [`World`]: each request is atomic, like a
//! database transaction in Coder.

mod deployment;
mod groups;
mod keys;
mod organizations;
mod render;
mod users;
mod workspaces;

use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::state::World;

pub(crate) use users::oidc_login;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// A valid token of an active (or dormant) user.
    Authenticated,
    /// Authenticated, and Premium must be licensed (403 otherwise).
    Premium,
}

type Handler = fn(&mut World, &Call<'_>) -> Outcome;

/// One Coder route the fake serves.
#[derive(Clone, Copy)]
pub struct FakeRoute {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path template exactly as keyed in Coder's swagger.json.
    pub path: &'static str,
    /// Swagger definition of the JSON body, if the route takes one.
    pub request_body: Option<&'static str>,
    body_fields: fn() -> &'static [&'static str],
    /// Who may call it.
    pub access: Access,
    handler: Handler,
}

impl FakeRoute {
    /// JSON fields of the body the fake reads (checked against swagger by tests).
    pub fn body_fields(&self) -> &'static [&'static str] {
        (self.body_fields)()
    }
}

/// A body: swagger definition name and the fields the fake's decoder reads.
pub(crate) type Body = (&'static str, fn() -> &'static [&'static str]);

fn no_fields() -> &'static [&'static str] {
    &[]
}

impl std::fmt::Debug for FakeRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    access: Access,
    handler: Handler,
) -> FakeRoute {
    FakeRoute {
        method,
        path,
        request_body: None,
        body_fields: no_fields,
        access,
        handler,
    }
}

const fn with_body(
    method: &'static str,
    path: &'static str,
    access: Access,
    body: Body,
    handler: Handler,
) -> FakeRoute {
    FakeRoute {
        method,
        path,
        request_body: Some(body.0),
        body_fields: body.1,
        access,
        handler,
    }
}

use Access::{Authenticated, Premium, Public};

/// Every Coder route the fake serves.
pub const ROUTES: &[FakeRoute] = &[
    route("GET", "/api/v2/buildinfo", Public, deployment::build_info),
    route(
        "GET",
        "/api/v2/entitlements",
        Public,
        deployment::entitlements,
    ),
    route("GET", "/api/v2/users", Authenticated, users::list),
    with_body(
        "POST",
        "/api/v2/users",
        Authenticated,
        users::CREATE_BODY,
        users::create,
    ),
    route("GET", "/api/v2/users/{user}", Authenticated, users::get),
    route(
        "DELETE",
        "/api/v2/users/{user}",
        Authenticated,
        users::delete,
    ),
    with_body(
        "PUT",
        "/api/v2/users/{user}/profile",
        Authenticated,
        users::PROFILE_BODY,
        users::update_profile,
    ),
    route(
        "PUT",
        "/api/v2/users/{user}/status/suspend",
        Authenticated,
        users::suspend,
    ),
    route(
        "PUT",
        "/api/v2/users/{user}/status/activate",
        Authenticated,
        users::activate,
    ),
    route(
        "GET",
        "/api/v2/users/{user}/login-type",
        Authenticated,
        users::login_type,
    ),
    route(
        "GET",
        "/api/v2/users/{user}/roles",
        Authenticated,
        users::roles,
    ),
    with_body(
        "PUT",
        "/api/v2/users/{user}/roles",
        Authenticated,
        users::ROLES_BODY,
        users::put_roles,
    ),
    route(
        "GET",
        "/api/v2/organizations",
        Authenticated,
        organizations::list,
    ),
    route(
        "GET",
        "/api/v2/organizations/{organization}/members",
        Authenticated,
        organizations::members,
    ),
    route(
        "POST",
        "/api/v2/organizations/{organization}/members/{user}",
        Authenticated,
        organizations::add_member,
    ),
    route(
        "DELETE",
        "/api/v2/organizations/{organization}/members/{user}",
        Authenticated,
        organizations::remove_member,
    ),
    with_body(
        "PUT",
        "/api/v2/organizations/{organization}/members/{user}/roles",
        Authenticated,
        users::ROLES_BODY,
        organizations::put_member_roles,
    ),
    route(
        "GET",
        "/api/v2/organizations/{organization}/groups",
        Premium,
        groups::list,
    ),
    with_body(
        "POST",
        "/api/v2/organizations/{organization}/groups",
        Premium,
        groups::CREATE_BODY,
        groups::create,
    ),
    route(
        "GET",
        "/api/v2/organizations/{organization}/groups/{groupName}",
        Premium,
        groups::get_by_name,
    ),
    route("GET", "/api/v2/groups/{group}", Premium, groups::get),
    with_body(
        "PATCH",
        "/api/v2/groups/{group}",
        Premium,
        groups::PATCH_BODY,
        groups::patch,
    ),
    route("DELETE", "/api/v2/groups/{group}", Premium, groups::delete),
    route(
        "GET",
        "/api/v2/users/{user}/keys/tokens",
        Authenticated,
        keys::list,
    ),
    with_body(
        "POST",
        "/api/v2/users/{user}/keys/tokens",
        Authenticated,
        keys::CREATE_BODY,
        keys::create,
    ),
    route(
        "GET",
        "/api/v2/users/{user}/keys/{keyid}",
        Authenticated,
        keys::get,
    ),
    route(
        "DELETE",
        "/api/v2/users/{user}/keys/{keyid}",
        Authenticated,
        keys::delete,
    ),
    route("GET", "/api/v2/workspaces", Authenticated, workspaces::list),
    with_body(
        "POST",
        "/api/v2/workspaces/{workspace}/builds",
        Authenticated,
        workspaces::BUILD_BODY,
        workspaces::build,
    ),
    route(
        "GET",
        "/api/v2/settings/idpsync/organization",
        Premium,
        deployment::organization_sync,
    ),
    route(
        "GET",
        "/api/v2/organizations/{organization}/settings/idpsync/groups",
        Premium,
        deployment::group_sync,
    ),
    route(
        "GET",
        "/api/v2/organizations/{organization}/settings/idpsync/roles",
        Premium,
        deployment::role_sync,
    ),
];

/// A route matched against a concrete path, with its parameter values.
pub(crate) struct Matched {
    pub route: &'static FakeRoute,
    pub params: Vec<(&'static str, String)>,
}

/// What the router found for a method and path.
pub(crate) enum Routing {
    Found(Matched),
    /// The path exists with other methods.
    MethodNotAllowed(&'static str),
    NotFound,
}

/// Finds the route for `method path`; literal segments win over `{parameters}`
/// (`/keys/tokens` before `/keys/{keyid}`).
pub(crate) fn find(method: &str, path: &str) -> Routing {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut best: Option<(usize, Matched)> = None;
    let mut path_known = None;
    for route in ROUTES {
        let template: Vec<&str> = route.path.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let mut literals = 0;
        let matched = template.iter().zip(&segments).all(|(t, s)| {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !s.is_empty() => {
                    params.push((name, percent_decode(s)));
                    true
                }
                Some(_) => false,
                None => {
                    literals += 1;
                    t == s
                }
            }
        });
        if !matched {
            continue;
        }
        path_known = Some(route.path);
        if route.method == method && best.as_ref().is_none_or(|(l, _)| literals > *l) {
            best = Some((literals, Matched { route, params }));
        }
    }
    match (best, path_known) {
        (Some((_, matched)), _) => Routing::Found(matched),
        (None, Some(path)) => Routing::MethodNotAllowed(path),
        (None, None) => Routing::NotFound,
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs the matched route's handler.
pub(crate) fn handle(world: &mut World, matched: &Matched, call: &Call<'_>) -> Outcome {
    (matched.route.handler)(world, call)
}

/// One authenticated (or public) request, as handlers see it.
pub(crate) struct Call<'a> {
    /// Calling user; nil on public routes.
    pub actor: Uuid,
    pub params: &'a [(&'static str, String)],
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decodes the JSON body like Go's `encoding/json`: unknown fields ignored.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::new(400, "Request body must be valid JSON.").detail(e.to_string())
        })
    }
}

/// A successful answer.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
}

impl Reply {
    pub fn ok(body: Value) -> Outcome {
        Ok(Reply {
            status: 200,
            body: Some(body),
        })
    }

    pub fn created(body: Value) -> Outcome {
        Ok(Reply {
            status: 201,
            body: Some(body),
        })
    }

    pub fn no_content() -> Outcome {
        Ok(Reply {
            status: 204,
            body: None,
        })
    }

    pub fn message(message: &str) -> Outcome {
        Reply::ok(serde_json::json!({ "message": message }))
    }
}

/// Coder's error answer: `{message, detail, validations}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: u16,
    pub message: String,
    pub detail: String,
    pub validations: Vec<(String, String)>,
}

pub(crate) type Outcome = Result<Reply, ApiError>;

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            detail: String::new(),
            validations: Vec::new(),
        }
    }

    pub fn detail(self, detail: impl Into<String>) -> ApiError {
        ApiError {
            detail: detail.into(),
            ..self
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, message)
    }

    /// Coder hides what the caller may not see behind one 404.
    pub fn not_found() -> ApiError {
        ApiError::new(
            404,
            "Resource not found or you do not have access to this resource",
        )
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(403, "Forbidden.")
    }

    /// 400 "Validation failed." with one entry per problem.
    pub fn invalid(problems: Vec<(String, String)>) -> ApiError {
        ApiError {
            validations: problems,
            ..ApiError::new(400, "Validation failed.")
        }
    }

    pub fn to_json(&self) -> Value {
        let validations: Vec<Value> = self
            .validations
            .iter()
            .map(|(field, detail)| serde_json::json!({ "field": field, "detail": detail }))
            .collect();
        let mut body = serde_json::json!({ "message": self.message });
        if !self.detail.is_empty() {
            body["detail"] = Value::from(self.detail.clone());
        }
        if !validations.is_empty() {
            body["validations"] = Value::from(validations);
        }
        body
    }
}

/// Parses a UUID path or body value, 400 otherwise.
pub(crate) fn parse_uuid(value: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value)
        .map_err(|_| ApiError::bad_request(format!("Invalid UUID {value:?} for {what}.")))
}

/// Field names of a `#[derive(Deserialize)]` struct, read from serde itself so the list cannot
/// drift from the struct.
pub(crate) fn serde_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(field_probe::Probe) {
        Err(field_probe::Found(fields)) => fields,
        Ok(_) => &[],
    }
}

mod field_probe {
    use serde::de::{self, Visitor};

    pub struct Probe;

    #[derive(Debug)]
    pub struct Found(pub &'static [&'static str]);

    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fields {:?}", self.0)
        }
    }

    impl std::error::Error for Found {}

    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_msg: T) -> Self {
            Found(&[])
        }
    }

    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_and_methods_are_checked() {
        let Routing::Found(m) = find("GET", "/api/v2/users/alice/keys/tokens") else {
            panic!()
        };
        assert_eq!(m.route.path, "/api/v2/users/{user}/keys/tokens");
        let Routing::Found(m) = find("DELETE", "/api/v2/users/alice/keys/abc") else {
            panic!()
        };
        assert_eq!(
            m.params,
            vec![("user", "alice".to_owned()), ("keyid", "abc".to_owned())]
        );
        assert!(matches!(
            find("PATCH", "/api/v2/users"),
            Routing::MethodNotAllowed(_)
        ));
        assert!(matches!(find("GET", "/api/v2/nope"), Routing::NotFound));
        let Routing::Found(m) = find("GET", "/api/v2/organizations/o/groups/a%20b") else {
            panic!()
        };
        assert_eq!(m.params[1].1, "a b");
    }

    #[test]
    fn body_fields_come_from_serde() {
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Sample {
            roles: Vec<String>,
            #[serde(rename = "display_name")]
            display: String,
        }
        assert_eq!(serde_fields::<Sample>(), &["roles", "display_name"]);
    }
}
