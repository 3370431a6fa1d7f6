"""Calibration: fit scenario parameters to observed scalar time series by differentiating the solver.

Given a validated run config, 1-6 scalar parameters ``theta`` (leaves of the scenario's parameter
pytree, :func:`phasefield.config.scenario_parameters`) and observations ``y_k`` of diagnostics
(``free_energy``, ``dendrite_height``, ``current_density``, ...) at times ``t_k``, :func:`fit`
minimises the least-squares loss

    L(theta) = 1/2 sum_k r_k^2,   r_k = (m_k(theta) - y_k) / w_k

(``w_k = 1`` for ``loss="squared"``, ``w_k = |y_k|`` for ``loss="relative"``) within bounds, with the
trust-region-reflective Levenberg-Marquardt of ``scipy.optimize.least_squares`` (bounds handled by the
method itself). ``m_k(theta)`` is the diagnostic of a differentiable run of the scenario, and the
Jacobian ``J = dm/dtheta`` comes from forward-mode AD through the whole jitted time loop
(``jax.jacfwd``: one tangent per parameter, the right mode for few parameters and many data).
After the fit, the Gauss-Newton (Fisher) covariance ``cov = s^2 (J^T J)^-1`` with
``s^2 = sum r^2 / (n - p)`` gives the parameters' standard errors.

The differentiable run (:func:`model_series`) differs from a production run (:mod:`phasefield.integrate`):

* fixed dt (``solver.dt``): adaptive dt is off (its step sizes would depend on the parameters through
  a ``while_loop``, a discrete, non-differentiable choice), no stop events (short circuit, cutoff,
  final state of charge: the run always takes its steps), no non-finite guard, no output;
* forward mode (:func:`values_and_jacobian`) runs a two-level ``lax.scan`` (chunks of ``chunk`` steps,
  under ``jax.checkpoint``); reverse mode (:func:`loss_and_gradient`) runs the same loop forward keeping
  nothing, and its backward pass (a ``jax.custom_vjp``, :func:`reversed_by_snapshots`) stores
  ``snapshots`` carries and reverses the steps by Griewank's binomial schedule (:func:`snapshot_schedule`):
  peak memory of ``snapshots`` carries (the initial one is rebuilt, not stored), one carry's cotangent
  and one step's backward pass, whatever the number of steps, for ``r n - binom(s + r, s + 1)`` re-run
  steps (``r`` the smallest with ``binom(s + r, s) >= n``). The default (:func:`budgeted_snapshots`) is
  the fewest snapshots that re-run at most :data:`RERUN_PER_STEP` (10) steps per step
  (:func:`default_snapshots`), fewer where the compiled gradient's peak would exceed
  :data:`MEMORY_RATIO` (3) x the forward run's. Measured on the CPU (experiments/calibrate_memory.py):
  spinodal 128^2, peak of the gradient over the forward run's 2.5x with 1 snapshot, 2.9x with 2, 3.3x
  with 3, the same at 100 and 400 steps (400 steps: 3 by the re-run rule, 2 within the memory ratio);
* within a step, the swelling model's fixed-length ``fori_loop``s (load iterations, bisection passes, the
  mechanics passes) checkpoint their bodies, so that reverse mode stores one loop carry per iteration, not
  every intermediate of every iteration; its limiter's passes are :func:`phasefield.recompute.repeated`
  (no carry per pass: each is recomputed from the first); and the early stages of the dendrite
  and swelling steps (the interface geometry and the Allen-Cahn upkeep; the surface insertion and the
  Cahn-Hilliard update with its limiters), and the elasticity solve's load and the fields of its solution,
  are :func:`phasefield.recompute.recomputed`: the backward pass
  (traced within :func:`phasefield.recompute.reverse_pass`) runs each again when it reaches it, so their
  intermediates are not held through the backward passes of the solves after them;
* iterative solves are differentiated implicitly: every CG solve (:func:`phasefield.operators.krylov.pcg`)
  is a ``lax.custom_linear_solve``, so a tangent or a cotangent is one more solve with the same
  operator, to the same tolerance, not a derivative through the iterations; the dendrite's Newton
  iterations on the electrolyte potential and its galvanostatic secant are implicit roots (the
  derivative at the converged root: one more linear solve, or a division for the scalar electrode
  potential). Reverse mode therefore passes the steps of all three scenarios. In reverse mode the held-voltage
  balance's root is :func:`phasefield.recompute.root`: its backward pass solves the adjoint with the balance
  linearised in the potential alone and takes the derivative in the balance's inputs after that solve;
* the initial fields are device arrays made once (:func:`initial_fields`), so the run and the backward pass's
  rebuilds of the initial carry share them (host arrays are embedded in the program once per trace).

Parameters: :data:`SUPPORTED` lists, per scenario, those whose derivative is checked against finite
differences (tests/test_calibrate.py). Others are refused: a parameter that sets the initial fields
(built on the host from the concrete config, e.g. ``interface_thickness``) would get a derivative
without its effect on the initial state.

Command line::

    python -m phasefield.calibrate scenario=spinodal scenario.shape=[32,32] solver.dt=0.5 \\
        --observations energy.csv --observable free_energy --params kappa,mobility \\
        --bounds 0.5:8,1:20 --guess 4,10 --output fit_dir

writes ``fit.json`` (values, standard errors, covariance, loss history), ``observations_vs_model.csv``
and ``fit.png`` (observation against the fitted and the initial model, and the loss history).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, RunConfig, parameter_names, validate_run
from phasefield.recompute import reverse_pass
from phasefield.registry import scenario as registered
from phasefield.runner import build, device_parameters
from phasefield.simulation import Simulation

log = logging.getLogger("phasefield")

SUPPORTED = {
    "spinodal": ("kappa", "mobility", "rho_s", "c_alpha", "c_beta"),
    "dendrite": ("exchange_current_density", "diffusivity_electrolyte", "conductivity_electrolyte",
                 "transfer_coefficient", "transference_number", "profile_relaxation", "diffusivity_metal",
                 "temperature", "current_density"),
    "swelling": ("diffusivity", "exchange_current_density", "interaction", "gradient_length", "c_rate",
                 "open_circuit_potential", "host_modulus", "electrolyte_modulus", "stack_pressure",
                 "volume_expansion"),
}
"""Parameters per scenario whose derivative through the solver is supported (and tested); see
:func:`supported_parameters` for the options of a scenario that narrow them."""


def supported_parameters(scenario_config) -> tuple[str, ...]:
    """:data:`SUPPORTED` for this scenario config: the dendrite's are those of the reaction formulation
    (chen2015 is not checked), ``current_density`` only under galvanostatic control."""
    names = SUPPORTED.get(scenario_config.name, ())
    if scenario_config.name == "dendrite":
        if scenario_config.formulation != "reaction":
            return ()
        if scenario_config.control != "current":
            names = tuple(n for n in names if n != "current_density")
    return names

LOSSES = ("squared", "relative")
MAX_PARAMETERS = 6
STEP_TOLERANCE = 1e-9  # an observation time within this many steps of a step end is on it


@dataclass
class Problem:
    """A differentiable run: ``simulation`` with parameters ``names`` free, fixed ``dt`` (model time),
    diagnostics ``observables`` at model times ``times`` (sorted, >= 0). ``chunk``: steps per checkpointed
    chunk of the forward-mode loop (default about sqrt(steps)); ``snapshots``: carries of the reverse-mode
    schedule (:func:`snapshot_schedule`; default :func:`budgeted_snapshots`)."""

    simulation: Simulation
    names: tuple[str, ...]
    dt: float
    times: np.ndarray
    observables: tuple[str, ...]
    chunk: int | None = None
    snapshots: int | None = None
    base_parameters: object = field(init=False)

    def __post_init__(self):
        self.times = np.asarray(self.times, np.float64)
        if self.snapshots is not None and (not isinstance(self.snapshots, int) or self.snapshots < 1):
            raise ConfigError("snapshots", self.snapshots, "an integer >= 1 (carries of the reverse-mode schedule)")
        self.base_parameters = device_parameters(self.simulation.parameters, "float64")

    @property
    def steps(self) -> int:
        """Steps of the run: through the last observation time."""
        return int(math.ceil(self.times.max() / self.dt - STEP_TOLERANCE))


def check_names(scenario_config, names: Sequence[str]) -> tuple[str, ...]:
    """The free parameters, checked: 1 to :data:`MAX_PARAMETERS` distinct names of :func:`supported_parameters`."""
    names = tuple(names)
    allowed = supported_parameters(scenario_config)
    if not allowed:
        raise ConfigError("scenario.name", scenario_config.name, "a calibratable scenario: " + ", ".join(SUPPORTED)
                          + " (dendrite: formulation=reaction)")
    if not 1 <= len(names) <= MAX_PARAMETERS or len(set(names)) != len(names):
        raise ConfigError("params", ",".join(names), f"1 to {MAX_PARAMETERS} distinct parameter names")
    leaves = parameter_names(registered(scenario_config.name).Config)
    for name in names:
        if name not in allowed or name not in leaves:
            raise ConfigError("params", name, f"a parameter of this {scenario_config.name} run: " + ", ".join(allowed))
    return names


def make_problem(config: RunConfig, names: Sequence[str], times, observables: Sequence[str] | str,
                 chunk: int | None = None, snapshots: int | None = None) -> Problem:
    """The :class:`Problem` of a validated run config; ``times`` in the scenario's physical time unit."""
    names = check_names(config.scenario, names)
    simulation = build(config)
    observables = (observables,) if isinstance(observables, str) else tuple(observables)
    for name in observables:
        if name not in simulation.scalar_info:
            raise ConfigError("observable", name, "a scalar of the scenario: " + ", ".join(simulation.scalar_info))
    times = np.asarray(times, np.float64) / simulation.scales.get("time", (1.0, ""))[0]
    if times.ndim != 1 or times.size == 0 or np.any(times < 0) or np.any(np.diff(times) < 0):
        raise ConfigError("observations", "time", "a non-empty, non-decreasing list of times >= 0")
    return Problem(simulation, names, float(config.solver.dt), times, observables, chunk, snapshots)


