"""A 3D Li filament: a half-penny flaw at the anode of an LLZO slab, its onset against Griffith's penny crack.

``python experiments/filament_3d.py [--cells 32] [--size 12] [--depth 3] [--steps 40] [--out DIR]``

A cube of ``size`` um on ``cells``^3 cells (x the stack axis, periodic along y and z), ell = 2 cells, a half-penny
flaw of radius ``depth`` (``flaw_shape: disc``) filled with Li, held at 1.5 times its onset overpotential. With
the anode face as its mirror plane the flaw is a penny crack of radius a: ``K_I = 2 p sqrt(a / pi)``, so it opens at
``p_c = sqrt(pi E' G_eff / (4 a))`` (G_eff: the grid's effective toughness), ``eta_c = Omega p_c / F``. Prints per
step the Li pressure, the crack depth and the wall time of the step, then the peak pressure against ``p_c``, and
writes ``filament_3d.png``: the damage on the flaw's plane (y = L_y / 2) at the start and at the end.

Measured (defaults: 32^3 cells of 0.375 um, a = 3 um; 2 shared CPU cores, 2026-12-01): p_c = 512.6 MPa, eta_c =
69.1 mV; the crack moves past 4 um in 12 steps; peak Li pressure 547.3 MPa (+6.8 %: the diffuse tip and the
images 12 um apart along y and z); 22 min, the growing steps 80-520 s (2000-3000 CG iterations each). Again
2026-12-02: 60 s with the Anderson u-d iterations (the default), the growing steps 5-7 s (14-17 u-d and 470-630 CG
iterations), peak 547.3 MPa; 107 s with ``damage_acceleration: none`` (steps 17-21 s, 40-66 u-d and 1300-1800 CG
iterations), peak 547.2 MPa.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import jax
import matplotlib
import numpy as np

from phasefield.config import DecomposedTimeSolverConfig
from phasefield.models import filament as fm
from phasefield.physics import filament as fl
from phasefield.physics import fracture as fr

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=32)
    parser.add_argument("--size", type=float, default=12.0, help="um")
    parser.add_argument("--depth", type=float, default=3.0, help="flaw radius, um")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path("outputs/filament_3d"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    spacing = args.size / args.cells
    config = fm.Config(size=[args.size] * 3, shape=[args.cells] * 3, length=2 * spacing, flaw_depth=args.depth,
                       flaw_shape="disc", flaw_width=0.05, max_iterations=10, pressure_passes=40,
                       pressure_tolerance=1e-5, short_circuit_gap=2.0)
    g_eff = fr.effective_toughness(config.toughness * fm.TOUGHNESS_UNIT, spacing, config.length, "AT1")
    modulus = fr.plane_strain_modulus(config.young, config.poisson)
    p_c = np.sqrt(np.pi * modulus * g_eff / (4.0 * args.depth))  # GPa
    eta_c = config.li_molar_volume * p_c * 1e9 / fl.FARADAY
    params = dataclasses.replace(config, overpotential=-1.5 * eta_c)
    print(f"{args.cells}^3 cells of {spacing:.3g} um, ell = {config.length:.3g} um, half-penny a = {args.depth} um: "
          f"Griffith p_c = {1e3 * p_c:.1f} MPa, eta_c = {1e3 * eta_c:.1f} mV; held at {-1.5e3 * eta_c:.1f} mV")
    simulation = fm.build(config, DecomposedTimeSolverConfig())
    step, diagnostics = jax.jit(simulation.stepper.step), jax.jit(simulation.diagnostics)
    carry = simulation.stepper.init(params, simulation.initial_fields())
    start_damage = np.asarray(carry["state"]["fracture"]["damage"])
    initial_li = float(carry["state"]["li_volume"])
    dt, records = 0.125 * fm.filling_time(params), []
    for n in range(args.steps):
        begin = time.time()
        carry = step(params, carry, dt)
        values = {k: float(v) for k, v in diagnostics(params, carry).items()}
        records.append(values)
        print(f"step {n + 1:3d}: dt {dt:.3g} s, p {values['li_pressure']:7.1f} MPa, crack depth "
              f"{values['crack_depth']:.2f} um, u-d {values['iterations']:.0f}, CG {values['elasticity_iterations']:.0f}, "
              f"{time.time() - begin:.1f} s", flush=True)
        if values["crack_depth"] >= args.depth + 1.0:
            break
        dt *= 1.25
    peak = max(r["li_pressure"] for r in records)
    last = records[-1]
    print(f"peak Li pressure {peak:.1f} MPa against Griffith's penny {1e3 * p_c:.1f} MPa ({peak / (1e3 * p_c) - 1:+.1%});"
          f" Li plated {last['plated_volume']:.6g} um^3 = filament {last['li_volume'] - initial_li:.6g} + anode "
          f"{last['anode_volume']:.6g}")
    row = config.shape[1] // 2
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
    final = np.asarray(carry["state"]["fracture"]["damage"])
    for ax, damage, title in zip(axes, (start_damage, final), ("flaw", f"after {len(records)} steps")):
        ax.imshow(damage[:, row, :].T, origin="lower", extent=(0, args.size, 0, args.size), cmap="magma",
                  vmin=0, vmax=1)
        ax.set_title(f"damage on y = L_y/2: {title}", fontsize=8)
        ax.set_xlabel("x (um), anode at 0", fontsize=7)
        ax.set_ylabel("z (um)", fontsize=7)
    figure.tight_layout()
    figure.savefig(args.out / "filament_3d.png", dpi=120)


if __name__ == "__main__":
    main()
