"""The command line: ``run.py`` (Hydra) resolves the config and calls :func:`main`.

User errors (bad config, an existing run) are printed as one message with exit status 2, never
as a traceback; a run that goes non-finite exits with 3, a preempted one with 75 (EX_TEMPFAIL:
requeue and resume). The work itself is :func:`phasefield.runner.run` (also the Python API) and
:func:`phasefield.batch.run_batch`.
"""
from __future__ import annotations

import logging
import os
import sys

from phasefield.config import ConfigError
from phasefield.integrate import EnergyIncreaseError, NonFiniteError
from phasefield.runner import RESUMABLE, Preempted, RunDirectoryError, run

EXIT_USER_ERROR, EXIT_NON_FINITE, EXIT_PREEMPTED = 2, 3, 75  # 75: EX_TEMPFAIL, "try again" (resume)
log = logging.getLogger("phasefield")


def run_id() -> str:
    """What makes a default run directory unique: the SLURM job (and array task) if any, then the pid.

    Runs started in the same second (a job array) get their own directories.
    """
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    parts = [p for p in (job, task) if p] or [f"pid{os.getpid()}"]
    return "_".join(parts)


def register_resolvers():
    """``${run_id:}`` for the run-directory pattern of configs/config.yaml."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", run_id)


def resume_changes(data: dict, overrides: list[str]) -> dict:
    """The command-line overrides that a resume may apply (``RESUMABLE``), with their composed values;
    any other override is refused: the stored config is what the run was started with."""
    changes = {}
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "resume" or key.startswith("hydra"):
            continue
        if key not in RESUMABLE:
            raise ConfigError(key, override.split("=", 1)[-1],
                              "no change on resume (the run continues with its stored config); a resume may "
                              "change only " + ", ".join(sorted(RESUMABLE)))
        section, name = key.split(".", 1)
        changes[key] = data[section][name]
    return changes


def main(cfg) -> int:
    """Hydra entry: ``cfg`` is the composed DictConfig; the run directory is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from hydra.types import RunMode

    from phasefield.distributed import initialize

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    hydra = HydraConfig.get()
    try:
        initialize()  # several processes (SLURM, PHASEFIELD_COORDINATOR): before any JAX computation
        data = OmegaConf.to_container(cfg, resolve=True)
        resume = data.pop("resume", None)
        batch = data.pop("batch", None) or {}
        if resume:
            from phasefield.batch import is_batch, resume_batch

            changes = resume_changes(data, list(hydra.overrides.task))
            if is_batch(resume):
                resume_batch(resume, changes)
            else:
                run(None, resume, resume=True, changes=changes)
        elif batch.get("key"):
            from phasefield.batch import run_batch

            run_batch(data, batch["key"], batch.get("values"), hydra.runtime.output_dir)
        else:
            run(data, hydra.runtime.output_dir, OmegaConf.to_yaml(OmegaConf.create(data)),
                overrides=list(hydra.overrides.task))
    except (ConfigError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        if hydra.mode == RunMode.MULTIRUN:  # the other jobs of the sweep still run
            log.error("job %s refused: %s", hydra.job.num, error)
            return EXIT_USER_ERROR
        sys.exit(EXIT_USER_ERROR)
    except (NonFiniteError, EnergyIncreaseError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_NON_FINITE)
    except Preempted as stop:
        print(str(stop), file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    return 0
