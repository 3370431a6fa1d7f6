"""Li filaments against an in-plane compressive stress (Fincher et al., Joule 2022): arrest and deflection.

``python experiments/filament_prestress.py [--stresses 0 100 200 300] [--angles 0 30] [--current 10]
[--shape 32] [--t-end 120] [--out DIR]``

The set-up of ``filament_short.py`` (a 4 um Li-filled flaw in a 32 um LLZO slab, ``shape`` x ``shape`` cells,
ell = 2 cells, galvanostatic) with a compressive stress ``s`` along y in the intact slab (``in_plane_stress``,
:func:`phasefield.models.filament.prestress_eigenstrain`: ``sigma_yy = -s``, ``sigma_xx`` left to the stack pressure,
here 0), for a flaw along x and an inclined one; the spectral split (the volumetric-deviatoric one degrades the
deviatoric energy, so compression alone would crack the slab in shear: refused above half its onset, 254 MPa here;
the spectral one allows 724 MPa). The faces of a flaw along x are held shut by ``s``: it opens at
``p_c = s + K_Ic / sqrt(pi a)``, and the filament's pressure saturates at ``F |eta| / Omega_Li`` set by the flat
anode's overpotential, so the critical current density of this picture rises with ``s``: ``i_c(s) = BV(eta_c(s))``,
``eta_c(s) = Omega_Li p_c(s) / F`` (printed). With ``sigma_xx`` = 0 > ``sigma_yy`` the T-stress ``sigma_xx - sigma_yy``
is ``+s``: a crack that leaves the x axis is pulled further round toward y (Cotterell & Rice), parallel to the
electrodes, as Fincher et al. saw in LLZTO under ~200 MPa of bending compression.

Measured (``python experiments/filament_prestress.py``, 32^2 cells of 1 um, 10 mA/cm^2; 2 shared CPU cores,
2026-12-01, 24 min; ``docs/filament_prestress.png``)::

    angle  s (MPa)  i_c(s) (mA/cm^2)  time to short (s)   crack                         Li pressure (MPa)
      0       0          4.17            16.04            straight through               330
      0     100          6.06            28.01            straight through               438
      0     200          8.38            none (120)       turns at 6 um, runs along y    477
      0     300         11.28            none (120)       along y at the anode           470
     30       0          4.17            15.17            turns to x, straight through   329
     30     100          6.06            27.36            turns to x, straight through   431
     30     200          8.38            none (120)       along y at the anode           486
     30     300         11.28            none (120)       along y at the anode           486

Re-run with the Anderson u-d iterations (the default since 2026-12-02): 112 s in all, the same cracks; times to
short 16.03 / 27.41 s (angle 0; 16.04 / 28.01 above) and 15.17 / 27.37 s (angle 30), Li pressures within 2 %.

Below ~100 MPa the compression only delays the short (the filament's pressure must exceed ``s`` more); at 200 MPa
and above the crack no longer crosses the slab: it opens against the least compressive stress, ``sigma_xx`` = 0,
and runs parallel to the electrodes across the whole period (at 10 mA/cm^2 the straight crack along x would still
have grown at 200 MPa, i_c = 8.38 mA/cm^2: deflection, not arrest, averts the short). Fincher et al. saw
filaments in LLZTO deflect under about 200 MPa. With a stack pressure ``sigma_xx = -p_s`` the crack parallel to the
electrodes needs ``p > p_s`` too; the anode here is a rigid roller (a real soft Li anode would let that crack open
more easily, as delamination).

Per run it prints the time to short (nan: none by ``--t-end``), the crack depth along x, the crack's lateral reach
``max |y - y_mouth|`` of the damaged cells (d >= 1/2), its tilt ``atan(reach / depth)``, the Li pressure and the
overpotential; writes ``filament_prestress.csv`` and ``filament_prestress.png`` (the damage at the end of every run)
in ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np
from filament_short import critical_current, run

from phasefield.config import DecomposedTimeSolverConfig
from phasefield.models import filament as fm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def crack_shape(damage, grid):
    """Depth along x and lateral reach ``max |y - y_mouth|`` (um) of the cells with ``d >= 1/2``."""
    x, y = grid.axis_coordinates(0), grid.axis_coordinates(1)
    mouth = (grid.shape[1] // 2 + 0.5) * grid.spacing[1]
    broken = np.asarray(damage) >= 0.5
    rows, columns = np.nonzero(broken)
    if rows.size == 0:
        return 0.0, 0.0
    return float(x[rows].max() + grid.spacing[0] / 2), float(np.abs(y[columns] - mouth).max())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stresses", type=float, nargs="+", default=[0.0, 100.0, 200.0, 300.0], help="MPa")
    parser.add_argument("--angles", type=float, nargs="+", default=[0.0, 30.0], help="flaw inclination, degrees")
    parser.add_argument("--current", type=float, default=10.0, help="mA/cm^2")
    parser.add_argument("--shape", type=int, default=32)
    parser.add_argument("--t-end", type=float, default=120.0, help="s")
    parser.add_argument("--out", type=Path, default=Path("outputs/filament_prestress"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spacing = 32.0 / args.shape
    base = fm.Config(size=[32.0, 32.0], shape=[args.shape, args.shape], length=2 * spacing, flaw_depth=4.0,
                     control="current", current_density=args.current, max_iterations=10, pressure_passes=40,
                     pressure_tolerance=1e-5, crack_advance_scale=10.0, area_passes=4, split="spectral")
    for s in args.stresses:
        eta_c, i_c = critical_current(base, spacing, s)
        print(f"s = {s:5.0f} MPa: flaw along x opens at eta_c = {1e3 * eta_c:.1f} mV, i_c = {i_c:.2f} mA/cm^2")
    rows, finals = [], []
    for angle in args.angles:
        config = dataclasses.replace(base, flaw_angle=angle)
        simulation = fm.build(config, DecomposedTimeSolverConfig())  # the angle is structure: one compile per angle
        step, diagnostics = jax.jit(simulation.stepper.step), jax.jit(simulation.diagnostics)
        for s in args.stresses:
            params = dataclasses.replace(config, in_plane_stress=s)
            start = time.time()
            values, t, steps, _, carry = run(simulation, step, diagnostics, params, args.t_end)
            damage = carry["state"]["fracture"]["damage"]
            depth, reach = crack_shape(damage, simulation.grid)
            rows.append({"angle_deg": angle, "in_plane_stress_MPa": s, "time_to_short_s": values["time_to_short"],
                         "t_s": t, "crack_depth_um": depth, "lateral_reach_um": reach,
                         "tilt_deg": float(np.degrees(np.arctan2(reach, depth))),
                         "li_pressure_MPa": values["li_pressure"], "overpotential_mV": values["overpotential"],
                         "steps": steps, "seconds": time.time() - start})
            finals.append((angle, s, np.asarray(damage)))
            print(" ".join(f"{k}={v:.4g}" for k, v in rows[-1].items()), flush=True)
    with open(args.out / "filament_prestress.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figure, axes = plt.subplots(len(args.angles), len(args.stresses), squeeze=False,
                                figsize=(2.6 * len(args.stresses), 2.6 * len(args.angles)))
    for ax, (angle, s, damage), row in zip(axes.ravel(), finals, rows):
        ax.imshow(damage.T, origin="lower", extent=(0, 32, 0, 32), cmap="magma", vmin=0, vmax=1)
        short = row["time_to_short_s"]
        ax.set_title(f"{angle:.0f} deg, {s:.0f} MPa\n" + (f"short at {short:.1f} s" if np.isfinite(short)
                                                          else f"no short in {row['t_s']:.0f} s"), fontsize=8)
        ax.set_xlabel("x (um)", fontsize=7)
        ax.tick_params(labelsize=6)
    figure.suptitle(f"damage at the end, {args.current:g} mA/cm^2, LLZO, anode at x = 0", fontsize=9)
    figure.tight_layout()
    figure.savefig(args.out / "filament_prestress.png", dpi=120)


if __name__ == "__main__":
    main()
