"""Batches and checkpoints across device counts and processes (forced CPU devices, in subprocesses).

A checkpoint holds each member's arrays alone, as host arrays: a batch checkpointed while sharded over
4 devices resumes on 1 or 2, a single run from a 4-device process on 1. Two processes on this machine
(``jax.distributed`` with a localhost coordinator, gloo collectives) spread one batch over their devices
and process 0 writes it.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from phasefield.io import read_run

ROOT = Path(__file__).resolve().parents[1]
VALUES = [2.0, 5.0, 8.0]
CONFIG = {
    "scenario": {"name": "spinodal", "variant": "a", "shape": [16, 16], "t_end": 2.0},
    "solver": {"scheme": "sbdf2", "dt": 0.02, "adaptive": True, "dt_min": 1e-3, "dt_max": 0.5, "target_change": 0.01},
    "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": False},
}

# argv = json(config), folder, devices per process, process count, process id, coordinator port
SCRIPT = """
import json, logging, os, shutil, signal, sys
from pathlib import Path
config, folder, devices, processes, index, port = json.loads(sys.argv[1]), Path(sys.argv[2]), *map(int, sys.argv[3:])
if processes > 1:
    os.environ.update(PHASEFIELD_COORDINATOR=f"localhost:{port}", PHASEFIELD_NUM_PROCESSES=str(processes),
                      PHASEFIELD_PROCESS_ID=str(index))
logging.basicConfig(level=logging.INFO)
from phasefield.distributed import initialize
initialize()
import jax
assert jax.device_count() == devices * processes and jax.process_count() == processes
import phasefield.batch as batch
import phasefield.integrate
from phasefield.runner import Preempted, run
values, where = [2.0, 5.0, 8.0], f"{processes}x{devices}"
if devices == 4:
    original, sent = batch.host_records, []
    def records_then_signal(records):  # SIGTERM once a member is past t = 1.2 (chunks of one step)
        result = original(records)
        if result and result[-1][0]["t"] > 1.2 and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        return result
    batch.host_records = records_then_signal
    phasefield.integrate.CHUNK_SECONDS = 1e-9
    try:
        batch.run_batch(config, "scenario.mobility", values, folder / "preempted")
        raise SystemExit("not preempted")
    except Preempted:
        pass
    run({**config, "scenario": {**config["scenario"], "t_end": 1.0}}, folder / "single_4")
    sys.exit()
batch.run_batch(config, "scenario.mobility", values, folder / f"straight_{where}")
from phasefield.config import ConfigError
try:
    run(config, folder / f"single_{where}_{index}")
    raise SystemExit("a single run under several processes was not refused")
except ConfigError as error:
    assert "batch" in str(error)
if index == 0:
    shutil.copytree(folder / "preempted", folder / f"resumed_{where}")
