//! The typed Coder REST client.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, LOCATION, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use url::Url;
use uuid::Uuid;

use crate::error::parse_retry_after;
use crate::routes::{self, Route};
use crate::types::*;
use crate::{CoderConfig, CoderError};

/// Header with the bridge's session token.
pub const SESSION_TOKEN_HEADER: &str = "Coder-Session-Token";
/// Header with which an `owner` skips Coder's API rate limit.
pub const BYPASS_RATE_LIMIT_HEADER: &str = "X-Coder-Bypass-Ratelimit";

/// Page size used when listing all users.
const USERS_PAGE_SIZE: u32 = 100;

/// One finished call, as seen by a [`CallObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRecord {
    /// The route called (template, not the concrete path: bounded label cardinality).
    pub route: &'static Route,
    /// Coder's status; `None` when no HTTP answer came (connect error, timeout, drop).
    pub status: Option<u16>,
    /// Time from sending to having read the whole answer (pacing wait excluded).
    pub latency: Duration,
}

/// Receives every call the client makes, e.g. to feed Prometheus.
pub trait CallObserver: Send + Sync {
    /// Called once per HTTP request, after its answer was read or it failed.
    fn observe(&self, call: &CallRecord);
}

struct NoObserver;

impl CallObserver for NoObserver {
    fn observe(&self, _call: &CallRecord) {}
}

/// Who the bridge's token belongs to, read once from `GET /api/v2/users/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The bridge's own Coder user.
    pub user: User,
    /// Whether that user holds the site role `owner` (may grant roles, manage others' keys and
    /// bypass the rate limit).
    pub is_owner: bool,
}

/// A typed client for the Coder routes the bridge uses ([`routes::ROUTES`]).
///
/// Cheap to clone; clones share the connection pool, the outbound pacing and the cached
/// [`Identity`].
#[derive(Clone)]
pub struct CoderClient {
    http: reqwest::Client,
    base: Arc<Url>,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    observer: Arc<dyn CallObserver>,
    identity: Arc<OnceCell<Identity>>,
    /// Call latency and the dates in `Retry-After` and `X-RateLimit-Reset`.
    clock: Arc<dyn clock::Clock>,
}

impl fmt::Debug for CoderClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoderClient")
            .field("url", &self.base.as_str())
            .field("paced", &self.limiter.is_some())
            .field("identity", &self.identity.get().map(|i| &i.user.username))
            .finish_non_exhaustive()
    }
}

/// A lookup key for [`CoderClient::list_users`]: Coder's `q` search terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Search string (`email:a@b.c`, `username:alice`, `status:active`).
    pub q: Option<String>,
    /// Page size.
    pub limit: Option<u32>,
    /// Users to skip.
    pub offset: Option<u32>,
}

impl CoderClient {
    /// Builds a client. Authenticates every call (but buildinfo/entitlements, which need none)
    /// with the `Coder-Session-Token` header.
    ///
    /// TLS uses rustls with the platform's roots plus [`CoderConfig::ca_file`]; reqwest uses the
    /// `ring` provider when no process-wide one is installed, so none needs installing. A
    /// container without any root certificate still builds a client, but every call to an
    /// `https` URL then fails (retryably, "invalid peer certificate") until a CA bundle is given.
    ///
    /// The token goes to the configured origin only: redirects are not followed (a 3xx is
    /// [`CoderError::Redirect`]), and plain `http` is refused unless the host is loopback or
    /// [`CoderConfig::allow_http`] is set ([`CoderConfig::check_transport`]).
    pub fn new(config: CoderConfig) -> Result<CoderClient, CoderError> {
        CoderConfig::check_transport(&config.url, config.allow_http)?;
        if config.url.cannot_be_a_base() {
            return Err(CoderError::Config(format!(
                "Coder URL {} is not an http(s) URL",
                config.url
            )));
        }
        let mut token = HeaderValue::from_str(config.token.expose())
            .map_err(|_| CoderError::Config("Coder token contains invalid characters".into()))?;
        token.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(SESSION_TOKEN_HEADER, token);
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &config.ca_file {
            for certificate in read_ca_bundle(path)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            // reqwest drops `Authorization` on a cross-host redirect but not a custom header
            // such as `Coder-Session-Token`: follow none, so the token never leaves the origin.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .user_agent(config.user_agent)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| CoderError::Config(format!("cannot build the HTTP client: {e}")))?;
        let limiter = config
            .rate_limit_per_second
            .map(|rate| Arc::new(RateLimiter::direct(Quota::per_second(rate))));
        Ok(CoderClient {
            http,
            base: Arc::new(config.url),
            limiter,
            observer: Arc::new(NoObserver),
            identity: Arc::new(OnceCell::new()),
            clock: Arc::new(clock::SystemClock),
        })
    }

    /// The same client reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn clock::Clock>) -> CoderClient {
        self.clock = clock;
        self
    }

