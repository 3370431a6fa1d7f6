"""Phase-field fracture (quasi-brittle, small strain): AT1/AT2 damage, Amor split, alternate minimisation.

Energy (physics.md 5.1; ``d`` = 0 intact, 1 broken)::

    Psi(u, d) = W_el(u; g(d)) + G_c / c_w sum_cells V [ w(d) / ell + ell |grad d|^2 ]
              - p sum_cells V d tr(eps) - W_walls
    g(d) = (1 - d)^2 + k
    AT1: w = d,   c_w = 8/3  (elastic until sigma_c = sqrt(3 E G_c / (8 ell)); needs 0 <= d, bound-constrained)
    AT2: w = d^2, c_w = 2    (damage from the first load; sigma_peak = (3 sqrt(3) / 16) sqrt(E G_c / ell))

``W_el`` is the staggered-grid elastic energy of :mod:`phasefield.operators.walled_elasticity` with a
tension/compression split (:func:`elastic_terms`):

* ``volumetric_deviatoric`` (Amor et al. 2009, default): ``g(d)`` multiplies ``1/2 K <tr e>_+^2 + mu dev e : dev e``
  (cells and shear edges), ``1/2 K <tr e>_-^2`` is never degraded: hydrostatic compression never softens or
  drives a crack, and an intact plate under confined uniaxial compression (stack pressure) is elastic up to
  ``sqrt(3 (lam + 2 mu) / (4 mu))`` times the tensile critical strain (1.5 at nu = 0.25). But a closed crack
  loses its deviatoric stiffness, so confined compression loads the diffuse zone of a pre-crack (its damage
  grows roughly as the square of the pressure: +4e-4 at 5 %, +0.04 at 50 % of the tensile strength);
* ``spectral`` (Miehe et al. 2010; 2D plane strain): ``g psi+ + psi-`` over the principal strains, written as
  ``g W_iso + (1 - g) sum V psi-(e_cell)`` so that the staggered shear edges stay (no zero-energy modes) and
  only the compressive energy of the cell strain is restored; a closed crack carries confined compression in
  full contact with zero driving force (tested exactly). Nonlinear: Newton-CG per elasticity solve;
* ``none``: everything degraded (compression cracks too). ``p`` is the pressure in the crack
(a Li- or fluid-filled crack, Bourdin et al. 2012: ``-int p d div u = int p u . grad d``, which tends to
``p`` times the crack volume); its work is also a driving force of the damage, so the pressurised crack grows
when ``p sqrt(pi a) = K_Ic``.

Driving force per cell, ``H = (1/V) dW_el/dg`` (the energy ``g`` multiplies; taken by autodiff of the discrete
energy, so cells and shear edges are consistent). Irreversibility:

* AT1: ``d`` is the minimiser of the (convex, quadratic) damage energy over ``d_prev <= d <= 1``, ``d_prev``
  the damage at the start of the load step; primal-dual active-set method (Hintermueller, Ito & Kunisch 2003)
  with Jacobi-preconditioned CG on the free set, exact bounds (``d`` never decreases, ``0 <= d <= 1``);
* AT2: the history field ``H <- max(H_history, H)`` (Miehe et al. 2010); the damage equation
  ``(G_c/ell + 2H) d - G_c ell lap d = 2H + p tr eps`` is linear and its solution lies in [0, 1) and grows
  with ``H``; the same bound ``d >= d_prev`` is kept, so that CG round-off (~1e-8) cannot lower ``d`` either.

Both models share one code path: :class:`DamageModel` holds numbers, not branches, so AT1 and AT2 share one
compiled program. Per load step, :func:`load_step` alternates ``u`` (damage fixed) and ``d`` (displacement
fixed) until ``max |d_new - d| <= tolerance`` and no cell changes between tension and compression, or
``max_iterations``; it reports the iterations. ``FractureProblem.acceleration`` over-relaxes the damage iterate
or mixes it with Anderson's method (safeguarded: an iterate that overshoots a fixed point, some cell of its
update healing, is dropped for the plain one); the stopping test stays on the plain map's residual.

Grid effect on toughness (the dissipation of a discrete optimal profile; ``d`` is cell-centred and its
gradient lives on faces, crack centred on one row of cells, 1D minimisation over ``0 <= d <= 1``)::

    G_eff = G_c (1 + c (h / ell) + c2 (h / ell)^2),  c = 0;  c2 = 1/32 (AT1), 1/8 (AT2)

(h/ell = 1: 1.031 and 1.118; 1/2: 1.0078 and 1.031; 1/4: 1.0020 and 1.0078). So the first-order correction
(Bourdin's ``h/(2 ell)`` for linear finite elements) vanishes for this discretisation; a crack spread over two
rows of cells (centred on a face) dissipates ``c = 3/8`` (AT1) / ``1/2`` (AT2) more
(:func:`effective_toughness`).

Length scale from strength (AT1, the default): ``ell = 3 K_Ic^2 / (8 sigma_c^2)``, ``K_Ic^2 = E' G_c``
(:func:`length_from_strength`).

Units: any consistent set; the scenario uses um, GPa and GPa um (= 1e3 J/m^2) for toughness.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import Boundary, Grid
from phasefield.operators.krylov import pcg
from phasefield.operators.stencils import face_average, face_gradient, flux_divergence, laplacian
from phasefield.operators.walled_elasticity import (
    Walls,
    cell_strains,
    cell_stress,
    normal_strains,
    solve_walled_elasticity,
    stored_energy,
    wall_reactions,
    zero_displacement,
)
from phasefield.physics.filament import COUPLED_SWEEPS, li_pressure, li_pressures

MODELS = ("AT1", "AT2")
SPLITS = ("volumetric_deviatoric", "spectral", "none")
ACCELERATIONS = ("none", "overrelax", "anderson")


class DamageModel(NamedTuple):
    """Numbers that select AT1 or AT2 (:func:`damage_model`): ``c_w``; ``linear`` 1 for ``w = d`` (AT1), 0 for
    ``w = d^2``; ``history`` 1 to drive with the history maximum of ``H`` (AT2); ``bounded`` 1 to bound
    ``d >= d_prev`` (AT1; also AT2, where the history field already makes the exact solution monotone and
    the bound only removes the solver's round-off, ~1e-8)."""

    normalisation: float
    linear: float
    history: float
    bounded: float


def damage_model(name: str) -> DamageModel:
    if name == "AT1":
        return DamageModel(8.0 / 3.0, 1.0, 0.0, 1.0)
    if name == "AT2":
        return DamageModel(2.0, 0.0, 1.0, 1.0)
    raise ValueError(f"unknown damage model {name!r}; allowed: {', '.join(MODELS)}")


class FractureMaterial(NamedTuple):
    """Isotropic brittle solid: ``young``, ``poisson``, ``toughness`` G_c (energy per area; a number, or a field per
    cell for weak grain boundaries: the gradient energy then takes on each face the mean of its two cells),
    ``length`` ell, ``residual`` stiffness k of a broken cell (``g(1) = k``)."""

    young: float
    poisson: float
    toughness: float
    length: float
    residual: float = 1e-6


class FractureProblem(NamedTuple):
    """Static structure: grid, walls, split, tolerances and iteration limits."""

    grid: Grid
    walls: Walls | None
    split: str = "volumetric_deviatoric"
    tolerance: float = 1e-5  # alternate minimisation: max |d_new - d|
    max_iterations: int = 300
    elasticity_tolerance: float = 1e-9
    unit_tolerance: float = 1e-3  # :class:`VolumeControl`: the unit-pressure solve only sets the slope of p's update
    elasticity_max_iterations: int = 2000
    damage_tolerance: float = 1e-10
    damage_max_iterations: int = 1000
    max_active_set: int = 30
    max_newton: int = 10  # spectral split: Newton steps per elasticity solve
    acceleration: str = "none"  # of the u-d fixed point d -> G(d): none | overrelax | anderson (:func:`load_step`)
    relaxation: float = 1.6  # overrelax: d <- d + w (G(d) - d)
    window: int = 3  # anderson: differences kept
    slabs: object = None  # :class:`phasefield.decomposition.Slabs`: the grid split along the wall axis x over devices

    @property
    def damage_boundary(self) -> Boundary:
        """No-flux ``d`` on the walls, periodic elsewhere (``walls=None``: a periodic cell, periodic on every axis;
        only :func:`solve_damage` and the crack-density functions may then be used)."""
        kinds = ["periodic"] * self.grid.ndim
        if self.walls is not None:
            kinds[self.walls.axis] = "neumann"
        return Boundary.per_axis(tuple(kinds))


class Loading(NamedTuple):
    """Loads of one step: normal wall displacements ``(low, high)`` (clamped/roller walls), normal wall
    tractions ``(low, high)`` (free walls; ``-p`` stack pressure), crack pressure ``p``, eigenstrain (dict of
    normal components per cell, or ``None``)."""

    wall_displacement: tuple = (0.0, 0.0)
    wall_traction: tuple = (0.0, 0.0)
    crack_pressure: float = 0.0
    eigenstrain: dict | None = None


class FractureState(NamedTuple):
    displacement: tuple  # staggered, :func:`walled_elasticity.displacement_shapes`
    damage: jax.Array
    history: jax.Array  # max over past steps of the driving force H
    tension: jax.Array  # 1 where tr e > 0 (degraded bulk)


class VolumeControl(NamedTuple):
    """A crack filled with a fixed amount of compressible fluid (Li in a filament): the crack pressure is not a
    load but the root of ``V_fluid = V_c (1 + p / K)``, ``V_c = reference + sum V d tr(eps)`` (total strain),
    re-solved at every u-d iteration (:func:`load_step`). ``fluid_volume``: stress-free fluid volume;
    ``bulk_modulus``: ``K``; ``reference``: crack volume at zero opening (a stress-free flaw); ``unit``: a
    displacement under a unit crack pressure alone, the warm start of the first such solve.

    ``regions`` (``(N, *grid)``, a partition of unity): ``N`` fluid bodies, each filling the crack within its
    region (several Li filaments), with pressures ``p_k``: the crack pressure is the field ``sum_k p_k r_k``,
    ``fluid_volume`` and ``reference`` are ``(N,)``, ``unit`` holds ``N`` displacements (a leading axis on each
    component), each under a unit pressure in one region, and the balances couple through the compliance matrix
    (:func:`_follow_volume`). ``loading.crack_pressure`` is then the vector ``p``; ``max_sweeps``: the cap on the
    iterations (Newton, safeguarded by Gauss-Seidel sweeps) on those balances
    (:func:`~phasefield.physics.filament.li_pressures`)."""

    fluid_volume: jax.Array
    bulk_modulus: jax.Array
    reference: jax.Array
    unit: tuple
    regions: jax.Array | None = None
    max_sweeps: object = COUPLED_SWEEPS


class StepInfo(NamedTuple):
    iterations: jax.Array  # alternate-minimisation iterations
    elasticity_iterations: jax.Array  # CG iterations, summed over the step
    damage_iterations: jax.Array  # CG iterations of the damage solves, summed
    change: jax.Array  # last max |d_new - d|
    converged: jax.Array
    pressure: jax.Array | None = None  # volume control: the crack pressure of the returned state
    compliance: jax.Array | None = None  # volume control: dV_c/dp of the last iterate (fixed d and tension set;
    # with regions the matrix dV_j/dp_k)
    unit: tuple | None = None  # volume control: the displacement under a unit crack pressure of the last iterate
    pressure_residual: jax.Array | None = None  # volume control: the residual of the last iterate's coupled pressure
    # iterations (:func:`~phasefield.physics.filament.li_pressures`; 0 for one fluid body)


# ----------------------------------------------------------------------------- pure functions of d


def degradation(damage, residual):
    """``g(d) = (1 - d)^2 + k``."""
    return (1.0 - damage) ** 2 + residual


def bulk_and_shear(young, poisson):
    """``K = E / (3 (1 - 2 nu))``, ``mu = E / (2 (1 + nu))``."""
    return young / (3.0 * (1.0 - 2.0 * poisson)), young / (2.0 * (1.0 + poisson))


def plane_strain_modulus(young, poisson):
    """``E' = E / (1 - nu^2)``."""
    return young / (1.0 - poisson**2)


def critical_stress(modulus, toughness, length, model: str):
    """Peak stress of a homogeneous 1D bar (physics.md 7.7): AT1 ``sqrt(3 E G_c / (8 ell))`` (also the elastic
    limit), AT2 ``(3 sqrt 3 / 16) sqrt(E G_c / ell)``. ``modulus`` is the uniaxial stiffness of the test
    (``E`` for a bar, ``lam + 2 mu`` for uniaxial strain)."""
    if model == "AT1":
        return np.sqrt(3.0 * modulus * toughness / (8.0 * length))
    if model == "AT2":
        return 3.0 * np.sqrt(3.0) / 16.0 * np.sqrt(modulus * toughness / length)
    raise ValueError(model)


def length_from_strength(modulus, toughness, strength, model: str = "AT1"):
    """``ell`` that makes :func:`critical_stress` equal ``strength``: AT1 ``3 K_Ic^2 / (8 sigma_c^2)``, AT2
    ``(27/256) K_Ic^2 / sigma_c^2``, with ``K_Ic^2 = modulus * toughness`` (``modulus = E'`` in plane strain)."""
    k2 = modulus * toughness
    return 3.0 * k2 / (8.0 * strength**2) if model == "AT1" else 27.0 * k2 / (256.0 * strength**2)


def effective_toughness(toughness, spacing, length, model: str = "AT1", rows: int = 1):
    """Toughness a discrete crack dissipates (module notes): ``rows=1`` (crack centred on a row of cells)
    ``G_c (1 + c2 (h/ell)^2)``; ``rows=2`` (centred on a face) adds ``c1 h / ell`` with c1 = 3/8 (AT1), 1/2 (AT2)."""
    ratio = spacing / length
    c2 = 1.0 / 32.0 if model == "AT1" else 1.0 / 8.0
    c1 = 0.0 if rows == 1 else (3.0 / 8.0 if model == "AT1" else 0.5)
    return toughness * (1.0 + c1 * ratio + c2 * ratio**2)


def crack_density(damage, grid: Grid, boundary: Boundary, model: DamageModel, length, toughness=1.0):
    """``G_c gamma = (1/c_w)(G_c w(d)/ell + ell G_c |grad d|^2)`` per cell (``toughness`` 1: ``gamma``, 1/length);
    ``|grad d|^2`` is the mean of the squared face gradients on the two faces of each axis (their sum over cells is
    the face sum of the energy), each weighted by the face's toughness (the mean of its cells') for a field."""
    w = model.linear * damage + (1.0 - model.linear) * damage**2
    field = jnp.ndim(toughness) > 0
    gradient = 0.0
    for axis in range(grid.ndim):
        face = face_gradient(damage, grid, boundary, axis) ** 2
        if field:
            face = face * face_average(toughness, boundary, axis, "arithmetic")
        sl_low = [slice(None)] * grid.ndim
        sl_high = [slice(None)] * grid.ndim
        sl_low[axis], sl_high[axis] = slice(None, -1), slice(1, None)
        gradient = gradient + 0.5 * (face[tuple(sl_low)] + face[tuple(sl_high)])
    return (toughness * w / length + length * (gradient if field else toughness * gradient)) / model.normalisation


def crack_length(damage, grid: Grid, boundary: Boundary, model: DamageModel, length):
    """Regularised crack length (2D) or area (3D), ``sum V gamma(d)`` = fracture energy / G_c."""
    return grid.cell_volume * jnp.sum(crack_density(damage, grid, boundary, model, length))


def split_lame(lam, mu, damage, tension, residual):
    """Lame pair of the volumetric-deviatoric (Amor) split on a cell-centred solver with a fixed sign set:
    ``K_eff = g K`` where ``tension`` (``tr eps_el > 0``, from the last solve), else ``K``; ``mu_eff = g mu``;
    ``lam_eff = K_eff - 2 mu_eff / 3``, ``K = lam + 2 mu / 3``, ``g`` :func:`degradation`."""
    g = degradation(damage, residual)
    bulk = lam + 2.0 * mu / 3.0
    shear = g * mu
    return jnp.where(tension > 0, g * bulk, bulk) - 2.0 * shear / 3.0, shear


def tensile_energy_density(strain: dict, lam, mu):
    """Amor split's degraded part ``psi+ = 1/2 K <tr e>_+^2 + mu dev e : dev e`` of an elastic strain ``e`` (dict of
    cell components, off-diagonal entries tensor components counted twice), ``K = lam + 2 mu / 3``."""
    trace = strain["xx"] + strain["yy"] + strain["zz"]
    bulk = lam + 2.0 * mu / 3.0
    deviator = sum((strain[n] - trace / 3.0) ** 2 for n in ("xx", "yy", "zz"))
    deviator = deviator + sum(2.0 * v**2 for n, v in strain.items() if n[0] != n[1])
    return 0.5 * bulk * jnp.maximum(trace, 0.0) ** 2 + mu * deviator


def spectral_tensile_energy_density(strain: dict, lam, mu):
    """Spectral split's tensile part ``psi+ = psi - psi-`` (Miehe et al. 2010), 2D plane strain: zero when every
    principal strain and the trace are compressive (:func:`compressive_energy_density`), so compression alone
    drives no crack; ``psi = lam/2 (tr e)^2 + mu e : e``."""
    trace = strain["xx"] + strain["yy"] + strain["zz"]
    squares = sum((1.0 if n[0] == n[1] else 2.0) * v**2 for n, v in strain.items())
    return 0.5 * lam * trace**2 + mu * squares - compressive_energy_density(strain, lam, mu)


def compressive_energy_density(strain: dict, lam, mu):
    """Spectral split (Miehe et al. 2010), 2D plane strain: ``psi- = lam/2 <tr e>_-^2 + mu sum_i <e_i>_-^2`` over
    the principal strains (in-plane pair ``m +- r`` and ``e_zz``); ``strain`` a dict of cell components."""
    m = 0.5 * (strain["xx"] + strain["yy"])
    q = 0.5 * (strain["xx"] - strain["yy"])
    r = jnp.sqrt(q * q + strain["xy"] ** 2 + 1e-60)  # the floor keeps the derivative finite at r = 0
    negative = lambda x: jnp.minimum(x, 0.0) ** 2  # noqa: E731
    trace = strain["xx"] + strain["yy"] + strain["zz"]
    return 0.5 * lam * negative(trace) + mu * (negative(m + r) + negative(m - r) + negative(strain["zz"]))


def elastic_terms(damage, material: FractureMaterial, problem: FractureProblem, eigenstrain=None):
    """``(K_t, K_c, mu, extra)`` of the degraded elastic energy ``W = W_staggered(K_t, K_c, mu) + extra(u)``.

    volumetric_deviatoric (Amor): ``K_t = g K``, ``K_c = K``, ``mu = g mu``, no extra;
    spectral (Miehe, 2D): ``g W_iso + (1 - g) sum V psi-(e_cell)``, i.e. ``g psi+ + psi-`` written so that the
    staggered isotropic energy keeps the shear edges (no zero-energy modes) and only the compressive energy
    ``psi-`` of the cell strain (edge shears averaged to the cell) is restored undegraded;
    none: everything degraded.
    """
    bulk, shear = bulk_and_shear(material.young, material.poisson)
    g = degradation(damage, material.residual)
    if problem.split == "volumetric_deviatoric":
        return g * bulk, bulk * jnp.ones_like(g), g * shear, None
    if problem.split == "none":
        return g * bulk, g * bulk, g * shear, None
    if problem.grid.ndim != 2:
        raise NotImplementedError("the spectral split is 2D (plane strain) only; use volumetric_deviatoric in 3D")
    lam = bulk - 2.0 * shear / 3.0

    def extra(u):
        psi = compressive_energy_density(cell_strains(u, problem.grid, problem.walls, eigenstrain), lam, shear)
        return problem.grid.cell_volume * jnp.sum((1.0 - g) * psi)

    return g * bulk, g * bulk, g * shear, extra


def driving_force(displacement, damage, material: FractureMaterial, problem: FractureProblem, eigenstrain=None):
    """``H = (1/V) dW_el/dg`` per cell: the elastic energy density the degradation multiplies (the tensile part
    of the split), shear edges shared among their cells; floored at 0."""
    bulk, shear = bulk_and_shear(material.young, material.poisson)
    lam = bulk - 2.0 * shear / 3.0
    grid, walls = problem.grid, problem.walls

    def energy(g):
        if problem.split == "volumetric_deviatoric":
            return stored_energy(displacement, g * bulk, bulk * jnp.ones_like(g), g * shear, grid, walls, eigenstrain)
        total = stored_energy(displacement, g * bulk, g * bulk, g * shear, grid, walls, eigenstrain)
        if problem.split == "spectral":
            psi = compressive_energy_density(cell_strains(displacement, grid, walls, eigenstrain), lam, shear)
            total = total + grid.cell_volume * jnp.sum((1.0 - g) * psi)
        return total

    g = degradation(damage, material.residual)
    return jnp.maximum(jax.grad(energy)(g) / grid.cell_volume, 0.0)


# ----------------------------------------------------------------------------- damage sub-problem


def _damage_operator(coefficient, diffusion, grid, boundary):
    """``x -> coefficient x - div(diffusion grad x)`` (symmetric positive definite on a cell-centred grid; a field
    ``diffusion`` takes on each face the mean of its two cells) and its diagonal."""
    if jnp.ndim(diffusion) == 0:
        diag = coefficient + diffusion * jnp.asarray(_laplacian_diagonal(grid, boundary), coefficient.dtype)
        return lambda x: coefficient * x - diffusion * laplacian(x, grid, boundary), diag
    diag = coefficient
    for axis in range(grid.ndim):
        faces = face_average(diffusion, boundary, axis, "arithmetic") / grid.spacing[axis] ** 2
        if not boundary.is_periodic(axis):  # no-flux walls: the wall faces carry nothing
            faces = faces * jnp.asarray(np.r_[0.0, np.ones(grid.shape[axis] - 1), 0.0].reshape(
                (-1,) + (1,) * (grid.ndim - 1 - axis)), faces.dtype)
        low = jax.lax.slice_in_dim(faces, 0, grid.shape[axis], axis=axis)
        high = jax.lax.slice_in_dim(faces, 1, grid.shape[axis] + 1, axis=axis)
        diag = diag + low + high
    return lambda x: coefficient * x - flux_divergence(diffusion, x, grid, boundary, "arithmetic"), diag


def _laplacian_diagonal(grid: Grid, boundary: Boundary):
    diag = np.zeros(grid.shape)
    for axis in range(grid.ndim):
        h2 = grid.spacing[axis] ** 2
        profile = np.full(grid.shape[axis], 2.0 / h2)
        if not boundary.is_periodic(axis):
            profile[0] -= 1.0 / h2
            profile[-1] -= 1.0 / h2
        shape = [1] * grid.ndim
        shape[axis] = grid.shape[axis]
        diag = diag + profile.reshape(shape)
    return diag


def solve_damage(drive, source, lower, upper, start, material: FractureMaterial, model: DamageModel,
                 problem: FractureProblem):
    """Minimise ``sum V [ g(d) drive + G_c/c_w (w(d)/ell + ell |grad d|^2) - source d ]`` over ``lower <= d <= upper``.

    Stationarity: ``(2 drive + a) d - b lap d = 2 drive - f + source`` with ``a = 2 G_c/(c_w ell)`` (AT2) or 0,
    ``b = 2 G_c ell / c_w``, ``f = G_c / (c_w ell)`` (AT1) or 0. Primal-dual active set: a cell is held at a
    bound when the gradient pushes it past it (``r > c (d - lower)`` or ``r < c (d - upper)``, ``c`` the
    diagonal), the rest solved by Jacobi-PCG; repeated until the active sets repeat. For an M-matrix (this
    one) it converges in a few passes. Returns ``(d, cg_iterations)``.
    """
    grid, boundary = problem.grid, problem.damage_boundary
    gc, ell, cw = material.toughness, material.length, model.normalisation
    a = (1.0 - model.linear) * 2.0 * gc / (cw * ell)
    b = 2.0 * gc * ell / cw
    f = model.linear * gc / (cw * ell)
    coefficient = 2.0 * drive + a
    rhs = 2.0 * drive - f + source
    apply, diag = _damage_operator(coefficient, b, grid, boundary)

    def sets(d):
        r = apply(d) - rhs
        at_lower = (r > diag * (d - lower)) | (lower >= upper)  # a cell with no room is held
        at_upper = (r < diag * (d - upper)) & ~at_lower
        return at_lower, at_upper

    def solve_free(d, at_lower, at_upper):
        fixed = jnp.where(at_lower, lower, jnp.where(at_upper, upper, 0.0))
        free = (~(at_lower | at_upper)).astype(d.dtype)
        b_free = free * (rhs - apply(fixed))

        def operator(x):
            return free * apply(free * x) + (1.0 - free) * x

        x, stats = pcg(operator, b_free, free * d, lambda r: r / diag, problem.damage_tolerance,
                       problem.damage_max_iterations)
        return fixed + free * x, stats.iterations

    def keep_going(state):
        _, _, _, changed, passes, _ = state
        return changed & (passes < problem.max_active_set)

    def iterate(state):
        d, at_lower, at_upper, _, passes, iterations = state
        d, its = solve_free(d, at_lower, at_upper)
        new_lower, new_upper = sets(d)
        changed = jnp.any(new_lower != at_lower) | jnp.any(new_upper != at_upper)
        return d, new_lower, new_upper, changed, passes + 1, iterations + its

    d0 = jnp.clip(start, lower, upper)
    at_lower, at_upper = sets(d0)
    state = (d0, at_lower, at_upper, jnp.asarray(True), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))
    d, _, _, _, _, iterations = jax.lax.while_loop(keep_going, iterate, state)
    return jnp.clip(d, lower, upper), iterations


