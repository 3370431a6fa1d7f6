"""Where a filament step spends its time: elasticity, damage, electrochemistry (scenario filament, LLZO).

``python experiments/filament_timing.py [--shapes 128 256 512] [--repeats 3] [--before REV]``

``--before REV`` also times the code of git revision ``REV`` (extracted with ``git archive`` to a temporary directory
and run as a subprocess of this script, whose API it shares) and prints both side by side: per elasticity solve the
milliseconds, the CG iterations and the cell-iterations per second (cells x CG iterations / time); per step the
seconds and its CG iterations.

On an ``N x N`` grid of a 32 um slab (cells of 32 / N um, ell = 2 cells) with a Li-filled 4 um flaw at 300 MPa
(below its onset), each part is compiled on its own and timed over ``repeats`` calls after a warm-up:

* ``elasticity``: one solve of the walled elasticity (Amor split, Newton on the tension set, CG to 1e-9, cold start)
  under the crack pressure;
* ``damage``: one bound-constrained AT1 damage solve (active set + PCG) from that displacement's driving force;
* ``electrochemistry``: the Li front / crack volume by columns and the backward-Euler deposition with the
  galvanostatic overpotential search (nested bisections: scalar work);
* ``network``: with ``ionic_field``, the electrolyte network of that state (the anode face and the flaw's Li cells:
  two unit fields by Jacobi-preconditioned CG to 1e-10, the conductance matrix), once per deposit;
* ``step``: one full model step (current control, 1 mA/cm^2, dt 0.1 s) from the relaxed, pressurised state, with
  its mechanics passes, u-d iterations and CG iterations.

A step costs about ``passes * (u-d iterations * (elasticity + damage) + one more elasticity solve)`` (the
compliance under a unit pressure). The step warm-starts its solves: each load step from ``u + dp u_unit``, each
compliance solve from the last unit-pressure displacement, so the solves of a quiet step are much cheaper than the
cold one timed here.

Measured before and after the elasticity changes of 2026-11-30 (``--before dac977a``; 128^2 and 256^2 with
``--repeats 3``, 512^2 with ``--repeats 1``; float64, 2 CPU cores shared with other jobs at a load average of 4-6,
so every time is an upper bound and the two columns are not measured under the same load)::

                   ms/solve      CG its   Mcell-its/s        step (s)   step CG its
        N   before    after   bef   aft before  after  before   after before  after
      128      878      165   141   100   2.63   9.91   1.043   0.056    201     33
      256     5577      994   219   144   2.57   9.49   8.378   0.552    313     52
      512    68348    11203   372   231   1.43   5.41  86.890   9.823    549     87

(cell-iterations per second: cells x CG iterations / time of the cold solve.) What changed: ``K0^-1`` by real FFTs
on the mirrored grid instead of dense sine/cosine matrices (O(n^3) at 512^2: 90 of the 95 ms of an iteration);
the clamped counter electrode in ``K0`` (Woodbury), 1.5x fewer iterations; the fixed-sign operator written out;
the warm starts of the step. A quiet 256^2 step after (``python experiments/filament_timing.py --shapes 256
--repeats 2``): elasticity cold 0.887 s (144 its), damage 0.109 s, electrochemistry 0.4 ms, step 0.385 s (52 CG
its); the damage solve is now a quarter of a quiet step. Before (same command, 2026-11-30, quieter machine)::

        N  elasticity (s)  CG its  damage (s)  electrochem (s)  step (s)  passes  u-d its  CG its
      128           0.702     145       0.011           0.0005     1.085       1        1     204
      256           5.028     227       0.064           0.0006     7.462       1        1     323
      512          41.860     374       0.274           0.0008    56.770       1        1     545

CG iterations of a cold solve still grow with N at this geometry (100, 144, 231: about N^0.6).

2026-12-01, quiet machine (``python experiments/filament_timing.py --shapes 128 256 512 --repeats 1``; the step now
with ``area_passes: 4`` and ``crack_advance_scale: 10``; split of the step by its counters, see :func:`split`)::

    cold solves (s, iterations) | one step (s), its counters and its split (s) by the counters
        N   elast  its  damage  its  electro |    step passes  u-d    CG dmgCG   elast  damage  electro   other
      128   0.106  100   0.008   49   0.0004 |   0.050      1    1    33    32   0.035   0.005   0.0004   0.010
      256   0.672  144   0.047   53   0.0004 |   0.338      1    1    52    44   0.243   0.039   0.0004   0.057
      512   5.526  231   0.236   58   0.0006 |   2.407      1    1    87    35   2.081   0.142   0.0006   0.183

A CG iteration costs 1.06 / 4.7 / 24 ms at 128 / 256 / 512^2 (at 512^2 the preconditioner's mirrored FFTs and
per-mode products ~23 ms, the operator 2.6 ms, profiled under load), a damage CG iteration 0.16 / 0.9 / 4.1 ms;
electrochemistry is scalar work (< 1 ms). Elasticity is 70-86 % of a step, damage 6-12 %. A growing step at 128^2
(run to short, ``filament_short.py --shape 128``) makes 13 passes, 100 u-d and 11 300 CG iterations on average: 12 s of
elasticity (16 s per step measured, partly under load).

The electrolyte network of ``ionic_field`` (the last columns; 2026-12-02, ``--repeats 1``, a shared machine): with
Jacobi-preconditioned CG (to 1e-10) it took 475 / 929 / 1806 iterations, 0.093 / 0.626 / 9.37 s per call at 128 / 256
/ 512^2, 2.6 to 5.5 quiet steps; preconditioned by the uniform slab's sine-Fourier inverse (to 1e-8) 13 / 16 / 21
iterations, 0.013 / 0.081 / 0.493 s, a quarter of a quiet step at 512^2 (2.13 s; a deposit per area pass calls it)::

      N  elast its damage its electro |  step pass u-d  CG dmgCG  elast damage electro  other | network its
    128  0.147 100  0.008  49  0.0004 | 0.032    1   1  20    32  0.029  0.006  0.0004 -0.004 |   0.013  13
    256  0.929 149  0.031  53  0.0005 | 0.428    1   1  36    44  0.225  0.026  0.0005  0.177 |   0.081  16
    512  5.226 236  0.170  58  0.0007 | 2.127    1   1  64    35  1.417  0.102  0.0007  0.607 |   0.493  21
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import DecomposedTimeSolverConfig
from phasefield.models import filament as fm
from phasefield.operators.walled_elasticity import normal_strains, solve_walled_elasticity
from phasefield.physics import electrolyte_network as en
from phasefield.physics import filament as fl
from phasefield.physics import fracture as fr


def timed(function, *args, repeats=3):
    jax.block_until_ready(function(*args))  # compile and warm up
    start = time.perf_counter()
    for _ in range(repeats):
        out = jax.block_until_ready(function(*args))
    return (time.perf_counter() - start) / repeats, out


def time_parts(n: int, repeats: int = 3) -> dict:
    """Seconds per call of the parts of a filament step on an n x n grid (see the module docstring), with the
    full step's compile time (its first call less a steady one) and its mechanics counters."""
    spacing = 32.0 / n
    config = fm.Config(size=[32.0, 32.0], shape=[n, n], length=2 * spacing, flaw_depth=4.0, control="current",
                       current_density=1.0, area_passes=4, crack_advance_scale=10.0)
    simulation = fm.build(config, DecomposedTimeSolverConfig())
    grid, params = simulation.grid, config
    problem = fr.FractureProblem(grid, fm.WALLS)
    mat, model = fm.material(params), fr.damage_model("AT1")
    step = jax.jit(simulation.stepper.step)
    start = time.perf_counter()
    carry = jax.block_until_ready(step(params, simulation.stepper.init(params, simulation.initial_fields()), 0.01))
    first_step = time.perf_counter() - start  # compilation and one (relaxing) step
    state = fm._from_carry(carry["state"]["fracture"])
    pressure = 0.3  # GPa

    @jax.jit
    def elasticity(damage):
        kt, kc, mu, _ = fr.elastic_terms(damage, mat, problem)
        return solve_walled_elasticity(kt, kc, mu, grid, fm.WALLS, internal_pressure=pressure * damage,
                                       reference_moduli=fr.bulk_and_shear(mat.young, mat.poisson),
                                       tolerance=1e-9, max_iterations=2000, max_newton=8)

    t_el, solution = timed(elasticity, state.damage, repeats=repeats)

    @jax.jit
    def damage(displacement, d):
        drive = fr.driving_force(displacement, d, mat, problem)
        trace = sum(normal_strains(displacement, grid, fm.WALLS))
        return fr.solve_damage(drive, pressure * trace, d, jnp.ones_like(d), d, mat, model, problem)[1]

    t_d, damage_iterations = timed(damage, solution.displacement, state.damage, repeats=repeats)

    @jax.jit
    def electrochemistry(d, li_volume):
        opening = grid.cell_volume * jnp.sum(d * sum(normal_strains(solution.displacement, grid, fm.WALLS)), 1)
        volume = jnp.sum(opening) + params.flaw_width * params.flaw_depth
        pressure_of = lambda v: fl.li_pressure(v, volume, 0.1, params.li_bulk_modulus)  # noqa: E731
        current_of = lambda eta, p: fl.plating_current(eta, p, fm.exchange_current(params), 0.5, 298.15,  # noqa
                                                       params.li_molar_volume)
        rate = fm.deposition_rate(params)

        def excess(eta):
            v = fl.implicit_deposit(li_volume, 0.1, 8.0, eta, pressure_of, current_of, rate)
            return 10.0 * 32.0 - (32.0 * current_of(eta, 0.0) + (v - li_volume) / (0.1 * rate))

        return fl.bisect(excess, -1.5, 0.5, 50)

    t_e, _ = timed(electrochemistry, state.damage, jnp.asarray(0.25), repeats=repeats)
    x = jnp.asarray(grid.axis_coordinates(0))[:, None]
    electrodes = ((state.damage >= 0.5) & (x <= params.flaw_depth))[None].astype(state.damage.dtype)

    @jax.jit
    def network(d):
        conductance, _, iterations = en.electrode_conductances(en.damaged_conductivity(d, params.conductivity, 0.0),
                                                               electrodes, grid)
        return conductance, iterations

    t_n, (_, network_iterations) = timed(network, state.damage, repeats=repeats)
    t_s, new = timed(step, params, carry, 0.1, repeats=repeats)
    info = new["cache"]["info"]
    out = {"n": n, "elasticity_s": t_el, "elasticity_iterations": int(solution.iterations), "damage_s": t_d,
           "damage_iterations": int(damage_iterations), "electrochemistry_s": t_e, "network_s": t_n,
           "network_iterations": int(network_iterations), "step_s": t_s,
           "step_compile_s": max(first_step - t_s, 0.0), "passes": int(info["passes"]),
           "ud_iterations": int(info["iterations"]), "step_cg_iterations": int(info["elasticity_iterations"]),
           "step_damage_iterations": int(info["damage_iterations"]), "area_passes": int(info["area_passes"])}
    return out | split(out)


