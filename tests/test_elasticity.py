"""Periodic small-strain elasticity: Eshelby and Kirsch against the analytic fields, laminates against the
exact solution, the mixed macroscopic load, contrast robustness, warm start, jit/scan/vmap, input checks."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.grid import Grid
from phasefield.operators import (
    Elasticity,
    elastic_energy_density,
    hydrostatic_stress,
    isotropic_moduli,
    normal_stress,
    solve_elasticity,
    von_mises_stress,
)
from phasefield.operators.elasticity import (
    _edge_shear_moduli,
    _internal_forces,
    _reference_inverse,
    mean_components,
    stress_from_displacement,
    stress_from_strain,
    tensor_components,
)

EIGENSTRAIN = 0.01
LIXSI = (80.0, 0.22)  # E (GPa), nu: lithiated silicon (physics.md 7.6)
LPSC = (22.0, 0.30)  # argyrodite solid electrolyte
FREE = {2: {"xx": 0.0, "yy": 0.0, "xy": 0.0}, 3: {n: 0.0 for n in tensor_components(3)}}  # zero mean stress


@functools.lru_cache(maxsize=None)
def _jitted(grid, shear_mean):
    def solve(lam, mu, eigenstrain, mean_stress, mean_strain, initial, tolerance, max_iterations):
        return solve_elasticity(lam, mu, grid, eigenstrain, mean_strain, mean_stress, initial, tolerance,
                                max_iterations, shear_mean)
    return jax.jit(solve)


def solver(grid, tolerance=1e-8, max_iterations=2000, shear_mean="arithmetic"):
    """``solve_elasticity`` jitted once per grid (and load structure); tolerance and max_iterations traced."""
    def solve(lam, mu, eigenstrain, mean_stress, mean_strain=None, initial=None):
        return _jitted(grid, shear_mean)(lam, mu, eigenstrain, mean_stress, mean_strain, initial, tolerance,
                                         max_iterations)
    return solve


def centred(grid, radius_fraction):
    """Cell-centre distance from the cell centre, and the radius ``radius_fraction * L``."""
    coords = np.broadcast_arrays(*grid.coordinates())
    offsets = [c - 0.5 * length for c, length in zip(coords, grid.lengths)]
    return offsets, np.sqrt(sum(o * o for o in offsets)), radius_fraction * grid.lengths[0]


def two_phase(inside, inclusion, matrix):
    lam_i, mu_i = (float(v) for v in isotropic_moduli(*inclusion))
    lam_m, mu_m = (float(v) for v in isotropic_moduli(*matrix))
    return np.where(inside, lam_i, lam_m), np.where(inside, mu_i, mu_m), (lam_i, mu_i), (lam_m, mu_m)


def radial_stress(stress, offsets, r):
    """``sigma_rr = n . sigma . n`` with ``n`` the outward unit vector."""
    ndim = len(offsets)
    total = 0.0
    for a in range(ndim):
        for b in range(ndim):
            name = "xyz"[min(a, b)] + "xyz"[max(a, b)]
            total = total + stress[name] * offsets[a] * offsets[b]
    return total / r**2


def matrix_decay_errors(stress, offsets, r, radius, pressure, power, grid):
    """``sigma_rr`` in the matrix against ``-p (a/r)^power``, on shells of cells at 1.5a, 2a and 3a.

    The periodic images of the inclusion add a nearly uniform stress to the neighbourhood of
    each inclusion; it is estimated by the matrix average and subtracted. The analytic value is
    averaged over the same cells (each shell is 1.5 cells thick).
    """
    stress = {k: np.asarray(v) for k, v in stress.items()}
    matrix = r > radius + 1.5 * grid.spacing[0]
    uniform = {k: np.mean(v[matrix]) for k, v in stress.items()}
    rr = np.asarray(radial_stress({k: v - uniform[k] for k, v in stress.items()}, offsets, r))
    errors = []
    for shell in (1.5, 2.0, 3.0):
        cells = np.abs(r - shell * radius) < 0.75 * grid.spacing[0]
        exact = -pressure * (radius / r[cells]) ** power
        errors.append(float(np.mean(rr[cells]) / np.mean(exact) - 1.0))
    return errors


def test_reference_inverse_is_exact_and_operator_symmetric():
    """The FFT preconditioner inverts the constant-moduli operator exactly; the operator is symmetric."""
    rng = np.random.default_rng(0)
    for shape, spacing in (((8, 6), (0.3, 0.5)), ((6, 5, 4), (0.3, 0.5, 0.7))):
        grid = Grid(shape, spacing)
        ndim = grid.ndim
        u = tuple(jnp.asarray(rng.normal(size=shape)) for _ in range(ndim))
        lam0, mu0 = 1.7, 0.6
        lam, mu = jnp.full(shape, lam0), jnp.full(shape, mu0)
        apply = jax.jit(lambda u, lam, mu, edge: _internal_forces(u, {}, {}, lam, mu, edge, grid, ())[0])
        forces = apply(u, lam, mu, _edge_shear_moduli(mu, ndim, "arithmetic"))
        back = jax.jit(lambda f: _reference_inverse(f, grid, lam0, mu0))(forces)
        for a in range(ndim):
            assert np.max(np.abs(back[a] - (u[a] - jnp.mean(u[a])))) < 1e-12
        lam, mu = jnp.asarray(np.exp(rng.normal(size=shape))), jnp.asarray(np.exp(rng.normal(size=shape)))
        v = tuple(jnp.asarray(rng.normal(size=shape)) for _ in range(ndim))
        for shear_mean in ("arithmetic", "harmonic"):
            edge = _edge_shear_moduli(mu, ndim, shear_mean)
            ku, kv = apply(u, lam, mu, edge), apply(v, lam, mu, edge)
            left = sum(float(jnp.vdot(x, y)) for x, y in zip(v, ku))
            right = sum(float(jnp.vdot(x, y)) for x, y in zip(u, kv))
            assert abs(left - right) < 1e-12 * abs(left)
            assert sum(float(jnp.vdot(x, y)) for x, y in zip(u, ku)) > 0


@pytest.mark.parametrize("inclusion,matrix", [(LPSC, LPSC), (LIXSI, LPSC), (LPSC, LIXSI)],
                         ids=["homogeneous", "stiff-inclusion", "soft-inclusion"])
def test_eshelby_circular_inclusion_plane_strain(inclusion, matrix):
    """Cylinder with full dilatational eigenstrain (zz included) in plane strain, physics.md 7.6.

    512^2 cell, radius L/20 (25.6 cells, volume fraction 0.8 %), zero mean stress, which is the
    periodic load closest to an infinite matrix: the images then shift the interior stress by
    about -f of itself. Measured interior errors (xx, zz): homogeneous -0.78 %, -0.24 %;
    Li_xSi in LPSC +1.03 %, +0.09 %; LPSC in Li_xSi -1.02 %, -0.49 %. Matrix sigma_rr and
    sigma_tt decay as a^2/r^2 within 0.5 % at 1.5a, 2a, 3a once the uniform image field is
    removed; sigma_zz is that uniform field alone there.
    """
    grid = Grid((512, 512), 1.0 / 512)
    offsets, r, radius = centred(grid, 0.05)
    inside = r < radius
    lam, mu, (lam_i, mu_i), (_, mu_m) = two_phase(inside, inclusion, matrix)
    result = solver(grid)(jnp.asarray(lam), jnp.asarray(mu), jnp.asarray(np.where(inside, EIGENSTRAIN, 0.0)),
                                          FREE[2])
    assert float(result.residual) <= 1e-7
    b = (3 * lam_i + 2 * mu_i) * EIGENSTRAIN / (2 * (lam_i + mu_i + mu_m))
    pressure = 2 * mu_m * b
    sigma_zz = 2 * lam_i * b - (3 * lam_i + 2 * mu_i) * EIGENSTRAIN
    core = r < 0.6 * radius
    stress = {k: np.asarray(v) for k, v in result.stress.items()}
    errors = [np.mean(stress["xx"][core]) / -pressure - 1, np.mean(stress["yy"][core]) / -pressure - 1,
              np.mean(stress["zz"][core]) / sigma_zz - 1]
    decay = matrix_decay_errors(result.stress, offsets, r, radius, pressure, 2, grid)
    hoop = matrix_decay_errors({"xx": stress["yy"], "yy": stress["xx"], "xy": -stress["xy"], "zz": stress["zz"]},
                               offsets, r, radius, -pressure, 2, grid)  # sigma_tt = +p a^2/r^2
    print("interior", errors, "sigma_rr", decay, "sigma_tt", hoop, "iterations", int(result.iterations))
    assert max(abs(e) for e in errors) < 0.02
    assert max(abs(e) for e in decay + hoop) < 0.02
    uniform_zz = np.mean(stress["zz"][r > radius + 1.5 * grid.spacing[0]])
    for shell in (1.5, 2.0, 3.0):  # sigma_zz = lam_m tr(eps) = 0 in the infinite matrix
        cells = np.abs(r - shell * radius) < 0.75 * grid.spacing[0]
        assert abs(np.mean(stress["zz"][cells]) - uniform_zz) < 0.02 * pressure


@pytest.mark.parametrize("sizes, decay_tolerance", [
    ((32, 64), 0.04),
    pytest.param((48, 96), 0.02, marks=pytest.mark.slow),  # the finer pair: the same claims, the decay to 2 %
], ids=["32-64", "48-96"])
def test_eshelby_spherical_inclusion(sizes, decay_tolerance):
    """Sphere, dilatational eigenstrain, radius L/8, zero mean stress, two grids n and 2n.

    p = 12 K_i mu_m eps* / (3 K_i + 4 mu_m). Homogeneous: interior -0.85 % (32^3), -0.83 % (64^3), -0.82 %
    (48^3, 96^3): the periodic-image shift -f. Inhomogeneous, the staircase sphere converges at first
    order: Li_xSi in LPSC +13.1 % (32^3), +8.9 % (48^3), +7.1 % (64^3), +4.4 % (96^3); LPSC in Li_xSi
    -3.2 %, -2.3 %, -2.0 %, -1.5 %. So 2 % is not reached at a test-affordable size for the stiff
    inclusion; the first-order extrapolation 2 p(2n) - p(n) is within 2 % for both (32/64: +1.0 %,
    -0.9 %; 48/96: -0.1 %, -0.7 %). The matrix decay sigma_rr ~ r^-3 (image field removed) on the finer
    grid: within 3.2 % at 64^3 (tolerance 4 %; the shells are 12-24 cells out), 0.7 % at 96^3 (2 %).
    """
    measured = {}
    for n in sizes:
        grid = Grid((n, n, n), 1.0 / n)
        offsets, r, radius = centred(grid, 0.125)
        inside = r < radius
        solve = solver(grid)
        for case, (inclusion, matrix) in {"homogeneous": (LPSC, LPSC), "stiff": (LIXSI, LPSC), "soft": (LPSC, LIXSI)}.items():
            lam, mu, (lam_i, mu_i), (_, mu_m) = two_phase(inside, inclusion, matrix)
            result = solve(jnp.asarray(lam), jnp.asarray(mu), jnp.asarray(np.where(inside, EIGENSTRAIN, 0.0)), FREE[3])
            assert float(result.residual) <= 1e-7
            bulk_i = lam_i + 2 * mu_i / 3
            pressure = 12 * bulk_i * mu_m * EIGENSTRAIN / (3 * bulk_i + 4 * mu_m)
            core = r < 0.6 * radius
            interior = [float(np.mean(np.asarray(result.stress[k])[core])) for k in ("xx", "yy", "zz")]
            assert max(interior) - min(interior) < 1e-3 * pressure  # hydrostatic by symmetry
            measured[case, n] = np.mean(interior) / -pressure - 1
            if n == sizes[1]:
                decay = matrix_decay_errors(result.stress, offsets, r, radius, pressure, 3, grid)
                print(case, "decay", decay)
                assert max(abs(e) for e in decay) < decay_tolerance
    print({k: round(float(v), 4) for k, v in measured.items()})
    coarse, fine = sizes
    for n in sizes:
        assert abs(measured["homogeneous", n]) < 0.02
    for case in ("stiff", "soft"):
        assert abs(measured[case, fine]) < abs(measured[case, coarse])
        assert abs(2 * measured[case, fine] - measured[case, coarse]) < 0.02


def laminate_exact(fractions, moduli, pressure, ndim, lateral="free"):
    """Mean strain of layers normal to x under sigma_xx = -pressure, zero mean shear stress.

    lateral ``"free"``: zero mean in-plane normal stresses; ``"clamped"``: zero in-plane strains.
    Each layer has uniform strain: eps_xx^i from sigma_xx^i = -p, common in-plane strain e.
    """
    lams = np.array([m[0] for m in moduli])
    mus = np.array([m[1] for m in moduli])
    f = np.asarray(fractions)
    p_modulus = lams + 2 * mus
    lateral_axes = ndim - 1  # in-plane normal strains that are free (plane strain: y only)
    if lateral == "clamped":
        e = 0.0
    else:
        # eps_xx^i = (-p - lam_i * m e) / P_i with m = lateral_axes; mean sigma_yy = 0 gives e.
        m = lateral_axes
        coefficient = np.sum(f * (-lams * lams * m / p_modulus + p_modulus + lams * (m - 1)))
        constant = np.sum(f * lams * (-pressure) / p_modulus)
        e = -constant / coefficient
    eps_xx = (-pressure - lams * lateral_axes * e) / p_modulus
    return float(np.sum(f * eps_xx)), e


@pytest.mark.parametrize("ndim,lateral", [(2, "free"), (3, "free"), (3, "clamped")])
def test_laminate_under_prescribed_mean_stress(ndim, lateral):
    """Layers normal to x (Reuss across, Voigt-type along) under stack pressure: exact to 1e-9."""
    n = 128 if ndim == 2 else 32
    grid = Grid((n,) * ndim, 1.0 / n)
    x = grid.coordinates()[0] * np.ones(grid.shape)
    layer = (x > 0.3 * grid.lengths[0]).astype(float) + (x > 0.8 * grid.lengths[0])
    phases = [isotropic_moduli(*LIXSI), isotropic_moduli(*LPSC), isotropic_moduli(5.0, 0.42)]
    moduli = [(float(a), float(b)) for a, b in phases]
    lam = np.choose(layer.astype(int), [m[0] for m in moduli])
    mu = np.choose(layer.astype(int), [m[1] for m in moduli])
    fractions = [np.mean(layer == k) for k in range(3)]
    pressure = 0.014  # GPa: 14 MPa stack pressure
    names = mean_components(ndim)
    in_plane = [c for c in names if c[0] == c[1] and c != "xx"]
    if lateral == "free":
        mean_stress, mean_strain = {c: 0.0 for c in names}, None
    else:
        mean_stress = {c: 0.0 for c in names if c not in in_plane}
        mean_strain = {c: 0.0 for c in in_plane}
    mean_stress["xx"] = -pressure  # keeps the dict order, so the 3D clamped case shares a compilation
    result = solver(grid, 1e-12)(jnp.asarray(lam), jnp.asarray(mu), jnp.zeros(grid.shape), mean_stress, mean_strain)
    exact_xx, exact_lateral = laminate_exact(fractions, moduli, pressure, ndim, lateral)
    assert abs(float(result.mean_strain["xx"]) / exact_xx - 1) < 1e-9
    for c in in_plane:
        assert abs(float(result.mean_strain[c]) - exact_lateral) < 1e-9 * abs(exact_xx)
    assert np.max(np.abs(np.asarray(result.stress["xx"]) + pressure)) < 1e-9 * pressure  # traction continuity
    assert abs(float(result.mean_stress["xx"]) + pressure) < 1e-13 * pressure


@pytest.mark.parametrize("ndim", [2, 3])
def test_prescribed_mean_stress_returned_exactly(ndim):
    """Random moduli (contrast 1e2), random full eigenstrain, mixed load: the prescribed mean
    stresses come back to round-off even at a loose tolerance, the prescribed strains exactly."""
    rng = np.random.default_rng(3)
    n = 128 if ndim == 2 else 32
    grid = Grid((n,) * ndim, 1.0 / n)
    young = 10.0 ** rng.uniform(0, 2, size=grid.shape)
    lam, mu = isotropic_moduli(young, 0.3)
    eigen = {c: jnp.asarray(1e-3 * rng.normal(size=grid.shape)) for c in tensor_components(ndim)}
    mean_stress = {"xx": -0.3, "xy": 0.05} if ndim == 2 else {"xx": -0.3, "yz": 0.0, "xz": 0.02, "xy": 0.05}
    mean_strain = {c: 1e-3 * (k + 1) for k, c in enumerate(mean_components(ndim)) if c not in mean_stress}
    for tolerance in (1e-4, 1e-10):
        result = solver(grid, tolerance)(lam, mu, eigen, mean_stress, mean_strain)
        assert float(result.residual) < 3 * tolerance
        for c, value in mean_stress.items():
            assert abs(float(result.mean_stress[c]) - value) < 1e-12 * 0.3
            assert abs(float(jnp.mean(result.stress[c])) - value) < 1e-12 * 0.3
        for c, value in mean_strain.items():
            assert float(result.mean_strain[c]) == pytest.approx(value, rel=1e-15)
            assert float(jnp.mean(result.strain[c])) == pytest.approx(value, rel=1e-10)
    again = stress_from_displacement(lam, mu, result.displacement, result.mean_strain, grid, eigen)
    for c in tensor_components(ndim):
        assert np.allclose(again[c], result.stress[c], rtol=0, atol=1e-13)


def test_second_order_for_smooth_fields():
    """Smooth moduli and eigenstrain (contrast 3, shear eigenstrain included): the effective strain,
    the elastic energy and a stress moment converge at second order (measured 1.99, 1.98, 1.99)."""
    values = []
    for n in (32, 64, 128):
        grid = Grid((n, n), 1.0 / n)
        x, y = np.broadcast_arrays(*grid.coordinates())
        lam, mu = isotropic_moduli(1.0 + 0.5 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y), 0.3)
        eigen = {"xx": 0.01 * np.cos(2 * np.pi * (x + y)), "yy": np.zeros(grid.shape), "zz": np.zeros(grid.shape),
                 "xy": 0.005 * np.sin(2 * np.pi * x)}
        result = solver(grid, 1e-12)(lam, mu, eigen, {"xx": -0.01, "xy": 0.0}, {"yy": 0.0})
        energy = jnp.mean(elastic_energy_density(lam, mu, result.strain, eigen))
        moment = jnp.mean(result.stress["xx"] * np.cos(2 * np.pi * (x + y)))
        values.append([float(result.mean_strain["xx"]), float(energy), float(moment)])
    values = np.array(values)
    orders = np.log2(np.abs(values[0] - values[1]) / np.abs(values[1] - values[2]))
    print("orders", orders)
    assert np.all(orders > 1.8), orders


def particles(grid):
    """Four discs (2D) or spheres through the mid-plane (3D) of fixed size in the unit cell."""
    coords = grid.coordinates()
    inside = np.zeros(grid.shape, bool)
    for cx, cy, radius in ((0.3, 0.35, 0.12), (0.7, 0.3, 0.08), (0.55, 0.72, 0.15), (0.15, 0.8, 0.06)):
        centre = (cx, cy, 0.5)[: grid.ndim]
        inside |= sum((x - c) ** 2 for x, c in zip(coords, centre)) < radius**2
    return inside


def contrast_iterations(n, ndim, contrast, stiff_particles, shear_mean="arithmetic"):
    grid = Grid((n,) * ndim, 1.0 / n)
    inside = particles(grid)
    lam, mu = isotropic_moduli(np.where(inside == stiff_particles, 1.0, 1.0 / contrast), 0.3)
    mean_stress = dict(FREE[ndim], xx=-1e-3)
    result = solver(grid, 1e-8, 2000, shear_mean)(lam, mu, jnp.asarray(np.where(inside, 1e-3, 0.0)), mean_stress)
    assert float(result.residual) <= 2e-8  # the final mean-stress correction may add a little
    return int(result.iterations)


RESOLUTIONS = [  # (2D base, 2D fine, 3D base, 3D fine): the fine grids have 4x (2D) and 3.4x (3D) the cells
    (64, 128, 24, 36),
    pytest.param(128, 256, 32, 48, marks=pytest.mark.slow),  # the same claims on finer grids
]


@pytest.mark.parametrize("base_2d, fine_2d, base_3d, fine_3d", RESOLUTIONS)
def test_iterations_independent_of_resolution_at_contrast_1e3(base_2d, fine_2d, base_3d, fine_3d):
    """Particles 1e3 stiffer / softer than the matrix, eigenstrain and stack pressure, tolerance 1e-8.

    The FFT reference-medium preconditioner makes the condition number independent of the grid, so the
    count at 4x the cells (2D 64^2 -> 128^2; 3D 24^3 -> 36^3, 3.4x) is at most 1.5x the count at the
    base grid (measured: 2D 67 and 51 at both 64^2 and 128^2; 3D 84 and 55 at 24^3, and 86 and 58 at 32^3, the
    slow case's base grid);
    without it (a diagonal preconditioner) CG needs ~2x per halving of h.
    """
    counts = {(n, ndim, stiff): contrast_iterations(n, ndim, 1e3, stiff)
              for ndim, sizes in ((2, (base_2d, fine_2d)), (3, (base_3d, fine_3d))) for n in sizes
              for stiff in (True, False)}
    print(counts)
    for stiff in (True, False):
        assert counts[fine_2d, 2, stiff] <= 1.5 * counts[base_2d, 2, stiff], counts
        assert counts[fine_3d, 3, stiff] <= 1.5 * counts[base_3d, 3, stiff], counts


@pytest.mark.parametrize("base_2d, fine_2d, base_3d, fine_3d", RESOLUTIONS)
def test_converges_at_contrast_1e6(base_2d, fine_2d, base_3d, fine_3d):
    """Contrast 1e6 (near-voids or near-rigid particles) still converges to the tolerance (checked on the
    recomputed residual, before the 2000-iteration cap), in 2D with a count independent of the grid
    (128^2 at most 1.5x 64^2; measured 2D 90 and 52 at 64^2, 91 and 52 at 128^2, harmonic shear mean 162
    at 128^2; 3D, run at the fine grid only (36^3; 48^3 slow): 116 and 55 at 24^3, 119 and 61 at 32^3)."""
    counts = {"2d stiff": contrast_iterations(fine_2d, 2, 1e6, True),
              "2d soft": contrast_iterations(fine_2d, 2, 1e6, False),
              "3d stiff": contrast_iterations(fine_3d, 3, 1e6, True),
              "3d soft": contrast_iterations(fine_3d, 3, 1e6, False),
              "2d stiff harmonic": contrast_iterations(fine_2d, 2, 1e6, True, "harmonic")}
    base = {"2d stiff": contrast_iterations(base_2d, 2, 1e6, True),
            "2d soft": contrast_iterations(base_2d, 2, 1e6, False)}
    print(counts, base)
    assert max(counts.values()) < 2000, counts
    for case, count in base.items():
        assert counts[case] <= 1.5 * count, (counts, base)


def test_kirsch_hole_under_uniaxial_stress():
    """Circular hole (E floored at 1e-6) under mean sigma_xx = s: physics.md 7.9 near the hole.

    512^2, radius L/16 (32 cells). sigma_tt at theta = 90 deg (= sigma_xx on the y axis) and at
    theta = 0 (= sigma_yy on the x axis), at r ~ 1.27a, 1.52a, 2.02a, against Kirsch with the
    remote stress s / (1 - f) that the matrix carries (f = 1.2 % hole fraction): measured within
    0.010 s (1.926 vs 1.920 at 1.27a, 90 deg), against a peak of 3 s at the hole.
    """
    grid = Grid((512, 512), 1.0 / 512)
    offsets, r, radius = centred(grid, 1.0 / 16)
    hole = r < radius
    lam, mu = isotropic_moduli(np.where(hole, 1e-6, 1.0), 0.3)
    mean_stress = {"xx": 1.0, "yy": 0.0, "xy": 0.0}
    result = solver(grid)(lam, mu, jnp.zeros(grid.shape), mean_stress)
    assert float(result.residual) <= 2e-8
    sxx, syy = np.asarray(result.stress["xx"]), np.asarray(result.stress["yy"])
    remote = 1.0 / (1.0 - np.mean(hole))  # the matrix carries the mean stress of the whole cell
    mid = 256  # cells 255 and 256 straddle the centre line
    for ratio in (1.25, 1.5, 2.0):
        j = mid + int(ratio * 32)
        rho = (j + 0.5 - mid) / 32  # r / a at that cell centre
        at_90 = 0.5 * (sxx[mid - 1, j] + sxx[mid, j])
        at_0 = 0.5 * (syy[j, mid - 1] + syy[j, mid])
        print(rho, at_90, remote * 0.5 * (2 + rho**-2 + 3 * rho**-4), at_0, remote * 0.5 * (rho**-2 - 3 * rho**-4))
        assert abs(at_90 - remote * 0.5 * (2 + rho**-2 + 3 * rho**-4)) < 0.015, (rho, at_90)
        assert abs(at_0 - remote * 0.5 * (rho**-2 - 3 * rho**-4)) < 0.015, (rho, at_0)


def test_warm_start():
    grid = Grid((128, 128), 1.0 / 128)
    inside = particles(grid)
    lam, mu = isotropic_moduli(np.where(inside, 80.0, 22.0), 0.25)
    mean_stress = {"xx": -0.01, "yy": 0.0, "xy": 0.0}
    solve = solver(grid)
    eigen = jnp.asarray(np.where(inside, EIGENSTRAIN, 0.0))
    cold = solve(lam, mu, eigen, mean_stress)
    again = solve(lam, mu, eigen, mean_stress, None, cold)
    assert int(again.iterations) <= 1 and float(again.residual) <= 1e-8
    scale = float(jnp.max(jnp.abs(cold.stress["xx"])))
    assert float(jnp.max(jnp.abs(again.stress["xx"] - cold.stress["xx"]))) < 1e-8 * scale
    # A step of a swelling simulation: the eigenstrain grows by 0.1 %.
    # The warm start needs the iterations that the convergence rate of a fresh solve predicts for its smaller
    # initial residual, log(r0/tol) / log(1/rate) (+1 for rounding), and converges to the fresh solution.
    warm = solve(lam, mu, 1.001 * eigen, mean_stress, None, cold)
    fresh = solve(lam, mu, 1.001 * eigen, mean_stress)
    probe = solver(grid, 1e-8, 0)  # the relative residual of the start itself
    r0_warm = float(probe(lam, mu, 1.001 * eigen, mean_stress, None, cold).residual)
    r0_fresh = float(probe(lam, mu, 1.001 * eigen, mean_stress).residual)
    predicted = np.log(r0_warm / 1e-8) / (np.log(r0_fresh / 1e-8) / int(fresh.iterations))
    print("cold", int(cold.iterations), "warm", int(warm.iterations), "fresh", int(fresh.iterations), "predicted", predicted)
    assert float(warm.residual) <= 1e-8
    assert 0 < int(warm.iterations) < int(fresh.iterations)
    assert int(warm.iterations) <= np.ceil(predicted) + 1, (int(warm.iterations), predicted)
    print("difference", float(jnp.max(jnp.abs(warm.stress["xx"] - fresh.stress["xx"]))) / scale)
    assert float(jnp.max(jnp.abs(warm.stress["xx"] - fresh.stress["xx"]))) < 1e-6 * scale


def test_zero_load_gives_zero_stress():
    grid = Grid((128, 128), 1.0 / 128)
    lam, mu = isotropic_moduli(np.linspace(1.0, 5.0, grid.size).reshape(grid.shape), 0.3)
    for mean_stress, mean_strain in ((FREE[2], None), ({"xx": 0.0, "xy": 0.0}, {"yy": 0.0})):
        result = solver(grid)(lam, mu, jnp.zeros(grid.shape), mean_stress, mean_strain)
        assert int(result.iterations) == 0 and float(result.residual) == 0.0
        assert all(float(jnp.max(jnp.abs(v))) == 0.0 for v in result.stress.values())
        assert float(jnp.max(jnp.abs(result.displacement))) == 0.0


def test_jit_scan_and_vmap():
    """A pressure ramp in ``lax.scan`` (warm-started carry) matches independent solves; ``vmap`` over
    eigenstrain amplitudes is linear."""
    grid = Grid((48, 40), 0.5)
    inside = particles(Grid((48, 40), 1.0 / 48))
    lam, mu = isotropic_moduli(np.where(inside, 50.0, 20.0), 0.3)
    lam, mu = jnp.asarray(lam), jnp.asarray(mu)
    eigen = jnp.asarray(np.where(inside, 2e-3, 0.0))

    def solve(pressure, initial):
        return solve_elasticity(lam, mu, grid, eigen, None, {"xx": -pressure, "yy": 0.0, "xy": 0.0}, initial, 1e-10)

    pressures = jnp.linspace(0.0, 0.05, 4)
    alone = jax.jit(solve)
    first = alone(pressures[0], None)

    @jax.jit
    def ramp(pressures):
        def body(carry, pressure):
            result = solve(pressure, carry)
            return result, (result.mean_strain["xx"], result.iterations)
        return jax.lax.scan(body, first, pressures)

    _, (strains, iterations) = ramp(pressures)
    for k, pressure in enumerate(np.asarray(pressures)):
        assert float(strains[k]) == pytest.approx(float(alone(pressure, None).mean_strain["xx"]), rel=1e-8)
    assert int(iterations[0]) <= 1

    batch = jax.jit(jax.vmap(lambda amplitude: solve_elasticity(lam, mu, grid, amplitude * eigen, tolerance=1e-10).stress))
    stresses = batch(jnp.array([1.0, 2.0, -0.5]))
    for k, factor in enumerate((2.0, -0.5)):
        assert np.allclose(stresses["xx"][k + 1], factor * stresses["xx"][0], rtol=0, atol=1e-8 * float(jnp.max(jnp.abs(stresses["xx"][0]))))


def test_float32_matches_float64():
    grid = Grid((128, 128), 1.0 / 128)
    inside = particles(grid)
    lam, mu = isotropic_moduli(np.where(inside, 80.0, 22.0), 0.25)
    eigen = np.where(inside, EIGENSTRAIN, 0.0)
    mean_stress = {"xx": -0.014, "yy": 0.0, "xy": 0.0}
    double = solver(grid, 1e-10)(lam, mu, eigen, mean_stress)
    single = solver(grid, np.float32(1e-5))(np.float32(lam), np.float32(mu), np.float32(eigen), mean_stress)
    assert single.stress["xx"].dtype == jnp.float32 and single.displacement.dtype == jnp.float32
    assert float(single.residual) <= 1.5e-5
    scale = float(jnp.max(jnp.abs(double.stress["xx"])))
    for c in ("xx", "yy", "zz", "xy"):
        assert float(jnp.max(jnp.abs(single.stress[c] - double.stress[c]))) < 1e-4 * scale


def test_invalid_input_raises():
    grid = Grid((8, 8), 1.0)
    lam, mu = np.ones((8, 8)), np.ones((8, 8))
    with pytest.raises(ValueError, match="mu > 0"):
        solve_elasticity(lam, -mu, grid)
    with pytest.raises(ValueError, match="bulk modulus"):
        solve_elasticity(-2.0 * lam, mu, grid)
    with pytest.raises(ValueError, match="finite"):
        solve_elasticity(lam, np.where(np.eye(8) > 0, np.nan, 1.0), grid)
    with pytest.raises(ValueError, match="shape"):
        solve_elasticity(np.ones((8, 7)), np.ones((8, 7)), grid)
    with pytest.raises(ValueError, match="eigenstrain xx has shape"):
        solve_elasticity(lam, mu, grid, np.ones((4, 8)))
    with pytest.raises(ValueError, match="unknown eigenstrain components"):
        solve_elasticity(lam, mu, grid, {"yz": np.ones((8, 8))})
    with pytest.raises(ValueError, match="both as mean strain and as mean stress"):
        solve_elasticity(lam, mu, grid, mean_strain={"xx": 0.01}, mean_stress={"xx": -1.0})
    with pytest.raises(ValueError, match="plane strain keeps"):
        solve_elasticity(lam, mu, grid, mean_stress={"zz": -1.0})
    with pytest.raises(ValueError, match="shear_mean"):
        solve_elasticity(lam, mu, grid, shear_mean="geometric")
    with pytest.raises(ValueError, match="2D or 3D"):
        solve_elasticity(np.ones(8), np.ones(8), Grid((8,), 1.0))
    previous = Elasticity(np.zeros((1, 8, 8)), {"xx": 0.0, "yy": 0.0, "xy": 0.0}, {}, {}, {}, 0, 0.0)
    with pytest.raises(ValueError, match="initial displacement"):
        solve_elasticity(lam, mu, grid, initial=previous)


def test_stress_measures_and_moduli_helpers():
    lam, mu = isotropic_moduli(200.0, 0.3)
    assert float(mu) == pytest.approx(200.0 / 2.6)
    assert float(lam + 2 * mu / 3) == pytest.approx(200.0 / (3 * 0.4))
    uniaxial = {"xx": jnp.array(3.0), "yy": jnp.array(0.0), "zz": jnp.array(0.0), "xy": jnp.array(0.0)}
    assert float(von_mises_stress(uniaxial)) == pytest.approx(3.0)
    assert float(hydrostatic_stress(uniaxial)) == pytest.approx(1.0)
    shear = {"xx": 0.0, "yy": 0.0, "zz": 0.0, "yz": 0.0, "xz": 0.0, "xy": jnp.array(2.0)}
    assert float(von_mises_stress(shear)) == pytest.approx(2.0 * np.sqrt(3.0))
    pressure = {"xx": -5.0, "yy": -5.0, "zz": -5.0, "xy": 0.0}
    assert float(von_mises_stress(pressure)) == 0.0 and float(hydrostatic_stress(pressure)) == -5.0
    # n.sigma.n: the uniaxial stress seen along x, across it, and at 60 degrees (3 cos^2 60 = 0.75); shear at 45
    assert float(normal_stress(uniaxial, [1.0, 0.0])) == 3.0 and float(normal_stress(uniaxial, [0.0, -1.0])) == 0.0
    assert float(normal_stress(uniaxial, [0.5, np.sqrt(0.75)])) == pytest.approx(0.75)
    assert float(normal_stress(shear, [np.sqrt(0.5), np.sqrt(0.5), 0.0])) == pytest.approx(2.0)
    strain = {"xx": 1e-3, "yy": -2e-3, "zz": 0.5e-3, "yz": 0.2e-3, "xz": 0.0, "xy": 0.7e-3}
    sigma = stress_from_strain(lam, mu, strain)
    work = sum((1 if k[0] == k[1] else 2) * sigma[k] * strain[k] for k in strain)
    assert float(elastic_energy_density(lam, mu, strain)) == pytest.approx(0.5 * float(work))
