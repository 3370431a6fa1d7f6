"""The electrolyte as a resistor network (physics.electrolyte_network) against series resistances, the conformal map of
a comb of thin electrodes, and Butler-Volmer roots found here with scipy."""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from phasefield.grid import Grid
from phasefield.physics import electrolyte_network as en
from phasefield.physics import filament as fl

F_RT = 96485.33212 / (8.314462618 * 298.15)


def no_cells(grid):
    return jnp.zeros((0,) + grid.shape)


def test_a_uniform_slab_conducts_sigma_area_over_thickness():
    """Anode face to counter electrode through 32 um of 0.05 S/m over an 8 um period: K = sigma L_y / L_x, exactly
    (the discrete series of half cells is exact for a uniform slab)."""
    grid = Grid((32, 8), (1.0, 1.0))
    conductance, fields, _ = en.electrode_conductances(jnp.full(grid.shape, 0.05), no_cells(grid), grid)
    assert float(conductance[0, 0]) == pytest.approx(en.CONDUCTANCE_UNIT * 0.05 * 8.0 / 32.0, rel=1e-10)
    x = grid.axis_coordinates(0)
    np.testing.assert_allclose(fields[0][:, 3], 1.0 - x / 32.0, atol=1e-9)  # linear potential


def test_a_broken_band_adds_its_series_resistance():
    """A band of damage across the period (d = 1 over 3 um, the rest intact): the resistances add,
    L_x / K = (L_x - w) / sigma + w / sigma_crack; with sigma_crack = 0 the floor (1e-6 sigma) sets the band's."""
    grid = Grid((32, 8), (1.0, 1.0))
    damage = np.zeros(grid.shape)
    damage[10:13] = 1.0
    for crack, expected in ((0.005, 29.0 / 0.05 + 3.0 / 0.005), (0.0, 29.0 / 0.05 + 3.0 / (en.CONDUCTIVITY_FLOOR * 0.05))):
        sigma = en.damaged_conductivity(jnp.asarray(damage), 0.05, crack)
        conductance, _, _ = en.electrode_conductances(sigma, no_cells(grid), grid)
        assert float(conductance[0, 0]) == pytest.approx(en.CONDUCTANCE_UNIT * 8.0 / expected, rel=1e-8)
    half = en.damaged_conductivity(jnp.asarray(0.5), 0.05, 0.01)
    assert float(half) == pytest.approx(0.03)


def comb(cells_per_half_period):
    """A Li fin of height a = 8 um every b = 8 um on the anode face (one cell thick), counter electrode 32 um away."""
    b, thickness, a = 8.0, 32.0, 8.0
    h = b / (2 * cells_per_half_period)
    grid = Grid((round(thickness / h), 2 * cells_per_half_period), (h, h))
    fin = np.zeros((1,) + grid.shape)
    fin[0, : round(a / h), cells_per_half_period] = 1.0
    conductance, _, iterations = en.electrode_conductances(jnp.full(grid.shape, 1.0), jnp.asarray(fin), grid)
    total = float(jnp.sum(conductance))
    shift = thickness - en.CONDUCTANCE_UNIT * b / total  # the plane the comb acts as, above the anode face
    share = float(jnp.sum(conductance[1])) / total  # the fin's part of the current, both at one potential
    return shift, share, int(iterations)


