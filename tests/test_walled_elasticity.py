"""The walled elasticity solver's parts (operators.walled_elasticity) against independent constructions.

* the hand-written operator :func:`stiffness` equals the Hessian-vector product of :func:`stored_energy` taken by
  autodiff, for random moduli, every wall kind, 2D and 3D;
* the preconditioner's ``K0^-1`` (mirrored real FFTs, Woodbury for clamped walls) inverts the homogeneous operator
  applied by :func:`stiffness` (up to the rigid translations);
* the CG iterations of a cracked plate do not grow with the stiffness contrast of the broken zone.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.grid import Grid
from phasefield.operators import walled_elasticity as we

GRID_2D, GRID_3D = Grid((7, 5), (0.3, 0.8)), Grid((5, 4, 3), (0.5, 0.7, 0.9))
# each wall kind on a side, the wall axis first in 2D and inside in 3D
CASES = [(GRID_2D, we.Walls(0, we.CLAMPED, we.FREE)), (GRID_3D, we.Walls(1, we.ROLLER, we.CLAMPED))]


@pytest.mark.parametrize("grid, walls", CASES, ids=[f"{g.ndim}d-{w.axis}-{w.low}-{w.high}" for g, w in CASES])
def test_stiffness_is_the_hessian_of_the_stored_energy(grid, walls):
    keys = jax.random.split(jax.random.PRNGKey(walls.axis), 2 + grid.ndim)
    bulk = jnp.exp(3.0 * jax.random.normal(keys[0], grid.shape))  # a contrast of ~1e4 between cells
    shear = jnp.exp(3.0 * jax.random.normal(keys[1], grid.shape))
    u = tuple(jax.random.normal(k, s) for k, s in zip(keys[2:], we.displacement_shapes(grid, walls)))
    eigen = {"xx": 0.01 * jnp.ones(grid.shape), "zz": 0.02}  # enters W, not its Hessian

    @jax.jit
    def both(u):
        force = jax.grad(lambda v: we.stored_energy(v, bulk, bulk, shear, grid, walls, eigen))
        _, hessian = jax.linearize(force, tuple(jnp.zeros_like(x) for x in u))
        return hessian(u), we.stiffness(bulk, shear, grid, walls)(u)

    for expected, got in zip(*both(u)):
        assert float(jnp.max(jnp.abs(got - expected))) <= 1e-13 * float(jnp.max(jnp.abs(expected)))


@pytest.mark.parametrize("grid, walls", [(GRID_2D, we.Walls(0, we.ROLLER, we.CLAMPED)),
                                         (GRID_3D, we.Walls(1, we.CLAMPED, we.CLAMPED))], ids=["2d", "3d"])
def test_reference_inverse_inverts_the_homogeneous_operator(grid, walls):
    """``K0 K0^-1 r = r`` for the homogeneous operator with roller and clamped walls (applied by :func:`stiffness`
    on the free entries), both sides less their rigid translations (the mean of each tangential component)."""
    lam, mu = 100.0, 60.0
    mask = we._free_mask(grid, walls, jnp.float64)
    keys = jax.random.split(jax.random.PRNGKey(3), grid.ndim)
    ones = jnp.ones(grid.shape)

    def centred(v):
        return tuple(x if a == walls.axis else x - jnp.mean(x) for a, x in enumerate(v))

    r = centred(tuple(m * jax.random.normal(k, m.shape) for k, m in zip(keys, mask)))

    @jax.jit
    def back(r):
        z = we._apply_reference(we._reference(grid, walls, lam, mu, jnp.float64), r, grid, walls)
        applied = we.stiffness((lam + 2.0 * mu / 3.0) * ones, mu * ones, grid, walls)(z)
        return z, centred(tuple(m * a for m, a in zip(mask, applied)))

    z, applied = back(r)
    for got, expected in zip(applied, r):
        assert float(jnp.max(jnp.abs(got - expected))) < 1e-12 * float(jnp.max(jnp.abs(expected)))
    assert float(jnp.max(jnp.abs(z[walls.axis] * (1.0 - mask[walls.axis])))) == 0.0  # nothing on the wall faces


def test_iterations_do_not_grow_with_the_contrast():
    """A 32 x 32 plate between clamped walls, pulled, with a 12-cell crack (``g = (1 - d)^2 + k`` on a diffuse
    profile, ``d = 1`` on the crack row): CG iterations at ``k = 1e-8`` at most those at ``k = 1e-2`` plus 2 (without
    the rescaling ``S`` of the preconditioner: 3 more, 53 -> 56) and bounded; a broken row across the plate (two
    blocks joined at ``k``) takes a few iterations at any ``k``."""
    n = 32
    grid = Grid((n, n), 1.0)
    walls = we.Walls(0, we.CLAMPED, we.CLAMPED)
    x, y = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
    distance = np.hypot(x - n / 2, np.maximum(np.abs(y - n / 2) - 6.0, 0.0))
    crack = jnp.asarray(np.clip(1.0 - distance / 3.0, 0.0, 1.0))
    cut = jnp.asarray(np.where(np.abs(x - n / 2) < 0.5, 1.0, 0.0) * np.ones_like(y))
    bulk, shear = 80.0, 40.0

    @jax.jit
    def iterations(damage, k):
        g = (1.0 - damage) ** 2 + k
        return we.solve_walled_elasticity(g * bulk, bulk * jnp.ones_like(g), g * shear, grid, walls,
                                          wall_displacement=(0.0, 0.1), reference_moduli=(bulk, shear),
                                          tolerance=1e-9).iterations

    stiff, soft = int(iterations(crack, 1e-2)), int(iterations(crack, 1e-8))
    assert soft <= min(stiff + 2, 60)
    assert max(int(iterations(cut, k)) for k in (1e-2, 1e-8)) <= 10
