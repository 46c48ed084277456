//! The console page in a real browser: headless Chromium driven through
//! WebDriver (Debian's `chromium` and `chromium-driver`; `.ci/run` installs
//! them). Skips, saying why, when they are missing.
//!
//! `CALLGUARD_SCREENSHOT=docs/console.png` also writes a screenshot of the
//! page at 1366x768 (committed by hand for the README).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use callguard::auth::{hash_token, Role, TokenEntry};
use callguard::grpc::client::ClientConfig;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const SUPERVISOR: &str = "tok-browser-sv-acme";
const GATEWAY: &str = "tok-browser-gw-acme";
/// Generous: the machine is shared; the time it took is printed instead.
const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on an ephemeral port; killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver { child, url }
}

/// A fresh headless browser with its own profile.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1366,768", "--lang=en-US",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

async fn log_in(client: &Client, page: &str) {
    client.goto(page).await.unwrap();
    let token = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    token.send_keys(SUPERVISOR).await.unwrap();
    client
        .find(Locator::Css("#login-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(client, "#app:not([hidden])").await;
    wait_for(client, "#connection.live").await;
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    let found = client
        .wait()
        .at_most(WAIT)
        .every(Duration::from_millis(20))
        .for_element(Locator::Css(css))
        .await;
    match found {
        Ok(element) => element,
        Err(e) => {
            let page = client
                .execute("return document.body.innerText", Vec::new())
                .await;
            panic!("{css}: {e}; the page shows: {page:?}")
        }
    }
}

async fn count(client: &Client, css: &str) -> usize {
    client.find_all(Locator::Css(css)).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_see_a_call_turn_red_acknowledge_it_and_reload_without_duplicates() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        eprintln!(
            "SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing (apt-get install -y chromium chromium-driver)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(&tmp.path().join("data"));
    let entry = |name: &str, token: &str, role| TokenEntry {
        name: name.into(),
        sha256: hash_token(token),
        role,
        tenant: "acme".into(),
    };
    cfg.tokens = vec![
        entry("sv-acme", SUPERVISOR, Role::Supervisor),
        entry("gw-acme", GATEWAY, Role::Ingest),
    ];
    let server = TestServer::spawn_with(cfg).await;
    let page = format!("http://{}/", server.server.http_addr);
    let driver = driver().await;
    let first = browser(&driver, &tmp.path().join("profile-1")).await;
    let second = browser(&driver, &tmp.path().join("profile-2")).await;
    log_in(&first, &page).await;
    log_in(&second, &page).await;

    // A quiet call, then an abusive one whose transcript carries markup.
    let channel = ClientConfig {
        token: Some(GATEWAY.into()),
        ..ClientConfig::plain(server.url())
    }
    .connect()
    .await
    .unwrap();
    let mut ingest = IngestStream::open(channel).await.unwrap();
    ingest.send(start_event("quiet-1", "acme")).await;
    ingest
        .send(fragment(
            "quiet-1",
            1,
            "u1",
            "請求書の件でお電話しました",
            true,
        ))
        .await;
    ingest.send(start_event("c-red", "acme")).await;
    wait_for(&first, "#calls tr[data-call-id='c-red']").await;
    let sent = Instant::now();
    let hit = ingest
        .send(fragment("c-red", 1, "u1", "<script>ぶっ殺すぞ", true))
        .await;
    let alert = hit.alerts.last().unwrap().clone();
    let row = format!("#feed li[data-alert-id='{}']", alert.alert_id);
    wait_for(&first, "#calls tr[data-call-id='c-red'][data-risk='high']").await;
    wait_for(&first, &row).await;
    eprintln!(
        "browser: call red and alert shown {:?} after the event was sent",
        sent.elapsed()
    );
    // The red call sorts first; the markup is text, not an element.
    let top = first
        .find(Locator::Css("#calls tbody tr"))
        .await
        .unwrap()
        .attr("data-call-id")
        .await
        .unwrap();
    assert_eq!(top.as_deref(), Some("c-red"));
    let text = first
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("<script>"), "{text}");
    assert_eq!(count(&first, "#feed script").await, 0);

    // The first supervisor acknowledges it with a note, using the keyboard.
    first
        .find(Locator::Css(&row))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let detail = format!("#detail li[data-alert-id='{}']", alert.alert_id);
    let note = wait_for(&first, &format!("{detail} input[data-field='note']")).await;
    note.send_keys("taking over").await.unwrap();
    first
        .find(Locator::Css(&format!("{detail} button[data-action='ack']")))
        .await
        .unwrap()
        .send_keys("\u{E007}") // Enter
        .await
        .unwrap();
    let acked = Instant::now();
    wait_for(&first, &format!("{row}[data-handling='acknowledged']")).await;
    // The second one sees it acknowledged, in place.
    wait_for(&second, &format!("{row}[data-handling='acknowledged']")).await;
    eprintln!(
        "browser: acknowledgement seen by the other supervisor {:?} after the click",
        acked.elapsed()
    );
    assert_eq!(count(&second, &row).await, 1);
    let alerts_before = count(&second, "#feed li").await;

    // A reload shows each alert once.
    second.refresh().await.unwrap();
    wait_for(&second, "#app:not([hidden])").await;
    wait_for(&second, "#connection.live").await;
    wait_for(&second, &format!("{row}[data-handling='acknowledged']")).await;
    assert_eq!(count(&second, &row).await, 1);
    assert_eq!(count(&second, "#feed li").await, alerts_before);

    if let Ok(path) = std::env::var("CALLGUARD_SCREENSHOT") {
        // A busier floor for the picture.
        for (i, text) in [
            "ふざけるな、早くしろ",
            "承知しました",
            "土下座しろ",
            "ありがとうございます",
        ]
        .iter()
        .enumerate()
        {
            let call_id = format!("c-{}", i + 2);
            ingest.send(start_event(&call_id, "acme")).await;
            ingest.send(fragment(&call_id, 1, "u1", text, true)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let png = first.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot written to {path}");
    }
    // Japanese UI text.
    let lang = Locator::Css("#lang option[value='ja']");
    first.find(lang).await.unwrap().click().await.unwrap();
    let title = first
        .find(Locator::Css("#calls-title"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, "通話中");

    first.close().await.unwrap();
    second.close().await.unwrap();
    ingest.close().await;
    server.stop().await;
}
