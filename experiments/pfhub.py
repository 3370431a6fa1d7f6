"""PFHub conformance: every PFHub variant phasefield runs (1a, 1b, 2a, 2b, 3a, 6a, 6b, 7a, 7b, 7c) beside
the uploads.

    python experiments/pfhub.py            # BM1 to t = 1e4, BM7 at h = 0.01 .. 0.00125, BM2 to 5e4
                                           # (its final state; about 30 CPU minutes each), BM3 to 1500
                                           # on 960^2 at dx = 1 and 0.5, BM6 to 400 (3a, 6b: for a GPU)
    python experiments/pfhub.py --quick    # BM1 to t = 1000, BM7 at h = 0.01 .. 0.0025, BM2 to 100,
                                           # BM3 to 150 on a 240^2 corner (and dx = 0.5 to 60
                                           # on 120^2), 6a to 400, 6b to 5 (about 6 CPU minutes)
    python experiments/pfhub.py --long     # + 1b with the adaptive solvers to t = 1e5 (minutes more)
    python experiments/pfhub.py --quick --only 2a,2b,3a,6a,6b   # the BM2/3/6 rows only
    python run.py scenario=pfhub_dendrite output.scalar_interval=15 hydra.run.dir=runs/bm3a   # 3a full length,
    python experiments/pfhub.py --only 3a --bm3-run runs/bm3a/run.h5   # resumable (resume=runs/bm3a), then its rows
    python run.py scenario=pfhub_electro scenario.variant=b solver.scheme=explicit solver.dt=0.0025 \
        hydra.run.dir=runs/bm6b   # 6b full length (resumable), then its rows:
    python experiments/pfhub.py --only 6b --bm6-run runs/bm6b/run.h5

Reference numbers: the uploaded codes' values read from their data (shared/pfhub.md, sections 1.3 and
5.2): for BM1 the resolved codes only (the coarse PRISMS-PF 128^2 run and MOOSE-Guan's 1b, which
left the common path at t ~ 10, are excluded); for BM7 the second-order FD/FV/FE uploads.
BM1: sbdf2 at dt = 0.1, the adaptive SBDF2 with the former default target_change = 0.005 ("adaptive")
and with 0.001, configs/solver/adaptive.yaml's value since the 1b study ("adaptive_0.001"), free energy at
t = 0, 1, 10, 100, 1000 (1e4, and 2e4, 5e4, 1e5 with --long for 1b). BM7: forward Euler, L2 at t = 8
at PFHub's resolutions with dt = min(0.002, 0.8 x stable dt), stable dt = 2 / (kappa 8 / h^2 + 2);
the fitted order in h and (7a, h = 0.01) in dt. Wall time per run includes compilation.

BM2 (2a periodic, 2b no-flux; pfhub.md 2.3, the authors' set: MOOSE sta/ia, FEniCS ivan, MOOSE mfrichtl):
the default adaptive SBDF2 (configs/solver/pfhub_ostwald.yaml), F at t = 0, 1, 10, 100, 1000, ... 5e4, and from
2e4 on the final F and t(1 %) beside pfhub.md 2.4's pass criteria (--bm2-run reads them from a run.py run).
BM3a (uploads read from the code repositories: MEMPHIS, memphis-snl/memphis benchmark/BM_003, FD dx = 1
explicit dt = 0.01; MOOSE-itgreenquist, itgreenquist/moose benchmark_uploads/prob_3/time_vals.csv, adaptive
FE; values at our times interpolated linearly): dx = 1, dt = 0.075; F, solid fraction, tip position and
velocity at t = 30 ... 1500. --quick runs a 240 x 240 corner of the 960 x 960 domain: the tip and the
field near it are the full domain's (the thermal field has reached ~40 by t = 150 and stays at Delta
beyond), F is reported for the full domain by adding the uniform liquid's energy of the rest
(f(-1, Delta) (960^2 - 240^2), exact while U = Delta there) and the solid fraction over the full area.
BM6 (pfhub.md 4.3: MEMPHIS and FiPy 6a, FiPy 6b rescaled by 1/2.31): 6a SBDF2 dt = 0.05 on 100^2,
6b forward Euler dt = 0.0025 on the 100^2 box (staircase), F at t = 0+, 1, 5, 10, 20, 50, 100, 200, 400.

Writes under experiments/results/: pfhub.csv and pfhub.md (all rows), pfhub_1{a,b}_<solver>.csv,
pfhub_2{a,b}.csv and pfhub_6{a,b}.csv (PFHub's upload format: time,free_energy), pfhub_3a.csv
(time,free_energy,solid_fraction,tip_position,tip_velocity), pfhub_bm1.png and pfhub_bm2.png (our F(t) and the uploads'
points).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pfhub_common import RESULTS, SOLVERS, staged_run  # noqa: E402


# BM1 uploads (pfhub.md 1.2, 1.3): t -> {code: F}
BM1_F0 = {"PRISMS-PF FE": 319.034, "MOOSE Guan": 319.06, "FiPy/MMSP": 319.09, "MEMPHIS": 319.10,
          "FEniCS smondal": 319.37}
BM1_REF = {
    "a": {"MEMPHIS FD": {1: 318.86, 10: 297.76, 100: 135.22, 1000: 81.98, 2000: 60.52, 5000: 42.49, 1e4: 34.70, 1e5: 23.55},
          "MOOSE itgreenquist": {1: 318.84, 10: 292.6, 100: 138.9, 1000: 79.2, 2000: 62.8, 5000: 45.65, 1e4: 38.17, 1e5: 23.85},
          "MOOSE mfrichtl": {1: 318.86, 10: 295.74, 100: 140.61, 1000: 83.02, 2000: 62.97, 5000: 42.76, 1e4: 34.13, 1e5: 19.21},
          "FEniCS smondal": {1: 318.86, 10: 297.44, 100: 135.20, 1000: 85.10, 2000: 65.78, 5000: 49.72, 1e4: 43.18, 1e5: 38.20}},
    "b": {"MEMPHIS FD": {1: 318.84, 10: 304.08, 100: 128.07, 1000: 72.77, 2000: 59.84, 5000: 47.26, 1e4: 38.63,
                         2e4: 26.00, 5e4: 24.07, 1e5: 18.70},
          "MOOSE mfrichtl": {1: 318.84, 10: 301.58, 100: 130.75, 1000: 74.41, 2000: 62.16, 5000: 46.88, 1e4: 40.01,
                             2e4: 30.63, 5e4: 23.31, 1e5: 18.56},
          "FEniCS smondal": {1: 318.85, 10: 302.57, 100: 129.95, 1000: 74.11, 2000: 61.83, 5000: 46.67, 1e4: 39.78,
                             2e4: 30.49, 5e4: 23.19, 1e5: 18.48}},
}
# BM7 uploads (pfhub.md 5.2), second-order FD/FV/FE codes: h -> [L2 values]
BM7A_SPATIAL = {0.01: [6.79e-3, 6.75e-3, 3.26e-3, 7.81e-3], 0.005: [1.39e-3, 1.39e-3, 6.67e-4, 1.53e-3, 1.60e-3],
                0.0025: [3.37e-4, 3.37e-4, 3.29e-4, 3.90e-4], 0.00125: [8.30e-5, 8.33e-5]}
BM7A_ORDER_H = (1.81, 2.13)
BM7A_ORDER_DT = (0.97, 1.00)
BM7BC_MEMPHIS = {"b": {0.01: 9.50e-4, 0.005: 2.77e-4, 0.0025: 1.44e-5, 0.001: 1.96e-7},
                 "c": {0.01: 6.42e-4, 0.005: 1.76e-4, 0.0025: 1.18e-5, 0.001: 1.84e-7}}
BM7_KAPPA = {"a": 4e-4, "b": 4e-4 / 256, "c": 4e-4 / 256}
# BM2 uploads, the authors' set (pfhub.md 2.3): variant -> code -> {t: F}
BM2_F0 = 9023.65  # pfhub.md 2.2, converged quadrature (no jump term)
BM2_REF = {
    "a": {"MOOSE sta": {1: 3486.0, 10: 2071.0, 100: 916.4, 1000: 647.2, 2000: 635.1, 5000: 460.1, 1e4: 329.6,
                        2e4: 327.8},
          "MOOSE ia": {1: 3485.6, 10: 2067.6, 100: 916.3, 1000: 647.1, 2000: 634.6, 5000: 459.2, 1e4: 328.6,
                       2e4: 327.8},
          "FEniCS ivan": {1: 3479.4, 10: 2068.9, 100: 990.7, 1000: 653.7, 2000: 640.5, 5000: 434.5, 1e4: 335.8,
                          2e4: 335.8},
          "MOOSE mfrichtl": {1: 3486.3, 10: 2111.9, 100: 944.0, 1000: 755.3, 2000: 534.4, 5000: 327.0, 1e4: 326.9,
                             2e4: 326.9}},
    "b": {"MOOSE sta": {1: 3496, 10: 2216, 100: 806.1, 1000: 576.5, 5000: 410.5, 1e4: 339.6, 2e4: 225.1, 5e4: 164.4},
          "MOOSE ia": {1: 3496, 10: 2211, 100: 806.1, 1000: 576.5, 5000: 410.1, 1e4: 338.4, 2e4: 192.3, 5e4: 164.4},
          "MOOSE mfrichtl": {1: 3493, 10: 2309, 100: 795.7, 1000: 611.3, 5000: 373.7, 1e4: 334.9, 2e4: 322.6,
                             5e4: 164.6},
          "FEniCS ivan": {1: 3487, 10: 2118, 100: 867.0, 1000: 637.3, 5000: 482.0, 1e4: 388.2, 2e4: 282.6,
                          5e4: 282.6}},
}
# BM3a uploads at our reporting times: quantity -> code -> {t: value}
BM3_TIMES = (30, 60, 90, 150, 300, 600, 900, 1200, 1500)
BM3_REF = {
    "tip_position": {
        "MEMPHIS": dict(zip(BM3_TIMES, (20.835, 27.264, 32.675, 42.489, 66.046, 109.5, 147.69, 183.23, 216.84))),
        "MOOSE itg": dict(zip(BM3_TIMES, (20.43, 27.50, 33.76, 45.53, 74.52, 126.56, 174.21, 219.59, 264.0)))},
    "free_energy": {
        "MEMPHIS": dict(zip((0,) + BM3_TIMES, (2122199.97, 2120109.92, 2118334.37, 2116614.77, 2113212.07, 2104417.20,
                                               2084048.73, 2060822.63, 2035496.61, 2008429.13))),
        "MOOSE itg": dict(zip(BM3_TIMES, (2120083.6, 2118233.7, 2116429.2, 2112787.1, 2103111.2, 2079640.0,
                                          2052220.8, 2021677.8, 1988325.6)))},
    "solid_fraction": {
        "MEMPHIS": dict(zip(BM3_TIMES, (3.68432e-4, 5.95101e-4, 8.14738e-4, 1.249941e-3, 2.378160e-3, 4.991207e-3,
                                        7.966133e-3, 1.1204200e-2, 1.4661100e-2))),
        "MOOSE itg": dict(zip(BM3_TIMES, (3.5399e-4, 5.7479e-4, 7.9004e-4, 1.22189e-3, 2.41730e-3, 5.36411e-3,
                                          8.83539e-3, 1.272242e-2, 1.69843e-2)))},
    # secant speeds of the uploads' tip series around t = 150 and at the end
    "tip_velocity": {"MEMPHIS": {150: 0.1589, 1500: 0.1097}, "MOOSE itg": {150: 0.198, 1500: 0.1496}},
}
# BM6 uploads (pfhub.md 4.2, 4.3): variant -> code -> {t: F}; t = 0 is F(0+) (Phi solved at t = 0)
BM6_TIMES = (1, 5, 10, 20, 50, 100, 200, 400)
BM6_REF = {
    "a": {"pfhub.md quadrature": {0: 183.07},
          "MEMPHIS": {1: 181.0, 5: 171.5, 10: 154.0, 20: 144.0, 50: 137.5, 100: 128.0, 200: 120.0, 400: 103.0},
          "FiPy": {5: 171.3, 10: 154.0, 20: 144.8, 50: 138.9, 100: 133.9, 200: 126.1, 400: 114.3}},
    "b": {"pfhub.md quadrature": {0: 149.2},
          "FiPy / 2.31": {1: 148.4, 5: 139.2, 10: 123.2, 20: 114.8, 50: 108.3, 100: 102.7, 200: 95.8, 400: 80.5}},
}
# 6a at t = 400 along y = 50 (pfhub.md 4.3): x -> (MEMPHIS, FiPy)
BM6A_CUT_X = (10, 20, 30, 40, 50, 60, 70, 80)
BM6A_CUT_PHI = {"MEMPHIS": dict(zip(BM6A_CUT_X, (0.242, 0.401, 0.497, 0.558, 0.587, 0.584, 0.542, 0.462))),
                "FiPy": dict(zip(BM6A_CUT_X, (0.233, 0.402, 0.513, 0.572, 0.596, 0.582, 0.528, 0.447)))}
BM2_SOLVER = {"scheme": "sbdf2", "dt": 0.001, "stabilization": 4.0, "order_parameter_stabilization": 20.0,
              "adaptive": True, "dt_min": 1e-4, "dt_max": 1.0, "target_change": 0.005,
              "reject_above": 1.5}  # configs/solver/pfhub_ostwald.yaml


def spread(values):
    return f"{min(values):.4g} - {max(values):.4g}" if min(values) != max(values) else f"{values[0]:.4g}"


def bm1(variant, solver, t_end, rows, curves):
    report = [t for t in (1, 10, 100, 1000, 1e4, 2e4, 5e4, 1e5) if t <= t_end]
    dense = np.unique(np.concatenate([report, np.geomspace(0.1, t_end, int(8 * np.log10(t_end / 0.1)) + 1)]))
    res = staged_run({"name": "spinodal", "variant": variant}, SOLVERS[solver], dense)
    times, F = res["times"], res["scalars"]["free_energy"]
    curves[(variant, solver)] = (times, F)
    with open(RESULTS / f"pfhub_1{variant}_{solver}.csv", "w") as f:
        f.write("time,free_energy\n")
        f.writelines(f"{t:.10g},{e:.10g}\n" for t, e in zip(times, F))
    name = f"1{variant}"
    rows.append((name, solver, "F(0)", F[0], spread(list(BM1_F0.values())), res["wall"]))
    for t in report:
        ours = F[np.argmin(abs(times - t))]
        pub = [ref[t] for ref in BM1_REF[variant].values() if t in ref]
        rows.append((name, solver, f"F({t:g})", ours, spread(pub) if pub else "-", res["wall"]))
    mass = res["scalars"]["total_mass"]
    print(f"  {name} {solver}: {res['steps']} steps, {res['wall']:.1f} s, mass drift {abs(mass[-1] / mass[0] - 1):.1e}",
          flush=True)


def bm7_run(variant, h, dt):
    n = int(round(1 / h))
    res = staged_run({"name": "pfhub_mms", "variant": variant, "shape": [n, n // 2]}, {"dt": dt, "adaptive": False},
                     [8.0], field="eta", keep_fields=True)
    return res["scalars"]["l2_error"][-1], res["wall"], res["fields"][-1]


def bm7(variant, hs, rows):
    errors = []
    for h in hs:
        stable = 2.0 / (BM7_KAPPA[variant] * 8.0 / h**2 + 2.0)
        dt = min(0.002, 0.8 * stable)
        dt = 8.0 / np.ceil(8.0 / dt)
        l2, wall, _ = bm7_run(variant, h, dt)
        errors.append(l2)
        if variant == "a":
            pub = spread(BM7A_SPATIAL[h]) if h in BM7A_SPATIAL else "-"
        else:
            pub = f"{BM7BC_MEMPHIS[variant][h]:.3g} (MEMPHIS, spectral)" if h in BM7BC_MEMPHIS[variant] else "-"
        rows.append((f"7{variant}", f"euler dt={dt:.3g}", f"L2(h={h:g})", l2, pub, wall))
        print(f"  7{variant} h={h:g} dt={dt:.3g}: L2 {l2:.3e}, {wall:.1f} s", flush=True)
    order = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    pub = f"{BM7A_ORDER_H[0]} - {BM7A_ORDER_H[1]}" if variant == "a" else "- (MEMPHIS spectral: > 2)"
    rows.append((f"7{variant}", "euler", "order in h", order, pub, 0.0))


def bm7_time(rows, h=0.01, dts=(0.04, 0.02, 0.01, 0.005)):
    """7a temporal order: L2 to the exact solution is at the spatial floor at h = 0.01 (as for the uploads that
    hit it), so the order is fitted to the successive differences of the t = 8 field over dt, dt/2, ..."""
    fields, walls = [], 0.0
    for dt in dts:
        l2, wall, eta = bm7_run("a", h, dt)
        fields.append(eta)
        walls += wall
        rows.append(("7a", f"euler h={h:g}", f"L2(dt={dt:g})", l2, "-", wall))
    diffs = [np.sqrt(np.sum((a - b) ** 2) * h * h) for a, b in zip(fields, fields[1:])]
    order = np.polyfit(np.log(dts[:-1]), np.log(diffs), 1)[0]
    rows.append(("7a", "euler", "order in dt", order, f"{BM7A_ORDER_DT[0]} - {BM7A_ORDER_DT[1]}", walls))


def write_upload(name, times, columns):
    """PFHub's upload format: a header ``time,<quantity>,...`` and one row per record."""
    with open(RESULTS / f"pfhub_{name}.csv", "w") as f:
        f.write(",".join(["time", *columns]) + "\n")
        for i, t in enumerate(times):
            f.write(",".join([f"{t:.10g}"] + [f"{columns[k][i]:.10g}" for k in columns]) + "\n")


