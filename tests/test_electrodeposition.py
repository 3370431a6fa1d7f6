"""The electrodeposition sub-steps (phasefield/physics/electrodeposition.py) against independent references:
the linear potential between two held walls and Gauss's law, a still equilibrium front, the secant current
control on a toy exchange, Li conservation of transport with and without the exchange, the metal joined to
the electrode against a breadth-first search, and the growth that the salt cannot pay for."""
from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import Boundary, Grid
from phasefield.operators import SpectralBasis
from phasefield.physics.electrochemistry import interpolation, metal_growth
from phasefield.physics.electrodeposition import (
    CURRENT_TOLERANCE,
    VOLTAGE_RANGE,
    Exchange,
    Kinetics,
    allen_cahn_update,
    conserve_metal_locally,
    electrode_connected,
    hold_current,
    solve_cell_potential,
    transport_exchange,
    wall_current,
)
from phasefield.units import MICRON

STRIP = Grid((64, 2), (0.25, 0.5))  # 16 um along x


def potential(sigma, source, voltage, tolerance, max_iterations, response_guess=None):
    """:func:`solve_cell_potential` on STRIP from a zero start, compiled (eager CG loops are slow)."""
    solve = jax.jit(lambda sigma, source, voltage, guess: solve_cell_potential(
        sigma, source, voltage, STRIP, jnp.zeros(STRIP.shape), tolerance, max_iterations, guess))
    return solve(sigma, source, voltage, response_guess)


def test_cell_potential_is_linear_between_the_walls_and_galvanostatic_split_agrees():
    """Uniform sigma, no source: phi = V (1 - x/L) at the cell centres (exact for the two-point flux);
    the galvanostatic pair phi_0 + V psi gives the same phi, with psi = 1 - x/L and phi_0 = 0."""
    x = STRIP.axis_coordinates(0)[:, None]
    voltage = -0.3
    sigma = jnp.full(STRIP.shape, 2.0)
    zero = jnp.zeros(STRIP.shape)
    exact = voltage * (1 - x / STRIP.lengths[0]) * np.ones(STRIP.shape)
    direct = potential(sigma, zero, voltage, 1e-12, 200)
    assert np.max(np.abs(direct.phi - exact)) < 1e-11 and direct.iterations > 0 and direct.response is None
    split = potential(sigma, zero, voltage, 1e-12, 200, response_guess=zero)
    assert np.max(np.abs(split.response - exact / voltage)) < 1e-11
    assert np.max(np.abs(split.base)) < 1e-12 and np.max(np.abs(split.phi - exact)) < 1e-11
    through_each_wall = 2.0 * abs(voltage) / STRIP.lengths[0] / MICRON  # sigma V / L, A/m^2
    assert abs(float(wall_current(sigma, direct.phi, voltage, STRIP))) < 1e-11 * through_each_wall  # in = out


def test_wall_current_carries_the_source_by_gauss():
    """div(sigma grad phi) = q with a metal/electrolyte contrast of 1e6: the net wall current equals int q dV / A
    (to the solve's tolerance 1e-12 times the contrast: the metal's wall flux is sigma_s times a tiny phi - V)."""
    x = STRIP.axis_coordinates(0)[:, None]
    h = interpolation(0.5 * (1 - np.tanh(2 * (x - 5.0)))) * np.ones(STRIP.shape)
    sigma = jnp.asarray(1e6 * h + 1.0 * (1 - h))
    source = jnp.asarray(1e-3 * h * (1 - h) * np.ones(STRIP.shape))
    solution = potential(sigma, source, -0.2, 1e-12, 500)
    expected = float(jnp.sum(source)) * STRIP.cell_volume / STRIP.lengths[1] / MICRON
    assert abs(float(wall_current(sigma, solution.phi, -0.2, STRIP)) / expected - 1) < 1e-5


def flat_front(grid, slope, position):
    x = grid.axis_coordinates(0)[:, None]
    return jnp.asarray(0.5 * (1 - np.tanh(slope * (x - position))) * np.ones(grid.shape))


