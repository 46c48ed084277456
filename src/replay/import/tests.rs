//! Golden tests over tests/fixtures/import/, and the real ASR outputs of
//! the shared corpus when it is present.

use std::path::{Path, PathBuf};

use super::*;
use crate::category::Speaker::{Agent, Customer};

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn run(name: &str, want_format: Format) -> Vec<Event> {
    let (path, text) = fixture(name);
    assert_eq!(detect(&path, &text), Some(want_format), "{name}");
    import(want_format, &path, &text, &ImportOptions::default()).unwrap()
}

fn start(call_id: &str, language: Option<&str>) -> Event {
    Event::Start(CallStart {
        call_id: call_id.into(),
        language: language.map(Into::into),
        ..CallStart::default()
    })
}

#[allow(clippy::too_many_arguments)]
fn frag(
    call_id: &str,
    seq: u64,
    speaker: Speaker,
    text: &str,
    is_final: bool,
    utterance_id: &str,
    (start_ms, end_ms): (u64, u64),
    language: Option<&str>,
) -> Event {
    Event::Fragment(Fragment {
        call_id: call_id.into(),
        seq,
        speaker,
        text: text.into(),
        is_final,
        utterance_id: utterance_id.into(),
        start_ms,
        end_ms,
        language: language.map(Into::into),
        loudness_dbfs: None,
    })
}

fn end(call_id: &str, end_ms: u64) -> Event {
    Event::End(CallEnd {
        call_id: call_id.into(),
        end_ms,
    })
}

#[test]
fn vtt_with_voice_tags() {
    let c = "call";
    assert_eq!(
        run("call.vtt", Format::Vtt),
        [
            start(c, None),
            frag(
                c,
                1,
                Agent,
                "Thank you for calling, how can I help?",
                true,
                "u1",
                (500, 3200),
                None
            ),
            frag(
                c,
                2,
                Customer,
                "This is the third time & I'm done.",
                true,
                "u2",
                (4000, 7250),
                None
            ),
            frag(
                c,
                3,
                Customer,
                "You're useless.",
                true,
                "u3",
                (8000, 10000),
                None
            ),
            frag(
                c,
                4,
                Agent,
                "I understand, sir.",
                true,
                "u4",
                (8000, 10000),
                None
            ),
            frag(
                c,
                5,
                Customer,
                "Is anyone there?",
                true,
                "u5",
                (11000, 12500),
                None
            ),
            end(c, 12500),
        ]
    );
}

#[test]
fn srt_with_speaker_prefixes() {
    let c = "call";
    assert_eq!(
        run("call.srt", Format::Srt),
        [
            start(c, None),
            frag(
                c,
                1,
                Agent,
                "Good morning, billing department.",
                true,
                "u1",
                (0, 2000),
                None
            ),
            frag(
                c,
                2,
                Customer,
                "I want my money back right now.",
                true,
                "u2",
                (2500, 5100),
                None
            ),
            frag(
                c,
                3,
                Customer,
                "No speaker on this one.",
                true,
                "u3",
                (5200, 6000),
                None
            ),
            frag(
                c,
                4,
                Agent,
                "One moment please.",
                true,
                "u4",
                (6000, 7000),
                None
            ),
            frag(c, 5, Customer, "Hurry up.", true, "u5", (6000, 7000), None),
            end(c, 7000),
        ]
    );
}

#[test]
fn whisper_segments_with_speakers() {
    let c = "call_whisper";
    let en = Some("en");
    assert_eq!(
        run("call_whisper.json", Format::Whisper),
        [
            start(c, en),
            frag(
                c,
                1,
                Agent,
                "Hello, this is Dana from support.",
                true,
                "u1",
                (0, 2400),
                en
            ),
            frag(
                c,
                2,
                Customer,
                "I've been waiting an hour!",
                true,
                "u2",
                (2400, 5125),
                en
            ),
            frag(
                c,
                3,
                Agent,
                "Sorry about that.",
                true,
                "u3",
                (6000, 7000),
                en
            ),
            end(c, 7000),
        ]
    );
}

#[test]
fn aws_streaming_partial_then_final() {
    let c = "call_aws_stream";
    let en = Some("en-US");
    assert_eq!(
        run("call_aws_stream.jsonl", Format::AwsStream),
        [
            start(c, en),
            frag(c, 1, Agent, "Thanks", false, "a1b2-0001", (250, 610), en),
            frag(
                c,
                2,
                Agent,
                "Thanks for calling.",
                true,
                "a1b2-0001",
                (250, 1420),
                en
            ),
            frag(
                c,
                3,
                Customer,
                "You are an",
                false,
                "a1b2-0002",
                (2000, 3100),
                en
            ),
            frag(
                c,
                4,
                Customer,
                "You are an idiot.",
                true,
                "a1b2-0002",
                (2000, 3900),
                en
            ),
            end(c, 3900),
        ]
    );
}