batch.sync_processes("copied")
batch.resume_batch(folder / f"resumed_{where}")
"""


def start(folder, devices, processes=1, index=0, port=0):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PHASEFIELD_"))}
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    env.update(XLA_FLAGS=flags, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(CONFIG), str(folder), str(devices),
                             str(processes), str(index), str(port)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory):
    """A batch preempted on 4 forced CPU devices, then resumed (and run straight) on 1 device in one process
    and on 2 processes of 1 device each (a localhost coordinator); a single run from the 4-device process
    resumed on 1 device."""
    from phasefield.batch import resume_batch, run_batch
    from phasefield.runner import run

    folder = tmp_path_factory.mktemp("devices")
    logs = {"4": finish(start(folder, 4))}
    port = free_port()
    processes = [start(folder, 1, 2, index, port) for index in (0, 1)]
    # meanwhile, here (one device)
    run_batch(CONFIG, "scenario.mobility", VALUES, folder / "straight_1x1")
    shutil.copytree(folder / "preempted", folder / "resumed_1x1")
    resume_batch(folder / "resumed_1x1")
    shutil.copytree(folder / "single_4", folder / "single_4_to_1")
    run(None, folder / "single_4_to_1", resume=True, changes={"scenario.t_end": 2.0})
    run(CONFIG, folder / "single_1")
    logs["2x1"], logs["2x1 process 1"] = [finish(p) for p in processes]
    return folder, logs


def members(folder):
    return [read_run(folder / f"member_{i}" / "run.h5") for i in range(len(VALUES))]


def test_batch_checkpointed_on_4_devices_resumes_on_1_device_and_on_2_processes(device_runs):
    folder, logs = device_runs
    assert "batch of 3 members on 4 devices (1 processes)" in logs["4"]
    for i in range(len(VALUES)):
        with h5py.File(folder / "preempted" / f"member_{i}" / "run.h5", "r") as f:
            assert f.attrs["status"] == "preempted" and f.attrs["device_count"] == 4
            assert 1.0 < f["checkpoint"].attrs["t"] < CONFIG["scenario"]["t_end"]
            # chunks of one step: the members reach t = 1 in different chunks, each is framed once
            assert list(f["time"][()]) == [0.0, 1.0]
            # the checkpoint is this member's arrays alone: grid-shaped, nothing of the 4-device layout
            shapes = []
            f["checkpoint"].visititems(lambda name, item: shapes.append(getattr(item, "shape", None)))
            assert tuple(CONFIG["scenario"]["shape"]) in shapes
            assert all(s is None or len(s) in (0, 2) for s in shapes)  # no member axis (2D grid)
    assert not (folder / "preempted" / "member_3").exists()  # the padding member is never written
    for where, processes, devices in (("1x1", 1, 1), ("2x1", 2, 2)):
        resumed, straight = members(folder / f"resumed_{where}"), members(folder / f"straight_{where}")
        for r, s in zip(resumed, straight):
            assert r["attrs"]["status"] == "finished" and r["attrs"]["resumed"] == 1
            assert r["attrs"]["device_count"] == devices and r["attrs"]["process_count"] == processes
            assert np.array_equal(r["step"], s["step"]) and np.array_equal(r["time"], s["time"])
            assert np.array_equal(r["scalars"]["time"], s["scalars"]["time"])
            # bit for bit (the periodic spinodal; the no-flux variant b differs by <= 2.2e-16 between one
            # device and several, see README "Clusters and several devices")
            assert np.array_equal(r["fields"]["c"], s["fields"]["c"])
            for name, values in s["scalars"].items():
                assert np.array_equal(r["scalars"][name], values), name


def test_single_run_from_a_4_device_process_resumes_on_1_bit_for_bit(device_runs):
    folder, _ = device_runs
    resumed, straight = read_run(folder / "single_4_to_1" / "run.h5"), read_run(folder / "single_1" / "run.h5")
    assert resumed["attrs"]["device_count"] == 1 and resumed["attrs"]["resumed"] == 1
    assert np.array_equal(resumed["step"], straight["step"]) and np.array_equal(resumed["time"], straight["time"])
    assert np.array_equal(resumed["fields"]["c"], straight["fields"]["c"])


def test_two_processes_spread_a_batch_and_process_0_writes_it(device_runs):
    """Two processes of one forced CPU device each: 3 members padded to 4 over the 2 global devices;
    one file per member, written once (by process 0)."""
    folder, logs = device_runs
    assert "batch of 3 members on 2 devices (2 processes)" in logs["2x1"]
    assert "process 1 of 2: 1 local of 2 devices (cpu)" in logs["2x1 process 1"]
    assert sorted(p.parent.name for p in (folder / "straight_2x1").glob("member_*/run.h5")) == [
        "member_0", "member_1", "member_2"]
    for member, one in zip(members(folder / "straight_2x1"), members(folder / "straight_1x1")):
        assert member["attrs"]["status"] == "finished"
        assert member["attrs"]["process_count"] == 2 and member["attrs"]["device_count"] == 2
        assert list(member["time"]) == [0.0, 1.0, 2.0]  # no duplicate frames
        assert len(np.unique(member["scalars"]["step"])) == len(member["scalars"]["step"])
        # against one process on one device: bit for bit
        assert np.array_equal(member["step"], one["step"]) and np.array_equal(member["fields"]["c"], one["fields"]["c"])
        for name, values in one["scalars"].items():
            assert np.array_equal(member["scalars"][name], values), name
    assert not np.array_equal(one["fields"]["c"][0], one["fields"]["c"][-1])


def test_batch_directories_are_told_from_runs_and_never_overwritten(device_runs):
    from phasefield.batch import is_batch, resume_batch, run_batch
    from phasefield.runner import RunDirectoryError

    folder, _ = device_runs
    assert is_batch(folder / "preempted") and not is_batch(folder / "single_1") and not is_batch(folder / "none")
    with pytest.raises(RunDirectoryError, match="resume="):
        run_batch(CONFIG, "scenario.mobility", VALUES, folder / "straight_1x1")
    with pytest.raises(RunDirectoryError, match="every member .* has finished"):
        resume_batch(folder / "straight_1x1")
    with pytest.raises(RunDirectoryError, match="no batch"):
        resume_batch(folder / "single_1")
    assert not (folder / "single_2x1_0").exists() and not (folder / "single_2x1_1").exists()


def test_multi_process_environment_is_checked_before_anything_starts(monkeypatch):
    from phasefield.config import ConfigError
    from phasefield.distributed import ENV, initialize

    for name in (*ENV, "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    assert initialize() is False  # one process: nothing to start
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert initialize() is False
    monkeypatch.setenv("SLURM_NTASKS", "8")  # the batch script of an 8-task job, outside srun: one process
    assert initialize() is False
    monkeypatch.setenv("PHASEFIELD_COORDINATOR", "localhost:1234")
    with pytest.raises(ConfigError, match="PHASEFIELD_NUM_PROCESSES"):
        initialize()
    monkeypatch.setenv("PHASEFIELD_NUM_PROCESSES", "2")
    monkeypatch.setenv("PHASEFIELD_PROCESS_ID", "2")
    with pytest.raises(ConfigError, match="PHASEFIELD_PROCESS_ID"):
        initialize()
    monkeypatch.setenv("PHASEFIELD_PROCESS_ID", "x")
    with pytest.raises(ConfigError, match="integer"):
        initialize()


def test_slurm_and_explicit_starts_reach_jax_distributed(monkeypatch):
    """What initialize hands jax.distributed (recorded, not started: one process cannot join a job)."""
    import jax

    from phasefield.distributed import ENV, initialize

    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.config, "update", lambda name, value: calls.append((name, value)))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "8")
    assert initialize()
    assert calls == [("jax_cpu_collectives_implementation", "gloo"), ((), {"cluster_detection_method": "slurm"})]
    calls.clear()
    monkeypatch.setenv("PHASEFIELD_COORDINATOR", "node0:4321")
    monkeypatch.setenv("PHASEFIELD_NUM_PROCESSES", "3")
    monkeypatch.setenv("PHASEFIELD_PROCESS_ID", "2")
    assert initialize()  # explicit variables win over SLURM's
    assert calls[-1] == (("node0:4321", 3, 2), {})


def test_members_reaching_a_frame_in_different_chunks_are_framed_once(device_runs, tmp_path, monkeypatch):
    """Chunks of one step: the members reach each frame in different chunks (member 0 at step 14, the others
    at 15); each is framed once (the loop used to frame a member again in every chunk until all had
    arrived), and the chunking changes nothing: bit for bit the batch of long chunks."""
    import phasefield.integrate
    from phasefield.batch import run_batch

    folder, _ = device_runs
    monkeypatch.setattr(phasefield.integrate, "CHUNK_SECONDS", 1e-9)
    short = [read_run(p) for p in run_batch(CONFIG, "scenario.mobility", VALUES, tmp_path)]
    for member, straight in zip(short, members(folder / "straight_1x1")):
        assert list(member["time"]) == [0.0, 1.0, 2.0]
        assert np.array_equal(member["step"], straight["step"])
        assert np.array_equal(member["fields"]["c"], straight["fields"]["c"])
    assert len({int(m["step"][1]) for m in short}) > 1  # they did reach t = 1 at different steps
