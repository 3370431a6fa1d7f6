"""Small-strain linear elasticity on a periodic cell: heterogeneous isotropic moduli, eigenstrain, mixed loading.

Equations (2D is plane strain, 3D is full)::

    div sigma = 0,   sigma = lam tr(eps_el) I + 2 mu eps_el,   eps_el = eps - eps*,
    eps = E + sym grad u~,   u~ periodic,

with Lame fields ``lam``, ``mu`` per cell (any stress unit; ``mu > 0`` and bulk modulus
``lam + 2 mu / 3 > 0`` everywhere), an eigenstrain ``eps*`` per cell (transformation,
swelling, thermal or plastic strain), and a uniform mean strain ``E``. The macroscopic load
is mixed, per component of ``E``: either its value is prescribed, or it is free and the mean
stress ``<sigma>`` of that component is prescribed (stack pressure along x:
``mean_stress={"xx": -p}``). In plane strain the total ``eps_zz`` is zero, ``sigma_zz`` follows
from the eigenstrain, and ``eps*`` may carry a ``zz`` component. Voids and cracks need a
small but positive stiffness: the caller floors the moduli (e.g. ``1e-6`` of the matrix, see
:func:`mix_moduli`); the solver converges at any finite contrast, more slowly as it grows.

Tensors are dicts keyed by component name, Voigt order: ``("xx", "yy", "zz", "xy")`` in 2D,
``("xx", "yy", "zz", "yz", "xz", "xy")`` in 3D (:func:`tensor_components`); the off-diagonal
entries are tensor components (``eps_xy = (du_x/dy + du_y/dx) / 2``), not engineering shears.

Discretisation: conforming bilinear (2D) / trilinear (3D) finite elements, one element per
grid cell with that cell's moduli and eigenstrain, integrated with 2^d Gauss points (exact
for this element). The periodic displacement fluctuation lives on the cell corners: node
``i`` sits at ``x = i h``, the low corner of cell ``i`` (whose centre is ``(i + 1/2) h``).
A conforming element discretisation does not ring at a stiffness jump and has no spurious
zero-energy (hourglass) mode, unlike the continuous Moulinec-Suquet Green operator or a
one-point rule. The free mean-strain components join the nodal displacements as unknowns
of one symmetric positive-definite system, the Hessian of

    W(u~, e) = sum_cells V/2^d sum_gauss eps_el : C : eps_el  -  V_cell_total sum_free m_j Sigma_j e_j

(``m_j`` is 1 for a normal and 2 for a shear component), whose stationarity is equilibrium
and ``<sigma_j> = Sigma_j``. It is solved by conjugate gradients preconditioned by the exact
inverse of the same system for constant reference moduli: translation invariant on the
periodic grid, so diagonal in Fourier space (a d x d real symmetric symbol per wavenumber,
built from the 1D element mass, stiffness and gradient symbols), and block-diagonal in
(u~, e) because a periodic field has zero mean gradient. The reference bulk and shear moduli
are the geometric means of the extremes of each field (only their ratio matters to CG).
After CG, the free mean strains get one exact correction so that the prescribed mean
stresses hold to round-off whatever the tolerance (the equilibrium residual left is of the
order of the tolerance).

Everything is pure JAX (``lax.while_loop`` for CG), jit-, vmap- and scan-friendly; the grid
and the *set* of stress-prescribed components are static, all values may be traced.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import Grid

AXES = "xyz"
_GAUSS = (0.5 - 0.5 / np.sqrt(3.0), 0.5 + 0.5 / np.sqrt(3.0))  # 2-point Gauss rule on [0, 1]


def tensor_components(ndim: int) -> tuple[str, ...]:
    """Names of the stored components of a symmetric tensor (Voigt order; plane strain keeps ``zz``)."""
    if ndim == 2:
        return ("xx", "yy", "zz", "xy")
    if ndim == 3:
        return ("xx", "yy", "zz", "yz", "xz", "xy")
    raise ValueError(f"elasticity needs a 2D or 3D grid, got {ndim}D")


def mean_components(ndim: int) -> tuple[str, ...]:
    """Components of the macroscopic strain/stress that can be loaded (plane strain: in-plane only)."""
    return ("xx", "yy", "xy") if ndim == 2 else tensor_components(3)


def _pair(name: str) -> tuple[int, int]:
    return AXES.index(name[0]), AXES.index(name[1])


def _name(a: int, b: int) -> str:
    return AXES[min(a, b)] + AXES[max(a, b)]


def _multiplicity(name: str) -> int:
    """``U : U`` of the unit symmetric tensor of a component: 1 (normal) or 2 (shear)."""
    return 1 if name[0] == name[1] else 2


class Elasticity(NamedTuple):
    """Solution of :func:`solve_elasticity` (a pytree; feed it back as ``initial`` to warm-start).

    displacement: periodic displacement fluctuation on the cell corners, shape ``(ndim, *grid.shape)``
                  (length unit of the grid times strain).
    mean_strain:  dict of the macroscopic strain components (:func:`mean_components`), scalars.
    mean_stress:  dict of the volume-averaged stress over the same components (stress unit).
    strain:       dict of cell-averaged total strain fields (:func:`tensor_components`; 2D ``zz`` = 0).
    stress:       dict of cell-averaged stress fields, same components (2D includes plane-strain ``sigma_zz``).
    iterations:   CG iterations (int32).
    residual:     relative residual of the returned solution (see :func:`solve_elasticity`).
    """

    displacement: jax.Array
    mean_strain: dict
    mean_stress: dict
    strain: dict
    stress: dict
    iterations: jax.Array
    residual: jax.Array


# ----------------------------------------------------------------------------- material helpers


def isotropic_moduli(young, poisson):
    """Lame constants from Young's modulus and Poisson's ratio: ``lam = E nu / ((1 + nu)(1 - 2 nu))``,
    ``mu = E / (2 (1 + nu))`` (same unit as ``young``; arrays broadcast)."""
    young, poisson = jnp.asarray(young), jnp.asarray(poisson)
    return young * poisson / ((1.0 + poisson) * (1.0 - 2.0 * poisson)), young / (2.0 * (1.0 + poisson))


def mix_moduli(weights, moduli, floor: float = 0.0):
    """Linear (Voigt) mix of per-phase Lame pairs, plus a residual stiffness for voids and cracks.

    ``lam = sum_p w_p lam_p + floor * lam_s``, ``mu = sum_p w_p mu_p + floor * mu_s``, with
    ``weights`` one interpolation field per phase (e.g. ``h(xi)``, ``1 - h(xi)``; a degraded
    phase carries ``g(d) h``), ``moduli`` one ``(lam_p, mu_p)`` pair of numbers per phase and
    ``s`` the phase of largest shear modulus. ``floor`` (about 1e-6 to 1e-3) keeps the
    stiffness positive where every weight vanishes, with the stiff phase's Poisson ratio.
    """
    if len(weights) != len(moduli):
        raise ValueError(f"{len(weights)} weight fields for {len(moduli)} phases")
    stiff = max(moduli, key=lambda pair: pair[1])
    lam = floor * stiff[0] + sum(w * m[0] for w, m in zip(weights, moduli))
    mu = floor * stiff[1] + sum(w * m[1] for w, m in zip(weights, moduli))
    return jnp.asarray(lam), jnp.asarray(mu)


# ----------------------------------------------------------------------------- tensor helpers


def eigenstrain_components(eigenstrain, ndim: int, shape=None, dtype=None) -> dict:
    """Eigenstrain as a dict of components: ``None`` -> ``{}``; a scalar field ``e`` -> dilatational
    ``e I`` (``xx``, ``yy``, ``zz``; in plane strain too); a dict -> checked, missing components zero."""
    names = tensor_components(ndim)
    if eigenstrain is None:
        return {}
    if isinstance(eigenstrain, dict):
        unknown = set(eigenstrain) - set(names)
        if unknown:
            raise ValueError(f"unknown eigenstrain components {sorted(unknown)}; allowed in {ndim}D: {names}")
        out = dict(eigenstrain)
    else:
        out = {"xx": eigenstrain, "yy": eigenstrain, "zz": eigenstrain}
    for key, value in out.items():
        value = jnp.asarray(value, dtype)
        if shape is not None:
            try:
                value = jnp.broadcast_to(value, shape)
            except ValueError:
                raise ValueError(f"eigenstrain {key} has shape {value.shape}, grid has {shape}") from None
        out[key] = value
    return out


def strain_from_displacement(displacement, mean_strain: dict, grid: Grid) -> dict:
    """Cell-averaged total strain ``E + sym grad u~`` (the element strain at the cell centre).

    displacement: nodal fluctuation ``(ndim, *grid.shape)``; mean_strain: dict over
    :func:`mean_components` (missing = 0). Returns every :func:`tensor_components` entry
    (2D ``zz`` is the plane-strain zero).
    """
    ndim = grid.ndim
    centre = [[_interpolate_across(_difference(displacement[a], b, grid.spacing[b]), b, (1,) * ndim, ndim, centre=True)
               for b in range(ndim)] for a in range(ndim)]
    out = {}
    for name in tensor_components(ndim):
        a, b = _pair(name)
        if a < ndim and b < ndim:
            out[name] = 0.5 * (centre[a][b] + centre[b][a]) + mean_strain.get(name, 0.0)
        else:
            out[name] = jnp.zeros(grid.shape, displacement.dtype)
    return out


def stress_from_strain(lam, mu, strain: dict, eigenstrain=None) -> dict:
    """Hooke's law ``sigma = lam tr(eps - eps*) I + 2 mu (eps - eps*)`` per component (dicts in, dict out).

    ``strain`` carries every :func:`tensor_components` entry (plane strain: ``zz`` = 0).
    """
    ndim = 3 if "yz" in strain else 2
    eigen = eigenstrain_components(eigenstrain, ndim)
    elastic = {k: v - eigen[k] if k in eigen else v for k, v in strain.items()}
    trace = elastic["xx"] + elastic["yy"] + elastic["zz"]
    return {k: 2.0 * mu * v + (lam * trace if k[0] == k[1] else 0.0) for k, v in elastic.items()}


def elastic_energy_density(lam, mu, strain: dict, eigenstrain=None):
    """``psi = (lam / 2) tr(eps_el)^2 + mu eps_el : eps_el`` per cell (stress unit = energy per volume).

    Evaluated with the cell-averaged strain, so its sum is a lower bound of the Gauss-point
    energy the solver minimises (equal for a uniform strain).
    """
    ndim = 3 if "yz" in strain else 2
    eigen = eigenstrain_components(eigenstrain, ndim)
    elastic = {k: v - eigen[k] if k in eigen else v for k, v in strain.items()}
    trace = elastic["xx"] + elastic["yy"] + elastic["zz"]
    square = sum(_multiplicity(k) * v * v for k, v in elastic.items())
    return 0.5 * lam * trace * trace + mu * square


def hydrostatic_stress(stress: dict):
    """``sigma_h = tr(sigma) / 3`` (plane strain includes ``sigma_zz``); pressure is ``-sigma_h``."""
    return (stress["xx"] + stress["yy"] + stress["zz"]) / 3.0


def von_mises_stress(stress: dict):
    """``sigma_e = sqrt(3/2 s:s)``, ``s`` the deviator of the full 3x3 stress (plane strain included)."""
    xx, yy, zz = stress["xx"], stress["yy"], stress["zz"]
    shear = sum(stress[k] ** 2 for k in ("xy", "xz", "yz") if k in stress)
    return jnp.sqrt(0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2) + 3.0 * shear)


# ----------------------------------------------------------------------------- element operator


def _difference(v, axis: int, h: float):
    """Forward difference ``(v[i+1] - v[i]) / h`` along ``axis``: node values -> cell values."""
    return (jnp.roll(v, -1, axis) - v) / h


def _difference_transpose(s, axis: int, h: float):
    return (jnp.roll(s, 1, axis) - s) / h


def _interpolate(v, axis: int, g: float):
    """Linear interpolation at local coordinate ``g`` of the cell: node values -> cell values."""
    return (1.0 - g) * v + g * jnp.roll(v, -1, axis)


def _interpolate_transpose(s, axis: int, g: float):
    return (1.0 - g) * s + g * jnp.roll(s, 1, axis)


def _interpolate_across(v, skip: int, point, ndim: int, centre: bool = False):
    """Interpolate a differenced field along every axis but ``skip`` (Gauss point ``point`` or the centre)."""
    for c in range(ndim):
        if c != skip:
            v = _interpolate(v, c, 0.5 if centre else _GAUSS[point[c]])
    return v


def _transverse(point, skip: int):
    return tuple(p for c, p in enumerate(point) if c != skip)


def _internal_forces(u, offset: dict, lam, mu, grid: Grid, mean_names: tuple):
    """Nodal forces ``sum_cells V/2^d sum_gauss B^T sigma`` and ``V_total m_j <sigma_j>`` for ``mean_names``.

    ``u``: nodal fluctuation ``(ndim, *shape)``; ``offset``: strain added at every Gauss point
    (mean strain minus eigenstrain; scalars or cell fields; 2D ``zz`` enters the trace only).
    """
    ndim, spacing = grid.ndim, grid.spacing
    weight = grid.cell_volume / 2**ndim
    differences = [[_difference(u[a], b, spacing[b]) for b in range(ndim)] for a in range(ndim)]
    gradients = {}  # (a, b, transverse Gauss indices) -> du_a/dx_b at those points (constant along b)

    def gradient(a, b, point):
        key = (a, b, _transverse(point, b))
        if key not in gradients:
            gradients[key] = _interpolate_across(differences[a][b], b, point, ndim)
        return gradients[key]

    collected = {}  # (a, b, transverse) -> sigma_ab summed over the two Gauss points along b
    sums = {name: 0.0 for name in mean_names}
    for point in itertools.product((0, 1), repeat=ndim):
        strain = {}
        for a in range(ndim):
            for b in range(a, ndim):
                name = _name(a, b)
                strain[name] = 0.5 * (gradient(a, b, point) + gradient(b, a, point)) + offset.get(name, 0.0)
        trace = sum(strain[_name(a, a)] for a in range(ndim)) + (offset.get("zz", 0.0) if ndim == 2 else 0.0)
        for name, value in strain.items():
            sigma = 2.0 * mu * value + (lam * trace if name[0] == name[1] else 0.0)
            if name in sums:
                sums[name] = sums[name] + sigma
            a, b = _pair(name)
            for first, second in ((a, b), (b, a)) if a != b else ((a, b),):
                key = (first, second, _transverse(point, second))
                collected[key] = collected.get(key, 0.0) + sigma
    forces = []
    for a in range(ndim):
        total = 0.0
        for b in range(ndim):
            across = [c for c in range(ndim) if c != b]
            for transverse in itertools.product((0, 1), repeat=ndim - 1):
                s = collected[(a, b, transverse)]
                for c, p in zip(across, transverse):
                    s = _interpolate_transpose(s, c, _GAUSS[p])
                total = total + _difference_transpose(s, b, spacing[b])
        forces.append(weight * total)
    means = jnp.stack([_multiplicity(n) * weight * jnp.sum(sums[n]) for n in mean_names]) if mean_names else None
    return jnp.stack(forces), means


# ----------------------------------------------------------------------------- reference preconditioner


def _symbol_factors(grid: Grid):
    """Per axis: 1D element mass ``h (2 + cos t) / 3``, stiffness ``(2 - 2 cos t) / h`` and ``sin t``
    symbols at the rfft wavenumbers ``t = 2 pi k / n``, shaped to broadcast."""
    ndim = grid.ndim
    factors = []
    for axis, (n, h) in enumerate(zip(grid.shape, grid.spacing)):
        count = n // 2 + 1 if axis == ndim - 1 else n
        theta = 2.0 * np.pi * np.arange(count) / n
        shape = [1] * ndim
        shape[axis] = count
        factors.append(tuple(np.reshape(f, shape) for f in (h * (2.0 + np.cos(theta)) / 3.0,
                                                             (2.0 - 2.0 * np.cos(theta)) / h, np.sin(theta))))
    return factors


def _reference_symbol(grid: Grid, lam0, mu0):
    """Fourier symbol ``K0_ab(k) = (lam0 + mu0) T_ab + mu0 tr(T) delta_ab`` of the constant-moduli
    element stiffness, ``T_ab`` the symbol of ``int d_a phi_I d_b phi_J`` (tensor products of 1D
    symbols). Returns the entries ``{(a, b): array}`` for ``a <= b``."""
    ndim = grid.ndim
    factors = _symbol_factors(grid)

    def product(axes_excluded):
        out = 1.0
        for c in range(ndim):
            if c not in axes_excluded:
                out = out * factors[c][0]
        return out

    t = {}
    for a in range(ndim):
        t[a, a] = factors[a][1] * product((a,))
        for b in range(a + 1, ndim):
            t[a, b] = factors[a][2] * factors[b][2] * product((a, b))
    trace = sum(t[a, a] for a in range(ndim))
    return {key: (lam0 + mu0) * value + (mu0 * trace if key[0] == key[1] else 0.0) for key, value in t.items()}


def _inverse_symbol(k: dict, ndim: int):
    """Inverse of the symmetric ``ndim x ndim`` symbol per wavenumber (adjugate over determinant), 0 at k = 0."""
    if ndim == 2:
        adj = {(0, 0): k[1, 1], (1, 1): k[0, 0], (0, 1): -k[0, 1]}
        det = k[0, 0] * k[1, 1] - k[0, 1] ** 2
    else:
        adj = {
            (0, 0): k[1, 1] * k[2, 2] - k[1, 2] ** 2,
            (0, 1): k[0, 2] * k[1, 2] - k[0, 1] * k[2, 2],
            (0, 2): k[0, 1] * k[1, 2] - k[0, 2] * k[1, 1],
            (1, 1): k[0, 0] * k[2, 2] - k[0, 2] ** 2,
            (1, 2): k[0, 1] * k[0, 2] - k[0, 0] * k[1, 2],
            (2, 2): k[0, 0] * k[1, 1] - k[0, 1] ** 2,
        }
        det = k[0, 0] * adj[0, 0] + k[0, 1] * adj[0, 1] + k[0, 2] * adj[0, 2]
    zero = det == 0  # only the translation mode k = 0
    inverse_det = jnp.where(zero, 0.0, 1.0 / jnp.where(zero, 1.0, det))
    return {key: value * inverse_det for key, value in adj.items()}


def _apply_inverse_symbol(inverse: dict, r, ndim: int):
    axes = tuple(range(1, ndim + 1))
    spectrum = jnp.fft.rfftn(r, axes=axes)
    out = []
    for a in range(ndim):
        out.append(sum(inverse[min(a, b), max(a, b)] * spectrum[b] for b in range(ndim)))
    return jnp.fft.irfftn(jnp.stack(out), s=r.shape[1:], axes=axes).astype(r.dtype)


# ----------------------------------------------------------------------------- solver


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_moduli(lam, mu, grid: Grid):
    for label, field in (("lam", lam), ("mu", mu)):
        if field.shape != grid.shape:
            raise ValueError(f"{label} has shape {field.shape}, grid has {grid.shape}")
    if _is_concrete(lam) and _is_concrete(mu):
        bulk = lam + 2.0 * mu / 3.0
        low_mu, low_bulk = float(jnp.min(mu)), float(jnp.min(bulk))
        if not (low_mu > 0.0 and low_bulk > 0.0 and np.isfinite(float(jnp.max(mu) + jnp.max(bulk)))):
            raise ValueError(
                f"moduli must be finite with mu > 0 and bulk modulus lam + 2 mu / 3 > 0 in every cell "
                f"(min mu {low_mu:g}, min bulk {low_bulk:g}); floor voids and cracks (mix_moduli)")


def _loading(mean_strain, mean_stress, ndim: int):
    """Split the macroscopic load: (prescribed strain dict over every mean component, free names, stresses)."""
    mean_strain, mean_stress = dict(mean_strain or {}), dict(mean_stress or {})
    names = mean_components(ndim)
    for label, given in (("mean_strain", mean_strain), ("mean_stress", mean_stress)):
        unknown = set(given) - set(names)
        if unknown:
            extra = " (plane strain keeps the total eps_zz = 0)" if ndim == 2 and "zz" in unknown else ""
            raise ValueError(f"{label}: unknown components {sorted(unknown)}; loadable in {ndim}D: {names}{extra}")
    both = set(mean_strain) & set(mean_stress)
    if both:
        raise ValueError(f"components {sorted(both)} are prescribed both as mean strain and as mean stress; "
                         "give each component one or the other")
    free = tuple(n for n in names if n in mean_stress)
    return {n: mean_strain.get(n, 0.0) for n in names if n not in mean_stress}, free, mean_stress


class _State(NamedTuple):
    x: tuple
    r: tuple
    p: tuple
    rz: jax.Array
    iterations: jax.Array
    residual: jax.Array


def _dot(x, y):
    return sum(jnp.vdot(a, b) for a, b in zip(x, y))


def _axpy(alpha, x, y):
    return tuple(alpha * a + b for a, b in zip(x, y))


def solve_elasticity(lam, mu, grid: Grid, eigenstrain=None, mean_strain=None, mean_stress=None, initial=None,
                     tolerance=1e-8, max_iterations=1000) -> Elasticity:
    """Solve periodic small-strain elasticity ``div(C : (E + sym grad u~ - eps*)) = 0`` (see the module notes).

    lam, mu:     Lame fields per cell, shape ``grid.shape`` (stress unit; ``mu > 0``, ``lam + 2 mu/3 > 0``).
    eigenstrain: ``None``, a dilatational field ``e`` (``e I``, zz included in 2D), or a dict of
                 component fields (:func:`tensor_components`); broadcast to the grid.
    mean_strain: dict ``{component: value}`` of prescribed mean-strain components.
    mean_stress: dict ``{component: value}`` of prescribed mean-stress components; their mean
                 strains are unknowns. Components in neither dict have mean strain 0; a
                 component in both is an error. Loadable: :func:`mean_components`.
    initial:     a previous :class:`Elasticity` (or anything with ``displacement`` and
                 ``mean_strain``) to start from; ``None`` starts from zero.
    tolerance, max_iterations: CG stops when the relative residual
                 ``sqrt(r . P0 r / b . P0 b)`` is at most ``tolerance`` (checked on the initial
                 guess first: 0 iterations when it already holds), ``r`` the residual of the
                 augmented system (nodal forces and mean-stress mismatch), ``b`` its right-hand
                 side and ``P0`` the reference-medium inverse (a dual energy norm).

    Returns an :class:`Elasticity`; its ``residual`` is recomputed for the returned solution
    (after the exact mean-stress correction, so it may sit slightly above ``tolerance``).
    """
    ndim = grid.ndim
    tensor_components(ndim)
    lam, mu = jnp.asarray(lam), jnp.asarray(mu)
    fixed, free, stresses = _loading(mean_strain, mean_stress, ndim)
    eigen_in = eigenstrain_components(eigenstrain, ndim)
    dtype = jnp.result_type(lam.dtype, mu.dtype, jnp.float32, *[v.dtype for v in eigen_in.values()])
    lam, mu = lam.astype(dtype), mu.astype(dtype)
    _check_moduli(lam, mu, grid)
    eigen = eigenstrain_components(eigen_in, ndim, grid.shape, dtype) if eigen_in else {}
    fixed = {n: jnp.asarray(v, dtype) for n, v in fixed.items()}
    target = jnp.asarray([stresses[n] for n in free], dtype) if free else jnp.zeros((0,), dtype)
    multiplicity = jnp.asarray([_multiplicity(n) for n in free], dtype)
    total_volume = grid.cell_volume * grid.size

    # Reference medium: geometric means of the extreme shear and bulk moduli.
    bulk = lam + 2.0 * mu / 3.0
    mu0 = jnp.sqrt(jnp.min(mu) * jnp.max(mu))
    lam0 = jnp.sqrt(jnp.min(bulk) * jnp.max(bulk)) - 2.0 * mu0 / 3.0
    inverse = _inverse_symbol(_reference_symbol(grid, lam0, mu0), ndim)
    if free:
        normal = jnp.asarray([1.0 if n[0] == n[1] else 0.0 for n in free], dtype)
        block = total_volume * (lam0 * jnp.outer(normal, normal) + 2.0 * mu0 * jnp.diag(multiplicity))
        block_inverse = jnp.linalg.inv(block)

    def precondition(r):
        u, e = r
        return (_apply_inverse_symbol(inverse, u, ndim), block_inverse @ e if free else e)

    def operator(x):
        u, e = x
        forces, means = _internal_forces(u, {n: e[j] for j, n in enumerate(free)}, lam, mu, grid, free)
        return (forces, means if free else e)

    offset = {n: fixed.get(n, 0.0) - eigen.get(n, 0.0) for n in tensor_components(ndim)}
    forces0, means0 = _internal_forces(jnp.zeros((ndim,) + grid.shape, dtype), offset, lam, mu, grid, free)
    b = (-forces0, total_volume * multiplicity * target - means0 if free else jnp.zeros((0,), dtype))
    b_norm = _dot(b, precondition(b))
    b_zero = b_norm <= 0
    scale = jnp.where(b_zero, 1.0, b_norm)

    if initial is None:
        u0 = jnp.zeros((ndim,) + grid.shape, dtype)
        e0 = jnp.zeros((len(free),), dtype)
    else:
        u0 = jnp.asarray(initial.displacement, dtype)
        if u0.shape != (ndim,) + grid.shape:
            raise ValueError(f"initial displacement has shape {u0.shape}, expected {(ndim,) + grid.shape}")
        u0 = u0 - jnp.mean(u0, axis=tuple(range(1, ndim + 1)), keepdims=True)
        e0 = jnp.asarray([initial.mean_strain[n] for n in free], dtype) if free else jnp.zeros((0,), dtype)
        u0, e0 = jnp.where(b_zero, 0.0, u0), jnp.where(b_zero, 0.0, e0)  # zero load: the answer is zero
    x0 = (u0, e0)
    r0 = _axpy(-1.0, operator(x0), b)
    z0 = precondition(r0)
    rz0 = _dot(r0, z0)
    zero = jnp.zeros((), dtype)
    state = _State(x0, r0, z0, rz0, jnp.zeros((), jnp.int32), jnp.sqrt(jnp.maximum(rz0, 0.0) / scale))

    def keep_going(s: _State):
        return (s.residual > tolerance) & (s.iterations < max_iterations)

    def step(s: _State):
        ap = operator(s.p)
        pap = _dot(s.p, ap)
        alpha = jnp.where(pap > 0, s.rz / jnp.where(pap > 0, pap, 1.0), zero)
        x = _axpy(alpha, s.p, s.x)
        r = _axpy(-alpha, ap, s.r)
        z = precondition(r)
        rz = _dot(r, z)
        beta = jnp.where(s.rz > 0, rz / jnp.where(s.rz > 0, s.rz, 1.0), zero)
        p = _axpy(beta, s.p, z)
        return _State(x, r, p, rz, s.iterations + 1, jnp.sqrt(jnp.maximum(rz, 0.0) / scale))

    final = jax.lax.while_loop(keep_going, step, state)
    u, e = final.x

    full = dict(fixed)
    for j, n in enumerate(free):
        full[n] = e[j]
    strain = strain_from_displacement(u, full, grid)
    stress = stress_from_strain(lam, mu, strain, eigen)
    if free:
        # Exact mean-stress correction: <sigma> is affine in the free mean strains with matrix <C>_ff.
        mismatch = target - jnp.stack([jnp.mean(stress[n]) for n in free])
        mean_lam, mean_mu = jnp.mean(lam), jnp.mean(mu)
        normal = jnp.asarray([1.0 if n[0] == n[1] else 0.0 for n in free], dtype)
        stiffness = mean_lam * jnp.outer(normal, normal) + 2.0 * mean_mu * jnp.eye(len(free), dtype=dtype)
        correction = jnp.linalg.solve(stiffness, mismatch)
        e = e + correction
        for j, n in enumerate(free):
            full[n] = e[j]
            strain[n] = strain[n] + correction[j]
        stress = stress_from_strain(lam, mu, strain, eigen)
    r = _axpy(-1.0, operator((u, e)), b)
    residual = jnp.sqrt(jnp.maximum(_dot(r, precondition(r)), 0.0) / scale)
    mean_stress_out = {n: jnp.mean(stress[n]) for n in mean_components(ndim)}
    return Elasticity(u, {n: jnp.asarray(full[n], dtype) for n in mean_components(ndim)}, mean_stress_out,
                      strain, stress, final.iterations, residual)
