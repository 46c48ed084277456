//! The event stream's response body (`GET /api/v1/events`): one client's
//! alerts as Server-Sent Events, written by the connection that hyper
//! already polls, with no task of its own.
//!
//! The order is `live::follow`'s: listen on the bus, read the store after
//! the resume point up to its head (page and head under the store lock),
//! then go live skipping the ids already sent: no gap, no duplicate. A
//! client too slow for the bus's buffer is served from the store again, as
//! `Subscribe` is; a store that cannot be read ends the stream (the
//! browser reconnects with its `Last-Event-ID`); so does stopping the
//! service.
//!
//! Why a body and not a task feeding a queue, as `Subscribe` does: with
//! hundreds of pages open, every alert is multiplied by the number of
//! clients, and each of those copies competed with ingest for the runtime.
//! The task version woke two tasks per client and alert (the follower, then
//! the connection), built an `Event` per client (its `id:` formatted and
//! the alert's text copied in) and wrote once per alert. Here an alert
//! wakes the connection only; its poll takes every alert the bus holds for
//! it into one chunk (one write per wake-up); and each alert's whole frame
//! (`id:`, `data:`, blank line) is built once for all clients ([`Frames`])
//! and handed to each as the same `Bytes`, so a lone alert is written
//! without a copy.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use http_body::Frame;
use tokio::sync::broadcast;
use tokio::time::{Instant, Sleep};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::alert::{Alert, AlertFilter};
use crate::live::Service;
use crate::telemetry::metrics;

/// Alerts read from the store per query while catching up.
const PAGE: usize = 512;
/// Most alerts in one chunk: a client far behind gets several writes, so
/// one poll never holds the connection's thread for long.
const MAX_BATCH: usize = 64;
/// Recent alert events kept framed for the event streams (about a minute
/// at a busy centre's rate; a few hundred kilobytes).
const FRAMED: usize = 1_024;
/// The first bytes of every stream: reconnect a second after a drop.
const HELLO: &[u8] = b": callguard\nretry: 1000\n\n";
/// An idle stream's comment line.
const KEEP_ALIVE_FRAME: &[u8] = b":\n\n";

/// Recent alert events as whole event-stream frames, in event-id order.
/// Every client sends the same alert within moments of the others, so the
/// first one to need an event frames it (under the lock: exactly once) and
/// the rest share those bytes. An event id names one immutable event of
/// the log (an update is a new event), so its frame never goes stale.
/// Events older than the window (a client far behind) are framed for that
/// client alone.
#[derive(Default)]
pub(super) struct Frames(Mutex<VecDeque<(u64, Bytes)>>);

impl Frames {
    /// `id: <event_id>`, `data: <the alert's JSON>`, a blank line. The JSON
    /// is one line (serde escapes newlines inside strings), so one `data:`
    /// line carries it whole.
    pub(super) fn frame(&self, alert: &Alert) -> Result<Bytes, serde_json::Error> {
        let mut recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = match recent.binary_search_by_key(&alert.event_id, |(id, _)| *id) {
            Ok(i) => return Ok(recent[i].1.clone()),
            Err(at) => at,
        };
        let json = serde_json::to_vec(alert)?;
        let id = alert.event_id.to_string();
        let mut frame = Vec::with_capacity(json.len() + id.len() + 13);
        frame.extend_from_slice(b"id: ");
        frame.extend_from_slice(id.as_bytes());
        frame.extend_from_slice(b"\ndata: ");
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b"\n\n");
        let frame = Bytes::from(frame);
        if recent.len() < FRAMED {
            recent.insert(at, (alert.event_id, frame.clone()));
        } else if at > 0 {
            recent.pop_front();
            recent.insert(at - 1, (alert.event_id, frame.clone()));
        }
        Ok(frame)
    }
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The retry hint is still to send.
    Hello,
    /// Reading the store after `last` (at the start, and after lagging).
    CatchUp,
    Live,
    Done,
}

