//! The agent's given name, learnt from their greeting ("this is Dana",
//! "Priya speaking"), and the caller pressing for the rest of it by that
//! name ("Dana what?"). A lexicon cannot hold a name the call only tells:
//! the caller's "Dana what?" asks for the surname as plainly as "what's your
//! surname?", and is read the same way (personal_attack, DOMAIN 2: asked
//! again or after the agent declined, it targets one employee; once, it is
//! a question).

use std::ops::Range;

use super::counters::counter_rule;
use super::evidence::words_of;
use super::CallSession;
use crate::alert::AlertEvent;
use crate::category::{id, Severity};
use crate::engine::Engine;
use crate::event::Fragment;
use crate::policy::PolicySet;

/// Words before the name in a greeting.
const BEFORE_NAME: &[&[&str]] = &[
    &["this", "is"],
    &["my", "name", "is"],
    &["speaking", "with"],
    &["speaking", "to"],
];
/// Words after the name ("Tom speaking", "Tom here").
const AFTER_NAME: &[&str] = &["speaking", "here"];
/// Words that follow "this is" or stand before "speaking" without being a
/// name ("this is the billing team", "this is about", "I'm speaking").
const NOT_A_NAME: &[&str] = &[
    "a",
    "about",
    "all",
    "an",
    "another",
    "being",
    "billing",
    "call",
    "calling",
    "correct",
    "customer",
    "department",
    "fine",
    "going",
    "good",
    "great",
    "he",
    "her",
    "here",
    "him",
    "how",
    "i",
    "i'm",
    "it",
    "just",
    "line",
    "me",
    "mr",
    "mrs",
    "ms",
    "my",
    "not",
    "now",
    "our",
    "really",
    "recorded",
    "regarding",
    "right",
    "she",
    "so",
    "still",
    "support",
    "team",
    "that",
    "the",
    "their",
    "there",
    "they",
    "this",
    "very",
    "we",
    "what",
    "who",
    "you",
    "your",
];
/// The caller's final utterances by which the agent has greeted them.
const GREETING_BY: u32 = 2;
/// How long after the agent's refusal the first "Dana what?" is pressing
/// (as `after_agent_seconds` of the lexicon's surname terms).
const AFTER_REFUSAL_MS: u64 = 180_000;