def compare(rows, name, solver, quantity, times, values, refs, wall, report):
    """One row per reporting time reached: ours (the record at that time) and the uploads' spread."""
    for t in [t for t in report if t <= times[-1] * (1 + 1e-9)]:
        i = int(np.argmin(abs(np.asarray(times) - t)))
        pub = [ref[t] for ref in refs.values() if t in ref]
        rows.append((name, solver, f"{quantity}({t:g})", values[i], spread(pub) if pub else "-", wall))


def stopped(res):
    return "" if res["complete"] else f" (stopped at t = {res['times'][-1]:g}: time cap)"


BM2_FINAL = {"a": (328.0, (3e3, 1.5e4)), "b": (164.4, (1.5e4, 6e4))}  # pfhub.md 2.4: final F +- 2 %, t(1 %) range
BM2_TIMES = (1, 10, 100, 1000, 2000, 5000, 1e4, 2e4, 5e4)


def settling_time(times, values, fraction=0.01):
    """PFHub's t(1 %): when ``values`` enter, for good, the band of ``fraction`` about the last value
    (linear between the last record outside it and the next)."""
    times, values = np.asarray(times, float), np.asarray(values, float)
    excess = np.abs(values - values[-1]) - fraction * abs(values[-1])
    outside = np.nonzero(excess > 0)[0]
    if outside.size == 0:
        return float(times[0])
    i = outside[-1]
    return float(times[i] + (times[i + 1] - times[i]) * excess[i] / (excess[i] - excess[i + 1]))


