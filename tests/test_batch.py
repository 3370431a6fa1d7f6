"""Batched (vmapped) runs equal the same runs done one at a time."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from phasefield.batch import member_config, run_batch
from phasefield.config import ConfigError, validate_run
from phasefield.runner import build, run
from phasefield.io import read_run

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "scenario": {"name": "spinodal", "variant": "b", "shape": [24, 20], "t_end": 2.0},
    "solver": {"scheme": "sbdf2", "dt": 0.02, "adaptive": True, "dt_min": 1e-3, "dt_max": 0.5, "target_change": 0.003},
    "output": {"interval": 1.0, "scalar_interval": 0.5, "plots": False},
}


# two members each: every batch of two in this file is one program (the parameters are leaves), compiled once
@pytest.mark.parametrize("key,values", [("scenario.mobility", [2.0, 8.0]), ("scenario.kappa", [1.0, 3.0])])
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
    """The measured per-member peak (XLA memory analysis) times the member count against the device."""
    import phasefield.memory as memory
    from phasefield.runner import check_memory, device_parameters, make_run_advance

    # CONFIG's grid: the single-member chunk and the batch of two are the programs the other tests compile
    config = {**CONFIG, "scenario": {**CONFIG["scenario"], "t_end": 0.1}}
    validated = validate_run(config)
    simulation = build(validated)
    params = device_parameters(simulation.parameters, "float64")
    advance = make_run_advance(simulation, validated)
    one_member = memory.compiled_memory_bytes(
        advance.compiled, *_abstract_chunk_arguments(simulation, validated, params), advance.timing)
    monkeypatch.setattr(memory, "device_memory_bytes", lambda: int(2.5 * one_member / 0.9))
    check_memory(simulation, validated, params, copies=2)
    run_batch(config, "scenario.mobility", [2.0, 5.0], tmp_path / "ok")
    with pytest.raises(ConfigError, match="GiB"):
        run_batch(config, "scenario.mobility", [2.0, 5.0, 8.0], tmp_path / "too_big")
    assert not (tmp_path / "too_big").exists()


def _abstract_chunk_arguments(simulation, validated, params):
    import jax
    import jax.numpy as jnp

    from phasefield.integrate import device_clock, empty_records
    from phasefield.memory import abstract
    from phasefield.runner import abstract_carry

    carry = abstract_carry(simulation, params)
    records = jax.eval_shape(lambda p, c: empty_records(simulation.diagnostics, p, c), params, carry)
    return (abstract(params), carry, abstract(device_clock({"t": 0.0, "step": 0, "dt": validated.solver.dt})),
            jax.ShapeDtypeStruct((), jnp.float64), records, jax.ShapeDtypeStruct((), jnp.int64))


def test_batch_rejects_static_and_invalid_keys(tmp_path):
    with pytest.raises(ConfigError, match="batch.key"):
        run_batch(CONFIG, "scenario.variant", ["a", "b"], tmp_path)
    with pytest.raises(ConfigError, match="multirun"):  # the grid: one compiled batch cannot vary it
        run_batch(CONFIG, "scenario.spacing", [1.0, 2.0], tmp_path)
    with pytest.raises(ConfigError, match="scenario.mobility"):
        run_batch(CONFIG, "scenario.mobility", [1.0, -1.0], tmp_path)
    with pytest.raises(ConfigError, match="batch.values"):
        run_batch(CONFIG, "scenario.mobility", 5, tmp_path)


def test_batch_members_run_to_their_own_t_end(tmp_path):
    batch = [read_run(p) for p in run_batch(CONFIG, "scenario.t_end", [1.0, 2.0], tmp_path)]
    assert [b["time"][-1] for b in batch] == [1.0, 2.0] and [b["scalars"]["time"][-1] for b in batch] == [1.0, 2.0]
    assert all(b["attrs"]["status"] == "finished" for b in batch)
    single = read_run(run(member_config(CONFIG, "scenario.t_end", 1.0), tmp_path / "single"))
    assert np.array_equal(batch[0]["step"], single["step"])
    assert np.allclose(batch[0]["fields"]["c"], single["fields"]["c"], rtol=0, atol=1e-12)  # vmap may fuse differently


def test_a_member_that_blows_up_fails_alone(tmp_path, monkeypatch):
    """Forward Euler beyond the stability limit of one member only (mobility 5x): it is marked non-finite,
    the other finishes and equals its single run."""
    import phasefield.batch as batch
    from phasefield.registry import scenario

    def unchecked_build(config):
        simulation = scenario(config.scenario.name).build(config.scenario, config.solver)
        simulation.stepper = simulation.stepper._replace(stable_dt=lambda params: float("inf"))
        return simulation

    monkeypatch.setattr(batch, "build", unchecked_build)
    config = {"scenario": {"name": "spinodal", "shape": [24, 24], "t_end": 0.6},
              "solver": {"scheme": "explicit", "dt": 0.004},  # stable for mobility 1 (limit 0.0087), not 5
              "output": {"interval": 0.2, "scalar_interval": 0.2, "plots": False}}
    paths = run_batch(config, "scenario.mobility", [1.0, 5.0], tmp_path)
    good, bad = read_run(paths[0]), read_run(paths[1])
    assert good["attrs"]["status"] == "finished" and bad["attrs"]["status"] == "non-finite"
    assert np.all(np.isfinite(bad["fields"]["c"]))
    single = read_run(run(member_config(config, "scenario.mobility", 1.0), tmp_path / "single"))
    assert np.allclose(good["fields"]["c"], single["fields"]["c"], rtol=0, atol=1e-12)


SHARDED_BATCH = """
import json, logging, sys
import jax
logging.basicConfig(level=logging.INFO)
jax.config.update("jax_enable_x64", True)
from phasefield.batch import run_batch
assert len(jax.local_devices()) == 2
run_batch(json.loads(sys.argv[1]), "scenario.mobility", [2.0, 5.0, 8.0], sys.argv[2])
"""


def test_batch_members_spread_over_devices_equal_their_single_runs(tmp_path):
    """Two (forced CPU) devices, three members: padded to four, sharded along the member axis (two per
    device); each member takes its single run's step sequence and ends at its fields to round-off."""
    import json
    import os

    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()
    env = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", SHARDED_BATCH, json.dumps(CONFIG), str(tmp_path / "batch")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "batch of 3 members on 2 devices" in result.stderr
    assert sorted(p.parent.name for p in (tmp_path / "batch").glob("member_*/run.h5")) == [
        "member_0", "member_1", "member_2"]  # the padding member is never written
    for index, value in enumerate([2.0, 5.0, 8.0]):
        member = read_run(tmp_path / "batch" / f"member_{index}" / "run.h5")
        single = read_run(run(member_config(CONFIG, "scenario.mobility", value), tmp_path / f"single_{index}"))
        assert member["attrs"]["status"] == "finished"
        assert np.array_equal(member["step"], single["step"])
        assert np.allclose(member["fields"]["c"], single["fields"]["c"], rtol=0, atol=1e-12)


