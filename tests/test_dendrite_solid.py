"""Li dendrites in a solid electrolyte (physics.md 4): the liquid model to the bit without load, the
mechanical overpotential of a flat front under pressure (4.5, 7.11), a compressed growing tip, Li
plasticity, input checks and the command line."""
import functools
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from phasefield.config import ConfigError, validate_run
from phasefield.physics.electrochemistry import FARADAY, GAS_CONSTANT, interpolation
from scenario_runs import assert_round_off, run_scenario

SOLVER = {"dt": 0.02, "adaptive": True, "dt_min": 1e-5, "dt_max": 0.1, "target_change": 0.02}
FIXED = {"dt": 0.01, "adaptive": False}
OMEGA_LI = 1.30e-5  # m^3/mol


def simulate(name, t_end, record, solver=None, **scenario):
    """Run scenario ``name``; returns (times, scalars dict of arrays, final carry)."""
    times, scalars, carry, _ = run_scenario(name, t_end, record, {**SOLVER, **(solver or {})}, **scenario)
    return times, scalars, jax.device_get(carry)


# a nucleus growing into the electrolyte, with anisotropy and noise (every part of the dendrite step)
SMALL = {"formulation": "chen2015", "size": [24.0, 16.0], "shape": [24, 16], "electrode_position": 5.0,
         "nuclei": [[8.0, 2.5]],
         "conductivity_metal": 1e6, "exchange_current_density": 1.106, "temperature": 300.0,
         "noise_amplitude": 0.01, "anisotropy_strength": 0.04}


@functools.lru_cache(maxsize=None)
def liquid_small():
    return simulate("dendrite", 0.3, 0.1, FIXED, **SMALL)


def test_no_load_and_no_eigenstrain_reproduce_the_liquid_model_to_round_off():
    """sigma = 0 exactly (every elasticity solve has a zero right-hand side), so the Butler-Volmer shift is 0 and the
    solid model is the liquid one: bit for bit with XLA's default CPU emitters, to round-off with the legacy ones
    the suite compiles with (the two programs fuse differently)."""
    _, liquid_scalars, liquid = liquid_small()
    _, scalars, solid = simulate("dendrite_solid", 0.3, 0.1, FIXED, deposition_eigenstrain=0.0, stack_pressure=0.0,
                                 **SMALL)
    for name in ("xi", "c", "phi"):  # 1e-9: the solves' stopping tests carry the programs' different rounding
        # forward (measured 1.7e-10 of xi after the spectral inverse DCT became a stack and reshape, 30cac44)
        assert_round_off(solid["state"][name], liquid["state"][name], name, tolerance=1e-9)
    for name, values in liquid_scalars.items():  # measured: the cell current 8e-9 relative, c_min 1e-10 mol/m^3
        if "iterations" not in name:  # the solvers' counts may shift by one with the round-off
            np.testing.assert_allclose(scalars[name], values, rtol=1e-7, atol=1e-9, err_msg=name)
    assert scalars["dendrite_height"][-1] > scalars["dendrite_height"][0] + 2.0  # it grew
    mechanics = solid["state"]
    assert not np.any(mechanics["pressure"]) and not np.any(mechanics["von_mises"])
    assert not np.any(mechanics["plastic_strain"])
    assert np.all(scalars["mechanics_iterations"] == 0)


# a slow flat front: deep cathodic (-0.3 V: the anodic term is e^{-f 0.3} = 1e-5 of the cathodic), slow
# (i0 = 0.03 mA/cm^2, far from the Allen-Cahn rate), uniform c (fast diffusion), a fine grid along x
# (8 cells per interface thickness: no lattice pinning of the slow front); 3D (isostatic) or a 2D strip
STRIP = {"electrode_position": 6.0, "temperature": 298.15, "voltage": -0.3, "exchange_current_density": 0.03,
         "migration": False, "diffusivity_electrolyte": 1e-6, "short_circuit_gap": 0.0}
STRIP_3D = {"size": [16.0, 0.5, 0.5], "shape": [128, 2, 2]}
STRIP_2D = {"size": [16.0, 0.5], "shape": [128, 2]}


