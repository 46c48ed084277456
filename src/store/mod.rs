//! The durable alert log: every alert and update with its service-wide
//! `event_id` (DESIGN section 3), the repeat-caller counts, and the
//! installation secret, in one SQLite file `callguard.db`.
//!
//! Contract: an alert is written and committed before anyone is told about
//! it. [`AlertLog::append`] assigns the ids and commits in one transaction;
//! only then does it write the ids back into the caller's alerts. The
//! service assigns ids itself ([`IdCounters`]) and [`AlertLog::commit`]s
//! many calls' alerts and caller records together (group commit).
//!
//! Durability ([`StoreSync`]): a WAL journal, and either
//! - `Full`: every commit is fsynced before it returns. Survives power
//!   loss; costs an fsync per commit (0.3 ms to 100 ms on the test VM,
//!   and every alert of the commit waits that long), or
//! - `Normal`: a commit returns once the WAL write reaches the OS, so it
//!   survives a crash of the process; the WAL is fsynced at each
//!   checkpoint. An OS crash or power loss may lose the commits since the
//!   last checkpoint.
//!
//! In `Normal` an alert lost that way may already have been published, and
//! its ids must not be handed out again to a different alert after restart
//! (a subscriber resuming after that `event_id` would miss the new one).
//! So ids are leased: before a commit takes the ids past the lease, the
//! lease moves [`LEASE_BLOCK`] ahead in a transaction that is fsynced, and
//! [`AlertLog::open`] starts the counters at the lease. A clean close
//! gives the unused part back, so ids only skip after a crash.
//!
//! Counters live in the `meta` table, not in `max(rowid)`, so an id is never
//! reused after retention deletes rows. One `AlertLog` per directory: a
//! second one would take the first one's lease for a crash's and move the
//! counters past it. `AlertLog` is `Send`, not `Sync`: share it behind a
//! mutex.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use crate::alert::{Alert, AlertFilter};
use crate::call::CallerKey;
use crate::category::Severity;

#[cfg(test)]
mod tests;

/// The last ids handed out. A writer that assigns ids before committing
/// (the service, so it can commit many calls' alerts with one fsync) keeps
/// one of these; ids it assigned but failed to commit are skipped, never
/// reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdCounters {
    pub last_event_id: u64,
    pub last_alert_id: u64,
}

impl IdCounters {
    /// Gives `alert` the next `event_id`, and the next `alert_id` when it
    /// has none (a new alert rather than an update); a given `alert_id`
    /// above the counter moves the counter past it.
    pub fn assign(&mut self, mut alert: Alert) -> Alert {
        self.last_event_id += 1;
        alert.event_id = self.last_event_id;
        if alert.alert_id == 0 {
            self.last_alert_id += 1;
            alert.alert_id = self.last_alert_id;
        } else {
            self.last_alert_id = self.last_alert_id.max(alert.alert_id);
        }
        alert
    }

    /// Numbers an alert of one call, for the service and replay alike:
    /// the next `event_id`, and the `alert_id` its call-local id was
    /// given before (an update of the same alert) or the next one, kept
    /// in `call` (the call's local id → alert id).
    pub fn number(
        &mut self,
        call: &mut HashMap<u32, u64>,
        local_id: u32,
        mut alert: Alert,
    ) -> Alert {
        alert.alert_id = call.get(&local_id).copied().unwrap_or(0);
        let alert = self.assign(alert);
        call.insert(local_id, alert.alert_id);
        alert
    }
}

/// Ids leased at a time in [`StoreSync::Normal`]: one fsynced commit per
/// this many ids, and the most an unclean restart skips.
pub const LEASE_BLOCK: u64 = 10_000;

/// When a commit is durable (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreSync {
    /// fsync before a commit returns: survives power loss.
    #[default]
    Full,
    /// Durable against a process crash at once, against power loss at the
    /// next checkpoint; ids leased so none is ever handed out twice.
    Normal,
}

impl StoreSync {
    fn pragma(self) -> &'static str {
        match self {
            StoreSync::Full => "FULL",
            StoreSync::Normal => "NORMAL",
        }
    }
}

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "callguard.db";

