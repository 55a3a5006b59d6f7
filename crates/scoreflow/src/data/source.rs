//! Training data: where minibatches come from, and the held-out points used to evaluate.
//!
//! A [`DataSource`] is either a built-in generator (every batch is a fresh i.i.d. draw, like the
//! reference's `Stream`) or a finite set of points (every batch is drawn uniformly *with
//! replacement*). Both are stateless: a batch depends only on the `Rng` passed in, so a training
//! run is reproduced by its seed and resumed by restoring its `Rng`.
//!
//! Either may carry class labels (a built-in set's classes, [`crate::data::Dataset::classes`];
//! a file's label column, [`crate::data::io::load_csv_labelled`]): [`DataSource::batch_labelled`]
//! returns each point's class with it, from the same draws as [`DataSource::batch`].

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
    /// dimension) is held out for evaluation. With labels, one per row of each part.
    Finite {
        name: String,
        train: Points,
        test: Option<Points>,
        labels: Option<FiniteLabels>,
    },
}

/// The class labels of a finite source: one in 0..K per training and held-out row.
#[derive(Debug, Clone, PartialEq)]
struct FiniteLabels {
    train: Vec<usize>,
    test: Vec<usize>,
    classes: usize,
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
            kind: Kind::Finite {
                name,
                train,
                test,
                labels: None,
            },
        })
    }

    /// A finite source whose rows carry class labels in 0..`classes` (one per training row and
    /// per held-out row); errors as [`DataSource::finite`], or when a count or label is wrong.
    pub fn finite_labelled(
        name: impl Into<String>,
        (train, train_labels): (Points, Vec<usize>),
        test: Option<(Points, Vec<usize>)>,
        classes: usize,
    ) -> Result<Self> {
        let name = name.into();
        let (test, test_labels) = match test {
            Some((p, l)) => (Some(p), l),
            None => (None, Vec::new()),
        };
        let check = |what: &str, pts: usize, labels: &[usize]| -> Result<()> {
            if labels.len() != pts {
                return Err(Error::InvalidInput(format!(
                    "{name}: {} labels for {pts} {what} points",
                    labels.len()
                )));
            }
            if let Some(l) = labels.iter().find(|&&l| l >= classes) {
                return Err(Error::InvalidInput(format!(
                    "{name}: label {l} is out of range for {classes} classes"
                )));
            }
            Ok(())
        };
        check("training", train.len(), &train_labels)?;
        check(
            "held-out",
            test.as_ref().map_or(0, Points::len),
            &test_labels,
        )?;
        let mut me = Self::finite(name, train, test)?;
        if let Kind::Finite { labels, .. } = &mut me.kind {
            *labels = Some(FiniteLabels {
                train: train_labels,
                test: test_labels,
                classes,
            });
        }
        Ok(me)
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

    /// [`DataSource::finite_split`] for labelled rows (`labels` one per point, in 0..`classes`):
    /// the same held-out rows, their labels kept with them.
    pub fn finite_split_labelled(
        name: impl Into<String>,
        points: &Points,
        labels: &[usize],
        classes: usize,
        test_frac: f64,
        seed: u64,
    ) -> Result<Self> {
        let name = name.into();
        if labels.len() != points.len() {
            return Err(Error::InvalidInput(format!(
                "{name}: {} labels for {} points",
                labels.len(),
                points.len()
            )));
        }
        let is_test = test_mask(points.len(), test_frac, seed)?;
        let (train, test) = partition(points, &is_test);
        let pick = |want: bool| -> Vec<usize> {
            labels
                .iter()
                .zip(&is_test)
                .filter(|(_, &t)| t == want)
                .map(|(l, _)| *l)
                .collect()
        };
        let test = (!test.is_empty()).then(|| (test, pick(true)));
        Self::finite_labelled(name, (train, pick(false)), test, classes)
    }

    /// Number of classes K of the source's labels (0: unlabelled).
    pub fn classes(&self) -> usize {
        match &self.kind {
            Kind::Generator(ds) => ds.classes(),
            Kind::Finite { labels, .. } => labels.as_ref().map_or(0, |l| l.classes),
        }
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
        self.batch_labelled(n, rng).0
    }

    /// [`DataSource::batch`] with each point's class label (`None` for an unlabelled source):
    /// the same draws.
    pub fn batch_labelled(&self, n: usize, rng: &mut Rng) -> (Points, Option<Vec<usize>>) {
        match &self.kind {
            Kind::Generator(ds) => ds.sample_labelled(n, rng),
            Kind::Finite { train, labels, .. } => {
                let d = train.dim();
                let mut data = Vec::with_capacity(n * d);
                let mut ids = Vec::with_capacity(n);
                for _ in 0..n {
                    let i = rng.random_range(0..train.len());
                    data.extend_from_slice(train.row(i));
                    ids.push(i);
                }
                let l = labels
                    .as_ref()
                    .map(|l| ids.iter().map(|&i| l.train[i]).collect());
                (Points { data, dim: d }, l)
            }
        }
    }

    /// n evaluation points, deterministic in `seed`: for a generator, n fresh draws from a
    /// dedicated stream (independent of every training stream); for a finite set, n held-out
    /// rows chosen without replacement (all of them when n ≥ their count). `Error::InvalidInput`
    /// for a finite set without held-out points.
    pub fn held_out(&self, n: usize, seed: u64) -> Result<Points> {
        Ok(self.held_out_labelled(n, seed)?.0)
    }

    /// [`DataSource::held_out`] with the points' class labels (`None` when unlabelled).
    pub fn held_out_labelled(&self, n: usize, seed: u64) -> Result<(Points, Option<Vec<usize>>)> {
        let mut r = rng(seed);
        r.set_stream(HELD_OUT_STREAM);
        match &self.kind {
            Kind::Generator(ds) => Ok(ds.sample_labelled(n, &mut r)),
            Kind::Finite {
                test: Some(test),
                labels,
                ..
            } => {
                let idx: Vec<usize> = if n >= test.len() {
                    (0..test.len()).collect()
                } else {
                    let mut idx = index::sample(&mut r, test.len(), n).into_vec();
                    idx.sort_unstable();
                    idx
                };
                let data = idx
                    .iter()
                    .flat_map(|&i| test.row(i).iter().copied())
                    .collect();
                let l = labels
                    .as_ref()
                    .map(|l| idx.iter().map(|&i| l.test[i]).collect());
                Ok((
                    Points {
                        data,
                        dim: test.dim(),
                    },
                    l,
                ))
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
            Kind::Finite {
                name, train, test, ..
            } => format!(
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
    let is_test = test_mask(points.len(), test_frac, seed)?;
    Ok(partition(points, &is_test))
}

/// (rows not held out, rows held out), each in the original order.
fn partition(points: &Points, is_test: &[bool]) -> (Points, Points) {
    let n = points.len();
    let d = points.dim();
    let n_test = is_test.iter().filter(|&&t| t).count();
    let (mut train, mut test) = (
        Vec::with_capacity((n - n_test) * d),
        Vec::with_capacity(n_test * d),
    );
    for (row, &t) in points.rows().zip(is_test) {
        if t { &mut test } else { &mut train }.extend_from_slice(row);
    }
    (
        Points {
            data: train,
            dim: d,
        },
        Points { data: test, dim: d },
    )
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

    /// Labels travel with their rows: batches drawn with replacement carry each row's label
    /// (row i = (i, −i) has label i mod 3), the held-out split keeps labels with their rows,
    /// the unlabelled batch is the same draw, and bad label counts/values are errors.
    #[test]
    fn labelled_sources_keep_rows_and_labels_together() {
        let pts = numbered(60);
        let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let src = DataSource::finite_split_labelled("n", &pts, &labels, 3, 0.25, 4).unwrap();
        assert_eq!(src.classes(), 3);
        let (b, l) = src.batch_labelled(500, &mut rng(2));
        let l = l.unwrap();
        for (row, y) in b.rows().zip(&l) {
            assert_eq!(row[0] as usize % 3, *y);
        }
        assert_eq!(src.batch(500, &mut rng(2)), b);
        let (h, hl) = src.held_out_labelled(100, 1).unwrap();
        assert_eq!(h.len(), 15);
        for (row, y) in h.rows().zip(hl.unwrap()) {
            assert_eq!(row[0] as usize % 3, y);
        }
        assert!(DataSource::finite_split_labelled("n", &pts, &labels[..5], 3, 0.2, 1).is_err());
        assert!(DataSource::finite_split_labelled("n", &pts, &labels, 2, 0.2, 1).is_err());
        assert_eq!(DataSource::finite("u", pts, None).unwrap().classes(), 0);
    }

    /// Built-in sets: the labelled draw is the plain draw; the classes are those documented
    /// (moons: class 0 is the upper moon, y > −0.2·… on average; every pinwheel arm present).
    #[test]
    fn built_in_labels() {
        for ds in Dataset::ALL {
            let (p, l) = ds.sample_labelled(400, &mut rng(3));
            assert_eq!(p, ds.sample(400, &mut rng(3)), "{ds}");
            match l {
                None => assert_eq!(ds.classes(), 0, "{ds}"),
                Some(l) => {
                    assert_eq!(l.len(), 400);
                    let mut seen = vec![0usize; ds.classes()];
                    l.iter().for_each(|&y| seen[y] += 1);
                    assert!(seen.iter().all(|&c| c > 0), "{ds}: {seen:?}");
                }
            }
        }
        // Mixture labels are the drawn component: the nearest mean but for the Bayes error
        // between neighbours, 2Φ(−1.08/0.354) ≈ 0.22 % per point for 8gaussians (half the
        // spacing over σ), so ~0.7 of 300 points; more than 5 would have probability ~1e-4.
        let spec = Dataset::EightGaussians.mixture().unwrap();
        let (p, l) = Dataset::EightGaussians.sample_labelled(300, &mut rng(5));
        let wrong = p
            .rows()
            .zip(l.unwrap())
            .filter(|(row, y)| {
                let d2 = |m: &[f64]| (row[0] - m[0]).powi(2) + (row[1] - m[1]).powi(2);
                let nearest = (0..8)
                    .min_by(|&a, &b| d2(&spec.means()[a]).total_cmp(&d2(&spec.means()[b])))
                    .unwrap();
                nearest != *y
            })
            .count();
        assert!(
            wrong <= 5,
            "{wrong} of 300 labels are not the nearest component"
        );
        // Moons: the outer moon (class 0) has larger y on average, rings radius by class.
        let (p, l) = Dataset::Moons.sample_labelled(2000, &mut rng(6));
        let l = l.unwrap();
        let mean_y = |c: usize| {
            let v: Vec<f64> = p
                .rows()
                .zip(&l)
                .filter(|(_, &y)| y == c)
                .map(|(r, _)| r[1])
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean_y(0) > mean_y(1) + 0.5);
        let (p, l) = Dataset::Rings.sample_labelled(2000, &mut rng(7));
        for (r, y) in p.rows().zip(l.unwrap()) {
            let radius = (r[0] * r[0] + r[1] * r[1]).sqrt();
            let want = 3.0 * [1.0, 0.75, 0.5, 0.25][y];
            assert!((radius - want).abs() < 0.5, "ring {y}: radius {radius}");
        }
    }

    #[test]
    fn finite_rejects_bad_sets() {
        assert!(DataSource::finite("e", Points::new(vec![], 2).unwrap(), None).is_err());
        let t3 = Points::new(vec![0.0; 3], 3).unwrap();
        assert!(DataSource::finite("d", numbered(3), Some(t3)).is_err());
    }
}
