"""The Hydra command line, end to end in a subprocess, and config validation."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from phasefield.cli import main as cli_main
from phasefield.cli import register_resolvers
from phasefield.config import ConfigError, OutputConfig, validate_run
from phasefield.registry import scenario as registered
from phasefield.runner import build

ROOT = Path(__file__).resolve().parents[1]
register_resolvers()  # as run.py does, for the configs composed in this process
TINY = ["scenario=spinodal", "scenario.shape=[24,24]", "scenario.t_end=2", "output.interval=1", "output.scalar_interval=0.5"]


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_cli_runs_tiny_grid(tmp_path):
    out = tmp_path / "run"
    result = run_cli(*TINY, "scenario.variant=b", f"hydra.run.dir={out}")
    assert result.returncode == 0, result.stderr
    with h5py.File(out / "run.h5", "r") as f:
        assert f["fields/c"].shape == (3, 24, 24) and f.attrs["finished"]
        assert "variant: b" in f.attrs["config"]
    assert (out / "last_frame.png").exists() and (out / "scalars.png").exists() and (out / "run.log").exists()


def test_cli_multirun_sweep(tmp_path):
    result = run_cli("-m", *TINY, "solver=sbdf2,imex1", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.parent.name for p in tmp_path.glob("*/run.h5")) == ["0", "1"]


def cli_in_process(overrides, run_dir):
    """``phasefield.cli.main`` as ``run.py`` calls it, in this process: the config composed by Hydra from the same
    overrides, Hydra's run directory set to ``run_dir`` (a subprocess per case costs seconds of starting JAX)."""
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    try:
        with open_dict(cfg):
            del cfg["hydra"]
        return cli_main(cfg)
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.parametrize(
    "override,fragments",
    [
        ("solver.dt=-1", ["solver.dt", "-1", "> 0.0"]),
        ("solver.reject_above=0.8", ["solver.reject_above", "0.8", "0 (off) or > 1"]),
        ("scenario.mobility=abc", ["scenario.mobility", "'abc'", "a number"]),
        ("scenario.shape=[0,10]", ["scenario.shape[0]", ">= 4"]),
        ("+scenario.mobilty=3", ["scenario.mobilty", "known key", "mobility"]),
        ("solver.scheme=rk4", ["solver.scheme", "'rk4'", "'sbdf2'"]),
        ("scenario.t_end=0", ["scenario.t_end", "> 0.0"]),
        ("solver=explicit", ["solver.dt", "stability limit"]),
        ("scenario.spacing=1e-200", ["scenario.spacing", ">= 0.001"]),
        ("scenario=dendrite scenario.shape=[1,1]", ["scenario.shape", "at least 8 cells along x"]),
        ("batch.key=scenario.mobility batch.values=5", ["batch.values", "a non-empty list"]),
        ("scenario=dendrite scenario.shape=[96,96] +solver.scheme=sbdf2",
         ["solver.scheme", "a known key of solver: dt, adaptive"]),
        ("scenario=dendrite", ["scenario.interface_thickness = 2.0", ">= 4 cells of 2 um = 8 um"]),
    ],
)
def test_bad_config_rejected_with_clear_message(tmp_path, override, fragments, capsys):
    extra = ["solver.dt=0.01"] if override == "solver=explicit" else []
    with pytest.raises(SystemExit) as exit_:
        cli_in_process([*TINY, *override.split(), *extra], tmp_path / "run")
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in stderr, stderr
    assert not (tmp_path / "run" / "run.h5").exists()  # rejected before any compute


def test_bad_config_on_the_command_line_exits_2_with_one_line_and_no_traceback(tmp_path):
    """The command line itself (a subprocess): exit code 2, the message on stderr, no traceback, no file."""
    result = run_cli(*TINY, "scenario.mobility=abc", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "scenario.mobility" in result.stderr and "a number" in result.stderr, result.stderr
    assert not (tmp_path / "run" / "run.h5").exists()


def test_explicit_dt_limit_names_the_limit():
    config = validate_run({"scenario": {"name": "spinodal"}, "solver": {"scheme": "explicit", "dt": 0.01}, "output": {}})
    with pytest.raises(ConfigError, match=r"solver.dt = 0.01; allowed: 0 < dt <= 0.00284"):
        build(config)


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="scenario.name"):
        validate_run({"scenario": {"name": "nope"}})
    with pytest.raises(ConfigError, match="scenario.c_beta"):
        validate_run({"scenario": {"name": "spinodal", "c_alpha": 0.8}})
    with pytest.raises(ConfigError, match="output.interval"):
        validate_run({"scenario": {"name": "spinodal"}, "output": {"interval": 2.5, "scalar_interval": 1.0}})
    with pytest.raises(ConfigError, match="scenario.shape"):
        validate_run({"scenario": {"name": "spinodal", "variant": "cube", "shape": [8, 8]}})
    with pytest.raises(ConfigError, match="true or false"):
        validate_run({"scenario": {"name": "spinodal"}, "solver": {"adaptive": "yes"}})


