"""Issue 16 item 7: what small strain misses at 300 % volume change (docs/finite_strain.md).

One Si cylinder (radius 1 um, plane strain) lithiated uniformly to the volume ratio ``J = 1 + beta c``
(beta = 3: J = 1.5, 2, 3, 4 at c = 1/6, 1/3, 2/3, 1) in the Li6PS5Cl matrix, elastic (no yield), no stack
pressure. The ``swelling`` model's own mechanics (its ``init``: moduli mix, phase-wise Hencky eigenstrain,
periodic CG solve) against the small-strain (Lame) solution with the model's Hencky eigenstrain
``ln(J)/3`` and with the linear one ``J^(1/3) - 1``, and against the finite-strain solution
(compressible neo-Hookean particle and matrix, ``F = F_e J^(1/3)``, phasefield.analysis.finite_strain).
The moduli are the model's at that c: particle ``E = 130 + (40 - 130) c`` GPa, nu 0.22; matrix 22 GPa, 0.3.

    PYTHONPATH=. python experiments/swelling_finite_strain.py             # 16 um cell, 256^2 (about a minute)
    PYTHONPATH=. python experiments/swelling_finite_strain.py --size 8 --shape 128 --write

Model measures (periodic cell, diffuse surface of width w = 0.2 um):
pressure: ``-n.sigma.n`` of the cell stress on the interface band (0.25 < psi < 0.75; the model's
``interface_normal_stress_mean``); particle hoop: the model's ``surface_hoop_stress`` (particle phase,
0.75 < psi < 0.95); radius change: the in-plane strain of the core (psi > 0.99; uniform in the Lame
solution, so it is u(A)/A); matrix hoop: the matrix phase's hoop stress ``C_m eps`` times ``(r/A)^2``
averaged over the matrix annulus A + 2w < r < 2A (Lame: ``sigma_theta = p A^2 / r^2``), i.e. its value
extrapolated to the interface.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from phasefield.analysis.finite_strain import (  # noqa: E402
    bonded_cylinder,
    bonded_cylinder_small_strain,
    core_shell_cylinder,
    core_shell_small_strain,
)
from phasefield.config import validate_run  # noqa: E402
from phasefield.models.swelling import particle_lame  # noqa: E402
from phasefield.operators import isotropic_moduli, normal_stress, strain_from_displacement  # noqa: E402
from phasefield.operators.elasticity import stress_from_strain  # noqa: E402
from phasefield.runner import build, device_parameters  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BETA = 3.0
VOLUME_RATIOS = (1.5, 2.0, 3.0, 4.0)
RADIUS = 1.0  # um
QUANTITIES = ("pressure", "particle_hoop", "radius_change", "matrix_hoop")


def single_particle(size, shape, interface_thickness, **overrides):
    """The swelling model with one elastic particle of radius 1 um at the centre of a periodic cell (no
    collector, no separator, no stack pressure; ``overrides``: further scenario keys). Returns ``solve``,
    ``c field -> dict`` of numpy fields and scalars of the model's ``init`` (compiled once), the scenario
    config and the radius of each cell from the particle centre (um)."""
    scenario = {"name": "swelling", "size": [size, size], "shape": [shape, shape], "t_end": 1.0,
                "particles": [[size / 2, size / 2, RADIUS]], "random_particles": 0, "collector_thickness": 0.0,
                "separator_thickness": 0.0, "interface_thickness": interface_thickness,
                "gradient_length": max(0.04, size / shape), "host_yield_stress": 0.0, "lithiated_yield_stress": 0.0,
                "stack_pressure": 0.0, "volume_expansion": BETA, "initial_fraction": 1e-12,
                "mechanics_tolerance": 1e-10, "mechanics_max_iterations": 4000, **overrides}
    run = validate_run({"scenario": scenario, "solver": {"dt": 1e-3}, "output": {}})
    config, simulation = run.scenario, build(run)
    params = device_parameters(simulation.parameters, "float64")
    grid = simulation.grid
    matrix = isotropic_moduli(config.electrolyte_modulus, config.electrolyte_poisson)
    x, y = (np.asarray(v) for v in np.broadcast_arrays(*grid.coordinates()))
    radius = np.hypot(x - size / 2, y - size / 2)
    radial = (jnp.asarray((x - size / 2) / radius), jnp.asarray((y - size / 2) / radius))

    def hoop(tensor):  # tr_plane - (r.T.r): the hoop component about the particle centre
        return tensor["xx"] + tensor["yy"] - normal_stress(tensor, radial)

    @jax.jit
    def solve(params, c):
        carry = simulation.stepper.init(params, {"c": c})
        elasticity = carry["history"]["elasticity"]
        strain = strain_from_displacement(elasticity["displacement"], elasticity["mean_strain"], grid)
        particle = carry["state"]["particle_stress"]
        return {
            "scalars": simulation.diagnostics(params, carry),
            "psi": simulation.stepper.fields(params, carry)["particles"],
            "matrix_hoop": hoop(stress_from_strain(*matrix, strain)),
            "hoop_strain": hoop(strain),
            "in_plane_strain": 0.5 * (strain["xx"] + strain["yy"]),
            "in_plane_particle_stress": 0.5 * (particle["xx"] + particle["yy"]),
            "iterations": carry["cache"]["mechanics_iterations"],
        }

    return (lambda c: jax.device_get(solve(params, jnp.asarray(c)))), config, radius


def cylinder_model(size=16.0, shape=256, interface_thickness=0.2):
    """A function ``J -> dict`` of the model's measures (module notes) for one bonded particle lithiated
    uniformly, and the ``(lam, mu)`` pair of the matrix; built (and compiled) once."""
    solve, config, radius = single_particle(size, shape, interface_thickness)
    matrix = tuple(float(v) for v in isotropic_moduli(config.electrolyte_modulus, config.electrolyte_poisson))

    def measure(volume_ratio):
        c = (volume_ratio - 1.0) / BETA
        out = solve(np.full(radius.shape, c))
        scalars, psi = out["scalars"], out["psi"]
        core = psi > 0.99
        annulus = (radius > RADIUS + 2 * interface_thickness) & (radius < 2 * RADIUS) & (psi < 0.01)
        return {
            "pressure": -float(scalars["interface_normal_stress_mean"]),
            "particle_hoop": float(scalars["surface_hoop_stress"]),
            "radius_change": float(np.mean(out["in_plane_strain"][core])),
            "matrix_hoop": float(np.mean((out["matrix_hoop"] * (radius / RADIUS) ** 2)[annulus])),
            "core_pressure": -float(np.mean(out["in_plane_particle_stress"][core])),
            "iterations": int(out["iterations"]),
            "particle": tuple(float(v) for v in particle_lame(c, config)),
        }

    return measure, matrix


def core_shell_model(front, size=8.0, shape=256, interface_thickness=0.1, matrix_modulus=0.05):
    """A function ``J -> dict`` of the model's measures for a free particle (matrix ``matrix_modulus`` GPa)
    with a lithiated shell ``r > front`` (c = (J - 1) / beta, a tanh step of width ``interface_thickness``)
    on a pristine core, and the particle's Lame pairs ``(core, shell)`` per J."""
    solve, config, radius = single_particle(size, shape, interface_thickness, electrolyte_modulus=matrix_modulus)

    def measure(volume_ratio):
        c_shell = (volume_ratio - 1.0) / BETA
        c = c_shell * 0.5 * (1.0 + np.tanh(2.0 * (radius - front) / interface_thickness))
        out = solve(c)
        psi = out["psi"]
        core = radius < front - 2.0 * interface_thickness
        surface = (psi > 0.45) & (psi < 0.55)
        return {
            "core_stress": float(np.mean(out["in_plane_particle_stress"][core])),
            "surface_hoop": float(out["scalars"]["surface_hoop_stress"]),
            "radius_change": float(np.mean(out["hoop_strain"][surface])),  # u / r at r = A
            "core_stretch_change": float(np.mean(out["in_plane_strain"][core])),
            "iterations": int(out["iterations"]),
            "core": tuple(float(v) for v in particle_lame(0.0, config)),
            "shell": tuple(float(v) for v in particle_lame(c_shell, config)),
        }

    return measure


