//! Classifier guidance (Song et al. 2021 §I.4; Dhariwal & Nichol 2021) and Bayes' rule in
//! score form (notes §8): ∇ₓ log p(x | y) = ∇ₓ log p(x) + ∇ₓ log p(y | x), at every noise level
//! of the path or SDE:
//!
//!   s̃(x, t) = s(x, t) + γ·∇ₓ log p(y | x_t = x, t)     ([`BayesScore`]),
//!
//! with the likelihood term a time-dependent classifier's input gradient
//! ([`ClassifierGradient`], one backward pass), the exact classifier of a labelled mixture
//! (`field::analytic::LabelledMixture::class_gradient`), or an observation's likelihood
//! (`inverse`). γ = 1 is exact Bayes, γ = 0 the prior alone (see [`super`] for the scale
//! convention).

use burn::tensor::activation::softmax;

use crate::error::{Error, Result};
use crate::field::convert::NoiseInput;
use crate::field::network::{Condition, Network};
use crate::field::VectorField;
use crate::path::PerturbationKernel;
use crate::schedule::NoiseSchedule;
use crate::tensor::{matrix_like, to_vec, vector_like, Tensor};

/// s̃ = s + γ·ℓ: a score field plus a scaled log-likelihood gradient ℓ = ∇ₓ log p(y | x, t).
#[derive(Debug, Clone)]
pub struct BayesScore<S, L> {
    /// The prior score s(x, t).
    pub prior: S,
    /// The likelihood term ℓ(x, t) = ∇ₓ log p(y | x_t = x, t).
    pub likelihood: L,
    /// The scale γ.
    pub scale: f64,
}

impl<S: VectorField, L: VectorField> BayesScore<S, L> {
    /// s + γ·ℓ; errors unless γ is finite and the dimensions agree.
    pub fn new(prior: S, likelihood: L, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(Error::InvalidInput(format!(
                "guidance scale must be finite (got {scale})"
            )));
        }
        if prior.dim() != likelihood.dim() {
            return Err(Error::Shape(format!(
                "guidance: score of dimension {}, likelihood term of {}",
                prior.dim(),
                likelihood.dim()
            )));
        }
        Ok(Self {
            prior,
            likelihood,
            scale,
        })
    }
}

impl<S: VectorField, L: VectorField> VectorField for BayesScore<S, L> {
    fn dim(&self) -> usize {
        self.prior.dim()
    }

    /// s + γ·ℓ (the likelihood is not evaluated at γ = 0).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let s = self.prior.eval(x, t);
        if self.scale == 0.0 {
            return s;
        }
        s + self.likelihood.eval(x, t) * self.scale
    }

    /// J = J_s + γ J_ℓ.
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let (s, js) = self.prior.jvp(x, t, u);
        if self.scale == 0.0 {
            return (s, js);
        }
        let (l, jl) = self.likelihood.jvp(x, t, u);
        (s + l * self.scale, js + jl * self.scale)
    }

    fn exact_jvp(&self) -> bool {
        self.prior.exact_jvp() && (self.scale == 0.0 || self.likelihood.exact_jvp())
    }

    /// ∇·s̃ = ∇·s + γ ∇·ℓ.
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let (s, ds) = self.prior.divergence(x, t);
        if self.scale == 0.0 {
            return (s, ds);
        }
        let (l, dl) = self.likelihood.divergence(x, t);
        (s + l * self.scale, ds + dl * self.scale)
    }
}

/// ∇ₓ log p_φ(y = k | x, t) = Jᵀ(e_k − softmax f_φ(x, c(t))) of a time-dependent classifier
/// network f_φ with K logits (`objective::classifier`), by one forward and one backward pass
/// ([`Network::vjp_with`]); t is the generative model's time, c(t) the classifier's input
/// under `kernel`.
#[derive(Debug, Clone)]
pub struct ClassifierGradient<N, K> {
    /// The classifier network (outputs = K logits).
    pub net: N,
    /// The class k whose log-probability is differentiated.
    pub class: usize,
    /// The kernel the classifier was trained under (for its time input).
    pub kernel: K,
    /// The classifier's time input.
    pub input: NoiseInput,
}

