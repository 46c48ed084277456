//! The service's shared state: the rule set in force, the live call table,
//! the durable alert log and the live alert bus — and the one path every
//! alert takes: call table → ids (under the `ledger` lock) → group commit
//! (`commit.rs`: store, then bus) → replies.
//!
//! The live calls are split by call id over [`SHARDS`] locks, each with its
//! own table: an event locks its call's shard only, so the runtime's
//! workers rarely wait for each other. With one lock they blocked on it
//! often enough at 100,000 events/s to double their context switches, and
//! a holder preempted by the scheduler stalled both. What calls share (id
//! counters, caller history, ended calls) is in the `ledger`, taken after a
//! shard and only by events that start or end a call or raise alerts.
//!
//! Locks, in this order: a shard, the ledger, the store's; never held
//! across an `.await`, and no I/O under the first two (repeat-caller
//! counts are kept in memory and written behind).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use tokio::sync::broadcast;

use super::commit::{Committer, Failed, Pending, Store};
use super::config::ServeConfig;
use crate::alert::{Alert, AlertEvent};
use crate::call::{
    Applied, CallLimit, CallSnapshot, CallTable, CallerHasher, CallerHistory, TableError,
};
use crate::engine::{Engine, Scratch};
use crate::event::{CallStart, Event};
use crate::lexicon::{Lexicon, LexiconError};
use crate::policy::{Policy, PolicyError};
use crate::store::{AlertLog, IdCounters};

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
    /// Applied; its alerts (if any) are on their way to the store.
    Accepted {
        duplicate: bool,
        alerts: Pending,
    },
    Refused(TableError),
    /// The event is for a tenant outside the sender's token scope.
    Denied(String),
}

/// Per-call bookkeeping the call table does not keep: service-wide alert
/// ids of the call's call-local ones, and alerts the store refused.
#[derive(Default)]
struct CallIds {
    alert_ids: HashMap<u32, u64>,
    /// Alerts whose commit failed, raised again with the call's next event
    /// (a resend of the refused one included): the call's state has moved
    /// past them (seq seen, cooldown running), so without this a store
    /// outage lost them for good (issue #18, F3).
    retained: Vec<Retained>,
}

/// An alert the store refused, kept to be raised again.
struct Retained {
    /// The fragment's `seq` that raised it (0 for a start or end): a resend
    /// of that seq is not a duplicate while it is retained.
    seq: u64,
    local_id: u32,
    alert: Alert,
}

/// Refused alerts kept per call; beyond, the oldest are dropped (counted).
const MAX_RETAINED: usize = 256;

/// Locks the live calls are split over (by a hash of the call id).
const SHARDS: usize = 16;

/// Some of the live calls.
struct Shard {
    table: CallTable,
    ids: HashMap<String, CallIds>,
}

/// What all calls share.
struct Ledger {
    /// The next ids to hand out (assigned here, committed by `commit`).
    counters: IdCounters,
    /// Repeat-caller history within the policy window, loaded from the
    /// store at start and written behind.
    callers: CallerHistory,
    /// Recently ended calls, newest last: (when it ended, snapshot, ids).
    ended: VecDeque<(Instant, CallSnapshot, Vec<u64>)>,
}

