//! The live-state owner without a transport: events in, alerts with
//! service-wide ids out through the commit thread to the store and the
//! bus; tenant scope, ended ids, handling changes merged by the writer,
//! and reload. On a small lexicon written for these tests.
//!
//! What depends on the time (idle timeouts, stream grace, how long an
//! ended id is refused, business hours, the repeat-caller window) runs on
//! a [`ManualClock`]: a test steps it past a limit and calls `sweep`, as
//! the sweeper would, instead of sleeping.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::{Clock, HandlingError, ManualClock, Outcome, ReloadError, Rules, Service};
use crate::alert::{Alert, AlertStatus, HandlingChange, HandlingState};
use crate::category::{Severity, Speaker};
use crate::config::ServeConfig;
use crate::engine::Scratch;
use crate::event::{CallEnd, CallStart, Event, Fragment};
use crate::policy::Policy;
use crate::store::AlertLog;

const MANIFEST: (&str, &str) = ("lexicon.toml", "version = \"live-test.1\"\n");
const JA: (&str, &str) = (
    "ja/lex.toml",
    r#"
[[term]]
id = "korosu"
category = "violence"
patterns = ["殺すぞ", "ころすぞ"]
"#,
);
const EN: (&str, &str) = (
    "en/lex.toml",
    r#"
[[term]]
id = "kill"
category = "violence"
patterns = ["I will kill you"]
"#,
);

/// A service on its own store in `dir`, running the test lexicon (ja, en).
fn service(dir: &Path) -> Service {
    service_with(dir, ServeConfig::default())
}

fn service_with(dir: &Path, config: ServeConfig) -> Service {
    service_on(dir, config, Clock::system())
}

fn service_on(dir: &Path, mut config: ServeConfig, clock: Clock) -> Service {
    config.data_dir = dir.join("data");
    let rules = Rules {
        engine: crate::engine::engine_from_files(&[MANIFEST, JA, EN]),
        policy: Policy::builtin(),
    };
    let log = AlertLog::open(&config.data_dir).expect("store opens");
    Service::with_clock(config, rules, log, clock).expect("service starts")
}

fn start(call_id: &str, tenant: &str) -> Event {
    Event::Start(CallStart {
        call_id: call_id.into(),
        tenant: tenant.into(),
        agent_id: "a1".into(),
        language: Some("ja".into()),
        ..CallStart::default()
    })
}

fn said(call_id: &str, seq: u64, utterance: &str, text: &str, is_final: bool) -> Event {
    Event::Fragment(Fragment {
        call_id: call_id.into(),
        seq,
        speaker: Speaker::Customer,
        text: text.into(),
        is_final,
        utterance_id: utterance.into(),
        start_ms: seq * 1_000,
        end_ms: seq * 1_000 + 900,
        language: Some("ja".into()),
        loudness_dbfs: None,
    })
}

fn end(call_id: &str) -> Event {
    Event::End(CallEnd {
        call_id: call_id.into(),
        end_ms: 60_000,
    })
}

/// Applies an event that must be accepted; waits for its alerts to be
/// committed and published; returns the violence alerts (a start may
/// also raise out_of_hours, depending on the hour the test runs).
async fn apply(service: &Service, event: Event, scope: Option<&str>) -> Vec<Arc<Alert>> {
    let outcome = service.apply(event, scope, &mut Scratch::default());
    let Outcome::Accepted { alerts, .. } = outcome else {
        panic!("refused: {}", describe(&outcome));
    };
    let committed = alerts
        .await
        .unwrap_or_else(|f| panic!("not stored: {}", f.error));
    committed
        .into_iter()
        .filter(|a| a.category == "violence")
        .collect()
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted { duplicate, .. } => format!("accepted (duplicate: {duplicate})"),
        Outcome::Refused(e) => format!("refused: {e}"),
        Outcome::Denied(reason) => format!("denied: {reason}"),
        Outcome::Ended(reason) => format!("ended: {reason}"),
    }
}

fn acknowledge(by: &str) -> HandlingChange {
    HandlingChange {
        state: HandlingState::Acknowledged,
        by: by.into(),
        assignee: String::new(),
        note: String::new(),
        at: jiff::Timestamp::now(),
    }
}

