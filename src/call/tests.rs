//! Every rule of the call policy, with its edges, on a small lexicon
//! written for these tests.

use super::*;
use crate::alert::{AlertEvent, AlertStatus};
use crate::category::{Severity, Speaker};
use crate::engine::{Engine, Scratch};
use crate::event::{CallEnd, CallStart, Fragment};
use crate::policy::Policy;

const LEXICON: &[(&str, &str)] = &[
    ("lexicon.toml", "version = \"test.1\"\n"),
    (
        "ja/lex.toml",
        r#"
[[term]]
id = "korosu"
category = "violence"
patterns = ["殺すぞ", "ころすぞ"]
[[term]]
id = "bukkorosu"
category = "violence"
patterns = ["ぶっ殺す"]
[[term]]
id = "sarasu"
category = "online_defamation"
patterns = ["ネットに晒す"]
[[term]]
id = "isharyo"
category = "excessive_demand"
group = "money"
patterns = ["慰謝料払え"]
[[term]]
id = "henkin"
category = "demand"
group = "refund"
patterns = ["返金しろ", "金返せ"]
[[term]]
id = "dogeza"
category = "excessive_demand"
group = "dogeza"
patterns = ["土下座しろ"]
[[term]]
id = "shachou"
category = "excessive_demand"
patterns = ["社長を出せ", "社長に代われ", "社長が来い"]
[[term]]
id = "mainichi"
category = "persistence"
group = "repeat_call"
patterns = ["毎日電話してやる"]
[[term]]
id = "kiranai"
category = "restraint"
group = "no_hangup"
patterns = ["納得するまで切らない"]
[[term]]
id = "baka"
category = "verbal_abuse"
patterns = ["ばかやろう"]
[[term]]
id = "gomi"
category = "verbal_abuse"
needs_target = true
patterns = ["ゴミ"]
[[term]]
id = "itashikanemasu"
category = "agent_refusal"
patterns = ["いたしかねます"]
[[term]]
id = "shuryo"
category = "agent_warning"
patterns = ["お電話を終了させていただきます"]
[[frame]]
id = "omae"
kind = "target"
position = "around"
patterns = ["お前"]
[[frame]]
id = "nante"
kind = "negation"
position = "after"
patterns = ["なんて言ってない"]
[[frame]]
id = "iwareta"
kind = "quotation"
position = "after"
window = 20
patterns = ["って言われた"]
[[frame]]
id = "yomimasu"
kind = "read_out"
position = "before"
turns = 2
patterns = ["読みますね"]
[[frame]]
id = "nante_iwareta"
kind = "read_out_asked"
position = "before"
patterns = ["何て言われたんですか"]
[[term]]
id = "shita_no_namae"
category = "personal_attack"
patterns = ["下の名前は"]
after_agent = ["namae_kotowari"]
after_agent_seconds = 60
[[term]]
id = "youjin"
category = "threat"
patterns = ["用心してね"]
after_caller = ["personal_attack"]
[[term]]
id = "namae_kotowari"
category = "agent_refusal"
patterns = ["お名前はお伝えできません"]
[[term]]
id = "okega"
category = "agent_concern"
patterns = ["お怪我はございませんか"]
[[term]]
id = "shinitai"
category = "self_harm"
patterns = ["死にたい"]
[[term]]
id = "sonna_koto_mo"
category = "verbal_abuse"
group = "belittling"
severity = "info"
patterns = ["そんなことも分からない", "小学生でも分かる", "向いてない"]
[[term]]
id = "mi_no_mawari"
category = "self_harm"
group = "self_harm_hint"
severity = "info"
patterns = ["身の回りの整理", "手紙を書いておいた"]
[[term]]
id = "hint"
category = "threat"
group = "threat_hint"
severity = "info"
patterns = ["脅しじゃない", "お子さんいるんでしょ"]
[[term]]
id = "kaerimichi"
category = "threat"
parts = [["帰り道"], ["気をつけ"]]
near = 10
utterances = 2
not_near = ["運転"]
"#,
    ),
    (
        "ja/names.toml",
        r#"
speaker = "agent"
[[term]]
id = "kyouhaku_uketori"
category = "threat"
patterns = ["脅迫と受け取ります"]
[[term]]
id = "kojin_hikaete"
category = "personal_attack"
patterns = ["個人的なご質問はお控えください"]
[[term]]
id = "ohitori"
category = "self_harm"
patterns = ["今お一人で"]
"#,
    ),
    (
        "en/lex.toml",
        r#"
[[term]]
id = "refund"
category = "demand"
group = "refund"
patterns = ["I want a refund", "give me my money back"]
"#,
    ),
];

fn engine() -> Engine {
    crate::engine::engine_from_files(LEXICON)
}

/// Drives one call through events, collecting every alert event.
struct Call {
    engine: Engine,
    policy: Policy,
    session: CallSession,
    scratch: Scratch,
    seq: u64,
    alerts: Vec<AlertEvent>,
}

impl Call {
    fn start(policy: Policy) -> Call {
        Call::start_with(policy, start(), 0)
    }

    fn start_with(policy: Policy, start: CallStart, prior_calls: u32) -> Call {
        let (session, alerts) =
            CallSession::start(&start, policy.for_tenant(&start.tenant), prior_calls);
        Call {
            engine: engine(),
            policy,
            session,
            scratch: Scratch::default(),
            seq: 0,
            alerts,
        }
    }

    fn say(
        &mut self,
        speaker: Speaker,
        utterance: &str,
        text: &str,
        is_final: bool,
        at_ms: u64,
    ) -> Vec<AlertEvent> {
        self.seq += 1;
        let fragment = Fragment {
            speaker,
            is_final,
            ..fragment(self.seq, utterance, text, at_ms)
        };
        let policy = self.policy.for_tenant("acme").clone();
        match self
            .session
            .on_fragment(&fragment, &self.engine, &policy, &mut self.scratch)
            .unwrap()
        {
            Applied::Accepted(alerts) => {
                self.alerts.extend(alerts.clone());
                alerts
            }
            Applied::Duplicate => panic!("unexpected duplicate"),
        }
    }

    fn customer(&mut self, utterance: &str, text: &str, at_ms: u64) -> Vec<AlertEvent> {
        self.say(Speaker::Customer, utterance, text, true, at_ms)
    }

    fn end(&mut self, at_ms: u64) -> Vec<AlertEvent> {
        let policy = self.policy.for_tenant("acme").clone();
        let alerts = self.session.on_end(
            &CallEnd {
                call_id: "c1".into(),
                end_ms: at_ms,
            },
            &policy,
        );
        self.alerts.extend(alerts.clone());
        alerts
    }

    fn rules(&self) -> Vec<String> {
        self.alerts.iter().map(|a| a.rule.to_string()).collect()
    }
}

fn start() -> CallStart {
    CallStart {
        call_id: "c1".into(),
        tenant: "acme".into(),
        agent_id: "a1".into(),
        language: Some("ja".into()),
        ..CallStart::default()
    }
}

const MIN: u64 = 60_000;

