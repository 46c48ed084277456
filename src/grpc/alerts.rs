//! `callguard.v1.Alerts`: Subscribe (store first, then live, no gap, no
//! duplicate), ListCalls, GetCall, Acknowledge.
//!
//! A subscriber is a task with a bounded reply queue. It listens on the live
//! bus; when it falls behind the bus's fixed buffer (`Lagged`) it goes back
//! to the store and reads from its last event id until it has caught up.
//! So a slow subscriber costs the server a fixed amount of memory, and a
//! thousand subscribers share one copy of every live alert.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::auth::principal;
use super::convert::call_summary;
use super::pb;
use super::status::{handling_refused, invalid_argument, not_found, store_unavailable};
use crate::alert::{Alert, AlertFilter, HandlingChange};
use crate::auth::Permission;
use crate::category::BUILTIN_CATEGORIES;
use crate::live::follow::{follow, AlertSink};
use crate::live::Service;
use crate::store::StoreError;
use crate::telemetry::metrics;

/// Replies queued per subscriber.
const SUBSCRIBER_QUEUE: usize = 128;
/// Alerts returned by GetCall.
const CALL_HISTORY: usize = 1_000;
/// ListCalls pages (issue #18, F11): 12,000 calls made a 9.5 MB reply that
/// gRPC clients refuse by default (4 MiB).
const DEFAULT_PAGE_CALLS: usize = 500;
const MAX_PAGE_CALLS: usize = 1_000;
/// A page stops before this many encoded bytes, however small page_size.
const MAX_PAGE_BYTES: usize = 3 * 1024 * 1024;

/// Where a call sorts in ListCalls: active first, then by tenant and id.
type PageKey = (bool, String, String);

fn page_key(snapshot: &crate::call::CallSnapshot) -> PageKey {
    (
        snapshot.status == crate::call::CallStatus::Ended,
        snapshot.tenant.clone(),
        snapshot.call_id.clone(),
    )
}

/// The token of the page after `key`: the key, hex-encoded (opaque to
/// clients; ids may hold any character).
fn page_token(key: &PageKey) -> String {
    let raw = format!("{}\u{0}{}\u{0}{}", u8::from(key.0), key.1, key.2);
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn page_key_from_token(token: &str) -> Result<Option<PageKey>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || invalid_argument("page_token", "not a token from a ListCalls reply");
    if token.len() % 2 != 0 || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    let raw = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = raw.splitn(3, '\u{0}');
    let (Some(ended), Some(tenant), Some(call_id)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok(Some((ended == "1", tenant.to_owned(), call_id.to_owned())))
}

pub struct AlertsService {
    service: Arc<Service>,
}

impl AlertsService {
    pub fn new(service: Arc<Service>) -> AlertsService {
        AlertsService { service }
    }
}

type Reply = Result<pb::SubscribeResponse, Status>;

#[tonic::async_trait]
impl pb::alerts_server::Alerts for AlertsService {
    type SubscribeStream = ReceiverStream<Reply>;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Read)?;
        let mut request = request.into_inner();
        request.tenant = who.narrow(&request.tenant)?;
        let (after, from_start) = (request.after_event_id, request.from_start);
        let filter =
            AlertFilter::try_from(request).map_err(|e| invalid_argument(e.field, &e.reason))?;
        check_categories(&self.service, &filter.categories)?;
        // Listen first, then read the head: everything after the head comes
        // through the bus.
        let live = self.service.subscribe_live();
        let start = if after > 0 || from_start {
            after
        } else {
            self.service.with_log(|log| log.last_event_id())
        };
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        let service = self.service.clone();
        tokio::spawn(async move {
            ::metrics::gauge!(metrics::SUBSCRIBERS).increment(1.0);
            let sink = ReplySink(&tx);
            tokio::select! {
                _ = follow(&service, live, start, &filter, &sink) => {}
                // The client went (cancel, reset, closed connection): tonic
                // drops the reply stream, and so the receiver. Without this
                // arm a subscriber only noticed when it next had a matching
                // alert to send, and one that never had stayed forever
                // (issue #18, F1: 20,000 reconnects slowed ingest ×800).
                _ = tx.closed() => {}
                // Subscriptions never end by themselves: end them on stop,
                // so the server can drain.
                _ = service.stopping() => {}
            }
            ::metrics::gauge!(metrics::SUBSCRIBERS).decrement(1.0);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn list_calls(
        &self,
        request: Request<pb::ListCallsRequest>,
    ) -> Result<Response<pb::ListCallsResponse>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Read)?;
        let mut request = request.into_inner();
        request.tenant = who.narrow(&request.tenant)?;
        let tenant = (!request.tenant.is_empty()).then_some(request.tenant.as_str());
        let agent = request.agent_id.as_str();
        let after = page_key_from_token(&request.page_token)?;
        let page_size = match request.page_size {
            0 => DEFAULT_PAGE_CALLS,
            n => (n as usize).min(MAX_PAGE_CALLS),
        };
        let mut all: Vec<(PageKey, _)> = self
            .service
            .list_calls(tenant, request.include_ended)
            .into_iter()
            .filter(|(snapshot, _)| agent.is_empty() || snapshot.agent_id == agent)
            .map(|(snapshot, ids)| (page_key(&snapshot), (snapshot, ids)))
            .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
            .collect();
        all.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut calls = Vec::new();
        let mut bytes = 0;
        let mut last = None;
        let mut rest = all.into_iter();
        for (key, (snapshot, ids)) in rest.by_ref() {
            let call = call_summary(&snapshot, ids);
            bytes += prost::Message::encoded_len(&call) + 8;
            if !calls.is_empty() && bytes > MAX_PAGE_BYTES {
                break;
            }
            calls.push(call);
            last = Some(key);
            if calls.len() == page_size {
                break;
            }
        }
        let more = rest.next().is_some() || calls.len() < page_size && bytes > MAX_PAGE_BYTES;
        let next_page_token = match (more, last) {
            (true, Some(key)) => page_token(&key),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListCallsResponse {
            calls,
            next_page_token,
        }))
    }

    async fn get_call(
        &self,
        request: Request<pb::GetCallRequest>,
    ) -> Result<Response<pb::GetCallResponse>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Read)?;
        let call_id = request.into_inner().call_id;
        // Ids are scoped by tenant: another tenant's call of the same id is
        // a different call, and for this caller it does not exist (NOT_FOUND,
        // whether or not it does: the answer reveals no other tenant's ids).
        let call = self.service.find_call(who.tenant.as_deref(), &call_id);
        let mut alerts = self
            .service
            .with_log(|log| log.alerts_of_call(&call_id, CALL_HISTORY))
            .map_err(store_unavailable)?;
        alerts.retain(|a| who.may_see(&a.tenant));
        if call.is_none() && alerts.is_empty() {
            return Err(not_found(&format!("call_id: no call {call_id:?}")));
        }
        Ok(Response::new(pb::GetCallResponse {
            call: call.map(|(snapshot, ids)| call_summary(&snapshot, ids)),
            alerts: alerts.iter().map(pb::Alert::from).collect(),
        }))
    }

    async fn acknowledge(
        &self,
        request: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        self.acknowledge_alert(request).await
    }
}

