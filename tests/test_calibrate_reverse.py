"""Reverse mode through the dendrite and swelling steps (kept apart from tests/test_calibrate.py, whose
40 s budget they would exceed: compiling the checkpointed backward pass of each step takes 20-30 s on
2 busy cores).

The steps' CG solves (potential, Li+ transport, elasticity, the Cahn-Hilliard filter), the dendrite's
Newton iterations on the electrolyte potential and its galvanostatic secant are ``while_loop``s, which
reverse mode cannot pass; they are differentiated implicitly (``lax.custom_linear_solve``,
``lax.custom_root``), so the gradient of a loss by reverse mode through the checkpointed time loop
equals J^T r from forward mode (reversed by the default snapshot schedule: 2 stored carries for the
dendrite's 60 steps, 1 for the swelling's 5 and the held-voltage dendrite's 10). The checks are marked
``slow``: compiling each backward pass takes 25-30 s, outside the 10-minute suite budget
(``python -m pytest -m slow`` runs them). What the suite keeps: reverse mode through the spinodal run, the
implicit derivatives of the CG solve against a dense solve in both modes (tests/test_calibrate.py), and
forward-mode derivatives through every step, whose ``custom_root`` tangents are the same implicit-function
rule reverse mode transposes.
"""
import numpy as np
import pytest

from tests.test_calibrate import (  # noqa: F401
    assert_reverse_mode_matches_forward_mode,
    compiled_problem,
    dendrite,
    swelling,
)


@pytest.mark.slow
def test_reverse_mode_gradient_through_the_galvanostatic_dendrite_equals_forward_mode(dendrite):  # noqa: F811
    assert_reverse_mode_matches_forward_mode(*dendrite, rtol=1e-8)


@pytest.mark.slow
def test_reverse_mode_gradient_through_the_held_voltage_dendrite_equals_forward_mode():
    """control=voltage (the default): the electrolyte potential and the transport solved together
    (solve_balanced_step, a custom_root whose tangent solve is GMRES); reverse mode transposes that GMRES
    (it failed to, with jax's gmres called directly: its tolerance is computed from the right-hand side)."""
    overrides = ["scenario=dendrite", "scenario.size=[24,1]", "scenario.shape=[48,2]", "scenario.random_nuclei=0",
                 "scenario.noise_amplitude=0", "scenario.potential_tolerance=1e-12", "solver.dt=0.05",
                 "solver.adaptive=false"]
    problem = compiled_problem(overrides, ("exchange_current_density", "diffusivity_electrolyte"),
                               np.linspace(0.0, 0.5, 11), ["current_density"])
    assert_reverse_mode_matches_forward_mode(*problem, rtol=1e-8)


@pytest.mark.slow
def test_reverse_mode_gradient_through_the_swelling_step_equals_forward_mode(swelling):  # noqa: F811
    assert_reverse_mode_matches_forward_mode(*swelling, rtol=1e-8)
