#![no_main]
// The check lives in the library (src/tools/fuzz_checks.rs) so the regression
// test runs the same code on the inputs kept in fuzz/regressions/import_whisper/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callguard::tools::fuzz_checks::import_whisper(data));