#[tokio::test]
async fn alerts_get_service_wide_ids_and_reach_the_store_and_the_bus_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    let mut bus = service.subscribe_live();

    let mut raised = Vec::new();
    for call_id in ["c1", "c2"] {
        apply(&service, start(call_id, "acme"), None).await;
        let alerts = apply(&service, said(call_id, 1, "u1", "ぶっ殺すぞ", true), None).await;
        assert_eq!(alerts.len(), 1, "{call_id}: {alerts:?}");
        let alert = &alerts[0];
        assert_eq!(
            (alert.call_id.as_str(), alert.tenant.as_str()),
            (call_id, "acme")
        );
        assert_eq!(
            (alert.severity, alert.status),
            (Severity::Critical, AlertStatus::Confirmed)
        );
        raised.push(alert.clone());
    }
    // Two calls, two alerts: ids the service hands out, increasing.
    assert!(raised[0].alert_id < raised[1].alert_id, "{raised:?}");
    assert!(raised[0].event_id < raised[1].event_id, "{raised:?}");

    // The bus carries every committed alert in event-id order.
    let mut published = Vec::new();
    while let Ok(alert) = bus.try_recv() {
        published.push(alert.event_id);
    }
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
    for alert in &raised {
        assert!(published.contains(&alert.event_id), "{published:?}");
        let stored = service
            .with_log(|log| log.latest_of_alert(alert.alert_id))
            .unwrap()
            .expect("stored");
        assert_eq!(&stored, &**alert);
    }
    // The call lists its alerts by their service-wide ids.
    let (snapshot, ids) = service.find_call(Some("acme"), "c1").expect("live call");
    assert_eq!(snapshot.call_id, "c1");
    assert!(ids.contains(&raised[0].alert_id), "{ids:?}");
}

#[tokio::test]
async fn a_resent_event_is_a_duplicate_and_raises_nothing_again() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    apply(&service, start("c1", "acme"), None).await;
    assert_eq!(
        apply(&service, said("c1", 1, "u1", "ぶっ殺すぞ", true), None)
            .await
            .len(),
        1
    );
    let again = service.apply(
        said("c1", 1, "u1", "ぶっ殺すぞ", true),
        None,
        &mut Scratch::default(),
    );
    match again {
        Outcome::Accepted { duplicate, alerts } => {
            assert!(duplicate);
            assert!(alerts.is_settled(), "a duplicate queues no alerts");
        }
        other => panic!("{}", describe(&other)),
    }
}

#[tokio::test]
async fn a_scoped_sender_keeps_to_its_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    let outcome = service.apply(start("c1", "globex"), Some("acme"), &mut Scratch::default());
    match &outcome {
        Outcome::Denied(reason) => assert!(reason.starts_with("tenant:"), "{reason}"),
        other => panic!("{}", describe(other)),
    }
    assert!(service.find_call(None, "c1").is_none());

    // A start naming no tenant gets the sender's.
    apply(&service, start("c1", ""), Some("acme")).await;
    let (snapshot, _) = service.find_call(Some("acme"), "c1").expect("in acme");
    assert_eq!(snapshot.tenant, "acme");
    assert!(service.find_call(Some("globex"), "c1").is_none());
    // The same call id in another tenant is another call.
    apply(&service, start("c1", "globex"), Some("globex")).await;
    assert_eq!(service.list_calls(None, false).len(), 2);
}

#[tokio::test]
async fn an_ended_call_id_is_not_opened_again() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    apply(&service, start("c1", "acme"), None).await;
    apply(&service, end("c1"), None).await;
    assert!(service.list_calls(Some("acme"), false).is_empty());
    assert_eq!(service.list_calls(Some("acme"), true).len(), 1);
    for event in [start("c1", "acme"), said("c1", 1, "u1", "もしもし", true)] {
        match service.apply(event, Some("acme"), &mut Scratch::default()) {
            Outcome::Ended(reason) => assert!(reason.starts_with("call_id:"), "{reason}"),
            other => panic!("{}", describe(&other)),
        }
    }
    // Another tenant's call of the same id is not held back by it.
    apply(&service, start("c1", "globex"), Some("globex")).await;
}

