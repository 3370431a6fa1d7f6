"""Run a validated config: build the scenario, integrate, write ``run.h5`` and figures.

``run.py`` (Hydra) resolves the config and calls :func:`main`; :func:`run` is the same
thing as a Python API for scripts and tests. User errors (bad config, an existing run)
are printed as one message with exit status 2, never as a traceback.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time as _time
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import yaml

from phasefield.config import ConfigError, RunConfig, scenario_modules, validate_run
from phasefield.integrate import NonFiniteError, TimeControl, integrate
from phasefield.io import RunWriter, read_checkpoint
from phasefield.simulation import Simulation

log = logging.getLogger("phasefield")
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
EXIT_USER_ERROR, EXIT_NON_FINITE, EXIT_PREEMPTED = 2, 3, 75  # 75: EX_TEMPFAIL, "try again" (resume)


class RunDirectoryError(RuntimeError):
    """The run directory already holds a run."""


def build(config: RunConfig) -> Simulation:
    """The scenario of ``config``, with the checks that need the built model (explicit dt limit).

    A fixed or initial dt above the model's explicit stability limit is refused; adaptive steps are
    kept below it by :func:`time_control`.
    """
    simulation = scenario_modules()[config.scenario.name].build(config.scenario, config.solver)
    limit = simulation.stepper.stable_dt
    if config.solver.dt > limit:
        raise ConfigError("solver.dt", config.solver.dt,
                          f"0 < dt <= {limit:.4g}, the explicit stability limit of this grid and model")
    return simulation


def check_memory(config: RunConfig, copies: int = 1):
    """Refuse, before allocating anything, a grid (times ``copies`` batch members) that will not fit the device."""
    module = scenario_modules()[config.scenario.name]
    cells = 1
    for n in config.scenario.shape:
        cells *= n
    itemsize = 8 if config.solver.precision == "float64" else 4
    needed = copies * cells * itemsize * module.arrays_per_cell(config.solver.scheme)
    available = device_memory_bytes()
    if needed > 0.9 * available:
        raise ConfigError("scenario.shape", config.scenario.shape,
                          f"a grid that fits the device: this one needs about {needed / 2**30:.3g} GiB, "
                          f"{jax.default_backend()} has {available / 2**30:.3g} GiB")


def device_memory_bytes() -> int:
    """Memory of the default device: the allocator limit on accelerators, physical RAM on the CPU."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def time_control(solver, stable_dt: float = float("inf")) -> TimeControl:
    """The step-size policy of ``solver``; adaptive steps never exceed the model's ``stable_dt``."""
    return TimeControl(
        dt=solver.dt,
        adaptive=solver.adaptive,
        dt_min=min(solver.dt_min, stable_dt),
        dt_max=min(solver.dt_max, stable_dt),
        target_change=solver.target_change,
    )


def stored_fields(config: RunConfig, simulation: Simulation) -> list[str]:
    requested = config.output.fields
    if requested == ["all"]:
        return list(simulation.field_info)
    for name in requested:
        if name not in simulation.field_info:
            raise ConfigError("output.fields", requested, f"'all' or a list of {', '.join(simulation.field_info)}")
    return requested


def is_frame_time(t: float, interval: float, t_end: float) -> bool:
    """Field frames fall on whole multiples of ``output.interval`` and on ``t_end``."""
    k = round(t / interval)
    return abs(t - k * interval) <= 1e-9 * max(interval, abs(t)) or t >= t_end * (1 - 1e-12)


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
            self.bar.set_postfix_str(f"step {clock['step']}, {steps_per_second:.0f} steps/s, dt {clock['dt']:.3g}",
                                     refresh=False)
            self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)


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


def _stored_config(path: Path) -> tuple[dict, str]:
    with h5py.File(path, "r") as f:
        text, status = f.attrs["config"], f.attrs["status"]
    if status == "finished":
        raise RunDirectoryError(f"{path} holds a finished run; nothing to resume")
    return yaml.safe_load(text) or {}, text


