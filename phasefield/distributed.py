"""Several processes (one per GPU, or per node), one program: ``jax.distributed`` started from the environment.

A multi-process start is recognised from

* ``PHASEFIELD_COORDINATOR`` (``host:port`` of process 0), ``PHASEFIELD_NUM_PROCESSES``,
  ``PHASEFIELD_PROCESS_ID``: an explicit start (any launcher, or several processes on one machine);
* ``SLURM_STEP_NUM_TASKS`` > 1, i.e. inside a job step of several tasks (``srun``): JAX's own SLURM detection
  takes the coordinator (the step's first node), the process count and index, and the local GPU from the
  SLURM variables. The job's ``SLURM_NTASKS`` is not enough: a plain ``python run.py`` in the batch script of an
  ``--ntasks=8`` job sees it too, and would wait for seven processes that never start.

:func:`initialize` must run before any JAX computation (the CLI calls it first). On the CPU the
cross-process collectives go through gloo (``jax_cpu_collectives_implementation``). Every process
then sees the devices of all processes (``jax.devices()``); a batch spreads its members over them
(:func:`phasefield.batch.member_sharding`), every process runs the same host loop on the same
gathered values (:func:`to_host`), and only process 0 writes files (:func:`is_writer`).
"""
from __future__ import annotations

import logging
import os

import jax
import numpy as np

from phasefield.config import ConfigError

log = logging.getLogger("phasefield")
ENV = ("PHASEFIELD_COORDINATOR", "PHASEFIELD_NUM_PROCESSES", "PHASEFIELD_PROCESS_ID")


def _integer(name: str, minimum: int) -> int:
    value = os.environ[name]
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ConfigError(name, value, f"an integer >= {minimum}")
    return number


def initialize() -> bool:
    """Start ``jax.distributed`` when the environment asks for several processes; ``True`` if it did.

    Nothing happens for one process (no variables, or ``SLURM_STEP_NUM_TASKS`` unset or 1) or when already started.
    """
    explicit = [name for name in ENV if os.environ.get(name)]
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS", "1")
    slurm = tasks.isdigit() and int(tasks) > 1
    if jax.distributed.is_initialized() or not (explicit or slurm):
        return False
    if explicit:
        if len(explicit) < len(ENV):
            missing = sorted(set(ENV) - set(explicit))
            raise ConfigError(missing[0], None, f"set together with {', '.join(explicit)}: all of {', '.join(ENV)}")
        count = _integer("PHASEFIELD_NUM_PROCESSES", 1)
        index = _integer("PHASEFIELD_PROCESS_ID", 0)
        if index >= count:
            raise ConfigError("PHASEFIELD_PROCESS_ID", index, f"0 <= id < PHASEFIELD_NUM_PROCESSES = {count}")
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(os.environ["PHASEFIELD_COORDINATOR"], count, index)
    else:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(cluster_detection_method="slurm")
    log.info("process %d of %d: %d local of %d devices (%s)", jax.process_index(), jax.process_count(),
             jax.local_device_count(), jax.device_count(), jax.default_backend())
    return True


def is_writer() -> bool:
    """Process 0 writes the files; the others compute their members and write nothing."""
    return jax.process_index() == 0


def layout() -> dict:
    """What a run's file records about where it ran (its latest start): processes, devices, platform."""
    return {"process_count": jax.process_count(), "device_count": jax.device_count(),
            "platform": jax.default_backend()}


def to_host(tree):
    """Numpy copies of the arrays of ``tree``, whole on every process (gathered over processes when an
    array spans devices of other processes)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(leaf, tree)


def agree(value):
    """Process 0's ``value`` on every process (host decisions taken from wall-clock times, such as the
    chunk length, must be the same everywhere: the processes run one program)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return type(value)(multihost_utils.broadcast_one_to_all(np.asarray(value)))


def any_process(flag: bool) -> bool:
    """``flag`` or-ed over the processes (a signal reaching one process stops them all together)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.asarray(bool(flag)))))


def sync_processes(name: str):
    """Wait until every process got here (e.g. all have read the checkpoints before process 0 appends)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
