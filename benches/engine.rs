//! Engine throughput on a mixed Japanese/English stream of ~100-byte
//! fragments, beside a raw Aho-Corasick scan of the same text.
//!
//! Run: `cargo bench --bench engine -- --warm-up-time 1 --measurement-time 5`
//! (figures and how to read them: BENCHMARKS.md).
//!
//! Groups, all with `Throughput::Bytes` = bytes of the *original* fragments:
//! - `raw_dfa_find_iter`: `AhoCorasick` (DFA, leftmost-longest) built from
//!   every pattern of the shipped lexicons, `find_iter` over each fragment's
//!   text normalised beforehand (outside the timing): the floor.
//! - `normalize_only`: `normalize_into` with a reused buffer.
//! - `engine_scan`: `Engine::scan` per fragment (normalise, match,
//!   boundaries, exclusions, frames, offsets, carry), reused `Scratch`.
//! - `naive_nfkc_lowercase_then_scan`: per fragment
//!   `s.nfkc().collect::<String>().to_lowercase()` then the raw scan: the
//!   allocation-per-fragment reference.
//!
//! The input is built here, deterministically (a small LCG), from template
//! sentences: no external files, the same bytes on every run.

mod common;
use common::{Lcg, ABUSE_EN, ABUSE_JA};

use std::hint::black_box;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use callguard::category::Speaker;
use callguard::engine::{Carry, Engine, Hit, Scratch};
use callguard::lexicon::Lexicon;
use callguard::text::normalize::normalize_text_with;
use callguard::text::{normalize, normalize_into, spoken, Normalized};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use unicode_normalization::UnicodeNormalization;

/// Fragments in the stream (~100 bytes each: about 0.5 MB).
const FRAGMENTS: usize = 5_000;
/// One fragment in this many carries an abusive phrase (~1%).
const ABUSE_EVERY: usize = 100;
/// Fragments are filled with sentences until at least this many bytes.
const TARGET_BYTES: usize = 90;

