//! Turning a network's prediction into a score under a Gaussian kernel x = m·x₀ + s·z.
//!
//! Every prediction is affine in the score, s(x) = a·x + c·out:
//! * ε (noise) prediction: s = −ε̂/s, so (a, c) = (0, −1/s);
//! * score prediction: (a, c) = (0, 1);
//! * x̂₀ (data) prediction: s = (m·x̂₀ − x)/s² (Tweedie's formula inverted), (a, c) = (−1/s², m/s²).
//!
//! Tweedie's formula E[x₀ | x] = (x + s²·∇log p(x))/m is [`tweedie_denoise`].

use std::str::FromStr;

use super::VectorField;
use crate::error::{Error, Result};
use crate::path::{GaussianPath, PerturbationKernel, Scheduler};
use crate::tensor::{col, to_vec, vector_like, Tensor};

/// A per-row coefficient c(t_b) as a `(batch, 1)` column like `t`.
pub(crate) fn per_row(t: &Tensor<1>, c: impl Fn(f64) -> f64) -> Tensor<2> {
    col(&vector_like(to_vec(t).into_iter().map(c).collect(), t))
}

/// What a network predicts; its score is s = a·x + c·out with (a, c) from
/// [`Prediction::score_coefficients`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Prediction {
    /// ε̂ ≈ E[z | x] (DDPM's noise prediction; the default).
    #[default]
    #[serde(rename = "eps")]
    #[cfg_attr(feature = "clap", value(name = "eps"))]
    Epsilon,
    /// ŝ ≈ ∇ₓ log p(x) directly.
    Score,
    /// x̂₀ ≈ E[x₀ | x] (data prediction).
    #[serde(rename = "x0")]
    #[cfg_attr(feature = "clap", value(name = "x0"))]
    Data,
}

impl Prediction {
    /// Every prediction, for help texts.
    pub const ALL: [Prediction; 3] = [Prediction::Epsilon, Prediction::Score, Prediction::Data];

    /// Lower-case name: "eps", "score", "x0".
    pub fn name(self) -> &'static str {
        match self {
            Prediction::Epsilon => "eps",
            Prediction::Score => "score",
            Prediction::Data => "x0",
        }
    }

    /// (a, c) with s = a·x + c·out under the kernel (m, s): ε (0, −1/s); score (0, 1);
    /// x̂₀ (−1/s², m/s²).
    pub fn score_coefficients(self, m: f64, s: f64) -> (f64, f64) {
        match self {
            Prediction::Epsilon => (0.0, -1.0 / s),
            Prediction::Score => (0.0, 1.0),
            Prediction::Data => (-1.0 / (s * s), m / (s * s)),
        }
    }

    /// The inverse of [`Prediction::score_coefficients`]: (a, c) with out = a·x + c·score under
    /// the kernel (m, s): ε̂ = −s·score, (0, −s); score (0, 1); x̂₀ = (x + s²·score)/m
    /// (Tweedie), (1/m, s²/m).
    pub fn from_score_coefficients(self, m: f64, s: f64) -> (f64, f64) {
        match self {
            Prediction::Epsilon => (0.0, -s),
            Prediction::Score => (0.0, 1.0),
            Prediction::Data => (1.0 / m, s * s / m),
        }
    }
}

impl FromStr for Prediction {
    type Err = Error;
    /// "eps" (or "epsilon", "noise"), "score", "x0" (or "data").
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "eps" | "epsilon" | "noise" => Ok(Prediction::Epsilon),
            "score" => Ok(Prediction::Score),
            "x0" | "data" => Ok(Prediction::Data),
            other => Err(Error::InvalidInput(format!(
                "unknown prediction target '{other}' (choose one of eps, score, x0)"
            ))),
        }
    }
}

/// The time input c(t) a noise-conditional network receives in place of t.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NoiseInput {
    /// c(t) = t, the diffusion time itself (score_sde's and `reference_dsm.py`'s; the default).
    #[default]
    Time,
    /// c(t) = ¼ ln s(t) (Karras et al. 2022's c_noise): spreads the small noise levels, where
    /// the score changes fastest, over the input range instead of crowding them near t = 0.
    #[serde(rename = "logsigma")]
    #[cfg_attr(feature = "clap", value(name = "logsigma"))]
    LogSigma,
}

