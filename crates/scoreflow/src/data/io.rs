//! Point files: CSV and NumPy `.npy` readers with validation, and atomic writers.
//!
//! Every malformed input is an [`Error::Data`] naming the file and, where it applies, the line
//! (CSV, 1-based as in an editor) or row (NPY, 0-based as `x[i]` in numpy); no input panics.
//! Loaders reject NaN and ±∞, so a file that loads is safe to train on. Writers write values
//! exactly as given (a sample containing NaN is written as `NaN`, which the loaders then
//! reject with the line) and replace the target atomically (temp file in the same directory,
//! fsync, rename), so a crash never leaves a half-written file.

use std::fs;
use std::path::Path;

use super::Points;
use crate::error::{Error, Result};
use crate::fsutil::{write_atomic, AtomicFile};

fn data_err(path: &str, location: String, msg: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_string(),
        location,
        msg: msg.into(),
    }
}

/// A field shown in an error message, cut to 40 characters.
fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(40).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    format!("'{q}'")
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::io(path, e))
}

/// Loads points by extension: `.csv` with [`load_csv`], `.npy` with [`load_npy`]; any other
/// extension is an `Error::Data`. `expected_dim` as for the loaders.
pub fn load_points(path: impl AsRef<Path>, expected_dim: Option<usize>) -> Result<Points> {
    let path = path.as_ref();
    match extension(path).as_deref() {
        Some("csv") => load_csv(path, expected_dim),
        Some("npy") => load_npy(path, expected_dim),
        _ => Err(data_err(
            &path.display().to_string(),
            String::new(),
            "unknown file type: expected a .csv or .npy extension",
        )),
    }
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
}

/// Reads a comma-separated file of n rows × d numbers (see [`parse_csv`] for the format);
/// with `expected_dim = Some(d)` any other column count is an error.
pub fn load_csv(path: impl AsRef<Path>, expected_dim: Option<usize>) -> Result<Points> {
    let path = path.as_ref();
    parse_csv(&read(path)?, &path.display().to_string(), expected_dim)
}

/// Parses CSV text, naming `name` in errors. Format: one point per line, values separated by
/// commas (spaces around them ignored, `\n` or `\r\n` endings); blank lines and lines starting
/// with `#` are skipped. The header row is *detected*: the first remaining line is a header when
/// none of its fields is a number (`x,y`; names must be non-empty), data when all are, and an
/// error when it mixes both (so a typo in a first data row is reported, not skipped).
/// Every value must be a finite number; all rows need the same column count.
pub fn parse_csv(bytes: &[u8], name: &str, expected_dim: Option<usize>) -> Result<Points> {
    Ok(parse_table(bytes, name, None, expected_dim)?.0)
}

/// Class labels read from a file: one index in 0..K per point and the value each index
/// stands for (`classes[k]` is the k-th smallest distinct label in the file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Labels {
    /// The label index of every point, in 0..K.
    pub ids: Vec<usize>,
    /// The K distinct labels as written in the file, ascending: index k means `classes[k]`.
    pub classes: Vec<i64>,
}

impl Labels {
    /// Maps integer labels to 0..K − 1 by rank among their distinct values (the mapping is
    /// [`Labels::classes`]).
    pub fn from_values(values: &[i64]) -> Self {
        let mut classes = values.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let ids = values
            .iter()
            .map(|v| classes.binary_search(v).expect("every value is a class"))
            .collect();
        Self { ids, classes }
    }

    /// Number of classes K.
    pub fn count(&self) -> usize {
        self.classes.len()
    }
}

/// Reads a CSV file whose column `label_column` (by its header name) holds integer class
/// labels and whose other columns are the points (see [`parse_csv_labelled`]).
pub fn load_csv_labelled(
    path: impl AsRef<Path>,
    label_column: &str,
    expected_dim: Option<usize>,
) -> Result<(Points, Labels)> {
    let path = path.as_ref();
    parse_csv_labelled(
        &read(path)?,
        &path.display().to_string(),
        label_column,
        expected_dim,
    )
}

/// Parses CSV text as [`parse_csv`] does, with one column — found by its name in the header row,
/// which is then required — read as integer labels and mapped to 0..K − 1
/// ([`Labels::from_values`]); the remaining columns are the points. A missing header or
/// column, or a label that is not an integer, is an `Error::Data` naming the line.
pub fn parse_csv_labelled(
    bytes: &[u8],
    name: &str,
    label_column: &str,
    expected_dim: Option<usize>,
) -> Result<(Points, Labels)> {
    let (points, values) = parse_table(bytes, name, Some(label_column), expected_dim)?;
    Ok((points, Labels::from_values(&values)))
}

