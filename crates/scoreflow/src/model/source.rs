//! The source p₀ of a flow (t = 0): where sampling starts and what a likelihood integrates to.
//!
//! A flow-matching run transports p₀ to the data p₁. By default p₀ = N(0, I) in model units
//! (every run written before sources existed); otherwise p₀ is a built-in data set or the points
//! of a file (copied into the run directory as [`SOURCE_FILE`]), standardised by *its own*
//! normaliser z₀ = (y − μ₀)/σ₀, as the target has its own (issue 13's decision). In model units
//! the network then carries z₀ ~ p_{z₀} to z₁ = (x − μ₁)/σ₁.
//!
//! Densities: log p_{z₀}(z) = log p_y(μ₀ + σ₀ z) + Σᵢ ln σ₀ᵢ when the source set has a
//! log-density ([`Dataset::log_density`]: the Gaussian mixtures, checkerboard, moons); a file or
//! a set without one has none, and likelihoods are refused.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{self, DataSource, Dataset, Normalizer, Points};
use crate::error::{Error, Result};
use crate::tensor::{vector_like, Rng, Tensor};

/// File of a run's source points (a file source copied at the start of training).
pub const SOURCE_FILE: &str = "source.npy";

/// The name of the standard normal source (`--source gaussian`, the default).
pub const GAUSSIAN: &str = "gaussian";

/// log p_{z₀}(z) row-wise on a `(n, d)` tensor of model units (a [`crate::likelihood::Prior`]).
pub type SourceDensity = Box<dyn Fn(&Tensor<2>) -> Tensor<1>>;

/// A flow's source distribution p₀ (see the module documentation); stored in `meta.json` with
/// the model kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FlowSource {
    /// N(0, I) in model units.
    #[default]
    Gaussian,
    /// Fresh draws of a built-in set, standardised by `normalizer`.
    Dataset {
        /// The set.
        name: Dataset,
        /// Its normaliser z₀ = (y − μ₀)/σ₀.
        normalizer: Normalizer,
    },
    /// Rows of [`SOURCE_FILE`] in the run directory drawn with replacement, standardised by
    /// `normalizer`.
    File {
        /// The file the points came from (for messages).
        name: String,
        /// Its normaliser z₀ = (y − μ₀)/σ₀.
        normalizer: Normalizer,
    },
}

impl FlowSource {
    /// True for N(0, I).
    pub fn is_gaussian(&self) -> bool {
        matches!(self, FlowSource::Gaussian)
    }

    /// `gaussian`, the set's name or the file's.
    pub fn name(&self) -> String {
        match self {
            FlowSource::Gaussian => GAUSSIAN.into(),
            FlowSource::Dataset { name, .. } => name.name().into(),
            FlowSource::File { name, .. } => name.clone(),
        }
    }

    /// The source's normaliser (the identity of dimension `dim` for N(0, I), whose points are
    /// already in model units).
    pub fn normalizer(&self, dim: usize) -> Normalizer {
        match self {
            FlowSource::Gaussian => Normalizer::identity(dim),
            FlowSource::Dataset { normalizer, .. } | FlowSource::File { normalizer, .. } => {
                normalizer.clone()
            }
        }
    }

    /// Where source points come from (data units of the source): `None` for N(0, I); a
    /// generator for a set; the run directory's [`SOURCE_FILE`] for a file (`dir` = the run
    /// directory), with an error naming it when it is missing.
    pub fn data(&self, dir: Option<&Path>) -> Result<Option<DataSource>> {
        Ok(match self {
            FlowSource::Gaussian => None,
            FlowSource::Dataset { name, .. } => Some(DataSource::generator(*name)),
            FlowSource::File { name, normalizer } => {
                let p = dir.unwrap_or(Path::new(".")).join(SOURCE_FILE);
                if !p.exists() {
                    return Err(Error::InvalidInput(format!(
                        "{}: missing (the run's copy of its source {name})",
                        p.display()
                    )));
                }
                let pts = data::load_points(&p, Some(normalizer.dim()))?;
                Some(DataSource::finite(name.clone(), pts, None)?)
            }
        })
    }

    /// log p_{z₀}(z) row-wise in model units (see the module documentation), or an error saying
    /// that this source has no density.
    pub fn log_density(&self) -> Result<SourceDensity> {
        let no_density = || {
            let with: Vec<&str> = Dataset::ALL
                .iter()
                .filter(|d| d.has_log_density())
                .map(|d| d.name())
                .collect();
            Error::InvalidInput(format!(
                "this flow starts from {}, which has no known density, so log p(x) cannot be computed; train with --source gaussian or a set with a density ({})",
                self.name(),
                with.join(", ")
            ))
        };
        match self {
            FlowSource::Gaussian => Ok(Box::new(|z: &Tensor<2>| {
                crate::likelihood::Prior::log_prob(
                    &crate::likelihood::IsotropicGaussian::standard(),
                    z,
                )
            })),
            FlowSource::Dataset { name, normalizer } if name.has_log_density() => {
                let (ds, norm) = (*name, normalizer.clone());
                let c = norm.log_det();
                Ok(Box::new(move |z: &Tensor<2>| {
                    let n = z.dims()[0];
                    let values = norm
                        .invert(&Points::from_tensor(z))
                        .and_then(|y| ds.log_density(&y))
                        .ok()
                        .flatten()
                        .map(|v| v.into_iter().map(|l| l + c).collect())
                        .unwrap_or_else(|| vec![f64::NAN; n]);
                    vector_like(values, z)
                }))
            }
            _ => Err(no_density()),
        }
    }
}

