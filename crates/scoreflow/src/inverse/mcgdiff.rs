//! The Gaussian-mixture inverse-problem benchmark of Cardoso et al. 2023 ("Monte Carlo guided
//! diffusion for Bayesian linear inverse problems", MCGdiff), as their code generates it:
//!
//! * prior: 25 components N(μ_{ij}, I_d) with μ_{ij} = (8i, 8j, 8i, 8j, …) (the pair repeated
//!   over d/2 coordinate pairs), i, j ∈ {−2, …, 2}, weights z²/Σz², z ~ N(0, 1);
//! * A (d_y × d): the SVD U S Vᵀ of a standard Gaussian matrix with S replaced by sorted
//!   (descending) U(0, 1) draws; σ_y = U(0, 1)·max singular value; y = A x* + σ_y ε with
//!   x* a prior draw;
//! * score: the sliced Wasserstein distance SW₁ (mean over 100 random directions of the 1-D
//!   W₁, [`crate::metrics::sliced_wasserstein1`]) of 2,000 posterior samples from draws of the
//!   exact posterior.
//!
//! Our draws come from ChaCha8, so the problems are theirs in distribution, not bit for bit.

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use super::Observation;
use crate::data::Points;
use crate::error::{Error, Result};
use crate::gaussian::{LowRankMixture, MixtureLaw};
use crate::linalg::symmetric_eigen;
use crate::metrics::sliced_wasserstein1;
use crate::tensor::Rng;

/// One benchmark problem: the prior, the observation and the exact posterior.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The 25-component prior (identity covariances: r = 0).
    pub prior: LowRankMixture,
    /// y = A x* + σ_y ε.
    pub obs: Observation,
    /// The exact posterior (rank d_y, Woodbury forms).
    pub posterior: LowRankMixture,
}

/// The prior of the benchmark in dimension d (even) with weights z²/Σz² drawn from `rng`.
pub fn prior(d: usize, rng: &mut Rng) -> Result<LowRankMixture> {
    if d == 0 || !d.is_multiple_of(2) {
        return Err(Error::InvalidInput(format!(
            "the MCGdiff prior needs an even dimension (got {d})"
        )));
    }
    let mut means = Vec::with_capacity(25);
    for i in -2..=2 {
        for j in -2..=2 {
            let pair = [8.0 * i as f64, 8.0 * j as f64];
            means.push(pair.iter().copied().cycle().take(d).collect());
        }
    }
    let weights: Vec<f64> = (0..25)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            z * z
        })
        .collect();
    LowRankMixture::isotropic(weights, means, &[1.0; 25])
}

/// A (d_y × d, rows) = U diag(s) V_{:d_y} from the SVD of a standard Gaussian matrix G
/// (U, V from the eigenvectors of G Gᵀ), s sorted descending U(0, 1) draws; returns (A, s).
pub fn operator(d_y: usize, d: usize, rng: &mut Rng) -> (Vec<Vec<f64>>, Vec<f64>) {
    let g: Vec<f64> = (0..d_y * d).map(|_| StandardNormal.sample(rng)).collect();
    let mut ggt = vec![0.0; d_y * d_y];
    for i in 0..d_y {
        for j in 0..d_y {
            ggt[i * d_y + j] = (0..d).map(|k| g[i * d + k] * g[j * d + k]).sum();
        }
    }
    let (lam, u) = symmetric_eigen(&ggt, d_y);
    // Singular triplets in descending order: σᵢ = √λᵢ, vᵢ = Gᵀuᵢ/σᵢ.
    let order: Vec<usize> = (0..d_y).rev().collect();
    let mut s: Vec<f64> = (0..d_y).map(|_| rng.random::<f64>()).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    let mut a = vec![vec![0.0; d]; d_y];
    for (rank, &c) in order.iter().enumerate() {
        let sv = lam[c].max(f64::MIN_POSITIVE).sqrt();
        let v: Vec<f64> = (0..d)
            .map(|k| (0..d_y).map(|i| u[i * d_y + c] * g[i * d + k]).sum::<f64>() / sv)
            .collect();
        for (i, row) in a.iter_mut().enumerate() {
            let ui = u[i * d_y + c];
            row.iter_mut()
                .zip(&v)
                .for_each(|(x, vk)| *x += ui * s[rank] * vk);
        }
    }
    (a, s)
}

