"""Same results before and after a change: a short run of every scenario, compared field by field.

Record the reference with one checkout (e.g. the previous main in a git worktree), then compare
with another::

    python experiments/regression_compare.py --record /tmp/reference     # on the old checkout
    python experiments/regression_compare.py --compare /tmp/reference    # on the new one

Each case is a real command line (``python run.py ...``), so the script does not depend on the
Python API of either checkout. The table gives, per scenario, the largest relative difference of
the stored fields (over all frames, relative to the field's largest magnitude) and of the scalars
(relative to each scalar's largest magnitude), and whether the step sequences agree.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Scalars only at frames: runs since the model-layer change take adaptive steps across scalar
# record times (records are interpolated), so only frame times land both checkouts on a step.
COMMON = ["output.plots=false"]
CASES = {
    "spinodal_a": ["scenario=spinodal", "scenario.shape=[48,48]", "scenario.t_end=20", "solver=sbdf2",
                   "solver.dt=0.5", "output.interval=10", "output.scalar_interval=10"],
    "spinodal_b_adaptive": ["scenario=spinodal", "scenario.variant=b", "scenario.shape=[40,32]", "scenario.t_end=20",
                            "solver=adaptive", "output.interval=10", "output.scalar_interval=10"],
    "spinodal_explicit": ["scenario=spinodal", "scenario.shape=[32,32]", "scenario.t_end=2", "solver=explicit",
                          "solver.dt=0.0025", "output.interval=1", "output.scalar_interval=1"],
    "spinodal_cube": ["scenario=spinodal_cube", "scenario.shape=[16,16,16]", "scenario.t_end=4", "solver=sbdf2",
                      "solver.dt=0.5", "output.interval=2", "output.scalar_interval=2"],
    "dendrite": ["scenario=dendrite", "scenario.shape=[64,64]", "scenario.t_end=1.0", "output.interval=0.5", "output.scalar_interval=0.5"],
    "dendrite_galvanostatic": ["scenario=dendrite", "scenario.shape=[48,48]", "scenario.t_end=0.5",
                               "scenario.control=current", "scenario.current_density=50",
                               "output.interval=0.25", "output.scalar_interval=0.25"],
    "dendrite_3d": ["scenario=dendrite_3d", "scenario.shape=[20,16,16]", "scenario.t_end=0.5",
                    "output.interval=0.25", "output.scalar_interval=0.25"],
    "dendrite_hong2018": ["scenario=dendrite_hong2018", "scenario.shape=[50,50]", "scenario.t_end=1.0",
                          "output.interval=0.5", "output.scalar_interval=0.5"],
    "dendrite_solid": ["scenario=dendrite_solid", "scenario.shape=[48,48]", "scenario.t_end=0.5",
                       "output.interval=0.25", "output.scalar_interval=0.25"],
    "swelling": ["scenario=swelling", "scenario.shape=[64,64]", "scenario.interface_thickness=0.25", "scenario.t_end=120", "output.interval=60", "output.scalar_interval=60"],
    "swelling_tin": ["scenario=swelling_tin", "scenario.shape=[64,64]", "scenario.interface_thickness=0.25", "scenario.t_end=120",
                     "output.interval=60", "output.scalar_interval=60"],
}


def run_case(name: str, folder: Path) -> float:
    if folder.exists():
        shutil.rmtree(folder)
    start = time.perf_counter()
    command = [sys.executable, str(ROOT / "run.py"), *CASES[name], *COMMON, f"hydra.run.dir={folder}"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{name}: {' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def relative_difference(new, old) -> float:
    new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
    if new.shape != old.shape:
        return float("inf")
    scale = max(np.max(np.abs(old)), 1e-300) if old.size else 1.0
    return float(np.max(np.abs(new - old)) / scale) if old.size else 0.0


def compare(new_path: Path, old_path: Path) -> dict:
    with h5py.File(new_path, "r") as new, h5py.File(old_path, "r") as old:
        same_steps = np.array_equal(new["step"][()], old["step"][()]) and np.array_equal(
            new["scalars/step"][()], old["scalars/step"][()])
        fields = {k: relative_difference(new["fields"][k][()], old["fields"][k][()]) for k in old["fields"]}
        common = sorted(set(old["scalars"]) & set(new["scalars"]) - {"time", "step"})
        scalars = {k: relative_difference(new["scalars"][k][()], old["scalars"][k][()]) for k in common}
        missing = sorted(set(old["scalars"]) - set(new["scalars"]))
    worst_field = max(fields.items(), key=lambda kv: kv[1]) if fields else ("-", 0.0)
    worst_scalar = max(scalars.items(), key=lambda kv: kv[1]) if scalars else ("-", 0.0)
    return {"steps": same_steps, "field": worst_field, "scalar": worst_scalar, "missing": missing}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", type=Path, help="write the reference runs here")
    mode.add_argument("--compare", type=Path, help="compare against the reference runs here")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--work", type=Path, default=Path("/tmp/phasefield_regression"))
    args = parser.parse_args()
    if args.record:
        for name in args.cases:
            seconds = run_case(name, args.record / name)
            print(f"recorded {name:24s} {seconds:6.1f} s", flush=True)
        return
    print("| scenario | same steps | largest field difference | largest scalar difference | wall s |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name in args.cases:
        seconds = run_case(name, args.work / name)
        result = compare(args.work / name / "run.h5", args.compare / name / "run.h5")
        field_name, field_diff = result["field"]
        scalar_name, scalar_diff = result["scalar"]
        worst = max(worst, field_diff)
        note = f" (missing scalars: {', '.join(result['missing'])})" if result["missing"] else ""
        print(f"| {name} | {'yes' if result['steps'] else 'NO'} | {field_diff:.2e} ({field_name}) | "
              f"{scalar_diff:.2e} ({scalar_name}){note} | {seconds:.1f} |", flush=True)
    print(f"largest field difference over all scenarios: {worst:.2e}")


if __name__ == "__main__":
    main()
