//! Images as points of R^(C·H·W): the built-in 8 × 8 handwritten digits, MNIST-format IDX files
//! and folders of PNGs, with their number of intensity levels L (17 for the digits, 256 for
//! 8-bit files) so that likelihoods can be reported in bits per dimension over the data's own
//! levels ([`crate::likelihood::Dequantization`]).
//!
//! An image is flattened row-major from (C, H, W), as PyTorch's `x.flatten(1)` of an NCHW batch;
//! pixel values stay in data units (integers 0 … L−1). Every malformed input is an
//! [`Error::Data`] naming the file, never a panic.

use std::io::Read as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::source::test_mask;
use super::{Normalizer, Points};
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The built-in digits file (see `data/README.md`: UCI, CC BY 4.0, as scikit-learn ships it).
const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

fn data_err(path: &str, location: String, msg: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_string(),
        location,
        msg: msg.into(),
    }
}

/// n images of C × H × W pixels with integer values 0 … L−1, and optional class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// `(n, C·H·W)` pixel values in data units, each row flattened from (C, H, W).
    pub pixels: Points,
    /// Channels C (1 grey, 3 RGB).
    pub channels: usize,
    /// Height H.
    pub height: usize,
    /// Width W.
    pub width: usize,
    /// Number of intensity levels L.
    pub levels: u32,
    /// One class per image, when known.
    pub labels: Option<Vec<usize>>,
}

/// The memorisation check ([`Images::memorisation`]): distances in data units, Euclidean over
/// all pixels, to the nearest training image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    /// Samples compared.
    pub samples: usize,
    /// Mean distance of a sample to its nearest training image.
    pub sample_nn_mean: f64,
    /// Held-out images compared.
    pub held_out: usize,
    /// Mean distance of a held-out image to its nearest training image.
    pub held_out_nn_mean: f64,
    /// `sample_nn_mean` / `held_out_nn_mean`: ≈ 1 generalises, ≪ 1 copies the training set.
    pub ratio: f64,
}

/// The format of an image data set: C × H × W pixels of L intensity levels (stored in a run
/// directory as `images.json`, so that a run knows its images without the data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageFormat {
    /// Channels C.
    pub channels: usize,
    /// Height H.
    pub height: usize,
    /// Width W.
    pub width: usize,
    /// Number of intensity levels L.
    pub levels: u32,
}

impl ImageFormat {
    /// (C, H, W).
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.channels, self.height, self.width)
    }

    /// Data dimension d = C·H·W.
    pub fn dim(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The model units of images: z = (x − μ)/σ with μ = L/2 − ½ and σ = L/2, i.e.
    /// z = 2(x + ½)/L − 1, the centre of level x's cell under the symmetric dequantisation
    /// z = 2(x + u)/L − 1 (u ~ U\[0, 1)), so that model units span \[−1, 1) as DDPM's do.
    pub fn normalizer(&self) -> Normalizer {
        let l = self.levels as f64;
        Normalizer {
            mean: vec![l / 2.0 - 0.5; self.dim()],
            std: vec![l / 2.0; self.dim()],
        }
    }

    /// Clamps continuous data-unit values to the data's range \[0, L − 1\] in place (values are
    /// not rounded: rounding gives the level).
    pub fn clamp(&self, values: &mut [f64]) {
        let top = (self.levels.max(1) - 1) as f64;
        for v in values {
            *v = v.clamp(0.0, top);
        }
    }

    /// Rounds continuous data-unit values to the nearest level in \[0, L − 1\] in place: x̂ =
    /// clamp(round(x), 0, L − 1), the image a sample stands for (as a file stores it).
    pub fn quantize(&self, values: &mut [f64]) {
        self.clamp(values);
        for v in values {
            *v = v.round();
        }
    }
}

