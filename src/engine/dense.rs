//! The language automata: an Aho-Corasick DFA (standard, overlapping
//! semantics) built directly from a trie, dense for the shallow states and
//! sparse below them.
//!
//! Why not `aho_corasick::dfa::DFA`, which this replaces: its builder fills
//! every (state, symbol) cell that has no trie edge by following failure
//! links through the sparse NFA, and with our 256-symbol alphabet
//! ([`super::Alphabet`]) that walk was nearly all of a command's start-up
//! (BENCHMARKS.md, "Start-up"). Here a dense state's row is a copy of its
//! failure state's row (built before it, in breadth-first order) with the
//! state's own edges written over it: one `memcpy` per state.
//!
//! Why not dense everywhere: a full table is states × columns (Japanese
//! 71,841 × 256, English 265,183 × 64: ~70 MB each), and faulting in that
//! much fresh memory was most of a start from the engine cache (~1.1 ms per
//! MB on the 2-core VM). Most of a row is its failure state's row, and a
//! scan spends most steps in the few shallow states. So only the first
//! [`DENSE_BYTES`] of states in breadth-first order get rows; every deeper
//! state is a *sparse node*: the row of its nearest dense failure ancestor
//! (its *base*) and the edges where its row differs from that one (its own
//! and those of the sparse states between them). A step from a sparse
//! state is still one transition, never a failure-chain walk: a search of
//! its few edges, else one cell of the base's (hot) row. BENCHMARKS.md,
//! "Start-up with a smaller automaton".
//!
//! The result is the same automaton — the same transitions up to state
//! numbering, the same match lists in the same order — which
//! `tests::shipped_languages_equal_aho_corasick` checks state by state
//! against aho-corasick's DFA for every shipped language.
//!
//! The methods used by the scan have the names and signatures of
//! `aho_corasick::automaton::Automaton`'s (that trait is `unsafe` to
//! implement, and the crate forbids `unsafe`), so the stepping code reads
//! the same as before. A state id is a dense row's offset (premultiplied by
//! the row width) or, past the table, a node's offset in `nodes`, with
//! [`MATCH`] set on match states so that `is_special` is one comparison.

use aho_corasick::automaton::StateID;
use aho_corasick::{Anchored, MatchError, PatternID};

/// Byte values.
const BYTES: usize = 256;

/// Set in the id of every match state.
pub(super) const MATCH: u32 = 1 << 31;

/// The dense table's size per automaton: rows for as many states as fit,
/// in breadth-first order. A start faults in this much where it faulted
/// in the whole table; the scan's speed depends on it little once the
/// states most steps visit are in (BENCHMARKS.md: the engine / raw ratio
/// by budget).
pub(super) const DENSE_BYTES: usize = 1 << 18;

/// A node's meta word: its edge count in the low bits, its match list's
/// index + 1 (0: none) above.
const EDGE_BITS: u32 = 9;

/// An Aho-Corasick automaton over byte strings, unanchored, reporting
/// every pattern that ends at each position (overlapping matches). Also
/// what the engine cache stores, checked on load by [`Dfa::check`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dfa {
    /// Byte → column. Bytes in no pattern share column 0 (from any state
    /// they lead back to the start); every other byte has its own. A
    /// language using few symbols (English: its alphabet's single codes)
    /// gets narrow rows.
    pub(super) classes: [u8; BYTES],
    pub(super) stride2: u32,
    pub(super) start: u32,
    /// The dense rows: `trans[row + class]` is the next state's id. The
    /// first `dense_matches` rows are match states (match list `row`).
    pub(super) trans: Vec<u32>,
    pub(super) dense_matches: u32,
    /// The sparse states, each `[base, meta, classes packed four to a
    /// word…, targets…]` (`meta`: [`EDGE_BITS`]); state id `trans.len()`
    /// + offset.
    pub(super) nodes: Vec<u32>,
    /// Per match list: its range in `match_ids` (dense rows' first, then
    /// the nodes' in node order).
    pub(super) match_ranges: Vec<(u32, u32)>,
    /// Pattern ids of every match state's list: the state's own patterns in
    /// insertion order, then its failure state's list (aho-corasick's order).
    pub(super) match_ids: Vec<u32>,
}

