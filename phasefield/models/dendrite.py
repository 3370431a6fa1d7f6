"""Li dendrites during electrodeposition: a reaction-only interface at battery conditions (the default),
the literal nonlinear phase-field model of Chen et al. (2015), or Hong & Viswanathan's (2018) grand-potential form.

Three formulations (``formulation``, static):

* ``reaction`` (default): the metal is an equipotential at the electrode potential ``V``; the
  electrolyte potential ``phi_e`` carries the ionic current, ``div(kappa (1 - h) grad phi_e) =
  n F c_s dh/dt`` (counter electrode at the far wall, 0 V), so current crosses the interface only
  through the Butler-Volmer reaction ``i = i0 [c e^{-a A} - e^{(1-a) A}]``, ``A = f (V - phi_e) + s``
  (``s``: Gibbs-Thomson and, with a coupling, the mechanical overpotential). The reaction advects the
  interface, ``dxi/dt = (i / n F c_s) C |grad xi|`` (:func:`reaction_weight`); the Allen-Cahn part
  only keeps the tanh profile (curvature-free, its rate from ``profile_relaxation``) and moves no
  metal (:func:`conserve_metal_locally`: otherwise it damps every bump by a fixed amount per step and,
  paid cell by cell from a depleted interface, dissolves a share of each step's deposit). Binary salt:
  ``dc/dt = div(D grad c) - (1 - t+) (c_s/c_ref) dh/dt``, the share ``t+`` of the Li carried by
  migration from the counter electrode (``li_inflow`` counts it), ``kappa = kappa_l c / c_bulk``;
  single-ion conductor: ``c`` fixed, ``t+ = 1``. One step: 0. coupling; 1. galvanostatic: ``phi_e``
  with the Butler-Volmer distribution scaled to the applied current as source; 2. Allen-Cahn
  (curvature-free, metal given back locally; noise that moves no net metal, :func:`net_free_kick`);
  3. salt diffusion with the reaction's share as implicit sink and the metal growth
  (:func:`transport_exchange` with the reaction's localisation): galvanostatic, at the electrode
  potential found by :func:`hold_current`; held voltage, solved together with ``phi_e``, whose
  source is that growth and whose conductivity and diffusion current are those of the implicit
  ``c'`` (:func:`solve_balanced_step`), so the charge through the counter electrode is the charge
  deposited, step by step. ``phi`` stores ``phi_e``. A leaky electrolyte (``electronic_conductivity``
  > 0): the metal's own potential ``phi_s`` (:func:`solve_electronic_potential`, stored as ``phi_s``)
  replaces ``V`` in ``A``; isolated metal floats, and the leakage joins the external current. Galvanostatic
  with leakage: no step 1; each trial V of :func:`hold_current` is a balanced step (``phi_e``, ``phi_s`` and
  ``c'`` together), whose deposit and leakage it holds at the applied current.
* ``chen2015``: the single-potential model below, kept for reproducing papers (its interface is an
  ohmic contact: physics.md 3.1).
* ``grand_potential``: Hong & Viswanathan (2018) as in their public MOOSE input (physics.md 3.2), with
  ``w`` (the Li chemical potential over RT; :mod:`phasefield.physics.grand_potential`) in place of ``c``::

      deta/dt = -L [W g'(eta) - kappa lap eta] + L_s h'(eta) [(c/c0) e^{-a f phi} - e^{(1-a) f phi}] + noise
      chi dw/dt = div[M0 c_l (1 - h)^2 (grad w + f grad phi)] - (d_v c_s - c_l) h'(eta) deta/dt
      div[sigma(h) grad phi] = ft2 deta/dt,   c = (1 - h) c_l,  c0 = c_l(w = 0) = 1/(1 + e^{eps_l})

  (the Allen-Cahn bulk term is the barrier only; MOOSE writes the anodic exponent as ``a f phi``, the same at
  ``a = 1/2``). The MOOSE numbers in this model's keys (energy over ``R T c_ref``, um, s; ``T = 300 K``):
  ``L = 6.25`` -> ``interface_mobility = L/(R T c_ref) = 2.5057e-6``; ``kappa = 0.3, B = 2.4`` ->
  ``interface_energy = 0.2 R T c_ref um = 0.49887 J/m^2``, ``interface_thickness = 1``; ``ft2 = 0.0074`` ->
  ``site_density = ft2/(n F um^2) = 7.6696e4``; ``Ls = 1e-3`` -> ``exchange_current_density = 1.5 Ls n F c_s
  delta = 1.110 mA/cm^2``; ``M0 = 317.9`` -> ``diffusivity_electrolyte = 3.179e-10``; ``S1, S2`` ->
  ``conductivity_metal, conductivity_electrolyte``; ``AA = 38.69`` -> ``n F/(R T)``; ``dv, el, es`` ->
  ``metal_site_ratio, electrolyte_site_energy, metal_site_energy`` (``ul, us``: only in the grand potentials,
  which the equations do not use). ``c_ref`` (``reference_concentration``) is ``c0``, so the electrolyte has
  ``(1 + e^{eps_l}) c_ref`` Li sites per volume (14.89 M) and the metal ``d_v`` times that (81.9 M; its charge
  ``ft2`` counts 76.7 M: MOOSE's own numbers differ there). The far wall holds ``w_b`` with ``c_l(w_b) =
  c_bulk / sites`` (0 at ``c_bulk = c_ref``), the electrode wall no Li flux; ``eta`` has no-flux walls (MOOSE:
  held at 1 and 0, which the fields are there); only a held voltage. IC: the tanh front, ``w = w_b``,
  ``phi = V eta``. One step (first order, operator split): 1. ``phi`` as chen2015's step 1, source
  ``ft2 deta/dt`` of the last step; 2. ``eta``: chen2015's Allen-Cahn step (noise, anisotropy), then the
  Butler-Volmer term ``R`` at the step's start, linearly implicit in its damping part, ``dt R / (1 + dt
  max(-dR/deta, 0))``; 3. Li: ``n(w', h') - n(w, h) = dt div J(w')``, ``n =
  (1 - h) c_l + d_v h c_s`` (the conserved quantity, whose chain rule is the ``chi`` equation; MOOSE integrates
  ``chi dw/dt`` itself, which is not discretely conservative), backward Euler with the mobility at the step's
  start, solved by Newton with a line search on its convex functional
  (:func:`phasefield.physics.grand_potential.li_transport_step`, the multigrid CG for each update):
  unconditionally stable diffusion, and Li conserved to the Newton tolerance (``li_drift``).

The rest of this docstring describes ``chen2015``; all three share the carry layout and the diagnostics,
except that ``grand_potential`` keeps ``w`` in place of ``c`` (``c`` is then a stored field derived from it),
its Li totals (``li_total``, ``li_initial_total``), and ``deta/dt`` (``history.order_rate``).

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

One step of size ``dt`` (first order, operator split, every part conservative), each part a
sub-step of :mod:`phasefield.physics.electrodeposition`:

0. coupled physics (:class:`Coupling`, optional) at the step's starting ``xi`` (quasi-static): its
   own update, a shift of the Butler-Volmer argument and/or a changed conductivity;
1. potential (:func:`solve_cell_potential`): a multigrid-preconditioned CG solve, warm-started
   from the last step, with the last step's ``dh/dt`` as source (the potential is quasi-static);
2. Allen-Cahn (:func:`allen_cahn_update`): the isotropic gradient term implicit in the cosine
   basis, barrier and anisotropy explicit, Langevin noise ``A sqrt(dt) N(0,1) 16 xi^2 (1-xi)^2``;
   ``c`` gives or takes the Li that ``h(xi)`` changes by (:func:`metal_growth`), so total Li is exact;
3. transport and reaction (:func:`transport_exchange`): diffusion, migration and the
   Butler-Volmer exchange (linear in ``c`` for frozen ``phi`` and ``h'``) together, backward
   Euler in Slotboom variables ``c = exp(-f phi) u`` (a symmetric problem for the same multigrid
   CG): stable at any dt, no Courant limit from the strong field near tips, c stays positive, and
   the reaction can use the Li+ that diffuses in during the step; the metal then pays its exact
   Li cost.

Galvanostatic control (``control=current``) solves for the electrode potential each step:
``phi`` is linear in it (``phi_0 + V psi``), and a secant iteration on V over step 3
(:func:`hold_current`) makes the step's metal growth equal the applied current.

Parameters and carry. The validated :class:`Config` is the parameter pytree: its floats (and the
seed) are leaves that every stepper function reads from its ``params`` argument, deriving the
nondimensional numbers (:class:`Parameters`) there, so one compiled step serves any values.
Static (they shape the computation): ``size`` and ``shape`` (the grid), ``control``,
``migration``, ``electrolyte_boundary`` (branches and boundary conditions), ``electrons`` and
``anisotropy_mode`` (small integers of the formulas), ``potential_max_iterations`` (a loop
bound), and the host-side initial geometry ``nuclei`` and ``random_nuclei``. Everything else is a
leaf, ``electrode_position`` and ``short_circuit_gap`` included (the height diagnostic and the
stop event compare coordinates with them in jnp, no index is built from them); the initial
fields are built on the host from the concrete config (nuclei, roughness, ``seed``). Anisotropy
and noise are switched by their (traced) amplitudes with ``lax.cond``, so a run without them
does no work for them (batched under ``vmap``, both branches run). A held electrode potential is
read from ``params.voltage``; a controlled one is state. The noise of step ``n`` is ``fold_in(PRNGKey(seed), n)``: a function of
the seed and the step count, so it needs no carry entry and a resumed run draws the same noise.
The carry (:mod:`phasefield.schemes`):

* ``state``: ``xi``, ``c``, ``phi`` (the stored fields; ``phi`` also warm-starts the next
  potential solve), ``voltage`` (the electrode potential, which the galvanostatic control
  moves), ``step``, and the integrated ``passed_charge``, ``li_inflow``,
  ``potential_iterations_total`` and ``metal_initial_total`` (the metal at t = 0, the reference
  of the deposited charge);
* ``history``: ``metal_rate`` (last step's ``dh/dt``: the lagged source of the next potential
  solve), ``last_dt`` (its step, for ``passed_charge``), ``psi`` (galvanostatic: the warm start
  of the unit response);
* ``cache``: ``rate`` (last ``dxi/dt``, for the tip velocity), ``cell_current``, the iteration
  counts and the potential residual: diagnostics only.

A :class:`Coupling` adds physics that acts on the deposition through the Butler-Volmer argument
(``f phi -> f phi + s``) or the conductivity of the potential equation: ``dendrite_solid`` passes
its mechanics (the stress of the solid electrolyte and the metal) this way; without one the model
is exactly the liquid one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, TimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid
from phasefield.operators import SpectralBasis, face_gradient, gradient
from phasefield.physics.electrochemistry import (
    butler_volmer_linear,
    interface_parameters,
    interpolation,
    interpolation_slope,
    metal_growth,
    thermal_factor,
)
from phasefield.physics.electrodeposition import (
    F_PHI_LIMIT,
    IONIC_FLOOR,
    TRANSPORT_TOLERANCE,
    CURRENT_TOLERANCE,
    SECANT_ITERATIONS,
    BalancedTrial,
    ElectrolytePotential,
    Kinetics,
    allen_cahn_update,
    anisotropy_stable_dt,
    conserve_metal_locally,
    electrode_connected,
    electrolyte_current,
    electronic_conductivity,
    electronic_wall_currents,
    gradient_angle,
    growth_per_area,
    hold_current,
    interface_curvature,
    junction_current,
    langevin_kick,
    net_free_kick,
    reaction_weight,
    solve_cell_potential,
    solve_electrolyte_potential,
    solve_electronic_potential,
    solve_balanced_step,
    transport_exchange,
    wall_current,
)
from phasefield.physics.grand_potential import (
    SiteEnergies,
    li_content,
    li_mobility,
    li_transport_step,
    site_fraction,
)
from phasefield.recompute import recomputed
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper
from phasefield.simulation import Quantity, Simulation
from phasefield.units import (
    FARADAY,
    GAS_CONSTANT,
    MICRON,
    charge_from_si,
    current_density_from_si,
    current_density_to_si,
)


MIN_CELLS_ACROSS = 8  # cells along x: the metal, the diffuse interface and the electrolyte each need some
CONTROL_MARGIN = 1e-3  # V: galvanostatic control counts as lost within this of the cutoff_voltage
VOLTAGE_SCALE = 1.0  # V: galvanostatic control's electrode potential moves at most target_change times this per step
CONTROL_SHORTFALL = 1e-3  # galvanostatic control also counts as lost where a step deposits this much (relative)
# less than the applied current, and would still at the cutoff_voltage
MIN_CELLS_PER_INTERFACE = 4.0  # reaction formulation: interface thickness 2/k in cells (a flat front then moves at
# the kinetic speed within 2 %, no stick-slip; at 3 cells within 4 %, at 2 it sticks at low current)


@scenario_parameters
@dataclass
class Config:
    """``scenario=dendrite``: Li electrodeposition (physical units: um, s, V, mol/m^3, S/m, m^2/s)."""

    name: str = option("dendrite", help="scenario name")
    size: list[float] = option(lambda: [50.0, 50.0], min=0.0, exclusive=True, static=True,
                               help="domain size per axis in um (x first: electrode to electrolyte)")
    shape: list[int] = option(lambda: [200, 200], min=1, help="cells per axis (2 or 3 entries)")
    t_end: float = option(100.0, min=0.0, exclusive=True, help="simulated time, s")
    control: str = option("voltage", choices=("voltage", "current"),
                          help="potentiostatic (hold voltage) or galvanostatic (hold current_density)")
    voltage: float = option(-0.45, min=-2.0, help="electrode potential against the far electrolyte, V (< 0 deposits); "
                                                  "with control=current, the starting value")
    current_density: float = option(1.0, min=0.0, exclusive=True, max=1000.0,
                                     help="applied deposition current density, mA/cm^2 (control=current)")
    cutoff_voltage: float = option(-2.0, min=-2.0, max=0.0,
                                   help="control=current (reaction formulation): the lowest electrode potential, V "
                                        "(a cycler's cutoff); reached past Sand's time")
    at_cutoff: str = option("stop", choices=("stop", "hold"), static=True,
                            help="control=current, at the cutoff_voltage: stop the run on its last good fields, or "
                                 "hold that voltage from then on (constant current, then constant voltage: CC-CV)")
    formulation: str = option("reaction", choices=("reaction", "chen2015", "grand_potential"),
                              help="reaction: metal and electrolyte potentials coupled only by the Butler-Volmer "
                                   "current (battery conditions); chen2015: the literal single-potential model of "
                                   "Chen et al. 2015, an ohmic interface (for reproducing papers); grand_potential: "
                                   "Hong & Viswanathan 2018 (w, the Li chemical potential, as its variable; physics.md 3.2)")
    metal_site_ratio: float = option(5.5, min=0.0, exclusive=True,
                                     help="grand_potential: d_v, Li sites per volume of metal over those of the electrolyte")
    electrolyte_site_energy: float = option(2.631, min=0.0, exclusive=True,
                                            help="grand_potential: eps_l, c_l = 1/(1 + e^{-(w - eps_l)}); the electrolyte "
                                                 "has (1 + e^{eps_l}) reference_concentration Li sites per volume")
    metal_site_energy: float = option(-13.8, max=0.0,
                                      help="grand_potential: eps_s, c_s = 1/(1 + e^{-(w - eps_s)}) (about 1 in the metal)")
    electrolyte: str = option("binary", choices=("binary", "single_ion"),
                              help="reaction formulation: binary salt (Li+ and anion, electroneutral, "
                                   "transference_number) or single-ion conductor (ceramic: c fixed, t+ = 1)")
    transference_number: float = option(0.38, min=0.0, max=1.0, exclusive=True,
                                        help="Li+ transference number t+ of the binary electrolyte")
    interface_resistance: float = option(0.0, min=0.0,
                                         help="charge-transfer resistance R_ct, ohm cm^2; > 0 replaces "
                                              "exchange_current_density by i0 = R T / (n F R_ct)")
    reference_temperature: float = option(298.15, min=200.0, max=600.0,
                                          help="temperature of conductivity_electrolyte and the exchange current, K")
    conductivity_activation_energy: float = option(0.0, min=0.0, max=200.0,
                                                   help="Arrhenius activation energy of the ionic conductivity, kJ/mol")
    exchange_activation_energy: float = option(0.0, min=0.0, max=200.0,
                                               help="Arrhenius activation energy of the exchange current, kJ/mol")
    profile_relaxation: float = option(100.0, min=1.0,
                                       help="reaction formulation: the interface profile's relaxation rate L W over "
                                            "k v (v: the largest cathodic front speed of the step where the reaction acts); "
                                            "interface_mobility is then not used")
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
    electronic_conductivity: float = option(0.0, min=0.0, max=1.0, static=True,
                                            help="reaction formulation: electronic (leakage) conductivity of the "
                                                 "electrolyte, S/m (LLZO about 1e-6); > 0 solves the metal's potential "
                                                 "phi_s: isolated metal floats, and the leakage current passes charge "
                                                 "that deposits nothing (0: no leakage, the metal an equipotential)")
    electronic_activation_energy: float = option(0.0, min=0.0, max=200.0,
                                                 help="Arrhenius activation energy of electronic_conductivity, kJ/mol")
    migration: bool = option(True, help="Li+ drift in the electric field (off: diffusion only)")
    electrolyte_boundary: str = option("reservoir", choices=("reservoir", "closed"),
                                       help="far wall: bulk concentration held (reservoir) or no flux (closed)")
    anisotropy_strength: float = option(0.0, min=0.0, help="delta of eps(theta) = eps0 (1 + delta cos(m (theta - theta0)))")
    anisotropy_mode: int = option(4, min=1, help="fold m of the anisotropy")
    anisotropy_angle: float = option(0.0, help="theta0: a preferred growth direction, degrees from x")
    noise_amplitude: float = option(0.0, min=0.0, help="Langevin amplitude A, 1/sqrt(s): xi += A sqrt(dt) N(0,1) at the interface")
    seed: int = option(0, min=0, static=False, help="seed of the noise, the random nuclei and the rough surface")
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

    def cells_across_interface(self) -> float:
        """The interface thickness ``2/k`` over the largest cell size."""
        return self.interface_thickness / max(s / n for s, n in zip(self.size, self.shape))

    def check(self, prefix: str):
        if len(self.shape) not in (2, 3) or len(self.size) != len(self.shape):
            raise ConfigError(f"{prefix}.shape", self.shape, f"2 or 3 cell counts, one per entry of size = {self.size}")
        if self.shape[0] < MIN_CELLS_ACROSS:
            raise ConfigError(f"{prefix}.shape", self.shape, f"at least {MIN_CELLS_ACROSS} cells along x (electrode, "
                                                             "interface and electrolyte)")
        if self.formulation == "reaction" and self.cells_across_interface() < MIN_CELLS_PER_INTERFACE:
            spacing = max(s / n for s, n in zip(self.size, self.shape))
            raise ConfigError(f"{prefix}.interface_thickness", self.interface_thickness,
                              f">= {MIN_CELLS_PER_INTERFACE:g} cells of {spacing:.3g} um = "
                              f"{MIN_CELLS_PER_INTERFACE * spacing:.3g} um (or finer cells: shape); a thinner "
                              "interface sticks to the grid (physics.md 3.1)")
        if self.voltage >= 0.0:
            raise ConfigError(f"{prefix}.voltage", self.voltage, "a negative electrode potential (-2 <= V < 0): "
                                                                 "this scenario deposits Li")
        if self.control == "current" and self.formulation == "reaction" \
                and self.voltage <= self.cutoff_voltage + CONTROL_MARGIN:
            raise ConfigError(f"{prefix}.voltage", self.voltage, f"above cutoff_voltage + {CONTROL_MARGIN:g} = "
                                                                 f"{self.cutoff_voltage + CONTROL_MARGIN:g} V (with "
                                                                 "control=current, the starting electrode potential)")
        if self.at_cutoff == "hold" and (self.control != "current" or self.formulation != "reaction"
                                         or self.electronic_conductivity > 0.0):
            raise ConfigError(f"{prefix}.at_cutoff", self.at_cutoff,
                              "'stop' unless control=current, formulation=reaction and electronic_conductivity=0 "
                              "(the held cutoff is a galvanostatic reaction-formulation protocol without leakage)")
        if self.electronic_conductivity > 0.0 and self.formulation != "reaction":
            raise ConfigError(f"{prefix}.electronic_conductivity", self.electronic_conductivity,
                              "0 (no leakage) for the chen2015 and grand_potential formulations (one potential)")
        if self.formulation == "grand_potential":
            if self.control != "voltage":
                raise ConfigError(f"{prefix}.control", self.control,
                                  "'voltage' for the grand_potential formulation (Hong's held electrode potential)")
            sites = electrolyte_sites(self, np)
            if self.bulk_concentration >= sites:
                raise ConfigError(f"{prefix}.bulk_concentration", self.bulk_concentration,
                                  f"< the electrolyte's Li sites (1 + e^eps_l) c_ref = {sites:.6g} mol/m^3 "
                                  "(grand_potential)")
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
        if self.roughness > 0 and self.roughness >= self.electrode_position:
            raise ConfigError(f"{prefix}.roughness", self.roughness,
                              f"< electrode_position = {self.electrode_position:g} um (a surface that reaches the x = 0 "
                              "wall leaves metal cut off from the electrode, which takes no part)")
        if self.electrode_position + self.short_circuit_gap >= self.size[0]:
            raise ConfigError(f"{prefix}.short_circuit_gap", self.short_circuit_gap,
                              f"< size[0] - electrode_position = {self.size[0] - self.electrode_position:g} um")
        for i, nucleus in enumerate(self.nuclei):
            if len(nucleus) != len(self.shape) or nucleus[-1] <= 0:
                raise ConfigError(f"{prefix}.nuclei[{i}]", nucleus,
                                  f"[{'y, ' if len(self.shape) == 2 else 'y, z, '}radius > 0] in um")


class Parameters(NamedTuple):
    """Nondimensional parameters (um, s, V; energy density over R T c_ref; c over c_ref).

    :meth:`from_config` computes them with plain arithmetic from the scenario's numbers, so it
    serves a concrete config (host floats, e.g. for the initial fields) and the traced parameter
    pytree inside the stepper alike.
    """

    allen_cahn_mobility: Any  # L_sigma R T c_ref, 1/s
    barrier: Any  # W / (R T c_ref)
    kappa: Any  # kappa / (R T c_ref um^2)
    reaction_rate: Any  # L_eta, 1/s
    site_ratio: Any  # c_s / c_ref
    f: Any  # n F / (R T), 1/V
    alpha: Any
    diffusivity_electrolyte: Any  # um^2/s
    diffusivity_metal: Any
    conductivity_electrolyte: Any  # S/m
    conductivity_metal: Any
    charge_density: Any  # n F c_s um^2: div(sigma grad phi) = charge_density dxi/dt with grad in 1/um
    bulk: Any  # c_bulk / c_ref
    slope: Any  # k = 2 / delta, 1/um
    energy_scale: Any  # R T c_ref, J/m^3
    interface_speed: Any  # v0 = i0 / (n F c_s), um/s: the front speed per unit Butler-Volmer bracket
    transference: Any  # t+ (1 for a single-ion conductor; unused by chen2015)
    capillary_length: Any  # gamma / (c_s R T), um: the Gibbs-Thomson shift of the Butler-Volmer argument per curvature
    electronic_conductivity: Any  # the electrolyte's electronic (leakage) conductivity at the temperature, S/m

    @classmethod
    def from_config(cls, config: Config) -> "Parameters":
        energy = GAS_CONSTANT * config.temperature * config.reference_concentration
        exchange_current = exchange_current_density(config)
        interface = interface_parameters(config.interface_energy, config.interface_thickness * MICRON,
                                         exchange_current, config.site_density, config.electrons)
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
            conductivity_electrolyte=config.conductivity_electrolyte
            * arrhenius(config.conductivity_activation_energy, config.temperature, config.reference_temperature),
            conductivity_metal=config.conductivity_metal,
            charge_density=config.electrons * FARADAY * config.site_density * MICRON**2,
            bulk=config.bulk_concentration / config.reference_concentration,
            slope=interface["slope"] * MICRON,
            energy_scale=energy,
            interface_speed=exchange_current / (config.electrons * FARADAY * config.site_density) / MICRON,
            transference=1.0 if config.electrolyte == "single_ion" else config.transference_number,
            capillary_length=config.interface_energy / (config.site_density * GAS_CONSTANT * config.temperature) / MICRON,
            electronic_conductivity=config.electronic_conductivity
            * arrhenius(config.electronic_activation_energy, config.temperature, config.reference_temperature),
        )

    def kinetics(self) -> Kinetics:
        """The numbers of :func:`transport_exchange` (chen2015)."""
        return Kinetics(self.f, self.reaction_rate, self.alpha, self.site_ratio, self.bulk)

    def reaction_kinetics(self) -> Kinetics:
        """The reaction formulation's: the rate is the front speed ``v0`` (um/s, with
        :func:`reaction_weight`), and ``c`` pays the share ``1 - t+`` of the metal's Li (migration the rest)."""
        return Kinetics(self.f, self.interface_speed, self.alpha, self.site_ratio * (1.0 - self.transference), self.bulk)