/// The CSV reader behind [`parse_csv`] and [`parse_csv_labelled`]: points, and the integer
/// values of the label column when one is named.
fn parse_table(
    bytes: &[u8],
    name: &str,
    label_column: Option<&str>,
    expected_dim: Option<usize>,
) -> Result<(Points, Vec<i64>)> {
    let mut data = Vec::new();
    let mut labels = Vec::new();
    // The label column's index, once the header has named it.
    let mut label_at: Option<usize> = None;
    // Point columns: all but the label column.
    let point_cols = |c: usize| if label_column.is_some() { c - 1 } else { c };
    // Column count and the line that fixed it.
    let mut cols: Option<(usize, usize)> = None;
    let mut header_checked = false;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let at = || format!("line {line_no}: ");
        let line =
            std::str::from_utf8(raw).map_err(|_| data_err(name, at(), "not valid UTF-8 text"))?;
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let parsed: Vec<std::result::Result<f64, _>> =
            fields.iter().map(|f| f.parse::<f64>()).collect();
        if !header_checked {
            header_checked = true;
            if parsed.iter().all(|p| p.is_err()) {
                if let Some(j) = fields.iter().position(|f| f.is_empty()) {
                    return Err(data_err(
                        name,
                        at(),
                        format!("column {}: empty field in the header row", j + 1),
                    ));
                }
                if let Some(col) = label_column {
                    let j = fields.iter().position(|f| *f == col).ok_or_else(|| {
                        data_err(
                            name,
                            at(),
                            format!(
                                "no column named {} in the header ({})",
                                quote(col),
                                fields.join(", ")
                            ),
                        )
                    })?;
                    if fields.len() < 2 {
                        return Err(data_err(
                            name,
                            at(),
                            "the label column is the only column: no coordinates",
                        ));
                    }
                    label_at = Some(j);
                }
                check_cols(name, point_cols(fields.len()), line_no, expected_dim)?;
                cols = Some((fields.len(), line_no));
                continue;
            }
            if let Some(col) = label_column {
                return Err(data_err(
                    name,
                    at(),
                    format!(
                        "no header row: a label column ({}) needs named columns",
                        quote(col)
                    ),
                ));
            }
            if let Some(j) = parsed.iter().position(|p| p.is_err()) {
                return Err(data_err(
                    name,
                    at(),
                    format!(
                        "column {}: {} is not a number (a header row must contain only names)",
                        j + 1,
                        quote(fields[j])
                    ),
                ));
            }
        }
        match cols {
            None => {
                check_cols(name, point_cols(fields.len()), line_no, expected_dim)?;
                cols = Some((fields.len(), line_no));
            }
            Some((c, first)) if c != fields.len() => {
                return Err(data_err(
                    name,
                    at(),
                    format!(
                        "{} columns, but line {first} has {c} (ragged rows)",
                        fields.len()
                    ),
                ));
            }
            Some(_) => {}
        }
        for (j, (f, p)) in fields.iter().zip(parsed).enumerate() {
            if label_at == Some(j) {
                let v = f.parse::<i64>().map_err(|_| {
                    data_err(
                        name,
                        at(),
                        format!("column {}: {} is not an integer label", j + 1, quote(f)),
                    )
                })?;
                labels.push(v);
                continue;
            }
            let v = match p {
                Ok(v) => v,
                Err(_) if f.is_empty() => {
                    return Err(data_err(
                        name,
                        at(),
                        format!("column {}: empty field", j + 1),
                    ))
                }
                Err(_) => {
                    return Err(data_err(
                        name,
                        at(),
                        format!("column {}: {} is not a number", j + 1, quote(f)),
                    ))
                }
            };
            if !v.is_finite() {
                return Err(data_err(
                    name,
                    at(),
                    format!("column {}: non-finite value {}", j + 1, quote(f)),
                ));
            }
            data.push(v);
        }
    }
    match cols {
        Some((c, _)) if !data.is_empty() || !labels.is_empty() => Ok((
            Points {
                data,
                dim: point_cols(c),
            },
            labels,
        )),
        Some(_) => Err(data_err(name, String::new(), "header row but no data rows")),
        None => Err(data_err(name, String::new(), "empty file: no data rows")),
    }
}