/// Schema migrations; migration `i` brings `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('last_event_id', 0), ('last_alert_id', 0);
    CREATE TABLE secret (id INTEGER PRIMARY KEY CHECK (id = 1), bytes BLOB NOT NULL);
    CREATE TABLE alerts (
        event_id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL,
        call_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        category TEXT NOT NULL,
        severity INTEGER NOT NULL,
        raised_at INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX alerts_by_call ON alerts (call_id, event_id);
    CREATE INDEX alerts_by_raised_at ON alerts (raised_at);
    CREATE TABLE caller_calls (caller BLOB NOT NULL, at INTEGER NOT NULL);
    CREATE INDEX caller_calls_by_caller ON caller_calls (caller, at);
    CREATE INDEX caller_calls_by_at ON caller_calls (at);
",
    "
    INSERT INTO meta (key, value) VALUES ('event_id_lease', 0), ('alert_id_lease', 0);
",
    // The latest version of one alert (acknowledgements, the commit
    // thread's merge of updates) without a scan.
    "
    CREATE INDEX alerts_by_alert ON alerts (alert_id, event_id);
",
];

const LAST_EVENT_ID: &str = "last_event_id";
const LAST_ALERT_ID: &str = "last_alert_id";
const EVENT_ID_LEASE: &str = "event_id_lease";
const ALERT_ID_LEASE: &str = "alert_id_lease";

/// What failed, and on which database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open alert store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot migrate alert store {path}: {source}")]
    Migrate {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("alert store {path} has schema version {found}, newer than this build ({supported})")]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: usize,
    },
    #[error("cannot write to alert store {path}: {source}")]
    Write {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot read alert store {path}: {source}")]
    Read {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("corrupt row in alert store {path} ({what}): {reason}")]
    Corrupt {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("the alert store writer has stopped")]
    Closed,
    #[error("data directory {dir} is in use by another callguard{}; one server per --data-dir", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    Locked { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock data directory {dir}: {source}")]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the file system of {path} has {free} bytes free, below store_min_free_bytes ({min})")]
    LowSpace { path: PathBuf, free: u64, min: u64 },
    #[error("cannot generate installation secret for {path}: {source}")]
    Random {
        path: PathBuf,
        source: getrandom::Error,
    },
}

/// The durable alert log (see the module documentation).
#[derive(Debug)]
pub struct AlertLog {
    conn: Connection,
    path: PathBuf,
    /// Last committed event id as this handle knows it; a fallback only.
    last_event_id: u64,
    /// Identity of the file at open, to notice it being removed or replaced.
    file_id: Option<FileId>,
    /// Identity of its WAL at open: a deleted WAL goes on taking commits
    /// (SQLite writes to the unlinked file) that a restart would not find.
    wal_id: Option<FileId>,
    sync: StoreSync,
    /// Ids this handle may hand out without moving the lease (`Normal`).
    lease: IdCounters,
    /// This handle moved the lease: give the unused part back on close.
    leased: bool,
    /// Free bytes below which [`probe`](Self::probe) fails (0: no floor).
    min_free: u64,
    /// The data dir's lock, held for as long as the store is open.
    _lock: std::fs::File,
}

