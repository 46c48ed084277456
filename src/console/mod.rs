//! The supervisor console on `--http` (DESIGN section 7): the page at `/`
//! (HTML, CSS and JS embedded with `include_str!`, no build step), its JSON
//! endpoints under `/api/v1/`, and live alerts as Server-Sent Events.
//!
//! Who may do what is the gRPC rule set (SECURITY.md), from the same
//! tokens: `Authorization: Bearer` on any request, or a session cookie a
//! browser gets once by posting a token to `/api/v1/session` (`HttpOnly`,
//! `SameSite=Strict`, so the page's script never holds the token after
//! login and no other site can send it). Supervisors and admins read and
//! acknowledge within their tenant; ingest tokens get `403`. With no token
//! configured (the open, loopback-only service) only loopback peers are
//! answered, whatever address `--http` listens on: `/metrics` may be
//! exposed for scraping without exposing calls.
//!
//! JSON uses the proto's field names (DESIGN section 3 for alerts: the same
//! JSON as `replay`); enums are the lowercase names (`"critical"`, `"high"`).
//!
//! The event stream is `Subscribe` over HTTP: listen on the bus first, read
//! the store after the resume point (`Last-Event-ID`, else `after_event_id`)
//! up to its head under the store lock, then go live skipping what was sent:
//! no gap, no duplicate. Each client is its response body, polled by its
//! connection (`stream`, no task per client): a slow one falls behind the
//! bus and is served from the store (fixed memory); the stream ends when
//! the client disconnects, when the store fails (the browser reconnects and
//! resumes from its `Last-Event-ID`), or when the service stops.

mod stream;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::alert::{Alert, AlertFilter, AlertStatus, HandlingChange, HandlingState};
use crate::auth::{new_token, AuthError, Permission, Principal, Tokens};
use crate::call::{CallSnapshot, CallStatus, RiskLevel};
use crate::category::Severity;
use crate::live::{HandlingError, Service};

const INDEX_HTML: &str = include_str!("index.html");
const CONSOLE_JS: &str = include_str!("console.js");
const CONSOLE_CSS: &str = include_str!("console.css");

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "callguard_session";
/// How long a session lasts (one shift and a half).
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; a login beyond it gets `503`.
const MAX_SESSIONS: usize = 10_000;
/// Alerts read from the store per query of `GET /api/v1/alerts`.
const PAGE: usize = 512;
/// Most alerts one `GET /api/v1/alerts` returns.
const MAX_LIMIT: usize = 5_000;
/// Comment lines on an idle event stream, so proxies keep it open and a
/// vanished client is noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Alerts of one call returned with it.
const CALL_HISTORY: usize = 1_000;

/// Everything handlers share.
pub struct Console {
    service: Arc<Service>,
    tokens: Arc<Tokens>,
    /// Session id → who logged in, and when the session ends.
    sessions: Mutex<HashMap<String, (Arc<Principal>, Instant)>>,
    /// Alert events as event-stream frames, shared by every client.
    frames: Arc<stream::Frames>,
}

/// The console's routes, to merge into the HTTP router (served with
/// `ConnectInfo<SocketAddr>`).
pub fn router(service: Arc<Service>, tokens: Arc<Tokens>) -> Router {
    let console = Arc::new(Console {
        service,
        tokens,
        sessions: Mutex::new(HashMap::new()),
        frames: Arc::default(),
    });
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console.js",
            get(|| async { page(CONSOLE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console.css",
            get(|| async { page(CONSOLE_CSS, "text/css; charset=utf-8") }),
        )
        .route("/api/v1/session", get(whoami).post(login).delete(logout))
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{call_id}", get(get_call))
        .route("/api/v1/alerts", get(list_alerts))
        .route("/api/v1/alerts/{alert_id}/{action}", post(change_alert))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/events", get(events))
        .with_state(console)
}

/// A refusal, as JSON `{"code": "PERMISSION_DENIED", "message": …}` with
/// the HTTP status that matches the gRPC code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let code = match status {
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            StatusCode::FORBIDDEN => "PERMISSION_DENIED",
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::BAD_REQUEST => "INVALID_ARGUMENT",
            StatusCode::SERVICE_UNAVAILABLE => "UNAVAILABLE",
            _ => "UNKNOWN",
        };
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, format!("{field}: {reason}"))
    }

    fn store(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("alert store: {e}"))
    }
}

/// A caller the tokens refused: 401 or 403, as the gRPC side answers
/// `UNAUTHENTICATED` or `PERMISSION_DENIED`.
impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let http = match e {
            AuthError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AuthError::Denied(_) => StatusCode::FORBIDDEN,
        };
        ApiError::new(http, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::UNAUTHORIZED {
            ::metrics::counter!(crate::telemetry::metrics::AUTH_FAILURES).increment(1);
        }
        let body = json!({"code": self.code, "message": self.message});
        let mut response = (self.status, json_body(&body)).into_response();
        api_headers(response.headers_mut());
        response
    }
}