def test_allen_cahn_keeps_a_flat_equilibrium_front_still():
    """W g'(xi) = kappa xi'' holds for xi = (1 - tanh(k x))/2 with k = sqrt(W / (2 kappa)) (here k = 2 /um,
    W = 12, kappa = 1.5: an interface 1 um thick), so 200 steps of 20 relaxation times 1/(L W) leave it in
    place up to the discretisation; a profile twice as wide relaxes a hundred times farther. Zero
    anisotropy and noise amplitudes are no-ops to the bit."""
    grid = Grid((160, 2), (0.0625, 0.5))
    basis = SpectralBasis(grid, Boundary.uniform(2, "neumann"))
    step = jax.jit(lambda xi, anisotropy, noise: allen_cahn_update(xi, 0.01, basis, 1.0, 12.0, 1.5, anisotropy, noise))
    key = jax.random.PRNGKey(0)
    off = ((jnp.asarray(0.0), 4, jnp.asarray(0.0)), (jnp.asarray(0.0), key))

    def relax(xi, anisotropy=None, noise=None):
        for _ in range(200):
            xi = step(xi, anisotropy, noise)
        return xi

    equilibrium = flat_front(grid, 2.0, 5.0)
    moved = float(jnp.max(jnp.abs(relax(equilibrium) - equilibrium)))
    assert moved < 2e-3, moved
    wide = flat_front(grid, 1.0, 5.0)
    assert float(jnp.max(jnp.abs(relax(wide) - wide))) > 100 * moved
    assert np.array_equal(relax(equilibrium, *off), relax(equilibrium))
    kicked = step(equilibrium, None, (jnp.asarray(0.1), key))
    plain = step(equilibrium, None, None)
    assert float(jnp.max(jnp.abs(kicked - plain))) > 1e-3  # the noise acts at the interface ...
    ends = jnp.concatenate([kicked[:8] - plain[:8], kicked[-8:] - plain[-8:]])
    assert float(jnp.max(jnp.abs(ends))) < 1e-12  # ... only (16 xi^2 (1 - xi)^2 < 1e-14 there)


def toy_exchange(growth_at):
    """An exchange whose growth (stored as ``xi``, a scalar) is ``growth_at(V)``; one 'iteration' per call."""

    def exchange_at(voltage, c_guess):
        return Exchange(growth_at(voltage), c_guess, c_guess, jnp.zeros(()), jnp.asarray(1, jnp.int32))

    return exchange_at


def test_hold_current_finds_the_potential_of_a_monotone_exchange():
    """Tafel-like growth 2 e^{-20 V}: the secant lands on V = -ln(target / 2) / 20 to the control's tolerance."""
    target = 7.0
    control = jax.jit(lambda guess: hold_current(toy_exchange(lambda v: 2.0 * jnp.exp(-20.0 * v)),
                                                 lambda result: result.xi, target, guess, jnp.zeros(3)))
    voltage, result = control(jnp.asarray(-0.01))
    assert abs(float(result.xi) / target - 1) <= CURRENT_TOLERANCE
    assert abs(float(voltage) - (-np.log(target / 2.0) / 20.0)) < CURRENT_TOLERANCE / 20.0
    assert 3 <= int(result.iterations) <= 14  # every trial's iterations are summed


def test_hold_current_stays_at_the_lowest_potential_when_no_potential_delivers_the_current():
    """Past Sand's time the growth saturates below the target: V goes to the bottom of VOLTAGE_RANGE."""
    control = jax.jit(lambda guess: hold_current(toy_exchange(lambda v: 1.0 - jnp.exp(v)),
                                                 lambda result: result.xi, 5.0, guess, jnp.zeros(3)))
    voltage, _ = control(jnp.asarray(-1.5))
    assert float(voltage) == VOLTAGE_RANGE[0]


KINETICS = Kinetics(jnp.asarray(38.9), jnp.asarray(1e-3), jnp.asarray(0.5), jnp.asarray(76.4), jnp.asarray(1.0))


def transport_case(grid, seed=0):
    rng = np.random.default_rng(seed)
    x = grid.axis_coordinates(0)[:, None]
    c = jnp.asarray(1.0 + 0.5 * rng.random(grid.shape))
    phi = jnp.asarray(-0.1 * (1 - x / grid.lengths[0]) * np.ones(grid.shape) + 0.01 * rng.random(grid.shape))
    return c, phi, jnp.full(grid.shape, 300.0)


def test_transport_without_exchange_conserves_li_to_round_off():
    """No metal (h' = 0): drift and diffusion only move Li+; a closed cell keeps sum(c) to round-off, and
    with a reservoir the change is exactly the wall inflow."""
    grid = Grid((24, 12), (0.5, 0.5))
    c, phi, diffusivity = transport_case(grid)
    xi = jnp.zeros(grid.shape)
    step = jax.jit(lambda reservoir: transport_exchange(xi, c, phi, 0.05, diffusivity, grid, KINETICS, reservoir,
                                                        migration=True), static_argnums=0)
    closed = step(False)
    assert np.array_equal(closed.xi, xi)
    assert float(jnp.max(jnp.abs(closed.c - c))) > 1e-2  # it moved
    assert abs(float(jnp.sum(closed.c) / jnp.sum(c)) - 1) < 1e-14
    open_cell = step(True)
    gained = float(jnp.sum(open_cell.c) - jnp.sum(c))
    assert abs(gained - 0.05 * float(open_cell.wall_inflow) / grid.spacing[0]) < 1e-12 * float(jnp.sum(c))
    assert abs(gained) > 1e-3