pub struct Service {
    pub config: ServeConfig,
    rules: RwLock<Arc<Rules>>,
    shards: Box<[Mutex<Shard>]>,
    /// Which shard a call id is in.
    shard_key: std::hash::RandomState,
    /// Open calls across the shards, against `max_active_calls`.
    open_calls: Arc<CallLimit>,
    ledger: Mutex<Ledger>,
    store: Arc<Store>,
    committer: Committer,
    hasher: CallerHasher,
    /// `callguard_events_total` by type, registered once (a labelled
    /// lookup per event is measurable at 100k events/s).
    events_counted: [metrics::Counter; 3],
    started: Instant,
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
        let counters = log.counters()?;
        let mut callers = CallerHistory::default();
        let window = caller_window(&rules.policy);
        for (key, at) in log.calls_since(jiff::Timestamp::now() - window)? {
            callers.record(key, at, window);
        }
        // The caller-id key: from its own file when configured (so a copy
        // of the data directory alone cannot be brute-forced for phone
        // numbers), else the installation secret in the store.
        let secret = match &config.caller_key_file {
            Some(path) => read_caller_key(path)?,
            None => log.installation_secret()?.to_vec(),
        };
        let open_calls = CallLimit::new(config.limits.max_active_calls);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    table: CallTable::sharing(open_calls.clone(), config.limits.max_text_bytes),
                    ids: HashMap::new(),
                })
            })
            .collect();
        let store = Arc::new(Store::new(log, config.limits.subscriber_buffer));
        Ok(Service {
            config,
            rules: RwLock::new(Arc::new(rules)),
            shards,
            shard_key: std::hash::RandomState::new(),
            open_calls,
            ledger: Mutex::new(Ledger {
                counters,
                callers,
                ended: VecDeque::new(),
            }),
            committer: Committer::start(store.clone()),
            store,
            hasher: CallerHasher::new(&secret),
            events_counted: ["start", "fragment", "end"]
                .map(|kind| metrics::counter!(super::metrics::EVENTS, "type" => kind)),
            started: Instant::now(),
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
        self.store.is_ready()
    }

    /// Queues a probe of the store: readiness follows the last write,
    /// probe or commit, so it turns without traffic too.
    pub fn probe_store(&self) {
        self.committer.probe();
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Applies one event and queues its alerts for the store; does no I/O.
    /// A sender scoped to one tenant (`scope`) may only start, feed and
    /// end that tenant's calls; a start that names no tenant gets it.
    pub fn apply(&self, mut event: Event, scope: Option<&str>, scratch: &mut Scratch) -> Outcome {
        let rules = self.rules();
        if let Event::Start(start) = &mut event {
            start.started_at.get_or_insert_with(jiff::Timestamp::now);
        }
        let kind = match &event {
            Event::Start(_) => START,
            Event::Fragment(_) => FRAGMENT,
            Event::End(_) => END,
        };
        let mut guard = lock(self.shard_of(event.call_id()));
        let calls = &mut *guard;
        let window = caller_window(&rules.policy);
        let mut caller_calls = |start: &crate::event::CallStart| {
            let (Some(caller), Some(at)) = (start.caller_id.as_deref(), start.started_at) else {
                return 0;
            };
            let Some(key) = self.hasher.key(caller) else {
                return 0;
            };
            self.committer.caller_call(key, at);
            lock(&self.ledger).callers.record(key, at, window)
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
                if !alerts.is_empty() && routed.snapshot.is_none() {
                    routed.snapshot = calls.table.snapshot_of(event.call_id());
                }
            }
            Ok(routed)
        });
        let routed = match routed {
            Ok(routed) => routed,
            Err(e) => return Outcome::Refused(e),
        };
        self.events_counted[kind].increment(1);
        if kind != FRAGMENT {
            metrics::gauge!(super::metrics::ACTIVE_CALLS).set(self.open_calls.open() as f64);
        }
        let (mut duplicate, events) = match routed.applied {
            Applied::Duplicate => (true, Vec::new()),
            Applied::Accepted(events) => (false, events),
        };
        let retained = calls
            .ids
            .get_mut(event.call_id())
            .map(|ids| std::mem::take(&mut ids.retained))
            .unwrap_or_default();
        if duplicate && retained.iter().any(|r| r.seq == event_seq(&event)) {
            duplicate = false; // a resend of an event the store refused
        }
        let snapshot = match routed.snapshot {
            Some(snapshot) => Some(snapshot),
            None if !retained.is_empty() => calls.table.snapshot_of(event.call_id()),
            None => None,
        };
        let Some(snapshot) = snapshot else {
            return Outcome::Accepted {
                duplicate,
                alerts: Pending::none(),
            };
        };
        let alerts = self.publish(&mut calls.ids, &snapshot, retained, events, &rules.engine);
        if matches!(event, Event::End(_)) {
            self.remember_ended(&mut calls.ids, snapshot);
        }
        Outcome::Accepted { duplicate, alerts }
    }

    fn shard_of(&self, call_id: &str) -> &Mutex<Shard> {
        let hash = self.shard_key.hash_one(call_id);
        &self.shards[(hash % SHARDS as u64) as usize]
    }

    /// Ids, then the store and the bus: the path of every alert. Called
    /// under the call's shard lock (so one call's alerts keep their order);
    /// ids are assigned and handed to the committer under the ledger lock,
    /// so they reach it in id order.
    fn publish(
        &self,
        call_ids: &mut HashMap<String, CallIds>,
        snapshot: &CallSnapshot,
        retained: Vec<Retained>,
        events: Vec<AlertEvent>,
        engine: &Engine,
    ) -> Pending {
        if events.is_empty() && retained.is_empty() {
            return Pending::none();
        }
        let raised_at = jiff::Timestamp::now();
        let retained = retained.into_iter().map(|r| (r.local_id, r.alert));
        let built: Vec<(u32, Alert)> = retained
            .chain(events.into_iter().map(|e| {
                let alert = Alert {
                    event_id: 0,
                    alert_id: 0,
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
                    evidence: e.evidence,
                    action: e.action.to_string(),
                };
                (e.local_id, alert)
            }))
            .collect();
        let ids = call_ids.entry(snapshot.call_id.clone()).or_default();
        let mut locals = Vec::with_capacity(built.len());
        // Only the ids under the ledger lock; an update of an alert raised
        // earlier in the same batch finds its id in the map.
        let mut ledger = lock(&self.ledger);
        let alerts = built
            .into_iter()
            .map(|(local_id, mut alert)| {
                alert.alert_id = ids.alert_ids.get(&local_id).copied().unwrap_or(0);
                locals.push((local_id, alert.alert_id == 0));
                let alert = ledger.counters.assign(alert);
                ids.alert_ids.insert(local_id, alert.alert_id);
                alert
            })
            .collect();
        self.committer.alerts(alerts).with_locals(locals)
    }

    /// Keeps the alerts of an event the store refused, to be raised again
    /// with the call's next event (see [`CallIds::retained`]), and forgets
    /// the ids handed out for new ones, so that GetCall and ListCalls list
    /// only stored alerts.
    pub fn retain(&self, call_id: &str, seq: u64, failed: Failed) {
        if failed.alerts.is_empty() {
            return;
        }
        let mut guard = lock(self.shard_of(call_id));
        let calls = &mut *guard;
        let n = failed.alerts.len();
        if calls.table.tenant_of(call_id).is_none() {
            // The call ended with this event (its final alerts are what
            // failed): nothing is left to raise them with.
            metrics::counter!(super::metrics::ALERTS_UNSTORED).increment(n as u64);
            tracing::error!(
                call_id,
                alerts = n,
                "the alert store refused the alerts of an ending call; they are lost"
            );
            return;
        }
        let ids = calls.ids.entry(call_id.to_owned()).or_default();
        for (alert, (local_id, fresh)) in failed.alerts.into_iter().zip(failed.locals) {
            if fresh && ids.alert_ids.get(&local_id) == Some(&alert.alert_id) {
                ids.alert_ids.remove(&local_id);
            }
            ids.retained.push(Retained {
                seq,
                local_id,
                alert,
            });
        }
        if ids.retained.len() > MAX_RETAINED {
            let dropped = ids.retained.len() - MAX_RETAINED;
            ids.retained.drain(..dropped);
            metrics::counter!(super::metrics::ALERTS_UNSTORED).increment(dropped as u64);
            tracing::error!(
                call_id,
                dropped,
                "too many alerts refused by the alert store for one call; the oldest are lost"
            );
        }
        tracing::warn!(call_id, seq, alerts = n, "alerts refused by the alert store are kept, to be raised again with the call's next event");
    }

    fn remember_ended(&self, call_ids: &mut HashMap<String, CallIds>, snapshot: CallSnapshot) {
        let ids = call_ids.remove(&snapshot.call_id).unwrap_or_default();
        let alert_ids = global_ids(&snapshot, &ids);
        let mut ledger = lock(&self.ledger);
        ledger
            .ended
            .push_back((Instant::now(), snapshot, alert_ids));
        while ledger.ended.len() > self.config.limits.recent_ended_calls {
            ledger.ended.pop_front();
        }
    }

    /// Closes idle calls (their provisional alerts settle) and forgets
    /// ended calls past their keep time. Run periodically.
    pub fn sweep(&self) {
        let rules = self.rules();
        for shard in &self.shards {
            let mut guard = lock(shard);
            let calls = &mut *guard;
            let closed = calls.table.close_idle(self.now_ms(), &rules.policy);
            for (snapshot, events) in closed {
                tracing::info!(call_id = %snapshot.call_id, "call closed after idle timeout");
                let retained = calls
                    .ids
                    .get_mut(&snapshot.call_id)
                    .map(|ids| std::mem::take(&mut ids.retained))
                    .unwrap_or_default();
                // Published by the committer; a store failure is reported there.
                drop(self.publish(&mut calls.ids, &snapshot, retained, events, &rules.engine));
                self.remember_ended(&mut calls.ids, snapshot);
            }
        }
        // Callers with no call in the window take no memory.
        let window = caller_window(&rules.policy);
        let mut ledger = lock(&self.ledger);
        ledger
            .callers
            .forget_before(jiff::Timestamp::now() - window);
        let keep = std::time::Duration::from_secs(self.config.limits.recent_ended_seconds);
        while ledger
            .ended
            .front()
            .is_some_and(|(at, ..)| at.elapsed() > keep)
        {
            ledger.ended.pop_front();
        }
        metrics::gauge!(super::metrics::ACTIVE_CALLS).set(self.open_calls.open() as f64);
    }

    /// Applies retention to the store.
    pub fn purge(&self) {
        let days = i64::from(self.config.retention_days);
        let before = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days);
        let result = self.store.lock().purge_before(before);
        match result {
            Ok(n) if n > 0 => tracing::info!(rows = n, "retention: purged old alerts"),
            Ok(_) => {}
            Err(e) => self.store.failed("purge", &e),
        }
    }

    /// Active (and, if asked, recently ended) calls with service-wide alert ids.
    pub fn list_calls(
        &self,
        tenant: Option<&str>,
        include_ended: bool,
    ) -> Vec<(CallSnapshot, Vec<u64>)> {
        let empty = CallIds::default();
        let mut out: Vec<(CallSnapshot, Vec<u64>)> = Vec::new();
        for shard in &self.shards {
            let calls = lock(shard);
            out.extend(calls.table.snapshots().into_iter().map(|s| {
                let ids = global_ids(&s, calls.ids.get(&s.call_id).unwrap_or(&empty));
                (s, ids)
            }));
        }
        out.sort_by(|(a, _), (b, _)| a.call_id.cmp(&b.call_id));
        if include_ended {
            out.extend(
                lock(&self.ledger)
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
        self.store.bus.subscribe()
    }

    /// Runs `f` with the store locked (no publication can interleave).
    pub fn with_log<R>(&self, f: impl FnOnce(&mut AlertLog) -> R) -> R {
        f(&mut self.store.lock())
    }
}

/// The `seq` of a fragment (0 for a start or end).
fn event_seq(event: &Event) -> u64 {
    match event {
        Event::Fragment(fragment) => fragment.seq,
        _ => 0,
    }
}

/// Indexes of `Service::events_counted`.
const START: usize = 0;
const FRAGMENT: usize = 1;
const END: usize = 2;

/// The repeat-caller window of the policy in force (the default tenant's).
fn caller_window(policy: &Policy) -> jiff::SignedDuration {
    jiff::SignedDuration::from_hours(policy.for_tenant("").repeat_callers.window_hours as i64)
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
