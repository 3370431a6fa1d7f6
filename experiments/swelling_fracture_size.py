"""Size effect of particle fracture in the swelling model (``fracture: true``): does a lithiating Si particle crack?

Liu et al. (ACS Nano 6 (2012) 1522): c-Si particles below about 150 nm diameter do not fracture on first
lithiation. Energy argument: a surface crack of depth ~ a in a shell under hoop tension sigma releases
``G = Z sigma^2 a / E``, so cracking needs ``a >= a_crit ~ E G_c / (Z sigma^2)``; with sigma capped by plastic flow
(the lithiated shell at its yield stress) a_crit is set by G_c, E and the yield stress, not by the phase-field
length. The phase-field model has a second length, ``ell``: AT1 is elastic up to ``sigma_c = sqrt(3 E G_c /
(8 ell))``, so a flawless particle whose stresses stay below sigma_c never cracks at any size (strength control);
a Griffith size effect needs a flaw (or a stress concentration) whose size scales with the particle, and
``ell`` well below that flaw.

The runs are self-similar: one single-particle cell (the Chen et al. 2014 set-up of tests/test_swelling.py: c-Si,
sharp two-phase front without the stress coupling, soft free surroundings, generalized plane strain, J2 yield
2 -> 0.5 GPa) scaled by the radius ``a``: cell 4a x 4a, the same cells per radius, interface and front widths
proportional to a, C-rate proportional to 1/a^2 and exchange current to 1/a (the same Fourier and Biot numbers),
so that without fracture the stress fields are the same at every size. Only ``ell`` and ``G_c`` (material
constants) break the similarity.

Prints per radius: cells per radius, ell / h, ell / a, the AT1 strength of the lithiated phase, the largest
surface hoop stress, the largest damage, the cracked fraction of the particle (psi > 1/2, d > 1/2), the
state of charge when more than 1 % of it has cracked, the mean distance of its cracked cells from the centre over
a and the wall time. Runs on CPU; each radius is a minute or two at 64 x 64.

    python experiments/swelling_fracture_size.py --radii 0.05 0.1 0.2 0.4 --ell 0.025
    python experiments/swelling_fracture_size.py --radii 0.1 0.2 --ell 0.025 --cells 24   # resolution check

Measured with the spectral drive (the default; README, swelling section): radius 50 and 100 nm intact, 200 and
400 nm cracked from inside (the core in triaxial tension, r/a 0.47-0.66), at 16 and 24 cells per radius.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phasefield.config import validate_run  # noqa: E402
from phasefield.integrate import integrate  # noqa: E402
from phasefield.models.swelling import make_geometry  # noqa: E402
from phasefield.runner import build, device_parameters, initial_carry, stable_dt, time_control  # noqa: E402


def scenario(radius: float, cells: int, ell: float) -> dict:
    """The reference cell (a = 1 um: 4 um, 1C, i0 = 0.1 mA/cm^2) scaled by ``radius``."""
    a = radius
    return {
        "name": "swelling", "t_end": 3000.0 * a * a, "size": [4 * a, 4 * a], "shape": [4 * cells, 4 * cells],
        "particles": [[2 * a, 2 * a, a]], "random_particles": 0, "collector_thickness": 0.0,
        "separator_thickness": 0.5 * a, "interface_thickness": 0.15 * a, "gradient_length": 0.08 * a,
        "c_rate": 1.0 / (a * a), "exchange_current_density": 0.1 / a, "stress_coupling": False,
        "electrolyte_modulus": 0.2, "electrolyte_toughness": 1000.0, "stack_pressure": 0.0,
        "out_of_plane": "generalized", "fracture": True, "damage_length": ell,
    }


def run(radius: float, cells: int, ell: float):
    spec = scenario(radius, cells, ell)
    a2 = radius * radius
    solver = {"dt": 1.0 * a2, "adaptive": True, "dt_min": 1e-4 * a2, "dt_max": 60.0 * a2, "target_change": 0.02}
    config = validate_run({"scenario": spec, "solver": solver, "output": {}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    rows = []

    def on_chunk(carry, clock, records, frame):
        rows.extend(scalars for _, scalars in records)

    start = time.time()
    carry, _ = integrate(simulation.stepper, time_control(config.solver, stable_dt(simulation)), params, carry,
                         {"t": 0.0, "step": 0, "dt": config.solver.dt}, spec["t_end"], spec["t_end"] / 25,
                         spec["t_end"] / 25, simulation.diagnostics, on_chunk)
    wall = time.time() - start
    scalars = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    psi = np.asarray(make_geometry(simulation.grid, config.scenario).psi)
    damage = np.asarray(carry["state"]["damage"])
    beyond = psi > 0.5
    cracked = float(np.mean(damage[beyond] > 0.5))
    coords = np.meshgrid(*[(np.arange(n) + 0.5) * spec["size"][0] / n for n in spec["shape"]], indexing="ij")
    r = np.hypot(coords[0] - 2 * radius, coords[1] - 2 * radius) / radius
    broken = beyond & (damage > 0.5)
    onset = np.flatnonzero(scalars["cracked_particle_fraction"] > 0.01)
    h = spec["size"][0] / spec["shape"][0]
    lithiated_e, toughness = 40.0, 6.0  # the scenario's lithiated modulus (GPa) and G_c (J/m^2)
    strength = np.sqrt(3 * lithiated_e * toughness * 1e-3 / (8 * ell))
    hoop = float(np.max(scalars["surface_hoop_stress"]))
    return {"radius_um": radius, "cells_per_radius": cells, "ell_over_h": ell / h, "ell_over_a": ell / radius,
            "strength_GPa": strength, "hoop_max_GPa": hoop, "soc": float(scalars["state_of_charge"][-1]),
            "damage_max": float(np.max(damage)), "cracked_fraction": cracked,
            "soc_at_onset": float(scalars["state_of_charge"][onset[0]]) if onset.size else float("nan"),
            "cracked_r_over_a": float(np.mean(r[broken])) if broken.any() else float("nan"),
            "wall_s": wall}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--radii", type=float, nargs="+", default=[0.1, 0.2, 0.4], help="particle radii, um")
    parser.add_argument("--cells", type=int, default=16, help="cells per radius (the cell is 4 radii wide)")
    parser.add_argument("--ell", type=float, default=0.025, help="phase-field length, um (>= the largest cell)")
    args = parser.parse_args()
    for radius in args.radii:
        result = run(radius, args.cells, args.ell)
        print("  ".join(f"{k}={v:.4g}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
