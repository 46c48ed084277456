//! Per-speaker carry-over between consecutive fragments.
//!
//! ASR engines cut utterances where they like (「ぶっ殺」|「すぞ」, "I will
//! kill" | "you"). Rather than rescanning the end of the previous fragment,
//! the engine keeps the automaton *state* reached at its end and goes on from
//! there with the next fragment: a phrase split across the seam completes in
//! the new fragment and is reported there, exactly once, and no byte is
//! scanned twice. What the state cannot tell — the character before a match
//! that began earlier (for word boundaries) and recent frames (a negation
//! said just before the seam) — is kept in a small fixed-size tail, so a
//! carry never allocates, but for the one small list of states a fragment
//! with no language leaves (one per language's automaton).

use aho_corasick::automaton::StateID;

use crate::lexicon::MAX_PATTERN_BYTES;

/// Bytes of normalised text kept: enough to see the character before any
/// pattern that ends in the next fragment.
pub(super) const TAIL_BYTES: usize = MAX_PATTERN_BYTES + 8;
/// Frames remembered across the seam.
pub(super) const MAX_MARKS: usize = 4;
/// Parts of unfinished proximity terms remembered across the seam.
pub(super) const MAX_SEAM_PARTS: usize = 4;

/// A frame seen near the end of the previous fragment.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Mark {
    pub frame: u32,
    /// End of the frame, in bytes relative to the end of the previous
    /// fragment's normalised text (≤ 0).
    pub end: i32,
}

/// A part of a one-utterance proximity term seen near the end of the
/// previous fragment, its term not complete there: ASR cuts one sentence
/// into two finals where it likes (「エックスに」|「のせときますんで」), and
/// the rest of the term may come in the next one.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SeamPart {
    pub term: u32,
    pub part: u8,
    /// Start and end, in bytes relative to the end of the previous
    /// fragment's normalised text (≤ 0).
    pub start: i32,
    pub end: i32,
}

/// What one speaker's stream carries from one final fragment to the next.
/// Interim fragments are scanned from the carry of the last final one and
/// do not advance it.
#[derive(Clone, Debug)]
pub struct Carry {
    pub(super) generation: u64,
    pub(super) automaton: u32,
    pub(super) state: StateID,
    /// After a fragment with no language: the state of each automaton it
    /// was scanned by (`Engine::union`, in order); `state` is unused then.
    pub(super) union: Option<Box<[StateID]>>,
    pub(super) tail: [u8; TAIL_BYTES],
    pub(super) tail_len: u16,
    pub(super) marks: [Mark; MAX_MARKS],
    pub(super) marks_len: u8,
    pub(super) seam_parts: [SeamPart; MAX_SEAM_PARTS],
    pub(super) seam_parts_len: u8,
    /// Did the previous fragment end in a Latin word character? Then a
    /// separator is fed before the next one, so `kill` | `you` reads as
    /// `kill you` while `ころ` | `すぞ` reads as `ころすぞ`.
    pub(super) ends_with_word: bool,
    /// The speaker is reading out someone else's words: turns of theirs the
    /// reading still lasts, this one included (0: not reading).
    pub(super) reading_out: u8,
    /// The fragment ended inside a sentence of reported words (a
    /// `to_sentence_end` cue and no sentence end after it, in punctuated
    /// text): the next fragment's words up to its first sentence end are
    /// still someone else's ("He sends me texts like, I know where you
    /// live, | and you can't hide from me, I'll find you.").
    pub(super) reported_sentence: bool,
}

impl Carry {
    pub(super) fn tail(&self) -> &[u8] {
        &self.tail[..self.tail_len as usize]
    }

    pub(super) fn marks(&self) -> &[Mark] {
        &self.marks[..self.marks_len as usize]
    }

    pub(super) fn seam_parts(&self) -> &[SeamPart] {
        &self.seam_parts[..self.seam_parts_len as usize]
    }

    /// The other speaker has spoken: this speaker's turn is over, and with
    /// it a reading out that lasted one turn and the reach of the frames
    /// said last ("I'm not saying it'd be me" does not deny what comes
    /// after the agent's answer), and the parts of a sentence ASR cut in two.
    pub fn end_turn(&mut self) {
        self.reading_out = self.reading_out.saturating_sub(1);
        self.marks_len = 0;
        self.seam_parts_len = 0;
        self.reported_sentence = false;
    }

    /// The other speaker asked for someone else's words: this speaker's
    /// next turn reads them out.
    pub fn hear_reading(&mut self) {
        self.reading_out = self.reading_out.max(1);
    }

    /// Is the speaker reading out someone else's words at the end of the
    /// fragment this carry follows?
    pub fn reading_out(&self) -> bool {
        self.reading_out > 0
    }
}
