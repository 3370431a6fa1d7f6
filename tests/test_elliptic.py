"""Variable-coefficient elliptic solver: order, exactness against the stencil, contrast robustness, jit/vmap."""
import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax.ad_checkpoint import print_saved_residuals

from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import face_average, flux_divergence, solve_potential
from phasefield.operators.elliptic import apply_operator

ELECTROLYTE = 1.19  # S/m
WALL = -0.45  # V on the low x wall (the lithium electrode), 0 V on the high one


def electrode_boundary(ndim, low=WALL, high=0.0):
    """Dirichlet on the axis-0 walls, no-flux on every other wall."""
    sides = [(Side("dirichlet", low), Side("dirichlet", high))] + [(Side("neumann"), Side("neumann"))] * (ndim - 1)
    return Boundary(tuple(sides))


def solver(grid, boundary):
    """``solve_potential`` jitted for one grid and boundary; tolerance and max_iterations traced."""
    return jax.jit(lambda sigma, source, start, tolerance=1e-8, max_iterations=100: solve_potential(
        sigma, source, grid, boundary, start, tolerance, max_iterations))


@partial(jax.jit, static_argnums=(2, 3))
def stencil_parts(sigma, phi, grid, boundary):
    """The harmonic face means of ``sigma`` per axis and ``div(sigma grad phi)`` (jitted: one compile per grid and
    boundary, not one per operation)."""
    return [face_average(sigma, boundary, a) for a in range(grid.ndim)], flux_divergence(sigma, phi, grid, boundary)


def scaled_residual(sigma, phi, source, grid, boundary):
    """``max |V (div(sigma grad phi) - s) / A_ii|`` from the stencil, over ``max(|walls|, |phi|)``.

    ``A_ii`` is built independently from the harmonic face means: ``k A / h`` per interior
    face, ``2 k A / h`` on a Dirichlet wall, nothing on a no-flux wall.
    """
    faces, divergence = stencil_parts(jnp.asarray(sigma), jnp.asarray(phi), grid, boundary)
    diag = np.zeros(grid.shape)
    for axis, h in enumerate(grid.spacing):
        k = np.array(faces[axis]) * grid.cell_volume / h**2
        k = np.moveaxis(k, axis, 0)
        for index, side in ((0, boundary.sides[axis][0]), (-1, boundary.sides[axis][1])):
            k[index] *= 2.0 if side.kind == "dirichlet" else 0.0
        diag += np.moveaxis(k[:-1] + k[1:], 0, axis)
    residual = grid.cell_volume * (np.asarray(divergence) - source)
    scale = max(max(abs(s.value) for sides in boundary.sides for s in sides), float(np.max(np.abs(phi))))
    return np.max(np.abs(residual / diag)) / scale


