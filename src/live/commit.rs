//! Group commit: the one writer of the alert store.
//!
//! Ingest assigns ids under the call-table lock and hands alerts here
//! without waiting; repeat-caller records come here too. A dedicated
//! thread commits everything waiting at that moment in one transaction
//! (one fsync, however many calls it serves), then — still holding the
//! store lock — publishes the alerts on the live bus in event-id order and
//! answers each batch's waiter. So the fsync is off the call-table lock, a
//! burst of alerts costs a few fsyncs instead of one each, and the old
//! contract holds: nobody hears of an alert before it is committed, and a
//! subscriber reading the store head under the same lock sees no gap and
//! no duplicate when it goes live.
//!
//! Two kinds of update meet here: the call state machine's (confirmed,
//! retracted) and a supervisor's (acknowledged, assigned, resolved). Each
//! is made without knowing what the other did a moment ago, so the writer,
//! which stores every update in event-id order, merges them: a detection
//! update keeps the handling of the version before it, a handling update
//! takes everything else from it. The latest row of an `alert_id` is thus
//! always the alert's whole state, however the two interleave.
//!
//! A second thread copies the WAL into the database file every
//! [`CHECKPOINT_EVERY`], on a connection of its own, so no commit (and no
//! alert) waits for a checkpoint.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use std::collections::HashMap;

use crate::alert::{Alert, HandlingChange};
use crate::call::CallerKey;
use crate::store::{AlertLog, Checkpointer, StoreError};

#[cfg(test)]
mod tests;

/// Most jobs committed in one transaction (bounds a transaction's size).
const MAX_GROUP: usize = 1_024;
/// How often the WAL is copied into the database file. At the busiest
/// this service gets (hundreds of alerts a second) a second's WAL is a few
/// MB, which the checkpoint copies in tens of milliseconds.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The store and what hangs off it: the live bus and readiness.
pub struct Store {
    log: Mutex<AlertLog>,
    pub bus: broadcast::Sender<Arc<Alert>>,
    ready: AtomicBool,
}

impl Store {
    /// Probes the store once before anyone is told it is ready: a restart
    /// on a full disk or a read-only file starts, and says it is not ready.
    pub fn new(mut log: AlertLog, bus_capacity: usize) -> Store {
        let probed = log.probe();
        let store = Store {
            log: Mutex::new(log),
            bus: broadcast::channel(bus_capacity).0,
            ready: AtomicBool::new(true),
        };
        if let Err(e) = probed {
            store.failed("probe", &e);
        }
        store
    }

    /// The store, locked: no commit (and so no publication) interleaves.
    pub fn lock(&self) -> MutexGuard<'_, AlertLog> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Marks the store failed: `/readyz` turns not ready until a write works.
    pub fn failed(&self, op: &'static str, e: &StoreError) {
        metrics::counter!(crate::telemetry::metrics::STORE_ERRORS, "op" => op).increment(1);
        // One ERROR line when it breaks, not one a second while it stays
        // broken (the probe runs every second).
        if self.ready.swap(false, Ordering::Relaxed) {
            tracing::error!(op, error = %e, "alert store failed; /readyz reports not ready");
        } else {
            tracing::debug!(op, error = %e, "alert store still failing");
        }
    }

    fn succeeded(&self) {
        if !self.ready.swap(true, Ordering::Relaxed) {
            tracing::info!("alert store writable again; /readyz reports ready");
        }
    }
}

/// What a batch of alerts came to: published, or not stored at all.
pub type Committed = Result<Vec<Arc<Alert>>, Failed>;

/// A batch the store refused: the error, and the alerts themselves, so
/// that they are raised again rather than forgotten (`Service::retain`).
pub struct Failed {
    pub error: Arc<StoreError>,
    /// The alerts as they were queued (empty when the writer was gone).
    pub alerts: Vec<Alert>,
    /// Per alert, what the service needs to keep it (see [`Local`]).
    pub locals: Locals,
}

/// Alerts on their way to the store; resolves once they are committed and
/// published (at once when there are none).
#[must_use = "dropping it is fine, but then nobody learns whether the alerts were stored"]
pub struct Pending(Option<(oneshot::Receiver<Committed>, Locals)>);

/// Per alert of a batch, what the service needs to keep it if the store
/// refuses it (see [`Failed::locals`]).
pub type Locals = Vec<Local>;

/// One alert of a batch, as the service knows it.
pub struct Local {
    /// Its call-local id.
    pub id: u32,
    /// A new alert (its `alert_id` handed out for it) rather than an update
    /// of a stored one.
    pub fresh: bool,
    /// The `seq`s of the events the store refused before with this alert
    /// (it was kept, and is raised again now): a resend of any of them is
    /// the resend, not an old or out-of-order event.
    pub refused_seqs: Vec<u64>,
}

impl Pending {
    pub fn none() -> Pending {
        Pending(None)
    }