/// A final customer fragment of call c1; tests change what they need.
fn fragment(seq: u64, utterance: &str, text: &str, end_ms: u64) -> Fragment {
    Fragment {
        call_id: "c1".into(),
        seq,
        speaker: Speaker::Customer,
        text: text.into(),
        is_final: true,
        utterance_id: utterance.into(),
        start_ms: end_ms.saturating_sub(1000),
        end_ms,
        language: Some("ja".into()),
        loudness_dbfs: None,
    }
}

#[test]
fn critical_interim_is_provisional_then_confirmed_as_the_same_alert() {
    let mut call = Call::start(Policy::builtin());
    let first = call.say(Speaker::Customer, "u1", "お前ころすぞ", false, 1000);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].status, AlertStatus::Provisional);
    assert_eq!(first[0].severity, Severity::Critical);
    // A revision repeating the words raises nothing new.
    assert!(call
        .say(Speaker::Customer, "u1", "お前ころすぞ本当に", false, 1500)
        .is_empty());
    let last = call.say(Speaker::Customer, "u1", "お前ころすぞ本当に", true, 2000);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].status, AlertStatus::Confirmed);
    assert_eq!(last[0].local_id, first[0].local_id);
}

#[test]
fn revisions_that_reword_the_threat_keep_one_provisional_alert() {
    let mut call = Call::start(Policy::builtin());
    let first = call.say(Speaker::Customer, "u1", "ぶっ殺す", false, 1000);
    assert_eq!(first.len(), 1);
    assert!(call
        .say(Speaker::Customer, "u1", "殺すぞ", false, 1200)
        .is_empty());
    let last = call.customer("u1", "殺すぞ", 1500);
    assert_eq!(last.len(), 1);
    assert_eq!(
        (last[0].local_id, last[0].status),
        (first[0].local_id, AlertStatus::Confirmed)
    );
}

#[test]
fn a_retracted_alert_gives_back_its_strike() {
    let mut call = Call::start(Policy::builtin());
    call.say(Speaker::Customer, "u1", "ころすぞ", false, 1000);
    call.customer("u1", "こんにちは", 1500);
    assert_eq!(call.session.snapshot().strikes, 0);
    let first = call.customer("u2", "ばかやろう", 2000);
    assert_eq!(&*first[0].action, "read_warning_script");
}

#[test]
fn interim_revised_away_is_retracted_by_the_final() {
    let mut call = Call::start(Policy::builtin());
    let first = call.say(Speaker::Customer, "u1", "ころすぞ", false, 1000);
    assert_eq!(first[0].status, AlertStatus::Provisional);
    // The interim flickers: no retraction until the final decides.
    assert!(call
        .say(Speaker::Customer, "u1", "ころ", false, 1200)
        .is_empty());
    let last = call.say(Speaker::Customer, "u1", "ここ住所ですか", true, 2000);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].status, AlertStatus::Retracted);
    assert_eq!(last[0].local_id, first[0].local_id);
    assert_eq!(call.session.risk(), RiskLevel::None);
    // The cooldown was released: the words said for real alert again.
    let again = call.customer("u2", "ころすぞ", 3000);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].status, AlertStatus::Confirmed);
}

#[test]
fn interim_threat_that_the_final_reports_as_quoted_is_retracted() {
    let mut call = Call::start(Policy::builtin());
    let first = call.say(Speaker::Customer, "u1", "廊下で ころすぞって", false, 1000);
    assert_eq!(first[0].status, AlertStatus::Provisional);
    assert_eq!(first[0].severity, Severity::Critical);
    // The final carries the cue the interim had not reached: a report of
    // what someone else said, not a threat at the agent.
    let last = call.say(
        Speaker::Customer,
        "u1",
        "廊下で「ころすぞ」って言われたんです",
        true,
        2000,
    );
    let retracted: Vec<_> = last
        .iter()
        .filter(|a| a.local_id == first[0].local_id)
        .map(|a| a.status)
        .collect();
    assert_eq!(retracted, [AlertStatus::Retracted]);
    assert!(last
        .iter()
        .all(|a| a.severity < Severity::Warning || a.status == AlertStatus::Retracted));
}

#[test]
fn utterance_without_final_is_decided_by_its_latest_interim_at_end() {
    let mut call = Call::start(Policy::builtin());
    call.say(Speaker::Customer, "u1", "ころすぞ", false, 1000);
    call.say(Speaker::Customer, "u2", "殺すぞ", false, 400_000); // past the cooldown
    call.say(Speaker::Customer, "u2", "こんにちは", false, 400_500);
    let settled = call.end(401_000);
    let statuses: Vec<_> = settled.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [AlertStatus::Confirmed, AlertStatus::Retracted]);
}

#[test]
fn counters_and_warnings_wait_for_final_text() {
    let mut call = Call::start(Policy::builtin());
    assert!(call
        .say(Speaker::Customer, "u1", "ばかやろう", false, 1000)
        .is_empty());
    let last = call.customer("u1", "ばかやろう", 1500);
    assert_eq!(last[0].severity, Severity::Warning);
    assert_eq!(last[0].status, AlertStatus::Confirmed);
}

#[test]
fn repeated_demand_raises_persistence_at_the_third_and_again_at_the_fifth() {
    let mut call = Call::start(Policy::builtin());
    let texts = [
        "返金しろ",
        "だから金返せ",
        "返金しろって",
        "いいから返金しろよ",
        "金返せ!!",
    ];
    let mut raised = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let alerts = call.customer(&format!("u{i}"), text, (i as u64 + 1) * 10_000);
        raised.push(
            alerts
                .iter()
                .map(|a| (a.rule.to_string(), a.severity))
                .collect::<Vec<_>>(),
        );
    }
    assert!(raised[0].is_empty() && raised[1].is_empty(), "{raised:?}");
    assert_eq!(
        raised[2],
        [(
            "counter/persistence/repeated_demand/refund".to_string(),
            Severity::Warning
        )]
    );
    assert!(raised[3].is_empty());
    assert_eq!(
        raised[4],
        [(
            "counter/persistence/repeated_demand/refund".to_string(),
            Severity::Critical
        )]
    );
}

#[test]
fn a_demand_worded_three_ways_in_three_utterances_is_persistence() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "社長を出せ", MIN);
    call.customer("u2", "だから社長に代われよ", 2 * MIN);
    assert!(!call.rules().iter().any(|r| r.contains("persistence")));
    let third = call.customer("u3", "社長が来いって言ってんだ", 3 * MIN);
    let persistence: Vec<&AlertEvent> = third
        .iter()
        .filter(|a| &*a.category == "persistence")
        .collect();
    assert_eq!(persistence.len(), 1, "{third:?}");
    assert_eq!(
        &*persistence[0].rule,
        "counter/persistence/repeated_demand/excessive_demand"
    );
    assert_eq!(persistence[0].severity, Severity::Warning);
}

#[test]
fn same_demand_in_two_languages_counts_as_one_group() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "返金しろ", 1000);
    call.seq += 1;
    let fragment = Fragment {
        language: Some("en".into()),
        ..fragment(call.seq, "u2", "I want a refund", 2000)
    };
    let policy = call.policy.for_tenant("acme").clone();
    call.session
        .on_fragment(&fragment, &call.engine, &policy, &mut call.scratch)
        .unwrap();
    let third = call.customer("u3", "金返せ", 3000);
    assert_eq!(third.len(), 1, "{third:?}");
    assert_eq!(&*third[0].category, "persistence");
}

