//! The supervisor console's data side over real sockets: acknowledging,
//! assigning and resolving alerts (gRPC and HTTP), the JSON endpoints, the
//! event stream with `Last-Event-ID` resume, and who may do what.

use callguard::auth::{hash_token, Role, TokenEntry};
use callguard::grpc::client::ClientConfig;
use callguard::grpc::pb;
use tonic::Code;

use crate::support::*;

const SUPERVISOR_ACME: &str = "tok-console-sv-acme";
const SUPERVISOR_GLOBEX: &str = "tok-console-sv-globex";
const INGEST_ACME: &str = "tok-console-gw-acme";

fn token(name: &str, token: &str, role: Role, tenant: &str) -> TokenEntry {
    TokenEntry {
        name: name.into(),
        sha256: hash_token(token),
        role,
        tenant: tenant.into(),
    }
}

fn tokens() -> Vec<TokenEntry> {
    vec![
        token("sv-acme", SUPERVISOR_ACME, Role::Supervisor, "acme"),
        token("sv-globex", SUPERVISOR_GLOBEX, Role::Supervisor, "globex"),
        token("gw-acme", INGEST_ACME, Role::Ingest, "acme"),
    ]
}

async fn alerts_as(
    server: &TestServer,
    token: Option<&str>,
) -> pb::alerts_client::AlertsClient<callguard::grpc::client::AuthChannel> {
    let channel = ClientConfig {
        token: token.map(str::to_owned),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    pb::alerts_client::AlertsClient::new(channel)
}

fn ack(
    alert_id: u64,
    state: pb::HandlingState,
    assignee: &str,
    note: &str,
) -> pb::AcknowledgeRequest {
    pb::AcknowledgeRequest {
        alert_id,
        state: state as i32,
        assignee: assignee.into(),
        note: note.into(),
    }
}

fn handling(alert: &pb::Alert) -> (i32, &str, &str, &str) {
    let h = alert.handling.as_ref().expect("handling set");
    (h.state, h.by.as_str(), h.assignee.as_str(), h.note.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_assign_resolve_are_updates_of_the_same_alert_on_subscribe() {
    let server = TestServer::spawn().await;
    let mut sub = server.subscription(0).await;
    let mut ingest = server.stream().await;
    let started = ingest.send(start_event("c1", "acme")).await;
    let interim = ingest
        .send(fragment("c1", 1, "u1", "お前ころすぞ", false))
        .await;
    let provisional = interim.alerts[0].clone();
    assert_eq!(provisional.status, pb::AlertStatus::Provisional as i32);
    assert!(provisional.handling.is_none());
    let mut alerts = server.alerts().await;

    // Acknowledged while still provisional.
    let acked = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Unspecified,
            "",
            "on it",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(acked.alert_id, provisional.alert_id);
    assert!(acked.event_id > provisional.event_id);
    assert_eq!(acked.status, pb::AlertStatus::Provisional as i32);
    assert_eq!(
        handling(&acked),
        (pb::HandlingState::Acknowledged as i32, "open", "", "on it")
    );

    // The final text confirms it: the detection update keeps the handling.
    let fin = ingest
        .send(fragment("c1", 2, "u1", "お前ころすぞ", true))
        .await;
    let confirmed = fin.alerts[0].clone();
    assert_eq!(confirmed.alert_id, provisional.alert_id);
    assert_eq!(confirmed.status, pb::AlertStatus::Confirmed as i32);
    assert_eq!(
        handling(&confirmed).0,
        pb::HandlingState::Acknowledged as i32
    );

    // Assigned, then resolved: the assignee stays, the status stays confirmed.
    let assigned = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Assigned,
            "lead-2",
            "",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(assigned.status, pb::AlertStatus::Confirmed as i32);
    let resolved = alerts
        .acknowledge(ack(
            provisional.alert_id,
            pb::HandlingState::Resolved,
            "",
            "apologised, call ended",
        ))
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(
        handling(&resolved),
        (
            pb::HandlingState::Resolved as i32,
            "open",
            "lead-2",
            "apologised, call ended"
        )
    );

    // Subscribe sees every version, in order, with the same ids.
    let mut want = started.alerts.clone();
    want.extend([provisional, acked, confirmed, assigned, resolved.clone()]);
    assert_eq!(take(&mut sub, want.len()).await, want);

    // Assigning to nobody, over-long notes and unknown alerts are refused.
    for (request, want) in [
        (
            ack(resolved.alert_id, pb::HandlingState::Assigned, " ", ""),
            Code::InvalidArgument,
        ),
        (
            ack(
                resolved.alert_id,
                pb::HandlingState::Resolved,
                "",
                &"x".repeat(2_001),
            ),
            Code::InvalidArgument,
        ),
        (
            ack(999_999, pb::HandlingState::Acknowledged, "", ""),
            Code::NotFound,
        ),
    ] {
        let got = alerts
            .acknowledge(request)
            .await
            .map(drop)
            .err()
            .map_or(Code::Ok, |s| s.code());
        assert_eq!(got, want);
    }
    let mut raw = ack(resolved.alert_id, pb::HandlingState::Acknowledged, "", "");
    raw.state = 9;
    assert_eq!(
        alerts.acknowledge(raw).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    ingest.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledge_follows_roles_and_tenants_and_agent_filters_narrow() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.tokens = tokens();
    let server = TestServer::spawn_with(cfg).await;
    let channel = ClientConfig {
        token: Some(INGEST_ACME.into()),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    let mut ingest = IngestStream::open(channel).await.unwrap();
    let started = ingest.send(start_event("c1", "acme")).await;
    let hit = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    let alert_id = hit.alerts.last().unwrap().alert_id;

    let mut globex = alerts_as(&server, Some(SUPERVISOR_GLOBEX)).await;
    let request = || ack(alert_id, pb::HandlingState::Acknowledged, "", "");
    assert_eq!(
        globex.acknowledge(request()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut gateway = alerts_as(&server, Some(INGEST_ACME)).await;
    assert_eq!(
        gateway.acknowledge(request()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let mut nobody = alerts_as(&server, None).await;
    assert_eq!(
        nobody.acknowledge(request()).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let mut acme = alerts_as(&server, Some(SUPERVISOR_ACME)).await;
    let stored = acme
        .acknowledge(request())
        .await
        .unwrap()
        .into_inner()
        .alert
        .unwrap();
    assert_eq!(
        stored.handling.unwrap().by,
        "sv-acme",
        "the token's name, never the token"
    );

    // agent_id narrows ListCalls and Subscribe (the call's agent is a1).
    let calls = |agent: &str| pb::ListCallsRequest {
        agent_id: agent.into(),
        ..Default::default()
    };
    assert_eq!(
        acme.list_calls(calls("a1"))
            .await
            .unwrap()
            .into_inner()
            .calls
            .len(),
        1
    );
    assert!(acme
        .list_calls(calls("a2"))
        .await
        .unwrap()
        .into_inner()
        .calls
        .is_empty());
    let subscribe = |agent: &str| pb::SubscribeRequest {
        agent_id: agent.into(),
        from_start: true,
        ..Default::default()
    };
    let mut mine = acme.subscribe(subscribe("a1")).await.unwrap().into_inner();
    let got = take(&mut mine, started.alerts.len() + hit.alerts.len() + 1).await;
    assert_eq!(got.last().unwrap().event_id, stored.event_id);
    assert!(got.iter().all(|a| a.agent_id == "a1"));
    let mut other = acme.subscribe(subscribe("a2")).await.unwrap().into_inner();
    assert_quiet(&mut other).await;
    ingest.close().await;
    server.stop().await;
}

/// A minimal HTTP/1.0 client: HTTP/1.0 so the body is plain and ends when
/// the server closes (no chunking to undo), which is also how an event
/// stream is read here.
pub struct HttpReply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn send_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    use tokio::io::AsyncReadExt;
    let mut stream = send_request(addr, method, path, headers, body).await;
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    HttpReply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// An open event stream, read event by event.
pub struct EventStream {
    reader: tokio::io::BufReader<tokio::net::TcpStream>,
    pub status: u16,
    pub content_type: String,
}

impl EventStream {
    pub async fn open(
        addr: std::net::SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> EventStream {
        EventStream::read_head(send_request(addr, "GET", path, headers, "").await).await
    }

    /// The response head of an event stream requested on `stream`.
    pub async fn read_head(stream: tokio::net::TcpStream) -> EventStream {
        use tokio::io::AsyncBufReadExt;
        let mut reader = tokio::io::BufReader::new(stream);
        let mut status = 0;
        let mut content_type = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await.unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if line.starts_with("HTTP/") {
                status = line.split(' ').nth(1).unwrap().parse().unwrap();
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-type") {
                    content_type = v.trim().to_owned();
                }
            }
        }
        EventStream {
            reader,
            status,
            content_type,
        }
    }

    /// The next event's `id:` and data (comments and retry hints skipped).
    pub async fn next(&mut self) -> (u64, serde_json::Value) {
        use tokio::io::AsyncBufReadExt;
        let read = async {
            let (mut id, mut data) = (None, String::new());
            loop {
                let mut line = String::new();
                assert!(
                    self.reader.read_line(&mut line).await.unwrap() > 0,
                    "stream ended"
                );
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if let Some(id) = id.take() {
                        return (id, serde_json::from_str(&data).unwrap());
                    }
                    continue;
                }
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<u64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("an event within 5 s")
    }
}

/// Streams one abusive call per id (a start and a confirmed threat each);
/// returns their alerts.
async fn abusive_calls(server: &TestServer, call_ids: &[&str]) -> Vec<pb::Alert> {
    let mut ingest = server.stream().await;
    let mut alerts = Vec::new();
    for call_id in call_ids {
        alerts.extend(ingest.send(start_event(call_id, "acme")).await.alerts);
        let replies = ingest
            .send(fragment(call_id, 1, "u1", "ぶっ殺すぞ", true))
            .await;
        assert!(!replies.alerts.is_empty());
        alerts.extend(replies.alerts);
    }
    ingest.close().await;
    alerts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_resume_after_last_event_id_with_no_gap_and_no_duplicate() {
    let server = TestServer::spawn().await;
    let http_addr = server.server.http_addr;
    let first = abusive_calls(&server, &["c1", "c2", "c3"]).await;
    assert!(first.len() >= 3);

    let mut events = EventStream::open(http_addr, "/api/v1/events?from_start=1", &[]).await;
    assert_eq!(events.status, 200);
    assert_eq!(events.content_type, "text/event-stream");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (id, alert) = events.next().await;
        assert_eq!(alert["event_id"], id, "id: is the event_id");
        seen.push(id);
    }
    // The browser goes away: its stream is let go.
    let receivers = server.server.service.live_receivers();
    drop(events);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while server.server.service.live_receivers() >= receivers {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dropped stream is never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    // Alerts while it was away, then a reconnect with Last-Event-ID.
    let second = abusive_calls(&server, &["c4", "c5"]).await;
    let last = seen.last().unwrap().to_string();
    let mut events =
        EventStream::open(http_addr, "/api/v1/events", &[("Last-Event-ID", &last)]).await;
    let all: Vec<u64> = first.iter().chain(&second).map(|a| a.event_id).collect();
    while seen.len() < all.len() {
        seen.push(events.next().await.0);
    }
    assert_eq!(
        seen, all,
        "every event once, in order, across the reconnect"
    );
    // And then live.
    let third = abusive_calls(&server, &["c6"]).await;
    assert_eq!(events.next().await.0, third[0].event_id);

    // The page's initial load: the stored log, then the stream from its head.
    let page = http(http_addr, "GET", "/api/v1/alerts?limit=2", &[], "")
        .await
        .json();
    assert_eq!(page["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(
        page["last_event_id"], all[1],
        "a full page continues after its last alert"
    );
    let rest = http(
        http_addr,
        "GET",
        &format!("/api/v1/alerts?after_event_id={}", all[1]),
        &[],
        "",
    )
    .await
    .json();
    let ids: Vec<u64> = rest["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["event_id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ids,
        all[2..]
            .iter()
            .copied()
            .chain(third.iter().map(|a| a.event_id))
            .collect::<Vec<_>>()
    );
    assert_eq!(rest["last_event_id"], third.last().unwrap().event_id);
    let bad = http(
        http_addr,
        "GET",
        "/api/v1/events",
        &[("Last-Event-ID", "x")],
        "",
    )
    .await;
    assert_eq!(
        (bad.status, bad.json()["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    server.stop().await;
}

/// A page that stops reading (a frozen tab) while alerts keep coming: its
/// socket fills, the stream falls behind the live bus (16 alerts here) and
/// is served from the store; once it reads again it gets every alert once,
/// in order, and ingest never waited for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_event_stream_catches_up_from_the_store_with_no_gap() {
    use crate::faults::{flood_violent_calls, write_config, QUIET_POLICY};
    use tokio::io::AsyncWriteExt;
    const STREAMS: usize = 2;
    const CALLS_PER_STREAM: usize = 400;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "subscriber_buffer = 16\n");
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;

    // A small receive buffer, so that the server's writes stop soon.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.http).await.unwrap();
    let request = format!(
        "GET /api/v1/events HTTP/1.0\r\nHost: {}\r\n\r\n",
        server.http
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut events = EventStream::read_head(stream).await;
    assert_eq!(events.status, 200);

    let produce = async {
        let alerts = flood_violent_calls(server.grpc, STREAMS, CALLS_PER_STREAM).await;
        alerts.into_iter().map(|a| a.event_id).collect::<Vec<_>>()
    };
    let mut produced = tokio::time::timeout(std::time::Duration::from_secs(120), produce)
        .await
        .expect("every event acknowledged although a page stopped reading");
    produced.sort_unstable();
    assert_eq!(produced.len(), STREAMS * CALLS_PER_STREAM);

    let mut received = Vec::with_capacity(produced.len());
    while received.len() < produced.len() {
        let (id, alert) = events.next().await;
        assert_eq!(alert["event_id"], id);
        received.push(id);
    }
    assert_eq!(received, produced, "every alert once, in order");
    let catchups = crate::faults::metric(server.http, "callguard_subscriber_catchups_total").await;
    assert!(
        catchups.is_some_and(|n| n >= 1.0),
        "the stalled stream fell back to the store: {catchups:?}"
    );
    assert_eq!(
        crate::faults::metric(server.http, "callguard_console_streams").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_uses_the_grpc_tokens_roles_and_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.tokens = tokens();
    let server = TestServer::spawn_with(cfg).await;
    let addr = server.server.http_addr;
    let channel = ClientConfig {
        token: Some(INGEST_ACME.into()),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    let mut ingest = IngestStream::open(channel).await.unwrap();
    ingest.send(start_event("c1", "acme")).await;
    let hit = ingest
        .send(fragment("c1", 1, "u1", "<script>ぶっ殺すぞ", true))
        .await;
    let alert = hit.alerts.last().unwrap().clone();
    let bearer = |token: &str| format!("Bearer {token}");

    // The page itself carries no data and a strict policy.
    let page = http(addr, "GET", "/", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
    assert!(!page.body.contains("c1"));

    // No token, an ingest token, another tenant.
    let none = http(addr, "GET", "/api/v1/alerts", &[], "").await;
    assert_eq!(
        (none.status, none.json()["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    assert!(!none.body.contains("c1"));
    let unknown = http(
        addr,
        "GET",
        "/api/v1/alerts",
        &[("Authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(unknown.status, 401);
    let gw = bearer(INGEST_ACME);
    let denied = http(addr, "GET", "/api/v1/alerts", &[("Authorization", &gw)], "").await;
    assert_eq!(
        (denied.status, denied.json()["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let globex = bearer(SUPERVISOR_GLOBEX);
    let theirs = http(
        addr,
        "GET",
        "/api/v1/alerts",
        &[("Authorization", &globex)],
        "",
    )
    .await;
    assert_eq!(theirs.status, 200);
    assert!(
        theirs.json()["alerts"].as_array().unwrap().is_empty(),
        "narrowed to globex"
    );
    let asked = http(
        addr,
        "GET",
        "/api/v1/alerts?tenant=acme",
        &[("Authorization", &globex)],
        "",
    )
    .await;
    assert_eq!(asked.status, 403);
    for path in ["/api/v1/calls", "/api/v1/events", "/api/v1/calls/c1"] {
        assert_eq!(http(addr, "GET", path, &[], "").await.status, 401, "{path}");
    }
    // Another tenant's call reads as no call (ids are scoped by tenant).
    assert_eq!(
        http(
            addr,
            "GET",
            "/api/v1/calls/c1",
            &[("Authorization", &globex)],
            ""
        )
        .await
        .status,
        404
    );
    let ack_path = format!("/api/v1/alerts/{}/ack", alert.alert_id);
    let json = ("Content-Type", "application/json");
    let other = http(
        addr,
        "POST",
        &ack_path,
        &[("Authorization", &globex), json],
        "{}",
    )
    .await;
    assert_eq!(other.status, 403);

    // The acme supervisor, by bearer token: calls, the call with its
    // alerts (the markup is data, kept verbatim in JSON), agents.
    let sv = bearer(SUPERVISOR_ACME);
    let auth = [("Authorization", sv.as_str())];
    let calls = http(addr, "GET", "/api/v1/calls?agent_id=a1", &auth, "")
        .await
        .json();
    assert_eq!(calls["calls"][0]["call_id"], "c1");
    assert_eq!(calls["calls"][0]["risk"], "high");
    let call = http(addr, "GET", "/api/v1/calls/c1", &auth, "")
        .await
        .json();
    let excerpt =
        call["alerts"].as_array().unwrap().last().unwrap()["evidence"][0]["excerpt"].clone();
    assert!(excerpt.as_str().unwrap().contains("<script>"), "{excerpt}");
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    let agents = http(
        addr,
        "GET",
        &format!("/api/v1/agents?since={since}"),
        &auth,
        "",
    )
    .await
    .json();
    assert_eq!(agents["agents"][0]["agent_id"], "a1");
    assert_eq!(agents["agents"][0]["calls_with_alerts"], 1);
    assert!(agents["agents"][0]["critical_alerts"].as_u64().unwrap() >= 1);

    // A browser logs in once and then uses the cookie.
    let login = http(
        addr,
        "POST",
        "/api/v1/session",
        &[json],
        &format!("{{\"token\":\"{SUPERVISOR_ACME}\"}}"),
    )
    .await;
    assert_eq!(login.status, 200);
    let set = login.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let session = set.split(';').next().unwrap().to_owned();
    let bad_login = http(
        addr,
        "POST",
        "/api/v1/session",
        &[json],
        "{\"token\":\"nope\"}",
    )
    .await;
    assert_eq!(bad_login.status, 401);
    let gw_login = http(
        addr,
        "POST",
        "/api/v1/session",
        &[json],
        &format!("{{\"token\":\"{INGEST_ACME}\"}}"),
    )
    .await;
    assert_eq!(
        gw_login.status, 403,
        "an ingest token gets no console session"
    );
    let me = http(addr, "GET", "/api/v1/session", &[("Cookie", &session)], "")
        .await
        .json();
    assert_eq!(me["principal"]["name"], "sv-acme");

    // CSRF: a POST must be JSON and, when the browser names it, from this origin.
    let cookie = ("Cookie", session.as_str());
    let form = http(
        addr,
        "POST",
        &ack_path,
        &[
            cookie,
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "note=x",
    )
    .await;
    assert_eq!(form.status, 400);
    let cross = http(
        addr,
        "POST",
        &ack_path,
        &[cookie, json, ("Origin", "https://evil.example")],
        "{}",
    )
    .await;
    assert_eq!(cross.status, 403);
    let mut sub = alerts_as(&server, Some(SUPERVISOR_ACME))
        .await
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let origin = format!("http://{addr}");
    let acked = http(
        addr,
        "POST",
        &ack_path,
        &[cookie, json, ("Origin", &origin)],
        "{\"note\":\"taking it\"}",
    )
    .await;
    assert_eq!(acked.status, 200, "{}", acked.body);
    let acked = acked.json();
    assert_eq!(acked["alert"]["handling"]["state"], "acknowledged");
    assert_eq!(acked["alert"]["handling"]["by"], "sv-acme");
    // Visible on Subscribe as an update of the same alert.
    let update = take(&mut sub, 1).await.remove(0);
    assert_eq!(update.alert_id, alert.alert_id);
    assert_eq!(
        update.event_id,
        acked["alert"]["event_id"].as_u64().unwrap()
    );
    assert_eq!(update.handling.unwrap().note, "taking it");
    let assign = http(
        addr,
        "POST",
        &format!("/api/v1/alerts/{}/assign", alert.alert_id),
        &[cookie, json],
        "{}",
    )
    .await;
    assert_eq!(assign.status, 400, "assign needs an assignee");
    let missing = http(
        addr,
        "POST",
        "/api/v1/alerts/999999/resolve",
        &[cookie, json],
        "{}",
    )
    .await;
    assert_eq!(missing.status, 404);

    // Logged out, the cookie is worth nothing.
    assert_eq!(
        http(addr, "DELETE", "/api/v1/session", &[cookie], "")
            .await
            .status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/api/v1/alerts", &[cookie], "")
            .await
            .status,
        401
    );
    ingest.close().await;
    server.stop().await;
}
