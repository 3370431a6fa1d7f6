"""Li balance of the grand_potential formulation (Hong & Viswanathan 2018) on the Hong setup.

Steps ``scenario=dendrite_hong2018_gp`` at a fixed dt (Hong's 0.02 s by default) and prints, against time:

* ``drift``: total Li ``sum (1 - h) c_l + d_v h c_s`` less its initial value less the far wall's inflow
  (this scheme: conservative, backward Euler in the Li content; its drift is the Newton tolerance);
* ``chi form``: what MOOSE's form, ``chi dw/dt + (d_v c_s - c_l) h'(eta) deta/dt = div J`` (backward Euler,
  coefficients at the step's end, as a converged implicit step has them), would book as the Li change of
  each step along the same trajectory, less the true change ``sum n' - sum n``, accumulated: an estimate of
  the Li that form creates (a MOOSE run follows its own trajectory), not a MOOSE result.

    python experiments/grand_potential_li_balance.py --shape 100 100 --t-end 30     # 2 um cells
"""
from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from dendrite_hong2018 import load_config
from phasefield.config import validate_run
from phasefield.models.dendrite import electrolyte_sites, site_energies
from phasefield.physics.electrochemistry import interpolation, interpolation_slope
from phasefield.physics.grand_potential import li_content, site_fraction, susceptibility
from phasefield.runner import build, device_parameters, initial_carry


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=2, default=[100, 100], help="cells (200 200: Hong's 1 um)")
    parser.add_argument("--t-end", type=float, default=30.0, help="s")
    parser.add_argument("--dt", type=float, default=0.02, help="fixed step, s")
    parser.add_argument("--reports", type=int, default=10, help="rows printed")
    args = parser.parse_args()
    data = load_config({"shape": list(args.shape), "t_end": args.t_end}, "grand_potential")
    config = validate_run({**data, "solver": {**data["solver"], "adaptive": False, "dt": args.dt}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")
    carry = initial_carry(simulation, params)
    sites, scale = site_energies(params), float(electrolyte_sites(config.scenario, np))
    per_area = simulation.grid.cell_volume / float(np.prod(simulation.grid.lengths[1:])) * 1e-6 * scale  # mol/m^2

    @jax.jit
    def step(carry):
        new = simulation.stepper.step(params, carry, args.dt)
        xi, w, xi_new, w_new = carry["state"]["xi"], carry["state"]["w"], new["state"]["xi"], new["state"]["w"]
        h, h_new = interpolation(xi), interpolation(xi_new)
        true = li_content(w_new, h_new, sites) - li_content(w, h, sites)
        source = sites.site_ratio * site_fraction(w_new, sites.metal) - site_fraction(w_new, sites.electrolyte)
        booked = susceptibility(w_new, h_new, sites) * (w_new - w) + source * interpolation_slope(xi_new) * (xi_new - xi)
        return new, (jax.numpy.sum(booked - true) * per_area, new["cache"]["transport_iterations"])

    steps = int(round(args.t_end / args.dt))
    every = max(1, steps // args.reports)
    defect, largest_newton, start = 0.0, 0, time.perf_counter()
    total0 = float(carry["state"]["li_initial_total"]) * 1e-6 * config.scenario.reference_concentration
    print(f"{'t [s]':>7} {'total Li [mol/m^2]':>19} {'drift [mol/m^2]':>16} {'chi form [mol/m^2]':>19} {'height [um]':>11}")
    for n in range(1, steps + 1):
        carry, (step_defect, newton) = step(carry)
        defect += float(step_defect)
        largest_newton = max(largest_newton, int(newton))
        if n % every == 0 or n == steps:
            scalars = simulation.diagnostics(params, carry)
            print(f"{n * args.dt:7.2f} {float(scalars['total_li']):19.8f} {float(scalars['li_drift']):16.3e} "
                  f"{defect:19.3e} {float(scalars['dendrite_height']):11.2f}")
    print(f"{steps} steps of {args.dt} s in {time.perf_counter() - start:.0f} s; most Newton updates in a step "
          f"{largest_newton}; initial total {total0:.6g} mol/m^2")


if __name__ == "__main__":
    main()
