//! `callguard replay` over other tools' transcripts, as a user runs it:
//! detection, `--map`, and the errors for files it cannot read.

use std::process::Command;

fn callguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callguard"))
}

const ASR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/asr");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = callguard().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Alerts (JSON Lines) of one call.
fn alerts_of(stdout: &str, call_id: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["call_id"] == call_id)
        .collect()
}

#[test]
fn vendor_formats_are_detected_and_replayed() {
    let (code, stdout, stderr) = run(&["replay", "--output", "jsonl", ASR]);
    // The records file needs --map: refused, the others replayed.
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("records_harper_style.json:1: unknown transcript format: a JSON list")
            && stderr.contains("try --map text=transcript,speaker=speaker_role"),
        "{stderr}"
    );
    assert!(stderr.contains("replayed 7 call(s)"), "{stderr}");
    // Interim text that the final result takes back: provisional, then
    // retracted (Azure real-time hypotheses).
    let azure = alerts_of(&stdout, "azure_realtime");
    let statuses: Vec<&str> = azure
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["provisional", "retracted"], "{azure:?}");
    // Interim, then the final stretch of the same utterance confirms it
    // (Deepgram is_final stretches joined up to speech_final).
    let deepgram = alerts_of(&stdout, "deepgram_live");
    let statuses: Vec<&str> = deepgram
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["provisional", "confirmed"], "{deepgram:?}");
    assert_eq!(deepgram[0]["alert_id"], deepgram[1]["alert_id"]);
    // Roles from the file: the customer's words alert, the agent's do not.
    for call in [
        "aws_analytics_postcall",
        "aws_analytics_stream",
        "contact_lens_segments",
    ] {
        let alerts = alerts_of(&stdout, call);
        assert!(!alerts.is_empty(), "{call}: no alert");
        assert!(
            alerts
                .iter()
                .all(|a| a["evidence"][0]["speaker"] == "customer"),
            "{call}: {alerts:?}"
        );
    }
}

#[test]
fn map_reads_records_of_any_tool() {
    let file = format!("{ASR}/records_harper_style.json");
    let (code, stdout, stderr) = run(&[
        "replay",
        "--output",
        "jsonl",
        "--map",
        "text=transcript,speaker=speaker_role,start_ms=start_ms,duration_ms=duration_ms,utterance=index",
        &file,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let alerts = alerts_of(&stdout, "records_harper_style");
    assert_eq!(alerts.len(), 1, "{stdout}");
    assert_eq!(alerts[0]["category"], "verbal_abuse");
    assert_eq!(alerts[0]["evidence"][0]["utterance_id"], "2");
    assert_eq!(alerts[0]["evidence"][0]["start_ms"], 3900);

    let (code, _, stderr) = run(&["replay", "--format", "map", &file]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--format map needs --map"), "{stderr}");
    let (code, _, stderr) = run(&["replay", "--map", "speaker=role", &file]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--map: text=FIELD is required"), "{stderr}");
}

#[test]
fn a_forced_wrong_format_says_which_field_and_which_format() {
    let file = format!("{ASR}/azure_batch.json");
    let (code, _, stderr) = run(&["replay", "--format", "whisper", &file]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "azure_batch.json:1: the top level: field `segments` is missing \
             (read as whisper, but the file looks like azure: try --format azure)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("invalid type"), "{stderr}");
}
