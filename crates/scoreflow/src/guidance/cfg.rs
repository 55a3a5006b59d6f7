//! Classifier-free guidance (Ho & Salimans 2022): ũ(x, t) = u(x, t) + g·(c(x, t) − u(x, t)) of
//! an unconditional field u and a conditional one c — two branches of one network trained with
//! label dropout, or any two fields (exact mixture scores in tests). Scale convention in
//! [`super`]: g = 1 conditional, g = 0 unconditional, w = g − 1.

use crate::error::{Error, Result};
use crate::field::network::{Condition, Conditioned, Network};
use crate::field::VectorField;
use crate::tensor::Tensor;

/// ũ = u + g·(c − u) (see the module documentation). At g = 1 it *is* c and at g = 0 it is u:
/// those evaluate one branch only (one network evaluation, bit-identical to the branch).
#[derive(Debug, Clone)]
pub struct ClassifierFree<U, C> {
    /// The unconditional field u.
    pub uncond: U,
    /// The conditional field c.
    pub cond: C,
    /// The guidance scale g.
    pub scale: f64,
}

impl<U: VectorField, C: VectorField> ClassifierFree<U, C> {
    /// u + g(c − u); errors unless g is finite and the fields share a dimension.
    pub fn new(uncond: U, cond: C, scale: f64) -> Result<Self> {
        if !scale.is_finite() {
            return Err(Error::InvalidInput(format!(
                "guidance scale must be finite (got {scale})"
            )));
        }
        if uncond.dim() != cond.dim() {
            return Err(Error::Shape(format!(
                "guidance: unconditional field of dimension {}, conditional of {}",
                uncond.dim(),
                cond.dim()
            )));
        }
        Ok(Self {
            uncond,
            cond,
            scale,
        })
    }

    /// Network evaluations per call: 1 at g ∈ {0, 1}, else 2.
    pub fn evaluations(&self) -> usize {
        if self.scale == 0.0 || self.scale == 1.0 {
            1
        } else {
            2
        }
    }
}

impl<N: Network + Clone> ClassifierFree<Conditioned<N>, Conditioned<N>> {
    /// The guided field of one class-conditional network for class k: u = net(· | ∅) (the null
    /// label), c = net(· | k). Errors on a class the network does not know.
    pub fn for_class(net: N, class: usize, scale: f64) -> Result<Self> {
        let cond = Conditioned::new(net.clone(), Condition::Class(class))?;
        Self::new(Conditioned::unconditional(net), cond, scale)
    }
}

impl<U: VectorField, C: VectorField> VectorField for ClassifierFree<U, C> {
    fn dim(&self) -> usize {
        self.cond.dim()
    }

    /// u + g(c − u).
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        let g = self.scale;
        if g == 1.0 {
            return self.cond.eval(x, t);
        }
        let u = self.uncond.eval(x, t);
        if g == 0.0 {
            return u;
        }
        let c = self.cond.eval(x, t);
        u.clone() + (c - u) * g
    }

    /// J = (1 − g) J_u + g J_c.
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, v: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let g = self.scale;
        if g == 1.0 {
            return self.cond.jvp(x, t, v);
        }
        if g == 0.0 {
            return self.uncond.jvp(x, t, v);
        }
        let (u, ju) = self.uncond.jvp(x, t, v);
        let (c, jc) = self.cond.jvp(x, t, v);
        (u.clone() + (c - u) * g, ju.clone() + (jc - ju) * g)
    }

    fn exact_jvp(&self) -> bool {
        self.uncond.exact_jvp() && self.cond.exact_jvp()
    }

    /// Jᵀw = (1 − g) J_uᵀ w + g J_cᵀ w.
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let g = self.scale;
        if g == 1.0 {
            return self.cond.vjp(x, t, w);
        }
        if g == 0.0 {
            return self.uncond.vjp(x, t, w);
        }
        let (u, gu) = self.uncond.vjp(x, t, w);
        let (c, gc) = self.cond.vjp(x, t, w);
        (u.clone() + (c - u) * g, gu.clone() + (gc - gu) * g)
    }

    /// ∇·ũ = (1 − g) ∇·u + g ∇·c.
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        let g = self.scale;
        if g == 1.0 {
            return self.cond.divergence(x, t);
        }
        if g == 0.0 {
            return self.uncond.divergence(x, t);
        }
        let (u, du) = self.uncond.divergence(x, t);
        let (c, dc) = self.cond.divergence(x, t);
        (u.clone() + (c - u) * g, du.clone() + (dc - du) * g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::mlp::MlpConfig;
    use crate::fused::FusedMlp;
    use crate::solve::{odeint, Method, OdeOptions};
    use crate::tensor::{cpu, randn, rng, times_like, to_vec, DType};

    /// CFG at the weight that means "conditional" (g = 1, Ho & Salimans' w = 0) *is* the
    /// conditional network: fields and Euler samples bit-identical; g = 0 is the unconditional
    /// (null-label) branch; any other g is u + g(c − u) = (1 + w)c − w·u with w = g − 1 (f64
    /// burn network: equal to 1e-12).
    #[test]
    fn scale_one_is_the_conditional_model_exactly() {
        let cfg = MlpConfig::new(2, 16, 2).with_classes(4);
        let fused = FusedMlp::init(&cfg, &mut rng(3));
        let x = randn(300, 2, &cpu(), DType::F32, &mut rng(4));
        let cond = Conditioned::new(fused.clone(), Condition::Class(2)).unwrap();
        let unc = Conditioned::unconditional(fused.clone());
        let one = ClassifierFree::for_class(fused.clone(), 2, 1.0).unwrap();
        let zero = ClassifierFree::for_class(fused.clone(), 2, 0.0).unwrap();
        let t = times_like(&x, 0.3);
        assert_eq!(to_vec(&one.eval(&x, &t)), to_vec(&cond.eval(&x, &t)));
        assert_eq!(to_vec(&zero.eval(&x, &t)), to_vec(&unc.eval(&x, &t)));
        assert_eq!(one.evaluations(), 1);
        let opts = OdeOptions::fixed(Method::Euler, 20);
        let a = odeint(&one, x.clone(), 0.0, 1.0, &opts).unwrap();
        let b = odeint(&cond, x.clone(), 0.0, 1.0, &opts).unwrap();
        assert_eq!(to_vec(&a.x), to_vec(&b.x));
        assert_eq!(a.nfe, b.nfe);

        let burn = fused.to_mlp(&cpu(), DType::F64);
        let x64 = randn(50, 2, &cpu(), DType::F64, &mut rng(5));
        let t64 = times_like(&x64, 0.7);
        let g = 3.5;
        let w = g - 1.0;
        let guided = ClassifierFree::for_class(burn.clone(), 1, g).unwrap();
        let c = to_vec(&Network::forward(&burn, &x64, &t64, &Condition::Class(1)));
        let u = to_vec(&Network::forward(&burn, &x64, &t64, &Condition::None));
        for ((gv, cv), uv) in to_vec(&guided.eval(&x64, &t64)).iter().zip(&c).zip(&u) {
            let ho = (1.0 + w) * cv - w * uv;
            assert!((gv - ho).abs() < 1e-12 * (1.0 + ho.abs()), "{gv} vs {ho}");
        }
        assert!(ClassifierFree::for_class(burn.clone(), 4, 1.0).is_err());
        assert!(ClassifierFree::for_class(burn, 0, f64::NAN).is_err());
    }
}