#[test]
fn aws_batch_with_speaker_labels_and_a_masked_word() {
    let c = "call_aws";
    let en = Some("en-US");
    assert_eq!(
        run("call_aws.json", Format::Aws),
        [
            start(c, en),
            frag(c, 1, Agent, "Hello, support.", true, "u1", (500, 1500), en),
            frag(
                c,
                2,
                Customer,
                "Fix this *** thing now!",
                true,
                "u2",
                (2000, 4250),
                en
            ),
            end(c, 4250),
        ]
    );
}

#[test]
fn jsonl_is_read_as_it_is() {
    let events = run("call.jsonl", Format::Jsonl);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0], start("j1", Some("en")));
    assert_eq!(events[2], end("j1", 900));
}

#[test]
fn jsonl_refuses_a_loudness_beyond_f32() {
    let text = "{\"type\":\"start\",\"call_id\":\"c\"}\n\
        {\"type\":\"fragment\",\"call_id\":\"c\",\"speaker\":\"customer\",\"text\":\"x\",\"loudness_dbfs\":1e39}\n";
    let err = import(
        Format::Jsonl,
        Path::new("l.jsonl"),
        text,
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        err,
        "l.jsonl:2: loudness_dbfs: out of range (must be a finite number of dBFS)"
    );
}

#[test]
fn options_override_call_id_language_and_speakers() {
    let (path, text) = fixture("call_aws.json");
    let options = ImportOptions {
        call_id: Some("c-77".into()),
        language: Some("en-GB".into()),
        speakers: "spk_0=agent,spk_1=customer".parse().unwrap(),
        map: None,
    };
    let events = import(Format::Aws, &path, &text, &options).unwrap();
    let gb = Some("en-GB");
    assert_eq!(events[0], start("c-77", gb));
    assert_eq!(
        events[1],
        frag(
            "c-77",
            1,
            Customer,
            "Hello, support.",
            true,
            "u1",
            (500, 1500),
            gb
        )
    );
    assert_eq!(
        events[2],
        frag(
            "c-77",
            2,
            Agent,
            "Fix this *** thing now!",
            true,
            "u2",
            (2000, 4250),
            gb
        )
    );
}

#[test]
fn speaker_map_parsing_and_defaults() {
    let map: SpeakerMap = "spk_0=agent, ch_1 = Customer,*=agent".parse().unwrap();
    assert_eq!(map.labels.get("spk_0"), Some(&Agent));
    assert_eq!(map.labels.get("ch_1"), Some(&Customer));
    assert_eq!(map.default_speaker, Agent);
    assert!(!map.auto);
    assert_eq!("".parse::<SpeakerMap>().unwrap(), SpeakerMap::default());
    assert!("spk_0".parse::<SpeakerMap>().is_err());
    assert!("spk_0=robot"
        .parse::<SpeakerMap>()
        .unwrap_err()
        .contains("robot"));

    let default = SpeakerMap::default();
    let mut r = default.resolver();
    assert_eq!(r.resolve(Some("spk_3")), Agent);
    assert_eq!(r.resolve(None), Customer);
    assert_eq!(r.resolve(Some("Caller")), Customer);
    assert_eq!(r.resolve(Some("spk_1")), Customer);
    assert_eq!(r.resolve(Some("spk_3")), Agent);
    assert_eq!(r.resolve(Some("spk_2")), Customer);
    assert_eq!(r.resolve(Some("オペレーター")), Agent);
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(f.as_str().parse::<Format>(), Ok(f));
    }
    assert!("docx".parse::<Format>().is_err());
}

