//! The content words of an utterance, without a lexicon: what a caller
//! who says the same demand again says again, whatever the wording around
//! it ("社長を出せ", "社長呼べって何べん言わすねん", "社長や社長").
//!
//! Japanese has no spaces, so a content word is a run of two or more kanji
//! or of two or more katakana (nouns are written in them; the inflections
//! and particles around them in hiragana). In other scripts it is a word of
//! four or more letters that is not a common function word, with a plural
//! or possessive `s` taken off. Crude on purpose: the call state only asks
//! whether the same word comes back utterance after utterance.

/// Kanji words so common in any service call that saying them again says
/// nothing (電話 "phone", 確認 "check", 対応 "handling", ...). Sorted: looked
/// up by binary search.
const COMMON_KANJI: &[&str] = &[
    "一回",
    "今回",
    "今日",
    "会社",
    "何回",
    "何度",
    "先日",
    "前回",
    "場合",
    "大丈夫",
    "失礼",
    "対応",
    "弊社",
    "当社",
    "御社",
    "承知",
    "担当",
    "明日",
    "昨日",
    "時間",
    "普通",
    "本当",
    "本日",
    "状況",
    "申し訳",
    "相手",
    "確認",
    "結構",
    "自分",
    "説明",
    "電話",
];

/// English words of four letters or more that carry no demand of their own.
/// Sorted: looked up by binary search, per word of every final.
const COMMON_WORDS: &[&str] = &[
    "about",
    "account",
    "actually",
    "after",
    "again",
    "alright",
    "also",
    "always",
    "anyone",
    "anything",
    "back",
    "because",
    "been",
    "before",
    "being",
    "call",
    "called",
    "calling",
    "came",
    "can't",
    "come",
    "coming",
    "could",
    "days",
    "dear",
    "didn't",
    "does",
    "doesn't",
    "doing",
    "dollars",
    "don't",
    "done",
    "down",
    "each",
    "eight",
    "euros",
    "even",
    "ever",
    "every",
    "everything",
    "fifty",
    "fine",
    "first",
    "five",
    "forty",
    "four",
    "from",
    "gave",
    "getting",
    "give",
    "goes",
    "going",
    "gonna",
    "good",
    "great",
    "guys",
    "have",
    "hello",
    "help",
    "here",
    "honestly",
    "hour",
    "hours",
    "hundred",
    "i'll",
    "i'm",
    "i've",
    "into",
    "isn't",
    "it's",
    "just",
    "keep",
    "kept",
    "kind",
    "know",
    "last",
    "let's",
    "like",
    "line",
    "listen",
    "literally",
    "little",
    "look",
    "lots",
    "love",
    "ma'am",
    "madam",
    "made",
    "make",
    "mate",
    "mean",
    "mine",
    "minute",
    "minutes",
    "month",
    "more",
    "much",
    "name",
    "need",
    "never",
    "next",
    "nine",
    "nothing",
    "number",
    "okay",
    "only",
    "other",
    "over",
    "people",
    "phone",
    "please",
    "pounds",
    "pretty",
    "really",
    "right",
    "said",
    "saying",
    "says",
    "seven",
    "should",
    "some",
    "someone",
    "something",
    "sorry",
    "sort",
    "speak",
    "still",
    "sure",
    "take",
    "talk",
    "talking",
    "tell",
    "telling",
    "than",
    "thank",
    "thanks",
    "that",
    "that's",
    "their",
    "them",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they're",
    "thing",
    "things",
    "think",
    "thirty",
    "this",
    "those",
    "thought",
    "thousand",
    "three",
    "time",
    "today",
    "told",
    "tomorrow",
    "took",
    "twenty",
    "understand",
    "very",
    "want",
    "we're",
    "week",
    "well",
    "went",
    "were",
    "what",
    "what's",
    "whatever",
    "when",
    "where",
    "which",
    "while",
    "will",
    "with",
    "won't",
    "would",
    "yeah",
    "year",
    "years",
    "yesterday",
    "you'll",
    "you're",
    "your",
    "yours",
];

/// Calls `each` with every content word of `text` in order (a word said
/// twice comes twice), from one reused buffer: the call state hashes them
/// on every customer final and need not own them.
pub fn for_each_content_word(text: &str, mut each: impl FnMut(&str)) {
    let mut run = String::new();
    let mut run_script = Script::Other;
    for c in text.chars().chain([' ']) {
        let script = Script::of(c);
        if script != run_script || script == Script::Other {
            if let Some(word) = finish(&run, run_script) {
                each(word);
            }
            run.clear();
            run_script = script;
        }
        match script {
            Script::Other => {}
            Script::Latin if c == '’' => run.push('\''),
            _ => run.extend(c.to_lowercase()),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Kanji,
    Katakana,
    Latin,
    Other,
}

impl Script {
    fn of(c: char) -> Script {
        match c {
            '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '々' => Script::Kanji,
            '\u{30A1}'..='\u{30FA}' | 'ー' | '\u{FF66}'..='\u{FF9D}' => Script::Katakana,
            'a'..='z' | 'A'..='Z' | '\'' | '’' => Script::Latin,
            _ => Script::Other,
        }
    }
}

fn finish(run: &str, script: Script) -> Option<&str> {
    match script {
        Script::Kanji | Script::Katakana => {
            let long = run.chars().filter(|&c| c != 'ー').count() >= 2;
            (long && COMMON_KANJI.binary_search(&run).is_err()).then_some(run)
        }
        Script::Latin => {
            let word = run.trim_matches('\'');
            let word = word.strip_suffix("'s").unwrap_or(word);
            if word.len() < 4 || COMMON_WORDS.binary_search(&word).is_ok() {
                return None;
            }
            let stem = match word.strip_suffix('s') {
                Some(stem) if stem.len() >= 4 && !stem.ends_with('s') => stem,
                _ => word,
            };
            Some(stem)
        }
        Script::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{for_each_content_word, COMMON_KANJI, COMMON_WORDS};

    /// The distinct content words of `text`, in order of first appearance.
    fn content_words(text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for_each_content_word(text, |word| {
            if !out.iter().any(|w| w == word) {
                out.push(word.to_owned());
            }
        });
        out
    }

    #[test]
    fn the_common_word_lists_are_sorted_for_binary_search() {
        assert!(COMMON_KANJI.windows(2).all(|w| w[0] < w[1]));
        assert!(COMMON_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn japanese_content_words_are_kanji_and_katakana_runs() {
        assert_eq!(content_words("社長を出せ言うてんねん"), ["社長"]);
        assert_eq!(content_words("社長や社長"), ["社長"]);
        // Kanji and katakana are separate words; common ones are left out.
        assert_eq!(
            content_words("ホテル代出せって電話で何度も"),
            ["ホテル", "代出"]
        );
        assert!(content_words("そうですね、ありがとう").is_empty());
    }

    #[test]
    fn english_content_words_skip_function_words_and_plurals() {
        assert_eq!(
            content_words("Reverse the fees, Josh. Refunds! The REFUND!"),
            ["reverse", "fees", "josh", "refund"]
        );
        assert!(content_words("I told you what I want, okay?").is_empty());
        assert_eq!(content_words("the manager's number"), ["manager"]);
    }
}
