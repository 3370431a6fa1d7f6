"""Weak scaling on paper: E(P) = t_compute / (t_compute + t_comm) of one step split into slabs over P = 1, 2, 4, 8
GPUs, from the compiled programs (nothing is run at the target size, no GPU is used).

    python experiments/scaling_model.py     # spinodal SBDF2 and explicit 4096^2, SBDF2 256^3, dendrite 4096^2
    python experiments/scaling_model.py --cases spinodal2d --devices 1 2 --cells 256

Cases (per device 4096^2 in 2D, the global grid (P 4096) x 4096; 256^3 in 3D, (P 256) x 256 x 256; float64):
``spinodal2d`` (periodic, SBDF2, dt 0.1), ``spinodal2d_explicit`` (the same, the explicit stencil scheme: no
transform, only halo exchanges; its dt, far above its stability limit at this size, changes no cost), ``spinodal3d``
(no-flux cube, SBDF2), ``dendrite2d`` (reaction formulation,
held voltage -0.2 V, noise on, its default solver: Newton on the charge balance, each iteration a multigrid CG
solve of the potential and one of the implicit Li+ transport; bench_scaling's scenario scaled up, 0.25 um cells),
``filament2d`` (the default 4 um flaw in a 32 um-wide slab per device's ``n_y``, current control at 10 mA/cm^2; its
loops' trips from a 64^2 probe; at 4096^2 per device P = 1-8 compile in 3.5 minutes, 9.9 GB peak),
``filament2d_network`` (the same with ``ionic_field``: the electrolyte network's unit-field solves too; 6.5 minutes
and 18.9 GB peak at 4096^2 per device).

Method, per case and P (each in its own subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=P``):
one step, ``jax.jit(step).lower(abstract carry with its slab shardings).compile()`` for the CPU; the optimised HLO
text is read computation by computation. A computation's multiplicity (how often it runs per step) is its
caller's times the trip count of the while loop whose body it is: XLA's ``known_trip_count`` where it has one
(fixed smoothing sweeps, RNG rounds), else the mean trip count of that loop (keyed by its op name) measured in a
short real run at ``--probe`` cells (one device, ``--probe-steps`` steps, counted by a wrapped
``jax.lax.while_loop``); both branches of a conditional count (an upper bound).

Communication per step and device: each collective instruction times its multiplicity; bytes are those of its
result (as :func:`phasefield.decomposition.collective_bytes`). Link model (stated, not measured): every
collective costs a latency of ``--latency`` (10 us) plus its bytes over NVLink 4 (H100/H200 HGX, 450 GB/s per
direction per GPU): a collective-permute (halo) sends and receives its result bytes at once; an all-to-all or
all-gather moves (P-1)/P of its result through the link; an all-reduce (ring) 2 (P-1)/P. P <= 8 is one node.

Compute per step and device: the HBM bytes of the one-device step at the per-device size, bandwidth-bound, over
the H200's measured copy bandwidth 4.3 TB/s (shared/performance-notes.md). Bytes per instruction: its operands'
plus its result's (a fusion reads its operands once and writes its result), parameters, tuples, bitcasts and
control flow free, times the multiplicity. With every multiplicity 1 this is what XLA's own cost analysis
(``compiled.cost_analysis()["bytes accessed"]``, which counts a loop body once) gives: the table's ``xla`` column
shows that figure next to ours with loops once, as a check of the reading. The fusion is the CPU
backend's, not the GPU's (which may fuse differently), so t_compute is an estimate, not a GPU measurement; no GPU
has been lent for this. No overlap of communication and compute is assumed (a conservative bound), and the
partitioned per-device program is taken to touch as many bytes as the one-device program on its slab (the
agglomerated coarse multigrid levels, whole on every device, are counted in t_comm only: the redundant work of the
levels of at most ``elliptic.AGGLOMERATED_CELLS`` cells, ~2 % of a V-cycle at 4096^2 per device, is left out).
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from phasefield.decomposition import COLLECTIVES, array_bytes  # noqa: E402  (HLO shapes' bytes, as in the tests)
HBM_BYTES_PER_S = 4.3e12  # H200, measured device-to-device copy (read plus written)
NVLINK_BYTES_PER_S = 450e9  # NVLink 4, per direction per GPU
CASES = ("spinodal2d", "spinodal2d_explicit", "spinodal3d", "dendrite2d", "filament2d", "filament2d_network")
DT = {"spinodal2d": 0.1, "spinodal2d_explicit": 1e-4, "spinodal3d": 0.1, "dendrite2d": 0.02, "filament2d": 0.1,
      "filament2d_network": 0.1}
FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while", "call", "conditional",
        "after-all", "partition-id", "replica-id", "opt-barrier"}


def config(case, shape, decomposition):
    if case.startswith("spinodal"):
        scenario = {"name": "spinodal", "variant": "cube" if case.endswith("3d") else "a", "shape": list(shape)}
        solver = {"scheme": "explicit" if case.endswith("explicit") else "sbdf2", "dt": DT[case]}
    elif case.startswith("filament"):  # the default flaw and slab (32 um across each device's n_y), current control
        scenario = {"name": "filament", "size": [32.0 * shape[0] / shape[1], 32.0], "shape": list(shape),
                    "control": "current", "current_density": 10.0, "ionic_field": case.endswith("network")}
        solver = {"dt": DT[case]}
    else:
        scenario = {"name": "dendrite", "size": [n / 4 for n in shape], "shape": list(shape),
                    "electrode_position": shape[0] / 16, "short_circuit_gap": 1.0, "nuclei": [[shape[1] / 8, 1.0]],
                    "voltage": -0.2, "noise_amplitude": 0.5}
        solver = {"dt": DT[case]}
    return {"scenario": scenario, "solver": {**solver, "decomposition": decomposition}}


def per_device_shape(case, cells, devices):
    return [devices * cells, cells, cells] if case.endswith("3d") else [devices * cells, cells]


# ---------------------------------------------------------------- reading the optimised HLO text
_HEADER = re.compile(r"^(?:ENTRY )?%(\S+) .*\{$")
_LINE = re.compile(r"^\s*(?:ROOT )?%(\S+) = (.*?) ([\w-]+)\((.*)$")
def operands(rest):
    """The text of an instruction's operand list (up to its closing parenthesis)."""
    depth = 1
    for i, ch in enumerate(rest):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0:
            return rest[:i]
    return rest


