"""One call on a lent GPU: the benchmarks that matter there, in one process, under one wall budget.

    timeout 590 python experiments/gpu_suite.py --budget 480     # on the GPU: results into $OUT
    python experiments/gpu_suite.py --smoke                      # tiny sizes, every item, 1-2 CPU minutes
    python experiments/gpu_suite.py --only device,spinodal --budget 120

Items, in order of value (each has a time cap; an item is skipped, with the reason printed, when less
than its minimum is left of the budget; a failing case prints its error and the suite goes on):

1. ``device``: JAX version, device kind and memory; the measured device copy bandwidth (``x + 1`` on a
   1 GiB float32 array: bytes read + written over the best of 5 calls).
2. ``spinodal``: PFHub 1a, explicit (dt 0.0025) and SBDF2 (dt 0.1), float32, 1024^2 .. 8192^2
   (``bench_spinodal.steady_rate``): compile time, us/step, CU/s, effective GB/s and its share of the copy
   bandwidth.
3. ``dendrite``: the electrodeposition step at 1024^2 and 4096^2, formulations chen2015 (Hong's
   parameters; the potential solve's time and share of the step) and reaction (CG iterations), float64 and
   float32 (``bench_dendrite.bench``), and the float32-vs-float64 field difference after N steps
   (``bench_dendrite.precision_error``). chen2015 refuses float32: its cases record the refusal.
4. ``pfhub``: full-length PFHub runs, each under its own cap (6a and 6b to 400, 2a and 2b to 5e4, 3a to
   1500 on 960^2 at dx 1 and 0.5), with pfhub.py's rows (ours beside the uploads' spread); a run that hits
   its cap reports the times it reached. Upload-format CSVs go to ``<out>/pfhub``.
5. ``filament``: the parts of a filament step at 512^2 (``filament_timing.time_parts``).
6. ``dendrite3d``: the dendrite step on 256^3 (chen2015, then reaction).
7. ``largest``: the largest grids that fit (spinodal SBDF2 float32 2D and 3D, dendrite chen2015 2D and 3D):
   XLA's compiled memory estimate of a chunk (``runner.chunk_memory_bytes``) at a first n, scaled by the
   cells to the largest doubling under 90 % of the device memory, checked by that n's own estimate
   (halved while over), then a timed run there.
8. ``hong2018``: the Hong & Viswanathan 2018 setup (200 x 200 um) through the normal run path, to the short
   circuit or 400 s: a 20 s pilot, then a resume to the time the budget left allows (run.h5 and figures
   in ``<out>/hong2018``).

Compile time is reported apart from the steady-state time (warm-up call, then timed calls ending with
``block_until_ready``). Everything goes to ``$OUT`` (or ``--out``, default experiments/results/gpu_suite):
``gpu_suite.json`` (every number) and ``gpu_suite.md`` (the table), both rewritten after every case, so a
killed run keeps what it measured.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phasefield  # noqa: E402,F401  (float64)
import bench_dendrite  # noqa: E402
import bench_spinodal  # noqa: E402
from timing import best_time  # noqa: E402

# Sizes per item: (GPU, --smoke).
SIZES = {
    "copy_elements": (2**28, 2**20),
    "spinodal": ([1024, 2048, 4096, 8192], [32, 64]),
    "dendrite": ([1024, 4096], [32]),
    "dendrite_steps": (20, 3),
    "filament": (512, 32),
    "dendrite3d": (256, 24),
    "hong2018": ({}, {"shape": [30, 30]}),
}


class Suite:
    """The budget clock and the results: each case is added as it finishes and the files are rewritten."""

    def __init__(self, out: Path, budget: float, smoke: bool):
        self.out, self.budget, self.smoke = out, budget, smoke
        self.start = time.perf_counter()
        self.copy_gbs = None
        self.rows = []  # (item, case, result text)
        self.data = {"started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "budget_s": budget, "smoke": smoke, "items": {}}
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def size(self, key):
        return SIZES[key][1 if self.smoke else 0]

    def add(self, item: str, case: str, text: str, numbers: dict | None = None):
        """One result row: printed, tabulated, its numbers stored under the item, files rewritten."""
        print(f"  [{item}] {case}: {text}", flush=True)
        self.rows.append((item, case, text))
        entry = self.data["items"].setdefault(item, {"cases": []})
        entry["cases"].append({"case": case, "result": text, **(numbers or {})})
        self.save()

    def case(self, item: str, case: str, deadline: float, needed: float, function):
        """Run ``function()`` (which adds its own rows) unless less than ``needed`` seconds are left before
        ``deadline``; an exception is recorded as the case's result. Returns its seconds (None if not run)."""
        left = deadline - time.perf_counter()
        if left < needed:
            self.add(item, case, f"skipped: {left:.0f} s left of the item's cap, about {needed:.0f} s needed")
            return None
        start = time.perf_counter()
        try:
            function()
        except Exception as error:  # noqa: BLE001  (the suite goes on; the error is the result)
            lines = traceback.format_exc().strip().splitlines()
            print("\n".join(lines[-8:]), flush=True)
            self.add(item, case, f"FAILED: {type(error).__name__}: {str(error).splitlines()[0][:300]}",
                     {"error": str(error)[:2000]})
        return time.perf_counter() - start

    def save(self):
        self.data["elapsed_s"] = time.perf_counter() - self.start
        (self.out / "gpu_suite.json").write_text(json.dumps(self.data, indent=1, default=float))
        meta = self.data.get("device", {})
        lines = [f"# GPU suite {self.data['started_utc']}" + (" (smoke)" if self.smoke else ""), "",
                 f"{meta.get('device_kind', '?')} ({meta.get('backend', '?')}), jax {jax.__version__}; "
                 f"budget {self.budget:.0f} s, elapsed {self.data['elapsed_s']:.0f} s", "",
                 "| item | case | result |", "|---|---|---|"]
        lines += [f"| {item} | {case} | {text} |" for item, case, text in self.rows]
        (self.out / "gpu_suite.md").write_text("\n".join(lines) + "\n")