    /// Alerts on their way, with their call-local ids and freshness (see
    /// [`Failed::locals`]) for the case that the store refuses them.
    pub fn with_locals(self, locals: Locals) -> Pending {
        Pending(self.0.map(|(rx, _)| (rx, locals)))
    }

    /// No alerts to wait for.
    pub fn is_settled(&self) -> bool {
        self.0.is_none()
    }
}

impl Future for Pending {
    type Output = Committed;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Committed> {
        match &mut self.0 {
            None => Poll::Ready(Ok(Vec::new())),
            Some((rx, locals)) => Pin::new(rx).poll(cx).map(|r| {
                let committed = r.unwrap_or_else(|_| {
                    Err(Failed {
                        error: Arc::new(StoreError::Closed),
                        alerts: Vec::new(),
                        locals: Vec::new(),
                    })
                });
                committed.map_err(|mut failed| {
                    failed.locals = std::mem::take(locals);
                    failed
                })
            }),
        }
    }
}

enum Job {
    Alerts(Vec<Alert>, oneshot::Sender<Committed>),
    /// A supervisor's change: the alert as last read (ids assigned), to be
    /// brought up to date with the version before it at commit time.
    Handle(Box<Alert>, HandlingChange, oneshot::Sender<Committed>),
    CallerCall(CallerKey, jiff::Timestamp),
    /// Prove the store writable (readiness), in turn with the commits.
    Probe,
}

/// The writer thread and its queue, and the checkpoint thread. Dropping it
/// commits what is queued and joins both.
pub struct Committer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Dropped to stop the checkpoint thread.
    stop_checkpoints: Option<mpsc::Sender<()>>,
    checkpoints: Option<JoinHandle<()>>,
}

impl Committer {
    pub fn start(store: Arc<Store>) -> Committer {
        let checkpointer = store.lock().checkpointer();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("callguard-commit".into())
            .spawn(move || run(&store, &rx))
            .expect("spawning the commit thread");
        let (stop_checkpoints, checkpoints) = match checkpointer {
            Ok(checkpointer) => {
                let (stop, stopped) = mpsc::channel();
                let thread = std::thread::Builder::new()
                    .name("callguard-checkpoint".into())
                    .spawn(move || checkpoint_until_stopped(&checkpointer, &stopped))
                    .expect("spawning the checkpoint thread");
                (Some(stop), Some(thread))
            }
            Err(error) => {
                tracing::warn!(%error, "no checkpoint connection; commits checkpoint the WAL themselves");
                (None, None)
            }
        };
        Committer {
            tx: Some(tx),
            thread: Some(thread),
            stop_checkpoints,
            checkpoints,
        }
    }

    /// Queues alerts whose ids are assigned. Call in id order (under the
    /// lock that assigns them): they are committed and published in
    /// queue order.
    pub fn alerts(&self, alerts: Vec<Alert>) -> Pending {
        if alerts.is_empty() {
            return Pending::none();
        }
        let (reply, rx) = oneshot::channel();
        self.send(Job::Alerts(alerts, reply));
        Pending(Some((rx, Vec::new())))
    }

    /// Queues a probe of the store (`/readyz`; see [`AlertLog::probe`]).
    pub fn probe(&self) {
        self.send(Job::Probe);
    }

    /// Queues a supervisor's change of an alert's handling; `alert` is its
    /// latest version as read, with a new `event_id` assigned (in id order,
    /// like [`alerts`](Self::alerts)).
    pub fn handle(&self, alert: Alert, change: HandlingChange) -> Pending {
        let (reply, rx) = oneshot::channel();
        self.send(Job::Handle(Box::new(alert), change, reply));
        Pending(Some((rx, Vec::new())))
    }

    /// Queues a repeat-caller record (nobody waits for it).
    pub fn caller_call(&self, caller: CallerKey, at: jiff::Timestamp) {
        self.send(Job::CallerCall(caller, at));
    }

    fn send(&self, job: Job) {
        // The thread outlives every sender but panics; a lost job then
        // answers its waiter with `Closed` (the reply sender is dropped).
        if let Some(tx) = &self.tx {
            let _ = tx.send(job);
        }
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.stop_checkpoints = None;
        if let Some(thread) = self.checkpoints.take() {
            let _ = thread.join();
        }
    }
}

/// Checkpoints every [`CHECKPOINT_EVERY`] until `stop` is dropped. A failed
/// checkpoint loses nothing (the frames stay in the WAL for the next one),
/// so it is reported and retried, and readiness is left to the writer.
fn checkpoint_until_stopped(checkpointer: &Checkpointer, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        let started = Instant::now();
        match checkpointer.run() {
            Ok(progress) => {
                metrics::histogram!(crate::telemetry::metrics::CHECKPOINT_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                tracing::trace!(?progress, "checkpoint");
            }
            Err(error) => {
                metrics::counter!(crate::telemetry::metrics::STORE_ERRORS, "op" => "checkpoint")
                    .increment(1);
                tracing::warn!(%error, "checkpoint failed; retrying");
            }
        }
    }
}

