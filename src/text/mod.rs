//! Text handling shared by everything that reads transcripts: the one
//! normaliser ([`normalize`]), spoken English spellings for the
//! lexicon's phrases ([`spoken`]), quotations marked by punctuation ([`quote`]),
//! masking of personal data in evidence excerpts ([`mask`]), byte
//! offsets turned into the character offsets clients see ([`offsets`]) and
//! the content words a caller says again ([`content`]).

pub mod amount;
pub mod content;
pub mod mask;
pub mod normalize;
pub mod offsets;
pub mod quote;
pub mod spoken;

pub use mask::{mask_personal_data, mask_personal_data_owned};
pub use normalize::{class_of, normalize, normalize_into, CharClass, Normalized};
pub use offsets::char_span;
pub use quote::{closes_sentence, reported_quotes, sentence_ends};
