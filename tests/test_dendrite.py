"""The chen2015 formulation (the literal single-potential model, physics.md 3.1): Nernst equilibrium,
Butler-Volmer front kinetics, conservation of Li and charge, anisotropy, reproducibility, 3D, and
input checks (physics.md 3.6). The reaction formulation (the default): test_electrochemistry.py."""
import numpy as np
import pytest

from phasefield.config import ConfigError, validate_run
from phasefield.physics.electrochemistry import FARADAY, GAS_CONSTANT
from scenario_runs import assert_round_off, run_scenario

SOLVER = {"dt": 0.02, "adaptive": True, "dt_min": 1e-5, "dt_max": 0.1, "target_change": 0.02}


def simulate(t_end, record=1.0, solver=None, **scenario):
    """Run the dendrite model (chen2015 unless given); returns (times, scalars dict of arrays, final carry)."""
    times, scalars, carry, _ = run_scenario("dendrite", t_end, record, {**SOLVER, **(solver or {})},
                                            **{"formulation": "chen2015", **scenario})
    return times, scalars, carry


# A planar front in a thin strip: x resolved at 0.25 um (4 cells across the 10-90 % width); uniform
# c (fast diffusion, no migration: with it, Li+ would gather near the electrode as exp(-f phi)).
PLANAR = {"size": [30.0, 0.5], "shape": [120, 2], "electrode_position": 10.0, "temperature": 298.15,
          "conductivity_metal": 1e7, "migration": False, "diffusivity_electrolyte": 1e-6}


def front_velocity(times, scalars, start):
    """um/s from the deposited charge (a flat front: deposited thickness = charge / (n F c_s))."""
    thickness = scalars["deposited_charge"] * 1e4 / (FARADAY * 7.64e4) * 1e6  # um
    keep = times >= start
    return np.polyfit(times[keep], thickness[keep], 1)[0]


def test_nernst_equilibrium_planar_front_is_still():
    """With c = 0.1 c_ref everywhere the front stops at phi = (RT/F) ln 0.1 = -59.2 mV (Chen 2015's check)."""
    f = FARADAY / (GAS_CONSTANT * 298.15)
    v_eq = np.log(0.1) / f
    common = dict(PLANAR, bulk_concentration=100.0)
    velocities = []
    offsets = np.array([-0.01, 0.0, 0.01])
    for offset in offsets:
        times, scalars, _ = simulate(3.0, 0.5, voltage=v_eq + offset, **common)
        velocities.append(front_velocity(times, scalars, 1.0))
    velocities = np.array(velocities)
    assert velocities[0] > 0 > velocities[2]  # deposits below, dissolves above the Nernst potential
    zero_crossing = np.interp(0.0, velocities[::-1], offsets[::-1])
    assert abs(zero_crossing) < 1e-3, f"front stands still {zero_crossing * 1e3:.2f} mV from the Nernst potential"
    assert abs(velocities[1]) < 0.05 * velocities[0]


def test_kinetics_limited_front_velocity_and_tafel_slope():
    """v = (3/k) L_eta [c e^{-a f eta} - e^{(1-a) f eta}] within 5 %; slope 2.303 RT/(a F) = 118 mV/decade.

    The adaptive steps of the Nernst test (its compiled chunk: the same strip and control) carry the reaction
    in the implicit transport solve: measured v / formula 1.023, 1.021, 1.014 and the slope within 1e-5
    (with a fixed dt of 0.01 s, its own compile: 0.988-0.990 and 0.7 %)."""
    f = FARADAY / (GAS_CONSTANT * 298.15)
    i0 = 30.0  # A/m^2 (3 mA/cm^2)
    reaction_rate = 2 * i0 / (3 * FARADAY * 7.64e4 * 1e-6)
    voltages = np.array([-0.12, -0.16, -0.2])  # L_eta |B| << L_sigma W (the formula's assumption)
    measured, predicted = [], []
    for voltage in voltages:
        times, scalars, carry = simulate(4.0, 0.5, voltage=voltage, **PLANAR)
        measured.append(front_velocity(times, scalars, 1.0))
        xi, c, phi = (np.asarray(carry["state"][k])[:, 0] for k in ("xi", "c", "phi"))
        front = np.argmin(np.abs(xi - 0.5))
        eta, conc = phi[front], c[front + 4]  # c just ahead of the front (inside the metal it is ~0)
        predicted.append(1.5 * reaction_rate * (conc * np.exp(-0.5 * f * eta) - np.exp(0.5 * f * eta)))
    measured, predicted = np.array(measured), np.array(predicted)
    assert np.all(np.abs(measured / predicted - 1) < 0.05), measured / predicted
    slope = 1e3 / np.polyfit(voltages, np.log10(measured), 1)[0]  # mV per decade
    assert abs(abs(slope) / (2.303 / (0.5 * f) * 1e3) - 1) < 0.05, slope


