//! Proximity rules across utterances: parts of a term seen in the
//! customer's last few finals, joined once every part is there.

use std::sync::Arc;

use super::evidence::words_of;
use super::CallSession;
use crate::alert::{AlertEvent, Evidence};
use crate::category::{CategoryKind, Severity};
use crate::engine::{Engine, Framing, Hit, Sighting, TermId};
use crate::event::Fragment;
use crate::policy::PolicySet;

/// Parts of multi-utterance proximity rules kept, waiting for the rest.
const MAX_SIGHTINGS: usize = 32;

/// Parts of a proximity rule seen in one of the customer's final
/// utterances, waiting for the rest in the next ones.
pub(super) struct PendingParts {
    /// The customer's final utterance it was seen in (a running count).
    utterance: u32,
    term: TermId,
    parts: u8,
    evidence: Evidence,
}

impl CallSession {
    /// Multi-utterance proximity rules: parts seen in this final join those
    /// seen in the customer's last utterances; once every part is there the
    /// rule alerts with the evidence of each utterance that held a part.
    /// Completes proximity terms whose parts are now all seen; a group on
    /// such a term counts as a phrase term's does (repeated demands,
    /// money, hints that add up).
    pub(super) fn complete_parts(
        &mut self,
        fragment: &Fragment,
        sightings: &[Sighting],
        engine: &Engine,
        policy: &PolicySet,
        groups_seen: &mut Vec<Arc<str>>,
        out: &mut Vec<AlertEvent>,
    ) {
        let now = self.customer_finals;
        self.pending_parts.retain(|p| {
            let span = engine
                .term(p.term)
                .near
                .as_ref()
                .map_or(1, |n| n.utterances);
            now - p.utterance < u32::from(span)
        });
        for sighting in sightings {
            let term = engine.term(sighting.term);
            let Some(near) = &term.near else { continue };
            let earlier = self
                .pending_parts
                .iter()
                .filter(|p| p.term == sighting.term)
                .fold(0u8, |m, p| m | p.parts);
            let evidence = words_of(fragment, &sighting.span);
            if earlier | sighting.parts != near.all_parts() {
                if self.pending_parts.len() == MAX_SIGHTINGS {
                    self.pending_parts.pop_front();
                }
                self.pending_parts.push_back(PendingParts {
                    utterance: now,
                    term: sighting.term,
                    parts: sighting.parts,
                    evidence,
                });
                continue;
            }
            let mut all: Vec<Evidence> = Vec::new();
            self.pending_parts.retain(|p| {
                if p.term == sighting.term {
                    all.push(p.evidence.clone());
                    false
                } else {
                    true
                }
            });
            all.push(evidence);
            let hit = Hit {
                term: sighting.term,
                span: sighting.span.clone(),
                continued: false,
                severity: term.severity,
                framing: if sighting.reported {
                    Framing::Quoted
                } else {
                    Framing::Plain
                },
                targeted: false,
                addressed: false,
            };
            self.note_group(term, &hit, fragment, policy, groups_seen);
            let Some((category, rule, severity)) =
                self.assess(&hit, engine, policy, fragment.end_ms)
            else {
                continue;
            };
            if severity >= Severity::Warning && term.kind == CategoryKind::Harassment {
                self.note_pressure(fragment.end_ms, &all);
            }
            let raised = self.raise(policy, &category, &rule, severity, fragment.end_ms, all);
            self.keep_answerable(raised.as_ref());
            self.keep_unanswered(raised.as_ref(), term, policy);
            out.extend(raised);
        }
    }
}
