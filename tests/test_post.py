"""Post-processing of a run and of a sweep, and the XDMF sidecar checked against the HDF5 file."""
import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from phasefield.post import main as post_main
from phasefield.runner import run
from phasefield.io.xdmf import write_xdmf

ROOT = Path(__file__).resolve().parents[1]


def small_run(folder, shape=(20, 16), variant="b"):
    config = {
        "scenario": {"name": "spinodal", "variant": variant, "shape": list(shape), "t_end": 2.0},
        "solver": {"scheme": "sbdf2", "dt": 0.1, "precision": "float32"},
        "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": False},
    }
    return run(config, folder)


def test_xdmf_sidecar_matches_hdf5(tmp_path):
    path = small_run(tmp_path, (12, 10, 8), "cube")
    tree = ET.parse(write_xdmf(path))
    frames = tree.getroot().findall("./Domain/Grid/Grid")
    with h5py.File(path, "r") as f:
        assert len(frames) == f["time"].shape[0]
        for index, grid in enumerate(frames):
            assert float(grid.find("Time").get("Value")) == f["time"][index]
            assert grid.find("Topology").get("Dimensions") == "12 10 8"
            origin, spacing = (item.text.split() for item in grid.findall("Geometry/DataItem"))
            assert np.allclose([float(v) for v in origin], [f["grid"][a][0] for a in "xyz"])
            assert np.allclose([float(v) for v in spacing], [f["grid"][a][1] - f["grid"][a][0] for a in "xyz"])
            attribute = grid.find("Attribute")
            slab, source = attribute.findall("DataItem/DataItem")
            file_name, dataset = source.text.split(":")
            assert file_name == path.name and dataset == "/fields/c"
            assert tuple(int(v) for v in source.get("Dimensions").split()) == f[dataset].shape
            assert int(source.get("Precision")) == f[dataset].dtype.itemsize
            start, stride, count = np.array(slab.text.split(), int).reshape(3, 4)
            assert start[0] == index and list(count) == [1, 12, 10, 8] and list(stride) == [1, 1, 1, 1]


def test_post_single_run_writes_csv_figures_and_xdmf(tmp_path):
    path = small_run(tmp_path)
    result = subprocess.run([sys.executable, "-m", "phasefield.post", str(path), "--times", "1", "--movie"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "scalars.csv") as handle:
        rows = list(csv.DictReader(handle))
    with h5py.File(path, "r") as f:
        assert len(rows) == f["scalars/time"].shape[0]
        assert np.isclose(float(rows[-1]["free_energy"]), f["scalars/free_energy"][-1])
    assert (tmp_path / "fields_t1.png").exists() and (tmp_path / "scalars.png").exists()
    assert (tmp_path / "run.xdmf").exists() and (tmp_path / "metrics.csv").exists()
    assert (tmp_path / "movie.gif").exists()


def test_post_sweep_table_has_overrides_and_final_metrics(tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "-m", "scenario=spinodal", "scenario.shape=[16,16]", "scenario.t_end=1",
         "output.interval=1", "output.plots=false", "scenario.mobility=2,5", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    post_main([str(sweep)])  # in process: the command line of phasefield.post is tested on a run file above
    with open(sweep / "sweep.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["scenario.mobility"] for r in rows) == ["2", "5"]
    for row in rows:
        with h5py.File(sweep / row["run"] / "run.h5", "r") as f:
            assert np.isclose(float(row["free_energy"]), f["scalars/free_energy"][-1])
        assert row["status"] == "finished"
    assert (sweep / "sweep.png").exists()


def test_post_refuses_a_bad_file_in_one_line_and_lists_it_in_a_sweep(tmp_path, capsys):
    good = small_run(tmp_path / "sweep" / "0")
    bad = tmp_path / "sweep" / "1" / "run.h5"
    bad.parent.mkdir(parents=True)
    bad.write_text("not HDF5")
    empty = tmp_path / "sweep" / "2" / "run.h5"
    empty.parent.mkdir(parents=True)
    with h5py.File(empty, "w") as f:
        f.create_dataset("time", shape=(0,), dtype="f8")
        f.create_group("scalars")
        f.create_group("fields")
    # one true command line (exit status 2, the message, no traceback), the other files through its main()
    result = subprocess.run([sys.executable, "-m", "phasefield.post", str(bad)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and "not a readable run file" in result.stderr and "Traceback" not in result.stderr
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[:2000])
    for path, message in ((empty, "holds no frame"), (truncated, "")):
        with pytest.raises(SystemExit) as exit_info:  # any other exception would be a traceback
            post_main([str(path)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    from phasefield.post import process_sweep

    with open(process_sweep(tmp_path / "sweep")) as handle:
        rows = {row["run"]: row for row in csv.DictReader(handle)}
    assert rows["0"]["status"] == "finished"
    assert rows["1"]["status"].startswith("bad:") and rows["2"]["status"].startswith("bad:")
