"""Galvanostatic plating through an isolated Li layer in a leaky single-ion electrolyte (a bipolar electrode).

The default scenario (96^2 cells of 0.5 um, three nuclei on the front at 6 um, the far wall at 48 um) with a
single-ion electrolyte (``conductivity_electrolyte`` 0.12 S/m), electronic leakage (1e-6 S/m) and a flat Li layer
across the cell, isolated between the front and the counter electrode (default 24-30 um), under
``control=current``. The layer floats: it strips on its electrode side and plates on its counter side, so the
electrode potential approaches the flat cell's V = 3 eta_BV(i) - i (g1 + g2) / sigma (the front and the layer's
two faces; g1, g2 the gaps on either side of the layer; the nuclei shorten g1 a little). Prints, per current and
record, the time, V, that estimate, the external, deposit and leakage currents (mA/cm^2) and passed / (deposited
+ leaked) - 1.

    python experiments/dendrite_floating_layer.py --currents 1 10 --t-end 20
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from phasefield.physics.electrochemistry import FARADAY, GAS_CONSTANT

ROOT = Path(__file__).resolve().parents[1]


def config(current: float, t_end: float, leakage: float) -> dict:
    scenario = OmegaConf.to_container(OmegaConf.load(ROOT / "configs/scenario/dendrite.yaml"))
    scenario.pop("defaults")
    scenario.update(electrolyte="single_ion", electronic_conductivity=leakage, control="current",
                    current_density=current, t_end=t_end)
    solver = OmegaConf.to_container(OmegaConf.load(ROOT / "configs/solver/dendrite.yaml"))
    return {"scenario": scenario, "solver": solver, "output": {}}


def bipolar_voltage(scenario: dict, current: float, layer: tuple[float, float]) -> float:
    """Flat cell: three Butler-Volmer overpotentials (alpha = 1/2) and the ohmic drop of the two gaps, V;
    ``current`` in mA/cm^2."""
    i, i0 = current * 10, scenario["exchange_current_density"] * 10  # A/m^2
    f = FARADAY / (GAS_CONSTANT * scenario["temperature"])
    gaps = (layer[0] - scenario["electrode_position"]) + (scenario["size"][0] - layer[1])  # um
    return -3 * 2 / f * math.asinh(i / (2 * i0)) - i * gaps * 1e-6 / scenario["conductivity_electrolyte"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--currents", type=float, nargs="+", default=[1.0, 10.0], help="mA/cm^2")
    parser.add_argument("--t-end", type=float, default=20.0, help="s")
    parser.add_argument("--records", type=int, default=4)
    parser.add_argument("--layer", type=float, nargs=2, default=[24.0, 30.0], help="um from the electrode wall")
    parser.add_argument("--leakage", type=float, default=1e-6, help="electronic conductivity, S/m")
    args = parser.parse_args()
    from phasefield.config import validate_run
    from phasefield.integrate import integrate
    from phasefield.runner import build, device_parameters, stable_dt, time_control

    for current in args.currents:
        run_config = validate_run(config(current, args.t_end, args.leakage))
        simulation = build(run_config)
        scenario = vars(run_config.scenario)
        params = device_parameters(simulation.parameters, run_config.solver.precision)
        fields = simulation.initial_fields()
        x = simulation.grid.coordinates()[0]
        a, b = args.layer
        layer = 0.5 * (1.0 - np.tanh(2.0 / scenario["interface_thickness"] * np.maximum(a - x, x - b)))
        fields["xi"] = np.broadcast_to(np.maximum(fields["xi"], layer), simulation.grid.shape).copy()
        rows = []
        record = args.t_end / args.records
        start = time.perf_counter()
        integrate(simulation.stepper, time_control(run_config.solver, stable_dt(simulation)), params,
                  simulation.stepper.init(params, fields), {"t": 0.0, "step": 0, "dt": run_config.solver.dt},
                  args.t_end, record, record, simulation.diagnostics,
                  lambda carry, clock, records, frame: rows.extend((c["t"], c["step"], s) for c, s in records))
        wall = time.perf_counter() - start
        expected = bipolar_voltage(scenario, current, (a, b))
        print(f"{current:g} mA/cm^2, layer {a:g}-{b:g} um, leakage {args.leakage:g} S/m: {wall:.0f} s wall; "
              f"flat-cell estimate V = {expected:.4f} V")
        print(f"{'t s':>7} {'step':>5} {'V':>8} {'V/est-1':>8} {'I':>8} {'deposit':>8} {'leak':>9} {'balance':>9}")
        for t, step, s in rows:
            s = {k: float(v) for k, v in s.items()}
            balance = s["passed_charge"] / (s["deposited_charge"] + s["leaked_charge"]) - 1
            print(f"{t:7.3g} {int(step):5d} {s['electrode_potential']:8.4f} {s['electrode_potential'] / expected - 1:8.4f} "
                  f"{s['cell_current_density']:8.4f} {s['current_density']:8.4f} {s['leakage_current_density']:9.2e} "
                  f"{balance:9.1e}")


if __name__ == "__main__":
    main()
