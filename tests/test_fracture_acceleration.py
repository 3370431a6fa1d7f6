"""Accelerated alternate minimisation (``FractureProblem.acceleration``): the same load step as the plain u-d
iterations, and the option refused before any compute when it is not one of the methods."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.config import ConfigError, validate_run
from phasefield.grid import Grid
from phasefield.operators import walled_elasticity as we
from phasefield.physics import fracture as fr

N = 24
GRID = Grid((N, N), 1.0)
YOUNG, POISSON, TOUGHNESS, LENGTH = 100.0, 0.25, 0.01, 1.5  # GPa, -, GPa um, um
HALF_LENGTH = 3.0  # um
TOLERANCE = 1e-5
# each method stops where max|G(d) - d| <= TOLERANCE; at a contraction ratio of up to 0.9 per iteration such an
# iterate lies within 10 TOLERANCE of the fixed point, which the plain iterations to 1e-10 give (the reference)
FIXED_POINT = 10 * TOLERANCE


def problem(acceleration, tolerance=TOLERANCE):
    return fr.FractureProblem(GRID, we.Walls(0, we.CLAMPED, we.CLAMPED), tolerance=tolerance, max_iterations=400,
                              acceleration=acceleration)


def crack_pressure(ratio):
    """``ratio`` times the Griffith pressure ``K_Ic / sqrt(pi a)`` of the pre-crack (grid toughness)."""
    modulus = fr.plane_strain_modulus(YOUNG, POISSON)
    return ratio * np.sqrt(modulus * fr.effective_toughness(TOUGHNESS, 1.0, LENGTH)) / np.sqrt(np.pi * HALF_LENGTH)


def griffith_volume(half_length):
    """Sneddon's volume ``2 pi p a^2 / E'`` of a centre crack at its Griffith pressure ``K_Ic / sqrt(pi a)``."""
    modulus = fr.plane_strain_modulus(YOUNG, POISSON)
    toughness = np.sqrt(modulus * fr.effective_toughness(TOUGHNESS, 1.0, LENGTH))
    return 2.0 * np.sqrt(np.pi) * half_length**1.5 * toughness / modulus


@jax.jit
def _steps(pressure, fluid):
    """The pre-crack relaxed unloaded, then per method (plain, Anderson, and plain to 1e-10: the reference) one load
    step from it at the crack ``pressure``, and one with the volume ``fluid`` of an incompressible fluid in the crack
    (:class:`fr.VolumeControl`)."""
    y = GRID.axis_coordinates(1) - N / 2
    crack = np.zeros(GRID.shape)
    crack[N // 2, np.abs(y) < HALF_LENGTH] = 1.0
    material = fr.FractureMaterial(YOUNG, POISSON, TOUGHNESS, LENGTH, 1e-8)
    zero = jnp.zeros((), jnp.float64)
    relaxed = problem("none", 1e-10)
    state, _ = fr.load_step(relaxed, material, fr.damage_model("AT1"), fr.initial_state(relaxed, crack), fr.Loading())
    out = {}
    for name, p in (("none", problem("none")), ("anderson", problem("anderson")), ("reference", relaxed)):
        loading = fr.Loading((zero, zero), (zero, zero), pressure, None)
        out[name] = fr.load_step(p, material, fr.damage_model("AT1"), state, loading) + (state.damage,)
        control = fr.VolumeControl(fluid, jnp.asarray(1e6), zero, tuple(jnp.zeros_like(u) for u in state.displacement))
        out[name + "_volume"] = fr.load_step(p, material, fr.damage_model("AT1"), state, loading._replace(
            crack_pressure=zero), volume=control) + (state.damage,)
    return out


def test_accelerated_step_converges_to_the_plain_fixed_point():
    """A pre-crack at 1.3 times its Griffith pressure runs through the periodic strip: plain and Anderson-accelerated
    iterations end on the fixed point of the plain ones (to 1e-10) within ``FIXED_POINT``, within the bounds
    d_prev <= d <= 1."""
    out = _steps(jnp.asarray(crack_pressure(1.3)), jnp.asarray(griffith_volume(5.0)))
    plain, info_plain, _ = out["none"]
    fast, info_fast, start = out["anderson"]
    reference, info_reference, _ = out["reference"]
    assert bool(info_plain.converged) and bool(info_fast.converged) and bool(info_reference.converged)
    assert float(fr.crack_extent(plain.damage, problem("none"))) == GRID.lengths[1]  # it propagated
    gaps = [float(jnp.max(jnp.abs(s.damage - reference.damage))) for s in (plain, fast)]
    print(f"u-d iterations: plain {int(info_plain.iterations)}, anderson {int(info_fast.iterations)}; "
          f"from the fixed point {gaps[0]:.2e}, {gaps[1]:.2e}")
    assert max(gaps) < FIXED_POINT
    assert bool(jnp.all(fast.damage >= start)) and float(jnp.max(fast.damage)) <= 1.0


def test_volume_controlled_crack_stops_at_griffith_for_both():
    """The same pre-crack (half-length 3 um) filled with an incompressible fluid of Sneddon's volume at the Griffith
    pressure of a half-length of 5 um: the pressure follows the volume at every u-d iteration, so the crack grows
    stably and stops at 2 x 5 um within a cell (at a fixed pressure above Griffith it runs through the strip,
    above); plain and Anderson iterations end on the same damage and pressure."""
    out = _steps(jnp.asarray(crack_pressure(1.3)), jnp.asarray(griffith_volume(5.0)))
    (plain, info_plain, _), (fast, info_fast, _) = out["none_volume"], out["anderson_volume"]
    reference, info_reference, _ = out["reference_volume"]
    assert bool(info_plain.converged) and bool(info_fast.converged) and bool(info_reference.converged)
    gaps = [float(jnp.max(jnp.abs(s.damage - reference.damage))) for s in (plain, fast)]
    print(f"u-d iterations: plain {int(info_plain.iterations)}, anderson {int(info_fast.iterations)}; "
          f"p = {float(info_plain.pressure):.5f} GPa; from the fixed point {gaps[0]:.2e}, {gaps[1]:.2e}")
    assert float(fr.crack_extent(plain.damage, problem("none"))) == pytest.approx(10.0, abs=1.0)
    assert max(gaps) < FIXED_POINT
    for info in (info_plain, info_fast):
        assert float(info.pressure) == pytest.approx(float(info_reference.pressure), rel=1e-4)


@pytest.mark.parametrize("key, value", [("damage_acceleration", "aitken"), ("relaxation_weight", 2.5),
                                        ("anderson_window", 0)])
@pytest.mark.parametrize("scenario", ["fracture", "filament"])
def test_acceleration_options_refused(scenario, key, value):
    with pytest.raises(ConfigError) as error:
        validate_run({"scenario": {"name": scenario, key: value}, "solver": {}, "output": {}})
    assert key in str(error.value)
