"""The time loop: jitted chunks of steps between frames, adaptive dt, scalar records, non-finite guard.

One jitted call (:func:`make_advance`) advances the carry from the current time to ``t_stop`` (the
next frame time, or ``t_end``) with a ``lax.while_loop``: the number of steps is decided on the
device, so there is no host synchronisation inside a chunk and no recompilation when dt adapts.
Only ``t_stop`` cuts a step: the last steps of a chunk are shortened to land exactly on it (a
remainder below two steps is split in halves, so no step is shorter than half the nominal dt
unless the frame interval itself is).

Scalar records (every ``record_interval`` of simulated time) do not cut steps: when a step crosses
record times, the diagnostics are evaluated there on the state interpolated linearly between the
step's start and end (an error of order dt^2, the order of the schemes' own global error; exact at
step ends, hence at every frame) and written into a fixed-size buffer on the device, which the host
reads once per chunk. A chunk also ends when that buffer is full, so memory does not grow with the
number of records, however small the record interval.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.schemes import Stepper

RECORD_CAPACITY = 256  # scalar records held on the device per chunk
CHUNK_SECONDS = 2.0  # target wall time of a chunk: bounds how late signals and wall-clock checkpoints act
TIME_TOLERANCE = 1e-12  # relative: a time this close to a target counts as on it


@dataclass(frozen=True)
class TimeControl:
    """Step size policy.

    Fixed: every step is ``dt`` (except where a frame time cuts it).
    Adaptive: after each step ``dt <- dt_step * target_change / change``, where ``change``
    is ``max |u_new - u|`` (or the stepper's own measure), with the factor limited to [0.2, 1.2] of
    the current dt (1.2 keeps variable-step SBDF2 zero-stable) and dt to [dt_min, dt_max].
    With ``reject_above`` > 0 a step whose change exceeds ``reject_above * target_change`` is not
    kept: it is taken again from its start with ``dt_step * max(0.2, 0.9 target_change / change)``
    (a step already at dt_min is kept). The controller alone keeps every step, and the step that
    meets a sudden event (a grain vanishing in PFHub 2b) can change 3x the target and raise a
    gradient flow's energy.
    """

    dt: float
    adaptive: bool = False
    dt_min: float = 0.0
    dt_max: float = float("inf")
    target_change: float = 0.01
    reject_above: float = 0.0

    max_growth = 1.2
    retry_safety = 0.9
    max_shrink = 0.2


class NonFiniteError(RuntimeError):
    """A field became NaN or infinite; carries the step, time and field names, and the time of the
    last good state that is kept (the runner sets it to its last checkpoint)."""

    def __init__(self, fields, step, time, last_good_time, prefix: str = ""):
        self.fields, self.step, self.time, self.last_good_time, self.prefix = fields, step, time, last_good_time, prefix
        super().__init__()

    def __str__(self):
        return (f"{self.prefix}non-finite values in field(s) {', '.join(repr(f) for f in self.fields)} at step "
                f"{self.step} (t = {self.time:.6g}); the run stopped and the last good state "
                f"(t = {self.last_good_time:.6g}) is kept")


class EnergyIncreaseError(RuntimeError):
    """The free energy of a gradient flow rose: the step is beyond what the scheme resolves."""


LYAPUNOV_TOLERANCE = 1e-8  # relative rise of a gradient flow's energy taken as round-off (first-order schemes)
# Variable-step SBDF2 dissipates a modified energy, F + O(|u_n - u_{n-1}|^2 / dt), not F itself: where dt changes
# from step to step F rises between steps (adaptive PFHub 2b to t = 140: by up to 0.2 % with reject_above 1.5,
# 13.6 % without). A rise of more than 1 % stops the run (SBDF2 at dt = 0.5 on PFHub 1a: 2.8 %).
SECOND_ORDER_LYAPUNOV_TOLERANCE = 1e-2


def check_lyapunov(name: str, records: list, previous: float | None, dt: float,
                   tolerance: float = LYAPUNOV_TOLERANCE) -> float | None:
    """Raise :class:`EnergyIncreaseError` if scalar ``name`` rose by more than ``tolerance`` (relative) between
    consecutive records (or from ``previous``); returns its last value."""
    for clock, scalars in records:
        value = scalars[name]
        if previous is not None and value > previous + tolerance * abs(previous):
            raise EnergyIncreaseError(
                f"{name} rose from {previous:.8g} to {value:.8g} by t = {clock['t']:.6g} (step {clock['step']}), "
                f"which a gradient flow never does: the time step (dt = {dt:.4g}) is beyond what the scheme "
                "resolves; reduce solver.dt, or use solver.adaptive=true with solver.reject_above (e.g. 1.5) "
                "or a smaller solver.target_change")
        previous = value
    return previous


def max_change(new: dict, old: dict):
    """``max |u_new - u|`` over all fields (float64): drives adaptive dt; NaN flags a blow-up."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(new[k] - old[k])).astype(jnp.float64) for k in new]))


def all_finite(fields: dict):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in fields.values()]))


