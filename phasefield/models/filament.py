"""Crack-guided Li filament growth through a ceramic electrolyte (issue 14; physics.md 5.2 option 1, lumped).

Geometry (2D plane strain, x the stack axis, periodic along y with pitch L_y; or 3D, periodic along y and z)::

    Li anode (x = 0) | ceramic slab (LLZO, LPSC) | counter electrode (x = L_x)

A surface flaw of depth ``a0`` starts at the anode (centred at y = L_y / 2, inclined ``flaw_angle`` from x; or
several, ``flaws``: below),
pre-damaged (``d = 1`` on a line of cells, relaxed to the optimal AT1 profile) and pre-filled with Li connected
to the anode: stress-free Li volume ``V_ref = flaw_width * A``, ``A`` the flaw's face (``a0`` per unit thickness in
2D; in 3D ``a0 L_z`` for a ``strip`` through the z period, ``pi a0^2 / 2`` for a half-penny ``disc``:
:func:`flaw_measures`). In 3D the columns of x below run over (y, z), and the filament's faces are measured by
the crack's extent across z in each column.

Mechanics: the phase-field fracture library (:mod:`phasefield.physics.fracture`; AT1, Amor split, ``ell`` from
the strength unless given). The anode face is a roller (``u_x = 0``, no shear: the soft Li anode carries no
shear, and its normal stiffness is taken as rigid), so the anode is a mirror plane and the flaw is half of a
centre crack of length ``2 a``: ``K_I = p sqrt(pi a)`` (a traction-free face would give the edge crack's
1.12; the true soft anode lies in between: :data:`GEOMETRY_FACTOR`). The counter-electrode face is clamped; a
stack pressure is imposed as the displacement of that face that loads the intact slab to ``sigma_xx = -p_s``
under the lateral confinement (a rigid press; Amor split: confined compression is never degraded, so it cracks
nothing by itself). An in-plane compressive stress ``s`` along y (``in_plane_stress``; Fincher et al., Joule 2022:
bending or an implanted surface layer) is a uniform eigenstrain (:func:`prestress_eigenstrain`) that leaves the
intact slab at ``sigma_yy = -s`` with ``sigma_xx`` unchanged: the faces of a flaw along x are held shut by ``s``,
so it opens at ``p = s + K_Ic / sqrt(pi a)`` (superposition).

The filament is a pressurised crack (:mod:`phasefield.physics.filament`): one uniform Li pressure ``p`` per
filament from its volume, ``V_Li = V_c (1 + p / K_Li)``, ``V_c = V_ref + int d div u``; ``p`` enters the crack
as ``crack_pressure`` of :func:`~phasefield.physics.fracture.load_step` (work ``p d div u``), so the crack opens
and, at ``p sqrt(pi a) = K_Ic``, advances. Per step:

1. Geometry of the last state by columns of x: the crack depth (contiguous columns from the anode with
   ``max_y d >= 1/2``), the opening volume per column, and the Li front: the depth the Li volume fills from the
   mouth, and no deeper than the opening reaches ``li_min_opening`` (Li cannot enter a sub-nm gap). The
   Li/electrolyte interface of the filament is its two faces, ``2 * front / cos(angle)``;
2. Deposition, backward Euler on ``V_Li`` with the pressure of the end of the step (the crack linearised by its
   compliance ``C = dV/dp``, one elastic solve under a unit pressure): plating current on the faces
   ``i(eta, p)`` (Butler-Volmer with the mechanical overpotential, exchange current ``RT / (F R_ct)``), on the
   flat anode ``i(eta, p_s)``. Overpotential control holds ``eta``; current control finds ``eta`` whose total
   current is the applied one (bisection). The ionic potential drop along the filament (``i a / sigma``: 1 mV
   for 10 um at 0.5 mA/cm^2 in LLZO) is neglected: every Li surface sees the same ``eta``. With ``ionic_field``
   the electrolyte is resolved instead (:mod:`phasefield.physics.electrolyte_network`): the anode face and each
   filament's Li cells (its crack, ``d >= 1/2``, up to the Li front) are electrodes in a slab of conductivity
   ``(1 - d) sigma + d sigma_crack`` (an empty crack ahead of the Li blocks ions), with the counter electrode at
   the far wall; one unit-field solve per electrode and deposit gives their conductance matrix, and each surface
   plates at its own overpotential ``eta_k = V + (R I)_k`` (``V`` the cell voltage, held by overpotential control
   or found by current control; ``R`` the inverse conductance matrix, ``I`` the surfaces' currents), solved with
   the filaments' new volumes and pressures by one Newton solve (the filaments share the resistance). A filament
   reaching towards the counter electrode shortens the ionic path: it plates at a larger overpotential than the
   anode face, and the slab's resistance falls (the scalar ``electrolyte_resistance``);
3. Mechanics at fixed ``V_Li`` (volume control, which makes the growth stable: a crack that advances gains
   volume and lowers ``p``): :func:`load_step` with :class:`~phasefield.physics.fracture.VolumeControl`, ``p``
   re-solved from the Li balance at every u-d iteration (the crack linearised by a unit-pressure solve), the
   damage bounded below by the last step's (not by an earlier pass of this step); passes of at most
   ``max_iterations`` iterations until the u-d iterations converge and the balance holds to ``pressure_tolerance``.
   The state a step ends on (equilibrium, damage stationarity, Li balance) does not depend on ``max_iterations``
   (with the pressure updated only between passes, and each pass's damage locked in, a larger cap ran the crack
   further at a pressure too high: time to short 15.66 / 13.57 s at caps 5 / 60, 32^2; now 15.92 s at both).
4. With ``area_passes`` > 0, steps 2-3 again from the state of step 3 (its compliance, its Li interface, the
   plated volume from the start of the step), until the interface no longer changes or ``area_passes`` repeats:
   the filament's area implicit too. Plated on the start's interface (``area_passes`` = 0) a growing filament lags:
   time to short at 32^2 / 64^2 (10 mA/cm^2) 4.8 % / 14 % late with 1 um of crack per step.

Several flaws (``flaws``: ``[depth, y, angle]`` each, at most :data:`MAX_FLAWS`, 2D or 3D strips): each is its own
filament with its own Li volume and pressure ``p_k``. Every cell belongs to the filament of the nearest flaw line
(along y, periodic; cells equally near are shared): weights ``r_k``, a partition of unity (:func:`flaw_regions`).
Filament ``k``'s crack depth, Li front and opening volume are measured on ``d r_k``; the crack pressure is the
field ``sum_k p_k r_k``. Volume control (:class:`~phasefield.physics.fracture.VolumeControl` with ``regions``):
one unit-pressure solve per region (``N`` times the extra elastic solves), the compliance matrix ``C_jk`` (the
opening of ``j`` under a unit pressure in ``k``; a pressurised neighbour squeezes a crack shut, ``C_jk < 0``), and
the balances ``(V_c,j + sum_k C_jk (p'_k - p_k))(1 + p'_j / K_Li) = V_Li,j`` solved together
(:func:`~phasefield.physics.filament.li_pressures`). The deposit is the coupled backward Euler of all filaments
at one ``eta`` (:func:`~phasefield.physics.filament.implicit_deposits`; current control: the anode's and all
filaments' currents make the applied one). The run shorts when any crack reaches the gap. The scalars keep their
names for the whole (``crack_depth``: the deepest, ``li_volume``: the sum, ``li_pressure``: the highest) and add
``crack_depth_k``, ``filament_depth_k``, ``li_pressure_k``, ``li_volume_k``. The coupled sweeps (at most
``coupled_sweeps``: Newton steps on the pressures, Jacobi sweeps on the deposits) report their residuals,
``pressure_sweep_residual`` (the mechanics' Li balances) and ``deposit_sweep_residual`` (they stop at 1e-14; the
deposits of close flaws may stop at a small cap first), and ``converged`` is 0
when either exceeds ``pressure_tolerance``. The default single flaw keeps the scalar carry and control of one
filament, bit for bit as before ``flaws`` existed.

Adaptive dt (the stepper's ``change``): the relative change of the Li pressure, and either the largest damage
change per cell (``crack_advance_scale`` = 0: about 5 steps per cell of crack advance, so steps to short grow with
the grid) or the crack's advance over ``crack_advance_scale`` um (the same steps at any grid).

The run stops at a short circuit: the crack tip within ``short_circuit_gap`` of the counter electrode
(``time_to_short``). Cell voltage ``eta - i L_x / sigma`` (a reversible counter electrode; with ``ionic_field``
the network's ``V``).

Units: um, s, V; GPa inside (MPa and mA/cm^2 in the options and scalars), J/m^2 for toughness; 2D volumes per
unit thickness (um^2).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from phasefield.config import ConfigError, PrecisionTimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Grid
from phasefield.operators.walled_elasticity import (
    CLAMPED,
    ROLLER,
    Walls,
    cell_displacement,
    normal_strains,
)
from phasefield.physics import electrolyte_network as en
from phasefield.physics import filament as fl
from phasefield.physics import fracture as fr
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper, unconditionally_stable
from phasefield.simulation import Quantity, Simulation
from phasefield.units import MICRON

CONTROLS = ("overpotential", "current")
FLAW_SHAPES = ("strip", "disc")
COUNTERS = ("passes", "iterations", "elasticity_iterations", "damage_iterations")  # summed over a step's passes
TOUGHNESS_UNIT = 1e-3  # GPa um per J/m^2
STRESS_UNIT = 1e-3  # GPa per MPa
CURRENT_UNIT = 10.0  # A/m^2 per mA/cm^2
GEOMETRY_FACTOR = 1.0  # K_I / (p sqrt(pi a)) of the flaw at the roller (mirror) anode face
OVERPOTENTIAL_RANGE = (-1.5, 0.5)  # V: current control searches eta here (ionic_field: the cell voltage)
MAX_FLAWS = 8
NETWORK_TOLERANCE = 1e-9  # V: ionic_field, the surfaces' balance counts as converged below this
FLAW_SEPARATION = 4  # cells along y: the closest two flaw lines may come


@scenario_parameters
@dataclasses.dataclass
class Config:
    """``scenario=filament``: a Li-filled surface flaw in a ceramic electrolyte, plated until it shorts the cell."""

    name: str = option("filament", help="scenario name")
    size: list[float] = option(lambda: [32.0, 32.0], min=1e-3, static=True,
                               help="[L_x, L_y] or [L_x, L_y, L_z] um: anode-to-counter-electrode thickness, periods "
                               "along y (and z)")
    shape: list[int] = option(lambda: [64, 64], min=1, help="cells per axis [n_x, n_y] or [n_x, n_y, n_z]")
    flaw_shape: str = option("strip", choices=FLAW_SHAPES, static=True,
                             help="3D: strip (through the z period: the 2D flaw extruded) or disc (a half-penny of "
                             "radius flaw_depth at the anode, a penny crack with its mirror)")
    model: str = option("AT1", choices=fr.MODELS, help="damage model")
    split: str = option("volumetric_deviatoric", choices=fr.SPLITS, help="tension/compression split")
    young: float = option(150.0, min=0.0, exclusive=True, help="electrolyte Young's modulus E, GPa")
    poisson: float = option(0.257, min=0.0, max=0.49, help="electrolyte Poisson's ratio")
    toughness: float = option(6.2, min=0.0, exclusive=True, help="G_c, J/m^2 (LLZO: K_Ic = 1 MPa m^1/2)")
    strength: float = option(300.0, min=0.0, exclusive=True, help="tensile strength, MPa (sets ell if length = 0)")
    length: float = option(0.0, min=0.0, help="regularisation length ell, um (0: 3 E' G_c / (8 strength^2))")
    residual: float = option(1e-6, min=0.0, exclusive=True, max=1e-2, help="residual stiffness k of g(d)")
    flaw_depth: float = option(4.0, min=0.0, exclusive=True,
                               help="depth a0 of the surface flaw, um (unused with flaws: other values refused)")
    flaw_width: float = option(0.05, min=0.0, exclusive=True,
                               help="stress-free width of the Li-filled flaw, um (its Li volume is width times its "
                               "face: depth per unit thickness in 2D)")
    flaw_angle: float = option(0.0, min=-60.0, max=60.0, static=True,
                               help="flaw inclination from x, degrees (unused with flaws: other values refused)")
    flaws: list[list[float]] = option(list, help="several surface flaws, each its own filament: [depth um, y um, "
                                      "angle degrees] each (its line starts at the centre of the cell row holding "
                                      "y; width flaw_width; 2D or 3D strips); empty: one flaw of flaw_depth and "
                                      "flaw_angle at y = L_y / 2")
    li_bulk_modulus: float = option(11.0, min=0.0, exclusive=True, help="Li bulk modulus K_Li, GPa")
    li_molar_volume: float = option(1.30e-5, min=0.0, exclusive=True, help="Omega_Li, m^3/mol")
    li_min_opening: float = option(1e-3, min=0.0, help="narrowest opening the Li enters, um")
    control: str = option("overpotential", choices=CONTROLS, help="hold the overpotential or the current density")
    overpotential: float = option(-0.1, help="overpotential control: eta at the Li surfaces, V (< 0 plates); with "
                                  "ionic_field the cell voltage (the Li against the reversible counter electrode), "
                                  "which the surfaces' overpotentials and the ohmic drop share")
    current_density: float = option(1.0, help="current control: mean plating current density, mA/cm^2")
    interface_resistance: float = option(10.0, min=0.0, exclusive=True,
                                         help="Li|electrolyte charge-transfer resistance R_ct, ohm cm^2")
    transfer_coefficient: float = option(0.5, min=0.0, max=1.0, help="Butler-Volmer alpha")
    temperature: float = option(298.15, min=0.0, exclusive=True, help="K")
    conductivity: float = option(0.05, min=0.0, exclusive=True,
                                 help="ionic conductivity of the intact ceramic, S/m (the cell voltage; with "
                                 "ionic_field the electrolyte network's)")
    ionic_field: bool = option(False, help="resolve the electrolyte between the Li surfaces and the counter "
                               "electrode: a resistor network from the conductivity field, lowered where the ceramic "
                               "is broken (physics.md 5.2 item 3); the anode face and each filament plate at "
                               "their own overpotential, and overpotential control holds the cell voltage. "
                               "False: every Li surface at the held overpotential, the ohmic drop only in "
                               "cell_voltage")
    crack_conductivity: float = option(0.0, min=0.0, help="ionic_field: ionic conductivity of a broken cell (d = 1) "
                                       "beyond the Li front, S/m (an empty crack: 0; at least 1e-6 of conductivity): "
                                       "sigma(d) = (1 - d) conductivity + d crack_conductivity")
    electronic_conductivity: float = option(0.0, min=0.0, static=True,
                                            help="ionic_field: electronic conductivity of the intact ceramic, S/m "
                                            "(electrons leak from the Li to the counter electrode and plate nothing; "
                                            "LLZO 1e-8 to 1e-6; 0 with crack_electronic_conductivity 0: no leakage)")
    crack_electronic_conductivity: float = option(0.0, min=0.0, static=True,
                                                  help="ionic_field: electronic conductivity of a broken cell (d = 1), "
                                                  "S/m (reduced or Li-coated crack faces), as sigma(d) for ions")
    stack_pressure: float = option(0.0, min=0.0, help="stack pressure along x, MPa")
    grain_size: float = option(0.0, min=0.0, static=True,
                               help="weak grain boundaries: mean grain size, um (a Voronoi tessellation, one random "
                               "seed per grain_size^2 of slab; 0: a uniform slab)")
    grain_boundary_width: float = option(1.0, min=0.0, exclusive=True, static=True,
                                         help="width of the weak zone along each grain boundary, um")
    grain_boundary_toughness: float = option(0.3, min=0.0, exclusive=True, max=1.0,
                                             help="G_c of the grain boundaries over G_c of the grains")
    grain_seed: int = option(0, min=0, static=True, help="seed of the grain tessellation")
    in_plane_stress: float = option(0.0, min=0.0, max=2000.0,
                                    help="compressive stress along y (parallel to the electrodes) in the intact slab, "
                                    "MPa (Fincher et al. 2022: bending or implanted layers); sigma_xx stays as the "
                                    "stack pressure sets it")
    short_circuit_gap: float = option(2.0, min=0.0, help="stop when the crack tip is this close to the counter "
                                                        "electrode, um")
    tolerance: float = option(1e-4, min=0.0, exclusive=True, static=True, help="u-d iterations: max |d_new - d|")
    elasticity_tolerance: float = option(1e-6, min=0.0, exclusive=True, max=1e-3, static=True,
                                         help="relative residual of each u-d iteration's elasticity CG (10 mA/cm^2 "
                                         "to short: the time to short of 1e-9 to 1e-6 relative at 32^2 and 64^2, "
                                         "with 31-34 % fewer CG iterations; 1e-5: 5e-6 and 48 % fewer)")
    max_iterations: int = option(10, min=1, static=False,
                                 help="u-d iterations per mechanics pass (the Li pressure follows the Li volume at "
                                 "every iteration; the passes repeat until converged; a number, not structure)")
    damage_acceleration: str = option("anderson", choices=fr.ACCELERATIONS,
                                      help="u-d iterations: next damage iterate G(d) (none), d + w (G(d) - d) "
                                      "(overrelax) or Anderson mixing of the last anderson_window iterates (3x "
                                      "fewer u-d iterations than none; time to short within 0.03 % for one flaw, "
                                      "2 % in every mode measured, README)")
    relaxation_weight: float = option(1.6, min=1.0, max=1.95, static=True, help="overrelax: the weight w")
    anderson_window: int = option(3, min=1, max=10, help="anderson: iterate differences kept")
    pressure_tolerance: float = option(1e-6, min=0.0, exclusive=True,
                                       help="Li volume balance, relative, at the end of a time step's mechanics")
    pressure_passes: int = option(60, min=1, static=False, help="most mechanics passes (load steps) per time step")
    coupled_sweeps: int = option(fl.COUPLED_SWEEPS, min=1, static=False,
                                 help="several flaws: most Newton steps on the coupled Li pressures and Jacobi "
                                 "sweeps of the coupled deposits (their residuals: the scalars pressure_sweep_residual "
                                 "and deposit_sweep_residual)")
    area_passes: int = option(0, min=0, static=False, help="most repeats per step of the deposit and the mechanics with the Li "
                              "interface of the end of the step (0: the interface of its start)")
    crack_advance_scale: float = option(0.0, min=0.0, static=True,
                                        help="um: crack advance per step counted as a change of 1 by the adaptive "
                                        "dt (0: the largest damage change per cell counts)")
    t_end: float = option(60.0, min=0.0, exclusive=True, help="s")

    def check(self, prefix: str):
        if len(self.shape) not in (2, 3) or len(self.size) != len(self.shape):
            raise ConfigError(f"{prefix}.shape", self.shape, "two or three entries, as many as in size")
        if min(self.shape[:2]) < 8:
            raise ConfigError(f"{prefix}.shape", self.shape, "at least 8 cells along x and y")
        if self.flaw_shape == "disc" and len(self.shape) != 3:
            raise ConfigError(f"{prefix}.flaw_shape", self.flaw_shape, "strip in 2D (disc is a 3D half-penny)")
        if self.flaw_shape == "disc" and 2 * self.flaw_depth >= min(self.size[1:]):
            raise ConfigError(f"{prefix}.flaw_depth", self.flaw_depth,
                              f"< {min(self.size[1:]) / 2:g} um for a disc: its diameter within the periods along y "
                              "and z (its images there interact with it)")
        if len(self.shape) == 3:
            for key, value, allowed, ok in (("flaw_angle", self.flaw_angle, "0 in 3D", self.flaw_angle == 0.0),
                                            ("split", self.split, "volumetric_deviatoric or none in 3D (the "
                                             "spectral split is 2D)", self.split != "spectral"),
                                            ("grain_size", self.grain_size, "0 in 3D (the tessellation is 2D)",
                                             self.grain_size == 0.0)):
                if not ok:
                    raise ConfigError(f"{prefix}.{key}", value, allowed)
        if not self.ionic_field and (self.electronic_conductivity > 0 or self.crack_electronic_conductivity > 0):
            key = "electronic_conductivity" if self.electronic_conductivity > 0 else "crack_electronic_conductivity"
            raise ConfigError(f"{prefix}.{key}", getattr(self, key), "0 without ionic_field (the leakage runs "
                              "between the Li and the counter electrode at the network's cell voltage)")
        if self.flaws:
            check_flaws(self, f"{prefix}.flaws")
            for f in dataclasses.fields(self):  # flaw_depth and flaw_angle unused: a value of the user's is refused
                if f.name in ("flaw_depth", "flaw_angle") and getattr(self, f.name) != f.default:
                    raise ConfigError(f"{prefix}.{f.name}", getattr(self, f.name),
                                      f"{f.default:g} (the default) with flaws: the flaws' depths and angles come "
                                      "from flaws ([depth um, y um, angle degrees] each)")
        elif self.flaw_depth * np.cos(np.radians(self.flaw_angle)) + self.short_circuit_gap >= self.size[0]:
            raise ConfigError(f"{prefix}.flaw_depth", self.flaw_depth, "a flaw that leaves the short-circuit gap")
        spacing = max(s / n for s, n in zip(self.size, self.shape))
        if self.grain_size > 0 and self.grain_boundary_width < spacing:
            raise ConfigError(f"{prefix}.grain_boundary_width", self.grain_boundary_width,
                              f">= the cell size, {spacing:.4g} um (a narrower zone misses cells)")
        if self.ionic_field:
            check_cell_voltage(self, prefix)
        if self.in_plane_stress > 0.5 * compression_onset_stress(self):
            raise ConfigError(f"{prefix}.in_plane_stress", self.in_plane_stress,
                              f"<= {0.5 * compression_onset_stress(self):.0f} MPa with split={self.split} (half the "
                              "stress at which the compression alone starts to damage the intact slab; measured from "
                              "a flaw at 0.8 of it with volumetric_deviatoric, which degrades the deviatoric energy; "
                              "split=spectral allows 2.9 times more)")


def check_flaws(self: Config, key: str):
    """``flaws``: at most :data:`MAX_FLAWS` entries ``[depth, y, angle]``, each leaving the short-circuit gap, ``y``
    in ``[0, L_y)``, the angle in [-60, 60] degrees (0 in 3D), strips in 3D, and no two flaw lines closer than
    :data:`FLAW_SEPARATION` cells along y (periodic) over the depth of the deeper."""
    if len(self.flaws) > MAX_FLAWS:
        raise ConfigError(key, self.flaws, f"at most {MAX_FLAWS} flaws")
    if len(self.shape) == 3 and self.flaw_shape != "strip":
        raise ConfigError(key, self.flaws, "empty with flaw_shape=disc (several flaws are strips through z)")
    lx, ly, hy = self.size[0], self.size[1], self.size[1] / self.shape[1]
    for i, flaw in enumerate(self.flaws):
        if len(flaw) != 3:
            raise ConfigError(f"{key}[{i}]", flaw, "[depth um, y um, angle degrees]")
        depth, y, angle = flaw
        limit = 0.0 if len(self.shape) == 3 else 60.0
        if abs(angle) > limit:
            raise ConfigError(f"{key}[{i}][2]", angle, "0 in 3D" if limit == 0.0 else "in [-60, 60] degrees")
        cos = np.cos(np.radians(angle))
        if not 0.0 < depth * cos < lx - self.short_circuit_gap:
            raise ConfigError(f"{key}[{i}][0]", depth, f"> 0 and < {(lx - self.short_circuit_gap) / cos:.4g} um (a "
                              "flaw that leaves the short-circuit gap)")
        if not 0.0 <= y < ly:
            raise ConfigError(f"{key}[{i}][1]", y, f"in [0, {ly:g}) um")
    lines = flaw_lines(self.flaws, hy, ly)
    for i in range(len(lines)):
        for j in range(i):
            reach = max(self.flaws[i][0] * np.cos(np.radians(self.flaws[i][2])),
                        self.flaws[j][0] * np.cos(np.radians(self.flaws[j][2])))
            x = np.linspace(0.0, reach, 65)
            apart = np.mod(lines[i](x) - lines[j](x), ly)
            closest = float(np.min(np.minimum(apart, ly - apart)))
            if closest < FLAW_SEPARATION * hy * (1 - 1e-9):
                raise ConfigError(key, self.flaws, f"flaw lines at least {FLAW_SEPARATION} cells "
                                  f"({FLAW_SEPARATION * hy:.4g} um) apart along y (periodic) over their depth: "
                                  f"flaws {j} and {i} come within {closest:.4g} um")


def flaw_row_centre(spacing: float, count: int, position=None) -> float:
    """y (um) at which a flaw's line starts: the centre of the cell row holding ``position`` (default the row
    ``n_y // 2``, whose low face is ``L_y / 2`` for even ``n_y``)."""
    row = count // 2 if position is None else int(np.floor(position / spacing + 1e-9)) % count
    return (row + 0.5) * spacing