#[test]
fn detect_by_content() {
    let p = Path::new("x.txt");
    assert_eq!(detect(p, "\u{feff}WEBVTT\n\n"), Some(Format::Vtt));
    assert_eq!(
        detect(p, "1\n00:00:01,000 --> 00:00:02,000\nhi\n"),
        Some(Format::Srt)
    );
    assert_eq!(
        detect(p, r#"{"results":{"transcripts":[],"items":[]}}"#),
        Some(Format::Aws)
    );
    assert_eq!(
        detect(
            p,
            "{\"TranscriptResultStream\":{\"TranscriptEvent\":{\"Transcript\":{\"Results\":[]}}}}"
        ),
        Some(Format::AwsStream)
    );
    assert_eq!(
        detect(p, r#"{"segments":[],"text":""}"#),
        Some(Format::Whisper)
    );
    assert_eq!(
        detect(
            p,
            "{\"type\":\"end\",\"call_id\":\"c\"}\n{\"type\":\"end\",\"call_id\":\"d\"}\n"
        ),
        Some(Format::Jsonl)
    );
    assert_eq!(detect(p, "hello"), None);
    assert_eq!(detect(p, "{}"), None);
    assert_eq!(detect(Path::new("a.vtt"), ""), Some(Format::Vtt));
}

#[test]
fn bad_input_is_an_error_with_file_and_line() {
    let p = Path::new("bad");
    let cases: &[(Format, &str, &str)] = &[
        (Format::Vtt, "no header\n", "bad:1: missing the WEBVTT header"),
        (
            Format::Vtt,
            "WEBVTT\n\n00:01.000 --> 00:00.500\nx\n",
            "bad:3: cue 1: cue: end 0.5 s is before start 1 s",
        ),
        (
            Format::Vtt,
            "WEBVTT\n\nid\n00:01.0x0 --> 00:02.000\nx\n",
            "bad:4: cue 1: bad start time \"00:01.0x0\"",
        ),
        (Format::Vtt, "WEBVTT\n\njust text\n", "bad:3: cue 1: expected a timing line"),
        (Format::Srt, "1\n00:00:01,000 -> 00:00:02,000\nx\n", "bad:1: cue 1: expected an index"),
        (
            Format::Srt,
            "1\n00:00:01,000 --> 00:00:02,000\nx\n\n2\n00:00:61,000 --> 00:01:02,000\ny\n",
            "bad:6: cue 2: bad start time \"00:00:61,000\"",
        ),
        (Format::Whisper, "{\"segments\": [\n{\"start\": 1, \"text\": \"x\"}]}", "bad:2: segments[0]: field `end` is missing"),
        (
            Format::Whisper,
            // A check over a whole object reports where the parser is
            // after it: here the next line.
            "{\"segments\": [\n{\"start\": 2, \"end\": 1, \"text\": \"x\"}\n]}",
            "bad:3: segments[0]: segment: end 1 s is before start 2 s",
        ),
        (Format::Whisper, "{\"segments\": [{\"start\": -1, \"end\": 1}]}", "bad:1: segments[0].start: time -1 s is out of range"),
        (Format::Aws, "{\"results\": {\"items\": [\n{\"start_time\": \"abc\"}]}}", "bad:2: results.items[0].start_time: time \"abc\" is not a number"),
        (Format::Aws, "{\"results\": {\"items\": [{\"type\": \"pronunciation\", \"alternatives\": []}]}}", "bad:1: results.items[0]: item: no alternatives"),
        (Format::Aws, "[1, 2]", "bad:1: [0]: expected an object, found the number 1"),
        (Format::Aws, "{\"results\": ", "bad:1: not valid JSON: EOF while parsing"),
        (
            Format::AwsStream,
            "{\"Transcript\":{\"Results\":[]}}\n{\"BadRequestException\":{\"Message\":\"no\"}}\n",
            "bad:2: not a transcript event",
        ),
        (
            Format::AwsStream,
            "{\"Transcript\":{\"Results\":[]}}\n\n{\"Transcript\":{\"Results\":[{\"StartTime\":1}]}}\n",
            "bad:3: Transcript.Results[0]: field `EndTime` is missing",
        ),
        (Format::AwsStream, "{\"Transcript\": nope}", "bad:1: not valid JSON: expected ident"),
        (Format::Jsonl, "{\"type\":\"end\",\"call_id\":\"c\"}\n{\"type\":\"fragment\"}\n", "bad:2: field `call_id` is missing"),
    ];
    let mut wrong = Vec::new();
    for (format, text, want) in cases {
        let got = import(*format, p, text, &ImportOptions::default())
            .unwrap_err()
            .to_string();
        if !got.starts_with(want) {
            wrong.push(format!("{format}: {text:?}\n got {got}\nwant {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn garbage_never_panics() {
    let samples = [
        "",
        "\u{feff}",
        "WEBVTT",
        "WEBVTT\n\n-->\n",
        "WEBVTT\n\n1\n2\n3",
        "1\n-->",
        "<v",
        "{\\an8",
        "&#xFFFFFFFF; &#99999999; &;",
        "{\"results\":{}}",
        "{\"segments\":[]}",
        "[]",
        "[{}]",
        "WEBVTT\n\n00:00.000 --> 00:01.000\n<v A><v B><rt>x</rt>&amp",
        "1\n00:00:00,000 --> 00:00:01,000\n:\n\nmore\n\n\n",
    ];
    for text in samples {
        for format in Format::ALL {
            let _ = import(format, Path::new("g"), text, &ImportOptions::default());
        }
        let _ = detect(Path::new("g"), text);
    }
}

#[test]
fn aws_batch_channels_audio_segments_and_plain() {
    let p = Path::new("x.json");
    let item = |t0: &str, t1: &str, w: &str| {
        format!(
            r#"{{"start_time":"{t0}","end_time":"{t1}","alternatives":[{{"content":"{w}"}}],"type":"pronunciation"}}"#
        )
    };
    let punct =
        |w: &str| format!(r#"{{"alternatives":[{{"content":"{w}"}}],"type":"punctuation"}}"#);
    // Older channel output: words per channel, merged by time.
    let channels = format!(
        r#"{{"results":{{"channel_labels":{{"channels":[
            {{"channel_label":"ch_0","items":[{},{},{}]}},
            {{"channel_label":"ch_1","items":[{},{}]}}]}},"items":[]}}}}"#,
        item("0.1", "0.4", "hello"),
        punct("."),
        item("2.0", "2.5", "sure"),
        item("0.8", "1.2", "refund"),
        item("1.2", "1.9", "me"),
    );
    let events = import(Format::Aws, p, &channels, &ImportOptions::default()).unwrap();
    let texts: Vec<(Speaker, &str, u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some((f.speaker, f.text.as_str(), f.start_ms, f.end_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts,
        [
            (Agent, "hello.", 100, 400),
            (Customer, "refund me", 800, 1900),
            (Agent, "sure", 2000, 2500)
        ]
    );

    // Newer output: audio_segments.
    let segments = r#"{"results":{"audio_segments":[
        {"id":1,"transcript":"Second.","start_time":"3.0","end_time":"4.0","speaker_label":"spk_1","items":[1]},
        {"id":0,"transcript":"First one.","start_time":"1.0","end_time":"2.5","speaker_label":"spk_0","items":[0]}],
        "items":[]}}"#;
    let events = import(Format::Aws, p, segments, &ImportOptions::default()).unwrap();
    assert_eq!(
        events[1],
        frag("x", 1, Agent, "First one.", true, "u1", (1000, 2500), None)
    );
    assert_eq!(
        events[2],
        frag("x", 2, Customer, "Second.", true, "u2", (3000, 4000), None)
    );

    // No speakers: one utterance a sentence, all the default speaker.
    let plain = format!(
        r#"{{"results":{{"items":[{},{},{},{},{}]}}}}"#,
        item("0", "1", "Hi"),
        punct("."),
        item("1", "2", "Bye"),
        item("2", "3", "now"),
        punct("?"),
    );
    let events = import(Format::Aws, p, &plain, &ImportOptions::default()).unwrap();
    assert_eq!(
        events[1],
        frag("x", 1, Customer, "Hi.", true, "u1", (0, 1000), None)
    );
    assert_eq!(
        events[2],
        frag("x", 2, Customer, "Bye now?", true, "u2", (1000, 3000), None)
    );
    assert_eq!(events[3], end("x", 3000));
}