def share(gbs: float, suite: Suite) -> str:
    return f"{gbs / suite.copy_gbs:.0%} of copy" if suite.copy_gbs else "copy bandwidth not measured"


# 1 -------------------------------------------------------------------------------------------------------
def device(suite: Suite, deadline: float):
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    meta = {"jax": jax.__version__, "backend": jax.default_backend(), "device_kind": dev.device_kind,
            "device_count": jax.device_count(), "memory_bytes": (stats or {}).get("bytes_limit")}
    suite.data["device"] = meta
    memory = f"{meta['memory_bytes'] / 2**30:.1f} GiB" if meta["memory_bytes"] else "memory not reported"
    suite.add("device", "info", f"{meta['device_count']} x {meta['device_kind']} ({meta['backend']}), {memory}",
              meta)

    def copy():
        x = jnp.ones(suite.size("copy_elements"), jnp.float32)
        seconds, _ = best_time(jax.jit(lambda a: a + 1.0), x, repeat=5)
        suite.copy_gbs = 2 * x.nbytes / seconds / 1e9
        suite.data["copy_gbs"] = suite.copy_gbs
        suite.add("device", f"copy {x.nbytes / 2**20:.0f} MiB float32", f"{suite.copy_gbs:.1f} GB/s (read + write)",
                  {"bytes": x.nbytes, "seconds": seconds, "gb_per_s": suite.copy_gbs})

    suite.case("device", "copy bandwidth", deadline, 2, copy)


# 2 -------------------------------------------------------------------------------------------------------
def spinodal(suite: Suite, deadline: float):
    seconds = 0.2 if suite.smoke else 0.5
    last = 1.0
    for n in suite.size("spinodal"):
        for scheme, dt in (("explicit", 0.0025), ("sbdf2", 0.1)):
            def one(n=n, scheme=scheme, dt=dt):
                r = bench_spinodal.steady_rate(n, scheme, dt, "float32", seconds)
                suite.add("spinodal", f"{scheme} dt {dt} float32 {n}^2",
                          f"compile {r['compile_s']:.1f} s; {r['us_per_step']:.4g} us/step, {r['cu_per_s']:.3g} CU/s, "
                          f"{r['gb_per_s']:.4g} GB/s effective ({share(r['gb_per_s'], suite)})", r)
            # the next grid has 4x the cells: setup and the initial state grow with it
            last = suite.case("spinodal", f"{scheme} {n}^2", deadline, 2 * last, one) or last


# 3 -------------------------------------------------------------------------------------------------------
def dendrite_row(suite: Suite, item: str, r: dict):
    text = (f"compile {r['compile_s']:.1f} s; {r['ms_per_step']:.4g} ms/step, {r['cu_per_s']:.3g} CU/s, "
            f"mean potential iterations {r['mean_iterations']:.1f}")
    if r["formulation"] == "chen2015":
        text += (f"; potential solve {r['solve_ms']:.4g} ms = {r['solve_share']:.0%} of the step "
                 f"({r['iterations']} CG iterations, {r['solve_laplacians']:.0f} Laplacian applications)")
    else:
        text += f"; transport CG iterations {r['iterations']}"
        q = r.get("substeps")
        if q:
            text += (f"; sub-steps alone (ms): geometry {q['geometry']:.3g}, profile {q['profile']:.3g}, "
                     f"potential solve {q['potential']:.3g}, exchange {q['exchange']:.3g}, balanced {q['balanced']:.3g}")
    grid = "x".join([str(r["n"])] * r["ndim"])
    suite.add(item, f"{r['formulation']} {r['precision']} {grid}", text, r)


