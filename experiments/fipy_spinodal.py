"""PFHub benchmark 1a (periodic spinodal decomposition) solved with FiPy, for comparison.

Runs only under the separate FiPy venv (FiPy 4.0.3, scipy solver suite), e.g.
``/tmp/fipyenv/bin/python experiments/fipy_spinodal.py --solver gmres --tolerance 1e-10 --dt 0.1``;
``experiments/bench_spinodal.py`` launches it by subprocess.  FiPy is not a dependency of phasefield.

Problem: PeriodicGrid2D, n x n cells (default 200), dx = dy = 1, cell-centred;
f(c) = rho_s (c - c_a)^2 (c_b - c)^2, rho_s = 5, c_a = 0.3, c_b = 0.7, kappa = 2, M = 5,
c(x, y, 0) = 0.5 + 0.01 [cos(0.105x)cos(0.11y) + (cos(0.13x)cos(0.087y))^2
                         + cos(0.025x - 0.15y)cos(0.07x - 0.02y)].

Equations in the form of FiPy's coupled Cahn-Hilliard example (examples/cahnHilliard/mesh2DCoupled.py):
    TransientTerm(var=c) == DiffusionTerm(coeff=M, var=mu)
    ImplicitSourceTerm(1, var=mu) == ImplicitSourceTerm(f''(c), var=c) - f''(c) c + f'(c)
                                     - DiffusionTerm(coeff=kappa, var=c)
(bulk term Taylor-linearised about the old c), coupled with ``&``, backward Euler with fixed --dt,
one ``eq.solve(dt=dt, solver=...)`` (one sweep) per step.

Solvers (fipy.solvers.scipy): --solver lu -> LinearLUSolver, --solver gmres -> LinearGMRESSolver
(unpreconditioned).  --tolerance / --iterations default to FiPy's defaults: tolerance 1e-5 with the
"default" (= RHS) criterion, i.e. GMRES stops at ||r|| <= 1e-5 ||b||, at most 1000 inner iterations;
LU does up to min(iterations, 10) refinement sweeps.  TRAP: ||b|| is dominated by c_old/dt, so the
default GMRES tolerance is loose (absolute residual ~2e-3 here) and its error is of the same size as
the time-stepping error (F(1) at dt = 0.1 is off by ~2e-3, vs ~4e-3 from dt).  Pass e.g.
--tolerance 1e-10 for accuracy comparisons.  (With FiPy 4.0.3 + scipy 1.17 GMRES did not stop after
one iteration: 11-38 inner iterations per step at dt = 0.1, 84-120 at dt = 0.5, n = 200.)

Free energy: F = sum_cells [f(c) + kappa/2 ((c[i+1,j]-c[i,j])^2 + (c[i,j+1]-c[i,j])^2) / dx^2] dx dy,
periodic forward differences; F(0) = 319.157 for n = 200 (asserted).
Output: one JSON line on stdout {solver, tolerance, dt, n, wall_s (stepping only), steps, energy};
progress goes to stderr.
"""
import os

os.environ.setdefault("FIPY_SOLVERS", "scipy")

import argparse
import json
import sys
import time

import numpy as np
from fipy import (CellVariable, DiffusionTerm, ImplicitSourceTerm, PeriodicGrid2D,
                  TransientTerm)
from fipy.solvers.scipy import LinearGMRESSolver, LinearLUSolver

RHO, CA, CB, KAPPA, M, C0, EPS = 5.0, 0.3, 0.7, 2.0, 5.0, 0.5, 0.01


def energy(c, mesh, n, dx):
    x = np.asarray(mesh.cellCenters[0]).reshape(n, n).T  # FiPy cell id = i + n*j
    assert np.all(np.diff(x, axis=0) > 0) and np.allclose(np.diff(x, axis=1), 0)
    a = np.asarray(c.value).reshape(n, n).T  # a[i, j]: x along axis 0
    f = RHO * (a - CA) ** 2 * (CB - a) ** 2
    grad2 = ((np.roll(a, -1, 0) - a) ** 2 + (np.roll(a, -1, 1) - a) ** 2) / dx ** 2
    return float(np.sum(f + 0.5 * KAPPA * grad2) * dx * dx)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solver", choices=["lu", "gmres"], default="lu")
    p.add_argument("--tolerance", type=float, default=None, help="default: FiPy's default")
    p.add_argument("--iterations", type=int, default=None, help="default: FiPy's default")
    p.add_argument("--dt", type=float, default=0.5)
    p.add_argument("--t-end", type=float, default=100.0)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--record", default="1,10,100")
    args = p.parse_args()

    n, dx, dt = args.n, 1.0, args.dt
    mesh = PeriodicGrid2D(nx=n, ny=n, dx=dx, dy=dx)
    x, y = mesh.cellCenters.value
    c = CellVariable(name="c", mesh=mesh, hasOld=True)
    mu = CellVariable(name="mu", mesh=mesh, hasOld=True)
    c.value = C0 + EPS * (np.cos(0.105 * x) * np.cos(0.11 * y)
                          + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
                          + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y))

    dfdc = 2 * RHO * (c - CA) * (CB - c) * (CA + CB - 2 * c)
    d2fdc2 = 2 * RHO * (CA ** 2 + 4 * CA * CB + CB ** 2 - 6 * (CA + CB) * c + 6 * c ** 2)
    eq1 = TransientTerm(var=c) == DiffusionTerm(coeff=M, var=mu)
    eq2 = (ImplicitSourceTerm(coeff=1.0, var=mu)
           == ImplicitSourceTerm(coeff=d2fdc2, var=c) - d2fdc2 * c + dfdc
           - DiffusionTerm(coeff=KAPPA, var=c))
    eq = eq1 & eq2

    kw = {}
    if args.tolerance is not None:
        kw["tolerance"] = args.tolerance
    if args.iterations is not None:
        kw["iterations"] = args.iterations
    solver = (LinearLUSolver if args.solver == "lu" else LinearGMRESSolver)(**kw)

    energies = {"0": energy(c, mesh, n, dx)}
    print(f"F(0) = {energies['0']:.6f}", file=sys.stderr)
    if n == 200:
        assert abs(energies["0"] - 319.157) < 5e-4, energies["0"]

    targets = sorted({float(r) for r in args.record.split(",") if r.strip()
                      if float(r) <= args.t_end} | {args.t_end})
    t, steps, wall = 0.0, 0, 0.0
    for t_next in targets:
        k = int(round((t_next - t) / dt))
        t0 = time.perf_counter()
        for _ in range(k):
            c.updateOld()
            mu.updateOld()
            eq.solve(dt=dt, solver=solver)
        wall += time.perf_counter() - t0
        steps += k
        t = t_next
        energies[f"{t:g}"] = energy(c, mesh, n, dx)
        print(f"t = {t:g}  steps = {steps}  F = {energies[f'{t:g}']:.6f}  wall = {wall:.1f} s  "
              f"last solve iterations = {getattr(getattr(solver, 'convergence', None), 'iterations', None)}", file=sys.stderr)

    print(json.dumps({"solver": args.solver, "tolerance": solver.tolerance, "dt": dt, "n": n,
                      "wall_s": wall, "steps": steps, "energy": energies}))


if __name__ == "__main__":
    main()
