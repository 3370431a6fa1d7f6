"""Small-strain linear elasticity on a periodic cell: heterogeneous isotropic moduli, eigenstrain, mixed loading.

Equations (2D is plane strain, 3D is full)::

    div sigma = 0,   sigma = lam tr(eps_el) I + 2 mu eps_el,   eps_el = eps - eps*,
    eps = E + sym grad u~,   u~ periodic,

with Lame fields ``lam``, ``mu`` per cell (any stress unit; ``mu > 0`` and bulk modulus
``lam + 2 mu / 3 > 0`` in every cell), an eigenstrain ``eps*`` per cell (transformation,
swelling, thermal or plastic strain) and a uniform mean strain ``E``. The macroscopic load
is mixed, per component of ``E``: either its value is prescribed, or it is free and the mean
stress ``<sigma>`` of that component is prescribed (stack pressure along x:
``mean_stress={"xx": -p, "yy": 0, "xy": 0}``). In plane strain the total ``eps_zz`` is zero,
``sigma_zz`` follows from the in-plane strain and the eigenstrain, which may carry a ``zz``
component. Voids and cracks need a small positive stiffness: the caller floors the moduli
(e.g. ``1e-6`` of the matrix, :func:`phasefield.physics.mechanics.mix_moduli`); the solver converges at any finite
contrast, more slowly as it grows.

Tensors are dicts keyed by component name, Voigt order: ``("xx", "yy", "zz", "xy")`` in 2D,
``("xx", "yy", "zz", "yz", "xz", "xy")`` in 3D (:func:`tensor_components`); off-diagonal
entries are tensor components (``eps_xy = (du_x/dy + du_y/dx) / 2``), not engineering shears.

Discretisation: the staggered (marker-and-cell) grid. Displacement component ``u_a`` of cell
``i`` sits at the centre of the cell's low face normal to axis ``a`` (``x_a = i_a h_a``, the
other coordinates at the cell centre). Normal strains and stresses live at cell centres, with
the cell's ``lam``, ``mu`` and eigenstrain; the shear strain and stress ``ab`` live on the
cell's low ``(a, b)`` edge (``x_a = i_a h_a``, ``x_b = i_b h_b``), with a shear modulus averaged
over the four cells around that edge (``shear_mean``: arithmetic, the quarter-cell quadrature
of the cells' energies, or harmonic, the series value, which keeps a one-cell void layer
from carrying shear) and the same average of the cells' shear eigenstrain. The discrete
energy ``W = sum_cells V (lam/2 tr^2 + mu sum_a eps_aa^2) + sum_edges V 2 mu_e eps_ab^2`` is a
sum of squares, so the operator is symmetric positive definite (up to rigid translation),
second-order, free of the ringing of the continuous Moulinec-Suquet Green operator and of the
checkerboard modes of collocated or one-point-integrated schemes. Stress fields are returned
per cell: normal components as computed, shear components the mean of the four edges around
the cell, so that their volume average is the exact discrete mean stress.

The free mean-strain components join the displacements as unknowns of one symmetric
positive-definite system, the Hessian of ``W(u~, e) - V_total sum_free m_j Sigma_j e_j``
(``m_j`` is 1 for a normal and 2 for a shear component), whose stationarity is equilibrium
plus ``<sigma_j> = Sigma_j``. It is solved by conjugate gradients preconditioned by the exact
inverse of the same system for constant reference moduli ``lam0``, ``mu0``: translation
invariant on the periodic grid, so diagonal in Fourier space, where it is the continuum
Navier operator with the wavenumber replaced by the backward-difference symbol
``B_a = (1 - exp(-i t_a)) / h_a`` and inverted in closed form (Sherman-Morrison), and
block-diagonal in ``(u~, e)`` because a periodic field has zero mean gradient. CG is invariant
to the scale of the preconditioner; the ratio ``lam0 / mu0`` comes from the geometric means of
the extreme shear and bulk moduli. After CG the free mean strains get one exact correction
(the mean stress is affine in them with the cell-averaged stiffness), so the prescribed mean
stresses hold to round-off whatever the tolerance, leaving an equilibrium residual of the
order of the tolerance.

Everything is pure JAX (CG is :func:`phasefield.operators.krylov.pcg`), jit-, vmap- and scan-friendly; the grid,
``shear_mean`` and the *set* of stress-prescribed components are static, all values may be
traced. Shifts are single ``jnp.roll``s (nested rolls compile to slow code on CPU).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import PERIODIC, Boundary, Grid
from phasefield.operators.krylov import pcg, tree_axpy, tree_dot
from phasefield.operators.spectral import SpectralBasis
from phasefield.recompute import recomputed

AXES = "xyz"
SHEAR_MEANS = ("arithmetic", "harmonic")


def tensor_components(ndim: int) -> tuple[str, ...]:
    """Names of the stored components of a symmetric tensor (Voigt order; plane strain keeps ``zz``)."""
    if ndim == 2:
        return ("xx", "yy", "zz", "xy")
    if ndim == 3:
        return ("xx", "yy", "zz", "yz", "xz", "xy")
    raise ValueError(f"elasticity needs a 2D or 3D grid, got {ndim}D")


def mean_components(ndim: int) -> tuple[str, ...]:
    """Components of the macroscopic strain and stress that can be loaded (plane strain: in-plane only)."""
    return ("xx", "yy", "xy") if ndim == 2 else tensor_components(3)


def _pair(name: str) -> tuple[int, int]:
    return AXES.index(name[0]), AXES.index(name[1])


def _shear_pairs(ndim: int):
    return [(a, b) for a in range(ndim) for b in range(a + 1, ndim)]


def _multiplicity(name: str) -> int:
    """``U : U`` of the unit symmetric tensor of a component: 1 (normal) or 2 (shear)."""
    return 1 if name[0] == name[1] else 2


class Elasticity(NamedTuple):
    """Solution of :func:`solve_elasticity` (a pytree; pass it back as ``initial`` to warm-start).

    displacement: periodic displacement fluctuation, shape ``(ndim, *grid.shape)``; component
                  ``a`` at the low face of each cell normal to axis ``a`` (grid length unit).
    mean_strain:  dict of the macroscopic strain over :func:`mean_components` (scalars).
    mean_stress:  dict of the volume-averaged stress over the same components (stress unit).
    strain:       dict of cell-averaged total strain fields (:func:`tensor_components`; 2D ``zz`` = 0).
    stress:       dict of cell stress fields, same components (2D includes the plane-strain ``sigma_zz``).
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
    ``mu = E / (2 (1 + nu))`` (the unit of ``young``; arrays broadcast)."""
    young, poisson = jnp.asarray(young), jnp.asarray(poisson)
    return young * poisson / ((1.0 + poisson) * (1.0 - 2.0 * poisson)), young / (2.0 * (1.0 + poisson))


# ----------------------------------------------------------------------------- tensor helpers


def eigenstrain_components(eigenstrain, ndim: int, shape=None, dtype=None) -> dict:
    """Eigenstrain as a dict of components: ``None`` gives ``{}``; a scalar or field ``e`` the
    dilatational ``e I`` (``xx``, ``yy``, ``zz``, in plane strain too); a dict is checked and
    returned (missing components are zero). ``shape`` broadcasts every component to the grid."""
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


def stress_from_strain(lam, mu, strain: dict, eigenstrain=None) -> dict:
    """Hooke's law per cell, ``sigma = lam tr(eps - eps*) I + 2 mu (eps - eps*)`` (dicts in, dict out).

    ``strain`` carries every :func:`tensor_components` entry (plane strain: ``zz`` = 0). The
    solver's own shear stresses differ slightly: they are edge values averaged to the cell.
    """
    ndim = 3 if "yz" in strain else 2
    eigen = eigenstrain_components(eigenstrain, ndim)
    elastic = {k: v - eigen[k] if k in eigen else v for k, v in strain.items()}
    trace = elastic["xx"] + elastic["yy"] + elastic["zz"]
    return {k: 2.0 * mu * v + (lam * trace if k[0] == k[1] else 0.0) for k, v in elastic.items()}


def elastic_energy_density(lam, mu, strain: dict, eigenstrain=None):
    """``psi = (lam / 2) tr(eps_el)^2 + mu eps_el : eps_el`` per cell (stress unit = energy per volume),
    from cell-averaged strains (e.g. ``Elasticity.strain``)."""
    ndim = 3 if "yz" in strain else 2
    eigen = eigenstrain_components(eigenstrain, ndim)
    elastic = {k: v - eigen[k] if k in eigen else v for k, v in strain.items()}
    trace = elastic["xx"] + elastic["yy"] + elastic["zz"]
    square = sum(_multiplicity(k) * v * v for k, v in elastic.items())
    return 0.5 * lam * trace * trace + mu * square


def hydrostatic_stress(stress: dict):
    """``sigma_h = tr(sigma) / 3`` (plane strain includes ``sigma_zz``); the pressure is ``-sigma_h``."""
    return (stress["xx"] + stress["yy"] + stress["zz"]) / 3.0


def normal_stress(stress: dict, normal):
    """``n . sigma . n`` for the unit vector field ``normal`` (one array per axis; its sign drops out)."""
    ndim = len(normal)
    return sum(normal[a] * normal[b] * stress["xyz"[min(a, b)] + "xyz"[max(a, b)]]
               for a in range(ndim) for b in range(ndim))


def von_mises_stress(stress: dict):
    """``sigma_e = sqrt(3/2 s : s)``, ``s`` the deviator of the full 3x3 stress (plane strain included)."""
    xx, yy, zz = stress["xx"], stress["yy"], stress["zz"]
    shear = sum(stress[k] ** 2 for k in ("xy", "xz", "yz") if k in stress)
    return jnp.sqrt(0.5 * ((xx - yy) ** 2 + (yy - zz) ** 2 + (zz - xx) ** 2) + 3.0 * shear)


# ----------------------------------------------------------------------------- staggered operator


def _at(v, axis: int, step: int):
    """Periodic neighbour: the value at index ``i + step`` along ``axis``."""
    return jnp.roll(v, -step, axis)


def _to_edges(cell, a: int, b: int):
    """Mean of a cell field over the four cells around each low ``(a, b)`` edge."""
    low_a = _at(cell, a, -1)
    return 0.25 * (cell + low_a + _at(cell, b, -1) + _at(low_a, b, -1))


def _to_cells(edge, a: int, b: int):
    """Mean of an edge field over the four ``(a, b)`` edges around each cell."""
    high_a = _at(edge, a, 1)
    return 0.25 * (edge + high_a + _at(edge, b, 1) + _at(high_a, b, 1))


def _edge_shear_moduli(mu, ndim: int, shear_mean: str) -> dict:
    out = {}
    for a, b in _shear_pairs(ndim):
        if shear_mean == "arithmetic":
            out[a, b] = _to_edges(mu, a, b)
        else:
            out[a, b] = 1.0 / _to_edges(1.0 / mu, a, b)
    return out


def _normal_strains(u, grid: Grid):
    return [(_at(u[a], a, 1) - u[a]) / grid.spacing[a] for a in range(grid.ndim)]


def _edge_shear_strain(u, grid: Grid, a: int, b: int):
    h = grid.spacing
    return 0.5 * ((u[a] - _at(u[a], b, -1)) / h[b] + (u[b] - _at(u[b], a, -1)) / h[a])


def _stresses(u, normal_offset: dict, shear_offset: dict, lam, mu, edge_mu: dict, grid: Grid):
    """Normal stresses at cell centres ``{a: sigma_aa}`` and shear stresses on edges ``{(a, b): sigma_ab}``.

    ``normal_offset`` / ``shear_offset``: strain added to the cell / edge strains (mean strain
    minus eigenstrain; scalars or fields; 2D ``"zz"`` enters the trace only).
    """
    ndim = grid.ndim
    normal = [e + normal_offset.get(AXES[a] * 2, 0.0) for a, e in enumerate(_normal_strains(u, grid))]
    trace = sum(normal) + (normal_offset.get("zz", 0.0) if ndim == 2 else 0.0)
    sigma_normal = {a: lam * trace + 2.0 * mu * normal[a] for a in range(ndim)}
    sigma_shear = {}
    for a, b in _shear_pairs(ndim):
        strain = _edge_shear_strain(u, grid, a, b) + shear_offset.get(AXES[a] + AXES[b], 0.0)
        sigma_shear[a, b] = 2.0 * edge_mu[a, b] * strain
    return sigma_normal, sigma_shear


def _internal_forces(u, normal_offset, shear_offset, lam, mu, edge_mu, grid: Grid, mean_names: tuple):
    """``dW/du`` (force on each face unknown) and ``dW/de_j = V_total m_j <sigma_j>`` for ``mean_names``."""
    ndim, h, volume = grid.ndim, grid.spacing, grid.cell_volume
    sigma_normal, sigma_shear = _stresses(u, normal_offset, shear_offset, lam, mu, edge_mu, grid)
    forces = []
    for a in range(ndim):
        total = (_at(sigma_normal[a], a, -1) - sigma_normal[a]) / h[a]
        for b in range(ndim):
            if b != a:
                s = sigma_shear[min(a, b), max(a, b)]
                total = total + (s - _at(s, b, 1)) / h[b]
        forces.append(volume * total)
    means = []
    for name in mean_names:
        a, b = _pair(name)
        field = sigma_normal[a] if a == b else sigma_shear[a, b]
        means.append(_multiplicity(name) * volume * jnp.sum(field))
    return tuple(forces), (jnp.stack(means) if means else None)


def _difference_symbols(grid: Grid, spectral_shape):
    """Backward-difference symbols ``B_a = (1 - exp(-i t_a)) / h_a`` at the rfft wavenumbers, broadcastable to
    ``spectral_shape`` (:attr:`SpectralBasis.spectral_shape`: the slabs' zero padding of axis 1 gets ``B = 0``)."""
    ndim = grid.ndim
    out = []
    for axis, (n, h) in enumerate(zip(grid.shape, grid.spacing)):
        count = n // 2 + 1 if axis == ndim - 1 else n
        theta = 2.0 * np.pi * np.arange(count) / n
        shape = [1] * ndim
        shape[axis] = spectral_shape[axis]
        out.append(np.reshape(np.pad((1.0 - np.exp(-1j * theta)) / h, (0, spectral_shape[axis] - count)), shape))
    return out


def _reference_inverse(residual, grid: Grid, lam0, mu0, slabs=None):
    """Exact inverse of the constant-moduli staggered operator (zero-mean result).

    In Fourier space ``K0 = V [(lam0 + mu0) B B^H + mu0 |B|^2 I]``, so
    ``K0^-1 r = (r - c B (B^H r) / |B|^2) / (V mu0 |B|^2)`` with ``c = (lam0 + mu0) / (lam0 + 2 mu0)``.
    The transforms are the periodic :class:`SpectralBasis`' (the whole-grid rfft; with ``slabs``, a
    :class:`phasefield.decomposition.Slabs`, the slab transform: one ``all_to_all`` each way, no device
    holds a whole field).
    """
    dtype = residual[0].dtype
    basis = SpectralBasis(grid, Boundary.uniform(grid.ndim, PERIODIC), dtype, slabs)
    complex_dtype = jnp.result_type(dtype, jnp.complex64)
    symbols = [jnp.asarray(s, complex_dtype) for s in _difference_symbols(grid, basis.spectral_shape)]
    norm = sum(jnp.real(s * jnp.conj(s)) for s in symbols)
    zero = norm == 0
    inverse_norm = jnp.where(zero, 0.0, 1.0 / jnp.where(zero, 1.0, norm)).astype(dtype)
    spectra = [basis.forward(r) for r in residual]
    coupling = (lam0 + mu0) / (lam0 + 2.0 * mu0)
    projection = coupling * inverse_norm * sum(jnp.conj(s) * r for s, r in zip(symbols, spectra))
    scale = inverse_norm / (grid.cell_volume * mu0)
    return tuple(basis.inverse((r - s * projection) * scale) for s, r in zip(symbols, spectra))


# ----------------------------------------------------------------------------- fields from a displacement


def strain_from_displacement(displacement, mean_strain: dict, grid: Grid) -> dict:
    """Cell-averaged total strain ``E + sym grad u~``: normal components at the cell centre, shear
    components the mean of the four edges around the cell.

    displacement: staggered fluctuation ``(ndim, *grid.shape)``, or the sequence of its ``ndim`` components;
    mean_strain: dict over :func:`mean_components` (missing entries are zero). Returns every
    :func:`tensor_components` entry (2D ``zz`` is the plane-strain zero).
    """
    ndim = grid.ndim
    # each component taken once: the transpose of every index of a stacked array is a zero-padded stack
    u = tuple(displacement[a] for a in range(ndim))
    normal = _normal_strains(u, grid)
    out = {}
    for name in tensor_components(ndim):
        a, b = _pair(name)
        if b >= ndim:
            out[name] = jnp.zeros(grid.shape, u[0].dtype)
        elif a == b:
            out[name] = normal[a] + mean_strain.get(name, 0.0)
        else:
            out[name] = _to_cells(_edge_shear_strain(u, grid, a, b), a, b) + mean_strain.get(name, 0.0)
    return out


def _cell_stress(sigma_normal, sigma_shear, lam, mu, normal_offset, grid: Grid, normal_strains) -> dict:
    out = {}
    for name in tensor_components(grid.ndim):
        a, b = _pair(name)
        if a == b and a < grid.ndim:
            out[name] = sigma_normal[a]
        elif a == b:  # plane-strain sigma_zz: total eps_zz = 0
            trace = sum(e + normal_offset.get(AXES[c] * 2, 0.0) for c, e in enumerate(normal_strains))
            trace = trace + normal_offset.get("zz", 0.0)
            out[name] = lam * trace + 2.0 * mu * normal_offset.get("zz", 0.0)
        elif b < grid.ndim:
            out[name] = _to_cells(sigma_shear[a, b], a, b)
    return out


def _offsets(mean_strain: dict, eigen: dict, ndim: int):
    normal = {AXES[a] * 2: mean_strain.get(AXES[a] * 2, 0.0) - eigen.get(AXES[a] * 2, 0.0) for a in range(ndim)}
    if ndim == 2:
        normal["zz"] = -eigen.get("zz", 0.0)
    shear = {}
    for a, b in _shear_pairs(ndim):
        name = AXES[a] + AXES[b]
        value = mean_strain.get(name, 0.0)
        if name in eigen:
            value = value - _to_edges(eigen[name], a, b)
        shear[name] = value
    return normal, shear


def stress_from_displacement(lam, mu, displacement, mean_strain: dict, grid: Grid, eigenstrain=None,
                             shear_mean: str = "arithmetic") -> dict:
    """Cell stress fields of the discrete solution (as :attr:`Elasticity.stress`) from a displacement.

    Same arguments as :func:`solve_elasticity`; ``mean_strain`` a dict over :func:`mean_components`.
    """
    ndim = grid.ndim
    eigen = eigenstrain_components(eigenstrain, ndim, grid.shape)
    edge_mu = _edge_shear_moduli(jnp.asarray(mu), ndim, _check_shear_mean(shear_mean))
    normal_offset, shear_offset = _offsets(mean_strain, eigen, ndim)
    u = tuple(displacement[a] for a in range(ndim))
    sigma_normal, sigma_shear = _stresses(u, normal_offset, shear_offset, lam, mu, edge_mu, grid)
    return _cell_stress(sigma_normal, sigma_shear, lam, mu, normal_offset, grid, _normal_strains(u, grid))


# ----------------------------------------------------------------------------- solver


def _check_shear_mean(shear_mean: str) -> str:
    if shear_mean not in SHEAR_MEANS:
        raise ValueError(f"shear_mean must be one of {SHEAR_MEANS}, got {shear_mean!r}")
    return shear_mean


def _check_moduli(lam, mu, grid: Grid):
    for label, field in (("lam", lam), ("mu", mu)):
        if field.shape != grid.shape:
            raise ValueError(f"{label} has shape {field.shape}, grid has {grid.shape}")
    try:  # values are known only outside a trace (an eager call); under jit the check is skipped
        bulk = lam + 2.0 * mu / 3.0
        low_mu, low_bulk = float(jnp.min(mu)), float(jnp.min(bulk))
        high = float(jnp.max(mu) + jnp.max(bulk))
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return
    if not (low_mu > 0.0 and low_bulk > 0.0 and np.isfinite(high)):
        raise ValueError(
            "moduli must be finite with mu > 0 and bulk modulus lam + 2 mu / 3 > 0 in every cell "
            f"(min mu {low_mu:g}, min bulk {low_bulk:g}); floor voids and cracks (see physics.mechanics.mix_moduli)")


def _loading(mean_strain, mean_stress, ndim: int):
    """Split the macroscopic load into (prescribed strains, free component names, prescribed stresses)."""
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


@functools.partial(jax.named_call, name="elasticity_solve")  # profiles show the elasticity solves apart
def solve_elasticity(lam, mu, grid: Grid, eigenstrain=None, mean_strain=None, mean_stress=None, initial=None,
                     tolerance=1e-8, max_iterations=2000, shear_mean: str = "arithmetic", slabs=None) -> Elasticity:
    """Solve periodic small-strain elasticity ``div(C : (E + sym grad u~ - eps*)) = 0`` (module notes).

    lam, mu:     Lame fields per cell, shape ``grid.shape`` (stress unit; ``mu > 0``,
                 ``lam + 2 mu / 3 > 0``; checked when the call is not traced).
    eigenstrain: ``None``, a dilatational field ``e`` (``e I``, zz included in 2D), or a dict of
                 component fields (:func:`tensor_components`), broadcast to the grid.
    mean_strain: dict ``{component: value}`` of prescribed mean-strain components.
    mean_stress: dict ``{component: value}`` of prescribed mean-stress components, whose mean
                 strains become unknowns. A component in neither dict has mean strain 0; one
                 in both is an error. Loadable components: :func:`mean_components`.
    initial:     a previous :class:`Elasticity` (anything with ``displacement`` and a
                 ``mean_strain`` dict) to start from; ``None`` starts from zero.
    tolerance, max_iterations: CG stops when the relative residual
                 ``sqrt(r . K0^-1 r / b . K0^-1 b)`` is at most ``tolerance`` (tested on the
                 initial guess first, so a converged start costs 0 iterations) or after
                 ``max_iterations``; ``r`` is the residual of the augmented system (face forces
                 and mean-stress mismatch), ``b`` its right-hand side, ``K0^-1`` the reference
                 inverse (a dual energy norm). float64 reaches 1e-12; float32 about 1e-5.
    shear_mean:  ``"arithmetic"`` (default, fewer iterations) or ``"harmonic"`` edge shear modulus.
    slabs:       a :class:`phasefield.decomposition.Slabs` for fields split along x over its devices: the
                 preconditioner's transforms are then the slab ones (``None``: one device).

    Returns an :class:`Elasticity`; its ``residual`` is recomputed for the returned solution,
    after the exact mean-stress correction (so it may sit slightly above ``tolerance``).
    """
    ndim = grid.ndim
    tensor_components(ndim)
    _check_shear_mean(shear_mean)
    lam, mu = jnp.asarray(lam), jnp.asarray(mu)
    fixed, free, stresses = _loading(mean_strain, mean_stress, ndim)
    eigen = eigenstrain_components(eigenstrain, ndim)
    dtype = jnp.result_type(lam.dtype, mu.dtype, jnp.float32, *[v.dtype for v in eigen.values()])
    lam, mu = lam.astype(dtype), mu.astype(dtype)
    _check_moduli(lam, mu, grid)
    eigen = eigenstrain_components(eigen, ndim, grid.shape, dtype)
    fixed = {n: jnp.asarray(v, dtype) for n, v in fixed.items()}
    target = jnp.asarray([stresses[n] for n in free], dtype).reshape(len(free))
    multiplicity = jnp.asarray([_multiplicity(n) for n in free], dtype)
    normal_flags = jnp.asarray([1.0 if n[0] == n[1] else 0.0 for n in free], dtype)
    total_volume = grid.cell_volume * grid.size
    edge_mu = _edge_shear_moduli(mu, ndim, shear_mean)

    bulk = lam + 2.0 * mu / 3.0
    mu0 = jnp.sqrt(jnp.min(mu) * jnp.max(mu))
    lam0 = jnp.sqrt(jnp.min(bulk) * jnp.max(bulk)) - 2.0 * mu0 / 3.0
    if free:
        block = total_volume * (lam0 * jnp.outer(normal_flags, normal_flags) + 2.0 * mu0 * jnp.diag(multiplicity))
        block_inverse = jnp.linalg.inv(block)

    def precondition(r):
        u, e = r
        return (_reference_inverse(u, grid, lam0, mu0, slabs), block_inverse @ e if free else e)

    @jax.checkpoint  # its derivatives rebuild the strains of x: a tangent or adjoint solve keeps x and the moduli
    def operator(x):
        u, e = x
        offset = {n: e[j] for j, n in enumerate(free)}
        forces, means = _internal_forces(u, offset, offset, lam, mu, edge_mu, grid, free)
        return (forces, means if free else e)

    zeros = tuple(jnp.zeros(grid.shape, dtype) for _ in range(ndim))

    def load():
        normal_offset, shear_offset = _offsets(fixed, eigen, ndim)
        forces0, means0 = _internal_forces(zeros, normal_offset, shear_offset, lam, mu, edge_mu, grid, free)
        return (tuple(-f for f in forces0),
                total_volume * multiplicity * target - means0 if free else jnp.zeros((0,), dtype))

    # the load and the fields of the solution (below) are recomputed when reverse mode reaches them, not held
    # through the backward pass of the radial return after the solve (phasefield.recompute)
    b = recomputed(load)
    b_norm = tree_dot(b, precondition(b))
    b_zero = b_norm <= 0

    if initial is None:
        x0 = (zeros, jnp.zeros((len(free),), dtype))
    else:
        start = jnp.asarray(initial.displacement, dtype)
        if start.shape != (ndim,) + grid.shape:
            raise ValueError(f"initial displacement has shape {start.shape}, expected {(ndim,) + grid.shape}")
        e0 = jnp.stack([jnp.asarray(initial.mean_strain[n], dtype) for n in free]) if free else jnp.zeros((0,), dtype)
        keep = jnp.where(b_zero, 0.0, 1.0).astype(dtype)  # a zero load has the zero solution
        x0 = (tuple(keep * (start[a] - jnp.mean(start[a])) for a in range(ndim)), keep * e0)

    def residual_norm(x, r, rz):  # pcg's default measure, but with the zero-load scale 1
        return jnp.sqrt(jnp.maximum(rz, 0.0) / jnp.where(b_zero, 1.0, b_norm))

    # pcg's own default is this measure, computed from each solve's right-hand side: a tangent solve of a
    # differentiated run then converges relative to the tangent, not to this load
    (u, e), stats = pcg(operator, b, x0, precondition, tolerance, max_iterations)

    def fields(u, e):
        full = dict(fixed)
        full.update({n: e[j] for j, n in enumerate(free)})
        normal_offset, shear_offset = _offsets(full, eigen, ndim)
        sigma_normal, sigma_shear = _stresses(u, normal_offset, shear_offset, lam, mu, edge_mu, grid)
        stress = _cell_stress(sigma_normal, sigma_shear, lam, mu, normal_offset, grid, _normal_strains(u, grid))
        return full, stress

    def corrected(u, e):
        """``(e, full mean strain, stress, strain)`` of the solution, the mean-stress correction made."""
        full, stress = fields(u, e)
        if free:
            # <sigma_free> is affine in e with the matrix of volume-averaged moduli: one exact correction.
            mismatch = target - jnp.stack([jnp.mean(stress[n]) for n in free])
            shear_moduli = jnp.stack([jnp.mean(edge_mu[_pair(n)]) if n[0] != n[1] else jnp.mean(mu) for n in free])
            stiffness = jnp.mean(lam) * jnp.outer(normal_flags, normal_flags) + 2.0 * jnp.diag(shear_moduli)
            e = e + jnp.linalg.solve(stiffness, mismatch)
            full, stress = fields(u, e)
        return e, full, stress, strain_from_displacement(u, full, grid)

    e, full, stress, strain = recomputed(corrected, u, e)
    r = tree_axpy(-1.0, operator((u, e)), b)
    residual = residual_norm((u, e), r, tree_dot(r, precondition(r)))
    names = mean_components(ndim)
    return Elasticity(
        displacement=jnp.stack(u),
        mean_strain={n: jnp.asarray(full[n], dtype) for n in names},
        mean_stress={n: jnp.mean(stress[n]) for n in names},
        strain=strain,
        stress=stress,
        iterations=stats.iterations,
        residual=residual,
    )
