//! Hostile clients and failing disks (issue #18): each test is named after
//! the finding it reproduces (F1 … F11) and drives a real server over a
//! real socket. Tests that read process-wide metrics or kill the server run
//! the binary as a child process, as in `faults.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use callguard::grpc::pb;

use crate::faults::*;
use crate::support::*;

// ---------------------------------------------------------------------------
// F1. Cancelled subscriptions are never freed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f1_cancelled_subscriptions_end_without_an_alert_being_due() {
    const CYCLES: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "");
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    let subscribers = || async { metric(server.http, "callguard_subscribers").await };

    // One subscriber that stays: the baseline the gauge must come back to.
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    let mut staying = alerts
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();
    eventually("one subscriber", || async {
        subscribers().await == Some(1.0)
    })
    .await;

    // A reconnect loop: subscribe, then cancel (RST_STREAM) on a shared
    // connection, and every tenth one by closing its own connection.
    for i in 0..CYCLES {
        if i % 10 == 0 {
            let mut own = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
            let stream = own.subscribe(subscribe_request(0)).await.unwrap();
            drop((stream, own));
        } else {
            let stream = alerts.subscribe(subscribe_request(0)).await.unwrap();
            drop(stream);
        }
    }
    // No alert is due to any of them; they end all the same.
    eventually("the subscriber gauge back at its baseline", || async {
        subscribers().await == Some(1.0)
    })
    .await;

    // The one that stayed is still served.
    let mut ingest = IngestStream::open_plain(server.grpc).await;
    let raised = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(take(&mut staying, 1).await, raised);
}

// ---------------------------------------------------------------------------
// F3. An alert refused during a store outage is gone for good

const THREAT: &str = "ぶっ殺すぞ";
const BENIGN: &str = "よろしくお願いします";

