//! What a run or lesson directory holds, read into memory for the page: its settings, numbers,
//! training log and pictures (bytes), and the list of every file in it.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::Value;

pub use scoreflow::checkpoint::META_FILE;

use crate::output::TrainLog;
use scoreflow::model::{CONFIG_FILE, LOG_FILE};

/// The metrics of `scoreflow eval` / `quickstart`.
pub const METRICS_FILE: &str = "metrics.json";
/// The file that marks a lesson directory (written by `scoreflow lesson`).
pub const LESSON_FILE: &str = "lesson.json";
/// The page written into each directory.
pub const REPORT_FILE: &str = "report.html";
/// The page written over a directory of runs and lessons.
pub const INDEX_FILE: &str = "index.html";

/// What a directory is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A trained model (`meta.json`).
    Run,
    /// A lesson (`lesson.json`).
    Lesson,
}

impl Kind {
    /// The kind of `dir`, or `None` when it is neither a run nor a lesson.
    pub fn of(dir: &Path) -> Option<Kind> {
        if dir.join(META_FILE).is_file() {
            Some(Kind::Run)
        } else if dir.join(LESSON_FILE).is_file() {
            Some(Kind::Lesson)
        } else {
            None
        }
    }
}

/// A picture to inline.
#[derive(Debug, Clone)]
pub struct Picture {
    /// File name.
    pub name: String,
    /// `image/png` or `image/gif`.
    pub mime: &'static str,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Width and height in pixels (from the image header).
    pub size: (u32, u32),
}

impl Picture {
    /// Reads a PNG or GIF file; errors name the file.
    pub fn read(path: &Path) -> Result<Picture> {
        let name = file_name(path);
        let mime = match extension(path).as_str() {
            "png" => "image/png",
            "gif" => "image/gif",
            _ => bail!("{}: not a PNG or GIF file", path.display()),
        };
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let size = image::io::Reader::new(Cursor::new(&bytes))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok())
            .ok_or_else(|| anyhow!("{}: not a readable {mime} image", path.display()))?;
        Ok(Picture {
            name,
            mime,
            bytes,
            size,
        })
    }

    /// The picture as a `data:` URI (RFC 2397, base64), so the page needs no other file.
    pub fn data_uri(&self) -> String {
        format!(
            "data:{};base64,{}",
            self.mime,
            base64::engine::general_purpose::STANDARD.encode(&self.bytes)
        )
    }
}

/// `config.toml`: its text and its parsed table.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file as written.
    pub text: String,
    /// Parsed.
    pub table: toml::Table,
}

/// Everything the page shows of one directory.
#[derive(Debug, Clone)]
pub struct Contents {
    /// The directory.
    pub dir: PathBuf,
    /// Its name (last path component).
    pub name: String,
    /// Run or lesson.
    pub kind: Kind,
    /// `config.toml`, if present.
    pub config: Option<Config>,
    /// `meta.json`, if present.
    pub meta: Option<Value>,
    /// `metrics.json`, if present.
    pub metrics: Option<Value>,
    /// `lesson.json`, if present.
    pub lesson: Option<Value>,
    /// `train_log.csv`, if present.
    pub log: Option<TrainLog>,
    /// Every PNG and GIF, sorted by name.
    pub pictures: Vec<Picture>,
    /// (file name, document) of every other JSON file, sorted by name.
    pub other_json: Vec<(String, Value)>,
    /// (file name, bytes) of every file, sorted by name (hidden files and the reports
    /// themselves left out).
    pub files: Vec<(String, u64)>,
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a JSON file; errors name the file.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))
}

