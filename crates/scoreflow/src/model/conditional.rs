//! Judging class-conditional sampling: which class a point belongs to ([`ClassRule`]), how well
//! a classifier run predicts classes at each noise level ([`Model::classifier_scores`]), and the
//! trade-off of guidance strength against diversity ([`guidance_sweep`]).
//!
//! **The class of a point.** For a built-in Gaussian mixture, the component of largest
//! responsibility argmaxₖ wₖ N(x; μₖ, Σₖ) (the Bayes rule: its error on exact samples is the
//! mixture's overlap, 0.22 % for 8gaussians); otherwise the label of the nearest labelled
//! training point (1-nearest neighbour; Euclidean, data units) — built-in labelled sets from
//! 5,000 draws of a fixed stream, a CSV file from its `--label-column`.
//!
//! **Diversity.** Guidance buys class membership with spread (Ho & Salimans 2022, Fig. 1;
//! Dhariwal & Nichol 2021, Table 4): per scale, the RMS distance of the in-class samples to
//! their own mean (`spread`, against the class's data: `data_spread`), and the sliced W₂ of
//! all samples to the class's data (`sw2`, against the floor of fresh class data of the same
//! size: `sw2_floor`), which grows both when samples leave the class and when they collapse
//! onto its centre.

use serde::Serialize;

use super::{Guide, Model, ModelKind, TrainSettings};
use crate::data::{self, Dataset, Points};
use crate::error::{Error, Result};
use crate::field::analytic::{LabelledMixture, MixtureScore};
use crate::field::network::Condition;
use crate::gaussian::GaussianMixture;
use crate::metrics;
use crate::model::{Plan, Samples};
use crate::path::PerturbationKernel;
use crate::solve::SamplerSpec;
use crate::tensor::{self, DType};

/// Labelled reference points drawn from a built-in set for the 1-NN rule.
const NN_POINTS: usize = 5000;
/// Random projections of the sweep's sliced W₂.
const SW_PROJECTIONS: usize = 200;

/// How the class of a point is decided (see the module documentation).
#[derive(Debug, Clone)]
pub enum ClassRule {
    /// The most responsible component of a Gaussian mixture (data units).
    Mixture(GaussianMixture),
    /// The label of the nearest of these labelled points (data units).
    Nearest {
        /// Reference points.
        points: Points,
        /// Their classes.
        labels: Vec<usize>,
    },
}

impl ClassRule {
    /// The rule for the data of `settings` (its data set, or its file with `label-column`).
    pub fn for_settings(settings: &TrainSettings) -> Result<ClassRule> {
        if let Some(ds) = settings.dataset() {
            if let Some(spec) = ds.mixture() {
                return Ok(ClassRule::Mixture(GaussianMixture::from(&spec)));
            }
            let (points, labels) = ds.sample_labelled(NN_POINTS, &mut tensor::rng(0x4c41_4245)); // "LABE"
            let Some(labels) = labels else {
                return Err(no_classes(&ds.to_string()));
            };
            return Ok(ClassRule::Nearest { points, labels });
        }
        let Some(column) = &settings.label_column else {
            return Err(no_classes(&settings.data));
        };
        let (points, labels) = data::load_csv_labelled(&settings.data, column, None)?;
        Ok(ClassRule::Nearest {
            points,
            labels: labels.ids,
        })
    }

    /// The rule for a model guided by an optional classifier: the data of whichever run carries
    /// labels (the classifier's when the model is unconditional).
    pub fn for_model(model: &Model, classifier: Option<&Model>) -> Result<ClassRule> {
        match classifier {
            Some(c) if model.settings.dataset().is_none() && !model.settings.labelled() => {
                Self::for_settings(&c.settings)
            }
            _ => Self::for_settings(&model.settings),
        }
    }

    /// One line: "mixture responsibilities" or "1-NN on N labelled points".
    pub fn describe(&self) -> String {
        match self {
            ClassRule::Mixture(_) => "the mixture's responsibilities".into(),
            ClassRule::Nearest { points, .. } => {
                format!("the nearest of {} labelled points", points.len())
            }
        }
    }