impl Images {
    /// Images from their parts, checking that every row has C·H·W values, every value is an
    /// integer in 0 … L−1 and the labels (if any) number one per image.
    pub fn new(
        pixels: Points,
        (channels, height, width): (usize, usize, usize),
        levels: u32,
        labels: Option<Vec<usize>>,
    ) -> Result<Self> {
        let d = channels * height * width;
        if d == 0 || pixels.dim() != d {
            return Err(Error::Shape(format!(
                "images of {channels}×{height}×{width} need {d} values per row, got {}",
                pixels.dim()
            )));
        }
        if levels < 2 {
            return Err(Error::InvalidInput(format!(
                "images need at least 2 levels, got {levels}"
            )));
        }
        if let Some((i, v)) = pixels
            .as_slice()
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.fract() == 0.0 && **v >= 0.0 && **v < levels as f64))
        {
            return Err(Error::InvalidInput(format!(
                "image {}, pixel {}: {v} is not an integer level in 0..{levels}",
                i / d,
                i % d
            )));
        }
        if let Some(l) = &labels {
            if l.len() != pixels.len() {
                return Err(Error::Shape(format!(
                    "{} labels for {} images",
                    l.len(),
                    pixels.len()
                )));
            }
        }
        Ok(Self {
            pixels,
            channels,
            height,
            width,
            levels,
            labels,
        })
    }

    /// The UCI 8 × 8 handwritten digits (Alpaydin & Kaynak 1998): 1,797 grey images, 17 levels
    /// (0 … 16), labels 0 … 9. Shipped with the crate; nothing is downloaded.
    pub fn digits() -> Result<Self> {
        let name = "<built-in digits>";
        let mut text = String::new();
        flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
            .read_to_string(&mut text)
            .map_err(|e| data_err(name, String::new(), format!("cannot decompress: {e}")))?;
        let mut pixels = Vec::with_capacity(1797 * 64);
        let mut labels = Vec::with_capacity(1797);
        for (i, line) in text.lines().enumerate() {
            let vals: Vec<f64> = line
                .split(',')
                .map(|v| v.trim().parse::<f64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| data_err(name, format!("line {}", i + 1), e.to_string()))?;
            if vals.len() != 65 {
                return Err(data_err(
                    name,
                    format!("line {}", i + 1),
                    format!("{} values, expected 64 pixels and a label", vals.len()),
                ));
            }
            pixels.extend_from_slice(&vals[..64]);
            labels.push(vals[64] as usize);
        }
        Images::new(Points::new(pixels, 64)?, (1, 8, 8), 17, Some(labels))
    }

    /// The image data named by `name`: `digits` (the built-in 8 × 8 digits), a folder of PNGs,
    /// or an IDX file (recognised by its magic bytes 0x00 0x00 0x08, gzip-compressed when the
    /// name ends in `.gz`); `None` when `name` is none of these (a built-in point set or a
    /// .csv/.npy file).
    pub fn open(name: &str) -> Result<Option<Self>> {
        if !Self::is_source(name) {
            return Ok(None);
        }
        if name == "digits" {
            return Self::digits().map(Some);
        }
        let p = Path::new(name);
        if p.is_dir() {
            Self::load_png_dir(p).map(Some)
        } else {
            Self::load_idx(p, None).map(Some)
        }
    }

    /// True when `name` names image data for [`Images::open`] (`digits`, a folder, a file
    /// starting with IDX's magic bytes), without reading the images.
    pub fn is_source(name: &str) -> bool {
        let p = Path::new(name);
        if name == "digits" || p.is_dir() {
            return true;
        }
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !p.is_file() || ext == "csv" || ext == "npy" {
            return false;
        }
        let mut head = [0u8; 3];
        let read = if ext == "gz" {
            std::fs::File::open(p)
                .and_then(|f| flate2::read::GzDecoder::new(f).read_exact(&mut head))
        } else {
            std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut head))
        };
        read.is_ok() && head == [0, 0, 8]
    }

    /// The images' format (shape and levels).
    pub fn format(&self) -> ImageFormat {
        ImageFormat {
            channels: self.channels,
            height: self.height,
            width: self.width,
            levels: self.levels,
        }
    }

    /// The nearest image to `x` in Euclidean distance ‖x − xᵢ‖ (data units): (index i, distance);
    /// the memorisation check of a generative model compares a sample's distance to its nearest
    /// training image with a held-out image's.
    pub fn nearest(&self, x: &[f64]) -> (usize, f64) {
        let (i, d2) = self
            .pixels
            .rows()
            .map(|t| t.iter().zip(x).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
            .enumerate()
            .fold(
                (0, f64::INFINITY),
                |acc, (i, d)| if d < acc.1 { (i, d) } else { acc },
            );
        (i, d2.sqrt())
    }

    /// The memorisation check of samples against these (training) images: the mean distance
    /// of a sample to its nearest image here ([`Images::nearest`]), next to the same mean for
    /// `held_out` images — new draws of the data, never trained on. A model that generalises
    /// puts its samples about as far from the training set as new data are (ratio ≈ 1); one that
    /// copies its training images puts them much closer (ratio ≪ 1).
    pub fn memorisation(&self, samples: &Points, held_out: &Points) -> Result<Memorisation> {
        if samples.is_empty() || held_out.is_empty() || self.is_empty() {
            return Err(Error::InvalidInput(
                "memorisation: need samples, held-out and training images".into(),
            ));
        }
        if samples.dim() != self.dim() || held_out.dim() != self.dim() {
            return Err(Error::Shape(format!(
                "memorisation: {}-D samples and {}-D held-out images against {}-D training images",
                samples.dim(),
                held_out.dim(),
                self.dim()
            )));
        }
        let mean_nn =
            |x: &Points| x.rows().map(|r| self.nearest(r).1).sum::<f64>() / x.len() as f64;
        let (sample_nn_mean, held_out_nn_mean) = (mean_nn(samples), mean_nn(held_out));
        Ok(Memorisation {
            samples: samples.len(),
            sample_nn_mean,
            held_out: held_out.len(),
            held_out_nn_mean,
            ratio: sample_nn_mean / held_out_nn_mean,
        })
    }

    /// Number of images n.
    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Dimension d = C·H·W.
    pub fn dim(&self) -> usize {
        self.pixels.dim()
    }

    /// Number of classes: 1 + the largest label, or 0 without labels.
    pub fn classes(&self) -> usize {
        self.labels
            .as_ref()
            .and_then(|l| l.iter().max())
            .map_or(0, |m| m + 1)
    }

    /// The images with the given indices, in that order.
    pub fn select(&self, idx: &[usize]) -> Images {
        let d = self.dim();
        let mut data = Vec::with_capacity(idx.len() * d);
        for &i in idx {
            data.extend_from_slice(self.pixels.row(i));
        }
        Images {
            pixels: Points::new(data, d).expect("rows of the same dimension"),
            labels: self
                .labels
                .as_ref()
                .map(|l| idx.iter().map(|&i| l[i]).collect()),
            ..self.clone()
        }
    }

    /// (train, test) by the rule of [`super::split`] (a seeded random subset of
    /// round(test_frac·n) images is held out; each part keeps the original order), labels kept.
    pub fn split(&self, test_frac: f64, seed: u64) -> Result<(Images, Images)> {
        let mask = test_mask(self.len(), test_frac, seed)?;
        let (test, train): (Vec<usize>, Vec<usize>) = (0..self.len()).partition(|&i| mask[i]);
        Ok((self.select(&train), self.select(&test)))
    }

    /// Reads an IDX file of unsigned bytes (MNIST's format: magic 0x00 0x00 0x08 k, then k
    /// big-endian u32 sizes, then the data; gzip-compressed when the name ends in `.gz`) as
    /// images: rank 3 (n, H, W) is grey, rank 4 (n, H, W, C) channels-last. With `labels`,
    /// reads the rank-1 label file too (one per image). 256 levels.
    pub fn load_idx(images: impl AsRef<Path>, labels: Option<&Path>) -> Result<Self> {
        let path = images.as_ref();
        let name = path.display().to_string();
        let (dims, bytes) = parse_idx(&read_maybe_gz(path)?, &name)?;
        let (n, h, w, c) = match dims[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c] => (n, h, w, c),
            _ => {
                return Err(data_err(
                    &name,
                    "header".into(),
                    format!(
                        "rank {} IDX: images need rank 3 (n, H, W) or 4 (n, H, W, C)",
                        dims.len()
                    ),
                ))
            }
        };
        // Channels-last bytes → rows flattened from (C, H, W).
        let mut data = vec![0.0; n * c * h * w];
        for i in 0..n {
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        let src = ((i * h + y) * w + x) * c + ch;
                        data[i * c * h * w + (ch * h + y) * w + x] = bytes[src] as f64;
                    }
                }
            }
        }
        let labels = match labels {
            None => None,
            Some(lp) => {
                let lname = lp.display().to_string();
                let (ldims, lbytes) = parse_idx(&read_maybe_gz(lp)?, &lname)?;
                if ldims != [n] {
                    return Err(data_err(
                        &lname,
                        "header".into(),
                        format!("label file of shape {ldims:?} for {n} images (expected [{n}])"),
                    ));
                }
                Some(lbytes.iter().map(|&b| b as usize).collect())
            }
        };
        Images::new(Points::new(data, c * h * w)?, (c, h, w), 256, labels)
    }

    /// Reads a folder of 8-bit PNGs (grey, grey + alpha, RGB, RGBA or palette; alpha is
    /// dropped, 16-bit samples are cut to their high byte) of one size and one channel count,
    /// in file-name order. A folder holding only sub-folders is read as one class per
    /// sub-folder (sorted names → labels 0, 1, …, torchvision's `ImageFolder` convention).
    /// 256 levels.
    pub fn load_png_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let name = dir.display().to_string();
        let entries = sorted_entries(dir)?;
        let subdirs: Vec<_> = entries.iter().filter(|p| p.is_dir()).cloned().collect();
        let mut files: Vec<(std::path::PathBuf, Option<usize>)> = Vec::new();
        let labelled = !subdirs.is_empty() && subdirs.len() == entries.len();
        if labelled {
            for (k, sub) in subdirs.iter().enumerate() {
                for f in sorted_entries(sub)? {
                    if is_png(&f) {
                        files.push((f, Some(k)));
                    }
                }
            }
        } else {
            files.extend(entries.into_iter().filter(|p| is_png(p)).map(|p| (p, None)));
        }
        if files.is_empty() {
            return Err(data_err(&name, String::new(), "no .png files found"));
        }
        let mut shape = None;
        let mut data = Vec::new();
        let mut labels = Vec::new();
        for (f, label) in &files {
            let (s, px) = read_png(f)?;
            match shape {
                None => shape = Some(s),
                Some(s0) if s0 != s => {
                    return Err(data_err(
                        &f.display().to_string(),
                        String::new(),
                        format!(
                            "image is {}×{}×{} (C×H×W) but the first one is {}×{}×{}",
                            s.0, s.1, s.2, s0.0, s0.1, s0.2
                        ),
                    ))
                }
                _ => {}
            }
            data.extend(px.into_iter().map(f64::from));
            labels.extend(*label);
        }
        let (c, h, w) = shape.expect("at least one file");
        Images::new(
            Points::new(data, c * h * w)?,
            (c, h, w),
            256,
            labelled.then_some(labels),
        )
    }

    /// Writes the images as an IDX file of unsigned bytes ((n, H, W) for grey, (n, H, W, C)
    /// otherwise), atomically; with `labels_path`, the labels as a rank-1 IDX file. Needs
    /// L ≤ 256.
    pub fn write_idx(&self, path: impl AsRef<Path>, labels_path: Option<&Path>) -> Result<()> {
        if self.levels > 256 {
            return Err(Error::InvalidInput(format!(
                "IDX bytes hold 256 levels; these images have {}",
                self.levels
            )));
        }
        let (n, c, h, w) = (self.len(), self.channels, self.height, self.width);
        let dims: Vec<usize> = if c == 1 {
            vec![n, h, w]
        } else {
            vec![n, h, w, c]
        };
        let mut bytes = Vec::with_capacity(n * c * h * w);
        for i in 0..n {
            let row = self.pixels.row(i);
            for y in 0..h {
                for x in 0..w {
                    for ch in 0..c {
                        bytes.push(row[(ch * h + y) * w + x] as u8);
                    }
                }
            }
        }
        write_atomic(path.as_ref(), &idx_bytes(&dims, &bytes))?;
        if let Some(lp) = labels_path {
            let labels = self.labels.as_ref().ok_or_else(|| {
                Error::InvalidInput("these images have no labels to write".into())
            })?;
            if let Some(l) = labels.iter().find(|&&l| l > 255) {
                return Err(Error::InvalidInput(format!(
                    "label {l} does not fit an IDX byte"
                )));
            }
            let lb: Vec<u8> = labels.iter().map(|&l| l as u8).collect();
            write_atomic(lp, &idx_bytes(&[n], &lb))?;
        }
        Ok(())
    }

    /// Writes image `i` as an 8-bit PNG (grey or RGB), values scaled from 0 … L−1 to 0 … 255.
    pub fn write_png(&self, i: usize, path: impl AsRef<Path>) -> Result<()> {
        let tile = Tiles {
            columns: 1,
            padding: 0,
            scale: 1,
        };
        tile.write(
            path.as_ref(),
            &[self.pixels.row(i)],
            (self.channels, self.height, self.width),
            self.levels,
        )
    }
}

