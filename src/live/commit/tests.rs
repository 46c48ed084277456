//! The commit thread on a real store: how jobs group, what a group that
//! the store refuses answers, that nobody hears of an alert before it is
//! stored and published, that the bus is in event-id order, and that
//! dropping the committer stores everything queued.

use std::path::Path;

use super::*;
use crate::alert::{AlertFilter, AlertStatus, HandlingState};
use crate::category::Severity;
use crate::store::IdCounters;

fn t0() -> jiff::Timestamp {
    "2026-10-05T12:00:00Z".parse().unwrap()
}

/// A new alert of `call_id` (ids not yet assigned).
fn alert(call_id: &str) -> Alert {
    Alert {
        event_id: 0,
        alert_id: 0,
        status: AlertStatus::Provisional,
        call_id: call_id.into(),
        tenant: "acme".into(),
        agent_id: "a1".into(),
        category: "violence".into(),
        severity: Severity::Critical,
        rule: "ja/violence/korosu".into(),
        lexicon_version: "commit-test.1".into(),
        at_ms: 1_000,
        raised_at: t0(),
        evidence: Vec::new(),
        action: "supervisor_takeover".into(),
        handling: None,
    }
}

fn store_in(dir: &Path) -> Arc<Store> {
    Arc::new(Store::new(AlertLog::open(dir).expect("store opens"), 1_024))
}

/// Ids as the service hands them out: after those committed.
fn counters(store: &Store) -> IdCounters {
    store.lock().counters().unwrap()
}

/// An `Alerts` job and the receiver of its answer.
fn alerts_job(batch: Vec<Alert>) -> (Job, oneshot::Receiver<Committed>) {
    let (reply, rx) = oneshot::channel();
    (Job::Alerts(batch, reply), rx)
}

fn answered(mut rx: oneshot::Receiver<Committed>) -> Committed {
    rx.try_recv()
        .expect("answered when the group was committed")
}

fn stored(store: &Store) -> Vec<Alert> {
    store
        .lock()
        .read_after(0, &AlertFilter::default(), 10_000)
        .unwrap()
}

fn event_ids<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> Vec<u64> {
    alerts.into_iter().map(|a| a.event_id).collect()
}

fn drain(bus: &mut broadcast::Receiver<Arc<Alert>>) -> Vec<u64> {
    std::iter::from_fn(|| bus.try_recv().ok())
        .map(|a| a.event_id)
        .collect()
}

/// Takes the database file away from the open store (every write is then
/// refused) and puts it back when dropped.
struct Unplugged(std::path::PathBuf, std::path::PathBuf);

fn unplug(store: &Store) -> Unplugged {
    let db = store.lock().path().to_owned();
    let away = db.with_extension("away");
    std::fs::rename(&db, &away).unwrap();
    Unplugged(db, away)
}

impl Drop for Unplugged {
    fn drop(&mut self) {
        std::fs::rename(&self.1, &self.0).unwrap();
    }
}

#[test]
fn a_group_is_every_job_waiting_up_to_max_group() {
    let (tx, rx) = mpsc::channel();
    for _ in 0..MAX_GROUP + 3 {
        tx.send(Job::Probe).unwrap();
    }
    assert_eq!(next_group(&rx).map(|g| g.len()), Some(MAX_GROUP));
    assert_eq!(next_group(&rx).map(|g| g.len()), Some(3));
    tx.send(Job::Probe).unwrap();
    drop(tx);
    // What was queued before the senders went is still committed.
    assert_eq!(next_group(&rx).map(|g| g.len()), Some(1));
    assert!(next_group(&rx).is_none());
}

#[test]
fn one_commit_answers_each_waiter_with_its_own_batch_after_publishing_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut bus = store.bus.subscribe();
    let mut ids = counters(&store);
    let batches: Vec<Vec<Alert>> = [1, 3, 2]
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            (0..n)
                .map(|_| ids.assign(alert(&format!("c{i}"))))
                .collect()
        })
        .collect();
    let caller = CallerKey([7; 32]);
    let mut group = vec![Job::CallerCall(caller, t0()), Job::Probe];
    let mut waiting = Vec::new();
    for batch in &batches {
        let (job, rx) = alerts_job(batch.clone());
        group.push(job);
        waiting.push(rx);
    }

    commit_group(&store, group);

    // Each waiter gets exactly its batch, as stored.
    for (rx, batch) in waiting.into_iter().zip(&batches) {
        let got = answered(rx).unwrap_or_else(|f| panic!("{}", f.error));
        assert_eq!(
            got.iter().map(|a| (**a).clone()).collect::<Vec<_>>(),
            *batch
        );
    }
    // Everything is stored, and was on the bus before anyone was answered
    // (commit_group publishes, then replies), in event-id order.
    let all: Vec<&Alert> = batches.iter().flatten().collect();
    assert_eq!(event_ids(&stored(&store)), event_ids(all.iter().copied()));
    assert_eq!(drain(&mut bus), event_ids(all.iter().copied()));
    assert_eq!(
        store
            .lock()
            .calls_since(t0() - jiff::SignedDuration::from_hours(1))
            .unwrap(),
        [(caller, t0())]
    );
    assert!(store.is_ready());
}

