"""Benchmark: PFHub 1a to t = 100, every scheme and precision, side by side with a bare loop and FiPy.

    python experiments/bench_spinodal.py                      # 200^2 and 1024^2, FiPy GMRES cases
    python experiments/bench_spinodal.py --sizes 200 --fipy none --quick
    python experiments/bench_spinodal.py --devices 4 --sizes 256 1024    # 1 vs 4 forced CPU devices

For each grid: a converged reference (SBDF2, float64, small dt) gives F(1), F(10), F(100); each
case reports the max relative free-energy error at those times, the stepping wall time to t = 100
(compilation excluded; records only at t = 1, 10, 100, i.e. output off), steps, cell-updates per
second (CU/s = cells x steps / wall) and the effective memory bandwidth CU/s x minimal bytes per
cell-update (explicit: read c + write c; semi-implicit: ~13 field passes, shared/performance-notes.md).
A bare jitted loop (SBDF2, written here with no package structure) measures the package's overhead.
FiPy runs the same problem its documented way (experiments/fipy_spinodal.py) under a separate
interpreter (``--fipy-python``; FiPy is never a dependency of phasefield). Results also go to JSON.

``--devices N``: the steady rates (explicit dt 0.0025 and SBDF2 dt 0.1, float64, PFHub 1a) on one CPU device
and split into slabs over N forced CPU devices (``solver.decomposition=slabs``,
``XLA_FLAGS=--xla_force_host_platform_device_count=N``, each count in its own subprocess), side by side, with
the collectives of the compiled chunk. Forced CPU devices share the machine's cores: this shows that the
decomposed run works and what it exchanges, not how it scales.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import phasefield  # noqa: F401  (float64)
from phasefield.config import validate_run
from phasefield.integrate import empty_records, make_advance
from phasefield.runner import build, device_parameters, initial_carry, stable_dt, time_control
from phasefield.models import spinodal

RECORDS = (1.0, 10.0, 100.0)
CPU_DRAM_GBS = 24.5  # copy bandwidth of the CI-class CPU (performance-notes.md)


def configure(n, scheme, dt, precision, stabilization=0.0, ndim=2, decomposition="none"):
    """PFHub 1a on n^2 cells (ndim 2), or the no-flux cube variant on n^3 cells (ndim 3)."""
    variant = "a" if ndim == 2 else "cube"
    return validate_run({
        "scenario": {"name": "spinodal", "variant": variant, "shape": [n] * ndim, "t_end": RECORDS[-1]},
        "solver": {"scheme": scheme, "dt": dt, "precision": precision, "stabilization": stabilization,
                   "decomposition": decomposition},
        "output": {},
    })


def package_run(n, scheme, dt, precision, stabilization=0.0, t_end=RECORDS[-1]):
    """Warm-timed package run: returns (wall seconds, steps, energies at the record times)."""
    config = configure(n, scheme, dt, precision, stabilization)
    simulation = build(config)
    stepper = simulation.stepper
    params = device_parameters(simulation.parameters, precision)
    advance = make_advance(stepper, time_control(config.solver, stable_dt(simulation)), simulation.diagnostics,
                           t_end)
    energy = jax.jit(lambda carry: simulation.diagnostics(params, carry)["free_energy"])
    carry0 = initial_carry(simulation, params)
    empty = empty_records(simulation.diagnostics, params, carry0)
    clock0 = {"t": 0.0, "step": 0, "dt": dt}
    warm, _, _, _ = advance(params, carry0, clock0, min(5 * dt, t_end), empty)  # compile
    jax.block_until_ready(warm)
    energy(warm).block_until_ready()
    carry, clock, energies = carry0, clock0, {}
    start = time.perf_counter()
    for t_stop in [t for t in RECORDS if t <= t_end]:
        carry, clock, finite, _ = advance(params, carry, clock, t_stop, empty)
        energies[t_stop] = float(energy(carry))  # host sync: part of the timed work
    wall = time.perf_counter() - start
    assert bool(finite), f"{scheme} dt={dt} {precision} went non-finite"
    return wall, int(clock["step"]), energies


def steady_rate(n, scheme, dt, precision, seconds=1.0, ndim=2, max_steps=100_000, decomposition="none"):
    """Compile time and steady cell-updates per second of fixed-dt steps on n^ndim cells.

    The first call (compilation plus 2 steps) is timed apart; a 10-step probe then sizes a timed chunk
    of about ``seconds`` (10 to ``max_steps`` steps). No records are written inside the chunk.
    Returns a dict: compile_s, steps, wall_s, us_per_step, cu_per_s, gb_per_s (CU/s x minimal bytes
    per cell-update of the scheme, :func:`bytes_per_update`); with ``decomposition="slabs"`` also the
    collectives of the compiled chunk (:func:`phasefield.decomposition.collectives`).
    """
    config = configure(n, scheme, dt, precision, ndim=ndim, decomposition=decomposition)
    simulation = build(config)
    params = device_parameters(simulation.parameters, precision)
    control = time_control(config.solver, stable_dt(simulation))
    advance = make_advance(simulation.stepper, control, simulation.diagnostics, 1e30)
    carry = initial_carry(simulation, params)
    empty = empty_records(simulation.diagnostics, params, carry)
    clock = {"t": 0.0, "step": 0, "dt": dt}

    def steps(carry, clock, count):
        start = time.perf_counter()
        carry, clock, finite, _ = advance(params, carry, clock, 1e30, empty, count)
        jax.block_until_ready(carry)
        assert bool(finite), f"{scheme} dt={dt} {precision} went non-finite"
        return carry, clock, time.perf_counter() - start

    carry, clock, compile_s = steps(carry, clock, 2)
    carry, clock, probe = steps(carry, clock, 10)
    count = int(min(max_steps, max(10, seconds / (probe / 10))))
    carry, clock, wall = steps(carry, clock, count)
    cu = n**ndim * count / wall
    result = {"n": n, "ndim": ndim, "scheme": scheme, "dt": dt, "precision": precision, "compile_s": compile_s,
              "steps": count, "wall_s": wall, "us_per_step": wall / count * 1e6, "cu_per_s": cu,
              "gb_per_s": cu * bytes_per_update(scheme, precision) / 1e9}
    if decomposition != "none":
        from phasefield.decomposition import collective_bytes, collectives

        from phasefield.integrate import device_clock

        hlo = advance.compiled.lower(params, carry, device_clock(clock), jnp.asarray(1e30), empty,
                                     jnp.asarray(count), advance.timing).compile().as_text()
        result["collectives"] = {k: v for k, v in collectives(hlo).items() if v}
        result["collective_bytes"] = {k: v for k, v in collective_bytes(hlo).items() if v}
    return result


DECOMPOSED_CASES = (("explicit", 0.0025), ("sbdf2", 0.1))


def decomposed_worker(sizes, seconds):
    """This process's rates (one line of JSON): slabs over its devices, or one device."""
    decomposition = "slabs" if jax.device_count() > 1 else "none"
    rows = [steady_rate(n, scheme, dt, "float64", seconds, decomposition=decomposition)
            for n in sizes for scheme, dt in DECOMPOSED_CASES]
    print(json.dumps({"devices": jax.device_count(), "rows": rows}))


