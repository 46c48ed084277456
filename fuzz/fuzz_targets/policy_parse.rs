#![no_main]
// The check lives in the library (src/tools/fuzz_checks.rs) so the regression
// test runs the same code on the inputs kept in fuzz/regressions/policy_parse/.
libfuzzer_sys::fuzz_target!(|data: &[u8]| callguard::tools::fuzz_checks::policy_parse(data));