impl AlertLog {
    /// Opens (creating if needed) `dir/callguard.db`, migrates the schema and
    /// switches to WAL.
    pub fn open(dir: &Path) -> Result<AlertLog, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = lock_dir(dir)?;
        let path = dir.join(DB_FILE);
        let mut conn = connect(&path)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "alert store is not in WAL mode");
        }
        migrate(&mut conn, &path)?;
        let lease = skip_past_lease(&mut conn, &path)?;
        let last_event_id = counter(&conn, LAST_EVENT_ID).map_err(read_err(&path))?;
        tracing::info!(path = %path.display(), last_event_id, "alert store open");
        // The WAL exists from the first write (the migration's) on, for as
        // long as a connection is open.
        let wal_id = file_id(&wal_path(&path));
        let file_id = file_id(&path);
        Ok(AlertLog {
            conn,
            path,
            last_event_id,
            file_id,
            wal_id,
            sync: StoreSync::Full,
            lease,
            leased: false,
            min_free: 0,
            _lock: lock,
        })
    }

    /// Switches how commits are made durable (`Full` after open).
    pub fn set_sync(&mut self, sync: StoreSync) -> Result<(), StoreError> {
        self.conn
            .pragma_update(None, "synchronous", sync.pragma())
            .map_err(write_err(&self.path))?;
        self.sync = sync;
        Ok(())
    }

    /// Free space below which the store is reported not ready: a small
    /// write can succeed on a full disk (SQLite reuses the WAL's pages), so
    /// only the free space shows a disk about to refuse the next commits.
    pub fn set_min_free(&mut self, bytes: u64) {
        self.min_free = bytes;
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Proves the store writable: a small write transaction, after checking
    /// that the database file and its WAL are still the ones opened.
    /// `/readyz` runs it every second (`live::commit`), so a full disk, a
    /// removed file or a deleted WAL shows within a second, and the end of
    /// the trouble too. When the WAL was deleted, the commits it holds are
    /// first copied into the database file (a checkpoint through the open
    /// descriptor), so a restart finds every alert acknowledged before.
    pub fn probe(&mut self) -> Result<(), StoreError> {
        if self.wal_id.is_some() && file_id(&wal_path(&self.path)) != self.wal_id {
            let saved = self
                .conn
                .query_row("PRAGMA wal_checkpoint(FULL)", [], |row| {
                    row.get::<_, i64>(0)
                });
            tracing::error!(path = %self.path.display(), ?saved,
                "the alert store's WAL file was deleted or replaced; committed alerts copied into the database file; restart the service");
        }
        if let Some(free) = free_bytes(&self.path).filter(|free| *free < self.min_free) {
            return Err(StoreError::LowSpace {
                path: self.path.clone(),
                free,
                min: self.min_free,
            });
        }
        let (tx, path) = self.begin_write()?;
        let write = write_err(path);
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('probe', 1) \
             ON CONFLICT (key) DO UPDATE SET value = value + 1",
            [],
        )
        .map_err(write)?;
        tx.commit().map_err(write)
    }

    /// Stores `alerts` in one transaction: assigns `alert_id` where it is 0
    /// and always a new `event_id`. The ids are written back into `alerts`
    /// only after the commit; on error `alerts` is unchanged and nothing is
    /// stored. A given `alert_id` above the counter moves the counter past it.
    pub fn append(&mut self, alerts: &mut [Alert]) -> Result<(), StoreError> {
        if alerts.is_empty() {
            return Ok(());
        }
        let mut ids = self.counters()?;
        let assigned: Vec<Alert> = alerts.iter().map(|a| ids.assign(a.clone())).collect();
        self.commit(&assigned, &[])?;
        alerts.clone_from_slice(&assigned);
        Ok(())
    }

    /// The id counters as committed, for a writer that assigns ids itself
    /// and then [`commit`](Self::commit)s.
    pub fn counters(&self) -> Result<IdCounters, StoreError> {
        let read = read_err(&self.path);
        Ok(IdCounters {
            last_event_id: counter(&self.conn, LAST_EVENT_ID).map_err(read)?,
            last_alert_id: counter(&self.conn, LAST_ALERT_ID).map_err(read)?,
        })
    }

    /// Stores alerts whose ids are already assigned (by [`IdCounters`]) and
    /// repeat-caller records in one transaction: one fsync for the whole
    /// group, however many calls it serves. The counters move past the
    /// largest ids stored. On error nothing is stored.
    pub fn commit(
        &mut self,
        alerts: &[Alert],
        calls: &[(CallerKey, jiff::Timestamp)],
    ) -> Result<(), StoreError> {
        if alerts.is_empty() && calls.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = match self.lease_for(alerts) {
            Some(lease) => self.commit_leasing(alerts, calls, lease),
            None => self.commit_inner(alerts, calls, None),
        };
        metrics::histogram!(crate::telemetry::metrics::STORE_WRITE_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if result.is_ok() {
            if let Some(last) = alerts.iter().map(|a| a.event_id).max() {
                self.last_event_id = self.last_event_id.max(last);
            }
        }
        result
    }

    /// The lease these alerts need, when their ids go past this one's
    /// (only in `Normal`: `Full` commits are durable before anyone hears).
    fn lease_for(&self, alerts: &[Alert]) -> Option<IdCounters> {
        if self.sync != StoreSync::Normal {
            return None;
        }
        let last_event = alerts.iter().map(|a| a.event_id).max().unwrap_or(0);
        let last_alert = alerts.iter().map(|a| a.alert_id).max().unwrap_or(0);
        (last_event > self.lease.last_event_id || last_alert > self.lease.last_alert_id).then(
            || IdCounters {
                last_event_id: last_event.max(self.lease.last_event_id) + LEASE_BLOCK,
                last_alert_id: last_alert.max(self.lease.last_alert_id) + LEASE_BLOCK,
            },
        )
    }

    /// A commit that also moves the lease, fsynced whatever the mode: after
    /// it returns, a restart never hands out an id below the new lease.
    fn commit_leasing(
        &mut self,
        alerts: &[Alert],
        calls: &[(CallerKey, jiff::Timestamp)],
        lease: IdCounters,
    ) -> Result<(), StoreError> {
        let write = write_err(&self.path);
        self.conn
            .pragma_update(None, "synchronous", StoreSync::Full.pragma())
            .map_err(write)?;
        let result = self.commit_inner(alerts, calls, Some(lease));
        let restored = self
            .conn
            .pragma_update(None, "synchronous", self.sync.pragma())
            .map_err(write_err(&self.path));
        result?;
        self.lease = lease;
        self.leased = true;
        restored
    }

    fn commit_inner(
        &mut self,
        alerts: &[Alert],
        calls: &[(CallerKey, jiff::Timestamp)],
        lease: Option<IdCounters>,
    ) -> Result<(), StoreError> {
        let (tx, path) = self.begin_write()?;
        let write = write_err(path);
        let mut last_event = counter(&tx, LAST_EVENT_ID).map_err(write)?;
        let mut last_alert = counter(&tx, LAST_ALERT_ID).map_err(write)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO alerts (event_id, alert_id, call_id, tenant, category, \
                     severity, raised_at, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(write)?;
            for alert in alerts {
                let body = serde_json::to_string(alert)
                    .map_err(|e| write(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
                insert
                    .execute(params![
                        sql_int(alert.event_id).map_err(write)?,
                        sql_int(alert.alert_id).map_err(write)?,
                        alert.call_id,
                        alert.tenant,
                        alert.category,
                        severity_rank(alert.severity),
                        ts_key(alert.raised_at),
                        body,
                    ])
                    .map_err(write)?;
                last_event = last_event.max(alert.event_id);
                last_alert = last_alert.max(alert.alert_id);
            }
            let mut insert_call = tx
                .prepare_cached("INSERT INTO caller_calls (caller, at) VALUES (?1, ?2)")
                .map_err(write)?;
            for (caller, at) in calls {
                insert_call
                    .execute(params![caller.0, ts_key(*at)])
                    .map_err(write)?;
            }
        }
        set_counter(&tx, LAST_EVENT_ID, last_event).map_err(write)?;
        set_counter(&tx, LAST_ALERT_ID, last_alert).map_err(write)?;
        if let Some(lease) = lease {
            set_counter(&tx, EVENT_ID_LEASE, lease.last_event_id).map_err(write)?;
            set_counter(&tx, ALERT_ID_LEASE, lease.last_alert_id).map_err(write)?;
        }
        tx.commit().map_err(write)
    }

    /// Repeat-caller records after `since`, oldest first (to rebuild the
    /// in-memory history at start).
    pub fn calls_since(
        &self,
        since: jiff::Timestamp,
    ) -> Result<Vec<(CallerKey, jiff::Timestamp)>, StoreError> {
        let read = read_err(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT caller, at FROM caller_calls WHERE at > ?1 ORDER BY at")
            .map_err(read)?;
        let rows = stmt
            .query_map([ts_key(since)], |row| {
                let caller: Vec<u8> = row.get(0)?;
                let at: i64 = row.get(1)?;
                Ok((caller, at))
            })
            .map_err(read)?;
        let mut out = Vec::new();
        for row in rows {
            let (caller, at) = row.map_err(read)?;
            let corrupt = |reason: String| StoreError::Corrupt {
                path: self.path.clone(),
                what: "caller_calls".into(),
                reason,
            };
            let key = <[u8; 32]>::try_from(caller.as_slice())
                .map_err(|_| corrupt(format!("caller key of {} bytes", caller.len())))?;
            let at = jiff::Timestamp::from_nanosecond(i128::from(at))
                .map_err(|e| corrupt(e.to_string()))?;
            out.push((CallerKey(key), at));
        }
        Ok(out)
    }

    /// Moves WAL checkpoints off this handle onto a [`Checkpointer`] of
    /// their own. SQLite otherwise checkpoints inside the commit that takes
    /// the WAL past 1,000 pages: copying and syncing the database file cost
    /// 10–50 ms here, and every alert in that commit, and every commit
    /// queued behind it, waits as long. The caller must then run the
    /// checkpointer regularly, or the WAL grows without bound. If the second
    /// connection cannot be opened, this handle keeps checkpointing itself.
    pub fn checkpointer(&mut self) -> Result<Checkpointer, StoreError> {
        let conn = connect(&self.path)?;
        self.conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(write_err(&self.path))?;
        Ok(Checkpointer {
            conn,
            path: self.path.clone(),
        })
    }

    /// The last committed `event_id` (0 for an empty log). Read from the
    /// database, so a reader handle sees another handle's writes; falls back
    /// to this handle's own knowledge if the read fails.
    pub fn last_event_id(&self) -> u64 {
        match counter(&self.conn, LAST_EVENT_ID) {
            Ok(id) => id.max(self.last_event_id),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read last event id");
                self.last_event_id
            }
        }
    }

    /// Up to `limit` alerts with `event_id > after_event_id` that pass
    /// `filter`, in `event_id` order (the filter runs in SQL, so paging with
    /// the last returned `event_id` misses nothing).
    pub fn read_after(
        &self,
        after_event_id: u64,
        filter: &AlertFilter,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        let Ok(after) = i64::try_from(after_event_id) else {
            return Ok(Vec::new());
        };
        let mut sql = String::from("SELECT event_id, body FROM alerts WHERE event_id > ?");
        let mut args = vec![Value::Integer(after)];
        if let Some(tenant) = &filter.tenant {
            sql.push_str(" AND tenant = ?");
            args.push(Value::Text(tenant.clone()));
        }
        // One JSON array parameter per list: no limit on the list length.
        if !filter.call_ids.is_empty() {
            sql.push_str(" AND call_id IN (SELECT value FROM json_each(?))");
            args.push(Value::Text(serde_json::json!(filter.call_ids).to_string()));
        }
        if !filter.categories.is_empty() {
            sql.push_str(" AND category IN (SELECT value FROM json_each(?))");
            args.push(Value::Text(
                serde_json::json!(filter.categories).to_string(),
            ));
        }
        if let Some(min) = filter.min_severity {
            sql.push_str(" AND severity >= ?");
            args.push(Value::Integer(severity_rank(min)));
        }
        // No column of its own: the agent is in the body, and filtering on
        // it is rare (a team lead's view), so no migration rewrites the log.
        if let Some(agent) = &filter.agent_id {
            sql.push_str(" AND json_extract(body, '$.agent_id') = ?");
            args.push(Value::Text(agent.clone()));
        }
        if let Some(since) = filter.since {
            sql.push_str(" AND raised_at >= ?");
            args.push(Value::Integer(ts_key(since)));
        }
        sql.push_str(" ORDER BY event_id LIMIT ?");
        args.push(Value::Integer(sql_limit(limit)));
        self.query_alerts(&sql, params_from_iter(args))
    }

    /// The latest stored version (largest `event_id`) of one alert: its
    /// whole current state, detection status and handling.
    pub fn latest_of_alert(&self, alert_id: u64) -> Result<Option<Alert>, StoreError> {
        let Ok(id) = i64::try_from(alert_id) else {
            return Ok(None);
        };
        let mut found = self.query_alerts(
            "SELECT event_id, body FROM alerts WHERE alert_id = ?1 ORDER BY event_id DESC LIMIT 1",
            params![id],
        )?;
        Ok(found.pop())
    }

    /// Up to `limit` alerts (and updates) of one call, in `event_id` order.
    pub fn alerts_of_call(&self, call_id: &str, limit: usize) -> Result<Vec<Alert>, StoreError> {
        self.query_alerts(
            "SELECT event_id, body FROM alerts WHERE call_id = ?1 ORDER BY event_id LIMIT ?2",
            params![call_id, sql_limit(limit)],
        )
    }

    fn query_alerts(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<Alert>, StoreError> {
        let read = read_err(&self.path);
        let mut stmt = self.conn.prepare_cached(sql).map_err(read)?;
        let rows = stmt
            .query_map(args, |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(read)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(read)?;
        rows.into_iter()
            .map(|(event_id, body)| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    path: self.path.clone(),
                    what: format!("alert event_id {event_id}"),
                    reason,
                };
                let alert: Alert =
                    serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                if i64::try_from(alert.event_id) != Ok(event_id) {
                    return Err(corrupt(format!("body has event_id {}", alert.event_id)));
                }
                Ok(alert)
            })
            .collect()
    }

    /// Retention: deletes alerts raised before `before` and caller records
    /// of calls before it. Returns the number of alerts deleted. Counters
    /// are untouched, so ids are never reused.
    pub fn purge_before(&mut self, before: jiff::Timestamp) -> Result<usize, StoreError> {
        let (tx, path) = self.begin_write()?;
        let write = write_err(path);
        let cutoff = ts_key(before);
        let alerts = tx
            .execute("DELETE FROM alerts WHERE raised_at < ?1", [cutoff])
            .map_err(write)?;
        let calls = tx
            .execute("DELETE FROM caller_calls WHERE at < ?1", [cutoff])
            .map_err(write)?;
        tx.commit().map_err(write)?;
        tracing::info!(path = %path.display(), %before, alerts, calls, "alert store purged");
        Ok(alerts)
    }

    /// The installation secret for `CallerHasher::new`: 32 random bytes made
    /// on first use and kept in the database.
    pub fn installation_secret(&mut self) -> Result<[u8; 32], StoreError> {
        let (tx, path) = self.begin_write()?;
        let write = write_err(path);
        let existing: Option<Vec<u8>> = tx
            .query_row("SELECT bytes FROM secret WHERE id = 1", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(write)?;
        if let Some(bytes) = existing {
            return <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| StoreError::Corrupt {
                path: path.to_path_buf(),
                what: "installation secret".into(),
                reason: format!("{} bytes, expected 32", bytes.len()),
            });
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|source| StoreError::Random {
            path: path.to_path_buf(),
            source,
        })?;
        tx.execute("INSERT INTO secret (id, bytes) VALUES (1, ?1)", [secret])
            .map_err(write)?;
        tx.commit().map_err(write)?;
        Ok(secret)
    }
}

/// Copies committed WAL frames into the database file, on a connection of
/// its own, while the writer goes on committing (see
/// [`AlertLog::checkpointer`]).
#[derive(Debug)]
pub struct Checkpointer {
    conn: Connection,
    path: PathBuf,
}

/// What one checkpoint did, in WAL pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointProgress {
    /// Pages in the WAL.
    pub wal_pages: u64,
    /// Of those, pages now copied into the database file.
    pub copied_pages: u64,
}

impl Checkpointer {
    /// A passive checkpoint: copies what it can without waiting for the
    /// writer or readers, so it never holds up a commit. Once all of the
    /// WAL is copied, the writer's next commit starts the WAL over.
    pub fn run(&self) -> Result<CheckpointProgress, StoreError> {
        let (wal_pages, copied_pages): (i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .map_err(write_err(&self.path))?;
        // -1 when the database is not in WAL mode: nothing to copy.
        Ok(CheckpointProgress {
            wal_pages: u64::try_from(wal_pages).unwrap_or(0),
            copied_pages: u64::try_from(copied_pages).unwrap_or(0),
        })
    }
}

impl Drop for AlertLog {
    /// Gives back the unused part of the id lease, so ids go on without a
    /// gap after a clean restart.
    fn drop(&mut self) {
        if !self.leased {
            return;
        }
        let give_back = |log: &mut AlertLog| -> rusqlite::Result<()> {
            log.conn
                .pragma_update(None, "synchronous", StoreSync::Full.pragma())?;
            let tx = log
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for (lease, last) in [
                (EVENT_ID_LEASE, LAST_EVENT_ID),
                (ALERT_ID_LEASE, LAST_ALERT_ID),
            ] {
                let last = counter(&tx, last)?;
                set_counter(&tx, lease, last)?;
            }
            tx.commit()
        };
        if let Err(error) = give_back(self) {
            tracing::warn!(path = %self.path.display(), %error,
                "cannot give back the id lease; ids will skip ahead at restart");
        }
    }
}

impl AlertLog {
    /// An immediate (write-locked) transaction, after checking that the
    /// path still names the file opened; with the path, for errors.
    fn begin_write(&mut self) -> Result<(rusqlite::Transaction<'_>, &Path), StoreError> {
        let write = write_err(&self.path);
        still_there(&self.path, self.file_id).map_err(write)?;
        if self.wal_id.is_some() && file_id(&wal_path(&self.path)) != self.wal_id {
            return Err(write(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY_DBMOVED),
                Some("the WAL file was deleted or replaced since the store was opened".into()),
            )));
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(write)?;
        Ok((tx, &self.path))
    }
}

fn write_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn read_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    |source| StoreError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// The lock file in a data directory; it holds the owner's pid.
pub const LOCK_FILE: &str = "callguard.lock";

/// Takes the data directory's advisory lock (`flock`, released by the
/// kernel when the process dies, so a SIGKILL leaves no stale lock), and
/// writes our pid in the file for the error a second server gets. Two
/// servers on one directory would take each other's id leases and each
/// refuse the other's alerts (issue #18, F5).
fn lock_dir(dir: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let err = |source| StoreError::Lock {
        dir: dir.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(err)?;
    #[cfg(unix)]
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(err(e.into()));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            holder: holder.trim().parse().ok(),
        });
    }
    file.set_len(0).map_err(err)?;
    file.rewind().map_err(err)?;
    writeln!(file, "{}", std::process::id()).map_err(err)?;
    Ok(file)
}

