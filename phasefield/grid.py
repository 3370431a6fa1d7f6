"""Regular cell-centred grids and per-field boundary conditions.

A :class:`Grid` is geometry only: the number of cells and their size along each axis.
Cell ``i`` along an axis of spacing ``h`` has its centre at ``(i + 1/2) h``, so the
domain is ``[0, n h]``. Boundary conditions belong to fields (a potential and a
concentration on the same grid see different walls), so they are a separate object,
:class:`Boundary`, that every operator takes explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PERIODIC = "periodic"
NEUMANN = "neumann"  # no-flux: zero normal derivative
DIRICHLET = "dirichlet"
KINDS = (PERIODIC, NEUMANN, DIRICHLET)


@dataclass(frozen=True)
class Grid:
    """Uniform cell-centred grid in 2D or 3D (1D is allowed for tests).

    shape:   cells per axis, e.g. ``(200, 200)``.
    spacing: cell size per axis, in the model's length unit.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        spacing = self.spacing
        if np.isscalar(spacing):
            spacing = (float(spacing),) * len(self.shape)
        object.__setattr__(self, "spacing", tuple(float(h) for h in spacing))
        if len(self.spacing) != len(self.shape):
            raise ValueError(f"grid spacing {self.spacing} does not match shape {self.shape}")
        if any(n < 1 for n in self.shape) or any(h <= 0 for h in self.spacing):
            raise ValueError(f"grid needs positive sizes, got shape {self.shape}, spacing {self.spacing}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def lengths(self) -> tuple[float, ...]:
        return tuple(n * h for n, h in zip(self.shape, self.spacing))

    def axis_coordinates(self, axis: int) -> np.ndarray:
        """Cell-centre coordinates along one axis, ``(i + 1/2) h``."""
        return (np.arange(self.shape[axis]) + 0.5) * self.spacing[axis]

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates as broadcastable open meshes (``np.ogrid`` style)."""
        out = []
        for axis in range(self.ndim):
            shape = [1] * self.ndim
            shape[axis] = self.shape[axis]
            out.append(self.axis_coordinates(axis).reshape(shape))
        return tuple(out)


@dataclass(frozen=True)
class Side:
    """Condition on one wall: ``kind`` in periodic/neumann/dirichlet; ``value`` for Dirichlet."""

    kind: str
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown boundary kind {self.kind!r}; allowed: {', '.join(KINDS)}")


@dataclass(frozen=True)
class Boundary:
    """Boundary conditions of one field: ``sides[axis] = (low side, high side)``.

    Periodicity is a property of an axis, so a periodic side must face a periodic side.
    """

    sides: tuple[tuple[Side, Side], ...]

    def __post_init__(self):
        for axis, (low, high) in enumerate(self.sides):
            if (low.kind == PERIODIC) != (high.kind == PERIODIC):
                raise ValueError(f"axis {axis}: periodic on one side only ({low.kind}/{high.kind})")

    @classmethod
    def uniform(cls, ndim: int, kind: str, value: float = 0.0) -> "Boundary":
        """The same condition on every wall."""
        side = Side(kind, value)
        return cls(tuple((side, side) for _ in range(ndim)))

    @classmethod
    def per_axis(cls, kinds: tuple[str, ...]) -> "Boundary":
        """One homogeneous kind per axis, e.g. ``("periodic", "neumann")``."""
        return cls(tuple((Side(k), Side(k)) for k in kinds))

    @property
    def ndim(self) -> int:
        return len(self.sides)

    def is_periodic(self, axis: int) -> bool:
        return self.sides[axis][0].kind == PERIODIC

    def axis_kind(self, axis: int) -> str:
        """The kind of an axis whose two sides agree, else ``'mixed'``."""
        low, high = self.sides[axis]
        return low.kind if low.kind == high.kind else "mixed"
