"""Linear stability of a flat Li front (dendrite model, reaction formulation, single-ion electrolyte):
the growth rate of a seeded sinusoid against the sharp-interface dispersion relation (physics.md 3.6
item 7 with the model's Butler-Volmer kinetics and a finite cell).

Sharp-interface limit of the model. Metal (x < h(y, t)) an equipotential at ``V``; electrolyte
``h < x < L`` with ``div(sigma grad phi) = 0``, ``phi(L) = 0`` (counter electrode); deposition current
``i = i0 [e^{-a A} - e^{(1-a) A}]``, ``A = f (V - phi) + (gamma Omega / F) f K`` (``c = c_ref``,
``f = F/RT``, ``Omega = 1/c_s``, ``K`` the curvature, positive on a bump); ``dh/dt = Omega i / F``.
Flat front: ``phi_0 = -(i/sigma)(L - x)``, ``V = eta_0 - i l / sigma``, ``l = L - h_0``. Perturb
``h = h_0 + d e^{iky}``, ``phi = phi_0 + B sinh(k (L - x)) e^{iky}`` (``K = k^2 d``). Linearising
Butler-Volmer about the operating point, ``i_1 = (phi_1(h) - (gamma Omega/F) k^2 d) / R_ct`` with the
local ``R_ct = d eta / d i = 1 / (f i0 [a e^{-a f eta_0} + (1-a) e^{(1-a) f eta_0}])``; the
electrolyte gives ``phi_1(h) = (i/sigma) d - i_1 tanh(k l) / (sigma k)``. Hence

    s(k) = (Omega i / F) k [1 - (sigma gamma Omega / (F i)) k^2] / (tanh(k l) + k l_W),  l_W = sigma R_ct,

the ohmic limit of physics.md 3.6 item 7 with ``tanh(k l)`` for the finite cell; marginal
``k_c = sqrt(F i / (sigma gamma Omega))``. Held voltage: the mean current drifts as the front advances
(``l`` shrinks), so the mode's log-amplitude change is compared with ``int s(k; i(t), l(t)) dt``, ``i``
from the mean front speed.

Measurement: the domain is ``L_y`` wide with no-flux side walls, the seeded surface is
``h_0 + a cos(k y)``, ``k = m pi / L_y``; the interface position per column is the metal thickness
``int xi dx`` (exact for a tanh profile at any offset in the cell), its mode ``m`` amplitude the
cosine projection. One compiled step serves all modes (they differ only in the initial ``xi``).

Parameters: single-ion electrolyte 1 S/m, R_ct = 0.05 ohm cm^2 (i0 = 514 mA/cm^2: l_W ~ 5 um, so the
ohmic and the kinetic terms both count; with Li's usual i0 of a few mA/cm^2 l_W is millimetres and no mode
grows measurably on a small grid), gamma = 0.5 J/m^2, held -0.425 mV (i ~ 1.9 mA/cm^2, k_c ~ 0.5 / um),
16 x 24 um cell, interface 1 um, seeded amplitude 0.1 um, rates over t = 200..2000 s (the front advances
~4 um). ``profile_relaxation`` 1 (its default 100 gives the same rates: dt L W >> 1 either way).

Measured with the model's Allen-Cahn upkeep moving no metal (``conserve_metal_locally``; 4 cells across,
96 x 64, ``python experiments/dendrite_linear_stability.py --dt 20 7``, 30-35 s wall per dt on a loaded
2-core machine; the adaptive dt of this front at target_change 0.02 is ~7 s). "AC step alone" is the
relative change of the mode per curvature-free Allen-Cahn step with that conservation, no reaction
(``allen_cahn_damping``); "ratio without it" subtracts it:

    m  k (1/um)  s_theory (1/s)  ratio, dt 20 s   7 s     AC step alone (7 s)   ratio without it (7 s)
    1  0.196      2.215e-04      1.002            1.002    3.9e-05              0.977
    2  0.393      1.549e-04      1.029            1.018    4.4e-05              0.978
    3  0.589     -9.03e-05       0.882            0.944    4.0e-05              1.007
    4  0.785     -4.92e-04       0.969            0.996   -1.2e-05              0.992
    5  0.982     -1.044e-03      0.985            1.013   -2.0e-04              0.986

Every mode is within 6 % at 7 s (tests/test_electrochemistry.py checks modes 1-3 within 10 % over
1000 s). Before that conservation, the relaxation itself damped each mode by ``c k^2`` per step
(``c ~ 1.8e-3 um^2``), so the error grew as dt fell. The numbers below are from that version:

    m  k (1/um)  s_theory (1/s)   ratio s_measured / s_theory       AC step alone   ratio without it
                                  dt = 40 s   20 s    10 s    7 s   per step (20 s) 40 s   20 s   10 s   7 s
    1  0.196      2.212e-04       0.987      0.986   0.978   0.973  -1.27e-04       1.002  1.014  1.034  1.053
    2  0.393      1.544e-04       0.966      0.923   0.868   0.836  -2.76e-04       1.011  1.012  1.044  1.084
    3  0.589     -9.07e-05        1.098      1.321   1.563   1.712  -5.67e-04       0.941  1.008  0.946  0.839
    4  0.785     -4.93e-04        1.041      1.116   1.204   1.259  -1.06e-03       0.986  1.008  0.991  0.958
    5  0.982     -1.044e-03       1.041      1.098   1.166   1.211  -1.84e-03       0.997  1.010  0.992  0.965

The cause was the counter term ``L kappa |grad xi| K`` (centred differences): it does not cancel the
curvature part of the spectral ``kappa lap xi`` exactly, and with dt L W >> 1 (a projection onto the
discrete tanh profile each step) the mismatch moved the interface by ``~ -c K`` per step. The same
version, at finer cells (``--cells 6 8``):

    m  s_theory    ratio, 6 cells, dt 10 s   without AC   ratio, 8 cells, dt 5 s   without AC
    1  2.22e-04    0.984                     0.996        0.981                    0.997
    2  1.56e-04    0.907                     0.977        0.889                    0.982
    3 -8.9e-05     1.396                     1.096        1.469                    1.074
    4 -4.9e-04     1.138                     1.030        1.161                    1.020
    5 -1.04e-03    1.111                     1.021        1.126                    1.011

Fixed steps of 20 s at 6 cells and of 10 and 20 s at 8 cells went numerically unstable after ~400-800 s
in that version (the interface roughens at the grid scale); not re-measured since.

    python experiments/dendrite_linear_stability.py --dt 20 7
    python experiments/dendrite_linear_stability.py --cells 6 --dt 10
    python experiments/dendrite_linear_stability.py --cells 8 --dt 5
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from phasefield.config import validate_run
from phasefield.physics.electrochemistry import FARADAY, GAS_CONSTANT
from phasefield.runner import build, device_parameters

T = 298.15
F_RT = FARADAY / (GAS_CONSTANT * T)
SITE = 7.64e4  # mol/m^3: Omega = 1 / SITE
GAMMA = 0.5  # J/m^2
SIGMA = 1.0  # S/m
RESISTANCE = 0.05  # ohm cm^2: i0 = RT / (F R) = 514 mA/cm^2, l_W ~ 5 um at the operating point
WIDTH, LENGTH, FRONT = 16.0, 24.0, 4.0  # um: cell width (y), length (x), initial front
VOLTAGE = -4.25e-4  # V: 1.7 mA/cm^2 at the start, 1.9 on average as the gap shrinks (k_c ~ 0.5 / um)
AMPLITUDE = 0.1  # um
RELAXATION = 1.0  # profile_relaxation


def scenario(cells_across: float = 4.0, interface: float = 1.0, relaxation: float = RELAXATION) -> dict:
    """The flat-front cell with ``cells_across`` cells over the interface thickness ``interface`` (um)."""
    spacing = interface / cells_across
    return {"size": [LENGTH, WIDTH], "shape": [round(LENGTH / spacing), round(WIDTH / spacing)],
            "electrode_position": FRONT, "interface_thickness": interface, "short_circuit_gap": 4.0,
            "electrolyte": "single_ion", "conductivity_electrolyte": SIGMA, "interface_resistance": RESISTANCE,
            "temperature": T, "reference_temperature": T, "interface_energy": GAMMA, "site_density": SITE,
            "bulk_concentration": 1000.0, "reference_concentration": 1000.0, "voltage": VOLTAGE,
            "noise_amplitude": 0.0, "anisotropy_strength": 0.0, "profile_relaxation": relaxation}


def dispersion(k, current, length):
    """``s(k)`` (1/s) of the sharp interface (module docstring): ``k`` in 1/um, ``current`` the flat
    front's deposition current density (A/m^2, > 0), ``length`` the electrolyte gap ``l`` (um)."""
    omega = 1.0 / SITE
    exchange = 1.0 / (F_RT * RESISTANCE * 1e-4)  # A/m^2: RT / (F R_ct) at equilibrium
    eta = -2.0 / F_RT * np.arcsinh(current / (2.0 * exchange))  # alpha = 1/2
    local = 1.0 / (F_RT * exchange * 0.5 * (np.exp(-0.5 * F_RT * eta) + np.exp(0.5 * F_RT * eta)))  # ohm m^2
    wagner = SIGMA * local * 1e6  # um
    speed = omega * current / FARADAY * 1e6  # um/s
    capillary = SIGMA * GAMMA * omega / (FARADAY * current) * 1e12  # um^2
    return speed * k * (1.0 - capillary * k**2) / (np.tanh(k * length) + k * wagner)