/// A grid of images: `columns` per row, `padding` background pixels between them, each pixel
/// drawn as a `scale` × `scale` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tiles {
    /// Images per row of the grid.
    pub columns: usize,
    /// Pixels between images (and around the grid).
    pub padding: usize,
    /// Magnification.
    pub scale: usize,
}

impl Tiles {
    /// The grid of `images` (rows flattened from (C, H, W), values in 0 … L−1, clamped and
    /// rounded) as 8-bit pixels: (width, height, bytes, row-major, C per pixel); value v is drawn
    /// as round(255·v/(L − 1)).
    pub fn render(
        &self,
        images: &[&[f64]],
        (c, h, w): (usize, usize, usize),
        levels: u32,
    ) -> Result<(usize, usize, Vec<u8>)> {
        if images.is_empty() || self.columns == 0 || self.scale == 0 || !(c == 1 || c == 3) {
            return Err(Error::InvalidInput(format!(
                "cannot tile {} image(s) of {c} channel(s) in {} column(s) at scale {}",
                images.len(),
                self.columns,
                self.scale
            )));
        }
        if let Some(img) = images.iter().find(|i| i.len() != c * h * w) {
            return Err(Error::Shape(format!(
                "an image of {} values in a grid of {c}×{h}×{w} images",
                img.len()
            )));
        }
        let cols = self.columns.min(images.len());
        let rows = images.len().div_ceil(cols);
        let (p, s) = (self.padding, self.scale);
        let gw = cols * (w * s + p) + p;
        let gh = rows * (h * s + p) + p;
        let top = (levels.max(2) - 1) as f64;
        let mut buf = vec![0u8; gw * gh * c];
        for (k, img) in images.iter().enumerate() {
            let (oy, ox) = (p + (k / cols) * (h * s + p), p + (k % cols) * (w * s + p));
            for y in 0..h * s {
                for x in 0..w * s {
                    for ch in 0..c {
                        let v = img[(ch * h + y / s) * w + x / s];
                        let byte = (255.0 * v.clamp(0.0, top) / top).round() as u8;
                        buf[((oy + y) * gw + ox + x) * c + ch] = byte;
                    }
                }
            }
        }
        Ok((gw, gh, buf))
    }

