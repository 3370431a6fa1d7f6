"""The time loop: jitted chunks of steps between records, adaptive dt, non-finite guard.

One jitted call advances the carry from the current time to the next record time with a
``lax.while_loop``: the number of steps is decided on the device, so there is no host
synchronisation inside a chunk and no recompilation when dt adapts. The last steps of a
chunk are shortened to land exactly on the record time (a remainder below two steps is
split in halves, so no step is shorter than half the nominal dt unless the record interval
itself is).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.schemes import Stepper


@dataclass(frozen=True)
class TimeControl:
    """Step size policy.

    Fixed: every step is ``dt`` (except where a record time cuts it).
    Adaptive: after each step ``dt <- dt_step * target_change / change``, where ``change``
    is ``max |u_new - u|`` (or the stepper's own measure), with the factor limited to [0.2, 1.2] of the current dt (1.2 keeps
    variable-step SBDF2 zero-stable) and dt to [dt_min, dt_max].
    """

    dt: float
    adaptive: bool = False
    dt_min: float = 0.0
    dt_max: float = float("inf")
    target_change: float = 0.01

    max_growth = 1.2
    max_shrink = 0.2


class NonFiniteError(RuntimeError):
    """A field became NaN or infinite; carries the step, time and field names."""

    def __init__(self, fields, step, time, last_good_time):
        self.fields, self.step, self.time = fields, step, time
        super().__init__(
            f"non-finite values in field(s) {', '.join(repr(f) for f in fields)} at step {step} "
            f"(t = {time:.6g}); the run stopped and the last good state (t = {last_good_time:.6g}) is kept"
        )


def max_change(new: dict, old: dict):
    """``max |u_new - u|`` over all fields (float64): drives adaptive dt; NaN flags a blow-up."""
    return jnp.max(jnp.stack([jnp.max(jnp.abs(new[k] - old[k])).astype(jnp.float64) for k in new]))


def all_finite(fields: dict):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in fields.values()]))


def make_advance(stepper: Stepper, control: TimeControl, check_each_step: bool = False) -> Callable:
    """Jitted ``advance(params, carry, clock, t_stop) -> (carry, clock, finite)``.

    ``clock`` is ``{"t": float64, "step": int64, "dt": float64}`` (dt: the nominal step).
    With adaptive dt (or ``check_each_step``) every step measures its change and the loop
    stops at the first non-finite one, leaving ``clock["step"]`` at the failing step. With a
    fixed dt that per-step reduction is skipped and finiteness is checked once at the end of
    the chunk (:func:`integrate` then replays the chunk with checks to find the step).
    """
    checked = control.adaptive or check_each_step

    def measure_change(params, new, old):
        if stepper.change is not None:
            return stepper.change(new, old).astype(jnp.float64)
        return max_change(stepper.fields(params, new), stepper.fields(params, old))

    def cond(state):
        params, carry, clock, finite, t_stop = state
        going = finite & (t_stop - clock["t"] > 1e-12 * jnp.maximum(jnp.abs(t_stop), 1.0))
        return going if stepper.stop is None else going & ~stepper.stop(params, carry)

    def body(state):
        params, carry, clock, _, t_stop = state
        t, dt = clock["t"], clock["dt"]
        remaining = t_stop - t
        last = remaining <= dt * (1 + 1e-6)  # absorbs round-off accumulated in t
        dt_step = jnp.where(last, remaining, jnp.where(remaining < 2 * dt, 0.5 * remaining, dt))
        new = stepper.step(params, carry, dt_step)
        if checked:
            change = measure_change(params, new, carry)
            finite = jnp.isfinite(change)
        else:
            finite = jnp.asarray(True)
        carry = new
        if control.adaptive:
            factor = control.target_change / jnp.maximum(change, 1e-300)
            proposal = jnp.clip(dt_step * factor, control.max_shrink * dt, control.max_growth * dt)
            dt = jnp.where(finite, jnp.clip(proposal, control.dt_min, control.dt_max), dt)
        clock = {
            "t": jnp.where(last, t_stop, t + dt_step),
            "step": clock["step"] + 1,
            "dt": dt,
        }
        return params, carry, clock, finite, t_stop

    @jax.jit
    def advance_compiled(params, carry, clock, t_stop):
        state = (params, carry, clock, jnp.asarray(True), t_stop)
        _, carry, clock, finite, _ = jax.lax.while_loop(cond, body, state)
        return carry, clock, finite & all_finite(stepper.fields(params, carry))

    def advance(params, carry, clock, t_stop):
        # Fixed, non-weak dtypes: Python scalars and device arrays then hit the same compiled loop.
        clock = {k: jnp.asarray(v, jnp.int64 if k == "step" else jnp.float64) for k, v in clock.items()}
        return advance_compiled(params, carry, clock, jnp.asarray(t_stop, jnp.float64))

    advance.compiled = advance_compiled
    return advance


def locate_non_finite(stepper, control, params, carry, clock, t_stop, last_good_t) -> NonFiniteError:
    """Replay a chunk that went non-finite, checking every step, to name the first bad step and field."""
    carry, clock, _ = make_advance(stepper, control, check_each_step=True)(params, carry, clock, t_stop)
    bad = non_finite_fields(stepper.fields(params, carry)) or list(stepper.fields(params, carry))
    return NonFiniteError(bad, int(clock["step"]), float(clock["t"]), last_good_t)


def record_times(t_now: float, t_end: float, interval: float) -> list[float]:
    """Record times ``k * interval`` after ``t_now`` up to ``t_end`` (``t_end`` always included)."""
    k_first = int(np.floor(t_now / interval + 1e-9)) + 1
    k_last = int(np.floor(t_end / interval + 1e-9))
    times = [k * interval for k in range(k_first, k_last + 1)]
    if not times or times[-1] < t_end * (1 - 1e-12):
        times.append(t_end)
    return times


def non_finite_fields(fields: dict) -> list[str]:
    return [name for name, value in fields.items() if not bool(jnp.all(jnp.isfinite(value)))]


def integrate(
    stepper: Stepper,
    control: TimeControl,
    params,
    carry,
    clock: dict,
    t_end: float,
    record_interval: float,
    on_record: Callable | None = None,
):
    """Advance ``carry`` from ``clock["t"]`` to ``t_end``, calling ``on_record(carry, clock)`` at records.

    A stepper's ``stop`` event ends the run early: the state where it fired is recorded and
    returned (``clock["t"] < t_end``). Raises :class:`NonFiniteError` (naming field and step) as soon as a chunk goes non-finite;
    the caller still holds the last good state it recorded.
    """
    advance = make_advance(stepper, control)
    last_good_t = float(clock["t"])
    for t_stop in record_times(float(clock["t"]), t_end, record_interval):
        start = (carry, clock)
        carry, clock, finite = advance(params, carry, clock, t_stop)
        if not bool(finite):
            raise locate_non_finite(stepper, control, params, *start, t_stop, last_good_t)
        clock = {k: v.item() for k, v in clock.items()}
        last_good_t = clock["t"]
        if on_record is not None:
            on_record(carry, clock)
        if clock["t"] < t_stop * (1 - 1e-12):  # the stop event fired inside this chunk
            break
    return carry, clock
