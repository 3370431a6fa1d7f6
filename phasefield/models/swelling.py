"""Alloy-anode swelling: Cahn-Hilliard lithiation of Si or Sn particles in a solid electrolyte, with
chemical eigenstrain, heterogeneous elasticity, J2 plasticity and stack pressure (physics.md 6).

The periodic cell is a stack along x (the first axis): a current collector layer, the composite
electrode (particles in the solid electrolyte), then a solid-electrolyte separator; periodicity
makes it an infinite stack of such layers, laterally infinite as well. A smooth particle indicator
``psi`` (1 in the particles) is fixed in the reference configuration.

Film (``geometry: film``, ``scenario=swelling_film``): the particle phase is a layer of ``film_thickness``
on the collector, electrolyte above it (a soft stand-in for a liquid). Every field depends on x only, so
the zero lateral mean strain holds the film in-plane (y; z by 2D plane strain or 3D) and ``<sigma_xx> = -p``
(0 in a liquid) leaves its normal free: equal biaxial stress, ``sigma = -M e*`` elastically
(``M = E / (1 - nu)``), ``|sigma| = sigma_Y(c)`` in plastic flow, ``mu_el = -Omega (2 sigma / 3)``. Li enters
through the top face only, just inside it (:func:`film_reaction_density`: the diffuse face's own stress is
not the film's). ``mechanics_passes`` > 1 re-equilibrates the plastic flow within the step (with one pass
the film's returned stress carries ``sigma_xx`` of -2/3 of a step's excess over the yield surface, 0.4 GPa
at C/2 and 60 s steps, and ``|sigma_yy|`` overshoots ``sigma_Y`` by 13-24 %; the preset takes 4 passes,
within 1 %). Diagnostics ``film_stress`` and ``film_concentration`` (the film's interior).

Fields: ``c``, the Li fraction of full lithiation (``x / 3.75`` for Li_xSi), meaningful where
``psi > 0``. Lengths in um, time in s, stress in GPa, chemical potential ``mu`` over ``R T``.

Li transport (smoothed-boundary Cahn-Hilliard, Yu, Chen & Thornton 2012)::

    psi dc/dt = div(psi M grad mu) + |grad psi| j,          M = D c (1 - c)
    mu = ln(c / (1 - c)) + chi (1 - 2 c) - (kappa / psi) div(psi grad c) + mu_el
    mu_el = -(1 / (c_max R T)) sigma : d eps*/dc = -sigma_kk beta / (3 (1 + beta c)) / (c_max R T)

The regular-solution free energy phase-separates for ``chi > 2`` (crystalline Si lithiates by a
two-phase front), but only without ``mu_el``: the coherency term ``2 Y (d eps*/dc)^2 / (c_max R T)``
(about 45 at ``c = 1/2``) outweighs ``f'' = -2``, so with the stress coupling Li spreads as one
phase (Cahn's coherent spinodal vanishes at these misfits); ``psi`` in the gradient and mobility terms makes the particle surface no-flux
for diffusion, and ``|grad psi| j`` puts the surface reaction into it. Butler-Volmer kinetics
with the electrode potential ``E`` against Li/Li+ (V) and the open-circuit potential
``U = U0 - mu / f`` (``f = F / (R T)``)::

    j = (i0 / (F c_max)) [exp(alpha a) - exp(-(1 - alpha) a)],   a = f (U0 - E) - mu

(``j > 0`` inserts Li). The applied current fixes ``E`` each step: the total insertion rate
``int |grad psi| j`` is exponential in ``E`` with cell-wise prefactors, a scalar Newton solve.

Mechanics (small strain, the elasticity solver's periodic staggered grid): Lame moduli mix the
particle (``E(c) = E_0 + (E_1 - E_0) c``), the electrolyte and the collector. The stress is mixed
phase by phase (equal strain): only the particle phase swells, by the chemical strain in Hencky measure,
and the plastic strain acts on the cell::

    sigma = psi C_p (eps - e* I - eps_p) + (1 - psi) C_m (eps - eps_p),
    e* = [ln(1 + beta c) - ln(1 + beta c_0)] / 3,   J = V / V_0 = 1 + beta c

which the solver sees as the Voigt moduli ``C = psi C_p + (1 - psi) C_m`` and the cell eigenstrain
``(psi K_p / K) e* I + eps_p`` (:func:`swelling_eigenstrain`). A psi-weighted eigenstrain ``psi e* I`` would
make the diffuse surface a stiff skin that swells too little, and the swelling core would stretch it into
a spurious hoop tension of about 1.2 GPa on an elastic free particle (measured before this form).

and the particles yield (J2, perfectly plastic, ``sigma_Y(c) = Y_0 + (Y_1 - Y_0) c``; the
electrolyte is elastic unless given a yield stress). Stack pressure ``p`` is the mean stress
``<sigma_xx> = -p``; the lateral mean strain is zero (the electrode is held by its neighbours)
and the mean shear stresses vanish.

One step, three module-level sub-steps (each a ``jax.named_call``, so profiles name them):
(1) ``mu`` with the stress of the state (the carry holds the equilibrium of its own ``c``);
(2) :func:`surface_insertion`: the electrode potential that carries the applied current, and the
surface source (point-implicit in the cell's own response); (3) :func:`cahn_hilliard_update`:
explicit fluxes with a positivity limiter and a ``psi``-weighted implicit stabilisation (Zhu, Chen,
Shen & Tikare 1999) ``(psi + dt (D_s k^2 + M_max kappa k^4)) dc = dt [div F + |grad psi| j]`` solved
by :func:`phasefield.operators.krylov.pcg` with a spectral preconditioner; the Li inserted equals the
time integral of the surface reaction to round-off; (4) :func:`mechanics` at the new ``c``
(:func:`phasefield.physics.mechanics.solve_and_return`): one warm-started solve with the current
plastic strain, then one radial return under the macroscopic load (plastic flow lags one step in the
solve unless ``mechanics_passes`` repeats solve and return; the return adds the uniform strain that keeps
``<sigma_xx> = -p``, the zero mean shears and, for ``generalized``, ``<sigma_zz> = 0`` exactly,
:func:`phasefield.physics.mechanics.return_under_load`).

Parameters and structure. The validated :class:`Config` is the parameter pytree: its floats are
leaves (vmapped by batches, differentiable) and every step, init, fields, diagnostics and stop
function reads them from its ``params`` argument (:class:`Parameters` derives the nondimensional
coefficients there). Static (``static=True`` or not a float): the cell ``size`` and ``shape`` (the
grid), the particles and what places them (``particles``, ``random_particles``, ``particle_radius``,
``particle_gap``, ``seed``), ``geometry``, ``film_thickness``, ``interface_thickness``,
``collector_thickness`` and ``separator_thickness``: they build the indicator arrays of :class:`Geometry`
once, at build; and the branches ``control``, ``out_of_plane``, ``stress_coupling``,
``mechanics_max_iterations`` and ``mechanics_passes`` (loop bounds).

The carry (:mod:`phasefield.schemes`):

* ``state``: ``c``; the material's mechanics, ``plastic_strain`` (tensor), its accumulated
  ``equivalent_plastic_strain``, the returned cell ``stress`` (the next step's ``mu`` reads it) and
  the ``particle_stress`` (:func:`particle_stress`, the surface hoop stress reads it);
  ``voltage`` (the electrode potential; the cutoff event reads it); ``inserted`` (time integral
  of the surface reaction); ``step``; ``initial_mean_strain`` (the reference of the swelling
  diagnostic, fixed at t = 0);
* ``history``: what the next step needs besides the state: ``elasticity`` (displacement and mean
  strain of the last solve, the warm start; its ``mean_strain["xx"]`` is the stack thickness),
  ``axial_strain`` (the carried ``eps_zz`` of generalized plane strain), ``change`` and
  ``last_dt`` (the last ``dc`` and step, the scaled warm start of the Cahn-Hilliard solve);
* ``cache``: ``mechanics_iterations`` and ``filter_iterations`` of the last step (diagnostics only).

Fracture (optional, ``fracture: true``; off by default, and then the model is the one above bit for bit). A
damage field ``d`` (0 intact, 1 cracked) of particles and electrolyte, phase-field AT1 (or AT2) with length
``damage_length`` (ell) and the toughness ``G_c`` per phase (J/m^2 at the config surface: Si ``host_toughness``
8.5 -> ``lithiated_toughness`` 6.0, Pharr, Suo & Vlassak, Nano Lett. 13 (2013) 5570; the electrolyte 2.5, a
sulfide glass's K_Ic ~ 0.23 MPa m^1/2, McGrogan et al. 2017, with E ~ 22 GPa; the collector does not crack):

* stiffness: the volumetric-deviatoric (Amor) split on the periodic solver, ``K -> g K`` where the elastic
  trace was tensile in the last solve (a lagged sign set), ``mu -> g mu``, ``g = (1 - d)^2 + k``
  (:func:`phasefield.physics.fracture.split_lame`; the eigenstrain keeps the undegraded moduli);
* driving force: ``H = psi+(eps - eps*_cell - eps_p)`` with the undegraded Voigt moduli (the cell strain of the
  periodic solver after the return), ``psi+`` the spectral split's tensile energy (``fracture_drive: spectral``,
  the default, 2D: no crack under compression alone; Ambati et al. 2015's hybrid with the Amor stiffness) or
  Amor's (``volumetric_deviatoric``: its shear part also drives cracks under compression); one damage solve per step after the mechanics
  (:func:`phasefield.physics.fracture.solve_damage` with a periodic boundary, bounds ``d_prev <= d <= 1``:
  irreversible), the toughness as the normalised drive ``H / G_c(x)`` (:func:`damage_update`). AT1 is elastic
  while ``H <= 3 G_c / (16 ell)`` everywhere, i.e. up to ``sigma_c = sqrt(3 E G_c / (8 ell))`` in uniaxial stress:
  ``ell`` is a strength as much as a length (tested with a shrinking particle against the Eshelby stress);
* transport: ``psi`` on every face is multiplied by ``(1 - d_f)^2``, ``d_f`` the larger damage of the face's
  cells, in the mobility, the gradient term and the stabilisation's correction fluxes: no Li crosses a fully
  cracked face (tested against the steady flux of a ring). The surface reaction ``|grad psi| j`` is left as it
  is: damage at the outer surface does not block insertion, and crack faces add no reaction surface (in a solid
  electrolyte a crack is a gap with no electrolyte in it).

Staggered: one damage solve per time step, no alternate minimisation within a step, so unstable crack growth
spreads over the steps that the adaptive dt takes. With ``fracture_drive: volumetric_deviatoric`` the Amor
split lets deviatoric energy drive damage under compression as well (plastic flow caps it at ``Y^2 / (6 mu)``
per cell). Triaxial tension (the core of a particle whose lithiated shell has flowed outward) is not capped by
J2 flow: with the spectral drive it is where particles of 200 nm radius and more crack
(experiments/swelling_fracture_size.py), those of 100 nm and less staying intact at ell = 25 nm.

What small strain misses here: a Si particle at full lithiation has ``J`` near 4 (the radius grows
59 %). The Hencky measure keeps the eigenstrain finite and symmetric in expansion and contraction
(0.462 instead of the linear 0.587), but the model still works on the reference geometry:
surfaces, normals and the particle/electrolyte interface do not move, rotations are linearised,
and ``c`` is per reference volume. Elastic stresses at these strains are only bounded because
the particles yield; elastic predictions (tens of GPa) are artefacts. The shell-core stress
reversal of a sharp (two-phase) lithiation front is reproduced qualitatively; magnitudes within a
factor of order one of finite-strain models (physics.md 6.3 item 2). docs/finite_strain.md compares this
model's mechanics with the Lame and the finite-strain (neo-Hookean, ``F = F_e J^(1/3)``) solutions of a bonded
and of a core-shell cylinder at J = 1.5 to 4 (experiments/swelling_finite_strain.py,
:mod:`phasefield.analysis.finite_strain`). The solver matches small-strain theory to the diffuse-interface
error, first order in ``w / R`` (15 % in the particle stress at w / R = 0.2). At J = 4 small strain misses
a factor of about 2 in the matrix hoop tension at the interface and in the core tension of a core-shell
particle. Its interface pressure is within -30 to +10 % of the finite-strain value, and ``diffusivity``
and ``exchange_current_density`` act per reference length and area.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, TimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid
from phasefield.operators import (
    SpectralBasis,
    divergence,
    face_average,
    face_gradient,
    gradient,
    laplacian,
    pad_axis,
)
from phasefield.operators.elasticity import (
    hydrostatic_stress,
    isotropic_moduli,
    normal_stress,
    stress_from_strain,
    tensor_components,
    von_mises_stress,
)
from phasefield.operators.krylov import pcg
from phasefield.physics.fracture import (
    MODELS,
    FractureMaterial,
    FractureProblem,
    damage_model,
    degradation,
    solve_damage,
    split_lame,
    spectral_tensile_energy_density,
    tensile_energy_density,
)
from phasefield.physics.mechanics import (
    WarmStart,
    mix_moduli,
    phase_dilatation,
    series_yield_stress,
    solve_and_return,
)
from phasefield.physics.plasticity import add_strains
from phasefield.recompute import recomputed, repeated
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper, unconditionally_stable
from phasefield.simulation import Quantity, Simulation
from phasefield.units import (
    FARADAY,
    GAS_CONSTANT,
    GPA_IN_MPA,
    MICRON,
    MPA,
    SECONDS_PER_HOUR,
    current_density_to_si,
)

GPA = GPA_IN_MPA * MPA  # Pa per GPa: the model's stress unit
INDICATOR_FLOOR = 1e-3  # psi below this is treated as electrolyte in the time derivative (psi dc/dt)
CONCENTRATION_GUARD = 1e-9  # c kept inside (guard, 1 - guard) in the logarithms
AFFINITY_LIMIT = 300.0  # |mu| in the Butler-Volmer exponentials (an overflow guard only)
EXPONENT_LIMIT = 1000.0  # |u - mu| in the cell-wise Butler-Volmer exponentials (overflow guard)
ELASTIC_YIELD = 1e6  # GPa: "no yield"
SHOWN_INDICATOR = 0.01  # c is written where psi exceeds this (elsewhere it is not a Li fraction: 0)
FILTER_TOLERANCE = 1e-10  # relative residual of the stabilised Cahn-Hilliard solve
FILTER_MAX_ITERATIONS = 200
MECHANICS_EPSILONS = 100.0  # float32: the elasticity CG tolerance at least this many epsilons (1.2e-5)
FILTER_EPSILONS = 100.0  # float32: FILTER_TOLERANCE likewise
FILM_INTERIOR = 0.99  # psi above this is the film's interior (its diagnostics)
FILM_REACTION_DEPTH = 1.5  # interface widths between a film's top face and where it reacts (film_reaction_density)
LIMITER_PASSES = 8  # passes of the net-change limiter on the stabilisation's correction (limited_correction)


def concentration_guard(dtype) -> float:
    """:data:`CONCENTRATION_GUARD`, at least the epsilon of ``dtype`` (so that ``1 - guard < 1`` in float32)."""
    return max(CONCENTRATION_GUARD, float(jnp.finfo(dtype).eps))


def exponent_limit(limit: float, dtype) -> float:
    """An overflow guard of float64 exponents, scaled to ``dtype``'s range (``ln max``: 709.8 in float64, 88.7 in
    float32): the same margin below overflow in either precision."""
    return limit * float(np.log(jnp.finfo(dtype).max) / np.log(jnp.finfo(jnp.float64).max))


def smallest(value) -> float:
    """The floor of a denominator that may be zero: 1e-300, or the smallest normal number of a float32 ``value``."""
    return max(1e-300, float(jnp.finfo(jnp.result_type(value)).tiny))
JOULE_PER_M2 = 1e-3  # GPa um per J/m^2: toughness at the config surface in J/m^2


@scenario_parameters
@dataclass
class Config:
    """``scenario=swelling``: alloy-anode lithiation (um, s, V, GPa, MPa, mol/m^3, m^2/s, mA/cm^2)."""

    name: str = option("swelling", help="scenario name")
    size: list[float] = option(lambda: [8.0, 8.0], min=0.0, exclusive=True, static=True,
                               help="cell size per axis in um (x first: the stack direction)")
    shape: list[int] = option(lambda: [128, 128], min=4, help="cells per axis (2 or 3 entries)")
    t_end: float = option(7200.0, min=0.0, exclusive=True,
                          help="simulated time, s (the run stops earlier at final_state_of_charge or cutoff_voltage)")
    control: str = option("c_rate", choices=("c_rate", "current"),
                          help="applied current as a C-rate of the particles or as a current density")
    c_rate: float = option(1.0, min=0.0, exclusive=True, max=1000.0, help="C-rate, 1/h (1: full lithiation in 1 h)")
    current_density: float = option(1.0, min=0.0, exclusive=True, max=1000.0,
                                    help="lithiation current per electrode area, mA/cm^2 (control=current)")
    temperature: float = option(298.15, min=200.0, max=600.0, help="temperature, K")
    # particle material (defaults: crystalline Si to Li_3.75Si; physics.md 2, 6.2)
    volume_expansion: float = option(3.0, min=0.0, exclusive=True, max=10.0,
                                     help="beta of J = V/V0 = 1 + beta c (Si 3.0, Sn 2.6)")
    max_concentration: float = option(3.11e5, min=0.0, exclusive=True,
                                      help="Li per reference volume at c = 1, mol/m^3 (Li_3.75Si: 3.11e5)")
    interaction: float = option(3.0, min=0.0, max=10.0,
                                help="regular-solution chi (> 2: two phases, a lithiation front)")
    gradient_length: float = option(0.04, min=0.0, exclusive=True,
                                    help="sqrt(kappa / (c_max R T)), um: sets the width of the lithiation front")
    diffusivity: float = option(1e-15, min=0.0, exclusive=True, help="Li diffusivity in the particles, m^2/s")
    exchange_current_density: float = option(0.1, min=0.0, exclusive=True,
                                             help="i0 of the particle surface reaction, mA/cm^2")
    transfer_coefficient: float = option(0.5, min=0.0, max=1.0, exclusive=True, help="Butler-Volmer alpha")
    open_circuit_potential: float = option(0.4, min=0.0, max=3.0,
                                           help="U0: open-circuit potential where mu = 0, V vs Li/Li+")
    cutoff_voltage: float = option(0.0, min=-1.0, max=3.0,
                                   help="the run stops when the electrode potential falls to this, V vs Li/Li+")
    final_state_of_charge: float = option(0.95, min=0.0, max=1.0, exclusive=True,
                                          help="lithiation ends at this state of charge (the run stops, or "
                                               "delithiation starts when cycles > 0)")
    cycles: int = option(0, min=0, max=10000,
                         help="lithiation-delithiation cycles at the same C-rate (0: one lithiation; the run "
                              "stops at final_state_of_charge or cutoff_voltage)")
    delithiated_state_of_charge: float = option(0.05, min=0.0, max=1.0, exclusive=True,
                                                help="delithiation ends at this state of charge (cycles > 0)")
    delithiation_cutoff_voltage: float = option(1.0, min=-1.0, max=5.0,
                                                help="delithiation ends when the electrode potential rises to "
                                                     "this, V vs Li/Li+ (cycles > 0)")
    initial_fraction: float = option(0.01, min=0.0, max=0.5, exclusive=True, help="initial c in the particles")
    host_modulus: float = option(130.0, min=0.0, exclusive=True, help="Young's modulus at c = 0, GPa")
    lithiated_modulus: float = option(40.0, min=0.0, exclusive=True, help="Young's modulus at c = 1, GPa")
    particle_poisson: float = option(0.22, min=-0.99, max=0.49, help="Poisson's ratio of the particles")
    host_yield_stress: float = option(2.0, min=0.0, help="yield stress at c = 0, GPa (0: elastic particles)")
    lithiated_yield_stress: float = option(0.5, min=0.0, help="yield stress at c = 1, GPa")
    # geometry: static, it builds the particle and collector indicator arrays once, at build
    geometry: str = option("particles", choices=("particles", "film"),
                           help="particles in a composite electrode, or a film on the collector (the particle phase "
                                "as a layer of film_thickness, electrolyte above it; particles are then ignored)")
    film_thickness: float = option(0.25, min=0.0, exclusive=True, static=True,
                                   help="thickness of the film (geometry=film) on the collector, um")
    particles: list[list[float]] = option(list, help="particles [x, y, radius] (2D) or [x, y, z, radius] (3D), um")
    random_particles: int = option(3, min=0, help="particles placed at random (non-overlapping) in the electrode layer")
    particle_radius: float = option(1.0, min=0.0, exclusive=True, static=True,
                                    help="radius of the random particles, um")
    particle_gap: float = option(0.3, min=0.0, static=True,
                                 help="smallest surface-to-surface gap of random particles, um")
    seed: int = option(0, min=0, help="seed of the random particle positions")
    interface_thickness: float = option(0.12, min=0.0, exclusive=True, static=True,
                                        help="width of the smooth particle surface, psi = (1 - tanh(2 d / w)) / 2, um")
    collector_thickness: float = option(0.5, min=0.0, static=True,
                                        help="current-collector layer at the low-x end, um (0: none)")
    separator_thickness: float = option(1.0, min=0.0, static=True,
                                        help="electrolyte separator layer at the high-x end, um")
    # solid electrolyte and collector (defaults: Li6PS5Cl and Cu)
    electrolyte_modulus: float = option(22.0, min=0.0, exclusive=True, help="Young's modulus, GPa (LPSC 22, LLZO 150)")
    electrolyte_poisson: float = option(0.3, min=-0.99, max=0.49, help="Poisson's ratio (LPSC 0.3, LLZO 0.257)")
    electrolyte_yield_stress: float = option(0.0, min=0.0, help="J2 yield stress of the electrolyte, GPa (0: elastic)")
    collector_modulus: float = option(117.0, min=0.0, exclusive=True, help="Young's modulus of the collector, GPa")
    collector_poisson: float = option(0.34, min=-0.99, max=0.49, help="Poisson's ratio of the collector")
    stack_pressure: float = option(10.0, min=0.0, max=1000.0, help="stack pressure, MPa (mean sigma_xx = -p)")
    out_of_plane: str = option("plane_strain", choices=("plane_strain", "generalized"),
                               help="2D only: total eps_zz = 0 (the electrode is held along z as along y; "
                                    "particles are long fibres) or uniform with mean sigma_zz = 0 (free fibres)")
    stress_coupling: bool = option(True, help="hydrostatic stress in the chemical potential (mu_el)")
    mechanics_tolerance: float = option(1e-6, min=0.0, exclusive=True, help="elasticity CG relative residual")
    mechanics_max_iterations: int = option(400, min=1, help="elasticity CG iterations per step")
    mechanics_passes: int = option(1, min=1, max=50,
                                   help="solve-and-return passes per step: 1 lets the plastic flow lag the "
                                        "equilibrium by a step; each further pass re-solves with the returned "
                                        "plastic strain and returns again")
    # fracture (off by default): damage d of particles and electrolyte, module notes
    fracture: bool = option(False, help="phase-field fracture: damage d degrades the tensile stiffness and the "
                                        "Li transport across cracked faces")
    fracture_model: str = option("AT1", choices=MODELS, help="AT1 (elastic up to a strength) or AT2")
    fracture_drive: str = option("spectral", choices=("spectral", "volumetric_deviatoric"),
                                 help="the damage's driving force: the spectral tensile energy (2D; compression "
                                      "alone drives no crack) or Amor's (shear drives it under compression too)")
    host_toughness: float = option(8.5, min=0.0, exclusive=True,
                                   help="fracture energy G_c of the particle at c = 0, J/m^2 (Si; Pharr, Suo & "
                                        "Vlassak 2013: 8.5 +- 4.3 at Li0.7Si)")
    lithiated_toughness: float = option(6.0, min=0.0, exclusive=True,
                                        help="G_c of the particle at c = 1, J/m^2 (5.4-6.9 at Li2.8Si, Pharr 2013)")
    electrolyte_toughness: float = option(2.5, min=0.0, exclusive=True,
                                          help="G_c of the solid electrolyte, J/m^2 (sulfide glass K_Ic ~ 0.23 "
                                               "MPa m^1/2, McGrogan et al. 2017, with E ~ 22 GPa: ~2.4)")
    damage_length: float = option(0.1, min=0.0, exclusive=True,
                                  help="phase-field length ell, um (>= one cell; also a strength: AT1 "
                                       "sigma_c = sqrt(3 E G_c / (8 ell)))")
    damage_residual: float = option(1e-4, min=0.0, exclusive=True, max=0.1,
                                    help="residual stiffness k of g(d) = (1 - d)^2 + k")

    def check(self, prefix: str):
        ndim = len(self.shape)
        if ndim not in (2, 3) or len(self.size) != ndim:
            raise ConfigError(f"{prefix}.shape", self.shape, f"2 or 3 cell counts, one per entry of size = {self.size}")
        spacing = min(s / n for s, n in zip(self.size, self.shape))
        if self.interface_thickness < 1.5 * spacing:
            raise ConfigError(f"{prefix}.interface_thickness", self.interface_thickness,
                              f">= 1.5 cells = {1.5 * spacing:.4g} um (the particle surface must be resolved)")
        if self.gradient_length < 0.5 * spacing:
            raise ConfigError(f"{prefix}.gradient_length", self.gradient_length,
                              f">= half a cell = {0.5 * spacing:.4g} um (the lithiation front must be resolved)")
        if self.geometry == "film":
            self.check_film(prefix)
        elif self.electrode_thickness <= 0:
            raise ConfigError(f"{prefix}.separator_thickness", self.separator_thickness,
                              f"< size[0] - collector_thickness = {self.size[0] - self.collector_thickness:g} um "
                              "(the electrode layer needs room)")
        if self.cycles and self.delithiated_state_of_charge >= self.final_state_of_charge:
            raise ConfigError(f"{prefix}.delithiated_state_of_charge", self.delithiated_state_of_charge,
                              f"< final_state_of_charge = {self.final_state_of_charge:g} (cycles > 0)")
        if self.cycles and self.delithiation_cutoff_voltage <= self.cutoff_voltage:
            raise ConfigError(f"{prefix}.delithiation_cutoff_voltage", self.delithiation_cutoff_voltage,
                              f"> cutoff_voltage = {self.cutoff_voltage:g} V (cycles > 0)")
        if 0 < self.host_yield_stress and self.lithiated_yield_stress <= 0:
            raise ConfigError(f"{prefix}.lithiated_yield_stress", self.lithiated_yield_stress,
                              "> 0 when host_yield_stress > 0 (or both 0: elastic particles)")
        if self.geometry == "film":
            return
        low, high = self.collector_thickness, self.collector_thickness + self.electrode_thickness
        for i, particle in enumerate(self.particles):
            if len(particle) != ndim + 1 or particle[-1] <= 0:
                raise ConfigError(f"{prefix}.particles[{i}]", particle,
                                  f"[{'x, y' if ndim == 2 else 'x, y, z'}, radius > 0] in um")
            if particle[0] - particle[-1] < low or particle[0] + particle[-1] > high:
                raise ConfigError(f"{prefix}.particles[{i}]", particle,
                                  f"a particle inside the electrode layer, {low:g} <= x -+ radius <= {high:g} um")
        if self.random_particles and 2 * self.particle_radius > self.electrode_thickness:
            raise ConfigError(f"{prefix}.particle_radius", self.particle_radius,
                              f"<= half the electrode thickness, {self.electrode_thickness / 2:g} um")
        if self.fracture and ndim == 3 and self.fracture_drive == "spectral":
            raise ConfigError(f"{prefix}.fracture_drive", self.fracture_drive,
                              "volumetric_deviatoric in 3D (the spectral split is 2D plane strain here)")
        if self.fracture and self.damage_length < spacing:
            raise ConfigError(f"{prefix}.damage_length", self.damage_length,
                              f">= one cell = {spacing:.4g} um (the damage profile must be resolved; fracture)")
        if not self.particles and not self.random_particles:
            raise ConfigError(f"{prefix}.random_particles", 0, ">= 1 when no particles are given")

    def check_film(self, prefix: str):
        """A film needs a collector under it, an interior (psi near 1) and electrolyte above it, each some
        interface widths thick, so that its two faces and its periodic image stay apart."""
        width = self.interface_thickness
        if self.collector_thickness < width:
            raise ConfigError(f"{prefix}.collector_thickness", self.collector_thickness,
                              f">= interface_thickness = {width:g} um (geometry=film: the film is bonded to it)")
        if self.film_thickness < 4 * width:
            raise ConfigError(f"{prefix}.film_thickness", self.film_thickness,
                              f">= 4 interface widths = {4 * width:g} um (the film needs an interior)")
        room = self.size[0] - self.collector_thickness - self.film_thickness
        if room < 2 * width:
            room_left = self.size[0] - self.collector_thickness - 2 * width
            raise ConfigError(f"{prefix}.film_thickness", self.film_thickness,
                              f"<= size[0] - collector_thickness - 2 interface widths = {room_left:g} um "
                              "(electrolyte above the film)")

    @property
    def electrode_thickness(self) -> float:
        """The electrode layer, um: the film, or the cell less the collector and the separator."""
        if self.geometry == "film":
            return self.film_thickness
        return self.size[0] - self.collector_thickness - self.separator_thickness


class Parameters(NamedTuple):
    """Nondimensional coefficients (um, s, GPa; chemical potential over R T; c over c_max), computed from
    the parameter pytree inside the step (jnp arithmetic: traced, vmapped, differentiable)."""

    diffusivity: jax.Array  # um^2/s
    kappa: jax.Array  # gradient coefficient over c_max R T, um^2
    chi: jax.Array
    beta: jax.Array
    f: jax.Array  # F / (R T), 1/V
    alpha: jax.Array
    reaction_speed: jax.Array  # i0 / (F c_max), um/s
    elastic_coupling: jax.Array  # 1 GPa / (c_max R T)
    c_initial: jax.Array
    open_circuit_potential: jax.Array  # V vs Li/Li+

    @classmethod
    def from_config(cls, params: Config) -> "Parameters":
        rt = GAS_CONSTANT * params.temperature
        return cls(
            diffusivity=params.diffusivity / MICRON**2,
            kappa=params.gradient_length**2,
            chi=params.interaction,
            beta=params.volume_expansion,
            f=FARADAY / rt,
            alpha=params.transfer_coefficient,
            reaction_speed=current_density_to_si(params.exchange_current_density)
            / (FARADAY * params.max_concentration) / MICRON,
            elastic_coupling=GPA / (params.max_concentration * rt),
            c_initial=params.initial_fraction,
            open_circuit_potential=params.open_circuit_potential,
        )


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), tuple(s / n for s, n in zip(config.size, config.shape)))


def particle_list(grid: Grid, config: Config) -> list[list[float]]:
    """The given particles plus ``random_particles`` placed by ``seed`` in the electrode layer, no closer
    than ``particle_gap`` to each other (periodic in the transverse axes) or to the layer's faces."""
    rng = np.random.default_rng(config.seed)
    placed = [list(p) for p in config.particles]
    low = config.collector_thickness + config.particle_radius
    high = config.collector_thickness + config.electrode_thickness - config.particle_radius
    for _ in range(config.random_particles):
        for _attempt in range(2000):
            centre = [rng.uniform(low, high)] + [rng.uniform(0, grid.lengths[a]) for a in range(1, grid.ndim)]
            if all(_periodic_distance(centre, p[:-1], grid.lengths)
                   >= config.particle_radius + p[-1] + config.particle_gap for p in placed):
                placed.append(centre + [config.particle_radius])
                break
        else:
            raise ConfigError("scenario.random_particles", config.random_particles,
                              f"at most {len(placed)} particles of radius {config.particle_radius:g} um fit this "
                              "electrode layer with the requested gap")
    return placed


