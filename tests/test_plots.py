"""Figures read back before saving: axis units, colour map and limits per kind of field, the interface
contour, scalar panels grouped by meaning with units, solver health apart, and the movie."""
import h5py
import numpy as np
import pytest

from phasefield.analysis import plots
from phasefield.runner import run
from tests.test_model_layer import composed


@pytest.fixture(scope="module")
def spinodal(tmp_path_factory):
    return run({"scenario": {"name": "spinodal", "shape": [16, 16], "t_end": 1.0}, "solver": {"dt": 0.1},
                "output": {"interval": 0.5, "scalar_interval": 0.1, "plots": False}},
               tmp_path_factory.mktemp("spinodal"))


@pytest.fixture(scope="module")
def dendrite(tmp_path_factory):
    """The default job (configs/) on the grid of tests/test_dendrite.py's default-job test: the same compiled
    program, so the suite compiles it once (its per-session cache) for both."""
    return run(composed(["scenario.size=[24,8]", "scenario.shape=[48,16]", "scenario.short_circuit_gap=4",
                         "scenario.t_end=0.05", "output.interval=0.025", "output.scalar_interval=0.005",
                         "output.plots=false"]), tmp_path_factory.mktemp("dendrite"))


def images(fig):
    return {ax.get_title().split(" ")[0]: (ax, ax.images[0]) for ax in fig.axes if ax.images}


def test_kinds_and_limits_tables():
    assert plots.field_kind("xi") == "phase" and plots.field_kind("phi") == "diverging"
    assert plots.field_kind("von_mises") == "magnitude" and plots.field_kind("c") == "concentration"
    assert plots.colour_limits("phase", [0.2, 0.3]) == (0.0, 1.0)
    assert plots.colour_limits("diverging", [-0.1, 0.4]) == (-0.4, 0.4)
    assert plots.scalar_group("potential_iterations") == "solver"
    assert plots.scalar_group("electrode_potential") == "electrochemistry"
    assert plots.scalar_group("dendrite_height") == "growth" and plots.scalar_group("what") == "other"


def test_dendrite_frame_in_um_with_kind_colours_and_interface(dendrite, tmp_path):
    fig = plots.plot_frame(dendrite, tmp_path / "frame.png", -1)
    assert (tmp_path / "frame.png").stat().st_size > 0
    with h5py.File(dendrite, "r") as f:
        data = {n: f["fields"][n][-1] for n in f["fields"]}
        x_um = f["grid/x"][()] * 1e6
        t = f["time"][-1]
    shown = images(fig)
    assert set(shown) == {"xi", "c", "phi"}
    for name, (ax, image) in shown.items():
        assert ax.get_xlabel() == "x (um)" and ax.get_ylabel() == "y (um)"
        assert ax.get_xlim()[0] <= x_um[0] and ax.get_xlim()[1] >= x_um[-1] and x_um[-1] > 10
    assert shown["xi"][1].get_clim() == (0.0, 1.0)
    low, high = shown["phi"][1].get_clim()
    assert low == -high and high >= np.abs(data["phi"]).max()
    assert shown["phi"][1].get_cmap().name == "RdBu_r"
    assert shown["c"][1].get_clim() == pytest.approx((data["c"].min(), data["c"].max()))
    for name in ("c", "phi"):  # the interface, xi = 1/2, over the other fields
        assert [list(c.levels) for c in shown[name][0].get_children() if hasattr(c, "levels")] == [[0.5]]
    assert "dendrite" in fig._suptitle.get_text() and f"{t:.4g} s" in fig._suptitle.get_text()


def test_scalars_grouped_with_units_and_solver_apart(dendrite, tmp_path):
    fig = plots.plot_scalars(dendrite, tmp_path / "scalars.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[0] == "growth" and "electrochemistry" in titles
    labels = {line.get_label(): ax.get_ylabel() for ax in fig.axes for line in ax.get_lines()}
    assert labels["dendrite_height"] == "um" and labels["current_density"] == "mA/cm^2"
    assert not any("iterations" in n or "residual" in n for n in labels)
    solver = plots.plot_solver(dendrite, tmp_path / "solver.png")
    solver_lines = [line.get_label() for ax in solver.axes for line in ax.get_lines()]
    assert "potential_iterations" in solver_lines and "potential_residual" in solver_lines
    panels = {ax.get_title(): [line.get_label() for line in ax.get_lines()] for ax in solver.axes}
    assert "potential_residual" in panels["solver: residuals"] and "potential_residual" not in panels["solver: iterations"]
    assert (tmp_path / "scalars.png").exists() and (tmp_path / "solver.png").exists()


def test_spinodal_frame_dimensionless_and_movie(spinodal, tmp_path):
    fig = plots.plot_frame(spinodal, None, 0)
    (ax, image), = images(fig).values()
    assert ax.get_xlabel() == "x" and image.get_cmap().name == "viridis"
    assert plots.plot_solver(spinodal) is None
    plots.write_run_plots(spinodal.parent)
    assert not (spinodal.parent / "solver.png").exists() and (spinodal.parent / "last_frame.png").exists()
    plots.write_movie(spinodal, tmp_path / "movie.gif")
    from PIL import Image

    with Image.open(tmp_path / "movie.gif") as gif, h5py.File(spinodal, "r") as f:
        assert gif.n_frames == f["time"].shape[0]


def test_sweep_figure_one_line_per_second_parameter(tmp_path):
    rows = [{"run": str(i), "a.m": str(m), "a.k": k, "free_energy": str(m * (1 + (k == "2"))), "status": "finished",
             "potential_iterations": "3"} for i, (m, k) in enumerate((m, k) for m in (1, 2, 5) for k in ("1", "2"))]
    fig = plots.plot_sweep(rows, ["a.m", "a.k"], tmp_path / "sweep.png")
    ax, = [ax for ax in fig.axes if ax.get_visible()]
    assert ax.get_xlabel() == "a.m" and ax.get_ylabel() == "free_energy"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["a.k = 2"].get_xdata()) == [1, 2, 5] and list(lines["a.k = 2"].get_ydata()) == [2, 4, 10]
    assert (tmp_path / "sweep.png").exists()


def test_open_run_is_an_xarray_dataset_with_units(dendrite):
    xr = pytest.importorskip("xarray")
    from phasefield.io import open_run

    ds = open_run(dendrite)
    assert isinstance(ds, xr.Dataset) and ds.x.attrs["units"] == "m" and ds.time.attrs["units"] == "s"
    assert ds.xi.dims == ("time", "x", "y") and ds.xi.attrs["units"] == "1"
    assert ds.dendrite_height.dims == ("record_time",) and ds.dendrite_height.attrs["units"] == "um"
    profile = ds.c.isel(time=-1).sel(y=50e-6, method="nearest")
    with h5py.File(dendrite, "r") as f:
        assert ds.sizes["time"] == f["time"].shape[0]
        assert np.array_equal(profile.values, f["fields/c"][-1][:, np.argmin(abs(f["grid/y"][()] - 50e-6))])
        assert [d[0].name for d in f["fields/xi"].dims] == ["/time", "/grid/x", "/grid/y"]  # dimension scales
