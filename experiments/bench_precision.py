"""float32 against float64, scenario by scenario: field differences, diagnostic difference, speed.

Each registered scenario (:mod:`phasefield.registry`) runs a small configuration of its default YAML
(:data:`CASES`: the grid and the overrides that make it small) for a fixed number of steps at a fixed dt,
once in float64 and once in float32 where ``solver.precision=float32`` is offered. The steps are a jitted
``fori_loop`` of the scenario's own ``stepper.step``, compiled before it is timed (the best of 3 runs).
Printed per scenario:

* max |f32 - f64| of each stored field, absolute and over the float64 field's range (max - min);
* the float64 run's time error, max |f64(2n steps of dt/2) - f64(n steps of dt)| over the range: the
  discretisation error that the float32 difference is read against;
* the relative difference of the scenario's main diagnostic (free energy, charge, ...);
* the wall time of each run and its cell updates per second (cells x steps / s);
* ``refused (reason)`` where the scenario does not offer float32 (the config error it raises).

The float32 run's fields are checked to be float32 (a float64 constant in a model would otherwise promote
them silently and the comparison would show nothing).

    python experiments/bench_precision.py                        # every scenario, small grids (CPU)
    python experiments/bench_precision.py --scenarios spinodal pfhub_ostwald --shape 1024 --steps 200   # GPU
"""
from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.calibrate import compose_config
from phasefield.config import ConfigError, validate_run
from phasefield.registry import scenario_names
from phasefield.runner import build, device_parameters, initial_carry
from timing import best_time  # experiments/timing.py (the script's folder is on sys.path)

# scenario -> (overrides of its default YAML, square cells per axis, steps, main diagnostic); the noise of the
# electrodeposition scenarios is off: float32 and float64 draw different normal deviates from one key
CASES = {
    "spinodal": (["solver.dt=0.1"], 64, 100, "free_energy"),
    "pfhub_ostwald": (["solver.adaptive=false", "solver.dt=0.005"], 64, 100, "free_energy"),
    "pfhub_electro": (["solver.dt=0.05"], 64, 100, "free_energy"),
    "pfhub_mms": (["solver.dt=0.002"], 64, 100, "l2_error"),
    "pfhub_dendrite": (["scenario.seed_radius=8", "solver.dt=0.075"], 64, 100, "solid_fraction"),
    "dendrite": (["scenario.size=[24,24]", "scenario.electrode_position=4", "scenario.nucleus_radius=1.5",
                  "scenario.short_circuit_gap=3", "scenario.noise_amplitude=0", "solver.adaptive=false",
                  "solver.dt=0.05"], 48, 50, "passed_charge"),
    "dendrite_solid": (["scenario.formulation=reaction", "scenario.size=[16,16]", "scenario.interface_thickness=2",
                        "scenario.electrode_position=4", "scenario.nucleus_radius=2", "scenario.noise_amplitude=0",
                        "solver.adaptive=false", "solver.dt=0.02"], 32, 20, "passed_charge"),
    "swelling": (["scenario.interface_thickness=0.4", "scenario.gradient_length=0.15", "solver.adaptive=false",
                  "solver.dt=2.0"], 32, 200, "state_of_charge"),
    "fracture": (["scenario.size=[32,32]", "scenario.notch_length=8", "solver.dt=0.05"], 32, 10, "elastic_energy"),
    "filament": (["solver.adaptive=false", "solver.dt=0.01"], 32, 10, "plated_volume"),
}


def shape_override(name: str, cells: int) -> str:
    """The grid override: ``cells`` per axis (pfhub_mms's domain is 2:1)."""
    shape = [2 * cells, cells] if name == "pfhub_mms" else [cells, cells]
    return f"scenario.shape=[{shape[0]},{shape[1]}]"


