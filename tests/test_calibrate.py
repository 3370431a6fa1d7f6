"""Calibration (phasefield.calibrate): forward-mode derivatives through the fixed-dt time loop agree
with central finite differences for every supported parameter of spinodal, dendrite and swelling, and a
fit recovers known parameters of synthetic observations from a guess 2x off (with and without noise).

Budget: one compiled problem per scenario (module fixtures, tiny grids, few steps, XLA's fast compile),
shared by the derivative check and the recovery fits. Measured single-process (-n 0) on 2 CPU cores
shared with other jobs: 40 s wall at load 3.5, 52-75 s at load 6 (38-55 s of CPU); compiling the
dendrite and swelling steps with their tangents is most of it. The reverse-mode checks of those two
steps (another 20-30 s of compiling each) are in tests/test_calibrate_reverse.py.
"""
import dataclasses

import jax
import numpy as np
import pytest

from phasefield.calibrate import (
    FAST_COMPILE,
    SUPPORTED,
    Problem,
    budgeted_snapshots,
    default_snapshots,
    fit,
    jacobian_function,
    loss_and_gradient,
    main,
    make_problem,
    memory_comparison,
    model_series,
    read_observations,
    rerun_steps,
    snapshot_schedule,
    supported_parameters,
    values_and_jacobian,
)
from phasefield.config import ConfigError, validate_run
from phasefield.runner import build
from tests.test_model_layer import composed

RELATIVE_STEP = 3e-4  # of central differences: truncation ~1e-7; the noise of the solvers' tolerances (the
# galvanostatic secant's relative 1e-6 and more) over the step stays below 1e-4 for the weakest parameters


def compiled_problem(overrides, names, times, observables):
    """A problem with every parameter in ``names`` free (the supported ones are more than a CLI fit's 6),
    compiled for two tangent directions: the recovery fits free two, the derivative check takes two at a time."""
    config = validate_run(composed(overrides))
    problem = Problem(build(config), tuple(names), float(config.solver.dt), np.asarray(times), tuple(observables))
    evaluate = values_and_jacobian(problem, fast_compile=True)
    theta = np.array([float(getattr(config.scenario, n)) for n in names])
    return problem, evaluate, theta


@pytest.fixture(scope="module")
def spinodal():
    names = ("kappa", "mobility") + tuple(n for n in SUPPORTED["spinodal"] if n not in ("kappa", "mobility"))
    return compiled_problem(["scenario=spinodal", "scenario.shape=[16,16]", "solver.dt=1.0"], names,
                            np.linspace(0.0, 40.0, 21), ["free_energy"])


@pytest.fixture(scope="module")
def dendrite():
    """A flat front on a thin 24 x 1 um strip (1D-like) under galvanostatic control: the electrode
    potential is the observed voltage curve, whose offset is set by the kinetics and whose rise as the
    salt depletes by the diffusivity (about L^2/D = 1 s). The control starts near its first value
    (-0.1 V): from the default -0.4 V the first step's secant ends where the step is not smooth in the
    parameters, and finite differences of 1e-4 to 1e-3 differ from the derivative by up to 5 %. Steps of 0.1 s
    (30 to the last observation; half the steps of 0.05 s): measured derivative errors at most 1.3e-5 (against
    1e-4), the noise-free fit within 5e-12, the noisy one within 1.7 % (against 5 %) and 0.54 standard errors."""
    names = ("exchange_current_density", "diffusivity_electrolyte") + tuple(
        n for n in SUPPORTED["dendrite"] if n not in ("exchange_current_density", "diffusivity_electrolyte"))
    overrides = ["scenario=dendrite", "scenario.size=[24,1]", "scenario.shape=[48,2]", "scenario.random_nuclei=0",
                 "scenario.noise_amplitude=0", "scenario.control=current", "scenario.current_density=10",
                 "scenario.voltage=-0.1", "scenario.potential_tolerance=1e-12", "solver.dt=0.1",
                 "solver.adaptive=false"]
    return compiled_problem(overrides, names, np.linspace(0.0, 3.0, 31), ["electrode_potential"])