# ----------------------------------------------------------------------------- alternate minimisation


def initial_state(problem: FractureProblem, damage=None, dtype=jnp.float64) -> FractureState:
    """Undeformed state with initial damage (a notch: ``d = 1`` on its cells), zero history."""
    grid = problem.grid
    damage = jnp.zeros(grid.shape, dtype) if damage is None else jnp.asarray(damage, dtype)
    return FractureState(zero_displacement(grid, problem.walls, dtype), damage, jnp.zeros(grid.shape, dtype),
                         jnp.zeros(grid.shape, dtype))


def weighted_sum(weights, stack):
    """``sum_k w_k s_k`` over the leading axis of ``stack`` (for one term exactly ``w_0 s_0``)."""
    return jnp.sum(jnp.reshape(weights, weights.shape + (1,) * (stack.ndim - 1)) * stack, axis=0)


def _elastic_trace(displacement, grid, walls, eigenstrain):
    strains = normal_strains(displacement, grid, walls)
    eigen = eigenstrain or {}
    names = ("xx", "yy", "zz")
    trace = sum(e - eigen.get(names[a], 0.0) for a, e in enumerate(strains))
    if grid.ndim == 2:
        trace = trace - eigen.get("zz", 0.0)
    return trace, sum(strains)


class AndersonHistory(NamedTuple):
    """The last ``window`` differences of the iterates (``steps``) and of their residuals ``G(d) - d``
    (``changes``) in a ring (``count`` differences since the last restart, slot ``count % window``), the last
    iterate, its residual and the residual's norm."""

    steps: jax.Array
    changes: jax.Array
    count: jax.Array
    previous: jax.Array
    residual: jax.Array
    norm: jax.Array


