//! The service over a real socket: ingest, subscriptions with resume,
//! restart on the same data dir, bad events, many calls, reload, health.

use std::collections::{BTreeMap, BTreeSet};

use callguard::grpc::pb;
use tokio_stream::StreamExt;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abusive_call_alerts_on_reply_stream_and_subscribe_with_same_ids() {
    let server = TestServer::spawn().await;
    let mut sub = server.subscription(0).await;
    let mut ingest = server.stream().await;

    let started = ingest.send(start_event("c1", "acme")).await;
    assert!(started.ack.is_some());
    // A critical threat on interim text: provisional at once.
    let interim = ingest
        .send(fragment("c1", 1, "u1", "お前ころすぞ", false))
        .await;
    assert_eq!(interim.alerts.len(), 1, "{interim:?}");
    let provisional = &interim.alerts[0];
    assert_eq!(provisional.status, pb::AlertStatus::Provisional as i32);
    assert_eq!(provisional.severity, pb::Severity::Critical as i32);
    assert_eq!(provisional.category, "violence");
    // The final text lost the words: the same alert id comes back retracted.
    let last = ingest
        .send(fragment("c1", 2, "u1", "お前のところに行くよ", true))
        .await;
    assert_eq!(last.alerts.len(), 1);
    assert_eq!(last.alerts[0].alert_id, provisional.alert_id);
    assert_eq!(last.alerts[0].status, pb::AlertStatus::Retracted as i32);
    // A threat said for real: confirmed.
    let real = ingest
        .send(fragment("c1", 3, "u2", "ぶっ殺すぞ", true))
        .await;
    assert_eq!(real.alerts[0].status, pb::AlertStatus::Confirmed as i32);

    // (The start may raise out_of_hours, depending on when the test runs.)
    let mut on_stream = started.alerts.clone();
    on_stream.extend([
        provisional.clone(),
        last.alerts[0].clone(),
        real.alerts[0].clone(),
    ]);
    let subscribed = take(&mut sub, on_stream.len()).await;
    assert_eq!(
        subscribed, on_stream,
        "the subscriber sees the same alerts, ids and order"
    );
    assert!(on_stream.windows(2).all(|w| w[0].event_id < w[1].event_id));
    let version = callguard::lexicon::Lexicon::embedded().unwrap().version;
    assert!(on_stream.iter().all(|a| a.lexicon_version == *version));
    assert_eq!(real.alerts[0].evidence[0].excerpt, "ぶっ殺すぞ");

    // GetCall returns the call with its alert history.
    let call = server
        .alerts()
        .await
        .get_call(pb::GetCallRequest {
            call_id: "c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(call.alerts, on_stream);
    let summary = call.call.unwrap();
    assert_eq!(summary.risk, pb::RiskLevel::High as i32);
    assert_eq!(summary.status, pb::CallStatus::Active as i32);
    ingest.close().await;
    server.stop().await;
}

/// Evidence says where the words are in the utterance in characters (code
/// points), which is what a client indexes its own string by: after a
/// multi-byte Japanese prefix the byte offset would be three times off. The
/// offsets are kept by the store (GetCall's history carries them too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_carries_character_offsets_into_the_utterance() {
    let server = TestServer::spawn().await;
    let mut ingest = server.stream().await;
    ingest.send(start_event("c1", "acme")).await;
    let cases = [
        ("ja", "u1", "もしもし、聞いてるのか。お前ぶっ殺すぞ", "殺"),
        ("en", "u2", "Listen to me, you are an idiot", "idiot"),
    ];
    let mut raised = Vec::new();
    for (seq, (language, utterance, text, word)) in (1..).zip(cases) {
        let replies = ingest
            .send(fragment_in(language, "c1", seq, utterance, text, true))
            .await;
        let alert = replies
            .alerts
            .iter()
            .find(|a| a.evidence.iter().any(|e| e.utterance_id == utterance))
            .unwrap_or_else(|| panic!("no alert for {text:?}: {replies:?}"));
        let evidence = alert
            .evidence
            .iter()
            .find(|e| e.utterance_id == utterance)
            .unwrap();
        let (Some(start), Some(end)) = (evidence.char_start, evidence.char_end) else {
            panic!("{text:?}: no character offsets in {evidence:?}");
        };
        assert!(start < end, "{text:?}: {start}..{end}");
        let chars: Vec<char> = text.chars().collect();
        assert!(end as usize <= chars.len(), "{text:?}: {end} past the end");
        // Python's text[start:end]: the words the alert is about, which the
        // excerpt shows with a little context.
        let words: String = chars[start as usize..end as usize].iter().collect();
        assert!(words.contains(word), "{text:?}[{start}..{end}] = {words:?}");
        assert!(
            evidence.excerpt.contains(&words),
            "{words:?} not in the excerpt {:?}",
            evidence.excerpt
        );
        raised.push(alert.clone());
    }
    // Characters, not bytes: the Japanese words sit past the 12-character
    // prefix, which is 36 bytes.
    let ja = raised[0].evidence[0].char_start.unwrap();
    assert!((12..20).contains(&ja), "ja words start at character {ja}");

    let call = server
        .alerts()
        .await
        .get_call(pb::GetCallRequest {
            call_id: "c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    for alert in &raised {
        let stored = call
            .alerts
            .iter()
            .find(|a| a.event_id == alert.event_id)
            .expect("stored");
        assert_eq!(
            stored.evidence, alert.evidence,
            "the store keeps the offsets"
        );
    }
    ingest.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_resumes_after_its_last_event_id_and_misses_nothing() {
    let server = TestServer::spawn().await;
    let mut ingest = server.stream().await;
    let mut sub = server.subscription(0).await;
    ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    let seen = take(&mut sub, 1).await;
    drop(sub); // the dashboard disconnects

    let mut missed = Vec::new();
    for (seq, text) in [
        (2, "ばかやろう"),
        (3, "ネットに晒してやる"),
        (4, "土下座しろ"),
    ] {
        missed.extend(
            ingest
                .send(fragment("c1", seq, &format!("u{seq}"), text, true))
                .await
                .alerts,
        );
    }
    assert_eq!(missed.len(), 3, "{missed:?}");

    let mut resumed = server.subscription(seen[0].event_id).await;
    assert_eq!(take(&mut resumed, 3).await, missed);
    assert_quiet(&mut resumed).await;
    // And then live, without a gap or a duplicate at the switch.
    let live = ingest
        .send(fragment("c1", 5, "u5", "殺してやる", true))
        .await
        .alerts;
    assert_eq!(take(&mut resumed, live.len()).await, live);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_data_dir_continues_ids_and_serves_history() {
    let tmp = tempfile::tempdir().unwrap();
    let first = TestServer::spawn_with(config(tmp.path())).await;
    let mut ingest = first.stream().await;
    let before = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    ingest.close().await;
    first.stop().await;

    let second = TestServer::spawn_with(config(tmp.path())).await;
    let mut history = second.subscription(0).await;
    let mut ingest = second.stream().await;
    let after = ingest
        .send(fragment("c2", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert!(after[0].event_id > before[0].event_id);
    assert!(after[0].alert_id > before[0].alert_id);
    assert_eq!(take(&mut history, 1).await, after);
    let old = second
        .alerts()
        .await
        .get_call(pb::GetCallRequest {
            call_id: "c1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.alerts, before);
    let mut replay = second
        .alerts()
        .await
        .subscribe(pb::SubscribeRequest {
            from_start: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(take(&mut replay, 2).await, [before, after].concat());
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_rejected_in_the_stream_and_the_stream_goes_on() {
    let server = TestServer::spawn().await;
    let mut ingest = server.stream().await;
    let mut unspecified = fragment("c1", 1, "u1", "hello", true);
    if let Some(pb::transcript_event::Event::Fragment(f)) = &mut unspecified.event {
        f.speaker = 0;
    }
    let cases = [
        (unspecified, "speaker", "INVALID_ARGUMENT"),
        (
            fragment("", 1, "u1", "hi", true),
            "call_id",
            "INVALID_ARGUMENT",
        ),
        (
            fragment("c1", 2, "u1", &"あ".repeat(3000), true),
            "text",
            "INVALID_ARGUMENT",
        ),
        (
            pb::TranscriptEvent { event: None },
            "event",
            "INVALID_ARGUMENT",
        ),
        (
            end_event("never-started", 10),
            "call_id",
            "INVALID_ARGUMENT",
        ),
    ];
    for (event, field, code) in cases {
        let replies = ingest.send(event).await;
        let rejection = replies
            .rejection
            .unwrap_or_else(|| panic!("{field}: not rejected"));
        assert_eq!(
            (rejection.field.as_str(), rejection.code.as_str()),
            (field, code),
            "{rejection:?}"
        );
        assert!(!rejection.reason.is_empty());
    }
    assert!(ingest
        .send(fragment("c1", 5, "u5", "こんにちは", true))
        .await
        .ack
        .is_some());
    let backwards = ingest
        .send(fragment("c1", 4, "u4", "こんにちは", true))
        .await;
    assert_eq!(backwards.rejection.unwrap().field, "seq");
    let duplicate = ingest
        .send(fragment("c1", 5, "u5", "こんにちは", true))
        .await;
    assert!(duplicate.ack.unwrap().duplicate);
    // The stream is still good.
    assert_eq!(
        ingest
            .send(fragment("c1", 6, "u6", "ぶっ殺すぞ", true))
            .await
            .alerts
            .len(),
        1
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_interleaved_calls_on_twenty_streams_get_exactly_their_own_alerts() {
    let server = TestServer::spawn().await;
    let mut tasks = Vec::new();
    for s in 0..20 {
        let mut ingest = server.stream().await;
        tasks.push(tokio::spawn(async move {
            let calls: Vec<String> = (0..10).map(|c| format!("s{s}-c{c}")).collect();
            let mut alerts_by_call: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            for seq in 1..=3u64 {
                for (c, call) in calls.iter().enumerate() {
                    // Every third call abuses, the others are benign.
                    let text = if c % 3 == 0 {
                        "ぶっ殺すぞ"
                    } else {
                        "よろしくお願いします"
                    };
                    let utterance = format!("u{seq}");
                    let replies = ingest
                        .send(fragment(call, seq, &utterance, text, true))
                        .await;
                    assert!(replies.ack.is_some());
                    for alert in replies.alerts {
                        assert_eq!(
                            &alert.call_id, call,
                            "an alert of another call on this stream"
                        );
                        alerts_by_call
                            .entry(call.clone())
                            .or_default()
                            .push(alert.alert_id);
                    }
                }
            }
            ingest.close().await;
            alerts_by_call
        }));
    }
    let mut all_ids = BTreeSet::new();
    let mut abusive_calls = 0;
    for task in tasks {
        for (call, ids) in task.await.unwrap() {
            assert!(
                call.ends_with("-c0")
                    || call.ends_with("-c3")
                    || call.ends_with("-c6")
                    || call.ends_with("-c9")
            );
            abusive_calls += 1;
            // The cooldown keeps the repeated threat to one alert per call.
            assert_eq!(ids.len(), 1, "{call}: {ids:?}");
            assert!(all_ids.insert(ids[0]), "alert ids are service-wide unique");
        }
    }
    assert_eq!(abusive_calls, 20 * 4);
    let calls = server
        .alerts()
        .await
        .list_calls(pb::ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .calls;
    assert_eq!(calls.len(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_broken_lexicon_keeps_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let lexicons = tmp.path().join("lexicons");
    std::fs::create_dir_all(lexicons.join("en")).unwrap();
    std::fs::write(lexicons.join("lexicon.toml"), "version = \"v1\"\n").unwrap();
    let term = "category = \"violence\"\n[[term]]\nid = \"kill_you\"\npatterns = [\"kill you\"]\n";
    std::fs::write(lexicons.join("en/violence.toml"), term).unwrap();
    let mut cfg = config(&tmp.path().join("data"));
    cfg.lexicons = Some(lexicons.clone());
    let server = TestServer::spawn_with(cfg).await;
    let mut admin = server.admin().await;

    std::fs::write(
        lexicons.join("en/violence.toml"),
        "category = \"rudeness\"\n[[term]]\nid = \"x\"\npatterns = [\"x\"]\n",
    )
    .unwrap();
    let refused = admin
        .reload_lexicons(pb::ReloadLexiconsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("en/violence.toml:1: unknown category \"rudeness\""),
        "{}",
        refused.message()
    );
    let mut ingest = server.stream().await;
    let still = ingest
        .send(fragment_in("en", "c1", 1, "u1", "I will kill you", true))
        .await;
    let v1 = still.alerts[0].lexicon_version.clone();
    // The human version, then a hash of the content.
    assert!(
        v1.starts_with("v1+"),
        "the old rule set stays in force: {v1}"
    );

    std::fs::write(lexicons.join("lexicon.toml"), "version = \"v2\"\n").unwrap();
    std::fs::write(
        lexicons.join("en/violence.toml"),
        term.replace("kill_you", "hurt_you")
            .replace("kill you", "hurt you"),
    )
    .unwrap();
    let ok = admin
        .reload_lexicons(pb::ReloadLexiconsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(ok.lexicon_version.starts_with("v2+"), "{ok:?}");
    assert_eq!(ok.terms, 1);
    // The call in flight continues on the new set from its next fragment.
    let next = ingest
        .send(fragment_in("en", "c1", 2, "u2", "I will hurt you", true))
        .await;
    assert_eq!(next.alerts[0].lexicon_version, ok.lexicon_version);
    assert!(ingest
        .send(fragment_in("en", "c1", 3, "u3", "I will kill you", true))
        .await
        .alerts
        .is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_metrics_and_readiness_answer() {
    let server = TestServer::spawn().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "callguard.v1.Ingest".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in [
        "callguard.v1.Ingest",
        "callguard.v1.Alerts",
        "callguard.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }

    // One event so the metrics have something to say.
    let mut ingest = server.stream().await;
    ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await;
    let metrics = http_get(server.server.http_addr, "/metrics").await;
    assert!(metrics.contains("callguard_events_total"), "{metrics}");
    assert!(metrics.contains("callguard_alerts_total"), "{metrics}");
    // Every metric explains itself to whoever scrapes it.
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE callguard_") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            assert!(
                metrics.contains(&format!("# HELP callguard_{name} ")),
                "callguard_{name} has no # HELP line:\n{metrics}"
            );
        }
    }
    assert!(http_get(server.server.http_addr, "/healthz")
        .await
        .starts_with("HTTP/1.1 200"));
    assert!(http_get(server.server.http_addr, "/readyz")
        .await
        .starts_with("HTTP/1.1 200"));
    server.stop().await;
}

/// Python's grpcio-reflection and older grpcurl speak only the v1alpha
/// reflection protocol: the same services are listed there, and a symbol
/// resolves to its file so a client can build its stubs from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_services_and_resolves_symbols() {
    use tonic_reflection::pb::v1alpha::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let server = TestServer::spawn().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "callguard.v1.Ingest".into(),
            )),
        },
    ];
    let mut replies = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1alpha reflection is served")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("no service list over v1alpha");
    };
    let names: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    for name in [
        "callguard.v1.Ingest",
        "callguard.v1.Alerts",
        "callguard.v1.Admin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        replies.next().await.unwrap().unwrap().message_response
    else {
        panic!("callguard.v1.Ingest did not resolve to a file over v1alpha");
    };
    use prost::Message;
    let described: Vec<String> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| {
            prost_types::FileDescriptorProto::decode(bytes.as_slice())
                .expect("a file descriptor")
                .name()
                .to_string()
        })
        .collect();
    assert!(
        described.iter().any(|name| name.ends_with("ingest.proto")),
        "{described:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_subscribers_each_get_every_alert() {
    let server = TestServer::spawn().await;
    // Four connections, 250 subscriptions each.
    let mut subscriptions = Vec::new();
    for _ in 0..4 {
        let client = server.alerts().await;
        for _ in 0..250 {
            let mut client = client.clone();
            subscriptions.push(
                client
                    .subscribe(subscribe_request(0))
                    .await
                    .unwrap()
                    .into_inner(),
            );
        }
    }
    let mut ingest = server.stream().await;
    let alerts = ingest
        .send(fragment("c1", 1, "u1", "ぶっ殺すぞ", true))
        .await
        .alerts;
    assert_eq!(alerts.len(), 1);
    for sub in &mut subscriptions {
        assert_eq!(take(sub, 1).await, alerts);
    }
    let metrics = http_get(server.server.http_addr, "/metrics").await;
    assert!(metrics.contains("callguard_subscribers"), "{metrics}");
    drop(subscriptions);
    server.stop().await;
}
