"""Build a validated run and drive it: time control, parameters on the device, memory check, run loop.

The command line (:mod:`phasefield.cli`) and batches (:mod:`phasefield.batch`) both go through
here; nothing in this module knows a particular scenario (they come from the registry).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import time as _time
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import yaml

from phasefield.config import ConfigError, RunConfig, validate_run
from phasefield.distributed import layout
from phasefield.integrate import (
    LYAPUNOV_TOLERANCE,
    SECOND_ORDER_LYAPUNOV_TOLERANCE,
    EnergyIncreaseError,
    NonFiniteError,
    TimeControl,
    check_lyapunov,
    device_clock,
    empty_records,
    integrate,
    make_advance,
    non_finite_fields,
)
from phasefield.io import CheckpointError, RunWriter, read_checkpoint
from phasefield.registry import scenario
from phasefield.schemes import CHECKPOINTED, describe_stop
from phasefield.simulation import Simulation

log = logging.getLogger("phasefield")
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def build(config: RunConfig) -> Simulation:
    """The scenario of ``config``, with the checks that need the built model (explicit dt limit).

    A fixed or initial dt above the model's explicit stability limit is refused; adaptive steps are
    kept below it by :func:`time_control`.
    """
    simulation = scenario(config.scenario.name).build(config.scenario, config.solver)
    limit = stable_dt(simulation)
    if config.solver.dt > limit:
        raise ConfigError("solver.dt", config.solver.dt,
                          f"0 < dt <= {limit:.4g}, the explicit stability limit of this grid and model")
    return simulation


def stable_dt(simulation: Simulation) -> float:
    """The explicit stability limit of ``simulation`` at its own (concrete) parameters."""
    return float(simulation.stepper.stable_dt(simulation.parameters))


def time_control(solver, stable: float = float("inf")) -> TimeControl:
    """The step-size policy of ``solver``; adaptive steps never exceed the model's stable dt."""
    return TimeControl(
        dt=solver.dt,
        adaptive=solver.adaptive,
        dt_min=min(solver.dt_min, stable),
        dt_max=min(solver.dt_max, stable),
        target_change=solver.target_change,
        reject_above=solver.reject_above,
    )


def device_parameters(parameters, precision: str):
    """The parameter pytree as device scalars: floats in the working precision (as the constants of a
    float32 run are rounded to float32), integers as int64."""
    dtype = jnp.dtype(precision)

    def leaf(value):
        value = np.asarray(value)
        return jnp.asarray(value, jnp.int64 if np.issubdtype(value.dtype, np.integer) else dtype)

    return jax.tree_util.tree_map(leaf, parameters)


def initial_carry(simulation: Simulation, params):
    """The carry of ``simulation`` at t = 0, computed by one compiled program (eagerly, each operation of the
    start, e.g. a spectral scheme's transforms, would compile a program of its own)."""
    return jax.jit(simulation.stepper.init)(params, simulation.initial_fields())


def checkpoint_part(carry) -> dict:
    """What a checkpoint stores: the state and the scheme history, not the diagnostics cache."""
    return {name: carry[name] for name in CHECKPOINTED}


def restore_carry(simulation: Simulation, params, saved: dict):
    """A carry from a checkpoint's state and history, with the cache at zeros (its shapes from ``init``).

    Spectral coefficients of a run split into slabs are zero-padded along axis 1 to a multiple of the
    device count (:class:`phasefield.operators.SpectralBasis`); written on another count, they are cut or
    zero-padded to this run's shape (the cut entries are the padding's zeros).
    """
    shapes = jax.eval_shape(lambda p: initial_carry(simulation, p), params)
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])

    def fit(array, shape):
        array = np.asarray(array)
        if array.shape == shape.shape or array.ndim != len(shape.shape):
            return jnp.asarray(array)
        array = array[tuple(slice(0, n) for n in shape.shape)]
        return jnp.asarray(np.pad(array, [(0, n - m) for n, m in zip(shape.shape, array.shape)]))

    expected = {name: shapes[name] for name in CHECKPOINTED}
    found = {name: saved.get(name, {}) for name in CHECKPOINTED}
    extra, missing = sorted(_paths(found) - _paths(expected)), sorted(_paths(expected) - _paths(found))
    if extra or missing:
        raise CheckpointError(
            "the checkpoint does not hold this model's state: "
            + "; ".join(f"{what} {', '.join(paths)}" for what, paths in (("it has", extra), ("it lacks", missing))
                        if paths)
            + " (written by another version of phasefield or another configuration of the scenario: resume with the "
              "version and the static keys that wrote it)")
    return {**jax.tree_util.tree_map(fit, found, expected), "cache": cache}


