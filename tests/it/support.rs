//! `TestServer::spawn`: a real callguard server on 127.0.0.1 with ephemeral
//! ports and its own data directory, plus typed client helpers.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callguard::grpc::client::{AuthChannel, ClientConfig};
use callguard::grpc::pb;
use callguard::serve::{start, RunningServer, ServeConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

pub struct TestServer {
    pub server: RunningServer,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server on built-in lexicons and policy, in a fresh data directory.
    pub async fn spawn() -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut server = TestServer::spawn_with(config(&dir)).await;
        server._tmp = Some(tmp);
        server
    }

    pub async fn spawn_with(config: ServeConfig) -> TestServer {
        let server = start(config).await.expect("server starts");
        TestServer { server, _tmp: None }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.grpc_addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn alerts(&self) -> pb::alerts_client::AlertsClient<Channel> {
        pb::alerts_client::AlertsClient::new(self.channel().await)
    }

    /// Subscribes to every alert after `after_event_id`.
    pub async fn subscription(
        &self,
        after_event_id: u64,
    ) -> tonic::Streaming<pb::SubscribeResponse> {
        self.alerts()
            .await
            .subscribe(subscribe_request(after_event_id))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn admin(&self) -> pb::admin_client::AdminClient<Channel> {
        pb::admin_client::AdminClient::new(self.channel().await)
    }

    /// Opens an ingest stream.
    pub async fn stream(&self) -> IngestStream {
        let channel = ClientConfig::plain(self.url()).connect().await.unwrap();
        IngestStream::open(channel).await.unwrap()
    }

    pub async fn stop(self) {
        self.server.stop().await.unwrap();
    }
}

/// The test configuration: ephemeral ports, the given data directory.
pub fn config(data_dir: &Path) -> ServeConfig {
    ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        http: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.to_path_buf(),
        ..ServeConfig::default()
    }
}

pub struct IngestStream {
    tx: mpsc::Sender<pb::TranscriptEvent>,
    replies: tonic::Streaming<pb::StreamTranscriptResponse>,
}

/// The replies to one event: its ack or rejection, and its alerts.
#[derive(Debug, Default)]
pub struct Replies {
    pub ack: Option<pb::Ack>,
    pub rejection: Option<pb::Rejection>,
    pub alerts: Vec<pb::Alert>,
}

impl IngestStream {
    /// Opens a stream on `channel` (which may carry a token).
    pub async fn open(channel: AuthChannel) -> Result<IngestStream, tonic::Status> {
        let mut client = pb::ingest_client::IngestClient::new(channel);
        let (tx, rx) = mpsc::channel(256);
        let replies = client
            .stream_transcript(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(IngestStream { tx, replies })
    }

    /// Opens a stream on a plain (no TLS, no token) connection to `addr`.
    pub async fn open_plain(addr: std::net::SocketAddr) -> IngestStream {
        let channel = ClientConfig::plain(format!("http://{addr}"))
            .connect()
            .await
            .unwrap();
        IngestStream::open(channel).await.unwrap()
    }

    /// Sends one event and reads its replies (ack or rejection, then the
    /// alerts that follow it, until the next event's answer would come).
    pub async fn send(&mut self, event: pb::TranscriptEvent) -> Replies {
        self.tx.send(event).await.unwrap();
        let mut replies = Replies::default();
        let first = self.next().await.expect("an answer to every event");
        match first {
            pb::stream_transcript_response::Response::Ack(a) => replies.ack = Some(a),
            pb::stream_transcript_response::Response::Rejection(r) => replies.rejection = Some(r),
            other => panic!("expected ack or rejection first, got {other:?}"),
        }
        // Alerts of this event follow its ack at once; wait briefly for them.
        while let Ok(Some(next)) =
            tokio::time::timeout(Duration::from_millis(150), self.next()).await
        {
            match next {
                pb::stream_transcript_response::Response::Alert(a) => replies.alerts.push(a),
                other => panic!("unexpected reply {other:?}"),
            }
        }
        replies
    }

    /// Sends one event and reads its answer: its ack and then exactly
    /// `alerts` alerts, or a rejection alone. No wait for alerts that might
    /// follow, so a test can send thousands in turn.
    pub async fn send_expecting(&mut self, event: pb::TranscriptEvent, alerts: usize) -> Replies {
        use pb::stream_transcript_response::Response;
        self.tx.send(event).await.unwrap();
        let mut replies = Replies::default();
        match self
            .next_within_30s()
            .await
            .expect("an answer to every event")
        {
            Response::Ack(a) => replies.ack = Some(a),
            Response::Rejection(r) => {
                return Replies {
                    rejection: Some(r),
                    ..replies
                }
            }
            other => panic!("expected ack or rejection first, got {other:?}"),
        }
        while replies.alerts.len() < alerts {
            match self.next_within_30s().await.expect("the event's alerts") {
                Response::Alert(a) => replies.alerts.push(a),
                other => panic!("expected an alert, got {other:?}"),
            }
        }
        replies
    }

    async fn next_within_30s(&mut self) -> Option<pb::stream_transcript_response::Response> {
        tokio::time::timeout(Duration::from_secs(30), self.next())
            .await
            .expect("an answer within 30 s")
    }

    async fn next(&mut self) -> Option<pb::stream_transcript_response::Response> {
        self.replies
            .message()
            .await
            .unwrap()
            .and_then(|r| r.response)
    }

    /// Closes the sending side and waits for the server to end the stream.
    pub async fn close(mut self) {
        drop(self.tx);
        while self.replies.message().await.ok().flatten().is_some() {}
    }
}

pub fn start_event(call_id: &str, tenant: &str) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::Start(pb::CallStart {
            call_id: call_id.into(),
            tenant: tenant.into(),
            agent_id: "a1".into(),
            language: "ja".into(),
            ..Default::default()
        })),
    }
}