impl<N: Network, K: PerturbationKernel> ClassifierGradient<N, K> {
    /// The gradient of log p(k | x, t); errors unless k < K (the number of logits).
    pub fn new(net: N, class: usize, kernel: K, input: NoiseInput) -> Result<Self> {
        let k = net.architecture().as_mlp().map_or(0, |c| c.out_dim());
        if class >= k {
            return Err(Error::InvalidInput(format!(
                "class {class} is out of range: the classifier knows classes 0..{}",
                k.saturating_sub(1)
            )));
        }
        Ok(Self {
            net,
            class,
            kernel,
            input,
        })
    }
}

impl<N: Network, K: PerturbationKernel> VectorField for ClassifierGradient<N, K> {
    fn dim(&self) -> usize {
        self.net.dim()
    }

    /// Jᵀ(e_k − softmax(logits)) (2 network evaluations' worth: forward + backward).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let tau = self.input.map(&self.kernel, t);
        let class = self.class;
        let (_, g) = self.net.vjp_with(x, &tau, &Condition::None, &|logits| {
            let [n, k] = logits.dims();
            let mut e = vec![0.0; n * k];
            (0..n).for_each(|r| e[r * k + class] = 1.0);
            matrix_like(e, n, k, logits) - softmax(logits.clone(), 1)
        });
        g
    }
}

/// ∇ₓ log p(y | x_t = x, t) under a kernel A (m_A(t), s_A(t)) from the gradient g_B of a
/// classifier trained under another kernel B of the same data, a [`NoiseSchedule`] (any SDE):
/// x_t = m_A x₁ + s_A z scaled by c has the law of x_τ^B when λ_B(τ) = λ_A(t) (λ = ln m/s,
/// the log signal-to-noise ratio) and c = m_B(τ)/m_A(t) = s_B(τ)/s_A(t), so
///
///   p_A(y | x, t) = p_B(y | c·x, τ),  ∇ₓ log p_A(y | x, t) = c·g_B(c·x, τ),
///
/// exactly (e.g. the VP SDE and the straight flow path: λ = ln(t/(1 − t))). Where λ_A(t) lies
/// outside B's range [λ_B(T), λ_B(0)], τ is clamped to B's end and c = √((m_B² + s_B²)/(m_A² +
/// s_A²)) (= the ratio above wherever the λ agree, finite at a flow's t = 0): the nearest noise
/// level B knows, an approximation only there (at the noise end the classifier is ≈ its prior
/// and its gradient ≈ 0).
#[derive(Debug, Clone)]
pub struct NoiseLevelMatched<G, A, B> {
    /// The classifier's gradient g_B(x, τ) in B's time.
    pub grad: G,
    /// The model's kernel A, in its time t.
    pub model: A,
    /// The classifier's schedule B.
    pub classifier: B,
}

impl<G: VectorField, A: PerturbationKernel, B: NoiseSchedule> NoiseLevelMatched<G, A, B> {
    /// (τ, c) for the model time t.
    pub fn level(&self, t: f64) -> (f64, f64) {
        let (ma, sa) = self.model.mean_std(t);
        let tau = self.classifier.time_of_lambda(ma.ln() - sa.ln());
        let (mb, sb) = self.classifier.mean_std(tau);
        (tau, ((mb * mb + sb * sb) / (ma * ma + sa * sa)).sqrt())
    }
}

