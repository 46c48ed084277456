//! What the calls say: built-in utterance templates (Japanese and
//! English, agent and customer, some abusive), split into ASR-like
//! fragments, and the seedable generator that picks them.

use crate::grpc::pb;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Lang {
    Ja,
    En,
}

impl Lang {
    pub(super) fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    fn separator(self) -> &'static str {
        match self {
            Lang::Ja => "",
            Lang::En => " ",
        }
    }
}

/// An utterance, in the pieces an ASR hypothesis grows by; `abusive` is the
/// index of the piece carrying the abusive words.
struct Template {
    parts: &'static [&'static str],
    abusive: Option<usize>,
}

const fn plain(parts: &'static [&'static str]) -> Template {
    Template {
        parts,
        abusive: None,
    }
}

const fn abusive(parts: &'static [&'static str], at: usize) -> Template {
    Template {
        parts,
        abusive: Some(at),
    }
}

const JA_CUSTOMER: &[Template] = &[
    plain(&[
        "すみません、",
        "先月の請求について",
        "確認したいことが",
        "あるんですが",
    ]),
    plain(&[
        "注文した商品が",
        "まだ届いていなくて",
        "どうなっているのか",
        "教えてください",
    ]),
    plain(&[
        "昨日も電話したんですけど",
        "折り返しの連絡が",
        "なかったんです",
    ]),
    plain(&["ログインしようとすると", "エラーが出て", "先に進めません"]),
    plain(&["契約内容を", "変更したいので", "手続きを教えてもらえますか"]),
    plain(&["はい、", "そうです、", "その番号で合っています"]),
];
const JA_AGENT: &[Template] = &[
    plain(&["お電話ありがとうございます、", "担当の佐藤でございます"]),
    plain(&["ご不便をおかけして", "大変申し訳ございません"]),
    plain(&["確認いたしますので", "少々お待ちいただけますか"]),
    plain(&["お客様の", "ご登録番号を", "お伺いしてもよろしいでしょうか"]),
    plain(&["お待たせいたしました、", "ただいま確認が取れました"]),
];
const JA_ABUSIVE: &[Template] = &[
    abusive(&["いい加減にしろよ、", "ぶっ殺すぞ"], 1),
    abusive(&["ふざけるな、", "お前", "ぶっ殺すぞ"], 2),
    abusive(&["今からそっちに行って", "ぶっ殺してやる"], 1),
];
const EN_CUSTOMER: &[Template] = &[
    plain(&[
        "Hi, I'm calling about",
        "my last bill,",
        "there's a charge I don't recognise",
    ]),
    plain(&[
        "I ordered a laptop",
        "two weeks ago",
        "and it still hasn't arrived",
    ]),
    plain(&["I already called yesterday", "and nobody called me back"]),
    plain(&["the app keeps showing an error", "when I try to log in"]),
    plain(&["yes,", "that's right,", "the number ends in four two"]),
];
const EN_AGENT: &[Template] = &[
    plain(&[
        "Thank you for calling,",
        "my name is Alex,",
        "how can I help you today?",
    ]),
    plain(&[
        "I'm sorry for the inconvenience,",
        "let me check that for you",
    ]),
    plain(&["Could you confirm", "the account number", "for me please?"]),
    plain(&["Thanks for waiting,", "I can see the order now"]),
];
const EN_ABUSIVE: &[Template] = &[
    abusive(
        &[
            "Listen to me,",
            "I will kill you",
            "if this isn't fixed today",
        ],
        1,
    ),
    abusive(&["I'm telling you,", "I will kill you"], 1),
];

/// The utterance being spoken.
struct Current {
    template: &'static Template,
    speaker: pb::Speaker,
    id: String,
    /// Interim fragments before the final (2 to 4).
    interims: usize,
    /// Fragments sent so far.
    sent: usize,
    start_ms: u64,
}

/// A call's conversation, one fragment at a time.
pub(super) struct Script {
    language: Lang,
    abusive_share: f64,
    pub(super) rng: Rng,
    utterances: u64,
    current: Option<Current>,
}

impl Script {
    pub(super) fn new(language: Lang, abusive_share: f64, rng: Rng) -> Script {
        Script {
            language,
            abusive_share,
            rng,
            utterances: 0,
            current: None,
        }
    }

    fn begin(&mut self, now_ms: u64) -> Current {
        let (customer, agent, abuse) = match self.language {
            Lang::Ja => (JA_CUSTOMER, JA_AGENT, JA_ABUSIVE),
            Lang::En => (EN_CUSTOMER, EN_AGENT, EN_ABUSIVE),
        };
        let (list, speaker) = if self.rng.chance(self.abusive_share) {
            (abuse, pb::Speaker::Customer)
        } else if self.rng.chance(0.5) {
            (customer, pb::Speaker::Customer)
        } else {
            (agent, pb::Speaker::Agent)
        };
        self.utterances += 1;
        Current {
            template: &list[self.rng.below(list.len())],
            speaker,
            id: format!("u{}", self.utterances),
            interims: 2 + self.rng.below(3),
            sent: 0,
            start_ms: now_ms,
        }
    }

    /// The next fragment, and whether it is the first to carry the words of
    /// an abusive utterance.
    pub(super) fn next(&mut self, call_id: &str, seq: u64, now_ms: u64) -> (pb::Fragment, bool) {
        let mut current = match self.current.take() {
            Some(c) => c,
            None => self.begin(now_ms),
        };
        let parts = current.template.parts;
        let shown_before = shown(parts.len(), current.interims, current.sent);
        current.sent += 1;
        let is_final = current.sent > current.interims;
        let shown_now = shown(parts.len(), current.interims, current.sent);
        let abusive_now = current
            .template
            .abusive
            .is_some_and(|at| shown_before <= at && at < shown_now);
        let fragment = pb::Fragment {
            call_id: call_id.to_owned(),
            seq,
            speaker: current.speaker as i32,
            text: parts[..shown_now].join(self.language.separator()),
            is_final,
            utterance_id: current.id.clone(),
            start_ms: current.start_ms,
            end_ms: now_ms.max(current.start_ms),
            language: String::new(), // the call's
            loudness_dbfs: None,
        };
        if !is_final {
            self.current = Some(current);
        }
        (fragment, abusive_now)
    }
}

/// Parts shown by the `sent`-th fragment of an utterance of `parts` pieces
/// with `interims` interim fragments (the final shows them all).
fn shown(parts: usize, interims: usize, sent: usize) -> usize {
    if sent == 0 {
        0
    } else if sent > interims {
        parts
    } else {
        (sent * parts).div_ceil(interims + 1).clamp(1, parts)
    }
}

/// SplitMix64: small, seedable, good enough for traffic shapes.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utterances_grow_to_a_final_and_flag_the_abusive_fragment_once() {
        let mut script = Script::new(Lang::Ja, 1.0, Rng::new(7));
        let mut flagged = 0;
        let mut texts = Vec::new();
        for seq in 1..=10 {
            let (f, abusive_now) = script.next("c", seq, seq * 300);
            flagged += usize::from(abusive_now);
            texts.push(f.text.clone());
            if f.is_final {
                assert!(f.text.contains("殺"), "{}", f.text);
                assert!((3..=5).contains(&seq), "2 to 4 interims, then the final");
                break;
            }
        }
        assert_eq!(flagged, 1, "{texts:?}");
        for pair in texts.windows(2) {
            assert!(pair[1].starts_with(pair[0].as_str()), "{pair:?}");
        }
    }
}
