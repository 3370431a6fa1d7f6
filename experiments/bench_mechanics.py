"""Benchmark of the periodic elasticity solver: time per solve, iterations, CU/s, bandwidth, contrast sweep.

For each grid (``N^2`` plane strain or ``N^3``) the scenario is four lithiated-silicon particles
(E = 80 GPa, nu = 0.22, dilatational eigenstrain 1 %) in an LPSC matrix (22 GPa, 0.3) under
14 MPa stack pressure along x (mean sigma_xx = -p, the other mean stresses zero). The script
times, after compilation, a cold solve from zero, a warm-started solve after a 0.1 % change of
the eigenstrain (the per-step cost inside a swelling or dendrite time loop), one application of
the discrete operator and one of the FFT preconditioner. It then sweeps the stiffness contrast
of the particles (stiff particles in a soft matrix and the reverse: 1e1 ... 1e6) and prints
the CG iterations and the solve time of each.

CU/s counts one CG iteration as one update of every cell: cells x iterations / wall. The
effective bandwidth multiplies the CU/s by a minimal byte model per cell and CG iteration, in
words of the working precision, for d displacement components:
  operator: read u (d), lam, mu (2), edge shear moduli (d(d-1)/2), write forces (d);
  preconditioner: d forward and d inverse real FFTs at one read and one write each (4d) plus
  the Fourier-space projection reading and writing d spectra (2d);
  CG updates: x, r, p (3 x 3d) and the two inner products (2 x 2d).
That is 45 words (2D) and 68 words (3D) per cell and iteration; FFTs make several passes in
practice, so the figure is a lower bound on the traffic.

    python experiments/bench_mechanics.py                       # 512^2 and 64^3
    python experiments/bench_mechanics.py --sizes 512^2 256^3 --precision float32
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import phasefield  # noqa: F401  (float64)
from timing import best_time  # experiments/timing.py (the script's folder is on sys.path)

from phasefield.grid import Grid
from phasefield.operators import isotropic_moduli, solve_elasticity
from phasefield.operators.elasticity import _edge_shear_moduli, _internal_forces, _reference_inverse, mean_components

PRESSURE = 0.014  # GPa
EIGENSTRAIN = 0.01
PARTICLES = ((0.3, 0.35, 0.12), (0.7, 0.3, 0.08), (0.55, 0.72, 0.15), (0.15, 0.8, 0.06))  # x, y, radius


def words_per_iteration(ndim: int) -> int:
    return (2 * ndim + 2 + ndim * (ndim - 1) // 2) + 6 * ndim + 13 * ndim


def parse_size(text: str) -> tuple[int, int]:
    n, _, ndim = text.partition("^")
    return int(n), int(ndim or 2)


def particles(grid: Grid) -> np.ndarray:
    coords = grid.coordinates()
    inside = np.zeros(grid.shape, bool)
    for cx, cy, radius in PARTICLES:
        centre = (cx, cy, 0.5)[: grid.ndim]
        inside |= sum((x - c) ** 2 for x, c in zip(coords, centre)) < radius**2
    return inside


def bench(n: int, ndim: int, dtype, tolerance: float, contrasts, repeat: int):
    grid = Grid((n,) * ndim, 1.0 / n)
    inside = particles(grid)
    mean_stress = {c: 0.0 for c in mean_components(ndim)}
    mean_stress["xx"] = -PRESSURE

    @jax.jit
    def solve(lam, mu, eigenstrain, initial):
        return solve_elasticity(lam, mu, grid, eigenstrain, None, mean_stress, initial, tolerance, 5000)

    @jax.jit
    def solve_cold(lam, mu, eigenstrain):
        return solve_elasticity(lam, mu, grid, eigenstrain, None, mean_stress, None, tolerance, 5000)

    def fields(inclusion, matrix):
        lam_i, mu_i = isotropic_moduli(*inclusion)
        lam_m, mu_m = isotropic_moduli(*matrix)
        return (jnp.asarray(np.where(inside, lam_i, lam_m), dtype), jnp.asarray(np.where(inside, mu_i, mu_m), dtype))

    lam, mu = fields((80.0, 0.22), (22.0, 0.30))
    eigenstrain = jnp.asarray(np.where(inside, EIGENSTRAIN, 0.0), dtype)
    cold_time, cold = best_time(solve_cold, lam, mu, eigenstrain, repeat=repeat)
    warm_time, warm = best_time(solve, lam, mu, 1.001 * eigenstrain, cold, repeat=repeat)

    edge = _edge_shear_moduli(mu, ndim, "arithmetic")
    u = tuple(cold.displacement[a] for a in range(ndim))
    apply = jax.jit(lambda u: _internal_forces(u, {}, {}, lam, mu, edge, grid, ())[0])
    precondition = jax.jit(lambda r: _reference_inverse(r, grid, 1.0, 1.0))
    apply_time, _ = best_time(apply, u, repeat=5)
    precondition_time, _ = best_time(precondition, u, repeat=5)

    iterations = int(cold.iterations)
    cu = grid.size * iterations / cold_time
    word = jnp.dtype(dtype).itemsize
    row = {
        "grid": f"{n}^{ndim}", "cells": grid.size, "solve_s": cold_time, "iterations": iterations,
        "ms_per_iteration": cold_time / max(iterations, 1) * 1e3, "cu_per_s": cu,
        "gb_per_s": cu * words_per_iteration(ndim) * word / 1e9, "warm_s": warm_time,
        "warm_iterations": int(warm.iterations), "apply_ms": apply_time * 1e3, "precondition_ms": precondition_time * 1e3,
        "residual": float(cold.residual), "mean_sigma_xx": float(cold.mean_stress["xx"]),
    }
    sweep = []
    for contrast in contrasts:
        counts = []
        for stiff in (True, False):
            inclusion, matrix = ((contrast, 0.3), (1.0, 0.3)) if stiff else ((1.0, 0.3), (contrast, 0.3))
            lam_c, mu_c = fields(inclusion, matrix)
            start = time.perf_counter()
            result = jax.block_until_ready(solve_cold(lam_c, mu_c, eigenstrain))
            counts.append((int(result.iterations), time.perf_counter() - start, float(result.residual)))
        sweep.append((contrast, counts))
    return row, sweep


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["512^2", "64^3"], help="grids as N^2 or N^3, e.g. 512^2 256^3")
    parser.add_argument("--precision", choices=["float64", "float32"], default="float64")
    parser.add_argument("--tolerance", type=float, default=None, help="relative residual (default 1e-8, float32 1e-5)")
    parser.add_argument("--contrasts", type=float, nargs="*", default=[1e1, 1e2, 1e3, 1e4, 1e5, 1e6])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    dtype = jnp.float64 if args.precision == "float64" else jnp.float32
    tolerance = args.tolerance or (1e-8 if dtype == jnp.float64 else 1e-5)
    print(f"backend {jax.default_backend()}, device {jax.devices()[0].device_kind}, {args.precision}, "
          f"tolerance {tolerance:g}")
    print(f"{'grid':>7} {'cells':>9} {'solve s':>8} {'iters':>5} {'ms/it':>7} {'CU/s':>9} {'GB/s':>6} "
          f"{'warm s':>7} {'w-it':>4} {'apply ms':>8} {'prec ms':>8}")
    sweeps = []
    for size in args.sizes:
        n, ndim = parse_size(size)
        row, sweep = bench(n, ndim, dtype, tolerance, args.contrasts, args.repeat)
        sweeps.append((row["grid"], sweep))
        print(f"{row['grid']:>7} {row['cells']:>9d} {row['solve_s']:8.3f} {row['iterations']:5d} "
              f"{row['ms_per_iteration']:7.2f} {row['cu_per_s']:9.3g} {row['gb_per_s']:6.2f} {row['warm_s']:7.3f} "
              f"{row['warm_iterations']:4d} {row['apply_ms']:8.2f} {row['precondition_ms']:8.2f}", flush=True)
    print("\niterations (solve s) against stiffness contrast, stiff particles | soft particles")
    for grid_name, sweep in sweeps:
        for contrast, ((it_s, t_s, _), (it_w, t_w, _)) in sweep:
            print(f"{grid_name:>7} contrast {contrast:8.0e}: {it_s:5d} ({t_s:7.3f} s) | {it_w:5d} ({t_w:7.3f} s)", flush=True)


if __name__ == "__main__":
    main()
