//! The automata's input alphabet: one code per *character*, not per UTF-8
//! byte.
//!
//! A kana or ideograph is three UTF-8 bytes, so a byte automaton takes three
//! dependent table lookups (each a likely cache miss on a large DFA) per
//! Japanese character, and three states per character of every pattern.
//! Coding each character that occurs in the patterns as one symbol (the
//! most frequent ones) or two (the rest), and every other character as one
//! shared "other" symbol, cuts the steps to one or two per character and
//! shrinks the automaton. The code is prefix-free (lead symbols are never
//! single codes, trail symbols never start a code), so a match can only
//! begin and end on character boundaries: the matches are exactly those of
//! a byte automaton over the folded text.

use std::collections::HashMap;

/// The symbol every character outside the patterns is coded as.
const OTHER: u8 = 0;

/// Symbols in use, `OTHER` included: the DFA's rows are this wide.
const SYMBOLS: usize = 256;

/// A character's code: below 256 one symbol, else `lead << 8 | trail`.
pub(super) type Code = u16;

/// Maps folded characters to codes. Built from one automaton's patterns.
pub(super) struct Alphabet {
    /// Code of every character of the Basic Multilingual Plane (0 = other).
    bmp: Box<[Code]>,
    /// The few characters beyond it that occur in patterns.
    astral: HashMap<char, Code>,
}

/// Too many distinct characters in one automaton's patterns for two-symbol
/// codes.
#[derive(Debug)]
pub(super) struct TooManyCharacters(pub usize);

impl Alphabet {
    /// An alphabet for these (folded) patterns: the characters used most
    /// often get single symbols.
    pub(super) fn for_patterns<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Alphabet, TooManyCharacters> {
        let mut counts: HashMap<char, usize> = HashMap::new();
        for pattern in patterns {
            for c in pattern.chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut by_use: Vec<(char, usize)> = counts.into_iter().collect();
        by_use.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let layout = Layout::for_characters(by_use.len())?;
        let mut alphabet = Alphabet {
            bmp: vec![0; 0x1_0000].into_boxed_slice(),
            astral: HashMap::new(),
        };
        for (rank, &(c, _)) in by_use.iter().enumerate() {
            let code = layout.code(rank);
            match alphabet.bmp.get_mut(c as usize) {
                Some(slot) => *slot = code,
                None => {
                    alphabet.astral.insert(c, code);
                }
            }
        }
        Ok(alphabet)
    }

    /// Every coded character with its code, by character: what the
    /// engine cache keeps ([`Alphabet::from_entries`] rebuilds it).
    pub(super) fn entries(&self) -> Vec<(char, Code)> {
        let mut out: Vec<(char, Code)> = (0..self.bmp.len() as u32)
            .filter_map(|c| {
                let code = self.bmp[c as usize];
                (code != Code::from(OTHER)).then(|| char::from_u32(c).map(|c| (c, code)))?
            })
            .collect();
        let mut astral: Vec<(char, Code)> = self.astral.iter().map(|(&c, &k)| (c, k)).collect();
        astral.sort_unstable();
        out.extend(astral);
        out
    }

    /// The alphabet with these codes ([`Alphabet::entries`]).
    pub(super) fn from_entries(entries: impl IntoIterator<Item = (char, Code)>) -> Alphabet {
        let mut alphabet = Alphabet {
            bmp: vec![0; 0x1_0000].into_boxed_slice(),
            astral: HashMap::new(),
        };
        for (c, code) in entries {
            match alphabet.bmp.get_mut(c as usize) {
                Some(slot) => *slot = code,
                None => {
                    alphabet.astral.insert(c, code);
                }
            }
        }
        alphabet
    }

    /// The code of one character.
    #[inline(always)]
    pub(super) fn code(&self, c: char) -> Code {
        match self.bmp.get(c as usize) {
            Some(&code) => code,
            None => self.astral.get(&c).copied().unwrap_or(Code::from(OTHER)),
        }
    }

    /// The code of a character given as its three UTF-8 bytes (the bulk of
    /// CJK text): always in the BMP.
    #[inline(always)]
    pub(super) fn code3(&self, utf8: [u8; 3]) -> Code {
        let point = (usize::from(utf8[0] & 0x0F) << 12)
            | (usize::from(utf8[1] & 0x3F) << 6)
            | usize::from(utf8[2] & 0x3F);
        self.bmp[point & 0xFFFF]
    }

    /// A pattern as the automaton sees it.
    pub(super) fn encode(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match split(self.code(c)) {
                (None, symbol) => out.push(symbol),
                (Some(lead), trail) => out.extend([lead, trail]),
            }
        }
        out
    }
}

