//! Build script:
//! - compiles `proto/callguard/v1/*.proto` with protox (a pure-Rust protobuf
//!   compiler: a fresh machine needs no system `protoc`) into tonic/prost code
//!   and a file descriptor set for server reflection;
//! - embeds the shipped lexicons (`lexicons/**/*.toml`) in the binary, so
//!   `callguard serve` runs on built-in defaults from anywhere;
//! - hashes the code (`src/`, `Cargo.lock`) for the engine cache's key
//!   (`src/engine/cache.rs`): a binary built from other code never reads
//!   an automaton another one stored, even under the same version.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    compile_protos();
    embed_lexicons();
    hash_code();
}

/// BLAKE3 of every file below `src/` and of `Cargo.lock` (paths and
/// bytes, in path order), as `CODE_HASH`.
fn hash_code() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut files = Vec::new();
    collect_all(Path::new("src"), &mut files);
    files.push(PathBuf::from("Cargo.lock"));
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for file in &files {
        let bytes = std::fs::read(file).unwrap_or_default();
        let path = file.to_string_lossy();
        for part in [path.as_bytes(), &bytes[..]] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    let out = format!(
        "/// BLAKE3 of the crate's code, by the build script.\nconst CODE_HASH: &str = {:?};\n",
        hasher.finalize().to_hex().as_str()
    );
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    std::fs::write(dest.join("code_hash.rs"), out).expect("write code_hash.rs");
}

/// Every file below `dir`.
fn collect_all(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_all(&path, out);
        } else {
            out.push(path);
        }
    }
}

const PROTOS: &[&str] = &[
    "proto/callguard/v1/events.proto",
    "proto/callguard/v1/alerts.proto",
    "proto/callguard/v1/ingest.proto",
    "proto/callguard/v1/admin.proto",
];

fn compile_protos() {
    println!("cargo:rerun-if-changed=proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = match protox::compile(PROTOS, ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("invalid protobuf definitions: {e:?}"),
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    let descriptor = out.join("callguard_descriptor.bin");
    std::fs::write(&descriptor, prost::Message::encode_to_vec(&fds)).expect("write descriptor set");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost with small per-stream buffers (src/grpc/codec.rs)
        .codec_path("crate::grpc::codec::CompactCodec")
        .compile_fds(fds)
        .expect("generate gRPC code");
}

fn embed_lexicons() {
    let root = Path::new("lexicons");
    println!("cargo:rerun-if-changed=lexicons");
    let mut files = Vec::new();
    collect(root, &mut files);
    files.sort();
    let mut out =
        String::from("/// The shipped lexicon files: (path relative to `lexicons/`, contents).\n");
    out.push_str("pub(crate) static EMBEDDED_LEXICONS: &[(&str, &str)] = &[\n");
    for file in &files {
        let relative = file
            .strip_prefix(root)
            .expect("below lexicons/")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let absolute = std::fs::canonicalize(file).expect("lexicon file readable");
        writeln!(
            out,
            "    ({relative:?}, include_str!({:?})),",
            absolute.display().to_string()
        )
        .expect("write to string");
        println!("cargo:rerun-if-changed={}", file.display());
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR set by cargo"));
    std::fs::write(dest.join("embedded_lexicons.rs"), out).expect("write embedded_lexicons.rs");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
}
