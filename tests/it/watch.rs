//! `callguard watch` follows a server across a restart: it reconnects,
//! resumes after the last id it printed, and prints nothing twice.

use callguard::grpc::client::ClientConfig;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callguard::grpc::pb;
use callguard::tools::watch::{watch, WatchOptions};

use crate::support::*;

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The alert lines (status lines start with `--`).
    fn alerts(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with('#'))
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let lines = self.alerts();
            if lines.len() >= n {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("watch printed {:?}", self.lines());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reconnects_and_resumes_without_loss_or_repeat() {
    let tmp = tempfile::tempdir().unwrap();
    let first = TestServer::spawn_with(config(tmp.path())).await;
    let addr = first.server.grpc_addr;
    let printed = Shared::default();
    // What `callguard watch` writes to a pipe: the styles stripped.
    let mut sink = anstream::StripStream::new(Box::new(printed.clone()) as Box<dyn Write + Send>);
    let options = WatchOptions {
        client: ClientConfig::plain(format!("http://{addr}")),
        request: pb::SubscribeRequest::default(),
    };
    let watcher = tokio::spawn(async move { watch(options, &mut sink).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ingest = first.stream().await;
    ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    let lines = printed.wait_for(1).await;
    assert!(
        lines[0].starts_with("#1      alert 1 ") && lines[0].contains("CRITICAL violence"),
        "{lines:?}"
    );
    assert_eq!(
        printed.lines()[0],
        format!("-- connected to http://{addr}: live alerts from now")
    );
    ingest.close().await;
    first.stop().await;

    // Alerts raised while the watcher is disconnected are not lost.
    let mut cfg = config(tmp.path());
    cfg.listen = addr;
    let second = TestServer::spawn_with(cfg).await;
    let mut ingest = second.stream().await;
    ingest
        .send(fragment("c2", 1, "u1", "土下座しろ", true))
        .await;
    let lines = printed.wait_for(2).await;
    assert!(
        lines[1].starts_with("#2 ") && lines[1].contains("excessive_demand"),
        "{lines:?}"
    );
    assert!(
        printed.lines().contains(&format!(
            "-- reconnected to http://{addr}: resuming after event 1"
        )),
        "{:?}",
        printed.lines()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(printed.alerts().len(), 2, "nothing printed twice");
    watcher.abort();
    ingest.close().await;
    second.stop().await;
}

/// Bug 4 of issue 15: `watch` could not show the stored log from the start
/// and took a misspelt category silently (showing nothing, ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_start_shows_the_stored_log_and_unknown_categories_are_refused() {
    let server = TestServer::spawn().await;
    let mut ingest = server.stream().await;
    // A provisional alert on interim text, then its confirmation.
    ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", false))
        .await;
    ingest
        .send(fragment("c1", 2, "u1", "ぶっ殺すぞ", true))
        .await;
    let url = server.url();

    let printed = Shared::default();
    // What `callguard watch` writes to a pipe: the styles stripped.
    let mut sink = anstream::StripStream::new(Box::new(printed.clone()) as Box<dyn Write + Send>);
    let options = WatchOptions {
        client: ClientConfig::plain(url.clone()),
        request: pb::SubscribeRequest {
            from_start: true,
            categories: vec!["violence".into()],
            ..Default::default()
        },
    };
    let watcher = tokio::spawn(async move { watch(options, &mut sink).await });
    let lines = printed.wait_for(2).await;
    assert_eq!(
        printed.lines()[0],
        format!("-- connected to {url}: the stored alerts from the start, then live")
    );
    // Both events of alert 1: the second reads as its update.
    assert!(lines[0].starts_with("#1      alert 1 "), "{lines:?}");
    assert!(lines[0].contains("(provisional)"), "{lines:?}");
    assert!(lines[1].starts_with("#2      alert 1 "), "{lines:?}");
    assert!(lines[1].contains("(confirmed)"), "{lines:?}");
    watcher.abort();

    // A misspelt category: refused with the known ones, watch stops.
    let mut out = Vec::new();
    let options = WatchOptions {
        client: ClientConfig::plain(url),
        request: pb::SubscribeRequest {
            categories: vec!["violense".into()],
            ..Default::default()
        },
    };
    let status = tokio::time::timeout(Duration::from_secs(10), watch(options, &mut out))
        .await
        .expect("watch gives up on a refused request")
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().starts_with(
            "categories: unknown category \"violense\" (the rules in force know violence, threat,"
        ),
        "{}",
        status.message()
    );
    ingest.close().await;
    server.stop().await;
}
