//! The service's shared state: the rule set in force, the live call table,
//! the durable alert log and the live alert bus — and the one path every
//! alert takes: call table → ids → store (committed) → bus → replies.
//!
//! Locks: `calls` then `log`, always in that order, never held across an
//! `.await`. The log lock is held while an alert batch is appended *and*
//! published, so the bus carries alerts in event-id order and a subscriber
//! that reads the store's head under the same lock sees no gap and no
//! duplicate when it switches to live.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use tokio::sync::broadcast;

use super::config::ServeConfig;
use crate::alert::{Alert, AlertEvent};
use crate::call::{Applied, CallSnapshot, CallTable, CallerHasher, TableError};
use crate::engine::{Engine, Scratch};
use crate::event::{CallStart, Event};
use crate::lexicon::{Lexicon, LexiconError};
use crate::policy::{Policy, PolicyError};
use crate::store::{AlertLog, StoreError};

/// The rule set in force: swapped whole on reload.
pub struct Rules {
    pub engine: Engine,
    pub policy: Policy,
}

/// Why lexicons and policy could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Lexicon(#[from] LexiconError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl Rules {
    /// Loads the configured lexicons and policy (or the built-in ones).
    pub fn load(config: &ServeConfig) -> Result<Rules, ReloadError> {
        let lexicon = match &config.lexicons {
            Some(dir) => Lexicon::load_dir(dir)?,
            None => Lexicon::embedded()?,
        };
        let policy = match &config.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::builtin(),
        };
        Ok(Rules {
            engine: Engine::build(lexicon)?,
            policy,
        })
    }
}

/// An event's outcome, as the ingest stream reports it.
pub enum Outcome {
    Accepted {
        duplicate: bool,
        alerts: Vec<Arc<Alert>>,
    },
    Refused(TableError),
    /// The event is for a tenant outside the sender's token scope.
    Denied(String),
    StoreFailed(StoreError),
}

/// Per-call bookkeeping the call table does not keep: service-wide alert
/// ids of the call's call-local ones.
#[derive(Default)]
struct CallIds {
    alert_ids: HashMap<u32, u64>,
}

struct Calls {
    table: CallTable,
    ids: HashMap<String, CallIds>,
    /// Recently ended calls, newest last: (when it ended, snapshot, ids).
    ended: VecDeque<(Instant, CallSnapshot, Vec<u64>)>,
}

pub struct Service {
    pub config: ServeConfig,
    rules: RwLock<Arc<Rules>>,
    calls: Mutex<Calls>,
    log: Mutex<AlertLog>,
    bus: broadcast::Sender<Arc<Alert>>,
    hasher: CallerHasher,
    started: Instant,
    ready: AtomicBool,
    /// Set once when the service begins to stop; long-lived streams
    /// (subscriptions) end on it.
    stopping: tokio::sync::watch::Sender<bool>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it:
/// one failed request must not take the whole service down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Service {
    pub fn new(
        config: ServeConfig,
        rules: Rules,
        mut log: AlertLog,
    ) -> Result<Service, super::ServeError> {
        // The caller-id key: from its own file when configured (so a copy
        // of the data directory alone cannot be brute-forced for phone
        // numbers), else the installation secret in the store.
        let secret = match &config.caller_key_file {
            Some(path) => read_caller_key(path)?,
            None => log.installation_secret()?.to_vec(),
        };
        let (bus, _) = broadcast::channel(config.limits.subscriber_buffer);
        let table = CallTable::new(config.limits.max_active_calls, config.limits.max_text_bytes);
        Ok(Service {
            config,
            rules: RwLock::new(Arc::new(rules)),
            calls: Mutex::new(Calls {
                table,
                ids: HashMap::new(),
                ended: VecDeque::new(),
            }),
            log: Mutex::new(log),
            bus,
            hasher: CallerHasher::new(&secret),
            started: Instant::now(),
            ready: AtomicBool::new(true),
            stopping: tokio::sync::watch::channel(false).0,
        })
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Swaps in a new rule set; calls continue on it from their next event.
    pub fn replace_rules(&self, rules: Rules) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
    }

