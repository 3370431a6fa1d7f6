"""PNG figures written next to ``run.h5``: the last frame of each field and the scalars over time."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from phasefield.io.hdf5 import open_run_file, read_scalars  # noqa: E402


def plot_last_frame(run_file, out_png):
    """Each stored field at the last frame (the middle z-plane in 3D)."""
    plot_frame(run_file, out_png, -1)


def plot_frame(run_file, out_png, frame: int):
    """Each stored field at one frame (the middle z-plane in 3D)."""
    with open_run_file(run_file) as f:
        names = list(f["fields"])
        t = f["time"][frame]
        units = f["time"].attrs.get("units", "")
        grid = {k: v[()] for k, v in f["grid"].items()}
        frames = {n: f["fields"][n][frame] for n in names}
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        data = frames[name]
        title = f"{name}, t = {t:.4g}" + ("" if units in ("", "1") else f" {units}")
        if data.ndim == 3:
            data = data[:, :, data.shape[2] // 2]
            title += " (mid z-plane)"
        x, y = grid["x"], grid["y"]
        image = ax.imshow(data.T, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap="viridis")
        fig.colorbar(image, ax=ax, shrink=0.85)
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def plot_scalars(run_file, out_png, names=None):
    """Every recorded scalar (or ``names``) against time, one panel each."""
    with open_run_file(run_file) as f:
        values = read_scalars(f)
        time = values["time"]
        units = f["scalars/time"].attrs.get("units", "")
        names = names or [n for n in values if n not in ("time", "step")]
        series = {n: (values[n], f["scalars"][n].attrs.get("units", "")) for n in names}
    fig, axes = plt.subplots(len(names), 1, figsize=(6, 2.4 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        values, unit = series[name]
        ax.plot(time, values)
        ax.set_ylabel(f"{name} [{unit}]")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time" + ("" if units in ("", "1") else f" [{units}]"))
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def write_run_plots(run_dir):
    run_dir = Path(run_dir)
    plot_last_frame(run_dir / "run.h5", run_dir / "last_frame.png")
    plot_scalars(run_dir / "run.h5", run_dir / "scalars.png")
