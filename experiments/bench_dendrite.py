"""Benchmark of the electrodeposition model: cell-updates per second and the potential solve's share.

For each grid (a square domain of 1 um cells, a few nuclei) and formulation the script runs a
warm-up, then times a chunk of steps of the full model; for chen2015 (Hong's parameters at -0.45 V)
also the potential solve alone on the state reached (warm-started from the last potential, as the
next step does) and one application of the stencil Laplacian. It prints cell-updates per second
(CU/s), the effective memory bandwidth of the step (at ~12 field reads/writes of 8 bytes per cell),
the solve's share of a step, and the solve's cost in Laplacian applications. The reaction formulation
(the default scenario's: 0.1 M binary salt at -0.4 V, a 4 um interface on the 1 um cells) reports the
CG iterations of its potential (Newton) and transport solves per step, and (``--substeps``) the time
of each sub-step of its step, each jitted alone on the state reached (:func:`reaction_substeps`).

    python experiments/bench_dendrite.py --sizes 256 1024 2048 --steps 20 --formulations chen2015 reaction

``--precision float32`` runs float32 fields (the reaction formulation; chen2015 refuses it), ``--error`` adds
:func:`precision_error`: float32 against float64 after N steps from the same state. ``experiments/gpu_suite.py``
imports :func:`bench` and :func:`precision_error`.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import phasefield  # noqa: F401  (float64)
from timing import best_time  # experiments/timing.py (the script's folder is on sys.path)

from phasefield.config import validate_run
from phasefield.grid import Boundary
from phasefield.models.dendrite import (
    Parameters,
    capillary_shift,
    conductivity,
    ionic_conductivity,
    relaxation_rate,
)
from phasefield.operators import SpectralBasis, laplacian
from phasefield.operators.elliptic import solve_potential
from phasefield.physics.electrochemistry import interpolation
from phasefield.physics.electrodeposition import (
    allen_cahn_update,
    cell_boundary,
    conserve_metal_locally,
    electrolyte_boundary_conditions,
    interface_curvature,
    junction_current,
    reaction_weight,
    solve_balanced_step,
    solve_cell_potential,
    transport_exchange,
)
from phasefield.runner import build, device_parameters, initial_carry

FIELD_ACCESSES_PER_CELL_UPDATE = 12  # xi, c, phi, rates: read + write (a lower bound)


def scenario(n: int, formulation: str, ndim: int = 2) -> dict:
    """n^ndim cells of 1 um, a few random nuclei on the electrode."""
    common = {"name": "dendrite", "formulation": formulation, "size": [float(n)] * ndim, "shape": [n] * ndim,
              "t_end": 1.0, "electrode_position": 10.0, "random_nuclei": max(2, n // 64), "nucleus_radius": 3.0}
    if formulation == "reaction":
        return {**common, "voltage": -0.4, "interface_thickness": 4.0, "bulk_concentration": 100.0,
                "reference_concentration": 100.0, "conductivity_electrolyte": 0.12, "diffusivity_electrolyte": 3e-10,
                "noise_amplitude": 0.001, "nucleus_radius": 6.0}
    return {**common, "conductivity_metal": 1e6, "exchange_current_density": 1.106, "temperature": 300.0,
            "noise_amplitude": 0.003}


def configure(n: int, dt: float, formulation: str, precision: str = "float64", ndim: int = 2, **overrides):
    return validate_run({"scenario": {**scenario(n, formulation, ndim), **overrides},
                         "solver": {"dt": dt, "precision": precision}, "output": {}})


def bench(n: int, steps: int, dt: float, formulation: str = "chen2015", precision: str = "float64", ndim: int = 2):
    """Time a chunk of ``steps`` steps on n^ndim cells: ms/step, CU/s, GB/s, compile_s (the first chunk's
    call less a steady chunk) and, for chen2015, the potential solve's time and share of a step."""
    config = configure(n, dt, formulation, precision, ndim)
    simulation = build(config)
    stepper, grid = simulation.stepper, simulation.grid
    params = device_parameters(simulation.parameters, config.solver.precision)
    carry = initial_carry(simulation, params)

    @jax.jit
    def chunk(carry):
        return jax.lax.fori_loop(0, steps, lambda _, c: stepper.step(params, c, dt), carry)

    start = time.perf_counter()
    carry = jax.block_until_ready(chunk(carry))  # compile and leave the cold first potential solves behind
    first = time.perf_counter() - start
    wall, carry = best_time(chunk, carry, repeat=2)
    per_step = wall / steps
    cells = grid.size
    rates = {"n": n, "ndim": ndim, "formulation": formulation, "precision": precision, "steps": steps,
             "compile_s": max(first - wall, 0.0), "ms_per_step": per_step * 1e3, "cu_per_s": cells / per_step,
             "gb_per_s": cells * FIELD_ACCESSES_PER_CELL_UPDATE * np.dtype(precision).itemsize / per_step / 1e9,
             "mean_iterations": float(carry["state"]["potential_iterations_total"]) / float(carry["state"]["step"])}
    if formulation == "reaction":
        return {**rates, "solve_ms": float("nan"), "solve_share": float("nan"), "solve_laplacians": float("nan"),
                "iterations": int(carry["cache"]["transport_iterations"]),
                "substeps": reaction_substeps(config, simulation, params, carry, dt)}

    # the potential solve of the next step, as the step makes it (the model's sigma, source and tolerance)
    p, scenario_config = Parameters.from_config(params), config.scenario
    state = carry["state"]
    sigma = conductivity(p, state["xi"])
    source = p.charge_density * carry["history"]["metal_rate"]
    solve = jax.jit(lambda s, x0: solve_cell_potential(sigma, s, params.voltage, grid, x0, params.potential_tolerance,
                                                       scenario_config.potential_max_iterations))
    solve_time, solution = best_time(solve, source, state["phi"])
    iterations = solution.iterations
    lap = jax.jit(lambda u: laplacian(u, grid, cell_boundary(grid.ndim)))
    lap_time, _ = best_time(lap, state["phi"], repeat=10)
    return {**rates, "solve_ms": solve_time * 1e3, "solve_share": solve_time / per_step,
            "solve_laplacians": solve_time / lap_time, "iterations": int(iterations)}


