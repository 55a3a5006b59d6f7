//! Crash-safe file writes: write to a temporary file beside the destination, fsync, rename over
//! it, so a crash leaves either the old file or the new one, never a torn mix.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// `.<name>.<pid>-<k>.tmp.<ext>` in `path`'s directory: a fresh temporary path beside `path`
/// (same file system, so the final rename is atomic); `ext` comes last because some encoders
/// pick the format from the extension.
pub fn temp_path_for(path: &Path, ext: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let k = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir_of(path).join(format!(".{name}.{}-{k}.tmp.{ext}", std::process::id()))
}

/// The directory holding `path` (`.` for a bare file name).
fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// write(tmp) → fsync → rename(tmp, path) → fsync(dir): writes `bytes` to `path` atomically (the
/// directory sync is best effort where the platform allows it). Failures are `Error::Io` naming
/// `path`; the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write(bytes)?;
    file.commit()
}

/// A file written in pieces and published atomically: the bytes go to a temporary file beside
/// the destination (buffered); [`AtomicFile::commit`] flushes, fsyncs and renames it over the
/// destination. Dropped without a commit (an error on the way, a panic), the temporary file is
/// removed and the destination is untouched — a streamed output is never half-written.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl AtomicFile {
    /// Starts writing `path` (its temporary file is created now).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        if path.file_name().is_none() {
            return Err(Error::InvalidInput(format!(
                "{}: not a file path",
                path.display()
            )));
        }
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tmp".into());
        let tmp = temp_path_for(path, &ext);
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("written after commit");
        out.write_all(bytes).map_err(|e| Error::io(&self.path, e))
    }

    /// Flush → fsync → rename over the destination → fsync(dir).
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.take().expect("committed once");
        let result = (|| {
            let f = out.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&self.tmp, &self.path)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        if let Ok(d) = std::fs::File::open(dir_of(&self.path)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The atomic writer replaces the destination and leaves no temporary file behind; a
    /// destination in a missing directory is an I/O error naming the path, not a panic.
    #[test]
    fn write_atomic_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.txt");
        write_atomic(&p, b"first version, longer").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "left {names:?}");
        let bad = dir.path().join("missing/f.txt");
        let e = write_atomic(&bad, b"x").unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("missing"), "{e}");
        assert!(matches!(
            write_atomic(Path::new("/"), b"x"),
            Err(Error::InvalidInput(_))
        ));
    }

    /// Temporary paths sit in the destination's directory, end in the given extension and are
    /// distinct on every call.
    #[test]
    fn temp_paths_are_siblings_and_fresh() {
        let p = Path::new("some/dir/plot.png");
        let (a, b) = (temp_path_for(p, "png"), temp_path_for(p, "png"));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
        assert_eq!(a.extension().unwrap(), "png");
        assert_eq!(
            temp_path_for(Path::new("x"), "tmp").parent(),
            Some(Path::new("."))
        );
    }
}
