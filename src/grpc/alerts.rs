//! `callguard.v1.Alerts`: Subscribe (store first, then live, no gap, no
//! duplicate), ListCalls, GetCall.
//!
//! A subscriber is a task with a bounded reply queue. It listens on the live
//! bus; when it falls behind the bus's fixed buffer (`Lagged`) it goes back
//! to the store and reads from its last event id until it has caught up.
//! So a slow subscriber costs the server a fixed amount of memory, and a
//! thousand subscribers share one copy of every live alert.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::auth::{principal, Permission};
use super::convert::call_summary;
use super::pb;
use super::status::{invalid_argument, not_found, store_unavailable};
use crate::alert::{Alert, AlertFilter};
use crate::serve::metrics;
use crate::serve::state::Service;

/// Alerts read from the store per query while catching up.
const PAGE: usize = 512;
/// Replies queued per subscriber.
const SUBSCRIBER_QUEUE: usize = 128;
/// Alerts returned by GetCall.
const CALL_HISTORY: usize = 1_000;

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
            tokio::select! {
                _ = run_subscriber(&service, live, start, &filter, &tx) => {}
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
        let calls = self
            .service
            .list_calls(tenant, request.include_ended)
            .into_iter()
            .map(|(snapshot, ids)| call_summary(&snapshot, ids))
            .collect();
        Ok(Response::new(pb::ListCallsResponse { calls }))
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
}

/// Serves one subscriber until it leaves. `last` is the last event id it
/// has (or need not have) seen.
async fn run_subscriber(
    service: &Service,
    mut live: broadcast::Receiver<Arc<Alert>>,
    mut last: u64,
    filter: &AlertFilter,
    tx: &mpsc::Sender<Reply>,
) -> Result<(), ()> {
    last = catch_up(service, last, filter, tx).await?;
    loop {
        match live.recv().await {
            Ok(alert) => {
                if alert.event_id <= last {
                    continue; // already sent from the store
                }
                last = alert.event_id;
                if filter.matches(&alert) {
                    send(tx, &alert).await?;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Too slow for the live buffer: read what it missed from the store.
                ::metrics::counter!(metrics::SUBSCRIBER_CATCHUPS).increment(1);
                last = catch_up(service, last, filter, tx).await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Sends the stored alerts after `last` and returns the id it is now
/// caught up to (the store's head when the last page was read).
async fn catch_up(
    service: &Service,
    mut last: u64,
    filter: &AlertFilter,
    tx: &mpsc::Sender<Reply>,
) -> Result<u64, ()> {
    loop {
        // Page and head are read under the same lock, so nothing published
        // in between can be skipped.
        let read = service.with_log(|log| {
            log.read_after(last, filter, PAGE)
                .map(|page| (page, log.last_event_id()))
        });
        let (page, head) = match read {
            Ok(read) => read,
            Err(e) => {
                let _ = tx.send(Err(store_unavailable(e))).await;
                return Err(());
            }
        };
        let full = page.len() == PAGE;
        for alert in &page {
            last = alert.event_id;
            send(tx, alert).await?;
        }
        if !full {
            return Ok(last.max(head));
        }
    }
}

async fn send(tx: &mpsc::Sender<Reply>, alert: &Alert) -> Result<(), ()> {
    let reply = pb::SubscribeResponse {
        alert: Some(pb::Alert::from(alert)),
    };
    tx.send(Ok(reply)).await.map_err(|_| ())
}
