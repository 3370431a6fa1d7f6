"""What a model hands to the shared runner, writer and CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from phasefield.grid import Grid
from phasefield.schemes import Stepper


@dataclass(frozen=True)
class Quantity:
    """Units and meaning of a stored field or scalar (written as HDF5 attributes)."""

    units: str
    description: str


@dataclass
class Simulation:
    """A scenario ready to run.

    parameters:     the validated scenario config, a pytree whose leaves are its numbers
                    (:func:`phasefield.config.scenario_parameters`); every function of the stepper
                    and ``diagnostics`` takes it as first argument, so one compiled step serves any
                    values (batches ``vmap`` over it, ``jax.grad`` differentiates with respect to it).
    stepper:        the time scheme (pure functions of parameters and a carry pytree).
    initial_fields: () -> {name: array on ``grid``} (physical units, host arrays); lazy, so that
                    building a simulation allocates nothing.
    diagnostics:    (params, carry) -> dict of scalars (jit-able), recorded in ``/scalars``.
    scales:         physical size of one model unit, e.g. ``{"length": (1e-6, "m")}``;
                    coordinates and times are written in physical units.
    lyapunov:       the scalar a gradient flow never increases (``"free_energy"``), or ``None``: a
                    run in which it rises has left what its time step resolves and is stopped.
    """

    name: str
    grid: Grid
    parameters: Any
    stepper: Stepper
    initial_fields: Callable[[], dict]
    field_info: dict[str, Quantity]
    diagnostics: Callable
    scalar_info: dict[str, Quantity]
    scales: dict[str, tuple[float, str]] = field(default_factory=dict)
    lyapunov: str | None = None