def segment_distance(x, y, start, end):
    (px, py), (qx, qy) = start, end
    dx, dy = qx - px, qy - py
    t = np.clip(((x - px) * dx + (y - py) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(x - px - t * dx, y - py - t * dy)


def dendrite(shape, contrast, interface=0.0):
    """Lithium slab on the x = 0 electrode with a branched finger ending in a disc.

    ``h`` is a tanh phase field over ~1.5 cells; ``sigma = sigma_s h + sigma_l (1 - h)``
    with ``sigma_s = contrast * sigma_l``. ``interface`` shifts the metal surface (length).
    """
    nx, ny = shape
    grid = Grid(shape, (1.0 / nx, (ny / nx) / ny))
    x, y = np.broadcast_arrays(*grid.coordinates())
    mid, top = 0.5 * grid.lengths[1], grid.lengths[1]
    distance = x - 0.1
    distance = np.minimum(distance, segment_distance(x, y, (0.1, mid), (0.55, mid)) - 0.02)
    for start, end in (((0.3, mid), (0.45, 0.8 * top)), ((0.4, mid), (0.5, 0.25 * top)), ((0.45, 0.8 * top), (0.6, 0.85 * top))):
        distance = np.minimum(distance, segment_distance(x, y, start, end) - 0.012)
    distance = np.minimum(distance, np.hypot(x - 0.62, y - mid) - 0.08) - interface
    h = 0.5 * (1.0 - np.tanh(distance / (0.75 * grid.spacing[0])))
    return grid, contrast * ELECTROLYTE * h + ELECTROLYTE * (1.0 - h)


def manufactured(grid, low, high):
    """``u`` constant on the axis-0 walls, no-flux on the others; ``sigma = 1 + 0.5 sin cos``; ``s = div(sigma grad u)``."""
    coords = np.broadcast_arrays(*grid.coordinates())
    lengths, ndim = grid.lengths, grid.ndim
    w = [np.pi / length for length in lengths]
    cos = [np.cos(w[a] * coords[a]) for a in range(ndim)]
    sin = [np.sin(w[a] * coords[a]) for a in range(ndim)]
    across = np.prod(cos[1:], axis=0) if ndim > 1 else np.ones(grid.shape)
    c = 0.3
    u = low + (high - low) * coords[0] / lengths[0] + c * sin[0] * across
    grad = [(high - low) / lengths[0] + c * w[0] * cos[0] * across]
    for a in range(1, ndim):
        others = np.prod([cos[b] for b in range(1, ndim) if b != a], axis=0) if ndim > 2 else 1.0
        grad.append(-c * w[a] * sin[0] * sin[a] * others)
    lap = -c * sum(wa**2 for wa in w) * sin[0] * across
    wiggle = np.prod([np.cos(coords[a]) for a in range(1, ndim)], axis=0) if ndim > 1 else 1.0
    sigma = 1.0 + 0.5 * np.sin(2.0 * coords[0] + 1.0) * wiggle
    dsigma = [np.cos(2.0 * coords[0] + 1.0) * wiggle]
    for a in range(1, ndim):
        others = np.prod([np.cos(coords[b]) for b in range(1, ndim) if b != a], axis=0) if ndim > 2 else 1.0
        dsigma.append(-0.5 * np.sin(2.0 * coords[0] + 1.0) * np.sin(coords[a]) * others)
    source = sigma * lap + sum(ds * g for ds, g in zip(dsigma, grad))
    return u, sigma, source


@pytest.mark.parametrize(
    "shapes,lengths",
    [
        ([(13, 9), (26, 18), (52, 36)], (2.0, 1.5)),
        ([(9, 7, 5), (18, 14, 10), (36, 28, 20)], (2.0, 1.5, 1.0)),
    ],
)
def test_second_order_manufactured_solution(shapes, lengths):
    """Error against the analytic u at second order; the multigrid-CG count does not grow with the grid
    (16x / 64x the cells: at most 1.5x the count; Jacobi-preconditioned CG needs ~2x per halving of h, 4x here)."""
    errors, counts = [], []
    for shape in shapes:
        grid = Grid(shape, tuple(length / n for length, n in zip(lengths, shape)))
        u, sigma, source = manufactured(grid, WALL, 0.2)
        boundary = electrode_boundary(grid.ndim, WALL, 0.2)
        phi, iterations, residual = solver(grid, boundary)(jnp.asarray(sigma), jnp.asarray(source), jnp.zeros(shape), 1e-11)
        assert float(residual) <= 1e-11
        errors.append(np.max(np.abs(np.asarray(phi) - u)))
        counts.append(int(iterations))
    print(errors, np.log2(errors[-2] / errors[-1]), counts)
    assert np.log2(errors[-2] / errors[-1]) > 1.8, errors
    assert counts[-1] <= 1.5 * counts[0], counts


@pytest.mark.parametrize("shape", [(25, 15), (24, 16), (9, 11, 7), (40,)])
def test_operator_is_the_flux_divergence_stencil(shape):
    """``A phi = -V flux_divergence(sigma, phi)`` on homogeneous walls, whatever the walls' kinds."""
    rng = np.random.default_rng(0)
    grid = Grid(shape, (0.3, 0.7, 0.5)[: len(shape)])
    sides = [(Side("dirichlet", 1.0), Side("neumann"))] + [(Side("neumann"), Side("dirichlet"))] * (len(shape) - 1)
    boundary = Boundary(tuple(sides))
    homogeneous = Boundary(tuple((Side(low.kind), Side(high.kind)) for low, high in sides))
    sigma = jnp.asarray(np.exp(3.0 * rng.normal(size=shape)))
    phi = jnp.asarray(rng.normal(size=shape))
    both = jax.jit(lambda sigma, phi: (
        apply_operator(sigma, phi, grid, boundary), -grid.cell_volume * flux_divergence(sigma, phi, grid, homogeneous)))
    operator, expected = both(sigma, phi)
    assert np.max(np.abs(operator - expected)) < 1e-13 * np.max(np.abs(expected))


@pytest.mark.parametrize("shape", [(24, 16), (9, 11, 7)])
def test_operator_derivative_keeps_only_the_cell_fields(shape, capsys):
    """Reverse mode through ``A(sigma) phi`` gives the stencil's cotangents (in ``sigma`` and ``phi``) and
    saves nothing but ``sigma`` and ``phi``: the face conductances are rebuilt, not stored."""
    rng = np.random.default_rng(3)
    grid = Grid(shape, (0.3, 0.7, 0.5)[: len(shape)])
    sides = [(Side("dirichlet"), Side("neumann"))] + [(Side("neumann"), Side("dirichlet"))] * (len(shape) - 1)
    boundary = Boundary(tuple(sides))
    sigma = jnp.asarray(np.exp(3.0 * rng.normal(size=shape)))
    phi = jnp.asarray(rng.normal(size=shape))
    weights = jnp.asarray(rng.normal(size=shape))

    def operator(sigma, phi):
        return jnp.sum(weights * apply_operator(sigma, phi, grid, boundary))

    def stencil(sigma, phi):
        return jnp.sum(weights * -grid.cell_volume * flux_divergence(sigma, phi, grid, boundary))

    got = jax.jit(jax.grad(operator, argnums=(0, 1)))(sigma, phi)  # jitted: one compile, not one per operation
    expected = jax.jit(jax.grad(stencil, argnums=(0, 1)))(sigma, phi)
    for g, e in zip(got, expected):
        assert np.max(np.abs(g - e)) < 1e-12 * np.max(np.abs(e))
    capsys.readouterr()
    print_saved_residuals(operator, sigma, phi)  # one line per residual: "f64[24,16] from ..."
    saved = [line for line in capsys.readouterr().out.splitlines() if "from a constant" not in line]  # weights
    sizes = [np.prod([int(n) for n in re.match(r"\w+\[([\d,]*)\]", line).group(1).split(",") if n]) for line in saved]
    assert sum(sizes) <= 2 * sigma.size, saved


@pytest.mark.parametrize("shape", [(25, 15), (75, 33), (11, 9, 6)])
def test_solution_satisfies_the_stencil_equation(shape):
    """Random rough sigma (contrast ~1e5), random source, inhomogeneous walls; odd sizes coarsen with lone cells."""
    rng = np.random.default_rng(1)
    grid = Grid(shape, (0.3, 0.7, 0.5)[: len(shape)])
    boundary = electrode_boundary(len(shape))
    sigma = np.exp(2.0 * rng.normal(size=shape))
    source = rng.normal(size=shape)
    solve = solver(grid, boundary)
    for tolerance in (1e-6, 1e-10):
        phi, iterations, residual = solve(jnp.asarray(sigma), jnp.asarray(source), jnp.zeros(shape), tolerance)
        assert iterations.dtype == jnp.int32 and 0 < int(iterations) < 100  # stopped by the tolerance, not the cap
        assert float(residual) <= tolerance
        assert scaled_residual(sigma, phi, source, grid, boundary) <= 1.001 * tolerance
    if grid.size > 1000:
        return
    homogeneous = electrode_boundary(len(shape), 0.0, 0.0)
    dense = jax.jit(jax.vmap(lambda e: flux_divergence(jnp.asarray(sigma), e.reshape(shape), grid, homogeneous).ravel()))
    matrix = np.asarray(dense(jnp.eye(grid.size))).T
    affine = np.asarray(stencil_parts(jnp.asarray(sigma), jnp.zeros(shape), grid, boundary)[1]).ravel()
    direct = np.linalg.solve(matrix, source.ravel() - affine).reshape(shape)
    assert np.max(np.abs(np.asarray(phi) - direct)) < 1e-7 * np.max(np.abs(direct))


def dendrite_counts(shape):
    """CG iterations for the dendrite at contrasts 1e3, 1e5, 1e7 from a zero and a linear start (tolerance 1e-8),
    each solution checked against the stencil equation independently of the solver's own residual."""
    boundary = electrode_boundary(2)
    grid, _ = dendrite(shape, 1.0)
    solve = solver(grid, boundary)
    counts = {}
    for contrast in (1e3, 1e5, 1e7):
        _, sigma = dendrite(shape, contrast)
        x = grid.coordinates()[0] + 0 * grid.coordinates()[1]
        for name, start in (("zero", np.zeros(shape)), ("linear", WALL * (1.0 - x / grid.lengths[0]))):
            phi, iterations, residual = solve(jnp.asarray(sigma), jnp.zeros(shape), jnp.asarray(start))
            assert float(residual) <= 1e-8
            assert scaled_residual(sigma, phi, np.zeros(shape), grid, boundary) <= 1.001e-8
            counts[contrast, name] = int(iterations)
    return counts


def test_iterations_independent_of_grid_and_contrast():
    """Metal slab + branched finger + disc on the electrode, same geometry on 64x48 and 128x96 cells.

    Multigrid-preconditioned CG is optimal: the count at 4x the cells is at most 1.5x the count at the base
    grid (Jacobi-preconditioned CG needs ~2x per halving of h, as cond ~ h^-2: 2.1x here), and the count at
    contrast 1e7 is at most 1.5x the count at 1e3 (plain CG does not reach 1e-8 at all at 1e3).
    """
    base, fine = dendrite_counts((64, 48)), dendrite_counts((128, 96))
    print(base, fine)
    for key in base:
        assert fine[key] <= 1.5 * base[key], (key, base, fine)
    for counts in (base, fine):
        for name in ("zero", "linear"):
            assert counts[1e7, name] <= 1.5 * counts[1e3, name], counts


def test_warm_start():
    """From its own solution a solve takes 0 iterations. After a small change (the metal surface moves by 1 %
    of a cell, a small reaction source appears) the warm start needs the iterations that the convergence rate
    of a fresh solve of the same problem predicts for its smaller initial residual, log(r0/tol) / log(1/rate)
    (+1 for rounding), and it converges to the fresh solution."""
    shape = (64, 48)
    boundary = electrode_boundary(2)
    grid, sigma = dendrite(shape, 1e6)
    source = np.zeros(shape)
    solve = solver(grid, boundary)
    phi, cold, _ = solve(jnp.asarray(sigma), jnp.asarray(source), jnp.zeros(shape))
    again, iterations, residual = solve(jnp.asarray(sigma), jnp.asarray(source), phi)
    assert int(iterations) == 0 and float(residual) <= 1e-8
    assert np.array_equal(np.asarray(again), np.asarray(phi))
    _, moved = dendrite(shape, 1e6, interface=0.01 * grid.spacing[0])
    reaction = 1e-3 * np.exp(-((np.arange(64)[:, None] - 40.0) ** 2 + (np.arange(48)[None, :] - 24.0) ** 2) / 20.0)
    moved, reaction = jnp.asarray(moved), jnp.asarray(reaction)
    phi2, warm, residual = solve(moved, reaction, phi)
    fresh_phi, fresh, _ = solve(moved, reaction, jnp.zeros(shape))
    assert float(residual) <= 1e-8
    assert scaled_residual(np.asarray(moved), phi2, np.asarray(reaction), grid, boundary) <= 1.001e-8
    assert np.max(np.abs(np.asarray(phi2) - np.asarray(fresh_phi))) < 1e-6 * abs(WALL)
    r0_warm, r0_fresh = (scaled_residual(np.asarray(moved), start, np.asarray(reaction), grid, boundary)
                         for start in (np.asarray(phi), np.zeros(shape)))  # the stopping measure at the start
    rate = np.log(r0_fresh / 1e-8) / int(fresh)  # log(1/contraction) per iteration
    predicted = np.log(r0_warm / 1e-8) / rate
    print("cold", int(cold), "warm", int(warm), "fresh", int(fresh), "predicted", predicted)
    assert 0 < int(warm) < int(fresh)
    assert int(warm) <= np.ceil(predicted) + 1, (int(warm), predicted)


def test_jit_vmap_and_outer_loop():
    shape = (40, 30)
    boundary = electrode_boundary(2)
    fields = []
    for contrast in (1e2, 1e4, 1e6):
        grid, sigma = dendrite(shape, contrast)
        fields.append(sigma)
    batch = jnp.asarray(np.stack(fields))
    source = jnp.zeros(shape)

    def solve(sigma, start):
        return solve_potential(sigma, source, grid, boundary, start, 1e-9, 50)

    phis, iterations, residuals = jax.jit(jax.vmap(solve))(batch, jnp.zeros((3,) + shape))
    assert iterations.shape == (3,) and np.all(np.asarray(residuals) <= 1e-9)
    single_solve = jax.jit(solve)
    for member in range(3):
        single, count, _ = single_solve(batch[member], jnp.zeros(shape))
        assert int(iterations[member]) == int(count)
        assert np.max(np.abs(np.asarray(phis[member]) - np.asarray(single))) < 1e-12

    # Inside an outer while loop (a time loop), warm-started from the previous potential.
    def body(carry):
        step, phi, total = carry
        sigma = batch[2] * (1.0 + 0.01 * step)
        phi, count, _ = solve(sigma, phi)
        return step + 1, phi, total + count

    steps, phi, total = jax.jit(lambda: jax.lax.while_loop(lambda c: c[0] < 3, body, (0, jnp.zeros(shape), jnp.int32(0))))()
    assert int(steps) == 3 and int(total) > 0
    assert scaled_residual(np.asarray(batch[2]) * 1.02, phi, np.zeros(shape), grid, boundary) <= 1e-9


def test_rejects_periodic_and_singular_problems():
    grid = Grid((8, 6), 1.0)
    sigma, zeros = jnp.ones((8, 6)), jnp.zeros((8, 6))
    periodic = Boundary(((Side("dirichlet", 1.0), Side("dirichlet")), (Side("periodic"), Side("periodic"))))
    with pytest.raises(ValueError, match="axis 1.*periodic"):
        solve_potential(sigma, zeros, grid, periodic, zeros)
    with pytest.raises(ValueError, match="no Dirichlet wall"):
        solve_potential(sigma, zeros, grid, Boundary.uniform(2, "neumann"), zeros)


def test_shifted_problem_without_dirichlet_walls():
    """div(sigma grad u) - m u = s with no-flux walls only (an implicit diffusion step), high contrast."""
    from phasefield.operators import flux_divergence

    grid = Grid((40, 30), 0.5)
    boundary = Boundary.uniform(2, "neumann")
    x, y = np.broadcast_arrays(*grid.coordinates())
    sigma = jnp.asarray(np.exp(-0.8 * x) * 1e2 + 1e-3)  # contrast ~1e7, smooth (a Slotboom weight)
    mass = jnp.asarray(0.5 + np.exp(-0.8 * x))
    source = jnp.asarray(np.cos(x) * np.sin(y))
    solve = jax.jit(lambda sigma, source, mass: solve_potential(sigma, source, grid, boundary, jnp.zeros(grid.shape),
                                                                1e-12, 60, shift=mass))  # eager: ~20 s of dispatch
    u, iterations, _ = solve(sigma, source, mass)
    residual = flux_divergence(sigma, u, grid, boundary) - mass * u - source
    assert int(iterations) < 60  # stopped by the tolerance, not the cap
    assert np.max(np.abs(residual)) < 1e-8 * np.max(np.abs(source))
