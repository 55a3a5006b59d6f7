//! Data: host-side point sets ([`Points`]), built-in 2-D densities ([`Dataset`], with exact
//! [`MixtureSpec`]s where they are mixtures), CSV / NPY files ([`io`]), images (the built-in
//! 8 × 8 digits, IDX files, PNG folders: [`images`]), per-dimension standardisation
//! ([`Normalizer`]) and training data sources ([`DataSource`]), with class labels where the
//! data have them (built-in classes, a CSV label column: [`Labels`]).

pub mod images;
pub mod io;
pub mod mixture;
pub mod normalize;
pub mod shapes;
pub mod source;
pub mod toy;

pub use images::{ImageFormat, Images};
pub use io::{
    load_csv, load_csv_labelled, load_npy, load_points, write_csv, write_npy, write_points, Labels,
    PointWriter,
};
pub use mixture::{MixtureParams, MixtureSpec};
pub use normalize::{NormalizeMode, Normalizer};
pub use source::{split, DataSource};
pub use toy::Dataset;

use crate::error::{Error, Result};
use crate::tensor::{matrix, to_vec, DType, Device, Tensor};

/// A set of n points in R^d, stored row-major as f64 on the host.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Points {
    data: Vec<f64>,
    dim: usize,
}

impl Points {
    /// Points from row-major data; errors unless `data.len()` is a multiple of `dim ≥ 1`.
    pub fn new(data: Vec<f64>, dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::Shape(format!(
                "{} values cannot form rows of dimension {dim}",
                data.len()
            )));
        }
        Ok(Self { data, dim })
    }

    /// Number of points n.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no points.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row i as a slice of length d.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterator over rows.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.data.chunks_exact(self.dim)
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Consumes self into the row-major values.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Rows `start..end` as new points.
    pub fn slice(&self, start: usize, end: usize) -> Points {
        Points {
            data: self.data[start * self.dim..end * self.dim].to_vec(),
            dim: self.dim,
        }
    }

    /// The `(n, d)` tensor on `device` in `dtype`.
    pub fn to_tensor(&self, device: &Device, dtype: DType) -> Tensor<2> {
        matrix(self.data.clone(), self.len(), self.dim, device, dtype)
    }

    /// Copies an `(n, d)` tensor to host points.
    pub fn from_tensor(t: &Tensor<2>) -> Points {
        let [_, d] = t.dims();
        Points {
            data: to_vec(t),
            dim: d,
        }
    }
}