def anderson_history(damage, window: int) -> AndersonHistory:
    stack = jnp.zeros((window,) + damage.shape, damage.dtype)
    return AndersonHistory(stack, stack, jnp.zeros((), jnp.int32), damage, jnp.zeros_like(damage),
                           jnp.asarray(jnp.inf, damage.dtype))


def anderson_update(history: AndersonHistory, damage, mapped, lower, upper):
    """One safeguarded Anderson step (type II, unit mixing) of the fixed point ``d = G(d)``, ``mapped = G(d)``.

    With the residual ``f = G(d) - d`` and the differences ``dD``, ``dF`` of the last ``m`` iterates and residuals,
    ``gamma = argmin |f - dF gamma|`` (normal equations, a relative 1e-10 ridge) and
    ``d <- clip(G(d) - (dD + dF) gamma, lower, upper)``. Safeguard: when ``|f|`` grew since the last iterate the
    history is dropped and the plain step ``d <- G(d)`` taken. Returns ``(next iterate, history)``."""
    window = history.steps.shape[0]
    residual = mapped - damage
    norm = jnp.sqrt(jnp.sum(residual**2))
    grew = norm > history.norm
    append = jnp.isfinite(history.norm) & ~grew
    slot = history.count % window
    steps = jnp.where(append, history.steps.at[slot].set(damage - history.previous), history.steps)
    changes = jnp.where(append, history.changes.at[slot].set(residual - history.residual), history.changes)
    count = jnp.where(grew, 0, history.count + append)  # differences since the last restart (ring slot: count % m)
    valid = (jnp.arange(window) < count).astype(damage.dtype)
    flat = changes.reshape(window, -1) * valid[:, None]
    gram = flat @ flat.T
    ridge = 1e-10 * jnp.max(jnp.diagonal(gram)) + jnp.finfo(damage.dtype).tiny
    gram = gram + jnp.diag(jnp.where(valid > 0, ridge, 1.0))
    gamma = valid * jnp.linalg.solve(gram, flat @ residual.reshape(-1))
    accelerated = mapped - jnp.tensordot(gamma, steps + changes, axes=1)
    following = jnp.where(count > 0, jnp.clip(accelerated, lower, upper), mapped)
    return following, AndersonHistory(steps, changes, count, damage, residual, norm)