/// The writer merges two kinds of update that do not know of each other
/// (`commit.rs`): a supervisor acknowledges a provisional alert, then
/// the final text retracts it. The stored retraction keeps the handling.
#[tokio::test]
async fn a_detection_update_after_a_handling_change_keeps_the_handling() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    apply(&service, start("c1", "acme"), None).await;
    let provisional = apply(&service, said("c1", 1, "u1", "お前ころすぞ", false), None).await;
    assert_eq!(provisional.len(), 1);
    let provisional = &provisional[0];
    assert_eq!(provisional.status, AlertStatus::Provisional);

    let handled = service
        .change_handling(provisional.alert_id, Some("acme"), acknowledge("sv"))
        .await
        .unwrap();
    assert_eq!(handled.alert_id, provisional.alert_id);
    assert!(handled.event_id > provisional.event_id);
    assert_eq!(handled.status, AlertStatus::Provisional);
    let handling = handled.handling.as_ref().expect("handled");
    assert_eq!(
        (handling.state, handling.by.as_str()),
        (HandlingState::Acknowledged, "sv")
    );

    let outcome = service.apply(
        said("c1", 2, "u1", "お前のところに行くよ", true),
        None,
        &mut Scratch::default(),
    );
    let Outcome::Accepted { alerts, .. } = outcome else {
        panic!("{}", describe(&outcome));
    };
    let retracted = alerts.await.unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(retracted.len(), 1);
    let retracted = &retracted[0];
    assert_eq!(retracted.alert_id, provisional.alert_id);
    assert_eq!(retracted.status, AlertStatus::Retracted);
    assert!(retracted.event_id > handled.event_id);
    assert_eq!(retracted.handling, handled.handling, "the writer kept it");
    let latest = service
        .with_log(|log| log.latest_of_alert(provisional.alert_id))
        .unwrap()
        .unwrap();
    assert_eq!(&latest, &**retracted);
}

#[tokio::test]
async fn a_handling_change_is_held_to_the_callers_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    apply(&service, start("c1", "acme"), None).await;
    let alert = apply(&service, said("c1", 1, "u1", "ぶっ殺すぞ", true), None).await;
    let alert_id = alert[0].alert_id;

    let e = service
        .change_handling(alert_id, Some("globex"), acknowledge("other"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, HandlingError::OutOfScope { tenant, .. } if tenant == "acme"),
        "{e}"
    );
    let e = service
        .change_handling(alert_id + 1_000, None, acknowledge("sv"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, HandlingError::NotFound(id) if id == alert_id + 1_000),
        "{e}"
    );
    let mut nobody = acknowledge("sv");
    nobody.state = HandlingState::Assigned;
    let e = service
        .change_handling(alert_id, None, nobody)
        .await
        .unwrap_err();
    assert!(matches!(e, HandlingError::Invalid(_)), "{e}");
    // Refusals stored nothing: the alert is as it was raised.
    let latest = service
        .with_log(|log| log.latest_of_alert(alert_id))
        .unwrap()
        .unwrap();
    assert_eq!(&latest, &*alert[0]);
}

/// Writes a lexicon folder with these files.
fn lexicon_dir(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    let root = dir.join("lexicons");
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    root
}

#[tokio::test]
async fn reload_swaps_the_rules_or_keeps_those_in_force() {
    let dir = tempfile::tempdir().unwrap();
    // The configured folder lacks English, which the rules in force have.
    let manifest = ("lexicon.toml", "version = \"live-test.2\"\n");
    let config = ServeConfig {
        lexicons: Some(lexicon_dir(dir.path(), &[manifest, JA])),
        ..ServeConfig::default()
    };
    let service = service_with(dir.path(), config);
    // The version is the manifest's, then `+` and a hash of the content.
    let manifest_version = |s: &Service| {
        let version = s.rules().engine.version().to_owned();
        version.split('+').next().unwrap_or_default().to_owned()
    };
    assert_eq!(manifest_version(&service), "live-test.1");

    let e = service.reload(false).unwrap_err();
    assert!(
        matches!(&e, ReloadError::Removal(removed) if !removed.is_empty()),
        "{e}"
    );
    assert_eq!(manifest_version(&service), "live-test.1", "kept");

    let (version, terms) = service.reload(true).unwrap();
    assert_eq!(terms, 1);
    assert_eq!(version, service.rules().engine.version());
    assert_eq!(manifest_version(&service), "live-test.2");
    // Calls go on under the new rules.
    apply(&service, start("c1", "acme"), None).await;
    let alerts = apply(&service, said("c1", 1, "u1", "ぶっ殺すぞ", true), None).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].lexicon_version, version);

    // A folder that cannot be loaded changes nothing.
    std::fs::write(
        dir.path().join("lexicons/ja/lex.toml"),
        "[[term]]\nid = \"broken\"\n",
    )
    .unwrap();
    let e = service.reload(true).unwrap_err();
    assert!(matches!(e, ReloadError::Lexicon(_)), "{e}");
    assert_eq!(service.rules().engine.version(), version, "kept");
}