def _periodic_distance(a, b, lengths) -> float:
    deltas = [abs(x - y) for x, y in zip(a, b)]
    deltas = [d if axis == 0 else min(d, lengths[axis] - d) for axis, d in enumerate(deltas)]
    return float(np.sqrt(sum(d * d for d in deltas)))


def particle_indicator(grid: Grid, config: Config, particles) -> np.ndarray:
    """``psi = (1 - tanh(2 d / w)) / 2`` of the signed distance ``d`` to the nearest particle surface
    (periodic images included), ``w`` the interface thickness."""
    coords = np.broadcast_arrays(*grid.coordinates())
    distance = np.full(grid.shape, np.inf)
    for *centre, radius in particles:
        r2 = np.zeros(grid.shape)
        for axis, value in enumerate(centre):
            delta = np.abs(coords[axis] - value)
            delta = np.minimum(delta, grid.lengths[axis] - delta)
            r2 = r2 + delta**2
        distance = np.minimum(distance, np.sqrt(r2) - radius)
    return 0.5 * (1.0 - np.tanh(2.0 * distance / config.interface_thickness))


def film_indicator(grid: Grid, config: Config) -> np.ndarray:
    """``psi = (1 - tanh(2 d / w)) / 2`` of the signed distance ``d`` to the film layer
    ``a <= x <= a + h`` (``a`` the collector thickness, ``h`` the film thickness; periodic images
    included), ``w`` the interface thickness."""
    x = np.broadcast_to(grid.coordinates()[0], grid.shape)
    low, high, length = config.collector_thickness, config.collector_thickness + config.film_thickness, grid.lengths[0]
    distance = np.min([np.maximum(low + shift - x, x - high - shift) for shift in (-length, 0.0, length)], axis=0)
    return 0.5 * (1.0 - np.tanh(2.0 * distance / config.interface_thickness))


