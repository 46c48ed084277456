//! `callguard.v1.Ingest/StreamTranscript`: events in, acks, rejections and
//! alerts out on the same stream. The reply stream does the work when the
//! connection polls it ([`IngestReplies`]: no task or queue per stream); a
//! bad event is answered with a rejection and the stream goes on; a client
//! that stops reading only stalls its own stream.
//!
//! Pipelined: an event's ack waits for its alerts to be committed (group
//! commit, a few ms), but the stream keeps reading and applying the next
//! events meanwhile, up to [`MAX_IN_FLIGHT`]; answers leave in event order.
//! A stream that stopped reading while a commit is pending would leave
//! its client's HTTP/2 frames unread, and h2 closes a connection that
//! holds too many small unread frames (ENHANCE_YOUR_CALM) — every call on
//! it would fail.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio_stream::Stream;
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

#[cfg(test)]
mod tests;

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
    type StreamTranscriptStream = IngestReplies;

    async fn stream_transcript(
        &self,
        request: Request<Streaming<pb::TranscriptEvent>>,
    ) -> Result<Response<Self::StreamTranscriptStream>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Ingest)?;
        let inbound = request.into_inner();
        Ok(Response::new(IngestReplies::new(
            self.service.clone(),
            who,
            inbound,
        )))
    }
}

thread_local! {
    /// Scan buffers, one per worker thread rather than one per stream: an
    /// event is applied without a pause, so streams polled on one thread
    /// take turns with it, and 20,000 idle streams do not each keep buffers
    /// grown to their longest fragment.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

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

/// One stream's replies, made when the connection asks for the next one:
/// polling it reads the events that have arrived, applies them and hands
/// out their answers in event order. No task or reply queue of its own, so
/// an event costs the wake-ups the framework's own echo costs (the
/// connection's, then the stream's), not a third for a handler task and a
/// channel hop back.
///
/// The stream reads ahead of its answers (up to [`MAX_IN_FLIGHT`] events)
/// while an answer waits for its alerts' commit. It is polled whenever
/// the client's window has room for a reply; a client that stops reading
/// stalls only its own stream.
///
/// Generic over the inbound events only so that unit tests can feed it
/// from a channel; the service uses tonic's `Streaming`.
pub struct IngestReplies<S = Streaming<pb::TranscriptEvent>> {
    service: Arc<Service>,
    who: Arc<Principal>,
    inbound: S,
    calls: StreamCalls,
    in_flight: VecDeque<InFlight>,
    /// Alerts of an answer whose ack has gone out, boxed: the queue is
    /// almost always empty and a reply is hundreds of bytes.
    alerts: VecDeque<Box<pb::StreamTranscriptResponse>>,
    reading: bool,
    /// A broken message ends the stream with this status, after the
    /// answers owed.
    failure: Option<Status>,
}

impl<S> IngestReplies<S> {
    fn new(service: Arc<Service>, who: Arc<Principal>, inbound: S) -> IngestReplies<S> {
        IngestReplies {
            calls: StreamCalls {
                service: service.clone(),
                scope: who.tenant.clone(),
                ids: HashSet::new(),
            },
            service,
            who,
            inbound,
            in_flight: VecDeque::new(),
            alerts: VecDeque::new(),
            reading: true,
            failure: None,
        }
    }

    fn inbound_ended(&mut self, status: &Status) {
        // A broken message ends the stream with a status saying why (after
        // the answers owed); a vanished client just ends it.
        tracing::debug!(%status, "ingest stream ended by the client side");
        self.reading = false;
        if let Some(failure) = inbound_failure(status) {
            metrics_rejection(&Refusal {
                field: "event",
                reason: String::new(),
                code: failure.code(),
            });
            self.failure = Some(failure);
        }
    }
}

impl<S> Stream for IngestReplies<S>
where
    S: Stream<Item = Result<pb::TranscriptEvent, Status>> + Unpin,
{
    type Item = Result<pb::StreamTranscriptResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(alert) = this.alerts.pop_front() {
                return Poll::Ready(Some(Ok(*alert)));
            }
            // The oldest event's answer, at once when it raised no alert.
            if let Some(front) = this.in_flight.front_mut() {
                if let Poll::Ready(committed) = Pin::new(&mut front.alerts).poll(cx) {
                    let front = this.in_flight.pop_front().expect("polled above");
                    let head = answer(&this.service, front.head, committed, &mut this.alerts);
                    return Poll::Ready(Some(Ok(head)));
                }
            }
            if this.reading && this.in_flight.len() < MAX_IN_FLIGHT {
                match Pin::new(&mut this.inbound).poll_next(cx) {
                    Poll::Ready(Some(Ok(message))) => {
                        let applied = SCRATCH.with_borrow_mut(|scratch| {
                            apply(&this.service, &this.who, message, scratch, &mut this.calls)
                        });
                        this.in_flight.push_back(applied);
                        continue;
                    }
                    Poll::Ready(None) => {
                        this.reading = false;
                        continue;
                    }
                    Poll::Ready(Some(Err(status))) => {
                        this.inbound_ended(&status);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            if !this.reading && this.in_flight.is_empty() {
                return Poll::Ready(this.failure.take().map(Err));
            }
            return Poll::Pending;
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

/// The replies an event gets: its ack (returned) and its alerts (queued
/// behind it), or why not. An ack is only sent once the event's alerts are
/// committed, so a client that sees it knows they are stored. Alerts the
/// store refused are kept by the service and raised again when the client
/// resends the event.
fn answer(
    service: &Service,
    head: Head,
    committed: Committed,
    alerts_out: &mut VecDeque<Box<pb::StreamTranscriptResponse>>,
) -> pb::StreamTranscriptResponse {
    let (call_id, seq, duplicate, arrived) = match head {
        Head::Rejected(rejection) => return *rejection,
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
            return rejection(call_id, seq, &refusal);
        }
    };
    if !alerts.is_empty() {
        ::metrics::histogram!(metrics::INGEST_TO_ALERT).record(arrived.elapsed().as_secs_f64());
    }
    alerts_out.extend(
        alerts
            .iter()
            .map(|a| Box::new(reply(Reply::Alert(pb::Alert::from(a.as_ref()))))),
    );
    reply(Reply::Ack(pb::Ack {
        call_id,
        seq,
        duplicate,
    }))
}