    /// Writes the grid of [`Tiles::render`] as one 8-bit PNG, atomically.
    pub fn write(
        &self,
        path: &Path,
        images: &[&[f64]],
        shape: (usize, usize, usize),
        levels: u32,
    ) -> Result<()> {
        let (gw, gh, buf) = self.render(images, shape, levels)?;
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, gw as u32, gh as u32);
            enc.set_color(if shape.0 == 1 {
                png::ColorType::Grayscale
            } else {
                png::ColorType::Rgb
            });
            enc.set_depth(png::BitDepth::Eight);
            let err = |e: png::EncodingError| Error::io(path, std::io::Error::other(e));
            let mut writer = enc.write_header().map_err(err)?;
            writer.write_image_data(&buf).map_err(err)?;
        }
        write_atomic(path, &out)
    }
}

/// (dims, data) of an IDX file of unsigned bytes; `name` labels errors.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let err = |loc: &str, m: String| data_err(name, loc.into(), m);
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(
            "header",
            "not an IDX file (the magic number must start with two zero bytes)".into(),
        ));
    }
    if bytes[2] != 0x08 {
        return Err(err(
            "header",
            format!(
                "IDX element type 0x{:02x}: only unsigned bytes (0x08) are supported",
                bytes[2]
            ),
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(err("header", format!("truncated header (rank {rank})")));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|k| {
            let b = &bytes[4 + 4 * k..8 + 4 * k];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err("header", format!("sizes {dims:?} overflow")))?;
    let body = &bytes[header..];
    if body.len() != count {
        return Err(err(
            "data",
            format!(
                "sizes {dims:?} need {count} bytes after the header, the file has {}",
                body.len()
            ),
        ));
    }
    Ok((dims, body.to_vec()))
}

/// An IDX file of unsigned bytes with sizes `dims`.
pub fn idx_bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                data_err(
                    &path.display().to_string(),
                    String::new(),
                    format!("cannot decompress: {e}"),
                )
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

fn is_png(p: &Path) -> bool {
    p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"))
}

/// ((C, H, W), pixels flattened from (C, H, W)) of an 8-bit PNG file.
fn read_png(path: &Path) -> Result<((usize, usize, usize), Vec<u8>)> {
    let name = path.display().to_string();
    let err = |m: String| data_err(&name, String::new(), m);
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec
        .read_info()
        .map_err(|e| err(format!("not a readable PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| err("PNG too large".into()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| err(format!("cannot decode: {e}")))?;
    let (h, w) = (info.height as usize, info.width as usize);
    let (stride, c) = match info.color_type {
        png::ColorType::Grayscale => (1, 1),
        png::ColorType::GrayscaleAlpha => (2, 1),
        png::ColorType::Rgb => (3, 3),
        png::ColorType::Rgba => (4, 3),
        png::ColorType::Indexed => return Err(err("palette PNG was not expanded".into())),
    };
    if info.bit_depth != png::BitDepth::Eight {
        return Err(err(format!(
            "{:?}-bit samples after expansion",
            info.bit_depth
        )));
    }
    let line = info.line_size;
    let mut px = vec![0u8; c * h * w];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                px[(ch * h + y) * w + x] = buf[y * line + x * stride + ch];
            }
        }
    }
    Ok(((c, h, w), px))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    /// The memorisation check on known cases: training images as samples are at distance 0
    /// from the training set (ratio 0: copies), the held-out images as samples reproduce the
    /// held-out mean exactly (ratio 1); a shifted copy of an image is at the shift's norm.
    /// Quantising rounds to the nearest level inside [0, L − 1].
    #[test]
    fn memorisation_of_copies_and_of_new_images() {
        let (train, test) = Images::digits().unwrap().split(0.1, 0).unwrap();
        let first = |x: &Points, n: usize| {
            Points::new(x.rows().take(n).flatten().copied().collect(), x.dim()).unwrap()
        };
        let copies = train
            .memorisation(&first(&train.pixels, 30), &test.pixels)
            .unwrap();
        assert_eq!((copies.sample_nn_mean, copies.ratio), (0.0, 0.0));
        assert!(copies.held_out_nn_mean > 0.0);
        let new = train.memorisation(&test.pixels, &test.pixels).unwrap();
        assert_eq!(new.ratio, 1.0);
        let mut shifted = train.pixels.row(0).to_vec();
        shifted[0] += 0.25;
        let one = Points::new(shifted, 64).unwrap();
        let m = train.memorisation(&one, &test.pixels).unwrap();
        assert!(m.sample_nn_mean <= 0.25 + 1e-12, "{}", m.sample_nn_mean);
        let f = train.format();
        let mut v = vec![-0.7, 0.49, 0.51, 15.6, 17.2];
        f.quantize(&mut v);
        assert_eq!(v, vec![0.0, 0.0, 1.0, 16.0, 16.0]);
    }

    /// The built-in digits are scikit-learn's `load_digits()`: 1,797 images of 8 × 8 in 17
    /// levels, the first one a 0 whose top row is (0, 0, 5, 13, 9, 1, 0, 0), and the class counts
    /// sklearn reports (`np.bincount(load_digits().target)`).
    #[test]
    fn digits_load_with_the_right_counts_and_ranges() {
        let d = Images::digits().unwrap();
        assert_eq!((d.len(), d.dim(), d.levels), (1797, 64, 17));
        assert_eq!((d.channels, d.height, d.width), (1, 8, 8));
        let px = d.pixels.as_slice();
        assert_eq!(px.iter().cloned().fold(f64::INFINITY, f64::min), 0.0);
        assert_eq!(px.iter().cloned().fold(0.0, f64::max), 16.0);
        assert_eq!(
            &d.pixels.row(0)[..8],
            &[0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]
        );
        let labels = d.labels.as_ref().unwrap();
        assert_eq!(labels[0], 0);
        let mut counts = [0usize; 10];
        labels.iter().for_each(|&l| counts[l] += 1);
        assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        assert_eq!(d.classes(), 10);
        let (train, test) = d.split(0.1, 0).unwrap();
        assert_eq!((train.len(), test.len()), (1617, 180));
        assert_eq!(train.labels.unwrap().len(), 1617);
    }

    fn random_images(n: usize, c: usize, h: usize, w: usize, seed: u64) -> Images {
        let mut r = crate::tensor::rng(seed);
        let px = (0..n * c * h * w)
            .map(|_| r.random_range(0..256u32) as f64)
            .collect();
        let labels = (0..n).map(|i| i % 3).collect();
        Images::new(
            Points::new(px, c * h * w).unwrap(),
            (c, h, w),
            256,
            Some(labels),
        )
        .unwrap()
    }

    /// IDX files round-trip (grey rank 3 and RGB rank 4 with labels, plain and gzipped), and a
    /// truncated or foreign file is a one-line data error.
    #[test]
    fn idx_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        for (c, name) in [(1, "grey"), (3, "rgb")] {
            let imgs = random_images(5, c, 4, 3, c as u64);
            let (ip, lp) = (
                dir.path().join(name),
                dir.path().join(format!("{name}-labels")),
            );
            imgs.write_idx(&ip, Some(&lp)).unwrap();
            assert_eq!(Images::load_idx(&ip, Some(&lp)).unwrap(), imgs);
            // gzip, as MNIST is distributed.
            let gz = dir.path().join(format!("{name}.gz"));
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut enc, &std::fs::read(&ip).unwrap()).unwrap();
            std::fs::write(&gz, enc.finish().unwrap()).unwrap();
            let back = Images::load_idx(&gz, None).unwrap();
            assert_eq!(back.pixels, imgs.pixels);
        }
        let good = idx_bytes(&[2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8]);
        for (bad, what) in [
            (good[..good.len() - 1].to_vec(), "bytes after the header"),
            (vec![1, 2, 3, 4], "not an IDX file"),
            (
                vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0],
                "only unsigned bytes",
            ),
        ] {
            let e = parse_idx(&bad, "f.idx").unwrap_err().to_string();
            assert!(
                e.contains(what) && e.contains("f.idx") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    /// PNGs round-trip through a folder (grey and RGB), a folder of class sub-folders gives
    /// labels in sorted order, and images of different sizes are refused naming the file.
    #[test]
    fn png_folders_round_trip() {
        for c in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let imgs = random_images(4, c, 5, 6, 10 + c as u64);
            for i in 0..imgs.len() {
                imgs.write_png(i, dir.path().join(format!("img{i}.png")))
                    .unwrap();
            }
            let back = Images::load_png_dir(dir.path()).unwrap();
            assert_eq!(back.pixels, imgs.pixels);
            assert_eq!((back.channels, back.height, back.width), (c, 5, 6));
            assert_eq!(back.labels, None);
        }
        let dir = tempfile::tempdir().unwrap();
        let imgs = random_images(4, 1, 3, 3, 20);
        for (i, class) in ["cat", "dog", "cat", "dog"].iter().enumerate() {
            let sub = dir.path().join(class);
            std::fs::create_dir_all(&sub).unwrap();
            imgs.write_png(i, sub.join(format!("{i}.png"))).unwrap();
        }
        let back = Images::load_png_dir(dir.path()).unwrap();
        assert_eq!(back.labels, Some(vec![0, 0, 1, 1]));
        assert_eq!(back.pixels.row(1), imgs.pixels.row(2));
        let other = random_images(1, 1, 4, 4, 21);
        other
            .write_png(0, dir.path().join("dog").join("z.png"))
            .unwrap();
        let e = Images::load_png_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("z.png") && e.contains("1×4×4"), "{e}");
    }

    /// Bad image sets are refused: a value off the levels, a wrong row width.
    #[test]
    fn invalid_images_are_refused() {
        let p = Points::new(vec![0.0, 1.0, 2.0, 17.0], 4).unwrap();
        assert!(Images::new(p.clone(), (1, 2, 2), 17, None).is_err());
        assert!(Images::new(p, (1, 1, 2), 256, None).is_err());
    }

    /// The image normaliser sends level x to the centre of its symmetric dequantisation cell,
    /// z = 2(x + ½)/L − 1 (so level 0 → −1 + 1/L, level L − 1 → 1 − 1/L), and back exactly;
    /// clamping keeps [0, L − 1].
    #[test]
    fn image_normaliser_maps_levels_to_cell_centres() {
        let f = ImageFormat {
            channels: 1,
            height: 1,
            width: 17,
            levels: 17,
        };
        let x = Points::new((0..17).map(f64::from).collect(), 17).unwrap();
        let z = f.normalizer().apply(&x).unwrap();
        for (k, v) in z.as_slice().iter().enumerate() {
            let want = 2.0 * (k as f64 + 0.5) / 17.0 - 1.0;
            assert!((v - want).abs() < 1e-12, "level {k}: {v} vs {want}");
        }
        let back = f.normalizer().invert(&z).unwrap();
        for (a, b) in back.as_slice().iter().zip(x.as_slice()) {
            assert!((a - b).abs() < 1e-12);
        }
        let mut v = vec![-3.0, 0.5, 20.0];
        f.clamp(&mut v);
        assert_eq!(v, vec![0.0, 0.5, 16.0]);
    }

    /// Image sources are recognised without reading them: `digits`, a folder, an IDX file by
    /// its magic bytes (plain or gzip); a .csv, a point-set name or a missing file is not one.
    #[test]
    fn image_sources_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let digits = Images::digits().unwrap().select(&[0, 1, 2]);
        let idx = dir.path().join("three.idx");
        digits.write_idx(&idx, None).unwrap();
        let gz = dir.path().join("three.idx.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &std::fs::read(&idx).unwrap()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let csv = dir.path().join("p.csv");
        std::fs::write(&csv, "0,0,8\n").unwrap();
        for (name, want) in [
            ("digits".to_string(), true),
            (dir.path().display().to_string(), true),
            (idx.display().to_string(), true),
            (gz.display().to_string(), true),
            (csv.display().to_string(), false),
            ("moons".to_string(), false),
            ("nowhere.idx".to_string(), false),
        ] {
            assert_eq!(Images::is_source(&name), want, "{name}");
        }
        let back = Images::open(&gz.display().to_string()).unwrap().unwrap();
        assert_eq!(back.pixels, digits.pixels);
        assert_eq!(back.levels, 256);
        assert!(Images::open("moons").unwrap().is_none());
    }
}
