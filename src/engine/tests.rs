//! Engine behaviour on a small lexicon written for these tests.

use super::*;
use crate::text::normalize;

const LEXICON: &[(&str, &str)] = &[
    ("lexicon.toml", "version = \"test.1\"\n"),
    (
        "ja/violence.toml",
        r#"
category = "violence"
[[term]]
id = "korosu"
patterns = ["殺すぞ", "ころすぞ", "ぶっ殺す", "殺してやる"]
exclude = ["ところすぐ"]
[[term]]
id = "korosu_short"
patterns = ["ころす"]
exclude = ["ところす"]
"#,
    ),
    (
        "ja/verbal_abuse.toml",
        r#"
category = "verbal_abuse"
[[term]]
id = "baka"
patterns = ["ばか", "馬鹿"]
exclude = ["ばかり", "ばかにならない", "馬鹿にならない"]
[[term]]
id = "kasu"
patterns = ["かす"]
standalone = true
[[term]]
id = "gomi"
patterns = ["ゴミ"]
needs_target = true
exclude = ["ゴミ出し"]
"#,
    ),
    (
        "ja/context.toml",
        r#"
[[frame]]
id = "nante"
kind = "negation"
position = "after"
patterns = ["なんて言ってない"]
[[frame]]
id = "iwareta"
kind = "quotation"
position = "after"
patterns = ["って言われた"]
[[frame]]
id = "omae"
kind = "target"
position = "around"
window = 6
patterns = ["お前", "てめえ"]
"#,
    ),
    (
        "en/violence.toml",
        r#"
category = "violence"
[[term]]
id = "kill_you"
patterns = ["kill you", "I'll kill you"]
exclude = ["kill you later"]
[[term]]
id = "kill"
patterns = ["kill"]
severity = "warning"
"#,
    ),
    (
        "en/verbal_abuse.toml",
        r#"
category = "verbal_abuse"
[[term]]
id = "ass"
patterns = ["ass"]
[[term]]
id = "useless"
patterns = ["useless"]
needs_target = true
[[term]]
id = "masked_you"
patterns = ["*** you"]
"#,
    ),
    (
        "en/agent.toml",
        r#"
speaker = "agent"
category = "agent_refusal"
[[term]]
id = "unable"
patterns = ["I'm unable to do that"]
"#,
    ),
    (
        "en/context.toml",
        r#"
[[frame]]
id = "you"
kind = "target"
position = "around"
patterns = ["you"]
[[frame]]
id = "not_saying"
kind = "negation"
position = "before"
window = 16
patterns = ["I'm not saying"]
"#,
    ),
    (
        "pt/verbal_abuse.toml",
        "category = \"verbal_abuse\"\n[[term]]\nid = \"cu\"\npatterns = [\"cu\", \"customer service sucks\"]\n",
    ),
];

fn engine() -> Engine {
    crate::engine::engine_from_files(LEXICON)
}

fn ids(engine: &Engine, text: &str, lang: Option<&str>) -> Vec<String> {
    let mut scratch = Scratch::default();
    engine
        .scan(text, lang, Speaker::Customer, None, &mut scratch)
        .hits
        .iter()
        .map(|h| engine.term(h.term).id.clone())
        .collect()
}

#[test]
fn table_of_hits_and_non_hits() {
    let e = engine();
    let cases: &[(&str, &str, Option<&str>, &[&str])] = &[
        ("ja_plain", "お前ころすぞ", Some("ja"), &["korosu"]),
        ("ja_halfwidth", "ｺﾛｽｿﾞ", Some("ja"), &["korosu"]),
        ("ja_spaced_asr", "殺 す ぞ", Some("ja"), &["korosu"]),
        ("ja_longest_only", "ぶっ殺す", Some("ja"), &["korosu"]),
        (
            "ja_trap_tokoro",
            "お忙しいところすみません",
            Some("ja"),
            &[],
        ),
        ("ja_trap_bakari", "そればかりか", Some("ja"), &[]),
        ("ja_trap_bakani", "手数料が馬鹿にならない", Some("ja"), &[]),
        ("ja_standalone_trap", "ごまかすな", Some("ja"), &[]),
        ("ja_standalone_ok", "かす", Some("ja"), &["kasu"]),
        (
            "ja_standalone_after_pause",
            "お前、かす！",
            Some("ja"),
            &["kasu"],
        ),
        ("ja_gomi_exclusion", "ゴミ出しの日", Some("ja"), &[]),
        ("en_word_boundary", "what a great skill", Some("en"), &[]),
        ("en_assistant", "my assistant will call", Some("en"), &[]),
        ("en_hit", "I'll kill you", Some("en-US"), &["kill_you"]),
        (
            "en_exclusion",
            "I'll kill you later in the game",
            Some("en"),
            &["kill"],
        ),
        ("en_masked", "*** you", Some("en"), &["masked_you"]),
        ("en_masked_long", "**** you", Some("en"), &["masked_you"]),
        (
            "lang_scope_pt_in_en",
            "customer service is slow",
            Some("en"),
            &[],
        ),
        (
            "lang_scope_pt_own",
            "customer service sucks",
            Some("pt"),
            &["cu"],
        ),
        ("lang_unknown_uses_all", "お前ころすぞ", None, &["korosu"]),
        ("lang_without_folder", "お前ころすぞ", Some("fr"), &[]),
    ];
    for (name, text, lang, want) in cases {
        assert_eq!(ids(&e, text, *lang), *want, "case {name}: {text:?}");
    }
}

#[test]
fn evidence_points_at_original_words() {
    let e = engine();
    let text = "いいか、ｺﾛｽｿﾞ！";
    let mut scratch = Scratch::default();
    let scan = e.scan(text, Some("ja"), Speaker::Customer, None, &mut scratch);
    assert_eq!(&text[scan.hits[0].span.clone()], "ｺﾛｽｿﾞ");
}