impl Problem {
    /// A random problem in dimension d (even) with d_y observations, all from `rng`: prior,
    /// operator, σ_y, x*, ε, then the exact posterior.
    pub fn generate(d: usize, d_y: usize, rng: &mut Rng) -> Result<Self> {
        if d_y == 0 || d_y > d {
            return Err(Error::InvalidInput(format!(
                "need 1 <= d_y <= d (got d_y = {d_y}, d = {d})"
            )));
        }
        let prior = prior(d, rng)?;
        let (a, s) = operator(d_y, d, rng);
        let sigma = rng.random::<f64>() * s[0];
        let x_star = prior.sample_labelled(1, rng).0;
        let obs = Observation::observe(a, x_star.row(0), sigma, rng)?;
        let posterior = obs.posterior(&prior)?;
        Ok(Self {
            prior,
            obs,
            posterior,
        })
    }

    /// The prior's mean per-coordinate variance tr Cov/d = 1 + Σₖ wₖ‖μₖ − μ‖²/d: the "data
    /// variance" a user would read off the training data (for the Π-GDM and TDS twistings).
    pub fn data_variance(&self) -> f64 {
        let (d, mu) = (self.prior.dim(), self.prior.mean());
        let spread: f64 = (0..self.prior.num_components())
            .map(|k| {
                let m = self.prior.mean_of(k);
                self.prior.weights()[k]
                    * m.iter().zip(&mu).map(|(a, b)| (a - b).powi(2)).sum::<f64>()
            })
            .sum();
        1.0 + spread / d as f64
    }

    /// `n` draws of the prior (the score of doing nothing).
    pub fn prior_samples(&self, n: usize, rng: &mut Rng) -> Points {
        self.prior.sample_labelled(n, rng).0
    }

    /// `n` draws of the exact posterior.
    pub fn posterior_samples(&self, n: usize, rng: &mut Rng) -> Points {
        self.posterior.sample_labelled(n, rng).0
    }

    /// SW₁ over 100 random directions between `samples` and `reference` (exact posterior
    /// draws), directions from `rng`.
    pub fn score(samples: &Points, reference: &Points, rng: &mut Rng) -> Result<f64> {
        sliced_wasserstein1(samples, reference, 100, rng)
    }
}

/// A posterior sampler of the benchmark, at a given NFE budget (an input gradient counts 2).
/// All run the VP SDE (β: 0.1 → 20, score_sde's) on the exact prior score from N(0, I).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The exact posterior score with Euler–Maruyama (the oracle: sampler error only).
    Exact,
    /// [`super::Dps`] with step size ζ (NFE/2 ancestral steps).
    Dps {
        /// ζ.
        zeta: f64,
    },
    /// The Π-GDM posterior field with data variance v (`None`: the prior's own per-coordinate
    /// variance, [`Problem::data_variance`]) and Euler–Maruyama (NFE/2 steps).
    PiGdm {
        /// v.
        data_variance: Option<f64>,
    },
    /// The Tweedie-moment (TMPD) posterior field with Euler–Maruyama (NFE/(2 + 2 d_y) steps).
    Tmpd,
    /// The "prior + likelihood" field with annealed Langevin (NFE steps: 50 levels).
    AnnealedNoisy,
    /// Twisted SMC ([`super::Tds`]) with the Π-GDM twisting of data variance v (`None`: the
    /// prior's), NFE/2 steps.
    Tds {
        /// v.
        data_variance: Option<f64>,
    },
    /// Twisted SMC with the TMPD twisting (NFE/(2 + 2 d_y) steps).
    TdsTmpd,
}

impl Method {
    /// A short name for reports.
    pub fn name(self) -> String {
        match self {
            Method::Exact => "exact".into(),
            Method::Dps { zeta } => format!("dps(ζ={zeta})"),
            Method::PiGdm { data_variance } => format!("pigdm({})", v_name(data_variance)),
            Method::Tmpd => "tmpd".into(),
            Method::AnnealedNoisy => "ald-noisy".into(),
            Method::Tds { data_variance } => format!("tds({})", v_name(data_variance)),
            Method::TdsTmpd => "tds(tmpd)".into(),
        }
    }
}