// ---- Time, through the service's clock ----

/// Monday 2026-10-05 12:00 UTC: inside the built-in business hours
/// (09:00–18:00 Mon–Fri, UTC), so a start raises no `out_of_hours`.
fn monday_noon() -> jiff::Timestamp {
    "2026-10-05T12:00:00Z".parse().unwrap()
}

/// The built-in session idle timeout (policy `session.idle_timeout_seconds`).
const IDLE: Duration = Duration::from_secs(600);

/// Applies an event that must be accepted and waits for its alerts to be
/// stored; returns them all (unlike [`apply`]: these tests fix the hour).
async fn apply_all(service: &Service, event: Event, scope: Option<&str>) -> Vec<Arc<Alert>> {
    let outcome = service.apply(event, scope, &mut Scratch::default());
    let Outcome::Accepted { alerts, .. } = outcome else {
        panic!("refused: {}", describe(&outcome));
    };
    alerts
        .await
        .unwrap_or_else(|f| panic!("not stored: {}", f.error))
}

fn live_ids(service: &Service) -> Vec<String> {
    service
        .list_calls(None, false)
        .into_iter()
        .map(|(s, _)| s.call_id)
        .collect()
}

#[tokio::test]
async fn an_idle_call_closes_at_its_timeout_and_its_provisional_alert_settles() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
    let mut bus = service.subscribe_live();
    assert!(apply_all(&service, start("c1", "acme"), None)
        .await
        .is_empty());
    let provisional = apply_all(&service, said("c1", 1, "u1", "お前ころすぞ", false), None).await;
    assert_eq!(provisional.len(), 1);
    assert_eq!(provisional[0].status, AlertStatus::Provisional);
    assert_eq!(bus.recv().await.unwrap().event_id, provisional[0].event_id);

    // One millisecond short of the timeout: the sweeper leaves it open.
    hand.advance(IDLE - Duration::from_millis(1));
    service.sweep();
    assert_eq!(live_ids(&service), ["c1"]);

    // At the timeout it closes as if it had ended: the provisional alert
    // settles (the update goes through the commit thread to the bus) ...
    hand.advance(Duration::from_millis(1));
    service.sweep();
    assert!(live_ids(&service).is_empty());
    let settled = bus.recv().await.unwrap();
    assert_eq!(settled.alert_id, provisional[0].alert_id);
    assert_eq!(settled.status, AlertStatus::Confirmed);
    assert!(settled.event_id > provisional[0].event_id);
    let stored = service
        .with_log(|log| log.latest_of_alert(settled.alert_id))
        .unwrap()
        .unwrap();
    assert_eq!(stored, *settled);
    // ... it is listed among the ended calls with its alert, and its id is
    // not opened again.
    let (snapshot, ids) = service.find_call(Some("acme"), "c1").expect("ended");
    assert_eq!(snapshot.call_id, "c1");
    assert_eq!(ids, [settled.alert_id]);
    let again = service.apply(
        said("c1", 2, "u2", "もしもし", true),
        None,
        &mut Scratch::default(),
    );
    assert!(matches!(again, Outcome::Ended(_)), "{}", describe(&again));
}

#[tokio::test]
async fn an_event_keeps_a_call_from_going_idle() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
    apply_all(&service, start("c1", "acme"), None).await;
    apply_all(&service, start("c2", "acme"), None).await;
    hand.advance(IDLE / 2);
    apply_all(&service, said("c2", 1, "u1", "もしもし", true), None).await;
    hand.advance(IDLE / 2);
    service.sweep();
    assert_eq!(live_ids(&service), ["c2"], "c1 was idle for the timeout");
    hand.advance(IDLE / 2);
    service.sweep();
    assert!(live_ids(&service).is_empty());
}