def compare_devices(devices, sizes, seconds):
    """Rates on 1 and on ``devices`` forced CPU devices (a subprocess each), printed side by side."""
    results = {}
    for count in (1, devices):
        env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} "
                                         f"--xla_force_host_platform_device_count={count}".strip())
        args = [sys.executable, __file__, "--worker", "--seconds", str(seconds), "--sizes", *map(str, sizes)]
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{count} device(s) failed:\n{done.stderr[-3000:]}")
        results[count] = json.loads(done.stdout.strip().splitlines()[-1])["rows"]
    print(f"PFHub 1a float64, steady rates; 1 CPU device vs {devices} forced CPU devices (slabs along x)")
    print(f"{'case':24s} {'CU/s 1':>10s} {'GB/s 1':>7s} {f'CU/s {devices}':>10s} {f'GB/s {devices}':>7s} "
          f"{'ratio':>6s}  collectives of the chunk program: count, bytes per device")
    for one, split in zip(results[1], results[devices]):
        print(f"{one['n']}^2 {one['scheme']:8s} dt={one['dt']:<7g} {one['cu_per_s']:10.3g} {one['gb_per_s']:7.2f} "
              f"{split['cu_per_s']:10.3g} {split['gb_per_s']:7.2f} {split['cu_per_s'] / one['cu_per_s']:6.2f}  "
              + ", ".join(f"{k} {v} {split['collective_bytes'][k]} B" for k, v in split.get("collectives", {}).items()))
    return results


