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

use super::clock::Clock;
use super::commit::{Committer, Failed, Local, Pending, Store};
use crate::alert::{Alert, AlertEvent, AlertOrigin, HandlingChange, HandlingChangeError};
use crate::call::{
    Applied, CallLimit, CallSnapshot, CallTable, CallerHasher, CallerHistory, TableError,
};
use crate::config::ServeConfig;
use crate::engine::{Engine, Scratch};
use crate::event::{CallStart, Event};
use crate::lexicon::LexiconError;
use crate::policy::{Policy, PolicyError};
use crate::store::{AlertLog, IdCounters, StoreError};

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
    #[error(
        "the new lexicons lack what the set in force has: {}; reload with allow_removal (or lexicon_allow_removal = true for SIGHUP) if that is meant",
        .0.join(", ")
    )]
    Removal(Vec<String>),
}

impl Rules {
    /// Loads the configured lexicons and policy (or the built-in ones).
    /// The policy loads on a thread of its own beside the lexicons: its
    /// time zones are looked up in the system's zoneinfo, a walk of
    /// directories that `serve` would otherwise wait for at start-up.
    pub fn load(config: &ServeConfig) -> Result<Rules, ReloadError> {
        let (engine, policy) = std::thread::scope(|scope| {
            let policy = scope.spawn(|| match &config.policy {
                Some(path) => Policy::load(path),
                None => Ok(Policy::builtin()),
            });
            let engine = Engine::load(config.lexicons.as_deref(), config.cache_dir.as_deref());
            (engine, policy.join().expect("loading the policy panicked"))
        });
        let engine = engine?;
        let policy = policy?;
        // Every automaton before a call is taken (from the cache when it
        // has them).
        engine.prepare_all()?;
        Ok(Rules { engine, policy })
    }
}

/// Why the live state could not be set up from the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("alert store: {0}")]
    Store(#[from] StoreError),
    #[error("caller key file {0}")]
    CallerKey(String),
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
    /// The call ended within `limits.recent_ended_seconds`: its id is not
    /// opened again (a late resend would raise its alerts a second time).
    Ended(String),
}

/// A call's id within the service: ids are scoped by tenant, so that one
/// tenant's ids neither collide with nor reveal another's (issue #18, F8/F9).
type Key = (String, String);

fn key_of(tenant: &str, call_id: &str) -> Key {
    (tenant.to_owned(), call_id.to_owned())
}

/// Why an alert's handling could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum HandlingError {
    #[error("alert_id: no alert {0}")]
    NotFound(u64),
    /// The alert is another tenant's (the message names both).
    #[error("alert_id: alert {alert_id} belongs to tenant {tenant:?}, outside this scope")]
    OutOfScope { alert_id: u64, tenant: String },
    #[error(transparent)]
    Invalid(#[from] HandlingChangeError),
    #[error("alert store: {0}")]
    Store(Arc<StoreError>),
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
    /// The `seq`s of the fragments refused with it (0 for a start or end):
    /// the one that raised it, and each later event of the call it was
    /// raised again with while the store still failed. A resend of any of
    /// them is the resend (no duplicate, not behind the call's last `seq`)
    /// while it is retained.
    seqs: Vec<u64>,
    local_id: u32,
    alert: Alert,
}

/// Refused alerts kept per call; beyond, the oldest are dropped (counted).
const MAX_RETAINED: usize = 256;

/// Locks the live calls are split over (by a hash of the call id).
const SHARDS: usize = 16;

/// Some of the live calls (all tenants' calls of some call ids).
struct Shard {
    /// Live calls, a table per tenant.
    tables: HashMap<String, CallTable>,
    ids: HashMap<Key, CallIds>,
    /// Recently ended calls by call id: (tenant, when it ended). Their ids
    /// are refused until `limits.recent_ended_seconds` have passed.
    ended: HashMap<String, Vec<(String, Instant)>>,
    /// The same, oldest first, to forget them in order.
    ended_order: VecDeque<(Instant, Key)>,
    /// Calls whose ingest stream closed without ending them: since when
    /// (service ms). Closed after `limits.stream_grace_seconds` unless an
    /// event arrives for them on another stream.
    orphaned: HashMap<Key, u64>,
}