def _paths(tree, prefix="") -> set[str]:
    """The ``a/b/c`` paths of a nested dict's leaves; an empty dict below the top is a path of its own (``a/b/``),
    so that a checkpoint lacking it is told apart (the restored tree would not have the model's structure)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("/")}
    if not tree:
        return {prefix} if prefix.count("/") > 1 else set()
    return set().union(*(_paths(value, f"{prefix}{name}/") for name, value in tree.items()))


def stored_fields(config: RunConfig, simulation: Simulation) -> list[str]:
    requested = list(config.output.fields)
    if requested == ["all"]:
        return list(simulation.field_info)
    for name in requested:
        if name not in simulation.field_info:
            raise ConfigError("output.fields", requested, f"'all' or a list of {', '.join(simulation.field_info)}")
    return requested


class RunDirectoryError(RuntimeError):
    """The run directory already holds a run, holds nothing to resume, or another process writes it."""


class RunLock:
    """``run.lock`` next to ``run.h5``: one writer per run, also where HDF5 file locking is off (Lustre, NFS).

    The lock file holds ``host pid``; it is created exclusively and removed when the run ends. A lock
    left by a process that no longer exists on this host is stale and taken over; a lock held by a
    live process, or by another host, refuses the run with who holds it.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "run.lock"
        self.held = False

    def __enter__(self):
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                host, _, pid = self.path.read_text().partition(" ")
                if host == socket.gethostname() and not _process_alive(int(pid or 0)):
                    self.path.unlink(missing_ok=True)  # stale: its writer is gone
                    continue
                raise RunDirectoryError(f"{self.path.parent} is being written by process {pid} on {host} "
                                        f"({self.path}; delete it if that process is gone)") from None
            with os.fdopen(descriptor, "w") as f:
                f.write(me)
            self.held = True
            return self
        raise RunDirectoryError(f"could not take {self.path}")

    def __exit__(self, *exc):
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Preempted(RuntimeError):
    """SIGTERM or SIGUSR1 arrived; a checkpoint was written and the run stopped cleanly."""


@contextlib.contextmanager
def preemption_signals():
    """Record SIGTERM/SIGUSR1 (what SLURM sends before a time limit or preemption) instead of dying."""
    received = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum)) for sig in PREEMPT_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Progress:
    """A progress bar (simulated time, steps/s, ETA) when stderr is a terminal; nothing otherwise.

    Batch logs get the plain ``t = ... step ... steps/s`` line of every frame instead. While the
    bar is shown, console log lines go through tqdm so they print above it (run.log is unchanged).
    """

    def __init__(self, t_end: float, t_start: float):
        self.bar, self._redirect = None, None
        if sys.stderr.isatty():
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self.bar = tqdm(total=t_end, initial=t_start, unit="t", unit_scale=False, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")

    def update(self, clock, steps_per_second: float):
        if self.bar is not None:
            self.bar.n = clock["t"]
            self.bar.set_postfix_str(f"step {clock['step']}, {steps_per_second:.0f} steps/s, "
                                     f"dt {clock['dt_taken']:.3g}", refresh=False)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)


# what a resume may change: how far the run goes and what it writes, not what it computes
RESUMABLE = ("scenario.t_end", "output.interval", "output.scalar_interval", "output.checkpoint_minutes",
             "output.plots")


def _stored_config(path: Path, changes: dict) -> tuple[dict, str]:
    try:
        with h5py.File(path, "r") as f:
            text, status = f.attrs["config"], f.attrs["status"]
    except (OSError, KeyError, ValueError) as error:
        raise RunDirectoryError(f"{path} is not a readable phasefield run ({error}); nothing to resume") from None
    stored = yaml.safe_load(text) or {}
    if status == "finished" and not changes.get("scenario.t_end", 0.0) > stored.get("scenario", {}).get("t_end", 0.0):
        raise RunDirectoryError(f"{path} holds a finished run; nothing to resume (extend it with scenario.t_end=...)")
    return stored, text