class Accelerator(NamedTuple):
    """Carry of an accelerated load step: ``safe`` the last plain iterate ``G(d)``, ``trial`` whether the iterate is
    an accelerated one (to be checked), the over-relaxation ``weight``, the :class:`AndersonHistory` (or ``()``)."""

    safe: jax.Array
    trial: jax.Array
    weight: jax.Array
    anderson: AndersonHistory | tuple


def load_step(problem: FractureProblem, material: FractureMaterial, model: DamageModel, state: FractureState,
              loading: Loading, max_iterations=None, committed: FractureState | None = None,
              volume: VolumeControl | None = None):
    """One quasi-static load step: alternate minimisation of ``Psi`` in ``u`` and ``d`` at the given loads.

    Each iteration: (1) ``u`` from the linear elasticity with ``g(d)``, the tension set of the previous iterate
    and the crack pressure ``p d`` (warm-started CG); (2) the new tension set and ``H``; (3) ``G(d)`` from
    :func:`solve_damage` (AT1: ``d_prev <= d <= 1``; AT2: history ``H``). Stops when ``max|G(d) - d| <=
    problem.tolerance`` and the tension set is unchanged (returning ``G(d)``), or after ``max_iterations``
    (default ``problem.max_iterations``; may be traced). Returns ``(state, StepInfo)``.

    Irreversibility is with respect to ``committed`` (``d >= d_prev = committed.damage``, AT2's history from
    ``committed.history``; default ``state``): ``state`` is then only the first iterate, so that repeated
    passes of one physical step (a load that is updated between passes, e.g. a crack pressure from a volume
    balance) can heal what an earlier pass damaged beyond the committed state.

    ``volume`` (:class:`VolumeControl`): the crack pressure follows the fluid volume balance at every iteration,
    ``loading.crack_pressure`` only its first guess. After the solve for ``u`` at ``p``, one more solve for ``u_1``
    under a unit crack pressure alone (same ``g(d)`` and tension set, so ``u + (p' - p) u_1`` is the exact
    solution at ``p'``; with the spectral split a linearisation) gives ``V_c(p') = V_c + (p' - p) C``,
    ``C = sum V d tr(eps(u_1))``; ``p'`` closes the balance, ``u`` is shifted to it, and the damage sees ``p'``. So
    the crack is always driven by the pressure its fluid has at its current volume (with ``volume.regions`` one
    pressure per region, one ``u_1`` solve per region), and a fixed point of the
    iterations (equilibrium, damage stationarity, volume balance) does not depend on ``max_iterations``: at a
    fixed pressure a crack above the Griffith pressure runs unstably as far as the iterations let it, at a fixed
    volume it stops where ``K_I = K_Ic``. Twice the elasticity solves per iteration (the ``u_1`` solve is warm).

    The next iterate is ``G(d)`` (``problem.acceleration`` none), or, while not converged, accelerated: the plain
    iterates converge linearly, at a ratio of 0.8-0.9 per iteration while a filament's crack grows (the damage
    ahead of the tip and the Li pressure relax together), 40-60 iterations per cell of growth. ``overrelax``
    (Farrell & Maurini 2017): ``clip(d + w (G(d) - d), d_prev, 1)``, ``w = problem.relaxation``; ``anderson``
    (Storvik et al. 2021): :func:`anderson_update` over ``problem.window`` differences. The stopping test stays on
    ``G``'s residual, so either ends on a fixed point of ``G``; a crack tip on a grid has several (lattice
    trapping), the plain iterates stop at the first above ``d_prev``, and an accelerated one can pass it (under
    :class:`VolumeControl` the filament's time to short moves by 0.025 % at 32^2 and 64^2, README).
    """
    if problem.acceleration not in ACCELERATIONS:
        raise ValueError(f"unknown acceleration {problem.acceleration!r}; allowed: {', '.join(ACCELERATIONS)}")
    limit = problem.max_iterations if max_iterations is None else max_iterations
    grid, walls = problem.grid, problem.walls
    dtype = state.damage.dtype
    eigen = loading.eigenstrain
    bulk, shear = bulk_and_shear(material.young, material.poisson)
    committed = state if committed is None else committed
    d_prev = committed.damage
    lower = model.bounded * d_prev
    upper = jnp.ones_like(d_prev)
    pressure = jnp.asarray(loading.crack_pressure, dtype)
    regions = None if volume is None else volume.regions

    def crack_pressure(pressure):
        """The crack pressure field: ``p``, or ``sum_k p_k r_k`` over the fluid bodies' regions."""
        return pressure if regions is None else weighted_sum(pressure, regions)

    def accelerate(d, d_new, final, acc: Accelerator):
        """Next iterate after ``d`` and ``d_new = G(d)``: an accelerated ``d`` that some cell of ``G(d)`` heals by
        more than the acceleration moved it (its largest distance from the plain iterate ``safe``; at least the
        tolerance) has overshot a fixed point: the acceleration is undone there, so it is dropped for
        ``safe``, the weight halved towards 1 and the Anderson history cleared. A smaller healing is the
        extrapolation's error, which the next iterations correct. ``final`` (converged or the last iteration):
        ``G(d)``, or ``safe`` after an overshoot."""
        reach = jnp.max(jnp.abs(d - acc.safe))
        overshot = acc.trial & (jnp.min(d_new - d) < -jnp.maximum(problem.tolerance, reach))
        weight = jnp.where(overshot, 1.0 + 0.5 * (acc.weight - 1.0), acc.weight)
        if problem.acceleration == "overrelax":
            candidate, anderson = jnp.clip(d + weight * (d_new - d), lower, upper), acc.anderson
        else:
            candidate, anderson = anderson_update(acc.anderson, d, d_new, lower, upper)
            cleared = anderson_history(d_new, problem.window)
            anderson = jax.tree_util.tree_map(lambda a, b: jnp.where(overshot, a, b), cleared, anderson)
        following = jnp.where(overshot, acc.safe, jnp.where(final, d_new, candidate))
        trial = ~overshot & ~final & jnp.any(candidate != d_new)
        return following, Accelerator(jnp.where(overshot, acc.safe, d_new), trial, weight, anderson)

    def iterate(carry):
        u, d, tension, history, it, cg_u, cg_d, _, accelerator, (pressure, unit, _, _) = carry
        kt, kc, mu, extra = elastic_terms(d, material, problem, eigen)
        kt_eff = jnp.where(tension > 0, kt, kc)
        if extra is None:  # piecewise quadratic: one linear solve on the current sign set
            solution = solve_walled_elasticity(
                kt_eff, kt_eff, mu, grid, walls, wall_displacement=loading.wall_displacement,
                wall_traction=loading.wall_traction, eigenstrain=eigen, internal_pressure=crack_pressure(pressure) * d,
                initial=u, reference_moduli=(bulk, shear), tolerance=problem.elasticity_tolerance,
                max_iterations=problem.elasticity_max_iterations, max_newton=1, slabs=problem.slabs)
        else:  # spectral: Newton-CG; the preconditioner sees the undegraded moduli where compressed
            g = degradation(d, material.residual)
            restored = jnp.where(tension > 0, 0.0, 1.0 - g)
            solution = solve_walled_elasticity(
                kt, kc, mu, grid, walls, wall_displacement=loading.wall_displacement,
                wall_traction=loading.wall_traction, eigenstrain=eigen, internal_pressure=crack_pressure(pressure) * d,
                initial=u, reference_moduli=(bulk, shear), tolerance=problem.elasticity_tolerance,
                max_iterations=problem.elasticity_max_iterations, max_newton=problem.max_newton,
                extra_energy=extra, preconditioner_moduli=(kt + restored * bulk, mu + restored * shear),
                slabs=problem.slabs)
        u, cg = solution.displacement, solution.iterations
        compliance, residual = jnp.zeros((), dtype), jnp.zeros((), dtype)
        if volume is not None:
            p, unit, compliance, residual, its = _follow_volume(volume, u, d, pressure, unit, kt_eff, mu, problem,
                                                                (bulk, shear))
            u, cg = _shifted(u, p - pressure, unit, regions), cg + its
            pressure = p
        elastic_trace, total_trace = _elastic_trace(u, grid, walls, eigen)
        new_tension = (elastic_trace > 0).astype(dtype)
        drive = driving_force(u, d, material, problem, eigen)
        history_now = jnp.maximum(committed.history, drive)
        used = model.history * history_now + (1.0 - model.history) * drive
        d_new, its = solve_damage(used, crack_pressure(pressure) * total_trace, lower, upper, d, material, model,
                                  problem)
        change = jnp.max(jnp.abs(d_new - d))
        change = jnp.where(jnp.all(new_tension == tension), change, jnp.inf)  # a set change: iterate again
        if problem.acceleration == "none":
            following = d_new
        else:
            final = (change <= problem.tolerance) | (it + 1 >= limit)
            following, accelerator = accelerate(d, d_new, final, accelerator)
        return (u, following, new_tension, history_now, it + 1, cg_u + cg, cg_d + its, change, accelerator,
                (pressure, unit, compliance, residual))

    def keep_going(carry):
        it, change = carry[4], carry[7]
        return (change > problem.tolerance) & (it < limit)

    zero = jnp.zeros((), jnp.int32)
    anderson = anderson_history(state.damage, problem.window) if problem.acceleration == "anderson" else ()
    accelerator = Accelerator(state.damage, jnp.asarray(False), jnp.asarray(problem.relaxation, dtype), anderson)
    fluid = (pressure, () if volume is None else tuple(volume.unit), jnp.zeros(pressure.shape * 2, dtype),
             jnp.zeros((), dtype))
    carry = (state.displacement, state.damage, state.tension, state.history, zero, zero, zero,
             jnp.asarray(jnp.inf, dtype), accelerator, fluid)
    u, d, tension, history, it, cg_u, cg_d, change, _, (pressure, unit, compliance, residual) = \
        jax.lax.while_loop(keep_going, iterate, carry)
    new_state = FractureState(u, d, history, tension)
    info = StepInfo(it, cg_u, cg_d, change, change <= problem.tolerance)
    if volume is not None:
        info = info._replace(pressure=pressure, compliance=compliance, unit=unit, pressure_residual=residual)
    return new_state, info


