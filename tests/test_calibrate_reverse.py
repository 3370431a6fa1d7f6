"""Reverse mode through the dendrite and swelling steps (kept apart from tests/test_calibrate.py, whose
40 s budget they would exceed: compiling the checkpointed backward pass of each step takes 20-30 s on
2 busy cores).

The steps' CG solves (potential, Li+ transport, elasticity, the Cahn-Hilliard filter), the dendrite's
Newton iterations on the electrolyte potential and its galvanostatic secant are ``while_loop``s, which
reverse mode cannot pass; they are differentiated implicitly (``lax.custom_linear_solve``,
``lax.custom_root``), so the gradient of a loss by reverse mode through the checkpointed time loop
equals J^T r from forward mode. The dendrite's is tested here (its Newton and secant roots are custom
code); the swelling step's loops are CG solves only, whose implicit derivatives test_calibrate.py checks
against a dense solve; its reverse-vs-forward check costs another 30 s of compiling, so it is marked
``slow`` (outside the suite's budget; ``python -m pytest -m slow`` runs it).
"""
import pytest

from tests.test_calibrate import assert_reverse_mode_matches_forward_mode, dendrite, swelling  # noqa: F401


def test_reverse_mode_gradient_through_the_galvanostatic_dendrite_equals_forward_mode(dendrite):  # noqa: F811
    assert_reverse_mode_matches_forward_mode(*dendrite, rtol=1e-8)


@pytest.mark.slow
def test_reverse_mode_gradient_through_the_swelling_step_equals_forward_mode(swelling):  # noqa: F811
    assert_reverse_mode_matches_forward_mode(*swelling, rtol=1e-8)
