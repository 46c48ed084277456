//! Byte offsets into a text turned into character offsets for clients.
//!
//! The engine works in bytes of the UTF-8 text, which is what Rust slices
//! by, but a client holds the utterance as a string of its own language:
//! Python indexes code points, Java and JavaScript UTF-16 units. Code points
//! (Unicode scalar values) are the one count every language can reach, so
//! that is what alerts carry.

use std::ops::Range;

/// The range of Unicode scalar values that the byte range `span` of `text`
/// covers: `text.chars().skip(start).take(end - start)` is `&text[span]`.
/// A span past the end is cut at the end; `None` when a bound falls inside
/// a character (no such span comes from the engine) or beyond `u32`.
pub fn char_span(text: &str, span: &Range<usize>) -> Option<Range<u32>> {
    let end = span.end.min(text.len());
    let start = span.start.min(end);
    if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
        return None;
    }
    let chars_before = text[..start].chars().count();
    let chars_within = text[start..end].chars().count();
    let start = u32::try_from(chars_before).ok()?;
    let end = u32::try_from(chars_before + chars_within).ok()?;
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, text, the words, their character range)`.
    const CASES: &[(&str, &str, &str, Range<u32>)] = &[
        ("ascii", "you are a useless idiot", "idiot", 18..23),
        ("ascii_at_start", "idiot", "idiot", 0..5),
        ("japanese", "お前ころすぞ", "ころす", 2..5),
        (
            "japanese_after_ascii",
            "OK、お前ぶっ殺すぞ",
            "ぶっ殺す",
            5..9,
        ),
        ("accent", "eres un estúpido", "estúpido", 8..16),
        ("emoji_before", "😡 you idiot", "idiot", 6..11),
        ("fullwidth", "ＡＢＣ死ね", "死ね", 3..5),
    ];

    #[test]
    fn byte_spans_become_character_spans() {
        for (name, text, words, expected) in CASES {
            let start = text
                .find(words)
                .unwrap_or_else(|| panic!("{name}: no {words}"));
            let span = start..start + words.len();
            let chars = char_span(text, &span).unwrap_or_else(|| panic!("{name}: none"));
            assert_eq!(chars, *expected, "{name}");
            let back: String = text
                .chars()
                .skip(chars.start as usize)
                .take((chars.end - chars.start) as usize)
                .collect();
            assert_eq!(back, *words, "{name}: the characters give the words back");
        }
    }

    #[test]
    fn a_bound_inside_a_character_or_past_the_end() {
        // "こ" is three bytes: 1..3 starts inside it.
        assert_eq!(char_span("ころす", &(1..3)), None);
        assert_eq!(char_span("abc", &(1..99)), Some(1..3));
        assert_eq!(char_span("abc", &(7..9)), Some(3..3));
    }
}
