//! Webhooks against a local HTTP receiver the test starts (127.0.0.1,
//! ephemeral port): signed POSTs, filters, the receiver down for a while
//! and back, endpoints that refuse or never answer, and restarts that
//! resume from the saved offset. Nothing here asserts a duration: waits
//! are for arrivals, with a generous bound.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use callguard::alert::Alert;
use callguard::grpc::pb;
use callguard::serve::ServeConfig;
use callguard::webhook::{BodyKind, WebhookEntry};
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;

use crate::faults::eventually;
use crate::security::make_pki;
use crate::support::*;

const SECRET: &str = "test-webhook-secret-0123456789";

/// One POST as the receiver saw it.
#[derive(Clone, Debug)]
struct Post {
    hook: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Post {
    fn event_id(&self) -> u64 {
        self.headers["x-callguard-event-id"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn alert(&self) -> Alert {
        serde_json::from_slice(&self.body).expect("the alert's JSON")
    }

    /// Checks the signature as a receiver would, with an HMAC written
    /// here from SHA-256 (RFC 2104), not the server's code.
    fn assert_signed(&self) {
        let timestamp = self.headers["x-callguard-timestamp"].to_str().unwrap();
        let mut signed = format!("{timestamp}.").into_bytes();
        signed.extend_from_slice(&self.body);
        let want = format!("sha256={}", hex(&hmac_sha256(SECRET.as_bytes(), &signed)));
        assert_eq!(
            self.headers["x-callguard-signature"].to_str().unwrap(),
            want,
            "signature of {} event {}",
            self.hook,
            self.event_id()
        );
        let age = jiff::Timestamp::now().as_second() - timestamp.parse::<i64>().unwrap();
        assert!(age.abs() < 3600, "timestamp {timestamp} far from now");
        assert_eq!(self.headers["x-callguard-webhook"], self.hook.as_str());
        assert_eq!(self.headers["content-type"], "application/json");
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the receiver answers on `/hook/NAME`: 200 unless told otherwise;
/// `Some((status, n))` answers `status` to the next `n` requests (`u32::MAX`:
/// for ever).
#[derive(Default)]
struct Receiver {
    posts: Mutex<Vec<Post>>,
    refusals: Mutex<HashMap<String, (u16, u32)>>,
    /// Every request, answered 2xx or not.
    attempts: Mutex<HashMap<String, u32>>,
    arrived: Notify,
}

impl Receiver {
    fn refuse(&self, hook: &str, status: u16, times: u32) {
        self.refusals
            .lock()
            .unwrap()
            .insert(hook.to_owned(), (status, times));
    }

    fn posts(&self, hook: &str) -> Vec<Post> {
        let posts = self.posts.lock().unwrap();
        posts.iter().filter(|p| p.hook == hook).cloned().collect()
    }

    fn attempts(&self, hook: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(hook)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `hook` has been sent every one of `event_ids`.
    async fn wait_for(&self, hook: &str, event_ids: &BTreeSet<u64>) -> Vec<Post> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let arrived = self.arrived.notified();
            let posts = self.posts(hook);
            let got: BTreeSet<u64> = posts.iter().map(Post::event_id).collect();
            if event_ids.is_subset(&got) {
                return posts;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("{hook}: waited for {event_ids:?}, got {got:?}");
            }
        }
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    UrlPath(hook): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    *receiver
        .attempts
        .lock()
        .unwrap()
        .entry(hook.clone())
        .or_default() += 1;
    if let Some((status, left)) = receiver.refusals.lock().unwrap().get_mut(&hook) {
        if *left > 0 {
            *left = left.saturating_sub(u32::from(*left != u32::MAX));
            return StatusCode::from_u16(*status).unwrap();
        }
    }
    receiver.posts.lock().unwrap().push(Post {
        hook,
        headers,
        body,
    });
    receiver.arrived.notify_waiters();
    StatusCode::NO_CONTENT
}

/// The receiver listening on `addr` until stopped.
struct Listening {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Listening {
    async fn start(receiver: &Arc<Receiver>, addr: SocketAddr) -> Listening {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook/{hook}", post(receive))
            .with_state(receiver.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Listening { addr, stop, task }
    }

    /// Closes the port: connections to it are refused until it restarts.
    async fn stop(self) -> SocketAddr {
        let _ = self.stop.send(());
        self.task.await.unwrap();
        self.addr
    }
}

fn hook(name: &str, addr: SocketAddr) -> WebhookEntry {
    WebhookEntry {
        name: name.into(),
        url: format!("http://{addr}/hook/{name}"),
        secret: Some(SECRET.into()),
        // Short, so that the test does not wait long; never asserted.
        retry_min_ms: 20,
        retry_max_ms: 200,
        ..WebhookEntry::default()
    }
}

fn with_hooks(dir: &Path, webhooks: Vec<WebhookEntry>) -> ServeConfig {
    ServeConfig {
        webhooks,
        ..config(dir)
    }
}

/// One call of `tenant` that says `words` (one final fragment); its alerts
/// (a start out of business hours raises one too) as ingest answered
/// them: ingest is not held up by any webhook.
async fn call(server: &TestServer, call_id: &str, tenant: &str, words: &str) -> Vec<pb::Alert> {
    call_at(server.server.grpc_addr, call_id, tenant, words).await
}

/// [`call`] on the gRPC port `grpc` (a `serve` child process).
async fn call_at(grpc: SocketAddr, call_id: &str, tenant: &str, words: &str) -> Vec<pb::Alert> {
    let mut ingest = IngestStream::open_plain(grpc).await;
    let mut alerts = Vec::new();
    for event in [
        start_event(call_id, tenant),
        fragment(call_id, 1, "u1", words, true),
        end_event(call_id, 5_000),
    ] {
        let replies = ingest.send(event).await;
        assert!(replies.ack.is_some(), "{call_id}: {replies:?}");
        alerts.extend(replies.alerts);
    }
    assert!(
        alerts
            .iter()
            .any(|a| a.severity == pb::Severity::Critical as i32),
        "{call_id} raised no critical alert: {alerts:?}"
    );
    ingest.close().await;
    alerts
}

fn ids<'a>(alerts: impl IntoIterator<Item = &'a pb::Alert>) -> BTreeSet<u64> {
    alerts.into_iter().map(|a| a.event_id).collect()
}

/// The ids in the order they arrived; asserts no id twice.
fn distinct_in_order(posts: &[Post]) -> Vec<u64> {
    let order: Vec<u64> = posts.iter().map(Post::event_id).collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {order:?}"
    );
    order
}

async fn metrics_text(http: SocketAddr) -> String {
    http_get(http, "/metrics").await
}

/// The value of `name{webhook="hook",…}` summed over its other labels.
fn metric(text: &str, name: &str, hook: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(&format!("{name}{{")) && l.contains(&format!("webhook=\"{hook}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_posts_arrive_and_filters_choose_them() {
    let receiver = Arc::new(Receiver::default());
    let up = Listening::start(&receiver, "127.0.0.1:0".parse().unwrap()).await;
    let tmp = tempfile::tempdir().unwrap();
    let acme_json = WebhookEntry {
        tenant: Some("acme".into()),
        ..hook("acme-json", up.addr)
    };
    let dogeza_slack = WebhookEntry {
        categories: vec!["excessive_demand".into()],
        body: BodyKind::Slack,
        ..hook("dogeza-slack", up.addr)
    };
    let server =
        TestServer::spawn_with(with_hooks(tmp.path(), vec![acme_json, dogeza_slack])).await;
    let http = server.server.http_addr;

    let c1 = call(&server, "c1", "acme", "ぶっ殺すぞ").await;
    let g1 = call(&server, "g1", "globex", "土下座しろ").await;
    let c2 = call(&server, "c2", "acme", "土下座しろ").await;
    let acme: BTreeSet<u64> = ids(c1.iter().chain(&c2));
    let dogeza: BTreeSet<u64> = ids(g1
        .iter()
        .chain(&c2)
        .filter(|a| a.category == "excessive_demand"));
    assert!(!dogeza.is_empty());

    // Delivery is in event-id order, so once the last wanted alert is in,
    // an unwanted one would have come before it.
    let posts = receiver.wait_for("acme-json", &acme).await;
    assert_eq!(
        distinct_in_order(&posts)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        acme
    );
    for post in &posts {
        post.assert_signed();
        let alert = post.alert();
        assert_eq!(
            (alert.tenant.as_str(), alert.event_id),
            ("acme", post.event_id())
        );
        let sent = c1
            .iter()
            .chain(&c2)
            .find(|a| a.event_id == alert.event_id)
            .unwrap();
        assert_eq!(
            (alert.alert_id, alert.call_id.as_str()),
            (sent.alert_id, sent.call_id.as_str())
        );
    }

    let posts = receiver.wait_for("dogeza-slack", &dogeza).await;
    assert_eq!(
        distinct_in_order(&posts)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        dogeza
    );
    for post in &posts {
        post.assert_signed();
        let body: serde_json::Value = serde_json::from_slice(&post.body).unwrap();
        let text = body["text"].as_str().expect("a Slack body");
        assert!(text.contains("excessive_demand on call"), "{text}");
    }

    let n = acme.len() as f64;
    eventually("delivered counted", || async move {
        metric(
            &metrics_text(http).await,
            "callguard_webhook_delivered_total",
            "acme-json",
        ) == n
    })
    .await;
    let metrics = metrics_text(http).await;
    assert!(
        metrics.contains("# HELP callguard_webhook_lag_events"),
        "{metrics}"
    );
    server.stop().await;
    up.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_every_alert_and_a_dead_one_holds_up_nobody() {
    let receiver = Arc::new(Receiver::default());
    // Take a port, then close it: the receiver is down when alerts come.
    let addr = Listening::start(&receiver, "127.0.0.1:0".parse().unwrap())
        .await
        .stop()
        .await;
    // An endpoint that accepts connections and never answers.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = WebhookEntry {
        timeout_ms: 200,
        url: format!("http://{}/hook/silent", black_hole.local_addr().unwrap()),
        ..hook("silent", addr)
    };
    let tmp = tempfile::tempdir().unwrap();
    let server =
        TestServer::spawn_with(with_hooks(tmp.path(), vec![hook("flaky", addr), silent])).await;
    let http = server.server.http_addr;

    // Ingest answers every event with its alerts while no webhook can deliver.
    let mut sent = BTreeSet::new();
    for i in 0..5 {
        sent.extend(ids(&call(
            &server,
            &format!("down-{i}"),
            "acme",
            "ぶっ殺すぞ",
        )
        .await));
    }
    // It has tried, and failed, and keeps at it.
    eventually("flaky retries", || async move {
        metric(
            &metrics_text(http).await,
            "callguard_webhook_failures_total",
            "flaky",
        ) >= 2.0
    })
    .await;
    assert_eq!(
        metric(
            &metrics_text(http).await,
            "callguard_webhook_retrying",
            "flaky"
        ),
        1.0
    );

    // Back up on the same port: everything arrives, once each, in order.
    let up = Listening::start(&receiver, addr).await;
    for i in 0..3 {
        sent.extend(ids(&call(
            &server,
            &format!("up-{i}"),
            "acme",
            "ぶっ殺すぞ",
        )
        .await));
    }
    let posts = receiver.wait_for("flaky", &sent).await;
    assert_eq!(
        distinct_in_order(&posts)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sent
    );
    posts.iter().for_each(Post::assert_signed);
    eventually("flaky caught up", || async move {
        let m = metrics_text(http).await;
        metric(&m, "callguard_webhook_retrying", "flaky") == 0.0
            && metric(&m, "callguard_webhook_lag_events", "flaky") == 0.0
    })
    .await;
    // The silent endpoint timed out all along, and is behind.
    let m = metrics_text(http).await;
    assert!(
        metric(&m, "callguard_webhook_failures_total", "silent") >= 1.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "callguard_webhook_delivered_total", "silent"),
        0.0
    );
    assert!(receiver.posts("silent").is_empty());
    server.stop().await;
    up.stop().await;
    drop(black_hole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_answers_are_retried_and_refusals_skipped() {
    let receiver = Arc::new(Receiver::default());
    let up = Listening::start(&receiver, "127.0.0.1:0".parse().unwrap()).await;
    receiver.refuse("busy", 503, 3);
    receiver.refuse("gone", 410, u32::MAX);
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(with_hooks(
        tmp.path(),
        vec![hook("busy", up.addr), hook("gone", up.addr)],
    ))
    .await;
    let http = server.server.http_addr;
    let mut sent = BTreeSet::new();
    for i in 0..3 {
        sent.extend(ids(
            &call(&server, &format!("b{i}"), "acme", "ぶっ殺すぞ").await
        ));
    }
    // 503 three times, then taken: every alert arrives.
    let posts = receiver.wait_for("busy", &sent).await;
    assert_eq!(
        distinct_in_order(&posts)
            .into_iter()
            .collect::<BTreeSet<_>>(),
        sent
    );
    assert_eq!(receiver.attempts("busy"), sent.len() as u32 + 3);
    // 410 is final: each alert tried once, counted, skipped.
    let n = sent.len() as f64;
    eventually("gone skipped every alert", || async move {
        metric(
            &metrics_text(http).await,
            "callguard_webhook_rejected_total",
            "gone",
        ) == n
    })
    .await;
    assert_eq!(receiver.attempts("gone"), sent.len() as u32);
    assert!(receiver.posts("gone").is_empty());
    server.stop().await;
    up.stop().await;
}

/// The saved offset of webhook `name` in `dir`.
fn offset(dir: &Path, name: &str) -> u64 {
    std::fs::read_to_string(dir.join(format!("webhooks/{name}.offset")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_after_the_offset_without_loss_or_flood() {
    let receiver = Arc::new(Receiver::default());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Alerts from before the webhook existed are not sent to it.
    let server = TestServer::spawn_with(config(dir)).await;
    let before = ids(&call(&server, "before", "acme", "ぶっ殺すぞ").await);
    server.stop().await;

    let up = Listening::start(&receiver, "127.0.0.1:0".parse().unwrap()).await;
    let addr = up.addr;
    let server = TestServer::spawn_with(with_hooks(dir, vec![hook("resume", addr)])).await;
    let first = ids(&call(&server, "first", "acme", "ぶっ殺すぞ").await);
    receiver.wait_for("resume", &first).await;
    // Saved once the 2xx is back (stopping before that would send the
    // last one again: at least once).
    let delivered_last = *first.last().unwrap();
    eventually("offset saved", || async move {
        offset(dir, "resume") == delivered_last
    })
    .await;
    server.stop().await;

    // Down while a call raises alerts, and the service stops before it
    // could deliver them: the offset stays behind them.
    let addr = up.stop().await;
    let server = TestServer::spawn_with(with_hooks(dir, vec![hook("resume", addr)])).await;
    let http = server.server.http_addr;
    let second = ids(&call(&server, "second", "acme", "ぶっ殺すぞ").await);
    eventually("a failed attempt", || async move {
        metric(
            &metrics_text(http).await,
            "callguard_webhook_failures_total",
            "resume",
        ) >= 1.0
    })
    .await;
    server.stop().await;
    assert_eq!(offset(dir, "resume"), delivered_last);

    // Receiver and service back: the second call's alerts and a third's.
    let up = Listening::start(&receiver, addr).await;
    let server = TestServer::spawn_with(with_hooks(dir, vec![hook("resume", addr)])).await;
    let third = ids(&call(&server, "third", "acme", "ぶっ殺すぞ").await);
    let wanted: BTreeSet<u64> = second.union(&third).copied().collect();
    let posts = receiver.wait_for("resume", &wanted).await;
    let got: Vec<u64> = posts.iter().map(Post::event_id).collect();
    let all: BTreeSet<u64> = first.union(&wanted).copied().collect();
    // Every alert once (the first run's were saved after their 2xx, so
    // none is sent again), none from before the webhook existed.
    assert_eq!(
        got,
        all.iter().copied().collect::<Vec<_>>(),
        "before: {before:?}"
    );
    assert!(before.iter().all(|id| !got.contains(id)));
    let last = *third.last().unwrap();
    eventually(
        "offset saved",
        || async move { offset(dir, "resume") == last },
    )
    .await;
    server.stop().await;
    up.stop().await;
}

/// An HTTPS receiver with `cert` and `key` (PEM files): answers every
/// request 204 and records it. A small HTTP/1.1 reader of its own (one
/// request per connection, as callguard sends them).
async fn https_receiver(
    receiver: Arc<Receiver>,
    cert: &Path,
    key: &Path,
) -> (SocketAddr, JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{crypto, ServerConfig};
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, receiver) = (acceptor.clone(), receiver.clone());
            tokio::spawn(async move {
                // A client that does not trust us ends the handshake.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut tls = BufReader::new(tls);
                let mut request_line = String::new();
                tls.read_line(&mut request_line).await.unwrap();
                let hook = request_line
                    .split(' ')
                    .nth(1)
                    .and_then(|path| path.strip_prefix("/hook/"))
                    .unwrap()
                    .to_owned();
                let mut headers = HeaderMap::new();
                loop {
                    let mut line = String::new();
                    tls.read_line(&mut line).await.unwrap();
                    let Some((name, value)) = line.trim_end().split_once(": ") else {
                        break;
                    };
                    headers.insert(
                        axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                            .unwrap(),
                        value.parse().unwrap(),
                    );
                }
                let length: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
                let mut body = vec![0; length];
                tls.read_exact(&mut body).await.unwrap();
                receiver.posts.lock().unwrap().push(Post {
                    hook,
                    headers,
                    body: body.into(),
                });
                receiver.arrived.notify_waiters();
                let mut tls = tls.into_inner();
                tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tls.shutdown().await;
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_endpoints_are_verified_against_the_ca_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&other).unwrap();
    let pki = make_pki(&ours);
    let stranger = make_pki(&other);
    let receiver = Arc::new(Receiver::default());
    let (addr, task) = https_receiver(receiver.clone(), &pki.server_cert, &pki.server_key).await;
    let https = |name: &str, ca: &Path| WebhookEntry {
        url: format!("https://localhost:{}/hook/{name}", addr.port()),
        ca_file: Some(ca.to_path_buf()),
        ..hook(name, addr)
    };
    let data = tmp.path().join("data");
    let entries = vec![
        https("tls-trusted", &pki.ca),
        https("tls-untrusted", &stranger.ca),
    ];
    let server = TestServer::spawn_with(with_hooks(&data, entries.clone())).await;
    let http = server.server.http_addr;
    let sent = ids(&call(&server, "tls-1", "acme", "ぶっ殺すぞ").await);
    let posts = receiver.wait_for("tls-trusted", &sent).await;
    posts.iter().for_each(Post::assert_signed);
    assert_eq!(
        posts
            .iter()
            .map(|p| p.alert().call_id)
            .collect::<BTreeSet<_>>()
            .len(),
        1
    );
    // A certificate of another CA is refused: TLS failures, retried, and
    // nothing reaches the receiver.
    eventually("untrusted certificate refused", || async move {
        let m = metrics_text(http).await;
        m.lines().any(|l| {
            l.starts_with("callguard_webhook_failures_total{")
                && l.contains("webhook=\"tls-untrusted\"")
                && l.contains("reason=\"tls\"")
        })
    })
    .await;
    assert!(receiver.posts("tls-untrusted").is_empty());
    // The CA file renewed under the same path: a reload with the same
    // entries restarts that webhook alone, and what it was retrying arrives.
    std::fs::copy(&pki.ca, &stranger.ca).unwrap();
    let done = server.server.webhooks.reload(&entries).await.unwrap();
    assert_eq!(done.restarted, ["tls-untrusted"], "{done:?}");
    assert_eq!(done.unchanged, ["tls-trusted"], "{done:?}");
    receiver.wait_for("tls-untrusted", &sent).await;
    server.stop().await;
    task.abort();
}

/// A `[[webhooks]]` table for a config file: `name` POSTing to
/// `/hook/PATH` on `addr`, with short retries, and `extra` keys.
fn hook_toml(name: &str, addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "[[webhooks]]\nname = {name:?}\nurl = \"http://{addr}/hook/{path}\"\n\
         secret = {SECRET:?}\nretry_min_ms = 20\nretry_max_ms = 200\n{extra}\n"
    )
}

/// Waits (up to 120 s: each SIGHUP first compiles the lexicons again,
/// seconds in a debug build) until the child has logged `message` for the
/// `nth` time (1-based); that line's fields.
async fn logged(server: &ChildServer, message: &str, nth: usize) -> serde_json::Value {
    for _ in 0..1200 {
        let found: Vec<serde_json::Value> = server
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["message"] == message)
            .collect();
        if let Some(line) = found.get(nth - 1) {
            return line["fields"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{message:?} not logged {nth} times:\n{}", server.log());
}

/// SIGHUP re-reads `[[webhooks]]`: a new webhook starts (at the log's
/// end), a removed one stops, a changed one restarts after the alert it had
/// finished with, an unchanged one goes on untouched; nothing is lost and
/// nothing sent twice. A config that cannot be used is refused, naming the
/// problem, and the webhooks in force stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_starts_stops_and_restarts_webhooks_and_keeps_offsets() {
    let receiver = Arc::new(Receiver::default());
    let up = Listening::start(&receiver, "127.0.0.1:0".parse().unwrap()).await;
    let addr = up.addr;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("serve.toml");
    let kept = hook_toml("kept", addr, "kept", "");
    std::fs::write(
        &config,
        [
            kept.clone(),
            hook_toml("dropped", addr, "dropped", ""),
            hook_toml("moved", addr, "moved-a", ""),
        ]
        .concat(),
    )
    .unwrap();
    let mut server = ChildServer::spawn(&data, Some(&config)).await;

    let first = ids(&call_at(server.grpc, "first", "acme", "ぶっ殺すぞ").await);
    for path in ["kept", "dropped", "moved-a"] {
        receiver.wait_for(path, &first).await;
    }
    // Finished with (saved after the 2xx), so a restart has nothing in flight.
    let last = *first.last().unwrap();
    let data_dir = data.as_path();
    eventually("offsets saved", || async move {
        ["kept", "dropped", "moved"]
            .iter()
            .all(|name| offset(data_dir, name) == last)
    })
    .await;
    // moved's endpoint fails from now on: it is retrying the next call's
    // first alert when the reload comes.
    receiver.refuse("moved-a", 503, u32::MAX);
    let between = ids(&call_at(server.grpc, "between", "acme", "ぶっ殺すぞ").await);
    let first: BTreeSet<u64> = {
        let sent: BTreeSet<u64> = first.union(&between).copied().collect();
        receiver.wait_for("kept", &sent).await;
        receiver.wait_for("dropped", &sent).await;
        let (moved_a, delivered) = (receiver.clone(), first.len() as u32);
        eventually("moved retrying", || {
            let moved_a = moved_a.clone();
            async move { moved_a.attempts("moved-a") > delivered }
        })
        .await;
        sent
    };

    // dropped removed, moved to another URL, added new, kept as it was.
    std::fs::write(
        &config,
        [
            kept.clone(),
            hook_toml("moved", addr, "moved-b", ""),
            hook_toml("added", addr, "added", ""),
        ]
        .concat(),
    )
    .unwrap();
    server.signal("HUP");
    let done = logged(&server, "webhooks reloaded", 1).await;
    let names = |key: &str| done[key].as_str().unwrap().to_owned();
    assert_eq!(
        [
            names("started"),
            names("restarted"),
            names("stopped"),
            names("unchanged")
        ],
        [
            r#"["added"]"#,
            r#"["moved"]"#,
            r#"["dropped"]"#,
            r#"["kept"]"#
        ],
        "{done}"
    );

    let second = ids(&call_at(server.grpc, "second", "acme", "ぶっ殺すぞ").await);
    let both: BTreeSet<u64> = first.union(&second).copied().collect();
    let in_order = |posts: &[Post]| {
        distinct_in_order(posts)
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(in_order(&receiver.wait_for("kept", &both).await), both);
    // Restarted after the alert it had finished with: what it was
    // retrying comes to the new URL, nothing already delivered is sent again.
    let moved: BTreeSet<u64> = between.union(&second).copied().collect();
    assert_eq!(in_order(&receiver.wait_for("moved-b", &moved).await), moved);
    // New: from the log's end at the reload.
    assert_eq!(in_order(&receiver.wait_for("added", &second).await), second);
    let before: BTreeSet<u64> = first.difference(&between).copied().collect();
    assert_eq!(in_order(&receiver.posts("moved-a")), before);
    assert_eq!(in_order(&receiver.posts("dropped")), first);
    receiver.posts("added").iter().for_each(Post::assert_signed);
    for post in receiver.posts("moved-b") {
        assert_eq!(post.headers["x-callguard-webhook"], "moved");
    }

    // Refused: the file does not parse as a config (a URL with no scheme).
    std::fs::write(
        &config,
        [
            kept.clone(),
            hook_toml("never", addr, "never", ""),
            "[[webhooks]]\nname = \"broken\"\nurl = \"127.0.0.1:9\"\n".to_owned(),
        ]
        .concat(),
    )
    .unwrap();
    server.signal("HUP");
    let refused = logged(
        &server,
        "SIGHUP: config refused; the webhooks in force stay",
        1,
    )
    .await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("(broken): url: not a usable URL"),
        "{refused}"
    );
    // Refused: a category filter the rules in force do not know.
    std::fs::write(
        &config,
        [
            kept,
            hook_toml("never", addr, "never", "categories = [\"violense\"]"),
        ]
        .concat(),
    )
    .unwrap();
    server.signal("HUP");
    let refused = logged(
        &server,
        "SIGHUP: webhooks refused; the webhooks in force stay",
        1,
    )
    .await;
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("(never): categories: unknown category \"violense\""),
        "{refused}"
    );

    // The webhooks in force before the refusals deliver on.
    let third = ids(&call_at(server.grpc, "third", "acme", "ぶっ殺すぞ").await);
    let all: BTreeSet<u64> = both.union(&third).copied().collect();
    let late: BTreeSet<u64> = second.union(&third).copied().collect();
    assert_eq!(in_order(&receiver.wait_for("kept", &all).await), all);
    let moved: BTreeSet<u64> = moved.union(&third).copied().collect();
    assert_eq!(in_order(&receiver.wait_for("moved-b", &moved).await), moved);
    assert_eq!(in_order(&receiver.wait_for("added", &late).await), late);
    assert!(receiver.posts("never").is_empty());
    assert_eq!(in_order(&receiver.posts("dropped")), first);

    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}:\n{}", server.log());
    let last = *third.last().unwrap();
    for name in ["kept", "moved", "added"] {
        assert_eq!(offset(&data, name), last, "{name}");
    }
    assert_eq!(offset(&data, "dropped"), *between.last().unwrap());
    up.stop().await;
}
