use super::*;
use crate::alert::AlertStatus;
use crate::call::CallerHasher;
use jiff::{SignedDuration, Timestamp};

fn t0() -> Timestamp {
    "2026-10-05T00:00:00Z".parse().unwrap()
}

fn alert(call_id: &str, tenant: &str, category: &str, severity: Severity) -> Alert {
    Alert {
        event_id: 0,
        alert_id: 0,
        status: AlertStatus::Confirmed,
        call_id: call_id.into(),
        tenant: tenant.into(),
        agent_id: "a12".into(),
        category: category.into(),
        severity,
        rule: "ja/violence/korosu".into(),
        lexicon_version: "2026.11.1".into(),
        at_ms: 48_200,
        raised_at: t0(),
        evidence: Vec::new(),
        action: "supervisor_takeover".into(),
        handling: None,
    }
}

fn event_ids(alerts: &[Alert]) -> Vec<u64> {
    alerts.iter().map(|a| a.event_id).collect()
}

#[test]
fn ids_are_monotonic_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.last_event_id(), 0);
    let mut batch = vec![
        alert("c1", "acme", "violence", Severity::Critical),
        alert("c1", "acme", "abuse", Severity::Warning),
    ];
    log.append(&mut batch).unwrap();
    assert_eq!(event_ids(&batch), [1, 2]);
    assert_eq!(batch.iter().map(|a| a.alert_id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(log.last_event_id(), 2);
    drop(log);

    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.last_event_id(), 2);
    let mut batch = vec![alert("c2", "acme", "threat", Severity::Critical)];
    log.append(&mut batch).unwrap();
    assert_eq!((batch[0].event_id, batch[0].alert_id), (3, 3));
    // The stored alert is the whole alert, ids included.
    assert_eq!(log.alerts_of_call("c2", 10).unwrap(), batch);
}

#[test]
fn event_ids_are_not_reused_after_purge() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical); 3];
    log.append(&mut batch).unwrap();
    let purged = log
        .purge_before(t0() + SignedDuration::from_secs(1))
        .unwrap();
    assert_eq!(purged, 3);
    assert!(log
        .read_after(0, &AlertFilter::default(), 10)
        .unwrap()
        .is_empty());
    drop(log);
    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.last_event_id(), 3);
    let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical)];
    log.append(&mut batch).unwrap();
    assert_eq!((batch[0].event_id, batch[0].alert_id), (4, 4));
}

#[test]
fn purge_keeps_alerts_at_or_after_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut batch: Vec<Alert> = (0..3)
        .map(|h| Alert {
            raised_at: t0() + SignedDuration::from_hours(h),
            ..alert("c1", "acme", "violence", Severity::Critical)
        })
        .collect();
    log.append(&mut batch).unwrap();
    let purged = log
        .purge_before(t0() + SignedDuration::from_hours(1))
        .unwrap();
    assert_eq!(purged, 1);
    let left = log.read_after(0, &AlertFilter::default(), 10).unwrap();
    assert_eq!(event_ids(&left), [2, 3]);
}

#[test]
fn alert_id_is_kept_when_given_and_assigned_when_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut first = vec![alert("c1", "acme", "violence", Severity::Critical)];
    log.append(&mut first).unwrap();
    // An update keeps its alert_id and gets a new event_id.
    let mut update = vec![Alert {
        status: AlertStatus::Retracted,
        ..first[0].clone()
    }];
    update[0].event_id = 0;
    log.append(&mut update).unwrap();
    assert_eq!((update[0].alert_id, update[0].event_id), (1, 2));
    // A given id above the counter moves the counter past it.
    let mut batch = vec![
        Alert {
            alert_id: 10,
            ..alert("c2", "acme", "abuse", Severity::Warning)
        },
        alert("c2", "acme", "abuse", Severity::Warning),
    ];
    log.append(&mut batch).unwrap();
    assert_eq!(
        batch.iter().map(|a| a.alert_id).collect::<Vec<_>>(),
        [10, 11]
    );
    assert_eq!(event_ids(&batch), [3, 4]);
    let history = log.alerts_of_call("c1", 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].status, AlertStatus::Retracted);
}