#[test]
fn asr_loops_are_not_repetition() {
    let mut call = Call::start(Policy::builtin());
    for i in 0..5 {
        assert!(call
            .customer(&format!("u{i}"), "返金しろ", 1000 * (i + 1))
            .is_empty());
    }
    assert_eq!(
        call.session.snapshot().demand_repeats,
        [("refund".to_string(), 1)]
    );
}

#[test]
fn announced_repeat_calls_and_refusal_to_hang_up_alert_at_once() {
    let mut call = Call::start(Policy::builtin());
    let a = call.customer("u1", "毎日電話してやるからな", 1000);
    assert_eq!(&*a[0].category, "persistence");
    let b = call.customer("u2", "納得するまで切らないぞ", 2000);
    assert_eq!(&*b[0].category, "restraint");
}

#[test]
fn stalemate_from_agent_refusal_raises_restraint_at_exactly_30_minutes() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a1",
        "そのご要望はいたしかねます",
        true,
        MIN + 1000,
    );
    let refusal_start = MIN; // the refusal utterance starts 1 s before its end
    assert!(call
        .customer("u1", "なんでだよ", refusal_start + 30 * MIN - 1)
        .is_empty());
    let at = call.customer("u2", "まだ話は終わってない", refusal_start + 30 * MIN);
    assert_eq!(at.len(), 1, "{at:?}");
    assert_eq!(&*at[0].rule, "counter/restraint/stalemate");
    assert_eq!(at[0].severity, Severity::Warning);
    assert_eq!(at[0].evidence[0].speaker, Speaker::Agent);
    assert!(call
        .customer("u3", "もういい", refusal_start + 45 * MIN)
        .is_empty());
}

#[test]
fn sixty_minutes_under_pressure_is_critical_but_a_friendly_long_call_is_not() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "ばかやろう", 5 * MIN);
    assert!(call.customer("u2", "はい", 60 * MIN - 1).is_empty());
    let at = call.customer("u3", "はい", 60 * MIN);
    assert_eq!(&*at[0].rule, "counter/restraint/long_call_under_pressure");
    assert_eq!(at[0].severity, Severity::Critical);

    let mut friendly = Call::start(Policy::builtin());
    for minute in (1..=70).step_by(3) {
        friendly.customer(
            &format!("u{minute}"),
            "ありがとうございます、助かります",
            minute * MIN,
        );
        friendly.say(
            Speaker::Agent,
            &format!("a{minute}"),
            "かしこまりました",
            true,
            minute * MIN + 500,
        );
    }
    friendly.end(70 * MIN);
    assert!(
        friendly.alerts.iter().all(|a| a.severity == Severity::Info),
        "{:?}",
        friendly.rules()
    );
    assert_eq!(friendly.session.risk(), RiskLevel::None);
}

#[test]
fn agent_warnings_are_recorded_as_stages() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a1",
        "これ以上続くようでしたらお電話を終了させていただきます",
        true,
        1000,
    );
    call.say(
        Speaker::Agent,
        "a2",
        "お電話を終了させていただきます",
        true,
        5000,
    );
    assert_eq!(call.session.snapshot().warning_stages_ms, [1000, 5000]);
    assert!(call.alerts.is_empty());
}

#[test]
fn agent_speech_never_raises_abuse() {
    let mut call = Call::start(Policy::builtin());
    assert!(call
        .say(
            Speaker::Agent,
            "a1",
            "「ころすぞ」とのご発言がありましたが",
            true,
            1000
        )
        .is_empty());
    assert!(call
        .say(Speaker::Agent, "a2", "ころすぞ", false, 1500)
        .is_empty());
}

#[test]
fn third_call_in_24_hours_raises_persistence_at_start() {
    let policy = Policy::builtin();
    let second = Call::start_with(policy.clone(), start(), 2);
    assert!(second.alerts.is_empty());
    let third = Call::start_with(policy, start(), 3);
    assert_eq!(third.rules(), ["counter/persistence/repeat_caller"]);
}

#[test]
fn out_of_hours_follows_the_calls_timezone_and_policy() {
    let mut s = start();
    s.started_at = Some("2026-10-05T13:30:00Z".parse().unwrap()); // Monday 22:30 in Tokyo
    s.timezone = Some("Asia/Tokyo".into());
    let call = Call::start_with(Policy::builtin(), s.clone(), 0);
    assert_eq!(call.rules(), ["clock/out_of_hours"]);
    assert_eq!(call.alerts[0].severity, Severity::Info);

    let raised = Policy::from_toml("[business_hours]\nout_of_hours = \"warning\"\n", "p").unwrap();
    assert_eq!(
        Call::start_with(raised, s.clone(), 0).alerts[0].severity,
        Severity::Warning
    );
    let off = Policy::from_toml(
        "[tenants.acme.business_hours]\nout_of_hours = \"off\"\n",
        "p",
    )
    .unwrap();
    assert!(Call::start_with(off, s.clone(), 0).alerts.is_empty());

    s.started_at = Some("2026-10-05T00:00:00Z".parse().unwrap()); // Monday 09:00 in Tokyo: open
    assert!(Call::start_with(Policy::builtin(), s, 0).alerts.is_empty());
}

#[test]
fn the_sum_demanded_said_again_in_short_is_the_same_demand_again() {
    let mut call = Call::start(Policy::builtin());
    assert!(call
        .customer("u1", "慰謝料払え、百五十万", 10_000)
        .iter()
        .all(|a| &*a.category != "persistence"));
    call.customer("u2", "百五十万。", 20_000);
    let third = call.customer("u3", "だから150万だって言ってるの", 30_000);
    assert!(
        third
            .iter()
            .any(|a| &*a.rule == "counter/persistence/repeated_demand/money"),
        "{third:?}"
    );
    // Another sum is not the same demand.
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "慰謝料払え、百五十万", 10_000);
    call.customer("u2", "送料の八百円も", 20_000);
    let third = call.customer("u3", "二千円のクーポンは要らない", 30_000);
    assert!(
        third.iter().all(|a| &*a.category != "persistence"),
        "{third:?}"
    );
}

#[test]
fn threat_and_money_demand_within_two_minutes_is_extortion() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "ネットに晒すからな", 10_000);
    let alerts = call.customer("u2", "慰謝料払え", 10_000 + 120_000);
    let rules: Vec<_> = alerts
        .iter()
        .map(|a| (a.rule.to_string(), a.category.to_string(), a.severity))
        .collect();
    // The demand made under threat is what turns critical (DOMAIN 2.1):
    // the exposure threat is not a new threat of harm.
    assert!(
        rules.contains(&(
            "combination/extortion".to_string(),
            "excessive_demand".to_string(),
            Severity::Critical
        )),
        "{rules:?}"
    );

    let mut apart = Call::start(Policy::builtin());
    apart.customer("u1", "ネットに晒すからな", 10_000);
    apart.customer("u2", "慰謝料払え", 10_000 + 120_001);
    assert!(!apart.rules().contains(&"combination/extortion".to_string()));
}