def with_values(params, names: Sequence[str], values):
    """``params`` (a scenario parameter pytree) with leaves ``names`` set to ``values`` (traced or not)."""
    return dataclasses.replace(params, **{n: values[i] for i, n in enumerate(names)})


RERUN_PER_STEP = 10
"""Default number of stored carries of a reverse-mode gradient: the fewest whose schedule re-runs at most this
many steps per step (:func:`default_snapshots`), unless they exceed the memory ratio (:func:`budgeted_snapshots`)."""


def default_snapshots(steps: int) -> int:
    """The fewest snapshots whose :func:`snapshot_schedule` re-runs at most :data:`RERUN_PER_STEP` steps per
    step: 1 up to 21 steps, 2 up to 136, 3 up to 595, 4 up to 2062."""
    snapshots = 1
    while rerun_steps(steps, snapshots) > RERUN_PER_STEP * steps:
        snapshots += 1
    return snapshots


def rerun_steps(steps: int, snapshots: int) -> int:
    """Forward steps the optimal fixed-memory reversal re-runs (Griewank 1992): ``r n - binom(s + r, s + 1)``
    for ``n`` steps, ``s`` snapshots and the smallest ``r`` with ``binom(s + r, s) >= n``."""
    r = 0
    while math.comb(snapshots + r, snapshots) < steps:
        r += 1
    return r * steps - math.comb(snapshots + r, snapshots + 1)


