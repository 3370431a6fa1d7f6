"""Post-processing: ``python -m phasefield.post <run.h5 | run dir | sweep dir> [--times T ...] [--movie]``.

For one run, writes next to ``run.h5``: ``scalars.csv`` (every scalar record), ``metrics.csv`` (final
values), ``fields_t<T>.png`` for the chosen times (default: first and last frame), ``scalars.png``,
``solver.png`` (when the run records solver iterations/residuals), the XDMF sidecar ``run.xdmf``, and
with ``--movie`` ``movie.gif`` of the frames. For a sweep directory (Hydra ``-m`` output), does that for
every run below it and writes ``sweep.csv`` with one row per run (its overrides and its final metrics)
and ``sweep.png``: each final metric against the swept parameter.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import yaml

from phasefield.io.hdf5 import open_run_file, read_scalars
from phasefield.analysis.plots import plot_frame, plot_scalars, plot_solver, plot_sweep, write_movie
from phasefield.io.xdmf import write_xdmf


def final_metrics(run_file) -> dict:
    """Last value of every scalar, plus the status of the run."""
    with open_run_file(run_file) as f:
        metrics = {name: values[-1].item() for name, values in read_scalars(f).items() if values.shape[0]}
        metrics["status"] = f.attrs["status"]
        metrics["frames"] = f["time"].shape[0]
    return metrics


def write_scalars_csv(run_file, out):
    with open_run_file(run_file) as f:
        scalars = read_scalars(f)
        names, columns = list(scalars), list(scalars.values())
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows(zip(*columns))


class BadRunError(RuntimeError):
    """A file that is not a readable run with at least one frame."""


def check_run_file(run_file: Path):
    """Refuse, with one line, a path that is not an HDF5 run file with at least one complete frame."""
    try:
        with open_run_file(run_file, attempts=3) as f:
            if "time" not in f or "scalars" not in f or "fields" not in f:
                raise BadRunError(f"{run_file} is an HDF5 file but not a phasefield run (no /time, /scalars, /fields)")
            if f["time"].shape[0] == 0:
                raise BadRunError(f"{run_file} holds no frame yet")
    except OSError as error:
        raise BadRunError(f"{run_file} is not a readable run file ({error})") from None


def process_run(run_file, times=None, movie=False) -> dict:
    run_file = Path(run_file)
    check_run_file(run_file)
    folder = run_file.parent
    write_scalars_csv(run_file, folder / "scalars.csv")
    metrics = final_metrics(run_file)
    with open(folder / "metrics.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(metrics))
        writer.writerow(list(metrics.values()))
    with open_run_file(run_file) as f:
        frame_times = f["time"][()]
    wanted = times if times else [frame_times[0], frame_times[-1]]
    for t in wanted:
        frame = int(np.argmin(np.abs(frame_times - t)))
        plot_frame(run_file, folder / f"fields_t{frame_times[frame]:g}.png", frame)
    plot_scalars(run_file, folder / "scalars.png")
    plot_solver(run_file, folder / "solver.png")
    if movie:
        write_movie(run_file, folder / "movie.gif")
    write_xdmf(run_file)
    return metrics


def run_overrides(run_dir: Path) -> list[str]:
    """Hydra's record of the command-line overrides of one run (empty if none)."""
    path = run_dir / ".hydra" / "overrides.yaml"
    return yaml.safe_load(path.read_text()) or [] if path.exists() else []


def process_sweep(sweep_dir, times=None, movie=False) -> Path:
    sweep_dir = Path(sweep_dir)
    rows, overridden = [], {}
    for run_file in sorted(sweep_dir.glob("**/run.h5")):
        overrides = dict(o.split("=", 1) for o in run_overrides(run_file.parent) if "=" in o)
        overridden.update(dict.fromkeys(overrides))
        try:
            metrics = process_run(run_file, times, movie)
        except BadRunError as error:  # listed as bad; the other runs are still tabulated
            metrics = {"status": f"bad: {error}"}
        rows.append({"run": str(run_file.parent.relative_to(sweep_dir)), **overrides, **metrics})
    if not rows:
        raise BadRunError(f"no run.h5 below {sweep_dir}")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = sweep_dir / "sweep.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    swept = [key for key in overridden if len({row.get(key) for row in rows}) > 1]
    if swept:
        plot_sweep(rows, swept, sweep_dir / "sweep.png")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m phasefield.post", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="run.h5, a run directory, or a sweep directory")
    parser.add_argument("--times", type=float, nargs="*", help="times of the field figures (nearest frame)")
    parser.add_argument("--movie", action="store_true", help="also write movie.gif of the frames")
    args = parser.parse_args(argv)
    path = Path(args.path)
    try:
        summary = _post(path, args.times, args.movie)
    except BadRunError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(summary)


def _post(path: Path, times, movie=False) -> str:
    if path.is_file():
        process_run(path, times, movie)
        return f"wrote scalars.csv, metrics.csv, figures and run.xdmf in {path.parent}"
    if (path / "run.h5").exists():
        process_run(path / "run.h5", times, movie)
        return f"wrote scalars.csv, metrics.csv, figures and run.xdmf in {path}"
    if path.is_dir():
        return f"wrote {process_sweep(path, times, movie)}"
    raise BadRunError(f"{path} is neither a run file nor a directory")


if __name__ == "__main__":
    main()