@pytest.fixture(scope="module")
def swelling():
    overrides = ["scenario=swelling", "scenario.shape=[16,16]", "scenario.interface_thickness=0.75",
                 "scenario.gradient_length=0.25", "scenario.random_particles=1", "scenario.mechanics_tolerance=1e-12",
                 "solver.dt=20", "solver.adaptive=false"]
    return compiled_problem(overrides, SUPPORTED["swelling"], np.linspace(0.0, 100.0, 6),
                            ["electrode_potential", "swelling"])


def finite_difference_errors(problem, evaluate, theta):
    """Per parameter: max |AD - FD| / max |AD| over the observed series. The two evaluations of a central
    difference, at theta +- h e_i, also give the forward-mode derivative there (two tangent directions per call:
    the parameter's pair); their mean is the derivative at theta to O(h^2) (relative ~1e-7 at h = 3e-4 theta,
    against the 1e-4 checked), so no third evaluation at theta: 2 per parameter instead of 2.5-3."""
    errors = {}
    for first in range(0, theta.size, 2):
        pair = [first, min(first + 1, theta.size - 1)]
        directions = np.eye(theta.size)[pair]
        for column, index in enumerate(dict.fromkeys(pair)):  # an odd count's last pair is one parameter
            step = RELATIVE_STEP * abs(theta[index])
            (plus, tangents_plus), (minus, tangents_minus) = (
                evaluate(theta + sign * step * np.eye(theta.size)[index], directions) for sign in (1, -1))
            automatic = 0.5 * (np.asarray(tangents_plus) + np.asarray(tangents_minus))[..., column]
            assert np.max(np.abs(automatic)) > 0, f"{problem.names[index]}: zero derivative"
            difference = (np.asarray(plus) - np.asarray(minus)) / (2 * step)
            errors[problem.names[index]] = float(np.max(np.abs(difference - automatic)) / np.max(np.abs(automatic)))
    return errors


@pytest.mark.parametrize("scenario", ["spinodal", "dendrite", "swelling"])
def test_forward_mode_derivatives_match_central_differences(scenario, request):
    problem, evaluate, theta = request.getfixturevalue(scenario)
    assert set(problem.names) == set(SUPPORTED[scenario])
    errors = finite_difference_errors(problem, evaluate, theta)
    print(scenario, {k: f"{v:.1e}" for k, v in errors.items()})
    assert max(errors.values()) < 1e-4, errors


def test_sequential_tangents_give_the_batched_jacobian_in_less_memory(spinodal):
    """One run per direction (``tangents="sequential"``) gives the batched forward-mode Jacobian (to round-off:
    XLA fuses the two differently) and holds one tangent carry: its compiled peak is below the batched one's
    (16^2 spinodal, 3 directions)."""
    from phasefield.memory import peak_bytes

    problem, evaluate, theta = spinodal
    directions = np.eye(theta.size)[:3]
    values, jacobian = evaluate(theta, directions)
    sequential = values_and_jacobian(problem, fast_compile=True, tangents="sequential")
    one_at_a_time, columns = sequential(theta, directions)
    np.testing.assert_allclose(one_at_a_time, values, rtol=1e-14)
    np.testing.assert_allclose(columns, jacobian, rtol=1e-10, atol=1e-12 * np.max(np.abs(jacobian)))
    series = model_series(problem)
    shapes = (jax.ShapeDtypeStruct(theta.shape, np.float64), jax.ShapeDtypeStruct(directions.shape, np.float64))
    batched_peak, sequential_peak = (peak_bytes(jax.jit(jacobian_function(series, mode)).lower(*shapes))
                                     for mode in ("batched", "sequential"))
    assert sequential_peak < batched_peak, (sequential_peak, batched_peak)
    with pytest.raises(ConfigError, match="tangents"):
        values_and_jacobian(problem, tangents="serial")


