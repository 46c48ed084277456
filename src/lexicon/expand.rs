//! Pattern templates, expanded into plain phrases when the lexicon loads.
//!
//! Callers conjugate: 誠意を見せろ, 誠意見せてよ, 誠意を見せてください and
//! 誠意見せなさいよ are one demand. A policy owner writes it once,
//!
//! ```text
//! 誠意[を|]{見せる:ichidan}
//! ```
//!
//! and the loader writes out every spelling before the automata are built,
//! so matching stays one DFA step per character: no regex, no analyser at
//! run time. `callguard lexicon check --expand ID` prints what a term
//! became.
//!
//! - `[a|b|]`: one of the alternatives; an empty one makes the part
//!   optional (particles: `[を|が|は|って|]`). Alternatives may hold verb
//!   slots, not further brackets.
//! - `{verb:class}` or `{verb:class:form,form}`: a Japanese verb in its
//!   dictionary form, conjugated in the forms listed (or the term's `forms`,
//!   or [`DEFAULT_FORMS`]). Classes: `ichidan` (見せる), `godan` (謝る, 払う;
//!   the row is read from the last kana), `suru` (謝罪する), `kuru` (来る).
//!
//! Fillers between the parts need no template: the normaliser drops them
//! before matching.

use std::fmt;

/// Expansions allowed for one pattern. Every phrase is automaton states,
/// memory and start-up time; a template that multiplies independent pieces
/// (who × verb × place) belongs in a proximity term, whose parts add up.
pub const MAX_EXPANSIONS: usize = 400;

/// What a template over the limit is told to do instead.
pub const TOO_MANY: &str = "write the independent pieces as proximity `parts` (their phrases add up instead of multiplying)";

/// Forms a verb slot takes when neither the slot nor the term lists any:
/// the ways a demand is said, from rough to polite.
pub const DEFAULT_FORMS: &[Form] = &[
    Form::Imperative,
    Form::Request,
    Form::Nasai,
    Form::Want,
    Form::Regional,
    Form::Honorific,
];

/// A conjugated form (or a family of forms said the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Form {
    /// 見せる, 見せます
    Plain,
    /// 見せた, 見せました
    Past,
    /// 見せろ, 見せよ; 謝れ; しろ, せよ; 来い
    Imperative,
    /// 見せるな, 見せんな (the contraction of る before な); the western
    /// honorific "don't", Hiroshima 切りんさんな and 切りなさんな
    Prohibitive,
    /// 見せて: the bare て-form, the stem of every request and of てやる
    Te,
    /// 見せてください, 見せてくれ, 見せてよ, 見せていただけますか, 見せてもらえませんか, 見せてちょうだい
    Request,
    /// 見せなさい
    Nasai,
    /// 見せてほしい, 見せてもらいたい, 見せていただきたい
    Want,
    /// 見せないで(ください): the negative request
    NegativeRequest,
    /// 見せない, 見せねえ, 見せません, 見せん
    Negative,
    /// 見せよう, 見せましょう; 謝ろう, 謝りましょう: plain and polite, as
    /// `plain` and `past` are
    Volitional,
    /// 見せたら, 見せれば, 見せるなら
    Conditional,
    /// 見せなかったら, 見せないと, 見せなければ, 見せなきゃ, 見せないなら: "if you don't"
    NegativeConditional,
    /// 見せてやる, 見せてやっから, 見せたる, 見せちゃる: the speaker's own
    /// intent, said at someone
    TeYaru,
    /// 見せとく, 見せておきます, 見せといてあげる, 見せてあげる: done in
    /// advance or as a "favour" (晒しといてあげるよ), said at someone
    TeOku,
    /// 公開させていただきます, 書かせてもらいます, 晒させていただこう: the
    /// causative with いただく / もらう, the polite caller's way of announcing
    /// what they will do ("allow me to publish it")
    Humble,
    /// Regional orders and requests, as standard as 見せろ where they are
    /// spoken: Nagoya 払いやあ / 払ってちょう, Kansai 払わんかい / 払ってえな,
    /// Hiroshima 払いんさい / 払ってつかあさい, Hakata 払いんしゃい, Tohoku
    /// 払ってけろ / 払ってけれ
    Regional,
    /// The honorific request, the politest caller's demand: お支払いください,
    /// お支払いいただきたい, お見せいただけますか; する verbs with ご (ご説明
    /// いただけますか, ご謝罪いただきたい). 来る has its own honorific word
    /// (お越し) and no form here.
    Honorific,
    /// The honorific "don't": このお電話、お切りにならないでくださいね
    HonorificNegativeRequest,
}