/// One client's event stream, as a response body.
pub(super) struct EventBody {
    service: Arc<Service>,
    frames: Arc<Frames>,
    filter: AlertFilter,
    /// The last event id sent, or passed over as not for this client.
    last: u64,
    live: BroadcastStream<Arc<Alert>>,
    phase: Phase,
    keep_alive: Pin<Box<Sleep>>,
    stopping: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl EventBody {
    /// A stream of the alerts after `last`; `live` must have been
    /// subscribed before `last` was read from the store (see the module
    /// documentation).
    pub(super) fn new(
        service: Arc<Service>,
        frames: Arc<Frames>,
        live: broadcast::Receiver<Arc<Alert>>,
        last: u64,
        filter: AlertFilter,
    ) -> EventBody {
        ::metrics::gauge!(metrics::CONSOLE_STREAMS).increment(1.0);
        let stopping = {
            let service = service.clone();
            Box::pin(async move { service.stopping().await })
        };
        EventBody {
            service,
            frames,
            filter,
            last,
            live: BroadcastStream::new(live),
            phase: Phase::Hello,
            keep_alive: Box::pin(tokio::time::sleep(super::KEEP_ALIVE)),
            stopping,
        }
    }

    /// One page of the store after `last`, as one chunk (possibly empty);
    /// goes live once a page comes back short. `None`: the store failed.
    fn catch_up(&mut self) -> Option<Vec<Bytes>> {
        let read = self.service.with_log(|log| {
            log.read_after(self.last, &self.filter, PAGE)
                .map(|page| (page, log.last_event_id()))
        });
        let (page, head) = match read {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "event stream ends: the store cannot be read");
                return None;
            }
        };
        let mut chunk = Vec::with_capacity(page.len());
        for alert in &page {
            self.last = alert.event_id;
            chunk.push(self.frames.frame(alert).ok()?);
        }
        if page.len() < PAGE {
            self.last = self.last.max(head);
            self.phase = Phase::Live;
        }
        Some(chunk)
    }

    /// Every alert the bus has ready for this client (up to
    /// [`MAX_BATCH`]). `None`: the bus closed (the service is stopping)
    /// or an alert could not be framed.
    fn drain_live(&mut self, cx: &mut Context<'_>) -> Option<Vec<Bytes>> {
        let mut chunk = Vec::new();
        while chunk.len() < MAX_BATCH {
            match Pin::new(&mut self.live).poll_next(cx) {
                Poll::Ready(Some(Ok(alert))) => {
                    if alert.event_id <= self.last {
                        continue; // already sent from the store
                    }
                    self.last = alert.event_id;
                    if self.filter.matches(&alert) {
                        chunk.push(self.frames.frame(&alert).ok()?);
                    }
                }
                Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                    // Too slow for the live buffer: what it missed comes
                    // from the store, after what is already in the chunk.
                    ::metrics::counter!(metrics::SUBSCRIBER_CATCHUPS).increment(1);
                    self.phase = Phase::CatchUp;
                    break;
                }
                Poll::Ready(None) => {
                    if chunk.is_empty() {
                        return None;
                    }
                    self.phase = Phase::Done;
                    break;
                }
                Poll::Pending => break,
            }
        }
        Some(chunk)
    }
}

/// Frames as one chunk: a lone frame as the shared bytes themselves.
fn join(mut frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut chunk = Vec::with_capacity(frames.iter().map(Bytes::len).sum());
    for frame in &frames {
        chunk.extend_from_slice(frame);
    }
    Bytes::from(chunk)
}

