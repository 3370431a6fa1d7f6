"""Reverse mode through the dendrite step (kept apart from tests/test_calibrate.py, whose 40 s budget it
would exceed: compiling the checkpointed backward pass of this step takes about 20 s on 2 busy cores).

The step's CG solves (potential, Li+ transport), the Newton iterations of the electrolyte potential and
the galvanostatic secant are ``while_loop``s, which reverse mode cannot pass; they are differentiated
implicitly (``lax.custom_linear_solve``, ``lax.custom_root``), so the gradient of a loss by reverse mode
through the checkpointed time loop equals J^T r from forward mode.
"""
from tests.test_calibrate import assert_reverse_mode_matches_forward_mode, dendrite  # noqa: F401 (fixture)


def test_reverse_mode_gradient_through_the_galvanostatic_dendrite_equals_forward_mode(dendrite):  # noqa: F811
    assert_reverse_mode_matches_forward_mode(*dendrite, rtol=1e-8)
