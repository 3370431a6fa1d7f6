"""PFHub benchmark 7: the method of manufactured solutions for Allen-Cahn (revision 0).

``d eta/dt = -[4 eta (eta - 1)(eta - 1/2) - kappa lap eta] + S(x, y, t)`` on ``[0, 1] x [0, 1/2]``,
periodic in x, ``eta = 1`` at ``y = 0`` and ``eta = 0`` at ``y = 1/2`` (Dirichlet), with the source
``S`` that makes ``eta_sol = 1/2 [1 - tanh((y - alpha(x, t)) / sqrt(2 kappa))]``,
``alpha = 1/4 + A1 t sin(B1 x) + A2 sin(B2 x + C2 t)``, the exact solution. Variants (PFHub):

* ``a``: ``kappa = 4e-4, A1 = 0.0075, B1 = 8 pi, A2 = 0.03, B2 = 22 pi, C2 = 0.0625 pi``;
* ``b``: as a with ``kappa = 1.5625e-6`` (kappa / 256, a 16x thinner interface);
* ``c``: as b with ``C2 = 0.5``.

The benchmark's figure is the L2 error ``sqrt(sum (eta - eta_sol)^2 dx dy)`` at ``t = 8``
(``/scalars/l2_error``) and its convergence order in h and dt. Forward Euler on the 5-point
stencil (Dirichlet walls by ghost cells, second order); the model time rides in the state so the
source knows it. Nondimensional, as in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from phasefield.config import ConfigError, PrecisionTimeSolverConfig, option, scenario_parameters
from phasefield.decomposition import laid_out, slabs_for
from phasefield.grid import Boundary, Grid, Side
from phasefield.operators import laplacian
from phasefield.registry import register_scenario
from phasefield.schemes import Stepper
from phasefield.simulation import Quantity, Simulation

VARIANTS = {
    "a": {"kappa": 4e-4, "C2": 0.0625 * np.pi},
    "b": {"kappa": 4e-4 / 256, "C2": 0.0625 * np.pi},
    "c": {"kappa": 4e-4 / 256, "C2": 0.5},
}
A1, B1, A2, B2 = 0.0075, 8 * np.pi, 0.03, 22 * np.pi


@scenario_parameters
@dataclass
class Config:
    """``scenario=pfhub_mms``: PFHub benchmark 7 (Allen-Cahn, manufactured solution)."""

    name: str = option("pfhub_mms", help="scenario name")
    variant: str = option("a", choices=tuple(VARIANTS), help="a, b (kappa / 256) or c (b with C2 = 0.5)")
    shape: list[int] = option(lambda: [100, 50], min=4, help="cells along x (length 1) and y (length 1/2)")
    t_end: float = option(8.0, min=0.0, exclusive=True, help="end time (PFHub reports the error at 8)")

    def check(self, prefix: str):
        if len(self.shape) != 2 or abs(1.0 / self.shape[0] - 0.5 / self.shape[1]) > 1e-12:
            raise ConfigError(f"{prefix}.shape", self.shape, "[n, n / 2]: square cells on the 1 x 1/2 domain")


def interface_position(x, t, c2):
    """``alpha(x, t) = 1/4 + A1 t sin(B1 x) + A2 sin(B2 x + C2 t)``."""
    return 0.25 + A1 * t * jnp.sin(B1 * x) + A2 * jnp.sin(B2 * x + c2 * t)


def exact_solution(x, y, t, kappa, c2):
    """``eta_sol = 1/2 [1 - tanh((y - alpha) / sqrt(2 kappa))]``."""
    return 0.5 * (1.0 - jnp.tanh((y - interface_position(x, t, c2)) / jnp.sqrt(2.0 * kappa)))


def source(x, y, t, kappa, c2):
    """``S = d eta_sol/dt + 4 eta (eta - 1)(eta - 1/2) - kappa lap eta_sol``, derived by hand from the
    chain rule (``eta' = -1/2 sech^2(psi)/sqrt(2 kappa)``, ``psi = (y - alpha)/sqrt(2 kappa)``); the test
    checks it against finite differences of ``eta_sol`` and against PFHub's SymPy expression. ``x`` and ``y``
    broadcast: the step passes ``x`` as one column of cells, so ``alpha`` and its derivatives cost a row of
    sines, and each cell one ``tanh`` (``sech^2 = (1 - tanh)(1 + tanh)``)."""
    width = jnp.sqrt(2.0 * kappa)
    sin_1, cos_1 = jnp.sin(B1 * x), jnp.cos(B1 * x)
    sin_2, cos_2 = jnp.sin(B2 * x + c2 * t), jnp.cos(B2 * x + c2 * t)
    alpha = 0.25 + A1 * t * sin_1 + A2 * sin_2
    alpha_t = A1 * sin_1 + A2 * c2 * cos_2
    alpha_x = A1 * B1 * t * cos_1 + A2 * B2 * cos_2
    alpha_xx = -A1 * B1**2 * t * sin_1 - A2 * B2**2 * sin_2
    tanh = jnp.tanh((y - alpha) / width)
    sech2 = (1.0 - tanh) * (1.0 + tanh)
    # eta_sol = (1 - tanh psi)/2: d/dpsi = -sech^2/2, d2/dpsi2 = sech^2 tanh
    d_eta = -0.5 * sech2
    dd_eta = sech2 * tanh
    eta_t = d_eta * (-alpha_t / width)
    laplacian_eta = dd_eta * (alpha_x**2 + 1.0) / width**2 + d_eta * (-alpha_xx / width)
    eta = 0.5 * (1.0 - tanh)
    return eta_t + 4.0 * eta * (eta - 1.0) * (eta - 0.5) - kappa * laplacian_eta


def make_grid(config: Config) -> Grid:
    return Grid(tuple(config.shape), 1.0 / config.shape[0])


@register_scenario("pfhub_mms", Config, PrecisionTimeSolverConfig)
def build(config: Config, solver: PrecisionTimeSolverConfig) -> Simulation:
    """The simulation; ``solver.decomposition=slabs`` splits ``eta`` (and the source's coordinates) along the periodic
    x over the devices: the stencil exchanges halos, the Dirichlet walls in y stay on every device.
    ``solver.precision``: the working precision of ``eta``; the time and the source are float64 (the source is
    rounded to the working precision once it is added)."""
    grid = make_grid(config)
    dtype = jnp.dtype(solver.precision)
    slabs = slabs_for(solver.decomposition, grid.shape)
    boundary = Boundary(((Side("periodic"), Side("periodic")), (Side("dirichlet", 1.0), Side("dirichlet", 0.0))))
    x, y = (jnp.asarray(c) for c in np.meshgrid(*(grid.axis_coordinates(a) for a in range(2)), indexing="ij"))
    kappa, c2 = VARIANTS[config.variant]["kappa"], VARIANTS[config.variant]["C2"]

    def init(params, fields):
        return laid_out(slabs, {"state": {"eta": jnp.asarray(fields["eta"], dtype),
                                          "time": jnp.zeros((), jnp.float64)}, "history": {}, "cache": {}}, grid.shape)

    def step(params, carry, dt):
        eta, t = carry["state"]["eta"], carry["state"]["time"]
        at_x, at_y = laid_out(slabs, (x, y), grid.shape)  # each device evaluates the source on its own cells
        rate = (-(4.0 * eta * (eta - 1.0) * (eta - 0.5) - kappa * laplacian(eta, grid, boundary))
                + source(at_x[:, :1], at_y, t, kappa, c2).astype(dtype))  # alpha(x, t) on a column of cells
        return laid_out(slabs, {**carry, "state": {"eta": eta + jnp.asarray(dt, dtype) * rate, "time": t + dt}},
                        grid.shape)

    def stable_dt(params):
        # forward Euler: dt <= 2 / (kappa sum 4/h^2 + max f''), f'' = 12 eta^2 - 12 eta + 2 <= 2 on [0, 1]
        return 2.0 / (kappa * sum(4.0 / h**2 for h in grid.spacing) + 2.0)

    def diagnostics(params, carry):
        eta, t = carry["state"]["eta"], carry["state"]["time"]
        error = eta - exact_solution(x, y, t, kappa, c2)
        return {"l2_error": jnp.sqrt(jnp.sum(error**2) * grid.cell_volume), "max_error": jnp.max(jnp.abs(error))}

    return Simulation(
        name=config.name,
        grid=grid,
        parameters=config,
        stepper=Stepper(init, step, lambda params, carry: {"eta": carry["state"]["eta"]}, stable_dt, 1),
        initial_fields=lambda: {"eta": np.asarray(exact_solution(x, y, 0.0, kappa, c2))},
        field_info={"eta": Quantity("1", "order parameter")},
        diagnostics=diagnostics,
        scalar_info={"l2_error": Quantity("1", "sqrt(sum (eta - eta_sol)^2 dx dy), PFHub's error norm"),
                     "max_error": Quantity("1", "max |eta - eta_sol|")},
        scales={"length": (1.0, "1"), "time": (1.0, "1")},
    )