def interpolate_state(old, new, theta):
    """The carry between two step ends: floating-point state leaves linearly, the rest from ``new``."""

    def mix(a, b):
        if jnp.issubdtype(b.dtype, jnp.floating):
            return (a + theta.astype(b.dtype) * (b - a)).astype(b.dtype)
        return b

    return {**new, "state": jax.tree_util.tree_map(mix, old["state"], new["state"])}


def empty_records(diagnostics: Callable, params, carry, capacity: int = RECORD_CAPACITY) -> dict:
    """A device buffer for ``capacity`` scalar records: ``time``, ``step``, ``values`` and ``count``."""
    shapes = jax.eval_shape(diagnostics, params, carry)
    return {
        "time": jnp.zeros(capacity, jnp.float64),
        "step": jnp.zeros(capacity, jnp.int64),
        "values": {k: jnp.zeros((capacity,) + s.shape, jnp.float64) for k, s in shapes.items()},
        "count": jnp.zeros((), jnp.int32),
    }


def make_advance(stepper: Stepper, control: TimeControl, diagnostics: Callable, record_interval: float,
                 check_each_step: bool = False) -> Callable:
    """Jitted ``advance(params, carry, clock, t_stop, records, max_steps) -> (carry, clock, finite, records)``.

    ``clock`` is ``{"t": float64, "step": int64, "dt": float64, "dt_taken": float64, "rejected": int64}`` (dt:
    the nominal next step; dt_taken: the last step actually taken; rejected: steps taken again with a smaller dt,
    :class:`TimeControl`; ``step`` counts the kept ones). ``records`` is an empty buffer of
    :func:`empty_records`; it comes back holding the diagnostics at the record times
    ``k * record_interval`` crossed by the chunk (``count`` of them). The chunk stops at ``t_stop``,
    at the stepper's stop event, when the buffer is full or after ``max_steps`` steps (then
    ``clock["t"] < t_stop``). Where a chunk ends does not change the result: the next one goes on
    with the same carry and nominal dt.

    With adaptive dt (or ``check_each_step``) every step measures its change and the loop
    stops at the first non-finite one, leaving ``clock["step"]`` at the failing step. With a
    fixed dt that per-step reduction is skipped and finiteness is checked once at the end of
    the chunk (:func:`locate_non_finite` then replays the chunk with checks to find the step).

    The record interval, target change and dt bounds are arguments of the compiled loop, not constants
    (:func:`step_timing`): ``advance.compiled(..., max_steps, advance.timing)`` is the jitted function and
    ``advance.retimed(control, record_interval)`` the same compiled chunk with other values of them.
    """
    checked = control.adaptive or check_each_step
    timing = step_timing(control, record_interval)

    def measure_change(params, new, old):
        if stepper.change is not None:
            return stepper.change(new, old).astype(jnp.float64)
        return max_change(stepper.fields(params, new), stepper.fields(params, old))

    def record_crossed(params, old, new, t_old, t_new, step, records, interval):
        """Write the diagnostics at every record time in ``(t_old, t_new]`` (while there is room)."""
        capacity = records["time"].shape[0]

        def next_time(buffer):
            return (jnp.floor(t_old / interval * (1 + TIME_TOLERANCE)) + 1 + buffer["written"]) * interval

        def due(buffer):
            return (next_time(buffer) <= t_new * (1 + TIME_TOLERANCE)) & (buffer["records"]["count"] < capacity)

        def write(buffer):
            t_record = jnp.minimum(next_time(buffer), t_new)
            theta = jnp.where(t_new > t_old, (t_record - t_old) / (t_new - t_old), 1.0)
            values = diagnostics(params, interpolate_state(old, new, theta))
            buf, index = buffer["records"], buffer["records"]["count"]
            buf = {
                "time": buf["time"].at[index].set(t_record),
                "step": buf["step"].at[index].set(step),
                "values": {k: buf["values"][k].at[index].set(jnp.asarray(v, jnp.float64))
                           for k, v in values.items()},
                "count": index + 1,
            }
            return {"records": buf, "written": buffer["written"] + 1}

        return jax.lax.while_loop(due, write, {"records": records, "written": jnp.zeros((), jnp.int32)})["records"]

    def cond(state):
        params, carry, clock, finite, t_stop, records, steps_left, timing = state
        going = finite & (t_stop - clock["t"] > TIME_TOLERANCE * jnp.maximum(jnp.abs(t_stop), 1.0))
        going = going & (records["count"] < records["time"].shape[0]) & (steps_left > 0)
        return going if stepper.stop is None else going & ~stepper.stop(params, carry)

    def body(state):
        params, carry, clock, _, t_stop, records, steps_left, timing = state
        interval = timing["record_interval"]
        t, dt = clock["t"], clock["dt"]
        remaining = t_stop - t
        last = remaining <= dt * (1 + 1e-6)  # absorbs round-off accumulated in t
        dt_step = jnp.where(last, remaining, jnp.where(remaining < 2 * dt, 0.5 * remaining, dt))
        t_new = jnp.where(last, t_stop, t + dt_step)
        # a step that would cross more record times than the buffer has room for ends the chunk before
        # it is taken (the next chunk takes it); only a step that overflows an empty buffer (records
        # far denser than steps) is cut, on the last record time that fits
        capacity = records["time"].shape[0]
        room = capacity - records["count"]
        t_full = (jnp.floor(t / interval * (1 + TIME_TOLERANCE)) + room) * interval
        full = t_new > t_full
        t_new, dt_step = jnp.where(full, t_full, t_new), jnp.where(full, t_full - t, dt_step)

        def take_step(state):
            params, carry, clock, _, t_stop, records, steps_left, timing = state
            dt = clock["dt"]
            new = stepper.step(params, carry, dt_step)
            if checked:
                change = measure_change(params, new, carry)
                finite = jnp.isfinite(change)
            else:
                finite = jnp.asarray(True)
            rejected = clock["rejected"]
            if control.adaptive:
                factor = timing["target_change"] / jnp.maximum(change, 1e-300)
                proposal = jnp.clip(dt_step * factor, control.max_shrink * dt, control.max_growth * dt)
                limit = timing["reject_above"] * timing["target_change"]
                retry = finite & (timing["reject_above"] > 0) & (change > limit) & (
                    dt_step > timing["dt_min"] * (1 + 1e-9))
                retry_dt = dt_step * jnp.maximum(control.max_shrink, control.retry_safety * factor)
                proposal = jnp.where(retry, retry_dt, proposal)
                dt = jnp.where(finite, jnp.clip(proposal, timing["dt_min"], timing["dt_max"]), dt)
                new = jax.tree_util.tree_map(lambda kept, taken: jnp.where(retry, kept, taken), carry, new)
                t_end, dt_taken = jnp.where(retry, t, t_new), jnp.where(retry, clock["dt_taken"], dt_step)
                rejected = rejected + retry.astype(rejected.dtype)
                accepted = ~retry
            else:
                t_end, dt_taken, accepted = t_new, dt_step, jnp.asarray(True)
            step = clock["step"] + accepted.astype(clock["step"].dtype)
            records = jax.lax.cond(finite & accepted,
                                   lambda r: record_crossed(params, carry, new, t, t_end, step, r, interval),
                                   lambda r: r, records)
            clock = {"t": t_end, "step": step, "dt": dt, "dt_taken": dt_taken, "rejected": rejected}
            return params, new, clock, finite, t_stop, records, steps_left - 1, timing

        def end_chunk(state):
            return state[:-2] + (jnp.zeros_like(steps_left), timing)

        return jax.lax.cond(full & (room < capacity), end_chunk, take_step, state)

    @jax.jit
    def advance_compiled(params, carry, clock, t_stop, records, max_steps, timing):
        state = (params, carry, clock, jnp.asarray(True), t_stop, records, max_steps, timing)
        _, carry, clock, finite, _, records, _, _ = jax.lax.while_loop(cond, body, state)
        return carry, clock, finite & all_finite(stepper.fields(params, carry)), records

    return _timed(advance_compiled, control.adaptive, timing)