#[test]
fn aws_streaming_speaker_changes_inside_a_result() {
    let text = r#"[{"Transcript":{"Results":[{"Alternatives":[{"Transcript":"Fine True.","Items":[
        {"Content":"Fine","StartTime":1.0,"EndTime":1.5,"Speaker":"0","Type":"pronunciation"},
        {"StartTime":1.6,"EndTime":1.6,"Type":"speaker-change"},
        {"Content":"True","StartTime":1.6,"EndTime":2.0,"Speaker":"1","Type":"pronunciation"},
        {"Content":".","StartTime":2.0,"EndTime":2.0,"Type":"punctuation"}]}],
        "StartTime":1.0,"EndTime":2.0,"IsPartial":false,"ResultId":"r-9"}]}}]"#;
    let events = import(
        Format::AwsStream,
        Path::new("s.json"),
        text,
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        events[1],
        frag("s", 1, Agent, "Fine", true, "r-9", (1000, 1500), None)
    );
    assert_eq!(
        events[2],
        frag("s", 2, Customer, "True.", true, "r-9#2", (1600, 2000), None)
    );
}

#[test]
fn aws_streaming_empty_result_id_is_no_id() {
    let text = r#"{"Transcript":{"Results":[{"Alternatives":[{"Transcript":"Hello."}],
        "StartTime":0.0,"EndTime":1.0,"IsPartial":false,"ResultId":""}]}}
{"Transcript":{"Results":[{"Alternatives":[{"Transcript":"Again."}],
        "StartTime":1.0,"EndTime":2.0,"IsPartial":false,"ResultId":" "}]}}"#;
    let events = import(
        Format::AwsStream,
        Path::new("e.json"),
        text,
        &ImportOptions::default(),
    )
    .unwrap();
    let ids: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::Fragment(f) => Some(f.utterance_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
}