type ApiResult = Result<Response, ApiError>;

/// The page's security headers: nothing but our own scripts, styles and
/// connections; no framing; no referrer leaving the page.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; \
     frame-ancestors 'none'";

fn page(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn api_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

fn json_body(value: &Value) -> Response {
    let mut response = value.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_ok(value: &Value) -> ApiResult {
    let mut response = json_body(value);
    api_headers(response.headers_mut());
    Ok(response)
}

impl Console {
    /// Who is asking: the bearer token, else the session cookie. Without
    /// tokens configured, every loopback peer is the open admin and every
    /// other peer is refused.
    fn who(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<Arc<Principal>, ApiError> {
        if self.tokens.is_open() {
            if peer.ip().is_loopback() {
                return Ok(Arc::new(Principal::open()));
            }
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "no tokens are configured: the console answers loopback clients only",
            ));
        }
        if let Some(header) = headers.get(header::AUTHORIZATION) {
            let header = header.to_str().ok();
            return Ok(self.tokens.authenticate(header)?);
        }
        let Some(session) = cookie(headers, SESSION_COOKIE) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing token: log in, or send the header `authorization: Bearer <token>`",
            ));
        };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(session) {
            Some((principal, until)) if *until > Instant::now() => Ok(principal.clone()),
            Some(_) => {
                sessions.remove(session);
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "session expired: log in again",
                ))
            }
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown session: log in again",
            )),
        }
    }

    /// [`who`](Self::who), holding a permission.
    fn require(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        permission: Permission,
    ) -> Result<Arc<Principal>, ApiError> {
        let who = self.who(headers, peer)?;
        who.require(permission)?;
        Ok(who)
    }
}

/// A cookie's value from the `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// State-changing requests must be JSON (a cross-site form cannot send it
/// without a preflight we never grant) and, when the browser names their
/// origin, from this page's origin. The cookie is `SameSite=Strict` too.
fn same_origin_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::bad("content-type", "must be application/json"));
    }
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let origin = origin.to_str().unwrap_or("");
        let host = host.to_str().unwrap_or("");
        let ours = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o == host);
        if !ours {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("origin {origin:?} is not this console's"),
            ));
        }
    }
    Ok(())
}

fn principal_json(who: &Principal) -> Value {
    json!({"name": who.name, "role": who.role.as_str(), "tenant": who.tenant.as_deref().unwrap_or("*")})
}

async fn whoami(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> ApiResult {
    let who = console.who(&headers, peer)?;
    json_ok(&json!({"principal": principal_json(&who), "open": console.tokens.is_open()}))
}

/// Exchanges a token (`{"token": "…"}`, or the bearer header) for a
/// session cookie.
async fn login(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    same_origin_json(&headers)?;
    let who = match serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned))
    {
        Some(token) if !console.tokens.is_open() => console
            .tokens
            .authenticate(Some(&format!("Bearer {}", token.trim())))?,
        _ => console.who(&headers, peer)?,
    };
    who.require(Permission::Read)?;
    let id =
        new_token().map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    {
        let mut sessions = console.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, (_, until)| *until > now);
        if sessions.len() >= MAX_SESSIONS {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many open sessions; try again later",
            ));
        }
        sessions.insert(id.clone(), (who.clone(), now + SESSION_TTL));
    }
    tracing::info!(token = %who.name, "console login");
    let mut response = json_ok(&json!({"principal": principal_json(&who)}))?;
    let cookie = format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap) -> ApiResult {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        console
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }
    let mut response = json_ok(&json!({}))?;
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "callguard_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    Ok(response)
}

/// Query parameters; a repeated key keeps every value.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: Option<String>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.one(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad(key, format!("not a number: {v:?}")))
            })
            .transpose()
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.one(key), Some("1" | "true" | "yes"))
    }

    /// The `Subscribe` filter (plus `since`), narrowed to the caller's tenant.
    fn filter(&self, who: &Principal) -> Result<AlertFilter, ApiError> {
        let tenant = who.narrow(self.one("tenant").unwrap_or(""))?;
        let min_severity = match self.one("min_severity") {
            None => None,
            Some(s) => Some(parse_severity(s).ok_or_else(|| {
                ApiError::bad(
                    "min_severity",
                    format!("{s:?} is not info, warning or critical"),
                )
            })?),
        };
        let since = self
            .one("since")
            .map(|s| {
                s.parse::<jiff::Timestamp>()
                    .map_err(|e| ApiError::bad("since", format!("{s:?}: {e}")))
            })
            .transpose()?;
        Ok(AlertFilter {
            tenant: (!tenant.is_empty()).then_some(tenant),
            call_ids: self.all("call_id"),
            categories: self.all("category"),
            min_severity,
            agent_id: self.one("agent_id").map(str::to_owned),
            since,
        })
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_lowercase().trim_start_matches("severity_") {
        "info" => Some(Severity::Info),
        "warning" => Some(Severity::Warning),
        "critical" => Some(Severity::Critical),
        _ => None,
    }
}

