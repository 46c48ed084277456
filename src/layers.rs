//! The layers of the crate, and a test that fails on an upward import.
//!
//! Each top-level module has a layer; it may use (`crate::…`) only modules
//! of a lower layer, never one of its own layer or above. So the core
//! never learns of the service, the gRPC handlers and the console call
//! down into the live state instead of the other way round, and `serve`
//! (which starts things and mounts handlers) is imported by the tools
//! (`src/tools/`) only.
//! ARCHITECTURE.md draws the same stack. A new module goes into [`LAYERS`]
//! before it can be used. There are no exceptions: the last one (`config`
//! using `webhook` to check `[[webhooks]]` entries) ended when the entries
//! and their checks moved under `config`; an import that seems to need one
//! names code that belongs lower down.

use std::collections::BTreeSet;
use std::path::Path;

/// Bottom first. Modules in one row are peers: neither imports the other.
const LAYERS: &[&[&str]] = &[
    &["category", "telemetry"],
    &["event", "style"],
    &["text"],
    &["lexicon"],
    &["engine"],
    &["policy"],
    &["alert"],
    &["call"],
    &["store"],
    &["auth"],
    &["config"],
    &["live"],
    &["grpc", "console", "webhook"],
    &["serve", "replay"],
    &["tools"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// The top-level modules a source file names as `crate::<module>`,
/// including each item of a `crate::{a::X, b}` group; comments skipped.
fn crate_refs(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let leading_ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|&c| is_ident(c))
            .collect()
    };
    let mut refs = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at]
            .chars()
            .next_back()
            .is_some_and(|c| is_ident(c) || c == '$')
        {
            continue; // `other_crate::`, `$crate::`
        }
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's top level at commas: `{a::{X, Y}, b}` → a, b.
            let (mut depth, mut item_start) = (0usize, true);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        refs.insert(leading_ident(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            refs.insert(leading_ident(rest));
        }
    }
    refs.retain(|r| !r.is_empty());
    refs
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("src/ is readable").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(&src).expect("below src/");
        let first = relative.components().next().expect("a file");
        let module = first.as_os_str().to_string_lossy();
        let module = module.strip_suffix(".rs").unwrap_or(&module);
        // The crate root and the binary (main.rs, cli.rs: `callguard::…`)
        // stand above every layer.
        if ["lib", "main", "cli", "layers"].contains(&module) {
            continue;
        }
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "{}: module `{module}` has no layer in LAYERS (src/layers.rs)",
                relative.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(path).expect("a source file is readable");
        for used in crate_refs(&source) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => wrong.push(format!(
                    "{}: `{module}` (layer {own}) uses `crate::{used}` (layer {theirs}), which is not below it",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{}: `crate::{used}` is not a module in LAYERS (src/layers.rs)",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn references_are_read_from_paths_groups_and_not_comments() {
    let source = "use crate::alert::Alert;\n\
                  use crate::{\n    call::{CallTable, Applied},\n    store::StoreError,\n};\n\
                  // crate::serve::start in a comment\n\
                  let x = crate::live::Service::new(); // crate::grpc\n\
                  macro_rules! m { () => { $crate::text::x } }\n\
                  use other_crate::engine;\n";
    let refs: Vec<String> = crate_refs(source).into_iter().collect();
    assert_eq!(refs, ["alert", "call", "live", "store"]);
}