def float32_refusal(formulation: str, dt: float) -> str | None:
    """Why the dendrite model refuses float32 (its config's message), or None if it accepts it."""
    from phasefield.config import ConfigError
    from phasefield.runner import build

    try:
        build(bench_dendrite.configure(64, dt, formulation, "float32"))
    except ConfigError as error:
        return str(error)
    return None


def dendrite(suite: Suite, deadline: float):
    steps = suite.size("dendrite_steps")
    sizes = suite.size("dendrite")
    # smoke: chen2015 only (dendrite3d's smoke runs reaction)
    for formulation, dt in (("chen2015", 0.004),) + ((("reaction", 0.2),) if not suite.smoke else ()):
        refusal = float32_refusal(formulation, dt)
        if refusal:
            suite.add("dendrite", f"{formulation} float32", f"not run: the model refuses it ({refusal})")
        last = 5.0
        for n in sizes:
            for precision in ("float64",) if refusal else ("float64", "float32"):
                def one(n=n, precision=precision, formulation=formulation, dt=dt):
                    dendrite_row(suite, "dendrite", bench_dendrite.bench(n, steps, dt, formulation, precision))
                last = suite.case("dendrite", f"{formulation} {precision} {n}^2", deadline, last, one) or last
        if refusal:
            continue
        n = sizes[0]

        def error(n=n, formulation=formulation, dt=dt):
            e = bench_dendrite.precision_error(n, 5 * steps, dt, formulation)
            text = ", ".join(f"{name} {diff:.2e} (of {top:.3g})" for name, (diff, top) in e.items())
            suite.add("dendrite", f"{formulation} float32 - float64 {n}^2, {5 * steps} steps",
                      f"max |difference|: {text}", {"fields": e})

        suite.case("dendrite", f"{formulation} precision error", deadline, 5.0, error)


# 4 -------------------------------------------------------------------------------------------------------
def pfhub_runs(suite: Suite, deadline: float):
    import pfhub

    pfhub.RESULTS = suite.out / "pfhub"
    pfhub.RESULTS.mkdir(parents=True, exist_ok=True)
    if suite.smoke:
        runs = [("6a", 10, lambda rows, d: pfhub.bm6("a", 1.0, rows, d)),
                ("2a", 20, lambda rows, d: pfhub.bm2("a", 0.1, rows, d)),
                ("3a dx 1", 10, lambda rows, d: pfhub.bm3(15.0, 40.0, rows, deadline=d))]
    else:
        # the runs not yet measured at full length first (6a to 400 takes 13 s on the CPU)
        runs = [("2a", 30, lambda rows, d: pfhub.bm2("a", 5e4, rows, d)),  # the final states (pfhub.md 2.4)
                ("2b", 45, lambda rows, d: pfhub.bm2("b", 5e4, rows, d)),
                ("3a dx 1", 40, lambda rows, d: pfhub.bm3(1500.0, 960.0, rows, deadline=d)),
                ("6b", 30, lambda rows, d: pfhub.bm6("b", 400.0, rows, d)),
                ("3a dx 0.5", 30, lambda rows, d: pfhub.bm3(1500.0, 960.0, rows, spacing=0.5, deadline=d)),
                ("6a", 20, lambda rows, d: pfhub.bm6("a", 400.0, rows, d))]
    for name, cap, function in runs:
        def one(name=name, cap=cap, function=function):
            rows = []
            function(rows, min(deadline, time.perf_counter() + cap))
            for variant, solver, quantity, ours, published, wall in rows:
                suite.add("pfhub", f"{variant} {solver}",
                          f"{quantity} = {ours:.6g} (uploads {published}); wall {wall:.1f} s",
                          {"variant": variant, "solver": solver, "quantity": quantity, "phasefield": ours,
                           "published": published, "wall_s": wall, "cap_s": cap})
        suite.case("pfhub", name, deadline, min(cap, 10), one)