def test_transport_with_exchange_conserves_total_li_in_a_closed_cell():
    """A front at -0.1 V deposits: Li+ plus metal, c + (c_s/c_ref) h(xi), is kept to round-off."""
    grid = Grid((24, 12), (0.5, 0.5))
    c, phi, diffusivity = transport_case(grid, 1)
    xi = flat_front(grid, 2.0, 4.0)
    result = jax.jit(lambda: transport_exchange(xi, c, phi, 0.05, diffusivity, grid, KINETICS, reservoir=False,
                                                migration=True))()
    total = lambda xi, c: float(jnp.sum(c) + KINETICS.site_ratio * jnp.sum(interpolation(xi)))  # noqa: E731
    assert float(jnp.sum(interpolation(result.xi) - interpolation(xi))) > 1e-3  # metal grew
    assert abs(total(result.xi, result.c) / total(xi, c) - 1) < 1e-14


def test_profile_relaxation_gives_its_metal_back_locally_and_exactly_in_total():
    """conserve_metal_locally: two fronts 20 um apart (a flat one, and a bump), the relaxed field shifted
    by 0.2 um at one and by -0.3 um at the other (what a relaxation that moves metal would do): each
    front is moved back to its own metal (the metal within 6 um of each front restored within 1 %),
    not by a shared shift, and the total metal equals the start's to round-off."""
    grid = Grid((96, 32), (0.25, 0.25))
    basis = SpectralBasis(grid, Boundary.uniform(2, "neumann"))
    x, y = grid.axis_coordinates(0)[:, None], grid.axis_coordinates(1)[None, :]
    k = 2.0  # interface thickness 1 um
    bump = 0.5 * np.cos(2 * np.pi * y / 8.0)

    def fronts(first, second):  # metal on [0, 4 + first] and [14 + bump + second, 24]
        return np.asarray(np.maximum(0.5 * (1 - np.tanh(k * (x - 4.0 - first))),
                                      0.5 * (1 + np.tanh(k * (x - 14.0 - bump - second)))))

    xi, shifted = fronts(0.0, 0.0), fronts(0.2, -0.3)
    # one program each (eagerly, every operation of the relaxation's transforms compiles its own)
    out, residual = jax.jit(lambda xi, shifted: conserve_metal_locally(xi, shifted, basis, 1.0))(xi, shifted)
    h_start, h_out, h_shifted = np.asarray(jax.jit(jax.vmap(interpolation))(np.stack([xi, np.asarray(out), shifted])))
    near_first, near_second = x < 9.0, x >= 9.0
    for near in (near_first, near_second):
        lost = float(np.sum(np.where(near, h_out - h_start, 0.0)))
        moved = float(np.sum(np.where(near, h_shifted - h_start, 0.0)))
        assert abs(lost) < 0.01 * abs(moved), (lost, moved)
    total = float(np.sum(h_start))
    assert abs(float(residual)) < 1e-12 * total
    assert abs(float(np.sum(h_out)) - total) < 1e-12 * total


def test_interpolation_change_is_the_difference_of_h_and_keeps_its_precision_where_h_is_flat():
    """h(b) - h(a) (h = xi^3 (6 xi^2 - 15 xi + 10)) in float64 to 1e-14; in float32 near xi = 1, where the plain
    difference of two h is round-off (6e-8), within 1e-3 of the float64 value relative to it."""
    from phasefield.physics.electrochemistry import interpolation_change

    rng = np.random.default_rng(3)
    a = rng.random(200)
    b = np.clip(a + 0.3 * rng.standard_normal(200), 0.0, 1.0)
    exact = b**3 * (6 * b**2 - 15 * b + 10) - a**3 * (6 * a**2 - 15 * a + 10)
    np.testing.assert_allclose(np.asarray(interpolation_change(jnp.asarray(a), jnp.asarray(b))), exact, atol=1e-14)
    start = (1.0 - np.array([1e-2, 3e-3, 1e-3])).astype(np.float32)
    end = start + np.float32(1e-5)
    truth = np.asarray(interpolation(jnp.asarray(end, jnp.float64)) - interpolation(jnp.asarray(start, jnp.float64)))
    low = np.asarray(interpolation_change(jnp.asarray(start), jnp.asarray(end)))
    plain = np.asarray(interpolation(jnp.asarray(end)) - interpolation(jnp.asarray(start)))
    np.testing.assert_allclose(low, truth, rtol=1e-3)
    assert np.max(np.abs(plain / truth - 1)) > 1e-2  # the plain float32 difference is not