def references(volume_ratio, particle, matrix):
    """``{name: Cylinder}``: small strain with the Hencky and the linear eigenstrain, finite strain."""
    return {
        "small (Hencky)": bonded_cylinder_small_strain(np.log(volume_ratio) / 3.0, particle, matrix),
        "small (linear)": bonded_cylinder_small_strain(volume_ratio ** (1.0 / 3.0) - 1.0, particle, matrix),
        "finite": bonded_cylinder(volume_ratio, particle, matrix),
    }


def table(rows) -> str:
    lines = ["| J | quantity | model | small strain, Hencky e* | small strain, linear e* | finite strain "
             "| model / finite |",
             "|---|---|---|---|---|---|---|"]
    units = {"pressure": "GPa", "particle_hoop": "GPa", "radius_change": "", "matrix_hoop": "GPa"}
    for volume_ratio, model, refs in rows:
        for q in QUANTITIES:
            finite = getattr(refs["finite"], q)
            lines.append(f"| {volume_ratio:g} | {q.replace('_', ' ')}{' (' + units[q] + ')' if units[q] else ''} "
                         f"| {model[q]:.3f} | {getattr(refs['small (Hencky)'], q):.3f} "
                         f"| {getattr(refs['small (linear)'], q):.3f} | {finite:.3f} | {model[q] / finite:.2f} |")
    return "\n".join(lines)


