//! The compiled engine kept on disk, so that a command does not parse,
//! fold and compile ~60,000 patterns on every start (issue #16, item 1).
//!
//! Two kinds of file in the cache folder, both named by a key: a BLAKE3
//! hash of this format's version, the crate version, a hash of the code
//! the compile depends on (every source file and `Cargo.lock`, taken by
//! the build script) and the lexicon files (paths and bytes, in order). A
//! changed lexicon or a rebuilt binary gives a new key, so a stale file is
//! never read.
//!
//! - `KEY.engine`: the validated lexicon and the engine's tables (folded
//!   patterns, what each belongs to, which patterns each automaton holds).
//! - `KEY-N.automaton`: automaton `N`'s alphabet and [`Dfa`] as it is
//!   scanned — dense rows of the shallow states, sparse nodes below, match
//!   lists: a few MB.
//!
//! Each file is a header (magic, format version, kind, key, payload length,
//! XXH3-128 checksum of the payload) and the payload, written to a
//! temporary file and renamed into place, so a reader sees a whole file or
//! none. A file that is missing, unreadable, short, damaged, of another
//! format or key is ignored (logged at debug) and the engine is built as
//! without a cache; so is a folder that cannot be written. The cache never changes an
//! answer: what it holds is what the build made, checked on load.
//!
//! Why a cache at run time and not a build-time artefact: a build script
//! cannot run the crate's own lexicon and engine code without moving both
//! to a crate of their own, the tables would add ~90 MB to the binary (or
//! their plans ~10 MB plus a second compile of the crate's matching code
//! on every build), and a `--lexicons` folder or a reloaded set could not
//! use them. BENCHMARKS.md, "Start-up from the engine cache".

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use super::alphabet::Alphabet;
use super::dense::Dfa;
use super::{AutomatonSlot, Engine, NotNear, PatternInfo, PatternKind, Texts};
use crate::category::{CategoryKind, Severity, Speaker};
use crate::lexicon::{
    Dialogue, Frame, FrameKind, FramePosition, Lexicon, Located, Near, Origin, Term,
};

include!(concat!(env!("OUT_DIR"), "/code_hash.rs"));

/// The environment variable naming the cache folder; set and empty, no
/// cache is used.
pub const CACHE_DIR_ENV: &str = "CALLGUARD_CACHE_DIR";

const MAGIC: [u8; 8] = *b"CGCACHE\0";
/// Bumped on any change to what the files hold or how.
const FORMAT: u32 = 4;
const HEADER: usize = 8 + 4 + 4 + 32 + 8 + 16;
/// Keys whose files are kept when a new engine file is written: the most
/// recently written. Enough for a few binaries or lexicon sets in turn
/// (two builds compared, a reload and back) without growing for ever.
const KEEP_KEYS: usize = 4;

/// What a file holds (the header says, so one is never read as the other).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Engine = 1,
    Automaton = 2,
}

/// Why a cache file was not used or not written. Never fatal: the engine
/// is then built as without a cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a callguard cache file")]
    Magic,
    #[error("cache format {0}, this build reads {FORMAT}")]
    Format(u32),
    #[error("a file of another kind or key")]
    Key,
    #[error("{found} bytes of payload, the header says {expected}")]
    Length { expected: u64, found: u64 },
    #[error("checksum mismatch")]
    Checksum,
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
}

/// The default cache folder: `$CALLGUARD_CACHE_DIR` when set (empty: no
/// cache), else `$XDG_CACHE_HOME/callguard`, else `~/.cache/callguard`;
/// `None` when none of these is known.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV) {
        return (!dir.is_empty()).then(|| PathBuf::from(dir));
    }
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
        .map(|d| d.join("callguard"))
}

/// One lexicon set's files in one cache folder.
#[derive(Clone, Debug)]
pub(super) struct EngineCache {
    dir: PathBuf,
    key: [u8; 32],
    hex: String,
}