def bare_sbdf2(n, dt, precision):
    """The same SBDF2 scheme as a bare jitted loop: constant dt, precomputed denominator, no structure."""
    dtype = jnp.dtype(precision)
    params = spinodal.Config()
    c0 = jnp.asarray(spinodal.initial_condition(spinodal.Grid((n, n), 1.0), params), dtype)
    k = np.arange(n)
    lam1 = -4.0 * np.sin(np.pi * k / n) ** 2
    lam = jnp.asarray(lam1[:, None] + lam1[None, : n // 2 + 1], dtype)
    M, kappa = params.mobility, params.kappa

    def fp(c):
        return 2 * params.rho_s * (c - 0.3) * (0.7 - c) * (1.0 - 2 * c)

    first_denominator = 1 / dt + M * kappa * lam**2
    denominator = 1.5 / dt + M * kappa * lam**2

    @jax.jit
    def first_step(c):
        c_hat, n_hat = jnp.fft.rfft2(c), M * lam * jnp.fft.rfft2(fp(c))
        new_hat = (c_hat / dt + n_hat) / first_denominator
        return jnp.fft.irfft2(new_hat, s=(n, n)).astype(dtype), new_hat, c_hat, n_hat

    @jax.jit
    def steps(state, count):
        def body(_, s):
            c, c_hat, c_hat_prev, n_hat_prev = s
            n_hat = M * lam * jnp.fft.rfft2(fp(c))
            new_hat = ((2 * c_hat - 0.5 * c_hat_prev) / dt + 2 * n_hat - n_hat_prev) / denominator
            return jnp.fft.irfft2(new_hat, s=(n, n)).astype(dtype), new_hat, c_hat, n_hat
        return jax.lax.fori_loop(0, count, body, state)

    grid = spinodal.Grid((n, n), 1.0)
    boundary = spinodal.boundary_for("a", 2)
    energy = jax.jit(lambda c: spinodal.free_energy(c.astype(jnp.float64), grid, boundary, params))
    energy(steps(first_step(c0), 2)[0]).block_until_ready()  # compile everything outside the timing
    start = time.perf_counter()
    state, done, energies = first_step(c0), 1, {}
    for t_stop in RECORDS:
        count = int(round(t_stop / dt)) - done
        state, done = steps(state, count), done + count
        energies[t_stop] = float(energy(state[0]))
    return time.perf_counter() - start, done, energies


def error(energies, reference):
    return max(abs(energies[t] - reference[t]) / reference[t] for t in energies)


def bytes_per_update(scheme, precision):
    item = jnp.dtype(precision).itemsize
    return 2 * item if scheme == "explicit" else 13 * item


def row(label, n, wall, steps, err, scheme, precision, extrapolated=False):
    cu = n * n * steps / wall
    bandwidth = cu * bytes_per_update(scheme, precision) / 1e9
    return {"case": label, "n": n, "wall_s": wall, "steps": steps, "error": err, "cu_per_s": cu,
            "gb_per_s": bandwidth, "extrapolated": extrapolated}


def fipy_cases(level):
    if level == "none":
        return []
    cases = [("gmres", None, 0.1), ("gmres", 1e-10, 0.1)]
    if level == "full":
        cases += [("lu", None, 0.5), ("gmres", 1e-10, 0.02)]
    return cases


def run_fipy(python, solver, tolerance, dt, n):
    script = Path(__file__).with_name("fipy_spinodal.py")
    args = [python, str(script), "--solver", solver, "--dt", str(dt), "--n", str(n), "--t-end", "100", "--record", "1,10,100"]
    if tolerance is not None:
        args += ["--tolerance", str(tolerance)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["wall_s"], result["steps"], {float(k): v for k, v in result["energy"].items() if float(k) > 0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1024])
    parser.add_argument("--fipy", choices=["none", "fast", "full"], default="fast",
                        help="fast: GMRES at default and 1e-10 tolerance (dt 0.1); full adds LU dt 0.5 and GMRES dt 0.02")
    parser.add_argument("--fipy-python", default="/tmp/fipyenv/bin/python")
    parser.add_argument("--quick", action="store_true", help="explicit cases above 512^2 run to t = 10 only")
    parser.add_argument("--json", default="experiments/results/bench_spinodal.json")
    parser.add_argument("--devices", type=int, default=0,
                        help="only compare 1 and N forced CPU devices (solver.decomposition=slabs)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per rate of --devices")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return decomposed_worker(args.sizes, args.seconds)
    if args.devices:
        return compare_devices(args.devices, args.sizes, args.seconds)
    print(f"jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}), "
          f"{len(jax.devices())} device(s)")
    table = []
    for n in args.sizes:
        ref_dt = 0.005 if n <= 256 else 0.02
        _, _, reference = package_run(n, "sbdf2", ref_dt, "float64")
        print(f"\n{n}^2 reference (SBDF2 float64 dt {ref_dt}): " + ", ".join(f"F({t:g}) = {v:.4f}" for t, v in reference.items()))
        cases = [
            ("explicit", 0.0025, "float64"), ("explicit", 0.0025, "float32"),
            ("imex1", 0.1, "float64"), ("imex1", 0.01, "float64"),
            ("sbdf2", 0.25, "float64"), ("sbdf2", 0.25, "float32"),
            ("sbdf2", 0.1, "float64"), ("sbdf2", 0.1, "float32"), ("sbdf2", 0.05, "float32"),
        ]
        rows = []
        for scheme, dt, precision in cases:
            t_end = 10.0 if (args.quick and scheme == "explicit" and n > 512) else RECORDS[-1]
            wall, steps, energies = package_run(n, scheme, dt, precision, t_end=t_end)
            extrapolated = t_end < RECORDS[-1]
            if extrapolated:  # report the full-run time from the measured rate
                wall, steps = wall * RECORDS[-1] / t_end, int(round(RECORDS[-1] / dt))
            rows.append(row(f"phasefield {scheme} dt={dt} {precision}", n, wall, steps,
                            error(energies, reference), scheme, precision, extrapolated))
        for dt, precision in ((0.1, "float64"), (0.1, "float32"), (0.25, "float32")):
            wall, steps, energies = bare_sbdf2(n, dt, precision)
            rows.append(row(f"bare jitted loop sbdf2 dt={dt} {precision}", n, wall, steps,
                            error(energies, reference), "sbdf2", precision))
        if n == 200:
            for solver, tolerance, dt in fipy_cases(args.fipy):
                try:
                    wall, steps, energies = run_fipy(args.fipy_python, solver, tolerance, dt, n)
                except (OSError, subprocess.CalledProcessError) as failure:
                    print(f"FiPy {solver} skipped: {failure}")
                    continue
                tol = "default tol" if tolerance is None else f"tol {tolerance:g}"
                rows.append(row(f"FiPy 4 {solver} {tol} dt={dt}", n, wall, steps, error(energies, reference), "imex1", "float64"))
        print(f"{'case':44s} {'wall to t=100':>14s} {'steps':>7s} {'max rel err F':>14s} {'CU/s':>10s} {'GB/s':>7s}")
        for r in rows:
            mark = " *" if r["extrapolated"] else ""
            print(f"{r['case']:44s} {r['wall_s']:12.3f} s {r['steps']:7d} {r['error']:14.2e} {r['cu_per_s']:10.3g} {r['gb_per_s']:7.2f}{mark}")
        table += rows
        summarize(rows, n)
    print(f"\n* extrapolated from a run to t = 10. GB/s: effective, vs {CPU_DRAM_GBS} GB/s CPU DRAM copy ceiling "
          "(grids <= 512^2 are cache-resident, so it is not a bound there).")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(table, indent=1))


def summarize(rows, n):
    ours = [r for r in rows if r["case"].startswith("phasefield")]
    fipy = [r for r in rows if r["case"].startswith("FiPy")]
    for tolerance in (1e-2, 1e-3):
        best = min((r for r in ours if r["error"] <= tolerance), key=lambda r: r["wall_s"], default=None)
        if best is None:
            continue
        line = f"{n}^2, error <= {tolerance:.1%}: fastest phasefield {best['case']} {best['wall_s']:.3f} s"
        peer = min((r for r in fipy if r["error"] <= tolerance), key=lambda r: r["wall_s"], default=None)
        if peer is not None:
            line += f"; fastest FiPy {peer['case']} {peer['wall_s']:.1f} s; ratio {peer['wall_s'] / best['wall_s']:.0f}x"
        elif fipy:
            # FiPy is first order in time: extrapolate its dt to this accuracy from its most accurate run.
            accurate = min(fipy, key=lambda r: r["error"])
            dt_ratio = tolerance / accurate["error"]
            estimate = accurate["wall_s"] / dt_ratio
            line += (f"; no FiPy run reached it: first-order extrapolation of {accurate['case']} "
                     f"needs dt x{dt_ratio:.2f}, about {estimate:.0f} s; ratio about {estimate / best['wall_s']:.0f}x")
        print(line)
    for precision in ("float64", "float32"):
        package = next((r for r in rows if r["case"] == f"phasefield sbdf2 dt=0.1 {precision}"), None)
        bare = next((r for r in rows if r["case"] == f"bare jitted loop sbdf2 dt=0.1 {precision}"), None)
        if package and bare:
            print(f"{n}^2 sbdf2 dt=0.1 {precision}: package / bare loop = {package['wall_s'] / bare['wall_s']:.2f}")


if __name__ == "__main__":
    main()
