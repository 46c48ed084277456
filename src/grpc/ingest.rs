//! `callguard.v1.Ingest/StreamTranscript`: events in, acks, rejections and
//! alerts out on the same stream. The handler owns its reply sender in a
//! spawned task; a bad event is answered with a rejection and the stream
//! goes on; a client that stops reading only stalls its own stream.
//!
//! Pipelined: an event's ack waits for its alerts to be committed (group
//! commit, a few ms), but the stream keeps reading and applying the next
//! events meanwhile, up to [`MAX_IN_FLIGHT`]; answers leave in event order.
//! A stream that stopped reading while a commit is pending would leave
//! its client's HTTP/2 frames unread, and h2 closes a connection that
//! holds too many small unread frames (ENHANCE_YOUR_CALM) — every call on
//! it would fail.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::auth::principal;
use super::convert::event_ids;
use super::pb;
use super::pb::stream_transcript_response::Response as Reply;
use super::status::{code_name, inbound_failure, refusal_label, Refusal};
use crate::auth::{Permission, Principal};
use crate::engine::Scratch;
use crate::event::Event;
use crate::live::commit::{Committed, Pending};
use crate::live::{Outcome, Service};
use crate::telemetry::metrics;

/// Replies buffered per stream before the handler waits for the client.
const REPLY_BUFFER: usize = 64;
/// Events of one stream applied but not yet answered (waiting for their
/// alerts' commit) before the stream stops reading.
const MAX_IN_FLIGHT: usize = 64;

pub struct IngestService {
    service: Arc<Service>,
}

impl IngestService {
    pub fn new(service: Arc<Service>) -> IngestService {
        IngestService { service }
    }
}

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    type StreamTranscriptStream =
        Pin<Box<dyn Stream<Item = Result<pb::StreamTranscriptResponse, Status>> + Send>>;

    async fn stream_transcript(
        &self,
        request: Request<Streaming<pb::TranscriptEvent>>,
    ) -> Result<Response<Self::StreamTranscriptStream>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Ingest)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(REPLY_BUFFER);
        tokio::spawn(serve_stream(self.service.clone(), who, inbound, tx));
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).map(|reply| *reply),
        )))
    }
}

/// Replies are boxed in the queue: a queue block holds 32 slots, and an
/// unboxed reply (an alert, or a status) is hundreds of bytes — kilobytes
/// per open call for a queue that is almost always empty.
type ReplySender = mpsc::Sender<Box<Result<pb::StreamTranscriptResponse, Status>>>;

/// An event applied and waiting for its answer.
struct InFlight {
    head: Head,
    alerts: Pending,
}

enum Head {
    /// Refused: this is the whole answer (boxed: the queue stays small).
    Rejected(Box<pb::StreamTranscriptResponse>),
    /// Accepted: ack, then the alerts once committed.
    Accepted {
        call_id: String,
        seq: u64,
        duplicate: bool,
        arrived: Instant,
    },
}

/// What woke the stream task.
enum Step {
    Committed(Committed),
    Inbound(Result<Option<pb::TranscriptEvent>, Status>),
}

async fn serve_stream(
    service: Arc<Service>,
    who: Arc<Principal>,
    mut inbound: Streaming<pb::TranscriptEvent>,
    tx: ReplySender,
) {
    let mut scratch = Scratch::default();
    let mut calls = StreamCalls {
        service: service.clone(),
        scope: who.tenant.clone(),
        ids: HashSet::new(),
    };
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let mut reading = true;
    loop {
        // Answers that need no commit leave at once, in order.
        while in_flight.front().is_some_and(|f| f.alerts.is_settled()) {
            let front = in_flight.pop_front().expect("checked above");
            if !send(&tx, answer(&service, front.head, Ok(Vec::new()))).await {
                return; // the client left
            }
        }
        if !reading && in_flight.is_empty() {
            return;
        }
        let step = tokio::select! {
            biased;
            committed = async {
                match in_flight.front_mut() {
                    Some(front) => (&mut front.alerts).await,
                    None => std::future::pending().await,
                }
            }, if !in_flight.is_empty() => Step::Committed(committed),
            message = inbound.message(), if reading && in_flight.len() < MAX_IN_FLIGHT => {
                Step::Inbound(message)
            }
        };
        match step {
            Step::Committed(committed) => {
                let front = in_flight.pop_front().expect("awaited above");
                if !send(&tx, answer(&service, front.head, committed)).await {
                    return;
                }
            }
            Step::Inbound(Ok(Some(message))) => {
                in_flight.push_back(apply(&service, &who, message, &mut scratch, &mut calls));
            }
            Step::Inbound(Ok(None)) => reading = false,
            Step::Inbound(Err(status)) => {
                // A broken message ends the stream with a status saying
                // why (after the answers owed); a vanished client just
                // ends it.
                tracing::debug!(%status, "ingest stream ended by the client side");
                reading = false;
                if let Some(failure) = inbound_failure(&status) {
                    metrics_rejection(&Refusal {
                        field: "event",
                        reason: String::new(),
                        code: failure.code(),
                    });
                    for front in in_flight.drain(..) {
                        let committed = front.alerts.await;
                        if !send(&tx, answer(&service, front.head, committed)).await {
                            return;
                        }
                    }
                    let _ = tx.send(Box::new(Err(failure))).await;
                    return;
                }
            }
        }
    }
}

