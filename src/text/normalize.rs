//! The one normaliser: lexicon patterns at build time and transcripts at run
//! time go through exactly this code, so a pattern matches a transcript when
//! both fold to the same bytes.
//!
//! It works in one pass over the input, char by char, and never allocates once
//! its buffers have grown to the size of the longest fragment (a [`Normalized`]
//! is reused across fragments). Every output byte remembers the byte range of
//! the input it came from, so a match in the folded text points back to the
//! exact words the caller said.
//!
//! Speed (see BENCHMARKS.md): runs of plain letters, digits, kana and
//! ideographs inside a word go through a tight loop (`Folder::plain_run`);
//! the combining-mark look-ahead decodes the next character only when its
//! first bytes leave a doubt. [`normalize_with`] hands each folded byte to a
//! [`FoldSink`] as it is produced: the engine steps its automaton there, so
//! the automaton's memory latency overlaps with the folding work.
//!
//! What it folds, in order (see `lexicons/README.md` for the user's view):
//! 1. NFKC, per character, with a fast path for the ranges where NFKC is the
//!    identity (ASCII, kana, CJK ideographs, Hangul syllables, 、。「」) or a
//!    fixed shift (full-width ASCII) — a whole-string NFKC would lose the
//!    offset map and cost a fresh allocation per fragment;
//! 2. lower case; Latin diacritics dropped; katakana to hiragana;
//! 3. long-vowel marks (ー 〜 ~ after kana) to one ー; elongation squashed;
//! 4. separators: dropped when either neighbour is CJK, one space between
//!    Latin words; apostrophes join (`don't` = `dont`);
//! 5. filler tokens that stand alone between separators (えー, あのー, um) dropped;
//! 6. runs of `*` (ASR masking) kept as a masked word.
//!
//! Rejected: a morphological analyser (Sudachi/lindera) for Japanese word
//! boundaries. It would fold more conjugations, but it costs a large
//! dictionary, an order of magnitude in speed, and ASR output is not the
//! edited text it was trained on. Lexicon variants, exclusions and
//! `standalone` do that job here, and the examples in the lexicons test it.

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

/// The class of a folded character, which decides how separators around it
/// behave and where Latin word boundaries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharClass {
    /// Latin (or other spaced-script) letters, digits and `*`: words are
    /// separated by one space and patterns match on word boundaries.
    Word,
    /// Han, kana, Hangul and ー: no separators, patterns match anywhere.
    Cjk,
}

/// Folded text with the map back to the original.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Normalized {
    text: String,
    /// For each byte of `text`: start and end of the original character(s)
    /// it came from. Empty when folded without the map.
    src: Vec<(u32, u32)>,
    /// Was `src` built?
    mapped: bool,
    /// Positions in `text` before which a separator of the original was
    /// dropped between CJK characters (used by `standalone` terms).
    dropped_separators: Vec<u32>,
}

impl Normalized {
    /// The folded text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Is the folded text empty?
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The byte range of the original text that the folded range
    /// `start..end` came from. `start < end <= len` and both on char
    /// boundaries of the folded text.
    ///
    /// # Panics
    /// When the text was folded without its map ([`normalize_text_with`]).
    pub fn original_range(&self, start: usize, end: usize) -> std::ops::Range<usize> {
        assert!(self.mapped, "folded without the offset map");
        debug_assert!(start < end && end <= self.text.len());
        self.src[start].0 as usize..self.src[end - 1].1 as usize
    }

    /// The first folded position whose character came from at or after
    /// byte `original` of the original text (the folded length past the
    /// end).
    ///
    /// # Panics
    /// When the text was folded without its map ([`normalize_text_with`]).
    pub fn folded_from(&self, original: usize) -> usize {
        assert!(self.mapped, "folded without the offset map");
        self.src
            .partition_point(|&(start, _)| (start as usize) < original)
    }

    /// Was a separator dropped right before folded position `pos`?
    pub fn separator_before(&self, pos: usize) -> bool {
        self.dropped_separators.binary_search(&(pos as u32)).is_ok()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.src.clear();
        self.dropped_separators.clear();
    }
}

/// Filler tokens dropped when they stand alone between separators. Compared
/// after folding (katakana → hiragana, elongation squashed).
const FILLERS: &[&str] = &[
    "え",
    "えー",
    "ええ",
    "えっと",
    "えーと",
    "えーっと",
    "えと",
    "あの",
    "あのー",
    "あのう",
    "その",
    "そのー",
    "まあ",
    "まー",
    "うーん",
    "うん",
    "あー",
    "んー",
    "ん",
    "um",
    "umm",
    "uh",
    "uhh",
    "uhm",
    "er",
    "erm",
    "hmm",
    "mm",
];

/// ASCII bytes that fold to a plain word character (letters lower-cased,
/// digits, `*`), 0 for the rest: see `Folder::push_ascii`.
static PLAIN_ASCII: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let u = b as u8;
        table[b] = match u {
            b'a'..=b'z' | b'0'..=b'9' | b'*' => u,
            b'A'..=b'Z' => u.to_ascii_lowercase(),
            _ => 0,
        };
        b += 1;
    }
    table
};

/// A token of at most 15 bytes as one integer: its bytes, then its length
/// in the top byte (so "え" and "え\0" differ).
const fn filler_key(token: &[u8]) -> u128 {
    let mut key = (token.len() as u128) << 120;
    let mut i = 0;
    while i < token.len() {
        key |= (token[i] as u128) << (8 * i);
        i += 1;
    }
    key
}