impl AlertsService {
    /// `Alerts/Acknowledge` (in the trait impl above).
    async fn acknowledge_alert(
        &self,
        request: Request<pb::AcknowledgeRequest>,
    ) -> Result<Response<pb::AcknowledgeResponse>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Acknowledge)?;
        let request = request.into_inner();
        let state = super::convert::handling_state_from_wire(request.state)
            .map_err(|e| invalid_argument(e.field, &e.reason))?;
        let change = HandlingChange {
            state,
            by: who.name.clone(),
            assignee: request.assignee,
            note: request.note,
            at: jiff::Timestamp::now(),
        };
        let stored = self
            .service
            .change_handling(request.alert_id, who.tenant.as_deref(), change)
            .await
            .map_err(|e| handling_refused(&e))?;
        Ok(Response::new(pb::AcknowledgeResponse {
            alert: Some(pb::Alert::from(&*stored)),
        }))
    }
}

/// A subscriber's reply stream as the follower's sink.
struct ReplySink<'a>(&'a mpsc::Sender<Reply>);

impl AlertSink for ReplySink<'_> {
    async fn send(&self, alert: &Alert) -> Result<(), ()> {
        let reply = pb::SubscribeResponse {
            alert: Some(pb::Alert::from(alert)),
        };
        self.0.send(Ok(reply)).await.map_err(|_| ())
    }

    async fn store_failed(&self, error: StoreError) {
        let _ = self.0.send(Err(store_unavailable(error))).await;
    }
}

/// A category filter must name categories the rules in force know (the
/// built-in ids and those the lexicon set adds): a misspelt one would
/// otherwise match nothing, silently.
fn check_categories(service: &Service, categories: &[String]) -> Result<(), Status> {
    let rules = service.rules();
    let lexicon = rules.engine.lexicon();
    for category in categories {
        if lexicon.category(category).is_none() {
            let known: Vec<&str> = BUILTIN_CATEGORIES
                .iter()
                .map(|(id, ..)| *id)
                .chain(lexicon.extra_categories.iter().map(String::as_str))
                .collect();
            return Err(invalid_argument(
                "categories",
                format!(
                    "unknown category {category:?} (the rules in force know {})",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}
