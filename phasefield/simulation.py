"""What a model hands to the shared integrator, writer and CLI."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

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

    stepper:        the time scheme (pure functions over a carry pytree).
    initial_fields: () -> {name: array on ``grid``} (model units); lazy, so that building a
                    simulation allocates nothing and can be traced with batched parameters.
    diagnostics:    carry -> dict of scalars (jit-able), recorded in ``/scalars``; the carry holds
                    the fields plus whatever the scheme accumulates (solver counts, passed charge).
    scales:         physical size of one model unit, e.g. ``{"length": (1e-6, "m")}``;
                    coordinates and times are written in physical units.
    """

    name: str
    grid: Grid
    stepper: Stepper
    initial_fields: Callable[[], dict]
    field_info: dict[str, Quantity]
    diagnostics: Callable
    scalar_info: dict[str, Quantity]
    scales: dict[str, tuple[float, str]] = field(default_factory=dict)
