"""Time-stepping schemes for ``du/dt = L u + N(u)`` with ``L`` diagonal in a fast basis.

A scheme is a :class:`Stepper`: pure functions over a ``carry`` pytree (the fields plus
whatever history the scheme needs), so the integrator can scan them, checkpoint them and
resume them bit for bit.

* ``explicit``: forward Euler on the stencil right-hand side.
* ``imex1``:    ``(u' - u)/dt = L u' + N(u)``.
* ``sbdf2``:    variable-step second-order semi-implicit BDF (Wang & Ruuth 2008), with
  ``w = dt_n / dt_{n-1}``:
  ``[(1+2w)/(1+w) u' - (1+w) u + w^2/(1+w) u_prev] / dt = L u' + (1+w) N(u) - w N(u_prev)``.
  The first step has no history (``dt_prev = inf`` so ``w = 0``) and reduces to ``imex1``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax.numpy as jnp

from phasefield.operators import SpectralBasis

SCHEMES = ("explicit", "imex1", "sbdf2")


class Stepper(NamedTuple):
    """A time scheme as pure functions.

    init(fields) -> carry;  step(carry, dt) -> carry;  fields(carry) -> dict.
    ``stable_dt`` is the explicit stability limit (``inf`` for unconditionally stable linear parts).
    ``change(new, old)`` is the per-step change that adaptive dt controls (default: the largest
    change of any field). ``stop(carry) -> bool`` ends the run early at a physical event (a
    short circuit); ``stop_reason`` says what it was.
    """

    init: Callable
    step: Callable
    fields: Callable
    stable_dt: float  # a traced scalar when the model parameters are traced (batched runs)
    order: int
    change: Callable | None = None
    stop: Callable | None = None
    stop_reason: str = ""


def explicit_euler(name: str, rhs: Callable, dtype, stable_dt: float) -> Stepper:
    """``u' = u + dt * rhs(u)`` for a single field called ``name``."""

    def init(fields):
        return {name: jnp.asarray(fields[name], dtype)}

    def step(carry, dt):
        u = carry[name]
        return {name: u + jnp.asarray(dt, dtype) * rhs(u)}

    return Stepper(init, step, lambda carry: {name: carry[name]}, stable_dt, 1)


def semi_implicit(
    name: str,
    basis: SpectralBasis,
    linear_symbol,
    nonlinear_symbol,
    pointwise: Callable,
    order: int,
) -> Stepper:
    """IMEX step with implicit part ``L`` (symbol) and explicit part ``N(u) = S * T[g(u)]``.

    ``T`` is the basis transform, ``S`` = ``nonlinear_symbol`` and ``g`` = ``pointwise``
    (e.g. Cahn-Hilliard: ``S = M * lap``, ``g = f'(u) - A u``).
    """
    if order not in (1, 2):
        raise ValueError(f"semi-implicit order must be 1 or 2, got {order}")
    dtype = basis.dtype

    def init(fields):
        u = jnp.asarray(fields[name], dtype)
        u_hat = basis.forward(u)
        return {
            name: u,
            "u_hat": u_hat,
            "u_hat_prev": jnp.zeros_like(u_hat),
            "n_hat_prev": jnp.zeros_like(u_hat),
            "dt_prev": jnp.asarray(jnp.inf, dtype),
        }

    def step(carry, dt):
        dt = jnp.asarray(dt, dtype)
        u = carry[name]
        n_hat = nonlinear_symbol * basis.forward(pointwise(u))
        w = dt / carry["dt_prev"] if order == 2 else jnp.zeros((), dtype)
        a0 = (1 + 2 * w) / (1 + w)
        a2 = w * w / (1 + w)
        rhs = ((1 + w) * carry["u_hat"] - a2 * carry["u_hat_prev"]) / dt + (1 + w) * n_hat - w * carry["n_hat_prev"]
        u_hat = rhs / (a0 / dt - linear_symbol)
        return {name: basis.inverse(u_hat), "u_hat": u_hat, "u_hat_prev": carry["u_hat"], "n_hat_prev": n_hat,
                "dt_prev": dt}

    return Stepper(init, step, lambda carry: {name: carry[name]}, float("inf"), order)