/// The lower-case words of `text` with their byte ranges (letters, digits,
/// apostrophes).
fn words(text: &str) -> Vec<(String, Range<usize>)> {
    let mut out = Vec::new();
    let mut start = None;
    for (at, c) in text.char_indices().chain([(text.len(), ' ')]) {
        let in_word = c.is_alphanumeric() || c == '\'' || c == '’';
        match (in_word, start) {
            (true, None) => start = Some(at),
            (false, Some(s)) => {
                out.push((text[s..at].to_lowercase().replace('’', "'"), s..at));
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn could_be_name(word: &str) -> bool {
    word.len() >= 2 && word.chars().all(char::is_alphabetic) && !NOT_A_NAME.contains(&word)
}

/// The given name an agent introduces themselves with, lower case.
pub(super) fn given_name(text: &str) -> Option<String> {
    let words = words(text);
    for (i, (word, _)) in words.iter().enumerate() {
        for before in BEFORE_NAME {
            let fits = words[i..].len() > before.len()
                && before.iter().zip(&words[i..]).all(|(b, (w, _))| b == w);
            if fits && could_be_name(&words[i + before.len()].0) {
                return Some(words[i + before.len()].0.clone());
            }
        }
        if AFTER_NAME.contains(&word.as_str()) && i > 0 && could_be_name(&words[i - 1].0) {
            // "Tom speaking", not "you're speaking" or "is anyone here".
            let opens = i == 1
                || text[..words[i - 1].1.start]
                    .trim_end()
                    .ends_with([',', '.', '!']);
            if opens {
                return Some(words[i - 1].0.clone());
            }
        }
    }
    None
}

/// Where the caller says the agent's `name` and then "what" or "who" as a
/// question of its own ("Dana what?", "Priya who."): the words' byte range.
/// "Dana, what time do you close?" asks something else.
pub(super) fn presses_for_surname(text: &str, name: &str) -> Option<Range<usize>> {
    // Most finals never say the name: look for it before splitting words.
    let said = text
        .as_bytes()
        .windows(name.len())
        .any(|w| w.eq_ignore_ascii_case(name.as_bytes()));
    if !said {
        return None;
    }
    let words = words(text);
    words.windows(2).find_map(|pair| {
        let [(first, at), (second, end)] = pair else {
            return None;
        };
        let asks = first == name
            && matches!(second.as_str(), "what" | "who")
            && text[at.end..end.start].trim().is_empty()
            && !text[end.end..]
                .trim_start()
                .starts_with(char::is_alphanumeric);
        asks.then_some(at.start..end.end)
    })
}

impl CallSession {
    /// Learns the agent's given name from their greeting, said before the
    /// caller's third utterance or not at all.
    pub(super) fn note_agent_name(&mut self, fragment: &Fragment) {
        if self.agent_name.is_none() && self.customer_finals <= GREETING_BY {
            self.agent_name = given_name(&fragment.text).map(String::into_boxed_str);
        }
    }

    /// The caller asking for the rest of the agent's name by the name they
    /// were given: `personal_attack` at warning when asked again or shortly
    /// after the agent refused something, at info the first time.
    pub(super) fn check_surname_by_name(
        &mut self,
        fragment: &Fragment,
        engine: &Engine,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let Some(name) = self.agent_name.as_deref() else {
            return;
        };
        let Some(span) = presses_for_surname(&fragment.text, name) else {
            return;
        };
        self.surname_asks = self.surname_asks.saturating_add(1);
        let since = fragment.end_ms.saturating_sub(AFTER_REFUSAL_MS);
        let refused = self
            .agent_markers
            .iter()
            .any(|&(ms, term)| ms >= since && &*engine.term(term).category == id::AGENT_REFUSAL);
        let severity = if refused || self.surname_asks >= 2 {
            Severity::Warning
        } else {
            Severity::Info
        };
        let rule = counter_rule(id::PERSONAL_ATTACK, "surname_by_name");
        let evidence = vec![words_of(fragment, &span)];
        let raised = self.raise(
            policy,
            id::PERSONAL_ATTACK,
            &rule,
            severity,
            fragment.end_ms,
            evidence,
        );
        if let Some(alert) = &raised {
            self.keep_question(alert);
        }
        out.extend(raised);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agents_given_name_comes_from_their_greeting() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Thanks for calling Porchlight Home Security, this is Luis.",
                Some("luis"),
            ),
            (
                "Good morning, Mobility Plus Service, this is Sam.",
                Some("sam"),
            ),
            (
                "Hive and Heather Beekeeping Supplies, Tom speaking.",
                Some("tom"),
            ),
            ("hello my name is priya how can i help", Some("priya")),
            (
                "you're speaking with Dana at the city building",
                Some("dana"),
            ),
            // Not a name.
            ("this is the billing team", None),
            ("this is about your account", None),
            ("I'm speaking to my manager now", None),
            ("is anyone here?", None),
            ("お電話ありがとうございます。担当の森でございます。", None),
        ];
        for (text, want) in cases {
            assert_eq!(given_name(text).as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn the_name_then_what_asks_for_the_surname() {
        let text = "No, I'm asking you. Dana what.";
        let span = presses_for_surname(text, "dana").unwrap();
        assert_eq!(&text[span], "Dana what");
        assert!(presses_for_surname("Priya who? the one from Tuesday", "priya").is_some());
        assert!(presses_for_surname("Thanks Dana, what time do you close?", "dana").is_none());
        assert!(presses_for_surname("dana what time do you close", "dana").is_none());
        assert!(presses_for_surname("what did Dana say", "dana").is_none());
        assert!(presses_for_surname("Danas what", "dana").is_none());
    }
}
