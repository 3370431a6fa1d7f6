"""Domain decomposition of one run: the grid cut into slabs along x (axis 0) over the devices.

``solver.decomposition=slabs`` puts every field of the run on a one-axis device mesh (``"x"``, all devices
of the process), cell rows ``[i n0/P, (i+1) n0/P)`` on device ``i``. JAX's SPMD partitioner (GSPMD) then
splits the program: the stencils exchange one-cell halos (collective-permutes), reductions are all-reduces,
and the fast transforms of :class:`phasefield.operators.SpectralBasis` transpose with ``all_to_all`` so that
no device ever holds the whole field. The result equals the one-device run to round-off (the per-device
programs sum in other orders).
"""
from __future__ import annotations

import logging
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from phasefield.config import ConfigError

AXIS = "x"
log = logging.getLogger("phasefield")


class Slabs:
    """A one-axis mesh over ``devices`` (default: all of them); fields are split along their axis 0."""

    def __init__(self, devices=None):
        self.devices = tuple(devices or jax.devices())
        self.mesh = Mesh(np.array(self.devices), (AXIS,))
        self.count = len(self.devices)

    def spec(self, ndim: int, axis: int = 0) -> PartitionSpec:
        """Split ``axis`` of an ``ndim`` array over the mesh; the other axes whole on every device."""
        return PartitionSpec(*(AXIS if a == axis else None for a in range(ndim)))

    def sharding(self, ndim: int, axis: int = 0) -> NamedSharding:
        return NamedSharding(self.mesh, self.spec(ndim, axis))

    def constrain(self, u, axis: int | None = 0):
        """``u`` split along ``axis`` (whole on every device for ``None``; placed there outside ``jit``, a layout
        constraint inside)."""
        return jax.lax.with_sharding_constraint(u, self.sharding(u.ndim, axis))

    def check(self, shape, key: str):
        """Refuse (``ConfigError``) a grid whose x cell count does not split evenly over the devices."""
        if len(shape) < 2 or shape[0] % self.count:
            raise ConfigError(key, list(shape), f"a grid of 2 or 3 axes whose first (x) cell count is divisible by "
                                                f"the {self.count} devices of solver.decomposition=slabs")


def laid_out(slabs: Slabs | None, tree, shape):
    """``tree`` on the slabs: its leaves whose trailing axes are the grid's ``shape`` (fields, and stacks of
    fields such as a displacement ``(ndim, *shape)``) split along the grid's x axis, every other leaf (a step's
    scalars) whole on every device; unchanged for ``slabs=None``. A stepper pins its carry with it, in
    ``init`` and at the end of every step, so that the loop carry keeps one layout."""
    if slabs is None:
        return tree
    shape = tuple(shape)

    def place(u):
        field = u.ndim >= len(shape) and u.shape[u.ndim - len(shape):] == shape
        return slabs.constrain(u, u.ndim - len(shape) if field else None)

    return jax.tree_util.tree_map(place, tree)


def slabs_for(decomposition: str, shape, key: str = "scenario.shape") -> Slabs | None:
    """The :class:`Slabs` of ``decomposition`` (``None`` for ``"none"``), checked against the grid ``shape``."""
    if decomposition == "none":
        return None
    slabs = Slabs()
    slabs.check(shape, key)
    log.info("grid %s split along x into %d slabs of %d cells (one per device)", tuple(shape), slabs.count,
             shape[0] // slabs.count)
    return slabs


COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "all-reduce", "reduce-scatter")


_INSTRUCTION = re.compile(r"= (.*?) (" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_ARRAY = re.compile(r"\b(pred|[suf]\d+|bf16|c64|c128)\[([\d,]*)\]")
_BYTES = {"pred": 1, "bf16": 2, "c64": 8, "c128": 16}


def array_bytes(shape: str) -> int:
    """Bytes of the arrays an HLO shape text names (``f64[16,8]``, tuples summed)."""
    total = 0
    for kind, dims in _ARRAY.findall(shape):
        size = _BYTES.get(kind) or int(kind[1:]) // 8
        for d in filter(None, dims.split(",")):
            size *= int(d)
        total += size
    return total


def collectives(hlo: str) -> dict:
    """How many instructions of each collective kind a compiled program's HLO text holds
    (``jax.jit(f).lower(...).compile().as_text()``; the asynchronous ``-start`` forms count once)."""
    found = [kind for _, kind in _INSTRUCTION.findall(hlo)]
    return {kind: found.count(kind) for kind in COLLECTIVES}


def collective_bytes(hlo: str) -> dict:
    """Bytes per device of the results of each collective kind in a compiled program's HLO text (an
    instruction in a loop body counts once: per step, for a loop of steps)."""
    totals = dict.fromkeys(COLLECTIVES, 0)
    for shape, kind in _INSTRUCTION.findall(hlo):
        totals[kind] += array_bytes(shape)
    return totals
