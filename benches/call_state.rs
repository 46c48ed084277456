//! Call-state update cost: `CallTable::apply` of transcript fragments over
//! many concurrent calls, beside the least any per-call state update costs.
//!
//! Run: `cargo bench --bench call_state -- --warm-up-time 1 --measurement-time 3`
//! (figures and how to read them: BENCHMARKS.md).
//!
//! Group `call_state`, with `Throughput::Elements` = fragment events:
//! - `table_apply_fragment`: `CallTable::apply` of every fragment event of
//!   the stream, in order, on a table where the calls were started
//!   (outside the timing). That is validation, routing, the engine scan of
//!   customer interims and of every final, the call's rules, the alerts
//!   and the snapshot `apply` returns.
//! - `noop_update`: the same loop over the same events, doing only a
//!   `HashMap` lookup of the call by its id and a counter increment: the
//!   floor of any per-call state update.
//!
//! The input is built here, deterministically (a small LCG), from template
//! sentences: no external files, the same events on every run. `CALLS` calls
//! (about 60% Japanese, 40% English) each have `UTTERANCES` utterances,
//! customer and agent in turn; each utterance is `INTERIMS` interim results
//! (prefixes of the final text) and one final. The calls are interleaved:
//! each round takes the next event of every call, in a shuffled order. About
//! one customer utterance in `ABUSE_EVERY` starts with an abusive phrase.

mod common;
use common::{Lcg, ABUSE_EN, ABUSE_JA};

use std::collections::HashMap;
use std::hint::black_box;

use callguard::call::{Applied, CallTable};
use callguard::category::Speaker;
use callguard::engine::{Engine, Scratch};
use callguard::event::{CallStart, Event, Fragment, DEFAULT_MAX_TEXT_BYTES};
use callguard::lexicon::Lexicon;
use callguard::policy::Policy;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// Concurrent calls.
const CALLS: usize = 1_000;
/// Utterances per call, customer first, then agent, in turn.
const UTTERANCES: usize = 4;
/// Interim results before each final.
const INTERIMS: usize = 2;
/// About one customer utterance in this many starts with an abusive phrase
/// (so about 1% of all utterances).
const ABUSE_EVERY: usize = 50;
/// An utterance is filled with sentences until at least this many bytes.
const TARGET_BYTES: usize = 60;

const CUSTOMER_EN: &[&str] = &[
    "I ordered a phone case last week and it still hasn't arrived.",
    "The tracking page says it's out for delivery.",
    "I was charged twice on my card for the same order.",
    "The amount was ${n}.{d}{d}, not what I expected.",
    "The order number is {n}.",
    "Um, actually, can you just cancel it?",
    "I paid on time, I have the receipt.",
    "When will someone call me back?",
    "No, that's all, thank you very much.",
    "The washing machine makes a loud noise when spinning.",
    "I bought it in {y}, so I think so.",
    "Tuesday doesn't work for me, what about Thursday?",
    "My neighbour at number {d}{d} has it, I think.",
    "The screen is cracked, it arrived like that.",
    "The discount code SAVE{d}{d} doesn't work at checkout.",
    "I'm calling about ticket number {n}.",
    "The previous agent said it was fixed, but it isn't.",
    "The app crashes whenever I open the settings page.",
    "This is the third time I'm calling this week.",
    "I'm really not happy with the service lately.",
    "My card was declined but the money left my account.",
    "I'd like to upgrade to the premium plan.",
];

const AGENT_EN: &[&str] = &[
    "Thank you for calling customer support, my name is Emma.",
    "How can I help you today?",
    "Could I have your order number, please?",
    "Let me check that for you, one moment please.",
    "I'm sorry for the inconvenience.",
    "Sure, I've cancelled it, you'll get a confirmation email.",
    "Could you send me a copy of the receipt?",
    "Within two business days, usually sooner.",
    "Is there anything else I can help you with?",
    "We can send a technician on Tuesday between 9 and 12.",
    "Please take a photo and upload it on the returns page.",
    "That code expired yesterday, I'm afraid.",
    "I can apply a one-time credit of ${n} instead.",
    "Your ticket number is CS-{n}-{d}{d}.",
    "I see the notes here, let me look into it again.",
    "We released a fix for that this morning.",
    "I totally understand your frustration.",
    "Pending charges drop off within a few days.",
];

