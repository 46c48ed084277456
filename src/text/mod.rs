//! Text handling shared by everything that reads transcripts: the one
//! normaliser ([`normalize`]) and masking of personal data in evidence
//! excerpts ([`mask`]).

pub mod mask;
pub mod normalize;

pub use mask::mask_personal_data;
pub use normalize::{class_of, normalize, normalize_into, CharClass, Normalized};
