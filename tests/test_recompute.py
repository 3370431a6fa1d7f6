"""phasefield.recompute: a stage recomputed by its own backward pass gives the same gradient and is not held
through the backward pass of the stages after it."""
import jax
import jax.numpy as jnp
import numpy as np

from phasefield.memory import peak_bytes
from phasefield.recompute import implicit_root, recomputed, repeated, reverse_pass, root, taken_again

N = 64
FIELD = N * N * 8  # bytes of one float64 field
MIXING = jnp.asarray(np.random.default_rng(0).standard_normal((N, N)) / N)


def early(x, s):
    """Eight elementwise updates: reverse mode keeps a field per update (their cosines)."""
    for _ in range(8):
        x = jnp.sin(x * s) + jnp.roll(x, 1, 0)
    return x


def late(y):
    """Eight matrix updates: a backward pass that itself keeps a field per update."""
    for _ in range(8):
        y = jnp.tanh(y @ MIXING) + y
    return jnp.sum(y**2)


def test_a_recomputed_stage_gives_the_same_gradient_and_is_not_held_through_the_later_backward_pass():
    def gradient(stage_call, reverse):
        def loss(x, s):
            return late(stage_call(lambda: early(x, s)))

        def grad(x, s):
            if reverse:
                with reverse_pass():
                    return jax.grad(loss, argnums=(0, 1))(x, s)
            return jax.grad(loss, argnums=(0, 1))(x, s)

        return jax.jit(grad)

    args = (jax.ShapeDtypeStruct((N, N), jnp.float64), jax.ShapeDtypeStruct((), jnp.float64))
    x, s = jnp.linspace(0.0, 1.0, N * N).reshape(N, N), jnp.asarray(0.7)
    plain, late_stage = gradient(lambda f: f(), False), gradient(recomputed, True)
    for a, b in zip(plain(x, s), late_stage(x, s)):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=0.0)
    kept, recomputed_peak = (peak_bytes(g.lower(*args)) for g in (plain, late_stage))
    # the early stage's eight fields are held through the late backward pass only without recomputation
    assert recomputed_peak <= kept - 4 * FIELD, (kept / FIELD, recomputed_peak / FIELD)
    # outside reverse_pass a stage is the plain function: forward mode passes it
    tangent = jax.jvp(lambda v: late(recomputed(lambda: early(v, s))), (x,), (jnp.ones_like(x),))[1]
    assert np.isfinite(float(tangent))


