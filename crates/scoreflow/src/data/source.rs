//! Training data: where minibatches come from, and the held-out points used to evaluate.
//!
//! A [`DataSource`] is either a built-in generator (every batch is a fresh i.i.d. draw, like the
//! reference's `Stream`) or a finite set of points (every batch is drawn uniformly *with
//! replacement*). Both are stateless: a batch depends only on the `Rng` passed in, so a training
//! run is reproduced by its seed and resumed by restoring its `Rng`.

use rand::seq::index;
use rand::Rng as _;

use super::{Dataset, Points};
use crate::error::{Error, Result};
use crate::tensor::{rng, Rng};

/// The ChaCha stream that held-out draws of a generator use, so they are independent of any
/// training stream (`tensor::rng(seed)` uses stream 0) even for the same seed.
const HELD_OUT_STREAM: u64 = 0x4845_4c44; // "HELD"

/// Where training minibatches come from: a built-in generator or a finite point set (with an
/// optional held-out part for evaluation).
#[derive(Debug, Clone, PartialEq)]
pub struct DataSource {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Fresh i.i.d. samples of a built-in density for every batch.
    Generator(Dataset),
    /// Minibatches drawn with replacement from `train` (non-empty); `test` (non-empty, same
    /// dimension) is held out for evaluation.
    Finite {
        name: String,
        train: Points,
        test: Option<Points>,
    },
}

impl DataSource {
    /// A finite source; `Error::InvalidInput` when `train` is empty or `test` is empty or has
    /// another dimension.
    pub fn finite(name: impl Into<String>, train: Points, test: Option<Points>) -> Result<Self> {
        let name = name.into();
        if train.is_empty() {
            return Err(Error::InvalidInput(format!("{name}: no training points")));
        }
        if let Some(t) = &test {
            if t.is_empty() || t.dim() != train.dim() {
                return Err(Error::InvalidInput(format!(
                    "{name}: held-out set has {} points of dimension {}, training set has dimension {}",
                    t.len(),
                    t.dim(),
                    train.dim()
                )));
            }
        }
        Ok(Self {
            kind: Kind::Finite { name, train, test },
        })
    }

    /// Fresh samples of the built-in `dataset` for every batch.
    pub fn generator(dataset: Dataset) -> Self {
        Self {
            kind: Kind::Generator(dataset),
        }
    }

    /// A finite source from all of `points`, holding out a `test_frac` share chosen by `seed`
    /// (see [`split`]).
    pub fn finite_split(
        name: impl Into<String>,
        points: &Points,
        test_frac: f64,
        seed: u64,
    ) -> Result<Self> {
        let (train, test) = split(points, test_frac, seed)?;
        Self::finite(name, train, (!test.is_empty()).then_some(test))
    }

    /// Dimension d of the points.
    pub fn dim(&self) -> usize {
        match &self.kind {
            Kind::Generator(ds) => ds.dim(),
            Kind::Finite { train, .. } => train.dim(),
        }
    }

    /// The built-in data set, if this is a generator (for its log-density or mixture).
    pub fn dataset(&self) -> Option<Dataset> {
        match &self.kind {
            Kind::Generator(ds) => Some(*ds),
            Kind::Finite { .. } => None,
        }
    }

    /// The training points of a finite source.
    pub fn train(&self) -> Option<&Points> {
        match &self.kind {
            Kind::Generator(_) => None,
            Kind::Finite { train, .. } => Some(train),
        }
    }

    /// The held-out points of a finite source, if it has any.
    pub fn test(&self) -> Option<&Points> {
        match &self.kind {
            Kind::Generator(_) => None,
            Kind::Finite { test, .. } => test.as_ref(),
        }
    }

