//! The actix-web side: authentication, licence gate, rate limit, body limit, injected faults
//! and the call log around the route handlers.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use futures::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api::{self, Access, ApiError, Call, Routing};
use crate::faults::{self, FaultKind};
use crate::state::{CallLogEntry, RateWindow, UserStatus, World, lock};

/// Coder refuses request bodies over 4 MiB.
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// State shared by the HTTP workers, the TCP front and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub held: Held,
}

/// Requests a [`FaultKind::Hold`] holds, and the permits that let them through.
#[derive(Debug)]
pub(crate) struct Held {
    permits: tokio::sync::Semaphore,
    waiting: tokio::sync::watch::Sender<usize>,
}

impl Default for Held {
    fn default() -> Held {
        Held {
            permits: tokio::sync::Semaphore::new(0),
            waiting: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Counts a held request out however its wait ends (released, or the fake stopping).
struct Holding<'h>(&'h tokio::sync::watch::Sender<usize>);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Held {
    /// Wait for a permit (one request through).
    async fn hold(&self) {
        self.waiting.send_modify(|n| *n += 1);
        let _holding = Holding(&self.waiting);
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
    }

    /// Let `count` held requests (present or future) through.
    pub(crate) fn release(&self, count: usize) {
        self.permits.add_permits(count);
    }

    /// How many requests are held now.
    pub(crate) fn waiting(&self) -> usize {
        *self.waiting.borrow()
    }

    /// Wait until at least `count` requests are held.
    pub(crate) async fn until_waiting(&self, count: usize) {
        let mut waiting = self.waiting.subscribe();
        // The sender lives as long as `self`.
        let _ = waiting.wait_for(|n| *n >= count).await;
    }
}

/// Rate-limit headers to send with an answer.
struct RateHeaders {
    limit: u32,
    remaining: u32,
    reset: u64,
}

/// Every `/api/v2/…` request goes through here.
pub(crate) async fn coder_api(
    request: HttpRequest,
    mut payload: web::Payload,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let method = request.method().as_str().to_owned();
    let path = request.path().to_owned();
    let routing = api::find(&method, &path);
    let template = match &routing {
        Routing::Found(m) => m.route.path.to_owned(),
        Routing::MethodNotAllowed(path) => (*path).to_owned(),
        Routing::NotFound => path.clone(),
    };
    let (fault, latency) = {
        let mut world = lock(&shared.world);
        let fault = match faults::outage(&mut world.outage) {
            Some(status @ FaultKind::Status { .. }) => Some(status),
            _ => faults::take(&mut world.faults, &method, &path, |k| {
                !matches!(k, FaultKind::Drop)
            }),
        };
        (fault, world.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault.clone() {
        Some(FaultKind::Latency { millis }) => {
            tokio::time::sleep(Duration::from_millis(millis)).await
        }
        Some(FaultKind::Hold) => shared.held.hold().await,
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => {
            let error = ApiError::new(status, "Injected fault.");
            let mut response = error_response(&error, None);
            if let Some(value) = retry_after
                && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value)
            {
                response
                    .headers_mut()
                    .insert(actix_web::http::header::RETRY_AFTER, value);
            }
            return logged(&shared, &method, template, response);
        }
        Some(FaultKind::Redirect { status, location }) => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::FOUND);
            let response = HttpResponse::build(status)
                .insert_header((actix_web::http::header::LOCATION, location))
                .finish();
            return logged(&shared, &method, template, response);
        }
        Some(FaultKind::Drop | FaultKind::StatusAfterEffect { .. }) | None => {}
    }

    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Read the whole body even when it is too large, so the client gets the 413 rather than a
    // reset connection while it is still sending.
    let mut body = Vec::new();
    let mut too_large = declared.is_some_and(|n| n > MAX_BODY_BYTES);
    while let Some(Ok(chunk)) = payload.next().await {
        too_large |= body.len() + chunk.len() > MAX_BODY_BYTES;
        if !too_large {
            body.extend_from_slice(&chunk);
        }
    }
    if too_large {
        let error = ApiError::new(413, "Request body is too large.")
            .detail(format!("limit is {MAX_BODY_BYTES} bytes"));
        return logged(&shared, &method, template, error_response(&error, None));
    }

    let query: Vec<(String, String)> = url_query(request.query_string());
    let mut world = lock(&shared.world);
    let matched = match routing {
        Routing::Found(matched) => matched,
        Routing::MethodNotAllowed(_) => {
            let error = ApiError::new(405, "Method not allowed.");
            return log_in(&mut world, &method, template, error_response(&error, None));
        }
        Routing::NotFound => {
            let error = ApiError::new(404, "Route not found.");
            return log_in(&mut world, &method, template, error_response(&error, None));
        }
    };
    let mut rate = None;
    let actor = if matched.route.access == Access::Public {
        Uuid::nil()
    } else {
        match authenticate(&mut world, &request) {
            Ok(actor) => actor,
            Err(error) => {
                return log_in(&mut world, &method, template, error_response(&error, None));
            }
        }
    };
    if actor != Uuid::nil() {
        match rate_limit(&mut world, &request, actor, &path) {
            Ok(headers) => rate = headers,
            Err((error, headers)) => {
                return log_in(
                    &mut world,
                    &method,
                    template,
                    error_response(&error, Some(&headers)),
                );
            }
        }
    }
    if matched.route.access == Access::Premium && !world.premium {
        let error = ApiError::new(403, "This is a Premium feature. Contact sales!");
        return log_in(
            &mut world,
            &method,
            template,
            error_response(&error, rate.as_ref()),
        );
    }
    let call = Call {
        actor,
        params: &matched.params,
        query: &query,
        body: &body,
    };
    let response = match api::handle(&mut world, &matched, &call) {
        Ok(reply) => {
            let mut builder = builder(reply.status, rate.as_ref());
            match reply.body {
                Some(body) => json_body(&mut builder, &body),
                None => builder.finish(),
            }
        }
        Err(error) => error_response(&error, rate.as_ref()),
    };
    if let Some(FaultKind::StatusAfterEffect { status }) = fault {
        // The change happened; the caller only learns that something failed (Coder's 500 after
        // a race, or a proxy losing the answer).
        let error = ApiError::new(status, "Injected fault after the change was made.");
        return log_in(
            &mut world,
            &method,
            template,
            error_response(&error, rate.as_ref()),
        );
    }
    log_in(&mut world, &method, template, response)
}

fn url_query(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// `Coder-Session-Token: <token>` or `Authorization: Bearer <token>`; suspended users' keys
/// answer 401; a dormant user becomes active on use.
fn authenticate(world: &mut World, request: &HttpRequest) -> Result<Uuid, ApiError> {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let token = header("Coder-Session-Token")
        .or_else(|| header("Authorization").and_then(|v| v.strip_prefix("Bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(401, "You must be authenticated to access this endpoint."))?;
    let key = world
        .keys
        .get(token)
        .ok_or_else(|| ApiError::new(401, "API key is invalid."))?;
    if key.expires_at <= crate::now() {
        return Err(ApiError::new(401, "API key expired."));
    }
    let user = world
        .users
        .get_mut(&key.user_id)
        .filter(|u| !u.deleted)
        .ok_or_else(|| ApiError::new(401, "API key is invalid."))?;
    match user.status {
        UserStatus::Suspended => Err(ApiError::new(
            401,
            "User is not active (status = \"suspended\"). Contact an admin to reactivate your account.",
        )),
        UserStatus::Dormant => {
            user.status = UserStatus::Active;
            Ok(user.id)
        }
        UserStatus::Active => Ok(user.id),
    }
}

/// Counts the request in the (user, path) window; an owner sending
/// `X-Coder-Bypass-Ratelimit: true` is not counted.
fn rate_limit(
    world: &mut World,
    request: &HttpRequest,
    actor: Uuid,
    path: &str,
) -> Result<Option<RateHeaders>, (ApiError, RateHeaders)> {
    let Some(limit) = world.rate_limit_per_minute else {
        return Ok(None);
    };
    let bypass = request
        .headers()
        .get("X-Coder-Bypass-Ratelimit")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if bypass && world.users.get(&actor).is_some_and(|u| u.is_owner()) {
        return Ok(None);
    }
    let now = crate::instant();
    let window = world
        .rate_windows
        .entry((actor, path.to_owned()))
        .or_insert(RateWindow {
            started: now,
            count: 0,
        });
    if now.duration_since(window.started) >= RATE_WINDOW {
        *window = RateWindow {
            started: now,
            count: 0,
        };
    }
    window.count = window.count.saturating_add(1);
    let left = RATE_WINDOW.saturating_sub(now.duration_since(window.started));
    let reset = SystemTime::from(crate::now())
        .checked_add(left)
        .unwrap_or(SystemTime::from(crate::now()));
    let headers = RateHeaders {
        limit,
        remaining: limit.saturating_sub(window.count),
        reset: reset.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    if window.count > limit {
        let error = ApiError::new(
            429,
            format!("You've been rate limited for sending more than {limit} requests in 1m0s."),
        );
        return Err((error, headers));
    }
    Ok(Some(headers))
}

fn builder(status: u16, rate: Option<&RateHeaders>) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(rate) = rate {
        builder
            .insert_header(("X-RateLimit-Limit", rate.limit.to_string()))
            .insert_header(("X-RateLimit-Remaining", rate.remaining.to_string()))
            .insert_header(("X-RateLimit-Reset", rate.reset.to_string()));
    }
    builder
}

fn json_body(builder: &mut HttpResponseBuilder, body: &Value) -> HttpResponse {
    builder
        .content_type("application/json")
        .body(serde_json::to_vec(body).unwrap_or_default())
}

fn error_response(error: &ApiError, rate: Option<&RateHeaders>) -> HttpResponse {
    json_body(&mut builder(error.status, rate), &error.to_json())
}

fn logged(shared: &Shared, method: &str, route: String, response: HttpResponse) -> HttpResponse {
    log_in(&mut lock(&shared.world), method, route, response)
}

fn log_in(world: &mut World, method: &str, route: String, response: HttpResponse) -> HttpResponse {
    world.calls.push(CallLogEntry {
        method: method.to_owned(),
        route,
        status: response.status().as_u16(),
    });
    response
}

/// Answers 404 with Coder's error shape for anything outside `/api/v2` and `/__fake`.
pub(crate) async fn not_found() -> HttpResponse {
    error_response(&ApiError::new(404, "Route not found."), None)
}

/// Body of the 400 answered to bad control requests.
pub(crate) fn control_error(message: impl Into<String>) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "message": message.into() }))
}
