"""Peak memory and wall time of a reverse-mode gradient against the forward run (issue 18, item 3).

For each scenario, grid, step count and number of stored carries (``--snapshots``) it prints the peak
device bytes of one call (XLA's compiled memory analysis, :func:`phasefield.calibrate.memory_comparison`:
abstract arguments, nothing of grid size is allocated) of the run alone (``forward``), of its forward-mode
Jacobian along the free parameters (``jacobian``, what the fits use; ``sequential``, one tangent at a time,
``tangents="sequential"``) and of the reverse-mode gradient of a
least-squares loss (``reverse``, :func:`phasefield.calibrate.loss_and_gradient`), each in MiB and as a
multiple of the forward run; then the steps the gradient re-runs per step (:func:`snapshot_schedule`;
``--snapshots 0``: the default number, :func:`budgeted_snapshots`: the re-run rule's
:func:`default_snapshots`, fewer where that exceeds 3x the forward run's peak) and,
with ``--time``, the measured wall time of the gradient over that of the forward run (compiled first, best
of ``--repeats``). ``--step-backward`` adds the peak of one step's backward pass alone, the floor under
any schedule of the time loop.

Runs at fixed dt (the solver config's first dt, adaptive off) from each scenario's default initial state;
the observations are 11 values of one diagnostic spread over the run (the reverse pass only needs their
cotangents, so the values are the model's own, shifted).

    PYTHONPATH=. python experiments/calibrate_memory.py
    PYTHONPATH=. python experiments/calibrate_memory.py --scenarios spinodal --steps 100 400 --snapshots 1 2 3 4 --time
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import jax
import numpy as np

import phasefield  # noqa: F401  (float64)
from phasefield.calibrate import (
    Problem,
    compose_config,
    loss_and_gradient,
    memory_comparison,
    model_series,
    snapshot_schedule,
    with_values,
)
from phasefield.config import validate_run
from phasefield.memory import peak_bytes
from phasefield.recompute import reverse_pass
from phasefield.runner import build

CASES = {  # overrides, free parameters, observed diagnostic
    "spinodal": (["scenario=spinodal", "solver.dt=1.0"], ("kappa", "mobility"), "free_energy"),
    "dendrite": (["scenario=dendrite", "solver.adaptive=false", "solver.dt=0.02"],
                 ("exchange_current_density", "diffusivity_electrolyte"), "dendrite_height"),
    "swelling": (["scenario=swelling", "solver.adaptive=false", "solver.dt=1.0"],
                 ("diffusivity", "exchange_current_density"), "swelling"),
}


def problem_for(scenario: str, size: int, steps: int, snapshots: int):
    """The :class:`Problem` of ``steps`` fixed steps on a ``size``-per-axis grid, observed 11 times."""
    overrides, names, observable = CASES[scenario]
    config = validate_run(compose_config(overrides + [f"scenario.shape=[{size},{size}]"]))
    times = np.linspace(0.0, steps * config.solver.dt, 11)  # model time
    problem = Problem(build(config), names, float(config.solver.dt), times, (observable,), snapshots=snapshots)
    return problem, np.array([float(getattr(config.scenario, n)) for n in names])


def one_step_backward_bytes(problem: Problem, theta) -> int:
    """Peak bytes of one step's backward pass alone (``jax.vjp`` of a step and its observation, abstract
    carry): the part of the gradient's peak that no schedule of the time loop removes."""
    simulation = problem.simulation
    names, observable = problem.names, problem.observables[0]

    def step(t, carry):
        params = with_values(problem.base_parameters, names, t)
        new = simulation.stepper.step(params, carry, problem.dt)
        return new, simulation.diagnostics(params, new)[observable]

    def backward(t, carry, cotangent):
        with reverse_pass():
            return jax.vjp(step, t, carry)[1]((cotangent, jax.numpy.ones(())))

    theta = jax.ShapeDtypeStruct(theta.shape, np.float64)
    carry = jax.eval_shape(lambda t: simulation.stepper.init(with_values(problem.base_parameters, names, t),
                                                             simulation.initial_fields()), theta)
    return peak_bytes(jax.jit(backward).lower(theta, carry, carry))


def best_of(function, repeats: int) -> float:
    jax.block_until_ready(function())  # compile
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(function())
        best = min(best, time.perf_counter() - started)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--size", type=int, default=128, help="cells per axis")
    parser.add_argument("--steps", type=int, nargs="*", default=[100, 400])
    parser.add_argument("--snapshots", type=int, nargs="+", default=[0, 2, 4],
                        help="stored carries of the gradient; 0: the default (budgeted_snapshots)")
    parser.add_argument("--time", action="store_true", help="also run forward and gradient and time them")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--step-backward", action="store_true",
                        help="also the peak of one step's backward pass alone (once per scenario)")
    args = parser.parse_args()
    print(f"backend {jax.default_backend()}; peak MiB (XLA memory analysis) and multiple of the forward run")
    print(f"{'scenario':9s} {'grid':>7s} {'steps':>5s} {'snap':>4s} {'forward':>8s} {'jacobian':>14s} "
          f"{'sequential':>14s} {'reverse':>14s} {'rerun/step':>10s} {'t_grad/t_fwd':>12s}")
    for scenario in args.scenarios:
        if args.step_backward:
            problem, theta = problem_for(scenario, args.size, 10, 1)
            forward = peak_bytes(jax.jit(model_series(problem)).lower(jax.ShapeDtypeStruct(theta.shape, np.float64)))
            single = one_step_backward_bytes(problem, theta)
            print(f"{scenario:9s} {args.size:>4d}^2 one step's backward alone: {single / 2**20:.2f} MiB, "
                  f"{single / forward:.2f}x the forward run ({forward / 2**20:.2f} MiB)", flush=True)
        for steps in args.steps:
            for snapshots in args.snapshots:
                problem, theta = problem_for(scenario, args.size, steps, snapshots or None)
                observed = np.zeros((1, problem.times.size))
                peaks = memory_comparison(problem, observed)
                snapshots = peaks["snapshots"]
                forward = peaks["forward"]
                rerun = snapshot_schedule(problem.steps, snapshots)[1] / problem.steps
                ratio = ""
                if args.time:
                    series = jax.jit(model_series(problem))
                    observed = np.asarray(series(theta)) * 1.01
                    gradient = loss_and_gradient(dataclasses.replace(problem, snapshots=snapshots), observed)
                    seconds = [best_of(f, args.repeats) for f in (lambda: gradient(theta), lambda: series(theta))]
                    ratio = f"{seconds[0] / seconds[1]:.1f}"
                print(f"{scenario:9s} {args.size:>4d}^2 {problem.steps:5d} {snapshots:4d} {forward / 2**20:8.2f} "
                      f"{peaks['jacobian_forward'] / 2**20:8.2f} ({peaks['jacobian_forward'] / forward:4.2f}x) "
                      f"{peaks['jacobian_sequential'] / 2**20:8.2f} ({peaks['jacobian_sequential'] / forward:4.2f}x) "
                      f"{peaks['gradient_reverse'] / 2**20:8.2f} ({peaks['gradient_reverse'] / forward:4.2f}x) "
                      f"{rerun:10.2f} {ratio:>12s}", flush=True)


if __name__ == "__main__":
    main()
