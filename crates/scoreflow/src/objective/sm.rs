//! Score matching without noise: Hyvärinen (2005) and sliced score matching (Song et al. 2019).
//!
//! For data x ~ p and a model score s(x), integration by parts turns the Fisher divergence
//! ½E‖s − ∇log p‖² into a quantity that needs no ∇log p:
//!
//! ```text
//!     J(s) = E[½‖s(x)‖² + ∇·s(x)] = ½E‖s − ∇log p‖² − ½E‖∇log p‖²      (Hyvärinen)
//! ```
//!
//! (the last term does not depend on the model). With random projections v, E\[vvᵀ\] = I:
//!
//! ```text
//!     J_SSM    = E[vᵀ(∇s)v + ½(vᵀs)²]                                  (sliced SM)
//!     J_SSM-VR = E[vᵀ(∇s)v + ½‖s‖²]                                    (variance-reduced)
//! ```
//!
//! J_SSM-VR is Hyvärinen's objective with Hutchinson's estimator of ∇·s, so the Hutchinson
//! variant of [`Hyvarinen`] and the variance-reduced [`SlicedScoreMatching`] are the same
//! computation ([`sliced_loss`]).
//!
//! Both need only first derivatives in x: ∇·s by d stacked forward-mode tangents
//! ([`Mlp::forward_divergence`]), vᵀ(∇s)v by one tangent per probe ([`Mlp::forward_jvp`]). These
//! are ordinary tensor operations, so the loss is differentiable in the weights by one ordinary
//! backward pass (no double backward).
//!
//! When ∇log p is known (analytic targets, lessons), the Fisher divergence itself is a plain
//! regression, **explicit score matching** ([`ExplicitScoreMatching`], Hyvärinen 2005 eq. 2):
//! the same minimiser and the same p-weighting as J, without a divergence and without its
//! variance, so the fused engine trains it and what is learned reflects the network alone.
//!
//! Noise-free score matching learns a time-independent score. The network still has a time
//! input; it is fed the constant `time` (default 0, the data end of diffusion time), and a
//! sampler must evaluate the trained field at the same time.

use serde::{Deserialize, Serialize};

use super::{Objective, RegressionBatch};
use crate::field::divergence::{hutchinson_probes, Divergence, ProbeNoise};
use crate::field::network::{Condition, Network};
use crate::field::VectorField;
use crate::tensor::{times_like, Rng, Tensor};

/// Hyvärinen score matching J = mean_b [½‖s(x_b)‖² + ∇·s(x_b)] (name "sm").
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Hyvarinen {
    /// ∇·s exactly (d tangent passes; `Auto` = exact for d ≤ 16) or by Hutchinson probes
    /// (then J equals the variance-reduced sliced objective).
    #[serde(default)]
    pub divergence: Divergence,
    /// Constant time input of the network.
    #[serde(default)]
    pub time: f64,
}

/// Sliced score matching with k probes per point (name "ssm"):
/// mean over points and probes of vᵀ(∇s)v + ½(vᵀs)², or vᵀ(∇s)v + ½‖s‖² when variance-reduced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SlicedScoreMatching {
    /// Probes per data point (k ≥ 1).
    #[serde(default = "one")]
    pub probes: usize,
    /// Probe distribution (E\[vvᵀ\] = I).
    #[serde(default)]
    pub noise: ProbeNoise,
    /// Use ½‖s‖² instead of ½(vᵀs)² (SSM-VR; the lower-variance default).
    #[serde(default = "yes")]
    pub variance_reduced: bool,
    /// Constant time input of the network.
    #[serde(default)]
    pub time: f64,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

impl Default for SlicedScoreMatching {
    fn default() -> Self {
        Self {
            probes: 1,
            noise: ProbeNoise::Rademacher,
            variance_reduced: true,
            time: 0.0,
        }
    }
}

/// Either noise-free score-matching objective, tagged by its name for configs:
/// `{"method": "sm", ...}` or `{"method": "ssm", ...}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum ScoreMatching {
    /// Hyvärinen score matching.
    #[serde(rename = "sm")]
    Hyvarinen(Hyvarinen),
    /// Sliced score matching.
    #[serde(rename = "ssm")]
    Sliced(SlicedScoreMatching),
}