@pytest.mark.parametrize("scenario", sorted(p.stem for p in (ROOT / "configs" / "scenario").glob("*.yaml")))
def test_every_scenario_yaml_names_every_option(scenario):
    """Hydra refuses ``scenario.key=value`` for a key the composed config lacks (it wants ``+key``), so each
    scenario YAML lists every option of its model's Config (and its solver YAML every option of the solver
    schema that scenario accepts, output every option of its); the composed config validates."""
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):
        composed = OmegaConf.to_container(compose("config", overrides=[f"scenario={scenario}"]))
    entry = registered(composed["scenario"]["name"])
    schemas = {"scenario": entry.Config, "solver": entry.Solver, "output": OutputConfig}
    for section, schema in schemas.items():
        assert sorted({f.name for f in dataclasses.fields(schema)} - set(composed[section])) == [], section
    validate_run({k: composed[k] for k in ("scenario", "solver", "output")})


def test_slurm_launcher_configs_compose_against_plugin_schema():
    """configs/hydra/launcher/slurm.yaml and slurm_multinode.yaml are validated by hydra-submitit-launcher's
    structured config (the optional extra [cluster])."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher ([cluster]) "
                        "is not installed")
    result = run_cli("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr
    assert "SlurmLauncher" in result.stdout and "partition: gpu" in result.stdout
    assert "signal_delay_s: 120" in result.stdout
    result = run_cli("hydra/launcher=slurm_multinode", "hydra.launcher.nodes=3", "--cfg", "hydra")
    assert result.returncode == 0, result.stderr
    assert "nodes: 3" in result.stdout and "tasks_per_node: 4" in result.stdout and "gpus_per_node: 4" in result.stdout


def test_progress_bar_on_a_terminal_and_plain_lines_in_batch_logs(tmp_path):
    """On a TTY the run draws a tqdm bar with simulated time and steps/s; piped output gets log lines."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    process = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *TINY, "output.plots=false",
                                f"hydra.run.dir={tmp_path / 'tty'}"], cwd=ROOT, stdin=follower, stdout=follower,
                               stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data.decode(errors="replace"))
    assert process.wait(timeout=120) == 0
    terminal = "".join(chunks)
    assert "t=2/2" in terminal and "steps/s" in terminal and "100%" in terminal
    piped = run_cli(*TINY, "output.plots=false", f"hydra.run.dir={tmp_path / 'pipe'}")
    assert "100%" not in piped.stderr + piped.stdout
    assert "t = 2 / 2  step" in piped.stdout + piped.stderr


def test_a_refused_job_of_a_sweep_does_not_stop_the_others(tmp_path):
    result = run_cli("-m", *TINY, "output.plots=false", "scenario.mobility=5,-1,3", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "0" / "run.h5").exists() and (tmp_path / "2" / "run.h5").exists()
    assert not (tmp_path / "1" / "run.h5").exists()
    assert "job 1 refused: invalid config: scenario.mobility = -1.0" in result.stderr + result.stdout


def test_numpy_numbers_in_a_python_config_are_plain_values(tmp_path):
    import numpy as np

    from phasefield.runner import run

    config = {"scenario": {"name": "spinodal", "shape": np.array([16, 16]), "t_end": np.float64(1.0),
                           "mobility": np.float32(2.0)},
              "solver": {"dt": np.float64(0.1)}, "output": {"interval": 1, "plots": False}}
    with h5py.File(run(config, tmp_path), "r") as f:
        assert f.attrs["status"] == "finished" and "mobility: 2.0" in f.attrs["config"]


def test_a_refused_run_leaves_the_records_of_the_run_in_its_directory(tmp_path):
    folder = tmp_path / "run"
    assert run_cli(*TINY, "output.plots=false", f"hydra.run.dir={folder}").returncode == 0
    before = {p.name: p.read_text() for p in (folder / ".hydra").iterdir()}
    assert "scenario.shape=[24,24]" in before["overrides.yaml"]
    refused = run_cli("scenario=spinodal", "scenario.shape=[48,48]", "scenario.mobility=1", f"hydra.run.dir={folder}")
    assert refused.returncode == 2 and "already exists" in refused.stderr
    assert {p.name: p.read_text() for p in (folder / ".hydra").iterdir()} == before