def bm2_rows(variant, label, times, F, wall, rows, curves):
    """F(0), F at the reporting times reached, and from t = 2e4 on the final state: F(t_end) and t(1 %) beside
    pfhub.md 2.4's pass criteria (the authors' set; FEniCS's 2b ends in another state, 282.6)."""
    curves[(variant, label)] = (np.asarray(times), np.asarray(F))
    rows.append((f"2{variant}", label, "F(0)", F[0], f"{BM2_F0} (quadrature, no edge jump)", wall))
    compare(rows, f"2{variant}", label, "F", times, F, BM2_REF[variant], wall, BM2_TIMES)
    if times[-1] >= 2e4:
        final, (early, late) = BM2_FINAL[variant]
        other = "; FEniCS 282.6, another state" if variant == "b" else ""
        rows.append((f"2{variant}", label, f"final F (t = {times[-1]:g})", F[-1],
                     f"{final:g} +- 2 % ({0.98 * final:.1f} - {1.02 * final:.1f}{other})", wall))
        rows.append((f"2{variant}", label, "t(1 %)", settling_time(times, F), f"{early:g} - {late:g}", wall))


def bm2(variant, t_end, rows, deadline=None, target_change=None, curves=None):
    """``target_change``: the adaptive step's target change (default the config's 0.005): another one is the
    time-step convergence check of the coarsening path."""
    report = [t for t in BM2_TIMES if t <= t_end]
    dense = np.unique(np.concatenate([report, np.geomspace(0.01, t_end, int(8 * np.log10(t_end / 0.01)) + 1),
                                      np.arange(1000.0, t_end, 10.0)]))  # every 10 from 1000: t(1 %)
    solver, label, name = BM2_SOLVER, "sbdf2 adaptive", f"2{variant}"
    if target_change is not None and target_change != BM2_SOLVER["target_change"]:
        solver = {**BM2_SOLVER, "target_change": target_change}
        label, name = f"sbdf2 adaptive, target change {target_change:g}", f"2{variant}_target{target_change:g}"
    res = staged_run({"name": "pfhub_ostwald", "variant": variant}, solver, dense, deadline=deadline, progress=True)
    times, F = res["times"], res["scalars"]["free_energy"]
    write_upload(name, times, {"free_energy": F})
    bm2_rows(variant, label, times, F, res["wall"], rows, {} if curves is None else curves)
    mass = res["scalars"]["total_mass"]
    print(f"  2{variant}: {res['steps']} steps, {res['wall']:.1f} s, mass drift {abs(mass[-1] / mass[0] - 1):.1e}"
          f"{stopped(res)}", flush=True)


