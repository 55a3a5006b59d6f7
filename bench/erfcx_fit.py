#!/usr/bin/env python3
"""Derives the f32 coefficients of the scaled complementary error function used by the fused
engine's exact GELU (crates/scoreflow/src/fused/kernels.rs, ERFCX_P).

Following Shepherd & Laframboise (Math. Comp. 36, 1981), (1 + 2x)·erfcx(x), erfcx(x) =
e^{x²} erfc(x), is smooth and bounded on x ∈ [0, ∞) and, in the variable q = (x − K)/(x + K),
is 1 + p(q) with p a slowly varying function on q ∈ [−1, 1). We fit p by a minimax polynomial
of degree 10 (Remez exchange, values from mpmath at 40 digits) on q ∈ [−1, 0.7], i.e.
x ∈ [0, 11.33]: with x = |z|/√2 this covers |z| ≤ 16, beyond which Φ(−|z|) < 1e-57 is below
f32's range anyway (the kernel clamps |z| to 16). K = 2 gives the smallest error among the
K tried (1.5, 2, 3, 4). Prints the minimax error, the error after rounding the coefficients to
f32 and evaluating by f32 Horner, and the coefficients (highest degree first) for Rust.

  /tmp/refvenv/bin/python bench/erfcx_fit.py
"""
import mpmath as mp
import numpy as np

mp.mp.dps = 40
K, DEG, QLO, QHI = 2.0, 10, -1.0, 0.7


def target(q):
    q = mp.mpf(q)
    x = K * (1 + q) / (1 - q)
    return (1 + 2 * x) * mp.erfc(x) * mp.exp(x * x) - 1


def to_unit(q):
    return (2 * q - (QLO + QHI)) / (QHI - QLO)


def remez(n, grid, fgrid, iters=30):
    """Minimax polynomial of degree n (Chebyshev basis on [QLO, QHI]) by the exchange algorithm."""
    ref = (QLO + QHI) / 2 + (QHI - QLO) / 2 * np.cos(np.pi * np.arange(n + 1, -1, -1) / (n + 1))
    for _ in range(iters):
        a = np.zeros((n + 2, n + 2))
        a[:, : n + 1] = np.polynomial.chebyshev.chebvander(to_unit(ref), n)
        a[:, n + 1] = (-1.0) ** np.arange(n + 2)
        sol = np.linalg.solve(a, np.array([float(target(q)) for q in ref]))
        c, level = sol[: n + 1], abs(sol[n + 1])
        err = np.polynomial.chebyshev.chebval(to_unit(grid), c) - fgrid
        # One extremum per run of constant sign; keep the n + 2 largest, dropping at the ends.
        sign, runs, start = np.sign(err), [], 0
        for i in range(1, len(grid)):
            if sign[i] != sign[start]:
                runs.append((start, i))
                start = i
        runs.append((start, len(grid)))
        ext = [lo + int(np.argmax(np.abs(err[lo:hi]))) for lo, hi in runs]
        while len(ext) > n + 2:
            ext = ext[1:] if abs(err[ext[0]]) < abs(err[ext[-1]]) else ext[:-1]
        ref = grid[ext]
    return c, level, np.max(np.abs(err))


def main():
    grid = np.linspace(QLO, QHI, 20001)
    fgrid = np.array([float(target(q)) for q in grid])
    c, level, worst = remez(DEG, grid, fgrid)
    power = np.polynomial.Chebyshev(c, domain=[QLO, QHI]).convert(kind=np.polynomial.Polynomial)
    c32 = power.coef.astype(np.float32)
    q32 = grid.astype(np.float32)
    p = np.full_like(q32, c32[-1])
    for a in c32[-2::-1]:
        p = (p * q32).astype(np.float32) + a
    e32 = np.max(np.abs(p.astype(np.float64) - fgrid))
    print(f"K = {K}, degree {DEG} on q in [{QLO}, {QHI}]: minimax error {level:.3e} "
          f"(grid max {worst:.3e}); f32 coefficients + f32 Horner: {e32:.3e}")
    print("const ERFCX_P: [f32; %d] = [" % (DEG + 1))
    for a in c32[::-1]:
        print(f"    {np.float32(a)!r},".replace("np.float32(", "").replace(")", ""))
    print("];")


if __name__ == "__main__":
    main()
