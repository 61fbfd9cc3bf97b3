//! The Coder REST routes this client calls, as data.
//!
//! Every entry names a path template exactly as it is keyed in Coder's `swagger.json` and, when
//! the route takes a JSON body, the swagger definition of that body. `tests/swagger.rs` checks the
//! table against the vendored `api/swagger.json`, so no route here can be invented.

use std::fmt;

/// An HTTP method used against Coder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method as it is written on the wire (`"GET"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    /// Parses a wire method name, ignoring case.
    pub fn parse(name: &str) -> Option<Method> {
        [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Patch,
            Method::Delete,
        ]
        .into_iter()
        .find(|method| method.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Coder REST route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path template, byte for byte as the key in swagger's `paths` (e.g.
    /// `/api/v2/users/{user}/status/suspend`).
    pub path: &'static str,
    /// Swagger definition of the JSON request body (`codersdk.UpdateRoles`), if any.
    pub request_body: Option<&'static str>,
    /// Licensed feature Coder requires for this route (`template_rbac` for groups). A 403 on such
    /// a route is reported as [`crate::CoderError::Unlicensed`], not as bad credentials.
    pub licensed_feature: Option<&'static str>,
}

impl Route {
    const fn new(method: Method, path: &'static str) -> Route {
        Route {
            method,
            path,
            request_body: None,
            licensed_feature: None,
        }
    }

    const fn body(self, definition: &'static str) -> Route {
        Route {
            request_body: Some(definition),
            ..self
        }
    }

    const fn licensed(self, feature: &'static str) -> Route {
        Route {
            licensed_feature: Some(feature),
            ..self
        }
    }

    /// Names of the `{parameters}` in the path template, in order.
    pub fn parameters(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

// The IdP-sync settings routes are Premium ("Enterprise" in swagger); which feature guards each
// is our reading of Coder's router, used only to name the missing licence in an error.

/// Licensed feature that enables groups (Coder Premium).
pub const FEATURE_TEMPLATE_RBAC: &str = "template_rbac";
/// Licensed feature that enables several organizations and organization sync (Premium).
pub const FEATURE_MULTIPLE_ORGANIZATIONS: &str = "multiple_organizations";
/// What the bridge calls the Premium licence of service accounts. Coder's entitlements list no
/// feature of that name: a 403 to a service-account create is the only signal.
pub const FEATURE_SERVICE_ACCOUNTS: &str = "service_accounts";
/// Licensed feature that enables custom and synced organization roles (Premium).
pub const FEATURE_CUSTOM_ROLES: &str = "custom_roles";

use Method::{Delete, Get, Patch, Post, Put};

/// `GET /api/v2/buildinfo` (no auth).
pub const BUILD_INFO: Route = Route::new(Get, "/api/v2/buildinfo");
/// `GET /api/v2/entitlements` (no auth).
pub const ENTITLEMENTS: Route = Route::new(Get, "/api/v2/entitlements");
/// `GET /api/v2/users?q=&limit=&offset=`.
pub const LIST_USERS: Route = Route::new(Get, "/api/v2/users");
/// `POST /api/v2/users`.
pub const CREATE_USER: Route =
    Route::new(Post, "/api/v2/users").body("codersdk.CreateUserRequestWithOrgs");
/// `GET /api/v2/users/{user}` (also `users/me`).
pub const GET_USER: Route = Route::new(Get, "/api/v2/users/{user}");
/// `DELETE /api/v2/users/{user}`.
pub const DELETE_USER: Route = Route::new(Delete, "/api/v2/users/{user}");
/// `PUT /api/v2/users/{user}/profile`.
pub const UPDATE_PROFILE: Route =
    Route::new(Put, "/api/v2/users/{user}/profile").body("codersdk.UpdateUserProfileRequest");
/// `PUT /api/v2/users/{user}/status/suspend`.
pub const SUSPEND_USER: Route = Route::new(Put, "/api/v2/users/{user}/status/suspend");
/// `PUT /api/v2/users/{user}/status/activate`.
pub const ACTIVATE_USER: Route = Route::new(Put, "/api/v2/users/{user}/status/activate");
/// `GET /api/v2/users/{user}/roles`.
pub const GET_USER_ROLES: Route = Route::new(Get, "/api/v2/users/{user}/roles");
/// `PUT /api/v2/users/{user}/roles`.
pub const PUT_USER_ROLES: Route =
    Route::new(Put, "/api/v2/users/{user}/roles").body("codersdk.UpdateRoles");
/// `GET /api/v2/organizations`.
pub const LIST_ORGANIZATIONS: Route = Route::new(Get, "/api/v2/organizations");
/// `GET /api/v2/organizations/{organization}/members`.
pub const LIST_ORGANIZATION_MEMBERS: Route =
    Route::new(Get, "/api/v2/organizations/{organization}/members");
/// `POST /api/v2/organizations/{organization}/members/{user}`.
pub const ADD_ORGANIZATION_MEMBER: Route =
    Route::new(Post, "/api/v2/organizations/{organization}/members/{user}");
/// `DELETE /api/v2/organizations/{organization}/members/{user}`.
pub const REMOVE_ORGANIZATION_MEMBER: Route = Route::new(
    Delete,
    "/api/v2/organizations/{organization}/members/{user}",
);
/// `PUT /api/v2/organizations/{organization}/members/{user}/roles`.
pub const PUT_ORGANIZATION_MEMBER_ROLES: Route = Route::new(
    Put,
    "/api/v2/organizations/{organization}/members/{user}/roles",
)
.body("codersdk.UpdateRoles");
/// `GET /api/v2/organizations/{organization}/groups`.
pub const LIST_GROUPS: Route =
    Route::new(Get, "/api/v2/organizations/{organization}/groups").licensed(FEATURE_TEMPLATE_RBAC);
/// `POST /api/v2/organizations/{organization}/groups`.
pub const CREATE_GROUP: Route = Route::new(Post, "/api/v2/organizations/{organization}/groups")
    .body("codersdk.CreateGroupRequest")
    .licensed(FEATURE_TEMPLATE_RBAC);
/// `GET /api/v2/organizations/{organization}/groups/{groupName}`.
pub const GET_GROUP_BY_NAME: Route = Route::new(
    Get,
    "/api/v2/organizations/{organization}/groups/{groupName}",
)
.licensed(FEATURE_TEMPLATE_RBAC);
/// `GET /api/v2/groups/{group}`.
pub const GET_GROUP: Route =
    Route::new(Get, "/api/v2/groups/{group}").licensed(FEATURE_TEMPLATE_RBAC);
/// `PATCH /api/v2/groups/{group}`.
pub const PATCH_GROUP: Route = Route::new(Patch, "/api/v2/groups/{group}")
    .body("codersdk.PatchGroupRequest")
    .licensed(FEATURE_TEMPLATE_RBAC);
/// `DELETE /api/v2/groups/{group}`.
pub const DELETE_GROUP: Route =
    Route::new(Delete, "/api/v2/groups/{group}").licensed(FEATURE_TEMPLATE_RBAC);
/// `GET /api/v2/users/{user}/keys/tokens`.
pub const LIST_API_TOKENS: Route = Route::new(Get, "/api/v2/users/{user}/keys/tokens");
/// `POST /api/v2/users/{user}/keys/tokens`.
pub const CREATE_API_TOKEN: Route =
    Route::new(Post, "/api/v2/users/{user}/keys/tokens").body("codersdk.CreateTokenRequest");
/// `GET /api/v2/users/{user}/keys/{keyid}`.
pub const GET_API_KEY: Route = Route::new(Get, "/api/v2/users/{user}/keys/{keyid}");
/// `DELETE /api/v2/users/{user}/keys/{keyid}`.
pub const DELETE_API_KEY: Route = Route::new(Delete, "/api/v2/users/{user}/keys/{keyid}");
/// `GET /api/v2/workspaces?q=owner:<username>`.
pub const LIST_WORKSPACES: Route = Route::new(Get, "/api/v2/workspaces");
/// `POST /api/v2/workspaces/{workspace}/builds`.
pub const CREATE_WORKSPACE_BUILD: Route = Route::new(Post, "/api/v2/workspaces/{workspace}/builds")
    .body("codersdk.CreateWorkspaceBuildRequest");
/// `GET /api/v2/settings/idpsync/organization`.
pub const ORGANIZATION_SYNC_SETTINGS: Route =
    Route::new(Get, "/api/v2/settings/idpsync/organization")
        .licensed(FEATURE_MULTIPLE_ORGANIZATIONS);
/// `GET /api/v2/organizations/{organization}/settings/idpsync/groups`.
pub const GROUP_SYNC_SETTINGS: Route = Route::new(
    Get,
    "/api/v2/organizations/{organization}/settings/idpsync/groups",
)
.licensed(FEATURE_TEMPLATE_RBAC);
/// `GET /api/v2/organizations/{organization}/settings/idpsync/roles`.
pub const ROLE_SYNC_SETTINGS: Route = Route::new(
    Get,
    "/api/v2/organizations/{organization}/settings/idpsync/roles",
)
.licensed(FEATURE_CUSTOM_ROLES);

/// Every route [`crate::CoderClient`] calls.
pub const ROUTES: &[Route] = &[
    BUILD_INFO,
    ENTITLEMENTS,
    LIST_USERS,
    CREATE_USER,
    GET_USER,
    DELETE_USER,
    UPDATE_PROFILE,
    SUSPEND_USER,
    ACTIVATE_USER,
    GET_USER_ROLES,
    PUT_USER_ROLES,
    LIST_ORGANIZATIONS,
    LIST_ORGANIZATION_MEMBERS,
    ADD_ORGANIZATION_MEMBER,
    REMOVE_ORGANIZATION_MEMBER,
    PUT_ORGANIZATION_MEMBER_ROLES,
    LIST_GROUPS,
    CREATE_GROUP,
    GET_GROUP_BY_NAME,
    GET_GROUP,
    PATCH_GROUP,
    DELETE_GROUP,
    LIST_API_TOKENS,
    CREATE_API_TOKEN,
    GET_API_KEY,
    DELETE_API_KEY,
    LIST_WORKSPACES,
    CREATE_WORKSPACE_BUILD,
    ORGANIZATION_SYNC_SETTINGS,
    GROUP_SYNC_SETTINGS,
    ROLE_SYNC_SETTINGS,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_unique_and_parameters_are_named() {
        for (i, route) in ROUTES.iter().enumerate() {
            assert!(route.path.starts_with("/api/v2/"), "{route}");
            assert!(
                !ROUTES[..i]
                    .iter()
                    .any(|other| other.method == route.method && other.path == route.path),
                "{route} listed twice"
            );
            for parameter in route.parameters() {
                assert!(
                    !parameter.is_empty() && !parameter.contains(['{', '}']),
                    "{route}"
                );
            }
        }
        assert_eq!(
            PUT_ORGANIZATION_MEMBER_ROLES
                .parameters()
                .collect::<Vec<_>>(),
            ["organization", "user"]
        );
    }

    #[test]
    fn methods_parse_ignoring_case() {
        assert_eq!(Method::parse("patch"), Some(Method::Patch));
        assert_eq!(Method::parse("HEAD"), None);
    }
}