def _shifted(displacement, change, unit, regions):
    """``u + (p' - p) u_1``, or ``u + sum_k (p'_k - p_k) u_k`` with ``regions``."""
    if regions is None:
        return tuple(a + change * b for a, b in zip(displacement, unit))
    return tuple(a + weighted_sum(change, b) for a, b in zip(displacement, unit))


def _follow_volume(volume: VolumeControl, displacement, damage, pressure, unit, bulk, shear,
                   problem: FractureProblem, reference_moduli):
    """The crack pressure ``p'`` that closes the fluid balance of ``volume`` with the crack linearised about
    ``displacement`` (the solution at ``pressure``): ``u_1`` under a unit crack pressure ``d`` alone (moduli
    ``bulk``, ``shear``; warm from ``unit``; skipped without damage, its right-hand side zero),
    ``C = sum V d tr eps(u_1)``, and ``p'`` the root of ``(V_c + (p' - p) C)(1 + p' / K) = V_fluid``
    (:func:`phasefield.physics.filament.li_pressure`; 0 where the fluid does not fill the crack). Returns ``p'``,
    ``u_1``, ``C``, the residual of the pressures' sweeps (0: one body, solved exactly) and the CG iterations.

    With ``volume.regions`` ``r_k``: ``u_k`` under the pressure ``d r_k`` (one solve per region), the compliance
    matrix ``C_jk = sum V d r_j tr eps(u_k)`` (the opening of body ``j`` under a unit pressure in ``k``), and
    ``p'`` the root of ``(V_c,j + sum_k C_jk (p'_k - p_k))(1 + p'_j / K) = V_fluid,j``, ``p'_j >= 0``
    (:func:`phasefield.physics.filament.li_pressures`, at most ``volume.max_sweeps`` iterations)."""
    grid, walls = problem.grid, problem.walls
    zero = jnp.zeros((), damage.dtype)

    def solve(load, unit):
        solution = solve_walled_elasticity(
            bulk, bulk, shear, grid, walls, wall_displacement=(zero, zero), wall_traction=(zero, zero),
            internal_pressure=load, initial=unit, reference_moduli=reference_moduli,
            tolerance=problem.unit_tolerance, max_iterations=problem.elasticity_max_iterations, max_newton=1,
            slabs=problem.slabs)
        return solution.displacement, jnp.asarray(solution.iterations, jnp.int32)

    def skip(load, unit):
        return unit, jnp.zeros((), jnp.int32)

    def unit_solve(load, unit):
        return jax.lax.cond(jnp.any(load > 0), solve, skip, load, unit)

    trace = lambda u: sum(normal_strains(u, grid, walls))  # noqa: E731
    if volume.regions is None:
        unit, iterations = unit_solve(damage, unit)
        opening = lambda u: grid.cell_volume * jnp.sum(damage * trace(u))  # noqa: E731
        compliance = opening(unit)
        base = volume.reference + opening(displacement) - compliance * pressure
        following = li_pressure(volume.fluid_volume, base, compliance, volume.bulk_modulus)
        return following, unit, compliance, jnp.zeros((), following.dtype), iterations
    loads = damage * volume.regions
    unit, iterations = jax.lax.map(lambda args: unit_solve(*args), (loads, tuple(unit)))
    axes = tuple(range(1, loads.ndim))
    opening = lambda u: grid.cell_volume * jnp.sum(loads * trace(u), axis=axes)  # noqa: E731  (N,)
    compliance = jax.vmap(opening)(unit).T  # C_jk: the opening of j under u_k
    base = volume.reference + opening(displacement) - compliance @ pressure
    following, residual = li_pressures(volume.fluid_volume, base, compliance, volume.bulk_modulus,
                                       max_sweeps=volume.max_sweeps)
    return following, unit, compliance, residual, jnp.sum(iterations, dtype=jnp.int32)


