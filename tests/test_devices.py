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
    "scenario": {"name": "spinodal", "variant": "b", "shape": [16, 16], "t_end": 2.0},
    "solver": {"scheme": "sbdf2", "dt": 0.02, "adaptive": True, "dt_min": 1e-3, "dt_max": 0.5, "target_change": 0.01},
    "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": False},
}

# one process per device count: argv = json(config), folder, device count, process count, process id, port
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
values = [2.0, 5.0, 8.0]
if processes > 1:
    batch.run_batch(config, "scenario.mobility", values, folder / "batch")
    sys.exit()
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
else:
    batch.run_batch(config, "scenario.mobility", values, folder / f"straight_{devices}")
    shutil.copytree(folder / "preempted", folder / f"resumed_{devices}")
    batch.resume_batch(folder / f"resumed_{devices}")
if devices == 1:
    shutil.copytree(folder / "single_4", folder / "single_4_to_1")
    run(None, folder / "single_4_to_1", resume=True, changes={"scenario.t_end": 2.0})
    run(config, folder / "single_1")
"""


def start(folder, devices, processes=1, index=0, port=0):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, json.dumps(CONFIG), str(folder), str(devices),
                             str(processes), str(index), str(port)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process, timeout=300):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def members(folder):
    return [read_run(folder / f"member_{i}" / "run.h5") for i in range(len(VALUES))]


@pytest.fixture(scope="module")
def device_runs(tmp_path_factory):
    """Batches and runs on 4, then 1, then 2 forced CPU devices (the later ones resume the 4-device ones)."""
    folder = tmp_path_factory.mktemp("devices")
    logs = {devices: finish(start(folder, devices)) for devices in (4, 1, 2)}
    return folder, logs


def test_batch_checkpointed_on_4_devices_resumes_on_1_and_2(device_runs):
    folder, logs = device_runs
    assert "batch of 3 members on 4 devices (1 processes)" in logs[4]
    for i in range(len(VALUES)):
        with h5py.File(folder / "preempted" / f"member_{i}" / "run.h5", "r") as f:
            assert f.attrs["status"] == "preempted" and f.attrs["device_count"] == 4
            assert 1.0 < f["checkpoint"].attrs["t"] < CONFIG["scenario"]["t_end"]
            # the checkpoint is this member's arrays alone: grid-shaped, nothing of the 4-device layout
            shapes = []
            f["checkpoint"].visititems(lambda name, item: shapes.append(getattr(item, "shape", None)))
            assert tuple(CONFIG["scenario"]["shape"]) in shapes
            assert all(s in (None, (), tuple(CONFIG["scenario"]["shape"])) for s in shapes)
    assert not (folder / "preempted" / "member_3").exists()  # the padding member is never written
    for devices in (1, 2):
        resumed, straight = members(folder / f"resumed_{devices}"), members(folder / f"straight_{devices}")
        for r, s in zip(resumed, straight):
            assert r["attrs"]["status"] == "finished" and r["attrs"]["resumed"] == 1
            assert r["attrs"]["device_count"] == devices
            assert np.array_equal(r["step"], s["step"]) and np.array_equal(r["time"], s["time"])
            assert np.array_equal(r["scalars"]["time"], s["scalars"]["time"])
            if devices == 2:  # executables over 2 and 4 devices round alike: bit for bit
                assert np.array_equal(r["fields"]["c"], s["fields"]["c"])
                for name, values in s["scalars"].items():
                    assert np.array_equal(r["scalars"][name], values), name
            else:  # the one-device executable rounds differently (measured: <= 2 ulp of c, 2.2e-16)
                assert np.allclose(r["fields"]["c"], s["fields"]["c"], rtol=0, atol=1e-14)
                assert not np.array_equal(r["fields"]["c"][0], r["fields"]["c"][-1])


def test_single_run_from_a_4_device_process_resumes_on_1_bit_for_bit(device_runs):
    folder, _ = device_runs
    resumed, straight = read_run(folder / "single_4_to_1" / "run.h5"), read_run(folder / "single_1" / "run.h5")
    assert resumed["attrs"]["device_count"] == 1 and resumed["attrs"]["resumed"] == 1
    assert np.array_equal(resumed["step"], straight["step"]) and np.array_equal(resumed["time"], straight["time"])
    assert np.array_equal(resumed["fields"]["c"], straight["fields"]["c"])


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_spread_a_batch_and_process_0_writes_it(device_runs, tmp_path):
    """Two processes of 2 forced CPU devices each (a localhost coordinator): 3 members padded to 4 over
    the 4 global devices; one file per member, written once."""
    folder, _ = device_runs
    port = free_port()
    processes = [start(tmp_path, 2, 2, index, port) for index in (0, 1)]
    logs = [finish(p) for p in processes]
    assert "batch of 3 members on 4 devices (2 processes)" in logs[0]
    assert sorted(p.parent.name for p in (tmp_path / "batch").glob("member_*/run.h5")) == [
        "member_0", "member_1", "member_2"]
    same_layout, one_device = members(folder / "straight_2"), members(folder / "straight_1")
    for member, two, one in zip(members(tmp_path / "batch"), same_layout, one_device):
        assert member["attrs"]["status"] == "finished"
        assert member["attrs"]["process_count"] == 2 and member["attrs"]["device_count"] == 4
        assert list(member["time"]) == [0.0, 1.0, 2.0]  # no duplicate frames
        assert len(np.unique(member["scalars"]["step"])) == len(member["scalars"]["step"])
        # the per-device program of one process with several devices: bit for bit
        assert np.array_equal(member["step"], two["step"]) and np.array_equal(member["fields"]["c"], two["fields"]["c"])
        for name, values in two["scalars"].items():
            assert np.array_equal(member["scalars"][name], values), name
        # against one device: the same steps, fields to round-off (see above)
        assert np.array_equal(member["step"], one["step"])
        assert np.allclose(member["fields"]["c"], one["fields"]["c"], rtol=0, atol=1e-14)
