"""Dendrite growth in a solid electrolyte against stack pressure and against the electrolyte's shear modulus.

Every run is ``scenario=dendrite_solid`` (configs/scenario/dendrite_solid.yaml) on a smaller cell
(72 x 72 um on 96 x 96 cells, 8 s, the same nuclei), through the normal run path:

* no mechanics: deposition eigenstrain 0 and stack pressure 0 (the liquid model, bit for bit);
* stack pressure 0, 5, 20, 100 MPa in LLZO (E 150 GPa, nu 0.257, shear modulus 60 GPa), with the
  deposition eigenstrain of the scenario (0.01), and 20, 100 MPa without it (stack pressure alone);
* electrolyte shear modulus 3, 6, 12, 40 GPa (nu 0.3) at 5 MPa, below and above Monroe-Newman's
  ~9 GPa (about twice the shear modulus of Li, 2.8 GPa here).

It prints, per run, the wall time, the dendrite height, the deposited charge, the interface area
per electrode area, the mechanical overpotential at the tip and the pressure at the interface
(both averaged over the second half of the run), the largest pressure in the metal and the
largest von Mises stress in the electrolyte at the end; it writes ``dendrite_solid_pressure.png``
(xi at the end of every run, height against the swept value; a run that short-circuits ends
early, at the time in the table) and ``dendrite_solid_pressure.json``
(the table) to ``experiments/results/``. ``--reaction-pressure hydrostatic`` runs the same set with
-tr(sigma)/3 of each cell as the pressure of the mechanical overpotential (files
``dendrite_solid_pressure_hydrostatic.*``).

    python experiments/dendrite_solid_pressure.py --out runs/dendrite_solid_pressure
    python experiments/dendrite_solid_pressure.py --reaction-pressure hydrostatic --out runs/dsp_hydrostatic
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import matplotlib
import numpy as np
from omegaconf import OmegaConf

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
PRESSURES = (0.0, 5.0, 20.0, 100.0)  # MPa
PRESSURES_ALONE = (20.0, 100.0)  # MPa, no deposition eigenstrain
SHEAR_MODULI = (3.0, 6.0, 12.0, 40.0)  # GPa
SWEEP_POISSON = 0.3
SMALL_CELL = {"size": [72.0, 72.0], "shape": [96, 96], "electrode_position": 6.0, "random_nuclei": 3,
              "short_circuit_gap": 8.0}


def load_yaml(path: Path) -> dict:
    """A config YAML read as Hydra reads it (OmegaConf: 7.64e4 is a number)."""
    return OmegaConf.to_container(OmegaConf.load(path))


def config(t_end: float, **overrides) -> dict:
    scenario = load_yaml(ROOT / "configs/scenario/dendrite_solid.yaml")
    scenario.pop("defaults")
    scenario.update(SMALL_CELL, t_end=t_end, **overrides)
    solver = load_yaml(ROOT / "configs/solver/dendrite.yaml")
    return {"scenario": scenario, "solver": solver,
            "output": {"interval": t_end, "scalar_interval": t_end / 40, "plots": False}}


def runs() -> list[tuple[str, str, float, dict]]:
    """(label, sweep, swept value, scenario overrides) of every run."""
    out = [("no mechanics", "reference", 0.0, {"deposition_eigenstrain": 0.0, "stack_pressure": 0.0})]
    out += [(f"p = {p:g} MPa", "pressure", p, {"stack_pressure": p}) for p in PRESSURES]
    out += [(f"p = {p:g} MPa, eps0 = 0", "pressure alone", p, {"stack_pressure": p, "deposition_eigenstrain": 0.0})
            for p in PRESSURES_ALONE]
    out += [(f"G = {g:g} GPa", "shear", g, {"electrolyte_young_modulus": 2.0 * g * (1.0 + SWEEP_POISSON),
                                            "electrolyte_poisson_ratio": SWEEP_POISSON}) for g in SHEAR_MODULI]
    return out


def summarise(run_file: Path) -> dict:
    with h5py.File(run_file, "r") as f:
        s = {k: f["scalars"][k][()] for k in f["scalars"]}
        xi, x, y = f["fields/xi"][-1], f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
    late = s["time"] >= 0.5 * s["time"][-1]
    return {"time": float(s["time"][-1]), "height": float(s["dendrite_height"][-1]),
            "charge": float(s["deposited_charge"][-1]), "area": float(s["interface_area"][-1]),
            "tip_overpotential": float(np.mean(s["tip_mechanical_overpotential"][late])),
            "interface_pressure": float(np.mean(s["interface_pressure"][late])),
            "metal_pressure_max": float(s["metal_pressure_max"][-1]),
            "electrolyte_von_mises_max": float(s["electrolyte_von_mises_max"][-1]),
            "xi": xi, "extent": (x[0], x[-1], y[0], y[-1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/dendrite_solid_pressure"))
    parser.add_argument("--t-end", type=float, default=8.0, help="s")
    parser.add_argument("--reaction-pressure", choices=("normal_traction", "hydrostatic"), default="normal_traction")
    args = parser.parse_args()
    stem = "dendrite_solid_pressure" + ("" if args.reaction_pressure == "normal_traction" else "_hydrostatic")
    from phasefield.runner import run

    rows = []
    for label, sweep, value, overrides in runs():
        run_dir = args.out / label.replace(" ", "").replace("=", "_").replace(",", "_")
        start = time.perf_counter()
        run_file = run(config(args.t_end, reaction_pressure=args.reaction_pressure, **overrides), run_dir)
        rows.append({"label": label, "sweep": sweep, "value": value, "wall": time.perf_counter() - start,
                     **summarise(run_file)})

    print(f"{'run':>22} {'wall s':>7} {'t s':>5} {'height um':>10} {'charge C/cm2':>13} {'area':>6} "
          f"{'tip eta_mech mV':>16} {'p_interface MPa':>16} {'p_metal max':>12} {'vM_SE max':>10}")
    for r in rows:
        print(f"{r['label']:>22} {r['wall']:7.1f} {r['time']:5.2f} {r['height']:10.2f} {r['charge']:13.3f} "
              f"{r['area']:6.2f} {r['tip_overpotential']:16.2f} {r['interface_pressure']:16.2f} "
              f"{r['metal_pressure_max']:12.1f} {r['electrolyte_von_mises_max']:10.1f}")

    fig = plt.figure(figsize=(3.0 * len(rows), 6.4))
    grid = fig.add_gridspec(2, len(rows))
    for i, r in enumerate(rows):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(r["xi"].T, origin="lower", extent=r["extent"], cmap="viridis", vmin=0, vmax=1)
        ax.set_title(r["label"], fontsize=9)
        ax.set_xlabel("x [um]")
    reference = next(r for r in rows if r["sweep"] == "reference")
    panels = (("pressure", "stack pressure [MPa]"), ("shear", "electrolyte shear modulus [GPa]"))
    for k, (sweep, xlabel) in enumerate(panels):
        ax = fig.add_subplot(grid[1, k * len(rows) // 2:(k + 1) * len(rows) // 2])
        for name, label in ((sweep, "eps0 = 0.01"), (sweep + " alone", "eps0 = 0")):
            chosen = [r for r in rows if r["sweep"] == name]
            if chosen:
                ax.plot([r["value"] for r in chosen], [r["height"] for r in chosen], "o-", label=label)
        ax.axhline(reference["height"], color="grey", ls="--", label="no mechanics")
        if sweep == "shear":
            ax.axvline(9.0, color="k", ls=":", label="Monroe-Newman ~9 GPa")
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("dendrite height [um]")
        ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / f"{stem}.png", dpi=100)
    plt.close(fig)
    table = [{k: v for k, v in r.items() if k not in ("xi", "extent")} for r in rows]
    (RESULTS / f"{stem}.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
