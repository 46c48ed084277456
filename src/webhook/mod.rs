//! Webhooks: alerts POSTed to HTTP endpoints (a Slack channel, a Teams
//! workflow, a ticketing system), configured as `[[webhooks]]` (the
//! entries and their checks are `config::webhook`'s: a config file with a
//! bad entry is refused when it is read).
//!
//! Each webhook is one task that follows the durable alert log exactly as
//! a `Subscribe` client does (`live::follow`: the live bus, and the store
//! whenever it falls behind) and POSTs every alert its filter passes, in
//! `event_id` order, one at a time, signed (`body.rs`). Delivery is at
//! least once:
//!
//! - an alert is finished with when its endpoint answers 2xx, or refuses
//!   it for good (a 3xx or 4xx other than 408 and 429: logged, counted in
//!   `callguard_webhook_rejected_total`, and skipped, so that one bad
//!   request cannot block every later alert); anything else — no
//!   connection, a timeout, 408, 429, 5xx — is retried with exponential
//!   backoff (`retry_min_ms` doubling to `retry_max_ms`, jittered, at
//!   least the `Retry-After` asked for), without end: nothing is dropped
//!   while an endpoint is down;
//! - the offset it has finished with is written to `DATA_DIR/webhooks/
//!   NAME.offset` after each delivery (`offset.rs`), so a restart resumes
//!   after it: no loss, and no flood of old alerts (at most the one in
//!   flight at the stop is sent again; receivers drop it by
//!   `X-Callguard-Event-Id`);
//! - a webhook with no offset yet starts at the log's end: adding one to a
//!   service with a year of alerts does not send that year;
//! - SIGHUP reads `[[webhooks]]` again ([`Webhooks::reload`]): new ones
//!   start, removed ones stop (their offset file stays, so putting one
//!   back resumes it where it stopped), changed ones restart after the
//!   alert they had finished with, and unchanged ones are not touched, so
//!   a reload neither loses an alert nor sends one again.
//!
//! A dead or slow endpoint holds up its own task only: the bus never waits
//! for a receiver (a lagging one is served from the store later), every
//! request has a timeout, and each webhook has its own task and offset.

mod body;
mod client;
mod offset;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use body::{
    render, sign, verify, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_HEADER,
};
pub use offset::OffsetError;
// The entries and their checks are the config's (`config::webhook`).
pub use crate::config::webhook::{BodyKind, Problem, WebhookConfigError, WebhookEntry};

use crate::alert::AlertFilter;
use crate::config::webhook::{check_entries, CheckedEntry};
use crate::live::Service;

