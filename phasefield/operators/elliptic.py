"""Matrix-free solver for the charge-conservation equation ``div(sigma grad phi) = s``.

``sigma`` is a per-cell conductivity (S/m, > 0, contrasts up to ~1e7 between lithium
metal and electrolyte), ``phi`` the potential (V) and ``s`` a volumetric source (A/m^3).
The discrete operator is exactly :func:`stencils.flux_divergence` with harmonic face
means, written in the symmetric positive-definite *conductance form* (multiplied by the
cell volume ``V``)::

    (A phi)_i = sum_faces G_f (phi_i - phi_j) + sum_dirichlet_walls G_w phi_i
              = sum_dirichlet_walls G_w g_w - V s_i

with half-cell resistances ``r = (h_a / 2) / (sigma A_a)`` (``A_a`` the face area normal to
axis ``a``), face conductances ``G_f = 1 / (r_left + r_right)`` and wall conductances
``G_w = 1 / r`` of the wall cell; no-flux walls carry no conductance.

The solver is conjugate gradients preconditioned by one symmetric multigrid V-cycle
(damped Jacobi smoothing, piecewise-constant prolongation, restriction its transpose,
dense exact solve on the coarsest level). The hierarchy merges 2^d cells per level
(``n -> ceil(n/2)`` per axis). Each level keeps, per axis, the half-cell conductances
from every cell centre to its low and high faces; a coarse one is the series chain
through the fine cell on that side along the axis, summed in parallel over the fine
cells across it, which reproduces the rediscretised coarse grid for uniform ``sigma``.
Where a conductor turns a corner inside an aggregate that chain model is far too soft
(a coarse correction ~contrast too large), so every coarse face and wall conductance is
floored at ``THETA * (R A P)`` (the Galerkin one: the sum of the fine conductances
crossing it), with ``THETA = 1/2`` the ratio of the two for uniform ``sigma``. With
``OMEGA < 1`` and the same number of pre- and post-sweeps the V-cycle is symmetric
positive-definite whatever the coarse operators are, as conjugate gradients needs.

Everything is pure JAX (CG is :func:`phasefield.operators.krylov.pcg`), jit-able and vmap-able; the level
shapes come from the static grid at trace time.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import DIRICHLET, Boundary, Grid
from phasefield.operators.krylov import pcg

# Tuned on dendrite-like fields (contrast 1e3-1e7) on 200^2, 512^2, 33^3 and 64^3 grids.
OMEGA = 0.85  # Jacobi damping; < 1 keeps the smoother convergent (lambda(D^-1 A) <= 2)
SWEEPS = 2  # pre- and post-smoothing sweeps per level
COARSEST_CELLS = 32  # coarsen while a level has more cells (and an axis > 2); then dense solve (XLA's CPU dense
# solve has a ~16 ms fixed cost above ~32 unknowns, more than a whole V-cycle on small grids)
OVER_CORRECTION = 1.0  # factor on the coarse-grid correction (any value > 0 keeps B SPD)
THETA = 0.5  # coarse conductances never below THETA * (R A P)
# on slabs, levels of at most this many cells are made whole on every device: a split level's V-cycle costs 8 halo
# exchanges (~10 us each on NVLink, 80 us), which is the time of an H200 (4.3 TB/s) sweeping ~1e6 cells four times at
# ~10 float64 arrays a cell; 2^18 keeps the redundant whole-level work under ~2 % of a V-cycle at 4096^2 per device
AGGLOMERATED_CELLS = 2 ** 18


class _Level(NamedTuple):
    """Conductance-form operator on one level (units: S * length^(d-2))."""

    faces: tuple  # per axis: (low, high) conductance of each cell's two faces normal to it, 0 on the walls
    wall_slabs: tuple  # per axis: (low, high) Dirichlet wall conductances (one-cell slabs) or None
    diag: jax.Array  # A_ii
    inv_diag: jax.Array  # 1 / A_ii (stored: a division fused into every use is slow on CPU)


def _slab(u, axis: int, index):
    sl = [slice(None)] * u.ndim
    sl[axis] = index
    return u[tuple(sl)]


def _pad(u, axis: int, before: int, after: int):
    widths = [(0, 0)] * u.ndim
    widths[axis] = (before, after)
    return jnp.pad(u, widths)


def _series(a, b):
    return a * b / (a + b)


def _dirichlet_walls(boundary: Boundary, ndim: int, shifted: bool = False) -> tuple:
    """``((low is dirichlet, high is dirichlet), ...)``; rejects periodic and singular problems."""
    if boundary.ndim != ndim:
        raise ValueError(f"boundary has {boundary.ndim} axes, grid has {ndim}")
    for axis in range(ndim):
        if boundary.is_periodic(axis):
            raise ValueError(f"axis {axis}: periodic walls are not supported by the elliptic solver")
    walls = tuple(tuple(side.kind == DIRICHLET for side in boundary.sides[a]) for a in range(ndim))
    if not shifted and not any(any(w) for w in walls):
        raise ValueError("no Dirichlet wall: the potential is defined only up to a constant (singular problem)")
    return walls


def _model(g_low, g_high, walls):
    """Face and wall conductances of the network of half-cell conductances (centre to low / high face)."""
    faces, slabs = [], []
    for axis, (low_dirichlet, high_dirichlet) in enumerate(walls):
        faces.append(_series(_slab(g_high[axis], axis, slice(None, -1)), _slab(g_low[axis], axis, slice(1, None))))
        slabs.append((
            _slab(g_low[axis], axis, slice(0, 1)) if low_dirichlet else None,
            _slab(g_high[axis], axis, slice(-1, None)) if high_dirichlet else None,
        ))
    return tuple(faces), tuple(slabs)


def _level(faces, wall_slabs, shift=None) -> _Level:
    """Level from the interior face conductances, the Dirichlet wall slabs and a diagonal ``shift``.

    Each cell keeps its low and high face conductances per axis (arrays of the level's shape: on slabs split like the
    fields, so that the sweeps multiply them without moving the ``n + 1`` faces between devices).
    """
    padded = [_pad(g, axis, 1, 1) for axis, g in enumerate(faces)]
    faces = [(_slab(g, axis, slice(None, -1)), _slab(g, axis, slice(1, None))) for axis, g in enumerate(padded)]
    walls = jnp.zeros(faces[0][0].shape, faces[0][0].dtype)
    diag = walls
    for axis, (low_faces, high_faces) in enumerate(faces):
        diag = diag + low_faces + high_faces
        n = diag.shape[axis]
        low, high = wall_slabs[axis]
        if low is not None:
            walls = walls + _pad(low, axis, 0, n - 1)
        if high is not None:
            walls = walls + _pad(high, axis, n - 1, 0)
    diag = diag + walls
    if shift is not None:
        diag = diag + shift
    return _Level(tuple(faces), tuple(wall_slabs), diag, 1.0 / diag)


def _apply(level: _Level, phi):
    """``A phi`` (homogeneous walls): ``diag * phi`` minus the conductance-weighted neighbours.

    The neighbours along each axis are ``phi`` padded with one zero ghost on that axis only (wall conductances sit
    in the diagonal only), sliced back to ``phi``'s shape: on slabs a one-row halo each way (padding every axis at
    once made the partitioner move two or three rows per side whenever ``n + 2`` does not split evenly).
    """
    out = level.diag * phi
    for axis, (low, high) in enumerate(level.faces):
        out = out - low * _pad(_slab(phi, axis, slice(None, -1)), axis, 1, 0)
        out = out - high * _pad(_slab(phi, axis, slice(1, None)), axis, 0, 1)
    return out


def _pair_sum(u, axis: int):
    """Sum of cells 2I and 2I+1 along ``axis`` (a lone last cell kept as it is)."""
    if u.shape[axis] % 2:
        u = _pad(u, axis, 0, 1)
    return _slab(u, axis, slice(0, None, 2)) + _slab(u, axis, slice(1, None, 2))


def _restrict(u):
    for axis in range(u.ndim):
        u = _pair_sum(u, axis)
    return u


def _prolong(u, shape):
    for axis, n in enumerate(shape):
        u = _slab(jnp.repeat(u, 2, axis=axis), axis, slice(0, n))
    return u


def _chain(g_low, g_high, axis: int, high: bool):
    """Conductance from a coarse centre to its low (high) face along ``axis``, per fine column."""
    n = g_low.shape[axis]
    pairs = slice(1, n - n % 2, 2) if high else slice(0, n - n % 2, 2)
    chain = _series(_slab(g_low, axis, pairs), _slab(g_high, axis, pairs))
    if n % 2:  # lone last cell: its own half-cell conductance
        tail = _slab(g_high if high else g_low, axis, slice(-1, None))
        chain = jnp.concatenate([chain, tail], axis=axis)
    return chain


def _coarsen(g_low, g_high):
    """Coarse half-cell conductances: series along each axis, parallel (summed) across it."""
    ndim = len(g_low)
    new_low, new_high = [], []
    for axis in range(ndim):
        low = _chain(g_low[axis], g_high[axis], axis, high=False)
        high = _chain(g_low[axis], g_high[axis], axis, high=True)
        for other in range(ndim):
            if other != axis:
                low, high = _pair_sum(low, other), _pair_sum(high, other)
        new_low.append(low)
        new_high.append(high)
    return tuple(new_low), tuple(new_high)


def _galerkin(level: _Level):
    """Face and wall conductances of ``R A P`` (piecewise-constant P): sums of the crossing fine ones."""
    ndim = len(level.faces)
    faces, slabs = [], []
    for axis, (_, high) in enumerate(level.faces):
        g = _slab(high, axis, slice(1, high.shape[axis] - 1, 2))  # fine face 2I + 1 | 2I + 2, inside the walls
        sides = list(level.wall_slabs[axis])
        for other in range(ndim):
            if other != axis:
                g = _pair_sum(g, other)
                sides = [None if w is None else _pair_sum(w, other) for w in sides]
        faces.append(g)
        slabs.append(tuple(sides))
    return faces, slabs


def _coarse_level(level: _Level, g_low, g_high, walls, shift=None) -> _Level:
    """Coarse operator: the half-conductance network, but never softer than THETA * R A P."""
    faces, slabs = _model(g_low, g_high, walls)
    if THETA > 0:
        rap_faces, rap_slabs = _galerkin(level)
        faces = [jnp.maximum(f, THETA * r) for f, r in zip(faces, rap_faces)]
        slabs = [
            tuple(None if w is None else jnp.maximum(w, THETA * r) for w, r in zip(ws, rs))
            for ws, rs in zip(slabs, rap_slabs)
        ]
    return _level(faces, slabs, shift)


def _half_conductances(sigma, grid: Grid):
    """``1 / r`` per axis, ``r = (h_a / 2) / (sigma A_a)``: centre-to-face conductance of a cell."""
    out = []
    for axis, h in enumerate(grid.spacing):
        area = float(np.prod([s for b, s in enumerate(grid.spacing) if b != axis]))
        out.append(sigma * (2.0 * area / h))
    return tuple(out)


def _agglomerated(shape, slabs) -> bool:
    """Whether a level of ``shape`` is whole on every device: on ``slabs``, when it has at most
    ``AGGLOMERATED_CELLS`` cells or fewer x rows than devices."""
    return slabs is not None and (int(np.prod(shape)) <= AGGLOMERATED_CELLS or shape[0] < slabs.count)


def _hierarchy(sigma, grid: Grid, walls, shift=None, slabs=None):
    """Levels from fine to coarsest, and the (symmetrised) inverse of the coarsest matrix.

    A diagonal ``shift`` (per cell, conductance units) restricts by summation (its Galerkin form). ``slabs``: the
    levels split along x, but the small ones (:func:`_agglomerated`) whole on every device, gathered once here.
    """
    g_low = g_high = _half_conductances(sigma, grid)
    levels = [_level(*_model(g_low, g_high, walls), shift)]
    shape = grid.shape
    while int(np.prod(shape)) > COARSEST_CELLS and max(shape) > 2:
        g_low, g_high = _coarsen(g_low, g_high)
        shape = g_low[0].shape
        shift = None if shift is None else _restrict(shift)
        level = _coarse_level(levels[-1], g_low, g_high, walls, shift)
        if _agglomerated(shape, slabs):
            g_low, g_high, shift, level = jax.tree_util.tree_map(lambda u: slabs.constrain(u, None),
                                                                 (g_low, g_high, shift, level))
        levels.append(level)
    coarsest = levels[-1]
    size = int(np.prod(shape))
    eye = jnp.eye(size, dtype=sigma.dtype)
    matrix = jax.vmap(lambda e: _apply(coarsest, e.reshape(shape)).reshape(-1))(eye)
    inverse = jnp.linalg.solve(matrix, eye)
    return levels, 0.5 * (inverse + inverse.T)


def _v_cycle(levels, inverse, b, depth: int = 0, slabs=None):
    """One symmetric V-cycle for ``A x = b`` from ``x = 0`` (an SPD preconditioner).

    The sweeps run in ``fori_loop``s: a loop carry is a materialised buffer, which stops
    XLA (on CPU) from fusing a level's iterate into every stencil read of the next sweep
    and recomputing it there (several times slower). ``slabs``: the residual of the first agglomerated level
    gathered onto every device, whose coarser sweeps then exchange nothing.
    """
    if depth > 0 and _agglomerated(b.shape, slabs):  # the rest of the cycle on every device, whole
        whole = jax.sharding.PartitionSpec()
        return jax.shard_map(lambda tail, inverse, b: _v_cycle(tail, inverse, b), mesh=slabs.mesh,
                             in_specs=whole, out_specs=whole)(levels[depth:], inverse, b)
    if depth == len(levels) - 1:
        return (inverse @ b.reshape(-1)).reshape(b.shape)
    level = levels[depth]
    step = OMEGA * level.inv_diag

    def sweep(_, x):
        return x + step * (b - _apply(level, x))

    x = jax.lax.fori_loop(1, SWEEPS, sweep, step * b)  # the first sweep from x = 0: no neighbours, no halo
    coarse = _v_cycle(levels, inverse, _restrict(b - _apply(level, x)), depth + 1, slabs)
    x = x + OVER_CORRECTION * _prolong(coarse, b.shape)
    return jax.lax.fori_loop(0, SWEEPS, sweep, x)


@functools.partial(jax.checkpoint, static_argnums=(2, 3))
def apply_operator(sigma, phi, grid: Grid, boundary: Boundary):
    """Conductance-form operator ``A phi`` with the Dirichlet values taken as zero.

    Equals ``-V flux_divergence(sigma, phi)`` on homogeneous walls (``V`` the cell volume);
    units S * V * length^(d-2), i.e. amperes in 3D. Its derivatives rebuild the face conductances
    from ``sigma`` (``jax.checkpoint``): reverse mode keeps the two cell fields, not the face arrays,
    the diagonal and the shifted copies of ``phi`` (one step's backward of the held-voltage dendrite at
    128^2: 1.1 MiB less).
    """
    walls = _dirichlet_walls(boundary, grid.ndim)
    g = _half_conductances(jnp.asarray(sigma), grid)
    return _apply(_level(*_model(g, g, walls)), jnp.asarray(phi))


def _dirichlet_rhs(g, grid: Grid, boundary: Boundary, walls):
    """``sum_walls G_w g_w`` of every cell: the known wall potentials moved to the right."""
    out = jnp.zeros_like(g[0])
    for axis, flags in enumerate(walls):
        n = grid.shape[axis]
        low, high = boundary.sides[axis]
        if flags[0] and low.value != 0.0:
            out = out + low.value * _pad(_slab(g[axis], axis, slice(0, 1)), axis, 0, n - 1)
        if flags[1] and high.value != 0.0:
            out = out + high.value * _pad(_slab(g[axis], axis, slice(-1, None)), axis, n - 1, 0)
    return out


def solve_potential(sigma, source, grid: Grid, boundary: Boundary, initial_guess, tolerance=1e-6, max_iterations=100,
                    shift=None, slabs=None):
    """Solve ``div(sigma grad phi) - shift phi = source`` (harmonic-mean ``flux_divergence``) for ``phi``.

    ``shift`` (per cell, >= 0, optional; e.g. ``c_t / dt`` of an implicit diffusion step) makes
    the problem definite without any Dirichlet wall.

    sigma:  conductivity per cell (S/m, > 0); source: A/m^3; phi, initial_guess: V.
    boundary: Dirichlet (wall potential in V) or neumann (no-flux) walls; at least one
    Dirichlet wall, no periodic axis.
    Stops when the Jacobi-scaled residual ``max |r_i / A_ii|`` (volts) is at most
    ``tolerance * max(max |wall potentials|, max |phi|)``, checked on the initial guess
    first (0 iterations when it already holds), or after ``max_iterations``.

    Returns ``(phi, iterations, relative_residual)``: iterations an int32 array, the
    relative residual that scaled residual over the scale, recomputed for the returned ``phi``.
    ``grid`` and ``boundary`` are static (close over them under ``jax.jit``); the multigrid
    hierarchy is rebuilt from ``sigma`` on every call (comparable to one V-cycle).
    ``slabs`` (:class:`phasefield.decomposition.Slabs`, the fields split along x): the coarse levels of at most
    :data:`AGGLOMERATED_CELLS` cells (or fewer x rows than devices) are made whole on every device, built there
    once per solve, and each V-cycle gathers its residual once and runs them without exchanging halos.
    """
    dtype = jnp.result_type(jnp.asarray(sigma).dtype, jnp.asarray(source).dtype, jnp.asarray(initial_guess).dtype,
                            jnp.float32)  # one trace for a Python or array tolerance and iteration bound
    return _potential_solve(sigma, source, initial_guess, jnp.asarray(tolerance, dtype),
                            jnp.asarray(max_iterations, jnp.int32), shift, grid=grid, boundary=boundary, slabs=slabs,
                            agglomerated_cells=AGGLOMERATED_CELLS)


@functools.partial(jax.jit, static_argnames=("grid", "boundary", "slabs", "agglomerated_cells"))
def _potential_solve(sigma, source, initial_guess, tolerance, max_iterations, shift, grid: Grid, boundary: Boundary,
                     slabs, agglomerated_cells):
    """:func:`solve_potential`, traced once per grid, walls, split and argument types in a process: a step that solves
    the potential several times (Newton iterations, the galvanostatic secant's trials, adjoint preconditioners) and
    every program built on the same grid reuse one trace (an inner ``jit``: XLA inlines it, so the compiled code
    is unchanged); the multigrid's unrolled levels were three quarters of tracing a dendrite step.
    ``agglomerated_cells``: :data:`AGGLOMERATED_CELLS` when called, so that a trace is reused only while it holds
    (the levels read it as they are traced)."""
    walls = _dirichlet_walls(boundary, grid.ndim, shifted=shift is not None)
    sigma = jnp.asarray(sigma)
    dtype = jnp.result_type(sigma.dtype, jnp.asarray(source).dtype, jnp.asarray(initial_guess).dtype, jnp.float32)
    sigma = sigma.astype(dtype)
    if sigma.shape != grid.shape:
        raise ValueError(f"sigma has shape {sigma.shape}, grid has {grid.shape}")
    if shift is not None:
        shift = grid.cell_volume * jnp.broadcast_to(jnp.asarray(shift, dtype), grid.shape)
    levels, inverse = _hierarchy(sigma, grid, walls, shift, slabs)
    fine = levels[0]
    g = _half_conductances(sigma, grid)
    b = _dirichlet_rhs(g, grid, boundary, walls) - grid.cell_volume * jnp.asarray(source, dtype)
    wall_scale = max([0.0] + [abs(s.value) for sides, flags in zip(boundary.sides, walls) for s, f in zip(sides, flags) if f])
    tiny = jnp.finfo(dtype).tiny

    def relative(x, r):
        scale = jnp.maximum(jnp.maximum(wall_scale, jnp.max(jnp.abs(x))), tiny)
        return jnp.max(jnp.abs(r * fine.inv_diag)) / scale

    x0 = jnp.asarray(initial_guess, dtype)
    if x0.shape != grid.shape:
        raise ValueError(f"initial_guess has shape {x0.shape}, grid has {grid.shape}")
    phi, stats = pcg(lambda x: _apply(fine, x), b, x0, lambda r: _v_cycle(levels, inverse, r, 0, slabs), tolerance,
                     max_iterations, residual_norm=lambda x, r, rz: relative(x, r))
    return phi, stats.iterations, relative(phi, b - _apply(fine, phi))