def recover(problem, evaluate, theta, noise, bounds, seed=0):
    """Fit the first two parameters to the model's own series (times 1 + noise N(0,1)) from (2x, x/2)."""
    clean = np.asarray(evaluate(theta, np.eye(theta.size)[:2])[0])
    observed = clean * (1.0 + noise * np.random.default_rng(seed).standard_normal(clean.shape))
    guess = theta.copy()
    guess[0], guess[1] = 2.0 * theta[0], 0.5 * theta[1]
    full_bounds = [(0.5 * v, 2.0 * v) if v > 0 else (v - 1.0, v + 1.0) for v in theta]  # held ones: not used
    full_bounds[:2] = bounds
    result = fit(problem, observed, guess, full_bounds, evaluate=evaluate, free=(0, 1))
    return result, (result.values - theta[:2]) / theta[:2]


@pytest.mark.parametrize("noise,tolerance", [(0.0, 0.01), (0.02, 0.05)])
def test_spinodal_fit_recovers_kappa_and_mobility_from_the_free_energy(spinodal, noise, tolerance):
    result, error = recover(*spinodal, noise, [(0.2, 20.0), (0.5, 50.0)])
    print(result.values, result.standard_errors, error, result.evaluations)
    assert np.all(np.abs(error) < tolerance), (result.values, result.message)
    assert result.loss_history[-1] <= result.loss_history[0]
    if noise:  # the Gauss-Newton standard errors cover the actual error
        assert np.all(np.abs(result.values - spinodal[2][:2]) < 4 * result.standard_errors)


@pytest.mark.parametrize("noise,tolerance", [(0.0, 0.01), (0.02, 0.05)])
def test_dendrite_fit_recovers_exchange_current_and_diffusivity_from_the_voltage(dendrite, noise, tolerance):
    result, error = recover(*dendrite, noise, [(0.1, 100.0), (1e-11, 1e-8)])
    print(result.values, result.standard_errors, error, result.evaluations)
    assert np.all(np.abs(error) < tolerance), (result.values, result.message)
    if noise:
        assert np.all(np.abs(result.values - dendrite[2][:2]) < 4 * result.standard_errors)


def test_command_line_fits_a_csv_and_writes_values_history_and_plot(spinodal, tmp_path):
    problem, evaluate, theta = spinodal
    clean = np.asarray(evaluate(theta, np.eye(theta.size)[:2])[0])[0]
    observations = tmp_path / "energy.csv"
    np.savetxt(observations, np.column_stack([problem.times, clean]), delimiter=",", header="time,free_energy",
               comments="")
    assert np.allclose(read_observations(observations, ["free_energy"])[1][0], clean)
    status = main(["scenario=spinodal", "scenario.shape=[16,16]", "solver.dt=1.0", "--observations",
                   str(observations), "--observable", "free_energy", "--params", "kappa,mobility",
                   "--bounds", "0.2:20,0.5:50", "--guess", "4,2.5", "--output", str(tmp_path / "fit")])
    assert status == 0
    import json

    written = json.loads((tmp_path / "fit" / "fit.json").read_text())
    assert abs(written["parameters"]["kappa"]["value"] - 2.0) < 1e-6
    assert abs(written["parameters"]["mobility"]["value"] - 5.0) < 1e-5
    assert written["loss_history"] and (tmp_path / "fit" / "fit.png").stat().st_size > 0


@pytest.mark.parametrize("names,key", [
    (["interface_thickness"], "params"),  # sets the initial fields on the host: no derivative
    (["kappa", "kappa"], "params"),
    (["kappa", "mobility", "rho_s", "c_alpha", "c_beta", "kappa", "mobility"], "params"),
])
def test_unsupported_parameters_are_refused(names, key):
    config = validate_run(composed(["scenario=spinodal", "scenario.shape=[16,16]"]))
    with pytest.raises(ConfigError, match=key):
        make_problem(config, names, [0.0, 1.0], "free_energy")