def read_hlo(hlo):
    """Per computation: its HBM bytes, collectives ``[(kind, bytes)]`` and calls ``[(callee, kind, trips, name)]``."""
    computations, entry, current, sizes = {}, None, None, {}
    for line in hlo.splitlines():
        header = _HEADER.match(line)
        if header:
            current = computations[header.group(1)] = {"bytes": 0, "collectives": [], "calls": []}
            entry = header.group(1) if line.startswith("ENTRY") else entry
            continue
        found = _LINE.match(line) if current is not None else None
        if not found:
            continue
        result, shape, op, rest = found.groups()
        sizes[result] = array_bytes(shape)
        kind = op.removesuffix("-start")
        if kind in COLLECTIVES:
            current["collectives"].append((kind, array_bytes(shape)))
        elif op.endswith("-done") or op in FREE:
            pass
        else:
            current["bytes"] += sizes[result] + sum(sizes.get(name, 0) for name in
                                                    re.findall(r"%([^\s,)]+)", operands(rest)))
        name = re.search(r'op_name="(?:jit\([^)]*\)/)?([^"]*)"', line)
        name = name.group(1) if name else ""
        if op == "while":
            trips = re.search(r'known_trip_count":\{"n":"(\d+)"', line)
            body = re.search(r"body=%([^,\s]+)", line).group(1)
            condition = re.search(r"condition=%([^,\s]+)", line).group(1)
            current["calls"].append((body, "body", int(trips.group(1)) if trips else None, name))
            current["calls"].append((condition, "condition", int(trips.group(1)) if trips else None, name))
        elif op == "conditional":
            for callee in re.findall(r"%([\w.-]+)", re.search(r"(branch_computations=\{[^}]*\}|true_computation="
                                                              r"\S+ false_computation=\S+)", line).group(1)):
                current["calls"].append((callee, "branch", 1, name))
        elif op == "call":
            current["calls"].append((re.search(r"to_apply=%([^,\s]+)", line).group(1), "call", 1, name))
    return computations, entry


