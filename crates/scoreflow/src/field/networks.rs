//! The [`Network`] implementations of the crate's architectures: the burn [`Mlp`] (the
//! reference, and the one that trains on any device), the fused CPU [`FusedMlp`] (the fast
//! path for sampling MLPs on the CPU) and the image [`Unet`]. Kept apart from the networks themselves so that `mlp`
//! and `fused` do not depend on the trait or on the list of architectures.

use super::mlp::Mlp;
use super::network::{Architecture, Condition, Network};
use super::unet::Unet;
use super::VectorField;
use crate::fused::FusedMlp;
use crate::state::{StateDict, StoredDType};
use crate::tensor::{DType, Tensor};

/// The burn MLP as a [`Network`]: unconditional (it accepts only [`Condition::None`]).
impl Network for Mlp {
    fn architecture(&self) -> Architecture {
        Architecture::Mlp(self.config.clone())
    }
    fn dim(&self) -> usize {
        self.config.dim
    }
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
        debug_assert_eq!(*c, Condition::None, "an unconditional MLP got a condition");
        Mlp::forward(self, x, t)
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        _c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_jvp(x, t, u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, _c: &Condition) -> (Tensor<2>, Tensor<1>) {
        self.forward_divergence(x, t)
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        _c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp(x, t, w)
    }
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, "", Some(StoredDType::F32));
        sd
    }
}

/// The fused MLP as a [`Network`]: unconditional (it accepts only [`Condition::None`]).
impl Network for FusedMlp {
    fn architecture(&self) -> Architecture {
        Architecture::Mlp(self.config().clone())
    }
    fn dim(&self) -> usize {
        self.config().dim
    }
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
        debug_assert_eq!(*c, Condition::None, "an unconditional MLP got a condition");
        VectorField::eval(self, x, t)
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        _c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        VectorField::jvp(self, x, t, u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, _c: &Condition) -> (Tensor<2>, Tensor<1>) {
        VectorField::divergence(self, x, t)
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        _c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        VectorField::vjp(self, x, t, w)
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
        Unet::forward(self, x, t, c)
    }
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_jvp(x, t, c, u)
    }
    fn exact_jvp(&self) -> bool {
        true
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
        let n = x.dims()[0].max(1);
        self.forward_divergence(x, t, c, (UNET_TANGENT_ROWS / n).max(1))
    }
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.forward_vjp(x, t, c, w)
    }
    fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        self.write_state(&mut sd, "", Some(StoredDType::F32));
        sd
    }
}