impl Contents {
    /// Reads `dir` (a run or a lesson directory; anything else is an error naming it).
    pub fn read(dir: &Path) -> Result<Contents> {
        let kind = Kind::of(dir).ok_or_else(|| {
            anyhow!(
                "{}: neither a run (no {META_FILE}) nor a lesson (no {LESSON_FILE})",
                dir.display()
            )
        })?;
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("{}: cannot list", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && !file_name(p).starts_with('.'))
            .collect();
        entries.sort();
        let mut c = Contents {
            dir: dir.to_path_buf(),
            name: std::fs::canonicalize(dir)
                .as_deref()
                .map(file_name)
                .unwrap_or_else(|_| file_name(dir)),
            kind,
            config: None,
            meta: None,
            metrics: None,
            lesson: None,
            log: None,
            pictures: Vec::new(),
            other_json: Vec::new(),
            files: Vec::new(),
        };
        for p in &entries {
            let name = file_name(p);
            if name == REPORT_FILE || name == INDEX_FILE {
                continue;
            }
            c.files
                .push((name.clone(), p.metadata().map(|m| m.len()).unwrap_or(0)));
            match (name.as_str(), extension(p).as_str()) {
                (CONFIG_FILE, _) => {
                    let text = std::fs::read_to_string(p)
                        .with_context(|| format!("{}: cannot read", p.display()))?;
                    let table = text
                        .parse::<toml::Table>()
                        .map_err(|e| anyhow!("{}: not valid TOML: {e}", p.display()))?;
                    c.config = Some(Config { text, table });
                }
                (META_FILE, _) => c.meta = Some(read_json(p)?),
                (METRICS_FILE, _) => c.metrics = Some(read_json(p)?),
                (LESSON_FILE, _) => c.lesson = Some(read_json(p)?),
                (LOG_FILE, _) => c.log = Some(TrainLog::load(p)?),
                (_, "json") => c.other_json.push((name, read_json(p)?)),
                (_, "png" | "gif") => c.pictures.push(Picture::read(p)?),
                _ => {}
            }
        }
        Ok(c)
    }

    /// A string setting of `config.toml`.
    pub fn setting(&self, key: &str) -> Option<String> {
        let v = self.config.as_ref()?.table.get(key)?;
        Some(match v {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The picture called `name`, if the directory has it.
    pub fn picture(&self, name: &str) -> Option<&Picture> {
        self.pictures.iter().find(|p| p.name == name)
    }
}

/// The runs and lessons directly inside `dir`, sorted by name.
pub fn children(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && Kind::of(p).is_some())
        .collect();
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3 × 2 RGB PNG, written by the same encoder the plots use.
    fn tiny_png() -> Vec<u8> {
        let mut out = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            &[255u8; 18],
            3,
            2,
            image::ColorType::Rgb8,
        )
        .unwrap();
        out
    }

    #[test]
    fn pictures_report_their_size_and_inline_as_data_uris() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let bytes = tiny_png();
        std::fs::write(&p, &bytes).unwrap();
        let pic = Picture::read(&p).unwrap();
        assert_eq!((pic.mime, pic.size), ("image/png", (3, 2)));
        let uri = pic.data_uri();
        let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
        let back = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(back, bytes);
        // A file that is not an image is refused with its name.
        let bad = dir.path().join("b.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = Picture::read(&bad).unwrap_err().to_string();
        assert!(e.contains("b.png") && e.contains("image/png"), "{e}");
    }

    #[test]
    fn directories_are_read_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let e = Contents::read(d).unwrap_err().to_string();
        assert!(e.contains("neither a run"), "{e}");
        std::fs::write(d.join(LESSON_FILE), r#"{"claim": "x"}"#).unwrap();
        std::fs::write(d.join("z.png"), tiny_png()).unwrap();
        std::fs::write(d.join("a.png"), tiny_png()).unwrap();
        std::fs::write(d.join(".a.png.1-0.tmp.png"), b"half").unwrap();
        std::fs::write(d.join("extra.json"), "[1, 2]").unwrap();
        std::fs::write(d.join(REPORT_FILE), "old").unwrap();
        let c = Contents::read(d).unwrap();
        assert_eq!(c.kind, Kind::Lesson);
        let names: Vec<&str> = c.pictures.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["a.png", "z.png"]);
        assert_eq!(c.other_json.len(), 1);
        assert!(c
            .files
            .iter()
            .all(|(n, _)| n != REPORT_FILE && !n.starts_with('.')));
        std::fs::write(d.join(METRICS_FILE), "{oops").unwrap();
        let e = Contents::read(d).unwrap_err().to_string();
        assert!(e.contains("metrics.json: not valid JSON"), "{e}");
    }
}