def arrhenius(activation_energy, temperature, reference_temperature):
    """``exp[-(E_a / R)(1/T - 1/T_ref)]``, ``E_a`` in kJ/mol."""
    return jnp.exp(-activation_energy * 1e3 / GAS_CONSTANT * (1.0 / temperature - 1.0 / reference_temperature))


def exchange_current_density(config: Config):
    """``i0`` (A/m^2) at the temperature: ``exchange_current_density``, or ``R T_ref / (n F R_ct)`` from
    ``interface_resistance`` ``R_ct`` (ohm cm^2) where that is set, times the Arrhenius factor."""
    resistance = config.interface_resistance * 1e-4  # ohm m^2
    from_resistance = GAS_CONSTANT * config.reference_temperature / (
        config.electrons * FARADAY * jnp.where(resistance > 0, resistance, 1.0))
    given = jnp.where(resistance > 0, from_resistance, current_density_to_si(config.exchange_current_density))
    return given * arrhenius(config.exchange_activation_energy, config.temperature, config.reference_temperature)


def electrolyte_sites(config: Config, xp=jnp):
    """grand_potential: the electrolyte's Li sites per volume, mol/m^3: ``(1 + e^{eps_l}) c_ref``, so that
    ``c_l(w = 0) = 1/(1 + e^{eps_l})`` is ``reference_concentration`` (Hong: 14.89 x 1000 mol/m^3).
    ``xp``: ``numpy`` on the host (the initial fields are built there, also while a resume traces them)."""
    return config.reference_concentration * (1.0 + xp.exp(config.electrolyte_site_energy))