def run_scalars(path, scenario_name):
    """``(scenario, solver, scalars)`` of a ``python run.py scenario=<scenario_name>`` run's ``run.h5`` (its
    resolved config sections and scalar records)."""
    import h5py
    import yaml

    with h5py.File(path, "r", locking=False) as f:
        config = yaml.safe_load(f.attrs["config"])
        scalars = {k: np.asarray(v) for k, v in f["scalars"].items()}
    if config["scenario"]["name"] != scenario_name:
        raise SystemExit(f"{path}: not a {scenario_name} run")
    return config["scenario"], config["solver"], scalars


def bm2_from_run(path, rows, curves):
    """2a or 2b's rows from a run written by ``python run.py scenario=pfhub_ostwald`` (resumable); records every
    time unit (output.scalar_interval 1); no wall time (NaN: a resumed run's sittings are not summed)."""
    scenario, solver, scalars = run_scalars(path, "pfhub_ostwald")
    times, F = scalars["time"], scalars["free_energy"]
    label = (f"sbdf2 adaptive, target change {solver['target_change']:g}, dx {scenario['spacing']:g} (run.py)")
    bm2_rows(scenario["variant"], label, times, F, float("nan"), rows, curves)
    print(f"  2{scenario['variant']} from {path}: t = {times[-1]:g}, F {F[-1]:.4f}", flush=True)


