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


def ch_stepper(grid, boundary, scheme, stabilization=0.0, dtype=jnp.float64):
    return cahn_hilliard(grid, boundary, spinodal.f_prime, spinodal.coefficients, scheme, dtype,
                         stabilization=stabilization)


def free_energy_diagnostics(grid, boundary):
    def diagnostics(params, carry):
        return {"free_energy": spinodal.free_energy(carry["state"]["c"], grid, boundary, params)}

    return diagnostics


def run_to(stepper, control, c0, t_end, frame_interval, record_interval=None, grid=None, boundary=None,
           on_chunk=None):
    """Integrate from ``c0`` (PARAMS) to ``t_end``; returns ``(final carry, clock)``."""
    grid = grid or Grid(np.shape(c0), 1.0)
    boundary = boundary or Boundary.uniform(grid.ndim, "periodic")
    return integrate(stepper, control, PARAMS, stepper.init(PARAMS, {"c": c0}), {"t": 0.0, "step": 0, "dt": control.dt},
                     t_end, frame_interval, record_interval or frame_interval,
                     free_energy_diagnostics(grid, boundary), on_chunk)


def run_steps(stepper, c0, dt, n):
    step = jax.jit(stepper.step)
    carry = stepper.init(PARAMS, {"c": c0})
    history = [carry["state"]["c"]]
    for _ in range(n):
        carry = step(PARAMS, carry, dt)
        history.append(carry["state"]["c"])
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

        @jax.jit  # one compile per boundary, not one per operation
        def both(c):
            lap = basis.laplacian_symbol
            spectral = basis.inverse(PARAMS.mobility * lap * (basis.forward(spinodal.f_prime(PARAMS, c))
                                                              - PARAMS.kappa * lap * basis.forward(c)))
            return spectral, PARAMS.mobility * laplacian(spinodal.f_prime(PARAMS, c)
                                                         - PARAMS.kappa * laplacian(c, grid, boundary), grid, boundary)

        spectral, stencil = both(c)
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
        carry, _ = run_to(stepper, TimeControl(dt), c0, t_end, t_end)
        return carry["state"]["c"]

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
            stepper = allen_cahn(grid, boundary, lambda p, u: double_well_derivative(u, p["height"], 0.0, 1.0),
                                 lambda p: (1.0, p["kappa"], 2 * p["height"]), scheme, jnp.float64, name="xi")
            params = {"height": height, "kappa": kappa}
            carry, _ = integrate(stepper, TimeControl(dt), params, stepper.init(params, {"xi": xi0}),
                                 {"t": 0.0, "step": 0, "dt": dt}, 60.0, 60.0, 60.0, lambda p, c: {})
            xi = np.asarray(carry["state"]["xi"])
            centre = np.interp(0.5, xi[::-1], x[::-1])
            profile_error = np.max(np.abs(xi - 0.5 * (1 - np.tanh(k * (x - centre)))))
            energy = float(jnp.sum(double_well(xi, height, 0.0, 1.0)) * grid.cell_volume
                           + gradient_energy(xi, grid, boundary, kappa))
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
    dt = 4 * float(stepper.stable_dt(PARAMS))
    with pytest.raises(NonFiniteError) as info:  # fixed dt: checked at the end of each chunk of 500 steps
        run_to(stepper, TimeControl(dt), spinodal_start(32), 2000 * dt, 500 * dt)
    error = info.value
    assert error.fields == ["c"] and error.step > 0
    assert "'c'" in str(error) and f"step {error.step}" in str(error)
    # the step before the reported one was still finite: replay it
    carry = stepper.init(PARAMS, {"c": spinodal_start(32)})
    step = jax.jit(stepper.step)
    for _ in range(error.step - 1):
        carry = step(PARAMS, carry, dt)
    assert bool(jnp.all(jnp.isfinite(carry["state"]["c"])))
    assert not bool(jnp.all(jnp.isfinite(step(PARAMS, carry, dt)["state"]["c"])))


def test_adaptive_dt_lands_on_frames_and_grows():
    grid = Grid((64, 64), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "sbdf2", stabilization=1.0)
    control = TimeControl(0.01, adaptive=True, dt_min=1e-3, dt_max=2.0, target_change=0.005)
    frames = []

    def on_chunk(carry, clock, records, frame):
        if frame:
            frames.append(clock["t"])

    _, clock = run_to(stepper, control, spinodal_start(64), 200.0, 20.0, 20.0, on_chunk=on_chunk)
    assert np.allclose(frames, np.arange(20.0, 201.0, 20.0), rtol=0, atol=1e-12)
    assert clock["dt"] > 0.1  # grew from 0.01
    assert clock["step"] < 200.0 / 0.1


def test_scalar_records_do_not_cap_the_adaptive_step():
    """Records every 0.5 or every 50 take the same steps (records are interpolated, not landed on) and land
    on every record time; the interpolated free energy is no further from a 10x finer run than records on
    which the steps land (the scheme's own error)."""
    grid = Grid((48, 48), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "sbdf2", stabilization=1.0)
    start = spinodal_start(48)

    def records(target_change, frame_interval, record_interval):
        control = TimeControl(0.05, adaptive=True, dt_min=1e-3, dt_max=5.0, target_change=target_change)
        into = []

        def on_chunk(carry, clock, records, frame):
            into.extend((c["t"], s["free_energy"]) for c, s in records)

        _, clock = run_to(stepper, control, start, 100.0, frame_interval, record_interval, on_chunk=on_chunk)
        return np.array(into), clock

    dense, clock_dense = records(0.005, 50.0, 0.5)
    sparse, clock_sparse = records(0.005, 50.0, 50.0)
    densest, clock_densest = records(0.005, 50.0, 0.1)  # 1000 records: the 256-record buffer fills 3 times
    assert clock_dense["step"] == clock_sparse["step"] == clock_densest["step"]
    assert clock_dense["dt"] == clock_sparse["dt"] == clock_densest["dt"] and len(densest) == 1000
    assert np.allclose(dense[:, 0], np.arange(0.5, 100.01, 0.5), rtol=0, atol=1e-9)
    landed, clock_landed = records(0.005, 0.5, 0.5)
    assert clock_landed["step"] > clock_dense["step"]  # landing on records costs steps
    fine, _ = records(0.0005, 0.5, 0.5)
    interpolation_error = np.max(np.abs(dense[:, 1] - fine[:, 1]) / fine[:, 1])
    scheme_error = np.max(np.abs(landed[:, 1] - fine[:, 1]) / fine[:, 1])
    assert interpolation_error < 1.5 * scheme_error, (interpolation_error, scheme_error)