/// Draws source points in model units: N(0, I) for the Gaussian source, else fresh rows of the
/// source data standardised by its normaliser.
#[derive(Debug, Clone)]
pub struct SourceDraws {
    data: Option<(DataSource, Normalizer)>,
}

impl SourceDraws {
    /// The draws of `source` (`dir`: the run directory holding a file source's copy).
    pub fn new(source: &FlowSource, dim: usize, dir: Option<&Path>) -> Result<Self> {
        Ok(Self {
            data: source.data(dir)?.map(|d| (d, source.normalizer(dim))),
        })
    }

    /// N(0, I) draws.
    pub fn gaussian() -> Self {
        Self { data: None }
    }

    /// True when the draws are N(0, I).
    pub fn is_gaussian(&self) -> bool {
        self.data.is_none()
    }

    /// The points of a file source.
    pub fn points(&self) -> Option<&Points> {
        self.data.as_ref().and_then(|(d, _)| d.train())
    }

    /// n source points in model units (`None` for N(0, I): the caller draws its own noise).
    pub fn batch(&self, n: usize, rng: &mut Rng) -> Option<Points> {
        self.data.as_ref().map(|(d, norm)| {
            norm.apply(&d.batch(n, rng))
                .expect("source and normaliser share a dimension")
        })
    }

    /// `like`'s rows replaced by source draws (model units, `like`'s dtype), or `like` itself
    /// for N(0, I).
    pub fn replace(&self, like: Tensor<2>, rng: &mut Rng) -> Tensor<2> {
        match self.batch(like.dims()[0], rng) {
            Some(p) => p.to_tensor(&like.device(), like.dtype()),
            None => like,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{cpu, to_vec, DType};

    /// log p_{z₀}(z) = log p_y(μ₀ + σ₀ z) + Σ ln σ₀ for a set with a density (the change of
    /// variables of the source's own normaliser), the standard normal for N(0, I), and a
    /// one-line error naming the source for a set or file without one.
    #[test]
    fn source_densities_follow_their_normaliser() {
        let norm = Normalizer {
            mean: vec![0.5, -1.0],
            std: vec![2.0, 0.25],
        };
        let src = FlowSource::Dataset {
            name: Dataset::EightGaussians,
            normalizer: norm.clone(),
        };
        let z = Points::new(vec![0.1, 0.2, -1.3, 4.0, 0.9, -0.4], 2).unwrap();
        let got = to_vec(&src.log_density().unwrap()(
            &z.to_tensor(&cpu(), DType::F64),
        ));
        let want = Dataset::EightGaussians
            .log_density(&norm.invert(&z).unwrap())
            .unwrap()
            .unwrap();
        let c = 2f64.ln() + 0.25f64.ln();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - (w + c)).abs() < 1e-10, "{g} vs {}", w + c);
        }
        let g = to_vec(&FlowSource::Gaussian.log_density().unwrap()(
            &z.to_tensor(&cpu(), DType::F64),
        ));
        let want0 = -(0.01 + 0.04) / 2.0 - (2.0 * std::f64::consts::PI).ln();
        assert!((g[0] - want0).abs() < 1e-12);
        for src in [
            FlowSource::Dataset {
                name: Dataset::Star,
                normalizer: norm.clone(),
            },
            FlowSource::File {
                name: "mine.csv".into(),
                normalizer: norm,
            },
        ] {
            let e = src.log_density().err().unwrap().to_string();
            assert!(
                e.contains(&src.name()) && e.contains("no known density") && !e.contains('\n'),
                "{e}"
            );
        }
    }

    /// A run's batches: N(0, I) runs carry no source points and draw exactly the targets of
    /// `TrainingRun::batch`; a moons source brings moons draws, mean (0, 0.3) (sklearn's moons
    /// mean (0.5, 0.25), ·2 + (−1, −0.2)), within 5 standard errors.
    #[test]
    fn runs_feed_source_minibatches() {
        use crate::model::{TrainSettings, TrainingRun};
        use crate::train::Minibatches;
        let dir = tempfile::tempdir().unwrap();
        let plain = TrainSettings {
            width: 8,
            depth: 1,
            ..TrainSettings::default()
        };
        let run = TrainingRun::start(&plain, dir.path()).unwrap();
        let b = run.batches().batch(64, &mut crate::tensor::rng(3));
        assert!(b.source.is_none());
        assert_eq!(b.target, run.batch(64, &mut crate::tensor::rng(3)));
        let dir = tempfile::tempdir().unwrap();
        let moons = TrainSettings {
            source: "moons".into(),
            ..plain
        };
        let run = TrainingRun::start(&moons, dir.path()).unwrap();
        let n = 4000;
        let b = run.batches().batch(n, &mut crate::tensor::rng(4));
        let x0 = b.source.unwrap();
        assert_eq!(x0.len(), n);
        for (j, want) in [0.0, 0.3].into_iter().enumerate() {
            let col: Vec<f64> = x0.rows().map(|r| r[j]).collect();
            let m = col.iter().sum::<f64>() / n as f64;
            let sd = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n as f64).sqrt();
            assert!(
                (m - want).abs() < 5.0 * sd / (n as f64).sqrt(),
                "dim {j}: {m}"
            );
        }
    }
}