    /// The class of every point.
    pub fn classify(&self, x: &Points) -> Vec<usize> {
        let argmax = |v: &[f64]| {
            (0..v.len())
                .max_by(|&a, &b| v[a].total_cmp(&v[b]))
                .unwrap_or(0)
        };
        match self {
            ClassRule::Mixture(m) => x.rows().map(|r| argmax(&m.responsibilities(r))).collect(),
            ClassRule::Nearest { points, labels } => x
                .rows()
                .map(|r| {
                    let d: Vec<f64> = points
                        .rows()
                        .map(|p| -p.iter().zip(r).map(|(a, b)| (a - b).powi(2)).sum::<f64>())
                        .collect();
                    labels[argmax(&d)]
                })
                .collect(),
        }
    }
}

fn no_classes(data: &str) -> Error {
    Error::InvalidInput(format!(
        "{data} has no class labels to judge samples by (a labelled built-in set, or a CSV with --label-column)"
    ))
}

/// A classifier's held-out quality at one noise level.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierScore {
    /// Flow time t (0 = noise, 1 = data).
    pub t: f64,
    /// The classifier's own time at t.
    pub model_time: f64,
    /// Share of noised held-out points whose most probable class is their label.
    pub accuracy: f64,
    /// Mean −log p(label | x_t, t) (nats).
    pub cross_entropy: f64,
    /// The same for the exact classifier of the data's mixture (the Bayes floor), if any.
    pub bayes_accuracy: Option<f64>,
    /// Its cross-entropy.
    pub bayes_cross_entropy: Option<f64>,
}

impl Model {
    /// The held-out accuracy and cross-entropy of a classifier run at each flow time in
    /// `times` on `n` labelled held-out points (data units, noised in model units by the
    /// classifier's kernel from a fixed stream of `seed`), next to the exact classifier of the
    /// data's mixture on the same noised points when the data are a built-in mixture.
    pub fn classifier_scores(
        &self,
        times: &[f64],
        n: usize,
        seed: u64,
    ) -> Result<Vec<ClassifierScore>> {
        let ModelKind::Classifier {
            process,
            noise_input,
        } = &self.kind
        else {
            return Err(Error::InvalidInput(format!(
                "classifier scores are for classifier runs; this is a {}",
                self.kind
            )));
        };
        let net = self
            .network()
            .ok_or_else(|| Error::InvalidInput("a classifier needs a network".into()))?;
        let (source, _) = self.settings.training_data()?;
        let (x, labels) = source.held_out_labelled(n, seed)?;
        let labels = labels.ok_or_else(|| no_classes(&self.settings.data))?;
        let z = self.normalizer.apply(&x)?;
        let kernel = process.kernel()?;
        let exact = match self.dataset().and_then(|d| d.mixture()) {
            Some(spec) => {
                let mix = GaussianMixture::from(&self.normalizer.apply_mixture(&spec)?);
                let k = mix.weights().len();
                Some(LabelledMixture::new(
                    MixtureScore::new(mix, kernel.clone()),
                    (0..k).collect(),
                    k,
                )?)
            }
            None => None,
        };
        let mut rng = tensor::rng(seed);
        rng.set_stream(0x4e4f_4953); // "NOIS"
        let dev = tensor::cpu();
        let z0 = z.to_tensor(&dev, DType::F32);
        let score = |logp: &[f64], k: usize| {
            let (mut hits, mut ce) = (0usize, 0.0);
            for (row, &y) in logp.chunks_exact(k).zip(&labels) {
                let best = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b]));
                hits += usize::from(best == Some(y));
                ce -= row[y];
            }
            (hits as f64 / labels.len() as f64, ce / labels.len() as f64)
        };
        times
            .iter()
            .map(|&t| {
                if !(0.0..=1.0).contains(&t) {
                    return Err(Error::InvalidInput(format!(
                        "flow times are in [0, 1] (got {t})"
                    )));
                }
                let tau = self.kind.model_time(t)?;
                let (m, s) = kernel.mean_std(tau);
                let eps = tensor::randn_like(&z0, &mut rng);
                let xt = z0.clone() * m + eps * s;
                let tt = tensor::vector(vec![tau; labels.len()], &dev, DType::F32);
                let c = noise_input.map(&kernel, &tt);
                let logits = net.forward(&xt, &c, &Condition::None);
                let k = logits.dims()[1];
                let logp = tensor::to_vec(&burn::tensor::activation::log_softmax(logits, 1));
                let (accuracy, cross_entropy) = score(&logp, k);
                let bayes = exact.as_ref().map(|e| {
                    let lp = tensor::to_vec(
                        &e.log_probs(&xt.clone().cast(DType::F64), &tt.clone().cast(DType::F64)),
                    );
                    score(&lp, e.classes)
                });
                Ok(ClassifierScore {
                    t,
                    model_time: tau,
                    accuracy,
                    cross_entropy,
                    bayes_accuracy: bayes.map(|b| b.0),
                    bayes_cross_entropy: bayes.map(|b| b.1),
                })
            })
            .collect()
    }

    /// [`Model::sample_guided_each`] collected, as [`Model::sample`].
    pub fn sample_guided(
        &self,
        plan: &Plan,
        seed: u64,
        spec: &SamplerSpec,
        guide: &Guide,
    ) -> Result<Samples> {
        self.collect(plan.points().len(), |sink| {
            self.sample_guided_each(plan, seed, spec, guide, sink)
        })
    }
}

