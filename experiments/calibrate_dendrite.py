"""Synthetic calibration of the dendrite model: recover the exchange current density and the salt
diffusivity from a noisy galvanostatic voltage curve, with the overlay plot, wall time and memory.

A flat Li front on a thin strip (1D-like: ``size`` 24 x 1 um by default, 0.5 um cells) is plated at a
held current density (10 mA/cm^2, 0.1 M salt, the default scenario's electrolyte); the observed curve
is the electrode potential against time, as a galvanostatic plating experiment records it. Its offset
is set by the Butler-Volmer kinetics (``exchange_current_density``), its rise while the salt at the
deposit depletes by the diffusivity (``diffusivity_electrolyte``, time scale L^2/D ~ 1 s). The
"observations" are the model's own curve at the true values times ``1 + noise N(0,1)``; the fit starts
from (2 i0, D/2). The script prints the recovered values with their Gauss-Newton standard errors, the
wall and compile times, and the peak memory (XLA's compiled memory analysis) of the run, of its
forward-mode Jacobian (what the fit uses) and of a reverse-mode gradient (for the spinodal scenario on
``--memory-grid``: the dendrite step's Newton and secant ``while_loop``s block reverse mode).

Why no published curve: a fit needs a measured scalar time series of a cell this model describes
(electrolyte, current, geometry, temperature) with its numbers. None was available here in a form we
could use: the galvanostatic Li|Li plating transients of the literature (e.g. Bai, Li, Brushett &
Bazant, Energy Environ. Sci. 9, 3221 (2016), capillary cells) are published as figures, not data, no
copy of their numbers was at hand, and digitising a figure by eye would add an error we could not
state. The command line (``python -m phasefield.calibrate ... --observations curve.csv``) takes such
a curve as a CSV of ``time`` and ``electrode_potential`` once one is at hand.

    python experiments/calibrate_dendrite.py --out runs/calibrate_dendrite
    python experiments/calibrate_dendrite.py --noise 0.0 --out runs/calibrate_clean
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import phasefield  # noqa: F401  (float64)
from phasefield.calibrate import (
    SUPPORTED,
    compose_config,
    fit,
    make_problem,
    memory_comparison,
    model_series,
    values_and_jacobian,
    write_outputs,
)
from phasefield.config import validate_run

TRUE = {"exchange_current_density": 3.0, "diffusivity_electrolyte": 3.0e-10}
BOUNDS = {"exchange_current_density": (0.1, 100.0), "diffusivity_electrolyte": (1e-11, 1e-8)}


def dendrite_overrides(cells: int, length: float, dt: float) -> list[str]:
    return ["scenario=dendrite", f"scenario.size=[{length},1]", f"scenario.shape=[{cells},2]",
            "scenario.random_nuclei=0", "scenario.noise_amplitude=0", "scenario.control=current",
            "scenario.current_density=10", "scenario.voltage=-0.1", f"solver.dt={dt}", "solver.adaptive=false"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/calibrate_dendrite")
    parser.add_argument("--noise", type=float, default=0.02, help="relative noise of the observations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cells", type=int, default=48, help="cells along x (0.5 um at the default length)")
    parser.add_argument("--length", type=float, default=24.0, help="strip length, um")
    parser.add_argument("--dt", type=float, default=0.05, help="fixed step, s")
    parser.add_argument("--t-end", type=float, default=3.0, help="last observation, s")
    parser.add_argument("--points", type=int, default=31, help="observation times")
    parser.add_argument("--memory-grid", type=int, default=128, help="spinodal grid of the reverse-mode memory")
    parser.add_argument("--memory-steps", type=int, default=100, help="steps of the memory comparison runs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    names = tuple(TRUE)
    assert set(names) <= set(SUPPORTED["dendrite"])
    config = validate_run(compose_config(dendrite_overrides(args.cells, args.length, args.dt)
                                         + [f"scenario.{k}={v}" for k, v in TRUE.items()]))
    # from the first step on: at t = 0 the electrode potential is the control's starting value (a setting)
    times = np.linspace(args.dt, args.t_end, args.points)
    problem = make_problem(config, names, times, "electrode_potential")
    started = time.perf_counter()
    evaluate = values_and_jacobian(problem)
    truth = np.array([TRUE[n] for n in names])
    clean = np.asarray(evaluate(truth)[0])
    first_call = time.perf_counter() - started
    rng = np.random.default_rng(args.seed)
    observed = clean * (1.0 + args.noise * rng.standard_normal(clean.shape))
    guess = truth * np.array([2.0, 0.5])
    result = fit(problem, observed, guess, [BOUNDS[n] for n in names], evaluate=evaluate)
    paths = write_outputs(result, out, problem.simulation.scalar_info, problem.simulation.scales["time"][1])
    errors = (result.values - truth) / truth
    print(f"grid {config.scenario.shape}, {problem.steps} steps of {args.dt} s, {args.points} observations, "
          f"noise {args.noise:.0%}")
    for name, value, error, true, relative in zip(names, result.values, result.standard_errors, truth, errors):
        print(f"  {name}: {value:.5g} ± {error:.2g} (true {true:.5g}, error {relative:+.2%})")
    print(f"  {result.evaluations} model evaluations (each run + {len(names)} tangents), loss "
          f"{result.loss_history[0]:.3g} -> {result.loss:.3g}: {result.message}")
    print(f"  wall {result.wall_seconds:.1f} s for the fit, first call (trace + compile + run) {first_call:.1f} s")

    memory = {"dendrite": memory_comparison(problem, observed)}
    spinodal = validate_run(compose_config(["scenario=spinodal", f"scenario.shape=[{args.memory_grid},"
                                            f"{args.memory_grid}]", "solver.dt=1.0"]))
    spinodal_problem = make_problem(spinodal, ("kappa", "mobility"), np.linspace(0, args.memory_steps, 11),
                                    "free_energy")
    observed_energy = np.asarray(model_series(spinodal_problem)(np.array([2.0, 5.0])))
    memory[f"spinodal {args.memory_grid}^2, {args.memory_steps} steps"] = memory_comparison(spinodal_problem,
                                                                                           observed_energy)
    for label, peaks in memory.items():
        forward = peaks["forward"]
        print(f"  peak memory, {label}: " + ", ".join(f"{k} {v / 2**20:.2f} MiB ({v / forward:.2f}x)"
                                                       for k, v in peaks.items()))
    summary = {"true": TRUE, "noise": args.noise, "fit": result.as_dict(), "relative_errors": errors.tolist(),
               "first_call_seconds": first_call, "memory_bytes": memory}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("wrote " + ", ".join(str(p) for p in [*paths.values(), out / "summary.json"]))


if __name__ == "__main__":
    main()
