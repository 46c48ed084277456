//! The table of live calls that both drivers (service and replay) share:
//! creates a call on `start` or on the first fragment of an unknown call
//! (with defaults), routes events, closes calls on `end` or after the idle
//! timeout, and caps how many calls may be open at once.
//!
//! The idle clock is the driver's (`now_ms`: wall-clock milliseconds in the
//! service, event time in replay); every other rule runs on audio time
//! inside [`CallSession`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::{Applied, CallSession, CallSnapshot};
use crate::alert::AlertEvent;
use crate::engine::{Engine, Scratch};
use crate::event::{CallEnd, CallStart, Event, EventError};
use crate::policy::Policy;

/// Why the table refused an event; other calls are not affected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("call_id: {0:?} is already started")]
    AlreadyStarted(String),
    #[error("too many active calls (limit {0})")]
    TooManyCalls(usize),
    #[error("too many active calls for this tenant (limit {0})")]
    TooManyTenantCalls(usize),
    #[error("too many active calls for this ingest token (limit {0})")]
    TooManyTokenCalls(usize),
}

/// What an event did to the table.
#[derive(Debug)]
pub struct Routed {
    pub applied: Applied,
    /// The call's state after the event (for ended calls, its last state),
    /// taken only when the event raised alerts or ended the call: a
    /// snapshot clones the call's strings, too dear for every fragment.
    pub snapshot: Option<CallSnapshot>,
}

struct Entry {
    /// Boxed: a session is 1.2 KB, and inline the table's empty buckets
    /// (up to half of them after it grows) and every move when it grows
    /// would be that size too.
    session: Box<CallSession>,
    last_seen_ms: u64,
    /// The limit of the ingest token that opened the call, when the driver
    /// caps calls per token: released when the call leaves the table.
    token_limit: Option<Arc<CallLimit>>,
}

/// How many calls may be open at once, shared by the tables that split
/// one service's calls between them (its lock shards).
#[derive(Debug)]
pub struct CallLimit {
    max: usize,
    open: AtomicUsize,
}