FORMULATIONS = {"chen2015": {"formulation": "chen2015"},
                # the solid-electrolyte mode: a single-ion conductor (c fixed), the reaction-only interface
                "single_ion": {"formulation": "reaction", "electrolyte": "single_ion", "conductivity_electrolyte": 1e3}}


def front_velocity(name, formulation="chen2015", **extra):
    """Deposition rate of the flat strip front after the profile settles, and the last scalars and carry."""
    times, scalars, carry = simulate(name, 2.0, 0.25, {"dt": 0.05, "adaptive": False}, **STRIP,
                                     **FORMULATIONS[formulation], **extra)
    keep = times >= 0.5
    return np.polyfit(times[keep], scalars["deposited_charge"][keep], 1)[0], scalars, carry


@pytest.mark.parametrize("loading,formulation", [("isostatic", "chen2015"), ("uniaxial", "single_ion")])
def test_flat_front_under_uniform_pressure_deposits_slower_by_exp_minus_alpha_omega_p_over_rt(loading, formulation):
    """physics.md 4.5: a flat front under pressure p moves exp(-a Omega p / RT) = 0.769 times as fast as at
    p = 0 (100 MPa, a = 0.5, 298.15 K); the tip reports Omega p / F = 0.1347 mV per MPa (physics.md 7.11: 0.135).
    The front at p = 0 is the same model and program at ``stack_pressure: 0`` (a parameter): its stress is zero,
    so it is the liquid model's front (to round-off:
    :func:`test_no_load_and_no_eigenstrain_reproduce_the_liquid_model_to_round_off`).

    isostatic: homogeneous moduli, all-round pressure (3D), so sigma = -p I and the hydrostatic pressure is p.
    uniaxial: the stack pressure along x alone (lateral free; a 2D strip, plane strain), LLZO against Li
    yielding at 1 MPa: only the normal traction -sigma_xx = p is uniform across the front (the hydrostatic
    pressure of the interface cells is lower: measured down to 14 MPa in this strip's front, 93 MPa in a 3D one),
    so ``reaction_pressure: normal_traction`` gives the exact ratio. single_ion: the same in the solid-electrolyte
    mode (reaction formulation, c fixed): no concentration polarisation (c stays c_bulk), and the unloaded rate is
    Butler-Volmer's at eta = V within 0.2 % (measured 0.99975 of it)."""
    pressure = 100.0
    mechanics = {"deposition_eigenstrain": 0.0}
    if loading == "isostatic":
        mechanics.update(STRIP_3D, electrolyte_young_modulus=7.8, electrolyte_poisson_ratio=0.38, lateral="isostatic")
    else:
        mechanics.update(STRIP_2D, lateral="free", reaction_pressure="normal_traction")
    velocity, scalars, carry = front_velocity("dendrite_solid", formulation, stack_pressure=pressure, **mechanics)
    unloaded = front_velocity("dendrite_solid", formulation, stack_pressure=0.0, **mechanics)[0]
    state = carry["state"]
    expected = np.exp(-0.5 * OMEGA_LI * pressure * 1e6 / (GAS_CONSTANT * 298.15))
    ratio = velocity / unloaded
    print(f"{loading}: rate ratio {ratio:.6f}, exp(-a Omega p / RT) {expected:.6f} ({ratio / expected - 1:+.2e})")
    assert abs(ratio / expected - 1) < 5e-4, (ratio, expected)
    if formulation == "single_ion":
        assert np.all(state["c"] == 1.0)
        # p = 0 against Butler-Volmer itself: eta = V (the ohmic drop, i L / sigma, is 1e-6 V), c = c_ref, so the
        # plated charge per time is i0 [e^{-a f V} - e^{(1-a) f V}] (A/cm^2)
        f_v = FARADAY / (GAS_CONSTANT * 298.15) * STRIP["voltage"]
        kinetic = STRIP["exchange_current_density"] * 1e-3 * (np.exp(-0.5 * f_v) - np.exp(0.5 * f_v))
        print(f"unloaded rate / Butler-Volmer: {unloaded / kinetic:.5f}")
        assert abs(unloaded / kinetic - 1) < 2e-3, (unloaded, kinetic)  # measured 2.5e-4
    if loading == "isostatic":
        assert np.allclose(state["pressure"], pressure, rtol=1e-12)
    else:
        front = np.abs(state["xi"] - 0.5) < 0.45
        assert np.allclose(state["reaction_pressure"][front], pressure, rtol=1e-6)  # CG tolerance 1e-8
        print(f"lowest hydrostatic pressure in the front: {np.min(state['pressure'][front]):.2f} MPa")
        assert np.min(state["pressure"][front]) < 0.95 * pressure  # the hydrostatic measure differs here
    # the uniform stack pressure is the pressure at the tip (CG tolerance 1e-8), and the tip's overpotential per
    # MPa of applied pressure is physics.md 7.11's 0.135 mV/MPa (given to 3 digits)
    assert abs(scalars["tip_pressure"][-1] / pressure - 1) < 1e-6, scalars["tip_pressure"][-1]
    assert abs(scalars["tip_mechanical_overpotential"][-1] / pressure - 0.135) < 1e-3