def bm3(t_end, size, rows, spacing=1.0, deadline=None):
    """3a on a ``size`` x ``size`` corner of PFHub's 960 x 960 domain at cell size ``spacing``, dt 0.9 x the
    explicit limit (0.075 at dx = 1); F and the solid fraction reported for the full domain (see the module
    docstring). Writes pfhub_3a.csv (dx = 1) or pfhub_3a_dx<spacing>.csv."""
    from phasefield.grid import Grid
    from phasefield.models.pfhub_dendrite import Config, stable_dt

    n = int(round(size / spacing))
    dt = 0.075 if spacing == 1.0 else float(0.9 * stable_dt(Grid((n, n), spacing), Config()))
    report = [t for t in BM3_TIMES if t <= t_end]
    dense = np.unique(np.concatenate([report, np.arange(15.0, t_end + 1e-9, 15.0)]))
    res = staged_run({"name": "pfhub_dendrite", "shape": [n, n], "spacing": spacing}, {"dt": dt}, dense,
                     deadline=deadline)
    bm3_rows(res["times"], res["scalars"], size, spacing, f"dt={dt:.3g}", res["wall"], t_end, rows)
    print(f"  3a dx={spacing:g}: {res['steps']} steps, {res['wall']:.1f} s, tip {res['scalars']['tip_position'][-1]:.2f}"
          f" at t = {res['times'][-1]:g}{stopped(res)}", flush=True)