def test_record_buffer_bounds_memory_for_tiny_record_intervals():
    """A record interval far below dt: every record time is written; a full buffer ends the chunk (and its step) early."""
    grid = Grid((16, 16), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "sbdf2")
    counts = []
    _, clock = run_to(stepper, TimeControl(0.1), spinodal_start(16), 1.0, 1.0, 1e-3,
                      on_chunk=lambda carry, clock, records, frame: counts.append(len(records)))
    assert sum(counts) == 1000 and max(counts) <= 256 + 1
    assert 10 <= clock["step"] <= 10 + 4  # a full buffer cuts at most one step per chunk


def test_chunks_reuse_one_compiled_loop():
    """Python-scalar and device-array clocks hit the same executable (a recompile per chunk costs ~70 ms)."""
    from phasefield.integrate import empty_records, make_advance

    grid = Grid((16, 16), 1.0)
    stepper = ch_stepper(grid, Boundary.uniform(2, "periodic"), "sbdf2")
    diagnostics = free_energy_diagnostics(grid, Boundary.uniform(2, "periodic"))
    advance = make_advance(stepper, TimeControl(0.1), diagnostics, 1.0)
    carry = stepper.init(PARAMS, {"c": spinodal_start(16)})
    empty = empty_records(diagnostics, PARAMS, carry)
    carry, clock, _, _ = advance(PARAMS, carry, {"t": 0.0, "step": 0, "dt": 0.1}, 1.0, empty)
    for t_stop in (2.0, 3.0):
        carry, clock, _, _ = advance(PARAMS, carry, clock, t_stop, empty)
    carry, clock, _, _ = advance(PARAMS, carry, {k: v.item() for k, v in clock.items()}, 4.0, empty)
    assert advance.compiled._cache_size() == 1
    assert int(clock["step"]) == 40


def front_passing(width=0.01, arrival=1.0):
    """A toy stepper whose state is exact at every step: ``u(t) = tanh((t - arrival) / width)`` on 4 cells, the
    sudden event an adaptive controller meets (a grain vanishing). Its history keeps the time and the largest
    change of any step kept, so a step taken again leaves no trace there."""
    from phasefield.schemes import Stepper, unconditionally_stable

    def exact(t):
        return jnp.tanh((t - arrival) / width) * jnp.ones(4)

    def init(params, fields):
        history = {"t": jnp.zeros(()), "largest": jnp.zeros(()), "kept": jnp.zeros((), jnp.int64)}
        return {"state": {"u": exact(0.0)}, "history": history, "cache": {}}

    def step(params, carry, dt):
        t = carry["history"]["t"] + dt
        u = exact(t)
        largest = jnp.maximum(carry["history"]["largest"], jnp.max(jnp.abs(u - carry["state"]["u"])))
        history = {"t": t, "largest": largest, "kept": carry["history"]["kept"] + 1}
        return {"state": {"u": u}, "history": history, "cache": {}}

    return Stepper(init, step, lambda params, carry: dict(carry["state"]), unconditionally_stable, 1), exact


@pytest.mark.parametrize("reject_above", [0.0, 1.5])
def test_a_step_changing_more_than_reject_above_times_the_target_is_taken_again(reject_above):
    """The controller alone keeps the step that meets the front (it changes u by about 1 against a target of
    0.05: the step grew by 1.2x a step through the quiet start); with ``reject_above`` 1.5 no kept step changes
    more than 1.5 x 0.05, each step taken again is counted and not in ``step``, and the run still ends on the
    exact state at its records and its end (t = 2)."""
    stepper, exact = front_passing()
    target = 0.05
    control = TimeControl(1e-3, adaptive=True, dt_min=1e-6, dt_max=1.0, target_change=target, reject_above=reject_above)
    seen = []

    def diagnostics(params, carry):
        return {"u": carry["state"]["u"][0], "t": carry["history"]["t"]}

    carry, clock = integrate(stepper, control, PARAMS, stepper.init(PARAMS, {}), {"t": 0.0, "step": 0, "dt": 1e-3},
                             2.0, 2.0, 0.25, diagnostics,
                             lambda carry, clock, records, frame: seen.extend(records))
    largest = float(carry["history"]["largest"])
    assert float(carry["history"]["t"]) == pytest.approx(2.0, abs=1e-12) and clock["t"] == pytest.approx(2.0)
    assert np.allclose(carry["state"]["u"], exact(2.0), rtol=0, atol=1e-12)
    assert clock["step"] == int(carry["history"]["kept"]) and len(seen) == 8
    if not reject_above:
        assert largest > 5 * target and clock["rejected"] == 0
        return
    assert largest <= reject_above * target, largest
    assert clock["rejected"] > 0
    for record_clock, scalars in seen:  # records of kept steps only (interpolated between two kept steps)
        assert abs(scalars["u"] - float(exact(record_clock["t"])[0])) <= reject_above * target