#[test]
fn a_threat_told_as_a_report_makes_no_later_sum_extortion() {
    let mut call = Call::start(Policy::builtin());
    // A scam caller's threat, told; the agent asks after her safety.
    call.customer("u1", "いきなり、ころすぞって", 5000);
    call.say(Speaker::Agent, "a1", "お怪我はございませんか", true, 8000);
    // The sum the scammer wanted, named in the same account.
    call.customer("u2", "慰謝料払え", 30_000);
    assert!(
        !call.rules().contains(&"combination/extortion".to_string()),
        "{:?}",
        call.rules()
    );
}

#[test]
fn a_threat_told_as_a_report_takes_the_extortion_made_of_it_along() {
    let mut call = Call::start(Policy::builtin());
    // A scam caller's threat and the sum he wanted, told before the agent
    // answers: the pair reads as extortion at first.
    call.customer("u1", "いきなり、ころすぞって", 5000);
    let demanded = call.customer("u2", "慰謝料払え", 10_000);
    let extortion = demanded
        .iter()
        .find(|a| &*a.rule == "combination/extortion")
        .expect("extortion raised");
    assert_eq!(extortion.severity, Severity::Critical);
    // The agent asks after her safety: the threat and the extortion made
    // of it are a report now, the same alerts updated to info.
    let answered = call.say(Speaker::Agent, "a1", "お怪我はございませんか", true, 15_000);
    let updated = answered
        .iter()
        .find(|a| a.local_id == extortion.local_id)
        .expect("the extortion alert updated");
    assert_eq!(updated.severity, Severity::Info);
    assert_eq!(updated.status, AlertStatus::Confirmed);
}

#[test]
fn the_agents_warning_ends_the_account_her_concern_answered() {
    let mut call = Call::start(Policy::builtin());
    // Early in the call the agent asks whether the caller was hurt (a
    // breakdown, a tow): for the next two minutes threats are his account.
    call.say(Speaker::Agent, "a1", "お怪我はございませんか", true, 5_000);
    let told = call.customer("u1", "ぶっ殺すぞって言われたんや", 20_000);
    assert!(
        told.iter().all(|a| a.severity == Severity::Info),
        "{told:?}"
    );
    // The dispute turns and she reads the warning script; what he says
    // next is his own, though her concern was only a minute ago.
    call.say(
        Speaker::Agent,
        "a2",
        "そのようなご発言が続くようでしたら、お電話を終了させていただきます",
        true,
        50_000,
    );
    let own = call.customer("u2", "ぶっ殺すぞ", 60_000);
    assert!(
        own.iter().any(|a| a.severity >= Severity::Warning),
        "{own:?}"
    );
}

#[test]
fn advice_in_the_same_breath_as_the_concern_does_not_end_it() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a1",
        "お怪我はございませんでしたか。ご自分での駆除はお控えください。",
        true,
        5_000,
    );
    let told = call.customer(
        "u1",
        "隣のじいさんが灯油かけて燃やしたろか言うとんねん",
        20_000,
    );
    assert!(
        told.iter().all(|a| a.severity == Severity::Info),
        "{told:?}"
    );
}

#[test]
fn the_agents_warning_confirms_what_the_rules_left_at_info_just_before() {
    let mut call = Call::start(Policy::builtin());
    // Asking the given name with no refusal before it: left at info.
    let asked = call.customer("u1", "あなた下の名前は", 1_000);
    assert_eq!(asked[0].severity, Severity::Info);
    // She hears more in it and reads the warning script: it is raised.
    let warned = call.say(
        Speaker::Agent,
        "a1",
        "お電話を終了させていただきます",
        true,
        5_000,
    );
    let confirmed = warned
        .iter()
        .find(|a| &*a.category == "personal_attack")
        .expect("raised on the warning");
    assert_eq!(confirmed.severity, Severity::Warning);
    assert_eq!(confirmed.evidence.last().unwrap().speaker, Speaker::Agent);
}

#[test]
fn the_warning_answers_only_words_since_the_agent_last_spoke_and_not_mild_ones() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "あなた下の名前は", 1_000);
    // She answers something else first: the question is behind them.
    call.say(Speaker::Agent, "a1", "少々お待ちください", true, 3_000);
    // A put-down mild by itself (counted towards belittling), then a warning.
    call.customer("u2", "そんなことも分からないの", 6_000);
    let warned = call.say(
        Speaker::Agent,
        "a2",
        "お電話を終了させていただきます",
        true,
        9_000,
    );
    assert!(
        warned.iter().all(|a| a.severity == Severity::Info),
        "{warned:?}"
    );
}

#[test]
fn what_the_agent_names_is_raised_for_the_words_she_answered() {
    let mut call = Call::start(Policy::builtin());
    // Words no term knows; she hears a threat in them and says so.
    assert!(call.customer("u1", "夜道は暗いからなあ", 1_000).is_empty());
    let named = call.say(
        Speaker::Agent,
        "a1",
        "ただいまのご発言は脅迫と受け取ります",
        true,
        5_000,
    );
    assert_eq!(named.len(), 1, "{named:?}");
    let alert = &named[0];
    assert_eq!(&*alert.category, "threat");
    assert_eq!(&*alert.rule, "ja/threat/kyouhaku_uketori");
    assert_eq!(alert.severity, Severity::Warning);
    let speakers: Vec<_> = alert.evidence.iter().map(|e| e.speaker).collect();
    assert_eq!(speakers, [Speaker::Customer, Speaker::Agent]);
    assert_eq!(alert.evidence[0].utterance_id, "u1");
    // Said again with no word of the caller between: nothing new; and
    // once raised, the category needs no second alert.
    assert!(call
        .say(Speaker::Agent, "a2", "脅迫と受け取ります", true, 7_000)
        .is_empty());
    call.customer("u2", "夜道は暗いからなあ", 9_000);
    assert!(call
        .say(Speaker::Agent, "a3", "脅迫と受け取ります", true, 11_000)
        .is_empty());
}

#[test]
fn a_harassment_naming_beside_her_concern_names_what_was_done_to_the_caller() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "家のポストにこんな手紙が入ってて", 1_000);
    let named = call.say(
        Speaker::Agent,
        "a1",
        "お怪我はございませんか、脅迫と受け取りますのでご相談ください",
        true,
        5_000,
    );
    assert!(named.iter().all(|a| &*a.category != "threat"), "{named:?}");
    // Her question after the caller's despair is asked with concern.
    call.customer("u2", "もう何もかも終わりにしたい", 8_000);
    let named = call.say(
        Speaker::Agent,
        "a2",
        "お怪我はございませんか、今お一人でいらっしゃいますか",
        true,
        12_000,
    );
    assert!(
        named
            .iter()
            .any(|a| &*a.category == "self_harm" && a.severity == Severity::Warning),
        "{named:?}"
    );
}

