"""Electrodeposition phase field (Chen et al. 2015): interpolation, Butler-Volmer kinetics, parameters.

``xi`` is the order parameter (1 = Li metal), ``c`` the Li+ concentration over the reference
``c_ref`` of the Butler-Volmer law, ``phi`` the potential in volts (``phi`` is the activation
overpotential: the far electrolyte is held at 0 V).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from phasefield.units import FARADAY, GAS_CONSTANT  # noqa: F401 (re-exported: the models' constants)


def thermal_factor(temperature: float, electrons: int = 1) -> float:
    """``f = n F / (R T)`` in 1/V (38.9 /V at 298.15 K)."""
    return electrons * FARADAY / (GAS_CONSTANT * temperature)


def interpolation(xi):
    """``h(xi) = xi^3 (6 xi^2 - 15 xi + 10)``: 0 in the electrolyte, 1 in the metal, flat at both ends."""
    return xi**3 * (6.0 * xi**2 - 15.0 * xi + 10.0)


def interpolation_slope(xi):
    """``h'(xi) = 30 xi^2 (1 - xi)^2`` (largest value 1.875 at xi = 1/2)."""
    return 30.0 * xi**2 * (1.0 - xi) ** 2


def interpolation_change(xi, xi_new):
    """``h(xi_new) - h(xi)`` as ``(xi_new - xi)`` times the mean of ``h'`` between them (3-point Gauss-Legendre:
    exact for the quartic ``h'``), so it keeps its relative precision where ``h`` is flat: the plain
    difference of two ``h`` near 1 is round-off (6e-8 in float32) however small the step."""
    step = xi_new - xi
    offset = 0.5 * math.sqrt(0.6) * step
    middle = xi + 0.5 * step
    mean_slope = (5.0 * interpolation_slope(middle - offset) + 8.0 * interpolation_slope(middle)
                  + 5.0 * interpolation_slope(middle + offset)) / 18.0
    return step * mean_slope


def barrier_slope(xi):
    """``g'(xi)`` of the double-well barrier ``g = xi^2 (1 - xi)^2``."""
    return 2.0 * xi * (1.0 - xi) * (1.0 - 2.0 * xi)


def equilibrium_concentration(f_phi):
    """Nernst: the Butler-Volmer bracket vanishes at ``c = exp(f phi)`` (``phi_eq = ln(c) / f``)."""
    return jnp.exp(f_phi)


def butler_volmer_linear(xi, f_phi, reaction_rate: float, site_ratio: float, alpha: float, weight=None):
    """The Butler-Volmer law as linear in ``c`` for frozen ``h'(xi)`` and ``phi``.

    ``dxi/dt = L_eta w [c e^{-a f phi} - e^{(1-a) f phi}] = r (c - c_eq)`` with
    ``r = L_eta w e^{-a f phi}`` and the Nernst ``c_eq = e^{f phi}``; the Li+ it consumes,
    ``(c_s/c_ref) h' dxi/dt``, is ``k (c - c_eq)`` with ``k = (c_s/c_ref) h' r`` (1/s).
    The localisation ``w`` is ``h'(xi)`` (Chen 2015) unless ``weight`` is given (e.g.
    :func:`phasefield.physics.electrodeposition.reaction_weight`). Returns ``(r, c_eq, k)``.
    """
    slope = interpolation_slope(xi)
    rate = reaction_rate * (slope if weight is None else weight) * jnp.exp(-alpha * f_phi)
    return rate, equilibrium_concentration(f_phi), site_ratio * slope * rate


def metal_growth(xi, xi_new, c, site_ratio: float, bisections: int = 48):
    """Move ``xi`` toward ``xi_new`` paying ``(c_s/c_ref) [h(xi') - h(xi)]`` from ``c``; returns ``(xi', c')``.

    Where the growth would take more Li+ than the cell holds, it stops where it has taken exactly all
    of it: ``h(xi') = h(xi) + c / (c_s/c_ref)``, solved along ``xi -> xi_new`` (``h`` is monotone) by
    ``bisections`` halvings (its derivative the implicit one, ``1 / h'(xi')``). A step scaled back
    linearly in ``xi`` would pay too little on the convex foot of the profile (``h ~ xi^3``) and leave
    Li+ that the implicit transport had counted as used: it piles up (14 ``c_bulk`` at a held -1 V into
    depleted salt). ``c'`` is non-negative to the round-off of ``h`` (in float32 about ``(c_s/c_ref) h'
    ulp(xi)``); total Li is exact either way.
    """
    cost = site_ratio * (interpolation(xi_new) - interpolation(xi))
    available = jnp.maximum(c, 0.0)
    short = cost > available
    target = interpolation(xi) + available / site_ratio
    change = jax.lax.stop_gradient(jnp.where(short, xi_new - xi, 0.0))
    start = jax.lax.stop_gradient(xi)
    target_fixed = jax.lax.stop_gradient(target)

    def halve(_, bracket):  # h(start + s change) - target is increasing in s on [0, 1]
        low, high = bracket
        middle = 0.5 * (low + high)
        above = interpolation(start + middle * change) > target_fixed
        return jnp.where(above, low, middle), jnp.where(above, middle, high)

    low, high = jax.lax.fori_loop(0, bisections, halve, (jnp.zeros_like(xi), jnp.ones_like(xi)))
    reached = start + 0.5 * (low + high) * change
    slope = interpolation_slope(reached)
    steep = slope > 1e-6
    # the value is the bisection's; its derivative the implicit one, d xi' = d target / h'(xi')
    tangent = jnp.where(steep, (target - target_fixed) / jnp.where(steep, slope, 1.0), 0.0)
    xi_new = jnp.where(short, reached + tangent, xi_new)
    return xi_new, c - site_ratio * (interpolation(xi_new) - interpolation(xi))


def interface_parameters(interface_energy: float, interface_thickness: float, exchange_current: float,
                         site_density: float, electrons: int = 1) -> dict:
    """Phase-field parameters from measurable ones (physics.md 3.3), SI units.

    ``kappa = 1.5 gamma delta`` (J/m), ``W = 12 gamma / delta`` (J/m^3), profile slope
    ``k = 2 / delta`` (1/m), and the reaction constant ``L_eta = 2 i0 / (3 n F c_s delta)``
    (1/s), so that a flat front at small overpotential carries the exchange current ``i0`` (A/m^2).
    """
    gamma, delta = interface_energy, interface_thickness
    return {
        "kappa": 1.5 * gamma * delta,
        "barrier": 12.0 * gamma / delta,
        "slope": 2.0 / delta,
        "reaction_rate": 2.0 * exchange_current / (3.0 * electrons * FARADAY * site_density * delta),
    }