def bm3_rows(times, scalars, size, spacing, label, wall, t_end, rows):
    """3a's table rows and upload CSV from the scalars of a run on a ``size`` x ``size`` corner (960: the whole
    domain), reported for the full 960 x 960 domain."""
    from phasefield.models.pfhub_dendrite import Config, chemical_energy_density

    liquid = float(chemical_energy_density(-1.0, Config().undercooling, Config()))
    full, ours = 960.0**2, float(size) ** 2
    columns = {"free_energy": scalars["free_energy"] + liquid * (full - ours),
               "solid_fraction": scalars["solid_fraction"] * ours / full,
               "tip_position": scalars["tip_position"], "tip_velocity": scalars["tip_velocity"]}
    write_upload("3a" if spacing == 1.0 else f"3a_dx{spacing:g}", times, columns)
    solver = f"dx={spacing:g} {label}, " + ("960^2" if size == 960.0 else f"{size:g}^2 corner")
    rows.append(("3a", solver, "F(0)", columns["free_energy"][0], spread([BM3_REF["free_energy"]["MEMPHIS"][0]]),
                 wall))
    report = [t for t in BM3_TIMES if t <= t_end]
    for quantity in ("tip_position", "tip_velocity", "free_energy", "solid_fraction"):
        refs = BM3_REF[quantity]
        marks = sorted({t for ref in refs.values() for t in ref if 0 < t <= t_end}) if quantity == "tip_velocity" else report
        compare(rows, "3a", solver, quantity, times, columns[quantity], refs, wall, marks)


def bm3_from_run(path, rows):
    """3a's rows from a run written by ``python run.py scenario=pfhub_dendrite`` (resumable, checkpointed: the way
    to reach t = 1500 on a CPU over several sittings); its scalars at the reporting times (output.scalar_interval
    15 puts records on every one); no wall time (a resumed run's sittings are not summed): NaN, '-' in the table."""
    scenario, solver, scalars = run_scalars(path, "pfhub_dendrite")
    if scenario["shape"][0] != scenario["shape"][1]:
        raise SystemExit(f"{path}: not a square pfhub_dendrite run")
    dt = solver["dt"]
    size = scenario["shape"][0] * scenario["spacing"]
    times = scalars["time"]
    bm3_rows(times, scalars, size, scenario["spacing"], f"dt={dt:g} (run.py)", float("nan"), times[-1], rows)
    print(f"  3a from {path}: t = {times[-1]:g}, tip {scalars['tip_position'][-1]:.2f}", flush=True)