#[test]
fn vtt_cue_text_details() {
    use super::vtt::{cue_runs, decode_entities, parse_timestamp};
    assert_eq!(parse_timestamp("01:02:03.004"), Some(3_723_004));
    assert_eq!(parse_timestamp("02:03.5"), Some(123_500));
    assert_eq!(parse_timestamp("00:00:01,250"), Some(1250));
    assert_eq!(parse_timestamp("00:60.000"), None);
    assert_eq!(parse_timestamp("1.2.3"), None);
    assert_eq!(
        decode_entities("a &lt;b&gt; &#x41;&#66; &bogus; &"),
        "a <b> AB &bogus; &"
    );
    let runs = cue_runs(&["<ruby>漢字<rt>かんじ</rt></ruby>を", "読む"]);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].text, "漢字を読む");
    // A colon that is not a speaker prefix stays text.
    let runs = cue_runs(&["At 10:30 see http://x.y", "Note the time: 5 pm"]);
    assert_eq!(runs[0].voice, None);
    assert_eq!(runs[0].text, "At 10:30 see http://x.y Note the time: 5 pm");
    let runs = cue_runs(&["お客様：ふざけるな"]);
    assert_eq!(runs[0].voice.as_deref(), Some("お客様"));
    assert_eq!(runs[0].text, "ふざけるな");
}

