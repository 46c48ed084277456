//! `callguard.v1.Ingest/StreamTranscript`: events in, acks, rejections and
//! alerts out on the same stream. The handler owns its reply sender in a
//! spawned task; a bad event is answered with a rejection and the stream
//! goes on; a client that stops reading only stalls its own stream.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::auth::{principal, Permission, Principal};
use super::convert::event_ids;
use super::pb;
use super::pb::stream_transcript_response::Response as Reply;
use super::status::{code_name, refusal_label, Refusal};
use crate::engine::Scratch;
use crate::event::Event;
use crate::serve::metrics;
use crate::serve::state::{Outcome, Service};

/// Replies buffered per stream before the handler waits for the client.
const REPLY_BUFFER: usize = 64;

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
    type StreamTranscriptStream = ReceiverStream<Result<pb::StreamTranscriptResponse, Status>>;

    async fn stream_transcript(
        &self,
        request: Request<Streaming<pb::TranscriptEvent>>,
    ) -> Result<Response<Self::StreamTranscriptStream>, Status> {
        let who = principal(&request)?;
        who.require(Permission::Ingest)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(REPLY_BUFFER);
        let service = self.service.clone();
        tokio::spawn(async move {
            let mut scratch = Scratch::default();
            loop {
                let message = match inbound.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(status) => {
                        // A broken message ends the stream with a status
                        // saying why; a vanished client just ends it.
                        tracing::debug!(%status, "ingest stream ended by the client side");
                        if let Some(answer) = inbound_failure(&status) {
                            metrics_rejection(&Refusal {
                                field: "event",
                                reason: String::new(),
                                code: answer.code(),
                            });
                            let _ = tx.send(Err(answer)).await;
                        }
                        break;
                    }
                };
                let replies = handle(&service, &who, message, &mut scratch).await;
                for reply in replies {
                    if tx.send(Ok(reply)).await.is_err() {
                        return; // the client left
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The status a client gets for a message the server could not decode
/// (`None`: the client went away; nobody is listening).
fn inbound_failure(status: &Status) -> Option<Status> {
    match status.code() {
        // tonic: "decoded message length too large"
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted => Some(
            Status::resource_exhausted(format!("event too large: {}", status.message())),
        ),
        // prost decode errors and framing errors
        tonic::Code::Internal => Some(Status::invalid_argument(format!(
            "malformed event: {}",
            status.message()
        ))),
        _ => None,
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

/// One event in, its replies out: ack (or rejection), then its alerts once
/// they are committed (the ack waits for them, so a client that sees an
/// ack knows the event's alerts are stored).
async fn handle(
    service: &Service,
    who: &Principal,
    message: pb::TranscriptEvent,
    scratch: &mut Scratch,
) -> Vec<pb::StreamTranscriptResponse> {
    let arrived = Instant::now();
    let (call_id, seq) = event_ids(&message);
    let event = match Event::try_from(message) {
        Ok(event) => event,
        Err(e) => return vec![rejection(call_id, seq, &Refusal::from(&e))],
    };
    let (duplicate, pending) = match service.apply(event, who.tenant.as_deref(), scratch) {
        Outcome::Accepted { duplicate, alerts } => (duplicate, alerts),
        Outcome::Refused(e) => return vec![rejection(call_id, seq, &Refusal::from(&e))],
        Outcome::Denied(reason) => {
            let refusal = Refusal {
                field: "tenant",
                reason,
                code: tonic::Code::PermissionDenied,
            };
            return vec![rejection(call_id, seq, &refusal)];
        }
    };
    let alerts = match pending.wait().await {
        Ok(alerts) => alerts,
        Err(e) => {
            let refusal = Refusal {
                field: "event",
                reason: format!("alert store failed, the event's alerts were not delivered: {e}"),
                code: tonic::Code::Unavailable,
            };
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
