//! Output helpers: atomic file writes (the library's `fsutil`), run-directory naming, the training
//! log `train_log.csv`, the output mode (`--quiet` / `--json`) and the progress bar.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use scoreflow::fsutil::temp_path_for;

/// Writes `bytes` to `path` atomically ([`scoreflow::fsutil::write_atomic`]: temporary file in
/// the same directory, fsync, rename), so a crash leaves either the old file or the new one.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(scoreflow::fsutil::write_atomic(path, bytes)?)
}

/// Serialises `value` as pretty JSON into `path` atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).context("serialising JSON")?;
    s.push('\n');
    atomic_write(path, s.as_bytes())
}

/// UTC wall-clock time as `YYYYMMDD-HHMMSS` (for default run-directory names).
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The default run directory `runs/<data>-<method>-<time>`, with the data name reduced to a
/// file-name-safe stem (a path `data/my points.csv` becomes `my_points`).
pub fn default_run_dir(data: &str, method: &str) -> PathBuf {
    let stem = Path::new(data)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| data.to_string());
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from("runs").join(format!("{safe}-{method}-{}", timestamp()))
}

/// Creates the run directory (and parents). Refuses a non-empty directory that is not a
/// scoreflow run unless `allow_existing_run`, so a typo cannot scatter files into e.g. `src/`.
pub fn create_run_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{}: exists and is not a directory", dir.display());
        }
        let non_empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if non_empty && !dir.join("meta.json").exists() {
            bail!("{}: directory exists, is not empty and is not a scoreflow run; choose another --out", dir.display());
        }
        if dir.join("meta.json").exists() {
            bail!(
                "{}: already holds a run; use --resume {} to continue it, or choose another --out",
                dir.display(),
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create run directory", dir.display()))
}

/// One row of `train_log.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    /// Optimiser step (1-based: the loss of step k is the loss before its update).
    pub step: usize,
    /// Minibatch loss.
    pub loss: f64,
    /// Learning rate used at this step.
    pub lr: f64,
    /// Global gradient L2 norm (before clipping).
    pub grad_norm: f64,
    /// Training throughput, steps per second (moving estimate).
    pub steps_per_s: f64,
}

/// The header of `train_log.csv`.
pub const LOG_HEADER: &str = "step,loss,lr,grad_norm,steps_per_s";

/// The training log held in memory and written atomically as CSV at every checkpoint.
#[derive(Debug, Clone, Default)]
pub struct TrainLog {
    /// Rows in step order.
    pub rows: Vec<LogRow>,
}

impl TrainLog {
    /// The CSV text (header + one row per step).
    pub fn to_csv(&self) -> String {
        let mut s = String::with_capacity(48 * (self.rows.len() + 1));
        s.push_str(LOG_HEADER);
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!(
                "{},{:.8e},{:.6e},{:.6e},{:.3}\n",
                r.step, r.loss, r.lr, r.grad_norm, r.steps_per_s
            ));
        }
        s
    }

    /// Writes `train_log.csv` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        atomic_write(path, self.to_csv().as_bytes())
    }

    /// Reads a log written by [`TrainLog::save`]; errors name the file and line.
    pub fn load(path: &Path) -> Result<TrainLog> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, h)) if h.trim() == LOG_HEADER => {}
            _ => bail!("{}: line 1: expected header '{LOG_HEADER}'", path.display()),
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').collect();
            let bad = || {
                anyhow!(
                    "{}: line {}: expected 5 numbers '{LOG_HEADER}', got '{line}'",
                    path.display(),
                    i + 1
                )
            };
            if f.len() != 5 {
                return Err(bad());
            }
            let num = |k: usize| f[k].trim().parse::<f64>().map_err(|_| bad());
            rows.push(LogRow {
                step: f[0].trim().parse().map_err(|_| bad())?,
                loss: num(1)?,
                lr: num(2)?,
                grad_norm: num(3)?,
                steps_per_s: num(4)?,
            });
        }
        Ok(TrainLog { rows })
    }

    /// Drops rows after `step` (on resume from a checkpoint at `step`).
    pub fn truncate_after(&mut self, step: usize) {
        self.rows.retain(|r| r.step <= step);
    }
}

/// How a command talks to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Human-readable lines on stdout, progress bars on stderr.
    Normal,
    /// Nothing but errors.
    Quiet,
    /// One JSON object on stdout at the end, nothing else.
    Json,
}

impl Mode {
    /// From the global flags (`--json` wins over `--quiet`).
    pub fn from_flags(quiet: bool, json: bool) -> Mode {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else {
            Mode::Normal
        }
    }

    /// Prints a human-readable line (only in normal mode).
    pub fn say(self, msg: impl AsRef<str>) {
        if self == Mode::Normal {
            print_line(msg.as_ref());
        }
    }

    /// Prints the final JSON line (only in JSON mode).
    pub fn json<T: serde::Serialize>(self, value: &T) -> Result<()> {
        if self == Mode::Json {
            print_line(&serde_json::to_string(value).context("serialising JSON")?);
        }
        Ok(())
    }

    /// A progress bar of `len` steps on stderr with loss and steps/s (hidden unless normal mode;
    /// indicatif also hides it when stderr is not a terminal).
    pub fn progress(self, len: u64, prefix: &str) -> ProgressBar {
        if self != Mode::Normal {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(8));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix} [{elapsed_precise}] {wide_bar:.cyan/blue} {pos}/{len} {msg} (eta {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix.to_string());
        pb
    }
}

/// Formats a duration in seconds for summaries ("12.3 s", "2 min 05 s").
pub fn human_secs(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else {
        format!("{} min {:02.0} s", (s / 60.0).floor(), s % 60.0)
    }
}

/// Writes one line to stdout. When the reader has gone (a closed pipe: `scoreflow … | head`),
/// the process ends quietly with success, as Unix tools do, instead of panicking; the run's files
/// are written atomically, so nothing is left half-done by stopping here.
pub fn print_line(line: &str) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`print_line`].
#[macro_export]
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::output::print_line(&format!($($t)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // leap day of a century leap year
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn train_log_round_trips_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train_log.csv");
        let log = TrainLog {
            rows: (1..=5)
                .map(|s| LogRow {
                    step: s,
                    loss: 1.0 / s as f64,
                    lr: 1e-3,
                    grad_norm: 0.5,
                    steps_per_s: 10.0,
                })
                .collect(),
        };
        log.save(&p).unwrap();
        let mut back = TrainLog::load(&p).unwrap();
        assert_eq!(back.rows.len(), 5);
        for (a, b) in back.rows.iter().zip(&log.rows) {
            assert_eq!(a.step, b.step);
            assert!((a.loss - b.loss).abs() <= 1e-8 * b.loss);
        }
        back.truncate_after(3);
        assert_eq!(back.rows.last().unwrap().step, 3);
        std::fs::write(&p, format!("{LOG_HEADER}\n1,0.5,x,1,1\n")).unwrap();
        let e = TrainLog::load(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn default_run_dir_is_safe() {
        let d = default_run_dir("data/my points.csv", "cfm");
        let s = d.to_string_lossy();
        assert!(s.starts_with("runs/my_points-cfm-"), "{s}");
    }
}