def film_reaction_density(grid: Grid, config: Config) -> np.ndarray:
    """Where a film takes its Li (1/um, unit integral per unit area): the top face's ``-dpsi/dx``,
    ``sech^2(2 (x - x_r) / w) / w``, moved into the film by ``FILM_REACTION_DEPTH`` interface widths,
    ``x_r = a + h - 1.5 w`` (psi = 0.9975 there). The bottom face is bonded to the collector and takes none.

    Why inside: in the diffuse face the equal-strain mix with the soft electrolyte and the series yield
    stress (``Y_p / psi``) leave the cells elastic well past the film's yield stress (-4.9 GPa at
    psi = 0.3 against the film's -1.5 GPa, measured at c = 0.26), and the reaction would read that
    stress, not the film's (measured with the reaction on the face: the electrode potential up to 45 mV off the
    film's equilibrium potential, the coupling of test_swelling_film 0.89-1.30 times ``(2/3) Omega / F``).
    """
    x = np.broadcast_to(grid.coordinates()[0], grid.shape)
    width = config.interface_thickness
    centre = config.collector_thickness + config.film_thickness - FILM_REACTION_DEPTH * width
    offset = np.abs(x - centre)
    offset = np.minimum(offset, grid.lengths[0] - offset)
    return 1.0 / (width * np.cosh(2.0 * offset / width) ** 2)


