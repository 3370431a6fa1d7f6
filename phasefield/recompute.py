"""Stages of a step that reverse mode recomputes when its backward pass reaches them.

The backward pass of a step (``jax.vjp``) keeps every intermediate of the step's forward pass until its own
transpose uses it. The intermediates of an early stage (the dendrite's Allen-Cahn upkeep, the swelling's
Cahn-Hilliard update) are used last, so they are held through the backward pass of every later stage: the
potential, transport and elasticity solves, the largest part of the peak. A :func:`recomputed` stage keeps
only its inputs; its backward pass runs it again and takes its ``jax.vjp`` then, once the cotangent of its
outputs exists. ``jax.checkpoint`` does not achieve this on the CPU: XLA drops the optimization barrier that
orders the recomputation and schedules it at the start of the backward pass, where it adds to the peak; here
the recomputation's inputs depend on the cotangent (``x + 0 * sum(cotangent)``), which no schedule can move.

Only within :func:`reverse_pass` (the backward passes of :mod:`phasefield.calibrate`): a ``jax.custom_vjp``
has no forward-mode derivative, so elsewhere (runs, forward-mode Jacobians) a stage is the plain function.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp

_depth = 0


@contextlib.contextmanager
def reverse_pass():
    """Trace within this block for reverse mode only: :func:`recomputed` stages keep only their inputs."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def recomputed(function: Callable, *args):
    """``function(*args)``; within :func:`reverse_pass` its backward pass recomputes it (module docstring)."""
    if not _depth:
        return function(*args)
    converted, constants = jax.closure_convert(function, *args)
    return _late(converted, tuple(constants), args)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _late(function, constants, args):
    return function(*args, *constants)


def _late_forward(function, constants, args):
    return function(*args, *constants), (constants, args)


def _late_backward(function, saved, cotangent):
    sums = [jnp.sum(x) for x in jax.tree.leaves(cotangent) if jnp.issubdtype(x.dtype, jnp.inexact)]
    zero = 0.0 * sum(sums, jnp.zeros(()))  # 0 (NaN where the cotangent is), computed from the cotangent

    def after(x):
        return x + zero.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x

    constants, args = jax.tree.map(after, saved)
    _, pullback = jax.vjp(lambda c, a: function(*a, *c), constants, args)
    return pullback(cotangent)


_late.defvjp(_late_forward, _late_backward)
