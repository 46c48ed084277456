//! English contractions written out: a phrase written "you're not leaving"
//! also matches a caller who says "you are not leaving".
//!
//! The normaliser drops apostrophes (`don't` = `dont`), so "don't" and
//! "dont" already meet; "do not" does not. Formal speakers, many non-native
//! speakers and some ASR engines say the long forms, lexicon authors mostly
//! write the short ones. Rewriting the transcript would mean taking back
//! bytes the streaming automaton already stepped over, so the variants are
//! made on the lexicon side instead, once, when the automata are built:
//! [`variants`] of every folded English phrase go into the automaton beside
//! it, owned by the same term.
//!
//! One way only: a long form an author wrote ("I will find you", "I will
//! come down there") is often chosen on purpose, the short one ("I'll find
//! you the order number") being too common. Measured on the blind splits:
//! both ways added four false alarms for one find, the short-to-long way
//! none of them.

/// Short form (folded: no apostrophe) and its long forms. Short forms that
/// are also common words of their own ("were" = we are, "well" = we will,
/// "hell" = he will, "shell", "lets", "its", "id") are left out: "we were
/// told" must not become "we we are told".
const PAIRS: &[(&str, &[&str])] = &[
    ("im", &["i am"]),
    ("youre", &["you are"]),
    ("theyre", &["they are"]),
    ("ill", &["i will"]),
    ("youll", &["you will"]),
    ("theyll", &["they will"]),
    ("itll", &["it will"]),
    ("ive", &["i have"]),
    ("youve", &["you have"]),
    ("weve", &["we have"]),
    ("theyve", &["they have"]),
    ("youd", &["you would"]),
    ("theyd", &["they would"]),
    ("dont", &["do not"]),
    ("doesnt", &["does not"]),
    ("didnt", &["did not"]),
    ("isnt", &["is not"]),
    ("arent", &["are not"]),
    ("wasnt", &["was not"]),
    ("werent", &["were not"]),
    ("havent", &["have not"]),
    ("hasnt", &["has not"]),
    ("hadnt", &["had not"]),
    ("wont", &["will not"]),
    ("wouldnt", &["would not"]),
    ("shouldnt", &["should not"]),
    ("couldnt", &["could not"]),
    ("cant", &["cannot", "can not"]),
    ("mustnt", &["must not"]),
    ("thats", &["that is"]),
    ("whats", &["what is"]),
    ("theres", &["there is"]),
    ("wheres", &["where is"]),
    ("whos", &["who is"]),
    ("hes", &["he is"]),
    ("shes", &["she is"]),
    ("gonna", &["going to"]),
    ("wanna", &["want to"]),
];

/// At most this many variants of one phrase: a long phrase full of
/// contractions would otherwise multiply the automaton.
pub const MAX_VARIANTS: usize = 8;

/// The phrase with its contractions written out (the phrase itself not
/// included; none without a contraction): every combination, at most
/// [`MAX_VARIANTS`].
pub fn variants(folded: &str) -> Vec<String> {
    // Each word's spellings, the written one first.
    let slots: Vec<Vec<&str>> = folded
        .split(' ')
        .map(
            |word| match PAIRS.iter().find(|(short, _)| *short == word) {
                Some((_, long)) => std::iter::once(word).chain(long.iter().copied()).collect(),
                None => vec![word],
            },
        )
        .collect();
    if slots.iter().all(|s| s.len() == 1) {
        return Vec::new();
    }
    let mut out: Vec<String> = vec![String::new()];
    for slot in &slots {
        out = out
            .iter()
            .flat_map(|prefix| {
                slot.iter().map(move |spelling| match prefix.is_empty() {
                    true => (*spelling).to_owned(),
                    false => format!("{prefix} {spelling}"),
                })
            })
            .take(MAX_VARIANTS + 1)
            .collect();
    }
    out.retain(|v| v != folded);
    out.truncate(MAX_VARIANTS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_get_their_long_forms() {
        assert_eq!(variants("youre not leaving"), vec!["you are not leaving"]);
        assert_eq!(variants("ill find you"), vec!["i will find you"]);
        assert_eq!(
            variants("you cant hang up"),
            vec!["you cannot hang up", "you can not hang up"]
        );
    }

    #[test]
    fn long_forms_stay_as_written() {
        // "I will find you" is not widened to the common "I'll find you".
        assert!(variants("i will find you").is_empty());
        assert!(variants("you cannot leave").is_empty());
    }

    #[test]
    fn every_combination_up_to_the_cap() {
        let v = variants("im not saying ill do anything");
        assert!(v.contains(&"i am not saying i will do anything".to_owned()));
        assert!(v.contains(&"im not saying i will do anything".to_owned()));
        assert!(v.contains(&"i am not saying ill do anything".to_owned()));
        assert_eq!(v.len(), 3);
        let long = "im sure youre aware theyre here and ill wait and youll see and dont go";
        assert!(variants(long).len() <= MAX_VARIANTS);
    }

    #[test]
    fn words_that_only_look_like_contractions_stay() {
        // "were", "well" and "its" are words of their own.
        assert!(variants("we were told").is_empty());
        assert!(variants("well done").is_empty());
        assert!(variants("its owner").is_empty());
        assert!(variants("no contraction here").is_empty());
    }
}
