"""Li+ drift-diffusion with a linear sink, backward Euler in Slotboom variables.

``dc/dt = div[D (grad c + c f grad phi)] - k (c - c_eq) - s`` on a cell-centred grid, x = 0 the
electrode wall (no flux), the far x wall either a reservoir (``c = c_wall``) or closed, the
other walls no-flux. With ``w = exp(-f (phi - phi_max))`` and ``c = w u`` the flux is
``D w grad u``, so one backward-Euler step

    w (1/dt + k) u' - div(D w grad u') = c/dt + k c_eq - s

is symmetric positive-definite and goes to the multigrid CG of :mod:`phasefield.operators.elliptic`:
stable at any dt, with no Courant limit from strong fields, and positive for positive data.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import flux_divergence
from phasefield.operators.stencils import wall_flux
from phasefield.operators.elliptic import solve_potential


class TransportStep(NamedTuple):
    """``transported``: ``c + dt div(flux)``, conservative to round-off whatever the tolerance;
    ``solved``: ``c' = w u'`` of the implicit system (sink included); ``wall_inflow``: Li+ that
    entered through the reservoir wall per unit time (sum over wall faces, flux times 1/h);
    ``iterations``: CG iterations."""

    transported: jnp.ndarray
    solved: jnp.ndarray
    wall_inflow: jnp.ndarray
    iterations: jnp.ndarray


def electrolyte_boundary(ndim: int, reservoir: bool, wall_value: float = 0.0) -> Boundary:
    """No flux everywhere except a held far x wall when ``reservoir``."""
    far = Side("dirichlet", wall_value) if reservoir else Side("neumann")
    return Boundary(((Side("neumann"), far),) + ((Side("neumann"), Side("neumann")),) * (ndim - 1))


def drift_diffusion_step(c, dt, diffusivity, weight, grid: Grid, reservoir: bool, wall_concentration=0.0,
                         wall_weight=1.0, rate=0.0, equilibrium=0.0, sink=0.0, initial_guess=None,
                         tolerance: float = 1e-10, max_iterations: int = 100, slabs=None) -> TransportStep:
    """One backward-Euler step of drift-diffusion with a linear sink (module docstring).

    c, diffusivity (um^2/s), weight ``w`` (1 without migration): per cell; ``rate`` = k (1/s),
    ``equilibrium`` = c_eq, ``sink`` = s (c per s) per cell or scalars; ``wall_concentration``
    with ``wall_weight`` (w on that wall) for the reservoir. ``initial_guess`` is a guess for c'. ``slabs``: the
    fields' split over the devices (:func:`phasefield.operators.elliptic.solve_potential`).
    """
    conductance = diffusivity * weight
    source = -(c / dt + rate * equilibrium - sink)
    wall_u = wall_concentration / wall_weight
    if reservoir:  # u = c_wall / w on the far wall, as the equivalent wall-cell source
        source = source.at[-1].add(-2.0 * conductance[-1] * wall_u / grid.spacing[0] ** 2)
    guess = c if initial_guess is None else initial_guess
    u, iterations, _ = solve_potential(conductance, source, grid, electrolyte_boundary(grid.ndim, reservoir),
                                       guess / weight, tolerance, max_iterations,
                                       shift=weight * (1.0 / dt + rate), slabs=slabs)
    u_boundary = electrolyte_boundary(grid.ndim, reservoir, wall_u)
    # in the cells' shape (one-row halos on slabs); the inflow through the held wall from its cells alone
    inflow = jnp.sum(wall_flux(conductance, u, grid, u_boundary, 0)) if reservoir else jnp.zeros((), c.dtype)
    transported = c + dt * (flux_divergence(conductance, u, grid, u_boundary) - sink)
    return TransportStep(transported, weight * u, inflow, iterations)
