"""Shared by experiments/pfhub.py and experiments/pfhub_bm1b.py: staged runs of PFHub scenarios.

``staged_run`` advances a scenario through a list of reporting times (any spacing: each segment is
one ``integrate`` call whose frame is the segment end), recording the diagnostics at every
reporting time, optionally the field (for domain counts) and an optional replacement initial field.
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

import phasefield  # noqa: F401  (float64)
from phasefield.config import validate_run
from phasefield.integrate import integrate, make_advance
from phasefield.runner import build, device_parameters, stable_dt, time_control

try:
    from scipy import ndimage
except ImportError:  # pragma: no cover
    ndimage = None


RESULTS = Path(__file__).resolve().parent / "results"  # gitignored
SOLVERS = {
    "sbdf2": {"scheme": "sbdf2", "dt": 0.1, "stabilization": 0.0, "adaptive": False, "precision": "float64"},
    "adaptive": {"scheme": "sbdf2", "dt": 0.05, "stabilization": 1.0, "adaptive": True, "dt_min": 1e-3,
                 "dt_max": 5.0, "target_change": 0.005, "precision": "float64"},
    # the adaptive solver with a 5x tighter per-step change: resolves the early spinodal growth (see 1b notes)
    "adaptive_0.001": {"scheme": "sbdf2", "dt": 0.05, "stabilization": 1.0, "adaptive": True, "dt_min": 1e-3,
                       "dt_max": 5.0, "target_change": 0.001, "precision": "float64"},
}

def count_domains(c, threshold=0.5):
    """Connected regions of c > threshold and of c <= threshold (4-connectivity, no periodic wrap)."""
    if ndimage is None:
        return -1, -1
    above = np.asarray(c) > threshold
    return int(ndimage.label(above)[1]), int(ndimage.label(~above)[1])


def staged_run(scenario: dict, solver: dict, times, field=None, initial=None, keep_fields=False, progress=False,
               deadline=None):
    """Run ``scenario`` with ``solver`` through ``times`` (ascending, > 0).

    ``deadline`` (a ``time.perf_counter()`` value): stop after the first segment that ends past it; the
    result then holds the times reached only (``complete`` False).

    Returns dict: times (0 included), scalars {name: array}, fields (list, if keep_fields; field
    ``field`` at each time), final_fields (every stored field at the last time, host arrays), wall
    (stepping seconds, compilation of the first segment included), steps, simulation, complete. ``initial``: a replacement initial field array for ``field``.
    """
    times = [float(t) for t in times]
    config = validate_run({"scenario": {**scenario, "t_end": times[-1]}, "solver": solver, "output": {}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, config.solver.precision)
    fields0 = simulation.initial_fields()
    if initial is not None:
        fields0 = {**fields0, field: np.asarray(initial, dtype=np.float64)}
    carry = simulation.stepper.init(params, fields0)
    diagnose = jax.jit(simulation.diagnostics)
    control = time_control(config.solver, stable_dt(simulation))
    rows = [{k: float(v) for k, v in jax.device_get(diagnose(params, carry)).items()}]
    out_fields = [np.asarray(fields0[field])] if keep_fields else []
    clock = {"t": 0.0, "step": 0, "dt": config.solver.dt}
    # one compiled advance for every segment: no in-chunk records (each frame brings its own)
    advance = make_advance(simulation.stepper, control, simulation.diagnostics, 1e30)
    started = time.perf_counter()
    for t in times:
        seg = t - clock["t"]
        carry, clock = integrate(simulation.stepper, control, params, carry, clock, t, seg, seg,
                                 simulation.diagnostics, advance=advance)
        clock = {k: (v.item() if hasattr(v, "item") else v) for k, v in clock.items()}
        rows.append({k: float(v) for k, v in jax.device_get(diagnose(params, carry)).items()})
        if progress:
            print(f"  t = {t:g}: F = {rows[-1].get('free_energy', float('nan')):.4f}, step {clock['step']},"
                  f" {time.perf_counter() - started:.0f} s", flush=True)
        if keep_fields:
            out_fields.append(np.asarray(jax.device_get(simulation.stepper.fields(params, carry)[field])))
        if deadline is not None and time.perf_counter() > deadline:
            break
    wall = time.perf_counter() - started
    final_fields = {k: np.asarray(v) for k, v in jax.device_get(simulation.stepper.fields(params, carry)).items()}
    scalars = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    reached = times[:len(rows) - 1]
    return {"times": np.array([0.0] + reached), "scalars": scalars, "fields": out_fields, "final_fields": final_fields, "wall": wall,
            "steps": int(clock["step"]), "simulation": simulation, "complete": len(reached) == len(times)}