impl ScoreMatching {
    /// The default objective for a name: "sm" → exact Hyvärinen, "ssm" → SSM-VR with one
    /// Rademacher probe. Errors for any other name.
    pub fn from_name(name: &str) -> crate::Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sm" => Ok(ScoreMatching::Hyvarinen(Hyvarinen::default())),
            "ssm" => Ok(ScoreMatching::Sliced(SlicedScoreMatching::default())),
            other => Err(crate::Error::InvalidInput(format!(
                "unknown score-matching method '{other}' (choose sm or ssm)"
            ))),
        }
    }
}

/// mean over k·n rows of vᵀ(∇s)v + ½(vᵀs)² (or + ½‖s‖² when `variance_reduced`), with k
/// probe blocks drawn from `rng` on `data`'s device; differentiable in the weights.
///
/// # Panics
/// If `probes == 0` (a programming error; configs are checked by the callers' constructors).
pub fn sliced_loss(
    model: &dyn Network,
    data: &Tensor<2>,
    time: f64,
    probes: usize,
    noise: ProbeNoise,
    variance_reduced: bool,
    rng: &mut Rng,
) -> Tensor<1> {
    assert!(
        probes >= 1,
        "sliced score matching needs at least one probe"
    );
    let v = hutchinson_probes(data, probes, noise, rng);
    let x = if probes == 1 {
        data.clone()
    } else {
        data.clone().repeat(&[probes, 1])
    };
    let (s, jv) = model.jvp(&x, &times_like(&x, time), &Condition::None, &v);
    let vjv = (jv * v.clone()).sum_dim(1);
    let quad = if variance_reduced {
        s.square().sum_dim(1)
    } else {
        (s * v).sum_dim(1).square()
    };
    (vjv + quad * 0.5).mean()
}

impl Objective for Hyvarinen {
    fn name(&self) -> &'static str {
        "sm"
    }

    fn is_regression(&self) -> bool {
        false
    }

    /// Exact: mean_b ½‖s‖² + ∇·s with the stacked-tangent divergence; Hutchinson: draws the
    /// probes from `rng` and returns [`sliced_loss`] (variance-reduced).
    ///
    /// # Panics
    /// For a Hutchinson divergence with 0 probes (a programming error).
    fn loss(&self, model: &dyn Network, data: &Tensor<2>, rng: &mut Rng) -> Tensor<1> {
        match self.divergence.resolve(data.dims()[1]) {
            Divergence::Hutchinson { probes, noise } => {
                sliced_loss(model, data, self.time, probes, noise, true, rng)
            }
            _ => {
                let (s, div) =
                    model.divergence(data, &times_like(data, self.time), &Condition::None);
                let [n, _] = data.dims();
                (s.square().sum_dim(1).reshape([n]) * 0.5 + div).mean()
            }
        }
    }
}

impl Objective for SlicedScoreMatching {
    fn name(&self) -> &'static str {
        "ssm"
    }

    fn is_regression(&self) -> bool {
        false
    }

    /// [`sliced_loss`] with this configuration.
    fn loss(&self, model: &dyn Network, data: &Tensor<2>, rng: &mut Rng) -> Tensor<1> {
        sliced_loss(
            model,
            data,
            self.time,
            self.probes,
            self.noise,
            self.variance_reduced,
            rng,
        )
    }
}

impl Objective for ScoreMatching {
    fn name(&self) -> &'static str {
        match self {
            ScoreMatching::Hyvarinen(o) => o.name(),
            ScoreMatching::Sliced(o) => o.name(),
        }
    }

    fn is_regression(&self) -> bool {
        false
    }

    fn loss(&self, model: &dyn Network, data: &Tensor<2>, rng: &mut Rng) -> Tensor<1> {
        match self {
            ScoreMatching::Hyvarinen(o) => o.loss(model, data, rng),
            ScoreMatching::Sliced(o) => o.loss(model, data, rng),
        }
    }
}

/// Explicit score matching E_p‖s_θ(x) − ψ(x)‖² onto a known score ψ = ∇log p (name "esm"),
/// averaged over coordinates like every regression; the network is fed the constant `time`.
/// Hyvärinen's J equals ½ of this minus the constant ½E‖ψ‖², so both have the same minimiser.
#[derive(Debug, Clone)]
pub struct ExplicitScoreMatching<F> {
    /// The known score ψ, evaluated at `time`.
    pub score: F,
    /// Constant time input of the network (and of ψ).
    pub time: f64,
}

