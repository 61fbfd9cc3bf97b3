//! An in-memory fake of the Coder REST API for scim-bridge's tests.
//!
//! It reproduces the Coder behaviour the bridge relies on (including where Coder departs from its
//! swagger) for the routes in [`ROUTES`] (the same swagger-checked table style as the `coder` client's), over real HTTP on
//! `127.0.0.1`:
//!
//! ```no_run
//! # async fn demo() -> Result<(), coder_fake::FakeError> {
//! let fake = coder_fake::CoderFake::start(coder_fake::FakeOptions { premium: true, ..Default::default() }).await?;
//! // point the client at fake.base_url() with fake.owner_token() ...
//! let state = fake.state(); // users, groups, keys, workspaces, call log
//! fake.stop().await;
//! # Ok(()) }
//! ```
//!
//! Tests steer it through [`FakeHandle`] (or, for the binary, the `/__fake/…` control API):
//! workspaces, tokens, licence, IdP sync, OIDC logins, bounded [`Fault`]s, including
//! dropped connections, which a TCP front in front of actix-web produces, and bounded
//! [`Outage`]s of the whole deployment.

#![warn(missing_docs)]

mod api;
mod control;
mod faults;
mod front;
mod server;
mod state;

// The fake stands in for a Coder deployment: its time and ids are the system's, through the one
// module that may read them.
use clock::{Clock as _, IdSource as _};

fn now() -> chrono::DateTime<Utc> {
    clock::SystemClock.now()
}

fn instant() -> std::time::Instant {
    clock::SystemClock.instant().into_std()
}

fn new_id() -> Uuid {
    clock::SystemIds.uuid_v4()
}

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpServer, web};
use chrono::Utc;
use tokio::net::TcpListener;
use uuid::Uuid;

pub use api::{Access, FakeRoute, ROUTES};
pub use faults::{Fault, FaultKind, MAX_FAULT_COUNT, MAX_FAULT_LATENCY_MS, MAX_OUTAGE_MS, Outage};
pub use state::{
    CallLogEntry, FakeApiKey, FakeGroup, FakeOrganization, FakeState, FakeUser, FakeWorkspace,
    IdpSyncOptions, LoginType, UserStatus, WorkspaceStatus,
};

use crate::server::Shared;
use crate::state::{World, lock};

/// Coder's default API rate limit per (user, path) per minute.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 512;

/// Errors of the fake itself (not Coder errors, which it answers over HTTP).
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// Binding or serving failed.
    #[error("coder-fake I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A control operation was refused (unknown user, unbounded fault, ...).
    #[error("coder-fake control: {0}")]
    Control(String),
}

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// Licence Premium features (groups = `template_rbac`, IdP sync, several organizations).
    pub premium: bool,
    /// Token of the initial owner `admin`; random when `None`.
    pub owner_token: Option<String>,
    /// Requests per minute per (user, path); `None` = unlimited. Coder's default is 512.
    pub rate_limit_per_minute: Option<u32>,
    /// Coder's own IdP sync settings.
    pub idp_sync: IdpSyncOptions,
    /// Names of organizations besides the default one (`coder`).
    pub extra_organizations: Vec<String>,
    /// Address to listen on; `127.0.0.1:0` by default.
    pub listen: SocketAddr,
    /// Added to every Coder API request before it is handled, as a real Coder's database and
    /// network add it (zero by default). Requests wait concurrently, not in turn.
    pub latency: std::time::Duration,
}

impl Default for FakeOptions {
    fn default() -> FakeOptions {
        FakeOptions {
            premium: false,
            owner_token: None,
            rate_limit_per_minute: Some(DEFAULT_RATE_LIMIT_PER_MINUTE),
            idp_sync: IdpSyncOptions::default(),
            extra_organizations: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: std::time::Duration::ZERO,
        }
    }
}

/// Starts fakes.
#[derive(Debug)]
pub struct CoderFake;

impl CoderFake {
    /// Starts a fake deployment with one owner (`admin`, member of the default organization
    /// `coder`) and returns once it accepts connections. Must run inside a tokio runtime.
    pub async fn start(options: FakeOptions) -> Result<FakeHandle, FakeError> {
        let (world, owner) = seed(&options);
        let owner_token = owner.token;
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            held: Default::default(),
        });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(control::routes)
                .service(web::scope("/api").default_service(web::to(server::coder_api)))
                .default_service(web::to(server::not_found))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
        let upstream = server
            .addrs()
            .first()
            .copied()
            .ok_or_else(|| FakeError::Control("actix bound no address".into()))?;
        let server = server.run();
        let server_handle = server.handle();
        tokio::spawn(server);
        let listener = TcpListener::bind(options.listen).await?;
        let address = listener.local_addr()?;
        let front = tokio::spawn(front::run(listener, upstream, shared.clone()));
        Ok(FakeHandle {
            base_url: format!("http://{address}"),
            address,
            owner_token,
            owner_id: owner.user_id,
            shared,
            server: server_handle,
            front,
        })
    }
}

