"""Memory of one time-stepping chunk: the old per-model guess, XLA's compiled estimate, and the measure.

    PYTHONPATH=. python experiments/measure_memory.py

For each scenario and grid it prints the old guess of ``cli.check_memory`` (cells x itemsize x
the fixed ``arrays_per_cell`` of the model modules before), the new estimate (:func:`phasefield.memory.compiled_memory_bytes`
of the jitted chunk ``advance(carry, clock, t_stop)``) and the measured peak of the same call on
the CPU, each in MiB, with the ratios measured/estimate and measured/old guess. The last column,
``process``, is the whole subprocess's peak resident set over its resident set after importing jax
and phasefield: build, initial state, the jit of ``init``, XLA's compilation (host memory, several
hundred MiB for the dendrite chunk on the CPU) and the chunk together; it is what a look at
``top`` shows, and much larger than what the chunk itself holds.

The measure runs in a fresh subprocess (one per row) so that nothing of another row is resident:
it builds the scenario, compiles the chunk ahead of time, creates the initial carry, then resets
the peak resident set (writes ``5`` to ``/proc/self/clear_refs``, which sets ``VmHWM`` to the
current ``VmRSS``; where that is not allowed it falls back to ``ru_maxrss`` and subtracts the
baseline only if the peak moved), runs one chunk of a few steps and reads ``VmHWM`` again.
``measured = argument bytes + (VmHWM after - VmRSS before)``: the arguments (carry, clock) are
resident before the call and part of its peak, so they are added back exactly (their nbytes).
glibc's dynamic mmap threshold would let large buffers reuse heap pages freed during compilation
(invisible to the RSS); the subprocess pins it with ``MALLOC_MMAP_THRESHOLD_`` so every grid-sized
buffer is a fresh mapping.

The coupling to today's API (``build``, ``make_advance``, the clock dict) is all in :func:`chunk`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]

# scenario YAML, solver YAML (under configs/), solver overrides, t_stop of the one chunk (a few steps).
SCENARIOS = {
    "spinodal": ("scenario/spinodal.yaml", "solver/sbdf2.yaml", {}, 0.5),  # sbdf2, dt 0.1: 5 steps
    # imex1, adaptive; dt 0.005 is below the explicit limit of 512^2 (0.0061), where 0.02 is not
    "dendrite": ("scenario/dendrite.yaml", "solver/dendrite.yaml", {"dt": 0.005}, 0.02),
}
GRIDS = {"spinodal": [(512, 512), (1024, 1024)], "dendrite": [(256, 256), (512, 512)]}


def config_dict(name: str, shape) -> dict:
    scenario_file, solver_file, solver_overrides, _ = SCENARIOS[name]
    # OmegaConf, as Hydra reads them (PyYAML would leave 7.64e4 a string)
    scenario = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / scenario_file))
    scenario.pop("defaults", None)
    solver = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / solver_file))
    scenario["shape"] = list(shape)
    solver.update(solver_overrides)
    return {"scenario": scenario, "solver": solver, "output": {}}


# the per-model guess the memory check used before it was measured (arrays per cell, fixed per model)
OLD_ARRAYS_PER_CELL = {"spinodal": 12, "dendrite": 40}


def chunk(name: str, shape):
    """``(function, args, old_guess)``: the jitted time-stepping chunk of ``name`` at ``shape``, its
    arguments ``(params, carry, clock, t_stop, records, max_steps)`` (real arrays) and the old guess in bytes.

    The only place that knows the build/advance API; adapt it when that changes.
    """
    import jax.numpy as jnp

    from phasefield.config import validate_run
    from phasefield.integrate import device_clock, empty_records
    from phasefield.runner import build, device_parameters, initial_carry, make_run_advance

    config = validate_run(config_dict(name, shape))
    sim = build(config)
    params = device_parameters(sim.parameters, config.solver.precision)
    carry = initial_carry(sim, params)
    advance = make_run_advance(sim, config)
    clock = device_clock({"t": 0.0, "step": 0, "dt": config.solver.dt})
    t_stop = jnp.asarray(SCENARIOS[name][3], jnp.float64)
    records = empty_records(sim.diagnostics, params, carry)
    cells = 1
    for n in shape:
        cells *= n
    itemsize = 8 if config.solver.precision == "float64" else 4
    old = cells * itemsize * OLD_ARRAYS_PER_CELL[name]
    return advance.compiled, (params, carry, clock, t_stop, records, jnp.asarray(2**62, jnp.int64), advance.timing), old


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _measure_here(name: str, shape) -> dict:
    """In this process: estimate and measured peak (bytes) of one chunk. Run it in a fresh process."""
    import resource

    import jax

    import phasefield.runner  # noqa: F401  (imports out of the process column)
    from phasefield import memory

    start_rss = _status_kib("VmRSS")  # after the imports of jax and phasefield
    function, args, old = chunk(name, shape)
    lowered = memory.lower_abstract(function, *args)
    compiled = lowered.compile()
    estimate = memory.peak_bytes(lowered, compiled)
    arg_bytes = memory.argument_bytes(args)
    jax.block_until_ready(args)
    setup_peak = _status_kib("VmHWM")  # build, initial state, compilation
    try:
        Path("/proc/self/clear_refs").write_text("5")
        method = "VmHWM"
    except OSError:
        method = "ru_maxrss"
    before_rss = _status_kib("VmRSS")
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = compiled(*args)
    jax.block_until_ready(out)
    if method == "VmHWM":
        increase = (_status_kib("VmHWM") - before_rss) * 1024
    else:  # a peak from before the baseline hides the run's own unless the run exceeds it
        increase = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max(before_peak, before_rss)) * 1024
    steps = int(out[1]["step"])
    process = (max(setup_peak, _status_kib("VmHWM")) - start_rss) * 1024
    return {"scenario": name, "shape": list(shape), "old": old, "estimate": estimate, "arguments": arg_bytes,
            "increase": increase, "measured": arg_bytes + increase, "method": method, "steps": steps,
            "process": process}


def measure(name: str, shape, timeout: float = 300) -> dict:
    """:func:`_measure_here` in a fresh Python process (nothing else resident, malloc pinned to mmap)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = ("import json, sys; sys.path.insert(0, %r); import measure_memory as m; "
            "print('RESULT ' + json.dumps(m._measure_here(%r, %r)))" % (str(Path(__file__).parent), name, tuple(shape)))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {name} {shape} failed:\n{proc.stderr[-3000:]}")
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main():
    mib = 2**20
    print(f"{'scenario':<10} {'grid':>9} {'old guess':>10} {'estimate':>10} {'measured':>10} "
          f"{'meas/est':>9} {'meas/old':>9} {'process':>9}   (MiB; measured = args + RSS peak increase)")
    for name, grids in GRIDS.items():
        for shape in grids:
            r = measure(name, shape)
            grid = "x".join(map(str, shape))
            print(f"{name:<10} {grid:>9} {r['old'] / mib:>10.1f} {r['estimate'] / mib:>10.1f} "
                  f"{r['measured'] / mib:>10.1f} {r['measured'] / r['estimate']:>9.2f} {r['measured'] / r['old']:>9.2f} {r['process'] / mib:>9.1f}"
                  f"   (args {r['arguments'] / mib:.1f} + {r['increase'] / mib:.1f}, {r['steps']} steps, {r['method']})",
                  flush=True)


if __name__ == "__main__":
    main()