/// A call's state with the proto's `CallSummary` field names.
pub fn call_json(s: &CallSnapshot, alert_ids: &[u64]) -> Value {
    let risk = match s.risk {
        RiskLevel::None => "none",
        RiskLevel::Low => "low",
        RiskLevel::Elevated => "elevated",
        RiskLevel::High => "high",
    };
    let status = match s.status {
        CallStatus::Active => "active",
        CallStatus::Ended => "ended",
    };
    json!({
        "call_id": s.call_id,
        "tenant": s.tenant,
        "agent_id": s.agent_id,
        "status": status,
        "risk": risk,
        "last_event_ms": s.last_event_ms,
        "customer_talk_ms": s.customer_talk_ms,
        "agent_talk_ms": s.agent_talk_ms,
        "demand_repeats": s.demand_repeats.iter()
            .map(|(group, count)| json!({"group": group, "count": count}))
            .collect::<Vec<_>>(),
        "stalemate_since_ms": s.stalemate_since_ms,
        "warning_stages_ms": s.warning_stages_ms,
        "strikes": s.strikes,
        "alert_ids": alert_ids,
        "alerts_total": s.alerts_total,
    })
}

async fn list_calls(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Read)?;
    let query = Query::parse(raw);
    let tenant = who.narrow(query.one("tenant").unwrap_or(""))?;
    let agent = query.one("agent_id");
    let calls: Vec<Value> = console
        .service
        .list_calls(
            (!tenant.is_empty()).then_some(tenant.as_str()),
            query.flag("include_ended"),
        )
        .iter()
        .filter(|(s, _)| agent.is_none_or(|a| a == s.agent_id))
        .map(|(s, ids)| call_json(s, ids))
        .collect();
    json_ok(&json!({ "calls": calls }))
}

async fn get_call(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(call_id): Path<String>,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Read)?;
    // Call ids are scoped by tenant: another tenant's call (or its stored
    // alerts) reads as no call at all, as in GetCall, so that ids are not
    // revealed across tenants.
    let call = console.service.find_call(who.tenant.as_deref(), &call_id);
    let mut alerts = console
        .service
        .with_log(|log| log.alerts_of_call(&call_id, CALL_HISTORY))
        .map_err(ApiError::store)?;
    alerts.retain(|a| who.may_see(&a.tenant));
    if call.is_none() && alerts.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("call_id: no call {call_id:?}"),
        ));
    }
    json_ok(&json!({
        "call": call.map(|(s, ids)| call_json(&s, &ids)),
        "alerts": alerts,
    }))
}

/// The stored log after `after_event_id` (updates included, in event-id
/// order), filtered as `Subscribe`. `last_event_id` is where to continue:
/// the next page's `after_event_id` while a page comes back full, then the
/// event stream's.
async fn list_alerts(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Read)?;
    let query = Query::parse(raw);
    let filter = query.filter(&who)?;
    let after = query.number("after_event_id")?.unwrap_or(0);
    let limit = query
        .number("limit")?
        .map_or(500, |n| n as usize)
        .clamp(1, MAX_LIMIT);
    let (alerts, head) = console
        .service
        .with_log(|log| {
            log.read_after(after, &filter, limit)
                .map(|page| (page, log.last_event_id()))
        })
        .map_err(ApiError::store)?;
    let last = match alerts.last() {
        Some(a) if alerts.len() == limit => a.event_id,
        _ => head.max(after),
    };
    json_ok(&json!({"alerts": alerts, "last_event_id": last}))
}

