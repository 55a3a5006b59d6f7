//! A field of normalised coordinates seen in data coordinates.

use super::super::field::VectorField;
use crate::tensor::{matrix_like, Tensor};

/// A field of normalised coordinates z = (x − μ)/σ seen in data coordinates x (chain rule):
/// a velocity transforms as v_x(x) = σ ⊙ v_z(z), with J_x u = σ ⊙ J_z(u/σ) and
/// J_xᵀ w = J_zᵀ(σ ⊙ w)/σ; a score (a gradient of log p, whose density also picks up the
/// constant Jacobian 1/Πσ) as s_x(x) = s_z(z)/σ, with J_x u = J_z(u/σ)/σ and
/// J_xᵀ w = J_zᵀ(w/σ)/σ.
pub struct DataUnits<F> {
    /// The field in normalised units.
    pub field: F,
    /// μ.
    pub mean: Vec<f64>,
    /// σ.
    pub std: Vec<f64>,
    /// True for a velocity, false for a score.
    pub velocity: bool,
}

impl<F: VectorField> DataUnits<F> {
    fn row(&self, v: &[f64], like: &Tensor<2>) -> Tensor<2> {
        matrix_like(v.to_vec(), 1, v.len(), like)
    }
    fn z(&self, x: &Tensor<2>) -> Tensor<2> {
        (x.clone() - self.row(&self.mean, x)) / self.row(&self.std, x)
    }
    /// The output factor: ×σ for a velocity, ÷σ for a score.
    fn out_scale(&self, v: Tensor<2>) -> Tensor<2> {
        let s = self.row(&self.std, &v);
        if self.velocity {
            v * s
        } else {
            v / s
        }
    }
}

impl<F: VectorField> VectorField for DataUnits<F> {
    fn dim(&self) -> usize {
        self.field.dim()
    }
    fn eval(&self, x: &Tensor<2>, t: &Tensor<1>) -> Tensor<2> {
        self.out_scale(self.field.eval(&self.z(x), t))
    }
    fn jvp(&self, x: &Tensor<2>, t: &Tensor<1>, u: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let s = self.row(&self.std, x);
        let (v, jv) = self.field.jvp(&self.z(x), t, &(u.clone() / s));
        (self.out_scale(v), self.out_scale(jv))
    }
    fn exact_jvp(&self) -> bool {
        self.field.exact_jvp()
    }
    fn vjp(&self, x: &Tensor<2>, t: &Tensor<1>, w: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let s = self.row(&self.std, x);
        let (v, g) = self.field.vjp(&self.z(x), t, &self.out_scale(w.clone()));
        (self.out_scale(v), g / s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::FnField;
    use crate::tensor::{self, to_vec, DType};

    /// The data-units view obeys the chain rule: for the linear velocity v_z(z) = A z, the
    /// data-units field is v_x(x) = σ ⊙ A((x − μ)/σ) with Jacobian diag(σ) A diag(1/σ); for a
    /// score s_x = s_z/σ with Jacobian diag(1/σ) A diag(1/σ). Checked entry by entry, and the
    /// VJP against the transposed Jacobian.
    #[test]
    fn data_units_follow_the_chain_rule() {
        let a = [[-1.0, 2.0], [0.5, -3.0]];
        let (mu, sd) = ([1.0, -2.0], [2.0, 0.5]);
        let lin = FnField::new(2, move |x: &Tensor<2>, _t: &Tensor<1>| {
            let m = tensor::matrix_like(vec![a[0][0], a[1][0], a[0][1], a[1][1]], 2, 2, x);
            x.clone().matmul(m)
        });
        let dev = tensor::cpu();
        let x = tensor::matrix(vec![0.3, 0.7, -1.0, 2.0], 2, 2, &dev, DType::F64);
        let w = tensor::matrix(vec![0.5, -1.5, 2.0, 0.25], 2, 2, &dev, DType::F64);
        let t = tensor::times_like(&x, 0.5);
        for velocity in [true, false] {
            let f = DataUnits {
                field: &lin,
                mean: mu.to_vec(),
                std: sd.to_vec(),
                velocity,
            };
            let (v, jac) = f.jacobian(&x, &t);
            let (v, jac) = (to_vec(&v), to_vec(&jac));
            let (_, g) = f.vjp(&x, &t, &w);
            let (g, wv) = (to_vec(&g), to_vec(&w));
            let xs = [[0.3, 0.7], [-1.0, 2.0]];
            for (r, xr) in xs.iter().enumerate() {
                let z = [(xr[0] - mu[0]) / sd[0], (xr[1] - mu[1]) / sd[1]];
                for i in 0..2 {
                    let vz = a[i][0] * z[0] + a[i][1] * z[1];
                    let want = if velocity { sd[i] * vz } else { vz / sd[i] };
                    assert!((v[r * 2 + i] - want).abs() < 1e-12);
                    for j in 0..2 {
                        let want = if velocity {
                            sd[i] * a[i][j] / sd[j]
                        } else {
                            a[i][j] / (sd[i] * sd[j])
                        };
                        assert!((jac[r * 4 + i * 2 + j] - want).abs() < 1e-9, "J[{i}{j}]");
                    }
                }
                for j in 0..2 {
                    let jt_w: f64 = (0..2).map(|i| jac[r * 4 + i * 2 + j] * wv[r * 2 + i]).sum();
                    assert!((g[r * 2 + j] - jt_w).abs() < 1e-7, "vjp[{j}]");
                }
            }
        }
    }
}