#[tokio::test]
async fn a_closed_stream_s_calls_close_after_the_grace_unless_another_stream_takes_them_up() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let config = ServeConfig::default();
    let grace = Duration::from_secs(config.limits.stream_grace_seconds);
    assert!(
        grace < IDLE,
        "the grace is what closes them, not the idle timeout"
    );
    let service = service_on(dir.path(), config, hand.clock());
    for call_id in ["c1", "c2", "c3"] {
        apply_all(&service, start(call_id, "acme"), Some("acme")).await;
    }
    // The stream that sent them goes without ending c1 and c2.
    service.orphan(Some("acme"), ["c1".to_owned(), "c2".to_owned()]);
    hand.advance(grace - Duration::from_millis(1));
    service.sweep();
    assert_eq!(live_ids(&service), ["c1", "c2", "c3"]);

    // Another stream takes c2 up: an event for it.
    apply_all(
        &service,
        said("c2", 1, "u1", "もしもし", true),
        Some("acme"),
    )
    .await;
    hand.advance(Duration::from_millis(1));
    service.sweep();
    assert_eq!(live_ids(&service), ["c2", "c3"], "c1 closed at the grace");
    let (ended, _) = service.find_call(Some("acme"), "c1").expect("ended");
    assert_eq!(ended.call_id, "c1");

    // An orphan naming a call that is not live (or another tenant's) is ignored.
    service.orphan(Some("globex"), ["c3".to_owned()]);
    service.orphan(None, ["nobody".to_owned()]);
    hand.advance(grace);
    service.sweep();
    assert_eq!(live_ids(&service), ["c2", "c3"]);
}

#[tokio::test]
async fn an_ended_call_id_is_free_again_after_recent_ended_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let config = ServeConfig::default();
    let keep = Duration::from_secs(config.limits.recent_ended_seconds);
    let service = service_on(dir.path(), config, hand.clock());
    apply_all(&service, start("c1", "acme"), None).await;
    apply_all(&service, end("c1"), None).await;

    // Kept for exactly `recent_ended_seconds` (and listed as ended) ...
    hand.advance(keep);
    service.sweep();
    let refused = service.apply(start("c1", "acme"), None, &mut Scratch::default());
    assert!(
        matches!(refused, Outcome::Ended(_)),
        "{}",
        describe(&refused)
    );
    assert_eq!(service.list_calls(Some("acme"), true).len(), 1);

    // ... then forgotten by the sweep: the id starts a new call.
    hand.advance(Duration::from_millis(1));
    service.sweep();
    assert!(service.list_calls(Some("acme"), true).is_empty());
    apply_all(&service, start("c1", "acme"), None).await;
    assert_eq!(live_ids(&service), ["c1"]);
}

#[tokio::test]
async fn business_hours_are_judged_at_the_call_s_start_as_the_clock_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
    let out_of_hours = |alerts: &[Arc<Alert>]| {
        alerts
            .iter()
            .filter(|a| a.category == "out_of_hours")
            .count()
    };
    // Monday noon: no alert; the alert's time is the clock's.
    assert_eq!(
        out_of_hours(&apply_all(&service, start("c1", "acme"), None).await),
        0
    );
    // A start that says when it began is judged at that, not the clock.
    let Event::Start(mut sunday) = start("c2", "acme") else {
        unreachable!()
    };
    sunday.started_at = Some("2026-10-04T12:00:00Z".parse().unwrap());
    let raised = apply_all(&service, Event::Start(sunday), None).await;
    assert_eq!(out_of_hours(&raised), 1, "{raised:?}");
    assert_eq!(
        raised[0].raised_at,
        monday_noon(),
        "raised now, by the clock"
    );

    // Seven hours on it is 19:00: after hours.
    hand.advance(Duration::from_secs(7 * 3600));
    let raised = apply_all(&service, start("c3", "acme"), None).await;
    assert_eq!(out_of_hours(&raised), 1, "{raised:?}");
    assert_eq!(
        raised[0].raised_at,
        monday_noon() + Duration::from_secs(7 * 3600)
    );
}

/// A start from this caller, with no `started_at` (the clock gives it).
fn start_from(call_id: &str, caller: &str) -> Event {
    let Event::Start(mut start) = start(call_id, "acme") else {
        unreachable!()
    };
    start.caller_id = Some(caller.into());
    Event::Start(start)
}