def core_shell_table(rows) -> str:
    lines = ["| J | quantity | model | small strain, Hencky e* | small strain, linear e* | finite strain "
             "| model / finite |",
             "|---|---|---|---|---|---|---|"]
    for volume_ratio, model, refs in rows:
        for q in ("core_stress", "surface_hoop", "front_hoop", "radius_change", "core_stretch_change"):
            unit = "" if q in ("radius_change", "core_stretch_change") else " (GPa)"
            finite = getattr(refs["finite"], q)
            shown = f"{model[q]:.3f}" if q in model else "-"
            ratio = f"{model[q] / finite:.2f}" if q in model else "-"
            lines.append(f"| {volume_ratio:g} | {q.replace('_', ' ')}{unit} | {shown} "
                         f"| {getattr(refs['small (Hencky)'], q):.3f} | {getattr(refs['small (linear)'], q):.3f} "
                         f"| {finite:.3f} | {ratio} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=float, default=16.0, help="cell size, um (the particle radius is 1 um)")
    parser.add_argument("--shape", type=int, default=256)
    parser.add_argument("--interface", type=float, default=0.2, help="interface_thickness, um")
    parser.add_argument("--front", type=float, default=0.5, help="core-shell: front radius over the particle radius")
    parser.add_argument("--front-width", type=float, default=0.05,
                        help="core-shell: width of the particle surface and of the c step, um (256^2 in 8 um)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("bonded", "convergence", "core-shell", "llzo"))
    args = parser.parse_args()
    start = time.time()
    if "bonded" not in args.skip:
        measure, matrix = cylinder_model(args.size, args.shape, args.interface)
        rows = []
        for volume_ratio in VOLUME_RATIOS:
            model = measure(volume_ratio)
            refs = references(volume_ratio, model["particle"], matrix)
            rows.append((volume_ratio, model, refs))
            print(f"J = {volume_ratio:g}: model core pressure {model['core_pressure']:.3f} GPa, CG iterations "
                  f"{model['iterations']}; particle sigma_zz finite {refs['finite'].particle_axial:.3f}, small "
                  f"(Hencky) {refs['small (Hencky)'].particle_axial:.3f} GPa", flush=True)
        print(f"\nbonded cylinder in Li6PS5Cl: cell {args.size:g} um, {args.shape}^2, interface {args.interface:g} um "
              f"({time.time() - start:.1f} s)")
        print(table(rows), flush=True)
    if "convergence" not in args.skip:
        print("\nmodel / Lame (Hencky e*) - 1 at J = 2, bonded cylinder: diffuse-interface and periodic-image errors")
        print("| cell (um) | cells | w (um) | core pressure | interface pressure | surface hoop (band) "
              "| radius change | matrix hoop |\n|---|---|---|---|---|---|---|---|")
        for size, shape, width in ((8.0, 128, 0.2), (16.0, 256, 0.2), (8.0, 256, 0.1), (8.0, 512, 0.05)):
            measure, matrix = cylinder_model(size, shape, width)
            model = measure(2.0)
            lame = references(2.0, model["particle"], matrix)["small (Hencky)"]
            errors = [model["core_pressure"] / lame.pressure - 1]
            errors += [model[q] / getattr(lame, q) - 1 for q in QUANTITIES]
            print(f"| {size:g} | {shape}^2 | {width:g} | " + " | ".join(f"{100 * e:+.1f} %" for e in errors) + " |",
                  flush=True)
    if "core-shell" not in args.skip:
        measure = core_shell_model(args.front, size=8.0, shape=256, interface_thickness=args.front_width)
        rows = []
        for volume_ratio in VOLUME_RATIOS:
            model = measure(volume_ratio)
            core, shell = model["core"], model["shell"]
            refs = {"small (Hencky)": core_shell_small_strain(np.log(volume_ratio) / 3.0, args.front, core, shell),
                    "small (linear)": core_shell_small_strain(volume_ratio ** (1 / 3) - 1.0, args.front, core, shell),
                    "finite": core_shell_cylinder(volume_ratio, args.front, core, shell)}
            rows.append((volume_ratio, model, refs))
        print(f"\nfree core-shell cylinder, front at {args.front:g} A (model: 8 um cell, 256^2, surface and front "
              f"width {args.front_width:g} um, matrix 0.05 GPa; {time.time() - start:.1f} s)")
        print(core_shell_table(rows), flush=True)
    if "llzo" not in args.skip:
        llzo = tuple(float(v) for v in isotropic_moduli(150.0, 0.257))
        print("\nbonded cylinder in LLZO (analytic only): pressure / matrix hoop / radius change")
        print("| J | small, Hencky | small, linear | finite |\n|---|---|---|---|")
        for volume_ratio in VOLUME_RATIOS:
            c = (volume_ratio - 1.0) / BETA
            particle = tuple(float(v) for v in isotropic_moduli(130.0 - 90.0 * c, 0.22))
            refs = references(volume_ratio, particle, llzo)
            print(f"| {volume_ratio:g} | " + " | ".join(
                f"{r.pressure:.2f} / {r.matrix_hoop:.2f} / {r.radius_change:.3f}" for r in refs.values()) + " |")
    print(f"\n{time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