const CUSTOMER_JA: &[&str] = &[
    "先週注文した商品がまだ届かないんですが。",
    "クレジットカードで二重に請求されているようなんです。",
    "請求額は{n}円でした。",
    "返金はいつ頃になりますか。",
    "注文番号は{n}です。",
    "東京都新宿区西新宿{d}丁目{d}番{d}号です。",
    "えーと、ちょっと待ってください。",
    "あのー、すみません、もう一度お願いします。",
    "ヤマダタロウです。",
    "アプリにログインできなくなりました。",
    "コードが届かないんですけど。",
    "ずっと保留で待たされてるんですよ。",
    "ルーターが夜になると切れてしまうんです。",
    "契約を解約したいんですが。",
    "請求書に延滞料金が{n}円とあるんですが。",
    "画面が割れた状態で届きました。",
    "今週電話するのこれで三回目なんですよ。",
    "最近のサービスには正直がっかりしています。",
    "ｷｬﾝｾﾙ料はかかりますか。",
    "ｉＰｈｏｎｅからアンドロイドに乗り換えたんです。",
];

const AGENT_JA: &[&str] = &[
    "お電話ありがとうございます、カスタマーサポートの田中でございます。",
    "本日はどのようなご用件でしょうか。",
    "ご注文番号をお伺いしてもよろしいでしょうか。",
    "確認いたしますので少々お待ちください。",
    "大変お待たせいたしました。",
    "ご不便をおかけして申し訳ございません。",
    "お届け予定日は{d}月{d}日となっております。",
    "通常五営業日ほどで返金されます。",
    "ﾔﾏﾀﾞﾀﾛｳ様でお間違いないでしょうか。",
    "ＳＭＳで認証コードをお送りします。",
    "担当部署におつなぎいたします。",
    "一度電源を抜いて三十秒ほどお待ちください。",
    "かしこまりました、解約手続きを承りました。",
    "上の者に確認して折り返しお電話いたします。",
    "平日は午前９時から午後６時まででございます。",
    "お気持ちはよくわかります。",
];

/// Fills `{n}` (a number), `{d}` (a digit) and `{y}` (a year).
fn fill(template: &str, rng: &mut Lcg, out: &mut String) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("closed placeholder");
        let value = match &rest[open + 1..close] {
            "n" => 100 + rng.below(99_900),
            "d" => 1 + rng.below(9),
            "y" => 2015 + rng.below(11),
            other => panic!("unknown placeholder {other}"),
        };
        out.push_str(&value.to_string());
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
}

/// The first `num / den` of `text`'s characters.
fn prefix(text: &str, num: usize, den: usize) -> &str {
    let chars = text.chars().count() * num / den;
    let end = text
        .char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i);
    &text[..end]
}

struct Stream {
    starts: Vec<Event>,
    events: Vec<Event>,
    abusive_utterances: usize,
    finals: usize,
}

