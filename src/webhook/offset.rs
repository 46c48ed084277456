//! A webhook's delivered offset: the last `event_id` it has finished with
//! (delivered with a 2xx, refused for good, or not matching its filter),
//! one small file per webhook, `DATA_DIR/webhooks/NAME.offset`.
//!
//! Written after the fact (a restart may send the last alert again: at
//! least once), through a temporary file, fsync and rename, so a crash
//! leaves the old offset or the new one, never a torn one. Kept apart from
//! the alert store so a webhook's writes never queue behind (or hold up)
//! the store's commits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why an offset file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read webhook offset {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("webhook offset {path} holds {found:?}, not an event id; delete it to start from the log's end")]
    Corrupt { path: PathBuf, found: String },
    #[error("cannot write webhook offset {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The folder of offset files inside the data directory.
pub const DIR: &str = "webhooks";

/// One webhook's offset file, and the offset last written to it.
#[derive(Debug)]
pub struct OffsetFile {
    path: PathBuf,
    /// Written offsets only grow: a late writer with an older offset is
    /// a no-op.
    saved: Mutex<u64>,
}

impl OffsetFile {
    /// Opens `data_dir/webhooks/NAME.offset`: its offset, or `None` for a
    /// webhook that has none yet (the file is not created until [`save`]).
    ///
    /// [`save`]: OffsetFile::save
    pub fn open(data_dir: &Path, name: &str) -> Result<(OffsetFile, Option<u64>), OffsetError> {
        let dir = data_dir.join(DIR);
        std::fs::create_dir_all(&dir).map_err(|source| OffsetError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(format!("{name}.offset"));
        let found = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<u64>()
                    .map_err(|_| OffsetError::Corrupt {
                        path: path.clone(),
                        found: text.chars().take(40).collect(),
                    })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(OffsetError::Read { path, source }),
        };
        let file = OffsetFile {
            path,
            saved: Mutex::new(found.unwrap_or(0)),
        };
        Ok((file, found))
    }

    /// The offset last written.
    pub fn saved(&self) -> u64 {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `event_id` if it is past the saved offset (blocking: fsync).
    pub fn save(&self, event_id: u64) -> Result<(), OffsetError> {
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if event_id <= *saved && self.path.exists() {
            return Ok(());
        }
        let write_err = |source| OffsetError::Write {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("offset.tmp");
        let mut file = std::fs::File::create(&tmp).map_err(write_err)?;
        file.write_all(format!("{event_id}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(write_err)?;
        std::fs::rename(&tmp, &self.path).map_err(write_err)?;
        *saved = event_id;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_reopening_and_only_grow() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, found) = OffsetFile::open(tmp.path(), "pager").unwrap();
        assert_eq!(found, None);
        // A first save writes even 0 (a new webhook on an empty log).
        file.save(0).unwrap();
        assert_eq!(OffsetFile::open(tmp.path(), "pager").unwrap().1, Some(0));
        file.save(42).unwrap();
        file.save(7).unwrap();
        assert_eq!(file.saved(), 42);
        let (again, found) = OffsetFile::open(tmp.path(), "pager").unwrap();
        assert_eq!((found, again.saved()), (Some(42), 42));
        assert!(!tmp.path().join("webhooks/pager.offset.tmp").exists());
    }

    #[test]
    fn a_corrupt_offset_is_refused_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(DIR)).unwrap();
        std::fs::write(tmp.path().join("webhooks/pager.offset"), "forty-two").unwrap();
        let e = OffsetFile::open(tmp.path(), "pager")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pager.offset") && e.contains("forty-two"), "{e}");
    }
}
