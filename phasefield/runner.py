"""Build a validated run and drive it: time control, parameters on the device, memory check, run loop.

The command line (:mod:`phasefield.cli`) and batches (:mod:`phasefield.batch`) both go through
here; nothing in this module knows a particular scenario (they come from the registry).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, RunConfig
from phasefield.integrate import TimeControl
from phasefield.registry import scenario
from phasefield.schemes import CHECKPOINTED
from phasefield.simulation import Simulation


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
    """The carry of ``simulation`` at t = 0."""
    return simulation.stepper.init(params, simulation.initial_fields())


def checkpoint_part(carry) -> dict:
    """What a checkpoint stores: the state and the scheme history, not the diagnostics cache."""
    return {name: carry[name] for name in CHECKPOINTED}


def restore_carry(simulation: Simulation, params, saved: dict):
    """A carry from a checkpoint's state and history, with the cache at zeros (its shapes from ``init``)."""
    shapes = jax.eval_shape(lambda p: initial_carry(simulation, p), params)
    cache = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes["cache"])
    restored = jax.tree_util.tree_map(jnp.asarray, {name: saved[name] for name in CHECKPOINTED})
    return {**restored, "cache": cache}