#[test]
fn a_naming_raises_the_callers_words_left_at_info_under_their_own_rule() {
    let mut call = Call::start(Policy::builtin());
    // The given name asked once, no refusal before it: left at info.
    assert_eq!(
        call.customer("u1", "あなた下の名前は", 1_000)[0].severity,
        Severity::Info
    );
    let named = call.say(
        Speaker::Agent,
        "a1",
        "個人的なご質問はお控えください",
        true,
        5_000,
    );
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(&*named[0].rule, "ja/personal_attack/shita_no_namae");
    assert_eq!(named[0].severity, Severity::Warning);
    assert_eq!(named[0].evidence.last().unwrap().speaker, Speaker::Agent);
}

const RESTATED: &str = "counter/persistence/restated_after_refusals";

#[test]
fn the_same_demand_restated_after_three_refusals_is_persistence_in_any_words() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a0",
        "お電話ありがとうございます、鉄道お客様センター松本でございます",
        true,
        1_000,
    );
    call.customer("u1", "あんたとこの会長呼んでんか", 5_000);
    // Each time the agent declines (or warns), the caller comes back to
    // the chairman, never twice in the same words.
    for (i, (declined, again)) in [
        (
            "会長がお電話に出ることはいたしかねます",
            "会長を出せ言うてんねん",
        ),
        (
            "繰り返しになりますが、会長の直接のご対応はいたしかねます",
            "会長が家まで来たらええやん",
        ),
        ("お電話を終了させていただきます", "会長や会長、聞いとんのか"),
    ]
    .into_iter()
    .enumerate()
    {
        let at = 10_000 + i as u64 * 10_000;
        call.say(Speaker::Agent, &format!("a{}", i + 1), declined, true, at);
        call.customer(&format!("u{}", i + 2), again, at + 5_000);
    }
    let persistence: Vec<_> = call
        .alerts
        .iter()
        .filter(|a| &*a.rule == RESTATED)
        .collect();
    assert_eq!(persistence.len(), 1, "{:?}", call.rules());
    assert_eq!(persistence[0].severity, Severity::Warning);
    assert_eq!(&*persistence[0].category, "persistence");
}

#[test]
fn a_word_said_often_between_two_refusals_or_the_agents_name_is_no_restated_demand() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a0",
        "お電話ありがとうございます、担当の松本でございます",
        true,
        1_000,
    );
    call.say(
        Speaker::Agent,
        "a1",
        "申し訳ございませんが、返品はいたしかねます",
        true,
        5_000,
    );
    // Three times, but all after one refusal: a long account, not a demand
    // pressed again.
    for (i, text) in ["返品の件ですが", "返品の期限は", "返品について"]
        .into_iter()
        .enumerate()
    {
        call.customer(&format!("u{i}"), text, 10_000 + i as u64 * 5_000);
    }
    // The agent's own name after each refusal is no demand either.
    for i in 0..3u64 {
        call.say(
            Speaker::Agent,
            &format!("b{i}"),
            "規定により、それはいたしかねます",
            true,
            30_000 + i * 10_000,
        );
        call.customer(
            &format!("v{i}"),
            "松本さん、ほな、わかりました",
            35_000 + i * 10_000,
        );
    }
    assert!(
        !call.rules().iter().any(|r| r == RESTATED),
        "{:?}",
        call.rules()
    );
}

#[test]
fn dogeza_is_always_critical_even_if_policy_lowers_the_category() {
    let policy =
        Policy::from_toml("[categories.excessive_demand]\nseverity = \"info\"\n", "p").unwrap();
    let mut call = Call::start(policy);
    let a = call.customer("u1", "土下座しろ", 1000);
    assert_eq!(a[0].severity, Severity::Critical);
    let b = call.customer("u2", "慰謝料払え", 2000);
    assert_eq!(b[0].severity, Severity::Info);
}

#[test]
fn a_disclaimed_demand_to_kneel_weighs_as_its_category_one_level_down() {
    // "Not that I'm asking you to kneel": the raise to critical is for the
    // demand made; disclaimed, the words weigh as excessive_demand
    // (warning), and the negation takes one level from that.
    let mut call = Call::start(Policy::builtin());
    let a = call.customer("u1", "土下座しろなんて言ってない", 1000);
    assert_eq!(a[0].severity, Severity::Info, "{a:?}");
    let b = call.customer("u2", "土下座しろ", 2000);
    assert_eq!(b[0].severity, Severity::Critical);
}

#[test]
fn insults_at_the_product_are_complaints_at_the_agent_abuse() {
    let mut call = Call::start(Policy::builtin());
    let product = call.customer("u1", "この商品ゴミだな", 1000);
    assert_eq!(product[0].severity, Severity::Info);
    let agent = call.customer("u2", "お前ゴミだな", 2000);
    assert_eq!(agent[0].severity, Severity::Warning);
}

#[test]
fn negated_threat_is_downgraded_not_dropped() {
    let mut call = Call::start(Policy::builtin());
    let a = call.customer("u1", "殺すぞなんて言ってない", 1000);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].severity, Severity::Warning);
    // The action of its new severity: a denied threat is no police matter.
    assert_ne!(&*a[0].action, "involve_police");
    let plain = call.customer("u2", "ぶっ殺す", 2000);
    assert_eq!(&*plain[0].action, "involve_police");
}

#[test]
fn reported_speech_is_info_unless_relayed_at_the_agent() {
    let mut call = Call::start(Policy::builtin());
    // What someone said to the caller: seen, not alerting.
    let quoted = call.customer("u1", "元彼に殺すぞって言われたんです", 1000);
    assert_eq!(quoted.len(), 1);
    assert_eq!(quoted[0].severity, Severity::Info);
    // Relayed at the agent (a second-person target outside the words):
    // as grave as if the caller said it.
    // A "you" inside the quoted words belongs to the quote.
    let inside = call.customer("u2", "元彼にお前を殺すぞって言われた", 2000);
    assert!(
        inside.iter().all(|a| a.severity == Severity::Info),
        "{inside:?}"
    );
    let relayed = call.customer("u3", "ぶっ殺すって言われたってお前の上司に伝えとけ", 3000);
    assert_eq!(relayed[0].severity, Severity::Critical, "{relayed:?}");
}

#[test]
fn a_message_read_out_is_info_until_the_agent_has_answered_it() {
    let mut call = Call::start(Policy::builtin());
    // "I'll read it out" — "Please do." — the message, over two fragments.
    call.customer("u1", "届いたメッセージ、読みますね", 1000);
    call.say(Speaker::Agent, "a1", "はい、お願いします", true, 2000);
    let read = call.customer("u2", "金を払わないなら、家は分かってるから", 3000);
    let read_more = call.customer("u3", "ぶっ殺すぞ", 4000);
    assert!(read.is_empty(), "{read:?}");
    assert_eq!(read_more.len(), 1);
    assert_eq!(read_more[0].severity, Severity::Info);
    // The agent answered: what the caller says now is their own.
    call.say(Speaker::Agent, "a2", "それは怖かったですね", true, 5000);
    let own = call.customer("u4", "本当にぶっ殺すぞ", 6000);
    assert_eq!(own[0].severity, Severity::Critical, "{own:?}");
}