def site_energies(config: Config) -> SiteEnergies:
    """grand_potential: ``eps_l``, ``eps_s`` and ``d_v`` of :mod:`phasefield.physics.grand_potential`."""
    return SiteEnergies(config.electrolyte_site_energy, config.metal_site_energy, config.metal_site_ratio)


def bulk_chemical_potential(config: Config, xp=jnp):
    """grand_potential: ``w`` of the bulk electrolyte (the far wall), ``c_l(w_b) = c_bulk / sites``:
    ``w_b = eps_l + ln(c_bulk / (sites - c_bulk))``, 0 at ``c_bulk = c_ref`` (``xp``: as :func:`electrolyte_sites`)."""
    bulk = config.bulk_concentration
    return config.electrolyte_site_energy + xp.log(bulk / (electrolyte_sites(config, xp) - bulk))


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


def initial_condition(grid: Grid, config: Config) -> dict:
    """Equilibrium tanh profile ``xi = (1 - tanh(k d))/2`` of the signed distance ``d`` to the metal,
    ``c`` (over ``c_ref``) and ``phi`` for a concrete ``config`` (host arrays)."""
    params = Parameters.from_config(config)
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
    if config.formulation == "reaction":  # c: the electrolyte's, extended through the metal; phi: phi_e
        return {"xi": xi.copy(), "c": np.full(grid.shape, params.bulk), "phi": np.zeros(grid.shape)}
    if config.formulation == "grand_potential":  # Hong: w at the bulk value, phi = V xi (-0.225 [1 - tanh])
        return {"xi": xi.copy(), "w": np.full(grid.shape, bulk_chemical_potential(config, np)),
                "phi": config.voltage * xi}
    return {"xi": xi.copy(), "c": params.bulk * (1.0 - h), "phi": config.voltage * h}



class CouplingEffect(NamedTuple):
    """What coupled physics changes in one dendrite step (``None``: nothing).

    shift:        ``s`` (field or scalar) added to the Butler-Volmer argument ``f phi``: the
                  cathodic term times ``e^{-a s}``, the anodic times ``e^{(1-a) s}`` (a mechanical
                  overpotential ``Omega p / RT``);
    conductivity: the conductivity field (S/m) of the potential equation in place of
                  ``sigma(xi)`` (e.g. a damage-dependent one, or Li filling cracks).
    """

    shift: Any = None
    conductivity: Any = None


