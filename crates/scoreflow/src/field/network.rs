//! Neural networks as vector fields: the [`Network`] trait every trainable architecture
//! implements, the [`Condition`] a network may take besides (x, t), and the serialisable
//! [`Architecture`] a run directory records. The networks implement the trait in
//! `field::networks`, so that they do not depend on the list of architectures.
//!
//! A network computes v_θ(x, t | c) for a batch: `x` is `(batch, d)`, `t` is `(batch,)` (the
//! network's own time input: flow time, diffusion time or ¼ ln σ — what it means is the model's
//! business, see the `model` module) and `c` is an optional class label per row. With a fixed
//! condition a network is a [`VectorField`] ([`Conditioned`]), so every sampler, likelihood and
//! diagnostic works on it unchanged.
//!
//! Besides the forward pass a network gives Jacobian–vector products J·u (forward-mode
//! tangents: exact divergences and Hyvärinen score matching) and vector–Jacobian products Jᵀw
//! (reverse mode: the input gradient ∇ₓ⟨w, v⟩ that posterior sampling and classifier guidance
//! need, at the cost of one backward pass whatever d is).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::mlp::MlpConfig;
use super::unet::UnetConfig;
use super::VectorField;
use crate::error::{Error, Result};
use crate::state::StateDict;
use crate::tensor::Tensor;

/// What a network is conditioned on besides (x, t).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Condition {
    /// No condition: an unconditional network, or the "null" label of a network trained with
    /// label dropout (classifier-free guidance's unconditional branch).
    #[default]
    None,
    /// The same class label k ∈ {0, …, K − 1} for every row.
    Class(usize),
    /// One label per row: a class, or `None` for the null label (label dropout's rows).
    Labels(Arc<[Option<usize>]>),
}

impl Condition {
    /// One class label per row.
    pub fn labels(labels: impl IntoIterator<Item = usize>) -> Self {
        Condition::Labels(labels.into_iter().map(Some).collect())
    }

    /// Errors unless every label is below `classes` (a network with `classes = 0` accepts only
    /// [`Condition::None`]) and, for per-row labels, there is one per row of a `rows`-row batch
    /// (`rows = None` skips that check).
    pub fn validate(&self, classes: usize, rows: Option<usize>) -> Result<()> {
        let check = |k: usize| {
            if k < classes {
                Ok(())
            } else if classes == 0 {
                Err(Error::InvalidInput(format!(
                    "class {k} asked of an unconditional network (train with class labels to sample by class)"
                )))
            } else {
                Err(Error::InvalidInput(format!(
                    "class {k} is out of range: the network knows classes 0..{}",
                    classes - 1
                )))
            }
        };
        match self {
            Condition::None => Ok(()),
            Condition::Class(k) => check(*k),
            Condition::Labels(l) => {
                if let Some(n) = rows {
                    if l.len() != n {
                        return Err(Error::Shape(format!(
                            "{} labels for a batch of {n} rows",
                            l.len()
                        )));
                    }
                }
                l.iter().flatten().try_for_each(|&k| check(k))
            }
        }
    }

    /// The label of row `i`, or `None` for the null condition.
    pub fn label(&self, i: usize) -> Option<usize> {
        match self {
            Condition::None => None,
            Condition::Class(k) => Some(*k),
            Condition::Labels(l) => l[i],
        }
    }

    /// The one-hot indices of a network with K = `classes` classes for a batch of `rows`:
    /// the class, or K for the null label; `None` when every row is null (or K = 0).
    pub fn label_rows(&self, classes: usize, rows: usize) -> Option<Vec<usize>> {
        if classes == 0 {
            return None;
        }
        match self {
            Condition::None => None,
            Condition::Class(k) => Some(vec![*k; rows]),
            Condition::Labels(l) => Some(l.iter().map(|o| o.unwrap_or(classes)).collect()),
        }
    }
}

/// The architecture of a network, as recorded in a run's `meta.json` (`"arch"` tag).
///
/// Runs written before the tag existed stored a bare [`MlpConfig`]; they still load as
/// [`Architecture::Mlp`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
pub enum Architecture {
    /// The multilayer perceptron [x, φ(t)] → width^depth → d ([`super::mlp::Mlp`]).
    Mlp(MlpConfig),
    /// The image U-Net on R^(C·H·W) ([`super::unet::Unet`]).
    Unet(UnetConfig),
}