def test_a_comb_of_fins_matches_its_conformal_map():
    """Thin fins of height a every b on a plane electrode, all at one potential, a far counter electrode. The map
    w = cosh(pi z / b), s = w^2 takes half a period to the upper half plane with the electrode on [0, c^2],
    c = cosh(pi a / b), the rest insulating: the potential is Re arccosh(2 s / c^2 - 1), so the comb acts as a plane
    at delta = (b / pi) ln cosh(pi a / b) (6.24 um for a = b = 8 um) and the fin takes the part of the current
    1 - (arcsin(2 / c^2 - 1) + pi / 2) / pi (94.5 %) of it. The one-cell-thick fin converges to both from above
    (measured: delta 6.48 / 6.39 / 6.33 um, share 95.9 / 95.3 / 94.9 % at 8 / 16 / 32 cells per half period)."""
    b = a = 8.0
    c = np.cosh(np.pi * a / b)
    delta = b / np.pi * np.log(c)
    share = 1.0 - (np.arcsin(2.0 / c**2 - 1.0) + np.pi / 2.0) / np.pi
    coarse, fine = comb(8), comb(16)
    print(f"delta {coarse[0]:.4f} / {fine[0]:.4f} um (map {delta:.4f}), fin share {coarse[1]:.4f} / {fine[1]:.4f} "
          f"(map {share:.4f}), CG {coarse[2]} / {fine[2]}")
    assert fine[0] == pytest.approx(delta, rel=0.03)
    assert fine[1] == pytest.approx(share, rel=0.01)
    assert abs(fine[0] - delta) < 0.7 * abs(coarse[0] - delta)  # converging
    assert abs(fine[1] - share) < 0.7 * abs(coarse[1] - share)


def butler_volmer(eta, i0=2.57, alpha=0.5):
    return i0 * (np.exp(-alpha * F_RT * eta) - np.exp((1 - alpha) * F_RT * eta))


def anode_and_fins(voltage, resistance, areas, current):
    """:func:`en.network_deposits` for the anode face and ``len(areas) - 1`` filaments that plate nothing this step
    (``dt = 0``; their Li at zero pressure filling their cracks exactly): the surfaces' balance alone."""
    fins = len(areas) - 1
    volume = jnp.full(fins, 0.1)
    return en.network_deposits(voltage, jnp.asarray(resistance), jnp.asarray(areas), current, 0.0, volume, volume,
                               jnp.eye(fins), 11.0, 0.0, 1.0, jnp.zeros(fins))


def test_surface_overpotentials_solve_the_ohmic_and_kinetic_balance():
    """One surface: eta = V + R A i(eta), the scalar root found with brentq, at cell voltages from -2.5 to 2.5 V
    (beyond 2.05 V the current's exponentials are clipped, where a Newton step from eta = V is the identity's and
    would jump by R A i_max); two coupled surfaces (a resistance matrix with a shared part): the vector root found
    with scipy's fsolve, at a cell voltage of -0.3 V where the ohmic drop takes most of it."""
    current = lambda eta, p: 2.57 * (jnp.exp(-0.5 * F_RT * eta) - jnp.exp(0.5 * F_RT * eta))  # noqa: E731
    for voltage in (-0.3, -1.5, -2.5, 0.4, 2.5):  # plating and stripping, inside and beyond the clipped exponentials
        _, eta, currents, residual, _ = anode_and_fins(voltage, [[0.02]], [4.0], current)
        root = optimize.brentq(lambda e: e - voltage - 0.02 * 4.0 * butler_volmer(e), min(voltage, 0.0),
                               max(voltage, 0.0), xtol=1e-15)
        assert float(eta[0]) == pytest.approx(root, abs=1e-12), voltage
        assert float(currents[0]) == pytest.approx(4.0 * butler_volmer(root), rel=1e-10)
        assert float(residual) < en.NEWTON_TOLERANCE
    resistance = np.array([[0.02, 0.015], [0.015, 0.05]])
    areas = np.array([4.0, 1.5])
    _, eta, _, _, _ = anode_and_fins(-0.3, resistance, areas, current)
    root = optimize.fsolve(lambda e: e + 0.3 - resistance @ (areas * butler_volmer(e)), np.full(2, -0.1), xtol=1e-14)
    np.testing.assert_allclose(np.asarray(eta), root, atol=1e-11)
    assert -0.3 < root[0] < -0.01 and -0.3 < root[1] < -0.01