    /// Tells long-lived streams that the service is stopping.
    pub fn begin_stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves when the service begins to stop.
    pub async fn stopping(&self) {
        let mut rx = self.stopping.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Is the service able to take events (store writable)?
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Applies one event and publishes its alerts. `arrived` is when the
    /// event reached the server (for the latency histogram). A sender
    /// scoped to one tenant (`scope`) may only start, feed and end that
    /// tenant's calls; a start that names no tenant gets it.
    pub fn apply(
        &self,
        mut event: Event,
        scope: Option<&str>,
        arrived: Instant,
        scratch: &mut Scratch,
    ) -> Outcome {
        let rules = self.rules();
        if let Event::Start(start) = &mut event {
            start.started_at.get_or_insert_with(jiff::Timestamp::now);
        }
        let kind = match &event {
            Event::Start(_) => "start",
            Event::Fragment(_) => "fragment",
            Event::End(_) => "end",
        };
        let mut calls = lock(&self.calls);
        let window = jiff::SignedDuration::from_hours(
            rules.policy.for_tenant("").repeat_callers.window_hours as i64,
        );
        let mut store_error = None;
        let mut caller_calls = |start: &crate::event::CallStart| {
            let (Some(caller), Some(at)) = (start.caller_id.as_deref(), start.started_at) else {
                return 0;
            };
            let Some(key) = self.hasher.key(caller) else {
                return 0;
            };
            match lock(&self.log).record_call(&key, at, window) {
                Ok(n) => n,
                Err(e) => {
                    store_error = Some(e);
                    0
                }
            }
        };
        // A fragment that opens a call implicitly opens it in the sender's tenant.
        let implicit_start = match scope.map(|own| claim_tenant(&mut event, &calls.table, own)) {
            Some(Err(refusal)) => return Outcome::Denied(refusal),
            Some(Ok(start)) => start,
            None => None,
        };
        let mut routed = Ok(None);
        if let Some(start) = implicit_start {
            routed = calls
                .table
                .apply(
                    &Event::Start(start),
                    self.now_ms(),
                    &rules.engine,
                    &rules.policy,
                    &mut caller_calls,
                    scratch,
                )
                .map(Some);
        }
        let routed = routed.and_then(|opened| {
            let mut routed = calls.table.apply(
                &event,
                self.now_ms(),
                &rules.engine,
                &rules.policy,
                &mut caller_calls,
                scratch,
            )?;
            if let (Some(opened), Applied::Accepted(alerts)) = (opened, &mut routed.applied) {
                if let Applied::Accepted(first) = opened.applied {
                    alerts.splice(0..0, first);
                }
            }
            Ok(routed)
        });
        if let Some(e) = store_error {
            self.store_failed("record_call", &e);
        }
        let routed = match routed {
            Ok(routed) => routed,
            Err(e) => return Outcome::Refused(e),
        };
        metrics::counter!(super::metrics::EVENTS, "type" => kind).increment(1);
        metrics::gauge!(super::metrics::ACTIVE_CALLS).set(calls.table.len() as f64);
        let (duplicate, events) = match routed.applied {
            Applied::Duplicate => (true, Vec::new()),
            Applied::Accepted(events) => (false, events),
        };
        let snapshot = routed.snapshot;
        let ended = matches!(event, Event::End(_));
        let result = self.publish(&mut calls, &snapshot, events, &rules.engine, arrived);
        if ended {
            self.remember_ended(&mut calls, snapshot);
        }
        match result {
            Ok(alerts) => Outcome::Accepted { duplicate, alerts },
            Err(e) => Outcome::StoreFailed(e),
        }
    }

    /// Ids, store, bus: the path of every alert.
    fn publish(
        &self,
        calls: &mut Calls,
        snapshot: &CallSnapshot,
        events: Vec<AlertEvent>,
        engine: &Engine,
        arrived: Instant,
    ) -> Result<Vec<Arc<Alert>>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let ids = calls.ids.entry(snapshot.call_id.clone()).or_default();
        let raised_at = jiff::Timestamp::now();
        let mut alerts: Vec<Alert> = events
            .iter()
            .map(|e| Alert {
                event_id: 0,
                alert_id: ids.alert_ids.get(&e.local_id).copied().unwrap_or(0),
                status: e.status,
                call_id: snapshot.call_id.clone(),
                tenant: snapshot.tenant.clone(),
                agent_id: snapshot.agent_id.clone(),
                category: e.category.to_string(),
                severity: e.severity,
                rule: e.rule.to_string(),
                lexicon_version: engine.version().to_owned(),
                at_ms: e.at_ms,
                raised_at,
                evidence: e.evidence.clone(),
                action: e.action.to_string(),
            })
            .collect();
        let mut log = lock(&self.log);
        if let Err(e) = log.append(&mut alerts) {
            drop(log);
            self.store_failed("append", &e);
            return Err(e);
        }
        if !self.ready.swap(true, Ordering::Relaxed) {
            tracing::info!("alert store writable again; /readyz reports ready");
        }
        let mut published = Vec::with_capacity(alerts.len());
        for (event, alert) in events.iter().zip(alerts) {
            ids.alert_ids.insert(event.local_id, alert.alert_id);
            metrics::counter!(super::metrics::ALERTS, "category" => alert.category.clone(), "severity" => alert.severity.as_str())
                .increment(1);
            let alert = Arc::new(alert);
            // No receiver is fine: nobody is subscribed right now.
            let _ = self.bus.send(alert.clone());
            published.push(alert);
        }
        drop(log);
        metrics::histogram!(super::metrics::INGEST_TO_ALERT)
            .record(arrived.elapsed().as_secs_f64());
        Ok(published)
    }

    fn store_failed(&self, op: &'static str, e: &StoreError) {
        self.ready.store(false, Ordering::Relaxed);
        metrics::counter!(super::metrics::STORE_ERRORS, "op" => op).increment(1);
        tracing::error!(op, error = %e, "alert store failed; /readyz reports not ready");
    }