impl Form {
    const ALL: &'static [(&'static str, Form)] = &[
        ("plain", Form::Plain),
        ("past", Form::Past),
        ("imperative", Form::Imperative),
        ("prohibitive", Form::Prohibitive),
        ("te", Form::Te),
        ("request", Form::Request),
        ("nasai", Form::Nasai),
        ("want", Form::Want),
        ("negative_request", Form::NegativeRequest),
        ("negative", Form::Negative),
        ("volitional", Form::Volitional),
        ("conditional", Form::Conditional),
        ("negative_conditional", Form::NegativeConditional),
        ("te_yaru", Form::TeYaru),
        ("te_oku", Form::TeOku),
        ("humble", Form::Humble),
        ("regional", Form::Regional),
        ("honorific", Form::Honorific),
        ("honorific_negative_request", Form::HonorificNegativeRequest),
    ];

    /// Named families of forms, so a term says what it means.
    const PRESETS: &'static [(&'static str, &'static [Form])] = &[
        ("demand", DEFAULT_FORMS),
        (
            // "Don't hang up", in every register, and "if you hang up...".
            "prohibit",
            &[
                Form::Prohibitive,
                Form::NegativeRequest,
                Form::HonorificNegativeRequest,
                Form::Conditional,
            ],
        ),
        (
            // What the speaker says he will do.
            "intent",
            &[
                Form::Plain,
                Form::Volitional,
                Form::TeYaru,
                Form::TeOku,
                Form::Humble,
            ],
        ),
    ];

    fn name(self) -> &'static str {
        Form::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("?", |(n, _)| n)
    }

    /// Parses a list of form or preset names.
    pub fn parse_list<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<Form>, String> {
        let mut forms = Vec::new();
        for name in names {
            let name = name.trim();
            if let Some((_, f)) = Form::ALL.iter().find(|(n, _)| *n == name) {
                forms.push(*f);
            } else if let Some((_, set)) = Form::PRESETS.iter().find(|(n, _)| *n == name) {
                forms.extend_from_slice(set);
            } else {
                return Err(format!(
                    "unknown verb form {name:?} (forms: {}; presets: {})",
                    Form::ALL
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                    Form::PRESETS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        forms.sort_unstable();
        forms.dedup();
        Ok(forms)
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A verb's conjugation class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Ichidan,
    /// With the row of its last kana.
    Godan(GodanRow),
    Suru,
    Kuru,
}

/// The kana a godan verb's stem takes for each vowel, and its て / た.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct GodanRow {
    a: &'static str,
    i: &'static str,
    e: &'static str,
    o: &'static str,
    te: &'static str,
    ta: &'static str,
}

const fn row(
    a: &'static str,
    i: &'static str,
    e: &'static str,
    o: &'static str,
    te: &'static str,
    ta: &'static str,
) -> GodanRow {
    GodanRow { a, i, e, o, te, ta }
}

/// Godan rows by the dictionary form's last kana.
const GODAN_ROWS: &[(char, GodanRow)] = &[
    ('う', row("わ", "い", "え", "お", "って", "った")),
    ('く', row("か", "き", "け", "こ", "いて", "いた")),
    ('ぐ', row("が", "ぎ", "げ", "ご", "いで", "いだ")),
    ('す', row("さ", "し", "せ", "そ", "して", "した")),
    ('つ', row("た", "ち", "て", "と", "って", "った")),
    ('ぬ', row("な", "に", "ね", "の", "んで", "んだ")),
    ('ぶ', row("ば", "び", "べ", "ぼ", "んで", "んだ")),
    ('む', row("ま", "み", "め", "も", "んで", "んだ")),
    ('る', row("ら", "り", "れ", "ろ", "って", "った")),
];

/// 行く is the one く verb with って / った.
const IKU: GodanRow = row("か", "き", "け", "こ", "って", "った");

/// Endings after the て-form that make it a request.
const REQUEST_ENDINGS: &[&str] = &[
    "ください",
    "くださいよ",
    "くれ",
    "くれよ",
    "くれる",
    "くれない",
    "くれません",
    "よ",
    "ね",
    "ちょうだい",
    "もらえる",
    "もらえます",
    "もらえない",
    "もらえません",
    "いただけ",
    "いただきます",
];

/// Endings after the causative て-form that announce the speaker's own act
/// (〜させていただきます). Not いただけますか / もらってもいい: those ask leave.
const HUMBLE_ENDINGS: &[&str] = &[
    "いただきます",
    "いただく",
    "いただこう",
    "もらいます",
    "もらう",
    "もらおう",
];

/// Regional request endings after the て-form (Nagoya ちょう, Tohoku けろ /
/// けれ, Hiroshima つかあさい, Kansai えな). Kansai や is left out: 払ってや
/// is also the start of 払ってやる, "I'll pay".
const REGIONAL_TE_ENDINGS: &[&str] = &["ちょう", "けろ", "けれ", "つかあさい", "えな"];

/// Regional orders after the masu-stem (Nagoya やあ, Hiroshima んさい,
/// Hakata んしゃい).
const REGIONAL_MASU_ENDINGS: &[&str] = &["やあ", "んさい", "んしゃい"];

/// Endings after お + masu-stem (ご + noun for する verbs) that make the
/// honorific request: お支払いください, お支払いいただきたい.
const HONORIFIC_ENDINGS: &[&str] = &["ください", "いただけ", "いただきたい", "願え"];

/// Endings after the て-form that make it a wish (〜てほしい).
const WANT_ENDINGS: &[&str] = &["ほしい", "欲しい", "もらいたい", "いただきたい"];

/// The forms of one verb: (stem pieces per form) written out.
fn conjugate(verb: &str, class: Class, form: Form) -> Vec<String> {
    // Each class answers with: masu-stem, negative stem (before ない),
    // imperative(s), volitional, te, ta, plain, prohibitive plain stem,
    // conditional ば-form.
    struct Parts {
        plain: String,
        masu: String,
        nai: String,
        imperative: Vec<String>,
        volitional: String,
        te: String,
        ta: String,
        ba: String,
        /// Colloquial る→ん before な (切んな, 見せんな), when the verb ends in る.
        contracted: Option<String>,
        /// The causative's て-forms (見せさせて, 書かせて and the spoken
        /// 書かして, 公開させて and 公開さして).
        causative_te: Vec<String>,
    }
    let parts = match class {
        Class::Ichidan => {
            let stem = verb.strip_suffix('る').unwrap_or(verb);
            Parts {
                plain: verb.to_owned(),
                masu: stem.to_owned(),
                nai: stem.to_owned(),
                imperative: vec![format!("{stem}ろ"), format!("{stem}よ")],
                volitional: format!("{stem}よう"),
                te: format!("{stem}て"),
                ta: format!("{stem}た"),
                ba: format!("{stem}れば"),
                contracted: Some(format!("{stem}ん")),
                causative_te: vec![format!("{stem}させて")],
            }
        }
        Class::Godan(r) => {
            let last = verb.chars().next_back().map_or(0, char::len_utf8);
            let stem = &verb[..verb.len() - last];
            let r = if verb.ends_with("行く") || verb.ends_with("いく") {
                IKU
            } else {
                r
            };
            Parts {
                plain: verb.to_owned(),
                masu: format!("{stem}{}", r.i),
                nai: format!("{stem}{}", r.a),
                imperative: vec![format!("{stem}{}", r.e)],
                volitional: format!("{stem}{}う", r.o),
                te: format!("{stem}{}", r.te),
                ta: format!("{stem}{}", r.ta),
                ba: format!("{stem}{}ば", r.e),
                contracted: verb.ends_with('る').then(|| format!("{stem}ん")),
                causative_te: vec![format!("{stem}{}せて", r.a), format!("{stem}{}して", r.a)],
            }
        }
        Class::Suru => {
            let stem = verb.strip_suffix("する").unwrap_or(verb);
            Parts {
                plain: verb.to_owned(),
                masu: format!("{stem}し"),
                nai: format!("{stem}し"),
                imperative: vec![format!("{stem}しろ"), format!("{stem}せよ")],
                volitional: format!("{stem}しよう"),
                te: format!("{stem}して"),
                ta: format!("{stem}した"),
                ba: format!("{stem}すれば"),
                contracted: Some(format!("{stem}すん")),
                causative_te: vec![format!("{stem}させて"), format!("{stem}さして")],
            }
        }
        Class::Kuru => {
            // 来る is read こ / き / く by form; in kana the stem changes.
            let (prefix, kana) = match verb.strip_suffix("来る") {
                Some(p) => (p, false),
                None => (verb.strip_suffix("くる").unwrap_or(verb), true),
            };
            let k = |kanji: &str, reading: &str| {
                if kana {
                    format!("{prefix}{reading}")
                } else {
                    format!("{prefix}{kanji}")
                }
            };
            Parts {
                plain: verb.to_owned(),
                masu: k("来", "き"),
                nai: k("来", "こ"),
                imperative: vec![k("来い", "こい")],
                volitional: k("来よう", "こよう"),
                te: k("来て", "きて"),
                ta: k("来た", "きた"),
                ba: k("来れば", "くれば"),
                contracted: Some(k("来ん", "くん")),
                causative_te: vec![k("来させて", "こさせて")],
            }
        }
    };
    let p = &parts;
    // する's noun (謝罪 of 謝罪する), for the forms built on it.
    let suru_noun = || p.masu.strip_suffix('し').unwrap_or(&p.masu);
    match form {
        Form::Plain => vec![p.plain.clone(), format!("{}ます", p.masu)],
        Form::Past => vec![p.ta.clone(), format!("{}ました", p.masu)],
        Form::Imperative => p.imperative.clone(),
        Form::Prohibitive => {
            let mut v = vec![format!("{}な", p.plain)];
            v.extend(p.contracted.iter().map(|c| format!("{c}な")));
            // The negative of 〜んさい / 〜なさい, as firm as 切るな where it
            // is said: こっちが納得するまで切りんさんなよ.
            v.extend(["んさんな", "なさんな"].map(|e| format!("{}{e}", p.masu)));
            v
        }
        Form::Te => vec![p.te.clone()],
        Form::Request => REQUEST_ENDINGS
            .iter()
            .map(|e| format!("{}{e}", p.te))
            .collect(),
        Form::Nasai => vec![format!("{}なさい", p.masu)],
        Form::Want => WANT_ENDINGS
            .iter()
            .map(|e| format!("{}{e}", p.te))
            .collect(),
        Form::NegativeRequest => vec![format!("{}ないで", p.nai)],
        Form::Honorific | Form::HonorificNegativeRequest => {
            // お + masu-stem (お支払い); する: ご + the noun (ご説明).
            let stem = match class {
                Class::Kuru => return Vec::new(),
                Class::Suru => format!("ご{}", suru_noun()),
                _ => format!("お{}", p.masu),
            };
            match form {
                Form::Honorific => HONORIFIC_ENDINGS
                    .iter()
                    .map(|e| format!("{stem}{e}"))
                    .collect(),
                _ => vec![format!("{stem}にならないで")],
            }
        }
        Form::Regional => {
            let mut v: Vec<String> = REGIONAL_MASU_ENDINGS
                .iter()
                .map(|e| format!("{}{e}", p.masu))
                .collect();
            v.extend(REGIONAL_TE_ENDINGS.iter().map(|e| format!("{}{e}", p.te)));
            // Kansai 〜んかい on the negative stem: 払わんかい, 見せんかい;
            // する says せんかい.
            v.push(match class {
                Class::Suru => format!("{}せんかい", suru_noun()),
                _ => format!("{}んかい", p.nai),
            });
            v
        }
        Form::Negative => {
            let mut v = vec![
                format!("{}ない", p.nai),
                format!("{}ねえ", p.nai),
                format!("{}ません", p.masu),
            ];
            if !matches!(class, Class::Godan(_)) {
                // 見せん, しねえ; a godan's ん-negative (払わん) is dialect
                // and collides with the volitional ん of others.
                v.push(format!("{}ん", p.nai));
            }
            v
        }
        Form::Volitional => vec![p.volitional.clone(), format!("{}ましょう", p.masu)],
        Form::Conditional => vec![
            format!("{}ら", p.ta),
            p.ba.clone(),
            format!("{}なら", p.plain),
        ],
        Form::NegativeConditional => vec![
            format!("{}なかったら", p.nai),
            format!("{}ないと", p.nai),
            format!("{}なければ", p.nai),
            format!("{}なきゃ", p.nai),
            format!("{}ないなら", p.nai),
        ],
        Form::TeYaru => {
            let mut v = vec![format!("{}やる", p.te), format!("{}やっから", p.te)];
            // The spoken contractions of てやる: Kansai 晒したる / 晒したろか,
            // Chugoku and Kyushu 晒しちゃる; で-verbs 踏んだる, 踏んじゃる. A bare
            // たろ / だろ is left out: 殴ったろ is also "you hit, didn't you".
            let endings: &[&str] = match p.te.strip_suffix('で') {
                Some(_) => &["だる", "じゃる", "じゃろか", "じゃろう"],
                None => &["たる", "たろか", "たろう", "ちゃる", "ちゃろか", "ちゃろう"],
            };
            let stem = p.te.strip_suffix(['て', 'で']).unwrap_or(&p.te);
            v.extend(endings.iter().map(|e| format!("{stem}{e}")));
            v
        }
        Form::Humble => p
            .causative_te
            .iter()
            .flat_map(|te| HUMBLE_ENDINGS.iter().map(move |e| format!("{te}{e}")))
            .collect(),
        Form::TeOku => {
            // The last て → と, で → ど: 貼っとく, 読んどく, 捨てとく.
            let (stem, to) = match p.te.strip_suffix('で') {
                Some(stem) => (stem, 'ど'),
                None => (p.te.strip_suffix('て').unwrap_or(&p.te), 'と'),
            };
            let mut v: Vec<String> = TE_OKU_ENDINGS
                .iter()
                .map(|e| format!("{stem}{to}{e}"))
                .collect();
            v.push(format!("{}おく", p.te));
            v.push(format!("{}おきます", p.te));
            v.push(format!("{}あげる", p.te));
            v.push(format!("{}あげます", p.te));
            v
        }
    }
}

/// Endings of the contracted 〜とく after と/ど.
const TE_OKU_ENDINGS: &[&str] = &["く", "きます", "いてあげる", "いたる", "いたろ", "いてやる"];

fn parse_class(verb: &str, name: &str) -> Result<Class, String> {
    let last = verb.chars().next_back();
    match name {
        "ichidan" => {
            if last != Some('る') {
                return Err(format!("ichidan verb {verb:?} must end in る"));
            }
            Ok(Class::Ichidan)
        }
        "godan" => GODAN_ROWS
            .iter()
            .find(|(k, _)| Some(*k) == last)
            .map(|(_, r)| Class::Godan(*r))
            .ok_or_else(|| {
                format!("godan verb {verb:?} must end in one of う く ぐ す つ ぬ ぶ む る")
            }),
        "suru" => {
            if !verb.ends_with("する") {
                return Err(format!("suru verb {verb:?} must end in する"));
            }
            Ok(Class::Suru)
        }
        "kuru" => {
            if !(verb.ends_with("来る") || verb.ends_with("くる")) {
                return Err(format!("kuru verb {verb:?} must end in 来る or くる"));
            }
            Ok(Class::Kuru)
        }
        other => Err(format!(
            "unknown verb class {other:?} (expected ichidan, godan, suru or kuru)"
        )),
    }
}

/// One slot `{verb:class}` or `{verb:class:forms}` written out.
fn expand_verb(slot: &str, default_forms: &[Form]) -> Result<Vec<String>, String> {
    let mut fields = slot.splitn(3, ':');
    let verb = fields.next().unwrap_or("").trim();
    let class = fields.next().map(str::trim).ok_or_else(|| {
        format!("verb slot {{{slot}}} needs a class: {{{verb}:ichidan}}, godan, suru or kuru")
    })?;
    if verb.is_empty() {
        return Err(format!("verb slot {{{slot}}} names no verb"));
    }
    let class = parse_class(verb, class)?;
    let forms = match fields.next() {
        Some(list) => Form::parse_list(list.split(','))?,
        None => default_forms.to_vec(),
    };
    let mut out = Vec::new();
    for form in forms {
        for s in conjugate(verb, class, form) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Does `pattern` use template syntax at all?
pub fn is_template(pattern: &str) -> bool {
    pattern.contains(['[', '{'])
}

/// Writes out a pattern template: every alternative and every verb form.
/// A pattern without template syntax comes back as it is.
pub fn expand(pattern: &str, default_forms: &[Form]) -> Result<Vec<String>, String> {
    let mut results = vec![String::new()];
    let mut rest = pattern;
    while !rest.is_empty() {
        let choices: Vec<String> = if let Some(after) = rest.strip_prefix('[') {
            let end = after
                .find(']')
                .ok_or_else(|| format!("unclosed [ in {pattern:?}"))?;
            let inner = &after[..end];
            if inner.contains('[') {
                return Err(format!("brackets cannot nest in {pattern:?}"));
            }
            rest = &after[end + 1..];
            let mut v = Vec::new();
            for alternative in inner.split('|') {
                for s in expand_plain_or_verbs(alternative, default_forms, pattern)? {
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
            v
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in {pattern:?}"))?;
            let slot = &after[..end];
            rest = &after[end + 1..];
            expand_verb(slot, default_forms)?
        } else {
            let end = rest.find(['[', '{', ']', '}', '|']).unwrap_or(rest.len());
            if end == 0 {
                return Err(format!(
                    "unexpected {:?} in {pattern:?} (| belongs inside [...])",
                    &rest[..1]
                ));
            }
            let literal = rest[..end].to_owned();
            rest = &rest[end..];
            vec![literal]
        };
        if results.len() * choices.len() > MAX_EXPANSIONS {
            return Err(format!(
                "{pattern:?} expands to more than {MAX_EXPANSIONS} phrases: {TOO_MANY}"
            ));
        }
        results = results
            .iter()
            .flat_map(|r| choices.iter().map(move |c| format!("{r}{c}")))
            .collect();
    }
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        if !out.contains(&r) {
            out.push(r);
        }
    }
    Ok(out)
}

/// An alternative inside `[...]`: literal text and verb slots.
fn expand_plain_or_verbs(
    alternative: &str,
    default_forms: &[Form],
    pattern: &str,
) -> Result<Vec<String>, String> {
    if alternative.contains(['}', ']']) && !alternative.contains('{') {
        return Err(format!("unbalanced brackets in {pattern:?}"));
    }
    expand(alternative, default_forms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(pattern: &str) -> Vec<String> {
        expand(pattern, DEFAULT_FORMS).unwrap()
    }

    fn forms(pattern: &str, forms: &str) -> Vec<String> {
        expand(pattern, &Form::parse_list(forms.split(',')).unwrap()).unwrap()
    }

    #[test]
    fn plain_patterns_come_back_unchanged() {
        assert_eq!(x("殺すぞ"), ["殺すぞ"]);
        assert_eq!(x("I'll kill you"), ["I'll kill you"]);
        assert!(!is_template("I'll kill you"));
        assert!(is_template("誠意[を|]見せろ"));
    }

    #[test]
    fn alternatives_and_optional_parts() {
        assert_eq!(x("誠意[を|]見せろ"), ["誠意を見せろ", "誠意見せろ"]);
        assert_eq!(
            x("[i'll|i will|gonna] come [down|over] there"),
            [
                "i'll come down there",
                "i'll come over there",
                "i will come down there",
                "i will come over there",
                "gonna come down there",
                "gonna come over there"
            ]
        );
    }

    #[test]
    fn the_demand_forms_of_an_ichidan_verb() {
        let all = x("誠意[を|]{見せる:ichidan}");
        for want in [
            "誠意を見せろ",
            "誠意見せろ",
            "誠意を見せてください",
            "誠意見せてよ",
            "誠意を見せなさい",
            "誠意見せてほしい",
            "誠意を見せていただけ",
            "誠意見せてもらえません",
        ] {
            assert!(all.iter().any(|s| s == want), "{want} not in {all:?}");
        }
        assert!(
            !all.iter().any(|s| s == "誠意を見せた"),
            "past is no demand"
        );
    }

    #[test]
    fn godan_rows_and_their_euphony() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "{謝る:godan}",
                "imperative,te,nasai",
                &["謝れ", "謝って", "謝りなさい"],
            ),
            (
                "{払う:godan}",
                "imperative,te,negative",
                &["払え", "払って", "払わない", "払わねえ", "払いません"],
            ),
            (
                "{書く:godan}",
                "te,volitional",
                &["書いて", "書こう", "書きましょう"],
            ),
            (
                "{行く:godan}",
                "te,past",
                &["行った", "行きました", "行って"],
            ),
            ("{泳ぐ:godan}", "te", &["泳いで"]),
            ("{死ぬ:godan}", "imperative,te", &["死ね", "死んで"]),
            (
                "{呼ぶ:godan}",
                "te,conditional",
                &["呼んで", "呼んだら", "呼べば", "呼ぶなら"],
            ),
            (
                "{切る:godan}",
                "prohibitive",
                &["切るな", "切んな", "切りんさんな", "切りなさんな"],
            ),
            ("{待つ:godan}", "te,imperative", &["待て", "待って"]),
            (
                "{晒す:godan}",
                "te_yaru,plain",
                &[
                    "晒す",
                    "晒します",
                    "晒してやる",
                    "晒してやっから",
                    "晒したる",
                    "晒したろか",
                    "晒したろう",
                    "晒しちゃる",
                    "晒しちゃろか",
                    "晒しちゃろう",
                ],
            ),
            (
                "{踏む:godan}",
                "te_yaru",
                &[
                    "踏んでやる",
                    "踏んでやっから",
                    "踏んだる",
                    "踏んじゃる",
                    "踏んじゃろか",
                    "踏んじゃろう",
                ],
            ),
            (
                "{貼る:godan}",
                "te_oku",
                &[
                    "貼っとく",
                    "貼っときます",
                    "貼っといてあげる",
                    "貼っといたる",
                    "貼っといたろ",
                    "貼っといてやる",
                    "貼っておく",
                    "貼っておきます",
                    "貼ってあげる",
                    "貼ってあげます",
                ],
            ),
            (
                "{捨てる:ichidan}",
                "te_oku",
                &[
                    "捨てとく",
                    "捨てときます",
                    "捨てといてあげる",
                    "捨てといたる",
                    "捨てといたろ",
                    "捨てといてやる",
                    "捨てておく",
                    "捨てておきます",
                    "捨ててあげる",
                    "捨ててあげます",
                ],
            ),
            (
                "{読む:godan}",
                "te_oku",
                &[
                    "読んどく",
                    "読んどきます",
                    "読んどいてあげる",
                    "読んどいたる",
                    "読んどいたろ",
                    "読んどいてやる",
                    "読んでおく",
                    "読んでおきます",
                    "読んであげる",
                    "読んであげます",
                ],
            ),
        ];
        for (pattern, list, want) in cases {
            let got = forms(pattern, list);
            assert_eq!(&got, want, "{pattern} {list}");
        }
    }

    #[test]
    fn suru_and_kuru() {
        assert_eq!(
            forms("{謝罪する:suru}", "imperative,prohibitive"),
            [
                "謝罪しろ",
                "謝罪せよ",
                "謝罪するな",
                "謝罪すんな",
                "謝罪しんさんな",
                "謝罪しなさんな"
            ]
        );
        assert_eq!(forms("{来る:kuru}", "imperative,te"), ["来い", "来て"]);
        assert_eq!(
            forms("{くる:kuru}", "imperative,te,negative"),
            ["こい", "きて", "こない", "こねえ", "きません", "こん"]
        );
        assert_eq!(forms("{謝りに来る:kuru}", "te"), ["謝りに来て"]);
    }

    #[test]
    fn the_humble_causative_announces_the_speakers_act() {
        assert_eq!(
            forms("{公開する:suru}", "humble"),
            [
                "公開させていただきます",
                "公開させていただく",
                "公開させていただこう",
                "公開させてもらいます",
                "公開させてもらう",
                "公開させてもらおう",
                "公開さしていただきます",
                "公開さしていただく",
                "公開さしていただこう",
                "公開さしてもらいます",
                "公開さしてもらう",
                "公開さしてもらおう",
            ]
        );
        let godan = forms("{書く:godan}", "humble");
        assert!(
            godan.iter().any(|s| s == "書かせていただきます"),
            "{godan:?}"
        );
        assert!(godan.iter().any(|s| s == "書かしてもらう"), "{godan:?}");
        let ichidan = forms("{載せる:ichidan}", "humble");
        assert!(
            ichidan.iter().any(|s| s == "載せさせていただこう"),
            "{ichidan:?}"
        );
        assert_eq!(forms("{来る:kuru}", "humble")[0], "来させていただきます");
        // The speaker's intent says it too; asking leave does not.
        let intent = forms("{晒す:godan}", "intent");
        assert!(intent.iter().any(|s| s == "晒させていただきます"));
        assert!(!intent.iter().any(|s| s.ends_with("いただけますか")));
    }

    #[test]
    fn prohibit_preset_covers_dont_hang_up_in_every_register() {
        let all = forms("[電話|][を|]{切る:godan}", "prohibit");
        for want in [
            "電話を切るな",
            "切んな",
            "切りんさんな",
            "電話切らないで",
            "切ったら",
            "電話を切れば",
        ] {
            assert!(all.iter().any(|s| s == want), "{want} not in {all:?}");
        }
    }

    #[test]
    fn regional_orders_are_demands_too() {
        assert_eq!(
            forms("{払う:godan}", "regional"),
            [
                "払いやあ",
                "払いんさい",
                "払いんしゃい",
                "払ってちょう",
                "払ってけろ",
                "払ってけれ",
                "払ってつかあさい",
                "払ってえな",
                "払わんかい",
            ]
        );
        let suru = forms("{謝罪する:suru}", "regional");
        assert!(suru.iter().any(|s| s == "謝罪せんかい"), "{suru:?}");
        assert!(suru.iter().any(|s| s == "謝罪しんさい"), "{suru:?}");
        let demand = forms("{見せる:ichidan}", "demand");
        assert!(demand.iter().any(|s| s == "見せてけろ"), "{demand:?}");
    }

    #[test]
    fn honorific_requests_and_the_honorific_dont() {
        assert_eq!(
            forms("{払う:godan}", "honorific"),
            [
                "お払いください",
                "お払いいただけ",
                "お払いいただきたい",
                "お払い願え"
            ]
        );
        assert_eq!(
            forms("電話を{切る:godan}", "honorific_negative_request"),
            ["電話をお切りにならないで"]
        );
        let suru = forms("{説明する:suru}", "honorific");
        assert!(suru.iter().any(|s| s == "ご説明いただけ"), "{suru:?}");
        assert!(forms("{来る:kuru}", "honorific").is_empty());
        let prohibit = forms("{切る:godan}", "prohibit");
        assert!(prohibit.iter().any(|s| s == "お切りにならないで"));
    }

    #[test]
    fn a_slot_may_name_its_own_forms() {
        assert_eq!(
            expand("{帰る:godan:imperative}", DEFAULT_FORMS).unwrap(),
            ["帰れ"]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases: &[(&str, &str)] = &[
            ("誠意[を|見せろ", "unclosed ["),
            ("{見せる}", "needs a class"),
            ("{見せる:v1}", "unknown verb class"),
            ("{見せ:ichidan}", "must end in る"),
            ("{謝罪:suru}", "must end in する"),
            ("{見せる:ichidan:shout}", "unknown verb form \"shout\""),
            ("a|b", "| belongs inside"),
            ("[a[b]]", "cannot nest"),
        ];
        for (pattern, want) in cases {
            let err = expand(pattern, DEFAULT_FORMS).unwrap_err();
            assert!(err.contains(want), "{pattern}: {err}");
        }
        let huge = "[a|b|c|d|e|f|g|h|i|j][a|b|c|d|e|f|g|h|i|j][a|b|c|d|e]";
        assert!(expand(huge, DEFAULT_FORMS)
            .unwrap_err()
            .contains("more than"));
    }

    proptest::proptest! {
        /// Templates come from files a reload may bring at any time: any
        /// text is an expansion or an error, never a panic, and an
        /// expansion never exceeds the limit or holds template syntax.
        #[test]
        fn any_text_expands_or_is_refused(text in "[ab見せる切くす来{}\\[\\]|:,]{0,40}") {
            if let Ok(phrases) = expand(&text, DEFAULT_FORMS) {
                proptest::prop_assert!(phrases.len() <= MAX_EXPANSIONS);
                for p in phrases {
                    proptest::prop_assert!(!p.contains(['[', ']', '{', '}', '|']), "{p}");
                }
            }
        }
    }
}
