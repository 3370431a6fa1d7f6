"""Convergence order of every operator under every boundary condition, conservation, spectral symbols."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import SpectralBasis, divergence, face_gradient, flux_divergence, gradient, laplacian

L = 2.0
# the operators compiled whole (grid and boundary static): an eager call compiles one program per operation
LAPLACIAN = jax.jit(laplacian, static_argnums=(1, 2))
GRADIENT = jax.jit(gradient, static_argnums=(1, 2))
FLUX_DIVERGENCE = jax.jit(flux_divergence, static_argnums=(2, 3, 4))


def order(errors, sizes):
    """Observed order from the two finest grids."""
    return np.log(errors[-2] / errors[-1]) / np.log(sizes[-1] / sizes[-2])


def periodic_case(coords):
    """u with period L in every axis; returns (u, grad u, lap u)."""
    k = 2 * np.pi / L
    parts = [np.sin(k * (a + 1) * x + 0.3 * a) for a, x in enumerate(coords)]
    dparts = [k * (a + 1) * np.cos(k * (a + 1) * x + 0.3 * a) for a, x in enumerate(coords)]
    u = np.prod(parts, axis=0)
    grads = [np.prod([dparts[a] if b == a else parts[b] for b in range(len(coords))], axis=0) for a in range(len(coords))]
    lap = -sum((k * (a + 1)) ** 2 for a in range(len(coords))) * u
    return u, grads, lap


def neumann_case(coords):
    """u with zero normal derivative on every wall of [0, L]^d."""
    k = np.pi / L
    parts = [np.cos(k * (a + 1) * x) for a, x in enumerate(coords)]
    dparts = [-k * (a + 1) * np.sin(k * (a + 1) * x) for a, x in enumerate(coords)]
    u = np.prod(parts, axis=0)
    grads = [np.prod([dparts[a] if b == a else parts[b] for b in range(len(coords))], axis=0) for a in range(len(coords))]
    lap = -sum((k * (a + 1)) ** 2 for a in range(len(coords))) * u
    return u, grads, lap


CASES = {"periodic": periodic_case, "neumann": neumann_case}


def grid_of(n, ndim):
    return Grid((n,) * ndim, L / n)


@pytest.mark.parametrize("kind", ["periodic", "neumann"])
@pytest.mark.parametrize("ndim", [2, 3])
def test_laplacian_second_order(kind, ndim):
    sizes, errors = [12, 24, 48] if ndim == 3 else [16, 32, 64], []
    for n in sizes:
        grid = grid_of(n, ndim)
        u, _, lap = CASES[kind](np.broadcast_arrays(*grid.coordinates()))
        errors.append(np.max(np.abs(np.asarray(LAPLACIAN(u, grid, Boundary.uniform(ndim, kind))) - lap)))
    assert order(errors, sizes) > 1.9


@pytest.mark.parametrize("kind", ["periodic", "neumann"])
def test_gradient_second_order(kind):
    sizes, errors = [16, 32, 64], []
    for n in sizes:
        grid = grid_of(n, 2)
        u, grads, _ = CASES[kind](np.broadcast_arrays(*grid.coordinates()))
        numeric = GRADIENT(u, grid, Boundary.uniform(2, kind))
        errors.append(max(np.max(np.abs(np.asarray(g) - e)) for g, e in zip(numeric, grads)))
    assert order(errors, sizes) > 1.9


@pytest.mark.parametrize("kind", ["periodic", "neumann"])
@pytest.mark.parametrize("mean", ["harmonic", "arithmetic"])
def test_flux_divergence_second_order_variable_coefficient(kind, mean):
    """div(k grad u) with smooth k = 2 + sin(x) cos(y) (periodic) or 2 + cos(x)cos(y) (no-flux)."""
    sizes, errors = [16, 32, 64], []
    for n in sizes:
        grid = grid_of(n, 2)
        x, y = np.broadcast_arrays(*grid.coordinates())
        u, (ux, uy), lap = CASES[kind]((x, y))
        w = 2 * np.pi / L if kind == "periodic" else np.pi / L
        if kind == "periodic":
            k, kx, ky = 2 + np.sin(w * x) * np.cos(w * y), w * np.cos(w * x) * np.cos(w * y), -w * np.sin(w * x) * np.sin(w * y)
        else:
            k, kx, ky = 2 + np.cos(w * x) * np.cos(w * y), -w * np.sin(w * x) * np.cos(w * y), -w * np.cos(w * x) * np.sin(w * y)
        exact = k * lap + kx * ux + ky * uy
        numeric = np.asarray(FLUX_DIVERGENCE(k, u, grid, Boundary.uniform(2, kind), mean))
        errors.append(np.max(np.abs(numeric - exact)))
    assert order(errors, sizes) > 1.9


def dense_operator(apply, n):
    """Matrix of a linear operator on a 1D grid: its columns are the images of the unit vectors (one program)."""
    return np.asarray(jax.jit(jax.vmap(apply))(jnp.eye(n))).T


@pytest.mark.parametrize(
    "low,high",
    [("dirichlet", "dirichlet"), ("dirichlet", "neumann"), ("neumann", "dirichlet")],
)
def test_poisson_solution_second_order_per_side(low, high):
    """Solve u'' = f on [0, L] with the boundary kind chosen per side; the solution converges at order 2.

    Exact u = sin(1.3 x) + x^2/2: Dirichlet sides get its wall value, no-flux sides its wall slope
    (a known boundary flux moved to the right-hand side).
    """
    def exact(x):
        return np.sin(1.3 * x) + 0.5 * x**2, 1.3 * np.cos(1.3 * x) + x, -1.69 * np.sin(1.3 * x) + 1.0

    sizes, errors = [16, 32, 64, 128], []
    for n in sizes:
        grid = Grid((n,), L / n)
        x = grid.axis_coordinates(0)
        u, _, f = exact(x)
        values = {"low": exact(np.array(0.0)), "high": exact(np.array(L))}
        sides = []
        for kind, end in ((low, "low"), (high, "high")):
            value, slope, _ = values[end]
            sides.append(Side("dirichlet", float(value)) if kind == "dirichlet" else Side("neumann"))
        boundary = Boundary((tuple(sides),))
        homogeneous = Boundary(((Side(sides[0].kind), Side(sides[1].kind)),))
        # A no-flux wall with a nonzero exact slope: move the known wall flux to the right-hand side.
        rhs = f.copy()
        if low == "neumann":
            rhs[0] += values["low"][1] / grid.spacing[0]
        if high == "neumann":
            rhs[-1] -= values["high"][1] / grid.spacing[0]
        affine = np.asarray(LAPLACIAN(np.zeros(n), grid, boundary))
        matrix = dense_operator(lambda v: laplacian(v, grid, homogeneous), n)
        solution = np.linalg.solve(matrix, rhs - affine)
        errors.append(np.max(np.abs(solution - u)))
    assert order(errors, sizes) > 1.9


def test_dirichlet_laplacian_interior_second_order_and_wall_value():
    """Away from the wall cell the Dirichlet stencil is second order; the ghost puts g on the wall."""
    sizes, errors = [16, 32, 64], []
    for n in sizes:
        grid = Grid((n, n), L / n)
        x, y = np.broadcast_arrays(*grid.coordinates())
        boundary = Boundary(((Side("dirichlet", 0.0), Side("dirichlet", 0.0)), (Side("periodic"), Side("periodic"))))
        u = np.sin(np.pi * x / L) * np.cos(2 * np.pi * y / L)
        lap = -((np.pi / L) ** 2 + (2 * np.pi / L) ** 2) * u
        numeric = np.asarray(LAPLACIAN(u, grid, boundary))
        errors.append(np.max(np.abs(numeric - lap)[1:-1]))
    assert order(errors, sizes) > 1.9
    grid = Grid((8,), 0.25)
    boundary = Boundary(((Side("dirichlet", 3.0), Side("dirichlet", -1.0)),))
    g = np.asarray(jax.jit(face_gradient, static_argnums=(1, 2, 3))(np.arange(8.0), grid, boundary, 0))
    assert np.isclose(0.0 - g[0] * grid.spacing[0] / 2, 3.0)  # u_0 - (h/2) du/dx = wall value
    assert np.isclose(7.0 + g[-1] * grid.spacing[0] / 2, -1.0)


@pytest.mark.parametrize("kind", ["periodic", "neumann"])
def test_flux_divergence_conserves_to_round_off(kind):
    rng = np.random.default_rng(1)
    grid = Grid((24, 20, 12), (0.5, 1.0, 2.0))
    k = np.exp(rng.normal(size=grid.shape) * 3)  # contrast ~ 1e4
    u = rng.normal(size=grid.shape)
    total, scale = jax.jit(lambda k, u: (jnp.sum(flux_divergence(k, u, grid, Boundary.uniform(3, kind))),
                                         jnp.sum(jnp.abs(flux_divergence(k, u, grid, Boundary.uniform(3, kind))))))(k, u)
    assert abs(float(total)) < 1e-13 * float(scale)


def test_divergence_of_wall_flux_is_boundary_flux():
    """With Dirichlet walls the integral of div F equals the flux through the walls (Gauss)."""
    grid = Grid((10, 6), (0.3, 0.5))
    boundary = Boundary(((Side("dirichlet", 2.0), Side("dirichlet", -1.0)), (Side("neumann"), Side("neumann"))))
    u = np.random.default_rng(2).normal(size=grid.shape)
    fluxes = jax.jit(lambda u: [face_gradient(u, grid, boundary, a) for a in range(2)])(u)
    total = float(jax.jit(divergence, static_argnums=1)(fluxes, grid).sum()) * grid.cell_volume
    wall = float(np.sum(fluxes[0][-1]) - np.sum(fluxes[0][0])) * grid.spacing[1]
    assert np.isclose(total, wall, rtol=1e-13, atol=1e-13)


KIND_SETS = list(itertools.product(["periodic", "neumann", "dirichlet"], repeat=2)) + [("neumann", "dirichlet", "periodic")]


@pytest.mark.parametrize("kinds", KIND_SETS)
def test_spectral_symbol_is_stencil_laplacian(kinds):
    """T^-1 (symbol * T u) equals the stencil Laplacian to round-off, for FFT, DCT and DST axes."""
    grid = Grid((8, 6, 5)[: len(kinds)], (1.0, 0.5, 2.0)[: len(kinds)])
    boundary = Boundary.per_axis(kinds)
    u = np.random.default_rng(3).normal(size=grid.shape)
    basis = SpectralBasis(grid, boundary)
    round_trip, spectral, stencil = jax.jit(lambda u: (basis.inverse(basis.forward(u)),
                                                       basis.inverse(basis.laplacian_symbol * basis.forward(u)),
                                                       laplacian(u, grid, boundary)))(u)
    assert np.allclose(round_trip, u, atol=1e-13)
    assert np.max(np.abs(np.asarray(spectral) - np.asarray(stencil))) < 1e-12


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_inverse_dct_is_jax_one_bit_for_bit(dtype):
    """The scatter-free inverse DCT equals ``jax.scipy.fft.idct`` (type 2, ortho) bit for bit, odd and even
    lengths, every axis; and its transpose is the forward DCT (orthonormal)."""
    from jax.scipy.fft import dct as jax_dct, idct as jax_idct
    from phasefield.operators.spectral import idct
    rng = np.random.default_rng(5)
    for shape in ((7, 6, 5), (1, 2, 3)):  # lengths 1 and 2 too (an empty odd half at 1)
        x = rng.normal(size=shape) + (1j * rng.normal(size=shape) if dtype == np.complex128 else 0.0)
        x = jnp.asarray(x, dtype)
        for axis in range(3):
            assert np.array_equal(jax.jit(idct, static_argnums=1)(x, axis),
                                  jax.jit(lambda u: jax_idct(u, type=2, axis=axis, norm="ortho"))(x))
    if dtype == np.float64:
        cotangent = jnp.asarray(rng.normal(size=x.shape))
        pulled = jax.vjp(lambda u: idct(u, 1), x)[1](cotangent)[0]
        assert np.allclose(pulled, jax_dct(cotangent, type=2, axis=1, norm="ortho"), atol=1e-14)


def test_spectral_rejects_inhomogeneous_or_mixed_walls():
    grid = Grid((8, 8), 1.0)
    with pytest.raises(ValueError, match="no fast transform"):
        SpectralBasis(grid, Boundary(((Side("dirichlet", 1.0), Side("dirichlet", 0.0)), (Side("neumann"), Side("neumann")))))
    with pytest.raises(ValueError, match="no fast transform"):
        SpectralBasis(grid, Boundary(((Side("neumann"), Side("dirichlet")), (Side("neumann"), Side("neumann")))))


def test_periodic_on_one_side_only_is_rejected():
    with pytest.raises(ValueError, match="periodic on one side only"):
        Boundary(((Side("periodic"), Side("neumann")),))


@pytest.mark.parametrize("value", [np.float64(0.3), jnp.asarray(0.3, jnp.float64), 0.3])
def test_a_dirichlet_ghost_keeps_a_float32_field_float32(value):
    """``2 g - u_0`` with a float64 wall value ``g`` (numpy scalar or array; a Python float is weakly typed) gives
    a float32 face gradient of a float32 field, equal to the float64 one to float32 round-off."""
    grid = Grid((8, 4), 0.5)
    u = np.random.default_rng(1).random(grid.shape)
    boundary = Boundary(((Side("dirichlet", value), Side("neumann")), (Side("neumann"), Side("neumann"))))
    single = face_gradient(jnp.asarray(u, jnp.float32), grid, boundary, 0)
    assert single.dtype == jnp.float32
    np.testing.assert_allclose(single, face_gradient(jnp.asarray(u), grid, boundary, 0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kinds", KIND_SETS)
def test_cell_shaped_stencils_equal_the_face_array_forms(kinds):
    """``neighbours`` are ``pad_axis``'s ghosts (periodic wrap, mirrored no-flux cell, ``2 g - u_0`` on a Dirichlet
    wall), so the Laplacian, the flux divergence (harmonic and arithmetic face means) and the centred gradient in the
    field's shape equal the divergence of the face arrays, and ``wall_flux`` their high wall's faces, bit for bit
    when run eagerly (float32 stays float32)."""
    from phasefield.operators.stencils import face_average, neighbours, pad_axis, wall_flux

    sides = {"periodic": (Side("periodic"), Side("periodic")), "neumann": (Side("neumann"), Side("neumann")),
             "dirichlet": (Side("dirichlet", np.float64(0.7)), Side("dirichlet", -1.3))}
    grid = Grid((8, 6, 5)[: len(kinds)], (0.3, 0.5, 2.0)[: len(kinds)])
    boundary = Boundary(tuple(sides[k] for k in kinds))
    rng = np.random.default_rng(5)
    for dtype in (jnp.float64, jnp.float32):
        u, k = jnp.asarray(rng.random(grid.shape), dtype), jnp.asarray(rng.random(grid.shape) + 0.1, dtype)
        for axis in range(grid.ndim):
            padded = np.asarray(pad_axis(u, boundary, axis))
            below, above = neighbours(u, boundary, axis)
            assert below.dtype == above.dtype == dtype
            np.testing.assert_array_equal(below, np.take(padded, np.arange(grid.shape[axis]), axis))
            np.testing.assert_array_equal(above, np.take(padded, np.arange(2, grid.shape[axis] + 2), axis))
        faces = [face_gradient(u, grid, boundary, a) for a in range(grid.ndim)]
        np.testing.assert_array_equal(laplacian(u, grid, boundary), divergence(faces, grid))
        for mean in ("harmonic", "arithmetic"):
            fluxes = [face_average(k, boundary, a, mean) * faces[a] for a in range(grid.ndim)]
            np.testing.assert_array_equal(flux_divergence(k, u, grid, boundary, mean), divergence(fluxes, grid))
            for axis in range(grid.ndim):  # the high wall's faces from the wall cells alone
                np.testing.assert_array_equal(wall_flux(k, u, grid, boundary, axis, mean),
                                              np.take(np.asarray(fluxes[axis]), grid.shape[axis], axis))
        for axis, centred in enumerate(gradient(u, grid, boundary)):
            padded = np.asarray(pad_axis(u, boundary, axis))
            n = grid.shape[axis]
            expected = (jnp.asarray(np.take(padded, np.arange(2, n + 2), axis))
                        - jnp.asarray(np.take(padded, np.arange(n), axis))) / (2.0 * grid.spacing[axis])
            np.testing.assert_array_equal(centred, expected)