def _timed(advance_compiled, adaptive: bool, timing: dict) -> Callable:
    """The host-side ``advance`` of a compiled chunk, with its step-size and record-time constants."""
    def advance(params, carry, clock, t_stop, records, max_steps=2**62):
        return advance_compiled(params, carry, device_clock(clock), jnp.asarray(t_stop, jnp.float64), records,
                                jnp.asarray(max_steps, jnp.int64), timing)

    def retimed(control: TimeControl, record_interval: float) -> Callable:
        """The same compiled chunk (nothing traced or compiled again) with another step-size policy and
        record interval; only the policy's kind (fixed or adaptive) must be the same."""
        if control.adaptive != adaptive:
            raise ValueError("a fixed-step chunk cannot run adaptive steps, nor the reverse: make a new one")
        return _timed(advance_compiled, adaptive, step_timing(control, record_interval))

    advance.compiled, advance.timing, advance.retimed = advance_compiled, timing, retimed
    return advance


def step_timing(control: TimeControl, record_interval: float) -> dict:
    """The step-size and record-time constants of a chunk, as float64 arguments of the compiled loop (not
    constants baked into it): runs that differ only in these share one compiled program."""
    values = {"record_interval": record_interval, "target_change": control.target_change,
              "dt_min": control.dt_min, "dt_max": control.dt_max, "reject_above": control.reject_above}
    return {name: jnp.asarray(value, jnp.float64) for name, value in values.items()}


