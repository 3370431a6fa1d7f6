"""Run a validated config: build the scenario, integrate, write ``run.h5`` and figures.

``run.py`` (Hydra) resolves the config and calls :func:`main`; :func:`run` is the same
thing as a Python API for scripts and tests. User errors (bad config, an existing run)
are printed as one message with exit status 2, never as a traceback.
"""
from __future__ import annotations

import logging
import sys
import time as _time
from pathlib import Path

import jax

from phasefield.config import ConfigError, RunConfig, scenario_modules, validate_run
from phasefield.integrate import NonFiniteError, TimeControl, integrate
from phasefield.io import RunWriter
from phasefield.simulation import Simulation

log = logging.getLogger("phasefield")


class RunDirectoryError(RuntimeError):
    """The run directory already holds a run."""


def build(config: RunConfig) -> Simulation:
    """The scenario of ``config``, with the checks that need the built model (explicit dt limit)."""
    simulation = scenario_modules()[config.scenario.name].build(config.scenario, config.solver)
    limit = simulation.stepper.stable_dt
    solver = config.solver
    largest = max(solver.dt, solver.dt_max) if solver.adaptive else solver.dt
    if largest > limit:
        key = "solver.dt_max" if solver.adaptive and solver.dt_max >= solver.dt else "solver.dt"
        raise ConfigError(key, largest, f"0 < dt <= {limit:.4g}, the explicit stability limit of this grid and model")
    return simulation


def time_control(solver) -> TimeControl:
    return TimeControl(
        dt=solver.dt,
        adaptive=solver.adaptive,
        dt_min=solver.dt_min,
        dt_max=solver.dt_max,
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


def run(config_dict: dict, run_dir, config_yaml: str = "") -> Path:
    """Validate ``config_dict``, run it and write ``run_dir/run.h5`` (+ PNGs). Returns the file path."""
    config = validate_run(config_dict)
    simulation = build(config)
    fields_to_store = stored_fields(config, simulation)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "run.h5"
    if path.exists():
        raise RunDirectoryError(f"{path} already exists; choose a new run directory (hydra.run.dir=...)")
    log.info("scenario %s on grid %s, scheme %s, dt %g, %s on %s", simulation.name, simulation.grid.shape,
             config.solver.scheme, config.solver.dt, config.solver.precision, jax.default_backend())

    stepper = simulation.stepper
    diagnostics = jax.jit(lambda carry: simulation.diagnostics(stepper.fields(carry)))
    frame_every = round(config.output.interval / config.output.scalar_interval)
    writer = RunWriter(path, simulation, fields_to_store, config_yaml, config.output.compression)
    wall_start = _time.perf_counter()
    records = {"count": 0}

    def on_record(carry, clock):
        scalars = {k: float(v) for k, v in diagnostics(carry).items()}
        writer.write_scalars(clock, scalars)
        if records["count"] % frame_every == 0 or clock["t"] >= config.scenario.t_end * (1 - 1e-12):
            writer.write_frame(clock, stepper.fields(carry))
            writer.write_checkpoint(carry, clock)
            elapsed = _time.perf_counter() - wall_start
            headline = next(iter(simulation.scalar_info))
            log.info("t = %.6g / %g  step %d  dt %.3g  %s %.6g  (%.1f steps/s)", clock["t"], config.scenario.t_end,
                     clock["step"], clock["dt"], headline, scalars[headline], clock["step"] / max(elapsed, 1e-9))
        records["count"] += 1

    carry = stepper.init(simulation.initial_fields)
    clock = {"t": 0.0, "step": 0, "dt": config.solver.dt}
    status = "failed"
    try:
        on_record(carry, clock)
        integrate(stepper, time_control(config.solver), carry, clock, config.scenario.t_end,
                  config.output.scalar_interval, on_record)
        status = "finished"
    except NonFiniteError:
        status = "non-finite"
        raise
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        writer.close(status)
    log.info("finished in %.2f s; wrote %s", _time.perf_counter() - wall_start, path)
    if config.output.plots:
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
        run_dir = HydraConfig.get().runtime.output_dir
        run(data, run_dir, OmegaConf.to_yaml(cfg, resolve=True))
    except (ConfigError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(3)
    return 0
