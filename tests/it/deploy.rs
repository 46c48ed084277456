//! What `deploy/` ships: the systemd unit and the Grafana dashboard, held
//! to the binary they deploy and watch. A flag renamed in `serve`, or a
//! metric renamed in `telemetry::metrics`, fails here rather than on a
//! production host or a dashboard gone blank.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// The `[Service]` settings of a unit file, in order (continuation lines
/// joined; a key may repeat, as `SystemCallFilter=` does).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    let mut section = String::new();
    let mut pending = String::new();
    for line in unit.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with(';'))
        {
            continue;
        }
        if let Some(joined) = line.strip_suffix('\\') {
            pending.push_str(joined);
            pending.push(' ');
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_owned();
        } else if section == "Service" {
            let (key, value) = line.split_once('=').expect("key=value");
            settings.push((key.trim().to_owned(), value.trim().to_owned()));
        }
    }
    settings
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The long options `callguard serve --help` lists, each with whether it
/// takes a value and the values it accepts (when it lists them).
fn serve_options() -> Vec<(String, bool, Vec<String>)> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_callguard"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let at = line.find("--")?;
            let mut words = line[at..].split_whitespace();
            let flag = words.next()?.to_owned();
            let takes_value = words.next().is_some_and(|w| w.starts_with('<'));
            let possible = line
                .split_once("[possible values: ")
                .map(|(_, rest)| {
                    rest.trim_end_matches(']')
                        .split(", ")
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Some((flag, takes_value, possible))
        })
        .collect()
}

/// Every flag of the unit's `ExecStart` is one `serve` accepts, with a
/// value it accepts; the hardening is there; and the binary started with
/// exactly those flags (the paths pointed at a scratch directory) serves,
/// reloads on the unit's `ExecReload` signal and stops cleanly on its
/// `KillSignal` well within `TimeoutStopSec`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_unit_starts_serve_with_flags_it_accepts() {
    let unit = std::fs::read_to_string(deploy_file("callguard.service")).unwrap();
    let settings = service_settings(&unit);
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(setting(&settings, key), Some(value), "{key}=");
    }
    let state = setting(&settings, "StateDirectory").expect("StateDirectory=");
    let configuration =
        setting(&settings, "ConfigurationDirectory").expect("ConfigurationDirectory=");

    let exec = setting(&settings, "ExecStart").expect("ExecStart=");
    assert!(
        !exec.contains(['"', '\'', '$']),
        "no quoting or variables to expand: {exec}"
    );
    let mut words = exec.split_whitespace();
    let binary = words.next().unwrap();
    assert!(
        binary.starts_with('/') && binary.ends_with("/callguard"),
        "{binary}"
    );
    assert_eq!(words.next(), Some("serve"));
    let options = serve_options();
    assert!(
        options.iter().any(|(f, ..)| f == "--data-dir"),
        "{options:?}"
    );
    let mut flags = Vec::new();
    let mut words = words.peekable();
    while let Some(flag) = words.next() {
        let (_, takes_value, possible) = options
            .iter()
            .find(|(f, ..)| f == flag)
            .unwrap_or_else(|| panic!("`serve` has no option {flag} (ExecStart: {exec})"));
        let value = if *takes_value {
            let value = words
                .next()
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            assert!(
                possible.is_empty() || possible.iter().any(|p| p == value),
                "{flag} {value}: serve accepts {possible:?}"
            );
            Some(value.to_owned())
        } else {
            None
        };
        flags.push((flag.to_owned(), value));
    }
    let value_of = |flag: &str| {
        flags
            .iter()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.clone())
    };
    // The store is where systemd gives the dynamic user a writable,
    // persistent directory; the config where ConfigurationDirectory is.
    assert_eq!(
        value_of("--data-dir").as_deref(),
        Some(format!("/var/lib/{state}").as_str())
    );
    let config = value_of("--config").expect("--config");
    assert!(
        config.starts_with(&format!("/etc/{configuration}/")),
        "{config}"
    );
    assert_eq!(
        value_of("--log-format").as_deref(),
        Some("json"),
        "journald gets JSON lines"
    );

    // Run it: the same flags, the paths in a scratch directory and the
    // addresses on ephemeral ports (an empty config is the built-in one).
    let tmp = tempfile::tempdir().unwrap();
    let scratch_config = tmp.path().join("serve.toml");
    std::fs::write(&scratch_config, "").unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["serve".into()];
    for (flag, value) in &flags {
        args.push(flag.into());
        match (flag.as_str(), value) {
            ("--config", _) => args.push(scratch_config.clone().into()),
            ("--data-dir", _) => args.push(tmp.path().join("state").into()),
            ("--listen" | "--http", _) => args.push("127.0.0.1:0".into()),
            (_, Some(value)) => args.push(value.into()),
            (_, None) => {}
        }
    }
    for flag in ["--listen", "--http"] {
        if value_of(flag).is_none() {
            args.extend([flag.into(), "127.0.0.1:0".into()]);
        }
    }
    let mut server = ChildServer::spawn_args(args).await;

    let reload = setting(&settings, "ExecReload").expect("ExecReload=");
    assert_eq!(reload, "/bin/kill -HUP $MAINPID");
    server.signal("HUP");
    // A reload compiles every automaton again: seconds in a debug build.
    let mut reloaded = false;
    for _ in 0..1200 {
        if server.log().contains("lexicons and policy reloaded") {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "SIGHUP reloads:\n{}", server.log());

    let kill = setting(&settings, "KillSignal").unwrap_or("SIGTERM");
    let stop: u64 = setting(&settings, "TimeoutStopSec")
        .expect("TimeoutStopSec=")
        .parse()
        .expect("seconds");
    server.signal(kill.trim_start_matches("SIG"));
    let status = server
        .wait_exit(Duration::from_secs(stop))
        .unwrap_or_else(|| panic!("still running {stop} s after {kill}:\n{}", server.log()));
    assert!(status.success(), "{status}:\n{}", server.log());
}