/// The longest filler, in bytes.
const MAX_FILLER_LEN: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < FILLERS.len() {
        if FILLERS[i].len() > max {
            max = FILLERS[i].len();
        }
        i += 1;
    }
    max
};

/// [`FILLERS`] as keys: a filler check is a few integer comparisons.
const FILLER_KEYS: [u128; FILLERS.len()] = {
    let mut keys = [0u128; FILLERS.len()];
    let mut i = 0;
    while i < FILLERS.len() {
        assert!(FILLERS[i].len() <= 15);
        keys[i] = filler_key(FILLERS[i].as_bytes());
        i += 1;
    }
    keys
};

/// Row of [`FILLER_SHAPES`] for each first byte: the bytes a filler
/// starts with (u, e, h, m; 0xE3 for hiragana and ー) have their own, every
/// other byte row 0, which is empty.
static FILLER_START: [u8; 256] = {
    let mut rows = [0u8; 256];
    let mut next = 1;
    let mut i = 0;
    while i < FILLERS.len() {
        let first = FILLERS[i].as_bytes()[0] as usize;
        if rows[first] == 0 {
            rows[first] = next;
            next += 1;
        }
        i += 1;
    }
    rows
};

/// Distinct first bytes of [`FILLERS`], plus the empty row 0.
const FILLER_ROWS: usize = {
    let mut max = 0;
    let mut b = 0;
    while b < 256 {
        if FILLER_START[b] > max {
            max = FILLER_START[b];
        }
        b += 1;
    }
    max as usize + 1
};

/// For each first byte (row, [`FILLER_START`]) and last byte of a filler,
/// its lengths, one bit per length: nearly every word that closes a token
/// ("me", "the", "how") fails this one lookup, without a branch on the way.
static FILLER_SHAPES: [[u16; 256]; FILLER_ROWS] = {
    let mut shapes = [[0u16; 256]; FILLER_ROWS];
    let mut i = 0;
    while i < FILLERS.len() {
        let filler = FILLERS[i].as_bytes();
        let row = FILLER_START[filler[0] as usize] as usize;
        shapes[row][filler[filler.len() - 1] as usize] |= 1 << filler.len();
        i += 1;
    }
    shapes
};

/// Is `token` one of [`FILLERS`]?
#[inline]
fn is_filler(token: &[u8]) -> bool {
    let len = token.len();
    if len == 0 || len > MAX_FILLER_LEN {
        return false;
    }
    let row = FILLER_START[token[0] as usize] as usize;
    FILLER_SHAPES[row][token[len - 1] as usize] & (1 << len) != 0
        && FILLER_KEYS.contains(&filler_key(token))
}

/// Receives the folded text while it is being produced, so a consumer (the
/// engine's automaton) can work on each byte while the normaliser moves on,
/// instead of in a second pass. The text only grows at the end, and is cut
/// back only when a filler token is dropped or a squashed vowel removed.
pub trait FoldSink {
    /// Bytes were appended: the folded text is now `text`, the new bytes
    /// are `text[from..]` (whole characters).
    fn appended(&mut self, text: &[u8], from: usize);
    /// [`Self::appended`] when the text was not empty before (`from > 0`).
    #[inline(always)]
    fn appended_more(&mut self, text: &[u8], from: usize) {
        self.appended(text, from);
    }
    /// The folded text was cut back to `text` (rare: a consumer may start
    /// over).
    fn truncated(&mut self, text: &[u8]);

    /// Starts a run of appends in the normaliser's tight loop: the
    /// consumer's running state as one word, which the loop keeps in a
    /// register and hands to [`Self::run_appended`] (the engine's automaton
    /// state: kept in `self`, every step would wait on a store and a reload).
    /// Until [`Self::run_end`], only `run_appended` is called.
    #[inline(always)]
    fn run_begin(&mut self) -> u32 {
        0
    }
    /// [`Self::appended_more`] inside a run: `text` (not empty before) ends
    /// with the `N` new bytes `new`. Returns the new running state.
    #[inline(always)]
    fn run_appended<const N: usize>(&mut self, run: u32, text: &[u8], new: [u8; N]) -> u32 {
        let _ = new;
        self.appended_more(text, text.len() - N);
        run
    }
    /// Ends a run with its last running state.
    #[inline(always)]
    fn run_end(&mut self, run: u32) {
        let _ = run;
    }
}

/// No consumer.
impl FoldSink for () {
    #[inline(always)]
    fn appended(&mut self, _: &[u8], _: usize) {}
    #[inline(always)]
    fn truncated(&mut self, _: &[u8]) {}
}

/// Folds `input` into `out`, replacing what `out` held.
pub fn normalize_into(input: &str, out: &mut Normalized) {
    normalize_with(input, out, &mut ());
}

/// [`normalize_into`], telling `sink` about the folded text as it grows.
/// At the end, the bytes appended and not truncated are exactly `out`'s text.
pub fn normalize_with<S: FoldSink>(input: &str, out: &mut Normalized, sink: &mut S) {
    fold::<S, true>(input, out, sink, true);
}

/// [`normalize_with`] without the offset map: the same text (and dropped
/// separators), but [`Normalized::original_range`] may not be asked. The
/// engine folds every fragment this way and builds the map again only for
/// the few with a hit: not writing 8 bytes of map per folded byte made the
/// engine about 7% faster on the bench stream (BENCHMARKS.md).
pub fn normalize_text_with<S: FoldSink>(input: &str, out: &mut Normalized, sink: &mut S) {
    fold::<S, false>(input, out, sink, true);
}

