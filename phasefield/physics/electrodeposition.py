"""The sub-steps of an electrodeposition step: potential, Allen-Cahn, transport with exchange, current control.

Each is a pure function of arrays and the few numbers it needs (no scenario config), wrapped in
:func:`jax.named_call` so that a profile splits the step's time per physics. The dendrite model
(:mod:`phasefield.models.dendrite`) composes them; the solid-electrolyte and filament models
reuse them. Units are those of the dendrite model: lengths in um, time in s, potentials in V,
conductivities in S/m, concentrations over ``c_ref``; ``x`` (the first axis) runs from the
electrode wall (x = 0) into the electrolyte.

* :func:`solve_cell_potential`: ``div(sigma grad phi) = q`` with the electrode wall at ``V`` and the far
  wall at 0 V, or (galvanostatic) the pair ``phi = phi_0 + V psi`` (``psi``: the response to a unit ``V``);
* :func:`wall_current`: the current density the potential carries through the walls (A/m^2);
* :func:`allen_cahn_update`: the order parameter relaxed by the interface energy (implicit gradient
  term, stabilised explicit barrier, explicit Kobayashi anisotropy, Langevin noise: :func:`langevin_kick`);
* :func:`transport_exchange`: Li+ drift-diffusion and the Butler-Volmer exchange in one implicit
  solve, then the metal grows and pays its exact Li cost;
* :func:`hold_current`: the electrode potential at which a step deposits an applied current (secant).

The reaction formulation (``formulation: reaction``, the default of the dendrite scenarios) adds:

* :func:`reaction_weight`: the reaction localised as an advection of the interface, ``|grad xi|``
  with a grid correction, so that a flat front at any cell size deposits the Butler-Volmer current;
* :func:`interface_curvature`: ``K = div n`` of the metal's outward normal (capillarity, counter term);
* :func:`conserve_metal_locally`: the profile relaxation's metal given back locally (only the reaction deposits);
* :func:`solve_electrolyte_potential`: the ionic potential ``phi_e`` with the Faradaic current as its
  only source, the Butler-Volmer law linearised about the last ``phi_e`` (one Newton step: stable
  at any ratio of ohmic to charge-transfer resistance);
* :func:`solve_balanced_step`: held voltage, ``phi_e`` and the transport-and-exchange step solved
  together (Newton on the charge balance whose source is the step's own deposit), so the current
  through the counter electrode equals the metal deposited;
* :func:`net_free_kick`: interface noise that moves no net metal (no charge passes for it);
* :func:`electrolyte_current`: the ionic current through the counter-electrode wall;
* :func:`solve_electronic_potential`: where the electrolyte leaks electrons, the metal's potential ``phi_s``
  (isolated metal floats; the leak through the electrolyte reaches the counter electrode).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.decomposition import AXIS
from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import SpectralBasis, divergence, face_average, flux_divergence, gradient
from phasefield.operators.stencils import neighbours, wall_flux
from phasefield.operators.elliptic import apply_operator, solve_potential
from phasefield.physics.electrochemistry import (
    barrier_slope,
    butler_volmer_linear,
    interpolation,
    interpolation_change,
    interpolation_slope,
    metal_growth,
)
from phasefield.physics.transport import drift_diffusion_step, electrolyte_boundary
from phasefield.recompute import implicit_root, recomputed, root, taken_again
from phasefield.units import MICRON

SLOTBOOM_LIMIT = 30.0  # w = e^{-f (phi - phi_max)} capped at e^30: beyond 0.77 V (the metal) grad phi ~ 0
TRANSPORT_TOLERANCE = 1e-10  # Slotboom solve; Li conservation does not depend on it (flux-form update)
F_PHI_LIMIT = 80.0  # |f phi| kept below this in the exponentials (|phi| < 2 V at 298 K)
VOLTAGE_RANGE = (-2.0, 0.5)  # galvanostatic control keeps the electrode potential in this range, V
CURRENT_TOLERANCE = 1e-6  # galvanostatic control: relative deviation from the applied current per step
SECANT_ITERATIONS = 12  # galvanostatic control: most secant updates per step
IONIC_FLOOR = 1e-6  # conductivity of the electrolyte potential inside the metal, relative (a dead end)
NEWTON_ITERATIONS = 12  # electrolyte potential: most linearised solves per step
NEWTON_STEP = 2.0  # ... each moving phi_e by at most this over f (51 mV at 298 K)
NEWTON_TOLERANCE = 1e-6  # ... until phi_e moves less than this, V
GMRES_RESTART = 5  # the balanced step's tangent solves: Krylov vectors kept (GMRES restarts after them) ...
GMRES_RESTARTS = 16  # ... and restarts at most (80 products, as 4 x 20: restart 5 agrees to 2e-13 at 128^2)
REACTION_CUTOFF = 5e-2  # no reaction where xi is below this (0.74 interface thicknesses ahead of xi = 1/2)
REACTION_SATURATION = 1e4  # transport-and-exchange: k dt at most this (a supply-limited reaction)
ELECTRONIC_CONTRAST = 1e7  # leaky electrolyte: the metal's electronic conductivity over the leakage one, at most


def working_tolerance(tolerance: float, dtype, multiple: float) -> float:
    """``tolerance``, raised to ``multiple`` machine epsilons of ``dtype`` (float32: 1.2e-7) where it is
    below what that precision resolves (a float32 run would otherwise iterate to every loop's bound)."""
    return max(tolerance, multiple * float(jnp.finfo(dtype).eps))


def cell_boundary(ndim: int) -> Boundary:
    """The potential's walls: Dirichlet 0 on both x walls (the electrode potential enters as a
    wall-cell source, see :func:`solve_cell_potential`), no flux across."""
    return Boundary(((Side("dirichlet", 0.0), Side("dirichlet", 0.0)),)
                    + ((Side("neumann"), Side("neumann")),) * (ndim - 1))


class CellPotential(NamedTuple):
    """The potential of a step (V): ``phi = base + voltage * response``.

    ``response`` is ``psi``, the potential of a unit electrode potential without source
    (galvanostatic), or ``None`` (potentiostatic: ``base`` is then ``phi`` itself, solved with
    the electrode potential in it). ``iterations`` (CG, both solves), ``residual`` (of ``base``).
    """

    phi: jnp.ndarray
    base: jnp.ndarray
    response: jnp.ndarray | None
    iterations: jnp.ndarray
    residual: jnp.ndarray


@jax.named_call
def solve_cell_potential(conductivity, source, voltage, grid: Grid, initial_guess, tolerance, max_iterations: int,
                         response_guess=None, slabs=None) -> CellPotential:
    """``div(sigma grad phi) = q`` with ``phi = V`` on the electrode wall (x = 0) and 0 on the far wall.

    conductivity ``sigma`` (S/m) and source ``q`` (A/m^3 times um^2: the charge density ``n F c_s``
    in um^2 times a rate per s) per cell; ``voltage`` ``V`` (V); ``initial_guess``: the last
    ``phi``. ``V`` enters as the wall-cell source ``-2 sigma_0 V / h^2`` of the Dirichlet ghost,
    so the solver sees homogeneous walls. With ``response_guess`` (the last ``psi``) the
    potential is solved as ``phi_0 + V psi`` (two solves: ``phi`` is linear in ``V``, so a
    galvanostatic control can move ``V`` within the step at no further cost).
    Tolerance, iteration limit and ``slabs``: :func:`phasefield.operators.elliptic.solve_potential`.
    """
    boundary = cell_boundary(grid.ndim)
    wall_source = jnp.zeros_like(conductivity).at[0].set(-2.0 * conductivity[0] / grid.spacing[0] ** 2)
    if response_guess is None:
        phi, iterations, residual = solve_potential(conductivity, source + voltage * wall_source, grid, boundary,
                                                    initial_guess, tolerance, max_iterations, slabs=slabs)
        return CellPotential(phi, phi, None, iterations, residual)
    psi, psi_iterations, _ = solve_potential(conductivity, wall_source, grid, boundary, response_guess,
                                             tolerance, max_iterations, slabs=slabs)
    base, iterations, residual = solve_potential(conductivity, source, grid, boundary,
                                                 initial_guess - voltage * response_guess, tolerance, max_iterations,
                                                 slabs=slabs)
    return CellPotential(base + voltage * psi, base, psi, iterations + psi_iterations, residual)


def wall_current(conductivity, phi, voltage, grid: Grid):
    """Current density (A/m^2 of electrode) that the potential carries into the cell: the net flux
    ``sigma dphi/dn`` through the x walls (Dirichlet ghosts: ``2 sigma (g - phi) / h``), which by
    Gauss equals the integrated source (``n F c_s int dh/dt`` for a deposit)."""
    transverse_area = grid.cell_volume / grid.spacing[0]
    electrode_area = float(np.prod(grid.lengths[1:]))
    far_wall = -2.0 * conductivity[-1] * phi[-1] / grid.spacing[0]
    electrode_wall = 2.0 * conductivity[0] * (phi[0] - voltage) / grid.spacing[0]
    return (jnp.sum(far_wall) - jnp.sum(electrode_wall)) * transverse_area / electrode_area / MICRON


def gradient_norm(components):
    """``|grad u|`` from its components, with a zero derivative where it is zero (that of ``sqrt`` is
    infinite there, and a differentiated run would carry NaN tangents out of every flat region)."""
    squared = sum(g * g for g in components)
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1.0)), 0.0)


