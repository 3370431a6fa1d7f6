"""Phase-field fracture of a solid-electrolyte plate (physics.md 5.1): quasi-static, load-controlled.

The plate lies between two electrodes (walls) along x, clamped to them, and is periodic along y (a strip of
a wide plate). A crack is a row of cells with ``d = 1`` normal to x, centred in the plate, ``notch_length``
long and centred at y = L_y / 2 (periodic along y: a row of collinear cracks of pitch L_y). Variants:

* ``notched_tension``: the high wall moves by ``t * max_displacement`` (mode I); scalars: reaction force vs
  displacement, crack length vs displacement, elastic and fracture energy, u-d iterations per step;
* ``pressurised_crack``: the walls are held, the crack carries the pressure ``t * max_pressure`` (a Li- or
  fluid-filled crack, ramped); scalars: crack volume, crack length, largest opening; field ``crack_opening``;
* ``injected_volume``: the walls are held, the crack holds ``t * max_volume`` of fluid (per unit thickness) of
  bulk modulus ``fluid_bulk_modulus``; its pressure follows the volume balance ``V_fluid = V_c (1 + p / K)`` at
  every u-d iteration (:class:`phasefield.physics.fracture.VolumeControl`), so the crack grows stably, at the
  toughness: for an incompressible fluid ``a = (V E' / (2 sqrt(pi) K_Ic))^(2/3)`` (Sneddon's volume
  ``2 pi p a^2 / E'`` at Griffith's ``p sqrt(pi a) = K_Ic``); scalars as above plus the pressure.

Time is the load factor ``t`` in [0, t_end] (one solver step = one load increment ``dt``); each step runs the
alternate minimisation of :func:`phasefield.physics.fracture.load_step` to ``tolerance``. Units: um, GPa for
stresses and moduli in the fields (MPa in the options for strength and pressure), J/m^2 for toughness; 2D
forces and energies per unit thickness (N/m, J/m).

The regularisation length follows from the strength when ``length`` is 0 (AT1: ``ell = 3 K_Ic^2 /
(8 sigma_c^2)``, ``K_Ic^2 = E' G_c``; physics.md 5.4): LLZO with K_Ic = 1 MPa sqrt(m) (G_c = 6.2 J/m^2) and
sigma_c = 300 MPa gives ell = 4.2 um, resolved by 4 cells of the default 1 um grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, PrecisionTimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Grid
from phasefield.operators.walled_elasticity import CLAMPED, Walls, cell_displacement
from phasefield.physics import fracture as fr
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper, unconditionally_stable
from phasefield.simulation import Quantity, Simulation
from phasefield.units import MICRON

VARIANTS = ("notched_tension", "pressurised_crack", "injected_volume")
TOUGHNESS_UNIT = 1e-3  # GPa um per J/m^2
STRESS_UNIT = 1e-3  # GPa per MPa
FLOAT64_ONLY = ("'float64' for fracture: measured in float32 (CG tolerances at 100 epsilon), 4 load steps of 0.05 "
                "on 32^2 differ from float64 by 7e-3 of the stress range and 2e-2 of u_y's, above the load-increment "
                "error (a float32 port measured with experiments/bench_precision.py, not kept)")
FORCE_UNIT = 1e3  # N/m per GPa um
ENERGY_UNIT = 1.0  # mJ/m per GPa um^2


@scenario_parameters
@dataclass
class Config:
    """``scenario=fracture``: a cracked solid-electrolyte plate pulled or pressurised (quasi-static)."""

    name: str = option("fracture", help="scenario name")
    variant: str = option("notched_tension", choices=VARIANTS, help="notched_tension: walls pulled apart; "
                          "pressurised_crack: walls held, pressure in the crack")
    size: list[float] = option(lambda: [96.0, 96.0], min=1e-3, help="plate size [L_x, L_y], um (x: between the walls)")
    shape: list[int] = option(lambda: [96, 96], min=8, help="cells per axis [n_x, n_y]")
    model: str = option("AT1", choices=fr.MODELS, help="damage model (AT1: elastic threshold)")
    split: str = option("volumetric_deviatoric", choices=fr.SPLITS,
                        help="tension/compression split (Amor) or none (all energy degraded)")
    young: float = option(150.0, min=0.0, exclusive=True, help="Young's modulus E, GPa (LLZO)")
    poisson: float = option(0.257, min=0.0, max=0.49, help="Poisson's ratio")
    toughness: float = option(6.2, min=0.0, exclusive=True, help="fracture toughness G_c, J/m^2 (K_Ic = 1 MPa m^1/2)")
    strength: float = option(300.0, min=0.0, exclusive=True, help="tensile strength sigma_c, MPa (sets ell)")
    length: float = option(0.0, min=0.0, help="regularisation length ell, um (0: from strength and toughness)")
    residual: float = option(1e-6, min=0.0, exclusive=True, max=1e-2, help="residual stiffness k in g(d) = (1-d)^2 + k")
    notch_length: float = option(24.0, min=0.0, static=True, help="crack length 2a along y, um")
    max_displacement: float = option(0.3, help="notched_tension: wall opening at t = 1, um")
    max_pressure: float = option(300.0, help="pressurised_crack: crack pressure at t = 1, MPa")
    max_volume: float = option(2.0, min=0.0, help="injected_volume: fluid volume in the crack at t = 1, um^2 per "
                               "unit thickness")
    fluid_bulk_modulus: float = option(11.0, min=0.0, exclusive=True,
                                       help="injected_volume: bulk modulus of the fluid, GPa (Li: 11)")
    tolerance: float = option(1e-4, min=0.0, exclusive=True, static=True,
                              help="alternate minimisation: stop at max |d_new - d| below this")
    max_iterations: int = option(200, min=1, help="alternate-minimisation iterations per load step")
    damage_acceleration: str = option("none", choices=fr.ACCELERATIONS,
                                      help="u-d iterations: next damage iterate G(d) (none), d + w (G(d) - d) "
                                      "(overrelax) or Anderson mixing of the last anderson_window iterates")
    relaxation_weight: float = option(1.6, min=1.0, max=1.95, static=True, help="overrelax: the weight w")
    anderson_window: int = option(3, min=1, max=10, help="anderson: iterate differences kept")
    t_end: float = option(1.0, min=0.0, exclusive=True, help="final load factor")

    def check(self, prefix: str):
        if len(self.size) != 2 or len(self.shape) != 2:
            raise ConfigError(f"{prefix}.shape", self.shape, "two entries (and two in size): the scenario is 2D")
        if self.notch_length >= self.size[1]:
            raise ConfigError(f"{prefix}.notch_length", self.notch_length, f"shorter than L_y = {self.size[1]}")


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), tuple(s / n for s, n in zip(config.size, config.shape)))


def crack_cells(grid: Grid, notch_length: float) -> np.ndarray:
    """1 on the cells of the middle row (x index n_x / 2) whose centre lies within ``notch_length / 2`` of L_y / 2."""
    y = grid.axis_coordinates(1) - grid.lengths[1] / 2
    damage = np.zeros(grid.shape)
    damage[grid.shape[0] // 2, np.abs(y) < notch_length / 2] = 1.0
    return damage


def material(params: Config) -> fr.FractureMaterial:
    """Material in um / GPa; ``ell`` from the strength when ``length`` is 0 (plane-strain ``E'``)."""
    toughness = params.toughness * TOUGHNESS_UNIT
    modulus = fr.plane_strain_modulus(params.young, params.poisson)
    strength = params.strength * STRESS_UNIT
    from_strength = fr.length_from_strength(modulus, toughness, strength, params.model)
    length = jnp.where(params.length > 0, params.length, from_strength)
    return fr.FractureMaterial(params.young, params.poisson, toughness, length, params.residual)


def _to_carry(state: fr.FractureState) -> dict:
    """A state as a dict of arrays (the checkpoint writer stores dicts; displacement components by axis name)."""
    out = state._asdict()
    out["displacement"] = {"xyz"[a]: u for a, u in enumerate(state.displacement)}
    return out


def _from_carry(carry: dict) -> fr.FractureState:
    values = dict(carry)
    values["displacement"] = tuple(carry["displacement"][k] for k in sorted(carry["displacement"]))
    return fr.FractureState(**values)


@register_scenario("fracture", Config, PrecisionTimeSolverConfig)
def build(config: Config, solver: PrecisionTimeSolverConfig) -> Simulation:
    """The fracture simulation. ``solver.decomposition=slabs``: the fields of the carry with the grid's shape
    (damage, history, tension set, the displacement along y) split along x over the devices
    (:func:`phasefield.decomposition.laid_out`), the displacement along x (``n_x + 1`` faces, which do not split
    evenly) whole on every device; the elasticity CG's preconditioner uses slab transforms
    (:func:`phasefield.operators.walled_elasticity.solve_walled_elasticity` with ``slabs``), its stencils and
    the damage solve are split by JAX's partitioner."""
    if solver.precision != "float64":
        raise ConfigError("solver.precision", solver.precision, FLOAT64_ONLY)
    grid = make_grid(config)
    slabs = slabs_for(solver.decomposition, grid.shape)
    problem = fr.FractureProblem(grid, Walls(0, CLAMPED, CLAMPED), split=config.split, tolerance=config.tolerance,
                                 max_iterations=config.max_iterations, acceleration=config.damage_acceleration,
                                 relaxation=config.relaxation_weight, window=config.anderson_window,
                                 slabs=slabs)
    model = fr.damage_model(config.model)
    tension = config.variant == "notched_tension"
    injected = config.variant == "injected_volume"
    counters = ("iterations", "elasticity_iterations", "damage_iterations", "change", "converged")

    def loading(params, load, carry=None):
        """The step's loads; ``injected_volume``: the crack pressure of ``carry`` (GPa), the first guess of the
        volume balance."""
        zero = jnp.zeros((), jnp.float64)
        load = jnp.asarray(load, jnp.float64)
        if tension:
            return fr.Loading((zero, load * params.max_displacement), (zero, zero), zero)
        if injected:
            return fr.Loading((zero, zero), (zero, zero), zero if carry is None else carry["state"]["pressure"])
        return fr.Loading((zero, zero), (zero, zero), load * params.max_pressure * STRESS_UNIT)

    def init(params, fields):
        state = fr.initial_state(problem, fields["damage"])
        # relax the crack to its optimal profile before loading (d = 1 on the crack row is held)
        state, info = fr.load_step(problem, material(params), model, state, loading(params, 0.0))
        carry = {"state": {"fracture": _to_carry(state), "load": jnp.zeros((), jnp.float64)},
                 "history": {}, "cache": {"info": {k: getattr(info, k) for k in counters}}}
        if injected:  # the crack pressure (GPa) and the displacement under a unit crack pressure (warm start)
            carry["state"]["pressure"] = jnp.zeros((), jnp.float64)
            carry["history"]["unit_displacement"] = _to_carry(state)["displacement"]
        return laid_out(slabs, carry, grid.shape)

    def step(params, carry, dt):
        state = _from_carry(carry["state"]["fracture"])
        load = carry["state"]["load"] + jnp.asarray(dt, jnp.float64)
        control = None
        if injected:
            unit = tuple(carry["history"]["unit_displacement"][k] for k in sorted(carry["history"]["unit_displacement"]))
            control = fr.VolumeControl(load * params.max_volume, params.fluid_bulk_modulus,
                                       jnp.zeros((), jnp.float64), unit)
        state, info = fr.load_step(problem, material(params), model, state, loading(params, load, carry),
                                   params.max_iterations, volume=control)
        new = {"state": {"fracture": _to_carry(state), "load": load}, "history": {},
               "cache": {"info": {k: getattr(info, k) for k in counters}}}
        if injected:
            new["state"]["pressure"] = info.pressure
            new["history"]["unit_displacement"] = {"xyz"[a]: u for a, u in enumerate(info.unit)}
        return laid_out(slabs, new, grid.shape)

    def fields(params, carry):
        state = _from_carry(carry["state"]["fracture"])
        ux, uy = cell_displacement(state.displacement, problem.walls)
        sigma = fr.stress(state, material(params), problem)
        opening = fr.opening_profile(state, problem)
        return {
            "damage": state.damage,
            "displacement_x": ux,
            "displacement_y": uy,
            "stress_xx": sigma["xx"],
            "stress_yy": sigma["yy"],
            "crack_opening": jnp.broadcast_to(opening[None, :], grid.shape),
        }

    def change(new, old):
        return jnp.max(jnp.abs(new["state"]["fracture"]["damage"] - old["state"]["fracture"]["damage"]))

    def diagnostics(params, carry):
        state = _from_carry(carry["state"]["fracture"])
        load = carry["state"]["load"]
        scalars = fr.summary(state, material(params), model, problem, loading(params, load, carry))
        info = carry["cache"]["info"]
        as_float = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
        return {
            "load_factor": load,
            "wall_displacement": load * params.max_displacement if tension else jnp.zeros((), jnp.float64),
            "crack_pressure": (jnp.zeros((), jnp.float64) if tension else carry["state"]["pressure"] / STRESS_UNIT
                               if injected else load * params.max_pressure),
            "injected_volume": load * params.max_volume if injected else jnp.zeros((), jnp.float64),
            "reaction_force": scalars["reaction"] * FORCE_UNIT,
            "elastic_energy": scalars["elastic_energy"] * ENERGY_UNIT,
            "fracture_energy": scalars["fracture_energy"] * ENERGY_UNIT,
            "crack_length": scalars["crack_length"],
            "crack_extent": scalars["crack_extent"],
            "crack_volume": scalars["crack_volume"],
            "opening_max": scalars["opening_max"],
            "damage_max": scalars["damage_max"],
            "iterations": as_float(info["iterations"]),
            "elasticity_iterations": as_float(info["elasticity_iterations"]),
            "damage_iterations": as_float(info["damage_iterations"]),
            "converged": as_float(info["converged"]),
            "regularisation_length": material(params).length,
        }

    stepper = Stepper(init, step, fields, unconditionally_stable, 1, change)
    damage0 = crack_cells(grid, config.notch_length)
    return Simulation(
        name="fracture",
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=lambda: {"damage": damage0},
        field_info=FIELD_INFO,
        diagnostics=diagnostics,
        scalar_info=SCALAR_INFO,
        scales={"length": (MICRON, "m"), "time": (1.0, "1 (load factor)"), "stress": (1e9, "Pa")},
    )


FIELD_INFO = {
    "damage": Quantity("1", "phase-field damage d (0 intact, 1 broken)"),
    "displacement_x": Quantity("um", "displacement along x (between the walls), at cell centres"),
    "displacement_y": Quantity("um", "displacement along y, at cell centres"),
    "stress_xx": Quantity("GPa", "sigma_xx (normal to the crack)"),
    "stress_yy": Quantity("GPa", "sigma_yy"),
    "crack_opening": Quantity("um", "crack opening profile delta(y) = int d du_x/dx dx (the same on every row)"),
}

SCALAR_INFO = {
    "load_factor": Quantity("1", "load factor t"),
    "wall_displacement": Quantity("um", "opening of the walls (notched_tension)"),
    "crack_pressure": Quantity("MPa", "pressure in the crack (pressurised_crack, injected_volume)"),
    "injected_volume": Quantity("um^2", "fluid volume in the crack per unit thickness (injected_volume)"),
    "reaction_force": Quantity("N/m", "force on the high wall per unit thickness (> 0: tension)"),
    "elastic_energy": Quantity("mJ/m", "stored elastic energy per unit thickness"),
    "fracture_energy": Quantity("mJ/m", "G_c int (w(d)/ell + ell |grad d|^2) / c_w per unit thickness"),
    "crack_length": Quantity("um", "regularised crack length (fracture energy / G_c)"),
    "crack_extent": Quantity("um", "length along y of the columns where max d >= 1/2"),
    "crack_volume": Quantity("um^2", "crack-opening area int d div u per unit thickness (Sneddon: 2 pi p a^2 / E')"),
    "opening_max": Quantity("um", "largest crack opening"),
    "damage_max": Quantity("1", "largest damage"),
    "iterations": Quantity("1", "alternate-minimisation (u-d) iterations of the last load step"),
    "elasticity_iterations": Quantity("1", "CG iterations of the elasticity solves of the last load step"),
    "damage_iterations": Quantity("1", "CG iterations of the damage solves of the last load step"),
    "converged": Quantity("1", "1 if the last step met the alternate-minimisation tolerance"),
    "regularisation_length": Quantity("um", "ell used"),
}