/// [`normalize`] one character at a time, without the tight loop
/// (`Folder::plain_run`): the reference it must agree with, for tests and
/// fuzzing. Not part of the API.
#[doc(hidden)]
pub fn normalize_general(input: &str) -> Normalized {
    let mut out = Normalized::default();
    fold::<(), true>(input, &mut out, &mut (), false);
    out
}

/// `fast`: take the tight loop for plain runs (always, but in tests).
fn fold<S: FoldSink, const MAP: bool>(input: &str, out: &mut Normalized, sink: &mut S, fast: bool) {
    out.clear();
    out.mapped = MAP;
    let mut folder = Folder::<S, MAP> {
        out,
        sink,
        pending_separator: None,
        last: None,
        run_char: None,
        run: 0,
        token: TokenMark::default(),
    };
    let bytes = input.as_bytes();
    folder.out.text.reserve(bytes.len());
    if MAP {
        folder.out.src.reserve(bytes.len());
    }
    let mut cluster = String::new();
    let mut i = 0;
    while i < bytes.len() {
        // Inside a token, runs of plain letters, digits, kana and ideographs
        // go through a tight loop; everything else one char at a time.
        let run_end = if fast { folder.plain_run(bytes, i) } else { i };
        if run_end > i {
            i = run_end;
            continue;
        }
        let b = bytes[i];
        if b < 0x80 && bytes.get(i + 1).is_none_or(|&n| n < 0x80) {
            // An ASCII character before another (or the end): no cluster.
            folder.push_ascii(b, i as u32, i as u32 + 1);
            i += 1;
            continue;
        }
        let Some((c, len)) = decode(bytes, i) else {
            break;
        };
        let end = i + len;
        if !combines_at(bytes, end) {
            if c.is_ascii() {
                folder.push_ascii(c as u8, i as u32, end as u32);
                i = end;
                continue;
            }
            if let Some(ascii) = fullwidth_ascii(c) {
                // NFKC of U+FF01..=U+FF5E is the ASCII character.
                folder.push_ascii(ascii, i as u32, end as u32);
                i = end;
                continue;
            }
            if nfkc_identity(c) {
                folder.push(c, i as u32, end as u32);
                i = end;
                continue;
            }
        }
        // Slow path: NFKC of the character together with the combining
        // marks that follow it (ｶﾞ → ガ, か + U+3099 → が).
        cluster.clear();
        cluster.push(c);
        let mut cluster_end = end;
        let mut next = decode(bytes, end);
        while let Some((d, d_len)) = next.filter(|&(d, _)| combines(d)) {
            cluster.push(d);
            cluster_end += d_len;
            next = decode(bytes, cluster_end);
        }
        for r in cluster.nfkc() {
            folder.push(r, i as u32, cluster_end as u32);
        }
        i = cluster_end;
    }
    folder.finish();
}

/// The character starting at byte `i` of `bytes` (valid UTF-8, `i` on a
/// char boundary) and its length, `None` at the end.
#[inline]
pub(crate) fn decode(bytes: &[u8], i: usize) -> Option<(char, usize)> {
    let b0 = *bytes.get(i)?;
    if b0 < 0x80 {
        return Some((b0 as char, 1));
    }
    let cont = |k: usize| u32::from(bytes[i + k] & 0x3F);
    let (code, len) = if b0 < 0xE0 {
        ((u32::from(b0 & 0x1F) << 6) | cont(1), 2)
    } else if b0 < 0xF0 {
        ((u32::from(b0 & 0x0F) << 12) | (cont(1) << 6) | cont(2), 3)
    } else {
        (
            (u32::from(b0 & 0x07) << 18) | (cont(1) << 12) | (cont(2) << 6) | cont(3),
            4,
        )
    };
    Some((
        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
        len,
    ))
}

/// Does the character starting at byte `i` of `bytes` (if any) combine with
/// the one before it? Decodes it only when its first bytes leave a doubt.
#[inline]
fn combines_at(bytes: &[u8], i: usize) -> bool {
    match bytes.get(i) {
        None => false,
        Some(&b) if b < 0xCC => false, // below U+0300
        // U+4000..=U+9FFF: ideographs and hexagrams, no combining marks.
        Some(0xE4..=0xE9) => false,
        // U+3040..=U+307F and U+30C0..=U+30FF: kana, no combining marks
        // (the voicing marks U+3099/U+309A are in U+3080..=U+30BF).
        Some(0xE3) if matches!(bytes.get(i + 1), Some(0x81 | 0x83)) => false,
        Some(_) => decode(bytes, i).is_some_and(|(d, _)| combines(d)),
    }
}

/// The repetition count of `emit_general` inside a plain run: counts `c`
/// and returns true when it is emitted as is, false (changing nothing) when
/// the general path must squash it (ー at once, other characters but digits
/// from the third in a row on).
#[inline(always)]
fn repeat_ok(prev: &mut Option<char>, run: &mut u32, c: char) -> bool {
    if *prev != Some(c) {
        *prev = Some(c);
        *run = 1;
        return true;
    }
    if c == 'ー' || (*run >= 2 && !c.is_ascii_digit()) {
        return false;
    }
    *run += 1;
    true
}

/// The code point of the 3-byte UTF-8 character at `bytes[i]` (the caller
/// has checked the lead byte and that the bytes are there).
#[inline(always)]
fn decode3(bytes: &[u8], i: usize) -> u32 {
    u32::from(bytes[i] & 0x0F) << 12
        | u32::from(bytes[i + 1] & 0x3F) << 6
        | u32::from(bytes[i + 2] & 0x3F)
}