def split(r: dict) -> dict:
    """The step's seconds split by its counters: elasticity = its CG iterations x the cold solve's seconds per
    iteration, damage = its damage CG iterations x the cold damage solve's, electrochemistry = one deposit per
    area pass, the rest (driving force, geometry, mechanics loop bookkeeping) what is left."""
    elasticity = r["step_cg_iterations"] * r["elasticity_s"] / max(r["elasticity_iterations"], 1)
    damage = r["step_damage_iterations"] * r["damage_s"] / max(r["damage_iterations"], 1)
    electrochemistry = (1 + r["area_passes"]) * r["electrochemistry_s"]
    return {"step_elasticity_s": elasticity, "step_damage_s": damage, "step_electrochemistry_s": electrochemistry,
            "step_other_s": r["step_s"] - elasticity - damage - electrochemistry}


def run_revision(revision: str, shapes, repeats: int) -> list:
    """``time_parts`` of the code at git ``revision`` (this script, run against that tree), one dict per shape."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tree:
        archive = subprocess.run(["git", "-C", str(root), "archive", revision], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
        command = [sys.executable, __file__, "--json", "--repeats", str(repeats), "--shapes", *map(str, shapes)]
        out = subprocess.run(command, env={**os.environ, "PYTHONPATH": tree}, check=True, capture_output=True,
                             text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def rates(r: dict) -> tuple:
    """ms per elasticity solve, its CG iterations, and cell-iterations per second (millions)."""
    ms = 1e3 * r["elasticity_s"]
    return ms, r["elasticity_iterations"], r["n"] ** 2 * r["elasticity_iterations"] / r["elasticity_s"] / 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", help="git revision to time side by side (the code before a change)")
    parser.add_argument("--json", action="store_true", help="one JSON line per shape (for --before)")
    args = parser.parse_args()
    if args.json:
        for n in args.shapes:
            print(json.dumps(time_parts(n, args.repeats)), flush=True)
        return
    if args.before:
        before = run_revision(args.before, args.shapes, args.repeats)
        print(f"elasticity solve (cold, CG to 1e-9) and one quiet step: before = {args.before}, after = this tree")
        print(f"{'':5s} {'ms/solve':>17s} {'CG its':>11s} {'Mcell-its/s':>13s} {'step (s)':>15s} "
              f"{'step CG its':>13s}")
        print(f"{'N':>5s}" + " {:>8s} {:>8s}".format("before", "after") + " {:>5s} {:>5s}".format("bef", "aft")
              + " {:>6s} {:>6s}".format("before", "after") + " {:>7s} {:>7s}".format("before", "after")
              + " {:>6s} {:>6s}".format("before", "after"))
        for b in before:
            a = time_parts(b["n"], args.repeats)
            (mb, ib, cb), (ma, ia, ca) = rates(b), rates(a)
            print(f"{b['n']:5d} {mb:8.0f} {ma:8.0f} {ib:5d} {ia:5d} {cb:6.2f} {ca:6.2f} {b['step_s']:7.3f} "
                  f"{a['step_s']:7.3f} {b['step_cg_iterations']:6d} {a['step_cg_iterations']:6d}", flush=True)
        return
    print("cold solves (s, iterations) | one step (s), its counters and its split (s) by the counters")
    print(f"{'N':>5s} {'elast':>7s} {'its':>4s} {'damage':>7s} {'its':>4s} {'electro':>8s} | {'step':>7s} "
          f"{'passes':>6s} {'u-d':>4s} {'CG':>5s} {'dmgCG':>5s} {'elast':>7s} {'damage':>7s} {'electro':>8s} "
          f"{'other':>7s} | {'network':>7s} {'its':>4s}")
    for n in args.shapes:
        r = time_parts(n, args.repeats)
        print(f"{n:5d} {r['elasticity_s']:7.3f} {r['elasticity_iterations']:4d} {r['damage_s']:7.3f} "
              f"{r['damage_iterations']:4d} {r['electrochemistry_s']:8.4f} | {r['step_s']:7.3f} {r['passes']:6d} "
              f"{r['ud_iterations']:4d} {r['step_cg_iterations']:5d} {r['step_damage_iterations']:5d} "
              f"{r['step_elasticity_s']:7.3f} {r['step_damage_s']:7.3f} {r['step_electrochemistry_s']:8.4f} "
              f"{r['step_other_s']:7.3f} | {r['network_s']:7.3f} {r['network_iterations']:4d}", flush=True)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