/// The real server on a real full disk (a 32 MiB tmpfs filled until
/// ENOSPC), over its gRPC socket and `/readyz`: no refused alert is lost,
/// nothing unstored is published or listed, readiness follows the store
/// without traffic, and a restart on the full disk is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f3_on_a_full_disk_refused_alerts_are_raised_again_and_readyz_follows_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&tmp.path().join("disk"), "32m") else {
        return;
    };
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, QUIET_POLICY).unwrap();
    let config = tmp.path().join("callguard.toml");
    std::fs::write(
        &config,
        format!(
            "policy = {:?}\nstore_min_free_bytes = {}\n\
             # The flood's stream closes; its refused calls stay open to be\n\
             # resent however slow the machine (not the 60 s default).\n\
             [limits]\nstream_grace_seconds = 3600\n",
            policy.display().to_string(),
            256 * 1024
        ),
    )
    .unwrap();
    let data = disk.path.join("data");
    let mut server = disk
        .serve(&data, &config)
        .await
        .unwrap_or_else(|log| panic!("serves on an empty disk:\n{log}"));
    let http = server.http;
    assert!(http_get(http, "/readyz").await.starts_with("HTTP/1.1 200"));
    let mut sub = pb::alerts_client::AlertsClient::new(connect(server.grpc).await)
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();
    let mut ingest = IngestStream::open_plain(server.grpc).await;
    // Every alert acknowledged on an ingest stream: exactly what the
    // subscriber and GetCall must show at the end.
    let mut stored = ingest
        .send(fragment("before", 1, "u1", THREAT, true))
        .await
        .alerts;
    assert_eq!(stored.len(), 1, "{stored:?}");

    // The disk fills up: not ready within a probe or two, with no traffic
    // (the probe's free-space floor; commits may still fit in the WAL).
    disk.fill();
    eventually("/readyz 503 once the disk is full", || async {
        http_get(http, "/readyz").await.starts_with("HTTP/1.1 503")
    })
    .await;

    // A flood of calls, one threat each, pipelined until the WAL needs
    // room it cannot have: each event is acked with its alert or refused.
    let flood = flood_until_refused(server.grpc).await;
    assert!(!flood.refused.is_empty(), "a commit fails on a full disk");
    stored.extend(flood.acked);
    let mut refused = flood.refused;

    // A resend while the disk is still full is refused again, not acked as
    // a duplicate. (A failed group leaves WAL pages a smaller commit can
    // still use: an event that fits is acked with its alert, and stored.)
    let resent = loop {
        let call = refused_call(&mut ingest, &mut stored).await;
        let again = ingest
            .send_expecting(fragment(&call, 1, "u1", THREAT, true), 1)
            .await;
        if stored_or_refused(&call, again, 1, &mut stored) {
            break call;
        }
    };
    refused.push(resent);
    // A call whose threat was refused and whose next event was refused
    // too (the kept alert rides on it): a resend of the first is still
    // no duplicate once the store is back.
    let twice = loop {
        let call = refused_call(&mut ingest, &mut stored).await;
        let next = ingest
            .send_expecting(fragment(&call, 2, "u2", BENIGN, true), 1)
            .await;
        if stored_or_refused(&call, next, 1, &mut stored) {
            break call;
        }
    };
    // A call whose refused alert comes back with its next event.
    let next = refused_call(&mut ingest, &mut stored).await;

    // Nothing unstored reached a subscriber, and GetCall lists only what
    // was stored: nothing for a refused call.
    stored.sort_by_key(|a| a.event_id);
    assert_eq!(take(&mut sub, stored.len()).await, stored);
    assert_quiet(&mut sub).await;
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    for call in refused.iter().chain([&twice, &next]) {
        assert_call(&mut alerts, call, &[]).await;
    }
    assert!(http_get(http, "/readyz").await.starts_with("HTTP/1.1 503"));

    // Space comes back: ready again with no traffic (the probe).
    disk.free();
    eventually("/readyz 200 once space is freed", || async {
        http_get(http, "/readyz").await.starts_with("HTTP/1.1 200")
    })
    .await;

    // Every refused event, resent, is no duplicate and raises its alert.
    let mut raised = Vec::new();
    for call in refused.iter().chain([&twice]) {
        let again = ingest
            .send_expecting(fragment(call, 1, "u1", THREAT, true), 1)
            .await;
        assert_raised(call, &again);
        assert_call(&mut alerts, call, &again.alerts).await;
        raised.extend(again.alerts);
    }
    // The refused next event of `twice` is taken (its alert came with the
    // resend above, once).
    let again = ingest.send(fragment(&twice, 2, "u2", BENIGN, true)).await;
    assert!(again.ack.is_some() && again.alerts.is_empty(), "{again:?}");
    // `next`'s kept alert comes with the call's next event.
    let later = ingest.send(fragment(&next, 2, "u2", BENIGN, true)).await;
    assert_raised(&next, &later);
    assert_call(&mut alerts, &next, &later.alerts).await;
    raised.extend(later.alerts);
    // Subscribers get them too, once each.
    assert_eq!(take(&mut sub, raised.len()).await, raised);
    assert_quiet(&mut sub).await;
    drop((sub, ingest, alerts));
    server.signal("TERM");
    let stopped = server.wait_exit(Duration::from_secs(30));
    assert!(
        stopped.is_some_and(|s| s.success()),
        "{stopped:?}\n{}",
        server.log()
    );

    // A restart with the disk full again is never ready: it either cannot
    // open the store (an error naming the file) or starts and says it is
    // not ready (the probe) until space is freed.
    disk.fill();
    match disk.serve(&data, &config).await {
        Err(log) => assert!(log.contains("callguard.db"), "{log}"),
        Ok(restarted) => {
            let http = restarted.http;
            assert!(
                http_get(http, "/readyz").await.starts_with("HTTP/1.1 503"),
                "not ready on a full disk after a restart"
            );
            disk.free();
            eventually("ready once space is freed", || async {
                http_get(http, "/readyz").await.starts_with("HTTP/1.1 200")
            })
            .await;
            let mut ingest = IngestStream::open_plain(restarted.grpc).await;
            let after = ingest.send(fragment("after", 1, "u1", THREAT, true)).await;
            assert_raised("after", &after);
        }
    }
}

/// What a flood of one-threat calls came to.
struct Flood {
    /// The alerts of the events acknowledged.
    acked: Vec<pb::Alert>,
    /// The calls whose event was refused (`UNAVAILABLE`).
    refused: Vec<String>,
}

/// New calls with one threat each, pipelined on a stream of their own,
/// until one is refused; then the events in flight are answered and the
/// stream ends.
async fn flood_until_refused(grpc: std::net::SocketAddr) -> Flood {
    use pb::stream_transcript_response::Response as Reply;
    let (tx, mut replies) = open_ingest(connect(grpc).await).await;
    let sender = tokio::spawn(async move {
        for i in 0..20_000 {
            let event = fragment(&format!("full{i}"), 1, "u1", THREAT, true);
            if tx.send(event).await.is_err() {
                return;
            }
        }
    });
    let mut flood = Flood {
        acked: Vec::new(),
        refused: Vec::new(),
    };
    let mut sender = Some(sender);
    loop {
        let reply = tokio::time::timeout(Duration::from_secs(30), replies.message())
            .await
            .expect("a reply within 30 s")
            .expect("the stream goes on");
        let Some(reply) = reply else { break };
        match reply.response.expect("a reply") {
            Reply::Ack(ack) => assert!(!ack.duplicate, "{ack:?}"),
            Reply::Alert(alert) => flood.acked.push(alert),
            Reply::Rejection(rejection) => {
                assert_eq!(
                    (rejection.code.as_str(), rejection.field.as_str()),
                    ("UNAVAILABLE", "event"),
                    "{rejection:?}"
                );
                flood.refused.push(rejection.call_id);
                // Stop sending: the stream ends after the events in flight.
                if let Some(sender) = sender.take() {
                    sender.abort();
                }
            }
        }
    }
    assert!(sender.is_none(), "the stream ended before any refusal");
    flood
}