def collector_indicator(grid: Grid, config: Config) -> np.ndarray:
    """1 in the current-collector layer ``0 <= x < collector_thickness``, smoothed like ``psi``."""
    if config.collector_thickness <= 0:
        return np.zeros(grid.shape)
    x = np.broadcast_to(grid.coordinates()[0], grid.shape)
    # signed distance to the layer (> 0 inside); the periodic image of x = 0 is x = L
    inside = np.maximum(np.minimum(x, config.collector_thickness - x), x - grid.lengths[0])
    return 0.5 * (1.0 + np.tanh(2.0 * inside / config.interface_thickness))


class Geometry(NamedTuple):
    """The fixed arrays of a cell, built once from the static geometry options (reference configuration).

    psi: particle indicator (1 in the particles); psi_weight: ``max(psi, INDICATOR_FLOOR)``, the weight
    of the time derivative; psi_faces: per axis, psi on each cell's low face (the smaller of its two
    cells); surface: the reacting surface density, ``|grad psi|`` (a film: :func:`film_reaction_density`; 1/um);
    collector: collector indicator; matrix: electrolyte indicator ``(1 - psi)(1 - collector)``; normal:
    ``grad psi / |grad psi|`` (inward); masks of the diagnostics; particle_volume ``int psi`` and
    electrode_area (um^3, um^2); reference_weight: the ``psi_0`` of the Cahn-Hilliard preconditioner.
    """

    psi: jax.Array
    psi_weight: jax.Array
    psi_faces: tuple
    surface: jax.Array
    collector: jax.Array
    matrix: jax.Array
    normal: tuple
    in_particles: jax.Array
    in_electrolyte: jax.Array
    interface_band: jax.Array
    surface_band: jax.Array
    particle_volume: float
    electrode_area: float
    reference_weight: float


def make_geometry(grid: Grid, config: Config, dtype=jnp.float64) -> Geometry:
    """The arrays of :class:`Geometry` from the static options (particles, layers, interface width), in ``dtype``."""
    ndim = grid.ndim
    periodic = Boundary.uniform(ndim, "periodic")
    film = config.geometry == "film"
    psi_np = film_indicator(grid, config) if film else particle_indicator(grid, config, particle_list(grid, config))
    psi = jnp.asarray(psi_np, dtype)
    # psi on a face is the smaller of its two cells: psi_face / psi_cell <= 1, so no cell of the
    # particle's tanh tail diffuses faster than the bulk (the explicit terms' stability bound)
    psi_faces = tuple(face_minimum(psi, periodic, a) for a in range(ndim))
    surface = jnp.sqrt(sum(g * g for g in gradient(psi, grid, periodic)))
    reacting = jnp.asarray(film_reaction_density(grid, config), dtype) if film else surface
    collector = jnp.asarray(collector_indicator(grid, config), dtype)
    return Geometry(
        psi=psi,
        psi_weight=jnp.maximum(psi, INDICATOR_FLOOR),
        psi_faces=psi_faces,
        surface=reacting,
        collector=collector,
        matrix=(1.0 - psi) * (1.0 - collector),
        normal=tuple(g / jnp.maximum(surface, 1e-12) for g in gradient(psi, grid, periodic)),  # outward: -grad psi
        in_particles=psi > 0.5,
        in_electrolyte=(psi < 0.5) & (collector < 0.5),
        interface_band=(psi > 0.25) & (psi < 0.75),
        surface_band=(psi > 0.75) & (psi < 0.95),  # the particle side of its surface
        particle_volume=float(np.sum(psi_np)) * grid.cell_volume,
        electrode_area=float(np.prod(grid.lengths[1:])),
        reference_weight=float(np.sqrt(max(INDICATOR_FLOOR, float(np.min(psi_np))) * float(np.max(psi_np)))),
    )



def regular_solution_potential(c, chi):
    """``df/dc / (R T c_max) = ln(c / (1 - c)) + chi (1 - 2 c)`` (regular solution)."""
    guard = concentration_guard(c.dtype)
    c = jnp.clip(c, guard, 1.0 - guard)
    return jnp.log(c / (1.0 - c)) + chi * (1.0 - 2.0 * c)


def hencky_eigenstrain(c, beta, c_reference):
    """``(ln(1 + beta c) - ln(1 + beta c_ref)) / 3``: the dilatational eigenstrain of the volume ratio."""
    return (jnp.log1p(beta * c) - jnp.log1p(beta * c_reference)) / 3.0


def insertion_potential(weights_forward, weights_backward, target, alpha):
    """Solve ``A e^{alpha u} - B e^{-(1 - alpha) u} = T`` for ``u = f (U0 - E)`` (Newton in ``u``).

    ``A = sum w j0 e^{-alpha mu}``, ``B = sum w j0 e^{(1-alpha) mu}`` (both > 0); the left side
    increases monotonically, so Newton from the larger of the Tafel estimates converges.
    """
    a, b = weights_forward, weights_backward
    tiny = smallest(target)
    u_tafel = jnp.where(target > 0, jnp.log(jnp.maximum(target, tiny) / a) / alpha,
                        -jnp.log(jnp.maximum(-target, tiny) / b) / (1.0 - alpha))
    u_linear = target / (a * alpha + b * (1.0 - alpha))
    u = jnp.where(jnp.abs(u_linear) < 1.0, u_linear, u_tafel)

    def newton(_, u):
        forward, backward = a * jnp.exp(alpha * u), b * jnp.exp(-(1.0 - alpha) * u)
        return u - (forward - backward - target) / (alpha * forward + (1.0 - alpha) * backward)

    # body under jax.checkpoint: reverse mode keeps u per iteration, no more
    return jax.lax.fori_loop(0, 40, jax.checkpoint(newton, prevent_cse=False), u)


def face_minimum(u, boundary: Boundary, axis: int):
    """The smaller of the two cell values on each of the ``n + 1`` faces normal to ``axis``."""
    padded = pad_axis(u, boundary, axis)
    count = padded.shape[axis]
    return jnp.minimum(jax.lax.slice_in_dim(padded, 0, count - 1, axis=axis),
                       jax.lax.slice_in_dim(padded, 1, count, axis=axis))


# ----------------------------------------------------------------------------- derived parameters


def insertion_rate(params: Config, geometry: Geometry):
    """The applied current as the insertion rate ``d(int psi c)/dt``, um^3/s (``control`` is static)."""
    if params.control == "c_rate":
        return params.c_rate / SECONDS_PER_HOUR * geometry.particle_volume
    return (current_density_to_si(params.current_density) / (FARADAY * params.max_concentration) / MICRON
            * geometry.electrode_area)


def elastic_curvature(params: Config, p: Parameters):
    """``Y (beta/3)^2 / (c_max R T)``: the coherency stiffness of the stiffest phase in RT units (Cahn
    1961: ``Y eps'^2``), ``Y = E / (1 - nu)``; 0 without the stress coupling. It sizes the
    stabilisation and the point-implicit damping of the surface source."""
    if not params.stress_coupling:
        return 0.0
    stiffest = jnp.maximum(params.host_modulus / (1 - params.particle_poisson),
                           params.electrolyte_modulus / (1 - params.electrolyte_poisson))
    return stiffest * (p.beta / 3.0) ** 2 * p.elastic_coupling


def stabilization_coefficients(params: Config, p: Parameters):
    """``(D_s, M_max kappa)`` of the stabilisation ``L = D_s k^2 + M_max kappa k^4``, with
    ``D_s = D (1 + Y eps'^2 / 4)`` and ``M_max = D / 4``."""
    return p.diffusivity * (1.0 + 0.25 * elastic_curvature(params, p)), 0.25 * p.diffusivity * p.kappa


def stabilization_symbol(params: Config, p: Parameters, k2):
    """``L = D_s k^2 + M_max kappa k^4`` (:func:`stabilization_coefficients`; ``k2``: the stencil's
    ``-laplacian`` symbol)."""
    diffusive, hyper = stabilization_coefficients(params, p)
    return diffusive * k2 + hyper * k2 * k2


def particle_moduli(params: Config):
    """Lame pairs (GPa) of the phases in the order of :func:`moduli`' weights."""
    return [isotropic_moduli(params.host_modulus, params.particle_poisson),
            isotropic_moduli(params.lithiated_modulus, params.particle_poisson),
            isotropic_moduli(params.electrolyte_modulus, params.electrolyte_poisson),
            isotropic_moduli(params.collector_modulus, params.collector_poisson)]


def moduli(c, params: Config, geometry: Geometry):
    """Lame fields (GPa): the Voigt mix of host particle ``psi (1 - c)``, lithiated particle ``psi c``,
    electrolyte ``(1 - psi)(1 - collector)`` and collector ``(1 - psi) collector``."""
    lithiated = jnp.clip(c, 0.0, 1.0)
    psi = geometry.psi
    weights = [psi * (1 - lithiated), psi * lithiated, geometry.matrix, (1 - psi) * geometry.collector]
    return mix_moduli(weights, particle_moduli(params))


def yield_stress(c, params: Config, geometry: Geometry):
    """Series mix ``1/Y = psi/Y_p + (1 - psi)/Y_m`` (GPa), ``Y_p = Y_0 + (Y_1 - Y_0) c``: an elastic matrix
    leaves interface cells at ``Y_p / psi``. A zero yield stress (host particle, electrolyte) means
    elastic (``ELASTIC_YIELD``), chosen with ``jnp.where`` so the values may be traced."""
    lithiated = jnp.clip(c, 0.0, 1.0)
    particles_yield = params.host_yield_stress > 0
    electrolyte_yield = jnp.where(params.electrolyte_yield_stress > 0, params.electrolyte_yield_stress, ELASTIC_YIELD)
    particle = params.host_yield_stress + (params.lithiated_yield_stress - params.host_yield_stress) * lithiated
    particle = jnp.where(particles_yield, particle, 1.0)  # no 0/0 in the branch not taken
    return jnp.where(particles_yield, series_yield_stress(geometry.psi, particle, electrolyte_yield), ELASTIC_YIELD)


def macroscopic_load(params: Config, ndim: int):
    """``(mean_strain, mean_stress)``: ``<sigma_xx> = -p`` (GPa), zero mean shear stresses, zero lateral mean
    strains (2D plane strain: the in-plane ``yy``; 3D: ``yy`` and ``zz``)."""
    components = tensor_components(ndim)
    pressure = params.stack_pressure / GPA_IN_MPA
    mean_stress = {"xx": -pressure, **{n: 0.0 for n in components if n[0] != n[1]}}
    mean_strain = {n: 0.0 for n in components if n[0] == n[1] and n != "xx" and (ndim == 3 or n != "zz")}
    return mean_strain, mean_stress


# ----------------------------------------------------------------------------- the sub-steps