def test_galvanostatic_control_holds_the_current_and_tafel_shift():
    """control=current: the deposit grows at exactly i/(n F c_s), and a tenfold current moves the
    electrode potential by the Tafel slope 2.303 RT/(a F) = 118 mV (kinetics-limited strip)."""
    potentials = []
    for current in (10.0, 100.0):
        times, scalars, _ = simulate(2.0, 0.5, control="current", current_density=current, voltage=-0.1, **PLANAR)
        assert np.allclose(scalars["current_density"][1:], current, rtol=1e-5), scalars["current_density"]
        assert abs(scalars["deposited_charge"][-1] / (current * 1e-3 * times[-1]) - 1) < 1e-5
        potentials.append(scalars["electrode_potential"][-1])
    f = FARADAY / (GAS_CONSTANT * 298.15)
    shift = potentials[0] - potentials[1]
    assert abs(shift / (2.303 / (0.5 * f)) - 1) < 0.05, shift


SMALL = {"formulation": "chen2015", "size": [24.0, 16.0], "shape": [24, 16], "electrode_position": 5.0,
         "nuclei": [[8.0, 2.5]],
         "conductivity_metal": 1e6, "exchange_current_density": 1.106, "temperature": 300.0,
         "noise_amplitude": 0.01, "anisotropy_strength": 0.04}


def test_total_li_conserved_to_round_off_in_a_closed_cell():
    times, scalars, _ = simulate(2.0, 0.5, electrolyte_boundary="closed", **SMALL)
    assert scalars["dendrite_height"][-1] > scalars["dendrite_height"][0]  # something happened
    drift = np.abs(scalars["total_li"] - scalars["total_li"][0]) / scalars["total_li"][0]
    assert np.max(drift) < 1e-12, drift


def test_li_balance_with_a_reservoir_and_positive_concentration():
    """Li gained equals Li that entered through the far wall, to round-off; c never negative."""
    times, scalars, _ = simulate(2.0, 0.5, **SMALL)
    balance = scalars["total_li"] - scalars["total_li"][0] - scalars["li_inflow"]
    assert np.max(np.abs(balance)) < 1e-12 * scalars["total_li"][0]
    assert scalars["li_inflow"][-1] > 0
    assert np.min(scalars["c_min"]) >= -1e-9


def test_deposited_charge_equals_integrated_current():
    """The wall currents of the potential equation, integrated, carry the deposit (Gauss), within 1 %.

    The potential sees the previous step's deposition (lagged source), so the charge passed by
    the end matches the deposit one step earlier: records every (fixed) step."""
    dt = 0.01
    times, scalars, _ = simulate(0.3, dt, solver={"dt": dt, "adaptive": False}, **SMALL)
    deposited, passed = scalars["deposited_charge"][-2], scalars["passed_charge"][-1]
    assert deposited > 0.1
    assert abs(passed / deposited - 1) < 0.01, (passed, deposited)


def test_short_circuit_stops_the_run(tmp_path):
    """Metal within short_circuit_gap of the far wall ends the run early with a last frame and the reason."""
    import h5py

    from phasefield.runner import run

    config = {"scenario": {"name": "dendrite", "t_end": 5.0, **SMALL}, "solver": SOLVER,
              "output": {"interval": 1.0, "scalar_interval": 0.1, "plots": False}}
    path = run(config, tmp_path)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "finished"
        assert "short circuit" in f.attrs["stop_reason"]
        t_last = f["scalars/time"][-1]
        assert 0 < t_last < 5.0
        xi = f["fields/xi"][-1]  # the last frame is the stop state
        assert np.max(xi[14:]) > 0.5  # within 10 um of the far wall (cell centres from 14.5 um)
        assert f["time"][-1] == t_last


def test_anisotropy_speeds_growth_along_the_preferred_directions():
    """A 4-fold nucleus grows farther along x when a preferred direction is x (theta0 = 0) than when
    the preferred directions are the diagonals (theta0 = 45 deg); isotropic lies between. To 1.5 s (the early
    growth, where the anisotropy shows most): measured heights 0.44 / 0.23 / 0.12 um, each 1.9x the next (to 3 s
    they were 1.28 / 1.05 / 0.95 um, 1.2x and 1.1x, at twice the steps)."""
    common = {"size": [40.0, 40.0], "shape": [80, 80], "electrode_position": 4.0, "nuclei": [[20.0, 4.0]],
              "conductivity_metal": 1e6, "exchange_current_density": 1.106, "temperature": 300.0,
              "short_circuit_gap": 0.0, "voltage": -0.2}
    heights = {}
    for name, strength, angle in (("axis", 0.05, 0.0), ("isotropic", 0.0, 0.0), ("diagonal", 0.05, 45.0)):
        times, scalars, _ = simulate(1.5, 0.75, anisotropy_strength=strength, anisotropy_angle=angle, **common)
        heights[name] = scalars["dendrite_height"][-1] - scalars["dendrite_height"][0]
    assert heights["axis"] > heights["isotropic"] > heights["diagonal"] > 0, heights


