"""PFHub benchmark 1: spinodal decomposition by Cahn-Hilliard.

``dc/dt = div(M grad mu)``, ``mu = f'(c) - kappa lap c``, ``f = rho_s (c - c_a)^2 (c_b - c)^2``,
with PFHub's constants (c0 = 0.5, epsilon = 0.01, rho_s = 5, c_a = 0.3, c_b = 0.7,
kappa = 2, M = 5) on a 200 x 200 domain of unit cells. Variants:

* ``a``:    periodic square;
* ``b``:    no-flux square;
* ``cube``: a 3D no-flux cube (our extension, see :func:`initial_condition`).

All quantities are nondimensional, as in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, SolverConfig, option, scenario_parameters
from phasefield.decomposition import slabs_for
from phasefield.grid import Boundary, Grid
from phasefield.models.gradient_flow import cahn_hilliard
from phasefield.physics.free_energy import (
    double_well,
    double_well_curvature_max,
    double_well_derivative,
    gradient_energy,
)
from phasefield.registry import register_scenario
from phasefield.simulation import Quantity, Simulation

VARIANTS = ("a", "b", "cube")


@scenario_parameters
@dataclass
class Config:
    """``scenario=spinodal``: PFHub benchmark 1."""

    name: str = option("spinodal", help="scenario name")
    variant: str = option("a", choices=VARIANTS, help="a: periodic square, b: no-flux square, cube: 3D no-flux")
    shape: list[int] = option(lambda: [200, 200], min=4, help="cells per axis (2 entries, 3 for cube)")
    spacing: float = option(1.0, min=1e-3, max=1e3, static=True, help="cell size (sets the grid; PFHub: 1)")
    c0: float = option(0.5, min=0.0, max=1.0, help="mean composition")
    epsilon: float = option(0.01, min=0.0, help="amplitude of the initial perturbation")
    rho_s: float = option(5.0, min=0.0, exclusive=True, help="double-well height")
    c_alpha: float = option(0.3, help="composition of the alpha well")
    c_beta: float = option(0.7, help="composition of the beta well")
    kappa: float = option(2.0, min=0.0, exclusive=True, help="gradient-energy coefficient")
    mobility: float = option(5.0, min=0.0, exclusive=True, help="Cahn-Hilliard mobility M")
    t_end: float = option(100.0, min=0.0, exclusive=True, help="simulated end time")

    def check(self, prefix: str):
        dims = 3 if self.variant == "cube" else 2
        if len(self.shape) != dims:
            raise ConfigError(f"{prefix}.shape", self.shape, f"a list of {dims} cell counts for variant {self.variant!r}")
        if not self.c_alpha < self.c_beta:
            raise ConfigError(f"{prefix}.c_beta", self.c_beta, f"greater than c_alpha = {self.c_alpha}")


def initial_condition(grid: Grid, params: Config) -> np.ndarray:
    """PFHub's cosine perturbation at cell centres (x, y from 0 at the lower-left corner).

    ``c = c0 + eps [cos(0.105x)cos(0.11y) + (cos(0.13x)cos(0.087y))^2 + cos(0.025x - 0.15y)cos(0.07x - 0.02y)]``.
    The cube adds ``cos(0.09z)cos(0.12x)`` and multiplies the first term by ``cos(0.06z)``:
    our own 3D extension (PFHub defines no cube), with the same amplitude scale.
    """
    coords = grid.coordinates()
    x, y = coords[0], coords[1]
    first = np.cos(0.105 * x) * np.cos(0.11 * y)
    if grid.ndim == 3:
        z = coords[2]
        first = first * np.cos(0.06 * z) + np.cos(0.09 * z) * np.cos(0.12 * x)
    perturbation = (
        first
        + (np.cos(0.13 * x) * np.cos(0.087 * y)) ** 2
        + np.cos(0.025 * x - 0.15 * y) * np.cos(0.07 * x - 0.02 * y)
    )
    return np.broadcast_to(params.c0 + params.epsilon * perturbation, grid.shape).copy()


def boundary_for(variant: str, ndim: int) -> Boundary:
    return Boundary.uniform(ndim, "periodic" if variant == "a" else "neumann")


def free_energy(c, grid: Grid, boundary: Boundary, params: Config):
    """Total free energy ``F = sum_cells f(c) dV + kappa/2 sum_faces |grad c|^2 dV``."""
    bulk = jnp.sum(double_well(c, params.rho_s, params.c_alpha, params.c_beta)) * grid.cell_volume
    return bulk + gradient_energy(c, grid, boundary, params.kappa)


def f_prime(params: Config, c):
    return double_well_derivative(c, params.rho_s, params.c_alpha, params.c_beta)


def coefficients(params: Config):
    """Mobility, gradient coefficient and the largest curvature of the double well (explicit limit)."""
    return params.mobility, params.kappa, double_well_curvature_max(params.rho_s, params.c_alpha, params.c_beta)


@register_scenario("spinodal", Config, SolverConfig)
def build(config: Config, solver) -> Simulation:
    grid = Grid(tuple(config.shape), config.spacing)
    boundary = boundary_for(config.variant, grid.ndim)
    dtype = jnp.dtype(solver.precision)
    stepper = cahn_hilliard(grid, boundary, f_prime, coefficients, solver.scheme, dtype,
                            stabilization=solver.stabilization,
                            slabs=slabs_for(solver.decomposition, grid.shape))

    def diagnostics(params, carry):
        c = carry["state"]["c"].astype(jnp.float64)
        return {
            "free_energy": free_energy(c, grid, boundary, params),
            "total_mass": jnp.sum(c) * grid.cell_volume,
            "c_min": jnp.min(c),
            "c_max": jnp.max(c),
        }

    return Simulation(
        name="spinodal",
        grid=grid,
        parameters=config,
        stepper=stepper,
        initial_fields=lambda: {"c": initial_condition(grid, config)},
        field_info={"c": Quantity("1", "composition (mole fraction)")},
        diagnostics=diagnostics,
        scalar_info={
            "free_energy": Quantity("1", "total free energy F = int f(c) + kappa/2 |grad c|^2"),
            "total_mass": Quantity("1", "int c dV (conserved)"),
            "c_min": Quantity("1", "minimum composition"),
            "c_max": Quantity("1", "maximum composition"),
        },
        scales={"length": (1.0, "1"), "time": (1.0, "1"), "energy_density": (1.0, "1")},
        lyapunov="free_energy",
    )
