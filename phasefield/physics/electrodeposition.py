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
  term, stabilised explicit barrier, explicit Kobayashi anisotropy, Langevin noise);
* :func:`transport_exchange`: Li+ drift-diffusion and the Butler-Volmer exchange in one implicit
  solve, then the metal grows and pays its exact Li cost;
* :func:`hold_current`: the electrode potential at which a step deposits an applied current (secant).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import SpectralBasis, divergence, face_average, gradient
from phasefield.operators.elliptic import solve_potential
from phasefield.physics.electrochemistry import barrier_slope, butler_volmer_linear, interpolation, metal_growth
from phasefield.physics.transport import drift_diffusion_step
from phasefield.units import MICRON

SLOTBOOM_LIMIT = 30.0  # w = e^{-f (phi - phi_max)} capped at e^30: beyond 0.77 V (the metal) grad phi ~ 0
TRANSPORT_TOLERANCE = 1e-10  # Slotboom solve; Li conservation does not depend on it (flux-form update)
F_PHI_LIMIT = 80.0  # |f phi| kept below this in the exponentials (|phi| < 2 V at 298 K)
VOLTAGE_RANGE = (-2.0, 0.5)  # galvanostatic control keeps the electrode potential in this range, V
CURRENT_TOLERANCE = 1e-6  # galvanostatic control: relative deviation from the applied current per step
SECANT_ITERATIONS = 12  # galvanostatic control: most secant updates per step


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
                         response_guess=None) -> CellPotential:
    """``div(sigma grad phi) = q`` with ``phi = V`` on the electrode wall (x = 0) and 0 on the far wall.

    conductivity ``sigma`` (S/m) and source ``q`` (A/m^3 times um^2: the charge density ``n F c_s``
    in um^2 times a rate per s) per cell; ``voltage`` ``V`` (V); ``initial_guess``: the last
    ``phi``. ``V`` enters as the wall-cell source ``-2 sigma_0 V / h^2`` of the Dirichlet ghost,
    so the solver sees homogeneous walls. With ``response_guess`` (the last ``psi``) the
    potential is solved as ``phi_0 + V psi`` (two solves: ``phi`` is linear in ``V``, so a
    galvanostatic control can move ``V`` within the step at no further cost).
    Tolerance and iteration limit: :func:`phasefield.operators.elliptic.solve_potential`.
    """
    boundary = cell_boundary(grid.ndim)
    wall_source = jnp.zeros_like(conductivity).at[0].set(-2.0 * conductivity[0] / grid.spacing[0] ** 2)
    if response_guess is None:
        phi, iterations, residual = solve_potential(conductivity, source + voltage * wall_source, grid, boundary,
                                                    initial_guess, tolerance, max_iterations)
        return CellPotential(phi, phi, None, iterations, residual)
    psi, psi_iterations, _ = solve_potential(conductivity, wall_source, grid, boundary, response_guess,
                                             tolerance, max_iterations)
    base, iterations, residual = solve_potential(conductivity, source, grid, boundary,
                                                 initial_guess - voltage * response_guess, tolerance, max_iterations)
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


