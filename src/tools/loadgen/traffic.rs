//! One stream's traffic: its calls' events, each made when the connection
//! asks for the next one, and the events waiting for their answers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_stream::Stream;

use super::drive::{CallPlan, Shared};
use super::script::{Lang, Rng, Script};
use crate::grpc::pb;

/// The events of one stream's calls, made when the connection asks for
/// the next one: each call's start at its start time, its fragments at its
/// pace, its end once it has lasted its time. One task and one timer per
/// stream, not per call, so the load generator leaves the CPU it shares
/// with the server to the server; and a pull, so a server that falls
/// behind slows the calls down instead of queueing their events.
pub(super) struct StreamTraffic {
    calls: Vec<CallTraffic>,
    /// (due, index into `calls`), earliest first.
    schedule: BinaryHeap<Reverse<(Instant, usize)>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    shared: Arc<Shared>,
    /// Events handed to the stream and not yet answered, oldest first.
    outstanding: Outstanding,
    /// Told (or dropped) when the last call has ended.
    finished: Option<oneshot::Sender<()>>,
}

struct CallTraffic {
    plan: CallPlan,
    language: Lang,
    phase: Phase,
    /// When the next event is due.
    due: Instant,
    /// When the call stops talking and ends.
    ends: Instant,
    started: Instant,
    seq: u64,
}

enum Phase {
    /// The start is next; the script will take the generator.
    Starting(Rng),
    Talking(Script),
    Ending,
    Done,
}

impl StreamTraffic {
    pub(super) fn new(
        plans: Vec<CallPlan>,
        shared: Arc<Shared>,
        outstanding: Outstanding,
    ) -> (StreamTraffic, oneshot::Receiver<()>) {
        let now = Instant::now();
        let calls: Vec<CallTraffic> = plans
            .into_iter()
            .map(|plan| {
                let mut rng =
                    Rng::new(plan.seed ^ (plan.index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                // Spread the calls' starts over the ramp-up (at least the first gap).
                let due = now + plan.ramp_up.max(plan.gap).mul_f64(rng.unit());
                let language = if rng.chance(0.6) { Lang::Ja } else { Lang::En };
                CallTraffic {
                    ends: (due + plan.lasts).min(plan.deadline),
                    plan,
                    language,
                    phase: Phase::Starting(rng),
                    due,
                    started: due,
                    seq: 0,
                }
            })
            .collect();
        let schedule = calls
            .iter()
            .enumerate()
            .map(|(i, call)| Reverse((call.due, i)))
            .collect();
        let (finished, finished_rx) = oneshot::channel();
        let traffic = StreamTraffic {
            calls,
            schedule,
            timer: Box::pin(tokio::time::sleep_until(now.into())),
            shared,
            outstanding,
            finished: Some(finished),
        };
        (traffic, finished_rx)
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.schedule.peek().map(|Reverse((due, _))| *due)
    }
}

impl Stream for StreamTraffic {
    type Item = pb::TranscriptEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(due) = this.next_due() else {
                if let Some(finished) = this.finished.take() {
                    let _ = finished.send(());
                }
                return Poll::Ready(None);
            };
            if this.timer.deadline() != due.into() {
                this.timer.as_mut().reset(due.into());
            }
            ready!(this.timer.as_mut().poll(cx));
            let Some(Reverse((_, index))) = this.schedule.pop() else {
                continue;
            };
            let call = &mut this.calls[index];
            let event = call.next_event(&this.shared);
            if !matches!(call.phase, Phase::Done) {
                this.schedule.push(Reverse((call.due, index)));
            }
            if let Some(event) = event {
                this.shared.sent.fetch_add(1, Ordering::Relaxed);
                let seq = match &event {
                    pb::transcript_event::Event::Fragment(f) => f.seq,
                    _ => 0, // what the service acks a start or an end with
                };
                lock(&this.outstanding).push_back(Sent {
                    call: index,
                    seq,
                    at: Instant::now(),
                });
                return Poll::Ready(Some(pb::TranscriptEvent { event: Some(event) }));
            }
        }
    }
}

impl CallTraffic {
    /// The call's event that is due now, and when its next one is.
    fn next_event(&mut self, shared: &Shared) -> Option<pb::transcript_event::Event> {
        let now = Instant::now();
        let event = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Starting(rng) => {
                self.started = now;
                self.phase =
                    Phase::Talking(Script::new(self.language, self.plan.abusive_share, rng));
                pb::transcript_event::Event::Start(pb::CallStart {
                    call_id: self.plan.call_id.clone(),
                    tenant: self.plan.tenant.clone(),
                    agent_id: format!("agent-{}", self.plan.index % 200),
                    // Unique per run: a caller seen in an earlier run would be a
                    // repeat caller and raise alerts of its own.
                    caller_id: format!("{}-caller", self.plan.call_id),
                    language: self.language.code().to_owned(),
                    ..Default::default()
                })
            }
            Phase::Talking(mut script) => {
                self.seq += 1;
                let audio_ms = self.started.elapsed().as_millis() as u64;
                let (fragment, abusive_now) = script.next(&self.plan.call_id, self.seq, audio_ms);
                if abusive_now {
                    shared.abusive.fetch_add(1, Ordering::Relaxed);
                    shared
                        .pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .entry((self.plan.call_id.clone(), fragment.utterance_id.clone()))
                        .or_insert(now);
                }
                self.phase = Phase::Talking(script);
                pb::transcript_event::Event::Fragment(fragment)
            }
            Phase::Ending => {
                return Some(pb::transcript_event::Event::End(pb::CallEnd {
                    call_id: self.plan.call_id.clone(),
                    end_ms: self.started.elapsed().as_millis() as u64,
                }));
            }
            Phase::Done => return None,
        };
        // The next fragment, jittered ±50 % around the pace; past the
        // call's time, its end at once.
        if let Phase::Talking(script) = &mut self.phase {
            self.due += self.plan.gap.mul_f64(0.5 + script.rng.unit());
            if self.due >= self.ends {
                self.phase = Phase::Ending;
                self.due = now;
            } else if now > self.due + Duration::from_secs(1) {
                // A call that fell far behind (slow server) does not burst
                // to catch up.
                self.due = now;
            }
        }
        Some(event)
    }
}

/// An event handed to its stream, waiting for its answer.
pub(super) struct Sent {
    /// Index of its call among the stream's.
    pub(super) call: usize,
    pub(super) seq: u64,
    pub(super) at: Instant,
}

pub(super) type Outstanding = Arc<Mutex<VecDeque<Sent>>>;

pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