def test_batch_from_command_line(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "scenario=spinodal", "scenario.shape=[16,16]", "scenario.t_end=1",
                             "output.interval=1", "output.plots=false", "batch.key=scenario.mobility",
                             "batch.values=[2,5]", f"hydra.run.dir={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("member_*/run.h5")) == ["member_0", "member_1"]


def test_batch_checkpoints_every_member_on_sigterm_and_each_resumes(tmp_path, monkeypatch):
    """SIGTERM (or SIGUSR1) during a batch: every running member is checkpointed and marked preempted,
    the batch stops with the resume commands, and each member resumes as a single run to its end."""
    import os
    import signal

    import phasefield.batch as batch
    import phasefield.integrate
    from phasefield.runner import Preempted

    original = batch.host_records
    sent = []

    def records_then_signal(records):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return original(records)

    monkeypatch.setattr(batch, "host_records", records_then_signal)
    monkeypatch.setattr(phasefield.integrate, "CHUNK_SECONDS", 1e-9)  # chunks of one step
    with pytest.raises(Preempted, match="member_1"):
        run_batch(CONFIG, "scenario.mobility", [2.0, 5.0], tmp_path)

    # a member whose checkpoint is not this model's state: the batch's refusal names that member
    from phasefield.runner import RunDirectoryError
    read = batch.read_checkpoint

    def foreign_second_member(path):
        saved, clock = read(path)
        if path.parent.name == "member_1":
            saved = {**saved, "history": {**saved["history"], "psi_s": np.zeros(3)}}
        return saved, clock

    monkeypatch.setattr(batch, "read_checkpoint", foreign_second_member)
    with pytest.raises(RunDirectoryError, match=r"member 1 \(scenario.mobility=5.0\): .*it has history/psi_s"):
        batch.resume_batch(tmp_path)
    monkeypatch.setattr(batch, "read_checkpoint", read)
    for index, value in enumerate([2.0, 5.0]):
        folder = tmp_path / f"member_{index}"
        with pytest.importorskip("h5py").File(folder / "run.h5", "r") as f:
            assert f.attrs["status"] == "preempted" and f["checkpoint"].attrs["t"] < CONFIG["scenario"]["t_end"]
        resumed = read_run(run(None, folder, resume=True))
        single = read_run(run(member_config(CONFIG, "scenario.mobility", value), tmp_path / f"single_{index}"))
        assert resumed["attrs"]["finished"] and np.array_equal(resumed["step"], single["step"])
        assert np.allclose(resumed["fields"]["c"], single["fields"]["c"], rtol=0, atol=1e-12)