/// One call's events, in order.
fn call_events(call_id: &str, rng: &mut Lcg, abusive: &mut usize) -> Vec<Event> {
    let japanese = rng.below(5) < 3;
    let language = if japanese { "ja-JP" } else { "en-US" };
    let mut events = Vec::with_capacity(UTTERANCES * (INTERIMS + 1));
    let mut seq = 0;
    let mut clock_ms = 0;
    for u in 0..UTTERANCES {
        let speaker = if u % 2 == 0 {
            Speaker::Customer
        } else {
            Speaker::Agent
        };
        let (pool, abuse) = match (speaker, japanese) {
            (Speaker::Customer, true) => (CUSTOMER_JA, ABUSE_JA),
            (Speaker::Customer, false) => (CUSTOMER_EN, ABUSE_EN),
            (Speaker::Agent, true) => (AGENT_JA, ABUSE_JA),
            (Speaker::Agent, false) => (AGENT_EN, ABUSE_EN),
        };
        let mut text = String::new();
        if speaker == Speaker::Customer && rng.below(ABUSE_EVERY) == 0 {
            text.push_str(abuse[rng.below(abuse.len())]);
            *abusive += 1;
        }
        while text.len() < TARGET_BYTES {
            if !text.is_empty() && !japanese {
                text.push(' ');
            }
            fill(pool[rng.below(pool.len())], rng, &mut text);
        }
        let start_ms = clock_ms + 300 + rng.below(700) as u64;
        let duration_ms = 40 * text.chars().count() as u64;
        for step in 1..=INTERIMS + 1 {
            let is_final = step == INTERIMS + 1;
            seq += 1;
            events.push(Event::Fragment(Fragment {
                call_id: call_id.to_owned(),
                seq,
                speaker,
                text: prefix(&text, step, INTERIMS + 1).to_owned(),
                is_final,
                utterance_id: format!("u{u}"),
                start_ms,
                end_ms: start_ms + duration_ms * step as u64 / (INTERIMS + 1) as u64,
                language: Some(language.to_owned()),
                loudness_dbfs: None,
            }));
        }
        clock_ms = start_ms + duration_ms;
    }
    events
}

/// `CALLS` calls, interleaved: each round takes the next event of every
/// call, the calls in a shuffled order.
fn stream() -> Stream {
    let mut rng = Lcg(0x00CA_11ED);
    let mut abusive_utterances = 0;
    let mut starts = Vec::with_capacity(CALLS);
    let mut per_call = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let call_id = format!("call-{i:05}");
        starts.push(Event::Start(CallStart {
            call_id: call_id.clone(),
            tenant: "acme".into(),
            agent_id: format!("agent-{:03}", i % 120),
            ..CallStart::default()
        }));
        per_call.push(call_events(&call_id, &mut rng, &mut abusive_utterances).into_iter());
    }
    let mut order: Vec<usize> = (0..CALLS).collect();
    let mut events = Vec::with_capacity(CALLS * UTTERANCES * (INTERIMS + 1));
    for _ in 0..UTTERANCES * (INTERIMS + 1) {
        // Fisher-Yates.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        events.extend(order.iter().filter_map(|&c| per_call[c].next()));
    }
    Stream {
        starts,
        events,
        abusive_utterances,
        finals: CALLS * UTTERANCES,
    }
}

/// A table with every call of the stream started.
fn started_table(
    starts: &[Event],
    engine: &Engine,
    policy: &Policy,
    scratch: &mut Scratch,
) -> CallTable {
    let mut table = CallTable::new(CALLS, DEFAULT_MAX_TEXT_BYTES);
    for start in starts {
        table
            .apply(start, 0, engine, policy, &mut |_| 0, scratch)
            .expect("call starts");
    }
    table
}

#[derive(Default)]
struct Outcome {
    alerts: usize,
    errors: usize,
    duplicates: usize,
    digest: u64,
}

/// Applies every event; counts alerts (and alert updates) and errors.
fn apply_all(
    table: &mut CallTable,
    events: &[Event],
    engine: &Engine,
    policy: &Policy,
    scratch: &mut Scratch,
    mut each: impl FnMut(&Applied),
) -> Outcome {
    let mut outcome = Outcome::default();
    for (i, event) in events.iter().enumerate() {
        match table.apply(event, i as u64, engine, policy, &mut |_| 0, scratch) {
            Ok(routed) => {
                match &routed.applied {
                    Applied::Accepted(alerts) => outcome.alerts += alerts.len(),
                    Applied::Duplicate => outcome.duplicates += 1,
                }
                each(&routed.applied);
            }
            Err(_) => outcome.errors += 1,
        }
    }
    outcome
}