def reaction_substeps(config, simulation, params, carry, dt) -> dict:
    """The reaction formulation's held-voltage step in its parts, each jitted alone on ``carry``'s state and
    timed (ms, best of 3): ``geometry`` (reaction weight, curvature, Gibbs-Thomson shift), ``profile`` (the
    Allen-Cahn upkeep and its local metal conservation), ``potential`` (one multigrid CG solve of the
    electrolyte potential, from zero, with the last step's deposit as source), ``exchange`` (one
    transport-and-exchange solve) and ``balanced`` (the coupled Newton solve of both: one potential solve
    and one exchange per Newton iteration, each warm-started), with the CG iterations of the single solves
    and of the balanced one (``*_iterations``) and its Newton iterations."""
    grid, dtype = simulation.grid, config.solver.precision
    p, state = Parameters.from_config(params), carry["state"]
    xi, c, phi = state["xi"], state["c"], state["phi"]
    voltage = params.voltage
    kinetics = p.reaction_kinetics()
    binary = config.scenario.electrolyte == "binary"
    reservoir = config.scenario.electrolyte_boundary == "reservoir"
    basis = SpectralBasis(grid, Boundary.uniform(grid.ndim, "neumann"), dtype)

    def geometry(xi):
        weight = reaction_weight(xi, grid, p.slope)
        curvature = interface_curvature(xi, grid)
        return weight, curvature, capillary_shift(p, params, xi, grid, curvature[0])

    weight, curvature, shift = jax.jit(geometry)(xi)

    def profile(xi):
        mobility = relaxation_rate(params, p, p.interface_speed) / p.barrier
        relaxed = allen_cahn_update(xi, dt, basis, mobility, p.barrier, p.kappa, None, curvature=curvature)
        return conserve_metal_locally(xi, relaxed, basis, 2.0 / p.slope)[0]

    h = interpolation(xi)
    diffusivity = p.diffusivity_metal * h + p.diffusivity_electrolyte * (1.0 - h)
    ionic = ionic_conductivity(p, c, xi, binary)

    def exchange_at(overpotential, guess):
        return transport_exchange(xi, c, overpotential, dt, diffusivity, grid, kinetics, reservoir, False, shift,
                                  guess, weight)

    source = p.charge_density * carry["history"]["metal_rate"]  # the last step's deposit, as the balance's

    def potential(phi):
        return solve_potential(ionic, source, grid, electrolyte_boundary_conditions(grid.ndim), jnp.zeros_like(phi),
                               params.potential_tolerance, config.scenario.potential_max_iterations)

    def balanced(phi):
        def electrolyte(c_solved):
            kappa = ionic_conductivity(p, c_solved, xi, binary)
            if not binary:
                return kappa, jnp.zeros_like(c_solved), jnp.zeros((), c_solved.dtype)
            return (kappa,) + junction_current(kappa, c_solved, grid, reservoir, kinetics.bulk,
                                               (2.0 * p.transference - 1.0) / p.f)

        return solve_balanced_step(xi, dt, voltage, phi, c, grid, kinetics, weight, shift, diffusivity,
                                   p.charge_density, params.potential_tolerance,
                                   config.scenario.potential_max_iterations,
                                   lambda phi_e, guess: exchange_at(voltage - phi_e, guess), electrolyte)

    times = {}
    times["geometry"], _ = best_time(jax.jit(geometry), xi, repeat=3)
    times["profile"], _ = best_time(jax.jit(profile), xi, repeat=3)
    times["potential"], single = best_time(jax.jit(potential), phi, repeat=3)
    times["exchange"], exchanged = best_time(jax.jit(lambda phi: exchange_at(voltage - phi, c)), phi, repeat=3)
    times["balanced"], result = best_time(jax.jit(balanced), phi, repeat=3)
    return {**{name: seconds * 1e3 for name, seconds in times.items()},
            "potential_iterations": int(single[1]), "exchange_iterations": int(exchanged.iterations),
            "balanced_potential_iterations": int(result.potential.iterations),
            "balanced_exchange_iterations": int(result.exchange.iterations),
            "newton_iterations": int(result.newton_iterations)}