/// `systemd-analyze verify` accepts the unit, and `systemd-analyze
/// security` rates its sandbox "OK" or better (exposure below 2.0 of 10).
/// Skipped, with a message, where systemd-analyze is not installed.
#[test]
fn systemd_analyze_verifies_the_unit_and_rates_its_sandbox() {
    let Ok(version) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(version.status.success());
    // verify insists that ExecStart's binary exists: point it at ours.
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy_file("callguard.service"))
        .unwrap()
        .replace("/usr/local/bin/callguard", env!("CARGO_BIN_EXE_callguard"));
    let path = tmp.path().join("callguard.service");
    std::fs::write(&path, unit).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
    let security = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split_once("exposure level for callguard.service: "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    assert!(exposure < 2.0, "exposure {exposure}:\n{report}");
}

/// Every metric the Grafana dashboard queries is on `/metrics` of a real
/// server (a child process: the metrics recorder is per process) once it
/// has done what the dashboard watches: ingest with an alert, a
/// subscriber, a webhook delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_metrics_the_server_exports() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_file("grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let queried = queried_metrics(&dashboard);
    assert!(queried.len() >= 10, "{queried:?}");

    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let config = tmp.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "[[webhooks]]\nname = \"oncall\"\nurl = \"http://{}/hook\"\nsecret = \"0123456789abcdef0123\"\n",
            receiver.addr
        ),
    )
    .unwrap();
    let server = ChildServer::spawn(&tmp.path().join("data"), Some(&config)).await;
    let channel = format!("http://{}", server.grpc);
    let alerts = callguard::grpc::pb::alerts_client::AlertsClient::connect(channel.clone())
        .await
        .unwrap();
    let mut subscriber = alerts.clone();
    let mut subscription = subscriber
        .subscribe(subscribe_request(0))
        .await
        .unwrap()
        .into_inner();
    let mut ingest = IngestStream::open_plain(server.grpc).await;
    ingest.send(start_event("c1", "acme")).await;
    let raised = ingest
        .send(fragment("c1", 1, "u1", "お前ぶっ殺すぞ", true))
        .await;
    assert!(!raised.alerts.is_empty(), "{raised:?}");
    take(&mut subscription, 1).await;
    // One refusal, so that the rejections panel has a series.
    let refused = ingest.send(end_event("nobody", 1)).await;
    assert!(refused.rejection.is_some(), "{refused:?}");

    let mut missing = BTreeSet::new();
    for _ in 0..100 {
        receiver.wait_for_one().await;
        let metrics = http_get(server.http, "/metrics").await;
        let exported = exported_metrics(&metrics);
        missing = queried.difference(&exported).cloned().collect();
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not have: {missing:?}\n{}",
        http_get(server.http, "/metrics").await
    );
    ingest.close().await;
}

/// The `callguard_…` names in the dashboard's queries (`expr`), with
/// `_bucket` / `_sum` / `_count` read as their histogram.
fn queried_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut exprs = Vec::new();
    collect_exprs(dashboard, &mut exprs);
    assert!(!exprs.is_empty(), "no queries in the dashboard");
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("callguard_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Metric names with samples on a Prometheus text page, histograms under
/// their own name and their `_bucket` / `_sum` / `_count` series.
fn exported_metrics(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .flat_map(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            [name.to_owned(), base.to_owned()]
        })
        .collect()
}

/// A webhook endpoint that answers 200 to every POST and counts them.
struct Receiver {
    addr: std::net::SocketAddr,
    posts: tokio::sync::watch::Receiver<usize>,
}

impl Receiver {
    async fn start() -> Receiver {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (count, posts) = tokio::sync::watch::channel(0usize);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    // Read the head, then the body its Content-Length names.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf);
                        if let Some(head_end) = text.find("\r\n\r\n") {
                            let length = text[..head_end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if buf.len() >= head_end + 4 + length {
                                break;
                            }
                        }
                    }
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    count.send_modify(|c| *c += 1);
                });
            }
        });
        Receiver { addr, posts }
    }

    /// Waits (up to 10 s) until at least one POST has been answered.
    async fn wait_for_one(&self) {
        let mut posts = self.posts.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), posts.wait_for(|n| *n > 0)).await;
    }
}
