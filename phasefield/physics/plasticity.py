"""J2 (von Mises) perfect plasticity by radial return, for stress fields of the elasticity solver.

Small strain: the plastic strain ``eps_p`` is one more eigenstrain, ``sigma = C : (eps - eps* - eps_p)``.
With the total strain ``eps`` of an equilibrium solve held fixed, the trial stress ``sigma_tr``
and its deviator ``s`` give ``q = sqrt(3/2 s : s)``; where ``q`` exceeds the yield stress
``sigma_Y`` the return (Simo & Hughes, Box 3.1, no hardening) is::

    d_gamma = (q - sigma_Y) / (3 mu),   d_eps_p = (3/2) d_gamma s / q,   sigma = sigma_tr - 2 mu d_eps_p

so the returned deviator is ``s sigma_Y / q`` and the pressure is untouched (J2 flow is
isochoric). The returned stress satisfies the yield condition but, with the new plastic strain
as eigenstrain, no longer equilibrium: a model alternates solve and return, once per time step
(plastic flow lags by one step) or to convergence (:func:`plastic_equilibrium`).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from phasefield.grid import Grid
from phasefield.operators.elasticity import Elasticity, solve_elasticity, tensor_components


def _is_normal(name: str) -> bool:
    return name[0] == name[1]


def deviator(stress: dict) -> dict:
    """``s = sigma - tr(sigma)/3 I`` over the same components (2D: zz included, plane strain)."""
    pressure = sum(stress[n] for n in stress if _is_normal(n)) / 3.0
    return {n: v - pressure if _is_normal(n) else v for n, v in stress.items()}


def equivalent_stress(deviatoric: dict):
    """``q = sqrt(3/2 s : s)`` (shear components count twice)."""
    contraction = sum((1.0 if _is_normal(n) else 2.0) * v * v for n, v in deviatoric.items())
    return jnp.sqrt(1.5 * contraction)


class Return(NamedTuple):
    """stress: returned stress; plastic_increment: ``d_eps_p`` (dict); equivalent_increment:
    ``sqrt(2/3 d_eps_p : d_eps_p)`` (= ``d_gamma``, the accumulated plastic strain increment)."""

    stress: dict
    plastic_increment: dict
    equivalent_increment: jax.Array


def radial_return(trial_stress: dict, shear_modulus, yield_stress) -> Return:
    """Return ``trial_stress`` (dict of component fields) to the yield surface ``q <= yield_stress``.

    ``shear_modulus`` and ``yield_stress`` are per-cell fields in the stress unit (an infinite
    yield stress keeps a cell elastic).
    """
    s = deviator(trial_stress)
    q = equivalent_stress(s)
    excess = jnp.maximum(q - yield_stress, 0.0)
    d_gamma = excess / (3.0 * shear_modulus)
    factor = jnp.where(excess > 0, 1.5 * d_gamma / jnp.where(excess > 0, q, 1.0), 0.0)
    increment = {n: factor * v for n, v in s.items()}
    stress = {n: trial_stress[n] - 2.0 * shear_modulus * increment[n] for n in trial_stress}
    return Return(stress, increment, d_gamma)


def add_strains(first: dict, second: dict) -> dict:
    """Component-wise sum of two strain dicts (a missing component is zero)."""
    return {n: first.get(n, 0.0) + second.get(n, 0.0) for n in {**first, **second}}


class PlasticState(NamedTuple):
    elasticity: Elasticity
    plastic_strain: dict
    returns: jax.Array  # solve-and-return passes made
    change: jax.Array  # largest equivalent plastic increment of the last pass


def plastic_equilibrium(lam, mu, yield_stress, grid: Grid, eigenstrain: dict, plastic_strain: dict | None = None,
                        mean_strain=None, mean_stress=None, tolerance: float = 1e-6, max_returns: int = 200,
                        solver_tolerance: float = 1e-8, shear_mean: str = "arithmetic", slabs=None) -> PlasticState:
    """Equilibrium with perfect plasticity for a fixed eigenstrain: solve, return, repeat.

    The fixed point (the initial-stress method) is reached when the largest equivalent plastic
    increment of a pass is below ``tolerance``; each solve is warm-started from the last. The
    plastic strain found is that of a one-step (proportional) load; a history-dependent load
    calls this, or one pass of it, at each increment. ``slabs``: fields split along x over devices
    (:func:`phasefield.operators.elasticity.solve_elasticity`; ``None``: one device).
    """
    components = tensor_components(grid.ndim)
    if plastic_strain is None:
        plastic_strain = {n: jnp.zeros(grid.shape, jnp.result_type(lam)) for n in components}

    def solve(plastic, initial):
        return solve_elasticity(lam, mu, grid, add_strains(eigenstrain, plastic), mean_strain, mean_stress,
                                initial=initial, tolerance=solver_tolerance, shear_mean=shear_mean, slabs=slabs)

    def keep_going(state):
        return (state.change > tolerance) & (state.returns < max_returns)

    def one_pass(state):
        returned = radial_return(state.elasticity.stress, mu, yield_stress)
        plastic = add_strains(state.plastic_strain, returned.plastic_increment)
        return PlasticState(solve(plastic, state.elasticity), plastic, state.returns + 1,
                            jnp.max(returned.equivalent_increment))

    start = PlasticState(solve(plastic_strain, None), plastic_strain, jnp.asarray(0), jnp.asarray(jnp.inf))
    return jax.lax.while_loop(keep_going, one_pass, start)
