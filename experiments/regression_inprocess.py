"""Same results before and after a change, without the command line: the in-process twin of
``regression_compare.py --compare`` for checkouts whose ``cli``/``run.py`` is being rewritten.

Each reference run (``<reference>/<case>/run.h5``, recorded by ``regression_compare.py --record`` on
the old checkout) stores its resolved config; this script validates that config with the current
code (dropping solver keys the scenario's solver schema no longer has, e.g. ``scheme`` and
``stabilization`` of the swelling model), runs it through :func:`phasefield.integrate.integrate`
with records every ``output.scalar_interval`` and field frames every ``output.interval``, as the
CLI does, and prints the same table: largest relative difference of the stored fields and of the
scalars (relative to each one's largest magnitude), and whether the step sequences agree::

    PYTHONPATH=$PWD python experiments/regression_inprocess.py --compare /tmp/reference --cases swelling swelling_tin
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import h5py
import jax
import numpy as np
import yaml

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from regression_compare import relative_difference  # noqa: E402

from phasefield.config import validate_run  # noqa: E402
from phasefield.integrate import integrate  # noqa: E402
from phasefield.registry import scenario  # noqa: E402
from phasefield.runner import build, device_parameters, initial_carry, stable_dt, time_control  # noqa: E402


def run_config(resolved: dict):
    """Run a resolved config in process; returns the /fields, /step, /scalars that the CLI would write."""
    solver_fields = {f.name for f in dataclasses.fields(scenario(resolved["scenario"]["name"]).Solver)}
    solver = {k: v for k, v in resolved["solver"].items() if k in solver_fields}
    output = resolved["output"]
    config = validate_run({"scenario": resolved["scenario"], "solver": solver, "output": output})
    simulation = build(config)
    params = device_parameters(simulation.parameters, config.solver.precision)
    carry = initial_carry(simulation, params)
    fields_of = jax.jit(simulation.stepper.fields)
    diagnostics = jax.jit(simulation.diagnostics)
    every = round(config.output.interval / config.output.scalar_interval)
    frames, frame_steps, rows, steps = [], [], [], []

    def on_record(carry, clock):
        rows.append(jax.device_get(diagnostics(params, carry)))
        steps.append(clock["step"])
        if len(rows) % every == 1 or every == 1 or clock["t"] >= config.scenario.t_end * (1 - 1e-12):
            frames.append(jax.device_get(fields_of(params, carry)))
            frame_steps.append(clock["step"])

    on_record(carry, {"t": 0.0, "step": 0})
    integrate(simulation.stepper, time_control(config.solver, stable_dt(simulation)), params, carry,
              {"t": 0.0, "step": 0, "dt": config.solver.dt}, config.scenario.t_end,
              config.output.scalar_interval, on_record)
    fields = {k: np.stack([np.asarray(f[k]) for f in frames]) for k in frames[0]}
    scalars = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    return fields, np.array(frame_steps), scalars, np.array(steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", type=Path, required=True, help="folder of the reference runs")
    parser.add_argument("--cases", nargs="+", required=True)
    args = parser.parse_args()
    print("| scenario | same steps | largest field difference | largest scalar difference | wall s |")
    print("|---|---|---|---|---|")
    for name in args.cases:
        with h5py.File(args.compare / name / "run.h5", "r") as old:
            resolved = yaml.safe_load(old.attrs["config"])
            old_fields = {k: old["fields"][k][()] for k in old["fields"]}
            old_scalars = {k: old["scalars"][k][()] for k in old["scalars"]}
            old_steps, old_scalar_steps = old["step"][()], old["scalars/step"][()]
        start = time.perf_counter()
        fields, frame_steps, scalars, steps = run_config(resolved)
        seconds = time.perf_counter() - start
        same = np.array_equal(frame_steps, old_steps) and np.array_equal(steps, old_scalar_steps)
        field_diff = {k: relative_difference(fields[k], v) for k, v in old_fields.items() if k in fields}
        common = sorted(set(old_scalars) & set(scalars) - {"time", "step"})
        scalar_diff = {k: relative_difference(scalars[k], old_scalars[k]) for k in common}
        missing = sorted(set(old_scalars) - set(scalars) - {"time", "step"}) + sorted(set(old_fields) - set(fields))
        worst_field = max(field_diff.items(), key=lambda kv: kv[1])
        worst_scalar = max(scalar_diff.items(), key=lambda kv: kv[1])
        note = f" (missing: {', '.join(missing)})" if missing else ""
        print(f"| {name} | {'yes' if same else 'NO'} | {worst_field[1]:.2e} ({worst_field[0]}) | "
              f"{worst_scalar[1]:.2e} ({worst_scalar[0]}){note} | {seconds:.1f} |", flush=True)
        for key, value in sorted({**{f"fields/{k}": v for k, v in field_diff.items()},
                                  **{f"scalars/{k}": v for k, v in scalar_diff.items()}}.items(),
                                 key=lambda kv: -kv[1])[:6]:
            print(f"|   {key} | | {value:.2e} | | |")


if __name__ == "__main__":
    main()
