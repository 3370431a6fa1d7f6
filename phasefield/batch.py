"""Batched runs: many values of one scenario parameter in one jitted computation, with ``vmap``.

For sweeps of small grids on one GPU, launching one process per value wastes the device: a
200^2 step is latency-bound. A scenario's parameters are the leaves of its config pytree, so the
compiled chunk of steps is ``vmap``ped over the members' stacked parameters and states (each with
its own adaptive dt and its own ``t_end``); each member is written to its own
``member_<i>/run.h5`` exactly as a single run, with a Hydra-style ``.hydra/overrides.yaml`` so
``python -m phasefield.post`` tabulates the batch. A member that goes non-finite is marked
``non-finite`` and frozen; the others go on.

With several devices (GPUs, CPU devices forced with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``,
and the devices of every process of a multi-process start, :mod:`phasefield.distributed`) the members are
spread over them: the stacked parameters and states are sharded along the member axis (``jax.sharding``,
a one-axis mesh) and each device steps its own members (``shard_map``: nothing is exchanged); the member
count is padded to a multiple of the device count with idle copies of member 0, which are never written.
Every process runs this loop on the same gathered values; process 0 alone writes. A member's results
equal its single run's to round-off (XLA fuses a vmapped program differently from a single one; measured
4e-16 in ``c`` on the batch test's spinodal), with the same step sequence.

Checkpoints are each member's host arrays, with no device layout: :func:`resume_batch` continues a batch
on any number of devices (``python run.py resume=<batch dir>``).

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
import h5py
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
from phasefield.distributed import agree, any_process, is_writer, layout, sync_processes, to_host
from phasefield.io import CheckpointError, RunWriter, read_checkpoint
from phasefield.registry import scenario
from phasefield.runner import (
    Preempted,
    RunDirectoryError,
    build,
    check_grid,
    check_memory,
    checkpoint_part,
    device_parameters,
    plain,
    preemption_signals,
    restore_carry,
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
    if getattr(base.solver, "decomposition", "none") != "none":
        raise ConfigError("solver.decomposition", base.solver.decomposition,
                          "'none' in a batch: its members are spread over the devices, each member on one")
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
    every array across the devices of every process (``jax.devices()``), and the member count padded to a
    multiple of their number (``None`` and ``count`` on one device)."""
    devices = jax.devices()
    if len(devices) == 1:
        return None, count
    mesh = jax.sharding.Mesh(np.array(devices), ("members",))
    padded = -(-count // len(devices)) * len(devices)
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members")), padded


def per_member(function, sharding, in_axes=0):
    """``function`` of one member, ``vmap``ped over the member axis; with a ``sharding``, each device runs
    it on its own members (``shard_map``): the per-device program is the one-device program, so a member's
    result does not depend on the number of devices (nothing is exchanged; every member is independent)."""
    vmapped = jax.vmap(function, in_axes=in_axes)
    if sharding is None:
        return vmapped
    axes = in_axes if isinstance(in_axes, tuple) else None
    spec = jax.sharding.PartitionSpec("members")
    specs = spec if axes is None else tuple(jax.sharding.PartitionSpec() if a is None else spec for a in axes)
    return jax.shard_map(vmapped, mesh=sharding.mesh, in_specs=specs, out_specs=spec, check_vma=False)


class _NoWriter:
    """What a process other than 0 writes: nothing."""

    file = None

    def write_scalars(self, *args):
        pass

    write_scalar_records = write_frame = write_checkpoint = close = write_scalars

    def last_scalar_time(self):
        return float("nan")


def run_batch(config_dict: dict, key: str, values, run_dir) -> list[Path]:
    """Run ``config_dict`` once per value of ``key`` (a parameter ``scenario.*``) in one vmapped loop."""
    config_dict, values = plain(config_dict), plain(values)
    _check_key(config_dict, key, values)
    values = list(values)
    taken = sorted(Path(run_dir).glob("member_*/run.h5"))
    if taken:  # checked by every process (a shared file system) before any of them computes
        raise RunDirectoryError(f"{taken[0]} already exists; choose a new run directory (hydra.run.dir=...) "
                                f"or continue the batch with resume={run_dir}")
    members = [validate_run(member_config(config_dict, key, v)) for v in values]  # each value checked
    texts = [yaml.safe_dump(member_config(config_dict, key, v), sort_keys=False) for v in values]
    return _run_members(members, texts, key, values, Path(run_dir), resume=None)


def is_batch(run_dir) -> bool:
    """Whether ``run_dir`` holds a batch (``member_<i>/run.h5``, no ``run.h5`` of its own)."""
    run_dir = Path(run_dir)
    return not (run_dir / "run.h5").exists() and (run_dir / "member_0" / "run.h5").exists()


def resume_batch(run_dir, changes: dict | None = None) -> list[Path]:
    """Continue a batch from its members' checkpoints, as one batch on the devices there are now.

    The checkpoints are host arrays of each member alone (no device layout is stored), so a batch
    written on N devices resumes on any M. Members that finished stay as they are, unless ``changes``
    extends their ``scenario.t_end`` (``changes``: keys of :data:`phasefield.runner.RESUMABLE`).
    """
    run_dir = Path(run_dir)
    folders = sorted(run_dir.glob("member_*/run.h5"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not folders or [p.parent.name for p in folders] != [f"member_{i}" for i in range(len(folders))]:
        raise RunDirectoryError(f"{run_dir} holds no batch (member_0/run.h5, member_1/run.h5, ...) to resume")
    members, texts, values, states = [], [], [], []
    key = None
    for path in folders:
        with h5py.File(path, "r", locking=False) as f:
            stored, text, status = yaml.safe_load(f.attrs["config"]) or {}, f.attrs["config"], f.attrs["status"]
        if changes:
            for change, value in changes.items():
                section, name = change.split(".", 1)
                stored.setdefault(section, {})[name] = value
            text = yaml.safe_dump(stored, sort_keys=False)
        override = yaml.safe_load((path.parent / ".hydra" / "overrides.yaml").read_text())[0]
        key, _, value = override.partition("=")
        try:
            saved, clock = read_checkpoint(path)
        except CheckpointError as error:
            raise RunDirectoryError(f"cannot resume the batch: member {path.parent}: {error}") from None
        config = validate_run(stored)
        running = status != "finished" or clock["t"] < config.scenario.t_end * (1 - TIME_TOLERANCE)
        members.append(config)
        texts.append(text)
        values.append(yaml.safe_load(value))
        states.append((saved, clock, running))
    sync_processes("checkpoints read")  # before process 0 reopens the files to append
    if not any(running for _, _, running in states):
        raise RunDirectoryError(f"every member of {run_dir} has finished; nothing to resume "
                                "(extend them with scenario.t_end=...)")
    return _run_members(members, texts, key, values, run_dir, resume=states)


def _run_members(members, texts, key, values, run_dir: Path, resume) -> list[Path]:
    """The batch loop; ``resume``: ``None`` (a new batch) or per member ``(saved carry, clock, running)``."""
    base = members[0]
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

    def on_members(tree):
        """Host arrays of the member axis, placed like the states (sharded over the devices)."""
        tree = jax.tree_util.tree_map(np.asarray, tree)
        return jax.tree_util.tree_map(jnp.asarray, tree) if sharding is None else jax.device_put(tree, sharding)

    def stacked(trees):
        return on_members(jax.tree_util.tree_map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees,
                                                 *[trees[i] for i in padding]))

    params = stacked(member_params)
    check_memory(simulations[0], members[0], member_params[0], copies=-(-total // len(jax.devices())))
    control = time_control(solver, min(stable_dt(s) for s in simulations))
    if resume is None:
        init = jax.jit(stepper.init)  # one program for every member (they differ by parameter leaves, as in the step)
        carry = stacked([init(p, s.initial_fields()) for s, p in zip(simulations, member_params)])
        clocks = [{"t": 0.0, "step": 0, "dt": solver.dt}] * count
    else:
        restored = []
        for index, (simulation, member, (saved, _, _)) in enumerate(zip(simulations, member_params, resume)):
            try:
                restored.append(restore_carry(simulation, member, saved))
            except CheckpointError as error:
                raise RunDirectoryError(f"cannot resume the batch: member {index} ({key}={values[index]}): "
                                        f"{error}") from None
        carry = stacked(restored)
        clocks = [clock for _, clock, _ in resume]
    if sharding is not None:
        log.info("batch of %d members on %d devices (%d processes)", count, len(jax.devices()), jax.process_count())
    t_ends = np.array([m.scenario.t_end for m in members] + [0.0] * len(padding))
    clock = {"t": np.array([c["t"] for c in clocks] + [0.0] * len(padding)),
             "step": np.array([c["step"] for c in clocks] + [0] * len(padding), np.int64),
             "dt": np.array([c["dt"] for c in clocks] + [solver.dt] * len(padding)),
             "dt_taken": np.zeros(total),
             "rejected": np.array([c.get("rejected", 0) for c in clocks] + [0] * len(padding), np.int64)}

    advance_one = make_advance(stepper, control, diagnostics, output.scalar_interval)
    advance = jax.jit(per_member(advance_one.compiled, sharding, in_axes=(0, 0, 0, 0, 0, None, None)))
    shapes = jax.eval_shape(jax.vmap(lambda p, c: empty_records(diagnostics, p, c)), params, carry)
    empty = on_members(jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes))
    diagnose = jax.jit(per_member(diagnostics, sharding))
    fields = jax.jit(per_member(stepper.fields, sharding))
    stop = jax.jit(per_member(stepper.stop, sharding)) if stepper.stop is not None else None
    hold = jax.jit(lambda keep, new, old: jax.tree_util.tree_map(
        lambda n, o: jnp.where(keep.reshape((-1,) + (1,) * (n.ndim - 1)), o, n), new, old))

    writing = is_writer()
    writers, paths = [], []
    dtypes = {k: v.dtype for k, v in jax.eval_shape(jax.vmap(stepper.fields), params, carry).items()}
    stored = [{name: dtypes[name] for name in stored_fields(m, s)} for m, s in zip(members, simulations)]
    status = (["running"] * count if resume is None else ["running" if r else "finished" for _, _, r in resume]) \
        + ["padding"] * len(padding)
    for index, (simulation, value, text) in enumerate(zip(simulations, values, texts)):
        folder = run_dir / f"member_{index}"
        paths.append(folder / "run.h5")
        if not writing or status[index] != "running":
            writers.append(_NoWriter())
        elif resume is not None:
            writers.append(RunWriter.reopen(paths[-1], simulation, clocks[index]))
            writers[-1].file.attrs.update(config=text, **layout())
        else:
            (folder / ".hydra").mkdir(parents=True, exist_ok=True)
            (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{key}={value}"]))
            writers.append(RunWriter(paths[-1], simulation, stored[index], text, output.compression))
            writers[-1].file.attrs.update(layout())
    resumable = [i for i in range(count) if status[i] == "running"]

    def member(tree, index):
        return jax.tree_util.tree_map(lambda x: x[index], tree)

    def write_frames(carry, clock, indices):
        host = to_host({"fields": fields(params, carry), "carry": checkpoint_part(carry)})
        for i in indices:
            member_clock = {k: v[i].item() for k, v in clock.items()}
            writers[i].write_frame(member_clock, member(host["fields"], i))
            writers[i].write_checkpoint(member(host["carry"], i), member_clock)

    def preempt(carry, clock, signum):
        """Checkpoint every running member and stop: the batch resumes (on any device count) with
        ``resume=<batch dir>``, or each member alone as a single run."""
        host = to_host(checkpoint_part(carry))
        for i in range(count):
            if status[i] == "running":
                writers[i].write_checkpoint(member(host, i), {k: v[i].item() for k, v in clock.items()})
                status[i] = "preempted"
        raise Preempted(f"received signal {signum}: batch members checkpointed; continue the batch with: "
                        f"python run.py {shlex.quote(f'resume={run_dir}')} (or each member alone: "
                        + "; ".join(f"resume={paths[i].parent}" for i in resumable) + ")")

    stack = contextlib.ExitStack()
    if resume is None:
        scalars = to_host(diagnose(params, carry))
        for i, writer in enumerate(writers):
            writer.write_scalars({"t": 0.0, "step": 0}, member(scalars, i))
        write_frames(carry, clock, range(count))
    host_params = to_host(params)
    max_steps = 8  # then as many as take about CHUNK_SECONDS: signals are handled between chunks
    running_t = [clock["t"][i] for i in resumable] or [0.0]
    try:
        signals = stack.enter_context(preemption_signals())
        for t_frame in frame_times(float(min(running_t)), float(t_ends.max()), output.interval):
            t_stop = np.minimum(t_frame, t_ends)
            # members still to reach this frame: not one framed already (members reach it in different
            # chunks), nor a resumed one past it (members checkpoint at their own times)
            behind = clock["t"] < t_stop * (1 - TIME_TOLERANCE)
            while True:
                active = np.array([s == "running" for s in status]) & behind
                # members not running are held where they are: a chunk to their own time takes no step
                target = np.where(active, t_stop, clock["t"])
                start = (carry, clock)
                started = time.perf_counter()
                carry, new_clock, finite, records = advance(params, carry, on_members(device_clock(clock)),
                                                            on_members(target), empty,
                                                            jnp.asarray(max_steps, jnp.int64), advance_one.timing)
                new_clock, finite, records = to_host((new_clock, finite, records))
                steps = int(np.max(new_clock["step"] - start[1]["step"]))
                if steps > 0:
                    max_steps = agree(int(np.clip(steps / max(time.perf_counter() - started, 1e-6)
                                                  * integration.CHUNK_SECONDS, 1, 2**62)))
                for i in np.flatnonzero(~finite & active):
                    error = locate_non_finite(stepper, control, diagnostics, output.scalar_interval,
                                              member(host_params, i), member(to_host(start[0]), i),
                                              member(start[1], i), target[i], float(start[1]["t"][i]),
                                              prefix=f"batch member {i} ({key}={values[i]}): ")
                    log.error("%s", error)
                    status[i] = "non-finite"
                    writers[i].close(status[i])
                if not finite.all():  # a failed member keeps its last good state
                    carry = hold(on_members(~finite), carry, start[0])
                clock = {k: np.where(finite, new_clock[k], start[1][k]) for k in new_clock}
                for i in np.flatnonzero(finite & active):
                    writers[i].write_scalar_records(host_records(member(records, i)))
                stopped = to_host(stop(params, carry)) if stop is not None else np.zeros(total, bool)
                reached = clock["t"] >= t_stop * (1 - TIME_TOLERANCE)
                framed = [i for i in range(count) if active[i] and (reached[i] or stopped[i])]
                host_carry = to_host(carry) if any(stopped[i] for i in framed) else None
                if framed:
                    scalars = to_host(diagnose(params, carry))
                    for i in framed:
                        last = writers[i].last_scalar_time()
                        if not abs(last - clock["t"][i]) <= TIME_TOLERANCE * max(clock["t"][i], 1.0):
                            writers[i].write_scalars({k: v[i].item() for k, v in clock.items()}, member(scalars, i))
                    write_frames(carry, clock, framed)
                for i in framed:
                    if stopped[i] and clock["t"][i] < t_ends[i] * (1 - TIME_TOLERANCE):
                        if writers[i].file:
                            writers[i].file.attrs["stop_reason"] = describe_stop(stepper, member(host_params, i),
                                                                                 member(host_carry, i))
                        status[i] = "finished"
                    elif clock["t"][i] >= t_ends[i] * (1 - TIME_TOLERANCE):
                        status[i] = "finished"
                if any_process(bool(signals)):
                    preempt(carry, clock, signals[0] if signals else "on another process")
                behind[framed] = False
                if not any(s == "running" and behind[i] for i, s in enumerate(status)):
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