# 5 -------------------------------------------------------------------------------------------------------
def filament(suite: Suite, deadline: float):
    import filament_timing

    n = suite.size("filament")

    def one():
        r = filament_timing.time_parts(n, repeats=1 if suite.smoke else 2)
        suite.add("filament", f"{n}^2 float64",
                  f"step {r['step_s']:.4g} s (compile {r['step_compile_s']:.1f} s; {r['passes']} passes, "
                  f"{r['ud_iterations']} u-d iterations, {r['step_cg_iterations']} CG); parts: elasticity "
                  f"{r['elasticity_s']:.4g} s ({r['elasticity_iterations']} CG), damage {r['damage_s']:.4g} s, "
                  f"electrochemistry {r['electrochemistry_s']:.3g} s", r)

    suite.case("filament", f"{n}^2", deadline, 10, one)


# 6 -------------------------------------------------------------------------------------------------------
def dendrite3d(suite: Suite, deadline: float):
    n = suite.size("dendrite3d")
    steps = 3 if suite.smoke else 5
    # smoke: reaction only (dendrite's smoke runs chen2015)
    for formulation, dt in ((("chen2015", 0.004),) if not suite.smoke else ()) + (("reaction", 0.2),):
        def one(formulation=formulation, dt=dt):
            dendrite_row(suite, "dendrite3d", bench_dendrite.bench(n, steps, dt, formulation, ndim=3))
        suite.case("dendrite3d", f"{formulation} {n}^3", deadline, 10, one)


# 7 -------------------------------------------------------------------------------------------------------
def largest(suite: Suite, deadline: float):
    from phasefield.memory import HEADROOM, device_memory_bytes
    from phasefield.runner import build, chunk_memory_bytes, device_parameters

    # smoke: a pretend 4 MiB device, so that the search ends after a doubling or two
    limit = HEADROOM * (4 * 2**20 if suite.smoke else device_memory_bytes())
    cases = [  # label, first n, config of n, timed run at n
        ("spinodal sbdf2 float32 2D", 64 if suite.smoke else 8192,
         lambda n: bench_spinodal.configure(n, "sbdf2", 0.1, "float32"),
         lambda n: bench_spinodal.steady_rate(n, "sbdf2", 0.1, "float32", 0.5)),
        ("spinodal sbdf2 float32 3D", 16 if suite.smoke else 256,
         lambda n: bench_spinodal.configure(n, "sbdf2", 0.1, "float32", ndim=3),
         lambda n: bench_spinodal.steady_rate(n, "sbdf2", 0.1, "float32", 0.5, ndim=3)),
        ("dendrite chen2015 float64 2D", 32 if suite.smoke else 4096,
         lambda n: bench_dendrite.configure(n, 0.004, "chen2015"),
         lambda n: bench_dendrite.bench(n, 1, 0.004, "chen2015")),
    ]
    if not suite.smoke:  # the same code path as the 2D case
        cases.append(("dendrite chen2015 float64 3D", 256,
                      lambda n: bench_dendrite.configure(n, 0.004, "chen2015", ndim=3),
                      lambda n: bench_dendrite.bench(n, 1, 0.004, "chen2015", ndim=3)))

    def estimate(configure, n):
        config = configure(n)
        simulation = build(config)
        return chunk_memory_bytes(simulation, config, device_parameters(simulation.parameters, config.solver.precision))

    for label, n, configure, timed in cases:
        def one(label=label, n=n, configure=configure, timed=timed):
            ndim = len(configure(n).scenario.shape)
            first = estimate(configure, n)
            # memory grows with the cells: the largest doubling the first estimate allows, then its own estimate
            doublings = 0
            while doublings < 6 and first * 2 ** (ndim * (doublings + 1)) <= limit:
                doublings += 1
            tried = [(n, first)]
            n, needed = n * 2**doublings, first
            if doublings:
                needed = estimate(configure, n)
                tried.append((n, needed))
                while needed > limit and len(tried) < 4:
                    n //= 2
                    needed = estimate(configure, n)
                    tried.append((n, needed))
            if needed > limit:
                suite.add("largest", label, f"none fits: {n} per axis needs {needed / 2**30:.3g} GiB > "
                          f"{limit / 2**30:.3g} GiB")
                return
            estimates = "; ".join(f"{m}: {b / 2**30:.3g} GiB" for m, b in tried)
            r = timed(n)
            per_step = r["us_per_step"] / 1e3 if "us_per_step" in r else r["ms_per_step"]
            stats = jax.devices()[0].memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
            suite.add("largest", label,
                      f"largest n = {n} ({limit / 2**30:.3g} GiB allowed; compiled estimates {estimates}); "
                      f"{per_step:.4g} ms/step, {r['cu_per_s']:.3g} CU/s"
                      + (f"; process peak so far {peak / 2**30:.3g} GiB" if peak else ""),
                      {"n": n, "estimate_bytes": needed, "limit_bytes": limit, "tried": tried, "run": r,
                       "peak_bytes_in_use": peak})
        suite.case("largest", label, deadline, 15, one)


