"""Li dendrites during electrodeposition: the nonlinear phase-field model of Chen et al. (2015).

Fields (x, the first axis, points from the electrode at x = 0 into the electrolyte):

* ``xi``:  order parameter, 1 in Li metal, 0 in the electrolyte;
* ``c``:   Li+ concentration over the reference ``c_ref`` of the Butler-Volmer law;
* ``phi``: electric potential (V); the electrode wall is held at ``V``, the far electrolyte
  wall at 0 V.

Equations (physics.md 3.1), lengths in um and time in s inside the model::

    dxi/dt = -L_s [W g'(xi) - div(kappa(theta) grad xi)]
             + L_eta h'(xi) [c e^{-a f phi} - e^{(1-a) f phi}] + noise
    dc/dt  = div[D(xi) (grad c + c f grad phi)] - (c_s/c_ref) dh(xi)/dt
    div[sigma(xi) grad phi] = n F c_s dh(xi)/dt
    D = D_s h + D_l (1 - h),  sigma = sigma_s h + sigma_l (1 - h),  f = n F / (R T)

The metal fraction is ``h(xi)``, so Li+ is consumed where ``h`` grows (``dh/dt = h' dxi/dt``,
the weighting of Hong & Viswanathan's grand-potential form), and total Li is
``c + (c_s/c_ref) h(xi)``. Chen's sink ``(c_s/c_ref) dxi/dt`` differs at the leading edge of
the interface, where it takes 76 ions per unit of ``xi`` from a depleted electrolyte and drives
``c`` negative; weighted by ``h'`` it stays positive.

One step of size ``dt`` (first order, operator split, every part conservative):

1. potential: a multigrid-preconditioned CG solve, warm-started from the last step, with the
   last step's ``dxi/dt`` as source (the potential is quasi-static);
2. Allen-Cahn: the isotropic gradient term implicit in the cosine basis, barrier and
   anisotropy explicit, Langevin noise ``A sqrt(dt) N(0,1) 16 xi^2 (1-xi)^2``; ``c`` gives or
   takes the Li that ``h(xi)`` changes by, so total Li is exact;
3. transport and reaction: diffusion, migration and the Butler-Volmer exchange (linear in
   ``c`` for frozen ``phi`` and ``h'``) together, backward Euler in Slotboom variables
   ``c = exp(-f phi) u`` (a symmetric problem for the same multigrid CG): stable at any dt,
   no Courant limit from the strong field near tips, c stays positive, and the reaction can
   use the Li+ that diffuses in during the step; the metal then pays its exact Li cost.

Galvanostatic control (``control=current``) solves for the electrode potential each step:
``phi`` is linear in it (``phi_0 + V psi``), and a secant iteration on V over step 3 makes the
step's metal growth equal the applied current.

A :class:`Coupling` adds physics that acts on the deposition through the Butler-Volmer argument
(``f phi -> f phi + s``): ``dendrite_solid`` passes its mechanics (the stress of the solid
electrolyte and the metal) this way; without one the model is exactly the liquid one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, option
from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import SpectralBasis, divergence, face_average, face_gradient, gradient
from phasefield.operators.elliptic import solve_potential
from phasefield.physics.electrochemistry import (
    FARADAY,
    GAS_CONSTANT,
    barrier_slope,
    butler_volmer_linear,
    interface_parameters,
    interpolation,
    metal_growth,
    thermal_factor,
)
from phasefield.physics.transport import drift_diffusion_step
from phasefield.schemes import Stepper
from phasefield.simulation import Quantity, Simulation

MICRON = 1e-6
SLOTBOOM_LIMIT = 30.0  # w = e^{-f (phi - phi_max)} capped at e^30: beyond 0.77 V (the metal) grad phi ~ 0
TRANSPORT_TOLERANCE = 1e-10  # Slotboom solve; Li conservation does not depend on it (flux-form update)
F_PHI_LIMIT = 80.0  # |f phi| kept below this in the exponentials (|phi| < 2 V at 298 K)
VOLTAGE_RANGE = (-2.0, 0.5)  # galvanostatic control keeps the electrode potential in this range, V
CURRENT_TOLERANCE = 1e-6  # galvanostatic control: relative deviation from the applied current per step


@dataclass
class Config:
    """``scenario=dendrite``: Li electrodeposition (physical units: um, s, V, mol/m^3, S/m, m^2/s)."""

    name: str = option("dendrite", help="scenario name")
    size: list[float] = option(lambda: [100.0, 100.0], min=0.0, exclusive=True,
                               help="domain size per axis in um (x first: electrode to electrolyte)")
    shape: list[int] = option(lambda: [200, 200], min=1, help="cells per axis (2 or 3 entries)")
    t_end: float = option(100.0, min=0.0, exclusive=True, help="simulated time, s")
    control: str = option("voltage", choices=("voltage", "current"),
                          help="potentiostatic (hold voltage) or galvanostatic (hold current_density)")
    voltage: float = option(-0.45, min=-2.0, help="electrode potential against the far electrolyte, V (< 0 deposits); "
                                                  "with control=current, the starting value")
    current_density: float = option(1.0, min=0.0, exclusive=True, max=1000.0,
                                     help="applied deposition current density, mA/cm^2 (control=current)")
    temperature: float = option(298.15, min=200.0, max=600.0, help="temperature, K")
    electrons: int = option(1, min=1, max=4, help="electrons transferred, n")
    transfer_coefficient: float = option(0.5, min=0.0, max=1.0, exclusive=True, help="Butler-Volmer alpha")
    exchange_current_density: float = option(3.0, min=0.0, exclusive=True, help="i0 of Li/Li+, mA/cm^2")
    interface_energy: float = option(0.5, min=0.0, exclusive=True, help="Li/electrolyte interface energy, J/m^2")
    interface_thickness: float = option(1.0, min=0.0, exclusive=True, help="phase-field thickness 2/k, um")
    interface_mobility: float = option(2.5e-6, min=0.0, exclusive=True, help="Allen-Cahn mobility L_sigma, m^3/(J s)")
    site_density: float = option(7.64e4, min=0.0, exclusive=True, help="Li site density of the metal c_s, mol/m^3")
    bulk_concentration: float = option(1000.0, min=0.0, help="Li+ concentration of the electrolyte, mol/m^3")
    reference_concentration: float = option(1000.0, min=0.0, exclusive=True,
                                            help="standard concentration of the Butler-Volmer law, mol/m^3")
    diffusivity_electrolyte: float = option(3.197e-10, min=0.0, exclusive=True, help="Li+ diffusivity, m^2/s")
    diffusivity_metal: float = option(7.5e-13, min=0.0, help="Li+ diffusivity inside the metal, m^2/s")
    conductivity_electrolyte: float = option(1.19, min=0.0, exclusive=True, help="ionic conductivity, S/m")
    conductivity_metal: float = option(1.0e7, min=0.0, exclusive=True, help="electronic conductivity of Li, S/m")
    migration: bool = option(True, help="Li+ drift in the electric field (off: diffusion only)")
    electrolyte_boundary: str = option("reservoir", choices=("reservoir", "closed"),
                                       help="far wall: bulk concentration held (reservoir) or no flux (closed)")
    anisotropy_strength: float = option(0.0, min=0.0, help="delta of eps(theta) = eps0 (1 + delta cos(m (theta - theta0)))")
    anisotropy_mode: int = option(4, min=1, help="fold m of the anisotropy")
    anisotropy_angle: float = option(0.0, help="theta0: a preferred growth direction, degrees from x")
    noise_amplitude: float = option(0.0, min=0.0, help="Langevin amplitude A, 1/sqrt(s): xi += A sqrt(dt) N(0,1) at the interface")
    seed: int = option(0, min=0, help="seed of the noise, the random nuclei and the rough surface")
    electrode_position: float = option(10.0, min=0.0, help="initial flat metal surface, um from the x = 0 wall")
    nuclei: list[list[float]] = option(list, help="nuclei on the surface: [y, radius] (2D) or [y, z, radius] (3D), um")
    random_nuclei: int = option(0, min=0, help="number of nuclei at random positions on the surface")
    nucleus_radius: float = option(2.0, min=0.0, exclusive=True, help="radius of the random nuclei, um")
    roughness: float = option(0.0, min=0.0, help="amplitude of a random surface roughness, um")
    short_circuit_gap: float = option(10.0, min=0.0, help="the run stops when the metal (xi > 1/2) comes this close "
                                                            "to the far wall (counter electrode), um")
    potential_tolerance: float = option(1e-9, min=0.0, exclusive=True,
                                        help="potential solve: Jacobi-scaled residual relative to the largest potential "
                                             "(1e-9 keeps the charge balance within 0.1 % at contrast 1e6)")
    potential_max_iterations: int = option(200, min=1, help="potential solve: most CG iterations per step")

    def check(self, prefix: str):
        if len(self.shape) not in (2, 3) or len(self.size) != len(self.shape):
            raise ConfigError(f"{prefix}.shape", self.shape, f"2 or 3 cell counts, one per entry of size = {self.size}")
        if self.voltage >= 0.0:
            raise ConfigError(f"{prefix}.voltage", self.voltage, "a negative electrode potential (-2 <= V < 0): "
                                                                 "this scenario deposits Li")
        if self.bulk_concentration <= 0.0 or self.bulk_concentration >= self.site_density:
            raise ConfigError(f"{prefix}.bulk_concentration", self.bulk_concentration,
                              f"0 < c < site_density = {self.site_density:g} mol/m^3")
        if self.reference_concentration > self.site_density:
            raise ConfigError(f"{prefix}.reference_concentration", self.reference_concentration,
                              f"<= site_density = {self.site_density:g} mol/m^3")
        limit = 1.0 / (self.anisotropy_mode**2 - 1) if self.anisotropy_mode > 1 else float("inf")
        if self.anisotropy_strength >= limit:
            raise ConfigError(f"{prefix}.anisotropy_strength", self.anisotropy_strength,
                              f"< 1/(m^2 - 1) = {limit:.4g} for m = {self.anisotropy_mode} "
                              "(beyond it the interface stiffness is negative: missing orientations)")
        if self.anisotropy_strength > 0 and len(self.shape) == 3:
            raise ConfigError(f"{prefix}.anisotropy_strength", self.anisotropy_strength, "0 in 3D (anisotropy is 2D only)")
        if self.electrode_position >= self.size[0]:
            raise ConfigError(f"{prefix}.electrode_position", self.electrode_position, f"< size[0] = {self.size[0]} um")
        if self.electrode_position + self.short_circuit_gap >= self.size[0]:
            raise ConfigError(f"{prefix}.short_circuit_gap", self.short_circuit_gap,
                              f"< size[0] - electrode_position = {self.size[0] - self.electrode_position:g} um")
        for i, nucleus in enumerate(self.nuclei):
            if len(nucleus) != len(self.shape) or nucleus[-1] <= 0:
                raise ConfigError(f"{prefix}.nuclei[{i}]", nucleus,
                                  f"[{'y, ' if len(self.shape) == 2 else 'y, z, '}radius > 0] in um")


@dataclass(frozen=True)
class Parameters:
    """Nondimensional parameters (um, s, V; energy density over R T c_ref; c over c_ref)."""

    allen_cahn_mobility: float  # L_sigma R T c_ref, 1/s
    barrier: float  # W / (R T c_ref)
    kappa: float  # kappa / (R T c_ref um^2)
    reaction_rate: float  # L_eta, 1/s
    site_ratio: float  # c_s / c_ref
    f: float  # n F / (R T), 1/V
    alpha: float
    diffusivity_electrolyte: float  # um^2/s
    diffusivity_metal: float
    conductivity_electrolyte: float  # S/m
    conductivity_metal: float
    charge_density: float  # n F c_s um^2: div(sigma grad phi) = charge_density dxi/dt with grad in 1/um
    bulk: float  # c_bulk / c_ref
    slope: float  # k = 2 / delta, 1/um
    energy_scale: float  # R T c_ref, J/m^3

    @classmethod
    def from_config(cls, config: Config) -> "Parameters":
        energy = GAS_CONSTANT * config.temperature * config.reference_concentration
        interface = interface_parameters(config.interface_energy, config.interface_thickness * MICRON,
                                         config.exchange_current_density * 10.0, config.site_density, config.electrons)
        return cls(
            allen_cahn_mobility=config.interface_mobility * energy,
            barrier=interface["barrier"] / energy,
            kappa=interface["kappa"] / (energy * MICRON**2),
            reaction_rate=interface["reaction_rate"],
            site_ratio=config.site_density / config.reference_concentration,
            f=thermal_factor(config.temperature, config.electrons),
            alpha=config.transfer_coefficient,
            diffusivity_electrolyte=config.diffusivity_electrolyte / MICRON**2,
            diffusivity_metal=config.diffusivity_metal / MICRON**2,
            conductivity_electrolyte=config.conductivity_electrolyte,
            conductivity_metal=config.conductivity_metal,
            charge_density=config.electrons * FARADAY * config.site_density * MICRON**2,
            bulk=config.bulk_concentration / config.reference_concentration,
            slope=interface["slope"] * MICRON,
            energy_scale=energy,
        )


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), tuple(s / n for s, n in zip(config.size, config.shape)))


def _surface_height(grid: Grid, config: Config, rng) -> np.ndarray:
    """Electrode surface position over the transverse axes: flat plus a smooth random roughness."""
    transverse = grid.coordinates()[1:]
    height = np.full(np.broadcast_shapes(*[t.shape for t in transverse]), config.electrode_position)
    if config.roughness > 0:
        bumps = np.zeros_like(height)
        for _ in range(12):
            phase = rng.uniform(0, 2 * np.pi)
            term = np.ones_like(height)
            for axis, t in enumerate(transverse):
                wavelength = rng.uniform(4 * config.interface_thickness, grid.lengths[axis + 1])
                term = term * np.cos(2 * np.pi * t / wavelength + phase * (axis + 1))
            bumps = bumps + term
        height = height + config.roughness * bumps / np.max(np.abs(bumps))
    return height


def nucleus_list(grid: Grid, config: Config) -> list[list[float]]:
    """Given nuclei plus ``random_nuclei`` placed uniformly on the surface by ``seed``."""
    rng = np.random.default_rng(config.seed)
    nuclei = [list(n) for n in config.nuclei]
    for _ in range(config.random_nuclei):
        nuclei.append([rng.uniform(0, grid.lengths[a]) for a in range(1, grid.ndim)] + [config.nucleus_radius])
    return nuclei


def initial_condition(grid: Grid, config: Config, params: Parameters) -> dict:
    """Equilibrium tanh profile ``xi = (1 - tanh(k d))/2`` of the signed distance ``d`` to the metal."""
    rng = np.random.default_rng(config.seed + 1)
    coords = grid.coordinates()
    x = coords[0]
    distance = x - _surface_height(grid, config, rng)
    for nucleus in nucleus_list(grid, config):
        *centre, radius = nucleus
        r2 = (x - config.electrode_position) ** 2
        for axis, value in enumerate(centre):
            r2 = r2 + (coords[axis + 1] - value) ** 2
        distance = np.minimum(distance, np.sqrt(r2) - radius)
    xi = 0.5 * (1.0 - np.tanh(params.slope * distance))
    xi = np.broadcast_to(xi, grid.shape)
    h = np.asarray(interpolation(xi))
    voltage = config.voltage
    return {"xi": xi.copy(), "c": params.bulk * (1.0 - h), "phi": voltage * h}


def arrays_per_cell(scheme: str) -> int:
    """Field-sized arrays alive during a step (fields, potential solver work, multigrid levels)."""
    return 40


class Coupling(NamedTuple):
    """Extra physics riding on the dendrite step, as pure functions over the shared carry.

    init(xi) -> carry entries of its own;
    update(carry, xi) -> (its new carry entries, ``s``): called once per step with the step's
                         starting ``xi`` (quasi-static, like the potential); ``s`` (a field or
                         scalar) shifts the Butler-Volmer argument ``f phi`` to ``f phi + s``, i.e.
                         multiplies the cathodic term by ``e^{-a s}`` and the anodic by ``e^{(1-a) s}``;
    fields(carry) -> extra stored fields;  field_info: their units;
    diagnostics(carry) -> extra scalars;  scalar_info: their units.
    """

    init: Callable
    update: Callable
    fields: Callable
    field_info: dict
    diagnostics: Callable
    scalar_info: dict


def build(config: Config, solver, coupling: Coupling | None = None) -> Simulation:
    if solver.scheme != "imex1":
        raise ConfigError("solver.scheme", solver.scheme, f"'imex1' for scenario {config.name} (solver=dendrite)")
    if solver.precision != "float64":
        raise ConfigError("solver.precision", solver.precision, f"'float64' for scenario {config.name} "
                                                                "(Butler-Volmer exponentials, contrast 1e7)")
    grid = make_grid(config)
    params = Parameters.from_config(config)
    p = params
    ndim = grid.ndim
    neumann = Boundary.uniform(ndim, "neumann")
    phase_basis = SpectralBasis(grid, neumann)
    electrode_area = float(np.prod(grid.lengths[1:]))  # um^(d-1)
    volume = grid.cell_volume
    transverse_area = volume / grid.spacing[0]
    theta0 = np.deg2rad(config.anisotropy_angle)
    reservoir = config.electrolyte_boundary == "reservoir"
    stabilization = 2.0 * p.barrier  # largest W g''(xi) (at xi = 0 and 1): unconditionally stable barrier
    delta, m = config.anisotropy_strength, config.anisotropy_mode
    # explicit anisotropic flux: an extra diffusivity of at most L kappa delta (m^2 + 2) (1 + delta)
    anisotropy_dt = (0.5 / (p.allen_cahn_mobility * p.kappa * delta * (m * m + 2) * (1 + delta)
                            * sum(1 / h**2 for h in grid.spacing)) if delta > 0 else float("inf"))

    galvanostatic = config.control == "current"
    # applied current as metal growth, um/s per electrode area: i / (n F c_s)
    target_growth = config.current_density * 10.0 / (config.electrons * FARADAY * config.site_density) / MICRON

    def metal_growth_rate(xi_start, xi_end, dt):
        """Metal growth per electrode area, um/s."""
        return jnp.sum(interpolation(xi_end) - interpolation(xi_start)) * volume / electrode_area / dt

    def hold_current(exchange_at, xi_start, c, guess, dt):
        """The electrode potential V at which the step grows the applied current; secant iterations.

        ``exchange_at(V, c_guess)`` is the transport-and-exchange step at ``phi_0 + V psi``;
        growth falls monotonically with V. Each trial is one warm-started transport solve.
        Returns ``(V, exchange result)``; V stays in VOLTAGE_RANGE (at the lower end past Sand's
        time, where no potential can deliver the current).
        """
        def mismatch(result):
            return metal_growth_rate(xi_start, result[0], dt) / target_growth - 1.0

        def trial(v, c_guess):
            result = exchange_at(v, c_guess)
            return result, mismatch(result)

        first, g_first = trial(guess, c)
        v_second = guess + 1e-3 * jnp.where(g_first > 0, 1.0, -1.0)  # growth falls with V
        second, g_second = trial(v_second, first[2])
        iterations = first[4] + second[4]

        def keep_going(state):
            v_old, g_old, v, g, result, iterations, count = state
            return (jnp.abs(g) > CURRENT_TOLERANCE) & (count < 12) & (v_old != v)

        def secant(state):
            v_old, g_old, v, g, result, iterations, count = state
            denominator = jnp.where(g != g_old, g - g_old, 1.0)
            update = jnp.clip(-g * (v - v_old) / denominator, -0.1, 0.1)
            v_next = jnp.clip(v + update, VOLTAGE_RANGE[0], VOLTAGE_RANGE[1])
            result_next, g_next = trial(v_next, result[2])
            return v, g, v_next, g_next, result_next, iterations + result_next[4], count + 1

        state = jax.lax.while_loop(keep_going, secant, (guess, g_first, v_second, g_second, second, iterations, 0))
        _, _, v, _, result, iterations, _ = state
        return v, result[:4] + (iterations,)

    grounded = Boundary(((Side("dirichlet", 0.0), Side("dirichlet", 0.0)),)
                        + ((Side("neumann"), Side("neumann")),) * (ndim - 1))

    def conductivity(xi):
        h = interpolation(xi)
        return p.conductivity_metal * h + p.conductivity_electrolyte * (1.0 - h)

    def anisotropy_divergence(xi):
        """``div J - kappa0 lap xi`` of the Kobayashi flux J (2D), the explicit part of the gradient term."""
        gx, gy = gradient(xi, grid, neumann)
        norm2 = gx**2 + gy**2
        theta = jnp.arctan2(gy, gx)
        eps_ratio = 1.0 + delta * jnp.cos(m * (theta - theta0))
        deps_ratio = -delta * m * jnp.sin(m * (theta - theta0))
        present = norm2 > 1e-12
        excess = jnp.where(present, eps_ratio**2 - 1.0, 0.0)
        cross = jnp.where(present, eps_ratio * deps_ratio, 0.0)
        jx = p.kappa * (excess * gx - cross * gy)
        jy = p.kappa * (excess * gy + cross * gx)
        face_x = face_average(jx, neumann, 0, "arithmetic").at[jnp.array([0, -1])].set(0.0)
        face_y = face_average(jy, neumann, 1, "arithmetic").at[:, jnp.array([0, -1])].set(0.0)
        return divergence([face_x, face_y], grid)

    def step(carry, dt):
        dt = jnp.asarray(dt, jnp.float64)
        xi, c = carry["xi"], carry["c"]
        voltage = carry["voltage"]

        # 1. potential (quasi-static, source lagged by one step)
        sigma = conductivity(xi)
        # the electrode potential enters as the wall-cell source of the Dirichlet ghost,
        # -2 sigma_0 V / h^2, so the solver sees homogeneous walls
        wall_source = jnp.zeros_like(xi).at[0].set(-2.0 * sigma[0] / grid.spacing[0] ** 2)
        source = p.charge_density * carry["metal_rate"]
        if galvanostatic:
            # phi is linear in V: phi = phi_0 + V psi, with psi the response to a unit electrode potential
            psi, psi_iterations, _ = solve_potential(
                sigma, wall_source, grid, grounded, carry["psi"],
                config.potential_tolerance, config.potential_max_iterations)
            phi_0, iterations, residual = solve_potential(
                sigma, source, grid, grounded, carry["phi"] - voltage * carry["psi"],
                config.potential_tolerance, config.potential_max_iterations)
            iterations = iterations + psi_iterations
            phi = phi_0 + voltage * psi
        else:
            phi, iterations, residual = solve_potential(
                sigma, source + voltage * wall_source, grid, grounded, carry["phi"],
                config.potential_tolerance, config.potential_max_iterations)
        # A/m^2: the net flux sigma dphi/dn through the walls (Dirichlet ghosts: 2 sigma (g - phi) / h),
        # which by Gauss equals n F c_s int dh/dt
        far_wall = -2.0 * sigma[-1] * phi[-1] / grid.spacing[0]
        electrode_wall = 2.0 * sigma[0] * (phi[0] - voltage) / grid.spacing[0]
        cell_current = (jnp.sum(far_wall) - jnp.sum(electrode_wall)) * transverse_area / electrode_area / MICRON

        # 2. Allen-Cahn: implicit isotropic gradient term and stabilisation S (xi' - xi), S = max W g''
        explicit = -p.allen_cahn_mobility * (p.barrier * barrier_slope(xi) - stabilization * xi)
        if config.anisotropy_strength > 0:
            explicit = explicit + p.allen_cahn_mobility * anisotropy_divergence(xi)
        symbol = 1.0 / dt + p.allen_cahn_mobility * (stabilization - p.kappa * phase_basis.laplacian_symbol)
        xi_relaxed = phase_basis.inverse(phase_basis.forward(xi / dt + explicit) / symbol)
        if config.noise_amplitude > 0:
            key = jax.random.fold_in(carry["key"], carry["step"])
            kick = jax.random.normal(key, grid.shape, jnp.float64)
            xi_relaxed = xi_relaxed + config.noise_amplitude * jnp.sqrt(dt) * kick * 16.0 * (xi * (1.0 - xi)) ** 2
        xi_relaxed, c = metal_growth(xi, xi_relaxed, c, p.site_ratio)

        # 3. Li+ transport and the Butler-Volmer exchange together (see exchange), the Butler-Volmer
        # argument shifted by the coupled physics, which sees the step's starting xi (quasi-static)
        coupled, shift = coupling.update(carry, xi) if coupling is not None else ({}, None)
        h = interpolation(xi_relaxed)
        diffusivity = p.diffusivity_metal * h + p.diffusivity_electrolyte * (1.0 - h)

        def exchange(phi, c_guess):
            """Transport with the Butler-Volmer exchange as its implicit linear sink
            (:func:`drift_diffusion_step`): the reaction draws on the Li+ that diffuses in during
            the step; ``dxi = dt r (c' - c_eq)`` then pays its exact Li cost from the transported
            (flux-form, conservative) ``c`` (:func:`metal_growth`).
            Returns ``(xi', c', c'_solved, wall inflow, iterations)``."""
            if config.migration:
                f_phi = p.f * (phi - jnp.max(phi))
                weight = jnp.exp(-jnp.clip(f_phi, -SLOTBOOM_LIMIT, 0.0))
                wall_weight = jnp.exp(p.f * jnp.max(phi))  # w at the reservoir wall (phi = 0)
            else:
                weight, wall_weight = jnp.ones_like(c), 1.0
            argument = p.f * phi if shift is None else p.f * phi + shift
            rate, c_eq, k = butler_volmer_linear(xi_relaxed, jnp.clip(argument, -F_PHI_LIMIT, F_PHI_LIMIT),
                                                 p.reaction_rate, p.site_ratio, p.alpha)
            moved = drift_diffusion_step(c, dt, diffusivity, weight, grid, reservoir, p.bulk, wall_weight,
                                         k, c_eq, initial_guess=c_guess, tolerance=TRANSPORT_TOLERANCE)
            xi_new = jnp.clip(xi_relaxed + dt * rate * (moved.solved - c_eq), 0.0, 1.0)
            xi_new, c_new = metal_growth(xi_relaxed, xi_new, moved.transported, p.site_ratio)
            return xi_new, c_new, moved.solved, moved.wall_inflow, moved.iterations

        if galvanostatic:
            voltage, (xi_new, c, _, wall_inflow, transport_iterations) = hold_current(
                lambda v, guess: exchange(phi_0 + v * psi, guess), xi, c, voltage, dt)
            phi = phi_0 + voltage * psi
        else:
            xi_new, c, _, wall_inflow, transport_iterations = exchange(phi, c)

        extra = {"psi": psi} if galvanostatic else {}
        return {
            **extra,
            **coupled,
            "voltage": voltage,
            "xi": xi_new,
            "c": c,
            "phi": phi,
            "rate": (xi_new - xi) / dt,
            "metal_rate": (interpolation(xi_new) - interpolation(xi)) / dt,
            "key": carry["key"],
            "step": carry["step"] + 1,
            # the wall current carries the last step's deposition (the lagged source), over that step's dt
            "passed_charge": carry["passed_charge"] + carry["last_dt"] * cell_current,
            "last_dt": dt,
            "cell_current": cell_current,
            "li_inflow": carry["li_inflow"] + dt * jnp.sum(wall_inflow) * transverse_area / electrode_area,
            "transport_iterations": transport_iterations,
            "potential_iterations": iterations,
            "potential_iterations_total": carry["potential_iterations_total"] + iterations,
            "potential_residual": residual,
            "metal_initial_total": carry["metal_initial_total"],
        }

    def total_li(xi, c):
        """Li per electrode area, um * c_ref: ions plus metal."""
        return (jnp.sum(c) + p.site_ratio * jnp.sum(interpolation(xi))) * volume / electrode_area

    def init(fields):
        xi = jnp.asarray(fields["xi"], jnp.float64)
        c = jnp.asarray(fields["c"], jnp.float64) / config.reference_concentration
        extra = {"psi": interpolation(xi)} if galvanostatic else {}  # a warm start for the unit response
        if coupling is not None:
            extra.update(coupling.init(xi))
        return {
            **extra,
            "voltage": jnp.asarray(config.voltage, jnp.float64),
            "xi": xi,
            "c": c,
            "phi": jnp.asarray(fields["phi"], jnp.float64),
            "rate": jnp.zeros(grid.shape, jnp.float64),
            "metal_rate": jnp.zeros(grid.shape, jnp.float64),
            "key": jax.random.PRNGKey(config.seed),
            "step": jnp.asarray(0, jnp.int64),
            "passed_charge": jnp.asarray(0.0, jnp.float64),
            "last_dt": jnp.asarray(0.0, jnp.float64),
            "cell_current": jnp.asarray(0.0, jnp.float64),
            "li_inflow": jnp.asarray(0.0, jnp.float64),
            "transport_iterations": jnp.asarray(0, jnp.int32),
            "potential_iterations": jnp.asarray(0, jnp.int32),
            "potential_iterations_total": jnp.asarray(0, jnp.int64),
            "potential_residual": jnp.asarray(0.0, jnp.float64),
            "metal_initial_total": jnp.sum(interpolation(xi)) * volume / electrode_area,
        }

    def fields(carry):
        own = {"xi": carry["xi"], "c": carry["c"] * config.reference_concentration, "phi": carry["phi"]}
        return own if coupling is None else {**own, **coupling.fields(carry)}

    def change(new, old):
        return jnp.max(jnp.abs(new["xi"] - old["xi"]))

    gap_cells = grid.axis_coordinates(0) > grid.lengths[0] - config.short_circuit_gap
    first_gap_cell = int(np.argmax(gap_cells)) if gap_cells.any() else grid.shape[0]

    def short_circuit(carry):
        return jnp.any(carry["xi"][first_gap_cell:] > 0.5)

    # the explicit anisotropic flux is the only conditionally stable part
    stepper = Stepper(init, step, fields, anisotropy_dt, 1, change, short_circuit,
                      f"short circuit: the metal came within {config.short_circuit_gap:g} um of the far wall")
    diagnostics = make_diagnostics(grid, config, params, electrode_area, total_li)
    if coupling is not None:
        own_diagnostics = diagnostics

        def diagnostics(carry):
            return {**own_diagnostics(carry), **coupling.diagnostics(carry)}

    raw_initial = initial_condition(grid, config, params)

    def initial_fields():
        return {"xi": raw_initial["xi"], "c": raw_initial["c"] * config.reference_concentration,
                "phi": raw_initial["phi"]}

    return Simulation(
        name=config.name,
        grid=grid,
        stepper=stepper,
        initial_fields=initial_fields,
        field_info={
            "xi": Quantity("1", "order parameter (1: Li metal, 0: electrolyte)"),
            "c": Quantity("mol/m^3", "Li+ concentration"),
            "phi": Quantity("V", "electric potential (far electrolyte at 0 V)"),
            **(coupling.field_info if coupling is not None else {}),
        },
        diagnostics=diagnostics,
        scalar_info={**SCALAR_INFO, **(coupling.scalar_info if coupling is not None else {})},
        scales={
            "length": (MICRON, "m"),
            "time": (1.0, "s"),
            "potential": (1.0, "V"),
            "concentration": (config.reference_concentration, "mol/m^3"),
            "energy_density": (params.energy_scale, "J/m^3"),
        },
    )


SCALAR_INFO = {
    "dendrite_height": Quantity("um", "farthest xi = 1/2 crossing from the initial surface"),
    "tip_velocity": Quantity("um/s", "velocity of that crossing, (dxi/dt) / |dxi/dx|"),
    "interface_area": Quantity("1", "interface area per electrode area, (3/k) int |grad xi|^2 / A"),
    "current_density": Quantity("mA/cm^2", "deposition current n F c_s int dh/dt / A"),
    "cell_current_density": Quantity("mA/cm^2", "current the potential equation carries into the deposit (wall fluxes)"),
    "electrode_potential": Quantity("V", "potential of the electrode wall"),
    "deposited_charge": Quantity("C/cm^2", "n F c_s int (h(xi) - h(xi_0)) / A"),
    "passed_charge": Quantity("C/cm^2", "time integral of cell_current_density: the charge the potential equation "
                                        "carried for the deposition up to the previous step"),
    "total_li": Quantity("mol/m^2", "Li+ plus Li metal per electrode area"),
    "li_inflow": Quantity("mol/m^2", "Li+ that entered through the far wall per electrode area"),
    "c_min": Quantity("mol/m^3", "smallest Li+ concentration"),
    "potential_iterations": Quantity("1", "CG iterations of the last potential solve"),
    "potential_iterations_mean": Quantity("1", "CG iterations per step since the start"),
    "potential_residual": Quantity("1", "relative residual of the last potential solve"),
    "transport_iterations": Quantity("1", "CG iterations of the last Li+ transport solve"),
}


def front_crossings(xi, x, spacing: float):
    """Where ``xi`` falls through 1/2 from one cell to the next along x.

    ``x``: cell-centre coordinates along the first axis, broadcastable to ``xi``; ``spacing``: the
    cell size along it. Returns ``(position, fraction)`` over the ``n_x - 1`` neighbour pairs:
    the linearly interpolated crossing (``-inf`` where there is none) and its fractional distance
    from the lower cell, so that a cell field ``u`` at the crossing is
    ``u[:-1] (1 - fraction) + u[1:] fraction``.
    """
    here, ahead = xi[:-1], xi[1:]
    crossing = (here > 0.5) & (ahead <= 0.5)
    fraction = jnp.where(crossing, (here - 0.5) / jnp.where(crossing, here - ahead, 1.0), 0.0)
    return jnp.where(crossing, x[:-1] + spacing * fraction, -jnp.inf), fraction


def make_diagnostics(grid: Grid, config: Config, params: Parameters, electrode_area: float, total_li):
    p = params
    h0 = grid.spacing[0]
    x = jnp.asarray(grid.axis_coordinates(0)).reshape((-1,) + (1,) * (grid.ndim - 1))
    neumann = Boundary.uniform(grid.ndim, "neumann")
    charge_per_um = config.electrons * FARADAY * config.site_density * MICRON  # C/m^2 per um of Li
    li_per_um = config.reference_concentration * MICRON  # mol/m^2 per (um * c_ref)

    def diagnostics(carry):
        xi, rate = carry["xi"], carry["rate"]
        here, ahead = xi[:-1], xi[1:]
        position, fraction = front_crossings(xi, x, h0)
        tip = jnp.argmax(position)
        height = jnp.max(position) - config.electrode_position
        slope = (here - ahead).ravel()[tip] / h0
        tip_rate = (rate[:-1] * (1 - fraction) + rate[1:] * fraction).ravel()[tip]
        # int |grad xi|^2 dV with one face gradient per cell and axis; a flat tanh front gives k/3 per area
        gradient_squared = sum(jnp.sum(face_gradient(xi, grid, neumann, a) ** 2) for a in range(grid.ndim))
        area = 3.0 / p.slope * gradient_squared * grid.cell_volume / electrode_area
        deposited_um = jnp.sum(interpolation(xi)) * grid.cell_volume / electrode_area - carry["metal_initial_total"]
        steps = jnp.maximum(carry["step"], 1)
        return {
            "dendrite_height": height,
            "tip_velocity": jnp.where(jnp.isfinite(height), tip_rate / jnp.maximum(slope, 1e-12), 0.0),
            "interface_area": area,
            "current_density": charge_per_um * jnp.sum(carry["metal_rate"]) * grid.cell_volume / electrode_area / 10.0,
            "cell_current_density": carry["cell_current"] / 10.0,
            "electrode_potential": carry["voltage"],
            "deposited_charge": charge_per_um * deposited_um * 1e-4,
            "passed_charge": carry["passed_charge"] * 1e-4,
            "total_li": total_li(xi, carry["c"]) * li_per_um,
            "li_inflow": carry["li_inflow"] * li_per_um,
            "c_min": jnp.min(carry["c"]) * config.reference_concentration,
            "potential_iterations": carry["potential_iterations"].astype(jnp.float64),
            "potential_iterations_mean": carry["potential_iterations_total"] / steps,
            "potential_residual": carry["potential_residual"],
            "transport_iterations": carry["transport_iterations"].astype(jnp.float64),
        }

    return diagnostics
