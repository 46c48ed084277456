//! The language automata's table: a dense Aho-Corasick DFA (standard,
//! overlapping semantics) built directly from a trie, one row of next states
//! per state.
//!
//! Why not `aho_corasick::dfa::DFA`, which this replaces: its builder fills
//! every (state, symbol) cell that has no trie edge by following failure
//! links through the sparse NFA, and with our 256-symbol alphabet
//! ([`super::Alphabet`]) that walk was nearly all of a command's start-up
//! (the English automaton ~0.2 s, the all-languages one ~0.8 s; BENCHMARKS.md,
//! "Start-up"). Here a state's row is a copy of its failure state's row
//! (built before it, in breadth-first order) with the state's own edges
//! written over it: one `memcpy` per state. The result is the same
//! automaton — the same transitions up to state numbering, the same match
//! lists in the same order — which `tests::dense_equals_aho_corasick` checks
//! state by state against aho-corasick's DFA for every shipped language.
//!
//! The methods used by the scan have the names and signatures of
//! `aho_corasick::automaton::Automaton`'s (that trait is `unsafe` to
//! implement, and the crate forbids `unsafe`), so the stepping code reads
//! the same as before. State ids are premultiplied by the row width and
//! match states come first, so `is_special` is one comparison, as in
//! aho-corasick's DFA.

use aho_corasick::automaton::StateID;
use aho_corasick::{Anchored, MatchError, PatternID};

/// Byte values.
const BYTES: usize = 256;

/// A dense Aho-Corasick DFA over byte strings, unanchored, reporting every
/// pattern that ends at each position (overlapping matches).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dfa {
    /// `trans[state + class]`: the next state, premultiplied by the row
    /// width (`1 << stride2`).
    trans: Vec<u32>,
    /// Byte → column. Bytes in no pattern share column 0 (from any state
    /// they lead back to the start); every other byte has its own. A
    /// language using few symbols (English: its alphabet's single codes)
    /// gets narrow rows, as aho-corasick's byte classes gave it: a quarter
    /// of the memory to fault in and copy.
    classes: [u8; BYTES],
    stride2: u32,
    /// States below this (premultiplied) id are match states.
    match_end: u32,
    /// Per match state (by `id >> stride2`): its range in `match_ids`.
    match_ranges: Vec<(u32, u32)>,
    /// Pattern ids of every match state's list: the state's own patterns in
    /// insertion order, then its failure state's list (aho-corasick's order).
    match_ids: Vec<u32>,
    start: u32,
}

/// An automaton before its table is filled: the match lists, the byte
/// classes and, per state, its failure state and its own edges. A few MB
/// where the table is tens (English 37 MB): what the engine cache keeps
/// on disk ([`super::cache`]), rebuilding the table by [`Plan::fill`]'s
/// row copy, a fraction of a full build.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) classes: [u8; BYTES],
    pub(super) stride2: u32,
    pub(super) match_end: u32,
    pub(super) match_ranges: Vec<(u32, u32)>,
    pub(super) match_ids: Vec<u32>,
    pub(super) start: u32,
    /// Every state's (premultiplied) id, in breadth-first order: a
    /// state's failure state comes before it.
    pub(super) rows: Vec<u32>,
    /// The id of each state's failure state (the start's own for the start).
    pub(super) fails: Vec<u32>,
    /// State `k`'s edges: `edge_class[edge_from[k]..edge_from[k + 1]]`
    /// and the same range of `edge_to`.
    pub(super) edge_from: Vec<u32>,
    pub(super) edge_class: Vec<u8>,
    pub(super) edge_to: Vec<u32>,
}

/// Why a set of patterns gives no automaton.
#[derive(Debug, thiserror::Error)]
pub(super) enum DfaError {
    #[error("pattern {0} is empty")]
    EmptyPattern(usize),
    #[error("{0} automaton states, more than the 32-bit table can address")]
    TooManyStates(usize),
}

/// No node: the end of a sibling list, a missing edge.
const NONE: u32 = u32::MAX;