class Coupling(NamedTuple):
    """Extra physics riding on the dendrite step, as pure functions of the parameters and the carry.

    init(params, xi) -> ``{"state": ..., "history": ..., "cache": ...}``: its own carry entries
        (merged into the model's; names must not collide), with the same meaning as the model's
        (:mod:`phasefield.schemes`): what it must checkpoint in state/history, diagnostics in cache;
    update(params, carry, xi, conductivity) -> (its new entries like init's, :class:`CouplingEffect`):
        called first in every step with the step's starting ``xi`` (quasi-static, like the potential)
        and the model's ``sigma(xi)``;
    fields(params, carry) -> extra stored fields (from its state);  field_info: their units;
    diagnostics(params, carry) -> extra scalars;  scalar_info: their units.

    ``params`` is the scenario's parameter pytree (a :class:`Config` subclass with the coupling's
    own options).
    """

    init: Callable
    update: Callable
    fields: Callable
    field_info: dict
    diagnostics: Callable
    scalar_info: dict


CARRY_PARTS = ("state", "history", "cache")


def li_per_cell(params: Config, state, formulation: str):
    """Li (Li+ and metal) per volume over ``c_ref``: ``c + (c_s/c_ref) h(xi)`` (reaction, chen2015), or the
    grand potential's ``(sites/c_ref) [(1 - h) c_l + d_v h c_s]`` (:func:`electrolyte_sites`)."""
    h = interpolation(state["xi"])
    if formulation == "grand_potential":
        sites = electrolyte_sites(params) / params.reference_concentration
        return sites * li_content(state["w"], h, site_energies(params))
    return state["c"] + params.site_density / params.reference_concentration * h


def conductivity(params: Parameters, xi):
    """``sigma(xi) = sigma_s h + sigma_l (1 - h)``, S/m."""
    h = interpolation(xi)
    return params.conductivity_metal * h + params.conductivity_electrolyte * (1.0 - h)


def ionic_conductivity(params: Parameters, c, xi, binary: bool):
    """The electrolyte potential's conductivity (S/m): ``kappa_l (c / c_bulk) (1 - h)`` for a binary
    salt (dilute-solution scaling; ``c / c_bulk`` floored at 1e-3), ``kappa_l (1 - h)`` for a
    single-ion conductor, plus :data:`IONIC_FLOOR` ``kappa_l`` (the metal: a dead end, no current path)."""
    share = jnp.maximum(c / params.bulk, 1e-3) if binary else 1.0
    return params.conductivity_electrolyte * (share * (1.0 - interpolation(xi)) + IONIC_FLOOR)


def capillary_shift(params: Parameters, config: Config, xi, grid: Grid, curvature):
    """Gibbs-Thomson in the Butler-Volmer argument: ``s = (gamma + gamma'') K / (c_s R T)`` (the metal's
    chemical potential raised by ``Omega gamma K``; ``K`` the curvature, 1/um, positive on a convex
    deposit), the stiffness ``gamma + gamma'' = gamma (1 + delta (1 - m^2) cos(m (theta - theta0)))`` of
    the 2D anisotropy (``theta`` the angle of the outward normal), ``gamma`` in 3D. ``curvature``: ``K``
    of :func:`interface_curvature`."""
    stiffness = 1.0
    if grid.ndim == 2:
        gx, gy = gradient(xi, grid, Boundary.uniform(2, "neumann"))
        theta = gradient_angle(-gy, -gx)
        stiffness = 1.0 + config.anisotropy_strength * (1 - config.anisotropy_mode**2) * jnp.cos(
            config.anisotropy_mode * (theta - config.anisotropy_angle * (np.pi / 180.0)))
    return params.capillary_length * stiffness * curvature


def relaxation_rate(config: Config, params: Parameters, fastest):
    """The reaction formulation's profile relaxation ``L W`` (1/s): ``profile_relaxation`` times ``k v``,
    ``v`` the largest cathodic front speed of the step where the reaction acts (``fastest``, um/s:
    ``v0 max(c e^{-a A})``), at least the applied growth and ``v0``."""
    speed = jnp.maximum(fastest, applied_growth(config)) if config.control == "current" else fastest
    return config.profile_relaxation * params.slope * jnp.maximum(speed, params.interface_speed)


def applied_growth(params: Config):
    """The applied current density as metal growth per electrode area, um/s: ``i / (n F c_s)``."""
    return current_density_to_si(params.current_density) / (params.electrons * FARADAY * params.site_density) / MICRON


@dataclass
class SolverConfig(TimeSolverConfig):
    """``solver`` of the dendrite scenario: the operator-split step's dt control and its precision."""

    precision: str = option("float64", choices=("float32", "float64"),
                            help="working precision of the fields (float32: reaction formulation only; the solver "
                                 "tolerances are raised to what it resolves, 100-1000 epsilon)")
    decomposition: str = option("none", choices=("none", "slabs"),
                                help="none: one device; slabs: the grid split along x over all devices "
                                     "(x cells divisible by the device count)")


