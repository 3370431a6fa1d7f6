"""Benchmark of the swelling scenario: a full lithiation of a few Si particles, 256^2 and 512^2.

Runs the default ``swelling`` scenario (c-Si in Li6PS5Cl, 1C, 10 MPa, to 95 % state of charge or
the cutoff) on each grid with the interface and gradient lengths scaled with the cell size, stepping
the model directly (no output, compilation excluded by a first run of a few steps). Prints, per grid:
the steps taken, the wall time, the wall time per step, the elasticity and stabilisation CG
iterations per step (the last step's count at each 60 s record, weighted by the steps since the last), cell-updates per second (cells x steps / wall) and an effective bandwidth.

The byte model per cell and step counts the elasticity CG (45 float64 words per cell and
iteration, see bench_mechanics.py) and the Cahn-Hilliard update: about 40 words for the fluxes,
limiter and source, and 12 words per stabilisation CG iteration (two FFT passes, the weighted
operator and the vector updates). It is a lower bound on the traffic.

    python experiments/bench_swelling.py                 # 256^2 and 512^2, 4 particles
    python experiments/bench_swelling.py --sizes 1024
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def load_yaml(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))


def simulation_for(size: int, particles: int):
    from phasefield.config import validate_run
    from phasefield.runner import build, stable_dt, time_control

    scenario = load_yaml(ROOT / "configs/scenario/swelling.yaml")
    scenario.pop("defaults")
    spacing = scenario["size"][0] / size
    scenario.update(shape=[size, size], random_particles=particles,
                    interface_thickness=max(3.0 * spacing, 0.06), gradient_length=max(1.25 * spacing, 0.03))
    config = validate_run({"scenario": scenario, "solver": load_yaml(ROOT / "configs/solver/swelling.yaml"),
                           "output": {}})
    simulation = build(config)
    return simulation, time_control(config.solver, stable_dt(simulation)), config


def lithiate(simulation, control, config, t_end):
    """Step from the initial state to ``t_end`` or the stop event; returns (carry, clock, iteration sums)."""
    from phasefield.integrate import empty_records, make_advance
    from phasefield.runner import device_parameters, initial_carry

    advance = make_advance(simulation.stepper, control, simulation.diagnostics, 60.0)
    params = device_parameters(simulation.parameters, config.solver.precision)
    carry = initial_carry(simulation, params)
    empty = empty_records(simulation.diagnostics, params, carry)
    clock = {"t": 0.0, "step": 0, "dt": config.solver.dt}
    mechanics = stabilisation = 0
    record = 60.0
    t = 0.0
    while t < t_end:
        t = min(t + record, t_end)
        steps_before = int(clock["step"])
        carry, clock, _, _ = advance(params, carry, clock, t, empty)
        clock = {k: v.item() for k, v in clock.items()}
        steps = int(clock["step"]) - steps_before
        mechanics += steps * int(carry["cache"]["mechanics_iterations"])  # per-record sample, times the steps
        stabilisation += steps * int(carry["cache"]["filter_iterations"])
        if clock["t"] < t * (1 - 1e-12):
            break
    jax.block_until_ready(carry)
    return carry, clock, mechanics, stabilisation


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--particles", type=int, default=4)
    args = parser.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"{'grid':>9s} {'steps':>6s} {'wall s':>8s} {'ms/step':>8s} {'mech its':>9s} {'stab its':>9s} "
          f"{'CU/s':>9s} {'GB/s':>6s} {'SOC':>6s} {'t end s':>8s}")
    from phasefield.runner import device_parameters

    for size in args.sizes:
        simulation, control, config = simulation_for(size, args.particles)
        lithiate(simulation, control, config, 120.0)  # compile
        start = time.perf_counter()
        carry, clock, mechanics, stabilisation = lithiate(simulation, control, config, config.scenario.t_end)
        wall = time.perf_counter() - start
        steps = int(clock["step"])
        cells = size * size
        words = 45 * mechanics + (40 * steps + 12 * stabilisation)
        params = device_parameters(simulation.parameters, config.solver.precision)
        soc = float(jax.jit(simulation.diagnostics)(params, carry)["state_of_charge"])
        print(f"{size:>4d}^2    {steps:6d} {wall:8.1f} {1e3 * wall / steps:8.1f} {mechanics / steps:9.1f} "
              f"{stabilisation / steps:9.1f} {cells * steps / wall:9.3g} {8 * words * cells / wall / 1e9:6.2f} "
              f"{soc:6.3f} {clock['t']:8.0f}", flush=True)


if __name__ == "__main__":
    main()