def bm6(variant, t_end, rows, deadline=None):
    report = [t for t in BM6_TIMES if t <= t_end]
    dense = np.unique(np.concatenate([report, np.arange(1.0, t_end + 1e-9, 1.0 if t_end <= 20 else 5.0)]))
    solver = {"scheme": "sbdf2", "dt": 0.05} if variant == "a" else {"scheme": "explicit", "dt": 0.0025}
    res = staged_run({"name": "pfhub_electro", "variant": variant}, solver, dense, deadline=deadline)
    times, F = res["times"], res["scalars"]["free_energy"]
    label = f"{solver['scheme']} dt={solver['dt']}"
    bm6_rows(variant, label, times, F, res["wall"], rows)
    if variant == "a" and times[-1] == 400.0:
        cut_planes(res["final_fields"], rows, label, res["wall"])
    mass = res["scalars"]["total_mass"]
    print(f"  6{variant}: {res['steps']} steps, {res['wall']:.1f} s, mass drift {abs(mass[-1] / mass[0] - 1):.1e}"
          f"{stopped(res)}", flush=True)


def bm6_rows(variant, label, times, F, wall, rows):
    """6a/6b's rows (F at t = 0+ against the quadrature of pfhub.md, then at the reporting times reached) and the
    upload CSV."""
    write_upload(f"6{variant}", times, {"free_energy": F})
    rows.append((f"6{variant}", label, "F(0+)", F[0], spread([BM6_REF[variant]["pfhub.md quadrature"][0]]), wall))
    refs = {k: v for k, v in BM6_REF[variant].items() if k != "pfhub.md quadrature"}
    compare(rows, f"6{variant}", label, "F", times, F, refs, wall, BM6_TIMES)


def bm6_from_run(path, rows):
    """6a or 6b's rows from a run written by ``python run.py scenario=pfhub_electro`` (resumable, checkpointed: 6b's
    forward Euler to t = 400 is 160 000 steps, over an hour on a CPU); records at every reporting time (the
    default output.scalar_interval 1); no wall time (NaN: a resumed run's sittings are not summed)."""
    scenario, solver, scalars = run_scalars(path, "pfhub_electro")
    times = scalars["time"]
    bm6_rows(scenario["variant"], f"{solver['scheme']} dt={solver['dt']:g} (run.py)", times, scalars["free_energy"],
             float("nan"), rows)
    print(f"  6{scenario['variant']} from {path}: t = {times[-1]:g}, F {scalars['free_energy'][-1]:.4f}", flush=True)


def cut_planes(fields, rows, label, wall):
    """6a at t = 400: c and Phi along y = 50 and x = 50 (PFHub's cut-plane uploads: x or y, concentration,
    potential), interpolated between the two rows of cell centres (49.5 and 50.5); Phi along y = 50 beside
    the two uploads."""
    c, phi = fields["c"], fields["potential"]
    n = c.shape[0]
    centres = (np.arange(n) + 0.5) * 100.0 / n
    mid = n // 2
    along_x = {"concentration": 0.5 * (c[:, mid - 1] + c[:, mid]), "potential": 0.5 * (phi[:, mid - 1] + phi[:, mid])}
    along_y = {"concentration": 0.5 * (c[mid - 1] + c[mid]), "potential": 0.5 * (phi[mid - 1] + phi[mid])}
    for name, coordinate, columns in (("6a_cut_y50", "x", along_x), ("6a_cut_x50", "y", along_y)):
        with open(RESULTS / f"pfhub_{name}.csv", "w") as f:
            f.write(f"{coordinate},concentration,potential\n")
            f.writelines(f"{p:.6g},{a:.10g},{b:.10g}\n" for p, a, b in zip(centres, columns["concentration"],
                                                                          columns["potential"]))
    for x in BM6A_CUT_X:
        ours = np.interp(x, centres, along_x["potential"])
        rows.append(("6a", label, f"Phi(x={x}, y=50, t=400)", ours,
                     spread([ref[x] for ref in BM6A_CUT_PHI.values()]), wall))