def chemical_potential(c, stress, p: Parameters, geometry: Geometry, grid: Grid, stress_coupling: bool, crack=None):
    """``mu = ln(c/(1-c)) + chi (1 - 2c) - (kappa/psi) div(psi grad c) + mu_el`` over R T, with
    ``mu_el = -sigma_kk beta / (3 (1 + beta c)) / (c_max R T)`` only with the stress coupling.

    ``stress`` is the cell stress: in the particles' interior it is the particle phase's; in the diffuse
    surface the equal-strain mix hands the particle phase the matrix's strain, and its own stress there
    (tens of GPa where psi -> 0, which a sharp interface does not have) would block the insertion that
    ``|grad psi|`` spreads into those cells. ``crack``: the face weights of :func:`crack_weights` (fracture),
    which multiply ``psi`` on the faces (a crack is a free surface, like the particle's)."""
    periodic = Boundary.uniform(grid.ndim, "periodic")
    faces = transport_faces(geometry, crack)
    gradient_term = divergence([faces[a] * face_gradient(c, grid, periodic, a) for a in range(grid.ndim)], grid)
    mu = regular_solution_potential(c, p.chi) - p.kappa * gradient_term / geometry.psi_weight
    if stress_coupling:
        trace = stress["xx"] + stress["yy"] + stress["zz"]
        mu = mu - p.elastic_coupling * trace * p.beta / (3.0 * (1.0 + p.beta * jnp.clip(c, 0.0, 1.0)))
    return mu


def local_stiffness(c, p: Parameters, grid: Grid, curvature):
    """``dmu/dc`` of a cell's own change: regular solution (convex part), gradient self-term and the
    coherent elastic term ``Y (d eps*/dc)^2 / (c_max R T)`` (shape independent for a dilatation;
    ``curvature``: :func:`elastic_curvature`)."""
    guard = concentration_guard(c.dtype)
    c = jnp.clip(c, guard, 1.0 - guard)
    chemical = jnp.maximum(1.0 / (c * (1.0 - c)) - 2.0 * p.chi, 0.0)
    return chemical + 2.0 * p.kappa * sum(1.0 / h**2 for h in grid.spacing) + curvature / (1 + p.beta * c) ** 2


def exchange_factor(c, alpha):
    """``c^(1 - alpha) (1 - c)^alpha / (1/2)``: the concentration dependence of the exchange current,
    1 at ``c = 1/2`` (``exchange_current_density`` is ``i0`` there) and 0 at ``c = 0`` and ``c = 1``."""
    c = jnp.clip(c, 0.0, 1.0)
    return 2.0 * c ** (1.0 - alpha) * (1.0 - c) ** alpha


def fill_to_capacity(share, total, capacity, steps: int = 64):
    """Scale the positive ``share`` by one factor ``s`` and cap each cell at ``capacity``:
    ``sum min(s share, capacity) = total`` for the positive part (the negative cells are kept, floored
    by ``-capacity``), found by bisection in ``log s`` and closed exactly by rescaling the cells below
    their cap. When the caps cannot hold ``total`` the cells are filled to their caps and the rest is
    returned as ``overflow`` (to be placed elsewhere). Returns ``(filled, overflow)``."""
    negative = jnp.maximum(jnp.minimum(share, 0.0), -capacity)
    positive = jnp.maximum(share, 0.0)
    wanted = total - jnp.sum(negative)
    held = jnp.sum(jnp.where(positive > 0, capacity, 0.0))

    def placed(log_s):
        return jnp.sum(jnp.minimum(jnp.exp(log_s) * positive, capacity))

    def bisect(_, bracket):
        low, high = bracket
        middle = 0.5 * (low + high)
        below = placed(middle) < wanted
        return jnp.where(below, middle, low), jnp.where(below, high, middle)

    ratio = jnp.where(positive > 0, capacity / jnp.where(positive > 0, positive, 1.0), jnp.inf)
    tiny = smallest(positive)
    high = jnp.log(jnp.maximum(jnp.max(jnp.where(positive > 0, ratio, 0.0)), tiny)) + 1.0
    low = jnp.minimum(jnp.log(jnp.maximum(wanted, tiny) / jnp.maximum(jnp.sum(positive), tiny)), high) - 1.0
    # body under jax.checkpoint: reverse mode keeps the bracket per iteration, not a field per iteration
    _, log_s = jax.lax.fori_loop(0, steps, jax.checkpoint(bisect, prevent_cse=False), (low, high))
    filled = jnp.minimum(jnp.exp(log_s) * positive, capacity)
    free = filled < capacity
    room = wanted - jnp.sum(jnp.where(free, 0.0, filled))
    free_sum = jnp.sum(jnp.where(free, filled, 0.0))
    scale = jnp.where((free_sum > 0) & (wanted < held), room / jnp.where(free_sum > 0, free_sum, 1.0), 1.0)
    filled = jnp.where(free, filled * scale, filled)
    overflow = jnp.where(wanted < held, 0.0, wanted - jnp.sum(filled))
    return negative + filled, overflow


@jax.named_call
def surface_insertion(mu, c, dt, rate, p: Parameters, geometry: Geometry, grid: Grid, curvature):
    """Electrode potential (V) carrying the insertion ``rate`` (um^3/s), and the insertion source
    ``|grad psi| j`` (1/s, c per time per unit psi), Butler-Volmer with the exchange current
    ``i0(c) = i0 c^(1-alpha) (1-c)^alpha / (1/2)`` (:func:`exchange_factor`)::

        j = k0 g(c) [exp(alpha (u - mu)) - exp(-(1 - alpha)(u - mu))],   u = f (U0 - E),   int |grad psi| j = rate

    (``u`` by :func:`insertion_potential`). The source is point-implicit: each cell's share is damped
    by ``1 + dt dS/dc / psi``, with ``dS/dc = |grad psi| |dj/dmu| dmu/dc``, then all shares are
    scaled to the applied total. Explicitly, a cell whose Li raises its own chemical potential (by
    GPa of coherency stress near the surface) would overshoot at the steps the front allows.
    Bounds: no cell takes more than half its room ``psi (1 - c)`` (or gives more than half its Li)
    in one step (:func:`fill_to_capacity`); Li the surface cannot take (a saturated surface, where the
    potential plunges to the cutoff) goes to the particle cells in proportion to their room, and on
    extraction (``rate < 0``) Li the surface cannot give comes from them in proportion to their Li. The
    total is the applied rate exactly. ``mu`` is clipped at ``AFFINITY_LIMIT`` only against overflow.
    """
    surface, volume = geometry.surface, grid.cell_volume
    affinity_limit = exponent_limit(AFFINITY_LIMIT, mu.dtype)
    mu_s = jnp.clip(mu, -affinity_limit, affinity_limit)
    exchange = surface * p.reaction_speed * exchange_factor(c, p.alpha)
    weight = exchange * volume
    forward = jnp.sum(weight * jnp.exp(-p.alpha * mu_s))
    backward = jnp.sum(weight * jnp.exp((1 - p.alpha) * mu_s))
    u = insertion_potential(forward, backward, rate, p.alpha)
    limit = exponent_limit(EXPONENT_LIMIT, mu.dtype)
    affinity = jnp.clip(u - mu_s, -limit, limit)  # a saturated surface sends u to hundreds
    cathodic, anodic = jnp.exp(p.alpha * affinity), jnp.exp(-(1 - p.alpha) * affinity)
    source = exchange * (cathodic - anodic)
    slope = exchange * (p.alpha * cathodic + (1 - p.alpha) * anodic) * local_stiffness(c, p, grid, curvature)
    damped = source / (1.0 + dt * slope / geometry.psi_weight)
    total = rate / volume  # the applied rate, whatever the exponentials did
    cl = jnp.clip(c, 0.0, 1.0)
    capacity = 0.5 * geometry.psi_weight * jnp.where(source > 0, 1.0 - cl, cl) / dt
    direction = jnp.where(rate < 0, -1.0, 1.0)  # fill_to_capacity places a positive total
    placed, overflow = fill_to_capacity(direction * damped, direction * total, capacity)
    room = geometry.psi_weight * jnp.where(direction > 0, 1.0 - cl, cl) - dt * jnp.maximum(placed, 0.0)
    room = jnp.where(geometry.psi > SHOWN_INDICATOR, jnp.maximum(room, 0.0), 0.0)
    placed = direction * (placed + overflow * room / jnp.maximum(jnp.sum(room), smallest(room)))
    return p.open_circuit_potential - u / p.f, placed


def bounded_divergence(fluxes, c, dt, geometry: Geometry, grid: Grid, source=0.0, bounded=None):
    """``-div F`` of the Li fluxes ``F_a`` on each cell's low face, each scaled down where, over ``dt``, it
    would take more Li from its upwind cell than ``psi c`` or bring more into its downwind cell than
    ``psi (1 - c)``, less what the cell's ``source`` (per time, per unit psi) takes or gives over ``dt``
    (a conservative positivity limiter, Zalesak's in one pass: the stress-driven drift across the
    particle surface, GPa over a few cells, is far faster than diffusion). With ``0 <= c + dt source /
    psi <= 1`` the result keeps ``0 <= c + dt (source - div F) / psi <= 1``."""
    outflow = sum((jnp.maximum(jnp.roll(f, -1, a), 0.0) + jnp.maximum(-f, 0.0)) / grid.spacing[a]
                  for a, f in enumerate(fluxes)) * dt
    inflow = sum((jnp.maximum(-jnp.roll(f, -1, a), 0.0) + jnp.maximum(f, 0.0)) / grid.spacing[a]
                 for a, f in enumerate(fluxes)) * dt
    room_out = jnp.maximum(geometry.psi_weight * c + dt * jnp.minimum(source, 0.0), 0.0)
    room_in = jnp.maximum(geometry.psi_weight * (1.0 - c) - dt * jnp.maximum(source, 0.0), 0.0)
    if bounded is not None:
        room_out, room_in = jnp.where(bounded, room_out, jnp.inf), jnp.where(bounded, room_in, jnp.inf)
    giving = jnp.where(outflow > room_out, room_out / jnp.where(outflow > room_out, outflow, 1.0), 1.0)
    taking = jnp.where(inflow > room_in, room_in / jnp.where(inflow > room_in, inflow, 1.0), 1.0)
    total = 0.0
    for a, f in enumerate(fluxes):
        scale = jnp.where(f > 0, jnp.minimum(jnp.roll(giving, 1, a), taking),
                          jnp.minimum(giving, jnp.roll(taking, 1, a)))
        f = f * scale
        total = total - (jnp.roll(f, -1, a) - f) / grid.spacing[a]
    return total