/// Ended call ids remembered per shard at most (beyond, the oldest are
/// forgotten early).
const MAX_ENDED_IDS: usize = 16_384;

impl Shard {
    /// The tenants with a live call, or else a recently ended one, of this
    /// id: how an event from an all-tenant sender (which names no tenant
    /// on fragments and ends) finds its call.
    fn tenants_of(&self, call_id: &str) -> Vec<String> {
        let live: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, table)| table.tenant_of(call_id).is_some())
            .map(|(tenant, _)| tenant.clone())
            .collect();
        if !live.is_empty() {
            return live;
        }
        self.ended
            .get(call_id)
            .map(|ended| ended.iter().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }

    fn recently_ended(&self, tenant: &str, call_id: &str) -> bool {
        self.ended
            .get(call_id)
            .is_some_and(|ended| ended.iter().any(|(t, _)| t == tenant))
    }

    fn forget_ended_before(&mut self, keep: std::time::Duration, now: Instant) {
        while let Some((at, _)) = self.ended_order.front() {
            if now.saturating_duration_since(*at) <= keep && self.ended_order.len() <= MAX_ENDED_IDS
            {
                break;
            }
            let (at, (tenant, call_id)) = self.ended_order.pop_front().expect("checked above");
            if let Some(ended) = self.ended.get_mut(&call_id) {
                ended.retain(|(t, when)| !(t == &tenant && *when == at));
                if ended.is_empty() {
                    self.ended.remove(&call_id);
                }
            }
        }
    }
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
    /// Open calls per tenant, against `max_active_calls_per_tenant`.
    tenant_calls: Mutex<HashMap<String, Arc<CallLimit>>>,
    /// Calls opened per ingest token (by its name), against
    /// `max_active_calls_per_token`; empty while the service is open.
    token_calls: Mutex<HashMap<String, Arc<CallLimit>>>,
    ledger: Mutex<Ledger>,
    store: Arc<Store>,
    committer: Committer,
    hasher: CallerHasher,
    /// `callguard_events_total` by type, registered once (a labelled
    /// lookup per event is measurable at 100k events/s).
    events_counted: [metrics::Counter; 3],
    /// Every read of the time (see `clock.rs`).
    clock: Clock,
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
    pub fn new(config: ServeConfig, rules: Rules, log: AlertLog) -> Result<Service, OpenError> {
        Service::with_clock(config, rules, log, Clock::system())
    }

    /// [`Service::new`] reading the time from `clock` (a test's
    /// [`ManualClock`](super::ManualClock)).
    pub fn with_clock(
        config: ServeConfig,
        rules: Rules,
        mut log: AlertLog,
        clock: Clock,
    ) -> Result<Service, OpenError> {
        let counters = log.counters()?;
        let mut callers = CallerHistory::default();
        let window = caller_window(&rules.policy);
        for (key, at) in log.calls_since(clock.wall() - window)? {
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
                    tables: HashMap::new(),
                    ids: HashMap::new(),
                    ended: HashMap::new(),
                    ended_order: VecDeque::new(),
                    orphaned: HashMap::new(),
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
            tenant_calls: Mutex::new(HashMap::new()),
            token_calls: Mutex::new(HashMap::new()),
            ledger: Mutex::new(Ledger {
                counters,
                callers,
                ended: VecDeque::new(),
            }),
            committer: Committer::start(store.clone()),
            store,
            hasher: CallerHasher::new(&secret),
            events_counted: ["start", "fragment", "end"]
                .map(|kind| metrics::counter!(crate::telemetry::metrics::EVENTS, "type" => kind)),
            started: clock.now(),
            clock,
            stopping: tokio::sync::watch::channel(false).0,
        })
    }

    pub fn rules(&self) -> Arc<Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Loads lexicons and policy anew and swaps them in; on error the rule
    /// set in force stays. The admin RPC and SIGHUP both come here.
    pub fn reload(&self, allow_removal: bool) -> Result<(String, usize), ReloadError> {
        let rules = Rules::load(&self.config)?;
        let removed = rules
            .engine
            .lexicon()
            .removed_from(self.rules().engine.lexicon());
        if !removed.is_empty() {
            if !allow_removal {
                return Err(ReloadError::Removal(removed));
            }
            tracing::warn!(removed = %removed.join(", "), "reload removes languages or categories (allowed)");
        }
        let answer = (
            rules.engine.version().to_owned(),
            rules.engine.lexicon().terms.len(),
        );
        self.replace_rules(rules);
        tracing::info!(version = %answer.0, terms = answer.1, "lexicons and policy reloaded");
        Ok(answer)
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
        self.clock.since(self.started).as_millis() as u64
    }

    /// Applies one event and queues its alerts for the store; does no I/O.
    /// A sender scoped to one tenant (`scope`) may only start, feed and
    /// end that tenant's calls; a start that names no tenant gets it.
    pub fn apply(&self, event: Event, scope: Option<&str>, scratch: &mut Scratch) -> Outcome {
        self.apply_sent(event, scope, None, scratch)
    }

    /// [`Service::apply`] for an event sent with ingest token `token` (its
    /// name): the calls it opens count against the token's
    /// `max_active_calls_per_token` as well as its tenant's limit. `None`
    /// for a service without tokens (every client is the same "open" one).
    pub fn apply_sent(
        &self,
        mut event: Event,
        scope: Option<&str>,
        token: Option<&str>,
        scratch: &mut Scratch,
    ) -> Outcome {
        let rules = self.rules();
        if let Event::Start(start) = &mut event {
            start.started_at.get_or_insert_with(|| self.clock.wall());
        }
        let kind = match &event {
            Event::Start(_) => START,
            Event::Fragment(_) => FRAGMENT,
            Event::End(_) => END,
        };
        let mut guard = lock(self.shard_of(event.call_id()));
        let calls = &mut *guard;
        let tenant = match self.tenant_for(&mut event, scope, calls) {
            Ok(tenant) => tenant,
            Err(outcome) => return outcome,
        };
        if !matches!(event, Event::End(_)) && calls.recently_ended(&tenant, event.call_id()) {
            return Outcome::Ended(format!(
                "call_id: call {:?} has ended; its id is not reused for {} s",
                event.call_id(),
                self.config.limits.recent_ended_seconds
            ));
        }
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
        let table = match calls.tables.entry(tenant.clone()) {
            std::collections::hash_map::Entry::Occupied(table) => table.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert(self.new_table(&tenant)),
        };
        // A fragment that opens a call opens it in the tenant it was sent for.
        let implicit_start = match &event {
            Event::Fragment(fragment) if table.tenant_of(&fragment.call_id).is_none() => {
                Some(CallStart {
                    call_id: fragment.call_id.clone(),
                    tenant: tenant.clone(),
                    language: fragment.language.clone(),
                    ..CallStart::default()
                })
            }
            _ => None,
        };
        // Only an event that opens a call looks up its token's limit.
        let opens = implicit_start.is_some() || matches!(event, Event::Start(_));
        let token_limit = token.filter(|_| opens).map(|name| self.token_limit(name));
        let token_limit = token_limit.as_ref();
        let mut routed = Ok(None);
        if let Some(start) = implicit_start {
            routed = table
                .apply_for(
                    &Event::Start(start),
                    token_limit,
                    self.now_ms(),
                    &rules.engine,
                    &rules.policy,
                    &mut caller_calls,
                    scratch,
                )
                .map(Some);
        }
        let routed = routed.and_then(|opened| {
            let mut routed = table.apply_for(
                &event,
                token_limit,
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
                    routed.snapshot = table.snapshot_of(event.call_id());
                }
            }
            Ok(routed)
        });
        let key = key_of(&tenant, event.call_id());
        let routed = match routed {
            Ok(routed) => routed,
            // A resend of an event the store refused, behind a later event
            // of the call (taken, or refused too): the resend the
            // rejection asked for, not an event out of order.
            Err(TableError::Event(crate::event::EventError::SeqBackwards { seq, .. }))
                if calls
                    .ids
                    .get(&key)
                    .is_some_and(|ids| ids.retained.iter().any(|r| r.seqs.contains(&seq))) =>
            {
                crate::call::Routed {
                    applied: Applied::Duplicate,
                    snapshot: None,
                }
            }
            Err(e) => return Outcome::Refused(e),
        };
        self.events_counted[kind].increment(1);
        if kind != FRAGMENT {
            metrics::gauge!(crate::telemetry::metrics::ACTIVE_CALLS)
                .set(self.open_calls.open() as f64);
        }
        let (mut duplicate, events) = match routed.applied {
            Applied::Duplicate => (true, Vec::new()),
            Applied::Accepted(events) => (false, events),
        };
        if !calls.orphaned.is_empty() {
            calls.orphaned.remove(&key);
        }
        let retained = calls
            .ids
            .get_mut(&key)
            .map(|ids| std::mem::take(&mut ids.retained))
            .unwrap_or_default();
        if duplicate && retained.iter().any(|r| r.seqs.contains(&event_seq(&event))) {
            duplicate = false; // a resend of an event the store refused
        }
        let snapshot = match routed.snapshot {
            Some(snapshot) => Some(snapshot),
            None if !retained.is_empty() => calls
                .tables
                .get(&tenant)
                .and_then(|table| table.snapshot_of(event.call_id())),
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
            self.remember_ended(calls, snapshot);
        }
        Outcome::Accepted { duplicate, alerts }
    }

    /// The tenant an event is for: a start's own (filled in from, and held
    /// to, the sender's scope); the sender's tenant for a fragment or end;
    /// for an all-tenant sender, the one tenant with a call of that id
    /// (none: the default tenant "").
    fn tenant_for(
        &self,
        event: &mut Event,
        scope: Option<&str>,
        calls: &Shard,
    ) -> Result<String, Outcome> {
        match (event, scope) {
            (Event::Start(start), Some(own)) => {
                if start.tenant.is_empty() {
                    start.tenant = own.to_owned();
                } else if start.tenant != own {
                    return Err(Outcome::Denied(format!(
                        "tenant: this token sends for tenant {own:?}, not {:?}",
                        start.tenant
                    )));
                }
                Ok(start.tenant.clone())
            }
            (Event::Start(start), None) => Ok(start.tenant.clone()),
            (_, Some(own)) => Ok(own.to_owned()),
            (event, None) => {
                // The common case, one tenant with a live call of this id,
                // without collecting them all.
                let mut live = calls
                    .tables
                    .iter()
                    .filter(|(_, table)| table.tenant_of(event.call_id()).is_some());
                if let (Some((tenant, _)), None) = (live.next(), live.next()) {
                    return Ok(tenant.clone());
                }
                let mut tenants = calls.tenants_of(event.call_id());
                match tenants.len() {
                    0 => Ok(String::new()),
                    1 => Ok(tenants.remove(0)),
                    _ => Err(Outcome::Denied(format!(
                        "call_id: {} tenants have a call {:?}; send its events with a token scoped to its tenant",
                        tenants.len(),
                        event.call_id()
                    ))),
                }
            }
        }
    }

    /// A table for a tenant's calls in one shard, counted against the
    /// service's limit and the tenant's.
    fn new_table(&self, tenant: &str) -> CallTable {
        let tenant_limit = lock(&self.tenant_calls)
            .entry(tenant.to_owned())
            .or_insert_with(|| CallLimit::new(self.config.limits.max_active_calls_per_tenant))
            .clone();
        CallTable::sharing_in_tenant(
            self.open_calls.clone(),
            tenant_limit,
            self.config.limits.max_text_bytes,
        )
    }

    /// The limit of the calls opened with ingest token `name`.
    fn token_limit(&self, name: &str) -> Arc<CallLimit> {
        let mut limits = lock(&self.token_calls);
        if let Some(limit) = limits.get(name) {
            return limit.clone();
        }
        let limit = CallLimit::new(self.config.limits.max_active_calls_per_token);
        limits.insert(name.to_owned(), limit.clone());
        limit
    }

    /// The ingest stream that sent events for these calls has closed: the
    /// ones it did not end close after `limits.stream_grace_seconds`,
    /// unless another stream takes them up (any event for them).
    pub fn orphan(&self, scope: Option<&str>, call_ids: impl IntoIterator<Item = String>) {
        let now = self.now_ms();
        for call_id in call_ids {
            let mut guard = lock(self.shard_of(&call_id));
            let calls = &mut *guard;
            let tenants = match scope {
                Some(own) => vec![own.to_owned()],
                None => calls.tenants_of(&call_id),
            };
            for tenant in tenants {
                let live = calls
                    .tables
                    .get(&tenant)
                    .is_some_and(|t| t.tenant_of(&call_id).is_some());
                if live {
                    calls.orphaned.insert(key_of(&tenant, &call_id), now);
                }
            }
        }
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
        call_ids: &mut HashMap<Key, CallIds>,
        snapshot: &CallSnapshot,
        retained: Vec<Retained>,
        events: Vec<AlertEvent>,
        engine: &Engine,
    ) -> Pending {
        if events.is_empty() && retained.is_empty() {
            return Pending::none();
        }
        let raised_at = self.clock.wall();
        let retained = retained.into_iter().map(|r| (r.local_id, r.alert, r.seqs));
        let built: Vec<(u32, Alert, Vec<u64>)> = retained
            .chain(events.into_iter().map(|e| {
                let origin = AlertOrigin {
                    call_id: &snapshot.call_id,
                    tenant: &snapshot.tenant,
                    agent_id: &snapshot.agent_id,
                    lexicon_version: engine.version(),
                };
                let local_id = e.local_id;
                (
                    local_id,
                    Alert::from_event(e, &origin, raised_at),
                    Vec::new(),
                )
            }))
            .collect();
        let ids = call_ids
            .entry(key_of(&snapshot.tenant, &snapshot.call_id))
            .or_default();
        let mut locals = Vec::with_capacity(built.len());
        // Only the ids under the ledger lock; an update of an alert raised
        // earlier in the same batch finds its id in the map.
        let mut ledger = lock(&self.ledger);
        let alerts = built
            .into_iter()
            .map(|(local_id, alert, refused_seqs)| {
                locals.push(Local {
                    id: local_id,
                    fresh: !ids.alert_ids.contains_key(&local_id),
                    refused_seqs,
                });
                ledger.counters.number(&mut ids.alert_ids, local_id, alert)
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
        let tenant = failed.alerts[0].tenant.clone();
        let live = calls
            .tables
            .get(&tenant)
            .is_some_and(|t| t.tenant_of(call_id).is_some());
        if !live {
            // The call ended with this event (its final alerts are what
            // failed): nothing is left to raise them with.
            metrics::counter!(crate::telemetry::metrics::ALERTS_UNSTORED).increment(n as u64);
            tracing::error!(
                call_id,
                alerts = n,
                "the alert store refused the alerts of an ending call; they are lost"
            );
            return;
        }
        let ids = calls.ids.entry(key_of(&tenant, call_id)).or_default();
        for (alert, local) in failed.alerts.into_iter().zip(failed.locals) {
            if local.fresh && ids.alert_ids.get(&local.id) == Some(&alert.alert_id) {
                ids.alert_ids.remove(&local.id);
            }
            let mut seqs = local.refused_seqs;
            if !seqs.contains(&seq) {
                seqs.push(seq);
            }
            ids.retained.push(Retained {
                seqs,
                local_id: local.id,
                alert,
            });
        }
        if ids.retained.len() > MAX_RETAINED {
            let dropped = ids.retained.len() - MAX_RETAINED;
            ids.retained.drain(..dropped);
            metrics::counter!(crate::telemetry::metrics::ALERTS_UNSTORED).increment(dropped as u64);
            tracing::error!(
                call_id,
                dropped,
                "too many alerts refused by the alert store for one call; the oldest are lost"
            );
        }
        tracing::warn!(call_id, seq, alerts = n, "alerts refused by the alert store are kept, to be raised again with the call's next event");
    }

    fn remember_ended(&self, calls: &mut Shard, snapshot: CallSnapshot) {
        let key = key_of(&snapshot.tenant, &snapshot.call_id);
        let ids = calls.ids.remove(&key).unwrap_or_default();
        calls.orphaned.remove(&key);
        let now = self.clock.now();
        calls
            .ended
            .entry(snapshot.call_id.clone())
            .or_default()
            .push((snapshot.tenant.clone(), now));
        calls.ended_order.push_back((now, key));
        let alert_ids = global_ids(&snapshot, &ids);
        let mut ledger = lock(&self.ledger);
        ledger.ended.push_back((now, snapshot, alert_ids));
        while ledger.ended.len() > self.config.limits.recent_ended_calls {
            ledger.ended.pop_front();
        }
    }

    /// Closes idle calls (their provisional alerts settle) and forgets
    /// ended calls past their keep time. Run periodically.
    pub fn sweep(&self) {
        let rules = self.rules();
        let now = self.now_ms();
        let grace = self.config.limits.stream_grace_seconds.saturating_mul(1000);
        let keep_ended = std::time::Duration::from_secs(self.config.limits.recent_ended_seconds);
        for shard in &self.shards {
            let mut guard = lock(shard);
            let calls = &mut *guard;
            let mut closed = Vec::new();
            for table in calls.tables.values_mut() {
                closed.extend(
                    table
                        .close_idle(now, &rules.policy)
                        .into_iter()
                        .map(|c| (c, "idle timeout")),
                );
            }
            let orphans: Vec<Key> = calls
                .orphaned
                .iter()
                .filter(|(_, since)| now.saturating_sub(**since) >= grace)
                .map(|(key, _)| key.clone())
                .collect();
            for key in orphans {
                calls.orphaned.remove(&key);
                let (tenant, call_id) = &key;
                if let Some(c) = calls
                    .tables
                    .get_mut(tenant)
                    .and_then(|t| t.close(call_id, &rules.policy))
                {
                    closed.push((c, "its ingest stream closed"));
                }
            }
            for ((snapshot, events), why) in closed {
                tracing::info!(call_id = %snapshot.call_id, why, "call closed");
                let retained = calls
                    .ids
                    .get_mut(&key_of(&snapshot.tenant, &snapshot.call_id))
                    .map(|ids| std::mem::take(&mut ids.retained))
                    .unwrap_or_default();
                // Nobody waits: if the store refuses them, the committer
                // counts them lost (`callguard_alerts_unstored_total`).
                drop(self.publish(&mut calls.ids, &snapshot, retained, events, &rules.engine));
                self.remember_ended(calls, snapshot);
            }
            calls.tables.retain(|_, table| !table.is_empty());
            calls.forget_ended_before(keep_ended, self.clock.now());
        }
        // Callers with no call in the window take no memory.
        let window = caller_window(&rules.policy);
        let mut ledger = lock(&self.ledger);
        ledger.callers.forget_before(self.clock.wall() - window);
        let keep = std::time::Duration::from_secs(self.config.limits.recent_ended_seconds);
        while ledger
            .ended
            .front()
            .is_some_and(|(at, ..)| self.clock.since(*at) > keep)
        {
            ledger.ended.pop_front();
        }
        metrics::gauge!(crate::telemetry::metrics::ACTIVE_CALLS).set(self.open_calls.open() as f64);
    }

    /// Applies retention to the store.
    pub fn purge(&self) {
        let days = i64::from(self.config.retention_days);
        let before = self.clock.wall() - jiff::SignedDuration::from_hours(24 * days);
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
            let tables = calls
                .tables
                .iter()
                .filter(|(t, _)| tenant.is_none_or(|want| want == t.as_str()));
            for (_, table) in tables {
                out.extend(table.snapshots().into_iter().map(|s| {
                    let key = key_of(&s.tenant, &s.call_id);
                    let ids = global_ids(&s, calls.ids.get(&key).unwrap_or(&empty));
                    (s, ids)
                }));
            }
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

    /// The call of this id in `tenant` (any tenant: `None`), live first,
    /// else the most recently ended.
    pub fn find_call(
        &self,
        tenant: Option<&str>,
        call_id: &str,
    ) -> Option<(CallSnapshot, Vec<u64>)> {
        self.list_calls(tenant, true)
            .into_iter()
            .rev()
            .find(|(s, _)| s.call_id == call_id)
    }

    /// Acknowledges, assigns or resolves an alert: stored as an update of
    /// the same `alert_id` with a new `event_id`, published like any alert.
    /// `scope` is the caller's tenant (`None`: all). Returns the update as
    /// stored (merged with any detection update that came first; see
    /// `commit.rs`).
    pub async fn change_handling(
        &self,
        alert_id: u64,
        scope: Option<&str>,
        change: HandlingChange,
    ) -> Result<Arc<Alert>, HandlingError> {
        change.validate()?;
        let store_err = |e| HandlingError::Store(Arc::new(e));
        let latest = self
            .with_log(|log| log.latest_of_alert(alert_id))
            .map_err(store_err)?
            .ok_or(HandlingError::NotFound(alert_id))?;
        if scope.is_some_and(|own| own != latest.tenant) {
            return Err(HandlingError::OutOfScope {
                alert_id,
                tenant: latest.tenant,
            });
        }
        let mut update = latest;
        update.handling = Some(change.apply(update.handling.as_ref()));
        // Ids under the ledger lock, queued under it: in id order.
        let pending = {
            let mut ledger = lock(&self.ledger);
            let update = ledger.counters.assign(update);
            self.committer.handle(update, change)
        };
        let stored = pending
            .await
            .map_err(|failed| HandlingError::Store(failed.error))?;
        stored
            .into_iter()
            .next()
            .ok_or(HandlingError::NotFound(alert_id))
    }

    /// A new receiver of live alerts.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<Alert>> {
        self.store.bus.subscribe()
    }

    /// Receivers of the live bus now (subscriptions and console streams):
    /// lets tests see that a vanished client was let go.
    pub fn live_receivers(&self) -> usize {
        self.store.bus.receiver_count()
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
fn read_caller_key(path: &std::path::Path) -> Result<Vec<u8>, OpenError> {
    let bad = |message: String| OpenError::CallerKey(format!("{}: {message}", path.display()));
    let key = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if key.len() < 32 {
        return Err(bad(format!(
            "{} bytes; needs at least 32 random bytes (e.g. head -c 32 /dev/urandom > FILE)",
            key.len()
        )));
    }
    Ok(key)
}

fn global_ids(snapshot: &CallSnapshot, ids: &CallIds) -> Vec<u64> {
    snapshot
        .alert_ids
        .iter()
        .filter_map(|local| ids.alert_ids.get(local).copied())
        .collect()
}
