//! `callguard lexicon check` as a policy owner runs it.

use std::process::Command;

fn callguard() -> Command {
    Command::new(env!("CARGO_BIN_EXE_callguard"))
}

#[test]
fn check_passes_on_shipped_lexicons() {
    let out = callguard()
        .args(["lexicon", "check"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lexicons"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
}

/// `--version` names the built-in lexicons as alerts do (`lexicon_version`:
/// the manifest's version and a content hash), the same as `lexicon check`
/// of the shipped folder reports.
#[test]
fn version_names_the_built_in_lexicons() {
    let out = callguard().arg("--version").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let shipped = callguard()
        .args(["lexicon", "check"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lexicons"))
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&shipped.stdout);
    let version = check
        .split("(version ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no version in {check}"));
    assert!(version.contains('+'), "{version}");
    assert_eq!(
        stdout.trim(),
        format!(
            "callguard {} (lexicons {version})",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn check_reports_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lexicon.toml"), "version = \"x\"\n").unwrap();
    std::fs::create_dir(dir.path().join("en")).unwrap();
    std::fs::write(
        dir.path().join("en/bad.toml"),
        "category = \"threat\"\n\n[[term]]\nid = \"a\"\npatterns = [\"watch your back\"]\nmatch = [\"you should watch out\"]\n",
    )
    .unwrap();
    let out = callguard()
        .args(["lexicon", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("en/bad.toml:6: term \"a\" does not match its example"),
        "{stdout}"
    );

    std::fs::write(
        dir.path().join("en/bad.toml"),
        "category = \"rudeness\"\n[[term]]\nid = \"a\"\npatterns = [\"x\"]\n",
    )
    .unwrap();
    let out = callguard()
        .args(["lexicon", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("en/bad.toml:1: unknown category \"rudeness\""),
        "{stderr}"
    );
}

#[test]
fn scan_prints_hits_as_json_lines() {
    let mut child = callguard()
        .args(["scan", "--language", "ja"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all("ぶっ殺すぞ\nお忙しいところすみません\n".as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["hits"][0]["category"], "violence");
    assert_eq!(lines[1]["hits"].as_array().unwrap().len(), 0);
    // `start`/`end` are bytes of the UTF-8 line, `char_start`/`char_end`
    // characters: both name the same words.
    let line = "ぶっ殺すぞ";
    let hit = &lines[0]["hits"][0];
    let at = |key: &str| hit[key].as_u64().unwrap() as usize;
    let by_chars: String = line
        .chars()
        .skip(at("char_start"))
        .take(at("char_end") - at("char_start"))
        .collect();
    assert_eq!(&line[at("start")..at("end")], by_chars, "{hit}");
    assert_eq!(at("end") - at("start"), 3 * by_chars.chars().count());
}

#[test]
fn expand_prints_what_a_template_matches() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lexicon.toml"), "version = \"x\"\n").unwrap();
    std::fs::create_dir(dir.path().join("ja")).unwrap();
    std::fs::write(
        dir.path().join("ja/demand.toml"),
        r#"category = "excessive_demand"
[[term]]
id = "seii"
patterns = ["誠意[を|]{見せる:ichidan}"]
match = ["誠意見せてくださいよ"]
[[term]]
id = "kaerimichi"
category = "threat"
parts = [["帰り道"], ["気をつけ"]]
near = 10
match = ["帰り道には気をつけな"]
"#,
    )
    .unwrap();
    let out = callguard()
        .args(["lexicon", "check"])
        .arg(dir.path())
        .args(["--expand", "seii", "--expand", "ja/threat/kaerimichi"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for want in [
        "ja/excessive_demand/seii",
        "    誠意を見せろ",
        "    誠意見せてください",
        "    誠意を見せなさい",
        "  part 1 (1):\n    帰り道",
        "near 10 (any order), over 1 utterance(s)",
    ] {
        assert!(stdout.contains(want), "{want:?} not in\n{stdout}");
    }
    let out = callguard()
        .args(["lexicon", "check"])
        .arg(dir.path())
        .args(["--expand", "nosuchterm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no term \"nosuchterm\""));
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::{Read, Write};
    let mut child = callguard()
        .args(["scan", "--language", "en"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // More lines than a pipe buffers; the write fails once scan is gone.
        for _ in 0..200_000 {
            if stdin.write_all(b"you idiot\n").is_err() {
                break;
            }
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout); // as `head -c 64` does
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