const EN: &[&str] = &[
    "Thank you for calling customer support, my name is Emma.",
    "How can I help you today?",
    "Could I have your order number, please?",
    "The order number is {n}.",
    "Let me check that for you, one moment please.",
    "I'm sorry for the inconvenience.",
    "I ordered a phone case last week and it still hasn't arrived.",
    "The tracking page says it's out for delivery.",
    "I was charged twice on my card for the same order.",
    "The amount was ${n}.{d}{d}, not what I expected.",
    "Can you tell me when the refund will be processed?",
    "Refunds usually take five to seven business days.",
    "I'd like to change my delivery address.",
    "Is the new address {n} Maple Street, apartment {d}?",
    "Yes, that's right.",
    "No, it's the other one.",
    "Okay, I see, thanks.",
    "Could you spell your last name for me?",
    "It's S-M-I-T-H.",
    "My account email is john.doe{d}{d}@example.com.",
    "I can't log in to the app since the last update.",
    "Have you tried resetting your password?",
    "I'll send a verification code by SMS to the number ending in {d}{d}{d}{d}.",
    "The code didn't arrive, can you send it again?",
    "Please hold while I transfer you to billing.",
    "Your call is important to us.",
    "I've been waiting on hold for twenty minutes.",
    "I understand, and I apologise for the wait.",
    "The router keeps disconnecting every evening.",
    "Could you unplug it for thirty seconds and plug it back in?",
    "The light is blinking orange now.",
    "That means it's updating the firmware.",
    "My contract ends on the {d}th of March.",
    "I'd like to cancel my subscription.",
    "Before you cancel, may I offer you a discount?",
    "What kind of discount are we talking about?",
    "Twenty percent off for the next six months.",
    "Hmm, let me think about it.",
    "Um, actually, can you just cancel it?",
    "Sure, I've cancelled it, you'll get a confirmation email.",
    "The invoice shows a late fee of ${n}.",
    "I paid on time, I have the receipt.",
    "Could you send me a copy of the receipt?",
    "I'll escalate this to my supervisor.",
    "When will someone call me back?",
    "Within two business days, usually sooner.",
    "Is there anything else I can help you with?",
    "No, that's all, thank you very much.",
    "Have a nice day!",
    "The washing machine makes a loud noise when spinning.",
    "Is it still under warranty?",
    "I bought it in {y}, so I think so.",
    "We can send a technician on Tuesday between 9 and 12.",
    "Tuesday doesn't work for me, what about Thursday?",
    "Thursday afternoon is available.",
    "The parcel was left at the wrong door.",
    "My neighbour at number {d}{d} has it, I think.",
    "The screen is cracked, it arrived like that.",
    "Please take a photo and upload it on the returns page.",
    "I don't have a printer for the return label.",
    "You can show the QR code at the post office instead.",
    "The discount code SAVE{d}{d} doesn't work at checkout.",
    "That code expired yesterday, I'm afraid.",
    "Can you extend it for me?",
    "I can apply a one-time credit of ${n} instead.",
    "That would be great, thanks so much.",
    "Sorry, the line is a bit noisy.",
    "Could you repeat that, please?",
    "I said the serial number is XJ{n}.",
    "Got it, thank you.",
    "Your ticket number is CS-{n}-{d}{d}.",
    "I'm calling about ticket number {n}.",
    "The previous agent said it was fixed, but it isn't.",
    "I see the notes here, let me look into it again.",
    "The app crashes whenever I open the settings page.",
    "Which version of the app are you using?",
    "Version {d}.{d}.{d}, I think.",
    "We released a fix for that this morning.",
    "Okay, I'll update and try again.",
    "Oh wow, that's really frustrating, honestly.",
    "This is the third time I'm calling this week.",
    "I'm really not happy with the service lately.",
    "I totally understand your frustration.",
    "Let me see what I can do for you right now.",
    "My card was declined but the money left my account.",
    "The bank shows a pending charge of ${n}.{d}{d}.",
    "Pending charges drop off within a few days.",
    "Can I pay by bank transfer instead?",
    "Yes, the details are on the invoice, page two.",
    "Uh, where exactly on page two?",
    "At the bottom, under payment information.",
    "I'd like to upgrade to the premium plan.",
    "The premium plan is ${n} per month with unlimited data.",
    "Does it include international roaming?",
    "Roaming is included in {d}{d} countries.",
    "Great, please go ahead and upgrade it.",
    "Done, the change takes effect from tomorrow.",
    "Is my personal data deleted after I close the account?",
    "We keep billing records for seven years, as required by law.",
    "Alright, thank you for explaining.",
];