pub fn fragment(
    call_id: &str,
    seq: u64,
    utterance: &str,
    text: &str,
    is_final: bool,
) -> pb::TranscriptEvent {
    fragment_in("ja", call_id, seq, utterance, text, is_final)
}

pub fn fragment_in(
    language: &str,
    call_id: &str,
    seq: u64,
    utterance: &str,
    text: &str,
    is_final: bool,
) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::Fragment(pb::Fragment {
            call_id: call_id.into(),
            seq,
            speaker: pb::Speaker::Customer as i32,
            text: text.into(),
            is_final,
            utterance_id: utterance.into(),
            start_ms: seq * 1000,
            end_ms: seq * 1000 + 900,
            language: language.into(),
            loudness_dbfs: None,
        })),
    }
}

pub fn end_event(call_id: &str, end_ms: u64) -> pb::TranscriptEvent {
    pb::TranscriptEvent {
        event: Some(pb::transcript_event::Event::End(pb::CallEnd {
            call_id: call_id.into(),
            end_ms,
        })),
    }
}

/// Reads `n` alerts from a subscription (with a timeout per alert).
pub async fn take(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    n: usize,
) -> Vec<pb::Alert> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("alert within 5 s")
            .unwrap()
            .expect("stream open");
        out.push(next.alert.unwrap());
    }
    out
}

/// Asserts that no further alert arrives within a short while.
pub async fn assert_quiet(stream: &mut tonic::Streaming<pb::SubscribeResponse>) {
    if let Ok(next) = tokio::time::timeout(Duration::from_millis(300), stream.message()).await {
        panic!("unexpected alert: {next:?}");
    }
}

pub fn subscribe_request(after_event_id: u64) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        after_event_id,
        ..Default::default()
    }
}

/// `callguard serve` as a child process on ephemeral ports; killed
/// (SIGKILL) when dropped, so no test leaves one behind, even on a panic.
pub struct ChildServer {
    child: Child,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl ChildServer {
    pub async fn spawn(data_dir: &Path, config: Option<&Path>) -> ChildServer {
        ChildServer::spawn_args(ChildServer::serve_args(data_dir, config)).await
    }

    /// The arguments of `callguard serve` on ephemeral loopback ports,
    /// logging JSON, on `data_dir` (and `config`).
    pub fn serve_args(data_dir: &Path, config: Option<&Path>) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ]
        .map(Into::into)
        .into();
        args.push(data_dir.into());
        if let Some(config) = config {
            args.extend(["--config".into(), config.into()]);
        }
        args
    }

    /// `callguard ARGS…`, which must log JSON (`--log-format json`).
    pub async fn spawn_args(args: Vec<std::ffi::OsString>) -> ChildServer {
        ChildServer::try_start(Command::new(env!("CARGO_BIN_EXE_callguard")), args)
            .await
            .unwrap_or_else(|log| panic!("callguard serve did not log its addresses:\n{log}"))
    }

    /// `command ARGS…` — callguard itself, or a program that execs it
    /// (`nsenter … callguard`) — once it logs its addresses; what it
    /// logged when it exits (or stays silent for 60 s) instead.
    pub async fn try_start(
        mut command: Command,
        args: Vec<std::ffi::OsString>,
    ) -> Result<ChildServer, String> {
        command
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("callguard serve starts");
        let stderr = child.stderr.take().unwrap();
        let mut server = ChildServer {
            child,
            grpc: ([0, 0, 0, 0], 0).into(),
            http: ([0, 0, 0, 0], 0).into(),
            log: Arc::new(Mutex::new(String::new())),
        };
        let log = server.log.clone();
        let (found, addrs) = tokio::sync::oneshot::channel();
        let seen = log.clone();
        // Reads stderr to the end, so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let addrs = serving_addrs(&line);
                {
                    let mut seen = seen.lock().unwrap();
                    if seen.len() < 64 * 1024 {
                        seen.push_str(&line);
                        seen.push('\n');
                    }
                }
                if let Some(addrs) = addrs {
                    if let Some(found) = found.take() {
                        let _ = found.send(addrs);
                    }
                }
            }
        });
        match tokio::time::timeout(Duration::from_secs(60), addrs).await {
            Ok(Ok((grpc, http))) => (server.grpc, server.http) = (grpc, http),
            _ => return Err(log.lock().unwrap().clone()),
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far (the first 64 KiB).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends `signal` (a name as `kill -s` takes it: HUP, TERM).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (up to `within`) for the process to exit; its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The addresses of the JSON log line "callguard serving".
fn serving_addrs(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "callguard serving" {
        return None;
    }
    let addr = |key: &str| fields.get(key)?.as_str()?.parse().ok();
    Some((addr("grpc_addr")?, addr("http_addr")?))
}

/// A plain HTTP/1.1 GET on a fresh connection: the whole response, status
/// line and headers included.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}
