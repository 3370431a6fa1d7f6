"""Stages of a step that reverse mode recomputes when its backward pass reaches them.

The backward pass of a step (``jax.vjp``) keeps every intermediate of the step's forward pass until its own
transpose uses it. The intermediates of an early stage (the dendrite's Allen-Cahn upkeep, the swelling's
Cahn-Hilliard update) are used last, so they are held through the backward pass of every later stage: the
potential, transport and elasticity solves, the largest part of the peak. A :func:`recomputed` stage keeps
only its inputs; its backward pass runs it again and takes its ``jax.vjp`` then, once the cotangent of its
outputs exists, and hands on the cotangents of its inputs only once all of them exist (each plus ``0 * sum``
of all: a NaN or inf in one of them makes all of them NaN, so a non-finite gradient points at the stage, not
at the input). ``jax.checkpoint`` does not achieve this on the CPU: XLA drops the optimization barrier that
orders the recomputation and schedules it at the start of the backward pass, where it adds to the peak; here
the recomputation's inputs depend on the cotangent (``x + 0 * sum(cotangent)``), which no schedule can move.

:func:`repeated` does the same for a fixed number of iterations of one update (the swelling's limiter passes):
no iterate is stored; the backward pass recomputes each from the first.

:func:`root` does the same for an implicit solve (:func:`implicit_root`): its backward pass linearises the
residual in the unknown for the adjoint solve, and in the residual's inputs only after it.

Only within :func:`reverse_pass` (the backward passes of :mod:`phasefield.calibrate`): a ``jax.custom_vjp``
has no forward-mode derivative, so elsewhere (runs, forward-mode Jacobians) a stage is the plain function.

:func:`taken_again` is the converse, for any mode: a step whose value the caller holds already (a loop's last
trial, taken again only to carry derivatives) enters a program only where a derivative is taken.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

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
    constants, args = _after(cotangent)(saved)
    _, pullback = jax.vjp(lambda c, a: function(*a, *c), constants, args)
    # every cotangent once all exist: XLA otherwise finishes the one the next backward stage needs first and
    # the rest (and the residuals they use) only where they are summed, after that stage (the dendrite's
    # exchange at the root: its inputs' cotangents held through the adjoint GMRES, 25.8 -> 21.5 MiB)
    cotangents = pullback(cotangent)
    return _after(cotangents)(cotangents)


_late.defvjp(_late_forward, _late_backward)


def repeated(body: Callable, count: int, init, *operands):
    """``x_count`` of ``x_{k+1} = body(x_k, *operands)`` from ``x_0 = init``, a fixed number of iterations.

    Outside :func:`reverse_pass`, a ``fori_loop`` whose body is under ``jax.checkpoint`` (reverse mode keeps one
    carry per iteration). Within it, a ``jax.custom_vjp`` that keeps only ``init`` and ``operands``: its backward
    pass recomputes each iterate ``x_k`` from ``init`` (``count (count - 1) / 2`` more evaluations of ``body``)
    and takes the ``jax.vjp`` of one iteration there, so no stack of ``count`` carries exists (XLA fills such a
    stack before the whole backward pass of the step, since nothing it is made of depends on the cotangent).
    """
    if not _depth or count == 0:
        return jax.lax.fori_loop(0, count, jax.checkpoint(lambda _, x: body(x, *operands), prevent_cse=False), init)
    converted, constants = jax.closure_convert(body, init, *operands)
    return _repeated(converted, count, init, tuple(operands) + tuple(constants))


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _repeated(body, count, init, operands):
    return jax.lax.fori_loop(0, count, lambda _, x: body(x, *operands), init)


def _repeated_forward(body, count, init, operands):
    return _repeated(body, count, init, operands), (init, operands)


def _repeated_backward(body, count, saved, cotangent):
    init, operands = _after(cotangent)(saved)

    def step_backward(j, x_bar):  # the cotangents of x_j and of the operands from that of x_{j+1}
        x = jax.lax.fori_loop(0, j, lambda _, x: body(x, *operands), init)
        return jax.vjp(lambda x, o: body(x, *o), x, operands)[1](x_bar)

    def backward(i, cotangents):
        x_bar, operands_bar = step_backward(count - 1 - i, cotangents[0])
        return x_bar, jax.tree.map(jnp.add, cotangents[1], operands_bar)

    # the last iteration first: the operands' cotangents start from its (zeros made before the loop would be
    # made at the start of the step's backward pass, as a stack would)
    return jax.lax.fori_loop(1, count, backward, step_backward(count - 1, cotangent))


_repeated.defvjp(_repeated_forward, _repeated_backward)


def root(balance: Callable, solve: Callable, guess, linear_solve: Callable, transposed_solve: Callable, extra=()):
    """``implicit_root(balance, guess, solve, linear_solve, extra)``: the root ``x`` of
    ``balance(x) = 0`` found by ``solve(balance, guess) -> (x, aux)``, differentiated implicitly (``aux`` and
    ``guess`` get no derivative).

    Within :func:`reverse_pass`, a ``jax.custom_vjp`` that keeps only the root, ``balance``'s inputs and
    ``extra``. Its backward pass linearises ``balance`` in ``x`` alone, solves the adjoint ``J^T lam = x_bar``
    by ``transposed_solve(matvec, row_sums, rhs, extra)`` (``matvec``: ``v -> J^T v``; ``row_sums``: ``J 1``,
    for a preconditioner; ``extra``: the arrays it needs besides, for it may close over no traced value), and
    only then takes ``balance``'s derivative in its inputs, ``-(dF/dp)^T lam``. Under :func:`implicit_root` that
    derivative is linearised with the one in ``x`` and its forward values held through the adjoint solve;
    here its inputs depend on ``lam``, so XLA cannot compute it before the solve.
    """
    if not _depth:
        return implicit_root(balance, guess, solve, linear_solve, extra)
    balance_function, balance_inputs = jax.closure_convert(balance, guess)
    solve_function, solve_inputs = jax.closure_convert(lambda g: solve(balance, g), guess)
    return _root(balance_function, solve_function, transposed_solve, tuple(balance_inputs), tuple(solve_inputs),
                 extra, guess)


def implicit_root(f: Callable, guess, solve: Callable, tangent_solve: Callable, extra=()):
    """``jax.lax.custom_root(f, guess, solve, tangent_solve, has_aux=True)``, with its tangent rule traced only where
    a derivative is taken. ``custom_root`` traces the linearised ``f`` and ``tangent_solve`` in every trace, a
    derivative or not; for the held-voltage balance (GMRES on the exact linearisation, preconditioned by multigrid
    CG) that was 3/4 of tracing a run's step (default dendrite job: 25 s of 33 s).

    ``solve(f, guess) -> (x, aux)`` with ``f(x) = 0``; ``tangent_solve(g, y, extra)``: ``x``
    with ``g(x) = y`` for the linear ``g``; ``extra``: the arrays it needs besides. It is traced later, inside
    whatever transformation takes the derivative, so it may close over no traced value: pass those in ``extra``
    (``f`` and ``solve`` may: every value they close over becomes an argument). The tangent of ``x`` is
    ``-J^-1 (df/dp) dp`` (``J = df/dx`` at the root, linearised once); ``aux``, ``guess`` and ``extra`` get none.
    Reverse mode transposes that rule (``tangent_solve`` must be transposable, e.g. a ``lax.custom_linear_solve``),
    as for ``custom_root``."""
    f_function, f_inputs = _hoisted(f, guess)
    solve_function, solve_inputs = _hoisted(lambda g: solve(f, g), guess)
    return _implicit_root(f_function, solve_function, tangent_solve, f_inputs, solve_inputs, extra, guess)


def _hoisted(function: Callable, example):
    """``(converted, constants)``: ``converted(x, *constants) == function(x)`` with every value ``function`` closes
    over an argument (integer and boolean ones too, which ``jax.closure_convert`` leaves closed over)."""
    closed, shapes = jax.make_jaxpr(function, return_shape=True)(example)  # one trace, not two (nested solves
    # trace theirs again at every level: the leaky galvanostatic strip's step traced in 9.9 CPU s, now 7.8)

    def converted(x, *constants):
        values = jax.core.eval_jaxpr(closed.jaxpr, constants, *jax.tree.leaves(x))
        return jax.tree.unflatten(jax.tree.structure(shapes), values)

    return converted, tuple(closed.consts)


@partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _implicit_root(f, solve, tangent_solve, f_inputs, solve_inputs, extra, guess):
    return solve(guess, *solve_inputs)


@_implicit_root.defjvp
def _implicit_root_tangent(f, solve, tangent_solve, primals, tangents):
    f_inputs, solve_inputs, extra, guess = primals
    x, aux = solve(guess, *solve_inputs)
    df = jax.jvp(lambda p: f(x, *p), (f_inputs,), (tangents[0],))[1]
    _, linearised = jax.linearize(lambda y: f(y, *f_inputs), x)
    dx = tangent_solve(linearised, jax.tree.map(jnp.negative, df), extra)
    return (x, aux), (dx, jax.tree.map(_zero_tangent, aux))


def _zero_tangent(x):
    """The zero tangent of ``x`` (``float0`` for an integer or boolean array)."""
    return jnp.zeros_like(x) if jnp.issubdtype(x.dtype, jnp.inexact) else np.zeros(x.shape, jax.dtypes.float0)


def taken_again(function: Callable, value, *args):
    """``function(*args)`` where the caller holds its value already: ``value``, e.g. the last trial of the loop
    that found ``args``, a step taken again from its own converged solution only to carry the derivatives.

    The primal is ``value`` (it gets no derivative); the derivatives are ``function``'s at ``args``. ``function``
    is traced once here but enters the program only where a derivative is taken, so a run's program holds the step
    once, in its loop, not twice (the leaky galvanostatic step: a whole balanced step with its Newton loop). Within
    :func:`reverse_pass`, ``function(*args)`` (the memory of the backward passes is measured that way)."""
    if _depth:
        return function(*args)
    converted, constants = _hoisted(lambda a: function(*a), args)
    return _given(converted, constants, args, jax.lax.stop_gradient(value))


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _given(function, constants, args, value):
    return value


@_given.defjvp
def _given_tangent(function, primals, tangents):
    constants, args, value = primals
    _, tangent = jax.jvp(lambda c, a: function(a, *c), (constants, args), tuple(tangents[:2]))
    return value, tangent


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _root(balance, solve, transposed_solve, balance_inputs, solve_inputs, extra, guess):
    return solve(guess, *solve_inputs)


def _root_forward(balance, solve, transposed_solve, balance_inputs, solve_inputs, extra, guess):
    x, aux = solve(guess, *solve_inputs)
    return (x, aux), (x, balance_inputs, extra)


def _root_backward(balance, solve, transposed_solve, saved, cotangent):
    x_bar = cotangent[0]
    x, balance_inputs, extra = _after(x_bar)(saved)  # the linearisation once the cotangent exists

    def at(y):
        return balance(y, *balance_inputs)

    _, pullback = jax.vjp(at, x)
    row_sums = jax.jvp(at, (x,), (jnp.ones_like(x),))[1]
    lam = transposed_solve(lambda v: pullback(v)[0], row_sums, x_bar, extra)
    inputs = _after(lam)(balance_inputs)  # the inputs' derivative only after the adjoint solve
    inputs_bar = jax.vjp(lambda p: balance(x, *p), inputs)[1](-lam)[0]
    return inputs_bar, None, None, None


def _after(cotangent):
    """``tree -> tree`` with ``0 * sum(cotangent)`` added to its floating-point leaves: the same values (NaN
    where ``cotangent`` is), computed once ``cotangent`` exists."""
    sums = [jnp.sum(x) for x in jax.tree.leaves(cotangent) if jnp.issubdtype(x.dtype, jnp.inexact)]
    zero = 0.0 * sum(sums, jnp.zeros(()))

    def after(x):
        return x + zero.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.inexact) else x

    return lambda tree: jax.tree.map(after, tree)


_root.defvjp(_root_forward, _root_backward)