impl NoiseInput {
    /// c(t) under `kernel`.
    pub fn at<K: PerturbationKernel + ?Sized>(self, kernel: &K, t: f64) -> f64 {
        match self {
            NoiseInput::Time => t,
            NoiseInput::LogSigma => 0.25 * kernel.mean_std(t).1.ln(),
        }
    }

    /// c(t_b) for every row of `t` (`t` itself for [`NoiseInput::Time`]).
    pub fn map<K: PerturbationKernel + ?Sized>(self, kernel: &K, t: &Tensor<1>) -> Tensor<1> {
        match self {
            NoiseInput::Time => t.clone(),
            NoiseInput::LogSigma => vector_like(
                to_vec(t).into_iter().map(|t| self.at(kernel, t)).collect(),
                t,
            ),
        }
    }
}

impl FromStr for NoiseInput {
    type Err = Error;
    /// "time" (or "t", "tau"), "logsigma".
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "time" | "t" | "tau" => Ok(NoiseInput::Time),
            "logsigma" | "log-sigma" => Ok(NoiseInput::LogSigma),
            other => Err(Error::InvalidInput(format!(
                "unknown noise input '{other}' (choose time or logsigma)"
            ))),
        }
    }
}

/// The score field s(x, t) = a(t)·x + c(t)·net(x, φ(t)) of a network predicting ε, the score or
/// x̂₀ under the kernel (m(t), s(t)) (e.g. an SDE marginal in diffusion time), with time input
/// φ = [`NoiseInput`] (t itself by default).
#[derive(Debug, Clone)]
pub struct ScoreField<F, K> {
    /// The network (or any field) producing the prediction.
    pub net: F,
    /// The perturbation kernel (m(t), s(t)).
    pub kernel: K,
    /// What `net` predicts.
    pub prediction: Prediction,
    /// What `net` receives as its time input.
    pub input: NoiseInput,
}

impl<F: VectorField, K: PerturbationKernel> ScoreField<F, K> {
    /// Wraps `net`'s `prediction` into a score under `kernel` (time input t).
    pub fn new(net: F, kernel: K, prediction: Prediction) -> Self {
        Self {
            net,
            kernel,
            prediction,
            input: NoiseInput::Time,
        }
    }

    /// The same field with the network fed φ(t) = `input`.
    pub fn with_input(mut self, input: NoiseInput) -> Self {
        self.input = input;
        self
    }

    fn net_time(&self, t: &Tensor<1>) -> Tensor<1> {
        self.input.map(&self.kernel, t)
    }

    fn coefs(&self, t: &Tensor<1>) -> (Tensor<2>, Tensor<2>) {
        let ac: Vec<(f64, f64)> = to_vec(t)
            .into_iter()
            .map(|t| {
                let (m, s) = self.kernel.mean_std(t);
                self.prediction.score_coefficients(m, s)
            })
            .collect();
        let a = col(&vector_like(ac.iter().map(|p| p.0).collect(), t));
        let c = col(&vector_like(ac.iter().map(|p| p.1).collect(), t));
        (a, c)
    }
}

impl<F: VectorField, K: PerturbationKernel> VectorField for ScoreField<F, K> {
    fn dim(&self) -> usize {
        self.net.dim()
    }