def measure(modes, t_end: float, steps: int, cells_across: float = 4.0, interface: float = 1.0,
            amplitude: float = AMPLITUDE, relaxation: float = RELAXATION):
    """Run the seeded fronts of ``modes`` (all at once, ``vmap``) with ``steps`` fixed steps to ``t_end``.

    Returns ``(times, amplitudes [mode, time] in um, mean front [mode, time] in um)``."""
    cell = scenario(cells_across, interface, relaxation)
    config = validate_run({"scenario": {"name": "dendrite", "t_end": t_end, **cell},
                           "solver": {"dt": t_end / steps, "adaptive": False}, "output": {}})
    simulation = build(config)
    params = device_parameters(simulation.parameters, "float64")
    grid = simulation.grid
    x, y = grid.axis_coordinates(0)[:, None], grid.axis_coordinates(1)[None, :]
    slope = 2.0 / interface
    waves = np.array([m * np.pi / WIDTH for m in modes])
    fields = simulation.initial_fields()
    xi0 = np.stack([0.5 * (1.0 - np.tanh(slope * (x - FRONT - amplitude * np.cos(k * y)))) for k in waves])
    carries = jax.vmap(lambda xi: simulation.stepper.init(params, {**fields, "xi": xi}))(jnp.asarray(xi0))
    dx = grid.spacing[0]
    projection = jnp.asarray(2.0 / grid.shape[1] * np.cos(waves[:, None] * y))  # [mode, y]

    def observe(carry, row):
        height = jnp.sum(carry["state"]["xi"], axis=0) * dx  # metal thickness per column, um
        return jnp.sum(row * height), jnp.mean(height)

    dt = t_end / steps

    @jax.jit
    def run(carries):
        def one(carry, row):
            def body(c, _):
                c = simulation.stepper.step(params, c, dt)
                return c, observe(c, row)

            return jax.lax.scan(body, carry, None, length=steps)[1]

        return jax.vmap(one)(carries, projection)

    start = jax.vmap(observe)(carries, projection)
    amplitudes, fronts = run(carries)
    amplitudes = np.concatenate([np.asarray(start[0])[:, None], np.asarray(amplitudes)], axis=1)
    fronts = np.concatenate([np.asarray(start[1])[:, None], np.asarray(fronts)], axis=1)
    return np.linspace(0.0, t_end, steps + 1), amplitudes, fronts