def test_deposition_eigenstrain_compresses_the_metal_at_a_growing_tip():
    """Li deposited with a misfit eps0 = 0.01 in stiff LLZO is compressed; the pressure at the growing tip
    gives a positive mechanical overpotential. The stress-dependent rate still moves Li between the ions and
    the metal without loss: Li gained equals Li that entered through the far wall, to round-off."""
    _, scalars, carry = simulate("dendrite_solid", 0.3, 0.1, FIXED, deposition_eigenstrain=0.01, stack_pressure=0.0,
                                 **SMALL)
    assert np.all(scalars["tip_pressure"][1:] > 5.0), scalars["tip_pressure"]  # MPa
    assert np.all(scalars["tip_mechanical_overpotential"][1:] > 0.5)  # mV
    balance = scalars["total_li"] - scalars["total_li"][0] - scalars["li_inflow"]
    assert np.max(np.abs(balance)) < 1e-12 * scalars["total_li"][0], balance
    assert scalars["li_inflow"][-1] > 0
    assert scalars["interface_pressure"][-1] > 1.0 and scalars["metal_pressure_max"][-1] > 10.0
    state = carry["state"]
    deposit = interpolation(state["xi"]) - state["eigenstrain_reference"] > 0.5
    assert np.mean(state["pressure"][deposit]) > 0  # the new metal is under compression
    assert scalars["mechanics_iterations"][-1] > 0 and scalars["mechanics_residual"][-1] < 1e-7


def test_metal_yields_at_its_yield_stress_and_the_electrolyte_stays_elastic():
    """A Li nucleus on a Li layer in LLZO under 20 MPa of stack pressure: the stress in the bulk metal is
    held at the 1 MPa yield stress (the initial plastic equilibrium, then one return per step with slow
    deposition), while the electrolyte carries several times that."""
    _, scalars, carry = simulate("dendrite_solid", 0.2, 0.1, FIXED, **{**SMALL, "noise_amplitude": 0.0},
                                 voltage=-0.02, deposition_eigenstrain=0.0, stack_pressure=20.0)
    state = carry["state"]
    h = interpolation(state["xi"])
    bulk_metal = h > 0.999
    assert np.max(state["von_mises"][bulk_metal]) < 1.02, np.max(state["von_mises"][bulk_metal])  # MPa
    assert np.max(state["equivalent_plastic_strain"][bulk_metal]) > 1e-4  # it flowed
    assert np.max(state["von_mises"][h < 1e-3]) > 5.0
    assert scalars["yield_overshoot"][-1] < 0.1 and np.isclose(scalars["metal_pressure_max"][0], 20.0, rtol=0.3)


@pytest.mark.parametrize("override,fragments", [
    ({"electrolyte_young_modulus": -150.0}, ["scenario.electrolyte_young_modulus", "-150.0", "> 0.0"]),
    ({"metal_poisson_ratio": 0.5}, ["scenario.metal_poisson_ratio", "0.5", "-1 < nu < 0.5"]),
    ({"electrolyte_poisson_ratio": -1.2}, ["scenario.electrolyte_poisson_ratio", "-1 < nu < 0.5"]),
    ({"metal_yield_stress": 0.0}, ["scenario.metal_yield_stress", "> 0.0"]),
    ({"deposition_eigenstrain": 0.3}, ["scenario.deposition_eigenstrain", "<= 0.1"]),
    ({"stack_pressure": -5.0}, ["scenario.stack_pressure", ">= 0.0"]),
    ({"lateral": "sideways"}, ["scenario.lateral", "'free', 'clamped', 'isostatic'"]),
    ({"li_molar_volume": 0.0}, ["scenario.li_molar_volume", "> 0.0"]),
    ({"voltage": 0.1}, ["scenario.voltage", "negative"]),  # the dendrite checks still apply
])
def test_invalid_inputs_rejected_with_clear_messages(override, fragments):
    with pytest.raises(ConfigError) as error:
        validate_run({"scenario": {"name": "dendrite_solid", **override}, "solver": SOLVER, "output": {}})
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