    /// a(t)·x + c(t)·net(x, φ(t)).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let (a, c) = self.coefs(t);
        let out = self.net.eval(x, &self.net_time(t)) * c;
        if self.prediction == Prediction::Data {
            out + x.clone() * a
        } else {
            out
        }
    }

    /// J·u = a(t)·u + c(t)·J_net·u (exact when the network's is).
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (a, c) = self.coefs(t);
        let (v, jv) = self.net.jvp(x, &self.net_time(t), u);
        (
            x.clone() * a.clone() + v * c.clone(),
            u.clone() * a + jv * c,
        )
    }

    fn exact_jvp(&self) -> bool {
        self.net.exact_jvp()
    }

    /// Jᵀw = a(t)·w + J_netᵀ(c(t)·w): one backward pass of the network.
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (a, c) = self.coefs(t);
        let (v, g) = self.net.vjp(x, &self.net_time(t), &(w.clone() * c.clone()));
        (x.clone() * a.clone() + v * c, w.clone() * a + g)
    }

    /// (s, Jᵀw(s)) with one forward and one backward pass of the network: the cotangent the
    /// network sees is c(t)·w(a x + c·out).
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let (a, c) = self.coefs(t);
        let seen = std::cell::RefCell::new(None);
        let (v, g) = self.net.vjp_with(x, &self.net_time(t), &|out| {
            let ws = w(&(x.clone() * a.clone() + out.clone() * c.clone()));
            *seen.borrow_mut() = Some(ws.clone());
            ws * c.clone()
        });
        let ws = seen.into_inner().expect("vjp_with calls its cotangent");
        (x.clone() * a.clone() + v * c, ws * a + g)
    }

    /// ∇·s = d·a(t) + c(t)·∇·net.
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let [n, d] = x.dims();
        let (a, c) = self.coefs(t);
        let (v, dv) = self.net.divergence(x, &self.net_time(t));
        let s = x.clone() * a.clone() + v * c.clone();
        (s, a.reshape([n]) * d as f64 + dv * c.reshape([n]))
    }
}

/// Tweedie's formula x̂₀ = E[x₀ | x_t] = (x + s(t)²·score)/m(t), one t per row.
pub fn tweedie_denoise<K: PerturbationKernel + ?Sized>(
    kernel: &K,
    x: &Tensor<2>,
    score: &Tensor<2>,
    t: &Tensor<1>,
) -> Tensor<2> {
    let coef = |t: f64| {
        let (m, s) = kernel.mean_std(t);
        Prediction::Data.from_score_coefficients(m, s)
    };
    x.clone() * per_row(t, |t| coef(t).0) + score.clone() * per_row(t, |t| coef(t).1)
}

/// The marginal velocity of a Gaussian path from the score of its marginal:
/// u(x, t) = (α̇/α)·x − (σ̇ − α̇σ/α)·σ·s(x, t) ([`GaussianPath::score_to_velocity`]). u is linear
/// in (x, s), so its Jacobian–vector products are the same map applied to (u, J_s u), and its
/// vector–Jacobian products to (w, J_sᵀ w). Singular at t = 0 where α = 0.
#[derive(Debug, Clone)]
pub struct ScoreToVelocity<F, S> {
    /// The score field s(x, t) of the path's marginal p_t (flow time).
    pub score: F,
    /// The path.
    pub path: GaussianPath<S>,
}

impl<F: VectorField, S: Scheduler> ScoreToVelocity<F, S> {
    /// The velocity of `path` from the score field `score`.
    pub fn new(score: F, path: GaussianPath<S>) -> Self {
        Self { score, path }
    }
}

