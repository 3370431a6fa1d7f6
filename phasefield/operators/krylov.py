"""One preconditioned conjugate-gradient solver for every symmetric positive (semi-)definite system.

The potential (multigrid-preconditioned), Li+ transport (the same), elasticity (FFT-preconditioned)
and the stabilised Cahn-Hilliard update (spectral) all call :func:`pcg`; each supplies its own
operator, preconditioner and stopping measure.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class PCGStats(NamedTuple):
    """What a solve did: ``iterations`` (int32) and the stopping ``residual`` of the returned iterate."""

    iterations: jax.Array
    residual: jax.Array


def tree_dot(x, y):
    """Euclidean inner product of two pytrees of arrays (``sum conj(a) b``, contracted over every axis: ``vdot``'s
    ravel gathers an array split unevenly over devices, e.g. the ``n_x + 1`` faces of a walled displacement)."""
    return sum(jnp.tensordot(jnp.conj(a), b, a.ndim)
               for a, b in zip(jax.tree_util.tree_leaves(x), jax.tree_util.tree_leaves(y)))


def tree_axpy(alpha, x, y):
    """``alpha x + y`` leaf by leaf."""
    return jax.tree_util.tree_map(lambda a, b: alpha * a + b, x, y)


class _State(NamedTuple):
    x: object
    r: object
    p: object
    rz: jax.Array
    iterations: jax.Array
    residual: jax.Array


def pcg(operator: Callable, rhs, x0, preconditioner: Callable, tolerance, max_iterations: int,
        residual_norm: Callable | None = None):
    """Solve ``A x = b`` by preconditioned CG (Hestenes-Stiefel with ``z = M^-1 r``).

    operator:       ``x -> A x`` (pytree in, same pytree out), symmetric positive (semi-)definite;
    rhs, x0:        ``b`` and the starting guess (pytrees of the same structure);
    preconditioner: ``r -> M^-1 r``, symmetric positive definite;
    residual_norm:  ``(x, r, rz) -> scalar`` compared with ``tolerance`` (``rz = r . M^-1 r``);
                    default ``sqrt(rz / (b . M^-1 b))``, the relative residual in the dual norm.

    The measure is checked on ``x0`` first (a converged start costs 0 iterations); the loop stops
    when it is at most ``tolerance`` or after ``max_iterations``. A non-positive curvature
    ``p . A p`` (a singular direction) gives a zero step instead of a division by zero.
    Returns ``(x, PCGStats(iterations, residual))``; pure JAX (``lax.while_loop``): jit-, vmap- and
    scan-friendly.

    Derivatives are implicit (``jax.lax.custom_linear_solve``, symmetric): the tangent (forward mode)
    or cotangent (reverse mode) of ``x`` is itself one solve with the same operator and
    preconditioner, ``A dx = db - dA x``, never a derivative through the CG iterations, so the
    loop's ``while_loop`` does not block reverse mode and the derivative is as accurate as the
    tolerance. Each such solve measures convergence on its own right-hand side and starts from
    ``x0`` or from zero, whichever leaves the smaller residual (a warm start of the primal is no
    start for a tangent). Derivatives with respect to the preconditioner are zero (it only
    changes how fast CG converges).
    """
    def solve(matvec, b):
        return _pcg(matvec, b, x0, preconditioner, tolerance, max_iterations, residual_norm)

    x, stats = jax.lax.custom_linear_solve(operator, rhs, solve, symmetric=True, has_aux=True)
    return x, stats


def _pcg(operator, rhs, x0, preconditioner, tolerance, max_iterations, residual_norm):
    """:func:`pcg`'s iterations (not differentiated: :func:`pcg` supplies the derivative)."""
    if residual_norm is None:
        b_norm = tree_dot(rhs, preconditioner(rhs))
        scale = jnp.where(b_norm > 0, b_norm, 1.0)

        def residual_norm(x, r, rz):
            return jnp.sqrt(jnp.maximum(rz, 0.0) / scale)

    r0 = tree_axpy(-1.0, operator(x0), rhs)
    from_zero = tree_dot(rhs, rhs) < tree_dot(r0, r0)  # x0 is worse than no guess (e.g. for a tangent)
    x0, r0 = jax.tree_util.tree_map(lambda zero_start, warm: jnp.where(from_zero, zero_start, warm),
                                    (jax.tree_util.tree_map(jnp.zeros_like, x0), rhs), (x0, r0))
    z0 = preconditioner(r0)
    rz0 = tree_dot(r0, z0)
    zero = jnp.zeros((), rz0.dtype)
    start = _State(x0, r0, z0, rz0, jnp.zeros((), jnp.int32), jnp.asarray(residual_norm(x0, r0, rz0), rz0.dtype))

    def keep_going(s: _State):
        return (s.residual > tolerance) & (s.iterations < max_iterations)

    def iterate(s: _State):
        ap = operator(s.p)
        pap = tree_dot(s.p, ap)
        alpha = jnp.where(pap > 0, s.rz / jnp.where(pap > 0, pap, 1.0), zero)
        x = tree_axpy(alpha, s.p, s.x)
        r = tree_axpy(-alpha, ap, s.r)
        z = preconditioner(r)
        rz = tree_dot(r, z)
        beta = jnp.where(s.rz > 0, rz / jnp.where(s.rz > 0, s.rz, 1.0), zero)
        return _State(x, r, tree_axpy(beta, s.p, z), rz, s.iterations + 1,
                      jnp.asarray(residual_norm(x, r, rz), rz0.dtype))

    final = jax.lax.while_loop(keep_going, iterate, start)
    return final.x, PCGStats(final.iterations, final.residual)