impl<F: VectorField> Objective for ExplicitScoreMatching<F> {
    fn name(&self) -> &'static str {
        "esm"
    }

    /// Inputs: the data points at t = `time`; targets ψ(x, `time`); no weights. Draws nothing.
    fn regression(&self, data: &Tensor<2>, _rng: &mut Rng) -> Option<RegressionBatch> {
        let t = times_like(data, self.time);
        Some(RegressionBatch {
            target: self.score.eval(data, &t),
            x: data.clone(),
            t,
            weight: None,
            condition: Condition::None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::mlp::Mlp;
    use crate::field::mlp::{linear_from, Activation, MlpConfig};
    use crate::tensor::{cpu, matrix, randn, rng, to_vec, vector, DType, Device};

    /// Σ = L Lᵀ with L = [[1.2, 0], [0.6, 0.8]]: Σ = [[1.44, 0.72], [0.72, 1.0]].
    const L: [f64; 4] = [1.2, 0.0, 0.6, 0.8];
    const SIGMA: [f64; 4] = [1.44, 0.72, 0.72, 1.0];

    fn inv2(a: [f64; 4]) -> [f64; 4] {
        let det = a[0] * a[3] - a[1] * a[2];
        [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det]
    }

    /// n draws of N(0, Σ), host row-major.
    fn gaussian_data(n: usize, seed: u64) -> Vec<f64> {
        let z = to_vec(&randn(n, 2, &cpu(), DType::F64, &mut rng(seed)));
        (0..n)
            .flat_map(|r| [L[0] * z[2 * r], L[2] * z[2 * r] + L[3] * z[2 * r + 1]])
            .collect()
    }

    /// A depth-0 Mlp on `dev`: s(x, t) = M x + w_t t + b, parameters θ = (M row-major, b).
    /// burn's Linear computes x·weight with weight `[d_in, d_out]`, so weight[j][i] = M[i][j].
    fn linear_model(theta: &[f64], dev: &Device) -> Mlp {
        let mut cfg = MlpConfig::new(2, 1, 0);
        cfg.activation = Activation::Tanh;
        let mut m = cfg.init(dev, DType::F64, &mut rng(0));
        let w = vec![theta[0], theta[2], theta[1], theta[3], 0.3, -0.2]; // last row: time weights
        m.layers[0] = linear_from(
            matrix(w, 3, 2, dev, DType::F64),
            vector(theta[4..6].to_vec(), dev, DType::F64),
        );
        m
    }

    /// ∂loss/∂θ on the autodiff device, the objective's noise drawn from `rng(seed)` each time
    /// (so probe-based objectives are the same fixed-probe function of θ at every call).
    fn gradient(obj: &dyn Objective, data: &[f64], theta: &[f64], seed: u64) -> Vec<f64> {
        let dev = cpu().autodiff();
        let model = linear_model(theta, &dev);
        let x = matrix(data.to_vec(), data.len() / 2, 2, &dev, DType::F64);
        let grads = obj.loss(&model, &x, &mut rng(seed)).backward();
        let gw = to_vec(
            &model.layers[0]
                .weight
                .val()
                .grad(&grads)
                .expect("weight gradient"),
        );
        let gb = to_vec(
            &model.layers[0]
                .bias
                .as_ref()
                .unwrap()
                .val()
                .grad(&grads)
                .expect("bias gradient"),
        );
        vec![gw[0], gw[2], gw[1], gw[3], gb[0], gb[1]]
    }

    /// The minimiser of the objective over θ, exactly: for a linear model every objective here
    /// is quadratic in θ, so g(θ) = Hθ + g₀ with H's columns g(eⱼ) − g₀, and θ* = −H⁻¹g₀.
    /// Returns K = −M at θ*.
    fn minimise(obj: &dyn Objective, data: &[f64], seed: u64) -> [f64; 4] {
        let p = 6;
        let g0 = gradient(obj, data, &[0.0; 6], seed);
        let mut a = vec![vec![0.0; p + 1]; p];
        for j in 0..p {
            let mut e = vec![0.0; p];
            e[j] = 1.0;
            let gj = gradient(obj, data, &e, seed);
            for i in 0..p {
                a[i][j] = gj[i] - g0[i];
            }
        }
        for i in 0..p {
            a[i][p] = -g0[i];
        }
        // Gaussian elimination with partial pivoting.
        for c in 0..p {
            let piv = (c..p)
                .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
                .unwrap();
            a.swap(c, piv);
            for r in 0..p {
                if r != c {
                    let f = a[r][c] / a[c][c];
                    let pivot_row = a[c].clone();
                    for (v, pv) in a[r][c..].iter_mut().zip(&pivot_row[c..]) {
                        *v -= f * pv;
                    }
                }
            }
        }
        let th: Vec<f64> = (0..p).map(|i| a[i][p] / a[i][i]).collect();
        [-th[0], -th[1], -th[2], -th[3]]
    }

    /// Centred empirical covariance (1/n).
    fn covariance(data: &[f64]) -> [f64; 4] {
        let n = data.len() / 2;
        let (m0, m1) = (
            (0..n).map(|r| data[2 * r]).sum::<f64>() / n as f64,
            (0..n).map(|r| data[2 * r + 1]).sum::<f64>() / n as f64,
        );
        let mut s = [0.0; 4];
        for r in 0..n {
            let (a, b) = (data[2 * r] - m0, data[2 * r + 1] - m1);
            s[0] += a * a;
            s[1] += a * b;
            s[2] += a * b;
            s[3] += b * b;
        }
        s.map(|v| v / n as f64)
    }

    /// Exact Hyvärinen SM on n = 4000 draws of N(0, Σ) with s(x) = −Kx + b: the empirical
    /// objective ½tr(K S Kᵀ) − tr K (after the optimal b = K x̄) is minimised exactly at
    /// K = S⁻¹ (S the centred sample covariance): matched to 1e-8. Against the population
    /// K = Σ⁻¹: the inverse sample covariance has asymptotic Var(K̂ᵢⱼ) = (Kᵢⱼ² + KᵢᵢKⱼⱼ)/n
    /// (Wishart); asserted within 4 SE per entry.
    #[test]
    fn hyvarinen_recovers_inverse_covariance() {
        let n = 4000;
        let data = gaussian_data(n, 21);
        let k_hat = minimise(&Hyvarinen::default(), &data, 0);
        let s_inv = inv2(covariance(&data));
        for i in 0..4 {
            assert!(
                (k_hat[i] - s_inv[i]).abs() < 1e-8,
                "K̂ {k_hat:?} vs S⁻¹ {s_inv:?}"
            );
        }
        eprintln!(
            "Hyvärinen: K̂ = {k_hat:?}, S⁻¹ = {s_inv:?}, Σ⁻¹ = {:?}",
            inv2(SIGMA)
        );
        let k = inv2(SIGMA);
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let se = ((k[2 * i + j].powi(2) + k[3 * i] * k[3 * j]) / n as f64).sqrt();
            assert!(
                (k_hat[2 * i + j] - k[2 * i + j]).abs() < 4.0 * se,
                "K̂[{i}{j}] = {} vs Σ⁻¹ = {} (SE {se})",
                k_hat[2 * i + j],
                k[2 * i + j]
            );
        }
    }

    /// Sliced SM (plain and variance-reduced, Rademacher and Gaussian probes) and Hutchinson
    /// Hyvärinen converge to Σ⁻¹ within sampling error. Each objective's exact minimiser (fixed
    /// probes) is computed on 8 independent chunks of 1000 points; the SE of the mean of the 8
    /// chunk estimates is sd/√8, and every entry of that mean is asserted within 4 SE of Σ⁻¹
    /// (plus the O(1/n) bias allowance 0.02). The SEs are also checked to be of the size the
    /// exact method's Wishart SE predicts (×0.5 … ×5): sliced SM adds probe noise on top.
    #[test]
    fn sliced_score_matching_recovers_inverse_covariance() {
        let k = inv2(SIGMA);
        let objs: Vec<(&str, Box<dyn Objective>)> = vec![
            (
                "ssm",
                Box::new(SlicedScoreMatching {
                    variance_reduced: false,
                    ..Default::default()
                }),
            ),
            ("ssm-vr", Box::new(SlicedScoreMatching::default())),
            (
                "ssm gauss x2",
                Box::new(SlicedScoreMatching {
                    probes: 2,
                    noise: ProbeNoise::Gaussian,
                    variance_reduced: false,
                    time: 0.0,
                }),
            ),
            (
                "sm hutchinson",
                Box::new(Hyvarinen {
                    divergence: Divergence::Hutchinson {
                        probes: 1,
                        noise: ProbeNoise::Gaussian,
                    },
                    time: 0.0,
                }),
            ),
        ];
        let chunks = 8;
        let m = 1000;
        let data: Vec<Vec<f64>> = (0..chunks)
            .map(|c| gaussian_data(m, 100 + c as u64))
            .collect();
        for (name, obj) in &objs {
            let ests: Vec<[f64; 4]> = data
                .iter()
                .enumerate()
                .map(|(c, d)| minimise(obj.as_ref(), d, 7 + c as u64))
                .collect();
            for e in 0..4 {
                let vals: Vec<f64> = ests.iter().map(|k| k[e]).collect();
                let mean = vals.iter().sum::<f64>() / chunks as f64;
                let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                    / (chunks - 1) as f64)
                    .sqrt();
                let se = sd / (chunks as f64).sqrt();
                assert!(
                    (mean - k[e]).abs() < 4.0 * se + 0.02,
                    "{name}: K[{e}] = {mean} ± {se} vs Σ⁻¹ = {}",
                    k[e]
                );
                eprintln!("{name}: K[{e}] = {mean:.4} ± {se:.4} (Σ⁻¹ {:.4})", k[e]);
                let (i, j) = (e / 2, e % 2);
                let wishart = ((k[e].powi(2) + k[3 * i] * k[3 * j]) / m as f64).sqrt();
                assert!(
                    sd > 0.5 * wishart && sd < 5.0 * wishart,
                    "{name}: chunk sd {sd} vs exact-SM sd {wishart}"
                );
            }
        }
    }

    /// J_H(s) − ½E‖s − ∇log p‖² = −½E‖∇log p‖² = −½tr Σ⁻¹ for data N(0, Σ), whatever the model.
    /// (a) Linear models s = −Kx (two non-symmetric K) on a sample whitened so that its second
    /// moment is exactly Σ: J_H and the Fisher divergence depend on the sample only through that
    /// moment, so the difference is −½tr Σ⁻¹ to rounding. (b) Two random tanh MLPs on 20 000
    /// draws: per-sample dᵢ = ∇·s + sᵀ∇log p − ½‖∇log p‖² has mean −½tr Σ⁻¹ (integration by
    /// parts); asserted within 4 SE = 4 sd(d)/√n, and the two models' differences within 4 SE of
    /// each other (paired).
    #[test]
    fn hyvarinen_is_fisher_divergence_minus_a_constant() {
        let k_true = inv2(SIGMA);
        let constant = -0.5 * (k_true[0] + k_true[3]);
        let fisher = |s: &[f64], x: &[f64]| -> Vec<f64> {
            (0..x.len() / 2)
                .map(|r| {
                    let t0 = -(k_true[0] * x[2 * r] + k_true[1] * x[2 * r + 1]);
                    let t1 = -(k_true[2] * x[2 * r] + k_true[3] * x[2 * r + 1]);
                    0.5 * ((s[2 * r] - t0).powi(2) + (s[2 * r + 1] - t1).powi(2))
                })
                .collect()
        };
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;

        // (a) whitened sample: z ← (z − z̄) C⁻ᵀ with C Cᵀ = cov(z), then x = L z.
        let n = 500;
        let z = to_vec(&randn(n, 2, &cpu(), DType::F64, &mut rng(8)));
        let m = [
            mean(&z.iter().step_by(2).copied().collect::<Vec<_>>()),
            mean(&z.iter().skip(1).step_by(2).copied().collect::<Vec<_>>()),
        ];
        let zc: Vec<f64> = z.iter().enumerate().map(|(i, v)| v - m[i % 2]).collect();
        let c = covariance(&zc);
        let c11 = c[0].sqrt();
        let c21 = c[2] / c11;
        let c22 = (c[3] - c21 * c21).sqrt();
        let mut x = Vec::with_capacity(2 * n);
        for r in 0..n {
            let w0 = zc[2 * r] / c11;
            let w1 = (zc[2 * r + 1] - c21 * w0) / c22;
            x.push(L[0] * w0);
            x.push(L[2] * w0 + L[3] * w1);
        }
        let xt = matrix(x.clone(), n, 2, &cpu(), DType::F64);
        let mut diffs = Vec::new();
        for k in [[1.0, 0.5, -0.3, 2.0], [0.2, -1.0, 0.7, 0.1]] {
            let model = linear_model(&[-k[0], -k[1], -k[2], -k[3], 0.0, 0.0], &cpu());
            let jh = to_vec(&Hyvarinen::default().loss(&model, &xt, &mut rng(0)))[0];
            let s = to_vec(&model.forward(&xt, &times_like(&xt, 0.0)));
            diffs.push(jh - mean(&fisher(&s, &x)));
        }
        for d in &diffs {
            assert!(
                (d - constant).abs() < 1e-10,
                "linear: J − F = {d} vs −½tr Σ⁻¹ = {constant}"
            );
        }

        // (b) random MLPs, large sample.
        let n = 20_000;
        let x = gaussian_data(n, 9);
        let xt = matrix(x.clone(), n, 2, &cpu(), DType::F64);
        let mut per_sample = Vec::new();
        for seed in [1, 2] {
            let mut cfg = MlpConfig::new(2, 16, 2);
            cfg.activation = Activation::Tanh;
            let model = cfg.init(&cpu(), DType::F64, &mut rng(seed));
            let jh = to_vec(&Hyvarinen::default().loss(&model, &xt, &mut rng(0)))[0];
            let (s, div) = model.forward_divergence(&xt, &times_like(&xt, 0.0), None);
            let (s, div) = (to_vec(&s), to_vec(&div));
            let f = fisher(&s, &x);
            let d: Vec<f64> = (0..n)
                .map(|r| 0.5 * (s[2 * r].powi(2) + s[2 * r + 1].powi(2)) + div[r] - f[r])
                .collect();
            assert!((mean(&d) - (jh - mean(&f))).abs() < 1e-10);
            let sd =
                (d.iter().map(|v| (v - mean(&d)).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            let se = sd / (n as f64).sqrt();
            assert!(
                (mean(&d) - constant).abs() < 4.0 * se,
                "MLP {seed}: J − F = {} vs {constant} (SE {se})",
                mean(&d)
            );
            eprintln!(
                "MLP {seed}: J − F = {:.5} ± {se:.5}, −½tr Σ⁻¹ = {constant:.5}",
                mean(&d)
            );
            per_sample.push(d);
        }
        let paired: Vec<f64> = per_sample[0]
            .iter()
            .zip(&per_sample[1])
            .map(|(a, b)| a - b)
            .collect();
        let sd = (paired
            .iter()
            .map(|v| (v - mean(&paired)).powi(2))
            .sum::<f64>()
            / (n - 1) as f64)
            .sqrt();
        assert!(
            mean(&paired).abs() < 4.0 * sd / (n as f64).sqrt(),
            "the constant differs between models"
        );
    }

    /// Explicit SM is the regression onto ψ at the data points and the constant time: for the
    /// Gaussian N(0, Σ), ψ(x) = −Σ⁻¹x row by row, every t equals `time`, and it draws no noise.
    #[test]
    fn explicit_score_matching_regresses_onto_the_known_score() {
        use crate::field::analytic::{Gaussian, GaussianMixture, MixtureScore};
        let sigma = vec![1.44, 0.72, 0.72, 1.0];
        let mix: GaussianMixture = Gaussian::new(vec![0.0, 0.0], sigma.clone()).unwrap().into();
        let esm = ExplicitScoreMatching {
            score: MixtureScore::fixed(mix),
            time: 0.25,
        };
        let x = randn(50, 2, &cpu(), DType::F64, &mut rng(4));
        let mut r = rng(5);
        let b = esm.regression(&x, &mut r).unwrap();
        assert_eq!(r, rng(5), "explicit SM draws no noise");
        let k = inv2(sigma.try_into().unwrap());
        let (xs, ys) = (to_vec(&x), to_vec(&b.target));
        for (xr, yr) in xs.chunks(2).zip(ys.chunks(2)) {
            for i in 0..2 {
                let want = -(k[2 * i] * xr[0] + k[2 * i + 1] * xr[1]);
                assert!((yr[i] - want).abs() < 1e-12);
            }
        }
        assert!(to_vec(&b.t).iter().all(|t| *t == 0.25));
        assert_eq!(esm.name(), "esm");
    }

    #[test]
    fn names_and_serde() {
        assert_eq!(ScoreMatching::from_name("sm").unwrap().name(), "sm");
        assert_eq!(ScoreMatching::from_name("SSM").unwrap().name(), "ssm");
        assert!(ScoreMatching::from_name("dsm").is_err());
        let c: ScoreMatching =
            serde_json::from_str(r#"{"method":"ssm","probes":3,"noise":"gaussian"}"#).unwrap();
        assert_eq!(
            c,
            ScoreMatching::Sliced(SlicedScoreMatching {
                probes: 3,
                noise: ProbeNoise::Gaussian,
                variance_reduced: true,
                time: 0.0
            })
        );
        let c: ScoreMatching = serde_json::from_str(r#"{"method":"sm"}"#).unwrap();
        assert_eq!(c, ScoreMatching::Hyvarinen(Hyvarinen::default()));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<ScoreMatching>(&json).unwrap(), c);
    }
}