    /// A minibatch of n points: n fresh draws (generator) or n rows drawn uniformly with
    /// replacement (finite set), all randomness from `rng`.
    pub fn batch(&self, n: usize, rng: &mut Rng) -> Points {
        match &self.kind {
            Kind::Generator(ds) => ds.sample(n, rng),
            Kind::Finite { train, .. } => {
                let d = train.dim();
                let mut data = Vec::with_capacity(n * d);
                for _ in 0..n {
                    data.extend_from_slice(train.row(rng.random_range(0..train.len())));
                }
                Points { data, dim: d }
            }
        }
    }

    /// n evaluation points, deterministic in `seed`: for a generator, n fresh draws from a
    /// dedicated stream (independent of every training stream); for a finite set, n held-out
    /// rows chosen without replacement (all of them when n ≥ their count). `Error::InvalidInput`
    /// for a finite set without held-out points.
    pub fn held_out(&self, n: usize, seed: u64) -> Result<Points> {
        let mut r = rng(seed);
        r.set_stream(HELD_OUT_STREAM);
        match &self.kind {
            Kind::Generator(ds) => Ok(ds.sample(n, &mut r)),
            Kind::Finite {
                test: Some(test), ..
            } => {
                if n >= test.len() {
                    return Ok(test.clone());
                }
                let mut idx = index::sample(&mut r, test.len(), n).into_vec();
                idx.sort_unstable();
                let data = idx
                    .iter()
                    .flat_map(|&i| test.row(i).iter().copied())
                    .collect();
                Ok(Points {
                    data,
                    dim: test.dim(),
                })
            }
            Kind::Finite { name, .. } => Err(Error::InvalidInput(format!(
                "{name}: no held-out points; split the data first (data::split)"
            ))),
        }
    }

    /// One line for logs and reports, e.g. `built-in moons (fresh samples every batch)`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Generator(ds) => format!("built-in {ds} (2-D, fresh samples every batch)"),
            Kind::Finite { name, train, test } => format!(
                "{name}: {} training points ({}-D, minibatches drawn with replacement), {} held out",
                train.len(),
                train.dim(),
                test.as_ref().map_or(0, Points::len)
            ),
        }
    }
}

impl From<Dataset> for DataSource {
    fn from(ds: Dataset) -> Self {
        Self::generator(ds)
    }
}

/// (train, test): a uniformly random permutation of the rows (seeded by `seed`) cut so that
/// test has round(test_frac·n) rows; `test_frac` ∈ [0, 1) and train must keep ≥ 1 row, else
/// `Error::InvalidInput`. Each part keeps the rows' original order.
pub fn split(points: &Points, test_frac: f64, seed: u64) -> Result<(Points, Points)> {
    let n = points.len();
    let is_test = test_mask(n, test_frac, seed)?;
    let d = points.dim();
    let n_test = is_test.iter().filter(|&&t| t).count();
    let (mut train, mut test) = (
        Vec::with_capacity((n - n_test) * d),
        Vec::with_capacity(n_test * d),
    );
    for (row, &t) in points.rows().zip(&is_test) {
        if t { &mut test } else { &mut train }.extend_from_slice(row);
    }
    Ok((
        Points {
            data: train,
            dim: d,
        },
        Points { data: test, dim: d },
    ))
}