def anisotropy_divergence(xi, grid: Grid, kappa, strength, mode: int, angle):
    """``div J - kappa lap xi`` of the Kobayashi flux ``J`` (2D): the anisotropic excess of the gradient term.

    ``eps(theta) = eps0 (1 + delta cos(m (theta - theta0)))``, ``theta`` the angle of ``grad xi``
    from x; ``J = kappa [(eps/eps0)^2 grad xi + (eps/eps0)(eps'/eps0) grad xi^perp]``. No flux
    through the walls. ``angle`` ``theta0`` in radians.
    """
    neumann = Boundary.uniform(2, "neumann")
    gx, gy = gradient(xi, grid, neumann)
    norm2 = gx**2 + gy**2
    theta = jnp.arctan2(gy, gx)
    eps_ratio = 1.0 + strength * jnp.cos(mode * (theta - angle))
    deps_ratio = -strength * mode * jnp.sin(mode * (theta - angle))
    present = norm2 > 1e-12
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
def allen_cahn_update(xi, dt, basis: SpectralBasis, mobility, barrier, kappa, anisotropy=None, noise=None):
    """One step of ``dxi/dt = -L [W g'(xi) - div(kappa(theta) grad xi)] + noise`` (no-flux walls).

    The isotropic gradient term is implicit in the cosine ``basis``, the barrier explicit with the
    stabilisation ``S (xi' - xi)``, ``S = 2 W`` (the largest ``W g''``: unconditionally stable).
    ``mobility`` ``L`` (1/s per unit energy density), ``barrier`` ``W`` and ``kappa`` (energy
    density, times um^2), ``dt`` in s.

    anisotropy: ``None`` or ``(delta, m, theta0)`` (2D; theta0 in radians): the explicit excess
        :func:`anisotropy_divergence`, skipped (``lax.cond``) where ``delta = 0``;
    noise: ``None`` or ``(A, key)``: ``xi += A sqrt(dt) N(0,1) 16 xi^2 (1 - xi)^2`` (1/sqrt(s)),
        skipped where ``A = 0``.
    Returns ``xi'`` (the Li it costs is paid by :func:`metal_growth`).
    """
    grid = basis.grid
    stabilization = 2.0 * barrier
    explicit = -mobility * (barrier * barrier_slope(xi) - stabilization * xi)
    if anisotropy is not None:
        strength, mode, angle = anisotropy
        explicit = jax.lax.cond(
            strength > 0,
            lambda: explicit + mobility * anisotropy_divergence(xi, grid, kappa, strength, mode, angle),
            lambda: explicit)
    symbol = 1.0 / dt + mobility * (stabilization - kappa * basis.laplacian_symbol)
    relaxed = basis.inverse(basis.forward(xi / dt + explicit) / symbol)
    if noise is not None:
        amplitude, key = noise

        def kick():
            normal = jax.random.normal(key, grid.shape, relaxed.dtype)
            return relaxed + amplitude * jnp.sqrt(dt) * normal * 16.0 * (xi * (1.0 - xi)) ** 2

        relaxed = jax.lax.cond(amplitude > 0, kick, lambda: relaxed)
    return relaxed


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
                       shift=None, c_guess=None) -> Exchange:
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
    """
    if migration:
        f_phi = kinetics.f * (phi - jnp.max(phi))
        weight = jnp.exp(-jnp.clip(f_phi, -SLOTBOOM_LIMIT, 0.0))
        wall_weight = jnp.exp(kinetics.f * jnp.max(phi))  # w at the reservoir wall (phi = 0)
    else:
        weight, wall_weight = jnp.ones_like(c), 1.0
    argument = kinetics.f * phi if shift is None else kinetics.f * phi + shift
    rate, c_eq, k = butler_volmer_linear(xi, jnp.clip(argument, -F_PHI_LIMIT, F_PHI_LIMIT),
                                         kinetics.reaction_rate, kinetics.site_ratio, kinetics.alpha)
    moved = drift_diffusion_step(c, dt, diffusivity, weight, grid, reservoir, kinetics.bulk, wall_weight,
                                 k, c_eq, initial_guess=c if c_guess is None else c_guess,
                                 tolerance=TRANSPORT_TOLERANCE)
    xi_new = jnp.clip(xi + dt * rate * (moved.solved - c_eq), 0.0, 1.0)
    xi_new, c_new = metal_growth(xi, xi_new, moved.transported, kinetics.site_ratio)
    return Exchange(xi_new, c_new, moved.solved, moved.wall_inflow, moved.iterations)


@jax.named_call
def hold_current(exchange_at: Callable, growth_rate: Callable, target, voltage_guess, c_guess):
    """The electrode potential ``V`` at which a step grows the applied current; secant iterations.

    exchange_at(V, c_guess) -> :class:`Exchange`: the step at electrode potential ``V``
        (e.g. :func:`transport_exchange` at ``phi_0 + V psi``); growth must fall monotonically
        with ``V`` (a more negative electrode deposits more);
    growth_rate(exchange) -> the step's growth (any unit), held at ``target`` (same unit, > 0)
        to the relative :data:`CURRENT_TOLERANCE`.
    Each trial is one warm-started call of ``exchange_at``. The first trial is at
    ``voltage_guess`` (the last step's ``V``), the second 1 mV away downhill; ``V`` stays in
    :data:`VOLTAGE_RANGE` (at its lower end past Sand's time, where no potential can deliver the
    current). Returns ``(V, exchange)`` with ``exchange.iterations`` summed over the trials.
    """
    def trial(v, guess):
        result = exchange_at(v, guess)
        return result, growth_rate(result) / target - 1.0

    first, g_first = trial(voltage_guess, c_guess)
    v_second = voltage_guess + 1e-3 * jnp.where(g_first > 0, 1.0, -1.0)
    second, g_second = trial(v_second, first.solved)
    iterations = first.iterations + second.iterations

    def keep_going(state):
        v_old, g_old, v, g, result, iterations, count = state
        return (jnp.abs(g) > CURRENT_TOLERANCE) & (count < SECANT_ITERATIONS) & (v_old != v)

    def secant(state):
        v_old, g_old, v, g, result, iterations, count = state
        denominator = jnp.where(g != g_old, g - g_old, 1.0)
        update = jnp.clip(-g * (v - v_old) / denominator, -0.1, 0.1)
        v_next = jnp.clip(v + update, VOLTAGE_RANGE[0], VOLTAGE_RANGE[1])
        result_next, g_next = trial(v_next, result.solved)
        return v, g, v_next, g_next, result_next, iterations + result_next.iterations, count + 1

    state = jax.lax.while_loop(keep_going, secant,
                               (voltage_guess, g_first, v_second, g_second, second, iterations, 0))
    _, _, v, _, result, iterations, _ = state
    return v, result._replace(iterations=iterations)


def growth_per_area(xi_start, xi_end, dt, grid: Grid):
    """Metal grown per electrode area and time, um/s: ``int [h(xi') - h(xi)] dV / (A dt)``."""
    electrode_area = float(np.prod(grid.lengths[1:]))
    return jnp.sum(interpolation(xi_end) - interpolation(xi_start)) * grid.cell_volume / electrode_area / dt