/// Bytes an unprivileged writer may still use on the file system of `path`.
#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

/// The WAL beside a database file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Which file a path names (device and inode on Unix).
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> Option<FileId> {
    path.exists().then_some((0, 0))
}

/// SQLite keeps writing to a database file that was unlinked (its WAL too),
/// and everything would be lost at restart, so every write first checks
/// that the path still names the file opened. One `stat` per write.
fn still_there(path: &Path, opened: Option<FileId>) -> rusqlite::Result<()> {
    if opened.is_none() || file_id(path) == opened {
        return Ok(());
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY_DBMOVED),
        Some("database file was removed or replaced since it was opened".into()),
    ))
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = |source| StoreError::Migrate {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(err)?;
    let start = usize::try_from(version)
        .ok()
        .filter(|v| *v <= MIGRATIONS.len());
    let Some(start) = start else {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            supported: MIGRATIONS.len(),
        });
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        tx.execute_batch(sql).map_err(err)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )
        .map_err(err)?;
        tracing::info!(path = %path.display(), version = i + 1, "alert store migrated");
    }
    tx.commit().map_err(err)
}

/// A connection to the database file: waits up to 5 s for a lock, and
/// fsyncs every commit until told otherwise ([`AlertLog::set_sync`]).
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(open_err)?;
    conn.pragma_update(None, "synchronous", StoreSync::Full.pragma())
        .map_err(open_err)?;
    Ok(conn)
}

