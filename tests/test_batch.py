"""Batched (vmapped) runs equal the same runs done one at a time."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phasefield.batch import member_config, run_batch
from phasefield.cli import run
from phasefield.config import ConfigError
from phasefield.io import read_run

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "scenario": {"name": "spinodal", "variant": "b", "shape": [24, 20], "t_end": 2.0},
    "solver": {"scheme": "sbdf2", "dt": 0.02, "adaptive": True, "dt_min": 1e-3, "dt_max": 0.5, "target_change": 0.003},
    "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": False},
}


@pytest.mark.parametrize("key,values", [("scenario.mobility", [2.0, 5.0, 8.0]), ("scenario.kappa", [1.0, 3.0])])
def test_batched_run_equals_runs_one_at_a_time(tmp_path, key, values):
    batch = [read_run(p) for p in run_batch(CONFIG, key, values, tmp_path / "batch")]
    for index, value in enumerate(values):
        single = read_run(run(member_config(CONFIG, key, value), tmp_path / f"single_{index}"))
        assert np.array_equal(batch[index]["step"], single["step"])  # same adaptive step sequence
        assert np.allclose(batch[index]["fields"]["c"], single["fields"]["c"], rtol=0, atol=1e-12)
        for name in ("free_energy", "total_mass"):
            assert np.allclose(batch[index]["scalars"][name], single["scalars"][name], rtol=1e-12)
    # the members really differ
    assert not np.allclose(batch[0]["fields"]["c"][-1], batch[-1]["fields"]["c"][-1])


def test_batch_memory_estimate_counts_every_member(tmp_path, monkeypatch):
    import phasefield.cli as cli

    config = {**CONFIG, "scenario": {**CONFIG["scenario"], "shape": [64, 64]}}
    one_member = 64 * 64 * 8 * 12
    monkeypatch.setattr(cli, "device_memory_bytes", lambda: int(2.5 * one_member))
    run_batch(config | {"scenario": {**config["scenario"], "t_end": 0.1}}, "scenario.mobility", [2.0, 5.0], tmp_path / "ok")
    with pytest.raises(ConfigError, match="GiB"):
        run_batch(config, "scenario.mobility", [2.0, 5.0, 8.0], tmp_path / "too_big")
    assert not (tmp_path / "too_big").exists()


def test_batch_rejects_non_numeric_key(tmp_path):
    with pytest.raises(ConfigError, match="batch.key"):
        run_batch(CONFIG, "scenario.variant", ["a", "b"], tmp_path)
    with pytest.raises(ConfigError, match="scenario.mobility"):
        run_batch(CONFIG, "scenario.mobility", [1.0, -1.0], tmp_path)


def test_batch_from_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "scenario=spinodal", "scenario.shape=[16,16]", "scenario.t_end=1",
                             "output.interval=1", "output.plots=false", "batch.key=scenario.mobility",
                             "batch.values=[2,5]", f"hydra.run.dir={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("member_*/run.h5")) == ["member_0", "member_1"]