@register_scenario("dendrite", Config, SolverConfig)
def build(config: Config, solver, coupling: Coupling | None = None) -> Simulation:
    """The dendrite simulation; ``coupling`` adds physics (``dendrite_solid``: mechanics).

    Only the static options set up structure here (grid, basis, branches); every number is read
    from ``params`` inside the stepper's functions. ``solver.decomposition=slabs``: every grid field of the
    carry split along x over the devices (:func:`phasefield.decomposition.laid_out`), the cosine basis
    the slab one; JAX's partitioner splits the rest (halos, all-reduces, the multigrid's coarsest level
    gathered onto every device).
    """
    grid = make_grid(config)
    ndim = grid.ndim
    dtype = jnp.dtype(solver.precision)
    if dtype != jnp.float64 and (config.formulation != "reaction" or coupling is not None):
        raise ConfigError("solver.precision", solver.precision,
                          "'float64' for the chen2015 and grand_potential formulations and for dendrite_solid")
    grand = config.formulation == "grand_potential"
    if grand and coupling is not None:
        raise ConfigError("scenario.formulation", config.formulation,
                          "'reaction' or 'chen2015' with coupled physics (grand_potential: the liquid model only)")
    slabs = slabs_for(solver.decomposition, grid.shape)
    basis = SpectralBasis(grid, Boundary.uniform(ndim, "neumann"), dtype, slabs)
    electrode_area = float(np.prod(grid.lengths[1:]))  # um^(d-1)
    transverse_area = grid.cell_volume / grid.spacing[0]
    reservoir = config.electrolyte_boundary == "reservoir"
    galvanostatic = config.control == "current"
    migration = config.migration
    mode = config.anisotropy_mode
    anisotropic = ndim == 2  # Kobayashi anisotropy is 2D (the config refuses it in 3D)
    max_iterations = config.potential_max_iterations
    x = grid.axis_coordinates(0)
    reaction = config.formulation == "reaction"
    binary = config.electrolyte == "binary"
    leaky = reaction and config.electronic_conductivity > 0.0  # the metal's potential phi_s solved
    cc_cv = galvanostatic and config.at_cutoff == "hold"  # constant current, then the cutoff voltage held

    def electronic_start(params, xi, voltage, guess):
        """``phi_s`` without reaction (div(sigma_s grad phi_s) = 0, V on the electrode wall): a first guess."""
        p = Parameters.from_config(params)
        sigma = electronic_conductivity(xi, p.conductivity_metal, p.electronic_conductivity)
        return solve_cell_potential(sigma, jnp.zeros_like(xi), voltage, grid, guess, params.potential_tolerance,
                                    max_iterations, slabs=slabs).phi

    def init(params, fields):
        xi = jnp.asarray(fields["xi"], dtype)
        own = {
            "state": {
                "xi": xi,
                **({"w": jnp.asarray(fields["w"], dtype)} if grand else
                   {"c": jnp.asarray(fields["c"], dtype) / params.reference_concentration}),
                "phi": jnp.asarray(fields["phi"], dtype),
                "voltage": jnp.asarray(params.voltage, dtype),
                "step": jnp.asarray(0, jnp.int64),
                "passed_charge": jnp.asarray(0.0, jnp.float64),
                "li_inflow": jnp.asarray(0.0, jnp.float64),
                "potential_iterations_total": jnp.asarray(0, jnp.int64),
                "metal_initial_total": jnp.sum(interpolation(xi)) * grid.cell_volume / electrode_area,
            },
            "history": {
                "metal_rate": jnp.zeros(grid.shape, dtype),
                "last_dt": jnp.asarray(0.0, dtype),
                **({"psi": interpolation(xi)} if galvanostatic and not reaction else {}),  # unit response warm start
            },
            "cache": {
                "rate": jnp.zeros(grid.shape, dtype),
                "cell_current": jnp.asarray(0.0, dtype),
                "transport_iterations": jnp.asarray(0, jnp.int32),
                "potential_iterations": jnp.asarray(0, jnp.int32),
                "potential_residual": jnp.asarray(0.0, dtype),
            },
        }
        if leaky:
            voltage = jnp.asarray(params.voltage, dtype)
            own["state"].update(phi_s=electronic_start(params, xi, voltage, jnp.full_like(xi, voltage)),
                                leaked_charge=jnp.asarray(0.0, jnp.float64))
            own["cache"]["leakage_current"] = jnp.asarray(0.0, dtype)
        if grand:
            total = jnp.sum(li_per_cell(params, own["state"], "grand_potential")) * grid.cell_volume / electrode_area
            own["state"].update(li_initial_total=total, li_total=total)
            own["history"]["order_rate"] = jnp.zeros(grid.shape, dtype)
            own["cache"]["transport_residual"] = jnp.asarray(0.0, dtype)
        if coupling is None:
            return laid_out(slabs, own, grid.shape)
        extra = coupling.init(params, xi)
        return laid_out(slabs, {part: {**extra.get(part, {}), **own[part]} for part in CARRY_PARTS}, grid.shape)

    def next_carry(state, coupled, xi, dt, exchange, phi, voltage, potential, cell_current, passed, inflow,
                   history_extra, extra=None):
        """The carry after a step from ``xi`` (either formulation): the exchange's fields, the step's
        potential, ``passed`` charge and Li ``inflow`` added to their totals, the coupling's entries and
        ``extra`` (per carry part: the leaky electrolyte's)."""
        own = {
            "state": {
                "xi": exchange.xi,
                "c": exchange.c,
                "phi": phi,
                "voltage": voltage,
                "step": state["step"] + 1,
                "passed_charge": state["passed_charge"] + passed,
                "li_inflow": state["li_inflow"] + inflow,
                "potential_iterations_total": state["potential_iterations_total"] + potential.iterations,
                "metal_initial_total": state["metal_initial_total"],
            },
            "history": {"metal_rate": (interpolation(exchange.xi) - interpolation(xi)) / dt, "last_dt": dt,
                        **history_extra},
            "cache": {
                "rate": (exchange.xi - xi) / dt,
                "cell_current": cell_current,
                "transport_iterations": exchange.iterations,
                "potential_iterations": potential.iterations,
                "potential_residual": potential.residual,
            },
        }
        extra = extra or {}
        return laid_out(slabs, {part: {**coupled.get(part, {}), **own[part], **extra.get(part, {})}
                                for part in CARRY_PARTS}, grid.shape)

    def reaction_step(params, carry, dt):
        """One step of the reaction formulation (module docstring)."""
        dt = jnp.asarray(dt, dtype)
        p = Parameters.from_config(params)
        kinetics = p.reaction_kinetics()
        state = carry["state"]
        xi, c = state["xi"], state["c"]
        voltage = state["voltage"] if galvanostatic else jnp.asarray(params.voltage, dtype)
        metal_start = jnp.sum(interpolation(xi))

        # 0. coupled physics at the step's starting xi (quasi-static)
        ionic = ionic_conductivity(p, c, xi, binary)
        coupled, effect = {}, CouplingEffect()
        if coupling is not None:
            coupled, effect = coupling.update(params, carry, xi, ionic)
            if effect.conductivity is not None:
                ionic = effect.conductivity

        def geometry():
            curvature = interface_curvature(xi, grid)
            return (reaction_weight(xi, grid, p.slope, not leaky, slabs), curvature,
                    capillary_shift(p, params, xi, grid, curvature[0]))

        # this stage and the Allen-Cahn one: reverse mode recomputes them once the solves' backward passes are done
        weight, curvature, shift = recomputed(geometry)
        if effect.shift is not None:
            shift = shift + effect.shift

        # 0'. a leaky electrolyte: the metal's potential phi_s (isolated metal floats), solved again with phi_e in
        # every Newton iteration of a balanced step (held voltage; galvanostatic: each trial V)
        electrode = voltage  # the metal's potential: an equipotential at V without leakage
        if leaky:
            sigma_s = electronic_conductivity(xi, p.conductivity_metal, p.electronic_conductivity)
            electrode = state["phi_s"]
        target = applied_growth(params)  # um/s: the deposit plus the leakage (as growth)
        # galvanostatic: phi_e first, with the applied current as its source laid out as the last step's reaction;
        # with leakage V is found over balanced steps instead: an isolated layer's bipolar current is no scaled copy
        # of the last step's (from rest, that source sent the front's current through the layer's metal: -528 V)
        prescribed = galvanostatic and not leaky

        taken = True  # galvanostatic control refuses the step past Sand's time (at_cutoff=hold: holds the cutoff)
        held = cutoff_reached(params, state) if cc_cv else False  # CC-CV: the cutoff held since an earlier step
        # 1. galvanostatic: the electrolyte potential with the applied current as its source (Butler-Volmer
        # distribution); a binary salt's diffusion current (liquid junction) at the step's starting c
        if prescribed:
            junction, junction_wall = None, jnp.zeros((), dtype)
            if binary:
                junction, junction_wall = junction_current(ionic, c, grid, reservoir, kinetics.bulk,
                                                           (2.0 * p.transference - 1.0) / p.f)

            def carrying_potential():
                return solve_electrolyte_potential(ionic, xi, c, electrode, state["phi"], grid, kinetics, weight,
                                                   shift, p.charge_density, params.potential_tolerance,
                                                   max_iterations, target * electrode_area, junction, slabs)

            if cc_cv:  # once the voltage is held, the held step below solves phi_e itself
                potential = jax.lax.cond(held, lambda: ElectrolytePotential(
                    state["phi"], jnp.zeros((), jnp.int32), jnp.zeros((), dtype)), carrying_potential)
            else:
                potential = carrying_potential()
        rate_phi = potential.phi if prescribed else state["phi"]

        # 2. Allen-Cahn: the profile relaxes, curvature-free (capillarity is in the Butler-Volmer shift)
        def relaxed():
            noise_key = jax.random.fold_in(jax.random.PRNGKey(params.seed), state["step"])
            argument = jnp.clip(p.f * (electrode - rate_phi) + shift, -F_PHI_LIMIT, F_PHI_LIMIT)
            fastest = p.interface_speed * jnp.max(jnp.where(weight > 0, jnp.maximum(c, 0.0), 0.0)
                                                  * jnp.exp(-p.alpha * argument))
            mobility = relaxation_rate(params, p, fastest) / p.barrier
            xi_relaxed = allen_cahn_update(xi, dt, basis, mobility, p.barrier, p.kappa, None, curvature=curvature)
            # ... moving no metal (only the reaction deposits); the round-off it leaves is paid where Li+ is
            xi_relaxed, residual = conserve_metal_locally(xi, xi_relaxed, basis, 2.0 / p.slope)
            c_left = c - kinetics.site_ratio * residual * c / jnp.sum(c)
            xi_kicked = langevin_kick(xi, xi_relaxed, dt, (params.noise_amplitude, noise_key))
            xi_kicked, _ = metal_growth(xi_relaxed, xi_kicked, c_left, kinetics.site_ratio)
            return net_free_kick(xi_relaxed, xi_kicked, c_left, kinetics.site_ratio)  # no charge passes for noise

        xi_relaxed, c = recomputed(relaxed)

        # 3. salt diffusion with the reaction's share 1 - t+ of the Li as an implicit sink, then the metal grows;
        # held voltage: together with the electrolyte potential, whose source is that growth
        h = interpolation(xi_relaxed)
        diffusivity = p.diffusivity_metal * h + p.diffusivity_electrolyte * (1.0 - h)

        def exchange_at(overpotential, c_guess):
            return transport_exchange(xi_relaxed, c, overpotential, dt, diffusivity, grid, kinetics, reservoir,
                                      False, shift, c_guess, weight, slabs)

        def electrolyte(c_solved):
            """The conductivity and the diffusion current's source and wall current at the step's ``c'``."""
            conductivity = ionic_conductivity(p, c_solved, xi_relaxed, binary) if effect.conductivity is None \
                else effect.conductivity
            if not binary:
                return conductivity, jnp.zeros_like(c_solved), jnp.zeros((), c_solved.dtype)
            return (conductivity,) + junction_current(conductivity, c_solved, grid, reservoir, kinetics.bulk,
                                                      (2.0 * p.transference - 1.0) / p.f)

        if galvanostatic:
            cutoff = jnp.asarray(params.cutoff_voltage, dtype)

            def controlled(step_at, carried, start, potential_of, confirm=True):
                """``(V, step, lost)``: the V at which ``step_at(V, guess)`` carries the applied current (``carried(step)``,
                um/s: its deposit, and leakage), by :func:`hold_current` from the last V and the warm start ``start``.
                ``lost`` past Sand's time: no electrode potential down to the cutoff carries the current (V at the
                cutoff; the step short of the applied current, with ``confirm`` even at the cutoff; or the ohmic drop
                through the depleted salt alone takes phi_e, ``potential_of(step)``, below the cutoff, and a V above
                phi_e strips the metal): the step is not taken; V at the cutoff then stops the run on the last good
                fields (at_cutoff=hold: the step is taken again at the held cutoff)."""
                found, step = hold_current(step_at, carried, target, voltage, start, lowest=cutoff)

                def cutoff_carries():
                    return carried(step_at(cutoff, step.solved)) >= (1.0 - CONTROL_SHORTFALL) * target

                deficit = carried(step) < (1.0 - CONTROL_SHORTFALL) * target
                cannot = deficit & ~jax.lax.cond(deficit, cutoff_carries, lambda: jnp.asarray(True)) if confirm else deficit
                return found, step, (found <= cutoff + CONTROL_MARGIN) | (jnp.min(potential_of(step)) < cutoff) | cannot

            def start_kept(lost, exchange):
                """The exchange, or where control is lost the step's starting fields (nothing deposited)."""
                kept = exchange._replace(xi=xi, c=state["c"], wall_inflow=jnp.zeros_like(exchange.wall_inflow))
                return jax.tree.map(lambda old, new: jnp.where(lost, old, new), kept, exchange)

        if leaky:
            def floating_step(v, start):
                """The balanced step with the electrode wall at ``v`` from ``start = (phi_e, c', phi_s)``: phi_s solved
                again in each of its Newton iterations, so that isolated metal floats at the step's own phi_e."""
                phi_e, c_start, phi_s = start

                def electronic_at(phi_e, phi_s):
                    return solve_electronic_potential(sigma_s, xi, c, phi_e, v, phi_s, grid, kinetics, weight, shift,
                                                      p.charge_density, params.potential_tolerance, max_iterations,
                                                      slabs).phi

                return solve_balanced_step(xi_relaxed, dt, phi_s, phi_e, c_start, grid, kinetics, weight, shift,
                                           diffusivity, p.charge_density, params.potential_tolerance, max_iterations,
                                           lambda phi, guess, phi_s: exchange_at(phi_s - phi, guess), electrolyte,
                                           electronic_at, slabs)

        if prescribed:
            def current_controlled(potential):
                """The step at the applied current: ``(potential, exchange, V, lost)`` (:func:`controlled`, each trial
                V a transport-and-exchange step at the potential ``potential``)."""
                found, exchange, lost = controlled(lambda v, guess: exchange_at(v - potential.phi, guess),
                                                   lambda result: growth_per_area(xi, result.xi, dt, grid), c,
                                                   lambda _: potential.phi)
                potential = potential._replace(phi=jnp.where(lost, state["phi"], potential.phi))
                return potential, start_kept(lost, exchange), jnp.where(lost, cutoff, found), lost

            if cc_cv:
                def held_step():
                    """The step at the held cutoff voltage (control=voltage's balanced step), carrying at most the
                    applied current, as a cycler's constant voltage does: where the cutoff would carry more (the
                    switch, when the current-controlled step, its potential's source laid out on the salt at the
                    step's start, counts as lost a step that the balanced one carries), V between the cutoff and
                    0 V that carries the applied current, by regula falsi (Illinois) on balanced steps; one
                    balanced step once the cutoff carries less. Returns the step's fields and V."""
                    def balanced_at(v, guess, c_guess):
                        return solve_balanced_step(xi_relaxed, dt, v, guess, c_guess, grid, kinetics, weight, shift,
                                                   diffusivity, p.charge_density, params.potential_tolerance,
                                                   max_iterations, lambda phi, g: exchange_at(v - phi, g),
                                                   electrolyte, slabs=slabs)

                    def excess(balanced):
                        return growth_per_area(xi, balanced.exchange.xi, dt, grid) / target - 1.0

                    tolerance = CURRENT_TOLERANCE * 10

                    def unsettled(loop):
                        v, _, excess_v, _, _, _, _, count = loop
                        off = (excess_v > tolerance) | ((excess_v < -tolerance) & (v > cutoff))
                        return (count == 0) | (off & (count < SECANT_ITERATIONS))

                    def trial(loop):
                        v, balanced, excess_v, low, high, excess_low, excess_high, count = loop
                        # the cutoff first; then the last step's V (within the bracket), then regula falsi
                        falsi = low - excess_low * (high - low) / (excess_high - excess_low)
                        inside = (state["voltage"] > low) & (state["voltage"] < high)
                        v = jnp.where(count == 0, cutoff, jnp.where((count == 1) & inside, state["voltage"], falsi))
                        balanced = balanced_at(v, balanced.potential.phi, balanced.exchange.solved)
                        excess_v = excess(balanced)
                        over = excess_v > 0  # V too low: the new low end of the bracket
                        # Illinois: halve the end kept twice in a row
                        excess_high = jnp.where(over & (count > 0), 0.5 * excess_high, excess_high)
                        excess_low = jnp.where(~over & (count > 0), 0.5 * excess_low, excess_low)
                        low, excess_low = jnp.where(over, v, low), jnp.where(over, excess_v, excess_low)
                        high, excess_high = jnp.where(over, high, v), jnp.where(over, excess_high, excess_v)
                        return v, balanced, excess_v, low, high, excess_low, excess_high, count + 1

                    shapes = jax.eval_shape(lambda: balanced_at(cutoff, state["phi"], c))
                    start = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), shapes)
                    start = start._replace(potential=start.potential._replace(phi=state["phi"]),
                                           exchange=start.exchange._replace(solved=c))
                    zero = jnp.zeros((), dtype)
                    # the bracket: the cutoff (more than the applied current) and 0 V (no deposit: -1)
                    v, balanced, *_ = jax.lax.while_loop(unsettled, trial, (
                        cutoff, start, zero, cutoff, zero, zero + 1.0, zero - 1.0, 0))
                    return (balanced.potential, balanced.exchange, balanced.conductivity, balanced.junction_wall,
                            v)

                def not_tried():
                    unused = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype),  # the held step replaces it
                                          jax.eval_shape(lambda: exchange_at(jnp.zeros_like(xi), c)))
                    return potential, unused, cutoff, jnp.asarray(True)

                potential, exchange, voltage, lost = jax.lax.cond(held, not_tried, lambda: current_controlled(potential))
                potential, exchange, ionic, junction_wall, voltage = jax.lax.cond(
                    lost, held_step, lambda: (potential, exchange, ionic, junction_wall, voltage))
            else:
                potential, exchange, voltage, lost = current_controlled(potential)
                taken = ~lost
        elif galvanostatic:  # a leaky electrolyte: each trial V is a balanced step (isolated metal floats)
            as_growth = 1.0 / (params.electrons * FARADAY * params.site_density) / MICRON  # (A/m^2) / (um/s)

            def trial_at(v, start):
                balanced = floating_step(v, start)
                counts = (balanced.exchange.iterations, balanced.potential.iterations)
                return BalancedTrial(balanced, jnp.stack([n.astype(jnp.int32) for n in counts]))

            def carried(trial):
                """The step's deposit and the leakage (phi_s's current through the counter electrode), um/s."""
                leaked = electrolyte_current(sigma_s, trial.balanced.electrode, grid)
                return growth_per_area(xi, trial.balanced.exchange.xi, dt, grid) + leaked * as_growth

            # a step short of the current counts as lost unconfirmed: the check at the cutoff, a third balanced step
            # in the program, was about a third of its tracing and compiling (39 against 26 CPU s, 2 loaded cores)
            found, trial, lost = controlled(trial_at, carried, (state["phi"], c, electrode),
                                            lambda trial: trial.balanced.potential.phi, confirm=False)
            balanced = trial.balanced
            # the iterations of every trial (the last, taken again from its own solution, costs next to none)
            potential = balanced.potential._replace(phi=jnp.where(lost, state["phi"], balanced.potential.phi),
                                                    iterations=trial.iterations[1])
            exchange = start_kept(lost, balanced.exchange._replace(iterations=trial.iterations[0]))
            ionic, junction_wall = balanced.conductivity, balanced.junction_wall
            electrode = jnp.where(lost, state["phi_s"], balanced.electrode)
            voltage = jnp.where(lost, cutoff, found)
            leakage = electronic_wall_currents(sigma_s, electrode, voltage, grid)[1]
            taken = ~lost
        else:
            if leaky:
                balanced = floating_step(voltage, (state["phi"], c, electrode))
                electrode = balanced.electrode
                leakage = electronic_wall_currents(sigma_s, electrode, voltage, grid)[1]
            else:
                balanced = solve_balanced_step(xi_relaxed, dt, electrode, state["phi"], c, grid, kinetics, weight,
                                               shift, diffusivity, p.charge_density, params.potential_tolerance,
                                               max_iterations, lambda phi, guess: exchange_at(electrode - phi, guess),
                                               electrolyte, slabs=slabs)
            potential, exchange = balanced.potential, balanced.exchange
            ionic, junction_wall = balanced.conductivity, balanced.junction_wall
        cell_current = electrolyte_current(ionic, potential.phi, grid) + junction_wall
        migrated = p.transference * p.site_ratio * (jnp.sum(interpolation(exchange.xi)) - metal_start)
        inflow = (dt * jnp.sum(exchange.wall_inflow) * transverse_area + migrated * grid.cell_volume) / electrode_area
        cell_current = jnp.where(taken, cell_current, 0.0)
        extra = {}
        if leaky:  # the external circuit passes the ionic current and the leakage
            leakage = jnp.where(taken, leakage, 0.0)
            cell_current = cell_current + leakage
            extra = {"state": {"phi_s": electrode, "leaked_charge": state["leaked_charge"] + dt * leakage},
                     "cache": {"leakage_current": leakage}}
        return next_carry(state, coupled, xi, dt, exchange, potential.phi, voltage, potential, cell_current,
                          dt * cell_current, inflow, {}, extra)

    def chen_step(params, carry, dt):
        """One step of the chen2015 formulation (module docstring)."""
        dt = jnp.asarray(dt, jnp.float64)
        p = Parameters.from_config(params)
        state, history = carry["state"], carry["history"]
        xi, c = state["xi"], state["c"]
        # the electrode potential: held (a parameter) or controlled (state, moved by hold_current)
        voltage = state["voltage"] if galvanostatic else jnp.asarray(params.voltage, jnp.float64)

        # 0. coupled physics at the step's starting xi (quasi-static)
        sigma = conductivity(p, xi)
        coupled, effect = {}, CouplingEffect()
        if coupling is not None:
            coupled, effect = coupling.update(params, carry, xi, sigma)
            if effect.conductivity is not None:
                sigma = effect.conductivity

        # 1. potential (quasi-static, source lagged by one step)
        potential = solve_cell_potential(sigma, p.charge_density * history["metal_rate"], voltage, grid,
                                         state["phi"], params.potential_tolerance, max_iterations,
                                         response_guess=history["psi"] if galvanostatic else None, slabs=slabs)
        cell_current = wall_current(sigma, potential.phi, voltage, grid)

        # 2. Allen-Cahn; c pays for the metal that h(xi) gains
        noise_key = jax.random.fold_in(jax.random.PRNGKey(params.seed), state["step"])
        anisotropy = (params.anisotropy_strength, mode, params.anisotropy_angle * (np.pi / 180.0))
        xi_relaxed = allen_cahn_update(xi, dt, basis, p.allen_cahn_mobility, p.barrier, p.kappa,
                                       anisotropy if anisotropic else None, (params.noise_amplitude, noise_key))
        xi_relaxed, c = metal_growth(xi, xi_relaxed, c, p.site_ratio)

        # 3. Li+ transport with the Butler-Volmer exchange (its argument shifted by the coupled physics)
        h = interpolation(xi_relaxed)
        diffusivity = p.diffusivity_metal * h + p.diffusivity_electrolyte * (1.0 - h)

        def exchange_at(phi, c_guess):
            return transport_exchange(xi_relaxed, c, phi, dt, diffusivity, grid, p.kinetics(), reservoir, migration,
                                      effect.shift, c_guess, slabs=slabs)

        if galvanostatic:
            voltage, exchange = hold_current(
                lambda v, guess: exchange_at(potential.base + v * potential.response, guess),
                lambda result: growth_per_area(xi, result.xi, dt, grid), applied_growth(params), voltage, c)
            phi = potential.base + voltage * potential.response
        else:
            exchange = exchange_at(potential.phi, c)
            phi = potential.phi

        # the wall current carries the last step's deposition (the lagged source), over that step's dt
        return next_carry(state, coupled, xi, dt, exchange, phi, voltage, potential, cell_current,
                          history["last_dt"] * cell_current,
                          dt * jnp.sum(exchange.wall_inflow) * transverse_area / electrode_area,
                          {"psi": potential.response} if galvanostatic else {})

    def grand_potential_step(params, carry, dt):
        """One step of the grand_potential formulation (module docstring)."""
        dt = jnp.asarray(dt, jnp.float64)
        p = Parameters.from_config(params)
        sites = site_energies(params)
        state, history = carry["state"], carry["history"]
        xi, w = state["xi"], state["w"]
        voltage = jnp.asarray(params.voltage, jnp.float64)
        h = interpolation(xi)

        # 1. potential: div(sigma(h) grad phi) = ft2 deta/dt, the source lagged by one step
        sigma = conductivity(p, xi)
        potential = solve_cell_potential(sigma, p.charge_density * history["order_rate"], voltage, grid,
                                         state["phi"], params.potential_tolerance, max_iterations, slabs=slabs)
        cell_current = wall_current(sigma, potential.phi, voltage, grid)

        # 2. eta: Allen-Cahn (barrier only, implicit gradient term, noise), then the Butler-Volmer term
        # R = L_s h'(eta) [c~ e^{-a f phi} - e^{(1-a) f phi}], c~ = (1 - h) c_l / c_l(w = 0), at the step's start
        noise_key = jax.random.fold_in(jax.random.PRNGKey(params.seed), state["step"])
        anisotropy = (params.anisotropy_strength, mode, params.anisotropy_angle * (np.pi / 180.0))
        relaxed = allen_cahn_update(xi, dt, basis, p.allen_cahn_mobility, p.barrier, p.kappa,
                                    anisotropy if anisotropic else None, (params.noise_amplitude, noise_key))
        argument = jnp.clip(p.f * potential.phi, -F_PHI_LIMIT, F_PHI_LIMIT)
        liquid = site_fraction(w, sites.electrolyte) / site_fraction(0.0, sites.electrolyte)

        def reaction(eta):
            rate, equilibrium, _ = butler_volmer_linear(eta, argument, p.reaction_rate, 0.0, p.alpha)
            return rate * ((1.0 - interpolation(eta)) * liquid - equilibrium)

        # linearly implicit in its damping part (the rate falls as eta -> 1, steeply where Li+ has piled up
        # ahead of the front: explicit, eta overshoots past 1 at dt ~ 0.02 s and the run fails)
        rate, slope = jax.jvp(reaction, (xi,), (jnp.ones_like(xi),))
        xi_new = relaxed + dt * rate / (1.0 + dt * jnp.maximum(-slope, 0.0))

        # 3. Li: n(w', h') - n(w, h) = dt div[M0 c_l (1 - h')^2 (grad w' + f grad phi)], Newton
        h_new = interpolation(xi_new)
        transport = li_transport_step(w, h, h_new, potential.phi, dt,
                                      li_mobility(w, h_new, p.diffusivity_electrolyte, sites), sites,
                                      p.f if migration else 0.0, grid, reservoir, bulk_chemical_potential(params),
                                      TRANSPORT_TOLERANCE, max_iterations, slabs)
        scale = electrolyte_sites(params) / params.reference_concentration  # Li per site -> per c_ref
        inflow = dt * transport.wall_inflow * transverse_area / electrode_area * scale
        content = li_content(transport.w, h_new, sites)
        return laid_out(slabs, {
            "state": {
                **state,
                "xi": xi_new,
                "w": transport.w,
                "li_total": jnp.sum(content) * scale * grid.cell_volume / electrode_area,
                "phi": potential.phi,
                "step": state["step"] + 1,
                "passed_charge": state["passed_charge"] + history["last_dt"] * cell_current,
                "li_inflow": state["li_inflow"] + inflow,
                "potential_iterations_total": state["potential_iterations_total"] + potential.iterations,
            },
            "history": {"metal_rate": (h_new - h) / dt, "order_rate": (xi_new - xi) / dt, "last_dt": dt},
            "cache": {
                "rate": (xi_new - xi) / dt,
                "cell_current": cell_current,
                "transport_iterations": transport.iterations,
                "transport_residual": transport.residual,
                "potential_iterations": potential.iterations,
                "potential_residual": potential.residual,
            },
        }, grid.shape)

    def fields(params, carry):
        state = carry["state"]
        if grand:
            h = interpolation(state["xi"])
            c = (1.0 - h) * site_fraction(state["w"], params.electrolyte_site_energy) * electrolyte_sites(params)
            return {"xi": state["xi"], "w": state["w"], "c": c, "phi": state["phi"]}
        own = {"xi": state["xi"], "c": state["c"] * params.reference_concentration, "phi": state["phi"],
               **({"phi_s": state["phi_s"]} if leaky else {})}
        return own if coupling is None else {**own, **coupling.fields(params, carry)}

    def change(new, old):
        """The largest change of ``xi`` per step; under galvanostatic control (reaction formulation) also
        of ``c`` in the electrolyte (``xi < 1e-3``) over its largest value: near Sand's time the salt at the
        deposit runs out fast, and the control must follow it (inside the interface ``c`` pays for the
        metal cell by cell and is not controlled); and of the electrode potential over :data:`VOLTAGE_SCALE`
        (20 mV per step at target_change 0.02): as the salt at the front runs out V falls steeply, and a
        step across that fall (the potential's source distributed at the step's starting salt) counts the
        control as lost while the held cutoff then carries more than the applied current (12.3 against
        10 mA/cm^2 in dendrite_sand, 2.5 s steps)."""
        largest = jnp.max(jnp.abs(new["state"]["xi"] - old["state"]["xi"]))
        if reaction and galvanostatic:
            scale = jnp.maximum(jnp.max(old["state"]["c"]), 1e-12)  # about c_bulk
            electrolyte = (old["state"]["xi"] < 1e-3) & (new["state"]["xi"] < 1e-3)
            moved = jnp.where(electrolyte, jnp.abs(new["state"]["c"] - old["state"]["c"]), 0.0)
            swing = jnp.abs(new["state"]["voltage"] - old["state"]["voltage"]) / VOLTAGE_SCALE
            largest = jnp.maximum(largest, jnp.maximum(jnp.max(moved) / scale, swing))
        return largest

    def short_circuit(params, carry):
        """Metal (xi > 1/2; joined to the electrode in the reaction formulation without leakage: dead Li shorts
        nothing) in the cells within ``short_circuit_gap`` of the far wall."""
        gap = jnp.asarray(x).reshape((-1,) + (1,) * (ndim - 1)) > grid.lengths[0] - params.short_circuit_gap
        return jnp.any(gap & (live_metal(carry["state"]["xi"], reaction and not leaky, slabs) > 0.5))

    def stable_dt(params):
        """The explicit anisotropic flux is the only conditionally stable part (chen2015)."""
        if not anisotropic or reaction:
            return jnp.inf
        p = Parameters.from_config(params)
        return anisotropy_stable_dt(grid, p.allen_cahn_mobility, p.kappa, params.anisotropy_strength, mode)

    def control_lost(params, carry):
        """Galvanostatic, reaction formulation, at_cutoff=stop: the electrode potential reached the cutoff
        (past Sand's time no potential carries the applied current through the depleted electrolyte)."""
        return cutoff_reached(params, carry["state"])

    def stop(params, carry):
        if galvanostatic and reaction and not cc_cv:
            return short_circuit(params, carry) | control_lost(params, carry)
        return short_circuit(params, carry)

    def stop_reason(params, carry):
        if galvanostatic and reaction and not cc_cv and bool(control_lost(params, carry)):
            return (f"the applied {float(params.current_density):g} mA/cm^2 could no longer be carried: the electrode "
                    f"potential reached the cutoff_voltage {float(params.cutoff_voltage):g} V (the electrolyte at the "
                    "deposit ran out: Sand's time; at_cutoff=hold continues at that voltage"
                    + ("; with electronic leakage also where the current control did not converge)" if leaky else ")"))
        return f"short circuit: the metal came within short_circuit_gap = {float(params.short_circuit_gap):g} um " \
               "of the far wall"

    step = reaction_step if reaction else grand_potential_step if grand else chen_step
    stepper = Stepper(init, step, fields, stable_dt, 1, change, stop, stop_reason)
    diagnostics = make_diagnostics(grid, config)
    if coupling is not None:
        own_diagnostics = diagnostics

        def diagnostics(params, carry):
            return {**own_diagnostics(params, carry), **coupling.diagnostics(params, carry)}

    def initial_fields():
        raw = initial_condition(grid, config)
        if grand:
            return raw
        return {"xi": raw["xi"], "c": raw["c"] * config.reference_concentration, "phi": raw["phi"]}

    return Simulation(
        name=config.name,
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=initial_fields,
        field_info={
            "xi": Quantity("1", "order parameter (1: Li metal, 0: electrolyte)"),
            **({"w": Quantity("1", "Li chemical potential over R T (grand_potential)")} if grand else {}),
            "c": Quantity("mol/m^3", "Li+ concentration"),
            "phi": Quantity("V", "electric potential (far electrolyte at 0 V)"),
            **({"phi_s": Quantity("V", "electronic potential of metal and leaky electrolyte (counter electrode at 0 V)")}
               if leaky else {}),
            **(coupling.field_info if coupling is not None else {}),
        },
        diagnostics=diagnostics,
        scalar_info={**SCALAR_INFO, **(REACTION_SCALAR_INFO if reaction else {}),
                     **(GRAND_POTENTIAL_SCALAR_INFO if grand else {}),
                     **(LEAKAGE_SCALAR_INFO if leaky else {}),
                     **(CUTOFF_SCALAR_INFO if cc_cv else {}),
                     **(coupling.scalar_info if coupling is not None else {})},
        scales={
            "length": (MICRON, "m"),
            "time": (1.0, "s"),
            "potential": (1.0, "V"),
            "concentration": (config.reference_concentration, "mol/m^3"),
            "energy_density": (Parameters.from_config(config).energy_scale, "J/m^3"),
        },
    )