/// Why a set of patterns gives no automaton.
#[derive(Debug, thiserror::Error)]
pub(super) enum DfaError {
    #[error("pattern {0} is empty")]
    EmptyPattern(usize),
    #[error("{0} automaton states, more than 31-bit state ids can address")]
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
    /// The automaton of `patterns`; pattern `i` is reported as `PatternID`
    /// `i`. Dense rows for the shallow states, up to [`DENSE_BYTES`].
    pub(super) fn new<I, P>(patterns: I) -> Result<Dfa, DfaError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Dfa::with_dense_bytes(patterns, DENSE_BYTES)
    }

    /// The same with a dense table of about `dense_bytes` (the start
    /// state's row at least): the tests build every split.
    pub(super) fn with_dense_bytes<I, P>(patterns: I, dense_bytes: usize) -> Result<Dfa, DfaError>
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

        // 3. Which states are dense: a prefix of the breadth-first order,
        // so a dense state's failure state (shallower) is dense too.
        let dense = (dense_bytes / (stride * 4)).clamp(1, states);
        let mut rank = vec![0u32; states]; // trie id -> breadth-first rank
        for (k, &at) in order.iter().enumerate() {
            rank[at as usize] = k as u32;
        }
        let is_dense = |at: u32| (rank[at as usize] as usize) < dense;
        let is_match = |at: u32| list_of[at as usize].1 > 0;

        // 4. Each sparse state's base (nearest dense failure ancestor) and
        // edges: its own, then those of its failure state's (when sparse)
        // on classes it has no edge of. In breadth-first order, so a
        // failure state's are known. Targets are trie ids here.
        let sparse = &order[dense..];
        let mut base = vec![ROOT; sparse.len()];
        let mut edges_from = Vec::with_capacity(sparse.len() + 1);
        let mut edges: Vec<(u8, u32)> = Vec::with_capacity(sparse.len());
        edges_from.push(0usize);
        for (k, &at) in sparse.iter().enumerate() {
            let own_start = edges.len();
            for next in trie.children(at) {
                edges.push((classes[usize::from(trie.label[next as usize])], next));
            }
            let f = fail[at as usize];
            if is_dense(f) {
                base[k] = f;
            } else {
                let fk = rank[f as usize] as usize - dense;
                base[k] = base[fk];
                for i in edges_from[fk]..edges_from[fk + 1] {
                    let inherited = edges[i];
                    if !edges[own_start..].iter().any(|e| e.0 == inherited.0) {
                        edges.push(inherited);
                    }
                }
            }
            edges_from.push(edges.len());
        }

        // 5. Numbering. Dense rows: match states first (their match lists
        // come first), then the rest; nodes in breadth-first order.
        let table = dense * stride;
        if table >= MATCH as usize {
            return Err(DfaError::TooManyStates(states));
        }
        let mut new_id = vec![0u32; states];
        let mut match_ranges = Vec::new();
        let mut match_ids = Vec::new();
        let mut list = |at: u32, match_ranges: &mut Vec<(u32, u32)>| {
            let (from, len) = list_of[at as usize];
            match_ranges.push((match_ids.len() as u32, len));
            match_ids.extend_from_slice(&lists[from as usize..(from + len) as usize]);
        };
        let mut row = 0u32;
        for &at in order[..dense].iter().filter(|&&at| is_match(at)) {
            new_id[at as usize] = (row << stride2) | MATCH;
            list(at, &mut match_ranges);
            row += 1;
        }
        let dense_matches = row;
        for &at in order[..dense].iter().filter(|&&at| !is_match(at)) {
            new_id[at as usize] = row << stride2;
            row += 1;
        }
        let mut offset = table;
        let mut meta = Vec::with_capacity(sparse.len());
        for (k, &at) in sparse.iter().enumerate() {
            let n = edges_from[k + 1] - edges_from[k];
            let mut m = n as u32;
            new_id[at as usize] = offset as u32;
            if is_match(at) {
                new_id[at as usize] |= MATCH;
                m |= (match_ranges.len() as u32 + 1) << EDGE_BITS;
                list(at, &mut match_ranges);
            }
            meta.push(m);
            offset += node_words(n);
            if offset >= MATCH as usize || match_ranges.len() >= 1 << (32 - EDGE_BITS) {
                return Err(DfaError::TooManyStates(states));
            }
        }
        drop((lists, list_of));

        // 6. The dense rows: a state's row is its failure state's row
        // (built earlier: it is shallower) with its own edges written over.
        let start = new_id[ROOT as usize];
        let mut trans = vec![0u32; table];
        for &at in &order[..dense] {
            let row = (new_id[at as usize] & !MATCH) as usize;
            if at == ROOT {
                trans[row..row + stride].fill(start);
            } else {
                let from = (new_id[fail[at as usize] as usize] & !MATCH) as usize;
                trans.copy_within(from..from + stride, row);
            }
            for next in trie.children(at) {
                let class = usize::from(classes[usize::from(trie.label[next as usize])]);
                trans[row + class] = new_id[next as usize];
            }
        }

        // 7. The nodes.
        let mut nodes = Vec::with_capacity(offset - table);
        for k in 0..sparse.len() {
            let edges = &edges[edges_from[k]..edges_from[k + 1]];
            nodes.push(new_id[base[k] as usize] & !MATCH);
            nodes.push(meta[k]);
            for four in edges.chunks(4) {
                // Padded with the last class: found earlier, never read.
                let last = four[four.len() - 1].0;
                let mut word = [last; 4];
                for (w, e) in word.iter_mut().zip(four) {
                    *w = e.0;
                }
                nodes.push(u32::from_le_bytes(word));
            }
            nodes.extend(edges.iter().map(|e| new_id[e.1 as usize]));
        }
        Ok(Dfa {
            classes,
            stride2,
            start,
            trans,
            dense_matches,
            nodes,
            match_ranges,
            match_ids,
        })
    }

    /// Whether an automaton read from disk can be scanned with every index
    /// in bounds: every id a dense row or a node's start, with [`MATCH`]
    /// set exactly on match states, bases on dense rows, classes within a
    /// row, match lists inside `match_ids`, pattern ids below `patterns`.
    /// The file's checksum catches a damaged file; this catches one that is
    /// whole but not an automaton of ours, so that a cache can never make a
    /// scan panic.
    pub(super) fn check(&self, patterns: usize) -> bool {
        if self.stride2 > 8 {
            return false;
        }
        let stride = 1usize << self.stride2;
        let table = self.trans.len();
        if table == 0
            || table % stride != 0
            || table + self.nodes.len() >= MATCH as usize
            || self.dense_matches as usize > table >> self.stride2
            || self.dense_matches as usize > self.match_ranges.len()
            || self.classes.iter().any(|&c| usize::from(c) >= stride)
        {
            return false;
        }
        // Walk the nodes: each whole, its classes in a row, padded with
        // its last; mark where each starts and whether it matches.
        let mut starts = vec![0u64; self.nodes.len().div_ceil(64)];
        let mut matches = vec![0u64; self.nodes.len().div_ceil(64)];
        let mut at = 0;
        while at < self.nodes.len() {
            let Some(&[base, meta]) = self.nodes.get(at..at + 2) else {
                return false;
            };
            let n = (meta & ((1 << EDGE_BITS) - 1)) as usize;
            let slot = (meta >> EDGE_BITS) as usize;
            let words = node_words(n);
            if n > stride
                || base as usize >= table
                || base as usize % stride != 0
                || slot > self.match_ranges.len()
                || (slot != 0 && slot <= self.dense_matches as usize)
                || at + words > self.nodes.len()
            {
                return false;
            }
            // Each class below the row width; the padding after the n-th
            // equal to it. A word at a time: this walk is most of a
            // check, and a check is part of every warm start.
            let packed = &self.nodes[at + 2..at + 2 + n.div_ceil(4)];
            if let Some(&last_word) = packed.last() {
                let last = last_word.to_le_bytes()[(n - 1) % 4];
                for (w, word) in packed.iter().enumerate() {
                    for (k, c) in word.to_le_bytes().into_iter().enumerate() {
                        if usize::from(c) >= stride || (4 * w + k >= n && c != last) {
                            return false;
                        }
                    }
                }
            }
            starts[at / 64] |= 1 << (at % 64);
            if slot != 0 {
                matches[at / 64] |= 1 << (at % 64);
            }
            at += words;
        }
        let dense_matches = self.dense_matches as usize;
        let id_ok = |&id: &u32| {
            let raw = (id & !MATCH) as usize;
            let matching = id & MATCH != 0;
            if raw < table {
                raw & (stride - 1) == 0 && matching == (raw >> self.stride2 < dense_matches)
            } else {
                let o = raw - table;
                o < self.nodes.len()
                    && starts[o / 64] & (1 << (o % 64)) != 0
                    && matching == (matches[o / 64] & (1 << (o % 64)) != 0)
            }
        };
        let mut targets_ok = true;
        let mut at = 0;
        while at < self.nodes.len() && targets_ok {
            let n = (self.nodes[at + 1] & ((1 << EDGE_BITS) - 1)) as usize;
            let from = at + 2 + n.div_ceil(4);
            targets_ok = self.nodes[from..from + n].iter().all(id_ok);
            at += node_words(n);
        }
        targets_ok
            && id_ok(&self.start)
            && self.trans.iter().all(id_ok)
            && self.match_ranges.iter().all(|&(from, n)| {
                (from as usize)
                    .checked_add(n as usize)
                    .is_some_and(|end| end <= self.match_ids.len())
            })
            && self.match_ids.iter().all(|&p| (p as usize) < patterns)
    }

    /// The number of states (dense rows and nodes).
    #[cfg(test)]
    pub(super) fn states(&self) -> usize {
        let mut nodes = 0;
        let mut at = 0;
        while at < self.nodes.len() {
            nodes += 1;
            at += node_words((self.nodes[at + 1] & ((1 << EDGE_BITS) - 1)) as usize);
        }
        (self.trans.len() >> self.stride2) + nodes
    }

    /// Bytes of the dense table and of the nodes.
    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.trans.len() * 4, self.nodes.len() * 4)
    }
}