/// The trie while building, in flat arrays: no allocation per node
/// (building the English trie node by node was most of its start-up, in
/// cache misses and malloc). A node's children are a list through
/// `next_sibling` from `first_child`, in the order they were added (so
/// states are numbered as they were with a `Vec` of children per node,
/// and the table is the same); the root's, looked up most often, are
/// also a dense row.
struct Trie {
    first_child: Vec<u32>,
    last_child: Vec<u32>,
    next_sibling: Vec<u32>,
    /// The byte on the edge into each node.
    label: Vec<u8>,
    root_edges: [u32; BYTES],
}

impl Trie {
    const ROOT: u32 = 0;

    /// The child of `at` on `b`, or `NONE`.
    fn child(&self, at: u32, b: u8) -> u32 {
        if at == Self::ROOT {
            return self.root_edges[usize::from(b)];
        }
        let mut c = self.first_child[at as usize];
        while c != NONE && self.label[c as usize] != b {
            c = self.next_sibling[c as usize];
        }
        c
    }

    /// A new child of `at` on `b`, after its others.
    fn add(&mut self, at: u32, b: u8) -> u32 {
        let fresh = self.first_child.len() as u32;
        self.first_child.push(NONE);
        self.last_child.push(NONE);
        self.label.push(b);
        self.next_sibling.push(NONE);
        match self.last_child[at as usize] {
            NONE => self.first_child[at as usize] = fresh,
            last => self.next_sibling[last as usize] = fresh,
        }
        self.last_child[at as usize] = fresh;
        if at == Self::ROOT {
            self.root_edges[usize::from(b)] = fresh;
        }
        fresh
    }

    /// The children of `at`.
    fn children(&self, at: u32) -> impl Iterator<Item = u32> + '_ {
        let real = |c: u32| (c != NONE).then_some(c);
        std::iter::successors(real(self.first_child[at as usize]), move |&c| {
            real(self.next_sibling[c as usize])
        })
    }
}

impl Dfa {
    /// Builds the automaton of `patterns`; pattern `i` is reported as
    /// `PatternID` `i`. (The engine builds a [`Plan`] and fills it, so the
    /// cache can keep the plan.)
    #[cfg(test)]
    pub(super) fn new<I, P>(patterns: I) -> Result<Dfa, DfaError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Ok(Plan::new(patterns)?.fill())
    }
}

impl Plan {
    /// Steps 1–3 of the build: everything but the table.
    pub(super) fn new<I, P>(patterns: I) -> Result<Plan, DfaError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        // 1. The trie.
        const ROOT: u32 = Trie::ROOT;
        let mut trie = Trie {
            first_child: vec![NONE],
            last_child: vec![NONE],
            next_sibling: vec![NONE],
            label: vec![0],
            root_edges: [NONE; BYTES],
        };
        let mut used = [false; BYTES];
        // The node each pattern ends at, by pattern id.
        let mut ends: Vec<u32> = Vec::new();
        for (id, pattern) in patterns.into_iter().enumerate() {
            let pattern = pattern.as_ref();
            if pattern.is_empty() {
                return Err(DfaError::EmptyPattern(id));
            }
            let mut at = ROOT;
            for &b in pattern {
                used[usize::from(b)] = true;
                at = match trie.child(at, b) {
                    NONE => trie.add(at, b),
                    next => next,
                };
            }
            ends.push(at);
        }
        let states = trie.label.len();
        // Each node's own patterns, in id order: `own[own_from[n]..own_from[n + 1]]`.
        let mut own_from = vec![0u32; states + 1];
        for &node in &ends {
            own_from[node as usize + 1] += 1;
        }
        for n in 0..states {
            own_from[n + 1] += own_from[n];
        }
        let mut own = vec![0u32; ends.len()];
        let mut filled = own_from.clone();
        for (id, &node) in ends.iter().enumerate() {
            own[filled[node as usize] as usize] = id as u32;
            filled[node as usize] += 1;
        }
        drop((ends, filled));
        let mut classes = [0u8; BYTES];
        let mut columns = 1usize; // column 0: bytes in no pattern
        for (b, _) in used.iter().enumerate().filter(|(_, &u)| u) {
            // Past 255 columns every byte is used: see below.
            classes[b] = u8::try_from(columns).unwrap_or(u8::MAX);
            columns += 1;
        }
        if columns > BYTES {
            // Every byte is used: no shared column needed.
            for (b, class) in classes.iter_mut().enumerate() {
                *class = b as u8;
            }
            columns = BYTES;
        }
        let stride2 = columns.next_power_of_two().trailing_zeros();
        let stride = 1usize << stride2;
        if states
            .checked_mul(stride)
            .is_none_or(|n| n > u32::MAX as usize)
        {
            return Err(DfaError::TooManyStates(states));
        }