def test_electrolyte_potential_holds_each_surface_and_the_counter_electrode():
    """Anode face at -eta_0, a fin at -eta_1, the counter electrode at -V: the field's wall-adjacent cells and the
    fin's cells carry those (the fin exactly; the walls' cells half a cell from the wall)."""
    grid = Grid((32, 8), (1.0, 1.0))
    fin = np.zeros((1,) + grid.shape)
    fin[0, :4, 4] = 1.0
    _, fields, _ = en.electrode_conductances(jnp.full(grid.shape, 0.05), jnp.asarray(fin), grid)
    phi = en.electrolyte_potential(fields, -0.1, jnp.array([-0.06, -0.07]))
    assert np.allclose(np.asarray(phi)[:4, 4], 0.07)
    assert float(phi[-1, 0]) == pytest.approx(0.1, abs=0.005)
    assert float(phi[0, 0]) == pytest.approx(0.06, abs=0.005)


def test_network_deposits_solve_the_coupled_surfaces_and_li_volumes():
    """Anode face and three filaments sharing the slab's resistance, their cracks coupled by a compliance matrix, one
    step of 2 s at a cell voltage of -0.15 V: two filaments full of Li plate against their pressures, the third
    (its Li short of its crack's volume) at zero pressure. Against scipy's fsolve of the same balances written here
    with the Li volumes as unknowns (each filled crack's pressures from the volumes by fsolve too): overpotentials to
    1e-11 V, volumes to 1e-11 relative; the third stays short of its crack, and a zero step plates nothing."""
    molar_volume, bulk, rate, dt, voltage = 1.3e-5, 11.0, 1.3e-5 * 1e6 / 96485.33212, 2.0, -0.15
    current = lambda eta, p: 2.57 * (jnp.exp(-0.5 * F_RT * (eta + molar_volume * p * 1e9 / 96485.33212))  # noqa: E731
                                     - jnp.exp(0.5 * F_RT * (eta + molar_volume * p * 1e9 / 96485.33212)))
    conductance = 10.0 * np.array([[60.0, -8.0, -6.0, -5.0], [-8.0, 30.0, -3.0, -2.0], [-6.0, -3.0, 25.0, -2.0],
                                   [-5.0, -2.0, -2.0, 20.0]])  # A/m^2 um per V: an M-matrix, the slab shared
    resistance = np.linalg.inv(conductance)
    areas = np.array([16.0, 8.0, 6.0, 4.0])
    compliance = np.array([[0.6, 0.05, 0.02], [0.05, 0.4, 0.03], [0.02, 0.03, 0.25]])  # um^2 / GPa
    pressure = np.array([0.05, 0.02, 0.0])  # GPa: the linearisation's; the third crack unfilled
    base = np.array([0.2, 0.15, 0.3]) - compliance @ pressure
    start = np.array([0.2 * (1 + 0.05 / bulk), 0.15 * (1 + 0.02 / bulk), 0.1])  # the first two full, the third not

    def bv(eta, p):
        return np.asarray(current(jnp.asarray(eta), jnp.asarray(p)))

    def filled_pressures(volumes):  # the first two cracks' pressures (the third at 0)
        def balance(p):
            full = np.append(p, 0.0)
            return ((base + compliance @ full) * (1.0 + full / bulk) - volumes)[:2]
        return np.append(optimize.fsolve(balance, pressure[:2], xtol=1e-13), 0.0)

    def equations(x):
        eta, volumes = x[:4], x[4:]
        p = np.append(0.0, filled_pressures(volumes))
        i = areas * bv(eta, p)
        return np.concatenate([eta - voltage - resistance @ i, (volumes - start - dt * rate * i[1:]) / 0.2])

    root = optimize.fsolve(equations, np.concatenate([np.full(4, voltage), start]), xtol=1e-13)
    volumes, eta, currents, network, deposit = en.network_deposits(
        voltage, jnp.asarray(resistance), jnp.asarray(areas), current, 0.0, jnp.asarray(start), jnp.asarray(base),
        jnp.asarray(compliance), bulk, dt, rate, jnp.asarray(pressure))
    print(f"eta {root[:4]} V, volumes {start} -> {root[4:]} um^2")
    np.testing.assert_allclose(np.asarray(eta), root[:4], atol=1e-11)
    np.testing.assert_allclose(np.asarray(volumes), root[4:], rtol=1e-11)
    assert float(network) < en.NEWTON_TOLERANCE and float(deposit) < 1e-12
    crack = base + compliance @ filled_pressures(root[4:])
    assert root[6] < crack[2] and np.all(root[4:] > start)  # the third still short of its crack; all plated
    assert float(currents[0]) == pytest.approx(areas[0] * bv(root[0], 0.0), rel=1e-10)
    unchanged = en.network_deposits(voltage, jnp.asarray(resistance), jnp.asarray(areas), current, 0.0,
                                    jnp.asarray(start), jnp.asarray(base), jnp.asarray(compliance), bulk, 0.0, rate,
                                    jnp.asarray(pressure))[0]
    np.testing.assert_allclose(np.asarray(unchanged), start, rtol=1e-13)