/// A 3-byte character that folds to one plain character whatever comes
/// before it (when nothing combines with it): kana (katakana to hiragana),
/// ideographs and Hangul syllables, full-width letters and digits. What it
/// folds to and its class.
#[inline(always)]
fn plain3(code: u32) -> Option<(char, CharClass)> {
    let (folded, class) = match code {
        0x3041..=0x3096 | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7A3 => {
            (code, CharClass::Cjk)
        }
        // Katakana → hiragana, as in `push`.
        0x30A1..=0x30F6 => (code - 0x60, CharClass::Cjk),
        // Full-width letters and digits, as in `fullwidth_ascii`.
        0xFF01..=0xFF5E => {
            let folded = PLAIN_ASCII[(code - 0xFEE0) as usize];
            if folded == 0 {
                return None;
            }
            (u32::from(folded), CharClass::Word)
        }
        _ => return None,
    };
    char::from_u32(folded).map(|c| (c, class))
}

/// An ASCII byte that `push_ascii` always takes as a separator (and `~`,
/// `-` unless they may lengthen a kana).
#[inline(always)]
fn plain_separator_ascii(b: u8, after_kana: bool) -> bool {
    b < 0x80
        && PLAIN_ASCII[b as usize] == 0
        && !matches!(b, b'\'' | b'`')
        && !(after_kana && matches!(b, b'~' | b'-'))
}

/// A 3-byte character that only separates: 、。「」『』 and full-width
/// punctuation that folds to a separator.
#[inline(always)]
fn is_separator3(code: u32) -> bool {
    match code {
        0x3001 | 0x3002 | 0x300C..=0x300F => true,
        0xFF01..=0xFF5E => plain_separator_ascii((code - 0xFEE0) as u8, true),
        _ => false,
    }
}

/// At `bytes[i]`, a separator: when it starts a run of plain separators
/// followed by a character that is certainly emitted (a plain ASCII
/// character before an ASCII byte or the end, or a `plain3` character not
/// followed by a combining mark), where that character starts and its
/// class. `after_kana`: the character before the run is kana, so a
/// leading `~` or `-` would lengthen it instead.
#[inline]
fn separators_then_plain(
    bytes: &[u8],
    mut i: usize,
    after_kana: bool,
) -> Option<(usize, CharClass)> {
    let start = i;
    loop {
        let b = *bytes.get(i)?;
        if b < 0x80 {
            if PLAIN_ASCII[b as usize] != 0 {
                let emitted = i > start && !combines_at(bytes, i + 1);
                return emitted.then_some((i, CharClass::Word));
            }
            // After the first separator, `~` and `-` separate too.
            if !plain_separator_ascii(b, after_kana && i == start) {
                return None;
            }
            i += 1;
        } else if b & 0xF0 == 0xE0 && i + 2 < bytes.len() {
            let code = decode3(bytes, i);
            if is_separator3(code) {
                i += 3;
                continue;
            }
            let (_, class) = plain3(code)?;
            let emitted = i > start && !combines_at(bytes, i + 3);
            return emitted.then_some((i, class));
        } else {
            return None;
        }
    }
}

/// Full-width ASCII (`Ａ`, `１`, `！`): NFKC maps it to the ASCII character.
#[inline]
fn fullwidth_ascii(c: char) -> Option<u8> {
    matches!(c, '\u{FF01}'..='\u{FF5E}').then(|| (c as u32 - 0xFEE0) as u8)
}

/// Folds `input` into a fresh [`Normalized`] (for lexicon compilation and
/// tests; the hot path reuses one with [`normalize_into`]).
pub fn normalize(input: &str) -> Normalized {
    let mut out = Normalized::default();
    normalize_into(input, &mut out);
    out
}

/// Does `c` combine with the character before it under NFKC?
#[inline]
fn combines(c: char) -> bool {
    // No combining mark below U+0300, nor in the ranges where NFKC is the
    // identity: skip the table for Latin and most CJK text.
    if (c as u32) < 0x300 || nfkc_identity(c) || fullwidth_ascii(c).is_some() {
        return false;
    }
    // Half-width voiced sound marks are starters (ccc 0) but NFKC turns them
    // into combining marks that compose with the kana before them.
    matches!(c, '\u{FF9E}' | '\u{FF9F}') || canonical_combining_class(c) != 0
}

/// Ranges where NFKC maps a lone character to itself: most CJK text never
/// reaches the NFKC tables. None of them holds a combining mark.
#[inline]
fn nfkc_identity(c: char) -> bool {
    matches!(c,
        '\u{3001}' | '\u{3002}'  // 、。
        | '\u{300C}'..='\u{300F}' // 「」『』
        | '\u{3041}'..='\u{3096}' // hiragana
        | '\u{30A1}'..='\u{30FA}' // katakana
        | '\u{30FC}'              // ー
        | '\u{3400}'..='\u{4DBF}' // CJK extension A
        | '\u{4E00}'..='\u{9FFF}' // CJK unified ideographs
        | '\u{AC00}'..='\u{D7A3}' // Hangul syllables
    )
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{1100}'..='\u{11FF}'
        | '\u{3005}'..='\u{3007}'
        | '\u{3041}'..='\u{30FA}'
        | '\u{30FC}'..='\u{30FF}'
        | '\u{3130}'..='\u{318F}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3134F}'
    )
}

fn is_kana(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{309F}' | '\u{30FC}')
}

/// Class of a character in the folded text, `None` for separators.
pub fn class_of(c: char) -> Option<CharClass> {
    if c.is_ascii() {
        return (c.is_ascii_alphanumeric() || c == '*').then_some(CharClass::Word);
    }
    if is_cjk(c) {
        Some(CharClass::Cjk)
    } else if c.is_alphanumeric() {
        Some(CharClass::Word)
    } else {
        None
    }
}