def snapshot_schedule(steps: int, snapshots: int) -> tuple[np.ndarray, int]:
    """The fixed-memory reversal of ``steps`` steps with ``snapshots`` stored carries (binomial checkpointing).

    Returns ``(actions, recomputed)``: ``actions`` ``(k, 4)`` int rows ``(source, start, stop, target)``,
    each one "take the carry of step ``start`` from slot ``source``, advance it to step ``stop``, then store
    it in slot ``target``" (``target >= 0``) or "take step ``stop`` backward" (``target = -1``), in the order
    the backward pass runs them; slot 0 holds the initial carry. ``recomputed``: the forward steps the
    actions re-run (besides one step inside each step's backward).

    The splits minimise ``recomputed`` (Griewank's treeverse, found by dynamic programming):
    ``R(s, l) = min(R(s - 1, l), min_m [m + R(s - 1, l - m) + R(s, m)])`` for ``l`` steps with ``s`` free slots,
    ``R(0, l) = l (l - 1) / 2``, ``R(s, 1) = 0``; about ``r l`` for the smallest ``r`` with
    ``binom(s + r, s) >= l``.
    """
    if steps < 1 or snapshots < 1:
        raise ConfigError("snapshots", snapshots, "an integer >= 1 (and at least one step)")
    free = snapshots - 1
    lengths = np.arange(steps + 1)
    cost = np.zeros((free + 1, steps + 1))
    split = np.zeros((free + 1, steps + 1), np.int64)
    cost[0] = lengths * (lengths - 1) / 2
    for s in range(1, free + 1):
        cost[s] = cost[s - 1]
        for length in range(2, steps + 1):
            m = np.arange(1, length)
            total = m + cost[s - 1][length - m] + cost[s][m]
            best = int(np.argmin(total))
            if total[best] < cost[s][length]:
                cost[s][length], split[s][length] = total[best], m[best]
    actions = []

    def reverse(start, stop, slot, free):
        while stop > start:
            s = free
            while s > 0 and split[s][stop - start] == 0:  # a free slot saves nothing here
                s -= 1
            m = split[s][stop - start]
            if m == 0:  # no free slot worth using: every step from the stored carry
                actions.extend((slot, start, k, -1) for k in range(stop - 1, start - 1, -1))
                return
            actions.append((slot, start, start + m, slot + 1))
            reverse(start + m, stop, slot + 1, s - 1)
            stop = start + m

    reverse(0, steps, 0, free)
    return np.asarray(actions, np.int32).reshape(-1, 4), int(cost[free][steps])


