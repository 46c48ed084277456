//! callguard: real-time customer-harassment detection for call centres.
//!
//! Data flows through the modules in this order:
//! `event` (transcript events) → `text` (normalise) → `lexicon` (the policy
//! owner's word lists) → `engine` (compiled automata: fragment → hits) →
//! `policy` + `call` (per-call state machine: hits and times → alerts) →
//! `alert` (what supervisors receive) → `store` (durable alert log) →
//! `live` (the one owner of live calls, ids and commits) → `grpc` +
//! `console` (the front ends, calling down into `live`) → `serve` (starts
//! and mounts them). The core (up to `alert`) knows nothing of the
//! transport; the service and replay drive it. Each module imports only
//! the layers below it (`layers.rs` holds the table and its test); see
//! ARCHITECTURE.md. The tools (`eval`, `watch`, `loadgen`, the fuzz
//! checks) live in `tools`, above all of it.

pub mod alert;
pub mod auth;
pub mod call;
pub mod category;
pub mod config;
pub mod console;
pub mod engine;
pub mod event;
pub mod grpc;
pub mod lexicon;
pub mod live;
pub mod policy;
pub mod replay;
pub mod serve;
pub mod store;
pub mod style;
pub mod telemetry;
pub mod text;
/// The tools behind `eval`, `watch`, `loadgen` and the fuzz targets,
/// above every layer: not the library's API (they change with the CLI).
#[doc(hidden)]
pub mod tools;
pub mod webhook;

#[cfg(test)]
mod layers;
