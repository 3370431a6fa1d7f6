"""Benchmark: the potential solve's multigrid CG split into slabs, with and without coarse-level agglomeration.

    python experiments/bench_multigrid_slabs.py                       # 256 x 256 on 4 forced CPU devices
    python experiments/bench_multigrid_slabs.py --shape 32 32 32 --cells 0 1024 4096 16384

:func:`phasefield.operators.elliptic.solve_potential` on a dendrite-like conductivity (a metal layer and finger at
1e6 times the electrolyte's, Dirichlet walls in x, no flux across), a fixed number of CG iterations (tolerance 0),
on one device and split along x with ``AGGLOMERATED_CELLS`` set to each of ``--cells`` (0: every level split, as
before agglomeration). Per case: the best and median wall time of one solve (interleaved repeats), the relative
difference from the one-device solution, and the collectives of the compiled solve (whole program, and in the CG
iteration: the entry computation's largest loop with the V-cycle's sweep loops it calls, each instruction once;
bytes per device of their results). Runs itself in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``: forced CPU devices share the machine's cores, so the times
show the cost of the exchanges' rendezvous, not how a GPU cluster scales.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CALLED = re.compile(r"(?:body|condition|to_apply|calls)=%?([\w.\-]+)|branch_computations=\{([^}]*)\}")


def computations(hlo: str) -> tuple[dict, str]:
    """The compiled program's computations by name (their instruction text), and the entry's name."""
    found, name, lines, entry = {}, None, [], None
    for line in hlo.splitlines():
        if not line.startswith(" ") and line.rstrip().endswith("{"):
            name, lines = re.match(r"^(?:ENTRY )?%?([^\s(]+)", line).group(1), []
            entry = name if line.startswith("ENTRY") else entry
        elif line.startswith("}") and name:
            found[name], name = "\n".join(lines), None
        elif name:
            lines.append(line)
    return found, entry


def loop_text(hlo: str) -> str:
    """The instructions of the entry's largest while loop and of every computation it calls."""
    found, entry = computations(hlo)
    best = ""
    for body in re.findall(r"while\(.*?body=%?([\w.\-]+)", found[entry]):
        seen, todo = set(), [body]
        while todo:
            name = todo.pop()
            if name in seen or name not in found:
                continue
            seen.add(name)
            for single, several in CALLED.findall(found[name]):
                todo.extend([single] if single else [n.strip().lstrip("%") for n in several.split(",")])
        text = "\n".join(found[n] for n in seen)
        best = text if len(text) > len(best) else best
    return best


def measure(shape, iterations, cells_list, repeats):
    import jax
    import numpy as np

    from phasefield.decomposition import Slabs, collective_bytes, collectives
    from phasefield.grid import Boundary, Grid, Side
    from phasefield.operators import elliptic

    grid = Grid(tuple(shape), 1.0)
    walls = Boundary(((Side("dirichlet", 0.0), Side("dirichlet", 1.0)),) + ((Side("neumann"),) * 2,) * (len(shape) - 1))
    cell = np.indices(grid.shape)
    metal = (cell[0] < shape[0] / 8) | ((cell[0] < shape[0] / 2) & (np.abs(cell[1] - shape[1] / 2) < shape[1] / 16))
    rng = np.random.default_rng(0)
    sigma = np.where(metal, 1e6, 1.0) * (1.0 + 0.1 * rng.random(grid.shape))
    source = 1e-3 * rng.standard_normal(grid.shape)
    slabs = Slabs()
    cases = {}
    for name, split, cells in [("one device", None, 0)] + [(f"slabs, {c} cells", slabs, c) for c in cells_list]:
        elliptic.AGGLOMERATED_CELLS = cells  # read when the solve is traced
        place = (lambda u: jax.device_put(u, jax.devices()[0])) if split is None else \
            (lambda u: jax.device_put(u, slabs.sharding(len(shape))))
        args = [place(u) for u in (sigma, source, np.zeros(shape))]
        solve = jax.jit(lambda s, q, g, split=split: elliptic.solve_potential(s, q, grid, walls, g, 0.0, iterations,
                                                                               slabs=split))
        cases[name] = (solve.lower(*args).compile(), args)
    times, solutions = {name: [] for name in cases}, {}
    for _ in range(repeats):  # interleaved: a load on the machine hits every case alike
        for name, (compiled, args) in cases.items():
            jax.block_until_ready(compiled(*args))
            start = time.perf_counter()
            solutions[name] = np.asarray(jax.block_until_ready(compiled(*args))[0])
            times[name].append(time.perf_counter() - start)
    reference = solutions["one device"]
    out = {}
    for name, (compiled, _) in cases.items():
        hlo = compiled.as_text()
        loop = loop_text(hlo)
        out[name] = {"best_ms": 1e3 * min(times[name]), "median_ms": 1e3 * float(np.median(times[name])),
                     "difference": float(np.abs(solutions[name] - reference).max() / np.abs(reference).max()),
                     "program": collectives(hlo), "cg_iteration": collectives(loop),
                     "cg_iteration_bytes": collective_bytes(loop)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20, help="CG iterations per solve")
    parser.add_argument("--cells", type=int, nargs="+", default=[0, 4096, 2**18], help="AGGLOMERATED_CELLS values (2^18: the default)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.shape, args.iterations, args.cells, args.repeats)))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} "
                        f"--xla_force_host_platform_device_count={args.devices}".strip()}
    done = subprocess.run([sys.executable, __file__, "--child", *sys.argv[1:]], env=env, text=True,
                          capture_output=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"solve_potential, {' x '.join(map(str, args.shape))} cells, {args.iterations} CG iterations, "
          f"{args.devices} forced CPU devices")
    print(f"{'case':<22}{'best ms':>9}{'median ms':>11}{'difference':>12}   collective-permutes, all-gathers "
          f"(program / CG iteration), CG iteration bytes (permutes, gathers)")
    for name, r in result.items():
        program, loop, sent = r["program"], r["cg_iteration"], r["cg_iteration_bytes"]
        print(f"{name:<22}{r['best_ms']:>9.1f}{r['median_ms']:>11.1f}{r['difference']:>12.1e}   "
              f"{program['collective-permute']} / {loop['collective-permute']}, "
              f"{program['all-gather']} / {loop['all-gather']}, "
              f"{sent['collective-permute']} B, {sent['all-gather']} B")


if __name__ == "__main__":
    main()
