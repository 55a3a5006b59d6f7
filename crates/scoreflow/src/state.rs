//! Named host tensors and their safetensors encoding: [`StateDict`] (the in-memory image of one
//! `.safetensors` file: tensors by name plus header metadata), [`HostTensor`], the stored
//! element types, and [`RngState`] (a generator's exact position, for resumable runs).
//!
//! Reading a truncated, foreign or mismatched file is an [`Error::Checkpoint`] naming the file
//! and the problem, never a panic. Writes are atomic ([`write_atomic`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::SeedableRng;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::fsutil::write_atomic;
use crate::tensor::{to_vec, DType, Rng, Tensor};

/// Element type a [`HostTensor`] is stored with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredDType {
    /// IEEE binary32 (PyTorch's default; what `model.safetensors` uses).
    F32,
    /// IEEE binary64.
    F64,
}

impl StoredDType {
    /// The storage type that holds a tensor of `dtype` exactly (f64 for F64, else f32).
    pub fn of(dtype: DType) -> Self {
        if dtype == DType::F64 {
            StoredDType::F64
        } else {
            StoredDType::F32
        }
    }

    /// The burn dtype with the same precision.
    pub fn dtype(self) -> DType {
        match self {
            StoredDType::F32 => DType::F32,
            StoredDType::F64 => DType::F64,
        }
    }
}

/// A host copy of a tensor: row-major values (held as f64, exact for both storage types) with
/// its shape and storage type.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f64>,
    /// Element type on disk.
    pub dtype: StoredDType,
}

impl HostTensor {
    /// A host copy of `t`, stored in the precision of `t`'s dtype.
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> Self {
        Self {
            shape: t.dims().to_vec(),
            data: to_vec(t),
            dtype: StoredDType::of(t.dtype()),
        }
    }

    /// Transpose of a 2-D tensor (PyTorch `(d_out, d_in)` ↔ burn `[d_in, d_out]`).
    ///
    /// # Panics
    /// If the tensor is not 2-D (a programming error).
    pub fn transposed(&self) -> Self {
        assert_eq!(self.shape.len(), 2, "transposed: tensor is not 2-D");
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Self {
            shape: vec![c, r],
            data,
            dtype: self.dtype,
        }
    }

    /// Little-endian bytes in the storage type.
    fn to_bytes(&self) -> Vec<u8> {
        match self.dtype {
            StoredDType::F32 => self
                .data
                .iter()
                .flat_map(|&v| (v as f32).to_le_bytes())
                .collect(),
            StoredDType::F64 => self.data.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        }
    }

    /// Decodes a safetensors view (F32 or F64).
    fn from_view(view: &TensorView<'_>) -> std::result::Result<Self, String> {
        let shape = view.shape().to_vec();
        let bytes = view.data();
        let (data, dtype) = match view.dtype() {
            Dtype::F32 => (
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)
                    .collect(),
                StoredDType::F32,
            ),
            Dtype::F64 => (
                bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
                StoredDType::F64,
            ),
            other => {
                return Err(format!(
                    "has element type {other:?}; only F32 and F64 are supported"
                ))
            }
        };
        Ok(Self { shape, data, dtype })
    }
}

/// Named tensors plus string metadata: the in-memory image of one safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateDict {
    /// Tensors by name.
    pub tensors: BTreeMap<String, HostTensor>,
    /// Header metadata (`__metadata__` of the safetensors header).
    pub metadata: BTreeMap<String, String>,
    /// The file it was read from (empty when built in memory); used in error messages.
    pub source: PathBuf,
}