def record_config(run_dir: Path, config_yaml: str, overrides: list[str] | None):
    """``.hydra/config.yaml`` and ``.hydra/overrides.yaml`` of an accepted run (what Hydra would write,
    but only once nothing can refuse the run any more; ``phasefield.post`` tabulates sweeps by them)."""
    folder = run_dir / ".hydra"
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(config_yaml)
    (folder / "overrides.yaml").write_text(yaml.safe_dump(list(overrides or []), sort_keys=False))


def _execute(simulation, config, config_yaml, params, advance, fields_to_store, run_dir: Path, resume: bool,
             changes: dict | None, overrides: list[str] | None = None) -> dict:
    """The run itself, under its lock: open or create ``run.h5``, integrate, write records, frames and
    checkpoints. Returns the wall-clock bookkeeping."""
    path = run_dir / "run.h5"
    stepper = simulation.stepper
    if resume:
        try:
            saved, clock = read_checkpoint(path)
        except CheckpointError as error:
            raise RunDirectoryError(f"cannot resume: {error}") from None
        try:
            carry = restore_carry(simulation, params, saved)
        except CheckpointError as error:
            raise RunDirectoryError(f"cannot resume {path}: {error}") from None
        writer = RunWriter.reopen(path, simulation, clock)
        writer.file.attrs.update(layout())
        if changes:
            writer.file.attrs["config"] = config_yaml
            log.info("resuming with %s", ", ".join(f"{k}={v}" for k, v in changes.items()))
        log.info("resuming %s from t = %g (step %d)", path, clock["t"], clock["step"])
    else:
        if path.exists():
            raise RunDirectoryError(f"{path} already exists; choose a new run directory (hydra.run.dir=...) "
                                    f"or continue it with resume={run_dir}")
        carry, clock = initial_carry(simulation, params), {"t": 0.0, "step": 0, "dt": config.solver.dt}
        fields = stepper.fields(params, carry)
        bad = non_finite_fields(fields)
        if bad:
            raise ConfigError("scenario", config.scenario.name,
                              f"a config whose initial state is finite; field(s) {', '.join(bad)} are not")
        writer = RunWriter(path, simulation, {name: fields[name].dtype for name in fields_to_store}, config_yaml,
                           config.output.compression)
        writer.file.attrs.update(layout())
        record_config(run_dir, config_yaml, overrides)
    log.info("scenario %s on grid %s, dt %g, %s on %s", simulation.name, simulation.grid.shape,
             config.solver.dt, config.solver.precision, jax.default_backend())

    output, t_end = config.output, config.scenario.t_end
    diagnostics = simulation.diagnostics
    headline = next(iter(simulation.scalar_info))
    wall = {"start": _time.perf_counter(), "checkpoint": _time.perf_counter(), "step0": clock["step"],
            "checkpoint_t": clock["t"]}
    progress = Progress(t_end, clock["t"])

    def on_chunk(carry, clock, records, frame):
        if simulation.lyapunov is not None:
            tolerance = LYAPUNOV_TOLERANCE if stepper.order == 1 else SECOND_ORDER_LYAPUNOV_TOLERANCE
            wall["energy"] = check_lyapunov(simulation.lyapunov, records, wall.get("energy"), clock["dt_taken"],
                                            tolerance)
        writer.write_scalar_records(records)
        now = _time.perf_counter()
        rate = (clock["step"] - wall["step0"]) / max(now - wall["start"], 1e-9)
        progress.update(clock, rate)
        # one snapshot: a signal arriving later is handled after the next chunk; a run that reached its
        # end has nothing left to resume
        stop = bool(signals) and not (frame and clock["t"] >= t_end * (1 - 1e-12))
        checkpoint = frame or stop or now - wall["checkpoint"] > 60 * output.checkpoint_minutes
        if frame:
            writer.write_frame(clock, stepper.fields(params, carry))
        if checkpoint:
            writer.write_checkpoint(checkpoint_part(carry), clock)
            wall["checkpoint"], wall["checkpoint_t"] = now, clock["t"]
        if frame:
            scalars = records[-1][1]
            retaken = f" ({clock['rejected']} taken again)" if clock.get("rejected") else ""
            log.info("t = %.6g / %g  step %d%s  dt %.3g  %s %.6g  (%.1f steps/s)", clock["t"], t_end,
                     clock["step"], retaken, clock["dt_taken"], headline, scalars[headline], rate)
        if stop:
            raise Preempted(f"received signal {signals[0]}: checkpoint written at t = {clock['t']:.6g} "
                            f"(step {clock['step']}); continue with: python run.py "
                            f"{shlex.quote(f'resume={run_dir}')}")

    status = "failed"
    with preemption_signals() as signals:
        try:
            if not resume:
                scalars = {k: float(v) for k, v in jax.device_get(jax.jit(diagnostics)(params, carry)).items()}
                writer.write_scalars(clock, scalars)
                if simulation.lyapunov is not None:
                    wall["energy"] = scalars[simulation.lyapunov]
                writer.write_frame(clock, stepper.fields(params, carry))
                writer.write_checkpoint(checkpoint_part(carry), clock)
            carry, clock = integrate(stepper, time_control(config.solver, stable_dt(simulation)), params, carry,
                                     clock, t_end, output.interval, output.scalar_interval, diagnostics, on_chunk, advance)
            status = "finished"
            if clock["t"] < t_end * (1 - 1e-12):
                reason = describe_stop(stepper, params, carry)
                writer.file.attrs["stop_reason"] = reason
                log.info("stopped at t = %.6g (step %d): %s", clock["t"], clock["step"], reason)
        except NonFiniteError as error:
            status = "non-finite"
            error.last_good_time = wall["checkpoint_t"]
            raise
        except EnergyIncreaseError:
            status = "energy-increase"
            raise
        except Preempted:
            status = "preempted"
            raise
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            progress.close()
            writer.close(status)
    return wall