fn mixed_log(dir: &Path) -> AlertLog {
    let mut log = AlertLog::open(dir).unwrap();
    let mut batch = Vec::new();
    for (i, tenant) in ["acme", "globex"].iter().enumerate() {
        for (j, category) in ["violence", "abuse", "profanity"].iter().enumerate() {
            for (k, severity) in [Severity::Info, Severity::Warning, Severity::Critical]
                .into_iter()
                .enumerate()
            {
                let call = format!("c{}", (i + j + k) % 4);
                batch.push(Alert {
                    agent_id: format!("a{}", (j + k) % 3),
                    raised_at: t0() + SignedDuration::from_mins((i * 9 + j * 3 + k) as i64),
                    ..alert(&call, tenant, category, severity)
                });
            }
        }
    }
    log.append(&mut batch).unwrap();
    log
}

#[test]
fn read_after_filters_in_sql_as_matches_does() {
    let dir = tempfile::tempdir().unwrap();
    let log = mixed_log(dir.path());
    let all = log.read_after(0, &AlertFilter::default(), 100).unwrap();
    assert_eq!(all.len(), 18);
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let filters = [
        (
            "tenant",
            AlertFilter {
                tenant: Some("globex".into()),
                ..Default::default()
            },
        ),
        (
            "unknown tenant",
            AlertFilter {
                tenant: Some("x".into()),
                ..Default::default()
            },
        ),
        (
            "call ids",
            AlertFilter {
                call_ids: strings(&["c0", "c3"]),
                ..Default::default()
            },
        ),
        (
            "categories",
            AlertFilter {
                categories: strings(&["abuse"]),
                ..Default::default()
            },
        ),
        (
            "min severity",
            AlertFilter {
                min_severity: Some(Severity::Warning),
                ..Default::default()
            },
        ),
        (
            "all",
            AlertFilter {
                tenant: Some("acme".into()),
                call_ids: strings(&["c1", "c2", "it's \"quoted\""]),
                categories: strings(&["violence", "profanity"]),
                min_severity: Some(Severity::Critical),
                agent_id: Some("a2".into()),
                since: Some(t0() + SignedDuration::from_mins(2)),
            },
        ),
        (
            "agent",
            AlertFilter {
                agent_id: Some("a1".into()),
                ..Default::default()
            },
        ),
        (
            "since",
            AlertFilter {
                since: Some(t0() + SignedDuration::from_mins(10)),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in filters {
        let got = log.read_after(0, &filter, 100).unwrap();
        let want: Vec<Alert> = all.iter().filter(|a| filter.matches(a)).cloned().collect();
        assert_eq!(got, want, "{name}");
        // And after a cursor.
        let got = log.read_after(9, &filter, 100).unwrap();
        let want: Vec<Alert> = want.into_iter().filter(|a| a.event_id > 9).collect();
        assert_eq!(got, want, "{name} after 9");
    }
}

#[test]
fn latest_of_alert_is_its_last_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut first = vec![
        alert("c1", "acme", "violence", Severity::Critical),
        alert("c2", "acme", "abuse", Severity::Warning),
    ];
    log.append(&mut first).unwrap();
    let mut update = vec![Alert {
        event_id: 0,
        status: AlertStatus::Retracted,
        ..first[0].clone()
    }];
    log.append(&mut update).unwrap();
    let latest = log.latest_of_alert(first[0].alert_id).unwrap().unwrap();
    assert_eq!(
        (latest.event_id, latest.status),
        (3, AlertStatus::Retracted)
    );
    assert_eq!(
        log.latest_of_alert(first[1].alert_id)
            .unwrap()
            .unwrap()
            .event_id,
        2
    );
    assert_eq!(log.latest_of_alert(99).unwrap(), None);
    assert_eq!(log.latest_of_alert(u64::MAX).unwrap(), None);
}

#[test]
fn read_after_pages_with_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = mixed_log(dir.path());
    let filter = AlertFilter {
        tenant: Some("acme".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor = 0;
    loop {
        let page = log.read_after(cursor, &filter, 4).unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        cursor = last.event_id;
        seen.extend(event_ids(&page));
    }
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());
    assert!(log.read_after(0, &filter, 0).unwrap().is_empty());
    assert!(log.read_after(u64::MAX, &filter, 10).unwrap().is_empty());
}

#[test]
fn alerts_of_call_in_event_order_with_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = mixed_log(dir.path());
    let c2 = log.alerts_of_call("c2", 100).unwrap();
    assert!(c2.iter().all(|a| a.call_id == "c2"));
    assert!(c2.windows(2).all(|w| w[0].event_id < w[1].event_id));
    assert_eq!(c2.len(), 5);
    assert_eq!(log.alerts_of_call("c2", 2).unwrap(), c2[..2]);
    assert!(log.alerts_of_call("nope", 10).unwrap().is_empty());
}

#[test]
fn caller_records_survive_reopen_and_purge() {
    let dir = tempfile::tempdir().unwrap();
    let hasher = CallerHasher::new(b"s");
    let key = hasher.key("+1555").unwrap();
    let other = hasher.key("+1666").unwrap();
    let at = |h| t0() + SignedDuration::from_hours(h);
    let mut log = AlertLog::open(dir.path()).unwrap();
    log.commit(&[], &[(key, at(0)), (key, at(10))]).unwrap();
    log.commit(&[], &[(other, at(11))]).unwrap();
    drop(log);
    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(
        log.calls_since(at(0) - SignedDuration::from_secs(1))
            .unwrap(),
        [(key, at(0)), (key, at(10)), (other, at(11))]
    );
    assert_eq!(log.calls_since(at(0)).unwrap().len(), 2, "after, not at");
    log.purge_before(at(11)).unwrap();
    assert_eq!(log.calls_since(t0()).unwrap(), [(other, at(11))]);
}

#[test]
fn commit_keeps_assigned_ids_and_moves_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut ids = log.counters().unwrap();
    assert_eq!(ids, IdCounters::default());
    let first = ids.assign(alert("c1", "acme", "violence", Severity::Critical));
    let mut update = first.clone();
    update.event_id = 0;
    let update = ids.assign(update);
    assert_eq!((first.event_id, first.alert_id), (1, 1));
    assert_eq!((update.event_id, update.alert_id), (2, 1));
    // Ids assigned but never committed (a failed group) are skipped.
    ids.assign(alert("c2", "acme", "insult", Severity::Warning));
    let third = ids.assign(alert("c2", "acme", "insult", Severity::Warning));
    log.commit(&[first, update], &[]).unwrap();
    log.commit(std::slice::from_ref(&third), &[]).unwrap();
    assert_eq!(log.last_event_id(), 4);
    drop(log);
    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(
        log.counters().unwrap(),
        IdCounters {
            last_event_id: 4,
            last_alert_id: 3
        }
    );
    let mut next = vec![alert("c3", "acme", "threat", Severity::Critical)];
    log.append(&mut next).unwrap();
    assert_eq!((next[0].event_id, next[0].alert_id), (5, 4));
    assert_eq!(
        event_ids(&log.read_after(0, &AlertFilter::default(), 10).unwrap()),
        [1, 2, 4, 5]
    );
}