fn run(store: &Store, rx: &mpsc::Receiver<Job>) {
    while let Some(group) = next_group(rx) {
        commit_group(store, group);
    }
}

/// Waits for a job, then takes every job already waiting behind it (up to
/// [`MAX_GROUP`]): the group is what queued while the last commit ran, so
/// it grows with the load and no job waits for a timer. `None` once every
/// sender is gone and the queue is empty.
fn next_group(rx: &mpsc::Receiver<Job>) -> Option<Vec<Job>> {
    let first = rx.recv().ok()?;
    let mut group = vec![first];
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    Some(group)
}

/// Hands refused alerts back to their waiter, to be raised again. A waiter
/// that is gone (a call the sweeper closed publishes without waiting) will
/// raise nothing: its alerts are lost, counted and logged as such. Returns
/// how many were lost.
fn hand_back(reply: oneshot::Sender<Committed>, failed: Failed) -> usize {
    let Err(Err(failed)) = reply.send(Err(failed)) else {
        return 0;
    };
    let lost = failed.alerts.len();
    if lost > 0 {
        metrics::counter!(crate::telemetry::metrics::ALERTS_UNSTORED).increment(lost as u64);
        tracing::error!(
            alerts = lost,
            error = %failed.error,
            "the alert store refused alerts nobody waits to raise again (a call closed by the idle timeout or stream grace); they are lost"
        );
    }
    lost
}

fn commit_group(store: &Store, group: Vec<Job>) {
    let mut alerts = Vec::new();
    let mut changes = Vec::new();
    let mut calls = Vec::new();
    let mut waiters = Vec::new();
    let mut probe = false;
    for job in group {
        match job {
            Job::Alerts(batch, reply) => {
                waiters.push((batch.len(), reply));
                changes.extend(batch.iter().map(|_| None));
                alerts.extend(batch);
            }
            Job::Handle(alert, change, reply) => {
                waiters.push((1, reply));
                alerts.push(*alert);
                changes.push(Some(change));
            }
            Job::CallerCall(caller, at) => calls.push((caller, at)),
            Job::Probe => probe = true,
        }
    }
    let mut log = store.lock();
    // A commit is a probe too; only a group without writes needs one.
    let written = match merge_updates(&log, &mut alerts, changes) {
        Err(e) => Err(("commit", e)),
        Ok(()) if alerts.is_empty() && calls.is_empty() && probe => {
            log.probe().map_err(|e| ("probe", e))
        }
        Ok(()) => log.commit(&alerts, &calls).map_err(|e| ("commit", e)),
    };
    if let Err((op, e)) = written {
        drop(log);
        store.failed(op, &e);
        let error = Arc::new(e);
        let mut alerts = alerts.into_iter();
        for (n, reply) in waiters {
            hand_back(
                reply,
                Failed {
                    error: error.clone(),
                    alerts: alerts.by_ref().take(n).collect(),
                    locals: Vec::new(),
                },
            );
        }
        return;
    }
    store.succeeded();
    metrics::histogram!(crate::telemetry::metrics::COMMIT_GROUP).record(alerts.len() as f64);
    let mut alerts = alerts.into_iter().map(Arc::new);
    let mut answers = Vec::with_capacity(waiters.len());
    for (n, reply) in waiters {
        let batch: Vec<Arc<Alert>> = alerts.by_ref().take(n).collect();
        for alert in &batch {
            metrics::counter!(crate::telemetry::metrics::ALERTS, "category" => alert.category.clone(), "severity" => alert.severity.as_str())
                .increment(1);
            // No receiver is fine: nobody is subscribed right now.
            let _ = store.bus.send(alert.clone());
        }
        answers.push((batch, reply));
    }
    drop(log);
    for (batch, reply) in answers {
        let _ = reply.send(Ok(batch));
    }
}

/// Brings every update in `alerts` (in event-id order) up to date with the
/// version of its alert stored or queued before it (see the module
/// documentation). New alerts (an `alert_id` past the committed counter
/// and not earlier in the group) cost no read.
fn merge_updates(
    log: &AlertLog,
    alerts: &mut [Alert],
    changes: Vec<Option<HandlingChange>>,
) -> Result<(), StoreError> {
    if alerts.is_empty() {
        return Ok(());
    }
    let committed = log.counters()?.last_alert_id;
    let mut latest: HashMap<u64, usize> = HashMap::new();
    for (i, change) in changes.into_iter().enumerate() {
        let id = alerts[i].alert_id;
        let before = match latest.get(&id) {
            Some(&j) => Some(alerts[j].clone()),
            None if id <= committed => log.latest_of_alert(id)?,
            None => None,
        };
        if let Some(before) = before {
            let alert = &mut alerts[i];
            match change {
                None => alert.handling = before.handling,
                Some(change) => {
                    let event_id = alert.event_id;
                    let handling = change.apply(before.handling.as_ref());
                    *alert = Alert {
                        event_id,
                        handling: Some(handling),
                        ..before
                    };
                }
            }
        }
        latest.insert(id, i);
    }
    Ok(())
}
