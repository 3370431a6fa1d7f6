"""phasefield: GPU-accelerated phase-field solver for lithium batteries, on JAX.

float64 is enabled at import: validation runs in double precision, and each run chooses
its working precision explicitly (``solver.precision``), so enabling it costs nothing
for float32 runs.
"""
import jax

jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