fn seed(options: &FakeOptions) -> (World, FakeApiKey) {
    let now = crate::now();
    let default_org = FakeOrganization {
        id: crate::new_id(),
        name: "coder".into(),
        is_default: true,
        created_at: now,
    };
    let mut organizations = vec![default_org.clone()];
    organizations.extend(
        options
            .extra_organizations
            .iter()
            .map(|name| FakeOrganization {
                id: crate::new_id(),
                name: name.clone(),
                is_default: false,
                created_at: now,
            }),
    );
    let admin = FakeUser {
        id: crate::new_id(),
        username: "admin".into(),
        email: "admin@coder.test".into(),
        name: "Admin".into(),
        login_type: LoginType::Password,
        status: UserStatus::Active,
        roles: BTreeSet::from(["owner".to_owned()]),
        organizations: organizations
            .iter()
            .map(|o| (o.id, BTreeSet::new()))
            .collect(),
        is_service_account: false,
        deleted: false,
        created_at: now,
        updated_at: now,
    };
    let mut world = World {
        premium: options.premium,
        idp_sync: options.idp_sync.clone(),
        rate_limit_per_minute: options.rate_limit_per_minute,
        latency: options.latency,
        users: BTreeMap::from([(admin.id, admin.clone())]),
        organizations,
        groups: BTreeMap::new(),
        keys: BTreeMap::new(),
        workspaces: BTreeMap::new(),
        rate_windows: Default::default(),
        faults: Vec::new(),
        outage: None,
        calls: Vec::new(),
    };
    let key = world.issue_token(admin.id, "bridge", options.owner_token.clone());
    (world, key)
}

/// A running fake. Dropping it stops the server too; [`FakeHandle::stop`] waits for that.
#[derive(Debug)]
pub struct FakeHandle {
    base_url: String,
    address: SocketAddr,
    owner_token: String,
    owner_id: Uuid,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    front: tokio::task::JoinHandle<()>,
}

impl FakeHandle {
    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Listening address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Token of the owner `admin`.
    pub fn owner_token(&self) -> &str {
        &self.owner_token
    }

    /// Id of the owner `admin`.
    pub fn owner_id(&self) -> Uuid {
        self.owner_id
    }

    /// Id of the default organization.
    pub fn default_organization_id(&self) -> Uuid {
        lock(&self.shared.world).default_organization_id()
    }

    /// Id of the organization named `name`.
    pub fn organization_id(&self, name: &str) -> Option<Uuid> {
        lock(&self.shared.world)
            .organizations
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.id)
    }

    /// A snapshot of everything the fake holds, with its call log.
    pub fn state(&self) -> FakeState {
        lock(&self.shared.world).snapshot()
    }

    /// Makes upcoming requests misbehave (bounded; see [`Fault::validate`]).
    pub fn inject(&self, fault: Fault) -> Result<(), FakeError> {
        control::inject(&mut lock(&self.shared.world), fault)
    }

    /// Removes pending faults.
    pub fn clear_faults(&self) {
        lock(&self.shared.world).faults.clear();
    }

    /// Lets `count` requests a [`FaultKind::Hold`] holds (or will hold) through.
    pub fn release_held(&self, count: usize) {
        self.shared.held.release(count);
    }

    /// How many requests a [`FaultKind::Hold`] holds now.
    pub fn held(&self) -> usize {
        self.shared.held.waiting()
    }

    /// Waits until a [`FaultKind::Hold`] holds at least `count` requests.
    pub async fn until_held(&self, count: usize) {
        self.shared.held.until_waiting(count).await;
    }

    /// Makes Coder as a whole unavailable until the outage's time runs out or
    /// [`FakeHandle::end_outage`].
    pub fn start_outage(&self, outage: Outage) -> Result<(), FakeError> {
        control::start_outage(&mut lock(&self.shared.world), outage)
    }

    /// Ends the outage in progress, if any: Coder answers again.
    pub fn end_outage(&self) {
        lock(&self.shared.world).outage = None;
    }

    /// Licenses or unlicenses Premium.
    pub fn set_premium(&self, premium: bool) {
        lock(&self.shared.world).premium = premium;
    }

    /// Replaces Coder's IdP-sync settings.
    pub fn set_idp_sync(&self, settings: IdpSyncOptions) {
        lock(&self.shared.world).idp_sync = settings;
    }

    /// Changes the rate limit and resets its counters.
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        let mut world = lock(&self.shared.world);
        world.rate_limit_per_minute = per_minute;
        world.rate_windows.clear();
    }

    /// Changes the latency added to every Coder API request.
    pub fn set_latency(&self, latency: std::time::Duration) {
        lock(&self.shared.world).latency = latency;
    }

    /// Gives `user` (id or username) a workspace, running or stopped.
    pub fn create_workspace(
        &self,
        user: &str,
        name: &str,
        running: bool,
    ) -> Result<FakeWorkspace, FakeError> {
        control::create_workspace(&mut lock(&self.shared.world), user, name, running)
    }

    /// Marks a build of `workspace` as still running (new builds then answer 409).
    pub fn set_build_running(&self, workspace: Uuid, running: bool) -> Result<(), FakeError> {
        control::set_build_running(&mut lock(&self.shared.world), workspace, running)
    }

    /// Issues a long-lived API token for `user` (id or username).
    pub fn create_api_token(&self, user: &str, name: &str) -> Result<FakeApiKey, FakeError> {
        control::create_token(&mut lock(&self.shared.world), user, name)
    }

    /// Simulates `user` logging in with OIDC `claims`: Coder's own syncs that are on reset the
    /// user's organizations, groups and organization roles.
    pub fn oidc_login(&self, user: &str, claims: &[String]) -> Result<(), FakeError> {
        control::oidc_login(&mut lock(&self.shared.world), user, claims)
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(self) {
        self.front.abort();
        self.server.stop(false).await;
    }
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        self.front.abort();
        // The stop command is sent at once; the returned future only waits for completion.
        drop(self.server.stop(false));
    }
}