impl http_body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.phase == Phase::Done || this.stopping.as_mut().poll(cx).is_ready() {
            this.phase = Phase::Done;
            return Poll::Ready(None);
        }
        let chunk = loop {
            let frames = match this.phase {
                Phase::Done => return Poll::Ready(None),
                Phase::Hello => {
                    this.phase = Phase::CatchUp;
                    break Bytes::from_static(HELLO);
                }
                Phase::CatchUp => this.catch_up(),
                Phase::Live => this.drain_live(cx),
            };
            match frames {
                None => {
                    this.phase = Phase::Done;
                    return Poll::Ready(None);
                }
                Some(frames) if !frames.is_empty() => break join(frames),
                // An empty page with more to read, or nothing for this
                // client among what the bus had: look again.
                Some(_) if this.phase == Phase::CatchUp => continue,
                Some(_) => {
                    if this.keep_alive.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    break Bytes::from_static(KEEP_ALIVE_FRAME);
                }
            }
        };
        let next = Instant::now() + super::KEEP_ALIVE;
        this.keep_alive.as_mut().reset(next);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

impl Drop for EventBody {
    fn drop(&mut self) {
        ::metrics::gauge!(metrics::CONSOLE_STREAMS).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::category::Severity;

    fn alert(event_id: u64) -> Alert {
        Alert {
            event_id,
            ..crate::alert::test_alert("acme", "c1", "violence", Severity::Critical)
        }
    }

    fn expected(alert: &Alert) -> String {
        format!(
            "id: {}\ndata: {}\n\n",
            alert.event_id,
            serde_json::to_string(alert).unwrap()
        )
    }

    #[test]
    fn each_event_is_framed_once_and_shared_within_the_window() {
        let frames = Frames::default();
        let first = frames.frame(&alert(7)).unwrap();
        assert_eq!(&first[..], expected(&alert(7)).as_bytes());
        // A second client gets the same bytes, not a copy.
        assert_eq!(
            first.as_ptr(),
            frames.frame(&alert(7)).unwrap().as_ptr(),
            "shared, not framed again"
        );
        // Out of order (a client catching up) is kept in order too.
        let older = frames.frame(&alert(3)).unwrap();
        assert_eq!(older.as_ptr(), frames.frame(&alert(3)).unwrap().as_ptr());

        // Fill the window: the oldest leave first, and an event older than
        // the whole window is framed but not kept.
        for id in 100..100 + FRAMED as u64 {
            frames.frame(&alert(id)).unwrap();
        }
        let ids: Vec<u64> = frames.0.lock().unwrap().iter().map(|(id, _)| *id).collect();
        assert_eq!(ids.len(), FRAMED);
        assert_eq!((ids[0], ids[FRAMED - 1]), (100, 99 + FRAMED as u64));
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let again = frames.frame(&alert(7)).unwrap();
        assert_eq!(again, first);
        assert_ne!(again.as_ptr(), first.as_ptr());
        assert_eq!(frames.0.lock().unwrap().front().unwrap().0, 100);
    }

    #[test]
    fn a_transcript_with_newlines_stays_one_data_line() {
        let mut a = alert(9);
        a.action = "line one\nline two\r\ndata: forged\n\nid: 1".into();
        let frame = Frames::default().frame(&a).unwrap();
        let text = std::str::from_utf8(&frame).unwrap();
        assert_eq!(text.matches('\n').count(), 3, "{text:?}");
        assert!(text.ends_with("\n\n"));
        let data = text.lines().nth(1).unwrap().strip_prefix("data: ").unwrap();
        assert_eq!(
            serde_json::from_str::<Alert>(data).unwrap().action,
            a.action
        );
    }

    #[test]
    fn frames_join_into_one_chunk_and_a_lone_frame_is_not_copied() {
        let frames = Frames::default();
        let (a, b) = (
            frames.frame(&alert(1)).unwrap(),
            frames.frame(&alert(2)).unwrap(),
        );
        assert_eq!(join(vec![a.clone()]).as_ptr(), a.as_ptr());
        let both = join(vec![a.clone(), b.clone()]);
        assert_eq!(&both[..], [&a[..], &b[..]].concat());
    }
}