def test_mechanics_fields_carry_units_and_a_bad_value_stops_the_command_line_before_any_compute(tmp_path):
    """The mechanics fields and scalars are declared with their units (the writer puts them on every dataset,
    tests/test_io.py; the scenario's files are written by the batch test of tests/test_model_layer.py);
    ``python run.py scenario=dendrite_solid`` with a bad value stops before any compute with the key, the value
    and the allowed range, and writes nothing."""
    from phasefield.runner import build

    simulation = build(validate_run({"scenario": {"name": "dendrite_solid", **SMALL}, "solver": FIXED,
                                     "output": {}}))
    assert simulation.field_info["pressure"].units == "MPa" and simulation.field_info["von_mises"].units == "MPa"
    assert simulation.field_info["plastic_strain"].units == "1"
    assert simulation.scalar_info["tip_mechanical_overpotential"].units == "mV"
    assert simulation.scalar_info["metal_pressure_max"].units == "MPa"
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(root / "run.py"), "scenario=dendrite_solid"]
    bad = subprocess.run(command + ["scenario.metal_poisson_ratio=0.6", f"hydra.run.dir={tmp_path / 'bad'}"],
                         cwd=root, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "scenario.metal_poisson_ratio = 0.6" in bad.stderr and "-1 < nu < 0.5" in bad.stderr
    assert not (tmp_path / "bad" / "run.h5").exists()


def test_tip_pressure_is_read_at_the_tip_of_the_metal_joined_to_the_electrode():
    """Reaction formulation without leakage, a flat front at x = 8 um and a Li disc (2 um radius) cut off
    from it at x = 16 um: with a pressure field p = x (MPa, linear, so interpolation is exact) the tip
    pressure is the front's position, 8, not the disc's far side, 18 (dead Li does not plate, so its
    pressure does not act on any reaction)."""
    from phasefield.runner import build, device_parameters

    scenario = {"name": "dendrite_solid", "formulation": "reaction", "size": [24.0, 8.0], "shape": [48, 16],
                "electrode_position": 8.0, "interface_thickness": 2.0, "anisotropy_strength": 0.0,
                "noise_amplitude": 0.0, "nuclei": [], "t_end": 1.0}
    config = validate_run({"scenario": scenario, "solver": FIXED, "output": {}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")
    fields = simulation.initial_fields()
    x, y = simulation.grid.coordinates()
    disc = 0.5 * (1.0 - np.tanh(np.hypot(x - 16.0, y - 4.0) - 2.0))
    fields["xi"] = np.maximum(fields["xi"], np.broadcast_to(disc, simulation.grid.shape))
    carry = simulation.stepper.init(params, fields)
    carry["state"]["reaction_pressure"] = np.broadcast_to(x, simulation.grid.shape) + 0.0
    tip = float(jax.jit(simulation.diagnostics)(params, carry)["tip_pressure"])  # one program, not ~120 op by op
    assert abs(tip - 8.0) < 0.05, tip


def test_float32_is_refused_with_its_measured_reason():
    """dendrite_solid refuses float32 before any compute, naming the key and the measured reason (a float32 port's
    reaction pressure was 0.41 of its range off float64 after 20 steps)."""
    from phasefield.runner import build

    config = validate_run({"scenario": {"name": "dendrite_solid", "formulation": "reaction", "shape": [32, 32],
                                        "size": [16.0, 16.0], "interface_thickness": 2.0, "electrode_position": 4.0,
                                        "nucleus_radius": 2.0}, "solver": {"precision": "float32"}, "output": {}})
    with pytest.raises(ConfigError) as error:
        build(config)
    assert error.value.key == "solver.precision" and "reaction pressure" in error.value.allowed
