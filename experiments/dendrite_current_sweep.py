"""Galvanostatic plating into a liquid binary electrolyte, 0.5 to 20 mA/cm^2: compact growth below the
cell's limiting current, Sand's time and dendritic onset above it.

Each current runs the default scenario (reaction formulation, 0.1 M salt, t+ = 0.38, three nuclei) under
``control=current``. In a cell of electrolyte gap ``L`` with a reservoir at the far wall the salt at the
electrode runs out only above the limiting current ``i_lim = F D c0 / ((1 - t+) L)`` (11 mA/cm^2 here);
the run then stops when no electrode potential down to -2 V carries the current, and the script sets
that time beside the semi-infinite Sand's time ``tau = pi D (F c0 / (2 i t_a))^2`` (the finite gap
delays it). It writes ``current_sweep.png`` (xi at the end of each run, voltage curves) and prints, per
current, the wall time, the end time, Sand's time, the capacity plated (mAh/cm^2), the final electrode
potential and its split (kinetic, concentration, ohmic) and the roughness (interface area per electrode
area: 1 for a flat deposit).

    python experiments/dendrite_current_sweep.py --out runs/current_sweep --currents 0.5 2 5 10 20
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import h5py
import matplotlib
from omegaconf import OmegaConf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from phasefield.physics.electrochemistry import FARADAY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: Path) -> dict:
    """A config YAML read as Hydra reads it (OmegaConf: 7.64e4 is a number)."""
    return OmegaConf.to_container(OmegaConf.load(path))


def config(current: float, t_end: float) -> dict:
    scenario = load_yaml(ROOT / "configs/scenario/dendrite.yaml")
    scenario.pop("defaults")
    scenario.update(control="current", current_density=current, voltage=-0.05, t_end=t_end)
    solver = load_yaml(ROOT / "configs/solver/dendrite.yaml")
    return {"scenario": scenario, "solver": solver,
            "output": {"interval": t_end, "scalar_interval": t_end / 200, "plots": False}}


def sand_time(scenario: dict, current: float) -> float:
    """Semi-infinite Sand's time of the binary salt, s."""
    t_anion = 1.0 - scenario["transference_number"]
    return math.pi * scenario["diffusivity_electrolyte"] * (
        FARADAY * scenario["bulk_concentration"] / (2 * current * 10 * t_anion)) ** 2


def limiting_current(scenario: dict) -> float:
    """``F D c0 / ((1 - t+) L)`` over the electrolyte gap, mA/cm^2."""
    gap = (scenario["size"][0] - scenario["electrode_position"]) * 1e-6
    return FARADAY * scenario["diffusivity_electrolyte"] * scenario["bulk_concentration"] / (
        (1 - scenario["transference_number"]) * gap) / 10


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/current_sweep"))
    parser.add_argument("--currents", type=float, nargs="+", default=[0.5, 2.0, 5.0, 10.0, 20.0], help="mA/cm^2")
    parser.add_argument("--capacity", type=float, default=1.0, help="mAh/cm^2 to plate (sets t_end)")
    args = parser.parse_args()
    from phasefield.runner import run

    base = config(1.0, 1.0)["scenario"]
    print(f"limiting current of the cell: {limiting_current(base):.3g} mA/cm^2")
    rows = []
    for current in args.currents:
        t_end = args.capacity * 3600 / current
        start = time.perf_counter()
        run_file = run(config(current, t_end), args.out / f"i{current:g}")
        wall = time.perf_counter() - start
        with h5py.File(run_file, "r") as f:
            s = {k: f["scalars"][k][()] for k in f["scalars"]}
            xi, x, y = f["fields/xi"][-1], f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
            stop = f.attrs.get("stop_reason", "")
        rows.append((current, wall, s, xi, (x[0], x[-1], y[0], y[-1]), stop))
    fig, axes = plt.subplots(2, len(rows), figsize=(3.2 * len(rows), 6.4), squeeze=False)
    print(f"{'i':>6} {'wall s':>7} {'t_end':>8} {'Sand s':>8} {'mAh/cm2':>8} {'V':>7} {'kin':>7} {'conc':>7} "
          f"{'ohm':>7} {'area':>5}  stop")
    for column, (current, wall, s, xi, extent, stop) in enumerate(rows):
        ax = axes[0][column]
        ax.imshow(xi.T, origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{current:g} mA/cm$^2$, t = {s['time'][-1]:.3g} s", fontsize=9)
        ax.set_xlabel("x [um]")
        axes[1][column].plot(s["time"], s["electrode_potential"], label="electrode")
        for part in ("kinetic", "concentration", "ohmic"):
            axes[1][column].plot(s["time"], s[f"{part}_overpotential"], label=part)
        axes[1][column].set_xlabel("t [s]")
        print(f"{current:6.3g} {wall:7.1f} {s['time'][-1]:8.4g} {sand_time(base, current):8.4g} "
              f"{s['deposited_capacity'][-1]:8.3g} {s['electrode_potential'][-1]:7.3f} "
              f"{s['kinetic_overpotential'][-1]:7.3f} {s['concentration_overpotential'][-1]:7.3f} "
              f"{s['ohmic_overpotential'][-1]:7.3f} {s['interface_area'][-1]:5.2f}  {stop}")
    axes[1][0].set_ylabel("V")
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "current_sweep.png", dpi=120)
    print(f"wrote {args.out / 'current_sweep.png'}")


if __name__ == "__main__":
    main()