fn persistence(alerts: &[Arc<Alert>]) -> usize {
    alerts
        .iter()
        .filter(|a| a.category == "persistence")
        .count()
}

#[tokio::test]
async fn repeat_callers_are_counted_within_the_window_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let caller = "+81312345678";
    {
        let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
        // The built-in policy: the third call within 24 hours raises it.
        for call_id in ["c1", "c2"] {
            let raised = apply_all(&service, start_from(call_id, caller), None).await;
            assert_eq!(persistence(&raised), 0, "{call_id}: {raised:?}");
            hand.advance(Duration::from_secs(3600));
        }
        // Another caller does not count towards this one.
        let raised = apply_all(&service, start_from("c9", "+81399999999"), None).await;
        assert_eq!(persistence(&raised), 0);
        // Dropping the service commits what it queued (the caller records).
    }
    // A restart reads the calls within the window back from the store.
    let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
    let raised = apply_all(&service, start_from("c3", caller), None).await;
    assert_eq!(persistence(&raised), 1, "third call in 24 h: {raised:?}");

    // A day later the first two are out of the window: c3 and this one.
    hand.advance(Duration::from_secs(24 * 3600 - 1800));
    service.sweep();
    let raised = apply_all(&service, start_from("c4", caller), None).await;
    assert_eq!(persistence(&raised), 0, "{raised:?}");
}

// ---- A store that refuses writes ----

/// Takes the database file away from the open store (every write is then
/// refused, as after an operator's mistake), and gives it back when dropped.
struct Unplugged {
    db: std::path::PathBuf,
    away: std::path::PathBuf,
}

fn unplug(service: &Service) -> Unplugged {
    let db = service.with_log(|log| log.path().to_owned());
    let away = db.with_extension("away");
    std::fs::rename(&db, &away).unwrap();
    Unplugged { db, away }
}

impl Drop for Unplugged {
    fn drop(&mut self) {
        std::fs::rename(&self.away, &self.db).unwrap();
    }
}

#[tokio::test]
async fn an_alert_the_store_refused_is_raised_again_by_the_resend() {
    let dir = tempfile::tempdir().unwrap();
    let hand = ManualClock::at(monday_noon());
    let service = service_on(dir.path(), ServeConfig::default(), hand.clock());
    apply_all(&service, start("c1", "acme"), None).await;
    let threat = || said("c1", 1, "u1", "ぶっ殺すぞ", true);

    let unplugged = unplug(&service);
    let Outcome::Accepted { duplicate, alerts } =
        service.apply(threat(), None, &mut Scratch::default())
    else {
        panic!("the event itself is good");
    };
    assert!(!duplicate);
    let Err(failed) = alerts.await else {
        panic!("stored without a database file");
    };
    assert!(
        failed.error.to_string().contains("removed or replaced"),
        "{}",
        failed.error
    );
    assert_eq!(failed.alerts.len(), 1);
    assert_eq!(failed.alerts[0].category, "violence");
    let refused = failed.alerts[0].clone();
    assert!(!service.is_ready());
    // What the ingest stream does with a refusal: the service keeps it.
    service.retain("c1", 1, failed);
    let (_, ids) = service.find_call(Some("acme"), "c1").unwrap();
    assert!(ids.is_empty(), "only stored alerts are listed: {ids:?}");
    drop(unplugged);

    // The client resends the refused event: not a duplicate; the alert is
    // raised again, with ids after the skipped ones, and stored.
    let Outcome::Accepted { duplicate, alerts } =
        service.apply(threat(), None, &mut Scratch::default())
    else {
        panic!("the resend is taken");
    };
    assert!(!duplicate, "a resend of a refused event is not a duplicate");
    let stored = alerts.await.unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(stored.len(), 1);
    let alert = &stored[0];
    assert_eq!(
        (alert.category.as_str(), alert.rule.as_str()),
        (refused.category.as_str(), refused.rule.as_str())
    );
    assert!(
        alert.alert_id > refused.alert_id,
        "ids are skipped, not reused"
    );
    assert!(alert.event_id > refused.event_id);
    assert!(service.is_ready(), "readiness follows the commit");
    let latest = service
        .with_log(|log| log.latest_of_alert(alert.alert_id))
        .unwrap()
        .unwrap();
    assert_eq!(latest, **alert);
    assert_eq!(
        service
            .with_log(|log| log.latest_of_alert(refused.alert_id))
            .unwrap(),
        None
    );
    let (_, ids) = service.find_call(Some("acme"), "c1").unwrap();
    assert_eq!(ids, [alert.alert_id]);

    // Sent once more, it is an ordinary duplicate.
    match service.apply(threat(), None, &mut Scratch::default()) {
        Outcome::Accepted { duplicate, alerts } => {
            assert!(duplicate);
            assert!(alerts.is_settled());
        }
        other => panic!("{}", describe(&other)),
    }
}