        // 2. Breadth-first order, failure links and match lists (trie ids).
        let mut order: Vec<u32> = Vec::with_capacity(states);
        let mut fail = vec![ROOT; states];
        // Each node's full match list, own then its failure node's:
        // `lists[list_of[n].0..][..list_of[n].1]`.
        let mut lists: Vec<u32> = Vec::new();
        let mut list_of = vec![(0u32, 0u32); states];
        order.push(ROOT);
        let mut next_in_order = 0;
        while let Some(&at) = order.get(next_in_order) {
            next_in_order += 1;
            for next in trie.children(at) {
                let b = trie.label[next as usize];
                let f = if at == ROOT {
                    ROOT
                } else {
                    let mut f = fail[at as usize];
                    loop {
                        let n = trie.child(f, b);
                        if n != NONE {
                            break n;
                        }
                        if f == ROOT {
                            break ROOT;
                        }
                        f = fail[f as usize];
                    }
                };
                fail[next as usize] = f;
                // `f` is shallower than `next`: its list is complete.
                let own =
                    &own[own_from[next as usize] as usize..own_from[next as usize + 1] as usize];
                let (from, len) = list_of[f as usize];
                if !own.is_empty() || len > 0 {
                    let start = lists.len() as u32;
                    lists.extend_from_slice(own);
                    lists.extend_from_within(from as usize..(from + len) as usize);
                    list_of[next as usize] = (start, lists.len() as u32 - start);
                }
                order.push(next);
            }
        }

        // 3. Numbering: match states first, so that `is_match` is `id <
        // match_end`; then the rest, both in breadth-first order.
        let mut new_id = vec![0u32; states];
        let mut match_ranges = Vec::new();
        let mut match_ids = Vec::new();
        let mut next_id = 0u32;
        for &at in &order {
            let (from, len) = list_of[at as usize];
            if len > 0 {
                new_id[at as usize] = next_id << stride2;
                next_id += 1;
                match_ranges.push((match_ids.len() as u32, len));
                match_ids.extend_from_slice(&lists[from as usize..(from + len) as usize]);
            }
        }
        let match_end = next_id << stride2;
        for &at in &order {
            if list_of[at as usize].1 == 0 {
                new_id[at as usize] = next_id << stride2;
                next_id += 1;
            }
        }
        drop((lists, list_of));

