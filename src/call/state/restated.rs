//! The same thing said again after each refusal, whatever its words: the
//! caller restates a demand the agent declined, and again after the next
//! refusal (DOMAIN: "re-asserted after it has been answered"). No lexicon
//! of demands: a content word ([`for_each_content_word`]) the caller says after
//! `repetition.same_demand` different refusals of the agent is one demand
//! they will not let go of.

use std::collections::HashMap;

use super::counters::counter_rule;
use super::evidence::utterance_of;
use super::{hash_text, CallSession};
use crate::alert::AlertEvent;
use crate::category::{id, Severity};
use crate::event::Fragment;
use crate::policy::PolicySet;
use crate::text::content::for_each_content_word;

/// Content words followed per call; a caller past this many distinct words
/// has long been counted on the ones that matter.
const MAX_WORDS: usize = 256;

/// What the counter keeps of a call.
#[derive(Default)]
pub(super) struct Restated {
    /// Agent utterances with a refusal or a warning in them, so far.
    refusals: u32,
    /// Words of the agent's first utterance (the company's and the agent's
    /// names): a caller saying "Sato-san" after each refusal is not a demand.
    greeting: Option<Vec<u64>>,
    /// Content word (hashed: a call keeps a few bytes a word, not the
    /// words) → (the refusal count when it was last said, how many
    /// refusals it was said after).
    words: HashMap<u64, (u32, u32)>,
    /// The highest count raised so far (one alert per step of the ladder).
    raised: u32,
}

impl CallSession {
    /// An agent final: a refusal or warning in it opens a new round; the
    /// first one is the greeting.
    pub(super) fn note_agent_turn(&mut self, fragment: &Fragment, refused: bool) {
        let restated = &mut self.restated;
        if restated.greeting.is_none() {
            let mut greeting = Vec::new();
            for_each_content_word(&fragment.text, |w| greeting.push(hash_text(w)));
            restated.greeting = Some(greeting);
        }
        if refused {
            restated.refusals += 1;
        }
    }

    /// A customer final: each content word said again after a refusal it
    /// had not yet been said after counts once more, and the count that
    /// reaches `repetition.same_demand` (then `escalate_at`) raises
    /// persistence.
    pub(super) fn count_restated(
        &mut self,
        fragment: &Fragment,
        policy: &PolicySet,
        out: &mut Vec<AlertEvent>,
    ) {
        let restated = &mut self.restated;
        if restated.refusals == 0 {
            return;
        }
        let mut most = 0;
        for_each_content_word(&fragment.text, |word| {
            let word = hash_text(word);
            if restated
                .greeting
                .as_ref()
                .is_some_and(|g| g.contains(&word))
            {
                return;
            }
            let full = restated.words.len() >= MAX_WORDS;
            let (last, count) = match restated.words.get_mut(&word) {
                Some(entry) => entry,
                None if full => return,
                None => restated.words.entry(word).or_insert((0, 0)),
            };
            if *last != restated.refusals {
                *last = restated.refusals;
                *count += 1;
            }
            most = most.max(*count);
        });
        let repetition = &policy.repetition;
        let (step, severity) = if most >= repetition.escalate_at {
            (repetition.escalate_at, Severity::Critical)
        } else if most >= repetition.same_demand {
            (repetition.same_demand, Severity::Warning)
        } else {
            return;
        };
        if restated.raised >= step {
            return;
        }
        restated.raised = step;
        let evidence = utterance_of(fragment);
        out.extend(self.raise(
            policy,
            id::PERSISTENCE,
            &counter_rule(id::PERSISTENCE, "restated_after_refusals"),
            severity,
            fragment.end_ms,
            vec![evidence],
        ));
    }
}