impl EngineCache {
    /// The cache of the engine compiled from these lexicon files (path,
    /// text), in the order they are compiled in.
    pub(super) fn new<'a>(dir: &Path, sources: impl Iterator<Item = (&'a str, &'a str)>) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&MAGIC);
        hasher.update(&FORMAT.to_le_bytes());
        for part in [env!("CARGO_PKG_VERSION"), CODE_HASH] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        for (path, text) in sources {
            for part in [path.as_bytes(), text.as_bytes()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part);
            }
        }
        let key = *hasher.finalize().as_bytes();
        let hex = key.iter().map(|b| format!("{b:02x}")).collect();
        EngineCache {
            dir: dir.to_path_buf(),
            key,
            hex,
        }
    }

    fn engine_path(&self) -> PathBuf {
        self.dir.join(format!("{}.engine", self.hex))
    }

    fn automaton_path(&self, index: u32) -> PathBuf {
        self.dir.join(format!("{}-{index}.automaton", self.hex))
    }

    /// The engine as it was stored, without automata (each is loaded
    /// when first needed, [`EngineCache::load_automaton`]).
    pub(super) fn load_engine(&self) -> Result<Engine, CacheError> {
        self.open(&self.engine_path(), Kind::Engine)?
            .decode(read_engine)
    }

    pub(super) fn store_engine(&self, engine: &Engine) -> Result<(), CacheError> {
        let mut w = Writer::default();
        write_engine(&mut w, engine);
        self.write(&self.engine_path(), Kind::Engine, w)?;
        self.prune();
        Ok(())
    }

    /// Automaton `index`'s alphabet and automaton, checked against the
    /// engine's `patterns` (the automaton's pattern count).
    pub(super) fn load_automaton(
        &self,
        index: u32,
        patterns: usize,
    ) -> Result<(Alphabet, Dfa), CacheError> {
        let read = |r: &mut Reader| {
            let entries = r.count(6)?;
            let mut alphabet = Vec::with_capacity(entries);
            for _ in 0..entries {
                let c = char::from_u32(r.u32()?).ok_or(CacheError::Malformed("character"))?;
                let code = r.u16()?;
                alphabet.push((c, code));
            }
            let mut classes = [0u8; 256];
            classes.copy_from_slice(r.take(256)?);
            let stride2 = r.u32()?;
            let start = r.u32()?;
            let dense_matches = r.u32()?;
            let ranges = r.u32s()?;
            if ranges.len() % 2 != 0 {
                return Err(CacheError::Malformed("match ranges"));
            }
            let dfa = Dfa {
                classes,
                stride2,
                start,
                dense_matches,
                match_ranges: ranges.chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                match_ids: r.u32s()?,
                trans: r.u32s()?,
                nodes: r.u32s()?,
            };
            Ok((alphabet, dfa))
        };
        let (alphabet, dfa) = self
            .open(&self.automaton_path(index), Kind::Automaton)?
            .decode(read)?;
        if !dfa.check(patterns) {
            return Err(CacheError::Malformed("automaton"));
        }
        Ok((Alphabet::from_entries(alphabet), dfa))
    }

    pub(super) fn store_automaton(
        &self,
        index: u32,
        alphabet: &Alphabet,
        dfa: &Dfa,
    ) -> Result<(), CacheError> {
        let mut w = Writer::default();
        let entries = alphabet.entries();
        w.u32(entries.len() as u32);
        for (c, code) in entries {
            w.u32(c as u32);
            w.u16(code);
        }
        w.out.extend_from_slice(&dfa.classes);
        w.u32(dfa.stride2);
        w.u32(dfa.start);
        w.u32(dfa.dense_matches);
        let ranges: Vec<u32> = dfa.match_ranges.iter().flat_map(|&(a, b)| [a, b]).collect();
        w.u32s(&ranges);
        w.u32s(&dfa.match_ids);
        w.u32s(&dfa.trans);
        w.u32s(&dfa.nodes);
        self.write(&self.automaton_path(index), Kind::Automaton, w)
    }

    /// A file of this kind and key whose length is the header's, open
    /// at its payload; [`Reader::decode`] checks the payload's checksum.
    fn open(&self, path: &Path, kind: Kind) -> Result<Reader, CacheError> {
        let io = |source| CacheError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut header = [0u8; HEADER];
        if size < HEADER as u64 {
            return Err(CacheError::Magic);
        }
        file.read_exact(&mut header).map_err(io)?;
        if header[..8] != MAGIC {
            return Err(CacheError::Magic);
        }
        let u32_at =
            |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
        let format = u32_at(8);
        if format != FORMAT {
            return Err(CacheError::Format(format));
        }
        if u32_at(12) != kind as u32 || header[16..48] != self.key {
            return Err(CacheError::Key);
        }
        let expected = u64::from_le_bytes(header[48..56].try_into().expect("8 bytes"));
        let found = size - HEADER as u64;
        if expected != found {
            return Err(CacheError::Length { expected, found });
        }
        Ok(Reader {
            file,
            path: path.to_path_buf(),
            buf: vec![0; CHUNK.min(expected as usize)],
            at: 0,
            end: 0,
            unread: expected,
            hasher: Xxh3::new(),
            checksum: u128::from_le_bytes(header[56..72].try_into().expect("16 bytes")),
            strings: Vec::new(),
        })
    }

    /// Writes a file whole or not at all: a temporary file in the same
    /// folder, renamed over the name.
    fn write(&self, path: &Path, kind: Kind, payload: Writer) -> Result<(), CacheError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let payload = payload.finish();
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&FORMAT.to_le_bytes());
        header.extend_from_slice(&(kind as u32).to_le_bytes());
        header.extend_from_slice(&self.key);
        header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        header.extend_from_slice(&xxh3_128(&payload).to_le_bytes());
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let temp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(&header)?;
                f.write_all(&payload)
            })
            .and_then(|()| std::fs::rename(&temp, path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.map_err(io(path))
    }

    /// Deletes the files of all but the [`KEEP_KEYS`] most recently written
    /// engine files' keys, and temporary files an hour old (a writer that
    /// died). Best effort: the folder may be shared with other processes.
    fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(String, PathBuf, std::time::SystemTime)> = Vec::new();
        let mut written: HashMap<String, std::time::SystemTime> = HashMap::new();
        let now = std::time::SystemTime::now();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if name.ends_with(".tmp") {
                if now
                    .duration_since(modified)
                    .is_ok_and(|age| age.as_secs() > 3600)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
                continue;
            }
            let Some(key) = name
                .get(..64)
                .filter(|k| k.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                continue;
            };
            if name.ends_with(".engine") {
                written.insert(key.to_owned(), modified);
            }
            if name.ends_with(".engine") || name.ends_with(".automaton") {
                files.push((key.to_owned(), entry.path(), modified));
            }
        }
        let mut newest: Vec<(&String, &std::time::SystemTime)> = written.iter().collect();
        newest.sort_by(|a, b| b.1.cmp(a.1));
        let keep: Vec<&String> = newest.iter().take(KEEP_KEYS).map(|(k, _)| *k).collect();
        for (key, path, _) in &files {
            if *key != self.hex && !keep.contains(&key) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// The payload being written: fixed-width little-endian numbers, lengths
/// before contents, every `Arc<str>` once in a table at the front (the
/// lexicon's file names, languages and categories repeat thousands of
/// times, and share one allocation each as they did when parsed).
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    strings: HashMap<Arc<str>, u32>,
    table: Vec<Arc<str>>,
}