# ----------------------------------------------------------------------------- diagnostics


def elastic_energy(state: FractureState, material: FractureMaterial, problem: FractureProblem, eigenstrain=None):
    kt, kc, mu, extra = elastic_terms(state.damage, material, problem, eigenstrain)
    total = stored_energy(state.displacement, kt, kc, mu, problem.grid, problem.walls, eigenstrain)
    return total if extra is None else total + extra(state.displacement)


def fracture_energy(damage, material: FractureMaterial, model: DamageModel, problem: FractureProblem):
    """``sum V G_c gamma(d)``: the dissipated energy (per unit thickness in 2D)."""
    return problem.grid.cell_volume * jnp.sum(crack_density(damage, problem.grid, problem.damage_boundary, model,
                                                            material.length, material.toughness))


def stress(state: FractureState, material: FractureMaterial, problem: FractureProblem, eigenstrain=None) -> dict:
    kt, kc, mu, extra = elastic_terms(state.damage, material, problem, eigenstrain)
    out = cell_stress(state.displacement, kt, kc, mu, problem.grid, problem.walls, eigenstrain)
    if extra is not None:  # + (1 - g) d psi- / d e per cell
        bulk, shear = bulk_and_shear(material.young, material.poisson)
        g = degradation(state.damage, material.residual)
        strain = cell_strains(state.displacement, problem.grid, problem.walls, eigenstrain)
        psi = lambda e: jnp.sum((1.0 - g) * compressive_energy_density(e, bulk - 2.0 * shear / 3.0, shear))  # noqa
        derivative = jax.grad(psi)(strain)
        out = {k: v + derivative[k] * (0.5 if k[0] != k[1] else 1.0) for k, v in out.items()}
    return out


