"""The grand_potential formulation (Hong & Viswanathan 2018, physics.md 3.2): its material functions against
their closed forms, the Li transport step against the discrete diffusion eigenmode, Li conservation and the
charge of a growing front, and input checks. Two compiled steppers (static options: the far wall and the
migration) serve every test; the numbers of a test are parameters of the same compiled step."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.config import ConfigError, validate_run
from phasefield.models.dendrite import initial_condition
from phasefield.physics.electrochemistry import FARADAY, GAS_CONSTANT, interpolation
from phasefield.physics.grand_potential import (
    NEWTON_ITERATIONS,
    SiteEnergies,
    grand_potential_density,
    li_content,
    site_fraction,
    susceptibility,
)
from phasefield.runner import build, checkpoint_part, device_parameters, restore_carry

SOLVER = {"dt": 0.01, "adaptive": False, "dt_min": 1e-5, "dt_max": 0.1, "target_change": 0.02}
EPS_L, EPS_S, D_V = 2.631, -13.8, 5.5  # the MOOSE input's el, es, dv
SITES = SiteEnergies(EPS_L, EPS_S, D_V)
# A strip in Hong's constants (scenario dendrite_hong2018_gp), 0.5 um cells, a flat front at x = 8 um
STRIP = {"name": "dendrite", "formulation": "grand_potential", "size": [24.0, 1.0], "shape": [48, 2],
         "electrode_position": 8.0, "short_circuit_gap": 4.0, "temperature": 300.0, "voltage": -0.45,
         "interface_energy": 0.49887, "interface_thickness": 1.0, "interface_mobility": 2.5057e-6,
         "exchange_current_density": 1.110, "site_density": 7.6696e4, "diffusivity_electrolyte": 3.179e-10,
         "conductivity_metal": 1e6, "conductivity_electrolyte": 1.19}


def compiled(**scenario):
    """The built strip (validated config), its jitted step and diagnostics."""
    config = validate_run({"scenario": {**STRIP, **scenario}, "solver": SOLVER, "output": {}})
    simulation = build(config)
    return simulation, jax.jit(simulation.stepper.step), jax.jit(simulation.diagnostics)


def start(simulation, fields=None, **changes):
    """Parameters with ``changes`` (leaves only: the compiled step serves them) and the initial carry."""
    concrete = dataclasses.replace(simulation.parameters, **changes)
    params = device_parameters(concrete, "float64")
    return params, simulation.stepper.init(params, fields or initial_condition(simulation.grid, concrete))


def advance(step, params, carry, steps, dt=0.01):
    for _ in range(steps):
        carry = step(params, carry, dt)
    return carry


@pytest.fixture(scope="module")
def reservoir():
    return compiled()


@pytest.fixture(scope="module")
def closed():
    return compiled(electrolyte_boundary="closed", migration=False)


def test_site_fractions_are_the_grand_potential_derivatives_and_bulk_is_one_over_14_89():
    """c_l(0) = 1/(1 + e^2.631) = 1/14.89 (Hong's c0); c = -d omega/dw; chi = dn/dw; c_s ~ 1 in the metal."""
    assert abs(float(site_fraction(0.0, EPS_L)) - 1.0 / (1.0 + np.exp(EPS_L))) < 1e-15
    assert abs(float(site_fraction(0.0, EPS_L)) * 14.89 - 1.0) < 2e-4
    chi_metal = D_V * np.exp(EPS_S) / (1.0 + np.exp(EPS_S)) ** 2  # c_s (1 - c_s): ~5.6e-6, no cancellation
    assert abs(float(susceptibility(0.0, 1.0, SITES)) / chi_metal - 1.0) < 1e-12
    w = jnp.linspace(-30.0, 10.0, 41)
    for energy, offset in ((EPS_L, 0.0695), (EPS_S, 13.8)):
        derivative = jax.vmap(jax.grad(lambda v: grand_potential_density(v, energy, offset)))(w)
        assert np.allclose(-derivative, site_fraction(w, energy), rtol=1e-13, atol=1e-300)
    w = np.asarray(w)
    logistic_slope = lambda x: np.exp(-x) / (1.0 + np.exp(-x)) ** 2  # noqa: E731
    for h in (0.0, 0.3, 0.999, 1.0):
        chi = (1 - h) * logistic_slope(w - EPS_L) + D_V * h * logistic_slope(w - EPS_S)
        assert np.allclose(susceptibility(w, h, SITES), chi, rtol=1e-12, atol=1e-300)
        content = (1 - h) / (1 + np.exp(-(w - EPS_L))) + D_V * h / (1 + np.exp(-(w - EPS_S)))
        assert np.allclose(li_content(w, h, SITES), content, rtol=1e-13, atol=1e-300)


def test_bulk_electrolyte_is_steady_at_the_bulk_chemical_potential(closed):
    """No metal, no migration: w at w_b = eps_l + ln(c_b / ((1 + e^eps_l) c_ref - c_b)) (the initial field of
    c_b = 500 mol/m^3) stays there over 40 steps, and the stored c is c_b, to round-off."""
    simulation, step, _ = closed
    bulk = 500.0
    w_bulk = EPS_L + np.log(bulk / ((1.0 + np.exp(EPS_L)) * 1000.0 - bulk))
    concrete = dataclasses.replace(simulation.parameters, bulk_concentration=bulk)
    initial = initial_condition(simulation.grid, concrete)
    assert np.allclose(initial["w"], w_bulk, rtol=0, atol=1e-14)
    fields = {"xi": np.zeros(simulation.grid.shape), "w": initial["w"], "phi": np.zeros(simulation.grid.shape)}
    params, carry = start(simulation, fields, bulk_concentration=bulk)
    carry = advance(step, params, carry, 40)
    assert np.max(np.abs(np.asarray(carry["state"]["w"]) - w_bulk)) < 1e-12
    assert np.allclose(simulation.stepper.fields(params, carry)["c"], bulk, rtol=1e-12, atol=0)


def test_reaction_term_is_hongs_butler_volmer_bracket(reservoir):
    """With the Allen-Cahn mobility ~0, one step moves eta by dt R / (1 + dt max(-R', 0)) (linearly implicit in
    its damping part), R = L_s h'(eta) [14.89 c e^{-a f phi} - e^{a f phi}], c = (1 - h) c_l(w),
    14.89 = 1 + e^eps_l, phi the step's potential, L_s = 2 i0 / (3 F c_s delta) = 1e-3 /s."""
    simulation, step, _ = reservoir
    dt = 0.01
    params, carry = start(simulation, interface_mobility=1e-20)
    new = step(params, carry, dt)
    xi, w = np.asarray(carry["state"]["xi"]), np.asarray(carry["state"]["w"])
    phi = np.asarray(new["state"]["phi"])
    f = FARADAY / (GAS_CONSTANT * 300.0)
    reaction_rate = 2 * 1.110e1 / (3 * FARADAY * 7.6696e4 * 1e-6)
    assert abs(reaction_rate / 1e-3 - 1) < 1e-3  # Hong's Ls
    h = xi**3 * (6 * xi**2 - 15 * xi + 10)
    slope, curvature = 30 * xi**2 * (1 - xi) ** 2, 60 * xi * (1 - xi) * (1 - 2 * xi)  # h', h''
    cathodic = (1 + np.exp(EPS_L)) / (1 + np.exp(-(w - EPS_L))) * np.exp(-0.5 * f * phi)
    anodic = np.exp(0.5 * f * phi)
    rate = reaction_rate * slope * ((1 - h) * cathodic - anodic)
    derivative = reaction_rate * (curvature * ((1 - h) * cathodic - anodic) - slope**2 * cathodic)
    moved = (np.asarray(new["state"]["xi"]) - xi) / dt
    assert np.max(np.abs(rate)) > 1.0  # 1/s: the front deposits
    assert np.max(dt * np.maximum(-derivative, 0.0)) > 0.01  # the implicit factor matters
    expected = rate / (1 + dt * np.maximum(-derivative, 0.0))
    assert np.allclose(moved, expected, rtol=1e-6, atol=1e-9 * np.max(np.abs(rate)))


def test_pure_diffusion_mode_decays_at_the_discrete_laplacian_rate(closed):
    """eta = 0, no migration, closed walls: w = w_b + a cos(pi x / L) decays per backward-Euler step by
    1 / (1 + dt M0 c_l / chi |lambda|), lambda = -(4/h^2) sin^2(pi h / 2L), c_l / chi = 1 / (1 - c_l)."""
    simulation, step, _ = closed
    grid = simulation.grid
    x = (np.arange(grid.shape[0]) + 0.5) * grid.spacing[0]
    mode = np.cos(np.pi * x / grid.lengths[0])[:, None] * np.ones(grid.shape)
    amplitude, dt, steps = 1e-4, 0.01, 20
    fields = {"xi": np.zeros(grid.shape), "w": amplitude * mode, "phi": np.zeros(grid.shape)}
    params, carry = start(simulation, fields)
    carry = advance(step, params, carry, steps, dt)
    measured = np.sum(np.asarray(carry["state"]["w"]) * mode) / np.sum(mode * mode)
    c_l = 1.0 / (1.0 + np.exp(EPS_L))
    diffusivity = 317.9 / (1.0 - c_l)  # um^2/s
    eigenvalue = 4.0 / grid.spacing[0] ** 2 * np.sin(np.pi * grid.spacing[0] / (2.0 * grid.lengths[0])) ** 2
    predicted = amplitude * (1.0 + dt * diffusivity * eigenvalue) ** -steps
    assert predicted < 0.5 * amplitude  # the mode has decayed substantially
    assert abs(measured / predicted - 1.0) < 1e-3, (measured, predicted)


def test_closed_cell_conserves_li_while_the_front_grows(closed):
    """Closed cell: (1 - h) c_l + d_v h c_s summed is constant to the Newton tolerance (1e-12 of it) while the
    front deposits; the metal's Li gained equals the electrolyte's lost."""
    simulation, step, diagnostics = closed
    params, carry = start(simulation, voltage=-0.45)
    first = diagnostics(params, carry)
    start_state = carry["state"]
    carry = advance(step, params, carry, 60)
    last = diagnostics(params, carry)
    assert last["deposited_charge"] > 0.05  # C/cm^2: about 1 um of Li
    assert abs(last["total_li"] / first["total_li"] - 1.0) < 1e-12
    assert abs(last["li_drift"]) < 1e-12 * first["total_li"]

    def phases(state):
        h = interpolation(state["xi"])
        return (np.sum((1 - h) * site_fraction(state["w"], EPS_L)), np.sum(D_V * h * site_fraction(state["w"], EPS_S)))

    (liquid0, metal0), (liquid1, metal1) = phases(start_state), phases(carry["state"])
    assert metal1 - metal0 > 0.1
    assert abs((metal1 - metal0) + (liquid1 - liquid0)) < 1e-11 * (metal0 + liquid0)


@pytest.mark.parametrize("voltage", [-0.45, -0.2])
def test_reservoir_balance_and_the_potential_carries_the_deposit(reservoir, voltage):
    """Far wall held at the bulk: total Li - initial = Li that entered through it (li_drift ~ 0, 1e-12 of the total);
    the potential equation's wall current, integrated, carries the charge of its source ft2 deta/dt, n F c_s
    int (eta - eta_0) dV / A (Gauss; the source is lagged one step: the charge passed by step N + 1 is that of
    the growth up to step N)."""
    simulation, step, diagnostics = reservoir
    params, carry = start(simulation, voltage=voltage)
    first, xi0 = diagnostics(params, carry), np.asarray(carry["state"]["xi"])
    newton = []
    for _ in range(60):
        carry = step(params, carry, 0.01)
        newton.append(int(carry["cache"]["transport_iterations"]))
    assert max(newton) < NEWTON_ITERATIONS  # every step's Li balance converged (-0.2 V: metal cells that the
    # profile relaxation shrinks overflow with Li; w must rise ~100 there, beyond a plain Newton iteration)
    grown = np.sum(np.asarray(carry["state"]["xi"]) - xi0) * simulation.grid.spacing[0] / 2  # um (2 rows)
    carry = step(params, carry, 0.01)
    last = diagnostics(params, carry)
    assert last["li_inflow"] > 0
    assert abs(last["li_drift"]) < 1e-12 * first["total_li"]
    assert abs(last["total_li"] - first["total_li"] - last["li_inflow"]) < 1e-12 * first["total_li"]
    charge = FARADAY * 7.6696e4 * grown * 1e-6 / 1e4  # C/cm^2: ft2 int deta/dt (n = 1)
    assert grown > (1.0 if voltage < -0.4 else 0.003)
    assert abs(last["passed_charge"] / charge - 1.0) < 1e-4, (last["passed_charge"], charge)  # CG tolerance


def test_checkpoint_restores_the_carry(reservoir):
    """A resume rebuilds the carry's shapes by tracing the initial fields (host numpy there) and takes the
    checkpoint's state and history: the same step follows."""
    simulation, step, _ = reservoir
    params, carry = start(simulation)
    carry = advance(step, params, carry, 3)
    restored = restore_carry(simulation, params, checkpoint_part(carry))
    for name, value in carry["state"].items():
        assert np.array_equal(restored["state"][name], value), name
    assert np.array_equal(step(params, restored, 0.01)["state"]["w"], step(params, carry, 0.01)["state"]["w"])


@pytest.mark.parametrize("override,solver,fragments", [
    ({"control": "current"}, {}, ["scenario.control", "'voltage' for the grand_potential"]),
    ({"bulk_concentration": 2e4}, {}, ["scenario.bulk_concentration", "14887.7 mol/m^3"]),
    ({"metal_site_ratio": 0.0}, {}, ["scenario.metal_site_ratio", "> 0"]),
    ({"metal_site_energy": 1.0}, {}, ["scenario.metal_site_energy", "<= 0"]),
    ({"formulation": "grand"}, {}, ["scenario.formulation", "'grand_potential'"]),
    ({}, {"precision": "float32"}, ["solver.precision", "grand_potential"]),
])
def test_invalid_grand_potential_inputs_are_refused_before_compute(override, solver, fragments):
    with pytest.raises(ConfigError) as error:
        build(validate_run({"scenario": {**STRIP, **override}, "solver": {**SOLVER, **solver}, "output": {}}))
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)


def test_dendrite_solid_refuses_the_grand_potential_formulation():
    config = validate_run({"scenario": {**STRIP, "name": "dendrite_solid"}, "solver": SOLVER, "output": {}})
    with pytest.raises(ConfigError, match="scenario.formulation"):
        build(config)

