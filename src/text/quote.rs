//! Quotations marked by punctuation: 「…」, 『…』, “…”, "…", and single
//! quotes ‘…’ / '…' where they cannot be apostrophes.
//!
//! Reporting cues in the lexicons (〜って言われた, "he said") catch reported
//! speech when the cue is a phrase. A transcript that keeps quotation marks
//! says more: the words inside are somebody's words *as words*, and in
//! Japanese the particle after the closing bracket says that they are
//! relayed (「ぶっ殺すぞ」って小声で, 「死ね」「ゴミ」いうて, 「…」って。).
//! Two readings are kept plain because the caller is the speaker: a
//! restatement of the caller's own words (「金返せ」って言ってんだよ, "I told
//! you, "refund me"") and words the agent is told to pass on (「謝れ」って
//! 上司に伝えとけ).
//!
//! ASR output rarely carries quotation marks; typed and human-corrected
//! transcripts do. Hits are rare, so this runs only on fragments with one.

use std::ops::Range;

/// Pairs of opening and closing marks. ASCII `"` opens and closes.
const PAIRS: &[(char, char)] = &[
    ('「', '」'),
    ('『', '』'),
    ('“', '”'),
    ('"', '"'),
    ('〝', '〟'),
];

/// Particles that make the bracket before them a quotation of someone's
/// words (the longest first where one is a prefix of another).
const JA_PARTICLES: &[&str] = &[
    "っていう",
    "という",
    "っつって",
    "って",
    "いうて",
    "ゆうて",
    "言うて",
    "ちゅうて",
    "やて",
    "て言",
    "て書",
    "とか",
    "みたいな",
    "なんて",
    "まで",
    "と",
];

/// After the particle: the caller insists on what they said themselves.
const RESTATED: &[&str] = &[
    "言ってんだ",
    "言ってんの",
    "言ってんだろ",
    "言ってるだろ",
    "言ってるでしょ",
    "言ってるじゃん",
    "言ってるんだよ",
    "言ったでしょ",
    "言ったよね",
    "言ったろ",
    "言ったじゃん",
    "言わせ",
    "何回",
    "何度",
    "言ってるの",
    "お願いしてる",
    "頼んでる",
    "言ってます",
    "申し上げて",
    "言ってるだけ",
    "言っただけ",
    "言ってるんです",
    "言ってるんだ",
    "思って",
    "思う",
    "思った",
    "おもって",
    "おもう",
];

/// After a spaced って in ASR text: the words before were heard or read
/// (言われて, 書いてあって, 気味が悪くて), not the caller's own.
const SPACED_REPORT: &[&str] = &[
    "言われ",
    "いわれ",
    "言って",
    "いって",
    "言う",
    "いう",
    "ゆう",
    "書いて",
    "かいて",
    "書かれ",
    "かかれ",
    "来て",
    "きて",
    "送られ",
    "送って",
    "叫",
    "怒鳴",
    "どな",
    "聞こえ",
    "きこえ",
    "脅",
    "気味",
    "きみ",
    "怖",
    "こわ",
];

/// After the particle: the words are for the agent to pass on.
const RELAYED: &[&str] = &[
    "伝えろ",
    "伝えとけ",
    "伝えて",
    "伝えておけ",
    "言っとけ",
    "言っておけ",
    "言っといて",
    "言うとけ",
    "言うといて",
    "伝えといて",
    "言え",
];

/// Before an English quotation: the caller's own words.
const EN_SELF: &[&str] = &[
    "i said",
    "i told you",
    "i'm saying",
    "i am saying",
    "i keep saying",
    "i'm telling you",
    "i am telling you",
    "i asked",
    "i'm asking",
    "i am asking",
    "i wrote",
    "i'll write",
    "i will write",
    "i'll post",
    "i will post",
    "i'm posting",
    "i'm going to post",
    "i'm gonna post",
];