def test_dendrite_parameters_follow_formulation_and_control():
    """current_density only acts under galvanostatic control; chen2015 is not checked, so not offered."""
    held = validate_run(composed(["scenario=dendrite"])).scenario
    assert "current_density" not in supported_parameters(held)
    controlled = dataclasses.replace(held, control="current")
    assert "current_density" in supported_parameters(controlled)
    assert supported_parameters(dataclasses.replace(held, formulation="chen2015")) == ()


def assert_reverse_mode_matches_forward_mode(problem, evaluate, theta, rtol):
    """dL/dtheta of the loss by reverse mode (the snapshot schedule's backward pass) is J^T r of the
    forward-mode Jacobian. Without ``problem.snapshots``, the re-run rule's count (default_snapshots; the memory
    budget would compile the gradient once more, with XLA's full optimisation)."""
    values, jacobian = evaluate(theta, np.eye(theta.size)[:2])
    observations = np.asarray(values) * 1.01
    if problem.snapshots is None:
        problem = dataclasses.replace(problem, snapshots=default_snapshots(problem.steps))
    loss, gradient = jax.jit(loss_and_gradient(problem, observations), compiler_options=FAST_COMPILE)(theta)
    residual = (np.asarray(values) - observations).ravel()
    expected = np.asarray(jacobian).reshape(residual.size, -1).T @ residual
    assert np.isclose(float(loss), 0.5 * residual @ residual, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gradient)[:2], expected, rtol=rtol)


def test_reverse_mode_gradient_through_the_checkpointed_loop_equals_forward_mode(spinodal):
    """With 3 snapshots (two stored slots) for the 40 steps; the dendrite's check (slow) runs the re-run rule's 2."""
    problem, evaluate, theta = spinodal
    assert_reverse_mode_matches_forward_mode(dataclasses.replace(problem, snapshots=3), evaluate, theta, rtol=1e-9)


@pytest.mark.parametrize("steps, snapshots", [(1, 1), (9, 1), (30, 2), (137, 3), (400, 4), (50, 60)])
def test_snapshot_schedule_reverses_each_step_once_from_its_own_carry_at_griewanks_minimum(steps, snapshots):
    """Run the actions on step numbers: each backward step gets the carry of its own step, in order
    n-1, ..., 0, with at most ``snapshots`` slots, re-running the fewest steps (Griewank's closed form
    ``r n - binom(s + r, s + 1)``, computed independently from the dynamic programme that made the schedule)."""
    from math import comb

    actions, recomputed = snapshot_schedule(steps, snapshots)
    slots, backward, advanced = {0: 0}, [], 0
    for source, start, stop, target in actions:
        assert slots[source] == start  # the slot still holds the carry the action starts from
        advanced += stop - start
        if target >= 0:
            assert 0 < target < snapshots
            slots[target] = stop
        else:
            backward.append(stop)
    assert backward == list(range(steps - 1, -1, -1))
    r = next(r for r in range(steps + 1) if comb(snapshots + r, snapshots) >= steps)
    assert advanced == recomputed == rerun_steps(steps, snapshots) == r * steps - comb(snapshots + r, snapshots + 1)


def test_reverse_mode_peak_memory_stays_within_three_forward_runs_whatever_the_steps():
    """Compiled peaks (XLA's memory analysis, abstract arguments, nothing run; what memory_comparison reports)
    of a 32^2 spinodal: the gradient with one snapshot needs at most 3x the forward run (issue 18), and its
    peak does not grow with the steps (20 and 200) by anything of grid size (the two-level checkpointing
    before stored about 2 sqrt(steps) carries)."""
    from phasefield.memory import peak_bytes

    config = validate_run(composed(["scenario=spinodal", "scenario.shape=[32,32]", "solver.dt=1.0"]))
    simulation = build(config)

    def problem(steps):
        return Problem(simulation, ("kappa", "mobility"), 1.0, np.linspace(0.0, steps, 11), ("free_energy",),
                       snapshots=1)

    theta = jax.ShapeDtypeStruct((2,), np.float64)
    forward = peak_bytes(jax.jit(model_series(problem(20))).lower(theta))
    short, long = (peak_bytes(loss_and_gradient(problem(steps), np.zeros((1, 11))).lower(theta)) for steps in (20, 200))
    assert short <= 3 * forward
    assert long - short <= 64 * (200 - 20)  # tables of a few scalars per step; one 32^2 field is 8 KiB
    with pytest.raises(ConfigError, match="snapshots"):
        Problem(simulation, ("kappa",), 1.0, np.linspace(0.0, 20, 11), ("free_energy",), snapshots=0)