def test_repeated_gives_the_loops_gradient_without_a_stack_of_its_iterates():
    """Eight iterations of an elementwise update: a fori_loop with a checkpointed body keeps its eight carries
    (fields) for reverse mode; repeated keeps the first and recomputes the others in its backward pass."""
    def body(x, w, shift):
        return jnp.sin(x * w) + shift * jnp.roll(x, 1, 0)

    def gradient(reverse):
        def loss(x, w):
            return late(repeated(body, 8, x, w, 0.5))

        def grad(x, w):
            if reverse:
                with reverse_pass():
                    return jax.grad(loss, argnums=(0, 1))(x, w)
            return jax.grad(loss, argnums=(0, 1))(x, w)

        return jax.jit(grad)

    args = (jax.ShapeDtypeStruct((N, N), jnp.float64), jax.ShapeDtypeStruct((N, N), jnp.float64))
    x, w = jnp.linspace(0.0, 1.0, N * N).reshape(N, N), jnp.linspace(0.5, 1.5, N * N).reshape(N, N)
    looped, recomputing = gradient(False), gradient(True)
    for a, b in zip(looped(x, w), recomputing(x, w)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
    kept, recomputed_peak = (peak_bytes(g.lower(*args)) for g in (looped, recomputing))
    assert recomputed_peak <= kept - 4 * FIELD, (kept / FIELD, recomputed_peak / FIELD)


def test_root_gives_custom_roots_gradient_and_does_not_hold_the_inputs_linearisation_through_the_adjoint_solve():
    """x solves x + x^3 / 3 = g(p) (g: eight elementwise updates of p, each a field that reverse mode keeps);
    the adjoint solve is GMRES with 20 Krylov fields. Under lax.custom_root g's linearisation is held through
    that solve; root takes it after (measured: 48.3 fields at the peak against 55.3 at 64^2)."""
    def solve(balance, guess):
        def newton(_, x):
            return x - balance(x) / (1.0 + x * x)

        x = jax.lax.fori_loop(0, 30, newton, guess)
        return x, (jnp.sum(x),)

    def gmres(matvec, rhs):
        return jax.scipy.sparse.linalg.gmres(matvec, rhs, tol=1e-14, restart=20, maxiter=2)[0]

    def linear_solve(linearised, rhs):
        return jax.lax.custom_linear_solve(linearised, rhs, solve=gmres, transpose_solve=gmres)

    def transposed_solve(matvec, row_sums, rhs, extra):
        return gmres(matvec, rhs)

    def loss(p, s, solver):
        def balance(x):
            return x + x**3 / 3.0 - 0.1 * early(p, s)

        x, _ = solver(balance, solve, jnp.zeros_like(p), linear_solve, transposed_solve)
        return jnp.sum(jnp.sin(x))

    def with_custom_root(balance, solve, guess, linear_solve, transposed_solve):
        return jax.lax.custom_root(balance, guess, solve, linear_solve, has_aux=True)

    def grad_with(solver):
        def grad(p, s):
            with reverse_pass():
                return jax.grad(loss, argnums=(0, 1))(p, s, solver)

        return jax.jit(grad)

    p, s = jnp.linspace(0.0, 1.0, N * N).reshape(N, N), jnp.asarray(0.7)
    reference, adjoint_after = grad_with(with_custom_root), grad_with(root)
    for a, b in zip(reference(p, s), adjoint_after(p, s)):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
    args = (jax.ShapeDtypeStruct((N, N), jnp.float64), jax.ShapeDtypeStruct((), jnp.float64))
    held, after = (peak_bytes(g.lower(*args)) for g in (reference, adjoint_after))
    assert after <= held - 4 * FIELD, (held / FIELD, after / FIELD)


def test_implicit_root_has_the_analytic_tangent_and_gradient_and_traces_its_tangent_only_when_differentiated():
    """``x^3 + p x = q`` per entry, solved by Newton in a while_loop: ``dx/dp = -x / (3 x^2 + p)`` and
    ``dx/dq = 1 / (3 x^2 + p)``, forward (jvp of a jitted function) and reverse (grad through jit, scan and
    checkpoint), with the residual closing over integer and boolean tracers and the tangent solve given a traced
    array in ``extra`` (values a lazily traced rule must not close over); a plain trace runs ``tangent_solve``
    never (lax.custom_root traces it every time)."""
    calls = []

    def tangent_solve(linear, y, extra):
        calls.append(1)
        (scale,) = extra
        return y * scale / (linear(jnp.ones_like(y)) * scale)

    def newton(f, guess):
        def step(state):
            x, count = state
            return x - f(x) / (3 * x ** 2 + 2.0), count + 1  # an approximate Jacobian: the root is f's own

        x, count = jax.lax.while_loop(lambda s: (jnp.max(jnp.abs(f(s[0]))) > 1e-14) & (s[1] < 200), step,
                                      (guess, 0))
        return x, (count.astype(x.dtype),)

    def solution(p, q):
        positive, above = jnp.sum(q > 0), q > 1.0  # an integer and a boolean tracer, closed over by f
        x, _ = implicit_root(lambda x: x ** 3 + p * x * jnp.where(above, 1.0, 1.0) - q * (positive // positive),
                             jnp.ones_like(q), newton, tangent_solve, (2.0 * p,))
        return x

    p, q = jnp.asarray([1.0, 2.0, 0.5]), jnp.asarray([2.0, 5.0, 0.3])
    jax.jit(solution).trace(p, q)
    assert not calls
    x = jax.jit(solution)(p, q)
    np.testing.assert_allclose(x ** 3 + p * x, q, rtol=1e-13)
    denominator, weights = 3 * x ** 2 + p, jnp.arange(1.0, 4.0)
    _, dx = jax.jvp(jax.jit(lambda p: solution(p, q)), (p,), (jnp.ones_like(p),))
    np.testing.assert_allclose(dx, -x / denominator, rtol=1e-12)

    def loss(p, q):  # twice the weighted solution, through a scan of two steps and a checkpoint
        return jax.lax.scan(lambda total, _: (total + jax.checkpoint(lambda p: jnp.sum(solution(p, q) * weights))(p),
                                              None), 0.0, None, length=2)[0]

    gradient = jax.jit(jax.grad(loss, argnums=(0, 1)))(p, q)
    np.testing.assert_allclose(gradient[0], -2 * x / denominator * weights, rtol=1e-12)
    np.testing.assert_allclose(gradient[1], 2 / denominator * weights, rtol=1e-12)


def test_taken_again_is_the_given_value_with_the_functions_derivatives_and_enters_only_a_differentiated_program():
    """``cos(p x)`` (p closed over, an integer count beside it) taken again at ``x`` where a loop's value is held: the
    primal is that value (here deliberately off by 1e-3, to tell it apart) and no cosine is in the program; the
    tangent and the gradient in ``p`` and ``x`` are the cosine's, ``-x sin(p x)`` and ``-p sin(p x)``, and within
    reverse_pass it is the function itself."""
    x, p = jnp.asarray([0.3, 1.1, 2.0]), jnp.asarray(1.7)

    def held(p, x):
        def again(x):
            return jnp.cos(p * x), jnp.sum(x > 0).astype(jnp.int32)

        value = (jnp.asarray(np.cos(1.7 * np.array([0.3, 1.1, 2.0])) + 1e-3), jnp.asarray(7, jnp.int32))
        return taken_again(again, value, x)

    (primal, count) = jax.jit(held)(p, x)
    np.testing.assert_array_equal(primal, jnp.cos(p * x) + 1e-3)
    assert int(count) == 7
    assert "cosine" not in jax.jit(held).lower(p, x).as_text()
    _, (tangent_p, _) = jax.jvp(jax.jit(held), (p, x), (jnp.ones_like(p), jnp.zeros_like(x)))
    np.testing.assert_allclose(tangent_p, -x * jnp.sin(p * x), rtol=1e-13)
    gradient = jax.jit(jax.grad(lambda p, x: jnp.sum(held(p, x)[0]), argnums=(0, 1)))(p, x)
    np.testing.assert_allclose(gradient[0], jnp.sum(-x * jnp.sin(p * x)), rtol=1e-13)
    np.testing.assert_allclose(gradient[1], -p * jnp.sin(p * x), rtol=1e-13)
    with reverse_pass():
        np.testing.assert_allclose(held(p, x)[0], jnp.cos(p * x), rtol=1e-15)