    /// The same client reporting each call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> CoderClient {
        self.observer = observer;
        self
    }

    /// Coder's base URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    // ----- deployment -----

    /// `GET /api/v2/buildinfo`.
    pub async fn build_info(&self) -> Result<BuildInfo, CoderError> {
        self.fetch(&routes::BUILD_INFO, &[], &[]).await
    }

    /// `GET /api/v2/entitlements`: which licensed features (groups = `template_rbac`) exist.
    pub async fn entitlements(&self) -> Result<Entitlements, CoderError> {
        self.fetch(&routes::ENTITLEMENTS, &[], &[]).await
    }

    /// Who the bridge's token belongs to. Read once and cached for every clone; from then on an
    /// `owner` token sends `X-Coder-Bypass-Ratelimit: true`.
    pub async fn identify(&self) -> Result<Identity, CoderError> {
        let identity = self
            .identity
            .get_or_try_init(|| async {
                let user: User = self.fetch(&routes::GET_USER, &["me"], &[]).await?;
                let is_owner = user.has_role(ROLE_OWNER);
                Ok::<_, CoderError>(Identity { user, is_owner })
            })
            .await?;
        Ok(identity.clone())
    }

    // ----- users -----

    /// `GET /api/v2/users` with Coder's `q` search and pagination. Never lists deleted users.
    pub async fn list_users(&self, query: &UserQuery) -> Result<UsersPage, CoderError> {
        let mut params = Vec::new();
        if let Some(q) = &query.q {
            params.push(("q", q.clone()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(offset) = query.offset {
            params.push(("offset", offset.to_string()));
        }
        self.fetch(&routes::LIST_USERS, &[], &params).await
    }

    /// Every user matching `q` (all pages).
    pub async fn list_all_users(&self, q: Option<&str>) -> Result<Vec<User>, CoderError> {
        let mut users = Vec::new();
        loop {
            let query = UserQuery {
                q: q.map(str::to_owned),
                limit: Some(USERS_PAGE_SIZE),
                offset: Some(u32::try_from(users.len()).unwrap_or(u32::MAX)),
            };
            let page = self.list_users(&query).await?;
            let last = page.users.len() < USERS_PAGE_SIZE as usize;
            users.extend(page.users);
            // `count` bounds the loop even if a server ignored `offset`.
            if last || users.len() as u64 >= page.count {
                return Ok(users);
            }
        }
    }

    /// The non-deleted user with this email (ignoring case), via `q=email:<addr>`. `{user}` in a
    /// path never accepts an email.
    pub async fn find_user_by_email(&self, email: &str) -> Result<Option<User>, CoderError> {
        let users = self.list_all_users(Some(&format!("email:{email}"))).await?;
        Ok(users
            .into_iter()
            .find(|u| u.email.eq_ignore_ascii_case(email)))
    }

    /// The non-deleted user with this username (ignoring case), via `q=username:<name>`.
    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, CoderError> {
        let users = self
            .list_all_users(Some(&format!("username:{username}")))
            .await?;
        Ok(users
            .into_iter()
            .find(|u| u.username.eq_ignore_ascii_case(username)))
    }

    /// Whether the user `id` exists and is not deleted. `GET /users/{id}` also answers for
    /// deleted users, so deletion is confirmed by listing (by the username read from it).
    pub async fn user_is_listed(&self, id: Uuid) -> Result<bool, CoderError> {
        let user = match self.user(id).await {
            Ok(user) => user,
            Err(error) if error.is_not_found() => return Ok(false),
            Err(error) => return Err(error),
        };
        Ok(self
            .find_user_by_username(&user.username)
            .await?
            .is_some_and(|u| u.id == id))
    }

    /// `GET /api/v2/users/{user}`; answers for deleted users too.
    pub async fn user(&self, id: Uuid) -> Result<User, CoderError> {
        self.fetch(&routes::GET_USER, &[&id.to_string()], &[]).await
    }

    /// `POST /api/v2/users`. 409 "User already exists." when the username or email is taken
    /// (ignoring case); a race past that check can surface as a retryable 500.
    pub async fn create_user(&self, request: &CreateUserRequest) -> Result<User, CoderError> {
        self.send(&routes::CREATE_USER, &[], Some(request)).await
    }

    /// `POST /api/v2/users` with `service_account: true`: an account that cannot log in
    /// (`login_type` `none`, no email). Service accounts are Coder Premium: a 403 here means the
    /// deployment lacks the licence (the same token creates people, so it is not the bridge's
    /// credentials) and is reported as [`CoderError::Unlicensed`].
    pub async fn create_service_account(
        &self,
        username: &str,
        name: &str,
        organization_ids: Vec<Uuid>,
    ) -> Result<User, CoderError> {
        let request = CreateUserRequest {
            email: String::new(),
            username: username.to_owned(),
            name: name.to_owned(),
            login_type: LoginType::None,
            organization_ids,
            user_status: Some(UserStatus::Active),
            service_account: true,
        };
        self.send(&routes::CREATE_USER, &[], Some(&request))
            .await
            .map_err(|error| match error {
                CoderError::Auth {
                    status: 403,
                    message,
                } => CoderError::Unlicensed {
                    feature: routes::FEATURE_SERVICE_ACCOUNTS,
                    message,
                },
                other => other,
            })
    }

    /// `PUT /api/v2/users/{user}/profile`: rename and/or set the display name (409 if the new
    /// username is taken).
    pub async fn update_profile(
        &self,
        id: Uuid,
        request: &UpdateUserProfileRequest,
    ) -> Result<User, CoderError> {
        self.send(&routes::UPDATE_PROFILE, &[&id.to_string()], Some(request))
            .await
    }

    /// `PUT /api/v2/users/{user}/status/suspend` (idempotent; blocks the user's API keys and
    /// stops their running workspaces; 400 for an owner or the bridge itself).
    pub async fn suspend_user(&self, id: Uuid) -> Result<User, CoderError> {
        self.send::<(), _>(&routes::SUSPEND_USER, &[&id.to_string()], None)
            .await
    }

    /// `PUT /api/v2/users/{user}/status/activate` (idempotent).
    pub async fn activate_user(&self, id: Uuid) -> Result<User, CoderError> {
        self.send::<(), _>(&routes::ACTIVATE_USER, &[&id.to_string()], None)
            .await
    }

    /// `DELETE /api/v2/users/{user}`: soft delete; 417 while the user owns a workspace.
    pub async fn delete_user(&self, id: Uuid) -> Result<(), CoderError> {
        self.call_for_effect(&routes::DELETE_USER, &[&id.to_string()])
            .await
    }

    /// `GET /api/v2/users/{user}/roles`: site roles and organization roles.
    pub async fn user_roles(&self, id: Uuid) -> Result<UserRoles, CoderError> {
        self.fetch(&routes::GET_USER_ROLES, &[&id.to_string()], &[])
            .await
    }

    /// `PUT /api/v2/users/{user}/roles`: replaces the whole site-role set (`member` implied).
    pub async fn set_site_roles(&self, id: Uuid, roles: &[String]) -> Result<User, CoderError> {
        let body = UpdateRoles {
            roles: roles.to_vec(),
        };
        self.send(&routes::PUT_USER_ROLES, &[&id.to_string()], Some(&body))
            .await
    }

    // ----- organizations -----

    /// `GET /api/v2/organizations`.
    pub async fn organizations(&self) -> Result<Vec<Organization>, CoderError> {
        self.fetch(&routes::LIST_ORGANIZATIONS, &[], &[]).await
    }

    /// The organization with `is_default: true`.
    pub async fn default_organization(&self) -> Result<Organization, CoderError> {
        self.organizations()
            .await?
            .into_iter()
            .find(|org| org.is_default)
            .ok_or_else(|| CoderError::Protocol("no organization has is_default: true".into()))
    }

    /// `GET /api/v2/organizations/{organization}/members`.
    pub async fn organization_members(
        &self,
        organization: Uuid,
    ) -> Result<Vec<OrganizationMemberWithUserData>, CoderError> {
        self.fetch(
            &routes::LIST_ORGANIZATION_MEMBERS,
            &[&organization.to_string()],
            &[],
        )
        .await
    }

    /// `POST /api/v2/organizations/{organization}/members/{user}` (400 if already a member, or
    /// for an OIDC user while Coder's organization sync is on).
    pub async fn add_organization_member(
        &self,
        organization: Uuid,
        user: Uuid,
    ) -> Result<OrganizationMember, CoderError> {
        let params = [organization.to_string(), user.to_string()];
        self.send::<(), _>(
            &routes::ADD_ORGANIZATION_MEMBER,
            &[&params[0], &params[1]],
            None,
        )
        .await
    }

    /// `DELETE /api/v2/organizations/{organization}/members/{user}`.
    pub async fn remove_organization_member(
        &self,
        organization: Uuid,
        user: Uuid,
    ) -> Result<(), CoderError> {
        let params = [organization.to_string(), user.to_string()];
        self.call_for_effect(
            &routes::REMOVE_ORGANIZATION_MEMBER,
            &[&params[0], &params[1]],
        )
        .await
    }

    /// `PUT /api/v2/organizations/{organization}/members/{user}/roles`: replaces the member's
    /// organization roles.
    pub async fn set_organization_member_roles(
        &self,
        organization: Uuid,
        user: Uuid,
        roles: &[String],
    ) -> Result<OrganizationMember, CoderError> {
        let params = [organization.to_string(), user.to_string()];
        let body = UpdateRoles {
            roles: roles.to_vec(),
        };
        self.send(
            &routes::PUT_ORGANIZATION_MEMBER_ROLES,
            &[&params[0], &params[1]],
            Some(&body),
        )
        .await
    }

    // ----- groups (Premium: template_rbac) -----

    /// `GET /api/v2/organizations/{organization}/groups` (includes `Everyone`).
    pub async fn groups(&self, organization: Uuid) -> Result<Vec<Group>, CoderError> {
        self.fetch(&routes::LIST_GROUPS, &[&organization.to_string()], &[])
            .await
    }

    /// `GET /api/v2/groups/{group}`.
    pub async fn group(&self, id: Uuid) -> Result<Group, CoderError> {
        self.fetch(&routes::GET_GROUP, &[&id.to_string()], &[])
            .await
    }

    /// `GET /api/v2/organizations/{organization}/groups/{groupName}` (name ignoring case).
    pub async fn group_by_name(&self, organization: Uuid, name: &str) -> Result<Group, CoderError> {
        self.fetch(
            &routes::GET_GROUP_BY_NAME,
            &[&organization.to_string(), name],
            &[],
        )
        .await
    }

    /// `POST /api/v2/organizations/{organization}/groups` (409 on an exact duplicate name).
    pub async fn create_group(
        &self,
        organization: Uuid,
        request: &CreateGroupRequest,
    ) -> Result<Group, CoderError> {
        self.send(
            &routes::CREATE_GROUP,
            &[&organization.to_string()],
            Some(request),
        )
        .await
    }

    /// `PATCH /api/v2/groups/{group}`. All or nothing: 400 and no change at all when one user to
    /// add is already a member or not in the group's organization.
    pub async fn patch_group(
        &self,
        id: Uuid,
        request: &PatchGroupRequest,
    ) -> Result<Group, CoderError> {
        self.send(&routes::PATCH_GROUP, &[&id.to_string()], Some(request))
            .await
    }

    /// `DELETE /api/v2/groups/{group}`; Coder answers a message object.
    pub async fn delete_group(&self, id: Uuid) -> Result<MessageResponse, CoderError> {
        self.send::<(), _>(&routes::DELETE_GROUP, &[&id.to_string()], None)
            .await
    }

    // ----- API keys and workspaces (offboarding) -----

    /// `GET /api/v2/users/{user}/keys/tokens`: the user's long-lived tokens (`null` = none).
    pub async fn api_tokens(&self, user: Uuid) -> Result<Vec<ApiKey>, CoderError> {
        let keys: Option<Vec<ApiKey>> = self
            .fetch(&routes::LIST_API_TOKENS, &[&user.to_string()], &[])
            .await?;
        Ok(keys.unwrap_or_default())
    }

    /// `POST /api/v2/users/{user}/keys/tokens`: mints a token for `user` (another user's needs
    /// `owner`); 409 when the user already has a token of that name. The answer holds the only
    /// copy of the secret.
    pub async fn create_api_token(
        &self,
        user: Uuid,
        request: &CreateTokenRequest,
    ) -> Result<GeneratedApiKey, CoderError> {
        self.send(
            &routes::CREATE_API_TOKEN,
            &[&user.to_string()],
            Some(request),
        )
        .await
    }

    /// `GET /api/v2/users/me/keys/{keyid}`: one of the bridge's own keys, such as the one it
    /// calls with ([`crate::SessionToken::key_id`]), for its expiry.
    pub async fn own_api_key(&self, key_id: &str) -> Result<ApiKey, CoderError> {
        self.fetch(&routes::GET_API_KEY, &["me", key_id], &[]).await
    }

    /// `DELETE /api/v2/users/{user}/keys/{keyid}`.
    pub async fn delete_api_key(&self, user: Uuid, key_id: &str) -> Result<(), CoderError> {
        self.call_for_effect(&routes::DELETE_API_KEY, &[&user.to_string(), key_id])
            .await
    }

    /// `GET /api/v2/workspaces?q=owner:<username>`.
    pub async fn workspaces_owned_by(&self, username: &str) -> Result<Vec<Workspace>, CoderError> {
        let page: WorkspacesPage = self
            .fetch(
                &routes::LIST_WORKSPACES,
                &[],
                &[("q", format!("owner:{username}"))],
            )
            .await?;
        Ok(page.workspaces)
    }

    /// `POST /api/v2/workspaces/{workspace}/builds {"transition":"stop"}` (409 while another
    /// build runs).
    pub async fn stop_workspace(&self, id: Uuid) -> Result<WorkspaceBuild, CoderError> {
        let body = CreateWorkspaceBuildRequest {
            transition: WorkspaceTransition::Stop,
        };
        self.send(
            &routes::CREATE_WORKSPACE_BUILD,
            &[&id.to_string()],
            Some(&body),
        )
        .await
    }

    // ----- Coder's own IdP sync (Premium) -----

    /// `GET /api/v2/settings/idpsync/organization`.
    pub async fn organization_sync_settings(&self) -> Result<OrganizationSyncSettings, CoderError> {
        self.fetch(&routes::ORGANIZATION_SYNC_SETTINGS, &[], &[])
            .await
    }

    /// `GET /api/v2/organizations/{organization}/settings/idpsync/groups`.
    pub async fn group_sync_settings(
        &self,
        organization: Uuid,
    ) -> Result<GroupSyncSettings, CoderError> {
        self.fetch(
            &routes::GROUP_SYNC_SETTINGS,
            &[&organization.to_string()],
            &[],
        )
        .await
    }

    /// `GET /api/v2/organizations/{organization}/settings/idpsync/roles`.
    pub async fn role_sync_settings(
        &self,
        organization: Uuid,
    ) -> Result<RoleSyncSettings, CoderError> {
        self.fetch(
            &routes::ROLE_SYNC_SETTINGS,
            &[&organization.to_string()],
            &[],
        )
        .await
    }

    // ----- transport -----

    /// A call whose answer body the bridge does not need (204, or a bare 200).
    async fn call_for_effect(
        &self,
        route: &'static Route,
        params: &[&str],
    ) -> Result<(), CoderError> {
        self.execute::<()>(route, params, &[], None).await.map(drop)
    }

    async fn fetch<T: DeserializeOwned>(
        &self,
        route: &'static Route,
        params: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, CoderError> {
        let bytes = self.execute::<()>(route, params, query, None).await?;
        decode(route, &bytes)
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        route: &'static Route,
        params: &[&str],
        body: Option<&B>,
    ) -> Result<T, CoderError> {
        let bytes = self.execute(route, params, &[], body).await?;
        decode(route, &bytes)
    }

    /// Sends one request and classifies the answer; returns the body of a 2xx answer.
    async fn execute<B: Serialize>(
        &self,
        route: &'static Route,
        params: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<Vec<u8>, CoderError> {
        let url = self.url_for(route, params, query)?;
        let request_url = url.clone();
        let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes())
            .map_err(|e| CoderError::Protocol(e.to_string()))?;
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        // An owner's token bypasses Coder's rate limit, so pacing it would only slow the sync
        // down (docs/CONFIGURATION.md: SCIM_BRIDGE_CODER_RATE_LIMIT is for non-owner tokens).
        if self
            .identity
            .get()
            .is_some_and(|identity| identity.is_owner)
        {
            request = request.header(BYPASS_RATE_LIMIT_HEADER, "true");
        } else if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        let started = self.clock.instant();
        let outcome = async {
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let retry_after = retry_after(response.headers(), self.clock.now().into());
            let location = redirect_target(&request_url, response.headers());
            let bytes = response.bytes().await.map_err(transport_error)?;
            Ok::<_, CoderError>((status, retry_after, location, bytes))
        }
        .await;
        self.observer.observe(&CallRecord {
            route,
            status: outcome.as_ref().ok().map(|(status, ..)| *status),
            latency: self.clock.elapsed(started),
        });
        let (status, retry_after, location, bytes) = outcome?;
        classify(route, status, retry_after, location, bytes)
    }

    fn url_for(
        &self,
        route: &Route,
        params: &[&str],
        query: &[(&str, String)],
    ) -> Result<Url, CoderError> {
        let mut url = (*self.base).clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| CoderError::Config("Coder URL cannot be a base".into()))?;
            segments.pop_if_empty();
            let mut params = params.iter();
            for segment in route.path.split('/').filter(|s| !s.is_empty()) {
                if segment.starts_with('{') {
                    let value = params.next().ok_or_else(|| {
                        CoderError::Protocol(format!(
                            "missing path parameter {segment} for {route}"
                        ))
                    })?;
                    // `push` skips "." and ".." (and an empty one would merge two segments):
                    // the request would reach another route.
                    if matches!(*value, "" | "." | "..") {
                        return Err(CoderError::Protocol(format!(
                            "path parameter {segment} of {route} is {value:?}, not a name"
                        )));
                    }
                    // Percent-encodes '/', '?', '#' and '%' so a parameter stays one segment.
                    segments.push(value);
                } else {
                    segments.push(segment);
                }
            }
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        // The session token goes with every request: never anywhere but under the base URL.
        if url.origin() != self.base.origin() || !url.path().starts_with(self.base.path()) {
            return Err(CoderError::Protocol(format!(
                "{route} would leave the Coder URL {} for {url}",
                self.base
            )));
        }
        Ok(url)
    }
}

/// Reads a PEM bundle of CA certificates; an unreadable or empty bundle is a configuration error.
pub(crate) fn read_ca_bundle(
    path: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, CoderError> {
    let pem = std::fs::read(path).map_err(|e| {
        CoderError::Config(format!("cannot read CA bundle {}: {e}", path.display()))
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| CoderError::Config(format!("invalid CA bundle {}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(CoderError::Config(format!(
            "CA bundle {} holds no certificate",
            path.display()
        )));
    }
    Ok(certificates)
}

/// The wait Coder asks for: `Retry-After`, else the rate limiter's `X-RateLimit-Reset` (Unix
/// seconds when the window ends).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header(RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| {
            let reset = header("X-RateLimit-Reset")?.trim().parse::<u64>().ok()?;
            let reset = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(reset))?;
            Some(reset.duration_since(now).unwrap_or(Duration::ZERO))
        })
}