const JA: &[&str] = &[
    "お電話ありがとうございます、カスタマーサポートの田中でございます。",
    "本日はどのようなご用件でしょうか。",
    "ご注文番号をお伺いしてもよろしいでしょうか。",
    "注文番号は{n}です。",
    "確認いたしますので少々お待ちください。",
    "大変お待たせいたしました。",
    "ご不便をおかけして申し訳ございません。",
    "先週注文した商品がまだ届かないんですが。",
    "配送状況を確認いたします。",
    "お届け予定日は{d}月{d}日となっております。",
    "クレジットカードで二重に請求されているようなんです。",
    "請求額は{n}円でした。",
    "返金はいつ頃になりますか。",
    "通常五営業日ほどで返金されます。",
    "お届け先の住所を変更したいのですが。",
    "新しいご住所をお願いいたします。",
    "東京都新宿区西新宿{d}丁目{d}番{d}号です。",
    "はい、そうです。",
    "いえ、違います。",
    "えーと、ちょっと待ってください。",
    "あのー、すみません、もう一度お願いします。",
    "お名前をフルネームでお願いいたします。",
    "ヤマダタロウです。",
    "ﾔﾏﾀﾞﾀﾛｳ様でお間違いないでしょうか。",
    "アプリにログインできなくなりました。",
    "パスワードの再設定はお試しになりましたか。",
    "ＳＭＳで認証コードをお送りします。",
    "コードが届かないんですけど。",
    "再送いたしますので少々お待ちくださいませ。",
    "担当部署におつなぎいたします。",
    "ずっと保留で待たされてるんですよ。",
    "お待たせしてしまい申し訳ございません。",
    "ルーターが夜になると切れてしまうんです。",
    "一度電源を抜いて三十秒ほどお待ちください。",
    "ランプがオレンジ色に点滅しています。",
    "ファームウェアの更新中ですので、そのままお待ちください。",
    "契約を解約したいんですが。",
    "解約の前に割引プランのご案内をしてもよろしいですか。",
    "どんな割引ですか。",
    "半年間、月額料金が二割引になります。",
    "うーん、ちょっと考えます。",
    "やっぱり解約でお願いします。",
    "かしこまりました、解約手続きを承りました。",
    "確認メールをお送りいたしますのでご確認ください。",
    "請求書に延滞料金が{n}円とあるんですが。",
    "期日までに支払ったはずなんですけど。",
    "領収書の控えはお手元にございますか。",
    "上の者に確認して折り返しお電話いたします。",
    "折り返しはいつ頃になりますか。",
    "本日中にはご連絡いたします。",
    "ほかに何かご不明な点はございますか。",
    "いえ、大丈夫です、ありがとうございました。",
    "洗濯機の脱水のときに大きな音がするんです。",
    "保証期間内でしょうか。",
    "{y}年に購入しました。",
    "火曜日の午前中に修理担当が伺えます。",
    "火曜日は都合が悪いので、木曜日はどうですか。",
    "木曜日の午後でしたら空きがございます。",
    "荷物が隣の家に届いてしまったみたいで。",
    "画面が割れた状態で届きました。",
    "お手数ですが写真を撮って返品ページからアップロードしてください。",
    "プリンターがないので返品ラベルが印刷できません。",
    "郵便局でＱＲコードをご提示いただければ大丈夫です。",
    "クーポンコードが使えないんですけど。",
    "そのクーポンは昨日で期限が切れております。",
    "代わりに{n}円分のポイントをお付けいたします。",
    "それは助かります、ありがとうございます。",
    "お電話が少し遠いようです。",
    "恐れ入りますが、もう一度おっしゃっていただけますか。",
    "製造番号はＸＪ{n}です。",
    "受付番号は{n}番でございます。",
    "前回の担当の方は直ったと言っていたんですけど。",
    "履歴を拝見して、もう一度お調べいたします。",
    "設定画面を開くとアプリが落ちるんです。",
    "アプリのバージョンはおわかりになりますか。",
    "バージョン{d}.{d}.{d}だと思います。",
    "今朝その不具合を修正した更新を配信いたしました。",
    "じゃあアップデートしてみます。",
    "今週電話するのこれで三回目なんですよ。",
    "最近のサービスには正直がっかりしています。",
    "お気持ちはよくわかります。",
    "すぐに対応できるよう確認いたします。",
    "カードが使えなかったのに口座からは引き落とされてます。",
    "銀行振込でのお支払いも可能でしょうか。",
    "はい、請求書の二ページ目に振込先がございます。",
    "プレミアムプランに変更したいです。",
    "プレミアムプランは月額{n}円でデータ無制限です。",
    "海外ローミングも含まれますか。",
    "{d}{d}の国と地域でご利用いただけます。",
    "では変更をお願いします。",
    "明日から新しいプランが適用されます。",
    "退会したら個人情報は削除されますか。",
    "法令により請求情報は七年間保管いたします。",
    "ご説明ありがとうございました。",
    "ｶｽﾀﾏｰｾﾝﾀｰの営業時間は何時までですか。",
    "平日は午前９時から午後６時まででございます。",
    "ポイントカードの番号は１２３４－{n}です。",
    "ｷｬﾝｾﾙ料はかかりますか。",
    "スマホの機種変更をしたらデータが消えました。",
    "ｉＰｈｏｎｅからアンドロイドに乗り換えたんです。",
];

