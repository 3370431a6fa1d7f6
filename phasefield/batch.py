"""Batched runs: many values of one scenario parameter in one jitted computation, with ``vmap``.

For sweeps of small grids on one GPU, launching one process per value wastes the device: a
200^2 step is latency-bound. A scenario's parameters are the leaves of its config pytree, so the
compiled chunk of steps is ``vmap``ped over the members' stacked parameters and states (each with
its own adaptive dt and its own ``t_end``); each member is written to its own
``member_<i>/run.h5`` exactly as a single run, with a Hydra-style ``.hydra/overrides.yaml`` so
``python -m phasefield.post`` tabulates the batch. A member that goes non-finite is marked
``non-finite`` and frozen; the others go on.

With several local devices (GPUs, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the members are spread over them: the stacked
parameters and states are sharded along the member axis (``jax.sharding``, a one-axis mesh), so each
member lives and steps on one device and the compiled chunk runs on all of them at once; the member count
is padded to a multiple of the device count with idle copies of member 0, which are never written.
A member's results equal its single run's to round-off (XLA fuses a vmapped, partitioned program
differently from a single one; measured 4e-16 in ``c`` on the batch test's spinodal), with the same
step sequence.

    python run.py batch.key=scenario.mobility batch.values=[2,5,8]

Options that shape the computation (grid, geometry, choices; see ``option(static=...)``) are not
parameters: sweep those with a Hydra multirun (``python run.py -m scenario.shape=[64,64],[128,128]``).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import shlex
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from phasefield.config import ConfigError, parameter_names, validate_run
import phasefield.integrate as integration
from phasefield.integrate import (
    TIME_TOLERANCE,
    device_clock,
    empty_records,
    frame_times,
    host_records,
    locate_non_finite,
    make_advance,
)
from phasefield.io import RunWriter
from phasefield.registry import scenario
from phasefield.runner import (
    Preempted,
    build,
    check_grid,
    check_memory,
    checkpoint_part,
    device_parameters,
    initial_carry,
    plain,
    preemption_signals,
    stable_dt,
    stored_fields,
    time_control,
)
from phasefield.schemes import describe_stop

log = logging.getLogger("phasefield")


def member_config(config_dict: dict, key: str, value) -> dict:
    section, _, name = key.partition(".")
    member = copy.deepcopy(config_dict)
    member.setdefault(section, {})[name] = value
    return member


def _check_key(config_dict: dict, key: str, values):
    section, _, name = key.partition(".")
    base = validate_run(config_dict)
    schema = scenario(base.scenario.name).Config
    numbers = parameter_names(schema)
    if section != "scenario" or name not in numbers:
        every = {f"scenario.{n}" for n in schema.__dataclass_fields__}
        reason = (f"{key} shapes the computation (grid, geometry or a choice), so it cannot vary inside one "
                  f"compiled batch; sweep it with a multirun (python run.py -m {key}=a,b,c) or batch "
                  if key in every else "")
        raise ConfigError("batch.key", key, reason + "a parameter of scenario " + repr(base.scenario.name) + ": "
                          + ", ".join(f"scenario.{n}" for n in numbers))
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError("batch.values", values, "a non-empty list of numbers, e.g. batch.values=[1,2,3]")
    return base


def member_sharding(count: int):
    """``(sharding, padded)``: a :class:`jax.sharding.NamedSharding` that puts the leading (member) axis of
    every array across the local devices, and the member count padded to a multiple of their number
    (``None`` and ``count`` on one device)."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return None, count
    mesh = jax.sharding.Mesh(np.array(devices), ("members",))
    padded = -(-count // len(devices)) * len(devices)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members")), padded


def run_batch(config_dict: dict, key: str, values, run_dir) -> list[Path]:
    """Run ``config_dict`` once per value of ``key`` (a parameter ``scenario.*``) in one vmapped loop."""
    config_dict, values = plain(config_dict), plain(values)
    base = _check_key(config_dict, key, values)
    values = list(values)
    members = [validate_run(member_config(config_dict, key, v)) for v in values]  # each value checked
    check_grid(base, copies=len(members))
    simulations = [build(m) for m in members]  # per-member checks (explicit dt limit)
    solver, output = base.solver, base.output
    stepper, diagnostics = simulations[0].stepper, simulations[0].diagnostics
    structure = jax.tree_util.tree_structure(simulations[0].parameters)
    assert all(jax.tree_util.tree_structure(s.parameters) == structure for s in simulations)
    member_params = [device_parameters(s.parameters, solver.precision) for s in simulations]
    count = len(members)
    sharding, total = member_sharding(count)
    padding = [0] * (total - count)  # idle copies of member 0 fill the last device(s)

    def stacked(trees):
        tree = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees, *[trees[i] for i in padding])
        return tree if sharding is None else jax.device_put(tree, sharding)

    params = stacked(member_params)
    check_memory(simulations[0], members[0], member_params[0], copies=-(-total // max(1, len(jax.local_devices()))))
    control = time_control(solver, min(stable_dt(s) for s in simulations))
    carry = stacked([initial_carry(s, p) for s, p in zip(simulations, member_params)])
    if sharding is not None:
        log.info("batch of %d members on %d devices", count, len(jax.local_devices()))
    t_ends = np.array([m.scenario.t_end for m in members] + [0.0] * len(padding))
    clock = {"t": np.zeros(total), "step": np.zeros(total, np.int64), "dt": np.full(total, solver.dt),
             "dt_taken": np.zeros(total)}

    def on_members(tree):
        """Host arrays of the member axis, placed like the states (sharded over the devices)."""
        tree = jax.tree_util.tree_map(jnp.asarray, tree)
        return tree if sharding is None else jax.device_put(tree, sharding)

    advance_one = make_advance(stepper, control, diagnostics, output.scalar_interval)
    advance = jax.jit(jax.vmap(advance_one.compiled, in_axes=(0, 0, 0, 0, 0, None)))
    empty = on_members(jax.vmap(lambda p, c: empty_records(diagnostics, p, c))(params, carry))
    diagnose = jax.jit(jax.vmap(diagnostics))
    stop = jax.jit(jax.vmap(stepper.stop)) if stepper.stop is not None else None

    run_dir = Path(run_dir)
    writers, paths = [], []
    dtypes = {k: v.dtype for k, v in jax.vmap(stepper.fields)(params, carry).items()}
    for index, (member, simulation, value) in enumerate(zip(members, simulations, values)):
        folder = run_dir / f"member_{index}"
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{key}={value}"]))
        text = yaml.safe_dump(member_config(config_dict, key, value), sort_keys=False)
        stored = {name: dtypes[name] for name in stored_fields(member, simulation)}
        writers.append(RunWriter(folder / "run.h5", simulation, stored, text, output.compression))
        paths.append(folder / "run.h5")
    status = ["running"] * count + ["padding"] * len(padding)

    def member(tree, index):
        return jax.tree_util.tree_map(lambda x: x[index], tree)

    def write_frames(carry, clock, indices):
        host = jax.device_get({"fields": jax.vmap(stepper.fields)(params, carry), "carry": checkpoint_part(carry)})
        for i in indices:
            member_clock = {k: v[i].item() for k, v in clock.items()}
            writers[i].write_frame(member_clock, member(host["fields"], i))
            writers[i].write_checkpoint(member(host["carry"], i), member_clock)

    def preempt(carry, clock, signum):
        """Checkpoint every running member and stop: each member resumes as a single run."""
        host = jax.device_get(checkpoint_part(carry))
        commands = []
        for i in range(count):
            if status[i] == "running":
                writers[i].write_checkpoint(member(host, i), {k: v[i].item() for k, v in clock.items()})
                status[i] = "preempted"
                commands.append(f"python run.py {shlex.quote(f'resume={paths[i].parent}')}")
        raise Preempted(f"received signal {signum}: batch members checkpointed; continue each with: "
                        + "; ".join(commands))

    stack = contextlib.ExitStack()
    scalars = jax.device_get(diagnose(params, carry))
    for i, writer in enumerate(writers):
        writer.write_scalars({"t": 0.0, "step": 0}, member(scalars, i))
    write_frames(carry, clock, range(count))
    max_steps = 8  # then as many as take about CHUNK_SECONDS: signals are handled between chunks
    try:
        signals = stack.enter_context(preemption_signals())
        for t_frame in frame_times(0.0, float(t_ends.max()), output.interval):
            t_stop = np.minimum(t_frame, t_ends)
            while True:
                active = np.array([s == "running" for s in status])
                # members not running are held where they are: a chunk to their own time takes no step
                target = np.where(active, t_stop, clock["t"])
                start = (carry, clock)
                started = time.perf_counter()
                carry, new_clock, finite, records = advance(params, carry, on_members(device_clock(clock)),
                                                            on_members(target), empty,
                                                            jnp.asarray(max_steps, jnp.int64))
                new_clock = jax.tree_util.tree_map(np.asarray, jax.device_get(new_clock))
                finite = np.asarray(finite)
                steps = int(np.max(new_clock["step"] - start[1]["step"]))
                if steps > 0:
                    max_steps = int(np.clip(steps / max(time.perf_counter() - started, 1e-6) * integration.CHUNK_SECONDS, 1, 2**62))
                for i in np.flatnonzero(~finite & active):
                    error = locate_non_finite(stepper, control, diagnostics, output.scalar_interval, member(params, i),
                                              member(start[0], i), member(start[1], i), target[i],
                                              float(start[1]["t"][i]), prefix=f"batch member {i} ({key}={values[i]}): ")
                    log.error("%s", error)
                    status[i] = "non-finite"
                    writers[i].close(status[i])
                # a failed member keeps its last good state
                keep = jnp.asarray(~finite)
                carry = jax.tree_util.tree_map(
                    lambda new, old: jnp.where(keep.reshape((-1,) + (1,) * (new.ndim - 1)), old, new), carry, start[0])
                clock = {k: np.where(finite, new_clock[k], start[1][k]) for k in new_clock}
                for i in np.flatnonzero(finite & active):
                    writers[i].write_scalar_records(host_records(member(records, i)))
                stopped = np.asarray(stop(params, carry)) if stop is not None else np.zeros(total, bool)
                reached = clock["t"] >= t_stop * (1 - TIME_TOLERANCE)
                framed = [i for i in range(count) if status[i] == "running" and (reached[i] or stopped[i])]
                if framed:
                    scalars = jax.device_get(diagnose(params, carry))
                    for i in framed:
                        last = writers[i].file["scalars/time"][-1] / writers[i].time_scale
                        if abs(last - clock["t"][i]) > TIME_TOLERANCE * max(clock["t"][i], 1.0):
                            writers[i].write_scalars({k: v[i].item() for k, v in clock.items()}, member(scalars, i))
                    write_frames(carry, clock, framed)
                for i in framed:
                    if stopped[i] and clock["t"][i] < t_ends[i] * (1 - TIME_TOLERANCE):
                        writers[i].file.attrs["stop_reason"] = describe_stop(stepper, member(params, i),
                                                                             member(carry, i))
                        status[i] = "finished"
                    elif clock["t"][i] >= t_ends[i] * (1 - TIME_TOLERANCE):
                        status[i] = "finished"
                if signals:
                    preempt(carry, clock, signals[0])
                running = [s == "running" for s in status]
                if not any(r and not reached[i] for i, r in enumerate(running)):
                    break
            log.info("batch of %d: t = %.6g / %g", count, t_frame, t_ends.max())
            if not any(s == "running" for s in status):
                break
    finally:
        stack.close()
        for i, writer in enumerate(writers):
            if writer.file:
                writer.close("failed" if status[i] == "running" else status[i])
    failed = [i for i, s in enumerate(status[:count]) if s != "finished"]
    if failed:
        log.error("batch members %s did not finish: %s", failed, [status[i] for i in failed])
    return paths
