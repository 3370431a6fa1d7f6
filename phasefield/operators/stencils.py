"""Second-order finite-volume stencils on a cell-centred grid.

Boundary conditions enter through one ghost cell per wall (:func:`pad_axis` for the ``n + 1`` face arrays,
:func:`neighbours` for the operators that return cell fields):

* periodic:  the ghost is the cell on the opposite wall;
* neumann:   the ghost mirrors the first cell, so the face gradient, and any flux
             ``k * grad u`` through the wall, is exactly zero (no-flux);
* dirichlet: ``ghost = 2 g - u_0``, so the linear interpolant equals ``g`` on the wall.
             The stencil stays symmetric and conservative; its truncation error is O(1)
             in the wall cell but the solution of the discrete problem converges at
             second order (supraconvergence), which the tests measure.

Every flux-form operator is ``divergence`` of face fluxes, so the sum over the grid of
a divergence equals the net flux through the walls: zero to round-off for no-flux and
periodic fields.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from phasefield.grid import DIRICHLET, NEUMANN, PERIODIC, Boundary, Grid


def _slab(u, axis: int, index: slice):
    sl = [slice(None)] * u.ndim
    sl[axis] = index
    return u[tuple(sl)]


def pad_axis(u, boundary: Boundary, axis: int):
    """``u`` with one ghost cell on each end of ``axis``, filled by the boundary condition.

    The non-periodic ghosts are the mirrored wall cells, then ``2 g - ghost`` on a Dirichlet wall chosen by its
    index along ``axis``: elementwise on the padded array, which the SPMD partitioner splits into a one-cell halo
    exchange (arithmetic on the one-cell wall slab before the concatenation made it transpose the whole field).
    The wall value takes ``u``'s dtype (a float64 value, e.g. an array of the parameters, leaves a float32 field
    float32).
    """
    low, high = boundary.sides[axis]
    if low.kind == PERIODIC:
        return jnp.concatenate([_slab(u, axis, slice(-1, None)), u, _slab(u, axis, slice(0, 1))], axis=axis)
    padded = jnp.concatenate([_slab(u, axis, slice(0, 1)), u, _slab(u, axis, slice(-1, None))], axis=axis)
    index = jnp.arange(padded.shape[axis]).reshape([-1 if a == axis else 1 for a in range(u.ndim)])
    for side, wall in ((low, 0), (high, padded.shape[axis] - 1)):
        if side.kind == DIRICHLET:
            padded = jnp.where(index == wall, 2.0 * jnp.asarray(side.value, padded.dtype) - padded, padded)
        elif side.kind != NEUMANN:
            raise ValueError(f"no ghost rule for {side.kind!r}")
    return padded


def _wall_ghost(wall_cells, side):
    """The ghost beyond a non-periodic wall whose cells hold ``wall_cells``: the mirror (no flux) or ``2 g - u``
    (Dirichlet, ``g`` in ``u``'s dtype)."""
    if side.kind == NEUMANN:
        return wall_cells
    if side.kind == DIRICHLET:
        return 2.0 * jnp.asarray(side.value, wall_cells.dtype) - wall_cells
    raise ValueError(f"no ghost rule for {side.kind!r}")


def neighbours(u, boundary: Boundary, axis: int):
    """``(u_{i-1}, u_{i+1})`` along ``axis``, each of ``u``'s shape, with the walls' ghosts of :func:`pad_axis`.

    Rolls with the wall cells replaced by index, not a padded ``n + 2`` array: fields split over devices along
    ``axis`` stay evenly split, and the partitioner exchanges one cell row per side (a 256^2 Laplacian on 4
    forced CPU devices: 2 collective-permutes, against 8 for the padded form, which does not split evenly).
    """
    below, above = jnp.roll(u, 1, axis), jnp.roll(u, -1, axis)
    low, high = boundary.sides[axis]
    if low.kind == PERIODIC:
        return below, above
    index = jnp.arange(u.shape[axis]).reshape([-1 if a == axis else 1 for a in range(u.ndim)])
    ghosts = []
    for side, wall, rolled in ((low, 0, below), (high, u.shape[axis] - 1, above)):
        ghosts.append(jnp.where(index == wall, _wall_ghost(u, side), rolled))
    return tuple(ghosts)


def face_gradient(u, grid: Grid, boundary: Boundary, axis: int):
    """``du/dx_axis`` on every face normal to ``axis`` (``n + 1`` faces, walls included)."""
    return jnp.diff(pad_axis(u, boundary, axis), axis=axis) / grid.spacing[axis]


def face_average(coefficient, boundary: Boundary, axis: int, mean: str = "harmonic"):
    """A cell coefficient on the ``n + 1`` faces normal to ``axis``.

    ``harmonic`` is the series-resistance mean, the right one for fluxes across a jump of
    conductivity or mobility; ``arithmetic`` is the plain average. On non-periodic walls
    the coefficient of the wall cell is used.
    """
    if boundary.is_periodic(axis):
        padded = pad_axis(coefficient, boundary, axis)
    else:
        padded = jnp.concatenate(
            [_slab(coefficient, axis, slice(0, 1)), coefficient, _slab(coefficient, axis, slice(-1, None))],
            axis=axis,
        )
    return _face_mean(_slab(padded, axis, slice(None, -1)), _slab(padded, axis, slice(1, None)), mean)


def divergence(face_fluxes: Sequence, grid: Grid):
    """``div F`` at cell centres from fluxes on faces (``face_fluxes[axis]`` has ``n + 1`` faces)."""
    return sum(jnp.diff(flux, axis=axis) / grid.spacing[axis] for axis, flux in enumerate(face_fluxes))


def laplacian(u, grid: Grid, boundary: Boundary):
    """``div grad u``: the (2d+1)-point Laplacian in conservative form, ``sum_a ((u_+ - u) / h - (u - u_-) / h) / h``
    (the face gradients' divergence, in ``u``'s shape: :func:`neighbours`)."""
    total = 0
    for axis in range(grid.ndim):
        below, above = neighbours(u, boundary, axis)
        h = grid.spacing[axis]
        total = total + ((above - u) / h - (u - below) / h) / h
    return total


def _face_mean(left, right, mean: str):
    if mean == "harmonic":
        return 2.0 * left * right / (left + right)
    if mean == "arithmetic":
        return 0.5 * (left + right)
    raise ValueError(f"unknown mean {mean!r}; allowed: harmonic, arithmetic")


def flux_divergence(coefficient, u, grid: Grid, boundary: Boundary, mean: str = "harmonic"):
    """``div(k grad u)`` with ``k`` averaged onto faces (:func:`face_average`'s rule; conservative for any ``k``),
    in ``u``'s shape (:func:`neighbours`)."""
    walls = Boundary.uniform(grid.ndim, NEUMANN)
    total = 0
    for axis in range(grid.ndim):
        below, above = neighbours(u, boundary, axis)
        # face_average: a periodic axis wraps the coefficient, a walled one repeats the wall cell's
        k_below, k_above = neighbours(coefficient, boundary if boundary.is_periodic(axis) else walls, axis)
        h = grid.spacing[axis]
        high = _face_mean(coefficient, k_above, mean) * ((above - u) / h)
        low = _face_mean(k_below, coefficient, mean) * ((u - below) / h)
        total = total + (high - low) / h
    return total


def wall_flux(coefficient, u, grid: Grid, boundary: Boundary, axis: int, mean: str = "harmonic"):
    """``k du/dx_axis`` on the faces of the high wall of ``axis`` (the last of :func:`face_average` times
    :func:`face_gradient`'s ``n + 1`` faces), from the wall cells alone: ``u``'s shape without ``axis``."""
    k, wall_cell = (jnp.take(v, v.shape[axis] - 1, axis=axis) for v in (coefficient, u))
    side = boundary.sides[axis][1]
    if side.kind == PERIODIC:
        ghost, k_ghost = jnp.take(u, 0, axis=axis), jnp.take(coefficient, 0, axis=axis)
    else:
        ghost, k_ghost = _wall_ghost(wall_cell, side), k
    return _face_mean(k, k_ghost, mean) * ((ghost - wall_cell) / grid.spacing[axis])


def gradient(u, grid: Grid, boundary: Boundary):
    """Centred ``grad u`` at cell centres, one array per axis."""
    out = []
    for axis in range(grid.ndim):
        below, above = neighbours(u, boundary, axis)
        out.append((above - below) / (2.0 * grid.spacing[axis]))
    return out