def gradient_angle(gy, gx):
    """``arctan2(gy, gx)``; 0, with a zero derivative, where ``|grad|^2`` is zero or underflows (``arctan2``'s
    derivative, ``1 / |grad|``, is 0/0 or infinite there)."""
    present = gx * gx + gy * gy > jnp.finfo(jnp.result_type(gx)).tiny
    return jnp.where(present, jnp.arctan2(jnp.where(present, gy, 0.0), jnp.where(present, gx, 1.0)), 0.0)


def anisotropy_divergence(xi, grid: Grid, kappa, strength, mode: int, angle):
    """``div J - kappa lap xi`` of the Kobayashi flux ``J`` (2D): the anisotropic excess of the gradient term.

    ``eps(theta) = eps0 (1 + delta cos(m (theta - theta0)))``, ``theta`` the angle of ``grad xi``
    from x; ``J = kappa [(eps/eps0)^2 grad xi + (eps/eps0)(eps'/eps0) grad xi^perp]``. No flux
    through the walls. ``angle`` ``theta0`` in radians.
    """
    neumann = Boundary.uniform(2, "neumann")
    gx, gy = gradient(xi, grid, neumann)
    norm2 = gx**2 + gy**2
    theta = gradient_angle(gy, gx)
    eps_ratio = 1.0 + strength * jnp.cos(mode * (theta - angle))
    deps_ratio = -strength * mode * jnp.sin(mode * (theta - angle))
    # J is continuous as grad xi -> 0 (its terms are bounded multiples of grad xi): a cut-off only where |grad xi|^2
    # underflows, none in the interface tails (at 1e-12 its switching with the rounding moved xi by 4e-7 between
    # two programs that compute the same thing)
    present = norm2 > jnp.finfo(xi.dtype).tiny
    excess = jnp.where(present, eps_ratio**2 - 1.0, 0.0)
    cross = jnp.where(present, eps_ratio * deps_ratio, 0.0)
    jx = kappa * (excess * gx - cross * gy)
    jy = kappa * (excess * gy + cross * gx)
    face_x = face_average(jx, neumann, 0, "arithmetic").at[jnp.array([0, -1])].set(0.0)
    face_y = face_average(jy, neumann, 1, "arithmetic").at[:, jnp.array([0, -1])].set(0.0)
    return divergence([face_x, face_y], grid)


def anisotropy_stable_dt(grid: Grid, mobility, kappa, strength, mode: int):
    """The explicit limit of the anisotropic flux, an extra diffusivity of at most
    ``L kappa delta (m^2 + 2) (1 + delta)``: ``0.5 / (that * sum 1/h^2)``; ``inf`` without anisotropy."""
    present = strength > 0
    diffusivity = mobility * kappa * strength * (mode * mode + 2) * (1 + strength) * sum(1 / h**2 for h in grid.spacing)
    return jnp.where(present, 0.5 / jnp.where(present, diffusivity, 1.0), jnp.inf)


@jax.named_call
def allen_cahn_update(xi, dt, basis: SpectralBasis, mobility, barrier, kappa, anisotropy=None, noise=None,
                      curvature=None):
    """One step of ``dxi/dt = -L [W g'(xi) - div(kappa(theta) grad xi)] + noise`` (no-flux walls).

    The isotropic gradient term is implicit in the cosine ``basis``, the barrier explicit with the
    stabilisation ``S (xi' - xi)``, ``S = 2 W`` (the largest ``W g''``: unconditionally stable).
    ``mobility`` ``L`` (1/s per unit energy density), ``barrier`` ``W`` and ``kappa`` (energy
    density, times um^2), ``dt`` in s.

    anisotropy: ``None`` or ``(delta, m, theta0)`` (2D; theta0 in radians): the explicit excess
        :func:`anisotropy_divergence`, skipped (``lax.cond``) where ``delta = 0``;
    noise: ``None`` or ``(A, key)``: ``xi += A sqrt(dt) N(0,1) 16 xi^2 (1 - xi)^2`` (1/sqrt(s)),
        skipped where ``A = 0``.
    curvature: ``None`` or ``(K, |grad xi|)`` of ``xi`` (:func:`interface_curvature`): add the counter
        term ``L kappa |grad xi| K``, explicit, which cancels the curvature part of ``kappa lap xi`` (Folch et al. 1999; Sun &
        Beckermann 2007): the interface keeps its tanh profile but does not move by curvature;
        capillarity then enters the Butler-Volmer exponent instead.
    Returns ``xi'`` (the Li it costs is paid by :func:`metal_growth`).
    """
    grid = basis.grid
    stabilization = 2.0 * barrier
    explicit = -mobility * (barrier * barrier_slope(xi) - stabilization * xi)
    if curvature is not None:
        mean_curvature, norm = curvature
        explicit = explicit + mobility * kappa * norm * mean_curvature
    if anisotropy is not None:
        strength, mode, angle = anisotropy
        explicit = jax.lax.cond(
            strength > 0,
            lambda: explicit + mobility * anisotropy_divergence(xi, grid, kappa, strength, mode, angle),
            lambda: explicit)
    symbol = 1.0 / dt + mobility * (stabilization - kappa * basis.laplacian_symbol)
    relaxed = basis.inverse(basis.forward(xi / dt + explicit) / symbol)
    return relaxed if noise is None else langevin_kick(xi, relaxed, dt, noise)


def langevin_kick(xi, relaxed, dt, noise):
    """``relaxed + A sqrt(dt) N(0,1) 16 xi^2 (1 - xi)^2`` (``noise = (A, key)``, A in 1/sqrt(s), dt in s): the
    interface noise of a step from ``xi``, skipped (``lax.cond``) where ``A = 0``. The draws are
    counter-based (partitionable threefry): the same field on any number of devices and any split."""
    amplitude, key = noise

    def kick():
        with jax.threefry_partitionable(True):  # each cell's draw from the key and its global index alone
            normal = jax.random.normal(key, xi.shape, relaxed.dtype)
        return relaxed + amplitude * jnp.sqrt(dt) * normal * 16.0 * (xi * (1.0 - xi)) ** 2

    return jax.lax.cond(amplitude > 0, kick, lambda: relaxed)



