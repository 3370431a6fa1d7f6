"""Benchmark: one dendrite, dendrite_solid or swelling run split into slabs over 1, 2, 4 ... devices
(``solver.decomposition=slabs``).

    python experiments/bench_scaling.py                                  # dendrite 128 x 64, 1/2/4 forced CPU devices
    python experiments/bench_scaling.py --shape 256 128 --devices 1 2 4 --steps 20
    python experiments/bench_scaling.py --scenario swelling --shape 64 64  # one particle lithiating at 10C
    python experiments/bench_scaling.py --scenario dendrite_solid        # the dendrite with its mechanics
    python experiments/bench_scaling.py --devices 0                      # the devices this process has (GPUs)

Dendrite (and dendrite_solid, with the default mechanics): the reaction formulation at a held voltage with
noise (float64); swelling: one particle in 0.125 um cells at 10C, elastic-plastic (float64). A jitted loop of
``--steps`` steps, compiled once, timed on its second call. Per device count: the cell-update rate (CU/s = cells x
steps / wall), the largest relative difference of the compared fields (dendrite xi, c, phi; dendrite_solid also
the pressure; swelling c, equivalent plastic strain, electrode potential) from the one-device run (and, as the
scale of round-off, that of the one-device run from a start 1 ulp off in xi or c: row ``1 ulp``), and the
collectives of the compiled loop (:func:`phasefield.decomposition.collectives`; bytes per device of their results,
each instruction once:
a collective inside the CG loops counts once, not once per iteration). Each count runs in its own subprocess
with ``XLA_FLAGS=--xla_force_host_platform_device_count=N``; forced CPU devices share the machine's cores,
so on a CPU this shows what the split run exchanges and that it gives the same answer, not how it scales.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


FIELDS = {"dendrite": ("xi", "c", "phi"), "dendrite_solid": ("xi", "c", "phi", "pressure"),
          "swelling": ("c", "equivalent_plastic_strain", "voltage")}
DT = {"dendrite": 0.02, "dendrite_solid": 0.02, "swelling": 2.0}


def scenario(name, shape):
    """A small dendrite: 0.25 um cells, the electrode at 1/16 of x, one nucleus, noise on, -0.2 V; or a swelling
    cell of 0.125 um cells, one particle of a quarter of the cell's smaller side in radius, no collector, 10C."""
    if name == "swelling":
        size = [n / 8 for n in shape]
        return {"name": "swelling", "size": size, "shape": list(shape), "random_particles": 0,
                "particles": [[size[0] / 2 - 0.25, *[s / 2 for s in size[1:]], min(size) / 4]],
                "collector_thickness": 0.0, "separator_thickness": 0.5, "interface_thickness": 0.2,
                "gradient_length": 0.1, "c_rate": 10.0}
    return {"name": name, "size": [n / 4 for n in shape], "shape": list(shape),
            "electrode_position": shape[0] / 16, "short_circuit_gap": 1.0, "nuclei": [[shape[1] / 8, 1.0]],
            "voltage": -0.2, "noise_amplitude": 0.5}


def measure(name, shape, steps, dt, decomposition):
    """Compile and time ``steps`` steps; returns the rate, the final fields and the compiled loop's collectives."""
    import jax
    import numpy as np

    from phasefield.config import validate_run
    from phasefield.decomposition import collective_bytes, collectives
    from phasefield.runner import build, device_parameters, initial_carry

    fields, perturbed = FIELDS[name], FIELDS[name][0]
    simulation = build(validate_run({"scenario": scenario(name, shape),
                                     "solver": {"dt": dt, "decomposition": decomposition}}))
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    loop = jax.jit(lambda c: jax.lax.fori_loop(0, steps, lambda i, c: simulation.stepper.step(params, c, dt), c))
    compiled = loop.lower(carry).compile()
    jax.block_until_ready(compiled(carry))
    start = time.perf_counter()
    final = jax.block_until_ready(compiled(carry))
    wall = time.perf_counter() - start
    hlo = compiled.as_text()
    result = {"devices": jax.device_count(), "wall_s": wall, "cu_per_s": float(np.prod(shape)) * steps / wall,
              "fields": {k: np.asarray(final["state"][k]).tolist() for k in fields},
              "collectives": collectives(hlo), "bytes": collective_bytes(hlo)}
    if decomposition == "none":  # the one-device run's own sensitivity: from a start 1 ulp off in xi (c)
        bumped = compiled({**carry, "state": {**carry["state"],
                                              perturbed: jax.numpy.nextafter(carry["state"][perturbed], 2.0)}})
        result["ulp"] = {k: np.asarray(bumped["state"][k]).tolist() for k in fields}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=tuple(FIELDS), default="dendrite")
    parser.add_argument("--shape", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4],
                        help="forced CPU device counts; 0: this process's own devices, one run split over all")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dt", type=float, default=None, help="step, s (default: dendrite 0.02, swelling 2)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dt = DT[args.scenario] if args.dt is None else args.dt
    if args.child is not None:
        print(json.dumps(measure(args.scenario, args.shape, args.steps, args.dt, "slabs" if args.child > 1 else "none")))
        return
    results = []
    for count in args.devices:
        if count == 0:
            import jax
            results.append(measure(args.scenario, args.shape, args.steps, args.dt,
                                   "slabs" if jax.device_count() > 1 else "none"))
            continue
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={count}".strip()}
        done = subprocess.run([sys.executable, __file__, "--child", str(count), "--scenario", args.scenario,
                               "--shape", *map(str, args.shape),
                               "--steps", str(args.steps), "--dt", str(args.dt)], env=env, text=True,
                              capture_output=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    import numpy as np

    reference = results[0]["fields"]
    fields = FIELDS[args.scenario]
    print(f"{args.scenario} {'x'.join(map(str, args.shape))}, {args.steps} steps of {args.dt} s, float64")
    print(f"{'devices':>7} {'CU/s':>10} {'rel diff ' + ' / '.join(fields):>26} {'permutes':>8} {'permute B':>10} "
          f"{'a2a':>4} {'a2a B':>7} {'gathers':>7} {'gather B':>8} {'reduces':>7}")
    if "ulp" in results[0]:  # a row for the one-device run from a start 1 ulp off: its round-off sensitivity
        results.insert(1, {**results[0], "devices": "1 ulp", "fields": results[0]["ulp"]})
    for result in results:
        diff = [float(np.abs(np.subtract(result["fields"][k], reference[k])).max() / np.abs(reference[k]).max())
                for k in fields]
        counts, sent = result["collectives"], result["bytes"]
        print(f"{result['devices']:>7} {result['cu_per_s']:>10.3g} {' / '.join(f'{d:.1e}' for d in diff):>26} "
              f"{counts['collective-permute']:>8} {sent['collective-permute']:>10} {counts['all-to-all']:>4} "
              f"{sent['all-to-all']:>7} {counts['all-gather']:>7} {sent['all-gather']:>8} {counts['all-reduce']:>7}")


if __name__ == "__main__":
    main()