#[test]
fn the_agents_question_about_someone_elses_words_makes_the_answer_a_reading() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "知らない番号から電話が来て", 1000);
    // "What did they say?" — the answer is their words, not the caller's.
    call.say(Speaker::Agent, "a1", "何て言われたんですか", true, 2000);
    let answer = call.customer("u2", "ぶっ殺すぞ", 3000);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].severity, Severity::Info, "{answer:?}");
    // Asked by the caller, the question reads nothing.
    call.customer("u3", "何て言われたんですか", 4000);
    call.say(Speaker::Agent, "a2", "はい", true, 5000);
    let own = call.customer("u4", "ぶっ殺すぞ", 6000);
    assert_eq!(own[0].severity, Severity::Critical, "{own:?}");
}

#[test]
fn asking_a_name_again_after_the_agent_declined_is_personal_attack() {
    let mut call = Call::start(Policy::builtin());
    // Once, with nothing declined: a fair question, kept at info.
    let once = call.customer("u1", "下の名前は？", 1000);
    assert_eq!(once[0].severity, Severity::Info);
    call.say(
        Speaker::Agent,
        "u2",
        "申し訳ございません、お名前はお伝えできません",
        true,
        5000,
    );
    let again = call.customer("u3", "だから下の名前は？", 9000);
    assert_eq!(again[0].category.as_ref(), "personal_attack");
    assert_eq!(again[0].severity, Severity::Critical);
    // Long after the decline it is a question again.
    let later = call.customer("u4", "ところで下の名前は", 9000 + 2 * MIN);
    assert!(
        later.iter().all(|a| a.severity == Severity::Info),
        "{later:?}"
    );
}

#[test]
fn a_question_about_the_agent_targets_her_once_the_caller_threatens() {
    let mut call = Call::start(Policy::builtin());
    // Asked once, nothing declined: a fair question, kept at info.
    let asked = call.customer("u1", "あなた下の名前は", 1_000);
    assert_eq!(asked[0].severity, Severity::Info);
    call.say(Speaker::Agent, "a1", "少々お待ちください", true, 3_000);
    // The same caller threatens her; the question is raised when she next
    // speaks, the threat added as evidence.
    let threat = call.customer("u2", "お前ころすぞ", 6_000);
    assert!(threat.iter().all(|a| &*a.category != "personal_attack"));
    let answered = call.say(Speaker::Agent, "a2", "ご用件をお伺いします", true, 9_000);
    let targeted = answered
        .iter()
        .find(|a| &*a.category == "personal_attack")
        .expect("the question raised");
    assert_eq!(targeted.severity, Severity::Warning);
    assert!(targeted
        .evidence
        .iter()
        .any(|e| e.excerpt.contains("ころす")));
    // A question asked after the threat (past the rule's cooldown) is
    // raised the same way.
    call.customer("u3", "で、下の名前は", 12_000 + 10 * MIN);
    let again = call.say(
        Speaker::Agent,
        "a3",
        "少々お待ちください",
        true,
        15_000 + 10 * MIN,
    );
    assert!(
        again
            .iter()
            .any(|a| &*a.category == "personal_attack" && a.severity == Severity::Warning),
        "{again:?}"
    );
}

#[test]
fn a_threat_the_caller_tells_of_makes_no_question_hostile() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "あなた下の名前は", 1_000);
    call.say(Speaker::Agent, "a1", "少々お待ちください", true, 3_000);
    // What a stranger shouted at her, answered with concern.
    call.customer("u2", "いきなり、ころすぞって", 6_000);
    let answered = call.say(Speaker::Agent, "a2", "お怪我はございませんか", true, 9_000);
    assert!(
        answered.iter().all(|a| a.severity == Severity::Info),
        "{answered:?}"
    );
}

#[test]
fn a_harm_hint_is_a_threat_once_the_caller_has_gone_after_the_agent() {
    let mut call = Call::start(Policy::builtin());
    // From a friendly caller: a kind word, seen at info.
    let kind = call.customer("u1", "雨だから帰り用心してね", 1000);
    assert_eq!(kind[0].severity, Severity::Info, "{kind:?}");
    // The caller asks the name again after the agent declined it...
    call.say(Speaker::Agent, "a1", "お名前はお伝えできません", true, 3000);
    let hunted = call.customer("u2", "下の名前は？", 5000);
    assert_eq!(hunted[0].category.as_ref(), "personal_attack");
    // ... and the same words are a threat now, long after the decline.
    let hint = call.customer("u3", "まあ、用心してね", 5000 + 10 * MIN);
    assert_eq!(hint[0].category.as_ref(), "threat");
    assert_eq!(hint[0].severity, Severity::Critical, "{hint:?}");
}

#[test]
fn a_rule_spread_over_two_utterances_alerts_with_both_as_evidence() {
    let mut call = Call::start(Policy::builtin());
    assert!(call.customer("u1", "帰り道は暗いよね", 1000).is_empty());
    let a = call.customer("u2", "気をつけたほうがいいよ", 3000);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].rule.as_ref(), "ja/threat/kaerimichi");
    let utterances: Vec<&str> = a[0]
        .evidence
        .iter()
        .map(|e| e.utterance_id.as_str())
        .collect();
    assert_eq!(utterances, ["u1", "u2"]);
    // Three utterances apart is too far for `utterances = 2`.
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "帰り道は暗いよね", 1000);
    call.customer("u2", "まあいいや", 2000);
    assert!(call.customer("u3", "気をつけてね", 3000).is_empty());
}

#[test]
fn a_part_beside_a_not_near_phrase_does_not_wait_for_the_next_utterance() {
    let mut call = Call::start(Policy::builtin());
    assert!(call
        .customer("u1", "帰り道は運転が大変でね", 1000)
        .is_empty());
    assert!(call.customer("u2", "気をつけたいです", 3000).is_empty());
    // Without the not_near phrase the same two utterances match.
    let mut call = Call::start(Policy::builtin());
    assert!(call.customer("u1", "帰り道は坂が大変でね", 1000).is_empty());
    assert_eq!(call.customer("u2", "気をつけたいです", 3000).len(), 1);
}

#[test]
fn warning_ladder_and_cooldown() {
    let mut call = Call::start(Policy::builtin());
    let first = call.customer("u1", "ばかやろう", 1000);
    assert_eq!(&*first[0].action, "read_warning_script");
    // Same term within the cooldown: nothing new.
    assert!(call.customer("u2", "このばかやろう", 2000).is_empty());
    let second = call.customer("u3", "ばかやろうが", 1000 + 300_000);
    assert_eq!(&*second[0].action, "supervisor_alert");
    let third = call.customer("u4", "ばかやろう!", 1000 + 600_000);
    assert_eq!(&*third[0].action, "end_call_permitted");
    assert_eq!(call.session.risk(), RiskLevel::High);
    let violence = call.customer("u5", "殺すぞ", 1000 + 600_001);
    assert_eq!(&*violence[0].action, "involve_police");
}