def limited_correction(fluxes, c, dt, geometry: Geometry, grid: Grid, passes: int = LIMITER_PASSES):
    """``-dt div F`` of correction fluxes ``F_a`` (on each cell's low face; per time) added to a bounded
    state ``c``, per unit ``psi``, scaled face by face so that ``0 <= c + result <= 1`` in every cell
    (the electrolyte cells too: their weight is ``INDICATOR_FLOOR``, and unbounded values there feed
    the gradient term of the particle's tail cells).

    The correction of the stabilisation is a large diffusion of the step's change, gross fluxes far
    above the net ones, so a gross-flux limiter (Zalesak's, :func:`bounded_divergence`) would cut it
    everywhere near ``c = 0``. This one works on the net change: a cell that would pass 1 has its
    incoming faces scaled by ``(room + out) / in`` (one that would pass 0, its outgoing faces by
    ``(Li + in) / out``), and the passes repeat (``passes``) since a cut flux changes the neighbour's
    balance. What overshoot is left after the passes (normally none; at most round-off) is clipped and
    put back into the held cells in proportion to their room, so the Li moved is exactly conserved.
    Returns ``(change, moved)``: the change of ``c`` and the Li the last clip moved (``int psi``, cells).
    """
    ndim = grid.ndim
    weight = geometry.psi_weight
    held = geometry.psi >= 0.0
    room_in = jnp.where(held, weight * (1.0 - c), jnp.inf)
    room_out = jnp.where(held, weight * c, jnp.inf)
    amounts = [f * dt / grid.spacing[a] for a, f in enumerate(fluxes)]  # psi c moved through each low face

    def one_pass(scales, amounts, room_in, room_out):
        moved = [s * m for s, m in zip(scales, amounts)]
        inflow = sum(jnp.maximum(m, 0.0) + jnp.maximum(-jnp.roll(m, -1, a), 0.0) for a, m in enumerate(moved))
        outflow = sum(jnp.maximum(-m, 0.0) + jnp.maximum(jnp.roll(m, -1, a), 0.0) for a, m in enumerate(moved))
        over = inflow - outflow > room_in
        under = outflow - inflow > room_out
        cut_in = jnp.where(over, jnp.clip((room_in + outflow) / jnp.where(over, inflow, 1.0), 0.0, 1.0), 1.0)
        cut_out = jnp.where(under, jnp.clip((room_out + inflow) / jnp.where(under, outflow, 1.0), 0.0, 1.0), 1.0)
        new = []
        for a, (s, m) in enumerate(zip(scales, amounts)):
            # m > 0 flows from the low neighbour into this cell: in here, out there
            factor = jnp.where(m > 0, jnp.minimum(cut_in, jnp.roll(cut_out, 1, a)),
                               jnp.minimum(cut_out, jnp.roll(cut_in, 1, a)))
            new.append(s * factor)
        return new

    # reverse mode keeps the scales per pass (within calibrate's backward pass: none, phasefield.recompute.repeated)
    scales = repeated(one_pass, passes, [jnp.ones(grid.shape, c.dtype) for _ in range(ndim)], amounts, room_in,
                      room_out)
    moved = [s * m for s, m in zip(scales, amounts)]
    net = -sum(jnp.roll(m, -1, a) - m for a, m in enumerate(moved))  # psi dc
    state = c + net / weight
    clipped = jnp.where(held, jnp.clip(state, 0.0, 1.0), state)
    excess = jnp.sum(weight * (state - clipped))  # > 0: Li to put into held cells with room
    room = jnp.where(held, weight * jnp.where(excess > 0, 1.0 - clipped, clipped), 0.0)
    clipped = clipped + jnp.where(held, excess / jnp.maximum(jnp.sum(room), smallest(room)) * room / weight, 0.0)
    return clipped - c, jnp.sum(jnp.abs(weight * (state - clipped)))


def stabilized_change(increment, dt, guess, geometry: Geometry, basis: SpectralBasis, symbol):
    """``dc`` from ``(psi + dt L) dc = increment``, ``L`` the spectral ``symbol`` (:func:`stabilization_symbol`).

    The stabilisation is weighted by ``psi`` like the time derivative, so it moves Li without creating
    or destroying any (``sum L dc = 0``). :func:`pcg`, preconditioned by ``(psi_0 + dt L)^-1`` with
    ``psi_0`` the geometric mean of the extremes of ``psi``, from ``guess``; it stops when
    ``sqrt(r . M^-1 r) <= FILTER_TOLERANCE sqrt(b . M^-1 b)``. Returns ``(dc, PCGStats)``.
    """
    def operator(x):
        return geometry.psi_weight * x + dt * basis.inverse(symbol * basis.forward(x))

    def precondition(r):
        return basis.inverse(basis.forward(r) / (geometry.reference_weight + dt * symbol))

    # pcg's default measure sqrt(r . M^-1 r / b . M^-1 b): each solve (a tangent one too) relative to its own b
    tolerance = max(FILTER_TOLERANCE, FILTER_EPSILONS * float(jnp.finfo(increment.dtype).eps))
    return pcg(operator, increment, guess, precondition, tolerance, FILTER_MAX_ITERATIONS)


def crack_weights(damage, grid: Grid):
    """Per axis, ``(1 - d_f)^2`` on the ``n + 1`` faces normal to it, ``d_f`` the larger damage of the face's two
    cells (:func:`phasefield.physics.fracture.degradation` without residual): a fully damaged cell passes no Li."""
    periodic = Boundary.uniform(grid.ndim, "periodic")
    return tuple(degradation(-face_minimum(-damage, periodic, a), 0.0) for a in range(grid.ndim))


def transport_faces(geometry: Geometry, crack=None):
    """``psi`` on the faces, times the crack weights (:func:`crack_weights`) when given."""
    if crack is None:
        return geometry.psi_faces
    return tuple(f * w for f, w in zip(geometry.psi_faces, crack))


def li_fluxes(c, mu, p: Parameters, geometry: Geometry, grid: Grid, crack=None):
    """Li fluxes ``F_a = -psi_f w_f M_f (d mu / dx_a)`` on each cell's low face (c um / s), ``M = D c (1 - c)``
    averaged arithmetically onto the face, ``psi_f`` the face indicator, ``w_f`` the crack weight (1 without
    fracture, :func:`crack_weights`)."""
    periodic = Boundary.uniform(grid.ndim, "periodic")
    faces = transport_faces(geometry, crack)
    low_faces = [tuple(slice(0, n) if b == a else slice(None) for b, n in enumerate(grid.shape))
                 for a in range(grid.ndim)]
    mobility = p.diffusivity * jnp.clip(c, 0.0, 1.0) * (1.0 - jnp.clip(c, 0.0, 1.0))
    return [-faces[a][low_faces[a]] * face_average(mobility, periodic, a, "arithmetic")[low_faces[a]]
            * face_gradient(mu, grid, periodic, a)[low_faces[a]] for a in range(grid.ndim)]


@jax.named_call
def cahn_hilliard_update(c, mu, source, dt, guess, p: Parameters, geometry: Geometry, grid: Grid,
                         basis: SpectralBasis, stabilization, crack=None):
    """One smoothed-boundary Cahn-Hilliard step ``psi dc = dt [div(psi M grad mu) + |grad psi| j]``,
    ``M = D c (1 - c)``, bounded: ``0 <= c <= 1`` after the step wherever it held before.

    (1) The low-order update: explicit face fluxes through the positivity limiter
    (:func:`bounded_divergence`, which leaves room for the surface source) plus the source (bounded by
    :func:`surface_insertion`). (2) The ``psi``-weighted implicit stabilisation
    (:func:`stabilized_change`, from ``guess``) ``(psi + dt L) dc = dt [div F + |grad psi| j]``,
    ``L = D_s k^2 + M_max kappa k^4`` (``stabilization = (D_s, M_max kappa)``, the stencil's Laplacian).
    (3) What the stabilisation adds to the low-order update, ``-dt L dc = dt lap(D_s dc - M_max kappa lap dc)``,
    is written as face fluxes and passed through a limiter on the net change from the low-order state
    (:func:`limited_correction`): where no bound is near, the step is the stabilised one (to the CG
    residual); near ``c = 0`` or ``1`` the constant-mobility stabilisation cannot move Li past the bound. Every part is a flux difference or
    the source, so ``int psi dc = dt int |grad psi| j`` to round-off. With ``crack`` (fracture,
    :func:`crack_weights`) the explicit fluxes (:func:`li_fluxes`) and the correction fluxes are weighted by it, so
    no Li crosses a fully damaged face.

    Returns ``(c_new, dc, PCGStats)``.
    """
    ndim = grid.ndim
    periodic = Boundary.uniform(ndim, "periodic")
    low_faces = [tuple(slice(0, n) if b == a else slice(None) for b, n in enumerate(grid.shape)) for a in range(ndim)]
    fluxes = li_fluxes(c, mu, p, geometry, grid, crack)
    increment = dt * (recomputed(lambda: bounded_divergence(fluxes, c, dt, geometry, grid, source)) + source)
    low_order = c + increment / geometry.psi_weight
    diffusive, hyper = stabilization
    k2 = -basis.laplacian_symbol
    change, stats = stabilized_change(increment, dt, guess, geometry, basis, diffusive * k2 + hyper * k2 * k2)
    potential = diffusive * change - hyper * laplacian(change, grid, periodic)
    corrections = [-face_gradient(potential, grid, periodic, a)[low_faces[a]] for a in range(ndim)]
    if crack is not None:
        corrections = [f * crack[a][low_faces[a]] for a, f in enumerate(corrections)]
    correction, _ = recomputed(lambda: limited_correction(corrections, low_order, dt, geometry, grid))
    c_new = low_order + correction
    return c_new, c_new - c, stats


def particle_lame(c, params: Config):
    """Lame pair (GPa) of the particle phase at Li fraction ``c``: host and lithiated mixed linearly."""
    (lam_h, mu_h), (lam_l, mu_l) = particle_moduli(params)[:2]
    lithiated = jnp.clip(c, 0.0, 1.0)
    return lam_h + (lam_l - lam_h) * lithiated, mu_h + (mu_l - mu_h) * lithiated


def chemical_eigenstrain(c, p: Parameters) -> dict:
    """``e* I`` with ``e* = [ln(1 + beta c) - ln(1 + beta c_0)] / 3`` (Hencky): the particle phase's own
    swelling strain (no ``psi``)."""
    swelling = hencky_eigenstrain(c, p.beta, p.c_initial)
    return {"xx": swelling, "yy": swelling, "zz": swelling}


def swelling_eigenstrain(c, p: Parameters, params: Config, geometry: Geometry, lam, mu) -> dict:
    """The cell eigenstrain ``(psi K_p / K) e* I`` of the phase-wise stress (module notes;
    :func:`phasefield.physics.mechanics.phase_dilatation`), without the plastic strain."""
    swelling = geometry.psi * hencky_eigenstrain(c, p.beta, p.c_initial)
    return phase_dilatation(swelling, particle_lame(c, params), lam, mu)


def particle_stress(c, solved, params: Config, p: Parameters, generalized: bool, damage=None, tension=None) -> dict:
    """Stress of the particle phase, ``sigma_p = C_p(c) (eps - e* I - eps_p)`` (GPa), from the total strain of the
    equilibrium ``solved`` (:class:`MechanicsStep`; with generalized plane strain its uniform ``eps_zz``)
    and the plastic strain after the return. Under the Voigt (equal-strain) mix it is the stress the Li in a
    cell feels; in the particles' interior it equals the cell stress. With ``damage``: degraded like the cell."""
    strain = total_strain(solved, generalized)
    lam_p, mu_p = particle_lame(c, params)
    if damage is not None:
        lam_p, mu_p = split_lame(lam_p, mu_p, damage, tension, params.damage_residual)
    return stress_from_strain(lam_p, mu_p, strain, add_strains(chemical_eigenstrain(c, p), solved.plastic_strain))