/// Words of a node with `n` edges.
fn node_words(n: usize) -> usize {
    2 + n.div_ceil(4) + n
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
        let class = usize::from(self.classes[usize::from(byte)]);
        let at = (state.as_u32() & !MATCH) as usize;
        let next = if at < self.trans.len() {
            self.trans[at + class]
        } else {
            self.sparse_next(at - self.trans.len(), class)
        };
        StateID::from_u32_unchecked(next)
    }

    /// The step from the node at `at`: its edge on `class`, else its
    /// base's.
    #[inline]
    fn sparse_next(&self, at: usize, class: usize) -> u32 {
        let node = &self.nodes[at..];
        let n = (node[1] & ((1 << EDGE_BITS) - 1)) as usize;
        let words = n.div_ceil(4);
        for (w, &packed) in node[2..2 + words].iter().enumerate() {
            for (k, &c) in packed.to_le_bytes().iter().enumerate() {
                if usize::from(c) == class {
                    return node[2 + words + 4 * w + k];
                }
            }
        }
        self.trans[node[0] as usize + class]
    }

    /// A state the scan must look at: a match state (there is no dead
    /// state in an unanchored standard automaton).
    #[inline(always)]
    pub(super) fn is_special(&self, state: StateID) -> bool {
        state.as_u32() >= MATCH
    }

    #[inline(always)]
    pub(super) fn is_match(&self, state: StateID) -> bool {
        state.as_u32() >= MATCH
    }

    /// A match state's list.
    fn match_range(&self, state: StateID) -> (u32, u32) {
        let at = (state.as_u32() & !MATCH) as usize;
        let index = match at.checked_sub(self.trans.len()) {
            None => at >> self.stride2,
            Some(node) => (self.nodes[node + 1] >> EDGE_BITS) as usize - 1,
        };
        self.match_ranges[index]
    }

    pub(super) fn match_len(&self, state: StateID) -> usize {
        self.match_range(state).1 as usize
    }

    pub(super) fn match_pattern(&self, state: StateID, index: usize) -> PatternID {
        let (from, _) = self.match_range(state);
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
    fn assert_same_as_aho_corasick(ours: &Dfa, patterns: &[Vec<u8>]) -> usize {
        let theirs = aho_corasick::dfa::DFA::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(patterns)
            .expect("aho-corasick builds");
        // ours -> theirs, and the reverse for injectivity.
        let mut paired = std::collections::HashMap::new();
        let mut reverse = std::collections::HashMap::new();
        let start = (
            ours.start_state(Anchored::No).unwrap(),
            theirs.start_state(Anchored::No).unwrap(),
        );
        paired.insert(start.0, start.1);
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
                match paired.get(&o2) {
                    Some(&seen) => assert_eq!(seen, t2, "transition on {b}"),
                    None => {
                        assert!(reverse.insert(t2, o2).is_none(), "two states pair with one");
                        paired.insert(o2, t2);
                        queue.push((o2, t2));
                    }
                }
            }
        }
        assert_eq!(paired.len(), ours.states(), "unreachable states");
        paired.len()
    }

    /// Every split of dense rows and sparse nodes: all sparse but the
    /// start, a few rows, all dense. Each is checked as a cache would.
    fn assert_every_split_same(patterns: &[Vec<u8>], ids: usize) -> usize {
        let full = Dfa::with_dense_bytes(patterns, usize::MAX >> 8).expect("builds");
        let states = full.states();
        assert!(full.nodes.is_empty(), "all dense");
        let row = 4usize << full.stride2;
        for rows in [1, 2, 3, states / 2, states] {
            let ours = Dfa::with_dense_bytes(patterns, rows * row).expect("builds");
            assert_eq!(ours.trans.len(), rows.clamp(1, states) << ours.stride2);
            assert!(ours.check(ids), "{rows} rows: checked");
            assert_eq!(assert_same_as_aho_corasick(&ours, patterns), states);
        }
        states
    }

    #[test]
    fn small_cases_equal_aho_corasick() {
        let cases: &[(&str, &[&str])] = &[
            ("classic", &["he", "she", "his", "hers"]),
            ("nested", &["a", "aa", "aaa", "aaaa"]),
            ("duplicates", &["ab", "ab", "b", "ab"]),
            ("suffix chains", &["abcd", "bcd", "cd", "d", "bc"]),
            (
                "deep chains",
                &["abcdefgh", "bcdefgx", "cdefy", "defz", "efq", "fw"],
            ),
            ("one", &["x"]),
            ("high bytes", &["\u{ff}\u{fe}", "\u{fe}", "\u{0}\u{ff}"]),
        ];
        // 255 bytes used (one column shared by the last), then all 256
        // (no shared column); a node with more than four edges.
        for used in [255u32, 256] {
            let mut bytes: Vec<Vec<u8>> = (0..used).map(|b| vec![b as u8]).collect();
            bytes.push(vec![7, 8, 9]);
            bytes.push(vec![8, 9]);
            bytes.extend((0..9).map(|b| vec![7, 8, b]));
            assert_every_split_same(&bytes, bytes.len());
        }
        for (name, patterns) in cases {
            let bytes: Vec<Vec<u8>> = patterns
                .iter()
                .map(|p| p.chars().map(|c| c as u32 as u8).collect())
                .collect();
            let states = assert_every_split_same(&bytes, bytes.len());
            assert!(states > 1, "{name}");
        }
    }

    /// What a damaged or foreign automaton can hold is refused.
    #[test]
    fn check_refuses_out_of_bounds() {
        let patterns: Vec<Vec<u8>> = ["abcdefgh", "bcdefgx", "cdefy", "he", "she", "e"]
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        let good = Dfa::with_dense_bytes(&patterns, 3 * (4 << 4)).unwrap();
        assert!(good.check(patterns.len()));
        assert!(!good.check(patterns.len() - 1), "pattern ids");
        let table = good.trans.len() as u32;
        type Damage = fn(&mut Dfa, u32);
        let damages: &[(&str, Damage)] = &[
            ("cell past the end", |d, t| {
                d.trans[0] = t + d.nodes.len() as u32
            }),
            ("cell inside a node", |d, t| d.trans[0] = t + 1),
            ("cell off a row", |d, _| d.trans[0] = 1),
            ("match bit dropped", |d, _| {
                let at = d.trans.iter().position(|&c| c >= MATCH).unwrap();
                d.trans[at] &= !MATCH;
            }),
            ("match bit added", |d, _| d.trans[0] |= MATCH),
            ("base off the table", |d, t| d.nodes[0] = t),
            ("edge count past the end", |d, _| {
                d.nodes[1] = (d.nodes[1] & !0x1FF) | 0x100
            }),
            ("match list index", |d, _| {
                d.nodes[1] |= 0x7F_FFFF << EDGE_BITS
            }),
            ("node target", |d, _| {
                // The first node with an edge: its first target.
                let mut at = 0;
                while d.nodes[at + 1] & 0x1FF == 0 {
                    at += 2;
                }
                d.nodes[at + 3] = !MATCH
            }),
            ("start", |d, t| d.start = t + 1),
            ("class", |d, _| d.classes[b'a' as usize] = 0xFF),
            ("stride", |d, _| d.stride2 = 9),
            ("match range", |d, _| d.match_ranges[0].1 = u32::MAX),
            ("no table", |d, _| d.trans.clear()),
        ];
        for (what, damage) in damages {
            let mut bad = Dfa::with_dense_bytes(&patterns, 3 * (4 << 4)).unwrap();
            damage(&mut bad, table);
            assert!(!bad.check(patterns.len()), "{what}");
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
        let mut slots: Vec<u32> = engine.by_language.iter().map(|&(_, i)| i).collect();
        slots.push(engine.any_only);
        for index in slots {
            let slot = &engine.automata[index as usize];
            let texts = slot.ids.iter().map(|&i| &engine.texts[i as usize]);
            let alphabet = super::super::Alphabet::for_patterns(texts.clone()).expect("alphabet");
            let coded: Vec<Vec<u8>> = texts.map(|t| alphabet.encode(t)).collect();
            if coded.is_empty() {
                continue; // no `any` folder: aho-corasick needs a pattern
            }
            let ours = Dfa::new(&coded).expect("builds");
            let states = assert_same_as_aho_corasick(&ours, &coded);
            let (dense, nodes) = ours.sizes();
            eprintln!(
                "automaton {index}: {states} states, {} columns, dense {dense} B, nodes {nodes} B",
                1 << ours.stride2
            );
        }
    }
}
