"""Hong & Viswanathan (2018) setup: morphology at several times and dendrite height against time.

Runs ``scenario=dendrite_hong2018`` (200 x 200 um, -0.45 V, to 400 s or to the short circuit)
through the normal run path, so the run directory holds ``run.h5`` as any job does, then writes
``hong2018_morphology.png`` (xi at up to six frames) and ``hong2018_height.png`` (dendrite height
and electrode current against time) and prints a table of height against time.

    python experiments/dendrite_hong2018.py --out runs/hong2018
    python experiments/dendrite_hong2018.py --out runs/hong2018_small --shape 100 100   # 2 um cells, quicker
    python experiments/dendrite_hong2018.py --formulation grand_potential --out runs/hong2018_gp --shape 100 100 --t-end 30

``--formulation grand_potential`` runs Hong's own form (``scenario=dendrite_hong2018_gp``) and also prints its
Li balance (``li_drift``: total Li less its initial value less the far wall's inflow).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import matplotlib
import numpy as np
from omegaconf import OmegaConf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: Path) -> dict:
    """A config YAML read as Hydra reads it (OmegaConf: 7.64e4 is a number)."""
    return OmegaConf.to_container(OmegaConf.load(path))


SCENARIOS = {"chen2015": "dendrite_hong2018", "grand_potential": "dendrite_hong2018_gp"}


def load_config(overrides: dict, formulation: str = "chen2015") -> dict:
    """The scenario YAML of ``formulation`` with the solver and output it selects, as a run config dict."""
    scenario = load_yaml(ROOT / f"configs/scenario/{SCENARIOS[formulation]}.yaml")
    chosen = [entry for entry in scenario.pop("defaults") if isinstance(entry, dict)
              and "override /solver@_global_.solver" in entry]
    scenario.update(overrides)
    solver = load_yaml(ROOT / f"configs/solver/{chosen[0]['override /solver@_global_.solver']}.yaml")
    output = load_yaml(ROOT / "configs/output/dendrite.yaml")
    return {"scenario": scenario, "solver": solver, "output": {**output, "plots": False}}


def figures(run_file: Path, out_dir: Path, panels: int = 6):
    with h5py.File(run_file, "r") as f:
        times, xi = f["time"][()], f["fields/xi"]
        x, y = f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
        picks = np.unique(np.linspace(0, len(times) - 1, panels).round().astype(int))
        frames = [(times[i], xi[i]) for i in picks]
        s_time, height = f["scalars/time"][()], f["scalars/dendrite_height"][()]
        current = f["scalars/current_density"][()]
        stop = f.attrs.get("stop_reason", "")
        drift = f["scalars/li_drift"][()] if "li_drift" in f["scalars"] else None
        total = f["scalars/total_li"][()]
    fig, axes = plt.subplots(1, len(frames), figsize=(3.2 * len(frames), 3.4), squeeze=False)
    for ax, (t, field) in zip(axes[0], frames):
        ax.imshow(field.T, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap="viridis", vmin=0, vmax=1)
        ax.set_title(f"t = {t:.0f} s")
        ax.set_xlabel("x [um]")
    axes[0, 0].set_ylabel("y [um]")
    fig.suptitle("xi (Li metal = 1), Hong & Viswanathan 2018 setup, -0.45 V")
    fig.tight_layout()
    fig.savefig(out_dir / "hong2018_morphology.png", dpi=110)
    plt.close(fig)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    top.plot(s_time, height)
    top.set_ylabel("dendrite height [um]")
    bottom.plot(s_time, current)
    bottom.set_ylabel("current [mA/cm^2]")
    bottom.set_xlabel("time [s]")
    if stop:
        top.set_title(stop, fontsize=8)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_dir / "hong2018_height.png", dpi=110)
    plt.close(fig)
    return s_time, height, stop, (None if drift is None else (drift, total))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/hong2018"))
    parser.add_argument("--shape", type=int, nargs=2, default=None, help="cells (default 200 200: 1 um)")
    parser.add_argument("--t-end", type=float, default=None, help="s (default 400)")
    parser.add_argument("--formulation", choices=sorted(SCENARIOS), default="chen2015",
                        help="chen2015 (dendrite_hong2018) or grand_potential (dendrite_hong2018_gp, Hong's own form)")
    args = parser.parse_args()
    overrides = {}
    if args.shape:
        overrides["shape"] = list(args.shape)
    if args.t_end:
        overrides["t_end"] = args.t_end
    from phasefield.runner import run

    start = time.perf_counter()
    run_file = run(load_config(overrides, args.formulation), args.out)
    wall = time.perf_counter() - start
    s_time, height, stop, balance = figures(run_file, args.out)
    print(f"wall time {wall:.1f} s; {stop or 'ran to t_end'}")
    print(f"{'t [s]':>8} {'height [um]':>12}")
    for t in np.linspace(0, s_time[-1], 9):
        print(f"{t:8.1f} {np.interp(t, s_time, height):12.2f}")
    if balance is not None:  # grand_potential: the Li the scheme created, against the Li in the cell
        drift, total = balance
        print(f"Li balance: total {total[0]:.6g} -> {total[-1]:.6g} mol/m^2, largest |drift| {np.max(np.abs(drift)):.3g} "
              f"mol/m^2 ({np.max(np.abs(drift)) / total[0]:.3g} of the initial total), final {drift[-1]:.3g}")
    print(f"figures in {args.out}")


if __name__ == "__main__":
    main()