fn check_cols(name: &str, cols: usize, line_no: usize, expected_dim: Option<usize>) -> Result<()> {
    match expected_dim {
        Some(d) if d != cols => Err(data_err(
            name,
            format!("line {line_no}: "),
            format!("{cols} columns, expected dimension {d}"),
        )),
        _ => Ok(()),
    }
}

/// Reads a NumPy `.npy` file holding a 2-D (n, d) array (see [`parse_npy`]).
pub fn load_npy(path: impl AsRef<Path>, expected_dim: Option<usize>) -> Result<Points> {
    let path = path.as_ref();
    parse_npy(&read(path)?, &path.display().to_string(), expected_dim)
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Parses `.npy` bytes (format versions 1–3), naming `name` in errors. Accepted: dtype
/// little-endian float32 (`<f4`) or float64 (`<f8`), C order, shape (n ≥ 1, d ≥ 1), exactly
/// n·d values, all finite. Bad magic, unknown version, truncated header or data, trailing bytes,
/// other dtypes, big-endian, Fortran order and other ranks are errors.
pub fn parse_npy(bytes: &[u8], name: &str, expected_dim: Option<usize>) -> Result<Points> {
    let err = |msg: String| data_err(name, String::new(), msg);
    if !bytes.starts_with(NPY_MAGIC) {
        return Err(err(
            "not an NPY file (bad magic: expected \\x93NUMPY)".into()
        ));
    }
    let (major, minor) = match (bytes.get(6), bytes.get(7)) {
        (Some(&a), Some(&b)) => (a, b),
        _ => return Err(err("truncated NPY preamble".into())),
    };
    let (len_bytes, start): (usize, usize) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(err(format!(
                "unsupported NPY format version {major}.{minor}"
            )))
        }
    };
    let len_field = bytes
        .get(8..8 + len_bytes)
        .ok_or_else(|| err("truncated NPY preamble".into()))?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let header = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            err(format!(
                "truncated NPY header: it declares {header_len} bytes"
            ))
        })?;
    let header =
        std::str::from_utf8(header).map_err(|_| err("NPY header is not valid text".into()))?;
    let h = NpyHeader::parse(header).map_err(|m| err(format!("malformed NPY header: {m}")))?;

    let size = match h.descr.as_str() {
        "<f8" => 8,
        "<f4" => 4,
        ">f8" | ">f4" => {
            return Err(err(format!(
                "big-endian data ({}) is not supported: save little-endian ('<f4' or '<f8')",
                quote(&h.descr)
            )))
        }
        other => {
            return Err(err(format!(
                "dtype {} is not supported: expected float32 ('<f4') or float64 ('<f8')",
                quote(other)
            )))
        }
    };
    if h.fortran_order {
        return Err(err(
            "Fortran-order arrays are not supported: save a C-order array (np.ascontiguousarray)"
                .into(),
        ));
    }
    let (n, d) = match h.shape[..] {
        [n, d] => (n, d),
        _ => {
            return Err(err(format!(
                "expected a 2-D array (n, d), got shape {:?} ({}-D)",
                h.shape,
                h.shape.len()
            )))
        }
    };
    if d == 0 {
        return Err(err(format!("array of shape ({n}, 0) has no columns")));
    }
    if let Some(e) = expected_dim.filter(|&e| e != d) {
        return Err(err(format!(
            "array has {d} columns, expected dimension {e}"
        )));
    }
    if n == 0 {
        return Err(err("empty array: no rows".into()));
    }
    let body = &bytes[start + header_len..];
    let need = n
        .checked_mul(d)
        .and_then(|c| c.checked_mul(size))
        .ok_or_else(|| err(format!("shape ({n}, {d}) is too large")))?;
    if body.len() < need {
        return Err(err(format!(
            "truncated data: shape ({n}, {d}) needs {need} bytes, the file has {}",
            body.len()
        )));
    }
    if body.len() > need {
        return Err(err(format!(
            "{} unexpected bytes after the ({n}, {d}) array",
            body.len() - need
        )));
    }
    let data: Vec<f64> = if size == 8 {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8-byte chunk")))
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4-byte chunk")) as f64)
            .collect()
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(data_err(
            name,
            format!("row {}: ", i / d),
            format!("column {}: non-finite value {}", i % d, data[i]),
        ));
    }
    Ok(Points { data, dim: d })
}

