//! What the service tells its operator: metric names (with their `# HELP`
//! text and the Prometheus recorder) and rate-limited log lines. A leaf:
//! it imports nothing of callguard, so every layer that counts or logs
//! (store, live state, handlers, serve) can use it.

pub mod metrics;
pub mod ratelimit;