#[tokio::test]
async fn a_refused_alert_goes_out_with_the_call_s_next_event_if_it_is_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let service = service_on(
        dir.path(),
        ServeConfig::default(),
        ManualClock::at(monday_noon()).clock(),
    );
    apply_all(&service, start("c1", "acme"), None).await;
    let unplugged = unplug(&service);
    let Outcome::Accepted { alerts, .. } = service.apply(
        said("c1", 1, "u1", "ぶっ殺すぞ", true),
        None,
        &mut Scratch::default(),
    ) else {
        panic!("the event itself is good");
    };
    let failed = alerts.await.expect_err("refused");
    service.retain("c1", 1, failed);
    drop(unplugged);

    let raised = apply_all(&service, said("c1", 2, "u2", "もしもし", true), None).await;
    assert_eq!(raised.len(), 1, "{raised:?}");
    assert_eq!(raised[0].category, "violence");
    // Raised once: the event after carries nothing more.
    assert!(
        apply_all(&service, said("c1", 3, "u3", "もしもし", true), None)
            .await
            .is_empty()
    );
}

// ---- Limits and who may send what ----

#[tokio::test]
async fn a_token_s_share_of_calls_is_held_and_freed_when_its_calls_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::default();
    config.limits.max_active_calls_per_token = 2;
    let service = service_with(dir.path(), config);
    let sent = |event: Event, token: &str| {
        service.apply_sent(event, Some("acme"), Some(token), &mut Scratch::default())
    };
    for call_id in ["c1", "c2"] {
        assert!(matches!(
            sent(start(call_id, "acme"), "gw1"),
            Outcome::Accepted { .. }
        ));
    }
    // A fragment opening a call counts as a start.
    for event in [start("c3", "acme"), said("c4", 1, "u1", "もしもし", true)] {
        match sent(event, "gw1") {
            Outcome::Refused(e) => assert_eq!(
                e.to_string(),
                "too many active calls for this ingest token (limit 2)"
            ),
            other => panic!("{}", describe(&other)),
        }
    }
    // Another token of the same tenant has its own share; events of calls
    // already open are not held back.
    assert!(matches!(
        sent(start("c3", "acme"), "gw2"),
        Outcome::Accepted { .. }
    ));
    assert!(matches!(
        sent(said("c1", 1, "u1", "もしもし", true), "gw1"),
        Outcome::Accepted { .. }
    ));
    // An end frees a slot.
    assert!(matches!(sent(end("c1"), "gw1"), Outcome::Accepted { .. }));
    assert!(matches!(
        sent(start("c5", "acme"), "gw1"),
        Outcome::Accepted { .. }
    ));
    assert_eq!(live_ids(&service), ["c2", "c3", "c5"]);
}

#[tokio::test]
async fn an_all_tenant_sender_must_name_the_tenant_of_an_ambiguous_call_id() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path());
    apply(&service, start("c1", "acme"), None).await;
    // One tenant with the id: a fragment without a tenant finds it.
    apply(&service, said("c1", 1, "u1", "もしもし", true), None).await;
    apply(&service, start("c1", "globex"), None).await;
    match service.apply(
        said("c1", 2, "u2", "もしもし", true),
        None,
        &mut Scratch::default(),
    ) {
        Outcome::Denied(reason) => assert!(reason.starts_with("call_id: 2 tenants"), "{reason}"),
        other => panic!("{}", describe(&other)),
    }
    // Scoped, it is that tenant's call.
    apply(
        &service,
        said("c1", 2, "u2", "もしもし", true),
        Some("globex"),
    )
    .await;
    let (acme, _) = service.find_call(Some("acme"), "c1").unwrap();
    let (globex, _) = service.find_call(Some("globex"), "c1").unwrap();
    assert_ne!(
        acme.last_event_ms, globex.last_event_ms,
        "each its own call"
    );
}