def prepared(name: str, overrides: list[str], precision: str):
    """``(evolve, dt, cells)``: ``evolve(steps, dt, repeat) -> (fields, diagnostics, seconds)`` runs ``steps`` fixed
    steps from the initial state (``seconds``: the best of ``repeat`` runs after the first) (one compiled loop for any count and dt); raises :class:`ConfigError` if refused."""
    config = validate_run(compose_config([f"scenario={name}", *overrides, f"solver.precision={precision}"]))
    simulation = build(config)
    stepper = simulation.stepper
    params = device_parameters(simulation.parameters, precision)
    start = initial_carry(simulation, params)

    @jax.jit
    def advance(params, carry, steps, dt):
        return jax.lax.fori_loop(0, steps, lambda _, c: stepper.step(params, c, dt), carry)

    diagnostics = jax.jit(simulation.diagnostics)

    def evolve(steps: int, dt: float, repeat: int = 3):
        steps, dt = jnp.asarray(steps, jnp.int64), jnp.asarray(dt, jnp.float64)
        seconds, carry = best_time(advance, params, start, steps, dt, repeat=repeat)
        fields = {k: np.asarray(v) for k, v in stepper.fields(params, carry).items()}
        promoted = [k for k, v in fields.items() if v.dtype != np.dtype(precision)]
        if promoted:  # a float64 constant in the model would promote a float32 run silently
            raise AssertionError(f"{name}: the {precision} run returned other dtypes in {promoted}")
        return fields, {k: float(v) for k, v in diagnostics(params, carry).items()}, seconds

    return evolve, config.solver.dt, int(np.prod(simulation.grid.shape))


def relative(a, b) -> float:
    """``max |a - b|`` over the range of ``b`` (its largest magnitude where it is uniform)."""
    difference = float(np.max(np.abs(np.asarray(a, np.float64) - b)))
    return difference / (float(np.ptp(b)) or float(np.max(np.abs(b))) or 1.0)


def compare(name: str, cells: int, steps: int | None):
    """One row of the table (a dict of printable strings). The time error of the float64 run (against
    twice the steps at half the dt) is the scale its float32 difference is read against."""
    overrides, default_cells, default_steps, main = CASES[name]
    steps = steps or default_steps
    overrides = [*overrides, shape_override(name, cells or default_cells)]
    evolve, dt, count = prepared(name, overrides, "float64")
    reference, diagnostics, seconds64 = evolve(steps, dt)
    halved, _, _ = evolve(2 * steps, dt / 2, repeat=1)
    row = {"scenario": name, "grid": "x".join(map(str, next(iter(reference.values())).shape)),
           "steps": f"{steps} x {dt:g}", "f64 s": f"{seconds64:.3g}", "f64 CU/s": f"{count * steps / seconds64:.3g}",
           "dt error": "; ".join(f"{k} {relative(halved[k], v):.2g}" for k, v in reference.items())}
    try:
        evolve32, _, _ = prepared(name, overrides, "float32")
    except ConfigError as error:
        return {**row, "fields": f"refused ({error.key} = {error.value!r}; allowed: {error.allowed})"}
    single, diagnostics32, seconds32 = evolve32(steps, dt)
    parts = []
    for key, value in reference.items():
        difference = float(np.max(np.abs(single[key].astype(np.float64) - value)))
        parts.append(f"{key} {difference:.2g} ({relative(single[key], value):.2g})")
    scale = abs(diagnostics[main]) or 1.0
    return {**row, "fields": "; ".join(parts),
            main: f"{abs(diagnostics32[main] - diagnostics[main]) / scale:.2g}",
            "f32 s": f"{seconds32:.3g}", "f32 CU/s": f"{count * steps / seconds32:.3g}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=None, help="default: every registered scenario")
    parser.add_argument("--shape", type=int, default=None, help="cells per axis (default: each case's own)")
    parser.add_argument("--steps", type=int, default=None, help="steps (default: each case's own)")
    args = parser.parse_args()
    names = args.scenarios or scenario_names()
    missing = sorted(set(scenario_names()) - set(CASES))
    if missing:
        print(f"no case for {', '.join(missing)}: add it to CASES")
    print(f"backend: {jax.default_backend()}; fields: max |f32 - f64| (over the float64 range); "
          "main: relative difference of the main diagnostic")
    print("| scenario | grid | steps x dt | max abs (rel) f32 - f64 | rel f64(dt/2) - f64(dt) | main diagnostic | "
          "f64 s | f32 s | f64 CU/s | f32 CU/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        row = compare(name, args.shape, args.steps)
        main_name = CASES[name][3]
        print(f"| {row['scenario']} | {row['grid']} | {row['steps']} | {row['fields']} | {row['dt error']} | "
              f"{main_name} {row.get(main_name, '-')} | {row['f64 s']} | {row.get('f32 s', '-')} | "
              f"{row['f64 CU/s']} | {row.get('f32 CU/s', '-')} |", flush=True)


if __name__ == "__main__":
    main()