    fn remember_ended(&self, calls: &mut Calls, snapshot: CallSnapshot) {
        let ids = calls.ids.remove(&snapshot.call_id).unwrap_or_default();
        let alert_ids = global_ids(&snapshot, &ids);
        calls.ended.push_back((Instant::now(), snapshot, alert_ids));
        while calls.ended.len() > self.config.limits.recent_ended_calls {
            calls.ended.pop_front();
        }
    }

    /// Closes idle calls (their provisional alerts settle) and forgets
    /// ended calls past their keep time. Run periodically.
    pub fn sweep(&self) {
        let rules = self.rules();
        let mut calls = lock(&self.calls);
        let closed = calls.table.close_idle(self.now_ms(), &rules.policy);
        for (snapshot, events) in closed {
            tracing::info!(call_id = %snapshot.call_id, "call closed after idle timeout");
            let _ = self.publish(&mut calls, &snapshot, events, &rules.engine, Instant::now());
            self.remember_ended(&mut calls, snapshot);
        }
        let keep = std::time::Duration::from_secs(self.config.limits.recent_ended_seconds);
        while calls
            .ended
            .front()
            .is_some_and(|(at, ..)| at.elapsed() > keep)
        {
            calls.ended.pop_front();
        }
        metrics::gauge!(super::metrics::ACTIVE_CALLS).set(calls.table.len() as f64);
    }

    /// Applies retention to the store.
    pub fn purge(&self) {
        let days = i64::from(self.config.retention_days);
        let before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
        match lock(&self.log).purge_before(before) {
            Ok(n) if n > 0 => tracing::info!(rows = n, "retention: purged old alerts"),
            Ok(_) => {}
            Err(e) => self.store_failed("purge", &e),
        }
    }

    /// Active (and, if asked, recently ended) calls with service-wide alert ids.
    pub fn list_calls(
        &self,
        tenant: Option<&str>,
        include_ended: bool,
    ) -> Vec<(CallSnapshot, Vec<u64>)> {
        let calls = lock(&self.calls);
        let empty = CallIds::default();
        let mut out: Vec<(CallSnapshot, Vec<u64>)> = calls
            .table
            .snapshots()
            .into_iter()
            .map(|s| {
                let ids = global_ids(&s, calls.ids.get(&s.call_id).unwrap_or(&empty));
                (s, ids)
            })
            .collect();
        if include_ended {
            out.extend(
                calls
                    .ended
                    .iter()
                    .map(|(_, s, ids)| (s.clone(), ids.clone())),
            );
        }
        out.retain(|(s, _)| tenant.is_none_or(|t| s.tenant == t));
        out
    }

    pub fn find_call(&self, call_id: &str) -> Option<(CallSnapshot, Vec<u64>)> {
        self.list_calls(None, true)
            .into_iter()
            .rev()
            .find(|(s, _)| s.call_id == call_id)
    }

    /// A new receiver of live alerts.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<Alert>> {
        self.bus.subscribe()
    }

    /// Runs `f` with the store locked (no publication can interleave).
    pub fn with_log<R>(&self, f: impl FnOnce(&mut AlertLog) -> R) -> R {
        f(&mut lock(&self.log))
    }
}

/// Reads a caller-id key file: at least 32 bytes of secret.
fn read_caller_key(path: &std::path::Path) -> Result<Vec<u8>, super::ServeError> {
    let bad =
        |message: String| super::ServeError::CallerKey(format!("{}: {message}", path.display()));
    let key = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if key.len() < 32 {
        return Err(bad(format!(
            "{} bytes; needs at least 32 random bytes (e.g. head -c 32 /dev/urandom > FILE)",
            key.len()
        )));
    }
    Ok(key)
}

/// Holds `event` to the tenant `own`: fills in a start's missing tenant,
/// refuses another tenant's call, and returns the start that opens an
/// unknown call of a fragment in `own`.
fn claim_tenant(
    event: &mut Event,
    table: &CallTable,
    own: &str,
) -> Result<Option<CallStart>, String> {
    let refuse = |tenant: &str| {
        Err(format!(
            "tenant: this token sends for tenant {own:?}, not {tenant:?}"
        ))
    };
    match event {
        Event::Start(start) if start.tenant.is_empty() => start.tenant = own.to_owned(),
        Event::Start(start) if start.tenant != own => return refuse(&start.tenant),
        Event::Start(_) => {}
        Event::Fragment(fragment) => match table.tenant_of(&fragment.call_id) {
            Some(tenant) if tenant != own => return refuse(tenant),
            Some(_) => {}
            None => {
                return Ok(Some(CallStart {
                    call_id: fragment.call_id.clone(),
                    tenant: own.to_owned(),
                    language: fragment.language.clone(),
                    ..CallStart::default()
                }))
            }
        },
        Event::End(end) => match table.tenant_of(&end.call_id) {
            Some(tenant) if tenant != own => return refuse(tenant),
            _ => {}
        },
    }
    Ok(None)
}

fn global_ids(snapshot: &CallSnapshot, ids: &CallIds) -> Vec<u64> {
    snapshot
        .alert_ids
        .iter()
        .filter_map(|local| ids.alert_ids.get(local).copied())
        .collect()
}
