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
/// nothing (電話 "phone", 確認 "check", 対応 "handling", ...).
const COMMON_KANJI: &[&str] = &[
    "電話",
    "今日",
    "明日",
    "昨日",
    "本当",
    "大丈夫",
    "確認",
    "説明",
    "対応",
    "担当",
    "自分",
    "相手",
    "一回",
    "何回",
    "何度",
    "今回",
    "前回",
    "先日",
    "時間",
    "場合",
    "状況",
    "本日",
    "会社",
    "弊社",
    "当社",
    "御社",
    "失礼",
    "承知",
    "申し訳",
    "結構",
    "普通",
];

/// English words of four letters or more that carry no demand of their own.
const COMMON_WORDS: &[&str] = &[
    "that",
    "this",
    "with",
    "have",
    "just",
    "what",
    "your",
    "want",
    "know",
    "like",
    "need",
    "please",
    "sorry",
    "okay",
    "yeah",
    "well",
    "then",
    "there",
    "they",
    "them",
    "been",
    "will",
    "would",
    "could",
    "should",
    "about",
    "because",
    "told",
    "said",
    "call",
    "calling",
    "called",
    "time",
    "again",
    "really",
    "going",
    "gonna",
    "right",
    "here",
    "from",
    "even",
    "still",
    "when",
    "where",
    "which",
    "into",
    "over",
    "only",
    "also",
    "some",
    "more",
    "than",
    "very",
    "much",
    "make",
    "made",
    "take",
    "took",
    "give",
    "gave",
    "doing",
    "done",
    "does",
    "sure",
    "think",
    "thought",
    "thank",
    "thanks",
    "hello",
    "mean",
    "look",
    "listen",
    "tell",
    "telling",
    "says",
    "saying",
    "thing",
    "things",
    "something",
    "anything",
    "nothing",
    "everything",
    "someone",
    "anyone",
    "people",
    "today",
    "tomorrow",
    "yesterday",
    "week",
    "month",
    "year",
    "years",
    "days",
    "minute",
    "minutes",
    "hour",
    "hours",
    "being",
    "were",
    "their",
    "they're",
    "you're",
    "don't",
    "can't",
    "won't",
    "didn't",
    "doesn't",
    "isn't",
    "it's",
    "i'm",
    "that's",
    "what's",
    "there's",
    "let's",
    "i've",
    "i'll",
    "you'll",
    "we're",
    "back",
    "down",
    "come",
    "came",
    "coming",
    "goes",
    "went",
    "other",
    "these",
    "those",
    "ever",
    "never",
    "always",
    "every",
    "each",
    "while",
    "after",
    "before",
    "first",
    "last",
    "next",
    "number",
    "account",
    "name",
    "help",
    "phone",
    "line",
    "speak",
    "talk",
    "talking",
    "alright",
    "understand",
    "actually",
    "literally",
    "honestly",
    "guys",
    "mate",
    "love",
    "dear",
    "madam",
    "ma'am",
    "whatever",
    "kind",
    "sort",
    "lots",
    "little",
    "pretty",
    "good",
    "fine",
    "great",
    "getting",
    "keep",
    "kept",
    "four",
    "five",
    "nine",
    "three",
    "seven",
    "eight",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "hundred",
    "thousand",
    "dollars",
    "pounds",
    "euros",
    "yours",
    "mine",
];

/// The distinct content words of `text`, in order of first appearance.
pub fn content_words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut keep = |word: String| {
        if !out.contains(&word) {
            out.push(word);
        }
    };
    let mut run = String::new();
    let mut run_script = Script::Other;
    for c in text.chars().chain([' ']) {
        let script = Script::of(c);
        if script != run_script || script == Script::Other {
            if let Some(word) = finish(&run, run_script) {
                keep(word);
            }
            run.clear();
            run_script = script;
        }
        if script != Script::Other {
            run.extend(c.to_lowercase());
        }
    }
    out
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

fn finish(run: &str, script: Script) -> Option<String> {
    match script {
        Script::Kanji | Script::Katakana => {
            let long = run.chars().filter(|&c| c != 'ー').count() >= 2;
            (long && !COMMON_KANJI.contains(&run)).then(|| run.to_owned())
        }
        Script::Latin => {
            let word = run.replace('’', "'");
            let word = word.trim_matches('\'');
            let word = word.strip_suffix("'s").unwrap_or(word);
            if word.len() < 4 || COMMON_WORDS.contains(&word) {
                return None;
            }
            let stem = match word.strip_suffix('s') {
                Some(stem) if stem.len() >= 4 && !stem.ends_with('s') => stem,
                _ => word,
            };
            Some(stem.to_owned())
        }
        Script::Other => None,
    }
}

#[cfg(test)]
mod tests {
    use super::content_words;

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