/// Verbs of speech in the passive, straight after a って with no pause
/// before it: the words before were said to the caller (誰が本気にするかよって
/// 笑われて, 辞めちまえって怒鳴られた). Only verbs of speech: a て-form
/// before an auxiliary (待ってられない, 持ってこられても) is no quotation.
const PASSIVE_SPEECH: &[&str] = &[
    "言われ",
    "いわれ",
    "笑われ",
    "わらわれ",
    "嘲笑われ",
    "怒鳴られ",
    "どなられ",
    "怒られ",
    "おこられ",
    "叱られ",
    "しかられ",
    "脅され",
    "おどされ",
    "罵られ",
    "ののしられ",
    "馬鹿にされ",
    "バカにされ",
    "ばかにされ",
    "責められ",
    "叫ばれ",
    "凄まれ",
    "すごまれ",
    "書かれ",
    "書き込まれ",
    "送られ",
    "送りつけられ",
    "言い返され",
    "煽られ",
    "あおられ",
];

/// How far (in characters) after the closing mark the Japanese cues are
/// looked for, and before an English quotation its lead-in.
const CUE_CHARS: usize = 10;
const LEAD_IN_CHARS: usize = 24;
/// Characters inside a sentence-closing quotation that make it a message.
const READ_ALOUD_CHARS: usize = 5;

/// The byte ranges of `text` inside quotation marks that read as someone
/// else's words, each with the byte offset just past its closing mark.
pub fn reported_quotes(text: &str) -> Vec<(Range<usize>, usize)> {
    let mut quotes = paired(text);
    quotes.extend(single_quoted(text));
    quotes.sort_by_key(|q| q.1.start);
    let mut reported = vec![false; quotes.len()];
    // From the last: a bracket followed straight by the next one shares its
    // reading (「死ね」「ゴミ」いうて).
    for i in (0..quotes.len()).rev() {
        let (open, inner, close_end) = &quotes[i];
        let rest = text[*close_end..].trim_start();
        let chained = quotes
            .get(i + 1)
            .filter(|(mark, inner, _)| inner.start - mark.len_utf8() == text.len() - rest.len());
        reported[i] = match chained {
            Some(_) => reported[i + 1],
            None if matches!(*open, '"' | '“' | '\'' | '‘') => {
                !english_self_quote(&text[..inner.start])
            }
            None => japanese_report(rest) || read_aloud(&text[inner.clone()], rest),
        };
    }
    let mut out: Vec<(Range<usize>, usize)> = quotes
        .into_iter()
        .zip(reported)
        .filter_map(|((_, inner, end), keep)| keep.then_some((inner, end)))
        .collect();
    out.extend(hearsay_clauses(text));
    out
}

/// Hearsay without brackets: 〜言ったらただじゃすまない、って。 / しばいちゃる、
/// って息巻いとった. The pause before って sets the words off as quoted; the
/// clause from the sentence start to 「、って」 is someone else's words
/// unless the caller restates them (〜、って言ってんだよ).
fn hearsay_clauses(text: &str) -> Vec<(Range<usize>, usize)> {
    let mut out = Vec::new();
    for (comma, mark) in text.match_indices(['、', ',', ' ', '\u{3000}']) {
        let after = &text[comma + mark.len()..];
        let trimmed = after.trim_start();
        let Some(rest) = trimmed.strip_prefix("って") else {
            continue;
        };
        let rest = rest.trim_start();
        // ASR text sets words apart with spaces, not pauses: there a って
        // is a quotation's only when it closes the utterance or sentence,
        // or a verb of hearing or reading follows.
        let spaced = !matches!(mark, "、" | ",");
        let closes = rest.is_empty() || rest.starts_with(['。', '！', '？', '!', '?']);
        let heard = || {
            let cue: String = rest
                .chars()
                .filter(|c| !c.is_whitespace())
                .take(4)
                .collect();
            SPACED_REPORT.iter().any(|p| cue.starts_with(p))
        };
        if spaced && !closes && !heard() {
            continue;
        }
        if !japanese_report(trimmed) {
            continue;
        }
        let start = sentence_start(&text[..comma]);
        if tells_to_pass_on(&text[..start]) {
            continue;
        }
        out.push((start..comma, text.len() - rest.len()));
    }
    out.extend(said_to_caller(text));
    out
}

