"""Time-stepping schemes for ``du/dt = L u + N(u)`` with ``L`` diagonal in a fast basis.

A scheme is a :class:`Stepper`: pure functions of the model parameters (a pytree, the validated
scenario config) and a ``carry`` pytree, so the integrator can scan them, ``vmap`` them over
parameters, checkpoint them and resume them bit for bit.

The carry is ``{"state": ..., "history": ..., "cache": ...}``:

* ``state``: the physical fields and integrated quantities (passed charge, step count) that
  define where the run is;
* ``history``: what the scheme remembers to take the next step (previous transforms and step
  sizes, warm starts of iterative solves, the random key);
* ``cache``: values of the last step kept only for diagnostics (iteration counts, residuals,
  currents). Checkpoints store state and history; on resume the cache starts from zeros.

* ``explicit``: forward Euler on the stencil right-hand side.
* ``imex1``:    ``(u' - u)/dt = L u' + N(u)``.
* ``sbdf2``:    variable-step second-order semi-implicit BDF (Wang & Ruuth 2008), with
  ``w = dt_n / dt_{n-1}``:
  ``[(1+2w)/(1+w) u' - (1+w) u + w^2/(1+w) u_prev] / dt = L u' + (1+w) N(u) - w N(u_prev)``.
  The first step has no history (``dt_prev = inf`` so ``w = 0``) and reduces to ``imex1``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from phasefield.operators import SpectralBasis

SCHEMES = ("explicit", "imex1", "sbdf2")
CHECKPOINTED = ("state", "history")


class Stepper(NamedTuple):
    """A time scheme as pure functions of ``params`` (the scenario's parameter pytree) and the carry.

    init(params, fields) -> carry;  step(params, carry, dt) -> carry;
    fields(params, carry) -> dict of stored fields (physical units);
    stable_dt(params) -> the explicit stability limit (``inf`` for unconditionally stable parts).
    ``change(new, old)`` is the per-step change that adaptive dt controls (default: the largest
    change of any stored field). ``stop(params, carry) -> bool`` ends the run early at a physical
    event (a short circuit); ``stop_reason`` says what it was: a string, or a host function of the
    parameters and the final carry that returns one (:func:`describe_stop`).
    """

    init: Callable
    step: Callable
    fields: Callable
    stable_dt: Callable
    order: int
    change: Callable | None = None
    stop: Callable | None = None
    stop_reason: str | Callable = ""


def describe_stop(stepper: Stepper, params, carry) -> str:
    """Why ``stepper.stop`` ended a run with this final ``carry`` (one member's, in a batch)."""
    if callable(stepper.stop_reason):
        return stepper.stop_reason(params, carry)
    return stepper.stop_reason


def unconditionally_stable(params):
    return jnp.inf


def explicit_euler(name: str, rhs: Callable, dtype, stable_dt: Callable, slabs=None) -> Stepper:
    """``u' = u + dt * rhs(params, u)`` for a single field called ``name``; with ``slabs``
    (:class:`phasefield.decomposition.Slabs`) the field is split along axis 0 over the devices."""

    def place(u):
        return u if slabs is None else slabs.constrain(u)

    def init(params, fields):
        return {"state": {name: place(jnp.asarray(fields[name], dtype))}, "history": {}, "cache": {}}

    def step(params, carry, dt):
        u = carry["state"][name]
        return {**carry, "state": {name: place(u + jnp.asarray(dt, dtype) * rhs(params, u))}}

    return Stepper(init, step, lambda params, carry: {name: carry["state"][name]}, stable_dt, 1)


def semi_implicit(name: str, basis: SpectralBasis, symbols: Callable, pointwise: Callable, order: int) -> Stepper:
    """IMEX step with implicit part ``L`` (symbol) and explicit part ``N(u) = S * T[g(u)]``.

    ``symbols(params) -> (L, S)`` gives the linear symbol and the symbol of the explicit part,
    ``T`` is the basis transform and ``g = pointwise(params, u)`` (e.g. Cahn-Hilliard:
    ``S = M * lap``, ``g = f'(u) - A u``).
    """
    if order not in (1, 2):
        raise ValueError(f"semi-implicit order must be 1 or 2, got {order}")
    dtype = basis.dtype

    def init(params, fields):
        u = basis.constrain_field(jnp.asarray(fields[name], dtype))
        u_hat = basis.forward(u)
        zeros = basis.constrain_coefficients(jnp.zeros_like(u_hat))
        history = {"u_hat": u_hat, "u_hat_prev": zeros, "n_hat_prev": zeros,
                   "dt_prev": basis.constrain_replicated(jnp.asarray(jnp.inf, dtype))}
        return {"state": {name: u}, "history": history, "cache": {}}

    @jax.named_call
    def semi_implicit_step(params, carry, dt):
        dt = jnp.asarray(dt, dtype)
        u, history = carry["state"][name], carry["history"]
        linear_symbol, nonlinear_symbol = symbols(params)
        n_hat = nonlinear_symbol * basis.forward(pointwise(params, u))
        w = dt / history["dt_prev"] if order == 2 else jnp.zeros((), dtype)
        a0 = (1 + 2 * w) / (1 + w)
        a2 = w * w / (1 + w)
        rhs = ((1 + w) * history["u_hat"] - a2 * history["u_hat_prev"]) / dt + (1 + w) * n_hat - w * history["n_hat_prev"]
        u_hat = rhs / (a0 / dt - linear_symbol)
        history = {"u_hat": u_hat, "u_hat_prev": history["u_hat"], "n_hat_prev": n_hat, "dt_prev": dt}
        return {**carry, "state": {name: basis.inverse(u_hat)}, "history": history}

    return Stepper(init, semi_implicit_step, lambda params, carry: {name: carry["state"][name]},
                   unconditionally_stable, order)


def semi_implicit_fields(names: tuple, basis: SpectralBasis, symbols: Callable, pointwise: Callable,
                         order: int) -> Stepper:
    """:func:`semi_implicit` for coupled fields that share one basis (each its own linear symbol).

    ``symbols(params) -> {name: (L, S)}``; ``pointwise(params, state) -> {name: g}`` sees every field,
    so the explicit part of each field may depend on all of them (``N_name = S_name * T[g_name]``).
    The step of each field is :func:`semi_implicit`'s, with one shared ``dt`` history.
    """
    if order not in (1, 2):
        raise ValueError(f"semi-implicit order must be 1 or 2, got {order}")
    dtype = basis.dtype

    def init(params, fields):
        state = {name: basis.constrain_field(jnp.asarray(fields[name], dtype)) for name in names}
        u_hat = {name: basis.forward(state[name]) for name in names}
        zeros = {name: basis.constrain_coefficients(jnp.zeros_like(u)) for name, u in u_hat.items()}
        history = {"u_hat": u_hat, "u_hat_prev": zeros, "n_hat_prev": dict(zeros),
                   "dt_prev": basis.constrain_replicated(jnp.asarray(jnp.inf, dtype))}
        return {"state": state, "history": history, "cache": {}}

    @jax.named_call
    def semi_implicit_fields_step(params, carry, dt):
        dt = jnp.asarray(dt, dtype)
        state, history = carry["state"], carry["history"]
        sym = symbols(params)
        explicit = pointwise(params, state)
        w = dt / history["dt_prev"] if order == 2 else jnp.zeros((), dtype)
        a0 = (1 + 2 * w) / (1 + w)
        a2 = w * w / (1 + w)
        new_state, u_hats, n_hats = {}, {}, {}
        for name in names:
            linear_symbol, nonlinear_symbol = sym[name]
            n_hat = nonlinear_symbol * basis.forward(explicit[name])
            rhs = (((1 + w) * history["u_hat"][name] - a2 * history["u_hat_prev"][name]) / dt
                   + (1 + w) * n_hat - w * history["n_hat_prev"][name])
            u_hats[name] = rhs / (a0 / dt - linear_symbol)
            n_hats[name] = n_hat
            new_state[name] = basis.inverse(u_hats[name])
        history = {"u_hat": u_hats, "u_hat_prev": history["u_hat"], "n_hat_prev": n_hats, "dt_prev": dt}
        return {**carry, "state": new_state, "history": history}

    return Stepper(init, semi_implicit_fields_step, lambda params, carry: dict(carry["state"]),
                   unconditionally_stable, order)
