"""Same results as recorded runs, without the command line: each case of ``regression_compare.py``
re-run in process from the config stored in its reference ``run.h5`` and compared field by field.

For use while ``phasefield.cli`` is being rewritten (``regression_compare.py`` runs ``python run.py``)::

    PYTHONPATH=$PWD python experiments/regression_inprocess.py /work/reference --cases dendrite dendrite_solid

The run goes through the same integrator with the reference's record schedule (records every
``output.scalar_interval``, frames every ``output.interval``), so the step sequence is the same.
Solver options that the scenario's solver schema no longer has (``scheme`` and ``stabilization`` of
the models with their own step) are dropped. The table gives, per case, whether the step counts
at the records agree and the largest relative difference of the stored fields (over all frames,
relative to the field's largest magnitude) and of the scalars (relative to each scalar's largest
magnitude), as ``regression_compare.py`` does.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import h5py
import jax
import numpy as np
import yaml

from phasefield.config import validate_run
from phasefield.integrate import integrate
from phasefield.registry import scenario
from phasefield.runner import build, device_parameters, initial_carry, stable_dt, time_control


def relative_difference(new, old) -> float:
    new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
    if new.shape != old.shape:
        return float("inf")
    if not old.size:
        return 0.0
    return float(np.max(np.abs(new - old)) / max(np.max(np.abs(old)), 1e-300))


def rerun(stored: dict):
    """Run the stored config in process; returns (record steps, frame steps, scalars, fields)."""
    solver_schema = scenario(stored["scenario"]["name"]).Solver
    known = {f.name for f in dataclasses.fields(solver_schema)}
    solver = {k: v for k, v in stored["solver"].items() if k in known}
    config = validate_run({"scenario": stored["scenario"], "solver": solver, "output": stored["output"]})
    simulation = build(config)
    params = device_parameters(simulation.parameters, config.solver.precision)
    carry = initial_carry(simulation, params)
    diagnostics = jax.jit(simulation.diagnostics)
    interval, t_end = config.output.interval, config.scenario.t_end
    steps, frame_steps, rows, frames = [], [], [], []

    def record(carry, clock):
        steps.append(clock["step"])
        rows.append(jax.device_get(diagnostics(params, carry)))
        ratio = clock["t"] / interval
        if abs(ratio - round(ratio)) < 1e-9 * max(ratio, 1.0) or clock["t"] >= t_end * (1 - 1e-12):
            frame_steps.append(clock["step"])
            frames.append(jax.device_get(simulation.stepper.fields(params, carry)))

    clock = {"t": 0.0, "step": 0, "dt": config.solver.dt}
    record(carry, clock)
    integrate(simulation.stepper, time_control(config.solver, stable_dt(simulation)), params, carry, clock, t_end,
              config.output.scalar_interval, record)
    scalars = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    fields = {k: np.stack([f[k] for f in frames]) for k in frames[0]}
    return np.array(steps), np.array(frame_steps), scalars, fields


def compare(reference: Path):
    with h5py.File(reference, "r") as old:
        stored = yaml.safe_load(old.attrs["config"])
        old_steps, old_frame_steps = old["scalars/step"][()], old["step"][()]
        old_fields = {k: old["fields"][k][()] for k in old["fields"]}
        old_scalars = {k: old["scalars"][k][()] for k in old["scalars"] if k not in ("time", "step")}
    steps, frame_steps, scalars, fields = rerun(stored)
    same_steps = np.array_equal(steps, old_steps) and np.array_equal(frame_steps, old_frame_steps)
    field_diffs = {k: relative_difference(fields.get(k, np.empty(0)), v) for k, v in old_fields.items()}
    scalar_diffs = {k: relative_difference(scalars[k], v) for k, v in old_scalars.items() if k in scalars}
    missing = sorted(set(old_scalars) - set(scalars))
    return same_steps, field_diffs, scalar_diffs, missing


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="folder of recorded runs (<case>/run.h5)")
    parser.add_argument("--cases", nargs="*", help="cases to compare (default: every folder with a run.h5)")
    parser.add_argument("--all-fields", action="store_true", help="one row per field and scalar")
    args = parser.parse_args()
    cases = args.cases or sorted(p.parent.name for p in args.reference.glob("*/run.h5"))
    print("| case | same steps | largest field difference | largest scalar difference | wall s |")
    print("|---|---|---|---|---|")
    for name in cases:
        start = time.perf_counter()
        same_steps, fields, scalars, missing = compare(args.reference / name / "run.h5")
        seconds = time.perf_counter() - start
        field = max(fields.items(), key=lambda kv: kv[1])
        scalar = max(scalars.items(), key=lambda kv: kv[1])
        note = f" (missing scalars: {', '.join(missing)})" if missing else ""
        print(f"| {name} | {'yes' if same_steps else 'NO'} | {field[1]:.2e} ({field[0]}) | "
              f"{scalar[1]:.2e} ({scalar[0]}){note} | {seconds:.1f} |", flush=True)
        if args.all_fields:
            for k, v in sorted({**fields, **scalars}.items(), key=lambda kv: -kv[1]):
                print(f"|   {k} | | {v:.2e} | | |")


if __name__ == "__main__":
    main()