/// Threats for new calls until the store refuses one; the ones acked
/// meanwhile (in what room the WAL had left) join `stored`.
async fn refused_call(ingest: &mut IngestStream, stored: &mut Vec<pb::Alert>) -> String {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for _ in 0..1_000 {
        let i = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let call = format!("kept{i}");
        let replies = ingest
            .send_expecting(fragment(&call, 1, "u1", THREAT, true), 1)
            .await;
        if stored_or_refused(&call, replies, 1, stored) {
            return call;
        }
    }
    panic!("1,000 threats acked on a full disk");
}

/// An event's answer on a full disk: refused `UNAVAILABLE` with nothing
/// else (true), or acked, no duplicate, with `n` alerts of its call, which
/// join `stored` (false).
fn stored_or_refused(call: &str, replies: Replies, n: usize, stored: &mut Vec<pb::Alert>) -> bool {
    match &replies.rejection {
        Some(rejection) => {
            assert_eq!(rejection.code, "UNAVAILABLE", "{replies:?}");
            assert!(
                replies.ack.is_none() && replies.alerts.is_empty(),
                "{replies:?}"
            );
            true
        }
        None => {
            let ack = replies.ack.as_ref().expect("acked or refused");
            assert!(!ack.duplicate, "{replies:?}");
            assert_eq!(replies.alerts.len(), n, "{replies:?}");
            assert!(
                replies.alerts.iter().all(|a| a.call_id == call),
                "{replies:?}"
            );
            stored.extend(replies.alerts);
            false
        }
    }
}

/// Acked, no duplicate, with the call's one threat alert.
fn assert_raised(call: &str, replies: &Replies) {
    let ack = replies
        .ack
        .as_ref()
        .unwrap_or_else(|| panic!("{replies:?}"));
    assert!(!ack.duplicate, "{replies:?}");
    assert_eq!(replies.alerts.len(), 1, "{replies:?}");
    assert_eq!(replies.alerts[0].call_id, call, "{replies:?}");
}

