"""Cahn-Hilliard and Allen-Cahn schemes: conservation, energy decrease, time order, equilibrium profile."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.grid import Boundary, Grid
from phasefield.integrate import NonFiniteError, TimeControl, integrate
from phasefield.models import spinodal
from phasefield.models.gradient_flow import allen_cahn, cahn_hilliard
from phasefield.operators import SpectralBasis, laplacian
from phasefield.physics.free_energy import double_well, double_well_derivative, gradient_energy

PARAMS = spinodal.Config()


def f_prime(c):
    return double_well_derivative(c, PARAMS.rho_s, PARAMS.c_alpha, PARAMS.c_beta)


def ch_stepper(grid, boundary, scheme, stabilization=0.0, dtype=jnp.float64):
    return cahn_hilliard(grid, boundary, f_prime, PARAMS.mobility, PARAMS.kappa, scheme, dtype,
                         stabilization=stabilization, curvature_max=1.6)


def run_steps(stepper, c0, dt, n):
    step = jax.jit(stepper.step)
    carry = stepper.init({"c": c0})
    history = [carry["c"]]
    for _ in range(n):
        carry = step(carry, dt)
        history.append(carry["c"])
    return history


def spinodal_start(n):
    return spinodal.initial_condition(Grid((n, n), 1.0), PARAMS)


@pytest.mark.parametrize("scheme,dt", [("explicit", 0.002), ("imex1", 0.5), ("sbdf2", 0.2)])
@pytest.mark.parametrize("kind", ["periodic", "neumann"])
def test_cahn_hilliard_conserves_mass(scheme, dt, kind):
    grid = Grid((48, 40), 1.0)
    rng = np.random.default_rng(0)
    c0 = 0.5 + 0.05 * rng.normal(size=grid.shape)
    history = run_steps(ch_stepper(grid, Boundary.uniform(2, kind), scheme), c0, dt, 40)
    masses = np.array([float(jnp.sum(c)) for c in history])
    assert np.max(np.abs(masses - masses[0])) < 1e-13 * masses[0]
    assert float(jnp.max(jnp.abs(history[-1] - history[0]))) > 1e-3  # it did evolve


@pytest.mark.parametrize("scheme,dt,stabilization", [("explicit", 0.0025, 0.0), ("sbdf2", 0.1, 0.0), ("imex1", 1.0, 1.0)])
@pytest.mark.parametrize("variant", ["a", "b"])
def test_cahn_hilliard_free_energy_non_increasing(scheme, dt, stabilization, variant):
    grid = Grid((64, 64), 1.0)
    boundary = spinodal.boundary_for(variant, 2)
    history = run_steps(ch_stepper(grid, boundary, scheme, stabilization), spinodal_start(64), dt, 150)
    energy = np.array([float(spinodal.free_energy(c, grid, boundary, PARAMS)) for c in history])
    assert np.all(np.diff(energy) <= 1e-12 * energy[0])
    assert energy[-1] < energy[0] - 1e-3


def test_explicit_and_spectral_share_one_discretisation():
    """The spectral right-hand side M lap(f'(c) - kappa lap c) equals the stencil one to round-off."""
    for kind in ("periodic", "neumann"):
        grid = Grid((32, 24), (1.0, 0.7))
        boundary = Boundary.uniform(2, kind)
        c = jnp.asarray(0.5 + 0.1 * np.random.default_rng(1).normal(size=grid.shape))
        basis = SpectralBasis(grid, boundary)
        lap = basis.laplacian_symbol
        spectral = basis.inverse(PARAMS.mobility * lap * (basis.forward(f_prime(c)) - PARAMS.kappa * lap * basis.forward(c)))
        stencil = PARAMS.mobility * laplacian(f_prime(c) - PARAMS.kappa * laplacian(c, grid, boundary), grid, boundary)
        assert float(jnp.max(jnp.abs(spectral - stencil))) < 1e-11


@pytest.mark.parametrize("scheme,expected", [("imex1", 1.0), ("sbdf2", 2.0)])
def test_semi_implicit_time_order(scheme, expected):
    """Error at t = 4 against a fine-dt run of the same scheme halves (imex1) or quarters (sbdf2)."""
    grid = Grid((48, 48), 1.0)
    boundary = Boundary.uniform(2, "periodic")
    stepper = ch_stepper(grid, boundary, scheme)
    c0 = spinodal_start(48)
    t_end = 4.0

    def solve(dt):
        carry, _ = integrate(stepper, TimeControl(dt), stepper.init({"c": c0}), {"t": 0.0, "step": 0, "dt": dt}, t_end, t_end)
        return carry["c"]

    reference = solve(0.0025)
    dts = [0.08, 0.04, 0.02]
    errors = [float(jnp.max(jnp.abs(solve(dt) - reference))) for dt in dts]
    observed = np.log2(errors[-2] / errors[-1])
    assert abs(observed - expected) < 0.15, (errors, observed)


def test_allen_cahn_equilibrium_profile_and_interface_energy():
    """A 1D Allen-Cahn front relaxes to 1/2[1 - tanh(k (x - x0))], k = sqrt(W / 2 kappa), with energy sqrt(2 kappa W)/6."""
    height, kappa = 1.0, 0.5  # W and kappa: k = 1, gamma = 1/6
    k, gamma = np.sqrt(height / (2 * kappa)), np.sqrt(2 * kappa * height) / 6
    results = {}
    for scheme, dt in (("sbdf2", 0.2), ("explicit", 0.004)):
        for n in (200, 400):
            grid = Grid((n,), 40.0 / n)
            boundary = Boundary.uniform(1, "neumann")
            x = grid.axis_coordinates(0)
            xi0 = np.where(x < 20.0, 1.0, 0.0)
            stepper = allen_cahn(grid, boundary, lambda u: double_well_derivative(u, height, 0.0, 1.0), 1.0, kappa,
                                 scheme, jnp.float64, curvature_max=2 * height, name="xi")
            carry, _ = integrate(stepper, TimeControl(dt), stepper.init({"xi": xi0}), {"t": 0.0, "step": 0, "dt": dt}, 60.0, 60.0)
            xi = np.asarray(carry["xi"])
            centre = np.interp(0.5, xi[::-1], x[::-1])
            profile_error = np.max(np.abs(xi - 0.5 * (1 - np.tanh(k * (x - centre)))))
            energy = float(jnp.sum(double_well(carry["xi"], height, 0.0, 1.0)) * grid.cell_volume
                           + gradient_energy(carry["xi"], grid, boundary, kappa))
            results[(scheme, n)] = (profile_error, energy)
            assert abs(centre - 20.0) < 0.05  # a flat front does not move
            assert profile_error < 2e-3 * (200 / n) ** 2
            assert abs(energy - gamma) < 2e-3 * gamma * (200 / n) ** 2
    # second-order convergence of the profile error
    for scheme in ("sbdf2", "explicit"):
        assert results[(scheme, 200)][0] / results[(scheme, 400)][0] > 3.5


def test_non_finite_guard_names_field_and_step():
    """Forward Euler at 4x its stability limit blows up; the guard stops at the first non-finite step."""
    grid = Grid((32, 32), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "explicit")
    dt = 4 * stepper.stable_dt
    with pytest.raises(NonFiniteError) as info:  # fixed dt: checked at the end of each chunk of 500 steps
        integrate(stepper, TimeControl(dt), stepper.init({"c": spinodal_start(32)}), {"t": 0.0, "step": 0, "dt": dt},
                  2000 * dt, 500 * dt)
    error = info.value
    assert error.fields == ["c"] and error.step > 0
    assert "'c'" in str(error) and f"step {error.step}" in str(error)
    # the step before the reported one was still finite: replay it
    carry = stepper.init({"c": spinodal_start(32)})
    step = jax.jit(stepper.step)
    for _ in range(error.step - 1):
        carry = step(carry, dt)
    assert bool(jnp.all(jnp.isfinite(carry["c"])))
    assert not bool(jnp.all(jnp.isfinite(step(carry, dt)["c"])))


def test_adaptive_dt_reaches_record_times_and_grows():
    grid = Grid((64, 64), 1.0)
    boundary = Boundary.uniform(2, "periodic")
    stepper = ch_stepper(grid, boundary, "sbdf2", stabilization=1.0)
    control = TimeControl(0.01, adaptive=True, dt_min=1e-3, dt_max=2.0, target_change=0.005)
    times = []
    carry, clock = integrate(stepper, control, stepper.init({"c": spinodal_start(64)}), {"t": 0.0, "step": 0, "dt": 0.01},
                             200.0, 20.0, lambda carry, clock: times.append(clock["t"]))
    assert np.allclose(times, np.arange(20.0, 201.0, 20.0), rtol=0, atol=1e-12)
    assert clock["dt"] > 0.1  # grew from 0.01
    assert clock["step"] < 200.0 / 0.1


def test_chunks_reuse_one_compiled_loop():
    """Python-scalar and device-array clocks hit the same executable (a recompile per chunk costs ~70 ms)."""
    from phasefield.integrate import make_advance

    grid = Grid((16, 16), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "sbdf2")
    advance = make_advance(stepper, TimeControl(0.1))
    carry, clock, _ = advance(stepper.init({"c": spinodal_start(16)}), {"t": 0.0, "step": 0, "dt": 0.1}, 1.0)
    for t_stop in (2.0, 3.0):
        carry, clock, _ = advance(carry, clock, t_stop)
    carry, clock, _ = advance(carry, {k: v.item() for k, v in clock.items()}, 4.0)
    assert advance.compiled._cache_size() == 1
    assert int(clock["step"]) == 40