/// Marks that lengthen a kana vowel (and separators elsewhere).
fn is_long_vowel_mark(c: char) -> bool {
    matches!(
        c,
        'ー' | '〜' | '~' | '〰' | '-' | '\u{2010}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
    )
}

fn is_latin_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Where the current token (the run since the last separator) began, and the
/// state to restore if it turns out to be a filler.
#[derive(Clone, Copy, Default)]
struct TokenMark {
    /// Length of the output before the token (and before the space, if one
    /// was emitted in front of it).
    out_len: usize,
    separators_len: usize,
    pending_separator: Option<(u32, u32)>,
    last: Option<(char, CharClass)>,
    run_char: Option<char>,
    run: u32,
    open: bool,
}

/// `MAP`: build the offset map (`Normalized::src`).
struct Folder<'a, S: FoldSink, const MAP: bool> {
    out: &'a mut Normalized,
    sink: &'a mut S,
    /// Original range of the first separator seen since the last character.
    pending_separator: Option<(u32, u32)>,
    /// Last character emitted (a space between Latin words included).
    last: Option<(char, CharClass)>,
    /// The character whose repetition is being counted; reset by a separator.
    run_char: Option<char>,
    /// How many times in a row `run_char` was seen in the input (emitted or squashed).
    run: u32,
    token: TokenMark,
}