def model_series(problem: Problem, reverse: bool = False, snapshots: int | None = None) -> Callable:
    """``series(theta) -> (n_observables, n_times)``: the observed diagnostics of a fixed-dt run.

    Pure and jit-able. ``reverse=False``: a ``lax.scan`` over the steps, for forward mode (and any
    transformation). ``reverse=True``: the same values, with a ``jax.custom_vjp`` whose backward pass
    reverses the steps by :func:`snapshot_schedule` (``snapshots`` stored carries, default
    ``problem.snapshots`` or :func:`default_snapshots`), for reverse mode only. A time between step ends
    is interpolated linearly between them (the order of the first-order splittings' own error).
    """
    simulation, dt = problem.simulation, problem.dt
    stepper = simulation.stepper
    position = problem.times / dt
    lower = np.floor(position + STEP_TOLERANCE).astype(np.int64)
    weight = np.where(position - lower > STEP_TOLERANCE, position - lower, 0.0)
    upper = np.where(weight > 0, lower + 1, lower)
    steps = problem.steps
    chunk = problem.chunk or max(1, int(round(math.sqrt(steps))))
    chunks = max(1, -(-steps // chunk))
    wanted = np.zeros(chunks * chunk + 1, bool)
    wanted[lower], wanted[upper] = True, True
    indices = np.arange(1, chunks * chunk + 1).reshape(chunks, chunk)
    fields = initial_fields(simulation)
    names, observables = problem.names, problem.observables

    def parameters(theta):
        return with_values(problem.base_parameters, names, jnp.asarray(theta, jnp.float64))

    def observe(params, carry):
        scalars = simulation.diagnostics(params, carry)
        return jnp.stack([jnp.asarray(scalars[n], jnp.float64) for n in observables])

    def run(theta):
        """``(chunks * chunk + 1, n_observables)``: the diagnostics after each step (zero where not observed)."""
        params = parameters(theta)
        carry = stepper.init(params, fields)
        nothing = jnp.zeros(len(observables), jnp.float64)

        @jax.checkpoint
        def one_step(carry, index):
            carry = jax.lax.cond(index <= steps, lambda c: stepper.step(params, c, dt), lambda c: c, carry)
            value = jax.lax.cond(jnp.asarray(wanted)[index], lambda c: observe(params, c), lambda c: nothing, carry)
            return carry, value

        @jax.checkpoint
        def one_chunk(carry, chunk_indices):
            return jax.lax.scan(one_step, carry, chunk_indices)

        _, values = jax.lax.scan(one_chunk, carry, jnp.asarray(indices))
        return jnp.concatenate([observe(params, carry)[None], values.reshape(-1, len(observables))])

    if reverse:
        run = reversed_by_snapshots(run, parameters, observe, wanted, problem,
                                    snapshots or problem.snapshots or default_snapshots(steps), fields)

    def series(theta):
        per_step = run(theta)
        return (per_step[lower] * (1.0 - weight[:, None]) + per_step[upper] * weight[:, None]).T

    return series


def initial_fields(simulation: Simulation) -> dict:
    """The simulation's initial fields as device arrays, made once: every trace that builds the initial carry
    (the run, and the backward pass's rebuilds) then closes over the same arrays, which the compiled gradient
    holds once; host arrays are embedded again by each trace (the spinodal's gradient at 128^2 held its
    initial field 4 times, 0.375 MiB more than the run, a third of the run's peak)."""
    return jax.tree.map(jnp.asarray, simulation.initial_fields())


def reversed_by_snapshots(run: Callable, parameters: Callable, observe: Callable, wanted: np.ndarray,
                          problem: Problem, snapshots: int, fields: dict) -> Callable:
    """``run`` with a ``jax.custom_vjp``: the backward pass keeps ``snapshots`` carries and walks the steps
    from the last by the actions of :func:`snapshot_schedule`, re-running steps forward from the stored
    carries and taking each step's own ``jax.vjp`` (its solves' implicit derivatives) once.

    The forward pass keeps nothing but ``theta``; the backward pass starts again from the initial carry,
    which it rebuilds (``stepper.init``) whenever the schedule reads slot 0, so ``snapshots - 1`` carries
    are stored. Device memory: those, the cotangent of one carry, the carry being advanced and one step's
    backward pass, for any number of steps; time: one run, the re-run steps of the schedule, and per step
    one step backward (which takes the step forward again). Integer leaves of the carry (step counters,
    random keys) get no cotangent. ``fields``: the initial fields (:func:`initial_fields`), those of ``run``.
    """
    simulation, dt, steps = problem.simulation, problem.dt, problem.steps
    stepper = simulation.stepper
    actions, _ = snapshot_schedule(steps, snapshots)

    def backward(theta, cotangent):
        with reverse_pass():  # the steps' recomputed stages (phasefield.recompute) keep only their inputs
            return reversed_steps(theta, cotangent)

    def reversed_steps(theta, cotangent):
        params = parameters(theta)
        shapes = jax.eval_shape(lambda: stepper.init(params, fields))  # the carry itself is built where needed
        leaves, tree = jax.tree.flatten(shapes)
        real = [jnp.issubdtype(leaf.dtype, jnp.inexact) for leaf in leaves]  # integer leaves get no cotangent

        def split(carry):
            """The floating-point leaves of ``carry`` (differentiated) and the others."""
            leaves = jax.tree.leaves(carry)
            return [x for x, r in zip(leaves, real) if r], [x for x, r in zip(leaves, real) if not r]

        def join(floats, others):
            floats, others = iter(floats), iter(others)
            return jax.tree.unflatten(tree, [next(floats) if r else next(others) for r in real])

        def step_back(index, carry, carry_cotangent, theta_cotangent):
            """Step ``index`` backward: the cotangent of its carry from that of the next one and of its
            observation."""
            floats, others = split(carry)
            new, pullback = jax.vjp(lambda t, f: split(stepper.step(parameters(t), join(f, others), dt))[0],
                                    theta, floats)
            theta_cotangent, carry_cotangent = jax.lax.cond(
                jnp.asarray(wanted)[index + 1],
                lambda: observed_back(join(new, split(carry)[1]), cotangent[index + 1], theta_cotangent,
                                      carry_cotangent),
                lambda: (theta_cotangent, carry_cotangent))
            theta_step, carry_cotangent = pullback(carry_cotangent)
            return carry_cotangent, theta_cotangent + theta_step

        def observed_back(carry, value_cotangent, theta_cotangent, carry_cotangent):
            """The cotangents plus those of an observation of ``carry``."""
            floats, others = split(carry)
            theta_observed, carry_observed = jax.vjp(lambda t, f: observe(parameters(t), join(f, others)), theta,
                                                     floats)[1](value_cotangent)
            return theta_cotangent + theta_observed, jax.tree.map(jnp.add, carry_cotangent, carry_observed)

        def load(slots, source):
            """The carry in slot ``source``: slot 0, the initial carry, is built again rather than stored."""
            if snapshots == 1:
                return stepper.init(params, fields)
            return jax.lax.cond(source == 0, lambda: stepper.init(params, fields),
                                lambda: jax.tree.map(lambda s: s[source - 1], slots))

        def act(i, state):
            slots, carry_cotangent, theta_cotangent = state
            source, start, stop, target = (jnp.asarray(actions)[i, j] for j in range(4))
            # each step under a cond (always taken): XLA then keeps one carry, not two, in this loop
            carry = jax.lax.fori_loop(start, stop, lambda k, c: jax.lax.cond(
                k < stop, lambda c: stepper.step(params, c, dt), lambda c: c, c), load(slots, source))
            stored = target >= 0
            if snapshots > 1:
                slots = jax.tree.map(lambda s, c: s.at[jnp.maximum(target - 1, 0)].set(
                    jnp.where(stored, c, s[jnp.maximum(target - 1, 0)])), slots, carry)
            carry_cotangent, theta_cotangent = jax.lax.cond(
                stored, lambda: (carry_cotangent, theta_cotangent),
                lambda: step_back(stop, carry, carry_cotangent, theta_cotangent))
            return slots, carry_cotangent, theta_cotangent

        slots = jax.tree.map(lambda leaf: jnp.zeros((snapshots - 1,) + leaf.shape, leaf.dtype), shapes)
        zero = [jnp.zeros(x.shape, x.dtype) for x in split(shapes)[0]]
        _, carry_cotangent, theta_cotangent = jax.lax.fori_loop(
            0, len(actions), act, (slots, zero, jnp.zeros_like(theta)))
        carry = stepper.init(params, fields)
        theta_cotangent, carry_cotangent = observed_back(carry, cotangent[0], theta_cotangent, carry_cotangent)
        initial = jax.vjp(lambda t: split(stepper.init(parameters(t), fields))[0], theta)[1](carry_cotangent)[0]
        return (theta_cotangent + initial,)

    reversed_run = jax.custom_vjp(run)
    reversed_run.defvjp(lambda theta: (run(theta), theta), backward)
    return reversed_run


def residual_weights(observations: np.ndarray, loss: str) -> np.ndarray:
    """``w_k`` of the loss (module docstring)."""
    if loss not in LOSSES:
        raise ConfigError("loss", loss, "one of " + ", ".join(LOSSES))
    if loss == "squared":
        return np.ones_like(observations)
    scale = np.abs(observations)
    return np.where(scale > 0, scale, np.max(scale) if np.max(scale) > 0 else 1.0)


FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
"""XLA options of ``fast_compile`` (CPU): a third to a half of the compile time of the dendrite and swelling
steps, for code that may run slower on large grids; for tiny grids, where compiling is most of the cost
(tests)."""


TANGENTS = ("batched", "sequential")


def values_and_jacobian(problem: Problem, fast_compile: bool = False, tangents: str = "batched") -> Callable:
    """``evaluate(theta, directions=None) -> (series, J)`` by forward mode: ``series`` ``(m, n)`` and the
    directional derivatives ``J[..., j] = d series / d theta . directions[j]`` ``(m, n, k)``.

    ``directions`` ``(k, p)`` defaults to the identity (the full Jacobian). A fit of a subset of the
    parameters passes the unit vectors of that subset, so it pays for those tangents only; each
    number ``k`` of directions is compiled once. ``fast_compile``: compile with :data:`FAST_COMPILE`
    (less optimised code, sooner). ``tangents``: ``batched`` pushes the ``k`` tangents through one run
    (``vmap``: the run once, ``k`` tangent carries held together); ``sequential`` one run per direction
    (``lax.map``: the run ``k`` times, one tangent carry; 128^2, 100 steps, 2 directions, peak over the run's:
    dendrite 3.27x against 4.21x, swelling 2.17x against 2.83x, spinodal 2.51x against 2.88x).
    """
    if tangents not in TANGENTS:
        raise ConfigError("tangents", tangents, "one of " + ", ".join(TANGENTS))
    pushed = jacobian_function(model_series(problem), tangents)
    compiled = jax.jit(pushed, compiler_options=FAST_COMPILE if fast_compile else None)

    def evaluate(theta, directions=None):
        theta = jnp.asarray(theta, jnp.float64)
        if directions is None:
            directions = jnp.eye(theta.size)
        return compiled(theta, jnp.asarray(directions, jnp.float64))

    return evaluate


def jacobian_function(series: Callable, tangents: str) -> Callable:
    """``(theta, directions) -> (series(theta), J)`` by ``jax.jvp`` along each direction (``tangents``: see
    :func:`values_and_jacobian`)."""
    def along(theta, direction):
        return jax.jvp(series, (theta,), (direction,))

    if tangents == "batched":
        return lambda theta, directions: jax.vmap(lambda d: along(theta, d), out_axes=(None, -1))(directions)

    def pushed(theta, directions):
        values, derivatives = jax.lax.map(lambda d: along(theta, d), directions)
        return values[0], jnp.moveaxis(derivatives, 0, -1)

    return pushed


MEMORY_RATIO = 3.0
"""The peak memory of a reverse-mode gradient, as a multiple of the forward run's, that the default number of
stored carries keeps within (issue 18; :func:`budgeted_snapshots`)."""


def loss_and_gradient(problem: Problem, observations, loss: str = "squared",
                      memory_ratio: float = MEMORY_RATIO) -> Callable:
    """Jitted ``theta -> (L, dL/dtheta)`` by reverse mode, the steps reversed by :func:`snapshot_schedule`
    (any number of parameters). Stored carries: ``problem.snapshots`` if set, else
    :func:`budgeted_snapshots` (compiles the gradient here, once or twice; the first call reuses that
    compilation): the memory it takes, :func:`memory_comparison`."""
    if problem.snapshots is not None:
        return _reverse_mode(problem, observations, loss, problem.snapshots)
    return budgeted_snapshots(problem, observations, loss, memory_ratio).gradient


def _reverse_mode(problem: Problem, observations, loss: str, snapshots: int) -> Callable:
    """Jitted ``theta -> (L, dL/dtheta)`` with ``snapshots`` stored carries."""
    series = model_series(problem, reverse=True, snapshots=snapshots)
    observations = np.asarray(observations, np.float64)
    weights = residual_weights(observations, loss)

    def objective(theta):
        residual = (series(theta) - observations) / weights
        return 0.5 * jnp.sum(residual**2)

    return jax.jit(jax.value_and_grad(objective))


@dataclass
class Budgeted:
    """What :func:`budgeted_snapshots` chose: the jitted (and compiled) ``gradient``, its ``snapshots``, the
    compiled peak bytes of one call of it (``gradient_bytes``) and of the forward run (``forward_bytes``)."""

    gradient: Callable
    snapshots: int
    gradient_bytes: int
    forward_bytes: int


def budgeted_snapshots(problem: Problem, observations, loss: str = "squared",
                       memory_ratio: float = MEMORY_RATIO) -> Budgeted:
    """The reverse-mode gradient with the default number of stored carries: :func:`default_snapshots` (at
    most :data:`RERUN_PER_STEP` steps re-run per step), lowered while the compiled gradient's peak
    (XLA's memory analysis, :func:`phasefield.memory.peak_bytes`) exceeds ``memory_ratio`` x the forward
    run's. Each stored carry adds one carry to the peak (measured: swelling 128^2, 400 steps, 2.91x the run
    with 2, 3.22x with 3, one carry 2.1 MiB), so one recompile, with the excess divided by the carry's bytes
    taken off, brings it within the ratio unless one step's backward pass alone exceeds it (then 1 carry,
    with a warning). Fewer carries re-run more steps (:func:`rerun_steps`): time for memory."""
    from phasefield.memory import peak_bytes

    theta = jax.ShapeDtypeStruct((len(problem.names),), jnp.float64)
    forward = peak_bytes(jax.jit(model_series(problem)).lower(theta))
    shapes = jax.eval_shape(lambda: problem.simulation.stepper.init(problem.base_parameters,
                                                                   problem.simulation.initial_fields()))
    carry = max(1, sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(shapes)))
    first = snapshots = default_snapshots(problem.steps)
    while True:
        gradient = _reverse_mode(problem, observations, loss, snapshots)
        lowered = gradient.lower(theta)
        peak = peak_bytes(lowered, lowered.compile())  # the first call of gradient reuses this compilation
        excess = peak - memory_ratio * forward
        if excess <= 0 or snapshots == 1:
            break
        snapshots = max(1, snapshots - max(1, math.ceil(excess / carry)))
    if excess > 0:
        log.warning("reverse mode: the gradient takes %.2fx the forward run's peak memory with one stored carry "
                    "(its floor, one step's backward pass), above memory_ratio %.3g", peak / forward, memory_ratio)
    elif snapshots < first:
        log.info("reverse mode: stored carries %d, not %d (that would exceed %.3g x the forward run's peak memory): "
                 "%.2fx, %.1f steps re-run per step", snapshots, first, memory_ratio, peak / forward,
                 rerun_steps(problem.steps, snapshots) / problem.steps)
    return Budgeted(gradient, snapshots, peak, forward)


def memory_comparison(problem: Problem, observations, loss: str = "squared") -> dict[str, int]:
    """Peak device bytes (XLA's compiled memory analysis, :func:`phasefield.memory.peak_bytes`) of one
    call of: the run alone (``forward``), its forward-mode Jacobian along every parameter
    (``jacobian_forward``, what :func:`fit` uses; ``jacobian_sequential``, one tangent at a time) and the
    reverse-mode gradient of the loss
    (``gradient_reverse``, :func:`loss_and_gradient`), with its number of stored carries (``snapshots``).
    Nothing of grid size is allocated (abstract arguments)."""
    from phasefield.memory import peak_bytes

    theta = jax.ShapeDtypeStruct((len(problem.names),), jnp.float64)
    directions = jax.ShapeDtypeStruct((len(problem.names), len(problem.names)), jnp.float64)
    series = model_series(problem)

    def measured(function, *args):
        lowered = jax.jit(function).lower(*args)
        return peak_bytes(lowered, lowered.compile())

    if problem.snapshots is None:
        chosen = budgeted_snapshots(problem, observations, loss)
        snapshots, gradient = chosen.snapshots, chosen.gradient_bytes
    else:
        snapshots = problem.snapshots
        gradient = measured(_reverse_mode(problem, observations, loss, snapshots), theta)
    return {"forward": measured(series, theta),
            "jacobian_forward": measured(jacobian_function(series, "batched"), theta, directions),
            "jacobian_sequential": measured(jacobian_function(series, "sequential"), theta, directions),
            "gradient_reverse": gradient, "snapshots": snapshots}


@dataclass
class FitResult:
    """The outcome of :func:`fit` (parameters in the config's units)."""

    names: tuple[str, ...]
    values: np.ndarray
    standard_errors: np.ndarray
    covariance: np.ndarray
    guess: np.ndarray
    bounds: np.ndarray  # (p, 2)
    loss_history: list[float]
    loss: float
    residual_variance: float
    evaluations: int
    success: bool
    message: str
    times: np.ndarray  # physical units
    observables: tuple[str, ...]
    observations: np.ndarray
    fitted: np.ndarray
    initial: np.ndarray
    wall_seconds: float
    compile_seconds: float

    def as_dict(self) -> dict:
        return {
            "parameters": {n: {"value": float(v), "standard_error": float(s), "guess": float(g),
                               "bounds": [float(b) for b in bounds]}
                           for n, v, s, g, bounds in zip(self.names, self.values, self.standard_errors, self.guess,
                                                          self.bounds)},
            "covariance": self.covariance.tolist(),
            "loss": self.loss,
            "residual_variance": self.residual_variance,
            "loss_history": self.loss_history,
            "evaluations": self.evaluations,
            "success": self.success,
            "message": self.message,
            "observables": list(self.observables),
            "wall_seconds": self.wall_seconds,
            "compile_seconds": self.compile_seconds,
        }


def _log_scaled(bounds: np.ndarray) -> np.ndarray:
    """Which parameters are fitted in ``log theta`` (positive bounds spanning more than a factor 1.5):
    the scale a physical rate constant is uncertain in."""
    return (bounds[:, 0] > 0) & (bounds[:, 1] > 1.5 * bounds[:, 0])


def gauss_newton_covariance(jacobian: np.ndarray, residual: np.ndarray):
    """``(cov, s^2)``: ``cov = s^2 (J^T J)^-1``, ``s^2 = |r|^2 / (n - p)`` (pseudo-inverse if singular).

    The columns are scaled to unit norm before the inversion and back after: parameters in SI units
    (a diffusivity of 1e-10 m^2/s next to a current density of 3 mA/cm^2) square to a condition number
    beyond what the pseudo-inverse resolves, and it would drop the weaker direction."""
    n, p = jacobian.shape
    variance = float(residual @ residual) / max(n - p, 1)
    norms = np.linalg.norm(jacobian, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    scaled = jacobian / norms
    return variance * np.linalg.pinv(scaled.T @ scaled) / np.outer(norms, norms), variance


def fit(problem: Problem, observations, guess, bounds, loss: str = "squared", max_evaluations: int = 60,
        tolerance: float = 1e-10, evaluate: Callable | None = None, free: Sequence[int] | None = None,
        tangents: str = "batched") -> FitResult:
    """Fit ``problem.names`` to ``observations`` (``(n_observables, n_times)``, or ``(n_times,)`` for one).

    guess: starting values; bounds: ``[(low, high), ...]`` (the fit stays inside). Parameters with
    positive bounds spanning more than a factor 1.5 are fitted in ``log theta``. ``evaluate``: the
    :func:`values_and_jacobian` of ``problem``, if the caller has it compiled already. ``free``: the
    indices of the parameters fitted (default all); the others stay at their ``guess`` (one compiled
    problem then serves fits of different subsets). The result lists the fitted ones. ``tangents``: of
    :func:`values_and_jacobian` (``sequential``: less memory, the run once per fitted parameter).
    Trust-region reflective least squares (``scipy.optimize.least_squares``, ``method="trf"``, the
    Jacobian from forward-mode AD); stops at relative changes of ``tolerance`` in the loss or the
    parameters, or after ``max_evaluations`` model runs.
    """
    from scipy.optimize import least_squares

    started = time.perf_counter()
    observations = np.atleast_2d(np.asarray(observations, np.float64))
    expected = (len(problem.observables), problem.times.size)
    if observations.shape != expected:
        raise ConfigError("observations", observations.shape, f"shape {expected} (observables x times)")
    guess = np.asarray(guess, np.float64)
    bounds = np.asarray(bounds, np.float64).reshape(-1, 2)
    if guess.shape != (len(problem.names),) or bounds.shape[0] != guess.size:
        raise ConfigError("guess", guess.tolist(), f"one value and one (low, high) per parameter {problem.names}")
    if np.any(bounds[:, 0] >= bounds[:, 1]) or np.any(guess <= bounds[:, 0]) or np.any(guess >= bounds[:, 1]):
        raise ConfigError("bounds", bounds.tolist(), f"low < guess < high for each parameter (guess {guess.tolist()})")
    weights = residual_weights(observations, loss).ravel()
    target = observations.ravel()
    free = np.arange(guess.size) if free is None else np.asarray(free, np.int64)
    full_guess, guess, bounds = guess, guess[free], bounds[free]
    logged = _log_scaled(bounds)
    evaluate = evaluate or values_and_jacobian(problem, tangents=tangents)

    def full(theta):
        """All of the problem's parameters: the fitted ones ``theta``, the held ones at their guess."""
        values = full_guess.copy()
        values[free] = theta
        return values

    compile_started = time.perf_counter()
    directions = np.eye(full_guess.size)[free]
    initial_values, _ = jax.block_until_ready(evaluate(full_guess, directions))
    compile_seconds = time.perf_counter() - compile_started

    def to_theta(z):
        return np.where(logged, np.exp(z), z)

    cache, history = {}, []

    def at(z):
        key = tuple(np.asarray(z, np.float64))
        if key not in cache:
            theta = to_theta(np.asarray(z))
            values, jac = jax.device_get(evaluate(full(theta), directions))
            residual = (np.asarray(values).ravel() - target) / weights
            jac = np.asarray(jac).reshape(target.size, -1) / weights[:, None]
            cache.clear()
            cache[key] = (residual, jac * np.where(logged, theta, 1.0)[None, :])
            history.append(0.5 * float(residual @ residual))
        return cache[key]

    z0 = np.where(logged, np.log(np.where(logged, guess, 1.0)), guess)
    low = np.where(logged, np.log(np.where(logged, bounds[:, 0], 1.0)), bounds[:, 0])
    high = np.where(logged, np.log(np.where(logged, bounds[:, 1], 1.0)), bounds[:, 1])
    solution = least_squares(lambda z: at(z)[0], z0, jac=lambda z: at(z)[1], bounds=(low, high), method="trf",
                             x_scale="jac", ftol=tolerance, xtol=tolerance, gtol=tolerance,
                             max_nfev=max_evaluations)
    theta = to_theta(solution.x)
    values, jac = jax.device_get(evaluate(full(theta), directions))
    residual = (np.asarray(values).ravel() - target) / weights
    jacobian = np.asarray(jac).reshape(target.size, -1) / weights[:, None]
    covariance, variance = gauss_newton_covariance(jacobian, residual)
    return FitResult(
        names=tuple(problem.names[i] for i in free), values=theta,
        standard_errors=np.sqrt(np.maximum(np.diag(covariance), 0.0)),
        covariance=covariance, guess=guess, bounds=bounds, loss_history=history,
        loss=0.5 * float(residual @ residual), residual_variance=variance, evaluations=int(solution.nfev),
        success=bool(solution.success), message=str(solution.message),
        times=problem.times * problem.simulation.scales.get("time", (1.0, ""))[0],
        observables=problem.observables, observations=observations, fitted=np.asarray(values),
        initial=np.asarray(initial_values), wall_seconds=time.perf_counter() - started,
        compile_seconds=compile_seconds)


def read_observations(path, observables: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(times, values)`` from a CSV or HDF5 file; ``values`` has one row per name in ``observables``.

    CSV: a header row naming the columns, ``time`` (or ``t``) and one column per observable.
    HDF5: a phasefield ``run.h5`` (``/scalars/time`` and ``/scalars/<name>``), or a file with
    datasets ``time`` and ``<name>`` at its root.
    """
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            group = f["scalars"] if "scalars" in f else f
            missing = [n for n in ("time", *observables) if n not in group]
            if missing:
                raise ConfigError("observations", str(path), f"datasets time and {', '.join(observables)} "
                                                             f"(missing: {', '.join(missing)})")
            return np.asarray(group["time"], np.float64), np.stack([np.asarray(group[n], np.float64)
                                                                   for n in observables])
    with open(path, newline="") as f:
        rows = list(csv.reader(row for row in f if row.strip() and not row.startswith("#")))
    header = [h.strip() for h in rows[0]]
    time_column = "time" if "time" in header else "t"
    missing = [n for n in (time_column, *observables) if n not in header]
    if missing:
        raise ConfigError("observations", str(path), f"CSV columns time and {', '.join(observables)} "
                                                     f"(missing: {', '.join(missing)})")
    table = np.asarray([[float(v) for v in row] for row in rows[1:]], np.float64)
    return table[:, header.index(time_column)], np.stack([table[:, header.index(n)] for n in observables])


def write_outputs(result: FitResult, directory, scalar_info: dict | None = None,
                  time_unit: str = "") -> dict[str, Path]:
    """``fit.json``, ``observations_vs_model.csv`` and ``fit.png`` (overlay and loss history) in ``directory``;
    ``scalar_info`` (the simulation's) and ``time_unit`` label the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "fit.json", "csv": directory / "observations_vs_model.csv",
             "plot": directory / "fit.png"}
    paths["json"].write_text(json.dumps(result.as_dict(), indent=2))
    with open(paths["csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time"] + [f"{n}_{kind}" for n in result.observables
                                    for kind in ("observed", "fitted", "initial")])
        for k, t in enumerate(result.times):
            writer.writerow([t] + [v for i in range(len(result.observables))
                                   for v in (result.observations[i, k], result.fitted[i, k], result.initial[i, k])])
    count = len(result.observables)
    figure, axes = plt.subplots(1, count + 1, figsize=(4.5 * (count + 1), 3.6))
    for i, name in enumerate(result.observables):
        units = f" ({scalar_info[name].units})" if scalar_info and name in scalar_info else ""
        axes[i].plot(result.times, result.observations[i], "o", ms=3, color="k", label="observed")
        axes[i].plot(result.times, result.fitted[i], "-", color="C0", label="fitted model")
        axes[i].plot(result.times, result.initial[i], "--", color="C1", label="initial guess")
        axes[i].set_xlabel(f"time ({time_unit})" if time_unit and time_unit != "1" else "time")
        axes[i].set_ylabel(name + units)
        axes[i].legend(fontsize=8)
    fitted = ", ".join(f"{n} = {v:.4g} ± {s:.2g}" for n, v, s in zip(result.names, result.values,
                                                                      result.standard_errors))
    axes[0].set_title(fitted, fontsize=8)
    axes[-1].semilogy(np.arange(1, len(result.loss_history) + 1), np.maximum(result.loss_history, 1e-300), ".-")
    axes[-1].set_xlabel("model evaluation")
    axes[-1].set_ylabel("loss")
    figure.tight_layout()
    figure.savefig(paths["plot"], dpi=120)
    plt.close(figure)
    return paths


def compose_config(overrides: Sequence[str]) -> dict:
    """The resolved ``scenario``/``solver``/``output`` sections of configs/ with Hydra ``overrides``."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from phasefield.cli import register_resolvers

    register_resolvers()
    root = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(str(root), version_base=None):
        data = OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=False)
    return {k: OmegaConf.to_container(OmegaConf.create(data[k]), resolve=True)
            for k in ("scenario", "solver", "output")}


def parse_bounds(text: str, count: int) -> list[tuple[float, float]]:
    """``"low:high,low:high"`` -> ``[(low, high), ...]``."""
    parts = [p for p in text.split(",") if p]
    if len(parts) != count or any(p.count(":") != 1 for p in parts):
        raise ConfigError("bounds", text, f"{count} ranges low:high separated by commas")
    return [tuple(float(v) for v in p.split(":")) for p in parts]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m phasefield.calibrate <overrides...> --observations FILE --params a,b --bounds ...``."""
    parser = argparse.ArgumentParser(prog="python -m phasefield.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of configs/ (scenario=..., scenario.x=...)")
    parser.add_argument("--observations", required=True, help="CSV (time + one column per observable) or HDF5")
    parser.add_argument("--observable", required=True, help="diagnostic(s) observed, comma separated")
    parser.add_argument("--params", required=True, help="parameters to fit, comma separated")
    parser.add_argument("--bounds", required=True, help="low:high per parameter, comma separated")
    parser.add_argument("--guess", help="starting values (default: the config's values)")
    parser.add_argument("--loss", default="squared", choices=LOSSES)
    parser.add_argument("--max-evaluations", type=int, default=60)
    parser.add_argument("--tangents", default="batched", choices=TANGENTS,
                        help="forward-mode tangents: batched (one run) or sequential (less memory, a run each)")
    parser.add_argument("--output", default="calibration", help="directory for fit.json, fit.png, the CSV")
    args = parser.parse_args(argv)
    try:
        data = compose_config(args.overrides)
        config = validate_run(data)
        names = [n.strip() for n in args.params.split(",") if n.strip()]
        observables = [n.strip() for n in args.observable.split(",") if n.strip()]
        bounds = parse_bounds(args.bounds, len(names))
        for name, pair in zip(names, bounds):  # the bounds must be valid values of the config
            for value in pair:
                validate_run({**data, "scenario": {**data["scenario"], name: value}})
        times, observations = read_observations(args.observations, observables)
        problem = make_problem(config, names, times, observables)
        guess = ([float(v) for v in args.guess.split(",")] if args.guess
                 else [float(getattr(config.scenario, n)) for n in problem.names])
        result = fit(problem, observations, guess, bounds, args.loss, args.max_evaluations, tangents=args.tangents)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    paths = write_outputs(result, args.output, problem.simulation.scalar_info,
                          problem.simulation.scales.get("time", (1.0, ""))[1])
    for name, value, error in zip(result.names, result.values, result.standard_errors):
        print(f"{name} = {value:.6g} ± {error:.2g}")
    print(f"loss {result.loss:.4g} after {result.evaluations} evaluations ({result.message}); wrote "
          + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