def test_default_snapshots_keep_the_reverse_mode_peak_within_three_forward_runs():
    """200 steps of a 32^2 spinodal: the re-run rule's 3 stored carries take more than 3x the forward run's
    compiled peak (3.08x measured); the default count is lowered until the peak is within 3x (2: 2.63x), and
    the gradient does not depend on the count."""
    config = validate_run(composed(["scenario=spinodal", "scenario.shape=[32,32]", "solver.dt=1.0"]))
    simulation = build(config)
    times = np.linspace(0.0, 200.0, 11)
    rule = Problem(simulation, ("kappa", "mobility"), 1.0, times, ("free_energy",), snapshots=default_snapshots(200))
    theta = np.array([float(config.scenario.kappa), float(config.scenario.mobility)])
    observations = np.asarray(jax.jit(model_series(rule))(theta)) * 1.01
    peaks = memory_comparison(rule, observations)
    assert peaks["snapshots"] == 3 and peaks["gradient_reverse"] > 3 * peaks["forward"]
    chosen = budgeted_snapshots(dataclasses.replace(rule, snapshots=None), observations)
    assert chosen.snapshots < 3 and chosen.gradient_bytes <= 3 * chosen.forward_bytes
    assert chosen.forward_bytes == peaks["forward"]
    loss, gradient = chosen.gradient(theta)
    rule_loss, rule_gradient = loss_and_gradient(rule, observations)(theta)
    assert loss == pytest.approx(float(rule_loss), rel=1e-13)
    np.testing.assert_allclose(gradient, rule_gradient, rtol=1e-12)


def test_observations_are_read_from_a_run_file_or_root_datasets(tmp_path):
    import h5py

    times, energy = np.linspace(0.0, 1.0, 5), np.linspace(2.0, 1.5, 5)
    with h5py.File(tmp_path / "run.h5", "w") as f:
        f["scalars/time"], f["scalars/free_energy"] = times, energy
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["time"], f["free_energy"] = times, energy
    for name in ("run.h5", "plain.h5"):
        read_times, values = read_observations(tmp_path / name, ["free_energy"])
        assert np.array_equal(read_times, times) and np.array_equal(values[0], energy)
    with pytest.raises(ConfigError, match="missing: c_max"):
        read_observations(tmp_path / "run.h5", ["c_max"])


def test_cg_solve_derivatives_are_implicit_and_match_a_dense_solve():
    """pcg (a while_loop) differentiates in both modes as x = A(s)^-1 b(s): through its implicit derivative."""
    from phasefield.operators.krylov import pcg

    rng = np.random.default_rng(0)
    base = rng.standard_normal((6, 6))
    spd, rhs = base @ base.T + 6 * np.eye(6), rng.standard_normal(6)

    def solved(scale, solver):
        matrix, b = spd + scale * np.diag(np.arange(6.0)), rhs * (1 + scale)
        if solver == "dense":
            return jax.numpy.linalg.solve(matrix, b)
        return pcg(lambda x: matrix @ x, b, jax.numpy.ones(6), lambda r: r, 1e-13, 100)[0]

    def derivatives(solver):
        return jax.jit(lambda s: (jax.jacfwd(lambda t: solved(t, solver))(s), jax.jacrev(lambda t: solved(t, solver))(s)))

    for cg, dense in zip(derivatives("cg")(0.3), derivatives("dense")(0.3)):  # forward mode, reverse mode
        np.testing.assert_allclose(cg, dense, rtol=1e-10, atol=1e-12)