/// Fills `{n}` (a number), `{d}` (a digit) and `{y}` (a year); Japanese
/// numbers are written full-width one time in three.
fn fill(template: &str, rng: &mut Lcg, japanese: bool, out: &mut String) {
    let fullwidth = japanese && rng.below(3) == 0;
    let mut digits = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("closed placeholder");
        digits.clear();
        match &rest[open + 1..close] {
            "n" => digits.push_str(&(100 + rng.below(99_900)).to_string()),
            "d" => digits.push_str(&(1 + rng.below(9)).to_string()),
            "y" => digits.push_str(&(2015 + rng.below(11)).to_string()),
            other => panic!("unknown placeholder {other}"),
        }
        for c in digits.chars() {
            if fullwidth {
                out.push(char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap());
            } else {
                out.push(c);
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
}

struct Fragment {
    text: String,
    language: &'static str,
}

/// The stream and how many fragments carry an abusive phrase.
fn stream() -> (Vec<Fragment>, usize) {
    let mut rng = Lcg(0x00C0_FFEE);
    let mut fragments = Vec::with_capacity(FRAGMENTS);
    let mut abusive = 0;
    for i in 0..FRAGMENTS {
        // About 60% Japanese, 40% English.
        let japanese = rng.below(5) < 3;
        let (pool, abuse, language) = if japanese {
            (JA, ABUSE_JA, "ja-JP")
        } else {
            (EN, ABUSE_EN, "en-US")
        };
        let mut text = String::new();
        if i % ABUSE_EVERY == ABUSE_EVERY / 2 {
            text.push_str(abuse[rng.below(abuse.len())]);
            abusive += 1;
        }
        while text.len() < TARGET_BYTES {
            if !text.is_empty() && !japanese {
                text.push(' ');
            }
            fill(pool[rng.below(pool.len())], &mut rng, japanese, &mut text);
        }
        fragments.push(Fragment { text, language });
    }
    (fragments, abusive)
}

/// Every pattern, exclusion, proximity phrase and frame pattern of the
/// shipped lexicons (templates written out), normalised, English ones with
/// their spoken spellings (text::spoken): what the engine's automata hold.
fn lexicon_patterns(lexicon: &Lexicon) -> Vec<String> {
    let texts = lexicon
        .terms
        .iter()
        .flat_map(|t| {
            let near = t
                .near
                .iter()
                .flat_map(|n| n.parts.iter().flatten().chain(&n.not_near));
            t.patterns
                .iter()
                .chain(&t.exclude)
                .chain(near)
                .map(move |p| (&*t.language, p))
        })
        .chain(
            lexicon
                .frames
                .iter()
                .flat_map(|f| f.patterns.iter().map(|p| (&*f.language, p))),
        )
        .flat_map(|(language, p)| {
            let folded = normalize(&p.text).as_str().to_owned();
            let variants = spoken::variants_in(language, &folded);
            std::iter::once(folded).chain(variants)
        });
    texts.filter(|t| !t.is_empty()).collect()
}

fn count_matches(ac: &AhoCorasick, text: &str) -> usize {
    ac.find_iter(text).count()
}

/// Scans the whole stream as one customer's call: fragments in order, each
/// final, the carry passed on (the engine starts afresh when the language
/// changes). Returns the number of fragments with at least one hit.
fn scan_stream(engine: &Engine, fragments: &[Fragment], scratch: &mut Scratch) -> usize {
    scan_stream_with(engine, fragments, scratch, |_| {})
}

fn scan_stream_with(
    engine: &Engine,
    fragments: &[Fragment],
    scratch: &mut Scratch,
    mut each: impl FnMut(&[Hit]),
) -> usize {
    let mut carry: Option<Carry> = None;
    let mut with_hits = 0;
    for f in fragments {
        let scan = engine.scan(
            &f.text,
            Some(f.language),
            Speaker::Customer,
            carry.as_ref(),
            scratch,
        );
        with_hits += usize::from(!scan.hits.is_empty());
        each(&scan.hits);
        carry = Some(scan.carry);
    }
    with_hits
}

fn naive_scan(ac: &AhoCorasick, fragments: &[Fragment]) -> usize {
    fragments
        .iter()
        .map(|f| {
            let folded = f.text.nfkc().collect::<String>().to_lowercase();
            count_matches(ac, &folded)
        })
        .sum()
}

fn benches(c: &mut Criterion) {
    let lexicon = Lexicon::embedded().expect("embedded lexicons are valid");
    let patterns = lexicon_patterns(&lexicon);
    let ac = AhoCorasick::builder()
        .kind(Some(AhoCorasickKind::DFA))
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .expect("DFA builds");
    let engine = Engine::build(lexicon).expect("engine builds");

    let (fragments, abusive) = stream();
    let bytes: usize = fragments.iter().map(|f| f.text.len()).sum();
    let normalized: Vec<String> = fragments
        .iter()
        .map(|f| normalize(&f.text).as_str().to_owned())
        .collect();
    let lexicon_digest = patterns.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, p| {
        p.bytes()
            .chain([0])
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    });
    eprintln!(
        "stream: {} fragments, {} bytes (mean {:.1} B/fragment), {} abusive; \
         {} patterns (digest {lexicon_digest:016x}), raw DFA {} bytes of heap",
        fragments.len(),
        bytes,
        bytes as f64 / fragments.len() as f64,
        abusive,
        patterns.len(),
        ac.memory_usage(),
    );

    // Each group checks its own answer once before timing.
    let mut scratch = Scratch::default();
    for phrase in ABUSE_EN.iter().chain(ABUSE_JA) {
        let language = if phrase.is_ascii() { "en" } else { "ja" };
        let scan = engine.scan(
            phrase,
            Some(language),
            Speaker::Customer,
            None,
            &mut scratch,
        );
        assert!(!scan.hits.is_empty(), "engine misses {phrase:?}");
    }
    let raw_matches: usize = normalized.iter().map(|t| count_matches(&ac, t)).sum();
    assert!(raw_matches > 0, "raw scan found nothing");
    let mut folded = Normalized::default();
    let folded_bytes: usize = fragments
        .iter()
        .map(|f| {
            normalize_into(&f.text, &mut folded);
            folded.as_str().len()
        })
        .sum();
    assert_eq!(
        folded_bytes,
        normalized.iter().map(String::len).sum::<usize>(),
        "normalize_into with a reused buffer differs from normalize"
    );
    assert!(folded_bytes > bytes / 2, "normaliser dropped too much");
    // A digest of every hit, to compare runs before and after a change.
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    let with_hits = scan_stream_with(&engine, &fragments, &mut scratch, |hits| {
        let line = format!("{hits:?}");
        for b in line.bytes().chain([b'\n']) {
            digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    });
    assert!(
        with_hits >= abusive,
        "engine found {with_hits} fragments with hits, {abusive} were inserted"
    );
    let naive_matches = naive_scan(&ac, &fragments);
    assert!(naive_matches > 0, "naive scan found nothing");
    eprintln!(
        "check: raw {raw_matches} matches, engine {with_hits} fragments with hits \
         (digest {digest:016x}), naive {naive_matches} matches, normalised {folded_bytes} bytes"
    );

    let mut group = c.benchmark_group("raw_dfa_find_iter");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("stream", |b| {
        b.iter(|| {
            normalized
                .iter()
                .map(|t| count_matches(&ac, black_box(t)))
                .sum::<usize>()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("normalize_only");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("stream", |b| {
        b.iter(|| {
            fragments
                .iter()
                .map(|f| {
                    normalize_into(black_box(&f.text), &mut folded);
                    folded.as_str().len()
                })
                .sum::<usize>()
        })
    });
    // What the engine runs: the same folding without the offset map (built
    // again only for a fragment with a hit).
    group.bench_function("text_only", |b| {
        b.iter(|| {
            fragments
                .iter()
                .map(|f| {
                    normalize_text_with(black_box(&f.text), &mut folded, &mut ());
                    folded.as_str().len()
                })
                .sum::<usize>()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("engine_scan");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("stream", |b| {
        b.iter(|| scan_stream(&engine, black_box(&fragments), &mut scratch))
    });
    group.finish();

    let mut group = c.benchmark_group("naive_nfkc_lowercase_then_scan");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("stream", |b| {
        b.iter(|| naive_scan(&ac, black_box(&fragments)))
    });
    group.finish();
}

criterion_group!(engine_benches, benches);
criterion_main!(engine_benches);