@jax.named_call
def mechanics(c, plastic_strain, warm_start, axial_strain, params: Config, geometry: Geometry, grid: Grid,
              damage=None, tension=None, slabs=None):
    """The mechanics of the cell at ``c``: one warm-started elasticity solve with the lagged plastic strain
    and one radial return that holds the stack pressure (:func:`phasefield.physics.mechanics.solve_and_return`,
    ``hold_mean_stress``); generalized plane strain when ``out_of_plane`` asks for it. With ``damage``
    (fracture) the moduli are degraded by the volumetric-deviatoric split on the lagged sign set ``tension``
    (:func:`phasefield.physics.fracture.split_lame`); the eigenstrain keeps the undegraded moduli. ``slabs``: the
    fields split along x over devices (the solve's transforms the slab ones; ``None``: one device)."""
    p = Parameters.from_config(params)

    def material(c):
        lam, mu = moduli(c, params, geometry)
        return lam, mu, swelling_eigenstrain(c, p, params, geometry, lam, mu), yield_stress(c, params, geometry)

    # reverse mode recomputes the moduli, eigenstrain and yield stresses once the solve's backward pass is done
    lam, mu, eigenstrain, yields = recomputed(material, c)
    mean_strain, mean_stress = macroscopic_load(params, grid.ndim)
    if damage is not None:
        lam, mu = split_lame(lam, mu, damage, tension, params.damage_residual)

    def solve(plastic, warm, axial):
        return solve_and_return(lam, mu, yields, grid, eigenstrain,
                                plastic, mean_strain, mean_stress, warm_start=warm,
                                axial_strain=axial,
                                generalized=grid.ndim == 2 and params.out_of_plane == "generalized",
                                tolerance=jnp.maximum(params.mechanics_tolerance,
                                                      MECHANICS_EPSILONS * float(jnp.finfo(c.dtype).eps)),
                                max_iterations=params.mechanics_max_iterations,
                                hold_mean_stress=True, slabs=slabs)

    if params.mechanics_passes == 1:
        return solve(plastic_strain, warm_start, axial_strain)

    def again(_, solved):
        # the returned plastic strain re-equilibrated and returned again: the returned stress of a pass
        # is off equilibrium by the pass's flow (a film: sigma_xx = -2/3 of the trial's excess over the
        # yield surface); the next trial exceeds it by 2 (1 - 2 nu) / (3 (1 - nu)) of that, about 1/2
        next_pass = solve(solved.plastic_strain, WarmStart.of(solved.solution), solved.axial_strain)
        return next_pass._replace(equivalent_increment=solved.equivalent_increment + next_pass.equivalent_increment,
                                  iterations=solved.iterations + next_pass.iterations)

    # every pass in the loop (one copy of the solve to compile), from the given state; no warm start is a zero one
    start = jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype),
                                   jax.eval_shape(solve, plastic_strain, warm_start, axial_strain))
    start = start._replace(plastic_strain=plastic_strain,
                           axial_strain=jnp.asarray(axial_strain, start.axial_strain.dtype))
    if warm_start is not None:
        start = start._replace(solution=start.solution._replace(displacement=warm_start.displacement,
                                                                mean_strain=warm_start.mean_strain))
    # body under jax.checkpoint: reverse mode keeps each pass's result, not the intermediates of its solve
    return jax.lax.fori_loop(0, params.mechanics_passes, jax.checkpoint(again, prevent_cse=False), start)


# ----------------------------------------------------------------------------- diagnostics helpers


def state_of_charge(params: Config, state: dict, geometry: Geometry, grid: Grid):
    """Li in the particles over their capacity: ``c_0 + int psi (c - c_0) / int psi``."""
    c0 = params.initial_fraction
    return c0 + jnp.sum(geometry.psi_weight * (state["c"] - c0)) * grid.cell_volume / geometry.particle_volume


def turn_current(params: Config, state: dict, geometry: Geometry, grid: Grid) -> dict:
    """Cycling (``cycles > 0``): lithiation turns to delithiation at ``final_state_of_charge`` or
    ``cutoff_voltage``, delithiation to lithiation at ``delithiated_state_of_charge`` or
    ``delithiation_cutoff_voltage``; each turn ends a half cycle. Returns ``direction`` (+1: lithiation)
    and ``half_cycles``; with ``cycles = 0`` the current never turns (the run stops instead)."""
    soc, voltage, lithiating = state_of_charge(params, state, geometry, grid), state["voltage"], state["direction"] > 0
    full = (soc >= params.final_state_of_charge) | (voltage <= params.cutoff_voltage)
    empty = (soc <= params.delithiated_state_of_charge) | (voltage >= params.delithiation_cutoff_voltage)
    turn = (params.cycles > 0) & jnp.where(lithiating, full, empty)
    return {"direction": jnp.where(turn, -state["direction"], state["direction"]),
            "half_cycles": state["half_cycles"] + turn.astype(state["half_cycles"].dtype)}


def film_diagnostics(state: dict, interior) -> dict:
    """The film's in-plane stress ``(sigma_yy + sigma_zz) / 2`` of the particle phase (GPa; biaxial in a
    film held by its substrate) and its Li fraction, each the mean over the film's ``interior``."""
    stress = state["particle_stress"]
    return {"film_stress": masked_mean(0.5 * (stress["yy"] + stress["zz"]), interior),
            "film_concentration": masked_mean(state["c"], interior)}


def hoop_stress(stress, normal, ndim: int):
    """Mean in-plane tangential stress ``(tr_plane(sigma) - sigma_nn) / (d - 1)`` at a surface."""
    in_plane = sum(stress["xyz"[a] * 2] for a in range(ndim))
    return (in_plane - normal_stress(stress, normal)) / (ndim - 1)


def masked_mean(values, mask):
    return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def masked_max(values, mask):
    return jnp.max(jnp.where(mask, values, -jnp.inf))


# ----------------------------------------------------------------------------- the model


@dataclass
class SolverConfig(TimeSolverConfig):
    """``solver`` of the swelling scenario: the step's dt control, its precision and how the grid is laid out on the
    devices."""

    precision: str = option("float64", choices=("float32", "float64"),
                            help="working precision of the fields (float32: the solver tolerances raised to 100 "
                                 "epsilon, the overflow guards scaled to its range)")

    decomposition: str = option("none", choices=("none", "slabs"),
                                help="none: one device; slabs: the grid split along x over all devices "
                                     "(x cells divisible by the device count)")


@register_scenario("swelling", Config, SolverConfig)
def build(config: Config, solver: SolverConfig) -> Simulation:
    """The swelling simulation. Structure (grid, geometry arrays, branches) comes from the static options
    of ``config``; every number is read from the ``params`` argument of the stepper's functions.
    ``solver.decomposition=slabs``: every grid field of the carry split along x over the devices
    (:func:`phasefield.decomposition.laid_out`), the Cahn-Hilliard solve's and the elasticity preconditioner's
    transforms the slab ones; JAX's partitioner splits the rest (halos, all-reduces; with fracture the damage
    solve's CG)."""
    grid = make_grid(config)
    ndim = grid.ndim
    slabs = slabs_for(solver.decomposition, grid.shape)
    dtype = jnp.dtype(solver.precision)
    if dtype != jnp.float64 and config.fracture:
        raise ConfigError("solver.precision", solver.precision,
                          "'float64' with scenario.fracture (the damage solve is not measured in float32)")
    basis = SpectralBasis(grid, Boundary.uniform(ndim, "periodic"), dtype, slabs)
    geometry = make_geometry(grid, config, dtype)
    components = tensor_components(ndim)
    stress_coupling = config.stress_coupling
    generalized = ndim == 2 and config.out_of_plane == "generalized"
    electrode_thickness = config.electrode_thickness  # static: size and layer thicknesses
    fracture = config.fracture

    def init(params, fields):
        c = jnp.asarray(fields["c"], dtype)
        plastic = {n: jnp.zeros(grid.shape, dtype) for n in components}
        damage = {"damage": jnp.zeros(grid.shape, dtype), "tension": jnp.zeros(grid.shape, dtype)} if fracture else {}
        solved = mechanics(c, plastic, None, jnp.asarray(0.0, dtype), params, geometry, grid, **damage,
                           slabs=slabs)
        state = {
            "c": c,
            "plastic_strain": solved.plastic_strain,
            "equivalent_plastic_strain": solved.equivalent_increment,
            "stress": solved.stress,
            "particle_stress": particle_stress(c, solved, params, Parameters.from_config(params), generalized),
            "voltage": jnp.asarray(params.open_circuit_potential, dtype),
            "direction": jnp.asarray(1, jnp.int64),  # an integer: scalar records between steps take the new value
            "half_cycles": jnp.asarray(0, jnp.int64),
            "inserted": jnp.asarray(0.0, jnp.float64),
            "step": jnp.asarray(0, jnp.int64),
            "initial_mean_strain": solved.solution.mean_strain["xx"],
        }
        if fracture:  # no damage yet: the first step's solve sees the sign set of this one
            _, drive, tension = damage_update(damage["damage"], jnp.zeros(grid.shape, dtype), c, solved, params, geometry,
                                              grid, generalized)
            state.update(damage=damage["damage"], damage_drive=drive, tension=tension)
        history = {
            "elasticity": WarmStart.of(solved.solution)._asdict(),
            "axial_strain": solved.axial_strain,
            "change": jnp.zeros(grid.shape, dtype),
            "last_dt": jnp.asarray(1.0, dtype),
        }
        cache = {"mechanics_iterations": solved.iterations, "filter_iterations": jnp.asarray(0, jnp.int32)}
        return laid_out(slabs, {"state": state, "history": history, "cache": cache}, grid.shape)

    def step(params, carry, dt):
        step_length = jnp.asarray(dt, jnp.float64)  # the inserted Li is summed in float64
        dt = step_length.astype(dtype)
        state, history = carry["state"], carry["history"]
        p = Parameters.from_config(params)
        curvature = elastic_curvature(params, p)
        c = state["c"]
        crack = crack_weights(state["damage"], grid) if fracture else None
        damaged = {"damage": state["damage"], "tension": state["tension"]} if fracture else {}

        def insertion():
            mu = chemical_potential(c, state["stress"], p, geometry, grid, stress_coupling, crack)
            rate = state["direction"].astype(dtype) * insertion_rate(params, geometry)
            return (mu,) + tuple(surface_insertion(mu, c, dt, rate, p, geometry, grid, curvature))

        def transport(mu, source):
            return cahn_hilliard_update(c, mu, source, dt, history["change"] * dt / history["last_dt"], p, geometry,
                                        grid, basis, stabilization_coefficients(params, p), crack)

        # reverse mode recomputes each stage once the backward passes of the later ones are done (phasefield.recompute)
        mu, voltage, source = recomputed(insertion)
        c_new, change, filter_stats = recomputed(transport, mu, source)
        solved = mechanics(c_new, state["plastic_strain"], WarmStart(**history["elasticity"]),
                           history["axial_strain"], params, geometry, grid, **damaged, slabs=slabs)
        old = state
        state = {
            "c": c_new,
            "plastic_strain": solved.plastic_strain,
            "equivalent_plastic_strain": state["equivalent_plastic_strain"] + solved.equivalent_increment,
            "stress": solved.stress,
            "particle_stress": particle_stress(c_new, solved, params, p, generalized, **damaged),
            "voltage": voltage,
            "direction": state["direction"],
            "half_cycles": state["half_cycles"],
            "inserted": state["inserted"] + step_length * jnp.sum(source) * grid.cell_volume,
            "step": state["step"] + 1,
            "initial_mean_strain": state["initial_mean_strain"],
        }
        state.update(turn_current(params, state, geometry, grid))
        if fracture:
            damage, drive, tension = damage_update(old["damage"], old["damage_drive"], c_new, solved, params,
                                                   geometry, grid, generalized)
            state.update(damage=damage, damage_drive=drive, tension=tension)
        history = {
            "elasticity": WarmStart.of(solved.solution)._asdict(),
            "axial_strain": solved.axial_strain,
            "change": change,
            "last_dt": dt,
        }
        cache = {"mechanics_iterations": solved.iterations, "filter_iterations": filter_stats.iterations}
        return laid_out(slabs, {"state": state, "history": history, "cache": cache}, grid.shape)

    psi = geometry.psi

    def fields(params, carry):
        state = carry["state"]
        out = {
            "c": jnp.where(psi > SHOWN_INDICATOR, state["c"], 0.0),
            "hydrostatic_stress": hydrostatic_stress(state["stress"]),
            "von_mises_stress": von_mises_stress(state["stress"]),
            "equivalent_plastic_strain": state["equivalent_plastic_strain"],
            "particles": psi,
        }
        if fracture:
            out["damage"] = state["damage"]
        return out

    def change(new, old):
        return jnp.max(jnp.where(psi > 0.05, jnp.abs(new["state"]["c"] - old["state"]["c"]), 0.0))

    def finished(params, carry):
        state = carry["state"]
        lithiated = ((state_of_charge(params, state, geometry, grid) >= params.final_state_of_charge)
                     | (state["voltage"] <= params.cutoff_voltage))
        return jnp.where(params.cycles > 0, state["half_cycles"] >= 2 * params.cycles, lithiated)

    in_particles, in_electrolyte = geometry.in_particles, geometry.in_electrolyte
    shown = psi > SHOWN_INDICATOR
    film = config.geometry == "film"
    film_interior = psi > FILM_INTERIOR

    def diagnostics(params, carry):
        state, history, cache = carry["state"], carry["history"], carry["cache"]
        stress = state["stress"]
        hydrostatic = hydrostatic_stress(stress)
        mises = von_mises_stress(stress)
        sigma_nn = normal_stress(stress, geometry.normal)
        thickness_change = (history["elasticity"]["mean_strain"]["xx"] - state["initial_mean_strain"]) * grid.lengths[0]
        c0 = params.initial_fraction
        extra = {}
        if fracture:
            cracked = state["damage"] > 0.5
            extra = {"damage_max": jnp.max(state["damage"]),
                     "cracked_particle_fraction": masked_mean(cracked, in_particles),
                     "cracked_electrolyte_fraction": masked_mean(cracked, in_electrolyte)}
        return {
            "state_of_charge": state_of_charge(params, state, geometry, grid),
            "electrode_potential": state["voltage"],
            "current_direction": state["direction"].astype(jnp.float64),
            "half_cycles": state["half_cycles"].astype(jnp.float64),
            "swelling": 100.0 * thickness_change / electrode_thickness,
            "inserted_li": state["inserted"],
            "li_content": jnp.sum(geometry.psi_weight * (state["c"] - c0)) * grid.cell_volume,
            "concentration_max": masked_max(state["c"], shown),
            "concentration_min": -masked_max(-state["c"], shown),
            "particle_pressure_mean": -masked_mean(hydrostatic, in_particles),
            "particle_pressure_max": masked_max(-hydrostatic, in_particles),
            "particle_von_mises_mean": masked_mean(mises, in_particles),
            "particle_von_mises_max": masked_max(mises, in_particles),
            "electrolyte_pressure_mean": -masked_mean(hydrostatic, in_electrolyte),
            "electrolyte_pressure_max": masked_max(-hydrostatic, in_electrolyte),
            "electrolyte_von_mises_mean": masked_mean(mises, in_electrolyte),
            "electrolyte_von_mises_max": masked_max(mises, in_electrolyte),
            "interface_tension_max": masked_max(sigma_nn, geometry.interface_band),
            "interface_normal_stress_mean": masked_mean(sigma_nn, geometry.interface_band),
            "surface_hoop_stress": masked_mean(hoop_stress(state["particle_stress"], geometry.normal, ndim),
                                               geometry.surface_band),
            "plastic_strain_max": masked_max(state["equivalent_plastic_strain"], in_particles),
            "plastic_strain_mean": masked_mean(state["equivalent_plastic_strain"], in_particles),
            "mean_stress_xx": jnp.mean(stress["xx"]),
            "mechanics_iterations": cache["mechanics_iterations"].astype(jnp.float64),
            "filter_iterations": jnp.asarray(cache["filter_iterations"], jnp.float64),
            **(film_diagnostics(state, film_interior) if film else {}),
        } | extra

    stop_reason = ("lithiation finished (cycles = 0: state of charge final_state_of_charge reached or the electrode "
                   "potential fell to cutoff_voltage) or the cycles are done")
    stepper = Stepper(init, step, fields, unconditionally_stable, 1, change, finished, stop_reason)
    c_start = np.full(grid.shape, config.initial_fraction)
    field_info = FIELD_INFO | ({"damage": Quantity("1", "phase-field damage d (1: cracked)")} if fracture else {})

    return Simulation(
        name="swelling",
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=lambda: {"c": c_start},
        field_info=field_info,
        diagnostics=diagnostics,
        scalar_info=SCALAR_INFO | (FILM_SCALAR_INFO if film else {}) | (FRACTURE_SCALAR_INFO if fracture else {}),
        scales={
            "length": (MICRON, "m"),
            "time": (1.0, "s"),
            "stress": (GPA, "Pa"),
            "concentration": (config.max_concentration, "mol/m^3"),
            "chemical_potential": (GAS_CONSTANT * config.temperature, "J/mol"),
        },
    )


