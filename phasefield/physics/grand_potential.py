"""Hong & Viswanathan (2018) grand-potential electrodeposition: material functions and the Li transport step.

The variables are ``w`` (the Li chemical potential over RT), ``eta`` (1 = metal) and ``phi`` (V).
Site fractions of Li, with ``A = 1`` as in the public MOOSE input (physics.md 3.2)::

    omega_l(w) = u_l - ln(1 + e^{w - eps_l}),  omega_s(w) = u_s - ln(1 + e^{w - eps_s})
    c_l = -d omega_l/dw = 1 / (1 + e^{-(w - eps_l)}),  c_s = -d omega_s/dw = 1 / (1 + e^{-(w - eps_s)})

``c_l`` counts the electrolyte's Li sites, ``c_s`` the metal's, which are ``d_v`` times denser; the
Li per electrolyte site volume is ``n(w, h) = (1 - h) c_l + d_v h c_s`` (the conserved quantity), with
susceptibility ``chi = dn/dw = (1 - h) dc_l/dw + d_v h dc_s/dw``. Transport::

    chi dw/dt = div[M0 c_l (1 - h)^2 (grad w + f grad phi)] - (d_v c_s - c_l) h'(eta) deta/dt

is the chain rule of ``dn/dt = div J``; :func:`li_transport_step` discretises that conservative form (the
grand potentials give the convex functional of its Newton line search).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from phasefield.grid import Grid
from phasefield.operators import divergence, face_average, face_gradient
from phasefield.operators.elliptic import solve_potential
from phasefield.physics.transport import electrolyte_boundary

MOBILITY_FLOOR = 1e-12  # M0 c_l (1 - h)^2 over M0 is floored here: the face means stay finite in the metal (h = 1)
NEWTON_ITERATIONS = 40  # Li transport: most Newton updates per step
LINE_SEARCH_HALVINGS = 40  # ... each shortened at most this many times
ROUND_OFF = 1e-13  # ... and taken in full where it would lower the functional by less than this relative amount
NEWTON_TOLERANCE = 1e-13  # ... until the largest residual times dt, in Li per site, is below this


class SiteEnergies(NamedTuple):
    """``eps_l``, ``eps_s`` (the site energies over RT, MOOSE ``el``, ``es``) and ``d_v`` (MOOSE ``dv``)."""

    electrolyte: float
    metal: float
    site_ratio: float


def grand_potential_density(w, energy, offset):
    """``omega(w) = u - ln(1 + e^{w - eps})`` (``A = 1``), over ``R T`` times the site density."""
    return offset - jnp.logaddexp(0.0, w - energy)


def site_fraction(w, energy):
    """``c = -d omega/dw = 1 / (1 + e^{-(w - eps)})``."""
    return jax.nn.sigmoid(w - energy)


def site_fraction_slope(w, energy):
    """``dc/dw = c (1 - c)``, without cancellation where ``c`` is near 1."""
    return jax.nn.sigmoid(w - energy) * jax.nn.sigmoid(energy - w)


def li_content(w, h, sites: SiteEnergies):
    """``n = (1 - h) c_l + d_v h c_s``: Li per electrolyte site volume (the conserved quantity)."""
    return (1.0 - h) * site_fraction(w, sites.electrolyte) + sites.site_ratio * h * site_fraction(w, sites.metal)


def susceptibility(w, h, sites: SiteEnergies):
    """``chi = (1 - h) dc_l/dw + d_v h dc_s/dw = dn/dw``."""
    return ((1.0 - h) * site_fraction_slope(w, sites.electrolyte)
            + sites.site_ratio * h * site_fraction_slope(w, sites.metal))


def li_mobility(w, h, mobility, sites: SiteEnergies):
    """``M0 c_l (1 - h)^2`` (um^2/s for ``M0`` in um^2/s), floored at :data:`MOBILITY_FLOOR` ``M0``."""
    return mobility * jnp.maximum(site_fraction(w, sites.electrolyte) * (1.0 - h) ** 2, MOBILITY_FLOOR)


class LiTransport(NamedTuple):
    """``w`` after the step; ``wall_inflow``: the flux ``J`` summed over the far wall's faces (Li per site
    times um/s: times the face area and dt, the Li that entered); ``iterations``: Newton updates;
    ``residual``: the largest ``|r| dt`` left (Li per site)."""

    w: jnp.ndarray
    wall_inflow: jnp.ndarray
    iterations: jnp.ndarray
    residual: jnp.ndarray


@jax.named_call
def li_transport_step(w, h_old, h_new, phi, dt, mobility, sites: SiteEnergies, f, grid: Grid, reservoir: bool,
                      wall_w, tolerance, max_iterations: int, slabs=None) -> LiTransport:
    """One step of ``dn/dt = div[M (grad w + f grad phi)]``, backward Euler in ``w``, conservative.

    ``n(w', h_new) - n(w, h_old) = dt div J(w')``, ``J = M (grad w' + f grad phi)`` on faces (harmonic
    means of the cell ``mobility`` ``M``, um^2/s, frozen at the step's start): the metal's change
    ``h_old -> h_new`` supplies the source ``-(d_v c_s - c_l) h' deta/dt`` exactly, and the sum of ``n``
    changes only by the wall flux (to the Newton tolerance). Newton on ``w'``: each update solves
    ``(chi/dt) d - div(M grad d) = -r`` with the multigrid CG (``chi = dn/dw``: the MOOSE form's
    coefficient is this Jacobian), shortened by Armijo backtracking on the convex functional whose gradient is
    the residual (``chi`` spans seven decades across the interface: a full step can overshoot far), so the
    iteration converges from any start. ``phi`` (V) and ``f`` (1/V):
    the migration (``f = 0`` without). Walls: no flux at the electrode and across; the far wall held at
    ``wall_w`` (``reservoir``) or closed; the drift uses ``phi``'s far wall at 0 V and no flux elsewhere. Where
    the profile relaxation shrinks a nearly full metal cell (``c_s ~ 1``, ``M ~ 0``), its Li can go nowhere
    and ``w`` rises by tens there (the model's stiffness, not the scheme's).
    ``tolerance``, ``max_iterations``: the CG's; ``slabs``: the fields' split over the devices.
    """
    w_boundary = electrolyte_boundary(grid.ndim, reservoir, wall_w)
    homogeneous = electrolyte_boundary(grid.ndim, reservoir, 0.0)
    faces = [face_average(mobility, homogeneous, a) for a in range(grid.ndim)]
    if reservoir:  # the held wall's faces count half in the functional (their gradient spans half a cell)
        faces_weight = [jnp.ones_like(m).at[-1].set(0.5) if a == 0 else jnp.ones_like(m) for a, m in enumerate(faces)]
    else:
        faces_weight = [jnp.ones_like(m) for m in faces]
    drift = [f * face_gradient(phi, grid, homogeneous, a) for a in range(grid.ndim)]
    start = li_content(w, h_old, sites)

    def fluxes(w_new):
        return [m * (face_gradient(w_new, grid, w_boundary, a) + d) for a, (m, d) in enumerate(zip(faces, drift))]

    def residual(w_new):
        return (li_content(w_new, h_new, sites) - start) / dt - divergence(fluxes(w_new), grid)

    def functional(w_new):
        """``sum [N(w') - n w'] / dt + sum_faces M (grad w' + f grad phi)^2 / 2``, ``N = -(1 - h) omega_l - d_v h
        omega_s`` (``u = 0``): strictly convex, its gradient the residual (per cell volume)."""
        bulk = -((1.0 - h_new) * grand_potential_density(w_new, sites.electrolyte, 0.0)
                 + sites.site_ratio * h_new * grand_potential_density(w_new, sites.metal, 0.0))
        transport = sum(jnp.sum(0.5 * c * flux * flux / m) for c, flux, m in zip(faces_weight, fluxes(w_new), faces))
        return jnp.sum(bulk - start * w_new) / dt + transport

    def going(carry):
        _, r, count = carry
        return (count < NEWTON_ITERATIONS) & (jnp.max(jnp.abs(r)) * dt > NEWTON_TOLERANCE)

    def newton(carry):
        w_k, r, count = carry
        shift = susceptibility(w_k, h_new, sites) / dt
        update, _, _ = solve_potential(mobility, r, grid, homogeneous, jnp.zeros_like(w_k), tolerance,
                                       max_iterations, shift=shift, slabs=slabs)
        # Armijo backtracking on the convex functional (the logistic c_l, c_s saturate: a full step can overshoot
        # far); a full step where the predicted decrease is at the functional's round-off
        value, slope = functional(w_k), jnp.sum(r * update)
        resolved = -slope > ROUND_OFF * jnp.maximum(jnp.abs(value), 1.0)

        def too_long(length):
            return resolved & (length > 2.0**-LINE_SEARCH_HALVINGS) & (
                functional(w_k + length * update) > value + 1e-4 * length * slope)

        length = jax.lax.while_loop(too_long, lambda length: 0.5 * length, jnp.asarray(1.0, w_k.dtype))
        w_k = w_k + length * update
        return w_k, residual(w_k), count + 1

    w_new, r, count = jax.lax.while_loop(going, newton, (w, residual(w), jnp.asarray(0, jnp.int32)))
    wall = jax.lax.index_in_dim(fluxes(w_new)[0], -1, axis=0, keepdims=False)
    inflow = jnp.sum(wall) if reservoir else jnp.zeros((), w.dtype)
    return LiTransport(w_new, inflow, count, jnp.max(jnp.abs(r)) * dt)
