//! `callguard replay` as a user runs it: regression tests named after the
//! bugs of issue #15.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn callguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callguard"))
}

fn fixtures(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn alerts(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert per line"))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue #15 bug 1: `call.srt` and `call.vtt` shared the call id `call`;
/// their alerts merged under one call with duplicate alert ids.
#[test]
fn files_with_the_same_stem_become_one_call() {
    let dir = fixtures("import");
    let files = std::fs::read_dir(&dir).unwrap().count();
    let out = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("replayed {files} call(s)")),
        "{files} files: {}",
        stderr(&out)
    );
    let alerts = alerts(&out);
    let calls: BTreeSet<&str> = alerts
        .iter()
        .map(|a| a["call_id"].as_str().unwrap())
        .collect();
    // The stems collide, so the file names are the ids.
    assert!(
        calls.contains("call.vtt") && !calls.contains("call"),
        "{calls:?}"
    );
    // One alert id belongs to one call.
    let mut owner: BTreeMap<u64, &str> = BTreeMap::new();
    for a in &alerts {
        let call = a["call_id"].as_str().unwrap();
        let first = owner.entry(a["alert_id"].as_u64().unwrap()).or_insert(call);
        assert_eq!(*first, call, "alert id shared by two calls");
    }
}

/// Issue #15 bug 1, second half: two inputs naming the same call id are
/// reported, not merged into one call.
#[test]
fn two_inputs_with_the_same_call_id_are_reported_not_merged() {
    let dir = tempfile::tempdir().unwrap();
    let call = std::fs::read_to_string(fixtures("abusive_call_ja.jsonl")).unwrap();
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    std::fs::write(&a, &call).unwrap();
    std::fs::write(&b, &call).unwrap();
    let one = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&a)
        .output()
        .unwrap();
    let two = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    assert!(two.status.success(), "{}", stderr(&two));
    // The first file's call alone, as if replayed alone.
    assert_eq!(two.stdout, one.stdout);
    let err = stderr(&two);
    assert!(err.contains("replayed 1 call(s)"), "{err}");
    assert!(
        err.contains("call id also used in") && err.contains("b.jsonl"),
        "{err}"
    );
}

/// Issue #15 bug 6: the report's summary said "alerts 7" where the
/// closing line said "9 alert(s)".
#[test]
fn replay_report_counts_disagree_with_its_summary_line() {
    let out = callguard()
        .args(["replay", "--output", "report"])
        .arg(fixtures("import"))
        .arg(fixtures("abusive_call_ja.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    let line = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("alerts"))
        .expect("an alerts line")
        .trim()
        .to_owned();
    assert!(line.contains("retracted"), "{report}");
    assert!(
        stderr(&out).trim_end().ends_with(&line),
        "report: {line}\nstderr: {}",
        stderr(&out)
    );
    let jsonl = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(fixtures("import"))
        .arg(fixtures("abusive_call_ja.jsonl"))
        .output()
        .unwrap();
    let events = alerts(&jsonl).len();
    assert!(
        line.contains(&format!("; {events} alert events")),
        "{line} vs {events} lines"
    );
}

/// Issue #17: the report's colour goes through anstream. Piped, it has no
/// escape code; `CLICOLOR_FORCE` keeps the styles, and `NO_COLOR` wins over
/// it.
#[test]
fn report_to_a_pipe_has_no_escape_codes_unless_forced() {
    let report = |env: &[(&str, &str)]| {
        let mut command = callguard();
        command
            .args(["replay", "--output", "report"])
            .arg(fixtures("abusive_call_ja.jsonl"));
        for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE"] {
            command.env_remove(var);
        }
        command.envs(env.iter().copied());
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let piped = report(&[]);
    assert!(piped.contains("summary"), "{piped}");
    assert!(!piped.contains('\x1b'), "{piped:?}");
    let forced = report(&[("CLICOLOR_FORCE", "1")]);
    assert!(forced.contains('\x1b'), "{forced:?}");
    assert_eq!(anstream::adapter::strip_str(&forced).to_string(), piped);
    assert_eq!(report(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]), piped);
}

/// Issue #16 item 2 / #17: a replay shows its progress (fragments/s, ETA)
/// on stderr when that is a terminal, and never on stdout: the alerts are
/// byte for byte those of a run without a terminal. The terminal is a pty
/// from util-linux `script`; without it the test skips.
#[test]
fn progress_goes_to_a_terminal_stderr_and_never_to_stdout() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: `script` (util-linux) is not installed, no pty to test with");
        return;
    }
    let input = fixtures("abusive_call_ja.jsonl");
    let piped = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(
        !stderr(&piped).contains("fragments/s"),
        "{}",
        stderr(&piped)
    );

    // stderr on the pty, stdout to a file.
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.jsonl");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let shell = format!(
        "{} replay --output jsonl {} > {}",
        quote(Path::new(env!("CARGO_BIN_EXE_callguard"))),
        quote(&input),
        quote(&alerts)
    );
    let typescript = dir.path().join("typescript");
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &shell])
        .arg(&typescript)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let terminal = std::fs::read_to_string(&typescript).unwrap();
    assert!(
        terminal.contains("fragments/s") && terminal.contains("ETA"),
        "{terminal}"
    );
    assert_eq!(std::fs::read(&alerts).unwrap(), piped.stdout);
}

/// Issue #15: `replay -` was refused although `scan -` works.
#[test]
fn replay_reads_standard_input() {
    let file = fixtures("abusive_call_ja.jsonl");
    let from_file = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&file)
        .output()
        .unwrap();
    let from_stdin = callguard()
        .args(["replay", "--output", "jsonl", "-"])
        .stdin(Stdio::from(std::fs::File::open(&file).unwrap()))
        .output()
        .unwrap();
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert!(!from_file.stdout.is_empty());
    assert_eq!(from_stdin.stdout, from_file.stdout);
    // An imported format on standard input is one call named `stdin`.
    let vtt = callguard()
        .args(["replay", "--output", "jsonl", "-"])
        .stdin(Stdio::from(
            std::fs::File::open(fixtures("import/call.vtt")).unwrap(),
        ))
        .output()
        .unwrap();
    assert!(vtt.status.success(), "{}", stderr(&vtt));
    assert!(alerts(&vtt).iter().all(|a| a["call_id"] == "stdin"));
}

/// Issue #15: imports without a start time got `raised_at` 1970-01-01.
/// They are dated by their file's modification time.
#[test]
fn imports_without_a_start_time_are_not_dated_1970() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.vtt");
    std::fs::copy(fixtures("import/call.vtt"), &path).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_790_000_000);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(when)
        .unwrap();
    let out = callguard()
        .args(["replay", "--output", "jsonl"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = alerts(&out);
    assert!(!alerts.is_empty());
    for a in &alerts {
        let raised: jiff::Timestamp = a["raised_at"].as_str().unwrap().parse().unwrap();
        let expected = jiff::Timestamp::from_second(1_790_000_000).unwrap()
            + jiff::SignedDuration::from_millis(a["at_ms"].as_i64().unwrap());
        assert_eq!(raised, expected, "{a}");
    }
}