FIELD_INFO = {
    "c": Quantity("1", "Li fraction of full lithiation (x / 3.75 in Li_xSi); 0 outside the particles"),
    "hydrostatic_stress": Quantity("GPa", "sigma_h = tr(sigma) / 3"),
    "von_mises_stress": Quantity("GPa", "von Mises equivalent stress"),
    "equivalent_plastic_strain": Quantity("1", "accumulated equivalent plastic strain"),
    "particles": Quantity("1", "particle indicator psi (1: particle)"),
}

FRACTURE_SCALAR_INFO = {
    "damage_max": Quantity("1", "largest damage d (fracture)"),
    "cracked_particle_fraction": Quantity("1", "fraction of the particle cells (psi > 1/2) with d > 1/2"),
    "cracked_electrolyte_fraction": Quantity("1", "fraction of the electrolyte cells with d > 1/2"),
}

SCALAR_INFO = {
    "state_of_charge": Quantity("1", "Li in the particles over their capacity"),
    "concentration_max": Quantity("1", "largest c where it is a Li fraction (psi > 0.01); at most 1"),
    "concentration_min": Quantity("1", "smallest c where it is a Li fraction (psi > 0.01); at least 0"),
    "electrode_potential": Quantity("V", "electrode potential against Li/Li+ that carries the applied current"),
    "current_direction": Quantity("1", "+1 lithiation, -1 delithiation (the next step's)"),
    "half_cycles": Quantity("1", "lithiations and delithiations completed (cycles > 0)"),
    "swelling": Quantity("%", "electrode thickness change since the start (mean strain xx times the cell length) "
                              "over the electrode thickness"),
    "inserted_li": Quantity("um^3 c_max", "time integral of the surface reaction"),
    "li_content": Quantity("um^3 c_max", "Li gained by the particles, int psi (c - c0) (equals inserted_li)"),
    "particle_pressure_mean": Quantity("GPa", "mean pressure -sigma_h in the particles (psi > 1/2)"),
    "particle_pressure_max": Quantity("GPa", "largest pressure in the particles"),
    "particle_von_mises_mean": Quantity("GPa", "mean von Mises stress in the particles"),
    "particle_von_mises_max": Quantity("GPa", "largest von Mises stress in the particles"),
    "electrolyte_pressure_mean": Quantity("GPa", "mean pressure in the electrolyte"),
    "electrolyte_pressure_max": Quantity("GPa", "largest pressure in the electrolyte"),
    "electrolyte_von_mises_mean": Quantity("GPa", "mean von Mises stress in the electrolyte"),
    "electrolyte_von_mises_max": Quantity("GPa", "largest von Mises stress in the electrolyte"),
    "interface_tension_max": Quantity("GPa", "largest normal stress n.sigma.n on the particle/electrolyte interface "
                                             "(> 0: tension, a contact-loss indicator)"),
    "interface_normal_stress_mean": Quantity("GPa", "mean n.sigma.n on the interface"),
    "surface_hoop_stress": Quantity("GPa", "mean tangential (hoop) stress of the particle phase (particle_stress, "
                                           "not the cell's mix) in the outer layer of the particles "
                                           "(0.75 < psi < 0.95)"),
    "plastic_strain_max": Quantity("1", "largest accumulated plastic strain in the particles"),
    "plastic_strain_mean": Quantity("1", "mean accumulated plastic strain in the particles"),
    "mean_stress_xx": Quantity("GPa", "mean stack-direction stress (-stack pressure)"),
    "mechanics_iterations": Quantity("1", "elasticity CG iterations of the last step"),
    "filter_iterations": Quantity("1", "CG iterations of the last stabilised Cahn-Hilliard solve"),
}

FILM_SCALAR_INFO = {
    "film_stress": Quantity("GPa", "mean in-plane stress (sigma_yy + sigma_zz) / 2 of the film's interior "
                                   "(psi > 0.99; geometry=film): < 0 compressive"),
    "film_concentration": Quantity("1", "mean Li fraction c of the film's interior (psi > 0.99; geometry=film)"),
}

def total_strain(solved, generalized: bool) -> dict:
    """Total cell strain of a :class:`MechanicsStep` (with generalized plane strain, its uniform ``eps_zz`` added)."""
    strain = dict(solved.solution.strain)
    if generalized:
        strain["zz"] = strain["zz"] + solved.axial_strain
    return strain


def toughness_weight(c, params: Config, geometry: Geometry):
    """``1 / G_c`` per cell, m^2/J: the series mix ``psi / G_p(c) + (1 - psi)(1 - collector) / G_e``,
    ``G_p = G_0 + (G_1 - G_0) c``; 0 in the collector (it does not crack)."""
    lithiated = jnp.clip(c, 0.0, 1.0)
    particle = params.host_toughness + (params.lithiated_toughness - params.host_toughness) * lithiated
    return geometry.psi / particle + geometry.matrix / params.electrolyte_toughness


def damage_problem(grid: Grid) -> FractureProblem:
    """The damage sub-problem on the periodic cell (no walls)."""
    return FractureProblem(grid=grid, walls=None)


@jax.named_call
def damage_update(damage, history, c, solved, params: Config, geometry: Geometry, grid: Grid, generalized: bool):
    """One damage solve at the displacement of ``solved`` (staggered: one per time step).

    Elastic strain ``e = eps - eps*_cell - eps_p`` (after the return); driving force the Amor tensile energy with the
    undegraded Voigt moduli, ``H = psi+(e)`` (GPa, :func:`phasefield.physics.fracture.tensile_energy_density`);
    AT2 takes the history maximum. The heterogeneous toughness enters as the normalised drive
    ``H G_ref / G_c(x)`` (:func:`toughness_weight`, ``G_ref`` = 1 J/m^2) of a uniform-toughness problem, exact
    where ``G_c`` is uniform; :func:`phasefield.physics.fracture.solve_damage` minimises
    ``sum V [g(d) H G_ref/G_c + G_ref/c_w (w(d)/ell + ell |grad d|^2)]`` over ``d_prev <= d <= 1`` (periodic).
    AT1 leaves ``d = 0`` exactly while ``H <= 3 G_c / (16 ell)`` everywhere. Returns ``(damage, history, tension)``,
    ``tension`` the sign set ``tr e > 0`` (1/0) of the next solve."""
    p = Parameters.from_config(params)
    lam, mu = moduli(c, params, geometry)
    eigen = add_strains(swelling_eigenstrain(c, p, params, geometry, lam, mu), solved.plastic_strain)
    strain = total_strain(solved, generalized)
    elastic = {k: v - eigen.get(k, 0.0) for k, v in strain.items()}
    if params.fracture_drive == "spectral":
        drive = spectral_tensile_energy_density(elastic, lam, mu)
    else:
        drive = tensile_energy_density(elastic, lam, mu)
    model = damage_model(params.fracture_model)
    history = jnp.maximum(history, drive)
    used = model.history * history + (1.0 - model.history) * drive
    material = FractureMaterial(0.0, 0.0, JOULE_PER_M2, params.damage_length, params.damage_residual)
    new, _ = solve_damage(used * toughness_weight(c, params, geometry), jnp.zeros_like(damage),
                          model.bounded * damage, jnp.ones_like(damage), damage, material, model, damage_problem(grid))
    tension = ((elastic["xx"] + elastic["yy"] + elastic["zz"]) > 0).astype(damage.dtype)
    return new, history, tension