/// A group is one transaction: when its commit fails, none of it is
/// stored — not even the batches before the one that broke it — and each
/// waiter gets its own alerts back, to keep and raise again.
#[test]
fn a_group_that_fails_stores_nothing_and_hands_each_waiter_its_alerts_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut bus = store.bus.subscribe();
    let mut ids = counters(&store);
    let good = vec![ids.assign(alert("c1")), ids.assign(alert("c1"))];
    // An event id SQLite cannot hold (past i64::MAX) breaks the commit.
    let mut poison = ids.assign(alert("c2"));
    poison.event_id = u64::MAX;
    let (first, first_rx) = alerts_job(good.clone());
    let (second, second_rx) = alerts_job(vec![poison.clone()]);
    let caller = CallerKey([9; 32]);

    commit_group(&store, vec![first, Job::CallerCall(caller, t0()), second]);

    let failed = answered(first_rx).expect_err("the whole group failed");
    assert_eq!(failed.alerts, good);
    assert!(
        failed.error.to_string().contains("callguard.db"),
        "{}",
        failed.error
    );
    let failed = answered(second_rx).expect_err("the whole group failed");
    assert_eq!(failed.alerts, [poison]);
    assert!(stored(&store).is_empty());
    assert!(
        drain(&mut bus).is_empty(),
        "nobody hears of an unstored alert"
    );
    assert!(store
        .lock()
        .calls_since(jiff::Timestamp::UNIX_EPOCH)
        .unwrap()
        .is_empty());
    assert!(!store.is_ready());

    // The next group is on its own: stored, and the store ready again.
    // (The ids of the failed group are skipped, not reused.)
    let next = ids.assign(alert("c3"));
    let (job, rx) = alerts_job(vec![next.clone()]);
    commit_group(&store, vec![job]);
    assert!(answered(rx).is_ok());
    assert_eq!(stored(&store), [next]);
    assert!(store.is_ready());
}

#[test]
fn refused_alerts_nobody_waits_for_are_counted_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut ids = counters(&store);
    let mut poison = ids.assign(alert("c1"));
    poison.event_id = u64::MAX;
    let error = {
        let (job, rx) = alerts_job(vec![poison.clone()]);
        commit_group(&store, vec![job]);
        answered(rx).expect_err("refused").error
    };
    let refused = |alerts: Vec<Alert>| Failed {
        error: error.clone(),
        alerts,
        locals: Vec::new(),
    };
    // A waiter that is there gets them back, nothing lost.
    let (tx, rx) = oneshot::channel();
    assert_eq!(hand_back(tx, refused(vec![poison.clone()])), 0);
    assert_eq!(
        answered(rx).expect_err("handed back").alerts,
        [poison.clone()]
    );
    // A waiter that is gone (the sweeper's close): lost, and said so.
    let (tx, rx) = oneshot::channel::<Committed>();
    drop(rx);
    assert_eq!(hand_back(tx, refused(vec![poison.clone(), poison])), 2);
}

#[test]
fn a_probe_alone_follows_the_store_into_failure_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    assert!(store.is_ready());
    let unplugged = unplug(&store);
    commit_group(&store, vec![Job::Probe]);
    assert!(!store.is_ready());
    drop(unplugged);
    commit_group(&store, vec![Job::Probe]);
    assert!(store.is_ready());
}

/// A supervisor's change and the call's own update of one alert, queued
/// in the same group: the writer merges them from the version queued
/// before, not only from the store (`merge_updates`).
#[test]
fn updates_of_one_alert_in_one_group_are_merged_in_event_id_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let mut ids = counters(&store);
    let raised = ids.assign(alert("c1"));
    // As the service makes them: the handling change from the version it
    // read (the provisional one), the retraction from the call state.
    let handled = ids.assign(raised.clone());
    let change = HandlingChange {
        state: HandlingState::Acknowledged,
        by: "sv".into(),
        assignee: String::new(),
        note: String::new(),
        at: t0(),
    };
    let mut retracted = ids.assign(raised.clone());
    retracted.status = AlertStatus::Retracted;
    let (first, first_rx) = alerts_job(vec![raised.clone()]);
    let (reply, handle_rx) = oneshot::channel();
    let (third, third_rx) = alerts_job(vec![retracted.clone()]);

    commit_group(
        &store,
        vec![
            first,
            Job::Handle(Box::new(handled.clone()), change, reply),
            third,
        ],
    );

    assert!(answered(first_rx).is_ok());
    let handled = answered(handle_rx).unwrap_or_else(|f| panic!("{}", f.error));
    let handling = handled[0].handling.clone().expect("handled");
    assert_eq!(
        (handling.state, handling.by.as_str()),
        (HandlingState::Acknowledged, "sv")
    );
    assert_eq!(handled[0].status, AlertStatus::Provisional);
    let retracted = answered(third_rx).unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(retracted[0].status, AlertStatus::Retracted);
    assert_eq!(
        retracted[0].handling,
        Some(handling),
        "kept from the change before"
    );
    let latest = store
        .lock()
        .latest_of_alert(raised.alert_id)
        .unwrap()
        .unwrap();
    assert_eq!(latest, *retracted[0]);
}