impl Writer {
    fn u8(&mut self, v: u8) {
        self.out.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.out.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn u32s(&mut self, v: &[u32]) {
        self.u32(v.len() as u32);
        self.out.reserve(v.len() * 4);
        for x in v {
            self.out.extend_from_slice(&x.to_le_bytes());
        }
    }
    fn arc(&mut self, v: &Arc<str>) {
        let next = self.table.len() as u32;
        let index = *self.strings.entry(v.clone()).or_insert_with(|| {
            self.table.push(v.clone());
            next
        });
        self.u32(index);
    }
    /// The string table, then the rest.
    fn finish(self) -> Vec<u8> {
        let mut head = Writer::default();
        head.u32(self.table.len() as u32);
        for s in &self.table {
            head.str(s);
        }
        head.out.extend_from_slice(&self.out);
        head.out
    }
}

/// Bytes read from a cache file at a time.
const CHUNK: usize = 1 << 16;

/// Reads what [`Writer`] wrote, from the file a chunk at a time, hashing
/// as it goes: every array and string is decoded straight from a small
/// buffer (hot in cache) into its own allocation. Reading the whole file
/// into one buffer first put every byte in fresh pages twice — the file's
/// copy, then the decoded one — and faulting in fresh memory was most of a
/// warm start (BENCHMARKS.md, "Start-up without a copy").
///
/// Every count is checked against the bytes left in the file (whose
/// length the header gave and the file system confirmed), so a bad file
/// is an error, never a panic or a huge allocation; and nothing decoded is
/// returned before the whole payload's checksum matched
/// ([`Reader::decode`]).
struct Reader {
    file: std::fs::File,
    path: PathBuf,
    buf: Vec<u8>,
    /// `buf[at..end]` is read from the file and not yet decoded.
    at: usize,
    end: usize,
    /// Payload bytes not yet read from the file.
    unread: u64,
    /// The payload's checksum as read. XXH3, not a cryptographic hash:
    /// it only has to notice damage (a file made to fool it is still
    /// refused by the checks on what it decodes to, [`Dfa::check`]), and
    /// at ~25 GB/s against BLAKE3's ~2.5 it is ~2 % of a warm start where
    /// BLAKE3 was ~14 % (BENCHMARKS.md, "The cache's checksum").
    hasher: Xxh3,
    checksum: u128,
    strings: Vec<Arc<str>>,
}

impl Reader {
    /// The string table, then `item`; then the rest of the payload is read
    /// and its checksum compared, whether `item` succeeded or not: a
    /// damaged file is reported as a checksum mismatch, not as whatever
    /// its damage first looked like to the decoder.
    fn decode<T>(
        mut self,
        item: impl FnOnce(&mut Reader) -> Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let decoded = self.read_strings().and_then(|()| {
            let value = item(&mut self)?;
            match self.at == self.end && self.unread == 0 {
                true => Ok(value),
                false => Err(CacheError::Malformed("trailing bytes")),
            }
        });
        while self.unread > 0 {
            self.at = self.end;
            self.fill(1)?;
        }
        if self.hasher.digest128() != self.checksum {
            return Err(CacheError::Checksum);
        }
        decoded
    }

    fn read_strings(&mut self) -> Result<(), CacheError> {
        let n = self.count(4)?;
        self.strings.reserve(n);
        for _ in 0..n {
            let s: Arc<str> = self.str()?.into();
            self.strings.push(s);
        }
        Ok(())
    }

    /// Bytes left to decode.
    fn left(&self) -> u64 {
        (self.end - self.at) as u64 + self.unread
    }

    /// At least `n` bytes in `buf[at..end]`: what is left moved to the
    /// front, then as much of the file read after it as fits.
    fn fill(&mut self, n: usize) -> Result<(), CacheError> {
        if self.end - self.at >= n {
            return Ok(());
        }
        if n as u64 > self.left() {
            return Err(CacheError::Malformed("truncated"));
        }
        self.buf.copy_within(self.at..self.end, 0);
        self.end -= self.at;
        self.at = 0;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        let want = ((self.buf.len() - self.end) as u64).min(self.unread) as usize;
        let new = &mut self.buf[self.end..self.end + want];
        self.file.read_exact(new).map_err(|source| CacheError::Io {
            path: self.path.display().to_string(),
            source,
        })?;
        self.hasher.update(new);
        self.end += want;
        self.unread -= want as u64;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CacheError> {
        self.fill(n)?;
        let from = self.at;
        self.at += n;
        Ok(&self.buf[from..self.at])
    }
    fn u8(&mut self) -> Result<u8, CacheError> {
        Ok(self.take(1)?[0])
    }
    fn bool(&mut self) -> Result<bool, CacheError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CacheError::Malformed("boolean")),
        }
    }
    fn u16(&mut self) -> Result<u16, CacheError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, CacheError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CacheError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of items at least `size` bytes each.
    fn count(&mut self, size: usize) -> Result<usize, CacheError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(size) as u64 > self.left() {
            return Err(CacheError::Malformed("count beyond the file"));
        }
        Ok(n)
    }
    /// A short string, borrowed from the buffer.
    fn str(&mut self) -> Result<&str, CacheError> {
        let n = self.count(1)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| CacheError::Malformed("UTF-8"))
    }
    /// A string of any length, copied from the buffer a chunk at a time.
    fn string(&mut self) -> Result<String, CacheError> {
        let n = self.count(1)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            self.fill(1)?;
            let k = (self.end - self.at).min(n - out.len());
            out.extend_from_slice(&self.buf[self.at..self.at + k]);
            self.at += k;
        }
        String::from_utf8(out).map_err(|_| CacheError::Malformed("UTF-8"))
    }
    /// An array of `u32`, decoded from the buffer a chunk at a time into
    /// one allocation of its final size.
    fn u32s(&mut self) -> Result<Vec<u32>, CacheError> {
        let n = self.count(4)?;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            self.fill(4)?;
            let k = ((self.end - self.at) / 4).min(n - out.len());
            let bytes = &self.buf[self.at..self.at + 4 * k];
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes"))),
            );
            self.at += 4 * k;
        }
        Ok(out)
    }
    fn arc(&mut self) -> Result<Arc<str>, CacheError> {
        let i = self.u32()? as usize;
        self.strings
            .get(i)
            .cloned()
            .ok_or(CacheError::Malformed("string index"))
    }
    fn vec<T>(
        &mut self,
        size: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, CacheError>,
    ) -> Result<Vec<T>, CacheError> {
        let n = self.count(size)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(item(self)?);
        }
        Ok(out)
    }
    fn option<T>(
        &mut self,
        item: impl FnOnce(&mut Self) -> Result<T, CacheError>,
    ) -> Result<Option<T>, CacheError> {
        match self.bool()? {
            true => item(self).map(Some),
            false => Ok(None),
        }
    }
}