def run(config_dict: dict | None, run_dir, config_yaml: str = "", resume: bool = False) -> Path:
    """Validate ``config_dict``, run it and write ``run_dir/run.h5`` (+ PNGs). Returns the file path.

    With ``resume=True`` the config stored in ``run_dir/run.h5`` is used and the run continues
    from its checkpoint exactly as if it had never stopped (records after the checkpoint are dropped).
    """
    run_dir = Path(run_dir)
    path = run_dir / "run.h5"
    if resume:
        if not path.exists():
            raise RunDirectoryError(f"nothing to resume: {path} does not exist")
        config_dict, config_yaml = _stored_config(path)
    config = validate_run(config_dict)
    config_yaml = config_yaml or yaml.safe_dump(config_dict, sort_keys=False)
    check_memory(config)
    simulation = build(config)
    fields_to_store = stored_fields(config, simulation)
    stepper = simulation.stepper
    if resume:
        saved, clock = read_checkpoint(path)
        carry = jax.tree_util.tree_map(jnp.asarray, saved)
        writer = RunWriter.reopen(path, simulation, clock)
        log.info("resuming %s from t = %g (step %d)", path, clock["t"], clock["step"])
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        if path.exists():
            raise RunDirectoryError(f"{path} already exists; choose a new run directory (hydra.run.dir=...) "
                                    f"or continue it with resume={run_dir}")
        carry, clock = stepper.init(simulation.initial_fields()), {"t": 0.0, "step": 0, "dt": config.solver.dt}
        dtypes = {name: stepper.fields(carry)[name].dtype for name in fields_to_store}
        writer = RunWriter(path, simulation, dtypes, config_yaml, config.output.compression)
    log.info("scenario %s on grid %s, scheme %s, dt %g, %s on %s", simulation.name, simulation.grid.shape,
             config.solver.scheme, config.solver.dt, config.solver.precision, jax.default_backend())

    output, t_end = config.output, config.scenario.t_end
    diagnostics = jax.jit(simulation.diagnostics)
    headline = next(iter(simulation.scalar_info))
    wall = {"start": _time.perf_counter(), "checkpoint": _time.perf_counter(), "step0": clock["step"]}

    progress = Progress(t_end, clock["t"])
    event = jax.jit(stepper.stop) if stepper.stop is not None else None

    def on_record(carry, clock):
        scalars = {k: float(v) for k, v in diagnostics(carry).items()}
        now = _time.perf_counter()
        rate = (clock["step"] - wall["step0"]) / max(now - wall["start"], 1e-9)
        progress.update(clock, rate)
        ended = event is not None and bool(event(carry))  # the model's stop event: a last frame
        frame = ended or is_frame_time(clock["t"], output.interval, t_end)
        stop = bool(signals)  # one snapshot: a signal arriving later is handled at the next record
        checkpoint = stop or now - wall["checkpoint"] > 60 * output.checkpoint_minutes
        writer.write_record(clock, scalars, stepper.fields(carry), carry, frame, checkpoint)
        if frame or checkpoint:
            wall["checkpoint"] = now
        if frame:
            log.info("t = %.6g / %g  step %d  dt %.3g  %s %.6g  (%.1f steps/s)", clock["t"], t_end,
                     clock["step"], clock["dt"], headline, scalars[headline], rate)
        if stop:
            raise Preempted(f"received signal {signals[0]}: checkpoint written at t = {clock['t']:.6g} "
                            f"(step {clock['step']}); continue with: python run.py resume={run_dir}")

    status = "failed"
    with preemption_signals() as signals:
        try:
            if not resume:
                on_record(carry, clock)
            carry, clock = integrate(stepper, time_control(config.solver, stepper.stable_dt), carry, clock, t_end,
                                     output.scalar_interval, on_record)
            status = "finished"
            if clock["t"] < t_end * (1 - 1e-12):
                writer.file.attrs["stop_reason"] = stepper.stop_reason
                log.info("stopped at t = %.6g (step %d): %s", clock["t"], clock["step"], stepper.stop_reason)
        except NonFiniteError:
            status = "non-finite"
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
    log.info("finished in %.2f s; wrote %s", _time.perf_counter() - wall["start"], path)
    if output.plots:
        from phasefield.analysis.plots import write_run_plots

        write_run_plots(run_dir)
    return path


def main(cfg) -> int:
    """Hydra entry: ``cfg`` is the composed DictConfig; the run directory is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
        resume = data.pop("resume", None)
        batch = data.pop("batch", None) or {}
        if resume:
            run(None, resume, resume=True)
        elif batch.get("key"):
            from phasefield.batch import run_batch

            run_batch(data, batch["key"], list(batch.get("values") or []), HydraConfig.get().runtime.output_dir)
        else:
            run(data, HydraConfig.get().runtime.output_dir, OmegaConf.to_yaml(OmegaConf.create(data)))
    except (ConfigError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_NON_FINITE)
    except Preempted as stop:
        print(str(stop), file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    return 0