impl StateDict {
    /// An empty state dict.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: HostTensor) {
        self.tensors.insert(name.into(), t);
    }

    /// The error for a problem with this state dict's file.
    pub fn error(&self, msg: impl Into<String>) -> Error {
        Error::Checkpoint {
            path: self.source.clone(),
            msg: msg.into(),
        }
    }

    /// The tensor `name`, or an error saying it is missing.
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| self.error(format!("missing tensor '{name}'")))
    }

    /// The tensor `name` checked to have `shape`.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<&HostTensor> {
        let t = self.get(name)?;
        if t.shape != shape {
            return Err(self.error(format!(
                "tensor '{name}' has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(t)
    }

    /// Errors unless the tensor names are exactly `expected` (a foreign file has others).
    pub fn expect_names(&self, expected: &[String]) -> Result<()> {
        if let Some(extra) = self.tensors.keys().find(|n| !expected.contains(n)) {
            return Err(self.error(format!(
                "unexpected tensor '{extra}' (expected exactly {}: is this a scoreflow/PyTorch nn.Sequential MLP?)",
                summarise(expected)
            )));
        }
        if let Some(missing) = expected.iter().find(|n| !self.tensors.contains_key(*n)) {
            return Err(self.error(format!(
                "missing tensor '{missing}' (expected exactly {}; the file has {})",
                summarise(expected),
                summarise(&self.tensors.keys().cloned().collect::<Vec<_>>())
            )));
        }
        Ok(())
    }

    /// The safetensors encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, t)| {
                let dt = match t.dtype {
                    StoredDType::F32 => Dtype::F32,
                    StoredDType::F64 => Dtype::F64,
                };
                (n.clone(), dt, t.shape.clone(), t.to_bytes())
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(n, dt, shape, b)| {
                TensorView::new(*dt, shape.clone(), b)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| self.error(format!("tensor '{n}': {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let meta = (!self.metadata.is_empty()).then(|| {
            self.metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        });
        safetensors::serialize(views, meta)
            .map_err(|e| self.error(format!("cannot encode safetensors: {e}")))
    }

    /// Decodes a safetensors image; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: impl Into<PathBuf>) -> Result<Self> {
        let source = source.into();
        let err = |msg: String| Error::Checkpoint {
            path: source.clone(),
            msg,
        };
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            err(format!(
                "not a readable safetensors file ({} bytes; truncated, corrupt or foreign): {e}",
                bytes.len()
            ))
        })?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| err(format!("bad safetensors header: {e}")))?;
        let mut out = StateDict {
            source: source.clone(),
            ..Default::default()
        };
        for (name, view) in st.iter() {
            let t =
                HostTensor::from_view(&view).map_err(|m| err(format!("tensor '{name}' {m}")))?;
            out.tensors.insert(name.to_string(), t);
        }
        if let Some(m) = header.metadata() {
            out.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        Ok(out)
    }

    /// Writes the safetensors file atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a safetensors file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}

/// "a, b, …, z (n names)" for error messages.
fn summarise(names: &[String]) -> String {
    match names.len() {
        0 => "no tensors".into(),
        1..=4 => names.join(", "),
        n => format!(
            "{}, {}, …, {} ({n} names)",
            names[0],
            names[1],
            names[n - 1]
        ),
    }
}

/// The serialisable state of a ChaCha8 [`Rng`]: seed, stream and word position (the 68-bit
/// position is kept as a decimal string because JSON numbers cannot hold it exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte key, hex.
    pub seed: String,
    /// The stream (nonce).
    pub stream: u64,
    /// Offset in 32-bit words from the start of the stream, decimal.
    pub word_pos: String,
}

impl RngState {
    /// Captures the state of `rng`.
    pub fn capture(rng: &Rng) -> Self {
        let seed = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator that continues exactly where the captured one stopped.
    pub fn restore(&self) -> Result<Rng> {
        let bad = || Error::InvalidInput(format!("malformed RNG state {self:?}"));
        if self.seed.len() != 64 || !self.seed.is_ascii() {
            return Err(bad());
        }
        let mut seed = [0u8; 32];
        for (i, s) in seed.iter_mut().enumerate() {
            *s = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let pos: u128 = self.word_pos.parse().map_err(|_| bad())?;
        let mut rng = Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}
