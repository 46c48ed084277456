//! The one owner of live state: the rules in force (and their reload), the
//! live calls and their service-wide ids, the commit thread that writes
//! the alert log and feeds the live bus, and the follower that serves a
//! client the log and then the bus.
//!
//! Below every front end: the gRPC handlers (`grpc`) and the console's
//! HTTP side (`console`) call down into [`Service`]; `serve` builds it and
//! mounts them. Nothing here knows of tonic or axum.

pub mod clock;
pub mod commit;
pub mod follow;
pub mod state;

pub use clock::{Clock, ManualClock};
pub use state::{HandlingError, OpenError, Outcome, ReloadError, Rules, Service};

#[cfg(test)]
mod tests;