def device_clock(clock: dict) -> dict:
    """Fixed, non-weak dtypes: Python scalars and device arrays then hit the same compiled loop."""
    clock = {"dt_taken": 0.0, "rejected": 0, **clock}
    return {k: jnp.asarray(v, jnp.int64 if k in ("step", "rejected") else jnp.float64) for k, v in clock.items()}


def locate_non_finite(stepper, control, diagnostics, record_interval, params, carry, clock, t_stop,
                      last_good_t, prefix: str = "") -> NonFiniteError:
    """Replay a chunk that went non-finite, checking every step, to name the first bad step and field."""
    advance = make_advance(stepper, control, diagnostics, record_interval, check_each_step=True)
    records = empty_records(diagnostics, params, carry)
    carry, clock, _, _ = advance(params, carry, clock, t_stop, records)
    fields = stepper.fields(params, carry)
    bad = non_finite_fields(fields) or list(fields)
    return NonFiniteError(bad, int(clock["step"]), float(clock["t"]), last_good_t, prefix)


def frame_times(t_now: float, t_end: float, interval: float):
    """The frame times ``k * interval`` after ``t_now``, then ``t_end`` (nothing once ``t_now`` reached it):
    generated, never listed, so a huge ``t_end`` costs no memory."""
    if t_now >= t_end * (1 - TIME_TOLERANCE):
        return
    k = int(np.floor(t_now / interval * (1 + TIME_TOLERANCE))) + 1
    while k * interval < t_end * (1 - TIME_TOLERANCE):
        yield k * interval
        k += 1
    yield t_end