/// The floor: find the call's state by id, bump a counter.
fn noop_all(counters: &mut HashMap<String, u64>, events: &[Event]) -> u64 {
    let mut touched = 0;
    for event in events {
        let counter = counters.get_mut(event.call_id()).expect("known call");
        *counter += 1;
        touched += 1;
    }
    touched
}

fn benches(c: &mut Criterion) {
    let engine = Engine::build(Lexicon::embedded().expect("embedded lexicons are valid"))
        .expect("engine builds");
    let policy = Policy::builtin();
    let mut scratch = Scratch::default();

    let stream = stream();
    let events = &stream.events;
    let bytes: usize = events
        .iter()
        .map(|e| match e {
            Event::Fragment(f) => f.text.len(),
            _ => 0,
        })
        .sum();
    let customer_interims = events
        .iter()
        .filter(
            |e| matches!(e, Event::Fragment(f) if !f.is_final && f.speaker == Speaker::Customer),
        )
        .count();
    eprintln!(
        "stream: {CALLS} calls, {} fragment events ({} finals, {customer_interims} customer \
         interims scanned, {} agent interims not scanned), {bytes} bytes of text, \
         {} abusive utterances",
        events.len(),
        stream.finals,
        events.len() - stream.finals - customer_interims,
        stream.abusive_utterances,
    );

    // Check the answer once before timing.
    let mut table = started_table(&stream.starts, &engine, &policy, &mut scratch);
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    let mut outcome = apply_all(
        &mut table,
        events,
        &engine,
        &policy,
        &mut scratch,
        |applied| {
            if let Applied::Accepted(alerts) = applied {
                for a in alerts {
                    let line = format!("{}|{:?}|{}|{}\n", a.local_id, a.status, a.rule, a.at_ms);
                    for b in line.bytes() {
                        digest = (digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
                    }
                }
            }
        },
    );
    outcome.digest = digest;
    let alerted_calls = table
        .snapshots()
        .iter()
        .filter(|s| s.alerts_total > 0)
        .count();
    assert_eq!(outcome.errors, 0, "apply refused events");
    assert_eq!(outcome.duplicates, 0, "apply saw duplicates");
    assert!(outcome.alerts > 0, "no alerts raised");
    assert!(
        outcome.alerts >= stream.abusive_utterances,
        "{} alerts for {} abusive utterances",
        outcome.alerts,
        stream.abusive_utterances
    );
    let mut counters: HashMap<String, u64> = stream
        .starts
        .iter()
        .map(|s| (s.call_id().to_owned(), 0))
        .collect();
    assert_eq!(noop_all(&mut counters, events), events.len() as u64);
    assert_eq!(counters.values().sum::<u64>(), events.len() as u64);
    assert!(counters
        .values()
        .all(|&n| n == (UTTERANCES * (INTERIMS + 1)) as u64));
    eprintln!(
        "check: {} alert events in {alerted_calls} calls, 0 errors, 0 duplicates \
         (digest {:016x})",
        outcome.alerts, outcome.digest
    );
    drop(table);

    let mut group = c.benchmark_group("call_state");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("table_apply_fragment", |b| {
        b.iter_batched_ref(
            || started_table(&stream.starts, &engine, &policy, &mut Scratch::default()),
            |table| {
                apply_all(
                    table,
                    black_box(events),
                    &engine,
                    &policy,
                    &mut scratch,
                    |_| {},
                )
                .alerts
            },
            BatchSize::PerIteration,
        )
    });
    let fresh: HashMap<String, u64> = stream
        .starts
        .iter()
        .map(|s| (s.call_id().to_owned(), 0))
        .collect();
    group.bench_function("noop_update", |b| {
        b.iter_batched_ref(
            || fresh.clone(),
            |counters| noop_all(counters, black_box(events)),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(call_state_benches, benches);
criterion_main!(call_state_benches);
