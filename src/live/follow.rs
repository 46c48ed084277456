//! Following the alert log: what `Subscribe` does for one client. The
//! console's event stream does the same as a response body polled by its
//! connection (`console::stream`), to spare a task per browser.
//!
//! Listen on the bus first, read the store after the resume point up to its
//! head (page and head under the store lock, so nothing published between
//! them is skipped), then go live, skipping ids already sent: no gap, no
//! duplicate. A client too slow for the bus's fixed buffer is served from
//! the store again, so server memory per client stays bounded.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::state::Service;
use crate::alert::{Alert, AlertFilter};
use crate::store::StoreError;
use crate::telemetry::metrics;

/// Alerts read from the store per query while catching up.
const PAGE: usize = 512;

/// Where one client's alerts go (a gRPC reply stream, an event stream).
pub(crate) trait AlertSink {
    /// Sends one alert; `Err` when the client is gone.
    async fn send(&self, alert: &Alert) -> Result<(), ()>;
    /// The store could not be read: tell the client, which resumes later
    /// from the last id it has.
    async fn store_failed(&self, error: StoreError);
}

/// Serves one client until it leaves, the store fails or the service
/// stops. `last` is the last event id it has (or need not have) seen.
pub(crate) async fn follow(
    service: &Service,
    mut live: broadcast::Receiver<Arc<Alert>>,
    mut last: u64,
    filter: &AlertFilter,
    sink: &impl AlertSink,
) -> Result<(), ()> {
    last = catch_up(service, last, filter, sink).await?;
    loop {
        match live.recv().await {
            Ok(alert) => {
                if alert.event_id <= last {
                    continue; // already sent from the store
                }
                last = alert.event_id;
                if filter.matches(&alert) {
                    sink.send(&alert).await?;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                // Too slow for the live buffer: read what it missed from the store.
                ::metrics::counter!(metrics::SUBSCRIBER_CATCHUPS).increment(1);
                last = catch_up(service, last, filter, sink).await?;
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
    sink: &impl AlertSink,
) -> Result<u64, ()> {
    loop {
        let read = service.with_log(|log| {
            log.read_after(last, filter, PAGE)
                .map(|page| (page, log.last_event_id()))
        });
        let (page, head) = match read {
            Ok(read) => read,
            Err(e) => {
                sink.store_failed(e).await;
                return Err(());
            }
        };
        let full = page.len() == PAGE;
        for alert in &page {
            last = alert.event_id;
            sink.send(alert).await?;
        }
        if !full {
            return Ok(last.max(head));
        }
    }
}
