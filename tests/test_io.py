"""run.h5 layout, round trip of frames and checkpoint, and never overwriting a run."""
import shutil

import h5py
import numpy as np
import pytest
import yaml

from phasefield.runner import RunDirectoryError, run
from phasefield.io import read_checkpoint, read_run

CONFIG = {
    "scenario": {"name": "spinodal", "variant": "b", "shape": [24, 20], "t_end": 3.0},
    "solver": {"scheme": "sbdf2", "dt": 0.1, "precision": "float32"},
    "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": True},
}


def test_hdf5_round_trip_layout_and_checkpoint(tmp_path):
    path = run(CONFIG, tmp_path, yaml.safe_dump(CONFIG))
    data = read_run(path)
    assert data["fields"]["c"].shape == (4, 24, 20)
    assert data["fields"]["c"].dtype == np.float32
    assert np.allclose(data["time"], [0, 1, 2, 3]) and list(data["step"]) == [0, 10, 20, 30]
    assert np.allclose(data["scalars"]["time"], np.arange(0, 3.01, 0.5))
    assert set(data["scalars"]) >= {"time", "step", "free_energy", "total_mass"}
    assert np.allclose(data["grid"]["x"], np.arange(24) + 0.5) and data["grid"]["y"].shape == (20,)
    attrs = data["attrs"]
    assert attrs["finished"] and attrs["status"] == "finished" and attrs["scenario"] == "spinodal"
    assert yaml.safe_load(attrs["config"]) == CONFIG
    assert attrs["phasefield_version"] and attrs["started"] and attrs["ended"]
    with h5py.File(path, "r") as f:
        assert f["fields/c"].chunks == (1, 24, 20) and f["fields/c"].compression == "gzip"
        assert f["fields/c"].attrs["units"] and f["fields/c"].attrs["description"]
        assert f["time"].attrs["units"] is not None
    # the checkpoint holds the full scheme state at the last frame
    carry, clock = read_checkpoint(path)
    assert clock["t"] == 3.0 and clock["step"] == 30
    assert np.array_equal(carry["state"]["c"], data["fields"]["c"][-1])
    assert {"u_hat", "u_hat_prev", "n_hat_prev", "dt_prev"} == set(carry["history"])
    assert set(carry) == {"state", "history"}  # the diagnostics cache is not checkpointed
    assert (tmp_path / "last_frame.png").stat().st_size > 1000 and (tmp_path / "scalars.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """CONFIG without plots, run once for the module; tests that change it work on a copy (``copied``)."""
    return run(CONFIG | {"output": CONFIG["output"] | {"plots": False}}, tmp_path_factory.mktemp("finished"))


def copied(path, folder):
    shutil.copytree(path.parent, folder, dirs_exist_ok=True)
    return folder / path.name


def test_existing_run_is_never_overwritten(tmp_path, finished_run):
    path = copied(finished_run, tmp_path)
    before = path.read_bytes()
    with pytest.raises(RunDirectoryError, match="already exists"):
        run(CONFIG, tmp_path)
    assert path.read_bytes() == before


def test_selected_fields_only(tmp_path):
    config = CONFIG | {"output": CONFIG["output"] | {"fields": ["c"], "plots": False}}
    assert list(read_run(run(config, tmp_path))["fields"]) == ["c"]


def test_non_finite_run_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    """Bypass the stability check to force a blow-up: the file records it and keeps the last good state."""
    import phasefield.runner as runner
    from phasefield.integrate import NonFiniteError
    from phasefield.registry import scenario

    def unchecked_build(config):
        simulation = scenario(config.scenario.name).build(config.scenario, config.solver)
        simulation.stepper = simulation.stepper._replace(stable_dt=lambda params: float("inf"))
        simulation.lyapunov = None  # the rising free energy would stop it before it goes non-finite
        return simulation

    monkeypatch.setattr(runner, "build", unchecked_build)
    config = {
        "scenario": {"name": "spinodal", "shape": [32, 32], "t_end": 50.0},
        "solver": {"scheme": "explicit", "dt": 0.0035},  # 1.2x the limit: round-off grows for ~100 steps
        "output": {"interval": 0.035, "scalar_interval": 0.035, "plots": False},
    }
    with pytest.raises(NonFiniteError, match="'c'") as info:
        run(config, tmp_path)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f.attrs["status"] == "non-finite" and not f.attrs["finished"]
        assert np.all(np.isfinite(f["fields/c"][()]))
    carry, clock = read_checkpoint(tmp_path / "run.h5")
    assert np.all(np.isfinite(carry["state"]["c"])) and clock["t"] > 0
    assert info.value.last_good_time == clock["t"]  # the state the message says is kept is the checkpoint
    assert f"last good state (t = {clock['t']:.6g}) is kept" in str(info.value)


def test_checkpoint_slots_survive_a_torn_or_corrupted_write(tmp_path, finished_run):
    """Two alternating slots with a checksum: a slot left incomplete (a kill while writing) or with a
    flipped bit is skipped and the other, older slot is used; with neither valid, a one-line error."""
    from phasefield.io import CheckpointError

    path = copied(finished_run, tmp_path)
    newest, clock = read_checkpoint(path)
    with h5py.File(path, "r+") as f:
        slots = {name: int(g.attrs["step"]) for name, g in f["checkpoints"].items()}
        assert len(slots) == 2 and f["checkpoint"].attrs["step"] == max(slots.values()) == clock["step"]
        newest_name = max(slots, key=slots.get)
        older_name = min(slots, key=slots.get)
        values = f[f"checkpoints/{newest_name}/state/c"]
        flipped = values[()].copy()
        flipped.view(np.uint64)[3, 4] ^= np.uint64(1) << np.uint64(20)  # one mantissa bit
        values[...] = flipped
    carry, older = read_checkpoint(path)
    assert older["step"] == slots[older_name] < clock["step"]
    with h5py.File(path, "r+") as f:
        f[f"checkpoints/{older_name}"].attrs["complete"] = False  # torn write of the other slot
    with pytest.raises(CheckpointError, match="no valid checkpoint.*checksum.*incomplete|no valid checkpoint.*incomplete.*checksum"):
        read_checkpoint(path)


@pytest.mark.parametrize("damage", ["truncated", "directory", "not_hdf5", "no_checkpoint"])
def test_resume_of_a_damaged_run_is_a_one_line_refusal(tmp_path, damage, finished_run):
    from phasefield.runner import RunDirectoryError as Refused

    folder = tmp_path / "run"
    if damage == "directory":
        (folder / "run.h5").mkdir(parents=True)
    elif damage == "not_hdf5":
        folder.mkdir()
        (folder / "run.h5").write_text("not a run")
    else:
        path = copied(finished_run, folder)
        with h5py.File(path, "r+") as f:
            f.attrs["status"] = "preempted"
            if damage == "no_checkpoint":
                del f["checkpoint"], f["checkpoints"]
        if damage == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Refused):
        run(None, folder, resume=True)


def test_a_rising_free_energy_stops_a_fixed_step_run(tmp_path):
    """SBDF2 at dt = 0.5 on PFHub 1a (a step beyond what it resolves): the free energy of a gradient flow
    rises, the run stops naming the key to change, and keeps its frames and last checkpoint; dt = 0.1 runs."""
    from phasefield.integrate import EnergyIncreaseError

    config = {"scenario": {"name": "spinodal", "shape": [64, 64], "t_end": 200.0},
              "solver": {"scheme": "sbdf2", "dt": 0.5},
              "output": {"interval": 20.0, "scalar_interval": 1.0, "plots": False}}
    with pytest.raises(EnergyIncreaseError, match=r"free_energy rose .* reduce solver.dt"):
        run(config, tmp_path / "coarse")
    with h5py.File(tmp_path / "coarse" / "run.h5", "r") as f:
        assert f.attrs["status"] == "energy-increase" and f["checkpoint"].attrs["complete"]
    fine = {**config, "solver": {"scheme": "sbdf2", "dt": 0.1}}
    energy = read_run(run(fine, tmp_path / "fine"))["scalars"]["free_energy"]
    assert np.all(np.diff(energy) <= 0)
