"""Figures of a run, read from ``run.h5``, in the units a battery scientist reads.

* :func:`plot_frame`: every field at one frame, lengths in um when the grid is stored in a length unit,
  a colour map per kind of field (:data:`FIELD_KINDS`), the interface (1/2 contour of the first phase
  field) drawn over the other fields, time and scenario in the title; 3D runs as three mid-plane slices.
* :func:`plot_scalars`: the recorded scalars grouped by the question they answer (:data:`SCALAR_GROUPS`),
  one panel per group and unit; :func:`plot_solver`: solver health (iterations, residuals) apart.
* :func:`write_movie`: every frame into an animated GIF (Pillow, no system binary).

Every function returns the :class:`matplotlib.figure.Figure` it drew (and saves it when given a path), so
tests and notebooks can read the axes back. Figures are built without pyplot's global state.
"""
from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from phasefield.io.hdf5 import open_run_file, read_scalars  # noqa: E402

# Field name -> kind. A kind fixes the colour map and the colour limits (see ``colour_limits``).
#   phase:         order parameter / phase indicator in [0, 1]; fixed limits 0..1; its 1/2 contour is the interface
#   diverging:     potentials and signed stresses; symmetric limits around 0
#   concentration: sequential over the data range
#   magnitude:     non-negative sequential (von Mises stress, plastic strain) from 0
FIELD_KINDS = {
    "xi": "phase", "eta": "phase", "particles": "phase",
    "phi": "diverging", "potential": "diverging", "pressure": "diverging", "reaction_pressure": "diverging",
    "hydrostatic_stress": "diverging", "stress": "diverging",
    "von_mises": "magnitude", "von_mises_stress": "magnitude", "plastic_strain": "magnitude",
    "equivalent_plastic_strain": "magnitude",
    "c": "concentration",
}
CMAPS = {"phase": "cividis", "diverging": "RdBu_r", "concentration": "viridis", "magnitude": "magma",
         "other": "viridis"}
# Length units the grid may be stored in -> factor to micrometres.
TO_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "nm": 1e-3}

# Scalar groups: (title, name patterns), first match wins; "solver" goes to solver.png, unmatched to "other".
SCALAR_GROUPS = [
    ("solver", ["*iterations*", "*residual*", "dt"]),
    ("growth", ["dendrite_height", "tip_velocity", "interface_area", "*charge", "state_of_charge", "swelling",
                "inserted_li", "li_content"]),
    ("electrochemistry", ["*current_density", "*potential", "*overpotential"]),
    ("mechanics", ["*pressure*", "*von_mises*", "*stress*", "*tension*", "*plastic*", "yield_overshoot",
                   "stack_strain"]),
    ("energy", ["*energy*"]),
    ("mass and composition", ["total_*", "li_inflow", "c_min", "c_max", "concentration_*"]),
    ("accuracy", ["*error*"]),
]


def field_kind(name: str) -> str:
    return FIELD_KINDS.get(name, "other")


def scalar_group(name: str) -> str:
    for title, patterns in SCALAR_GROUPS:
        if any(fnmatch(name, p) for p in patterns):
            return title
    return "other"


def colour_limits(kind: str, data) -> tuple[float, float]:
    """Colour limits of a field of ``kind`` showing ``data`` (finite values)."""
    data = np.asarray(data)
    finite = data[np.isfinite(data)]
    if kind == "phase":
        return 0.0, 1.0
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if kind == "diverging":
        m = max(abs(low), abs(high)) or 1.0
        return -m, m
    if kind == "magnitude":
        low = min(low, 0.0)
    if high <= low:
        high = low + (abs(low) or 1.0) * 1e-6
    return low, high


def _unit_label(units: str) -> str:
    return "" if units in ("", "1") else f" ({units})"


def _axis_scale(grid_units: str) -> tuple[float, str]:
    """Factor applied to stored coordinates and the unit shown on the axes."""
    if grid_units in TO_UM:
        return TO_UM[grid_units], "um"
    return 1.0, grid_units


