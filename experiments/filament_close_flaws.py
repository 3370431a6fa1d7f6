"""Two close flaws: how the coupled Li pressures and deposits converge, and whether the crack depends on the cap.

``python experiments/filament_close_flaws.py [--caps 200 20 5 2] [--steps 6] [--shape 32]``

Two 3 um flaws 2 um (4 cells) apart along y in a 16 um LLZO slab (the closest validation allows), held at -200 mV,
``shape`` x ``shape`` cells, ell = 1 um; ``steps`` steps from an eighth of the filling time, growing by 1.5. For each
cap on the coupled iterations (``coupled_sweeps``: Newton steps on the pressures, Jacobi sweeps on the deposits) it
prints, per step, the two residuals, ``converged``, the crack depth and the two Li pressures. A cap that changes the
crack or the pressures leaves the step unconverged.

Measured (2 shared CPU cores, 2026-12-01, 80 s; safeguarded Newton steps on the pressures)::

    cap   largest pressure residual   largest deposit residual   crack after 6 steps (um)   pressures (MPa)
    200   8.8e-16                     1.9e-14                    5.0                        439.030 / 438.975
     20   1.3e-15                     1.6e-5                     5.0                        438.966 / 439.023
      5   8.7e-11                     1.1e-1                     7.5                        340.27 / 342.22
      2   9.6e-1                      4.6                        10.0                       445.81 / 411.50

(The deposits' Jacobi sweeps reach round-off, about 2e-14, in the last steps: at the default cap they stop there.)

With Gauss-Seidel sweeps on the pressures (before): cap 200 left residuals up to 4e-8 from the second step, and a
cap of 20 residuals of 2e-2 and a crack of 9.5 um.
"""
import argparse
import dataclasses

import jax

from phasefield.config import DecomposedTimeSolverConfig
from phasefield.models import filament as fm


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", type=int, nargs="+", default=[200, 20, 5, 2])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--shape", type=int, default=32)
    args = parser.parse_args()
    base = fm.Config(size=[16.0, 16.0], shape=[args.shape, args.shape], length=1.0, max_iterations=10,
                     pressure_passes=40, pressure_tolerance=1e-5, overpotential=-0.2,
                     flaws=[[3.0, 7.0, 0.0], [3.0, 9.0, 0.0]])
    simulation = fm.build(base, DecomposedTimeSolverConfig())
    step, diagnostics = jax.jit(simulation.stepper.step), jax.jit(simulation.diagnostics)
    print("cap  step  pressure residual  deposit residual  converged  crack (um)  pressures (MPa)")
    for cap in args.caps:
        config = dataclasses.replace(base, coupled_sweeps=cap)
        carry = simulation.stepper.init(config, simulation.initial_fields())
        dt = 0.125 * fm.filling_time(config)
        for index in range(args.steps):
            carry = step(config, carry, dt)
            dt *= 1.5
            r = {k: float(v) for k, v in diagnostics(config, carry).items()}
            print(f"{cap:3d}  {index + 1:4d}  {r['pressure_sweep_residual']:17.1e}  {r['deposit_sweep_residual']:16.1e}  "
                  f"{int(r['converged']):9d}  {r['crack_depth']:10.2f}  {r['li_pressure_1']:.3f} / "
                  f"{r['li_pressure_2']:.3f}")


if __name__ == "__main__":
    main()
