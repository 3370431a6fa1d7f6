"""Stack-pressure sweep of alloy-anode swelling: Si and Sn, two particle sizes, 5 to 100 MPa.

Each run lithiates the 2D ``swelling`` scenario (random particles in Li6PS5Cl, 1C) to 95 % state of
charge (or the 0 V cutoff). The script prints, per material, radius and pressure: the wall time, the
state of charge reached, the electrode thickness change (swelling), the largest pressure and von
Mises stress in the particles and in the electrolyte, the largest tensile normal stress on the
particle/electrolyte interface (contact loss) and the largest plastic strain; it writes
``pressure_sweep.png`` (swelling and peak stresses against pressure) and ``stress_fields.png``
(pressure, von Mises and plastic strain at the end of one Si run).

    python experiments/swelling_pressure_sweep.py --out runs/swelling_sweep
    python experiments/swelling_pressure_sweep.py --pressures 5 50 --radii 1.0 --materials silicon
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
MATERIALS = {"silicon": "swelling.yaml", "tin": "swelling_tin.yaml"}
COLUMNS = ("state_of_charge", "swelling", "particle_pressure_max", "particle_von_mises_max",
           "electrolyte_pressure_max", "electrolyte_von_mises_max", "interface_tension_max", "plastic_strain_max")


def load_yaml(path: Path) -> dict:
    """A config YAML read as Hydra reads it (OmegaConf: 3.11e5 is a number)."""
    return OmegaConf.to_container(OmegaConf.load(path))


def scenario_for(material: str) -> dict:
    path = ROOT / "configs/scenario" / MATERIALS[material]
    scenario = load_yaml(path)
    parents = [d for d in scenario.pop("defaults") if isinstance(d, str) and d != "_self_" and "/" not in d]
    for parent in parents:  # swelling_tin.yaml extends swelling.yaml
        base = load_yaml(ROOT / "configs/scenario" / f"{parent}.yaml")
        base.pop("defaults")
        scenario = {**base, **scenario}
    return scenario


def config(material: str, radius: float, pressure: float, shape) -> dict:
    scenario = scenario_for(material)
    scenario.update(particle_radius=radius, stack_pressure=pressure, shape=list(shape),
                    random_particles=3 if radius >= 1.0 else 8)
    solver = load_yaml(ROOT / "configs/solver/swelling.yaml")
    return {"scenario": scenario, "solver": solver,
            "output": {"interval": 600.0, "scalar_interval": 30.0, "plots": False}}


def summarise(run_file: Path) -> dict:
    with h5py.File(run_file, "r") as f:
        row = {k: float(np.max(f["scalars"][k][()])) for k in COLUMNS}
        row["state_of_charge"] = float(f["scalars/state_of_charge"][-1])
        row["swelling"] = float(f["scalars/swelling"][-1])
        row["time"] = float(f["scalars/time"][-1])
    return row


def plot_fields(run_file: Path, out: Path):
    with h5py.File(run_file, "r") as f:
        x, y = f["grid/x"][()] * 1e6, f["grid/y"][()] * 1e6
        panels = [("hydrostatic_stress", "sigma_h (GPa)", "RdBu_r"), ("von_mises_stress", "von Mises (GPa)", "magma"),
                  ("equivalent_plastic_strain", "plastic strain", "viridis"), ("c", "c (Li fraction)", "cividis")]
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
        for ax, (name, label, cmap) in zip(axes, panels):
            field = f["fields"][name][-1]
            extra = {}
            if name == "hydrostatic_stress":
                bound = float(np.percentile(np.abs(field), 99))
                extra = {"vmin": -bound, "vmax": bound}
            image = ax.imshow(field.T, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap=cmap, **extra)
            ax.set_title(label)
            ax.set_xlabel("x (um, stack direction)")
            fig.colorbar(image, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(out, dpi=130)
        plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/swelling_sweep"))
    parser.add_argument("--pressures", type=float, nargs="+", default=[5.0, 10.0, 20.0, 50.0, 100.0], help="MPa")
    parser.add_argument("--radii", type=float, nargs="+", default=[0.5, 1.0], help="particle radius, um")
    parser.add_argument("--materials", nargs="+", default=["silicon", "tin"], choices=sorted(MATERIALS))
    parser.add_argument("--shape", type=int, nargs=2, default=[128, 128])
    args = parser.parse_args()

    from phasefield.runner import run

    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    header = f"{'material':8s} {'R um':>5s} {'p MPa':>6s} {'wall s':>7s} " + " ".join(f"{c[:14]:>14s}" for c in COLUMNS)
    print(header)
    for material in args.materials:
        for radius in args.radii:
            for pressure in args.pressures:
                run_dir = args.out / f"{material}_r{radius:g}_p{pressure:g}"
                start = time.perf_counter()
                if not (run_dir / "run.h5").exists():
                    run(config(material, radius, pressure, args.shape), run_dir)
                row = summarise(run_dir / "run.h5")
                row["wall"] = time.perf_counter() - start
                results[material, radius, pressure] = row
                print(f"{material:8s} {radius:5.2f} {pressure:6.1f} {row['wall']:7.1f} "
                      + " ".join(f"{row[c]:14.4g}" for c in COLUMNS), flush=True)

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for material in args.materials:
        for radius in args.radii:
            rows = [results[material, radius, p] for p in args.pressures]
            label = f"{material}, R = {radius:g} um"
            axes[0].plot(args.pressures, [r["swelling"] for r in rows], "o-", label=label)
            axes[1].plot(args.pressures, [r["particle_pressure_max"] for r in rows], "o-", label=label)
            axes[2].plot(args.pressures, [r["interface_tension_max"] for r in rows], "o-", label=label)
    for ax, label in zip(axes, ("electrode thickness change at the end (%)", "peak particle pressure (GPa)",
                                "peak interface normal stress (GPa, > 0: tension)")):
        ax.set_xscale("log")
        ax.set_xlabel("stack pressure (MPa)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "pressure_sweep.png", dpi=130)
    plt.close(fig)
    first = args.materials[0], max(args.radii), args.pressures[0]
    plot_fields(args.out / f"{first[0]}_r{first[1]:g}_p{first[2]:g}" / "run.h5", args.out / "stress_fields.png")
    print(f"wrote {args.out / 'pressure_sweep.png'} and {args.out / 'stress_fields.png'}")


if __name__ == "__main__":
    main()