def reactions(state: FractureState, material: FractureMaterial, problem: FractureProblem, loading: Loading):
    """Normal force on the ``(low, high)`` walls (per unit thickness in 2D), positive when pulling."""
    kt, kc, mu, extra = elastic_terms(state.damage, material, problem, loading.eigenstrain)
    return wall_reactions(state.displacement, kt, kc, mu, problem.grid, problem.walls, loading.wall_displacement,
                          loading.eigenstrain, jnp.asarray(loading.crack_pressure) * state.damage, extra)


def opening_density(state: FractureState, problem: FractureProblem):
    """``d eps_ww`` per cell: its sum along the wall axis times ``h_w`` is the opening of a crack normal to that
    axis, ``delta(x) = int d du_w/dx_w dx_w = -int u_w dd/dx_w dx_w`` (the diffuse jump of ``u_w``)."""
    w = problem.walls.axis
    return state.damage * normal_strains(state.displacement, problem.grid, problem.walls)[w]


def opening_profile(state: FractureState, problem: FractureProblem):
    """Crack opening ``delta`` along the directions normal to the wall axis (the grid without that axis)."""
    w = problem.walls.axis
    return problem.grid.spacing[w] * jnp.sum(opening_density(state, problem), axis=w)


def crack_volume(state: FractureState, problem: FractureProblem):
    """``int d div u dV`` (area per unit thickness in 2D), which tends to the crack-opening volume."""
    trace = sum(normal_strains(state.displacement, problem.grid, problem.walls))
    return problem.grid.cell_volume * jnp.sum(state.damage * trace)


