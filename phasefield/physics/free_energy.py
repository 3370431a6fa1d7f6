"""Bulk and gradient free-energy densities.

Convention used throughout: double well ``f(c) = rho (c - c_a)^2 (c_b - c)^2`` (PFHub
benchmark 1, units of energy per volume), gradient energy ``kappa/2 |grad c|^2``.
"""
from __future__ import annotations

import jax.numpy as jnp

from phasefield.grid import Boundary, Grid
from phasefield.operators import face_gradient


def double_well(c, height, c_a, c_b):
    """``f(c) = height (c - c_a)^2 (c_b - c)^2``: minima 0 at ``c_a`` and ``c_b``."""
    return height * (c - c_a) ** 2 * (c_b - c) ** 2


def double_well_derivative(c, height, c_a, c_b):
    """``f'(c) = 2 height (c - c_a)(c_b - c)(c_a + c_b - 2c)``."""
    return 2.0 * height * (c - c_a) * (c_b - c) * (c_a + c_b - 2.0 * c)


def double_well_curvature_max(height, c_a, c_b):
    """``max f''`` over ``[c_a, c_b]``: ``2 height (c_b - c_a)^2``, reached at the minima."""
    return 2.0 * height * (c_b - c_a) ** 2


def gradient_energy(c, grid: Grid, boundary: Boundary, kappa):
    """``int kappa/2 |grad c|^2 dV`` with one-sided differences on faces.

    This is the discrete energy whose variational derivative is exactly ``-kappa`` times the
    stencil Laplacian, so explicit and spectral schemes dissipate the same functional. Wall
    faces count as in the Laplacian (zero for no-flux, the wrap-around face for periodic).
    """
    total = 0.0
    for axis in range(grid.ndim):
        g = face_gradient(c, grid, boundary, axis)
        if not boundary.is_periodic(axis):
            # Each face is shared by two cells except at a wall, where the half-cell to the
            # boundary carries half the weight (zero anyway for no-flux).
            weight = jnp.ones(g.shape[axis], g.dtype).at[0].set(0.5).at[-1].set(0.5)
            shape = [1] * grid.ndim
            shape[axis] = g.shape[axis]
            g2 = g**2 * weight.reshape(shape)
        else:
            g2 = jnp.moveaxis(g, axis, 0)[1:] ** 2  # n distinct faces on a periodic axis
        total = total + jnp.sum(g2)
    return 0.5 * kappa * total * grid.cell_volume