#[test]
fn secret_is_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let secret = log.installation_secret().unwrap();
    assert_ne!(secret, [0; 32]);
    assert_eq!(log.installation_secret().unwrap(), secret);
    drop(log);
    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.installation_secret().unwrap(), secret);
    let other = tempfile::tempdir().unwrap();
    assert_ne!(
        AlertLog::open(other.path())
            .unwrap()
            .installation_secret()
            .unwrap(),
        secret
    );
}

#[test]
fn open_under_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = AlertLog::open(&file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("file/data"), "{err}");
    // A database path that is a directory.
    std::fs::create_dir_all(dir.path().join("d").join(DB_FILE)).unwrap();
    let err = AlertLog::open(&dir.path().join("d")).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(DB_FILE), "{err}");
}

#[test]
fn write_after_the_directory_is_removed_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut log = AlertLog::open(&data).unwrap();
    let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical)];
    log.append(&mut batch).unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical)];
    let err = log.append(&mut batch).unwrap_err();
    assert!(matches!(err, StoreError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains(DB_FILE), "{err}");
    // Nothing was assigned to the alert that was not stored.
    assert_eq!((batch[0].alert_id, batch[0].event_id), (0, 0));
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(AlertLog::open(dir.path()).unwrap());
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = AlertLog::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StoreError::TooNew { found: 99, .. }),
        "{err:?}"
    );
}

#[test]
fn corrupt_row_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical); 2];
    log.append(&mut batch).unwrap();
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute("UPDATE alerts SET body = '{' WHERE event_id = 2", [])
        .unwrap();
    let err = log.alerts_of_call("c1", 10).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("event_id 2"), "{err}");
}