def crack_extent(damage, problem: FractureProblem, threshold: float = 0.5):
    """Length (2D) / area (3D) of the columns along the wall axis where ``max d >= threshold``."""
    w = problem.walls.axis
    columns = jnp.max(damage, axis=w) >= threshold
    return jnp.sum(columns) * problem.grid.cell_volume / problem.grid.spacing[w]


def summary(state: FractureState, material: FractureMaterial, model: DamageModel, problem: FractureProblem,
            loading: Loading) -> dict:
    """Scalars of a state: high-wall ``reaction`` (force per unit thickness in 2D), ``elastic_energy``,
    ``fracture_energy``, regularised ``crack_length``, ``crack_extent`` (columns with ``d >= 1/2``),
    ``crack_volume``, ``opening_max``, ``damage_max``. Energies per unit thickness in 2D."""
    return {
        "reaction": reactions(state, material, problem, loading)[1],
        "elastic_energy": elastic_energy(state, material, problem, loading.eigenstrain),
        "fracture_energy": fracture_energy(state.damage, material, model, problem),
        "crack_length": crack_length(state.damage, problem.grid, problem.damage_boundary, model, material.length),
        "crack_extent": crack_extent(state.damage, problem),
        "crack_volume": crack_volume(state, problem),
        "opening_max": jnp.max(opening_profile(state, problem)),
        "damage_max": jnp.max(state.damage),
    }
