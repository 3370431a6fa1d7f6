"""Shared by the model tests: run a validated config through the integrator, recording the diagnostics."""
import jax
import numpy as np

from phasefield.config import validate_run
from phasefield.integrate import integrate
from phasefield.runner import build, device_parameters, shared_steps, stable_dt, time_control


def run_scenario(name, t_end, record, solver, initial=None, **scenario):
    """Run scenario ``name`` to ``t_end`` with the ``solver`` dict, recording every ``record``; ``initial(simulation,
    fields) -> fields`` (optional) changes the initial fields (a geometry no option builds).

    Steps land on the record times (they are the frames), so every record is a step end. Runs of the same
    structure (differing in parameters, step sizes and times only) share one traced and compiled chunk of
    steps, as a sweep does (:func:`phasefield.runner.shared_steps`). Returns ``(times, scalars, final carry,
    simulation)``: ``scalars`` maps each diagnostic to an array over the records (t = 0 included).
    """
    config = validate_run({"scenario": {"name": name, "t_end": t_end, **scenario}, "solver": solver, "output": {}})
    simulation, advance = shared_steps(build(config), config)
    params = device_parameters(simulation.parameters, config.solver.precision)
    fields = simulation.initial_fields() if initial is None else initial(simulation, simulation.initial_fields())
    carry = jax.jit(simulation.stepper.init)(params, fields)  # one compile, not one per operation of the start
    times, rows = [0.0], [jax.device_get(jax.jit(simulation.diagnostics)(params, carry))]

    def on_chunk(carry, clock, records, frame):
        for record_clock, scalars in records:
            times.append(record_clock["t"])
            rows.append(scalars)

    control = time_control(config.solver, stable_dt(simulation))
    carry, _ = integrate(simulation.stepper, control, params, carry, {"t": 0.0, "step": 0, "dt": config.solver.dt},
                         t_end, record, record, simulation.diagnostics, on_chunk, advance.retimed(control, record))
    scalars = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    return np.array(times), scalars, carry, simulation


def assert_round_off(actual, expected, name, tolerance=1e-10):
    """``max |actual - expected| <= tolerance max |expected|``: two programs that compute the same thing in a
    different order (the suite compiles with XLA's legacy CPU emitters, conftest.py, which contract and fuse
    differently in different programs) agree to round-off, which the iterative solves' stopping tests carry
    forward (measured: 2e-12 of xi after 4 dendrite steps), not always to the bit."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(float).tiny)
    difference = float(np.max(np.abs(actual - expected), initial=0.0))
    assert difference <= tolerance * scale, f"{name}: {difference:.3g} against {tolerance:g} x {scale:.3g}"
