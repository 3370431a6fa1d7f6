"""The one preconditioned CG (operators/krylov.pcg): dense reference, pytree unknowns, early exits, jit/vmap."""
import jax
import jax.numpy as jnp
import numpy as np

from phasefield.operators.krylov import pcg, tree_axpy, tree_dot

N = 12


def spd_system(seed=0, n=N):
    """A random SPD matrix (condition number ~1e2), its Jacobi preconditioner and a right-hand side."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    matrix = (q * np.logspace(0, 2, n)) @ q.T
    matrix = 0.5 * (matrix + matrix.T)
    return jnp.asarray(matrix), jnp.asarray(1.0 / np.diag(matrix)), jnp.asarray(rng.standard_normal(n))


def test_pcg_matches_dense_solve():
    matrix, inv_diag, rhs = spd_system()
    x, stats = pcg(lambda v: matrix @ v, rhs, jnp.zeros_like(rhs), lambda r: inv_diag * r, 1e-13, 200)
    expected = np.linalg.solve(np.asarray(matrix), np.asarray(rhs))
    assert x.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    assert 0 < int(stats.iterations) <= 2 * N  # exact arithmetic: at most N; round-off costs a few more
    assert float(stats.residual) <= 1e-13
    assert stats.iterations.dtype == jnp.int32


def test_pcg_stops_at_max_iterations():
    matrix, inv_diag, rhs = spd_system()
    x, stats = pcg(lambda v: matrix @ v, rhs, jnp.zeros_like(rhs), lambda r: inv_diag * r, 1e-13, 3)
    assert int(stats.iterations) == 3
    assert float(stats.residual) > 1e-13


def test_pcg_pytree_unknown():
    """A tuple of two arrays (a block system): the same answer as the dense solve of the whole."""
    matrix, inv_diag, rhs = spd_system(seed=1)
    split = 5

    def operator(x):
        y = matrix @ jnp.concatenate(x)
        return (y[:split], y[split:])

    def precondition(r):
        return (inv_diag[:split] * r[0], inv_diag[split:] * r[1])

    b = (rhs[:split], rhs[split:])
    x0 = (jnp.zeros(split), jnp.zeros(N - split))
    x, stats = pcg(operator, b, x0, precondition, 1e-13, 200)
    assert isinstance(x, tuple) and x[0].shape == (split,) and x[1].shape == (N - split,)
    expected = np.linalg.solve(np.asarray(matrix), np.asarray(rhs))
    np.testing.assert_allclose(np.concatenate([np.asarray(a) for a in x]), expected, rtol=1e-10,
                               atol=1e-10 * np.abs(expected).max())
    assert float(stats.residual) <= 1e-13


def test_zero_rhs_costs_no_iteration():
    matrix, inv_diag, _ = spd_system()
    zero = jnp.zeros(N)
    x, stats = pcg(lambda v: matrix @ v, zero, zero, lambda r: inv_diag * r, 1e-10, 50)
    assert int(stats.iterations) == 0
    assert float(stats.residual) == 0.0
    np.testing.assert_array_equal(np.asarray(x), 0.0)


def test_converged_start_costs_no_iteration():
    matrix, inv_diag, rhs = spd_system()
    exact = jnp.asarray(np.linalg.solve(np.asarray(matrix), np.asarray(rhs)))
    x, stats = pcg(lambda v: matrix @ v, rhs, exact, lambda r: inv_diag * r, 1e-10, 50)
    assert int(stats.iterations) == 0
    np.testing.assert_array_equal(np.asarray(x), np.asarray(exact))


def test_custom_residual_norm_is_the_stopping_measure():
    matrix, inv_diag, rhs = spd_system()

    def max_residual(x, r, rz):
        return jnp.max(jnp.abs(r)) / jnp.max(jnp.abs(rhs))

    x, stats = pcg(lambda v: matrix @ v, rhs, jnp.zeros_like(rhs), lambda r: inv_diag * r, 1e-9, 200, max_residual)
    true = float(jnp.max(jnp.abs(rhs - matrix @ x)) / jnp.max(jnp.abs(rhs)))
    assert float(stats.residual) <= 1e-9
    assert true <= 1e-8  # the recursive residual tracks the true one


def test_jit_and_vmap_over_rhs():
    matrix, inv_diag, _ = spd_system()
    rhs = jnp.asarray(np.random.default_rng(2).standard_normal((4, N)))
    rhs = rhs.at[2].set(0.0)  # one member converged from the start while the others iterate

    @jax.jit
    def solve(b):
        return pcg(lambda v: matrix @ v, b, jnp.zeros_like(b), lambda r: inv_diag * r, 1e-12, 200)

    x, stats = jax.vmap(solve)(rhs)
    expected = np.linalg.solve(np.asarray(matrix), np.asarray(rhs).T).T
    np.testing.assert_allclose(np.asarray(x), expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    assert stats.iterations.shape == (4,)
    assert int(stats.iterations[2]) == 0 and all(int(stats.iterations[i]) > 0 for i in (0, 1, 3))
    single, single_stats = solve(rhs[0])
    # batched matrix products round differently: agreement to the solve tolerance, not bit for bit
    np.testing.assert_allclose(np.asarray(single), np.asarray(x[0]), rtol=0, atol=1e-10 * np.abs(expected).max())
    assert abs(int(single_stats.iterations) - int(stats.iterations[0])) <= 1


def test_tree_helpers():
    x = (jnp.arange(3.0), jnp.ones((2, 2)))
    y = (jnp.ones(3), 2.0 * jnp.ones((2, 2)))
    assert float(tree_dot(x, y)) == 3.0 + 8.0
    z = tree_axpy(2.0, x, y)
    np.testing.assert_array_equal(np.asarray(z[0]), [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(np.asarray(z[1]), 4.0 * np.ones((2, 2)))


def test_solvers_run_under_their_named_call():
    """Profiles split the time per physics: the lowered solves carry their names."""
    from phasefield.grid import Boundary, Grid, Side
    from phasefield.operators import solve_elasticity, solve_potential

    grid = Grid((8, 6), 1.0)
    walls = Boundary(((Side("dirichlet", -0.4), Side("dirichlet", 0.0)), (Side("neumann"), Side("neumann"))))
    potential = jax.jit(lambda s: solve_potential(s, jnp.zeros(grid.shape), grid, walls, jnp.zeros(grid.shape))[0])
    text = potential.lower(jnp.ones(grid.shape)).as_text(debug_info=True)
    assert "potential_solve" in text and "elasticity_solve" not in text
    elastic = jax.jit(lambda mu: solve_elasticity(2.0 * mu, mu, grid, 0.01 * jnp.ones(grid.shape)).displacement)
    text = elastic.lower(jnp.ones(grid.shape)).as_text(debug_info=True)
    assert "elasticity_solve" in text and "potential_solve" not in text