#[tokio::test]
async fn the_thread_publishes_before_it_answers_and_a_refusing_store_answers_every_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let committer = Committer::start(store.clone());
    let mut bus = store.bus.subscribe();
    let mut ids = counters(&store);

    let first = ids.assign(alert("c1"));
    let stored_batch = committer.alerts(vec![first.clone()]).await;
    assert_eq!(stored_batch.ok().map(|b| b.len()), Some(1));
    // Answered only after it was published: it is on the bus already.
    assert_eq!(drain(&mut bus), [first.event_id]);

    let unplugged = unplug(&store);
    let refused: Vec<Alert> = (0..3).map(|_| ids.assign(alert("c2"))).collect();
    let pending: Vec<Pending> = refused
        .iter()
        .map(|a| {
            let local = Local {
                id: a.alert_id as u32,
                fresh: true,
                refused_seqs: Vec::new(),
            };
            committer.alerts(vec![a.clone()]).with_locals(vec![local])
        })
        .collect();
    for (pending, alert) in pending.into_iter().zip(&refused) {
        let failed = pending.await.expect_err("refused");
        // Its own alert back, with what the service needs to keep it.
        assert_eq!(failed.alerts, std::slice::from_ref(alert));
        assert_eq!(failed.locals.len(), 1);
        assert_eq!(u64::from(failed.locals[0].id), alert.alert_id);
    }
    assert!(!store.is_ready());
    assert!(drain(&mut bus).is_empty());
    drop(unplugged);

    let after = ids.assign(alert("c3"));
    assert!(committer.alerts(vec![after.clone()]).await.is_ok());
    assert!(store.is_ready());
    assert_eq!(drain(&mut bus), [after.event_id]);
    assert_eq!(event_ids(&stored(&store)), [first.event_id, after.event_id]);
}

/// Many threads assigning ids under one lock and queueing under it (as
/// the service does under its ledger lock): the bus, the store and each
/// batch's answer all keep event-id order, whatever groups formed.
#[tokio::test]
async fn alerts_queued_in_id_order_from_many_threads_are_published_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let committer = Arc::new(Committer::start(store.clone()));
    let mut bus = store.bus.subscribe();
    let ledger = Arc::new(Mutex::new(counters(&store)));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (committer, ledger) = (committer.clone(), ledger.clone());
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        let mut ids = ledger.lock().unwrap();
                        let batch = (0..1 + i % 3)
                            .map(|_| ids.assign(alert(&format!("t{t}"))))
                            .collect::<Vec<_>>();
                        (event_ids(&batch), committer.alerts(batch))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut queued = 0;
    for thread in threads {
        for (ids, pending) in thread.join().unwrap() {
            let got = pending.await.unwrap_or_else(|f| panic!("{}", f.error));
            assert_eq!(event_ids(got.iter().map(|a| &**a)), ids);
            queued += ids.len();
        }
    }
    let published = drain(&mut bus);
    assert_eq!(published.len(), queued);
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
    assert_eq!(event_ids(&stored(&store)), published);
}

#[tokio::test]
async fn dropping_the_committer_stores_and_answers_everything_queued() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(dir.path());
    let committer = Committer::start(store.clone());
    let mut ids = counters(&store);
    let batches: Vec<Vec<Alert>> = (0..200)
        .map(|i| vec![ids.assign(alert(&format!("c{i}")))])
        .collect();
    let pending: Vec<Pending> = batches
        .iter()
        .map(|b| committer.alerts(b.clone()))
        .collect();
    committer.caller_call(CallerKey([3; 32]), t0());
    // Shutdown: the queue is drained and both threads joined.
    drop(committer);
    for (pending, batch) in pending.into_iter().zip(&batches) {
        let got = pending.await.unwrap_or_else(|f| panic!("{}", f.error));
        assert_eq!(*got[0], batch[0]);
    }
    let all: Vec<&Alert> = batches.iter().flatten().collect();
    assert_eq!(event_ids(&stored(&store)), event_ids(all.iter().copied()));
    assert_eq!(
        store
            .lock()
            .calls_since(jiff::Timestamp::UNIX_EPOCH)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_batch_the_writer_never_answered_resolves_as_closed_with_its_locals() {
    let (reply, rx) = oneshot::channel::<Committed>();
    drop(reply); // the writer thread died with the job
    let local = Local {
        id: 4,
        fresh: true,
        refused_seqs: vec![2],
    };
    let failed = Pending(Some((rx, Vec::new())))
        .with_locals(vec![local])
        .await
        .expect_err("not stored");
    assert!(
        matches!(*failed.error, StoreError::Closed),
        "{}",
        failed.error
    );
    assert!(failed.alerts.is_empty());
    assert_eq!(
        (
            failed.locals[0].id,
            failed.locals[0].refused_seqs.as_slice()
        ),
        (4, &[2][..])
    );
    assert!(Pending::none().is_settled());
    assert!(Pending::none().await.is_ok_and(|stored| stored.is_empty()));
}
