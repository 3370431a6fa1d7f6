"""Voltage sweep, -0.1 to -0.5 V: the transition from stable (flat) to dendritic deposition.

Each voltage runs the default 2D dendrite scenario (a few nuclei, anisotropy, noise) to the same
end time, or to the short circuit; the script writes ``voltage_sweep.png`` (xi at the end of each
run) and prints, per voltage, the wall time, the end time, the mean current, the dendrite height
over the mean deposit thickness (about 1 for a flat front, large for dendrites) and the interface
area per electrode area (1 for a flat front).

    python experiments/dendrite_voltage_sweep.py --out runs/sweep --voltages -0.1 -0.2 -0.3 -0.4 -0.5

Measured (the default scenario: 0.1 M salt, 48 x 48 um on 96 x 96 cells, three nuclei, 600 s; 2 shared CPU
cores, 2026-12-01, 40 min; ``docs/voltage_sweep.png``)::

       V   i (mA/cm^2)  height / thickness  interface area
    -0.10      5.74          1.42               1.09      compact, the nuclei flattened
    -0.20      9.71          1.38               1.24      bumps
    -0.30     12.1           1.66               1.99      fingers
    -0.40     14.1           1.94               2.80      dendrites (the default job)
    -0.50     15.7           2.11               3.34      dendrites, side branches

The current is the mean over the run (the salt at the electrode runs out within seconds above about -0.2 V:
diffusion-limited growth focuses on the tips). Before the reaction formulation (chen2015) this sweep ran 15 s at
600+ mA/cm^2, and at the default resolution -0.1 V dissolved the deposit and -0.2 V did not advance.
"""
from __future__ import annotations

import argparse
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
SITE_DENSITY = 7.64e4  # mol/m^3 (the scenario's)


def config(voltage: float, t_end: float | None, shape) -> dict:
    """The default dendrite scenario at ``voltage``; ``t_end`` and ``shape`` the scenario's where ``None``."""
    scenario = load_yaml(ROOT / "configs/scenario/dendrite.yaml")
    scenario.pop("defaults")
    scenario.update(voltage=voltage, t_end=t_end or scenario["t_end"], shape=list(shape or scenario["shape"]))
    t_end = scenario["t_end"]
    solver = load_yaml(ROOT / "configs/solver/dendrite.yaml")
    return {"scenario": scenario, "solver": solver,
            "output": {"interval": t_end, "scalar_interval": t_end / 200, "plots": False}}


def summarise(run_file: Path) -> dict:
    """Morphology and deposit at the end of the run."""
    with h5py.File(run_file, "r") as f:
        s = {k: f["scalars"][k][()] for k in ("time", "deposited_charge", "dendrite_height", "interface_area",
                                                "current_density")}
        xi, x, y = f["fields/xi"][-1], f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
        stop = f.attrs.get("stop_reason", "")
    k = -1
    thickness = s["deposited_charge"][k] * 1e4 / (FARADAY * SITE_DENSITY) * 1e6  # um of dense Li
    return {"time": s["time"][k], "current": s["deposited_charge"][k] / max(s["time"][k], 1e-12) * 1e3,
            "height_ratio": s["dendrite_height"][k] / thickness if thickness > 0.05 else float("nan"),  # nan: no net deposit
            "area": s["interface_area"][k], "xi": xi, "extent": (x[0], x[-1], y[0], y[-1]), "stop": stop}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/voltage_sweep"))
    parser.add_argument("--voltages", type=float, nargs="+", default=[-0.1, -0.2, -0.3, -0.4, -0.5])
    parser.add_argument("--t-end", type=float, default=None, help="s (default: the scenario's, 600 s)")
    parser.add_argument("--shape", type=int, nargs=2, default=None, help="cells (default: the scenario's, 96 x 96)")
    args = parser.parse_args()
    from phasefield.runner import run

    rows = []
    for voltage in args.voltages:
        run_dir = args.out / f"V{voltage:+.2f}"
        start = time.perf_counter()
        run_file = run(config(voltage, args.t_end, args.shape), run_dir)  # ends early at a short circuit
        rows.append((voltage, time.perf_counter() - start, summarise(run_file)))
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.4), squeeze=False)
    print(f"{'V':>6} {'wall s':>7} {'t [s]':>8} {'i [mA/cm2]':>11} {'height/thickness':>17} {'area':>6}")
    for ax, (voltage, wall, r) in zip(axes[0], rows):
        ax.imshow(r["xi"].T, origin="lower", extent=r["extent"], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"{voltage:+.2f} V, t = {r['time']:.3g} s", fontsize=9)
        ax.set_xlabel("x [um]")
        print(f"{voltage:6.2f} {wall:7.1f} {r['time']:8.3g} {r['current']:11.3g} {r['height_ratio']:17.2f} "
              f"{r['area']:6.2f}  {r['stop']}")
    fig.tight_layout()
    fig.savefig(args.out / "voltage_sweep.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