/// Marks that end a sentence wherever they stand; a full stop ends one only
/// before a space or the end of the text.
const SENTENCE_MARKS: [char; 5] = ['。', '！', '？', '!', '?'];

/// Byte offsets just past each sentence-ending mark of `text`: 。！？!? and
/// a full stop before a space or the end (not the one in "1.45" or inside
/// "p.m"). Empty for unpunctuated text, as ASR often gives, whose sentences
/// are unknown.
pub fn sentence_ends(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends =
            SENTENCE_MARKS.contains(&c) || (c == '.' && next.is_none_or(char::is_whitespace));
        if ends {
            out.push(at + c.len_utf8());
        }
    }
    out
}

/// Does `text` end with a sentence-ending mark ([`sentence_ends`] would
/// end at its last character)? Looks at the end only.
pub fn closes_sentence(text: &str) -> bool {
    text.trim_end()
        .ends_with(|c: char| c == '.' || SENTENCE_MARKS.contains(&c))
}

/// Where the sentence that `before` ends in began: just past the last
/// sentence end or closing bracket, or 0.
fn sentence_start(before: &str) -> usize {
    before
        .rfind(['。', '！', '？', '!', '?', '」', '』'])
        .map(|i| i + before[i..].chars().next().map_or(1, char::len_utf8))
        .unwrap_or(0)
}

/// Hearsay with no pause: the clause before a って that a passive verb of
/// speech follows (お前みたいなババア、誰が本気にするかよって笑われて). From
/// the sentence start, like [`hearsay_clauses`].
fn said_to_caller(text: &str) -> Vec<(Range<usize>, usize)> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("って") {
        let rest = &text[at + "って".len()..];
        let Some(verb) = PASSIVE_SPEECH.iter().find(|v| rest.starts_with(**v)) else {
            continue;
        };
        let before = &text[..at];
        if before.ends_with(['、', ',', ' ', '\u{3000}']) {
            continue; // a paused って: hearsay_clauses reads it
        }
        let start = sentence_start(before);
        if start < at && !tells_to_pass_on(&text[..start]) {
            out.push((start..at, at + "って".len() + verb.len()));
        }
    }
    out
}

/// Balanced quotations: (opening mark, inner byte range, byte offset past
/// the closing mark), in order. An unclosed mark quotes nothing.
fn paired(text: &str) -> Vec<(char, Range<usize>, usize)> {
    let mut out = Vec::new();
    let mut open: Vec<(char, usize)> = Vec::new();
    for (at, c) in text.char_indices() {
        if let Some(pos) = open
            .iter()
            .rposition(|&(o, _)| PAIRS.iter().any(|&(po, pc)| po == o && pc == c))
        {
            let (o, start) = open[pos];
            open.truncate(pos);
            out.push((o, start..at, at + c.len_utf8()));
        } else if PAIRS.iter().any(|&(po, _)| po == c) {
            open.push((c, at + c.len_utf8()));
        }
    }
    out.sort_by_key(|q| q.1.start);
    out
}

/// English single quotes, as British transcripts mark a message read out
/// ('Pay up or you will see what happens.'). The same mark is an
/// apostrophe (don't, the kids' room), so a quote opens only at the start
/// of a word and closes only after the end of one, not between letters;
/// an ASCII `'` closes only after sentence punctuation, where a possessive
/// never stands.
fn single_quoted(text: &str) -> Vec<(char, Range<usize>, usize)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let mut out = Vec::new();
    let mut open: Option<(char, usize)> = None;
    for (i, &(pos, c)) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(at);
        let after = at(i + 1);
        match open {
            None if matches!(c, '\'' | '‘')
                && before
                    .is_none_or(|b| b.is_whitespace() || matches!(b, ':' | '(' | '—' | '-'))
                && after.is_some_and(char::is_alphanumeric) =>
            {
                open = Some((c, pos + c.len_utf8()));
            }
            Some((o, start)) if matches!(c, '\'' | '’') => {
                let closes_word = before.is_some_and(|b| !b.is_whitespace())
                    && !after.is_some_and(char::is_alphanumeric);
                let after_sentence =
                    before.is_some_and(|b| matches!(b, '.' | ',' | '!' | '?' | '…'));
                if closes_word && (o == '‘' || after_sentence) {
                    out.push((o, start..pos, pos + c.len_utf8()));
                    open = None;
                }
            }
            _ => {}
        }
    }
    out
}