/// A checked webhook, ready to run.
pub struct Webhook {
    pub name: String,
    /// What it was built from: a reload leaves a webhook whose entry,
    /// secret and CA file bytes are the same running.
    entry: WebhookEntry,
    ca_digest: Option<[u8; 32]>,
    target: client::Target,
    body: BodyKind,
    secret: Vec<u8>,
    filter: AlertFilter,
    timeout: Duration,
    retry_min: Duration,
    retry_max: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("origin", &self.target.origin())
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

/// Checks every entry (names, URLs, secrets, timings: [`check_entries`])
/// and reads the secrets; the first problem is the error.
pub fn build(entries: &[WebhookEntry]) -> Result<Vec<Webhook>, WebhookConfigError> {
    Ok(check_entries(entries)?
        .into_iter()
        .map(Webhook::from)
        .collect())
}

impl From<CheckedEntry> for Webhook {
    fn from(checked: CheckedEntry) -> Webhook {
        let CheckedEntry {
            entry,
            endpoint,
            secret,
        } = checked;
        Webhook {
            name: entry.name.clone(),
            ca_digest: endpoint.ca_digest,
            target: client::Target::from(endpoint),
            body: entry.body,
            secret,
            filter: AlertFilter {
                tenant: entry.tenant.clone(),
                call_ids: entry.call_ids.clone(),
                categories: entry.categories.clone(),
                min_severity: entry.min_severity,
                agent_id: entry.agent_id.clone(),
                since: None,
            },
            timeout: Duration::from_millis(entry.timeout_ms),
            retry_min: Duration::from_millis(entry.retry_min_ms),
            retry_max: Duration::from_millis(entry.retry_max_ms),
            entry,
        }
    }
}

/// Why the webhooks could not start, or a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookStartError {
    #[error(transparent)]
    Config(#[from] WebhookConfigError),
    #[error(transparent)]
    Offset(#[from] OffsetError),
}

/// Checks `entries` as [`build`] does, and that every category filter
/// names a category the rules in force know (a misspelt one would match
/// nothing, silently).
fn check(service: &Service, entries: &[WebhookEntry]) -> Result<Vec<Webhook>, WebhookConfigError> {
    let hooks = build(entries)?;
    let rules = service.rules();
    for (index, hook) in hooks.iter().enumerate() {
        if let Some(unknown) = hook
            .filter
            .categories
            .iter()
            .find(|c| rules.engine.lexicon().category(c).is_none())
        {
            return Err(WebhookConfigError {
                index,
                name: hook.name.clone(),
                field: "categories",
                problem: Problem::UnknownCategory(unknown.clone()),
            });
        }
    }
    Ok(hooks)
}

/// The webhooks in force: one task each, by name. Started with the
/// service; [`Webhooks::reload`] replaces them from a new `[[webhooks]]`
/// list (SIGHUP) without touching those that did not change.
pub struct Webhooks {
    service: Arc<Service>,
    /// A tokio mutex: a reload holds it while stopped tasks save their
    /// offsets, so two reloads (or a reload and the stop) never interleave.
    running: tokio::sync::Mutex<HashMap<String, Running>>,
    /// Where the tasks run: the console's low-priority runtime in `serve`,
    /// so a burst of deliveries (a slow endpoint back, thousands of
    /// alerts to catch up) waits behind ingest instead of in front of it.
    runtime: tokio::runtime::Handle,
}

/// One webhook's task and the means to stop it alone.
struct Running {
    hook: Arc<Webhook>,
    file: Arc<offset::OffsetFile>,
    stop: oneshot::Sender<()>,
    /// Ends with the last event id the webhook finished with.
    task: JoinHandle<u64>,
}

/// What a reload did, by webhook name (sorted).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    pub unchanged: Vec<String>,
}

impl Webhooks {
    /// Starts one task per configured webhook on `runtime`; each ends when
    /// the service stops (or a reload removes or changes it), after saving
    /// its offset.
    pub fn start(
        service: &Arc<Service>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Webhooks, WebhookStartError> {
        let hooks = check(service, &service.config.webhooks)?;
        let mut webhooks = Webhooks {
            service: service.clone(),
            running: tokio::sync::Mutex::new(HashMap::with_capacity(hooks.len())),
            runtime,
        };
        for hook in hooks {
            let (file, saved) = offset::OffsetFile::open(&service.config.data_dir, &hook.name)?;
            let name = hook.name.clone();
            let running = webhooks.spawn(hook, Arc::new(file), saved)?;
            webhooks.running.get_mut().insert(name, running);
        }
        Ok(webhooks)
    }

    /// Replaces the webhooks in force by `entries`: starts the new ones
    /// (at the log's end, or after their offset file's event if one is
    /// left from an earlier run), stops the removed ones, restarts the
    /// changed ones after the event they had finished with, and leaves
    /// the unchanged ones running (their position, retries and offset
    /// untouched). "Changed" is any key of the entry, the secret a
    /// `secret_file` or `secret_env` holds now, or the bytes of its
    /// `ca_file` (a renewed private CA under the same path).
    ///
    /// Everything that can refuse is checked before anything stops: on an
    /// error the webhooks in force all stay.
    pub async fn reload(&self, entries: &[WebhookEntry]) -> Result<Reloaded, WebhookStartError> {
        let hooks = check(&self.service, entries)?;
        let mut running = self.running.lock().await;
        let mut done = Reloaded::default();
        let mut wanted = HashMap::with_capacity(hooks.len());
        let mut fresh = Vec::new();
        let mut changed = Vec::new();
        for hook in hooks {
            wanted.insert(hook.name.clone(), ());
            match running.get(&hook.name) {
                Some(old)
                    if old.hook.entry == hook.entry
                        && old.hook.secret == hook.secret
                        && old.hook.ca_digest == hook.ca_digest =>
                {
                    done.unchanged.push(hook.name.clone());
                }
                Some(_) => changed.push(hook),
                None => {
                    let (file, saved) =
                        offset::OffsetFile::open(&self.service.config.data_dir, &hook.name)?;
                    fresh.push((hook, file, saved));
                }
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|name| !wanted.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = running.remove(&name) {
                old.end().await;
                tracing::info!(webhook = %name, "webhook stopped: no longer configured");
                done.stopped.push(name);
            }
        }
        for hook in changed {
            let Some(old) = running.remove(&hook.name) else {
                continue;
            };
            let file = old.file.clone();
            let position = old.end().await;
            let name = hook.name.clone();
            match self.spawn(hook, file, Some(position)) {
                Ok(new) => {
                    running.insert(name.clone(), new);
                    done.restarted.push(name);
                }
                Err(error) => {
                    tracing::error!(webhook = %name, %error, "webhook changed but cannot restart; it is stopped")
                }
            }
        }
        for (hook, file, saved) in fresh {
            let name = hook.name.clone();
            match self.spawn(hook, Arc::new(file), saved) {
                Ok(new) => {
                    running.insert(name.clone(), new);
                    done.started.push(name);
                }
                Err(error) => {
                    tracing::error!(webhook = %name, %error, "new webhook cannot start")
                }
            }
        }
        for list in [
            &mut done.started,
            &mut done.restarted,
            &mut done.stopped,
            &mut done.unchanged,
        ] {
            list.sort();
        }
        Ok(done)
    }

    /// Waits for every task to end (they end on the service's stop, after
    /// saving their offsets).
    pub async fn stopped(&self) {
        let running: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for r in running {
            let _ = r.task.await;
        }
    }

    /// Starts `hook`'s task on the webhooks' runtime, after `saved` (its
    /// offset file's event) or at the log's end.
    fn spawn(
        &self,
        hook: Webhook,
        file: Arc<offset::OffsetFile>,
        saved: Option<u64>,
    ) -> Result<Running, OffsetError> {
        let hook = Arc::new(hook);
        let (stop, stopped) = oneshot::channel();
        let task = worker::spawn(
            self.service.clone(),
            &self.runtime,
            hook.clone(),
            file.clone(),
            saved,
            stopped,
        )?;
        Ok(Running {
            hook,
            file,
            stop,
            task,
        })
    }
}

impl Running {
    /// Stops this webhook alone and waits until its offset is saved; the
    /// last event id it finished with.
    async fn end(self) -> u64 {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(position) => position,
            // The task does not panic by design; if it did, its last
            // saved offset is the safe place to resume (at least once).
            Err(_) => self.file.saved(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Severity;

    fn entry(name: &str) -> WebhookEntry {
        WebhookEntry {
            name: name.into(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: Some("0123456789abcdef0123".into()),
            ..WebhookEntry::default()
        }
    }

    #[test]
    fn entries_are_checked_and_errors_name_the_key() {
        let ok = build(&[entry("pager"), entry("chat")]).unwrap();
        assert_eq!(ok.len(), 2);
        type Edit = fn(&mut Vec<WebhookEntry>);
        let cases: &[(&str, Edit, &str)] = &[
            (
                "no name",
                |e| e[0].name.clear(),
                "webhooks[0]: name: required",
            ),
            (
                "bad name",
                |e| e[0].name = "../etc".into(),
                "webhooks[0] (../etc): name: \"../etc\": use 1 to 64",
            ),
            (
                "duplicate",
                |e| e.push(entry("pager")),
                "webhooks[1] (pager): name: also the name of webhooks[0]",
            ),
            (
                "no url",
                |e| e[0].url.clear(),
                "webhooks[0] (pager): url: required",
            ),
            (
                "bad url",
                |e| e[0].url = "hooks.slack.com/services/T0".into(),
                "url: not a usable URL: no scheme",
            ),
            ("no secret", |e| e[0].secret = None, "secret: required"),
            (
                "empty secret",
                |e| e[0].secret = Some(String::new()),
                "secret: empty",
            ),
            (
                "short secret",
                |e| e[0].secret = Some("short".into()),
                "secret: 5 bytes",
            ),
            (
                "two secrets",
                |e| e[0].secret_env = Some("X".into()),
                "secret: give exactly one of",
            ),
            (
                "unset env",
                |e| {
                    e[0].secret = None;
                    e[0].secret_env = Some("CALLGUARD_TEST_UNSET_WEBHOOK_SECRET".into());
                },
                "secret_env: environment variable CALLGUARD_TEST_UNSET_WEBHOOK_SECRET is not set",
            ),
            (
                "missing file",
                |e| {
                    e[0].secret = None;
                    e[0].secret_file = Some("/nonexistent/hook.secret".into());
                },
                "secret_file: cannot read /nonexistent/hook.secret",
            ),
            (
                "tiny timeout",
                |e| e[0].timeout_ms = 1,
                "timeout_ms: must be at least 100",
            ),
            (
                "retry order",
                |e| e[0].retry_max_ms = 5,
                "retry_max_ms: below retry_min_ms",
            ),
        ];
        for (case, edit, want) in cases {
            let mut entries = vec![entry("pager")];
            edit(&mut entries);
            let e = build(&entries).unwrap_err().to_string();
            assert!(e.contains(want), "{case}: {e}");
        }
    }

    /// Through the config file, as a user meets the errors.
    #[test]
    fn config_file_entries_and_their_errors() {
        use crate::config::ServeConfig;
        let good = r#"
[[webhooks]]
name = "acme-oncall"
url = "https://hooks.slack.com/services/T000/B000/XXXX"
body = "slack"
secret = "0123456789abcdef"
tenant = "acme"
min_severity = "critical"
categories = ["violence", "threat"]

[[webhooks]]
name = "tickets"
url = "http://127.0.0.1:8080/callguard"
secret = "0123456789abcdef"
"#;
        let config = ServeConfig::parse(good, "serve.toml").unwrap();
        let hooks = build(&config.webhooks).unwrap();
        assert_eq!(hooks[0].body, BodyKind::Slack);
        assert_eq!(hooks[0].filter.min_severity, Some(Severity::Critical));
        assert_eq!(hooks[1].body, BodyKind::Json);
        assert_eq!(hooks[1].timeout, Duration::from_secs(10));
        let cases = [
            (
                good.replace("\"slack\"", "\"discord\""),
                "serve.toml:5: unknown variant `discord`, expected one of `json`, `slack`, `teams`",
            ),
            (
                good.replace("\"tickets\"", "\"acme-oncall\""),
                "webhooks: webhooks[1] (acme-oncall): name: also the name of webhooks[0]",
            ),
            (
                good.replacen("0123456789abcdef", "", 1),
                "webhooks: webhooks[0] (acme-oncall): secret: empty",
            ),
            (
                good.replace("http://127.0.0.1:8080/callguard", "127.0.0.1:8080"),
                "webhooks[1] (tickets): url: not a usable URL: no scheme",
            ),
            (
                good.replace("tenant = ", "tennant = "),
                "unknown field `tennant`",
            ),
        ];
        for (text, want) in cases {
            let e = ServeConfig::parse(&text, "serve.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn secret_file_drops_the_trailing_newline_and_debug_hides_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("hook.secret");
        std::fs::write(&path, "0123456789abcdef\n").unwrap();
        let mut e = entry("pager");
        e.secret = None;
        e.secret_file = Some(path);
        assert_eq!(build(&[e]).unwrap()[0].secret, b"0123456789abcdef");
        let mut e = entry("chat");
        e.url = "http://hooks.example.com/services/T000/B000/XXXX".into();
        let shown = format!("{e:?} {:?}", build(&[e.clone()]).unwrap()[0]);
        assert!(!shown.contains("0123456789abcdef0123"), "{shown}");
        assert!(!shown.contains("XXXX"), "{shown}");
        assert!(shown.contains("http://hooks.example.com"), "{shown}");
    }
}