/// The three keys of an NPY header dictionary.
#[derive(Debug)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A value of the Python-literal subset used by NPY headers.
#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl NpyHeader {
    /// Parses `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`.
    fn parse(s: &str) -> std::result::Result<Self, String> {
        let mut p = PyParser {
            s: s.as_bytes(),
            i: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.skip_ws();
            if p.eat(b'}') {
                break;
            }
            let key = match p.value()? {
                PyValue::Str(k) => k,
                other => return Err(format!("dictionary key {other:?} is not a string")),
            };
            p.expect(b':')?;
            let v = p.value()?;
            match (key.as_str(), v) {
                ("descr", PyValue::Str(d)) => descr = Some(d),
                ("fortran_order", PyValue::Bool(b)) => fortran = Some(b),
                ("shape", PyValue::Tuple(t)) => shape = Some(t),
                (k @ ("descr" | "fortran_order" | "shape"), v) => {
                    return Err(format!("'{k}' has an unexpected value {v:?}"))
                }
                _ => {}
            }
            p.skip_ws();
            if !p.eat(b',') {
                p.expect(b'}')?;
                break;
            }
        }
        Ok(NpyHeader {
            descr: descr.ok_or("missing 'descr'")?,
            fortran_order: fortran.ok_or("missing 'fortran_order'")?,
            shape: shape.ok_or("missing 'shape'")?,
        })
    }
}

struct PyParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl PyParser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> std::result::Result<PyValue, String> {
        self.skip_ws();
        match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => {
                let start = self.i + 1;
                let len = self.s[start..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or("unterminated string")?;
                self.i = start + len + 1;
                Ok(PyValue::Str(
                    String::from_utf8_lossy(&self.s[start..start + len]).into_owned(),
                ))
            }
            Some(b'(') => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    self.skip_ws();
                    let start = self.i;
                    while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                        self.i += 1;
                    }
                    let digits =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    let v = digits
                        .parse::<usize>()
                        .map_err(|_| format!("bad shape entry at byte {start}"))?;
                    items.push(v);
                    self.eat(b'L'); // Python 2 long suffix
                    if !self.eat(b',') {
                        self.expect(b')')?;
                        break;
                    }
                }
                Ok(PyValue::Tuple(items))
            }
            _ => {
                for (word, v) in [("True", true), ("False", false)] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(PyValue::Bool(v));
                    }
                }
                Err(format!("unexpected value at byte {}", self.i))
            }
        }
    }
}

/// The CSV header of d-dimensional points: `x` / `x,y` / `x,y,z`, else `x0,…,x{d−1}`.
fn csv_header(d: usize) -> String {
    let header: Vec<String> = match d {
        1..=3 => ["x", "y", "z"][..d].iter().map(|s| s.to_string()).collect(),
        _ => (0..d).map(|j| format!("x{j}")).collect(),
    };
    let mut out = header.join(",");
    out.push('\n');
    out
}