/// A quotation that closes a sentence (「…」。 or the end of the utterance)
/// and is long enough to be a message rather than a word set off for
/// emphasis (それは「ゴミ」です): a note, a text or a screen read aloud.
fn read_aloud(inner: &str, after: &str) -> bool {
    let closes = after.is_empty() || after.starts_with(['。', '.', '!', '！', '?', '？', '…']);
    closes && inner.chars().filter(|c| !c.is_whitespace()).count() >= READ_ALOUD_CHARS
}

/// The caller told the agent to pass words on just before them (大西に
/// 言うとけ。家族おるんじゃろ、ってな): the clause is the caller's message,
/// relayed at the company, not someone else's words told.
fn tells_to_pass_on(before: &str) -> bool {
    let before = before.trim_end();
    RELAYED.iter().any(|cue| {
        before.match_indices(cue).any(|(at, _)| {
            let to_someone = before[..at].trim_end().ends_with(['に', 'へ', 'も']);
            let after = before[at + cue.len()..].trim_start();
            to_someone
                && (after.is_empty() || after.starts_with(['。', '、', '！', '!', ',', '？', '?']))
        })
    })
}

fn japanese_report(after: &str) -> bool {
    let Some(particle) = JA_PARTICLES.iter().find(|p| after.starts_with(**p)) else {
        return false;
    };
    let cue: String = after[particle.len()..]
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '、' | ','))
        .take(CUE_CHARS)
        .collect();
    !RESTATED.iter().chain(RELAYED).any(|p| cue.contains(p))
}