def test_same_seed_same_result_other_seed_differs():
    run = lambda seed: np.asarray(simulate(1.0, 0.5, seed=seed, **SMALL)[2]["state"]["xi"])  # noqa: E731
    first, again, other = run(3), run(3), run(4)
    assert np.array_equal(first, again)
    assert np.max(np.abs(first - other)) > 1e-6


def test_three_dimensional_run_grows_and_conserves():
    times, scalars, carry = simulate(
        1.0, 0.5, size=[12.0, 8.0, 8.0], shape=[12, 8, 8], electrode_position=3.0,
        nuclei=[[4.0, 4.0, 2.0]], conductivity_metal=1e6, exchange_current_density=1.106,
        temperature=300.0, electrolyte_boundary="closed", short_circuit_gap=2.0)
    assert np.asarray(carry["state"]["xi"]).shape == (12, 8, 8)
    assert scalars["dendrite_height"][-1] > scalars["dendrite_height"][0]
    assert np.max(np.abs(scalars["total_li"] / scalars["total_li"][0] - 1)) < 1e-12


@pytest.mark.parametrize("override,fragments", [
    ({"voltage": 0.1}, ["scenario.voltage", "0.1", "negative"]),
    ({"bulk_concentration": 0.0}, ["scenario.bulk_concentration", "0 < c < site_density"]),
    ({"bulk_concentration": 9e4}, ["scenario.bulk_concentration", "site_density"]),
    ({"anisotropy_strength": 0.07}, ["scenario.anisotropy_strength", "1/(m^2 - 1) = 0.06667"]),
    ({"temperature": -5.0}, ["scenario.temperature", ">= 200"]),
    ({"nuclei": [[5.0]]}, ["scenario.nuclei[0]", "radius"]),
])
def test_invalid_inputs_rejected_with_clear_messages(override, fragments):
    with pytest.raises(ConfigError) as error:
        validate_run({"scenario": {"name": "dendrite", "formulation": "chen2015", **override}, "solver": SOLVER,
                      "output": {}})
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


def test_default_job_is_the_dendrite_scenario_and_writes_scales(tmp_path):
    """``python run.py`` runs scenario dendrite; run.h5 carries physical units and the scales."""
    import subprocess
    import sys
    from pathlib import Path

    import h5py

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "run.py"), "scenario.size=[24,8]", "scenario.shape=[48,16]",
                             "scenario.short_circuit_gap=4", "scenario.t_end=1", "output.interval=0.5",
                             "output.scalar_interval=0.5", "output.plots=false", f"hydra.run.dir={tmp_path}"],
                            cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f.attrs["scenario"] == "dendrite" and f.attrs["finished"]
        assert f.attrs["scale_length"] == 1e-6 and f.attrs["scale_length_units"] == "m"
        assert f.attrs["scale_concentration"] == 100.0
        assert f["fields/xi"].shape == (3, 48, 16) and f["fields/c"].attrs["units"] == "mol/m^3"
        assert np.isclose(f["grid/x"][-1], 24e-6 * (1 - 0.5 / 48))
        assert f["scalars/potential_iterations"].shape == (3,)


def test_coupling_conductivity_replaces_sigma_of_the_potential_equation():
    """A Coupling that doubles sigma(xi) runs the model of doubled conductivities (scaling by 2 is exact: bit for bit
    with XLA's default CPU emitters, to round-off with the legacy ones of the suite, which fuse the two programs
    differently); the plain model differs."""
    import jax

    from phasefield.models import dendrite
    from phasefield.runner import device_parameters

    def run(coupling=None, **override):
        config = validate_run({"scenario": {"name": "dendrite", **SMALL, **override}, "solver": SOLVER, "output": {}})
        simulation = dendrite.build(config.scenario, config.solver, coupling)
        params = device_parameters(simulation.parameters, "float64")
        carry = simulation.stepper.init(params, simulation.initial_fields())
        step = jax.jit(simulation.stepper.step)
        for _ in range(4):
            carry = step(params, carry, 0.01)
        return carry["state"]

    doubling = dendrite.Coupling(
        init=lambda params, xi: {},
        update=lambda params, carry, xi, sigma: ({}, dendrite.CouplingEffect(conductivity=2.0 * sigma)),
        fields=lambda params, carry: {}, field_info={}, diagnostics=lambda params, carry: {}, scalar_info={})
    coupled = run(doubling)
    doubled = run(conductivity_metal=2e6, conductivity_electrolyte=2 * 1.19)
    for name in ("c", "phi"):
        assert_round_off(coupled[name], doubled[name], name)
    # xi through switches of the interface tails that the rounding can flip (measured 2.6e-8; 4e-7 with the
    # anisotropy's former cut-off at |grad xi|^2 = 1e-12); the plain model's xi differs by 4.3e-7
    assert_round_off(coupled["xi"], doubled["xi"], "xi", tolerance=1e-7)
    plain = run()["phi"]
    assert np.max(np.abs(plain - coupled["phi"])) > 1e-8 * np.max(np.abs(coupled["phi"]))  # measured 6e-7