// The lexicon. Every struct is destructured whole, so a field added to
// one fails to compile here until the cache writes it (and FORMAT moves).

fn write_origin(w: &mut Writer, o: &Origin) {
    let Origin { file, line } = o;
    w.arc(file);
    w.u32(*line);
}

fn read_origin(r: &mut Reader) -> Result<Origin, CacheError> {
    Ok(Origin {
        file: r.arc()?,
        line: r.u32()?,
    })
}

fn write_located(w: &mut Writer, list: &[Located]) {
    w.u32(list.len() as u32);
    for Located { text, origin } in list {
        w.str(text);
        write_origin(w, origin);
    }
}

fn read_located(r: &mut Reader) -> Result<Vec<Located>, CacheError> {
    r.vec(12, |r| {
        Ok(Located {
            text: r.string()?,
            origin: read_origin(r)?,
        })
    })
}

fn write_arcs(w: &mut Writer, list: &[Arc<str>]) {
    w.u32(list.len() as u32);
    for s in list {
        w.arc(s);
    }
}

fn read_arcs(r: &mut Reader) -> Result<Vec<Arc<str>>, CacheError> {
    r.vec(4, Reader::arc)
}

fn code<T: Copy + PartialEq>(all: &[T], v: T) -> u8 {
    all.iter()
        .position(|&x| x == v)
        .expect("every variant listed") as u8
}

fn decode<T: Copy>(r: &mut Reader, all: &[T], what: &'static str) -> Result<T, CacheError> {
    all.get(usize::from(r.u8()?))
        .copied()
        .ok_or(CacheError::Malformed(what))
}

const KINDS: &[CategoryKind] = &[
    CategoryKind::Harassment,
    CategoryKind::Welfare,
    CategoryKind::Signal,
    CategoryKind::AgentMarker,
];
const SEVERITIES: &[Severity] = &[Severity::Info, Severity::Warning, Severity::Critical];
const SPEAKERS: &[Speaker] = &[Speaker::Customer, Speaker::Agent];
const FRAME_KINDS: &[FrameKind] = &[
    FrameKind::Negation,
    FrameKind::Quotation,
    FrameKind::Target,
    FrameKind::Figurative,
    FrameKind::ReadOut,
    FrameKind::ReadOutEnd,
    FrameKind::ReadOutAsked,
    FrameKind::NotTarget,
    FrameKind::Relay,
];
const POSITIONS: &[FramePosition] = &[
    FramePosition::Before,
    FramePosition::After,
    FramePosition::Around,
];
const PATTERN_KINDS: &[PatternKind] = &[
    PatternKind::Term,
    PatternKind::Exclusion,
    PatternKind::Frame,
    PatternKind::Part,
    PatternKind::NotNear,
];

/// Compile-time reminders: a new variant fails to compile here until the
/// lists above (the codes on disk) have it.
#[allow(dead_code)]
fn variants_listed(k: CategoryKind, f: FrameKind, p: FramePosition, s: Severity, w: Speaker) {
    match k {
        CategoryKind::Harassment
        | CategoryKind::Welfare
        | CategoryKind::Signal
        | CategoryKind::AgentMarker => {}
    }
    match f {
        FrameKind::Negation
        | FrameKind::Quotation
        | FrameKind::Target
        | FrameKind::Figurative
        | FrameKind::ReadOut
        | FrameKind::ReadOutEnd
        | FrameKind::ReadOutAsked
        | FrameKind::NotTarget
        | FrameKind::Relay => {}
    }
    match p {
        FramePosition::Before | FramePosition::After | FramePosition::Around => {}
    }
    match s {
        Severity::Info | Severity::Warning | Severity::Critical => {}
    }
    match w {
        Speaker::Customer | Speaker::Agent => {}
    }
}

fn write_term(w: &mut Writer, t: &Term) {
    let Term {
        language,
        id,
        rule,
        category,
        kind,
        severity,
        severity_explicit,
        speaker,
        group,
        patterns,
        exclude,
        standalone,
        needs_target,
        near,
        dialogue,
        must_match,
        must_not_match,
        origin,
    } = t;
    w.arc(language);
    w.str(id);
    w.arc(rule);
    w.arc(category);
    w.u8(code(KINDS, *kind));
    w.u8(code(SEVERITIES, *severity));
    w.bool(*severity_explicit);
    w.u8(code(SPEAKERS, *speaker));
    w.bool(group.is_some());
    if let Some(g) = group {
        w.arc(g);
    }
    write_located(w, patterns);
    write_located(w, exclude);
    w.bool(*standalone);
    w.bool(*needs_target);
    w.bool(near.is_some());
    if let Some(Near {
        parts,
        distance,
        ordered,
        utterances,
        not_near,
    }) = near
    {
        w.u32(parts.len() as u32);
        for part in parts {
            write_located(w, part);
        }
        w.u64(*distance as u64);
        w.bool(*ordered);
        w.u8(*utterances);
        write_located(w, not_near);
    }
    w.bool(dialogue.is_some());
    if let Some(Dialogue {
        after_agent,
        seconds,
        after_caller,
    }) = dialogue
    {
        write_located(w, after_agent);
        w.u32(*seconds);
        write_located(w, after_caller);
    }
    write_located(w, must_match);
    write_located(w, must_not_match);
    write_origin(w, origin);
}