def connected_by_search(inside):
    """Breadth-first search over face neighbours from the cells of the x = 0 face that are ``inside``."""
    reached = np.zeros_like(inside)
    queue = deque(tuple(int(i) for i in cell) for cell in np.argwhere(inside) if cell[0] == 0)
    for cell in queue:
        reached[cell] = True
    while queue:
        cell = queue.popleft()
        for axis in range(inside.ndim):
            for step in (-1, 1):
                near = list(cell)
                near[axis] += step
                near = tuple(near)
                if 0 <= near[axis] < inside.shape[axis] and inside[near] and not reached[near]:
                    reached[near] = True
                    queue.append(near)
    return reached


def test_metal_joined_to_the_electrode_is_what_a_breadth_first_search_reaches():
    """Random 2D and 3D fields (smoothed noise, so that there are winding paths, hooks and islands):
    :func:`electrode_connected` marks exactly the cells a breadth-first search reaches from the x = 0 face
    through cells with xi above the threshold; a straight bar from the wall and an island by hand too."""
    bar = np.zeros((10, 6))
    bar[:6, 2] = 1.0
    bar[8, 4] = 1.0  # an island
    joined = bar.copy()
    joined[8, 4] = 0.0
    connected = jax.jit(electrode_connected, static_argnums=1)  # one program per shape and threshold
    np.testing.assert_array_equal(np.asarray(connected(bar, 0.5)), joined > 0.5)
    rng = np.random.default_rng(3)
    for shape in ((40, 32), (14, 12, 10)):
        noise = rng.normal(size=shape)
        for axis in range(len(shape)):  # a few smoothing passes: blobs of a few cells
            noise = noise + np.roll(noise, 1, axis) + np.roll(noise, -1, axis)
        xi = 1.0 / (1.0 + np.exp(-noise / noise.std() * 2.0))
        for threshold in (0.3, 0.5, 0.6):
            expected = connected_by_search(xi > threshold)
            found = np.asarray(connected(xi, threshold))
            assert expected.any() and (xi > threshold).sum() > expected.sum()  # both joined and cut-off metal
            np.testing.assert_array_equal(found, expected)


def test_growth_the_salt_cannot_pay_for_takes_exactly_all_of_it():
    """metal_growth: where h(xi_new) - h(xi) costs more Li+ than the cell holds, the growth stops where it
    has taken all of it (c' = 0, h(xi') = h(xi) + c / ratio to round-off; on the convex foot of h a step
    scaled back linearly in xi would take far less); elsewhere it is the growth asked for, paid exactly;
    its derivative is the implicit one, d xi' / d c = 1 / (ratio h'(xi'))."""
    ratio = 474.0
    xi = np.array([0.04, 0.3, 0.9, 0.04])
    asked = np.array([0.34, 0.5, 0.905, 0.041])
    c = np.array([13.7, 2.0, 1.0, 13.7])
    # compiled whole (eagerly, each operation compiles a program of its own); the checks in numpy
    grown, left = (np.asarray(v) for v in jax.jit(lambda xi, asked, c: metal_growth(xi, asked, c, ratio))(xi, asked, c))
    compiled_h = jax.jit(interpolation)

    def h(u):
        return np.asarray(compiled_h(u))

    short = ratio * (h(asked) - h(xi)) > c
    assert short.tolist() == [True, True, False, False]
    np.testing.assert_allclose(left[short], 0.0, atol=1e-12)
    np.testing.assert_allclose((h(grown) - h(xi))[short], (c / ratio)[short], rtol=1e-12)
    np.testing.assert_allclose(grown[~short], asked[~short], rtol=0, atol=0)
    np.testing.assert_allclose(left + ratio * (h(grown) - h(xi)), c, rtol=1e-13)
    linear = 0.04 + c[0] / (ratio * (h(asked[0]) - h(xi[0]))) * 0.3  # scaled back linearly: pays an eighth
    assert ratio * (h(linear) - h(xi[0])) < 0.15 * c[0]
    slope = jax.jit(jax.grad(lambda c0: metal_growth(xi, asked, jnp.asarray(c).at[0].set(c0), ratio)[0][0]))(c[0])
    np.testing.assert_allclose(float(slope), 1.0 / (ratio * float(jax.jit(jax.grad(interpolation))(grown[0]))),
                               rtol=1e-10)
