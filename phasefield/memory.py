"""How much device memory a computation needs, measured by XLA before anything of grid size exists.

A per-model constant ("field-sized arrays per cell") cannot follow the temporaries of FFTs,
multigrid levels, Krylov vectors and while-loop buffers as models change. Instead,
:func:`compiled_memory_bytes` lowers and compiles the actual jitted function for *abstract*
arguments (:func:`abstract`: shapes and dtypes only) and reads XLA's buffer assignment
(``Compiled.memory_analysis()``):

``argument_size_in_bytes``
    the inputs (for a time-stepping chunk: the carry and the clock). Resident for the whole call.
``output_size_in_bytes``
    the results; XLA allocates them besides the arguments unless an input is donated.
``temp_size_in_bytes``
    XLA's temporary allocation: every intermediate buffer of the program, packed by liveness
    (already a peak over the program, not a sum of all intermediates).
``alias_size_in_bytes``
    outputs that share an argument's buffer (donation, ``input_output_aliases``); counted in both
    arguments and outputs above, so subtracted once.
``generated_code_size_in_bytes``
    the executable; on GPU it includes the constant buffers (arrays the function closed over, e.g.
    Fourier symbols, which JAX embeds as HLO constants) that are loaded into device memory with it.
    The CPU backend reports 0 here, so the constants are also summed from the lowered StableHLO
    (:func:`constant_bytes`, non-splat ``stablehlo.constant`` ops) and the larger of the two is used.

The peak is ``argument + output + temp - alias + max(generated_code, constants)``: everything
XLA holds at once during the call. The ``host_*`` fields (host-offloaded buffers, not device
memory) are left out. Newer jaxlibs also report ``peak_memory_in_bytes``, a liveness-aware peak
over the same buffers that can be a little lower; the sum is the upper bound, so it is what is used.

Not included, because XLA does not see it: memory of compilation itself (host memory; on the CPU
backend that is the same memory, several hundred MiB for the dendrite chunk, most of it not
grid-sized), FFT library plans and workspaces outside XLA's buffers, host copies of fields
(initial conditions, output frames), and the allocator's fragmentation (left to :data:`HEADROOM`).

Backends whose ``memory_analysis()`` is unavailable (returns ``None`` or raises) get the rule
:data:`FALLBACK_FACTOR` x argument bytes (arguments, an output of the same size, and as much
again for temporaries) plus the constants; that is a guess, and a warning is logged saying so.
"""
from __future__ import annotations

import logging
import math
import os
import re

import jax

from phasefield.config import ConfigError

log = logging.getLogger("phasefield")

FALLBACK_FACTOR = 3
"""Without a memory analysis: peak = FALLBACK_FACTOR x argument bytes (inputs, outputs, temporaries)."""

HEADROOM = 0.9
"""Fraction of the device's memory a run may plan to use (the rest: allocator, runtime, fragmentation)."""


def abstract(tree):
    """``tree`` with every array (or anything with ``shape`` and ``dtype``) replaced by a ``jax.ShapeDtypeStruct``.

    Python scalars and other leaves without a shape pass through as they are.
    """
    def leaf(x):
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)
                                        if isinstance(x, jax.Array) else None)
        return x

    return jax.tree.map(leaf, tree)


def lower_abstract(function, *args):
    """``jax.jit(function)`` lowered for the shapes and dtypes of ``args`` (nothing is allocated).

    ``args`` may be arrays or ``ShapeDtypeStruct`` pytrees (:func:`abstract` is applied either way).
    An already-jitted function is lowered itself, not wrapped in a new ``jit``: its compiled program is then
    the one its own calls run (JAX keeps it), so measuring it before a run costs no second compile.
    """
    jitted = function if hasattr(function, "lower") else jax.jit(function)
    return jitted.lower(*abstract(args))


def argument_bytes(args) -> int:
    """Bytes of the array leaves of ``args`` (arrays, ``ShapeDtypeStruct`` or abstract values)."""
    total = 0
    for x in jax.tree.leaves(args):
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            total += math.prod(x.shape) * x.dtype.itemsize
    return total


def _element_bits(element_type) -> int:
    """Bits of an MLIR element type: f64 -> 64, complex<f32> -> 64, i1 -> 8 (stored as a byte)."""
    text = str(element_type)
    bits = int(re.search(r"(\d+)", text).group(1)) if re.search(r"(\d+)", text) else 64
    if text.startswith("complex"):
        bits *= 2
    return max(bits, 8)


def constant_bytes(lowered) -> int:
    """Bytes of the non-splat constants of a ``jax.stages.Lowered`` (closed-over arrays embedded by JAX).

    Splat constants (one value broadcast) are left out: XLA keeps them as a scalar and a broadcast.
    """
    from jax._src.lib.mlir import ir

    total = 0

    def visit(op):
        nonlocal total
        if op.name == "stablehlo.constant":
            tensor = ir.RankedTensorType(op.results[0].type)
            size = math.prod(tensor.shape)
            if size > 1:
                try:
                    splat = ir.DenseElementsAttr(op.attributes["value"]).is_splat
                except Exception:  # an attribute kind the bindings cannot cast: count it
                    splat = False
                if not splat:
                    total += size * _element_bits(tensor.element_type) // 8
        return ir.WalkResult.ADVANCE

    lowered.compiler_ir("stablehlo").operation.walk(visit)
    return total


def peak_bytes(lowered, compiled=None) -> int:
    """The peak device bytes of one call of ``lowered`` (compiled here unless ``compiled`` is given):
    ``argument + output + temp - alias + max(generated_code, constants)``; see the module docstring.

    Without a memory analysis from the backend: ``FALLBACK_FACTOR`` x argument bytes + constants,
    with a logged warning.
    """
    if compiled is None:
        compiled = lowered.compile()
    constants = constant_bytes(lowered)
    try:
        stats = compiled.memory_analysis()
    except Exception:  # some backends raise instead of returning None
        stats = None
    if stats is not None:
        return int(stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
                   - stats.alias_size_in_bytes + max(stats.generated_code_size_in_bytes, constants))
    estimate = FALLBACK_FACTOR * argument_bytes(lowered.in_avals) + constants
    log.warning("%s gives no compiled memory analysis; assuming %d x the argument bytes plus constants (%.3g GiB)",
                jax.default_backend(), FALLBACK_FACTOR, estimate / 2**30)
    return estimate


def compiled_memory_bytes(function, *args) -> int:
    """Peak device bytes of one call ``function(*args)``, from XLA's compiled memory analysis.

    ``args`` are arrays or (better, since nothing of grid size then has to exist)
    ``jax.ShapeDtypeStruct`` pytrees, e.g. ``abstract(jax.eval_shape(make_state))``. See the
    module docstring for the fields used and the fallback when the backend has no analysis.
    """
    return peak_bytes(lower_abstract(function, *args))


def device_memory_bytes() -> int:
    """Memory of the default device: the allocator limit on accelerators, physical RAM on the CPU."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_fits(needed_bytes: int, key: str, value, copies: int = 1, available: int | None = None):
    """Refuse (``ConfigError(key, value, ...)``) a run whose ``copies`` x ``needed_bytes`` exceed
    ``HEADROOM`` (90 %) of the device memory (``available``, default :func:`device_memory_bytes`)."""
    needed = copies * needed_bytes
    if available is None:
        available = device_memory_bytes()
    if needed > HEADROOM * available:
        raise ConfigError(key, value,
                          f"a grid that fits the device: this one needs about {needed / 2**30:.3g} GiB, "
                          f"{jax.default_backend()} has {available / 2**30:.3g} GiB")
