"""Small-strain elasticity between two walls: heterogeneous moduli, tension/compression split, walls along one axis.

The periodic solver (:mod:`phasefield.operators.elasticity`) loads a cell through its mean strain. Here one axis,
the *wall axis* ``w`` (the stack direction: electrode | electrolyte | electrode), ends in two walls and the other
axes stay periodic (with zero mean strain: the cell is laterally confined, a strip of a large plate). Each wall
is static data of one kind (:class:`Walls`):

* ``clamped``: the wall displacement is prescribed: normal ``u_w = value``, tangential ``u_t = 0`` (bonded);
* ``roller``:  normal ``u_w = value``, shear traction zero (lubricated platen, symmetry plane);
* ``free``:    prescribed normal traction ``sigma_ww = value`` (0: traction-free; ``-p``: stack pressure), no shear.

At least one wall must prescribe the displacement (a free-free cell floats).

Energy (2D is plane strain, 3D is full; stress unit e.g. GPa, lengths e.g. um)::

    W(u) = sum_cells V [ 1/2 K_t <tr e>_+^2 + 1/2 K_c <tr e>_-^2 + mu dev(e) : dev(e) ]
         + sum_edges V_e 2 mu_e e_ab^2  -  sum_cells V q tr(eps)  -  sum_free_walls A t u_w

with ``e = eps - eps*`` (normal eigenstrain components only), ``K_t``/``K_c`` the bulk moduli in tension and in
compression per cell (a fracture model passes ``g(d) K`` and ``K``: the volumetric-deviatoric split of Amor et
al. 2009; ``K_t = K_c`` is plain linear elasticity), ``mu`` the (degraded) shear modulus per cell, ``q`` an
internal pressure per cell (the pressure of a fluid- or Li-filled diffuse crack, ``q = p d``: its work
``int p d div u = -int p u . grad d`` tends to ``p`` times the crack volume as the crack sharpens, Bourdin et al.
2012), ``t`` the normal traction of a free wall and ``A`` the face area. ``W`` is convex and piecewise quadratic.

Discretisation: the staggered (marker-and-cell) grid of :mod:`~phasefield.operators.elasticity`. ``u_a`` sits on
the low face of each cell normal to ``a``; along the wall axis ``u_w`` has ``n_w + 1`` faces, walls included.
Normal strains live at cell centres, shear strains on edges; an edge on a wall carries half a cell's volume
and, for a clamped wall, the one-sided difference ``du_t/dx_w = (u_t(first cell) - 0) / (h_w / 2)``; roller and
free walls carry no shear energy (zero shear traction exactly). The edge shear modulus is the arithmetic mean
of the cells around the edge (quarter-cell quadrature of the cells' energies). This is the conservative form:
the operator is the gradient of ``W`` (the loads by ``jax`` autodiff; the linear operator of a fixed sign set,
``D^T C D``, written out in :func:`stiffness` and tested equal to autodiff's Hessian), and the reaction of a
wall is the derivative of ``W`` with respect to its prescribed displacement.

Solver: the tension/compression split makes ``W`` piecewise quadratic; a semismooth Newton (active-set) loop
fixes the sign of ``tr e`` per cell, solves the linear problem, and repeats until no cell changes sign (on a
fixed set the problem is linear, so this is Newton's method on the convex energy). Each linear solve is
conjugate gradients preconditioned by ``S K0^-1 S``: ``K0`` the same operator for homogeneous moduli and the
same walls (a free wall taken as a roller). Roller walls are mirror planes, so for them ``K0^-1`` is the periodic
inverse on the grid mirrored to ``2 n_w`` along the wall axis (``u_w`` odd, ``u_t`` even), exact per Fourier
mode, one real FFT and one inverse per component (the sine/cosine transforms of the walls without their dense
matrices); a clamped wall adds a diagonal term to the ``u_t`` of its cell layer, inverted by Woodbury's formula
with a capacitance matrix that is diagonal in the periodic modes (no further FFT; 1.5-2x fewer CG iterations
than the roller ``K0`` alone with a crack, e.g. 217 -> 145 at 256^2 in the filament geometry, one wall
clamped); ``S = sqrt(diag K0 / diag A)``
rescales it to the local stiffness, which removes the dependence on the stiffness contrast of a broken zone
(CG iterations vs residual stiffness ``k``: see :func:`solve_walled_elasticity`). Free-wall normal
displacements are preconditioned by their diagonal.

Everything is pure JAX and traceable; the grid and :class:`Walls` are static.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import Grid
from phasefield.operators.krylov import pcg, tree_dot

CLAMPED, ROLLER, FREE = "clamped", "roller", "free"
WALL_KINDS = (CLAMPED, ROLLER, FREE)
AXES = "xyz"


class Walls(NamedTuple):
    """Static description of the two walls: ``axis`` (the wall axis) and the kind of its ``low`` and ``high`` wall."""

    axis: int
    low: str = CLAMPED
    high: str = CLAMPED

    def check(self, ndim: int):
        if not 0 <= self.axis < ndim:
            raise ValueError(f"wall axis {self.axis} outside a {ndim}D grid")
        for kind in (self.low, self.high):
            if kind not in WALL_KINDS:
                raise ValueError(f"unknown wall kind {kind!r}; allowed: {', '.join(WALL_KINDS)}")
        if self.low == FREE and self.high == FREE:
            raise ValueError("both walls free: the cell floats; prescribe the displacement of one wall")
        return self

    def kind(self, side: int) -> str:
        return self.low if side == 0 else self.high


class WalledElasticity(NamedTuple):
    """Solution of :func:`solve_walled_elasticity`.

    displacement: tuple of ``ndim`` arrays; ``displacement[w]`` has ``n_w + 1`` entries along the wall axis
                  (the wall faces included, prescribed values substituted), the others ``grid.shape``.
    tension:      1.0 in cells where ``tr e > 0`` (the set the split degraded), else 0.0.
    iterations:   total CG iterations (int32); newton: active-set passes.
    residual:     relative CG residual of the last linear solve.
    """

    displacement: tuple
    tension: jax.Array
    iterations: jax.Array
    newton: jax.Array
    residual: jax.Array


# ----------------------------------------------------------------------------- array helpers


def _slab(u, axis: int, index):
    sl = [slice(None)] * u.ndim
    sl[axis] = index
    return u[tuple(sl)]


def _cat(parts, axis):
    return jnp.concatenate(parts, axis=axis)


def displacement_shapes(grid: Grid, walls: Walls) -> tuple:
    """Shape of each displacement component (``n_w + 1`` faces of ``u_w`` along the wall axis)."""
    out = []
    for a in range(grid.ndim):
        shape = list(grid.shape)
        if a == walls.axis:
            shape[a] += 1
        out.append(tuple(shape))
    return tuple(out)


def zero_displacement(grid: Grid, walls: Walls, dtype=jnp.float64) -> tuple:
    return tuple(jnp.zeros(s, dtype) for s in displacement_shapes(grid, walls))


def with_wall_values(u, walls: Walls, wall_displacement):
    """``u`` with the prescribed normal displacement written on the clamped and roller wall faces."""
    w = walls.axis
    uw = u[w]
    for side, index in ((0, 0), (1, -1)):
        if walls.kind(side) != FREE:
            value = jnp.asarray(wall_displacement[side], uw.dtype)
            uw = uw.at[tuple([slice(None)] * w + [index])].set(value)
    return tuple(uw if a == w else u[a] for a in range(len(u)))


def _free_mask(grid: Grid, walls: Walls, dtype):
    """1 on the unknown displacements, 0 on the prescribed wall faces."""
    masks = [jnp.ones(s, dtype) for s in displacement_shapes(grid, walls)]
    w = walls.axis
    for side, index in ((0, 0), (1, -1)):
        if walls.kind(side) != FREE:
            masks[w] = masks[w].at[tuple([slice(None)] * w + [index])].set(0.0)
    return tuple(masks)


# ----------------------------------------------------------------------------- strains and moduli on edges


def normal_strains(u, grid: Grid, walls: Walls) -> list:
    """``eps_aa`` at cell centres (forward difference of the face displacements)."""
    out = []
    for a in range(grid.ndim):
        if a == walls.axis:
            out.append(jnp.diff(u[a], axis=a) / grid.spacing[a])
        else:
            out.append((jnp.roll(u[a], -1, a) - u[a]) / grid.spacing[a])
    return out


def _wall_pair(a: int, b: int, w: int):
    return w in (a, b)


def shear_strains(u, grid: Grid, walls: Walls) -> dict:
    """``eps_ab`` (a < b) on the low ``(a, b)`` edges; edges on the wall faces included (``n_w + 1`` along ``w``).

    On a clamped wall ``du_t/dx_w`` is one-sided over half a cell to ``u_t = 0``; on roller and free walls the
    value is not used (those edges carry no energy).
    """
    w, h = walls.axis, grid.spacing
    out = {}
    for a in range(grid.ndim):
        for b in range(a + 1, grid.ndim):
            if not _wall_pair(a, b, w):
                out[a, b] = 0.5 * ((u[a] - jnp.roll(u[a], 1, b)) / h[b] + (u[b] - jnp.roll(u[b], 1, a)) / h[a])
                continue
            t = b if a == w else a
            tangential = u[t]
            inner = jnp.diff(tangential, axis=w) / h[w]
            low = _slab(tangential, w, slice(0, 1)) / (0.5 * h[w])
            high = -_slab(tangential, w, slice(-1, None)) / (0.5 * h[w])
            across = _cat([low, inner, high], w)
            along = (u[w] - jnp.roll(u[w], 1, t)) / h[t]
            out[a, b] = 0.5 * (across + along)
    return out


def _edge_weights(grid: Grid, walls: Walls, dtype) -> dict:
    """Volume carried by each edge: ``V`` inside, ``V/2`` on a clamped wall, 0 on roller and free walls."""
    w, volume = walls.axis, grid.cell_volume
    out = {}
    for a in range(grid.ndim):
        for b in range(a + 1, grid.ndim):
            if not _wall_pair(a, b, w):
                out[a, b] = jnp.asarray(volume, dtype)
                continue
            n = grid.shape[w]
            profile = np.full(n + 1, volume)
            profile[0] = 0.5 * volume if walls.low == CLAMPED else 0.0
            profile[-1] = 0.5 * volume if walls.high == CLAMPED else 0.0
            shape = [1] * grid.ndim
            shape[w] = n + 1
            out[a, b] = jnp.asarray(profile.reshape(shape), dtype)
    return out


def edge_shear_moduli(mu, grid: Grid, walls: Walls) -> dict:
    """Arithmetic mean of the cell shear modulus over the cells around each edge (wall edges: the cells inside)."""
    w = walls.axis
    out = {}
    for a in range(grid.ndim):
        for b in range(a + 1, grid.ndim):
            if not _wall_pair(a, b, w):
                m = 0.5 * (mu + jnp.roll(mu, 1, a))
                out[a, b] = 0.5 * (m + jnp.roll(m, 1, b))
                continue
            t = b if a == w else a
            m = 0.5 * (mu + jnp.roll(mu, 1, t))
            padded = _cat([_slab(m, w, slice(0, 1)), m, _slab(m, w, slice(-1, None))], w)
            out[a, b] = 0.5 * (_slab(padded, w, slice(None, -1)) + _slab(padded, w, slice(1, None)))
    return out


def _elastic_normals(u, grid, walls, eigenstrain):
    """The three normal elastic strains per cell (2D: plane-strain ``zz`` = ``-eps*_zz``) and the total trace."""
    eigen = eigenstrain or {}
    strains = normal_strains(u, grid, walls)
    elastic = [e - eigen.get(AXES[a] * 2, 0.0) for a, e in enumerate(strains)]
    if grid.ndim == 2:
        elastic.append(-jnp.asarray(eigen.get("zz", 0.0)) + jnp.zeros_like(strains[0]))
    return elastic, sum(strains)


# ----------------------------------------------------------------------------- energy


def stored_energy(u, bulk_tension, bulk_compression, shear, grid: Grid, walls: Walls, eigenstrain=None):
    """Stored elastic energy ``W_el`` (the first two lines of the module's ``W``; per unit thickness in 2D).

    u: displacement with the wall values already substituted (:func:`with_wall_values`).
    bulk_tension, bulk_compression, shear: cell fields (stress unit). Returns energy in stress * length^ndim.
    """
    volume = grid.cell_volume
    elastic, _ = _elastic_normals(u, grid, walls, eigenstrain)
    trace = sum(elastic)
    mean = trace / 3.0
    # 1/2 K_t <tr>_+^2 + 1/2 K_c <tr>_-^2 written with a select, so that its derivatives are exact
    # (and quadratic) on each side and at tr = 0, where max(tr, 0) would have the half-derivative 1/2
    bulk = jnp.where(trace > 0, bulk_tension, bulk_compression)
    deviatoric = sum((e - mean) ** 2 for e in elastic)
    cells = 0.5 * bulk * trace**2 + shear * deviatoric
    total = volume * jnp.sum(cells)
    weights = _edge_weights(grid, walls, trace.dtype)
    edge_mu = edge_shear_moduli(shear, grid, walls)
    for pair, strain in shear_strains(u, grid, walls).items():
        total = total + jnp.sum(weights[pair] * 2.0 * edge_mu[pair] * strain**2)
    return total


def stiffness(bulk, shear, grid: Grid, walls: Walls):
    """The operator ``x -> A x`` of :func:`stored_energy` on a fixed sign set (cell bulk modulus ``bulk``), its
    Hessian-vector product written out, ``A = D^T C D``: ``D`` the strains of :func:`normal_strains` and
    :func:`shear_strains`, ``C`` the cell stresses ``V (K tr e + 2 mu (e_a - tr e / 3))`` (2D: ``e_zz`` fixed) and
    the edge stresses ``4 V_e mu_e e_ab``; ``D^T`` the negative divergence (the clamped wall's half-cell difference
    twice as steep). Returns forces per displacement entry (stress * length^(ndim-1))."""
    w, h, volume = walls.axis, grid.spacing, grid.cell_volume
    weights = _edge_weights(grid, walls, bulk.dtype)
    edge = {pair: 4.0 * weights[pair] * m for pair, m in edge_shear_moduli(shear, grid, walls).items()}
    n = grid.shape[w]
    steep = np.ones(n + 1)
    steep[0] = steep[-1] = 2.0
    shape = [1] * grid.ndim
    shape[w] = n + 1
    steep = jnp.asarray(steep.reshape(shape), bulk.dtype)

    def apply(x):
        strains = normal_strains(x, grid, walls)
        trace = sum(strains)
        forces = []
        for a, e in enumerate(strains):
            s = volume * (bulk * trace + 2.0 * shear * (e - trace / 3.0))
            if a == w:
                zero = jnp.zeros_like(_slab(s, w, slice(0, 1)))
                forces.append((_cat([zero, s], w) - _cat([s, zero], w)) / h[a])
            else:
                forces.append((jnp.roll(s, 1, a) - s) / h[a])
        for (a, b), strain in shear_strains(x, grid, walls).items():
            q = 0.5 * edge[a, b] * strain
            if not _wall_pair(a, b, w):
                forces[a] = forces[a] + (q - jnp.roll(q, -1, b)) / h[b]
                forces[b] = forces[b] + (q - jnp.roll(q, -1, a)) / h[a]
                continue
            t = b if a == w else a
            forces[w] = forces[w] + (q - jnp.roll(q, -1, t)) / h[t]
            q = steep * q
            forces[t] = forces[t] + (_slab(q, w, slice(None, -1)) - _slab(q, w, slice(1, None))) / h[w]
        return tuple(forces)

    return apply


def load_potential(u, grid: Grid, walls: Walls, internal_pressure=None, wall_traction=(0.0, 0.0)):
    """Work of the loads: ``sum V q tr(eps) + sum_free_walls A t u_w`` (``q`` internal pressure per cell)."""
    total = 0.0
    if internal_pressure is not None:
        total = total + grid.cell_volume * jnp.sum(internal_pressure * sum(normal_strains(u, grid, walls)))
    w = walls.axis
    area = grid.cell_volume / grid.spacing[w]
    if walls.low == FREE:
        total = total - area * wall_traction[0] * jnp.sum(_slab(u[w], w, 0))
    if walls.high == FREE:
        total = total + area * wall_traction[1] * jnp.sum(_slab(u[w], w, -1))
    return total


def cell_stress(u, bulk_tension, bulk_compression, shear, grid: Grid, walls: Walls, eigenstrain=None) -> dict:
    """Stress per cell (dict over ``xx, yy, zz[, yz, xz], xy``): normal components at the centre, shear the mean
    of the edges around the cell. Uses the split: the bulk modulus of a cell follows the sign of its ``tr e``."""
    elastic, _ = _elastic_normals(u, grid, walls, eigenstrain)
    trace = sum(elastic)
    bulk = jnp.where(trace > 0, bulk_tension, bulk_compression)
    names = ("xx", "yy", "zz")
    out = {names[c]: bulk * trace + 2.0 * shear * (e - trace / 3.0) for c, e in enumerate(elastic)}
    edge_mu = edge_shear_moduli(shear, grid, walls)
    weights = _edge_weights(grid, walls, trace.dtype)
    w = walls.axis
    for (a, b), strain in shear_strains(u, grid, walls).items():
        sigma = 2.0 * edge_mu[a, b] * strain * (weights[a, b] > 0)
        if _wall_pair(a, b, w):
            t = b if a == w else a
            along_t = 0.5 * (sigma + jnp.roll(sigma, -1, t))
            cell = 0.5 * (_slab(along_t, w, slice(None, -1)) + _slab(along_t, w, slice(1, None)))
        else:
            along_a = 0.5 * (sigma + jnp.roll(sigma, -1, a))
            cell = 0.5 * (along_a + jnp.roll(along_a, -1, b))
        out[AXES[a] + AXES[b]] = cell
    return out


def cell_displacement(u, walls: Walls) -> list:
    """Displacement components interpolated to cell centres (mean of the two faces of each cell)."""
    out = []
    for a, ua in enumerate(u):
        if a == walls.axis:
            out.append(0.5 * (_slab(ua, a, slice(None, -1)) + _slab(ua, a, slice(1, None))))
        else:
            out.append(0.5 * (ua + jnp.roll(ua, -1, a)))
    return out


def wall_reactions(u, bulk_tension, bulk_compression, shear, grid: Grid, walls: Walls, wall_displacement,
                   eigenstrain=None, internal_pressure=None, extra_energy=None):
    """Normal force on the high and low wall faces, ``dW/du_wall`` summed over each wall (per unit thickness in
    2D; stress * length^(ndim-1)). For a cell pulled apart the high wall force is positive (tension)."""
    w = walls.axis

    def energy(values):
        v = with_wall_values(u, walls, values)
        extra = 0.0 if extra_energy is None else extra_energy(v)
        return (stored_energy(v, bulk_tension, bulk_compression, shear, grid, walls, eigenstrain) + extra
                - load_potential(v, grid, walls, internal_pressure))

    forces = jax.grad(energy)(jnp.asarray(wall_displacement, u[w].dtype))
    return -forces[0], forces[1]


# ----------------------------------------------------------------------------- preconditioner


def _diagonal(bulk, shear, grid: Grid, walls: Walls) -> tuple:
    """Exact diagonal of the (linear, fixed-sign) operator with cell bulk modulus ``bulk`` (free entries only)."""
    w, h, volume = walls.axis, grid.spacing, grid.cell_volume
    normal = bulk + 4.0 / 3.0 * shear
    edge_mu = edge_shear_moduli(shear, grid, walls)
    weights = _edge_weights(grid, walls, normal.dtype)
    diag = []
    for a in range(grid.ndim):
        if a == w:
            zero = jnp.zeros_like(_slab(normal, w, slice(0, 1)))
            padded = _cat([zero, normal, zero], w)
            diag.append(volume / h[a] ** 2 * (_slab(padded, w, slice(None, -1)) + _slab(padded, w, slice(1, None))))
        else:
            diag.append(volume / h[a] ** 2 * (normal + jnp.roll(normal, 1, a)))
    for (a, b), mu_e in edge_mu.items():
        weighted = weights[a, b] * mu_e
        if not _wall_pair(a, b, w):
            diag[a] = diag[a] + (weighted + jnp.roll(weighted, -1, b)) / h[b] ** 2
            diag[b] = diag[b] + (weighted + jnp.roll(weighted, -1, a)) / h[a] ** 2
            continue
        t = b if a == w else a
        diag[w] = diag[w] + (weighted + jnp.roll(weighted, -1, t)) / h[t] ** 2
        n = grid.shape[w]
        factor = np.ones(n + 1)
        factor[0] = factor[-1] = 4.0  # the half-cell difference on a clamped wall doubles the coefficient
        shape = [1] * grid.ndim
        shape[w] = n + 1
        across = weighted * jnp.asarray(factor.reshape(shape), weighted.dtype) / h[w] ** 2
        diag[t] = diag[t] + _slab(across, w, slice(None, -1)) + _slab(across, w, slice(1, None))
    return tuple(diag)


class _Reference(NamedTuple):
    inverse: tuple  # inverse[a][b]: per-mode inverse of the roller K0 on the doubled grid's real-FFT modes (complex)
    doubled: tuple  # shape of the doubled grid (the wall axis mirrored to 2 n_w)
    axes: tuple  # FFT axes: the wall axis first, the halved (real-FFT) axis last
    layers: tuple  # (mirrored impulse of the cell layer along the wall axis, tangential component) per clamped term
    capacitance: tuple  # [p][q]: per periodic mode, inverse of 1/c + P K0^-1 P^T over the clamped terms
    slabs: object = None  # :class:`phasefield.decomposition.Slabs`: modes split (zero-padded) along axis 1


def _small_inverse(m):
    """Inverse of a stack of 2x2 or 3x3 matrices by cofactors (a batched LU compiles ~1 s slower on CPU)."""
    n = m.shape[-1]
    if n == 2:
        a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
        adjugate = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-c, a], -1)], -2)
        return adjugate / (a * d - b * c)[..., None, None]
    cof = [[None] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(3):
            r0, r1 = [r for r in range(3) if r != i]
            c0, c1 = [c for c in range(3) if c != j]
            cof[i][j] = (-1) ** (i + j) * (m[..., r0, c0] * m[..., r1, c1] - m[..., r0, c1] * m[..., r1, c0])
    det = sum(m[..., 0, j] * cof[0][j] for j in range(3))
    adjugate = jnp.stack([jnp.stack([cof[j][i] for j in range(3)], -1) for i in range(3)], -2)
    return adjugate / det[..., None, None]


def _reference(grid: Grid, walls: Walls, lam0, mu0, dtype, slabs=None) -> _Reference:
    """``K0^-1`` of the homogeneous operator with the walls' kinds (free as roller): the roller-wall inverse per
    mode, and the Woodbury terms of the clamped walls.

    Roller walls are mirror planes: ``u_w`` extended odd about the wall faces and ``u_t`` even makes a periodic
    field on the grid doubled along the wall axis, whose periodic operator maps the mirrored fields to the mirrored
    forces (the wall-face shear edges carry no strain). So ``K0^-1 r`` is the periodic inverse on the doubled grid,
    per real-FFT mode ``K0(k) = V [lam0 c^H c + 2 mu0 diag|c|^2 + mu0 sum s^H s]`` (``c``: normal-strain symbols
    ``(e^{i theta} - 1)/h``, ``s``: shear ones ``(1 - e^{-i theta})/h``); the zero mode (a rigid translation) is
    dropped.

    ``slabs`` (:class:`phasefield.decomposition.Slabs`, wall axis x): the per-mode arrays zero-padded along axis 1 to a
    multiple of the devices and split along it, the layout of :func:`_apply_reference`'s transposed modes."""
    ndim, w, h = grid.ndim, walls.axis, grid.spacing
    if slabs is not None and w != 0:
        raise ValueError(f"slabs split the wall axis x: walls along axis {w} are not decomposed")
    doubled = tuple(2 * n if a == w else n for a, n in enumerate(grid.shape))
    axes = (w,) + tuple(a for a in range(ndim) if a != w)
    modes = tuple(d // 2 + 1 if a == axes[-1] else d for a, d in enumerate(doubled))
    normal, edge = [], []
    for a in range(ndim):
        shape = [1] * ndim
        shape[a] = modes[a]
        theta = (2.0 * np.pi * np.arange(modes[a]) / doubled[a]).reshape(shape)
        # 1-D symbols, broadcast in the graph: a whole-grid array here would be a compile-time constant per call site
        normal.append(jnp.broadcast_to(jnp.asarray((np.exp(1j * theta) - 1.0) / h[a]), modes))  # difference to the cell
        edge.append(jnp.broadcast_to(jnp.asarray((1.0 - np.exp(-1j * theta)) / h[a]), modes))  # difference to the edge
    c = jnp.stack(normal, axis=-1)
    k0 = lam0 * jnp.conj(c)[..., :, None] * c[..., None, :]
    k0 = k0 + 2.0 * mu0 * jnp.eye(ndim) * (jnp.abs(c) ** 2)[..., None, :]
    for a in range(ndim):
        for b in range(a + 1, ndim):
            s = jnp.zeros(modes + (ndim,), complex).at[..., a].set(edge[b]).at[..., b].set(edge[a])
            k0 = k0 + mu0 * jnp.conj(s)[..., :, None] * s[..., None, :]
    k0 = grid.cell_volume * k0
    eye = jnp.eye(ndim)
    singular = jnp.real(jnp.diagonal(k0, axis1=-2, axis2=-1)) <= 0.0
    k0 = k0 + jnp.where(singular[..., None, :] & (eye > 0), 1.0, 0.0)
    keep = jnp.where(singular, 0.0, 1.0)
    inverse = _small_inverse(k0) * keep[..., None, :] * keep[..., :, None]
    complex_dtype = jnp.result_type(dtype, jnp.complex64)
    entries = tuple(tuple(_split_modes(inverse[..., a, b].astype(complex_dtype), slabs) for b in range(ndim))
                    for a in range(ndim))
    # a clamped wall adds 2 V mu0 / h_w^2 to each u_t of the cell layer next to it (its half-cell shear edges):
    # K0_clamped = K0 + c P^T P, inverted by Woodbury on the mirrored impulses of those layers, whose capacitance
    # matrix is diagonal in the periodic modes (the translation of u_t stays dropped)
    n = grid.shape[w]
    layers = []
    for side, kind in enumerate((walls.low, walls.high)):
        if kind != CLAMPED:
            continue
        cell = 0 if side == 0 else n - 1
        k = np.arange(2 * n)
        impulse = (np.exp(-1j * np.pi * k * cell / n) + np.exp(-1j * np.pi * k * (2 * n - 1 - cell) / n))
        impulse = impulse / np.sqrt(2 * n)  # the layer and its mirror image, orthonormal transform
        shape = [1] * ndim
        shape[w] = 2 * n
        layers += [(jnp.asarray(impulse.reshape(shape), complex_dtype), t) for t in axes[1:]]
    capacitance = ()
    if layers:
        stiff = 2.0 * grid.cell_volume * mu0 / h[w] ** 2
        m = jnp.stack([jnp.stack([0.5 * jnp.sum(jnp.conj(pi) * entries[t][u] * pj, axis=w)
                                  for pj, u in layers], -1) for pi, t in layers], -2)
        m = m + jnp.eye(len(layers)) / stiff
        inv = 1.0 / m if len(layers) == 1 else _small_inverse(m) if len(layers) <= 3 else jnp.linalg.inv(m)
        capacitance = tuple(tuple(_split_modes(jnp.expand_dims(inv[..., p, q], w), slabs) for q in range(len(layers)))
                            for p in range(len(layers)))
    return _Reference(entries, doubled, axes, tuple(layers), capacitance, slabs)


def _split_modes(modes, slabs):
    """Per-mode array zero-padded along axis 1 to a multiple of the devices and split along it (unchanged without
    ``slabs``)."""
    if slabs is None:
        return modes
    pad = [(0, 0)] * modes.ndim
    pad[1] = (0, -(-modes.shape[1] // slabs.count) * slabs.count - modes.shape[1])
    return slabs.constrain(jnp.pad(modes, pad), 1)


def _mirrored(u, normal: bool, w: int):
    """The rows ``0..n-1`` of a component along the wall axis, extended to the doubled grid: ``u_w`` (``normal``; row 0
    the wall face, taken as zero) odd about the wall faces, ``u_t`` even."""
    if normal:
        interior = _slab(u, w, slice(1, None))
        zero = jnp.zeros_like(_slab(u, w, slice(0, 1)))
        return _cat([zero, interior, zero, -jnp.flip(interior, w)], w)
    return _cat([u, jnp.flip(u, w)], w)


def _unmirrored(u, normal: bool, w: int, n: int):
    """Rows ``0..n-1`` of a field on the doubled grid (``u_w``: row 0, the wall face, zero)."""
    if normal:
        return _cat([jnp.zeros_like(_slab(u, w, slice(0, 1))), _slab(u, w, slice(1, n))], w)
    return _slab(u, w, slice(0, n))


def _solve_modes(ref: _Reference, spectra, w: int) -> list:
    """``K0^-1`` per mode of the doubled grid: the roller inverse, and Woodbury's correction for the clamped walls."""
    ndim = len(spectra)
    solved = [sum(ref.inverse[a][b] * spectra[b] for b in range(ndim)) for a in range(ndim)]
    if ref.layers:  # Woodbury: z - K0^-1 P^T (1/c + P K0^-1 P^T)^-1 P z
        layer = [0.5 * jnp.sum(jnp.conj(p) * solved[t], axis=w, keepdims=True) for p, t in ref.layers]
        x = [sum(c * y for c, y in zip(row, layer)) for row in ref.capacitance]
        solved = [z - sum(ref.inverse[a][t] * p * xq for (p, t), xq in zip(ref.layers, x))
                  for a, z in enumerate(solved)]
    return solved


def _apply_reference(ref: _Reference, r, grid: Grid, walls: Walls):
    """``K0^-1`` on the interior unknowns (``u_w`` on the interior faces, every ``u_t``): mirror onto the doubled
    grid, one real FFT per component, the per-mode inverse and the clamped walls' correction, back; zero on the
    wall faces. With a clamped wall it inverts ``K0`` on the fields whose ``u_t`` have zero mean (the
    translations of ``u_t`` are dropped as for roller walls).

    With ``ref.slabs`` (wall axis x split over the devices) each device transforms its rows along the other axes,
    one ``all_to_all`` per component transposes (x whole, axis 1 split), the x axis is mirrored and transformed
    there, and the way back is the same in reverse: no device holds a whole component."""
    w, n = walls.axis, grid.shape[walls.axis]
    rows = tuple(_slab(ra, w, slice(0, n)) for ra in r)  # u_w: faces 0..n-1 (face 0 a wall face, not used)
    if ref.slabs is None:
        spectra = [jnp.fft.rfftn(_mirrored(u, a == w, w), axes=ref.axes, norm="ortho") for a, u in enumerate(rows)]
        solved = _solve_modes(ref, spectra, w)
        out = [_unmirrored(jnp.fft.irfftn(z, s=[ref.doubled[x] for x in ref.axes], axes=ref.axes, norm="ortho"),
                           a == w, w, n).astype(r[a].dtype) for a, z in enumerate(solved)]
    else:
        out = _slab_reference(ref, rows, grid)
    return tuple(_cat([u, jnp.zeros_like(_slab(u, w, slice(0, 1)))], w) if a == w else u  # the high wall face
                 for a, u in enumerate(out))


def _slab_reference(ref: _Reference, rows, grid: Grid) -> list:
    """:func:`_apply_reference` on rows split along the wall axis x (0) over ``ref.slabs``."""
    from phasefield.decomposition import AXIS

    slabs, ndim, n = ref.slabs, grid.ndim, grid.shape[0]
    local = tuple(range(1, ndim))  # whole on every device; the last is the real-FFT axis
    kept = grid.shape[1] // 2 + 1 if ndim == 2 else grid.shape[1]  # axis 1 of the modes (2D: the real-FFT axis)
    spread = ref.inverse[0][0].shape[1]  # axis 1 of the modes, padded to a multiple of the devices

    def solve(rows, inverse, impulses, capacitance):
        spectra = []
        for a, u in enumerate(rows):
            u = jnp.fft.rfftn(u, axes=local, norm="ortho")
            pad = [(0, 0)] * ndim
            pad[1] = (0, spread - u.shape[1])
            u = jax.lax.all_to_all(jnp.pad(u, pad), AXIS, split_axis=1, concat_axis=0, tiled=True)
            spectra.append(jnp.fft.fft(_mirrored(u, a == 0, 0), axis=0, norm="ortho"))
        block = ref._replace(inverse=inverse, capacitance=capacitance,
                             layers=tuple((p, t) for p, (_, t) in zip(impulses, ref.layers)))
        out = []
        for a, z in enumerate(_solve_modes(block, spectra, 0)):
            z = _unmirrored(jnp.fft.ifft(z, axis=0, norm="ortho"), a == 0, 0, n)
            z = jax.lax.all_to_all(z, AXIS, split_axis=0, concat_axis=1, tiled=True)
            z = jnp.fft.irfftn(jax.lax.slice_in_dim(z, 0, kept, axis=1), s=grid.shape[1:], axes=local,
                               norm="ortho")
            out.append(z.astype(rows[a].dtype))
        return tuple(out)

    split, modes, whole = slabs.spec(ndim, 0), slabs.spec(ndim, 1), slabs.spec(ndim, None)
    impulses = tuple(p for p, _ in ref.layers)
    specs = (tuple(split for _ in rows), jax.tree_util.tree_map(lambda _: modes, ref.inverse),
             tuple(whole for _ in impulses), jax.tree_util.tree_map(lambda _: modes, ref.capacitance))
    return list(jax.shard_map(solve, mesh=slabs.mesh, in_specs=specs, out_specs=tuple(split for _ in rows))(
        rows, ref.inverse, impulses, ref.capacitance))


# ----------------------------------------------------------------------------- solver


def solve_walled_elasticity(bulk_tension, bulk_compression, shear, grid: Grid, walls: Walls,
                            wall_displacement=(0.0, 0.0), wall_traction=(0.0, 0.0), eigenstrain=None,
                            internal_pressure=None, initial=None, reference_moduli=None, tolerance=1e-8,
                            max_iterations=2000, max_newton=8, scale_preconditioner=True,
                            extra_energy=None, preconditioner_moduli=None, slabs=None) -> WalledElasticity:
    """Minimise the module's ``W`` over the displacement (equilibrium with the walls' conditions).

    bulk_tension, bulk_compression, shear: cell fields, shape ``grid.shape`` (stress unit, > 0; a broken zone
        keeps a small residual stiffness ``k``).
    walls: static :class:`Walls`; wall_displacement: ``(low, high)`` normal displacement of clamped/roller walls;
        wall_traction: ``(low, high)`` normal stress ``sigma_ww`` on free walls (stack pressure ``-p``).
    eigenstrain: dict of normal components (``xx``, ``yy``[, ``zz``]) per cell, or ``None``.
    internal_pressure: cell field ``q`` whose work is ``sum V q tr(eps)`` (crack pressure ``p d``), or ``None``.
    initial: a previous :class:`WalledElasticity` (or displacement tuple) to warm-start from.
    reference_moduli: ``(K, mu)`` of the intact material for the preconditioner (default: the largest values).
    tolerance: CG stops at the relative residual ``sqrt(r.M^-1 r / b.M^-1 b) <= tolerance``.
    max_newton: active-set passes for the tension/compression split (1: one linear solve with the sign set of
        ``initial``, for callers that iterate it themselves). scale_preconditioner: False drops ``S``.
    extra_energy: ``u -> scalar``, a convex (C1, piecewise C2) energy added to ``W`` (the compressive energy of a
        spectral split); each pass is then a Newton step linearised at the current iterate, and the loop runs
        ``max_newton`` passes or until the residual, relative to that of the undeformed state, is below
        ``tolerance``. preconditioner_moduli: ``(bulk, shear)`` cell fields whose diagonal scales the
        preconditioner (default: the tension/compression bulk modulus and ``shear``).
    slabs: :class:`phasefield.decomposition.Slabs` for cell fields split along the wall axis x over devices: the
        preconditioner's transforms are then the slab ones (:func:`_apply_reference`); the stencils and the CG's
        sums are left to JAX's partitioner. ``None``: one device.

    CG iterations to 1e-9 on a 128 x 64 plate between clamped walls, pulled, with a 32-cell crack (AT1 profile,
    ``g = (1 - d)^2 + k``), ``experiments/fracture_convergence.py``: 33, 34, 34, 34, 34, 34 for
    ``k`` = 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8 (without the rescaling ``S``: 26-29 on this plate, but 145-191
    against 96-102 with it for the filament's flaw at 128^2); a plate cut in two by a row of cells at ``k``: 5 at
    every ``k``. The iterations do grow with the grid at a fixed geometry (the crack spans more cells): a cold
    solve of the filament's pressurised flaw (ell = 2 cells, 4 Newton passes) takes 79, 101, 145, 231 at 64^2,
    128^2, 256^2, 512^2 (``experiments/filament_timing.py``); warm starts make the solves inside a step few.
    """
    ndim = grid.ndim
    walls.check(ndim)
    dtype = jnp.result_type(bulk_tension.dtype, shear.dtype, jnp.float32)
    kt, kc, mu = (jnp.asarray(x, dtype) for x in (bulk_tension, bulk_compression, shear))
    eigen = {k: jnp.asarray(v, dtype) for k, v in (eigenstrain or {}).items()}
    mask = _free_mask(grid, walls, dtype)
    if reference_moduli is None:
        k0, mu0 = jnp.maximum(jnp.max(kt), jnp.max(kc)), jnp.max(mu)
    else:
        k0, mu0 = (jnp.asarray(x, dtype) for x in reference_moduli)
    ref = _reference(grid, walls, k0 - 2.0 * mu0 / 3.0, mu0, dtype, slabs)
    roller = Walls(walls.axis, ROLLER, ROLLER)
    reference_walls = Walls(walls.axis, *(k if k == CLAMPED else ROLLER for k in (walls.low, walls.high)))
    ones = jnp.ones(grid.shape, dtype)
    diag0 = _diagonal(k0 * ones, mu0 * ones, grid, reference_walls)
    interior = _free_mask(grid, roller, dtype)  # u_w on the wall faces is outside K0

    if initial is None:
        u = zero_displacement(grid, walls, dtype)
    else:
        u = tuple(jnp.asarray(x, dtype) for x in getattr(initial, "displacement", initial))
    u = with_wall_values(u, walls, wall_displacement)

    def trace_of(v):
        elastic, _ = _elastic_normals(v, grid, walls, eigen)
        return sum(elastic)

    def linear_solve(v, tension):
        bulk = jnp.where(tension > 0, kt, kc)

        def energy(x):
            x = with_wall_values(x, walls, wall_displacement)
            e = stored_energy(x, bulk, bulk, mu, grid, walls, eigen)  # fixed sign set: quadratic
            return e - load_potential(x, grid, walls, internal_pressure, wall_traction)

        force0 = jax.grad(energy)(tuple(jnp.zeros_like(x) for x in v))
        rhs = tuple(-f * m for f, m in zip(force0, mask))
        apply = stiffness(bulk, mu, grid, walls)

        def operator(x):
            ax = apply(tuple(xi * m for xi, m in zip(x, mask)))
            return tuple(m * a + (1.0 - m) * xi for a, xi, m in zip(ax, x, mask))

        diag = _diagonal(bulk, mu, grid, walls)
        if scale_preconditioner:
            scale = tuple(jnp.where(i > 0, jnp.sqrt(d0 / d), 0.0) for d0, d, i in zip(diag0, diag, interior))
        else:  # plain K0^-1 (for comparison: iterations then grow with the contrast)
            scale = tuple(jnp.where(i > 0, 1.0, 0.0) for i in interior)

        def precondition(r):
            z = _apply_reference(ref, tuple(s * ri for s, ri in zip(scale, r)), grid, walls)
            z = tuple(s * zi for s, zi in zip(scale, z))
            # free-wall normal displacements: Jacobi; prescribed ones: identity
            return tuple(zi + (1.0 - i) * (m * ri / d + (1.0 - m) * ri)
                         for zi, ri, d, i, m in zip(z, r, diag, interior, mask))

        x0 = tuple(vi * m for vi, m in zip(v, mask))
        x, stats = pcg(operator, rhs, x0, precondition, tolerance, max_iterations)
        return with_wall_values(x, walls, wall_displacement), stats

    if extra_energy is not None:
        return _newton(u, kt, kc, mu, grid, walls, wall_displacement, wall_traction, eigen, internal_pressure,
                       extra_energy, preconditioner_moduli, mask, ref, diag0, interior, trace_of, tolerance,
                       max_iterations, max_newton, dtype)

    def keep_going(state):
        _, _, changed, passes, _, _ = state
        return changed & (passes < max_newton)

    def newton(state):
        v, tension, _, passes, iterations, _ = state
        v, stats = linear_solve(v, tension)
        new_tension = (trace_of(v) > 0).astype(dtype)
        changed = jnp.any(new_tension != tension)
        return v, new_tension, changed, passes + 1, iterations + stats.iterations, stats.residual

    tension = (trace_of(u) > 0).astype(dtype)
    if max_newton == 1:  # the caller fixed the sign set (a fracture step iterates it with the damage)
        u, stats = linear_solve(u, tension)
        return WalledElasticity(u, (trace_of(u) > 0).astype(dtype), stats.iterations, jnp.ones((), jnp.int32),
                                stats.residual)
    start = (u, tension, jnp.asarray(True), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32),
             jnp.zeros((), dtype))
    u, tension, _, passes, iterations, residual = jax.lax.while_loop(keep_going, newton, start)
    return WalledElasticity(u, tension, iterations, passes, residual)


def _newton(u, kt, kc, mu, grid, walls, wall_displacement, wall_traction, eigen, internal_pressure, extra_energy,
            preconditioner_moduli, mask, ref, diag0, interior, trace_of, tolerance, max_iterations, max_newton, dtype):
    """Newton-CG on ``W + extra_energy`` (see :func:`solve_walled_elasticity`)."""

    def energy(x):
        x = with_wall_values(x, walls, wall_displacement)
        e = stored_energy(x, kt, kc, mu, grid, walls, eigen) + extra_energy(x)
        return e - load_potential(x, grid, walls, internal_pressure, wall_traction)

    force = jax.grad(energy)
    if preconditioner_moduli is None:
        preconditioner_moduli = (jnp.where(trace_of(u) > 0, kt, kc), mu)
    diag = _diagonal(preconditioner_moduli[0], preconditioner_moduli[1], grid, walls)
    scale = tuple(jnp.where(i > 0, jnp.sqrt(d0 / d), 0.0) for d0, d, i in zip(diag0, diag, interior))

    def precondition(r):
        z = _apply_reference(ref, tuple(s * ri for s, ri in zip(scale, r)), grid, walls)
        z = tuple(s * zi for s, zi in zip(scale, z))
        return tuple(zi + (1.0 - i) * (m * ri / d + (1.0 - m) * ri)
                     for zi, ri, d, i, m in zip(z, r, diag, interior, mask))

    undeformed = with_wall_values(tuple(jnp.zeros_like(x) for x in u), walls, wall_displacement)
    f0 = tuple(f * m for f, m in zip(force(undeformed), mask))
    load_norm = tree_dot(f0, precondition(f0))
    load_norm = jnp.where(load_norm > 0, load_norm, 1.0)

    def measure(x, r, rz):
        return jnp.sqrt(jnp.maximum(rz, 0.0) / load_norm)

    def residual_of(v):
        f = tuple(fi * m for fi, m in zip(force(v), mask))
        return measure(None, f, tree_dot(f, precondition(f)))

    def keep_going(state):
        _, passes, _, residual = state
        return (residual > tolerance) & (passes < max_newton)

    def step(state):
        v, passes, iterations, _ = state
        fv, apply = jax.linearize(force, v)
        rhs = tuple(-f * m for f, m in zip(fv, mask))

        def operator(x):
            ax = apply(tuple(xi * m for xi, m in zip(x, mask)))
            return tuple(m * a + (1.0 - m) * xi for a, xi, m in zip(ax, x, mask))

        x, stats = pcg(operator, rhs, tuple(jnp.zeros_like(vi) for vi in v), precondition, tolerance,
                       max_iterations, measure)
        v = tuple(vi + m * xi for vi, m, xi in zip(v, mask, x))
        return v, passes + 1, iterations + stats.iterations, residual_of(v)

    start = (u, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), residual_of(u))
    u, passes, iterations, residual = jax.lax.while_loop(keep_going, step, start)
    return WalledElasticity(u, (trace_of(u) > 0).astype(dtype), iterations, passes, residual)


def cell_strains(u, grid: Grid, walls: Walls, eigenstrain=None) -> dict:
    """Elastic strain per cell: normal components at the centre (2D ``zz`` = ``-eps*_zz``), shear components the
    mean of the edges around the cell (wall edges of roller and free walls count as zero)."""
    elastic, _ = _elastic_normals(u, grid, walls, eigenstrain)
    out = {"xx": elastic[0], "yy": elastic[1], "zz": elastic[2]}
    weights = _edge_weights(grid, walls, elastic[0].dtype)
    w = walls.axis
    for (a, b), strain in shear_strains(u, grid, walls).items():
        strain = strain * (weights[a, b] > 0)
        if _wall_pair(a, b, w):
            t = b if a == w else a
            along_t = 0.5 * (strain + jnp.roll(strain, -1, t))
            cell = 0.5 * (_slab(along_t, w, slice(None, -1)) + _slab(along_t, w, slice(1, None)))
        else:
            along_a = 0.5 * (strain + jnp.roll(strain, -1, a))
            cell = 0.5 * (along_a + jnp.roll(along_a, -1, b))
        out[AXES[a] + AXES[b]] = cell
    return out