def plot(curves, references, benchmark, path):
    """Our F(t) (``curves``: (variant, solver) -> (t, F)) and the uploads' points (``references``: variant ->
    code -> {t: F}), one panel per variant, log-log."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (no matplotlib: no plot)")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, variant in zip(axes, "ab"):
        for (v, solver), (t, F) in curves.items():
            if v == variant:
                ax.loglog(np.maximum(t, 0.1), F, label=f"phasefield {solver}")
        for (code, ref), marker in zip(references[variant].items(), "osd^v"):
            ts = sorted(ref)
            ax.loglog(ts, [ref[t] for t in ts], marker, mfc="none", label=code)
        ax.set(title=f"PFHub {benchmark}{variant}", xlabel="t", ylabel="free energy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="BM1 to t = 1000; BM7 h down to 0.0025; BM2 to 100; BM3 to 150 on 240^2; 6b to 5")
    ap.add_argument("--long", action="store_true", help="also 1b, solver=adaptive, to t = 1e5")
    ap.add_argument("--h-min", type=float, default=None, help="finest BM7 h (default 0.00125, --quick 0.0025)")
    ap.add_argument("--only", default="1a,1b,2a,2b,3a,6a,6b,7a,7b,7c", help="comma list of variants")
    ap.add_argument("--bm2-t-end", type=float, default=None, help="BM2's end time (default 5e4, --quick 100)")
    ap.add_argument("--bm2-run", action="append", default=[],
                    help="2a/2b's rows from this run.h5 of `python run.py scenario=pfhub_ostwald` instead of a run "
                         "here; repeatable")
    ap.add_argument("--bm2-target-change", type=float, default=None,
                    help="BM2's adaptive target change per step (default 0.005): the time-step convergence check")
    ap.add_argument("--bm3-run", help="3a's rows from this run.h5 of `python run.py scenario=pfhub_dendrite "
                                      "output.scalar_interval=15` instead of a run here")
    ap.add_argument("--bm6-run", action="append", default=[],
                    help="6a/6b's rows from this run.h5 of `python run.py scenario=pfhub_electro` (6b: "
                         "scenario.variant=b solver.scheme=explicit solver.dt=0.0025) instead of a run here; repeatable")
    args = ap.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    only = args.only.split(",")
    rows, curves = [], {}
    t_bm1 = 1000.0 if args.quick else 1e4
    h_min = args.h_min or (0.0025 if args.quick else 0.00125)
    hs = [h for h in (0.01, 0.005, 0.0025, 0.00125) if h >= h_min * (1 - 1e-9)]
    for variant in "ab":
        if f"1{variant}" in only:
            for solver in SOLVERS:
                t_end = 1e5 if (args.long and variant == "b" and solver.startswith("adaptive")) else t_bm1
                bm1(variant, solver, t_end, rows, curves)
    curves_bm2 = {}
    for path in args.bm2_run:
        bm2_from_run(path, rows, curves_bm2)
    read = {row[0] for row in rows if row[0] in ("2a", "2b")}  # the variants read from runs
    for variant in "ab":
        if f"2{variant}" in only and f"2{variant}" not in read:
            bm2(variant, args.bm2_t_end or (100.0 if args.quick else 5e4), rows,
                target_change=args.bm2_target_change, curves=curves_bm2)
    if "3a" in only:
        if args.bm3_run:
            bm3_from_run(args.bm3_run, rows)
        elif args.quick:
            bm3(150.0, 240.0, rows)
            bm3(60.0, 120.0, rows, spacing=0.5)  # the resolution check: the tip speeds up 20 % from dx = 1
        else:
            bm3(1500.0, 960.0, rows)
            bm3(1500.0, 960.0, rows, spacing=0.5)
    for path in args.bm6_run:
        bm6_from_run(path, rows)
    read = {row[0] for row in rows if row[0] in ("6a", "6b")}  # the variants read from runs
    for variant in "ab":
        if f"6{variant}" in only and f"6{variant}" not in read:
            bm6(variant, 400.0 if (variant == "a" or not args.quick) else 5.0, rows)
    for variant in "abc":
        if f"7{variant}" in only:
            bm7(variant, hs, rows)
            if variant == "a":
                bm7_time(rows)
    header = ("variant", "solver", "quantity", "phasefield", "published spread", "wall s")
    with open(RESULTS / "pfhub.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for v, s, q, ours, pub, wall in rows:
        lines.append(f"| {v} | {s} | {q} | {ours:.6g} | {pub} | {wall:.1f} |" if wall == wall else
                     f"| {v} | {s} | {q} | {ours:.6g} | {pub} | - |")
    (RESULTS / "pfhub.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if curves:
        plot(curves, BM1_REF, 1, RESULTS / "pfhub_bm1.png")
    if curves_bm2:
        plot(curves_bm2, BM2_REF, 2, RESULTS / "pfhub_bm2.png")
    print(f"wrote {RESULTS}/pfhub.csv, pfhub.md, pfhub_<variant>*.csv, pfhub_bm1.png, pfhub_bm2.png")


if __name__ == "__main__":
    main()
