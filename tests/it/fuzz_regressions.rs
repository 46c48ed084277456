//! Inputs kept from fuzzing (`fuzz/regressions/<target>/`, see
//! fuzz/README.md) through the same checks the fuzz targets run
//! (`callguard::tools::fuzz_checks`). Inputs under a `pending/` folder reproduce a
//! crash not fixed yet and are skipped.

use std::path::Path;

use callguard::tools::fuzz_checks;

fn run(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{}: no inputs", dir.display());
    for path in paths {
        let data = std::fs::read(&path).expect("read input");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{}: check failed", path.display());
    }
}

#[test]
fn normalize() {
    run("normalize", fuzz_checks::normalize);
}

#[test]
fn engine_scan() {
    run("engine_scan", fuzz_checks::engine_scan);
}

#[test]
fn import_aws() {
    run("import_aws", fuzz_checks::import_aws);
}

#[test]
fn import_aws_stream() {
    run("import_aws_stream", fuzz_checks::import_aws_stream);
}

#[test]
fn import_whisper() {
    run("import_whisper", fuzz_checks::import_whisper);
}

#[test]
fn import_vtt() {
    run("import_vtt", fuzz_checks::import_vtt);
}

#[test]
fn import_srt() {
    run("import_srt", fuzz_checks::import_srt);
}

#[test]
fn import_jsonl() {
    run("import_jsonl", fuzz_checks::import_jsonl);
}

#[test]
fn event_json() {
    run("event_json", fuzz_checks::event_json);
}

#[test]
fn lexicon_parse() {
    run("lexicon_parse", fuzz_checks::lexicon_parse);
}

#[test]
fn policy_parse() {
    run("policy_parse", fuzz_checks::policy_parse);
}

#[test]
fn proto_event() {
    run("proto_event", fuzz_checks::proto_event);
}
