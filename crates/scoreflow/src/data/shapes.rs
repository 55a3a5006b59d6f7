//! Shapes with identical first and second moments — mean 0, covariance I, the moments of
//! N(0, I) too — and nothing else in common, in the spirit of the Datasaurus dozen (Matejka &
//! Fitzmaurice 2017): moments do not determine a distribution, and a flow between two of them
//! has to move every point although no mean or covariance changes.
//!
//! Each shape is drawn in base coordinates as a mixture of primitives, uniform along its
//! outline (weights ∝ length), plus isotropic noise N(0, η² I), η = 0.03:
//!
//! | name | base shape |
//! |---|---|
//! | `star` | outline of a five-pointed star: 10 segments between outer vertices (radius 1, at 90° + 72°k) and inner ones (radius 0.382, at 126° + 72°k) |
//! | `bullseye` | circles of radius 1 and 0.5 |
//! | `x_shape` | the diagonals of [−1, 1]² |
//! | `h_lines` | 4 horizontal segments x ∈ [−1, 1] at y ∈ {−1, −⅓, ⅓, 1} |
//! | `v_lines` | `h_lines` transposed |
//! | `dots` | 9 Gaussian dots N(c, 0.08² I), c ∈ {−1, 0, 1}² |
//! | `slant_up` | 5 parallel segments along (1, 1), length 2, centred at k·(−1, 1)/(2√2), k = −2 … 2 |
//! | `circle` | the unit circle |
//!
//! The base mixture's mean μ and covariance Σ are exact (segment a→b: mean (a + b)/2,
//! E xxᵀ = (aaᵀ + bbᵀ)/3 + (abᵀ + baᵀ)/6; circle of radius r about c: c cᵀ + r²/2 I; dot:
//! c cᵀ + s² I; plus η² I), and every point is mapped by x ↦ Σ^{−1/2}(x − μ) (the symmetric
//! root, which keeps each shape's axes of symmetry), so the population mean is exactly 0 and
//! the covariance exactly I.

use std::f64::consts::PI;
use std::sync::OnceLock;

use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};

use crate::tensor::Rng;

/// Noise η added to every base point.
const NOISE: f64 = 0.03;

/// The moment-matched shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // XShape is the Datasaurus name (x_shape)
pub(crate) enum Shape {
    Star,
    Bullseye,
    XShape,
    HLines,
    VLines,
    Dots,
    SlantUp,
    Circle,
}

#[derive(Debug, Clone, Copy)]
enum Primitive {
    /// Uniform on the segment a → b.
    Segment([f64; 2], [f64; 2]),
    /// Uniform on the circle of radius r about c.
    Circle([f64; 2], f64),
    /// N(c, s² I).
    Dot([f64; 2], f64),
}

impl Primitive {
    /// (E x, E xxᵀ as [xx, xy, yy]).
    fn moments(self) -> ([f64; 2], [f64; 3]) {
        match self {
            Primitive::Segment(a, b) => (
                [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0],
                [
                    (a[0] * a[0] + b[0] * b[0]) / 3.0 + a[0] * b[0] / 3.0,
                    (a[0] * a[1] + b[0] * b[1]) / 3.0 + (a[0] * b[1] + b[0] * a[1]) / 6.0,
                    (a[1] * a[1] + b[1] * b[1]) / 3.0 + a[1] * b[1] / 3.0,
                ],
            ),
            Primitive::Circle(c, r) => (
                c,
                [
                    c[0] * c[0] + r * r / 2.0,
                    c[0] * c[1],
                    c[1] * c[1] + r * r / 2.0,
                ],
            ),
            Primitive::Dot(c, s) => (c, [c[0] * c[0] + s * s, c[0] * c[1], c[1] * c[1] + s * s]),
        }
    }

    fn sample(self, rng: &mut Rng) -> [f64; 2] {
        match self {
            Primitive::Segment(a, b) => {
                let u: f64 = rng.random();
                [a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1])]
            }
            Primitive::Circle(c, r) => {
                let (s, co) = (2.0 * PI * rng.random::<f64>()).sin_cos();
                [c[0] + r * co, c[1] + r * s]
            }
            Primitive::Dot(c, s) => {
                let (z1, z2): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
                [c[0] + s * z1, c[1] + s * z2]
            }
        }
    }

    /// Weight of a primitive in "uniform along the outline": its length (dots count 1).
    fn length(self) -> f64 {
        match self {
            Primitive::Segment(a, b) => (b[0] - a[0]).hypot(b[1] - a[1]),
            Primitive::Circle(_, r) => 2.0 * PI * r,
            Primitive::Dot(..) => 1.0,
        }
    }
}

/// A shape's base mixture with its cumulative weights and standardising map.
struct Mixture {
    parts: Vec<Primitive>,
    cdf: Vec<f64>,
    mean: [f64; 2],
    /// Σ^{−1/2} as [a, b, c] (symmetric [[a, b], [b, c]]).
    whiten: [f64; 3],
}