fn read_term(r: &mut Reader) -> Result<Term, CacheError> {
    Ok(Term {
        language: r.arc()?,
        id: r.string()?,
        rule: r.arc()?,
        category: r.arc()?,
        kind: decode(r, KINDS, "category kind")?,
        severity: decode(r, SEVERITIES, "severity")?,
        severity_explicit: r.bool()?,
        speaker: decode(r, SPEAKERS, "speaker")?,
        group: r.option(Reader::arc)?,
        patterns: read_located(r)?,
        exclude: read_located(r)?,
        standalone: r.bool()?,
        needs_target: r.bool()?,
        near: r.option(|r| {
            Ok(Near {
                parts: r.vec(4, read_located)?,
                distance: usize::try_from(r.u64()?)
                    .map_err(|_| CacheError::Malformed("distance"))?,
                ordered: r.bool()?,
                utterances: r.u8()?,
                not_near: read_located(r)?,
            })
        })?,
        dialogue: r.option(|r| {
            Ok(Dialogue {
                after_agent: read_located(r)?,
                seconds: r.u32()?,
                after_caller: read_located(r)?,
            })
        })?,
        must_match: read_located(r)?,
        must_not_match: read_located(r)?,
        origin: read_origin(r)?,
    })
}

fn write_frame(w: &mut Writer, f: &Frame) {
    let Frame {
        language,
        id,
        kind,
        position,
        window,
        turns,
        to_sentence_end,
        categories,
        patterns,
        must_match,
        origin,
    } = f;
    w.arc(language);
    w.str(id);
    w.u8(code(FRAME_KINDS, *kind));
    w.u8(code(POSITIONS, *position));
    w.u64(*window as u64);
    w.u8(*turns);
    w.bool(*to_sentence_end);
    write_arcs(w, categories);
    write_located(w, patterns);
    write_located(w, must_match);
    write_origin(w, origin);
}

fn read_frame(r: &mut Reader) -> Result<Frame, CacheError> {
    Ok(Frame {
        language: r.arc()?,
        id: r.string()?,
        kind: decode(r, FRAME_KINDS, "frame kind")?,
        position: decode(r, POSITIONS, "frame position")?,
        window: usize::try_from(r.u64()?).map_err(|_| CacheError::Malformed("window"))?,
        turns: r.u8()?,
        to_sentence_end: r.bool()?,
        categories: read_arcs(r)?,
        patterns: read_located(r)?,
        must_match: read_located(r)?,
        origin: read_origin(r)?,
    })
}

fn write_lexicon(w: &mut Writer, l: &Lexicon) {
    let Lexicon {
        version,
        terms,
        frames,
        extra_categories,
    } = l;
    w.arc(version);
    w.u32(terms.len() as u32);
    for t in terms {
        write_term(w, t);
    }
    w.u32(frames.len() as u32);
    for f in frames {
        write_frame(w, f);
    }
    w.u32(extra_categories.len() as u32);
    for c in extra_categories {
        w.str(c);
    }
}

fn read_lexicon(r: &mut Reader) -> Result<Lexicon, CacheError> {
    Ok(Lexicon {
        version: r.arc()?,
        terms: r.vec(8, read_term)?,
        frames: r.vec(8, read_frame)?,
        extra_categories: r.vec(4, Reader::string)?,
    })
}

// The engine's tables.

fn write_info(w: &mut Writer, info: &PatternInfo) {
    let PatternInfo {
        kind,
        owner,
        word_left,
        word_right,
        len,
        part,
    } = info;
    w.u8(code(PATTERN_KINDS, *kind));
    w.u32(*owner);
    w.bool(*word_left);
    w.bool(*word_right);
    w.u32(*len);
    w.u8(*part);
}

fn read_info(r: &mut Reader) -> Result<PatternInfo, CacheError> {
    Ok(PatternInfo {
        kind: decode(r, PATTERN_KINDS, "pattern kind")?,
        owner: r.u32()?,
        word_left: r.bool()?,
        word_right: r.bool()?,
        len: r.u32()?,
        part: r.u8()?,
    })
}

fn write_engine(w: &mut Writer, e: &Engine) {
    let Engine {
        generation: _,
        cache: _,
        lexicon,
        patterns,
        texts,
        not_near,
        not_near_of,
        automata,
        by_language,
        any_only,
        union,
    } = e;
    write_lexicon(w, lexicon);
    w.u32(patterns.len() as u32);
    for info in patterns {
        write_info(w, info);
    }
    let (all, ends) = texts.parts();
    w.str(all);
    w.u32s(ends);
    w.u32(not_near.len() as u32);
    for n in not_near {
        write_info(w, &n.info);
        w.str(&n.text);
    }
    let ranges: Vec<u32> = not_near_of.iter().flat_map(|r| [r.start, r.end]).collect();
    w.u32s(&ranges);
    w.u32(automata.len() as u32);
    for slot in automata {
        w.u32s(&slot.ids);
    }
    w.u32(by_language.len() as u32);
    for (language, index) in by_language {
        w.str(language);
        w.u32(*index);
    }
    w.u32(*any_only);
    w.u32s(union);
}

fn read_engine(r: &mut Reader) -> Result<Engine, CacheError> {
    let lexicon = read_lexicon(r)?;
    let patterns = r.vec(12, read_info)?;
    let texts = r.string()?;
    let texts =
        Texts::from_parts(texts, r.u32s()?).ok_or(CacheError::Malformed("pattern texts"))?;
    let not_near = r.vec(16, |r| Ok(NotNear::new(read_info(r)?, r.string()?)))?;
    let ranges = r.u32s()?;
    if ranges.len() % 2 != 0 {
        return Err(CacheError::Malformed("not_near ranges"));
    }
    let not_near_of: Vec<Range<u32>> = ranges.chunks_exact(2).map(|p| p[0]..p[1]).collect();
    let automata = r.vec(4, |r| {
        Ok(AutomatonSlot {
            ids: r.u32s()?,
            compiled: OnceLock::new(),
        })
    })?;
    let by_language: Vec<(String, u32)> = r.vec(8, |r| Ok((r.string()?, r.u32()?)))?;
    let any_only = r.u32()?;
    let union = r.u32s()?;

    // Indices the scan follows without a check: in bounds, or no engine.
    let owners_ok = |info: &PatternInfo| match info.kind {
        PatternKind::Frame => (info.owner as usize) < lexicon.frames.len(),
        _ => (info.owner as usize) < lexicon.terms.len(),
    };
    let slots = automata.len() as u32;
    let sound = texts.len() == patterns.len()
        && patterns.iter().all(owners_ok)
        && not_near.iter().all(|n| owners_ok(&n.info))
        && not_near_of.len() == lexicon.terms.len()
        && not_near_of
            .iter()
            .all(|r| r.start <= r.end && r.end as usize <= not_near.len())
        && automata
            .iter()
            .all(|s| s.ids.iter().all(|&i| (i as usize) < patterns.len()))
        && by_language
            .iter()
            .map(|(_, i)| i)
            .chain([&any_only])
            .chain(&union)
            .all(|&i| i < slots);
    if !sound {
        return Err(CacheError::Malformed("engine indices"));
    }
    Ok(Engine {
        generation: super::next_generation(),
        cache: None,
        lexicon,
        patterns,
        texts,
        not_near,
        not_near_of,
        automata,
        by_language,
        any_only,
        union,
    })
}

