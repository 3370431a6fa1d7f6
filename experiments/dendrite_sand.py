"""Compact growth, Sand's time, then dendrites: the ``dendrite_sand`` scenario (1 M binary salt, 10 mA/cm^2,
594 um gap to a reservoir) under constant current until the cutoff voltage, then that voltage held (CC-CV).

Prints the semi-infinite Sand's time ``tau = pi D (F c0 / (2 i (1 - t+)))^2``, the gap's limiting current
``F D c0 / ((1 - t+) L)``, and per record the electrode potential, the current, the capacity and the interface
area per electrode area (1: flat); writes ``sand.png``: xi near the electrode at six times and the potential,
current and interface area against time, tau marked. ``--cutoff`` compares cutoffs (one run each).

    python experiments/dendrite_sand.py --out runs/sand                  # the scenario as configured (-0.7 V)
    python experiments/dendrite_sand.py --out runs/sand --cutoff -0.5 -0.7
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import matplotlib
import numpy as np

from dendrite_current_sweep import limiting_current, load_yaml, sand_time

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VIEW = 60.0  # um of the gap shown beside the electrode


def config(cutoff: float | None, t_end: float | None) -> dict:
    scenario = load_yaml(ROOT / "configs/scenario/dendrite_sand.yaml")
    scenario.pop("defaults")
    if cutoff is not None:
        scenario["cutoff_voltage"] = cutoff
    if t_end is not None:
        scenario["t_end"] = t_end
    output = load_yaml(ROOT / "configs/output/dendrite_sand.yaml")
    return {"scenario": scenario, "solver": load_yaml(ROOT / "configs/solver/dendrite.yaml"),
            "output": {**output, "plots": False}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/sand"))
    parser.add_argument("--cutoff", type=float, nargs="+", default=[None], help="cutoff voltages, V")
    parser.add_argument("--t-end", type=float, default=None, help="s (default: the scenario's)")
    args = parser.parse_args()
    from phasefield.runner import run

    base = config(None, None)["scenario"]
    current = base["current_density"]
    tau = sand_time(base, current)
    print(f"{current:g} mA/cm^2: semi-infinite Sand's time {tau:.4g} s ({current * tau / 3600:.3g} mAh/cm^2); "
          f"limiting current of the gap {limiting_current(base):.3g} mA/cm^2")
    runs = []
    for cutoff in args.cutoff:
        cfg = config(cutoff, args.t_end)
        label = f"cutoff {cfg['scenario']['cutoff_voltage']:g} V"
        start = time.perf_counter()
        path = run(cfg, args.out / label.replace(" ", "_"))
        wall = time.perf_counter() - start
        with h5py.File(path, "r") as f:
            s = {k: f["scalars"][k][()] for k in f["scalars"]}
            frames = f["time"][()]
            x, y = f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
            shown = x < VIEW
            picks = np.unique(np.linspace(0, len(frames) - 1, 6).round().astype(int))
            panels = [(frames[i], f["fields/xi"][i][shown]) for i in picks]
        held = s["cutoff_held"] > 0.5
        switched = s["time"][np.argmax(held)] if held.any() else float("nan")
        print(f"\n{label}: wall {wall:.0f} s; cutoff reached at t = {switched:.4g} s ({switched / tau:.3g} tau), "
              f"{s['deposited_capacity'][np.argmax(held)] if held.any() else float('nan'):.3g} mAh/cm^2")
        print(f"{'t s':>7} {'V':>7} {'mA/cm2':>7} {'mAh/cm2':>8} {'area':>6}")
        for i in np.unique(np.linspace(0, len(s["time"]) - 1, 16).round().astype(int)):
            print(f"{s['time'][i]:7.0f} {s['electrode_potential'][i]:7.3f} {s['cell_current_density'][i]:7.3f} "
                  f"{s['deposited_capacity'][i]:8.3f} {s['interface_area'][i]:6.3f}")
        runs.append((label, s, panels, (x[0], x[shown][-1], y[0], y[-1])))
    fig, axes = plt.subplots(len(runs) + 1, 6, figsize=(15, 3.2 * (len(runs) + 1)), squeeze=False)
    for row, (label, s, panels, extent) in enumerate(runs):
        for column, (t, xi) in enumerate(panels):
            axes[row][column].imshow(xi.T, origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=1)
            axes[row][column].set_title(f"{label}, t = {t:.0f} s", fontsize=8)
            axes[row][column].set_xlabel("x [um]", fontsize=8)
        for column, (key, unit) in enumerate((("electrode_potential", "V"), ("cell_current_density", "mA/cm$^2$"),
                                              ("interface_area", "interface area / electrode area"))):
            ax = axes[-1][column]
            ax.plot(s["time"], s[key], label=label)
            ax.axvline(tau, color="gray", ls=":")
            ax.set(xlabel="t [s]", ylabel=unit)
        axes[-1][0].legend(fontsize=7)
    for column in (3, 4, 5):
        axes[-1][column].axis("off")
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "sand.png", dpi=100)
    print(f"wrote {args.out / 'sand.png'}")


if __name__ == "__main__":
    main()
