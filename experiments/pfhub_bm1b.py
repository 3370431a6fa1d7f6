"""PFHub 1b (no-flux spinodal) late-time path: why our F(1e5) differs from the uploads.

    python experiments/pfhub_bm1b.py --ic cell --solver adaptive --t-end 1e5     # our default grid
    python experiments/pfhub_bm1b.py --ic node201 --solver adaptive --t-end 1e5  # nodes x = 0..200
    python experiments/pfhub_bm1b.py --target 0.001      # the adaptive solver with target_change 0.001
    python experiments/pfhub_bm1b.py --summary           # table + plot of every saved run

Initial-condition placements (all with unit spacing and no-flux walls):

* ``cell``:    200 cells, IC at cell centres x = 0.5 .. 199.5 (phasefield's default, domain [0, 200]);
* ``node201``: 201 cells, IC at x = 0 .. 200 (a node-centred FD grid of 201 points with mirror walls,
               as a dx = 1 finite-difference code with points on both walls sees it; domain [-0.5, 200.5]);
* ``node200``: 200 cells, IC at x = 0 .. 199 (shifted by half a cell);
* ``half``:    400 cells of 0.5, IC at cell centres (a resolution check of ``cell``);
* ``cell199``: 199 cells, IC at cell centres: the continuum problem a node-centred no-flux FD code
               with 200 points x = 0 .. 199 and mirror ghosts about the end points (u_-1 = u_1) solves
               (its domain is [0, 199]).

``--noise A`` adds uniform noise of amplitude A to the IC (is the late path chaotic?);
``--laplacian spectral`` swaps the 5-point stencil's DCT symbol ``-(4/h^2) sin^2(pi k / 2n)`` for the
continuous ``-(pi k / n h)^2`` in the semi-implicit solve *and* the explicit part is unchanged (the
solver's f'(c) is pointwise; the Laplacian enters only through the symbol), i.e. a pseudo-spectral
cosine discretisation like a Fourier/cosine code would use. Done by patching
``phasefield.operators.spectral.SpectralBasis`` from here (an experiment, not a package option).

Writes experiments/results/bm1b_<ic>_<solver>.npz (times, free energy, domain counts, fields) and
prints a table of F(t) and the number of c > 0.5 / c < 0.5 regions.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pfhub_common import RESULTS, SOLVERS, count_domains, staged_run  # noqa: E402

TIMES = [1, 10, 100, 1000, 2000, 5000, 1e4, 2e4, 3e4, 5e4, 7e4, 1e5, 1.5e5, 2e5, 3e5]


def pfhub_ic(x, y, c0=0.5, eps=0.01):
    return c0 + eps * (np.cos(0.105 * x) * np.cos(0.11 * y) + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
                       + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y))


def placement(ic):
    """(shape, spacing, initial field or None for the scenario's own)."""
    if ic == "cell":
        return [200, 200], 1.0, None
    if ic == "cell199":
        return [199, 199], 1.0, None
    if ic == "half":
        return [400, 400], 0.5, None
    if ic == "node201":
        x = np.arange(201.0)
    elif ic == "node200":
        x = np.arange(200.0)
    else:
        raise ValueError(ic)
    X, Y = np.meshgrid(x, x, indexing="ij")
    return [len(x), len(x)], 1.0, pfhub_ic(X, Y)


REFERENCE = {"MEMPHIS FD": {1e4: 38.63, 2e4: 26.00, 5e4: 24.07, 1e5: 18.70},
             "MOOSE mfrichtl": {1e4: 40.01, 2e4: 30.63, 5e4: 23.31, 1e5: 18.56},
             "FEniCS smondal": {1e4: 39.78, 2e4: 30.49, 5e4: 23.19, 1e5: 18.48}}


def summary():
    """Table of every bm1b_*.npz at t = 10, 1000, 1e4, 2e4, 5e4, 1e5, a plot of F(t) and the fields."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = sorted(RESULTS.glob("bm1b_*.npz"))
    show = [10, 1000, 1e4, 2e4, 5e4, 1e5]
    print("| run | " + " | ".join(f"F({t:g})" for t in show) + " | domains c>0.5 / c<0.5 at 1e4, 1e5 |")
    print("|---|" + "---|" * (len(show) + 1))
    fig, (ax, *maps) = plt.subplots(1, 1 + len(runs), figsize=(3.2 * (1 + len(runs)), 3.2))
    for run, mp in zip(runs, maps):
        d = np.load(run)
        t, F, dom = list(d["times"]), d["free_energy"], d["domains"]
        cells = [f"{F[t.index(x)]:.2f}" if x in t else "-" for x in show]
        doms = ", ".join(f"{dom[t.index(x)][0]}/{dom[t.index(x)][1]}" for x in (1e4, 1e5) if x in t)
        name = run.stem.removeprefix("bm1b_")
        print(f"| {name} | " + " | ".join(cells) + f" | {doms} |")
        ax.loglog(d["times"][1:], F[1:], label=name, lw=1)
        mp.imshow(d["fields"][-1].T, origin="lower", vmin=0.3, vmax=0.7, cmap="RdBu")
        mp.set_title(f"{name}\nt={t[-1]:g} F={F[-1]:.2f}", fontsize=7)
        mp.axis("off")
    for (code, ref), marker in zip(REFERENCE.items(), "osd"):
        ax.loglog(sorted(ref), [ref[x] for x in sorted(ref)], "k" + marker, mfc="none", label=code)
    ax.set(xlabel="t", ylabel="F", title="PFHub 1b", xlim=(1e3, 1.2e5), ylim=(14, 80))
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RESULTS / "bm1b_summary.png", dpi=90)
    print(f"wrote {RESULTS / 'bm1b_summary.png'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ic", default="cell", choices=["cell", "half", "node201", "node200", "cell199"])
    ap.add_argument("--solver", default="adaptive", choices=list(SOLVERS))
    ap.add_argument("--t-end", type=float, default=1e5)
    ap.add_argument("--dt-max", type=float, default=None, help="override the adaptive solver's dt_max")
    ap.add_argument("--target", type=float, default=None, help="override the adaptive solver's target_change")
    ap.add_argument("--noise", type=float, default=0.0, help="uniform IC noise amplitude (seed 0)")
    ap.add_argument("--laplacian", default="stencil", choices=["stencil", "spectral"])
    ap.add_argument("--summary", action="store_true", help="only tabulate and plot the saved runs")
    args = ap.parse_args(argv)
    if args.summary:
        return summary()
    shape, spacing, initial = placement(args.ic)
    solver = dict(SOLVERS[args.solver])
    if args.dt_max is not None:
        solver["dt_max"] = args.dt_max
    if args.target is not None:
        solver["target_change"] = args.target
    if args.noise:
        if initial is None:
            X, Y = np.meshgrid(*[(np.arange(n) + 0.5) * spacing for n in shape], indexing="ij")
            initial = pfhub_ic(X, Y)
        initial = initial + args.noise * np.random.default_rng(0).uniform(-1, 1, initial.shape)
    if args.laplacian == "spectral":
        from phasefield.operators import spectral

        def continuous(self, axis):
            n, h = self.grid.shape[axis], self.grid.spacing[axis]
            assert self.kinds[axis] == "neumann", self.kinds[axis]
            return -(np.pi * np.arange(n) / (n * h)) ** 2

        spectral.SpectralBasis._axis_eigenvalues = continuous
    times = [t for t in TIMES if t <= args.t_end]
    started = time.perf_counter()
    res = staged_run({"name": "spinodal", "variant": "b", "shape": shape, "spacing": spacing},
                     solver, times, field="c", initial=initial, keep_fields=True, progress=True)
    F = res["scalars"]["free_energy"]
    counts = np.array([count_domains(c) for c in res["fields"]])
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = (f"_noise{args.noise:g}" if args.noise else "") + ("_spectral" if args.laplacian == "spectral" else "") \
        + (f"_dtmax{args.dt_max:g}" if args.dt_max is not None else "") + (f"_target{args.target:g}" if args.target else "")
    out = RESULTS / f"bm1b_{args.ic}_{args.solver}{tag}.npz"
    np.savez_compressed(out, times=res["times"], free_energy=F, domains=counts, fields=np.array(res["fields"]),
                        mass=res["scalars"]["total_mass"])
    print(f"# 1b ic={args.ic} noise={args.noise:g} laplacian={args.laplacian} solver={args.solver} {solver} shape={shape} h={spacing}: wall {time.perf_counter() - started:.0f} s,"
          f" {res['steps']} steps")
    print(f"{'t':>8} {'F':>10} {'c>0.5':>6} {'c<0.5':>6}")
    for t, f, (a, b) in zip(res["times"], F, counts):
        print(f"{t:8g} {f:10.4f} {a:6d} {b:6d}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
