"""Cycling of alloy anodes: Si and Sn, two stack pressures, lithiation-delithiation cycles at 1C.

Each run cycles the 2D ``swelling`` scenario (random particles in Li6PS5Cl) between the delithiated
state of charge (0.05) and 0.95, with the 0 V and 1 V cutoffs (``cycles``). The script prints, per
material, pressure and half cycle: the state of charge at its end, the mean electrode potential, the
swelling at its end, the plastic strain accumulated during it (irreversible strain per half cycle),
the peak particle pressure and the peak interface normal stress (> 0: tension, the contact-loss
indicator; it turns tensile on delithiation). It writes ``cycling.png``: potential against state
of charge (the voltage hysteresis), mean particle pressure against potential (stress-potential
hysteresis), swelling and interface tension against time.

    python experiments/swelling_cycling.py --out runs/swelling_cycling               # 3 cycles, 128^2
    python experiments/swelling_cycling.py --quick --out runs/swelling_cycling_quick  # 1 cycle, 64^2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from swelling_pressure_sweep import MATERIALS, config  # noqa: E402

SCALARS = ("time", "state_of_charge", "electrode_potential", "current_direction", "half_cycles", "swelling",
           "plastic_strain_mean", "particle_pressure_mean", "particle_pressure_max", "interface_tension_max")


def cycling_config(material: str, pressure: float, cycles: int, shape) -> dict:
    run = config(material, 1.0, pressure, shape)
    run["scenario"].update(cycles=cycles, final_state_of_charge=0.95, delithiated_state_of_charge=0.05,
                           cutoff_voltage=0.0, delithiation_cutoff_voltage=1.0, t_end=cycles * 2.2 * 3600.0)
    return run


def read(run_file: Path) -> dict:
    with h5py.File(run_file, "r") as f:
        return {k: np.asarray(f["scalars"][k][()]) for k in SCALARS}


def half_cycle_rows(s: dict, cycles: int) -> list[dict]:
    """One row per half cycle (the records between turns of the current; records inside the step that
    ends the last cycle carry its new half-cycle count and are left out)."""
    rows, starts = [], [0, *list(np.flatnonzero(np.diff(s["half_cycles"]) > 0) + 1), len(s["time"])]
    for number, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        if b - a < 2 or number >= 2 * cycles:
            continue
        part = slice(a, b)
        rows.append({
            "half": number + 1,
            "kind": "lithiation" if s["current_direction"][a] > 0 else "delithiation",
            "soc_end": s["state_of_charge"][b - 1],
            "potential_mean": float(np.mean(s["electrode_potential"][a + 1:b])),
            "swelling_end": s["swelling"][b - 1],
            "plastic_increment": s["plastic_strain_mean"][b - 1] - s["plastic_strain_mean"][a],
            "pressure_max": float(np.max(s["particle_pressure_max"][part])),
            "tension_max": float(np.max(s["interface_tension_max"][part])),
        })
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/swelling_cycling"))
    parser.add_argument("--pressures", type=float, nargs="+", default=[5.0, 50.0], help="MPa")
    parser.add_argument("--materials", nargs="+", default=["silicon", "tin"], choices=sorted(MATERIALS))
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--shape", type=int, nargs=2, default=[128, 128])
    parser.add_argument("--quick", action="store_true", help="1 cycle on 64^2")
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.shape = 1, [64, 64]

    from phasefield.runner import run

    args.out.mkdir(parents=True, exist_ok=True)
    series = {}
    print(f"{'material':8s} {'p MPa':>6s} {'half':>4s} {'kind':>12s} {'SOC end':>8s} {'E mean V':>8s} "
          f"{'swell %':>8s} {'d eps_p':>8s} {'p_max GPa':>9s} {'tension GPa':>11s}")
    for material in args.materials:
        for pressure in args.pressures:
            run_dir = args.out / f"{material}_p{pressure:g}"
            start = time.perf_counter()
            if not (run_dir / "run.h5").exists():
                run(cycling_config(material, pressure, args.cycles, args.shape), run_dir)
            wall = time.perf_counter() - start
            s = series[material, pressure] = read(run_dir / "run.h5")
            for row in half_cycle_rows(s, args.cycles):
                print(f"{material:8s} {pressure:6.1f} {row['half']:4d} {row['kind']:>12s} {row['soc_end']:8.3f} "
                      f"{row['potential_mean']:8.3f} {row['swelling_end']:8.2f} {row['plastic_increment']:8.4f} "
                      f"{row['pressure_max']:9.3f} {row['tension_max']:11.3f}")
            print(f"{material:8s} {pressure:6.1f} wall {wall:.1f} s, {len(s['time'])} records", flush=True)

    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    for (material, pressure), s in series.items():
        label = f"{material}, {pressure:g} MPa"
        axes[0].plot(s["state_of_charge"][1:], s["electrode_potential"][1:], label=label)
        axes[1].plot(s["electrode_potential"][1:], s["particle_pressure_mean"][1:], label=label)
        axes[2].plot(s["time"] / 3600.0, s["swelling"], label=label)
        axes[3].plot(s["time"] / 3600.0, s["interface_tension_max"], label=label)
    labels = [("state of charge", "electrode potential (V vs Li/Li+)"),
              ("electrode potential (V vs Li/Li+)", "mean particle pressure (GPa)"),
              ("time (h)", "electrode thickness change (%)"),
              ("time (h)", "peak interface normal stress (GPa, > 0: tension)")]
    for ax, (xlabel, ylabel) in zip(axes, labels):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "cycling.png", dpi=130)
    plt.close(fig)
    print(f"wrote {args.out / 'cycling.png'}")


if __name__ == "__main__":
    main()
