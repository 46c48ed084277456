//! callguard: real-time customer-harassment detection for call centres.
//!
//! Data flows through the modules in this order:
//! `text` (normalise) → `lexicon` (the policy owner's word lists) →
//! `engine` (compiled automata: fragment → hits). The deterministic core
//! knows nothing of the transport; the service and replay drive it.
//! See ARCHITECTURE.md.

pub mod category;
pub mod engine;
pub mod lexicon;
pub mod text;
