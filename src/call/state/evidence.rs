//! Evidence: the words of a hit, masked, with a little context.

use super::{speaker_index, CallSession, LastFinal};
use crate::alert::Evidence;
use crate::category::Speaker;
use crate::engine::Hit;
use crate::event::Fragment;
use crate::policy::PolicySet;
use crate::text::{char_span, mask_personal_data, mask_personal_data_owned};

/// Characters of context kept on each side of a hit in an excerpt.
pub(super) const EXCERPT_CONTEXT_CHARS: usize = 12;

impl CallSession {
    pub(super) fn hit_evidence(
        &self,
        fragment: &Fragment,
        hit: &Hit,
        policy: &PolicySet,
    ) -> Vec<Evidence> {
        let mut evidence = Vec::with_capacity(2);
        let who = speaker_index(fragment.speaker);
        if hit.continued {
            if let Some(prev) = &self.last_final[who] {
                evidence.push(prev.evidence(fragment.speaker));
            }
        }
        evidence.push(words_of(fragment, &hit.span));
        evidence.truncate(policy.session.max_evidence);
        evidence
    }
}

impl LastFinal {
    /// The end of the utterance, masked: what a phrase split across two
    /// utterances, or an answer to it, cites of it.
    pub(super) fn evidence(&self, speaker: Speaker) -> Evidence {
        Evidence {
            speaker,
            utterance_id: self.utterance_id.clone(),
            excerpt: mask_personal_data(&self.tail),
            start_ms: self.start_ms,
            end_ms: self.end_ms,
            char_start: None,
            char_end: None,
        }
    }
}

/// Evidence of the words at `span` of a fragment, masked.
/// Its character offsets come from the engine's byte span here, at the edge
/// where evidence is built, so the matcher keeps working in bytes.
pub(super) fn words_of(fragment: &Fragment, span: &std::ops::Range<usize>) -> Evidence {
    let chars = char_span(&fragment.text, span);
    Evidence {
        speaker: fragment.speaker,
        utterance_id: fragment.utterance_id.clone(),
        excerpt: mask_personal_data_owned(excerpt(&fragment.text, span)),
        start_ms: fragment.start_ms,
        end_ms: fragment.end_ms,
        char_start: chars.as_ref().map(|c| c.start),
        char_end: chars.map(|c| c.end),
    }
}

/// Evidence of a whole utterance (its opening, masked): what a counter
/// cites when no single phrase is the reason.
pub(super) fn utterance_of(fragment: &Fragment) -> Evidence {
    Evidence {
        speaker: fragment.speaker,
        utterance_id: fragment.utterance_id.clone(),
        excerpt: mask_personal_data_owned(first_chars(&fragment.text, EXCERPT_CONTEXT_CHARS * 4)),
        start_ms: fragment.start_ms,
        end_ms: fragment.end_ms,
        char_start: None,
        char_end: None,
    }
}

/// The hit's words with a little context on each side, `…` where the
/// fragment goes on. The context is found by byte offset and copied once.
fn excerpt(text: &str, span: &std::ops::Range<usize>) -> String {
    let span = span.start.min(text.len())..span.end.min(text.len());
    let from = text[..span.start]
        .char_indices()
        .rev()
        .nth(EXCERPT_CONTEXT_CHARS - 1)
        .map_or(0, |(i, _)| i);
    let to = text[span.end..]
        .char_indices()
        .nth(EXCERPT_CONTEXT_CHARS)
        .map_or(text.len(), |(i, _)| span.end + i);
    let lead = if from > 0 { "…" } else { "" };
    let trail = if to < text.len() { "…" } else { "" };
    let mut out = String::with_capacity(lead.len() + (to - from) + trail.len());
    out.push_str(lead);
    out.push_str(&text[from..to]);
    out.push_str(trail);
    out
}

pub(super) fn first_chars(text: &str, n: usize) -> String {
    let mut s: String = text.chars().take(n).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

/// The last `n` characters of `text` (all of it when shorter).
pub(super) fn last_chars(text: &str, n: usize) -> &str {
    let start = match n.checked_sub(1) {
        None => text.len(),
        Some(skip) => text.char_indices().rev().nth(skip).map_or(0, |(i, _)| i),
    };
    &text[start..]
}

#[cfg(test)]
mod text_tests {
    use super::last_chars;

    #[test]
    fn last_chars_counts_characters_not_bytes() {
        assert_eq!(last_chars("お前を殺す", 2), "殺す");
        assert_eq!(last_chars("kill you", 3), "you");
        assert_eq!(last_chars("短い", 10), "短い");
        assert_eq!(last_chars("abc", 0), "");
        assert_eq!(last_chars("", 3), "");
    }
}

#[cfg(test)]
mod excerpt_tests {
    use super::*;

    /// The excerpt as it was built before (a Vec of the chars before the
    /// span, then Strings of each side): the output must not change.
    fn excerpt_before(text: &str, span: &std::ops::Range<usize>) -> String {
        let span = span.start.min(text.len())..span.end.min(text.len());
        let before: String = {
            let chars: Vec<char> = text[..span.start]
                .chars()
                .rev()
                .take(EXCERPT_CONTEXT_CHARS)
                .collect();
            chars.into_iter().rev().collect()
        };
        let after: String = text[span.end..]
            .chars()
            .take(EXCERPT_CONTEXT_CHARS)
            .collect();
        let lead = if before.len() < span.start { "…" } else { "" };
        let trail = if span.end + after.len() < text.len() {
            "…"
        } else {
            ""
        };
        format!("{lead}{before}{}{after}{trail}", &text[span])
    }

    #[test]
    fn excerpts_are_as_before_for_every_span() {
        for text in [
            "",
            "idiot",
            "you are an idiot and I will find you, I know where you live",
            "お前の住所は分かっているからな、今からそっちに行ってぶっ殺すぞ、覚えておけよ",
            "ｶﾀｶﾅ and 漢字 mixed with 4111 1111 digits and an é accent…",
        ] {
            let bounds: Vec<usize> = (0..=text.len())
                .filter(|&i| text.is_char_boundary(i))
                .collect();
            for (i, &start) in bounds.iter().enumerate() {
                for &end in &bounds[i..] {
                    assert_eq!(
                        excerpt(text, &(start..end)),
                        excerpt_before(text, &(start..end)),
                        "{text:?} {start}..{end}"
                    );
                }
            }
            // A span past the end is clamped, as before.
            let past = text.len() + 3;
            assert_eq!(
                excerpt(text, &(past..past + 2)),
                excerpt_before(text, &(past..past + 2))
            );
        }
    }
}