/// Which scale a [`guidance_sweep`] varies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Swept {
    /// The classifier-free guidance scale G ([`Guide::guidance`]).
    Guidance,
    /// The classifier guidance scale γ ([`Guide::classifier_scale`]).
    ClassifierScale,
}

impl Swept {
    /// "guidance" or "classifier-scale" (the flag).
    pub fn name(self) -> &'static str {
        match self {
            Swept::Guidance => "guidance",
            Swept::ClassifierScale => "classifier-scale",
        }
    }
}

/// One scale of a [`guidance_sweep`].
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    /// The scale (G or γ, diffusers' convention).
    pub scale: f64,
    /// Share of samples in the requested class.
    pub share: f64,
    /// RMS distance of the in-class samples to their mean (NaN with fewer than 2).
    pub spread: f64,
    /// Sliced W₂ of all samples to the class's data.
    pub sw2: f64,
    /// Field evaluations per sample path.
    pub nfe: usize,
    /// The samples (data units).
    #[serde(skip)]
    pub samples: Points,
}

/// Guided sampling at several scales, judged by class share and diversity.
#[derive(Debug, Clone, Serialize)]
pub struct GuidanceSweep {
    /// The class sampled.
    pub class: usize,
    /// The scale varied.
    pub swept: Swept,
    /// How samples were assigned to classes ([`ClassRule::describe`]).
    pub rule: String,
    /// Samples per scale.
    pub n: usize,
    /// RMS distance of the class's data to its mean (the spread of exact class samples).
    pub data_spread: f64,
    /// Sliced W₂ of n fresh class data to the class's reference data (the floor of `sw2`).
    pub sw2_floor: f64,
    /// One entry per scale, in the order given.
    pub points: Vec<SweepPoint>,
}

/// RMS distance of points to their mean (NaN for fewer than 2 points).
fn spread(x: &Points) -> f64 {
    if x.len() < 2 {
        return f64::NAN;
    }
    let d = x.dim();
    let n = x.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|i| x.rows().map(|r| r[i]).sum::<f64>() / n)
        .collect();
    (x.rows()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n)
        .sqrt()
}

/// The rows of `x` whose class is `class`.
fn of_class(x: &Points, classes: &[usize], class: usize) -> Result<Points> {
    let v: Vec<f64> = x
        .rows()
        .zip(classes)
        .filter(|(_, &c)| c == class)
        .flat_map(|(r, _)| r.iter().copied())
        .collect();
    Points::new(v, x.dim())
}

/// A guidance sweep's inputs (see [`guidance_sweep`]).
#[derive(Debug, Clone)]
pub struct SweepJob<'a> {
    /// The model sampled.
    pub model: &'a Model,
    /// The condition (its class, and the scale not swept).
    pub base: &'a Guide,
    /// The scale varied.
    pub swept: Swept,
    /// Its values.
    pub scales: &'a [f64],
    /// The sampler.
    pub spec: &'a SamplerSpec,
    /// Samples per scale.
    pub n: usize,
    /// Seed of every scale's sampling (the scales share their noise) and of the reference data.
    pub seed: u64,
    /// How classes are judged.
    pub rule: &'a ClassRule,
}