impl<G: VectorField, A: PerturbationKernel + Sync, B: NoiseSchedule> VectorField
    for NoiseLevelMatched<G, A, B>
{
    fn dim(&self) -> usize {
        self.grad.dim()
    }

    /// c·g_B(c·x, τ(t)) (levels computed once per distinct t in a batch).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let mut last: Option<(f64, (f64, f64))> = None;
        let (taus, cs): (Vec<f64>, Vec<f64>) = to_vec(t)
            .into_iter()
            .map(|t| match last {
                Some((u, l)) if u == t => l,
                _ => {
                    let l = self.level(t);
                    last = Some((t, l));
                    l
                }
            })
            .unzip();
        let c = vector_like(cs, t).unsqueeze_dim(1);
        let tau = vector_like(taus, t);
        self.grad.eval(&(x.clone() * c.clone()), &tau) * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::field::analytic::LabelledMixture;
    use crate::field::mlp::MlpConfig;
    use crate::path::{CondOt, GaussianPath};
    use crate::sde::VpSde;
    use crate::tensor::{cpu, randn, rng, to_vec, vector, DType};

    /// Classifier guidance at γ = 1 with the *exact* classifier p(k | x_t, t) of labelled
    /// 8gaussians and its exact unconditional score is the exact conditional score (the class
    /// sub-mixture's), to float precision (1e-9 relative, f64), at VP times from near data to
    /// the prior and at flow times; and at γ = 0 the unconditional score itself.
    #[test]
    fn exact_classifier_guidance_is_the_exact_conditional_score() {
        let x = randn(64, 2, &cpu(), DType::F64, &mut rng(1)) * 2.5;
        let check = |guided: Vec<f64>, want: Vec<f64>, what: &str| {
            for (a, b) in guided.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{what}: {a} vs {b}");
            }
        };
        let ts: Vec<f64> = (0..64).map(|i| 0.01 + 0.98 * i as f64 / 63.0).collect();
        let t = vector(ts, &cpu(), DType::F64);
        let vp = LabelledMixture::for_dataset(Dataset::EightGaussians, VpSde::default()).unwrap();
        let flow = LabelledMixture::for_dataset(Dataset::EightGaussians, GaussianPath::new(CondOt))
            .unwrap();
        for k in [0, 3, 7] {
            let g = BayesScore::new(vp.score.clone(), vp.class_gradient(k).unwrap(), 1.0).unwrap();
            check(
                to_vec(&g.eval(&x, &t)),
                to_vec(&vp.class_score(k).unwrap().eval(&x, &t)),
                "vp",
            );
            let g =
                BayesScore::new(flow.score.clone(), flow.class_gradient(k).unwrap(), 1.0).unwrap();
            check(
                to_vec(&g.eval(&x, &t)),
                to_vec(&flow.class_score(k).unwrap().eval(&x, &t)),
                "flow",
            );
        }
        let g0 = BayesScore::new(vp.score.clone(), vp.class_gradient(1).unwrap(), 0.0).unwrap();
        assert_eq!(to_vec(&g0.eval(&x, &t)), to_vec(&vp.score.eval(&x, &t)));
        assert!(vp.class_gradient(8).is_err());
    }

    /// A network classifier's gradient Jᵀ(e_k − softmax f) is ∇ₓ log softmax(f)_k: central
    /// differences of the f64 log-probability (h = 1e-5, error O(h²) ≈ 1e-10) agree to 1e-7.
    #[test]
    fn network_classifier_gradient_is_the_log_probability_gradient() {
        let cfg = MlpConfig::new(2, 16, 2).with_outputs(5);
        let net = cfg.init(&cpu(), DType::F64, &mut rng(6));
        let sde = VpSde::default();
        let grad =
            ClassifierGradient::new(net.clone(), 3, sde.clone(), NoiseInput::LogSigma).unwrap();
        let x = randn(7, 2, &cpu(), DType::F64, &mut rng(7));
        let t = vector(vec![0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0], &cpu(), DType::F64);
        let g = to_vec(&grad.eval(&x, &t));
        let logp = |x: &Tensor<2>| {
            let tau = NoiseInput::LogSigma.map(&sde, &t);
            let l = to_vec(&burn::tensor::activation::log_softmax(
                net.forward(x, &tau),
                1,
            ));
            (0..7).map(|r| l[r * 5 + 3]).collect::<Vec<_>>()
        };
        let h = 1e-5;
        for i in 0..2 {
            let e = crate::field::basis_like(&x, i) * h;
            let (p, m) = (logp(&(x.clone() + e.clone())), logp(&(x.clone() - e)));
            for r in 0..7 {
                let fd = (p[r] - m[r]) / (2.0 * h);
                assert!((g[r * 2 + i] - fd).abs() < 1e-7, "{} vs {fd}", g[r * 2 + i]);
            }
        }
        assert!(ClassifierGradient::new(net, 5, sde, NoiseInput::Time).is_err());
    }
}
