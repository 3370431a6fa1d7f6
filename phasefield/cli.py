"""The command line: ``run.py`` (Hydra) resolves the config and calls :func:`main`.

User errors (bad config, an existing run) are printed as one message with exit status 2, never
as a traceback; a run that goes non-finite exits with 3, a preempted one with 75 (EX_TEMPFAIL:
requeue and resume). The work itself is :func:`phasefield.runner.run` (also the Python API) and
:func:`phasefield.batch.run_batch`.
"""
from __future__ import annotations

import logging
import sys

from phasefield.config import ConfigError
from phasefield.integrate import NonFiniteError
from phasefield.runner import Preempted, RunDirectoryError, run

EXIT_USER_ERROR, EXIT_NON_FINITE, EXIT_PREEMPTED = 2, 3, 75  # 75: EX_TEMPFAIL, "try again" (resume)


def main(cfg) -> int:
    """Hydra entry: ``cfg`` is the composed DictConfig; the run directory is Hydra's output dir."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    try:
        data = OmegaConf.to_container(cfg, resolve=True)
        resume = data.pop("resume", None)
        batch = data.pop("batch", None) or {}
        if resume:
            run(None, resume, resume=True)
        elif batch.get("key"):
            from phasefield.batch import run_batch

            run_batch(data, batch["key"], batch.get("values"), HydraConfig.get().runtime.output_dir)
        else:
            run(data, HydraConfig.get().runtime.output_dir, OmegaConf.to_yaml(OmegaConf.create(data)))
    except (ConfigError, RunDirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except NonFiniteError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_NON_FINITE)
    except Preempted as stop:
        print(str(stop), file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)
    return 0
