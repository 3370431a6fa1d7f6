"""Li dendrites in a solid electrolyte: the dendrite model with mechanics (physics.md 4, form 1 of 4.2).

The electrodeposition model of :mod:`phasefield.models.dendrite` (fields ``xi``, ``c``, ``phi``,
same units and options) plus small-strain mechanics of the cell, in plane strain (2D) or 3D:

* the electrolyte is linear elastic, the Li metal elastic-perfectly plastic (J2, yield stress
  ``sigma_Y`` about 1 MPa, physics.md 4.4), with Voigt-mixed Lame moduli
  ``C(xi) = h C_Li + (1 - h) C_SE`` (physics.md 4.1) and the Reuss mix of the yield stresses
  with an electrolyte that never yields, ``1/sigma_Y(xi) = h/sigma_Y + (1 - h)/inf``, i.e.
  ``sigma_Y / h``: smooth across the diffuse interface (no cell switches from elastic to
  plastic as the front passes), ``sigma_Y`` in the metal, elastic in the electrolyte;
* Li deposited during the run carries a dilatational deposition eigenstrain, and the metal its
  plastic strain::

      sigma = h C_Li (eps - e_Li I - eps_p) + (1 - h) C_SE (eps - eps_p),    div sigma = 0,
      h e_Li = eps0 [h(xi) - h(xi_0)],

  phase by phase (only the metal carries the misfit), i.e. ``sigma = C(xi) : (eps - eps*)`` with
  ``eps* = (K_Li / K(xi)) eps0 [h(xi) - h(xi_0)] I + eps_p``
  (:func:`phasefield.physics.mechanics.phase_dilatation`);

  ``eps0`` is a phenomenological misfit of the new metal against the space it fills (the
  electrolyte's reference configuration): a real deposit pushes the electrolyte aside by its
  whole volume, which small strain cannot represent, so ``eps0`` is a modelling parameter (the
  Zn model of physics.md 4.2 uses 0.4) and the metal present at t = 0 is stress-free;
* the stress enters the Butler-Volmer rate through the mechanical overpotential (form 1): a
  hydrostatic pressure ``p = -tr(sigma)/3`` raises the chemical potential of Li by
  ``Omega_Li p``, so with ``s = Omega_Li p / (R T)``::

      dxi/dt = L_eta h'(xi) [c e^{-a (f phi + s)} - e^{(1-a)(f phi + s)}],

  the cathodic term times ``e^{-a Omega p/RT}``, the anodic times ``e^{(1-a) Omega p/RT}``
  (``eta_eff = phi + Omega p/(nF)``: 0.135 mV per MPa). ``p`` is, across the interface, the
  normal compression ``-n.sigma.n`` with ``n = grad xi / |grad xi|`` (``reaction_pressure:
  normal_traction``, the default): the metal carries no more than ``sigma_Y`` (1 MPa) of
  deviatoric stress, so its pressure is the normal traction it receives, which is continuous
  across the interface; where ``|grad xi|`` vanishes (away from the interface, where ``h'(xi) = 0``)
  it is ``-tr(sigma)/3``. ``hydrostatic`` uses ``-tr(sigma)/3`` everywhere, at the interface that of
  the Voigt mixture, which the stiff electrolyte dominates: under a uniaxial stack pressure on LLZO
  a flat front's mixed cells show 93 % of it (tested against the exact normal traction).
  Mechanics enters nowhere else: the
  Allen-Cahn equation carries no elastic driving force, which would count the pressure work
  ``Omega p`` a second time.

Loading and geometry. The elasticity solver is periodic, so the cell is one period of an
infinite stack ``... | Li | electrolyte | Li | electrolyte | ...`` along x (the first axis, the
stack direction), periodic across it too. The stack pressure is the prescribed mean normal
stress ``<sigma_xx> = -p_stack``, the x mean strain is free (the stack thickens as Li deposits);
across the stack (``lateral``) the mean stresses are zero (``free``: a pressed cell that may
expand sideways), the mean strains are zero (``clamped``: a rigid die), or every normal mean
stress is ``-p_stack`` (``isostatic``: all-round pressure; in 3D ``sigma = -p I`` in a uniform
cell, in plane strain ``sigma_zz`` follows from ``eps_zz = 0``). Mean shear stresses are zero,
except ``clamped`` (mean shear strains zero).

One step: the dendrite step (:mod:`phasefield.models.dendrite`), whose Butler-Volmer argument is
shifted by ``s`` from this step's mechanics (its :class:`~phasefield.models.dendrite.Coupling`), solved at the start of the step for that step's
``xi`` (quasi-static, like the potential): one conjugate-gradient elasticity solve warm-started
from the last step, then one radial return (:func:`phasefield.physics.plasticity.radial_return`)
that adds the plastic increment to ``eps_p`` for the next solve. Plastic flow therefore lags one
step: the stress of a solve (the one stored and used: pressure and von Mises stress) is in
equilibrium but exceeds the yield stress by what the step's new eigenstrain and load add
(``yield_overshoot`` records the largest excess). Where the deposit grows fast this is tens of
MPa in the stiff interface cells and a few MPa in the metal behind it; under slow loading the
metal stays within a few per cent of ``sigma_Y``. The pressure, which the isochoric return does
not change, is affected only through the lagged redistribution. The initial state is brought to
plastic equilibrium under the stack pressure (solve and return to convergence) before the first
step. With ``eps0 = 0`` and no stack pressure every solve has a zero right-hand side, the stress
is exactly zero, ``s = 0`` and the run is the liquid model's to the bit.

Stresses are in MPa inside the model (moduli input in GPa, yield stress and stack pressure in MPa).

Parameters and carry: as the dendrite model's (every float option, the mechanics' included, is a
parameter read from ``params`` in the step; ``lateral``, ``reaction_pressure`` and
``mechanics_max_iterations`` are static). The mechanics adds to the carry

* ``state``: ``plastic_strain`` (tensor), ``equivalent_plastic_strain``, ``eigenstrain_reference``
  (``h(xi_0)``: the metal that carries no misfit), ``pressure``, ``reaction_pressure`` and
  ``von_mises`` of the last equilibrium (stored fields), ``mechanics_iterations_total``;
* ``history``: ``displacement`` and ``mean_strain`` of the last solve (its warm start; the mean
  strain is also the stack strain of the diagnostics);
* ``cache``: ``yield_overshoot``, ``mechanics_iterations``, ``mechanics_residual``.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from phasefield.config import ConfigError, option, scenario_parameters
from phasefield.decomposition import Slabs
from phasefield.grid import Boundary
from phasefield.models import dendrite
from phasefield.operators import gradient
from phasefield.operators.elasticity import (
    hydrostatic_stress,
    isotropic_moduli,
    mean_components,
    normal_stress,
    tensor_components,
    von_mises_stress,
)
from phasefield.physics.electrochemistry import interpolation, interpolation_slope
from phasefield.physics.mechanics import (
    WarmStart,
    mix_moduli,
    phase_dilatation,
    series_yield_stress,
    solve_and_return,
)
from phasefield.physics.plasticity import add_strains, equivalent_stress, plastic_equilibrium, radial_return
from phasefield.registry import register_scenario
from phasefield.simulation import Quantity, Simulation
from phasefield.units import FARADAY, GAS_CONSTANT, GPA_IN_MPA, MPA
INITIAL_RETURNS = 500  # most solve-and-return passes of the initial plastic equilibrium
NORMAL_GRADIENT = 1e-6  # |grad xi| (1/um) below which no interface normal is defined (hydrostatic p there)
INITIAL_RETURN_TOLERANCE = 1e-3  # ... until the largest plastic increment changes a stress by this fraction of yield
FLOAT64_ONLY = ("'float64' for dendrite_solid: measured in float32 (reaction formulation, elasticity CG at 100 epsilon), "
                "20 steps of 0.02 s on 32^2 move the reaction pressure by 0.41 of its range (the switch from -n.sigma.n "
                "to the hydrostatic pressure at |grad xi| = NORMAL_GRADIENT flips in the interface tails), as much as "
                "the time error; chen2015, the default, is float64 only (a port measured with "
                "experiments/bench_precision.py, not kept)")


@scenario_parameters
@dataclass
class Config(dendrite.Config):
    """``scenario=dendrite_solid``: the dendrite options plus the mechanics (GPa, MPa, m^3/mol)."""

    name: str = option("dendrite_solid", help="scenario name")
    electrolyte_young_modulus: float = option(150.0, min=0.0, exclusive=True,
                                              help="Young's modulus of the solid electrolyte, GPa (LLZO 150, LPSC 22)")
    electrolyte_poisson_ratio: float = option(0.257, help="Poisson's ratio of the electrolyte, -1 < nu < 0.5 "
                                                          "(LLZO 0.257, LPSC 0.3)")
    metal_young_modulus: float = option(7.8, min=0.0, exclusive=True, help="Young's modulus of Li, GPa (4.9-7.8)")
    metal_poisson_ratio: float = option(0.38, help="Poisson's ratio of Li, -1 < nu < 0.5 (0.36-0.42)")
    metal_yield_stress: float = option(1.0, min=0.0, exclusive=True, help="yield stress of Li (J2), MPa")
    deposition_eigenstrain: float = option(0.01, min=0.0, max=0.1,
                                           help="dilatational misfit eps0 of the Li deposited during the run "
                                                "(a modelling parameter: 0.01 builds 0.1-0.2 GPa in a growing tip "
                                                "in LLZO, tens of mV of mechanical overpotential)")
    stack_pressure: float = option(0.0, min=0.0, max=1000.0, help="mean compressive stress across the stack "
                                                                  "(along x), MPa")
    lateral: str = option("free", choices=("free", "clamped", "isostatic"),
                          help="across the stack: zero mean stress, zero mean strain, or mean stress -stack_pressure")
    reaction_pressure: str = option("normal_traction", choices=("normal_traction", "hydrostatic"),
                                    help="the pressure p of the mechanical overpotential Omega p/(nF): -tr(sigma)/3 of "
                                         "each cell, or -n.sigma.n across the interface (n = grad xi/|grad xi|)")
    li_molar_volume: float = option(1.30e-5, min=0.0, exclusive=True,
                                    help="molar volume of Li metal Omega_Li, m^3/mol (mechanical overpotential "
                                         "Omega p / (n F))")
    mechanics_tolerance: float = option(1e-8, min=0.0, exclusive=True, max=1e-2,
                                        help="elasticity solve: relative CG residual")
    mechanics_max_iterations: int = option(500, min=1, help="elasticity solve: most CG iterations per step")

    def check(self, prefix: str):
        super().check(prefix)
        for key in ("electrolyte_poisson_ratio", "metal_poisson_ratio"):
            value = getattr(self, key)
            if not -1.0 < value < 0.5:
                raise ConfigError(f"{prefix}.{key}", value, "-1 < nu < 0.5 (0.5 is incompressible: "
                                                            "no finite bulk modulus)")



def macroscopic_load(pressure, lateral: str, ndim: int):
    """``(mean_strain, mean_stress)`` for :func:`solve_elasticity`: ``<sigma_xx> = -pressure`` and
    the transverse components by ``lateral`` (see the module notes)."""
    others = [n for n in mean_components(ndim) if n != "xx"]
    if lateral == "clamped":
        return {n: 0.0 for n in others}, {"xx": -pressure}
    across = -pressure if lateral == "isostatic" else 0.0
    return None, {"xx": -pressure, **{n: across if n[0] == n[1] else 0.0 for n in others}}


def mechanical_shift(pressure_mpa, molar_volume, temperature):
    """``s = Omega_Li p / (R T)``: the shift of the Butler-Volmer argument ``f phi`` (p in MPa, Omega in m^3/mol)."""
    return molar_volume * MPA * pressure_mpa / (GAS_CONSTANT * temperature)


def phase_moduli(params: Config):
    """Lame pairs (MPa) of the metal and of the electrolyte."""
    metal = isotropic_moduli(params.metal_young_modulus * GPA_IN_MPA, params.metal_poisson_ratio)
    electrolyte = isotropic_moduli(params.electrolyte_young_modulus * GPA_IN_MPA, params.electrolyte_poisson_ratio)
    return metal, electrolyte


@register_scenario("dendrite_solid", Config, dendrite.SolverConfig)
def build(config: Config, solver) -> Simulation:
    """The dendrite simulation (:func:`phasefield.models.dendrite.build`) with the mechanics as its coupling;
    ``solver.decomposition=slabs``: the elasticity preconditioner's transforms the slab ones (the dendrite model
    checks the grid and lays out the carry, the mechanics' entries included)."""
    if solver.precision != "float64":
        raise ConfigError("solver.precision", solver.precision, FLOAT64_ONLY)
    grid = dendrite.make_grid(config)
    slabs = Slabs() if solver.decomposition == "slabs" else None
    ndim = grid.ndim
    components = tensor_components(ndim)
    names = mean_components(ndim)
    lateral = config.lateral
    normal_traction = config.reaction_pressure == "normal_traction"
    only_connected = config.formulation == "reaction" and config.electronic_conductivity == 0.0
    max_iterations = config.mechanics_max_iterations
    x = jnp.asarray(grid.axis_coordinates(0)).reshape((-1,) + (1,) * (ndim - 1))
    neumann = Boundary.uniform(ndim, "neumann")

    def reaction_pressure(xi, stress):
        """The pressure (MPa) in ``Omega p``: ``-tr(sigma)/3``, or ``-n.sigma.n`` where ``|grad xi| > 0``."""
        hydrostatic = -hydrostatic_stress(stress)
        if not normal_traction:
            return hydrostatic
        slopes = gradient(xi, grid, neumann)
        size = jnp.sqrt(sum(g * g for g in slopes))
        traction = normal_stress(stress, [g / jnp.maximum(size, NORMAL_GRADIENT) for g in slopes])
        return jnp.where(size > NORMAL_GRADIENT, -traction, hydrostatic)

    def materials(params, xi):
        """Voigt-mixed Lame fields and the Reuss-mixed yield stress field (MPa) of ``xi``: ``sigma_Y / h``
        against an electrolyte that never yields."""
        h = interpolation(xi)
        lam, mu = mix_moduli([h, 1.0 - h], phase_moduli(params))
        return lam, mu, series_yield_stress(h, params.metal_yield_stress, jnp.inf)

    def deposition(params, xi, reference, lam, mu):
        """The cell eigenstrain of the misfit ``eps0 [h(xi) - h(xi_0)] I`` of the metal deposited since the
        start, carried by the metal phase alone (:func:`phasefield.physics.mechanics.phase_dilatation`)."""
        metal = phase_moduli(params)[0]
        return phase_dilatation(params.deposition_eigenstrain * (interpolation(xi) - reference), metal, lam, mu)

    def equilibrium(xi, solution, mu, plastic, accumulated, increment):
        """Carry entries after an equilibrium ``solution`` and the radial return of its stress: its
        pressure and von Mises stress, the plastic strain ``plastic`` (returned), the accumulated
        equivalent plastic strain and this return's ``increment`` of it."""
        return {
            "state": {
                "plastic_strain": jnp.stack([jnp.broadcast_to(plastic[n], grid.shape) for n in components]),
                "equivalent_plastic_strain": accumulated,
                "pressure": -hydrostatic_stress(solution.stress),
                "reaction_pressure": reaction_pressure(xi, solution.stress),
                "von_mises": von_mises_stress(solution.stress),
            },
            "history": {
                "displacement": solution.displacement,
                "mean_strain": jnp.stack([solution.mean_strain[n] for n in names]),
            },
            "cache": {
                "yield_overshoot": jnp.max(3.0 * mu * increment),  # q - sigma_Y where it yields
                "mechanics_iterations": solution.iterations,
                "mechanics_residual": solution.residual,
            },
        }

    @jax.jit  # one compiled solve-and-return loop instead of an eager one
    def init(params, xi):
        """Plastic equilibrium of the initial cell under the stack pressure (no deposit yet)."""
        lam, mu, yield_stress = materials(params, xi)
        mean_strain, mean_stress = macroscopic_load(params.stack_pressure, lateral, ndim)
        metal_shear = phase_moduli(params)[0][1]
        relaxed = plastic_equilibrium(
            lam, mu, yield_stress, grid, {}, mean_strain=mean_strain, mean_stress=mean_stress,
            tolerance=INITIAL_RETURN_TOLERANCE * params.metal_yield_stress / (3.0 * metal_shear),
            max_returns=INITIAL_RETURNS, solver_tolerance=params.mechanics_tolerance, slabs=slabs)
        # sqrt(2/3 e:e) = (2/3) sqrt(3/2 e:e) of the (deviatoric) plastic strain
        accumulated = (2.0 / 3.0) * equivalent_stress(relaxed.plastic_strain)
        returned = radial_return(relaxed.elasticity.stress, mu, yield_stress)
        entries = equilibrium(xi, relaxed.elasticity, mu, add_strains(relaxed.plastic_strain, returned.plastic_increment),
                              accumulated + returned.equivalent_increment, returned.equivalent_increment)
        entries["state"].update(eigenstrain_reference=interpolation(xi),
                                mechanics_iterations_total=jnp.asarray(0, jnp.int64))
        return entries

    def update(params, carry, xi, conductivity):
        """This step's equilibrium and return, and the Butler-Volmer shift ``Omega p / (R T)``."""
        state, history = carry["state"], carry["history"]
        lam, mu, yield_stress = materials(params, xi)
        mean_strain, mean_stress = macroscopic_load(params.stack_pressure, lateral, ndim)
        plastic = dict(zip(components, state["plastic_strain"]))
        start = WarmStart(history["displacement"], dict(zip(names, history["mean_strain"])))
        eigenstrain = deposition(params, xi, state["eigenstrain_reference"], lam, mu)
        mechanics = solve_and_return(lam, mu, yield_stress, grid, eigenstrain, plastic, mean_strain, mean_stress,
                                     warm_start=start, tolerance=params.mechanics_tolerance,
                                     max_iterations=max_iterations, slabs=slabs)
        entries = equilibrium(xi, mechanics.solution, mu, mechanics.plastic_strain,
                              state["equivalent_plastic_strain"] + mechanics.equivalent_increment,
                              mechanics.equivalent_increment)
        entries["state"].update(
            eigenstrain_reference=state["eigenstrain_reference"],
            mechanics_iterations_total=state["mechanics_iterations_total"] + mechanics.iterations)
        shift = mechanical_shift(entries["state"]["reaction_pressure"], params.li_molar_volume, params.temperature)
        return entries, dendrite.CouplingEffect(shift=shift)

    def fields(params, carry):
        state = carry["state"]
        extra = {"reaction_pressure": state["reaction_pressure"]} if normal_traction else {}
        return {"pressure": state["pressure"], "von_mises": state["von_mises"],
                "plastic_strain": state["equivalent_plastic_strain"], **extra}

    def diagnostics(params, carry):
        state, history, cache = carry["state"], carry["history"], carry["cache"]
        # mV of mechanical overpotential per MPa: Omega / (n F)
        overpotential_per_mpa = params.li_molar_volume * MPA / (params.electrons * FARADAY) * 1e3
        xi, pressure = state["xi"], state["reaction_pressure"]
        in_metal = xi >= 0.5
        weight = interpolation_slope(xi)
        # the tip of the metal joined to the electrode (dead Li cut off from it does not plate)
        live = dendrite.live_metal(xi, only_connected, slabs)
        position, fraction = dendrite.front_crossings(live, x, grid.spacing[0])
        tip = jnp.argmax(position)
        tip_pressure = (pressure[:-1] * (1 - fraction) + pressure[1:] * fraction).ravel()[tip]
        tip_pressure = jnp.where(jnp.isfinite(jnp.max(position)), tip_pressure, 0.0)
        steps = jnp.maximum(state["step"], 1)
        return {
            "interface_pressure": jnp.sum(weight * pressure) / jnp.maximum(jnp.sum(weight), 1e-300),
            "tip_pressure": tip_pressure,
            "tip_mechanical_overpotential": overpotential_per_mpa * tip_pressure,
            "metal_pressure_max": jnp.max(jnp.where(in_metal, pressure, -jnp.inf)),
            "metal_von_mises_max": jnp.max(jnp.where(in_metal, state["von_mises"], 0.0)),
            "electrolyte_von_mises_max": jnp.max(jnp.where(in_metal, 0.0, state["von_mises"])),
            "plastic_strain_max": jnp.max(state["equivalent_plastic_strain"]),
            "yield_overshoot": cache["yield_overshoot"],
            "stack_strain": history["mean_strain"][0],
            "mechanics_iterations": cache["mechanics_iterations"].astype(jnp.float64),
            "mechanics_iterations_mean": state["mechanics_iterations_total"] / steps,
            "mechanics_residual": cache["mechanics_residual"],
        }

    coupling = dendrite.Coupling(
        init=init,
        update=update,
        fields=fields,
        field_info={
            "pressure": Quantity("MPa", "hydrostatic pressure -tr(sigma)/3 of the equilibrium solve"),
            "von_mises": Quantity("MPa", "von Mises stress of the equilibrium solve (plastic flow lags one step)"),
            "plastic_strain": Quantity("1", "accumulated equivalent plastic strain"),
            **({"reaction_pressure": Quantity("MPa", "-n.sigma.n across the interface (n = grad xi/|grad xi|), "
                                                     "the pressure of the mechanical overpotential")}
               if normal_traction else {}),
        },
        diagnostics=diagnostics,
        scalar_info=SCALAR_INFO,
    )
    return dendrite.build(config, solver, coupling)


