"""Batched runs: many values of one scenario parameter in one jitted computation, with ``vmap``.

For sweeps of small grids on one GPU, launching one process per value wastes the device: a
200^2 step is latency-bound. Here the model is built inside ``vmap`` with the swept parameter
as a traced scalar, so one compiled loop advances every member at once (each with its own
adaptive dt); each member is written to its own ``member_<i>/run.h5`` exactly as a single run,
with a Hydra-style ``.hydra/overrides.yaml`` so ``python -m phasefield.post`` tabulates the batch.

    python run.py batch.key=scenario.mobility batch.values=[2,5,8]
"""
from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from phasefield.cli import build, check_memory, is_frame_time, stored_fields, time_control
from phasefield.config import ConfigError, scenario_modules, validate_run
from phasefield.integrate import locate_non_finite, make_advance, record_times
from phasefield.io import RunWriter

log = logging.getLogger("phasefield")


def member_config(config_dict: dict, key: str, value) -> dict:
    section, _, name = key.partition(".")
    member = copy.deepcopy(config_dict)
    member.setdefault(section, {})[name] = value
    return member


def run_batch(config_dict: dict, key: str, values: list, run_dir) -> list[Path]:
    """Run ``config_dict`` once per value of ``key`` (a numeric ``scenario.*`` key) in one vmapped loop."""
    section, _, name = key.partition(".")
    base = validate_run(config_dict)
    numeric = {f.name for f in dataclasses.fields(base.scenario) if f.type in ("float", float)}
    if section != "scenario" or name not in numeric:
        raise ConfigError("batch.key", key, "a numeric scenario key: " + ", ".join(f"scenario.{n}" for n in sorted(numeric)))
    if not values:
        raise ConfigError("batch.values", values, "a non-empty list of numbers")
    members = [validate_run(member_config(config_dict, key, v)) for v in values]  # each value checked
    check_memory(members[0], copies=len(members))
    simulations = [build(m) for m in members]  # per-member checks (explicit dt limit)
    module = scenario_modules()[base.scenario.name]
    solver, output, t_end = base.solver, base.output, base.scenario.t_end
    dtype = jnp.dtype(solver.precision)

    def member_simulation(value):
        return module.build(dataclasses.replace(base.scenario, **{name: value}), solver)

    control = time_control(solver, min(float(s.stepper.stable_dt) for s in simulations))

    def advance_member(value, carry, clock, t_stop):
        return make_advance(member_simulation(value).stepper, control)(carry, clock, t_stop)

    def diagnostics_member(value, carry):
        simulation = member_simulation(value)
        return simulation.diagnostics(carry)

    advance = jax.jit(jax.vmap(advance_member, in_axes=(0, 0, 0, None)))
    diagnostics = jax.jit(jax.vmap(diagnostics_member))
    parameter = jnp.asarray([getattr(m.scenario, name) for m in members], dtype)
    carry = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[s.stepper.init(s.initial_fields()) for s in simulations])
    count = len(members)
    clock = {"t": np.zeros(count), "step": np.zeros(count, np.int64), "dt": np.full(count, solver.dt)}

    run_dir = Path(run_dir)
    writers, paths = [], []
    dtypes = {k: v.dtype for k, v in simulations[0].stepper.fields(carry).items()}
    for index, (member, simulation, value) in enumerate(zip(members, simulations, values)):
        folder = run_dir / f"member_{index}"
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{key}={value}"]))
        text = yaml.safe_dump(member_config(config_dict, key, value), sort_keys=False)
        stored = {name: dtypes[name] for name in stored_fields(member, simulation)}
        writers.append(RunWriter(folder / "run.h5", simulation, stored, text,
                                 output.compression))
        paths.append(folder / "run.h5")

    ended = [False] * count  # members whose stop event (e.g. a short circuit) fired: frozen, not recorded

    def record(carry, clock, t_stop=0.0):
        scalars = jax.device_get(diagnostics(parameter, carry))
        host_carry = None  # copied from the device only when some member writes a frame
        for index, writer in enumerate(writers):
            if ended[index]:
                continue
            member_clock = {k: v[index].item() for k, v in clock.items()}
            ended[index] = member_clock["t"] < t_stop * (1 - 1e-12)
            if ended[index]:
                writer.file.attrs["stop_reason"] = simulations[index].stepper.stop_reason
            frame = ended[index] or is_frame_time(member_clock["t"], output.interval, t_end)
            member_carry = {}
            if frame:
                host_carry = host_carry or jax.device_get(carry)
                member_carry = {k: v[index] for k, v in host_carry.items()}
            writer.write_record(member_clock, {k: v[index] for k, v in scalars.items()},
                                simulations[index].stepper.fields(member_carry) if frame else {}, member_carry,
                                frame=frame, checkpoint=False)

    status = "failed"
    try:
        record(carry, clock)
        last_good_t = 0.0
        for t_stop in record_times(0.0, t_end, output.scalar_interval):
            start = (carry, clock)
            carry, clock, finite = advance(parameter, carry, clock, t_stop)
            finite = np.asarray(finite)
            if not finite.all():
                bad = int(np.argmin(finite))
                member = [jax.tree_util.tree_map(lambda x: x[bad], part) for part in start]
                error = locate_non_finite(simulations[bad].stepper, control, *member, t_stop, last_good_t)
                error.fields = [f"member {bad} ({key}={values[bad]}): {f}" for f in error.fields]
                error.args = (f"batch member {bad} ({key}={values[bad]}): {error}",)
                raise error
            last_good_t = t_stop
            record(carry, clock, t_stop)
            log.info("batch of %d: t = %.6g / %g", count, t_stop, t_end)
        status = "finished"
    finally:
        for writer in writers:
            writer.close(status)
    return paths