def test_a_filament_stripped_empty_is_depleted_not_negative():
    """Stripping at a cell voltage of +0.1 V for 50 s: the filament holding 0.002 um^2 of Li would lose more than it
    holds, so it ends empty (W = 0; the lumped bisection gives 0 the same way) while the one holding 0.2 um^2 keeps
    its Li; against scipy's fsolve of the balances with the emptied filament's current fixed at -V0 / (dt rate)
    (overpotentials 1e-11 V, the other's volume 1e-11)."""
    voltage, dt, rate = 0.1, 50.0, 1.3e-5 * 1e6 / 96485.33212
    current = lambda eta, p: 2.57 * (jnp.exp(-0.5 * F_RT * eta) - jnp.exp(0.5 * F_RT * eta))  # noqa: E731
    resistance = np.linalg.inv(np.array([[600.0, -80.0, -60.0], [-80.0, 300.0, -30.0], [-60.0, -30.0, 250.0]]))
    areas = np.array([16.0, 8.0, 6.0])
    compliance = np.array([[0.6, 0.05], [0.05, 0.4]])
    start = np.array([0.2, 0.002])
    volumes, eta, currents, network, deposit = en.network_deposits(
        voltage, jnp.asarray(resistance), jnp.asarray(areas), current, 0.0, jnp.asarray(start), jnp.asarray(start),
        jnp.asarray(compliance), 11.0, dt, rate, jnp.zeros(2))
    emptied = -start[1] / (dt * rate)

    def equations(x):  # eta (3), the first filament's volume; its Li fills its crack at p = 0 (stripping: underfilled)
        i = areas * butler_volmer(x[:3])
        i[2] = emptied
        return np.concatenate([x[:3] - voltage - resistance @ i, [(x[3] - start[0] - dt * rate * i[1]) / 0.2]])

    root = optimize.fsolve(equations, np.array([voltage, voltage, voltage, start[0]]), xtol=1e-13)
    assert float(volumes[1]) == 0.0 and float(currents[2]) == pytest.approx(emptied, rel=1e-12)
    np.testing.assert_allclose(np.asarray(eta), root[:3], atol=1e-11)
    assert float(volumes[0]) == pytest.approx(root[3], rel=1e-11) and 0.0 < root[3] < start[0]
    assert float(network) < en.NEWTON_TOLERANCE and float(deposit) < 1e-12
    assert start[1] + dt * rate * areas[2] * butler_volmer(root[2]) < 0.0  # its kinetics would strip more than it holds
    lumped = fl.implicit_deposit(jnp.asarray(start[1]), dt, areas[2], voltage, lambda v: 0.0 * v, current, rate)
    assert float(lumped) == 0.0