/// The held-out rows of [`split`]: a seeded uniformly random subset of round(test_frac·n) of
/// the n rows (`true` = held out); `test_frac` ∈ [0, 1) and at least one row must stay.
pub fn test_mask(n: usize, test_frac: f64, seed: u64) -> Result<Vec<bool>> {
    if !(0.0..1.0).contains(&test_frac) {
        return Err(Error::InvalidInput(format!(
            "held-out fraction {test_frac} must be in [0, 1)"
        )));
    }
    let n_test = (test_frac * n as f64).round() as usize;
    if n_test >= n {
        return Err(Error::InvalidInput(format!(
            "holding out {n_test} of {n} points leaves none for training"
        )));
    }
    let mut is_test = vec![false; n];
    for i in index::sample(&mut rng(seed), n, n_test) {
        is_test[i] = true;
    }
    Ok(is_test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: usize) -> Points {
        // Row i = (i, −i): rows are identifiable.
        Points::new((0..n).flat_map(|i| [i as f64, -(i as f64)]).collect(), 2).unwrap()
    }

    #[test]
    fn split_partitions_deterministically() {
        let x = numbered(100);
        let (tr, te) = split(&x, 0.25, 7).unwrap();
        assert_eq!((tr.len(), te.len()), (75, 25));
        let mut ids: Vec<usize> = tr.rows().chain(te.rows()).map(|r| r[0] as usize).collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
        assert_eq!(split(&x, 0.25, 7).unwrap(), (tr.clone(), te.clone()));
        assert_ne!(split(&x, 0.25, 8).unwrap().1, te);
        assert_eq!(split(&x, 0.0, 1).unwrap().1.len(), 0);
        for bad in [-0.1, 1.0, f64::NAN] {
            assert!(matches!(split(&x, bad, 1), Err(Error::InvalidInput(_))));
        }
        assert!(split(&numbered(1), 0.6, 1).is_err());
    }

    #[test]
    fn finite_batches_are_uniform_with_replacement() {
        // 4 rows, 40,000 draws: each count ~ Binomial(40000, 1/4), sd = √(40000·3/16) ≈ 86.6;
        // allow 4 sd. With replacement, a batch of 8 from 4 rows must repeat rows.
        let src = DataSource::finite("four", numbered(4), None).unwrap();
        let b = src.batch(40_000, &mut rng(1));
        let mut counts = [0usize; 4];
        for r in b.rows() {
            assert_eq!(r[1], -r[0]);
            counts[r[0] as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 4.0 * 86.6, "{counts:?}");
        }
        // Stateless: the same rng state gives the same batch.
        assert_eq!(src.batch(8, &mut rng(5)), src.batch(8, &mut rng(5)));
        assert_eq!(src.dim(), 2);
        assert!(src.held_out(3, 0).is_err());
    }

    #[test]
    fn held_out_is_disjoint_and_deterministic() {
        let src = DataSource::finite_split("numbered", &numbered(50), 0.2, 3).unwrap();
        let (train, test) = (src.train().unwrap(), src.test().unwrap());
        assert_eq!((train.len(), test.len()), (40, 10));
        let h = src.held_out(4, 9).unwrap();
        assert_eq!(h, src.held_out(4, 9).unwrap());
        assert_eq!(h.len(), 4);
        for r in h.rows() {
            assert!(test.rows().any(|t| t == r) && !train.rows().any(|t| t == r));
        }
        assert_eq!(&src.held_out(1000, 9).unwrap(), test);
        assert!(DataSource::generator(Dataset::Moons).train().is_none());
        assert!(
            src.describe().contains("40 training points"),
            "{}",
            src.describe()
        );
    }

    #[test]
    fn generator_source_is_fresh_and_held_out_is_a_separate_stream() {
        let src = DataSource::from(Dataset::Moons);
        let mut r = rng(11);
        let a = src.batch(16, &mut r);
        let b = src.batch(16, &mut r);
        assert_ne!(a, b);
        assert_eq!(src.batch(16, &mut rng(11)), a);
        let h = src.held_out(16, 11).unwrap();
        assert_ne!(h, a);
        assert_eq!(h, src.held_out(16, 11).unwrap());
        assert_eq!(src.dataset(), Some(Dataset::Moons));
        assert!(src.describe().contains("moons"));
        // The trainer's view is the same stream of batches.
        let mut as_trainer = src.clone();
        let t = crate::train::Minibatches::batch(&mut as_trainer, 16, &mut rng(11));
        assert_eq!(t.target, a);
    }

    #[test]
    fn finite_rejects_bad_sets() {
        assert!(DataSource::finite("e", Points::new(vec![], 2).unwrap(), None).is_err());
        let t3 = Points::new(vec![0.0; 3], 3).unwrap();
        assert!(DataSource::finite("d", numbered(3), Some(t3)).is_err());
    }
}