#[test]
fn one_utterance_does_not_climb_the_whole_warning_ladder() {
    let mut call = Call::start(Policy::builtin());
    let both = call.customer("u1", "ばかやろう、お前ゴミだな", 1000);
    let actions: Vec<&str> = both.iter().map(|a| &*a.action).collect();
    assert_eq!(actions, ["read_warning_script", "read_warning_script"]);
    // The next utterance takes the next step.
    let next = call.customer("u2", "お前がゴミなんだよ、ばかやろうが", 1000 + 300_000);
    assert!(
        next.iter().all(|a| &*a.action == "supervisor_alert"),
        "{next:?}"
    );
}

#[test]
fn a_ladder_step_can_wait_for_the_agents_warning() {
    let policy = Policy::from_toml("[escalation]\nstep_needs_agent_warning = true\n", "p").unwrap();
    let mut call = Call::start(policy);
    let first = call.customer("u1", "ばかやろう", 1000);
    assert_eq!(&*first[0].action, "read_warning_script");
    // No warning from the agent yet: the same step.
    let second = call.customer("u2", "お前ゴミだな", 5000);
    assert_eq!(&*second[0].action, "read_warning_script");
    call.say(
        Speaker::Agent,
        "a1",
        "これ以上続く場合はお電話を終了させていただきます",
        true,
        8000,
    );
    let third = call.customer("u3", "ばかやろうが", 1000 + 300_000);
    assert_eq!(&*third[0].action, "supervisor_alert");
}

#[test]
fn phrase_split_across_fragments_alerts_once_with_both_pieces_as_evidence() {
    let mut call = Call::start(Policy::builtin());
    assert!(call.customer("u1", "いいか、ころ", 1000).is_empty());
    let second = call.customer("u2", "すぞ、わかったか", 2000);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].evidence.len(), 2);
    assert_eq!(second[0].evidence[0].utterance_id, "u1");
    assert!(call.customer("u3", "以上だ", 3000).is_empty());
}

/// Evidence points at the words in the text it quotes, in characters
/// (Unicode scalar values): the interim hypothesis for the provisional
/// alert, the final text for its confirmation, nothing for the previous
/// utterance of a phrase split across two.
#[test]
fn evidence_carries_character_offsets_of_the_words() {
    let chars = |e: &crate::alert::Evidence| e.char_start.zip(e.char_end);
    let mut call = Call::start(Policy::builtin());
    // "お前ころすぞ": ころすぞ is characters 2..6 (bytes 6..18).
    let provisional = call.say(Speaker::Customer, "u1", "お前ころすぞ", false, 1000);
    assert_eq!(provisional.len(), 1, "{provisional:?}");
    assert_eq!(provisional[0].status, AlertStatus::Provisional);
    assert_eq!(chars(&provisional[0].evidence[0]), Some((2, 6)));
    // The final text puts the same words elsewhere.
    let confirmed = call.customer("u1", "おい、ASAP お前ころすぞ", 1500);
    assert_eq!(confirmed[0].status, AlertStatus::Confirmed);
    assert_eq!(chars(&confirmed[0].evidence[0]), Some((10, 14)));

    let mut call = Call::start(Policy::builtin());
    assert!(call.customer("u1", "いいか、ころ", 1000).is_empty());
    let split = call.customer("u2", "すぞ、わかったか", 2000);
    assert_eq!(chars(&split[0].evidence[0]), None, "the previous utterance");
    let here = &split[0].evidence[1];
    assert_eq!(here.utterance_id, "u2");
    let (start, end) = chars(here).unwrap();
    let words: String = "すぞ、わかったか"
        .chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect();
    assert_eq!(words, "すぞ", "the piece said in this utterance");
}

#[test]
fn seq_duplicates_are_ignored_and_backwards_rejected() {
    let mut call = Call::start(Policy::builtin());
    let policy = call.policy.for_tenant("acme").clone();
    let mut fragment = fragment(5, "u1", "ばかやろう", 1000);
    let first = call
        .session
        .on_fragment(&fragment, &call.engine, &policy, &mut call.scratch)
        .unwrap();
    assert!(matches!(first, Applied::Accepted(ref a) if a.len() == 1));
    assert_eq!(
        call.session
            .on_fragment(&fragment, &call.engine, &policy, &mut call.scratch)
            .unwrap(),
        Applied::Duplicate
    );
    fragment.seq = 4;
    let err = call
        .session
        .on_fragment(&fragment, &call.engine, &policy, &mut call.scratch)
        .unwrap_err();
    assert_eq!(err.to_string(), "seq: 4 is behind the last accepted 5");
    // A repeated final for the same utterance (new seq) is a duplicate too.
    fragment.seq = 6;
    assert_eq!(
        call.session
            .on_fragment(&fragment, &call.engine, &policy, &mut call.scratch)
            .unwrap(),
        Applied::Duplicate
    );
}

#[test]
fn memory_is_bounded_on_a_very_long_call() {
    let policy = Policy::from_toml("[escalation]\ncooldown_seconds = 1\n", "p").unwrap();
    let mut call = Call::start(policy);
    for i in 0..2_000u64 {
        call.say(
            Speaker::Customer,
            &format!("open{i}"),
            "ころすぞ",
            false,
            i * 2_000,
        );
        call.customer(&format!("u{i}"), "ばかやろう", i * 2_000 + 1_500);
    }
    let snapshot = call.session.snapshot();
    assert!(snapshot.alert_ids.len() <= 256);
    assert!(snapshot.alerts_total > 256);
    assert!(call.session.open.len() <= 32);
    assert!(call.session.recent_finals.len() <= 16);
}

#[test]
fn same_events_give_same_alerts() {
    let run = || {
        let mut call = Call::start(Policy::builtin());
        call.say(Speaker::Customer, "u1", "ころすぞ", false, 1000);
        call.customer("u1", "ころすぞ", 1500);
        call.customer("u2", "返金しろ", 2000);
        call.customer("u3", "返金しろよ", 3000);
        call.customer("u4", "返金しろって", 4000);
        call.end(10 * MIN);
        call.alerts
    };
    assert_eq!(run(), run());
}

#[test]
fn the_agents_concern_turns_the_callers_account_into_a_report() {
    let mut call = Call::start(Policy::builtin());
    // The caller tells what a stranger shouted at her.
    let told = call.customer("u1", "いきなり、ころすぞって", 5000);
    assert_eq!(told.len(), 1);
    assert_eq!(told[0].severity, Severity::Critical);
    let answered = call.say(Speaker::Agent, "a1", "お怪我はございませんか", true, 8000);
    assert_eq!(answered.len(), 1, "{answered:?}");
    let update = &answered[0];
    assert_eq!(update.local_id, told[0].local_id, "the same alert, updated");
    assert_eq!(update.severity, Severity::Info);
    assert_eq!(update.status, AlertStatus::Confirmed);
    assert_eq!(update.rule, told[0].rule, "the rule that fired stays named");
    let agent_words = update.evidence.last().unwrap();
    assert_eq!(agent_words.speaker, Speaker::Agent);
    assert!(agent_words.excerpt.contains("お怪我"));
    assert_eq!(
        call.session.snapshot().strikes,
        0,
        "the strike is given back"
    );
    // What she tells next, in the same account, stays at info.
    let more = call.customer("u2", "ばかやろう、ぶっ殺すって", 20_000);
    assert!(
        more.iter().all(|a| a.severity == Severity::Info),
        "{more:?}"
    );
    // Long after, the same words are aimed at the agent again.
    let later = call.customer("u3", "お前ころすぞ", 20_000 + 3 * MIN);
    assert_eq!(later[0].severity, Severity::Critical);
}