/// Moves the id counters up to the lease, so ids that may have been
/// published before an unclean stop are never handed out again; returns
/// the lease (the counters, after a clean close).
fn skip_past_lease(conn: &mut Connection, path: &Path) -> Result<IdCounters, StoreError> {
    let write = write_err(path);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(write)?;
    let mut lease = IdCounters {
        last_event_id: counter(&tx, EVENT_ID_LEASE).map_err(write)?,
        last_alert_id: counter(&tx, ALERT_ID_LEASE).map_err(write)?,
    };
    for (key, leased) in [
        (LAST_EVENT_ID, &mut lease.last_event_id),
        (LAST_ALERT_ID, &mut lease.last_alert_id),
    ] {
        let last = counter(&tx, key).map_err(write)?;
        if *leased > last {
            tracing::warn!(path = %path.display(), key, from = last, to = *leased,
                "alert store was not closed cleanly; ids skip past the lease");
            set_counter(&tx, key, *leased).map_err(write)?;
        }
        *leased = (*leased).max(last);
    }
    tx.commit().map_err(write)?;
    Ok(lease)
}

fn counter(conn: &Connection, key: &str) -> rusqlite::Result<u64> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |row| {
            let value: i64 = row.get(0)?;
            u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, value))
        })
}

fn set_counter(conn: &Connection, key: &str, value: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE key = ?1")?
        .execute(params![key, sql_int(value)?])
        .map(|_| ())
}

/// Severity as a comparable integer (`Info < Warning < Critical`).
fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Critical => 2,
    }
}

/// A timestamp as nanoseconds since the epoch, clamped to `i64` (years
/// 1677..2262; the exact value is in the JSON body).
fn ts_key(t: jiff::Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
}

/// An id as an SQLite integer (ids beyond `i64::MAX` cannot be stored).
fn sql_int(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