def compare(times, amplitudes, fronts, modes, skip: float = 0.1):
    """Measured and predicted mean growth rates (1/s) over ``[skip t_end, t_end]``: the change of
    ``ln |A|`` over the window and ``int s(k; i(t), l(t)) dt`` over it, both divided by its length."""
    first = int(round(skip * (len(times) - 1)))
    window = times[-1] - times[first]
    rows = []
    for m, amplitude, front in zip(modes, amplitudes, fronts):
        k = m * np.pi / WIDTH
        speed = np.gradient(front, times)  # um/s
        current = speed * 1e-6 * FARADAY * SITE  # A/m^2
        rate = dispersion(k, current, LENGTH - front)
        predicted = np.trapezoid(rate[first:], times[first:]) / window
        measured = np.log(abs(amplitude[-1]) / abs(amplitude[first])) / window
        rows.append((m, k, float(np.mean(current[first:])), measured, predicted))
    return rows


def allen_cahn_damping(mode: int, cells_across: float = 4.0, interface: float = 1.0, relaxation_time: float = 100.0,
                       steps: int = 10, amplitude: float = AMPLITUDE):
    """The relative change of the mode's amplitude per curvature-free Allen-Cahn step alone (no reaction),
    each of ``relaxation_time`` in units of the profile's ``1 / (L W)``: zero for an exact counter term."""
    from phasefield.grid import Boundary
    from phasefield.models.dendrite import Parameters, make_grid
    from phasefield.operators import SpectralBasis
    from phasefield.physics.electrodeposition import allen_cahn_update, conserve_metal_locally, interface_curvature

    config = validate_run({"scenario": {"name": "dendrite", **scenario(cells_across, interface)}, "solver": {},
                           "output": {}}).scenario
    grid, p = make_grid(config), Parameters.from_config(config)
    basis = SpectralBasis(grid, Boundary.uniform(2, "neumann"))
    x, y = grid.axis_coordinates(0)[:, None], grid.axis_coordinates(1)[None, :]
    k = mode * np.pi / WIDTH
    xi = jnp.asarray(0.5 * (1.0 - np.tanh(2.0 / interface * (x - FRONT - amplitude * np.cos(k * y)))))

    def amplitude_of(field):
        return float(jnp.sum(jnp.cos(k * y) * jnp.sum(field, axis=0))) * 2.0 / grid.shape[1] * grid.spacing[0]

    field = xi
    for _ in range(steps):
        relaxed = allen_cahn_update(field, relaxation_time, basis, 1.0 / p.barrier, p.barrier, p.kappa, None, None,
                                    curvature=interface_curvature(field, grid))
        field = conserve_metal_locally(field, relaxed, basis, interface)[0]
    return (amplitude_of(field) / amplitude_of(xi) - 1.0) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cells", type=float, nargs="+", default=[4.0], help="cells across the interface")
    parser.add_argument("--interface", type=float, default=1.0, help="interface thickness 2/k, um")
    parser.add_argument("--t-end", type=float, default=2000.0, help="simulated time, s")
    parser.add_argument("--dt", type=float, nargs="+", default=[40.0, 20.0, 10.0], help="fixed steps, s")
    parser.add_argument("--relaxation", type=float, default=RELAXATION, help="profile_relaxation")
    args = parser.parse_args()
    exchange_speed = 1.0 / (F_RT * RESISTANCE * 1e-4) / (FARADAY * SITE) * 1e6  # v0 = i0 / (F c_s), um/s
    for cells in args.cells:
        for dt in args.dt:
            started = time.perf_counter()
            steps = round(args.t_end / dt)
            times, amplitudes, fronts = measure(args.modes, args.t_end, steps, cells, args.interface,
                                                relaxation=args.relaxation)
            relaxation_time = dt * args.relaxation * 2.0 / args.interface * exchange_speed  # dt L W
            print(f"\ninterface {args.interface:g} um, {cells:g} cells across, profile_relaxation {args.relaxation:g}, "
                  f"dt = {dt:g} s (dt L W = {relaxation_time:.3g}), {time.perf_counter() - started:.1f} s wall")
            print("  m  k (1/um)  k*delta  i (mA/cm^2)  s_measured (1/s)  s_theory (1/s)  ratio  "
                  "AC step alone (per step)  ratio without it")
            for m, k, current, measured, predicted in compare(times, amplitudes, fronts, args.modes):
                damping = allen_cahn_damping(m, cells, args.interface, relaxation_time)
                print(f"  {m}  {k:7.4f}   {k * args.interface:6.3f}   {current / 10:9.4f}   {measured:14.4e}"
                      f"   {predicted:13.4e}   {measured / predicted:6.3f}   {damping:12.3e}"
                      f"   {(measured - damping / dt) / predicted:12.3f}")


if __name__ == "__main__":
    main()
