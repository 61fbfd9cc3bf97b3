//! The test-control API under `/__fake/…` (not part of Coder) and the operations behind it,
//! shared with [`crate::FakeHandle`]'s methods.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use crate::FakeError;
use crate::faults::{ActiveOutage, Fault, Outage};
use crate::server::{Shared, control_error};
use crate::state::{FakeApiKey, FakeWorkspace, IdpSyncOptions, World, lock};

/// Finds a non-deleted user by id or username (ignoring case).
pub(crate) fn find_user(world: &World, key: &str) -> Result<Uuid, FakeError> {
    world
        .users
        .values()
        .find(|u| !u.deleted && (u.id.to_string() == key || u.username.eq_ignore_ascii_case(key)))
        .map(|u| u.id)
        .ok_or_else(|| FakeError::Control(format!("no user {key:?}")))
}

pub(crate) fn create_workspace(
    world: &mut World,
    user: &str,
    name: &str,
    running: bool,
) -> Result<FakeWorkspace, FakeError> {
    let owner = find_user(world, user)?;
    world
        .add_workspace(owner, name, running)
        .ok_or_else(|| FakeError::Control(format!("no user {user:?}")))
}

pub(crate) fn set_build_running(
    world: &mut World,
    workspace: Uuid,
    running: bool,
) -> Result<(), FakeError> {
    let workspace = world
        .workspaces
        .get_mut(&workspace)
        .ok_or_else(|| FakeError::Control(format!("no workspace {workspace}")))?;
    workspace.build_running = running;
    Ok(())
}

pub(crate) fn create_token(
    world: &mut World,
    user: &str,
    name: &str,
) -> Result<FakeApiKey, FakeError> {
    let owner = find_user(world, user)?;
    Ok(world.issue_token(owner, name, None))
}

pub(crate) fn inject(world: &mut World, fault: Fault) -> Result<(), FakeError> {
    fault.validate().map_err(FakeError::Control)?;
    world.faults.push(fault);
    Ok(())
}

pub(crate) fn start_outage(world: &mut World, outage: Outage) -> Result<(), FakeError> {
    outage.validate().map_err(FakeError::Control)?;
    world.outage = Some(ActiveOutage {
        kind: outage.kind,
        until: crate::instant() + std::time::Duration::from_millis(outage.millis),
    });
    Ok(())
}

pub(crate) fn oidc_login(
    world: &mut World,
    user: &str,
    claims: &[String],
) -> Result<(), FakeError> {
    let id = find_user(world, user)?;
    crate::api::oidc_login(world, id, claims).map_err(FakeError::Control)
}

fn answer<T: serde::Serialize>(result: Result<T, FakeError>) -> HttpResponse {
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(error) => control_error(error.to_string()),
    }
}

async fn state(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(lock(&shared.world).snapshot())
}

#[derive(Deserialize)]
struct NewWorkspace {
    user: String,
    name: String,
    #[serde(default)]
    running: bool,
}

async fn post_workspace(shared: web::Data<Shared>, body: web::Json<NewWorkspace>) -> HttpResponse {
    answer(create_workspace(
        &mut lock(&shared.world),
        &body.user,
        &body.name,
        body.running,
    ))
}

#[derive(Deserialize)]
struct BuildRunning {
    running: bool,
}

async fn put_build_running(
    shared: web::Data<Shared>,
    id: web::Path<Uuid>,
    body: web::Json<BuildRunning>,
) -> HttpResponse {
    answer(set_build_running(
        &mut lock(&shared.world),
        *id,
        body.running,
    ))
}

#[derive(Deserialize)]
struct NewToken {
    user: String,
    #[serde(default)]
    name: Option<String>,
}

async fn post_token(shared: web::Data<Shared>, body: web::Json<NewToken>) -> HttpResponse {
    let name = body.name.clone().unwrap_or_else(|| "token".into());
    answer(create_token(&mut lock(&shared.world), &body.user, &name))
}

async fn post_fault(shared: web::Data<Shared>, body: web::Json<Fault>) -> HttpResponse {
    answer(inject(&mut lock(&shared.world), body.into_inner()))
}

async fn delete_faults(shared: web::Data<Shared>) -> HttpResponse {
    lock(&shared.world).faults.clear();
    HttpResponse::NoContent().finish()
}

async fn put_outage(shared: web::Data<Shared>, body: web::Json<Outage>) -> HttpResponse {
    answer(start_outage(&mut lock(&shared.world), body.into_inner()))
}

async fn delete_outage(shared: web::Data<Shared>) -> HttpResponse {
    lock(&shared.world).outage = None;
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Release {
    count: usize,
}

async fn post_release_held(shared: web::Data<Shared>, body: web::Json<Release>) -> HttpResponse {
    shared.held.release(body.count);
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Premium {
    premium: bool,
}

async fn put_premium(shared: web::Data<Shared>, body: web::Json<Premium>) -> HttpResponse {
    lock(&shared.world).premium = body.premium;
    HttpResponse::NoContent().finish()
}

async fn put_idp_sync(shared: web::Data<Shared>, body: web::Json<IdpSyncOptions>) -> HttpResponse {
    lock(&shared.world).idp_sync = body.into_inner();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct RateLimit {
    per_minute: Option<u32>,
}

async fn put_rate_limit(shared: web::Data<Shared>, body: web::Json<RateLimit>) -> HttpResponse {
    let mut world = lock(&shared.world);
    world.rate_limit_per_minute = body.per_minute;
    world.rate_windows.clear();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct Login {
    #[serde(default)]
    claims: Vec<String>,
}

async fn post_oidc_login(
    shared: web::Data<Shared>,
    user: web::Path<String>,
    body: web::Json<Login>,
) -> HttpResponse {
    answer(oidc_login(&mut lock(&shared.world), &user, &body.claims))
}

/// Mounts the control routes.
pub(crate) fn routes(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/__fake")
            .route("/state", web::get().to(state))
            .route("/workspaces", web::post().to(post_workspace))
            .route(
                "/workspaces/{id}/build-running",
                web::put().to(put_build_running),
            )
            .route("/tokens", web::post().to(post_token))
            .route("/faults", web::post().to(post_fault))
            .route("/faults", web::delete().to(delete_faults))
            .route("/held/release", web::post().to(post_release_held))
            .route("/outage", web::put().to(put_outage))
            .route("/outage", web::delete().to(delete_outage))
            .route("/premium", web::put().to(put_premium))
            .route("/idp-sync", web::put().to(put_idp_sync))
            .route("/rate-limit", web::put().to(put_rate_limit))
            .route("/users/{user}/oidc-login", web::post().to(post_oidc_login)),
    );
}