        // The rows' recipe, in breadth-first order: each state's id, its
        // failure state's id and its own edges.
        let mut rows = Vec::with_capacity(states);
        let mut fails = Vec::with_capacity(states);
        let mut edge_from = Vec::with_capacity(states + 1);
        let mut edge_class = Vec::with_capacity(states);
        let mut edge_to = Vec::with_capacity(states);
        for &at in &order {
            rows.push(new_id[at as usize]);
            fails.push(new_id[fail[at as usize] as usize]);
            edge_from.push(edge_class.len() as u32);
            for next in trie.children(at) {
                edge_class.push(classes[usize::from(trie.label[next as usize])]);
                edge_to.push(new_id[next as usize]);
            }
        }
        edge_from.push(edge_class.len() as u32);
        Ok(Plan {
            classes,
            stride2,
            match_end,
            match_ranges,
            match_ids,
            start: new_id[ROOT as usize],
            rows,
            fails,
            edge_from,
            edge_class,
            edge_to,
        })
    }

    /// Whether a plan read from disk can be filled and scanned with every
    /// index in bounds: ids on row boundaries inside the table, edges
    /// within their rows, match lists inside `match_ids`, pattern ids
    /// below `patterns`. The file's checksum catches a damaged file; this
    /// catches one that is whole but not a plan of ours, so that a cache
    /// can never make a scan panic.
    pub(super) fn check(&self, patterns: usize) -> bool {
        if self.stride2 > 8 {
            return false;
        }
        let stride = 1usize << self.stride2;
        let states = self.rows.len();
        let Some(len) = states
            .checked_mul(stride)
            .filter(|&n| n <= u32::MAX as usize)
        else {
            return false;
        };
        let id_ok = |id: &u32| (*id as usize) < len && *id as usize % stride == 0;
        let in_row = |class: &u8| usize::from(*class) < stride;
        states > 0
            && self.fails.len() == states
            && self.edge_from.len() == states + 1
            && self.edge_from[0] == 0
            && self.edge_from.windows(2).all(|w| w[0] <= w[1])
            && self.edge_from[states] as usize == self.edge_class.len()
            && self.edge_to.len() == self.edge_class.len()
            && self
                .rows
                .iter()
                .chain(&self.fails)
                .chain(&self.edge_to)
                .all(id_ok)
            && id_ok(&self.start)
            && self.edge_class.iter().all(in_row)
            && self.classes.iter().all(in_row)
            && self.match_end as usize % stride == 0
            && self.match_end as usize >> self.stride2 == self.match_ranges.len()
            && self.match_end as usize <= len
            && self.match_ranges.iter().all(|&(from, n)| {
                (from as usize)
                    .checked_add(n as usize)
                    .is_some_and(|end| end <= self.match_ids.len())
            })
            && self.match_ids.iter().all(|&p| (p as usize) < patterns)
    }

    /// Step 4, the rows: a state's row is its failure state's row (built
    /// earlier: it is shallower) with its own edges written over it. A
    /// plan read from the cache was checked by [`Plan::check`] first, so
    /// every index here is in bounds.
    pub(super) fn fill(&self) -> Dfa {
        let stride = 1usize << self.stride2;
        let mut trans = vec![0u32; self.rows.len() * stride];
        for (k, &row) in self.rows.iter().enumerate() {
            let row = row as usize;
            if k == 0 {
                trans[row..row + stride].fill(self.start);
            } else {
                let from = self.fails[k] as usize;
                trans.copy_within(from..from + stride, row);
            }
            let edges = self.edge_from[k] as usize..self.edge_from[k + 1] as usize;
            for (&class, &to) in self.edge_class[edges.clone()]
                .iter()
                .zip(&self.edge_to[edges])
            {
                trans[row + usize::from(class)] = to;
            }
        }
        Dfa {
            trans,
            classes: self.classes,
            stride2: self.stride2,
            match_end: self.match_end,
            match_ranges: self.match_ranges.clone(),
            match_ids: self.match_ids.clone(),
            start: self.start,
        }
    }
}

impl Dfa {
    /// The start state; only unanchored searches are supported.
    pub(super) fn start_state(&self, anchored: Anchored) -> Result<StateID, MatchError> {
        match anchored {
            Anchored::No => Ok(StateID::from_u32_unchecked(self.start)),
            _ => Err(MatchError::invalid_input_anchored()),
        }
    }

    #[inline(always)]
    pub(super) fn next_state(&self, _anchored: Anchored, state: StateID, byte: u8) -> StateID {
        let class = self.classes[usize::from(byte)];
        StateID::from_u32_unchecked(self.trans[state.as_usize() + usize::from(class)])
    }

    /// A state the scan must look at: a match state (there is no dead
    /// state in an unanchored standard automaton).
    #[inline(always)]
    pub(super) fn is_special(&self, state: StateID) -> bool {
        state.as_u32() < self.match_end
    }

    #[inline(always)]
    pub(super) fn is_match(&self, state: StateID) -> bool {
        state.as_u32() < self.match_end
    }

    pub(super) fn match_len(&self, state: StateID) -> usize {
        self.match_ranges[state.as_usize() >> self.stride2].1 as usize
    }

    pub(super) fn match_pattern(&self, state: StateID, index: usize) -> PatternID {
        let (from, _) = self.match_ranges[state.as_usize() >> self.stride2];
        PatternID::new_unchecked(self.match_ids[from as usize + index] as usize)
    }
}

#[cfg(test)]
mod tests {
    use aho_corasick::automaton::Automaton;
    use aho_corasick::MatchKind;

    use super::*;
    use crate::engine::Engine;
    use crate::lexicon::Lexicon;