fn english_self_quote(before: &str) -> bool {
    let lead: String = before
        .chars()
        .rev()
        .take(LEAD_IN_CHARS)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<String>()
        .to_lowercase()
        .replace('’', "'");
    EN_SELF.iter().any(|p| lead.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(text: &str) -> Vec<&str> {
        reported_quotes(text)
            .into_iter()
            .map(|(r, _)| &text[r])
            .collect()
    }

    #[test]
    fn sentence_ends_are_marks_that_close_a_sentence() {
        let text = "He paid £1.45 at 3 p.m. today. Then? 本当。";
        let ends: Vec<&str> = sentence_ends(text).iter().map(|&e| &text[..e]).collect();
        assert_eq!(
            ends,
            [
                "He paid £1.45 at 3 p.m.",
                "He paid £1.45 at 3 p.m. today.",
                "He paid £1.45 at 3 p.m. today. Then?",
                text
            ]
        );
        assert!(sentence_ends("he said we know where you live").is_empty());
    }

    #[test]
    fn japanese_brackets_with_a_reporting_particle_are_someone_elses_words() {
        assert_eq!(
            quoted("『お前、殺すぞ』って小声で言われて。"),
            ["お前、殺すぞ"]
        );
        assert_eq!(
            quoted("「死ね」「ゴミ」「ぶっ殺すぞ」いうて。"),
            ["死ね", "ゴミ", "ぶっ殺すぞ"]
        );
        assert_eq!(
            quoted("「家族にも送りつける」って。"),
            ["家族にも送りつける"]
        );
        assert_eq!(quoted("「燃やすぞ」と怒鳴られました"), ["燃やすぞ"]);
        assert_eq!(quoted("「晒したる」まで書かれとって"), ["晒したる"]);
        // Hearsay without brackets, closing the sentence.
        assert_eq!(
            quoted("誰にも言うな。言ったら家族もただじゃすまない、って。"),
            ["言ったら家族もただじゃすまない"]
        );
        assert!(quoted("ただじゃすまない、って言ってんだよ").is_empty());
        assert_eq!(
            quoted("電話してくるもんはしばいちゃる、って息巻いとった"),
            ["電話してくるもんはしばいちゃる"]
        );
        // ASR spacing: a って closing the utterance is the pause.
        assert_eq!(
            quoted("次 来たら ただじゃおかねえ からな って"),
            ["次 来たら ただじゃおかねえ からな"]
        );
        assert!(quoted("ただじゃおかねえ って 言ってんだよ").is_empty());
        assert!(quoted("ただじゃおかねえ って 何度も").is_empty());
        assert_eq!(
            quoted("紙に 勝手に使ったら殺す って 気味が わるくて"),
            ["紙に 勝手に使ったら殺す"]
        );
        assert!(quoted("お前 ぶっ殺す って 思ってる からな").is_empty());
        // No pause, but a passive verb of speech: said to the caller.
        assert_eq!(
            quoted("繋がったんですけど、お前みたいなババア、誰が本気にするかよって笑われて。"),
            ["繋がったんですけど、お前みたいなババア、誰が本気にするかよ"]
        );
        assert_eq!(quoted("辞めちまえって怒鳴られた"), ["辞めちまえ"]);
        // A て-form before an auxiliary is no quotation.
        assert!(quoted("もうバカ野郎、待ってられない").is_empty());
        assert!(quoted("お前ら持ってこられても困るんだよ").is_empty());
        assert!(quoted("暗い 道も ありますし お気をつけて って 言ってるだけ です").is_empty());
        // Kansai reporting particles.
        assert_eq!(
            quoted("LINEで「縁起でもないことすんなや、しばくで」やて。"),
            ["縁起でもないことすんなや、しばくで"]
        );
        // A message read aloud: a long quotation that closes the sentence.
        assert_eq!(
            quoted("画面に「データを削除し、ネットに公開する」。どうしたら"),
            ["データを削除し、ネットに公開する"]
        );
        assert_eq!(
            quoted("「しね」「家特定した 殺しに行く」。ひらがなで"),
            ["しね", "家特定した 殺しに行く"]
        );
    }

    #[test]
    fn the_callers_own_words_stay_plain() {
        assert!(quoted("だから「金返せ」って言ってんだよ").is_empty());
        assert!(quoted("「土下座しろ」って上司に伝えとけ").is_empty());
        assert!(quoted("「責任者を出せ」と何回言わせるんだ").is_empty());
        // A short bracket without a particle after it: emphasis, not a report.
        assert!(quoted("それは「ゴミ」です。").is_empty());
        assert!(quoted("「ゴミ」。").is_empty());
        // Unclosed: nothing is quoted.
        assert!(quoted("「殺すぞ、お前").is_empty());
        // A message the agent is told to pass on, then the words, ってな.
        assert!(quoted(
            "大西に言うとけ。家族おるんじゃろ。子どもの通学路、気をつけときいや、ってな。"
        )
        .is_empty());
        // "Say it clearly" is no one to pass it to: the hearsay after it is reported.
        assert!(!quoted("はっきり言え。殺すぞ、って言われたんです").is_empty());
    }

    #[test]
    fn english_quotes_unless_the_caller_introduces_them_as_their_own() {
        assert_eq!(
            quoted(r#"he messaged my son "go die" last night"#),
            ["go die"]
        );
        assert_eq!(
            quoted("they wrote “we know where you live”"),
            ["we know where you live"]
        );
        assert!(quoted(r#"I told you, "refund me now""#).is_empty());
        assert!(quoted(r#"I'm gonna post "Gemma is a thief" tonight"#).is_empty());
    }

    #[test]
    fn english_single_quotes_are_quotations_only_where_they_cannot_be_apostrophes() {
        assert_eq!(
            quoted("the text said 'Pay now or you will see what happens.' Then it rang off"),
            ["Pay now or you will see what happens."]
        );
        assert_eq!(
            quoted("a note on the car: ‘Move it or I’ll smash it’ and a drawing"),
            ["Move it or I’ll smash it"]
        );
        // Apostrophes and possessives quote nothing.
        assert!(quoted("I don't know, the kids' room is a mess, it's fine").is_empty());
        assert!(quoted("'cause you're useless, that's why").is_empty());
        // The caller's own words stay plain.
        assert!(quoted("I told you 'refund me now.' and I meant it").is_empty());
    }
}
