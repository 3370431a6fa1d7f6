"""Shared mechanics (physics/mechanics.py): the Voigt mix of the phases' moduli (pure phases, residual
stiffness, traced moduli), the series yield stress, and one solve-and-return against the elasticity
solver and the radial return called by hand, a free homogeneous eigenstrain that leaves no stress (3D
and generalized plane strain), and a converged warm start that costs no iteration."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.grid import Grid
from phasefield.operators import isotropic_moduli, solve_elasticity
from phasefield.physics.mechanics import WarmStart, mix_moduli, series_yield_stress, solve_and_return
from phasefield.physics.plasticity import add_strains, radial_return

PHASES = [(10.0, 5.0), (2.0, 1.0), (7.0, 3.0)]


def test_mix_moduli_equals_each_phase_where_its_weight_is_one():
    psi = jnp.array([0.0, 1.0, 0.0])
    other = jnp.array([0.0, 0.0, 1.0])
    lam, mu = mix_moduli([psi, 1 - psi - other, other], PHASES)
    np.testing.assert_array_equal(lam, [2.0, 10.0, 7.0])
    np.testing.assert_array_equal(mu, [1.0, 5.0, 3.0])


def test_mix_moduli_residual_stiffness_is_the_stiff_phase_even_when_traced():
    h = jnp.array([0.0, 0.5, 1.0])
    lam_mix, mu_mix = mix_moduli([h, 1 - h], [(10.0, 5.0), (2.0, 1.0)], floor=1e-3)
    assert np.allclose(mu_mix, [1.0 + 5e-3, 3.0 + 5e-3, 5.0 + 5e-3])
    assert np.allclose(lam_mix, [2.0 + 1e-2, 6.0 + 1e-2, 10.0 + 1e-2])
    # moduli and floor as traced values (a parameter pytree under jit): same numbers; the stiff phase is
    # the second one here, picked on the device
    traced = jax.jit(lambda moduli, floor: mix_moduli([h, 1 - h], moduli, floor))(
        [(jnp.asarray(2.0), jnp.asarray(1.0)), (jnp.asarray(10.0), jnp.asarray(5.0))], jnp.asarray(1e-3))
    np.testing.assert_allclose(traced[1], [5.0 + 5e-3, 3.0 + 5e-3, 1.0 + 5e-3], rtol=1e-15)
    np.testing.assert_allclose(traced[0], [10.0 + 1e-2, 6.0 + 1e-2, 2.0 + 1e-2], rtol=1e-15)
    with pytest.raises(ValueError, match="weight fields"):
        mix_moduli([h], PHASES)


def test_series_yield_stress_is_each_phase_at_the_ends_and_y_over_w_against_an_elastic_phase():
    w = jnp.array([0.0, 0.25, 1.0])
    np.testing.assert_allclose(series_yield_stress(w, 2.0, 8.0), [8.0, 1.0 / (0.125 + 0.09375), 2.0], rtol=1e-15)
    np.testing.assert_allclose(series_yield_stress(w[1:], 2.0, jnp.inf), [8.0, 2.0], rtol=1e-15)


def _uniform(grid, young=50.0, poisson=0.25):
    lam, mu = isotropic_moduli(young, poisson)
    return jnp.full(grid.shape, lam), jnp.full(grid.shape, mu)


def test_free_homogeneous_eigenstrain_in_a_uniform_material_is_stress_free():
    """Every mean stress free: a uniform eigenstrain is taken up by the mean strain, sigma = 0 (3D); in 2D
    plane strain a uniaxial sigma_zz remains, which generalized plane strain releases."""
    eigen = {"xx": 0.01, "yy": -0.004, "zz": 0.02, "xy": 0.003}
    grid = Grid((8, 8), (0.5, 0.5))
    lam, mu = _uniform(grid)
    free = {"xx": 0.0, "yy": 0.0, "xy": 0.0}
    fields = {k: jnp.full(grid.shape, v) for k, v in eigen.items()}
    zero = {k: jnp.zeros(grid.shape) for k in ("xx", "yy", "zz", "xy")}
    # each solve compiled (as in a stepper): eager dispatch of the CG loops costs ~15 s a solve
    held = jax.jit(lambda: solve_and_return(lam, mu, jnp.full(grid.shape, 0.01), grid, fields, zero,
                                            mean_stress=free, tolerance=1e-12))()
    # plane strain holds eps_zz = 0: in-plane free, a uniaxial sigma_zz = -E eps*_zz remains
    np.testing.assert_allclose(held.solution.stress["zz"], -50.0 * eigen["zz"], rtol=1e-12)
    # generalized plane strain, a dilatation with the in-plane mean strains held at it: the one Newton
    # correction of eps_zz is exact for uniform moduli (in-plane strains held), and nothing is left
    dilatation = {k: jnp.full(grid.shape, 0.01) for k in ("xx", "yy", "zz")}
    step = jax.jit(lambda: solve_and_return(lam, mu, jnp.full(grid.shape, 0.01), grid, dilatation, zero,
                                            mean_strain={"xx": 0.01, "yy": 0.01, "xy": 0.0}, generalized=True,
                                            tolerance=1e-12))()
    for name, value in step.solution.stress.items():
        np.testing.assert_allclose(value, 0.0, atol=1e-12, err_msg=name)
    assert float(step.axial_strain) == pytest.approx(0.01, rel=1e-12)
    np.testing.assert_array_equal(step.equivalent_increment, 0.0)  # nothing yields at zero stress

    grid3 = Grid((6, 6, 6), (0.5, 0.5, 0.5))
    lam, mu = _uniform(grid3)
    eigen3 = {"xx": 0.01, "yy": -0.004, "zz": 0.02, "yz": 0.001, "xz": -0.002, "xy": 0.003}
    free3 = {k: 0.0 for k in eigen3}
    step = jax.jit(lambda: solve_and_return(lam, mu, jnp.full(grid3.shape, jnp.inf), grid3,
                                            {k: jnp.full(grid3.shape, v) for k, v in eigen3.items()}, {},
                                            mean_stress=free3, tolerance=1e-12))()
    for name, value in step.stress.items():
        np.testing.assert_allclose(value, 0.0, atol=1e-12, err_msg=name)
    for name, value in eigen3.items():
        assert float(step.solution.mean_strain[name]) == pytest.approx(value, rel=1e-12)


def test_solve_and_return_is_one_elasticity_solve_and_one_radial_return():
    """Against the two calls made by hand: a disc with a dilatational eigenstrain in a softer matrix under a
    uniaxial mean stress, yielding in part; the plastic strain grows by the return's increment."""
    grid = Grid((32, 32), (1.0 / 32, 1.0 / 32))
    x, y = np.broadcast_arrays(*grid.coordinates())
    disc = jnp.asarray((np.hypot(x - 0.5, y - 0.5) < 0.25).astype(float))
    lam, mu = mix_moduli([disc, 1 - disc], [isotropic_moduli(80.0, 0.22), isotropic_moduli(20.0, 0.3)])
    yield_stress = series_yield_stress(disc, 0.3, 1e6)
    eigen = {"xx": 0.01 * disc, "yy": 0.01 * disc, "zz": 0.01 * disc}
    rng = np.random.default_rng(1)
    plastic = {k: jnp.asarray(rng.normal(0, 1e-4, grid.shape)) * disc for k in ("xx", "yy", "zz", "xy")}
    load = {"mean_strain": {"yy": 0.0}, "mean_stress": {"xx": -0.01, "xy": 0.0}}
    step = solve_and_return(lam, mu, yield_stress, grid, eigen, plastic, **load, tolerance=1e-10)
    by_hand = solve_elasticity(lam, mu, grid, add_strains(eigen, plastic), **load, tolerance=1e-10)
    returned = radial_return(by_hand.stress, mu, yield_stress)
    assert 0 < float(jnp.mean(returned.equivalent_increment > 0)) < 1  # part of the cell yields
    for name in by_hand.stress:
        np.testing.assert_array_equal(step.solution.stress[name], by_hand.stress[name])
        np.testing.assert_array_equal(step.stress[name], returned.stress[name])
        np.testing.assert_array_equal(step.plastic_strain[name], plastic[name] + returned.plastic_increment[name])
    np.testing.assert_array_equal(step.equivalent_increment, returned.equivalent_increment)
    assert int(step.iterations) == int(by_hand.iterations)
    # restarted from its own solution with the same plastic strain, the solve has nothing left to do
    again = solve_and_return(lam, mu, yield_stress, grid, eigen, plastic, **load, tolerance=1e-10,
                             warm_start=WarmStart.of(step.solution))
    assert int(again.iterations) == 0
    np.testing.assert_allclose(again.solution.stress["xx"], step.solution.stress["xx"], atol=1e-14)


def test_generalized_plane_strain_is_2d_only():
    grid = Grid((4, 4, 4), (1.0, 1.0, 1.0))
    lam, mu = _uniform(grid)
    with pytest.raises(ValueError, match="2D"):
        solve_and_return(lam, mu, jnp.inf, grid, {}, {}, generalized=True)