SCALAR_INFO = {
    "dendrite_height": Quantity("um", "farthest xi = 1/2 crossing of the metal joined to the electrode (reaction "
                                      "formulation without leakage; all metal otherwise) from the initial surface"),
    "tip_velocity": Quantity("um/s", "velocity of that crossing, (dxi/dt) / |dxi/dx|"),
    "interface_area": Quantity("1", "interface area per electrode area, (3/k) int |grad xi|^2 / A"),
    "current_density": Quantity("mA/cm^2", "deposition current n F c_s int dh/dt / A"),
    "cell_current_density": Quantity("mA/cm^2", "current the potential equation carries into the deposit (wall fluxes)"),
    "electrode_potential": Quantity("V", "potential of the electrode wall"),
    "deposited_charge": Quantity("C/cm^2", "n F c_s int (h(xi) - h(xi_0)) / A"),
    "passed_charge": Quantity("C/cm^2", "time integral of cell_current_density: the charge the potential equation "
                                        "carried for the deposition up to the previous step"),
    "total_li": Quantity("mol/m^2", "Li+ plus Li metal per electrode area"),
    "deposited_capacity": Quantity("mAh/cm^2", "deposited_charge in mAh/cm^2 (1 mAh/cm^2 = 4.85 um of dense Li)"),
    "li_inflow": Quantity("mol/m^2", "Li+ that entered through the far wall per electrode area"),
    "c_min": Quantity("mol/m^3", "smallest Li+ concentration"),
    "potential_iterations": Quantity("1", "CG iterations of the last potential solve"),
    "potential_iterations_mean": Quantity("1", "CG iterations per step since the start"),
    "potential_residual": Quantity("1", "relative residual of the last potential solve"),
    "transport_iterations": Quantity("1", "CG iterations of the last Li+ transport solve"),
}