/// Where a 3xx answer points, resolved against the request's URL; `None` without `Location`.
fn redirect_target(request: &Url, headers: &HeaderMap) -> Option<String> {
    let location = headers.get(LOCATION)?;
    let location = String::from_utf8_lossy(location.as_bytes());
    Some(match request.join(&location) {
        Ok(url) => url.to_string(),
        Err(_) => location.chars().take(512).collect(),
    })
}

fn transport_error(error: reqwest::Error) -> CoderError {
    use std::error::Error as _;
    let mut reason = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    CoderError::Retryable {
        reason,
        status: None,
        retry_after: None,
    }
}

fn classify(
    route: &'static Route,
    status: u16,
    retry_after: Option<Duration>,
    location: Option<String>,
    bytes: impl AsRef<[u8]>,
) -> Result<Vec<u8>, CoderError> {
    let bytes = bytes.as_ref();
    if (200..300).contains(&status) {
        return Ok(bytes.to_vec());
    }
    if let (300..=399, Some(location)) = (status, location) {
        return Err(CoderError::Redirect { status, location });
    }
    let body =
        serde_json::from_slice::<MessageResponse>(bytes).unwrap_or_else(|_| MessageResponse {
            message: String::from_utf8_lossy(bytes).chars().take(512).collect(),
            ..MessageResponse::default()
        });
    Err(match status {
        429 | 500..=599 => CoderError::Retryable {
            reason: format!("{route} answered {status}: {}", body.message),
            status: Some(status),
            retry_after,
        },
        403 if route.licensed_feature.is_some() => CoderError::Unlicensed {
            feature: route.licensed_feature.unwrap_or_default(),
            message: body.message,
        },
        401 | 403 => CoderError::Auth {
            status,
            message: body.message,
        },
        400..=499 => CoderError::Permanent {
            status,
            message: body.message,
            detail: body.detail,
            validations: body.validations,
        },
        _ => CoderError::Protocol(format!("{route} answered unexpected status {status}")),
    })
}