def flaw_lines(flaws, spacing: float, period: float) -> list:
    """Per flaw ``[depth, y, angle]``, its line ``y(x) = y_0 + x tan(angle)`` (``y_0``: :func:`flaw_row_centre`)."""
    count = round(period / spacing)
    return [lambda x, y0=flaw_row_centre(spacing, count, y), t=np.tan(np.radians(angle)): y0 + x * t
            for _, y, angle in flaws]


def flaw_list(config: Config) -> list:
    """The flaws as ``(depth um, y um or None, angle degrees)``: ``flaws``, or the one of ``flaw_depth`` and
    ``flaw_angle`` at the default row (``y`` None)."""
    if config.flaws:
        return [tuple(flaw) for flaw in config.flaws]
    return [(config.flaw_depth, None, config.flaw_angle)]


def flaw_regions(grid: Grid, flaws) -> np.ndarray:
    """``(N, *grid)`` weights, a partition of unity: 1 on the cells nearest (along y, periodic) to flaw ``k``'s line
    (:func:`flaw_lines`, extended past its tip), shared equally where two lines are equally near; each filament
    measures its crack, opening and Li on ``d r_k`` and loads it with its own pressure. One flaw: all ones."""
    period = grid.lengths[1]
    x = grid.axis_coordinates(0)[:, None]
    y = grid.axis_coordinates(1)[None, :]
    distance = []
    for line in flaw_lines(flaws, grid.spacing[1], period):
        apart = np.mod(y - line(x), period)
        distance.append(np.minimum(apart, period - apart))
    distance = np.stack(distance)
    nearest = distance <= distance.min(axis=0) + 1e-9 * grid.spacing[1]
    weights = nearest / nearest.sum(axis=0)
    if grid.ndim == 3:
        weights = np.broadcast_to(weights[..., None], (len(flaws),) + grid.shape)
    return np.ascontiguousarray(weights, dtype=float)


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), tuple(s / n for s, n in zip(config.size, config.shape)))