def net_free_kick(relaxed, kicked, c, site_ratio, passes: int = 2):
    """The noise's growth and dissolution, after :func:`metal_growth` paid them, scaled to cancel in total.

    The Langevin kick models fluctuations of the interface, not a reaction: no electron crosses for it,
    so it must move no net metal, or the deposited charge parts from the passed one. Paid cell by cell,
    it does: where the salt at the deposit is depleted its gains are refused and its losses are not
    (the default dendrite job then passes 4 % more charge than it deposits). The larger of the two
    sides, ``sum max(dh, 0)`` and ``sum max(-dh, 0)`` (``dh = h(kicked) - h(relaxed)``), is scaled to
    the smaller one (``passes`` times: ``h`` is not linear over a kick); ``c`` pays or gets back the
    Li of what is left, ``(c_s/c_ref) dh``. Returns ``(xi', c')``.
    """
    base = interpolation(relaxed)
    step = kicked - relaxed
    for _ in range(passes):
        change = interpolation(relaxed + step) - base
        gain, loss = jnp.sum(jnp.maximum(change, 0.0)), jnp.sum(jnp.maximum(-change, 0.0))
        kept = jnp.minimum(gain, loss)
        step = step * jnp.where(change > 0, kept / jnp.where(gain > 0, gain, 1.0), kept / jnp.where(loss > 0, loss, 1.0))
    xi_new = relaxed + step
    return xi_new, c - site_ratio * (interpolation(xi_new) - base)


@jax.named_call
def conserve_metal_locally(xi, relaxed, basis: SpectralBasis, width, sweeps: int = 2):
    """``relaxed`` moved along its own normal so that it holds the metal of ``xi``, locally and in total.

    The profile relaxation of the reaction formulation restores the tanh shape that the reaction
    distorts; it must not move metal, since only the reaction deposits. Its shape change moves metal by
    less than an interface width (steepening: from ahead of the front to behind it); its translation
    part would grow or dissolve metal by numerics every step (a per-step damping of every bump and,
    paid cell by cell from a depleted interface, a net dissolution). With ``d = h(relaxed) - h(xi)``
    and the advection ``xi' = relaxed + lam |grad relaxed|`` (the profile shifted by ``lam``, um),
    ``lam`` is the metal gained over the metal one um of shift buys, both averaged over a Gaussian ``G``
    of standard deviation ``width`` (um, about the interface thickness; the cosine ``basis``: no flux
    across walls), in ``sweeps`` Newton passes::

        lam = -G[d] / G[h'(relaxed) |grad relaxed|]

    so every region of that size keeps its metal while the shape change (a dipole within the window)
    is barely touched; then one uniform shift (``sweeps`` scalar Newton steps) makes the total exact to
    round-off. Only cells where the averaged weight is at least 5 % of a flat front's,
    ``1 / (sqrt(2 pi) width)``, move, each by at most ``width / 2``: far from interfaces the ratio of two
    small numbers would amplify any haze of ``xi`` at the grid scale, step after step. Returns
    ``(xi', residual)``, ``residual = sum h(xi') - sum h(xi)``.
    """
    grid = basis.grid
    blur = jnp.exp(0.5 * width * width * basis.laplacian_symbol)
    neumann = Boundary.uniform(grid.ndim, "neumann")
    target = interpolation(xi)
    reach_floor = 0.05 / (math.sqrt(2.0 * math.pi) * width)  # 5 % of a flat front's averaged weight, 1/um

    def smooth(field):
        return basis.inverse(basis.forward(field) * blur)

    def shift_weight(field):
        norm = gradient_norm(gradient(field, grid, neumann))
        return norm, interpolation_slope(field) * norm

    for _ in range(sweeps):
        norm, weight = shift_weight(relaxed)
        buys = smooth(weight)
        reach = buys > reach_floor
        lam = jnp.where(reach, -smooth(interpolation(relaxed) - target) / jnp.where(reach, buys, 1.0), 0.0)
        lam = jnp.clip(lam, -0.5 * width, 0.5 * width)
        relaxed = jnp.clip(relaxed + lam * norm, 0.0, 1.0)
    for _ in range(sweeps):
        norm, weight = shift_weight(relaxed)
        lam = -jnp.sum(interpolation(relaxed) - target) / jnp.maximum(jnp.sum(weight), 1e-300)
        relaxed = jnp.clip(relaxed + lam * norm, 0.0, 1.0)
    return relaxed, jnp.sum(interpolation(relaxed) - target)


class Exchange(NamedTuple):
    """A transport-and-exchange step: ``xi`` and ``c`` after it, ``solved`` (the implicit ``c'``, a warm
    start for another trial), ``wall_inflow`` (Li+ per unit time through the reservoir wall, summed
    over its faces) and the CG ``iterations``."""

    xi: jnp.ndarray
    c: jnp.ndarray
    solved: jnp.ndarray
    wall_inflow: jnp.ndarray
    iterations: jnp.ndarray


class Kinetics(NamedTuple):
    """The numbers of the transport-and-exchange step: ``f = nF/RT`` (1/V), Butler-Volmer ``reaction_rate``
    ``L_eta`` (1/s) and ``alpha``, ``site_ratio`` ``c_s/c_ref``, the reservoir concentration ``bulk``
    (over ``c_ref``)."""

    f: jnp.ndarray
    reaction_rate: jnp.ndarray
    alpha: jnp.ndarray
    site_ratio: jnp.ndarray
    bulk: jnp.ndarray


@jax.named_call
def transport_exchange(xi, c, phi, dt, diffusivity, grid: Grid, kinetics: Kinetics, reservoir: bool, migration: bool,
                       shift=None, c_guess=None, localisation=None, slabs=None) -> Exchange:
    """Li+ transport with the Butler-Volmer exchange as its implicit linear sink, then the metal's growth.

    ``dc/dt = div[D (grad c + c f grad phi)] - (c_s/c_ref) h' dxi/dt`` with
    ``dxi/dt = r (c - c_eq)`` linear in ``c`` for frozen ``phi`` and ``h'(xi)``
    (:func:`butler_volmer_linear`), one backward-Euler step in Slotboom variables
    (:func:`drift_diffusion_step`): the reaction draws on the Li+ that diffuses in during the step;
    ``dxi = dt r (c' - c_eq)`` then pays its exact Li cost from the transported (flux-form,
    conservative) ``c`` (:func:`metal_growth`), so total Li ``c + (c_s/c_ref) h(xi)`` changes only
    by the wall inflow.

    diffusivity ``D`` per cell (um^2/s); ``shift`` ``s`` (optional, per cell or scalar) moves the
    Butler-Volmer argument ``f phi -> f phi + s`` (a mechanical overpotential); ``reservoir``: the
    far wall holds ``bulk`` (else closed); ``migration``: drift in ``grad phi`` (else diffusion only).
    ``localisation``: the reaction's, in place of ``h'(xi)`` (:func:`reaction_weight`; then
    ``phi`` is the overpotential ``phi_s - phi_e`` and ``reaction_rate`` a speed in um/s). ``slabs``: the fields'
    split over the devices (the transport's multigrid).
    """
    if migration:
        f_phi = kinetics.f * (phi - jnp.max(phi))
        weight = jnp.exp(-jnp.clip(f_phi, -SLOTBOOM_LIMIT, 0.0))
        wall_weight = jnp.exp(kinetics.f * jnp.max(phi))  # w at the reservoir wall (phi = 0)
    else:
        weight, wall_weight = jnp.ones_like(c), 1.0
    argument = kinetics.f * phi if shift is None else kinetics.f * phi + shift
    rate, c_eq, k = butler_volmer_linear(xi, jnp.clip(argument, -F_PHI_LIMIT, F_PHI_LIMIT),
                                         kinetics.reaction_rate, kinetics.site_ratio, kinetics.alpha, localisation)
    # a step that would use up the cell's Li+ more than REACTION_SATURATION times over is supply-limited: its
    # rate is capped there (the deposit changes by 1/REACTION_SATURATION of the supply); uncapped, k dt reaches
    # 1e17 at -2 V (galvanostatic control at Sand's time) and multiplies the solve's round-off into the metal
    saturation = REACTION_SATURATION / jnp.maximum(k * dt, REACTION_SATURATION)
    rate, k = rate * saturation, k * saturation
    moved = drift_diffusion_step(c, dt, diffusivity, weight, grid, reservoir, kinetics.bulk, wall_weight,
                                 k, c_eq, initial_guess=c if c_guess is None else c_guess,
                                 tolerance=working_tolerance(TRANSPORT_TOLERANCE, c.dtype, 100.0), slabs=slabs)
    xi_new = jnp.clip(xi + dt * rate * (moved.solved - c_eq), 0.0, 1.0)
    xi_new, c_new = metal_growth(xi, xi_new, moved.transported, kinetics.site_ratio)
    return Exchange(xi_new, c_new, moved.solved, moved.wall_inflow, moved.iterations)