    /// Walks both automata together from their start states over every
    /// symbol and asserts they are the same machine: the state pairs form
    /// a bijection, and paired states report the same patterns in the same
    /// order. Returns the number of states.
    fn assert_same_as_aho_corasick(patterns: &[Vec<u8>]) -> usize {
        let theirs = aho_corasick::dfa::DFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(patterns)
            .expect("aho-corasick builds");
        let ours = Dfa::new(patterns).expect("dense builds");
        let states = ours.trans.len() >> ours.stride2;
        // ours (by row) -> theirs, and the reverse for injectivity.
        let mut paired: Vec<Option<StateID>> = vec![None; states];
        let mut reverse = std::collections::HashMap::new();
        let start = (
            ours.start_state(Anchored::No).unwrap(),
            theirs.start_state(Anchored::No).unwrap(),
        );
        paired[start.0.as_usize() >> ours.stride2] = Some(start.1);
        reverse.insert(start.1, start.0);
        let mut queue = vec![start];
        while let Some((o, t)) = queue.pop() {
            assert_eq!(ours.is_match(o), theirs.is_match(t), "match state");
            if ours.is_match(o) {
                let mine: Vec<PatternID> = (0..ours.match_len(o))
                    .map(|k| ours.match_pattern(o, k))
                    .collect();
                let other: Vec<PatternID> = (0..theirs.match_len(t))
                    .map(|k| theirs.match_pattern(t, k))
                    .collect();
                assert_eq!(mine, other, "match list");
            }
            for b in 0..=255u8 {
                let (o2, t2) = (
                    ours.next_state(Anchored::No, o, b),
                    theirs.next_state(Anchored::No, t, b),
                );
                match paired[o2.as_usize() >> ours.stride2] {
                    Some(seen) => assert_eq!(seen, t2, "transition on {b}"),
                    None => {
                        assert!(reverse.insert(t2, o2).is_none(), "two states pair with one");
                        paired[o2.as_usize() >> ours.stride2] = Some(t2);
                        queue.push((o2, t2));
                    }
                }
            }
        }
        assert!(paired.iter().all(Option::is_some), "unreachable states");
        states
    }

    #[test]
    fn small_cases_equal_aho_corasick() {
        let cases: &[(&str, &[&str])] = &[
            ("classic", &["he", "she", "his", "hers"]),
            ("nested", &["a", "aa", "aaa", "aaaa"]),
            ("duplicates", &["ab", "ab", "b", "ab"]),
            ("suffix chains", &["abcd", "bcd", "cd", "d", "bc"]),
            ("one", &["x"]),
            ("high bytes", &["\u{ff}\u{fe}", "\u{fe}", "\u{0}\u{ff}"]),
        ];
        // 255 bytes used (one column shared by the last), then all 256
        // (no shared column).
        for used in [255u32, 256] {
            let mut bytes: Vec<Vec<u8>> = (0..used).map(|b| vec![b as u8]).collect();
            bytes.push(vec![7, 8, 9]);
            bytes.push(vec![8, 9]);
            assert_same_as_aho_corasick(&bytes);
        }
        for (name, patterns) in cases {
            let bytes: Vec<Vec<u8>> = patterns
                .iter()
                .map(|p| p.chars().map(|c| c as u32 as u8).collect())
                .collect();
            let states = assert_same_as_aho_corasick(&bytes);
            assert!(states > 1, "{name}");
        }
    }

    #[test]
    fn empty_pattern_is_refused() {
        assert!(matches!(
            Dfa::new([&b"ab"[..], b""]),
            Err(DfaError::EmptyPattern(1))
        ));
    }

    /// Every shipped language's automaton (its terms, frames and the `any`
    /// folder's, coded in its alphabet) is the one aho-corasick builds.
    #[test]
    fn shipped_languages_equal_aho_corasick() {
        let engine = Engine::build_lazy(Lexicon::embedded().expect("shipped lexicons load"))
            .expect("engine");
        let mut slots: Vec<u32> = engine.by_language.values().copied().collect();
        slots.push(engine.any_only);
        for index in slots {
            let slot = &engine.automata[index as usize];
            let texts = slot.ids.iter().map(|&i| engine.texts[i as usize].as_str());
            let alphabet = super::super::Alphabet::for_patterns(texts.clone()).expect("alphabet");
            let coded: Vec<Vec<u8>> = texts.map(|t| alphabet.encode(t)).collect();
            if coded.is_empty() {
                continue; // no `any` folder: aho-corasick needs a pattern
            }
            assert_same_as_aho_corasick(&coded);
        }
    }
}