WALLS = Walls(0, ROLLER, CLAMPED)


def flaw_cells(grid: Grid, depth: float, angle: float = 0.0, shape: str = "strip", position=None) -> np.ndarray:
    """1 on the cells whose centre lies within half a cell (measured across the flaw) of the segment from
    (0, y0) to ``depth`` along ``angle`` (degrees from x), y0 the centre of the cell row holding ``position``
    (default the row n_y / 2; :func:`flaw_row_centre`), y measured across the period from y0 (a slanted flaw near
y = 0 continues from L_y): a flaw one cell thick on the grid. 3D: that segment
    through the z period (``strip``), or only within ``depth`` of (0, y0, z0) (``disc``: a half-penny, z0 the
    centre of the z period)."""
    x = grid.axis_coordinates(0)[:, None]
    y = grid.axis_coordinates(1)[None, :] - flaw_row_centre(grid.spacing[1], grid.shape[1], position)
    period = grid.lengths[1]
    y = np.where(y >= period / 2, y - period, np.where(y < -period / 2, y + period, y))  # periodic along y
    t = np.radians(angle)
    along = x * np.cos(t) + y * np.sin(t)
    across = -x * np.sin(t) + y * np.cos(t)
    thickness = 0.5 * max(grid.spacing[:2]) * (abs(np.cos(t)) + abs(np.sin(t)))
    cells = (np.abs(across) <= thickness * (1 + 1e-9)) & (along >= 0) & (along < depth)
    if grid.ndim == 2:
        return cells.astype(float)
    z = grid.axis_coordinates(2) - (grid.shape[2] // 2 + 0.5) * grid.spacing[2]
    inside = np.hypot(x[:, :, None], z[None, None, :]) < depth if shape == "disc" else True
    return np.broadcast_to(cells[:, :, None] & inside, grid.shape).astype(float)


def material(params: Config, grain_boundary=None) -> fr.FractureMaterial:
    """The slab's :class:`~phasefield.physics.fracture.FractureMaterial`; with ``grain_boundary`` (1 on weak cells)
    a toughness field, ``G_c (1 - (1 - r) b)`` with ``r`` = ``grain_boundary_toughness``. ``ell`` from the grains'
    strength (the boundaries are weaker by ``sqrt(r)``)."""
    toughness = params.toughness * TOUGHNESS_UNIT
    modulus = fr.plane_strain_modulus(params.young, params.poisson)
    from_strength = fr.length_from_strength(modulus, toughness, params.strength * STRESS_UNIT, params.model)
    length = jnp.where(params.length > 0, params.length, from_strength)
    if grain_boundary is not None:
        toughness = toughness * (1.0 - (1.0 - params.grain_boundary_toughness) * grain_boundary)
    return fr.FractureMaterial(params.young, params.poisson, toughness, length, params.residual)


def grain_boundary_cells(grid: Grid, grain_size: float, width: float, seed: int) -> np.ndarray:
    """1 on the cells whose centre lies within ``width / 2`` of a grain boundary, else 0: a Voronoi tessellation of
    ``round(L_x L_y / grain_size^2)`` uniform random seeds (periodic along y, as the slab; the electrode faces are
    not boundaries). A cell's distance to the boundary between its nearest seeds ``a`` and ``b`` is
    ``(|x - b|^2 - |x - a|^2) / (2 |a - b|)``."""
    lx, ly = grid.lengths
    count = max(2, round(lx * ly / grain_size**2))
    seeds = np.random.default_rng(seed).uniform((0.0, 0.0), (lx, ly), (count, 2))
    seeds = np.concatenate([seeds + (0.0, shift * ly) for shift in (-1, 0, 1)])
    y = grid.axis_coordinates(1)[:, None]
    cells = np.zeros(grid.shape)
    for row, x in enumerate(grid.axis_coordinates(0)):  # a row at a time: n_y x seeds distances
        squared = (x - seeds[:, 0]) ** 2 + (y - seeds[:, 1]) ** 2
        nearest = np.argpartition(squared, 1, axis=1)[:, :2]
        first, second = np.take_along_axis(squared, nearest, axis=1).T
        separation = np.linalg.norm(seeds[nearest[:, 0]] - seeds[nearest[:, 1]], axis=1)
        cells[row] = (second - first) / (2.0 * separation) <= width / 2
    return cells


def stack_displacement(params: Config, thickness: float):
    """Counter-electrode displacement that puts the intact, laterally confined slab at ``sigma_xx = -p_s``:
    ``-p_s L_x / (lambda + 2 mu)``."""
    bulk, shear = fr.bulk_and_shear(params.young, params.poisson)
    return -params.stack_pressure * STRESS_UNIT * thickness / (bulk + 4.0 * shear / 3.0)


def compression_onset_stress(params: Config) -> float:
    """In-plane stress (MPa) at which the split starts to damage the intact slab: its degraded ("tensile") energy
    under ``sigma_yy = -s``, ``sigma_xx = 0`` (plane strain: strains ``e = s (lambda, -(lambda + 2 mu), 0) /
    (4 mu (lambda + mu))``, which expand x) equals the energy of the model's critical stress in tension,
    ``sigma_c^2 / (2 E)`` (:func:`~phasefield.physics.fracture.critical_stress`): the deviatoric ``mu |dev e|^2``
    (volumetric-deviatoric), ``mu <e_xx>+^2`` (spectral: tr e < 0) or all of ``lambda tr^2 / 2 + mu |e|^2``
    (none). With weak grain boundaries the boundaries' (``sqrt(r)`` lower)."""
    bulk, shear = fr.bulk_and_shear(params.young, params.poisson)
    lam = bulk - 2.0 * shear / 3.0
    strain = np.array([lam, -(lam + 2.0 * shear), 0.0]) / (4.0 * shear * (lam + shear))  # per unit s
    degraded = {"volumetric_deviatoric": shear * np.sum((strain - strain.mean()) ** 2),
                "spectral": shear * strain[0] ** 2,
                "none": 0.5 * lam * strain.sum() ** 2 + shear * np.sum(strain**2)}[params.split]
    modulus = fr.plane_strain_modulus(params.young, params.poisson)
    toughness = params.toughness * TOUGHNESS_UNIT
    length = params.length or fr.length_from_strength(modulus, toughness, params.strength * STRESS_UNIT, params.model)
    critical = fr.critical_stress(params.young, toughness, length, params.model)
    weakest = np.sqrt(params.grain_boundary_toughness) if params.grain_size > 0 else 1.0
    return float(weakest * critical / np.sqrt(2.0 * params.young * degraded)) / STRESS_UNIT


def prestress_eigenstrain(params: Config) -> dict:
    """The uniform eigenstrain that puts the intact slab, confined by the electrodes along x and periodic along y,
    at ``sigma_yy = -s`` and ``sigma_xx = 0`` (plane strain, so ``sigma_zz = -nu s``): ``sigma = -C eps*`` with
    ``eps*_yy = s (lambda + 2 mu) / (4 mu (lambda + mu))``, ``eps*_xx = -lambda s / (4 mu (lambda + mu))``.
    A crack along x then opens only once the Li pressure exceeds ``s`` (``K_I = (p - s) sqrt(pi a)``)."""
    bulk, shear = fr.bulk_and_shear(params.young, params.poisson)
    lam = bulk - 2.0 * shear / 3.0
    s = params.in_plane_stress * STRESS_UNIT
    scale = 4.0 * shear * (lam + shear)
    return {"xx": -lam * s / scale, "yy": (lam + 2.0 * shear) * s / scale}


def check_cell_voltage(self: Config, prefix: str):
    """``ionic_field``: the held cell voltage within :data:`OVERPOTENTIAL_RANGE`; the applied current one that the
    intact slab carries within 90 % of it: the flat anode's Butler-Volmer overpotential at ``j`` plus its ohmic drop
    ``j L_x / sigma`` (the filament lowers the drop, a leakage the plating current)."""
    low, high = OVERPOTENTIAL_RANGE
    if self.control == "overpotential" and not low <= self.overpotential <= high:
        raise ConfigError(f"{prefix}.overpotential", self.overpotential,
                          f"in [{low:g}, {high:g}] V with ionic_field (the cell voltage)")
    if self.control == "current":
        current = self.current_density * CURRENT_UNIT

        def excess(eta):
            return float(fl.plating_current(eta, 0.0, exchange_current(self), self.transfer_coefficient,
                                            self.temperature, self.li_molar_volume)) - current

        bracket = (low, 0.0) if current > 0 else (0.0, high)
        kinetic = 0.0 if current == 0 else optimize.brentq(excess, *bracket, xtol=1e-9)
        needed = kinetic - current * self.size[0] * 1e-6 / self.conductivity
        if not 0.9 * low <= needed <= 0.9 * high:
            raise ConfigError(f"{prefix}.current_density", self.current_density,
                              f"a current the intact slab carries at a cell voltage within 90 % of "
                              f"[{low:g}, {high:g}] V with ionic_field (it needs {needed:.3g} V: "
                              f"{kinetic:.3g} V of kinetics and {needed - kinetic:.3g} V of ohmic drop through "
                              f"{self.size[0]:g} um at {self.conductivity:g} S/m)")


def exchange_current(params: Config):
    """``i0 = RT / (F R_ct)``, A/m^2 (R_ct in ohm cm^2)."""
    return fl.GAS_CONSTANT * params.temperature / (fl.FARADAY * params.interface_resistance * 1e-4)


def deposition_rate(params: Config):
    """Stress-free Li volume per charge: um per s per A/m^2 (``1e6 Omega / F``)."""
    return 1e6 * params.li_molar_volume / fl.FARADAY


def flaw_measures(params: Config, depth=None) -> tuple:
    """The flaw's face area (one face), its compliance ``dV/dp`` and ``K_I / p`` (um^2 or um, um^3 / GPa or
    um^2 / GPa, um^1/2; per unit thickness in 2D): half a centre crack of length ``2a`` (2D, 3D ``strip`` times
    L_z; Sneddon ``pi a^2 / E'``, ``sqrt(pi a)``) or half a penny of radius ``a`` (``disc``: ``8 a^3 / (3 E')``,
    ``2 sqrt(a / pi)``), the anode face being their mirror plane; ``a`` = ``depth``, default ``flaw_depth``."""
    a = params.flaw_depth if depth is None else depth
    modulus = fr.plane_strain_modulus(params.young, params.poisson)
    if len(params.size) == 3 and params.flaw_shape == "disc":
        return 0.5 * np.pi * a**2, 8.0 * a**3 / (3.0 * modulus), 2.0 * jnp.sqrt(a / np.pi)
    extent = params.size[2] if len(params.size) == 3 else 1.0
    return a * extent, np.pi * a**2 / modulus * extent, GEOMETRY_FACTOR * jnp.sqrt(np.pi * a)


def filling_time(params: Config) -> float:
    """Time (s) to plate, at the initial rate, the Li that brings the flaw to ``p_max = F |eta| / Omega``:
    ``(V_ref / K_Li + C) p_max / (rate 2 A i(eta, 0))``, ``A`` and ``C`` the face area and compliance of
    :func:`flaw_measures` (of the deepest of ``flaws``). A time scale for the steps of a run at a held
    overpotential (with ``ionic_field`` the held cell voltage taken as the filament's: a shorter time)."""
    p_max = float(fl.equilibrium_pressure(params.overpotential, params.li_molar_volume))
    deepest = max((depth for depth, _, _ in params.flaws), default=None)
    area, compliance, _ = (float(v) for v in flaw_measures(params, deepest))
    volume = (params.flaw_width * area / params.li_bulk_modulus + compliance) * p_max
    current = float(fl.plating_current(params.overpotential, 0.0, exchange_current(params),
                                       params.transfer_coefficient, params.temperature, params.li_molar_volume))
    return volume / (deposition_rate(params) * 2.0 * area * current)


def _to_carry(state: fr.FractureState) -> dict:
    out = state._asdict()
    out["displacement"] = {"xyz"[a]: u for a, u in enumerate(state.displacement)}
    return out


def _from_carry(carry: dict) -> fr.FractureState:
    values = dict(carry)
    values["displacement"] = tuple(carry["displacement"][k] for k in sorted(carry["displacement"]))
    return fr.FractureState(**values)


@register_scenario("filament", Config, PrecisionTimeSolverConfig)
def build(config: Config, solver: PrecisionTimeSolverConfig) -> Simulation:
    """The filament simulation; ``solver.decomposition=slabs`` lays out the carry and the mechanics as the fracture
    scenario does (:func:`phasefield.models.fracture.build`). float64 only: its mechanics is the fracture
    scenario's u-d iteration, which float32 does not reproduce (:data:`phasefield.models.fracture.FLOAT64_ONLY`)."""
    if solver.precision != "float64":
        raise ConfigError("solver.precision", solver.precision,
                          "'float64' for filament: its mechanics is the fracture scenario's, refused in float32 "
                          "(a float32 port of fracture was 7e-3 of the stress range off float64 after 4 load steps)")
    grid = make_grid(config)
    slabs = slabs_for(solver.decomposition, grid.shape)
    problem = fr.FractureProblem(grid, WALLS, split=config.split, tolerance=config.tolerance,
                                 elasticity_tolerance=config.elasticity_tolerance,
                                 max_iterations=config.max_iterations, acceleration=config.damage_acceleration,
                                 relaxation=config.relaxation_weight, window=config.anderson_window,
                                 slabs=slabs)
    model = fr.damage_model(config.model)
    hx = grid.spacing[0]
    thickness = grid.lengths[0]
    period = float(np.prod(grid.lengths[1:]))  # the anode's area per unit thickness (2D) or area (3D)
    flaw_axes = tuple(range(2, grid.ndim + 1))  # the axes of a column of x, after a leading axis of filaments
    x_centres = jnp.asarray(grid.axis_coordinates(0))
    flaws = flaw_list(config)
    count = len(flaws)
    single = not config.flaws  # the default flaw: its carry holds scalars, as before several flaws
    regions = jnp.asarray(flaw_regions(grid, flaws))
    cos_angles = jnp.asarray([np.cos(np.radians(angle)) for _, _, angle in flaws])
    three_d = grid.ndim == 3
    disc = three_d and config.flaw_shape == "disc"
    f64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731

    def per_filament(value, axes: int = 1):
        """A carried per-filament value as an array with ``axes`` leading filament axes (``(N,)``, ``(N, N)``)."""
        return jnp.reshape(value, (1,) * axes + jnp.shape(value)) if single else value

    def carried(value, axes: int = 1):
        """The inverse of :func:`per_filament`: the default flaw's values carried without their filament axes."""
        return jnp.reshape(value, jnp.shape(value)[axes:]) if single else value

    def flaw_depths(params):
        """``(N,)`` um: ``flaw_depth`` (a parameter) for the default flaw, else the depths of ``flaws``."""
        return jnp.reshape(f64(params.flaw_depth), (1,)) if single else f64([depth for depth, _, _ in flaws])

    def loading(params, pressure):
        """The loads with the crack pressures ``p`` (``(N,)``: the vector :class:`~fr.VolumeControl` takes)."""
        zero = f64(0.0)
        return fr.Loading((zero, f64(stack_displacement(params, thickness))), (zero, zero), f64(pressure),
                          prestress_eigenstrain(params))

    def reference_columns(params):
        """Stress-free flaw volume per column of x and filament (``(N, n_x)``, um^2; um^3 in 3D): ``width / cos``
        per unit length of x over the flaw, times its extent across z in 3D (the period, or the half-penny's chord
        at the column's centre)."""
        depths = flaw_depths(params)[:, None]
        extent = depths * cos_angles[:, None]
        overlap = jnp.clip(jnp.minimum(x_centres + hx / 2, extent) - (x_centres - hx / 2), 0.0, hx)
        if disc:
            chord = 2.0 * jnp.sqrt(jnp.maximum(depths**2 - x_centres**2, 0.0))
        else:
            chord = grid.lengths[2] if three_d else 1.0
        return params.flaw_width / cos_angles[:, None] * overlap * chord

    def opening_columns(state: fr.FractureState):
        """``sum V d r_k div u`` over each column of x of each filament's region ``r_k``: the opening volume of the
        diffuse crack (``(N, n_x)``, um^2; um^3 in 3D)."""
        trace = sum(normal_strains(state.displacement, grid, WALLS))
        return grid.cell_volume * jnp.sum(state.damage * regions * trace, axis=flaw_axes)

    def crack_extent(damage):
        """Extent across z of the crack (``max_y d >= 1/2``) in each column of x (um; ``damage`` with a leading
        axis of filaments); 1 in 2D."""
        if not three_d:
            return jnp.ones(damage.shape[:2], damage.dtype)
        return grid.spacing[2] * jnp.sum(jnp.max(damage, axis=-2) >= 0.5, axis=-1)

    def leading(mask):
        """Length of the run of True columns that starts at the anode (along the last axis), um."""
        return hx * jnp.sum(jnp.cumprod(mask.astype(jnp.float64), axis=-1), axis=-1)

    def geometry(params, state: fr.FractureState, pressure, li_volume):
        """Per filament (``(N,)``, measured on ``d r_k``): crack depth, Li front depth, crack volume ``V_c``
        (um, um, um^2; um^3 in 3D)."""
        damage = state.damage * regions
        depth = leading(jnp.max(damage, axis=flaw_axes) >= 0.5)
        columns = reference_columns(params) + opening_columns(state)
        filled_volume = li_volume / (1.0 + pressure / params.li_bulk_modulus)
        # a slack of 1e-3 of the volume: the balance closes to pressure_tolerance, and the columns past the tip hold
        # round-off volumes
        by_volume = leading(jnp.cumsum(columns, axis=-1) <= filled_volume[:, None] * (1.0 + 1e-3))
        by_opening = leading(columns / (hx * jnp.maximum(crack_extent(damage), 1e-30)) >= params.li_min_opening)
        front = jnp.minimum(jnp.minimum(by_volume, by_opening), depth)
        return depth, front, jnp.sum(columns, axis=-1)

    def pressured_step(params, mat, state, committed, pressure, li_volume, reference, unit):
        """:func:`fr.load_step` under :class:`~fr.VolumeControl` of the filaments' Li volumes over their regions;
        one filament: the control of one fluid body (no regions), which it is. Returns the state, its pressures
        ``(N,)``, compliance matrix and unit-pressure displacements (a leading filament axis), and the step info."""
        if count == 1:
            control = fr.VolumeControl(li_volume[0], params.li_bulk_modulus, reference[0], tuple(u[0] for u in unit))
            state, info = fr.load_step(problem, mat, model, state, loading(params, pressure[0]), params.max_iterations,
                                       committed, control)
            return (state, jnp.reshape(info.pressure, (1,)), jnp.reshape(info.compliance, (1, 1)),
                    tuple(u[None] for u in info.unit), info)
        control = fr.VolumeControl(li_volume, params.li_bulk_modulus, reference, unit, regions, params.coupled_sweeps)
        state, info = fr.load_step(problem, mat, model, state, loading(params, pressure), params.max_iterations,
                                   committed, control)
        return state, info.pressure, info.compliance, info.unit, info

    def equilibrate(params, state: fr.FractureState, committed: fr.FractureState, carried_pressure, unit, pressure,
                    li_volume, grain_boundary):
        """Mechanics at fixed Li volumes: load steps under volume control (:class:`~fr.VolumeControl` over the
        filaments' regions: the Li pressures close their balances at every u-d iteration, ``pressure`` is their
        first guess), irreversible with respect to ``committed`` (the state of the last time step: a pass may heal
        what an earlier pass of the same step damaged), repeated until the u-d iterations converge and every
        balance holds to ``pressure_tolerance`` (at most ``pressure_passes`` passes of at most ``max_iterations``
        iterations: the fixed point does not depend on the split). ``carried_pressure``: the pressures ``state`` is
        in equilibrium with; ``unit``: the displacements under a unit pressure in each region. The first load
        step starts from ``u + sum_k (p_k - p_carried,k) unit_k`` (exact while the damage and the tension set
        stay). Returns the state, the pressures it carries, its compliance matrix ``dV_j/dp_k`` and unit-pressure
        displacements, and iteration counts. ``grain_boundary``: the weak cells (``None``: a uniform slab)."""
        mat = material(params, grain_boundary)
        reference = jnp.sum(reference_columns(params), axis=-1)

        def body(carry):
            state, target, previous, unit, _, peak, passes, iterations, cg, cg_damage, _, _, _ = carry
            start = tuple(u + fr.weighted_sum(target - previous, v) for u, v in zip(state.displacement, unit))
            state, p, c, unit, info = pressured_step(params, mat, state._replace(displacement=start), committed, target,
                                               li_volume, reference, unit)
            volume = jnp.sum(reference_columns(params) + opening_columns(state), axis=-1)
            mismatches = (volume * (1.0 + p / params.li_bulk_modulus) - li_volume) / li_volume
            mismatch = mismatches[jnp.argmax(jnp.abs(mismatches))]
            return (state, p, p, unit, c, jnp.maximum(peak, jnp.max(p)), passes + 1,
                    iterations + info.iterations, cg + info.elasticity_iterations,
                    cg_damage + info.damage_iterations, mismatch, info.converged, info.pressure_residual)

        def keep_going(carry):
            passes, mismatch, converged = carry[6], carry[10], carry[11]
            unbalanced = (jnp.abs(mismatch) > params.pressure_tolerance) | ~converged
            return unbalanced & (passes < params.pressure_passes)

        zero = jnp.zeros((), jnp.int32)
        start = (state, f64(pressure), f64(carried_pressure), unit, jnp.zeros((count, count)), f64(0.0), zero, zero,
                 zero, zero, f64(jnp.inf), jnp.asarray(False), f64(0.0))
        state, applied, _, unit, c, peak, passes, iterations, cg, cg_damage, mismatch, converged, residual = \
            jax.lax.while_loop(keep_going, body, start)
        info = {"passes": passes, "iterations": iterations, "elasticity_iterations": cg,
                "damage_iterations": cg_damage, "mismatch": mismatch, "peak_pressure": peak, "converged": converged,
                "pressure_sweep_residual": residual}
        return state, applied, c, unit, info

    equilibrate = jax.jit(equilibrate)  # traced once for a step's first and later passes (and every program built here)

    def currents(params, eta, pressure):
        return fl.plating_current(eta, pressure, exchange_current(params), params.transfer_coefficient,
                                  params.temperature, params.li_molar_volume)

    def interface_area(state: fr.FractureState, front):
        """Each filament's Li/electrolyte interface (``(N,)``): its two faces up to its Li ``front``, ``2 front /
        cos`` per unit thickness in 2D, ``2 sum_x (length of the column up to the front) x (crack extent across
        z)`` in 3D."""
        if not three_d:
            return 2.0 * front / cos_angles
        filled = jnp.clip(front[:, None] - (x_centres - hx / 2), 0.0, hx)
        return 2.0 * jnp.sum(filled * crack_extent(state.damage * regions), axis=-1)

    def electrodes(state: fr.FractureState, front):
        """Each filament's Li cells (``(N,) + grid.shape``): its crack (``d >= 1/2``) on its region up to its Li
        ``front``."""
        depth = x_centres.reshape((-1,) + (1,) * (grid.ndim - 1))
        return regions * (depth <= front.reshape((-1,) + (1,) * grid.ndim)) * (state.damage >= 0.5)

    def network(params, state: fr.FractureState, front):
        """The electrolyte's conductance matrix of the anode face and the filament against the counter electrode
        (:func:`en.electrode_conductances`, the conductivity lowered by damage), its unit fields and CG iterations."""
        sigma = en.damaged_conductivity(state.damage, params.conductivity, params.crack_conductivity)
        return en.electrode_conductances(sigma, electrodes(state, front), grid, slabs=slabs)

    leaky = config.electronic_conductivity > 0 or config.crack_electronic_conductivity > 0

    def ionic_zeros():
        if not config.ionic_field:
            return {}
        return {"surface_overpotentials": f64(jnp.zeros(count + 1)), "ionic_iterations": jnp.zeros((), jnp.int32),
                "electrolyte_resistance": f64(0.0), "network_residual": f64(0.0), "current_mismatch": f64(0.0),
                **({"leakage_current": f64(0.0)} if leaky else {})}

    def leakage_conductance(state: fr.FractureState, front):
        """Electronic conductance (A/m^2 um^(d-1) per V) between all the Li, one conductor, and the counter
        electrode: the sum of the network's conductance matrix with the electronic conductivity lowered or raised
        by damage (:func:`en.damaged_conductivity`); 0 without leakage."""
        if not leaky:
            return f64(0.0)
        sigma = en.damaged_conductivity(state.damage, config.electronic_conductivity,
                                        config.crack_electronic_conductivity)
        return jnp.sum(en.electrode_conductances(sigma, electrodes(state, front), grid, slabs=slabs)[0])

    def deposit(params, state: fr.FractureState, pressure, c, li_volume, dt, filled=None):
        """Backward-Euler deposition into the filaments and onto the flat anode (the cracks of ``state``
        linearised by their compliance matrix ``c`` about ``pressure``, :func:`fl.implicit_deposits`; the Li fronts
        from the Li volumes ``filled``, default ``li_volume``, the volumes at the start of the step); returns the
        new Li volumes, the overpotential, the flat and the filaments' current densities (A/m^2), the
        filaments' interface lengths (um; areas, um^2, in 3D), the residual of the coupled sweeps and, with
        ``ionic_field``, the network's results (the surfaces' overpotentials, anode first; CG iterations; the
        electrolyte's area resistance, ohm cm^2; the residual of the surfaces' balance, V; current control: the
        applied current's relative mismatch, > 0 where no cell voltage in :data:`OVERPOTENTIAL_RANGE` carries it).
        With ``ionic_field`` ``eta`` is the cell voltage: the surfaces plate at the overpotentials of the network of
        this state's Li, solved together with the filaments' new volumes and pressures (:func:`en.network_deposits`,
        backward Euler as without it; the residual is its volumes')."""
        _, front, volume = geometry(params, state, pressure, li_volume if filled is None else filled)
        area = interface_area(state, front)
        base = volume - c @ pressure
        rate = deposition_rate(params)
        stack = f64(params.stack_pressure * STRESS_UNIT)
        surface_current = lambda eta, p: currents(params, eta, p)  # noqa: E731
        if config.ionic_field:
            conductance, _, ionic_iterations = network(params, state, front)
            unconnected = jnp.diag(conductance) <= 0.0  # no Li cells (a filament whose front is at the mouth)
            resistance = jnp.linalg.inv(conductance + jnp.diag(unconnected.astype(conductance.dtype)))
            areas = jnp.concatenate([f64([period]), area])
            electronic = leakage_conductance(state, front)

            def solved(eta):  # the Li volumes, the anode's current density, the deposit's residual, the surfaces
                volume, overpotentials, surface_currents, balance, residual = en.network_deposits(
                    eta, resistance, areas, surface_current, stack, li_volume, base, c, params.li_bulk_modulus, dt,
                    rate, pressure)
                return volume, surface_currents[0] / period, residual, (overpotentials, balance)
        else:
            electronic = f64(0.0)

            def solved(eta):
                volume, residual = fl.implicit_deposits(li_volume, dt, area, eta, base, c, pressure,
                                                        params.li_bulk_modulus, surface_current, rate,
                                                        max_sweeps=params.coupled_sweeps)
                return volume, surface_current(eta, stack), residual, None

        def carried_current(eta, volume, anode_current):  # A/m^2 um: the anode's, the filaments' and the leakage
            return period * anode_current + jnp.sum(volume - li_volume) / (dt * rate) - electronic * eta

        applied = params.current_density * CURRENT_UNIT * period  # A/m^2 um

        def excess(eta):  # applied minus carried total current, increasing in eta
            volume, anode_current, _, _ = solved(eta)
            return applied - carried_current(eta, volume, anode_current)

        if config.control == "current":
            eta = fl.bisect(excess, f64(OVERPOTENTIAL_RANGE[0]), f64(OVERPOTENTIAL_RANGE[1]), 50)
        else:
            eta = f64(params.overpotential)
        volume, anode_current, residual, surfaces = solved(eta)
        filament_current = (volume - li_volume) / (dt * rate * jnp.maximum(area, 1e-30))
        if not config.ionic_field:
            return volume, eta, anode_current, filament_current, area, residual, ionic_zeros()
        overpotentials, balance = surfaces
        carried = carried_current(eta, volume, anode_current)
        mismatch = (jnp.abs(applied - carried) / jnp.maximum(jnp.abs(applied), 1e-300) if config.control == "current"
                    else f64(0.0))
        ionic = {"surface_overpotentials": overpotentials, "ionic_iterations": ionic_iterations,
                 "electrolyte_resistance": period / jnp.sum(conductance) * 1e4, "network_residual": balance,
                 "current_mismatch": mismatch,
                 **({"leakage_current": -electronic * eta / period} if leaky else {})}
        return volume, eta, anode_current, filament_current, area, residual, ionic

    def init(params, fields):
        """The flaws as given (``d = 1`` on their cells, no displacement), filled with their stress-free Li; the
        first step relaxes them to the optimal damage profile (its first load step) while they plate. ``fields``
        may hold ``grain_boundary`` (1 on weak cells, carried as it is: a tessellation or a map of the user's)."""
        state = fr.initial_state(problem, fields["damage"])
        li_volume = jnp.sum(reference_columns(params), axis=-1)  # width x each face, as the grid's columns hold it
        # compliance of the state; before the first step the flaws' (flaw_measures: Sneddon's for half a centre
        # crack, uncoupled); the displacement under a unit crack pressure in each region (the warm start of the next
        # solves)
        face, compliance, _ = flaw_measures(params, flaw_depths(params))
        unit = {k: carried(jnp.broadcast_to(u, (count,) + u.shape))
                for k, u in _to_carry(state)["displacement"].items()}
        zero = f64(0.0)
        izero = jnp.zeros((), jnp.int32)
        info = {"passes": izero, "iterations": izero, "elasticity_iterations": izero, "damage_iterations": izero,
                "area_passes": izero, "mismatch": zero,
                "peak_pressure": zero, "converged": jnp.asarray(True), "pressure_sweep_residual": zero,
                "deposit_sweep_residual": zero}
        return laid_out(slabs, {
            "state": {"fracture": _to_carry(state), "li_volume": carried(li_volume),
                      "li_pressure": carried(jnp.zeros(count)), "plated_volume": zero, "anode_volume": zero,
                      "time": zero, "short_time": f64(jnp.nan),
                      **({"grain_boundary": f64(fields["grain_boundary"])} if "grain_boundary" in fields else {})},
            "history": {"compliance": carried(jnp.diag(f64(compliance)), 2), "unit_displacement": unit},
            "cache": {"info": info, "overpotential": zero, "anode_current": zero,
                      "filament_current": carried(jnp.zeros(count)), "filament_area": carried(f64(2.0 * face)),
                      **ionic_zeros()},
        }, grid.shape)

    def step(params, carry, dt):
        dt = f64(dt)
        s = carry["state"]
        state = _from_carry(s["fracture"])
        li_volume, li_pressure = per_filament(s["li_volume"]), per_filament(s["li_pressure"])
        unit = tuple(per_filament(carry["history"]["unit_displacement"][k])
                     for k in sorted(carry["history"]["unit_displacement"]))
        committed = state
        grain_boundary = s.get("grain_boundary")
        rate = deposition_rate(params)

        def interface(state, pressure, volume):
            return interface_area(state, geometry(params, state, pressure, volume)[1])

        def unsettled(loop):
            state, pressure, _, _, _, volume, _, _, _, area, passes, _ = loop
            return (passes == 0) | ((passes <= params.area_passes) & jnp.any(interface(state, pressure, volume) != area))

        def deposit_and_equilibrate(loop):
            """The deposit (from the step's start: ``li_volume``) with the Li interfaces and compliance of ``state``,
            then the mechanics at the new Li volumes from ``state`` (warm; the damage only grows). The first pass
            starts from the step's start; each later one from the end of the last (the filaments' areas implicit
            too), the counters summed over the passes."""
            state, pressure, c, unit, info, volume, *_, passes, _ = loop
            volume, eta, anode_current, filament_current, area, residual, ionic = deposit(
                params, state, pressure, c, li_volume, dt, filled=volume)
            base = geometry(params, state, pressure, volume)[2] - c @ pressure
            # the pressures' first guess (load_step solves them again with the mechanics)
            target = fl.li_pressures(volume, base, c, params.li_bulk_modulus, max_sweeps=params.coupled_sweeps)[0]
            state, pressure, c, unit, more = equilibrate(params, state, committed, pressure, unit, target, volume,
                                                         grain_boundary)
            info = {**more, **{k: info[k] + more[k] for k in COUNTERS}, "deposit_sweep_residual": residual,
                    "peak_pressure": jnp.maximum(info["peak_pressure"], more["peak_pressure"])}
            return (state, pressure, c, unit, info, volume, eta, anode_current, filament_current, area, passes + 1,
                    ionic)

        zero, izero, zeros = f64(0.0), jnp.zeros((), jnp.int32), f64(jnp.zeros(count))
        info = {**dict.fromkeys(COUNTERS, izero), "mismatch": zero, "peak_pressure": zero,
                "converged": jnp.asarray(False), "pressure_sweep_residual": zero, "deposit_sweep_residual": zero}
        loop = (state, li_pressure, per_filament(carry["history"]["compliance"], 2), unit, info, li_volume, zero,
                zero, zeros, zeros, izero, ionic_zeros())
        state, pressure, c, unit, info, volume, eta, anode_current, filament_current, area, passes, ionic = \
            jax.lax.while_loop(unsettled, deposit_and_equilibrate, loop)
        info = {**info, "area_passes": passes - 1}
        anode = s["anode_volume"] + dt * rate * period * anode_current
        plated = s["plated_volume"] + dt * rate * period * anode_current + jnp.sum(volume - li_volume)
        time = s["time"] + dt
        depth, _, _ = geometry(params, state, pressure, volume)
        shorted = jnp.max(depth) >= thickness - params.short_circuit_gap
        short_time = jnp.where(jnp.isnan(s["short_time"]) & shorted, time, s["short_time"])
        new = {"fracture": _to_carry(state), "li_volume": carried(volume), "li_pressure": carried(pressure),
               "plated_volume": plated, "anode_volume": anode, "time": time, "short_time": short_time,
               **({} if grain_boundary is None else {"grain_boundary": grain_boundary})}
        cache = {"info": info, "overpotential": eta, "anode_current": anode_current,
                 "filament_current": carried(filament_current), "filament_area": carried(area), **ionic}
        history = {"compliance": carried(c, 2), "unit_displacement": {"xyz"[a]: carried(v) for a, v in enumerate(unit)}}
        return laid_out(slabs, {"state": new, "history": history, "cache": cache}, grid.shape)

    def fields(params, carry):
        s = carry["state"]
        state = _from_carry(s["fracture"])
        displacement = cell_displacement(state.displacement, WALLS)
        mat = material(params, s.get("grain_boundary"))
        sigma = fr.stress(state, mat, problem, prestress_eigenstrain(params))
        _, front, _ = geometry(params, state, per_filament(s["li_pressure"]), per_filament(s["li_volume"]))
        lithium = jnp.sum(electrodes(state, front), axis=0)
        toughness = jnp.broadcast_to(mat.toughness / TOUGHNESS_UNIT, grid.shape)
        out = {"damage": state.damage, "lithium": lithium, "toughness": toughness}
        if config.ionic_field:  # the network of this state's Li and the last step's overpotentials
            unit_fields = network(params, state, front)[1]
            out["electrolyte_potential"] = en.electrolyte_potential(
                unit_fields, carry["cache"]["overpotential"], carry["cache"]["surface_overpotentials"])
        for a, name in enumerate("xyz"[:grid.ndim]):
            out[f"displacement_{name}"] = displacement[a]
            out[f"stress_{name}{name}"] = sigma[name * 2]
        return out

    def change(new, old):
        """The change of the Li pressures relative to themselves (50 MPa at least), or the largest damage change
        (``crack_advance_scale`` = 0), or the largest advance of a filament's crack over ``crack_advance_scale``."""
        d_new, d_old = new["state"]["fracture"]["damage"], old["state"]["fracture"]["damage"]
        if config.crack_advance_scale > 0:
            depth = lambda d: leading(jnp.max(d * regions, axis=flaw_axes) >= 0.5)  # noqa: E731
            crack = jnp.max(depth(d_new) - depth(d_old)) / config.crack_advance_scale
        else:
            crack = jnp.max(jnp.abs(d_new - d_old))
        p_new, p_old = new["state"]["li_pressure"], old["state"]["li_pressure"]
        return jnp.maximum(crack, jnp.max(jnp.abs(p_new - p_old) / jnp.maximum(p_new, 0.05)))

    def stop(params, carry):
        return ~jnp.isnan(carry["state"]["short_time"])

    def stop_reason(params, carry):
        return f"short circuit at t = {float(carry['state']['short_time']):.6g} s"

    def diagnostics(params, carry):
        s, cache = carry["state"], carry["cache"]
        state = _from_carry(s["fracture"])
        mat = material(params, s.get("grain_boundary"))
        pressure, li_volume = per_filament(s["li_pressure"]), per_filament(s["li_volume"])
        depth, front, volume = geometry(params, state, pressure, li_volume)
        deepest = jnp.argmax(depth)
        eta = cache["overpotential"]  # with ionic_field the cell voltage
        anode_eta, filament_eta = ((cache["surface_overpotentials"][0], cache["surface_overpotentials"][1 + deepest])
                                   if config.ionic_field else (eta, eta))
        area, filament_current = per_filament(cache["filament_area"]), per_filament(cache["filament_current"])
        mean_current = (period * cache["anode_current"] + jnp.sum(area * filament_current)) / period
        load = loading(params, pressure)
        load = load._replace(crack_pressure=fr.weighted_sum(load.crack_pressure, regions))
        intensity = flaw_measures(params, depth)[2] * (pressure - params.in_plane_stress * STRESS_UNIT * cos_angles**2)
        as_float = lambda x: jnp.asarray(x, jnp.float64)  # noqa: E731
        sweep_residual = jnp.maximum(cache["info"]["pressure_sweep_residual"], cache["info"]["deposit_sweep_residual"])
        network_settled = ((cache["network_residual"] <= NETWORK_TOLERANCE)
                           & (cache["current_mismatch"] <= params.pressure_tolerance)) if config.ionic_field else True
        out = {
            "crack_length": fr.crack_length(state.damage, grid, problem.damage_boundary, model, mat.length),
            "crack_depth": depth[deepest],
            "filament_depth": jnp.max(front),
            "front_gap": depth[deepest] - front[deepest],
            "counter_gap": thickness - depth[deepest],
            "crack_volume": jnp.sum(volume),
            "li_volume": jnp.sum(li_volume),
            "plated_volume": s["plated_volume"],
            "anode_volume": s["anode_volume"],
            "li_pressure": jnp.max(pressure) / STRESS_UNIT,
            "equilibrium_pressure": fl.equilibrium_pressure(filament_eta, params.li_molar_volume) * 1e3,
            "stress_intensity": jnp.max(intensity),  # sigma_nn on the flaw's faces
            "overpotential": anode_eta * 1e3,
            "mechanical_overpotential": fl.mechanical_overpotential(jnp.max(pressure), params.li_molar_volume) * 1e3,
            "current_density": mean_current / CURRENT_UNIT,
            "filament_current_density": jnp.sum(area / jnp.maximum(jnp.sum(area), 1e-30) * filament_current)
            / CURRENT_UNIT,  # the area-weighted mean (one filament: its own, exactly)
            "cell_voltage": (eta if config.ionic_field
                             else eta - mean_current * thickness * MICRON / params.conductivity),
            "elastic_energy": fr.elastic_energy(state, mat, problem, load.eigenstrain),
            "fracture_energy": fr.fracture_energy(state.damage, mat, model, problem),
            "damage_max": jnp.max(state.damage),
            "iterations": as_float(cache["info"]["iterations"]),
            "pressure_passes": as_float(cache["info"]["passes"]),
            "elasticity_iterations": as_float(cache["info"]["elasticity_iterations"]),
            "damage_iterations": as_float(cache["info"]["damage_iterations"]),
            "area_passes": as_float(cache["info"]["area_passes"]),
            "volume_mismatch": cache["info"]["mismatch"],
            "peak_pressure": cache["info"]["peak_pressure"] / STRESS_UNIT,
            "converged": as_float(cache["info"]["converged"] & (sweep_residual <= params.pressure_tolerance)
                                  & network_settled),
            "pressure_sweep_residual": cache["info"]["pressure_sweep_residual"],
            "deposit_sweep_residual": cache["info"]["deposit_sweep_residual"],
            "time_to_short": s["short_time"],
            "regularisation_length": mat.length,
            "reaction_force": fr.reactions(state, mat, problem, load)[1] * 1e3,
        }
        if leaky:
            out["leakage_current_density"] = cache["leakage_current"] / CURRENT_UNIT
        if config.ionic_field:
            out |= {"filament_overpotential": filament_eta * 1e3,
                    "electrolyte_resistance": cache["electrolyte_resistance"],
                    "network_residual": cache["network_residual"], "current_mismatch": cache["current_mismatch"],
                    "ionic_iterations": as_float(cache["ionic_iterations"])}
        if not single:
            for k in range(count):
                out |= {f"crack_depth_{k + 1}": depth[k], f"filament_depth_{k + 1}": front[k],
                        f"li_pressure_{k + 1}": pressure[k] / STRESS_UNIT, f"li_volume_{k + 1}": li_volume[k]}
                if config.ionic_field:
                    out[f"filament_overpotential_{k + 1}"] = cache["surface_overpotentials"][1 + k] * 1e3
        return out

    stepper = Stepper(init, step, fields, unconditionally_stable, 1, change, stop, stop_reason)
    initial = {"damage": np.max([flaw_cells(grid, depth, angle, config.flaw_shape, position)
                                 for depth, position, angle in flaws], axis=0)}
    if config.grain_size > 0:
        initial["grain_boundary"] = grain_boundary_cells(grid, config.grain_size, config.grain_boundary_width,
                                                         config.grain_seed)
    return Simulation(
        name="filament",
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=lambda: dict(initial),
        field_info={k: v for k, v in FIELD_INFO.items() if (three_d or not k.endswith("z"))
                    and (config.ionic_field or k != "electrolyte_potential")},
        diagnostics=diagnostics,
        scalar_info=scalar_info(grid.ndim, 0 if single else count, config.ionic_field, leaky),
        scales={"length": (MICRON, "m"), "time": (1.0, "s"), "stress": (1e9, "Pa")},
    )


FIELD_INFO = {
    "damage": Quantity("1", "phase-field damage d (0 intact, 1 broken)"),
    "lithium": Quantity("1", "1 on the crack (d >= 1/2) up to the Li front"),
    "displacement_x": Quantity("um", "displacement along x (anode to counter electrode), at cell centres"),
    "displacement_y": Quantity("um", "displacement along y, at cell centres"),
    "displacement_z": Quantity("um", "displacement along z, at cell centres (3D)"),
    "stress_xx": Quantity("GPa", "sigma_xx"),
    "stress_yy": Quantity("GPa", "sigma_yy (opens a crack along x)"),
    "stress_zz": Quantity("GPa", "sigma_zz (3D)"),
    "toughness": Quantity("J/m^2", "fracture toughness G_c (lower on weak grain boundaries)"),
    "electrolyte_potential": Quantity("V", "ionic_field: the electrolyte's potential, the Li metal at 0 (the "
                                           "network's unit fields with the last step's overpotentials)"),
}

SCALAR_INFO = {
    "crack_length": Quantity("um", "regularised crack length int gamma(d) (fracture energy / G_c for a uniform G_c)"),
    "crack_depth": Quantity("um", "depth along x of the crack (contiguous columns with max d >= 1/2)"),
    "filament_depth": Quantity("um", "depth along x of the Li front"),
    "front_gap": Quantity("um", "crack tip minus Li front"),
    "counter_gap": Quantity("um", "distance from the crack tip to the counter electrode"),
    "crack_volume": Quantity("um^2", "crack volume V_ref + int d div u per unit thickness"),
    "li_volume": Quantity("um^2", "stress-free volume of the Li in the filament per unit thickness"),
    "plated_volume": Quantity("um^2", "Li plated since t = 0 (charge Omega / F), per unit thickness"),
    "anode_volume": Quantity("um^2", "Li plated on the flat anode since t = 0, per unit thickness"),
    "li_pressure": Quantity("MPa", "pressure of the Li in the filament"),
    "equilibrium_pressure": Quantity("MPa", "F |eta| / Omega_Li: the pressure at which plating stops"),
    "stress_intensity": Quantity("MPa m^1/2", "K_I = (p - s cos^2 theta) sqrt(pi a) at the crack depth (mirror "
                                              "anode face; s the in-plane stress, theta the flaw's angle)"),
    "overpotential": Quantity("mV", "eta at the Li surfaces (ionic_field: at the anode face)"),
    "mechanical_overpotential": Quantity("mV", "Omega_Li p / F of the filament"),
    "current_density": Quantity("mA/cm^2", "mean plating current density over the anode"),
    "filament_current_density": Quantity("mA/cm^2", "plating current density on the filament faces"),
    "cell_voltage": Quantity("V", "eta - i L_x / sigma (reversible counter electrode; ionic_field: the network's, "
                                  "the Li against the counter electrode)"),
    "elastic_energy": Quantity("mJ/m", "stored elastic energy per unit thickness"),
    "fracture_energy": Quantity("mJ/m", "G_c int (w(d)/ell + ell |grad d|^2) / c_w per unit thickness"),
    "damage_max": Quantity("1", "largest damage"),
    "iterations": Quantity("1", "u-d iterations of the last step (all mechanics passes)"),
    "pressure_passes": Quantity("1", "mechanics passes (load steps) of the last step"),
    "elasticity_iterations": Quantity("1", "CG iterations of the elasticity solves of the last step"),
    "damage_iterations": Quantity("1", "CG iterations of the damage solves of the last step"),
    "area_passes": Quantity("1", "repeats of the deposit with the end-of-step Li interface in the last step"),
    "volume_mismatch": Quantity("1", "relative Li volume balance left after the last step"),
    "peak_pressure": Quantity("MPa", "highest Li pressure at the end of a mechanics pass of the last step"),
    "converged": Quantity("1", "1 if the last step's mechanics met both tolerances (u-d and Li volume) and the coupled "
                               "sweeps of several filaments left residuals (pressure_sweep_residual, "
                               "deposit_sweep_residual) within the Li volume's, pressure_tolerance"),
    "pressure_sweep_residual": Quantity("1", "several flaws: the last Newton step's largest change of the "
                                             "coupled Li pressures over the largest, in the last step's last u-d "
                                             "iteration (the steps stop at 1e-14 or coupled_sweeps; 0 for one flaw, "
                                             "solved exactly)"),
    "deposit_sweep_residual": Quantity("1", "several flaws: the last Jacobi sweep's largest change of the coupled "
                                            "deposits' held pressure coupling over the largest Li volume, or the "
                                            "residual of its pressures' sweeps if larger, in the last step "
                                            "(the sweeps stop at 1e-14 or coupled_sweeps; round-off for one flaw; "
                                            "ionic_field: the largest residual of the Li volumes' balances over "
                                            "the largest volume after the network's Newton solve)"),
    "time_to_short": Quantity("s", "time at which the crack came within short_circuit_gap (NaN before)"),
    "regularisation_length": Quantity("um", "ell used"),
    "reaction_force": Quantity("N/m", "force on the counter electrode per unit thickness (< 0: compression)"),
}


IONIC_SCALAR_INFO = {
    "filament_overpotential": Quantity("mV", "eta at the filament's faces (several flaws: the deepest crack's)"),
    "electrolyte_resistance": Quantity("ohm cm^2", "the electrolyte between all Li and the counter electrode, per "
                                                   "anode area (the intact slab: L_x / sigma)"),
    "ionic_iterations": Quantity("1", "most CG iterations of the network's unit fields in the last step's last "
                                      "deposit"),
    "network_residual": Quantity("V", "residual of the surfaces' ohmic-kinetic balance eta = V + R I (Newton; "
                                      "converged is 0 above 1e-9 V)"),
    "current_mismatch": Quantity("1", "current control: |applied - carried| / applied at the cell voltage found "
                                      "(> 0: no cell voltage in [-1.5, 0.5] V carries it; converged is 0 above "
                                      "pressure_tolerance)"),
}


def scalar_info(ndim: int, flaws: int = 0, ionic_field: bool = False, leakage: bool = False) -> dict:
    """:data:`SCALAR_INFO` for a ``ndim`` grid: in 3D volumes in um^3, energies in nJ, forces in uN (GPa um^3, GPa
    um^2 x 1e3), and ``K_I`` of the strip or the half-penny; with ``flaws`` (the length of the ``flaws`` option)
    each filament's crack depth, Li front, pressure and volume (``crack_depth_1``, ...); with ``ionic_field`` the
    network's scalars, with ``leakage`` the electronic current."""
    out = dict(SCALAR_INFO)
    if ionic_field:
        out |= IONIC_SCALAR_INFO
    if leakage:
        out["leakage_current_density"] = Quantity("mA/cm^2", "electronic current through the ceramic, Li to counter "
                                                             "electrode, per anode area (plates nothing; the cell's "
                                                             "current is current_density plus it)")
    for k in range(1, flaws + 1):
        out |= {f"crack_depth_{k}": Quantity("um", f"crack depth of filament {k} (flaws[{k - 1}]), on its region"),
                f"filament_depth_{k}": Quantity("um", f"Li front of filament {k}"),
                f"li_pressure_{k}": Quantity("MPa", f"Li pressure of filament {k}"),
                f"li_volume_{k}": Quantity("um^2", f"stress-free Li volume of filament {k} per unit thickness")}
        if ionic_field:
            out[f"filament_overpotential_{k}"] = Quantity("mV", f"eta at the faces of filament {k}")
    if ndim == 2:
        return out
    units = {"um^2": "um^3", "mJ/m": "nJ", "N/m": "uN"}
    out = {name: Quantity(units.get(q.units, q.units), q.description.replace(" per unit thickness", ""))
           for name, q in out.items()}
    out["stress_intensity"] = Quantity("MPa m^1/2", "K_I of the flaw at the crack depth: (p - s) sqrt(pi a) (strip) "
                                                    "or 2 (p - s) sqrt(a / pi) (half-penny disc); the largest")
    return out