/// For the tests: the header's size and where its fields are.
#[cfg(test)]
pub(super) mod layout {
    pub const HEADER: usize = super::HEADER;
    pub const FORMAT_AT: usize = 8;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::layout::{FORMAT_AT, HEADER};
    use super::*;
    use crate::category::Speaker;
    use crate::engine::{Carry, Scratch};

    /// A small set with two languages, an `any` folder, a proximity term
    /// and frames: every part of the format, quick to compile.
    const FILES: &[(&str, &str)] = &[
        ("lexicon.toml", "version = \"cache.1\"\n"),
        (
            "ja/violence.toml",
            "category = \"violence\"\n[[term]]\nid = \"korosu\"\npatterns = [\"殺すぞ\", \"ころすぞ\"]\nexclude = [\"ところすぐ\"]\nmatch = [\"お前ころすぞ\"]\n",
        ),
        (
            "ja/context.toml",
            "[[frame]]\nid = \"omae\"\nkind = \"target\"\nposition = \"around\"\nwindow = 6\npatterns = [\"お前\"]\n",
        ),
        (
            "en/violence.toml",
            "category = \"violence\"\n[[term]]\nid = \"kill_you\"\npatterns = [\"kill you\", \"I'll kill you\"]\nexclude = [\"kill you later\"]\n[[term]]\nid = \"hurt_near\"\nparts = [[\"hurt\"], [\"your family\"]]\nnear = 4\nnot_near = [\"never\"]\n",
        ),
        (
            "any/verbal_abuse.toml",
            "category = \"verbal_abuse\"\n[[term]]\nid = \"xx\"\npatterns = [\"xx\"]\n",
        ),
    ];

    fn write_set(dir: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    /// Every fragment's hits, sightings and read-out flag, language by
    /// language and with none, fragments of one language run as a stream
    /// with their carries.
    fn answers(engine: &Engine, texts: &[&str]) -> Vec<String> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        let mut languages: Vec<Option<&str>> = engine
            .by_language
            .iter()
            .map(|(l, _)| Some(l.as_str()))
            .collect();
        languages.sort();
        languages.extend([None, Some("xx")]);
        for language in languages {
            for speaker in [Speaker::Customer, Speaker::Agent] {
                let mut carry: Option<Carry> = None;
                for text in texts {
                    let scan = engine.scan(text, language, speaker, carry.as_ref(), &mut scratch);
                    out.push(format!(
                        "{language:?} {speaker:?} {text:?}: {:?} {:?} {}",
                        scan.hits, scan.sightings, scan.asks_for_words
                    ));
                    carry = Some(scan.carry);
                }
            }
        }
        out
    }

    /// The examples of a lexicon and its frames' phrases, as text (every
    /// term's phrases too would make the test minutes long unoptimised).
    fn texts_of(lexicon: &Lexicon) -> Vec<String> {
        lexicon
            .terms
            .iter()
            .flat_map(|t| t.must_match.iter().chain(&t.must_not_match))
            .chain(
                lexicon
                    .frames
                    .iter()
                    .flat_map(|f| f.must_match.iter().chain(&f.patterns)),
            )
            .map(|e| e.text.clone())
            .chain([
                "お前ころ".into(),
                "すぞ xx".into(),
                "hurt ... your family".into(),
            ])
            .collect()
    }

    /// What the cache round trip must keep: the tables (and the lexicon,
    /// by its `Debug` form) and every automaton, cell for cell.
    fn assert_same_engine(fresh: &Engine, cached: &Engine) {
        assert_eq!(
            format!("{:?}", fresh.lexicon),
            format!("{:?}", cached.lexicon)
        );
        assert_eq!(
            format!("{:?}", fresh.patterns),
            format!("{:?}", cached.patterns)
        );
        assert_eq!(fresh.texts, cached.texts);
        let not_near = |e: &Engine| -> Vec<String> {
            e.not_near
                .iter()
                .map(|n| format!("{:?} {}", n.info, n.text))
                .collect()
        };
        assert_eq!(not_near(fresh), not_near(cached));
        assert_eq!(fresh.not_near_of, cached.not_near_of);
        let ids =
            |e: &Engine| -> Vec<Vec<u32>> { e.automata.iter().map(|a| a.ids.clone()).collect() };
        assert_eq!(ids(fresh), ids(cached));
        assert_eq!(fresh.by_language, cached.by_language);
        assert_eq!(fresh.any_only, cached.any_only);
        assert_eq!(fresh.union, cached.union);
        for (a, b) in fresh.automata.iter().zip(&cached.automata) {
            if let (Some(a), Some(b)) = (a.compiled.get(), b.compiled.get()) {
                assert!(a.dfa == b.dfa, "automaton tables differ");
                assert_eq!(a.alphabet.entries(), b.alphabet.entries());
                assert_eq!(a.patterns, b.patterns);
            }
        }
    }

    fn cache_of(dir: &Path, lexicons: &Path) -> EngineCache {
        let sources = Lexicon::read_dir(lexicons).unwrap();
        EngineCache::new(
            dir,
            sources.iter().map(|s| (s.path.as_str(), s.text.as_str())),
        )
    }