@jax.named_call
def hold_current(exchange_at: Callable, growth_rate: Callable, target, voltage_guess, c_guess,
                 lowest=VOLTAGE_RANGE[0]):
    """The electrode potential ``V`` at which a step grows the applied current; secant iterations.

    exchange_at(V, c_guess) -> :class:`Exchange`: the step at electrode potential ``V``
        (e.g. :func:`transport_exchange` at ``phi_0 + V psi``), or any NamedTuple with the fields ``solved``
        (the next trial's warm start, which ``c_guess`` starts: an array or a tuple of them) and ``iterations``
        (an integer array, summed over the trials: e.g. :class:`BalancedTrial`'s transport and potential
        iterations, where isolated metal floats); growth must fall monotonically with ``V``
        (a more negative electrode deposits more);
    growth_rate(exchange) -> the step's growth (any unit), held at ``target`` (same unit, > 0)
        to the relative :data:`CURRENT_TOLERANCE`.
    Each trial is one warm-started call of ``exchange_at``. The first trial is at
    ``voltage_guess`` (the last step's ``V``), the second 1 mV away downhill; ``V`` stays in
    :data:`VOLTAGE_RANGE`, and above ``lowest`` (a cutoff; ``V`` at it past Sand's time, where no
    potential can deliver the current). Returns ``(V, exchange)`` with ``exchange.iterations`` summed over the trials.
    """
    exchange_at = jax.jit(exchange_at)  # one trace for the loop, its shapes, the root's derivative and the step again

    def trial(v, guess):
        result = exchange_at(v, guess)
        return result, growth_rate(result) / target - 1.0

    def secant_iterations(_, start):
        # every trial is the loop's one (compiled once): the first at ``start``, the second 1 mV away downhill,
        # then secant steps
        def keep_going(state):
            v_old, g_old, v, g, result, iterations, count = state
            return (count < 2) | ((jnp.abs(g) > working_tolerance(CURRENT_TOLERANCE, g.dtype, 1000.0))
                                  & (count < SECANT_ITERATIONS + 2) & (v_old != v))

        def secant(state):
            v_old, g_old, v, g, result, iterations, count = state
            denominator = jnp.where(g != g_old, g - g_old, 1.0)
            update = jnp.clip(-g * (v - v_old) / denominator, -0.1, 0.1)
            # where the growth is saturated in V (the salt at the deposit used up within the step) the secant's
            # slope is round-off and may point uphill: then the largest step the way g says (g > 0: V up)
            update = jnp.where(update * g > 0, update, 0.1 * jnp.sign(g))
            v_next = jnp.clip(v + update, jnp.maximum(lowest, VOLTAGE_RANGE[0]), VOLTAGE_RANGE[1])
            v_next = jnp.where(count == 0, start, jnp.where(count == 1, v + 1e-3 * jnp.where(g > 0, 1.0, -1.0), v_next))
            guess = jax.tree.map(lambda first, last: jnp.where(count == 0, first, last), c_guess, result.solved)
            result_next, g_next = trial(v_next, guess)
            return v, g, v_next, g_next, result_next, iterations + result_next.iterations, count + 1

        shapes = jax.eval_shape(trial, start, c_guess)
        empty, g_empty = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
        state = (start, g_empty, start, g_empty, empty, jnp.zeros_like(empty.iterations), 0)
        _, _, v, _, result, iterations, _ = jax.lax.while_loop(keep_going, secant, state)
        return v, (result, iterations)

    # V is differentiated implicitly (dV = -(dg/dtheta) / (dg/dV) at the root of the growth mismatch g), so
    # reverse mode passes the while_loop; the step at V carries V's and the parameters' derivatives as the step
    # taken again from its own converged solution (a converged start: no CG iterations, the same values), which
    # only a derivative computes: a run keeps the loop's last trial
    v, (last, iterations) = implicit_root(lambda v: trial(v, c_guess)[1], voltage_guess, secant_iterations,
                                          lambda linearised, y, _: y / linearised(jnp.ones_like(y)))
    result = taken_again(exchange_at, last, v, last.solved)
    return v, result._replace(iterations=iterations.astype(result.iterations.dtype))


def growth_per_area(xi_start, xi_end, dt, grid: Grid):
    """Metal grown per electrode area and time, um/s: ``int [h(xi') - h(xi)] dV / (A dt)``."""
    electrode_area = float(np.prod(grid.lengths[1:]))
    return jnp.sum(interpolation(xi_end) - interpolation(xi_start)) * grid.cell_volume / electrode_area / dt


def reaction_weight(xi, grid: Grid, slope, only_connected: bool = True, slabs=None):
    """``w = C(k h) |grad xi|`` (1/um, centred differences): the reaction's localisation in the reaction
    formulation, ``dxi/dt = v w``: the interface advected at the speed ``v`` (a flat front keeps its
    tanh profile), so that it grows the metal at ``dh/dt = v h' w``, one ``v`` per area across it.

    On the grid the centred ``sum h'(xi) |grad xi| dx`` of a tanh profile of slope ``k`` (1/um) falls
    short of one (0.955 at 4 cells across 2/k, 0.922 at 3): :func:`front_weight_correction` ``C``
    restores it, so a flat front of any cell size deposits the Butler-Volmer current exactly (to
    4e-3 over its position in the cell at 4 cells: no stick-slip). ``h'(xi)`` alone (Chen 2015)
    would give ``int h'^2 dx = 6.43/k`` and pin on coarse grids. ``h`` is the x spacing.
    ``w = 0`` where ``xi <`` :data:`REACTION_CUTOFF` (0.05: 0.74 interface thicknesses ahead of the
    front, ``h = 1.2e-3``): in the foot of the profile growth costs almost no Li (``h ~ xi^3``), and a
    foot that reacts takes all the Li+ that reaches a depleted front at a large overpotential, runs ahead
    and detaches (held at -1 V, it plated 6x the diffusion limit with a cutoff of 1e-4). With
    ``only_connected``, also ``w = 0`` off the metal joined to the electrode (:func:`electrode_connected`):
    dead Li takes no part. ``only_connected=False`` where electrons reach isolated metal through a leaky
    electrolyte (its own potential, :func:`solve_electronic_potential`). ``slabs``: the fields' split over
    devices, if any.
    """
    neumann = Boundary.uniform(grid.ndim, "neumann")
    components = gradient(xi, grid, neumann)
    norm = gradient_norm(components)
    sites = electrode_connected(xi, slabs=slabs) if only_connected else xi > REACTION_CUTOFF
    return jnp.where(sites, front_weight_correction(slope * grid.spacing[0]).astype(xi.dtype) * norm, 0.0)


def connected_runs(connected, inside, axis: int):
    """``inside`` cells whose run along ``axis`` (cells of ``inside`` between two gaps) holds a ``connected``
    cell: the last connected index before a cell and the next one after it against the gaps' (``cummax``
    and ``cummin`` of indices)."""
    n = inside.shape[axis]
    index = jnp.arange(n).reshape([n if a == axis else 1 for a in range(inside.ndim)])
    last_connected = jax.lax.cummax(jnp.where(connected, index, -1), axis=axis)
    last_gap = jax.lax.cummax(jnp.where(inside, -1, index), axis=axis)
    next_connected = jax.lax.cummin(jnp.where(connected, index, n), axis=axis, reverse=True)
    next_gap = jax.lax.cummin(jnp.where(inside, n, index), axis=axis, reverse=True)
    return inside & ((last_connected > last_gap) | (next_connected < next_gap))