impl<S: FoldSink, const MAP: bool> Folder<'_, S, MAP> {
    /// Emits the run of plain characters starting at `i` when a token is
    /// open and no separator is pending: ASCII letters, digits and `*`
    /// (full-width too), kana, ideographs, Hangul syllables and ー after
    /// kana, none followed by a combining mark; apostrophes (which join);
    /// and runs of plain separators (spaces, ASCII and full-width
    /// punctuation, 、。「」『』) that end right before such a character, so
    /// a word boundary does not leave the loop. Exactly what the general
    /// path (`push_ascii`, `push`, `separator`, [`Self::emit`]) would do
    /// for each, minus the checks that cannot fire. It stops, for the
    /// general path to take over, at anything else: a squashed repetition,
    /// a filler token, a character that may combine with the next.
    /// Returns where the run stopped (`i` when it is empty).
    #[inline]
    fn plain_run(&mut self, bytes: &[u8], mut i: usize) -> usize {
        if !self.token.open || self.pending_separator.is_some() {
            return i;
        }
        // The folder's state, kept in registers for the run.
        let mut prev = self.run_char;
        let mut run = self.run;
        let mut last = self.last;
        let mut sink_run = self.sink.run_begin();
        while let Some(&b) = bytes.get(i) {
            if b < 0x80 {
                let folded = PLAIN_ASCII[b as usize];
                if folded != 0 {
                    if combines_at(bytes, i + 1) || !repeat_ok(&mut prev, &mut run, folded as char)
                    {
                        break;
                    }
                    last = Some((folded as char, CharClass::Word));
                    self.out.text.push(folded as char);
                    sink_run = self
                        .sink
                        .run_appended(sink_run, self.out.text.as_bytes(), [folded]);
                    if MAP {
                        self.out.src.push((i as u32, i as u32 + 1));
                    }
                    i += 1;
                } else if matches!(b, b'\'' | b'`') {
                    if combines_at(bytes, i + 1) {
                        break;
                    }
                    i += 1; // apostrophes join: don't = dont
                } else if b == b' '
                    && matches!(last, Some((_, CharClass::Word)))
                    && bytes
                        .get(i + 1..i + 3)
                        .is_some_and(|n| PLAIN_ASCII[n[0] as usize] != 0 && n[1] < 0x80)
                    && !self.token_is_filler()
                {
                    // The commonest separator, one space between two
                    // words: what `separator_run` does for it.
                    self.open_token_after(i, last, prev, run);
                    self.out.text.push(' ');
                    if MAP {
                        self.out.src.push((i as u32, i as u32 + 1));
                    }
                    sink_run = self
                        .sink
                        .run_appended(sink_run, self.out.text.as_bytes(), [b' ']);
                    prev = None;
                    last = Some((' ', CharClass::Word));
                    i += 1;
                } else {
                    let Some((next, space)) = self.separator_run(bytes, i, last, prev, run) else {
                        break;
                    };
                    if space {
                        sink_run =
                            self.sink
                                .run_appended(sink_run, self.out.text.as_bytes(), [b' ']);
                        prev = None;
                        last = Some((' ', CharClass::Word));
                    }
                    i = next;
                }
            } else if b & 0xF0 == 0xE0 && i + 2 < bytes.len() {
                let code = decode3(bytes, i);
                let (c, class) = match plain3(code) {
                    Some(plain) => plain,
                    // ー lengthens a kana (no separator is pending).
                    None if code == 0x30FC
                        && matches!(last, Some((l, CharClass::Cjk)) if is_kana(l)) =>
                    {
                        ('ー', CharClass::Cjk)
                    }
                    None if is_separator3(code) => {
                        let Some((next, space)) = self.separator_run(bytes, i, last, prev, run)
                        else {
                            break;
                        };
                        if space {
                            sink_run =
                                self.sink
                                    .run_appended(sink_run, self.out.text.as_bytes(), [b' ']);
                            prev = None;
                            last = Some((' ', CharClass::Word));
                        }
                        i = next;
                        continue;
                    }
                    None => break,
                };
                if combines_at(bytes, i + 3) || !repeat_ok(&mut prev, &mut run, c) {
                    break;
                }
                last = Some((c, class));
                let range = (i as u32, i as u32 + 3);
                if c.is_ascii() {
                    // Full-width letters and digits: one byte.
                    self.out.text.push(c);
                    sink_run =
                        self.sink
                            .run_appended(sink_run, self.out.text.as_bytes(), [c as u8]);
                    if MAP {
                        self.out.src.push(range);
                    }
                } else {
                    // Kana, ideographs, Hangul, ー: three bytes.
                    let code = c as u32;
                    let utf8 = [
                        0xE0 | (code >> 12) as u8,
                        0x80 | ((code >> 6) & 0x3F) as u8,
                        0x80 | (code & 0x3F) as u8,
                    ];
                    self.out.text.push(c);
                    sink_run = self
                        .sink
                        .run_appended(sink_run, self.out.text.as_bytes(), utf8);
                    if MAP {
                        self.out.src.extend([range, range, range]);
                    }
                }
                i += 3;
            } else {
                break;
            }
        }
        self.sink.run_end(sink_run);
        self.run_char = prev;
        self.run = run;
        self.last = last;
        i
    }

    /// At a separator `bytes[i]` inside a plain run: when a run of plain
    /// separators follows, then a character that will be emitted, does what
    /// `separator` and `emit_general` do for them (close the token, open the
    /// next one, emit a space between two words or record a dropped
    /// separator). Returns where the character starts and whether a space
    /// was emitted (appended to the text; the caller tells the sink, within
    /// its run); `None`, having done nothing, when the general path must
    /// take the separators (the token closed is a filler, or something
    /// else follows them).
    #[inline]
    fn separator_run(
        &mut self,
        bytes: &[u8],
        i: usize,
        last: Option<(char, CharClass)>,
        run_char: Option<char>,
        run: u32,
    ) -> Option<(usize, bool)> {
        let after_kana = matches!(last, Some((l, CharClass::Cjk)) if is_kana(l));
        let (next, class) = separators_then_plain(bytes, i, after_kana)?;
        // `separator`: close the token, dropping it if it is a filler (the
        // general path does that).
        if self.token_is_filler() {
            return None;
        }
        // `emit_general` for the next character: open its token, then
        // settle the pending separator.
        let range = (i as u32, next as u32);
        self.open_token_after(i, last, run_char, run);
        self.token.pending_separator = Some(range);
        match last {
            Some((_, CharClass::Word)) if class == CharClass::Word => {
                // The caller tells the sink, within its run.
                self.out.text.push(' ');
                if MAP {
                    self.out.src.push(range);
                }
                Some((next, true))
            }
            Some(_) => {
                self.out.dropped_separators.push(self.out.text.len() as u32);
                Some((next, false))
            }
            None => Some((next, false)),
        }
    }

    /// Opens the token that follows the separator at `i` (one byte long
    /// unless the caller says otherwise), remembering the state before it.
    #[inline(always)]
    fn open_token_after(
        &mut self,
        i: usize,
        last: Option<(char, CharClass)>,
        run_char: Option<char>,
        run: u32,
    ) {
        self.token = TokenMark {
            out_len: self.out.text.len(),
            separators_len: self.out.dropped_separators.len(),
            pending_separator: Some((i as u32, i as u32 + 1)),
            last,
            run_char,
            run,
            open: true,
        };
    }

    fn push_ascii(&mut self, b: u8, start: u32, end: u32) {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'*' => self.emit(b as char, CharClass::Word, start, end),
            b'A'..=b'Z' => self.emit(b.to_ascii_lowercase() as char, CharClass::Word, start, end),
            b'\'' | b'`' => {} // apostrophes join: don't = dont
            b'~' | b'-' => self.long_vowel_or_separator(start, end),
            _ => self.separator(start, end),
        }
    }

    /// Folds one NFKC-normalised character.
    fn push(&mut self, c: char, start: u32, end: u32) {
        if c.is_ascii() {
            return self.push_ascii(c as u8, start, end);
        }
        // Fast path for the bulk of CJK text: hiragana, ideographs and Hangul
        // syllables are CJK, not combining, not marks (see `is_cjk`).
        if matches!(c,
            '\u{3041}'..='\u{3096}'
            | '\u{3400}'..='\u{4DBF}'
            | '\u{4E00}'..='\u{9FFF}'
            | '\u{AC00}'..='\u{D7A3}')
        {
            return self.emit(c, CharClass::Cjk, start, end);
        }
        // CJK punctuation that NFKC keeps and that only separates.
        if matches!(c, '\u{3001}' | '\u{3002}' | '\u{300C}'..='\u{300F}') {
            return self.separator(start, end);
        }
        if matches!(c, '\u{30A1}'..='\u{30F6}') {
            // Katakana → hiragana: the blocks are parallel, 0x60 apart.
            let folded = char::from_u32(c as u32 - 0x60).unwrap_or(c);
            return self.emit(folded, CharClass::Cjk, start, end);
        }
        if is_long_vowel_mark(c) {
            return self.long_vowel_or_separator(start, end);
        }
        if matches!(c, '\u{2019}' | '\u{2018}' | '\u{02BC}') {
            return; // typographic apostrophes join like '
        }
        if canonical_combining_class(c) != 0
            || matches!(
                c,
                '\u{200B}'..='\u{200D}' | '\u{FEFF}' | '\u{3099}' | '\u{309A}'
            )
        {
            return; // stray combining marks and zero-width characters
        }
        if is_cjk(c) {
            return self.emit(c, CharClass::Cjk, start, end);
        }
        if !c.is_alphanumeric() {
            return self.separator(start, end);
        }
        for lower in c.to_lowercase() {
            if canonical_combining_class(lower) != 0 {
                continue; // İ lower-cases to i + combining dot
            }
            let base = if matches!(lower, '\u{00C0}'..='\u{024F}') {
                strip_diacritic(lower)
            } else {
                lower
            };
            self.emit(base, CharClass::Word, start, end);
        }
    }

    fn long_vowel_or_separator(&mut self, start: u32, end: u32) {
        match self.last {
            Some((c, CharClass::Cjk)) if is_kana(c) && self.pending_separator.is_none() => {
                self.emit('ー', CharClass::Cjk, start, end)
            }
            _ => self.separator(start, end),
        }
    }

    fn separator(&mut self, start: u32, end: u32) {
        self.close_token();
        if self.pending_separator.is_none() {
            self.pending_separator = Some((start, end));
        } else if let Some((s, _)) = self.pending_separator {
            self.pending_separator = Some((s, end));
        }
    }

    #[inline]
    fn emit(&mut self, c: char, class: CharClass, start: u32, end: u32) {
        // Common case: inside a token, no separator pending, no repetition.
        if self.token.open && self.pending_separator.is_none() && self.run_char != Some(c) {
            self.run_char = Some(c);
            self.run = 1;
            self.last = Some((c, class));
            self.push_out(c, start, end);
            return;
        }
        self.emit_general(c, class, start, end);
    }

    fn emit_general(&mut self, c: char, class: CharClass, start: u32, end: u32) {
        if !self.token.open {
            self.token = TokenMark {
                out_len: self.out.text.len(),
                separators_len: self.out.dropped_separators.len(),
                pending_separator: self.pending_separator,
                last: self.last,
                run_char: self.run_char,
                run: self.run,
                open: true,
            };
        }
        if let Some((sep_start, sep_end)) = self.pending_separator.take() {
            match self.last {
                Some((_, CharClass::Word)) if class == CharClass::Word => {
                    self.push_out(' ', sep_start, sep_end);
                    self.last = Some((' ', CharClass::Word));
                    self.run_char = None;
                }
                // A dropped separator leaves no trace in the text, so it must
                // not break a run either (or folding twice would differ).
                Some(_) => self.out.dropped_separators.push(self.out.text.len() as u32),
                None => {}
            }
        }
        if self.run_char == Some(c) {
            self.run += 1;
            // ー once; a Latin vowel three times or more once (stuuupid);
            // anything else three times or more twice (バカバカ stays, ああああ → ああ).
            // Digits are never squashed: amounts and counts must survive.
            let squash = if c == 'ー' {
                self.run >= 2
            } else if c.is_ascii_digit() {
                false
            } else {
                if self.run == 3 && is_latin_vowel(c) {
                    self.pop_last();
                }
                self.run >= 3
            };
            if squash {
                self.extend_last(end);
                return;
            }
        } else {
            self.run_char = Some(c);
            self.run = 1;
        }
        self.last = Some((c, class));
        self.push_out(c, start, end);
    }

    fn push_out(&mut self, c: char, start: u32, end: u32) {
        let from = self.out.text.len();
        self.out.text.push(c);
        self.sink.appended(self.out.text.as_bytes(), from);
        if MAP {
            for _ in 0..c.len_utf8() {
                self.out.src.push((start, end));
            }
        }
    }

    /// Removes the last emitted character (a squashed vowel), keeping its
    /// original range on the character before it.
    fn pop_last(&mut self) {
        if let Some(c) = self.out.text.pop() {
            self.sink.truncated(self.out.text.as_bytes());
            if !MAP {
                return;
            }
            let n = self.out.src.len() - c.len_utf8();
            let end = self.out.src[n].1;
            self.out.src.truncate(n);
            self.extend_last(end);
        }
    }

    /// Extends the original range of the last emitted character to `end`, so
    /// evidence covers the squashed repetitions too.
    fn extend_last(&mut self, end: u32) {
        if !MAP {
            return;
        }
        // The last character's first byte: skip UTF-8 continuation bytes.
        let text = self.out.text.as_bytes();
        let Some(mut first) = text.len().checked_sub(1) else {
            return;
        };
        while first > 0 && text[first] & 0xC0 == 0x80 {
            first -= 1;
        }
        for e in &mut self.out.src[first..] {
            e.1 = end;
        }
    }

    /// Ends the current token and drops it if it is a filler.
    #[inline]
    fn close_token(&mut self) {
        if self.token.open {
            self.token.open = false;
            if self.token_is_filler() {
                self.drop_filler_token();
            }
        }
    }

    /// Is the current token (after the space in front of it, if any) one
    /// of [`FILLERS`]? Free for a token longer than any filler.
    #[inline(always)]
    fn token_is_filler(&self) -> bool {
        let token = &self.out.text.as_bytes()[self.token.out_len..];
        let space = usize::from(token.first() == Some(&b' '));
        is_filler(&token[space..])
    }

    /// Drops the token just closed, a filler: back to the state before it.
    #[cold]
    fn drop_filler_token(&mut self) {
        let mark = self.token;
        self.out.text.truncate(mark.out_len);
        self.sink.truncated(self.out.text.as_bytes());
        if MAP {
            self.out.src.truncate(mark.out_len);
        }
        self.out.dropped_separators.truncate(mark.separators_len);
        self.pending_separator = mark.pending_separator;
        self.last = mark.last;
        self.run_char = mark.run_char;
        self.run = mark.run;
    }

    fn finish(&mut self) {
        self.close_token();
    }
}