/// Appends one CSV row per point, each value in the shortest form that reads back to the same
/// `f64`.
fn csv_rows(x: &Points, out: &mut String) {
    for r in x.rows() {
        let row: Vec<String> = r.iter().map(|v| format!("{v:?}")).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
}

/// CSV text of the points: a header (`x` / `x,y` / `x,y,z`, else `x0,…,x{d−1}`) and one row
/// per point, each value in the shortest form that reads back to the same `f64`.
pub fn csv_string(x: &Points) -> String {
    let mut out = csv_header(x.dim());
    csv_rows(x, &mut out);
    out
}

/// The `.npy` header of an (n, d) `<f8` C-order array (format 1.0), padded so the data starts at
/// a multiple of 64 bytes, as numpy writes it.
fn npy_header(n: usize, d: usize) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({n}, {d}), }}");
    // 10-byte preamble + header + '\n' padded to a multiple of 64.
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    while 10 + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Appends the points' values as little-endian f64.
fn npy_values(x: &Points, out: &mut Vec<u8>) {
    for v in x.as_slice() {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// `.npy` bytes (format 1.0, `<f8`, C order, shape (n, d)); the header is padded so the data
/// starts at a multiple of 64 bytes, as numpy writes it.
pub fn npy_bytes(x: &Points) -> Vec<u8> {
    let mut out = npy_header(x.len(), x.dim());
    npy_values(x, &mut out);
    out
}

/// A points file (`.csv` or `.npy`) written block by block, with exactly the bytes
/// [`write_points`] writes for all the points at once, and published atomically by
/// [`PointWriter::finish`] (memory independent of the number of points). The number of rows is
/// declared up front (the `.npy` header holds the shape); finishing with another count is an
/// error and leaves the destination untouched.
pub struct PointWriter {
    file: AtomicFile,
    npy: bool,
    dim: usize,
    rows: usize,
    written: usize,
}

impl PointWriter {
    /// Starts `path` for `rows` points of dimension `dim`; the extension picks the format.
    pub fn create(path: impl AsRef<Path>, rows: usize, dim: usize) -> Result<PointWriter> {
        let path = path.as_ref();
        let npy = match extension(path).as_deref() {
            Some("csv") => false,
            Some("npy") => true,
            _ => {
                return Err(Error::InvalidInput(format!(
                    "{}: unknown file type: expected a .csv or .npy extension",
                    path.display()
                )))
            }
        };
        let mut file = AtomicFile::create(path)?;
        if npy {
            file.write(&npy_header(rows, dim))?;
        } else {
            file.write(csv_header(dim).as_bytes())?;
        }
        Ok(PointWriter {
            file,
            npy,
            dim,
            rows,
            written: 0,
        })
    }

    /// Appends points (of the declared dimension, within the declared count).
    pub fn write(&mut self, x: &Points) -> Result<()> {
        if x.dim() != self.dim || self.written + x.len() > self.rows {
            return Err(Error::Shape(format!(
                "{} points of dimension {} do not fit a file of {} rows of dimension {} ({} written)",
                x.len(),
                x.dim(),
                self.rows,
                self.dim,
                self.written
            )));
        }
        if self.npy {
            let mut buf = Vec::with_capacity(8 * x.as_slice().len());
            npy_values(x, &mut buf);
            self.file.write(&buf)?;
        } else {
            let mut buf = String::new();
            csv_rows(x, &mut buf);
            self.file.write(buf.as_bytes())?;
        }
        self.written += x.len();
        Ok(())
    }

    /// Publishes the file; an error (and no file) unless every declared row was written.
    pub fn finish(self) -> Result<()> {
        if self.written != self.rows {
            return Err(Error::Shape(format!(
                "{} of {} declared rows written",
                self.written, self.rows
            )));
        }
        self.file.commit()
    }
}

/// Writes [`csv_string`] to `path` atomically ([`write_atomic`]: temp file, fsync, rename).
pub fn write_csv(path: impl AsRef<Path>, x: &Points) -> Result<()> {
    write_atomic(path.as_ref(), csv_string(x).as_bytes())
}

/// Writes [`npy_bytes`] to `path` atomically.
pub fn write_npy(path: impl AsRef<Path>, x: &Points) -> Result<()> {
    write_atomic(path.as_ref(), &npy_bytes(x))
}

/// Writes points by extension (`.csv` or `.npy`); another extension is `Error::InvalidInput`.
pub fn write_points(path: impl AsRef<Path>, x: &Points) -> Result<()> {
    let path = path.as_ref();
    match extension(path).as_deref() {
        Some("csv") => write_csv(path, x),
        Some("npy") => write_npy(path, x),
        _ => Err(Error::InvalidInput(format!(
            "{}: unknown file type: expected a .csv or .npy extension",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Streaming a points file block by block gives exactly the bytes of writing it at once
    /// (CSV and NPY); a wrong row count publishes nothing.
    #[test]
    fn streamed_files_equal_whole_writes() {
        let dir = tempfile::tempdir().unwrap();
        let x = Points::new((0..30).map(|i| (i as f64).sin() * 1e3 + 0.1).collect(), 3).unwrap();
        for ext in ["csv", "npy"] {
            let whole = dir.path().join(format!("whole.{ext}"));
            write_points(&whole, &x).unwrap();
            let parts = dir.path().join(format!("parts.{ext}"));
            let mut w = PointWriter::create(&parts, x.len(), 3).unwrap();
            for (a, b) in [(0, 4), (4, 4), (4, 9), (9, 10)] {
                w.write(&x.slice(a, b)).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(
                fs::read(&whole).unwrap(),
                fs::read(&parts).unwrap(),
                "{ext}"
            );
            let short = dir.path().join(format!("short.{ext}"));
            let mut w = PointWriter::create(&short, x.len(), 3).unwrap();
            w.write(&x.slice(0, 5)).unwrap();
            assert!(w.finish().is_err());
            assert!(!short.exists());
        }
        // Only the destination is left: no temporary files.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
    }

    fn csv(s: &str, dim: Option<usize>) -> Result<Points> {
        parse_csv(s.as_bytes(), "f.csv", dim)
    }

    /// The error's location and message, asserting it is a Data error for "f.csv"/"f.npy".
    fn data_error(r: Result<Points>) -> (String, String) {
        match r {
            Err(Error::Data {
                path,
                location,
                msg,
            }) => {
                assert!(path.starts_with("f."), "{path}");
                (location, msg)
            }
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    #[test]
    fn csv_header_is_detected() {
        let with = csv("x,y\n1,2\n3.5,-4e-3\n", None).unwrap();
        let without = csv("1,2\r\n3.5 , -4e-3\r\n\r\n", Some(2)).unwrap();
        assert_eq!(with, without);
        assert_eq!(with.as_slice(), &[1.0, 2.0, 3.5, -4e-3]);
        // numpy.savetxt's default '# ' comment header and a UTF-8 byte-order mark.
        let c = csv("\u{feff}# x,y\n1,2\n", None).unwrap();
        assert_eq!(c.as_slice(), &[1.0, 2.0]);
        // One column, no commas.
        assert_eq!(csv("v\n1\n2\n", Some(1)).unwrap().len(), 2);
    }

    #[test]
    fn csv_malformed_inputs_name_the_line() {
        let cases: &[(&str, Option<usize>, &str, &str)] = &[
            (
                "x,y\n1,2\n3\n",
                None,
                "line 3: ",
                "1 columns, but line 1 has 2",
            ),
            (
                "1,2\n3,4,5\n",
                None,
                "line 2: ",
                "3 columns, but line 1 has 2",
            ),
            (
                "x,y\n1,2\n3,abc\n",
                None,
                "line 3: ",
                "column 2: 'abc' is not a number",
            ),
            (
                "x,y\n1,nan\n",
                None,
                "line 2: ",
                "column 2: non-finite value 'nan'",
            ),
            ("x,y\n1,2\n-inf,2\n", None, "line 3: ", "non-finite"),
            ("1,1e999\n", None, "line 1: ", "non-finite"),
            ("x,y\n1,,\n", None, "line 2: ", "3 columns"),
            ("x,y,z\n1,,3\n", None, "line 2: ", "column 2: empty field"),
            (
                "1,abc\n2,3\n",
                None,
                "line 1: ",
                "header row must contain only names",
            ),
            (
                "x,y,z\n1,2,3\n",
                Some(2),
                "line 1: ",
                "3 columns, expected dimension 2",
            ),
            (
                "1,2,3\n",
                Some(2),
                "line 1: ",
                "3 columns, expected dimension 2",
            ),
            ("", None, "", "empty file"),
            ("\n\n# only a comment\n", None, "", "empty file"),
            ("x,y\n", None, "", "header row but no data rows"),
            (
                ",,\n1,2,3\n",
                None,
                "line 1: ",
                "column 1: empty field in the header row",
            ),
        ];
        for (text, dim, loc, needle) in cases {
            let (l, m) = data_error(csv(text, *dim));
            assert_eq!(&l, loc, "{text:?}: {m}");
            assert!(m.contains(needle), "{text:?}: {m}");
        }
        let (l, m) = data_error(parse_csv(b"x,y\n1,2\n\xff\xfe,1\n", "f.csv", None));
        assert_eq!(
            (l.as_str(), m.as_str()),
            ("line 3: ", "not valid UTF-8 text")
        );
    }

    /// A named label column becomes labels 0..K − 1 by rank of the integer values (the mapping
    /// kept), the other columns the points; a missing header or column and non-integer labels
    /// are one-line errors naming the line.
    #[test]
    fn csv_label_column() {
        let text = "x,cls,y\n0.5,7,1\n1.5,-2,2\n2.5,7,3\n3.5,10,4\n";
        let (p, l) = parse_csv_labelled(text.as_bytes(), "t.csv", "cls", Some(2)).unwrap();
        assert_eq!(p.as_slice(), &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]);
        assert_eq!(l.classes, vec![-2, 7, 10]);
        assert_eq!(l.ids, vec![1, 0, 1, 2]);
        assert_eq!(l.count(), 3);
        let err = |t: &str, col: &str| {
            parse_csv_labelled(t.as_bytes(), "t.csv", col, None)
                .unwrap_err()
                .to_string()
        };
        assert!(err(text, "label").contains("no column named 'label'"));
        assert!(err("1,2\n3,4\n", "cls").contains("no header row"));
        let bad = err("x,cls\n1,2\n3,b\n", "cls");
        assert!(
            bad.contains("line 3") && bad.contains("not an integer label"),
            "{bad}"
        );
        assert!(err("x,cls\n1,2.5\n", "cls").contains("not an integer label"));
        assert!(err("cls\n1\n", "cls").contains("only column"));
        for e in [err(text, "label"), bad] {
            assert!(!e.contains('\n'), "{e}");
        }
    }

    fn npy_with(descr: &str, fortran: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n");
        while (10 + header.len()) % 16 != 0 {
            header.insert(header.len() - 1, ' ');
        }
        let mut out = NPY_MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn npy_reads_f32_and_f64_and_versions() {
        let vals = [1.5f32, -2.0, 3.25, 4.0, 0.5, -0.125];
        let body: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let p = parse_npy(&npy_with("<f4", "False", "(3, 2)", &body), "f.npy", Some(2)).unwrap();
        assert_eq!((p.len(), p.dim()), (3, 2));
        assert_eq!(p.as_slice(), &vals.map(f64::from));
        // Format 2.0 (4-byte header length) with a double-quoted, oddly spaced header.
        let header = "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(1,3)}\n";
        let mut b = NPY_MAGIC.to_vec();
        b.extend_from_slice(&[2, 0]);
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        for v in [1.0f64, 2.0, 3.0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            parse_npy(&b, "f.npy", None).unwrap().as_slice(),
            &[1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn npy_malformed_inputs() {
        let f8 = |vals: &[f64]| -> Vec<u8> { vals.iter().flat_map(|v| v.to_le_bytes()).collect() };
        let good = npy_with("<f8", "False", "(2, 2)", &f8(&[1.0, 2.0, 3.0, 4.0]));
        let cases: Vec<(Vec<u8>, Option<usize>, &str, &str)> = vec![
            (b"PK\x03\x04 not numpy".to_vec(), None, "", "bad magic"),
            (b"\x93NUMP".to_vec(), None, "", "bad magic"),
            (
                b"\x93NUMPY\x01".to_vec(),
                None,
                "",
                "truncated NPY preamble",
            ),
            (
                b"\x93NUMPY\x07\x00\x10\x00".to_vec(),
                None,
                "",
                "unsupported NPY format version 7.0",
            ),
            (good[..40].to_vec(), None, "", "truncated NPY header"),
            (good[..good.len() - 3].to_vec(), None, "", "truncated data"),
            (
                [good.clone(), vec![0u8; 5]].concat(),
                None,
                "",
                "5 unexpected bytes",
            ),
            (
                npy_with("<i8", "False", "(2, 2)", &[0; 32]),
                None,
                "",
                "dtype '<i8' is not supported",
            ),
            (
                npy_with(">f8", "False", "(2, 2)", &[0; 32]),
                None,
                "",
                "big-endian",
            ),
            (
                npy_with("<f8", "True", "(2, 2)", &[0; 32]),
                None,
                "",
                "Fortran-order",
            ),
            (
                npy_with("<f8", "False", "(4,)", &[0; 32]),
                None,
                "",
                "expected a 2-D array",
            ),
            (
                npy_with("<f8", "False", "(1, 2, 2)", &[0; 32]),
                None,
                "",
                "3-D",
            ),
            (npy_with("<f8", "False", "(0, 2)", &[]), None, "", "no rows"),
            (
                npy_with("<f8", "False", "(2, 0)", &[]),
                None,
                "",
                "no columns",
            ),
            (good.clone(), Some(3), "", "2 columns, expected dimension 3"),
            (
                npy_with("<f8", "False", "(2, 2)", &f8(&[1.0, 2.0, 3.0, f64::NAN])),
                None,
                "row 1: ",
                "column 1: non-finite value NaN",
            ),
            (
                npy_with(
                    "<f8",
                    "False",
                    "(2, 2)",
                    &f8(&[1.0, f64::INFINITY, 3.0, 0.0]),
                ),
                None,
                "row 0: ",
                "column 1: non-finite value inf",
            ),
            (
                npy_with("<f8", "False", "(99999999999, 99999999999)", &[]),
                None,
                "",
                "too large",
            ),
            (
                npy_with("<f8", "False", "(2, x)", &[]),
                None,
                "",
                "malformed NPY header",
            ),
        ];
        for (bytes, dim, loc, needle) in cases {
            let (l, m) = data_error(parse_npy(&bytes, "f.npy", dim));
            assert_eq!(l, loc, "{m}");
            assert!(m.contains(needle), "expected {needle:?} in {m:?}");
        }
        let mut no_shape = NPY_MAGIC.to_vec();
        let h = "{'descr': '<f8', 'fortran_order': False}\n";
        no_shape.extend_from_slice(&[1, 0, h.len() as u8, 0]);
        no_shape.extend_from_slice(h.as_bytes());
        assert!(data_error(parse_npy(&no_shape, "f.npy", None))
            .1
            .contains("missing 'shape'"));
    }

    #[test]
    fn writers_round_trip_exactly_and_atomically() {
        let dir = tempfile::tempdir().unwrap();
        // Values that stress formatting: tiny, huge, negative zero, many digits.
        let x = Points::new(
            vec![
                0.1,
                -1e-300,
                1e300,
                -0.0,
                std::f64::consts::PI,
                123456789.12345679,
            ],
            2,
        )
        .unwrap();
        for name in ["a.csv", "a.npy", "A.NPY"] {
            let p = dir.path().join(name);
            write_points(&p, &x).unwrap();
            write_points(&p, &x).unwrap(); // overwriting works
            let back = load_points(&p, Some(2)).unwrap();
            assert_eq!(
                back.as_slice()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                x.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{name}"
            );
        }
        // numpy's alignment: data starts at a multiple of 64.
        let b = npy_bytes(&x);
        assert_eq!((b.len() - 8 * 6) % 64, 0);
        assert!(b[..b.len() - 48].ends_with(b"\n"));
        // 1-D header name and >3-D names.
        assert!(csv_string(&Points::new(vec![1.0], 1).unwrap()).starts_with("x\n"));
        assert!(csv_string(&Points::new(vec![1.0; 4], 4).unwrap()).starts_with("x0,x1,x2,x3\n"));
        // No temp files are left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
        // A failing write leaves nothing: the target directory does not exist.
        let missing = dir.path().join("no/such/dir/a.csv");
        assert!(matches!(write_csv(&missing, &x), Err(Error::Io { .. })));
        assert!(write_points(dir.path().join("a.txt"), &x).is_err());
        // Loaders: unknown extension, missing file.
        assert!(matches!(
            load_points(dir.path().join("a.txt"), None),
            Err(Error::Data { .. })
        ));
        assert!(matches!(
            load_points(dir.path().join("b.csv"), None),
            Err(Error::Io { .. })
        ));
        // Non-finite values are written faithfully and rejected on load with their line.
        let bad = Points::new(vec![1.0, f64::NAN], 2).unwrap();
        write_csv(dir.path().join("bad.csv"), &bad).unwrap();
        let e = load_csv(dir.path().join("bad.csv"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.csv: line 2: column 2: non-finite value 'NaN'"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), dim in proptest::option::of(1usize..4)) {
            let _ = parse_csv(&bytes, "f.csv", dim);
            let _ = parse_npy(&bytes, "f.npy", dim);
            // Behind a valid magic and version, so the header parser sees the random bytes.
            let mut b = NPY_MAGIC.to_vec();
            b.extend_from_slice(&[1, 0, bytes.len() as u8, 0]);
            b.extend_from_slice(&bytes);
            let _ = parse_npy(&b, "f.npy", dim);
        }

        #[test]
        fn random_csv_text_never_panics(text in "[0-9a-z,.\\-+e# \\n\\r]{0,200}", dim in proptest::option::of(1usize..4)) {
            match parse_csv(text.as_bytes(), "f.csv", dim) {
                Ok(p) => {
                    prop_assert!(p.as_slice().iter().all(|v| v.is_finite()));
                    prop_assert!(!p.is_empty());
                    if let Some(d) = dim { prop_assert_eq!(p.dim(), d); }
                }
                Err(Error::Data { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected error kind {e:?}"),
            }
        }

        #[test]
        fn random_npy_headers_never_panic(
            descr in "[<>|]?[fiu][1248]",
            fortran in "(True|False|1|x)",
            shape in "\\(([0-9]{0,3}, ?){0,3}[0-9]{0,3}\\)",
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let b = npy_with(&descr, &fortran, &shape, &body);
            if let Ok(p) = parse_npy(&b, "f.npy", None) {
                prop_assert_eq!(p.len() * p.dim() * if descr.ends_with('8') { 8 } else { 4 }, body.len());
            }
        }

        #[test]
        fn csv_round_trip(vals in proptest::collection::vec(-1e6f64..1e6, 1..40), dim in 1usize..4) {
            let n = vals.len() / dim;
            prop_assume!(n > 0);
            let x = Points::new(vals[..n * dim].to_vec(), dim).unwrap();
            prop_assert_eq!(&parse_csv(csv_string(&x).as_bytes(), "f.csv", Some(dim)).unwrap(), &x);
            prop_assert_eq!(&parse_npy(&npy_bytes(&x), "f.npy", Some(dim)).unwrap(), &x);
        }
    }
}