def tally(hlo, trips_by_name):
    """Per step (one device): HBM bytes, collectives {kind: [count, bytes]}, the same with every loop once, and the
    op names of loops with neither a known nor a measured trip count (taken once)."""
    computations, entry = read_hlo(hlo)
    unknown = set()

    def walk(name, times, once):
        comp = computations[name]
        totals = {"bytes": comp["bytes"] * times, "once": comp["bytes"] * once,
                  "collectives": collections.defaultdict(lambda: [0.0, 0.0])}
        for kind, size in comp["collectives"]:
            totals["collectives"][kind][0] += times
            totals["collectives"][kind][1] += times * size
        for callee, role, trips, loop in comp["calls"]:
            if trips is None:
                trips = trips_by_name.get(loop)
                if trips is None:
                    unknown.add(loop)
                    trips = 1.0
            factor = trips + 1 if role == "condition" else trips
            inner = walk(callee, times * factor, once)
            totals["bytes"] += inner["bytes"]
            totals["once"] += inner["once"]
            for kind, (count, size) in inner["collectives"].items():
                totals["collectives"][kind][0] += count
                totals["collectives"][kind][1] += size
        return totals

    totals = walk(entry, 1.0, 1.0)
    return {"bytes": totals["bytes"], "bytes_loops_once": totals["once"],
            "collectives": {k: v for k, v in totals["collectives"].items()}, "unknown_loops": sorted(unknown)}


# ---------------------------------------------------------------- the subprocesses
def build_step(case, shape, decomposition):
    import jax

    from phasefield.config import validate_run
    from phasefield.runner import build, device_parameters

    simulation = build(validate_run(config(case, shape, decomposition)))
    params = device_parameters(simulation.parameters, "float64")
    dt = DT[case]
    return simulation, params, jax.jit(lambda p, c: simulation.stepper.step(p, c, dt))


def abstract_sharded_carry(simulation, params, shape, devices):
    """The carry's shapes with the layout :func:`phasefield.decomposition.laid_out` pins (nothing allocated)."""
    import jax

    from phasefield.decomposition import Slabs
    from phasefield.runner import abstract_carry

    carry = abstract_carry(simulation, params)
    if devices == 1:
        return carry
    slabs, shape = Slabs(), tuple(shape)

    def place(leaf):
        field = leaf.ndim >= len(shape) and leaf.shape[leaf.ndim - len(shape):] == shape
        sharding = slabs.sharding(leaf.ndim, leaf.ndim - len(shape) if field else None)
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)

    return jax.tree_util.tree_map(place, carry)


def compiled_step(case, cells, devices):
    """One step at the target size, compiled only: the HLO text and XLA's bytes accessed."""
    import jax

    jax.config.update("jax_enable_x64", True)
    shape = per_device_shape(case, cells, devices)
    simulation, params, step = build_step(case, shape, "slabs" if devices > 1 else "none")
    carry = abstract_sharded_carry(simulation, params, shape, devices)
    compiled = step.lower(params, carry).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return {"hlo": compiled.as_text(), "xla_bytes": float(analysis.get("bytes accessed", float("nan")))}