/// `POST /api/v1/alerts/{alert_id}/ack|assign|resolve` with
/// `{"note": "…", "assignee": "…"}` (both optional but for assign's
/// assignee): as `Alerts/Acknowledge`.
async fn change_alert(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((alert_id, action)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Acknowledge)?;
    same_origin_json(&headers)?;
    let alert_id: u64 = alert_id
        .parse()
        .map_err(|_| ApiError::bad("alert_id", format!("not a number: {alert_id:?}")))?;
    let state = match action.as_str() {
        "ack" | "acknowledge" => HandlingState::Acknowledged,
        "assign" => HandlingState::Assigned,
        "resolve" => HandlingState::Resolved,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: ack, assign or resolve"),
            ))
        }
    };
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad("body", e))?
    };
    let text = |key: &str| -> Result<String, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(ApiError::bad(key, "must be a string")),
        }
    };
    let change = HandlingChange {
        state,
        by: who.name.clone(),
        assignee: text("assignee")?,
        note: text("note")?,
        at: jiff::Timestamp::now(),
    };
    let stored = console
        .service
        .change_handling(alert_id, who.tenant.as_deref(), change)
        .await
        .map_err(|e| {
            let status = match &e {
                HandlingError::NotFound(_) => StatusCode::NOT_FOUND,
                HandlingError::OutOfScope { .. } => StatusCode::FORBIDDEN,
                HandlingError::Invalid(_) => StatusCode::BAD_REQUEST,
                HandlingError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            ApiError::new(status, e.to_string())
        })?;
    tracing::info!(alert_id, action = state.as_str(), token = %who.name, "alert handling changed");
    json_ok(&json!({ "alert": &*stored }))
}

/// Per agent since `since` (the page sends its local midnight): calls with
/// a harassment alert (warning or above, not retracted), critical alerts,
/// and minutes spent in those calls. A call's minutes are its audio length
/// while it is live or recently ended, and for a call older than that the
/// audio time of its last alert (a lower bound: the store keeps alerts,
/// not call lengths).
async fn agents(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Read)?;
    let query = Query::parse(raw);
    let mut filter = query.filter(&who)?;
    if filter.since.is_none() {
        return Err(ApiError::bad(
            "since",
            "required (RFC 3339, e.g. today's midnight)",
        ));
    }
    filter.min_severity = Some(Severity::Warning);
    // The latest version of every alert raised since then.
    let mut latest: BTreeMap<u64, Alert> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = console
            .service
            .with_log(|log| log.read_after(after, &filter, PAGE))
            .map_err(ApiError::store)?;
        let full = page.len() == PAGE;
        for alert in page {
            after = alert.event_id;
            latest.insert(alert.alert_id, alert);
        }
        if !full {
            break;
        }
    }
    let tenant = filter.tenant.as_deref();
    let lengths: HashMap<String, u64> = console
        .service
        .list_calls(tenant, true)
        .into_iter()
        .map(|(s, _)| (s.call_id, s.last_event_ms))
        .collect();
    #[derive(Default)]
    struct Agent {
        calls: BTreeMap<String, u64>,
        critical: u64,
    }
    let mut by_agent: BTreeMap<String, Agent> = BTreeMap::new();
    for alert in latest
        .values()
        .filter(|a| a.status != AlertStatus::Retracted)
    {
        let agent = by_agent.entry(alert.agent_id.clone()).or_default();
        if alert.severity == Severity::Critical {
            agent.critical += 1;
        }
        let seen = alert
            .evidence
            .iter()
            .map(|e| e.end_ms)
            .max()
            .unwrap_or(0)
            .max(alert.at_ms);
        let length = lengths.get(&alert.call_id).copied().unwrap_or(0).max(seen);
        let call = agent.calls.entry(alert.call_id.clone()).or_default();
        *call = (*call).max(length);
    }
    let agents: Vec<Value> = by_agent
        .into_iter()
        .map(|(agent_id, a)| {
            let ms: u64 = a.calls.values().sum();
            json!({
                "agent_id": agent_id,
                "calls_with_alerts": a.calls.len(),
                "critical_alerts": a.critical,
                "flagged_minutes": (ms as f64 / 60_000.0 * 10.0).round() / 10.0,
            })
        })
        .collect();
    json_ok(&json!({ "agents": agents }))
}

/// `GET /api/v1/events`: alerts and updates as Server-Sent Events (see the
/// module documentation and [`stream`]). Resumes after `Last-Event-ID`,
/// else after `after_event_id`; `from_start` replays the whole log; else
/// live only.
async fn events(
    State(console): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let who = console.require(&headers, peer, Permission::Read)?;
    let query = Query::parse(raw);
    let filter = query.filter(&who)?;
    let resume = match headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        Some(id) => Some(
            id.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::bad("last-event-id", format!("not an event id: {id:?}")))?,
        ),
        None => query.number("after_event_id")?,
    };
    // Listen first, then read the head: everything after it comes live.
    let live = console.service.subscribe_live();
    let start = match resume {
        Some(after) => after,
        None if query.flag("from_start") => 0,
        None => console.service.with_log(|log| log.last_event_id()),
    };
    let body = stream::EventBody::new(
        console.service.clone(),
        console.frames.clone(),
        live,
        start,
        filter,
    );
    let mut response = axum::body::Body::new(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