def precision_error(n: int, steps: int, dt: float, formulation: str = "chen2015", ndim: int = 2) -> dict:
    """Largest |float32 - float64| of each field after ``steps`` fixed steps from the same state (noise off),
    with the field's largest |float64| value: ``{field: (max difference, max |value|)}``."""
    fields = {}
    for precision in ("float64", "float32"):
        config = configure(n, dt, formulation, precision, ndim, noise_amplitude=0.0)
        simulation = build(config)
        params = device_parameters(simulation.parameters, precision)
        carry = initial_carry(simulation, params)
        run = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda _, c: simulation.stepper.step(params, c, dt), c))
        fields[precision] = jax.device_get(simulation.stepper.fields(params, run(carry)))
    return {name: (float(np.max(np.abs(np.asarray(fields["float32"][name], np.float64) - value))),
                   float(np.max(np.abs(value)))) for name, value in fields["float64"].items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dt", type=float, default=0.004, help="chen2015 step, s (reaction: 50 times this)")
    parser.add_argument("--formulations", nargs="+", default=["chen2015", "reaction"])
    parser.add_argument("--precision", default="float64", choices=("float64", "float32"))
    parser.add_argument("--error", type=int, default=0, help="also float32 vs float64 after this many steps")
    args = parser.parse_args()
    print(f"backend {jax.default_backend()}, device {jax.devices()[0].device_kind}")
    print(f"{'formulation':>11} {'grid':>9} {'ms/step':>9} {'CU/s':>10} {'GB/s':>6} {'solve ms':>9} {'share':>6} "
          f"{'lap-eq':>7} {'iters':>5} {'mean it':>7}")
    for formulation in args.formulations:
        for n in args.sizes:
            dt = args.dt * (50 if formulation == "reaction" else 1)
            r = bench(n, args.steps, dt, formulation, args.precision)
            print(f"{formulation:>11} {n:>5}^2   {r['ms_per_step']:9.2f} {r['cu_per_s']:10.3g} {r['gb_per_s']:6.2f} "
                  f"{r['solve_ms']:9.2f} {r['solve_share']:6.2f} {r['solve_laplacians']:7.0f} {r['iterations']:5d} "
                  f"{r['mean_iterations']:7.2f}", flush=True)
            if "substeps" in r:
                q = r["substeps"]
                print(f"    sub-steps (ms, each alone on the state reached): geometry {q['geometry']:.2f}, profile "
                      f"{q['profile']:.2f}, one potential solve {q['potential']:.2f} ({q['potential_iterations']} it), "
                      f"one exchange {q['exchange']:.2f} ({q['exchange_iterations']} it), balanced "
                      f"{q['balanced']:.2f} ({q['newton_iterations']} Newton iterations, "
                      f"{q['balanced_potential_iterations']} + {q['balanced_exchange_iterations']} it)", flush=True)
            if args.error:
                error = precision_error(n, args.error, dt, formulation)
                print("    float32 - float64 after", args.error, "steps (max |difference| / max |float64|):",
                      ", ".join(f"{k} {d:.2e} / {v:.3g}" for k, (d, v) in error.items()), flush=True)


if __name__ == "__main__":
    main()