/// GetCall lists exactly `alerts` for `call`, ids and stored versions.
async fn assert_call(
    client: &mut pb::alerts_client::AlertsClient<tonic::transport::Channel>,
    call: &str,
    alerts: &[pb::Alert],
) {
    let got = client
        .get_call(pb::GetCallRequest {
            call_id: call.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.alerts, alerts, "{call}");
    let ids: Vec<u64> = alerts.iter().map(|a| a.alert_id).collect();
    assert_eq!(got.call.unwrap().alert_ids, ids, "{call}");
}

/// A small tmpfs in a mount namespace of its own, held by a child process
/// (`unshare`; inside a user namespace where the test may not mount, when
/// unprivileged user namespaces are allowed). Servers run in it through
/// `nsenter`; the test reaches it through `/proc/<holder>/root`. The rest
/// of the machine never sees the mount, and it cannot outlive the test: the
/// holder exits when its stdin closes — when this is dropped, or when the
/// test process dies however it dies — and the mount goes with the last
/// process in the namespace. Where no namespace can be had, tests that
/// need a full disk skip, saying why.
struct SmallDisk {
    holder: std::process::Child,
    /// `nsenter` arguments that enter the namespace.
    enter: Vec<String>,
    /// The mount point, as the servers see it.
    path: std::path::PathBuf,
    /// The same, as this process sees it.
    outside: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Option<SmallDisk> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        std::fs::create_dir_all(path).unwrap();
        let script = r#"mount -t tmpfs -o size="$1" tmpfs "$2" && echo mounted && read _"#;
        let mut failures = Vec::new();
        for user_ns in [false, true] {
            let mut command = Command::new("unshare");
            if user_ns {
                command.args(["--user", "--map-root-user"]);
            }
            command
                .args(["--mount", "--propagation", "private", "sh", "-c", script])
                .args(["sh", size])
                .arg(path)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut holder = match command.spawn() {
                Ok(holder) => holder,
                Err(e) => {
                    failures.push(format!("unshare: {e}"));
                    break;
                }
            };
            let mut line = String::new();
            let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
            if line.trim() != "mounted" {
                let out = holder.wait_with_output().unwrap();
                failures.push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
                continue;
            }
            let mut enter = vec![
                "--target".to_owned(),
                holder.id().to_string(),
                "--mount".to_owned(),
            ];
            if user_ns {
                enter.extend(["--user".to_owned(), "--preserve-credentials".to_owned()]);
            }
            let disk = SmallDisk {
                outside: std::path::Path::new(&format!("/proc/{}/root", holder.id()))
                    .join(path.strip_prefix("/").unwrap()),
                holder,
                enter,
                path: path.to_path_buf(),
            };
            let entered = Command::new("nsenter")
                .args(&disk.enter)
                .args(["--", "true"])
                .output();
            match entered {
                Ok(out) if out.status.success() => return Some(disk),
                Ok(out) => failures.push(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
                Err(e) => failures.push(format!("nsenter: {e}")),
            }
        }
        eprintln!(
            "skipped: cannot mount a tmpfs in a mount namespace of the test's own (needs \
             unshare and nsenter, and root, CAP_SYS_ADMIN or unprivileged user namespaces): {}",
            failures.join("; ")
        );
        None
    }

    /// Runs the real server in the namespace; what it logged if it exits
    /// instead of serving.
    async fn serve(
        &self,
        data: &std::path::Path,
        config: &std::path::Path,
    ) -> Result<ChildServer, String> {
        let mut command = std::process::Command::new("nsenter");
        command
            .args(&self.enter)
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_callguard"));
        ChildServer::try_start(command, ChildServer::serve_args(data, Some(config))).await
    }

    /// Fills the file system up: zeros until the write fails with ENOSPC.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.outside.join("filler"))
            .unwrap();
        let block = vec![0u8; 64 * 1024];
        let full = loop {
            if let Err(e) = file.write_all(&block) {
                break e;
            }
        };
        assert_eq!(full.kind(), std::io::ErrorKind::StorageFull, "{full}");
    }

    fn free(&self) {
        std::fs::remove_file(self.outside.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Our own child, by its pid; its end unmounts the tmpfs once the
        // servers in the namespace are gone too.
        drop(self.holder.stdin.take());
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

// ---------------------------------------------------------------------------
// F4. A deleted WAL file goes unnoticed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_a_deleted_wal_is_noticed_and_no_acknowledged_alert_is_lost_to_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), QUIET_POLICY, "");
    let data = tmp.path().join("data");
    let mut first = ChildServer::spawn(&data, Some(&config)).await;
    let url = format!("http://{}", first.grpc);
    let client = || async {
        IngestStream::open(
            callguard::grpc::client::ClientConfig::plain(url.clone())
                .connect()
                .await
                .unwrap(),
        )
        .await
        .unwrap()
    };
    let mut ingest = client().await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let replies = ingest
            .send(fragment(&format!("w{i}"), 1, "u1", "ぶっ殺すぞ", true))
            .await;
        assert!(replies.ack.is_some(), "{replies:?}");
        acked.extend(replies.alerts);
    }
    std::fs::remove_file(data.join("callguard.db-wal")).unwrap();

    eventually("/readyz 503 once the WAL is gone", || async {
        http_get(first.http, "/readyz")
            .await
            .starts_with("HTTP/1.1 503")
    })
    .await;
    for i in 30..60 {
        let replies = ingest
            .send(fragment(&format!("w{i}"), 1, "u1", "ぶっ殺すぞ", true))
            .await;
        match (replies.ack, replies.rejection) {
            (Some(_), None) => acked.extend(replies.alerts),
            (None, Some(rejection)) => assert_eq!(rejection.code, "UNAVAILABLE"),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        first.log().contains("WAL file was deleted"),
        "{}",
        first.log()
    );
    first.kill();
    drop(first);

    let second = ChildServer::spawn(&data, Some(&config)).await;
    let mut history = pb::alerts_client::AlertsClient::new(connect(second.grpc).await)
        .subscribe(pb::SubscribeRequest {
            from_start: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stored = take(&mut history, acked.len()).await;
    assert_eq!(stored, acked, "every acknowledged alert survives the kill");
}

// ---------------------------------------------------------------------------
// F2. No handshake or idle timeout on accepted TCP connections; no cap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f2_silent_idle_and_excess_connections_are_closed_and_counted() {
    const CAP: usize = 40;
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        QUIET_POLICY,
        &format!(
            "max_connections = {CAP}\nfirst_frame_timeout_seconds = 1\nidle_connection_timeout_seconds = 2\n"
        ),
    );
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    assert!(
        server.log().contains("open-files limit"),
        "{}",
        server.log()
    );

    // A subscriber on its own connection: an open stream keeps it open.
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    let mut staying = alerts
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();
    eventually("one connection", || async {
        metric(server.http, "callguard_connections").await == Some(1.0)
    })
    .await;

    // Connections that send nothing: CAP - 1 fit, the rest are refused.
    let mut silent = Vec::new();
    for _ in 0..CAP + 10 {
        silent.push(tokio::net::TcpStream::connect(server.grpc).await.unwrap());
    }
    // (At least 10: a connection closed a moment ago may still hold its place.)
    eventually("10 connections refused", || async {
        metric(server.http, "callguard_connections_refused_total")
            .await
            .is_some_and(|n| n >= 10.0)
    })
    .await;
    assert!(server.log().contains("limits.max_connections reached"));
    // Every silent one is closed by the server (after its SETTINGS frame):
    // refused, or timed out.
    for mut socket in silent {
        use tokio::io::AsyncReadExt;
        let mut sink = Vec::new();
        // Ok(EOF) or a reset: either way closed.
        let _closed = tokio::time::timeout(Duration::from_secs(15), socket.read_to_end(&mut sink))
            .await
            .expect("a silent connection is closed within 15 s");
    }

    // A client whose only call is over: closed once idle; the subscriber's
    // connection stays.
    let mut once = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    once.list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap();
    eventually("the idle connection closed", || async {
        metric(server.http, "callguard_connections").await == Some(1.0)
    })
    .await;
    let timed_out = metric(
        server.http,
        "callguard_connections_timed_out_total{reason=\"idle\"}",
    )
    .await;
    assert!(timed_out.is_some_and(|n| n >= 1.0), "{timed_out:?}");

    // The server still serves, and the subscriber still hears.
    let mut ingest = IngestStream::open_plain(server.grpc).await;
    let raised = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(take(&mut staying, 1).await, raised);
}

// ---------------------------------------------------------------------------
// F5. No lock on the data dir

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f5_a_second_server_on_the_same_data_dir_refuses_to_start_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let first = ChildServer::spawn(&data, None).await;
    let bin = env!("CARGO_BIN_EXE_callguard");
    let dir = data.clone();
    let second = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    });
    let second = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("the second server exits at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "in use by another callguard (pid {})",
            first.pid()
        )),
        "{stderr}"
    );
    // The first one is unharmed.
    assert!(http_get(first.http, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
}

// ---------------------------------------------------------------------------
// F6, F8, F9: tenants

const GW_ACME: &str = "tok-gw-acme";
const GW_GLOBEX: &str = "tok-gw-globex";
const SV_ACME: &str = "tok-sv-acme";
const SV_GLOBEX: &str = "tok-sv-globex";

/// A server with an ingest and a supervisor token for each of two tenants.
async fn spawn_tenants(
    dir: &std::path::Path,
    tune: impl FnOnce(&mut callguard::serve::ServeConfig),
) -> TestServer {
    use callguard::auth::{hash_token, Role, TokenEntry};
    let entry = |name: &str, token: &str, role, tenant: &str| TokenEntry {
        name: name.into(),
        sha256: hash_token(token),
        role,
        tenant: tenant.into(),
    };
    let mut config = quiet_config(dir);
    config.tokens = vec![
        entry("gw-acme", GW_ACME, Role::Ingest, "acme"),
        entry("gw-globex", GW_GLOBEX, Role::Ingest, "globex"),
        entry("sv-acme", SV_ACME, Role::Supervisor, "acme"),
        entry("sv-globex", SV_GLOBEX, Role::Supervisor, "globex"),
    ];
    tune(&mut config);
    TestServer::spawn_with(config).await
}

async fn authed(server: &TestServer, token: &str) -> callguard::grpc::client::AuthChannel {
    callguard::grpc::client::ClientConfig {
        token: Some(token.to_owned()),
        ..callguard::grpc::client::ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_one_tenant_cannot_fill_the_service_and_its_abandoned_calls_close_after_the_grace() {
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn_tenants(tmp.path(), |c| {
        c.limits.max_active_calls = 10;
        c.limits.max_active_calls_per_tenant = 4;
        c.limits.stream_grace_seconds = 1;
    })
    .await;
    let mut acme = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    for i in 0..4 {
        let r = acme.send(start_event(&format!("a{i}"), "")).await;
        assert!(r.ack.is_some(), "{r:?}");
    }
    let full = acme.send(start_event("a4", "")).await.rejection.unwrap();
    assert_eq!(full.code, "RESOURCE_EXHAUSTED");
    assert!(full.reason.contains("for this tenant"), "{full:?}");
    // The other tenant is not affected.
    let mut globex = IngestStream::open(authed(&server, GW_GLOBEX).await)
        .await
        .unwrap();
    assert!(globex.send(start_event("g0", "")).await.ack.is_some());

    // acme's gateway goes without ending its calls: they close after the
    // grace (seconds), not the idle timeout (minutes).
    drop(acme);
    let mut supervisor = pb::alerts_client::AlertsClient::new(authed(&server, SV_ACME).await);
    let mut open = usize::MAX;
    for _ in 0..150 {
        open = supervisor
            .list_calls(pb::ListCallsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .calls
            .len();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(open, 0, "acme's abandoned calls closed");
    let mut again = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    assert!(again.send(start_event("a5", "")).await.ack.is_some());
    // globex's call, on a stream still open, stays.
    let mut globex_sv = pb::alerts_client::AlertsClient::new(authed(&server, SV_GLOBEX).await);
    let calls = globex_sv
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    again.close().await;
    globex.close().await;
    server.stop().await;
}

/// F6, per token: one gateway token of a tenant (a runaway or leaked one)
/// fills `max_active_calls_per_token` across every stream it opens, while
/// another ingest token of the same tenant still starts calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f6_one_ingest_token_cannot_fill_its_tenant_s_share() {
    const GW2_ACME: &str = "tok-gw2-acme";
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn_tenants(tmp.path(), |c| {
        c.limits.max_active_calls_per_tenant = 6;
        c.limits.max_active_calls_per_token = 3;
        c.tokens.push(callguard::auth::TokenEntry {
            name: "gw2-acme".into(),
            sha256: callguard::auth::hash_token(GW2_ACME),
            role: callguard::auth::Role::Ingest,
            tenant: "acme".into(),
        });
    })
    .await;
    let mut hog = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    for i in 0..3 {
        let r = hog.send(start_event(&format!("a{i}"), "")).await;
        assert!(r.ack.is_some(), "{r:?}");
    }
    let full = hog.send(start_event("a3", "")).await.rejection.unwrap();
    assert_eq!(full.code, "RESOURCE_EXHAUSTED");
    assert!(full.reason.contains("for this ingest token"), "{full:?}");
    // A fragment that would open a call is refused the same way, and so is
    // a start on a second stream of the same token: streams share the cap.
    let opening = hog
        .send(fragment("a4", 1, "u1", "もしもし", true))
        .await
        .rejection
        .unwrap();
    assert_eq!(opening.code, "RESOURCE_EXHAUSTED", "{opening:?}");
    let mut hog2 = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    let again = hog2.send(start_event("a5", "")).await.rejection.unwrap();
    assert!(again.reason.contains("for this ingest token"), "{again:?}");
    // The tenant's other gateway still starts calls.
    let mut other = IngestStream::open(authed(&server, GW2_ACME).await)
        .await
        .unwrap();
    for i in 0..3 {
        let r = other.send(start_event(&format!("b{i}"), "")).await;
        assert!(r.ack.is_some(), "the other token of acme: {r:?}");
    }
    // The token's calls still take events, whichever stream sends them...
    assert!(hog2
        .send(fragment("a0", 1, "u1", "もしもし", true))
        .await
        .ack
        .is_some());
    // ... and an ended one gives its place back.
    assert!(hog.send(end_event("a1", 5_000)).await.ack.is_some());
    assert!(hog2.send(start_event("a6", "")).await.ack.is_some());
    let mut supervisor = pb::alerts_client::AlertsClient::new(authed(&server, SV_ACME).await);
    let open: BTreeSet<String> = supervisor
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls
        .into_iter()
        .filter(|c| c.status == pb::CallStatus::Active as i32)
        .map(|c| c.call_id)
        .collect();
    let expected: BTreeSet<String> = ["a0", "a2", "a6", "b0", "b1", "b2"]
        .map(String::from)
        .into();
    assert_eq!(open, expected);
    for stream in [hog, hog2, other] {
        stream.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f8_an_ended_call_id_is_not_reopened_and_ids_are_scoped_by_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn_tenants(tmp.path(), |_| {}).await;
    let mut globex = IngestStream::open(authed(&server, GW_GLOBEX).await)
        .await
        .unwrap();
    assert!(globex.send(start_event("shared", "")).await.ack.is_some());
    let raised = globex
        .send(fragment("shared", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(raised.len(), 1);
    assert!(globex.send(end_event("shared", 5_000)).await.ack.is_some());

    // A late resend after the end: refused, not a new call with the alert
    // raised a second time; a new start of the id too.
    for event in [
        fragment("shared", 1, "u1", "ぶっ殺すぞ", true),
        start_event("shared", ""),
    ] {
        let r = globex.send(event).await;
        assert!(r.alerts.is_empty(), "{r:?}");
        let rejection = r.rejection.expect("refused");
        assert_eq!(
            (rejection.code.as_str(), rejection.field.as_str()),
            ("FAILED_PRECONDITION", "call_id")
        );
    }

    // acme using the same id gets a call of its own; globex's supervisor
    // still sees globex's call, alerts and all.
    let mut acme = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    let own = acme
        .send(fragment("shared", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    assert!(own.ack.is_some(), "{own:?}");
    assert!(own.alerts.iter().all(|a| a.tenant == "acme"), "{own:?}");
    let mut globex_sv = pb::alerts_client::AlertsClient::new(authed(&server, SV_GLOBEX).await);
    let call = globex_sv
        .get_call(pb::GetCallRequest {
            call_id: "shared".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let summary = call.call.expect("globex's call");
    assert_eq!(summary.tenant, "globex");
    assert_eq!(call.alerts, raised);
    acme.close().await;
    globex.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f9_no_answer_reveals_another_tenant_s_call_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let server = spawn_tenants(tmp.path(), |_| {}).await;
    let mut globex = IngestStream::open(authed(&server, GW_GLOBEX).await)
        .await
        .unwrap();
    assert!(globex.send(start_event("g-live", "")).await.ack.is_some());

    // acme starting, feeding and ending an id globex has live: all its own,
    // none refused as taken, none naming globex.
    let mut acme = IngestStream::open(authed(&server, GW_ACME).await)
        .await
        .unwrap();
    for event in [
        start_event("g-live", ""),
        fragment("g-live", 1, "u1", "よろしく", true),
        end_event("g-live", 2_000),
    ] {
        let r = acme.send(event).await;
        assert!(r.ack.is_some(), "{r:?}");
    }
    // The one refusal acme can get names only what acme itself sent.
    let denied = acme
        .send(start_event("x", "globex"))
        .await
        .rejection
        .unwrap();
    assert_eq!(denied.code, "PERMISSION_DENIED");
    // GetCall: another tenant's id and an id nobody has answer the same.
    assert!(globex.send(start_event("g-secret", "")).await.ack.is_some());
    let mut acme_sv = pb::alerts_client::AlertsClient::new(authed(&server, SV_ACME).await);
    let mut status = Vec::new();
    for call_id in ["g-secret", "nobody"] {
        let request = pb::GetCallRequest {
            call_id: call_id.into(),
        };
        status.push(acme_sv.get_call(request).await.unwrap_err());
    }
    let (theirs, nobody) = (&status[0], &status[1]);
    assert_eq!(theirs.code(), tonic::Code::NotFound);
    assert_eq!(nobody.code(), tonic::Code::NotFound);
    assert_eq!(
        theirs.message().replace("g-secret", "ID"),
        nobody.message().replace("nobody", "ID")
    );
    // globex's own call is untouched by acme's.
    let r = globex
        .send(fragment("g-live", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    assert!(
        r.alerts.iter().all(|a| a.tenant == "globex") && r.alerts.len() == 1,
        "{r:?}"
    );
    acme.close().await;
    globex.close().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// F10. Times of u64::MAX accepted; talk time wraps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f10_times_past_24_hours_are_refused_and_talk_time_does_not_wrap() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(quiet_config(tmp.path())).await;
    let mut ingest = server.stream().await;
    assert!(ingest.send(start_event("t1", "acme")).await.ack.is_some());
    let timed = |seq: u64, start_ms: u64, end_ms: u64| {
        let mut event = fragment("t1", seq, &format!("u{seq}"), "よろしく", true);
        if let Some(pb::transcript_event::Event::Fragment(f)) = &mut event.event {
            (f.start_ms, f.end_ms) = (start_ms, end_ms);
        }
        event
    };
    let day = callguard::event::MAX_AUDIO_MS;
    for (seq, start_ms, end_ms, field) in [
        (1, 0, u64::MAX, "end_ms"),
        (2, u64::MAX - 1, u64::MAX, "start_ms"),
        (3, 1_000, day + 1, "end_ms"),
    ] {
        let rejection = ingest
            .send(timed(seq, start_ms, end_ms))
            .await
            .rejection
            .unwrap_or_else(|| panic!("{start_ms}..{end_ms} accepted"));
        assert_eq!(
            (rejection.field.as_str(), rejection.code.as_str()),
            (field, "INVALID_ARGUMENT"),
            "{rejection:?}"
        );
        assert!(rejection.reason.contains("24 h"), "{}", rejection.reason);
    }
    // Up to the bound is fine, and talk time adds up without wrapping.
    assert!(ingest.send(timed(4, 0, day)).await.ack.is_some());
    assert!(ingest.send(timed(5, 0, day)).await.ack.is_some());
    let end = ingest
        .send(end_event("t1", u64::MAX))
        .await
        .rejection
        .unwrap();
    assert_eq!(end.field, "end_ms");
    let calls = server
        .alerts()
        .await
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(calls[0].customer_talk_ms, 2 * day, "{calls:?}");
    // The label-count error counts entries, not bytes.
    let mut labelled = start_event("t2", "acme");
    if let Some(pb::transcript_event::Event::Start(s)) = &mut labelled.event {
        s.labels = (0..40).map(|i| (format!("k{i}"), "v".into())).collect();
    }
    let r = ingest.send(labelled).await.rejection.unwrap();
    assert_eq!(r.field, "labels");
    assert!(r.reason.contains("more than 32 entries"), "{}", r.reason);
    ingest.close().await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// F11. ListCalls not paginated

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f11_list_calls_pages_through_every_call_once() {
    const CALLS: usize = 1_200;
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(quiet_config(tmp.path())).await;
    let (tx, mut replies) = open_ingest(server.channel().await).await;
    let sender = tokio::spawn(async move {
        for i in 0..CALLS {
            tx.send(start_event(&format!("p{i:04}"), "acme"))
                .await
                .unwrap();
        }
        tx
    });
    for _ in 0..CALLS {
        match next_reply(&mut replies).await {
            pb::stream_transcript_response::Response::Ack(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let tx = sender.await.unwrap();

    let mut alerts = server.alerts().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = alerts
            .list_calls(pb::ListCallsRequest {
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.calls.len() <= 500, "default page size");
        assert!(prost::Message::encoded_len(&page) < 4 * 1024 * 1024);
        seen.extend(page.calls.into_iter().map(|c| c.call_id));
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..CALLS).map(|i| format!("p{i:04}")).collect();
    assert_eq!(seen, expected, "every call once, in order");
    // A small page size, and a token that is not one.
    let small = alerts
        .list_calls(pb::ListCallsRequest {
            page_size: 7,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(small.calls.len(), 7);
    assert!(!small.next_page_token.is_empty());
    let bad = alerts
        .list_calls(pb::ListCallsRequest {
            page_token: "zz".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    drop((tx, replies));
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Unauthenticated floods, health of Admin

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_are_all_counted_but_logged_at_most_every_few_seconds() {
    use callguard::auth::{hash_token, Role, TokenEntry};
    const REQUESTS: usize = 300;
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("callguard.toml");
    let entry = TokenEntry {
        name: "root".into(),
        sha256: hash_token("tok-root"),
        role: Role::Admin,
        tenant: "*".into(),
    };
    std::fs::write(
        &config,
        format!(
            "[[tokens]]\nname = {:?}\nsha256 = {:?}\nrole = \"admin\"\ntenant = \"*\"\n",
            entry.name, entry.sha256
        ),
    )
    .unwrap();
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    let mut alerts = pb::alerts_client::AlertsClient::new(connect(server.grpc).await);
    for _ in 0..REQUESTS {
        let refused = alerts.list_calls(pb::ListCallsRequest::default()).await;
        assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
    eventually("every refusal counted", || async {
        metric(server.http, "callguard_auth_failures_total").await == Some(REQUESTS as f64)
    })
    .await;
    let lines = server.log().matches("not authenticated").count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} lines for {REQUESTS} refusals"
    );

    // Health answers for every callguard service, Admin included.
    let mut health = tonic_health::pb::health_client::HealthClient::new(connect(server.grpc).await);
    for service in [
        "callguard.v1.Ingest",
        "callguard.v1.Alerts",
        "callguard.v1.Admin",
    ] {
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{service}: {e}"))
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
    }
}

// ---------------------------------------------------------------------------
// F7. A lexicon folder missing a whole language is accepted unnoticed

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f7_a_lexicon_set_that_lost_a_language_is_refused_and_versions_follow_content() {
    let tmp = tempfile::tempdir().unwrap();
    let lexicons = tmp.path().join("lexicons");
    for language in ["en", "ja"] {
        std::fs::create_dir_all(lexicons.join(language)).unwrap();
    }
    std::fs::write(lexicons.join("lexicon.toml"), "version = \"v1\"\n").unwrap();
    let term = |id: &str, phrase: &str| {
        format!("category = \"violence\"\n[[term]]\nid = \"{id}\"\npatterns = [\"{phrase}\"]\n")
    };
    std::fs::write(
        lexicons.join("en/violence.toml"),
        term("kill_you", "kill you"),
    )
    .unwrap();
    std::fs::write(
        lexicons.join("ja/violence.toml"),
        term("korosu", "ころすぞ"),
    )
    .unwrap();
    let in_force = tmp.path().join("in-force");
    copy_dir(&lexicons, &in_force);
    let mut config = quiet_config(tmp.path());
    config.lexicons = Some(lexicons.clone());
    let server = TestServer::spawn_with(config).await;
    let mut admin = server.admin().await;
    let before = admin
        .reload_lexicons(pb::ReloadLexiconsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .lexicon_version;
    assert!(before.starts_with("v1+"), "{before}");

    // The Japanese folder goes; the manifest's version is not bumped.
    std::fs::remove_dir_all(lexicons.join("ja")).unwrap();
    let refused = admin
        .reload_lexicons(pb::ReloadLexiconsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("lack what the set in force has: ja"),
        "{refused:?}"
    );
    let mut ingest = server.stream().await;
    let still = ingest.send(fragment("c1", 1, "u1", "ころすぞ", true)).await;
    assert_eq!(still.alerts.len(), 1, "the Japanese terms stay in force");

    // `lexicon check --against` says so too, and fails.
    let check = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_callguard"))
            .args(["lexicon", "check"])
            .arg(&lexicons)
            .arg("--against")
            .arg(&in_force)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ja"),
        "{out:?}"
    );
    assert!(check(&["--allow-removal"]).status.success());

    // Allowed on purpose: a new version, though the manifest says v1 still.
    let after = admin
        .reload_lexicons(pb::ReloadLexiconsRequest {
            allow_removal: true,
        })
        .await
        .unwrap()
        .into_inner()
        .lexicon_version;
    assert!(
        after.starts_with("v1+") && after != before,
        "{before} {after}"
    );
    ingest.close().await;
    server.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
