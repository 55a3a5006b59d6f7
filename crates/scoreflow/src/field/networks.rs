//! The [`Network`] implementations of the crate's architectures: the burn [`Mlp`] (the
//! reference, and the one that trains on any device) and the fused CPU [`FusedMlp`] (the fast
//! path for sampling MLPs on the CPU). Kept apart from the networks themselves so that `mlp`
//! and `fused` do not depend on the trait or on the list of architectures.
//!
//! Both honour the [`Condition`]: a class-conditional MLP (`MlpConfig::classes` = K > 0) gets
//! the one-hot of the class, or of the null label K for [`Condition::None`] and dropped rows;
//! an unconditional one accepts only the null condition.

use super::mlp::Mlp;
use super::network::{Architecture, Condition, Network};
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