    /// The shipped lexicons: compiled, stored, read back; the engine read
    /// from the cache is the one compiled, table for table, and gives the
    /// same answers over every example and phrase, in every language.
    #[test]
    fn shipped_engine_round_trips_through_the_cache() {
        let cache_dir = tempfile::tempdir().unwrap();
        let fresh = Engine::load(None, Some(cache_dir.path())).expect("shipped lexicons");
        fresh.prepare_all().unwrap();
        let cache = fresh.cache.clone().expect("a cache");
        assert!(cache.load_engine().is_ok(), "engine stored");
        for index in 0..fresh.automata.len() as u32 {
            let patterns = fresh.automata[index as usize].ids.len();
            assert!(
                cache.load_automaton(index, patterns).is_ok(),
                "automaton {index} stored"
            );
        }
        let cached = Engine::load(None, Some(cache_dir.path())).expect("from the cache");
        cached.prepare_all().unwrap();
        assert_same_engine(&fresh, &cached);
        let texts = texts_of(fresh.lexicon());
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert!(texts.len() > 1000, "{} texts", texts.len());
        assert_eq!(answers(&fresh, &texts), answers(&cached, &texts));
        // And both are the engine built without a cache.
        let plain = Engine::build(Lexicon::embedded().unwrap()).unwrap();
        assert_same_engine(&plain, &cached);
    }

    /// Each way a file can be wrong is refused, and the engine built and
    /// the file written again: the answers never change.
    #[test]
    fn damaged_files_are_refused_and_rebuilt() {
        let lexicons = tempfile::tempdir().unwrap();
        write_set(lexicons.path(), FILES);
        let cache_dir = tempfile::tempdir().unwrap();
        let plain = Engine::build(Lexicon::load_dir(lexicons.path()).unwrap()).unwrap();
        let texts = texts_of(plain.lexicon());
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let expected = answers(&plain, &texts);
        let load = || {
            let e = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
            e.prepare_all().unwrap();
            e
        };
        let first = load();
        assert_same_engine(&plain, &first);
        assert_eq!(answers(&first, &texts), expected);
        let cache = cache_of(cache_dir.path(), lexicons.path());
        let automaton = cache.automaton_path(first.slot_of("ja"));
        let ja_patterns = first.automata[first.slot_of("ja") as usize].ids.len();
        type Damage = fn(&mut Vec<u8>);
        let damages: &[(&str, Damage)] = &[
            ("empty", |b| b.clear()),
            ("truncated header", |b| b.truncate(HEADER - 1)),
            ("truncated payload", |b| {
                b.pop();
            }),
            ("longer", |b| b.push(0)),
            ("payload byte flipped", |b| {
                let at = HEADER + (b.len() - HEADER) / 2;
                b[at] ^= 0x40;
            }),
            // The string table's count: the decoder stops at once, and
            // still the file is called damaged, not malformed (the rest
            // is read and hashed first).
            ("first payload byte flipped", |b| b[HEADER + 3] ^= 0x7f),
            ("last payload byte flipped", |b| {
                let last = b.len() - 1;
                b[last] ^= 1;
            }),
            ("payload halved", |b| {
                let half = HEADER + (b.len() - HEADER) / 2;
                b.truncate(half);
            }),
            ("other format", |b| {
                b[FORMAT_AT] = b[FORMAT_AT].wrapping_add(1)
            }),
            ("magic", |b| b[0] = b'X'),
            ("key", |b| b[20] ^= 1),
        ];
        for (what, damage) in damages {
            for path in [cache.engine_path(), automaton.clone()] {
                let mut bytes = std::fs::read(&path).unwrap();
                damage(&mut bytes);
                std::fs::write(&path, &bytes).unwrap();
                let refused = match path == automaton {
                    true => cache.load_automaton(first.slot_of("ja"), ja_patterns).err(),
                    false => cache.load_engine().err(),
                };
                let refused = refused.unwrap_or_else(|| panic!("{what}: {path:?} accepted"));
                match *what {
                    "other format" => {
                        assert!(matches!(refused, CacheError::Format(_)), "{refused}")
                    }
                    "payload byte flipped"
                    | "first payload byte flipped"
                    | "last payload byte flipped" => {
                        assert!(matches!(refused, CacheError::Checksum), "{refused}")
                    }
                    "truncated payload" | "longer" | "payload halved" => {
                        assert!(matches!(refused, CacheError::Length { .. }), "{refused}")
                    }
                    _ => {}
                }
                let again = load();
                assert_eq!(answers(&again, &texts), expected, "{what}: {path:?}");
                assert_same_engine(&plain, &again);
                assert!(cache.load_engine().is_ok(), "{what}: engine written again");
                assert!(
                    cache
                        .load_automaton(first.slot_of("ja"), ja_patterns)
                        .is_ok(),
                    "{what}: automaton written again"
                );
            }
        }
    }

    /// A whole file with a checksum that matches but contents that are not
    /// an automaton of ours (a bug, or a hand-made file) is refused too.
    #[test]
    fn an_automaton_out_of_bounds_is_refused() {
        let lexicons = tempfile::tempdir().unwrap();
        write_set(lexicons.path(), FILES);
        let cache_dir = tempfile::tempdir().unwrap();
        let engine = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
        engine.prepare(Some("en")).unwrap();
        let cache = cache_of(cache_dir.path(), lexicons.path());
        let index = engine.slot_of("en");
        let patterns = engine.automata[index as usize].ids.len();
        let (alphabet, mut dfa) = cache.load_automaton(index, patterns).unwrap();
        assert!(
            cache.load_automaton(index, patterns - 1).is_err(),
            "pattern ids checked"
        );
        // Past the table and the nodes, on a row boundary (the other ways
        // are `dense::tests::check_refuses_out_of_bounds`).
        let last = dfa.trans.len() - 1;
        dfa.trans[last] = !((1u32 << dfa.stride2) - 1) & !super::super::dense::MATCH;
        cache.store_automaton(index, &alphabet, &dfa).unwrap();
        assert!(matches!(
            cache.load_automaton(index, patterns),
            Err(CacheError::Malformed(_))
        ));
    }

