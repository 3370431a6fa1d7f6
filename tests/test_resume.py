"""Checkpoint and resume bit for bit, preemption signals, SIGKILL mid-run, memory guard."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from phasefield.runner import Preempted, Progress, RunDirectoryError, run
from phasefield.config import ConfigError
from phasefield.io import open_run_file, read_run

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "scenario": {"name": "spinodal", "variant": "b", "shape": [32, 28], "t_end": 3.0},
    "solver": {"scheme": "sbdf2", "dt": 0.02, "adaptive": True, "dt_min": 1e-3, "dt_max": 0.5,
               "target_change": 0.002, "stabilization": 1.0},
    "output": {"interval": 1.0, "scalar_interval": 0.25, "plots": False},
}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """CONFIG run straight to its end, once for the module (read only; copy it to change it)."""
    return run(CONFIG, tmp_path_factory.mktemp("straight"))


def test_resume_continues_bit_for_bit(tmp_path, monkeypatch, straight_run):
    """Straight run vs the same run stopped by SIGUSR1 between frames (after the first chunk past t = 1.5,
    chunks of one step) and resumed."""
    import phasefield.integrate

    straight = read_run(straight_run)

    original = Progress.update
    signalled = []

    def update_then_signal(self, clock, rate):  # the signal arrives during the chunk's output
        original(self, clock, rate)
        if clock["t"] > 1.5 and not signalled:
            signalled.append(clock["t"])
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(Progress, "update", update_then_signal)
    monkeypatch.setattr(phasefield.integrate, "CHUNK_SECONDS", 1e-9)  # every chunk one step
    with pytest.raises(Preempted, match="resume="):
        run(CONFIG, tmp_path / "split")
    monkeypatch.setattr(Progress, "update", original)
    with h5py.File(tmp_path / "split" / "run.h5", "r") as f:
        assert f.attrs["status"] == "preempted" and f["checkpoint"].attrs["t"] == signalled[0] < 1.6
        assert f["fields/c"].shape[0] == 2  # frames at t = 0 and 1
    resumed = read_run(run(None, tmp_path / "split", resume=True))

    assert resumed["attrs"]["finished"] and resumed["attrs"]["resumed"] == 1
    assert np.array_equal(resumed["time"], straight["time"]) and np.array_equal(resumed["step"], straight["step"])
    assert np.array_equal(resumed["fields"]["c"], straight["fields"]["c"])  # bit for bit
    for name, values in straight["scalars"].items():
        assert np.array_equal(resumed["scalars"][name], values), name


def test_resume_refuses_finished_or_missing_run(tmp_path, straight_run):
    shutil.copytree(straight_run.parent, tmp_path / "done")
    with pytest.raises(RunDirectoryError, match="finished"):
        run(None, tmp_path / "done", resume=True)
    with pytest.raises(RunDirectoryError, match="nothing to resume"):
        run(None, tmp_path / "missing", resume=True)


def test_a_checkpoint_of_another_model_is_refused_with_the_entries_that_differ():
    """A checkpoint whose state or history is not this model's (another version of phasefield, another static key)
    is refused naming the entries it has and lacks, not with a tree-structure error from inside JAX."""
    import jax

    from phasefield.config import validate_run
    from phasefield.io import CheckpointError
    from phasefield.runner import build, checkpoint_part, device_parameters, initial_carry, restore_carry

    simulation = build(validate_run(CONFIG))
    params = device_parameters(simulation.parameters, "float64")
    saved = jax.tree.map(np.asarray, checkpoint_part(initial_carry(simulation, params)))
    restored = restore_carry(simulation, params, saved)
    assert np.array_equal(restored["state"]["c"], saved["state"]["c"])
    extra = {**saved, "history": {**saved["history"], "psi_s": np.zeros(3)}}
    with pytest.raises(CheckpointError, match="it has history/psi_s .*another version of phasefield"):
        restore_carry(simulation, params, extra)
    empty = {**saved, "history": {**saved["history"], "solver": {}}}  # an empty group is a difference too
    with pytest.raises(CheckpointError, match="it has history/solver/"):
        restore_carry(simulation, params, empty)
    lacking = {**saved, "state": {name: v for name, v in saved["state"].items() if name != "c"}}
    with pytest.raises(CheckpointError, match="it lacks state/c"):
        restore_carry(simulation, params, lacking)


def test_memory_estimate_rejects_grid_before_allocating(tmp_path):
    config = {"scenario": {"name": "spinodal", "shape": [3_000_000, 3_000_000]}}
    with pytest.raises(ConfigError, match=r"scenario.shape.*GiB"):
        run(config, tmp_path)
    assert not (tmp_path / "run.h5").exists()


def start_cli(*args):
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "scenario=spinodal", *args], cwd=ROOT,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def wait_for_frames(process, count, timeout=120):
    """Read the log until ``count`` frames were reported."""
    deadline, seen = time.time() + timeout, 0
    for line in process.stdout:
        seen += " t = " in line and " step " in line
        if seen >= count or time.time() > deadline:
            return seen
    return seen


LONG = ["scenario.shape=[64,64]", "scenario.t_end=100000", "output.interval=5", "output.scalar_interval=5",
        "solver.dt=0.05", "output.plots=false"]


def test_sigkill_leaves_readable_file_with_completed_frames(tmp_path):
    process = start_cli(*LONG, f"hydra.run.dir={tmp_path}")
    assert wait_for_frames(process, 4) >= 4
    process.kill()
    process.wait()
    with h5py.File(tmp_path / "run.h5", "r") as f:
        frames = f["fields/c"][()]
        times = f["time"][()]
        assert frames.shape[0] >= 4 and len(times) == frames.shape[0]
        assert np.all(np.isfinite(frames)) and np.all(np.diff(times) > 0)
        assert f.attrs["status"] == "running"


def test_sigterm_checkpoints_exits_cleanly_and_resumes(tmp_path):
    args = [*LONG[:1], "scenario.t_end=60", *LONG[2:]]
    process = start_cli(*args, f"hydra.run.dir={tmp_path}")
    assert wait_for_frames(process, 2) >= 2
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 75, output
    assert f"resume={tmp_path}" in output and "Traceback" not in output
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f.attrs["status"] == "preempted" and f["checkpoint"].attrs["complete"]
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), f"resume={tmp_path}",
                             f"hydra.run.dir={tmp_path / 'resume-log'}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    data = read_run(tmp_path / "run.h5")
    assert data["attrs"]["finished"] and not (tmp_path / "run.lock").exists()
    assert np.allclose(data["time"], np.arange(0, 60.1, 5)) and list(data["step"]) == list(range(0, 1201, 100))


def test_a_running_run_can_be_read(tmp_path):
    """No HDF5 lock is held by the writer: h5py (through open_run_file, which retries an open that lands
    mid-flush) and phasefield.post read run.h5 while it runs."""
    process = start_cli(*LONG, f"hydra.run.dir={tmp_path}")
    try:
        assert wait_for_frames(process, 2) >= 2
        with open_run_file(tmp_path / "run.h5") as f:
            assert f.attrs["status"] == "running" and f["time"].shape[0] >= 2
        assert (tmp_path / "run.lock").exists()
        post = subprocess.run([sys.executable, "-m", "phasefield.post", str(tmp_path / "run.h5")], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert post.returncode == 0, post.stderr
        assert process.poll() is None  # still running
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=120)
    assert process.returncode == 75


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    import socket

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.lock").write_text(f"{socket.gethostname()} 1")  # pid 1 is alive: a live writer
    with pytest.raises(RunDirectoryError, match="being written by process 1"):
        run(CONFIG, folder)
    assert not (folder / "run.h5").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / "run.lock").write_text(f"{socket.gethostname()} {dead.stdout.strip()}")  # its process is gone
    assert read_run(run(CONFIG, folder))["attrs"]["finished"] and not (folder / "run.lock").exists()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the initial condition overflows
def test_non_finite_initial_state_is_refused_before_anything_is_written(tmp_path):
    config = {**CONFIG, "scenario": {**CONFIG["scenario"], "epsilon": 1e308}}
    with pytest.raises(ConfigError, match="initial state is finite"):
        run(config, tmp_path)
    assert not (tmp_path / "run.h5").exists()


def test_preemption_at_the_last_frame_finishes_without_a_duplicate(tmp_path, monkeypatch):
    original = Progress.update

    def update_then_signal(self, clock, rate):
        original(self, clock, rate)
        if clock["t"] >= CONFIG["scenario"]["t_end"]:
            os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(Progress, "update", update_then_signal)
    data = read_run(run(CONFIG, tmp_path))
    assert data["attrs"]["status"] == "finished" and list(data["time"]) == [0.0, 1.0, 2.0, 3.0]


def test_a_huge_t_end_starts_at_once_and_stops_on_a_signal(tmp_path, monkeypatch):
    """t_end = 1e12 with records every 1e-6: nothing is listed up front (the memory stays small)."""
    import phasefield.integrate

    original = Progress.update

    def update_then_signal(self, clock, rate):
        original(self, clock, rate)
        os.kill(os.getpid(), signal.SIGUSR1)

    monkeypatch.setattr(Progress, "update", update_then_signal)
    monkeypatch.setattr(phasefield.integrate, "CHUNK_SECONDS", 1e-9)
    config = {**CONFIG, "scenario": {**CONFIG["scenario"], "t_end": 1e12},
              "output": {"interval": 1e6, "scalar_interval": 1e-6, "plots": False}}
    with pytest.raises(Preempted):
        run(config, tmp_path)
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f.attrs["status"] == "preempted" and f["scalars/time"].shape[0] >= 2


def test_resume_extends_t_end_and_refuses_other_changes(tmp_path, straight_run):
    """A finished run resumed to a later t_end continues bit for bit (against a straight run to it);
    an override that would change what is computed is refused with the keys a resume may change."""
    short = {**CONFIG, "scenario": {**CONFIG["scenario"], "t_end": 2.0}}
    run(short, tmp_path / "extended")
    extended = read_run(run(None, tmp_path / "extended", resume=True, changes={"scenario.t_end": 3.0}))
    straight = read_run(straight_run)
    assert np.array_equal(extended["time"], straight["time"]) and np.array_equal(extended["step"], straight["step"])
    assert np.array_equal(extended["fields"]["c"], straight["fields"]["c"])
    assert "t_end: 3.0" in extended["attrs"]["config"]
    with pytest.raises(RunDirectoryError, match="finished"):
        run(None, tmp_path / "extended", resume=True)
    from phasefield.cli import resume_changes

    data = {"scenario": {"t_end": 5.0, "mobility": -5.0}, "output": {"interval": 1.0}}
    assert resume_changes(data, ["resume=x", "scenario.t_end=5"]) == {"scenario.t_end": 5.0}
    with pytest.raises(ConfigError, match=r"scenario.mobility.*scenario.t_end"):
        resume_changes(data, ["resume=x", "scenario.mobility=-5"])


def test_runs_started_together_get_their_own_directories(monkeypatch):
    from phasefield.cli import run_id

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_ARRAY_TASK_ID", raising=False)
    assert run_id() == f"pid{os.getpid()}"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "812")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert run_id() == "812_3"
