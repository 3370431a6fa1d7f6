"""Issue 16 items 2 and 3, measured on the default ``swelling`` config: the largest and smallest c in the
particles (c_max, c_min over the run, psi > 1/2 and psi > 0.01), the Li balance, and the error of the
mean stack stress <sigma_xx> + p over the run.

    PYTHONPATH=. python experiments/swelling_bounds.py                   # 1C default
    PYTHONPATH=. python experiments/swelling_bounds.py --c-rate 2 --radius 1.2 --particles 2 --pressure 50
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
sys.path.insert(0, str(ROOT / "tests"))
jax.config.update("jax_enable_x64", True)

from swelling_pressure_sweep import load_yaml, scenario_for  # noqa: E402
from scenario_runs import run_scenario  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--c-rate", type=float, default=1.0)
    parser.add_argument("--radius", type=float, default=None)
    parser.add_argument("--particles", type=int, default=None)
    parser.add_argument("--pressure", type=float, default=None)
    parser.add_argument("--shape", type=int, nargs=2, default=None)
    parser.add_argument("--dt-max", type=float, default=None)
    parser.add_argument("--cutoff", type=float, default=None, help="cutoff_voltage, V (-1: run to 95 %% SOC)")
    args = parser.parse_args()
    scenario = scenario_for("silicon")
    scenario.pop("name"), scenario.pop("t_end")
    scenario["c_rate"] = args.c_rate
    if args.radius is not None:
        scenario["particle_radius"] = args.radius
    if args.particles is not None:
        scenario["random_particles"] = args.particles
    if args.pressure is not None:
        scenario["stack_pressure"] = args.pressure
    if args.shape is not None:
        scenario["shape"] = args.shape
    if args.cutoff is not None:
        scenario["cutoff_voltage"] = args.cutoff
    solver = load_yaml(ROOT / "configs/solver/swelling.yaml")
    if args.dt_max is not None:
        solver["dt_max"] = args.dt_max
    start = time.time()
    times, s, carry, simulation = run_scenario("swelling", 3600.0 / args.c_rate * 1.1, 30.0, solver, **scenario)
    psi = np.asarray(simulation.stepper.fields(simulation.parameters, carry)["particles"])
    c = np.asarray(carry["state"]["c"])
    pressure = scenario["stack_pressure"] / 1000.0
    print(f"c_rate {args.c_rate}: wall {time.time() - start:.0f} s, t {times[-1]:.0f} s, "
          f"SOC {s['state_of_charge'][-1]:.4f}, V {s['electrode_potential'][-1]:.3f}")
    print(f"  c over the run's records: max {s['concentration_max'].max():.6f} (max - 1 = "
          f"{s['concentration_max'].max() - 1:.1e}), min {s['concentration_min'].min():.3e}"
          if "concentration_min" in s else f"  max c (psi>0.5) over run {s['concentration_max'].max():.6f}")
    print(f"  final c in psi>0.01: [{c[psi > 0.01].min():.3e}, {c[psi > 0.01].max():.6f}], "
          f"share >1: {np.mean(c[psi > 0.5] > 1):.3f}")
    print(f"  Li: inserted {s['inserted_li'][-1]:.6e}, content {s['li_content'][-1]:.6e}, "
          f"rel diff {abs(s['inserted_li'][-1] - s['li_content'][-1]) / s['inserted_li'][-1]:.2e}")
    print(f"  mean sigma_xx + p: max |err| {1000 * np.abs(s['mean_stress_xx'] + pressure).max():.3g} MPa; "
          f"plastic_strain_max {s['plastic_strain_max'][-1]:.3f}, hoop {s['surface_hoop_stress'][-1]:.3f} GPa")


if __name__ == "__main__":
    main()