impl<F: VectorField, S: Scheduler> VectorField for ScoreToVelocity<F, S> {
    fn dim(&self) -> usize {
        self.score.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.path
            .score_to_velocity(self.score.eval(x, t), x.clone(), t)
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (s, js) = self.score.jvp(x, t, u);
        (
            self.path.score_to_velocity(s, x.clone(), t),
            self.path.score_to_velocity(js, u.clone(), t),
        )
    }
    fn exact_jvp(&self) -> bool {
        self.score.exact_jvp()
    }
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (s, jts) = self.score.vjp(x, t, w);
        (
            self.path.score_to_velocity(s, x.clone(), t),
            self.path.score_to_velocity(jts, w.clone(), t),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::analytic::{FnKernel, Gaussian, GaussianMixture, MixtureScore};
    use crate::field::FnField;
    use crate::tensor::{cpu, matrix, times_like, DType};

    /// Under x = m x₀ + s z with x₀ ~ N(μ, v I): p = N(mμ, (m²v + s²) I), and in closed form
    /// E[z|x] = s (x − mμ)/(m²v + s²), E[x₀|x] = μ + m v (x − mμ)/(m²v + s²). Feeding these
    /// exact predictions through each wrapper gives the exact score −(x − mμ)/(m²v + s²), and
    /// Tweedie's formula recovers E[x₀|x].
    #[test]
    fn every_prediction_maps_to_the_exact_score() {
        let (mu, v) = (0.7, 0.4);
        let kernel = FnKernel(|t: f64| ((-t).exp(), (1.0 - (-2.0 * t).exp()).sqrt()));
        let var = move |t: f64| {
            let (m, s) = ((-t).exp(), (1.0 - (-2.0 * t).exp()).sqrt());
            (m, s, m * m * v + s * s)
        };
        let eps = FnField::new(2, move |x: &Tensor<2>, t: &Tensor<1>| {
            let (m, s, c) = var(to_vec(t)[0]);
            (x.clone() - m * mu) * (s / c)
        });
        let x0 = FnField::new(2, move |x: &Tensor<2>, t: &Tensor<1>| {
            let (m, _, c) = var(to_vec(t)[0]);
            (x.clone() - m * mu) * (m * v / c) + mu
        });
        let exact = MixtureScore::new(
            GaussianMixture::from(Gaussian::isotropic(vec![mu, mu], v).unwrap()),
            kernel,
        );
        let x = matrix(
            vec![0.1, -0.4, 1.5, 2.0, -1.0, 0.3],
            3,
            2,
            &cpu(),
            DType::F64,
        );
        for &t in &[0.05, 0.5, 2.0] {
            let want = to_vec(&exact.eval_at(&x, t));
            let from_eps =
                to_vec(&ScoreField::new(&eps, kernel, Prediction::Epsilon).eval_at(&x, t));
            let from_x0 = to_vec(&ScoreField::new(&x0, kernel, Prediction::Data).eval_at(&x, t));
            let from_s = to_vec(&ScoreField::new(&exact, kernel, Prediction::Score).eval_at(&x, t));
            for i in 0..want.len() {
                for (name, got) in [
                    ("eps", from_eps[i]),
                    ("x0", from_x0[i]),
                    ("score", from_s[i]),
                ] {
                    assert!(
                        (got - want[i]).abs() < 1e-10 * (1.0 + want[i].abs()),
                        "{name} t={t}: {got} vs {}",
                        want[i]
                    );
                }
            }
            let tt = times_like(&x, t);
            let den = to_vec(&tweedie_denoise(&kernel, &x, &exact.eval(&x, &tt), &tt));
            let post = to_vec(&x0.eval(&x, &tt));
            for i in 0..den.len() {
                assert!(
                    (den[i] - post[i]).abs() < 1e-10,
                    "Tweedie t={t}: {} vs {}",
                    den[i],
                    post[i]
                );
            }
        }
    }

    /// The wrapper's exact jvp and divergence follow the chain rule a·u + c·J·u: checked on the
    /// x̂₀ wrapper of an exact-score field (J known exactly) against finite differences.
    #[test]
    fn jvp_and_divergence_follow_the_chain_rule() {
        let mix = GaussianMixture::new(
            vec![0.6, 0.4],
            vec![vec![-1.0, 0.0], vec![1.0, 0.5]],
            vec![vec![0.5, 0.1, 0.1, 0.3]; 2],
        )
        .unwrap();
        let kernel = FnKernel(|t: f64| (1.0 - t, t));
        let f = ScoreField::new(MixtureScore::fixed(mix), kernel, Prediction::Data);
        assert!(f.exact_jvp());
        let x = matrix(vec![0.2, 0.1, -0.7, 0.9], 2, 2, &cpu(), DType::F64);
        let u = matrix(vec![1.0, -0.5, 0.3, 0.8], 2, 2, &cpu(), DType::F64);
        let t = times_like(&x, 0.3);
        let (_, ju) = f.jvp(&x, &t, &u);
        let h = 1e-6;
        let fd = (f.eval(&(x.clone() + u.clone() * h), &t)
            - f.eval(&(x.clone() - u.clone() * h), &t))
            / (2.0 * h);
        for (a, b) in to_vec(&ju).iter().zip(to_vec(&fd)) {
            assert!((a - b).abs() < 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
        }
        let (_, div) = f.divergence(&x, &t);
        let (_, jac) =
            FnField::new(2, |x: &Tensor<2>, t: &Tensor<1>| f.eval(x, t)).jacobian(&x, &t);
        let j = to_vec(&jac);
        for (r, dv) in to_vec(&div).iter().enumerate() {
            let tr = j[r * 4] + j[r * 4 + 3];
            assert!((dv - tr).abs() < 1e-5 * (1.0 + tr.abs()), "{dv} vs {tr}");
        }
    }

    /// `from_score_coefficients` inverts `score_coefficients`: for out = a·x + c·s and
    /// s = a'·x + c'·out, a + c·a' = 0 and c·c' = 1, for every prediction, to 1e-12.
    #[test]
    fn prediction_coefficients_invert() {
        for p in Prediction::ALL {
            for (m, s) in [(0.9, 0.2), (0.01, 0.99), (1.0, 3.0)] {
                let (a1, c1) = p.score_coefficients(m, s);
                let (a, c) = p.from_score_coefficients(m, s);
                assert!((a + c * a1).abs() < 1e-12 * (1.0 + a.abs()), "{p:?}");
                assert!((c * c1 - 1.0).abs() < 1e-12, "{p:?}");
            }
        }
    }

    #[test]
    fn prediction_names_round_trip() {
        for p in Prediction::ALL {
            assert_eq!(p.name().parse::<Prediction>().unwrap(), p);
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
        let e = "velocity".parse::<Prediction>().unwrap_err().to_string();
        assert!(e.contains("'velocity'") && e.contains("x0"), "{e}");
    }
    /// Every override of `vjp_with` (one shared forward pass) equals the default "evaluate,
    /// then VJP with the cotangent of the output": the score of a burn network (f64, 1e-10),
    /// of the fused network (f32, 1e-5 of the scale), a dense and a low-rank exact mixture
    /// score (1e-10), for the output-dependent cotangent w(s) = 2s + x.
    #[test]
    fn vjp_with_overrides_match_evaluate_then_vjp() {
        use crate::field::analytic::{LowRankMixture, MixtureScore};
        use crate::field::mlp::MlpConfig;
        use crate::fused::FusedMlp;
        use crate::sde::VpSde;
        use crate::tensor::{randn, rng, times_like};
        let sde = VpSde::default();
        let check = |f: &dyn VectorField, x: &Tensor<2>, tol: f64, what: &str| {
            let t = times_like(x, 0.4);
            let w = |s: &Tensor<2>| s.clone() * 2.0 + x.clone();
            let (v1, g1) = f.vjp_with(x, &t, &w);
            let v0 = f.eval(x, &t);
            let (_, g0) = f.vjp(x, &t, &w(&v0));
            let scale = to_vec(&g0).iter().fold(1e-12f64, |m, v| m.max(v.abs()));
            for (a, b) in to_vec(&v1).iter().zip(to_vec(&v0)) {
                assert!(
                    (a - b).abs() <= tol * scale.max(1.0),
                    "{what}: value {a} vs {b}"
                );
            }
            for (a, b) in to_vec(&g1).iter().zip(to_vec(&g0)) {
                assert!((a - b).abs() <= tol * scale, "{what}: gradient {a} vs {b}");
            }
        };
        let cfg = MlpConfig::new(3, 16, 2);
        let mlp = cfg.init(&cpu(), DType::F64, &mut rng(1));
        let x = randn(20, 3, &cpu(), DType::F64, &mut rng(2));
        let sf = ScoreField::new(mlp.clone(), sde.clone(), Prediction::Data);
        check(&sf, &x, 1e-10, "burn score field");
        let fused = FusedMlp::from_mlp(&mlp);
        let x32 = x.clone().cast(DType::F32);
        check(
            &ScoreField::new(fused, sde.clone(), Prediction::Epsilon),
            &x32,
            1e-5,
            "fused",
        );
        let mix = GaussianMixture::new(
            vec![0.4, 0.6],
            vec![vec![1.0, 0.0, -1.0], vec![-1.0, 0.5, 0.0]],
            vec![vec![1.0, 0.2, 0.0, 0.2, 0.5, 0.0, 0.0, 0.0, 0.8]; 2],
        )
        .unwrap();
        check(
            &MixtureScore::new(mix.clone(), sde.clone()),
            &x,
            1e-10,
            "dense mixture",
        );
        let lr = LowRankMixture::isotropic(
            vec![0.4, 0.6],
            vec![vec![1.0, 0.0, -1.0], vec![-1.0, 0.5, 0.0]],
            &[0.5, 1.5],
        )
        .unwrap();
        check(&MixtureScore::new(lr, sde), &x, 1e-10, "low-rank mixture");
    }
}