/// Samples `n` points of class `base.class` from `model` with `spec` at each of `scales`
/// (the [`Swept`] scale of `base` replaced) and judges them by `rule` (see the module
/// documentation). The class's reference data: held-out draws of the model's data of that
/// class (2n at most, split in halves: the reference and the floor's fresh sample).
pub fn guidance_sweep(job: &SweepJob) -> Result<GuidanceSweep> {
    let SweepJob {
        model,
        base,
        swept,
        scales,
        spec,
        n,
        seed,
        rule,
    } = *job;
    let Some(class) = base.class else {
        return Err(Error::InvalidInput(
            "a guidance sweep needs --class K".into(),
        ));
    };
    if scales.is_empty() || n < 2 {
        return Err(Error::InvalidInput(
            "a guidance sweep needs at least one scale and 2 samples".into(),
        ));
    }
    let reference = class_data(model, rule, class, n, seed)?;
    let half = reference.len() / 2;
    if half < 2 {
        return Err(Error::InvalidInput(format!(
            "class {class} has {} reference points; too few to judge samples against",
            reference.len()
        )));
    }
    let (refs, fresh) = (reference.slice(0, half), reference.slice(half, 2 * half));
    let sw2 = |x: &Points| {
        metrics::sliced_wasserstein2(x, &refs, SW_PROJECTIONS, &mut tensor::rng(seed ^ 0x5357))
    };
    let sw2_floor = sw2(&fresh.slice(0, n.min(fresh.len())))?;
    let points = scales
        .iter()
        .map(|&scale| {
            let guide = match swept {
                Swept::Guidance => Guide {
                    guidance: scale,
                    ..base.clone()
                },
                Swept::ClassifierScale => Guide {
                    classifier_scale: Some(scale),
                    ..base.clone()
                },
            };
            let out = model.sample_guided(&Plan::new(n, None), seed, spec, &guide)?;
            let classes = rule.classify(&out.points);
            let hits = classes.iter().filter(|&&c| c == class).count();
            Ok(SweepPoint {
                scale,
                share: hits as f64 / n as f64,
                spread: spread(&of_class(&out.points, &classes, class)?),
                sw2: sw2(&out.points)?,
                nfe: out.stats.nfe_per_path(),
                samples: out.points,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(GuidanceSweep {
        class,
        swept,
        rule: rule.describe(),
        n,
        data_spread: spread(&refs),
        sw2_floor,
        points,
    })
}

/// Up to 2n data points of class `class` (data units): fresh labelled draws of a built-in set
/// (a dedicated stream), or the class's points of a labelled file.
fn class_data(
    model: &Model,
    rule: &ClassRule,
    class: usize,
    n: usize,
    seed: u64,
) -> Result<Points> {
    let ds: Option<Dataset> = model.dataset();
    match (ds, rule) {
        (Some(ds), _) => {
            let mut r = tensor::rng(seed);
            r.set_stream(0x434c_4153); // "CLAS"
            let mut out = Vec::new();
            let d = model.dim();
            // Draw in rounds until 2n points of the class (or 50 rounds: a rare class).
            for _ in 0..50 {
                let (p, l) = ds.sample_labelled(4 * n, &mut r);
                let Some(l) = l else {
                    return Err(no_classes(ds.name()));
                };
                out.extend(
                    p.rows()
                        .zip(&l)
                        .filter(|(_, &c)| c == class)
                        .flat_map(|(r, _)| r.iter().copied()),
                );
                if out.len() >= 2 * n * d {
                    break;
                }
            }
            out.truncate(2 * n * d);
            Points::new(out, d)
        }
        (None, ClassRule::Nearest { points, labels }) => of_class(points, labels, class),
        (None, ClassRule::Mixture(_)) => Err(no_classes(&model.settings.data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::model::{TrainMethod, TrainingRun};
    use crate::solve::SamplerName;
    use crate::train::Control;

    /// A classifier run on 8gaussians under the VP SDE (3→64×2→8, 2,000 burn steps of batch
    /// 256, no EMA), saved and loaded, guides the exact score and the exact straight-path
    /// velocity with an input gradient near the exact classifier's: the relative L2 error
    /// √(Σ‖g − g*‖² / Σ‖g*‖²) of the guidance term (guided − unguided field, data units) over
    /// 2,000 points of p_t, for classes 1 and 3, is below 0.8 at VP τ ∈ {0.1, 0.3, 0.6}. The
    /// bound is not a derived learning rate (none is known for input gradients) but a
    /// separation: a classifier that learned nothing (g = 0) scores 1, another class's exact
    /// gradient ≈ 1.4, a wrong time input or scale far more; measured 0.33 (τ = 0.6) to 0.69
    /// (τ = 0.1: the class boundaries are sharp there and gradients of a short run are
    /// smoothed; 3,000 steps of a 128×4 MLP give 0.6, 0.33, 0.37). Its cross-entropy at flow
    /// times 0.5 and 0.9 is within 0.1 nats of the Bayes floor (measured 0.04, 0.0003). The
    /// flow's term goes through the λ-matched noise level ([`NoiseLevelMatched`]), which is
    /// exact: its errors equal the VP ones to 1e-4 (f32).
    ///
    /// [`NoiseLevelMatched`]: crate::guidance::NoiseLevelMatched
    #[test]
    fn trained_classifier_gradient_approaches_the_exact_one() {
        let settings = TrainSettings {
            method: TrainMethod::Classifier,
            width: 64,
            depth: 2,
            steps: 2000,
            lr: 3e-3,
            ema: 0.0,
            checkpoint_every: 2000,
            ..TrainSettings::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut run = TrainingRun::start(&settings, dir.path()).unwrap();
        assert_eq!(run.engine, crate::train::EngineKind::Burn);
        let mut batches = run.minibatches().unwrap();
        run.trainer
            .run(run.objective.as_ref(), batches.as_mut(), &mut |_| {
                Control::Continue
            })
            .unwrap();
        let clf = Arc::new(Model::load(dir.path()).unwrap());
        assert_eq!(clf.classifier_classes(), 8);
        for s in clf.classifier_scores(&[0.5, 0.9], 2000, 1).unwrap() {
            let gap = s.cross_entropy - s.bayes_cross_entropy.unwrap();
            assert!(gap < 0.1, "t = {}: CE gap {gap}", s.t);
        }
        let vp = Model::exact_default(Dataset::EightGaussians, TrainMethod::Dsm).unwrap();
        let flow = Model::exact_default(Dataset::EightGaussians, TrainMethod::Cfm).unwrap();
        let sde = vp.kind.sde().unwrap().unwrap();
        let mut rng = tensor::rng(9);
        for tau in [0.1, 0.3, 0.6] {
            let (m, s) = sde.mean_std(tau);
            let x0 = Dataset::EightGaussians.sample(2000, &mut rng);
            let z = crate::tensor::randn(2000, 2, &tensor::cpu(), DType::F64, &mut rng);
            let x = Points::new(
                x0.as_slice()
                    .iter()
                    .zip(tensor::to_vec(&z))
                    .map(|(a, e)| m * a + s * e)
                    .collect(),
                2,
            )
            .unwrap();
            // The flow time with the same λ = ln(t/(1 − t)) = ln(m/s), and x scaled to it.
            let t_flow = m / (m + s);
            let xf = Points::new(x.as_slice().iter().map(|v| v * t_flow / m).collect(), 2).unwrap();
            let mut errors = Vec::new();
            for (model, at, time) in [(&vp, &x, tau), (&flow, &xf, t_flow)] {
                let base = model
                    .guided_field_at(&Guide::class(0, 0.0), at, time)
                    .unwrap();
                let term = |guide: &Guide| -> Vec<f64> {
                    let g = model.guided_field_at(guide, at, time).unwrap();
                    g.as_slice()
                        .iter()
                        .zip(base.as_slice())
                        .map(|(a, b)| a - b)
                        .collect()
                };
                for class in [1, 3] {
                    let exact = term(&Guide {
                        classifier_scale: Some(1.0),
                        ..Guide::class(class, 0.0)
                    });
                    let learned = term(&Guide {
                        classifier: Some(clf.clone()),
                        ..Guide::class(class, 0.0)
                    });
                    let num: f64 = learned
                        .iter()
                        .zip(&exact)
                        .map(|(a, b)| (a - b).powi(2))
                        .sum();
                    let den: f64 = exact.iter().map(|b| b * b).sum();
                    let rel = (num / den).sqrt();
                    assert!(
                        rel < 0.8,
                        "{} τ = {tau} (t = {time:.3}) class {class}: relative error {rel}",
                        model.kind
                    );
                    errors.push(rel);
                }
            }
            // The flow's term is the VP classifier's at the λ-matched level: the same errors.
            for (v, f) in errors[..2].iter().zip(&errors[2..]) {
                assert!((v - f).abs() < 1e-4, "VP {v} vs flow {f}");
            }
        }
    }

    /// The guidance sweep on exact 8gaussians (VP score, Euler–Maruyama, 300 steps, 1,000
    /// samples) with the exact classifier: at S = 0 the share of class 3 is the mixture weight
    /// 1/8 within 4 SE (√(p(1 − p)/n) = 0.0105 → 0.042); at S = 1 (Bayes' rule: the exact
    /// conditional) ≥ 97 % (the exact conditional's Bayes error is 0.22 %; the rest is the
    /// sampler's discretisation) with the class data's spread within 0.05 (its SE over 1,000
    /// points ≈ 0.01, plus the sampler's error) and sliced W₂ within 0.05 of its floor; at S = 4
    /// the share stays ≥ 97 % while the spread shrinks below 0.95× the data's (the RMS radius's
    /// relative SE is ≈ 1.6 %, so 0.95 is 3 SE from both 1 and the measured 0.90) and SW₂ rises
    /// 0.05 above its floor (measured 0.13 vs 0.03): guidance trades diversity for class. CFG
    /// on the same model: G = 0 is the unconditional 1/8, G = 1 the conditional ≥ 97 %.
    #[test]
    fn exact_guidance_sweep_trades_diversity_for_class() {
        let model = Model::exact_default(Dataset::EightGaussians, TrainMethod::Dsm).unwrap();
        let rule = ClassRule::for_model(&model, None).unwrap();
        let spec = SamplerSpec {
            steps: Some(300),
            ..SamplerSpec::new(SamplerName::Em)
        };
        let base = Guide::class(3, 0.0);
        let s = guidance_sweep(&SweepJob {
            model: &model,
            base: &base,
            swept: Swept::ClassifierScale,
            scales: &[0.0, 1.0, 4.0],
            spec: &spec,
            n: 1000,
            seed: 5,
            rule: &rule,
        })
        .unwrap();
        let [s0, s1, s4] = &s.points[..] else {
            panic!("three scales")
        };

        assert!((s0.share - 0.125).abs() < 0.042, "S = 0: {}", s0.share);
        assert!(s1.share >= 0.97, "S = 1: {}", s1.share);
        assert!((s1.spread - s.data_spread).abs() < 0.05, "{s:?}");
        assert!(s1.sw2 < s.sw2_floor + 0.05, "{} vs {}", s1.sw2, s.sw2_floor);
        assert!(s4.share >= 0.97, "S = 4: {}", s4.share);
        assert!(
            s4.spread < 0.95 * s.data_spread,
            "{} vs {}",
            s4.spread,
            s.data_spread
        );
        assert!(s4.sw2 > s.sw2_floor + 0.05, "{} vs {}", s4.sw2, s.sw2_floor);
        let cfg = guidance_sweep(&SweepJob {
            model: &model,
            base: &Guide::class(3, 1.0),
            swept: Swept::Guidance,
            scales: &[0.0, 1.0],
            spec: &spec,
            n: 1000,
            seed: 5,
            rule: &rule,
        })
        .unwrap();
        assert!((cfg.points[0].share - 0.125).abs() < 0.042, "{cfg:?}");
        assert!(cfg.points[1].share >= 0.97, "{cfg:?}");
    }

    /// The 1-NN rule on moons labels its own reference points correctly and a far-away point by
    /// its nearest arm.
    #[test]
    fn nearest_rule_labels_moons() {
        let s = TrainSettings {
            data: "moons".into(),
            ..TrainSettings::default()
        };
        let rule = ClassRule::for_settings(&s).unwrap();
        let ClassRule::Nearest { points, labels } = &rule else {
            panic!("moons is not a mixture")
        };
        assert_eq!(&rule.classify(&points.slice(0, 50)), &labels[..50]);
        let far = TrainSettings {
            data: "checkerboard".into(),
            ..TrainSettings::default()
        };
        assert!(ClassRule::for_settings(&far).is_err());
    }
}