def non_finite_fields(fields: dict) -> list[str]:
    return [name for name, value in fields.items() if not bool(jnp.all(jnp.isfinite(value)))]


def host_records(records) -> list[tuple[dict, dict]]:
    """The buffer's records as ``(clock, scalars)`` pairs on the host."""
    records = jax.device_get(records)
    return [({"t": float(records["time"][i]), "step": int(records["step"][i])},
             {k: float(v[i]) for k, v in records["values"].items()}) for i in range(int(records["count"]))]


def integrate(stepper: Stepper, control: TimeControl, params, carry, clock: dict, t_end: float,
              frame_interval: float, record_interval: float, diagnostics: Callable, on_chunk: Callable | None = None,
              advance: Callable | None = None):
    """Advance ``carry`` from ``clock["t"]`` to ``t_end``, frame by frame.

    After every chunk ``on_chunk(carry, clock, records, frame)`` receives the chunk's scalar records
    (a list of ``(clock, scalars)``) and whether ``carry`` is a frame: at every frame time, at
    ``t_end`` and where the stepper's ``stop`` event fired (the run then ends early:
    ``clock["t"] < t_end``). A frame always comes with a record at its own time. Raises
    :class:`NonFiniteError` (naming field and step) as soon as a chunk goes non-finite; nothing of
    that chunk is handed out. ``advance``: the :func:`make_advance` of these arguments, if the caller
    has it already (e.g. compiled for its memory analysis).
    """
    advance = advance or make_advance(stepper, control, diagnostics, record_interval)
    empty = empty_records(diagnostics, params, carry)
    stop = jax.jit(stepper.stop) if stepper.stop is not None else None
    diagnose = jax.jit(diagnostics)
    clock = {"dt_taken": 0.0, "rejected": 0, **clock}
    stopped, max_steps = False, 8  # then as many steps as take about CHUNK_SECONDS
    for t_frame in frame_times(float(clock["t"]), t_end, frame_interval):
        while True:
            start = (carry, clock)
            started = time.perf_counter()
            carry, clock, finite, records = advance(params, carry, clock, t_frame, empty, max_steps)
            if not bool(finite):
                raise locate_non_finite(stepper, control, diagnostics, record_interval, params, *start, t_frame,
                                        float(start[1]["t"]))
            clock = {k: v.item() for k, v in clock.items()}
            records = host_records(records)
            steps, seconds = clock["step"] - start[1]["step"], time.perf_counter() - started
            if steps > 0:
                max_steps = int(np.clip(steps / max(seconds, 1e-6) * CHUNK_SECONDS, 1, 2**62))
            stopped = stop is not None and bool(stop(params, carry))
            frame = stopped or clock["t"] >= t_frame * (1 - TIME_TOLERANCE)
            if frame and not (records and abs(records[-1][0]["t"] - clock["t"]) <= TIME_TOLERANCE * max(clock["t"], 1)):
                scalars = {k: float(v) for k, v in jax.device_get(diagnose(params, carry)).items()}
                records.append(({"t": clock["t"], "step": clock["step"]}, scalars))
            if on_chunk is not None:
                on_chunk(carry, clock, records, frame)
            if frame:
                break
        if stopped:
            break
    return carry, clock