#[test]
fn checkpointer_copies_the_wal_while_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    let checkpointer = log.checkpointer().unwrap();
    let autocheckpoint: i64 = log
        .conn
        .pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
        .unwrap();
    assert_eq!(autocheckpoint, 0, "the writer no longer checkpoints");
    for _ in 0..20 {
        let mut batch = vec![alert("c1", "acme", "violence", Severity::Critical); 50];
        log.append(&mut batch).unwrap();
    }
    let first = checkpointer.run().unwrap();
    assert!(first.wal_pages > 20, "{first:?}");
    assert_eq!(first.copied_pages, first.wal_pages, "nothing held it up");

    // The writer goes on; its next commit starts the WAL over.
    log.append(&mut [alert("c2", "acme", "threat", Severity::Critical)])
        .unwrap();
    let second = checkpointer.run().unwrap();
    assert!(
        second.wal_pages < first.wal_pages,
        "{first:?} then {second:?}"
    );
    drop(checkpointer);
    drop(log);

    let log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.last_event_id(), 1_001);
    let all = log.read_after(0, &AlertFilter::default(), 2_000).unwrap();
    assert_eq!(all.len(), 1_001);
}

/// A log in `Normal` whose first commit took a lease, as the service runs.
fn leased_log(dir: &Path) -> AlertLog {
    let mut log = AlertLog::open(dir).unwrap();
    log.set_sync(StoreSync::Normal).unwrap();
    let mut batch = vec![
        alert("c1", "acme", "violence", Severity::Critical),
        alert("c1", "acme", "abuse", Severity::Warning),
    ];
    log.append(&mut batch).unwrap();
    assert_eq!(event_ids(&batch), [1, 2]);
    log
}

#[test]
fn ids_skip_past_the_lease_after_an_unclean_stop() {
    let dir = tempfile::tempdir().unwrap();
    // A crash: the handle is never closed, so the lease is not given back.
    std::mem::forget(leased_log(dir.path()));
    // A crash also releases the data dir's lock (the kernel closes the
    // descriptor); `forget` does not, so unlink the locked file instead.
    std::fs::remove_file(dir.path().join(super::LOCK_FILE)).unwrap();

    let mut log = AlertLog::open(dir.path()).unwrap();
    assert_eq!(log.last_event_id(), 2 + LEASE_BLOCK);
    let mut batch = vec![alert("c2", "acme", "threat", Severity::Critical)];
    log.append(&mut batch).unwrap();
    assert_eq!(event_ids(&batch), [3 + LEASE_BLOCK]);
    assert_eq!(batch[0].alert_id, 3 + LEASE_BLOCK);
    // What was committed before the crash is all there.
    let all = log.read_after(0, &AlertFilter::default(), 10).unwrap();
    assert_eq!(event_ids(&all), [1, 2, 3 + LEASE_BLOCK]);
}

#[test]
fn a_second_open_of_a_locked_dir_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let first = AlertLog::open(dir.path()).unwrap();
    let e = AlertLog::open(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("in use by another callguard")
            && e.contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    drop(first);
    AlertLog::open(dir.path()).unwrap();
}

#[test]
fn a_clean_close_gives_the_lease_back() {
    let dir = tempfile::tempdir().unwrap();
    drop(leased_log(dir.path()));

    let mut log = AlertLog::open(dir.path()).unwrap();
    let mut batch = vec![alert("c2", "acme", "threat", Severity::Critical)];
    log.append(&mut batch).unwrap();
    assert_eq!(event_ids(&batch), [3]);
}

#[test]
fn commits_within_the_lease_do_not_move_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = leased_log(dir.path());
    let lease = log.lease;
    assert_eq!(lease.last_event_id, 2 + LEASE_BLOCK);
    for _ in 0..5 {
        log.append(&mut [alert("c1", "acme", "abuse", Severity::Warning)])
            .unwrap();
    }
    assert_eq!(log.lease, lease);
    // Full mode never leases.
    let dir = tempfile::tempdir().unwrap();
    let mut log = AlertLog::open(dir.path()).unwrap();
    log.append(&mut [alert("c1", "acme", "abuse", Severity::Warning)])
        .unwrap();
    assert!(!log.leased);
}