#[test]
fn the_agents_concern_after_self_harm_words_downgrades_nothing() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "もう死にたい、ばかやろう", 5000);
    let answered = call.say(Speaker::Agent, "a1", "お怪我はございませんか", true, 8000);
    assert!(answered.is_empty(), "{answered:?}");
    let next = call.customer("u2", "ぶっ殺す", 12_000);
    assert_eq!(next[0].severity, Severity::Critical);
}

#[test]
fn the_agents_concern_reaches_only_the_account_just_told_and_can_be_turned_off() {
    let mut call = Call::start(Policy::builtin());
    call.customer("u1", "お前ころすぞ", 5000);
    // Two minutes later the agent asks after an unrelated incident.
    let answered = call.say(
        Speaker::Agent,
        "a1",
        "お怪我はございませんか",
        true,
        5000 + 2 * MIN,
    );
    assert!(answered.is_empty(), "{answered:?}");

    let policy = Policy::from_toml("[combinations]\nreported_incident_seconds = 0\n", "p").unwrap();
    let mut call = Call::start(policy);
    call.customer("u1", "いきなり、ころすぞって", 5000);
    assert!(call
        .say(Speaker::Agent, "a1", "お怪我はございませんか", true, 8000)
        .is_empty());
    let next = call.customer("u2", "ぶっ殺す", 12_000);
    assert_eq!(next[0].severity, Severity::Critical);
}

#[test]
fn put_downs_spread_over_a_call_add_up_to_verbal_abuse() {
    let mut call = Call::start(Policy::builtin());
    let one = call.customer("u1", "そんなことも分からないんですか", 5000);
    assert!(one.iter().all(|a| a.severity == Severity::Info), "{one:?}");
    call.customer("u2", "小学生でも分かるでしょう", 20_000);
    // The same put-down again in one utterance counts once.
    call.customer("u3", "この仕事向いてないですね、向いてない", 40_000);
    let abuse: Vec<_> = call
        .alerts
        .iter()
        .filter(|a| a.severity == Severity::Warning)
        .collect();
    assert_eq!(abuse.len(), 1, "{:?}", call.alerts);
    assert_eq!(&*abuse[0].category, "verbal_abuse");
    assert_eq!(&*abuse[0].rule, "counter/verbal_abuse/belittling");
    assert_eq!(abuse[0].evidence.len(), 3, "every put-down is evidence");
    assert!(abuse[0].evidence[0].excerpt.contains("そんなことも"));
}

/// Two hints in two utterances raise `category` at warning with both as
/// evidence; returns the call for more checks.
fn two_hints_raise(first: &str, second: &str, category: &str) -> Call {
    let mut call = Call::start(Policy::builtin());
    let one = call.customer("u1", first, 5000);
    assert!(one.iter().all(|a| a.severity == Severity::Info), "{one:?}");
    let two = call.customer("u2", second, 30_000);
    let raised: Vec<_> = two
        .iter()
        .filter(|a| a.severity == Severity::Warning)
        .collect();
    assert_eq!(raised.len(), 1, "{two:?}");
    assert_eq!(&*raised[0].category, category);
    assert_eq!(&*raised[0].rule, format!("counter/{category}/hints"));
    assert_eq!(raised[0].evidence.len(), 2);
    call
}

#[test]
fn hints_of_self_harm_in_two_utterances_raise_self_harm() {
    let call = two_hints_raise(
        "もう身の回りの整理はしたんです",
        "子どもたちには手紙を書いておいたので",
        "self_harm",
    );
    assert_eq!(call.session.snapshot().strikes, 0, "welfare, not a strike");

    // The policy sets how many utterances it takes.
    let policy = Policy::from_toml("[accumulation]\nself_harm_hints = 3\n", "p").unwrap();
    let mut call = Call::start(policy);
    call.customer("u1", "もう身の回りの整理はしたんです", 5000);
    let two = call.customer("u2", "子どもたちには手紙を書いておいたので", 30_000);
    assert!(two.iter().all(|a| a.severity == Severity::Info), "{two:?}");
}

#[test]
fn hints_of_harm_in_two_utterances_raise_threat() {
    two_hints_raise("脅しじゃないですよ", "お子さんいるんでしょ", "threat");
    // The same hint said twice in one utterance is one hint.
    let mut call = Call::start(Policy::builtin());
    let once = call.customer("u1", "脅しじゃないですよ、脅しじゃない", 5000);
    assert!(
        once.iter().all(|a| a.severity == Severity::Info),
        "{once:?}"
    );
}

#[test]
fn one_hint_of_harm_is_a_threat_after_the_caller_went_after_the_agent() {
    let mut call = Call::start(Policy::builtin());
    call.say(Speaker::Agent, "a1", "お名前はお伝えできません", true, 1000);
    let hunted = call.customer("u1", "下の名前は？", 3000);
    assert_eq!(hunted[0].category.as_ref(), "personal_attack");
    let hint = call.customer("u2", "お子さんいるんでしょ", 30_000);
    let raised: Vec<_> = hint
        .iter()
        .filter(|a| a.severity == Severity::Warning)
        .collect();
    assert_eq!(raised.len(), 1, "{hint:?}");
    assert_eq!(&*raised[0].rule, "counter/threat/hints");
    // A hint said before the targeting still counts as the first of two.
    let mut call = Call::start(Policy::builtin());
    assert!(call
        .customer("u1", "脅しじゃないですよ", 1000)
        .iter()
        .all(|a| a.severity == Severity::Info));
    call.say(Speaker::Agent, "a1", "お名前はお伝えできません", true, 2000);
    call.customer("u2", "下の名前は？", 3000);
    let second = call.customer("u3", "お子さんいるんでしょ", 30_000);
    assert!(
        second
            .iter()
            .any(|a| &*a.rule == "counter/threat/hints" && a.severity == Severity::Warning),
        "{second:?}"
    );
}

#[test]
fn the_agents_name_then_what_asks_the_surname_and_again_targets_the_agent() {
    let mut call = Call::start(Policy::builtin());
    call.say(
        Speaker::Agent,
        "a1",
        "City permits office, this is Dana.",
        true,
        1000,
    );
    // Once: a question, seen at info.
    let first = call.customer("u1", "Healthy. Okay. Dana what?", 5000);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(&*first[0].rule, "counter/personal_attack/surname_by_name");
    assert_eq!(first[0].severity, Severity::Info);
    assert!(first[0].evidence[0].excerpt.contains("Dana what"));
    // Something else asked of Dana is no surname.
    assert!(call
        .customer("u2", "Thanks Dana, what time do you close?", 9000)
        .is_empty());
    // Asked again: pressing one employee.
    let again = call.customer("u3", "No, I'm asking you. Dana what.", 12_000);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].severity, Severity::Warning);
}