fn v_name(v: Option<f64>) -> String {
    v.map_or("v=data".into(), |v| format!("v={v}"))
}

/// What one sampler run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// The samples.
    pub samples: Points,
    /// Prior-score evaluations (an input gradient counts 2).
    pub nfe: usize,
    /// Wall time of the sampler, seconds.
    pub seconds: f64,
}

/// Runs `method` on `problem` with about `nfe` evaluations, `n` samples, all noise from `rng`.
pub fn run(problem: &Problem, method: Method, nfe: usize, n: usize, rng: &mut Rng) -> Result<Run> {
    use std::sync::Arc;

    use super::{Approximation, Dps, Posterior, ScoreParam};
    use crate::field::analytic::MixtureScore;
    use crate::field::counted::Counted;
    use crate::sde::{Sde, VpSde};
    use crate::solve::{AnnealedLangevin, PredictorCorrector, Sampler};
    use crate::tensor::{cpu, randn, DType};

    let sde: Arc<dyn Sde> = Arc::new(VpSde::default());
    let d = problem.prior.dim();
    let x0 = randn(n, d, &cpu(), DType::F64, rng);
    let obs = Arc::new(problem.obs.clone());
    let started = std::time::Instant::now();
    let steps = (nfe / 2).max(1);
    let v_data = problem.data_variance();
    let (x, used) = match method {
        Method::Exact => {
            let score = Counted::new(MixtureScore::new(problem.posterior.clone(), sde.clone()));
            let s = PredictorCorrector::euler_maruyama(sde.clone(), nfe.max(1))
                .sample(&score, x0, rng)?;
            (s.x, score.nfe())
        }
        Method::Dps { zeta } => {
            let score = Counted::new(MixtureScore::new(problem.prior.clone(), sde.clone()));
            let s = Dps::new(sde.clone(), obs, steps, zeta).sample(&score, x0, rng)?;
            (s.x, score.nfe())
        }
        Method::PiGdm { data_variance } => {
            let prior = Counted::new(MixtureScore::new(problem.prior.clone(), sde.clone()));
            let post = Posterior::new(
                &prior,
                ScoreParam(sde.clone()),
                obs,
                Approximation::PiGdm {
                    data_variance: data_variance.unwrap_or(v_data),
                },
            )?;
            let s =
                PredictorCorrector::euler_maruyama(sde.clone(), steps).sample(&post, x0, rng)?;
            (s.x, prior.nfe())
        }
        Method::Tmpd => {
            let prior = Counted::new(MixtureScore::new(problem.prior.clone(), sde.clone()));
            let per = Approximation::Tmpd.nfe(obs.obs_dim());
            let post = Posterior::new(&prior, ScoreParam(sde.clone()), obs, Approximation::Tmpd)?;
            let steps = (nfe / per).max(1);
            let s =
                PredictorCorrector::euler_maruyama(sde.clone(), steps).sample(&post, x0, rng)?;
            (s.x, prior.nfe())
        }
        Method::Tds { .. } | Method::TdsTmpd => {
            let twist = match method {
                Method::Tds { data_variance } => Approximation::PiGdm {
                    data_variance: data_variance.unwrap_or(v_data),
                },
                _ => Approximation::Tmpd,
            };
            let prior = Counted::new(MixtureScore::new(problem.prior.clone(), sde.clone()));
            let per = twist.nfe(obs.obs_dim());
            let steps = (nfe / per).saturating_sub(1).max(1);
            let s = super::Tds::new(sde.clone(), obs, twist, steps).sample(&prior, x0, rng)?;
            (s.x, prior.nfe())
        }
        Method::AnnealedNoisy => {
            let prior = Counted::new(MixtureScore::new(problem.prior.clone(), sde.clone()));
            let post = Posterior::new(&prior, ScoreParam(sde.clone()), obs, Approximation::Noisy)?;
            let levels = 50.min(nfe.max(2));
            let per = (nfe / levels).max(1);
            let ald = AnnealedLangevin::new(sde.clone(), levels, per, 0.05)?;
            let s = ald.sample(&post, x0, rng)?;
            (s.x, prior.nfe())
        }
    };
    Ok(Run {
        samples: Points::from_tensor(&x),
        nfe: used,
        seconds: started.elapsed().as_secs_f64(),
    })
}