fn decode<T: DeserializeOwned>(route: &Route, bytes: &[u8]) -> Result<T, CoderError> {
    // Bodiless successes (204) decode as `()` / `None`.
    let bytes: &[u8] = if bytes.is_empty() { b"null" } else { bytes };
    serde_json::from_slice(bytes)
        .map_err(|e| CoderError::Protocol(format!("{route}: cannot decode the answer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> CoderClient {
        let config = CoderConfig::new(Url::parse(base).unwrap(), crate::SessionToken::new("t"));
        CoderClient::new(config).unwrap()
    }

    #[test]
    fn urls_keep_the_base_path_and_encode_parameters() {
        let c = client("https://coder.example.com/prefix/");
        let url = c
            .url_for(
                &routes::GET_GROUP_BY_NAME,
                &["1b4e28ba-2fa1-11d2-883f-0016d3cca427", "a/b c"],
                &[],
            )
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://coder.example.com/prefix/api/v2/organizations/1b4e28ba-2fa1-11d2-883f-0016d3cca427/groups/a%2Fb%20c"
        );
        let url = c
            .url_for(
                &routes::LIST_USERS,
                &[],
                &[("q", "email:a+b@c.d".to_owned())],
            )
            .unwrap();
        assert_eq!(url.query(), Some("q=email%3Aa%2Bb%40c.d"));
        assert!(c.url_for(&routes::GET_USER, &[], &[]).is_err());
    }

    #[test]
    fn classification_by_status() {
        let body =
            br#"{"message":"m","detail":"d","validations":[{"field":"username","detail":"x"}]}"#;
        let err = classify(&routes::CREATE_USER, 400, None, None, body).unwrap_err();
        assert_eq!(err.validations().len(), 1);
        assert!(matches!(err, CoderError::Permanent { status: 400, .. }));
        assert!(
            classify(&routes::CREATE_USER, 401, None, None, body)
                .unwrap_err()
                .is_auth()
        );
        assert!(
            classify(&routes::CREATE_USER, 403, None, None, body)
                .unwrap_err()
                .is_auth()
        );
        assert!(matches!(
            classify(&routes::CREATE_GROUP, 403, None, None, body).unwrap_err(),
            CoderError::Unlicensed {
                feature: "template_rbac",
                ..
            }
        ));
        let busy = classify(
            &routes::LIST_USERS,
            429,
            Some(Duration::from_secs(3)),
            None,
            b"",
        )
        .unwrap_err();
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(
            classify(&routes::LIST_USERS, 502, None, None, b"<html>")
                .unwrap_err()
                .is_retryable()
        );
        assert!(matches!(
            classify(&routes::LIST_USERS, 302, None, None, b"").unwrap_err(),
            CoderError::Protocol(_)
        ));
        let moved = classify(
            &routes::LIST_USERS,
            308,
            None,
            Some("https://elsewhere.example.com/api/v2/users".into()),
            b"",
        )
        .unwrap_err();
        assert!(moved.needs_operator() && !moved.is_retryable(), "{moved:?}");
        assert!(
            moved.to_string().contains(
                "308 Permanent Redirect with Location https://elsewhere.example.com/api/v2/users"
            ),
            "{moved}"
        );
    }

    #[test]
    fn redirect_targets_are_resolved_against_the_request() {
        let request = Url::parse("https://coder.example.com/prefix/api/v2/users").unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(redirect_target(&request, &headers), None);
        headers.insert(LOCATION, HeaderValue::from_static("/login?next=%2F"));
        assert_eq!(
            redirect_target(&request, &headers).as_deref(),
            Some("https://coder.example.com/login?next=%2F")
        );
        headers.insert(
            LOCATION,
            HeaderValue::from_static("https://sso.example.com/x"),
        );
        assert_eq!(
            redirect_target(&request, &headers).as_deref(),
            Some("https://sso.example.com/x")
        );
    }

    #[test]
    fn parameters_built_from_data_stay_under_the_base_url() {
        let c = client("https://coder.example.com/prefix/");
        let org = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        for name in [
            "https://evil.example.com/x",
            "//evil.example.com/x",
            "../../../x",
            "%2e%2e",
            "a?b#c",
            "@evil.example.com",
        ] {
            let url = c
                .url_for(&routes::GET_GROUP_BY_NAME, &[org, name], &[])
                .unwrap();
            assert_eq!(url.host_str(), Some("coder.example.com"), "{name}: {url}");
            assert!(
                url.path()
                    .starts_with(&format!("/prefix/api/v2/organizations/{org}/groups/")),
                "{name}: {url}"
            );
            assert_eq!(url.path_segments().unwrap().count(), 7, "{name}: {url}");
            assert_eq!((url.query(), url.fragment()), (None, None), "{name}: {url}");
        }
        // "." and ".." would be dropped and "" would merge segments: another route.
        for name in ["", ".", ".."] {
            assert!(
                matches!(
                    c.url_for(&routes::GET_GROUP_BY_NAME, &[org, name], &[]),
                    Err(CoderError::Protocol(_))
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn retry_after_falls_back_to_the_rate_limit_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut headers = HeaderMap::new();
        headers.insert("X-RateLimit-Reset", HeaderValue::from_static("1042"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(42)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(5)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn rejects_non_http_urls_and_bad_tokens() {
        let config = CoderConfig::new(
            Url::parse("ftp://x").unwrap(),
            crate::SessionToken::new("t"),
        );
        assert!(matches!(
            CoderClient::new(config),
            Err(CoderError::Config(_))
        ));
        let config = CoderConfig::new(
            Url::parse("http://127.0.0.1:9").unwrap(),
            crate::SessionToken::new("a\nb"),
        );
        assert!(matches!(
            CoderClient::new(config),
            Err(CoderError::Config(_))
        ));
        let remote_http = CoderConfig::new(
            Url::parse("http://coder.example.com").unwrap(),
            crate::SessionToken::new("t"),
        );
        let refused = CoderClient::new(remote_http.clone()).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("SCIM_BRIDGE_CODER_ALLOW_HTTP=true"),
            "{refused}"
        );
        assert!(
            CoderClient::new(CoderConfig {
                allow_http: true,
                ..remote_http
            })
            .is_ok()
        );
    }

    #[test]
    fn https_clients_build_and_ca_bundles_are_checked() {
        let url = Url::parse("https://coder.example.com").unwrap();
        assert!(
            CoderClient::new(CoderConfig::new(url.clone(), crate::SessionToken::new("t"))).is_ok()
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        for ca_file in [empty, dir.path().join("absent.pem")] {
            let config = CoderConfig {
                ca_file: Some(ca_file),
                ..CoderConfig::new(url.clone(), crate::SessionToken::new("t"))
            };
            assert!(matches!(
                CoderClient::new(config),
                Err(CoderError::Config(_))
            ));
        }
    }

    #[test]
    fn debug_shows_no_token() {
        let shown = format!("{:?}", client("http://127.0.0.1:9/"));
        assert!(!shown.contains("\"t\""), "{shown}");
    }
}