/// A code as its symbols: an optional lead, then the last symbol.
#[inline(always)]
pub(super) fn split(code: Code) -> (Option<u8>, u8) {
    let lead = (code >> 8) as u8;
    ((lead != 0).then_some(lead), code as u8)
}

/// How the 256 symbols are shared out: `OTHER`, then `singles` one-symbol
/// codes, then `leads` lead symbols, the rest trail symbols.
#[derive(Debug, PartialEq)]
struct Layout {
    singles: usize,
    leads: usize,
}

impl Layout {
    /// As many single codes as `distinct` characters allow.
    fn for_characters(distinct: usize) -> Result<Layout, TooManyCharacters> {
        let usable = SYMBOLS - 1; // all but OTHER
        (0..=usable.min(distinct))
            .rev()
            .find_map(|singles| {
                let rest = usable - singles;
                let leads =
                    (0..=rest).find(|&leads| singles + leads * (rest - leads) >= distinct)?;
                Some(Layout { singles, leads })
            })
            .ok_or(TooManyCharacters(distinct))
    }

    /// The code of the character ranked `rank` by use.
    fn code(&self, rank: usize) -> Code {
        if rank < self.singles {
            return (1 + rank) as Code;
        }
        let trails = SYMBOLS - 1 - self.singles - self.leads;
        let pair = rank - self.singles;
        let lead = 1 + self.singles + pair / trails;
        let trail = 1 + self.singles + self.leads + pair % trails;
        ((lead << 8) | trail) as Code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_characters_are_all_single_symbols() {
        assert_eq!(
            Layout::for_characters(100).unwrap(),
            Layout {
                singles: 100,
                leads: 0
            }
        );
        let alphabet = Alphabet::for_patterns(["ころす", "kill"]).unwrap();
        assert_eq!(alphabet.encode("ころす").len(), 3);
        assert_eq!(alphabet.encode("kill you"), {
            let mut v = alphabet.encode("kill");
            v.push(OTHER); // the space occurs in no pattern
            v.extend(alphabet.encode("you"));
            v
        });
        assert_eq!(alphabet.code('x'), Code::from(OTHER));
        assert_eq!(alphabet.code3(*b"\xE3\x81\x93"), alphabet.code('こ'));
    }

    #[test]
    fn many_characters_get_prefix_free_codes() {
        // 3,000 distinct ideographs: some single, the rest lead + trail.
        let text: String = (0x4E00u32..0x4E00 + 3000)
            .filter_map(char::from_u32)
            .collect();
        let layout = Layout::for_characters(3000).unwrap();
        assert!(layout.singles > 0 && layout.leads > 0);
        let alphabet = Alphabet::for_patterns([text.as_str()]).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut firsts = std::collections::HashSet::new();
        let mut trails = std::collections::HashSet::new();
        for c in text.chars() {
            let code = alphabet.code(c);
            assert!(seen.insert(code), "code of {c} used twice");
            match split(code) {
                (None, single) => {
                    assert_ne!(single, OTHER);
                    firsts.insert(single);
                }
                (Some(lead), trail) => {
                    firsts.insert(lead);
                    trails.insert(trail);
                }
            }
        }
        assert!(firsts.is_disjoint(&trails), "a trail symbol starts a code");
        assert!(!trails.contains(&OTHER));
    }

    #[test]
    fn too_many_characters_is_an_error() {
        assert!(Layout::for_characters(127 * 128).is_ok());
        assert!(Layout::for_characters(127 * 128 + 1).is_err());
    }
}