def loop_trips(case, cells, steps):
    """Per data-dependent while loop (by op name): its mean trip count per run and its runs per step, over ``steps``
    real steps of the 2D case on one device at ``cells`` per axis (``jax.lax.while_loop`` wrapped to count)."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    seen, ids = collections.defaultdict(list), itertools.count()
    original = jax.lax.while_loop

    def counted(cond, body, init):
        """``while_loop`` that reports its trip count from a callback in the named scope ``counted_loop_<id>``."""
        loop = next(ids)
        state, count = original(lambda s: cond(s[0]), lambda s: (body(s[0]), s[1] + 1), (init, jnp.int32(0)))
        with jax.named_scope(f"counted_loop_{loop}"):
            jax.debug.callback(lambda n: seen[loop].append(int(n)), count)
        return state

    jax.lax.while_loop = counted
    try:
        from phasefield.runner import initial_carry

        simulation, params, step = build_step(case, per_device_shape(case, cells, 1), "none")
        carry = initial_carry(simulation, params)
        compiled = step.lower(params, carry).compile()
        for _ in range(steps):
            carry = jax.block_until_ready(compiled(params, carry))
    finally:
        jax.lax.while_loop = original
    hlo, loops = compiled.as_text(), collections.defaultdict(list)
    for loop, runs in seen.items():  # the loop's op name: the callback's scope, counted_loop_<id> -> while
        for prefix in set(re.findall(r'op_name="(?:jit\([^)]*\)/)?([^"]*?)/?counted_loop_%d/' % loop, hlo)):
            loops[f"{prefix}/while" if prefix else "while"] += runs
    return {name: {"trips": sum(n) / len(n), "runs": len(n) / steps} for name, n in loops.items()}


def child(args):
    if args.child == "trips":
        print(json.dumps(loop_trips(args.case, args.probe, args.probe_steps)))
    else:
        print(json.dumps(compiled_step(args.case, args.cells, int(args.child))))


def subprocess_json(argv, devices):
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()}
    done = subprocess.run([sys.executable, __file__, *argv], env=env, text=True, capture_output=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the model
def comm_seconds(collectives, devices, latency):
    """Seconds per step of ``{kind: [count, bytes]}`` on the link model of the module docstring."""
    share = {"collective-permute": 1.0, "all-to-all": (devices - 1) / devices, "all-gather": (devices - 1) / devices,
             "all-reduce": 2.0 * (devices - 1) / devices, "reduce-scatter": (devices - 1) / devices}
    return sum(count * latency + size * share[kind] / NVLINK_BYTES_PER_S for kind, (count, size) in collectives.items())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--cells", type=int, default=None, help="cells per axis per device (2D 4096, 3D 256)")
    parser.add_argument("--latency", type=float, default=10e-6, help="seconds per collective")
    parser.add_argument("--probe", type=int, default=256, help="cells per axis of the trip-count run (2D)")
    parser.add_argument("--probe-steps", type=int, default=5)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.cells = args.cells or (256 if args.case.endswith("3d") else 4096)
        return child(args)
    print(f"link: NVLink 4 {NVLINK_BYTES_PER_S / 1e9:.0f} GB/s per direction, {args.latency * 1e6:.0f} us per "
          f"collective; compute: HBM bytes / {HBM_BYTES_PER_S / 1e12:.1f} TB/s (H200 copy); no overlap")
    print(f"{'case':<19} {'P':>2} {'cells/dev':>10} {'coll/step':>9} {'MB/step':>8} {'t_comm ms':>9} "
          f"{'t_comp ms':>9} {'E(P)':>6}  {'HBM GB':>7} {'once/xla':>9}")
    for case in args.cases:
        cells = args.cells or (256 if case.endswith("3d") else 4096)
        trips = {}
        if case.startswith(("dendrite", "filament")):
            probe = subprocess_json(["--child", "trips", "--case", case, "--probe", str(args.probe),
                                     "--probe-steps", str(args.probe_steps)], 1)
            trips = {name: loop["trips"] for name, loop in probe.items()}
            print(f"# {case}: mean trips per run of each data-dependent loop ({args.probe}^2, "
                  f"{args.probe_steps} steps, one device): "
                  + ", ".join(f"{name}: {loop['trips']:.1f} x {loop['runs']:.1f} runs/step"
                              for name, loop in sorted(probe.items())))
        single = subprocess_json(["--child", "1", "--case", case, "--cells", str(cells)], 1)
        compute = tally(single["hlo"], trips)
        t_compute = compute["bytes"] / HBM_BYTES_PER_S
        if compute["unknown_loops"]:
            print(f"# {case}: loops without a trip count, taken once: {compute['unknown_loops']}")
        for devices in args.devices:
            if devices == 1:
                collectives = {}
            else:
                split = subprocess_json(["--child", str(devices), "--case", case, "--cells", str(cells)], devices)
                counted = tally(split["hlo"], trips)
                collectives = counted["collectives"]
                if counted["unknown_loops"]:
                    print(f"# {case} P={devices}: loops without a trip count, taken once: {counted['unknown_loops']}")
            t_comm = comm_seconds(collectives, devices, args.latency)
            count = sum(c for c, _ in collectives.values())
            size = sum(s for _, s in collectives.values())
            per_device = cells ** (3 if case.endswith("3d") else 2)
            print(f"{case:<19} {devices:>2} {per_device:>10} {count:>9.0f} {size / 1e6:>8.2f} {t_comm * 1e3:>9.3f} "
                  f"{t_compute * 1e3:>9.3f} {t_compute / (t_compute + t_comm):>6.3f}  {compute['bytes'] / 1e9:>7.2f} "
                  f"{compute['bytes_loops_once'] / single['xla_bytes']:>9.3f}", flush=True)
            if collectives:
                print("#   " + ", ".join(f"{kind} {count:.0f} x, {size / 1e6:.2f} MB"
                                      for kind, (count, size) in sorted(collectives.items())))


if __name__ == "__main__":
    main()