def _slices(data, ndim):
    """(label, axes names, 2D array indexed [first axis, second axis]) of one frame."""
    if ndim == 2:
        return [("", ("x", "y"), data)]
    nx, ny, nz = data.shape
    return [("z mid-plane", ("x", "y"), data[:, :, nz // 2]),
            ("y mid-plane", ("x", "z"), data[:, ny // 2, :]),
            ("x mid-plane", ("y", "z"), data[nx // 2, :, :])]


class _RunFrames:
    """What the field figures need of one run, read once."""

    def __init__(self, run_file):
        with open_run_file(run_file) as f:
            self.count = f["time"].shape[0]
            self.names = list(f["fields"])
            self.units = {n: f["fields"][n].attrs.get("units", "") for n in self.names}
            self.time = f["time"][: self.count]
            self.time_units = f["time"].attrs.get("units", "")
            self.scenario = f.attrs.get("scenario", "")
            self.ndim = len(f["grid"])
            grid_units = f["grid/x"].attrs.get("units", "1")
            self.factor, self.length_units = _axis_scale(grid_units)
            self.grid = {k: v[()] * self.factor for k, v in f["grid"].items()}
        self.run_file = run_file

    def frame(self, index):
        with open_run_file(self.run_file) as f:
            return {n: f["fields"][n][index] for n in self.names}

    def extent(self, axes):
        out = []
        for a in axes:
            c = self.grid[a]
            h = (c[1] - c[0]) / 2 if c.size > 1 else 0.5
            out += [c[0] - h, c[-1] + h]
        return tuple(out)

    def title(self, index):
        units = "" if self.time_units in ("", "1") else f" {self.time_units}"
        return f"{self.scenario}, t = {self.time[index]:.4g}{units}"


def _draw_frame(fig, run: _RunFrames, fields: dict, limits: dict):
    """Draw one frame on ``fig``; returns [(name, image, axes, interface slice index)] for updates."""
    phase = next((n for n in run.names if field_kind(n) == "phase"), None)
    if run.ndim == 2:
        axes = fig.subplots(1, len(run.names), squeeze=False)
    else:
        axes = fig.subplots(len(run.names), 3, squeeze=False).T
    handles = []
    interface = _slices(fields[phase], run.ndim) if phase else None
    for column, name in enumerate(run.names):
        kind = field_kind(name)
        for s, (where, names, data) in enumerate(_slices(fields[name], run.ndim)):
            ax = axes[s, column]
            extent = run.extent(names)
            image = ax.imshow(data.T, origin="lower", extent=extent, cmap=CMAPS[kind],
                              vmin=limits[name][0], vmax=limits[name][1], interpolation="nearest")
            fig.colorbar(image, ax=ax, shrink=0.85, label=f"{name}{_unit_label(run.units[name])}")
            contour = None
            if phase and name != phase:
                contour = _contour(ax, run, names, interface[s][2], kind)
            ax.set_title(f"{name}" + (f" ({where})" if where else ""))
            unit = f" ({run.length_units})" if run.length_units not in ("", "1") else ""
            ax.set_xlabel(f"{names[0]}{unit}")
            ax.set_ylabel(f"{names[1]}{unit}")
            ax.set_aspect("equal")
            handles.append([name, s, image, ax, contour])
    return handles


def _contour(ax, run, names, phase_slice, kind):
    if not (np.nanmin(phase_slice) < 0.5 < np.nanmax(phase_slice)):
        return None
    X, Y = np.meshgrid(run.grid[names[0]], run.grid[names[1]], indexing="ij")
    return ax.contour(X, Y, phase_slice, levels=[0.5], colors="k" if kind == "diverging" else "w",
                      linewidths=1.0)


def _frame_figure(run) -> Figure:
    rows, cols = (1, len(run.names)) if run.ndim == 2 else (len(run.names), 3)
    return Figure(figsize=(4.6 * cols, 4.0 * rows + 0.4))


def plot_frame(run_file, out_png=None, frame: int = -1) -> Figure:
    """Every stored field at one frame (three mid-plane slices in 3D); saved to ``out_png`` if given."""
    run = _RunFrames(run_file)
    fields = run.frame(frame)
    limits = {n: colour_limits(field_kind(n), fields[n]) for n in run.names}
    fig = _frame_figure(run)
    _draw_frame(fig, run, fields, limits)
    fig.suptitle(run.title(frame if frame >= 0 else run.count + frame))
    fig.tight_layout()
    if out_png is not None:
        fig.savefig(out_png, dpi=110)
    return fig


def plot_last_frame(run_file, out_png=None) -> Figure:
    return plot_frame(run_file, out_png, -1)


def write_movie(run_file, out_gif, fps: int = 6, max_frames: int = 200) -> Figure:
    """All frames (at most ``max_frames``, evenly picked) as an animated GIF with fixed colour limits."""
    from matplotlib.animation import PillowWriter

    run = _RunFrames(run_file)
    picks = np.unique(np.linspace(0, run.count - 1, min(run.count, max_frames)).round().astype(int))
    with open_run_file(run_file) as f:  # limits over the whole movie, so colours mean the same in every frame
        limits = {}
        for n in run.names:
            data = f["fields"][n]
            low = min(float(np.nanmin(data[i])) for i in picks)
            high = max(float(np.nanmax(data[i])) for i in picks)
            limits[n] = colour_limits(field_kind(n), [low, high])
    fig = _frame_figure(run)
    handles = _draw_frame(fig, run, run.frame(int(picks[0])), limits)
    title = fig.suptitle(run.title(int(picks[0])))
    fig.tight_layout()
    phase = next((n for n in run.names if field_kind(n) == "phase"), None)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(out_gif), dpi=80):
        for index in picks:
            fields = run.frame(int(index))
            interface = _slices(fields[phase], run.ndim) if phase else None
            for handle in handles:
                name, s, image, ax, contour = handle
                names, data = _slices(fields[name], run.ndim)[s][1:]
                image.set_data(data.T)
                if contour is not None:
                    contour.remove()
                if phase and name != phase:
                    handle[4] = _contour(ax, run, names, interface[s][2], field_kind(name))
            title.set_text(run.title(int(index)))
            writer.grab_frame()
    return fig


def _scalar_series(run_file, names=None):
    with open_run_file(run_file) as f:
        values = read_scalars(f)
        time_units = f["scalars/time"].attrs.get("units", "")
        scenario = f.attrs.get("scenario", "")
        names = names or [n for n in values if n not in ("time", "step")]
        series = {n: (values[n], f["scalars"][n].attrs.get("units", "")) for n in names}
    return values["time"], time_units, scenario, series


def _panels(series, keep):
    """[(group, units, [names])] in table order, one panel per group and unit."""
    order = [g for g, _ in SCALAR_GROUPS] + ["other"]
    panels = {}
    for name, (_, units) in series.items():
        group = scalar_group(name)
        if keep(group):
            panels.setdefault((group, units), []).append(name)
    return [(g, u, panels[(g, u)]) for (g, u) in sorted(panels, key=lambda k: order.index(k[0]))]


def _plot_panels(panels, series, time, time_units, title, width=5.0, height=3.0, columns=2) -> Figure:
    cols = min(columns, max(len(panels), 1))
    rows = max(1, -(-len(panels) // cols))
    fig = Figure(figsize=(width * cols, height * rows + 0.4))
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for ax, (group, units, names) in zip(axes.flat, panels):
        for name in names:
            ax.plot(time, series[name][0], label=name)
        ax.set_title(group)
        ax.set_ylabel("dimensionless" if units in ("", "1") else units)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("t" + _unit_label(time_units))
    for r in range(rows - 1):  # shared x: label the last visible panel of each column
        for c in range(cols):
            if not axes[r + 1, c].get_visible():
                axes[r, c].set_xlabel("t" + _unit_label(time_units))
                axes[r, c].tick_params(labelbottom=True)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_scalars(run_file, out_png=None, names=None) -> Figure:
    """The physical scalars (or ``names``) against time, one panel per group of :data:`SCALAR_GROUPS` and
    unit; the solver's own (iterations, residuals) are left to :func:`plot_solver`."""
    time, time_units, scenario, series = _scalar_series(run_file, names)
    panels = _panels(series, lambda g: g != "solver" or names is not None)
    fig = _plot_panels(panels, series, time, time_units, f"{scenario}: scalars")
    if out_png is not None:
        fig.savefig(out_png, dpi=110)
    return fig


def plot_solver(run_file, out_png=None):
    """Solver health (iterations, residuals) against time; ``None`` (nothing saved) if the run records none."""
    time, time_units, scenario, series = _scalar_series(run_file)
    names = [n for panel in _panels(series, lambda g: g == "solver") for n in panel[2]]
    if not names:
        return None
    kinds = {}  # iterations and residuals apart (both are dimensionless)
    for name in names:
        kinds.setdefault("residuals" if "residual" in name else "iterations" if "iterations" in name else "other",
                         []).append(name)
    panels = [(f"solver: {kind}", "1", kinds[kind]) for kind in ("iterations", "residuals", "other") if kind in kinds]
    fig = _plot_panels(panels, series, time, time_units, f"{scenario}: solver health", width=4.0, height=2.6)
    for ax in fig.axes:
        ax.set_ylabel({"solver: iterations": "iterations", "solver: residuals": "relative residual"}.get(
            ax.get_title(), ax.get_ylabel()))
        if ax.get_title() == "solver: residuals":
            data = np.concatenate([line.get_ydata() for line in ax.get_lines()])
            if np.any(data > 0):
                ax.set_yscale("log")  # zero (no solve yet) is left out
    if out_png is not None:
        fig.savefig(out_png, dpi=100)
    return fig


def write_run_plots(run_dir):
    """``last_frame.png``, ``scalars.png`` and (when the run records solver scalars) ``solver.png``."""
    run_dir = Path(run_dir)
    plot_last_frame(run_dir / "run.h5", run_dir / "last_frame.png")
    plot_scalars(run_dir / "run.h5", run_dir / "scalars.png")
    plot_solver(run_dir / "run.h5", run_dir / "solver.png")


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def plot_sweep(rows, swept, out_png=None) -> Figure:
    """Each numeric final metric of a sweep against the first swept parameter, one line per value of the
    second (if two or more are swept). ``rows``: dicts of ``sweep.csv``; ``swept``: the swept keys."""
    first, second = swept[0], (swept[1] if len(swept) > 1 else None)
    skip = {"run", "status", "frames", "time", "step", *swept}
    metrics = [k for k in dict.fromkeys(k for row in rows for k in row) if k not in skip
               and scalar_group(k) != "solver" and any(_number(row.get(k)) is not None for row in rows)]
    numeric_x = all(_number(row.get(first)) is not None for row in rows)
    xs = sorted({row.get(first) for row in rows}, key=lambda v: _number(v) if numeric_x else str(v))
    cols = min(3, max(len(metrics), 1))
    n_rows = max(1, -(-len(metrics) // cols))
    fig = Figure(figsize=(4.2 * cols, 3.0 * n_rows + 0.4))
    axes = fig.subplots(n_rows, cols, squeeze=False)
    groups = sorted({row.get(second) for row in rows}, key=str) if second else [None]
    for ax, metric in zip(axes.flat, metrics):
        for group in groups:
            chosen = sorted((row for row in rows if second is None or row.get(second) == group),
                            key=lambda row: xs.index(row.get(first)))
            x = [_number(r[first]) if numeric_x else xs.index(r[first]) for r in chosen]
            y = [_number(r.get(metric)) for r in chosen]
            y = [np.nan if v is None else v for v in y]
            ax.plot(x, y, "o-", label=None if second is None else f"{second} = {group}")
        if not numeric_x:
            ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(first)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        if second is not None:
            ax.legend(fontsize="small")
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("final values across the sweep")
    fig.tight_layout()
    if out_png is not None:
        fig.savefig(out_png, dpi=100)
    return fig