/// The real Amazon Transcribe batch outputs of the shared corpus.
#[test]
fn corpus_aws_batch_samples() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let dir = corpus.join("asr_aws_transcribe_batch_samples/sample_material");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("note: {} absent, corpus test skipped", dir.display());
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    let mut checked = 0;
    for path in paths
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
    {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.display();
        assert_eq!(detect(path, &text), Some(Format::Aws), "{name}");
        let events = import(Format::Aws, path, &text, &ImportOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let frags: Vec<&Fragment> = events
            .iter()
            .filter_map(|e| match e {
                Event::Fragment(f) => Some(f),
                _ => None,
            })
            .collect();
        assert!(frags.len() >= 2, "{name}: {} fragments", frags.len());
        for pair in frags.windows(2) {
            assert!(pair[0].start_ms <= pair[1].start_ms, "{name}: {pair:?}");
            assert!(pair[0].seq < pair[1].seq);
        }
        for f in &frags {
            assert!(
                f.start_ms <= f.end_ms && !f.text.is_empty(),
                "{name}: {f:?}"
            );
            Event::Fragment((*f).clone())
                .validate(crate::event::DEFAULT_MAX_TEXT_BYTES)
                .unwrap();
        }
        let file_name = path.file_name().unwrap().to_string_lossy();
        let speakers: std::collections::HashSet<_> = frags.iter().map(|f| f.speaker).collect();
        if file_name.contains("speaker") || file_name.contains("channel") {
            assert_eq!(speakers.len(), 2, "{name}: both sides expected");
        }
        if file_name.contains("mask") {
            assert!(frags.iter().any(|f| f.text.contains("***")), "{name}");
        }
        let Some(Event::End(last)) = events.last() else {
            panic!("{name}: no end")
        };
        assert_eq!(
            last.end_ms,
            frags.iter().map(|f| f.end_ms).max().unwrap_or(0)
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} files");

    // Developer-guide examples that are valid JSON: batch outputs import,
    // streaming events import, the rest (job requests, IAM policies) are
    // not detected as anything.
    let docs = corpus.join("asr_aws_transcribe_docs/extracted_blocks");
    for entry in std::fs::read_dir(&docs).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let format = detect(&path, &text);
        let name = path.display();
        match format {
            Some(f @ (Format::Aws | Format::AwsStream)) => {
                let events = import(f, &path, &text, &ImportOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(events.len() > 2, "{name}: no fragments");
            }
            None => {}
            Some(other) => panic!("{name}: detected as {other}"),
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The fixtures of other vendors' formats (tests/fixtures/asr/), each with
/// the format it must be detected as and the options it is read with.
const ASR_FIXTURES: &[(&str, Option<Format>, Option<&str>)] = &[
    ("azure_batch.json", Some(Format::Azure), None),
    ("azure_realtime.jsonl", Some(Format::Azure), None),
    ("deepgram_prerecorded.json", Some(Format::Deepgram), None),
    ("deepgram_live.jsonl", Some(Format::Deepgram), None),
    ("aws_analytics_postcall.json", Some(Format::AwsAnalytics), None),
    ("aws_analytics_stream.jsonl", Some(Format::AwsAnalytics), None),
    ("contact_lens_segments.jsonl", Some(Format::AwsAnalytics), None),
    // Records of no known tool: not detected, read with --map.
    (
        "records_harper_style.json",
        None,
        Some("text=transcript,speaker=speaker_role,start_ms=start_ms,duration_ms=duration_ms,utterance=index"),
    ),
];

/// Golden files: each fixture of tests/fixtures/asr/ imports to the events
/// in tests/golden/import/<name>.jsonl (one event a line). To accept a
/// deliberate change, run with CALLGUARD_BLESS=1 and review the diff.
#[test]
fn asr_fixtures_match_their_golden_events() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bless = std::env::var_os("CALLGUARD_BLESS").is_some();
    let mut listed: Vec<String> = ASR_FIXTURES.iter().map(|f| f.0.to_owned()).collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(root.join("tests/fixtures/asr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(listed, present, "every fixture has a row in ASR_FIXTURES");
    let mut failed = Vec::new();
    for (name, want_format, map) in ASR_FIXTURES {
        let path = root.join("tests/fixtures/asr").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            detect(&path, &text),
            *want_format,
            "{name}: detected format"
        );
        let options = ImportOptions {
            map: map.map(|m| m.parse().unwrap()),
            ..ImportOptions::default()
        };
        let format = want_format.unwrap_or(Format::Map);
        let events = import(format, &path, &text, &options).unwrap_or_else(|e| panic!("{e}"));
        let got: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        let golden = root
            .join("tests/golden/import")
            .join(format!("{name}.jsonl"));
        if bless {
            std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            failed.push(format!(
                "{name}: events differ from {}\n--- got\n{got}--- want\n{want}",
                golden.display()
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{}\n(run with CALLGUARD_BLESS=1 to accept)",
        failed.join("\n")
    );
}

/// Every file of the shared corpus's Azure, Deepgram and AWS documentation
/// folders: transcripts import to valid events with both sides where the
/// file has them; everything else (request options, test expectations,
/// licences, documentation fragments that are not valid JSON) is refused
/// with a reason, never a panic.
#[test]
fn corpus_vendor_files() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !corpus.is_dir() {
        eprintln!("note: {} absent, corpus test skipped", corpus.display());
        return;
    }
    let mut imported = std::collections::BTreeMap::<&str, usize>::new();
    let mut refused = 0;
    for (folder, vendor) in [
        ("asr_azure_speech_fixtures", Format::Azure),
        ("asr_deepgram_sdk_fixtures", Format::Deepgram),
        ("asr_aws_transcribe_docs", Format::AwsAnalytics),
    ] {
        let mut paths = walk(&corpus.join(folder));
        paths.sort();
        assert!(!paths.is_empty(), "{folder}: no files");
        for path in paths {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let name = path.strip_prefix(&corpus).unwrap().display().to_string();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            // Forced to the folder's vendor format: events or an error.
            let _ = import(vendor, &path, &text, &ImportOptions::default());
            let format = match classify(&path, &text) {
                Ok(f) => f,
                Err(why) => {
                    let message = undetected(&path, &why).to_string();
                    assert!(message.contains("unknown transcript format: "), "{message}");
                    let transcript = file.ends_with("-response.json")
                        || (folder == "asr_azure_speech_fixtures" && file.ends_with(".json"));
                    assert!(!transcript, "{name}: a transcript not detected: {message}");
                    refused += 1;
                    continue;
                }
            };
            if folder != "asr_aws_transcribe_docs" {
                assert_eq!(format, vendor, "{name}");
            }
            let events = import(format, &path, &text, &ImportOptions::default())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let frags: Vec<&Fragment> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Fragment(f) => Some(f),
                    _ => None,
                })
                .collect();
            for event in &events {
                event
                    .validate(crate::event::DEFAULT_MAX_TEXT_BYTES)
                    .unwrap_or_else(|e| panic!("{name}: {e}: {event:?}"));
            }
            let speakers: std::collections::HashSet<_> = frags.iter().map(|f| f.speaker).collect();
            // Files with more than one speaker or role: both sides come out.
            let two_sided = [
                "transcriptSample.json",
                "realtimeresult.json",
                "summarizationInputSample.json",
                "Json_input_customer_support.json",
            ];
            if two_sided.contains(&file.as_str()) {
                assert_eq!(speakers.len(), 2, "{name}: both sides expected");
            }
            // The one live message of silence has no words; every other
            // transcript has some.
            let silent = text.contains("\"transcript\": \"\"") && name.contains("websocket");
            assert_eq!(
                frags.is_empty(),
                silent,
                "{name}: {} fragments",
                frags.len()
            );
            *imported.entry(format.as_str()).or_default() += 1;
        }
    }
    eprintln!("corpus vendor files: imported {imported:?}, refused {refused}");
    assert_eq!(imported.get("azure"), Some(&4));
    assert_eq!(imported.get("deepgram"), Some(&12));
}

fn asr_fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asr")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

#[test]
fn a_forced_wrong_format_names_the_field_and_the_likely_format() {
    let cases: &[(&str, Format, &str)] = &[
        (
            "azure_batch.json",
            Format::Whisper,
            "azure_batch.json:1: the top level: field `segments` is missing \
             (read as whisper, but the file looks like azure: try --format azure)",
        ),
        (
            "deepgram_prerecorded.json",
            Format::Aws,
            "deepgram_prerecorded.json:1: no transcript found reading it as aws \
             (expected results.items or results.audio_segments); the file looks like deepgram: \
             try --format deepgram",
        ),
        (
            "aws_analytics_postcall.json",
            Format::AwsStream,
            // serde reads a struct from a list too, so the mismatch shows
            // inside the list; the hint says what the file is.
            "aws_analytics_postcall.json:10: Transcript[0]: expected a list, found an object \
             (read as aws-stream, but the file looks like aws-analytics: try --format aws-analytics)",
        ),
        (
            "deepgram_live.jsonl",
            Format::Azure,
            "deepgram_live.jsonl:1: a real-time result needs RecognitionStatus",
        ),
    ];
    for (name, format, want) in cases {
        let (path, text) = asr_fixture(name);
        let got = import(*format, &path, &text, &ImportOptions::default())
            .map(|_| "imported".to_owned())
            .unwrap_or_else(|e| e.to_string());
        let got = got.rsplit('/').next().unwrap_or(&got).to_owned();
        assert!(
            got.starts_with(want),
            "{name} as {format}:\n got {got}\nwant {want}"
        );
        assert!(!got.contains("invalid type"), "{got}");
    }
}

#[test]
fn unknown_files_say_what_was_seen_and_why() {
    let p = Path::new("x.json");
    let cases: &[(&str, &str)] = &[
        ("", "the file is empty"),
        (
            "hello there",
            "not JSON (line 1 column 1: expected value), no WEBVTT line, no SRT cue",
        ),
        (
            r#"{"model": "nova-3", "smart_format": true}"#,
            "a JSON object with keys \"model\", \"smart_format\", with none of the marks of jsonl, aws, ",
        ),
        ("[]", "an empty JSON list"),
        (
            r#"[{"index": 1, "speaker_role": "agent", "transcript": "hello"}]"#,
            "try --map text=transcript,speaker=speaker_role",
        ),
    ];
    for (text, want) in cases {
        let why = classify(p, text).unwrap_err();
        let got = undetected(p, &why).to_string();
        assert!(
            got.starts_with("x.json:1: unknown transcript format: "),
            "{got}"
        );
        assert!(got.contains(want), "{text:?}\n got {got}\nwant {want}");
    }
}

#[test]
fn vendor_bad_input_names_the_field() {
    let p = Path::new("bad");
    let cases: &[(Format, &str, &str)] = &[
        (
            Format::Azure,
            r#"{"recognizedPhrases": [{"offset": "1.5s", "nBest": [{"display": "x"}]}]}"#,
            "bad:1: recognizedPhrases[0].offset: \"1.5s\" is not a duration like \"PT1.5S\"",
        ),
        (
            Format::Azure,
            r#"{"recognizedPhrases": [{"channel": 0, "nBest": [{"display": "x"}]}]}"#,
            "bad:1: recognizedPhrases[0]: neither offsetInTicks nor offset is given",
        ),
        (
            Format::Azure,
            "{\"Text\": \"a\", \"Offset\": 0, \"Duration\": 1}\n{\"Offset\": 5}\n",
            "bad:2: a real-time result needs RecognitionStatus (a final) or Text (a hypothesis)",
        ),
        (
            Format::Azure,
            r#"[{"Text": "a", "Offset": 0, "Duration": 1}, {"RecognitionStatus": "Success", "Offset": true}]"#,
            "bad:1: [1].Offset: expected a time in 100 ns ticks, found true",
        ),
        (
            Format::Deepgram,
            r#"{"type": "Results", "start": 0, "duration": 1, "is_final": true, "channel": {"alternatives": [{"transcript": "x", "words": [{"word": "x", "start": 2, "end": 1}]}]}}"#,
            "bad:1: channel.alternatives[0].words[0]: word: end 1 s is before start 2 s",
        ),
        (
            Format::Deepgram,
            r#"{"results": {"channels": {"alternatives": []}}}"#,
            "bad:1: results.channels: expected a list, found an object",
        ),
        (
            Format::AwsAnalytics,
            r#"{"Transcript": [{"Content": "x", "EndOffsetMillis": 5, "ParticipantRole": "AGENT"}]}"#,
            "bad:1: Transcript[0]: BeginOffsetMillis is missing",
        ),
        (
            Format::AwsAnalytics,
            "{\"STARTED\": 1}\n{\"UtteranceEvent\": {\"UtteranceId\": \"u\", \"IsPartial\": \"yes\", \"BeginOffsetMillis\": 0, \"EndOffsetMillis\": 1}}\n",
            "bad:2: UtteranceEvent.IsPartial: expected true or false, found the text \"yes\"",
        ),
        (
            Format::AwsAnalytics,
            r#"{"Segments": [{"Transcript": {"Content": "x", "BeginOffsetMillis": 9, "EndOffsetMillis": 1}}]}"#,
            "bad:1: Segments[0].Transcript: turn: end 0.001 s is before start 0.009 s",
        ),
    ];
    let mut wrong = Vec::new();
    for (format, text, want) in cases {
        let got = import(*format, p, text, &ImportOptions::default())
            .map(|_| "imported".to_owned())
            .unwrap_or_else(|e| e.to_string());
        if !got.starts_with(want) {
            wrong.push(format!("{format}: {text}\n got {got}\nwant {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn field_map_parsing() {
    let ok: FieldMap = "text=a.b, speaker=who ,start=t0,duration_ms=len,call=conv,records=items"
        .parse()
        .unwrap();
    assert_ne!(ok, "text=a".parse::<FieldMap>().unwrap());
    for (bad, want) in [
        ("speaker=role", "--map: text=FIELD is required"),
        ("text", "--map: \"text\" is not key=FIELD"),
        ("text=a,txt=b", "--map: unknown key \"txt\""),
        ("text=a,start=x,start=y", "--map: start is given twice"),
        ("text=a..b", "--map: text: \"a..b\" is not a field name"),
    ] {
        let got = bad.parse::<FieldMap>().unwrap_err();
        assert!(got.starts_with(want), "{bad}: {got}");
    }
}

#[test]
fn map_reads_nested_records_calls_and_interim_text() {
    let text = r#"{"items": [
        {"conv": "c1", "who": {"role": "customer"}, "words": "you are", "t": 1.5, "end": 2.0, "fin": false, "u": "x1"},
        {"conv": "c1", "who": {"role": "customer"}, "words": "you are an idiot", "t": 1.5, "end": 3.0, "fin": true, "u": "x1"}]}
{"items": [{"conv": "c2", "who": {"role": "agent"}, "words": "hello", "t": "0.25", "end": 1, "fin": "true", "u": 7},
           {"conv": "c1", "who": {"role": "customer"}, "words": " ", "t": 4, "end": 5, "fin": true, "u": "x2"}]}
"#;
    let map: FieldMap =
        "text=words,speaker=who.role,start=t,end=end,final=fin,utterance=u,call=conv,records=items"
            .parse()
            .unwrap();
    let options = ImportOptions {
        map: Some(map),
        ..ImportOptions::default()
    };
    let events = import(Format::Map, Path::new("r.jsonl"), text, &options).unwrap();
    assert_eq!(
        events,
        [
            start("c1", None),
            frag(
                "c1",
                1,
                Customer,
                "you are",
                false,
                "x1",
                (1500, 2000),
                None
            ),
            frag(
                "c1",
                2,
                Customer,
                "you are an idiot",
                true,
                "x1",
                (1500, 3000),
                None
            ),
            end("c1", 3000),
            start("c2", None),
            frag("c2", 1, Agent, "hello", true, "7", (250, 1000), None),
            end("c2", 1000),
        ]
    );
    // A record without a mapped field fails the file, naming both.
    let map: FieldMap = "text=words,start=begin,records=items".parse().unwrap();
    let options = ImportOptions {
        map: Some(map),
        ..ImportOptions::default()
    };
    let err = import(Format::Map, Path::new("r.jsonl"), text, &options)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "r.jsonl:1: record [0]: field \"begin\": missing");
    // Format map without a map.
    let err = import(
        Format::Map,
        Path::new("r.jsonl"),
        text,
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("give --map text=FIELD"), "{err}");
}