    /// The pattern texts are checked too: ends that do not rise, or that
    /// cut a character, are refused though the checksum matches.
    #[test]
    fn bad_pattern_texts_are_refused() {
        let lexicons = tempfile::tempdir().unwrap();
        write_set(lexicons.path(), FILES);
        let cache_dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
        let cache = cache_of(cache_dir.path(), lexicons.path());
        assert!(cache.load_engine().is_ok());
        let good = engine.texts.clone();
        let (all, ends) = good.parts();
        let japanese = all.find('殺').expect("a Japanese pattern") as u32;
        let mut falling = ends.to_vec();
        falling.swap(0, 1);
        let mut cut = ends.to_vec();
        let at = cut.iter().position(|&e| e > japanese).unwrap();
        cut[at] = japanese + 1;
        let mut past = ends.to_vec();
        *past.last_mut().unwrap() += 1;
        let mut short = ends.to_vec();
        short.pop();
        for (what, ends) in [
            ("falling", falling),
            ("cut", cut),
            ("past the end", past),
            ("one fewer", short),
        ] {
            engine.texts = Texts {
                all: all.to_owned(),
                ends,
            };
            cache.store_engine(&engine).unwrap();
            assert!(
                matches!(cache.load_engine(), Err(CacheError::Malformed(_))),
                "{what}"
            );
        }
    }

    /// The reader's chunks: numbers, arrays and strings that straddle the
    /// buffer's end or are longer than it, read back as written.
    #[test]
    fn values_across_chunks_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EngineCache::new(dir.path(), [("a", "b")].into_iter());
        let long: Arc<str> = "長".repeat(CHUNK / 2).into();
        let numbers: Vec<u32> = (0..CHUNK as u32)
            .map(|i| i.wrapping_mul(2_654_435_761))
            .collect();
        let text = "ab€".repeat(CHUNK / 4);
        let mut w = Writer::default();
        w.arc(&long);
        w.u8(7);
        w.u32s(&numbers);
        w.u16(0xbeef);
        w.str(&text);
        w.u64(u64::MAX - 1);
        w.arc(&long);
        w.u32s(&numbers[..CHUNK / 4 + 1]);
        let path = dir.path().join("values");
        cache.write(&path, Kind::Engine, w).unwrap();
        let read = cache
            .open(&path, Kind::Engine)
            .unwrap()
            .decode(|r| {
                Ok((
                    r.arc()?,
                    r.u8()?,
                    r.u32s()?,
                    r.u16()?,
                    r.string()?,
                    r.u64()?,
                    r.arc()?,
                    r.u32s()?,
                ))
            })
            .unwrap();
        assert_eq!(read.0, long);
        assert_eq!(read.1, 7);
        assert_eq!(read.2, numbers);
        assert_eq!(read.3, 0xbeef);
        assert_eq!(read.4, text);
        assert_eq!(read.5, u64::MAX - 1);
        assert!(Arc::ptr_eq(&read.0, &read.6), "one table entry");
        assert_eq!(read.7, numbers[..CHUNK / 4 + 1]);
        // Read short of the end: trailing bytes.
        let short = cache.open(&path, Kind::Engine).unwrap().decode(|r| r.arc());
        assert!(matches!(short, Err(CacheError::Malformed(_))));
    }

    /// A changed lexicon file is a new key: the stored engine of the old
    /// set is not used (a reload of changed lexicons sees the change).
    #[test]
    fn a_changed_lexicon_is_not_served_from_the_cache() {
        let lexicons = tempfile::tempdir().unwrap();
        write_set(lexicons.path(), FILES);
        let cache_dir = tempfile::tempdir().unwrap();
        let hits = |e: &Engine, text: &str| {
            e.scan(
                text,
                Some("en"),
                Speaker::Customer,
                None,
                &mut Scratch::default(),
            )
            .hits
            .len()
        };
        let before = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
        assert_eq!(hits(&before, "kill you"), 1);
        std::fs::write(
            lexicons.path().join("en/violence.toml"),
            "category = \"violence\"\n[[term]]\nid = \"kill_you\"\npatterns = [\"end you\"]\n",
        )
        .unwrap();
        let after = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
        assert_eq!(hits(&after, "kill you"), 0);
        assert_eq!(hits(&after, "end you"), 1);
        assert_ne!(before.version(), after.version());
        // Both sets' files are kept (a reload back finds the first).
        let engines = std::fs::read_dir(cache_dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".engine")
            })
            .count();
        assert_eq!(engines, 2);
    }

    /// A cache folder that cannot be created or written is no cache: the
    /// load works, slower.
    #[test]
    fn an_unwritable_cache_is_no_cache() {
        let lexicons = tempfile::tempdir().unwrap();
        write_set(lexicons.path(), FILES);
        let blocker = tempfile::NamedTempFile::new().unwrap();
        let cache_dir = blocker.path().join("below-a-file");
        let plain = Engine::build(Lexicon::load_dir(lexicons.path()).unwrap()).unwrap();
        let texts = texts_of(plain.lexicon());
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        for _ in 0..2 {
            let engine = Engine::load(Some(lexicons.path()), Some(&cache_dir)).unwrap();
            engine.prepare_all().unwrap();
            assert_eq!(answers(&engine, &texts), answers(&plain, &texts));
        }
        assert!(!cache_dir.exists());
    }

    /// Only the most recent sets' files are kept.
    #[test]
    fn old_keys_are_pruned() {
        let lexicons = tempfile::tempdir().unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        for n in 0..KEEP_KEYS + 2 {
            let manifest = format!("version = \"cache.{n}\"\n");
            let mut files = FILES.to_vec();
            files[0].1 = &manifest;
            write_set(lexicons.path(), &files);
            let engine = Engine::load(Some(lexicons.path()), Some(cache_dir.path())).unwrap();
            engine.prepare(Some("ja")).unwrap();
            // Distinct modification times for the order.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let names: Vec<String> = std::fs::read_dir(cache_dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let engines = names.iter().filter(|n| n.ends_with(".engine")).count();
        assert_eq!(engines, KEEP_KEYS, "{names:?}");
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