/// `meta.json`'s `model`: tagged, or a legacy bare MLP configuration.
#[derive(Deserialize)]
#[serde(untagged)]
enum ArchitectureRepr {
    Tagged(TaggedArchitecture),
    Legacy(MlpConfig),
}

#[derive(Deserialize)]
#[serde(tag = "arch", rename_all = "lowercase")]
enum TaggedArchitecture {
    Mlp(MlpConfig),
    Unet(UnetConfig),
}

impl<'de> Deserialize<'de> for Architecture {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match ArchitectureRepr::deserialize(d)? {
            ArchitectureRepr::Tagged(TaggedArchitecture::Mlp(c)) | ArchitectureRepr::Legacy(c) => {
                Architecture::Mlp(c)
            }
            ArchitectureRepr::Tagged(TaggedArchitecture::Unet(c)) => Architecture::Unet(c),
        })
    }
}

impl Architecture {
    /// Data dimension d (input and output of the field).
    pub fn dim(&self) -> usize {
        match self {
            Architecture::Mlp(c) => c.dim,
            Architecture::Unet(c) => c.dim(),
        }
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        match self {
            Architecture::Mlp(c) => c.num_params(),
            Architecture::Unet(c) => c.num_params(),
        }
    }

    /// A one-line description, e.g. `MLP 3→128×4→2 (silu)`.
    pub fn describe(&self) -> String {
        match self {
            Architecture::Mlp(c) => format!(
                "MLP {}→{}×{}→{} ({}{})",
                c.input_dim(),
                c.width,
                c.depth,
                c.out_dim(),
                c.activation.name(),
                if c.classes > 0 {
                    format!(", {} classes", c.classes)
                } else {
                    String::new()
                }
            ),
            Architecture::Unet(c) => c.describe(),
        }
    }

    /// The MLP configuration, when the network is an MLP.
    pub fn as_mlp(&self) -> Option<&MlpConfig> {
        match self {
            Architecture::Mlp(c) => Some(c),
            _ => None,
        }
    }

    /// The U-Net configuration, when the network is a U-Net.
    pub fn as_unet(&self) -> Option<&UnetConfig> {
        match self {
            Architecture::Unet(c) => Some(c),
            _ => None,
        }
    }
}

/// A parametrised field v_θ(x, t | c) (see the module documentation).
///
/// Shapes are a contract, not input: a batch of the wrong width is a programming error and
/// panics (as burn does); user input is checked where it enters (e.g. [`Condition::validate`]).
pub trait Network: Send + Sync {
    /// The architecture (what `meta.json` records).
    fn architecture(&self) -> Architecture;

    /// Data dimension d.
    fn dim(&self) -> usize {
        self.architecture().dim()
    }

    /// Number of classes K the network is conditioned on (0 = unconditional).
    fn classes(&self) -> usize {
        0
    }

    /// v_θ(x, t | c).
    fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2>;

    /// (v, J·u) with J = ∂v/∂x. Default: central difference, as [`VectorField::jvp`].
    fn jvp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        u: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        super::fd_jvp(|y| self.forward(y, t, c), x, u)
    }

    /// True when [`Network::jvp`] is exact.
    fn exact_jvp(&self) -> bool {
        false
    }

    /// (v, ∇·v) exactly. Default: d Jacobian–vector products.
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
        super::divergence_by_jvp(x, |u| self.jvp(x, t, c, u))
    }

    /// (v, Jᵀ·w): the input gradient ∇ₓ⟨w, v_θ(x, t | c)⟩ row by row. Default: the full
    /// Jacobian by d JVPs (exact networks override it with one backward pass).
    fn vjp(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        super::vjp_by_jvp(x, w, |u| self.jvp(x, t, c, u))
    }

    /// (v, Jᵀ·w(v)) for a cotangent computed from the output (see
    /// [`VectorField::vjp_with`]). Default: forward, then [`Network::vjp`].
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        c: &Condition,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let v = self.forward(x, t, c);
        let (_, g) = self.vjp(x, t, c, &w(&v));
        (v, g)
    }

    /// The weights under PyTorch-compatible names, as f32 (what `model.safetensors` holds).
    fn state_dict(&self) -> StateDict;
}

