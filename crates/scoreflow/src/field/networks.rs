//! The [`Network`] implementations of the crate's architectures: the burn [`Mlp`] (the
//! reference, and the one that trains on any device), the fused CPU [`FusedMlp`] (the fast
//! path for sampling MLPs on the CPU) and the image [`Unet`]. Kept apart from the networks themselves so that `mlp`
//! and `fused` do not depend on the trait or on the list of architectures.
//!
//! Both honour the [`Condition`]: a class-conditional MLP (`MlpConfig::classes` = K > 0) gets
//! the one-hot of the class, or of the null label K for [`Condition::None`] and dropped rows;
//! an unconditional one accepts only the null condition.

use super::mlp::Mlp;
use super::network::{Architecture, Condition, Network};
use super::unet::Unet;
use crate::fused::FusedMlp;
use crate::state::{StateDict, StoredDType};
use crate::tensor::{DType, Tensor};

/// The one-hot indices of `c` for an MLP of K = `classes` classes and `rows` rows.
///
/// # Panics
/// (debug builds) On a class given to an unconditional network: conditions are validated where
/// they enter ([`Condition::validate`], `Conditioned::new`).
fn label_rows(c: &Condition, classes: usize, rows: usize) -> Option<Vec<usize>> {
    debug_assert!(
        classes > 0 || (0..rows).all(|i| c.label(i).is_none()),
        "an unconditional MLP got a class condition"
    );
    c.label_rows(classes, rows)
}

/// The burn MLP as a [`Network`].
impl Network for Mlp {
    fn architecture(&self) -> Architecture {
        Architecture::Mlp(self.config.clone())
    }
    fn dim(&self) -> usize {
        self.config.dim
    }
    fn classes(&self) -> usize {
        self.config.classes
    }
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
        let l = label_rows(c, self.config.classes, x.dims()[0]);
        self.forward_given(x, t, l.as_deref())
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config.classes, x.dims()[0]);
        self.forward_jvp(x, t, l.as_deref(), u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
        let l = label_rows(c, self.config.classes, x.dims()[0]);
        self.forward_divergence(x, t, l.as_deref())
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config.classes, x.dims()[0]);
        self.forward_vjp(x, t, l.as_deref(), w)
    }
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config.classes, x.dims()[0]);
        self.forward_vjp_with(x, t, l.as_deref(), w)
    }
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, "", Some(StoredDType::F32));
        sd
    }
}

/// The fused MLP as a [`Network`].
impl Network for FusedMlp {
    fn architecture(&self) -> Architecture {
        Architecture::Mlp(self.config().clone())
    }
    fn dim(&self) -> usize {
        self.config().dim
    }
    fn classes(&self) -> usize {
        self.config().classes
    }
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
        let l = label_rows(c, self.config().classes, x.dims()[0]);
        self.eval_given(x, t, l.as_deref())
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config().classes, x.dims()[0]);
        self.jvp_given(x, t, l.as_deref(), u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
        let l = label_rows(c, self.config().classes, x.dims()[0]);
        self.divergence_given(x, t, l.as_deref())
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config().classes, x.dims()[0]);
        self.vjp_given(x, t, l.as_deref(), &|_| w.clone())
    }
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let l = label_rows(c, self.config().classes, x.dims()[0]);
        self.vjp_given(x, t, l.as_deref(), w)
    }
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.to_mlp(&crate::tensor::cpu(), DType::F32).write_state(
            &mut sd,
            "",
            Some(StoredDType::F32),
        );
        sd
    }
}

/// Rows of stacked tangents per U-Net pass in [`Network::divergence`]: the d basis directions go
/// through in chunks of ⌊ROWS/n⌋ (at least one), bounding the memory of one pass.
const UNET_TANGENT_ROWS: usize = 2048;

/// The labels of a condition, one per row of `x` (`None` rows: the null label `null`, the
/// network's class count K).
fn unet_labels(c: &Condition, x: &Tensor<2>, null: usize) -> Option<Vec<usize>> {
    let n = x.dims()[0];
    match c {
        Condition::None => None,
        Condition::Class(k) => Some(vec![*k; n]),
        Condition::Labels(l) => Some(l.iter().map(|y| y.unwrap_or(null)).collect()),
    }
}

/// The U-Net as a [`Network`]: exact forward-mode JVPs and divergence (stacked tangents,
/// differentiable in the weights, so Hyvärinen and sliced score matching train it), and the
/// VJP by one autodiff backward pass. Conditioned on a class when built with `classes > 0`.
impl Network for Unet {
    fn architecture(&self) -> Architecture {
        Architecture::Unet(self.config.clone())
    }
    fn dim(&self) -> usize {
        self.config.dim()
    }
    fn classes(&self) -> usize {
        self.config.classes
    }
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
        Unet::forward(
            self,
            x,
            t,
            unet_labels(c, x, self.config.classes).as_deref(),
        )
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_jvp(x, t, unet_labels(c, x, self.config.classes).as_deref(), u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0].max(1);
        let labels = unet_labels(c, x, self.config.classes);
        self.forward_divergence(x, t, labels.as_deref(), (UNET_TANGENT_ROWS / n).max(1))
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp(x, t, unet_labels(c, x, self.config.classes).as_deref(), w)
    }
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, "", Some(StoredDType::F32));
        sd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::divergence::{hutchinson_divergence, hutchinson_probes, ProbeNoise};
    use crate::field::network::Conditioned;
    use crate::field::unet::UnetConfig;
    use crate::field::VectorField;
    use crate::tensor::{cpu, randn, rng, to_vec, vector};

    /// Hutchinson against exact on a U-Net over 1 × 8 × 8 images (d = 64): for each of 4
    /// points, k = 256 Rademacher probes give estimates εᵀJε whose mean is unbiased for ∇·v with
    /// standard error s/√k (s the sample sd over probes); by the CLT the mean lies within 4 SE
    /// of the exact divergence (d basis tangents) except with probability 6·10⁻⁵ per point.
    /// The SE must also be non-trivial (the test would be vacuous if J were diagonal).
    #[test]
    fn unet_hutchinson_divergence_agrees_with_exact() {
        let cfg = UnetConfig {
            groups: 4,
            ..UnetConfig::new(1, 8, 8, 8, &[1, 2])
        };
        let mut r = rng(11);
        let net = cfg.init(&cpu(), DType::F64, &mut r).unwrap();
        let x = randn(4, 64, &cpu(), DType::F64, &mut r);
        let t = vector(vec![0.2, 0.4, 0.6, 0.8], &cpu(), DType::F64);
        let field = Conditioned::unconditional(&net);
        let (_, exact) = VectorField::divergence(&field, &x, &t);
        let k = 256;
        let probes = hutchinson_probes(&x, k, ProbeNoise::Rademacher, &mut r);
        let (_, est) = hutchinson_divergence(&field, &x, &t, &probes);
        let est = to_vec(&est); // (n, k) row-major
        for (i, ex) in to_vec(&exact).iter().enumerate() {
            let row = &est[i * k..(i + 1) * k];
            let mean = row.iter().sum::<f64>() / k as f64;
            let sd = (row.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt();
            let se = sd / (k as f64).sqrt();
            assert!(se > 1e-3 * (1.0 + ex.abs()), "point {i}: trivial SE {se}");
            assert!(
                (mean - ex).abs() < 4.0 * se,
                "point {i}: Hutchinson {mean} ± {se} vs exact {ex}"
            );
        }
    }
}
