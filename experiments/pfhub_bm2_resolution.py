"""PFHub 2's final free energy against the cell size: the last frame of a ``scenario=pfhub_ostwald`` run at
dx = 1, refined to finer grids and relaxed there.

    python run.py scenario=pfhub_ostwald scenario.variant=b scenario.t_end=50000 output.interval=1000 \
        hydra.run.dir=runs/bm2b          # about 35 CPU minutes
    python experiments/pfhub_bm2_resolution.py runs/bm2b/run.h5 [--spacings 1 0.5 0.25] [--relax 200]

The final state is a few grains whose boundaries no longer move on the time scale of the run; almost all
of its F is interface energy, which a grid of dx = 1 resolves to a few per cent (the diffuse interfaces are
about 2-3 cells wide). Each field is interpolated linearly between cell centres onto the finer grid (no-flux
or periodic as the run's variant), then relaxed by the stock semi-implicit step (stabilisation 4 and 20,
stable at any dt) at fixed ``--dt`` for ``--relax`` time units: the interfaces take their discrete profile
within a few time units. F is printed at the relaxation times, with the wall time and cell updates per
second; the change over the last half says whether it has settled. The uploads' final states (pfhub.md 2.4):
2a 326.9-335.8 (328 +- 2 %), 2b 164.1-164.6 (164.4 +- 2 %; FEniCS 282.6, another state).
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import yaml

from phasefield.grid import Boundary, Grid
from phasefield.io import open_run_file, read_run
from phasefield.models import pfhub_ostwald

jax.config.update("jax_enable_x64", True)


def refine(u: np.ndarray, factor: int, periodic: bool) -> np.ndarray:
    """Cell-centred ``u`` on a grid ``factor`` times finer per axis, linear between the coarse centres (the
    edges held, no flux; or wrapped, periodic)."""
    for axis in range(u.ndim):
        n = u.shape[axis]
        fine = (np.arange(n * factor) + 0.5) / factor - 0.5  # fine centres in coarse-index units
        moved = np.moveaxis(u, axis, -1)
        if periodic:
            padded = np.concatenate([moved[..., -1:], moved, moved[..., :1]], axis=-1)
            nodes = np.arange(-1, n + 1)
        else:
            padded, nodes = moved, np.arange(n)
            fine = np.clip(fine, 0, n - 1)
        flat = padded.reshape(-1, padded.shape[-1])
        out = np.stack([np.interp(fine, nodes, row) for row in flat]).reshape(*moved.shape[:-1], fine.size)
        u = np.moveaxis(out, -1, axis)
    return u


def relax(fields: dict, spacing: float, scenario: dict, dt: float, t_relax: float, reports: int = 4):
    """F at ``reports`` equal times over ``t_relax`` from ``fields`` (cell size ``spacing``; the run's
    ``scenario`` parameters), stock step."""
    shape = next(iter(fields.values())).shape
    grid = Grid(shape, spacing)
    boundary = Boundary.uniform(2, "periodic" if scenario["variant"] == "a" else "neumann")
    solver = pfhub_ostwald.SolverConfig()
    params = pfhub_ostwald.Config(**{**scenario, "shape": list(shape), "spacing": spacing})
    stepper = pfhub_ostwald.make_stepper(grid, boundary, "sbdf2", solver.stabilization,
                                         order_parameter_stabilization=solver.order_parameter_stabilization)
    steps = int(round(t_relax / reports / dt))
    energy = jax.jit(lambda state: pfhub_ostwald.free_energy(state, grid, boundary, params))
    advance = jax.jit(lambda carry: jax.lax.fori_loop(0, steps, lambda i, c: stepper.step(params, c, dt), carry))
    carry = jax.jit(stepper.init)(params, fields)
    values = [float(energy(carry["state"]))]
    start = time.perf_counter()
    for _ in range(reports):
        carry = advance(carry)
        values.append(float(energy(carry["state"])))
    wall = time.perf_counter() - start
    mass = float(np.sum(np.asarray(carry["state"]["c"]))) * spacing**2
    return values, wall, steps * reports * np.prod(shape) / wall, mass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run.h5 of a scenario=pfhub_ostwald run at dx = 1")
    ap.add_argument("--spacings", type=float, nargs="+", default=[1.0, 0.5, 0.25])
    ap.add_argument("--relax", type=float, default=200.0, help="relaxation time on each grid")
    ap.add_argument("--dt", type=float, default=0.5, help="fixed step of the relaxation")
    args = ap.parse_args(argv)
    with open_run_file(args.run) as f:
        config = yaml.safe_load(f.attrs["config"])
    scenario = config["scenario"]
    if scenario["name"] != "pfhub_ostwald":
        raise SystemExit(f"{args.run}: not a pfhub_ostwald run")
    run = read_run(args.run)
    base = float(scenario["spacing"])
    last = {name: np.asarray(run["fields"][name][-1], np.float64) for name in pfhub_ostwald.FIELDS}
    print(f"2{scenario['variant']}: last frame t = {run['time'][-1]:g} at dx = {base:g}, "
          f"F = {run['scalars']['free_energy'][-1]:.4f}")
    print("| dx | grid | F after 0 / 1/4 / 1/2 / 3/4 / 1 of the relaxation | mass | wall s | cell updates/s |")
    print("|---|---|---|---|---|---|")
    for spacing in args.spacings:
        factor = base / spacing
        if abs(factor - round(factor)) > 1e-9 or round(factor) < 1:
            raise SystemExit(f"--spacings: {spacing} does not divide the run's dx = {base}")
        fields = {k: refine(v, int(round(factor)), scenario["variant"] == "a") for k, v in last.items()}
        values, wall, rate, mass = relax(fields, spacing, scenario, args.dt, args.relax)
        shape = "x".join(str(n) for n in fields["c"].shape)
        print(f"| {spacing:g} | {shape} | {' / '.join(f'{v:.3f}' for v in values)} | {mass:.6f} | {wall:.0f} "
              f"| {rate:.3g} |", flush=True)


if __name__ == "__main__":
    main()