SCALAR_INFO = {
    "interface_pressure": Quantity("MPa", "pressure of the mechanical overpotential (reaction_pressure) at the "
                                          "interface, weighted by h'(xi)"),
    "tip_pressure": Quantity("MPa", "pressure of the mechanical overpotential at the dendrite tip (the farthest "
                                    "xi = 1/2 crossing of the metal joined to the electrode: dead Li is left out "
                                    "in the reaction formulation without leakage)"),
    "tip_mechanical_overpotential": Quantity("mV", "Omega_Li p / (n F) at the tip: the Butler-Volmer shift"),
    "metal_pressure_max": Quantity("MPa", "largest pressure of the mechanical overpotential in the metal "
                                          "(xi >= 1/2)"),
    "metal_von_mises_max": Quantity("MPa", "largest von Mises stress in the metal (xi >= 1/2; the yield stress "
                                           "plus the one-step lag)"),
    "electrolyte_von_mises_max": Quantity("MPa", "largest von Mises stress in the electrolyte (xi < 1/2)"),
    "plastic_strain_max": Quantity("1", "largest accumulated equivalent plastic strain"),
    "yield_overshoot": Quantity("MPa", "largest excess of the equilibrium von Mises stress over the yield stress "
                                       "in the last step (the one-step lag of plastic flow)"),
    "stack_strain": Quantity("1", "mean strain across the stack, <eps_xx>"),
    "mechanics_iterations": Quantity("1", "CG iterations of the last elasticity solve"),
    "mechanics_iterations_mean": Quantity("1", "CG iterations per step since the start"),
    "mechanics_residual": Quantity("1", "relative residual of the last elasticity solve"),
}