GRAND_POTENTIAL_SCALAR_INFO = {
    "li_drift": Quantity("mol/m^2", "total_li - its initial value - li_inflow: the Li the discrete scheme created "
                                    "(grand_potential: the Newton tolerance of the Li transport step)"),
    "transport_residual": Quantity("1", "largest Li-balance residual times dt of the last transport step, Li per site"),
}


CUTOFF_SCALAR_INFO = {
    "cutoff_held": Quantity("1", "at_cutoff=hold: 0 while the applied current is carried, 1 once the cutoff_voltage "
                                 "is held (constant voltage; cell_current_density then falls)"),
}

LEAKAGE_SCALAR_INFO = {
    "leakage_current_density": Quantity("mA/cm^2", "electronic current through the electrolyte into the counter "
                                                    "electrode (deposits nothing; part of cell_current_density)"),
    "leaked_charge": Quantity("C/cm^2", "time integral of leakage_current_density (passed_charge = deposited_charge "
                                        "+ leaked_charge)"),
}


REACTION_SCALAR_INFO = {
    "kinetic_overpotential": Quantity("V", "surface overpotential phi_s - phi_e - (RT/nF) ln(c/c_ref) over the interface"),
    "concentration_overpotential": Quantity("V", "(RT/nF) ln(c/c_ref) over the interface, plus a binary salt's diffusion "
                                            "potential (2 t+ - 1)(RT/nF) ln(c_bulk/c)"),
    "ohmic_overpotential": Quantity("V", "electrolyte potential phi_e over the interface (counter electrode at 0 V), less the diffusion potential")
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


def live_metal(xi, only_connected: bool, slabs=None):
    """``xi`` with the metal (xi > 1/2) cut off from the electrode set to 0 (``only_connected``: the reaction
    formulation without leakage, where such dead Li takes no part; :func:`electrode_connected`), for the
    height, tip and short-circuit checks; ``xi`` unchanged otherwise."""
    if not only_connected:
        return xi
    return jnp.where((xi > 0.5) & ~electrode_connected(xi, 0.5, slabs), 0.0, xi)


def cutoff_reached(params: Config, state) -> jnp.ndarray:
    """Galvanostatic control reached the ``cutoff_voltage`` (within :data:`CONTROL_MARGIN`): the held current
    could no longer be carried (a step's ``V`` never rests there otherwise: control counts as lost within the
    margin). ``at_cutoff=stop`` ends the run there; ``hold`` keeps ``V`` at the cutoff from then on."""
    return state["voltage"] <= params.cutoff_voltage + CONTROL_MARGIN


def make_diagnostics(grid: Grid, config: Config):
    """``diagnostics(params, carry)``: the scalars of :data:`SCALAR_INFO` (only ``grid`` is fixed here)."""
    h0 = grid.spacing[0]
    x = jnp.asarray(grid.axis_coordinates(0)).reshape((-1,) + (1,) * (grid.ndim - 1))
    neumann = Boundary.uniform(grid.ndim, "neumann")
    electrode_area = float(np.prod(grid.lengths[1:]))
    grand = config.formulation == "grand_potential"
    leaky = config.formulation == "reaction" and config.electronic_conductivity > 0.0

    def diagnostics(params, carry):
        p = Parameters.from_config(params)
        state, history, cache = carry["state"], carry["history"], carry["cache"]
        charge_per_um = params.electrons * FARADAY * params.site_density * MICRON  # C/m^2 per um of Li
        li_per_um = params.reference_concentration * MICRON  # mol/m^2 per (um * c_ref)
        xi, rate = state["xi"], cache["rate"]
        if grand:  # Li+ over c_ref: the electrolyte's share of the sites, (1 - h) c_l (sites / c_ref)
            c = (1.0 - interpolation(xi)) * site_fraction(state["w"], params.electrolyte_site_energy) \
                * electrolyte_sites(params) / params.reference_concentration
        else:
            c = state["c"]
        live = live_metal(xi, config.formulation == "reaction" and not leaky)
        here, ahead = live[:-1], live[1:]
        position, fraction = front_crossings(live, x, h0)
        tip = jnp.argmax(position)
        height = jnp.max(position) - params.electrode_position
        slope = (here - ahead).ravel()[tip] / h0
        tip_rate = (rate[:-1] * (1 - fraction) + rate[1:] * fraction).ravel()[tip]
        # int |grad xi|^2 dV with one face gradient per cell and axis; a flat tanh front gives k/3 per area
        gradient_squared = sum(jnp.sum(face_gradient(xi, grid, neumann, a) ** 2) for a in range(grid.ndim))
        area = 3.0 / p.slope * gradient_squared * grid.cell_volume / electrode_area
        deposited_um = jnp.sum(interpolation(xi)) * grid.cell_volume / electrode_area - state["metal_initial_total"]
        total_li = jnp.sum(li_per_cell(params, state, config.formulation)) * grid.cell_volume / electrode_area
        steps = jnp.maximum(state["step"], 1)
        extra = {}
        if grand:
            # from the step's own total (a state scalar): records between step ends interpolate the state
            # linearly, and the Li of interpolated fields is not the interpolated Li
            extra = {"li_drift": (state["li_total"] - state["li_initial_total"] - state["li_inflow"]) * li_per_um,
                     "transport_residual": cache["transport_residual"]}
        if config.formulation == "reaction":
            # the overpotentials, averaged over the interface with the reaction's weight |grad h|:
            # V = kinetic + concentration + electrolyte (ohmic) exactly
            weight = interpolation_slope(xi) * reaction_weight(xi, grid, p.slope, not leaky)
            total = jnp.maximum(jnp.sum(weight), 1e-300)
            electrolyte = jnp.sum(weight * state["phi"]) / total
            concentration = jnp.sum(weight * jnp.log(jnp.maximum(c, 1e-12))) / total / p.f
            if config.electrolyte == "binary":
                # the diffusion potential (2 t+ - 1)/f ln(c_b / c) is in phi_e; it belongs to the concentration part:
                # a flat steady front then shows (2 (1 - t+) / f) ln(c / c_b) (with c_ref = c_b)
                junction = (2.0 * p.transference - 1.0) * (jnp.log(p.bulk) / p.f - concentration)
                electrolyte, concentration = electrolyte - junction, concentration + junction
            metal = jnp.sum(weight * state["phi_s"]) / total if leaky else state["voltage"]
            extra = {
                "ohmic_overpotential": electrolyte,
                "concentration_overpotential": concentration,
                "kinetic_overpotential": metal - electrolyte - concentration,
            }
            if leaky:
                extra.update(leakage_current_density=current_density_from_si(cache["leakage_current"]),
                             leaked_charge=charge_from_si(state["leaked_charge"]))
            if config.control == "current" and config.at_cutoff == "hold":
                extra["cutoff_held"] = cutoff_reached(params, state).astype(state["voltage"].dtype)
        return {
            **extra,
            "deposited_capacity": charge_from_si(charge_per_um * deposited_um) / 3.6,
            "dendrite_height": height,
            "tip_velocity": jnp.where(jnp.isfinite(height), tip_rate / jnp.maximum(slope, 1e-12), 0.0),
            "interface_area": area,
            "current_density": current_density_from_si(
                charge_per_um * jnp.sum(history["metal_rate"]) * grid.cell_volume / electrode_area),
            "cell_current_density": current_density_from_si(cache["cell_current"]),
            "electrode_potential": state["voltage"],
            "deposited_charge": charge_from_si(charge_per_um * deposited_um),
            "passed_charge": charge_from_si(state["passed_charge"]),
            "total_li": total_li * li_per_um,
            "li_inflow": state["li_inflow"] * li_per_um,
            "c_min": jnp.min(c) * params.reference_concentration,
            "potential_iterations": cache["potential_iterations"].astype(jnp.float64),
            "potential_iterations_mean": state["potential_iterations_total"] / steps,
            "potential_residual": cache["potential_residual"],
            "transport_iterations": cache["transport_iterations"].astype(jnp.float64),
        }

    return diagnostics
