"""Suite-wide setup: float64 (importing phasefield enables it before any test builds arrays), and one
JAX compilation cache per test session, shared by the xdist workers and the CLI subprocesses.

Most of the suite's time is XLA compiling: every ``run()`` builds a fresh simulation, so JAX's in-memory
cache (keyed on the Python function) never sees the same stepper twice, although many tests compile the
same program (same scenario, grid and solver). The persistent cache is keyed on the lowered program
itself, so a second test compiling an identical program loads the first one's executable instead: the
same machine code, so results are unchanged bit for bit. The directory is made fresh for each session
(by the controller, handed to the workers and subprocesses through the environment) and removed at its
end, so nothing carries over between sessions and every session compiles everything at least once.
Set ``PHASEFIELD_TEST_NO_JAX_CACHE=1`` to run without it.

XLA's CPU backend compiles faster in the tests (flags added to ``XLA_FLAGS`` before JAX starts its backend,
inherited by the subprocesses), since compiling dominates the suite:

* ``--xla_backend_optimization_level=0``: LLVM at level 0, about a quarter less CPU time
  (tests/test_dendrite_solid.py, two tests: 60 -> 46 s of CPU); the HLO (fusion) is the same.
* ``--xla_cpu_use_fusion_emitters=false`` (where this jaxlib knows the flag: probed once): XLA's legacy elemental
  emitters for fusions instead of the MLIR fusion emitters. The galvanostatic strip's chunk of steps compiles in 5.3 s instead of 7.8 s, tests/test_dendrite_solid.py
  takes 77 s instead of 112 s, and the whole suite 829 s instead of 1259 s (2 cores, one measurement each). The
  code differs in its rounding: two different programs that compute the same thing in a different order (a model
  and its special case) agree to round-off rather than to the bit (``scenario_runs.assert_round_off``); one
  program gives the same numbers on every run, and the restart, batch and decomposition checks pass unchanged.

Set ``PHASEFIELD_TEST_FULL_OPTIMIZATION=1`` to compile as a run does.
"""
import os
import shutil
import subprocess
import sys
import tempfile

FAST_COMPILE = "--xla_backend_optimization_level=0"
LEGACY_EMITTERS = "--xla_cpu_use_fusion_emitters=false"


def _known_to_xla(flag):
    """Whether this jaxlib's XLA knows ``flag`` (an unknown flag aborts the process that starts the backend, and
    older jaxlibs lack the fusion-emitter one): a probe in a subprocess, once, in the process that sets the flags."""
    probe = "import jax; jax.numpy.zeros(1).block_until_ready()"
    env = {**os.environ, "XLA_FLAGS": flag, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode == 0


if not os.environ.get("PHASEFIELD_TEST_FULL_OPTIMIZATION") and "xla_backend_optimization_level" not in os.environ.get(
        "XLA_FLAGS", ""):  # the xdist workers and the subprocesses inherit the controller's flags
    flags = f"{FAST_COMPILE} {LEGACY_EMITTERS}" if _known_to_xla(LEGACY_EMITTERS) else FAST_COMPILE
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()

import jax  # noqa: E402  (after XLA_FLAGS: the backend reads them when it starts)

import phasefield  # noqa: F401,E402  (enables float64 before any test builds arrays)

_SESSION_DIR = "PHASEFIELD_TEST_JAX_CACHE"
_OWNER = {}


def _enable_cache(path):
    settings = {"jax_compilation_cache_dir": path, "jax_persistent_cache_min_compile_time_secs": 0.0,
                "jax_persistent_cache_min_entry_size_bytes": 0}
    for name, value in settings.items():
        jax.config.update(name, value)
        os.environ[name.upper()] = str(value)  # CLI subprocesses read these when they import jax


def pytest_configure(config):
    if os.environ.get("PHASEFIELD_TEST_NO_JAX_CACHE"):
        return
    path = os.environ.get(_SESSION_DIR)
    if path is None or not os.path.isdir(path):  # the controller (or a run without xdist) owns the folder
        path = tempfile.mkdtemp(prefix="phasefield-jax-cache-")
        os.environ[_SESSION_DIR] = path
        _OWNER["path"] = path
    _enable_cache(path)


def pytest_unconfigure(config):
    if "path" in _OWNER:
        shutil.rmtree(_OWNER.pop("path"), ignore_errors=True)


# The files with the longest runs, longest first (summed test durations of one run of the suite, 2026-12-01).
# With ``--dist loadfile --no-loadscope-reorder`` pytest-xdist hands whole files to the workers in collection
# order, two to each at the start and then one to whichever has fewer than two left (without the second option
# it orders them by their number of tests: tests/test_cli.py's 42 quick cases first, test_decomposition 10th).
# Longest first, the last files handed out are the short ones, and neither worker runs a long file alone at the end.
LONGEST_FIRST = ("test_electrochemistry.py", "test_decomposition.py", "test_swelling.py", "test_dendrite.py",
                 "test_filament.py", "test_elliptic.py", "test_calibrate.py", "test_dendrite_solid.py",
                 "test_devices.py", "test_model_layer.py", "test_post.py", "test_gradient_flows.py",
                 "test_resume.py", "test_mechanics.py", "test_plots.py", "test_batch.py", "test_fracture.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the order inside a file is kept