macro_rules! forward_network {
    ($($ptr:ty),*) => {$(
        impl<N: Network + ?Sized> Network for $ptr {
            fn architecture(&self) -> Architecture { (**self).architecture() }
            fn dim(&self) -> usize { (**self).dim() }
            fn classes(&self) -> usize { (**self).classes() }
            fn forward(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> Tensor<2> {
                (**self).forward(x, t, c)
            }
            fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
                (**self).jvp(x, t, c, u)
            }
            fn exact_jvp(&self) -> bool { (**self).exact_jvp() }
            fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition) -> (Tensor<2>, Tensor<1>) {
                (**self).divergence(x, t, c)
            }
            fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, c: &Condition, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
                (**self).vjp(x, t, c, w)
            }
            fn vjp_with(
                &self,
                x: &Tensor<2>,
                t: &Tensor<1>,
                c: &Condition,
                w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
            ) -> (Tensor<2>, Tensor<2>) {
                (**self).vjp_with(x, t, c, w)
            }
            fn state_dict(&self) -> StateDict { (**self).state_dict() }
        }
    )*};
}
forward_network!(&N, Box<N>, Arc<N>);

/// A network with its condition fixed: the [`VectorField`] x ↦ v_θ(x, t | c).
#[derive(Debug, Clone)]
pub struct Conditioned<N> {
    /// The network.
    pub net: N,
    /// The fixed condition.
    pub condition: Condition,
}

impl<N: Network> Conditioned<N> {
    /// `net` with condition `c`, checked against the network's classes.
    pub fn new(net: N, condition: Condition) -> Result<Self> {
        condition.validate(net.classes(), None)?;
        Ok(Self { net, condition })
    }

    /// `net` with no condition (always valid).
    pub fn unconditional(net: N) -> Self {
        Self {
            net,
            condition: Condition::None,
        }
    }
}

impl<N: Network> VectorField for Conditioned<N> {
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.net.forward(x, t, &self.condition)
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.net.jvp(x, t, &self.condition, u)
    }
    fn exact_jvp(&self) -> bool {
        self.net.exact_jvp()
    }
    fn divergence(&self, x: &Tensor<2>, t: &Tensor<1>) -> (Tensor<2>, Tensor<1>) {
        self.net.divergence(x, t, &self.condition)
    }
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        self.net.vjp(x, t, &self.condition, w)
    }
    fn vjp_with(
        &self,
        x: &Tensor<2>,
        t: &Tensor<1>,
        w: &dyn Fn(&Tensor<2>) -> Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        self.net.vjp_with(x, t, &self.condition, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `meta.json` written before architectures were tagged holds a bare MLP configuration; it
    /// reads as `Architecture::Mlp`, and a tagged one round-trips.
    #[test]
    fn legacy_and_tagged_architectures_deserialise() {
        let legacy =
            r#"{"dim": 2, "width": 16, "depth": 4, "activation": "silu", "time": {"kind": "raw"}}"#;
        let a: Architecture = serde_json::from_str(legacy).unwrap();
        assert_eq!(a, Architecture::Mlp(MlpConfig::new(2, 16, 4)));
        let tagged = serde_json::to_value(&a).unwrap();
        assert_eq!(tagged["arch"], "mlp");
        let back: Architecture = serde_json::from_value(tagged).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn conditions_are_validated() {
        assert!(Condition::None.validate(0, Some(3)).is_ok());
        assert!(Condition::Class(0).validate(0, None).is_err());
        assert!(Condition::Class(2).validate(3, None).is_ok());
        assert!(Condition::Class(3).validate(3, None).is_err());
        let l = Condition::labels([0, 1, 2]);
        assert!(l.validate(3, Some(3)).is_ok());
        assert!(l.validate(3, Some(4)).is_err());
        assert!(l.validate(2, Some(3)).is_err());
        let dropped = Condition::Labels(vec![Some(1), None].into());
        assert!(dropped.validate(2, Some(2)).is_ok());
        assert_eq!(dropped.label_rows(2, 2), Some(vec![1, 2]));
        assert_eq!(Condition::Class(1).label_rows(3, 2), Some(vec![1, 1]));
        assert_eq!(Condition::None.label_rows(3, 2), None);
    }
}