impl CallLimit {
    pub fn new(max: usize) -> Arc<CallLimit> {
        Arc::new(CallLimit {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// Calls open now, in every table sharing the limit.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    fn take(&self) -> Result<(), TableError> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < self.max).then_some(open + 1)
            })
            .map(|_| ())
            .map_err(|_| TableError::TooManyCalls(self.max))
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Live calls by id.
pub struct CallTable {
    calls: HashMap<String, Entry>,
    limit: Arc<CallLimit>,
    /// A second limit its calls count against too (the service's per-tenant
    /// one: a tenant cannot fill the whole service).
    tenant_limit: Option<Arc<CallLimit>>,
    max_text_bytes: usize,
}

impl CallTable {
    pub fn new(max_calls: usize, max_text_bytes: usize) -> CallTable {
        CallTable::sharing(CallLimit::new(max_calls), max_text_bytes)
    }

    /// A table whose calls count against a limit shared with other tables.
    pub fn sharing(limit: Arc<CallLimit>, max_text_bytes: usize) -> CallTable {
        CallTable {
            calls: HashMap::new(),
            limit,
            tenant_limit: None,
            max_text_bytes,
        }
    }

    /// A table whose calls also count against `tenant_limit`.
    pub fn sharing_in_tenant(
        limit: Arc<CallLimit>,
        tenant_limit: Arc<CallLimit>,
        max_text_bytes: usize,
    ) -> CallTable {
        let mut table = CallTable::sharing(limit, max_text_bytes);
        table.tenant_limit = Some(tenant_limit);
        table
    }

    /// A place for one more call under every limit it counts against, or
    /// none taken: the service's, the tenant's, then the opening token's.
    fn take(&self, token: Option<&CallLimit>) -> Result<(), TableError> {
        self.limit.take()?;
        if let Some(tenant) = &self.tenant_limit {
            if tenant.take().is_err() {
                self.limit.release();
                return Err(TableError::TooManyTenantCalls(tenant.max));
            }
        }
        if let Some(token) = token {
            if token.take().is_err() {
                self.limit.release();
                if let Some(tenant) = &self.tenant_limit {
                    tenant.release();
                }
                return Err(TableError::TooManyTokenCalls(token.max));
            }
        }
        Ok(())
    }

    fn release(&self, entry: &Entry) {
        self.limit.release();
        if let Some(tenant) = &self.tenant_limit {
            tenant.release();
        }
        if let Some(token) = &entry.token_limit {
            token.release();
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The state of an open call.
    pub fn snapshot_of(&self, call_id: &str) -> Option<CallSnapshot> {
        self.calls.get(call_id).map(|e| e.session.snapshot())
    }

    /// The tenant of an open call.
    pub fn tenant_of(&self, call_id: &str) -> Option<&str> {
        self.calls.get(call_id).map(|e| e.session.tenant())
    }

    /// Applies one event. `caller_calls` counts the caller's calls in the
    /// policy window, this one included (the driver hashes the caller id
    /// and keeps the history).
    pub fn apply(
        &mut self,
        event: &Event,
        now_ms: u64,
        engine: &Engine,
        policy: &Policy,
        caller_calls: &mut dyn FnMut(&CallStart) -> u32,
        scratch: &mut Scratch,
    ) -> Result<Routed, TableError> {
        self.apply_for(event, None, now_ms, engine, policy, caller_calls, scratch)
    }

    /// [`CallTable::apply`] for a sender whose own calls are capped by
    /// `token` (the service's per-ingest-token limit): a call this event
    /// opens counts against it until the call leaves the table, whoever
    /// sends its later events.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_for(
        &mut self,
        event: &Event,
        token: Option<&Arc<CallLimit>>,
        now_ms: u64,
        engine: &Engine,
        policy: &Policy,
        caller_calls: &mut dyn FnMut(&CallStart) -> u32,
        scratch: &mut Scratch,
    ) -> Result<Routed, TableError> {
        event.validate(self.max_text_bytes)?;
        match event {
            Event::Start(start) => {
                if self.calls.contains_key(&start.call_id) {
                    return Err(TableError::AlreadyStarted(start.call_id.clone()));
                }
                let alerts = self.open(start, token, now_ms, policy, caller_calls)?;
                Ok(self.routed(&start.call_id, Applied::Accepted(alerts)))
            }
            Event::Fragment(fragment) => {
                let mut alerts = Vec::new();
                if !self.calls.contains_key(&fragment.call_id) {
                    let defaults = CallStart {
                        call_id: fragment.call_id.clone(),
                        language: fragment.language.clone(),
                        ..CallStart::default()
                    };
                    alerts = self.open(&defaults, token, now_ms, policy, caller_calls)?;
                }
                let entry = self.calls.get_mut(&fragment.call_id).expect("opened above");
                entry.last_seen_ms = now_ms;
                let set = policy.for_tenant(entry.session.tenant());
                let applied = match entry.session.on_fragment(fragment, engine, set, scratch)? {
                    Applied::Accepted(more) => {
                        alerts.extend(more);
                        Applied::Accepted(alerts)
                    }
                    Applied::Duplicate if alerts.is_empty() => Applied::Duplicate,
                    Applied::Duplicate => Applied::Accepted(alerts),
                };
                Ok(self.routed(&fragment.call_id, applied))
            }
            Event::End(end) => match self.calls.remove(&end.call_id) {
                Some(mut entry) => {
                    self.release(&entry);
                    let set = policy.for_tenant(entry.session.tenant());
                    let alerts = entry.session.on_end(end, set);
                    Ok(Routed {
                        applied: Applied::Accepted(alerts),
                        snapshot: Some(entry.session.snapshot()),
                    })
                }
                // An end for a call we do not know (already ended, or never
                // seen): nothing to close.
                None => Err(TableError::Event(EventError::UnknownCall(
                    end.call_id.clone(),
                ))),
            },
        }
    }

    fn open(
        &mut self,
        start: &CallStart,
        token: Option<&Arc<CallLimit>>,
        now_ms: u64,
        policy: &Policy,
        caller_calls: &mut dyn FnMut(&CallStart) -> u32,
    ) -> Result<Vec<AlertEvent>, TableError> {
        self.take(token.map(|t| &**t))?;
        let count = if start.caller_id.is_some() {
            caller_calls(start)
        } else {
            0
        };
        let (session, alerts) = CallSession::start(start, policy.for_tenant(&start.tenant), count);
        self.calls.insert(
            start.call_id.clone(),
            Entry {
                session: Box::new(session),
                last_seen_ms: now_ms,
                token_limit: token.cloned(),
            },
        );
        Ok(alerts)
    }

    fn routed(&self, call_id: &str, applied: Applied) -> Routed {
        let snapshot = matches!(&applied, Applied::Accepted(alerts) if !alerts.is_empty())
            .then(|| self.calls[call_id].session.snapshot());
        Routed { applied, snapshot }
    }

    /// Closes every call idle for its tenant's `idle_timeout_seconds`; each
    /// ends at its last audio time. Returns the closed calls' last alerts.
    pub fn close_idle(
        &mut self,
        now_ms: u64,
        policy: &Policy,
    ) -> Vec<(CallSnapshot, Vec<AlertEvent>)> {
        let idle: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, e)| {
                let timeout = policy
                    .for_tenant(e.session.tenant())
                    .session
                    .idle_timeout_seconds
                    * 1000;
                now_ms.saturating_sub(e.last_seen_ms) >= timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        idle.into_iter()
            .filter_map(|id| self.close(&id, policy))
            .collect()
    }

    /// Closes a call as if it had ended at its last audio time (idle, or
    /// its stream gone); `None` when it is not open.
    pub fn close(
        &mut self,
        call_id: &str,
        policy: &Policy,
    ) -> Option<(CallSnapshot, Vec<AlertEvent>)> {
        let mut entry = self.calls.remove(call_id)?;
        self.release(&entry);
        let end = CallEnd {
            call_id: call_id.to_owned(),
            end_ms: entry.session.last_event_ms(),
        };
        let alerts = entry
            .session
            .on_end(&end, policy.for_tenant(entry.session.tenant()));
        Some((entry.session.snapshot(), alerts))
    }

    /// Snapshots of every live call, by call id.
    pub fn snapshots(&self) -> Vec<CallSnapshot> {
        let mut all: Vec<CallSnapshot> =
            self.calls.values().map(|e| e.session.snapshot()).collect();
        all.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        all
    }
}

impl Drop for CallTable {
    /// Its calls no longer count against a shared limit.
    fn drop(&mut self) {
        self.limit
            .open
            .fetch_sub(self.calls.len(), Ordering::Relaxed);
        if let Some(tenant) = &self.tenant_limit {
            tenant.open.fetch_sub(self.calls.len(), Ordering::Relaxed);
        }
        for token in self.calls.values().filter_map(|e| e.token_limit.as_ref()) {
            token.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::CallStatus;
    use crate::lexicon::Lexicon;

    fn engine() -> Engine {
        Engine::build(Lexicon::embedded().unwrap()).unwrap()
    }

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn first_fragment_of_unknown_call_opens_it_with_defaults() {
        let (engine, policy) = (engine(), Policy::builtin());
        let mut table = CallTable::new(10, 8192);
        let mut scratch = Scratch::default();
        let routed = table
            .apply(
                &event(r#"{"type":"fragment","call_id":"c9","speaker":"customer","text":"お前ころすぞ","language":"ja","end_ms":1000}"#),
                0,
                &engine,
                &policy,
                &mut |_| 0,
                &mut scratch,
            )
            .unwrap();
        assert!(matches!(routed.applied, Applied::Accepted(ref a) if !a.is_empty()));
        assert_eq!(table.len(), 1);
        let end = table
            .apply(
                &event(r#"{"type":"end","call_id":"c9","end_ms":2000}"#),
                1,
                &engine,
                &policy,
                &mut |_| 0,
                &mut scratch,
            )
            .unwrap();
        assert_eq!(end.snapshot.unwrap().status, CallStatus::Ended);
        assert!(table.is_empty());
    }

    #[test]
    fn tables_sharing_a_limit_count_each_other_s_calls() {
        let (engine, policy) = (engine(), Policy::builtin());
        let limit = CallLimit::new(2);
        let mut first = CallTable::sharing(limit.clone(), 8192);
        let mut second = CallTable::sharing(limit.clone(), 8192);
        let mut scratch = Scratch::default();
        let mut apply = |table: &mut CallTable, json: &str| {
            table.apply(&event(json), 0, &engine, &policy, &mut |_| 0, &mut scratch)
        };
        apply(&mut first, r#"{"type":"start","call_id":"a"}"#).unwrap();
        // A fragment opens a call too.
        apply(
            &mut second,
            r#"{"type":"fragment","call_id":"b","speaker":"customer","text":"hello"}"#,
        )
        .unwrap();
        assert_eq!(limit.open(), 2);
        for table in [&mut first, &mut second] {
            assert_eq!(
                apply(table, r#"{"type":"start","call_id":"c"}"#).unwrap_err(),
                TableError::TooManyCalls(2)
            );
        }
        apply(&mut first, r#"{"type":"end","call_id":"a"}"#).unwrap();
        apply(&mut second, r#"{"type":"start","call_id":"c"}"#).unwrap();
        assert_eq!(limit.open(), 2);
        drop(second);
        assert_eq!(limit.open(), 0, "a dropped table's calls no longer count");
    }

    #[test]
    fn a_token_s_calls_count_against_its_own_limit_until_they_leave() {
        let (engine, policy) = (engine(), Policy::builtin());
        let tenant = CallLimit::new(10);
        let mut table = CallTable::sharing_in_tenant(CallLimit::new(10), tenant.clone(), 8192);
        let (one, two) = (CallLimit::new(2), CallLimit::new(2));
        let mut scratch = Scratch::default();
        let mut apply = |table: &mut CallTable, token: &Arc<CallLimit>, json: &str| {
            table.apply_for(
                &event(json),
                Some(token),
                0,
                &engine,
                &policy,
                &mut |_| 0,
                &mut scratch,
            )
        };
        apply(&mut table, &one, r#"{"type":"start","call_id":"a"}"#).unwrap();
        // A fragment that opens a call counts too.
        apply(
            &mut table,
            &one,
            r#"{"type":"fragment","call_id":"b","speaker":"customer","text":"hello"}"#,
        )
        .unwrap();
        assert_eq!(
            apply(&mut table, &one, r#"{"type":"start","call_id":"c"}"#).unwrap_err(),
            TableError::TooManyTokenCalls(2)
        );
        assert_eq!(tenant.open(), 2, "a refused call takes no tenant place");
        // The other token still opens calls; the first token's calls stay
        // its own when the other token feeds them.
        apply(&mut table, &two, r#"{"type":"start","call_id":"c"}"#).unwrap();
        apply(
            &mut table,
            &two,
            r#"{"type":"fragment","call_id":"a","speaker":"customer","text":"hello"}"#,
        )
        .unwrap();
        assert_eq!((one.open(), two.open(), tenant.open()), (2, 1, 3));
        // Ended, closed or dropped, a call gives its token's place back.
        apply(&mut table, &two, r#"{"type":"end","call_id":"a"}"#).unwrap();
        assert_eq!(one.open(), 1);
        table.close("b", &policy).unwrap();
        assert_eq!(one.open(), 0);
        apply(&mut table, &one, r#"{"type":"start","call_id":"d"}"#).unwrap();
        drop(table);
        assert_eq!((one.open(), two.open(), tenant.open()), (0, 0, 0));
    }

    #[test]
    fn limits_and_bad_events_touch_only_that_event() {
        let (engine, policy) = (engine(), Policy::builtin());
        let mut table = CallTable::new(2, 16);
        let mut scratch = Scratch::default();
        let mut apply = |table: &mut CallTable, json: &str| {
            table.apply(&event(json), 0, &engine, &policy, &mut |_| 0, &mut scratch)
        };
        apply(&mut table, r#"{"type":"start","call_id":"a"}"#).unwrap();
        apply(&mut table, r#"{"type":"start","call_id":"b"}"#).unwrap();
        assert_eq!(
            apply(&mut table, r#"{"type":"start","call_id":"c"}"#).unwrap_err(),
            TableError::TooManyCalls(2)
        );
        assert_eq!(
            apply(&mut table, r#"{"type":"start","call_id":"a"}"#).unwrap_err(),
            TableError::AlreadyStarted("a".into())
        );
        let long = r#"{"type":"fragment","call_id":"a","speaker":"customer","text":"this text is longer than sixteen bytes"}"#;
        assert_eq!(
            apply(&mut table, long).unwrap_err().to_string(),
            "text: longer than 16 bytes"
        );
        assert!(matches!(
            apply(&mut table, r#"{"type":"end","call_id":"zz"}"#).unwrap_err(),
            TableError::Event(EventError::UnknownCall(_))
        ));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn idle_calls_close_after_the_timeout_and_settle_their_alerts() {
        let (engine, policy) = (engine(), Policy::builtin());
        let mut table = CallTable::new(10, 8192);
        let mut scratch = Scratch::default();
        table
            .apply(
                &event(r#"{"type":"fragment","call_id":"c1","speaker":"customer","text":"ころすぞ","is_final":false,"utterance_id":"u1","language":"ja","end_ms":500}"#),
                1_000,
                &engine,
                &policy,
                &mut |_| 0,
                &mut scratch,
            )
            .unwrap();
        assert!(table.close_idle(1_000 + 599_999, &policy).is_empty());
        let closed = table.close_idle(1_000 + 600_000, &policy);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].1[0].status, crate::alert::AlertStatus::Confirmed);
        assert!(table.is_empty());
    }

    #[test]
    fn repeat_caller_count_comes_from_the_driver() {
        let (engine, policy) = (engine(), Policy::builtin());
        let mut table = CallTable::new(10, 8192);
        let mut scratch = Scratch::default();
        let routed = table
            .apply(
                &event(r#"{"type":"start","call_id":"c1","caller_id":"+81312345678"}"#),
                0,
                &engine,
                &policy,
                &mut |start| {
                    if start.caller_id.as_deref() == Some("+81312345678") {
                        3
                    } else {
                        0
                    }
                },
                &mut scratch,
            )
            .unwrap();
        let Applied::Accepted(alerts) = routed.applied else {
            panic!()
        };
        assert_eq!(&*alerts[0].rule, "counter/persistence/repeat_caller");
    }
}