#[test]
fn negation_and_quotation_downgrade_but_keep() {
    let e = engine();
    let mut scratch = Scratch::default();
    let scan = e.scan(
        "殺すぞなんて言ってない",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert_eq!(scan.hits.len(), 1);
    assert_eq!(scan.hits[0].framing, Framing::Negated);
    assert_eq!(scan.hits[0].severity, Severity::Warning);
    let scan = e.scan(
        "前の人に殺すぞって言われた",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert_eq!(scan.hits[0].framing, Framing::Quoted);
    let scan = e.scan(
        "I'm not saying I'll kill you",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert_eq!(scan.hits[0].framing, Framing::Negated);
    assert_eq!(scan.hits[0].severity, Severity::Warning);
}

#[test]
fn words_in_reported_quotation_marks_are_quoted() {
    let e = engine();
    let mut scratch = Scratch::default();
    let mut scan = |text: &str| {
        let hits = e
            .scan(text, Some("ja"), Speaker::Customer, None, &mut scratch)
            .hits;
        assert_eq!(hits.len(), 1, "{text}");
        (hits[0].framing, hits[0].severity)
    };
    // No cue phrase the lexicon knows, but the brackets and the particle.
    assert_eq!(
        scan("廊下で『お前、殺すぞ』って小声で。"),
        (Framing::Quoted, Severity::Info)
    );
    // Relayed at the agent: a target after the quote, same sentence.
    assert_eq!(
        scan("「殺すぞ」って書かれてたぞ、お前"),
        (Framing::Quoted, Severity::Critical)
    );
    // The caller's own words, restated: plain.
    assert_eq!(
        scan("だから「殺すぞ」って言ってんだよ"),
        (Framing::Plain, Severity::Critical)
    );
}

#[test]
fn target_frame_marks_insults_at_the_agent() {
    let e = engine();
    let mut scratch = Scratch::default();
    let scan = e.scan(
        "この商品ゴミだな",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(!scan.hits[0].targeted);
    let scan = e.scan(
        "お前ゴミだな",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(scan.hits[0].targeted);
}

#[test]
fn frames_respect_word_boundaries() {
    let e = engine();
    let mut scratch = Scratch::default();
    let scan = e.scan(
        "your app is useless",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(
        !scan.hits[0].targeted,
        "\"you\" inside \"your\" is no target"
    );
    let scan = e.scan(
        "you are useless",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(scan.hits[0].targeted);
}

#[test]
fn agent_speech_only_matches_agent_markers() {
    let e = engine();
    let mut scratch = Scratch::default();
    let scan = e.scan(
        "I'm unable to do that, I won't kill you",
        Some("en"),
        Speaker::Agent,
        None,
        &mut scratch,
    );
    let found: Vec<_> = scan
        .hits
        .iter()
        .map(|h| e.term(h.term).id.as_str())
        .collect();
    assert_eq!(found, ["unable"]);
    let scan = e.scan(
        "I'm unable to do that",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(scan.hits.is_empty());
}

#[test]
fn phrase_split_across_fragments_is_found_once() {
    let e = engine();
    let mut scratch = Scratch::default();
    let first = e.scan(
        "ふざけるな、ぶっ殺",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(first.hits.is_empty());
    let second = e.scan(
        "す、わかったか",
        Some("ja"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert_eq!(second.hits.len(), 1, "{:?}", second.hits);
    assert!(second.hits[0].continued);
    assert_eq!(e.term(second.hits[0].term).id, "korosu");
    let third = e.scan(
        "もう一度言う",
        Some("ja"),
        Speaker::Customer,
        Some(&second.carry),
        &mut scratch,
    );
    assert!(third.hits.is_empty(), "reported twice: {:?}", third.hits);

    let first = e.scan(
        "I will kill",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert_eq!(ids(&e, "I will kill", Some("en")), ["kill"]);
    let second = e.scan(
        "you",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    let found: Vec<_> = second
        .hits
        .iter()
        .map(|h| e.term(h.term).id.as_str())
        .collect();
    assert_eq!(found, ["kill_you"]);
    // A word that only looks joined across the seam is not a word: "ass" | "istant".
    let first = e.scan("my", Some("en"), Speaker::Customer, None, &mut scratch);
    let second = e.scan(
        "assistant",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert!(second.hits.is_empty());
}

#[test]
fn exclusion_across_the_seam_still_cancels() {
    let e = engine();
    let mut scratch = Scratch::default();
    let first = e.scan(
        "お忙しいところ",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    let second = e.scan(
        "すみません",
        Some("ja"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert!(second.hits.is_empty(), "{:?}", second.hits);
}

#[test]
fn negation_just_before_the_seam_applies() {
    let e = engine();
    let mut scratch = Scratch::default();
    let first = e.scan(
        "I'm not saying",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    let second = e.scan(
        "I'll kill you",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert_eq!(second.hits[0].framing, Framing::Negated);
}

#[test]
fn carry_from_another_engine_is_not_used() {
    // After a reload the old carry's state ids mean nothing to the new
    // automata: the scan starts afresh instead of indexing garbage.
    let old = engine();
    let new = engine();
    let mut scratch = Scratch::default();
    let first = old.scan("ぶっ殺", Some("ja"), Speaker::Customer, None, &mut scratch);
    let second = new.scan(
        "す",
        Some("ja"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert!(second.hits.is_empty());
}

/// Characters for the alphabet test: 150 hiragana and ideographs, 600 in
/// all, more than one symbol each can have.
fn alphabet_test_pool() -> Vec<char> {
    let hiragana = (0x3041..=0x3093).filter_map(char::from_u32);
    let ideographs = (0x4E00..0x4E00 + 517).filter_map(char::from_u32);
    hiragana.chain(ideographs).collect()
}

/// 700 distinct patterns of 1–4 characters of the pool, each folding to
/// itself.
fn alphabet_test_patterns(pool: &[char]) -> Vec<String> {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut patterns = std::collections::BTreeSet::new();
    while patterns.len() < 700 {
        let len = 1 + next(4);
        // Short patterns from the first 60 characters, so texts hit often.
        let span = if len == 1 { 60 } else { pool.len() };
        let pattern: String = (0..len).map(|_| pool[next(span)]).collect();
        // Only patterns that fold to themselves (not a filler like え).
        if normalize(&pattern).as_str() == pattern {
            patterns.insert(pattern);
        }
    }
    patterns.into_iter().collect()
}

proptest::proptest! {
    /// The automaton over character codes finds exactly the matches a byte
    /// automaton finds in the folded text, with pattern characters beyond
    /// the single-symbol ones (two-symbol codes) and characters in no
    /// pattern (the shared symbol) mixed in.
    #[test]
    fn character_codes_match_like_bytes(
        picks in proptest::collection::vec((0usize..700, 0usize..800), 0..60)
    ) {
        use std::sync::OnceLock;
        static FIXTURE: OnceLock<(Engine, Vec<String>, aho_corasick::AhoCorasick)> = OnceLock::new();
        let (engine, patterns, bytes) = FIXTURE.get_or_init(|| {
            let pool = alphabet_test_pool();
            let patterns = alphabet_test_patterns(&pool);
            let mut file = String::from("category = \"violence\"\n");
            for (i, p) in patterns.iter().enumerate() {
                file.push_str(&format!("[[term]]\nid = \"t{i}\"\npatterns = [\"{p}\"]\n"));
            }
            let engine = engine_from_files(&[
                ("lexicon.toml", "version = \"alphabet.1\"\n"),
                ("ja/violence.toml", &file),
            ]);
            let bytes = aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::Standard)
                .build(&patterns)
                .expect("byte automaton");
            (engine, patterns, bytes)
        });
        // Text: whole patterns, single pool characters and characters in no
        // pattern (カタカナ folds to hiragana; 漢 and ☃ are outside the pool).
        let pool = alphabet_test_pool();
        let mut text = String::new();
        for &(pattern, noise) in &picks {
            if noise < 100 {
                text.push_str(&patterns[pattern]);
            } else if noise < 700 {
                text.push(pool[noise % pool.len()]);
            } else {
                text.push(['漢', '☃', 'x', 'ア'][noise % 4]);
            }
        }
        let automaton = engine.automaton(engine.automaton_for(Some("ja")));
        let start = automaton.dfa.start_state(Anchored::No).expect("unanchored");
        let mut raw = Vec::new();
        let mut sink = ScanSink {
            engine,
            automaton,
            carried_state: start,
            carried_word: false,
            state: start,
            seam_space: false,
            raw: &mut raw,
        };
        sink.reset();
        let mut folded = Normalized::default();
        normalize_text_with(&text, &mut folded, &mut sink);
        let mut found: Vec<(i64, i64, &str)> = raw
            .iter()
            .map(|m| {
                let term = engine.patterns[m.pattern as usize].owner as usize;
                (m.start, m.end, patterns[term].as_str())
            })
            .collect();
        let mut expected: Vec<(i64, i64, &str)> = bytes
            .find_overlapping_iter(folded.as_str())
            .map(|m| (m.start() as i64, m.end() as i64, patterns[m.pattern().as_usize()].as_str()))
            .collect();
        found.sort_unstable();
        expected.sort_unstable();
        proptest::prop_assert_eq!(found, expected);
    }
}

const PROXIMITY: &[(&str, &str)] = &[
    ("lexicon.toml", "version = \"test.near\"\n"),
    (
        "en/threat.toml",
        r#"
category = "threat"
[[term]]
id = "way_home"
parts = [["your way home", "your car", "your kids"], ["be careful", "accidents happen", "would be a shame"]]
near = 6
not_near = ["drive safe"]
[[term]]
id = "surname_again"
category = "personal_attack"
patterns = ["your surname"]
after_agent = ["agent_refusal"]
[[term]]
id = "tell_me_your_surname"
category = "personal_attack"
patterns = ["tell me your surname"]
[[term]]
id = "come_down_there"
parts = [["[i'll|i will|gonna|going to] come"], ["down there", "to your office"]]
near = 3
ordered = true
"#,
    ),
    (
        "ja/threat.toml",
        r#"
category = "threat"
[[term]]
id = "kaerimichi"
parts = [["帰り道", "ご家族", "お子さん"], ["気をつけ", "どうなるか", "無事"]]
near = 10
utterances = 2
[[term]]
id = "seii"
category = "excessive_demand"
patterns = ["誠意[を|]{見せる:ichidan}"]
[[term]]
id = "kingaku"
category = "excessive_demand"
parts = [["慰謝料", "百万"], ["百万", "払え"]]
near = 10
not_near = ["ますか"]
"#,
    ),
];

fn near_ids(engine: &Engine, text: &str, lang: &str) -> Vec<(String, String)> {
    let mut scratch = Scratch::default();
    let scan = engine.scan(text, Some(lang), Speaker::Customer, None, &mut scratch);
    scan.hits
        .iter()
        .map(|h| {
            (
                engine.term(h.term).id.clone(),
                text[h.span.clone()].to_owned(),
            )
        })
        .collect()
}

#[test]
fn proximity_terms_need_every_part_near_each_other() {
    let engine = engine_from_files(PROXIMITY);
    /// (language, text, the hits: term id and the words they span)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "en",
            "Be careful on your way home tonight.",
            &[("way_home", "Be careful on your way home")],
        ),
        (
            "en",
            "nice car you have, accidents happen to cars like your car",
            &[("way_home", "accidents happen to cars like your car")],
        ),
        // Too far apart: seven words between the parts.
        (
            "en",
            "be careful with the settings on the router when you drive your car",
            &[],
        ),
        // One part alone is nothing.
        ("en", "your kids will love the new plan", &[]),
        // not_near cancels it.
        ("en", "drive safe, and be careful on your way home", &[]),
        // Ordered: the parts in the listed order only.
        (
            "en",
            "I'll come down there myself",
            &[("come_down_there", "I'll come down there")],
        ),
        ("en", "down there I'll come", &[]),
        (
            "ja",
            "お子さん、元気？どうなるかな",
            &[("kaerimichi", "お子さん、元気？どうなるか")],
        ),
        (
            "ja",
            "誠意見せてくださいよ",
            &[("seii", "誠意見せてくださいよ")],
        ),
        // A phrase in two parts fills one of them per occurrence: a sum on
        // its own is no demand; with a compensation word, or twice, it is.
        ("ja", "ATMで二百万も振り込めたのは", &[]),
        ("ja", "慰謝料、百万", &[("kingaku", "慰謝料、百万")]),
        ("ja", "百万、百万だよ", &[("kingaku", "百万、百万")]),
        // A question cancels it; ますから ("I tell you") is no question.
        ("ja", "慰謝料、百万もらえますか", &[]),
        (
            "ja",
            "慰謝料、百万もらいますから",
            &[("kingaku", "慰謝料、百万")],
        ),
    ];
    for (lang, text, want) in cases {
        let got = near_ids(&engine, text, lang);
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn an_incomplete_rule_that_may_span_utterances_is_reported_as_a_sighting() {
    let engine = engine_from_files(PROXIMITY);
    let mut scratch = Scratch::default();
    let scan = engine.scan(
        "帰り道は暗いですよね",
        Some("ja"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(scan.hits.is_empty());
    assert_eq!(scan.sightings.len(), 1);
    assert_eq!(scan.sightings[0].parts, 0b01);
    assert_eq!(
        &"帰り道は暗いですよね"[scan.sightings[0].span.clone()],
        "帰り道"
    );
    // A one-utterance rule leaves no sighting.
    let scan = engine.scan(
        "your kids are great",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(scan.sightings.is_empty());
}

#[test]
fn a_dialogue_term_is_info_until_the_call_has_the_agents_words() {
    let engine = engine_from_files(PROXIMITY);
    let mut scratch = Scratch::default();
    let scan = engine.scan(
        "so what's your surname",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert_eq!(scan.hits.len(), 1);
    assert_eq!(engine.term(scan.hits[0].term).id, "surname_again");
    assert_eq!(scan.hits[0].severity, Severity::Info);
}

#[test]
fn a_dialogue_term_does_not_hide_an_overlapping_plain_term() {
    let engine = engine_from_files(PROXIMITY);
    let mut scratch = Scratch::default();
    let scan = engine.scan(
        "tell me your surname now",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    let mut seen: Vec<(&str, bool)> = scan
        .hits
        .iter()
        .map(|h| (engine.term(h.term).id.as_str(), h.severity > Severity::Info))
        .collect();
    seen.sort();
    // Both kept: the dialogue rule waits for the call, the plain one alerts.
    assert_eq!(
        seen,
        [("surname_again", false), ("tell_me_your_surname", true)]
    );
}

#[test]
fn figurative_frames_keep_harm_words_about_pests_at_info_unless_aimed_at_the_agent() {
    let engine = engine_from_files(&[
        ("lexicon.toml", "version = \"test.fig\"\n"),
        (
            "ja/violence.toml",
            r#"
category = "violence"
[[term]]
id = "bukkorosu"
patterns = ["ぶっ殺"]
"#,
        ),
        (
            "ja/context.toml",
            r#"
[[frame]]
id = "pests"
kind = "figurative"
position = "around"
window = 16
patterns = ["ゴキブリ", "一匹残らず"]
[[frame]]
id = "omae"
kind = "target"
position = "around"
window = 12
patterns = ["お前"]
"#,
        ),
    ]);
    let mut scratch = Scratch::default();
    let mut scan = |text: &str| {
        let hits = engine
            .scan(text, Some("ja"), Speaker::Customer, None, &mut scratch)
            .hits;
        assert_eq!(hits.len(), 1, "{text}");
        (hits[0].framing, hits[0].severity)
    };
    assert_eq!(
        scan("台所のゴキブリ、一匹残らずぶっ殺したい"),
        (Framing::Figurative, Severity::Info)
    );
    assert_eq!(
        scan("お前もゴキブリみたいにぶっ殺すぞ"),
        (Framing::Figurative, Severity::Critical)
    );
    assert_eq!(scan("ぶっ殺すぞ"), (Framing::Plain, Severity::Critical));
}

/// [`LEXICON`] with read-out frames: an inline cue, an announced one
/// (two turns) and an end cue.
fn read_out_engine() -> Engine {
    let frames = r#"
[[frame]]
id = "it_says"
kind = "read_out"
position = "before"
patterns = ["it says"]
[[frame]]
id = "can_i_read"
kind = "read_out"
position = "before"
turns = 2
patterns = ["can I read you"]
[[frame]]
id = "end_quote"
kind = "read_out_end"
position = "before"
patterns = ["end quote"]
"#;
    engine_with(("en/read_out.toml", frames))
}

/// [`LEXICON`] and one more file.
fn engine_with(file: (&str, &str)) -> Engine {
    let mut files = LEXICON.to_vec();
    files.push(file);
    engine_from_files(&files)
}

#[test]
fn a_reading_out_lasts_the_rest_of_the_turn_whatever_its_length() {
    let engine = read_out_engine();
    let mut scratch = Scratch::default();
    let mut scan = |text: &str, carry: Option<&Carry>| {
        engine.scan(text, Some("en"), Speaker::Customer, carry, &mut scratch)
    };
    let framings = |scan: &Scan| scan.hits.iter().map(|h| h.framing).collect::<Vec<_>>();
    // Far beyond any frame window, still read out; the "you" is the caller.
    let first = scan(
        "so it says, and I am reading this exactly as it came in on my phone last \
         night at about ten, pay by friday or we will kill you",
        None,
    );
    assert_eq!(framings(&first), [Framing::Quoted]);
    assert_eq!(first.hits[0].severity, Severity::Info);
    assert!(!first.hits[0].addressed);
    // The caller's next fragment of the same turn: still reading.
    let second = scan("kill you and your family", Some(&first.carry));
    assert_eq!(framings(&second), [Framing::Quoted]);
    // The agent spoke: the caller's own words again.
    let mut carry = second.carry.clone();
    carry.end_turn();
    assert!(!carry.reading_out());
    let third = scan("I'll kill you", Some(&carry));
    assert_eq!(framings(&third), [Framing::Plain]);
    // Before the cue, the caller's own words.
    let before = scan("I'll kill you, it says so here", None);
    assert_eq!(framings(&before), [Framing::Plain]);
}

#[test]
fn a_frame_reaches_over_the_seam_but_not_past_the_other_speakers_turn() {
    let engine = engine();
    let mut scratch = Scratch::default();
    let denial = engine.scan(
        "and I'm not saying",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    let mut scan = |carry: &Carry| {
        let scan = engine.scan(
            "kill you",
            Some("en"),
            Speaker::Customer,
            Some(carry),
            &mut scratch,
        );
        scan.hits[0].framing
    };
    // The same turn, split over two fragments: still denied.
    assert_eq!(scan(&denial.carry), Framing::Negated);
    // The agent answered: a new turn, the caller's own words.
    let mut carry = denial.carry.clone();
    carry.end_turn();
    assert_eq!(scan(&carry), Framing::Plain);
}

#[test]
fn a_reporting_cue_frames_the_rest_of_its_punctuated_sentence() {
    let frames = |to_sentence_end: bool| {
        format!(
            r#"
[[frame]]
id = "he_said"
kind = "quotation"
position = "before"
window = 20
to_sentence_end = {to_sentence_end}
patterns = ["he said"]
"#
        )
    };
    let engine = engine_with(("en/said.toml", &frames(true)));
    let mut scratch = Scratch::default();
    let mut framing = |engine: &Engine, text: &str| {
        let scan = engine.scan(text, Some("en"), Speaker::Customer, None, &mut scratch);
        scan.hits.iter().map(|h| h.framing).collect::<Vec<_>>()
    };
    let long = "He said we know where you live, we have your address off the parcel, \
                we will kill you.";
    assert_eq!(framing(&engine, long), [Framing::Quoted]);
    // A new sentence is the caller's own again, as is unpunctuated text
    // beyond the window (ASR: its sentences are unknown).
    let next = "He said it would be fixed by Monday. It is Friday now, so I will kill you.";
    assert_eq!(framing(&engine, next), [Framing::Plain]);
    let asr = "he said it would be fixed by monday and it is friday now so i will kill you";
    assert_eq!(framing(&engine, asr), [Framing::Plain]);
    let windowed = engine_with(("en/said.toml", &frames(false)));
    assert_eq!(framing(&windowed, long), [Framing::Plain]);

    // A reported sentence split over two fragments (ASR cuts mid-phrase):
    // the second fragment's words up to its first full stop are still his,
    // however far the cue lies behind the seam.
    let first = engine.scan(
        "I rang them back. He said we know where you live, we have your address off \
         the parcel, we have your number, we have your car, we have your photo, we have \
         your email, we have it all,",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    assert!(first.hits.is_empty());
    let second = engine.scan(
        "and we will kill you. Then I said to him, kill you.",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    let framings: Vec<Framing> = second.hits.iter().map(|h| h.framing).collect();
    assert_eq!(framings, [Framing::Quoted, Framing::Plain]);
    // The other speaker's turn closes it.
    let mut carry = first.carry.clone();
    carry.end_turn();
    let own = engine.scan(
        "and we will kill you.",
        Some("en"),
        Speaker::Customer,
        Some(&carry),
        &mut scratch,
    );
    assert_eq!(own.hits[0].framing, Framing::Plain);
}

#[test]
fn an_end_cue_closes_the_reading_and_an_announcement_lasts_two_turns() {
    let engine = read_out_engine();
    let mut scratch = Scratch::default();
    let mut scan = |text: &str, carry: Option<&Carry>| {
        engine.scan(text, Some("en"), Speaker::Customer, carry, &mut scratch)
    };
    let ended = scan(
        "it says we will kill you, end quote, and now I'll kill you",
        None,
    );
    let framings: Vec<Framing> = ended.hits.iter().map(|h| h.framing).collect();
    assert_eq!(framings, [Framing::Quoted, Framing::Plain]);
    assert!(!ended.carry.reading_out());

    // "Can I read you the message?" — "Go ahead." — the words.
    let announced = scan("can I read you the message he left", None);
    let mut carry = announced.carry.clone();
    carry.end_turn();
    assert!(carry.reading_out(), "the agent's go-ahead does not end it");
    let read = scan("we will kill you", Some(&carry));
    assert_eq!(read.hits[0].framing, Framing::Quoted);
    let mut carry = read.carry.clone();
    carry.end_turn();
    let own = scan("kill you", Some(&carry));
    assert_eq!(own.hits[0].framing, Framing::Plain);
    // Announced and read in the same turn: the reading ends with the turn.
    let announced = scan("can I read you the message", None);
    let read = scan("we will kill you", Some(&announced.carry));
    assert_eq!(read.hits[0].framing, Framing::Quoted);
    let mut carry = read.carry.clone();
    carry.end_turn();
    assert!(!carry.reading_out());
}

#[test]
fn a_not_near_phrase_reaching_back_over_the_seam_still_cancels() {
    let engine = engine_from_files(PROXIMITY);
    let mut scratch = Scratch::default();
    let first = engine.scan(
        "so drive",
        Some("en"),
        Speaker::Customer,
        None,
        &mut scratch,
    );
    // "drive | safe, be careful on your way home": the not_near phrase
    // began in the previous fragment.
    let second = engine.scan(
        "safe, be careful on your way home",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert!(second.hits.is_empty(), "{:?}", second.hits);
    let alone = engine.scan(
        "be careful on your way home",
        Some("en"),
        Speaker::Customer,
        Some(&first.carry),
        &mut scratch,
    );
    assert_eq!(alone.hits.len(), 1);
}

#[test]
fn a_discourse_you_does_not_make_an_insult_targeted() {
    let frames = r#"
[[frame]]
id = "telling_you"
kind = "not_target"
position = "around"
patterns = ["I'm telling you", "can you believe"]
"#;
    let engine = engine_with(("en/discourse.toml", frames));
    let mut scratch = Scratch::default();
    let mut targeted = |text: &str| {
        let scan = engine.scan(text, Some("en"), Speaker::Customer, None, &mut scratch);
        assert_eq!(scan.hits.len(), 1, "{text}: {:?}", scan.hits);
        scan.hits[0].targeted
    };
    assert!(!targeted("the app is useless, I'm telling you"));
    assert!(!targeted("can you believe how useless this update is"));
    // A second "you" that is not discourse still aims it at the agent.
    assert!(targeted("I'm telling you, you are useless"));
    assert!(targeted("the app is useless and so are you"));
}

/// A command that knows its language compiles that language's automaton
/// only (`build_lazy` + `prepare`), and finds exactly what an engine with
/// every automaton compiled finds, on every example of that language's
/// shipped terms.
#[test]
fn one_language_engine_finds_what_the_full_engine_finds() {
    let lexicon = Lexicon::embedded().expect("shipped lexicons load");
    let full = Engine::build(lexicon.clone()).expect("compiles");
    let mut scratch = Scratch::default();
    for language in lexicon.languages() {
        let lazy = Engine::build_lazy(lexicon.clone()).expect("lazy");
        lazy.prepare(Some(language)).expect("compiles");
        let compiled: Vec<bool> = lazy
            .automata
            .iter()
            .map(|a| a.compiled.get().is_some())
            .collect();
        let wanted = lazy.automaton_for(Some(language)) as usize;
        assert_eq!(
            compiled.iter().filter(|&&c| c).count(),
            1,
            "{language}: one automaton compiled"
        );
        assert!(compiled[wanted], "{language}: its own automaton");
        let mut examples = 0;
        for term in lexicon.terms.iter().filter(|t| &*t.language == language) {
            for example in term.must_match.iter().chain(&term.must_not_match) {
                for speaker in [Speaker::Customer, Speaker::Agent] {
                    let a = lazy.scan(&example.text, Some(language), speaker, None, &mut scratch);
                    let b = full.scan(&example.text, Some(language), speaker, None, &mut scratch);
                    assert_eq!(a.hits, b.hits, "{language}: {:?}", example.text);
                    assert_eq!(a.sightings, b.sightings, "{language}: {:?}", example.text);
                }
                examples += 1;
            }
        }
        assert!(examples > 0 || language != "en", "{language}: examples ran");
        // Still only its own automaton: scanning compiled nothing else.
        assert_eq!(
            lazy.automata
                .iter()
                .filter(|a| a.compiled.get().is_some())
                .count(),
            1
        );
    }
}

/// The one hit `text` gives a customer: its framing, whether it is
/// addressed at the agent, and its severity.
fn one_hit(engine: &Engine, text: &str, language: &str) -> (Framing, bool, Severity) {
    let mut scratch = Scratch::default();
    let scan = engine.scan(text, Some(language), Speaker::Customer, None, &mut scratch);
    assert_eq!(scan.hits.len(), 1, "{text}: {:?}", scan.hits);
    let hit = &scan.hits[0];
    (hit.framing, hit.addressed, hit.severity)
}

#[test]
fn reported_words_turned_on_the_agents_side_keep_their_severity() {
    let file = r#"
category = "violence"
[[term]]
id = "fingers"
severity = "critical"
patterns = ["break every finger"]
[[frame]]
id = "says"
kind = "quotation"
position = "before"
window = 60
patterns = ["my son says", "my ex says"]
[[frame]]
id = "toward_you"
kind = "relay"
position = "before"
window = 40
patterns = ["he'll go down your yard", "he'll come down there"]
"#;
    let engine = engine_with(("en/relay.toml", file));
    let hit = |text: &str| one_hit(&engine, text, "en");
    // Relayed at the agent: reported, and still critical.
    assert_eq!(
        hit("my son says he'll go down your yard and break every finger on that lad"),
        (Framing::Quoted, true, Severity::Critical)
    );
    // Told of: the harm was aimed at the caller.
    assert_eq!(
        hit("my ex says he'll break every finger I have"),
        (Framing::Quoted, false, Severity::Info)
    );
    // The turn toward "your yard" stands before the cue: the caller's own
    // words, not the reported ones.
    assert_eq!(
        hit("he'll go down your yard, my son says, and break every finger"),
        (Framing::Quoted, false, Severity::Info)
    );
}

#[test]
fn a_you_before_a_cue_inside_a_hit_in_parts_belongs_to_the_quote() {
    let file = r#"
category = "personal_attack"
[[term]]
id = "ie_shitteru"
severity = "critical"
parts = [["家知っとる"], ["住所"]]
near = 30
"#;
    let engine = engine_with(("ja/parts_quote.toml", file));
    // The child was told "I know your house": the cue (って言われた) stands
    // between the two parts, and お前 is in the told words.
    assert_eq!(
        one_hit(
            &engine,
            "うちの子 お前の家知っとるって言われたけど 住所とかわかるとですか",
            "ja"
        ),
        (Framing::Quoted, false, Severity::Info)
    );
}

#[test]
fn a_target_after_a_quotation_must_be_a_word_of_its_own() {
    let file = r#"
category = "violence"
[[term]]
id = "kill_you_q"
severity = "critical"
patterns = ["strangle you"]
[[frame]]
id = "you_q"
kind = "target"
position = "around"
window = 20
patterns = ["you", "u"]
"#;
    let engine = engine_with(("en/quote_target.toml", file));
    let hit = |text: &str| {
        let (framing, _, severity) = one_hit(&engine, text, "en");
        (framing, severity)
    };
    // The "u" of "up" addresses nobody: a film's line, told.
    assert_eq!(
        hit(r#"the villain goes, "I will strangle you," and the words come up late"#),
        (Framing::Quoted, Severity::Info)
    );
    // A "you" after the quote, in the same sentence, turns it on the agent.
    assert_eq!(
        hit(r#"the villain goes, "I will strangle you," and I mean you"#),
        (Framing::Quoted, Severity::Critical)
    );
}

#[test]
fn a_proximity_rule_ending_inside_reported_quotation_marks_is_quoted() {
    let file = r#"
category = "online_defamation"
[[term]]
id = "post_online_q"
severity = "warning"
parts = [["ライン", "ネット"], ["晒してやる"]]
near = 12
"#;
    let engine = engine_with(("ja/quote_parts.toml", file));
    let hit = |text: &str| {
        let (framing, _, severity) = one_hit(&engine, text, "ja");
        (framing, severity)
    };
    // The platform is the caller's framing, the threat is the ex's words.
    assert_eq!(
        hit("ラインでも「写真 晒してやる」とか 送ってきて"),
        (Framing::Quoted, Severity::Info)
    );
    // The caller's own threat stays plain.
    assert_eq!(
        hit("ラインで写真ネットに晒してやる"),
        (Framing::Plain, Severity::Warning)
    );
}

#[test]
fn a_frame_that_names_categories_frames_only_their_hits() {
    let file = r#"
[[term]]
id = "scum"
category = "verbal_abuse"
patterns = ["scumbags"]
[[term]]
id = "accidents"
category = "threat"
severity = "critical"
patterns = ["accidents happen"]
[[frame]]
id = "third_party"
kind = "quotation"
position = "before"
window = 1
categories = ["verbal_abuse"]
patterns = ["the", "those"]
"#;
    let engine = engine_with(("en/scoped.toml", file));
    let hit = |text: &str| {
        let (framing, _, severity) = one_hit(&engine, text, "en");
        (framing, severity)
    };
    // An insult after a third person's determiner is about them.
    assert_eq!(
        hit("preying on pensioners, the scumbags"),
        (Framing::Quoted, Severity::Info)
    );
    assert_eq!(
        hit("you scumbags took my money"),
        (Framing::Plain, Severity::Warning)
    );
    // The same determiner before a threat is no reading of it.
    assert_eq!(
        hit("those accidents happen to people like you"),
        (Framing::Plain, Severity::Critical)
    );
}

/// One automaton of every pattern of `engine`: what a fragment with no
/// language was scanned by before [`Engine::union_raw`].
fn one_automaton_of_every_pattern(engine: &Engine) -> LanguageAutomaton {
    let ids: Vec<u32> = (0..engine.texts.len() as u32).collect();
    let texts = || ids.iter().map(|&i| &engine.texts[i as usize]);
    let alphabet = Alphabet::for_patterns(texts()).expect("alphabet");
    let dfa = Dfa::new(texts().map(|t| alphabet.encode(t))).expect("automaton");
    LanguageAutomaton {
        dfa,
        alphabet,
        patterns: ids,
    }
}

/// Scans `fragments` as one speaker's final fragments with no language
/// (carry kept), and the same with `reference` stepped as one automaton
/// was before; asserts the raw matches are the same, in the same order,
/// fragment by fragment. Returns the number of raw matches.
fn assert_union_scans_like(
    engine: &Engine,
    reference: &LanguageAutomaton,
    fragments: &[&str],
) -> usize {
    let mut scratch = Scratch::default();
    let mut carry: Option<Carry> = None;
    let start = reference.dfa.start_state(Anchored::No).expect("unanchored");
    let mut reference_state = start;
    let mut found = 0;
    for fragment in fragments {
        let scan = engine.scan(
            fragment,
            None,
            Speaker::Customer,
            carry.as_ref(),
            &mut scratch,
        );
        let ours: Vec<(u32, i64, i64)> = scratch
            .raw
            .iter()
            .map(|m| (m.pattern, m.start, m.end))
            .collect();
        let mut raw = Vec::new();
        let mut sink = ScanSink {
            engine,
            automaton: reference,
            carried_state: reference_state,
            carried_word: carry.as_ref().is_some_and(|c| c.ends_with_word),
            state: reference_state,
            seam_space: false,
            raw: &mut raw,
        };
        sink.reset();
        let mut folded = Normalized::default();
        normalize_text_with(fragment, &mut folded, &mut sink);
        reference_state = sink.state;
        let theirs: Vec<(u32, i64, i64)> =
            raw.iter().map(|m| (m.pattern, m.start, m.end)).collect();
        assert_eq!(
            ours,
            theirs,
            "raw matches of {fragment:?} (after {:?})",
            carry
                .as_ref()
                .map(|c| String::from_utf8_lossy(c.tail()).into_owned())
        );
        found += ours.len();
        carry = Some(scan.carry);
    }
    found
}

/// A fragment with no language is scanned by every language's automaton
/// in turn; the matches, merged, are exactly those one automaton of every
/// pattern reports, in its order, across seams too: every example of the
/// shipped lexicons, whole, split in two, and run together as one stream.
#[test]
fn no_language_scan_matches_like_one_automaton_of_every_pattern() {
    let lexicon = Lexicon::embedded().expect("shipped lexicons load");
    let engine = Engine::build_lazy(lexicon.clone()).expect("engine");
    let reference = one_automaton_of_every_pattern(&engine);
    let examples: Vec<&str> = lexicon
        .terms
        .iter()
        .flat_map(|t| t.must_match.iter().chain(&t.must_not_match))
        .chain(lexicon.frames.iter().flat_map(|f| &f.must_match))
        .map(|e| e.text.as_str())
        .collect();
    assert!(examples.len() > 100, "{} examples", examples.len());
    let mut found = 0;
    for text in &examples {
        found += assert_union_scans_like(&engine, &reference, &[text]);
        let middle = text
            .char_indices()
            .nth(text.chars().count() / 2)
            .map_or(0, |(i, _)| i);
        found += assert_union_scans_like(&engine, &reference, &[&text[..middle], &text[middle..]]);
    }
    found += assert_union_scans_like(&engine, &reference, &examples);
    assert!(found > examples.len(), "{found} raw matches");
    // Every language's automaton compiled, and nothing else.
    let compiled = engine
        .automata
        .iter()
        .filter(|a| a.compiled.get().is_some())
        .count();
    assert_eq!(compiled, engine.union.len());
}

/// An `any` pattern is in every language's automaton: a fragment with no
/// language reports it once, in the order one automaton would; a set with
/// no language folder scans such a fragment with the `any` automaton.
#[test]
fn no_language_scan_reports_any_patterns_once() {
    let any = (
        "any/verbal_abuse.toml",
        "category = \"verbal_abuse\"\n[[term]]\nid = \"xx\"\npatterns = [\"xx\", \"ass\", \"すぞ\"]\n",
    );
    let mut files = LEXICON.to_vec();
    files.push(any);
    let engine = engine_from_files(&files);
    assert_eq!(engine.union.len(), 3, "en, ja, pt");
    let reference = one_automaton_of_every_pattern(&engine);
    let stream = [
        "xx you ass お前ころ",
        "すぞ xx",
        "kill you xx",
        "customer service sucks xx",
    ];
    let found = assert_union_scans_like(&engine, &reference, &stream);
    assert!(found >= 10, "{found} raw matches");
    let mut scratch = Scratch::default();
    let scan = engine.scan("xx", None, Speaker::Customer, None, &mut scratch);
    assert_eq!(scan.hits.len(), 1);

    let only_any = engine_from_files(&[("lexicon.toml", "version = \"test.1\"\n"), any]);
    assert_eq!(only_any.union, vec![only_any.any_only]);
    let reference = one_automaton_of_every_pattern(&only_any);
    assert_union_scans_like(&only_any, &reference, &["xx", "x", "x ass"]);
    assert_eq!(ids(&only_any, "what an ass", None), ["xx"]);
}

#[test]
fn a_proximity_rule_cut_in_two_by_asr_completes_in_the_second_final() {
    let engine = engine_from_files(PROXIMITY);
    let mut scratch = Scratch::default();
    let mut scan = |text: &str, lang: &str, carry: Option<&Carry>| {
        engine.scan(text, Some(lang), Speaker::Customer, carry, &mut scratch)
    };
    let ids = |scan: &Scan| {
        scan.hits
            .iter()
            .map(|h| engine.term(h.term).id.clone())
            .collect::<Vec<_>>()
    };
    // 「慰謝料は」|「百万」: one sentence, two finals.
    let first = scan("慰謝料は", "ja", None);
    assert!(first.hits.is_empty());
    let second = scan("百万", "ja", Some(&first.carry));
    assert_eq!(ids(&second), ["kingaku"]);
    // Reported once: the second final's carry holds no finished parts.
    let third = scan("百万", "ja", Some(&second.carry));
    assert!(third.hits.is_empty(), "{:?}", third.hits);
    // The agent spoke in between: two sentences, nothing.
    let mut carry = first.carry.clone();
    carry.end_turn();
    assert!(scan("百万", "ja", Some(&carry)).hits.is_empty());
    // Order still counts across the seam.
    let come = scan("I'll come", "en", None);
    assert_eq!(
        ids(&scan("down there", "en", Some(&come.carry))),
        ["come_down_there"]
    );
    let down = scan("down there", "en", None);
    assert!(scan("I'll come", "en", Some(&down.carry)).hits.is_empty());
    // A rule that may span utterances keeps its own way (a sighting), and
    // is not completed a second time by the seam.
    let home = scan("帰り道は", "ja", None);
    assert_eq!(home.sightings.len(), 1);
    let next = scan("気をつけて", "ja", Some(&home.carry));
    assert!(next.hits.is_empty(), "{:?}", next.hits);
}