def plain(value):
    """A config from Python as plain YAML-able values: numpy scalars and arrays become numbers and lists."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def run(config_dict: dict | None, run_dir, config_yaml: str = "", resume: bool = False,
        changes: dict | None = None, overrides: list[str] | None = None) -> Path:
    """Validate ``config_dict``, run it and write ``run_dir/run.h5`` (+ PNGs). Returns the file path.

    With ``resume=True`` the config stored in ``run_dir/run.h5`` is used and the run continues
    from its checkpoint exactly as if it had never stopped (records after the checkpoint are dropped).
    ``changes`` (``{"scenario.t_end": 200.0, ...}``, keys of ``RESUMABLE``) extend or re-schedule it; a
    finished run can be resumed to a later ``t_end``. ``overrides`` (the command line's) are recorded in
    ``run_dir/.hydra/overrides.yaml`` with the config, once the new run is accepted.
    """
    if jax.process_count() > 1:
        raise ConfigError("batch.key", None, "a batch (batch.key=scenario.<parameter>) when several processes start "
                          "together: they spread a batch's members over their devices; one run is not split "
                          "over processes (no domain decomposition)")
    run_dir = Path(run_dir)
    path = run_dir / "run.h5"
    config_dict = plain(config_dict)
    if resume:
        if not path.exists():
            raise RunDirectoryError(f"nothing to resume: {path} does not exist")
        config_dict, config_yaml = _stored_config(path, changes or {})
        if changes:
            for key, value in changes.items():
                section, name = key.split(".", 1)
                config_dict.setdefault(section, {})[name] = value
            config_yaml = yaml.safe_dump(config_dict, sort_keys=False)
    config = validate_run(config_dict)
    config_yaml = config_yaml or yaml.safe_dump(config_dict, sort_keys=False)
    check_grid(config)
    simulation, advance = shared_steps(build(config), config)
    fields_to_store = stored_fields(config, simulation)
    params = device_parameters(simulation.parameters, config.solver.precision)
    check_memory(simulation, config, params, advance=advance)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(run_dir):
            wall = _execute(simulation, config, config_yaml, params, advance, fields_to_store, run_dir, resume,
                            changes, overrides)
    except PermissionError as error:
        raise RunDirectoryError(f"cannot write the run in {run_dir}: {error}") from None
    log.info("finished in %.2f s; wrote %s", _time.perf_counter() - wall["start"], path)
    if config.output.plots:
        from phasefield.analysis.plots import write_run_plots

        write_run_plots(run_dir)
    return path


def abstract_carry(simulation: Simulation, params):
    """Shapes and dtypes of the carry, without computing (or allocating) the initial state."""
    fields = {name: jax.ShapeDtypeStruct(simulation.grid.shape, jnp.float64) for name in simulation.field_info}
    return jax.eval_shape(simulation.stepper.init, params, fields)


def make_run_advance(simulation: Simulation, config: RunConfig):
    """The jitted chunk of steps of a run (:func:`phasefield.integrate.make_advance`)."""
    control = time_control(config.solver, stable_dt(simulation))
    return make_advance(simulation.stepper, control, simulation.diagnostics, config.output.scalar_interval)


SHARED_STEPS = 8  # compiled chunks kept for runs of the same structure in one process (a multirun sweep)
_shared_steps: dict = {}  # a process-wide cache, on purpose: it outlives the run that filled it
STEP_SIZES = ("dt", "dt_min", "dt_max", "target_change")  # arguments of a compiled chunk, not part of it


def run_structure(simulation: Simulation, config: RunConfig) -> tuple:
    """What fixes a run's compiled program: the scenario, its options other than parameters (the scenario
    config is the model's parameter pytree, so these are its tree structure), the solver options other than
    the step sizes, and the code of the stepper's and diagnostics' functions (a stepper changed after its
    build is not the model's). Runs that differ in parameter values, step sizes, record interval or ``t_end``
    only share it."""
    solver = {k: v for k, v in vars(config.solver).items() if k not in STEP_SIZES}
    code = tuple(getattr(f, "__code__", id(f)) for f in (*simulation.stepper, simulation.diagnostics) if callable(f))
    return (config.scenario.name, jax.tree_util.tree_structure(config.scenario), repr(solver), len(jax.devices()),
            code)


def shared_steps(simulation: Simulation, config: RunConfig):
    """``(simulation, advance)`` with the stepper, diagnostics and compiled chunk of steps of the first run of the
    same :func:`run_structure` in this process, if there was one: a sweep run one job after another (Hydra's
    basic launcher) traces and compiles once. Sound because every function of a :class:`Simulation` takes
    the parameters as its first argument (test_model_layer checks that no value is closed over at build time);
    ``simulation``'s own parameters, initial fields and stable step are kept. The last :data:`SHARED_STEPS`
    structures are kept (their executables stay in memory, which ``check_memory`` does not count)."""
    key = run_structure(simulation, config)
    if key not in _shared_steps:
        if len(_shared_steps) >= SHARED_STEPS:
            _shared_steps.pop(next(iter(_shared_steps)))
        _shared_steps[key] = simulation.stepper, simulation.diagnostics, make_run_advance(simulation, config)
    stepper, diagnostics, advance = _shared_steps[key]
    control = time_control(config.solver, stable_dt(simulation))
    simulation = dataclasses.replace(simulation, stepper=stepper, diagnostics=diagnostics)
    return simulation, advance.retimed(control, config.output.scalar_interval)


def check_grid(config: RunConfig, copies: int = 1):
    """Refuse, before building anything, a grid whose bare state (one field per stored quantity is the
    least a model holds, two arrays per cell a floor) cannot fit: :func:`check_memory` then measures."""
    from phasefield.memory import check_fits

    itemsize = jnp.dtype(config.solver.precision).itemsize
    check_fits(2 * itemsize * int(np.prod(config.scenario.shape)), "scenario.shape", config.scenario.shape, copies)


def chunk_memory_bytes(simulation: Simulation, config: RunConfig, params, advance=None) -> int:
    """Peak device bytes of one compiled chunk of steps, from XLA's memory analysis (:mod:`phasefield.memory`),
    computed from shapes only (nothing of grid size is allocated)."""
    from phasefield.memory import abstract, compiled_memory_bytes

    advance = advance or make_run_advance(simulation, config)
    carry = abstract_carry(simulation, params)
    records = jax.eval_shape(lambda p, c: empty_records(simulation.diagnostics, p, c), params, carry)
    clock = abstract(device_clock({"t": 0.0, "step": 0, "dt": config.solver.dt}))
    return compiled_memory_bytes(advance.compiled, abstract(params), carry, clock,
                                 jax.ShapeDtypeStruct((), jnp.float64), records, jax.ShapeDtypeStruct((), jnp.int64),
                                 abstract(advance.timing))


def check_memory(simulation: Simulation, config: RunConfig, params, copies: int = 1, advance=None):
    """Refuse, before allocating anything, a run (times ``copies`` batch members) that will not fit the
    device: the peak of one compiled chunk of steps (:func:`chunk_memory_bytes`).

    Compiling ``advance`` here costs nothing extra: the run's first call finds it in JAX's cache.
    """
    from phasefield.memory import check_fits

    needed = chunk_memory_bytes(simulation, config, params, advance)
    check_fits(needed, "scenario.shape", config.scenario.shape, copies)
