//! The echo baseline: the least a tonic Ingest service can do, on a
//! runtime of its own, to put callguard's round trip in proportion.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::LoadError;
use crate::grpc::convert::event_ids;
use crate::grpc::pb;
use crate::grpc::pb::stream_transcript_response::Response as Reply;

/// Name of the echo service's runtime threads, to tell their CPU from the
/// load generator's (/proc/self/task/*/comm).
pub(super) const ECHO_THREAD: &str = "cg-echo";

/// Answers every event with one ack and does nothing else: no task and no
/// queue of its own, each ack made when the connection polls for the next
/// reply. The least a tonic service can do for a stream.
struct Echo;

type EchoReplies = Pin<Box<dyn Stream<Item = Result<pb::StreamTranscriptResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for Echo {
    type StreamTranscriptStream = EchoReplies;

    async fn stream_transcript(
        &self,
        request: Request<Streaming<pb::TranscriptEvent>>,
    ) -> Result<Response<Self::StreamTranscriptStream>, Status> {
        let replies = request.into_inner().map(|event| {
            let (call_id, seq) = event_ids(&event?);
            Ok(pb::StreamTranscriptResponse {
                response: Some(Reply::Ack(pb::Ack {
                    call_id,
                    seq,
                    duplicate: false,
                })),
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }
}

/// The echo service on a multi-threaded runtime of its own (as many
/// workers as cores, like `serve`'s), so that it is scheduled as a server
/// process would be, not on the load generator's workers.
pub(super) struct EchoServer {
    pub(super) addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Runtime,
}

impl EchoServer {
    pub(super) fn start() -> Result<EchoServer, LoadError> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(LoadError::Echo)?;
        listener.set_nonblocking(true).map_err(LoadError::Echo)?;
        let addr = listener.local_addr().map_err(LoadError::Echo)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name(ECHO_THREAD)
            .build()
            .map_err(LoadError::Echo)?;
        let listener = {
            let _inside = runtime.enter();
            tokio::net::TcpListener::from_std(listener).map_err(LoadError::Echo)?
        };
        let (stop, mut stop_rx) = watch::channel(false);
        // The same stream limit per connection as `serve`.
        let streams = crate::config::Limits::default().max_streams_per_connection;
        let server = tonic::transport::Server::builder()
            .max_concurrent_streams(Some(streams))
            .add_service(pb::ingest_server::IngestServer::new(Echo));
        let task = runtime.spawn(async move {
            let stopped = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            if let Err(e) = server
                .serve_with_incoming_shutdown(crate::serve::no_delay(listener), stopped)
                .await
            {
                tracing::warn!(error = %e, "echo service failed");
            }
        });
        Ok(EchoServer {
            addr,
            stop,
            task,
            runtime,
        })
    }

    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
        // Dropping a runtime would block this one's worker.
        self.runtime.shutdown_background();
    }
}