/// The calls a stream sent events for and did not end. When the stream
/// goes (however it goes) they close after `limits.stream_grace_seconds`
/// instead of the idle timeout, unless another stream takes them up
/// (issue #18, F6).
struct StreamCalls {
    service: Arc<Service>,
    scope: Option<String>,
    ids: HashSet<String>,
}

impl StreamCalls {
    fn contains(&self, call_id: &str) -> bool {
        self.ids.contains(call_id)
    }

    fn insert(&mut self, call_id: String) {
        self.ids.insert(call_id);
    }

    fn remove(&mut self, call_id: &str) {
        self.ids.remove(call_id);
    }
}

impl Drop for StreamCalls {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            let ids = std::mem::take(&mut self.ids);
            self.service.orphan(self.scope.as_deref(), ids);
        }
    }
}

/// Sends replies in order; false when the client has left.
async fn send(tx: &ReplySender, replies: Vec<pb::StreamTranscriptResponse>) -> bool {
    for reply in replies {
        if tx.send(Box::new(Ok(reply))).await.is_err() {
            return false;
        }
    }
    true
}

fn reply(response: Reply) -> pb::StreamTranscriptResponse {
    pb::StreamTranscriptResponse {
        response: Some(response),
    }
}

fn rejection(call_id: String, seq: u64, refusal: &Refusal) -> pb::StreamTranscriptResponse {
    metrics_rejection(refusal);
    reply(Reply::Rejection(pb::Rejection {
        call_id,
        seq,
        field: refusal.field.to_owned(),
        reason: refusal.reason.clone(),
        code: code_name(refusal.code).to_owned(),
    }))
}

fn metrics_rejection(refusal: &Refusal) {
    ::metrics::counter!(metrics::REJECTIONS, "reason" => refusal_label(refusal)).increment(1);
}

/// One event in: decoded, checked and applied; its answer (ack or
/// rejection, then its alerts) is due once its alerts are committed.
fn apply(
    service: &Service,
    who: &Principal,
    message: pb::TranscriptEvent,
    scratch: &mut Scratch,
    calls: &mut StreamCalls,
) -> InFlight {
    let arrived = Instant::now();
    let (call_id, seq) = event_ids(&message);
    let refused = |refusal: &Refusal| InFlight {
        head: Head::Rejected(Box::new(rejection(call_id.clone(), seq, refusal))),
        alerts: Pending::none(),
    };
    let event = match Event::try_from(message) {
        Ok(event) => event,
        Err(e) => return refused(&Refusal::from(&e)),
    };
    let ends = matches!(event, Event::End(_));
    // Without tokens every client is the one "open" principal: no cap per
    // token then, only the service's and the tenant's.
    let token = (!service.config.tokens.is_empty()).then_some(who.name.as_str());
    match service.apply_sent(event, who.tenant.as_deref(), token, scratch) {
        Outcome::Accepted { duplicate, alerts } => {
            if ends {
                calls.remove(&call_id);
            } else if !calls.contains(&call_id) {
                calls.insert(call_id.clone());
            }
            InFlight {
                head: Head::Accepted {
                    call_id,
                    seq,
                    duplicate,
                    arrived,
                },
                alerts,
            }
        }
        Outcome::Refused(e) => refused(&Refusal::from(&e)),
        Outcome::Denied(reason) => refused(&Refusal::denied(reason)),
        Outcome::Ended(reason) => refused(&Refusal::ended(reason)),
    }
}

/// The replies an event gets: its ack and its alerts, or why not. An ack
/// is only sent once the event's alerts are committed, so a client that
/// sees it knows they are stored. Alerts the store refused are kept by the
/// service and raised again when the client resends the event.
fn answer(
    service: &Service,
    head: Head,
    committed: Committed,
) -> Vec<pb::StreamTranscriptResponse> {
    let (call_id, seq, duplicate, arrived) = match head {
        Head::Rejected(rejection) => return vec![*rejection],
        Head::Accepted {
            call_id,
            seq,
            duplicate,
            arrived,
        } => (call_id, seq, duplicate, arrived),
    };
    let alerts = match committed {
        Ok(alerts) => alerts,
        Err(failed) => {
            let refusal = Refusal::store_failed(&failed.error);
            service.retain(&call_id, seq, failed);
            return vec![rejection(call_id, seq, &refusal)];
        }
    };
    if !alerts.is_empty() {
        ::metrics::histogram!(metrics::INGEST_TO_ALERT).record(arrived.elapsed().as_secs_f64());
    }
    let mut replies = Vec::with_capacity(1 + alerts.len());
    replies.push(reply(Reply::Ack(pb::Ack {
        call_id,
        seq,
        duplicate,
    })));
    replies.extend(
        alerts
            .iter()
            .map(|a| reply(Reply::Alert(pb::Alert::from(a.as_ref())))),
    );
    replies
}