def electrode_connected(xi, threshold: float = REACTION_CUTOFF, slabs=None):
    """Cells joined to the electrode (the ``x = 0`` wall) by a path of face neighbours with ``xi >
    threshold``: the metal that electrons reach, and its interface. Metal cut off from it is dead Li
    (no electronic path through the electrolyte): it neither plates nor strips (:func:`reaction_weight`
    times this mask). Whole runs of cells along each axis in turn (:func:`connected_runs`), until nothing
    changes: as many passes as the path from the wall has turns. With ``slabs`` (fields split along x)
    the runs along x are found on the transposed mask (one ``all_to_all`` each way), not on a gathered one.
    Returns a boolean field."""
    inside = xi > threshold
    ndim = xi.ndim

    def along_x(connected):
        if slabs is None:
            return connected_runs(connected, inside, 0)
        devices = slabs.count
        padded = -(-xi.shape[1] // devices) * devices

        def block(connected, inside):
            pad = [(0, 0)] * ndim
            pad[1] = (0, padded - xi.shape[1])
            columns = [jax.lax.all_to_all(jnp.pad(u.astype(jnp.int8), pad), AXIS, split_axis=1, concat_axis=0,
                                          tiled=True) > 0 for u in (connected, inside)]
            rows = jax.lax.all_to_all(connected_runs(*columns, 0).astype(jnp.int8), AXIS, split_axis=0,
                                      concat_axis=1, tiled=True)
            return jax.lax.slice_in_dim(rows, 0, xi.shape[1], axis=1) > 0

        spec = slabs.spec(ndim, 0)
        return jax.shard_map(block, mesh=slabs.mesh, in_specs=(spec, spec), out_specs=spec)(connected, inside)

    def sweep(state):
        connected, _ = state
        spread = along_x(connected)
        for axis in range(1, ndim):
            spread = connected_runs(spread, inside, axis)
        return spread, jnp.any(spread != connected)

    wall = jnp.arange(xi.shape[0]).reshape([-1] + [1] * (ndim - 1)) == 0
    connected, _ = jax.lax.while_loop(lambda state: state[1], sweep, (inside & wall, jnp.asarray(True)))
    return connected


def front_weight_correction(slope_spacing, samples: int = 16):
    """``C(k h) = 1 / <sum_j h'(xi_j) |grad xi|_j h>`` for ``xi = (1 - tanh(k x))/2`` sampled at cell
    centres (centred differences, the cells above :data:`REACTION_CUTOFF`), averaged over ``samples``
    offsets of the front within a cell."""
    offsets = jnp.arange(samples) / samples
    cells = jnp.arange(-40, 41)
    position = (cells[None, :] + offsets[:, None]) * slope_spacing  # k x
    xi = 0.5 * (1.0 - jnp.tanh(position))
    gradient_norm = jnp.abs(xi[:, 2:] - xi[:, :-2]) / 2.0  # |grad xi| h
    reacting = xi[:, 1:-1] > REACTION_CUTOFF
    total = jnp.sum(jnp.where(reacting, interpolation_slope(xi[:, 1:-1]) * gradient_norm, 0.0), axis=1)
    return 1.0 / jnp.mean(total)


def interface_curvature(xi, grid: Grid):
    """``(K, |grad xi|)``: ``K = div n`` (1/um) of the metal's outward normal ``n = -grad xi / |grad xi|``
    (positive on a convex deposit: ``1/R`` on a disc, ``2/R`` on a ball), centred differences, 0
    where ``|grad xi|`` is below 1e-6 of its largest value, clipped to ``+-1/h`` (no radius below a cell)."""
    neumann = Boundary.uniform(grid.ndim, "neumann")
    components = gradient(xi, grid, neumann)
    norm = gradient_norm(components)
    present = norm > 1e-6 * jnp.max(norm)
    safe = jnp.where(present, norm, 1.0)
    curvature = 0.0
    for axis, g in enumerate(components):
        lower, upper = neighbours(jnp.where(present, -g / safe, 0.0), neumann, axis)
        curvature = curvature + (upper - lower) / (2.0 * grid.spacing[axis])
    limit = 1.0 / min(grid.spacing)
    return jnp.where(present, jnp.clip(curvature, -limit, limit), 0.0), norm


def electrolyte_boundary_conditions(ndim: int) -> Boundary:
    """The ionic potential's walls: no flux at the electrode (x = 0: the metal, not the electrolyte,
    touches the current collector), 0 V at the counter electrode (far x wall), no flux across."""
    return Boundary(((Side("neumann"), Side("dirichlet", 0.0)),) + ((Side("neumann"), Side("neumann")),) * (ndim - 1))


class ElectrolytePotential(NamedTuple):
    """``phi`` (V), CG ``iterations``, relative ``residual`` of an electrolyte-potential solve."""

    phi: jnp.ndarray
    iterations: jnp.ndarray
    residual: jnp.ndarray


def newton_potential(conductivity, boundary: Boundary, linearised_source: Callable, guess, grid: Grid,
                     step_limit, tolerance, max_iterations: int, slabs=None) -> ElectrolytePotential:
    """``phi`` (V) with ``-div(k grad phi) + g(phi) = 0`` (``k`` = ``conductivity``, S/m; walls ``boundary``),
    ``linearised_source(phi) -> (g, dg/dphi)``, ``dg/dphi >= 0`` (a Butler-Volmer source and its slope).

    Newton from ``guess``: each step is one symmetric definite solve ``(A + V D) x = -V (g - D phi)``
    (``A = -V div(k grad)``, ``V`` the cell volume, ``D = dg/dphi`` a diagonal shift) by the multigrid CG
    of :func:`phasefield.operators.elliptic.solve_potential`, each moving ``phi`` by at most ``step_limit``,
    at most :data:`NEWTON_ITERATIONS` steps, until a step moves it less than :data:`NEWTON_TOLERANCE`.
    The converged iterations are differentiated implicitly (:func:`~phasefield.recompute.implicit_root`: a
    tangent or cotangent is one more linear solve at the solution), so reverse mode passes the ``while_loop``.
    ``slabs``: the fields' split over the devices (the multigrid's)."""

    def balance(phi):
        """``A phi + V g(phi)``: zero at the solution."""
        return apply_operator(conductivity, phi, grid, boundary) + grid.cell_volume * linearised_source(phi)[0]

    def newton_iterations(_, start_guess):
        def newton(state):
            phi, _, iterations, _, count = state
            source, derivative = linearised_source(phi)
            solved, solve_iterations, residual = solve_potential(conductivity, source - derivative * phi, grid,
                                                                 boundary, phi, tolerance, max_iterations,
                                                                 shift=derivative, slabs=slabs)
            update = jnp.clip(solved - phi, -step_limit, step_limit)
            return phi + update, jnp.max(jnp.abs(update)), iterations + solve_iterations, residual, count + 1

        def going(state):
            _, change, _, _, count = state
            return (count < NEWTON_ITERATIONS) & (change > working_tolerance(NEWTON_TOLERANCE, guess.dtype, 1000.0))

        start = (start_guess, jnp.asarray(jnp.inf, guess.dtype), jnp.asarray(0, jnp.int32),
                 jnp.asarray(0.0, guess.dtype), 0)
        phi, _, iterations, residual, _ = jax.lax.while_loop(going, newton, start)
        return phi, (iterations.astype(guess.dtype), residual)  # implicit_root's aux: floating point only

    def linear_solve(linearised, rhs, extra):
        """``x`` with ``(A + V D) x = rhs``, ``D`` read off the linearised balance."""
        conductivity, tolerance = extra
        ones = jnp.ones_like(rhs)
        diagonal = (linearised(ones) - apply_operator(conductivity, ones, grid, boundary)) / grid.cell_volume
        solved, _, _ = solve_potential(conductivity, -rhs / grid.cell_volume, grid, boundary, jnp.zeros_like(rhs),
                                       tolerance, max_iterations, shift=jnp.maximum(diagonal, 0.0), slabs=slabs)
        return solved

    phi, (iterations, residual) = implicit_root(balance, guess, newton_iterations, linear_solve,
                                                (conductivity, tolerance))
    return ElectrolytePotential(phi, iterations.astype(jnp.int32), residual)


@jax.named_call
def solve_electrolyte_potential(conductivity, xi, c, voltage, guess, grid: Grid, kinetics: Kinetics, weight,
                                shift, charge_density, tolerance, max_iterations: int,
                                total=None, junction=None, slabs=None) -> ElectrolytePotential:
    """The ionic potential: ``div(kappa grad phi_e) = Q h'(xi) dxi/dt`` with the Butler-Volmer reaction
    ``dxi/dt = v0 w [c e^{-a A} - e^{(1-a) A}]``, ``A = f (V - phi_e) + s``, its only source.

    The current crosses the metal/electrolyte interface only through the reaction (no ohmic contact):
    ``conductivity`` ``kappa`` (S/m) is the electrolyte's times ``(1 - h)`` (plus a floor in the metal,
    where the electrolyte potential is a dead end); ``Q`` = ``charge_density`` (``n F c_s`` um^2),
    ``v0`` = ``kinetics.reaction_rate`` (um/s), ``w`` = ``weight`` (:func:`reaction_weight`), ``V``
    the metal's potential (an equipotential electrode: its ohmic drop, under 1 nV at 10 mA/cm^2
    through 100 um of Li, is neglected), ``s`` = ``shift`` (capillary, mechanical). The source is
    linearised about ``guess`` (the last ``phi_e``): one Newton step per time step, a symmetric
    definite problem (the reaction's ``dq/dphi_e >= 0`` is a diagonal shift) for the multigrid CG
    of :func:`phasefield.operators.elliptic.solve_potential`, stable at any ratio of the ohmic
    to the charge-transfer resistance; a few more Newton steps (at most :data:`NEWTON_ITERATIONS`,
    each moving ``phi_e`` by at most :data:`NEWTON_STEP` ``/ f``, until it moves less than
    :data:`NEWTON_TOLERANCE`) where the step changes the current a lot (a held voltage far from
    the last state). Walls: :func:`electrolyte_boundary_conditions`.

    ``total`` (galvanostatic control: the applied metal growth per electrode area, um/s, times the
    electrode area): the source is instead the reaction's distribution at ``guess`` and the last
    ``V`` (its cathodic part alone where the net is under a tenth of it: a starting ``V`` near
    equilibrium) scaled to that total, so the current through the counter electrode is the applied
    one (by Gauss) and equals the deposit that :func:`hold_current` then holds.

    ``junction`` (binary salt): ``div(k_D grad c)`` of :func:`junction_current`, the diffusion current's
    share of the charge balance, ``div(kappa grad phi_e) = Q h' dxi/dt - junction`` (fixed over the step).
    """
    junction = jnp.zeros_like(guess) if junction is None else junction
    tolerance = jnp.maximum(tolerance, working_tolerance(0.0, guess.dtype, 100.0))
    argument = jnp.clip(kinetics.f * (voltage - guess) + shift, -F_PHI_LIMIT, F_PHI_LIMIT)
    rate, c_eq, _ = butler_volmer_linear(xi, argument, kinetics.reaction_rate, 0.0, kinetics.alpha, weight)
    slope = interpolation_slope(xi)
    if total is not None:
        cathodic = slope * rate * jnp.maximum(c, 0.0)
        net = slope * rate * (c - c_eq)
        cathodic_sum, net_sum = jnp.sum(cathodic), jnp.sum(net)
        # the Butler-Volmer distribution at the last V, unless that V is near equilibrium or anodic
        shape, shape_sum = jax.tree.map(lambda a, b: jnp.where(net_sum > 0.1 * cathodic_sum, a, b),
                                        (net, net_sum), (cathodic, cathodic_sum))
        source = charge_density * total * shape / jnp.maximum(shape_sum * grid.cell_volume, 1e-300)
        phi, iterations, residual = solve_potential(conductivity, source - junction, grid,
                                                    electrolyte_boundary_conditions(grid.ndim), guess, tolerance,
                                                    max_iterations, slabs=slabs)
        return ElectrolytePotential(phi, iterations, residual)

    def linearised_source(phi):
        """``(g, dg/dphi_e)``, ``g = q(phi_e) - junction``, ``q = Q h' dxi/dt`` at the electrolyte potential."""
        argument = jnp.clip(kinetics.f * (voltage - phi) + shift, -F_PHI_LIMIT, F_PHI_LIMIT)
        rate, c_eq, _ = butler_volmer_linear(xi, argument, kinetics.reaction_rate, 0.0, kinetics.alpha, weight)
        return (charge_density * slope * rate * (c - c_eq) - junction,
                charge_density * slope * kinetics.f * rate * (kinetics.alpha * c + (1.0 - kinetics.alpha) * c_eq))

    return newton_potential(conductivity, electrolyte_boundary_conditions(grid.ndim), linearised_source, guess,
                            grid, NEWTON_STEP / kinetics.f, tolerance, max_iterations, slabs)


def electronic_conductivity(xi, metal, leakage):
    """The metal's potential ``phi_s``'s conductivity (S/m) where the electrolyte leaks electrons:
    ``sigma_s = h^2 min(sigma_Li, C sigma_leak) + (1 - h^2) sigma_leak``, ``C`` = :data:`ELECTRONIC_CONTRAST`.

    Li (1e7 S/m) against a ceramic's 1e-8-1e-6 S/m is a contrast of 1e13-1e15, beyond what the multigrid CG
    resolves; capped at ``C`` the metal stays an equipotential to ``i l / (C sigma_leak)``: 0.2 mV for
    100 A/m^2 (10 mA/cm^2) along 20 um of Li at ``sigma_leak`` = 1e-6 S/m, less at any larger leakage.
    The metal conducts out to where ``h^2 C`` falls to one, ahead of the ``xi = 1/2`` front by about 0.7
    interface thicknesses ``2/k`` (``h`` alone: 1.5), so a leakage path across a gap ``g`` is shortened by
    that; the reaction's electrons still reach the whole interface (under 1 mV lost where ``h > 3e-4``)."""
    metallic = interpolation(xi) ** 2
    return metallic * jnp.minimum(metal, ELECTRONIC_CONTRAST * leakage) + (1.0 - metallic) * leakage


@jax.named_call
def solve_electronic_potential(conductivity, xi, c, phi_e, voltage, guess, grid: Grid, kinetics: Kinetics, weight,
                               shift, charge_density, tolerance, max_iterations: int,
                               slabs=None) -> ElectrolytePotential:
    """The electronic potential ``phi_s`` of metal and leaky electrolyte: ``-div(sigma_s grad phi_s) = q``,
    ``q = Q h' dxi/dt`` the electrons the reaction takes, ``dxi/dt = v0 w [c e^{-a A} - e^{(1-a) A}]`` at the
    overpotential ``A = f (phi_s - phi_e) + s`` (:func:`solve_electrolyte_potential` with the roles swapped);
    ``phi_s = V`` on the electrode wall (x = 0, the current collector) and 0 V on the far wall (the counter
    electrode takes the electrons that leak through the electrolyte), no flux across.

    Metal connected to the electrode sits at ``V`` (to :func:`electronic_conductivity`'s cap); an isolated
    island floats at the potential where the leakage current into it equals its net reaction current
    (a bipolar electrode: it plates on the side toward the counter electrode and strips on the other).
    ``conductivity`` ``sigma_s`` (S/m, :func:`electronic_conductivity`); ``phi_e`` the electrolyte's
    potential (held over this solve); the rest as :func:`solve_electrolyte_potential`. Newton on the
    Butler-Volmer source (``dq/dphi_s <= 0``: a diagonal shift of the same multigrid CG), at most
    :data:`NEWTON_ITERATIONS` steps of at most :data:`NEWTON_STEP` ``/ f``; tangents by
    :func:`~phasefield.recompute.implicit_root`.
    """
    tolerance = jnp.maximum(tolerance, working_tolerance(0.0, guess.dtype, 100.0))
    wall = voltage * jnp.zeros_like(conductivity).at[0].set(-2.0 * conductivity[0] / grid.spacing[0] ** 2)
    slope = interpolation_slope(xi)

    def linearised_source(phi):
        """``(g, dg/dphi_s)``, ``g = wall - q(phi_s)``: the wall's Dirichlet term less the electrons the
        reaction takes at the metal's potential ``phi``."""
        argument = jnp.clip(kinetics.f * (phi - phi_e) + shift, -F_PHI_LIMIT, F_PHI_LIMIT)
        rate, c_eq, _ = butler_volmer_linear(xi, argument, kinetics.reaction_rate, 0.0, kinetics.alpha, weight)
        return (wall - charge_density * slope * rate * (c - c_eq),
                charge_density * slope * kinetics.f * rate * (kinetics.alpha * jnp.maximum(c, 0.0)
                                                              + (1.0 - kinetics.alpha) * c_eq))

    return newton_potential(conductivity, cell_boundary(grid.ndim), linearised_source, guess, grid,
                            NEWTON_STEP / kinetics.f, tolerance, max_iterations, slabs)


def electronic_wall_currents(conductivity, phi_s, voltage, grid: Grid):
    """``(electrode, counter)``: the electronic current density (A/m^2 of electrode, positive for deposition)
    through the electrode wall (at ``V``: all the current the external circuit passes) and through the
    counter-electrode wall (0 V: the leakage), from the Dirichlet ghosts."""
    transverse_area = grid.cell_volume / grid.spacing[0]
    electrode_area = float(np.prod(grid.lengths[1:]))
    scale = transverse_area / electrode_area / MICRON / grid.spacing[0]
    electrode = jnp.sum(2.0 * conductivity[0] * (phi_s[0] - voltage)) * scale
    return electrode, electrolyte_current(conductivity, phi_s, grid)


class BalancedStep(NamedTuple):
    """A held-voltage step of the reaction formulation: the electrolyte ``potential`` and the
    transport-and-exchange step (``exchange``) at it, which deposits the charge the potential passes."""

    potential: ElectrolytePotential
    exchange: Exchange
    conductivity: jnp.ndarray
    junction_wall: jnp.ndarray
    newton_iterations: jnp.ndarray
    electrode: jnp.ndarray  # the metal's potential: V, or phi_s where the electrolyte leaks


class BalancedTrial(NamedTuple):
    """A balanced step as a trial of :func:`hold_current` (galvanostatic control where isolated metal floats):
    ``iterations``, its transport and potential (CG) iterations, ``(2,)``; ``solved``, the next trial's warm
    start ``(phi_e, c', phi_s)``."""

    balanced: BalancedStep
    iterations: jnp.ndarray

    @property
    def solved(self):
        return self.balanced.potential.phi, self.balanced.exchange.solved, self.balanced.electrode


@jax.named_call
def solve_balanced_step(xi, dt, voltage, guess, c_guess, grid: Grid, kinetics: Kinetics, weight, shift, diffusivity,
                        charge_density, tolerance, max_iterations: int, exchange_at: Callable,
                        electrolyte: Callable, electronic: Callable | None = None, slabs=None) -> BalancedStep:
    """Held voltage: ``phi_e`` and the step's implicit Li+ ``c'`` solved together, so that the current
    through the counter electrode equals the metal the step deposits (``Q dh/dt``, exactly).

    The unknown is ``phi_e``; the residual is the charge balance with the step's own deposit as source,

        ``F(phi) = -div(kappa(c') grad phi) + Q [h(xi'(phi)) - h(xi)] / dt - junction(c')``,

    ``xi'(phi)`` and ``c'(phi)`` the metal and the implicit Li+ of ``exchange_at(phi, c_guess)``
    (:func:`transport_exchange` at the overpotential ``V - phi``): the reaction draws on the Li+ that
    diffuses in during the step (backward Euler), not on the step's starting ``c``; and the salt's
    conductivity and diffusion current are those of ``c'`` (``electrolyte(c') -> (kappa, junction,
    junction_wall)``, :func:`junction_current`): at the starting ``c`` a depleted interface conducts
    too little in one step and too much in the next (a current that alternates by 2x from step to step
    at dt = 1 s). Newton iterations, each one multigrid CG solve of the symmetric problem
    ``-div(kappa grad) + D``: ``D`` is the reaction's ``dq/dphi`` at fixed ``c'`` times the local supply
    ``m / (m + k)`` (``m = 1/dt + sum 2 D_c / h^2``, the diagonal of the implicit transport; ``k`` its
    reaction sink, 1/s): the Schur complement of the (phi, c') block system with its transport block
    lumped to the diagonal (``kappa`` and ``junction`` at the iteration's ``c'``, a Picard part). Where the salt at the deposit is supply-limited (``k >> m``) the current
    then saturates instead of rising exponentially with the drive, which is what a Newton step on the
    starting ``c`` (or a Picard iteration on ``c'``) gets wrong. At most :data:`NEWTON_ITERATIONS`
    (times two), each moving ``phi_e`` by at most :data:`NEWTON_STEP` ``/ f``, until it moves less than
    :data:`NEWTON_TOLERANCE`. Tangents (forward and reverse mode) go through
    :func:`~phasefield.recompute.implicit_root`: GMRES on the exact linearised balance, preconditioned by the
    same shifted multigrid CG.

    ``weight``, ``shift``, ``charge_density``: as :func:`solve_electrolyte_potential`; ``diffusivity``
    (um^2/s per cell): the salt's, for ``m``; ``guess``, ``c_guess``: warm starts. ``voltage``: the metal's
    potential ``V``, or (a leaky electrolyte) the starting ``phi_s`` field, with ``electronic(phi_e, phi_s)
    -> phi_s`` (:func:`solve_electronic_potential` at ``phi_e``, warm-started) solved again in every Newton
    iteration, so that isolated metal floats at the step's own ``phi_e`` (solved one after the other, once
    per step, an island's bipolar current lagged over several 0.5 s steps); ``exchange_at(phi_e, c_guess,
    phi_s)`` then. Returns the potential, the exchange at it, the ``conductivity`` and ``junction_wall``
    current (A/m^2) of its ``c'``, the number of Newton iterations and the metal's potential. ``slabs``: the
    fields' split over the devices (its own solves'; ``exchange_at`` and ``electronic`` take theirs themselves).
    """
    tolerance = jnp.maximum(tolerance, working_tolerance(0.0, guess.dtype, 100.0))
    boundary = electrolyte_boundary_conditions(grid.ndim)
    supply = 1.0 / dt + 2.0 * diffusivity * sum(1.0 / h ** 2 for h in grid.spacing)
    slope = interpolation_slope(xi)

    def deposit(phi, c_start, electrode):
        """The exchange at ``phi`` and its charge per volume and time, ``Q [h(xi') - h(xi)] / dt``."""
        exchange = exchange_at(phi, c_start) if electronic is None else exchange_at(phi, c_start, electrode)
        return exchange, charge_density * interpolation_change(xi, exchange.xi) / dt

    def metal_potential(phi, electrode):
        return electrode if electronic is None else electronic(phi, electrode)

    def balance(phi):
        """``A phi + V [q(phi) - junction]`` (``A = -V div(kappa grad)``, ``V`` the cell volume)."""
        exchange, source = deposit(phi, c_guess, metal_potential(phi, voltage))
        conductivity, junction, _ = electrolyte(exchange.solved)
        return apply_operator(conductivity, phi, grid, boundary) + grid.cell_volume * (source - junction)

    def lumped_shift(phi, c_solved, electrode):
        argument = jnp.clip(kinetics.f * (electrode - phi) + shift, -F_PHI_LIMIT, F_PHI_LIMIT)
        rate, c_eq, sink = butler_volmer_linear(xi, argument, kinetics.reaction_rate, kinetics.site_ratio,
                                                kinetics.alpha, weight)
        derivative = (charge_density * slope * kinetics.f * rate
                      * (kinetics.alpha * jnp.maximum(c_solved, 0.0) + (1.0 - kinetics.alpha) * c_eq))
        return derivative * supply / (supply + sink)

    def newton_iterations(_, start_guess):
        def newton(state):
            phi, c_solved, _, phi_last, correction_last, iterations, transport_iterations, _, count, electrode = state
            electrode = metal_potential(phi, electrode)
            exchange, source = deposit(phi, c_solved, electrode)
            derivative = lumped_shift(phi, exchange.solved, electrode)
            conductivity, junction, _ = electrolyte(exchange.solved)
            solved, solve_iterations, residual = solve_potential(conductivity, source - derivative * phi - junction,
                                                                 grid, boundary, phi, tolerance, max_iterations,
                                                                 shift=derivative, slabs=slabs)
            # Anderson mixing of depth one on the corrections: the lumped Jacobian leaves a steady linear rate
            # (about 0.35 per iteration on the default job), which the mixing turns superlinear
            correction = solved - phi
            change = correction - correction_last
            mixing = jnp.where(count > 0, jnp.sum(correction * change)
                               / jnp.maximum(jnp.sum(change * change), jnp.finfo(phi.dtype).tiny), 0.0)
            mixing = jnp.clip(mixing, -1.0, 1.0)  # corrections at round-off (float32) would make it anything
            update = correction - mixing * (phi - phi_last + change)
            update = jnp.clip(update, -NEWTON_STEP / kinetics.f, NEWTON_STEP / kinetics.f)
            return (phi + update, exchange.solved, jnp.max(jnp.abs(correction)), phi, correction,
                    iterations + solve_iterations, transport_iterations + exchange.iterations, residual, count + 1,
                    electrode)

        def going(state):
            change, count = state[2], state[-2]
            return ((count < 2 * NEWTON_ITERATIONS)
                    & (change > working_tolerance(NEWTON_TOLERANCE, guess.dtype, 100.0)))

        zero = jnp.asarray(0, jnp.int32)
        start = (start_guess, c_guess, jnp.asarray(jnp.inf, guess.dtype), start_guess, jnp.zeros_like(start_guess),
                 zero, zero, jnp.asarray(0.0, guess.dtype), 0, jnp.broadcast_to(voltage, guess.shape).astype(guess.dtype))
        phi, c_solved, _, _, _, iterations, transport_iterations, residual, count, electrode = jax.lax.while_loop(
            going, newton, start)
        aux = (c_solved, iterations.astype(guess.dtype), transport_iterations.astype(guess.dtype), residual,
               jnp.asarray(count, guess.dtype), electrode)
        return phi, aux  # implicit_root's aux: floating point only

    def adjoint_gmres(matvec, row_sums, rhs, extra):
        """``x`` with ``M x = rhs``, ``M`` the linearised balance ``J`` or its transpose (``row_sums`` = ``J 1``):
        GMRES, preconditioned by the shifted multigrid CG with ``J``'s reaction part lumped (its row sums);
        ``extra``: the starting c's conductivity (a preconditioner only) and the tolerance."""
        conductivity, tolerance = extra
        ones = jnp.ones_like(rhs)
        lumped = jnp.maximum((row_sums - apply_operator(conductivity, ones, grid, boundary)) / grid.cell_volume, 0.0)

        def preconditioner(r):
            return solve_potential(conductivity, -r / grid.cell_volume, grid, boundary, jnp.zeros_like(r),
                                   tolerance, max_iterations, shift=lumped, slabs=slabs)[0]

        return jax.scipy.sparse.linalg.gmres(matvec, rhs, M=preconditioner, tol=1e-10, restart=GMRES_RESTART,
                                             maxiter=GMRES_RESTARTS)[0]

    extra = (electrolyte(c_guess)[0], tolerance)

    def linear_solve(linearised, rhs, extra):
        """``x`` with ``J x = rhs`` (``J`` the exact linearised balance, through the transport solve)."""
        row_sums = linearised(jnp.ones_like(rhs))

        def gmres(matvec, b):
            return adjoint_gmres(matvec, row_sums, b, extra)

        # a custom_linear_solve of its own: gmres's tolerance is set from its right-hand side outside its own
        # linear solve, which reverse mode then cannot transpose; here the whole GMRES is the solve, and
        # the transposed system (reverse mode) is solved by GMRES too, with the same (symmetric) preconditioner
        return jax.lax.custom_linear_solve(linearised, rhs, solve=gmres, transpose_solve=gmres)

    # reverse mode (phasefield.recompute.root): the balance's derivative in its inputs is taken after the adjoint
    # GMRES instead of being held through it
    phi, (c_solved, iterations, transport_iterations, residual, count, electrode) = root(
        balance, newton_iterations, guess, linear_solve, adjoint_gmres, extra)
    electrode = metal_potential(phi, electrode)  # from its converged start: no iterations, and differentiable
    exchange = recomputed(exchange_at, phi, c_solved) if electronic is None else exchange_at(phi, c_solved, electrode)
    exchange = exchange._replace(iterations=exchange.iterations + transport_iterations.astype(exchange.iterations.dtype))
    conductivity, _, junction_wall = electrolyte(exchange.solved)
    return BalancedStep(ElectrolytePotential(phi, iterations.astype(jnp.int32), residual), exchange, conductivity,
                        junction_wall, count.astype(jnp.int32), electrode)


def electrolyte_current(conductivity, phi, grid: Grid):
    """Ionic current density (A/m^2 of electrode, positive for deposition) through the counter-electrode
    wall (far x wall, 0 V, Dirichlet ghost): ``-2 kappa phi / h`` summed over the wall cells."""
    transverse_area = grid.cell_volume / grid.spacing[0]
    electrode_area = float(np.prod(grid.lengths[1:]))
    return jnp.sum(-2.0 * conductivity[-1] * phi[-1] / grid.spacing[0]) * transverse_area / electrode_area / MICRON


def junction_current(conductivity, c, grid: Grid, reservoir: bool, bulk, coefficient):
    """The diffusion (liquid-junction) current of a binary salt, ``i_D = -beta kappa grad ln c``.

    Dilute 1:1 salt: ``i = F (N+ - N-) = -kappa grad phi_e - F (D+ - D-) grad c`` with
    ``kappa = F^2 c (D+ + D-) / RT`` and ``t+ = D+ / (D+ + D-)``: ``F (D+ - D-) grad c = beta kappa grad ln c``,
    ``beta = coefficient = (2 t+ - 1) / f`` (V). ``conductivity`` ``kappa`` (S/m) is the potential's own
    (:func:`phasefield.models.dendrite.ionic_conductivity`, ``c / c_b`` floored at 1e-3), and ``ln c`` is
    floored at the same ``1e-3 bulk``: where the salt is gone, so is its diffusion current, as its ohmic
    current. Walls as the salt's (``bulk`` held at the far wall when ``reservoir``, else no flux).
    Returns ``(div(beta kappa grad ln c), wall)``: the field that charge conservation
    ``div(kappa grad phi_e + beta kappa grad ln c) = Q dh/dt`` moves to the potential's right-hand side,
    and its current density through the counter electrode (A/m^2, positive for deposition).
    """
    boundary = electrolyte_boundary(grid.ndim, reservoir, jnp.log(bulk))
    log_c = jnp.log(jnp.maximum(c, 1e-3 * bulk))
    transverse_area = grid.cell_volume / grid.spacing[0]
    electrode_area = float(np.prod(grid.lengths[1:]))
    # in the cells' shape (one-row halos on slabs); the counter electrode's current from its wall cells alone
    wall = jnp.sum(coefficient * wall_flux(conductivity, log_c, grid, boundary, 0)) * transverse_area / electrode_area
    return coefficient * flux_divergence(conductivity, log_c, grid, boundary), wall / MICRON