impl Mixture {
    fn new(parts: Vec<Primitive>) -> Self {
        let total: f64 = parts.iter().map(|p| p.length()).sum();
        let mut cdf = Vec::with_capacity(parts.len());
        let (mut acc, mut m, mut s) = (0.0, [0.0; 2], [0.0; 3]);
        for p in &parts {
            let w = p.length() / total;
            acc += w;
            cdf.push(acc);
            let (pm, ps) = p.moments();
            for k in 0..2 {
                m[k] += w * pm[k];
            }
            for k in 0..3 {
                s[k] += w * ps[k];
            }
        }
        let var = NOISE * NOISE;
        let cov = [
            s[0] - m[0] * m[0] + var,
            s[1] - m[0] * m[1],
            s[2] - m[1] * m[1] + var,
        ];
        Self {
            parts,
            cdf,
            mean: m,
            whiten: inverse_sqrt(cov),
        }
    }

    fn sample(&self, rng: &mut Rng) -> [f64; 2] {
        let u: f64 = rng.random::<f64>() * self.cdf[self.cdf.len() - 1];
        let k = self
            .cdf
            .partition_point(|&c| c <= u)
            .min(self.parts.len() - 1);
        let p = self.parts[k].sample(rng);
        let (z1, z2): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
        let (x, y) = (
            p[0] + NOISE * z1 - self.mean[0],
            p[1] + NOISE * z2 - self.mean[1],
        );
        let [a, b, c] = self.whiten;
        [a * x + b * y, b * x + c * y]
    }
}

/// Σ^{−1/2} of a 2 × 2 SPD matrix [[a, b], [b, c]]: Σ^{1/2} = (Σ + √det·I)/√(tr Σ + 2√det),
/// then the 2 × 2 inverse.
fn inverse_sqrt([a, b, c]: [f64; 3]) -> [f64; 3] {
    let s = (a * c - b * b).sqrt();
    let t = (a + c + 2.0 * s).sqrt();
    let (p, q, r) = ((a + s) / t, b / t, (c + s) / t);
    let det = p * r - q * q;
    [r / det, -q / det, p / det]
}

fn seg(a: [f64; 2], b: [f64; 2]) -> Primitive {
    Primitive::Segment(a, b)
}

fn build(shape: Shape) -> Mixture {
    let parts = match shape {
        Shape::Circle => vec![Primitive::Circle([0.0, 0.0], 1.0)],
        Shape::Bullseye => vec![
            Primitive::Circle([0.0, 0.0], 1.0),
            Primitive::Circle([0.0, 0.0], 0.5),
        ],
        Shape::XShape => vec![seg([-1.0, -1.0], [1.0, 1.0]), seg([-1.0, 1.0], [1.0, -1.0])],
        Shape::HLines | Shape::VLines => [-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0]
            .iter()
            .map(|&y| {
                if shape == Shape::HLines {
                    seg([-1.0, y], [1.0, y])
                } else {
                    seg([y, -1.0], [y, 1.0])
                }
            })
            .collect(),
        Shape::Dots => (0..9)
            .map(|k| Primitive::Dot([(k % 3) as f64 - 1.0, (k / 3) as f64 - 1.0], 0.08))
            .collect(),
        Shape::SlantUp => (-2..=2)
            .map(|k| {
                let o = k as f64 * 0.5 / 2f64.sqrt();
                let (cx, cy) = (-o, o);
                let h = 1.0 / 2f64.sqrt();
                seg([cx - h, cy - h], [cx + h, cy + h])
            })
            .collect(),
        Shape::Star => {
            let vertex = |k: usize| {
                let (r, deg) = if k.is_multiple_of(2) {
                    (1.0, 90.0 + 36.0 * k as f64)
                } else {
                    (0.382, 90.0 + 36.0 * k as f64)
                };
                let (s, c) = (deg * PI / 180.0).sin_cos();
                [r * c, r * s]
            };
            (0..10)
                .map(|k| seg(vertex(k), vertex((k + 1) % 10)))
                .collect()
        }
    };
    Mixture::new(parts)
}

fn mixture(shape: Shape) -> &'static Mixture {
    static CACHE: [OnceLock<Mixture>; 8] = [const { OnceLock::new() }; 8];
    CACHE[shape as usize].get_or_init(|| build(shape))
}

/// n points (row-major (n, 2)) of `shape`, standardised to mean 0 and covariance I.
pub(crate) fn sample(shape: Shape, n: usize, rng: &mut Rng) -> Vec<f64> {
    let m = mixture(shape);
    (0..n).flat_map(|_| m.sample(rng)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_square_root_is_exact() {
        for cov in [[2.0, 0.3, 0.5], [1.0, 0.0, 1.0], [0.4, -0.35, 0.9]] {
            let [a, b, c] = inverse_sqrt(cov);
            // W Σ W = I with W = Σ^{−1/2}.
            let ws = [
                a * cov[0] + b * cov[1],
                a * cov[1] + b * cov[2],
                b * cov[0] + c * cov[1],
                b * cov[1] + c * cov[2],
            ];
            let i = [
                ws[0] * a + ws[1] * b,
                ws[0] * b + ws[1] * c,
                ws[2] * a + ws[3] * b,
                ws[2] * b + ws[3] * c,
            ];
            for (x, y) in i.iter().zip([1.0, 0.0, 0.0, 1.0]) {
                assert!((x - y).abs() < 1e-12, "{i:?}");
            }
        }
    }
}