# 8 -------------------------------------------------------------------------------------------------------
def hong2018(suite: Suite, deadline: float):
    import numpy as np

    import dendrite_hong2018
    from phasefield.runner import run

    folder = suite.out / "hong2018"
    overrides = dict(suite.size("hong2018"))
    pilot, t_final = (1.0, 2.0) if suite.smoke else (20.0, 400.0)

    def one():
        config = dendrite_hong2018.load_config({**overrides, "t_end": pilot})
        if suite.smoke:
            config["output"].update({"interval": 0.5, "scalar_interval": 0.5})
        start = time.perf_counter()
        run(config, folder)
        wall_pilot = time.perf_counter() - start
        # compilation is in the pilot's wall: the extrapolation errs on the short side
        affordable = pilot + 0.7 * (deadline - time.perf_counter()) * pilot / wall_pilot
        target = t_final if suite.smoke else float(min(t_final, np.floor(affordable)))  # smoke: the resume path too
        if target > pilot:
            run(None, folder, resume=True, changes={"scenario.t_end": target})
        wall = time.perf_counter() - start
        s_time, height, stop, _ = dendrite_hong2018.figures(folder / "run.h5", folder)
        suite.add("hong2018", "x".join(map(str, overrides.get("shape", [200, 200]))),
                  f"reached t = {s_time[-1]:.1f} s of {t_final:g} (target {target:g}); {stop or 'no short circuit'}; "
                  f"height {height[-1]:.1f} um; wall {wall:.0f} s (pilot to {pilot:g} s: {wall_pilot:.0f} s, with "
                  "compilation)", {"t_reached": float(s_time[-1]), "target": target, "height_um": float(height[-1]),
                                   "stop": str(stop), "wall_s": wall, "pilot_wall_s": wall_pilot})

    suite.case("hong2018", "run", deadline, 30, one)


ITEMS = {  # name: (function, cap s, minimum s to start)
    "device": (device, 15, 3),
    "spinodal": (spinodal, 45, 10),
    "dendrite": (dendrite, 75, 15),
    "pfhub": (pfhub_runs, 150, 20),
    "filament": (filament, 35, 15),
    "dendrite3d": (dendrite3d, 35, 15),
    "largest": (largest, 45, 20),
    "hong2018": (hong2018, 120, 30),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=480.0, help="total wall seconds (default 480)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every item's code path in 1-2 CPU minutes")
    parser.add_argument("--only", default=",".join(ITEMS), help=f"comma list of items ({','.join(ITEMS)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default $OUT if set, else experiments/results/gpu_suite)")
    args = parser.parse_args(argv)
    only = args.only.split(",")
    unknown = [name for name in only if name not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {unknown}; choose from {list(ITEMS)}")
    out = args.out or Path(os.environ.get("OUT") or Path(__file__).resolve().parent / "results" / "gpu_suite")
    # a compilation cache of this run only: the programs compiled twice (the memory estimate and the run of
    # `largest`, the pilot and the resume of `hong2018`) are compiled once
    jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="gpu_suite_jax_cache_"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    suite = Suite(out, args.budget, args.smoke)
    print(f"gpu_suite: jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}); "
          f"budget {args.budget:.0f} s; writing {out}", flush=True)
    for name, (function, cap, minimum) in ITEMS.items():
        if name not in only:
            continue
        left = suite.left()
        if left < minimum:
            print(f"[{name}] skipped: {left:.0f} s of the budget left, {minimum} s needed", flush=True)
            suite.data["items"][name] = {"skipped": f"{left:.0f} s of the budget left, {minimum} s needed"}
            suite.save()
            continue
        print(f"[{name}] cap {min(cap, left):.0f} s ({left:.0f} s of the budget left)", flush=True)
        start = time.perf_counter()
        try:
            function(suite, start + min(cap, left))
        except Exception as error:  # noqa: BLE001  (an item's own setup failed: record it and go on)
            traceback.print_exc()
            suite.add(name, "item", f"FAILED: {type(error).__name__}: {error}")
        suite.data["items"].setdefault(name, {})["seconds"] = time.perf_counter() - start
        suite.save()
    print(f"gpu_suite: done in {time.perf_counter() - suite.start:.0f} s; wrote {out}/gpu_suite.md and .json")
    print((out / "gpu_suite.md").read_text())


if __name__ == "__main__":
    main()