/// `é` → `e`: the first char of the canonical decomposition.
fn strip_diacritic(c: char) -> char {
    let mut base = c;
    unicode_normalization::char::decompose_canonical(c, |d| {
        if base == c {
            base = d;
        }
    });
    base
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fold(s: &str) -> String {
        normalize(s).as_str().to_owned()
    }

    #[test]
    fn folding_rules() {
        let cases: &[(&str, &str, &str)] = &[
            ("nfkc_halfwidth_kana", "ｺﾛｽｿﾞ", "ころすぞ"),
            ("nfkc_halfwidth_dakuten", "ﾌﾞｯｺﾛｽ", "ぶっころす"),
            ("nfkc_fullwidth_latin", "ＳＮＳ１２３", "sns123"),
            ("katakana_to_hiragana", "コロス", "ころす"),
            ("lowercase", "I WILL Kill You", "i will kill you"),
            ("apostrophe_joins", "I'll don’t", "ill dont"),
            ("latin_diacritics", "Estúpido AÑO", "estupido ano"),
            ("long_vowel_run", "ふざけんなよーーー", "ふざけんなよー"),
            ("wave_dash_after_kana", "しね〜〜", "しねー"),
            ("fullwidth_tilde_after_kana", "ばか～", "ばかー"),
            ("vowel_elongation", "nooooo stuuupid", "no stupid"),
            ("consonant_elongation", "killllll asssss", "kill ass"),
            ("double_letters_kept", "kill all", "kill all"),
            ("digits_never_squashed", "1000000円", "1000000円"),
            ("kana_run", "ああああ", "ああ"),
            ("cjk_spaces_dropped", "殺 す ぞ", "殺すぞ"),
            ("cjk_punct_dropped", "ふざけ、んな！", "ふざけんな"),
            (
                "latin_punct_single_space",
                "shut   up!!  now",
                "shut up now",
            ),
            ("latin_cjk_no_space", "SNS に 書くぞ", "snsに書くぞ"),
            ("filler_between_pauses", "ふざけ、えー、んな", "ふざけんな"),
            ("filler_elongated", "ふざけ、えーーー、んな", "ふざけんな"),
            ("filler_amivoice", "%えーと%ころすぞ", "ころすぞ"),
            ("filler_english", "I will, um, kill you", "i will kill you"),
            ("filler_inside_word_kept", "あのね", "あのね"),
            ("masked_profanity", "f***ing f****** ***", "f**ing f** **"),
            ("spacing_dakuten_dropped", "か゛", "か"),
            ("zero_width_dropped", "ば\u{200B}か", "ばか"),
            ("empty", "", ""),
            ("only_punct", "、。!?", ""),
        ];
        for (name, input, want) in cases {
            assert_eq!(fold(input), *want, "case {name}: {input:?}");
        }
    }

    #[test]
    fn offsets_point_to_original_words() {
        let input = "お前、ｺﾛｽｿﾞ！";
        let n = normalize(input);
        assert_eq!(n.as_str(), "お前ころすぞ");
        let start = n.as_str().find("ころすぞ").unwrap();
        let range = n.original_range(start, start + "ころすぞ".len());
        assert_eq!(&input[range], "ｺﾛｽｿﾞ");
    }

    #[test]
    fn squashed_runs_stay_in_evidence() {
        let input = "you are stuuuupid";
        let n = normalize(input);
        let start = n.as_str().find("stupid").unwrap();
        let range = n.original_range(start, start + 6);
        assert_eq!(&input[range], "stuuuupid");
    }

    #[test]
    fn dropped_separators_are_recorded() {
        let n = normalize("お前、かす");
        assert_eq!(n.as_str(), "お前かす");
        assert!(n.separator_before("お前".len()));
        assert!(!n.separator_before(3));
    }

    #[test]
    fn filler_prefilter_admits_every_filler() {
        for filler in FILLERS {
            assert!(is_filler(filler.as_bytes()), "{filler:?}");
        }
        assert!(!is_filler(b"the") && !is_filler("えーとですね".as_bytes()));
    }

    proptest! {
        #[test]
        fn idempotent(s in "\\PC{0,40}") {
            let once = fold(&s);
            prop_assert_eq!(fold(&once), once);
        }

        #[test]
        fn tight_loop_agrees_with_general_path(s in "[a-zA-Zａ-ｚアイウカキクコロスｶﾞﾞーｰ〜~ 、。!?*'`0-9ばかしね殺えあのーうんmuhé\u{301}]{0,60}") {
            prop_assert_eq!(normalize(&s), normalize_general(&s));
        }

        #[test]
        fn tight_loop_agrees_with_general_path_on_any_text(s in "\\PC{0,60}") {
            prop_assert_eq!(normalize(&s), normalize_general(&s));
        }

        #[test]
        fn idempotent_on_mixed_scripts(s in "[a-zA-Zａ-ｚアイウカキクコロスｶﾞﾞーｰ〜~ 、。!*'0-9ばかしね殺]{0,40}") {
            let once = fold(&s);
            prop_assert_eq!(fold(&once), once);
        }

        #[test]
        fn offsets_valid(s in "\\PC{0,40}") {
            let n = normalize(&s);
            let text = n.as_str();
            for (i, c) in text.char_indices() {
                let r = n.original_range(i, i + c.len_utf8());
                prop_assert!(r.start < r.end && r.end <= s.len());
                prop_assert!(s.is_char_boundary(r.start) && s.is_char_boundary(r.end));
            }
        }
    }
}
