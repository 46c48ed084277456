//! The live-state owner without a transport: events in, alerts with
//! service-wide ids out through the commit thread to the store and the
//! bus; tenant scope, ended ids, handling changes merged by the writer,
//! and reload. On a small lexicon written for these tests.

use std::path::Path;
use std::sync::Arc;

use super::{HandlingError, Outcome, ReloadError, Rules, Service};
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

fn service_with(dir: &Path, mut config: ServeConfig) -> Service {
    config.data_dir = dir.join("data");
    let rules = Rules {
        engine: crate::engine::engine_from_files(&[MANIFEST, JA, EN]),
        policy: Policy::builtin(),
    };
    let log = AlertLog::open(&config.data_dir).expect("store opens");
    Service::new(config, rules, log).expect("service starts")
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
