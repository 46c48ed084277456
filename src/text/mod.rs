//! Text handling shared by everything that reads transcripts: the one
//! normaliser ([`normalize`]), quotations marked by punctuation ([`quote`])
//! and masking of personal data in evidence
//! excerpts ([`mask`]).

pub mod mask;
pub mod normalize;
pub mod quote;

pub use mask::mask_personal_data;
pub use normalize::{class_of, normalize, normalize_into, CharClass, Normalized};
pub use quote::reported_quotes;
